"""The networks, the optimizer branches and the geometry of the batch distortion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.core import config_layers
from pipeline.core.config import AugmentConfig

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
from pipeline.training import networks  # noqa: E402  (imports TensorFlow)


def _square() -> np.ndarray:
    """A 28x28 image, black, with one bright 3x3 square right of and above the centre."""
    img = np.zeros((28, 28), np.float32)
    img[8:11, 17:20] = 1.0
    return img


def _centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(img.shape)
    total = img.sum()
    return float((rows * img).sum() / total), float((cols * img).sum() / total)


def _distort(img: np.ndarray, **augment: float) -> np.ndarray:
    config = AugmentConfig(**{"rotation": 0.0, "shift": 0.0, "zoom": 0.0, "shear": 0.0, **augment})
    out = networks.distort(tf.constant(img.reshape(1, 784)), tf.constant([1, 2], tf.int64), config)
    return out.numpy().reshape(28, 28)


def test_distortion_with_every_range_zero_is_the_identity():
    img = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    np.testing.assert_allclose(_distort(img), img, atol=1e-6)


def test_a_shift_moves_the_image_by_at_most_the_configured_pixels():
    img = _square()
    r0, c0 = _centre_of_mass(img)
    for seed in range(20):
        out = (
            networks.distort(
                tf.constant(img.reshape(1, 784)),
                tf.constant([seed, 0], tf.int64),
                AugmentConfig(rotation=0.0, shift=2.5, zoom=0.0, shear=0.0),
            )
            .numpy()
            .reshape(28, 28)
        )
        r1, c1 = _centre_of_mass(out)
        assert abs(r1 - r0) <= 2.5 + 1e-3 and abs(c1 - c0) <= 2.5 + 1e-3
        assert out.sum() == pytest.approx(img.sum(), rel=1e-3)  # a shift of an interior square keeps its ink


def test_the_sign_of_a_rotation_follows_its_random_draw():
    # The draw u in [-1, 1] gives the angle u * rotation.  The op samples each output pixel from the
    # input point rotated by +angle in (column, row) coordinates, rows running down: seen on screen,
    # a positive angle turns the digit counter-clockwise by that angle, about the centre.
    img = _square()
    r0, c0 = _centre_of_mass(img)
    angle0 = math.atan2(-(r0 - 13.5), c0 - 13.5)
    seed = tf.constant([1, 2], tf.int64)
    u = float(tf.random.stateless_uniform((1, 5), seed, -1.0, 1.0).numpy()[0, 0])
    out = _distort(img, rotation=30.0)
    r1, c1 = _centre_of_mass(out)
    angle1 = math.atan2(-(r1 - 13.5), c1 - 13.5)
    turned = math.degrees(angle1 - angle0)
    assert abs(u) > 0.3  # a draw big enough for the sign to show
    assert turned == pytest.approx(30.0 * u, abs=3.0)  # this draw's angle, within interpolation error
    radius0, radius1 = math.hypot(r0 - 13.5, c0 - 13.5), math.hypot(r1 - 13.5, c1 - 13.5)
    assert radius1 == pytest.approx(radius0, abs=0.3)  # a rotation about the centre keeps the distance


@pytest.mark.parametrize(
    "optimizer, schedule, kind",
    [("sgd", "constant", "SGD"), ("adam", "cosine", "Adam"), ("adamw", "constant", "AdamW")],
)
def test_compile_model_builds_the_configured_optimizer_and_schedule(optimizer, schedule, kind):
    config = config_layers.build(
        named={"train": {"seed": 1, "epochs": 4, "learning_rate": 0.01}, "model": {"kind": "mlp", "hidden": "8"}},
        sets={"train": {"optimizer": optimizer, "schedule": schedule, "warmup_epochs": "1"}},
    )
    net = networks.build_model(config)
    networks.compile_model(net, config.train, steps_per_epoch=10)
    opt = net.optimizer
    assert type(opt).__name__ == kind
    lr = opt.learning_rate
    if schedule == "constant":
        assert float(keras.ops.convert_to_numpy(lr)) == pytest.approx(0.01)
    else:  # warm-up from 5% of the peak to the peak over one epoch, then cosine down to 0 at the end
        sched = opt._learning_rate
        assert float(sched(0)) == pytest.approx(0.0005)
        assert float(sched(10)) == pytest.approx(0.01)
        assert float(sched(40)) == pytest.approx(0.0, abs=1e-6)
    if optimizer == "sgd":
        assert opt.momentum == pytest.approx(0.9) and opt.nesterov


def test_the_parameter_count_matches_keras_for_every_recipe():
    for named in (
        {"model": {"kind": "mlp", "hidden": "64,32"}},
        {"model": {"kind": "cnn", "filters": "8,16", "hidden": "32"}},
        {"model": {"kind": "cnn-wide", "filters": "8,16"}},
        {"model": {"kind": "cnn-wide", "filters": "8"}},
        {"model": {"kind": "cnn-wide", "filters": "8,16", "hidden": "24"}},
        {"model": {"kind": "cnn-wide", "filters": "8,16", "kernel": 5}},
        {"model": {"kind": "cnn-wide", "filters": "8,16", "kernel": 7}},
    ):
        config = config_layers.build(named={**named, "train": {"seed": 1}})
        # batch norm's 4 numbers per unit: 2 trainable, 2 moving statistics
        assert networks.parameter_count(config) == networks.build_model(config).count_params()


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_every_kernel_variant_keeps_the_wide_cnns_map_sizes(kernel):
    """One 5x5 or one padded 7x7 where two 3x3 were: 28 -> 24 -> 12, then 12 -> 8 -> 4, as the default."""
    config = config_layers.build(named={"model": {"kind": "cnn-wide", "kernel": kernel}, "train": {"seed": 1}})
    model = networks.build_model(config)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    sizes = [tuple(layer.output.shape[1:3]) for layer in convs]
    assert [tuple(c.kernel_size) for c in convs if c.strides == (1, 1)][0] == (kernel, kernel)
    strided = [i for i, c in enumerate(convs) if c.strides == (2, 2)]
    assert [sizes[i] for i in strided] == [(12, 12), (4, 4)]
    assert [sizes[i - 1] for i in strided] == [(24, 24), (8, 8)] and sizes[-1] == (1, 1)
    assert len(convs) == (7 if kernel == 3 else 5)
