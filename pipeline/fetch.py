"""Kaggle I/O: the competition's data in, submissions out.

This is the only module that imports the ``kaggle`` package, and only inside
functions: importing it authenticates (it reads credentials, may print help or
call the network).  We use the real ``kaggle.api.kaggle_api_extended.KaggleApi``
for what the kaggle CLI does, credential discovery and client construction
(``KAGGLE_USERNAME``/``KAGGLE_KEY``, ``kaggle.json`` in ``KAGGLE_CONFIG_DIR`` or
``~/.kaggle``, ``KAGGLE_API_TOKEN``, ``~/.kaggle/access_token``, OAuth
``credentials.json``), and call the kagglesdk service methods it builds
ourselves, because its own download/submit helpers write straight to the final
file, have no timeout on the first request, sleep up to a minute between
retries, print to stdout and report a refused submission as a success.

Every HTTP request goes out with a timeout, honours the proxy (``HTTPS_PROXY``
and friends, or ``proxy`` in kaggle.json / ``KAGGLE_PROXY``), and is retried a
bounded number of times with exponential backoff on 429, 5xx and network
errors.  Failures become one-line `KaggleError` (exit 3) or `StorageError`
(exit 6) messages.  Secrets never reach a log line, an error or a result:
everything we emit goes through `_Secrets.scrub`.

Downloads land in temporary names inside ``data_dir``; the zip is checked
(size, CRC of every member, member paths, required files), a corrupt one is
deleted and fetched once more, and only when everything is extracted are the
files renamed into place, with the manifest (sizes, SHA-256, Kaggle's file
list) written atomically last.  A killed run leaves no manifest, so nothing
half-written is ever trusted.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from pipeline import files
from pipeline.errors import BadInputError, KaggleError, StorageError

REQUIRED = ("train.csv", "test.csv", "sample_submission.csv")
MANIFEST = ".manifest.json"  # inside data_dir
COMPETITION = "digit-recognizer"

# Retry backoff: BACKOFF_BASE * 2**attempt seconds, at most BACKOFF_MAX (a
# server's Retry-After is honoured up to BACKOFF_MAX too).  Tests shrink these.
BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
CHUNK = 1 << 20
NET_CHUNK = 1 << 16  # a broken-off download resumes from the last whole network chunk
ZIP_ATTEMPTS = 2  # a corrupt zip is deleted and downloaded once more
TMP_PREFIX = ".fetch."  # our temporary files in data_dir: never trusted, cleaned up
STALE_TMP_SECONDS = 3600.0  # leftovers of a killed run older than this are removed
SPACE_MARGIN = 16 << 20
SUBMIT_TIMEOUT = 60.0  # seconds per request while submitting
SUBMIT_RETRIES = 3

Log = Callable[[str], None]

_LIMIT_RE = re.compile(
    r"daily submission|submission allowance|submission limit|submissions? (?:per|a) day|try again tomorrow",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------- public API


def have_data(data_dir: str | Path) -> bool:
    """True when every REQUIRED file is present with the size the manifest records.

    Cheap (no hashing); `download` verifies the hashes before it trusts them.
    """
    data_dir = Path(data_dir)
    manifest = _read_manifest(data_dir)
    if manifest is None:
        return False
    try:
        recorded = manifest["files"]
        for name in REQUIRED:
            if (data_dir / name).stat().st_size != int(recorded[name]["size"]):
                return False
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return True


def download(
    data_dir: str | Path,
    competition: str = COMPETITION,
    *,
    force: bool = False,
    log: Log | None = print,
    retries: int = 3,
    timeout: float = 60.0,
) -> dict:
    """Ensure `data_dir` holds the competition files; return the manifest plus 'downloaded'.

    Skips the download (``downloaded: False``) when the local files match the
    manifest (sizes and SHA-256) and Kaggle's file list (names, sizes,
    last-modified) is the one recorded there; ``force=True`` downloads again.
    """
    if not competition or not str(competition).strip():
        raise BadInputError("no competition name given")
    data_dir = Path(data_dir)
    _prepare_dir(data_dir)
    _remove_stale_temps(data_dir)
    with _connect(timeout=timeout, retries=retries, log=log) as conn:
        remote = _list_files(conn, competition)
        manifest = _read_manifest(data_dir)
        if force:
            conn.log(f"downloading {competition} from Kaggle into {data_dir} (forced)")
        else:
            why = _why_download(data_dir, manifest, competition, remote)
            if why is None:
                conn.log(f"{data_dir} is up to date with Kaggle's {competition} files; not downloading")
                return {**manifest, "downloaded": False}
            conn.log(f"{why}: downloading {competition} from Kaggle into {data_dir}")
        new = _download_and_install(conn, data_dir, competition, remote)
        return {**new, "downloaded": True}


def submit(
    path: str | Path,
    competition: str,
    message: str,
    *,
    wait: float = 600.0,
    poll: float = 5.0,
    log: Log | None = print,
) -> dict:
    """Upload a submission file, then poll until Kaggle scores it or `wait` seconds pass.

    Returns {'ref', 'status' ('complete'|'pending'), 'public_score', 'error',
    'message', 'submitted_at', 'competition'}.  Raises KaggleError when the
    daily submission limit is reached and when Kaggle fails to score the file
    (with Kaggle's error description; the result dict, status 'error', is
    attached to the exception as ``.submission``).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        mtime = int(path.stat().st_mtime)
        if not path.is_file():
            raise BadInputError(f"submission file {path} is not a file")
    except OSError:
        raise BadInputError(f"submission file {path} not found") from None
    if not competition or not str(competition).strip():
        raise BadInputError("no competition name given")
    with _connect(timeout=SUBMIT_TIMEOUT, retries=SUBMIT_RETRIES, log=log) as conn:
        from kagglesdk.competitions.types.competition_api_service import (
            ApiCreateSubmissionRequest,
            ApiStartSubmissionUploadRequest,
        )

        service = conn.client.competitions.competition_api_client
        _check_limits(conn, competition)

        start = ApiStartSubmissionUploadRequest()
        start.competition_name = competition
        start.file_name = path.name
        start.content_length = size
        start.last_modified_epoch_seconds = mtime
        upload = conn.call(
            f"starting the upload to {competition}", lambda: service.start_submission_upload(start), competition
        )
        if not upload.create_url or not upload.token:
            raise conn.fail(f"Kaggle gave no upload URL for a submission to {competition}; try again later")
        conn.log(f"uploading {path.name} ({size} bytes) to {competition}")
        _put_file(conn, upload.create_url, path)

        create = ApiCreateSubmissionRequest()
        create.competition_name = competition
        create.blob_file_tokens = upload.token
        if message:
            create.submission_description = message
        created = conn.call(
            f"creating the submission to {competition}",
            lambda: service.create_submission(create),
            competition,
            idempotent=False,
            unsure="the submission may have been made all the same: check your submissions on Kaggle "
            "before submitting again",
        )
        said = _one_line(created.message or "")
        if not created.ref:  # the kaggle CLI prints this message and exits 0
            if _LIMIT_RE.search(said):
                raise conn.fail(f"daily submission limit reached for {competition}; Kaggle says: {said}")
            raise conn.fail(f"Kaggle did not accept the submission to {competition}: {said or 'no submission ref'}")
        result = {
            "ref": int(created.ref),
            "status": "pending",
            "public_score": None,
            "error": None,
            "message": message,
            "submitted_at": _utc_now(),
            "competition": competition,
        }
        conn.log(f"submitted {path.name} to {competition} as ref {result['ref']}")
        return _poll(conn, result, wait=wait, poll=poll)


