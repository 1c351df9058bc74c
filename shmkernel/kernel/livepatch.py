"""kernel/livepatch/core.c (v4.0/v4.1): seed 002, against module_loader.py's v4.0 loader.

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

- one module M (a `Module`: ``M.state``, ``M.generation`` -- its address, a
  reload is a new one --, ``M.freed``, ``M.klp_alive``), loaded and deleted by
  module_loader.py (era ``4.0``), whose notifier chain calls
  ``klp_module_notify``; its refcount is not emulated (nothing holds M);
- patches P1..P3 on ``klp_patches``, a real list (list.py) in registration
  order, each with a vmlinux object (patching ``a()``) and an object for M
  (patching ``b()``): ``state``; per object ``state`` and ``mod`` (the address
  it points to, 0 = NULL); per func ``state`` and ``old_addr``;
- ``struct klp_ops``, one per patched *address* as the kernel keeps them
  (livepatch_patch.py, kernel/livepatch/patch.c since v4.12): a call of the
  function at an address runs the top of that address's ``func_stack``.

v4.0 behaviour kept where later kernels differ: a COMING module the notifier
fails to patch only gets a ``pr_warn`` (obj->mod stays set; v4.5's
klp_module_coming() clears it), and ``__klp_enable_patch`` looks at the
patch *before it on klp_patches* (``list_prev_entry``), not at a number.

One thing is not 2015 kernel code: the seed's "#save place to switch universe".
A patch that changes semantics between functions needs a consistency model;
here ``klp_universe`` is switched at the end of ``__klp_enable_patch`` and a
call chain started in universe ``u`` runs, for every function, the topmost
stack entry of a patch ``<= u``. So a task never sees half a patch (a3 with
b2 while P3 is being applied), and only the races of the seed remain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import Any

from shmkernel.kernel import module_loader as ml
from shmkernel.kernel.bug import WARN
from shmkernel.kernel.errno import EBUSY, EINVAL
from shmkernel.kernel.list import Slab, list_add_tail, list_for_each, list_nodes, list_prev_entry
from shmkernel.kernel.livepatch_patch import MAX_PATCHES, KlpFunc, KlpOps, KlpState, klp_disable_func, klp_enable_func
from shmkernel.kernel.locking import mutex
from shmkernel.kernel.module import Module, ModuleLocks, ModuleState, declare_module, declare_module_locks
from shmkernel.kernel.variants import lookup
from shmkernel.memory.layout import Layout
from shmkernel.runtime.ctx import Ctx

MAX_OPS = 4  # klp_ops slots: a(), b() of the module, b() of a reloaded module, one spare
VMLINUX_ADDR = 0x1000000  # old_addr of a(): vmlinux text, never a module's (whose address is its generation)


# ---------------------------------------------------------------------------------------------
# The structures, as word indices.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KlpObject:
    name: str  # "vmlinux" or "M"
    is_module: bool
    state: int
    mod: int  # the address of the module it points to; 0 = NULL
    funcs: tuple[KlpFunc, ...]


@dataclass(frozen=True)
class KlpPatch:
    num: int  # 1-based: P1, P2, P3
    state: int
    node: int  # its list_head on klp_patches
    objs: tuple[KlpObject, ...]


@dataclass(frozen=True)
class Livepatch:
    """Everything of seed 002 in the segment."""

    locks: ModuleLocks
    klp_mutex: int
    klp_universe: int
    mod: Module
    ops: tuple[KlpOps, ...]
    klp_patches: Slab  # object 0: the list head; object n: patch n's node
    patches: tuple[KlpPatch, ...]

    @property
    def module_mutex(self) -> int:
        return self.locks.module_mutex

    @cached_property
    def loader(self) -> ml.Loader:
        """v4.0's kernel/module.c (module_loader.py), M's refcount not emulated."""
        return ml.Loader("4.0", self.locks)

    def patch(self, num: int) -> KlpPatch:
        return self.patches[num - 1]

    def patch_at(self, node: int) -> KlpPatch:
        """list_entry(node, struct klp_patch, list)."""
        return self.patches[self.klp_patches.index(node) - 1]


def declare_livepatch(layout: Layout) -> Livepatch:
    def s(name: str) -> int:
        return layout.scalar(name, own_line=False)

    locks = declare_module_locks(layout)
    mod = declare_module(layout, "M", own_line=False)
    ops = tuple(
        KlpOps(s(f"klp_ops{i}.addr"), s(f"klp_ops{i}.depth"), layout.table(f"klp_ops{i}.func_stack", MAX_PATCHES))
        for i in range(MAX_OPS)
    )
    head = layout.table("klp_patches", 2 * (MAX_PATCHES + 1))
    patches = []
    for n in range(1, MAX_PATCHES + 1):
        p = f"P{n}"
        vml = KlpObject(
            "vmlinux", False, s(f"{p}.vmlinux.state"), -1, (KlpFunc("a", s(f"{p}.a.state"), s(f"{p}.a.old_addr")),)
        )
        modobj = KlpObject(
            "M", True, s(f"{p}.M.state"), s(f"{p}.M.mod"), (KlpFunc("b", s(f"{p}.b.state"), s(f"{p}.b.old_addr")),)
        )
        patches.append(KlpPatch(n, s(f"{p}.state"), head + 2 * n, (vml, modobj)))
    return Livepatch(
        locks=locks,
        klp_mutex=layout.scalar("klp_mutex"),
        klp_universe=layout.scalar("klp_universe"),
        mod=mod,
        ops=ops,
        klp_patches=Slab(head, MAX_PATCHES + 1, 2, "klp_patches"),
        patches=tuple(patches),
    )


# ---------------------------------------------------------------------------------------------
# The variants, and the module loader they run against.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KlpVariant:
    name: str
    klp_alive: bool  # the seed's flag
    ignore_going: bool = False  # the rejected alternative: also skip GOING modules


VARIANTS = {
    v.name: v
    for v in (
        KlpVariant("no-klp-alive", klp_alive=False),
        KlpVariant("klp-alive", klp_alive=True),
        KlpVariant("klp-alive-ignore-going", klp_alive=True, ignore_going=True),
    )
}
ALIASES = {"buggy": "no-klp-alive", "fixed": "klp-alive"}


def klp_variant(name: str) -> KlpVariant:
    return lookup(VARIANTS, ALIASES, name)


def module_loader(variant: KlpVariant, lp: Livepatch) -> ml.Loader:
    """v4.0's kernel/module.c with klp_module_nb on its notifier chain."""
    return replace(lp.loader, notifier=(partial(klp_module_notify, variant, lp),))


