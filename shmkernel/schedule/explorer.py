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
import time
from dataclasses import replace
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.memory.actions import ACTION_BASE, GRAPH, PROMISE, decode_action
from shmkernel.memory.graph import GRAPH_MODELS
from shmkernel.memory.graph_lkmm import TRUST_MODELS
from shmkernel.memory.registry import BUFFERED_MODELS, MODELS
from shmkernel.runtime import signals
from shmkernel.schedule import rcu_memory
from shmkernel.schedule.hb import fewest_switches, switches
from shmkernel.schedule.kernel_sync import PREEMPTION_OPTION, PREEMPTION_STEPS
from shmkernel.schedule.parallel import DEFAULT_SUBTREES, sampled_search, split_search
from shmkernel.schedule.replay import ReplayScheduler
from shmkernel.schedule.result import ExploreResult
from shmkernel.schedule.searches import (
    SCHEDULERS,
    Search,
    exhaustive_search,
    hypothesis_search,
    make_scheduler,
    scheduler_search,
    trust_search,
)
from shmkernel.schedule.session import Session, resolve
from shmkernel.schedule.split import Job
from shmkernel.schedule.trace import decode, encode
from shmkernel.workload import Workload

#: executions a complete search (exhaustive, stateful) may run unless told otherwise;
#: enough for every seed's default program (the largest, rmmod's use-after-free, takes
#: about 1,500); a search that stops there says NOT a proof
DEFAULT_SEARCH_BUDGET = 100_000
#: executions a sampling scheduler (hypothesis, random, pct) runs unless told otherwise
DEFAULT_SAMPLE_BUDGET = 1_000


SAMPLERS = ("hypothesis", "random", "pct")


def loadable(wl: Workload) -> bool:
    """Can a worker process load ``wl`` again from its reference?"""
    from shmkernel.workload import registry as workloads

    return bool(wl.source) or wl.name in workloads.names()


def _trace_found(sess: Session, found: list[int], memory_model: str, res: ExploreResult) -> None:
    """Replay the failing choices with tracing on, for the diagram (a step budget of
    exactly its length, so a livelock replays as one), re-ordered to switch CPUs as
    rarely as the same trace allows (same steps, same results, same events; not a graph
    model's choices, which are counted among the ways open at each step)."""
    sess.engine.max_steps = max(len(found), 1)
    traced, events = sess.execute(ReplayScheduler(found), trace=True)
    if memory_model not in BUFFERED_MODELS and traced.outcome == "ok" and not sess.engine.graph:
        fewer = fewest_switches(traced.steps)
        if switches(fewer) < switches(traced.choices):
            again, ev2 = sess.execute(ReplayScheduler(fewer), trace=True)
            if ev2 == events:
                traced = again
    res.schedule = encode(sess.header(), traced.choices)
    res.trace = sess.diagram(traced)
    res.timeline = sess.timeline(traced)
    res.events, res.outcome, res.steps = events, traced.outcome, len(traced.steps)


def _search(
    sess: Session,
    job: Job,
    max_examples: int,
    preemption_bound: int | None,
    jobs: int,
    cluster: str | None,
    deadline: float | None,
    subtrees: int | None,
) -> tuple[Search, dict[str, int]]:
    """The search ``job`` names, on this session or shared with workers; and how it was split."""
    buffered = job.memory_model in BUFFERED_MODELS
    split = jobs > 1 or cluster or subtrees is not None
    if job.scheduler == "exhaustive" and not buffered and preemption_bound is None and split:
        return split_search(sess, job, jobs, cluster, max_examples, deadline, subtrees or DEFAULT_SUBTREES)
    if job.scheduler in SAMPLERS and (jobs > 1 or cluster):
        return sampled_search(sess, job, jobs, cluster, max_examples, deadline), {}
    if job.scheduler == "hypothesis":
        return hypothesis_search(sess, max_examples, job.seed, deadline), {}
    if uses_trust(job.scheduler, job.memory_model, preemption_bound is not None):
        return trust_search(sess, max_examples, deadline), {}
    if job.scheduler == "exhaustive" and not buffered and preemption_bound is None:
        return exhaustive_search(sess, max_examples, deadline), {}
    sched = make_scheduler(job.scheduler, job.seed, max_examples, job.depth, preemption_bound, buffered=buffered)
    if job.scheduler in ("stateful", "graph"):  # a stop may park a CPU at any preempt_enable()
        sess.engine.preemption_steps = True
    return scheduler_search(sess, sched, deadline), {}


