"""``shmkernel run``: free-running measurement of a workload, buggy and fixed side by side."""

from __future__ import annotations

import argparse
import json
from typing import Any

from shmkernel.cli.options import add_workload_common, check_cpus, int_in, positive_float, workload_options
from shmkernel.errors import UsageError

TAKES_WORKLOAD_OPTIONS = True


def add_parser(sub: Any, wl: Any = None) -> None:
    run = sub.add_parser("run", help="free-running measurement of a workload")
    add_workload_common(run, wl)
    g = run.add_mutually_exclusive_group()
    g.add_argument("--seconds", type=positive_float, default=None, help="run time per variant (default 3)")
    g.add_argument("--iterations", type=int_in(1, 10**12), default=None, help="iterations per CPU")
    run.add_argument("--no-pin", action="store_true", help="do not pin CPU processes to cores")
    run.add_argument(
        "--until-significant",
        action="store_true",
        help="measure buggy and fixed again and again (--seconds each time) until every event's "
        "difference is significant (p < 0.05), or --max-seconds in all",
    )
    run.add_argument(
        "--max-seconds",
        type=positive_float,
        default=60.0,
        help="--until-significant: stop after this long in all (default 60)",
    )


def _variants_to_run(wl: Any, variant: str | None) -> list[str]:
    if variant is not None:
        return [wl.resolve_variant(variant)]
    return [wl.resolve_variant("buggy"), wl.resolve_variant("fixed")]


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from shmkernel.measure.record import measure_free, merge
    from shmkernel.measure.report import significant
    from shmkernel.workload import registry as workloads
    from shmkernel.workload.machines import open_machine

    wl = workloads.get(args.workload)
    opts = workload_options(wl, extra)
    variants = _variants_to_run(wl, args.variant)
    if args.memory_model == "lkmm":
        raise UsageError(
            "--memory-model lkmm is a scheduled-mode model (explore, litmus, replay): its "
            "propagation choices are schedule steps; free runs take native, sc, tso or weak"
        )
    seconds = args.seconds if args.seconds is not None or args.iterations is not None else 3.0
    cpus = args.cpus or wl.default_cpus
    check_cpus(cpus, args)
    if args.until_significant and (args.variant is not None or args.iterations is not None):
        raise UsageError(
            "--until-significant compares buggy with fixed over time: give neither --variant nor --iterations"
        )
    records: list[dict[str, Any]] = []
    chunk: list[dict[str, Any]] = []
    try:
        with open_machine(wl, cpus, opts, pin=not args.no_pin) as m:
            spent = 0.0
            while True:
                chunk = []  # one row a variant as it finishes: Ctrl-C keeps those of the first round
                for v in variants:
                    chunk.append(
                        measure_free(
                            m,
                            wl,
                            v,
                            opts,
                            seconds=seconds,
                            iterations=args.iterations,
                            memory_model=args.memory_model,
                            seed=args.seed,
                        )
                    )
                records = chunk if not records else [merge(wl, a, b) for a, b in zip(records, chunk, strict=True)]
                spent += sum(r["seconds"] for r in chunk)
                if not args.until_significant or significant(wl, records) or spent >= args.max_seconds:
                    break
    except KeyboardInterrupt:
        _show(args, wl, records or chunk)  # Ctrl-C: what finished is kept, then the one line and 130
        raise
    _show(args, wl, records)
    return 0


def _show(args: argparse.Namespace, wl: Any, records: list[dict[str, Any]]) -> None:
    from shmkernel.measure.report import print_run_table

    if args.json:
        for r in records:
            print(json.dumps(r, sort_keys=True), flush=True)
    else:
        print_run_table(wl, records)
