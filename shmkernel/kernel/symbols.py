"""kernel/module.c: symbol_get()/symbol_put() and the module_use lists (seed 001).

Seed 001 (Trent Piepho, March 2007, "Add ability to keep track of callers of
symbol_(get|put)"): before it, ``symbol_get`` bumps the owner's refcount and
``symbol_put`` drops it, and nobody records who did; the patch makes a
``symbol_get`` by module *a* a *use* of the owner *b* (``module_use`` with a
count in *b*'s ``modules_which_use_me`` list), makes an un-use of a module not
used a ``BUG()``, and reports (then drains) the uses left at unload. Three
variants, side by side:

- ``untracked`` (alias ``buggy``): before the patch.
- ``tracked`` (alias ``fixed``): the patch. Its hole, from Trent's own note: the
  link-time (static) use and the symbol_get (dynamic) uses share one count, so
  an extra ``symbol_put`` by a module linked against the owner eats the static
  use unnoticed, and the owner can be unloaded under its static user. For the
  same reason a module that only symbol_get()s leaks one get silently at unload
  (the first un-use at unload is taken for the static use).
- ``tracked-split``: the fix Trent proposes in the same mail, beyond the patch:
  separate static and dynamic counts; a ``symbol_put`` with no dynamic use left
  is a ``BUG()``, and unload reports exactly the unmatched gets.

The lists are real ``list_head``s (list.py): each owner has a `Slab` whose
object 0 is the list head and object *a* the ``module_use`` of user module *a*
(``next, prev, count, static``: "there can be at most one match"). A list
touched under two different locks breaks exactly as the kernel's: the patch
adds uses under ``modlist_lock`` (``__symbol_get``) while ``load_module``/
``module_unload_free`` still add and delete them under ``module_mutex`` only
(``lock_links=True``, not the patch, takes ``modlist_lock`` there too). The
patch also calls ``sysfs_create_link``/``sysfs_remove_link`` (which sleep)
under that spinlock: counted as ``might_sleep_in_atomic``.

insmod and rmmod are 2.6.20's (module_loader.py): a module is linked while
still COMING, goes LIVE after its init; rmmod is O_NONBLOCK, and a count
below 0 after GOING is an ``rmmod_hang`` (a put with no get: rmmod sleeps
forever). A ``BUG()`` raises `Oops` (bug.py); the caller's program catches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property

from shmkernel.kernel import module_loader as ml
from shmkernel.kernel.bug import BUG, Oops  # noqa: F401 (Oops: what the callers catch)
from shmkernel.kernel.list import INIT_LIST_HEAD, Slab, list_add, list_del, list_empty, list_for_each
from shmkernel.kernel.locking import lockdep_assert_held, spinlock
from shmkernel.kernel.module import (
    Module,
    ModuleLocks,
    RefcountScheme,
    declare_module,
    declare_module_locks,
    refcount_variant,
)
from shmkernel.kernel.module import strong_try_module_get as _strong_try_module_get
from shmkernel.kernel.variants import lookup
from shmkernel.memory.layout import Layout
from shmkernel.runtime.ctx import Ctx

UNTRACKED, TRACKED, SPLIT = "untracked", "tracked", "tracked-split"
VARIANTS = {
    UNTRACKED: "before the patch: symbol_get/put move the owner's refcount, nobody knows who",
    TRACKED: "the patch: module_use with a count; un-use of a module not used is BUG(); leftovers reported at unload",
    SPLIT: "Trent's proposed fix: separate static (link) and dynamic (symbol_get) counts",
}
ALIASES = {"buggy": UNTRACKED, "fixed": TRACKED}
#: events and counters the kernel code below records (a workload using it declares them)
EVENTS = ("leak", "rmmod_hang")
COUNTERS = ("might_sleep_in_atomic",)

NODE = 4  # words of a module_use: list_head (next, prev), count, static
COUNT, STATIC = 2, 3
SYMS_PER_MODULE = 2
SYMBOL_ADDR = 0x10000  # a symbol's address (its value) is SYMBOL_ADDR + its number


@dataclass(frozen=True)
class SymModule:
    """struct module, the parts this seed uses."""

    mod: Module  # state, generation, freed, listed, refcount storage
    num: int  # 1..n; 0 stands for NULL (the core kernel, an anonymous user)
    name: str
    uses: Slab  # object 0: the modules_which_use_me head; object a: the module_use of user a

    @property
    def head(self) -> int:
        return self.uses.base


@dataclass(frozen=True)
class Symbols:
    """Every module, the exported-symbol table and the locks."""

    modules: tuple[SymModule, ...]  # modules[num - 1]
    symtab: int  # table: owner number of each symbol (0: core kernel)
    nsyms: int
    modlist_lock: int
    locks: ModuleLocks

    @property
    def module_mutex(self) -> int:
        return self.locks.module_mutex

    def module(self, num: int) -> SymModule | None:
        return self.modules[num - 1] if num else None

    def symbol(self, owner: int, i: int = 0) -> int:
        """Symbol number of the ``i``-th export of module ``owner`` (0: the core kernel's)."""
        return 1 + (owner - 1) * SYMS_PER_MODULE + i if owner else 0


@dataclass(frozen=True)
class Kernel:
    """What the functions below need: the addresses, the variant, the refcount scheme."""

    sym: Symbols
    variant: str = TRACKED
    refcount: str = "percpu-incs-decs"
    lock_links: bool = False

    @cached_property
    def ref(self) -> RefcountScheme:
        return refcount_variant(self.refcount)

    @cached_property
    def loader(self) -> ml.Loader:
        return ml.Loader("2.6.20", self.sym.locks, self.ref, modules_list=True, rmmod_hang=True)


def symbols_variant(name: str) -> str:
    return lookup({v: v for v in VARIANTS}, ALIASES, name)


def declare_symbols(layout: Layout, names: list[str]) -> Symbols:
    """Declare modules named ``names`` (numbered from 1), the symbol table and the locks."""
    locks = declare_module_locks(layout)
    n = len(names)
    mods = []
    for num, name in enumerate(names, 1):
        mod = declare_module(layout, name)
        table = layout.table(f"{name}.modules_which_use_me", NODE * (n + 1))
        mods.append(
            SymModule(mod, num, name, Slab(table, n + 1, NODE, f"{name}.modules_which_use_me", (("owner", num),)))
        )
    nsyms = 1 + SYMS_PER_MODULE * n
    return Symbols(tuple(mods), layout.table("symtab", nsyms), nsyms, layout.scalar("modlist_lock"), locks)


def boot_symbols(ctx: Ctx, k: Kernel) -> None:
    """Power-on state: no module loaded, every list empty, the export table filled."""
    s = k.sym
    ctx.write_once(s.modlist_lock, 0)
    ctx.write_once(s.symtab, 0)
    for m in s.modules:
        for i in range(SYMS_PER_MODULE):
            ctx.write_once(s.symtab + s.symbol(m.num, i), m.num)
        for w in range(NODE * m.uses.nobj):
            ctx.write_once(m.head + w, 0)
        INIT_LIST_HEAD(ctx, m.head)
        ml.boot_module(ctx, k.loader, m.mod)


def _links_lock(ctx: Ctx, k: Kernel) -> spinlock | nullcontext[None]:
    """modlist_lock around link-time and unload-time list changes: with lock_links only (not the patch)."""
    return spinlock(ctx, k.sym.modlist_lock) if k.lock_links else nullcontext()


def _uses_of(ctx: Ctx, b: SymModule) -> Iterator[int]:
    """list_for_each_entry(use, &b->modules_which_use_me, list): yields each module_use."""
    return list_for_each(ctx, b.uses, b.head)


def _user_of(b: SymModule, use: int) -> int:
    return b.uses.index(use)  # use->module_which_uses (fixed for a given object)


# --- Refcount helpers and the symbol table.
def strong_try_module_get(ctx: Ctx, k: Kernel, mod: SymModule) -> bool:
    return _strong_try_module_get(ctx, k.ref, mod.mod)


def module_put(ctx: Ctx, k: Kernel, mod: SymModule | None) -> None:
    if mod is not None:
        k.ref.module_put(ctx, mod.mod)


def sysfs_link(ctx: Ctx, atomic: bool) -> None:
    """sysfs_create_link/sysfs_remove_link take i_mutex and allocate: they may sleep."""
    if atomic:
        ctx.count("might_sleep_in_atomic")  # BUG: sleeping function called from invalid context


def __find_symbol(ctx: Ctx, k: Kernel, symbol: int) -> tuple[int, SymModule | None]:
    """The symbol's value and owner (None: the core kernel); value 0 if no listed module exports it."""
    if not 0 <= symbol < k.sym.nsyms:
        return 0, None
    owner = k.sym.module(ctx.read_once(k.sym.symtab + symbol))
    if owner is None:
        return SYMBOL_ADDR + symbol, None
    if ctx.read_once(owner.mod.listed):
        return SYMBOL_ADDR + symbol, owner
    return 0, None


def module_text_address(ctx: Ctx, k: Kernel, addr: int) -> SymModule | None:
    with spinlock(ctx, k.sym.modlist_lock):
        value, owner = __find_symbol(ctx, k, addr - SYMBOL_ADDR)
    return owner if value else None


def core_kernel_text(k: Kernel, addr: int) -> bool:
    return addr - SYMBOL_ADDR == k.sym.symbol(0)


# --- The patch: already_uses, use_module, unuse_module.
def already_uses(ctx: Ctx, k: Kernel, a: SymModule, b: SymModule) -> int | None:
    """Does a already use b? The module_use if it does (untracked: a boolean in effect)."""
    for use in _uses_of(ctx, b):
        if _user_of(b, use) == a.num:
            return use
    return None


def use_module(ctx: Ctx, k: Kernel, a: SymModule | None, b: SymModule | None, inc: bool, atomic: bool = False) -> bool:
    """Module a uses b. A new user takes one reference on b; an old one, if ``inc``,
    bumps the use count (tracked-split: the dynamic count; a link sets the static use)."""
    if b is None:
        return True
    if a is None:
        return strong_try_module_get(ctx, k, b)
    use = already_uses(ctx, k, a, b)
    if use is not None:
        if k.variant == TRACKED and inc:
            ctx.write_once(use + COUNT, ctx.read_once(use + COUNT) + 1)
        elif k.variant == SPLIT:
            if inc:
                ctx.write_once(use + COUNT, ctx.read_once(use + COUNT) + 1)
            elif not ctx.read_once(use + STATIC):
                ctx.write_once(use + STATIC, 1)  # a static use is never counted twice
        return True
    if not strong_try_module_get(ctx, k, b):
        return False
    use = b.uses.obj(a.num)  # kmalloc(sizeof(*use))
    if k.variant == TRACKED:
        ctx.write_once(use + COUNT, 1)
    elif k.variant == SPLIT:
        ctx.write_once(use + COUNT, 1 if inc else 0)
        ctx.write_once(use + STATIC, 0 if inc else 1)
    list_add(ctx, b.uses, use, b.head)
    sysfs_link(ctx, atomic)
    return True


def unuse_module(ctx: Ctx, k: Kernel, a: SymModule | None, b: SymModule, atomic: bool = False) -> int:
    """Module a un-uses b once; returns the uses left (tracked-split: dynamic uses left).
    Not used (tracked-split: no dynamic use left) is a BUG(). The last use drops b's reference."""
    if a is None:
        module_put(ctx, k, b)
        return 0
    use = already_uses(ctx, k, a, b)
    if use is None or (k.variant == SPLIT and ctx.read_once(use + COUNT) == 0):
        how = "is not using" if use is None else "did not symbol_get"
        BUG(ctx, f"module {a.name} trying to un-use a module, {b.name}, which it {how}", user=a.num, owner=b.num)
    assert use is not None
    left = ctx.read_once(use + COUNT) - 1
    ctx.write_once(use + COUNT, left)
    if left == 0 and (k.variant != SPLIT or not ctx.read_once(use + STATIC)):
        list_del(ctx, b.uses, use)
        sysfs_link(ctx, atomic)
        module_put(ctx, k, b)
    return left


def module_unload_free(ctx: Ctx, k: Kernel, mod: SymModule) -> None:
    """Drop mod's uses of every other module; tracked variants report leftover uses
    (one ``leak`` event per use drained) and drain them. module_mutex held, and with
    ``lock_links`` (not the patch) modlist_lock too."""
    lockdep_assert_held(ctx, k.sym.module_mutex)
    with _links_lock(ctx, k):
        for i in k.sym.modules:  # list_for_each_entry(i, &modules, list)
            if i is not mod and ctx.read_once(i.mod.listed):
                _unuse_at_unload(ctx, k, mod, i)


def _unuse_at_unload(ctx: Ctx, k: Kernel, mod: SymModule, i: SymModule) -> None:
    for use in _uses_of(ctx, i):
        if _user_of(i, use) != mod.num:
            continue
        if k.variant == UNTRACKED:
            module_put(ctx, k, i)
            list_del(ctx, i.uses, use)
            sysfs_link(ctx, k.lock_links)
        elif k.variant == TRACKED:
            left = unuse_module(ctx, k, mod, i, k.lock_links)
            while left:  # Someone messed up! "module %s unloading but still has uses of %s"
                if left < 0:  # while (unuse_module(mod, i)); would count down ~2^32 times
                    lockup = f"soft lockup: {mod.name} unloading, its use of {i.name} is {left}"
                    BUG(ctx, lockup, user=mod.num, owner=i.num)
                ctx.event("leak", user=mod.num, owner=i.num)
                left = unuse_module(ctx, k, mod, i, k.lock_links)
        else:
            for _ in range(ctx.read_once(use + COUNT)):  # exactly the unmatched gets
                ctx.event("leak", user=mod.num, owner=i.num)
            list_del(ctx, i.uses, use)
            sysfs_link(ctx, k.lock_links)
            module_put(ctx, k, i)  # a use holds one reference, whatever its counts
        return  # There can be at most one match.


# --- __symbol_get, __symbol_put, __symbol_put_addr (and the macros), resolve_symbol.
# A BUG() under modlist_lock unwinds through the scoped lock: the emulator releases it.
def __symbol_get(ctx: Ctx, k: Kernel, symbol: int, user: SymModule | None) -> int:
    with spinlock(ctx, k.sym.modlist_lock):
        value, owner = __find_symbol(ctx, k, symbol)
        if k.variant == UNTRACKED:
            if value and owner is not None and not strong_try_module_get(ctx, k, owner):
                value = 0
        elif value and owner is not None and not use_module(ctx, k, user, owner, True, atomic=True):
            value = 0
    return value


def __symbol_put(ctx: Ctx, k: Kernel, symbol: int, user: SymModule | None) -> None:
    with spinlock(ctx, k.sym.modlist_lock):
        value, owner = __find_symbol(ctx, k, symbol)
        if not value:
            BUG(ctx, f"__symbol_put: no symbol {symbol}", symbol=symbol)
        if k.variant == UNTRACKED:
            module_put(ctx, k, owner)
        elif owner is not None:
            unuse_module(ctx, k, user, owner, atomic=True)


def __symbol_put_addr(ctx: Ctx, k: Kernel, addr: int, user: SymModule | None) -> None:
    if core_kernel_text(k, addr):
        return
    modaddr = module_text_address(ctx, k, addr)
    if modaddr is None:
        BUG(ctx, f"__symbol_put_addr: {addr:#x} is in no module", addr=addr)
    assert modaddr is not None
    if k.variant == UNTRACKED:
        module_put(ctx, k, modaddr)
        return
    with spinlock(ctx, k.sym.modlist_lock):
        unuse_module(ctx, k, user, modaddr, atomic=True)


# the macros: symbol_get(x) is __symbol_get(x, THIS_MODULE) ... (untracked ignores the user)
symbol_get, symbol_put, symbol_put_addr = __symbol_get, __symbol_put, __symbol_put_addr


def resolve_symbol(ctx: Ctx, k: Kernel, mod: SymModule, symbol: int) -> int:
    """Link time (module_mutex held): a static use of the owner, never counted twice."""
    lockdep_assert_held(ctx, k.sym.module_mutex)
    value, owner = __find_symbol(ctx, k, symbol)
    if not value:
        return 0
    with _links_lock(ctx, k):
        ok = use_module(ctx, k, mod, owner, False, atomic=k.lock_links)
    return value if ok else 0


# --- insmod and rmmod: module_loader.py's 2.6.20, with this file's module_use lists.
@dataclass(frozen=True)
class ModuleUses:
    """The module_use hooks of module_loader for one module (ml.ModuleUse)."""

    k: Kernel
    mod: SymModule
    links: tuple[int, ...] = ()

    def module_unload_init(self, ctx: Ctx) -> None:
        INIT_LIST_HEAD(ctx, self.mod.head)

    def simplify_symbols(self, ctx: Ctx) -> bool:
        return all(resolve_symbol(ctx, self.k, self.mod, symbol) for symbol in self.links)

    def in_use(self, ctx: Ctx) -> bool:
        return not list_empty(ctx, self.mod.head)

    def module_unload_free(self, ctx: Ctx) -> None:
        module_unload_free(ctx, self.k, self.mod)


def load_module(ctx: Ctx, k: Kernel, mod: SymModule, links: tuple[int, ...] = ()) -> int:
    """insmod: resolve ``links`` (symbols this module calls directly) while COMING,
    link it, then LIVE. 0, -EEXIST if loaded, -ENOENT if a symbol is missing."""
    return ml.load_module(ctx, k.loader, mod.mod, use=ModuleUses(k, mod, links))


def sys_delete_module(ctx: Ctx, k: Kernel, mod: SymModule) -> int:
    """rmmod (O_NONBLOCK): 0 once freed, else -errno; `ml.RmmodAsleep` if the run ends
    while it waits for the count to read 0."""
    return ml.delete_module(ctx, k.loader, mod.mod, use=ModuleUses(k, mod), nonblock=True)
