"""Linux 2.4's kernel/module.c and include/linux/module.h (seed 003): the use count.

2.4 counted a module's users in ``mod->uc.usecount`` and marked it in
``mod->flags`` (``MOD_RUNNING``, ``MOD_DELETED`` ...); ``try_inc_mod_count``
takes a reference under ``unload_lock`` unless the module is being deleted;
``sys_delete_module`` runs under ``lock_kernel()``. module_loader.py's
``load_module``/``delete_module`` come here for ``Loader("2.4", ...)``.
"""

from __future__ import annotations

from collections.abc import Callable

from shmkernel.kernel.errno import EBUSY
from shmkernel.kernel.kasan import POISON, condemn, kasan
from shmkernel.kernel.module import Module, ModuleLocks, module_alloc
from shmkernel.runtime.ctx import Ctx

InitFn = Callable[[Ctx, int], None]  # mod->init(), told THIS_MODULE's address
ExitFn = Callable[[Ctx], None]  # mod->cleanup()

# include/linux/module.h (2.4): mod->flags
MOD_UNINITIALIZED = 0
MOD_RUNNING = 1
MOD_DELETED = 2
MOD_AUTOCLEAN = 4
MOD_VISITED = 8
MOD_USED_ONCE = 16


def __MOD_INC_USE_COUNT(ctx: Ctx, mod: Module, what: str = "__MOD_INC_USE_COUNT") -> None:
    """(atomic_inc(&mod->uc.usecount), mod->flags |= MOD_VISITED|MOD_USED_ONCE).

    The flags update only feeds autoclean and is modelled only with
    ``mod.visited_flags``: it is a plain read-modify-write of the word that
    also carries MOD_DELETED, and no lock orders it against sys_delete_module."""
    kasan(ctx, ctx.atomic_inc_return(mod.usecount) - 1, what)
    if mod.visited_flags:
        flags = kasan(ctx, ctx.read_once(mod.flags), what + ": mod->flags")
        ctx.write_once(mod.flags, flags | MOD_VISITED | MOD_USED_ONCE)


def __MOD_DEC_USE_COUNT(ctx: Ctx, mod: Module, what: str = "__MOD_DEC_USE_COUNT") -> None:
    """(atomic_dec(&mod->uc.usecount), mod->flags |= MOD_VISITED)."""
    kasan(ctx, ctx.atomic_dec_return(mod.usecount) + 1, what)
    if mod.visited_flags:
        flags = kasan(ctx, ctx.read_once(mod.flags), what + ": mod->flags")
        ctx.write_once(mod.flags, flags | MOD_VISITED)


def MOD_INC_USE_COUNT(ctx: Ctx, mod: Module) -> None:
    """__MOD_INC_USE_COUNT(THIS_MODULE): what a module did from its own functions."""
    __MOD_INC_USE_COUNT(ctx, mod, "MOD_INC_USE_COUNT")


def MOD_DEC_USE_COUNT(ctx: Ctx, mod: Module) -> None:
    __MOD_DEC_USE_COUNT(ctx, mod, "MOD_DEC_USE_COUNT")


def __MOD_IN_USE(ctx: Ctx, mod: Module) -> bool:
    return ctx.atomic_read(mod.usecount) != 0


def try_inc_mod_count(ctx: Ctx, mod: Module, unload_lock: int) -> int:
    """kernel/module.c (2.4): count a reference unless the module is being deleted."""
    res = 1
    ctx.spin_lock(unload_lock)
    try:
        if kasan(ctx, ctx.read_once(mod.flags), "try_inc_mod_count: mod->flags") & MOD_DELETED:
            res = 0
        else:
            __MOD_INC_USE_COUNT(ctx, mod)
    finally:  # (an oops too: the emulator releases what the dying task held)
        ctx.spin_unlock(unload_lock)
    return res


def sys_init_module(ctx: Ctx, locks: ModuleLocks, mod: Module, init: InitFn | None) -> int:
    """sys_create_module + sys_init_module (2.4): map a new image, run its init
    (which registers the driver), mark it running."""
    gen = module_alloc(ctx, mod)
    ctx.write_once(mod.usecount, 0)
    ctx.write_once(mod.flags, MOD_UNINITIALIZED)
    ctx.smp_mb()
    if init is not None:
        init(ctx, gen)  # mod->init()
    ctx.write_once(mod.flags, MOD_RUNNING)
    return 0


def module_unmap(ctx: Ctx, mod: Module) -> None:
    """vfree() the module image (2.4): every word of it is poisoned."""
    for word in (*mod.data, mod.text, mod.flags, mod.usecount):
        ctx.write_once(word, POISON)


def sys_delete_module(ctx: Ctx, locks: ModuleLocks, mod: Module, cleanup: ExitFn | None) -> int:
    """kernel/module.c sys_delete_module(name), 2.4: 0, or -EBUSY while in use."""
    ctx.mutex_lock(locks.kernel_flag)  # lock_kernel()
    try:
        ctx.spin_lock(locks.unload_lock)
        if __MOD_IN_USE(ctx, mod):
            ctx.spin_unlock(locks.unload_lock)
            return -EBUSY
        ctx.write_once(mod.flags, ctx.read_once(mod.flags) | MOD_DELETED)
        if mod.kasan:
            condemn(ctx, mod.text)
        ctx.spin_unlock(locks.unload_lock)
        free_module(ctx, mod, cleanup)
        return 0
    finally:
        ctx.mutex_unlock(locks.kernel_flag)  # unlock_kernel()


def free_module(ctx: Ctx, mod: Module, cleanup: ExitFn | None) -> None:
    """kernel/module.c free_module(mod, 0), 2.4."""
    # Let the module clean up.
    if ctx.read_once(mod.flags) & MOD_RUNNING:
        if cleanup is not None:
            cleanup(ctx)  # mod->cleanup(): unregisters the driver
        ctx.write_once(mod.flags, ctx.read_once(mod.flags) & ~MOD_RUNNING)
    # (Remove the module from the dependency and module lists: not modelled.)
    # And free the memory.
    module_unmap(ctx, mod)
