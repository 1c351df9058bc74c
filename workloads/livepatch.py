"""Seed 002: livepatch against coming and going modules (``livepatch``).

Patches P1 and P2 patch a() (vmlinux) and b() (module M) and are enabled.
Each *round* is one scenario of the seed, on two CPUs:

- ``coming``: M is not loaded. CPU0 loads it (``load_module``: UNFORMED,
  ``complete_formation`` -> COMING, the COMING notifier, LIVE) while CPU1
  registers and enables P3. At quiesce the tops of the func_stacks of a() and
  b() must come from the same patch; ``a3`` with ``b2`` (the seed's STATE 2) is
  a ``stack_order`` event.
- ``going``: M is LIVE. CPU0 deletes it (GOING; M's own code keeps calling b(),
  which calls a(), ``--calls`` times until ``mod->exit()``; the GOING notifier;
  ``free_module``) while CPU1 registers and enables P3. b() running another
  version than the a() it calls (unpatched b() calling a patched a()) is a
  ``semantic_mismatch``; at quiesce, a registered patch still pointing at the
  freed M, or b()'s func_stack not empty, is a ``use_after_free``.

``--race coming|going|both`` picks the scenarios; with ``both`` an iteration is
a coming round then a going round.

Rounds are driven by the coordinator CPU: before every round but the first
(which ``setup`` prepares) it writes the round's boot state outside the
emulated machine (``prepare``: P1 and P2 enabled, P3 fresh, M absent or LIVE),
releases the two CPUs (a completion each: ``harness.go``), waits for both to
finish (``harness.done``), then checks the round at quiesce and counts it. So
free mode loops rounds and measures rates per round; a scheduled execution is
``--iterations`` iterations (1 by default for exploration; with ``--race
both`` the explored space is the product of both scenarios', so explore them
one at a time, e.g. ``--race going --scheduler exhaustive``).

Free mode only: each CPU starts its part of a round after a random
0..``--jitter-us`` µs, so the start offsets sweep across the race windows, and
``--window-us`` is the time the kernel spends between a notifier and the
module's next state change (parse_args/mod_sysfs_setup before the COMING
notifier; M's code running before mod->exit(); async_synchronize_full and
mod_sysfs_teardown before free_module). With ``--window-us 0`` the GOING race
window is a few Python operations wide and practically never hit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.kernel.list import NEXT, PREV
from shmkernel.kernel.livepatch import (
    VMLINUX_ADDR,
    Livepatch,
    declare_livepatch,
    delete_module,
    klp_enable_patch,
    klp_register_patch,
    klp_registered,
    klp_universe,
    klp_variant,
    load_module,
)
from shmkernel.kernel.livepatch_patch import KlpState, klp_call, klp_func_stack
from shmkernel.kernel.module import ModuleState
from shmkernel.memory.layout import Layout, per_cpu_ptr
from shmkernel.memory.segment import Segment
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.machine import Program, RunResult
from shmkernel.workload import Option, SegmentOracle, Workload

COMING, GOING = "coming", "going"
SCENARIOS = {"coming": (COMING,), "going": (GOING,), "both": (COMING, GOING)}
NEW_PATCH = 3  # P3 is the patch CPU1 registers and enables


@dataclass(frozen=True)
class LivepatchVars:
    lp: Livepatch
    go: int  # per-CPU completion: the coordinator released this CPU for the next round
    done: int  # per-CPU completion: this CPU finished its part of the round


# ---------------------------------------------------------------------------------------------
# The round's boot state: written outside the emulated machine at set-up; between two
# rounds of a scheduled run, the coordinator's own stores (`prepare`'s ``mid_run``).
# ---------------------------------------------------------------------------------------------
def prepare(ctx: Ctx, variant_name: str, lp: Livepatch, scenario: str, mid_run: bool = False) -> None:
    """P1, P2 registered and enabled, P3 not registered; ``coming``: M not
    loaded (b() has no klp_ops yet); ``going``: M LIVE with P1, P2 applied.

    ``mid_run`` (a scheduled run's next round): the coordinator's own stores, which
    the memory model sees as writes of its CPU (ordered before the CPUs' next round by
    the ``go`` completions, so the graph searches explore them as any other write),
    where a write behind the model's back would be noticed only lazily."""
    w = ctx.write_once if mid_run and ctx.mode != "free" else ctx.oracle_write
    variant = klp_variant(variant_name)
    w(lp.module_mutex, 0)
    w(lp.klp_mutex, 0)
    loaded = scenario == GOING
    gen = ctx.oracle_read(lp.mod.generation) + 1  # a new address for every round's M
    w(lp.mod.generation, gen)
    w(lp.mod.state, ModuleState.LIVE if loaded else ModuleState.UNFORMED)
    w(lp.mod.freed, 0 if loaded else 1)
    w(lp.mod.klp_alive, int(loaded and variant.klp_alive))
    old_nums = list(range(1, NEW_PATCH))
    for patch in lp.patches:
        old = patch.num in old_nums
        w(patch.state, KlpState.ENABLED if old else KlpState.DISABLED)
        for obj in patch.objs:
            on = old and (not obj.is_module or loaded)
            w(obj.state, KlpState.ENABLED if on else KlpState.DISABLED)
            if obj.is_module:
                w(obj.mod, gen if on else 0)
            for func in obj.funcs:
                w(func.state, KlpState.ENABLED if on else KlpState.DISABLED)
                w(func.old_addr, (gen if obj.is_module else VMLINUX_ADDR) if on else 0)
    # klp_patches: P1 <-> P2 (list_add_tail in registration order)
    nodes = [lp.klp_patches.base, *(lp.patch(n).node for n in old_nums)]
    for i, node in enumerate(nodes):
        w(node + NEXT, nodes[(i + 1) % len(nodes)])
        w(node + PREV, nodes[i - 1])
    for n in range(NEW_PATCH, len(lp.patches) + 1):
        w(lp.patch(n).node + NEXT, 0)
        w(lp.patch(n).node + PREV, 0)
    # klp_ops: a() at its vmlinux address, b() at M's (when loaded), P1 and P2 on each
    stacks = [(VMLINUX_ADDR, old_nums)] + ([(gen, old_nums)] if loaded else [])
    for i, ops in enumerate(lp.ops):
        addr, stack = stacks[i] if i < len(stacks) else (0, [])
        w(ops.addr, addr)
        for j in range(len(lp.patches)):
            w(ops.stack + j, stack[j] if j < len(stack) else 0)
        w(ops.depth, len(stack))
    w(lp.klp_universe, NEW_PATCH - 1)


# ---------------------------------------------------------------------------------------------
# Round synchronisation (the harness, not kernel code).
# ---------------------------------------------------------------------------------------------
def _wait(ctx: Ctx, completion: int, for_cpu: int | None = None) -> bool:
    """wait_for_completion: a held mutex the other side unlocks. Scheduled: a
    blocking step. Free: a trylock loop that gives up once the run is stopped
    (and, waiting for ``for_cpu``, that CPU's program ended)."""
    if ctx.mode != "free":
        ctx.mutex_lock(completion)
        return True
    while not ctx.mutex_trylock(completion):
        if ctx.stopped() and (for_cpu is None or ctx.cpu_finished(for_cpu)):
            return ctx.mutex_trylock(completion)
        if for_cpu is None:
            ctx.cpu_relax()
        else:
            ctx.schedule()
    return True


def _jitter(ctx: Ctx, rng: random.Random | None, us: float) -> None:
    if rng is not None and us > 0:
        ctx.delay_us(rng.uniform(0.0, us))


def module_code(ctx: Ctx, lp: Livepatch, addr: int, calls: int, window_us: float = 0.0) -> None:
    """M's own code (M at ``addr``), still running while M is GOING (for
    ``window_us`` in free mode, ``calls`` calls spread over it): b() calls a().
    One call chain runs in one universe (see shmkernel.kernel.livepatch)."""
    for _ in range(calls):
        if window_us:
            ctx.delay_us(window_us / calls)
        ctx.count("b_calls")
        universe = klp_universe(ctx, lp)
        b = klp_call(ctx, lp.ops, addr, universe)  # b() runs this version ...
        a = klp_call(ctx, lp.ops, VMLINUX_ADDR, universe)  # ... and calls this a()
        if a != b:
            ctx.event("semantic_mismatch", b=b, a=a)
            return


def _cpu(ctx: Ctx, p: dict[str, Any], run_round) -> None:  # type: ignore[no-untyped-def]
    v: LivepatchVars = p["v"]
    scen = p["scenarios"]
    rng = random.Random() if ctx.mode == "free" else None
    for r in ctx.loop(p["rounds"]):
        if r > 0 and not _wait(ctx, per_cpu_ptr(v.go, ctx.cpu)):
            break
        _jitter(ctx, rng, p["jitter_us"])
        run_round(ctx, scen[r % len(scen)])
        ctx.mutex_unlock(per_cpu_ptr(v.done, ctx.cpu))


def loader_cpu(ctx: Ctx, p: dict[str, Any]) -> None:
    """CPU0: load M (coming) or delete M (going)."""
    variant = klp_variant(p["variant"])
    lp: Livepatch = p["v"].lp
    window = p["window_us"] if ctx.mode == "free" else 0.0

    def run_round(ctx: Ctx, scenario: str) -> None:
        if scenario == COMING:
            load_module(ctx, variant, lp, window)
        else:
            addr = ctx.oracle_read(lp.mod.generation)  # M's code knows where it is
            delete_module(ctx, variant, lp, lambda c: module_code(c, lp, addr, p["calls"], window), window)

    _cpu(ctx, p, run_round)


def patcher_cpu(ctx: Ctx, p: dict[str, Any]) -> None:
    """CPU1: klp_register_patch(P3); klp_enable_patch(P3)."""
    variant = klp_variant(p["variant"])
    lp: Livepatch = p["v"].lp
    patch = lp.patch(NEW_PATCH)

    def run_round(ctx: Ctx, scenario: str) -> None:
        if klp_register_patch(ctx, variant, lp, patch) == 0:
            klp_enable_patch(ctx, lp, patch)

    _cpu(ctx, p, run_round)


def check_round(ctx: Ctx, lp: Livepatch, scenario: str) -> None:
    """The round's invariants at quiesce (read outside the machine)."""
    addr = ctx.oracle_read(lp.mod.generation)  # this round's M
    if scenario == COMING:
        ctx.count("coming_rounds")
        a, b = klp_func_stack(ctx, lp.ops, VMLINUX_ADDR), klp_func_stack(ctx, lp.ops, addr)
        top_a, top_b = (a[-1] if a else 0), (b[-1] if b else 0)
        if top_a != top_b:  # a() and b() run different patches
            ctx.event("stack_order", a=top_a, b=top_b, b_stack="".join(map(str, b)))
        return
    ctx.count("going_rounds")
    if not ctx.oracle_read(lp.mod.freed):
        return
    dangling = [
        n for n in klp_registered(ctx, lp) if any(o.is_module and ctx.oracle_read(o.mod) for o in lp.patch(n).objs)
    ]
    left = klp_func_stack(ctx, lp.ops, addr)
    if dangling or left:
        ctx.event("use_after_free", patch=dangling[0] if dangling else 0, b_stack="".join(map(str, left)))


def coordinator(ctx: Ctx, p: dict[str, Any]) -> None:
    """Drive the rounds: prepare, release both CPUs, wait, check."""
    v: LivepatchVars = p["v"]
    scen = p["scenarios"]
    for r in ctx.loop(p["rounds"]):
        scenario = scen[r % len(scen)]
        if r > 0:
            prepare(ctx, p["variant"], v.lp, scenario, mid_run=True)
            for c in (0, 1):
                ctx.mutex_unlock(per_cpu_ptr(v.go, c))
        if not (_wait(ctx, v.done, 0) and _wait(ctx, per_cpu_ptr(v.done, 1), 1)):
            break
        check_round(ctx, v.lp, scenario)


def setup(ctx: Ctx, p: dict[str, Any]) -> None:
    v: LivepatchVars = p["v"]
    ctx.write_once(v.lp.mod.generation, 0)  # every run starts from the same addresses
    prepare(ctx, p["variant"], v.lp, p["scenarios"][0])
    for c in range(ctx.nr_cpu_ids):  # every completion starts not done
        ctx.write_once(per_cpu_ptr(v.go, c), 1)
        ctx.write_once(per_cpu_ptr(v.done, c), 1)


class LivepatchWorkload(Workload):
    setup_fn = staticmethod(setup)

    def __init__(self) -> None:
        super().__init__(
            name="livepatch",
            summary="seed 002: livepatch vs coming and going modules (klp_alive)",
            variants={
                "no-klp-alive": "before the seed: new patches use any module find_module returns",
                "klp-alive": "the seed's fix: new patches apply to a module only while mod->klp_alive",
                "klp-alive-ignore-going": "klp_alive, and GOING modules skipped too (the alternative the seed rejects)",
            },
            aliases={"buggy": "no-klp-alive", "fixed": "klp-alive"},
            events=("stack_order", "semantic_mismatch", "use_after_free"),
            counters=("coming_rounds", "going_rounds", "b_calls"),
            denominators={
                "stack_order": "coming_rounds",
                "semantic_mismatch": "going_rounds",
                "use_after_free": "going_rounds",
            },
            options=(
                Option(
                    "race",
                    str,
                    "both",
                    "scenario: coming (load M while P3 is enabled), going "
                    "(delete M while P3 is enabled) or both (alternating)",
                    choices=tuple(SCENARIOS),
                ),
                Option(
                    "calls",
                    int,
                    2,
                    "calls of b() (calling a()) by M's code while it is GOING, before mod->exit()",
                    0,
                    1000,
                ),
                Option(
                    "window_us",
                    float,
                    20.0,
                    "free mode: time the kernel spends between the "
                    "notifiers and the module's state changes (parse_args and mod_sysfs_setup before "
                    "the COMING notifier; M's code running before mod->exit(); mod_sysfs_teardown "
                    "before free_module), µs",
                    0,
                    1e6,
                ),
                Option(
                    "jitter_us",
                    float,
                    80.0,
                    "free mode: each CPU starts its part of a round after a random 0..J µs",
                    0,
                    1e6,
                ),
            ),
            explore_defaults={"iterations": 1, "calls": 1},
        )

    def declare(self, layout: Layout, opts: dict[str, Any]) -> LivepatchVars:
        return LivepatchVars(
            lp=declare_livepatch(layout), go=layout.percpu("harness.go"), done=layout.percpu("harness.done")
        )

    def params(self, variant: str, v: LivepatchVars, opts: dict[str, Any], iterations: int | None) -> dict:
        scen = SCENARIOS[opts["race"]]
        rounds = None if iterations is None else iterations * len(scen)
        return {**opts, "variant": variant, "v": v, "scenarios": scen, "rounds": rounds}

    def programs(
        self, variant: str, v: LivepatchVars, cpus: int, opts: dict[str, Any], iterations: int | None
    ) -> list[Program | None]:
        if cpus < 2:
            raise UsageError("livepatch needs --cpus >= 2 (CPU0 loads/deletes M, CPU1 patches)")
        p = self.params(variant, v, opts, iterations)
        return [Program(loader_cpu, p), Program(patcher_cpu, p)] + [None] * (cpus - 2) + [Program(coordinator, p)]

    def check(
        self, variant: str, v: LivepatchVars, seg: Segment, cpus: int, opts: dict[str, Any], result: RunResult
    ) -> list[str]:
        o = SegmentOracle(seg)
        lp = v.lp
        problems = []
        for name, word in (("klp_mutex", lp.klp_mutex), ("module_mutex", lp.module_mutex)):
            if seg.words[word]:
                problems.append(f"{name} still held at quiesce")
        enabled = [p.num for p in lp.patches if seg.words[p.state] == KlpState.ENABLED]
        stack_a = klp_func_stack(o, lp.ops, VMLINUX_ADDR)
        if stack_a != enabled:
            problems.append(f"a()'s func_stack is {stack_a} but the enabled patches are {enabled}")
        if seg.words[lp.klp_universe] != max(enabled, default=0):
            problems.append(
                f"klp_universe is {seg.words[lp.klp_universe]}, newest enabled patch {max(enabled, default=0)}"
            )
        return problems

    def extra(self, variant: str, v: LivepatchVars, seg: Segment) -> dict[str, Any]:
        o = SegmentOracle(seg)
        addrs = {"a": VMLINUX_ADDR, "b": seg.words[v.lp.mod.generation]}
        return {"func_stacks": {n: klp_func_stack(o, v.lp.ops, a) for n, a in addrs.items()}}


WORKLOAD = LivepatchWorkload()
