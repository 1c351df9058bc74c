#!/usr/bin/env python3
"""The explorer against brute force, on many random programs (the long run of
tests/test_explorer.py).

For each random program (2-4 CPUs, reads, writes of constants and of a read
value plus one, cmpxchg, atomic_inc, an optional mutex, value-dependent skips;
under the emulated models also barriers) it enumerates every schedule
(`bruteforce`), then runs Optimal DPOR, Source-DPOR and the stateful search
(native), or the stateful search (sc, tso, weak, lkmm), the same search
over execution graphs (``graph``) and TruSt over graphs (``trust``; the
emulated models' programs also hold ``this_cpu_inc``), and compares the sets
of outcomes (final memory, every register, ok or deadlock). Under lkmm the
graphs are checked by the LKMM's axioms, which allow more than the lkmm
machine: there trust must reach exactly what the graph search reaches, and
the graph search everything brute force over the machine reaches. Any difference is
a MISS and is printed with the program. It also counts the Mazurkiewicz
traces of each native program (brute force, canonical happens-before form)
and prints executions per search against that baseline.

Run: python scripts/bench_explorer.py --programs 10000 [--seed S] [--models native,tso,weak,lkmm]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shmkernel.memory.graph_lkmm import TRUST_MODELS  # noqa: E402
from shmkernel.schedule.bruteforce import BruteForceScheduler  # noqa: E402
from shmkernel.schedule.dpor import DPORScheduler  # noqa: E402
from shmkernel.schedule.randprog import generate, outcomes, trace_count  # noqa: E402
from shmkernel.schedule.stateful import StatefulScheduler  # noqa: E402
from shmkernel.schedule.trust import TrustScheduler  # noqa: E402


def run_model(model: str, programs: int, seed: int) -> int:
    rng = random.Random(seed)
    native = model in ("native", "sc")
    searches = ["optimal", "source", "stateful"] if native else ["stateful"]
    if model in TRUST_MODELS:
        searches += ["graph", "trust"]
    execs = dict.fromkeys(["bruteforce", *searches], 0)
    blocked = dict.fromkeys(searches, 0)
    trace_total = 0
    misses = wider = 0
    t0 = time.perf_counter()
    for k in range(programs):
        emulated = model != "native"
        prog = generate(rng, max_cpus=4 if native else 3, max_ops=7 if native else 5, fences=emulated, percpu=emulated)
        expected, n = outcomes(prog, BruteForceScheduler(), model)
        execs["bruteforce"] += n
        if model == "native":
            trace_total += trace_count(prog)
        for name in searches:
            s = {
                "optimal": lambda: DPORScheduler(restart_after=None),
                "source": lambda: DPORScheduler(wakeup_trees=False, restart_after=None),
                "stateful": lambda: StatefulScheduler(),
                "graph": lambda: StatefulScheduler(),
                "trust": lambda: TrustScheduler(),
            }[name]()
            got, n = outcomes(prog, s, model, graph=name in ("graph", "trust"))
            execs[name] += n
            blocked[name] += getattr(s, "sleep_blocked", 0)
            if model == "lkmm" and name == "graph":
                # the LKMM's axioms allow more than the lkmm machine (this_cpu_inc on a shared
                # word loses an update): the machine's outcomes are a subset, and trust must
                # reach exactly the graph search's
                wider += bool(got - expected)
                if expected <= got:
                    expected = got
                    continue
            if got != expected:
                misses += 1
                print(
                    f"MISS {name} under {model}, program {k}:\n{prog.text()}\n  missed {expected - got}\n"
                    f"  invented {got - expected}",
                    flush=True,
                )
    secs = time.perf_counter() - t0
    wide = f"; the lkmm graph reached more than the machine on {wider}" if model == "lkmm" else ""
    print(f"{model:6} {programs:6} programs in {secs:7.1f} s: misses {misses}{wide}")
    base = f"; traces {trace_total:,}" if trace_total else ""
    print(f"       executions: bruteforce {execs['bruteforce']:,}{base}")
    for name in searches:
        ratio = f" ({execs[name] / trace_total:.3f}x traces)" if trace_total else ""
        sb = f", {blocked[name]:,} abandoned asleep" if blocked[name] else ""
        print(f"       {name:10} {execs[name]:,}{ratio}{sb}")
    return misses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=500, help="random programs per memory model")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--models", default="native,sc,tso,weak,lkmm")
    args = ap.parse_args()
    misses = 0
    for i, model in enumerate(args.models.split(",")):
        misses += run_model(model, args.programs, args.seed + i)
    print(f"total misses: {misses}")
    sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
