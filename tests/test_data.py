import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import data
from pipeline.data import PIXEL_COLUMNS, TEST_COLUMNS, TRAIN_COLUMNS
from pipeline.errors import BadInputError
from tests.helpers import table, write_competition, write_csv


def test_load_returns_validated_arrays(tmp_path):
    write_competition(tmp_path, 120, 30)
    ds = data.load(tmp_path, folds=5)
    assert ds.x.shape == (120, 784) and ds.x.dtype == np.uint8
    assert ds.x_test.shape == (30, 784)
    assert sorted(set(ds.y.tolist())) == list(range(10))
    expected = table(120, 0)
    assert np.array_equal(ds.y, expected[:, 0]) and np.array_equal(ds.x, expected[:, 1:])
    assert ds.files["train.csv"]["rows"] == 120 and len(ds.files["train.csv"]["sha256"]) == 64


def test_second_load_uses_cache_without_parsing(tmp_path, monkeypatch):
    write_competition(tmp_path)
    first = data.load(tmp_path)
    monkeypatch.setattr(data, "read_csv", lambda *a, **k: pytest.fail("parsed again"))
    second = data.load(tmp_path)
    assert np.array_equal(first.x, second.x) and first.files == second.files


def test_changed_file_invalidates_cache(tmp_path):
    write_competition(tmp_path, seed=0)
    first = data.load(tmp_path)
    write_competition(tmp_path, seed=5)
    second = data.load(tmp_path)
    assert first.files["train.csv"]["sha256"] != second.files["train.csv"]["sha256"]
    assert not np.array_equal(first.x, second.x)


def test_corrupt_cache_is_rebuilt(tmp_path):
    write_competition(tmp_path)
    first = data.load(tmp_path)
    for cached in (tmp_path / ".cache").glob("*.npy"):
        cached.write_bytes(b"garbage")
    warnings = []
    second = data.load(tmp_path, log=warnings.append)
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
        data.load(tmp_path)
    message = str(e.value)
    assert message.startswith(str(path)) and expected in message, message
    assert "\n" not in message


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(BadInputError, match="data directory not found"):
        data.load(tmp_path / "nowhere")
    write_competition(tmp_path)
    (tmp_path / "test.csv").unlink()
    with pytest.raises(BadInputError, match=r"test\.csv: file not found"):
        data.load(tmp_path)
    (tmp_path / "test.csv").write_text("")
    with pytest.raises(BadInputError, match=r"test\.csv: file is empty"):
        data.load(tmp_path)


def test_test_file_with_a_label_column_is_refused(tmp_path):
    write_competition(tmp_path)
    write_csv(tmp_path / "test.csv", list(TRAIN_COLUMNS), table(5, 1))
    with pytest.raises(BadInputError, match=r"test\.csv: line 1, column 1: header is 'label', expected 'pixel0'"):
        data.load(tmp_path)


def test_too_few_rows_of_a_class_for_the_folds(tmp_path):
    rows = table(100, 0)
    rows = rows[(rows[:, 0] != 7) | (np.cumsum(rows[:, 0] == 7) <= 3)]  # keep three 7s
    write_csv(tmp_path / "train.csv", list(TRAIN_COLUMNS), rows)
    write_csv(tmp_path / "test.csv", list(TEST_COLUMNS), table(5, 1, labels=False))
    data.load(tmp_path, folds=3)
    with pytest.raises(BadInputError, match="label 7 has 3 rows; 5 folds need at least 5"):
        data.load(tmp_path, folds=5)


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
        data.read_csv(d / "train.csv", TRAIN_COLUMNS)
    assert f"line {row + 2}, column {TRAIN_COLUMNS[col]}:" in str(e.value), str(e.value)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), seed=st.integers(0, 10**6))
def test_any_valid_table_round_trips(tmp_path_factory, n, seed):
    d = tmp_path_factory.mktemp("ok")
    rows = np.random.default_rng(seed).integers(0, 256, size=(n, 784))
    write_csv(d / "test.csv", list(PIXEL_COLUMNS), rows)
    assert np.array_equal(data.read_csv(d / "test.csv", TEST_COLUMNS), rows)


def test_demo_competition_has_the_competition_format(tmp_path):
    data.write_demo(tmp_path, test_rows=100)
    ds = data.load(tmp_path, folds=5)
    assert ds.x_test.shape == (100, 784) and len(ds.y) == 1797 - 100
    assert ds.x.max() == 255 and ds.x[:, :28].max() == 0  # centred: top row blank
    assert (tmp_path / "sample_submission.csv").read_text().startswith("ImageId,Label\n1,0\n")
