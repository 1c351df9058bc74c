"""``shmkernel.explore`` and ``shmkernel.replay``: find and replay interleavings.

In the spirit of tokio-rs/loom and awslabs/shuttle: the workload's programs
are the test, a scheduler is the checker, and a failure comes back as a
result with ``found``, ``schedule`` (a string `replay` takes back), ``trace``
(the interleaving as CPU columns) and ``examples`` (executions run)::

    r = shmkernel.explore("refcount", variant="buggy", scheduler="hypothesis")
    assert r.found
    print(r.trace)
    shmkernel.replay("refcount", r.schedule)   # same trace, same events

Every execution boots the workload (free, on the coordinator CPU), then runs
its programs under the scheduler on the very same CPU processes; a violation
is any of the workload's events, a ``deadlock`` (every remaining CPU blocked)
or a ``livelock`` (step budget exceeded).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from shmkernel.errors import RunError, UsageError
from shmkernel.measure.runner import boot, open_machine
from shmkernel.memory.models import ACTION_BASE, BUFFERED_MODELS, MODELS
from shmkernel.runtime.pinning import pin_self, usable_cores
from shmkernel.schedule.dpor import DPORScheduler
from shmkernel.schedule.engine import Engine, Execution
from shmkernel.schedule.gate import Gate
from shmkernel.schedule.pct import PCTScheduler
from shmkernel.schedule.random_sched import RandomScheduler
from shmkernel.schedule.replay import ReplayScheduler
from shmkernel.schedule.trace import ScheduleHeader, decode, encode, render
from shmkernel.workload import Workload

SCHEDULERS = ("hypothesis", "random", "pct", "exhaustive", "stateful")


@dataclass
class ExploreResult:
    workload: str
    variant: str
    cpus: int
    scheduler: str
    memory_model: str
    found: bool
    examples: int
    seconds: float
    outcome: str = "ok"
    events: dict[str, int] = field(default_factory=dict)
    schedule: str = ""
    trace: str = ""
    steps: int = 0
    complete: bool = False  # exhaustive search finished (a proof for these bounds)
    steps_per_second: float = 0.0
    pruned: int = 0  # executions abandoned at a state explored before (stateful search)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Session:
    """A started machine plus engine for one workload configuration."""

    def __init__(self, wl: Workload, variant: str, cpus: int, opts: dict[str, Any], iterations: int,
                 memory_model: str, max_steps: int) -> None:
        self.wl, self.variant, self.cpus, self.opts = wl, variant, cpus, opts
        self.iterations, self.memory_model = iterations, memory_model
        self.gate = Gate()
        # One CPU moves at a time, so pinning changes no result; it is chosen for
        # speed: the coordinator alone on the first core, every CPU process on the
        # last one (a CPU waiting for its grant then only competes with its peers).
        cores = usable_cores()
        self._own_core = cores[0] if len(cores) > 1 else None
        self.m = open_machine(wl, cpus, opts, pin=False, extensions=(self.gate,),
                              cores=[cores[-1]] if self._own_core is not None else None)
        self.max_steps = max_steps

    def __enter__(self) -> _Session:
        self._affinity = os.sched_getaffinity(0)
        self.m.start()
        try:
            if self._own_core is not None:
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


def _resolve(workload: str | Workload, variant: str | None, opts: dict[str, Any] | None,
             cpus: int | None, iterations: int | None) -> tuple[Workload, str, dict[str, Any], int, int]:
    import workloads

    wl = workloads.get(workload) if isinstance(workload, str) else workload
    variant = wl.resolve_variant(variant or "buggy")
    raw = {k: v for k, v in wl.explore_defaults.items() if k != "iterations"}
    raw.update(opts or {})
    parsed = wl.parse_options(raw)
    iters = iterations if iterations is not None else wl.explore_defaults.get("iterations", 1)
    if iters < 1:
        raise UsageError("--iterations must be >= 1")
    return wl, variant, parsed, cpus or wl.default_cpus, iters


def _make_scheduler(name: str, seed: int, max_examples: int, depth: int, preemption_bound: int | None,
                    buffered: bool = False) -> Any:
    if name == "random":
        return RandomScheduler(seed, max_examples)
    if name == "pct":
        return PCTScheduler(depth, seed, max_examples)
    if name == "exhaustive":
        return DPORScheduler(preemption_bound, max_examples, buffered=buffered)
    if name == "stateful":
        return DPORScheduler(preemption_bound, max_examples, buffered=buffered, stateful=True)
    raise UsageError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def explore(workload: str | Workload, variant: str | None = None, scheduler: str | None = None,
            max_examples: int = 1000, seed: int = 0, cpus: int | None = None,
            iterations: int | None = None, opts: dict[str, Any] | None = None,
            memory_model: str = "native", max_steps: int = 20_000, depth: int = 3,
            preemption_bound: int | None = None) -> ExploreResult:
    """Search interleavings of ``workload`` for one of its events.

    ``scheduler`` defaults to hypothesis, and to exhaustive under an emulated
    memory model: there the store commits and older loads multiply the choices
    hypothesis draws blindly among, while the stateful exhaustive search
    (visited states are not explored twice) covers the seeds' bounded programs in
    well under a second and makes a clean result a proof."""
    if scheduler is None:
        scheduler = "exhaustive" if memory_model in BUFFERED_MODELS else "hypothesis"
    wl, variant, parsed, cpus, iters = _resolve(workload, variant, opts, cpus, iterations)
    if scheduler not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    if memory_model not in MODELS:
        raise UsageError(f"unknown memory model {memory_model!r}; choose one of {', '.join(MODELS)}")
    if max_examples < 1:
        raise UsageError("--max-examples must be >= 1")
    t0 = time.perf_counter()
    with _Session(wl, variant, cpus, parsed, iters, memory_model, max_steps) as sess:
        found_ex: Execution | None = None
        examples = pruned = 0
        complete = False
        if scheduler == "hypothesis":
            from shmkernel.schedule.hypothesis_sched import explore_with_hypothesis

            def run_one(sched: Any) -> tuple[bool, Any]:
                ex, events = sess.execute(sched)
                return bool(events), (ex, events)

            info, examples = explore_with_hypothesis(run_one, max_examples, seed)
            if info is not None:
                found_ex = info[0]
        else:
            sched = _make_scheduler(scheduler, seed, max_examples, depth, preemption_bound,
                                    buffered=memory_model in BUFFERED_MODELS)
            while sched.new_execution():
                examples += 1
                ex, events = sess.execute(sched)
                if events:
                    found_ex = ex
                    break
            complete = scheduler in ("exhaustive", "stateful") and found_ex is None and sched.exhausted
            pruned = getattr(sched, "pruned", 0)
        res = ExploreResult(wl.name, variant, cpus, scheduler, memory_model, found_ex is not None, examples,
                            0.0, complete=complete, pruned=pruned)
        if found_ex is not None:
            # replay the failing choices once more with tracing on, for the diagram
            # (a step budget of exactly its length, so a livelock replays as one)
            sess.engine.max_steps = max(len(found_ex.choices), 1)
            traced, events = sess.execute(ReplayScheduler(found_ex.choices), trace=True)
            res.schedule = encode(sess.header(), traced.choices)
            res.trace = sess.diagram(traced)
            res.events, res.outcome, res.steps = events, traced.outcome, len(traced.steps)
        eng = sess.engine
        res.steps_per_second = eng.steps_total / eng.step_seconds if eng.step_seconds else 0.0
    res.seconds = time.perf_counter() - t0
    return res


def replay(workload: str | Workload, schedule: str, variant: str | None = None, repeat: int = 1,
           trace: bool = True) -> list[ExploreResult]:
    """Re-run a schedule string exactly (``repeat`` times on the same processes)."""
    h, choices = decode(schedule)
    wl, _, _, _, _ = _resolve(workload, None, None, None, None)
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
    with _Session(wl, h.variant, h.cpus, opts, h.iterations, h.memory_model, len(choices) + 1) as sess:
        for _ in range(repeat):
            t0 = time.perf_counter()
            ex, events = sess.execute(ReplayScheduler(choices), trace=trace)
            r = ExploreResult(wl.name, h.variant, h.cpus, "replay", h.memory_model, bool(events), 1,
                              time.perf_counter() - t0, ex.outcome, events, encode(sess.header(), ex.choices),
                              sess.diagram(ex) if trace else "", len(ex.steps))
            out.append(r)
    return out