# --------------------------------------------------------------------------- the connection


class _Secrets:
    """Every credential value we can see, and a scrubber that blanks them out of text."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, *values: Any) -> None:
        for value in values:
            if isinstance(value, str) and len(value.strip()) >= 6:
                self.values.add(value.strip())

    def add_basic(self, username: Any, key: Any) -> None:
        if isinstance(username, str) and isinstance(key, str) and key:
            self.add(base64.b64encode(f"{username}:{key}".encode()).decode())

    def scrub(self, text: Any) -> str:
        text = str(text)
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, "***")
        return text

    @classmethod
    def discover(cls) -> _Secrets:
        """Secrets from every place the kaggle client reads them, before it runs."""
        s = cls()
        s.add(os.environ.get("KAGGLE_KEY"), os.environ.get("KAGGLE_API_TOKEN"))
        s.add_basic(os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY"))
        home = Path(os.path.expanduser("~")) / ".kaggle"
        token = os.environ.get("KAGGLE_API_TOKEN")
        for token_file in (token, home / "access_token", home / "access_token.txt"):
            if token_file:
                with contextlib.suppress(OSError, ValueError):
                    if Path(token_file).is_file():
                        s.add(Path(token_file).read_text(errors="replace"))
        proxies = [
            os.environ.get(k)
            for k in (
                "HTTPS_PROXY",
                "https_proxy",
                "HTTP_PROXY",
                "http_proxy",
                "ALL_PROXY",
                "all_proxy",
                "KAGGLE_PROXY",
            )
        ]
        for json_file in (Path(_config_dir()) / "kaggle.json", home / "kaggle.json", home / "credentials.json"):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                data = json.loads(json_file.read_text())
                s.add(*(data.get(k) for k in ("key", "token", "refresh_token", "access_token")))
                s.add_basic(data.get("username"), data.get("key"))
                proxies.append(data.get("proxy"))
        for proxy in proxies:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                s.add(urlsplit(proxy).password)
        return s


class _Conn:
    """An authenticated kagglesdk client plus retries, timeouts and error messages."""

    def __init__(self, api: Any, secrets: _Secrets, timeout: float, retries: int, log: Log) -> None:
        self.api = api
        self.secrets = secrets
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self._log = log
        self.client: Any = None
        self.endpoint = "http://localhost" if "--local" in api.args else "https://api.kaggle.com"
        self.proxy = _config_proxy(api)
        self._plain: Any = None

    def open(self) -> None:
        """Build the kagglesdk client (no network yet) with the credentials authenticate() found."""
        try:
            self.client = self.api.build_kaggle_client()
            self.client.__enter__()
        except Exception as e:  # noqa: BLE001
            raise self.fail(f"cannot start the kaggle client: {type(e).__name__}: {e}") from None
        self.endpoint = getattr(self.client.http_client(), "_endpoint", self.endpoint)
        self.proxy = _config_proxy(self.api)

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.__exit__(None, None, None)
        if self._plain is not None:
            with contextlib.suppress(Exception):
                self._plain.close()

    def log(self, line: str) -> None:
        self._log(_one_line(self.secrets.scrub(line)))

    def fail(self, message: str) -> KaggleError:
        return KaggleError(_one_line(self.secrets.scrub(message)))

    def plain_session(self) -> Any:
        """A session without Kaggle's credentials, for signed storage URLs."""
        if self._plain is None:
            import requests

            self._plain = requests.Session()
            _harden_session(self._plain, self.timeout, self.proxy)
        return self._plain

    def call(
        self,
        what: str,
        fn: Callable[[], Any],
        competition: str | None = None,
        *,
        idempotent: bool = True,
        retries: int | None = None,
        unsure: str | None = None,
    ) -> Any:
        """Run one request with bounded retries; turn what is left into a KaggleError.

        A call that is not idempotent is retried only when Kaggle cannot have
        acted on it (429, 503, no connection); `unsure` is appended to the error
        when it may have.
        """
        import requests

        retries = self.retries if retries is None else retries
        attempt = 0
        while True:
            retry_after = None
            try:
                return fn()
            except requests.exceptions.HTTPError as e:
                error: Exception = e
                status = e.response.status_code if e.response is not None else 0
                retryable = status == 429 or (status >= 500 and (idempotent or status == 503))
                maybe_done = status >= 500 and status != 503
                reason = f"Kaggle answered HTTP {status}"
                retry_after = _retry_after(e.response)
            except requests.exceptions.RequestException as e:
                error = e
                retryable = idempotent or _not_sent(e)
                maybe_done = not _not_sent(e)
                reason = f"no answer from Kaggle ({_net_reason(e, self.timeout)})"
            except (ValueError, TypeError, KeyError) as e:  # malformed JSON and the like
                raise self.fail(f"unexpected answer from Kaggle while {what}: {type(e).__name__}: {e}") from None
            if not retryable or attempt >= retries:
                failure = self.error(error, what, competition, attempts=attempt + 1)
                if unsure and maybe_done:
                    failure = self.fail(f"{failure}; {unsure}")
                raise failure from None
            delay = _backoff(attempt, retry_after)
            attempt += 1
            self.log(f"{reason} while {what}; retry {attempt}/{retries} in {delay:.1f}s")
            time.sleep(delay)

    def error(self, exc: Exception, what: str, competition: str | None = None, attempts: int = 1) -> KaggleError:
        import requests

        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        comp = competition or "?"
        if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
            status = exc.response.status_code
            is_api = "/api/" in (exc.response.url or "") or urlsplit(exc.response.url or "").netloc.startswith("api.")
            if not is_api and status < 500 and status != 429:
                return self.fail(f"Kaggle's storage URL answered HTTP {status} while {what}; try again later")
            if status == 401 and self.uses_token():
                return self.fail(
                    f"Kaggle rejected the API token from {self.source()} (HTTP 401) while {what}: create a new "
                    "token at https://www.kaggle.com/settings/api and replace the old one"
                )
            if status == 401:
                return self.fail(
                    f"Kaggle rejected the credentials from {self.source()} (HTTP 401) while {what}: check the "
                    "username and key; creating a new legacy API key on kaggle.com/settings revokes the old "
                    "one, so replace every old copy (kaggle.json, KAGGLE_KEY)"
                )
            if status == 403:
                return self.fail(
                    f"Kaggle refused access to competition '{comp}' (HTTP 403) while {what}: accept the "
                    f"competition rules at https://www.kaggle.com/competitions/{comp}/rules while logged in "
                    "as this account, and check the competition name"
                )
            if status == 404:
                return self.fail(
                    f"competition '{comp}' was not found on Kaggle (HTTP 404) while {what}: check the spelling "
                    f"of the competition name (this job's is '{COMPETITION}')"
                )
            if status == 429:
                return self.fail(
                    f"Kaggle rate-limited the requests (HTTP 429) while {what}, {tries}; "
                    "wait a few minutes and run again"
                )
            if status >= 500:
                return self.fail(f"Kaggle had a server error (HTTP {status}) while {what}, {tries}; try again later")
            return self.fail(f"Kaggle answered HTTP {status} while {what}: {_kaggle_message(exc)}")
        if isinstance(exc, requests.exceptions.Timeout) or "timed out" in _net_reason(exc, self.timeout):
            return self.fail(
                f"Kaggle did not answer within {self.timeout:g}s while {what}, {tries}; "
                "check the network (and proxy settings) or raise the timeout"
            )
        return self.fail(
            f"cannot reach Kaggle at {urlsplit(self.endpoint).netloc or self.endpoint} while {what}: "
            f"{_net_reason(exc, self.timeout)}, {tries}; check the network connection and the proxy settings "
            f"({self._proxy_note()})"
        )

    def auth_method(self) -> str:
        return str((getattr(self.api, "config_values", None) or {}).get("auth_method", ""))

    def uses_token(self) -> bool:
        return self.auth_method() in ("ACCESS_TOKEN", "OAUTH") or (
            not self.auth_method() and bool(os.environ.get("KAGGLE_API_TOKEN"))
        )

    def source(self) -> str:
        method = self.auth_method()
        if method == "ACCESS_TOKEN" or (not method and os.environ.get("KAGGLE_API_TOKEN")):
            return "KAGGLE_API_TOKEN / ~/.kaggle/access_token"
        if method == "OAUTH":
            return "~/.kaggle/credentials.json (kaggle auth login)"
        if os.environ.get("KAGGLE_KEY"):
            return "KAGGLE_USERNAME/KAGGLE_KEY"
        return self.api.config

    def _proxy_note(self) -> str:
        env = {
            k: os.environ[k]
            for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
            if os.environ.get(k)
        }
        using = self.proxy or next(iter(env.values()), None)
        where = "HTTPS_PROXY/HTTP_PROXY/NO_PROXY, or 'proxy' in kaggle.json or KAGGLE_PROXY"
        return f"{where}; now using proxy {_strip_userinfo(using)}" if using else f"{where}; no proxy set now"


