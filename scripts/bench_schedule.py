#!/usr/bin/env python3
"""Scheduled mode: steps/s with real processes, executions/s, and the time to a
counterexample (median of 5 seeds, machine start included) per scheduler, on the
refcount workload (2 workers + the tallier). Also the DPOR execution counts
that find the bug and prove the fixes.  Run: python scripts/bench_schedule.py"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shmkernel.explore import explore  # noqa: E402


def main() -> None:
    print(f"{'scheduler':12} {'found in (median s)':>20} {'executions (median)':>20} {'steps/s':>10} {'exec/s':>8}")
    for sched in ("exhaustive", "hypothesis", "pct", "random"):
        times, execs, sps, eps = [], [], [], []
        for seed in range(5):
            t0 = time.perf_counter()
            r = explore("refcount", variant="buggy", scheduler=sched, max_examples=5000, seed=seed)
            times.append(time.perf_counter() - t0)
            execs.append(r.examples)
            sps.append(r.steps_per_second)
            eps.append(r.examples / r.seconds)
            assert r.found, f"{sched} seed {seed} found nothing"
        print(f"{sched:12} {statistics.median(times):20.3f} {statistics.median(execs):20.0f} "
              f"{statistics.median(sps):10,.0f} {statistics.median(eps):8,.0f}")
    print()
    for wl, variant in (("refcount", "percpu-incs-decs"), ("refcount", "atomic")):
        t0 = time.perf_counter()
        r = explore(wl, variant=variant, scheduler="exhaustive", max_examples=100_000)
        print(f"exhaustive proves {wl}/{variant}: complete={r.complete} found={r.found} "
              f"in {r.examples} executions, {time.perf_counter() - t0:.2f} s")
    try:
        r = explore("static-key", variant="fixed", scheduler="exhaustive", max_examples=100_000)
        print(f"exhaustive proves static-key/fixed: complete={r.complete} found={r.found} in {r.examples} executions")
    except Exception as e:  # noqa: BLE001 - the workload may not exist in older trees
        print(f"static-key: {e}")


if __name__ == "__main__":
    main()
