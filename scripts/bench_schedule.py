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

With ``--engines`` it measures throughput instead (issue "Exploration
throughput"): executions per second of the same exhaustive search on the
process engine and the in-process engine (the baseline is the process
engine, measured in the same run), the speed-up of ``--jobs 2`` over
``--jobs 1`` on proofs that split (same total executions, checked), and the
time of the 4-CPU refcount proof under lkmm.

With ``--models`` it compares, under ``tso``, ``weak`` and ``lkmm``, the stateful
search over machine states (``--scheduler stateful``, the baseline, measured
in the same run) with the same search over execution graphs (``--scheduler
graph``; not under lkmm) and with TruSt over graphs (``--scheduler trust``, what
``exhaustive`` runs there; under lkmm the graph is checked by the LKMM's
axioms): executions and seconds to a proof or a counterexample, and the
ratio; beside them GenMC 0.9's recorded counts under ``--lkmm`` for the C
versions of the same programs (complete + blocked executions; bench sitting of
2026-12-02, written in the issue "GenMC-class exploration"), for scale: the
graph search keeps a state cache and runs an execution per (state, choice),
where GenMC runs one per consistent graph.

Run: python scripts/bench_schedule.py [--quick] [--budget N]
     python scripts/bench_schedule.py --engines [--budget N] [--lkmm-limit S]
     python scripts/bench_schedule.py --models [--budget N] [--time-limit S]
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
from shmkernel.schedule.parallel import DEFAULT_SUBTREES  # noqa: E402
from shmkernel.schedule.result import KERNEL_SYNC_GAPS  # noqa: E402
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


#: (label, workload, variant, cpus, iterations): throughput programs (exhaustive, jobs 1)
THROUGHPUT = [
    ("refcount fixed 2 CPUs x 3 iterations", "refcount", "fixed", 2, 3),
    ("refcount fixed 3 CPUs x 2 iterations", "refcount", "fixed", 3, 2),
    ("static-key upstream x 2 iterations", "static-key", "upstream", 2, 2),
    ("rmmod buggy (default)", "rmmod", "buggy", None, None),
    ("livepatch fixed (default)", "livepatch", "fixed", None, None),
]
#: proofs past the split point, for the --jobs speed-up
SPLIT_PROOFS = [
    ("static-key upstream x 2 iterations", "static-key", "upstream", 2, 2),
    ("modcount-2002 try-module-get", "modcount-2002", "try-module-get", None, None),
]


def engines(budget: int, lkmm_limit: float) -> None:
    print(f"{'program':40} {'processes':>16} {'inprocess':>16} {'x':>6}")
    for label, wl, variant, cpus, iters in THROUGHPUT:
        rates = []
        for engine in ("processes", "inprocess"):
            t0 = time.perf_counter()
            r = explore(wl, variant=variant, cpus=cpus, iterations=iters, max_examples=budget, engine=engine)
            rates.append(r.examples / (time.perf_counter() - t0))
        print(f"{label:40} {rates[0]:>10,.0f} exe/s {rates[1]:>10,.0f} exe/s {rates[1] / rates[0]:>5.1f}x", flush=True)
    print(f"\n{'proof (in-process)':36} {'unsplit, 1 job':>22} {'split, 1 job':>22} {'split, 2 jobs':>22}")
    for label, wl, variant, cpus, iters in SPLIT_PROOFS:
        cells, totals = [], []
        for jobs, subtrees in ((1, None), (1, DEFAULT_SUBTREES), (2, None)):
            t0 = time.perf_counter()
            r = explore(wl, variant=variant, cpus=cpus, iterations=iters, jobs=jobs, subtrees=subtrees)
            secs = time.perf_counter() - t0
            cells.append(f"{r.examples:>9,} {secs:7.2f} s")
            totals.append((r.verdict, r.examples, secs))
        same = "" if totals[1][:2] == totals[2][:2] else "  SPLIT TOTALS DIFFER"
        print(
            f"{label:36} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}  2 jobs: "
            f"{totals[1][2] / totals[2][2]:.2f}x the split, {totals[0][2] / totals[2][2]:.2f}x unsplit{same}",
            flush=True,
        )
    t0 = time.perf_counter()
    r = explore("refcount", variant="fixed", cpus=4, memory_model="lkmm", time_limit=lkmm_limit)
    print(
        f"\nrefcount fixed, 4 CPUs, lkmm: {r.verdict} after {r.examples:,} executions in "
        f"{time.perf_counter() - t0:.1f} s (limit {lkmm_limit:g} s)"
    )


#: (label, workload, variant, cpus, iterations, options, expect a bug, GenMC --lkmm count or "")
MODEL_PROGRAMS: list[tuple[str, str, str, int | None, int | None, dict[str, Any], bool, str]] = [
    ("refcount fixed", "refcount", "fixed", None, None, {}, False, "5+1"),
    ("refcount fixed 3 CPUs", "refcount", "fixed", 3, None, {}, False, "29+7"),
    ("refcount fixed --iterations 2", "refcount", "fixed", None, 2, {}, False, "24+7"),
    ("refcount fixed 4 CPUs", "refcount", "fixed", 4, None, {}, False, "173+43"),
    ("refcount nobarrier", "refcount", "percpu-incs-decs-nobarrier", None, None, {}, True, ""),
    ("refcount relaxed hand-off", "refcount", "fixed", None, None, {"handoff": "relaxed"}, True, "2"),
    ("static-key seed-fix", "static-key", "seed-fix", None, None, {}, True, "8+3"),
    ("static-key upstream", "static-key", "upstream", None, None, {}, False, "40+22"),
    ("modcount-2002 try-module-get", "modcount-2002", "try-module-get", None, None, {}, False, ""),
    ("livepatch fixed", "livepatch", "fixed", None, None, {}, False, ""),
    # grace periods as memory under trust (`shmkernel.schedule.rcu_memory`); the stateful
    # searches keep kernel_sync's grace periods (moments of the schedule)
    ("rmmod fixed 1 CPU x 2", "rmmod", "fixed", 1, 2, {"hold_iterations": 1, "idle_iterations": 0}, False, ""),
    ("rmmod fixed", "rmmod", "fixed", None, None, {}, False, ""),
    ("rmmod buggy", "rmmod", "buggy", None, None, {}, True, ""),
]


def timed_explore(
    wl: str, variant: str, sched: str, cpus: int | None, iters: int | None, opts: dict[str, Any], **kw: Any
) -> tuple[Any, float]:
    """One search, and its wall time."""
    t0 = time.perf_counter()
    r = explore(wl, variant=variant, scheduler=sched, cpus=cpus, iterations=iters, opts=opts, **kw)
    return r, time.perf_counter() - t0


def models(budget: int, limit: float, only: str = "") -> None:
    head = f"{'program':31} {'model':5} | {'stateful (machine)':>20} | {'graph (stateful)':>20} | {'trust':>20}"
    print(f"{head} | {'x fewer':>7} | GenMC lkmm")
    for label, wl, variant, cpus, iters, opts, buggy, genmc in MODEL_PROGRAMS:
        if only not in label:
            continue
        for model in ("tso", "weak", "lkmm"):
            cells, counts = [], []
            for sched in ("stateful", "graph", "trust"):
                if sched == "graph" and model == "lkmm":  # no stateful search over lkmm graphs
                    cells.append(f"{'-':>20}")
                    counts.append(None)
                    continue
                r, secs = timed_explore(
                    wl, variant, sched, cpus, iters, opts, memory_model=model, max_examples=budget, time_limit=limit
                )
                good = r.verdict == "found" if buggy else r.verdict == "proved"
                gap = r.stopped_by in KERNEL_SYNC_GAPS
                mark = "" if good else ("=" if r.verdict != "not-proved" else "~" if gap else "?")
                mark += "*" if r.fallback else ""
                cells.append(f"{r.examples:>9,}{mark:2} {secs:7.2f} s")
                counts.append(r.examples if good else None)
            ratio = f"{counts[0] / counts[2]:.1f}" if counts[0] and counts[2] else "-"
            row = f"{label:31} {model:5} | {cells[0]:>20} | {cells[1]:>20} | {cells[2]:>20}"
            print(f"{row} | {ratio:>7} | {genmc}", flush=True)
    print(
        "cells: executions and seconds to a proof (fixed) or a counterexample (buggy); ?: budget or "
        "time limit reached; ~: a complete search but no proof (kernel_sync's grace periods or stops, "
        "KERNEL_SYNC_GAPS); =: not found where the program has a bug under that model (tso hides some); "
        "*: trust gave way to the stateful search (kernel synchronisation); x fewer: machine / trust"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=20_000, help="executions per search at most")
    ap.add_argument("--engines", action="store_true", help="engine and --jobs throughput instead")
    ap.add_argument("--lkmm-limit", type=float, default=300.0, help="seconds for the 4-CPU lkmm proof")
    ap.add_argument("--trace-cap", type=int, default=20_000, help="executions of the trace count at most")
    ap.add_argument("--quick", action="store_true", help="skip the slowest searches (marked 'skipped')")
    ap.add_argument("--models", action="store_true", help="tso/weak/lkmm: machine states vs execution graphs")
    ap.add_argument("--time-limit", type=float, default=300.0, help="--models: seconds per search at most")
    ap.add_argument("--only", default="", help="--models: the programs whose label holds this text")
    args = ap.parse_args()
    if args.models:
        models(args.budget, args.time_limit, args.only)
        return
    if args.engines:
        engines(min(args.budget, 3_000), args.lkmm_limit)
        return
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
            r, secs = timed_explore(wl, variant, sched, cpus, iters, opts, max_examples=budget, seed=1)
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