@contextlib.contextmanager
def _connect(*, timeout: float, retries: int, log: Log | None) -> Iterator[_Conn]:
    """Authenticate the way the kaggle CLI does; yield a connection; close it."""
    secrets = _Secrets.discover()

    def emit(line: str) -> None:
        if log is not None:
            log(_one_line(secrets.scrub(line)))

    api = _api_class(secrets)()
    # KaggleApi fixes these as class attributes when it is first imported; take
    # them from the environment as it is now.  Never verbose: the client prints
    # request headers, Authorization included, in verbose mode.
    api.digits_timeout = float(timeout)
    api.config_dir = _config_dir()
    api.config = os.path.join(api.config_dir, "kaggle.json")
    api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []
    api.already_printed_version_warning = True  # its warning goes to stdout

    out = io.StringIO()
    failure: Exception | None = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            api.authenticate()
    except SystemExit:
        failure = KaggleError(_no_credentials_message(api.config_dir))
    except Exception as e:  # noqa: BLE001 - HTTP errors of token introspection, and anything odd
        failure = e
    values = getattr(api, "config_values", {}) or {}
    secrets.add(values.get("key"), values.get("token"))
    secrets.add_basic(values.get("username"), values.get("key"))
    if "readable by other users" in out.getvalue():
        emit(f"warning: {api.config} is readable by other users; run: chmod 600 {api.config}")
    conn = _Conn(api, secrets, float(timeout), retries, emit)
    if isinstance(failure, KaggleError):
        raise failure from None
    if failure is not None:
        import requests

        if isinstance(failure, requests.exceptions.RequestException):
            raise conn.error(failure, "checking the API token") from None
        raise conn.fail(f"cannot read the Kaggle credentials: {type(failure).__name__}: {failure}") from None
    conn.open()
    try:
        yield conn
    finally:
        conn.close()


