"""Scratch, kept because benchmarks/RESULTS.md quotes its figures: one fold on the benchmark split.

Variants: early stopping (none | on the fold's validation rows | on an inner 10% of its training rows),
model (mlp | cnn | wide = cnn-wide), precision, and test-time shifts.  It imports the package as it was at
commit 785dadf (before the layers were folders), from a worktree at /work/explore:

    git worktree add /work/explore 785dadf
    python benchmarks/scratch/one_fold.py --model mlp --es val      # >> one_fold_early_stopping.jsonl

Its output lines are kept beside it (one_fold_*.jsonl).  Not linted: scratch.
"""
import os, sys, json, time, math, argparse
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, "/work/explore"); sys.path.insert(0, "/work/explore/benchmarks")
p = argparse.ArgumentParser()
p.add_argument("--model", default="mlp")            # mlp | cnn | wide
p.add_argument("--epochs", type=int, default=40)
p.add_argument("--batch", type=int, default=512)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--es", default="none")               # none | val | inner
p.add_argument("--patience", type=int, default=10)
p.add_argument("--precision", default="float32")
p.add_argument("--fold", type=int, default=0)
p.add_argument("--seed", type=int, default=7)
p.add_argument("--smoothing", type=float, default=0.1)
p.add_argument("--wd", type=float, default=1e-4)
p.add_argument("--rotation", type=float, default=12.0)
p.add_argument("--shift", type=float, default=2.5)
p.add_argument("--zoom", type=float, default=0.1)
p.add_argument("--shear", type=float, default=0.15)
p.add_argument("--save", default="")
a = p.parse_args()
import numpy as np, tensorflow as tf, keras
from pipeline.config import AugmentConfig, TrainConfig
from pipeline.model import distort, compile_model
from holdout import load_real, split, DEFAULT_ZIP
import tempfile
tf.config.threading.set_intra_op_parallelism_threads(2); tf.config.threading.set_inter_op_parallelism_threads(2)
tf.config.experimental.enable_op_determinism()
if os.path.exists("/tmp/explore/xy.npz"):
    z = np.load("/tmp/explore/xy.npz"); x_tr, x_ho, y_tr, y_ho = z["x_tr"], z["x_ho"], z["y_tr"], z["y_ho"]
else:
    with tempfile.TemporaryDirectory() as tmp:
        x, y, _ = load_real(DEFAULT_ZIP, __import__("pathlib").Path(tmp))
    x_tr, x_ho, y_tr, y_ho = split(x, y)
    np.savez("/tmp/explore/xy.npz", x_tr=x_tr, x_ho=x_ho, y_tr=y_tr, y_ho=y_ho)
from sklearn.model_selection import StratifiedKFold
tr, va = list(StratifiedKFold(5, shuffle=True, random_state=a.seed).split(np.zeros(len(y_tr)), y_tr))[a.fold]
keras.mixed_precision.set_global_policy(a.precision)
keras.utils.set_random_seed(a.seed * 100 + a.fold)
aug = AugmentConfig(rotation=a.rotation, shift=a.shift, zoom=a.zoom, shear=a.shear)
inner = None
if a.es == "inner":
    rng = np.random.default_rng(a.seed)
    perm = rng.permutation(len(tr)); k = len(tr) // 10
    inner, tr = tr[perm[:k]], tr[perm[k:]]
L = keras.layers
def build():
    i = keras.Input((784,))
    if a.model == "mlp":
        h = i
        for w in (1024, 512):
            h = L.Dropout(0.1)(L.Activation("relu")(L.BatchNormalization()(L.Dense(w, use_bias=False)(h))))
    elif a.model == "cnn":
        h = L.Reshape((28,28,1))(i)
        for f in (16, 32):
            for _ in range(2):
                h = L.Activation("relu")(L.BatchNormalization(momentum=0.9)(L.Conv2D(f,3,padding="same",use_bias=False)(h)))
            h = L.Dropout(0.25)(L.MaxPooling2D()(h))
        h = L.Flatten()(h)
        h = L.Dropout(0.25)(L.Activation("relu")(L.BatchNormalization(momentum=0.9)(L.Dense(256, use_bias=False)(h))))
    else:  # wide: 32C3-32C3-32C5S2, 64C3-64C3-64C5S2, 128C4
        h = L.Reshape((28,28,1))(i)
        for f in (32, 64):
            h = L.BatchNormalization(momentum=0.9)(L.Conv2D(f,3,activation="relu")(h))
            h = L.BatchNormalization(momentum=0.9)(L.Conv2D(f,3,activation="relu")(h))
            h = L.BatchNormalization(momentum=0.9)(L.Conv2D(f,5,strides=2,padding="same",activation="relu")(h))
            h = L.Dropout(0.4)(h)
        h = L.BatchNormalization(momentum=0.9)(L.Conv2D(128,4,activation="relu")(h))
        h = L.Dropout(0.4)(L.Flatten()(h))
    return keras.Model(i, L.Dense(10, activation="softmax", dtype="float32")(h))
