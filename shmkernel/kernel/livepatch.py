"""kernel/livepatch/core.c (v4.0/v4.1) and the module loader's side of it: seed 002.

Seed 002 ("livepatch: Fix subtle race with coming and going modules", Petr
Mladek) adds ``mod->klp_alive``: true after the COMING notifier ran, false
before the GOING notifier runs; a new patch applies to a module only while it
is true. The variants sit side by side in `KlpVariant`:

- ``no-klp-alive`` (alias ``buggy``): before the seed. ``klp_find_object_module``
  takes whatever ``find_module`` returns, so a patch registered while a module
  is COMING (before the notifier) is applied twice in the wrong order, and one
  registered while it is GOING (after the notifier) keeps pointing at it after
  it is freed.
- ``klp-alive`` (alias ``fixed``): the seed.
- ``klp-alive-ignore-going``: the alternative the seed rejects ("we could not
  simply ignore going modules"): klp_alive, and GOING modules skipped too. A
  GOING module's b() still runs until ``mod->exit()`` and then calls a patched
  a() while it is itself unpatched.

What is emulated, all in the segment and all through ``ctx``:

- one module M (``M.state`` UNFORMED/COMING/LIVE/GOING, ``M.generation``: its
  address (a reload is a new one), ``M.freed``, ``M.klp_alive``) under
  ``module_mutex``; ``find_module`` skips UNFORMED modules (a module not in the
  list, or being freed, is UNFORMED here);
- patches P1..P3, each with a vmlinux object (patching ``a()``) and an object
  for M (patching ``b()``): ``state``, ``registered`` (on ``klp_patches``; they
  are registered in order, so the list order is the patch number), per object
  ``state`` and ``mod`` (the generation it points to, 0 = NULL), per func
  ``state`` and ``old_addr``;
- ``struct klp_ops`` per patched function: its ``func_stack`` is a small table
  of patch numbers, bottom first, plus a ``depth`` word published with
  release/acquire (``list_add_rcu``/``list_first_or_null_rcu``). Calling a
  function runs the top of its stack (`klp_ftrace_handler`); 0 = the original.

One thing is not 2015 kernel code: the seed's "#save place to switch universe".
A patch that changes semantics between functions needs a consistency model;
here ``klp_universe`` is switched at the end of ``__klp_enable_patch`` and a
call chain started in universe ``u`` runs, for every function, the topmost
stack entry of a patch ``<= u``. So a task never sees half a patch (a3 with
b2 while P3 is being applied), and only the races of the seed remain.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shmkernel.kernel.module import ModuleState
from shmkernel.kernel.variants import lookup
from shmkernel.memory.layout import Layout
from shmkernel.runtime.ctx import Ctx

ENOENT = 2
EINVAL = 22
EBUSY = 16
MAX_PATCHES = 3
VMLINUX_ADDR = 1  # old_addr of a(): vmlinux symbols never move


class KlpState(enum.IntEnum):
    """enum klp_state."""

    DISABLED = 0
    ENABLED = 1


# ---------------------------------------------------------------------------------------------
# The structures, as word indices.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KlpModule:
    """struct module M: the fields the loader and livepatch share."""

    state: int
    generation: int  # the module's address; 0 is never used (NULL)
    freed: int
    klp_alive: int


@dataclass(frozen=True)
class KlpOps:
    """struct klp_ops for one old function: its func_stack (patch numbers, bottom first)."""

    name: str
    depth: int
    stack: int  # table of MAX_PATCHES words


@dataclass(frozen=True)
class KlpFunc:
    name: str  # "a" (vmlinux) or "b" (module M)
    state: int
    old_addr: int


@dataclass(frozen=True)
class KlpObject:
    name: str  # "vmlinux" or "M"
    is_module: bool
    state: int
    mod: int  # the generation of the module it points to; 0 = NULL
    funcs: tuple[KlpFunc, ...]


@dataclass(frozen=True)
class KlpPatch:
    num: int  # 1-based: P1, P2, P3 (their order on klp_patches)
    state: int
    registered: int
    objs: tuple[KlpObject, ...]


@dataclass(frozen=True)
class Livepatch:
    """Everything of seed 002 in the segment."""

    module_mutex: int
    klp_mutex: int
    klp_universe: int
    mod: KlpModule
    ops: dict[str, KlpOps]
    patches: tuple[KlpPatch, ...]

    def patch(self, num: int) -> KlpPatch:
        return self.patches[num - 1]


def declare_livepatch(layout: Layout) -> Livepatch:
    def s(name: str) -> int:
        return layout.scalar(name, own_line=False)

    mod = KlpModule(s("M.state"), s("M.generation"), s("M.freed"), s("M.klp_alive"))
    ops = {f: KlpOps(f, s(f"klp_ops.{f}.depth"), layout.table(f"klp_ops.{f}.func_stack", MAX_PATCHES))
           for f in ("a", "b")}
    patches = []
    for n in range(1, MAX_PATCHES + 1):
        p = f"P{n}"
        vml = KlpObject("vmlinux", False, s(f"{p}.vmlinux.state"), -1,
                        (KlpFunc("a", s(f"{p}.a.state"), s(f"{p}.a.old_addr")),))
        modobj = KlpObject("M", True, s(f"{p}.M.state"), s(f"{p}.M.mod"),
                           (KlpFunc("b", s(f"{p}.b.state"), s(f"{p}.b.old_addr")),))
        patches.append(KlpPatch(n, s(f"{p}.state"), s(f"{p}.registered"), (vml, modobj)))
    return Livepatch(
        module_mutex=layout.scalar("module_mutex"),
        klp_mutex=layout.scalar("klp_mutex"),
        klp_universe=layout.scalar("klp_universe"),
        mod=mod, ops=ops, patches=tuple(patches),
    )


# ---------------------------------------------------------------------------------------------
# The variants.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KlpVariant:
    name: str
    klp_alive: bool  # the seed's flag
    ignore_going: bool = False  # the rejected alternative: also skip GOING modules


VARIANTS = {v.name: v for v in (
    KlpVariant("no-klp-alive", klp_alive=False),
    KlpVariant("klp-alive", klp_alive=True),
    KlpVariant("klp-alive-ignore-going", klp_alive=True, ignore_going=True),
)}
ALIASES = {"buggy": "no-klp-alive", "fixed": "klp-alive"}


def klp_variant(name: str) -> KlpVariant:
    return lookup(VARIANTS, ALIASES, name)


# ---------------------------------------------------------------------------------------------
# kernel/module.c: the loader's states and its notifier calls.
# ---------------------------------------------------------------------------------------------
def find_module(ctx: Ctx, lp: Livepatch) -> int:
    """find_module("M") with module_mutex held: the module's address, 0 if none.
    UNFORMED modules are skipped (not yet formed, or being freed)."""
    if ctx.read_once(lp.mod.state) == ModuleState.UNFORMED:
        return 0
    return ctx.read_once(lp.mod.generation)


def add_unformed_module(ctx: Ctx, lp: Livepatch) -> int:
    """layout_and_allocate + add_unformed_module: a zeroed struct module
    (klp_alive false), in the list but UNFORMED."""
    ctx.mutex_lock(lp.module_mutex)
    gen = ctx.read_once(lp.mod.generation) + 1
    ctx.write_once(lp.mod.generation, gen)
    ctx.write_once(lp.mod.freed, 0)
    ctx.write_once(lp.mod.klp_alive, 0)
    ctx.write_once(lp.mod.state, ModuleState.UNFORMED)
    ctx.mutex_unlock(lp.module_mutex)
    return gen


def complete_formation(ctx: Ctx, lp: Livepatch) -> None:
    ctx.mutex_lock(lp.module_mutex)
    # Mark state as coming so strong_try_module_get() ignores us,
    # but kallsyms etc. can see us.
    ctx.write_once(lp.mod.state, ModuleState.COMING)
    ctx.mutex_unlock(lp.module_mutex)


def load_module(ctx: Ctx, variant: KlpVariant, lp: Livepatch, sysfs_delay_us: float = 0.0) -> int:
    """SYSCALL init_module: form the module, COMING (visible to find_module from
    here on), parse_args() and mod_sysfs_setup() (``sysfs_delay_us``, free mode),
    then do_init_module(): the COMING notifier, mod->init(), LIVE (v4.0)."""
    gen = add_unformed_module(ctx, lp)
    complete_formation(ctx, lp)
    if sysfs_delay_us:
        ctx.delay_us(sysfs_delay_us)  # parse_args(), mod_sysfs_setup()
    klp_module_notify(ctx, variant, lp, ModuleState.COMING, gen)
    # do_init_module(): mod->init() ran; klp ignores MODULE_STATE_LIVE
    ctx.write_once(lp.mod.state, ModuleState.LIVE)
    return gen


def delete_module(ctx: Ctx, variant: KlpVariant, lp: Livepatch,
                  until_exit: Callable[[Ctx], None] | None = None, sysfs_delay_us: float = 0.0) -> int:
    """SYSCALL delete_module("M") (M has no users: try_stop_module succeeds).

    ``until_exit(ctx)`` stands for the module's own code, which can still be
    called while it is GOING, until ``mod->exit()`` finishes. Between the GOING
    notifier and the module leaving find_module's sight, async_synchronize_full()
    and mod_sysfs_teardown() take ``sysfs_delay_us`` (free mode)."""
    ctx.mutex_lock(lp.module_mutex)
    gen = find_module(ctx, lp)
    if not gen:
        ctx.mutex_unlock(lp.module_mutex)
        return -ENOENT
    # Doing init or already dying?
    if ctx.read_once(lp.mod.state) != ModuleState.LIVE:
        ctx.mutex_unlock(lp.module_mutex)
        return -EBUSY
    ctx.write_once(lp.mod.state, ModuleState.GOING)  # try_stop_module()
    ctx.mutex_unlock(lp.module_mutex)
    if until_exit is not None:
        until_exit(ctx)
    # mod->exit() finished: nothing calls into M any more
    klp_module_notify(ctx, variant, lp, ModuleState.GOING, gen)
    if sysfs_delay_us:
        ctx.delay_us(sysfs_delay_us)  # async_synchronize_full(), free_module(): mod_sysfs_teardown()
    free_module(ctx, lp)
    return 0


def free_module(ctx: Ctx, lp: Livepatch) -> None:
    ctx.mutex_lock(lp.module_mutex)
    ctx.write_once(lp.mod.state, ModuleState.UNFORMED)  # and list_del_rcu(&mod->list)
    ctx.mutex_unlock(lp.module_mutex)
    ctx.write_once(lp.mod.freed, 1)  # module_free(): the memory is gone


# ---------------------------------------------------------------------------------------------
# struct klp_ops: the func_stack and the ftrace handler.
# ---------------------------------------------------------------------------------------------
def klp_ops_push(ctx: Ctx, ops: KlpOps, num: int) -> None:
    """list_add_rcu(&func->stack_node, &ops->func_stack): the new func on top."""
    d = ctx.read_once(ops.depth)
    if d >= MAX_PATCHES:
        ctx.event("bug", what=f"func_stack of {ops.name}() overflows")
        return
    ctx.write_once(ops.stack + d, num)
    ctx.smp_store_release(ops.depth, d + 1)


def klp_ops_remove(ctx: Ctx, ops: KlpOps, num: int) -> None:
    """list_del_rcu(&func->stack_node) (klp_mutex held; callers of the function
    are gone: it is only removed from a module's function after mod->exit())."""
    d = ctx.read_once(ops.depth)
    i = 0
    while i < d and ctx.read_once(ops.stack + i) != num:
        i += 1
    if i == d:
        ctx.event("bug", what=f"P{num} not on the func_stack of {ops.name}()")
        return
    for j in range(i, d - 1):
        ctx.write_once(ops.stack + j, ctx.read_once(ops.stack + j + 1))
    ctx.write_once(ops.stack + d - 1, 0)
    ctx.smp_store_release(ops.depth, d - 1)


def klp_ftrace_handler(ctx: Ctx, ops: KlpOps, universe: int) -> int:
    """Which version of the function runs: the top of its func_stack (for a task
    in ``universe``: the topmost entry of a patch <= universe); 0 = original."""
    d = ctx.smp_load_acquire(ops.depth)
    for i in range(d - 1, -1, -1):
        num = ctx.read_once(ops.stack + i)
        if num <= universe:
            return num
    return 0


def klp_func_stack(ctx: Any, ops: KlpOps) -> list[int]:
    """The func_stack, bottom first, read outside the machine (checks): ``ctx``
    is anything with ``oracle_read``."""
    d = ctx.oracle_read(ops.depth)
    return [ctx.oracle_read(ops.stack + i) for i in range(max(0, min(d, MAX_PATCHES)))]


# ---------------------------------------------------------------------------------------------
# kernel/livepatch/core.c
# ---------------------------------------------------------------------------------------------
def klp_is_object_loaded(ctx: Ctx, obj: KlpObject) -> bool:
    return not obj.is_module or ctx.read_once(obj.mod) != 0


def klp_find_object_module(ctx: Ctx, variant: KlpVariant, lp: Livepatch, obj: KlpObject) -> None:
    """Sets obj->mod if the object is not vmlinux and the module is found."""
    if not obj.is_module:
        return
    ctx.mutex_lock(lp.module_mutex)
    # We do not want to block removal of patched modules and therefore
    # we do not take a reference here. The patches are removed by
    # a going module handler instead.
    mod = find_module(ctx, lp)
    if not variant.klp_alive:
        ctx.write_once(obj.mod, mod)
    else:
        # Do not mess work of the module coming and going notifiers.
        # Note that the patch might still be needed before the going handler
        # is called. Module functions can be called even in the GOING state
        # until mod->exit() finishes. This is especially important for
        # patches that modify semantic of the functions.
        if mod and ctx.read_once(lp.mod.klp_alive):
            if not (variant.ignore_going and ctx.read_once(lp.mod.state) == ModuleState.GOING):
                ctx.write_once(obj.mod, mod)
    ctx.mutex_unlock(lp.module_mutex)


def klp_find_object_symbol(ctx: Ctx, lp: Livepatch, obj: KlpObject, func: KlpFunc) -> int:
    """kallsyms lookup of func->old_name in its object: its address, 0 if not found.
    A module's symbols are walked under module_mutex and vanish with it."""
    if not obj.is_module:
        return VMLINUX_ADDR
    ctx.mutex_lock(lp.module_mutex)
    addr = find_module(ctx, lp)
    ctx.mutex_unlock(lp.module_mutex)
    return addr


def klp_init_object_loaded(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> int:
    """Parts of the initialization that is done only when the object is loaded."""
    for func in obj.funcs:
        addr = klp_find_object_symbol(ctx, lp, obj, func)
        if not addr:
            return -EINVAL  # symbol not found in symbol table
        ctx.write_once(func.old_addr, addr)
    return 0


def klp_init_func(ctx: Ctx, obj: KlpObject, func: KlpFunc) -> None:
    ctx.write_once(func.state, KlpState.DISABLED)


def klp_init_object(ctx: Ctx, variant: KlpVariant, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> int:
    ctx.write_once(obj.state, KlpState.DISABLED)
    if obj.is_module:
        ctx.write_once(obj.mod, 0)
    klp_find_object_module(ctx, variant, lp, obj)
    for func in obj.funcs:
        klp_init_func(ctx, obj, func)
    if klp_is_object_loaded(ctx, obj):
        return klp_init_object_loaded(ctx, lp, patch, obj)
    return 0


def klp_init_patch(ctx: Ctx, variant: KlpVariant, lp: Livepatch, patch: KlpPatch) -> int:
    ctx.mutex_lock(lp.klp_mutex)
    ctx.write_once(patch.state, KlpState.DISABLED)
    for obj in patch.objs:
        ret = klp_init_object(ctx, variant, lp, patch, obj)
        if ret:
            ctx.mutex_unlock(lp.klp_mutex)  # free: the patch never reaches klp_patches
            return ret
    ctx.write_once(patch.registered, 1)  # list_add_tail(&patch->list, &klp_patches)
    ctx.mutex_unlock(lp.klp_mutex)
    return 0


def klp_register_patch(ctx: Ctx, variant: KlpVariant, lp: Livepatch, patch: KlpPatch) -> int:
    """Initializes the data structure associated with the patch (the patch
    module's own reference, try_module_get(patch->mod), is not emulated)."""
    return klp_init_patch(ctx, variant, lp, patch)


def klp_enable_func(ctx: Ctx, lp: Livepatch, patch: KlpPatch, func: KlpFunc) -> int:
    if not ctx.read_once(func.old_addr):
        ctx.event("warn", what=f"klp_enable_func: P{patch.num} {func.name}() has no old_addr")
        return -EINVAL
    if ctx.read_once(func.state) != KlpState.DISABLED:
        ctx.event("warn", what=f"klp_enable_func: P{patch.num} {func.name}() not disabled")
        return -EINVAL
    klp_ops_push(ctx, lp.ops[func.name], patch.num)
    ctx.write_once(func.state, KlpState.ENABLED)
    return 0


def klp_disable_func(ctx: Ctx, lp: Livepatch, patch: KlpPatch, func: KlpFunc) -> None:
    if ctx.read_once(func.state) != KlpState.ENABLED:
        ctx.event("warn", what=f"klp_disable_func: P{patch.num} {func.name}() not enabled")
        return
    if not ctx.read_once(func.old_addr):
        ctx.event("warn", what=f"klp_disable_func: P{patch.num} {func.name}() has no old_addr")
        return
    klp_ops_remove(ctx, lp.ops[func.name], patch.num)
    ctx.write_once(func.state, KlpState.DISABLED)


def klp_disable_object(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> None:
    for func in obj.funcs:
        if ctx.read_once(func.state) == KlpState.ENABLED:
            klp_disable_func(ctx, lp, patch, func)
    ctx.write_once(obj.state, KlpState.DISABLED)


def klp_enable_object(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> int:
    if ctx.read_once(obj.state) != KlpState.DISABLED:
        ctx.event("warn", what=f"klp_enable_object: P{patch.num} {obj.name} not disabled")
        return -EINVAL
    if not klp_is_object_loaded(ctx, obj):
        ctx.event("warn", what=f"klp_enable_object: P{patch.num} {obj.name} not loaded")
        return -EINVAL
    for func in obj.funcs:
        ret = klp_enable_func(ctx, lp, patch, func)
        if ret:
            klp_disable_object(ctx, lp, patch, obj)
            return ret
    ctx.write_once(obj.state, KlpState.ENABLED)
    return 0


def klp_switch_universe(ctx: Ctx, lp: Livepatch, patch: KlpPatch) -> None:
    """The seed's "#save place to switch universe" (see the module docstring):
    from here on new call chains run the patch; not 2015 kernel code."""
    ctx.write_once(lp.klp_universe, patch.num)


def __klp_enable_patch(ctx: Ctx, lp: Livepatch, patch: KlpPatch) -> int:
    if ctx.read_once(patch.state) != KlpState.DISABLED:
        ctx.event("warn", what=f"__klp_enable_patch: P{patch.num} not disabled")
        return -EINVAL
    # enforce stacking: only the first disabled patch can be enabled
    if patch.num > 1 and ctx.read_once(lp.patch(patch.num - 1).state) == KlpState.DISABLED:
        return -EBUSY
    for obj in patch.objs:
        if not klp_is_object_loaded(ctx, obj):
            continue
        ret = klp_enable_object(ctx, lp, patch, obj)
        if ret:
            for o in patch.objs:  # unregister: WARN_ON(__klp_disable_patch(patch))
                if ctx.read_once(o.state) == KlpState.ENABLED:
                    klp_disable_object(ctx, lp, patch, o)
            return ret
    ctx.write_once(patch.state, KlpState.ENABLED)
    klp_switch_universe(ctx, lp, patch)
    return 0


def klp_enable_patch(ctx: Ctx, lp: Livepatch, patch: KlpPatch) -> int:
    ctx.mutex_lock(lp.klp_mutex)
    if not ctx.read_once(patch.registered):  # !klp_is_patch_registered(patch)
        ctx.mutex_unlock(lp.klp_mutex)
        return -EINVAL
    ret = __klp_enable_patch(ctx, lp, patch)
    ctx.mutex_unlock(lp.klp_mutex)
    return ret


def klp_free_object_loaded(ctx: Ctx, obj: KlpObject) -> None:
    """Clean up when a patched object is unloaded."""
    ctx.write_once(obj.mod, 0)
    for func in obj.funcs:
        ctx.write_once(func.old_addr, 0)


def klp_module_notify_coming(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> int:
    ret = klp_init_object_loaded(ctx, lp, patch, obj)
    if ret:
        return ret  # failed to initialize patch for module
    if ctx.read_once(patch.state) == KlpState.DISABLED:
        return 0
    # applying patch to loading module
    return klp_enable_object(ctx, lp, patch, obj)  # "failed to apply patch" when it fails


def klp_module_notify_going(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> None:
    if ctx.read_once(patch.state) != KlpState.DISABLED:
        # reverting patch on unloading module
        klp_disable_object(ctx, lp, patch, obj)
    klp_free_object_loaded(ctx, obj)


def klp_module_notify(ctx: Ctx, variant: KlpVariant, lp: Livepatch, action: int, mod: int) -> None:
    """The module notifier (klp_module_nb) for MODULE_STATE_COMING/GOING of M
    (``mod``: its address)."""
    ctx.mutex_lock(lp.klp_mutex)
    if variant.klp_alive:
        # Each module has to know that the notifier has been called.
        # We never know what module will get patched by a new patch.
        ctx.write_once(lp.mod.klp_alive, int(action == ModuleState.COMING))
    for patch in lp.patches:  # list_for_each_entry(patch, &klp_patches, list)
        if not ctx.read_once(patch.registered):
            continue
        for obj in patch.objs:
            if not obj.is_module:  # (strcmp(obj->name, mod->name): every module object is M's)
                continue
            if action == ModuleState.COMING:
                ctx.write_once(obj.mod, mod)
                if klp_module_notify_coming(ctx, lp, patch, obj):
                    ctx.write_once(obj.mod, 0)  # patch is in an inconsistent state!
            else:
                klp_module_notify_going(ctx, lp, patch, obj)
            break
    ctx.mutex_unlock(lp.klp_mutex)
