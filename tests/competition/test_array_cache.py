"""The parsed-array cache and file access: what is loaded is what the CSV says, and unreadable files are one line."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pipeline.competition import dataset
from pipeline.core import atomic_files
from pipeline.core.errors import BadInputError
from tests.helpers import write_competition


def _edit_in_place(path, old: bytes, new: bytes) -> None:
    """Change the first `old` to `new` (same length) and put the size and mtime back as they were."""
    assert len(old) == len(new)
    st = path.stat()
    raw = path.read_bytes()
    path.write_bytes(raw.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_a_file_edited_in_place_with_same_size_and_mtime_is_read_again(tmp_path):
    write_competition(tmp_path)
    first = dataset.load(tmp_path)
    _edit_in_place(tmp_path / "train.csv", b"\n0,", b"\n1,")  # the first row labelled 0 becomes a 1
    second = dataset.load(tmp_path)
    assert second.files["train.csv"]["sha256"] == atomic_files.sha256(tmp_path / "train.csv")
    assert second.files["train.csv"]["sha256"] != first.files["train.csv"]["sha256"]
    assert (second.y == 1).sum() == (first.y == 1).sum() + 1


@pytest.mark.parametrize("index", [{"train.csv": 5}, [1, 2], "null", None])
def test_a_hash_index_left_by_an_older_version_is_ignored(tmp_path, index):
    """Older versions remembered hashes in .cache/hashes.json against size and mtime; nothing reads it now."""
    write_competition(tmp_path)
    first = dataset.load(tmp_path)
    st = (tmp_path / "train.csv").stat()
    if index is None:  # a well-formed entry that lies: right size and mtime, another file's hash
        index = {"train.csv": {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": "0" * 64}}
    (tmp_path / ".cache" / "hashes.json").write_text(json.dumps(index))
    again = dataset.load(tmp_path)
    assert again.files == first.files
    assert again.files["train.csv"]["sha256"] == atomic_files.sha256(tmp_path / "train.csv")


def _zero_cached_arrays(cache_dir) -> int:
    """Rewrite every cached array as zeros, in whatever container it is stored, keeping everything else."""
    changed = 0
    for path in cache_dir.iterdir():
        if path.suffix == ".npy":
            np.save(path, np.zeros_like(np.load(path)))
            changed += 1
        elif path.suffix == ".npz":
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            for k, v in arrays.items():
                if v.ndim == 2:
                    arrays[k] = np.zeros_like(v)
                    changed += 1
            with open(path, "wb") as f:
                np.savez(f, **arrays)
    return changed


def test_a_cached_array_changed_after_it_was_written_is_not_used(tmp_path):
    write_competition(tmp_path)
    first = dataset.load(tmp_path)
    assert _zero_cached_arrays(tmp_path / ".cache") == 2
    warnings: list[str] = []
    second = dataset.load(tmp_path, log=warnings.append)
    assert np.array_equal(second.x, first.x) and np.array_equal(second.x_test, first.x_test)
    assert len(warnings) == 2, warnings  # one line per file
    assert all("does not match what was written" in w and "parsing" in w and "\n" not in w for w in warnings)
    warnings.clear()
    dataset.load(tmp_path, log=warnings.append)
    assert warnings == []  # the re-parse rewrote a good cache


def test_a_cache_from_another_csv_under_the_same_name_is_not_used(tmp_path):
    """The cache file name holds only a prefix of the CSV's hash; the full hash inside is checked."""
    write_competition(tmp_path, seed=0)
    dataset.load(tmp_path)
    cached = next((tmp_path / ".cache").glob("train-*"))
    keep = cached.read_bytes()
    write_competition(tmp_path, seed=4)
    digest = atomic_files.sha256(tmp_path / "train.csv")
    for old in (tmp_path / ".cache").glob("train-*"):
        old.unlink()
    (tmp_path / ".cache" / cached.name.replace(cached.name.split("-")[2][:20], digest[:20])).write_bytes(keep)
    warnings: list[str] = []
    ds = dataset.load(tmp_path, log=warnings.append)
    assert ds.files["train.csv"]["sha256"] == digest and any("does not match" in w for w in warnings), warnings


