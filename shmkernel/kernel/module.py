"""kernel/module.c: struct module, its refcount in four variants, and unload.

The variants sit side by side so a reader diffs them by eye, as in the seed
(000: "Fix up possibly racy module refcounting", Nick Piggin):

- ``percpu-count`` (alias ``buggy``): before the seed, one per-CPU ``count``;
  ``module_refcount`` sums it. A reference taken on CPU0 after the tally read
  CPU0's slot and dropped on CPU1 before it read CPU1's slot is seen as a
  decrement without its increment: a *false zero*.
- ``percpu-incs-decs`` (alias ``fixed``): the seed's fix. ``module_put`` does
  ``smp_wmb()`` before ``__this_cpu_inc(decs)``; ``module_refcount`` sums the
  decs, ``smp_rmb()``, then the incs, so any decrement seen has its increment.
- ``percpu-incs-decs-nobarrier``: the fix without its two barriers (correct on
  a TSO host; wrong under a weaker memory model).
- ``atomic``: today's upstream scheme (``MODULE_REF_BASE``,
  ``atomic_inc_not_zero`` in try_module_get, ``atomic_dec_if_positive`` in
  module_put, ``try_release_module_ref`` at unload).

Every access goes through ``ctx``; the order of operations is the kernel's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shmkernel.kernel.stop_machine import stop_machine, synchronize_sched
from shmkernel.kernel.variants import lookup
from shmkernel.memory.layout import Layout
from shmkernel.runtime.ctx import Ctx

MODULE_REF_BASE = 1
EWOULDBLOCK = 11
EBUSY = 16


class ModuleState(enum.IntEnum):
    """enum module_state, with the kernel's values."""

    LIVE = 0
    COMING = 1
    GOING = 2
    UNFORMED = 3


@dataclass(frozen=True)
class Module:
    """struct module in the segment (word indices). ``generation`` and ``freed``
    are the emulator's: a reload is a new generation; ``freed`` marks the memory
    of a module that free_module() released."""

    state: int
    generation: int
    freed: int
    refcnt: int  # atomic variant
    count: int  # per-CPU, percpu-count variant
    incs: int  # per-CPU, incs/decs variants
    decs: int  # per-CPU
    module_mutex: int


def declare_module(layout: Layout, name: str = "mod", module_mutex: int | None = None) -> Module:
    """Declare one struct module; several modules share one ``module_mutex``
    (pass the word of the first)."""
    return Module(
        state=layout.scalar(f"{name}.state"),
        generation=layout.scalar(f"{name}.generation"),
        freed=layout.scalar(f"{name}.freed"),
        refcnt=layout.scalar(f"{name}.refcnt"),
        count=layout.percpu(f"{name}.count"),
        incs=layout.percpu(f"{name}.incs"),
        decs=layout.percpu(f"{name}.decs"),
        module_mutex=layout.scalar("module_mutex") if module_mutex is None else module_mutex,
    )


def __module_get(ctx: Ctx, variant, mod: Module) -> None:  # type: ignore[no-untyped-def]
    """__module_get(): take another reference while holding one (no live check)."""
    variant.module_get_held(ctx, mod)


def module_is_live(ctx: Ctx, mod: Module) -> bool:
    return ctx.read_once(mod.state) != ModuleState.GOING


# ---------------------------------------------------------------------------------------------
# Before the seed: one per-CPU count.
# ---------------------------------------------------------------------------------------------
class PercpuCount:
    """``percpu-count``: ``local_t count`` per CPU, summed by module_refcount."""

    name = "percpu-count"

    def module_unload_init(self, ctx: Ctx, mod: Module) -> None:
        for cpu in range(ctx.nr_cpu_ids):
            ctx.write_once(mod.count + cpu * 8, 0)
        # Hold reference count during initialization.
        ctx.this_cpu_write(mod.count, 1)

    def try_module_get(self, ctx: Ctx, mod: Module) -> bool:
        ret = True
        ctx.preempt_disable()
        if module_is_live(ctx, mod):
            ctx.this_cpu_inc(mod.count)
        else:
            ret = False
        ctx.preempt_enable()
        return ret

    def module_get_held(self, ctx: Ctx, mod: Module) -> None:
        """__module_get: the caller already holds a reference; no liveness check."""
        ctx.preempt_disable()
        ctx.this_cpu_inc(mod.count)
        ctx.preempt_enable()

    def module_put(self, ctx: Ctx, mod: Module) -> None:
        ctx.preempt_disable()
        ctx.this_cpu_dec(mod.count)
        # Maybe they're waiting for us to drop reference?
        module_is_live(ctx, mod)  # (wake_up_process(mod->waiter) if not live)
        ctx.preempt_enable()

    def module_refcount(self, ctx: Ctx, mod: Module, slot_delay_us: float = 0.0) -> int:
        if not slot_delay_us:
            return ctx.per_cpu_sum(mod.count)
        total = 0
        for cpu in range(ctx.nr_cpu_ids):
            total += ctx.per_cpu_read(mod.count, cpu)
            if slot_delay_us:
                ctx.delay_us(slot_delay_us)  # the tallier preempted between slots
        return total

    def storage_total(self, ctx: Ctx, mod: Module) -> int:
        """Exact sum at quiesce (oracle, not a kernel function)."""
        return sum(ctx.oracle_read(mod.count + c * 8) for c in range(ctx.nr_cpu_ids))


