#!/usr/bin/env python
"""Regenerate the figures in docs/figures/ (a few minutes on 2 cores).

    python scripts/make_figures.py [--seconds 1.0] [--repeat 3] [--only NAME ...] [--fresh]

Each figure is a sweep (shmkernel.measure.sweep) whose records are kept next
to the PNG as docs/figures/NAME.jsonl; a run resumes from those files, so
``--fresh`` is needed to measure again rather than redraw (or delete the
.jsonl). The rate of each point pools its repeats; zero-event points are
drawn at their exact 95% upper bound (a white downward triangle).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from shmkernel.measure.plot import plot  # noqa: E402
from shmkernel.measure.sweep import print_summary, sweep  # noqa: E402

OUT = os.path.join(ROOT, "docs", "figures")
REFCOUNT_VARIANTS = "variant=percpu-count,percpu-incs-decs,atomic"

#: name -> (workload, params, fixed options, x, title)
FIGURES = {
    "refcount_vs_tally_delay": (
        "refcount",
        ["tally_delay_us=0,1,2,5,10,20,50", REFCOUNT_VARIANTS],
        {"cpus": 2},
        "tally_delay_us",
        "refcount: false zeros vs the tally's delay between per-CPU slots (2 CPUs)",
    ),
    "refcount_vs_cpus": (
        "refcount",
        ["cpus=1,2,3,4", REFCOUNT_VARIANTS],
        {"tally_delay_us": 5.0},
        "cpus",
        "refcount: false zeros vs emulated CPUs (tally delay 5 µs)",
    ),
    "static_key_vs_sites": (
        "static-key",
        ["sites=1,2,4,8,16,64,256", "variant=pre-fix,seed-fix,upstream"],
        {},
        "sites",
        "static-key: vCPUs taking the wrong path vs jump sites to patch (2 CPUs)",
    ),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="run time per point")
    ap.add_argument("--repeat", type=int, default=3, help="runs per point (pooled)")
    ap.add_argument("--only", nargs="*", choices=sorted(FIGURES), help="these figures only")
    ap.add_argument("--fresh", action="store_true", help="measure again (drop the kept .jsonl)")
    ap.add_argument("--out", default=OUT, help="folder (default docs/figures)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    import workloads

    for name in args.only or FIGURES:
        wl_name, params, fixed, x, title = FIGURES[name]
        jsonl, png = os.path.join(args.out, name + ".jsonl"), os.path.join(args.out, name + ".png")
        if args.fresh and os.path.exists(jsonl):
            os.unlink(jsonl)
        t0 = time.perf_counter()
        fixed = dict(fixed)
        cpus = fixed.pop("cpus", None)
        res = sweep(wl_name, params, repeat=args.repeat, out=jsonl, seconds=args.seconds, cpus=cpus, opts=fixed)
        print_summary(workloads.get(wl_name), res.records)
        p = plot(res.records, png, x=x, title=title)
        print(
            f"{png}: {len(p.labels)} series, log y={p.log_y}; {res.ran} run, {res.skipped} kept "
            f"({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
