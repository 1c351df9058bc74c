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

The lists are real ``list_head``s in the segment: each owner has a table whose
slot 0 is the list head and whose slot *a* is the ``module_use`` of user module
*a* (``next, prev, count, static``: kmalloc has one possible object per pair,
since "there can be at most one match"). ``list_add``/``list_del`` are the
kernel's pointer writes, so a list touched under two different locks can be
corrupted exactly as the kernel's: the patch adds uses under ``modlist_lock``
(``__symbol_get``) while ``load_module``/``module_unload_free`` still add and
delete them under ``module_mutex`` only. ``lock_links=True`` (an option, not the
patch) also takes ``modlist_lock`` there. The patch also calls
``sysfs_create_link``/``sysfs_remove_link`` (which sleep) under that spinlock:
counted as ``might_sleep_in_atomic``.

A ``BUG()`` is a ``bug`` event and raises `Oops`; the caller's program catches
it and stops, as the oopsed task dies. Unlike the kernel, the emulator releases
the locks the dead task held (a real oops inside ``modlist_lock`` would wedge
every later symbol_get), so that the other CPUs and the run go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shmkernel.errors import UsageError
from shmkernel.kernel.module import (
    AtomicRefcnt,
    Module,
    ModuleState,
    declare_module,
    refcount_variant,
    try_stop_module,
)
from shmkernel.kernel.module import free_module as _module_free
from shmkernel.kernel.module import load_module as _module_load
from shmkernel.kernel.stop_machine import stop_machine
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

ENOENT, EEXIST, EINTR, EBUSY, EWOULDBLOCK = 2, 17, 4, 16, 11
LIST_POISON1, LIST_POISON2 = 0x00100100, 0x00200200
NODE = 4  # words of a module_use: list_head (next, prev), count, static
NEXT, PREV, COUNT, STATIC = range(NODE)
SYMS_PER_MODULE = 2
SYMBOL_ADDR = 0x10000  # a symbol's address (its value) is SYMBOL_ADDR + its number


class Oops(Exception):
    """A kernel BUG(): the task that hit it dies (its program catches this and stops)."""


@dataclass(frozen=True)
class SymModule:
    """struct module, the parts this seed uses."""

    mod: Module  # state, generation, freed, refcount storage, module_mutex
    num: int  # 1..n; 0 stands for NULL (the core kernel, an anonymous user)
    name: str
    listed: int  # word: on the ``modules`` list, where __find_symbol looks
    uses: int  # table: +0 the modules_which_use_me head, +NODE*a the module_use of user a


@dataclass(frozen=True)
class Symbols:
    """Every module, the exported-symbol table and the two locks."""

    modules: tuple[SymModule, ...]  # modules[num - 1]
    symtab: int  # table: owner number of each symbol (0: core kernel)
    nsyms: int
    modlist_lock: int
    module_mutex: int

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

    @property
    def ref(self):  # type: ignore[no-untyped-def]
        return refcount_variant(self.refcount)


