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

The kernel's waits are events too: parking or a context switch is a full
barrier on its CPU (`GraphModel.fence_cpu`), the end of a grace period or a
stop_machine one moment in every CPU's program order (`GraphModel.fence_all`);
TruSt has grace periods as memory instead (`shmkernel.schedule.rcu_memory`).
``lkmm``'s graph: `shmkernel.memory.graph_lkmm`, its consistency the LKMM's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shmkernel.errors import UsageError
from shmkernel.memory.graph_order import ALL, INIT, OUTSIDE, Event, ExecutionGraph
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
    atomic_update,
    stored_value,
)

GRAPH_MODELS = ("sc", "tso", "weak")
AWAIT_CHANGE = "rcu_qs_wait"  # a read of another value than its a1 only (`ops.Access.AWAIT`)


@dataclass
class _Choice:
    """One consistent way to add a CPU's pending operation."""

    rf: int = INIT
    co_at: int = -1  # index in the word's co list the write goes to
    rval: int = 0
    ret: object = None
    ok: bool = True
    new: int = 0


class GraphModel(ExecutionGraph):
    """``sc``/``tso``/``weak`` as execution graphs (see the module docstring)."""

    graph = True
    acquire_choices = False
    check_full = False  # tests: hold every incremental check to the from-scratch one
    wants_deps = False  # the machine's time order needs no dependencies (no load buffering)
    models = GRAPH_MODELS

    def __init__(self, w: object, ncpus: int, name: str) -> None:
        if name not in self.models:
            raise UsageError(f"the graph explorer knows {', '.join(self.models)}, not {name}")
        self.w, self.ncpus, self.name = w, ncpus, name
        self.reset()

    def reset(self) -> None:
        self.reset_graph()
        self.init: dict[int, int] = {}
        self.epoch = [0] * self.ncpus
        self._cache: dict[int, tuple[tuple, list[_Choice]]] = {}

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

    def kind(self, name: str) -> int:
        """The operation's class as the graph has it: under ``sc`` a ``this_cpu_inc`` is
        one event that reads and writes (the machine takes it in one step, nothing in
        between); under tso and weak, a read then a buffered write."""
        cls = CLASS[name]
        return RMW_RELAXED if cls == PERCPU_RMW and self.name == "sc" else cls

    def ways(self, cpu: int, name: str, addr: int, a1: int, a2: int) -> list[_Choice]:
        """The consistent ways to add ``cpu``'s pending memory operation, as ``older``
        numbers them (`shmkernel.schedule.trust` picks them by the write they read)."""
        return self._choices(cpu, name, addr, a1, a2)

    def ref(self, eid: int) -> tuple[int, int] | None:
        """An event by its CPU and place in that CPU's program order (None: the initial
        write): the same event in every execution that replays the graph."""
        return self._ref(eid)

    def value(self, eid: int, loc: int) -> int:
        """What the write ``eid`` (or INIT) of word ``loc`` wrote."""
        return self._value(eid, loc)

    def cpu_op(self, cpu: int, name: str, addr: int, a1: int, a2: int, older: int = 0) -> object:
        cls = CLASS[name]
        if cls in (FENCE_MB, FENCE_RMB, FENCE_WMB):
            self._fence(cpu, cls)
            return None
        ch = self._choices(cpu, name, addr, a1, a2)[older]
        self._add(cpu, name, addr, ch)
        self._cache.clear()
        return ch.ret

    # Kernel synchronisation (`shmkernel.schedule.kernel_sync`) happens at moments of the
    # schedule, and what it guarantees rests on their order across CPUs: a reader's
    # quiescent state comes after the grace period's start that waits for it. So each
    # of these fences is also after the one before it (the sync chain), as the machine
    # has them in real time, in every model (sc too).
    def fence_cpu(self, cpu: int) -> None:
        """A full barrier on ``cpu`` that is no ``smp_mb()`` of its program (a context
        switch, a quiescent state, a grace period's start)."""
        e = Event(cpu, False, False, -1, drains_sb=True, drains_view=True, epoch=self.epoch[cpu])
        self.epoch[cpu] += 1
        self._chain(self._append(e, -1, []))

    def fence_all(self) -> None:
        """One moment on every CPU at once (a grace period's end, a stop_machine): every
        CPU's earlier stores commit before it, every CPU's later loads see them. One
        event in every CPU's program order."""
        e = Event(ALL, False, False, -1, drains_sb=True, drains_view=True, at=len(self.po[0]))
        eid = self._new_node(e)
        for cpu in range(self.ncpus):
            self.po[cpu].append(eid)
            self.epoch[cpu] += 1
            if self.last_exec[cpu] >= 0:
                self.tsucc[self.last_exec[cpu]].append(eid)
            for st in self.stores[cpu]:
                self.tsucc[st].append(eid)
            self.stores[cpu] = []
            self.last_exec[cpu] = self.view[cpu] = eid
        self._chain(eid)

    def _chain(self, eid: int) -> None:
        if self.sync_chain:
            self.tsucc[self.sync_chain[-1]].append(eid)
        self.sync_chain.append(eid)
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
        co = tuple(sorted((loc, tuple(ref(x) for x in ids)) for loc, ids in self.co.items()))
        return cpus, co, tuple(ref(x) for x in self.sync_chain)

    def describe(self, aid: int, name_of: Callable[[int], str]) -> str:
        return "?"

    def do_action(self, aid: int) -> tuple[int, int, int]:
        raise AssertionError("the graph model has no actions")

    # -- building ------------------------------------------------------------------------------------
    def _ref(self, eid: int) -> tuple[int, int] | None:
        if eid == INIT:
            return None
        e = self.events[eid]
        return e.cpu, e.at

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
            e = Event(OUTSIDE, False, True, loc, wval=now, at_issue=False, at=self.outside)
            self.outside += 1
            co = self.co.setdefault(loc, [])
            eid = self._new_node(e)
            self._link(*self._write_edges(eid, e, len(co)))
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

    def _shape(self, cpu: int, name: str, addr: int) -> list[Event]:
        """The events an operation adds, before its choices (rf, co place) are made."""
        cls, weak, tso = self.kind(name), self.name == "weak", self.name == "tso"
        ep = self.epoch[cpu]
        if cls in (READ, ACQ_READ):
            return [
                Event(cpu, True, False, addr, newest=not weak or cls == ACQ_READ, drains_view=weak and cls == ACQ_READ)
            ]
        if cls in (WRITE, REL_WRITE):
            return [
                Event(
                    cpu,
                    False,
                    True,
                    addr,
                    at_issue=self.name == "sc",
                    epoch=ep + (1 if weak and cls == REL_WRITE else 0),
                )
            ]
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
        co = self.co.get(addr, [])
        top, end = (co[-1] if co else INIT), len(co)
        cls = self.kind(name)
        reads, writes, free = cls not in (WRITE, REL_WRITE), cls not in (READ, ACQ_READ), self._newest_is_free(cpu)
        out = []
        for ch in self._candidates(cpu, name, addr, a1, a2):
            if (not reads or ch.rf == top) and (not writes or ch.co_at == end) and free:
                # the newest way (read the last write, go last in co) is always consistent:
                # it comes after everything (no edge leaves it); the tests check it is
                assert not self.check_full or self._try(cpu, name, addr, ch), f"newest {name} inconsistent"
                out.append(ch)
            elif self._try(cpu, name, addr, ch):
                out.append(ch)
        assert out or not free or name == AWAIT_CHANGE, f"no consistent way to add {name} on CPU {cpu}"
        self._cache[cpu] = (key, out)
        return out

    def promise_next(self, cpu: int, writer: tuple[int, int], value: int) -> None:
        raise UsageError(f"a load reading a write still to come (load buffering) needs lkmm, not {self.name}")

    def event_deps(self, cpu: int) -> None:  # dependencies: not tracked (`graph_lkmm` tracks them)
        return None

    def _newest_is_free(self, cpu: int) -> bool:  # is the newest way consistent without a check?
        return True

    def _candidates(self, cpu: int, name: str, addr: int, a1: int, a2: int) -> list[_Choice]:
        """Every (rf, co place) of the operation, the newest first."""
        cls = self.kind(name)
        co = self.co.get(addr, [])
        srcs = [INIT, *co]
        # a write made outside the model is where the word starts anew (as the machine's
        # history does): nothing reads older, nothing is placed before it
        lo = max((i + 1 for i, x in enumerate(co) if self.events[x].cpu == OUTSIDE), default=0) if self.outside else 0
        if cls in (READ, ACQ_READ):  # (an awaiting read reads only another value than a1)
            vals = ((s, self._value(s, addr)) for s in reversed(srcs[lo:]))
            return [_Choice(rf=s, rval=v, ret=v) for s, v in vals if name != AWAIT_CHANGE or v != a1]
        taken = self._rmw_read_positions(addr)
        places = [i for i in range(len(co), lo - 1, -1) if i not in taken]
        if cls in (WRITE, REL_WRITE):
            return [_Choice(co_at=i, new=stored_value(name, a1)) for i in places]
        out = []
        read_by_rmw = {self.events[x].rf for x in co if self.events[x].reads}
        for s in reversed(srcs[lo:]):
            old = self._value(s, addr)
            new, ret, ok = atomic_update(name, cpu, old, a1, a2)
            if cls == PERCPU_RMW:
                out += [_Choice(rf=s, co_at=i, rval=old, ret=ret, ok=True, new=new) for i in places]
                continue
            if name in ("spin_lock", "mutex_lock") and old != 0:
                continue  # a lock is taken only from a write that left it free
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
        """Is the graph with ``cpu``'s step added ``ch``'s way consistent? (Added, judged
        by `_consistent_after`, taken back.)"""
        epoch = self.epoch[cpu]
        undo: list = []
        self._add(cpu, name, addr, ch, undo)
        ok = self._consistent_after(undo)
        self._undo(undo)
        self.epoch[cpu] = epoch
        return ok

    def _consistent_after(self, undo: list) -> bool:
        """Is the graph still consistent after the additions ``undo`` records? A new cycle
        goes through a new event (the graph before was acyclic)."""
        ok = not any(self._cycle_through(eid) for eid, _, _, _ in undo)
        if self.check_full:
            assert ok == self.consistent_full(), f"incremental {ok} != full check"
        return ok

    def _add(self, cpu: int, name: str, addr: int, ch: _Choice, undo: list | None = None) -> None:
        cls = self.kind(name)
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
