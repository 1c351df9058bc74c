"""The in-process engine: scheduled executions of programs held in this process.

The process engine grants each step to a real CPU process at its gate, which
is what the workloads need (their kernel code runs unchanged) but costs tens
of microseconds a step. Programs that are plain state machines (the random
programs of the explorer's differential tests, `shmkernel.schedule.randprog`)
run here instead, through the very same drive loop, memory models and
schedulers, about a hundred times faster: memory is a Python list, and a
program is any object with ``start() -> Op`` and ``step(result) -> Op`` (its
next operation, ``done`` at the end). Operations are carried out as in
scheduled mode: by the memory model in force, or sequentially consistently
on the list for ``native``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shmkernel.memory.models import CLASS as MODEL_CLASS
from shmkernel.memory.models import SCModel
from shmkernel.schedule.drive import Driver, Execution, Op, Scheduler, Step
from shmkernel.schedule.ops import DONE, ERROR, NAME


class InProcessProgram(Protocol):
    def start(self) -> Op: ...
    def step(self, result: int) -> Op: ...


@dataclass(frozen=True)
class InProcessResult:
    memory: tuple[int, ...]
    programs: Sequence[Any]


class InProcessEngine(Driver):
    def __init__(self, nwords: int, roles: int, memory_model: str = "native", max_steps: int = 10_000) -> None:
        self.mem = [0] * nwords
        super().__init__(self.mem, roles, memory_model, max_steps)
        self._sc = SCModel(self.mem, roles)
        self._progs: Sequence[Any] = ()

    def _memory_key(self) -> Hashable:
        return tuple(self.mem)

    def _take(self, cpu: int, op: Op, older: int) -> tuple[int, Op]:
        seen, ret = self.model_value(cpu, op, older)
        name = NAME[op.code]
        if not seen and name in MODEL_CLASS:
            ret = self._sc.cpu_op(cpu, name, op.addr, op.a1, op.a2)
        result = 0 if ret is None else int(ret)
        return result, self._progs[cpu].step(result)

    def run(
        self, programs: Sequence[InProcessProgram | None], scheduler: Scheduler, init: Sequence[int] | None = None
    ) -> Execution:
        """One execution of fresh ``programs`` (one per CPU; None: idle) from memory ``init``."""
        self.mem[:] = list(init) if init is not None else [0] * len(self.mem)
        self._reset_execution()
        self._progs = programs
        active = [c for c, p in enumerate(programs) if p is not None]
        pending = {c: programs[c].start() for c in active}  # type: ignore[union-attr]
        steps: list[Step] = []
        outcome = self._drive(active, pending, steps, scheduler)
        blocked = {c: op for c, op in pending.items() if op.code not in (DONE, ERROR)}
        ex = Execution(steps, outcome, InProcessResult(tuple(self.mem), programs), blocked)
        scheduler.end_execution(ex)
        return ex
