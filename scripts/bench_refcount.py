#!/usr/bin/env python3
"""The refcount emulation against a native C harness of the same workload, in one run.

Prints tallies/s, get/put pairs (migrated references)/s and false zeros/s for
the Python emulation and for scripts/native/refcount.c (compiled here with
``cc`` when present; skipped with a message when not), and their ratios.
Run: python scripts/bench_refcount.py [--seconds S] [--cpus N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import workloads  # noqa: E402
from shmkernel.measure.record import measure_free  # noqa: E402
from shmkernel.workload.machines import open_machine  # noqa: E402


def native(variant: str, cpus: int, seconds: float) -> dict[str, float] | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        print("native harness skipped: no C compiler (cc) on this host")
        return None
    src = os.path.join(ROOT, "scripts", "native", "refcount.c")
    exe = os.path.join(ROOT, "scripts", "native", "refcount.bin")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run([cc, "-O2", "-pthread", "-o", exe, src], check=True)
    out = subprocess.run(
        [exe, "count" if variant == "percpu-count" else "incsdecs", str(cpus), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tallies, handoffs, fz, el = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    return {"tallies/s": tallies / el, "get/put pairs/s": handoffs / el, "false zeros/s": fz / el}


def emulated(variant: str, cpus: int, seconds: float) -> dict[str, float]:
    wl = workloads.get("refcount")
    opts = wl.parse_options({})
    with open_machine(wl, cpus, opts) as m:
        r = measure_free(m, wl, variant, opts, seconds=seconds)
    s = r["seconds"]
    return {
        "tallies/s": r["counters"]["tallies"] / s,
        "get/put pairs/s": r["counters"]["handoffs"] / s,
        "false zeros/s": r["events"]["false_zero"] / s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    for variant in ("percpu-count", "percpu-incs-decs"):
        emu = emulated(variant, args.cpus, args.seconds)
        nat = native(variant, args.cpus, args.seconds)
        print(f"\n{variant}, {args.cpus} worker CPUs + tallier, {args.seconds:g} s each")
        print(f"{'':18} {'emulated':>14} {'native C':>14} {'ratio':>8}")
        for k, v in emu.items():
            if nat is None:
                print(f"{k:18} {v:14,.1f}")
            else:
                ratio = v / nat[k] if nat[k] else float("nan")
                print(f"{k:18} {v:14,.1f} {nat[k]:14,.1f} {ratio:8.3f}")


if __name__ == "__main__":
    main()
