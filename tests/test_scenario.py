"""Your own race in a few lines: the scenario API, and workloads from a file or a module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from shmkernel.errors import UsageError
from shmkernel.explore import explore, replay
from shmkernel.workload import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFGET = os.path.join(ROOT, "examples", "refget.py")


def cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shmkernel.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_the_example_is_25_lines_of_scenario_code():
    code = [
        ln
        for ln in open(REFGET).read().split('"""', 2)[2].splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    assert len(code) <= 25


def test_the_example_explores_replays_and_proves_its_fix():
    r = explore(REFGET)
    assert r.verdict == "found" and r.events == {"use_after_free": 1}
    assert "put_last: atomic_dec_and_test(refs) -> 1" in r.trace
    assert r.replay_command().startswith(f"shmkernel replay {REFGET} 'sk1:refget:buggy:")
    [again] = replay(REFGET, r.schedule)
    assert again.trace == r.trace and again.events == r.events
    fixed = explore(REFGET, variant="fixed")
    assert fixed.verdict == "proved"


def test_the_example_from_the_command_line(tmp_path):
    r = cli("explore", REFGET, "--json")
    assert r.returncode == 1, r.stderr
    rec = json.loads(r.stdout)
    assert rec["reference"] == REFGET and rec["verdict"] == "found"
    rp = cli("replay", REFGET, rec["schedule"])
    assert rp.returncode == 1 and "use_after_free=1" in rp.stdout
    run = cli("run", REFGET, "--variant", "fixed", "--iterations", "300", "--json")
    assert run.returncode == 0, run.stderr
    rec = json.loads(run.stdout)
    assert rec["counters"]["rounds"] == 300 and rec["events"]["use_after_free"] == 0


def test_a_workload_file_anywhere_with_a_check_and_a_coordinator(tmp_path):
    (tmp_path / "lost.py").write_text(
        textwrap.dedent("""
        from shmkernel.workload.scenario import Scenario

        lost = Scenario("lost-update", events=("lost",), variants=("plain", "atomic"), cpus=2)
        lost.scalar("x")

        @lost.every_cpu
        def bump(ctx, v, variant):
            if variant == "plain":
                ctx.write_once(v.x, ctx.read_once(v.x) + 1)
            else:
                ctx.atomic_inc(v.x)

        @lost.coordinator
        def watch(ctx, v, variant):
            ctx.read_once(v.x)

        @lost.check
        def both_counted(ctx, v, variant):
            if ctx.oracle_read(v.x) != 2:
                ctx.event("lost")
    """)
    )
    ref = str(tmp_path / "lost.py") + ":lost"
    r = cli("explore", ref, "--json", cwd=str(tmp_path))
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["events"] == {"lost": 1}
    assert cli("explore", ref, "--variant", "atomic").returncode == 0
    sw = cli("sweep", ref, "--param", "variant=plain,atomic", "--seconds", "0.3", "--json", "--progress", "never")
    assert sw.returncode == 0, sw.stderr
    assert [json.loads(ln)["variant"] for ln in sw.stdout.splitlines()] == ["plain", "atomic"]


@pytest.mark.parametrize(
    "ref,needle",
    [
        ("nosuch.py", "no workload file"),
        ("nosuch_pkg_xyz.mod:W", "cannot import"),
        ("os:path", "is not a shmkernel workload"),
        ("bad.py", "syntax error"),
        ("empty.py", "defines no workload"),
    ],
)
def test_a_reference_that_cannot_load_is_one_line(tmp_path, ref, needle):
    (tmp_path / "bad.py").write_text("def (\n")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(UsageError, match=needle):
        registry.get(str(tmp_path / ref) if ref.endswith(".py") else ref)
    r = cli("explore", str(tmp_path / ref) if ref.endswith(".py") else ref)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr


def test_an_installed_entry_point_adds_a_workload(tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    (pkg / "myraces").mkdir(parents=True)
    (pkg / "myraces" / "__init__.py").write_text(open(REFGET).read())
    dist = pkg / "myraces-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myraces\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[shmkernel.workloads]\nrefget-plugin = myraces:race\n")
    monkeypatch.syspath_prepend(str(pkg))
    assert "refget-plugin" in registry.names()
    wl = registry.get("refget-plugin")
    assert wl.name == "refget" and wl.reference == "refget-plugin"
    assert explore("refget-plugin").verdict == "found"


def test_the_guide_replay_line_still_replays():
    import re

    guide = open(os.path.join(ROOT, "docs", "WRITING_WORKLOADS.md")).read()
    ref, schedule = re.search(r"shmkernel replay (examples/refget\.py) '([^']+)'", guide).groups()
    [r] = replay(os.path.join(ROOT, ref), schedule)
    assert r.events == {"use_after_free": 1}
