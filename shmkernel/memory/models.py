"""Emulated memory models behind the ctx door: ``sc``, ``tso``, ``weak`` (and
``lkmm``, in shmkernel.memory.lkmm).

On an x86 host (TSO) the hardware never reorders loads with loads nor stores
with stores, so removing the seed-000 barriers changes nothing observable. In
scheduled mode the coordinator therefore keeps the memory system itself: each
CPU's memory operation is carried out here, and the moments when buffered
stores commit or when a CPU's stale view catches up are *schedule actions*,
chosen by the same schedulers that choose CPUs (so hypothesis and exhaustive
exploration search reorderings too). The committed memory is the segment.

- ``sc``: every operation takes effect at once, in program order.
- ``tso``: a FIFO store buffer per CPU with store-to-load forwarding; smp_mb,
  atomic read-modify-writes (locked on x86, even a failing cmpxchg) drain it;
  smp_wmb/smp_rmb are no-ops, as on x86.
- ``weak``: the mental model of Documentation/memory-barriers.txt. Stores
  wait in a store buffer and may commit out of order, except that an entry
  never passes an older entry to the same word nor one before an ``smp_wmb``,
  ``smp_mb`` or a release; committing puts the store in the single coherence
  order of its word, visible to every CPU alike (multicopy atomic). Each CPU
  reads through its own *view*, which may lag behind the coherence order (an
  invalidation queue): a load may return an older value of a word unless an
  ``smp_rmb``, ``smp_mb`` or acquire since then brought the view up to date.
  Views only move forward, so per-location coherence always holds.
  Value-returning atomics are full barriers (drain the buffer and the view);
  non-value-returning ones (atomic_inc ...) and a *failing* cmpxchg are
  unordered, as in the LKMM.

What these models do not produce: load buffering (LB: a load satisfied after a
later store of the same CPU has become visible). A load here executes when it
is issued; an operational model would need speculation to show LB, which
tokio-rs/loom does not do either. LB-shaped outcomes that the LKMM allows are
therefore never shown (never a false alarm, but a missed one); the litmus
runner lists the corpus tests this affects. ``weak`` is also multicopy atomic,
so outcomes that need writes to reach CPUs in different orders (2+2W with
smp_wmb, Z6.0, seed 000's fix with a relaxed hand-off) are the ``lkmm``
model's business.
"""

from __future__ import annotations

from collections.abc import Callable

from shmkernel.memory.actions import COMMIT, commit_id, decode_action

# operation classes
READ, ACQ_READ, WRITE, REL_WRITE, RMW_FULL, RMW_RELAXED, PERCPU_RMW, FENCE_MB, FENCE_RMB, FENCE_WMB, LOCAL = range(11)
LOADS, STORES, ATOMICS = (READ, ACQ_READ), (WRITE, REL_WRITE), (RMW_FULL, RMW_RELAXED)
FENCES = (FENCE_MB, FENCE_RMB, FENCE_WMB)


def _rmw(name: str) -> Callable[[int, int, int], tuple[int, object, bool]]:
    """(old, a1, a2) -> (new, returned value, success) for each read-modify-write."""
    table: dict[str, Callable[[int, int, int], tuple[int, object, bool]]] = {
        "this_cpu_inc": lambda o, a, b: (o + 1, None, True),
        "this_cpu_dec": lambda o, a, b: (o - 1, None, True),
        "this_cpu_add": lambda o, a, b: (o + a, None, True),
        "atomic_inc": lambda o, a, b: (o + 1, None, True),
        "atomic_dec": lambda o, a, b: (o - 1, None, True),
        "atomic_add": lambda o, a, b: (o + a, None, True),
        "atomic_add_return": lambda o, a, b: (o + a, o + a, True),
        "atomic_fetch_add": lambda o, a, b: (o + a, o, True),
        "atomic_inc_return": lambda o, a, b: (o + 1, o + 1, True),
        "atomic_dec_return": lambda o, a, b: (o - 1, o - 1, True),
        "atomic_sub_return": lambda o, a, b: (o - a, o - a, True),
        "atomic_dec_and_test": lambda o, a, b: (o - 1, o - 1 == 0, True),
        "atomic_xchg": lambda o, a, b: (a, o, True),
        "atomic_cmpxchg": lambda o, a, b: (b, o, True) if o == a else (o, o, False),
        "atomic_add_unless": lambda o, a, b: (o + a, True, True) if o != b else (o, False, False),
        "atomic_inc_not_zero": lambda o, a, b: (o + 1, True, True) if o != 0 else (o, False, False),
        "atomic_dec_if_positive": lambda o, a, b: (o - 1, o - 1, True) if o - 1 >= 0 else (o, o - 1, False),
        "mutex_trylock": lambda o, a, b: (1, True, True) if o == 0 else (o, False, False),
    }
    return table[name]


