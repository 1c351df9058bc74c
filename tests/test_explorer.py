"""The explorer checked against brute force: random small programs, in process.

Every reduction (Optimal DPOR, Source-DPOR, the stateful search with its state
cache, under every memory model, and the same search over execution graphs
under sc, tso and weak) must reach exactly the outcomes (final
memory, every register, ok or deadlock) that enumerating every schedule
reaches. The programs run through the real drive loop, memory models and
scheduler classes (`shmkernel.schedule.inprocess`), only not in CPU processes.
`scripts/bench_explorer.py --programs 10000` is the long run of the same check.
"""

from __future__ import annotations

import random

import pytest

from shmkernel.memory.graph import GRAPH_MODELS, GraphModel
from shmkernel.schedule.bruteforce import BruteForceScheduler
from shmkernel.schedule.dpor import DPORScheduler
from shmkernel.schedule.ops import ACCESS, CODE, D_READ, D_WRITE, HIDDEN_STATE, NAME, conflicts, dependence, dependent
from shmkernel.schedule.randprog import RandomProgram, generate, outcomes, trace_count
from shmkernel.schedule.stateful import StatefulScheduler


def _searches(model: str) -> dict[str, tuple[object, bool]]:
    """Each search, and whether it keeps the model as an execution graph."""
    out: dict[str, tuple[object, bool]] = {"stateful": (StatefulScheduler(), False)}
    if model in ("native", "sc"):
        out["optimal-dpor"] = (DPORScheduler(), False)
        out["source-dpor"] = (DPORScheduler(wakeup_trees=False), False)
    if model in GRAPH_MODELS:
        out["graph"] = (StatefulScheduler(), True)
    return out


def _check(prog: RandomProgram, model: str) -> None:
    expected, _ = outcomes(prog, BruteForceScheduler(), model)
    for name, (search, graph) in _searches(model).items():
        got, _ = outcomes(prog, search, model, graph=graph)
        assert got == expected, (
            f"{name} under {model} on\n{prog.text()}\nmissed {expected - got}\ninvented {got - expected}"
        )


THREE_CPUS = RandomProgram(
    (
        (("read", 0, 0), ("read", 1, 1)),  # T0: r(x); r(y)
        (("read", 0, 0), ("write", 0, 1)),  # T1: r(x); w(x)
        (("read", 0, 0), ("write", 1, 1)),  # T2: r(x); w(y)
    ),
    nvars=2,
    nlocks=0,
)


@pytest.mark.parametrize("wakeup_trees", [True, False], ids=["optimal", "source"])
def test_the_three_cpu_counterexample_to_racing_cpu_backtracking(wakeup_trees):
    """Adding the racing CPU itself as the backtrack choice, with sleep sets, misses
    the outcome that needs T1.r(x) T2.r(x) T1.w(x) T0.r(x) T0.r(y) T2.w(y): T0 sees
    the new x and the old y while T2 saw the old x. An initial of the reversed
    sequence must go first instead."""
    need = ((1, 1), ((1, 0), (0,), (0,)), "ok")
    expected, _ = outcomes(THREE_CPUS, BruteForceScheduler())
    assert need in expected
    d = DPORScheduler(wakeup_trees=wakeup_trees)
    got, runs = outcomes(THREE_CPUS, d)
    assert need in got and got == expected
    assert trace_count(THREE_CPUS) == 8
    if wakeup_trees:  # optimal: one execution per Mazurkiewicz trace, none begun in vain
        assert runs == 8 and d.sleep_blocked == 0
    else:  # Source-DPOR may begin an execution the sleep sets then block
        assert runs - d.sleep_blocked >= 8


# seed 0 in the default suite, the other three with -m slow (3 s each; bench_explorer runs thousands)
@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in (1, 2, 3))])
def test_dpor_and_stateful_reach_what_brute_force_reaches(seed):
    rng = random.Random(1000 + seed)
    for _ in range(50):
        _check(generate(rng, max_cpus=4, max_ops=7), "native")


@pytest.mark.parametrize("model", ["sc", "tso", "weak", pytest.param("lkmm", marks=pytest.mark.slow)])  # lkmm: 7 s
def test_every_models_search_reaches_what_brute_force_reaches(model, monkeypatch):
    monkeypatch.setattr(GraphModel, "check_full", True)  # and every incremental graph check is right
    rng = random.Random(["sc", "tso", "weak", "lkmm"].index(model) + 50)
    for _ in range(40):
        _check(generate(rng, max_cpus=3, max_ops=5, fences=True), model)


def test_optimal_dpor_runs_one_execution_per_trace_without_conditional_rmws():
    """On programs of reads, writes and a mutex (no cmpxchg, whose dependence
    depends on where it runs), Optimal DPOR never starts an execution that
    repeats a trace."""
    rng = random.Random(7)
    for _ in range(60):
        prog = generate(rng, max_cpus=4, max_ops=7)
        if any(ins[0] == "cmpxchg" for cpu in prog.code for ins in cpu):
            continue
        d = DPORScheduler(restart_after=None)
        _, runs = outcomes(prog, d)
        assert runs - d.sleep_blocked == trace_count(prog), prog.text()


def test_a_mutex_deadlock_is_found_in_every_order():
    abba = RandomProgram(
        (
            (("lock", 0), ("lock", 1), ("unlock", 1), ("unlock", 0)),
            (("lock", 1), ("lock", 0), ("unlock", 0), ("unlock", 1)),
        ),
        nvars=0,
        nlocks=2,
    )
    got, _ = outcomes(abba, DPORScheduler())
    assert {o[2] for o in got} == {"ok", "deadlock"}


def test_a_failed_conditional_rmw_only_reads():
    cmpxchg = CODE["atomic_cmpxchg"]
    assert dependence(cmpxchg, 0, 1, result=5) == D_READ  # found 5, not 0: wrote nothing
    assert dependence(cmpxchg, 0, 1, result=0) == D_WRITE
    assert dependence(cmpxchg, 0, 1) == D_WRITE  # not run yet: may write
    assert dependence(CODE["atomic_inc_not_zero"], result=0) == D_READ
    assert not dependent(D_READ, 3, D_READ, 3) and dependent(D_READ, 3, D_WRITE, 3)


def test_every_wait_on_hidden_state_conflicts_with_every_step():
    for code, acc in enumerate(ACCESS):
        if acc in HIDDEN_STATE:
            assert all(conflicts(code, -1, other, 9) for other in range(len(ACCESS))), NAME[code]


def test_the_round_robin_restart_changes_no_verdict():
    """The first search stops after ``restart_after`` executions and the second,
    round-robin, starts over: both reach every outcome; a first search that ends
    exactly at the restart point is the proof itself."""
    rng = random.Random(11)
    for _ in range(30):
        prog = generate(rng, max_cpus=4, max_ops=7)
        expected, _ = outcomes(prog, BruteForceScheduler())
        for restart in (1, 3, 10):
            d = DPORScheduler(restart_after=restart)
            got, runs = outcomes(prog, d)
            assert got == expected, prog.text()
    full = DPORScheduler(restart_after=None)
    _, n = outcomes(THREE_CPUS, full)
    exact = DPORScheduler(restart_after=n)
    _, runs = outcomes(THREE_CPUS, exact)
    assert runs == n and exact.restarted_at is None
