"""The memory models as execution graphs: what a run computed, not how a machine held it.

`shmkernel.memory.models` keeps ``sc``, ``tso`` and ``weak`` as machines (store
buffers, commits, lagging views), so the exhaustive search expands every
moment a store may commit and every view a CPU may hold: many machine states
compute the same thing. Here the same three models are kept as *execution
graphs*: the events each CPU has issued (in program order), which write each
read reads from (``rf``) and, per word, the order of its writes (``co``). A
load chooses its write, a store its place in ``co``, an atomic the write it
reads (it goes right after it); each choice that keeps the graph
*consistent* with the model is offered to the scheduler (choice 0 is the
newest, as ``read_older_id`` always meant). A state is the graph itself, so
the stateful search (`shmkernel.schedule.stateful`) expands every reachable
graph prefix once and ends each complete graph once, however many machine
states produce it: ``--scheduler graph``.

**Consistency** is the machine's own definition, written as order: a graph is
consistent iff there is one global order of *time points* that the machine
could have gone through. Reads, atomics and fences happen at issue, in
program order; a store happens when it commits, after its issue. Then:

- a store commits after the CPU's earlier events happened; after its earlier
  stores to the same word (``tso``: after all its earlier stores; ``weak``:
  after those before an ``smp_wmb``, ``smp_mb`` or release in between); an
  ``smp_mb`` and every atomic come after all the CPU's earlier stores (they
  drain the buffer);
- ``co`` is commit order; a read of another CPU's store (or of an own store
  that is not the newest own one, which it would have forwarded) comes after
  that store and after the CPU's own newest earlier store to the word (it
  left the buffer);
- a read that returns the newest value (every read under ``sc`` and ``tso``;
  under ``weak`` acquire loads, atomics, and the load of ``this_cpu_inc``)
  comes before every store ``co``-after the one it read; a ``weak`` plain load
  may return an older value, but not older than what its last view update
  (``smp_rmb``, ``smp_mb``, an acquire, a successful value-returning atomic)
  had seen: that update comes before every store ``co``-after the one it read.

Consistent = that relation is acyclic, and each word is sequentially
consistent on its own (``po-loc`` ∪ ``rf`` ∪ ``co`` ∪ ``fr`` acyclic: the
machine's views only move forward). A read of the newest own store needs no
order with it (it was forwarded, or read after it committed). The graph model
never produces load buffering (a read happens before any later store of its
CPU commits): neither does the machine, so both give the same final states,
which `tests/test_graph_model.py` checks against the machine on random
programs.

The kernel's waits are events too: a CPU parking for stop_machine or a
context switch is a full barrier on that CPU (`GraphModel.fence_cpu`); the
end of a grace period or of a stop_machine is one moment in every CPU's
program order (`GraphModel.fence_all`), as the machine drains every buffer
and then every view. Not here: ``lkmm`` (its own operational model, and the
axiomatic engine of the litmus runner).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shmkernel.errors import UsageError
from shmkernel.memory.models import (
    ACQ_READ,
    CLASS,
    FENCE_MB,
    FENCE_RMB,
    FENCE_WMB,
    PERCPU_RMW,
    READ,
    REL_WRITE,
    RMW_FULL,
    RMW_RELAXED,
    WRITE,
    _rmw,
)

GRAPH_MODELS = ("sc", "tso", "weak")
INIT = -1  # the initial write of a word: first in its co, before every time point
ALL = -1  # the CPU of an event in every CPU's program order (`GraphModel.fence_all`)
OUTSIDE = -2  # the CPU of a write made outside the model (`GraphModel._sync_outside`)


@dataclass
class Event:
    """One event of one CPU. A read-modify-write that succeeded is one event that
    reads and writes; a failing one only reads; ``this_cpu_inc`` is two events."""

    cpu: int
    reads: bool
    writes: bool
    loc: int
    wval: int = 0  # the value written
    newest: bool = False  # a read that returns the newest value (not a lagging view)
    at_issue: bool = True  # happens at issue (a read, an atomic, a fence); a store at commit
    drains_sb: bool = False  # every earlier store of the CPU commits before it
    drains_view: bool = False  # later loads of the CPU see every store committed before it
    epoch: int = 0  # weak: write barriers before it on its CPU
    rf: int = INIT  # the write it reads (an event id, or INIT)
    rval: int = 0


@dataclass
class _Choice:
    """One consistent way to add a CPU's pending operation."""

    rf: int = INIT
    co_at: int = -1  # index in the word's co list the write goes to
    rval: int = 0
    ret: object = None
    ok: bool = True
    new: int = 0


