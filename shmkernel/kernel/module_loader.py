"""kernel/module.c's loader and unloader: load_module, delete_module, free_module, by era.

One family of functions for every seed; where the kernels differ, the era's
lines sit side by side (``loader.era``), in the kernels' order of operations:

- ``2.4`` (seed 003, module_2_4.py): sys_create_module + sys_init_module; sys_delete_module
  under ``lock_kernel()`` and ``unload_lock`` (``MOD_DELETED``); free_module
  runs ``mod->cleanup()`` then unmaps the image.
- ``2.6.0`` (seed 003): ``module_mutex``; try_stop_module under stop_machine;
  ``mod->exit()`` runs with module_mutex *held* (Andrea Arcangeli's "Drop Lock
  Around Module Exit", Feb 2004 against 2.6.3, is what later releases it);
  free_module unlinks under stop_machine.
- ``2.6.20`` (seed 001): the same with a mutex, module_mutex dropped around
  ``mod->exit()``; load_module links the module while it is still COMING
  (``strong_try_module_get`` refuses it until its init ran), then LIVE.
- ``2.6.33`` (seed 000): try_stop_module stops the machine only for
  O_NONBLOCK, else GOING and ``synchronize_sched()``; the GOING notifier.
- ``4.0`` (seed 002; and the ``atomic`` refcount, v3.19 on): UNFORMED /
  COMING / LIVE with ``add_unformed_module``, ``complete_formation``,
  ``do_init_module``; try_stop_module is ``try_release_module_ref``, no wait;
  free_module marks the module UNFORMED under module_mutex.

``wait_for_zero_refcount`` sleeps until the count reads 0, module_mutex
released, as every 2.6 kernel does. The kernel waits forever; a scheduled
program must end, so after ``max_waits`` tallies (scheduled mode) -- and in
free mode once the run is stopped -- the rmmod task is *still asleep*: it
raises `RmmodAsleep`, and its program ends there, module GOING and rmmod in
D state, a prefix of a kernel execution (never an -EBUSY no kernel returns).
With ``loader.rmmod_hang`` a negative count is final (a put without a get
came after GOING, and rmmod sleeps forever): ``rmmod_hang`` is reported and
the module freed all the same, so that the run goes on.

What a workload's kernel keeps elsewhere comes in as hooks: the module_use
lists (`ModuleUse`, symbols.py), the module notifier chain (livepatch.py),
the module's own ``init``/``exit``. A module list (``mod.listed``) is kept only
where something walks it (``loader.modules_list``); elsewhere find_module
always finds the module. Users of such a module hold a fixed pointer to it,
so while its memory is re-formed its state reads GOING (the kernel would
use new memory).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shmkernel.kernel.errno import EBUSY, EEXIST, ENOENT, EWOULDBLOCK
from shmkernel.kernel.kasan import condemn
from shmkernel.kernel.locking import lockdep_assert_held, mutex
from shmkernel.kernel.module import (
    AtomicRefcnt,
    Module,
    ModuleLocks,
    ModuleState,
    RefcountScheme,
    module_alloc,
    module_memfree,
)
from shmkernel.kernel.module_2_4 import module_unmap, sys_delete_module, sys_init_module
from shmkernel.kernel.stop_machine import stop_machine, synchronize_sched
from shmkernel.runtime.ctx import Ctx, StillAsleep

ERAS = ("2.4", "2.6.0", "2.6.20", "2.6.33", "4.0")

Notifier = Callable[[Ctx, ModuleState, Module, int], None]
InitFn = Callable[[Ctx, int], None]  # mod->init(), told THIS_MODULE's address
ExitFn = Callable[[Ctx], None]  # mod->exit() (2.4: mod->cleanup())


class RmmodAsleep(StillAsleep):
    """The rmmod task still sleeps in wait_for_zero_refcount() where its program ends."""


class ModuleUse(Protocol):
    """A module's modules_which_use_me list and its links, where a kernel emulates them."""

    def module_unload_init(self, ctx: Ctx) -> None: ...
    def simplify_symbols(self, ctx: Ctx) -> bool: ...
    def in_use(self, ctx: Ctx) -> bool: ...
    def module_unload_free(self, ctx: Ctx) -> None: ...


