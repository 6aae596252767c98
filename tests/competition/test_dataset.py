import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.competition import dataset
from pipeline.competition.dataset import PIXEL_COLUMNS, TEST_COLUMNS, TRAIN_COLUMNS
from pipeline.core.errors import BadInputError
from tests.helpers import table, write_competition, write_csv


def test_load_returns_validated_arrays(tmp_path):
    write_competition(tmp_path, 120, 30)
    ds = dataset.load(tmp_path, folds=5)
    assert ds.x.shape == (120, 784) and ds.x.dtype == np.uint8
    assert ds.x_test.shape == (30, 784)
    assert sorted(set(ds.y.tolist())) == list(range(10))
    expected = table(120, 0)
    assert np.array_equal(ds.y, expected[:, 0]) and np.array_equal(ds.x, expected[:, 1:])
    assert ds.files["train.csv"]["rows"] == 120 and len(ds.files["train.csv"]["sha256"]) == 64


def test_second_load_uses_cache_without_parsing(tmp_path, monkeypatch):
    write_competition(tmp_path)
    first = dataset.load(tmp_path)
    monkeypatch.setattr(dataset, "read_csv", lambda *a, **k: pytest.fail("parsed again"))
    second = dataset.load(tmp_path)
    assert np.array_equal(first.x, second.x) and first.files == second.files


def test_changed_file_invalidates_cache(tmp_path):
    write_competition(tmp_path, seed=0)
    first = dataset.load(tmp_path)
    write_competition(tmp_path, seed=5)
    second = dataset.load(tmp_path)
    assert first.files["train.csv"]["sha256"] != second.files["train.csv"]["sha256"]
    assert not np.array_equal(first.x, second.x)


def test_corrupt_cache_is_rebuilt(tmp_path):
    write_competition(tmp_path)
    first = dataset.load(tmp_path)
    for cached in (tmp_path / ".cache").iterdir():
        cached.write_bytes(b"garbage")
    warnings = []
    second = dataset.load(tmp_path, log=warnings.append)
    assert np.array_equal(first.x, second.x)
    assert any("corrupt" in w for w in warnings)


def _train_rows(n=60):
    return [list(r) for r in table(n, 3)]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda h, r: (["lbl", *h[1:]], r), "line 1, column 1: header is 'lbl', expected 'label'"),
        (lambda h, r: (h[:-1], [x[:-1] for x in r]), "line 1: missing columns after 'pixel782'"),
        (lambda h, r: ([*h, "extra"], [[*x, 0] for x in r]), "unexpected extra column"),
        (lambda h, r: (h, r[:4] + [[*r[4][:10], "", *r[4][11:]]] + r[5:]), "line 6, column pixel9: empty cell"),
        (
            lambda h, r: (h, r[:2] + [[*r[2][:3], "x7", *r[2][4:]]] + r[3:]),
            "line 4, column pixel2: 'x7' is not an integer",
        ),
        (
            lambda h, r: (h, r[:2] + [[*r[2][:3], "1.5", *r[2][4:]]] + r[3:]),
            "line 4, column pixel2: '1.5' is not an integer",
        ),
        (lambda h, r: (h, [["1.00", *r[0][1:]]] + r[1:]), "line 2, column label: '1.00' is not an integer"),
        (lambda h, r: (h, [[r[0][0], "+5", *r[0][2:]]] + r[1:]), "line 2, column pixel0: '+5' is not an integer"),
        (lambda h, r: (h, [[r[0][0], "1_0", *r[0][2:]]] + r[1:]), "line 2, column pixel0: '1_0' is not an integer"),
        (
            lambda h, r: (h, r[:7] + [[*r[7][:100], 256, *r[7][101:]]] + r[8:]),
            "line 9, column pixel99: 256 is outside 0-255",
        ),
        (
            lambda h, r: (h, r[:7] + [[*r[7][:100], -1, *r[7][101:]]] + r[8:]),
            "line 9, column pixel99: -1 is outside 0-255",
        ),
        (lambda h, r: (h, [[10, *r[0][1:]]] + r[1:]), "line 2, column label: 10 is outside 0-9"),
        (lambda h, r: (h, r[:3] + [r[3][:-5]] + r[4:]), "line 5: 780 cells, expected 785"),
        (lambda h, r: (h, []), "no data rows after the header"),
    ],
)
def test_each_bad_train_file_names_file_line_and_column(tmp_path, mutate, expected):
    header, rows = mutate(list(TRAIN_COLUMNS), _train_rows())
    path = write_csv(tmp_path / "train.csv", header, rows)
    write_csv(tmp_path / "test.csv", list(TEST_COLUMNS), table(5, 1, labels=False))
    with pytest.raises(BadInputError) as e:
        dataset.load(tmp_path)
    message = str(e.value)
    assert message.startswith(str(path)) and expected in message, message
    assert "\n" not in message


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(BadInputError, match="data directory not found"):
        dataset.load(tmp_path / "nowhere")
    write_competition(tmp_path)
    (tmp_path / "test.csv").unlink()
    with pytest.raises(BadInputError, match=r"test\.csv: file not found"):
        dataset.load(tmp_path)
    (tmp_path / "test.csv").write_text("")
    with pytest.raises(BadInputError, match=r"test\.csv: file is empty"):
        dataset.load(tmp_path)


