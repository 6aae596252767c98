"""Read and validate the competition CSVs, cache the parsed arrays, build the demo set.

Validation happens at this boundary, once: every later stage may assume
``x`` is ``(n, 784) uint8``, ``y`` holds digits 0-9 with enough rows of each
class for the folds, and ``x_test`` has the same 784 columns.  A violation
names the file, the line (as an editor numbers it: the header is line 1) and
the column.

Parsing 76 MB of CSV costs seconds, so parsed arrays are cached beside the
CSVs in ``.cache/``, keyed on the file's SHA-256; the hash itself is
remembered against the file's size and mtime, so a second run neither parses
nor re-hashes an unchanged file.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import files
from pipeline.errors import BadInputError, StorageError

PIXELS = 784
SIDE = 28
CLASSES = 10
PIXEL_COLUMNS = tuple(f"pixel{i}" for i in range(PIXELS))
TRAIN_COLUMNS = ("label",) + PIXEL_COLUMNS
TEST_COLUMNS = PIXEL_COLUMNS
CACHE = ".cache"
CACHE_VERSION = 1
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Dataset:
    """The validated competition data, as arrays."""

    x: np.ndarray  # (n, 784) uint8, training images
    y: np.ndarray  # (n,) int64, labels 0-9
    x_test: np.ndarray  # (m, 784) uint8, images to predict
    files: dict = field(default_factory=dict)  # {"train.csv": {"sha256", "rows"}, "test.csv": ...}


def _fail(path: Path, message: str) -> BadInputError:
    return BadInputError(f"{path}: {message}")


def _check_header(path: Path, expected: tuple[str, ...]) -> None:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            header = f.readline().rstrip("\r\n")
    except UnicodeDecodeError:
        raise _fail(path, "line 1: not a UTF-8 text CSV file") from None
    if not header:
        raise _fail(path, "file is empty (expected a header line)")
    columns = [c.strip().strip('"') for c in header.split(",")]
    for i, (got, want) in enumerate(zip(columns, expected)):
        if got != want:
            raise _fail(path, f"line 1, column {i + 1}: header is {got!r}, expected {want!r}")
    if len(columns) != len(expected):
        what = "missing columns after" if len(columns) < len(expected) else "unexpected extra column after"
        last = columns[min(len(columns), len(expected)) - 1]
        raise _fail(
            path,
            f"line 1: {what} {last!r} (expected {len(expected)} columns: {expected[0]}, ..., {expected[-1]}; got {len(columns)})",
        )


def _locate_bad_cell(path: Path, expected: tuple[str, ...], lo: int, hi: int, label: bool) -> str:
    """Find the first offending cell by a slow, exact scan (only runs on failure)."""
    with open(path, encoding="utf-8", newline="") as f:
        f.readline()
        for lineno, line in enumerate(f, start=2):
            cells = line.rstrip("\r\n").split(",")
            if line.strip() == "":
                return f"line {lineno}: empty line"
            if len(cells) != len(expected):
                return f"line {lineno}: {len(cells)} cells, expected {len(expected)}"
            for name, cell in zip(expected, cells):
                cell = cell.strip()
                top = 9 if (label and name == "label") else hi
                if cell == "":
                    return f"line {lineno}, column {name}: empty cell"
                if not _INTEGER.fullmatch(cell):  # as strict as the fast parser: no "1.0", "+5" or "1_0"
                    return f"line {lineno}, column {name}: {cell!r} is not an integer"
                value = int(cell)
                if not lo <= value <= top:
                    return f"line {lineno}, column {name}: {cell} is outside {lo}-{top}"
    return "unreadable content"


def read_csv(path: str | Path, expected: tuple[str, ...]) -> np.ndarray:
    """Parse a competition CSV into an int array, or raise naming line and column.

    The fast path (pyarrow's multithreaded reader) handles good files; only a
    file that fails it is rescanned line by line to name the culprit.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file not found (run `digits download`, or point --data-dir at the competition files)")
    _check_header(path, expected)
    label = expected[0] == "label"
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.int64() for c in expected}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, OSError):
        raise _fail(path, _locate_bad_cell(path, expected, 0, 255, label)) from None
    if table.num_rows == 0:
        raise _fail(path, "no data rows after the header")
    arr = np.column_stack([column.to_numpy(zero_copy_only=False) for column in table.columns])
    if np.issubdtype(arr.dtype, np.floating) or arr.dtype == object:
        raise _fail(path, _locate_bad_cell(path, expected, 0, 255, label))
    pixels = arr[:, 1:] if label else arr
    if pixels.min() < 0 or pixels.max() > 255 or (label and (arr[:, 0].min() < 0 or arr[:, 0].max() > 9)):
        raise _fail(path, _locate_bad_cell(path, expected, 0, 255, label))
    return arr


def _hash_index(cache_dir: Path) -> dict:
    try:
        return json.loads((cache_dir / "hashes.json").read_text())
    except (OSError, ValueError):
        return {}


