"""Kaggle credentials: where the kaggle client finds them, and keeping them out of every line we emit.

`Secrets.discover` collects every credential value the kaggle client could
use (``KAGGLE_USERNAME``/``KAGGLE_KEY``, ``kaggle.json`` in ``KAGGLE_CONFIG_DIR``
or ``~/.kaggle``, ``KAGGLE_API_TOKEN``, ``~/.kaggle/access_token``, OAuth
``credentials.json``, proxy passwords) before the client runs, so `scrub` can
blank them out of logs, errors and results.

`import_kaggle_api` imports the kaggle client.  ``import kaggle`` runs
``KaggleApi().authenticate()`` at import time, which checks an API token or
OAuth credentials over the network with no timeout; the import here sees an
empty credential environment, so it does no network I/O at all (our own
`authenticate` call then goes through a session with a timeout).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.core import file_reads
from pipeline.core.text import one_line

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class Secrets:
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
    def discover(cls) -> Secrets:
        """Secrets from every place the kaggle client reads them, before it runs."""
        s = cls()
        s.add(os.environ.get("KAGGLE_KEY"), os.environ.get("KAGGLE_API_TOKEN"))
        s.add_basic(os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY"))
        home = Path(os.path.expanduser("~")) / ".kaggle"
        token = os.environ.get("KAGGLE_API_TOKEN")
        for token_file in (token, home / "access_token", home / "access_token.txt"):
            if token_file:
                with contextlib.suppress(OSError, ValueError):  # a FIFO (NotRegularFile) is never waited on
                    s.add(file_reads.read_text(token_file, errors="replace"))
        proxies = [os.environ.get(k) for k in (*PROXY_VARIABLES, "KAGGLE_PROXY")]
        for json_file in (Path(config_dir()) / "kaggle.json", home / "kaggle.json", home / "credentials.json"):
            with contextlib.suppress(*file_reads.UNREADABLE, AttributeError):  # damaged or not an object: no secrets
                data = json.loads(file_reads.read_text(json_file, errors="replace"))
                s.add(*(data.get(k) for k in ("key", "token", "refresh_token", "access_token")))
                s.add_basic(data.get("username"), data.get("key"))
                proxies.append(data.get("proxy"))
        for proxy in proxies:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                s.add(urlsplit(proxy).password)
        return s


def config_dir() -> str:
    """Where the kaggle client looks for kaggle.json (same rules as KaggleApi)."""
    configured = os.environ.get("KAGGLE_CONFIG_DIR")
    if configured:
        return configured
    home = os.path.expanduser("~")
    legacy = os.path.join(home, ".kaggle")
    if sys.platform.startswith("linux") and not os.path.exists(legacy):
        return os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "kaggle")
    return legacy


def config_proxy(api: Any) -> str | None:
    """The proxy set in kaggle.json or KAGGLE_PROXY, as the kaggle client read it."""
    proxy = (getattr(api, "config_values", None) or {}).get("proxy")
    return proxy if isinstance(proxy, str) and proxy.strip() else None


def kaggle_json_problem(path: str) -> str | None:
    """Why the kaggle.json at `path` cannot give credentials, or None (it is fine, or there is none).

    The kaggle client ignores a kaggle.json it cannot read or parse and then
    reports that there are no credentials at all; this names the file and
    what is wrong with it instead.
    """
    if not os.path.lexists(path):
        return None
    try:
        data = json.loads(file_reads.read_text(path))
    except file_reads.NotRegularFile:
        return f"{path}: not a regular file (expected the kaggle.json from https://www.kaggle.com/settings/api)"
    except OSError as e:
        return f"{path}: cannot read the Kaggle credentials: {e.strerror or type(e).__name__}"
    except file_reads.UNREADABLE as e:  # not UTF-8, not JSON, nested thousands deep
        return f"{path}: not a valid kaggle.json ({type(e).__name__}: {one_line(e, 200)}); download a new one at https://www.kaggle.com/settings/api"
    if not isinstance(data, dict):
        return f"{path}: not a valid kaggle.json (expected a JSON object with username and key)"
    if not (isinstance(data.get("username"), str) and isinstance(data.get("key"), str)):
        return (
            f"{path}: holds no username and key; download a new kaggle.json at https://www.kaggle.com/settings/api "
            "(or give KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN)"
        )
    return None


def proxy_problem(source: str, value: object) -> str | None:
    """Why the proxy URL `value` (from `source`: a variable, or kaggle.json) cannot be used, or None.

    A port that is not a number or out of range, or an unclosed IPv6
    bracket, makes urllib and requests raise ValueError wherever the URL is
    parsed, even inside the message of another failure.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parts = urlsplit(value if "://" in value else "http://" + value)
        parts.port  # noqa: B018 - parsing the port is the check
        if not parts.hostname:
            raise ValueError("no host name")
    except ValueError as e:
        return f"proxy {source}={value!r} is not a valid URL ({e}); fix it or unset it"
    return None


def no_credentials_message(config_dir: str) -> str:
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


def import_kaggle_api() -> Any:
    """kaggle's ``KaggleApi`` class, imported quietly and without network I/O.

    Importing the ``kaggle`` package authenticates: with a token or OAuth
    credentials it sends an IntrospectToken request without a timeout, and it
    prints help to stdout.  For the duration of the import the process sees no
    ``KAGGLE_*`` variables and an empty temporary HOME, so that check finds
    nothing to send; the environment is restored exactly afterwards.  Raises
    what the import raises (SystemExit included).
    """
    hidden = {k: v for k, v in os.environ.items() if k.startswith("KAGGLE_") or k in _IMPORT_HIDDEN}
    out = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="digits-kaggle-import.") as empty_home:
        try:
            for name in hidden:
                del os.environ[name]
            os.environ["HOME"] = empty_home
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                from kaggle.api.kaggle_api_extended import KaggleApi
        finally:
            for name in [k for k in os.environ if k.startswith("KAGGLE_") or k in _IMPORT_HIDDEN]:
                del os.environ[name]
            os.environ.update(hidden)
    return KaggleApi


# HOME locates ~/.kaggle (tokens, credentials.json); VERBOSE makes the client log headers.
_IMPORT_HIDDEN = ("HOME", "XDG_CONFIG_HOME", "VERBOSE", "VERBOSE_OUTPUT")