def test_test_file_with_a_label_column_is_refused(tmp_path):
    write_competition(tmp_path)
    write_csv(tmp_path / "test.csv", list(TRAIN_COLUMNS), table(5, 1))
    with pytest.raises(BadInputError, match=r"test\.csv: line 1, column 1: header is 'label', expected 'pixel0'"):
        dataset.load(tmp_path)


def test_too_few_rows_of_a_class_for_the_folds(tmp_path):
    rows = table(100, 0)
    rows = rows[(rows[:, 0] != 7) | (np.cumsum(rows[:, 0] == 7) <= 3)]  # keep three 7s
    write_csv(tmp_path / "train.csv", list(TRAIN_COLUMNS), rows)
    write_csv(tmp_path / "test.csv", list(TEST_COLUMNS), table(5, 1, labels=False))
    dataset.load(tmp_path, folds=3)
    with pytest.raises(BadInputError, match="label 7 has 3 rows; 5 folds need at least 5"):
        dataset.load(tmp_path, folds=5)


BAD_CELLS = st.one_of(
    st.just(""),
    st.integers(256, 10**6).map(str),
    st.integers(-(10**6), -1).map(str),
    st.floats(0.01, 254.99).filter(lambda v: not float(v).is_integer()).map(lambda v: f"{v:.2f}"),
    st.text(alphabet="abcxyz-+ .e", min_size=1, max_size=4).filter(lambda s: not s.strip().lstrip("+-").isdigit()),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, 29), col=st.integers(0, 784), bad=BAD_CELLS)
def test_any_single_bad_cell_is_named_exactly(tmp_path_factory, row, col, bad):
    """Property: whatever cell is broken, and however, the error names its line and column."""
    d = tmp_path_factory.mktemp("prop")
    rows = [[str(v) for v in r] for r in table(30, 9)]
    if col == 0 and bad.strip() in {str(i) for i in range(10)}:
        return
    rows[row][col] = bad
    write_csv(d / "train.csv", list(TRAIN_COLUMNS), rows)
    with pytest.raises(BadInputError) as e:
        dataset.read_csv(d / "train.csv", TRAIN_COLUMNS)
    assert f"line {row + 2}, column {TRAIN_COLUMNS[col]}:" in str(e.value), str(e.value)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), seed=st.integers(0, 10**6))
