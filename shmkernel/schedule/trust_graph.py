"""TruSt's backward revisits, over the graph model's execution graph.

`shmkernel.schedule.trust` adds events one at a time; when a write ``a`` is
added, every read ``r`` of its word that is not in ``a``'s porf-prefix (``a``
does not depend on it) may instead read ``a``: the graph keeps the events
added up to ``r`` and ``a``'s porf-prefix, ``r`` reads ``a``, the rest is
deleted and the CPUs run again from there. To explore each graph once, such
a revisit is taken only from the one graph where ``r`` and every deleted
event were added *maximally* (a read reads the ``co``-latest write among the
events added before it or in ``a``'s prefix; a write is ``co``-latest there and
nothing there reads it): Kokologiannakis, Marmanis, Gladstein and Vafeiadis,
"Truly Stateless, Optimal Dynamic Partial Order Reduction", POPL 2022.

An event here is a *part*: a read-modify-write is one event of the graph but
two parts, its read and its write, with their own stamps (the write's is the
later), as TruSt has them. A step of a CPU (a driver step: one memory
operation) is the unit the plans replay (`Planned`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shmkernel.memory.graph_order import INIT
from shmkernel.memory.models import ATOMICS, CLASS, FENCES, PERCPU_RMW, RMW_FULL, atomic_update
from shmkernel.schedule.ops import NAME
from shmkernel.schedule.trust_blocked import BLOCKING_READS, LOCKS, takes
from shmkernel.schedule.trust_lb import buffered_holes, promises_hold

Ref = tuple[int, int]  # an event by (CPU, place in its program order)
FIXED, OPEN, FORWARD, BLOCKED, PROMISED, HOLE = "fixed", "open", "forward", "blocked", "promised", "hole"
NOT_BLOCKED = -2  # `Taken.blocked` of a step that is not a blocked read (INIT is -1)


@dataclass(frozen=True)
class Planned:
    """One memory step of a planned graph. ``FIXED``: it reads ``rf`` and its write
    takes its place in the plan's ``co``; ``OPEN`` (the revisiting write): it reads ``rf``
    and every consistent place of its write is tried, without revisits of its own;
    ``FORWARD`` (a read kept whose write was deleted): it reads ``rf``, its write is
    added anew (every place, and its own revisits), with a fresh stamp; ``BLOCKED``: a
    lock that read the held word ``rf``: its CPU waits there, until a revisit by an
    unlock (TruSt's blocked read: it keeps its stamp, it is not added again);
    ``PROMISED`` (load buffering, under lkmm): a plain read of ``rf``, a write that
    events after it on its CPU precede: it returns ``value`` when its CPU reaches it,
    and the write, when it comes, must be the one it read; ``HOLE`` (load buffering): a
    plain read the CPUs pass on the way to what the revisiting write needs, that the
    write does not need: it is read anew, every write it may read (those of the graph
    so far, and the plan's still to come, promised) a plan of its own."""

    cpu: int
    at: int  # the place of its first event in its CPU's program order
    rstamp: int  # -1: it reads nothing
    wstamp: int  # -1: it writes nothing (or, FORWARD, not yet)
    rf: Ref | None
    mode: str = FIXED
    value: int = 0  # PROMISED: what it reads


@dataclass
class Plan:
    """A graph to replay, its steps in the order they go (`TrustScheduler`), then
    the exploration goes on forward from it."""

    steps: list[Planned]
    co: dict[int, list[Ref]]  # each word's writes of FIXED steps, in coherence order
    next_stamp: int
    #: with HOLE steps: every write of the plan, (word, value), a HOLE may read before it is there
    writes: dict[Ref, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Taken:
    """A memory step of the current execution: its events and their stamps."""

    cpu: int
    at: int
    name: str
    loc: int
    rstamp: int = -1
    wstamp: int = -1
    reid: int = -1  # the event that reads (-1: none)
    weid: int = -1  # the event that writes (-1: none; an atomic: the same event)
    value: int = 0  # what it writes
    readded: bool = False  # a FORWARD step: its write is added anew (its revisits come later)
    blocked: int = NOT_BLOCKED  # a lock that read a held word: that write (then it has no events)
    args: tuple[int, int] = (0, 0)  # its operation's arguments (what a failed atomic would do with another value)

    @property
    def is_blocked(self) -> bool:
        return self.blocked != NOT_BLOCKED


@dataclass(frozen=True)
class Writer:
    """The write a revisit adds (``a``): its CPU, its step's place, the write event's
    place, what its read part reads (INIT when none) and what it writes."""

    cpu: int
    at: int
    wat: int
    rf: int
    value: int
    rstamp: int
    wstamp: int
    loc: int
    #: the reads it depends on, by event (address, data, control): `Event.deps`
    deps: tuple[frozenset[int], frozenset[int], frozenset[int]] | None = None
    release: bool = False  # a release store or an unlock (it orders what comes before it)
    full: bool = False  # a value-returning atomic that succeeds (a full barrier before it too)


def next_plan(work: list[Plan], buffered: set[tuple]) -> Plan | None:
    """The next plan to run (None: none left). A load-buffering revisit is taken from
    every graph it is one of (`shmkernel.schedule.trust_lb`), so the same plan may come
    more than once: one with a PROMISED or HOLE step is run only the first time (the
    search from a plan depends on nothing else; a stamp past all of its own, it starts
    at the same place in their order), and its keys are kept, so memory grows with the
    load-buffering plans (never with the others)."""
    while work:
        plan = work.pop()
        if not any(p.mode in (PROMISED, HOLE) for p in plan.steps):
            return plan
        co = tuple(sorted((loc, tuple(ws)) for loc, ws in plan.co.items()))
        key = (tuple(plan.steps), co, tuple(sorted(plan.writes.items())))
        if key not in buffered:
            buffered.add(key)
            return plan
    return None


def memory_op(op: Any) -> bool:
    """Does ``op`` add a read or a write to the graph (not a fence, not a kernel call)?"""
    cls = CLASS.get(NAME[op.code])
    return cls is not None and cls not in FENCES


def write_at(cls: int, at: int) -> int:
    """The place of the write event of a step whose first event is at ``at``: a
    ``this_cpu_inc`` that is two events (tso, weak, lkmm) writes after it reads."""
    return at + 1 if cls == PERCPU_RMW else at


def replayed(model: Any, taken: list[Taken]) -> list[Planned]:
    """The steps taken so far, as steps of a plan (in the order they were added)."""
    ref, events = model.ref, model.events
    done = []
    for t in taken:
        if t.is_blocked:
            done.append(Planned(t.cpu, t.at, t.rstamp, -1, ref(t.blocked), BLOCKED))
        elif t.reid >= 0 and events[t.reid].promised is not None:
            e = events[t.reid]
            done.append(Planned(t.cpu, t.at, t.rstamp, t.wstamp, e.promised, PROMISED, e.rval))
        else:
            done.append(Planned(t.cpu, t.at, t.rstamp, t.wstamp, ref(events[t.reid].rf) if t.reid >= 0 else None))
    done.sort(key=lambda p: p.rstamp if p.rstamp >= 0 else p.wstamp)
    return done


def porf_prefix(model: Any, cpu: int, upto: int, rf: int) -> set[int]:
    """The events before ``cpu``'s ``upto``-th event in program order or reads-from
    (transitively), and ``rf``'s (the write the new event reads): what it depends on."""
    hi = [-1] * model.ncpus
    stack = [(cpu, upto - 1)]
    if rf != INIT:
        e = model.events[rf]
        stack.append((e.cpu, e.at))
    while stack:
        d, i = stack.pop()
        if i <= hi[d]:
            continue
        for j in range(hi[d] + 1, i + 1):
            e = model.events[model.po[d][j]]
            if e.reads and e.rf != INIT:
                w = model.events[e.rf]
                stack.append((w.cpu, w.at))
        hi[d] = i
    return {x for d in range(model.ncpus) for x in model.po[d][: hi[d] + 1]}


class RevisitGraph:
    """The current graph as TruSt's parts, to find the backward revisits of the write
    ``a`` adds. ``exclude``: writes not in the graph yet (``a``'s own, when its step is
    replayed already, and those re-added after it)."""

    def __init__(self, model: Any, taken: list[Taken], a: Writer, exclude: set[int]) -> None:
        self.model, self.a, self.exclude = model, a, exclude
        self.refused = 0  # load-buffering revisits it could not take (`shmkernel.schedule.trust_lb`)
        self.taken = [t for t in taken if (t.cpu, t.at) != (a.cpu, a.at) and (self.reads(t) or t.weid not in exclude)]
        self.by_weid = {t.weid: t for t in self.taken if self.writes(t)}

    def co(self, loc: int) -> list[int]:
        return [w for w in self.model.co.get(loc, []) if w not in self.exclude]

    def rf(self, t: Taken) -> int:
        return t.blocked if t.is_blocked else self.model.events[t.reid].rf

    @staticmethod
    def reads(t: Taken) -> bool:
        return t.reid >= 0 or t.is_blocked

    def writes(self, t: Taken) -> bool:
        return t.weid >= 0 and t.weid not in self.exclude

    def maximal(self, t: Taken, part: str, porf: set[int]) -> bool:
        """Was ``t``'s read (``part`` "R") or write ("W") added maximally, against the
        parts added before it and ``a``'s porf-prefix?"""
        s = t.rstamp if part == "R" else t.wstamp

        def before_w(w: int) -> bool:
            return self.by_weid[w].wstamp <= s or w in porf

        if part == "W":
            for x in self.taken:
                if self.reads(x) and x is not t and self.rf(x) == t.weid and (x.rstamp <= s or x.reid in porf):
                    return False
            co = self.co(t.loc)
            return not any(before_w(y) for y in co[co.index(t.weid) + 1 :])
        w = self.rf(t)
        if w != INIT and w in self.exclude:
            return False
        if w != INIT and not before_w(w):
            return False
        co = self.co(t.loc)
        later = co if w == INIT else co[co.index(w) + 1 :]
        return not any(before_w(y) for y in later if y != t.weid)

    def revisit(
        self, r: Taken, porf: set[int], conflict: Taken | None, holes: list[Taken] | None = None
    ) -> Plan | None:
        """The plan where ``r`` reads ``a`` (a lock or an await ``r`` that cannot take ``a``'s
        value waits at it, BLOCKED: `trust_blocked`), or None when this graph is
        not the one that revisit is taken from. ``holes`` (not None): ``a`` depends on
        events after ``r`` on its CPU, not on ``r``: load buffering, ``r`` is PROMISED and
        ``holes``, reads after it that ``a`` does not need, are read anew (HOLE)."""
        a, sr = self.a, r.rstamp
        kept_r = {id(t): self.reads(t) and (t.rstamp <= sr or t.reid in porf) for t in self.taken}
        kept_w = {id(t): self.writes(t) and (t.wstamp <= sr or t.weid in porf) for t in self.taken}
        if conflict is not None and conflict is not r and kept_r[id(conflict)]:
            return None  # the atomic that read a's write still does: not consistent
        if getattr(self.model, "promised", None) and not promises_hold(self, r, kept_r, kept_w, holes or []):
            return None
        # a load-buffering revisit is taken from every graph it is one of (not only the one
        # whose deleted events were added maximally): its kept prefix is not porf, so the
        # maximality argument does not hold; a graph may then be explored more than once
        for t in self.taken if holes is None else ():
            if self.reads(t) and (t is r or not kept_r[id(t)]) and not self.maximal(t, "R", porf):
                return None
            if self.writes(t) and not kept_w[id(t)] and not self.maximal(t, "W", porf):
                return None
        steps: list[Planned] = []
        forward: list[Planned] = []
        ref = self.model.ref
        for t in self.taken:
            if holes and any(t is h for h in holes):
                steps.append(Planned(t.cpu, t.at, t.rstamp, -1, None, HOLE))
                continue
            if t is r:
                if holes is not None and r.reid in porf:  # what a needs comes after r on its CPU
                    steps.append(Planned(t.cpu, t.at, t.rstamp, -1, (a.cpu, a.wat), PROMISED, a.value))
                    continue
                if r.name in BLOCKING_READS and not takes(r, a.value):
                    mode = BLOCKED
                else:
                    mode = FORWARD if t.weid >= 0 or t.is_blocked else FIXED
                forward.append(Planned(t.cpu, t.at, t.rstamp, -1, (a.cpu, a.wat), mode))
                continue
            if self.reads(t):
                if not kept_r[id(t)]:
                    continue
                rf = ref(self.rf(t))
                e = self.model.events[t.reid] if t.reid >= 0 else None
                if e is not None and e.promised is not None:
                    steps.append(Planned(t.cpu, t.at, t.rstamp, -1, e.promised, PROMISED, e.rval))
                elif t.is_blocked:
                    steps.append(Planned(t.cpu, t.at, t.rstamp, -1, rf, BLOCKED))
                elif t.weid >= 0 and not kept_w[id(t)]:
                    forward.append(Planned(t.cpu, t.at, t.rstamp, -1, rf, FORWARD))
                else:
                    steps.append(Planned(t.cpu, t.at, t.rstamp, t.wstamp if t.weid >= 0 else -1, rf))
            elif kept_w[id(t)]:
                steps.append(Planned(t.cpu, t.at, -1, t.wstamp, None))
        kept = {t.weid for t in self.taken if kept_w[id(t)] and t is not r}
        co = {loc: [ref(w) for w in ids if w in kept] for loc, ids in self.model.co.items()}
        steps.sort(key=lambda p: p.rstamp if p.rstamp >= 0 else p.wstamp)
        a_rf = ref(a.rf) if a.rstamp >= 0 else None
        steps.append(Planned(a.cpu, a.at, a.rstamp, a.wstamp, a_rf, OPEN))
        forward.sort(key=lambda p: p.rstamp)
        plan = Plan(steps + forward, co, 0)
        if holes:  # what a HOLE may read that is still to come: the plan's writes
            ev = self.model.events
            plan.writes = {ref(t.weid): (t.loc, ev[t.weid].wval) for t in self.taken if kept_w[id(t)] and t is not r}
            plan.writes[(a.cpu, a.wat)] = (a.loc, a.value)
        return plan

    def plans(self, conflict: Taken | None = None) -> list[Plan]:
        """Every backward revisit of ``a`` taken from this graph (with ``conflict``: ``a``'s
        atomic reads the write an atomic ``conflict`` already read; then only ``conflict``
        itself, or a read after it, may be revisited). Under lkmm a plain read ``a``
        depends on through its CPU's later events only (no dependency on it) is revisited
        too: load buffering (`shmkernel.schedule.trust_lb`)."""
        a = self.a
        porf = porf_prefix(self.model, a.cpu, a.at, a.rf)
        porf.update(self.model.po[a.cpu][a.at :])  # a's own read part, when it is in the graph
        out = []
        for r in self.taken:
            if not self.reads(r) or r.loc != a.loc:
                continue
            prefix, holes = porf, None
            if r.reid in porf:
                got = buffered_holes(self, r, porf)
                if got is None:
                    continue
                prefix, holes = got
            if r.name in LOCKS and not takes(r, a.value) and r is not conflict:
                continue  # a lock reads only a free word
            plan = self.revisit(r, prefix, conflict, holes)
            if plan is not None:
                out.append(plan)
        return out


def conflict_writers(
    model: Any, taken: list[Taken], c: int, at: int, op: Any, rs: int, ws: int, seen: set[int]
) -> list[tuple[Writer, Taken]]:
    """The writes ``c``'s atomic adds reading a write another atomic ``t`` already read
    (not in ``seen``: the writes it reads consistently), each with that ``t``."""
    name = NAME[op.code]
    out = []
    for t in taken:
        if t.loc != op.addr or t.reid < 0 or t.weid != t.reid or model.kind(t.name) not in ATOMICS:
            continue
        x = model.events[t.reid].rf
        old = model.value(x, op.addr)
        if name in LOCKS and old != 0:
            continue
        new, _, ok = atomic_update(name, c, old, op.a1, op.a2)
        if ok and x not in seen:
            full = model.kind(name) == RMW_FULL
            out.append((Writer(c, at, at, x, new, rs, ws, op.addr, model.event_deps(c), full=full), t))
    return out


def hole_way(sched: Any, model: Any, c: int, op: Any, p: Any) -> Any:
    """A HOLE read (`shmkernel.schedule.trust_lb`): the way it goes now, every other
    (a write of the graph, or one of the plan's still to come) a plan of its own;
    ``p`` itself when it has none (then the plan is pruned)."""
    ways = model.ways(c, NAME[op.code], op.addr, op.a1, op.a2)
    ways_now = [Planned(c, p.at, p.rstamp, -1, model.ref(ch.rf)) for ch in ways]
    po = model.po
    later = [(w, v) for w, (loc, v) in sched.plan.writes.items() if loc == op.addr and len(po[w[0]]) <= w[1]]
    cands = ways_now + [Planned(c, p.at, p.rstamp, -1, w, PROMISED, v) for w, v in later]
    if not cands:
        sched.pruned += 1
        sched.todo = []
        return p
    done = replayed(model, sched.taken)
    for q in reversed(cands[1:]):
        co = {loc: list(ids) for loc, ids in sched.plan.co.items()}
        sched.work.append(Plan([*done, q, *sched.todo], co, sched.next_stamp, sched.plan.writes))
    return cands[0]
