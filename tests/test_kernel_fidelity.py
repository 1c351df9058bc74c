"""The kernel layer against the kernels it emulates: one test per fidelity fix.

Each test drives the kernel functions directly on one real CPU context over a
real segment (`OneCpu`), in a fixed order, so it is deterministic; each would
have failed against the code before the fix it names.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

import workloads
from shmkernel.kernel import module_loader as ml
from shmkernel.kernel import symbols as ks
from shmkernel.kernel.errno import EBUSY
from shmkernel.kernel.livepatch import (
    declare_livepatch,
    klp_enable_patch,
    klp_module_notify,
    klp_register_patch,
    klp_registered,
    klp_variant,
)
from shmkernel.kernel.livepatch_patch import klp_func_stack
from shmkernel.kernel.module import (
    AtomicRefcnt,
    ModuleLocks,
    ModuleState,
    PercpuCount,
    PercpuIncsDecs,
    declare_module,
    declare_module_locks,
    refcount_variant,
)
from shmkernel.memory.layout import Layout
from shmkernel.memory.segment import Segment
from shmkernel.runtime.control import declare_control
from shmkernel.runtime.ctx import Ctx
from workloads.livepatch import GOING, prepare
from workloads.rmmod import RmmodVars, rmmod_cpu

COUNTERS = ("use_after_free", "rmmod_hang", "leak", "might_sleep_in_atomic", "migrations", "uncounted_ref")


class OneCpu:
    """CPU 0 of a 1-CPU machine: ``declare(layout)`` gives the kernel's words (``.v``)."""

    def __init__(self, declare: Callable[[Layout], Any], ctx_class: type[Ctx] = Ctx) -> None:
        layout = Layout(2)
        self.names = tuple(dict.fromkeys((*COUNTERS, "warn", "bug")))
        self.ctl = declare_control(layout, 2, self.names)
        self.v = declare(layout)
        self.seg = Segment.create(layout, 1)
        self.ctx = ctx_class(self.seg, self.ctl, 0, 1, self.names)

    def events(self) -> dict[str, int]:
        row = self.seg.np[self.ctl.counters : self.ctl.counters + self.ctl.row_words]
        return {n: int(row[i]) for i, n in enumerate(self.names) if row[i]}

    def read(self, word: int) -> int:
        return self.ctx.oracle_read(word)


@pytest.fixture
def cpu():
    made: list[OneCpu] = []

    def make(declare: Callable[[Layout], Any], ctx_class: type[Ctx] = Ctx) -> OneCpu:
        made.append(OneCpu(declare, ctx_class))
        return made[-1]

    yield make
    for c in made:
        c.seg.unlink()


def _module(layout: Layout) -> tuple[Any, ModuleLocks]:
    return declare_module(layout), declare_module_locks(layout)


# -- 1, 2: 2.6.33's wait_for_zero_refcount ----------------------------------------------------
class Watched(PercpuIncsDecs):
    """The seed's fix, noting at each tally whether module_mutex is held."""

    def __init__(self, module_mutex: int) -> None:
        self.module_mutex, self.held = module_mutex, []

    def module_refcount(self, ctx: Ctx, mod: Any, slot_delay_us: float = 0.0) -> int:
        self.held.append(ctx.oracle_read(self.module_mutex) == ctx.cpu + 1)
        return super().module_refcount(ctx, mod, slot_delay_us)


def test_rmmod_waits_for_the_count_without_module_mutex_and_never_gives_up(cpu):
    """1: the wait releases module_mutex (the first tally, before it, holds it);
    2: a bounded wait ends with rmmod still asleep and the module GOING, not -EBUSY."""
    c = cpu(_module)
    mod, locks = c.v
    ref = Watched(locks.module_mutex)
    loader = ml.Loader("2.6.33", locks, ref)
    ml.boot_module(c.ctx, loader, mod)
    assert ml.load_module(c.ctx, loader, mod) == 0
    assert ref.try_module_get(c.ctx, mod)  # a user holds it all along
    with pytest.raises(ml.RmmodAsleep):
        ml.delete_module(c.ctx, loader, mod, nonblock=False, max_waits=2)
    assert ref.held == [True, False, False]
    assert c.read(mod.state) == ModuleState.GOING and not c.read(mod.freed)
    assert c.read(locks.module_mutex) == 0  # asleep, holding nothing
    ref.module_put(c.ctx, mod)  # the last user goes: a new rmmod of a GOING module is refused
    assert ml.delete_module(c.ctx, loader, mod) == -EBUSY


def test_rmmod_frees_once_the_count_reads_zero(cpu):
    c = cpu(_module)
    mod, locks = c.v
    loader = ml.Loader("2.6.33", locks, refcount_variant("fixed"))
    ml.boot_module(c.ctx, loader, mod)
    ml.load_module(c.ctx, loader, mod)
    assert ml.delete_module(c.ctx, loader, mod, nonblock=False, max_waits=2) == 0
    assert c.read(mod.freed) == 1 and c.read(locks.module_mutex) == 0