def atomic_update(name: str, cpu: int, old: int, a1: int, a2: int) -> tuple[int, object, bool]:
    """(new, returned value, success) of atomic ``name`` on ``cpu`` over ``old``: the
    table above, and the locks, whose word holds the owner (``cpu + 1``). Every model
    carries atomics out through this (sc, the buffered models, lkmm, the graph)."""
    if name in ("spin_lock", "mutex_lock"):
        return cpu + 1, None, True
    new, ret, ok = _rmw(name)(old, a1, a2)
    if name == "mutex_trylock" and ok:
        new = cpu + 1
    return new, ret, ok


def stored_value(name: str, a1: int) -> int:
    """What a store writes: its argument, or 0 for an unlock."""
    return 0 if name in ("spin_unlock", "mutex_unlock") else a1


CLASS: dict[str, int] = {
    "read_once": READ,
    "this_cpu_read": READ,
    "per_cpu_read": READ,
    "atomic_read": READ,
    "rcu_qs_wait": READ,  # a read that waits for another value (`shmkernel.schedule.rcu_memory`)
    "smp_load_acquire": ACQ_READ,
    "write_once": WRITE,
    "this_cpu_write": WRITE,
    "atomic_set": WRITE,
    "smp_store_release": REL_WRITE,
    "spin_unlock": REL_WRITE,
    "mutex_unlock": REL_WRITE,
    "this_cpu_inc": PERCPU_RMW,
    "this_cpu_dec": PERCPU_RMW,
    "this_cpu_add": PERCPU_RMW,
    "atomic_inc": RMW_RELAXED,
    "atomic_dec": RMW_RELAXED,
    "atomic_add": RMW_RELAXED,
    "spin_lock": RMW_FULL,
    "mutex_lock": RMW_FULL,
    "mutex_trylock": RMW_FULL,
    "smp_mb": FENCE_MB,
    "smp_rmb": FENCE_RMB,
    "smp_wmb": FENCE_WMB,
}
for _n in (
    "atomic_add_return",
    "atomic_fetch_add",
    "atomic_inc_return",
    "atomic_dec_return",
    "atomic_sub_return",
    "atomic_dec_and_test",
    "atomic_xchg",
    "atomic_cmpxchg",
    "atomic_add_unless",
    "atomic_inc_not_zero",
    "atomic_dec_if_positive",
):
    CLASS[_n] = RMW_FULL


