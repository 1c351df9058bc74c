"""Sub-commands built on the scheduled mode: explore and replay."""

from __future__ import annotations

import argparse
import json
from typing import Any

from shmkernel.errors import UsageError


def add_parsers(sub: Any, add_common: Any, int_in: Any, positive_float: Any) -> None:
    ex = sub.add_parser("explore", help="search interleavings: exit 1 found, 0 proved, 4 not-proved")
    add_common(ex)
    ex.add_argument("--scheduler", choices=("exhaustive", "stateful", "hypothesis", "random", "pct"),
                    default=None,
                    help="default exhaustive: Optimal DPOR under native/sc, the stateful search under "
                         "tso/weak/lkmm; both complete, so a clean end is a proof. hypothesis shrinks a "
                         "failure to few switches; random and pct sample (never a proof)")
    ex.add_argument("--max-examples", type=int_in(1, 10**7), default=None,
                    help="executions at most (default 100,000 for exhaustive/stateful, or the "
                         "workload's own; 1,000 for hypothesis/random/pct)")
    ex.add_argument("--time-limit", type=positive_float, default=None, metavar="SECONDS",
                    help="stop after this long (checked between executions): NOT a proof then")
    ex.add_argument("--iterations", type=int_in(1, 10**6), default=None, help="iterations per CPU program")
    ex.add_argument("--depth", type=int_in(1, 100), default=3, help="PCT bug depth")
    ex.add_argument("--preemption-bound", type=int_in(0, 1000), default=None,
                    help="exhaustive/stateful: skip interleavings with more preemptions (NOT a proof "
                         "when it skipped any)")
    ex.add_argument("--max-steps", type=int_in(1, 10**7), default=20_000, help="livelock step budget")
    rp = sub.add_parser("replay", help="re-run a schedule string exactly")
    rp.add_argument("workload")
    rp.add_argument("schedule")
    rp.add_argument("--variant")
    rp.add_argument("--repeat", type=int_in(1, 10_000), default=1)
    rp.add_argument("--json", action="store_true")
    lt = sub.add_parser("litmus", help="run LKMM litmus tests (herd7/litmus7-style output)")
    lt.add_argument("files", nargs="+", metavar="FILE")
    lt.add_argument("--memory-model", choices=("native", "sc", "tso", "weak", "lkmm"), default="native")
    lt.add_argument("--mode", choices=("exhaustive", "free"), default="exhaustive")
    lt.add_argument("--runs", type=int_in(1, 10**7), default=1000, help="free mode: runs per test")
    lt.add_argument("--json", action="store_true")


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
    note = f"; {', '.join(extra)}" if extra else ""
    print(f"{r.workload}/{r.variant}: {r.scheduler}, {r.memory_model}, {r.cpus} CPUs x {r.iterations} "
          f"iteration(s): {r.examples:,} execution(s){note} in {r.seconds:.2f} s "
          f"({r.steps_per_second:,.0f} steps/s)")
    if r.found:
        print(r.trace)
        print(f"schedule: {r.schedule}")
        print(f"replay:   shmkernel replay {r.workload} '{r.schedule}'")


EXIT = {"found": 1, "proved": 0, "not-proved": 4}


def cmd_explore(args: argparse.Namespace, extra: list[str]) -> int:
    import workloads
    from shmkernel.cli import _workload_options
    from shmkernel.explore import EXPLORE_KEYS, explore

    wl = workloads.get(args.workload)
    raw = {k: v for k, v in wl.explore_defaults.items() if k not in EXPLORE_KEYS}
    raw.update({k: v for k, v in _workload_options(wl, extra).items() if v != _default(wl, k)})
    r = explore(wl, variant=args.variant, scheduler=args.scheduler, max_examples=args.max_examples,
                seed=args.seed, cpus=args.cpus, iterations=args.iterations, opts=raw,
                memory_model=args.memory_model, max_steps=args.max_steps, depth=args.depth,
                preemption_bound=args.preemption_bound, time_limit=args.time_limit)
    try:
        _print_result(r, args.json)
    except BrokenPipeError:  # `| head`: the verdict still decides the exit code
        from shmkernel.cli import quiet_stdout

        quiet_stdout()
    return EXIT[r.verdict]


def _default(wl: Any, name: str) -> Any:
    return next(o.default for o in wl.options if o.name == name)


def cmd_replay(args: argparse.Namespace) -> int:
    import workloads
    from shmkernel.explore import replay

    wl = workloads.get(args.workload)
    results = replay(wl, args.schedule, variant=args.variant, repeat=args.repeat)
    first = results[0]
    same = all(r.trace == first.trace and r.events == first.events for r in results)
    if args.json:
        print(json.dumps(first.as_json() | {"repeat": len(results), "identical": same}, sort_keys=True))
    else:
        print(first.trace)
        ev = ", ".join(f"{k}={v}" for k, v in first.events.items()) or "no violation"
        print(f"{wl.name}/{first.variant}: {ev}; {len(results)} replay(s), "
              f"{'all identical' if same else 'NOT identical'}")
    if not same:
        return 3
    return 1 if first.found else 0


def cmd_litmus(args: argparse.Namespace) -> int:
    from shmkernel.litmus.parse import parse_litmus
    from shmkernel.litmus.runner import format_result, run_file

    for path in args.files:
        parse_litmus(path)  # every file is checked before anything runs
    for i, path in enumerate(args.files):
        r = run_file(path, args.memory_model, args.mode, args.runs)
        if args.json:
            print(json.dumps(r.as_json(), sort_keys=True))
        else:
            print(("\n" if i else "") + format_result(r))
    return 0


def dispatch(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    if args.command == "explore":
        return cmd_explore(args, extra or [])
    if args.command == "replay":
        return cmd_replay(args)
    if args.command == "litmus":
        return cmd_litmus(args)
    raise UsageError(f"unknown command {args.command!r}")
