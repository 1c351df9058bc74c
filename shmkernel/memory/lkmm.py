"""``lkmm``: an operational model of what the Linux-kernel memory model allows.

The ``weak`` model is multicopy atomic: a committed store is visible to every
CPU alike. The LKMM (tools/memory-model) is not, and kernel code is reasoned
about with it. This model follows the storage subsystem of the POWER model
(Sarkar, Sewell, Alglave, Maranget, Williams, PLDI 2011), on which the LKMM's
propagation rules lean (Alglave, Maranget, McKenney, Parri, Stern, ASPLOS
2018), with the LKMM's fences in place of POWER's:

- **Stores** wait in the CPU's store buffer (the CPU forwards them to its own
  loads) and *commit* in any order, except that a store never passes an
  older one to the same word (CoWW). Committing appends the store to the
  coherence order of its word; no fence constrains commit order, which is how
  ``2+2W+wmbonceonces`` (smp_wmb orders propagation, not coherence) is allowed.
- **Propagation** is per destination: each CPU has its own *view* of each word
  (a position in the word's coherence order). A committed store reaches
  another CPU when that CPU's load chooses to read it (on demand: a load may
  read any store coherence-after its view, committing it first if it is still
  buffered) or when a fence forces it. Before a store reaches a CPU, every store in its *prerequisites* must
  have: that is what the fences add.
- ``smp_wmb``: every store after it carries the CPU's own earlier stores as
  prerequisites (not cumulative: stores it has merely observed are not
  ordered, which is why seed 000's fix needs more than a plain hand-off).
- a **release** store carries everything that has reached its CPU (its own
  stores and the stores it observed, and their prerequisites): A-cumulative.
- ``smp_mb`` (and a successful value-returning atomic, before and after): the
  buffer drains and everything that has reached the CPU is propagated to every
  CPU before the CPU goes on: cumulative both ways, as the LKMM's strong fence.
- **Loads** read forwarding from their own buffer, else any store the CPU
  may still see: committed stores coherence-after its view (propagating them
  to it), or a store its view held earlier (a load satisfied early: read-read
  reordering), never older than the last value the CPU read or wrote of that
  word (CoRR, CoWR) nor older than its view at its last ``smp_rmb``,
  ``smp_mb`` or acquire.
- **Atomic RMWs** read the coherence-latest store of their word (propagated
  to the CPU with its prerequisites) and append theirs right after it,
  carrying the prerequisites of the store they read (a release stays a
  release through an RMW chain: the LKMM's ``rmw-sequence``); the ones that
  return no value, and a *failing* cmpxchg, order nothing else.
- **Locks**: ``spin_lock`` is an acquire RMW that reads the previous unlock
  (a release), drains the buffer and makes the CPU's later stores carry all
  that reached it (the LKMM's po-unlock-lock-po, a little stronger); not a
  strong fence. ``spin_unlock`` is a release.

What it does not show: load buffering (a load is satisfied when the CPU
reaches it, so a later store cannot become visible before it: no LB; see
``shmkernel.litmus.runner.LB_FAMILY``), and address dependencies are not
tracked, so a stale read may ignore one (as on Alpha). Every execution of
this model is an execution of the PLDI 2011-style machine with the LKMM's
fences, so it never shows an outcome the LKMM forbids on the kernel's corpus
(tested against herd7's verdicts in ``tests/test_lkmm.py``).
"""

from __future__ import annotations

from shmkernel.memory.actions import commit_id
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
    CommitActions,
    SCModel,
    _rmw,
    atomic_update,
    stored_value,
)

#: lock acquisitions: acquire RMWs with the LKMM's unlock-lock ordering, not full barriers
LOCKS = ("spin_lock", "mutex_lock", "mutex_trylock")

#: a store's identity: (CPU, index among that CPU's stores); the initial value of
#: word ``a`` is (-1, a) and has reached every CPU (a word written outside the
#: model, by an oracle write, starts anew from (-2, a), (-3, a) ...)
Wid = tuple[int, int]


