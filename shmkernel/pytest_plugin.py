"""pytest plugin: race tests for your own workloads in a few lines.

Registered as the ``shmkernel`` pytest11 entry point (or put
``pytest_plugins = ["shmkernel.pytest_plugin"]`` in a test module). It gives:

- the ``machine`` fixture, a factory: ``m = machine("refcount", cpus=2,
  tally_delay_us=5)`` returns a started `Machine` laid out for the workload
  (``m.workload``, ``m.opts`` are attached); at teardown every machine is
  closed and the test fails if a segment or semaphore
  ``/dev/shm/shmkernel-<our pid>-*`` or a child process is left;
- ``assert_shows(workload, variant, event, mode="free"|"scheduled", **kw)``
  and ``assert_never_shows(...)``, also as fixtures of the same names.

See docs/pytest_plugin.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["assert_shows", "assert_never_shows", "leaks", "machine"]

_FREE_SECONDS = 1.0
_SCHEDULED_KEYS = (
    "scheduler",
    "max_examples",
    "seed",
    "iterations",
    "memory_model",
    "max_steps",
    "depth",
    "preemption_bound",
    "time_limit",
)


# -- leak checks ---------------------------------------------------------------------------------
def _our_shm(pid: int) -> set[str]:
    tags = (f"shmkernel-{pid}-", f"sem.shmkernel-{pid}-")
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith(tags)}
    except FileNotFoundError:
        return set()


def _children(pid: int) -> set[int]:
    """Live child processes of ``pid``, but for the trackers that end with their parent:
    ours (/dev/shm) and the standard library's ``multiprocessing.resource_tracker``
    (started once by a Dask cluster's spawned workers, it lives as long as we do)."""
    from shmkernel.memory.reaper import tracker_pid

    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and not _is_resource_tracker(int(d)):
            out.add(int(d))
    return out - {tracker_pid()}


def _is_resource_tracker(pid: int) -> bool:
    return b"multiprocessing.resource_tracker" in proc_cmdline(pid)


def proc_cmdline(pid: int) -> bytes:
    """The command line of process ``pid`` (NUL-separated; empty once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def leaks(
    before_shm: set[str] | None = None, before_children: set[int] | None = None, timeout: float = 5.0
) -> tuple[set[str], set[int]]:
    """(segments/semaphores, child pids) of this process left over, waiting up to ``timeout`` for them to go."""
    pid = os.getpid()
    deadline = time.monotonic() + timeout
    while True:
        shm = _our_shm(pid) - (before_shm or set())
        kids = _children(pid) - (before_children or set())
        if (not shm and not kids) or time.monotonic() > deadline:
            return shm, kids
        time.sleep(0.05)


# -- helpers -------------------------------------------------------------------------------------
def _workload(workload: Any) -> Any:
    from shmkernel.workload import registry as workloads

    return workloads.get(workload) if isinstance(workload, str) else workloads.as_workload(workload)


def _free_run(
    workload: Any, variant: str, seconds: float, cpus: int | None, iterations: int | None = None, **opts: Any
) -> dict[str, Any]:
    """One free run: ``iterations`` per CPU when given (a budget the host's load cannot
    shrink), else ``seconds``."""
    from shmkernel.measure.record import measure_free
    from shmkernel.workload.machines import open_machine

    wl = _workload(workload)
    parsed = wl.parse_options(opts)
    with open_machine(wl, cpus or wl.default_cpus, parsed) as m:
        if iterations is not None:
            return measure_free(m, wl, variant, parsed, iterations=iterations)
        return measure_free(m, wl, variant, parsed, seconds=seconds)


def _check_event(workload: Any, event: str) -> Any:
    wl = _workload(workload)
    if event not in wl.events and event not in ("warn", "bug", "deadlock", "livelock"):
        raise ValueError(f"workload {wl.name!r} has no event {event!r}; it has {', '.join(wl.events)}")
    return wl


def _explore(wl: Any, variant: str, cpus: int | None, kw: dict[str, Any], iterations: int | None) -> Any:
    from shmkernel.schedule.explorer import explore

    kw = dict(kw) if iterations is None else dict(kw, iterations=iterations)
    skw = {k: kw.pop(k) for k in list(kw) if k in _SCHEDULED_KEYS}
    return explore(wl, variant=variant, cpus=cpus, opts=kw, **skw)


def assert_shows(
    workload: Any,
    variant: str,
    event: str,
    mode: str = "free",
    *,
    seconds: float = _FREE_SECONDS,
    cpus: int | None = None,
    iterations: int | None = None,
    attempts: int = 2,
    **kw: Any,
) -> Any:
    """Fail unless ``variant`` shows ``event``; returns the run record (free) or `ExploreResult` (scheduled).

    free: up to ``attempts`` runs until one shows it: each of ``iterations`` per CPU
    when given (a fixed budget: the chance that every attempt misses is that of one
    attempt, to the power ``attempts``, whatever the host's load does to time),
    else of ``seconds``, 4x longer each time;
    scheduled: `shmkernel.explore.explore` (``scheduler`` "exhaustive" unless
    given: "hypothesis", "random", "pct"; ``max_examples``, ``iterations``...);
    other keywords are workload options.
    """
    __tracebackhide__ = True
    wl = _check_event(workload, event)
    if mode == "free":
        r: dict[str, Any] = {}
        for i in range(attempts):
            r = _free_run(wl, variant, seconds * 4**i, cpus, iterations, **kw)
            if r["events"].get(event, 0) > 0:
                return r
        tried = r.get("rates", {}).get(event)
        bound = f"; rate < {tried['ci95'][1]:.3g} per 10^6 {tried['denominator_name']}" if tried else ""
        budget = f"{iterations:,} iterations" if iterations is not None else f"{seconds:g} s and longer"
        pytest.fail(f"{wl.name}/{variant}: no {event} in {attempts} free runs of {budget}{bound}", pytrace=False)
    if mode == "scheduled":
        res = _explore(wl, variant, cpus, kw, iterations)
        if not (res.found and res.events.get(event, 0) > 0):
            what = f"found {res.events} instead" if res.found else "found nothing"
            pytest.fail(
                f"{wl.name}/{variant}: {res.scheduler} ran {res.examples} execution(s) and {what}, not {event}",
                pytrace=False,
            )
        return res
    raise ValueError(f"mode must be 'free' or 'scheduled', got {mode!r}")


def assert_never_shows(
    workload: Any,
    variant: str,
    event: str,
    mode: str = "free",
    *,
    seconds: float = _FREE_SECONDS,
    cpus: int | None = None,
    iterations: int | None = None,
    allow_incomplete: bool = False,
    **kw: Any,
) -> Any:
    """Fail if ``variant`` shows ``event`` (free: one run of ``seconds``; scheduled: the whole search).

    Scheduled, it passes only on a *proof* (verdict ``proved``: a complete
    search that covered every execution): a search that ran out of budget or
    time, was cut by a preemption bound, or only sampled (hypothesis, random,
    pct) fails with the reason, unless ``allow_incomplete=True`` accepts a
    ``not-proved`` verdict (a smoke test, not a guarantee).
    """
    __tracebackhide__ = True
    wl = _check_event(workload, event)
    if mode == "free":
        r = _free_run(wl, variant, seconds, cpus, iterations, **kw)
        n = r["events"].get(event, 0)
        if n:
            budget = f"{iterations:,} iterations" if iterations is not None else f"{seconds:g} s"
            pytest.fail(f"{wl.name}/{variant}: {n} {event} in a free run of {budget}", pytrace=False)
        return r
    if mode == "scheduled":
        res = _explore(wl, variant, cpus, kw, iterations)
        if res.found:
            pytest.fail(
                f"{wl.name}/{variant}: {res.scheduler} found {res.events}\n{res.trace}\nreplay: {res.replay_command()}",
                pytrace=False,
            )
        if res.verdict != "proved" and not allow_incomplete:
            pytest.fail(
                f"{wl.name}/{variant}: the search was not complete, so nothing is proved: "
                f"{res.headline()} (allow_incomplete=True accepts that)",
                pytrace=False,
            )
        return res
    raise ValueError(f"mode must be 'free' or 'scheduled', got {mode!r}")


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def machine() -> Any:
    """Factory: ``machine(workload, cpus=None, pin=True, **options)`` -> a started Machine; torn down with leak checks."""
    from shmkernel.workload.machines import open_machine

    before_shm = _our_shm(os.getpid())
    before_kids = _children(os.getpid())
    made: list[Any] = []

    def make(workload: Any, cpus: int | None = None, pin: bool = True, **opts: Any) -> Any:
        wl = _workload(workload)
        parsed = wl.parse_options(opts)
        m = open_machine(wl, cpus or wl.default_cpus, parsed, pin=pin)
        made.append(m)
        m.start()
        m.workload, m.opts = wl, parsed
        return m

    yield make
    for m in reversed(made):
        m.close()
    shm, kids = leaks(before_shm, before_kids)
    assert not shm, f"shmkernel machine leaked in /dev/shm: {sorted(shm)}"
    assert not kids, f"shmkernel machine left child processes: {sorted(kids)}"


@pytest.fixture(name="assert_shows")
def _assert_shows_fixture() -> Callable[..., Any]:
    return assert_shows


@pytest.fixture(name="assert_never_shows")
def _assert_never_shows_fixture() -> Callable[..., Any]:
    return assert_never_shows