@dataclass(frozen=True)
class Loader:
    """kernel/module.c of one era, as a workload's kernel has it."""

    era: str
    locks: ModuleLocks
    ref: RefcountScheme | None = None  # None: the module's refcount is not emulated
    notifier: tuple[Notifier, ...] = ()  # module_notify_list
    modules_list: bool = False  # mod->list is emulated (something walks it)
    rmmod_hang: bool = False  # a negative count in wait_for_zero_refcount is final

    def __post_init__(self) -> None:
        if self.era not in ERAS:
            raise ValueError(f"unknown kernel era {self.era!r}")


def refcount_era(ref: RefcountScheme) -> str:
    """Seed 000's kernel: 2.6.33 with the per-CPU counts; the atomic refcnt came with v3.19 (``4.0``)."""
    return "4.0" if isinstance(ref, AtomicRefcnt) else "2.6.33"


def boot_module(ctx: Ctx, loader: Loader, mod: Module) -> None:
    """Power-on: the module not loaded, its memory not in use, the locks free."""
    for lock in (loader.locks.module_mutex, loader.locks.kernel_flag, loader.locks.unload_lock):
        ctx.write_once(lock, 0)
    ctx.write_once(mod.listed, 0)
    ctx.write_once(mod.generation, 0)
    ctx.write_once(mod.freed, 1)
    ctx.write_once(mod.state, ModuleState.UNFORMED)


def blocking_notifier_call_chain(ctx: Ctx, loader: Loader, action: ModuleState, mod: Module, addr: int) -> None:
    for notify in loader.notifier:
        notify(ctx, action, mod, addr)


# ---------------------------------------------------------------------------------------------
# The module list.
# ---------------------------------------------------------------------------------------------
def find_module(ctx: Ctx, loader: Loader, mod: Module) -> int:
    """find_module(mod->name), module_mutex held: the module's address, 0 if not
    listed (4.0: UNFORMED modules are skipped; the emulator's "not on the list" too)."""
    lockdep_assert_held(ctx, loader.locks.module_mutex)
    if loader.era == "4.0":
        if ctx.read_once(mod.state) == ModuleState.UNFORMED:
            return 0
    elif loader.modules_list:
        if not ctx.read_once(mod.listed):
            return 0
    elif ctx.read_once(mod.freed):  # no list: on it from its allocation to its free
        return 0
    return ctx.read_once(mod.generation)


def __link_module(ctx: Ctx, mod: Module) -> int:
    """list_add(&mod->list, &modules), the whole machine stopped (2.6.0 .. 2.6.28)."""
    ctx.write_once(mod.listed, 1)
    return 0


def __unlink_module(ctx: Ctx, mod: Module) -> int:
    """list_del(&mod->list), the whole machine stopped: every preempt-off section
    that could still hold a pointer into the module has ended."""
    ctx.write_once(mod.listed, 0)
    return 0


# ---------------------------------------------------------------------------------------------
# insmod.
# ---------------------------------------------------------------------------------------------
def _allocate(ctx: Ctx, loader: Loader, mod: Module) -> int:
    """layout_and_allocate: the module's memory, at a new address (generation)."""
    if not loader.modules_list and loader.era in ("2.6.0", "2.6.20", "2.6.33"):
        ctx.write_once(mod.state, ModuleState.GOING)  # stale pointers must find it dying until formed
    return module_alloc(ctx, mod)


def load_module(
    ctx: Ctx,
    loader: Loader,
    mod: Module,
    *,
    init: InitFn | None = None,
    use: ModuleUse | None = None,
    sysfs_delay_us: float = 0.0,
) -> int:
    """insmod (sys_init_module): 0, -EEXIST if loaded, -ENOENT if a symbol it links
    against is missing (the uses taken are dropped)."""
    if loader.era == "2.4":
        return sys_init_module(ctx, loader.locks, mod, init)
    if loader.era == "4.0":
        return load_module_4_0(ctx, loader, mod, init, sysfs_delay_us)
    lock, ref = loader.locks.module_mutex, loader.ref
    with mutex(ctx, lock):  # Only one module load at a time, please
        if find_module(ctx, loader, mod):
            return -EEXIST
        gen = _allocate(ctx, loader, mod)
        if loader.modules_list:
            ctx.write_once(mod.state, ModuleState.COMING)
        if use is not None:
            use.module_unload_init(ctx)
        if ref is not None:
            ref.module_unload_init(ctx, mod)
        if use is not None and not use.simplify_symbols(ctx):
            use.module_unload_free(ctx)  # free_unload
            return -ENOENT
        if loader.modules_list:
            # Now sew it into the lists.  They won't access us, since
            # strong_try_module_get() will fail.
            stop_machine(ctx, __link_module, mod)
        else:
            # No list: the users' fixed pointer reaches the module from here on, where the
            # kernel would link it, so it reads GOING (not live) until its counts are set up.
            ctx.smp_mb()
            ctx.write_once(mod.state, ModuleState.COMING)
    # Drop lock so they can recurse
    blocking_notifier_call_chain(ctx, loader, ModuleState.COMING, mod, gen)
    # Start the module
    if init is not None:
        init(ctx, gen)
    # Now it's a first class citizen!
    with mutex(ctx, lock):
        ctx.write_once(mod.state, ModuleState.LIVE)
        if ref is not None:
            ref.module_put(ctx, mod)  # Drop initial reference.
    return 0