def uses_trust(scheduler: str, memory_model: str, bounded: bool = False) -> bool:
    """Is this search TruSt over execution graphs (`shmkernel.schedule.trust`)? ``trust``
    always, and ``exhaustive`` under ``tso``, ``weak`` and ``lkmm`` unless a preemption
    bound cuts interleavings (one execution per graph: `scripts/bench_schedule.py --models`)."""
    return scheduler == "trust" or (scheduler == "exhaustive" and memory_model in BUFFERED_MODELS and not bounded)


def uses_graph(scheduler: str, memory_model: str, bounded: bool = False) -> bool:
    """Does this search keep the model as an execution graph? ``graph``, ``trust``, and
    a bounded ``exhaustive`` under ``weak`` (the stateful search over graphs)."""
    return (
        scheduler == "graph"
        or uses_trust(scheduler, memory_model, bounded)
        or (scheduler == "exhaustive" and memory_model == "weak")
    )


def _check_settings(
    wl: Workload,
    scheduler: str,
    memory_model: str,
    max_examples: int | None,
    time_limit: float | None,
    jobs: int,
    cluster: str | None,
    subtrees: int | None,
    preemption_bound: int | None = None,
) -> int:
    """One-line errors for bad settings; the budget (the default filled in)."""
    if scheduler not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    if memory_model not in MODELS:
        raise UsageError(f"unknown memory model {memory_model!r}; choose one of {', '.join(MODELS)}")
    graph_models = TRUST_MODELS if scheduler == "trust" else GRAPH_MODELS
    if scheduler in ("graph", "trust") and memory_model not in graph_models:
        raise UsageError(
            f"--scheduler {scheduler} explores the models {', '.join(graph_models)} as execution graphs, "
            f"not {memory_model} (use --scheduler exhaustive)"
        )
    if scheduler in ("graph", "trust") and (jobs > 1 or cluster or subtrees is not None):
        raise UsageError(f"--scheduler {scheduler} runs in one process: drop --jobs/--cluster/--subtrees")
    if scheduler == "trust" and preemption_bound is not None:
        raise UsageError("a preemption bound cuts interleavings, and trust explores graphs: use --scheduler stateful")
    if max_examples is None:
        max_examples = (
            int(wl.explore_defaults.get("max_examples", DEFAULT_SEARCH_BUDGET))
            if scheduler in ("exhaustive", "stateful", "graph", "trust")
            else DEFAULT_SAMPLE_BUDGET
        )
    if max_examples < 1:
        raise UsageError("--max-examples must be >= 1")
    if time_limit is not None and not (time_limit > 0 and math.isfinite(time_limit)):
        raise UsageError("--time-limit must be a number of seconds > 0")
    if jobs < 1:
        raise UsageError("--jobs must be >= 1")
    if subtrees is not None and subtrees < 1:
        raise UsageError("--subtrees must be >= 1")
    if (jobs > 1 or cluster) and not loadable(wl):
        raise UsageError(f"--jobs/--cluster need a workload the workers can load: {wl.name!r} is not registered")
    return max_examples


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
    engine: str = "inprocess",
    jobs: int = 1,
    cluster: str | None = None,
    subtrees: int | None = None,
) -> ExploreResult:
    """Search interleavings of ``workload`` for one of its events; the result's
    ``verdict`` is "found", "proved" or "not-proved".

    ``scheduler`` defaults to ``exhaustive``: Optimal DPOR under native and sc,
    TruSt over execution graphs under tso, weak and lkmm (the stateful search where a
    workload uses kernel synchronisation: the result's ``search`` and ``fallback``
    say which ran); all are complete, so
    a clean end is a proof. ``max_examples`` defaults to the workload's
    ``explore_defaults`` or `DEFAULT_SEARCH_BUDGET` (`DEFAULT_SAMPLE_BUDGET` for
    hypothesis, random and pct, which never prove anything); ``time_limit``
    (seconds, checked between executions) stops a search too. Whatever stopped a
    search before it covered every execution (the budget, the time limit, a
    preemption bound) makes it "not-proved", never "proved". ``engine`` is how the
    CPUs run (`ENGINES`). ``jobs`` worker processes (or a Dask ``cluster``: an
    address, or "local") share a search, an exhaustive one cut into at least
    ``subtrees`` subtrees (given alone: the same cut, run here): see
    `shmkernel.schedule.parallel`."""
    scheduler = scheduler or "exhaustive"
    wl, variant, parsed, cpus, iters = resolve(workload, variant, opts, cpus, iterations)
    max_examples = _check_settings(
        wl, scheduler, memory_model, max_examples, time_limit, jobs, cluster, subtrees, preemption_bound
    )
    t0 = time.perf_counter()
    deadline = None if time_limit is None else time.monotonic() + time_limit
    with signals.deferred(), Session(wl, variant, cpus, parsed, iters, memory_model, max_steps, engine) as sess:
        if uses_graph(scheduler, memory_model, preemption_bound is not None):
            sess.engine.use_graph_model()
        job = Job(wl.reference, variant, cpus, dict(opts or {}), iters, memory_model, max_steps, engine, scheduler, 0)
        template = replace(job, seed=seed, depth=depth)
        s, split = _search(sess, template, max_examples, preemption_bound, jobs, cluster, deadline, subtrees)
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
            jobs=jobs,
            split=split,
            search=s.search,
            fallback=s.fallback,
        )
        if s.found is not None:
            _trace_found(sess, s.found.choices, memory_model, res)
        eng = sess.engine
        res.steps_per_second = eng.steps_total / eng.step_seconds if eng.step_seconds else 0.0
    res.seconds = time.perf_counter() - t0
    return res


