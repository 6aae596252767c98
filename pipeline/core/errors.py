"""Errors that end a command with one line on stderr and a documented exit code.

Everything the library raises on purpose is a `DigitsError`; the CLI turns it
into ``digits: <message>`` and ``sys.exit(error.exit_code)``.  Anything else is
a bug and keeps its traceback.
"""

OK = 0
BAD_INPUT = 1
USAGE = 2  # also Click's own code for bad options
KAGGLE = 3
INTERRUPTED = 4
BUSY = 5
STORAGE = 6
CLUSTER = 7

# What each exit code means, in one place: the CLI's epilog and the notifications (pipeline.nightly.notify)
# say it in these words, and the manual's table is generated from it (docs/exit-codes.md, mkdocs_hooks.py).
# A short name, then what it covers.
EXIT_MEANINGS: dict[int, tuple[str, str]] = {
    OK: ("ok", "also when --submit decided not to submit"),
    BAD_INPUT: ("bad input", "a data file, config file or run folder"),
    USAGE: ("usage", "a bad or conflicting option"),
    KAGGLE: ("Kaggle", "credentials, rules not accepted, daily limit, server error, unreachable"),
    INTERRUPTED: ("interrupted", "SIGINT/SIGTERM/SIGHUP; finished folds are saved, --resume continues"),
    BUSY: ("output dir busy", "another run holds its lock, or gc while another digits uses the runs"),
    STORAGE: ("cannot write output", "disk full, read-only or missing folder, standard output full"),
    CLUSTER: ("Ray cluster", "unreachable, or a fold failed on it"),
}


def exit_meaning(code: int) -> tuple[str, str]:
    """The short name of an exit code and what it covers; a code digits never documents says so."""
    return EXIT_MEANINGS.get(code, ("undocumented", "not an exit code digits documents"))


class DigitsError(Exception):
    """Base class: a failure the user can act on, described in one line."""

    exit_code = BAD_INPUT


class BadInputError(DigitsError):
    """A data file, config file, run folder or option value is wrong."""

    exit_code = BAD_INPUT


class UsageError(DigitsError):
    """The command line is wrong: an unknown or conflicting option, or an option's value."""

    exit_code = USAGE


class KaggleError(DigitsError):
    """Kaggle refused, failed or could not be reached."""

    exit_code = KAGGLE


class InterruptedRun(DigitsError):
    """The run was stopped by SIGINT/SIGTERM/SIGHUP after saving what was finished."""

    exit_code = INTERRUPTED


class BusyError(DigitsError):
    """Another run holds the lock on the output directory."""

    exit_code = BUSY


class StorageError(DigitsError):
    """An output could not be written: disk full, read-only or missing folder."""

    exit_code = STORAGE


class ClusterError(DigitsError):
    """The Ray cluster could not be reached, or a fold failed on it for a reason of its own."""

    exit_code = CLUSTER
