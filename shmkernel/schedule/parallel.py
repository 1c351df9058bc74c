"""``--jobs`` and ``--cluster``: a search's jobs on worker processes or a Dask cluster.

An exhaustive search (Optimal DPOR, native/sc) begins as always, in this
process, keeping the CPU that ran last; a program it settles within
`SPLIT_AFTER` executions (a bug found, a proof) is settled exactly as
without workers. Otherwise, where the sequential search would start over
taking turns, the tree is cut into independent subtrees
(`shmkernel.schedule.split`), at least ``subtrees`` of them, and each is a
job: on ``jobs`` worker processes of this host, or on a Dask cluster
(``cluster``: an address, or ``"local"`` for a `LocalCluster` of ``jobs``
workers). The first job to find a violation stops the others (a shared
flag, checked between executions); a proof is the sum of its jobs'
executions, which depends on the cut (on ``subtrees``), never on the number
of workers. A Dask worker that dies loses nothing: the scheduler runs its
job again elsewhere.

Why the split is not the default for one worker: each subtree repeats some
traces its siblings ran, so on one core the unsplit search is never slower
and often faster (see `DEFAULT_SUBTREES`).

The samplers (random, pct, hypothesis) with ``jobs > 1`` run one job per
worker with independent seeds (``seed``, ``seed + 1``, ...), the budget
shared between them.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.runtime import signals
from shmkernel.schedule.dpor import DPORScheduler
from shmkernel.schedule.searches import Search, UntilKernelSync, handed_on, scheduler_search
from shmkernel.schedule.split import Job, JobResult, cut, job_result, run_job

#: executions the search runs in this process before it splits
SPLIT_AFTER = 200
#: subtrees the cut aims for unless told (``--subtrees``): few, because every subtree
#: repeats some traces its siblings ran (`shmkernel.schedule.split`), enough for two
#: workers to share. Measured proofs: static-key upstream x2 iterations 23,924
#: executions cut into 4 (as many as unsplit), 33,588 into 8, 35,384 into 22;
#: modcount-2002 try-module-get 24,046 into 6, 35,450 into 10, 59,066 into 40
#: (6,403 unsplit)
DEFAULT_SUBTREES = 8


def split_search(
    sess: Any,
    template: Job,
    jobs: int,
    cluster: str | None,
    budget: int,
    deadline: float | None,
    subtrees: int = DEFAULT_SUBTREES,
) -> tuple[Search, dict[str, int]]:
    """The exhaustive search of ``sess``'s program, cut into at least ``subtrees``
    subtrees after `SPLIT_AFTER` executions; returns the search and how it was split
    (``subtrees``, ``cut_depth``, ``probes``; empty when it never split)."""
    sess.engine.preemption_steps = False
    first = UntilKernelSync(DPORScheduler(min(budget, SPLIT_AFTER), restart_after=None), stops=True)
    s = scheduler_search(sess, first, deadline)
    if first.met:  # a grace period or a stop before the cut: unsplit, here (`handed_on` says why)
        return handed_on(sess, first, s, budget, deadline), {}
    if s.found is not None or s.stopped_by != "budget" or budget <= SPLIT_AFTER:
        return s, {}
    c = cut(sess, subtrees)
    total = Search(c.search.found, s.examples + c.search.examples, sleep_blocked=s.sleep_blocked)
    total.sleep_blocked += c.search.sleep_blocked
    info = {"subtrees": len(c.subtrees), "cut_depth": c.depth, "probes": c.probes}
    if total.found is not None:
        return total, info
    left = budget - total.examples
    seconds = None if deadline is None else max(deadline - time.monotonic(), 0.001)
    work = [replace(template, budget=left, seconds=seconds, subtree=t) for t in c.subtrees]
    _gather(total, run_jobs(work, jobs, cluster, sess), budget, sess)
    return total, info


def sampled_search(
    sess: Any, template: Job, jobs: int, cluster: str | None, budget: int, deadline: float | None
) -> Search:
    """A sampler on ``jobs`` workers with seeds ``seed .. seed + jobs - 1``."""
    share = -(-budget // jobs)
    seconds = None if deadline is None else max(deadline - time.monotonic(), 0.001)
    work = [replace(template, budget=share, seconds=seconds, seed=template.seed + k) for k in range(jobs)]
    total = Search()
    _gather(total, run_jobs(work, jobs, cluster, sess), budget, sess)
    return total


def _gather(total: Search, results: Iterator[JobResult], budget: int, sess: Any) -> None:
    """Add up the jobs' results until one finds a violation (the others stop)."""
    try:
        _add_up(total, results, budget, sess)
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _add_up(total: Search, results: Iterator[JobResult], budget: int, sess: Any) -> None:
    reasons = set()
    for r in results:
        total.examples += r.examples
        if total.examples >= budget and r.found is None:  # the whole search's budget is spent
            reasons.add("budget")
            break
        total.pruned += r.pruned
        total.sleep_blocked += r.sleep_blocked
        sess.engine.steps_total += r.steps
        sess.engine.step_seconds += r.step_seconds
        if r.found is not None:
            total.found = _Found(r.found)  # type: ignore[assignment]
            break
        if r.stopped_by:
            reasons.add(r.stopped_by)
    if total.found is None:
        for why in ("time", "sampling", "budget"):
            if why in reasons:
                total.stopped_by = why
                break
        if total.examples >= budget and reasons:
            total.stopped_by = total.stopped_by or "budget"


