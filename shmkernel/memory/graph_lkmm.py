"""``lkmm`` as an execution graph: the kernel's own axioms decide consistency.

`shmkernel.memory.graph` keeps sc, tso and weak as graphs whose consistency
is the machine's time order. Under ``lkmm`` there is no machine to mirror:
the graph (each CPU's events in program order, ``rf``, ``co``) is handed to
the LKMM's axioms as herd7 evaluates them (`shmkernel.memory.lkmm_cat`), the
engine the litmus runner holds to herd7's verdicts. Each graph event becomes
the events herd7 builds for its primitive (``shmkernel.litmus.primitives``):

- ``READ_ONCE``-style loads an R [Once], ``smp_load_acquire`` an R [Acquire];
  stores a W [Once], ``smp_store_release`` a W [Release], an unlock a W [UL];
- a value-returning atomic F [Mb]; R [Once]; W [Once]; F [Mb] with the R and
  W paired by ``rmw`` (a failing one only its R, ordering nothing), the
  non-returning ones (``atomic_inc``) an R [Noreturn] and a W [Once];
- a lock an R [LKR] and a W [LKW] (a failed trylock an R [LF]), which is
  ``lock.cat``'s encoding by value: a lock reads a write that left it free;
- ``this_cpu_inc`` a plain R [Once] then W [Once] (the kernel's per-CPU ops
  are atomic against interrupts, not against other CPUs);
- ``smp_mb``/``smp_rmb``/``smp_wmb`` an F [Mb]/[Rmb]/[Wmb]; kernel
  synchronisation's moments (a context switch, a grace period) an F [Mb].

**Dependencies.** Each event carries the reads it depends on (``Event.deps``:
``addr``, ``data``, ``ctrl``), mapped from the loads the CPU's values came
from (`shmkernel.schedule.deps`, numbered by memory operation: ``mops``).
Kernel code leans on them: seed 000's hand-off is ``if (READ_ONCE(mailbox))
module_put()``, a control dependency that orders the read before the
``decs`` increment. An event whose dependencies are not tracked (a program
that does not post them: the explorer's random programs) takes every
earlier read of its CPU as a control dependency, what the operational
models assume. With dependencies a store may pass an earlier read: load
buffering, which trust reaches by *promising* a read a write still to come
(``promise``/``promised``: the read returns the write's value and reads
nothing until the write is added, which must then be consistent with it;
`shmkernel.schedule.trust_lb`). Everything else is the LKMM's, which is
more than the operational ``lkmm`` machine reaches
(`tests/test_trust_lkmm.py`: everything the machine reaches, and within the
axiomatic engine's states, on random programs).

Each check rebuilds the herd7-style events of the whole graph and runs every
axiom: the graphs of the seeds hold tens of events, and TruSt
(`shmkernel.schedule.trust`) asks only about the ways that are not the newest
(the newest read and the last place in ``co`` are always consistent: nothing
leaves the new event).
"""

from __future__ import annotations

from collections.abc import Hashable

from shmkernel.memory.graph import GRAPH_MODELS, GraphModel, _Choice
from shmkernel.memory.graph_order import ALL, INIT, OUTSIDE, Event
from shmkernel.memory.lkmm_cat import Checker, Skeleton
from shmkernel.memory.models import ACQ_READ, CLASS, FENCE_MB, FENCE_RMB, READ, RMW_FULL, RMW_RELAXED, atomic_update
from shmkernel.memory.relations import Rel

#: the models trust explores as graphs
TRUST_MODELS = (*GRAPH_MODELS, "lkmm")

LOCK_TAKES = ("spin_lock", "mutex_lock", "mutex_trylock")
UNLOCKS = ("spin_unlock", "mutex_unlock")
FENCE_CLASS = {FENCE_MB: "Mb", FENCE_RMB: "Rmb"}

#: one LKMM event: its kind (R, W, F), its classes, and which part of the graph
#: event it is ("r": the read rf points at, "w": the write co orders, "": a fence)
Part = tuple[str, tuple[str, ...], str]


