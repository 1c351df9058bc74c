"""Seed 001: symbol_get/symbol_put pairs while rmmod comes and goes (``symbol-get-put``).

Module 1 is the *provider* (think of a DVB frontend that drivers symbol_get());
worker CPU ``c`` runs the code of its own user module ``user<c>``. Each loop
iteration is one *pair*: ``symbol_get`` the provider's symbol, use it
``--hold-iterations`` times, ``symbol_put`` it (or ``symbol_put_addr``, at
``--put-addr-rate``); a buggy module (the first ``--unbalanced-cpus`` CPUs,
0: all) then puts it once more at ``--unbalanced-rate``, and any module skips
its put at ``--leak-rate`` (an unmatched get). Modules named by ``--linked``
also call another provider symbol directly (a link-time, static use) every
iteration. A user module is loaded, makes ``--pairs-per-load`` pairs and is
unloaded again (its leftover uses are reported then); 0 loads the users at boot
for the whole run. The coordinator keeps trying ``rmmod provider`` (and
reloads it once every stale user has noticed).

Any access to the provider after it was freed is a ``use_after_free``;
``untracked`` lets an extra put eat another holder's reference, so rmmod frees
the provider under it; ``tracked`` BUG()s on the extra put unless the module
was linked against the provider (Trent's hole: the put eats the static use);
``tracked-split`` BUG()s on every extra put. A BUG() stops the CPU's program
(``--oops stop``, an oops kills the task) or only the current pair (``continue``).

Worth running: ``--linked all --lock-links true`` (Trent's hole: ``tracked``
frees the provider under its static users, ``tracked-split`` does not);
``--linked half --unbalanced-rate 0`` (a correct program: the patch still BUG()s,
its use lists being changed under two locks; ``--lock-links true`` cures it);
``--leak-rate 0.01 --unbalanced-rate 0 --linked half --lock-links true`` (leaks
reported: none, about half, all). ``shmkernel explore symbol-get-put`` (the
exhaustive search) finds an ``rmmod_hang`` in 1,342 executions; ``--scheduler
pct`` finds the use-after-free too, whose few precise switches hypothesis
rarely draws.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.kernel import symbols as ks
from shmkernel.kernel.bug import Oops
from shmkernel.kernel.list import list_nodes
from shmkernel.kernel.module import VARIANTS as REFCOUNTS
from shmkernel.kernel.module_loader import RmmodAsleep
from shmkernel.kernel.symbols import (
    Kernel,
    Symbols,
    SymModule,
    load_module,
    symbol_get,
    symbol_put,
    symbol_put_addr,
    sys_delete_module,
)
from shmkernel.memory.layout import Layout, per_cpu_ptr
from shmkernel.memory.segment import Segment
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.machine import Program, RunResult
from shmkernel.workload import Option, SegmentOracle, Workload

MAX_USERS = 16
PROVIDER = 1
SYM_LINKED = 0  # the provider export user modules call directly (link time)
SYM_GOT = 1  # the provider export they symbol_get()
STALE_WAITS = 8  # scheduled mode: schedule() calls the coordinator waits for stale users


@dataclass(frozen=True)
class SymbolsVars:
    sym: Symbols
    held: int  # per-CPU oracle: provider generation of the symbol_get reference held (0: none)
    linked: int  # per-CPU oracle: provider generation this CPU's module is linked to (0: none)
    refcount: str  # the refcount scheme (an option; kept here for `extra`)


def list_users(read: Callable[[int], int], b: SymModule) -> dict[int, tuple[int, int]]:
    """Oracle (read outside the machine): b's users as {user: (count, static)}; ValueError if corrupt."""
    out: dict[int, tuple[int, int]] = {}
    for p in list_nodes(read, b.uses, b.head):
        a = b.uses.index(p)
        if a in out:
            raise ValueError(f"{b.name}.modules_which_use_me lists user {a} twice")
        out[a] = (read(p + ks.COUNT), read(p + ks.STATIC))
    return out


def _is_linked(which: str, cpu: int) -> bool:
    return which == "all" or (which == "half" and cpu % 2 == 0)


