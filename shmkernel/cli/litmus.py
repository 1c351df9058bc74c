"""``shmkernel litmus``: LKMM litmus tests, herd7-style output."""

from __future__ import annotations

import argparse
import json
from typing import Any

from shmkernel.cli.options import MEMORY_MODELS, int_in

TAKES_WORKLOAD_OPTIONS = False


def add_parser(sub: Any, wl: Any = None) -> None:
    lt = sub.add_parser("litmus", help="run LKMM litmus tests (herd7/litmus7-style output)")
    lt.add_argument("files", nargs="+", metavar="FILE")
    lt.add_argument(
        "--memory-model",
        choices=MEMORY_MODELS,
        default=None,
        help="default lkmm (herd7's model, what kernel developers compare with); "
        "--mode free runs on the host's own (native)",
    )
    lt.add_argument("--mode", choices=("exhaustive", "free"), default="exhaustive")
    lt.add_argument("--runs", type=int_in(1, 10**7), default=1000, help="free mode: runs per test")
    lt.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from shmkernel.litmus.parse import parse_litmus
    from shmkernel.litmus.runner import format_result, run_file

    model = args.memory_model or ("native" if args.mode == "free" else "lkmm")
    for path in args.files:
        parse_litmus(path)  # every file is checked before anything runs
    for i, path in enumerate(args.files):
        r = run_file(path, model, args.mode, args.runs)
        if args.json:
            print(json.dumps(r.as_json(), sort_keys=True))
        else:
            print(("\n" if i else "") + format_result(r))
    return 0
