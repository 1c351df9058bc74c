#!/usr/bin/env python3
"""Scheduled mode: steps/s with real processes, executions/s, and the time to a
counterexample (median of 5 seeds, machine start included) per scheduler, on the
refcount workload (2 workers + the tallier). Also the executions the DPOR and
the stateful search need to prove the fixes, and the stateful search's time to
the rmmod use-after-free.  Run: python scripts/bench_schedule.py"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shmkernel.explore import explore  # noqa: E402


def main() -> None:
    print(f"{'scheduler':12} {'found in (median s)':>20} {'executions (median)':>20} {'steps/s':>10} {'exec/s':>8}")
    for sched in ("exhaustive", "stateful", "hypothesis", "pct", "random"):
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
    proofs = [("refcount", "percpu-incs-decs", "native"), ("refcount", "atomic", "native"),
              ("static-key", "fixed", "native"), ("static-key", "upstream", "lkmm"),
              ("refcount", "percpu-incs-decs", "lkmm")]
    for wl, variant, model in proofs:
        for sched in ("exhaustive", "stateful"):
            if model != "native" and sched == "exhaustive":
                continue  # under a model exhaustive is the stateful search already
            t0 = time.perf_counter()
            r = explore(wl, variant=variant, scheduler=sched, memory_model=model, max_examples=100_000)
            print(f"{sched:10} proves {wl}/{variant} under {model}: complete={r.complete} found={r.found} "
                  f"in {r.examples} executions, {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    r = explore("rmmod", variant="percpu-count", scheduler="stateful", max_examples=100_000)
    print(f"stateful finds the rmmod use-after-free: found={r.found} in {r.examples} executions, "
          f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