_API_CLASS: Any = None


def _api_class(secrets: _Secrets) -> Any:
    """Import kaggle (quietly, once) and return KaggleApi with hardened sessions."""
    global _API_CLASS
    if _API_CLASS is not None:
        return _API_CLASS
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            from kaggle.api.kaggle_api_extended import KaggleApi
    except (Exception, SystemExit) as e:  # importing kaggle authenticates and may exit
        raise KaggleError(_one_line(secrets.scrub(f"cannot load the kaggle client: {type(e).__name__}: {e}"))) from None

    class _Api(KaggleApi):  # type: ignore[misc, valid-type]
        digits_timeout = 60.0

        def build_kaggle_client(self):  # noqa: ANN201 - KaggleClient
            client = super().build_kaggle_client()
            http = client.http_client()
            http._init_session()
            _harden_session(http._session, self.digits_timeout, _config_proxy(self))
            return client

    _API_CLASS = _Api
    return _API_CLASS


def _harden_session(session: Any, timeout: float, proxy: str | None) -> None:
    """Default timeout on every request the session sends; the client's proxy setting."""
    adapter = _timeout_adapter_class()(timeout)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if proxy:
        session.proxies.update({"http": proxy, "https": proxy})


_ADAPTER: Any = None


def _timeout_adapter_class() -> Any:
    global _ADAPTER
    if _ADAPTER is None:
        from requests.adapters import HTTPAdapter

        class TimeoutAdapter(HTTPAdapter):
            def __init__(self, timeout: float) -> None:
                super().__init__(max_retries=0)
                self.default_timeout = timeout

            def send(self, request, **kwargs):  # noqa: ANN001, ANN201
                if kwargs.get("timeout") is None:
                    kwargs["timeout"] = self.default_timeout
                return super().send(request, **kwargs)

        _ADAPTER = TimeoutAdapter
    return _ADAPTER