def _use(ctx: Ctx, mod: SymModule, gen: int) -> bool:
    """Call into ``mod`` through a reference (or link) taken on generation ``gen``."""
    if ctx.read_once(mod.mod.freed) or ctx.read_once(mod.mod.generation) != gen:
        ctx.event("use_after_free", module=mod.num, generation=gen)
        return False
    return True


def _pair(ctx: Ctx, k: Kernel, p: dict[str, Any], me: SymModule, rng: random.Random, buggy: bool) -> None:
    prov = k.sym.module(PROVIDER)
    assert prov is not None
    sym = k.sym.symbol(PROVIDER, SYM_GOT)
    held = per_cpu_ptr(p["v"].held, ctx.cpu)
    ctx.count("pairs")
    value = symbol_get(ctx, k, sym, me)
    if not value:
        ctx.count("get_failures")
        return
    gen = ctx.read_once(prov.mod.generation)
    ctx.oracle_write(held, gen)
    for _ in range(p["hold_iterations"]):
        ctx.cpu_relax()  # the task may be preempted while it holds the reference
        if not _use(ctx, prov, gen):
            ctx.oracle_write(held, 0)  # freed under us: nothing left to put
            return
    if rng.random() < p["leak_rate"]:
        ctx.count("leaked_gets")
        ctx.oracle_write(held, 0)
        return
    by_addr = rng.random() < p["put_addr_rate"]
    if by_addr:
        symbol_put_addr(ctx, k, value, me)
    else:
        symbol_put(ctx, k, sym, me)
    ctx.oracle_write(held, 0)
    if buggy and rng.random() < p["unbalanced_rate"]:
        ctx.count("extra_puts")
        if by_addr:
            symbol_put_addr(ctx, k, value, me)
        else:
            symbol_put(ctx, k, sym, me)


def symbols_cpu(ctx: Ctx, p: dict[str, Any]) -> None:
    k: Kernel = p["k"]
    v: SymbolsVars = p["v"]
    prov, me = k.sym.module(PROVIDER), k.sym.module(2 + ctx.cpu)
    assert prov is not None and me is not None
    linked = _is_linked(p["linked"], ctx.cpu)
    buggy = p["unbalanced_cpus"] == 0 or ctx.cpu < p["unbalanced_cpus"]
    rng = random.Random(0x5EED01 + ctx.cpu)
    link_slot = per_cpu_ptr(v.linked, ctx.cpu)
    per_load = p["pairs_per_load"]
    loaded = per_load == 0  # loaded at boot, for the whole run
    link_gen = ctx.oracle_read(link_slot) if loaded else 0
    pairs = 0
    for _ in ctx.loop(p["iterations"]):
        try:
            if not loaded:
                if load_module(ctx, k, me, (k.sym.symbol(PROVIDER, SYM_LINKED),) if linked else ()) != 0:
                    ctx.count("load_failures")  # the provider is not there
                    continue
                ctx.count("loads")
                loaded, pairs = True, 0
                if linked:
                    link_gen = ctx.read_once(prov.mod.generation)
                    ctx.oracle_write(link_slot, link_gen)
            _pair(ctx, k, p, me, rng, buggy)
            if link_gen:  # later, a direct call into the provider
                ctx.cpu_relax()
                if not _use(ctx, prov, link_gen):
                    link_gen = 0
                    ctx.oracle_write(link_slot, 0)
            pairs += 1
            if per_load and pairs >= per_load:
                if sys_delete_module(ctx, k, me) == 0:
                    loaded, link_gen = False, 0
                    ctx.oracle_write(link_slot, 0)
                else:
                    ctx.count("unload_failures")
        except Oops:
            ctx.oracle_write(per_cpu_ptr(v.held, ctx.cpu), 0)  # the dead task touches nothing more
            if p["oops"] == "stop":
                ctx.oracle_write(link_slot, 0)
                return
        except RmmodAsleep:  # its rmmod sleeps until the end: this task does nothing more
            return
    if loaded and per_load:  # rmmod at the end too, so that every leftover use is reported
        try:
            sys_delete_module(ctx, k, me)
        except (Oops, RmmodAsleep):
            pass
        ctx.oracle_write(link_slot, 0)


