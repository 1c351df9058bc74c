"""Waiting in free mode: how a CPU process waits for a word another one writes.

A wait loop (a lock, a stop_machine park, a start word, a ``cpu_relax()``
loop) spins briefly and then naps; it never calls ``sched_yield``.
"""

from __future__ import annotations

import time
from typing import Any

from shmkernel.hw import futex

SCHEDULE_SLEEP_S = 20e-6
#: turns a free-mode wait spins (reading its word, no system call) before it naps
SPIN_TURNS = 64


def spin_then_nap(turns: int) -> int:
    """One turn of a free-mode wait loop (a lock, a park, a start word); returns the
    turns taken so far, to be passed back in.

    Why not ``sched_yield``, as the loops did before: on a host where other
    processes are busy (two ``yes`` beside the suite), a yield hands the core to
    them for a whole time slice, milliseconds for each turn, and a lock that
    changes hands thousands of times a second ran 76x slower (5,000 pairs of
    symbol-get-put: 34 s instead of 0.45 s). A short spin is what a waiting
    CPU does in the kernel, and covers the usual wait on an idle host; past it
    the waiter naps (a sleep gives its core away, and a woken sleeper gets it
    back at once), which took the same run to 0.9 s on that busy host. A CPU
    that shares its core with a peer (more CPUs than cores) lets the peer run
    the same way."""
    if turns < SPIN_TURNS:
        return turns + 1
    time.sleep(SCHEDULE_SLEEP_S)
    return turns


def delay(us: float) -> None:
    """Be away ``us`` microseconds: from 50 µs up it sleeps, so the core really runs
    something else, as a preempted task's does; below that (shorter than a sleep
    can be) it busy-waits."""
    if us >= 50:
        time.sleep(us * 1e-6)
    elif us > 0:
        end = time.perf_counter() + us * 1e-6
        while time.perf_counter() < end:
            pass


def sleep_on_word(w: Any, atomics: Any, idx: int, turns: int) -> int:
    """One turn of a wait for word ``idx`` to change (the start of a run): spin
    `SPIN_TURNS`, then sleep on the word's futex until its writer wakes us
    (`shmkernel.hw.futex` says why not nap-poll: with many CPU processes the
    pollers kept the run queue full), at most 10 ms, so that a stop nobody woke
    us for is seen too."""
    if turns < SPIN_TURNS:
        return turns + 1
    if futex.available:
        futex.wait(atomics.ptr(idx), w[idx], 0.01)
    else:
        time.sleep(SCHEDULE_SLEEP_S)
    return turns
