"""The drive loop of a scheduled execution, whoever runs the CPUs' programs.

Each step: compute which CPUs may move (their pending operation is enabled)
and which memory-model actions are possible, ask the scheduler, carry the
choice out, record it. `Driver` holds that loop, the enabledness rules, the
grace-period and stop_machine bookkeeping, the memory model and the state
key; a subclass says how a CPU takes its step: `shmkernel.schedule.engine`
grants it to a real CPU process at its gate, `shmkernel.schedule.inprocess`
advances a program held in this process (the explorer's differential tests
run thousands of small programs that way).

Kernel synchronisation (grace periods, stop_machine) is
`shmkernel.schedule.kernel_sync`'s; when a posted operation may be granted is
`shmkernel.schedule.ops.enabled`'s, beside the op table.
"""

from __future__ import annotations

import bisect
import functools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from shmkernel.errors import RunError
from shmkernel.memory.actions import (
    ACTION_BASE,
    COMMIT,
    GRAPH,
    PROMISE,
    decode_action,
    decode_promise,
    graph_choice_id,
    read_older_id,
)
from shmkernel.memory.models import ACQ_READ, READ
from shmkernel.memory.models import CLASS as MODEL_CLASS
from shmkernel.memory.registry import make_model
from shmkernel.runtime.signals import raise_pending
from shmkernel.schedule.kernel_sync import KernelSync
from shmkernel.schedule.ops import BLOCKING, DONE, ERROR, MEMORY, NAME, OPS, Op, enabled


class Step(NamedTuple):
    cpu: int  # the CPU (or, for a memory-model action, the action id)
    op: Op
    result: int
    choice: int = -1  # what the scheduler chose, when it is not just ``cpu``


ENDED = frozenset((DONE, ERROR))
#: the codes `enabled` always allows (checked first: the drive loop's hottest test)
NON_BLOCKING = frozenset(code for code, (_, acc) in enumerate(OPS) if acc not in BLOCKING and code not in ENDED)

#: what a scheduler returns to abandon the execution here (a state it has explored
#: before, or one whose every continuation is covered by another execution)
PRUNE = -2


@dataclass
class State:
    """What a scheduler may look at when it chooses."""

    eligible: list[int]
    current: int | None
    pending: dict[int, Op]
    steps: list[Step]
    #: the whole state (memory model, memory, each CPU's history, pending ops,
    #: grace periods in progress), for explorers that cache states; computed only
    #: when called, and only during next_cpu
    key: Callable[[], Hashable] | None = None
    #: the memory model (a `shmkernel.memory.graph.GraphModel` for the graph searches,
    #: which read the graph to plan their executions); None when there is none
    model: Any = None


class Scheduler(Protocol):
    def new_execution(self) -> bool: ...
    def next_cpu(self, state: State) -> int: ...
    def end_execution(self, execution: Execution) -> None: ...


@dataclass
class Execution:
    steps: list[Step]
    #: "ok", "deadlock", "livelock", "pruned" (abandoned: a state explored before,
    #: or every continuation covered elsewhere)
    outcome: str
    result: Any = None
    blocked: dict[int, Op] = field(default_factory=dict)

    @property
    def choices(self) -> list[int]:
        return [s.cpu if s.choice < 0 else s.choice for s in self.steps]


