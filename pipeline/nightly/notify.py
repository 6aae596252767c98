"""Hearing about a night: how a command ended, as a message sent through Apprise URLs.

The command line knows how a command ended (its exit code and the one
``digits: ...`` line); this module turns that, and the run the command made
or touched, into a title and a body (`message`), decides whether the
``[notify] on`` setting wants it (`wanted`), and sends it (`send`).

Apprise (the ``notify`` extra) speaks mail, ntfy, Slack, Matrix, generic JSON
webhooks and many more through one URL form; it is imported only here and
only when a URL is configured, so ``digits --help`` never loads it.  A
notification that cannot be sent is one warning line, never an exit code:
the night's own outcome stays what it was.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core import deadline
from pipeline.core.config import NotifyConfig
from pipeline.core.errors import OK, BadInputError, exit_meaning
from pipeline.core.text import one_line, pct
from pipeline.store import record, run_folders
from pipeline.store.record import RunRecord

INSTALL = "pip install 'digits[notify]'"
# File times come from the kernel's coarse clock, which can lag time.time() by a tick; a report written in
# the command's first instant must still count as the command's.
CLOCK_SLACK = 2.0


@dataclass(frozen=True)
class Outcome:
    """How one command ended, and the run it made or changed (if any)."""

    command: str  # the command's name ("run"); never its arguments, which may hold a URL's secrets
    exit_code: int
    reason: str | None = None  # the one line stderr got: "digits: ..." (Click's "Error: ...", a traceback's last)
    run_dir: Path | None = None
    record: RunRecord | None = None
    bug: bool = False  # an unexpected exception: its traceback is on stderr

    @property
    def submitted(self) -> bool:
        """A night that ended well after its gate sent the submission to Kaggle."""
        decision = self.record.submit_decision if self.record else None
        return self.exit_code == OK and decision is not None and decision.submitted


def find_run(output_dir: str | Path, since: float) -> tuple[Path, RunRecord] | None:
    """The newest run whose report was written since `since` (a `time.time()`): the one the command made or changed.

    A command does not say which run it touched (``digits run`` returns the
    submission's path, a sweep makes several, ``train --resume`` finishes an
    old one), but every one of them rewrites the run's report.json; the
    output directory's lock keeps other writers out meanwhile.
    """
    root = run_folders.runs_root(output_dir)
    found: list[tuple[Path, RunRecord]] = []
    for run_id in reversed(run_folders.list_runs(output_dir)):
        run_dir = root / run_id
        try:
            changed = (run_dir / record.REPORT).stat().st_mtime
        except OSError:
            continue
        if changed < since - CLOCK_SLACK:
            continue
        try:
            found.append((run_dir, record.read(run_dir)))
        except BadInputError:
            continue
    # a night with a budget finishes one run and starts the next: the finished one made the submission
    return next((f for f in found if f[1].status == "complete"), found[0] if found else None)


def wanted(on: Sequence[str], outcome: Outcome) -> bool:
    """Does the ``[notify] on`` setting ask to hear about this end?"""
    return "always" in on or ("failure" in on and outcome.exit_code != OK) or ("submitted" in on and outcome.submitted)


def message(outcome: Outcome) -> tuple[str, str]:
    """A short, scannable title and a body of ``name: value`` lines."""
    rec = outcome.record
    estimate = rec.submission_estimate if rec else None
    short, what = exit_meaning(outcome.exit_code)
    name = f"digits {outcome.command}"
    if outcome.bug:
        title = f"{name}: crashed (exit {outcome.exit_code}, a bug)"
    elif outcome.exit_code != OK:
        title = f"{name}: failed (exit {outcome.exit_code}, {short})"
    elif rec is not None and rec.status == record.PAUSED:
        title = f"{name}: ok, run {rec.run_id}: {record.standing(rec)}; no new submission tonight"
    else:
        title = f"{name}: {'submitted' if outcome.submitted else 'ok'}"
        if estimate is not None:
            title += f", estimate {pct(estimate)}%"
    if outcome.bug:
        meaning = "an unexpected error (a bug): its traceback is on stderr"
    else:
        meaning = short if outcome.exit_code == OK else f"{short} ({what})"
    lines = [f"command: {name}", f"exit code: {outcome.exit_code}, {meaning}"]
    if outcome.reason:
        lines.append(f"reason: {outcome.reason}")
    if rec is not None:
        lines.append(f"run: {rec.run_id}, recipe {rec.config.model.kind or 'not chosen'}, {rec.status}")
        if outcome.run_dir is not None:
            lines.append(f"run folder: {outcome.run_dir.resolve()}")
        if estimate is not None:
            lines.append(f"estimate: {pct(estimate, 3)}% (the submission's accuracy on rows it never saw)")
        if rec.submit_decision is not None:
            done = "submitted" if rec.submit_decision.submitted else "not submitted"
            lines.append(f"gate: {done}: {rec.submit_decision.reason}")
        if rec.lb_score is not None:
            lines.append(f"leaderboard: {rec.lb_score} (public score)")
        elif rec.leaderboard is not None and rec.leaderboard.error:
            lines.append(f"leaderboard: refused: {one_line(rec.leaderboard.error)}")
    lines.append(f"host: {socket.gethostname()}")
    # one line each, shown as text: the fields of a record a user can edit reach a phone or a mail client too
    return one_line(title), "\n".join(one_line(line) for line in lines)


class NotSent(Exception):
    """Why a notification could not go out, in one line (a warning, never an exit code)."""


def send(
    urls: Sequence[str],
    title: str,
    body: str,
    warn: Callable[[str], None],
    failure: bool = False,
    timeout: float = NotifyConfig.timeout,
) -> bool:
    """Send to every URL within `timeout` seconds in all; any problem is one call of `warn`, never an exception."""
    try:
        _deliver(_notifier(urls), title, body, failure, timeout)
    except NotSent as e:
        warn(f"notification not sent: {e}")
        return False
    except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM while sending: the command's end matters more
        warn("notification not sent: interrupted")
        return False
    return True


def check(urls: Sequence[str], warn: Callable[[str], None]) -> bool:
    """Would `send` work (Apprise installed, every URL understood)?  Said at every end, not only at a failure."""
    try:
        _notifier(urls)
    except NotSent as e:
        warn(f"notifications will not be sent: {e}")
        return False
    return True


def _notifier(urls: Sequence[str]) -> Any:
    """An ``apprise.Apprise`` holding every URL, set to deliver them one after another in the calling thread."""
    try:
        import apprise
    except ImportError:
        raise NotSent(f"notifications need Apprise: {INSTALL}") from None
    # Sequential, and no per-service deadline: then Apprise calls each service in the calling thread, which
    # `_deliver` runs as a daemon thread it can abandon (`deadline.call`).  Apprise's own deadlines stop *waiting* for a service
    # but leave it running on a pool thread, which the interpreter joins at exit (measured: a receiver that
    # never answers, with ?rto=30, held the process's exit for 28 s); its own CLI force-exits for that reason.
    asset = apprise.AppriseAsset(async_mode=False, service_timeout=0)
    notifier = apprise.Apprise(asset=asset)
    with _quiet_apprise():
        for n, url in enumerate(urls, 1):
            if not notifier.add(url):
                # the URL itself is not shown: it often carries a password or a token
                raise NotSent(f"notify URL {n} ({_scheme(url)}) is not one Apprise understands")
    return notifier


def _deliver(notifier: Any, title: str, body: str, failure: bool, timeout: float) -> None:
    import apprise

    def work() -> Any:
        with _quiet_apprise():
            return notifier.notify(
                body=body,
                title=title,
                notify_type=apprise.NotifyType.FAILURE if failure else apprise.NotifyType.SUCCESS,
                body_format=apprise.NotifyFormat.TEXT,
            )

    try:  # in a thread left behind at the deadline, and a stop signal ends the wait (core.deadline says why)
        result = deadline.call(work, timeout, "Apprise")
    except deadline.Expired:
        raise NotSent(f"no answer within {timeout:g} s (the [notify] timeout)") from None
    except Exception as e:  # a plugin's bug must not become the night's
        raise NotSent(one_line(f"Apprise failed: {type(e).__name__}: {e}")) from None
    if not result:
        raise NotSent(_failures(result))


def _failures(result: Any) -> str:
    """What Apprise said about the services that failed, in one line (privacy-safe: its messages mask secrets)."""
    said = []
    services = list(result)
    failed = [s for s in services if not s]
    for service in failed:
        logs = [entry.message for attempt in service.attempts for entry in attempt.logs]
        said.append(f"{service.name}: {logs[0] if logs else service.status.name.lower()}")
    if not said:
        said = [entry.message for entry in result.logs()][:1] or [result.status.name.lower()]
    head = f"{len(failed)} of {len(services)} URLs failed: " if len(services) > 1 else ""
    return one_line(head + "; ".join(said))


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] + "://" if "://" in url else "no scheme"


@contextlib.contextmanager
def _quiet_apprise() -> Iterator[None]:
    """Apprise's own log lines stay out of stderr and our log; what they say comes back through `_failures`.

    Apprise records its services' warnings on each result whatever the
    logger's handlers, so the ``apprise`` logger only needs to stop passing
    records up to handlers that would print them (the root's, anyone's).
    """
    logger = logging.getLogger("apprise")
    propagate = logger.propagate
    sink = logging.NullHandler()  # so Python's last-resort handler does not print them either
    logger.propagate = False
    logger.addHandler(sink)
    try:
        yield
    finally:
        logger.removeHandler(sink)
        logger.propagate = propagate