# -- 3: 2.6.20 links a module while it is COMING ----------------------------------------------
def test_2_6_20_links_while_coming_and_goes_live_after_init(cpu):
    c = cpu(lambda layout: ks.declare_symbols(layout, ["provider", "user"]))
    k = ks.Kernel(c.v, ks.TRACKED)
    ks.boot_symbols(c.ctx, k)
    prov = k.sym.module(1)
    seen: dict[str, Any] = {}

    def init(ctx: Ctx, gen: int) -> None:  # the provider's init, module_mutex released
        seen["listed_state"] = (ctx.oracle_read(prov.mod.listed), ctx.oracle_read(prov.mod.state))
        seen["symbol_get"] = ks.symbol_get(ctx, k, k.sym.symbol(1, 1), None)
        seen["rmmod"] = ks.sys_delete_module(ctx, k, prov)

    assert ml.load_module(c.ctx, k.loader, prov.mod, use=ks.ModuleUses(k, prov), init=init) == 0
    assert seen == {"listed_state": (1, ModuleState.COMING), "symbol_get": 0, "rmmod": -EBUSY}
    assert c.read(prov.mod.state) == ModuleState.LIVE
    assert k.ref.module_refcount(c.ctx, prov.mod) == 0  # the init reference was dropped
    assert ks.symbol_get(c.ctx, k, k.sym.symbol(1, 1), None)


# -- 4, 5: livepatch v4.0 ----------------------------------------------------------------------
def _coming_race(c: OneCpu, variant: str) -> Any:
    """The seed's STATE 1 -> STATE 2: P3 registered and enabled while M is COMING,
    before the notifier (the first notifier on the chain does it); returns M's address."""
    lp, var = c.v, klp_variant(variant)
    prepare(c.ctx, variant, lp, "coming")
    p3 = lp.patch(3)

    def cpu1(ctx: Ctx, action: ModuleState, mod: Any, addr: int) -> None:
        if action == ModuleState.COMING:
            assert klp_register_patch(ctx, var, lp, p3) == 0 and klp_enable_patch(ctx, lp, p3) == 0

    loader = ml.Loader("4.0", lp.locks, notifier=(cpu1, partial(klp_module_notify, var, lp)))
    assert ml.load_module(c.ctx, loader, lp.mod) == 0
    return c.read(lp.mod.generation)


def test_v4_0_keeps_obj_mod_when_applying_to_a_coming_module_fails(cpu):
    """4: klp_module_notify_coming() only warns (v4.5's klp_module_coming() clears obj->mod)."""
    c = cpu(declare_livepatch)
    addr = _coming_race(c, "buggy")
    lp = c.v
    assert c.events() == {"warn": 1}  # klp_enable_object: P3 M not disabled (it was applied already)
    assert c.read(lp.patch(3).objs[1].mod) == addr
    assert klp_func_stack(c.ctx, lp.ops, addr) == [3, 1, 2]  # the seed's STATE 2: b2 runs


def test_klp_ops_are_per_address(cpu):
    """5: P3 left on a freed M's b() (the GOING race) stays on that address's ops;
    M loaded again at a new address gets an ops of its own."""
    c = cpu(declare_livepatch)
    lp, var = c.v, klp_variant("buggy")
    prepare(c.ctx, "buggy", lp, GOING)
    old = c.read(lp.mod.generation)
    p3 = lp.patch(3)

    def cpu1(ctx: Ctx, action: ModuleState, mod: Any, addr: int) -> None:  # after the GOING notifier
        if action == ModuleState.GOING:
            assert klp_register_patch(ctx, var, lp, p3) == 0 and klp_enable_patch(ctx, lp, p3) == 0

    klp = partial(klp_module_notify, var, lp)
    assert ml.delete_module(c.ctx, ml.Loader("4.0", lp.locks, notifier=(klp, cpu1)), lp.mod) == 0
    assert klp_func_stack(c.ctx, lp.ops, old) == [3]  # the dangling patch of the seed
    assert ml.load_module(c.ctx, ml.Loader("4.0", lp.locks, notifier=(klp,)), lp.mod) == 0
    new = c.read(lp.mod.generation)
    assert new != old
    assert klp_func_stack(c.ctx, lp.ops, new) == [1, 2]  # P3's M object is still "enabled": warned
    assert klp_func_stack(c.ctx, lp.ops, old) == [3]


