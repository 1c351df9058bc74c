"""The command line: bad input is one line and exit 2; the main command works."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shmkernel.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "nope"], "unknown workload"),
        (["run", "refcount", "--variant", "nope"], "no variant"),
        (["run", "refcount", "--cpus", "0"], "--cpus"),
        (["run", "refcount", "--cpus", "two"], "--cpus"),
        (["run", "refcount", "--cpus", "100000"], "--cpus"),
        (["run", "refcount", "--seconds", "-1"], "--seconds"),
        (["run", "refcount", "--seconds", "nan"], "--seconds"),
        (["run", "refcount", "--seconds", "1", "--iterations", "5"], "not allowed with"),
        (["run", "refcount", "--tally-delay-us", "x"], "--tally-delay-us"),
        (["run", "refcount", "--tally-delay-us", "-3"], "--tally-delay-us"),
        (["run", "refcount", "--handoff", "teleport"], "--handoff"),
        (["run", "refcount", "--possible-cpus", "1"], "--possible-cpus"),
        (["run", "refcount", "--bogus", "1"], "--bogus"),
        (["run", "rmmod", "--stop-machine", "maybe"], "--stop-machine"),
        (["run", "refcount", "--memory-model", "quantum"], "--memory-model"),
        (["frobnicate"], "invalid choice"),
        (["list", "extra"], "unrecognized"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle):
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr
    assert lines[0].startswith("shmkernel: error:")


def test_run_json_has_the_contract_fields():
    r = cli("run", "refcount", "--variant", "fixed", "--seconds", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    for key in ("workload", "variant", "cpus", "memory_model", "seconds", "counters", "events", "rates", "host"):
        assert key in rec
    assert rec["variant"] == "percpu-incs-decs" and rec["memory_model"] == "native"
    assert set(rec["rates"]["false_zero"]) >= {"per_million", "ci95", "denominator"}
    assert {"cores", "pinned"} <= set(rec["host"])


def test_run_without_variant_prints_buggy_and_fixed():
    r = cli("run", "refcount", "--seconds", "0.5")
    assert r.returncode == 0, r.stderr
    assert "percpu-count" in r.stdout and "percpu-incs-de" in r.stdout


def test_list_and_doctor():
    r = cli("list")
    assert r.returncode == 0 and "refcount" in r.stdout and "buggy" in r.stdout
    d = cli("doctor")
    assert d.returncode == 0, d.stdout + d.stderr
    assert "exact" in d.stdout and "libatomic" in d.stdout
