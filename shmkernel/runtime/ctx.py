"""The CPU context ``ctx``: the one door through which all shared state passes.

Kernel code and workloads never touch numpy or the segment directly; they call
``ctx.read_once(v)``, ``ctx.atomic_inc_not_zero(v)``, ``ctx.smp_wmb()`` ... with
``v`` a word index from the layout. This class is the *free-running* door: each
method is the real hardware operation (a ``memoryview`` load/store for
READ_ONCE/WRITE_ONCE and this_cpu ops, libatomic for atomics and fences), kept
as short as Python allows because it is the hot path of every rate we measure.
The scheduled mode and the emulated memory models subclass it and override the
same methods, so the kernel code runs unchanged in every mode.

Bookkeeping that is not emulated kernel state (event counters, histograms, the
stop flag) is written directly: it is the instrument, not the thing measured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from shmkernel.hw.atomics import ACQUIRE, HOST_IS_TSO, RELEASE, SEQ_CST, Atomics
from shmkernel.memory.layout import PERCPU_STRIDE
from shmkernel.memory.segment import Segment
from shmkernel.runtime.control import Control
from shmkernel.runtime.waits import SCHEDULE_SLEEP_S, SPIN_TURNS, delay, spin_then_nap


class StillAsleep(Exception):
    """The task still sleeps where its program ends: the run stopped while it waited
    for a grace period, a stopped machine or a count (free mode), or its waits ran
    out (scheduled mode). What it waited for never happened, so it must not go on
    as if it had: its program ends there, a prefix of a kernel execution, and the
    CPU reports it done (``quiet``), not failed."""

    quiet = True


class Ctx:
    """Free-running CPU context of CPU ``cpu`` (``smp_processor_id()``).

    ``nr_cpus`` counts the worker CPUs; the coordinator's programs run on the
    extra CPU ``nr_cpus`` so that per-CPU data and traces name it too.
    """

    mode = "free"

    def __init__(
        self,
        seg: Segment,
        ctl: Control,
        cpu: int,
        nr_cpus: int,
        counter_names: tuple[str, ...],
        atomics: Atomics | None = None,
    ) -> None:
        self.seg = seg
        self.layout = seg.layout
        self.ctl = ctl
        self.cpu = cpu
        self.nr_cpus = nr_cpus
        self.nr_cpu_ids = seg.layout.nr_slots
        self.w = seg.words
        self.atomics = atomics or Atomics(seg.map, seg.layout.nwords)
        self._this = cpu * PERCPU_STRIDE
        self._preempt = 0
        self._relaxes = 0  # cpu_relax calls since its last nap
        self._stopper = False  # True while this CPU runs stop_machine()
        self._qs = ctl.qs + cpu * PERCPU_STRIDE
        self._sm_req = ctl.sm_req
        self._cbase = ctl.counters + cpu * ctl.row_words
        self._cidx = {n: i for i, n in enumerate(counter_names)}
        a = self.atomics
        self._fa, self._xchg, self._cas, self._fence = a.fetch_add, a.exchange, a.compare_exchange, a.fence
        # the hottest atomics call libatomic directly (one Python layer less, ~70 ns)
        self._ptr = a._ptrs
        self._raw_fa = a._fetch_add

    # -- plain accesses ------------------------------------------------------------
    def read_once(self, v: int) -> int:
        """READ_ONCE(*v): one aligned 8-byte load (single-copy atomic)."""
        return self.w[v]

    def write_once(self, v: int, x: int) -> None:
        """WRITE_ONCE(*v, x): one aligned 8-byte store."""
        self.w[v] = x

    def this_cpu_read(self, pv: int) -> int:
        return self.w[pv + self._this]

    def this_cpu_write(self, pv: int, x: int) -> None:
        self.w[pv + self._this] = x

    def this_cpu_inc(self, pv: int) -> None:
        """__this_cpu_inc: a plain load+store of this CPU's slot, not a locked op."""
        self.w[pv + self._this] += 1

    def this_cpu_dec(self, pv: int) -> None:
        self.w[pv + self._this] -= 1

    def this_cpu_add(self, pv: int, x: int) -> None:
        self.w[pv + self._this] += x

    def per_cpu_read(self, pv: int, cpu: int) -> int:
        """READ_ONCE(*per_cpu_ptr(pv, cpu)): read another CPU's slot (a tally)."""
        return self.w[pv + cpu * PERCPU_STRIDE]

    def per_cpu_sum(self, pv: int) -> int:
        """``for_each_possible_cpu(cpu) total += READ_ONCE(*per_cpu_ptr(pv, cpu))``.

        The same loads in the same order (CPU 0 first) as the kernel's loop, but
        the loop runs in C (a strided memoryview, numpy for thousands of slots):
        a tally over 3 slots costs 120 ns instead of 350. The scheduled mode and
        the memory models run it as one read step per slot."""
        n = self.nr_cpu_ids
        if n > 64:
            return int(self.seg.np[pv : pv + n * PERCPU_STRIDE : PERCPU_STRIDE].sum())
        return sum(self.w[pv : pv + n * PERCPU_STRIDE : PERCPU_STRIDE])

    # -- atomics (lock-prefixed on x86) -----------------------------------------------
    def atomic_read(self, v: int) -> int:
        return self.w[v]

    def atomic_set(self, v: int, x: int) -> None:
        self.w[v] = x

    def atomic_add_return(self, v: int, x: int) -> int:
        return self._fa(v, x) + x

    def atomic_fetch_add(self, v: int, x: int) -> int:
        return self._fa(v, x)

    def atomic_inc(self, v: int) -> None:
        self._raw_fa(self._ptr[v], 1, SEQ_CST)

    def atomic_dec(self, v: int) -> None:
        self._raw_fa(self._ptr[v], -1, SEQ_CST)

    def atomic_add(self, v: int, x: int) -> None:
        self._fa(v, x)

    def atomic_inc_return(self, v: int) -> int:
        return self._raw_fa(self._ptr[v], 1, SEQ_CST) + 1

    def atomic_dec_return(self, v: int) -> int:
        return self._raw_fa(self._ptr[v], -1, SEQ_CST) - 1

    def atomic_sub_return(self, v: int, x: int) -> int:
        return self._fa(v, -x) - x

    def atomic_dec_and_test(self, v: int) -> bool:
        return self._raw_fa(self._ptr[v], -1, SEQ_CST) == 1

    def atomic_cmpxchg(self, v: int, old: int, new: int) -> int:
        """atomic_cmpxchg: returns the value found (== old on success)."""
        return self._cas(v, old, new)

    def atomic_xchg(self, v: int, x: int) -> int:
        return self._xchg(v, x)

    def atomic_add_unless(self, v: int, a: int, u: int) -> bool:
        """Add ``a`` unless the value is ``u``; true if it added (a cmpxchg loop)."""
        return self._add_unless(v, a, u)

    def _add_unless(self, v: int, a: int, u: int) -> bool:
        c = self.w[v]
        while c != u:
            old = self._cas(v, c, c + a)
            if old == c:
                return True
            c = old
        return False

    def atomic_inc_not_zero(self, v: int) -> bool:
        return self._add_unless(v, 1, 0)

    def atomic_dec_if_positive(self, v: int) -> int:
        """Decrement unless that would go negative; return old - 1 either way."""
        c = self.w[v]
        while True:
            dec = c - 1
            if dec < 0:
                return dec
            old = self._cas(v, c, dec)
            if old == c:
                return dec
            c = old

    # -- barriers ----------------------------------------------------------------------
    def smp_mb(self) -> None:
        """Full barrier: atomic_thread_fence(seq_cst), an mfence on x86."""
        self._fence(SEQ_CST)

    if HOST_IS_TSO:

        def smp_rmb(self) -> None:
            """On x86 the kernel's smp_rmb() is barrier(): no instruction to run."""

        def smp_wmb(self) -> None:
            """On x86 the kernel's smp_wmb() is barrier(): no instruction to run."""

    else:  # pragma: no cover - exercised on weakly ordered hosts only

        def smp_rmb(self) -> None:
            self._fence(ACQUIRE)

        def smp_wmb(self) -> None:
            self._fence(RELEASE)

    def smp_store_release(self, v: int, x: int) -> None:
        """A release store: on x86 a plain store; elsewhere a release fence first."""
        if not HOST_IS_TSO:  # pragma: no cover
            self._fence(RELEASE)
        self.w[v] = x

    def smp_load_acquire(self, v: int) -> int:
        x = self.w[v]
        if not HOST_IS_TSO:  # pragma: no cover
            self._fence(ACQUIRE)
        return x

    # -- preemption, stop_machine parking, quiescent states -------------------------------
    def preempt_disable(self) -> None:
        self._preempt += 1

    def preempt_enable(self) -> None:
        self._preempt -= 1
        if self._preempt == 0:
            self.preemption_point()

    def preemption_point(self) -> None:
        """A place where the task may be preempted (schedule()): report a
        quiescent state, and park here if stop_machine asked for it. Inside a
        preempt-disabled section it is none (the loop boundary of a program
        that holds one open, say)."""
        if self._preempt:
            return
        w = self.w
        w[self._qs] += 1
        if w[self._sm_req] and not self._stopper:
            self._park()

    def _park(self) -> None:
        """Stay parked until the stop_machine epoch we saw is over, even when the run
        stops meanwhile: the stopper's function is running alone, and ends the epoch
        (or gives up on it, `StillAsleep`, if it never began)."""
        w, ctl = self.w, self.ctl
        ep = w[ctl.sm_req]
        if not ep:  # the epoch ended between the caller's look and ours
            return
        w[ctl.sm_parked + self._this] = ep
        turns = 0
        while w[ctl.sm_req] == ep:
            turns = spin_then_nap(turns)

    def schedule(self) -> None:
        """Sleep until woken (wait_for_zero_refcount, synchronize_sched ...): free
        mode naps a few tens of µs (`shmkernel.runtime.waits` says why not a yield)."""
        if self._preempt == 0:
            self.preemption_point()
        time.sleep(SCHEDULE_SLEEP_S)

    def cpu_relax(self) -> None:
        """Spin-wait hint; outside preempt_disable() it is also a preemption point.
        The kernel's keeps the core (a pause); here every `SPIN_TURNS`-th call naps,
        as `spin_then_nap` says why. A scheduled CPU's step is its wait (`_pause`)."""
        if self._preempt == 0:
            self.preemption_point()
        self._pause()

    def _pause(self) -> None:
        if self._relaxes < SPIN_TURNS:
            self._relaxes += 1
        else:
            self._relaxes = 0
            time.sleep(SCHEDULE_SLEEP_S)

    def stop_machine(self, fn, *args):  # type: ignore[no-untyped-def]
        """Raise a new epoch, wait until every running CPU parked for it, run
        ``fn`` alone, then let them go. An epoch per call, so a CPU still
        leaving the previous stop is never counted as parked for this one."""
        w, ctl = self.w, self.ctl
        self._stopper = True
        ep = w[ctl.sm_seq] + 1
        w[ctl.sm_seq] = ep
        w[ctl.sm_req] = ep
        self.smp_mb()
        others = [c for c in range(self.nr_cpus) if c != self.cpu]
        while not all(w[ctl.sm_parked + c * PERCPU_STRIDE] == ep or self.cpu_finished(c) for c in others):
            if w[ctl.stop]:  # a CPU is still inside a preempt-disabled section: fn must not run
                w[ctl.sm_req] = 0
                self._stopper = False
                raise StillAsleep("stop_machine")
            self.schedule()
        try:
            return fn(self, *args)
        finally:
            self.smp_mb()  # fn's stores are visible before any parked CPU resumes (a model's buffer too)
            w[ctl.sm_req] = 0
            self.smp_mb()
            self._stopper = False

    def synchronize_sched(self) -> None:
        """Wait until each other CPU's quiescent-state count moved (or it finished)."""
        w, qs = self.w, self.ctl.qs
        snap = {c: w[qs + c * PERCPU_STRIDE] for c in range(self.nr_cpus) if c != self.cpu}
        self.smp_mb()
        while snap:
            snap = {c: s for c, s in snap.items() if w[qs + c * PERCPU_STRIDE] == s and not self.cpu_finished(c)}
            if snap:
                if w[self.ctl.stop]:  # the grace period has not ended: what follows must not run
                    raise StillAsleep("synchronize_sched")
                self.schedule()

    # -- locks ---------------------------------------------------------------------------
    def spin_lock(self, lock: int) -> None:
        self.preempt_disable()
        me = self.cpu + 1
        turns = 0
        while self._cas(lock, 0, me) != 0:
            while self.w[lock]:
                turns = spin_then_nap(turns)

    def spin_unlock(self, lock: int) -> None:
        self.w[lock] = 0  # a release store on x86
        self.preempt_enable()

    def mutex_lock(self, lock: int) -> None:
        """A sleeping lock, emulated as a yield loop (the CPU is not in a
        preempt-disabled section while it holds it)."""
        me = self.cpu + 1
        w, stop = self.w, self.ctl.stop
        turns = 0
        while self._cas(lock, 0, me) != 0:
            owner = w[lock]
            if owner and w[stop] and self.cpu_finished(owner - 1) and w[lock] == owner:
                # its holder's program ended holding it (looked at again after "finished":
                # a holder that unlocked and then finished between the two looks did not)
                raise StillAsleep("mutex_lock")
            self.preemption_point()
            turns = spin_then_nap(turns)

    def mutex_trylock(self, lock: int) -> bool:
        return self._cas(lock, 0, self.cpu + 1) == 0

    def mutex_unlock(self, lock: int) -> None:
        self.w[lock] = 0

    # -- program control (not kernel state) --------------------------------------------
    def loop(self, iterations: int | None = None) -> Iterator[int]:
        """Iterate a program's main loop: ``iterations`` times, or until the
        machine says stop. Each iteration boundary is a preemption point."""
        w, stop = self.w, self.ctl.stop
        i = 0
        while not w[stop] and (iterations is None or i < iterations):
            yield i
            i += 1
            self.preemption_point()

    def stopped(self) -> bool:
        return bool(self.w[self.ctl.stop])

    def cpu_finished(self, cpu: int) -> bool:
        return bool(self.w[self.ctl.finished + cpu * PERCPU_STRIDE])

    def delay_us(self, us: float) -> None:
        """This CPU's task is preempted (or slow) for ``us`` microseconds (`waits.delay`).
        Free mode only: under a scheduler, time is the scheduler's."""
        delay(us)

    def event(self, name: str, **detail: object) -> None:
        """Record a violated invariant (``false_zero``, ``use_after_free`` ...)."""
        self.w[self._cbase + self._cidx[name]] += 1

    def count(self, name: str, k: int = 1) -> None:
        """Bump one of this CPU's counters (tallies, attempts, creations ...)."""
        self.w[self._cbase + self._cidx[name]] += k

    def hist(self, table: int, bucket: int) -> None:
        """Bump one bucket of a histogram table this CPU alone writes."""
        self.w[table + bucket] += 1

    def finish(self) -> None:
        """Called after the program returned (the scheduled mode reports it)."""

    def abort(self) -> None:
        """Called after the program raised (the scheduled mode reports it)."""

    def report(self) -> object:
        """Extra data sent back with the program's result (scheduled traces)."""
        return None

    def oracle_read(self, v: int) -> int:
        """A read *outside* the emulated machine (checks, bookkeeping): never a
        schedule step, never subject to a memory model."""
        return self.w[v]

    def oracle_write(self, v: int, x: int) -> None:
        self.w[v] = x
