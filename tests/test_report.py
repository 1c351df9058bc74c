"""Output that explains itself: labels, what events mean, a verdict per event, no cut names."""

from __future__ import annotations

import io

from rich.console import Console

from shmkernel.measure.record import record
from shmkernel.measure.report import fmt_rate, print_run_table, verdicts
from shmkernel.workload import registry


class _M:
    """What `record` reads of a machine."""

    cpus, roles, cores = 2, 3, [0, 1, 0]
    pinned = [True, True, True]


def _rec(wl, variant, tallies, false_zeros):
    return record(_M(), wl, variant, {}, {"tallies": tallies, "handoffs": 10, "false_zero": false_zeros}, 3.0, "native")


def test_a_significant_difference_is_said_so():
    wl = registry.get("refcount")
    recs = [_rec(wl, "percpu-count", 1_523_342, 33), _rec(wl, "percpu-incs-decs", 1_102_097, 0)]
    [v] = verdicts(wl, recs)
    assert v.startswith("buggy shows false_zero at 21.7 per 10^6 tallies [15.4, 30.4]")
    assert "fixed none in 1,102,097 tallies" in v and "the difference is significant (p = 2.1e-08)" in v


def test_an_insignificant_difference_says_what_to_do():
    wl = registry.get("refcount")
    [v] = verdicts(wl, [_rec(wl, "percpu-count", 10_000, 1), _rec(wl, "percpu-incs-decs", 10_000, 0)])
    assert "not significant yet (p = 1)" in v and "run longer" in v


def test_piped_output_is_one_block_per_variant_with_whole_names(capsys):
    wl = registry.get("refcount")
    recs = [_rec(wl, "percpu-count", 100, 0), _rec(wl, "percpu-incs-decs", 0, 0)]
    buf = io.StringIO()
    print_run_table(wl, recs, Console(file=buf, width=80))
    text = buf.getvalue()
    assert "buggy (percpu-count)" in text and "fixed (percpu-incs-decs)" in text
    assert "…" not in text and "(< 0)" not in text and "no trials" in text
    assert "false_zero: a module_refcount() tally read <= 0 while a reference was held" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_no_trials_is_no_rate():
    assert fmt_rate({"events": 0, "denominator": 0, "per_million": 0.0, "ci95": [0.0, 0.0]}) == "no trials"


INTERRUPTER = """
import os, signal
from shmkernel.workload.scenario import Scenario

s = Scenario("interrupted", events=("seen",))
s.scalar("x")

@s.cpu(0)
def touch(ctx, v, variant):
    ctx.write_once(v.x, 1)

sent = []  # per CPU process: the coordinator's, which runs every round of both variants

@s.coordinator
def stop_during_fixed(ctx, v, variant):
    if variant == "fixed" and not sent:
        sent.append(1)
        os.kill(os.getppid(), signal.SIGINT)  # Ctrl-C while the second variant runs
"""


def test_ctrl_c_keeps_the_rows_that_finished(tmp_path):
    import json
    import subprocess
    import sys

    f = tmp_path / "interrupted.py"
    f.write_text(INTERRUPTER)
    r = subprocess.run(
        [sys.executable, "-m", "shmkernel.cli", "run", str(f), "--seconds", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 130, r.stderr
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [row["variant"] for row in rows] == ["buggy"] and rows[0]["counters"]["rounds"] > 0
    assert r.stderr.strip().splitlines() == [
        "shmkernel: interrupted; every CPU process stopped and shared memory removed"
    ]


def test_too_many_cpus_needs_oversubscribe_and_help_lists_workload_options():
    import subprocess
    import sys

    def cli(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shmkernel.cli", *a], capture_output=True, text=True, timeout=120)

    r = cli("run", "refcount", "--cpus", "1000")
    assert r.returncode == 2 and "--oversubscribe" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    h = cli("run", "refcount", "--help")
    assert h.returncode == 0 and "options of refcount" in h.stdout and "--tally-delay-us" in h.stdout
    assert "(default 0.0)" in h.stdout
    listed = cli("list").stdout
    assert "--tally-delay-us (default 0.0):" in listed


def test_measurements_merge_into_one_record_of_the_sums():
    from shmkernel.measure.record import merge
    from shmkernel.measure.report import significant

    wl = registry.get("refcount")
    a, b = _rec(wl, "percpu-count", 1_000_000, 3), _rec(wl, "percpu-count", 500_000, 30)
    m = merge(wl, a, b)
    assert m["counters"]["tallies"] == 1_500_000 and m["events"]["false_zero"] == 33 and m["seconds"] == 6.0
    assert abs(m["rates"]["false_zero"]["per_million"] - 22.0) < 1e-9
    fixed = _rec(wl, "percpu-incs-decs", 1_500_000, 0)
    assert significant(wl, [m, fixed]) and not significant(wl, [a, _rec(wl, "percpu-incs-decs", 1_000, 0)])
