"""Every file the job reads, checked in content: hostile contents are one warning or one line, never a traceback.

Each reader of a file a user can edit (a run's report.json, a ledger line, a
fold's files, the run's arrays, the data manifest, the parsed-array cache,
kaggle.json, a config file) is given a corpus of hostile contents: lists
nested 200,000 deep, integers of 5,000 digits (past Python's int-string
limit) and of 4,000 (under it), NaN and inf, JSON of the wrong shape, bytes
that are not UTF-8, arrays whose header asks for terabytes, of strings or
objects, zips cut short or damaged.  Each reader either reads the file,
reports it in its documented way (`BadInputError`, None, a warning), or
refuses it: never any other exception.  What a reader accepts is then shown
by every command that prints runs, again without a traceback.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.cli import cli
from pipeline.competition import array_cache
from pipeline.core import config_layers, file_reads
from pipeline.core.errors import BadInputError
from pipeline.kaggle_client import credentials, datadir, downloads
from pipeline.store import fold_files, ledger, record, run_arrays
from pipeline.views import report
from tests import runfactory as rf

# ---- the corpus -------------------------------------------------------------------------------------------

RAW_JSON = {
    "lists nested 200,000 deep": b"[" * 200_000,
    "objects nested 100,000 deep": b'{"a":' * 100_000,
    "an integer of 5,000 digits": b"1" * 5000,
    "an integer of 5,000 digits in an object": b'{"run_id": ' + b"7" * 5000 + b"}",
    "NaN": b"NaN",
    "Infinity": b"-Infinity",
    "1e999": b"1e999",
    "a list": b"[1, 2]",
    "a string": b'"text"',
    "a number": b"12",
    "null": b"null",
    "an empty object": b"{}",
    "not UTF-8": b"\xff\xfe{}",
    "empty": b"",
    "a BOM": b"\xef\xbb\xbf{}",
    "cut short": b'{"a": [1, 2',
}

# Put at each place of a valid document in turn: a number where text is expected, text where a number is, ...
VALUES: dict[str, Any] = {
    "NaN": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "4,000 digits": 10**3999,
    "-4,000 digits": -(10**3999),
    "1e308": 1e308,
    "-1": -1,
    "text": "x",
    "a list": [],
    "an object": {},
    "null": None,
    "true": True,
    "nested lists": [[[]]],
    "nested objects": {"a": {"b": {}}},
}


def _places(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in JSON data (the first two items of each list), the document itself first."""
    yield path
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _places(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data[:2]):
            yield from _places(v, (*path, i))