def lkmm_events(e: Event) -> list[Part]:
    """The events herd7 builds for the graph event ``e`` (the module docstring)."""
    if not e.reads and not e.writes:
        return [("F", (e.op or "Mb",), "")]
    cls = CLASS.get(e.op)
    if e.reads and e.writes:
        if e.op in LOCK_TAKES:
            return [("R", ("LKR",), "r"), ("W", ("LKW",), "w")]
        if cls == RMW_RELAXED:
            return [("R", ("Noreturn", "RMW"), "r"), ("W", ("Once", "RMW"), "w")]
        assert cls == RMW_FULL, e.op
        return [("F", ("Mb",), ""), ("R", ("Once", "RMW"), "r"), ("W", ("Once", "RMW"), "w"), ("F", ("Mb",), "")]
    if e.reads:
        if e.op in LOCK_TAKES:
            return [("R", ("LF",), "r")]  # a failed trylock
        return [("R", ("Acquire" if cls == ACQ_READ else "Once",), "r")]
    if e.op in UNLOCKS:
        return [("W", ("UL",), "w")]
    return [("W", ("Release" if e.op == "smp_store_release" else "Once",), "w")]


class LKMMGraphModel(GraphModel):
    """The LKMM as an execution graph (the module docstring)."""

    models = ("lkmm",)
    wants_deps = True  # the CPUs' values carry their loads (`shmkernel.schedule.deps`)
    #: verdicts kept across executions (a search replays the same graph prefixes again and
    #: again): at most this many, then forgotten
    VERDICTS_KEPT = 200_000

    def __init__(self, w: object, ncpus: int, name: str) -> None:
        self._verdicts: dict[Hashable, bool] = {}
        super().__init__(w, ncpus, name)

    def reset(self) -> None:
        super().reset()
        self._trail = 0  # a hash of the events added so far, in order: the graph, as a key
        self._trial = False
        #: per CPU, per memory operation (as `shmkernel.schedule.deps` numbers them): its read's event
        self.mops: list[list[int]] = [[] for _ in range(self.ncpus)]
        self.pending_ops: dict = {}  # the Driver's pending operations (their dependencies)
        self._deps_seen: dict[int, tuple] = {}
        #: load buffering: a CPU whose next read reads a write not added yet (its CPU, place), its value
        self.promise: dict[int, tuple[tuple[int, int], int]] = {}
        self.promised: dict[tuple[int, int], int] = {}  # such a write -> the read that waits for it

    def cpu_op(self, cpu: int, name: str, addr: int, a1: int, a2: int, older: int = 0) -> object:
        n = len(self.events)
        ret = super().cpu_op(cpu, name, addr, a1, a2, older)
        self.mops[cpu].append(next((i for i in range(n, len(self.events)) if self.events[i].reads), -1))
        return ret

    def promise_next(self, cpu: int, writer: tuple[int, int], value: int) -> None:
        """``cpu``'s next read reads the write ``writer`` (CPU, place) that is not in the graph
        yet, and returns ``value`` (load buffering: `shmkernel.schedule.trust`)."""
        self.promise[cpu] = (writer, value)
        self._cache.pop(cpu, None)

    def open_promises(self) -> list[tuple[int, int]]:
        """The writes promised reads wait for that are not in the graph."""
        return [w for w, r in self.promised.items() if self.reads_from(self.events[r]) is None]

    def _append(self, e: Event, co_at: int, undo: list) -> int:
        eid = super()._append(e, co_at, undo)
        if not self._trial:
            rf = self._ref(e.rf) if e.reads else None
            self._trail = hash((self._trail, e.cpu, e.op, e.loc, e.reads, e.writes, e.wval, rf, co_at, e.promised))
            if e.promised is not None:
                del self.promise[e.cpu]
                self.promised[e.promised] = eid
            r = self.promised.get((e.cpu, e.at)) if e.writes else None
            if r is not None:
                self.events[r].rf = eid
        return eid

    def event_deps(self, cpu: int) -> tuple[frozenset[int], frozenset[int], frozenset[int]] | None:
        """The reads ``cpu``'s pending operation depends on, by event (None: not tracked)."""
        op = self.pending_ops.get(cpu)
        if op is None or op.deps is None:
            return None
        hit = self._deps_seen.get(cpu)
        if hit is not None and hit[0] is op:
            return hit[1]
        m = self.mops[cpu]
        out = []
        for mask in op.deps:
            ids = []
            while mask:
                low = mask & -mask
                k = low.bit_length() - 1
                if k < len(m) and m[k] >= 0:
                    ids.append(m[k])
                mask ^= low
            out.append(frozenset(ids))
        deps = (out[0], out[1], out[2])
        self._deps_seen[cpu] = (op, deps)
        return deps

    def _newest_is_free(self, cpu: int) -> bool:
        """A promised read, or a write one waits for, may have no consistent way at all."""
        return cpu not in self.promise and not any(w[0] == cpu for w in self.open_promises())

    def _candidates(self, cpu: int, name: str, addr: int, a1: int, a2: int) -> list[_Choice]:
        p = self.promise.get(cpu)
        if p is not None and CLASS[name] == READ:
            return [_Choice(rf=INIT, rval=p[1], ret=p[1])]
        if p is not None:  # a failed atomic that reads a write still to come (it must still fail)
            new, ret, ok = atomic_update(name, cpu, p[1], a1, a2)
            return [] if ok else [_Choice(rf=INIT, rval=p[1], ret=ret, ok=False, new=p[1])]
        return super()._candidates(cpu, name, addr, a1, a2)

    def _sync_outside(self, loc: int) -> None:
        before = self.outside
        super()._sync_outside(loc)
        if self.outside != before:
            self._trail = hash((self._trail, "outside", loc, int(self.w[loc])))  # type: ignore[index]

    def _shape(self, cpu: int, name: str, addr: int) -> list[Event]:
        events = super()._shape(cpu, name, addr)
        deps = self.event_deps(cpu)
        p = self.promise.get(cpu)
        for e in events:
            e.op = name
            e.deps = deps
            if p is not None and e.reads:
                e.promised = p[0]
        return events

    def _fence(self, cpu: int, cls: int) -> None:
        op = FENCE_CLASS.get(cls, "Wmb")
        self._append(Event(cpu, False, False, -1, drains_sb=cls == FENCE_MB, op=op), -1, [])

    def _try(self, cpu: int, name: str, addr: int, ch: _Choice) -> bool:
        """Is the graph with ``cpu``'s step added ``ch``'s way consistent? Remembered by the
        graph's trail and the way (a 64-bit hash: a collision, about 1 in 10^8 at 10^6
        verdicts, would give one way another's verdict, as the stateful search's state
        cache has it)."""
        key = (self._trail, cpu, name, addr, ch.rf if ch.rf == INIT else self._ref(ch.rf), ch.co_at, ch.ok, ch.new)
        ok = self._verdicts.get(key)
        if ok is not None:
            return ok
        self._trial = True  # a trial addition leaves the trail alone
        try:
            ok = super()._try(cpu, name, addr, ch)
        finally:
            self._trial = False
        if len(self._verdicts) >= self.VERDICTS_KEPT:
            self._verdicts.clear()
        self._verdicts[key] = ok
        return ok

    def _consistent_after(self, undo: list) -> bool:
        return self.lkmm_consistent()

    def lkmm_consistent(self) -> bool:
        """Does the graph satisfy the LKMM's axioms, with its dependencies (the module
        docstring) and each promised read reading its write once it is there?"""
        for r in self.promised.values():
            src = self.reads_from(self.events[r])
            if src is not None and (
                self.events[src].loc != self.events[r].loc or self.events[src].wval != self.events[r].rval
            ):
                return False  # the write a promised read reads wrote something else
        sk, rf, co = self.skeleton()
        return Checker(sk).consistent(rf, co)

    def reads_from(self, e: Event) -> int | None:
        """The write the read ``e`` reads (INIT: the initial one); a promised read's once it
        is in the graph (a trial addition too), None before."""
        if e.promised is None:
            return e.rf
        c, at = e.promised
        return self.po[c][at] if len(self.po[c]) > at else None

    def skeleton(self) -> tuple[Skeleton, Rel, Rel]:
        """The graph as herd7's events (initial writes first, then each CPU's in program
        order), with its ``rf`` and (transitive) ``co``."""
        thread: list[int] = []
        loc: list[str | None] = []
        classes: list[tuple[str, ...]] = []
        first: dict[int, int] = {}
        for a in sorted({*self.co, *(e.loc for e in self.events if e.reads)}):
            first[a] = len(thread)
            thread.append(-1)
            loc.append(str(a))
            classes.append(("W", "IW"))
        read_at: dict[int, int] = {}
        write_at: dict[int, int] = {}
        pairs: list[tuple[int, int]] = []
        spans: list[tuple[int, int, int, int]] = []  # a CPU's graph event: its herd events lo..hi

        def add(cpu: int, eid: int, e: Event) -> None:
            parts = lkmm_events(e) if cpu >= 0 else [("W", ("Once",), "w")]
            if cpu >= 0:
                spans.append((cpu, eid, len(thread), len(thread) + len(parts)))
            for kind, cl, role in parts:
                if role == "r":
                    read_at[eid] = len(thread)
                elif role == "w":
                    write_at[eid] = len(thread)
                thread.append(cpu)
                loc.append(str(e.loc) if role else None)
                classes.append((kind, *cl))
            if eid in read_at and eid in write_at:
                pairs.append((read_at[eid], write_at[eid]))

        for eid, e in enumerate(self.events):
            if e.cpu == OUTSIDE:
                add(-1, eid, e)
        for cpu in range(self.ncpus):
            for eid in self.po[cpu]:
                e = self.events[eid]
                add(cpu, eid if e.cpu != ALL else -1, e)
        n = len(thread)
        sets: dict[str, int] = {}
        for i, cl in enumerate(classes):
            for c in cl:
                sets[c] = sets.get(c, 0) | 1 << i
        rmw, rf, co = [0] * n, [0] * n, [0] * n
        addr, data, ctrl = self._dependencies(n, sets, spans, read_at)
        for r, w in pairs:
            rmw[r] |= 1 << w
        for eid, r in read_at.items():
            e = self.events[eid]
            src = self.reads_from(e)
            if src is None:
                continue  # a promised read whose write is not here yet reads nothing (so far)
            rf[first[e.loc] if src == INIT else write_at[src]] |= 1 << r
        for a, ids in self.co.items():
            order = [first[a], *(write_at[x] for x in ids)]
            later = 0
            for x in reversed(order):
                co[x] |= later
                later |= 1 << x
        return Skeleton(n, thread, loc, sets, rmw, addr=addr, data=data, ctrl=ctrl), rf, co

    def _dependencies(
        self, n: int, sets: dict[str, int], spans: list[tuple[int, int, int, int]], read_at: dict[int, int]
    ) -> tuple[list[int], list[int], list[int]]:
        """herd7's ``addr``, ``data`` and ``ctrl``: each event's tracked dependencies on
        reads of its CPU; an event without them (not tracked) has every earlier read of
        its CPU as a control dependency (the module docstring)."""
        addr, data, ctrl = [0] * n, [0] * n, [0] * n
        access, writes = sets.get("R", 0) | sets.get("W", 0), sets.get("W", 0)
        cpu_reads: list[int] = []  # the herd events of the current CPU's reads so far
        cpu = None
        for c, eid, lo, hi in spans:
            if c != cpu:
                cpu, cpu_reads = c, []
            mask = ((1 << hi) - 1) ^ ((1 << lo) - 1)
            deps = self.events[eid].deps if eid >= 0 else ()
            if deps is None:
                for r in cpu_reads:
                    ctrl[r] |= mask
            elif deps:
                a, d, k = deps
                for x in a:
                    addr[read_at[x]] |= mask & access
                for x in d:
                    data[read_at[x]] |= mask & writes
                for x in k:
                    ctrl[read_at[x]] |= mask
            if eid in read_at:
                cpu_reads.append(read_at[eid])
        return addr, data, ctrl


def make_graph_model(w: object, ncpus: int, name: str) -> GraphModel:
    """The graph model of ``name``: the machine's time order (sc, tso, weak) or the
    LKMM's axioms (lkmm)."""
    return LKMMGraphModel(w, ncpus, name) if name == "lkmm" else GraphModel(w, ncpus, name)
