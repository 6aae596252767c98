"""The networks and their input distortions: the only Keras code besides `pipeline.training.fold`.

Every recipe reads the 784 pixels scaled to [0, 1], so folds, distortion,
saving and reports do not care which one runs: ``mlp`` on the flat pixels;
``cnn`` and ``cnn-wide`` on the 28x28 image.  The output layer computes in
float32 whatever the precision policy, so the softmax and the loss stay
exact under mixed_bfloat16.

Augmentation is one random affine map per image (rotation, zoom, shear and
shift composed), applied to a whole batch by a single projective-transform
op.  Keras' separate RandomRotation/RandomZoom/RandomTranslation layers cost
more than the network itself on a CPU; this costs about 4 ms per batch of
512, and runs in the input pipeline beside the training step.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from pipeline.core.config import AugmentConfig, Config, TrainConfig, resolved

_CENTRE = 13.5  # pixel centres run 0..27
BN_MOMENTUM_CNN = 0.9


def build_model(config: Config) -> keras.Model:
    """The classifier of the recipe `config.model.kind` names; each reads the 784 pixels scaled to [0, 1]."""
    builders = {"mlp": build_mlp, "cnn": build_cnn, "cnn-wide": build_cnn_wide}
    return builders[resolved(config.model.kind)](config)


def _digit(h: keras.KerasTensor) -> keras.KerasTensor:
    """The 10-way softmax, in float32 under any precision policy."""
    return keras.layers.Dense(10, activation="softmax", name="digit", dtype="float32")(h)


def _dense_blocks(h: keras.KerasTensor, config: Config, momentum: float = 0.99) -> keras.KerasTensor:
    """Dense (no bias: batch norm supplies it) -> BatchNorm -> activation -> Dropout, per hidden width."""
    m = config.model
    for width in m.hidden or ():
        h = keras.layers.Dense(width, use_bias=not m.batch_norm)(h)
        if m.batch_norm:
            h = keras.layers.BatchNormalization(momentum=momentum)(h)
        h = keras.layers.Activation(m.activation)(h)
        if m.dropout:
            h = keras.layers.Dropout(m.dropout)(h)
    return h


def build_mlp(config: Config) -> keras.Model:
    """784 -> hidden blocks -> 10-way softmax."""
    m = config.model
    inputs = keras.Input(shape=(784,), name="pixels")
    h = keras.layers.Dropout(m.input_dropout)(inputs) if m.input_dropout else inputs
    return keras.Model(inputs, _digit(_dense_blocks(h, config)), name="mlp_" + "_".join(map(str, m.hidden or ())))


def build_cnn(config: Config) -> keras.Model:
    """28x28 -> per entry of `filters`: two 3x3 convolutions, a 2x2 max-pool, dropout -> dense head -> softmax."""
    m = config.model
    inputs = keras.Input(shape=(784,), name="pixels")
    h = keras.layers.Reshape((28, 28, 1))(inputs)
    for filters in m.filters or ():
        for _ in range(2):
            h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not m.batch_norm)(h)
            if m.batch_norm:
                # Keras' default momentum (0.99) leaves the moving variance near its initial 1.0 for
                # hundreds of steps, while a 3x3 convolution's outputs vary by ~0.01: inference is
                # garbage for the first epochs, and so is early stopping's validation loss.
                h = keras.layers.BatchNormalization(momentum=BN_MOMENTUM_CNN)(h)
            h = keras.layers.Activation(m.activation)(h)
        h = keras.layers.MaxPooling2D()(h)
        if m.dropout:
            h = keras.layers.Dropout(m.dropout)(h)
    h = keras.layers.Flatten()(h)
    outputs = _digit(_dense_blocks(h, config, BN_MOMENTUM_CNN))
    return keras.Model(inputs, outputs, name="cnn_" + "_".join(map(str, m.filters or ())))


def build_cnn_wide(config: Config) -> keras.Model:
    """28x28 -> per entry of `filters`: a 5x5 and a strided 5x5 convolution, dropout -> a 4x4 convolution of
    twice the last width -> dropout -> softmax.  `model.kernel` 3 puts two 3x3 convolutions where the 5x5 is
    (Deotte's design), 7 one 7x7 on the map padded by a pixel, so the maps keep their sizes: the kernel-size
    variants of An et al. (2020).  Paired on the same folds, 5 scored as 3 and trained 1.6x as fast.

    The design of the strongest single CNNs on this competition (Deotte's
    "How to choose CNN architecture MNIST": 32C3-32C3-32C5S2, 64C3-64C3-64C5S2,
    128C4, batch norm after each convolution, dropout 0.4): the strided 5x5
    convolution learns its own down-sampling where `build_cnn` max-pools.
    """
    m = config.model
    kernel = m.kernel or 3  # None only where no recipe was applied (a library call): Deotte's two 3x3
    inputs = keras.Input(shape=(784,), name="pixels")
    h = keras.layers.Reshape((28, 28, 1))(inputs)

    def conv(
        h: keras.KerasTensor, filters: int, size: int, strides: int = 1, padding: str = "valid"
    ) -> keras.KerasTensor:
        h = keras.layers.Conv2D(filters, size, strides=strides, padding=padding, use_bias=not m.batch_norm)(h)
        if m.batch_norm:
            h = keras.layers.BatchNormalization(momentum=BN_MOMENTUM_CNN)(h)
        return keras.layers.Activation(m.activation)(h)

    filters = m.filters or ()
    for width in filters:
        if kernel == 3:
            h = conv(conv(h, width, 3), width, 3)
        else:  # one 5x5, or one 7x7 on the map padded by a pixel: the same map sizes as two 3x3 (28 -> 24, 12 -> 8)
            if kernel == 7:
                h = keras.layers.ZeroPadding2D(1)(h)
            h = conv(h, width, kernel)
        h = conv(h, width, 5, strides=2, padding="same")
        if m.dropout:
            h = keras.layers.Dropout(m.dropout)(h)
    h = conv(h, 2 * filters[-1], int(h.shape[1]))  # one position left: the whole map in one kernel (4x4 after 32-64)
    h = keras.layers.Flatten()(h)
    if m.dropout:
        h = keras.layers.Dropout(m.dropout)(h)
    outputs = _digit(_dense_blocks(h, config, BN_MOMENTUM_CNN))
    return keras.Model(inputs, outputs, name="cnn_wide_" + "_".join(map(str, filters)))


def parameter_count(config: Config) -> int:
    """Weights of the model `config` describes, counted without building it (a guard against absurd sizes)."""
    m = config.model
    widths = list(m.hidden or ())
    if m.kind == "cnn":
        count, channels = 0, 1
        for filters in m.filters or ():
            count += 9 * channels * filters + 9 * filters * filters + 4 * 2 * filters
            channels = filters
        inputs = (28 // 2 ** len(m.filters or ())) ** 2 * channels
    elif m.kind == "cnn-wide":
        count, channels, side, kernel = 0, 1, 28, m.kernel or 3  # None: no recipe applied, as build_cnn_wide
        for filters in m.filters or ():
            stacked = (9 * channels + 9 * filters) if kernel == 3 else kernel**2 * channels
            convolutions = 3 if kernel == 3 else 2  # each with batch norm's 4 numbers per channel
            count += (stacked + 25 * filters) * filters + convolutions * 4 * filters
            channels, side = filters, (side - 4 + 1) // 2
        count += side * side * channels * 2 * channels + 4 * 2 * channels
        inputs = 2 * channels
    else:
        count, inputs = 0, 784
    for width in widths:
        count += inputs * width + 4 * width
        inputs = width
    return count + inputs * 10 + 10


def compile_model(model: keras.Model, train: TrainConfig, steps_per_epoch: int, jit_compile: bool = False) -> None:
    """Optimizer, schedule and loss from the config.  `jit_compile`: XLA (benchmarks/speed.py measures it)."""
    peak = resolved(train.learning_rate)
    if train.schedule == "cosine":
        warmup = train.warmup_epochs * steps_per_epoch
        total = max(resolved(train.epochs) * steps_per_epoch - warmup, 1)
        lr = keras.optimizers.schedules.CosineDecay(
            peak * 0.05 if warmup else peak,
            total,
            alpha=0.0,
            warmup_target=peak if warmup else None,
            warmup_steps=warmup,
        )
    else:
        lr = peak
    if train.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(lr, weight_decay=train.weight_decay)
    elif train.optimizer == "adam":
        optimizer = keras.optimizers.Adam(lr)
    else:
        optimizer = keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=train.weight_decay or None)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train.label_smoothing),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


def distort(images: tf.Tensor, seed: tf.Tensor, augment: AugmentConfig) -> tf.Tensor:
    """Random affine distortion of a batch of flat 28x28 images (values in [0, 1]).

    `seed` is a shape-(2,) int tensor: the same seed gives the same
    distortions, which is what makes runs reproducible.
    """
    n = tf.shape(images)[0]
    r = tf.random.stateless_uniform((n, 5), seed, -1.0, 1.0)
    angle = r[:, 0] * augment.rotation * math.pi / 180.0
    scale = 1.0 + r[:, 1] * augment.zoom
    shear = r[:, 2] * augment.shear
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # The op maps each output pixel to the input point it samples from:
    # (x, y) -> A (x - c, y - c) + c + t, with A = rotation . scale . shear.
    a00, a01, a10, a11 = cos, cos * shear - sin, sin, sin * shear + cos
    a02 = _CENTRE * (1 - a00 - a01) + r[:, 3] * augment.shift
    a12 = _CENTRE * (1 - a10 - a11) + r[:, 4] * augment.shift
    zero = tf.zeros_like(cos)
    transforms = tf.stack([a00, a01, a02, a10, a11, a12, zero, zero], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.reshape(images, (n, 28, 28, 1)),
        transforms=transforms,
        output_shape=[28, 28],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.reshape(out, (n, 784))
