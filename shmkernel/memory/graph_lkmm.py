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

**Dependencies, and what stands in for them.** The workloads' values carry
no dependencies yet (no ``addr``/``data``/``ctrl``), and kernel code leans
on them: seed 000's hand-off is ``if (READ_ONCE(mailbox)) module_put()``, a
control dependency that orders the read before the ``decs`` increment (with
an ``smp_mb()`` on the sender the LKMM forbids the false zero; without the
dependency it would allow it: a false alarm on the fix). So every read is
taken as a control dependency of its CPU's later events (herd7's ``ctrl``:
``ppo`` orders it before every later write), which is what the operational
models assume too (a load happens before any later store of its CPU
commits). Consequences: no load buffering (LB needs a write to pass an
earlier read), and no other read-to-write reordering the LKMM allows without
a dependency (``S+fencewmbonceonce+poonceonce``: the litmus runner's
axiomatic engine, the cat file herd7 evaluates, allows it; neither this graph
nor the operational machine shows it). A proof under ``lkmm`` covers the LKMM's executions in
which each read precedes its CPU's later writes; dependency tracking (values
that carry the loads they came from) would lift that. Address dependencies
between reads are not credited either (as on Alpha: a false alarm is
possible, as in the operational model). Everything else is the LKMM's,
which is more than the operational ``lkmm`` machine reaches
(`tests/test_trust_lkmm.py`: everything the machine reaches, on random programs).

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
from shmkernel.memory.models import ACQ_READ, CLASS, FENCE_MB, FENCE_RMB, RMW_FULL, RMW_RELAXED
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
    """The LKMM (without load buffering) as an execution graph (the module docstring)."""

    models = ("lkmm",)
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

    def _append(self, e: Event, co_at: int, undo: list) -> int:
        eid = super()._append(e, co_at, undo)
        if not self._trial:
            rf = self._ref(e.rf) if e.reads else None
            self._trail = hash((self._trail, e.cpu, e.op, e.loc, e.reads, e.writes, e.wval, rf, co_at))
        return eid

    def _sync_outside(self, loc: int) -> None:
        before = self.outside
        super()._sync_outside(loc)
        if self.outside != before:
            self._trail = hash((self._trail, "outside", loc, int(self.w[loc])))  # type: ignore[index]

    def _shape(self, cpu: int, name: str, addr: int) -> list[Event]:
        events = super()._shape(cpu, name, addr)
        for e in events:
            e.op = name
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
        """Does the graph satisfy the LKMM's axioms, each read taken as a control
        dependency of its CPU's later events (the module docstring)?"""
        sk, rf, co = self.skeleton()
        return Checker(sk).consistent(rf, co)

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

        def add(cpu: int, eid: int, e: Event) -> None:
            parts = lkmm_events(e) if cpu >= 0 else [("W", ("Once",), "w")]
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
        rmw, rf, co, ctrl = [0] * n, [0] * n, [0] * n, [0] * n
        reads = sets.get("R", 0)
        later = 0  # this CPU's events after the one at hand
        for i in range(n - 1, -1, -1):
            if i + 1 < n and thread[i + 1] != thread[i]:
                later = 0
            if thread[i] >= 0 and reads >> i & 1:
                ctrl[i] = later
            later |= 1 << i
        for r, w in pairs:
            rmw[r] |= 1 << w
        for eid, r in read_at.items():
            src = self.events[eid].rf
            rf[first[self.events[eid].loc] if src == INIT else write_at[src]] |= 1 << r
        for a, ids in self.co.items():
            order = [first[a], *(write_at[x] for x in ids)]
            later = 0
            for x in reversed(order):
                co[x] |= later
                later |= 1 << x
        return Skeleton(n, thread, loc, sets, rmw, ctrl=ctrl), rf, co


def make_graph_model(w: object, ncpus: int, name: str) -> GraphModel:
    """The graph model of ``name``: the machine's time order (sc, tso, weak) or the
    LKMM's axioms (lkmm)."""
    return LKMMGraphModel(w, ncpus, name) if name == "lkmm" else GraphModel(w, ncpus, name)
