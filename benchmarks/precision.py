"""Training throughput of a model in float32 and in Keras' mixed_bfloat16 policy, and across thread counts.

Random data, one epoch after a warm-up epoch, TensorFlow's op determinism on
(as digits trains), a fixed thread count.  Prints samples per second.

    python benchmarks/precision.py mlp 1024,512 512 float32
    python benchmarks/precision.py mlp 1024,512 512 mixed_bfloat16
    python benchmarks/precision.py cnn 16,32 256 mixed_bfloat16
    python benchmarks/precision.py cnn 32,64 256 float32 --threads 1
    python benchmarks/precision.py matmul 2048 0 bfloat16     # one 2048x2048 product: GFLOP/s

Also prints whether the CPU advertises native bfloat16 (avx512_bf16 or amx_bf16
in /proc/cpuinfo); without it TensorFlow emulates bfloat16 and is slow.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=("mlp", "cnn", "matmul"))
    p.add_argument("widths", help="MLP hidden widths, or CNN filters per block (two 3x3 convolutions each)")
    p.add_argument("batch", type=int)
    p.add_argument("precision", choices=("float32", "mixed_bfloat16", "bfloat16"))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    tf.config.experimental.enable_op_determinism()
    flags = Path("/proc/cpuinfo").read_text().split()
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    print(f"native bfloat16 on this CPU: {', '.join(native) or 'none'}")
    if a.kind == "matmul":
        size = int(a.widths)
        dtype = tf.bfloat16 if "bfloat16" in a.precision else tf.float32
        m = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
        tf.matmul(m, m).numpy()
        reps = 10
        t = time.perf_counter()
        for _ in range(reps):
            tf.matmul(m, m).numpy()
        gflops = 2 * size**3 * reps / (time.perf_counter() - t) / 1e9
        print(f"matmul {size}x{size} {dtype.name} threads {a.threads}: {gflops:,.1f} GFLOP/s")
        return
    keras.mixed_precision.set_global_policy(a.precision)
    keras.utils.set_random_seed(1)
    widths = [int(w) for w in a.widths.split(",")]
    n = a.batch * 24
    rng = np.random.default_rng(0)
    x = rng.random((n, 784), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, n), 10)
    layers = keras.layers
    inputs = keras.Input((784,))
    h = inputs
    if a.kind == "cnn":
        h = layers.Reshape((28, 28, 1))(h)
        for f in widths:
            for _ in range(2):
                h = layers.Activation("relu")(
                    layers.BatchNormalization()(layers.Conv2D(f, 3, padding="same", use_bias=False)(h))
                )
            h = layers.MaxPooling2D()(h)
        h = layers.Flatten()(h)
        widths = [256]
    for w in widths:
        h = layers.Activation("relu")(layers.BatchNormalization()(layers.Dense(w, use_bias=False)(h)))
    model = keras.Model(inputs, layers.Dense(10, activation="softmax", dtype="float32")(h))
    model.compile(keras.optimizers.AdamW(1e-3), "categorical_crossentropy")
    model.fit(x[: a.batch * 2], y[: a.batch * 2], batch_size=a.batch, epochs=1, verbose=0)
    t = time.perf_counter()
    model.fit(x, y, batch_size=a.batch, epochs=1, verbose=0)
    print(
        f"{a.kind} {a.widths} batch {a.batch} {a.precision} threads {a.threads}: {n / (time.perf_counter() - t):,.0f} samples/s"
    )


if __name__ == "__main__":
    main()