def file_hash(path: Path, cache_dir: Path | None = None) -> str:
    """SHA-256 of a file, remembered against its size and mtime to skip re-hashing."""
    st = path.stat()
    key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    index = _hash_index(cache_dir) if cache_dir else {}
    entry = index.get(path.name)
    if entry and all(entry.get(k) == v for k, v in key.items()) and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = files.sha256(path)
    if cache_dir:
        index[path.name] = {**key, "sha256": digest}
        try:
            files.write_json(cache_dir / "hashes.json", index)
        except StorageError:
            pass  # the cache is an optimisation: a read-only data dir still works
    return digest


def load_array(
    path: Path, expected: tuple[str, ...], log: Callable[[str], None] = lambda s: None
) -> tuple[np.ndarray, str]:
    """The parsed CSV as uint8, from the cache when the file is unchanged."""
    cache_dir = path.parent / CACHE
    if not path.is_file():
        raise _fail(path, "file not found (run `digits download`, or point --data-dir at the competition files)")
    digest = file_hash(path, cache_dir)
    cached = cache_dir / f"{path.stem}-v{CACHE_VERSION}-{digest[:20]}.npy"
    if cached.is_file():
        try:
            arr = np.load(cached, allow_pickle=False)
            if arr.dtype == np.uint8 and arr.ndim == 2 and arr.shape[1] == len(expected):
                return arr, digest
        except (OSError, ValueError, EOFError):
            pass
        log(f"cache {cached} is corrupt; parsing {path.name} again")
    arr = read_csv(path, expected).astype(np.uint8)
    try:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        for old in cache_dir.glob(f"{path.stem}-v*.npy"):
            old.unlink(missing_ok=True)
        files.write_bytes(cached, buf.getvalue())
    except (OSError, StorageError):
        log(f"could not write the parsed-array cache in {cache_dir}; continuing without it")
    return arr, digest


def check_classes(y: np.ndarray, folds: int, path: str | Path = "train.csv") -> None:
    """Stratified k-fold needs every digit at least `folds` times."""
    counts = np.bincount(y, minlength=CLASSES)
    for digit, count in enumerate(counts):
        if count < folds:
            raise BadInputError(
                f"{path}: label {digit} has {count} rows; {folds} folds need at least {folds} of each digit (lower --folds or fix the file)"
            )


def load(data_dir: str | Path, folds: int = 2, log: Callable[[str], None] = lambda s: None) -> Dataset:
    """Load and validate ``train.csv`` and ``test.csv`` from `data_dir`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BadInputError(
            f"{data_dir}: data directory not found (run `digits download --data-dir {data_dir}`, or use --demo)"
        )
    train, train_hash = load_array(data_dir / "train.csv", TRAIN_COLUMNS, log)
    test, test_hash = load_array(data_dir / "test.csv", TEST_COLUMNS, log)
    y = train[:, 0].astype(np.int64)
    check_classes(y, folds, data_dir / "train.csv")
    return Dataset(
        x=np.ascontiguousarray(train[:, 1:]),
        y=y,
        x_test=test,
        files={
            "train.csv": {"sha256": train_hash, "rows": int(len(train))},
            "test.csv": {"sha256": test_hash, "rows": int(len(test))},
        },
    )


def write_demo(data_dir: str | Path, test_rows: int = 300, seed: int = 0) -> Path:
    """Write a small competition built from scikit-learn's 8x8 digits, in Kaggle's CSV format.

    Each 8x8 image (grey levels 0-16) is scaled to 20x20 and centred in a
    28x28 frame, as MNIST centres its digits, so the real pipeline runs on it
    unchanged.  No network, no Kaggle account.
    """
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    data_dir = Path(data_dir)
    digits = load_digits()
    small = digits.images.astype(np.float64) / 16.0
    big = np.clip(zoom(small, (1, 2.5, 2.5), order=1), 0, 1)  # (n, 20, 20)
    frames = np.zeros((len(big), SIDE, SIDE))
    frames[:, 4:24, 4:24] = big
    pixels = np.rint(frames.reshape(len(big), PIXELS) * 255).astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(pixels))
    pixels, labels = pixels[order], digits.target[order].astype(np.int64)
    train_x, train_y = pixels[test_rows:], labels[test_rows:]
    test_x = pixels[:test_rows]

    def csv(columns: tuple[str, ...], arr: np.ndarray) -> bytes:
        buf = io.StringIO()
        buf.write(",".join(columns) + "\n")
        np.savetxt(buf, arr, fmt="%d", delimiter=",")
        return buf.getvalue().encode()

    files.write_bytes(data_dir / "train.csv", csv(TRAIN_COLUMNS, np.column_stack([train_y, train_x])))
    files.write_bytes(data_dir / "test.csv", csv(TEST_COLUMNS, test_x))
    sample = np.column_stack([np.arange(1, test_rows + 1), np.zeros(test_rows, dtype=np.int64)])
    files.write_bytes(data_dir / "sample_submission.csv", csv(("ImageId", "Label"), sample))
    return data_dir