class LKMMModel(CommitActions, SCModel):
    """Per-CPU views over per-word coherence orders; fences as propagation prerequisites."""

    name = "lkmm"
    acquire_choices = True  # an acquire load may read any store a plain one may

    def __init__(self, words: memoryview, ncpus: int) -> None:
        super().__init__(words, ncpus)
        self.reset()

    def reset(self) -> None:
        n = self.ncpus
        self.sb: list[list[Wid]] = [[] for _ in range(n)]
        self.store: dict[Wid, tuple[int, int, frozenset[Wid]]] = {}  # wid -> (word, value, prerequisites)
        self.co: dict[int, list[Wid]] = {}  # word -> committed stores in coherence order
        self.pos: dict[Wid, int] = {}  # committed store -> its index in its word's coherence order
        self.view: list[dict[int, int]] = [{} for _ in range(n)]  # word -> co index (0: initial)
        self.hist: list[dict[int, list[int]]] = [{} for _ in range(n)]  # co indices the view held
        self.floor: list[dict[int, int]] = [{} for _ in range(n)]  # oldest co index a load may read
        self.reached: list[set[Wid]] = [set() for _ in range(n)]  # stores that reached the CPU
        self.own: list[list[Wid]] = [[] for _ in range(n)]
        self.wmb_pre: list[frozenset[Wid]] = [frozenset() for _ in range(n)]
        self.everywhere: set[Wid] = set()  # stores known to have reached every CPU
        self.when: dict[Wid, int] = {}  # execution order of the stores (newest read first)
        self.resets: dict[int, int] = {}  # word -> initial stores so far (an oracle write starts anew)

    # -- coherence and propagation --------------------------------------------------------------
    def _co(self, addr: int) -> list[Wid]:
        c = self.co.get(addr)
        if c is not None and self.w[addr] != self.store[c[-1]][1]:
            c = None  # written outside the model (ctx.oracle_write: set-up, not kernel code)
        if c is None:
            resets = self.resets.get(addr, 0)
            self.resets[addr] = resets + 1
            init: Wid = (-1 - resets, addr)  # a fresh initial store, visible to all
            self.store[init] = (addr, self.w[addr], frozenset())
            self.pos[init] = 0
            self.everywhere.add(init)
            c = self.co[addr] = [init]
            for cpu in range(self.ncpus):
                self.view[cpu].pop(addr, None)
                self.hist[cpu].pop(addr, None)
                self.floor[cpu].pop(addr, None)
        return c

    def _see(self, cpu: int, addr: int, idx: int) -> None:
        """Move ``cpu``'s view of ``addr`` forward to co index ``idx`` (never back)."""
        v = self.view[cpu].get(addr, 0)
        if idx > v:
            self.view[cpu][addr] = idx
            self.hist[cpu].setdefault(addr, [0]).append(idx)

    def _commit(self, cpu: int, index: int) -> int:
        wid = self.sb[cpu].pop(index)
        addr, value, _ = self.store[wid]
        co = self._co(addr)
        self.pos[wid] = len(co)
        co.append(wid)
        self.w[addr] = value
        self._see(cpu, addr, len(co) - 1)
        self.floor[cpu][addr] = len(co) - 1  # CoWR: never read older than its own store
        return addr

    def _commit_wid(self, wid: Wid) -> None:
        """Commit a buffered store now, with the older stores to its word first (CoWW)."""
        cpu = wid[0]
        sb = self.sb[cpu]
        addr = self.store[wid][0]
        while wid in sb:
            i = next(i for i, x in enumerate(sb) if self.store[x][0] == addr)
            self._commit(cpu, i)

    def _ensure(self, wid: Wid, cpu: int) -> None:
        """Propagate ``wid`` to ``cpu``, its prerequisites first (committing them if needed)."""
        if wid not in self.pos:
            self._commit_wid(wid)
        co = self._co(self.store[wid][0])
        i = self.pos[wid]
        if i >= len(co) or co[i] != wid:
            return  # superseded: its word was written outside the model since
        if wid[0] == cpu or wid in self.everywhere or wid in self.reached[cpu]:
            return
        for p in sorted(self.store[wid][2]):
            self._ensure(p, cpu)
        self.reached[cpu].add(wid)
        self._see(cpu, self.store[wid][0], self.pos[wid])

    def _drain_sb(self, cpu: int) -> None:
        while self.sb[cpu]:
            self._commit(cpu, 0)

    def _cumulative(self, cpu: int) -> frozenset[Wid]:
        """Prerequisites of a cumulative store: the CPU's write-barrier ones, its own
        stores, and every store that has reached it (and so theirs)."""
        return self.wmb_pre[cpu] | frozenset(self.own[cpu]) | frozenset(self.reached[cpu])

    def _strong_fence(self, cpu: int) -> None:
        """smp_mb: drain the buffer; what reached this CPU reaches every CPU."""
        self._drain_sb(cpu)
        for wid in sorted(self.reached[cpu] | set(self.own[cpu])):
            if wid in self.everywhere:
                continue
            for d in range(self.ncpus):
                self._ensure(wid, d)
            self.everywhere.add(wid)
        self._read_fence(cpu)

    def _read_fence(self, cpu: int) -> None:
        self.floor[cpu].update(self.view[cpu])

    # -- loads ---------------------------------------------------------------------------------
    def _forwarded(self, cpu: int, addr: int) -> int | None:
        for wid in reversed(self.sb[cpu]):
            if self.store[wid][0] == addr:
                return self.store[wid][1]
        return None

    def _candidates(self, cpu: int, addr: int) -> list[Wid]:
        """Stores a load may read, the most recently executed first: other CPUs'
        buffered stores to the word (reading one commits it: commit order is free),
        committed stores coherence-after the view, then stores the view held
        (a load satisfied early). The first is what a sequentially consistent
        machine would return, so a scheduler that takes defaults sees sc."""
        co = self._co(addr)
        buffered = [wid for c, sb in enumerate(self.sb) if c != cpu for wid in sb if self.store[wid][0] == addr]
        buffered.sort(key=self.when.__getitem__, reverse=True)
        v = self.view[cpu].get(addr, 0)
        lo = self.floor[cpu].get(addr, 0)
        newer = [co[i] for i in range(len(co) - 1, v, -1)]
        older = [co[i] for i in reversed(self.hist[cpu].get(addr, [0])) if i >= lo]
        return buffered + newer + older

    def read_choices(self, cpu: int, addr: int) -> int:
        if self._forwarded(cpu, addr) is not None:
            return 1
        return len(self._candidates(cpu, addr))

    def _load(self, cpu: int, addr: int, older: int = 0) -> int:
        v = self._forwarded(cpu, addr)
        if v is not None:
            return v
        cands = self._candidates(cpu, addr)
        wid = cands[min(older, len(cands) - 1)]
        self._ensure(wid, cpu)
        idx = self.pos[wid]
        if self.floor[cpu].get(addr, 0) < idx:
            self.floor[cpu][addr] = idx  # CoRR
        return self.store[wid][1]

    # -- stores --------------------------------------------------------------------------------
    def _store(self, cpu: int, addr: int, value: int, pre: frozenset[Wid]) -> Wid:
        wid = (cpu, len(self.own[cpu]))
        self.store[wid] = (addr, value, pre)
        self.when[wid] = len(self.when)
        self.own[cpu].append(wid)
        self.sb[cpu].append(wid)
        return wid

    def _rmw_op(self, cpu: int, name: str, addr: int, a1: int, a2: int, full: bool) -> object:
        co = self._co(addr)
        for wid in [x for x in self.sb[cpu] if self.store[x][0] == addr]:
            self._commit_wid(wid)
        latest = co[-1]
        self._ensure(latest, cpu)
        new, ret, ok = atomic_update(name, cpu, self.store[latest][1], a1, a2)
        if ok and name in LOCKS:
            self._lock_acquired(cpu, addr, new)
            return ret
        if ok and full:
            self._strong_fence(cpu)
        if ok:  # an RMW extends the release it read (the LKMM's rmw-sequence): it carries its prerequisites
            self._commit_wid(self._store(cpu, addr, new, self.wmb_pre[cpu] | self.store[latest][2]))
        else:
            self.floor[cpu][addr] = len(co) - 1
        if ok and full:
            self._strong_fence(cpu)
        return ret

    def _lock_acquired(self, cpu: int, addr: int, new: int) -> None:
        """A lock is an acquire RMW that read the previous owner's unlock (a release:
        what reached that CPU before it has reached this one). On top, as the LKMM's
        po-unlock-lock-po asks and a little more: the CPU's buffer drains, its later
        stores carry everything that has reached it (cumulative), and its later loads
        read nothing older than its view now. Not a strong fence: nothing is pushed to
        other CPUs (SB with unlock+lock stays allowed, as smp_mb__after_unlock_lock says)."""
        self._drain_sb(cpu)
        self._commit_wid(self._store(cpu, addr, new, self.wmb_pre[cpu]))
        self.wmb_pre[cpu] = self._cumulative(cpu)
        self._read_fence(cpu)

    def cpu_op(self, cpu: int, name: str, addr: int, a1: int, a2: int, older: int = 0) -> object:
        cls = CLASS[name]
        if cls == READ:
            return self._load(cpu, addr, older)
        if cls == ACQ_READ:
            v = self._load(cpu, addr, older)
            self._read_fence(cpu)
            return v
        if cls == WRITE:
            self._store(cpu, addr, a1, self.wmb_pre[cpu])
            return None
        if cls == REL_WRITE:
            self._store(cpu, addr, stored_value(name, a1), self._cumulative(cpu))
            return None
        if cls == PERCPU_RMW:  # __this_cpu_inc: a plain load and a buffered store
            new, ret, _ = _rmw(name)(self._load(cpu, addr), a1, a2)
            self._store(cpu, addr, new, self.wmb_pre[cpu])
            return ret
        if cls in (RMW_FULL, RMW_RELAXED):
            return self._rmw_op(cpu, name, addr, a1, a2, cls == RMW_FULL)
        if cls == FENCE_MB:
            self._strong_fence(cpu)
        elif cls == FENCE_WMB:
            self.wmb_pre[cpu] = self.wmb_pre[cpu] | frozenset(self.own[cpu])
        elif cls == FENCE_RMB:
            self._read_fence(cpu)
        return None

    def fence_cpu(self, cpu: int) -> None:
        self._strong_fence(cpu)

    def fence_all(self) -> None:
        """Every buffer drains, every store reaches every CPU, no load reads older."""
        for cpu in range(self.ncpus):
            self._drain_sb(cpu)
        for cpu in range(self.ncpus):
            self._strong_fence(cpu)
        for cpu in range(self.ncpus):
            self._read_fence(cpu)

    # -- schedule actions ----------------------------------------------------------------------
    def actions(self) -> list[int]:
        """Commits: any buffered store that passes no older store to its word."""
        out = []
        for c, sb in enumerate(self.sb):
            words: set[int] = set()
            for i, wid in enumerate(sb):
                a = self.store[wid][0]
                if a not in words:
                    out.append(commit_id(c, i))
                    words.add(a)
        return out

    def state_key(self) -> tuple:
        """Everything later steps depend on, canonical (for the explorer's state cache)."""
        per_cpu = tuple(
            (
                tuple(self.sb[c]),
                tuple(sorted(self.view[c].items())),
                tuple(sorted((a, tuple(h)) for a, h in self.hist[c].items())),
                tuple(sorted(self.floor[c].items())),
                tuple(sorted(self.reached[c])),
                tuple(sorted(self.wmb_pre[c])),
            )
            for c in range(self.ncpus)
        )
        stores = tuple(sorted((k, v[0], v[1], tuple(sorted(v[2]))) for k, v in self.store.items()))
        co = tuple(sorted((a, tuple(c)) for a, c in self.co.items()))
        return per_cpu, stores, co, tuple(sorted(self.everywhere))
