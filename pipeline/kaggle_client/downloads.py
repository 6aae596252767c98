"""The competition's data in: list Kaggle's files, decide whether to download, fetch the zip, install it.

The zip is streamed into a temporary file in ``data_dir``, resuming with Range
requests when the connection breaks off; it is then checked and unpacked by
`datadir` (a corrupt zip is deleted and fetched once more).
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from pathlib import Path
from typing import Any

from pipeline.core import atomic_files, deadline
from pipeline.core.errors import BadInputError, KaggleError
from pipeline.core.text import ascii_int
from pipeline.core.text import size as show_size
from pipeline.kaggle_client import datadir, retry
from pipeline.kaggle_client.client import COMPETITION, Connection, Log, connect, utc_now
from pipeline.kaggle_client.datadir import REQUIRED, Corrupt

NET_CHUNK = 1 << 16  # a broken-off download resumes from the last whole network chunk
ZIP_ATTEMPTS = 2  # a corrupt zip is deleted and downloaded once more
PAGE_SIZE = 200  # files asked for per ListDataFiles page
TIMEOUT = 60.0  # seconds a request may take in all, and a network chunk of the zip


def have_data(data_dir: str | Path) -> bool:
    """True when every REQUIRED file is present with the size the manifest records.

    Cheap (no hashing); `download` verifies the hashes before it trusts them.
    """
    data_dir = Path(data_dir)
    manifest = datadir.read_manifest(data_dir)
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
    timeout: float | None = None,
) -> dict:
    """Ensure `data_dir` holds the competition files; return the manifest plus 'downloaded'.

    Skips the download (``downloaded: False``) when the local files match the
    manifest (sizes and SHA-256) and Kaggle's file list (names, sizes,
    last-modified) is the one recorded there; ``force=True`` downloads again.
    """
    if not competition or not str(competition).strip():
        raise BadInputError("no competition name given")
    data_dir = Path(data_dir)
    datadir.prepare_dir(data_dir)
    datadir.remove_stale_temps(data_dir)
    with connect(timeout=timeout or TIMEOUT, retries=retries, log=log) as conn:
        remote = _list_files(conn, competition)
        manifest = datadir.read_manifest(data_dir)
        if force:
            conn.log(f"downloading {competition} from Kaggle into {data_dir} (forced)")
        else:
            why = _why_download(data_dir, manifest, competition, remote)
            if why is None:
                assert manifest is not None
                conn.log(f"{data_dir} is up to date with Kaggle's {competition} files; not downloading")
                return {**manifest, "downloaded": False}
            conn.log(f"{why}: downloading {competition} from Kaggle into {data_dir}")
        temps: list[Path] = []  # every temporary file made, until it is renamed into place or deleted
        try:
            new = _download_and_install(conn, data_dir, competition, remote, temps)
        finally:
            # A second clean-up: the one in _download_and_install may itself be cut short by Ctrl-C.
            datadir.remove(temps)
        return {**new, "downloaded": True}


def _list_files(conn: Connection, competition: str) -> list[dict]:
    """Kaggle's file list: [{'name', 'size', 'last_modified'}] sorted by name."""
    from kagglesdk.competitions.types.competition_api_service import ApiListDataFilesRequest

    found: list[dict] = []
    token = ""
    for _ in range(100):  # 20,000 files at most: a server that always sends a next-page token cannot loop us for ever
        request = ApiListDataFilesRequest()
        request.competition_name = competition
        request.page_size = PAGE_SIZE
        if token:
            request.page_token = token
        response = conn.call(
            f"listing the data files of {competition}",
            functools.partial(conn.competitions.list_data_files, request),
            competition,
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
            if atomic_files.sha256(path) != meta["sha256"]:
                return f"{name} changed since the download"
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, KeyError, TypeError, ValueError):
            return f"{name} cannot be checked"
    return None


