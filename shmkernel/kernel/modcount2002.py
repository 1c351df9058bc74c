"""Module removal in 2002: the callers of Linux 2.4's module counts, and the 2.6 design.

Seed 003 (Keith Owens, "Re: simple handling of module removals", 4 Jul 2002):
*uncounted references to module code and/or data*. "To be race safe, the
reference count must be bumped before calling any function that might be in
a module." Four caller patterns sit side by side, each a variant:

- ``hisax-unlocked`` (alias ``buggy``): ``HiSax_mod_inc_use_count`` reads
  ``cs->hw.hisax_d_if->owner`` with no lock ("race here"), calls
  ``try_inc_mod_count`` and ignores its result; ``HiSax_mod_dec_use_count``
  decrements blindly.
- ``busmouse-locked``: ``busmouse_open`` holds ``mouse_sem`` around the
  lookup and ``try_inc_mod_count`` and checks the result;
  ``unregister_busmouse`` (called from the module's cleanup) takes
  ``mouse_sem`` too -- what the mail hopes is true.
- ``inc-inside-module``: a driver without ``owner``: ``chrdev_open`` looks the
  fops up under ``chrdevs_lock``, drops it and calls ``fops->open``, which
  does ``MOD_INC_USE_COUNT`` itself -- after the call into the module has
  begun ("inside the module is too late"); ``release`` does
  ``MOD_DEC_USE_COUNT`` and then still returns through module code.
- ``try-module-get`` (alias ``fixed``): the design the mail argues for, as
  it landed in 2.6.0: the caller only does lookup + ``try_module_get`` in one
  preempt-off section and checks the result; module.c checks state and
  refcount together under ``stop_machine`` and unlinks under
  ``stop_machine`` before freeing, so every lookup still in flight is over.

The module side is the shared kernel: 2.4's ``try_inc_mod_count`` and
``__MOD_{INC,DEC}_USE_COUNT`` and 2.6.0's ``try_module_get``/``module_put``
(the per-CPU ``count``) in module.py, insmod/rmmod of both eras in
module_loader.py (2.4: ``lock_kernel``, ``unload_lock``, ``MOD_DELETED``,
``free_module`` running ``mod->cleanup()`` before ``module_unmap``), KASAN and
the condemned-code check in kasan.py: this module is watched by both (its
``struct module``, its code ``mod.text`` and the driver struct ``mod.ops`` in
its data are poisoned when it is freed; a CPU that runs its code after the
unloader committed has an ``uncounted_ref``). Reading data (``mod.ops``) of a
condemned but not yet freed module is not flagged: a lock the unregistration
takes may protect it (busmouse's ``mouse_sem``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shmkernel.kernel import module_loader as ml
from shmkernel.kernel.kasan import kasan, module_text
from shmkernel.kernel.locking import mutex, preempt_disabled, spinlock
from shmkernel.kernel.module import VARIANTS as REFCOUNTS
from shmkernel.kernel.module import Module, ModuleLocks, ModuleState, declare_module, declare_module_locks
from shmkernel.kernel.module_2_4 import __MOD_DEC_USE_COUNT, MOD_DEC_USE_COUNT, MOD_INC_USE_COUNT, try_inc_mod_count
from shmkernel.kernel.variants import lookup
from shmkernel.memory.layout import Layout, per_cpu_ptr
from shmkernel.runtime.ctx import Ctx

ENODEV = 19
PERCPU_COUNT = REFCOUNTS["percpu-count"]  # 2.6.0: local_t ref[NR_CPUS].count, module_is_live()


@dataclass(frozen=True)
class Module2002:
    """The module, the subsystem's registry of its driver, and the locks around them.

    ``mod.ops`` (in the module's data) is the driver's ops / hisax_d_if struct:
    its value is the owner pointer (the generation). ``registry`` is the
    subsystem's table slot -- busmouse_data[minor], cards[], chrdevs[].fops --:
    0 or the generation registered."""

    mod: Module
    registry: int
    locks: ModuleLocks
    mouse_sem: int
    chrdevs_lock: int

    @property
    def ops(self) -> int:
        return self.mod.data[0]

    @property
    def text(self) -> int:
        return self.mod.text


def declare_module2002(layout: Layout, visited_flags: bool = False) -> Module2002:
    return Module2002(
        mod=declare_module(layout, "mod", data=("ops",), kasan=True, visited_flags=visited_flags),
        registry=layout.scalar("registry"),
        locks=declare_module_locks(layout),
        mouse_sem=layout.scalar("mouse_sem"),
        chrdevs_lock=layout.scalar("chrdevs_lock"),
    )


def race_window(ctx: Ctx, us: float) -> None:
    """Where the mail says "race here": the task may be preempted (free mode only)."""
    if us:
        ctx.delay_us(us)


# ---------------------------------------------------------------------------------------------
# The callers, one per variant. Each: use(ctx, m, race_us) -> True if it reached the driver,
# False on -ENODEV; cleanup_module (what the module's exit unregisters); the era of module.c.
# ---------------------------------------------------------------------------------------------
class Caller:
    name = ""
    era = "2.4"

    def loader(self, m: Module2002) -> ml.Loader:
        if self.era == "2.4":
            return ml.Loader("2.4", m.locks)
        return ml.Loader(self.era, m.locks, PERCPU_COUNT, modules_list=True)

    def register(self, ctx: Ctx, m: Module2002, gen: int) -> None:
        ctx.write_once(m.registry, gen)

    def cleanup_module(self, ctx: Ctx, m: Module2002) -> None:
        raise NotImplementedError

    def use(self, ctx: Ctx, m: Module2002, race_us: float = 0.0) -> bool:
        raise NotImplementedError

    def load(self, ctx: Ctx, m: Module2002) -> int:
        """insmod: a new generation of the module; its init registers the driver."""
        return ml.load_module(ctx, self.loader(m), m.mod, init=lambda c, gen: self.register(c, m, gen))

    def unload(self, ctx: Ctx, m: Module2002) -> int:
        """rmmod (O_NONBLOCK): 0, or -errno while in use."""
        return ml.delete_module(ctx, self.loader(m), m.mod, exit=lambda c: self.cleanup_module(c, m))

    def refcount(self, w: Any, m: Module2002, nr_cpu_ids: int) -> int:
        """The count at quiesce (oracle, for the exactness check)."""
        return int(w[m.mod.usecount])

    def loaded(self, w: Any, m: Module2002) -> bool:
        """At quiesce: did the last insmod finish? (2.4's cannot be cut short.)"""
        return True


class HisaxUnlocked(Caller):
    """drivers/isdn/hisax/config.c: HiSax_command() with HiSax_mod_{inc,dec}_use_count()."""

    name = "hisax-unlocked"

    def cleanup_module(self, ctx: Ctx, m: Module2002) -> None:
        hisax_unregister(ctx, m)

    def use(self, ctx: Ctx, m: Module2002, race_us: float = 0.0) -> bool:
        return HiSax_command(ctx, m, race_us)


def hisax_unregister(ctx: Ctx, m: Module2002) -> None:
    ctx.write_once(m.registry, 0)  # no lock shared with HiSax_command


def HiSax_mod_inc_use_count(ctx: Ctx, m: Module2002, race_us: float) -> None:
    owner = kasan(ctx, ctx.read_once(m.ops), "cs->hw.hisax_d_if->owner")
    race_window(ctx, race_us)  # race here
    if owner:
        try_inc_mod_count(ctx, m.mod, m.locks.unload_lock)  # the result is not checked


def HiSax_mod_dec_use_count(ctx: Ctx, m: Module2002) -> None:
    owner = kasan(ctx, ctx.read_once(m.ops), "cs->hw.hisax_d_if->owner")
    if owner:
        __MOD_DEC_USE_COUNT(ctx, m.mod)


def HiSax_command(ctx: Ctx, m: Module2002, race_us: float) -> bool:
    cs = ctx.read_once(m.registry)  # hisax_findcard(): cards[], no lock
    if not cs:
        return False
    HiSax_mod_inc_use_count(ctx, m, race_us)
    module_text(ctx, ctx.read_once(m.text), "cs->hw.hisax_d_if->ifc.l1l2")  # into the driver
    HiSax_mod_dec_use_count(ctx, m)
    return True


class BusmouseLocked(Caller):
    """drivers/char/busmouse.c: busmouse_open()/busmouse_release() under mouse_sem."""

    name = "busmouse-locked"

    def cleanup_module(self, ctx: Ctx, m: Module2002) -> None:
        unregister_busmouse(ctx, m)

    def use(self, ctx: Ctx, m: Module2002, race_us: float = 0.0) -> bool:
        if busmouse_open(ctx, m, race_us) != 0:
            return False
        busmouse_release(ctx, m)
        return True


def unregister_busmouse(ctx: Ctx, m: Module2002) -> None:
    with mutex(ctx, m.mouse_sem):  # down(&mouse_sem)
        ctx.write_once(m.registry, 0)  # busmouse_data[mousedev] = NULL


def busmouse_open(ctx: Ctx, m: Module2002, race_us: float) -> int:
    with mutex(ctx, m.mouse_sem):  # down(&mouse_sem) ... up(&mouse_sem), an oops too
        mse = ctx.read_once(m.registry)  # busmouse_data[mousedev]
        if not mse:
            return -ENODEV
        owner = kasan(ctx, ctx.read_once(m.ops), "mse->ops->owner")
        race_window(ctx, race_us)
        if owner and not try_inc_mod_count(ctx, m.mod, m.locks.unload_lock):
            return -ENODEV
        module_text(ctx, ctx.read_once(m.text), "mse->ops->open")
        return 0


def busmouse_release(ctx: Ctx, m: Module2002) -> None:
    with mutex(ctx, m.mouse_sem):
        module_text(ctx, ctx.read_once(m.text), "mse->ops->release")
        owner = kasan(ctx, ctx.read_once(m.ops), "mse->ops->owner")
        if owner:
            __MOD_DEC_USE_COUNT(ctx, m.mod)


class IncInsideModule(Caller):
    """A 2.4 char driver without ->owner: chrdev_open() calls fops->open(), which
    does MOD_INC_USE_COUNT itself."""

    name = "inc-inside-module"

    def cleanup_module(self, ctx: Ctx, m: Module2002) -> None:
        unregister_chrdev(ctx, m)

    def use(self, ctx: Ctx, m: Module2002, race_us: float = 0.0) -> bool:
        if chrdev_open(ctx, m, race_us) != 0:
            return False
        chrdev_release(ctx, m)
        return True


def unregister_chrdev(ctx: Ctx, m: Module2002) -> None:
    with spinlock(ctx, m.chrdevs_lock):  # write_lock(&chrdevs_lock)
        ctx.write_once(m.registry, 0)  # chrdevs[major].fops = NULL


def driver_open(ctx: Ctx, m: Module2002, race_us: float) -> int:
    """The module's own open(): the reference is taken after the call began."""
    race_window(ctx, race_us)
    MOD_INC_USE_COUNT(ctx, m.mod)
    module_text(ctx, ctx.read_once(m.text), "open() after MOD_INC_USE_COUNT")
    return 0


def driver_release(ctx: Ctx, m: Module2002) -> int:
    MOD_DEC_USE_COUNT(ctx, m.mod)
    module_text(ctx, ctx.read_once(m.text), "release() returns")  # still in the module
    return 0


def chrdev_open(ctx: Ctx, m: Module2002, race_us: float) -> int:
    with spinlock(ctx, m.chrdevs_lock):  # get_chrfops(): read_lock(&chrdevs_lock)
        fops = ctx.read_once(m.registry)  # fops_get(): no owner, nothing counted
    if not fops:
        return -ENODEV
    kasan(ctx, ctx.read_once(m.ops), "filp->f_op->open")
    module_text(ctx, ctx.read_once(m.text), "fops->open")  # the call enters the module
    return driver_open(ctx, m, race_us)


def chrdev_release(ctx: Ctx, m: Module2002) -> None:
    kasan(ctx, ctx.read_once(m.ops), "filp->f_op->release")
    module_text(ctx, ctx.read_once(m.text), "fops->release")
    driver_release(ctx, m)


# ---------------------------------------------------------------------------------------------
# The design the mail argues for, as in 2.6.0: all the locking in module.c.
# ---------------------------------------------------------------------------------------------
class TryModuleGet(Caller):
    """fops_get() in the generic open path: lookup and try_module_get in one
    preempt-off section, result checked; module_put() after release."""

    name = "try-module-get"
    era = "2.6.0"

    def cleanup_module(self, ctx: Ctx, m: Module2002) -> None:
        unregister_chrdev(ctx, m)

    def use(self, ctx: Ctx, m: Module2002, race_us: float = 0.0) -> bool:
        owner = fops_get(ctx, m, race_us)
        if not owner:
            return False
        module_text(ctx, ctx.read_once(m.text), "fops->open")
        module_text(ctx, ctx.read_once(m.text), "fops->release")
        fops_put(ctx, m)
        return True

    def refcount(self, w: Any, m: Module2002, nr_cpu_ids: int) -> int:
        return int(sum(w[per_cpu_ptr(m.mod.count, c)] for c in range(nr_cpu_ids)))

    def loaded(self, w: Any, m: Module2002) -> bool:
        """An insmod whose stop_machine the end of the run cut short (a CPU had not
        parked yet: `StillAsleep`) left the module COMING, its initial reference held
        and its driver not registered: nothing loaded to check."""
        return int(w[m.mod.state]) == ModuleState.LIVE


def fops_get(ctx: Ctx, m: Module2002, race_us: float) -> int:
    """Look the driver up and pin its module; 0 if there is none or it is going."""
    owner = 0
    with preempt_disabled(ctx):  # the lookup is a preempt-off (RCU-sched) section
        if ctx.read_once(m.registry):
            owner = kasan(ctx, ctx.read_once(m.ops), "fops->owner")
            race_window(ctx, race_us)
            if owner and not PERCPU_COUNT.try_module_get(ctx, m.mod):
                owner = 0
    return owner


def fops_put(ctx: Ctx, m: Module2002) -> None:
    owner = kasan(ctx, ctx.read_once(m.ops), "fops->owner")
    if owner:
        PERCPU_COUNT.module_put(ctx, m.mod)


CALLERS: dict[str, Caller] = {c.name: c for c in (HisaxUnlocked(), BusmouseLocked(), IncInsideModule(), TryModuleGet())}
ALIASES = {"buggy": "hisax-unlocked", "fixed": "try-module-get"}


def caller_variant(name: str) -> Caller:
    return lookup(CALLERS, ALIASES, name)
