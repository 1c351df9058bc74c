#!/usr/bin/env python3
"""Exhaustive litmus runs over the LKMM corpus: verdict per memory model against
herd7's (EXPECTED.tsv), executions explored (pruned ones included) and time per test.
Targets (lkmm issue): every test < 10 s, the median < 1 s, per model.
Run: python scripts/bench_litmus.py [DIR] [--models sc,tso,weak,lkmm]

With ``--corpus DIR`` (e.g. ../shared/paulmck-litmus, which has herd7's verdicts
in HERD7-LKMM.tsv): the axiomatic LKMM engine on every test with a verdict,
agreement per class and directory, time per test (targets: median < 0.5 s,
95% under 10 s, fewer timeouts than herd7's 31 at 60 s); ``--operational``
also checks the operational lkmm model never shows an outcome the axioms
forbid, ``--trust`` the same of TruSt over the lkmm graph; ``--herd7 'CMD'`` runs herd7 side by side (never required)."""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from shmkernel.litmus.runner import LB_FAMILY, run_file  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir", nargs="?", default=os.path.join(ROOT, "..", "shared", "lkmm-litmus"))
    ap.add_argument("--models", default="sc,tso,weak,lkmm")
    ap.add_argument("--corpus", metavar="DIR", help="a corpus with HERD7-LKMM.tsv: the axiomatic engine on all of it")
    ap.add_argument("--timeout", type=float, default=60.0, help="--corpus: seconds per test (herd7's was 60)")
    ap.add_argument("--operational", action="store_true", help="--corpus: check the operational lkmm model too")
    ap.add_argument("--trust", action="store_true", help="--corpus: check TruSt over the lkmm graph too")
    ap.add_argument("--herd7", metavar="CMD", help="--corpus: e.g. 'herd7 -conf linux-kernel.cfg', run side by side")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.corpus:
        from litmus_corpus import run_corpus

        run_corpus(args.corpus, args.timeout, args.operational, args.herd7, args.verbose, args.trust)
        return
    with open(os.path.join(args.dir, "EXPECTED.tsv")) as f:
        expected = {row["test"]: row["lkmm"] for row in csv.DictReader(f, delimiter="\t")}
    models = args.models.split(",")
    print(f"{'test':56} {'LKMM':10} " + " ".join(f"{m:>18}" for m in models))
    times: dict[str, list[float]] = {m: [] for m in models}
    forbidden_shown = 0
    disagree: dict[str, list[str]] = {m: [] for m in models}
    for name in sorted(expected):
        cells = []
        for m in models:
            r = run_file(os.path.join(args.dir, name + ".litmus"), m)
            times[m].append(r.seconds)
            flag = ""
            if expected[name] == "Never" and r.observation != "Never":
                flag, forbidden_shown = "!", forbidden_shown + 1
            if r.observation != expected[name]:
                disagree[m].append(name)
            cells.append(f"{r.observation}{flag} {r.executions:>5} {r.seconds:5.2f}s")
        lb = " (LB)" if name in LB_FAMILY else ""
        print(f"{name:56} {expected[name]:10} " + " ".join(f"{c:>18}" for c in cells) + lb, flush=True)
    for m in models:
        med, top = statistics.median(times[m]), max(times[m])
        met = "met" if med < 1.0 and top < 10.0 else "MISSED"
        print(
            f"{m}: median {med:.2f} s, max {top:.2f} s per test (target median < 1 s, max < 10 s: {met}); "
            f"differs from herd7 on {len(disagree[m])}: {', '.join(disagree[m]) or '-'}"
        )
    print(f"outcomes LKMM forbids that a model showed: {forbidden_shown}")


if __name__ == "__main__":
    main()
