"""Scheduled mode on real CPU processes: find, shrink, prove, replay, deadlock, livelock."""

from __future__ import annotations

from typing import Any

import pytest
from toys import Toy

from shmkernel.errors import UsageError
from shmkernel.explore import explore, replay
from shmkernel.schedule.trace import decode, decode_choices, encode_choices


@pytest.mark.parametrize("scheduler", ["random", "pct", "exhaustive", "stateful", "hypothesis"])
def test_every_scheduler_finds_the_false_zero(scheduler):
    r = explore("refcount", variant="percpu-count", scheduler=scheduler, max_examples=3000, seed=1)
    assert r.found and r.events.get("false_zero") == 1
    assert r.schedule.startswith("sk1:refcount:percpu-count:2:")
    if scheduler == "exhaustive":
        assert r.examples <= 10


def test_hypothesis_shrinks_to_the_seed_interleaving():
    r = explore("refcount", variant="buggy", scheduler="hypothesis", max_examples=1000)
    assert r.found
    lines = r.trace.splitlines()

    def at(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    # the tally reads CPU0's slot, CPU0 takes the reference, it migrates, CPU1 drops it,
    # then the tally reads CPU1's slot: a decrement without its increment
    assert at("per_cpu_read(mod.count[cpu0]) -> 0") < at("this_cpu_inc(mod.count[cpu0])")
    assert at("this_cpu_inc(mod.count[cpu0])") < at("write_once(refcount.mailbox[cpu1], 1)")
    assert at("write_once(refcount.mailbox[cpu1], 1)") < at("this_cpu_dec(mod.count[cpu1])")
    assert at("this_cpu_dec(mod.count[cpu1])") < at("per_cpu_read(mod.count[cpu1]) -> -1")
    assert "false_zero" in r.trace
    choices = decode(r.schedule)[1]
    runs = encode_choices(choices).count("-") + 1
    assert runs == 4  # tallier, CPU0, CPU1, tallier: the fewest switches that can show it


@pytest.mark.parametrize("variant", ["percpu-incs-decs", "atomic"])
def test_exhaustive_proves_the_fixes(variant):
    r = explore("refcount", variant=variant, scheduler="exhaustive", max_examples=10_000)
    assert not r.found and r.complete
    assert 1 <= r.examples <= 16  # 5 and 14 measured (sleep sets off)
    s = explore("refcount", variant=variant, scheduler="stateful", max_examples=10_000)
    assert not s.found and s.complete


def test_the_put_after_a_clone_is_an_access_a_false_zero_can_make_a_use_after_free():
    """Two iterations, a one-iteration hold: the worker clones its reference and puts
    its own at once. Its ``module_put`` writes the freed module's per-CPU count when
    a false zero freed the module in between, so it is checked like a use (a
    fidelity fix: before it only uses were checked, and this program was proved).
    One worker CPU leaves no second slot for a false zero: that program is proved,
    and the stateful search prunes most of it."""
    d = explore("rmmod", variant="buggy", iterations=2, opts={"hold_iterations": 1})
    assert d.verdict == "found" and d.events.get("use_after_free")
    s = explore("rmmod", variant="buggy", cpus=1, iterations=2, opts={"hold_iterations": 1}, scheduler="stateful")
    assert s.pruned > s.examples // 2
    # over kernel_sync's grace periods (a section begins at the step before it): no proof
    assert s.verdict == "not-proved" and s.stopped_by == "grace period"
    t = explore("rmmod", variant="buggy", cpus=1, iterations=2, opts={"hold_iterations": 1})
    assert t.verdict == "proved" and t.search == "trust"  # grace periods as memory: every execution


def test_hypothesis_finds_nothing_in_the_fix():
    r = explore("refcount", variant="fixed", scheduler="hypothesis", max_examples=300)
    assert not r.found and r.examples >= 300 and r.verdict == "not-proved"


def test_replay_is_exact_100_times_out_of_100():
    r = explore("refcount", variant="buggy", scheduler="pct", max_examples=2000, seed=3)
    assert r.found
    runs = replay("refcount", r.schedule, repeat=100)
    assert len(runs) == 100
    assert all(x.trace == r.trace and x.events == r.events for x in runs)


@pytest.mark.parametrize(
    "bad,needle",
    [
        ("garbage", "malformed"),
        ("sk1:refcount:percpu-count:2:1:native::2-0x5", "malformed"),
        ("sk1:refcount:percpu-count:2:1:native::2-0x5-1x5-2x2:00000000", "checksum"),
    ],
)
def test_replay_refuses_malformed_schedules(bad, needle):
    with pytest.raises(UsageError, match=needle):
        replay("refcount", bad)


def test_replay_refuses_a_schedule_for_another_workload():
    r = explore("refcount", variant="buggy", scheduler="exhaustive")
    with pytest.raises(UsageError, match="for workload 'refcount'"):
        replay("rmmod", r.schedule)


def test_choice_encoding_roundtrip():
    ch = [2, 0, 0, 0, 1, 1, 2, 2, 0]
    assert decode_choices(encode_choices(ch)) == ch


# -- a deliberately deadlocking program and a livelocking one ------------------------------------
def abba(ctx: Any, p: dict) -> None:
    first, second = (p["a"], p["b"]) if ctx.cpu == 0 else (p["b"], p["a"])
    for _ in ctx.loop(p["iterations"]):
        ctx.mutex_lock(first)
        ctx.mutex_lock(second)
        ctx.mutex_unlock(second)
        ctx.mutex_unlock(first)


def spin_forever(ctx: Any, p: dict) -> None:
    for _ in ctx.loop(p["iterations"]):
        while ctx.read_once(p["a"]) == 0:  # nobody ever sets it
            ctx.cpu_relax()


def test_abba_mutexes_are_reported_as_deadlock_not_hung():
    for scheduler in ("exhaustive", "hypothesis"):
        r = explore(Toy(abba), scheduler=scheduler, max_examples=200)
        assert r.found and r.outcome == "deadlock" and r.events == {"deadlock": 1}
        assert "blocked" in r.trace


def test_unbounded_spin_is_reported_as_livelock():
    r = explore(Toy(spin_forever), scheduler="random", max_examples=1, max_steps=500)
    assert r.found and r.outcome == "livelock"


def test_hypothesis_shrinking_stops_at_its_budget_with_a_genuine_failure(monkeypatch):
    """Unbounded, this shrink ran 4,235 executions (52 s) for a 20-example search; it
    stops after SHRINK_BUDGET executions past the first failure, and what it reports
    is a schedule that really fails (replayed)."""
    from shmkernel.schedule import hypothesis_sched

    monkeypatch.setattr(hypothesis_sched, "SHRINK_BUDGET", 50)
    r = explore("modcount-2002", variant="hisax-unlocked", scheduler="hypothesis", max_examples=20, cpus=6, seed=3)
    assert r.verdict == "found"
    assert r.examples <= 20 + 50
    (again,) = replay("modcount-2002", r.schedule, engine="inprocess")
    assert again.events == r.events
