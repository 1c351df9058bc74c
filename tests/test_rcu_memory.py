"""Grace periods as memory events (`shmkernel.schedule.rcu_memory`): what trust proves and finds with them.

Held to the LKMM's own RCU axioms (the axiomatic engine, herd7's linux-kernel.cat)
on RCU litmus tests, and to the seed: rmmod's fix proved under every model, the
per-CPU count's false zero and the fix without its barriers found, replayed.
"""

from __future__ import annotations

import os

import pytest
from test_grace_period import _GracePeriod

from shmkernel.errors import UsageError
from shmkernel.explore import explore, replay
from shmkernel.litmus.outcomes import key_text
from shmkernel.litmus.parse import parse_litmus
from shmkernel.litmus.runner import run_exhaustive, run_file
from shmkernel.litmus.verdict import lkmm_verdict
from shmkernel.schedule.session import Session, resolve
from shmkernel.schedule.stateful import StatefulScheduler
from shmkernel.schedule.trust import TrustScheduler

LITMUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "litmus")
#: our RCU tests and the LKMM's verdict on each (the axiomatic engine says it too, below)
RCU_TESTS = {
    "rcu-MP+sync": "Never",
    "rcu-MP+nosync": "Sometimes",
    "rcu-sections-span+sync": "Never",
    "rcu-two-sections+sync": "Sometimes",  # the grace period ends between the two sections
}


def _flat(key: tuple) -> frozenset:
    return frozenset((k if isinstance(k, str) else key_text(k), v) for k, v in key)


@pytest.mark.parametrize("name", sorted(RCU_TESTS))
def test_grace_periods_as_memory_reach_exactly_what_the_lkmms_rcu_axioms_allow(name):
    path = os.path.join(LITMUS, f"{name}.litmus")
    axioms = lkmm_verdict(path)
    assert axioms.observation == RCU_TESTS[name]
    got = run_exhaustive(parse_litmus(path), "lkmm", trust=True)
    assert {_flat(k) for k in got.states} == {_flat(k) for k in axioms.res.outcomes.states}
    assert got.observation == RCU_TESTS[name] and not got.caveat
    for model in ("sc", "tso", "weak"):  # a grace period orders the same under every model
        under = run_exhaustive(parse_litmus(path), model, trust=True)
        if name.endswith("+sync"):
            assert under.observation == RCU_TESTS[name], model
    assert run_exhaustive(
        parse_litmus(os.path.join(LITMUS, "rcu-MP+nosync.litmus")), "weak", trust=True
    ).observation == ("Sometimes")


def test_rcu_litmus_tests_run_scheduled_only():
    with pytest.raises(UsageError, match="exhaustive only"):
        run_file(os.path.join(LITMUS, "rcu-MP+sync.litmus"), "native", mode="free", runs=10)


@pytest.mark.parametrize("model", ["tso", "weak", "lkmm"])
def test_rmmods_fix_is_proved_by_trust_with_grace_periods_as_memory(model):
    """The seed's default program (two workers taking, cloning, migrating and dropping
    references; rmmod's GOING, synchronize_sched() and tallies): a proof under each model
    (880-928 executions; the stateful search did not finish in 100,000 under tso)."""
    r = explore("rmmod", variant="fixed", memory_model=model)
    assert r.verdict == "proved", r.headline()
    assert r.search == "trust" and not r.fallback


@pytest.mark.parametrize("model", ["tso", "weak", "lkmm"])
def test_rmmods_false_zero_is_found_and_replays_with_its_grace_period_as_memory(model):
    r = explore("rmmod", variant="buggy", memory_model=model)
    assert r.verdict == "found" and r.events.get("use_after_free") and r.search == "trust"
    assert "kernel-sync=memory" in r.schedule and "atomic_inc_return(sched.rcu_sections" in r.trace
    for engine in ("processes", "inprocess"):
        (again,) = replay("rmmod", r.schedule, engine=engine)
        assert again.events == r.events


def test_the_fix_without_its_barriers_fails_under_weak_and_holds_under_tso():
    weak = explore("rmmod", variant="percpu-incs-decs-nobarrier", memory_model="weak")
    assert weak.verdict == "found" and weak.search == "trust"
    assert explore("rmmod", variant="percpu-incs-decs-nobarrier", memory_model="tso").verdict == "proved"


@pytest.mark.parametrize("model", ["tso", "weak", "lkmm"])
def test_a_grace_period_as_memory_ends_between_two_sections_of_a_looping_reader(model):
    r = explore(_GracePeriod(), variant="between", memory_model=model)
    assert r.verdict == "found" and r.events == {"gp_between": 1} and r.search == "trust"


def test_a_schedule_that_names_another_kernel_sync_is_refused():
    r = explore("rmmod", variant="buggy", memory_model="tso")
    forged = r.schedule.replace("kernel-sync=memory", "kernel-sync=hidden")
    with pytest.raises(UsageError):  # the checksum, or the option itself
        replay("rmmod", forged)


def test_trust_asks_for_grace_periods_as_memory_only_where_it_meets_one():
    """A program without grace periods or context switches keeps its preempt-disabled
    sections as they were, compiler barriers (no section RMWs in its schedule or trace)."""
    r = explore("refcount", variant="buggy", memory_model="weak")
    assert r.verdict == "found" and r.search == "trust"
    assert "kernel-sync" not in r.schedule and "rcu_sections" not in r.trace


def _outcomes(wl, variant, model, scheduler, cpus, iterations, opts) -> set:  # noqa: ANN001
    """Every (outcome, events) a complete search reaches, grace periods as memory."""
    w, variant, parsed, ncpus, iters = resolve(wl, variant, opts, cpus, iterations)
    seen: set = set()
    with Session(w, variant, ncpus, parsed, iters, model, 20_000) as sess:
        sess.engine.use_graph_model()
        sess.engine.rcu_memory = True
        while scheduler.new_execution():
            ex, events = sess.execute(scheduler)
            if ex.outcome != "pruned":
                seen.add((ex.outcome, tuple(sorted(events.items()))))
    assert scheduler.exhausted and not getattr(scheduler, "unsupported", "")
    return seen


@pytest.mark.parametrize("model", ["tso", "weak"])
def test_trust_reaches_what_the_stateful_search_reaches_with_grace_periods_as_memory(model):
    """The same programs, the same semantics, two complete searches: every outcome and
    every set of events the stateful search over graphs reaches (every schedule, every
    way), trust reaches, and nothing else. (rmmod buggy at 2 CPUs x 2 iterations agrees
    too, use-after-free included: trust 639 executions, the stateful search 141,289 in
    554 s, too long for the suite.)"""
    cases = [
        (_GracePeriod(), "between", 1, 1, {}),
        (_GracePeriod(), "broken", 1, 1, {}),
        ("rmmod", "buggy", 2, 1, {"hold_iterations": 1, "idle_iterations": 0}),
    ]
    for wl, variant, cpus, iters, opts in cases:
        expected = _outcomes(wl, variant, model, StatefulScheduler(), cpus, iters, opts)
        got = _outcomes(wl, variant, model, TrustScheduler(), cpus, iters, opts)
        assert got == expected, (variant, model)
    assert ("ok", (("gp_between", 1),)) in _outcomes(_GracePeriod(), "between", model, TrustScheduler(), 1, 1, {})
