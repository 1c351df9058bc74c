"""Load buffering in TruSt: revisiting a read that the new write's prefix follows.

TruSt (`shmkernel.schedule.trust_graph`) revisits a read ``r`` with a new write
``a`` only when ``r`` is not in ``a``'s porf-prefix: ``a`` may depend on it. Under
the LKMM a write depends on an earlier read of its CPU only through a
dependency (`shmkernel.schedule.deps`), so ``r`` may still read ``a`` when
``a``'s prefix holds events after ``r`` on ``r``'s CPU that do not depend on ``r``:
the load-buffering cycle, which the LKMM's axioms then judge. As GenMC does
under its dependency-tracking models, the graph kept is the prefix ``a``
*needs* (its dependencies and reads-from, transitively) rather than all of
porf, with each CPU's events before those (the CPUs run them again to get
there): a plain read among them added after ``r`` that ``a`` does not need is
a *hole*, read anew when the CPUs run the plan again (it may then read ``a``
too, or any write of the plan still to come), and what only its ``rf`` brought
in is not kept. Everything else kept must depend neither on ``r`` nor on a
hole: it runs again with another value for them, and it must come out the
same. A revisit that would break that is not taken, and counted (the search
then proves nothing).

The CPUs replay a plan in order, so ``r`` reads ``a`` before ``a`` is there: it is
*promised* (`shmkernel.memory.graph_lkmm`: the read returns ``a``'s value, and
``a``, when it comes, must be the write it read, with that value).
"""

from __future__ import annotations

from typing import Any

from shmkernel.memory.graph_lkmm import LOCK_TAKES, UNLOCKS
from shmkernel.memory.graph_order import INIT
from shmkernel.memory.models import ACQ_READ, ATOMICS, READ, RMW_FULL, atomic_update

RELEASES = ("smp_store_release", *UNLOCKS)
ACQUIRES = ("smp_load_acquire", *LOCK_TAKES)


def _needs(model: Any, deps: Any, cpu: int, at: int) -> set[int]:
    """The reads an event of ``cpu`` at ``at`` with ``deps`` depends on directly."""
    if deps is None:  # not tracked: every earlier read of its CPU
        return {x for x in model.po[cpu][:at] if model.events[x].reads}
    return set(deps[0] | deps[1] | deps[2])


def needed(model: Any, a: Any) -> set[int]:
    """What the write ``a`` needs: its dependencies and what it reads, and theirs,
    transitively (through ``rf`` across CPUs)."""
    events = model.events
    todo = list(_needs(model, a.deps, a.cpu, a.at))
    if a.rf != INIT:
        todo.append(a.rf)
    out: set[int] = set()
    while todo:
        x = todo.pop()
        if x in out or x is None or x == INIT:
            continue
        out.add(x)
        e = events[x]
        if e.cpu < 0:
            continue
        if e.reads:
            todo.append(model.reads_from(e))
        todo += _needs(model, e.deps, e.cpu, e.at)
    return out


def _orders(
    model: Any, x: Any, y: Any, ydeps: Any, y_release: bool, within: set[int] | None = None, x_full: bool | None = None
) -> bool:
    """Does the LKMM's ``ppo`` order ``x`` before the later ``y`` of its CPU? A dependency
    into a write (an address dependency into a read), an acquire ``x``, a release ``y``,
    or a full barrier (``smp_mb``, a value-returning atomic) between them (one in
    ``within``, when given). An event whose dependencies are not tracked depends on every
    earlier read of its CPU (the skeleton's conservative control dependency). ``x_full``:
    whether ``x`` is a value-returning atomic that succeeds, when not as it is now."""
    if x.reads:
        eid = model.po[x.cpu][x.at]
        if ydeps is None:
            if y is None or y.writes:
                return True
        elif y is None or y.writes:
            if eid in (ydeps[0] | ydeps[1] | ydeps[2]):
                return True
        elif eid in ydeps[0]:
            return True
    if (x.reads and (x.op in ACQUIRES or model.kind(x.op) == ACQ_READ)) or y_release:
        return True
    if (_full_rmw(model, x) if x_full is None else x_full) or (y is not None and _full_rmw(model, y)):
        return True  # a value-returning atomic that succeeded: a full barrier before and after it
    end = y.at if y is not None else len(model.po[x.cpu])
    between = (model.events[e] for e in model.po[x.cpu][x.at + 1 : end] if within is None or e in within)
    return any(e.op == "Mb" or _full_rmw(model, e) for e in between)


