#!/usr/bin/env python3
"""Scale: start time and memory of big machines, and big runs.

Measures, for Machines of 8/16/32/64 CPUs laid out for the refcount workload
(free mode, not pinned unless --pin): the start time (fork of every CPU
process), the RSS of each CPU process (VmRSS from /proc/PID/status, after one
trivial program ran on every CPU) and their total; then a free run of refcount
with 64 CPUs, a scheduled exploration with 64 CPUs (random, 3 examples), and a
tally over 4096 possible CPUs (refcount --possible-cpus 4096, 1 s).

Then scheduled steps/s at 2, 8, 64 and 256 CPUs on both engines, with the
host's run queue sampled meanwhile (`scheduled_scaling`).

Targets: 64 CPUs start in < 3 s; < 30 MB RSS per CPU process; scheduled, on the
process engine, 64 CPUs at >= 50% of the 2-CPU steps/s with no more runnable
processes than cores + 2 on average.

    python scripts/bench_scale.py [--sizes 8,16,32,64] [--scheduled 2,8,64,256] [--scheduled-only] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from shmkernel.measure.record import measure_free  # noqa: E402
from shmkernel.runtime.ctx import Ctx  # noqa: E402
from shmkernel.runtime.machine import Program  # noqa: E402
from shmkernel.workload.machines import open_machine  # noqa: E402


def _touch(ctx: Ctx, p: dict) -> int:
    return ctx.cpu


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kb(pid: int) -> int | None:
    """Proportional set size: shared pages (fork's copy-on-write) split among sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def machine_row(n: int, pin: bool) -> dict:
    import workloads

    wl = workloads.get("refcount")
    opts = wl.parse_options({})
    t0 = time.perf_counter()
    m = open_machine(wl, n, opts, pin=pin)
    with m:
        start = m.start_seconds
        ready = time.perf_counter()
        r = m.run([Program(_touch)] * m.roles, timeout=60)
        first_run = time.perf_counter() - ready
        assert r.results == list(range(m.roles))
        rss = [rss_kb(p) for p in m.pids]
        pss = [pss_kb(p) for p in m.pids]
        me = rss_kb(os.getpid())
    total = time.perf_counter() - t0
    return {
        "what": f"Machine({n}) refcount layout",
        "cpus": n,
        "start_s": round(start, 3),
        "first_run_s": round(first_run, 3),
        "total_s": round(total, 3),
        "rss_mb_mean": round(sum(rss) / len(rss) / 1024, 1),
        "rss_mb_max": round(max(rss) / 1024, 1),
        "rss_mb_total": round(sum(rss) / 1024, 1),
        "pss_mb_total": round(sum(pss) / 1024, 1) if None not in pss else None,
        "coordinator_rss_mb": round(me / 1024, 1),
    }


def free_run_64() -> dict:
    import workloads

    wl = workloads.get("refcount")
    opts = wl.parse_options({})
    t0 = time.perf_counter()
    with open_machine(wl, 64, opts) as m:
        rec = measure_free(m, wl, "fixed", opts, seconds=1.0)
    return {
        "what": "run refcount --cpus 64 --variant fixed (1 s)",
        "cpus": 64,
        "start_s": round(m.start_seconds, 3),
        "total_s": round(time.perf_counter() - t0, 3),
        "result": f"tallies={rec['counters'].get('tallies')} handoffs={rec['counters'].get('handoffs')} "
        f"false_zero={rec['events'].get('false_zero')}",
    }


def explore_64() -> dict:
    from shmkernel.explore import explore

    t0 = time.perf_counter()
    r = explore("refcount", cpus=64, scheduler="random", max_examples=3)
    return {
        "what": "explore refcount --cpus 64 random x3",
        "cpus": 64,
        "total_s": round(time.perf_counter() - t0, 3),
        "result": f"examples={r.examples} steps={r.steps} found={r.found} {r.steps_per_second:,.0f} steps/s",
    }


def _runnable() -> int:
    """Processes runnable on the host right now (``procs_running`` of /proc/stat):
    the instantaneous run-queue length, which the 1-minute load average smooths
    over a minute (too slow for a run of seconds, and still full of whatever ran
    before it)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("procs_running"):
                return int(line.split()[1])
    return 0


def scheduled_scaling(sizes: list[int], engines: tuple[str, ...] = ("inprocess", "processes")) -> list[dict]:
    """Scheduled steps/s (random scheduler, 10 executions of refcount/fixed) at each
    size and engine, with the host's run queue sampled every 20 ms while it runs:
    waiting CPU processes must sleep, not spin (target, on the process engine, whose
    CPUs are processes: 64 CPUs >= 50% of the 2-CPU figure, runnable processes
    below cores + 2 on average). The in-process engine's CPUs are coroutines of one
    process: it is the default, and the load it puts on the host is one process."""
    import threading

    from shmkernel.explore import explore

    out = []
    for engine in engines:
        rows = []
        for n in sizes:
            samples: list[int] = []
            done = threading.Event()

            def sample(done: threading.Event = done, samples: list[int] = samples) -> None:
                while not done.wait(0.02):
                    samples.append(_runnable() - 1)  # not the sampler's own process

            th = threading.Thread(target=sample, daemon=True)
            th.start()
            t0 = time.perf_counter()
            r = explore("refcount", variant="fixed", cpus=n, scheduler="random", max_examples=10, seed=1, engine=engine)
            done.set()
            th.join()
            rows.append(
                {
                    "what": f"explore refcount --cpus {n} --engine {engine} random x10",
                    "cpus": n,
                    "engine": engine,
                    "total_s": round(time.perf_counter() - t0, 3),
                    "steps_per_s": round(r.steps_per_second),
                    "runnable_mean": statistics.fmean(samples) if samples else 0.0,
                    "runnable_max": max(samples, default=0),
                    "load_1min": os.getloadavg()[0],
                }
            )
        base = rows[0]["steps_per_s"] or 1
        for row in rows:
            row["result"] = (
                f"{row['steps_per_s']:,} steps/s ({row['steps_per_s'] / base:.2f}x {sizes[0]} CPUs), runnable "
                f"{row['runnable_mean']:.1f} mean / {row['runnable_max']} max, load average {row['load_1min']:.1f}"
            )
        out += rows
    return out


def tally_4096() -> dict:
    import workloads

    wl = workloads.get("refcount")
    opts = wl.parse_options({"possible_cpus": "4096"})
    t0 = time.perf_counter()
    with open_machine(wl, 2, opts) as m:
        rec = measure_free(m, wl, "buggy", opts, seconds=1.0)
        seg_mb = m.layout.nwords * 8 / 2**20
    c = rec["counters"]
    return {
        "what": "run refcount --possible-cpus 4096 (1 s)",
        "cpus": 2,
        "total_s": round(time.perf_counter() - t0, 3),
        "result": f"segment={seg_mb:.1f} MB tallies={c.get('tallies')} ({c.get('tallies', 0) / rec['seconds']:,.0f}/s) "
        f"false_zero={rec['events'].get('false_zero')}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8,16,32,64")
    ap.add_argument("--pin", action="store_true", help="pin CPU processes (default off: 2-core hosts)")
    ap.add_argument("--scheduled", default="2,8,64,256", help="CPU counts for scheduled steps/s")
    ap.add_argument("--scheduled-only", action="store_true", help="only the scheduled steps/s rows")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rows = []
    if not a.scheduled_only:
        rows = [machine_row(int(n), a.pin) for n in a.sizes.split(",")]
        rows += [free_run_64(), explore_64(), tally_4096()]
    sched = scheduled_scaling([int(n) for n in a.scheduled.split(",")])
    rows += sched
    if a.json:
        for r in rows:
            print(json.dumps(r))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"shmkernel scale ({len(os.sched_getaffinity(0))} usable cores)")
        cols = (
            "what",
            "start_s",
            "first_run_s",
            "total_s",
            "rss_mb_mean",
            "rss_mb_max",
            "rss_mb_total",
            "pss_mb_total",
            "coordinator_rss_mb",
            "result",
        )
        for c in cols:
            t.add_column(c.replace("_", " "), justify="left" if c in ("what", "result") else "right")
        for r in rows:
            t.add_row(*[str(r.get(c, "")) if r.get(c) is not None else "" for c in cols])
        Console(width=200).print(t)
    for engine in ("inprocess", "processes"):
        rows_e = [r for r in sched if r["engine"] == engine]
        s64 = next((r for r in rows_e if r["cpus"] == 64), None)
        if s64:
            ratio = s64["steps_per_s"] / (rows_e[0]["steps_per_s"] or 1)
            cores = len(os.sched_getaffinity(0))
            ok_load = s64["runnable_mean"] <= cores + 2
            print(
                f"targets ({engine}): scheduled 64 CPUs at {ratio:.2f}x the {rows_e[0]['cpus']}-CPU steps/s (>= 0.5: "
                f"{'met' if ratio >= 0.5 else 'MISSED'}); runnable processes {s64['runnable_mean']:.1f} on average "
                f"(<= cores + 2 = {cores + 2}: {'met' if ok_load else 'MISSED'})"
            )
    m64 = next((r for r in rows if r.get("cpus") == 64 and "rss_mb_max" in r), None)
    if m64:
        ok_start, ok_rss = m64["start_s"] < 3.0, m64["rss_mb_max"] < 30.0
        print(
            f"targets: 64 CPUs start {m64['start_s']} s (< 3 s: {'met' if ok_start else 'MISSED'}); "
            f"max RSS per CPU {m64['rss_mb_max']} MB (< 30 MB: {'met' if ok_rss else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