class Driver:
    """The drive loop; subclasses implement `_take`, `_preempt`, `_qs`, `_memory_key`.

    It is also the `shmkernel.schedule.ops.Machinery` the enabledness rules read."""

    def __init__(self, words: Any, roles: int, memory_model: str, max_steps: int, sm_req: int | None = None) -> None:
        self.w = words
        self.roles = roles
        self.max_steps = max_steps
        self.memory_model = memory_model
        self.model = make_model(memory_model, words, roles)
        self.graph = False
        #: the search asks for RCU-sched as memory events (`shmkernel.schedule.rcu_memory`);
        #: it takes effect under a graph model only
        self.rcu_memory = False
        self.rcu_sections = -1  # the first section word (the gate's), when there is a gate
        #: an outermost preempt_enable()'s preemption point is a step of its own (a search that
        #: met a stop_machine asks: else it runs with the CPU's step before it, and a stop
        #: requested after that step could never park the CPU there)
        self.preemption_steps = False

        self.sm_req = sm_req
        self.steps_total = 0
        self.step_seconds = 0.0
        self.sync = KernelSync(self._preempt, self._qs)

    def use_graph_model(self) -> None:
        """Keep the memory model as an execution graph (`shmkernel.memory.graph`):
        the state a stateful search caches is then the graph, not the machine."""
        from shmkernel.memory.graph_lkmm import make_graph_model

        # native is sequentially consistent step by step: its graph is sc's
        name = "sc" if self.memory_model == "native" else self.memory_model
        self.model = make_graph_model(self.w, self.roles, name)
        self.graph = True

    @property
    def rcu_as_memory(self) -> bool:
        """Do grace periods, preempt-disabled sections and context switches run as memory
        events (the graph searches, once a search asked: `TrustScheduler` meets one)?"""
        return self.graph and self.rcu_memory

    @property
    def wants_deps(self) -> bool:
        """Do the CPUs track the loads their values came from? Only for a model that
        allows load buffering and so needs dependencies (the LKMM graph)."""
        return self.graph and getattr(self.model, "wants_deps", False)

    def use_machine_model(self) -> None:
        """Back to the operational model (trust gave way under lkmm, whose graph model
        has no kernel synchronisation: `shmkernel.schedule.searches.trust_search`)."""
        self.model = make_model(self.memory_model, self.w, self.roles)
        self.graph = False

    # -- what a subclass provides -----------------------------------------------------------------
    def _take(self, cpu: int, op: Op, older: int) -> tuple[int, Op]:
        """Let ``cpu`` take its pending step ``op`` (a load returning the value
        ``older`` writes behind, under a model); return (result, its next op)."""
        raise NotImplementedError

    def _preempt(self, cpu: int) -> int:
        """The CPU's preempt count now (0: not in a read-side section)."""
        return 0

    def _qs(self, cpu: int) -> int:
        """How many quiescent states the CPU has passed (grows only)."""
        return 0

    def _memory_key(self) -> Hashable:
        raise NotImplementedError

    # -- the Machinery the enabledness rules read -----------------------------------------------------
    def word(self, addr: int) -> int:
        return self.w[addr]

    def stop_request(self) -> int | None:
        return None if self.sm_req is None else self.w[self.sm_req]

    def preempt(self, cpu: int) -> int:
        return self._preempt(cpu)

    def grace_period_over(self, cpu: int) -> bool:
        return self.sync.over(cpu)

    def awaited(self, cpu: int, op: Op) -> bool:
        """An awaiting read (`ops.Access.AWAIT`) may go once it has a way to read another
        value than its argument: the model's ways (a graph's are only those), else the word."""
        if self.graph:
            return bool(self.model.ways(cpu, NAME[op.code], op.addr, op.a1, op.a2))
        return self.w[op.addr] != op.a1

    # -- state key ---------------------------------------------------------------------------------------
    def _state_key(self, pending: dict[int, Op], histories: list[int]) -> Hashable:
        model = self.model.state_key() if self.model is not None else None
        gp = self.sync.key()
        # 64-bit hashes: two distinct states collide with probability ~n^2/2^65 (1e-8 at 10^6 states)
        return hash((model, self._memory_key(), tuple(sorted(pending.items())), tuple(histories), gp))

    # -- the loop -----------------------------------------------------------------------------------------
    def _reset_execution(self) -> None:
        self.sync.reset()
        if self.rcu_sections >= 0:  # every CPU starts outside any section (the model wrote them back)
            for a in range(self.rcu_sections, self.rcu_sections + self.roles):
                self.w[a] = 0
        if self.model is not None:
            self.model.reset()

    def _drive(self, active: list[int], pending: dict[int, Op], steps: list[Step], scheduler: Scheduler) -> str:
        current: int | None = None
        outcome = "ok"
        t0 = time.perf_counter()
        model = self.model
        # a scheduler that picks the graph's ways itself (trust) gets each CPU's memory step
        # once (gN.0) and names the way it takes: the ways of the CPUs it does not choose
        # are never computed (under lkmm each is a check of the LKMM's axioms)
        lazy = self.graph and getattr(scheduler, "picks_ways", False)
        if self.wants_deps:
            model.pending_ops = pending  # each new event's dependencies: its CPU's pending op's
        histories = [0] * (max(active) + 1 if active else 0)  # per CPU: a hash of its (op, result) sequence
        # Who may move is kept step to step, not recomputed over every CPU: only the CPU
        # that stepped changes its pending op, so `ready` (a non-blocking op: always
        # enabled) changes by that CPU alone, and only the few CPUs in `waiting` (a lock,
        # a park, a grace period: enabledness that reads memory) are asked again. With
        # 64 CPUs a full scan was most of a step's cost. Both lists stay in CPU order.
        ready = [c for c in active if pending[c].code in NON_BLOCKING]
        waiting = [c for c in active if pending[c].code not in NON_BLOCKING and pending[c].code not in ENDED]
        while True:
            raise_pending()  # a Ctrl-C or SIGTERM that came during the step: stop here
            live = bool(ready or waiting)
            if waiting:
                now = [c for c in waiting if enabled(c, pending[c], pending, self)]
                eligible = sorted(ready + now) if now else ready[:]
            else:
                eligible = ready[:]
            if model is not None:
                eligible = self._model_choices(eligible, pending, lazy)
            if not eligible:
                if live:
                    outcome = "deadlock"
                break
            if len(steps) >= self.max_steps:
                outcome = "livelock"
                break
            # the key reads pending and histories as they are now: valid during next_cpu only
            key = functools.partial(self._state_key, pending, histories)
            c = scheduler.next_cpu(State(eligible, current, pending, steps, key, model))
            if c == PRUNE:
                outcome = "pruned"
                break
            if c not in eligible and not another_way(c, eligible, lazy):
                raise RunError(f"scheduler chose {c}, which is not eligible (eligible: {eligible})")
            choice, older = -1, 0
            if c >= ACTION_BASE:
                assert model is not None
                kind, cpu, arg = decode_action(c)
                if kind == COMMIT:
                    kind, addr, value = model.do_action(c)
                    steps.append(Step(c, Op(MEMORY, addr, kind, 0), value))
                    continue
                if kind == PROMISE:  # a load reads a write still to come (load buffering)
                    _, writer, value = decode_promise(c)
                    model.promise_next(cpu, writer, value)
                    arg = 0
                choice, c, older = c, cpu, arg  # a load that returns an older value
            op = pending[c]
            self.sync.granted(c, op, pending, model)
            result, nxt = self._take(c, op, older)
            steps.append(Step(c, op, result, choice))
            histories[c] = hash((histories[c], op, result))
            pending[c] = nxt
            if op.code in NON_BLOCKING:
                ready.remove(c)
            else:
                waiting.remove(c)
            if nxt.code in NON_BLOCKING:
                bisect.insort(ready, c)
            elif nxt.code not in ENDED:
                bisect.insort(waiting, c)
            self.sync.stepped(c, nxt, model)
            current = c
        self.step_seconds += time.perf_counter() - t0
        self.steps_total += len(steps)
        return outcome

    def _model_choices(self, eligible: list[int], pending: dict[int, Op], lazy: bool = False) -> list[int]:
        """The eligible CPUs with the memory model's choices: the graph model's ways to
        add each memory operation (``gN.K``, instead of the CPU), or the machine's older
        loads and store commits (beside the CPUs)."""
        model = self.model
        assert model is not None
        if self.graph:
            ways = []
            for c in eligible:
                op = pending[c]
                name = NAME[op.code]
                if name in MODEL_CLASS:
                    n = 1 if lazy else model.op_choices(c, name, op.addr, op.a1, op.a2)
                    ways += [graph_choice_id(c, k) for k in range(n)]
                else:
                    ways.append(c)
            return ways
        out = list(eligible)
        for c in eligible:
            op = pending[c]
            cls = MODEL_CLASS.get(NAME[op.code])
            if cls == READ or (cls == ACQ_READ and model.acquire_choices):
                out += [read_older_id(c, k) for k in range(1, model.read_choices(c, op.addr))]
        return out + model.actions()

    def model_value(self, cpu: int, op: Op, older: int) -> tuple[bool, Any]:
        """Under a memory model, carry out ``cpu``'s memory operation in the model:
        (True, the value it returns); (False, None) for an operation the model does not see."""
        name = NAME[op.code]
        if self.model is None or name not in MODEL_CLASS:
            return False, None
        return True, self.model.cpu_op(cpu, name, op.addr, op.a1, op.a2, older)


def another_way(choice: int, eligible: list[int], lazy: bool = False) -> bool:
    """Is ``choice`` a way of a CPU whose memory step is eligible (gN.0) that the list
    does not name: a promise (never listed: its write is not there yet), or, for a
    scheduler that names its ways (``lazy``), any graph way gN.K?"""
    if choice < ACTION_BASE:
        return False
    kind, cpu, _ = decode_action(choice)
    return (kind == PROMISE or (lazy and kind == GRAPH)) and graph_choice_id(cpu, 0) in eligible
