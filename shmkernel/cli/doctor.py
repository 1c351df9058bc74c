"""``shmkernel doctor``: can this host run shmkernel (`shmkernel.runtime.doctor`)."""

from __future__ import annotations

import argparse
from typing import Any

from shmkernel.cli.options import int_in

TAKES_WORKLOAD_OPTIONS = False


def add_parser(sub: Any, wl: Any = None) -> None:
    d = sub.add_parser("doctor", help="check this host")
    d.add_argument("--cpus", type=int_in(1, 1024))
    d.add_argument("--clean", action="store_true", help="remove what dead runs left in /dev/shm")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from shmkernel.runtime.doctor import doctor

    rows, ok = doctor(args.cpus, clean=args.clean)
    for name, finding, good in rows:
        print(f"{'ok ' if good else 'BAD'} {name:10} {finding}")
    return 0 if ok else 1
