"""``shmkernel list``: the workloads, their variants (with the buggy/fixed aliases), events and options."""

from __future__ import annotations

import argparse
from typing import Any

TAKES_WORKLOAD_OPTIONS = False


def add_parser(sub: Any, wl: Any = None) -> None:
    sub.add_parser("list", help="workloads, variants, events")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from shmkernel.workload import registry as workloads

    for wl in workloads.all_workloads():
        print(f"{wl.name}: {wl.summary}")
        for v, desc in wl.variants.items():
            alias = [a for a, t in wl.aliases.items() if t == v]
            print(f"  variant {v}{' (' + ', '.join(alias) + ')' if alias else ''}: {desc}")
        print(f"  events: {', '.join(wl.events)}")
        for o in wl.options:
            print(f"  --{o.name.replace('_', '-')} (default {o.default}): {o.help}")
    return 0
