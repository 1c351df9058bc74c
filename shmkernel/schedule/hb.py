"""Happens-before of one execution, and its races, for the DPOR explorer.

Vector clocks are kept incrementally, as tokio-rs/loom keeps them: per word
the last write and, per CPU, the last read since it; per CPU its last step;
the last step that depends on everything (`ops.D_ALL`). A step's clock joins
those of its direct predecessors, so each step costs O(CPUs), never a scan
of the earlier steps. ``clock[c]`` counts CPU ``c``'s steps that happen
before (or are) the step.

A *race* is a pair of steps ``e``, ``e'`` of different CPUs that are
dependent and adjacent in some equivalent execution: ``e`` happens before
``e'`` through no other step (Abdulla, Aronis, Jonsson, Sagonas, "Optimal
dynamic partial order reduction", POPL 2014, Def. of ``e ⋖ e'``). It is
reversible when ``e'`` can run where ``e`` ran: a lock acquisition cannot
run before the unlock it waited for, so the race that matters there is with
the *acquisition* that unlock ended (the one before), which `races` reports
instead. A CPU left blocked at the end of an execution (a deadlock) races
with the steps its pending operation depends on, as if it ran next.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import NamedTuple

from shmkernel.schedule.drive import Op, Step
from shmkernel.schedule.ops import (
    ACCESS,
    CODE,
    D_ALL,
    D_NONE,
    D_READ,
    D_WRITE,
    LOCK_EFFECT,
    Access,
    dependence,
    dependent,
)

ACQUIRE = {CODE["spin_lock"], CODE["mutex_lock"]}
TRYLOCK = CODE["mutex_trylock"]
WRITE_VALUE = {CODE["write_once"], CODE["atomic_set"], CODE["this_cpu_write"], CODE["smp_store_release"]}


class Race(NamedTuple):
    """Step ``first`` races with ``second`` (an index; ``len(steps)``: a blocked CPU's pending op)."""

    first: int
    second: int
    cpu: int  # the CPU of the second step
    op: Op  # its operation


@dataclass
class Clocks:
    """The happens-before of one execution, step by step."""

    ncpus: int
    cpu: list[int] = field(default_factory=list)
    dep: list[int] = field(default_factory=list)
    addr: list[int] = field(default_factory=list)
    nth: list[int] = field(default_factory=list)  # 1-based position among the CPU's own steps
    clock: list[list[int]] = field(default_factory=list)

    def before(self, i: int, j: int) -> bool:
        """Does step ``i`` happen before step ``j`` (or is it ``j``)?"""
        return self.clock[j][self.cpu[i]] >= self.nth[i]

    def before_clock(self, i: int, clock: list[int]) -> bool:
        return clock[self.cpu[i]] >= self.nth[i]


def step_dependence(s: Step) -> int:
    return dependence(s.op.code, s.op.a1, s.op.a2, s.result)


def _join(clocks: list[list[int]], n: int) -> list[int]:
    out = [0] * n
    for c in clocks:
        for k in range(n):
            if c[k] > out[k]:
                out[k] = c[k]
    return out


class _Tracker:
    """Per word / per CPU last accesses while walking an execution."""

    def __init__(self, ncpus: int) -> None:
        self.n = ncpus
        self.last = [-1] * ncpus
        self.count = [0] * ncpus
        self.wr: dict[int, int] = {}
        self.rd: dict[int, dict[int, int]] = {}
        self.glob = -1
        #: lock words: indices of the steps that wrote them, and whether each left it held
        self.lock_writes: dict[int, list[int]] = {}
        self.lock_held: dict[int, list[bool | None]] = {}
        self.acquired: dict[int, list[int]] = {}
        #: what a lock operation itself tells of its word just before it: an acquisition
        #: or a trylock that took it found it free; an unlock or a failed trylock, held
        self.free_at: dict[int, bool] = {}

    def preds(self, cpu: int, dep: int, addr: int) -> list[int]:
        """The direct predecessors of a step by another CPU or the last global one
        (not its own CPU's previous step)."""
        out: list[int] = []
        if dep == D_READ:
            w = self.wr.get(addr, -1)
            if w >= 0:
                out.append(w)
        elif dep == D_WRITE:
            reads = self.rd.get(addr)
            if reads:
                out.extend(reads.values())
            else:
                w = self.wr.get(addr, -1)
                if w >= 0:
                    out.append(w)
        elif dep == D_ALL:
            out.extend(x for c, x in enumerate(self.last) if x >= 0 and c != cpu)
        if self.glob >= 0 and self.glob not in out:
            out.append(self.glob)
        return out

    def lock_free_before(self, addr: int, index: int) -> bool:
        """Was the lock word free just before step ``index``? The step itself may
        say (an unlock found it held, even one held since before the execution:
        a completion); else the last write before it; unknown: assumed free."""
        known = self.free_at.get(index)
        if known is not None:
            return known
        idx = self.lock_writes.get(addr)
        if not idx:
            return True
        k = bisect.bisect_left(idx, index) - 1
        if k < 0:
            return True
        held = self.lock_held[addr][k]
        return not held

    def record(self, j: int, s: Step, dep: int) -> None:
        cpu, addr = s.cpu, s.op.addr
        if s.op.code in LOCK_EFFECT:
            self.free_at[j] = LOCK_EFFECT[s.op.code]  # acquire: was free; unlock: was held
        elif s.op.code == TRYLOCK:
            self.free_at[j] = bool(s.result)
        if dep == D_READ:
            self.rd.setdefault(addr, {})[cpu] = j
        elif dep == D_WRITE:
            self.wr[addr] = j
            self.rd.pop(addr, None)
            code = s.op.code
            held: bool | None = None
            if code in LOCK_EFFECT:
                held = LOCK_EFFECT[code]
            elif code == TRYLOCK:
                held = True  # a trylock that wrote took the lock
            elif code in WRITE_VALUE:
                held = s.op.a1 != 0
            if held is not None or addr in self.lock_writes:
                self.lock_writes.setdefault(addr, []).append(j)
                self.lock_held.setdefault(addr, []).append(held)
            if code in ACQUIRE or code == TRYLOCK:
                self.acquired.setdefault(addr, []).append(j)
        elif dep == D_ALL:
            self.glob = j
        self.last[cpu] = j


def analyse(
    steps: list[Step], ncpus: int, start: int = 0, blocked: dict[int, Op] | None = None
) -> tuple[Clocks, list[Race]]:
    """The clocks of ``steps`` and their reversible races whose second step is at
    ``start`` or later (earlier ones were reported for an earlier execution with
    the same prefix), plus those of each ``blocked`` CPU's pending operation."""
    hb = Clocks(ncpus)
    tr = _Tracker(ncpus)
    races: list[Race] = []
    zero = [0] * ncpus
    for j, s in enumerate(steps):
        cpu = s.cpu
        dep = step_dependence(s)
        preds = tr.preds(cpu, dep, s.op.addr)
        own = tr.last[cpu]
        own_clock = hb.clock[own] if own >= 0 else zero
        clock = _join([own_clock] + [hb.clock[p] for p in preds], ncpus)
        tr.count[cpu] += 1
        clock[cpu] = tr.count[cpu]
        hb.cpu.append(cpu)
        hb.dep.append(dep)
        hb.addr.append(s.op.addr)
        hb.nth.append(tr.count[cpu])
        hb.clock.append(clock)
        if j >= start:
            races.extend(_races_of(hb, tr, j, cpu, s.op, dep, preds, own_clock))
        tr.record(j, s, dep)
    for cpu, op in sorted((blocked or {}).items()):
        dep = dependence(op.code)
        if dep == D_NONE and ACCESS[op.code] is not Access.LOCK:
            continue
        preds = tr.preds(cpu, dep, op.addr)
        own = tr.last[cpu]
        own_clock = hb.clock[own] if own >= 0 else zero
        races.extend(_races_of(hb, tr, len(steps), cpu, op, dep, preds, own_clock))
    return hb, races


def _races_of(
    hb: Clocks, tr: _Tracker, j: int, cpu: int, op: Op, dep: int, preds: list[int], own_clock: list[int]
) -> list[Race]:
    """The reversible races of step ``j`` (``cpu`` taking ``op``) with its predecessors."""
    out: list[Race] = []
    n = hb.ncpus
    acquire = op.code in ACQUIRE
    for e in preds:
        if hb.cpu[e] == cpu or not dependent(hb.dep[e], hb.addr[e], dep, op.addr):
            continue
        others = [own_clock] + [hb.clock[p] for p in preds if p != e]
        if hb.before_clock(e, _join(others, n)):
            continue  # ordered through another step: not adjacent in any equivalent execution
        if acquire and hb.dep[e] != D_ALL and not tr.lock_free_before(op.addr, e):
            continue  # the lock was held there: this acquisition cannot run first
        out.append(Race(e, j, cpu, op))
    if acquire:
        # the acquisition before, by another CPU, whose unlock let this one in
        acq = [a for a in tr.acquired.get(op.addr, ()) if a < j]
        if acq:
            e = acq[-1]
            if (
                hb.cpu[e] != cpu
                and e not in preds
                and not hb.before_clock(e, own_clock)
                and not (tr.glob > e and hb.before(e, tr.glob))
            ):
                out.append(Race(e, j, cpu, op))
    return out


def canonical(steps: list[Step]) -> tuple:
    """A key equal for two executions exactly when they are the same Mazurkiewicz
    trace (they differ only by swapping adjacent independent steps): the
    happens-before order linearised taking the lowest CPU first. Quadratic: for
    counting the traces of small programs (the benchmarks, the tests)."""
    succs, indeg = _order_of(steps)
    ready = sorted((steps[k].cpu, k) for k in range(len(steps)) if indeg[k] == 0)
    out = []
    while ready:
        _, k = ready.pop(0)
        out.append((steps[k].cpu, steps[k].op, steps[k].result))
        for j in succs[k]:
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append((steps[j].cpu, j))
        ready.sort()
    return tuple(out)


def _order_of(steps: list[Step]) -> tuple[list[list[int]], list[int]]:
    """Happens-before successors and in-degrees of ``steps`` (quadratic)."""
    n = len(steps)
    deps = [step_dependence(s) for s in steps]
    succs: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for j in range(n):
        for i in range(j):
            if steps[i].cpu == steps[j].cpu or dependent(deps[i], steps[i].op.addr, deps[j], steps[j].op.addr):
                succs[i].append(j)
                indeg[j] += 1
    return succs, indeg


def fewest_switches(steps: list[Step]) -> list[int]:
    """The CPU choices of an execution of the same trace as ``steps`` (so with
    the same results and events) that switches CPUs as rarely as a greedy order
    can: keep running the CPU that ran last while its next step is ready, else
    take the ready step that came first; tried from each CPU that can start,
    the order with fewest switches kept. A DPOR counterexample reads like the
    seed's diagram then, not like the search order that found it."""
    succs, indeg = _order_of(steps)
    starts = sorted({steps[k].cpu for k in range(len(steps)) if indeg[k] == 0})
    best: list[int] | None = None
    for start in starts:
        out = _greedy(steps, succs, list(indeg), start)
        if best is None or switches(out) < switches(best):
            best = out
    return best if best is not None else []


def _greedy(steps: list[Step], succs: list[list[int]], indeg: list[int], current: int) -> list[int]:
    ready = [k for k in range(len(steps)) if indeg[k] == 0]
    out: list[int] = []
    while ready:
        mine = [k for k in ready if steps[k].cpu == current]
        k = mine[0] if mine else min(ready)
        ready.remove(k)
        current = steps[k].cpu
        out.append(current)
        for j in succs[k]:
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(j)
    return out


def switches(choices: list[int]) -> int:
    return sum(1 for a, b in zip(choices, choices[1:], strict=False) if a != b)