def _full_rmw(model: Any, e: Any) -> bool:
    """A value-returning atomic that succeeded (the LKMM puts ``smp_mb()`` around it)."""
    return e.reads and e.writes and model.kind(e.op) == RMW_FULL


def _ordered_path(model: Any, r: int, a: Any, within: set[int] | None = None, full: bool = False) -> bool:
    """Does ``a`` come after the read ``r`` in the LKMM's happens-before, through ``ppo``
    (`_orders`) and writes read by other CPUs? Then ``r`` reading ``a`` closes a cycle
    in hb, which the LKMM forbids: nothing to revisit. With ``within``, only through
    those events (what the revisit would keep as it is); ``full``: ``r``, reading ``a``,
    is a value-returning atomic that succeeds (a full barrier after it)."""
    events, po = model.events, model.po
    if a.rf != INIT and events[a.rf].cpu == events[r].cpu and events[a.rf].at > events[r].at:
        return True  # a reads a write of r's word after r on r's CPU: coherence (CoRW) forbids r read a
    reached, todo = {r}, [r]
    while todo:
        x = todo.pop()
        e = events[x]
        if e.cpu < 0:
            continue
        x_full = full if x == r else None
        if e.cpu == a.cpu and e.at < a.at and _orders(model, e, None, a.deps, a.release or a.full, within, x_full):
            return True
        if x == a.rf and e.cpu != a.cpu:
            return True  # a (an atomic) reads it: rfe
        for y in po[e.cpu][e.at + 1 :]:
            f = events[y]
            if (
                y not in reached
                and (within is None or y in within)
                and _orders(model, e, f, f.deps, f.op in RELEASES, within, x_full)
            ):
                reached.add(y)
                todo.append(y)
        if e.writes:
            for y in model.reads_of.get(e.loc, []):
                f = events[y]
                if y not in reached and (within is None or y in within) and f.cpu != e.cpu and model.reads_from(f) == x:
                    reached.add(y)
                    todo.append(y)
    return False


def _handed_over(model: Any, r: Any, a: Any) -> bool:
    """Does an acquire (a lock) of ``a``'s CPU before ``a`` read a release (an unlock) of
    ``r``'s CPU after ``r``, directly or through other CPUs' hand-offs (an acquire, then a
    release after it on the same CPU, read by the next acquire)? Then ``r`` comes before
    ``a`` in the LKMM's order (a release orders what precedes it, an acquire what
    follows; across a lock hand-off even when ``a`` is past the unlock: the axiomatic
    engine forbids LB+locks), so no graph that keeps those acquires reading what they
    read (a revisit never makes one a hole) has ``r`` read ``a``."""
    events, po = model.events, model.po
    r_at = events[r.reid].at
    released = {x for x in po[r.cpu][r_at + 1 :] if events[x].op in RELEASES}
    reached = {r.cpu}  # CPUs whose releases after their first such acquire are ordered after r
    grown = True
    while grown:
        grown = False
        for c in range(model.ncpus):
            if c in reached and c != a.cpu:
                continue
            for x in po[c]:
                e = events[x]
                if e.reads and e.op in ACQUIRES and model.reads_from(e) in released:
                    if c == a.cpu and e.at < a.at:
                        return True
                    if c not in reached:
                        reached.add(c)
                        released |= {y for y in po[c][e.at + 1 :] if events[y].op in RELEASES}
                        grown = True
                    break
    return False


