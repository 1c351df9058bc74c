"""Grace periods and stop_machine: what they wait for and the ordering they carry, in every model."""

from __future__ import annotations

from typing import Any

import pytest

from shmkernel.errors import UsageError
from shmkernel.explore import explore, replay
from shmkernel.kernel.stop_machine import stop_machine, synchronize_sched
from shmkernel.runtime.machine import Program
from shmkernel.workload import Workload


def reader(ctx: Any, p: dict) -> None:
    """Back-to-back preempt-disabled sections, no step between them."""
    seen = []
    for _ in ctx.loop(2):
        ctx.preempt_disable()
        pre = ctx.read_once(p["pre"])
        done = ctx.read_once(p["done"])
        ctx.preempt_enable()
        seen.append((pre, done))
        if p["variant"] == "broken" and pre == 0 and done == 1:
            # the section began before the grace period did, yet saw it end
            ctx.event("gp_broken")
    if p["variant"] == "between" and seen[0][1] == 0 and seen[1][1] == 1:
        ctx.event("gp_between")  # the grace period ended between the two sections


def updater(ctx: Any, p: dict) -> None:
    ctx.write_once(p["pre"], 1)
    synchronize_sched(ctx)
    ctx.write_once(p["done"], 1)


def reset(ctx: Any, p: dict) -> None:
    ctx.write_once(p["pre"], 0)
    ctx.write_once(p["done"], 0)


class _GracePeriod(Workload):
    def __init__(self) -> None:
        super().__init__(
            name="grace-period",
            variants={"between": "", "broken": ""},
            aliases={"buggy": "between", "fixed": "broken"},
            events=("gp_between", "gp_broken"),
            explore_defaults={"iterations": 1},
            default_cpus=1,
        )

    def declare(self, layout: Any, opts: dict) -> dict:
        return {"pre": layout.scalar("pre"), "done": layout.scalar("done")}

    def setup(self, variant: str, v: dict, opts: dict) -> Program:
        return Program(reset, v)

    def programs(self, variant: str, v: dict, cpus: int, opts: dict, iterations: Any) -> list:
        p = {**v, "variant": variant}
        return [Program(reader, p)] * cpus + [Program(updater, p)]


def test_a_grace_period_can_end_between_two_sections_of_a_looping_reader():
    r = explore(_GracePeriod(), variant="between")  # (TruSt, grace periods as memory)
    assert r.verdict == "found" and r.events == {"gp_between": 1} and r.search == "trust"
    assert "synchronize_sched: smp_mb" in r.trace and r.outcome == "ok"  # it ended, no deadlock
    s = explore(_GracePeriod(), variant="between", scheduler="stateful")  # kernel_sync's
    assert s.verdict == "found" and s.events == {"gp_between": 1}
    assert "synchronize_sched_wait" in s.trace


@pytest.mark.parametrize("model", ["native", "tso", "weak", "lkmm"])
def test_a_grace_period_never_ends_inside_a_section_that_began_before_it(model):
    r = explore(_GracePeriod(), variant="broken", memory_model=model)
    assert r.verdict == "proved", r.headline()


# -- rmmod: the seed's fix under the memory models -------------------------------------------------
SMALL = {"hold_iterations": 1, "idle_iterations": 0}


@pytest.mark.parametrize("model", ["tso", "weak", "lkmm"])
@pytest.mark.parametrize("stop_machine", [False, True])
def test_rmmod_fix_is_proved_under_the_models(model, stop_machine):
    """One worker taking, cloning and dropping a reference while rmmod runs: the
    grace period (or the stop) orders its per-CPU counts for the tally."""
    r = explore(
        "rmmod", variant="fixed", memory_model=model, cpus=1, iterations=2, opts={**SMALL, "stop_machine": stop_machine}
    )
    assert r.verdict == "proved", r.headline()


# Found by the stateful search before grace periods and stops carried their ordering:
# CPU0's incs increment still in its store buffer after synchronize_sched() (tso).
STALE_AFTER_GP = (
    "sk1:rmmod:percpu-incs-decs:2:3:tso:hold_iterations=2,idle_iterations=0:0x3-2x14-c2.0x3-0x5-1x3-c0.0:06448b51"
)


def test_the_use_after_free_the_fix_cannot_have_no_longer_replays():
    with pytest.raises(UsageError, match="schedule does not fit this program"):
        replay("rmmod", STALE_AFTER_GP)


def test_stop_machine_states_are_cached_like_any_other():
    """The stop_machine epoch no longer grows across executions: the stateful
    search meets the same states again and prunes them."""
    r = explore("rmmod", variant="fixed", scheduler="stateful", max_examples=300, opts={"stop_machine": True})
    assert r.pruned > 200


# -- a stop may park a CPU at an outermost preempt_enable() ------------------------------------------
def _reads_then_leaves_a_section(ctx: Any, p: dict) -> None:
    r = ctx.read_once(p["pre"])
    ctx.preempt_disable()
    ctx.preempt_enable()  # a preemption point: a stop may park this CPU here, after the read
    ctx.write_once(p["done"], 1)
    if r == 0 and ctx.read_once(p["flag"]) == 1:
        ctx.event("parked_after_the_read")


def _saw_no_write(ctx: Any, p: dict) -> None:
    if ctx.read_once(p["done"]) == 0:
        ctx.write_once(p["flag"], 1)


def _stops(ctx: Any, p: dict) -> None:
    ctx.write_once(p["pre"], 1)
    stop_machine(ctx, _saw_no_write, p)


class _ParkAfterRead(Workload):
    def __init__(self) -> None:
        super().__init__(
            name="park-after-read",
            variants={"only": ""},
            aliases={"buggy": "only"},
            events=("parked_after_the_read",),
            explore_defaults={"iterations": 1},
            default_cpus=1,
        )

    def declare(self, layout: Any, opts: dict) -> dict:
        return {n: layout.scalar(n) for n in ("pre", "done", "flag")}

    def setup(self, variant: str, v: dict, opts: dict) -> Program:
        return Program(_zero, v)

    def programs(self, variant: str, v: dict, cpus: int, opts: dict, iterations: Any) -> list:
        return [Program(_reads_then_leaves_a_section, v)] * cpus + [Program(_stops, v)]


def _zero(ctx: Any, p: dict) -> None:
    for n in ("pre", "done", "flag"):
        ctx.write_once(p[n], 0)


def test_a_stop_parks_a_cpu_at_the_preempt_enable_right_after_its_read():
    """The kernel may stop a CPU at any preemption point: after its read, before its write.
    An outermost preempt_enable() used to run with the step before it (no step of its
    own), so the exhaustive search said PROVED here; it now makes it a step once a stop
    comes, and finds it; the stateful search makes it one from the start."""
    r = explore(_ParkAfterRead())
    assert r.verdict == "found" and r.events == {"parked_after_the_read": 1}
    assert "preemption=steps" in r.schedule
    (again,) = replay(_ParkAfterRead(), r.schedule)
    assert again.events == r.events
    s = explore(_ParkAfterRead(), scheduler="stateful")
    assert s.verdict == "found" and s.events == r.events
