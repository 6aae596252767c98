"""Build, validate and atomically write the competition's submission file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pipeline.core import atomic_files, file_reads
from pipeline.core.errors import BadInputError
from pipeline.core.text import ascii_int, quoted

HEADER = "ImageId,Label"


def render(labels: np.ndarray) -> str:
    """The CSV text Kaggle expects: ImageId 1..N and one Label 0-9 per test row."""
    labels = np.asarray(labels)
    check_labels(labels)
    rows = "\n".join(f"{i},{int(label)}" for i, label in enumerate(labels, start=1))
    return f"{HEADER}\n{rows}\n"


def check_labels(labels: np.ndarray) -> None:
    if labels.ndim != 1 or len(labels) == 0:
        raise BadInputError("submission: expected one label per test row")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
        raise BadInputError("submission: labels must be digits 0-9")


def write(path: str | Path, labels: np.ndarray) -> str:
    """Check and write; returns the file's sha256."""
    text = render(labels)
    atomic_files.write_text(path, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()  # the bytes written, without reading them back


def validate_file(path: str | Path, expected_rows: int | None = None) -> int:
    """Check a submission file as Kaggle would; return its row count.

    Header exactly ``ImageId,Label``; ImageId 1..N, each once; Label a digit
    0-9; both in ASCII digits only (int() would read '٣' as 3, Kaggle reads
    no label); N equal to test.csv's rows when `expected_rows` is given.
    """
    path = Path(path)
    try:
        lines = file_reads.read_text(path).splitlines()  # a FIFO is refused, never waited on
    except FileNotFoundError:
        raise BadInputError(f"{path}: submission file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"{path}: cannot read submission: {e}") from None
    if not lines or lines[0].strip().replace('"', "") != HEADER:
        got = lines[0].strip() if lines else "an empty file"
        raise BadInputError(f"{path}: line 1: header must be {HEADER!r}, got {got!r}")
    seen: set[int] = set()
    for lineno, line in enumerate(lines[1:], start=2):
        cells = line.strip().split(",")
        if len(cells) != 2:
            raise BadInputError(f"{path}: line {lineno}: expected 2 cells (ImageId,Label), got {len(cells)}")
        image_id, label = ascii_int(cells[0]), ascii_int(cells[1])
        if image_id is None:
            raise BadInputError(
                f"{path}: line {lineno}, column ImageId: {quoted(cells[0])} is not a whole number in digits 0-9"
            )
        if label is None or not 0 <= label <= 9:
            shown = label if label is not None else quoted(cells[1])
            raise BadInputError(f"{path}: line {lineno}, column Label: {shown} is not a digit 0-9")
        if image_id in seen:
            raise BadInputError(f"{path}: line {lineno}, column ImageId: {image_id} appears twice")
        seen.add(image_id)
    n = len(seen)
    if n == 0:
        raise BadInputError(f"{path}: no rows after the header")
    if min(seen) != 1 or max(seen) != n:
        missing = next(i for i in range(1, n + 2) if i not in seen)
        raise BadInputError(f"{path}: column ImageId: must run 1..{n}; {missing} is missing")
    if expected_rows is not None and n != expected_rows:
        raise BadInputError(f"{path}: {n} rows, but test.csv has {expected_rows}")
    return n
