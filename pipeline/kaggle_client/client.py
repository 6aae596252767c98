"""The authenticated connection to Kaggle: timeouts, bounded retries and one-line error messages.

`connect` authenticates the way the kaggle CLI does (the real ``KaggleApi``:
credential discovery, client construction) and yields a `Connection`.  Every
HTTP request goes out with a timeout, has the same number of seconds in all
to be answered in full (`pipeline.core.deadline`: a server that sends a byte
a second never trips a read timeout), honours the proxy (``HTTPS_PROXY`` and
friends, or ``proxy`` in kaggle.json / ``KAGGLE_PROXY``), and is retried a
bounded number of times with backoff on 429, 5xx and network errors
(`Connection.call`).  Failures become one-line `KaggleError` messages; secrets
never reach a log line, an error or a result (everything goes through
`Secrets.scrub`).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pipeline.core import deadline
from pipeline.core.errors import KaggleError
from pipeline.core.text import one_line
from pipeline.kaggle_client import retry
from pipeline.kaggle_client.credentials import (
    PROXY_VARIABLES,
    Secrets,
    config_dir,
    config_proxy,
    import_kaggle_api,
    kaggle_json_problem,
    no_credentials_message,
    proxy_problem,
)

COMPETITION = "digit-recognizer"

Log = Callable[[str], None]


def flat(text: Any) -> str:
    """`text` on one line: runs of whitespace (newlines included) become one space, control characters escaped."""
    return one_line(" ".join(str(text).split()))


def iso(stamp: datetime) -> str:
    """A timestamp as UTC ISO 8601 with a Z, to the second."""
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC).replace(tzinfo=None)
    return stamp.replace(microsecond=0).isoformat() + "Z"


def utc_now() -> str:
    return iso(datetime.now(UTC))


class Connection:
    """An authenticated kagglesdk client plus retries, timeouts and error messages."""

    def __init__(self, api: Any, secrets: Secrets, timeout: float, retries: int, log: Log) -> None:
        self.api = api
        self.secrets = secrets
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self._log = log
        self.client: Any = None
        self._stack = contextlib.ExitStack()  # holds the kagglesdk client open from open() to close()
        self.endpoint = "http://localhost" if "--local" in api.args else "https://api.kaggle.com"
        self.proxy = config_proxy(api)
        self._plain: Any = None

    @property
    def competitions(self) -> Any:
        """kagglesdk's CompetitionApiClient."""
        return self.client.competitions.competition_api_client

    def open(self) -> None:
        """Build the kagglesdk client (no network yet) with the credentials authenticate() found."""
        try:
            self.client = self._stack.enter_context(self.api.build_kaggle_client())
        except Exception as e:  # noqa: BLE001
            raise self.fail(f"cannot start the kaggle client: {type(e).__name__}: {e}") from None
        self.endpoint = getattr(self.client.http_client(), "_endpoint", self.endpoint)
        self.proxy = config_proxy(self.api)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
        if self._plain is not None:
            with contextlib.suppress(Exception):
                self._plain.close()

    def log(self, line: str) -> None:
        self._log(flat(self.secrets.scrub(line)))

    def fail(self, message: str) -> KaggleError:
        return KaggleError(flat(self.secrets.scrub(message)))

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
        when it may have.  Each attempt has `timeout` seconds in all.
        """
        import requests

        retries = self.retries if retries is None else retries
        attempt = 0
        while True:
            wait_asked = None
            try:
                return self.within(fn, what)
            except requests.exceptions.HTTPError as e:
                error: Exception = e
                status = e.response.status_code if e.response is not None else 0
                retryable = status == 429 or (status >= 500 and (idempotent or status == 503))
                maybe_done = status >= 500 and status != 503
                reason = f"Kaggle answered HTTP {status}"
                wait_asked = retry.retry_after(e.response)
            except (requests.exceptions.RequestException, deadline.Expired) as e:
                error = e
                retryable = idempotent or retry.not_sent(e)
                maybe_done = not retry.not_sent(e)
                reason = f"no answer from Kaggle ({retry.net_reason(e, self.timeout)})"
            except (ValueError, TypeError, KeyError) as e:  # malformed JSON and the like
                raise self.fail(f"unexpected answer from Kaggle while {what}: {type(e).__name__}: {e}") from None
            if not retryable or attempt >= retries:
                failure = self.error(error, what, competition, attempts=attempt + 1)
                if unsure and maybe_done:
                    failure = self.fail(f"{failure}; {unsure}")
                raise failure from None
            delay = retry.backoff(attempt, wait_asked)
            attempt += 1
            self.log(f"{reason} while {what}; retry {attempt}/{retries} in {delay:.1f}s")
            time.sleep(delay)

    def within(self, fn: Callable[[], Any], what: str) -> Any:
        """`fn()` if it ends within `timeout` seconds in all, else `deadline.Expired` (one attempt, no retry)."""
        return deadline.call(fn, self.timeout, f"Kaggle, {what}")

    def error(self, exc: Exception, what: str, competition: str | None = None, attempts: int = 1) -> KaggleError:
        """The one-line KaggleError for a request that failed for good."""
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
                    f"Kaggle rejected the API token from {self.source()} as invalid or expired (HTTP 401) while "
                    f"{what}: create a new token at https://www.kaggle.com/settings/api and replace the old one"
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
            return self.fail(f"Kaggle answered HTTP {status} while {what}: {kaggle_message(exc)}")
        if retry.is_timeout(exc):
            return self.fail(
                f"Kaggle did not answer within {self.timeout:g}s while {what}, {tries}; "
                "check the network (and proxy settings) or raise the timeout"
            )
        return self.fail(
            f"cannot reach Kaggle at {urlsplit(self.endpoint).netloc or self.endpoint} while {what}: "
            f"{retry.net_reason(exc, self.timeout)}, {tries}; check the network connection and the proxy settings "
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
        return str(self.api.config)

    def _proxy_note(self) -> str:
        env = [os.environ[k] for k in PROXY_VARIABLES if os.environ.get(k)]
        using = self.proxy or next(iter(env), None)
        where = "HTTPS_PROXY/HTTP_PROXY/NO_PROXY, or 'proxy' in kaggle.json or KAGGLE_PROXY"
        return f"{where}; now using proxy {_strip_userinfo(using)}" if using else f"{where}; no proxy set now"


@contextlib.contextmanager
def connect(*, timeout: float, retries: int, log: Log | None) -> Iterator[Connection]:
    """Authenticate the way the kaggle CLI does; yield a connection; close it."""
    secrets = Secrets.discover()

    def emit(line: str) -> None:
        if log is not None:
            log(flat(secrets.scrub(line)))

    for variable in (*PROXY_VARIABLES, "KAGGLE_PROXY"):
        problem = proxy_problem(variable, os.environ.get(variable))
        if problem is not None:
            raise KaggleError(flat(secrets.scrub(problem)))
    api = _api_class(secrets)()
    # KaggleApi fixes these as class attributes when it is first imported; take
    # them from the environment as it is now.  Never verbose: the client prints
    # request headers, Authorization included, in verbose mode.
    api.digits_timeout = float(timeout)
    api.config_dir = config_dir()
    api.config = os.path.join(api.config_dir, "kaggle.json")
    api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []
    api.already_printed_version_warning = True  # its warning goes to stdout

    json_problem = kaggle_json_problem(api.config)
    if json_problem is not None and os.path.exists(api.config) and not os.path.isfile(api.config):
        # a FIFO would hang the client's own read of it, whatever else gives credentials
        raise KaggleError(flat(secrets.scrub(json_problem)))
    out = io.StringIO()
    failure: Exception | None = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            deadline.call(api.authenticate, float(timeout), "Kaggle, checking the API token")  # may ask Kaggle
    except SystemExit:
        failure = KaggleError(
            flat(secrets.scrub(json_problem)) if json_problem else no_credentials_message(api.config_dir)
        )
    except Exception as e:  # noqa: BLE001 - HTTP errors of token introspection, and anything odd
        failure = e
    values = getattr(api, "config_values", {}) or {}
    secrets.add(values.get("key"), values.get("token"))
    secrets.add_basic(values.get("username"), values.get("key"))
    if "readable by other users" in out.getvalue():
        emit(f"warning: {api.config} is readable by other users; run: chmod 600 {api.config}")
    conn = Connection(api, secrets, float(timeout), retries, emit)
    bad_proxy = proxy_problem(f"in {api.config}", config_proxy(api))
    if bad_proxy is not None:
        raise KaggleError(flat(secrets.scrub(bad_proxy)))
    if isinstance(failure, KaggleError):
        raise failure from None
    if failure is not None:
        import requests

        if isinstance(failure, (requests.exceptions.RequestException, deadline.Expired)):
            raise conn.error(failure, "checking the API token") from None
        raise conn.fail(
            json_problem or f"cannot read the Kaggle credentials: {type(failure).__name__}: {failure}"
        ) from None
    conn.open()
    try:
        yield conn
    finally:
        conn.close()


def kaggle_message(exc: Any) -> str:
    """The message in Kaggle's JSON error body, else the HTTP reason."""
    try:
        body = exc.response.json()
        message = body.get("message") if isinstance(body, dict) else None
    except Exception:  # noqa: BLE001
        message = None
    return flat(str(message or exc.response.reason or "no details"))[:300]


