"""What the kernel's synchronisation does beyond a CPU's own code, in scheduled mode.

A grace period (``synchronize_sched()``) is two steps. Its start notes which
CPUs are inside a preempt-disabled (RCU-sched read-side) section, with the
count of quiescent states each has passed; its end is enabled once each of
those has passed another (or finished): sections that begin after the start
are not waited for, so a grace period can end between two sections of a
looping reader.

The ordering it carries, under every emulated memory model: the start is a
full barrier on its caller and on every CPU outside a section (those are in
a quiescent state, which the kernel orders after the grace period's start: a
section they begin later sees what the caller stored before); a CPU's
quiescent state is a full barrier on it; the end is a strong fence on every
CPU. ``stop_machine``'s start and end are strong fences on every CPU (every
other CPU is parked in between), parking and ``schedule()`` full barriers on
their own CPU (a context switch).

A section begins with its CPU's step before ``preempt_disable()`` (no step of its
own), so a grace period starting before the section's first access always waits
for it: the executions where it had not begun are not explored here, and a search
that began one proves nothing (`grace_periods_begun`). TruSt's grace periods as
memory (`shmkernel.schedule.rcu_memory`) have no such gap. Parking had its like:
an outermost ``preempt_enable()``'s preemption point ran with the CPU's step
before it, so a stop requested after that step could not park the CPU there; a
search that meets a stop makes it a step of its own (`Driver.preemption_steps`),
and one that does not proves nothing (`stops_begun`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from shmkernel.schedule.ops import CODE, DONE, ERROR, Op

SYNC_START, SYNC_WAIT = CODE["synchronize_sched"], CODE["synchronize_sched_wait"]
PARK, SM_START, SM_WAIT, SM_END = (
    CODE["park"],
    CODE["stop_machine"],
    CODE["stop_machine_wait"],
    CODE["stop_machine_end"],
)
SCHEDULE = CODE["schedule"]
#: the schedule header's option of a search whose outermost preempt_enable() was a step
PREEMPTION_OPTION, PREEMPTION_STEPS = "preemption", "steps"
FINISHED = (DONE, ERROR)


class KernelSync:
    """Grace periods in progress, and the fences of every synchronisation step."""

    def __init__(self, preempt: Callable[[int], int], qs: Callable[[int], int]) -> None:
        self._preempt = preempt  # a CPU's preempt count now (0: outside any section)
        self._qs = qs  # how many quiescent states a CPU has passed (grows only)
        #: caller -> {CPU it waits for: that CPU's quiescent-state count when it began}
        self.waits: dict[int, dict[int, int]] = {}
        #: grace periods begun, across executions (a search zeroes it): its proof is none
        self.grace_periods_begun = 0
        self.stops_begun = 0  # likewise stop_machines (`Driver.preemption_steps` says why)

    def reset(self) -> None:
        self.waits = {}

    def over(self, cpu: int) -> bool:
        """Has the grace period ``cpu`` is waiting in ended (every section it waits for left)?"""
        return not self.waits.get(cpu)

    def granted(self, cpu: int, op: Op, pending: dict[int, Op], model: Any) -> None:
        """``cpu`` takes synchronisation step ``op``: bookkeeping and fences (``model``: None
        under native, where the host's memory is sequentially consistent step by step)."""
        code = op.code
        if code == SYNC_START:
            self.grace_periods_begun += 1
            live = [o for o, p in pending.items() if o != cpu and p.code not in FINISHED]
            self.waits[cpu] = waiting = {o: self._qs(o) for o in live if self._preempt(o) > 0}
            if model is not None:
                model.fence_cpu(cpu)
                for o in live:
                    if o not in waiting:
                        model.fence_cpu(o)
        elif code == SYNC_WAIT:
            self.waits.pop(cpu, None)
            if model is not None:
                model.fence_all()
        elif code == SM_START:
            self.stops_begun += 1
            if model is not None:
                model.fence_cpu(cpu)
        elif code in (SM_WAIT, SM_END):
            if model is not None:
                model.fence_all()
        elif code in (PARK, SCHEDULE) and model is not None:
            model.fence_cpu(cpu)

    def stepped(self, cpu: int, nxt: Op, model: Any) -> None:
        """After ``cpu``'s step (its next op ``nxt``): the grace periods it no longer holds up."""
        if not self.waits:
            return
        finished = nxt.code in FINISHED
        passed = False
        for waits in self.waits.values():
            if cpu in waits and (finished or self._qs(cpu) != waits[cpu]):
                del waits[cpu]
                passed = True
        if passed and not finished and model is not None:
            model.fence_cpu(cpu)

    def key(self) -> Hashable:
        """For the state cache: who waits for whom (the counts are only how to tell)."""
        return tuple(sorted((c, tuple(sorted(w))) for c, w in self.waits.items()))