def klp_registered(ctx: Any, lp: Livepatch) -> list[int]:
    """The patches on klp_patches, in list order, read outside the machine."""
    return [lp.patch_at(n).num for n in list_nodes(ctx.oracle_read, lp.klp_patches, lp.klp_patches.base)]


# ---------------------------------------------------------------------------------------------
# kernel/livepatch/core.c
# ---------------------------------------------------------------------------------------------
def klp_is_object_loaded(ctx: Ctx, obj: KlpObject) -> bool:
    return not obj.is_module or ctx.read_once(obj.mod) != 0


def klp_is_patch_registered(ctx: Ctx, lp: Livepatch, patch: KlpPatch) -> bool:
    return any(n == patch.node for n in list_for_each(ctx, lp.klp_patches, lp.klp_patches.base))


def klp_find_object_module(ctx: Ctx, variant: KlpVariant, lp: Livepatch, obj: KlpObject) -> None:
    """Sets obj->mod if the object is not vmlinux and the module is found."""
    if not obj.is_module:
        return
    with mutex(ctx, lp.module_mutex):
        # We do not want to block removal of patched modules and therefore
        # we do not take a reference here. The patches are removed by
        # a going module handler instead.
        mod = ml.find_module(ctx, lp.loader, lp.mod)
        if not variant.klp_alive:
            ctx.write_once(obj.mod, mod)
        # Do not mess work of the module coming and going notifiers.
        # Note that the patch might still be needed before the going handler
        # is called. Module functions can be called even in the GOING state
        # until mod->exit() finishes. This is especially important for
        # patches that modify semantic of the functions.
        elif mod and ctx.read_once(lp.mod.klp_alive):
            if not (variant.ignore_going and ctx.read_once(lp.mod.state) == ModuleState.GOING):
                ctx.write_once(obj.mod, mod)


