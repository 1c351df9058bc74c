"""Drive one scheduled execution: ask the scheduler, grant, record the step.

The CPUs are the Machine's own processes (started once); an execution is
one `Machine.begin` with `ScheduledCtx`, so thousands of executions reuse
them. The engine knows each CPU's *pending* operation (posted at its gate
before it is granted), which is what eligibility and DPOR need.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

import numpy as np

from shmkernel.errors import RunError
from shmkernel.hw.atomics import Atomics
from shmkernel.memory.layout import PERCPU_STRIDE
from shmkernel.memory.models import (
    ACQ_READ,
    ACTION_BASE,
    COMMIT,
    READ,
    decode_action,
    make_model,
    read_older_id,
)
from shmkernel.memory.models import CLASS as MODEL_CLASS
from shmkernel.runtime.machine import Machine, Program, RunResult
from shmkernel.schedule import gate as g
from shmkernel.schedule.ops import ACCESS, CODE, DONE, ERROR, MEMORY, NAME, Access
from shmkernel.schedule.sctx import ScheduledCtx


class Op(NamedTuple):
    """A pending operation as posted at a gate (a tuple: built once per step)."""

    code: int
    addr: int
    a1: int
    a2: int


class Step(NamedTuple):
    cpu: int  # the CPU (or, for a memory-model action, the action id)
    op: Op
    result: int
    choice: int = -1  # what the scheduler chose, when it is not just ``cpu``


#: what a scheduler returns to abandon the execution here (a state it has explored before)
PRUNE = -2


@dataclass
class State:
    """What a scheduler may look at when it chooses."""

    eligible: list[int]
    current: int | None
    pending: dict[int, Op]
    steps: list[Step]
    #: the whole state (memory model, memory, each CPU's history, pending ops), for
    #: explorers that cache states; computed only when called, and only during next_cpu
    key: Callable[[], Hashable] | None = None


class Scheduler(Protocol):
    def new_execution(self) -> bool: ...
    def next_cpu(self, state: State) -> int: ...
    def end_execution(self, execution: Execution) -> None: ...


@dataclass
class Execution:
    steps: list[Step]
    outcome: str  # "ok", "deadlock", "livelock", "pruned" (abandoned at an explored state)
    result: RunResult | None = None
    blocked: dict[int, Op] = field(default_factory=dict)

    @property
    def choices(self) -> list[int]:
        return [s.cpu if s.choice < 0 else s.choice for s in self.steps]


class Engine:
    def __init__(self, machine: Machine, gate: g.Gate, max_steps: int = 20_000,
                 memory_model: str = "native") -> None:
        assert machine.seg is not None and gate.spec is not None
        self.m = machine
        self.gate = gate
        self.w = machine.seg.words
        self.atomics = Atomics(machine.seg.map, machine.seg.layout.nwords)
        self.max_steps = max_steps
        self.ctl = machine.ctl
        self.steps_total = 0
        self.step_seconds = 0.0
        self.model = make_model(memory_model, self.w, machine.roles)
        # memory the state cache compares: the variables, not the gate's or the run's own words
        # (the run epoch, the event counters and the free-mode quiescent-state counts grow
        # across executions; scheduled synchronize_sched waits on the gate's preempt words)
        self._state_words = np.array(machine.seg.layout.state_words(("sched.", "rt.go", "rt.stop",
                                                                     "rt.counters", "rt.qs")), dtype=np.intp)

    def _state_key(self, pending: dict[int, Op], histories: list[int]) -> Hashable:
        assert self.m.seg is not None
        mem = hash(self.m.seg.np[self._state_words].tobytes())
        model = self.model.state_key() if self.model is not None else None
        # 64-bit hashes: two distinct states collide with probability ~n^2/2^65 (1e-8 at 10^6 states)
        return hash((model, mem, tuple(sorted(pending.items())), tuple(histories)))

    def _slot(self, cpu: int) -> int:
        assert self.gate.spec is not None
        return self.gate.spec.slot(cpu)

    def _check(self) -> None:
        self.m._fail_on_death()

    def _wait_post(self, cpu: int, seq: int) -> None:
        spec = self.gate.spec
        assert spec is not None
        deadline = time.monotonic() + self.m.stop_grace

        def check() -> None:  # a dead CPU, or a stalled one (SIGSTOP), ends the run
            self.m._fail_on_death()
            if time.monotonic() > deadline:
                raise RunError(f"{self.m.role_name(cpu)} did not take its step within "
                               f"{self.m.stop_grace:g} s (stalled?)")

        g.wait_word(self.w, self.atomics, self._slot(cpu) + g.SEQ, seq, spec.coord_sleeping,
                    self.gate.coord_sem, spec.spin, check)

    def _read_op(self, cpu: int) -> Op:
        s, w = self._slot(cpu), self.w
        return Op(w[s + g.KIND], w[s + g.ADDR], w[s + g.ARG1], w[s + g.ARG2])

    def _grant(self, cpu: int, seq: int, choice: int = 0) -> None:
        s = self._slot(cpu)
        self.w[s + g.CHOICE] = choice
        g.publish(self.w, self.atomics, s + g.GRANT, seq, s + g.SLEEPING, self.gate.cpu_sem_objs[cpu])

    def enabled(self, cpu: int, op: Op, pending: dict[int, Op]) -> bool:
        acc = ACCESS[op.code]
        w = self.w
        if acc is Access.LOCK:
            return w[op.addr] == 0
        if acc is Access.PARK:
            return w[self.ctl.sm_req] != op.a1
        if acc is Access.SM_WAIT:
            return all(self._parked_or_done(o, p, op.a1, pending) for o, p in pending.items() if o != cpu)
        if acc is Access.QS_WAIT:
            return all(p.code in (DONE, ERROR) or w[self._slot(o) + g.PREEMPT] == 0
                       for o, p in pending.items() if o != cpu)
        return True

    def _parked_or_done(self, cpu: int, p: Op, ep: int, pending: dict[int, Op]) -> bool:
        if p.code in (DONE, ERROR):
            return True
        if ACCESS[p.code] is Access.PARK and p.a1 == ep:
            return True
        # a task asleep on a mutex is not running: stop_machine does not wait for it
        return p.code == CODE["mutex_lock"] and self.w[p.addr] != 0 and self.w[self._slot(cpu) + g.PREEMPT] == 0

    def run(self, programs: list[Program | None], scheduler: Scheduler, trace: bool = False) -> Execution:
        m, w = self.m, self.w
        spec = self.gate.spec
        assert spec is not None
        active = [c for c, p in enumerate(programs) if p is not None]
        expected = {c: w[self._slot(c) + g.SEQ] + 1 for c in active}
        factory = functools.partial(ScheduledCtx, gate=replace(spec, trace=trace, model=self.model is not None))
        if self.model is not None:
            self.model.reset()
        m.begin(programs, factory)
        pending: dict[int, Op] = {}
        for c in active:
            self._wait_post(c, expected[c])
            pending[c] = self._read_op(c)
        steps: list[Step] = []
        try:
            outcome = self._drive(active, pending, expected, steps, scheduler)
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

    def _model_op(self, model: Any, cpu: int, op: Op, older: int = 0) -> None:
        """Let the memory model carry out ``cpu``'s operation; leave the result in its slot."""
        name = NAME[op.code]
        if name not in MODEL_CLASS:
            return
        ret = model.cpu_op(cpu, name, op.addr, op.a1, op.a2, older)
        s = self._slot(cpu)
        if ret is None:
            self.w[s + g.VKIND] = g.VNONE
        else:
            self.w[s + g.VKIND] = g.VBOOL if isinstance(ret, bool) else g.VINT
            self.w[s + g.VALUE] = int(ret)

    def _abort_all(self, active: list[int], pending: dict[int, Op], expected: dict[int, int]) -> dict[int, Op]:
        blocked = {}
        for c in active:
            if c in pending and pending[c].code not in (DONE, ERROR):
                blocked[c] = pending[c]
                self._grant(c, expected[c], g.ABORT)
                pending[c] = Op(DONE, -1, 0, 0)
        return blocked

    def _drive(self, active: list[int], pending: dict[int, Op], expected: dict[int, int],
               steps: list[Step], scheduler: Scheduler) -> str:
        w = self.w
        current: int | None = None
        outcome = "ok"
        t0 = time.perf_counter()
        model = self.model
        acq_choices = model is not None and model.acquire_choices
        histories = [0] * (max(active) + 1 if active else 0)  # per CPU: a hash of its (op, result) sequence
        while True:
            live = [c for c in active if pending[c].code not in (DONE, ERROR)]
            eligible = [c for c in live if self.enabled(c, pending[c], pending)]
            if model is not None:
                for c in list(eligible):
                    op = pending[c]
                    cls = MODEL_CLASS.get(NAME[op.code])
                    if cls == READ or (cls == ACQ_READ and acq_choices):
                        n = model.read_choices(c, op.addr)
                        eligible += [read_older_id(c, k) for k in range(1, n)]
                eligible += model.actions()
            if not eligible:
                if live:
                    outcome = "deadlock"
                break
            if len(steps) >= self.max_steps:
                outcome = "livelock"
                break
            # the key reads pending and histories as they are now: valid during next_cpu only
            key = functools.partial(self._state_key, pending, histories)
            c = scheduler.next_cpu(State(eligible, current, pending, steps, key))
            if c == PRUNE:
                outcome = "pruned"
                break
            if c not in eligible:
                raise RunError(f"scheduler chose {c}, which is not eligible (eligible: {eligible})")
            choice, older = -1, 0
            if c >= ACTION_BASE:
                assert model is not None
                kind, cpu, arg = decode_action(c)
                if kind == COMMIT:
                    kind, addr, value = model.do_action(c)
                    steps.append(Step(c, Op(MEMORY, addr, kind, 0), value))
                    continue
                choice, c, older = c, cpu, arg  # a load that returns an older value
            op = pending[c]
            if model is not None:
                self._model_op(model, c, op, older)
            self._grant(c, expected[c])
            expected[c] += 1
            self._wait_post(c, expected[c])
            result = w[self._slot(c) + g.RESULT]
            steps.append(Step(c, op, result, choice))
            histories[c] = hash((histories[c], op, result))
            pending[c] = self._read_op(c)
            current = c
        self.step_seconds += time.perf_counter() - t0
        self.steps_total += len(steps)
        return outcome


def percpu_slot(base: int, cpu: int) -> int:
    return base + cpu * PERCPU_STRIDE


def op_name(code: int) -> str:
    from shmkernel.schedule.ops import NAME

    return NAME[code]


def describe_args(op: Op) -> dict[str, Any]:
    return {"a1": op.a1, "a2": op.a2}
