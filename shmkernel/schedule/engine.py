"""The process engine: a scheduled execution on the Machine's own CPU processes.

The CPUs are the Machine's own processes (started once); an execution is
one `Machine.begin` with `ScheduledCtx`, so thousands of executions reuse
them. The engine knows each CPU's *pending* operation (posted at its gate
before it is granted), which is what eligibility and DPOR need; the loop
itself (`shmkernel.schedule.drive.Driver`) is shared with the in-process
engine.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Hashable
from dataclasses import replace
from typing import Any

import numpy as np

from shmkernel.errors import RunError
from shmkernel.hw.atomics import Atomics
from shmkernel.memory.layout import PERCPU_STRIDE
from shmkernel.runtime.machine import Machine, Program
from shmkernel.runtime.signals import raise_pending
from shmkernel.schedule import gate as g
from shmkernel.schedule.deps import from_window
from shmkernel.schedule.drive import PRUNE, Driver, Execution, Op, Scheduler, State, Step
from shmkernel.schedule.ops import DONE, ERROR
from shmkernel.schedule.sctx import ScheduledCtx

__all__ = ["PRUNE", "Engine", "Execution", "Op", "Scheduler", "State", "Step"]


class Engine(Driver):
    """Drives the Machine's own CPU processes through their gates."""

    def __init__(self, machine: Machine, gate: g.Gate, max_steps: int = 20_000, memory_model: str = "native") -> None:
        assert machine.seg is not None and gate.spec is not None
        self.m = machine
        self.gate = gate
        self.atomics = Atomics(machine.seg.map, machine.seg.layout.nwords)
        self.ctl = machine.ctl
        super().__init__(machine.seg.words, machine.roles, memory_model, max_steps, sm_req=machine.ctl.sm_req)
        self.rcu_sections = gate.sections
        # memory the state cache compares: the variables, not the gate's or the run's own words
        # (the run epoch, the event counters and the quiescent-state counts grow
        # across executions; the gate's words are the scheduler's own)
        self._state_words = np.array(
            machine.seg.layout.state_words(("sched.", "rt.go", "rt.stop", "rt.counters", "rt.qs")), dtype=np.intp
        )
        self._expected: dict[int, int] = {}
        self._deps = False  # this execution's CPUs post their dependencies

    def _memory_key(self) -> Hashable:
        assert self.m.seg is not None
        return hash(self.m.seg.np[self._state_words].tobytes())

    def _preempt(self, cpu: int) -> int:
        return self.w[self._slot(cpu) + g.PREEMPT]

    def _qs(self, cpu: int) -> int:
        return self.w[self.ctl.qs + cpu * PERCPU_STRIDE]

    def _slot(self, cpu: int) -> int:
        assert self.gate.spec is not None
        return self.gate.spec.slot(cpu)

    def _wait_post(self, cpu: int, seq: int) -> None:
        spec = self.gate.spec
        assert spec is not None
        deadline = time.monotonic() + self.m.stop_grace

        def check() -> None:  # a dead CPU, or a stalled one (SIGSTOP), ends the run
            raise_pending()
            self.m._fail_on_death()
            if time.monotonic() > deadline:
                raise RunError(
                    f"{self.m.role_name(cpu)} did not take its step within {self.m.stop_grace:g} s (stalled?)"
                )

        g.wait_word(
            self.w,
            self.atomics,
            self._slot(cpu) + g.SEQ,
            seq,
            spec.coord_sleeping,
            self.gate.coord_sem,
            self.gate.spin,
            check,
        )

    def _read_op(self, cpu: int) -> Op:
        s, w = self._slot(cpu), self.w
        if not self._deps:
            return Op(w[s + g.KIND], w[s + g.ADDR], w[s + g.ARG1], w[s + g.ARG2])
        n = w[s + g.NMOPS]
        deps = (from_window(w[s + g.ADEP], n), from_window(w[s + g.DDEP], n), from_window(w[s + g.CDEP], n))
        return Op(w[s + g.KIND], w[s + g.ADDR], w[s + g.ARG1], w[s + g.ARG2], deps)

    def _grant(self, cpu: int, seq: int, choice: int = 0) -> None:
        s = self._slot(cpu)
        self.w[s + g.CHOICE] = choice
        g.publish(self.w, self.atomics, s + g.GRANT, seq, s + g.SLEEPING, self.gate.cpu_sem_objs[cpu])

    def _take(self, cpu: int, op: Op, older: int) -> tuple[int, Op]:
        seen, ret = self.model_value(cpu, op, older)
        if seen:  # the model computed the result: leave it in the CPU's slot
            s = self._slot(cpu)
            if ret is None:
                self.w[s + g.VKIND] = g.VNONE
            else:
                self.w[s + g.VKIND] = g.VBOOL if isinstance(ret, bool) else g.VINT
                self.w[s + g.VALUE] = int(ret)
        exp = self._expected
        self._grant(cpu, exp[cpu])
        exp[cpu] += 1
        self._wait_post(cpu, exp[cpu])
        return self.w[self._slot(cpu) + g.RESULT], self._read_op(cpu)

    def execution_gate(self, spec: g.GateSpec, trace: bool, **more: Any) -> g.GateSpec:
        """What this execution's CPUs are told: the gate, and how the search runs them."""
        return replace(
            spec,
            trace=trace,
            model=self.model is not None,
            deps=self.wants_deps,
            rcu=self.rcu_as_memory,
            preemption_steps=self.preemption_steps,
            **more,
        )

    def run(self, programs: list[Program | None], scheduler: Scheduler, trace: bool = False) -> Execution:
        m, w = self.m, self.w
        spec = self.gate.spec
        assert spec is not None
        active = [c for c, p in enumerate(programs) if p is not None]
        self._expected = expected = {c: w[self._slot(c) + g.SEQ] + 1 for c in active}
        self._deps = self.wants_deps
        factory = functools.partial(ScheduledCtx, gate=self.execution_gate(spec, trace))
        self._reset_execution()
        m.begin(programs, factory)
        pending: dict[int, Op] = {}
        for c in active:
            self._wait_post(c, expected[c])
            pending[c] = self._read_op(c)
        steps: list[Step] = []
        try:
            outcome = self._drive(active, pending, steps, scheduler)
        except BaseException:
            # e.g. hypothesis ends an example mid-draw: unwind every CPU, then re-raise
            self._abort_all(active, pending, expected)
            try:
                m.wait_done(timeout=10.0)
            except RunError:
                pass
            raise
        blocked = self._abort_all(active, pending, expected)
        result = m.wait_done(timeout=self.m.stop_grace)  # every CPU posted its end: only a stall waits
        ex = Execution(steps, outcome, result, blocked)
        scheduler.end_execution(ex)
        return ex

    def _abort_all(self, active: list[int], pending: dict[int, Op], expected: dict[int, int]) -> dict[int, Op]:
        blocked = {}
        for c in active:
            if c in pending and pending[c].code not in (DONE, ERROR):
                blocked[c] = pending[c]
                self._grant(c, expected[c], g.ABORT)
                pending[c] = Op(DONE, -1, 0, 0)
        return blocked
