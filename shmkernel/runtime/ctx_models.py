"""Emulated memory models in *free* mode: each CPU process keeps its own store
buffer and read cache, and lets them go after seeded random delays.

Why: in scheduled mode the coordinator's models (shmkernel.memory.models) make
every reordering a schedule choice; free mode has no coordinator between the
CPUs, so each CPU emulates its own side of the memory system:

- ``sc``: every store is an atomic exchange (a full barrier): the x86 host's
  own store buffer never delays a store behind a later load.
- ``tso``: stores wait in a private FIFO buffer (loads forward from it); on
  each later operation the oldest one commits with probability
  ``commit_p``; ``smp_mb`` and atomics drain it. ``smp_rmb``/``smp_wmb``
  are no-ops, as on x86.
- ``weak``: the buffer commits any entry not held back by an older store to the
  same word or by an ``smp_wmb``/release; and each CPU remembers the last
  value it read of each word, which a later load returns again with
  probability ``stale_p`` (a lagging view) unless an ``smp_rmb``, ``smp_mb``
  or acquire since then forgot them. Coherence holds: a CPU never reads a
  word going backwards, since it only re-reads what it read last or newer.

Everything is committed when the program ends. The RNG is seeded per CPU from
``--seed``, so the delays, not the interleaving, are repeatable.
"""

from __future__ import annotations

import random

from shmkernel.runtime.ctx import Ctx

FREE_MODELS = ("native", "sc", "tso", "weak")


class BufferedCtx(Ctx):
    """A free-running CPU context under an emulated memory model."""

    def __init__(self, seg, ctl, cpu, nr_cpus, counter_names, atomics, model: str = "tso",  # type: ignore[no-untyped-def]
                 seed: int = 0, commit_p: float = 0.3, stale_p: float = 0.5) -> None:
        super().__init__(seg, ctl, cpu, nr_cpus, counter_names, atomics)
        self.model = model
        self.memory_model = model  # mode stays "free": programs loop by time, not by bounds
        self._rng = random.Random(seed * 1_000_003 + cpu)
        self._sb: list[list[int]] = []  # [addr, value, epoch]
        self._epoch = 0
        self._cache: dict[int, int] = {}
        self._commit_p, self._stale_p = commit_p, stale_p

    # -- the buffer and the cache -----------------------------------------------------------
    def _tick(self) -> None:
        sb = self._sb
        if sb and self._rng.random() < self._commit_p:
            if self.model == "tso":
                i = 0
            else:
                low = sb[0][2]
                ok = [i for i, e in enumerate(sb) if e[2] == low
                      and not any(sb[j][0] == e[0] for j in range(i))]
                i = self._rng.choice(ok)
            addr, value, _ = sb.pop(i)
            self.w[addr] = value

    def _drain(self) -> None:
        for addr, value, _ in self._sb:
            self.w[addr] = value
        self._sb.clear()
        self._fence(5)

    def _load(self, v: int) -> int:
        self._tick()
        for e in reversed(self._sb):
            if e[0] == v:
                return e[1]
        if self.model == "weak" and v in self._cache and self._rng.random() < self._stale_p:
            return self._cache[v]
        x = self.w[v]
        if self.model == "weak":
            self._cache[v] = x
        return x

    def _store(self, v: int, x: int) -> None:
        self._tick()
        if self.model == "weak":
            self._cache[v] = x  # never read older than its own store (CoWR), once it leaves the buffer
        if self.model == "sc":
            self._xchg(v, x)
        else:
            self._sb.append([v, x, self._epoch])

    # -- the door ---------------------------------------------------------------------------
    def read_once(self, v: int) -> int:
        return self._load(v)

    atomic_read = read_once

    def write_once(self, v: int, x: int) -> None:
        self._store(v, x)

    atomic_set = write_once

    def this_cpu_read(self, pv: int) -> int:
        return self._load(pv + self._this)

    def this_cpu_write(self, pv: int, x: int) -> None:
        self._store(pv + self._this, x)

    def this_cpu_inc(self, pv: int) -> None:
        self._store(pv + self._this, self._load(pv + self._this) + 1)

    def this_cpu_dec(self, pv: int) -> None:
        self._store(pv + self._this, self._load(pv + self._this) - 1)

    def this_cpu_add(self, pv: int, x: int) -> None:
        self._store(pv + self._this, self._load(pv + self._this) + x)

    def per_cpu_read(self, pv: int, cpu: int) -> int:
        return self._load(pv + cpu * 8)

    def per_cpu_sum(self, pv: int) -> int:
        return sum(self._load(pv + c * 8) for c in range(self.nr_cpu_ids))

    def smp_mb(self) -> None:
        self._drain()
        self._cache.clear()

    def smp_rmb(self) -> None:
        if self.model == "weak":
            self._cache.clear()

    def smp_wmb(self) -> None:
        if self.model == "weak":
            self._epoch += 1

    def smp_store_release(self, v: int, x: int) -> None:
        self.smp_wmb()
        self._store(v, x)
        self.smp_wmb()

    def smp_load_acquire(self, v: int) -> int:
        x = self._load(v)
        self.smp_rmb()
        return x

    def finish(self) -> None:
        self._drain()

    def abort(self) -> None:
        self._drain()


#: atomics that return no value order nothing else (LKMM): they forget only their own word
_UNORDERED = ("atomic_inc", "atomic_dec", "atomic_add")


def _drained(name: str):  # type: ignore[no-untyped-def]
    """Atomics and locks act on the latest value: drain first (locked ops on x86).
    Value-returning atomics and locks are barriers: the weak read cache is dropped
    (a lock's critical section never reads values older than the lock)."""
    base = getattr(Ctx, name)
    unordered = name in _UNORDERED

    def op(self: BufferedCtx, *args):  # type: ignore[no-untyped-def]
        self._drain()
        if unordered:
            self._cache.pop(args[0], None)
        else:
            self._cache.clear()
        return base(self, *args)

    op.__name__ = name
    return op


for _name in ("atomic_add_return", "atomic_fetch_add", "atomic_inc", "atomic_dec", "atomic_add",
              "atomic_inc_return", "atomic_dec_return", "atomic_sub_return", "atomic_dec_and_test",
              "atomic_cmpxchg", "atomic_xchg", "atomic_add_unless", "atomic_inc_not_zero",
              "atomic_dec_if_positive", "spin_lock", "spin_unlock", "mutex_lock", "mutex_trylock",
              "mutex_unlock"):
    setattr(BufferedCtx, _name, _drained(_name))
