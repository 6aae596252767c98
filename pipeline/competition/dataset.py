"""Read and validate the competition CSVs into arrays; build the demo set.

Validation happens at this boundary, once: every later stage may assume
``x`` is ``(n, 784) uint8``, ``y`` holds digits 0-9 with enough rows of each
class for the folds, and ``x_test`` has the same 784 columns.  A violation is
one line naming the file, the line (as an editor numbers it: the header is
line 1) and the column.

pyarrow's reader parses good files; only a file it refuses is scanned again,
slowly, by `pipeline.competition.bad_cells` to name the culprit.  Parsed arrays are kept by
`pipeline.competition.array_cache`, keyed on the SHA-256 of the file, hashed on every run.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.competition import array_cache, bad_cells
from pipeline.core import atomic_files
from pipeline.core.errors import BadInputError
from pipeline.core.text import quoted

PIXELS = 784
SIDE = 28
CLASSES = 10
PIXEL_COLUMNS = tuple(f"pixel{i}" for i in range(PIXELS))
TRAIN_COLUMNS = ("label",) + PIXEL_COLUMNS
TEST_COLUMNS = PIXEL_COLUMNS
_READ_REASONS = {errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EIO: "input/output error"}


@dataclass(frozen=True)
class Dataset:
    """The validated competition data, as arrays."""

    x: np.ndarray  # (n, 784) uint8, training images
    y: np.ndarray  # (n,) int64, labels 0-9
    x_test: np.ndarray  # (m, 784) uint8, images to predict
    files: dict = field(default_factory=dict)  # {"train.csv": {"sha256", "rows"}, "test.csv": ...}


def _fail(path: Path, message: str) -> BadInputError:
    return BadInputError(f"{path}: {message}")


def _unreadable(path: Path, error: OSError) -> BadInputError:
    reason = _READ_REASONS.get(error.errno or 0) or error.strerror or str(error)
    return _fail(path, f"cannot read the file: {reason}")


def _stat(path: Path) -> os.stat_result | None:
    """`path`'s status, None if it does not exist; any other failure (permissions) is reported, not taken as absence."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise _unreadable(path, e) from None


def _require_file(path: Path) -> None:
    st = _stat(path)
    if st is None:
        raise _fail(path, "file not found (run `digits download`, or point --data-dir at the competition files)")
    if not stat.S_ISREG(st.st_mode):
        raise _fail(path, "not a regular file (expected the competition CSV)")


def _highest(expected: Sequence[str]) -> tuple[int, ...]:
    """The largest value each column may hold: a label is a digit, a pixel a byte."""
    return tuple(CLASSES - 1 if name == "label" else 255 for name in expected)


def _refused(path: Path, expected: tuple[str, ...], why: str) -> BadInputError:
    """The error for a file the fast reader refused: the slow scan names the line and column."""
    try:
        fault = bad_cells.first_fault(path, expected, _highest(expected))
    except OSError as e:
        return _unreadable(path, e)
    # Only if the scan and the fast reader disagree (a bug): say what pyarrow said rather than nothing.
    return _fail(path, fault or f"cannot be parsed (pyarrow: {quoted(why)})")


def read_csv(path: str | Path, expected: tuple[str, ...]) -> np.ndarray:
    """Parse a competition CSV into a ``(rows, len(expected)) uint8`` array, or raise naming line and column."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    _require_file(path)
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                # uint8 refuses -1 and 256 itself; no null values, so an empty cell is refused, not a NaN.
                column_types={c: pa.uint8() for c in expected},
                null_values=[],
                strings_can_be_null=False,
            ),
        )
        names = tuple(table.column_names)  # decoded only here: a non-UTF-8 header raises now
    except OSError as e:  # includes pyarrow's own I/O errors (pa.ArrowIOError is OSError)
        raise _unreadable(path, e) from None
    except (pa.ArrowException, UnicodeDecodeError) as e:
        raise _refused(path, expected, str(e)) from None
    if names != expected:
        raise _refused(path, expected, f"header {names[:3]}...")
    if table.num_rows == 0:
        raise _fail(path, "no data rows after the header")
    arr = np.vstack([batch.to_tensor(row_major=True).to_numpy() for batch in table.to_batches()])
    if (arr > np.array(_highest(expected), dtype=np.uint8)).any():
        raise _refused(path, expected, "a value above its column's range")
    return arr


def load_array(
    path: Path, expected: tuple[str, ...], log: Callable[[str], None] = lambda s: None
) -> tuple[np.ndarray, str]:
    """The parsed CSV as uint8 and the SHA-256 of its bytes, from the cache when it holds this exact file."""
    path = Path(path)
    _require_file(path)
    try:
        digest = atomic_files.sha256(path)
    except OSError as e:
        raise _unreadable(path, e) from None
    arr = array_cache.load(path, digest, len(expected), log)
    if arr is None:
        arr = read_csv(path, expected)
        try:
            again = atomic_files.sha256(path)  # 0.06 s, only when parsing: the parse must be of the hashed bytes
        except OSError as e:
            raise _unreadable(path, e) from None
        if again != digest:
            raise _fail(path, "the file changed while it was being read (is a download still writing it?)")
        array_cache.store(path, digest, arr, log)
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
    st = _stat(data_dir)
    if st is None or not stat.S_ISDIR(st.st_mode):
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


DEMO_MARK = ".digits-demo"  # in a folder the demo wrote: its own, which it may write again


def prepare_demo(data_dir: str | Path) -> bool:
    """Make sure `data_dir` holds a competition for ``--demo``; True when the demo's was written there now.

    A folder with a train.csv is used as it is.  Otherwise the demo writes
    its own files, but only into a folder that is missing, empty or its own
    (it holds `DEMO_MARK`): a folder with the user's test.csv and no
    train.csv was silently overwritten before.
    """
    data_dir = Path(data_dir)
    if (data_dir / "train.csv").is_file():
        return False
    try:
        present = sorted(p.name for p in data_dir.iterdir() if p.name != array_cache.CACHE)
    except FileNotFoundError:
        present = []
    except OSError as e:
        raise _unreadable(data_dir, e) from None
    if present and DEMO_MARK not in present:
        raise BadInputError(
            f"{data_dir}: holds files that are not the demo's ({', '.join(present[:3])}"
            f"{', ...' if len(present) > 3 else ''}); --demo writes its competition only into an empty folder or "
            "its own: give another --data-dir"
        )
    write_demo(data_dir)
    return True


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

    atomic_files.write_bytes(data_dir / "train.csv", csv(TRAIN_COLUMNS, np.column_stack([train_y, train_x])))
    atomic_files.write_bytes(data_dir / "test.csv", csv(TEST_COLUMNS, test_x))
    sample = np.column_stack([np.arange(1, test_rows + 1), np.zeros(test_rows, dtype=np.int64)])
    atomic_files.write_bytes(data_dir / "sample_submission.csv", csv(("ImageId", "Label"), sample))
    atomic_files.write_text(data_dir / DEMO_MARK, "written by digits run --demo; it may write here again\n")
    return data_dir
