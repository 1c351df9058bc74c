"""``pct(depth, seed)``: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010).

Each execution gives the CPUs random distinct priorities and picks ``depth - 1``
random change points among the steps; the highest-priority eligible CPU always
runs, and at the i-th change point the running CPU drops to priority i (below
every initial one). A bug of depth d is found with probability at least
1/(n k^(d-1)) per execution (n CPUs, k steps). Misses: nothing in principle,
but deep bugs need many executions; the step count k is learnt from the
previous execution.
"""

from __future__ import annotations

import random

from shmkernel.schedule.drive import Execution, State


class PCTScheduler:
    name = "pct"

    def __init__(self, depth: int = 3, seed: int = 0, max_executions: int = 1000) -> None:
        self.depth = max(1, depth)
        self.rng = random.Random(seed)
        self.left = max_executions
        self.k = 50  # steps per execution, re-estimated after each
        self.prio: dict[int, int] = {}
        self.change: dict[int, int] = {}

    def new_execution(self) -> bool:
        self.left -= 1
        self.prio = {}
        points = self.rng.sample(range(1, max(self.k, self.depth) + 1), self.depth - 1)
        self.change = {step: i for i, step in enumerate(sorted(points), start=1)}
        self._base = self.depth + 1
        return self.left >= 0

    def next_cpu(self, state: State) -> int:
        for c in (*state.pending, *state.eligible):  # CPUs and memory-model actions alike
            if c not in self.prio:
                self.prio[c] = self._base + self.rng.randrange(10_000) * 64 + (c % 64)
        step = len(state.steps)
        if step in self.change and state.current is not None:
            self.prio[state.current] = self.depth - self.change[step]
        return max(state.eligible, key=lambda c: self.prio[c])

    def end_execution(self, execution: Execution) -> None:
        self.k = max(len(execution.steps), 1)