def _run_option(options: dict[str, str], name: str, value: str) -> bool:
    """Take the schedule header's ``name=value`` (how its search ran kernel synchronisation,
    not a workload option) out of ``options``: was it there?"""
    got = options.pop(name, None)
    if got not in (None, value):
        raise UsageError(f"schedule has {name}={got}, not {value}")
    return got is not None


def replay(
    workload: str | Workload,
    schedule: str,
    variant: str | None = None,
    repeat: int = 1,
    trace: bool = True,
    engine: str = "processes",
) -> list[ExploreResult]:
    """Re-run a schedule string exactly (``repeat`` times on the same processes, or
    in-process with ``engine="inprocess"``). Only the first result carries the
    ``timeline`` (the repeats are the same execution)."""
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
    options = dict(h.options)
    as_memory = _run_option(options, rcu_memory.HEADER_OPTION, rcu_memory.HEADER_VALUE)
    steps = _run_option(options, PREEMPTION_OPTION, PREEMPTION_STEPS)
    opts = wl.parse_options(options)
    out = []
    graph = any(c >= ACTION_BASE and decode_action(c)[0] in (GRAPH, PROMISE) for c in choices)
    if graph and h.memory_model not in (*TRUST_MODELS, "native"):  # (native: the sc graph)
        raise UsageError(f"schedule has graph steps (gN.K) under {h.memory_model}, which has no graph model")
    with Session(wl, h.variant, h.cpus, opts, h.iterations, h.memory_model, len(choices) + 1, engine) as sess:
        sess.engine.preemption_steps = steps
        if graph:  # found by --scheduler graph: the choices are the graph model's
            sess.engine.use_graph_model()
            sess.engine.rcu_memory = as_memory
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
                timeline=sess.timeline(ex) if trace and not out else {},  # the first run's: --trace-out
            )
            out.append(r)
    return out
