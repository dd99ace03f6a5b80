"""How a command ends for its user: the one table of exit codes, and the tree of errors a user is shown.

Pure. Each error is one line for the user, never a traceback, and carries the exit code it ends with; the CLI maps
an error to its code in one place (`harness.cli.main`). A bug is none of these: it still shows its traceback.

    HarnessError                the user's problem, in one line
    ├── UsageError              exit 2: what the user asked for cannot be done as asked
    │   ├── ProfileError        a profile key or a flag value (also a ValueError)
    │   ├── CapacityError       a capacity setting (also a ValueError)
    │   ├── OutputError         the output folder cannot be used
    │   ├── RunDirError         a results folder cannot be read back (also a ValueError)
    │   └── ReportError         a report cannot be made (a missing folder, matplotlib absent)
    ├── RunAborted              exit 4: the target stopped the run before it could measure
    │   ├── TargetUnreachable   the target did not answer within the retry window
    │   └── SetupFailed         the target answered, but the operator's set-up failed (the message names the call)
    ├── Interrupted             exit 130 or 143: a signal during set-up, before anything was measured
    ├── ServeFailed             exit 4: `harness vtn` cannot serve on the address it was given
    └── ClusterError            exit 2 (a bad --cluster value) or 4 (a scheduler that does not answer), per error
"""

from __future__ import annotations

# ---- exit codes -------------------------------------------------------------------------------------------------
# harness run
EXIT_PASS = 0  # every threshold met on a valid run
EXIT_FAIL = 1  # a threshold failed
EXIT_USAGE = 2  # a usage, profile or output-folder error (nothing ran)
EXIT_INVALID = 3  # the generator was the limit (saturated, or a worker lost): the figures say nothing of the target
EXIT_ABORTED = 4  # the target was unreachable or the set-up failed
EXIT_SIGINT = 130  # interrupted (128 + SIGINT)
EXIT_SIGTERM = 143  # terminated (128 + SIGTERM)
# harness capacity
EXIT_FOUND = 0  # a largest fleet within the SLO was found
EXIT_FIRST_BREACH = 1  # even the first step breached the SLO
EXIT_GENERATOR = 3  # the generator became the limit before any SLO breach
EXIT_INTERRUPTED = EXIT_SIGINT
# harness compare
EXIT_NO_REGRESSION = 0
EXIT_REGRESSION = 1


# ---- the errors a user is shown ---------------------------------------------------------------------------------
class HarnessError(Exception):
    """A problem the user can mend, shown as one line; `exit_code` is what the command ends with."""

    exit_code: int = EXIT_USAGE


class UsageError(HarnessError):
    """What the user asked for cannot be done as asked (exit code 2)."""


class ProfileError(UsageError, ValueError):
    """A user's mistake in a profile or a flag: one line naming the key and the value, exit code 2."""


class CapacityError(UsageError, ValueError):
    """A user's mistake in a capacity setting (one line, exit code 2)."""


class OutputError(UsageError, RuntimeError):
    """The output folder cannot be used (exit code 2)."""


class RunDirError(UsageError, ValueError):
    """A results folder that cannot be read back (exit code 2)."""


class ReportError(UsageError, RuntimeError):
    """The report cannot be made (missing or unreadable run folder, matplotlib absent); one line for the user."""


class RunAborted(HarnessError):
    """The target stopped the run before it could measure (exit code 4)."""

    exit_code = EXIT_ABORTED


class TargetUnreachable(RunAborted, RuntimeError):
    """The target did not answer within the retry window (exit code 4)."""


class SetupFailed(RunAborted, RuntimeError):
    """The target answered, but the operator setup failed (exit code 4): the message says which call."""


class Interrupted(HarnessError):
    """SIGINT or SIGTERM while the run was still being set up: it ends at once, with 128 + the signal's number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ServeFailed(HarnessError):
    """`harness vtn` cannot listen on its address (exit code 4)."""

    exit_code = EXIT_ABORTED


class ClusterError(HarnessError):
    """A --cluster problem to print in one line, with the exit code it maps to (2 usage, 4 unreachable)."""

    def __init__(self, message: str, exit_code: int = EXIT_ABORTED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
