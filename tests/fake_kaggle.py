"""A fake Kaggle API for tests: the real kaggle client talks to it over loopback.

The server listens on 127.0.0.1 on an ephemeral port.  The tests point
kagglesdk's production endpoint at ``http://api.kaggle.com:PORT`` and resolve
``api.kaggle.com`` and ``storage.googleapis.com`` to 127.0.0.1; every other
host name that is not loopback is refused (tests/kaggle_site/kaggle_loopback.py),
so nothing leaves the machine, no root is needed and test runs can share it.
It speaks the client's production protocol: a JSON POST to
``/v1/<service>/<method>`` on the API host, answered with the JSON of the
response type (64-bit integers as strings, as proto3 JSON does),
``{"code": N, "message": ...}`` with status N on errors, a 302 redirect to the
zip on the storage host for ``DownloadDataFiles``, a plain PUT of the file to
the storage URL ``StartSubmissionUpload`` hands out.

Use the `fake_kaggle` fixture (``pytest_plugins = ["tests.fake_kaggle"]`` in
conftest.py): it points HOME, KAGGLE_CONFIG_DIR and XDG_CONFIG_HOME at temporary
folders (the real ~/.kaggle is never read), removes every other KAGGLE_* and
proxy variable, sets KAGGLE_USERNAME and KAGGLE_KEY, installs the resolver,
shrinks pipeline.kaggle_client.retry's backoff, puts tests/kaggle_site on PYTHONPATH
with the port in DIGITS_FAKE_KAGGLE_PORT (so ``python -m pipeline`` subprocesses
reach the fake too) and yields a `FakeKaggle`.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import json
import os
import random
import socket
import threading
import zipfile
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.kaggle_site.kaggle_loopback import (
    API_HOST,
    LOOPBACK,
    PORT_VARIABLE,
    STORAGE_HOST,
    api_endpoint,
    resolver,
    storage_url,
)
from tests.slow_drip import dribble

SITE_DIR = Path(__file__).resolve().parent / "kaggle_site"
REAL_ZIP = Path(__file__).resolve().parents[1].parent / "shared/data/digit-recognizer.zip"
USERNAME = "digits-tester"
KEY = "k3y" + "5ec7e7" * 5  # distinctive, so tests can assert it never leaks
TOKEN = "KGAT_" + "70ce9" * 6
PIXELS = 784


_CUM_WEIGHTS = [0.75 + 0.25 / 256 + 0.25 / 256 * i for i in range(256)]


def competition_zip(
    n_train: int = 30, n_test: int = 12, seed: int = 0, members: dict[str, bytes] | None = None
) -> tuple[bytes, list[int]]:
    """A small zip in the Digit Recognizer format, and the true labels of its test rows.

    `members` adds or replaces members (name -> bytes; None-valued keys are dropped).
    """
    rng = random.Random(seed)
    header = ",".join(f"pixel{i}" for i in range(PIXELS))

    def row() -> str:  # mostly background, like the real images
        return ",".join(map(str, rng.choices(range(256), cum_weights=_CUM_WEIGHTS, k=PIXELS)))

    train = [f"label,{header}"] + [f"{rng.randrange(10)},{row()}" for _ in range(n_train)]
    labels = [rng.randrange(10) for _ in range(n_test)]
    test = [header] + [row() for _ in range(n_test)]
    sample = ["ImageId,Label"] + [f"{i},0" for i in range(1, n_test + 1)]
    content: dict[str, bytes | None] = {
        "train.csv": ("\n".join(train) + "\n").encode(),
        "test.csv": ("\n".join(test) + "\n").encode(),
        "sample_submission.csv": ("\n".join(sample) + "\n").encode(),
    }
    content.update(members or {})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in content.items():
            if data is not None:
                z.writestr(name, data)
    return buf.getvalue(), labels


class Competition:
    def __init__(self, name: str, zip_bytes: bytes, labels: list[int] | None = None) -> None:
        self.name = name
        self.title = name.replace("-", " ").title()
        self.rules_accepted = True
        self.labels = labels
        self.last_modified = datetime(2019, 12, 11, 2, 33, 9, tzinfo=UTC)
        self.set_zip(zip_bytes, labels)

    def set_zip(self, zip_bytes: bytes, labels: list[int] | None = None) -> None:
        self.zip = zip_bytes
        self.labels = labels
        self.etag = '"' + hashlib.sha256(zip_bytes).hexdigest()[:20] + '"'
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
            self.files = [(i.filename, i.file_size) for i in z.infolist() if not i.is_dir()]


class FakeKaggle:
    """The server, its knobs and its counters.  Thread-safe; one per test."""

    host = LOOPBACK

    def __init__(self, competition: str = "digit-recognizer") -> None:
        self.competition = competition
        self.username, self.key, self.token = USERNAME, KEY, TOKEN
        zip_bytes, labels = competition_zip()
        self.competitions = {competition: Competition(competition, zip_bytes, labels)}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # knobs
        self.daily_limit = 5
        self.submissions_today = 0
        self.limit_status = 200  # how CreateSubmission refuses over the limit: 200 without a ref, or 400
        self.score: float | None = None  # None: accuracy against the known test labels
        self.submission_error: str | None = None  # a submission errors on Kaggle's side, with this text
        self.polls_until_scored = 1  # GetSubmission answers PENDING this many times first
        self.ignore_ranges = False  # answer Range requests with the whole file (200), like some servers
        self.page_size: int | None = None  # at most this many files (submissions) per List* page
        self._failures: dict[str, list] = {}
        self._delays: dict[str, list] = {}
        self._garbage: dict[str, list] = {}
        self._drips: dict[str, list] = {}
        self._truncate = 0
        self._corrupt = 0
        self._drop: list[int] = []
        # counters
        self.calls: list[str] = []  # API method names, in order
        self.auth: list[str] = []  # 'basic' / 'bearer' / 'none' per API call
        self.zip_requests: list[dict] = []  # one per GET of the zip: {'range', 'status', 'sent'}
        self.zip_bytes_sent = 0
        self.uploads: list[dict] = []  # {'token', 'file_name', 'competition', 'content', 'ref', 'description'}
        self.submissions: dict[int, dict] = {}
        self.proxied = 0  # requests that arrived in proxy (absolute URI) form
        self.storage_requests: list[dict] = []  # {'method', 'path', 'host', 'authorization'} per storage request
        self.port = 0  # set by start()
        self._next_ref = 40_000_001
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- knobs -------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        times: int | None = 1,
        retry_after: float | str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer `method` ('ListDataFiles', ..., 'zip' for the file GET, 'upload' for the PUT,
        '*' for every API call) with HTTP `status`, `times` times (None: always)."""
        self._failures.setdefault(method, []).append([status, retry_after, message, times])

    def delay(self, method: str, seconds: float, times: int | None = None) -> None:
        """Sleep before answering `method` (a slow server, to hit the client's timeout)."""
        self._delays.setdefault(method, []).append([seconds, times])

    def drip(self, method: str, times: int | None = None) -> None:
        """Answer `method` with its headers, then a byte a second for days (`tests.slow_drip`): no timeout trips."""
        self._drips.setdefault(method, []).append([times])

    def garble(self, method: str, line: str, times: int | None = 1) -> None:
        """Answer `method` with `line`, which is not HTTP, and hang up (a confused proxy or middlebox)."""
        self._garbage.setdefault(method, []).append([line, times])

    def truncate_zip(self, times: int = 1) -> None:
        """Serve a zip cut in half (with a matching Content-Length) the next `times` times."""
        self._truncate = times

    def corrupt_zip(self, times: int = 1) -> None:
        """Serve the zip with damaged bytes in the middle (same length) the next `times` times."""
        self._corrupt = times

    def drop_zip(self, after_bytes: int, times: int = 1, stall: float = 0.0) -> None:
        """Announce the full length, send `after_bytes`, stall `stall` seconds, then close the connection."""
        self._drop = [after_bytes, times, stall]

    def serve_zip(
        self, source: bytes | str | Path, competition: str | None = None, labels: list[int] | None = None
    ) -> None:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        name = competition or self.competition
        if name in self.competitions:
            self.competitions[name].set_zip(data, labels)
        else:
            self.competitions[name] = Competition(name, data, labels)

    def touch(self, competition: str | None = None, days: int = 1) -> None:
        """Kaggle updated the files: their last-modified moves forward."""
        self.competitions[competition or self.competition].last_modified += timedelta(days=days)

    def add_submission(self, content: bytes, description: str, file_name: str = "submission.csv") -> int:
        """A submission made without this job (the web page, another machine); returns its ref."""
        with self.lock:
            ref = self._next_ref
            self._next_ref += 1
            upload = {
                "token": None,
                "file_name": file_name,
                "competition": self.competition,
                "content": content,
                "content_length": len(content),
                "ref": ref,
                "description": description,
            }
            self.submissions[ref] = {
                "ref": ref,
                "competition": self.competition,
                "upload": upload,
                "polls": 0,
                "date": datetime.now(UTC),
            }
        return ref

    def refuse_connections(self) -> None:
        """Close the listening socket: every new connection is refused."""
        self.stop()

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """Where the kaggle client sends API calls: http://api.kaggle.com:PORT."""
        return api_endpoint(self.port)

    @property
    def storage_url(self) -> str:
        """Where downloads and uploads go: http://storage.googleapis.com:PORT."""
        return storage_url(self.port)

    def start(self) -> FakeKaggle:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        try:
            server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as e:
            pytest.fail(f"fake Kaggle cannot listen on {self.host}:{self.port or 'an ephemeral port'}: {e}")
        server.daemon_threads = True
        server.handle_error = lambda request, address: None  # clients that hang up are fine
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kaggle", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    # ---- internals used by the handler -----------------------------------------------------

    def _take(self, table: dict, method: str) -> list | None:
        with self.lock:
            for key in (method, "*" if method not in ("zip", "upload") else None):
                for entry in table.get(key, []):
                    if entry[-1] is None:
                        return entry
                    if entry[-1] > 0:
                        entry[-1] -= 1
                        return entry
        return None

    def _take_count(self, attr: str) -> bool:
        with self.lock:
            if getattr(self, attr) > 0:
                setattr(self, attr, getattr(self, attr) - 1)
                return True
        return False

    def score_of(self, competition: Competition, content: bytes) -> str:
        if self.score is not None:
            return f"{self.score:.5f}"
        if not competition.labels:
            return "0.50000"
        rows = content.decode(errors="replace").strip().splitlines()[1:]
        predicted = {}
        for line in rows:
            parts = line.split(",")
            if len(parts) == 2 and parts[0].strip().isdigit() and parts[1].strip().isdigit():
                predicted[int(parts[0])] = int(parts[1])
        right = sum(predicted.get(i + 1) == label for i, label in enumerate(competition.labels))
        return f"{right / len(competition.labels):.5f}"


