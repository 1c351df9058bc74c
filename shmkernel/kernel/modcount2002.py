"""Module removal in 2002: kernel/module.c of Linux 2.4, its callers, and the 2.6 design.

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

2.4's unload is kernel/module.c's, in its order (``sys_delete_module``):
``lock_kernel``; ``spin_lock(&unload_lock)``; ``if (!__MOD_IN_USE(mod))``
``mod->flags |= MOD_DELETED``; ``spin_unlock``; ``free_module(mod, 0)``:
``mod->cleanup()`` (the module's cleanup routine, which unregisters the
driver), ``flags &= ~MOD_RUNNING``, ``module_unmap``. ``try_inc_mod_count``:
``spin_lock(&unload_lock); if (mod->flags & MOD_DELETED) res = 0; else
__MOD_INC_USE_COUNT(mod); spin_unlock``.

The emulator's instruments (no kernel code does this):

- *KASAN*: ``module_unmap`` poisons the module's memory (its ``struct module``
  words, its code ``mod.text`` and the driver struct ``mod.ops`` in its
  data) with ``POISON``; a CPU that reads a poisoned word reports
  ``use_after_free`` and its task dies (`Oops`) after dropping the locks it
  holds (a real oops would leave them held and hang the machine).
- *condemned text*: the step that commits the unload (``MOD_DELETED`` set /
  state ``GOING``) also marks the module's code condemned
  (``mod.text`` = minus its generation, a shadow write, one step): the unloader
  has decided nobody is using the module. A CPU that then executes the
  module's code has a reference the unloader did not count:
  ``uncounted_ref``. Reading data (``mod.ops``) of a condemned but not yet
  freed module is not flagged: a lock the unregistration takes may protect
  it (busmouse's ``mouse_sem``).

Both detections read the very word the unloader writes, so they depend only
on the order of conflicting steps (sound under the exhaustive explorer).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shmkernel.kernel.stop_machine import stop_machine
from shmkernel.kernel.variants import lookup
from shmkernel.memory.layout import Layout
from shmkernel.runtime.ctx import Ctx

# include/linux/module.h (2.4): mod->flags
MOD_UNINITIALIZED = 0
MOD_RUNNING = 1
MOD_DELETED = 2
MOD_AUTOCLEAN = 4
MOD_VISITED = 8
MOD_USED_ONCE = 16

EWOULDBLOCK = 11
EBUSY = 16
ENODEV = 19

#: module_unmap()ed memory: the slab's POISON_FREE byte (0x6b) in every byte of a word
POISON = 0x6B6B6B6B
_POISON_SLACK = 1 << 20  # atomics applied to a poisoned word stay "poisoned"


class ModuleState(enum.IntEnum):
    """enum module_state (2.6.0)."""

    LIVE = 0
    COMING = 1
    GOING = 2


@dataclass(frozen=True)
class Module2002:
    """struct module, the driver it registers, and the locks around them (word indices).

    In the module's memory (poisoned by module_unmap): ``flags``,
    ``usecount`` (``uc.usecount``), ``state`` and per-CPU ``ref`` (2.6.0),
    ``text`` (its code; value: the generation, negated once condemned) and
    ``ops`` (the driver's ops / hisax_d_if struct in its data; value: the
    owner pointer, i.e. the generation). Outside it: ``registry`` (the
    subsystem's table slot -- busmouse_data[minor], cards[], chrdevs[].fops --
    0 or the generation registered), the locks, and ``generation`` (the
    emulator's load count)."""

    flags: int
    usecount: int
    state: int
    ref: int
    text: int
    ops: int
    registry: int
    generation: int
    unload_lock: int
    kernel_flag: int
    module_mutex: int
    mouse_sem: int
    chrdevs_lock: int
    #: not a word: model __MOD_{INC,DEC}_USE_COUNT's ``mod->flags |= MOD_VISITED...``
    visited_flags: bool = False


def declare_module2002(layout: Layout, visited_flags: bool = False) -> Module2002:
    return Module2002(
        flags=layout.scalar("mod.flags"),
        usecount=layout.scalar("mod.uc.usecount"),
        state=layout.scalar("mod.state"),
        ref=layout.percpu("mod.ref"),
        text=layout.scalar("mod.text"),
        ops=layout.scalar("mod.ops"),
        registry=layout.scalar("registry"),
        generation=layout.scalar("mod.generation"),
        unload_lock=layout.scalar("unload_lock"),
        kernel_flag=layout.scalar("kernel_flag"),
        module_mutex=layout.scalar("module_mutex"),
        mouse_sem=layout.scalar("mouse_sem"),
        chrdevs_lock=layout.scalar("chrdevs_lock"),
        visited_flags=visited_flags,
    )


# ---------------------------------------------------------------------------------------------
# The emulator's KASAN and condemned-code check (instrumentation: no steps of their own).
# ---------------------------------------------------------------------------------------------
class Oops(Exception):
    """A CPU touched freed module memory: KASAN reported it; the task dies."""


def is_poison(value: int) -> bool:
    return abs(value - POISON) < _POISON_SLACK


def kasan(ctx: Ctx, value: int, what: str) -> int:
    """Check a value just loaded from module memory; a poisoned one is a use after free."""
    if is_poison(value):
        ctx.event("use_after_free", what=what)
        raise Oops(what)
    return value


class Task:
    """The emulator's side of ``current``: what was already reported for the use
    in progress (each CPU is its own process, so a module global is per CPU)."""

    uncounted_reported = False


current = Task()


def begin_use() -> None:
    """A new use starts: it may report one uncounted reference of its own."""
    current.uncounted_reported = False


def module_text(ctx: Ctx, value: int, what: str) -> None:
    """The CPU executes module code (``value`` was fetched from ``mod.text``);
    a use reports ``uncounted_ref`` once, however much condemned code it runs."""
    kasan(ctx, value, what)
    if value < 0 and not current.uncounted_reported:
        current.uncounted_reported = True
        ctx.event("uncounted_ref", what=what)


def race_window(ctx: Ctx, us: float) -> None:
    """Where the mail says "race here": the task may be preempted (free mode only)."""
    if us:
        ctx.delay_us(us)


# ---------------------------------------------------------------------------------------------
# kernel/module.c and include/linux/module.h, Linux 2.4
# ---------------------------------------------------------------------------------------------
def __MOD_INC_USE_COUNT(ctx: Ctx, mod: Module2002, what: str = "__MOD_INC_USE_COUNT") -> None:
    """(atomic_inc(&mod->uc.usecount), mod->flags |= MOD_VISITED|MOD_USED_ONCE).

    The flags update only feeds autoclean and is modelled only with
    ``mod.visited_flags``: it is a plain read-modify-write of the word that
    also carries MOD_DELETED, and no lock orders it against sys_delete_module."""
    kasan(ctx, ctx.atomic_inc_return(mod.usecount) - 1, what)
    if mod.visited_flags:
        flags = kasan(ctx, ctx.read_once(mod.flags), what + ": mod->flags")
        ctx.write_once(mod.flags, flags | MOD_VISITED | MOD_USED_ONCE)


def __MOD_DEC_USE_COUNT(ctx: Ctx, mod: Module2002, what: str = "__MOD_DEC_USE_COUNT") -> None:
    """(atomic_dec(&mod->uc.usecount), mod->flags |= MOD_VISITED)."""
    kasan(ctx, ctx.atomic_dec_return(mod.usecount) + 1, what)
    if mod.visited_flags:
        flags = kasan(ctx, ctx.read_once(mod.flags), what + ": mod->flags")
        ctx.write_once(mod.flags, flags | MOD_VISITED)


def MOD_INC_USE_COUNT(ctx: Ctx, mod: Module2002) -> None:
    """__MOD_INC_USE_COUNT(THIS_MODULE): what a module did from its own functions."""
    __MOD_INC_USE_COUNT(ctx, mod, "MOD_INC_USE_COUNT")


def MOD_DEC_USE_COUNT(ctx: Ctx, mod: Module2002) -> None:
    __MOD_DEC_USE_COUNT(ctx, mod, "MOD_DEC_USE_COUNT")


def try_inc_mod_count(ctx: Ctx, mod: Module2002, owner: int) -> int:
    """kernel/module.c: count a reference unless the module is being deleted."""
    res = 1
    if owner:
        ctx.spin_lock(mod.unload_lock)
        try:
            if kasan(ctx, ctx.read_once(mod.flags), "try_inc_mod_count: mod->flags") & MOD_DELETED:
                res = 0
            else:
                __MOD_INC_USE_COUNT(ctx, mod)
        except Oops:
            ctx.spin_unlock(mod.unload_lock)
            raise
        ctx.spin_unlock(mod.unload_lock)
    return res


def __MOD_IN_USE(ctx: Ctx, mod: Module2002) -> bool:
    return ctx.atomic_read(mod.usecount) != 0


def condemn(ctx: Ctx, mod: Module2002) -> None:
    """Emulator shadow write: the unloader committed; the module's code is condemned."""
    ctx.write_once(mod.text, -abs(ctx.oracle_read(mod.text)))


def module_unmap(ctx: Ctx, mod: Module2002) -> None:
    """vfree() the module image: every word of it is poisoned."""
    for word in (mod.ops, mod.text, mod.flags, mod.usecount):
        ctx.write_once(word, POISON)


def free_module(ctx: Ctx, mod: Module2002, caller: Caller) -> None:
    """kernel/module.c free_module(mod, 0)."""
    # Let the module clean up.
    if ctx.read_once(mod.flags) & MOD_RUNNING:
        caller.cleanup_module(ctx, mod)  # mod->cleanup(): unregisters the driver
        ctx.write_once(mod.flags, ctx.read_once(mod.flags) & ~MOD_RUNNING)
    # (Remove the module from the dependency and module lists: not modelled.)
    # And free the memory.
    module_unmap(ctx, mod)


def sys_delete_module(ctx: Ctx, mod: Module2002, caller: Caller) -> int:
    """kernel/module.c sys_delete_module(name), 2.4: 0, or -EBUSY while in use."""
    ctx.mutex_lock(mod.kernel_flag)  # lock_kernel()
    error = -EBUSY
    ctx.spin_lock(mod.unload_lock)
    if not __MOD_IN_USE(ctx, mod):
        ctx.write_once(mod.flags, ctx.read_once(mod.flags) | MOD_DELETED)
        condemn(ctx, mod)
        ctx.spin_unlock(mod.unload_lock)
        free_module(ctx, mod, caller)
        error = 0
    else:
        ctx.spin_unlock(mod.unload_lock)
    ctx.mutex_unlock(mod.kernel_flag)  # unlock_kernel()
    return error


def init_module(ctx: Ctx, mod: Module2002, caller: Caller) -> None:
    """sys_create_module + sys_init_module: map a new image (a new generation),
    run its init (which registers the driver), mark it running."""
    gen = ctx.read_once(mod.generation) + 1
    ctx.write_once(mod.generation, gen)
    ctx.write_once(mod.usecount, 0)
    ctx.write_once(mod.flags, MOD_UNINITIALIZED)
    ctx.write_once(mod.state, ModuleState.COMING)
    for cpu in range(ctx.nr_cpu_ids):
        ctx.write_once(mod.ref + cpu * 8, 0)
    ctx.write_once(mod.text, gen)
    ctx.write_once(mod.ops, gen)  # ops->owner = THIS_MODULE
    ctx.smp_mb()
    caller.register(ctx, mod, gen)  # mod->init()
    ctx.write_once(mod.flags, MOD_RUNNING)
    ctx.write_once(mod.state, ModuleState.LIVE)


# ---------------------------------------------------------------------------------------------
# The callers, one per variant. Each: use(ctx, mod, race_us) -> True if it reached the
# driver, False on -ENODEV; cleanup_module (what the module's exit unregisters); unload.
# ---------------------------------------------------------------------------------------------
class Caller:
    name = ""

    def register(self, ctx: Ctx, mod: Module2002, gen: int) -> None:
        ctx.write_once(mod.registry, gen)

    def cleanup_module(self, ctx: Ctx, mod: Module2002) -> None:
        raise NotImplementedError

    def use(self, ctx: Ctx, mod: Module2002, race_us: float = 0.0) -> bool:
        raise NotImplementedError

    def unload(self, ctx: Ctx, mod: Module2002) -> int:
        return sys_delete_module(ctx, mod, self)

    def refcount(self, w, mod: Module2002, nr_cpu_ids: int) -> int:  # type: ignore[no-untyped-def]
        """The count at quiesce (oracle, for the exactness check)."""
        return int(w[mod.usecount])


class HisaxUnlocked(Caller):
    """drivers/isdn/hisax/config.c: HiSax_command() with HiSax_mod_{inc,dec}_use_count()."""

    name = "hisax-unlocked"

    def cleanup_module(self, ctx: Ctx, mod: Module2002) -> None:
        hisax_unregister(ctx, mod)

    def use(self, ctx: Ctx, mod: Module2002, race_us: float = 0.0) -> bool:
        return HiSax_command(ctx, mod, race_us)


def hisax_unregister(ctx: Ctx, mod: Module2002) -> None:
    ctx.write_once(mod.registry, 0)  # no lock shared with HiSax_command


def HiSax_mod_inc_use_count(ctx: Ctx, mod: Module2002, race_us: float) -> None:
    owner = kasan(ctx, ctx.read_once(mod.ops), "cs->hw.hisax_d_if->owner")
    race_window(ctx, race_us)  # race here
    if owner:
        try_inc_mod_count(ctx, mod, owner)  # the result is not checked


def HiSax_mod_dec_use_count(ctx: Ctx, mod: Module2002) -> None:
    owner = kasan(ctx, ctx.read_once(mod.ops), "cs->hw.hisax_d_if->owner")
    if owner:
        __MOD_DEC_USE_COUNT(ctx, mod)


def HiSax_command(ctx: Ctx, mod: Module2002, race_us: float) -> bool:
    cs = ctx.read_once(mod.registry)  # hisax_findcard(): cards[], no lock
    if not cs:
        return False
    HiSax_mod_inc_use_count(ctx, mod, race_us)
    module_text(ctx, ctx.read_once(mod.text), "cs->hw.hisax_d_if->ifc.l1l2")  # into the driver
    HiSax_mod_dec_use_count(ctx, mod)
    return True


class BusmouseLocked(Caller):
    """drivers/char/busmouse.c: busmouse_open()/busmouse_release() under mouse_sem."""

    name = "busmouse-locked"

    def cleanup_module(self, ctx: Ctx, mod: Module2002) -> None:
        unregister_busmouse(ctx, mod)

    def use(self, ctx: Ctx, mod: Module2002, race_us: float = 0.0) -> bool:
        if busmouse_open(ctx, mod, race_us) != 0:
            return False
        busmouse_release(ctx, mod)
        return True


def unregister_busmouse(ctx: Ctx, mod: Module2002) -> None:
    ctx.mutex_lock(mod.mouse_sem)  # down(&mouse_sem)
    ctx.write_once(mod.registry, 0)  # busmouse_data[mousedev] = NULL
    ctx.mutex_unlock(mod.mouse_sem)


def busmouse_open(ctx: Ctx, mod: Module2002, race_us: float) -> int:
    ctx.mutex_lock(mod.mouse_sem)  # down(&mouse_sem)
    try:
        mse = ctx.read_once(mod.registry)  # busmouse_data[mousedev]
        ret = -ENODEV
        if mse:
            owner = kasan(ctx, ctx.read_once(mod.ops), "mse->ops->owner")
            race_window(ctx, race_us)
            if not (owner and not try_inc_mod_count(ctx, mod, owner)):
                module_text(ctx, ctx.read_once(mod.text), "mse->ops->open")
                ret = 0
    except Oops:
        ctx.mutex_unlock(mod.mouse_sem)
        raise
    ctx.mutex_unlock(mod.mouse_sem)  # up(&mouse_sem)
    return ret


def busmouse_release(ctx: Ctx, mod: Module2002) -> None:
    ctx.mutex_lock(mod.mouse_sem)
    try:
        module_text(ctx, ctx.read_once(mod.text), "mse->ops->release")
        owner = kasan(ctx, ctx.read_once(mod.ops), "mse->ops->owner")
        if owner:
            __MOD_DEC_USE_COUNT(ctx, mod)
    except Oops:
        ctx.mutex_unlock(mod.mouse_sem)
        raise
    ctx.mutex_unlock(mod.mouse_sem)


class IncInsideModule(Caller):
    """A 2.4 char driver without ->owner: chrdev_open() calls fops->open(), which
    does MOD_INC_USE_COUNT itself."""

    name = "inc-inside-module"

    def cleanup_module(self, ctx: Ctx, mod: Module2002) -> None:
        unregister_chrdev(ctx, mod)

    def use(self, ctx: Ctx, mod: Module2002, race_us: float = 0.0) -> bool:
        if chrdev_open(ctx, mod, race_us) != 0:
            return False
        chrdev_release(ctx, mod)
        return True


def unregister_chrdev(ctx: Ctx, mod: Module2002) -> None:
    ctx.spin_lock(mod.chrdevs_lock)  # write_lock(&chrdevs_lock)
    ctx.write_once(mod.registry, 0)  # chrdevs[major].fops = NULL
    ctx.spin_unlock(mod.chrdevs_lock)


def driver_open(ctx: Ctx, mod: Module2002, race_us: float) -> int:
    """The module's own open(): the reference is taken after the call began."""
    race_window(ctx, race_us)
    MOD_INC_USE_COUNT(ctx, mod)
    module_text(ctx, ctx.read_once(mod.text), "open() after MOD_INC_USE_COUNT")
    return 0


def driver_release(ctx: Ctx, mod: Module2002) -> int:
    MOD_DEC_USE_COUNT(ctx, mod)
    module_text(ctx, ctx.read_once(mod.text), "release() returns")  # still in the module
    return 0


def chrdev_open(ctx: Ctx, mod: Module2002, race_us: float) -> int:
    ctx.spin_lock(mod.chrdevs_lock)  # get_chrfops(): read_lock(&chrdevs_lock)
    fops = ctx.read_once(mod.registry)  # fops_get(): no owner, nothing counted
    ctx.spin_unlock(mod.chrdevs_lock)
    if not fops:
        return -ENODEV
    kasan(ctx, ctx.read_once(mod.ops), "filp->f_op->open")
    module_text(ctx, ctx.read_once(mod.text), "fops->open")  # the call enters the module
    return driver_open(ctx, mod, race_us)


def chrdev_release(ctx: Ctx, mod: Module2002) -> None:
    kasan(ctx, ctx.read_once(mod.ops), "filp->f_op->release")
    module_text(ctx, ctx.read_once(mod.text), "fops->release")
    driver_release(ctx, mod)


# ---------------------------------------------------------------------------------------------
# The design the mail argues for, as in 2.6.0: all the locking in module.c.
# ---------------------------------------------------------------------------------------------
def try_module_get(ctx: Ctx, mod: Module2002, owner: int) -> bool:
    """include/linux/module.h (2.6.0): count on this CPU unless the module is going."""
    ret = True
    if owner:
        ctx.preempt_disable()  # get_cpu()
        try:
            # if (likely(module_is_live(module)))
            if kasan(ctx, ctx.read_once(mod.state), "try_module_get: module->state") != ModuleState.GOING:
                ctx.this_cpu_inc(mod.ref)  # local_inc(&module->ref[cpu].count)
            else:
                ret = False
        except Oops:
            ctx.preempt_enable()
            raise
        ctx.preempt_enable()  # put_cpu()
    return ret


def module_put(ctx: Ctx, mod: Module2002, owner: int) -> None:
    if owner:
        ctx.preempt_disable()
        ctx.this_cpu_dec(mod.ref)
        # Maybe they're waiting for us to drop reference? (wake_up_process(mod->waiter))
        try:
            kasan(ctx, ctx.read_once(mod.state), "module_put: module->state")
        except Oops:
            ctx.preempt_enable()
            raise
        ctx.preempt_enable()


def module_refcount(ctx: Ctx, mod: Module2002) -> int:
    return sum(ctx.per_cpu_read(mod.ref, cpu) for cpu in range(ctx.nr_cpu_ids))


def __try_stop_module(ctx: Ctx, mod: Module2002) -> int:
    """Run under stop_machine (O_NONBLOCK): nothing moves, the tally is exact."""
    if module_refcount(ctx, mod) != 0:
        return -EWOULDBLOCK
    # Mark it as dying.
    ctx.write_once(mod.state, ModuleState.GOING)
    condemn(ctx, mod)
    return 0


def __unlink_module(ctx: Ctx, mod: Module2002) -> int:
    """list_del(&mod->list) under stop_machine: every preempt-off section that
    could still hold a pointer into the module has ended."""
    return 0


def module_free_26(ctx: Ctx, mod: Module2002) -> None:
    for word in (mod.ops, mod.text, mod.state):
        ctx.write_once(word, POISON)


def sys_delete_module_26(ctx: Ctx, mod: Module2002, caller: Caller) -> int:
    """kernel/module.c sys_delete_module (2.6.0, O_NONBLOCK)."""
    ctx.mutex_lock(mod.module_mutex)
    ret = -EBUSY
    if ctx.read_once(mod.state) == ModuleState.LIVE:
        # Stop the machine so refcounts can't move.
        ret = stop_machine(ctx, __try_stop_module, mod)
        if ret == 0:
            # (O_NONBLOCK: the count was zero under the stop, nothing to wait for.)
            # Final destruction now noone is using it.
            caller.cleanup_module(ctx, mod)  # mod->exit()
            stop_machine(ctx, __unlink_module, mod)  # free_module(): delete from the lists
            module_free_26(ctx, mod)
    ctx.mutex_unlock(mod.module_mutex)
    return ret


class TryModuleGet(Caller):
    """fops_get() in the generic open path: lookup and try_module_get in one
    preempt-off section, result checked; module_put() after release."""

    name = "try-module-get"

    def cleanup_module(self, ctx: Ctx, mod: Module2002) -> None:
        unregister_chrdev(ctx, mod)

    def unload(self, ctx: Ctx, mod: Module2002) -> int:
        return sys_delete_module_26(ctx, mod, self)

    def use(self, ctx: Ctx, mod: Module2002, race_us: float = 0.0) -> bool:
        owner = fops_get(ctx, mod, race_us)
        if not owner:
            return False
        module_text(ctx, ctx.read_once(mod.text), "fops->open")
        module_text(ctx, ctx.read_once(mod.text), "fops->release")
        fops_put(ctx, mod)
        return True

    def refcount(self, w, mod: Module2002, nr_cpu_ids: int) -> int:  # type: ignore[no-untyped-def]
        return int(sum(w[mod.ref + c * 8] for c in range(nr_cpu_ids)))


def fops_get(ctx: Ctx, mod: Module2002, race_us: float) -> int:
    """Look the driver up and pin its module; 0 if there is none or it is going."""
    ctx.preempt_disable()  # the lookup is a preempt-off (RCU-sched) section
    owner = 0
    try:
        if ctx.read_once(mod.registry):
            owner = kasan(ctx, ctx.read_once(mod.ops), "fops->owner")
            race_window(ctx, race_us)
            if not try_module_get(ctx, mod, owner):
                owner = 0
    except Oops:
        ctx.preempt_enable()
        raise
    ctx.preempt_enable()
    return owner


def fops_put(ctx: Ctx, mod: Module2002) -> None:
    owner = kasan(ctx, ctx.read_once(mod.ops), "fops->owner")
    module_put(ctx, mod, owner)


CALLERS: dict[str, Caller] = {c.name: c for c in (HisaxUnlocked(), BusmouseLocked(), IncInsideModule(),
                                                   TryModuleGet())}
ALIASES = {"buggy": "hisax-unlocked", "fixed": "try-module-get"}


def caller_variant(name: str) -> Caller:
    return lookup(CALLERS, ALIASES, name)