@dataclass
class GraphModel:
    """``sc``/``tso``/``weak`` as execution graphs (see the module docstring)."""

    w: object
    ncpus: int
    name: str
    graph = True
    acquire_choices = False
    check_full = False  # tests: hold every incremental check to the from-scratch one
    events: list[Event] = field(default_factory=list)
    po: list[list[int]] = field(default_factory=list)
    co: dict[int, list[int]] = field(default_factory=dict)
    init: dict[int, int] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)
    _cache: dict[int, tuple[tuple, list[_Choice]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in GRAPH_MODELS:
            raise UsageError(f"the graph explorer knows {', '.join(GRAPH_MODELS)}, not {self.name}")
        self.reset()

    def reset(self) -> None:
        n = self.ncpus
        self.events = []
        self.po = [[] for _ in range(n)]
        self.co = {}
        self.init = {}
        self.epoch = [0] * n
        self._cache = {}
        # what adding the next event of each CPU needs (`_edges`), kept as events are added
        self.last_exec = [-1] * n  # the CPU's last event that happened at issue
        self.view = [-1] * n  # its last view update
        self.stores: list[list[int]] = [[] for _ in range(n)]
        self.newest_own: list[dict[int, int]] = [{} for _ in range(n)]
        self.last_loc: list[dict[int, int]] = [{} for _ in range(n)]
        self.reads_of: dict[int, list[int]] = {}
        self.frsrc: dict[int, int] = {}  # a read: what comes before the stores co-after its write
        self.tsucc: list[list[int]] = []  # the time order's edges (see the module docstring)
        self.csucc: list[list[int]] = []  # each word's coherence edges

    # -- the Driver's side ----------------------------------------------------------------------
    def latest(self, addr: int) -> int:
        return self.w[addr]  # type: ignore[index]

    def read_choices(self, cpu: int, addr: int) -> int:
        return 1

    def actions(self) -> list[int]:
        return []

    def op_choices(self, cpu: int, name: str, addr: int, a1: int, a2: int) -> int:
        """How many consistent ways ``cpu``'s pending operation has (at least one)."""
        if CLASS[name] in (FENCE_MB, FENCE_RMB, FENCE_WMB):
            return 1
        return len(self._choices(cpu, name, addr, a1, a2))

    def cpu_op(self, cpu: int, name: str, addr: int, a1: int, a2: int, older: int = 0) -> object:
        cls = CLASS[name]
        if cls in (FENCE_MB, FENCE_RMB, FENCE_WMB):
            self._fence(cpu, cls)
            return None
        ch = self._choices(cpu, name, addr, a1, a2)[older]
        self._cache.pop(cpu, None)
        self._add(cpu, name, addr, ch)
        self._cache.clear()
        return ch.ret

    def fence_cpu(self, cpu: int) -> None:
        """A full barrier that is no ``smp_mb()`` of the program (a context switch)."""
        self._fence(cpu, FENCE_MB)
        self._cache.clear()

    def fence_all(self) -> None:
        """One moment on every CPU at once (a grace period's end, a stop_machine): every
        CPU's earlier stores commit before it, every CPU's later loads see them. One
        event in every CPU's program order."""
        if self.name == "sc":
            return
        e = Event(ALL, False, False, -1, drains_sb=True, drains_view=True)
        eid = self._new_node(e)
        for cpu in range(self.ncpus):
            self.po[cpu].append(eid)
            self.epoch[cpu] += 1
            if self.last_exec[cpu] >= 0:
                self.tsucc[self.last_exec[cpu]].append(eid)
            for st in self.stores[cpu]:
                self.tsucc[st].append(eid)
            self.last_exec[cpu] = self.view[cpu] = eid
        self._cache.clear()

    def state_key(self) -> tuple:
        """The graph itself, independent of the order its events were added in."""
        ref = self._ref
        cpus = tuple(
            tuple(
                (e.cpu == ALL, e.reads, e.writes, e.loc, e.wval, ref(e.rf) if e.reads else None, e.drains_view)
                for e in map(self.events.__getitem__, ids)
            )
            for ids in self.po
        )
        return cpus, tuple(sorted((loc, tuple(ref(x) for x in ids)) for loc, ids in self.co.items()))

    def describe(self, aid: int, name_of: Callable[[int], str]) -> str:
        return "?"

    def do_action(self, aid: int) -> tuple[int, int, int]:
        raise AssertionError("the graph model has no actions")

    # -- building ------------------------------------------------------------------------------------
    def _ref(self, eid: int) -> tuple[int, int] | None:
        if eid == INIT:
            return None
        e = self.events[eid]
        if e.cpu == OUTSIDE:
            return e.cpu, sum(1 for x in self.events[:eid] if x.cpu == OUTSIDE)
        cpu = 0 if e.cpu == ALL else e.cpu
        return e.cpu, self.po[cpu].index(eid)

    def _initial(self, loc: int) -> int:
        if loc not in self.init:
            self.init[loc] = int(self.w[loc])  # type: ignore[index]
        return self.init[loc]

    def _sync_outside(self, loc: int) -> None:
        """A word written outside the model since (``ctx.oracle_write``: set-up and
        bookkeeping, not kernel code) gets that write as the last of its ``co``: an
        event of no CPU, ordered only by ``co``."""
        co = self.co.get(loc)
        expected = self._value(co[-1], loc) if co else self._initial(loc)
        now = int(self.w[loc])  # type: ignore[index]
        if now != expected:
            e = Event(OUTSIDE, False, True, loc, wval=now, at_issue=False)
            co = self.co.setdefault(loc, [])
            eid = self._new_node(e)
            t, c = self._write_edges(eid, e, len(co))
            for a, b in t:
                self.tsucc[a].append(b)
            for a, b in c:
                self.csucc[a].append(b)
            co.append(eid)
            self._cache.clear()

    def _value(self, eid: int, loc: int) -> int:
        return self._initial(loc) if eid == INIT else self.events[eid].wval

    def _fence(self, cpu: int, cls: int) -> None:
        if self.name == "sc" or (self.name == "tso" and cls != FENCE_MB):
            return  # program order already; tso: smp_rmb/smp_wmb are no-ops
        if cls == FENCE_WMB:
            self.epoch[cpu] += 1
            return
        e = Event(cpu, False, False, -1, drains_sb=cls == FENCE_MB, drains_view=True, epoch=self.epoch[cpu])
        if cls == FENCE_MB:
            self.epoch[cpu] += 1
        self._append(e, -1, [])

    def _new_node(self, e: Event) -> int:
        self.events.append(e)
        self.tsucc.append([])
        self.csucc.append([])
        return len(self.events) - 1

    def _append(self, e: Event, co_at: int, undo: list) -> int:
        """Add ``e`` (its write at ``co_at`` in its word's co): the event, its edges, and
        its CPU's state for the next one; what was done goes on ``undo`` (`_undo`)."""
        cpu = e.cpu
        eid = self._new_node(e)
        t, c = self._edges(eid, e, co_at)
        for a, b in t:
            self.tsucc[a].append(b)
        for a, b in c:
            self.csucc[a].append(b)
        saved = (
            self.last_exec[cpu],
            self.view[cpu],
            len(self.stores[cpu]),
            dict(self.newest_own[cpu]),
            dict(self.last_loc[cpu]),
        )
        undo.append((eid, t, c, saved))
        self.po[cpu].append(eid)
        if e.at_issue:
            self.last_exec[cpu] = eid
        if e.drains_view:
            self.view[cpu] = eid
        if e.loc >= 0:
            self.last_loc[cpu][e.loc] = eid
        if e.reads:
            self.reads_of.setdefault(e.loc, []).append(eid)
        if e.writes:
            self.stores[cpu].append(eid)
            self.newest_own[cpu][e.loc] = eid
            self.co.setdefault(e.loc, []).insert(co_at, eid)
        return eid

    def _undo(self, undo: list) -> None:
        """Take back what `_append` did, newest first."""
        for eid, t, c, saved in reversed(undo):
            e = self.events[eid]
            cpu = e.cpu
            for a, _ in reversed(c):
                self.csucc[a].pop()
            for a, _ in reversed(t):
                self.tsucc[a].pop()
            self.last_exec[cpu], self.view[cpu], n, self.newest_own[cpu], self.last_loc[cpu] = saved
            del self.stores[cpu][n:]
            self.po[cpu].pop()
            if e.reads:
                self.reads_of[e.loc].pop()
                self.frsrc.pop(eid, None)
            if e.writes:
                co = self.co[e.loc]
                co.remove(eid)
                if not co:
                    del self.co[e.loc]
            assert eid == len(self.events) - 1
            self.events.pop()
            self.tsucc.pop()
            self.csucc.pop()

    def _edges(self, eid: int, e: Event, co_at: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The time-order and coherence edges the new event ``eid`` of its CPU brings:
        every one of them touches it, so a cycle after adding it goes through it."""
        cpu, weak, tso, sc = e.cpu, self.name == "weak", self.name == "tso", self.name == "sc"
        t: list[tuple[int, int]] = []
        c: list[tuple[int, int]] = []
        last = self.last_exec[cpu]
        if last >= 0:
            t.append((last, eid))  # after the CPU's earlier events (a store: commits after its issue)
        stores = self.stores[cpu]
        if e.at_issue and e.drains_sb:
            t += [(st, eid) for st in stores]
        elif e.writes and not e.at_issue:
            ev = self.events
            t += [(st, eid) for st in stores if tso or ev[st].loc == e.loc or (weak and ev[st].epoch < e.epoch)]
        if e.loc >= 0:
            prev = self.last_loc[cpu].get(e.loc)
            if prev is not None:
                c.append((prev, eid))
        co = self.co.get(e.loc, [])
        if e.reads:
            own = self.newest_own[cpu].get(e.loc)
            if e.rf != INIT:
                c.append((e.rf, eid))
                if e.rf != own:
                    t.append((e.rf, eid))  # read after it committed
            if own is not None and e.rf != own:
                t.append((own, eid))  # the own store left the buffer first
            later = co[(0 if e.rf == INIT else co.index(e.rf) + 1) :]
            src = eid if (e.newest or sc) else self.view[cpu]
            self.frsrc[eid] = src
            if src >= 0:
                t += [(src, y) for y in later]
            c += [(eid, y) for y in later]
        if e.writes:
            wt, wc = self._write_edges(eid, e, co_at)
            t += wt
            c += wc
        return t, c

    def _write_edges(self, eid: int, e: Event, co_at: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """A write placed at ``co_at`` in its word's co: its co neighbours, and the reads
        of writes co-before it, which come before it (fr)."""
        co = self.co.get(e.loc, [])
        t: list[tuple[int, int]] = []
        c: list[tuple[int, int]] = []
        if co_at > 0:
            t.append((co[co_at - 1], eid))
            c.append((co[co_at - 1], eid))
        if co_at < len(co):
            t.append((eid, co[co_at]))
            c.append((eid, co[co_at]))
        before = set(co[:co_at])
        for r in self.reads_of.get(e.loc, ()):
            rf = self.events[r].rf
            if r != eid and (rf == INIT or rf in before):
                c.append((r, eid))
                src = self.frsrc.get(r, -1)
                if src >= 0:
                    t.append((src, eid))
        return t, c

    def _cycle_through(self, eid: int) -> bool:
        """Did adding ``eid`` close a cycle? Its edges touch it, except a lagging load's:
        its view update comes before the stores co-after the write it read."""
        if _reaches(self.csucc, self.csucc[eid], eid) or _reaches(self.tsucc, self.tsucc[eid], eid):
            return True
        src = self.frsrc.get(eid, eid)
        if src != eid and src >= 0:
            e = self.events[eid]
            co = self.co.get(e.loc, [])
            later = co[(0 if e.rf == INIT else co.index(e.rf) + 1) :]
            return _reaches(self.tsucc, later, src)
        return False

    def _shape(self, cpu: int, name: str, addr: int) -> list[Event]:
        """The events an operation adds, before its choices (rf, co place) are made."""
        cls, weak, tso = CLASS[name], self.name == "weak", self.name == "tso"
        ep = self.epoch[cpu]
        if cls in (READ, ACQ_READ):
            return [Event(cpu, True, False, addr, newest=not weak or cls == ACQ_READ, drains_view=weak and cls == ACQ_READ)]
        if cls in (WRITE, REL_WRITE):
            return [Event(cpu, False, True, addr, at_issue=self.name == "sc", epoch=ep + (1 if weak and cls == REL_WRITE else 0))]
        if cls == PERCPU_RMW:
            return [
                Event(cpu, True, False, addr, newest=True),
                Event(cpu, False, True, addr, at_issue=self.name == "sc", epoch=ep),
            ]
        assert cls in (RMW_FULL, RMW_RELAXED), name
        return [Event(cpu, True, True, addr, newest=True, drains_sb=weak or tso, drains_view=weak and cls == RMW_FULL)]

    def _choices(self, cpu: int, name: str, addr: int, a1: int, a2: int) -> list[_Choice]:
        key = (name, addr, a1, a2)
        self._sync_outside(addr)
        hit = self._cache.get(cpu)
        if hit is not None and hit[0] == key:
            return hit[1]
        out = [ch for ch in self._candidates(cpu, name, addr, a1, a2) if self._try(cpu, name, addr, ch)]
        assert out, f"no consistent way to add {name} on CPU {cpu}"
        self._cache[cpu] = (key, out)
        return out

    def _candidates(self, cpu: int, name: str, addr: int, a1: int, a2: int) -> list[_Choice]:
        """Every (rf, co place) of the operation, the newest first."""
        cls = CLASS[name]
        co = self.co.get(addr, [])
        srcs = [INIT, *co]
        # a write made outside the model is where the word starts anew (as the machine's
        # history does): nothing reads older, nothing is placed before it
        lo = max((i + 1 for i, x in enumerate(co) if self.events[x].cpu == OUTSIDE), default=0)
        places = [i for i in range(len(co), lo - 1, -1) if i not in self._rmw_read_positions(addr)]
        if cls in (READ, ACQ_READ):
            return [_Choice(rf=s, rval=self._value(s, addr), ret=self._value(s, addr)) for s in reversed(srcs[lo:])]
        if cls in (WRITE, REL_WRITE):
            value = 0 if name in ("spin_unlock", "mutex_unlock") else a1
            return [_Choice(co_at=i, new=value) for i in places]
        out = []
        read_by_rmw = {self.events[x].rf for x in co if self.events[x].reads}
        for s in reversed(srcs[lo:]):
            old = self._value(s, addr)
            if cls == PERCPU_RMW:
                new, ret, ok = _rmw(name)(old, a1, a2)
                out += [_Choice(rf=s, co_at=i, rval=old, ret=ret, ok=True, new=new) for i in places]
                continue
            if name in ("spin_lock", "mutex_lock"):
                if old != 0:
                    continue
                new, ret, ok = cpu + 1, None, True
            else:
                new, ret, ok = _rmw(name)(old, a1, a2)
                if name == "mutex_trylock" and ok:
                    new = cpu + 1
            if ok and s in read_by_rmw:
                continue  # two atomics never read the same write
            at = srcs.index(s)  # right after the write it read
            out.append(_Choice(rf=s, co_at=at, rval=old, ret=ret, ok=ok, new=new))
        return out

    def _rmw_read_positions(self, addr: int) -> set[int]:
        """co places a plain store may not take: between an atomic and the write it read."""
        co = self.co.get(addr, [])
        out = set()
        for i, x in enumerate(co):
            e = self.events[x]
            if e.reads:  # an atomic: its rf is right before it
                out.add(i)
        return out

    def _try(self, cpu: int, name: str, addr: int, ch: _Choice) -> bool:
        epoch = self.epoch[cpu]
        undo: list = []
        self._add(cpu, name, addr, ch, undo)
        ok = not any(self._cycle_through(eid) for eid, _, _, _ in undo)
        if self.check_full:
            assert ok == self.consistent_full(), f"incremental {ok} != full check, adding {name} on CPU {cpu}"
        self._undo(undo)
        self.epoch[cpu] = epoch
        return ok

    def _add(self, cpu: int, name: str, addr: int, ch: _Choice, undo: list | None = None) -> None:
        cls = CLASS[name]
        shape = self._shape(cpu, name, addr)
        log = undo if undo is not None else []
        if cls == REL_WRITE and self.name == "weak":
            self.epoch[cpu] += 1
        if cls == PERCPU_RMW:
            r, wr = shape
            r.rf, r.rval = ch.rf, ch.rval
            self._append(r, -1, log)
            wr.wval = ch.new
            self._append(wr, ch.co_at, log)
        else:
            (e,) = shape
            if e.reads:
                e.rf, e.rval = ch.rf, ch.rval
            if e.writes and not ch.ok:
                e.writes, e.drains_view = False, False  # a failing atomic only reads (it orders nothing)
            if e.writes:
                e.wval = ch.new
            self._append(e, ch.co_at, log)
        if cls == REL_WRITE and self.name == "weak":
            self.epoch[cpu] += 1
        if undo is None:
            co = self.co.get(addr)
            self.w[addr] = self._value(co[-1], addr) if co else self._initial(addr)  # type: ignore[index]

    # -- consistency ---------------------------------------------------------------------------
    def consistent_full(self) -> bool:
        """The whole graph checked from scratch (the tests hold the incremental check to it)."""
        return self._coherent() and _acyclic(len(self.events), self._time_edges())

    def _coherent(self) -> bool:
        """Each word alone is sequentially consistent (po-loc, rf, co, fr acyclic)."""
        edges: dict[int, list[int]] = {}
        pos = {}
        for loc, ids in self.co.items():
            for i, x in enumerate(ids):
                pos[x] = i
                if i:
                    edges.setdefault(ids[i - 1], []).append(x)
        for ids in self.po:
            last: dict[int, int] = {}
            for x in ids:
                e = self.events[x]
                if e.loc < 0:
                    continue
                if e.loc in last:
                    edges.setdefault(last[e.loc], []).append(x)
                last[e.loc] = x
        for x, e in enumerate(self.events):
            if not e.reads:
                continue
            if e.rf != INIT:
                edges.setdefault(e.rf, []).append(x)
            co = self.co.get(e.loc, [])
            start = 0 if e.rf == INIT else pos[e.rf] + 1
            for y in co[start:]:
                if y != x:
                    edges.setdefault(x, []).append(y)
        return _acyclic(len(self.events), edges)

    def _time_edges(self) -> dict[int, list[int]]:
        ev, weak, tso, sc = self.events, self.name == "weak", self.name == "tso", self.name == "sc"
        edges: dict[int, list[int]] = {}

        def edge(a: int, b: int) -> None:
            edges.setdefault(a, []).append(b)

        pos = {x: i for ids in self.co.values() for i, x in enumerate(ids)}
        for ids in self.co.values():
            for a, b in zip(ids, ids[1:]):
                edge(a, b)
        for ids in self.po:
            last_exec = -1
            view = -1  # the last view update
            stores: list[int] = []
            newest_own: dict[int, int] = {}
            for x in ids:
                e = ev[x]
                if e.at_issue:
                    if last_exec >= 0:
                        edge(last_exec, x)
                    last_exec = x
                    if e.drains_sb:
                        for s in stores:
                            edge(s, x)
                elif last_exec >= 0:
                    edge(last_exec, x)  # a store commits after its issue
                if e.writes and not e.at_issue:
                    for s in stores:
                        se = ev[s]
                        if tso or se.loc == e.loc or (weak and se.epoch < e.epoch):
                            edge(s, x)
                if e.reads:
                    own = newest_own.get(e.loc)
                    if e.rf != INIT and e.rf != own:
                        edge(e.rf, x)  # read after it committed
                    if own is not None and e.rf != own:
                        edge(own, x)  # the own store left the buffer first
                    later = self.co.get(e.loc, [])[(0 if e.rf == INIT else pos[e.rf] + 1) :]
                    src = x if (e.newest or sc) else view
                    if src >= 0:
                        for y in later:
                            if y != x:
                                edge(src, y)
                if e.drains_view:
                    view = x
                if e.writes:
                    stores.append(x)
                    newest_own[e.loc] = x
        return edges


def _reaches(succ: list[list[int]], start: list[int], goal: int) -> bool:
    """Is ``goal`` reachable from any of ``start`` along ``succ``?"""
    stack, seen = list(start), set()
    while stack:
        x = stack.pop()
        if x == goal:
            return True
        if x not in seen:
            seen.add(x)
            stack.extend(succ[x])
    return False


def _acyclic(n: int, edges: dict[int, list[int]]) -> bool:
    """Kahn's algorithm over nodes 0..n-1."""
    indeg = [0] * n
    for outs in edges.values():
        for b in outs:
            indeg[b] += 1
    stack = [i for i in range(n) if indeg[i] == 0]
    seen = 0
    while stack:
        a = stack.pop()
        seen += 1
        for b in edges.get(a, ()):
            indeg[b] -= 1
            if indeg[b] == 0:
                stack.append(b)
    return seen == n