def load_module_4_0(ctx: Ctx, loader: Loader, mod: Module, init: InitFn | None, sysfs_delay_us: float) -> int:
    """SYSCALL init_module (v4.0): formed while UNFORMED, COMING (visible to
    find_module from here on), parse_args() and mod_sysfs_setup()
    (``sysfs_delay_us``, free mode), then do_init_module()."""
    with mutex(ctx, loader.locks.module_mutex):  # add_unformed_module(): a zeroed struct module
        gen = ctx.read_once(mod.generation) + 1
        ctx.write_once(mod.generation, gen)
        ctx.write_once(mod.freed, 0)
        ctx.write_once(mod.klp_alive, 0)
        ctx.write_once(mod.state, ModuleState.UNFORMED)
    if loader.ref is not None:
        loader.ref.module_unload_init(ctx, mod)
    with mutex(ctx, loader.locks.module_mutex):  # complete_formation()
        # Mark state as coming so strong_try_module_get() ignores us,
        # but kallsyms etc. can see us.
        ctx.write_once(mod.state, ModuleState.COMING)
    if sysfs_delay_us:
        ctx.delay_us(sysfs_delay_us)  # parse_args(), mod_sysfs_setup()
    # do_init_module()
    blocking_notifier_call_chain(ctx, loader, ModuleState.COMING, mod, gen)
    if init is not None:
        init(ctx, gen)
    # Now it's a first class citizen!
    ctx.write_once(mod.state, ModuleState.LIVE)
    if loader.ref is not None:
        with mutex(ctx, loader.locks.module_mutex):
            loader.ref.module_put(ctx, mod)  # Drop initial reference.
    return 0


# ---------------------------------------------------------------------------------------------
# rmmod.
# ---------------------------------------------------------------------------------------------
def __try_stop_module(ctx: Ctx, loader: Loader, mod: Module, check: bool) -> int:
    """Whole machine is stopped with interrupts off when this runs (4.0: called as is)."""
    ref = loader.ref
    if check and ref is not None:
        # If it's not unused, quit unless we're forcing.
        if isinstance(ref, AtomicRefcnt):
            if ref.try_release_module_ref(ctx, mod) != 0:
                return -EWOULDBLOCK
        elif ref.module_refcount(ctx, mod) != 0:
            return -EWOULDBLOCK
    # Mark it as dying.
    ctx.write_once(mod.state, ModuleState.GOING)
    if mod.kasan:
        condemn(ctx, mod.text)
    return 0


def try_stop_module(ctx: Ctx, loader: Loader, mod: Module, nonblock: bool, force_stop_machine: bool = False) -> int:
    era = loader.era
    if era == "4.0":  # (``force_stop_machine``: no kernel did this; rmmod --stop-machine with atomic)
        if force_stop_machine:
            return stop_machine(ctx, __try_stop_module, loader, mod, True)
        return __try_stop_module(ctx, loader, mod, True)
    if era == "2.6.33" and not nonblock:
        # We don't need to stop the machine for this.
        ctx.write_once(mod.state, ModuleState.GOING)
        synchronize_sched(ctx)
        return 0
    # 2.6.0 .. 2.6.28 check the count for O_NONBLOCK only; 2.6.33 stops the machine for O_NONBLOCK only
    return stop_machine(ctx, __try_stop_module, loader, mod, nonblock)


