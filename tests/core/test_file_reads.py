"""Reading only regular files: a FIFO, a folder or a device where a file is read is one line, never a hang."""

from __future__ import annotations

import os
import zipfile

import pytest

from pipeline.core import atomic_files, file_reads
from pipeline.core.errors import BadInputError
from tests.helpers import make_fifo


def test_a_regular_file_and_a_link_to_one_are_read(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "link").symlink_to(tmp_path / "a.txt")
    assert file_reads.read_text(tmp_path / "a.txt") == "hello"
    assert file_reads.read_bytes(tmp_path / "link") == b"hello"
    assert file_reads.regular_file(tmp_path / "link") == tmp_path / "link"


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = make_fifo(tmp_path / "report.json")
    with pytest.raises(BadInputError, match=r"report\.json: not a regular file$"):
        file_reads.read_text(fifo)
    with pytest.raises(BadInputError, match="not a regular file"):
        file_reads.regular_file(fifo)
    with pytest.raises(BadInputError, match="not a regular file"):
        atomic_files.sha256(fifo)  # submission.csv while it is hashed


def test_a_folder_and_a_device_are_refused(tmp_path):
    with pytest.raises(BadInputError, match="not a regular file"):
        file_reads.read_bytes(tmp_path)
    if os.path.exists("/dev/zero"):
        with pytest.raises(BadInputError, match="not a regular file"):
            file_reads.read_bytes("/dev/zero")  # would never end


def test_a_missing_file_keeps_its_own_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        file_reads.read_bytes(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError):
        file_reads.regular_file(tmp_path / "nothing")


def test_unreadable_covers_what_a_damaged_saved_file_raises(tmp_path):
    assert issubclass(file_reads.NotRegularFile, file_reads.UNREADABLE)
    assert zipfile.BadZipFile in file_reads.UNREADABLE and OSError in file_reads.UNREADABLE