def test_any_valid_table_round_trips(tmp_path_factory, n, seed):
    d = tmp_path_factory.mktemp("ok")
    rows = np.random.default_rng(seed).integers(0, 256, size=(n, 784))
    write_csv(d / "test.csv", list(PIXEL_COLUMNS), rows)
    assert np.array_equal(dataset.read_csv(d / "test.csv", TEST_COLUMNS), rows)


def test_demo_competition_has_the_competition_format(tmp_path):
    dataset.write_demo(tmp_path, test_rows=100)
    ds = dataset.load(tmp_path, folds=5)
    assert ds.x_test.shape == (100, 784) and len(ds.y) == 1797 - 100
    assert ds.x.max() == 255 and ds.x[:, :28].max() == 0  # centred: top row blank
    assert (tmp_path / "sample_submission.csv").read_text().startswith("ImageId,Label\n1,0\n")


# Byte-level faults: the file as written by something other than a CSV library.


def _lines(n: int = 300) -> list[bytes]:
    """A valid train.csv as a list of lines without their line ends; lines[i] is editor line i + 1."""
    return [",".join(TRAIN_COLUMNS).encode()] + [",".join(map(str, r)).encode() for r in table(n, 3)]


def _cell(lines: list[bytes], line: int, column: int, value: bytes) -> list[bytes]:
    cells = lines[line - 1].split(b",")
    cells[column] = value
    lines[line - 1] = b",".join(cells)
    return lines


def _merge(lines: list[bytes], line: int, column: int) -> list[bytes]:
    """Join two cells into one quoted cell holding a comma: one cell short, with every digit still there."""
    cells = lines[line - 1].split(b",")
    cells[column : column + 2] = [b'"' + cells[column] + b"," + cells[column + 1] + b'"']
    lines[line - 1] = b",".join(cells)
    return lines


def _quote_all(lines: list[bytes]) -> list[bytes]:
    return [b",".join(b'"' + c + b'"' for c in line.split(b",")) for line in lines]