def buffered_holes(g: Any, r: Any, porf: set[int]) -> tuple[set[int], list[Any]] | None:
    """May ``r`` (in ``a``'s porf-prefix) read ``a``? The prefix the revisit keeps instead
    of porf, and the reads in it that become holes; or None (the module docstring)."""
    model, a = g.model, g.a
    if not getattr(model, "wants_deps", False) or r.is_blocked or r.cpu == a.cpu:
        return None  # no load buffering in the model; or a blocked read; or coherence forbids it
    cls = model.kind(r.name)
    if r.name in LOCK_TAKES:
        return None  # a lock: the LKMM forbids LB+locks
    full = False  # r would be a value-returning atomic that succeeds: it orders what follows it
    if cls in ATOMICS:
        ok = atomic_update(r.name, r.cpu, a.value, *r.args)[2]
        if r.weid < 0 and not ok:
            cls = READ  # a failed atomic that still fails reading a: a plain read (it orders nothing)
        full = ok and cls == RMW_FULL
    need = needed(model, a)
    if r.reid in need:
        if not _ordered_path(model, r.reid, a, full=full):
            g.refused += 1  # a depends on r, but not through order the LKMM keeps: not replayable here
        return None
    if _handed_over(model, r, a):
        return None  # r's CPU released what a's CPU acquired before a: ordered, no cycle
    prefix, holes = _prefix(g, r, need)
    fresh = {r.reid} | {t.reid for t in holes}
    if cls == READ and a.deps is not None and not _tainted(model, prefix, fresh) - fresh:
        return prefix, holes
    # Not replayable here: an atomic's write would come, go or change, kept events would
    # change with r's value, or a's dependencies are not known. The revisit's graph keeps
    # its prefix as it is (the same events reading the same writes; values may differ,
    # holes are read anew); if that graph closes no hb cycle the LKMM forbids, the
    # revisit is counted as one trust cannot take.
    if not _ordered_path(model, r.reid, a, (prefix - fresh) | {r.reid}, full):
        g.refused += 1
    return None


def _tainted(model: Any, prefix: set[int], fresh: set[int]) -> set[int]:
    """The events of ``prefix`` that change with the values ``fresh`` reads: those that
    read them, or depend on them, transitively (an untracked event depends on every
    earlier read of its CPU)."""
    tainted = set(fresh)
    events = model.events
    grown = True
    while grown:
        grown = False
        for x in sorted(prefix):
            if x in tainted:
                continue
            e = events[x]
            if (e.reads and model.reads_from(e) in tainted) or (
                e.cpu >= 0 and _needs(model, e.deps, e.cpu, e.at) & tainted
            ):
                tainted.add(x)
                grown = True
    return tainted


def _prefix(g: Any, r: Any, need: set[int]) -> tuple[set[int], list[Any]]:
    """The events the revisit keeps beyond those added before ``r``: what ``a`` needs, and
    each CPU's events before them (it runs them again to get there); and which of those
    are holes, read anew (plain reads added after ``r`` that ``a`` does not need: their
    ``rf`` is not kept, nor what only it brought in)."""
    model, a = g.model, g.a
    events, po = model.events, model.po
    sr = r.rstamp
    by_eid = {t.reid: t for t in g.taken if t.reid >= 0}

    def hole(x: int) -> bool:
        t = by_eid.get(x)
        return (
            t is not None
            and t is not r
            and x not in need
            and t.weid < 0
            and not t.is_blocked
            and t.rstamp > sr
            and model.kind(t.name) == READ
        )

    hi = [-1] * model.ncpus
    stack = [(a.cpu, a.at - 1)] + [(events[x].cpu, events[x].at) for x in need if events[x].cpu >= 0]
    if a.rf != INIT and events[a.rf].cpu >= 0:
        stack.append((events[a.rf].cpu, events[a.rf].at))
    while stack:
        c, i = stack.pop()
        if i <= hi[c]:
            continue
        for j in range(hi[c] + 1, i + 1):
            x = po[c][j]
            e = events[x]
            if e.reads and x != r.reid and not hole(x):
                src = model.reads_from(e)
                if src is not None and src != INIT and events[src].cpu >= 0:
                    stack.append((events[src].cpu, events[src].at))
        hi[c] = i
    prefix = {x for c in range(model.ncpus) for x in po[c][: hi[c] + 1]} | set(po[a.cpu][a.at :])
    return prefix, [t for t in g.taken if t.reid in prefix and hole(t.reid)]


def promises_hold(g: Any, r: Any, kept_r: dict[int, bool], kept_w: dict[int, bool], holes: list[Any]) -> bool:
    """Does the revisit keep every promised read with the write it reads, and no CPU's
    events after a promised read it deletes? (A graph with such a hole in program
    order is not one the CPUs can run again in order; that revisit is not taken.)"""
    model = g.model
    events, ref = model.events, model.ref
    kept_refs = {ref(t.weid) for t in g.taken if kept_w[id(t)]} | {(g.a.cpu, g.a.wat)}
    for t in g.taken:
        if t is r or t.reid < 0 or events[t.reid].promised is None or any(t is h for h in holes):
            continue
        if kept_r[id(t)]:
            if events[t.reid].promised not in kept_refs:
                g.refused += 1
                return False
        elif any(u.cpu == t.cpu and u.at > t.at and (kept_r[id(u)] or kept_w[id(u)]) for u in g.taken if u is not r):
            g.refused += 1
            return False
    return True
