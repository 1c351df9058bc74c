"""``shmkernel explain WORKLOAD SCHEDULE``: the interleaving window behind a found
violation (`shmkernel.schedule.window`), with ``--trace-out``/``--svg`` to look at it."""

from __future__ import annotations

import argparse
from typing import Any

from shmkernel.cli.options import add_trace_out, write_trace_out

TAKES_WORKLOAD_OPTIONS = False


def add_parser(sub: Any, wl: Any = None) -> None:
    ex = sub.add_parser("explain", help="why a found schedule shows its event: the window, checked by re-running")
    ex.add_argument("workload")
    ex.add_argument("schedule")
    add_trace_out(ex)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from shmkernel.schedule.window import explain_with_timeline
    from shmkernel.workload import registry as workloads

    lines, timeline = explain_with_timeline(workloads.get(args.workload), args.schedule)
    print("\n".join(lines))
    write_trace_out(args, timeline)
    return 0
