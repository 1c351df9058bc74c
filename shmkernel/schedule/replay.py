"""``replay(schedule)``: the choices of a recorded execution, one per step.

A choice that is not eligible (the program changed, or the string was edited)
is an error naming the step, never a silent divergence.
"""

from __future__ import annotations

from shmkernel.errors import UsageError
from shmkernel.schedule.drive import Execution, State, another_way
from shmkernel.schedule.trace import token


class ReplayScheduler:
    name = "replay"

    def __init__(self, choices: list[int], repeat: int = 1) -> None:
        self.choices = choices
        self.left = repeat

    def new_execution(self) -> bool:
        self.left -= 1
        return self.left >= 0

    def next_cpu(self, state: State) -> int:
        i = len(state.steps)
        if i >= len(self.choices):
            raise UsageError(
                f"schedule ends after {len(self.choices)} steps but the program goes on "
                f"(a truncated schedule, or one that ended in a livelock)"
            )
        c = self.choices[i]
        if c not in state.eligible and not another_way(c, state.eligible):
            raise UsageError(
                f"schedule does not fit this program: step {i} picks {token(c)}, "
                f"eligible are {', '.join(token(e) for e in state.eligible)}"
            )
        return c

    def end_execution(self, execution: Execution) -> None:
        if len(execution.steps) < len(self.choices) and execution.outcome == "ok":
            raise UsageError(
                f"schedule has {len(self.choices)} steps but the program ended after {len(execution.steps)}"
            )
