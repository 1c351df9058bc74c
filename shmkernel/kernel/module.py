"""include/linux/module.h and kernel/module.c: struct module and its reference counts.

One `Module` for every era (a field an era's struct has not is simply never
touched there), one `ModuleState`, and the reference counts side by side so
a reader diffs them by eye, as in the seed (000: "Fix up possibly racy
module refcounting", Nick Piggin):

- ``percpu-count`` (alias ``buggy``): one per-CPU ``count`` (2.6.0's
  ``mod->ref[cpu].count`` and 2.6.33's ``refptr->count`` alike);
  ``module_refcount`` sums it. A reference taken on CPU0 after the tally read
  CPU0's slot and dropped on CPU1 before it read CPU1's slot is seen as a
  decrement without its increment: a *false zero*.
- ``percpu-incs-decs`` (alias ``fixed``): the seed's fix. ``module_put`` does
  ``smp_wmb()`` before ``__this_cpu_inc(decs)``; ``module_refcount`` sums the
  decs, ``smp_rmb()``, then the incs, so any decrement seen has its increment.
- ``percpu-incs-decs-nobarrier``: the fix without its two barriers (correct on
  a TSO host; wrong under a weaker memory model).
- ``atomic``: one ``atomic_t refcnt`` with ``MODULE_REF_BASE`` (v3.19 to
  v6.14, the v4.0 of seed 002 included): ``atomic_inc_not_zero`` in
  try_module_get, ``atomic_dec_if_positive`` in module_put, each inside
  ``preempt_disable()`` as those kernels have it (upstream dropped the
  preempt_disable() in 2025, when module code moved from RCU-sched to RCU),
  and ``try_release_module_ref`` at unload (module_loader.py).

Linux 2.4 counted differently (``mod->uc.usecount``, ``mod->flags``):
module_2_4.py. A module whose memory is poisoned when freed (``kasan``: seed
003's) has every load from its ``struct module`` checked by kasan.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shmkernel.kernel.kasan import POISON, kasan
from shmkernel.kernel.variants import lookup
from shmkernel.memory.layout import Layout, per_cpu_ptr
from shmkernel.runtime.ctx import Ctx

MODULE_REF_BASE = 1


class ModuleState(enum.IntEnum):
    """enum module_state, with the kernel's values (UNFORMED since 3.8)."""

    LIVE = 0
    COMING = 1
    GOING = 2
    UNFORMED = 3


@dataclass(frozen=True)
class Module:
    """struct module in the segment (word indices), with the fields of every era.

    ``generation`` and ``freed`` are the emulator's: ``generation`` is the
    module's address (a reload is a new one, 0 is never used), ``freed`` marks
    the memory of a module module_free() released. ``text`` stands for the
    module's code (module_core): its generation, negated once condemned
    (kasan.py). ``kasan``: kasan.py watches the module: freeing it poisons its
    memory (every load from its struct module is checked) and committing its
    unload condemns its code; ``visited_flags``: 2.4's
    ``__MOD_{INC,DEC}_USE_COUNT`` also do their unlocked ``mod->flags |=
    MOD_VISITED`` (it can overwrite ``MOD_DELETED``)."""

    name: str
    state: int
    generation: int
    freed: int
    refcnt: int  # atomic_t refcnt (v3.19+)
    count: int  # per-CPU local_t count (2.6.0 .. 2.6.33)
    incs: int  # per-CPU: seed 000's fix
    decs: int  # per-CPU
    flags: int  # 2.4
    usecount: int  # 2.4: uc.usecount
    klp_alive: int  # v4.0: seed 002's flag
    listed: int  # on the modules list (module_loader.py)
    text: int
    data: tuple[int, ...] = ()  # the module's own data words (a driver's ops struct ...)
    kasan: bool = False
    visited_flags: bool = False


def declare_module(
    layout: Layout,
    name: str = "mod",
    *,
    own_line: bool = True,
    data: tuple[str, ...] = (),
    kasan: bool = False,
    visited_flags: bool = False,
) -> Module:
    """Declare one struct module named ``name`` (its words ``name.state`` ...), with
    the module's own ``data`` words; ``own_line=False`` packs its scalars."""

    def s(field: str) -> int:
        return layout.scalar(f"{name}.{field}", own_line=own_line)

    return Module(
        name=name,
        state=s("state"),
        generation=s("generation"),
        freed=s("freed"),
        refcnt=s("refcnt"),
        count=layout.percpu(f"{name}.count"),
        incs=layout.percpu(f"{name}.incs"),
        decs=layout.percpu(f"{name}.decs"),
        flags=s("flags"),
        usecount=s("uc.usecount"),
        klp_alive=s("klp_alive"),
        listed=s("listed"),
        text=s("text"),
        data=tuple(s(w) for w in data),
        kasan=kasan,
        visited_flags=visited_flags,
    )