class SCModel:
    """Sequential consistency: the segment is the memory; no actions."""

    name = "sc"
    acquire_choices = False  # may an acquire load return an older value (lkmm only)

    def __init__(self, words: memoryview, ncpus: int) -> None:
        self.w = words
        self.ncpus = ncpus

    def reset(self) -> None:
        pass

    def latest(self, addr: int) -> int:
        return self.w[addr]

    def read_choices(self, cpu: int, addr: int) -> int:
        return 1

    def cpu_op(self, cpu: int, name: str, addr: int, a1: int, a2: int, older: int = 0) -> object:
        cls = CLASS[name]
        w = self.w
        if cls in (READ, ACQ_READ):
            return w[addr]
        if cls in (WRITE, REL_WRITE):
            w[addr] = stored_value(name, a1)
            return None
        if cls in (RMW_FULL, RMW_RELAXED, PERCPU_RMW):
            new, ret, _ = atomic_update(name, cpu, w[addr], a1, a2)
            w[addr] = new
            return ret
        return None

    def actions(self) -> list[int]:
        return []

    def fence_cpu(self, cpu: int) -> None:
        """A full barrier on ``cpu`` that is no ``smp_mb()`` of its program: a
        context switch (parking for stop_machine, ``schedule()``)."""

    def fence_all(self) -> None:
        """A strong fence on every CPU: the end of a grace period, a stop_machine."""
        for cpu in range(self.ncpus):
            self.fence_cpu(cpu)

    def state_key(self) -> tuple:
        """What later steps depend on beyond the segment itself (for state caching)."""
        return ()

    def do_action(self, aid: int) -> tuple[int, int, int]:
        raise AssertionError("sc has no actions")

    def describe(self, aid: int, name_of: Callable[[int], str]) -> str:
        return "?"


class CommitActions:
    """Schedule actions of a model whose only actions are store commits: it
    provides ``_commit(cpu, index) -> word`` and the memory ``w``."""

    w: memoryview

    def _commit(self, cpu: int, index: int) -> int:
        raise NotImplementedError

    def do_action(self, aid: int) -> tuple[int, int, int]:
        """Commit a buffered store; return (kind, word, value) for the trace."""
        kind, cpu, arg = decode_action(aid)
        addr = self._commit(cpu, arg)
        return COMMIT, addr, self.w[addr]

    def describe(self, aid: int, name_of: Callable[[int], str]) -> str:
        kind, cpu, arg = decode_action(aid)
        return f"commit CPU {cpu}'s store #{arg}"


