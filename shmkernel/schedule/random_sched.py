"""``random(seed)``: each step, a uniformly random eligible CPU.

Explores: any interleaving, with probability falling fast with the number of
switches it needs. Misses: deep bugs needing several precise switches (use
``pct`` or ``exhaustive``). Deterministic for a seed, so a run is repeatable.
"""

from __future__ import annotations

import random

from shmkernel.schedule.drive import Execution, State


class RandomScheduler:
    name = "random"

    def __init__(self, seed: int = 0, max_executions: int = 1000) -> None:
        self.rng = random.Random(seed)
        self.left = max_executions

    def new_execution(self) -> bool:
        self.left -= 1
        return self.left >= 0

    def next_cpu(self, state: State) -> int:
        return self.rng.choice(state.eligible)

    def end_execution(self, execution: Execution) -> None:
        pass
