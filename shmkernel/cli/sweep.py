"""``shmkernel sweep``: a grid of free runs, resumable JSONL, a table and a plot.

    shmkernel sweep refcount --param tally-delay-us=0,1,5,20 --param variant=buggy,atomic \\
        --repeat 3 --seconds 1 --out sweep.jsonl --plot sweep.png

Fixed workload options go after the sweep's own, as for ``run``
(``--possible-cpus 64``); an interrupted sweep run again with the same
``--out`` skips the points already in the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shmkernel.cli.options import add_workload_common, check_cpus, int_in, positive_float, workload_options
from shmkernel.errors import UsageError

TAKES_WORKLOAD_OPTIONS = True


def add_parser(sub: Any, wl: Any = None) -> argparse.ArgumentParser:
    sw = sub.add_parser("sweep", help="free runs over a grid of parameters (JSONL, table, plot)")
    add_workload_common(sw, wl)
    sw.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a swept parameter: a workload option, cpus, variant or seconds (repeatable)",
    )
    sw.add_argument("--repeat", type=int_in(1, 10_000), default=1, help="runs per grid point")
    sw.add_argument("--seconds", type=positive_float, default=1.0, help="run time per point (default 1)")
    sw.add_argument("--out", metavar="FILE.jsonl", help="append records here; resume from it")
    sw.add_argument("--plot", metavar="FILE.png", help="plot the rate against the swept parameter")
    sw.add_argument("--x", dest="plot_x", metavar="NAME", help="the parameter on the plot's x axis")
    sw.add_argument("--cluster", metavar="tcp://HOST:PORT", help="run each point as a Dask task there")
    sw.add_argument("--no-pin", action="store_true", help="do not pin CPU processes to cores")
    sw.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr (auto: when it is a terminal)",
    )
    return sw


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from shmkernel.measure.sweep import print_summary, sweep
    from shmkernel.workload import registry as workloads

    wl = workloads.get(args.workload)
    if not getattr(args, "param", None):
        raise UsageError("sweep needs at least one --param NAME=V1,V2,...")
    if getattr(args, "memory_model", "native") != "native":
        raise UsageError("sweep runs free, on the host's own memory model (native) only")
    if args.cluster and not args.cluster.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        raise UsageError(f"--cluster expects tcp://HOST:PORT, got {args.cluster!r}")
    opts = workload_options(wl, extra)
    progress = {"auto": None, "always": True, "never": False}[getattr(args, "progress", "auto")]
    check_cpus(args.cpus or wl.default_cpus, args)
    res = sweep(
        wl,
        args.param,
        repeat=args.repeat,
        out=args.out,
        variant=args.variant,
        cpus=args.cpus,
        seconds=args.seconds,
        opts=opts,
        cluster=args.cluster,
        progress=progress,
        pin=not getattr(args, "no_pin", False),
    )
    if getattr(args, "json", False):
        for r in res.records:
            print(json.dumps(r, sort_keys=True))
    else:
        print_summary(wl, res.records)
        where = f" -> {args.out}" if args.out else ""
        print(
            f"{res.ran} point(s) run, {res.skipped} already in the file{where} ({res.seconds:.1f} s)", file=sys.stderr
        )
    if args.plot:
        from shmkernel.measure.plot import plot

        p = plot(res.records, args.plot, x=getattr(args, "plot_x", None))
        print(f"plot: {p.path} ({p.event} vs {p.x}; {len(p.labels)} series)", file=sys.stderr)
    return 0
