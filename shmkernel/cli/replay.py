"""``shmkernel replay``: re-run a schedule string exactly (``--repeat`` times)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from shmkernel.cli.options import add_trace_out, int_in, write_trace_out

TAKES_WORKLOAD_OPTIONS = False


def add_parser(sub: Any, wl: Any = None) -> None:
    rp = sub.add_parser("replay", help="re-run a schedule string exactly")
    rp.add_argument("workload")
    rp.add_argument("schedule")
    rp.add_argument("--variant")
    rp.add_argument("--repeat", type=int_in(1, 10_000), default=1)
    rp.add_argument("--json", action="store_true")
    add_trace_out(rp)
    rp.add_argument(
        "--engine",
        choices=("processes", "inprocess"),
        default="processes",
        help="processes (the default: the real CPU processes) or inprocess (coroutines)",
    )


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from shmkernel.schedule.explorer import replay
    from shmkernel.workload import registry as workloads

    wl = workloads.get(args.workload)
    results = replay(wl, args.schedule, variant=args.variant, repeat=args.repeat, engine=args.engine)
    first = results[0]
    same = all(r.trace == first.trace and r.events == first.events for r in results)
    if args.json:
        print(json.dumps(first.as_json() | {"repeat": len(results), "identical": same}, sort_keys=True))
    else:
        print(first.trace)
        ev = ", ".join(f"{k}={v}" for k, v in first.events.items()) or "no violation"
        print(
            f"{wl.name}/{first.variant}: {ev}; {len(results)} replay(s), {'all identical' if same else 'NOT identical'}"
        )
    write_trace_out(args, first.timeline)
    if not same:
        return 3
    return 1 if first.found else 0