def _stale(ctx: Ctx, v: SymbolsVars, gen: int) -> bool:
    for c in range(ctx.nr_cpus):
        if ctx.cpu_finished(c):
            continue
        if ctx.oracle_read(per_cpu_ptr(v.held, c)) == gen or ctx.oracle_read(per_cpu_ptr(v.linked, c)) == gen:
            return True
    return False


def symbols_coordinator(ctx: Ctx, p: dict[str, Any]) -> None:
    """rmmod provider, again and again; reload it once no CPU holds the old one."""
    k: Kernel = p["k"]
    prov = k.sym.module(PROVIDER)
    assert prov is not None
    free = ctx.mode == "free"
    bounded = p["iterations"] is not None
    try:
        for _ in ctx.loop(None if free else p["attempts"]):
            if free and bounded and all(ctx.cpu_finished(c) for c in range(ctx.nr_cpus)):
                break
            ctx.count("attempts")
            gen = ctx.read_once(prov.mod.generation)
            if sys_delete_module(ctx, k, prov) == 0:
                ctx.count("unloads")
                # every user of the old provider must notice it is gone before it comes back
                # (scheduled: a spin-wait is no fair wait under pct; leave it unloaded instead)
                waits = 0 if free else STALE_WAITS
                while _stale(ctx, p["v"], gen) and not ctx.stopped() and (free or waits):
                    waits -= 1
                    ctx.schedule()
                if not _stale(ctx, p["v"], gen):
                    load_module(ctx, k, prov)
            if free and p["attempt_interval_us"]:
                time.sleep(p["attempt_interval_us"] * 1e-6)
    except (Oops, RmmodAsleep):  # the task died, or sleeps in rmmod until the end
        return


def symbols_setup(ctx: Ctx, p: dict[str, Any]) -> None:
    """Boot: empty lists, the provider loaded; with --pairs-per-load 0 the users too."""
    k: Kernel = p["k"]
    v: SymbolsVars = p["v"]
    ks.boot_symbols(ctx, k)
    for c in range(ctx.nr_cpu_ids):
        ctx.write_once(per_cpu_ptr(v.held, c), 0)
        ctx.write_once(per_cpu_ptr(v.linked, c), 0)
    prov = k.sym.module(PROVIDER)
    assert prov is not None
    load_module(ctx, k, prov)
    if p["pairs_per_load"] == 0:
        for c, me in enumerate(k.sym.modules[1:]):
            linked = _is_linked(p["linked"], c)
            load_module(ctx, k, me, (k.sym.symbol(PROVIDER, SYM_LINKED),) if linked else ())
            if linked:
                ctx.write_once(per_cpu_ptr(v.linked, c), ctx.read_once(prov.mod.generation))