_API_CLASS: Any = None


def _api_class(secrets: Secrets) -> Any:
    """Import kaggle (quietly, once) and return KaggleApi with hardened sessions."""
    global _API_CLASS
    if _API_CLASS is not None:
        return _API_CLASS
    try:
        kaggle_api = import_kaggle_api()
    except (Exception, SystemExit) as e:  # importing kaggle authenticates and may exit
        raise KaggleError(flat(secrets.scrub(f"cannot load the kaggle client: {type(e).__name__}: {e}"))) from None

    class _Api(kaggle_api):  # type: ignore[misc, valid-type]
        digits_timeout = 60.0

        def build_kaggle_client(self) -> Any:
            client = super().build_kaggle_client()
            http = client.http_client()
            http._init_session()
            _harden_session(http._session, self.digits_timeout, config_proxy(self))
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
        from requests import PreparedRequest, Response
        from requests.adapters import HTTPAdapter

        class TimeoutAdapter(HTTPAdapter):
            def __init__(self, timeout: float) -> None:
                super().__init__(max_retries=0)
                self.default_timeout = timeout

            def send(
                self,
                request: PreparedRequest,
                stream: bool = False,
                timeout: float | tuple[float, float] | tuple[float, None] | None = None,
                verify: bool | str = True,
                cert: Any = None,
                proxies: Mapping[str, str] | None = None,
            ) -> Response:
                if timeout is None:
                    timeout = self.default_timeout
                return super().send(request, stream, timeout, verify, cert, proxies)

        _ADAPTER = TimeoutAdapter
    return _ADAPTER


def _strip_userinfo(url: str | None) -> str:
    if not url:
        return ""
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:  # a port that is not a number: never a crash inside an error message
        return "(a malformed proxy URL)"
