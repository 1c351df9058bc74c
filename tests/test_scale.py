"""Scale: 64 CPUs free and scheduled, and a tally over 4096 possible CPUs."""

from __future__ import annotations

import json
import subprocess
import sys


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shmkernel.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_64_cpus_free_mode():
    r = cli(
        "run",
        "refcount",
        "--variant",
        "fixed",
        "--cpus",
        "64",
        "--seconds",
        "0.5",
        "--json",
        "--no-pin",
        "--oversubscribe",
    )
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["cpus"] == 64 and rec["events"]["false_zero"] == 0
    assert rec["counters"]["tallies"] > 0


def test_64_cpus_scheduled_mode():
    r = cli(
        "explore",
        "refcount",
        "--variant",
        "fixed",
        "--cpus",
        "64",
        "--scheduler",
        "random",
        "--max-examples",
        "2",
        "--json",
        "--oversubscribe",
    )
    assert r.returncode == 4, r.stderr  # two random executions prove nothing
    rec = json.loads(r.stdout)
    assert rec["cpus"] == 64 and rec["examples"] == 2 and not rec["found"] and rec["verdict"] == "not-proved"


def test_4096_possible_cpus_tally():
    r = cli("run", "refcount", "--variant", "buggy", "--possible-cpus", "4096", "--seconds", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["options"]["possible_cpus"] == 4096
    assert rec["counters"]["tallies"] > 0
