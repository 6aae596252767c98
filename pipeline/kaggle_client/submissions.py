"""Submissions out: check today's limit, upload the file, create the submission, poll for its score; list them.

The kaggle CLI reports a refused submission (the daily limit) as a success
and prints to stdout; here every refusal is a one-line `KaggleError`, and a
submission Kaggle fails to score raises with Kaggle's description.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import IO, Any

from pipeline.core import file_reads
from pipeline.core.errors import BadInputError, KaggleError
from pipeline.kaggle_client.client import Connection, Log, connect, flat, iso, kaggle_message, utc_now

SUBMIT_TIMEOUT = 60.0  # seconds per request while submitting
SUBMIT_RETRIES = 3

_LIMIT_RE = re.compile(
    r"daily submission|submission allowance|submission limit|submissions? (?:per|a) day|try again tomorrow",
    re.IGNORECASE,
)


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
    with connect(timeout=SUBMIT_TIMEOUT, retries=SUBMIT_RETRIES, log=log) as conn:
        import requests
        from kagglesdk.competitions.types.competition_api_service import (
            ApiCreateSubmissionRequest,
            ApiStartSubmissionUploadRequest,
        )

        _check_limits(conn, competition)

        start = ApiStartSubmissionUploadRequest()
        start.competition_name = competition
        start.file_name = path.name
        start.content_length = size
        start.last_modified_epoch_seconds = mtime
        upload = conn.call(
            f"starting the upload to {competition}",
            lambda: conn.competitions.start_submission_upload(start),
            competition,
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

        def create_submission() -> Any:
            try:
                return conn.competitions.create_submission(create)
            except requests.exceptions.HTTPError as e:
                said = kaggle_message(e) if e.response is not None and e.response.status_code == 400 else ""
                if _LIMIT_RE.search(said):  # Kaggle has refused over-limit submissions this way too
                    raise _limit_reached(conn, competition, said) from None
                raise

        created = conn.call(
            f"creating the submission to {competition}",
            create_submission,
            competition,
            idempotent=False,
            unsure="the submission may have been made all the same: check your submissions on Kaggle "
            "before submitting again",
        )
        said = flat(created.message or "")
        if not created.ref:  # the kaggle CLI prints this message and exits 0
            if _LIMIT_RE.search(said):
                raise _limit_reached(conn, competition, said)
            raise conn.fail(f"Kaggle did not accept the submission to {competition}: {said or 'no submission ref'}")
        result = {
            "ref": int(created.ref),
            "status": "pending",
            "public_score": None,
            "error": None,
            "message": message,
            "submitted_at": utc_now(),
            "competition": competition,
        }
        conn.log(f"submitted {path.name} to {competition} as ref {result['ref']}")
        return _poll(conn, result, wait=wait, poll=poll)


def _limit_reached(conn: Connection, competition: str, said: str) -> KaggleError:
    """Kaggle refused CreateSubmission over the daily limit (HTTP 200 without a ref, or HTTP 400)."""
    return conn.fail(f"daily submission limit reached for {competition}; nothing was submitted; Kaggle says: {said}")


def _check_limits(conn: Connection, competition: str) -> None:
    """Refuse before uploading when Kaggle says today's submissions are used up (best effort)."""
    from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionLimitsRequest

    request = ApiGetSubmissionLimitsRequest()
    request.competition_name = competition
    try:
        limits = conn.call(
            "checking the submission limits",
            lambda: conn.competitions.get_submission_limits(request),
            competition,
            retries=0,
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


def _put_file(conn: Connection, url: str, path: Path) -> None:
    """PUT the file to the signed storage URL; only 200 or 201 mean it is all there (as the kaggle CLI checks).

    Anything else, such as cloud storage's 308 Resume Incomplete, is a
    KaggleError before CreateSubmission is sent.
    """

    def put() -> Any:
        with _open_submission(path) as handle:
            response = conn.plain_session().put(url, data=handle)
        response.raise_for_status()  # 4xx/5xx: retried or reported by conn.call
        if response.status_code not in (200, 201):
            response.close()
            raise conn.fail(
                f"the upload of {path.name} was not completed: the storage URL answered HTTP "
                f"{response.status_code} {response.reason or ''}; nothing was submitted; try again later"
            )
        return response

    conn.call(f"uploading {path.name}", put)


def _open_submission(path: Path) -> IO[bytes]:
    try:
        return file_reads.open_regular(path)
    except OSError as e:
        raise BadInputError(f"cannot read submission file {path}: {e.strerror or e}") from None


def _poll(conn: Connection, result: dict, *, wait: float, poll: float) -> dict:
    import requests
    from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionRequest
    from kagglesdk.competitions.types.submission_status import SubmissionStatus

    ref = result["ref"]
    request = ApiGetSubmissionRequest()
    request.ref = ref

    def get() -> Any:
        try:
            return conn.competitions.get_submission(request)
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
                result["submitted_at"] = iso(submission.date)
            if submission.status == SubmissionStatus.COMPLETE:
                result["status"] = "complete"
                result["public_score"] = _score(submission.public_score)
                shown = result["public_score"] if result["public_score"] is not None else "not published"
                conn.log(f"submission {ref} scored: public score {shown}")
                return result
            if submission.status == SubmissionStatus.ERROR:
                description = flat(submission.error_description or "") or "Kaggle gave no description"
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


def _score(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


LIST_TIMEOUT = 30.0
LIST_PAGE_SIZE = 100


def list_submissions(competition: str, *, log: Log | None = print) -> list[dict]:
    """Every submission of this account to `competition`, newest first, as Kaggle lists them.

    Each is {'ref', 'status' ('pending'|'complete'|'error'), 'public_score',
    'error', 'message', 'submitted_at', 'file_name', 'competition'}: the
    shape `submit` returns, so the ledger reads both the same way.
    """
    from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest
    from kagglesdk.competitions.types.submission_status import SubmissionStatus

    states = {SubmissionStatus.COMPLETE: "complete", SubmissionStatus.ERROR: "error"}
    found: list[dict] = []
    with connect(timeout=LIST_TIMEOUT, retries=SUBMIT_RETRIES, log=log) as conn:
        token = ""
        for _ in range(100):  # 10,000 submissions at most: a server that always sends a next-page token cannot loop us
            request = ApiListSubmissionsRequest()
            request.competition_name = competition
            request.page_size = LIST_PAGE_SIZE
            if token:
                request.page_token = token
            response = conn.call(
                f"listing the submissions to {competition}",
                functools.partial(conn.competitions.list_submissions, request),
                competition,
            )
            for sub in response.submissions or []:
                if not sub.ref:
                    continue
                status = states.get(sub.status, "pending")
                found.append(
                    {
                        "ref": int(sub.ref),
                        "status": status,
                        "public_score": _score(sub.public_score) if status == "complete" else None,
                        "error": conn.secrets.scrub(flat(sub.error_description or "")) or None
                        if status == "error"
                        else None,
                        "message": flat(sub.description or "") or None,
                        "submitted_at": iso(sub.date) if sub.date is not None else None,
                        "file_name": sub.file_name or None,
                        "competition": competition,
                    }
                )
            token = response.next_page_token or ""
            if not token:
                break
    return found
