"""One CPU's side of an emulated memory model in free mode, as a pure state machine.

Why: in scheduled mode the coordinator's models (`shmkernel.memory.models`)
make every reordering a schedule choice; free mode has no coordinator between
the CPUs, so each CPU keeps its own side of the memory system, and lets it go
after seeded random delays:

- ``sc``: every store goes to memory at once (the adapter makes it an atomic
  exchange: a full barrier, so the x86 host's own store buffer never delays
  a store behind a later load).
- ``tso``: stores wait in a private FIFO buffer (loads forward from it); on
  each later operation the oldest one commits with probability
  ``commit_p``; a full barrier drains it. ``smp_rmb``/``smp_wmb`` do nothing,
  as on x86.
- ``weak``: the buffer commits any entry not held back by an older store to
  the same word or by an ``smp_wmb``/release; and the CPU remembers the last
  value it read of each word, which a later load returns again with
  probability ``stale_p`` (a lagging view) unless an ``smp_rmb``, ``smp_mb``
  or acquire since then forgot them. Coherence holds: a CPU never reads a
  word going backwards, since it only re-reads what it read last or newer.

The state machine touches memory only through the ``mem`` it is handed (the
segment's words, or a list in a test), so it runs the same anywhere; the
free-mode CPU context (`shmkernel.runtime.ctx_models`) is a thin adapter.
The RNG is seeded per CPU, so the delays, not the interleaving, repeat.
"""

from __future__ import annotations

import random
from collections.abc import Callable, MutableSequence

FREE_MODELS = ("native", "sc", "tso", "weak")


class FreeBuffer:
    def __init__(self, model: str, seed: int, commit_p: float = 0.3, stale_p: float = 0.5) -> None:
        self.model = model
        self.rng = random.Random(seed)
        self.sb: list[list[int]] = []  # [addr, value, epoch]
        self.epoch = 0  # rises at each write barrier: no entry passes one
        self.cache: dict[int, int] = {}  # weak: the last value read (or written) of each word
        self.commit_p, self.stale_p = commit_p, stale_p

    def tick(self, mem: MutableSequence[int]) -> None:
        """Time passes: maybe one buffered store commits."""
        sb = self.sb
        if sb and self.rng.random() < self.commit_p:
            if self.model == "tso":
                i = 0
            else:
                low = sb[0][2]
                ok = [i for i, e in enumerate(sb) if e[2] == low and not any(sb[j][0] == e[0] for j in range(i))]
                i = self.rng.choice(ok)
            addr, value, _ = sb.pop(i)
            mem[addr] = value

    def drain(self, mem: MutableSequence[int]) -> None:
        for addr, value, _ in self.sb:
            mem[addr] = value
        self.sb.clear()

    def load(self, mem: MutableSequence[int], v: int) -> int:
        self.tick(mem)
        for e in reversed(self.sb):
            if e[0] == v:
                return e[1]  # store-to-load forwarding
        if self.model == "weak" and v in self.cache and self.rng.random() < self.stale_p:
            return self.cache[v]
        x = mem[v]
        if self.model == "weak":
            self.cache[v] = x
        return x

    def store(self, mem: MutableSequence[int], v: int, x: int, exchange: Callable[[int, int], object]) -> None:
        self.tick(mem)
        if self.model == "weak":
            self.cache[v] = x  # never read older than its own store (CoWR), once it leaves the buffer
        if self.model == "sc":
            exchange(v, x)
        else:
            self.sb.append([v, x, self.epoch])

    def full_barrier(self, mem: MutableSequence[int]) -> None:
        self.drain(mem)
        self.forget_all()

    def read_barrier(self) -> None:
        if self.model == "weak":
            self.cache.clear()

    def write_barrier(self) -> None:
        if self.model == "weak":
            self.epoch += 1

    def forget_all(self) -> None:
        """A value-returning atomic or a lock is a barrier: no later load reads older."""
        self.cache.clear()

    def forget(self, v: int) -> None:
        """An atomic that returns no value orders nothing else: it forgets only its own word."""
        self.cache.pop(v, None)
