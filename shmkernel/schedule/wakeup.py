"""Wakeup sequences and wakeup trees (Abdulla et al., POPL 2014 / JACM 2017).

A *wakeup sequence* ``v`` at a state ``E'`` is what reverses a race: the
steps after the race's first step that do not depend on it, then the racing
CPU. Exploring some execution that starts like ``v`` (up to reordering
independent steps) covers the reversal. A *wakeup tree* at a state keeps
the sequences still to explore from there, sharing prefixes, in the order
they will be explored; a sequence already covered by the tree (one of its
branches reaches a leaf while staying compatible with it) is not added.

Compatibility is computed from the steps themselves: CPU ``p`` is an
*initial* of ``w`` when its first step in ``w`` depends on no earlier step of
``w`` (then ``w`` can start with ``p``), and a *weak initial* when it is an
initial or it does not appear in ``w`` and its next step is independent of
all of ``w`` (then ``p`` first changes nothing for ``w``).

Blocking steps need one more rule. Every step of a wakeup sequence but its
last ran in some execution after steps it depends on only, so it can run
where the sequence puts it; the last one (the racing CPU's) may not: a lock
held there, a wait not over. A branch ending in such a *dead* step is
dropped when the search reaches it, so it must not be taken as covering
another sequence: a node made as the last step of its sequence, whose step
may block, is never taken as a weak initial of a sequence it is absent from.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import NamedTuple

from shmkernel.schedule.drive import Op
from shmkernel.schedule.ops import ACCESS, BLOCKING, dependent


class Ev(NamedTuple):
    """One step of a wakeup sequence: its CPU, operation and dependence class."""

    cpu: int
    op: Op
    dep: int


@dataclass
class WNode:
    """A wakeup-tree node: the CPU that moves next, and what follows."""

    ev: Ev
    children: list[WNode] = field(default_factory=list)
    #: made as the last step of its sequence, with a step that may block: maybe dead
    unsure: bool = False


def _first(seq: list[Ev], cpu: int) -> int:
    for k, e in enumerate(seq):
        if e.cpu == cpu:
            return k
    return -1


def _depends_on_earlier(seq: list[Ev], k: int) -> bool:
    e = seq[k]
    return any(dependent(x.dep, x.op.addr, e.dep, e.op.addr) for x in seq[:k])


def initials(seq: list[Ev]) -> list[int]:
    """The CPUs that can start ``seq`` (first step independent of all before it)."""
    out = []
    seen = set()
    for k, e in enumerate(seq):
        if e.cpu in seen:
            continue
        seen.add(e.cpu)
        if not _depends_on_earlier(seq, k):
            out.append(e.cpu)
    return out


def after_weak_initial(ev: Ev, seq: list[Ev], unsure: bool = False) -> list[Ev] | None:
    """``seq`` once ``ev`` (a CPU's next step) has gone first, or None when
    ``ev.cpu`` is no weak initial of ``seq``; ``unsure``: ``ev`` may be unable to
    run there (see the module's docstring)."""
    k = _first(seq, ev.cpu)
    if k >= 0:
        return None if _depends_on_earlier(seq, k) else seq[:k] + seq[k + 1 :]
    if unsure and ACCESS[ev.op.code] in BLOCKING:
        return None
    if any(dependent(ev.dep, ev.op.addr, x.dep, x.op.addr) for x in seq):
        return None
    return seq


def insert(children: list[WNode], seq: list[Ev], eligible: Container[int]) -> bool:
    """Add ``seq`` below a state whose wakeup tree has these first-level
    ``children`` and where the ``eligible`` CPUs may move, unless a branch
    already covers it; True if it was added. A sequence whose first CPU cannot
    move at the state is not reversible there and is not added."""
    rem = seq
    level = children
    while rem:
        for child in level:
            nxt = after_weak_initial(child.ev, rem, child.unsure)
            if nxt is not None:
                break
        else:
            if level is children and rem[0].cpu not in eligible:
                return False
            node = WNode(rem[0])
            level.append(node)
            for e in rem[1:]:
                node.children.append(WNode(e))
                node = node.children[0]
            node.unsure = rem[-1] is seq[-1]
            return True
        if not child.children:
            return False  # a leaf compatible with seq: exploring it covers seq
        level, rem = child.children, nxt
    return False
