"""``shmkernel litmus``: LKMM litmus tests, herd7-style output."""

from __future__ import annotations

import argparse
import json
from typing import Any

from shmkernel.cli.options import MEMORY_MODELS, int_in
from shmkernel.errors import UsageError

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
    lt.add_argument(
        "--engine",
        choices=("axiomatic", "operational"),
        default=None,
        help="lkmm: axiomatic (default; linux-kernel.cat's axioms on every candidate execution, as herd7) "
        "or operational (the emulated CPUs' lkmm model, which has no load buffering); other models: operational",
    )
    lt.add_argument(
        "--budget",
        type=int_in(1, 10**9),
        default=5_000_000,
        help="axiomatic: candidate executions before giving up with no verdict (exit 4)",
    )
    lt.add_argument(
        "--explain",
        action="store_true",
        help="axiomatic: why the condition's outcome is allowed (an execution) or forbidden (the axiom and a "
        "cycle), and the fewest, weakest barriers that forbid an allowed one, each checked",
    )
    lt.add_argument("--mode", choices=("exhaustive", "free"), default="exhaustive")
    lt.add_argument("--runs", type=int_in(1, 10**7), default=1000, help="free mode: runs per test")
    lt.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from shmkernel.litmus.cparse import parse_c_litmus
    from shmkernel.litmus.explain import explain
    from shmkernel.litmus.parse import parse_litmus
    from shmkernel.litmus.runner import format_result, run_file
    from shmkernel.litmus.verdict import lkmm_verdict

    model = args.memory_model or ("native" if args.mode == "free" else "lkmm")
    engine = args.engine or ("axiomatic" if model == "lkmm" and args.mode == "exhaustive" else "operational")
    if args.explain and engine != "axiomatic":
        raise UsageError("--explain works with the axiomatic engine (--memory-model lkmm, the default)")
    if engine == "axiomatic" and (model != "lkmm" or args.mode != "exhaustive"):
        raise UsageError("--engine axiomatic checks the LKMM exhaustively: use --memory-model lkmm --mode exhaustive")
    for path in args.files:  # every file is checked before anything runs
        parse_c_litmus(path) if engine == "axiomatic" else parse_litmus(path)
    for i, path in enumerate(args.files):
        r: Any = (
            lkmm_verdict(path, args.budget) if engine == "axiomatic" else run_file(path, model, args.mode, args.runs)
        )
        why = explain(r.test, args.budget) if args.explain and engine == "axiomatic" else None
        if args.json:
            print(json.dumps(r.as_json() | ({"explanation": why} if why is not None else {}), sort_keys=True))
        else:
            print(("\n" if i else "") + (r.format() if engine == "axiomatic" else format_result(r)))
            if why is not None:
                print("\n".join(why))
    return 0