class _Found:
    """A violation found by a worker: its choices, which `_trace_found` replays here."""

    def __init__(self, choices: list[int]) -> None:
        self.choices = choices


# -- where the jobs run ---------------------------------------------------------------------------------
def run_jobs(work: list[Job], jobs: int, cluster: str | None, sess: Any) -> Iterator[JobResult]:
    """Each job's result as it comes; closing the iterator stops the jobs still running.
    With one job at a time and no cluster they run here, one after another, on ``sess``."""
    if cluster:
        return _on_cluster(work, jobs, cluster)
    if jobs <= 1:
        return _here(work, sess)
    return _on_pool(work, jobs)


def _here(work: list[Job], sess: Any) -> Iterator[JobResult]:
    eng = sess.engine
    used = 0
    for job in work:
        if used >= job.budget:
            return
        r = job_result(sess, replace(job, budget=job.budget - used))
        used += r.examples
        eng.steps_total -= r.steps  # _add_up adds them back, as a worker's
        eng.step_seconds -= r.step_seconds
        yield r


_stop: Any = None
_sessions: dict[Any, Any] = {}  # a worker's sessions, one per program, kept from job to job


def _init_worker(stop: Any, parent: int) -> None:
    global _stop
    from multiprocessing.util import Finalize

    from shmkernel.runtime import machine
    from shmkernel.runtime.cpu_process import set_pdeathsig

    machine._live.clear()  # the coordinator's machine is the coordinator's to close, never ours
    _stop = stop
    Finalize(None, _close_sessions, exitpriority=10)  # at the worker's exit, even a SIGTERMed one
    # not the coordinator's handlers (inherited by the fork): Ctrl-C is the coordinator's
    # to handle, and a SIGTERM (pool.terminate) exits at once, quietly, closing the sessions
    signals._pending.clear()
    signals._deferring = 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    set_pdeathsig(signal.SIGTERM)  # a coordinator killed with -9 takes its workers along
    if os.getppid() != parent:
        raise SystemExit(143)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _close_sessions() -> None:
    for sess in _sessions.values():
        sess.__exit__(None, None, None)
    _sessions.clear()


def _pool_job(job: Job) -> JobResult:
    return run_job(job, stop=_stop.is_set, sessions=_sessions)


def _on_pool(work: list[Job], jobs: int) -> Iterator[JobResult]:
    # fork: a worker starts in milliseconds, and neither needs the caller's __main__
    # to be importable (spawn and forkserver do) nor pays for importing numpy again. A
    # worker forgets the coordinator's open machine (`_init_worker`) and opens its own.
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    pool = ctx.Pool(min(jobs, len(work)), initializer=_init_worker, initargs=(stop, os.getpid()))
    try:
        it = pool.imap_unordered(_pool_job, work)
        while True:
            try:
                r = it.next(timeout=0.2)
            except mp.TimeoutError:
                signals.raise_pending()
                continue
            except StopIteration:
                break
            yield r
    except GeneratorExit:  # a violation found: the others stop at their next execution
        stop.set()
        pool.close()
        pool.join()
        raise
    except BaseException:  # Ctrl-C, SIGTERM: the workers stop at their next execution
        stop.set()
        if _drain(it, DRAIN_SECONDS):
            pool.close()  # the workers exit, closing their sessions
        else:  # a worker still busy after that: killed (the /dev/shm tracker unlinks its segment)
            for p in list(getattr(pool, "_pool", ())):
                if p.pid is not None and p.exitcode is None:
                    os.kill(p.pid, signal.SIGKILL)
            pool.terminate()
        pool.join()
        raise
    pool.close()
    pool.join()


#: how long stopped workers may take to finish their execution before they are killed
DRAIN_SECONDS = 5.0


def _drain(it: Any, seconds: float) -> bool:
    """Wait (at most ``seconds``) for the results of the jobs still running: all came?"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            it.next(timeout=0.1)
        except mp.TimeoutError:
            continue
        except StopIteration:
            return True
    return False


def _on_cluster(work: list[Job], jobs: int, address: str) -> Iterator[JobResult]:
    try:
        from distributed import Client, Event, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - dask is a dependency of the test extra
        raise UsageError("--cluster needs dask: pip install 'shmkernel[sweep]'") from None
    cluster = None
    if address == "local":
        cluster = LocalCluster(
            n_workers=max(jobs, 1),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster, set_as_default=False)
    else:
        try:
            client = Client(address, timeout=30, set_as_default=False)
        except OSError as e:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    name = f"shmkernel-stop-{uuid.uuid4().hex}"
    stop = Event(name, client=client)
    futures = [client.submit(_cluster_job, job, name, pure=False) for job in work]
    try:
        for fut in as_completed(futures, loop=client.loop):
            signals.raise_pending()
            yield fut.result()
    finally:
        stop.set()
        client.cancel(futures)
        client.close()
        if cluster is not None:
            cluster.close()


def _cluster_job(job: Job, stop_event: str) -> JobResult:
    """A job on a Dask worker: it asks the shared event at most twice a second."""
    from distributed import Event, get_client

    ev = Event(stop_event, client=get_client())
    seen = [0.0, False]

    def stop() -> bool:
        now = time.monotonic()
        if now - seen[0] > 0.5:
            seen[0], seen[1] = now, ev.is_set()
        return bool(seen[1])

    return run_job(job, stop=stop)
