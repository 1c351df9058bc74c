"""The fewest context switches that still produce a violation (delta debugging).

A schedule is seen as its *switch points*: (step, CPU) wherever it changes
CPU. `SwitchScheduler` runs a program from a set of them: switch where one
says (if that CPU can move), else keep the CPU that ran last, else take the
lowest CPU that can move. Zeller's ddmin removes switch points while the
event still happens (1-minimal: removing any one more loses it), then each
remaining switch is moved as early as it still works, then (without store
buffers) the same trace is reordered greedily (`hb.fewest_switches`). The result is a real
execution's choices, replayable as a schedule string, and never has more
switches than the schedule it started from (that one is kept otherwise).
"""

from __future__ import annotations

from typing import Any

from shmkernel.memory.registry import BUFFERED_MODELS
from shmkernel.schedule.drive import State
from shmkernel.schedule.hb import fewest_switches, switches
from shmkernel.schedule.replay import ReplayScheduler


class SwitchScheduler:
    """Runs the CPU ``points`` names at a step when it can move; otherwise the CPU
    that ran last (``stay``) or the lowest that can move. With a point at every
    step and ``stay=False`` it follows a schedule while it fits (`guided`)."""

    name = "switches"

    def __init__(self, points: dict[int, int], stay: bool = True) -> None:
        self.points, self.stay, self.left, self.last = points, stay, 1, -1

    def new_execution(self) -> bool:
        self.left -= 1
        self.last = -1
        return self.left >= 0

    def next_cpu(self, state: State) -> int:
        want = self.points.get(len(state.steps))
        if want is not None and want in state.eligible:
            c = want
        elif self.stay and self.last in state.eligible:
            c = self.last
        else:
            c = min(state.eligible)
        self.last = c
        return c

    def end_execution(self, execution: Any) -> None:
        pass


def guided(choices: list[int]) -> SwitchScheduler:
    """Follow ``choices`` while they fit; then the lowest CPU that can move (a
    flipped schedule may need more or fewer steps than the original)."""
    return SwitchScheduler(dict(enumerate(choices)), stay=False)


def switch_points(choices: list[int]) -> list[tuple[int, int]]:
    return [(i, c) for i, c in enumerate(choices) if i == 0 or c != choices[i - 1]]


def reduce_schedule(sess: Any, choices: list[int], event: str, limit: int = 400) -> list[int]:
    """Choices of an execution with the event and as few switches as ddmin finds
    (at most ``limit`` re-runs)."""
    runs = 0
    best = list(choices)
    best_steps: list[Any] = []

    def shows(points: list[tuple[int, int]]) -> bool:
        nonlocal runs, best, best_steps
        runs += 1
        ex, events = sess.execute(SwitchScheduler(dict(points)))
        if events.get(event):
            if switches(ex.choices) < switches(best) or not best_steps:
                best, best_steps = list(ex.choices), list(ex.steps)
            return True
        return False

    points = switch_points(choices)
    n = 2
    while len(points) >= 2 and runs < limit:
        chunk = max(len(points) // n, 1)
        for start in range(0, len(points), chunk):
            rest = points[:start] + points[start + chunk :]
            if runs < limit and shows(rest):
                points, n = rest, max(n - 1, 2)
                break
        else:
            if chunk == 1:
                break
            n = min(n * 2, len(points))
    # then move each remaining switch as early as it goes (to the start, or just
    # after the previous switch): a CPU started earlier may save a switch back
    for k in range(len(points)):
        for at in (0, points[k - 1][0] + 1 if k else 0):
            if runs >= limit or at >= points[k][0]:
                continue
            moved = points[:k] + [(at, points[k][1])] + points[k + 1 :]
            if shows(sorted(set(moved))):
                points = sorted(set(moved))
                break
    if best_steps and sess.memory_model not in BUFFERED_MODELS:
        # the same trace, reordered greedily (independent steps commute): often fewer switches still
        fewer = fewest_switches(best_steps)
        if switches(fewer) < switches(best):
            ex, events = sess.execute(ReplayScheduler(fewer))
            if events.get(event):
                best = list(ex.choices)
    return best
