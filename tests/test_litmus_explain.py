"""``litmus --explain``: the witness of an allowed outcome, the axiom and cycle
that forbid one, and barrier fixes that are checked, not guessed."""

from __future__ import annotations

import os
import subprocess
import sys

from corpus import KERNEL, kernel_expected
from test_litmus import HERE

from shmkernel.litmus.axiomatic import run_axiomatic
from shmkernel.litmus.cparse import parse_c_litmus
from shmkernel.litmus.explain import apply_changes, candidate_changes, explain


def _explain(path: str) -> str:
    return "\n".join(explain(parse_c_litmus(path)))


def test_an_allowed_outcome_shows_an_execution_and_checked_fixes():
    kernel_expected()
    text = _explain(os.path.join(KERNEL, "MP+poonceonces.litmus"))
    assert "allowed by the LKMM (Sometimes)" in text
    assert "P1: R[once] y=1 (from P0) ; R[once] x=0 (from init)" in text
    first_fix = text.split("each checked by the axiomatic engine):\n")[1].splitlines()[0]
    assert "smp_rmb() in P1" in first_fix and "smp_wmb() in P0" in first_fix and "proved Never" in first_fix
    sb = _explain(os.path.join(KERNEL, "SB+poonceonces.litmus"))
    assert "smp_mb() in P0 before line" in sb and "smp_mb() in P1 before line" in sb  # nothing weaker works


def test_seed_000s_relaxed_hand_off_is_fixed_by_a_full_barrier():
    text = _explain(os.path.join(HERE, "refcount-seed000+relaxed-handoff.litmus"))
    fixes = [ln for ln in text.splitlines() if "proved Never" in ln]
    assert fixes and all(ln.strip().startswith("smp_mb() in P") and " + " not in ln for ln in fixes), text


def test_every_printed_fix_really_forbids_the_outcome():
    test = parse_c_litmus(os.path.join(HERE, "MP+poonceonces.litmus"))
    singles = candidate_changes(test)
    wmb = max(c for c in singles if c[1] == "smp_wmb" and c[2] == 0)  # between the two stores
    rmb = max(c for c in singles if c[1] == "smp_rmb" and c[2] == 1)  # between the two loads
    assert run_axiomatic(apply_changes(test, (wmb, rmb))).outcomes.observation == "Never"
    assert run_axiomatic(apply_changes(test, (wmb,))).outcomes.observation == "Sometimes"


def test_a_forbidden_outcome_names_the_axiom_and_its_cycle():
    kernel_expected()
    mp = _explain(os.path.join(KERNEL, "MP+fencewmbonceonce+fencermbonceonce.litmus"))
    assert "break happens-before" in mp
    for edge in ("-rmb->", "-fre->", "-cumul-fence->", "-rfe->"):
        assert edge in mp, mp
    corr = _explain(os.path.join(KERNEL, "CoRR+poonceonce+Once.litmus"))  # pruned early: re-enumerated
    assert "break coherence" in corr and "-po-loc->" in corr and "-fr->" in corr and "-rf->" in corr


def test_explain_on_the_command_line(tmp_path):
    path = os.path.join(HERE, "SB+poonceonces.litmus")
    r = subprocess.run(
        [sys.executable, "-m", "shmkernel.cli", "litmus", "--explain", path], capture_output=True, text=True
    )
    assert r.returncode == 0 and "Fixes that forbid it" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "shmkernel.cli", "litmus", "--explain", "--engine", "operational", path],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "--explain works with the axiomatic engine" in r.stderr
