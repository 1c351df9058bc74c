"""``hypothesis``: choices drawn lazily from the CPUs eligible at each step.

Each step draws an index into the eligible CPUs ordered *current CPU first*,
so every drawn schedule is valid, and hypothesis's shrinking (towards smaller
draws and fewer of them) yields short schedules with few context switches:
the minimal interleaving. The bridge is just another scheduler whose choices
come from ``data.draw``; `explore_with_hypothesis` runs the search and keeps
the last failing execution, which hypothesis replays after shrinking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hyp_seed
from hypothesis import strategies as st

from shmkernel.memory.actions import ACTION_BASE, COMMIT, decode_action
from shmkernel.schedule.drive import Execution, State


class DataScheduler:
    name = "hypothesis"

    def __init__(self, data: Any) -> None:
        self.data = data

    def new_execution(self) -> bool:
        return True

    def next_cpu(self, state: State) -> int:
        cpus = sorted(c for c in state.eligible if c < ACTION_BASE)
        actions = sorted(c for c in state.eligible if c >= ACTION_BASE)
        if actions:
            # under an emulated memory model: a store commits, or a load returns an
            # older value, one step in four (drawn last in the shrink order: a
            # shrunk schedule keeps only the reorderings the failure needs)
            commits = [a for a in actions if decode_action(a)[0] == COMMIT]
            if not cpus or self._draw(4) == 3:
                return self._pick(commits or actions)
            c = self._pick(self._current_first(cpus, state.current))
            older = [a for a in actions if a not in commits and decode_action(a)[1] == c]
            if older and self._draw(4) == 3:
                return self._pick(older)
            return c
        return self._pick(self._current_first(cpus, state.current))

    def _draw(self, n: int) -> int:
        return int(self.data.draw(st.integers(0, n - 1)))

    def _pick(self, options: list[int]) -> int:
        return options[0] if len(options) == 1 else options[self._draw(len(options))]

    @staticmethod
    def _current_first(order: list[int], current: int | None) -> list[int]:
        if current in order:
            order = [current] + [c for c in order if c != current]
        return order

    def end_execution(self, execution: Execution) -> None:
        pass


class _Found(Exception):
    pass


#: examples per hypothesis run when a time limit is in force (checked between runs)
ROUND = 50
#: executions hypothesis may spend shrinking a failure: without a bound a shrink ran
#: 4,235 executions for a 20-example search (modcount-2002, 12 CPUs: 52 s, the soak's
#: "hang"). Past it the run ends (`_ShrinkSpent`, which hypothesis lets through as it
#: does Ctrl-C); the schedule reported is the last one that really failed (each failure
#: met while shrinking is shorter than the one before).
SHRINK_BUDGET = 500


class _ShrinkSpent(KeyboardInterrupt):
    """The shrink budget is spent: end the hypothesis run (never seen outside it)."""


def explore_with_hypothesis(
    run_one: Callable[[DataScheduler], tuple[bool, Any]],
    max_examples: int,
    seed: int,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Any | None, int, bool]:
    """Search with hypothesis; return (last failing execution or None, executions
    run, whether ``should_stop`` cut the search short).

    Without ``should_stop`` it is one hypothesis run of ``max_examples``. With
    it (a time limit) the budget is spent in runs of `ROUND` examples, each
    with its own seed, and ``should_stop`` is asked between runs: stopping
    hypothesis from inside its test would make it shrink (or distrust) the
    interruption. A failure is shrunk to its end within its run."""
    state: dict[str, Any] = {"found": None, "n": 0, "found_at": 0}

    def one_run(examples: int, run_seed: int) -> None:
        @settings(
            max_examples=examples,
            database=None,
            deadline=None,
            derandomize=False,
            phases=(Phase.generate, Phase.shrink),
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(st.data())
        def search(data: Any) -> None:
            if state["found"] is not None and state["n"] - state["found_at"] >= SHRINK_BUDGET:
                raise _ShrinkSpent()
            state["n"] += 1
            failed, info = run_one(DataScheduler(data))
            if failed:
                if state["found"] is None:
                    state["found_at"] = state["n"]
                state["found"] = info
                raise _Found()

        try:
            hyp_seed(run_seed)(search)()
        except (_Found, _ShrinkSpent):
            pass

    if should_stop is None:
        one_run(max_examples, seed)
        return state["found"], state["n"], False
    rounds = 0
    while state["found"] is None and state["n"] < max_examples:
        if rounds and should_stop():
            return None, state["n"], True
        one_run(min(ROUND, max_examples - state["n"]), seed * 1_000_003 + rounds)
        rounds += 1
    return state["found"], state["n"], False
