"""``shmkernel explore``: search interleavings; exit 1 found, 0 proved, 4 not-proved."""

from __future__ import annotations

import argparse
import json
from typing import Any

from shmkernel.cli.options import (
    add_trace_out,
    add_workload_common,
    check_cpus,
    int_in,
    positive_float,
    quiet_stdout,
    workload_options,
    write_trace_out,
)
from shmkernel.errors import UsageError

TAKES_WORKLOAD_OPTIONS = True


def add_parser(sub: Any, wl: Any = None) -> None:
    ex = sub.add_parser("explore", help="search interleavings: exit 1 found, 0 proved, 4 not-proved")
    add_workload_common(ex, wl)
    add_trace_out(ex)
    ex.add_argument(
        "--explain", action="store_true", help="when a violation is found, explain it (as `shmkernel explain`)"
    )
    ex.add_argument(
        "--scheduler",
        choices=("exhaustive", "stateful", "graph", "trust", "hypothesis", "random", "pct"),
        default=None,
        help="default exhaustive: Optimal DPOR under native/sc, trust (one execution per execution "
        "graph; under lkmm checked by the LKMM's axioms) under tso/weak/lkmm, giving way to the "
        "stateful search where a workload uses kernel synchronisation; all complete, so a "
        "clean end is a proof. stateful: machine states in any model; graph: execution graphs, "
        "stateful (sc/tso/weak); trust: as exhaustive under tso/weak/lkmm, also under sc. "
        "hypothesis shrinks a failure to few switches; random and pct sample (never a proof)",
    )
    ex.add_argument(
        "--max-examples",
        type=int_in(1, 10**7),
        default=None,
        help="executions at most (default 100,000 for exhaustive/stateful, or the "
        "workload's own; 1,000 for hypothesis/random/pct)",
    )
    ex.add_argument(
        "--time-limit",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="stop after this long (checked between executions): NOT a proof then",
    )
    ex.add_argument("--iterations", type=int_in(1, 10**6), default=None, help="iterations per CPU program")
    ex.add_argument("--depth", type=int_in(1, 100), default=3, help="PCT bug depth")
    ex.add_argument(
        "--preemption-bound",
        type=int_in(0, 1000),
        default=None,
        help="exhaustive/stateful: skip interleavings with more preemptions (NOT a proof when it skipped any)",
    )
    ex.add_argument("--max-steps", type=int_in(1, 10**7), default=20_000, help="livelock step budget")
    ex.add_argument(
        "--engine",
        choices=("inprocess", "processes"),
        default="inprocess",
        help="how the CPUs run each execution: inprocess (coroutines of one process, a step is a "
        "switch; the default) or processes (the real CPU processes through the gate); same results",
    )
    ex.add_argument(
        "--jobs",
        type=int_in(1, 4096),
        default=1,
        help=f"worker processes sharing the search (default 1; this host has {_default_jobs()} cores). An "
        "exhaustive search still running after 200 executions is cut into subtrees, one job "
        "each; random/pct/hypothesis run one seed per worker. Verdicts do not depend on it, "
        "nor do proof totals for a given --subtrees",
    )
    ex.add_argument(
        "--subtrees",
        type=int_in(1, 100_000),
        default=None,
        help="cut an exhaustive search into at least this many subtrees (default 8 with "
        "--jobs > 1 or --cluster; each subtree repeats a few traces of its siblings)",
    )
    ex.add_argument(
        "--cluster",
        metavar="tcp://HOST:PORT|local",
        default=None,
        help="run the jobs on this Dask scheduler ('local': a LocalCluster of --jobs workers)",
    )


def _default_jobs() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _print_result(r: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(r.as_json(), sort_keys=True))
        return
    print(r.headline())
    extra = []
    if r.pruned:
        extra.append(f"{r.pruned:,} ended at a state seen before")
    if r.sleep_blocked:
        extra.append(f"{r.sleep_blocked:,} abandoned with every CPU asleep")
    if r.fallback:
        extra.append(f"trust gave way to the {r.search} search: {r.fallback}")
    if r.split:
        extra.append(f"split into {r.split['subtrees']} subtrees at depth {r.split['cut_depth']} on {r.jobs} job(s)")
    note = f"; {', '.join(extra)}" if extra else ""
    print(
        f"{r.workload}/{r.variant}: {r.search or r.scheduler}, {r.memory_model}, {r.cpus} CPUs x {r.iterations} "
        f"iteration(s): {r.examples:,} execution(s){note} in {r.seconds:.2f} s "
        f"({r.steps_per_second:,.0f} steps/s)"
    )
    if r.found:
        print(r.trace)
        print(f"schedule: {r.schedule}")
        print(f"replay:   {r.replay_command()}")


EXIT = {"found": 1, "proved": 0, "not-proved": 4}


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from shmkernel.schedule.explorer import explore
    from shmkernel.schedule.session import EXPLORE_KEYS
    from shmkernel.workload import registry as workloads

    wl = workloads.get(args.workload)
    raw = {k: v for k, v in wl.explore_defaults.items() if k not in EXPLORE_KEYS}
    raw.update({k: v for k, v in workload_options(wl, extra).items() if v != _default(wl, k)})
    check_cpus(args.cpus or wl.default_cpus, args)
    if args.cluster and args.cluster != "local" and not args.cluster.startswith(("tcp://", "tls://", "inproc://")):
        raise UsageError(f"--cluster expects tcp://HOST:PORT or local, got {args.cluster!r}")
    r = explore(
        wl,
        variant=args.variant,
        scheduler=args.scheduler,
        max_examples=args.max_examples,
        seed=args.seed,
        cpus=args.cpus,
        iterations=args.iterations,
        opts=raw,
        memory_model=args.memory_model,
        max_steps=args.max_steps,
        depth=args.depth,
        preemption_bound=args.preemption_bound,
        time_limit=args.time_limit,
        engine=args.engine,
        jobs=args.jobs,
        cluster=args.cluster,
        subtrees=args.subtrees,
    )
    try:
        _print_result(r, args.json)
    except BrokenPipeError:  # `| head`: the verdict still decides the exit code
        quiet_stdout()
    write_trace_out(args, r.timeline)
    if args.explain and r.found and not args.json:
        from shmkernel.schedule.window import explain_schedule

        print("\n".join(explain_schedule(wl, r.schedule)))
    return EXIT[r.verdict]


def _default(wl: Any, name: str) -> Any:
    return next(o.default for o in wl.options if o.name == name)