def _download_and_install(
    conn: Connection, data_dir: Path, competition: str, remote: list[dict], temps: list[Path]
) -> dict:
    unpacked = sum(int(f.get("size") or 0) for f in remote)
    datadir.check_space(data_dir, unpacked)  # again with the zip's size once it is known
    for attempt in range(1, ZIP_ATTEMPTS + 1):
        try:
            zip_tmp = datadir.temp_path(data_dir, f"{_safe_name(competition)}.zip", temps)
            meta = _fetch_zip(conn, competition, zip_tmp, data_dir, unpacked)
            try:
                extracted, plan = datadir.extract(zip_tmp, data_dir, temps)
            except KaggleError as e:
                raise conn.fail(str(e)) from None
            except Corrupt as e:
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
                "downloaded_at": utc_now(),
            }
            datadir.install(data_dir, plan, manifest)
            conn.log(f"installed {', '.join(sorted(extracted))} in {data_dir}")
            return manifest
        finally:
            datadir.remove(temps)
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_zip(conn: Connection, competition: str, dest: Path, data_dir: Path, unpacked: int) -> dict:
    """Stream the competition zip into `dest`, resuming with Range requests when it breaks off."""
    import requests
    from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

    what = f"downloading the data of {competition}"
    shown = data_dir / f"{competition}.zip"

    def start() -> Any:
        request = ApiDownloadDataFilesRequest()
        request.competition_name = competition
        return conn.call(what, lambda: conn.competitions.download_data_files(request), competition)

    response = start()
    size = _content_length(response)
    last_modified = response.headers.get("Last-Modified")
    validator = response.headers.get("ETag") or last_modified
    url = response.url
    datadir.check_space(data_dir, (size or 0) + unpacked)
    conn.log(f"downloading {competition}.zip ({show_size(size)})")
    began = time.monotonic()
    digest = hashlib.sha256()
    written = 0
    breaks = 0
    try:
        out = datadir.open_new(dest, shown)
    except BaseException:
        response.close()
        raise
    with out:
        while True:
            try:
                # each chunk within the timeout: a link that dribbles is a broken link (`Connection.within`)
                chunks = functools.partial(next, response.iter_content(NET_CHUNK), None)
                while (chunk := conn.within(chunks, what)) is not None:
                    datadir.write(out, chunk, shown)
                    digest.update(chunk)
                    written += len(chunk)
                response.close()
                if size is not None and written < size:
                    raise requests.exceptions.ChunkedEncodingError(f"got {written} of {size} bytes")
                break
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                deadline.Expired,
            ) as e:
                response.close()
                breaks += 1
                if breaks > conn.retries:
                    if isinstance(e, requests.exceptions.ChunkedEncodingError):
                        raise conn.fail(
                            f"the download of {competition} kept breaking off ({written} of {show_size(size)} "
                            f"after {breaks} attempts); check the network and try again"
                        ) from None
                    raise conn.error(e, what, competition, attempts=breaks) from None
                delay = retry.backoff(breaks - 1)
                conn.log(
                    f"the download broke off at {written} of {size if size is not None else '?'} bytes "
                    f"({retry.net_reason(e, conn.timeout)}); resuming in {delay:.1f}s"
                )
                time.sleep(delay)
                headers = {}
                if written:
                    headers["Range"] = f"bytes={written}-"
                    if validator:
                        headers["If-Range"] = validator
                try:
                    response = conn.call(what, functools.partial(_get, conn, url, headers), competition)
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
                datadir.truncate(out, shown)
                digest, written = hashlib.sha256(), 0
                size = _content_length(response)
                last_modified = response.headers.get("Last-Modified")
                validator = response.headers.get("ETag") or last_modified
        datadir.fsync(out, shown)
    seconds = max(time.monotonic() - began, 1e-6)
    conn.log(f"downloaded {show_size(written)} in {seconds:.1f}s")
    if size is not None and written != size:
        raise Corrupt(f"{written} bytes arrived, Kaggle announced {size}")  # pragma: no cover
    return {
        "size": written,
        "sha256": digest.hexdigest(),
        "last_modified": last_modified,
        "etag": response.headers.get("ETag"),
    }


def _get(conn: Connection, url: str, headers: dict) -> Any:
    response = conn.plain_session().get(url, headers=headers, stream=True)
    response.raise_for_status()
    return response


def _content_length(response: Any) -> int | None:
    return ascii_int(response.headers.get("Content-Length") or "")


def _range_start(response: Any) -> int | None:
    match = re.match(r"bytes ([0-9]+)-", response.headers.get("Content-Range", ""))
    return ascii_int(match.group(1)) if match else None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "competition"