def _config_dir() -> str:
    """Where the kaggle client looks for kaggle.json (same rules as KaggleApi)."""
    configured = os.environ.get("KAGGLE_CONFIG_DIR")
    if configured:
        return configured
    home = os.path.expanduser("~")
    legacy = os.path.join(home, ".kaggle")
    if sys.platform.startswith("linux") and not os.path.exists(legacy):
        return os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "kaggle")
    return legacy


def _config_proxy(api: Any) -> str | None:
    proxy = (getattr(api, "config_values", None) or {}).get("proxy")
    return proxy if isinstance(proxy, str) and proxy.strip() else None


def _no_credentials_message(config_dir: str) -> str:
    token = os.environ.get("KAGGLE_API_TOKEN")
    home_token = Path(os.path.expanduser("~")) / ".kaggle" / "access_token"
    if token or home_token.exists():
        return (
            "the Kaggle API token (KAGGLE_API_TOKEN or ~/.kaggle/access_token) is invalid or expired: "
            "create a new one at https://www.kaggle.com/settings/api"
        )
    return (
        "no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN, or put the kaggle.json "
        f"from https://www.kaggle.com/settings/api into {config_dir} (chmod 600; KAGGLE_CONFIG_DIR moves it)"
    )


# --------------------------------------------------------------------------- download


def _list_files(conn: _Conn, competition: str) -> list[dict]:
    """Kaggle's file list: [{'name', 'size', 'last_modified'}] sorted by name."""
    from kagglesdk.competitions.types.competition_api_service import ApiListDataFilesRequest

    service = conn.client.competitions.competition_api_client
    found: list[dict] = []
    token = ""
    for _ in range(100):  # pages
        request = ApiListDataFilesRequest()
        request.competition_name = competition
        request.page_size = 200
        if token:
            request.page_token = token
        response = conn.call(
            f"listing the data files of {competition}", lambda: service.list_data_files(request), competition
        )
        for f in response.files or []:
            stamp = f.creation_date
            found.append(
                {
                    "name": f.name or f.ref,
                    "size": int(f.total_bytes or 0),
                    "last_modified": stamp.isoformat() if stamp is not None else None,
                }
            )
        token = response.next_page_token or ""
        if not token:
            break
    return sorted(found, key=lambda f: str(f["name"]))


def _why_download(data_dir: Path, manifest: dict | None, competition: str, remote: list[dict]) -> str | None:
    """Why the local copy cannot be used as it is, or None when it can."""
    if manifest is None:
        return f"no complete copy in {data_dir}"
    if manifest.get("competition") != competition:
        return f"{data_dir} holds the files of {manifest.get('competition')!r}"
    problem = _local_problem(data_dir, manifest)
    if problem:
        return problem
    if not remote:
        return "Kaggle listed no files to compare with"
    if manifest.get("kaggle_files") != remote:
        return "the files on Kaggle changed since the last download"
    return None


def _local_problem(data_dir: Path, manifest: dict) -> str | None:
    recorded = manifest.get("files")
    if not isinstance(recorded, dict):
        return "the manifest lists no files"
    for name in REQUIRED:
        if name not in recorded:
            return f"the manifest lacks {name}"
    for name, meta in recorded.items():
        path = data_dir / name
        try:
            if path.stat().st_size != int(meta["size"]):
                return f"{name} changed size since the download"
            if files.sha256(path) != meta["sha256"]:
                return f"{name} changed since the download"
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, KeyError, TypeError, ValueError):
            return f"{name} cannot be checked"
    return None


class _Corrupt(Exception):
    """The zip that arrived is truncated or damaged."""