def symbols_variant(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in VARIANTS:
        raise UsageError(f"unknown variant {name!r}; choose one of {', '.join([*VARIANTS, *ALIASES])}")
    return name


def declare_symbols(layout: Layout, names: list[str]) -> Symbols:
    """Declare modules named ``names`` (numbered from 1), the symbol table and the locks.

    Each module is a `Module` of shmkernel.kernel.module with its own prefix and
    the one global ``module_mutex``."""
    mutex = layout.scalar("module_mutex")
    n = len(names)
    mods = []
    for num, name in enumerate(names, 1):
        mod = declare_module(layout, name, module_mutex=mutex)
        mods.append(SymModule(mod, num, name, layout.scalar(f"{name}.listed"),
                              layout.table(f"{name}.modules_which_use_me", NODE * (n + 1))))
    nsyms = 1 + SYMS_PER_MODULE * n
    return Symbols(tuple(mods), layout.table("symtab", nsyms), nsyms, layout.scalar("modlist_lock"), mutex)


def boot_symbols(ctx: Ctx, k: Kernel) -> None:
    """Power-on state: no module loaded, every list empty, the export table filled."""
    s = k.sym
    ctx.write_once(s.modlist_lock, 0)
    ctx.write_once(s.module_mutex, 0)
    ctx.write_once(s.symtab, 0)
    for m in s.modules:
        for i in range(SYMS_PER_MODULE):
            ctx.write_once(s.symtab + s.symbol(m.num, i), m.num)
        for w in range(NODE * (len(s.modules) + 1)):
            ctx.write_once(m.uses + w, 0)
        INIT_LIST_HEAD(ctx, m.uses)
        ctx.write_once(m.listed, 0)
        ctx.write_once(m.mod.generation, 0)
        ctx.write_once(m.mod.freed, 1)
        ctx.write_once(m.mod.state, ModuleState.UNFORMED)


def BUG(ctx: Ctx, what: str, **detail: object) -> None:
    ctx.event("bug", what=what, **detail)
    raise Oops(what)


# ---------------------------------------------------------------------------------------------
# include/linux/list.h, every pointer through ctx; a poisoned pointer is an oops.
# ---------------------------------------------------------------------------------------------
def INIT_LIST_HEAD(ctx: Ctx, head: int) -> None:
    ctx.write_once(head + NEXT, head)
    ctx.write_once(head + PREV, head)


def _deref(ctx: Ctx, owner: SymModule, p: int, nmods: int) -> int:
    if not (owner.uses <= p < owner.uses + NODE * (nmods + 1) and (p - owner.uses) % NODE == 0):
        BUG(ctx, f"unable to handle kernel paging request at {p:#x} in {owner.name}.modules_which_use_me",
            owner=owner.num)
    return p


def list_add(ctx: Ctx, k: Kernel, owner: SymModule, new: int) -> None:
    head = owner.uses
    nxt = _deref(ctx, owner, ctx.read_once(head + NEXT), len(k.sym.modules))
    ctx.write_once(nxt + PREV, new)
    ctx.write_once(new + NEXT, nxt)
    ctx.write_once(new + PREV, head)
    ctx.write_once(head + NEXT, new)


def list_del(ctx: Ctx, k: Kernel, owner: SymModule, entry: int) -> None:
    n = len(k.sym.modules)
    nxt = _deref(ctx, owner, ctx.read_once(entry + NEXT), n)
    prv = _deref(ctx, owner, ctx.read_once(entry + PREV), n)
    ctx.write_once(nxt + PREV, prv)
    ctx.write_once(prv + NEXT, nxt)
    ctx.write_once(entry + NEXT, LIST_POISON1)
    ctx.write_once(entry + PREV, LIST_POISON2)


def list_empty(ctx: Ctx, head: int) -> bool:
    return ctx.read_once(head + NEXT) == head


def _uses_of(ctx: Ctx, k: Kernel, b: SymModule) -> Iterator[int]:
    """list_for_each_entry(use, &b->modules_which_use_me, list): yields each module_use."""
    n = len(k.sym.modules)
    p = _deref(ctx, b, ctx.read_once(b.uses + NEXT), n)
    seen = 0
    while p != b.uses:
        seen += 1
        if seen > n:
            BUG(ctx, f"soft lockup: {b.name}.modules_which_use_me loops", owner=b.num)
        yield p
        p = _deref(ctx, b, ctx.read_once(p + NEXT), n)


def _user_of(b: SymModule, use: int) -> int:
    return (use - b.uses) // NODE  # use->module_which_uses (fixed for a given object)


def list_users(read: Callable[[int], int], k: Kernel, b: SymModule) -> dict[int, tuple[int, int]]:
    """Oracle (not kernel code): b's users as {user: (count, static)}; ValueError if corrupt."""
    n = len(k.sym.modules)
    out: dict[int, tuple[int, int]] = {}
    p = read(b.uses + NEXT)
    while p != b.uses:
        if not (b.uses < p < b.uses + NODE * (n + 1) and (p - b.uses) % NODE == 0) or len(out) > n:
            raise ValueError(f"{b.name}.modules_which_use_me is corrupt")
        a = _user_of(b, p)
        if a in out:
            raise ValueError(f"{b.name}.modules_which_use_me lists user {a} twice")
        out[a] = (read(p + COUNT), read(p + STATIC))
        p = read(p + NEXT)
    return out


# ---------------------------------------------------------------------------------------------
# Refcount helpers and the symbol table.
# ---------------------------------------------------------------------------------------------
def strong_try_module_get(ctx: Ctx, k: Kernel, mod: SymModule) -> bool:
    if ctx.read_once(mod.mod.state) == ModuleState.COMING:
        return False
    return k.ref.try_module_get(ctx, mod.mod)


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
    if ctx.read_once(owner.listed):
        return SYMBOL_ADDR + symbol, owner
    return 0, None


def module_text_address(ctx: Ctx, k: Kernel, addr: int) -> SymModule | None:
    ctx.spin_lock(k.sym.modlist_lock)
    value, owner = __find_symbol(ctx, k, addr - SYMBOL_ADDR)
    ctx.spin_unlock(k.sym.modlist_lock)
    return owner if value else None


def core_kernel_text(k: Kernel, addr: int) -> bool:
    return addr - SYMBOL_ADDR == k.sym.symbol(0)


# ---------------------------------------------------------------------------------------------
# The patch: already_uses, use_module, unuse_module.
# ---------------------------------------------------------------------------------------------
def already_uses(ctx: Ctx, k: Kernel, a: SymModule, b: SymModule) -> int | None:
    """Does a already use b? The module_use if it does (untracked: a boolean in effect)."""
    for use in _uses_of(ctx, k, b):
        if _user_of(b, use) == a.num:
            return use
    return None


def use_module(ctx: Ctx, k: Kernel, a: SymModule | None, b: SymModule | None, inc: bool,
               atomic: bool = False) -> bool:
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
    use = b.uses + NODE * a.num  # kmalloc(sizeof(*use))
    if k.variant == TRACKED:
        ctx.write_once(use + COUNT, 1)
    elif k.variant == SPLIT:
        ctx.write_once(use + COUNT, 1 if inc else 0)
        ctx.write_once(use + STATIC, 0 if inc else 1)
    list_add(ctx, k, b, use)
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
    left = ctx.read_once(use + COUNT) - 1
    ctx.write_once(use + COUNT, left)
    if left == 0 and (k.variant != SPLIT or not ctx.read_once(use + STATIC)):
        list_del(ctx, k, b, use)
        sysfs_link(ctx, atomic)
        module_put(ctx, k, b)
    return left


def module_unload_free(ctx: Ctx, k: Kernel, mod: SymModule) -> None:
    """Drop mod's uses of every other module; tracked variants report leftover uses
    (one ``leak`` event per use drained) and drain them. module_mutex held, and with
    ``lock_links`` (not the patch) modlist_lock too."""
    if k.lock_links:
        ctx.spin_lock(k.sym.modlist_lock)
    try:
        for i in k.sym.modules:  # list_for_each_entry(i, &modules, list)
            if i is not mod and ctx.read_once(i.listed):
                _unuse_at_unload(ctx, k, mod, i)
    finally:  # (an oops too: the emulator releases what the dead task held)
        if k.lock_links:
            ctx.spin_unlock(k.sym.modlist_lock)


def _unuse_at_unload(ctx: Ctx, k: Kernel, mod: SymModule, i: SymModule) -> None:
    for use in _uses_of(ctx, k, i):
        if _user_of(i, use) != mod.num:
            continue
        if k.variant == UNTRACKED:
            module_put(ctx, k, i)
            list_del(ctx, k, i, use)
            sysfs_link(ctx, k.lock_links)
        elif k.variant == TRACKED:
            left = unuse_module(ctx, k, mod, i, k.lock_links)
            while left:  # Someone messed up! "module %s unloading but still has uses of %s"
                if left < 0:  # while (unuse_module(mod, i)); would count down ~2^32 times
                    BUG(ctx, f"soft lockup: {mod.name} unloading, its use of {i.name} is {left}",
                        user=mod.num, owner=i.num)
                ctx.event("leak", user=mod.num, owner=i.num)
                left = unuse_module(ctx, k, mod, i, k.lock_links)
        else:
            for _ in range(ctx.read_once(use + COUNT)):  # exactly the unmatched gets
                ctx.event("leak", user=mod.num, owner=i.num)
            list_del(ctx, k, i, use)
            sysfs_link(ctx, k.lock_links)
            module_put(ctx, k, i)  # a use holds one reference, whatever its counts
        return  # There can be at most one match.


# ---------------------------------------------------------------------------------------------
# __symbol_get, __symbol_put, __symbol_put_addr (and the macros), resolve_symbol.
# A BUG() under modlist_lock unwinds through ``finally``: the emulator releases the lock.
# ---------------------------------------------------------------------------------------------
def __symbol_get(ctx: Ctx, k: Kernel, symbol: int, user: SymModule | None) -> int:
    ctx.spin_lock(k.sym.modlist_lock)
    try:
        value, owner = __find_symbol(ctx, k, symbol)
        if k.variant == UNTRACKED:
            if value and owner is not None and not strong_try_module_get(ctx, k, owner):
                value = 0
        elif value and owner is not None and not use_module(ctx, k, user, owner, True, atomic=True):
            value = 0
    finally:
        ctx.spin_unlock(k.sym.modlist_lock)
    return value


def __symbol_put(ctx: Ctx, k: Kernel, symbol: int, user: SymModule | None) -> None:
    ctx.spin_lock(k.sym.modlist_lock)
    try:
        value, owner = __find_symbol(ctx, k, symbol)
        if not value:
            BUG(ctx, f"__symbol_put: no symbol {symbol}", symbol=symbol)
        if k.variant == UNTRACKED:
            module_put(ctx, k, owner)
        elif owner is not None:
            unuse_module(ctx, k, user, owner, atomic=True)
    finally:
        ctx.spin_unlock(k.sym.modlist_lock)


def __symbol_put_addr(ctx: Ctx, k: Kernel, addr: int, user: SymModule | None) -> None:
    if core_kernel_text(k, addr):
        return
    modaddr = module_text_address(ctx, k, addr)
    if modaddr is None:
        BUG(ctx, f"__symbol_put_addr: {addr:#x} is in no module", addr=addr)
        return
    if k.variant == UNTRACKED:
        module_put(ctx, k, modaddr)
        return
    ctx.spin_lock(k.sym.modlist_lock)
    try:
        unuse_module(ctx, k, user, modaddr, atomic=True)
    finally:
        ctx.spin_unlock(k.sym.modlist_lock)


def symbol_get(ctx: Ctx, k: Kernel, symbol: int, this_module: SymModule | None) -> int:
    """symbol_get(x): __symbol_get(x, THIS_MODULE); untracked ignores the user."""
    return __symbol_get(ctx, k, symbol, this_module)


def symbol_put(ctx: Ctx, k: Kernel, symbol: int, this_module: SymModule | None) -> None:
    __symbol_put(ctx, k, symbol, this_module)


def symbol_put_addr(ctx: Ctx, k: Kernel, addr: int, this_module: SymModule | None) -> None:
    __symbol_put_addr(ctx, k, addr, this_module)


def resolve_symbol(ctx: Ctx, k: Kernel, mod: SymModule, symbol: int) -> int:
    """Link time (module_mutex held): a static use of the owner, never counted twice."""
    value, owner = __find_symbol(ctx, k, symbol)
    if not value:
        return 0
    if k.lock_links:
        ctx.spin_lock(k.sym.modlist_lock)
    try:
        ok = use_module(ctx, k, mod, owner, False, atomic=k.lock_links)
    finally:
        if k.lock_links:
            ctx.spin_unlock(k.sym.modlist_lock)
    return value if ok else 0


# ---------------------------------------------------------------------------------------------
# insmod and rmmod (2.6.20's order of operations), under module_mutex.
# ---------------------------------------------------------------------------------------------
def _link_module(ctx: Ctx, mod: SymModule) -> None:
    ctx.write_once(mod.listed, 1)


def _unlink_module(ctx: Ctx, mod: SymModule) -> None:
    ctx.write_once(mod.listed, 0)


def load_module(ctx: Ctx, k: Kernel, mod: SymModule, links: tuple[int, ...] = ()) -> int:
    """insmod: resolve ``links`` (symbols this module calls directly), then go live.
    0, -EEXIST if loaded, -ENOENT if a symbol is missing (the uses taken are dropped)."""
    ctx.mutex_lock(k.sym.module_mutex)
    try:
        if ctx.read_once(mod.listed):
            return -EEXIST
        INIT_LIST_HEAD(ctx, mod.uses)  # module_unload_init
        for symbol in links:  # simplify_symbols
            if not resolve_symbol(ctx, k, mod, symbol):
                module_unload_free(ctx, k, mod)  # free_unload
                return -ENOENT
        _module_load(ctx, k.ref, mod.mod)  # new generation, refcount, COMING -> LIVE
        stop_machine(ctx, _link_module, mod)  # sew it into the lists
        return 0
    finally:
        ctx.mutex_unlock(k.sym.module_mutex)


def sys_delete_module(ctx: Ctx, k: Kernel, mod: SymModule) -> int:
    """rmmod (O_NONBLOCK, as rmmod does by default): 0 once freed, else -errno."""
    ctx.mutex_lock(k.sym.module_mutex)
    try:
        if not ctx.read_once(mod.listed):
            return -ENOENT
        if not list_empty(ctx, mod.uses):
            return -EWOULDBLOCK  # Other modules depend on us: get rid of them first.
        if ctx.read_once(mod.mod.state) != ModuleState.LIVE:
            return -EBUSY
        ret = try_stop_module(ctx, k.ref, mod.mod, True)  # stop_machine: refcount 0 -> GOING
        if ret != 0:
            return ret
        ref = k.ref
        if not isinstance(ref, AtomicRefcnt) and ref.module_refcount(ctx, mod.mod) != 0:
            ret = wait_for_zero_refcount(ctx, k, mod)
            if ret != 0:
                return ret
        free_module(ctx, k, mod)
        return 0
    finally:
        ctx.mutex_unlock(k.sym.module_mutex)


def wait_for_zero_refcount(ctx: Ctx, k: Kernel, mod: SymModule) -> int:
    """Sleep (module_mutex dropped) until the refcount reads 0. Below 0 it never will:
    a put with no get came after GOING and rmmod sleeps forever. The emulator reports
    ``rmmod_hang`` and goes on to free the module so that the run goes on."""
    ctx.mutex_unlock(k.sym.module_mutex)
    try:
        while (r := k.ref.module_refcount(ctx, mod.mod)) != 0:
            if r < 0:
                ctx.event("rmmod_hang", module=mod.num, refcount=r)
                break
            if ctx.stopped():
                return -EINTR
            ctx.schedule()
        return 0
    finally:
        ctx.mutex_lock(k.sym.module_mutex)


def free_module(ctx: Ctx, k: Kernel, mod: SymModule) -> None:
    stop_machine(ctx, _unlink_module, mod)  # Delete from various lists
    module_unload_free(ctx, k, mod)
    _module_free(ctx, mod.mod)
