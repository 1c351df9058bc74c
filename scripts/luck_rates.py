#!/usr/bin/env python3
"""The chance that each luck-based free-mode test fails without a bug.

Each workload keeps at most one free-mode race check that depends on the host's
timing (`tests/conftest.py::until_seen`): a few attempts of a fixed iteration
budget, until every event of the race was seen. This script runs the single
attempt of each of them ``--attempts`` times, with the same workload,
variant, options and budget as its test, and prints how many attempts missed
and the fewest/median count of the rarest event. The tests' docstrings state
these figures, measured with two ``yes >/dev/null`` beside (``--busy 2`` starts
them here and stops them at the end), and the chance that all of a test's
attempts miss: (misses / attempts) ** test attempts, or, when no attempt
missed, Poisson's e^-(fewest x test attempts) at the fewest count.

    python scripts/luck_rates.py [--attempts 10] [--busy 2] [--only NAME]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import workloads  # noqa: E402
from shmkernel.measure.record import measure_free  # noqa: E402
from shmkernel.workload.machines import open_machine  # noqa: E402


@dataclass(frozen=True)
class Check:
    """One luck-based test's single attempt."""

    test: str
    workload: str
    variant: str
    iterations: int
    events: tuple[str, ...]
    attempts: int = 3  # the test's attempts (until_seen)
    options: dict = field(default_factory=dict)
    memory_model: str = "native"


CHECKS = (
    Check("test_refcount::test_percpu_count_shows_false_zeros", "refcount", "buggy", 1_000_000, ("false_zero",),
          options={"tally_delay_us": 10}),
    Check("test_refcount::test_rmmod_without_stop_machine_frees_a_module_in_use", "rmmod", "buggy", 1_000_000,
          ("use_after_free",)),
    Check("test_static_key::test_pre_fix_runs_vcpus_on_unpatched_code", "static-key", "buggy", 100_000,
          ("wrong_path",)),
    Check("test_livepatch::test_buggy_free_running_shows_both_races", "livepatch", "buggy", 1000,
          ("stack_order", "use_after_free")),
    Check("test_livepatch::test_ignore_going_free_running_shows_semantic_mismatch", "livepatch",
          "klp-alive-ignore-going", 2000, ("semantic_mismatch",), options={"race": "going"}),
    Check("test_modcount2002::test_uncounted_callers_race_with_rmmod[hisax-unlocked]", "modcount-2002",
          "hisax-unlocked", 20_000, ("use_after_free", "uncounted_ref")),
    Check("test_modcount2002::test_uncounted_callers_race_with_rmmod[inc-inside-module]", "modcount-2002",
          "inc-inside-module", 20_000, ("use_after_free", "uncounted_ref")),
    Check("test_symbols::test_free_untracked_extra_put_frees_the_provider_under_its_user", "symbol-get-put", "buggy",
          5_000, ("use_after_free",), attempts=4, options={"oops": "continue"}),
    Check("test_models::test_free_mode_weak_model_needs_the_barriers", "refcount", "percpu-incs-decs-nobarrier",
          300_000, ("false_zero",), memory_model="weak"),
)  # fmt: skip


def attempt(c: Check) -> dict[str, int]:
    wl = workloads.get(c.workload)
    opts = wl.parse_options({k: str(v) for k, v in c.options.items()})
    with open_machine(wl, 2, opts) as m:
        kw = {"memory_model": c.memory_model, "seed": 3} if c.memory_model != "native" else {}
        r = measure_free(m, wl, c.variant, opts, iterations=c.iterations, **kw)
    return {e: r["events"][e] for e in c.events}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=10)
    ap.add_argument("--busy", type=int, default=0, help="start this many `yes >/dev/null` beside (default 0)")
    ap.add_argument("--only", default="", help="checks whose test name contains this")
    a = ap.parse_args(argv)
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(a.busy)]
    try:
        print(f"{'test':<80} {'missed':>7} {'fewest':>7} {'median':>7}  all attempts miss (test attempts)")
        for c in CHECKS:
            if a.only not in c.test:
                continue
            rarest = [min(attempt(c).values()) for _ in range(a.attempts)]
            missed = sum(1 for n in rarest if n == 0)
            fewest, median = min(rarest), statistics.median(rarest)
            if missed:
                p = (missed / a.attempts) ** c.attempts
            else:
                p = math.exp(-fewest * c.attempts)
            print(
                f"{c.test:<80} {missed:>4}/{a.attempts:<2} {fewest:>7} {median:>7}  {p:.1e} ({c.attempts})", flush=True
            )
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
