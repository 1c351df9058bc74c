"""Blocked reads in TruSt: a lock that finds its word held, an await whose word holds its value.

GenMC adds a CAS loop's failed read, or an assume that does not hold, as a
*blocked read*: a read of the write it found, after which its thread waits.
`shmkernel.schedule.trust` does the same for ``spin_lock``/``mutex_lock`` and
for the awaiting read of a grace period (`shmkernel.schedule.rcu_memory`): the
read is added at the word's last write, its CPU waits there, and a later write
it may take (an unlock; a write of another value) revisits it. An await is also
revisited by a write of the value it waits to change, and then waits at that
one: otherwise the graph where it waits at a newer write would never be built,
and a revisit that needs it as maximally added (TruSt's rule) would be lost.

A run that ends with a CPU waiting at a write that is not its word's last in
``co`` (or, for an await, with a write of another value it could read) is a
*blocked graph*, not an outcome: the graph where it reads that write is
explored on its own.
"""

from __future__ import annotations

from typing import Any

from shmkernel.memory.graph import AWAIT_CHANGE
from shmkernel.memory.graph_order import INIT
from shmkernel.schedule.ops import NAME

LOCKS = ("spin_lock", "mutex_lock")
BLOCKING_READS = (*LOCKS, AWAIT_CHANGE)  #: steps that may wait at a blocked read


def blocked_now(model: Any, cpu: int, op: Any) -> bool:
    """Is ``cpu``'s ``op`` a blocked read if added now: a lock whose word is held, or an
    awaiting read (`shmkernel.schedule.rcu_memory`) whose word's last write is its value?"""
    name = NAME[op.code]
    if name == AWAIT_CHANGE:  # TruSt adds a read of the last write: that one it waits at
        return model.latest(op.addr) == op.a1
    return name in LOCKS and model.latest(op.addr) != 0


def takes(t: Any, value: int) -> bool:
    """May the blocking read ``t`` (a lock, an await) go on with a write of ``value``?"""
    return value == 0 if t.name in LOCKS else value != t.args[0]


def waits_on_a_released_lock(model: Any, taken: list[Any]) -> bool:
    """Does a blocked read wait at a write that a later one of its word released (an
    unlock, another value for an await)? Then the graph where it reads that one is
    explored on its own (TruSt's blocked graph). An await that waits at a write of its
    value with another such write after it in ``co`` is such a graph too: a CPU that
    spins forever ends up reading the last write, and that graph is explored on its own
    (a revisit by that write, or the await added after it, blocks at it)."""
    for t in taken:
        if not t.is_blocked:
            continue
        if t.name == AWAIT_CHANGE and model.ways(t.cpu, t.name, t.loc, *t.args):
            return True  # released: it may read another value now
        co = model.co.get(t.loc)
        if t.blocked != (co[-1] if co else INIT):
            return True
    return False


def await_unreadable(model: Any, steps: list[tuple[int, int]], blocked: dict[int, Any]) -> bool:
    """Is one of ``steps`` (planned steps that read a write: CPU, place) an await whose CPU
    is there with no way to go (``blocked``: the run's waiting CPUs and their steps)? The
    Driver does not offer such an await (`Driver.awaited`), so a plan that makes it read
    a write it cannot ends as a deadlock where a plain read would have been pruned."""
    return any(c in blocked and NAME[blocked[c].code] == AWAIT_CHANGE and len(model.po[c]) == at for c, at in steps)
