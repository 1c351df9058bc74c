"""The in-process engine: the same workloads, the CPUs as coroutines of one process.

A step of the process engine (`shmkernel.schedule.engine`) is a round trip
between two processes through the gate: a post, a grant, a wake-up, tens of
microseconds. Here each CPU's program runs in a greenlet of the coordinator's
own process, with `CoroutineCtx`: the very same `ScheduledCtx` (the same
operations, the same memory-model results, the same trace records) whose post
*switches* to the coordinator with the operation instead of writing it to the
gate, and whose grant is the coordinator switching back. A step costs
a greenlet switch, not a round trip (2.7-4.5x the executions per second of
the process engine on the seeds, `scripts/bench_schedule.py --engines`; the
rest is the drive loop, DPOR and the kernel code); the kernel and workload code,
the segment, the drive loop, the schedulers and the schedule strings are
shared with the process engine, so a schedule found here replays there.

What it cannot see, by design: another process writing the segment during an
execution, or Python state a CPU process keeps to itself. Workloads that keep
per-CPU Python state keep it on the ``ctx`` (fresh per execution on either
engine), so the two engines agree; `tests/test_engines.py` checks that they
give the same verdicts, execution counts and traces on every seed.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import greenlet

from shmkernel.errors import RunError
from shmkernel.memory.layout import PERCPU_STRIDE
from shmkernel.memory.models import CLASS as MODEL_OPS
from shmkernel.runtime.cpu_process import short_error
from shmkernel.runtime.ctx import Ctx, StillAsleep
from shmkernel.runtime.machine import Machine, Program
from shmkernel.schedule import gate as g
from shmkernel.schedule.deps import plain
from shmkernel.schedule.drive import Execution, Op, Scheduler, Step
from shmkernel.schedule.engine import Engine
from shmkernel.schedule.ops import DONE, ERROR
from shmkernel.schedule.sctx import ScheduledCtx


class CoroutineCtx(ScheduledCtx):
    """A scheduled CPU whose hand-offs are greenlet switches with the coordinator.

    A post is ``hub.switch((result of the previous step, Op))``; the grant comes
    back as the switch's value, ``(choice, the model computed it, its value)``. No
    gate words change hands (the slot's preempt count still does: the grace-period
    rules read it), which is what makes a step cost a switch."""

    def __init__(self, seg, ctl, cpu, nr_cpus, counter_names, atomics, gate: g.GateSpec, hub) -> None:  # type: ignore[no-untyped-def]
        self._hub = hub
        self._res = 0
        self._granted: tuple[int, bool, Any] = (0, False, None)
        super().__init__(seg, ctl, cpu, nr_cpus, counter_names, atomics, gate)

    def _connect(self) -> None:
        """Nothing to open: nobody sleeps."""

    def _post(self, code: int, addr: int, a1: int, a2: int) -> int:
        self._granted = self._hub.switch((self._res, Op(code, addr, a1, a2, self.op_deps())))
        return 0

    def _handoff(self, code: int, addr: int, a1: int, a2: int) -> int:
        self._granted = self._hub.switch((self._res, Op(code, addr, a1, a2, self.op_deps())))
        return self._granted[0]

    def _result(self, value: Any) -> None:
        self._res = plain(value) if value is not None else 0

    def perform(self, name: str, args: tuple) -> Any:
        if not self.gate.model or name not in MODEL_OPS:
            return getattr(Ctx, name)(self, *args)
        if name == "spin_lock":
            self.preempt_disable()
        elif name == "spin_unlock":
            self.preempt_enable()
        _, seen, value = self._granted
        return value if seen else None


class CoroutineEngine(Engine):
    """`Engine`'s drive loop over coroutine CPUs on a machine without processes."""

    def __init__(self, machine: Machine, gate: g.Gate, max_steps: int = 20_000, memory_model: str = "native") -> None:
        super().__init__(machine, gate, max_steps, memory_model)
        self._cpus: dict[int, greenlet.greenlet] = {}
        self._results: list[object] = []
        self._reports: list[object] = []
        self._errors: dict[int, str] = {}

    # -- the hand-off ----------------------------------------------------------------------
    def _take(self, cpu: int, op: Op, older: int) -> tuple[int, Op]:
        seen, ret = self.model_value(cpu, op, older)
        return self._cpus[cpu].switch((0, seen, ret))  # runs the CPU up to its next post

    def _abort_all(self, active: list[int], pending: dict[int, Op], expected: dict[int, int]) -> dict[int, Op]:
        blocked = {}
        for c in active:
            if c in pending and pending[c].code not in (DONE, ERROR):
                blocked[c] = pending[c]
                self._cpus[c].switch((g.ABORT, False, None))
                pending[c] = Op(DONE, -1, 0, 0)
        return blocked

    def _cpu_body(self, cpu: int, ctx: CoroutineCtx, program: Program) -> None:
        """What `shmkernel.runtime.cpu_process.cpu_main` does with one program."""
        finished = self.ctl.finished + cpu * PERCPU_STRIDE
        try:
            result = program.fn(ctx, program.params)
            self.w[finished] = 1
            ctx.finish()
            self._results[cpu], self._reports[cpu] = result, ctx.report()
        except greenlet.GreenletExit:  # pragma: no cover - collected unfinished
            raise
        except BaseException as e:  # noqa: BLE001 - a CPU oops is reported
            self.w[finished] = 1
            if getattr(e, "quiet", False):
                if isinstance(e, StillAsleep):
                    ctx.finish()
                self._reports[cpu] = ctx.report()
                return
            ctx.abort()
            self._errors[cpu] = short_error(e)

    def _collect(self) -> None:
        """Let every CPU that posted its end return (one switch each)."""
        for cpu, glet in self._cpus.items():
            if not glet.dead:
                glet.switch()
            if not glet.dead:  # pragma: no cover - a program that posts after its end
                raise RunError(f"{self.m.role_name(cpu)} went on after its end")

    # -- one execution ---------------------------------------------------------------------------
    def run(self, programs: list[Program | None], scheduler: Scheduler, trace: bool = False) -> Execution:
        m, w, spec = self.m, self.w, self.gate.spec
        assert spec is not None and m.seg is not None
        m._run_id += 1
        m.reset_run_words(programs)
        w[self.ctl.go] = m._run_id
        active = [c for c, p in enumerate(programs) if p is not None]
        expected = {c: 0 for c in active}  # no sequence numbers: a switch is its own hand-off
        self._results, self._reports = [None] * m.roles, [None] * m.roles
        self._errors = {}
        gate = self.execution_gate(spec, trace, spin=0)
        hub = greenlet.getcurrent()
        self._cpus = {}
        for c in active:
            ctx = CoroutineCtx(m.seg, self.ctl, c, m.cpus, m.counter_names, self.atomics, gate, hub)
            self._cpus[c] = greenlet.greenlet(functools.partial(self._cpu_body, c, ctx, programs[c]))
        self._reset_execution()
        t0 = time.perf_counter()
        pending: dict[int, Op] = {}
        for c in active:
            _, pending[c] = self._cpus[c].switch()  # up to its first post
        steps: list[Step] = []
        try:
            outcome = self._drive(active, pending, steps, scheduler)
        except BaseException:
            self._abort_all(active, pending, expected)
            self._collect()
            raise
        blocked = self._abort_all(active, pending, expected)
        self._collect()
        w[self.ctl.stop] = 1
        if self._errors:
            cpu = min(self._errors)
            raise RunError(f"{m.role_name(cpu)}: {self._errors[cpu]}")
        result = m.result(m._run_id, time.perf_counter() - t0, self._results, self._reports)
        ex = Execution(steps, outcome, result, blocked)
        scheduler.end_execution(ex)
        return ex
