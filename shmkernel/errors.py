"""Errors a user sees as one line on stderr (exit 2) or as a failed run.

Why a small hierarchy: the CLI catches `UsageError` (bad input: exit 2, one
line, no traceback) apart from `RunError` (the emulated machine broke: a CPU
process died, a program raised, a runtime invariant failed), so scripts can tell
"you typed it wrong" from "the run is not trustworthy".
"""

from __future__ import annotations


class ShmkernelError(Exception):
    """Base class of every error shmkernel reports to a user."""

    exit_code = 2


class UsageError(ShmkernelError):
    """Bad input: unknown name, value out of range, malformed schedule or file."""


class SegmentError(UsageError):
    """A shared segment that is not ours, has a wrong header, or cannot be made."""


class RunError(ShmkernelError):
    """The run itself failed: a CPU died or raised, or an exactness check failed."""

    exit_code = 3


class NondeterminismError(RunError):
    """A re-executed prefix did not repeat itself: the program reads something
    the explorer does not control (a global changed between executions, the
    time, a random draw), so no search over it can be trusted."""