# ---------------------------------------------------------------------------------------------
# The seed's fix: per-CPU incs and decs.
# ---------------------------------------------------------------------------------------------
class PercpuIncsDecs:
    """``percpu-incs-decs``: the seed's fix, barriers included."""

    name = "percpu-incs-decs"
    barriers = True

    def module_unload_init(self, ctx: Ctx, mod: Module) -> None:
        for cpu in range(ctx.nr_cpu_ids):
            ctx.write_once(mod.incs + cpu * 8, 0)
            ctx.write_once(mod.decs + cpu * 8, 0)
        # Hold reference count during initialization.
        ctx.this_cpu_write(mod.incs, 1)

    def try_module_get(self, ctx: Ctx, mod: Module) -> bool:
        ret = True
        ctx.preempt_disable()
        if module_is_live(ctx, mod):
            ctx.this_cpu_inc(mod.incs)
        else:
            ret = False
        ctx.preempt_enable()
        return ret

    def module_get_held(self, ctx: Ctx, mod: Module) -> None:
        """__module_get: the caller already holds a reference; no liveness check."""
        ctx.preempt_disable()
        ctx.this_cpu_inc(mod.incs)
        ctx.preempt_enable()

    def module_put(self, ctx: Ctx, mod: Module) -> None:
        ctx.preempt_disable()
        if self.barriers:
            ctx.smp_wmb()  # see comment in module_refcount
        ctx.this_cpu_inc(mod.decs)
        # Maybe they're waiting for us to drop reference?
        module_is_live(ctx, mod)
        ctx.preempt_enable()

    def module_refcount(self, ctx: Ctx, mod: Module, slot_delay_us: float = 0.0) -> int:
        if not slot_delay_us:
            decs = ctx.per_cpu_sum(mod.decs)
            # ensure the incs are added up after the decs (see below)
            if self.barriers:
                ctx.smp_rmb()
            return ctx.per_cpu_sum(mod.incs) - decs
        incs = decs = 0
        for cpu in range(ctx.nr_cpu_ids):
            decs += ctx.per_cpu_read(mod.decs, cpu)
            if slot_delay_us:
                ctx.delay_us(slot_delay_us)
        # ensure the incs are added up after the decs.
        # module_put ensures incs are visible before decs with smp_wmb.
        #
        # This 2-count scheme avoids the situation where the refcount
        # for CPU0 is read, then CPU0 increments the module refcount,
        # then CPU1 drops that refcount, then the refcount for CPU1 is
        # read. We would record a decrement but not its corresponding
        # increment so we would see a low count (disaster).
        if self.barriers:
            ctx.smp_rmb()
        for cpu in range(ctx.nr_cpu_ids):
            incs += ctx.per_cpu_read(mod.incs, cpu)
            if slot_delay_us:
                ctx.delay_us(slot_delay_us)
        return incs - decs

    def storage_total(self, ctx: Ctx, mod: Module) -> int:
        n = ctx.nr_cpu_ids
        return sum(ctx.oracle_read(mod.incs + c * 8) - ctx.oracle_read(mod.decs + c * 8) for c in range(n))


class PercpuIncsDecsNoBarrier(PercpuIncsDecs):
    """``percpu-incs-decs-nobarrier``: the fix with smp_wmb()/smp_rmb() removed."""

    name = "percpu-incs-decs-nobarrier"
    barriers = False


# ---------------------------------------------------------------------------------------------
# Upstream today: one atomic refcnt with a base.
# ---------------------------------------------------------------------------------------------
class AtomicRefcnt:
    """``atomic``: kernel/module/main.c today."""

    name = "atomic"

    def module_unload_init(self, ctx: Ctx, mod: Module) -> None:
        # Initialize reference counter to MODULE_REF_BASE.
        # refcnt == 0 means module is going.
        ctx.atomic_set(mod.refcnt, MODULE_REF_BASE)
        # Hold reference count during initialization.
        ctx.atomic_inc(mod.refcnt)

    def try_module_get(self, ctx: Ctx, mod: Module) -> bool:
        ctx.preempt_disable()
        # Note: here, we can fail to get a reference
        ret = module_is_live(ctx, mod) and ctx.atomic_inc_not_zero(mod.refcnt)
        ctx.preempt_enable()
        return bool(ret)

    def module_get_held(self, ctx: Ctx, mod: Module) -> None:
        """__module_get: the caller already holds a reference; no liveness check."""
        ctx.atomic_inc(mod.refcnt)

    def module_put(self, ctx: Ctx, mod: Module) -> None:
        ret = ctx.atomic_dec_if_positive(mod.refcnt)
        if ret < 0:
            ctx.event("warn", what="module_put: failed to put refcount")  # WARN_ON(ret < 0)

    def module_refcount(self, ctx: Ctx, mod: Module, slot_delay_us: float = 0.0) -> int:
        return ctx.atomic_read(mod.refcnt) - MODULE_REF_BASE

    def try_release_module_ref(self, ctx: Ctx, mod: Module) -> int:
        # Try to decrement refcnt which we set at loading
        ret = ctx.atomic_sub_return(mod.refcnt, MODULE_REF_BASE)
        if ret < 0:
            ctx.event("bug", what="try_release_module_ref: refcnt below zero")  # BUG_ON(ret < 0)
        if ret:
            # Someone can put this right now, recover with checking
            ret = int(ctx.atomic_add_unless(mod.refcnt, MODULE_REF_BASE, 0))
        return ret

    def storage_total(self, ctx: Ctx, mod: Module) -> int:
        return ctx.oracle_read(mod.refcnt) - MODULE_REF_BASE