def test_stacking_looks_at_the_patch_before_on_klp_patches(cpu):
    """5: with P2 never registered, P3 follows P1 on klp_patches and may be enabled."""
    c = cpu(declare_livepatch)
    lp, var = c.v, klp_variant("fixed")
    prepare(c.ctx, "fixed", lp, GOING)
    assert klp_registered(c.ctx, lp) == [1, 2]
    node = lp.patch(2).node  # unlink P2 (as if it had never been registered)
    for word in (node, node + 1):
        c.ctx.oracle_write(word, 0)
    c.ctx.oracle_write(lp.patch(1).node, lp.klp_patches.base)
    c.ctx.oracle_write(lp.klp_patches.base + 1, lp.patch(1).node)
    c.ctx.oracle_write(lp.patch(2).state, 0)
    assert klp_registered(c.ctx, lp) == [1]
    assert klp_register_patch(c.ctx, var, lp, lp.patch(3)) == 0
    assert klp_registered(c.ctx, lp) == [1, 3]
    assert klp_enable_patch(c.ctx, lp, lp.patch(3)) == 0  # by number (P2, disabled): -EBUSY


# -- 6: v3.19..v6.14's module_put disables preemption ------------------------------------------
class Recording(Ctx):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.log: list[str] = []

    def preempt_disable(self) -> None:
        self.log.append("preempt_disable")
        super().preempt_disable()

    def preempt_enable(self) -> None:
        self.log.append("preempt_enable")
        super().preempt_enable()

    def atomic_dec_if_positive(self, v: int) -> int:
        self.log.append("atomic_dec_if_positive")
        return super().atomic_dec_if_positive(v)

    def atomic_inc(self, v: int) -> None:
        self.log.append("atomic_inc")
        super().atomic_inc(v)


def test_atomic_module_put_and_module_get_run_with_preemption_disabled(cpu):
    c = cpu(_module, Recording)
    mod, _ = c.v
    ref, ctx = AtomicRefcnt(), c.ctx
    ref.module_unload_init(ctx, mod)
    ctx.log.clear()
    ref.module_get_held(ctx, mod)
    ref.module_put(ctx, mod)
    assert ctx.log == [
        "preempt_disable",
        "atomic_inc",
        "preempt_enable",
        "preempt_disable",
        "atomic_dec_if_positive",
        "preempt_enable",
    ]


# -- 7: mod->exit() and module_mutex, by era ---------------------------------------------------
@pytest.mark.parametrize("era,held", [("2.6.0", True), ("2.6.20", False), ("2.6.33", False), ("4.0", False)])
def test_exit_runs_with_module_mutex_held_only_in_2_6_0(cpu, era, held):
    """2.6.0 ran mod->exit() holding module_mutex; Andrea Arcangeli's "Drop Lock
    Around Module Exit" (Feb 2004, against 2.6.3) is what released it."""
    c = cpu(_module)
    mod, locks = c.v
    ref = AtomicRefcnt() if era == "4.0" else PercpuCount()
    loader = ml.Loader(era, locks, ref, modules_list=era != "2.6.33")
    ml.boot_module(c.ctx, loader, mod)
    assert ml.load_module(c.ctx, loader, mod) == 0
    during: list[bool] = []
    assert (
        ml.delete_module(
            c.ctx, loader, mod, exit=lambda ctx: during.append(ctx.oracle_read(locks.module_mutex) == ctx.cpu + 1)
        )
        == 0
    )
    assert during == [held]
    assert c.read(locks.module_mutex) == 0


# -- 8: rmmod's users check every access through a reference -----------------------------------
class FreesAtRead(Ctx):
    """Frees the module (as rmmod would) just as this CPU reads ``trigger``."""

    trigger = freed = -1

    def read_once(self, v: int) -> int:
        if v == self.trigger:
            self.trigger = -1
            self.w[self.freed] = 1
        return super().read_once(v)


def test_rmmod_reports_a_clone_of_a_reference_to_a_freed_module(cpu):
    """The module is freed between the worker's last use and its __module_get."""

    def declare(layout: Layout) -> RmmodVars:
        return workloads.get("rmmod").declare(layout, {})

    c = cpu(declare, FreesAtRead)
    v, ctx = c.v, c.ctx
    p = {"variant": "buggy", "v": v, "iterations": 2, "hold_iterations": 2, "idle_iterations": 0, "topology": "chain"}
    loader = ml.Loader("2.6.33", v.locks, refcount_variant("buggy"))
    ml.boot_module(ctx, loader, v.mod)
    ml.load_module(ctx, loader, v.mod)
    ctx.nr_cpus = 2  # CPU 0 of two: it clones its reference for CPU 1 (whose mailbox it reads first)
    ctx.trigger, ctx.freed = v.mailbox + 8, v.mod.freed
    rmmod_cpu(ctx, p)
    assert c.events() == {"use_after_free": 1}
    assert c.read(v.mailbox + 8) == 0  # no clone migrated


# -- 9: a configuration no kernel had says so --------------------------------------------------
def test_rmmod_list_says_stop_machine_with_atomic_is_no_kernel_configuration():
    wl = workloads.get("rmmod")
    (opt,) = [o for o in wl.options if o.name == "stop_machine"]
    assert "no kernel had" in opt.help
    assert "never under stop_machine in any kernel" in wl.variants["atomic"]