def _nl(lines: list[bytes], end: bytes = b"\n", last: bool = True) -> bytes:
    return end.join(lines) + (end if last else b"")


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda L: _nl(_cell(L, 250, 4, b"1\xff")), "line 250, column pixel3: byte 0xff is not UTF-8 text"),
        (lambda L: _nl(_cell(L, 2, 0, b"\xfe")), "line 2, column label: byte 0xfe is not UTF-8 text"),
        (lambda L: _nl(_cell(L, 1, 2, b"pixel\xe91")), "line 1, column 3: byte 0xe9 is not UTF-8 text"),
        (lambda L: _nl(_cell(_quote_all(L), 40, 6, b'"x"')), "line 40, column pixel5: 'x' is not an integer"),
        (
            lambda L: _nl(_cell(L, 30, 1, b'"1\n2"')),
            "line 30, column pixel0: a quoted cell runs on past the end of its line (is a closing quote missing?)",
        ),
        (
            lambda L: _nl(_cell(L, 7, 2, b'"12')),
            "line 7, column pixel1: a quoted cell runs on past the end of its line",
        ),
        (
            lambda L: _nl(_cell(L, 30, 784, b'"1\r\n"')),
            "line 30, column pixel783: a quoted cell runs on past the end of its line",
        ),
        (lambda L: _nl(_merge(L, 20, 5)), "line 20: 784 cells, expected 785"),
        (lambda L: _nl(_cell(L, 12, 5, b"3\x00")), r"line 12, column pixel4: '3\x00' is not an integer"),
        (lambda L: _nl(_cell(L, 9, 10, b"abc"), b"\r\n"), "line 9, column pixel9: 'abc' is not an integer"),
        (lambda L: _nl(_cell(L, 9, 10, b"abc"), b"\r"), "line 9, column pixel9: 'abc' is not an integer"),
        (lambda L: b"\xef\xbb\xbf" + _nl(_cell(L, 3, 1, b"z")), "line 3, column pixel0: 'z' is not an integer"),
        (lambda L: b"\xef\xbb\xbf" * 2 + _nl(L), r"line 1, column 1: header is '\ufefflabel', expected 'label'"),
        (
            lambda L: _nl([*L[:20], b"", b"", *_cell(L, 30, 1, b"z")[20:]]),
            "line 32, column pixel0: 'z' is not an integer",
        ),
        (lambda L: _nl([b"", b"", *_cell(L, 5, 1, b"z")]), "line 7, column pixel0: 'z' is not an integer"),
        (lambda L: _nl([*L[:4], b"  ", *L[4:]]), "line 5: 1 cell, expected 785"),
        (lambda L: _nl(_cell(L, 301, 784, b"x"), last=False), "line 301, column pixel783: 'x' is not an integer"),
        (lambda L: L[0], "no data rows after the header"),
        (lambda L: _nl([L[0], b"", b""]), "no data rows after the header"),
        (lambda L: _nl(_cell(L, 4, 3, b"-0")), "line 4, column pixel2: '-0' is not an integer"),
        (lambda L: _nl(_cell(L, 4, 3, b"0x100")), "line 4, column pixel2: 0x100 is outside 0-255"),
        (lambda L: _nl(_cell(L, 4, 0, b"0xA")), "line 4, column label: 0xA is outside 0-9"),
        (lambda L: _nl(_cell(L, 4, 3, b"9" * 5000)), "line 4, column pixel2: '999999"),
    ],
    ids=[
        "0xff-line-250",
        "bad-byte-line-2",
        "bad-byte-header",
        "all-quoted-bad-cell",
        "quoted-newline",
        "unterminated-quote",
        "quoted-line-end-in-last-cell",
        "quoted-comma",
        "nul-byte",
        "crlf",
        "cr-only",
        "bom",
        "two-boms",
        "empty-lines-in-the-middle",
        "empty-lines-before-header",
        "whitespace-line",
        "no-final-newline",
        "header-without-newline",
        "header-and-empty-lines",
        "minus-zero",
        "hex-too-big",
        "hex-label",
        "huge-number",
    ],
)
def test_each_malformed_train_file_names_line_and_column(tmp_path, make, expected):
    path = tmp_path / "train.csv"
    path.write_bytes(make(_lines()))
    with pytest.raises(BadInputError) as e:
        dataset.read_csv(path, TRAIN_COLUMNS)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and expected in message, message
    assert "\n" not in message and len(message) < 300, message


def _hex(L: list[bytes]) -> list[bytes]:
    return [L[0]] + [b",".join(b"0x%X" % int(c) for c in line.split(b",")) for line in L[1:]]


@pytest.mark.parametrize(
    "make",
    [
        lambda L: _nl(_quote_all(L)),
        lambda L: _nl(L, b"\r\n"),
        lambda L: _nl(L, b"\r"),
        lambda L: b"\xef\xbb\xbf" + _nl(L),
        lambda L: _nl([b"", *L[:10], b"", b"\r", *L[10:], b"", b""]),
        lambda L: _nl(L, last=False),
        lambda L: _nl([L[0]] + [b",".join(b" \t" + c + b" " for c in line.split(b",")) for line in L[1:]]),
        lambda L: _nl([L[0]] + [b",".join(b"00" + c for c in line.split(b",")) for line in L[1:]]),
        lambda L: _nl(_hex(L)),
    ],
    ids=["quoted", "crlf", "cr-only", "bom", "empty-lines", "no-final-newline", "spaces-tabs", "leading-zeros", "hex"],
)
def test_what_the_fast_reader_accepts_is_read_exactly(tmp_path, make):
    """Variants pyarrow reads without complaint give the same table; the locator is never asked."""
    path = tmp_path / "train.csv"
    path.write_bytes(make(_lines()))
    assert np.array_equal(dataset.read_csv(path, TRAIN_COLUMNS), table(300, 3))
