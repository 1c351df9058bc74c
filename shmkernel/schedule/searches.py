"""The search loops of a scheduled session: a scheduler run execution after execution.

`scheduler_search` drives any `Scheduler` (the complete searches and the
samplers) until a violation, the budget, the time limit or the end of the
tree; `hypothesis_search` hands the session to hypothesis. Both return a
`Search`: the failing execution, if any, and what stopped the search, which
`shmkernel.schedule.explorer.explore` turns into a verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.schedule.dpor import DPORScheduler
from shmkernel.schedule.drive import PRUNE
from shmkernel.schedule.engine import Execution
from shmkernel.schedule.kernel_sync import SM_START, SYNC_START
from shmkernel.schedule.pct import PCTScheduler
from shmkernel.schedule.random_sched import RandomScheduler
from shmkernel.schedule.stateful import StatefulScheduler

SCHEDULERS = ("exhaustive", "stateful", "graph", "trust", "hypothesis", "random", "pct")


def make_scheduler(
    name: str, seed: int, max_examples: int, depth: int, preemption_bound: int | None, buffered: bool = False
) -> Any:
    if name == "random":
        return RandomScheduler(seed, max_examples)
    if name == "pct":
        return PCTScheduler(depth, seed, max_examples)
    if name == "exhaustive" and not buffered:
        return DPORScheduler(max_examples, preemption_bound)
    if name == "graph":
        # the stateful search over execution graphs: the engine keeps the model as a graph
        # (`shmkernel.memory.graph`; the session switches it), so a state is a graph
        s = StatefulScheduler(max_examples, preemption_bound)
        s.name = "graph"
        return s
    if name in ("exhaustive", "stateful"):
        # a bounded exhaustive search under the models (unbounded: `trust_search`)
        return StatefulScheduler(max_examples, preemption_bound)
    raise UsageError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


@dataclass
class Search:
    """How a search ended: the failing execution, if any, and what stopped it."""

    found: Execution | None = None
    examples: int = 0
    stopped_by: str = ""
    pruned: int = 0
    sleep_blocked: int = 0
    search: str = ""  # the search that ran, when the scheduler's name does not say
    fallback: str = ""  # why trust gave way to the stateful search


def hypothesis_search(
    sess: Any, max_examples: int, seed: int, deadline: float | None, stop: Callable[[], bool] | None = None
) -> Search:
    from shmkernel.schedule.hypothesis_sched import explore_with_hypothesis

    def run_one(sched: Any) -> tuple[bool, Any]:
        ex, events = sess.execute(sched)
        return bool(events), (ex, events)

    def time_up() -> bool:
        return (deadline is not None and time.monotonic() > deadline) or (stop is not None and stop())

    limited = deadline is not None or stop is not None
    info, examples, timed_out = explore_with_hypothesis(run_one, max_examples, seed, time_up if limited else None)
    stopped = "stopped" if stop is not None and stop() else "time"
    return Search(info[0] if info is not None else None, examples, stopped if timed_out else "sampling")


def scheduler_search(sess: Any, sched: Any, deadline: float | None, stop: Callable[[], bool] | None = None) -> Search:
    """Run ``sched``'s executions on ``sess`` until it has none left, one shows an
    event, ``deadline`` (time.monotonic) passes, or ``stop()`` says another worker
    found one (`shmkernel.schedule.parallel`: then ``stopped_by`` is "stopped")."""
    out = Search()
    sync = getattr(getattr(sess, "engine", None), "sync", None)
    if sync is not None:
        sync.grace_periods_begun = sync.stops_begun = 0
    while True:
        if deadline is not None and out.examples > 0 and time.monotonic() > deadline:
            out.stopped_by = "time"
            break
        if stop is not None and stop():
            out.stopped_by = "stopped"
            break
        if not sched.new_execution():
            break
        out.examples += 1
        ex, events = sess.execute(sched)
        if events:
            out.found = ex
            break
    out.pruned = getattr(sched, "pruned", 0)
    out.sleep_blocked = getattr(sched, "sleep_blocked", 0)
    if out.found is None and not out.stopped_by:
        if not getattr(sched, "complete_search", False):
            out.stopped_by = "sampling"
        elif not sched.exhausted:
            out.stopped_by = "budget"
        elif sched.bound_hit:
            out.stopped_by = "bound"
        elif getattr(sched, "lb_refused", 0):
            out.stopped_by = "load buffering"
        elif sync is not None and sync.grace_periods_begun:
            out.stopped_by = "grace period"  # kernel_sync's: not every execution (its docstring)
        elif sync is not None and sync.stops_begun and not sess.engine.preemption_steps:
            out.stopped_by = "stop machine"  # nor without preemption points as steps
    return out


class UntilKernelSync:
    """A search that stops where a CPU is about to start a grace period (``met``: "grace
    period"), or, with ``stops``, a stop_machine ("stop")."""

    def __init__(self, inner: Any, stops: bool = False) -> None:
        self.inner, self.met, self.stops = inner, "", stops

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def new_execution(self) -> bool:
        return not self.met and self.inner.new_execution()

    def next_cpu(self, state: Any) -> int:
        codes = {op.code for op in state.pending.values()}
        if SYNC_START in codes or (self.stops and SM_START in codes):
            self.met = "grace period" if SYNC_START in codes else "stop"
            return PRUNE
        return self.inner.next_cpu(state)


def exhaustive_search(sess: Any, max_examples: int, deadline: float | None) -> Search:
    """DPOR (native, sc), until the program starts a grace period or a stop (`handed_on`)."""
    sess.engine.preemption_steps = False
    guard = UntilKernelSync(DPORScheduler(max_examples), stops=True)
    return handed_on(sess, guard, scheduler_search(sess, guard, deadline), max_examples, deadline)


def handed_on(sess: Any, guard: UntilKernelSync, out: Search, max_examples: int, deadline: float | None) -> Search:
    """``out``, DPOR's search through ``guard``; where it met kernel synchronisation, the
    search that covers every execution, from the start: for a grace period TruSt over the
    sc graph with grace periods as memory (kernel_sync's take a section as begun at the step
    before it: `shmkernel.schedule.kernel_sync`); for a stop, DPOR again with every
    outermost preempt_enable() a step of its own (a stop may park a CPU there). Not when
    the time was up or another worker found one (no proof then anyway)."""
    if not guard.met or out.stopped_by in ("time", "stopped"):
        return out
    left = max(1, max_examples - out.examples)
    if guard.met == "grace period":
        sess.engine.use_graph_model()  # (native: the sc graph, step by step the same memory)
        again = trust_search(sess, left, deadline, as_memory=True)
    else:
        sess.engine.preemption_steps = True
        guard = UntilKernelSync(DPORScheduler(left))
        again = handed_on(sess, guard, scheduler_search(sess, guard, deadline), left, deadline)
    again.examples += out.examples
    return again


def trust_search(sess: Any, max_examples: int, deadline: float | None, as_memory: bool = False) -> Search:
    """TruSt over execution graphs; where the workload leaves it (kernel
    synchronisation, writes outside the model: `TrustScheduler.unsupported`), the
    stateful search over graphs takes over from the start with what is left of the
    budget (under tso too: on every seed that gives way it needs fewer executions and
    fewer seconds than the machine's, e.g. modcount-2002's 2.6 design 1,352 / 1.7 s
    against 5,763 / 4.3 s); under lkmm, whose graph model has no kernel
    synchronisation, the stateful search over the operational model. The verdict is
    then the stateful search's, never trust's."""
    from shmkernel.schedule.rcu_memory import GRACE_PERIODS
    from shmkernel.schedule.trust import TrustScheduler

    engine = sess.engine
    engine.rcu_memory = as_memory  # (known to be needed: grace periods as memory from the start)
    sched = TrustScheduler(max_examples)
    out = scheduler_search(sess, sched, deadline)
    if sched.unsupported == GRACE_PERIODS and out.found is None:
        # grace periods and context switches as memory events (`shmkernel.schedule.rcu_memory`),
        # from the start: the executions so far ran them the other way
        engine.rcu_memory = True
        first = out.examples
        sched = TrustScheduler(max(1, max_examples - first))
        out = scheduler_search(sess, sched, deadline)
        out.examples += first
    out.search = "trust"
    if not sched.unsupported:
        return out
    engine.rcu_memory = False
    engine.preemption_steps = True  # (a stop may park a CPU at an outermost preempt_enable())
    machine = sess.engine.memory_model == "lkmm"
    if machine:  # the lkmm graph has no kernel synchronisation: the operational model's search
        sess.engine.use_machine_model()
    again = scheduler_search(sess, StatefulScheduler(max(1, max_examples - out.examples)), deadline)
    again.examples += out.examples
    again.search, again.fallback = "stateful" if machine else "stateful graph", sched.unsupported
    return again
