"""Does TensorFlow's thread count change the arithmetic?  The same tiny training with 1, 2 and 4 threads.

Each thread count runs in its own process (TensorFlow fixes its pools at
start-up), with op determinism on and the same seed; the script prints a hash
of the predictions per thread count.  Different hashes mean the bytes depend
on the thread count, which is why `train.threads` is part of the config.

    python benchmarks/threads.py [mlp|cnn]
"""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import os, sys, hashlib
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf, keras
n, kind = int(sys.argv[1]), sys.argv[2]
tf.config.threading.set_intra_op_parallelism_threads(n)
tf.config.threading.set_inter_op_parallelism_threads(n)
tf.config.experimental.enable_op_determinism()
keras.utils.set_random_seed(1)
rng = np.random.default_rng(0)
x = rng.random((4096, 784), dtype=np.float32)
y = keras.utils.to_categorical(rng.integers(0, 10, 4096), 10)
L = keras.layers
i = keras.Input((784,))
if kind == "mlp":
    h = L.Dense(512)(L.Activation("relu")(L.BatchNormalization()(L.Dense(1024, use_bias=False)(i))))
else:
    h = L.Reshape((28, 28, 1))(i)
    h = L.MaxPooling2D()(L.Conv2D(32, 3, padding="same")(L.Activation("relu")(L.BatchNormalization()(L.Conv2D(32, 3, padding="same", use_bias=False)(h)))))
    h = L.Dense(256)(L.Flatten()(h))
m = keras.Model(i, L.Dense(10, activation="softmax")(h))
m.compile(keras.optimizers.AdamW(1e-3), "categorical_crossentropy")
m.fit(x, y, batch_size=256, epochs=2, verbose=0, shuffle=False)
print(hashlib.sha256(m.predict(x[:2048], batch_size=2048, verbose=0).tobytes()).hexdigest()[:16])
"""


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "mlp"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for threads in (1, 2, 4, 2):
        out = subprocess.run([sys.executable, "-c", CHILD, str(threads), kind], capture_output=True, text=True, env=env)
        print(f"{kind}, {threads} thread(s): {out.stdout.strip() or out.stderr.strip()[-200:]}")
    print("(2 threads twice: the same hash shows a rerun is byte-identical)")


if __name__ == "__main__":
    main()
