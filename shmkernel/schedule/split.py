"""An exhaustive search cut into independent subtrees, and one subtree's search.

Why a cut that does not depend on DPOR's own bookkeeping: Optimal DPOR
explores its tree in order, each subtree adding wakeup sequences to the
states above it, so its subtrees are not independent and a parallel run of
them would explore a different, timing-dependent set. Here the tree is cut
at a depth ``d`` instead:

- above the cut, the classic full search with sleep sets (Godefroid 1996,
  `BruteForceScheduler(sleep_sets=True)`) enumerates every state at depth
  ``d`` whose CPUs are not all asleep: each, with its choices (its *prefix*)
  and its sleep set, is a `Subtree`; executions that end above the cut are
  complete executions of their own;
- below it, Optimal DPOR explores each subtree alone
  (`DPORScheduler(prefix=..., sleep=...)`): every execution begins with the
  prefix, and a race that would reverse a step of the prefix is left to the
  sibling subtrees, which hold those orders already.

Sound because both halves are: a sleep-set search covers every Mazurkiewicz
trace, and below the cut each subtree's DPOR keeps the subtree's sleep set
only as sleep sets are classically used (a sleeping CPU is not chosen, an
execution whose every CPU sleeps is abandoned: the sibling subtree that ran
that step first covers it), never as Optimal DPOR's excuse to skip a race
reversal ("a CPU asleep here starts it"): that excuse holds only when the
sleeper's own exploration plants its wakeup sequences in the same tree, and
a sibling subtree's cannot. (The first version took the excuse and missed
outcomes of random programs: tests/test_split.py.) The price is a few traces
run twice: on 150 random programs, 1.25x the trace count cut at depth 1,
1.13x at depth 5. Deterministic because neither the cut (which depends on
the program and on how many subtrees are wanted) nor a subtree's search
depends on the number of workers or on timing: a proof's total executions
are the same with ``--jobs 1``, ``--jobs 2`` or a cluster
(tests/test_parallel.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shmkernel.runtime import signals
from shmkernel.schedule.bruteforce import BruteForceScheduler
from shmkernel.schedule.dpor import DPORScheduler
from shmkernel.schedule.drive import PRUNE, Execution, Op, State
from shmkernel.schedule.searches import Search, hypothesis_search, make_scheduler, scheduler_search

#: the cut goes no deeper than this many steps
MAX_CUT_DEPTH = 12


@dataclass(frozen=True)
class Subtree:
    """The executions that begin with ``prefix``, less those a CPU of ``sleep`` starts."""

    prefix: tuple[int, ...]
    sleep: tuple[tuple[int, Op], ...] = ()


class CutScheduler(BruteForceScheduler):
    """A sleep-set search that stops every execution at depth ``depth``, noting the
    state there as a subtree (an execution that ends sooner is a complete one)."""

    def __init__(self, depth: int) -> None:
        super().__init__(max_executions=10**9, sleep_sets=True)
        self.depth = depth
        self.subtrees: list[Subtree] = []
        self.complete = 0

    def next_cpu(self, state: State) -> int:
        d = len(state.steps)
        if d == self.depth and d >= len(self.path):
            sleep = self._inherited_sleep(state, d)
            if any(c not in sleep for c in state.eligible):
                self.subtrees.append(Subtree(tuple(self.path), tuple(sorted(sleep.items()))))
            else:
                self.sleep_blocked += 1
            return PRUNE
        return super().next_cpu(state)

    def _order(self, awake: list[int], current: int | None) -> list[int]:
        """Taking turns from the CPU that ran last, as the DPOR below the cut does
        (`DPORScheduler._order`): the first subtrees interleave finely, where deep
        bugs are found soonest (rmmod's use-after-free: 565 executions, against
        21,773 when the cut tried the lowest CPU first)."""
        if current is None:
            return awake
        return sorted(awake, key=lambda c: (c <= current, c))

    def end_execution(self, execution: Execution) -> None:
        if execution.outcome != "pruned":
            self.complete += 1
        super().end_execution(execution)


@dataclass
class Cut:
    """Where the tree was cut: its subtrees, and what the search above the cut did."""

    subtrees: list[Subtree] = field(default_factory=list)
    depth: int = 0
    search: Search = field(default_factory=Search)  # the complete executions above the cut
    probes: int = 0  # executions stopped at the cut (not counted as executions)


def cut(sess: Any, want: int) -> Cut:
    """Cut the tree of ``sess``'s program at the shallowest depth that gives at least
    ``want`` subtrees (or at `MAX_CUT_DEPTH`, or where no execution reaches further)."""
    depth = 1
    while True:
        sched = CutScheduler(depth)
        s = scheduler_search(sess, sched, None)
        out = Cut(sched.subtrees, depth, s, s.examples - sched.complete)
        s.examples = sched.complete
        s.sleep_blocked = sched.sleep_blocked
        if s.found is not None or len(sched.subtrees) >= want or not sched.subtrees or depth >= MAX_CUT_DEPTH:
            return out
        depth += 1


@dataclass(frozen=True)
class Job:
    """One unit of work a worker can do alone (picklable: it names the workload)."""

    workload: str  # a registry reference: a bundled name, or path.py:NAME / module:NAME
    variant: str
    cpus: int
    opts: dict[str, Any]
    iterations: int
    memory_model: str
    max_steps: int
    engine: str
    scheduler: str
    budget: int
    seconds: float | None = None  # the time left when the job was made
    seed: int = 0
    depth: int = 3
    subtree: Subtree | None = None


@dataclass
class JobResult:
    examples: int
    found: list[int] | None  # the failing execution's choices
    stopped_by: str  # "" (covered every execution), "budget", "time", "stopped", "sampling"
    pruned: int = 0
    sleep_blocked: int = 0
    steps: int = 0
    step_seconds: float = 0.0


def run_job(job: Job, stop: Callable[[], bool] | None = None, sessions: dict[Any, Any] | None = None) -> JobResult:
    """Do ``job`` in this process, on a session of its own: a new one, or the one kept
    in ``sessions`` for the same program (a worker's, reused from job to job; its
    owner closes them)."""
    from shmkernel.schedule.session import Session, resolve

    key = (job.workload, job.variant, job.cpus, tuple(sorted(job.opts.items())), job.iterations)
    key += (job.memory_model, job.max_steps, job.engine)
    sess = sessions.get(key) if sessions is not None else None
    if sess is None:
        wl, variant, parsed, cpus, iters = resolve(job.workload, job.variant, job.opts, job.cpus, job.iterations)
        sess = Session(wl, variant, cpus, parsed, iters, job.memory_model, job.max_steps, job.engine).__enter__()
        if sessions is not None:
            sessions[key] = sess
    try:
        with signals.deferred():
            return job_result(sess, job, stop)
    finally:
        if sessions is None:
            sess.__exit__(None, None, None)


def job_result(sess: Any, job: Job, stop: Callable[[], bool] | None = None) -> JobResult:
    """Do ``job`` on an open session: its search, and the steps and step time it
    added to the session's engine (a worker's share of the whole)."""
    deadline = None if job.seconds is None else time.monotonic() + job.seconds
    eng = sess.engine
    steps, secs = eng.steps_total, eng.step_seconds
    s = search_job(sess, job, deadline, stop)
    found = s.found.choices if s.found is not None else None
    return JobResult(
        s.examples, found, s.stopped_by, s.pruned, s.sleep_blocked, eng.steps_total - steps, eng.step_seconds - secs
    )


def search_job(sess: Any, job: Job, deadline: float | None, stop: Callable[[], bool] | None = None) -> Search:
    """The search ``job`` asks for, on an open session."""
    if job.subtree is not None:
        sched: Any = DPORScheduler(
            job.budget, prefer="next", restart_after=None, prefix=job.subtree.prefix, sleep=dict(job.subtree.sleep)
        )
        return scheduler_search(sess, sched, deadline, stop)
    if job.scheduler == "hypothesis":
        return hypothesis_search(sess, job.budget, job.seed, deadline, stop)
    sched = make_scheduler(job.scheduler, job.seed, job.budget, job.depth, None)
    return scheduler_search(sess, sched, deadline, stop)
