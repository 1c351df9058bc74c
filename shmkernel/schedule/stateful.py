"""``stateful``: every choice expanded, a state explored before not explored again.

No partial-order reduction: at each state every eligible CPU and every
memory-model action (a store commits, a load returns an older value) is
tried, depth first. The engine hands over a key of the whole state (the
model's buffers, coherence orders and views, the memory's variables, each
CPU's history of operations and results, its pending operation, the grace
periods in progress); a state met before is abandoned (``PRUNE``, counted in
``pruned``). CPU programs are deterministic given the values they read and a
revisited state is never on the current path (every step makes progress), so
its every continuation has been or is being explored elsewhere: nothing is
lost. This is the exhaustive search under ``lkmm``, and under ``tso`` and
``weak`` where TruSt (`shmkernel.schedule.trust`) gives way to it (kernel
synchronisation); it is also ``--scheduler stateful`` under any model. States are
compared by a 64-bit hash (two distinct ones collide with probability about
1e-8 at 10^6 states, which would prune a new state).

With a ``preemption_bound`` a choice that preempts a runnable CPU more often
is skipped (``bound_hit``: the search proves nothing then).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from shmkernel.memory.actions import ACTION_BASE
from shmkernel.schedule.drive import PRUNE, Execution, Op, State
from shmkernel.schedule.search import DepthFirstSearch


@dataclass
class _Node:
    eligible: list[int]
    pending: dict[int, Op]
    todo: list[int] = field(default_factory=list)
    chosen: int = -1
    preemptions: int = 0


class StatefulScheduler(DepthFirstSearch):
    name = "stateful"

    def __init__(
        self, max_executions: int = 100_000, preemption_bound: int | None = None, state_cache: bool = True
    ) -> None:
        super().__init__(max_executions, preemption_bound)
        self.visited: set[Hashable] | None = set() if state_cache else None
        self.pruned = 0

    def _backtrack(self) -> bool:
        while self.stack:
            d = len(self.stack) - 1
            node = self.stack[d]
            while node.todo:
                c = node.todo.pop(0)
                if self._allowed(d, node, c):
                    self._take(d, node, c)
                    return True
            self.stack.pop()
        return False

    def _preemptions(self, d: int, node: _Node, c: int) -> int:
        if d == 0:
            return 0
        prev = self.stack[d - 1].chosen
        cpu = c if c < ACTION_BASE else None  # a memory-model action preempts nobody
        extra = 1 if cpu is not None and prev < ACTION_BASE and cpu != prev and prev in node.eligible else 0
        return self.stack[d - 1].preemptions + extra

    def _allowed(self, d: int, node: _Node, c: int) -> bool:
        return self._fits_bound(self._preemptions(d, node, c))

    def _take(self, d: int, node: _Node, c: int) -> int:
        node.chosen = c
        node.preemptions = self._preemptions(d, node, c)
        return c

    def next_cpu(self, state: State) -> int:
        replayed = self._replayed(state)
        if replayed is not None:
            return replayed
        d = len(state.steps)
        if self.visited is not None and state.key is not None:
            k = state.key()
            if k in self.visited:
                self.pruned += 1
                return PRUNE
            self.visited.add(k)
        node = _Node(list(state.eligible), dict(state.pending))
        order = list(state.eligible)
        if state.current in order:  # the running CPU first: the first execution has few switches
            order.remove(state.current)
            order.insert(0, state.current)
        self.stack.append(node)
        while order:
            c = order.pop(0)
            if self._allowed(d, node, c):
                node.todo = order
                return self._take(d, node, c)
        self.stack.pop()
        return PRUNE

    def end_execution(self, execution: Execution) -> None:
        del self.stack[len(execution.steps) :]