def _put(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return copy.deepcopy(value)
    out = copy.deepcopy(data)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = copy.deepcopy(value)
    return out


def mutations(data: Any) -> Iterator[tuple[str, Any]]:
    """`data` with each of `VALUES` at each of its places."""
    for path in _places(data):
        for name, value in VALUES.items():
            yield f"{'.'.join(map(str, path)) or 'the document'} = {name}", _put(data, path, value)


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()  # NaN and Infinity as JSON's readers meet them


def _npy(header_shape: str, descr: str = "<f4") -> bytes:
    """An .npy file whose header claims `header_shape`, with no data."""
    header = ("{'descr': " + repr(descr) + ", 'fortran_order': False, 'shape': " + header_shape + ", }").encode()
    pad = 64 - (10 + len(header) + 1) % 64
    return b"\x93NUMPY\x01\x00" + (len(header) + pad + 1).to_bytes(2, "little") + header + b" " * pad + b"\n"


def _saved(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)  # an object array as a hostile file holds it
    return buf.getvalue()


def _npz(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, content in members.items():
            z.writestr(name + ".npy", content)
    return buf.getvalue()


ARRAYS = {
    "a header asking for terabytes": _npy("(1000000000000, 10)"),
    "a shape too large for C": _npy("(99999999999999999999,)"),
    "a negative shape": _npy("(-1,)"),
    "objects (a pickle)": _saved(np.array([{"a": 1}], dtype=object)),
    "strings": _saved(np.array(["a", "b"])),
    "bytes": _saved(np.array([b"ab"])),
    "a single number": _saved(np.array(3.0)),
    "a single string": _saved(np.array("x")),
    "records": _saved(np.zeros(3, dtype=[("a", "i4"), ("b", "f4")])),
    "complex numbers": _saved(np.ones((5, 10), complex)),
    "dates": _saved(np.array(["2020-01-01"], dtype="datetime64[D]")),
    "NaN": _saved(np.full((5, 10), np.nan)),
    "1e308 (inf as float32)": _saved(np.full((5, 10), 1e308)),
    "three dimensions": _saved(np.zeros((2, 2, 2))),
    "nothing": _saved(np.zeros((0,))),
    "not an array": b"hello",
    "an array cut short": _saved(np.zeros((5, 10)))[:100],
}


def _damaged_deflate() -> bytes:
    data = bytearray(
        _npz({"labels": _saved(np.zeros(5000)), "proba": _saved(np.zeros((5000, 10)))}, zipfile.ZIP_DEFLATED)
    )
    data[200:260] = b"\xff" * 60
    return bytes(data)


ARCHIVES = {
    "not a zip": b"hello",
    "empty": b"",
    "a zip cut short": _npz({"labels": _saved(np.zeros(5))})[:50],
    "a zip without the arrays": _npz({"other": _saved(np.zeros(5))}),
    "a damaged deflate stream": _damaged_deflate(),
}

# ---- the readers ------------------------------------------------------------------------------------------


def _clean(read: Callable[[], Any], allowed: tuple[type[BaseException], ...] = (BadInputError,)) -> str | None:
    """None when `read` returns or raises one of `allowed`; else what it raised."""
    try:
        read()
    except allowed:
        return None
    except BaseException as e:  # noqa: BLE001 - the point: nothing else may come out
        return f"{type(e).__name__}: {str(e)[:200]}"
    return None


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return rf.make_run(tmp_path, "20261101-233000", submission=True, leaderboard=0.95)


def _json_readers(out: Path, run: Path) -> dict[str, tuple[Path, Callable[[], Any]]]:
    """Each JSON file a user can edit, and its reader as the job calls it (with what it does with the result)."""
    warnings: list[str] = []
    data = out / "data"
    data.mkdir(exist_ok=True)
    val_idx = np.arange(5)
    fold = fold_files.FoldResult(
        record.FoldRecord(0, 40, 5, 0.9, 0.3, 3, 3, 1.0, 100.0, history={"loss": [0.5, 0.4]}),
        val_idx,
        np.full((5, 10), 0.1, np.float32),
        np.full((5, 10), 0.1, np.float32),
    )
    fold_files.save_fold(run, fold)

    def manifest() -> None:
        found = datadir.read_manifest(data)
        downloads.have_data(data)
        downloads._why_download(data, found, "digit-recognizer", [])

    return {
        "report.json": (run / record.REPORT, lambda: record.read(run)),
        "a ledger line": (ledger.path(out), lambda: ledger.read(out, warn=warnings.append)),
        "a fold's record": (
            fold_files.fold_paths(run, 0)["json"],
            lambda: fold_files.load_fold(run, 0, val_idx, 5, warn=warnings.append),
        ),
        "the data manifest": (data / datadir.MANIFEST, manifest),
        "kaggle.json": (out / "kaggle.json", lambda: credentials.kaggle_json_problem(str(out / "kaggle.json"))),
    }


@pytest.mark.parametrize("content", sorted(RAW_JSON))
def test_every_json_reader_takes_hostile_contents_cleanly(tmp_path, run, content):
    wrong = []
    for name, (path, read) in _json_readers(tmp_path, run).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(RAW_JSON[content] + (b"\n" if name == "a ledger line" else b""))
        problem = _clean(read)
        if problem:
            wrong.append((name, problem))
    assert not wrong, wrong


def _valid_documents(out: Path, run: Path) -> dict[str, Any]:
    entry = ledger.Entry(
        id="20261102-233000-abcdef12",
        competition="digit-recognizer",
        status="complete",
        sent_at="2026-11-02T23:40:00+00:00",
        sha256="a" * 64,
        run_id="20261101-233000",
        members=[ledger.Member("20261101-233000", 1.0)],
        estimate=0.96,
        predictions="p.npz",
        ref=7,
        public_score=0.96,
    )
    files = {n: {"size": 1, "sha256": "0" * 64} for n in ("train.csv", "test.csv")}
    kaggle_files = [{"name": "train.csv", "size": 1, "last_modified": "2019-12-11T02:33:09+00:00"}]
    return {
        "report.json": rf.read(run),
        "a ledger line": ledger._adapter().dump_python(entry, mode="json"),
        "a fold's record": json.loads(fold_files.fold_paths(run, 0)["json"].read_text()),
        "the data manifest": {"competition": "digit-recognizer", "files": files, "kaggle_files": kaggle_files},
        "kaggle.json": {"username": "u", "key": "k" * 20, "proxy": "http://proxy:3128"},
    }


@pytest.mark.parametrize(
    "reader", ["report.json", "a ledger line", "a fold's record", "the data manifest", "kaggle.json"]
)
def test_a_document_of_the_wrong_shape_is_read_cleanly(tmp_path, run, reader):
    """Each value of the wrong type or size at each place of a valid document: read, or refused in one line."""
    path, read = _json_readers(tmp_path, run)[reader]
    document = _valid_documents(tmp_path, run)[reader]
    wrong = []
    for what, changed in mutations(document):
        if what.startswith("config.") and what.split(" = ")[0].count(".") > 1:  # test_a_hostile_config_file_...
            continue
        path.write_bytes(dumps(changed) + b"\n")
        problem = _clean(read)
        if problem:
            wrong.append((what, problem))
    assert not wrong, wrong[:20]


def test_a_number_out_of_range_in_a_record_names_the_field(run):
    data = rf.read(run)
    for place, value, says in [
        (("oof_accuracy",), 1e308, "field oof_accuracy: 1e+308 is not a fraction from 0 to 1"),
        (("fold_accuracy_std",), float("-inf"), "field fold_accuracy_std: -inf is not a fraction"),
        (("folds", 0, "val_accuracy"), float("nan"), "field folds.0.val_accuracy: nan is not a fraction"),
        (("data", "train.csv", "rows"), 10**3999, "a number of 4,000 digits, too large for a count"),
        (("leaderboard", "public_score"), float("inf"), "field leaderboard.public_score: inf is not a finite"),
    ]:
        rf.write_raw(run, _put(data, place, value))
        with pytest.raises(BadInputError, match="report.json: " + says.replace("(", r"\(").replace("+", r"\+")):
            record.read(run)
    rf.write_raw(run, _put(data, ("seconds",), float("nan")))  # a time: shown as unknown, the run kept
    assert record.read(run).seconds != record.read(run).seconds


def test_a_ledger_line_with_a_score_that_is_not_a_number_is_one_warning(tmp_path):
    path = ledger.path(tmp_path)
    path.parent.mkdir(parents=True)
    good = {"id": "a", "competition": "c", "status": "complete", "ref": 1, "public_score": 0.9}
    lines = [good, {**good, "id": "b", "public_score": float("nan")}, {**good, "id": "c", "ref": 10**3999}]
    path.write_bytes(b"\n".join(dumps(line) for line in lines) + b"\n" + b"[" * 200_000 + b"\n")
    warnings: list[str] = []
    assert [e.id for e in ledger.read(tmp_path, warn=warnings.append)] == ["a"]
    assert [w.split(": line ")[1].split(" ")[0] for w in warnings] == ["2", "3", "4"], warnings
    assert "nested too deeply" in warnings[2] and "finite number" in warnings[0], warnings


# ---- arrays -----------------------------------------------------------------------------------------------

KEYS = {
    "oof.npz": ("labels", "proba"),
    "estimate.npz": ("labels", "predictions"),
    "misclassified.npz": ("images", "true", "pred", "index"),
    "the ledger's predictions": ("labels", "predictions"),
    "a fold's arrays": ("val_idx", "val_proba", "test_proba"),
    "the parsed-array cache": ("array", "sha256", "source"),
}


def _array_readers(out: Path, run: Path) -> dict[str, tuple[Path, Callable[[], Any]]]:
    val_idx = np.arange(5)
    fold = fold_files.FoldResult(
        record.FoldRecord(0, 40, 5, 0.9, 0.3, 3, 3, 1.0, 100.0),
        val_idx,
        np.full((5, 10), 0.1, np.float32),
        np.full((5, 10), 0.1, np.float32),
    )
    fold_files.save_fold(run, fold)
    csv, digest = out / "data" / "train.csv", "d" * 64
    entry = ledger.Entry(id="x", competition="c", status="complete", predictions="p.npz")
    return {
        "oof.npz": (run / "oof.npz", lambda: (run_arrays.load_oof(run), run_arrays.load_oof(run, 5, finite=True))),
        "estimate.npz": (run / "estimate.npz", lambda: run_arrays.load_estimate(run)),
        "misclassified.npz": (run / "misclassified.npz", lambda: report.misclassified(run)),
        "the ledger's predictions": (
            out / "submissions" / ledger.ARRAYS / "p.npz",
            lambda: ledger.load_predictions(out, entry),
        ),
        "a fold's arrays": (fold_files.fold_paths(run, 0)["npz"], lambda: fold_files.load_fold(run, 0, val_idx, 5)),
        "the parsed-array cache": (
            array_cache.entry_path(csv, digest),
            lambda: array_cache.load(csv, digest, 785, log=lambda m: None),
        ),
        "test_proba.npy": (run / run_arrays.TEST, lambda: run_arrays.load_test(run, 5)),
    }


@pytest.mark.parametrize("reader", [*sorted(KEYS), "test_proba.npy"])
def test_every_array_reader_takes_hostile_arrays_cleanly(tmp_path, run, reader):
    path, read = _array_readers(tmp_path, run)[reader]
    path.parent.mkdir(parents=True, exist_ok=True)
    contents: dict[str, bytes] = dict(ARCHIVES) if reader != "test_proba.npy" else {}
    for kind, array in ARRAYS.items():
        if reader == "test_proba.npy":
            contents[kind] = array
            continue
        for key in KEYS[reader]:
            members = {k: _saved(np.zeros((5, 10) if "proba" in k else 5, np.int64)) for k in KEYS[reader]}
            contents[f"{key} holds {kind}"] = _npz({**members, key: array})
    wrong = []
    for what, content in contents.items():
        path.write_bytes(content)
        problem = _clean(read)
        if problem:
            wrong.append((what, problem))
    assert not wrong, wrong


def test_unreadable_covers_what_parsers_raise_on_hostile_contents():
    for parse, raw in [
        (json.loads, "[" * 200_000),
        (json.loads, "1" * 5000),
        (lambda text: np.load(io.BytesIO(text.encode("latin-1"))), _npy("(1000000000000, 10)").decode("latin-1")),
        (lambda text: np.load(io.BytesIO(text.encode("latin-1"))), _npy("(99999999999999999999,)").decode("latin-1")),
    ]:
        with pytest.raises(file_reads.UNREADABLE):
            parse(raw)
    with pytest.raises(ValueError, match="4,000 digits"):
        file_reads.bounded({"a": [1, {"b": 10**3999}]})
    assert file_reads.why(RecursionError()) == "nested too deeply"


# ---- config files -----------------------------------------------------------------------------------------

TOML = {
    "arrays nested 100,000 deep": "[train]\nepochs = " + "[" * 100_000,
    "inline tables nested 50,000 deep": "x = " + "{a = " * 50_000,
    "a key of 100,000 dotted parts": "a" + ".c" * 100_000 + " = 1",
    "a quoted key of 30,000 parts": '"a"' + ' . "c"' * 30_000 + " = 1",
    "a table of 100,000 parts": "[" + "a." * 100_000 + "a]",
    "an integer of 5,000 digits": "[train]\nepochs = " + "1" * 5000,
    "an integer of 4,000 digits": "[train]\nfolds = 1" + "0" * 3999,
    "epochs nan": "[train]\nepochs = nan",
    "epochs inf": "[train]\nepochs = inf",
    "folds 1e308": "[train]\nfolds = 1e308",
    "learning rate inf": "[train]\nlearning_rate = inf",
    "a timeout nan": "[notify]\ntimeout = nan",
    "a timeout of 4,000 digits": "[notify]\ntimeout = 1" + "0" * 3999,
    "a date for a number": "[train]\nepochs = 1979-05-27",
    "a table for a number": "[train]\nepochs = {a = 1}",
    "a list of tables": "[[train]]\nepochs = 1",
    "text for a table": 'train = "x"',
    "not UTF-8": "[train]\nepochs = 1\n\udcff",
}


@pytest.mark.parametrize("content", sorted(TOML))
def test_a_hostile_config_file_is_one_line(tmp_path, content):
    path = tmp_path / "c.toml"
    path.write_bytes(TOML[content].encode("utf-8", "surrogateescape"))
    with pytest.raises(BadInputError, match=r"c\.toml"):
        config_layers.build(path)


def test_a_hostile_config_is_one_line_and_exit_1_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for content in ("[train]\nepochs = " + "[" * 100_000, "a" + ".c" * 100_000 + " = 1", "[train]\nepochs = inf"):
        Path("c.toml").write_text(content)
        r = rf.invoke(cli, "train", "--config", "c.toml")
        lines = [line for line in r.output.splitlines() if line.startswith("digits: c.toml")]
        assert r.exit_code == 1 and len(lines) == 1 and "Traceback" not in r.output, r.output[-500:]


# ---- what the readers accept, shown ------------------------------------------------------------------------


def _hostile_everywhere(data: dict[str, Any], value: Any) -> dict[str, Any]:
    """`data` with `value` at every place where the record's validation still takes it."""
    for path in list(_places(data))[1:]:
        try:
            changed = _put(data, path, value)
        except (KeyError, IndexError, TypeError):  # inside a part already replaced
            continue
        try:
            record.from_json(copy.deepcopy(changed))
        except BadInputError:
            continue
        data = changed
    return data


VIEWS = [
    ["history"],
    ["runs"],
    ["compare", "--last", "100"],
    ["compare", "--last", "100", "--format", "csv"],
    ["compare", "--last", "100", "--format", "json"],
    ["compare", "--last", "100", "--format", "markdown"],
    ["gc", "--keep", "0", "--dry-run"],
    *(["report", f"20261103-{i:02d}0000"] for i in range(len(VALUES))),
]


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    """Two plain runs, then one run per hostile value, holding it at every place its validation takes it."""
    out = tmp_path_factory.mktemp("hostile-values")
    blend = rf.blend_of(("20261101-233000", 0.5, 0.95), ("20261102-233000", 0.5, 0.96), estimate=0.96)
    rf.make_run(out, "20261101-233000", seed=1, submission=True, leaderboard=0.95, current_submission=True)
    rf.make_run(out, "20261102-233000", seed=2, submission=True, leaderboard=0.96, blend=blend)
    for i, value in enumerate(VALUES.values()):
        run = rf.make_run(out, f"20261103-{i:02d}0000", seed=3 + i, submission=True, leaderboard=0.96, blend=blend)
        data = rf.read(run)
        data["submit_decision"] = {"submitted": True, "reason": "r", "p_value": 0.1, "ours": 0.9, "disagree": 3}
        data["plan"] = {"recipe": "mlp", "rule": "rotation", "reason": "r"}
        rf.write_raw(run, _hostile_everywhere(data, value))
    return out


@pytest.mark.filterwarnings("error::RuntimeWarning", "error::UserWarning")  # nor numpy's or matplotlib's noise
@pytest.mark.parametrize("args", VIEWS, ids=" ".join)
def test_every_value_a_record_may_hold_is_shown_without_a_traceback(hostile_runs, monkeypatch, args):
    monkeypatch.chdir(hostile_runs)
    r = rf.invoke(cli, *args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 0, r.output[-1000:]
    assert "warning:" not in r.output or args[0] == "report", r.output  # every record was read


def test_a_hostile_manifest_is_a_reason_to_download_again(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("label\n1\n")
    sha = hashlib.sha256((data / "train.csv").read_bytes()).hexdigest()
    for size in (float("inf"), float("nan"), "12", 10**3999, -1, None):
        manifest = {"competition": "digit-recognizer", "files": {"train.csv": {"size": size, "sha256": sha}}}
        (data / datadir.MANIFEST).write_bytes(dumps(manifest))
        assert datadir.read_manifest(data) is None and downloads.have_data(data) is False
