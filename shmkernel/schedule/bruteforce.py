"""``bruteforce``: every schedule, nothing remembered, nothing reduced.

The oracle the reductions are checked against (`tests/test_explorer.py`,
`scripts/bench_explorer.py`): a depth-first enumeration of every sequence of
choices the engine offers (CPUs and memory-model actions alike). It is kept
deliberately naive and separate from `dpor` and `stateful`: the number of
executions it runs is the number of schedules, so it is for small programs.
"""

from __future__ import annotations

from shmkernel.schedule.drive import Execution, State


class BruteForceScheduler:
    name = "bruteforce"
    complete_search = True

    def __init__(self, max_executions: int = 1_000_000) -> None:
        self.left = max_executions
        self.path: list[int] = []  # the choice taken at each depth
        self.options: list[list[int]] = []  # the choices not yet taken at each depth
        self.started = False
        self.exhausted = False
        self.bound_hit = False
        self.executions = 0

    def new_execution(self) -> bool:
        if self.left <= 0:
            return False
        if self.started:
            while self.options and not self.options[-1]:
                self.options.pop()
                self.path.pop()
            if not self.options:
                self.exhausted = True
                return False
            self.path[-1] = self.options[-1].pop(0)
        self.started = True
        self.left -= 1
        self.executions += 1
        return True

    def next_cpu(self, state: State) -> int:
        d = len(state.steps)
        if d < len(self.path):
            return self.path[d]
        self.path.append(state.eligible[0])
        self.options.append(list(state.eligible[1:]))
        return state.eligible[0]

    def end_execution(self, execution: Execution) -> None:
        del self.path[len(execution.steps):]
        del self.options[len(execution.steps):]