def _download_and_install(conn: _Conn, data_dir: Path, competition: str, remote: list[dict]) -> dict:
    unpacked = sum(int(f.get("size") or 0) for f in remote)
    _check_space(data_dir, unpacked)  # again with the zip's size once it is known
    for attempt in range(1, ZIP_ATTEMPTS + 1):
        temps: list[Path] = []
        try:
            zip_tmp = _temp_path(data_dir, f"{_safe_name(competition)}.zip", temps)
            meta = _fetch_zip(conn, competition, zip_tmp, data_dir, unpacked)
            try:
                extracted, plan = _extract(conn, zip_tmp, data_dir, temps)
            except _Corrupt as e:
                if attempt < ZIP_ATTEMPTS:
                    conn.log(f"the zip from Kaggle is damaged ({e}); deleted it, downloading once more")
                    continue
                raise conn.fail(
                    f"the zip Kaggle sent for {competition} was damaged twice ({e}); nothing in {data_dir} "
                    "was changed; try again later"
                ) from None
            manifest = {
                "competition": competition,
                "files": extracted,
                "kaggle_files": remote,
                "zip": meta,
                "downloaded_at": _utc_now(),
            }
            _install(data_dir, plan, manifest)
            conn.log(f"installed {', '.join(sorted(extracted))} in {data_dir}")
            return manifest
        finally:
            for tmp in temps:
                with contextlib.suppress(OSError):
                    tmp.unlink()
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_zip(conn: _Conn, competition: str, dest: Path, data_dir: Path, unpacked: int) -> dict:
    """Stream the competition zip into `dest`, resuming with Range requests when it breaks off."""
    import requests
    from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

    service = conn.client.competitions.competition_api_client
    what = f"downloading the data of {competition}"

    def start() -> Any:
        request = ApiDownloadDataFilesRequest()
        request.competition_name = competition
        return conn.call(what, lambda: service.download_data_files(request), competition)

    response = start()
    size = _content_length(response)
    last_modified = response.headers.get("Last-Modified")
    validator = response.headers.get("ETag") or last_modified
    url = response.url
    _check_space(data_dir, (size or 0) + unpacked)
    conn.log(f"downloading {competition}.zip ({_mb(size)})")
    began = time.monotonic()
    digest = hashlib.sha256()
    written = 0
    breaks = 0
    try:
        out = open(dest, "wb")
    except OSError as e:
        response.close()
        raise files.storage_error(data_dir / f"{competition}.zip", e) from None
    with out:
        while True:
            try:
                for chunk in response.iter_content(NET_CHUNK):
                    _write(out, chunk, data_dir / f"{competition}.zip")
                    digest.update(chunk)
                    written += len(chunk)
                response.close()
                if size is not None and written < size:
                    raise requests.exceptions.ChunkedEncodingError(f"got {written} of {size} bytes")
                break
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
                response.close()
                breaks += 1
                if breaks > conn.retries:
                    if isinstance(e, requests.exceptions.ChunkedEncodingError):
                        raise conn.fail(
                            f"the download of {competition} kept breaking off ({written} of {_mb(size)} after "
                            f"{breaks} attempts); check the network and try again"
                        ) from None
                    raise conn.error(e, what, competition, attempts=breaks) from None
                delay = _backoff(breaks - 1)
                conn.log(
                    f"the download broke off at {written} of {size if size is not None else '?'} bytes "
                    f"({_net_reason(e, conn.timeout)}); resuming in {delay:.1f}s"
                )
                time.sleep(delay)
                headers = {}
                if written:
                    headers["Range"] = f"bytes={written}-"
                    if validator:
                        headers["If-Range"] = validator
                try:
                    response = conn.call(what, lambda: _get(conn, url, headers), competition)
                except KaggleError:
                    # The signed link may have expired: ask Kaggle for a fresh one.
                    response = start()
                    url = response.url
                if written and response.status_code == 206 and _range_start(response) == written:
                    continue
                if response.status_code == 206:  # a range we did not ask for
                    response.close()
                    response = start()
                    url = response.url
                # A whole new body (the Range was ignored or the file changed): start over.
                _truncate(out, data_dir / f"{competition}.zip")
                digest, written = hashlib.sha256(), 0
                size = _content_length(response)
                last_modified = response.headers.get("Last-Modified")
                validator = response.headers.get("ETag") or last_modified
        _fsync(out, data_dir / f"{competition}.zip")
    seconds = max(time.monotonic() - began, 1e-6)
    conn.log(f"downloaded {_mb(written)} in {seconds:.1f}s")
    if size is not None and written != size:
        raise _Corrupt(f"{written} bytes arrived, Kaggle announced {size}")  # pragma: no cover
    return {
        "size": written,
        "sha256": digest.hexdigest(),
        "last_modified": last_modified,
        "etag": response.headers.get("ETag"),
    }


def _get(conn: _Conn, url: str, headers: dict) -> Any:
    response = conn.plain_session().get(url, headers=headers, stream=True)
    response.raise_for_status()
    return response