def module_is_live(ctx: Ctx, mod: Module) -> bool:
    state = ctx.read_once(mod.state)
    if mod.kasan:
        kasan(ctx, state, "module->state")
    return state != ModuleState.GOING


def __module_get(ctx: Ctx, ref: RefcountScheme, mod: Module | None) -> None:
    """__module_get(): take another reference while holding one (no live check)."""
    if mod is not None:
        ref.module_get_held(ctx, mod)


def strong_try_module_get(ctx: Ctx, ref: RefcountScheme, mod: Module | None) -> bool:
    """2.6.x: a module still COMING (its init has not run) cannot be used yet."""
    if mod is not None and ctx.read_once(mod.state) == ModuleState.COMING:
        return False
    return mod is None or ref.try_module_get(ctx, mod)


# ---------------------------------------------------------------------------------------------
# Before the seed: one per-CPU count.
# ---------------------------------------------------------------------------------------------
class PercpuCount:
    """``percpu-count``: ``local_t count`` per CPU, summed by module_refcount."""

    name = "percpu-count"

    def module_unload_init(self, ctx: Ctx, mod: Module) -> None:
        for cpu in range(ctx.nr_cpu_ids):
            ctx.write_once(per_cpu_ptr(mod.count, cpu), 0)
        # Hold reference count during initialization.
        ctx.this_cpu_write(mod.count, 1)

    def try_module_get(self, ctx: Ctx, mod: Module) -> bool:
        ret = True
        ctx.preempt_disable()
        try:
            if module_is_live(ctx, mod):
                ctx.this_cpu_inc(mod.count)
            else:
                ret = False
        finally:
            ctx.preempt_enable()
        return ret

    def module_get_held(self, ctx: Ctx, mod: Module) -> None:
        """__module_get: the caller already holds a reference; no liveness check."""
        ctx.preempt_disable()
        ctx.this_cpu_inc(mod.count)
        ctx.preempt_enable()

    def module_put(self, ctx: Ctx, mod: Module) -> None:
        ctx.preempt_disable()
        try:
            ctx.this_cpu_dec(mod.count)
            # Maybe they're waiting for us to drop reference?
            module_is_live(ctx, mod)  # (wake_up_process(mod->waiter) if not live)
        finally:
            ctx.preempt_enable()

    def module_refcount(self, ctx: Ctx, mod: Module, slot_delay_us: float = 0.0) -> int:
        if not slot_delay_us:
            return ctx.per_cpu_sum(mod.count)
        total = 0
        for cpu in range(ctx.nr_cpu_ids):
            total += ctx.per_cpu_read(mod.count, cpu)
            ctx.delay_us(slot_delay_us)  # the tallier preempted between slots
        return total

    def storage_total(self, ctx: Ctx, mod: Module) -> int:
        """Exact sum at quiesce (oracle, not a kernel function)."""
        return sum(ctx.oracle_read(per_cpu_ptr(mod.count, c)) for c in range(ctx.nr_cpu_ids))


# ---------------------------------------------------------------------------------------------
# The seed's fix: per-CPU incs and decs.
# ---------------------------------------------------------------------------------------------
class PercpuIncsDecs:
    """``percpu-incs-decs``: the seed's fix, barriers included."""

    name = "percpu-incs-decs"
    barriers = True

    def module_unload_init(self, ctx: Ctx, mod: Module) -> None:
        for cpu in range(ctx.nr_cpu_ids):
            ctx.write_once(per_cpu_ptr(mod.incs, cpu), 0)
            ctx.write_once(per_cpu_ptr(mod.decs, cpu), 0)
        # Hold reference count during initialization.
        ctx.this_cpu_write(mod.incs, 1)

    def try_module_get(self, ctx: Ctx, mod: Module) -> bool:
        ret = True
        ctx.preempt_disable()
        try:
            if module_is_live(ctx, mod):
                ctx.this_cpu_inc(mod.incs)
            else:
                ret = False
        finally:
            ctx.preempt_enable()
        return ret

    def module_get_held(self, ctx: Ctx, mod: Module) -> None:
        """__module_get: the caller already holds a reference; no liveness check."""
        ctx.preempt_disable()
        ctx.this_cpu_inc(mod.incs)
        ctx.preempt_enable()

    def module_put(self, ctx: Ctx, mod: Module) -> None:
        ctx.preempt_disable()
        try:
            if self.barriers:
                ctx.smp_wmb()  # see comment in module_refcount
            ctx.this_cpu_inc(mod.decs)
            # Maybe they're waiting for us to drop reference?
            module_is_live(ctx, mod)
        finally:
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
            ctx.delay_us(slot_delay_us)
        # ensure the incs are added up after the decs.
        # module_put ensures incs are visible before decs with smp_wmb.
        #
        # This 2-count scheme avoids the situation where the refcount
        # for CPU0 is read, then CPU0 increments the module refcount,
        # then CPU1 drops that refcount, then the refcount for CPU1 is
        # read. We would record a decrement but not its corresponding
        # increment so we would see a low count (disaster).
        #
        # Rare situation? But module_refcount can be preempted, and we
        # might be tallying up 4096+ CPUs. So it is not impossible.
        if self.barriers:
            ctx.smp_rmb()
        for cpu in range(ctx.nr_cpu_ids):
            incs += ctx.per_cpu_read(mod.incs, cpu)
            ctx.delay_us(slot_delay_us)
        return incs - decs

    def storage_total(self, ctx: Ctx, mod: Module) -> int:
        n = ctx.nr_cpu_ids
        return sum(
            ctx.oracle_read(per_cpu_ptr(mod.incs, c)) - ctx.oracle_read(per_cpu_ptr(mod.decs, c)) for c in range(n)
        )


