"""What every complete depth-first search shares: the budget and the verdict flags.

`dpor`, `stateful` and `bruteforce` re-run executions from the start, each
following the choices recorded so far and branching where they planned to.
This base keeps what they have in common and what `shmkernel.explore` reads
to give its verdict: ``exhausted`` (nothing is left to explore: with no
``bound_hit``, a proof), ``bound_hit`` (the preemption bound skipped a
choice), ``executions``; a search that stops with neither exhausted is out
of budget.
"""

from __future__ import annotations

from typing import Any

from shmkernel.errors import NondeterminismError
from shmkernel.schedule.drive import Op, State
from shmkernel.schedule.ops import NAME


class DepthFirstSearch:
    name = "depth-first"
    complete_search = True

    def __init__(self, max_executions: int, preemption_bound: int | None = None) -> None:
        self.left = max_executions
        self.bound = preemption_bound
        self.started = False
        self.exhausted = False
        self.bound_hit = False
        self.executions = 0
        #: the states of the current execution where a choice was made, each with its
        #: ``eligible``, ``pending`` and ``chosen`` (searches that keep such nodes)
        self.stack: list[Any] = []

    def new_execution(self) -> bool:
        """Begin the next execution: False when the budget is spent or nothing is left."""
        if self.left <= 0:
            return False
        if not self.started:
            self.started = True
            self._first()
        elif not self._backtrack():
            self.exhausted = True
            return False
        self.left -= 1
        self.executions += 1
        return True

    def _first(self) -> None:
        """Set up the first execution (nothing recorded yet)."""

    def _backtrack(self) -> bool:
        """Plan the next execution from the recorded ones; False when none is left."""
        raise NotImplementedError

    def _replayed(self, state: State) -> int | None:
        """At a state the current execution shares with the recorded ones: the
        recorded choice, once the state is checked to be the recorded one."""
        d = len(state.steps)
        if d >= len(self.stack):
            return None
        node = self.stack[d]
        check_replayed(node.eligible, node.pending, state, d)
        return node.chosen

    def _fits_bound(self, preemptions: int) -> bool:
        """May a choice with this many preemptions on its path be taken? Noting a refusal."""
        if self.bound is None or preemptions <= self.bound:
            return True
        self.bound_hit = True
        return False


def check_replayed(node_eligible: list[int], node_pending: dict[int, Op], state: State, depth: int) -> None:
    """Raise `NondeterminismError` if a replayed state differs from the recorded one."""
    if list(state.eligible) == node_eligible and state.pending == node_pending:
        return
    for cpu in sorted(set(node_pending) | set(state.pending)):
        was, now = node_pending.get(cpu), state.pending.get(cpu)
        if was != now:
            what = f"{_op_text(was)} the first time, {_op_text(now)} now"
            raise NondeterminismError(
                f"nondeterministic program at step {depth}: CPU {cpu} posted {what} "
                f"(does it read state the explorer does not control?)"
            )
    raise NondeterminismError(
        f"nondeterministic program at step {depth}: eligible CPUs were "
        f"{node_eligible} the first time, {list(state.eligible)} now"
    )


def _op_text(op: Op | None) -> str:
    return "nothing" if op is None else f"{NAME[op.code]}(word {op.addr}, {op.a1}, {op.a2})"
