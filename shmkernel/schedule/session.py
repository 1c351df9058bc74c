"""The scheduled session: explore and replay the interleavings of a workload.

(`shmkernel.explore` is its public face: ``from shmkernel.explore import explore, replay``.)

In the spirit of tokio-rs/loom and awslabs/shuttle: the workload's programs
are the test, a scheduler is the checker, and a search ends with one of three
verdicts, never confused:

- ``found``: a violation, with ``schedule`` (a string `replay` takes back)
  and ``trace`` (the interleaving as CPU columns);
- ``proved``: every execution of the bounded program (``--iterations``, the
  CPU count) was covered under the memory model in force, by a complete
  search (``exhaustive``, ``stateful``) that was not cut short;
- ``not-proved``: the budget, the time limit or a preemption bound stopped
  the search, or the scheduler samples (hypothesis, random, pct); the
  result's ``stopped_by`` says which, and what to raise is in `headline`.

::

    r = shmkernel.explore("refcount", variant="buggy")
    assert r.verdict == "found"
    print(r.trace)
    shmkernel.replay("refcount", r.schedule)   # same trace, same events

Every execution boots the workload (free, on the coordinator CPU), then runs
its programs under the scheduler on the very same CPU processes; a violation
is any of the workload's events, a ``deadlock`` (every remaining CPU blocked)
or a ``livelock`` (step budget exceeded).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

from shmkernel.errors import RunError, UsageError
from shmkernel.memory.actions import ACTION_BASE
from shmkernel.memory.registry import BUFFERED_MODELS, MODELS
from shmkernel.runtime import signals
from shmkernel.runtime.pinning import pin_self, usable_cores
from shmkernel.schedule.dpor import DPORScheduler
from shmkernel.schedule.engine import Engine, Execution
from shmkernel.schedule.gate import Gate
from shmkernel.schedule.hb import fewest_switches, switches
from shmkernel.schedule.pct import PCTScheduler
from shmkernel.schedule.random_sched import RandomScheduler
from shmkernel.schedule.replay import ReplayScheduler
from shmkernel.schedule.result import ExploreResult
from shmkernel.schedule.stateful import StatefulScheduler
from shmkernel.schedule.trace import ScheduleHeader, decode, encode, render
from shmkernel.workload import Workload
from shmkernel.workload.machines import boot, open_machine

SCHEDULERS = ("exhaustive", "stateful", "hypothesis", "random", "pct")
#: executions a complete search (exhaustive, stateful) may run unless told otherwise;
#: enough for every seed's default program (the largest, rmmod's use-after-free, takes
#: about 1,500); a search that stops there says NOT a proof
DEFAULT_SEARCH_BUDGET = 100_000
#: executions a sampling scheduler (hypothesis, random, pct) runs unless told otherwise
DEFAULT_SAMPLE_BUDGET = 1_000


class Session:
    """A started machine plus engine for one workload configuration."""

    def __init__(
        self,
        wl: Workload,
        variant: str,
        cpus: int,
        opts: dict[str, Any],
        iterations: int,
        memory_model: str,
        max_steps: int,
    ) -> None:
        self.wl, self.variant, self.cpus, self.opts = wl, variant, cpus, opts
        self.iterations, self.memory_model = iterations, memory_model
        self.gate = Gate()
        # One CPU moves at a time, so pinning changes no result; it is chosen for
        # speed. By default every process sits on the last core and each hand-off
        # blocks (no spin): the one that waits sleeps, so the core's scheduler runs the
        # one just woken, before any other process of the host (with two `yes` beside:
        # 8,451 steps/s against 388 for spinning on two cores; quiet, 29,900 against
        # 35,700). With SHMKERNEL_GATE_SPIN > 0 the coordinator spins on the first core
        # and the CPU processes yield-spin on the last one (a little faster with few CPUs
        # on an idle host, slower with many: 5,512 against 9,696 steps/s at 64 CPUs).
        cores = usable_cores()
        spinning = self.gate.spin > 0 and len(cores) > 1
        self._own_core = cores[0] if spinning else cores[-1]
        self.m = open_machine(wl, cpus, opts, pin=False, extensions=(self.gate,), cores=[cores[-1]])
        self.max_steps = max_steps

    def __enter__(self) -> Session:
        self._affinity = os.sched_getaffinity(0)
        self.m.start()
        try:
            pin_self(self._own_core)
            self.engine = Engine(self.m, self.gate, self.max_steps, self.memory_model)
        except BaseException:  # __exit__ does not run when __enter__ raises
            os.sched_setaffinity(0, self._affinity)
            self.m.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            os.sched_setaffinity(0, self._affinity)
        finally:
            self.m.close()

    def execute(self, scheduler: Any, trace: bool = False) -> tuple[Execution, dict[str, int]]:
        reset = getattr(self.wl, "reset_state", None)
        if reset is not None:  # plain test set-up, written by the coordinator itself
            assert self.m.seg is not None
            reset(self.m.seg, self.m.vars)
        else:
            boot(self.m, self.wl, self.variant, self.opts)
        progs = self.wl.programs(self.variant, self.m.vars, self.cpus, self.opts, self.iterations)
        ex = self.engine.run(progs, scheduler, trace=trace)
        assert ex.result is not None and self.m.seg is not None
        if ex.outcome == "ok":
            problems = self.wl.check(self.variant, self.m.vars, self.m.seg, self.cpus, self.opts, ex.result)
            if problems:
                raise RunError(f"exactness check failed: {'; '.join(problems)}")
        if ex.outcome == "pruned":  # a state explored before: whatever it leads to is known
            return ex, {}
        events = {e: ex.result.counters.get(e, 0) for e in (*self.wl.events, "bug", "warn")}
        events = {k: v for k, v in events.items() if v}
        if ex.outcome != "ok":
            events[ex.outcome] = 1
        return ex, events

    def header(self) -> ScheduleHeader:
        defaults = {o.name: o.default for o in self.wl.options}
        changed = {k: str(v) for k, v in self.opts.items() if k in defaults and v != defaults[k]}
        return ScheduleHeader(self.wl.name, self.variant, self.cpus, self.iterations, self.memory_model, changed)

    def diagram(self, ex: Execution) -> str:
        assert ex.result is not None
        cpus = sorted({s.cpu for s in ex.steps} | set(ex.blocked))
        text = render(ex.steps, self.m.layout, cpus, ex.result.reports, self.m.coordinator_cpu)
        if ex.blocked:
            text += "\n" + "\n".join(f"  CPU {c} blocked at its next step" for c in ex.blocked)
        return text


def resolve(
    workload: str | Workload, variant: str | None, opts: dict[str, Any] | None, cpus: int | None, iterations: int | None
) -> tuple[Workload, str, dict[str, Any], int, int]:
    from shmkernel.workload import registry as workloads

    wl = workloads.get(workload) if isinstance(workload, str) else workloads.as_workload(workload)
    variant = wl.resolve_variant(variant or "buggy")
    raw = {k: v for k, v in wl.explore_defaults.items() if k not in EXPLORE_KEYS}
    raw.update(opts or {})
    parsed = wl.parse_options(raw)
    iters = iterations if iterations is not None else wl.explore_defaults.get("iterations", 1)
    if iters < 1:
        raise UsageError("--iterations must be >= 1")
    return wl, variant, parsed, cpus or wl.default_cpus, iters


#: explore_defaults keys that are settings of the search, not workload options
EXPLORE_KEYS = ("iterations", "max_examples")


def _make_scheduler(
    name: str, seed: int, max_examples: int, depth: int, preemption_bound: int | None, buffered: bool = False
) -> Any:
    if name == "random":
        return RandomScheduler(seed, max_examples)
    if name == "pct":
        return PCTScheduler(depth, seed, max_examples)
    if name == "exhaustive" and not buffered:
        return DPORScheduler(max_examples, preemption_bound)
    if name in ("exhaustive", "stateful"):
        # under tso/weak/lkmm the exhaustive search is the stateful one: a partial-order
        # reduction over store buffers is the graph explorer's business, not built yet
        return StatefulScheduler(max_examples, preemption_bound)
    raise UsageError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


@dataclass
class _Search:
    """How a search ended: the failing execution, if any, and what stopped it."""

    found: Execution | None = None
    examples: int = 0
    stopped_by: str = ""
    pruned: int = 0
    sleep_blocked: int = 0


def _hypothesis_search(sess: Session, max_examples: int, seed: int, deadline: float | None) -> _Search:
    from shmkernel.schedule.hypothesis_sched import explore_with_hypothesis

    def run_one(sched: Any) -> tuple[bool, Any]:
        ex, events = sess.execute(sched)
        return bool(events), (ex, events)

    def time_up() -> bool:
        return deadline is not None and time.monotonic() > deadline

    info, examples, timed_out = explore_with_hypothesis(
        run_one, max_examples, seed, time_up if deadline is not None else None
    )
    return _Search(info[0] if info is not None else None, examples, "time" if timed_out else "sampling")


def _scheduler_search(sess: Session, sched: Any, deadline: float | None) -> _Search:
    out = _Search()
    while True:
        if deadline is not None and out.examples > 0 and time.monotonic() > deadline:
            out.stopped_by = "time"
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
    return out


def _trace_found(sess: Session, found: Execution, memory_model: str, res: ExploreResult) -> None:
    """Replay the failing choices with tracing on, for the diagram (a step budget of
    exactly its length, so a livelock replays as one), re-ordered to switch CPUs as
    rarely as the same trace allows (same steps, same results, same events)."""
    sess.engine.max_steps = max(len(found.choices), 1)
    traced, events = sess.execute(ReplayScheduler(found.choices), trace=True)
    if memory_model not in BUFFERED_MODELS and traced.outcome == "ok":
        fewer = fewest_switches(traced.steps)
        if switches(fewer) < switches(traced.choices):
            again, ev2 = sess.execute(ReplayScheduler(fewer), trace=True)
            if ev2 == events:
                traced = again
    res.schedule = encode(sess.header(), traced.choices)
    res.trace = sess.diagram(traced)
    res.events, res.outcome, res.steps = events, traced.outcome, len(traced.steps)


def explore(
    workload: str | Workload | Any,
    variant: str | None = None,
    scheduler: str | None = None,
    max_examples: int | None = None,
    seed: int = 0,
    cpus: int | None = None,
    iterations: int | None = None,
    opts: dict[str, Any] | None = None,
    memory_model: str = "native",
    max_steps: int = 20_000,
    depth: int = 3,
    preemption_bound: int | None = None,
    time_limit: float | None = None,
) -> ExploreResult:
    """Search interleavings of ``workload`` for one of its events; the result's
    ``verdict`` is "found", "proved" or "not-proved".

    ``scheduler`` defaults to ``exhaustive``: Optimal DPOR under native and sc,
    the stateful full enumeration under tso, weak and lkmm; both are complete, so
    a clean end is a proof. ``max_examples`` defaults to the workload's
    ``explore_defaults`` or `DEFAULT_SEARCH_BUDGET` (`DEFAULT_SAMPLE_BUDGET` for
    hypothesis, random and pct, which never prove anything); ``time_limit``
    (seconds, checked between executions) stops a search too. Whatever stopped a
    search before it covered every execution (the budget, the time limit, a
    preemption bound) makes it "not-proved", never "proved"."""
    scheduler = scheduler or "exhaustive"
    wl, variant, parsed, cpus, iters = resolve(workload, variant, opts, cpus, iterations)
    if scheduler not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    if memory_model not in MODELS:
        raise UsageError(f"unknown memory model {memory_model!r}; choose one of {', '.join(MODELS)}")
    if max_examples is None:
        max_examples = (
            int(wl.explore_defaults.get("max_examples", DEFAULT_SEARCH_BUDGET))
            if scheduler in ("exhaustive", "stateful")
            else DEFAULT_SAMPLE_BUDGET
        )
    if max_examples < 1:
        raise UsageError("--max-examples must be >= 1")
    if time_limit is not None and not (time_limit > 0 and math.isfinite(time_limit)):
        raise UsageError("--time-limit must be a number of seconds > 0")
    t0 = time.perf_counter()
    deadline = None if time_limit is None else time.monotonic() + time_limit
    with signals.deferred(), Session(wl, variant, cpus, parsed, iters, memory_model, max_steps) as sess:
        if scheduler == "hypothesis":
            s = _hypothesis_search(sess, max_examples, seed, deadline)
        else:
            sched = _make_scheduler(
                scheduler, seed, max_examples, depth, preemption_bound, buffered=memory_model in BUFFERED_MODELS
            )
            s = _scheduler_search(sess, sched, deadline)
        verdict = "found" if s.found is not None else ("not-proved" if s.stopped_by else "proved")
        res = ExploreResult(
            wl.name,
            variant,
            cpus,
            scheduler,
            memory_model,
            s.found is not None,
            s.examples,
            0.0,
            complete=verdict == "proved",
            pruned=s.pruned,
            verdict=verdict,
            stopped_by=s.stopped_by if verdict == "not-proved" else "",
            max_examples=max_examples,
            time_limit=time_limit,
            preemption_bound=preemption_bound,
            iterations=iters,
            sleep_blocked=s.sleep_blocked,
            reference=wl.reference,
        )
        if s.found is not None:
            _trace_found(sess, s.found, memory_model, res)
        eng = sess.engine
        res.steps_per_second = eng.steps_total / eng.step_seconds if eng.step_seconds else 0.0
    res.seconds = time.perf_counter() - t0
    return res


def replay(
    workload: str | Workload, schedule: str, variant: str | None = None, repeat: int = 1, trace: bool = True
) -> list[ExploreResult]:
    """Re-run a schedule string exactly (``repeat`` times on the same processes)."""
    h, choices = decode(schedule)
    wl, _, _, _, _ = resolve(workload, None, None, None, None)
    if h.workload != wl.name:
        raise UsageError(f"schedule is for workload {h.workload!r}, not {wl.name!r}")
    if variant is not None and wl.resolve_variant(variant) != h.variant:
        raise UsageError(f"schedule is for variant {h.variant!r}, not {wl.resolve_variant(variant)!r}")
    wl.resolve_variant(h.variant)
    if not 1 <= h.cpus <= 1024:
        raise UsageError(f"schedule has a bad CPU count {h.cpus}")
    if h.memory_model not in MODELS:
        raise UsageError(f"schedule names an unknown memory model {h.memory_model!r}")
    cpu_choices = [c for c in choices if c < ACTION_BASE]
    if cpu_choices and max(cpu_choices) > h.cpus:
        raise UsageError(f"schedule names CPU {max(cpu_choices)} but has only {h.cpus} CPUs + coordinator")
    opts = wl.parse_options(dict(h.options))
    out = []
    with Session(wl, h.variant, h.cpus, opts, h.iterations, h.memory_model, len(choices) + 1) as sess:
        for _ in range(repeat):
            t0 = time.perf_counter()
            ex, events = sess.execute(ReplayScheduler(choices), trace=trace)
            r = ExploreResult(
                wl.name,
                h.variant,
                h.cpus,
                "replay",
                h.memory_model,
                bool(events),
                1,
                time.perf_counter() - t0,
                ex.outcome,
                events,
                encode(sess.header(), ex.choices),
                sess.diagram(ex) if trace else "",
                len(ex.steps),
                verdict="found" if events else "not-proved",
                stopped_by="" if events else "replay",
                iterations=h.iterations,
                reference=wl.reference,
            )
            out.append(r)
    return out