def _extract(conn: _Conn, zip_path: Path, data_dir: Path, temps: list[Path]) -> tuple[dict, list]:
    """Extract every member to a temporary name beside its target, checking CRCs and sizes."""
    extracted: dict[str, dict] = {}
    plan: list[tuple[Path, Path]] = []
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            targets = {m.filename: _safe_target(conn, data_dir, m.filename) for m in members}
            names = {PurePosixPath(m.filename).as_posix() for m in members}
            missing = [name for name in REQUIRED if name not in names]
            if missing:
                raise conn.fail(f"the zip from Kaggle lacks {', '.join(missing)}; nothing in {data_dir} was changed")
            for member in members:
                target = targets[member.filename]
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise files.storage_error(target, e) from None
                tmp = _temp_path(target.parent, target.name, temps)
                digest = hashlib.sha256()
                size = 0
                try:
                    out = open(tmp, "wb")
                except OSError as e:
                    raise files.storage_error(target, e) from None
                with out, archive.open(member) as source:
                    while block := source.read(CHUNK):  # ZipExtFile checks the CRC at the end
                        _write(out, block, target)
                        digest.update(block)
                        size += len(block)
                    _fsync(out, target)
                if size != member.file_size:
                    raise _Corrupt(f"{member.filename} has {size} bytes, the zip says {member.file_size}")
                extracted[PurePosixPath(member.filename).as_posix()] = {"size": size, "sha256": digest.hexdigest()}
                plan.append((tmp, target))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise _Corrupt(_one_line(str(e)) or type(e).__name__) from None
    return extracted, plan


def _safe_target(conn: _Conn, data_dir: Path, name: str) -> Path:
    """data_dir/name, or a KaggleError when the member would land outside data_dir."""
    parts = PurePosixPath(name).parts
    unsafe = (
        not name
        or name.startswith(("/", "\\"))
        or "\\" in name
        or "\x00" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or any(part in ("", ".", "..") for part in parts)
    )
    reserved = bool(parts) and (parts[0] == MANIFEST or any(p.startswith(TMP_PREFIX) for p in parts))
    if not unsafe and not reserved:
        target = data_dir.joinpath(*parts)
        try:
            inside = target.parent.resolve().is_relative_to(data_dir.resolve())
        except OSError:
            inside = False
        if inside:
            return target
    raise conn.fail(
        f"refusing the zip from Kaggle: member {name!r} would be written outside {data_dir} or over its "
        "bookkeeping files; nothing was changed"
    )


def _install(data_dir: Path, plan: list[tuple[Path, Path]], manifest: dict) -> None:
    """Rename the extracted files into place; the manifest goes last.

    The old manifest is removed first, so a run killed half-way leaves a set of
    files that no later run trusts (it downloads again).
    """
    manifest_path = data_dir / MANIFEST
    try:
        manifest_path.unlink(missing_ok=True)
    except OSError as e:
        raise files.storage_error(manifest_path, e) from None
    for tmp, target in plan:
        try:
            os.replace(tmp, target)
        except OSError as e:
            raise files.storage_error(target, e) from None
    with contextlib.suppress(OSError):
        fd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    files.write_json(manifest_path, manifest)


# --------------------------------------------------------------------------- submit


def _check_limits(conn: _Conn, competition: str) -> None:
    """Refuse before uploading when Kaggle says today's submissions are used up (best effort)."""
    from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionLimitsRequest

    request = ApiGetSubmissionLimitsRequest()
    request.competition_name = competition
    service = conn.client.competitions.competition_api_client
    try:
        limits = conn.call(
            "checking the submission limits", lambda: service.get_submission_limits(request), competition, retries=0
        )
    except KaggleError:
        return  # the upload itself reports real problems
    allowed = int(limits.num_allowed_now or 0)
    if allowed <= 0 and (int(limits.num_today or 0) > 0 or limits.limited_by_total):
        scope = "total" if limits.limited_by_total else "daily"
        raise conn.fail(
            f"{scope} submission limit reached for {competition}: {limits.num_today} submitted today, none left; "
            "nothing was uploaded (the daily limit resets at midnight UTC)"
        )
    if allowed > 0:
        conn.log(f"{allowed} submission{'s' if allowed != 1 else ''} left today on {competition}")


def _put_file(conn: _Conn, url: str, path: Path) -> None:
    def put() -> Any:
        try:
            handle = open(path, "rb")
        except OSError as e:
            raise BadInputError(f"cannot read submission file {path}: {e.strerror or e}") from None
        with handle:
            response = conn.plain_session().put(url, data=handle)
        response.raise_for_status()
        return response

    conn.call(f"uploading {path.name}", put)


