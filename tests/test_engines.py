"""The two engines of scheduled mode agree: the in-process engine (CPUs as
coroutines, `shmkernel.schedule.coroutines`) and the process engine (real CPU
processes through the gate) give the same verdict, the same executions, the
same schedule and the same trace on every seed, every variant and every
memory model, and a schedule found in-process replays on real processes.

The searches are cut at a small budget so that the whole matrix runs in the
default suite (each search's first executions must match one for one; a found
schedule's trace too); `scripts/bench_schedule.py --engines` runs it at the
seeds' default sizes.
"""

from __future__ import annotations

import textwrap

import pytest

from shmkernel.errors import RunError
from shmkernel.explore import explore, replay
from shmkernel.memory.registry import MODELS
from shmkernel.workload import registry

BUDGET = 25
CASES = [(name, variant) for name in registry.names() for variant in registry.get(name).variants]


def _matrix() -> list:
    """Every (workload, variant, model); livepatch under weak and lkmm (its longest
    programs, ~2 s each) with -m slow."""
    out = []
    for w, v in CASES:
        for m in MODELS:
            marks = pytest.mark.slow if w == "livepatch" and m in ("weak", "lkmm") else ()
            out.append(pytest.param(w, v, m, marks=marks, id=f"{w}-{v}-{m}"))
    return out


@pytest.mark.parametrize("workload,variant,model", _matrix())
def test_both_engines_explore_alike(workload, variant, model):
    runs = {
        engine: explore(workload, variant=variant, memory_model=model, max_examples=BUDGET, engine=engine)
        for engine in ("inprocess", "processes")
    }
    a, b = runs["inprocess"], runs["processes"]
    assert (a.verdict, a.examples, a.stopped_by, a.events) == (b.verdict, b.examples, b.stopped_by, b.events)
    assert a.schedule == b.schedule
    assert a.trace == b.trace


@pytest.mark.parametrize("model", ["native", "lkmm"])
def test_a_schedule_found_in_process_replays_on_processes(model):
    found = explore("refcount", variant="buggy", memory_model=model, engine="inprocess")
    assert found.verdict == "found"
    (again,) = replay("refcount", found.schedule, engine="processes")
    assert again.found and again.events == found.events
    assert again.trace == found.trace


def test_the_in_process_engine_reports_a_cpu_oops_as_the_process_engine_does(tmp_path):
    (tmp_path / "oops.py").write_text(
        textwrap.dedent("""
        from shmkernel.workload.scenario import Scenario

        oops = Scenario("oops", events=("never",), cpus=2)
        oops.scalar("x")

        @oops.every_cpu
        def crash(ctx, v, variant):
            if ctx.read_once(v.x) == 0:
                raise ValueError("boom")
    """)
    )
    messages = []
    for engine in ("inprocess", "processes"):
        with pytest.raises(RunError) as e:
            explore(str(tmp_path / "oops.py") + ":oops", engine=engine, max_examples=3)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert "ValueError: boom" in messages[0]