def _iso(stamp: datetime) -> str:
    return stamp.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKaggle
    server_version = "FakeKaggle/1.0"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    # ---- plumbing --------------------------------------------------------------------------

    def _path(self) -> str:
        if self.path.startswith(("http://", "https://")):  # proxy form: the client used a proxy
            with self.fake.lock:
                self.fake.proxied += 1
            parts = urlsplit(self.path)
            return parts.path + ("?" + parts.query if parts.query else "")
        return self.path

    def _host(self) -> str:
        """The host name the client asked for (the Host header, or the proxy-form URL's host)."""
        if self.path.startswith(("http://", "https://")):
            return (urlsplit(self.path).hostname or "").lower()
        return urlsplit("//" + self.headers.get("Host", "")).hostname or ""

    def _storage(self, route: str) -> bool:
        """Record a storage request; False (after a 404) when it was not sent to the storage host."""
        host = self._host()
        with self.fake.lock:
            self.fake.storage_requests.append(
                {
                    "method": self.command,
                    "path": route,
                    "host": host,
                    "authorization": self.headers.get("Authorization"),
                }
            )
        if host != STORAGE_HOST:
            self._error(404, f"{self.command} is served on {STORAGE_HOST}, not {host}")
            return False
        return True

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, content_type: str = "application/json"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: dict, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, message: str, retry_after: float | str | None = None) -> None:
        """Kaggle's JSON error; `retry_after` in seconds, or a string (an HTTP date) sent as it is."""
        headers = None
        if retry_after is not None:
            headers = {"Retry-After": retry_after if isinstance(retry_after, str) else f"{retry_after:g}"}
        self._json({"code": status, "message": message}, status, headers)

    def _faults(self, method: str) -> bool:
        """Apply delay and failure knobs; True when a failure was sent."""
        delay = self.fake._take(self.fake._delays, method)
        if delay is not None:
            self.fake.stopping.wait(delay[0])
        if self.fake._take(self.fake._drips, method) is not None:
            dribble(self, self.fake.stopping)
            return True
        garbage = self.fake._take(self.fake._garbage, method)
        if garbage is not None:
            self.wfile.write(garbage[0].encode())
            self.wfile.flush()
            self.close_connection = True
            return True
        failure = self.fake._take(self.fake._failures, method)
        if failure is not None:
            status, retry_after, message, _ = failure
            self._error(status, message or f"fake failure {status}", retry_after)
            return True
        return False

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        kind, ok = "none", False
        if header.startswith("Basic "):
            kind = "basic"
            try:
                user, _, key = base64.b64decode(header[6:]).decode().partition(":")
                ok = (user, key) == (self.fake.username, self.fake.key)
            except ValueError:
                ok = False
        elif header.startswith("Bearer "):
            kind, ok = "bearer", header[7:] == self.fake.token
        with self.fake.lock:
            self.fake.auth.append(kind)
        return ok

    def _competition(self, body: dict) -> Competition | None:
        comp = self.fake.competitions.get(body.get("competitionName", ""))
        if comp is None:
            self._error(404, "Competition not found")
        return comp

    # ---- verbs -----------------------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self._host() != API_HOST or not path.startswith("/v1/"):
            return self._error(404, "Not found")
        method = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        with self.fake.lock:
            self.fake.calls.append(method)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._error(400, "Bad JSON")
        if self._faults(method):  # delay/fail knobs apply to IntrospectToken too
            return None
        if method == "IntrospectToken":  # authenticated by the token it checks
            if body.get("token") == self.fake.token:
                return self._json({"active": True, "username": self.fake.username, "scope": "resources.admin"})
            return self._json({"active": False})
        if not self._authorized():
            return self._error(401, "Unauthenticated")
        handler = getattr(self, "api_" + method, None)
        if handler is None:
            return self._error(501, f"fake Kaggle does not implement {method}")
        return handler(body)

    def do_GET(self) -> None:  # noqa: N802
        path = self._path()
        route = urlsplit(path).path
        if not self._storage(route):
            return None
        if not route.startswith("/download/") or not route.endswith(".zip"):
            return self._error(404, "Not found")
        if self._faults("zip"):
            return None
        comp = self.fake.competitions.get(route[len("/download/") : -len(".zip")])
        if comp is None:
            return self._error(404, "Not found")
        self._serve_zip(comp)
        return None

    def do_PUT(self) -> None:  # noqa: N802
        route = urlsplit(self._path()).path
        length = int(self.headers.get("Content-Length") or 0)
        content = self.rfile.read(length) if length else b""
        if not self._storage(route):
            return None
        if self._faults("upload"):
            return None
        token = route[len("/upload/") :]
        with self.fake.lock:
            upload = next((u for u in self.fake.uploads if u["token"] == token), None)
            if upload is None:
                return self._error(404, "Unknown upload")
            upload["content"] = content
        return self._send(200, b"", content_type="text/plain")

    # ---- the zip -------------------------------------------------------------------------

    def _serve_zip(self, comp: Competition) -> None:
        data = comp.zip
        if self.fake._take_count("_truncate"):
            data = data[: len(data) // 2]
        elif self.fake._take_count("_corrupt"):
            middle = len(data) // 2
            data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
        headers = {
            "Last-Modified": email.utils.format_datetime(comp.last_modified, usegmt=True),
            "ETag": comp.etag,
            "Accept-Ranges": "bytes",
        }
        start, status = 0, 200
        wanted = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        honour = if_range in (None, comp.etag, headers["Last-Modified"]) and not self.fake.ignore_ranges
        if honour and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, "text/plain")
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        drop = None
        with self.fake.lock:
            if self.fake._drop and self.fake._drop[1] > 0 and len(body) > self.fake._drop[0]:
                self.fake._drop[1] -= 1
                drop = self.fake._drop[0]
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        payload = body if drop is None else body[:drop]
        sent = 0
        try:
            for i in range(0, len(payload), 1 << 16):
                self.wfile.write(payload[i : i + (1 << 16)])
                sent += len(payload[i : i + (1 << 16)])
            self.wfile.flush()
        finally:
            with self.fake.lock:
                self.fake.zip_bytes_sent += sent
                self.fake.zip_requests.append({"range": wanted or None, "status": status, "sent": sent})
        if drop is not None:
            self.fake.stopping.wait(self.fake._drop[2])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    # ---- API methods ---------------------------------------------------------------------

    def api_ListDataFiles(self, body: dict) -> None:  # noqa: N802
        comp = self._competition(body)
        if comp is None:
            return
        files = [
            {"ref": name, "name": name, "totalBytes": str(size), "creationDate": _iso(comp.last_modified)}
            for name, size in comp.files
        ]
        self._json(self._page(body, "files", files))

    def api_DownloadDataFiles(self, body: dict) -> None:  # noqa: N802
        comp = self._competition(body)
        if comp is None:
            return
        if not comp.rules_accepted:
            return self._error(403, "You must accept this competition's rules before you'll be able to download files.")
        signature = hashlib.sha256(comp.etag.encode()).hexdigest()[:16]
        location = f"{self.fake.storage_url}/download/{comp.name}.zip?X-Goog-Signature={signature}"
        return self._send(302, b"", {"Location": location}, "text/plain")

    def api_GetSubmissionLimits(self, body: dict) -> None:  # noqa: N802
        if self._competition(body) is None:
            return
        today = self.fake.submissions_today
        self._json(
            {
                "numToday": today,
                "numTotal": today,
                "numAllowedNow": max(0, self.fake.daily_limit - today),
                "limitedByTotal": False,
            }
        )

    def api_StartSubmissionUpload(self, body: dict) -> None:  # noqa: N802
        comp = self._competition(body)
        if comp is None:
            return
        if not comp.rules_accepted:
            return self._error(403, "You must accept this competition's rules before you can submit.")
        with self.fake.lock:
            token = f"blob-{len(self.fake.uploads) + 1}"
            self.fake.uploads.append(
                {
                    "token": token,
                    "file_name": body.get("fileName"),
                    "competition": comp.name,
                    "content": None,
                    "content_length": body.get("contentLength"),
                    "ref": None,
                    "description": None,
                }
            )
        self._json({"token": token, "createUrl": f"{self.fake.storage_url}/upload/{token}"})

    def api_CreateSubmission(self, body: dict) -> None:  # noqa: N802
        comp = self._competition(body)
        if comp is None:
            return
        fake = self.fake
        with fake.lock:
            upload = next((u for u in fake.uploads if u["token"] == body.get("blobFileTokens")), None)
            if upload is None or upload["content"] is None:
                return self._error(400, "The file was not uploaded")
            if fake.submissions_today >= fake.daily_limit and fake.limit_status == 400:
                # What Kaggle has also done: HTTP 400 with a message.
                return self._error(
                    400,
                    f"You have reached the daily submission limit of {fake.daily_limit} submissions for this "
                    "competition. Please try again tomorrow UTC.",
                )
            if fake.submissions_today >= fake.daily_limit:
                # What Kaggle does: HTTP 200, no ref, and the kaggle CLI prints it as a success.
                return self._json(
                    {
                        "message": f"Your team has used its daily Submission allowance "
                        f"({fake.daily_limit}) today, please try again tomorrow UTC "
                        "(7.3 hours from now)."
                    }
                )
            ref = fake._next_ref
            fake._next_ref += 1
            fake.submissions_today += 1
            upload["ref"], upload["description"] = ref, body.get("submissionDescription")
            fake.submissions[ref] = {
                "ref": ref,
                "competition": comp.name,
                "upload": upload,
                "polls": 0,
                "date": datetime.now(UTC),
                "error": fake.submission_error,  # decided when it is made, as Kaggle scores each file once
            }
        self._json({"message": f"Successfully submitted to {comp.title}", "ref": str(ref)})  # int64: a string

    def api_GetSubmission(self, body: dict) -> None:  # noqa: N802
        fake = self.fake
        with fake.lock:
            sub = fake.submissions.get(int(body.get("ref") or 0))
            if sub is None:
                return self._error(404, "Submission not found")
            sub["polls"] += 1
            scored = sub["polls"] > fake.polls_until_scored
        self._json(self._submission_json(sub, scored))

    def api_ListSubmissions(self, body: dict) -> None:  # noqa: N802
        if self._competition(body) is None:
            return
        with self.fake.lock:
            subs = [s for s in self.fake.submissions.values() if s["competition"] == body.get("competitionName")]
        self._json(self._page(body, "submissions", [self._submission_json(s, True) for s in reversed(subs)]))

    def _page(self, body: dict, key: str, items: list) -> dict:
        """One page of `items`: pageSize (at most the fake's page_size), pageToken is the offset as a string."""
        limits = [int(n) for n in (body.get("pageSize"), self.fake.page_size) if n]
        size = min(limits) if limits else len(items) or 1
        start = int(body.get("pageToken") or 0)
        page = {key: items[start : start + size]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page

    def _submission_json(self, sub: dict, scored: bool) -> dict:
        upload = sub["upload"]
        out = {
            "ref": str(sub["ref"]),  # int64 fields are JSON strings (proto3 JSON)
            "date": _iso(sub["date"]),
            "description": upload["description"] or "",
            "fileName": upload["file_name"],
            "totalBytes": str(len(upload["content"] or b"")),
            "submittedBy": self.fake.username,
            "status": "PENDING",
        }
        if scored and sub.get("error"):
            out.update(status="ERROR", errorDescription=sub["error"])
        elif scored:
            comp = self.fake.competitions[sub["competition"]]
            out.update(status="COMPLETE", publicScore=self.fake.score_of(comp, upload["content"]))
        return out


# ---- the fixture ---------------------------------------------------------------------------


@pytest.fixture
def fake_kaggle(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """A running FakeKaggle, with the environment pointing the kaggle client at it."""
    import kagglesdk.kaggle_env

    root = tmp_path_factory.mktemp("fake-kaggle")
    home, config = root / "home", root / "kaggle-config"
    home.mkdir()
    config.mkdir()
    for var in list(os.environ):
        if var.startswith("KAGGLE_") or var.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(var)
    for var in ("VERBOSE", "VERBOSE_OUTPUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    monkeypatch.setenv("KAGGLE_USERNAME", USERNAME)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")

    from pipeline.kaggle_client import retry

    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.01)
    monkeypatch.setattr(retry, "BACKOFF_MAX", 0.05)

    fake = FakeKaggle()
    fake.home, fake.config_dir = home, config
    fake.start()
    try:
        monkeypatch.setattr(socket, "getaddrinfo", resolver(socket.getaddrinfo))
        env = kagglesdk.kaggle_env
        monkeypatch.setitem(env._env_to_endpoint, env.KaggleEnv.PROD, fake.api_url)
        # python -m pipeline in a subprocess: tests/kaggle_site/sitecustomize.py does the same there
        monkeypatch.setenv(PORT_VARIABLE, str(fake.port))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(SITE_DIR), os.environ.get("PYTHONPATH")])))
        yield fake
    finally:
        fake.stop()