def _poll(conn: _Conn, result: dict, *, wait: float, poll: float) -> dict:
    import requests
    from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionRequest
    from kagglesdk.competitions.types.submission_status import SubmissionStatus

    ref = result["ref"]
    service = conn.client.competitions.competition_api_client
    request = ApiGetSubmissionRequest()
    request.ref = ref

    def get() -> Any:
        try:
            return service.get_submission(request)
        except requests.exceptions.HTTPError as e:
            if e.response is not None and e.response.status_code == 404:
                return None  # not readable yet right after creation
            raise

    deadline = time.monotonic() + max(0.0, float(wait))
    started = time.monotonic()
    last_note = None
    while True:
        try:
            submission = conn.call(f"checking submission {ref}", get)
        except KaggleError as e:
            conn.log(f"cannot check submission {ref} now ({e}); see it on Kaggle later")
            return result
        if submission is not None:
            if submission.date is not None:
                result["submitted_at"] = _iso(submission.date)
            if submission.status == SubmissionStatus.COMPLETE:
                result["status"] = "complete"
                result["public_score"] = _score(submission.public_score)
                shown = result["public_score"] if result["public_score"] is not None else "not published"
                conn.log(f"submission {ref} scored: public score {shown}")
                return result
            if submission.status == SubmissionStatus.ERROR:
                description = _one_line(submission.error_description or "") or "Kaggle gave no description"
                result["status"] = "error"
                result["error"] = conn.secrets.scrub(description)
                err = conn.fail(f"submission {ref} to {result['competition']} failed on Kaggle: {description}")
                err.submission = result  # type: ignore[attr-defined]
                raise err
        now = time.monotonic()
        if now >= deadline:
            conn.log(f"submission {ref} is still being scored after {wait:g}s; check it on Kaggle later")
            return result
        if last_note is None or now - last_note >= 60:
            conn.log(f"waiting for Kaggle to score submission {ref} ({now - started:.0f}s)")
            last_note = now
        time.sleep(max(0.0, min(float(poll), deadline - now)))


# --------------------------------------------------------------------------- helpers


def _read_manifest(data_dir: Path) -> dict | None:
    try:
        manifest = json.loads((Path(data_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _prepare_dir(data_dir: Path) -> None:
    """Create data_dir and prove we can write there, before talking to Kaggle."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX + "probe.", suffix=".part", dir=data_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise files.storage_error(data_dir, e) from None


def _remove_stale_temps(data_dir: Path) -> None:
    """Delete temporary files a killed run left behind (ours, and files.atomic_path's for the manifest)."""
    cutoff = time.time() - STALE_TMP_SECONDS
    patterns = [TMP_PREFIX + "*", f".{MANIFEST}.*.tmp*"]
    for pattern in patterns:
        for leftover in data_dir.glob(pattern):
            with contextlib.suppress(OSError):
                if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                    leftover.unlink()


def _temp_path(directory: Path, name: str, temps: list[Path]) -> Path:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{name}.", suffix=".part", dir=directory)
        os.close(fd)
    except OSError as e:
        raise files.storage_error(directory / name, e) from None
    temps.append(Path(tmp))
    return Path(tmp)


def _check_space(data_dir: Path, need: int) -> None:
    try:
        free = shutil.disk_usage(data_dir).free
    except OSError:
        return
    if free < need + SPACE_MARGIN:
        raise StorageError(
            f"cannot write {data_dir}: no space left on device (the download needs about {_mb(need)}, {_mb(free)} free)"
        )


def _write(out: Any, data: bytes, shown: Path) -> None:
    try:
        out.write(data)
    except OSError as e:
        raise files.storage_error(shown, e) from None


def _fsync(out: Any, shown: Path) -> None:
    try:
        out.flush()
        os.fsync(out.fileno())
    except OSError as e:
        raise files.storage_error(shown, e) from None


def _truncate(out: Any, shown: Path) -> None:
    try:
        out.seek(0)
        out.truncate()
    except OSError as e:
        raise files.storage_error(shown, e) from None


def _content_length(response: Any) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _range_start(response: Any) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _retry_after(response: Any) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _backoff(attempt: int, retry_after: float | None = None) -> float:
    delay = BACKOFF_BASE * (2**attempt)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, BACKOFF_MAX)


def _not_sent(exc: Exception) -> bool:
    """True when the request certainly never reached Kaggle (safe to retry a non-idempotent call)."""
    import requests

    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return True
    text = repr(exc)
    return "NewConnectionError" in text or "NameResolutionError" in text


def _net_reason(exc: Exception, timeout: float) -> str:
    import requests

    text = repr(exc)
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy refused or failed the connection"
    if isinstance(exc, requests.exceptions.Timeout) or "ReadTimeout" in text or "timed out" in text:
        return f"timed out after {timeout:g}s"
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "NameResolution" in text or "Name or service not known" in text or "Temporary failure in name" in text:
        return "the host name could not be resolved"
    if "Network is unreachable" in text or "Errno 101" in text:
        return "network unreachable"
    if "Connection reset" in text or "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was dropped"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS/SSL failed"
    return type(exc).__name__


def _kaggle_message(exc: Any) -> str:
    try:
        body = exc.response.json()
        message = body.get("message") if isinstance(body, dict) else None
    except Exception:  # noqa: BLE001
        message = None
    return _one_line(str(message or exc.response.reason or "no details"))[:300]


def _strip_userinfo(url: str | None) -> str:
    if not url:
        return ""
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _score(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "competition"


def _mb(size: int | None) -> str:
    if size is None:
        return "unknown size"
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _iso(stamp: datetime) -> str:
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC).replace(tzinfo=None)
    return stamp.replace(microsecond=0).isoformat() + "Z"


def _utc_now() -> str:
    return _iso(datetime.now(UTC))
