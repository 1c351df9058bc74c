#!/usr/bin/env python3
"""Time to explain the four cases of the explain issue (target: < 10 s each on
2 cores) and how many barrier candidates each re-explored. Each case's
schedule is found first (not timed), then `explain_schedule` is timed.
Run: python scripts/bench_explain.py"""

from __future__ import annotations

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shmkernel.schedule.explorer import explore  # noqa: E402
from shmkernel.schedule.window import explain_schedule  # noqa: E402

CASES = [
    ("seed 000, native", "refcount", {"variant": "buggy"}),
    ("percpu-incs-decs-nobarrier, lkmm", "refcount", {"variant": "percpu-incs-decs-nobarrier", "memory_model": "lkmm"}),
    ("percpu-incs-decs-nobarrier, weak", "refcount", {"variant": "percpu-incs-decs-nobarrier", "memory_model": "weak"}),
    (
        "fixed, relaxed hand-off, lkmm",
        "refcount",
        {"variant": "fixed", "memory_model": "lkmm", "opts": {"handoff": "relaxed"}},
    ),
    ("static-key seed-fix, lkmm", "static-key", {"variant": "seed-fix", "memory_model": "lkmm"}),
]


def main() -> None:
    print(f"{'case':40} {'seconds':>8} {'tried':>6}  first fix / verdict")
    for label, wl, kw in CASES:
        r = explore(wl, **kw)
        t0 = time.perf_counter()
        lines = explain_schedule(wl, r.schedule)
        dt = time.perf_counter() - t0
        text = "\n".join(lines)
        m = re.search(r"(\d+) tried|\((\d+) candidates", text)
        tried = next((g for g in m.groups() if g), "0") if m else "0"
        first = next(
            (ln.strip() for ln in lines if "proved," in ln), "no barrier can fix" if "no barrier" in text else "-"
        )
        met = "" if dt < 10 else "  (over the 10 s target)"
        print(f"{label:40} {dt:8.2f} {tried:>6}  {first[:90]}{met}", flush=True)


if __name__ == "__main__":
    main()
