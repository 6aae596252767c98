"""The slow bad-cell locator against the fast reader: same verdict on every file, and short messages."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.competition import dataset
from pipeline.competition.dataset import TEST_COLUMNS, TRAIN_COLUMNS
from pipeline.core.errors import BadInputError
from tests.helpers import table, write_csv

SMALL = ("label", "pixel0", "pixel1")

# Pieces a hostile or careless writer puts in a CSV: every quoting, line-end, whitespace and encoding oddity
# the fast reader has an opinion on.  A cell is a good number half the time, so that a generated file is
# often one oddity away from valid, where the two readers can disagree.
PIECES = st.sampled_from(
    [
        b"0", b"7", b"9", b"10", b"255", b"256", b"007", b"0x1f", b"0XFF", b"0x", b"-0", b"-1", b"+3", b"1.0",
        b" ", b"\t", b'"', b'""', b'"5"', b'"1,2"', b",", b"\n", b"\r\n", b"\r", b"\x00", b"\xff", b"\xc3\xa9",
        b"\xef\xbb\xbf", b"",
    ]
)  # fmt: skip
CELLS = st.one_of(
    st.sampled_from([b"0", b"3", b"9", b"200", b'"5"']), st.lists(PIECES, min_size=1, max_size=3).map(b"".join)
)


def _fast_reader_accepts(raw: bytes) -> bool:
    """What pyarrow alone says, with the types and options read_csv uses, and the header compared as read_csv does."""
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.uint8() for c in SMALL}, null_values=[], strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return False
    labels = table.column(0).to_numpy() if table.num_columns else np.zeros(0)
    return tuple(table.column_names) == SMALL and table.num_rows > 0 and bool((labels <= 9).all())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bom=st.booleans(),
    rows=st.lists(st.lists(CELLS, min_size=1, max_size=4), max_size=4),
    end=st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
@example(bom=False, rows=[[b"9", b'"1,2"']], end=b"\n")  # a row one cell short, the comma inside quotes
@example(bom=False, rows=[[b"9", b"1", b'"2\r\n"']], end=b"\n")  # a line end quoted into the last cell
def test_locator_and_fast_reader_agree_on_every_file(tmp_path_factory, bom, rows, end):
    """Property: a file is refused exactly when pyarrow refuses it, and a refusal names a line, never a shrug."""
    body = end.join(b",".join(row) for row in rows)
    raw = (b"\xef\xbb\xbf" if bom else b"") + b"label,pixel0,pixel1" + end + body
    path = tmp_path_factory.mktemp("agree") / "train.csv"
    path.write_bytes(raw)
    if _fast_reader_accepts(raw):
        dataset.read_csv(path, SMALL)
        return
    with pytest.raises(BadInputError) as e:
        dataset.read_csv(path, SMALL)
    message = str(e.value)
    assert "cannot be parsed" not in message, (raw, message)  # the scan found the fault itself
    assert "line " in message or message.endswith("no data rows after the header"), (raw, message)
    assert "\n" not in message


def test_a_huge_header_line_is_cut_in_the_message(tmp_path):
    huge = "l" * 3_000_000  # past pyarrow's 1 MB block and the csv module's default 128 KiB field limit
    (tmp_path / "train.csv").write_text(huge + "," + ",".join(TRAIN_COLUMNS[1:]) + "\n1" + ",0" * 784 + "\n")
    with pytest.raises(BadInputError) as e:
        dataset.read_csv(tmp_path / "train.csv", TRAIN_COLUMNS)
    message = str(e.value)
    assert "line 1, column 1: header is 'llllllll" in message and "(3,000,000 characters), expected 'label'" in message
    assert len(message) < 250, message[:500]


def test_a_huge_extra_header_column_is_cut_in_the_message(tmp_path):
    header = ",".join(TEST_COLUMNS) + "," + "x" * 1_000_000
    (tmp_path / "test.csv").write_text(header + "\n" + ",".join(["0"] * 785) + "\n")
    with pytest.raises(BadInputError) as e:
        dataset.read_csv(tmp_path / "test.csv", TEST_COLUMNS)
    message = str(e.value)
    assert "line 1: unexpected extra column after 'pixel783'" in message and len(message) < 250, message[:500]


def test_a_huge_bad_cell_is_cut_in_the_message(tmp_path):
    rows = [[str(v) for v in r] for r in table(5, 1)]
    rows[3][7] = "q" * 2_000_000
    write_csv(tmp_path / "train.csv", list(TRAIN_COLUMNS), rows)
    with pytest.raises(BadInputError) as e:
        dataset.read_csv(tmp_path / "train.csv", TRAIN_COLUMNS)
    message = str(e.value)
    assert "line 5, column pixel6: 'qqqq" in message and "(2,000,000 characters) is not an integer" in message
    assert len(message) < 250


def test_a_refusal_the_locator_cannot_explain_quotes_the_fast_reader(tmp_path, monkeypatch):
    """If the two ever disagree, the message still names the file and says what pyarrow said, in one short line."""
    from pipeline.competition import bad_cells

    write_csv(tmp_path / "test.csv", list(TEST_COLUMNS), [["1,2"] * 784])
    monkeypatch.setattr(bad_cells, "first_fault", lambda *a, **k: None)
    with pytest.raises(BadInputError) as e:
        dataset.read_csv(tmp_path / "test.csv", TEST_COLUMNS)
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'test.csv'}: cannot be parsed (pyarrow: 'CSV parse error: Expected 784")
    assert len(message) < 250 and "\n" not in message