class SymbolGetPut(Workload):
    setup_fn = staticmethod(symbols_setup)

    def __init__(self) -> None:
        super().__init__(
            name="symbol-get-put",
            summary="seed 001: symbol_get/put caller tracking (module_use counts) while rmmod races",
            variants=dict(ks.VARIANTS),
            aliases=dict(ks.ALIASES),
            events=("use_after_free", *ks.EVENTS),
            counters=(
                "pairs",
                "get_failures",
                "extra_puts",
                "leaked_gets",
                "attempts",
                "unloads",
                "loads",
                "load_failures",
                "unload_failures",
                *ks.COUNTERS,
            ),
            denominators={"use_after_free": "pairs", "bug": "extra_puts", "leak": "leaked_gets"},
            options=(
                Option(
                    "unbalanced_rate",
                    float,
                    0.005,
                    "probability that a buggy module puts a symbol once more after its put",
                    0,
                    1,
                ),
                Option("unbalanced_cpus", int, 0, "CPUs running a buggy module (the first N; 0: all)", 0, MAX_USERS),
                Option("leak_rate", float, 0.0, "probability that a pair never puts (an unmatched get)", 0, 1),
                Option(
                    "linked",
                    str,
                    "none",
                    "user modules that also call the provider directly (a static use): none, half (even CPUs) or all",
                    choices=("none", "half", "all"),
                ),
                Option(
                    "pairs_per_load",
                    int,
                    16,
                    "pairs a user module makes between its insmod and rmmod (0: loaded at boot for the whole run)",
                    0,
                    10**9,
                ),
                Option("hold_iterations", int, 4, "uses of the symbol between symbol_get and symbol_put", 1, 10**6),
                Option("put_addr_rate", float, 0.25, "fraction of puts done with symbol_put_addr", 0, 1),
                Option("attempt_interval_us", float, 50.0, "pause between rmmod attempts (µs)", 0, 1e7),
                Option("attempts", int, 1, "rmmod attempts per scheduled execution (0: none)", 0, 100),
                Option(
                    "oops",
                    str,
                    "stop",
                    "after a BUG(): stop the CPU's program, or continue with the next pair",
                    choices=("stop", "continue"),
                ),
                Option(
                    "refcount",
                    str,
                    "percpu-incs-decs",
                    "the modules' refcount scheme (seed 000)",
                    choices=tuple(REFCOUNTS),
                ),
                Option(
                    "lock_links",
                    bool,
                    False,
                    "not the patch: take modlist_lock for the link-time and unload-time list changes too",
                ),
            ),
            explore_defaults={
                "iterations": 1,
                "hold_iterations": 1,
                "pairs_per_load": 0,
                "linked": "none",
                "unbalanced_rate": 1.0,
                "unbalanced_cpus": 1,
                "put_addr_rate": 0.0,
            },
        )

    def declare(self, layout: Layout, opts: dict[str, Any]) -> SymbolsVars:
        users = min(layout.nr_slots - 1, MAX_USERS)
        sym = ks.declare_symbols(layout, ["provider", *(f"user{c}" for c in range(users))])
        return SymbolsVars(
            sym,
            layout.percpu("symbols.held"),
            layout.percpu("symbols.linked"),
            opts.get("refcount") or "percpu-incs-decs",
        )

    def params(self, variant: str, v: SymbolsVars, opts: dict[str, Any], iterations: int | None) -> dict:
        k = Kernel(v.sym, ks.symbols_variant(variant), opts["refcount"], opts["lock_links"])
        return super().params(variant, v, opts, iterations) | {"k": k}

    def programs(
        self, variant: str, v: SymbolsVars, cpus: int, opts: dict[str, Any], iterations: int | None
    ) -> list[Program | None]:
        if cpus > len(v.sym.modules) - 1:
            raise UsageError(f"symbol-get-put runs at most {MAX_USERS} CPUs (one user module each)")
        p = self.params(variant, v, opts, iterations)
        coord = Program(symbols_coordinator, p) if opts["attempts"] else None
        return [Program(symbols_cpu, p)] * cpus + [coord]

    def extra(self, variant: str, v: SymbolsVars, seg: Segment) -> dict[str, Any]:
        """The provider at quiesce: refcount, who the kernel says uses it, list sanity."""
        prov = v.sym.module(PROVIDER)
        assert prov is not None
        w = seg.words
        out: dict[str, Any] = {
            "provider_loaded": bool(w[prov.mod.listed]),
            "provider_refcount": REFCOUNTS[v.refcount].storage_total(SegmentOracle(seg), prov.mod),
        }
        try:
            out["provider_users"] = {str(a): list(c) for a, c in list_users(w.__getitem__, prov).items()}
        except ValueError as e:
            out["provider_users"] = str(e)
        return out

    def check(
        self, variant: str, v: SymbolsVars, seg: Segment, cpus: int, opts: dict[str, Any], result: RunResult
    ) -> list[str]:
        """Nothing is exact by construction here: inconsistent lists and refcounts are what the
        variants are measured for (as events), not runtime bugs. `extra` reports the state."""
        return []


WORKLOAD = SymbolGetPut()
