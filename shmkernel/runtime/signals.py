"""Ctrl-C and SIGTERM, honoured at once but at a safe point.

Why: a signal turns into an exception wherever the main thread happens to
be. Most places unwind cleanly (a ``finally`` closes the machine), but not
every library does: raised inside hypothesis's own engine, it is taken for a
flaky test and shrunk, then reported as an internal error. So the command
line installs `deliver` as the handler of SIGINT and SIGTERM: outside a
`deferred` block it raises at once (`KeyboardInterrupt`, `Terminated`);
inside one it only records the signal, and the code that runs the work calls
`raise_pending` where an exception is safe (the scheduled drive loop before
each step, the coordinator's waits). A search then stops within one step.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwind, clean up, exit 143. A kind of `KeyboardInterrupt`, because
    that is what libraries (hypothesis among them) let through untouched."""


_pending: list[type[BaseException]] = []
_deferring = 0


def deliver(signum: int, frame: FrameType | None) -> None:
    """The handler of SIGINT and SIGTERM."""
    exc = KeyboardInterrupt if signum == signal.SIGINT else Terminated
    if _deferring:
        _pending.append(exc)
        return
    raise exc()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within it, a signal waits for the next `raise_pending`."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring:
            raise_pending()


def raise_pending() -> None:
    """Raise the signal that arrived while deferred, if any (a safe point)."""
    if _pending:
        exc = _pending[0]
        _pending.clear()
        raise exc()


@contextlib.contextmanager
def handled(exiting: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM go through `deliver` (the command line's whole run).

    ``exiting``: the process ends after the block (the console script). The work
    is done and cleaned up by then, so a signal that comes later is ignored
    instead of the old handler coming back: Python resets SIGINT to the default
    while it shuts down, and a Ctrl-C or SIGTERM then turned a finished run's
    exit code into a silent death by signal (seen in the soak, 2 of 600 runs)."""
    old = {s: signal.signal(s, deliver) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        _pending.clear()
        for s, h in old.items():
            signal.signal(s, signal.SIG_IGN if exiting else h)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def unwind_on_sigterm() -> None:
    """A plain SIGTERM would kill the coordinator without unwinding, leaving the
    segment behind: if nobody handles SIGTERM, make it unwind (SystemExit)."""
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_exit)
