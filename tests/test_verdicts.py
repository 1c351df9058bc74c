"""Three verdicts, never confused: found (exit 1), proved (exit 0), not-proved (exit 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from toys import Toy

from shmkernel.errors import NondeterminismError
from shmkernel.explore import explore


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shmkernel.cli", *args], capture_output=True, text=True, timeout=timeout
    )


# -- the command line ------------------------------------------------------------------------------
def test_found_is_exit_1_and_says_so_first():
    r = cli("explore", "refcount")
    assert r.returncode == 1, r.stderr
    assert r.stdout.startswith("FOUND false_zero=1 after ")
    assert "shmkernel replay refcount 'sk1:refcount:percpu-count:" in r.stdout


def test_proved_is_exit_0_and_says_what_was_covered():
    r = cli("explore", "refcount", "--variant", "fixed")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("PROVED: no execution of refcount/percpu-incs-decs shows a violation")
    assert "2 CPUs x 1 iteration(s) under native" in first
    j = json.loads(cli("explore", "refcount", "--variant", "fixed", "--json").stdout)
    assert j["verdict"] == "proved" and j["complete"] is True and j["stopped_by"] == ""


def test_out_of_budget_is_not_a_proof():
    r = cli("explore", "rmmod", "--max-examples", "30")
    assert r.returncode == 4, r.stderr
    assert r.stdout.splitlines()[0] == ("NOT a proof: stopped at 30 executions; raise --max-examples or --time-limit")
    j = json.loads(cli("explore", "rmmod", "--max-examples", "30", "--json").stdout)
    assert (j["verdict"], j["complete"], j["found"], j["stopped_by"]) == ("not-proved", False, False, "budget")


def test_time_limit_is_not_a_proof():
    # a microsecond: the search stops after its first execution, which finds nothing
    r = cli("explore", "rmmod", "--time-limit", "0.000001")
    assert r.returncode == 4, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("NOT a proof: time limit of 1e-06 s reached after 1 execution")
    assert "raise --time-limit" in first


def test_a_bounded_search_is_not_a_proof():
    r = cli("explore", "refcount", "--variant", "fixed", "--preemption-bound", "0", "--json")
    j = json.loads(r.stdout)
    assert r.returncode == 4 and (j["verdict"], j["stopped_by"]) == ("not-proved", "bound")
    text = cli("explore", "refcount", "--variant", "fixed", "--preemption-bound", "0").stdout
    assert text.startswith("NOT a proof: the preemption bound 0 left interleavings out")
    # rmmod's use-after-free needs more than one preemption: never "proved" within one
    b = json.loads(cli("explore", "rmmod", "--preemption-bound", "1", "--json").stdout)
    assert b["verdict"] in ("found", "not-proved")


def test_sampling_never_proves():
    r = cli("explore", "refcount", "--variant", "fixed", "--scheduler", "random", "--max-examples", "50")
    assert r.returncode == 4
    assert r.stdout.startswith(
        "NOT a proof: random sampled 50 executions and found nothing; use --scheduler exhaustive for a proof"
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--time-limit", "-1"], "--time-limit"),
        (["--time-limit", "nan"], "--time-limit"),
        (["--max-examples", "0"], "--max-examples"),
        (["--preemption-bound", "-2"], "--preemption-bound"),
    ],
)
def test_bad_search_options_are_one_line(args, needle):
    r = cli("explore", "refcount", *args)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


# -- the defaults find every seed's bug and prove the fixes --------------------------------------
@pytest.mark.parametrize(
    "workload,event",
    [
        ("refcount", "false_zero"),
        ("rmmod", "use_after_free"),
        ("static-key", "wrong_path"),
        ("symbol-get-put", None),
        ("livepatch", None),
        ("modcount-2002", "use_after_free"),
    ],
)
def test_explore_with_no_options_finds_the_buggy_variant(workload, event):
    r = explore(workload)
    assert r.verdict == "found", r.headline()
    if event is not None:
        assert r.events.get(event), r.events
    assert r.examples <= 2_000  # well inside the default budget


@pytest.mark.parametrize("workload", ["refcount", "static-key", "livepatch"])
def test_explore_with_no_options_proves_the_fix(workload):
    r = explore(workload, variant="fixed")
    assert r.verdict == "proved" and r.complete, r.headline()


# -- determinism ---------------------------------------------------------------------------------------
_calls = 0


def flaky(ctx: Any, p: dict) -> None:
    """Reads a module-level counter that changes between executions (each CPU
    process keeps its own): the second execution does something else."""
    global _calls
    _calls += 1
    if _calls == 1:
        ctx.write_once(p["a"], ctx.cpu + 1)
    else:
        ctx.read_once(p["a"])


def test_a_program_that_does_not_repeat_itself_is_reported():
    with pytest.raises(
        NondeterminismError,
        match=r"nondeterministic program at step 0: CPU 0 posted "
        r"write_once\(word \d+, 1, 0\) the first time, read_once",
    ):
        explore(Toy(flaky, words=("a",)), scheduler="exhaustive")


def test_a_time_limit_stops_hypothesis_cleanly_too():
    r = explore("refcount", variant="fixed", scheduler="hypothesis", time_limit=1e-6, max_examples=100_000)
    assert r.verdict == "not-proved" and r.stopped_by == "time" and 1 <= r.examples <= 100
