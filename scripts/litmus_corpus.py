"""``bench_litmus.py --corpus DIR``: the axiomatic LKMM engine over a corpus with
herd7's verdicts (``HERD7-LKMM.tsv``: test, verdict), agreement per class and
per directory, time per test against herd7's recorded timeouts; optionally
the operational ``lkmm`` model (``--operational``) and TruSt over the
``lkmm`` graph (``--trust``: `shmkernel.memory.graph_lkmm`) checked against it, and
herd7 itself side by side (``--herd7 'herd7 -conf .../linux-kernel.cfg'``)."""

from __future__ import annotations

import csv
import os
import shlex
import signal
import statistics
import subprocess
import time
from collections import Counter, defaultdict
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.litmus.outcomes import key_text
from shmkernel.litmus.parse import parse_litmus
from shmkernel.litmus.runner import run_exhaustive, run_file
from shmkernel.litmus.verdict import lkmm_verdict

VERDICTS = ("Never", "Sometimes", "Always")


class _Timeout(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise _Timeout


def timed(fn: Any, limit: float) -> tuple[Any, float]:
    """(fn(), seconds), or ("timeout", limit): a SIGALRM interrupts the pure-Python engine."""
    signal.signal(signal.SIGALRM, _alarm)
    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return fn(), time.perf_counter() - t0
    except _Timeout:
        return "timeout", limit
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def classify(herd: str, ours: str) -> str:
    if ours in ("timeout", "unsupported", "no verdict"):
        return ours
    if ours == herd:
        return "agree"
    if herd == "Never":
        return "FALSE ALARM"  # we show an outcome herd7's LKMM forbids
    return "miss" if ours == "Never" else "other"


def group(test: str) -> str:
    parts = test.split("/")
    return "/".join(parts[:2]) if parts[0] == "manual" else parts[0]


def _flat(key: tuple) -> frozenset:
    return frozenset((k if isinstance(k, str) else key_text(k), v) for k, v in key)


def run_corpus(
    directory: str, limit: float, operational: bool, herd7: str | None, verbose: bool, trust: bool = False
) -> None:
    with open(os.path.join(directory, "HERD7-LKMM.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    herd_timeouts = sum(r["herd7"] == "timeout" for r in rows)
    rows = [r for r in rows if r["herd7"] in VERDICTS]
    table: dict[str, Counter] = defaultdict(Counter)
    times: list[float] = []
    notes: list[str] = []
    op, tr = Counter(), Counter()
    for row in rows:
        test, herd = row["test"], row["herd7"]
        path = os.path.join(directory, test)
        try:
            v, secs = timed(lambda p=path: lkmm_verdict(p), limit)
        except UsageError as e:
            v, secs = "unsupported", 0.0
            notes.append(f"unsupported {test}: {e}")
        ours = v if isinstance(v, str) else v.observation
        times.append(secs)
        cls = classify(herd, ours)
        table[group(test)][cls] += 1
        table["all"][cls] += 1
        if cls != "agree":
            notes.append(f"{cls:12} {test}: herd7 {herd}, shmkernel {ours}")
        if verbose:
            print(f"{test:90} {herd:10} {ours:10} {secs:7.3f}s", flush=True)
        if herd7:
            hv, hs = _herd7(herd7, path, limit)
            table["herd7 now"]["agree" if hv == herd else hv] += 1
        if operational and not isinstance(v, str):
            op[_within_axioms(path, v, limit, notes)] += 1
        if trust and not isinstance(v, str):
            tr[_within_axioms(path, v, limit, notes, trust=True)] += 1
    _report(table, times, notes, herd_timeouts, limit, op, tr)


def _within_axioms(path: str, v: Any, limit: float, notes: list[str], trust: bool = False) -> str:
    """Does the operational lkmm model (``trust``: TruSt over the lkmm graph) stay
    within the axiomatic engine's outcomes?"""
    try:
        test = parse_litmus(path)
    except UsageError:
        return "not read by the operational front end"
    try:
        r, _ = timed(lambda: run_exhaustive(test, "lkmm", trust=True) if trust else run_file(path, "lkmm"), limit)
    except RuntimeError as e:  # trust gave way (kernel synchronisation) or ran out of budget
        notes.append(f"trust on {path}: {e}")
        return "not in trust's reach"
    if r == "timeout":
        return "timeout"
    allowed = {_flat(k) for k in v.res.outcomes.states}
    seen = {_flat(k) for k in r.states}
    if not seen <= allowed:
        who = "TRUST" if trust else "OPERATIONAL"
        notes.append(f"{who} SHOWS A FORBIDDEN OUTCOME {path}: {sorted(map(sorted, seen - allowed))}")
        return "forbidden outcome shown"
    return "within" if r.observation == v.observation else "within, fewer (e.g. LB)"


def _herd7(cmd: str, path: str, limit: float) -> tuple[str, float]:
    t0 = time.perf_counter()
    try:
        out = subprocess.run([*shlex.split(cmd), path], capture_output=True, text=True, timeout=limit).stdout
    except subprocess.TimeoutExpired:
        return "timeout", limit
    obs = [ln.split()[2] for ln in out.splitlines() if ln.startswith("Observation ")]
    return (obs[0] if obs else "error"), time.perf_counter() - t0


def _report(
    table: dict[str, Counter],
    times: list[float],
    notes: list[str],
    herd_timeouts: int,
    limit: float,
    op: Counter,
    tr: Counter,
) -> None:
    classes = ["agree", "FALSE ALARM", "miss", "other", "unsupported", "timeout"]
    print(f"\n{'directory':28}" + "".join(f"{c:>13}" for c in classes))
    for g in sorted(table, key=lambda g: (g == "all", g)):
        print(f"{g:28}" + "".join(f"{table[g][c]:>13}" for c in classes))
    total = sum(table["all"].values())
    verdicts = total - table["all"]["unsupported"] - table["all"]["timeout"]
    agree = table["all"]["agree"]
    ts = sorted(times)
    print(
        f"\n{total} tests with a herd7 verdict: a verdict on {verdicts} ({100 * verdicts / total:.1f}%, target >= 98%), "
        f"agreeing on {agree} ({100 * agree / max(verdicts, 1):.2f}%, target >= 99%), "
        f"false alarms {table['all']['FALSE ALARM']} (target 0)"
    )
    under10 = sum(t < 10 for t in ts)
    print(
        f"time per test: median {statistics.median(ts):.3f} s (target < 0.5), p90 {ts[int(0.9 * len(ts))]:.3f} s, "
        f"max {ts[-1]:.2f} s; under 10 s: {100 * under10 / len(ts):.1f}% (target 95%); "
        f"timeouts at {limit:.0f} s: {table['all']['timeout']} (herd7: {herd_timeouts} at 60 s)"
    )
    if op:
        print("operational lkmm model vs the axiomatic engine: " + ", ".join(f"{k} {n}" for k, n in op.most_common()))
    if tr:
        print(
            "trust over the lkmm graph vs the axiomatic engine: " + ", ".join(f"{k} {n}" for k, n in tr.most_common())
        )
    for n in notes:
        print(n)