def test_an_unreadable_csv_is_one_line_when_hashing(tmp_path, monkeypatch):
    write_competition(tmp_path)
    real = atomic_files.sha256

    def sha256(path, *a, **k):
        if os.path.basename(path) == "train.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(atomic_files, "sha256", sha256)
    with pytest.raises(BadInputError) as e:
        dataset.load(tmp_path)
    assert str(e.value) == f"{tmp_path / 'train.csv'}: cannot read the file: permission denied"


def test_an_unreadable_csv_is_one_line_when_parsing(tmp_path, monkeypatch):
    import pyarrow.csv as pacsv

    write_competition(tmp_path)

    def read_csv(path, *a, **k):
        raise PermissionError(13, f"Failed to open local file '{path}'. Detail: [errno 13] Permission denied")

    monkeypatch.setattr(pacsv, "read_csv", read_csv)
    with pytest.raises(BadInputError) as e:
        dataset.read_csv(tmp_path / "train.csv", dataset.TRAIN_COLUMNS)
    assert str(e.value) == f"{tmp_path / 'train.csv'}: cannot read the file: permission denied"


def test_an_unreadable_csv_for_the_locator_is_one_line(tmp_path, monkeypatch):
    """The fast reader refused the file, then the slow scan could not open it (permissions changed between)."""
    import builtins

    (tmp_path / "train.csv").write_text("label\nx\n")
    real_open = builtins.open

    def deny(file, *a, **k):
        if str(file).endswith("train.csv"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(BadInputError) as e:
        dataset.read_csv(tmp_path / "train.csv", ("label",))
    assert str(e.value) == f"{tmp_path / 'train.csv'}: cannot read the file: permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: chmod 000 does not stop root reading a file")
def test_a_chmod_000_csv_is_one_line(tmp_path):
    write_competition(tmp_path)
    (tmp_path / "train.csv").chmod(0)
    try:
        with pytest.raises(BadInputError) as e:
            dataset.load(tmp_path)
    finally:
        (tmp_path / "train.csv").chmod(0o644)
    assert str(e.value) == f"{tmp_path / 'train.csv'}: cannot read the file: permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: directory permissions do not stop root")
def test_a_csv_in_an_unsearchable_folder_is_not_called_missing(tmp_path):
    write_competition(tmp_path / "data")
    (tmp_path / "data").chmod(0o600)  # readable listing, but no stat or open inside
    try:
        with pytest.raises(BadInputError) as e:
            dataset.load(tmp_path / "data")
    finally:
        (tmp_path / "data").chmod(0o755)
    assert str(e.value) == f"{tmp_path / 'data' / 'train.csv'}: cannot read the file: permission denied"


def test_a_file_replaced_between_hashing_and_parsing_is_not_cached_under_the_old_hash(tmp_path, monkeypatch):
    write_competition(tmp_path, seed=0)
    parse = dataset.read_csv

    def replaced_then_parsed(path, expected):
        if path.name == "train.csv":
            write_competition(tmp_path, seed=3)  # a download finishing just after the hash was taken
        return parse(path, expected)

    monkeypatch.setattr(dataset, "read_csv", replaced_then_parsed)
    with pytest.raises(BadInputError) as e:
        dataset.load(tmp_path)
    assert (
        str(e.value)
        == f"{tmp_path / 'train.csv'}: the file changed while it was being read (is a download still writing it?)"
    )
    assert not list((tmp_path / ".cache").glob("train-*"))
    monkeypatch.undo()
    assert dataset.load(tmp_path).files["train.csv"]["sha256"] == atomic_files.sha256(tmp_path / "train.csv")


def test_a_folder_where_a_csv_should_be_is_named_as_such(tmp_path):
    write_competition(tmp_path)
    (tmp_path / "test.csv").unlink()
    (tmp_path / "test.csv").mkdir()
    with pytest.raises(BadInputError) as e:
        dataset.load(tmp_path)
    assert str(e.value) == f"{tmp_path / 'test.csv'}: not a regular file (expected the competition CSV)"
