#!/usr/bin/env python3
"""ns per ctx operation, as a ratio to a plain numpy store measured in the same run,
plus Machine start/stop time. Run: python scripts/bench_primitives.py [--n N]"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shmkernel.runtime.ctx import Ctx  # noqa: E402
from shmkernel.runtime.machine import Machine, Program  # noqa: E402


def _declare(layout):  # type: ignore[no-untyped-def]
    return layout.scalar("x"), layout.percpu("pc"), layout.scalar("lock")


def bench(ctx: Ctx, p: dict) -> dict:
    n = p["n"]
    x, pc, lock = p["v"]
    arr = ctx.seg.np
    out: dict[str, float] = {}

    def timeit(name: str, fn) -> None:  # type: ignore[no-untyped-def]
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            fn()
            best = min(best, (time.perf_counter_ns() - t0) / n)
        out[name] = best

    def numpy_store() -> None:
        for i in range(n):
            arr[x] = i

    def loop_only() -> None:
        for _ in range(n):
            pass

    ops = {
        "numpy store (baseline)": numpy_store,
        "empty loop": loop_only,
        "read_once": lambda: [ctx.read_once(x) for _ in range(n)],
        "write_once": lambda: [ctx.write_once(x, 1) for _ in range(n)],
        "this_cpu_inc": lambda: [ctx.this_cpu_inc(pc) for _ in range(n)],
        "per_cpu_read": lambda: [ctx.per_cpu_read(pc, 1) for _ in range(n)],
        "atomic_read": lambda: [ctx.atomic_read(x) for _ in range(n)],
        "atomic_inc": lambda: [ctx.atomic_inc(x) for _ in range(n)],
        "atomic_add_return": lambda: [ctx.atomic_add_return(x, 1) for _ in range(n)],
        "atomic_cmpxchg": lambda: [ctx.atomic_cmpxchg(x, 5, 5) for _ in range(n)],
        "atomic_xchg": lambda: [ctx.atomic_xchg(x, 1) for _ in range(n)],
        "atomic_inc_not_zero": lambda: [ctx.atomic_inc_not_zero(x) for _ in range(n)],
        "smp_mb": lambda: [ctx.smp_mb() for _ in range(n)],
        "smp_rmb": lambda: [ctx.smp_rmb() for _ in range(n)],
        "smp_wmb": lambda: [ctx.smp_wmb() for _ in range(n)],
        "preempt_disable+enable": lambda: [(ctx.preempt_disable(), ctx.preempt_enable()) for _ in range(n)],
        "spin_lock+unlock": lambda: [(ctx.spin_lock(lock), ctx.spin_unlock(lock)) for _ in range(n)],
        "mutex_lock+unlock": lambda: [(ctx.mutex_lock(lock), ctx.mutex_unlock(lock)) for _ in range(n)],
    }
    for name, fn in ops.items():
        timeit(name, fn)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    starts, stops = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        m = Machine(2, declare=_declare).start()
        t1 = time.perf_counter()
        m.close()
        starts.append(t1 - t0)
        stops.append(time.perf_counter() - t1)
    with Machine(1, declare=_declare) as m:
        res = m.run([Program(bench, {"n": args.n, "v": m.vars}), None], timeout=600).results[0]
    base = res["numpy store (baseline)"]
    print(f"{'operation (in a pinned CPU process)':40} {'ns/op':>8} {'x numpy store':>14}")
    for name, ns in res.items():
        print(f"{name:40} {ns:8.1f} {ns / base:14.2f}")
    print(
        f"\nMachine(2 CPUs) start: median {statistics.median(starts) * 1e3:.2f} ms, "
        f"stop: median {statistics.median(stops) * 1e3:.2f} ms (5 runs)"
    )


if __name__ == "__main__":
    main()
