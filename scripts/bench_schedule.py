#!/usr/bin/env python3
"""Scheduled mode: executions to a counterexample and to a proof, per scheduler.

For each program (a workload, variant and size) and each scheduler
(exhaustive, stateful, pct, hypothesis, random) it prints the executions the
search ran and its wall time: to the first counterexample on a buggy variant,
to a proof on a fixed one (the sampling schedulers never prove: "-"). The
baseline, measured in the same run, is the program's Mazurkiewicz trace count:
a full search with sleep sets (`BruteForceScheduler(sleep_sets=True)`,
independent of the DPOR) counts the distinct happens-before classes of its
complete executions, where that is affordable (``n/a`` when it is not). An
optimal search proves a program in exactly its trace count: the "x traces"
column is the ratio.

Run: python scripts/bench_schedule.py [--quick] [--budget N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shmkernel.explore import explore  # noqa: E402
from shmkernel.schedule.bruteforce import BruteForceScheduler  # noqa: E402
from shmkernel.schedule.hb import canonical  # noqa: E402
from shmkernel.schedule.session import Session, resolve  # noqa: E402

#: (label, workload, variant, cpus, iterations, options, expect a bug)
PROGRAMS: list[tuple[str, str, str, int | None, int | None, dict[str, Any], bool]] = [
    ("refcount buggy 2 CPUs", "refcount", "buggy", 2, None, {}, True),
    ("refcount fixed 2 CPUs", "refcount", "fixed", 2, None, {}, False),
    ("refcount buggy 3 CPUs", "refcount", "buggy", 3, None, {}, True),
    ("refcount fixed 3 CPUs", "refcount", "fixed", 3, None, {}, False),
    ("refcount buggy 4 CPUs", "refcount", "buggy", 4, None, {}, True),
    ("refcount fixed 4 CPUs", "refcount", "fixed", 4, None, {}, False),
    ("refcount buggy --iterations 2", "refcount", "buggy", 2, 2, {}, True),
    ("refcount fixed --iterations 2", "refcount", "fixed", 2, 2, {}, False),
    ("static-key pre-fix", "static-key", "pre-fix", None, None, {}, True),
    ("static-key seed-fix", "static-key", "seed-fix", None, None, {}, False),
    ("static-key upstream", "static-key", "upstream", None, None, {}, False),
    ("rmmod buggy", "rmmod", "buggy", None, None, {}, True),
    ("livepatch fixed going", "livepatch", "fixed", None, None, {"race": "going"}, False),
    ("modcount-2002 busmouse-locked", "modcount-2002", "busmouse-locked", None, None, {}, False),
    ("symbol-get-put buggy", "symbol-get-put", "buggy", None, None, {}, True),
]
SCHEDULERS = ("exhaustive", "stateful", "pct", "hypothesis", "random")
SLOW = {"rmmod buggy": ("stateful", "hypothesis", "random"), "symbol-get-put buggy": ("stateful",)}


def trace_count(
    workload: str, variant: str, cpus: int | None, iterations: int | None, opts: dict[str, Any], cap: int
) -> tuple[int | None, float]:
    """Distinct Mazurkiewicz traces of the program (None past ``cap`` executions)."""
    t0 = time.perf_counter()
    wl, variant, parsed, ncpus, iters = resolve(workload, variant, opts, cpus, iterations)
    sched = BruteForceScheduler(cap, sleep_sets=True)
    keys = set()
    with Session(wl, variant, ncpus, parsed, iters, "native", 20_000) as sess:
        while sched.new_execution():
            ex, _ = sess.execute(sched)
            if ex.outcome != "pruned":
                keys.add(canonical(ex.steps))
    return (len(keys) if sched.exhausted else None), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=20_000, help="executions per search at most")
    ap.add_argument("--trace-cap", type=int, default=20_000, help="executions of the trace count at most")
    ap.add_argument("--quick", action="store_true", help="skip the slowest searches (marked 'skipped')")
    args = ap.parse_args()
    print(f"{'program':31} {'traces':>8} | " + " | ".join(f"{s:>19}" for s in SCHEDULERS) + " | x traces")
    for label, wl, variant, cpus, iters, opts, buggy in PROGRAMS:
        traces, _ = (None, 0.0) if buggy else trace_count(wl, variant, cpus, iters, opts, args.trace_cap)
        cells = []
        ratio = ""
        for sched in SCHEDULERS:
            if args.quick and sched in SLOW.get(label, ()):
                cells.append(f"{'skipped':>19}")
                continue
            if not buggy and sched in ("pct", "hypothesis", "random"):
                cells.append(f"{'-':>19}")
                continue
            budget = args.budget if sched in ("exhaustive", "stateful") else min(args.budget, 5_000)
            t0 = time.perf_counter()
            r = explore(
                wl,
                variant=variant,
                scheduler=sched,
                cpus=cpus,
                iterations=iters,
                opts=opts,
                max_examples=budget,
                seed=1,
            )
            secs = time.perf_counter() - t0
            good = r.verdict == ("found" if buggy else "proved")
            mark = "" if good else ("?" if r.verdict == "not-proved" else "!")
            cells.append(f"{r.examples:>9,}{mark:1} {secs:7.2f} s")
            if sched == "exhaustive" and traces and good:
                ratio = f"{r.examples / traces:.2f}"
        tr = f"{traces:,}" if traces is not None else ("" if buggy else "n/a")
        print(f"{label:31} {tr:>8} | " + " | ".join(cells) + f" | {ratio}", flush=True)
    print(
        "cells: executions and seconds to a counterexample (buggy) or a proof (fixed); "
        "?: budget reached without one; !: a wrong verdict"
    )


if __name__ == "__main__":
    main()