class PercpuIncsDecsNoBarrier(PercpuIncsDecs):
    """``percpu-incs-decs-nobarrier``: the fix with smp_wmb()/smp_rmb() removed."""

    name = "percpu-incs-decs-nobarrier"
    barriers = False


# ---------------------------------------------------------------------------------------------
# v3.19 .. v6.14: one atomic refcnt with a base.
# ---------------------------------------------------------------------------------------------
class AtomicRefcnt:
    """``atomic``: kernel/module.c from v3.19 (kernel/module/main.c from v5.19) to v6.14."""

    name = "atomic"

    def module_unload_init(self, ctx: Ctx, mod: Module) -> None:
        # Initialize reference counter to MODULE_REF_BASE.
        # refcnt == 0 means module is going.
        ctx.atomic_set(mod.refcnt, MODULE_REF_BASE)
        # Hold reference count during initialization.
        ctx.atomic_inc(mod.refcnt)

    def try_module_get(self, ctx: Ctx, mod: Module) -> bool:
        ctx.preempt_disable()
        try:
            # Note: here, we can fail to get a reference
            ret = module_is_live(ctx, mod) and ctx.atomic_inc_not_zero(mod.refcnt)
        finally:
            ctx.preempt_enable()
        return bool(ret)

    def module_get_held(self, ctx: Ctx, mod: Module) -> None:
        """__module_get: the caller already holds a reference; no liveness check."""
        ctx.preempt_disable()
        ctx.atomic_inc(mod.refcnt)
        ctx.preempt_enable()

    def module_put(self, ctx: Ctx, mod: Module) -> None:
        ctx.preempt_disable()
        ret = ctx.atomic_dec_if_positive(mod.refcnt)
        if ret < 0:
            ctx.event("warn", what="module_put: failed to put refcount")  # WARN_ON(ret < 0)
        ctx.preempt_enable()

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


RefcountScheme = PercpuCount | PercpuIncsDecs | AtomicRefcnt
VARIANTS: dict[str, RefcountScheme] = {
    v.name: v for v in (PercpuCount(), PercpuIncsDecs(), PercpuIncsDecsNoBarrier(), AtomicRefcnt())
}
ALIASES = {"buggy": "percpu-count", "fixed": "percpu-incs-decs"}


def refcount_variant(name: str) -> RefcountScheme:
    return lookup(VARIANTS, ALIASES, name)


@dataclass(frozen=True)
class ModuleLocks:
    """kernel/module.c's own locks: module_mutex (2.6); 2.4's big kernel lock and unload_lock."""

    module_mutex: int
    kernel_flag: int
    unload_lock: int


def declare_module_locks(layout: Layout) -> ModuleLocks:
    return ModuleLocks(layout.scalar("module_mutex"), layout.scalar("kernel_flag"), layout.scalar("unload_lock"))


def module_alloc(ctx: Ctx, mod: Module) -> int:
    """The module's memory, at a new address (its generation): with KASAN every
    word the free poisoned is written anew (the code; ops->owner = THIS_MODULE)."""
    gen = ctx.read_once(mod.generation) + 1
    ctx.write_once(mod.generation, gen)
    if mod.kasan:
        for word in (*mod.data, mod.text):
            ctx.write_once(word, gen)
    else:
        ctx.write_once(mod.freed, 0)
    return gen


def module_memfree(ctx: Ctx, mod: Module) -> None:
    """Free the core (containing the module structure): KASAN poisons it (its
    per-CPU counts are not: every access to them comes with a load of
    ``state``), or the emulator marks it freed."""
    if not mod.kasan:
        ctx.write_once(mod.freed, 1)
    else:
        for word in (*mod.data, mod.text, mod.state):
            ctx.write_once(word, POISON)