def klp_find_object_symbol(ctx: Ctx, lp: Livepatch, obj: KlpObject, func: KlpFunc) -> int:
    """kallsyms lookup of func->old_name in its object: its address, 0 if not found.
    A module's symbols are walked under module_mutex and vanish with it."""
    if not obj.is_module:
        return VMLINUX_ADDR
    with mutex(ctx, lp.module_mutex):
        return ml.find_module(ctx, lp.loader, lp.mod)


def klp_init_object_loaded(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> int:
    """Parts of the initialization that is done only when the object is loaded."""
    for func in obj.funcs:
        addr = klp_find_object_symbol(ctx, lp, obj, func)
        if not addr:
            return -EINVAL  # symbol not found in symbol table
        ctx.write_once(func.old_addr, addr)
    return 0


def klp_init_object(ctx: Ctx, variant: KlpVariant, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> int:
    ctx.write_once(obj.state, KlpState.DISABLED)
    if obj.is_module:
        ctx.write_once(obj.mod, 0)
    klp_find_object_module(ctx, variant, lp, obj)
    for func in obj.funcs:
        ctx.write_once(func.state, KlpState.DISABLED)  # klp_init_func()
    if klp_is_object_loaded(ctx, obj):
        return klp_init_object_loaded(ctx, lp, patch, obj)
    return 0


def klp_init_patch(ctx: Ctx, variant: KlpVariant, lp: Livepatch, patch: KlpPatch) -> int:
    with mutex(ctx, lp.klp_mutex):
        ctx.write_once(patch.state, KlpState.DISABLED)
        for obj in patch.objs:
            ret = klp_init_object(ctx, variant, lp, patch, obj)
            if ret:
                return ret  # free: the patch never reaches klp_patches
        list_add_tail(ctx, lp.klp_patches, patch.node, lp.klp_patches.base)
    return 0


def klp_register_patch(ctx: Ctx, variant: KlpVariant, lp: Livepatch, patch: KlpPatch) -> int:
    """Initializes the data structure associated with the patch (the patch
    module's own reference, try_module_get(patch->mod), is not emulated)."""
    return klp_init_patch(ctx, variant, lp, patch)


def klp_disable_object(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> None:
    for func in obj.funcs:
        if ctx.read_once(func.state) == KlpState.ENABLED:
            klp_disable_func(ctx, lp.ops, patch.num, func)
    ctx.write_once(obj.state, KlpState.DISABLED)


def klp_enable_object(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> int:
    if WARN(
        ctx, ctx.read_once(obj.state) != KlpState.DISABLED, f"klp_enable_object: P{patch.num} {obj.name} not disabled"
    ):
        return -EINVAL
    if WARN(ctx, not klp_is_object_loaded(ctx, obj), f"klp_enable_object: P{patch.num} {obj.name} not loaded"):
        return -EINVAL
    for func in obj.funcs:
        ret = klp_enable_func(ctx, lp.ops, patch.num, func)
        if ret:
            klp_disable_object(ctx, lp, patch, obj)
            return ret
    ctx.write_once(obj.state, KlpState.ENABLED)
    return 0


def klp_switch_universe(ctx: Ctx, lp: Livepatch, patch: KlpPatch) -> None:
    """The seed's "#save place to switch universe" (see the module docstring):
    from here on new call chains run the patch; not 2015 kernel code. A release,
    read with an acquire (`klp_universe`): a chain that sees the new universe sees
    every func_stack push before it. With plain accesses the LKMM lets a chain see
    universe 3 and klp_ops1's stack still at depth 2 (a release orders what comes
    before it, not the plain store after it): trust found that ``semantic_mismatch``
    on ``klp-alive`` under lkmm, a failure of this device, not the seed's race."""
    ctx.smp_store_release(lp.klp_universe, patch.num)


def klp_universe(ctx: Ctx, lp: Livepatch) -> int:
    """The universe a new call chain runs in (`klp_switch_universe`)."""
    return ctx.smp_load_acquire(lp.klp_universe)


def __klp_enable_patch(ctx: Ctx, lp: Livepatch, patch: KlpPatch) -> int:
    if WARN(ctx, ctx.read_once(patch.state) != KlpState.DISABLED, f"__klp_enable_patch: P{patch.num} not disabled"):
        return -EINVAL
    # enforce stacking: only the first disabled patch can be enabled
    prev = list_prev_entry(ctx, lp.klp_patches, patch.node)
    if prev != lp.klp_patches.base and ctx.read_once(lp.patch_at(prev).state) == KlpState.DISABLED:
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
    with mutex(ctx, lp.klp_mutex):
        if not klp_is_patch_registered(ctx, lp, patch):
            return -EINVAL
        return __klp_enable_patch(ctx, lp, patch)


def klp_free_object_loaded(ctx: Ctx, obj: KlpObject) -> None:
    """Clean up when a patched object is unloaded."""
    ctx.write_once(obj.mod, 0)
    for func in obj.funcs:
        ctx.write_once(func.old_addr, 0)


def klp_module_notify_coming(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> None:
    ret = klp_init_object_loaded(ctx, lp, patch, obj)
    if ret == 0 and ctx.read_once(patch.state) == KlpState.DISABLED:
        return
    if ret == 0:
        # applying patch to loading module
        ret = klp_enable_object(ctx, lp, patch, obj)
    # (ret: pr_warn("failed to apply patch ..."): v4.0 only warns; obj->mod stays set)


def klp_module_notify_going(ctx: Ctx, lp: Livepatch, patch: KlpPatch, obj: KlpObject) -> None:
    if ctx.read_once(patch.state) != KlpState.DISABLED:
        # reverting patch on unloading module
        klp_disable_object(ctx, lp, patch, obj)
    klp_free_object_loaded(ctx, obj)


def klp_module_notify(
    variant: KlpVariant, lp: Livepatch, ctx: Ctx, action: ModuleState, mod: Module, addr: int
) -> None:
    """klp_module_nb on module_notify_list: MODULE_STATE_COMING/GOING of M at ``addr``."""
    if action not in (ModuleState.COMING, ModuleState.GOING):
        return
    with mutex(ctx, lp.klp_mutex):
        if variant.klp_alive:
            # Each module has to know that the notifier has been called.
            # We never know what module will get patched by a new patch.
            ctx.write_once(mod.klp_alive, int(action == ModuleState.COMING))
        for node in list_for_each(ctx, lp.klp_patches, lp.klp_patches.base):
            patch = lp.patch_at(node)
            for obj in patch.objs:
                if not obj.is_module:  # (strcmp(obj->name, mod->name): every module object is M's)
                    continue
                if action == ModuleState.COMING:
                    ctx.write_once(obj.mod, addr)
                    klp_module_notify_coming(ctx, lp, patch, obj)
                else:
                    klp_module_notify_going(ctx, lp, patch, obj)
                break


def load_module(ctx: Ctx, variant: KlpVariant, lp: Livepatch, sysfs_delay_us: float = 0.0) -> int:
    """insmod M (module_loader.py, v4.0): the COMING notifier runs klp_module_notify."""
    return ml.load_module(ctx, module_loader(variant, lp), lp.mod, sysfs_delay_us=sysfs_delay_us)


def delete_module(
    ctx: Ctx, variant: KlpVariant, lp: Livepatch, until_exit: ml.ExitFn | None = None, sysfs_delay_us: float = 0.0
) -> int:
    """rmmod M (M has no users: try_stop_module succeeds). ``until_exit(ctx)``
    stands for the module's own code, which can still be called while it is
    GOING, until ``mod->exit()`` finishes."""
    return ml.delete_module(ctx, module_loader(variant, lp), lp.mod, exit=until_exit, sysfs_delay_us=sysfs_delay_us)