class BufferedModel(CommitActions, SCModel):
    """Store buffers (``tso``: FIFO; ``weak``: out of order, fenced) and, for
    ``weak``, per-CPU views lagging behind each word's coherence order."""

    def __init__(self, words: memoryview, ncpus: int, name: str) -> None:
        super().__init__(words, ncpus)
        self.name = name
        self.fifo = name == "tso"
        self.views = name == "weak"
        self.reset()

    def reset(self) -> None:
        # store buffer entries: [addr, value, epoch]; epoch rises at each write barrier
        self.sb: list[list[list[int]]] = [[] for _ in range(self.ncpus)]
        self.epoch = [0] * self.ncpus
        self.hist: dict[int, list[int]] = {}  # word -> values in coherence order
        self.seen: list[dict[int, int]] = [{} for _ in range(self.ncpus)]

    # -- memory --------------------------------------------------------------------------------
    def _history(self, addr: int) -> list[int]:
        h = self.hist.get(addr)
        if h is not None and h[-1] != self.w[addr]:
            h = None  # written outside the model (ctx.oracle_write: set-up, not kernel code): start anew
            for seen in self.seen:
                seen.pop(addr, None)
        if h is None:
            h = self.hist[addr] = [self.w[addr]]
        return h

    def latest(self, addr: int) -> int:
        return self.w[addr]

    def _forwarded(self, cpu: int, addr: int) -> int | None:
        for e in reversed(self.sb[cpu]):
            if e[0] == addr:
                return e[1]  # store-to-load forwarding
        return None

    def read_choices(self, cpu: int, addr: int) -> int:
        """How many values a plain load of ``addr`` by ``cpu`` may return now."""
        if not self.views or self._forwarded(cpu, addr) is not None:
            return 1
        return len(self._history(addr)) - self.seen[cpu].get(addr, 0)

    def _load(self, cpu: int, addr: int, older: int = 0) -> int:
        """Load; ``older`` = how many writes behind the newest visible one (weak)."""
        v = self._forwarded(cpu, addr)
        if v is not None:
            return v
        if not self.views:
            return self.w[addr]
        h = self._history(addr)
        i = max(len(h) - 1 - older, self.seen[cpu].get(addr, 0))
        self.seen[cpu][addr] = i
        return h[i]

    def _commit(self, cpu: int, index: int) -> int:
        addr, value, _ = self.sb[cpu].pop(index)
        h = self._history(addr)
        h.append(value)
        self.w[addr] = value
        if self.views:
            self.seen[cpu][addr] = len(h) - 1  # a CPU sees its own store once committed
        return addr

    def _drain_sb(self, cpu: int) -> None:
        while self.sb[cpu]:
            self._commit(cpu, 0)

    def _drain_view(self, cpu: int) -> None:
        if self.views:
            seen = self.seen[cpu]
            for addr, h in self.hist.items():
                seen[addr] = len(h) - 1

    def _store(self, cpu: int, addr: int, value: int) -> None:
        self.sb[cpu].append([addr, value, self.epoch[cpu]])

    def _atomic(self, cpu: int, addr: int, new: int) -> None:
        """An RMW acts on the latest value in the coherence order, at once."""
        h = self._history(addr)
        h.append(new)
        self.w[addr] = new
        if self.views:
            self.seen[cpu][addr] = len(h) - 1

    def cpu_op(self, cpu: int, name: str, addr: int, a1: int, a2: int, older: int = 0) -> object:
        cls = CLASS[name]
        if cls == READ:
            return self._load(cpu, addr, older)
        if cls == ACQ_READ:
            v = self._load(cpu, addr)
            self._drain_view(cpu)
            return v
        if cls == WRITE:
            self._store(cpu, addr, a1)
            return None
        if cls == REL_WRITE:
            if not self.fifo:
                self.epoch[cpu] += 1  # nothing before a release may commit after it
            self._store(cpu, addr, stored_value(name, a1))
            if not self.fifo:
                self.epoch[cpu] += 1
            return None
        if cls == PERCPU_RMW:  # __this_cpu_inc: a plain load and a buffered store
            new, ret, _ = _rmw(name)(self._load(cpu, addr), a1, a2)
            self._store(cpu, addr, new)
            return ret
        if cls in (RMW_FULL, RMW_RELAXED):
            self._drain_sb(cpu)  # an RMW needs the latest value: locked ops drain on x86
            new, ret, ok = atomic_update(name, cpu, self.latest(addr), a1, a2)
            if ok:
                self._atomic(cpu, addr, new)
            if cls == RMW_FULL and (ok or self.fifo):  # a failing cmpxchg orders nothing (LKMM)
                self._drain_view(cpu)
            elif self.views:
                self.seen[cpu][addr] = len(self._history(addr)) - 1
            return ret
        if cls == FENCE_MB:
            self._drain_sb(cpu)
            self._drain_view(cpu)
        elif cls == FENCE_WMB:
            if not self.fifo:
                self.epoch[cpu] += 1
        elif cls == FENCE_RMB:
            self._drain_view(cpu)
        return None

    def fence_cpu(self, cpu: int) -> None:
        self._drain_sb(cpu)
        self._drain_view(cpu)

    def fence_all(self) -> None:
        for cpu in range(self.ncpus):  # every buffer first: then every view sees every store
            self._drain_sb(cpu)
        for cpu in range(self.ncpus):
            self._drain_view(cpu)

    # -- schedule actions ---------------------------------------------------------------------
    def _committable(self, cpu: int) -> list[int]:
        sb = self.sb[cpu]
        if not sb:
            return []
        if self.fifo:
            return [0]
        out = []
        low = sb[0][2]
        for i, (addr, _, ep) in enumerate(sb):
            if ep != low:
                break  # a write barrier separates it from older entries
            if any(sb[j][0] == addr for j in range(i)):
                continue  # never pass an older store to the same word
            out.append(i)
        return out

    def state_key(self) -> tuple:
        return (
            tuple(tuple(tuple(e) for e in sb) for sb in self.sb),
            tuple(self.epoch),
            tuple(sorted((a, tuple(h)) for a, h in self.hist.items())),
            tuple(tuple(sorted(s.items())) for s in self.seen),
        )

    def actions(self) -> list[int]:
        """Commits: any store that may leave its buffer now."""
        return [commit_id(c, i) for c in range(self.ncpus) for i in self._committable(c)]
