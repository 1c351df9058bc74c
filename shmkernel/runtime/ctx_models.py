"""The free-mode CPU context under an emulated memory model: a thin adapter.

Each CPU process keeps its own side of the memory system, a
`shmkernel.memory.free_buffer.FreeBuffer` (store buffer, weak read cache,
seeded delays: see there what ``sc``, ``tso`` and ``weak`` mean here); this
context forwards each ``ctx`` operation to it, drains it before atomics and
locks (they act on the latest value, as locked operations on x86) and when
the program ends.
"""

from __future__ import annotations

from shmkernel.memory.free_buffer import FREE_MODELS, FreeBuffer
from shmkernel.memory.layout import PERCPU_STRIDE
from shmkernel.runtime.ctx import Ctx

__all__ = ["FREE_MODELS", "BufferedCtx"]


class BufferedCtx(Ctx):
    """A free-running CPU context under an emulated memory model."""

    def __init__(
        self,
        seg,
        ctl,
        cpu,
        nr_cpus,
        counter_names,
        atomics,
        model: str = "tso",  # type: ignore[no-untyped-def]
        seed: int = 0,
        commit_p: float = 0.3,
        stale_p: float = 0.5,
    ) -> None:
        super().__init__(seg, ctl, cpu, nr_cpus, counter_names, atomics)
        self.model = model
        self.memory_model = model  # mode stays "free": programs loop by time, not by bounds
        self._buf = FreeBuffer(model, seed * 1_000_003 + cpu, commit_p, stale_p)

    def _load(self, v: int) -> int:
        return self._buf.load(self.w, v)

    def _store(self, v: int, x: int) -> None:
        self._buf.store(self.w, v, x, self._xchg)

    def _drain(self) -> None:
        self._buf.drain(self.w)
        self._fence(5)

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
        return self._load(pv + cpu * PERCPU_STRIDE)

    def per_cpu_sum(self, pv: int) -> int:
        return sum(self._load(pv + c * PERCPU_STRIDE) for c in range(self.nr_cpu_ids))

    def smp_mb(self) -> None:
        self._buf.full_barrier(self.w)
        self._fence(5)

    def smp_rmb(self) -> None:
        self._buf.read_barrier()

    def smp_wmb(self) -> None:
        self._buf.write_barrier()

    def smp_store_release(self, v: int, x: int) -> None:
        self.smp_wmb()
        self._store(v, x)
        self.smp_wmb()

    def smp_load_acquire(self, v: int) -> int:
        x = self._load(v)
        self.smp_rmb()
        return x

    # -- quiescent states the kernel waits for are barriers -----------------------------------
    def preemption_point(self) -> None:
        """A quiescent state somebody waits for is a full barrier, as in the kernel:
        ``rcu_all_qs()`` runs ``rcu_momentary_dyntick_idle()`` (a value-returning atomic)
        when a grace period urgently wants this CPU, and ``multi_cpu_stop()`` acks each
        state with ``atomic_dec_and_test`` (`_park`). Without it a CPU parked for
        stop_machine (or counted by a grace period) would keep its stores buffered: the
        stopper would read a per-CPU count without the increment this CPU made before
        parking (modcount's 2.6.0 try_module_get, an uncounted reference under ``tso`` and
        ``weak``). A preemption point nobody waits for orders nothing, so the loops keep
        their reorderings."""
        if not self._preempt and self.w[self.ctl.gp_req]:
            self.smp_mb()
        super().preemption_point()

    def _park(self) -> None:
        self.smp_mb()  # parked means acked: what this CPU stored is visible to the stopper
        super()._park()
        self._buf.forget_all()  # leaving the stop: no later load reads older than the stopper's writes

    def synchronize_sched(self) -> None:
        """Two grace periods back to back with the request raised: every quiescent
        state of the second one saw the request, so it drained what its CPU stored
        before the first (the first may count a CPU that looked just before the raise)."""
        gp_req = self.ctl.gp_req
        self.atomic_inc(gp_req)
        try:
            super().synchronize_sched()
            super().synchronize_sched()
        finally:
            self.atomic_dec(gp_req)
        self.smp_mb()  # what follows never reads older than the grace period

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
            self._buf.forget(args[0])
        else:
            self._buf.forget_all()
        return base(self, *args)

    op.__name__ = name
    return op


for _name in (
    "atomic_add_return",
    "atomic_fetch_add",
    "atomic_inc",
    "atomic_dec",
    "atomic_add",
    "atomic_inc_return",
    "atomic_dec_return",
    "atomic_sub_return",
    "atomic_dec_and_test",
    "atomic_cmpxchg",
    "atomic_xchg",
    "atomic_add_unless",
    "atomic_inc_not_zero",
    "atomic_dec_if_positive",
    "spin_lock",
    "spin_unlock",
    "mutex_lock",
    "mutex_trylock",
    "mutex_unlock",
):
    setattr(BufferedCtx, _name, _drained(_name))