def wait_for_zero_refcount(
    ctx: Ctx, loader: Loader, mod: Module, slot_delay_us: float = 0.0, max_waits: int | None = None
) -> None:
    """Sleep until module_refcount() reads 0 (module_put wakes us up); see the
    module docstring for `RmmodAsleep` and ``rmmod_hang``."""
    ref, lock = loader.ref, loader.locks.module_mutex
    assert ref is not None
    # Since we might sleep for some time, release the mutex first
    ctx.mutex_unlock(lock)
    waits = 0
    while (r := ref.module_refcount(ctx, mod, slot_delay_us)) != 0:
        if r < 0 and loader.rmmod_hang:
            ctx.event("rmmod_hang", module=mod.name, refcount=r)
            break
        waits += 1
        if ctx.stopped() or (max_waits is not None and waits >= max_waits):
            raise RmmodAsleep(mod.name)
        ctx.schedule()
    ctx.mutex_lock(lock)


def delete_module(
    ctx: Ctx,
    loader: Loader,
    mod: Module,
    *,
    exit: ExitFn | None = None,
    use: ModuleUse | None = None,
    nonblock: bool = True,
    force_stop_machine: bool = False,
    slot_delay_us: float = 0.0,
    max_waits: int | None = None,
    sysfs_delay_us: float = 0.0,
) -> int:
    """SYSCALL delete_module: 0 once the module is freed, else -errno (`RmmodAsleep`:
    still waiting for the count to read 0 where the program ends)."""
    if loader.era == "2.4":
        return sys_delete_module(ctx, loader.locks, mod, exit)
    era, lock, ref = loader.era, loader.locks.module_mutex, loader.ref
    ctx.mutex_lock(lock)
    addr = find_module(ctx, loader, mod)
    if not addr:
        ret = -ENOENT
    elif use is not None and use.in_use(ctx):
        ret = -EWOULDBLOCK  # Other modules depend on us: get rid of them first.
    elif ctx.read_once(mod.state) != ModuleState.LIVE:
        ret = -EBUSY  # Doing init or already dying?
    else:
        # Stop the machine so refcounts can't move and disable module.
        ret = try_stop_module(ctx, loader, mod, nonblock, force_stop_machine)
    if ret != 0:
        ctx.mutex_unlock(lock)
        return ret
    # Never wait if forced.
    if (
        era != "4.0"
        and ref is not None
        and not isinstance(ref, AtomicRefcnt)
        and ref.module_refcount(ctx, mod, slot_delay_us) != 0
    ):
        wait_for_zero_refcount(ctx, loader, mod, slot_delay_us, max_waits)
    # Final destruction now noone is using it.
    if era == "2.6.0":
        if exit is not None:
            exit(ctx)  # (module_mutex held: see the module docstring)
    elif era == "2.6.20":
        if exit is not None:
            ctx.mutex_unlock(lock)
            exit(ctx)
            ctx.mutex_lock(lock)
    else:
        ctx.mutex_unlock(lock)
        if exit is not None:
            exit(ctx)
        blocking_notifier_call_chain(ctx, loader, ModuleState.GOING, mod, addr)
        if sysfs_delay_us:
            ctx.delay_us(sysfs_delay_us)  # async_synchronize_full(), mod_sysfs_teardown()
        if era == "4.0":
            free_module(ctx, loader, mod, use)
            return 0
        ctx.mutex_lock(lock)
    try:
        free_module(ctx, loader, mod, use)
    finally:  # (an oops too: the emulator releases what the dying task held)
        ctx.mutex_unlock(lock)
    return 0


def free_module(ctx: Ctx, loader: Loader, mod: Module, use: ModuleUse | None = None) -> None:
    """Free a module, remove from lists, etc (2.6: must hold module_mutex)."""
    if loader.era == "4.0":
        # We leave it in list to prevent duplicate loads, but make sure
        # that noone uses it while it's being deconstructed.
        with mutex(ctx, loader.locks.module_mutex):
            ctx.write_once(mod.state, ModuleState.UNFORMED)  # (and later list_del_rcu(&mod->list))
    else:
        lockdep_assert_held(ctx, loader.locks.module_mutex)
        if loader.modules_list:
            stop_machine(ctx, __unlink_module, mod)  # Delete from various lists
    # Module unload stuff
    if use is not None:
        use.module_unload_free(ctx)
    module_free(ctx, loader, mod)


def module_free(ctx: Ctx, loader: Loader, mod: Module) -> None:
    """Finally, free the core (containing the module structure). 2.4: `module_unmap`."""
    if loader.era == "2.4":
        module_unmap(ctx, mod)
    else:
        module_memfree(ctx, mod)