model = build()
steps = math.ceil(len(tr) / a.batch)
train_cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch, learning_rate=a.lr, label_smoothing=a.smoothing, weight_decay=a.wd)
compile_model(model, train_cfg, steps)
xs, ys = tf.constant(x_tr[tr]), tf.constant(y_tr[tr].astype(np.int32)); n = len(tr); seed = tf.constant(a.seed*100+a.fold, tf.int64)
def epoch(e):
    order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed, e]))
    def load(i, idx):
        im = tf.cast(tf.gather(xs, idx), tf.float32) / 255.0
        im = distort(im, tf.stack([seed * 7919 + e, i]), aug)
        return im, tf.one_hot(tf.gather(ys, idx), 10)
    return tf.data.Dataset.from_tensor_slices(order).batch(a.batch).enumerate().map(load)
ds = tf.data.Dataset.range(a.epochs).flat_map(epoch).prefetch(4)
f = lambda x: x.astype(np.float32) / 255.0
xv, yv = f(x_tr[va]), keras.utils.to_categorical(y_tr[va], 10)
cbs = []
if a.es == "val":
    vd = (xv, yv); cbs.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=a.patience, restore_best_weights=True))
elif a.es == "inner":
    vd = (f(x_tr[inner]), keras.utils.to_categorical(y_tr[inner], 10)); cbs.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=a.patience, restore_best_weights=True))
else:
    vd = (xv, yv)
t = time.perf_counter()
hist = model.fit(ds, steps_per_epoch=steps, epochs=a.epochs, validation_data=vd, validation_batch_size=2048, callbacks=cbs, verbose=0)
sec = time.perf_counter() - t
def shifted(x, dx, dy):
    im = x.reshape(-1, 28, 28)
    out = np.roll(im, (dy, dx), axis=(1, 2))
    if dy > 0: out[:, :dy] = 0
    if dy < 0: out[:, dy:] = 0
    if dx > 0: out[:, :, :dx] = 0
    if dx < 0: out[:, :, dx:] = 0
    return out.reshape(-1, 784)
res = {"args": vars(a), "seconds": round(sec), "sps": round(len(tr) * len(hist.history["loss"]) / sec), "epochs_run": len(hist.history["loss"])}
pv = model.predict(xv, batch_size=2048, verbose=0); ph = model.predict(f(x_ho), batch_size=2048, verbose=0)
res["val"] = float(np.mean(pv.argmax(1) == y_tr[va])); res["holdout"] = float(np.mean(ph.argmax(1) == y_ho))
vl = hist.history.get("val_loss", [])
res["best_val_epoch"] = int(np.argmin(vl)) + 1 if vl else None
# TTA: average over shifts by one pixel
tta_v, tta_h = pv.astype(np.float64), ph.astype(np.float64)
for dx, dy in ((1,0),(-1,0),(0,1),(0,-1)):
    tta_v += model.predict(f(shifted(x_tr[va], dx, dy)), batch_size=2048, verbose=0)
    tta_h += model.predict(f(shifted(x_ho, dx, dy)), batch_size=2048, verbose=0)
res["val_tta"] = float(np.mean(tta_v.argmax(1) == y_tr[va])); res["holdout_tta"] = float(np.mean(tta_h.argmax(1) == y_ho))
if a.save:
    np.savez(a.save, pv=pv, ph=ph, tv=tta_v/5, th=tta_h/5, va=va)
print(json.dumps(res), flush=True)
