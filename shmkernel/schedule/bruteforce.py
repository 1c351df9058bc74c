"""``bruteforce``: every schedule, nothing remembered, nothing reduced.

The oracle the reductions are checked against (`tests/test_explorer.py`,
`scripts/bench_explorer.py`): a depth-first enumeration of every sequence of
choices the engine offers (CPUs and memory-model actions alike). It is kept
deliberately naive and separate from `dpor` and `stateful`: the number of
executions it runs is the number of schedules, so it is for small programs.

With ``sleep_sets=True`` it is the classic full search with sleep sets
(Godefroid 1996): every eligible CPU is still tried at every state, but one
whose next step was tried already at an ancestor (and is independent of
everything since) is not, and an execution whose every CPU is asleep is
abandoned. Its complete executions are then exactly one per Mazurkiewicz
trace, which makes it the independent count of a program's traces that the
benchmarks hold the DPOR against (native/sc only).
"""

from __future__ import annotations

from shmkernel.schedule.drive import PRUNE, Execution, Op, State
from shmkernel.schedule.hb import step_dependence
from shmkernel.schedule.ops import dependence, dependent
from shmkernel.schedule.search import DepthFirstSearch


class BruteForceScheduler(DepthFirstSearch):
    name = "bruteforce"

    def __init__(self, max_executions: int = 1_000_000, sleep_sets: bool = False) -> None:
        super().__init__(max_executions)
        self.sleep_sets = sleep_sets
        self.path: list[int] = []  # the choice taken at each depth
        self.options: list[list[int]] = []  # the choices not yet taken at each depth
        self.pending: list[dict[int, Op]] = []  # each depth's pending operations
        self.sleep: list[dict[int, Op]] = []  # each depth's sleep set (tried siblings included)
        self.sleep_blocked = 0

    def _backtrack(self) -> bool:
        while self.options and not self.options[-1]:
            for stack in (self.options, self.path, self.pending, self.sleep):
                stack.pop()
        if not self.options:
            return False
        d = len(self.path) - 1
        if self.sleep_sets:  # the sibling just explored sleeps for the next ones
            self.sleep[d][self.path[d]] = self.pending[d][self.path[d]]
        self.path[d] = self.options[d].pop(0)
        return True

    def next_cpu(self, state: State) -> int:
        d = len(state.steps)
        if d < len(self.path):
            return self.path[d]
        sleep = self._inherited_sleep(state, d)
        awake = self._order([c for c in state.eligible if c not in sleep], state.current)
        if not awake:
            self.sleep_blocked += 1
            return PRUNE
        self.path.append(awake[0])
        self.options.append(awake[1:])
        self.pending.append(dict(state.pending))
        self.sleep.append(sleep)
        return awake[0]

    def _order(self, awake: list[int], current: int | None) -> list[int]:
        """The order the choices at a new state are tried in: as the engine lists them."""
        return awake

    def _inherited_sleep(self, state: State, d: int) -> dict[int, Op]:
        """The sleep set of a new state: the parent's, less what the last step woke."""
        if not self.sleep_sets or d == 0:
            return {}
        last = state.steps[-1]
        ld = step_dependence(last)
        return {
            q: op
            for q, op in self.sleep[d - 1].items()
            if q != last.cpu and not dependent(ld, last.op.addr, dependence(op.code), op.addr)
        }

    def end_execution(self, execution: Execution) -> None:
        n = len(execution.steps)
        for stack in (self.options, self.path, self.pending, self.sleep):
            del stack[n:]