VARIANTS = {
    v.name: v for v in (PercpuCount(), PercpuIncsDecs(), PercpuIncsDecsNoBarrier(), AtomicRefcnt())
}
ALIASES = {"buggy": "percpu-count", "fixed": "percpu-incs-decs"}


def refcount_variant(name: str) -> PercpuCount | PercpuIncsDecs | AtomicRefcnt:
    return lookup(VARIANTS, ALIASES, name)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Unload: delete_module() and try_stop_module().
# ---------------------------------------------------------------------------------------------
def __try_stop_module(ctx: Ctx, variant, mod: Module) -> int:  # type: ignore[no-untyped-def]
    """Run under stop_machine: nothing can move, so the tally is exact."""
    if isinstance(variant, AtomicRefcnt):
        if variant.try_release_module_ref(ctx, mod) != 0:
            return -EWOULDBLOCK
    # If it's not unused, quit unless we're forcing.
    elif variant.module_refcount(ctx, mod) != 0:
        return -EWOULDBLOCK
    # Mark it as dying.
    ctx.write_once(mod.state, ModuleState.GOING)
    return 0


def try_stop_module(ctx: Ctx, variant, mod: Module, use_stop_machine: bool) -> int:  # type: ignore[no-untyped-def]
    """2.6.33's two paths (O_NONBLOCK: stop_machine; otherwise GOING at once and
    synchronize_sched()), and upstream's try_release_module_ref for ``atomic``."""
    if use_stop_machine:
        return stop_machine(ctx, __try_stop_module, variant, mod)
    if isinstance(variant, AtomicRefcnt):
        return __try_stop_module(ctx, variant, mod)
    # We don't need to stop the machine for this.
    ctx.write_once(mod.state, ModuleState.GOING)
    synchronize_sched(ctx)
    return 0


def delete_module(ctx: Ctx, variant, mod: Module, use_stop_machine: bool,  # type: ignore[no-untyped-def]
                  slot_delay_us: float = 0.0, max_waits: int | None = None) -> int:
    """SYSCALL delete_module: 0 if the module was stopped and freed, else -errno.

    Without stop_machine the percpu variants wait for the refcount to read zero
    (``wait_for_zero_refcount``) and then free: a false zero frees a module in
    use. ``free_module`` here marks the memory freed; the workload reloads.
    ``max_waits`` bounds the wait (the kernel waits forever; a scheduled program
    must end, so there rmmod gives up with -EBUSY after that many tallies)."""
    ctx.mutex_lock(mod.module_mutex)
    try:
        # Doing init or already dying?
        if ctx.read_once(mod.state) != ModuleState.LIVE:
            return -EBUSY
        ret = try_stop_module(ctx, variant, mod, use_stop_machine)
        if ret != 0:
            return ret
        # Never wait if forced.
        if not isinstance(variant, AtomicRefcnt):
            waits = 0
            while variant.module_refcount(ctx, mod, slot_delay_us) != 0:  # wait_for_zero_refcount
                waits += 1
                if ctx.stopped() or (max_waits is not None and waits >= max_waits):
                    return -EBUSY
                ctx.cpu_relax()  # woken by every module_put while not live: tally again
    finally:
        ctx.mutex_unlock(mod.module_mutex)
    # Final destruction now no one is using it.
    free_module(ctx, mod)
    return 0


def free_module(ctx: Ctx, mod: Module) -> None:
    ctx.write_once(mod.freed, 1)


def load_module(ctx: Ctx, variant, mod: Module) -> None:  # type: ignore[no-untyped-def]
    """Bring up a (new generation of the) module: formed while unreachable, then
    COMING -> LIVE, with the init reference held during initialization and
    dropped after it.

    Users of the emulation hold a fixed pointer to the module, so while its
    memory is re-formed it must look GOING to them (try_module_get fails), as
    a module that is not yet in the module list is unreachable in the kernel."""
    ctx.write_once(mod.state, ModuleState.GOING)
    ctx.write_once(mod.generation, ctx.read_once(mod.generation) + 1)
    variant.module_unload_init(ctx, mod)
    ctx.write_once(mod.freed, 0)
    ctx.smp_mb()
    ctx.write_once(mod.state, ModuleState.COMING)
    ctx.write_once(mod.state, ModuleState.LIVE)
    variant.module_put(ctx, mod)  # drop the initialization reference
