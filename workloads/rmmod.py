"""Seed 000, second half: rmmod while references are taken, cloned and migrated.

Worker CPUs take a reference (``try_module_get``), hold it for
``--hold-iterations`` iterations and, halfway, clone it (``__module_get``,
legal only while holding one) and migrate the task carrying the clone to the
next CPU, which uses it and drops it there (``module_put``). Then they rest
``--idle-iterations`` and start again. With ``--topology chain`` (default)
CPU i gives to CPU i+1 and the last CPU only receives, as in the seed. The
coordinator repeatedly runs ``delete_module`` (kernel/module_loader.py: 2.6.33
with the per-CPU counts, v3.19+ with ``atomic``):

- ``--stop-machine``: the refcount check and the state change run under
  stop_machine (2.6.33's O_NONBLOCK path): nothing moves, the tally is exact.
  With ``atomic`` no kernel did this (upstream's try_stop_module is
  try_release_module_ref and never stops the machine): the emulator runs it
  under stop_machine anyway.
- without it: ``state = GOING``, ``synchronize_sched()``, then wait, with
  module_mutex released, until ``module_refcount()`` reads 0 and free:
  references held keep being cloned, so a per-CPU ``count`` tally can read 0
  while one is still held (a false zero), and the module is freed under its
  user. A scheduled rmmod tallies at most three times: after that it is still
  asleep in the wait when its program ends (module GOING), as the kernel's
  would be until the last put; it never gives up with an error.

Every access through a reference -- a use, and each ``__module_get`` and
``module_put`` -- is checked just before it: a reference to a freed module
(or a generation that is gone) is a ``use_after_free``. The module is then
reloaded (a new generation) once every stale reference is gone, and the run
goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shmkernel.kernel import module_loader as ml
from shmkernel.kernel.module import (
    Module,
    ModuleLocks,
    __module_get,
    declare_module,
    declare_module_locks,
    refcount_variant,
)
from shmkernel.memory.layout import Layout, per_cpu_ptr
from shmkernel.memory.segment import Segment
from shmkernel.runtime.ctx import Ctx, StillAsleep
from shmkernel.runtime.machine import RunResult
from shmkernel.workload import Option, SegmentOracle, Workload

SCHEDULED_TALLIES = 3  # a scheduled rmmod tallies this often, then sleeps past the end of the execution


@dataclass(frozen=True)
class RmmodVars:
    mod: Module
    locks: ModuleLocks
    mailbox: int  # per-CPU: generation of a migrated reference waiting here (0: none)
    held: int  # per-CPU bookkeeping: generation of the reference this CPU holds (0: none)


def _loader(p: dict[str, Any]) -> ml.Loader:
    ref = refcount_variant(p["variant"])
    return ml.Loader(ml.refcount_era(ref), p["v"].locks, ref)


def _use(ctx: Ctx, mod: Module, gen: int) -> bool:
    """Access the module through a reference of generation ``gen``."""
    if ctx.read_once(mod.freed) or ctx.read_once(mod.generation) != gen:
        ctx.event("use_after_free", generation=gen)
        return False
    return True


def rmmod_cpu(ctx: Ctx, p: dict[str, Any]) -> None:
    variant = refcount_variant(p["variant"])
    v: RmmodVars = p["v"]
    mod = v.mod
    n = ctx.nr_cpus
    me = per_cpu_ptr(v.mailbox, ctx.cpu)
    held_slot = per_cpu_ptr(v.held, ctx.cpu)
    gives = p["topology"] == "ring" or ctx.cpu + 1 < n or n == 1
    nxt = per_cpu_ptr(v.mailbox, (ctx.cpu + 1) % n)
    hold, idle = p["hold_iterations"], p["idle_iterations"]
    clone_at = max(1, hold // 2)
    held, uses, rest = 0, 0, 0
    for _ in ctx.loop(p["iterations"]):
        tok = ctx.read_once(me)
        if tok:  # a task holding a (cloned) reference migrated to this CPU
            ctx.smp_mb()
            if _use(ctx, mod, tok):
                variant.module_put(ctx, mod)
            ctx.write_once(me, 0)
        if not gives:
            continue
        if not held:
            if rest:
                rest -= 1
            elif variant.try_module_get(ctx, mod):
                held, uses = ctx.read_once(mod.generation), 0
                ctx.oracle_write(held_slot, held)
            continue
        uses += 1
        clone = uses == clone_at and ctx.read_once(nxt) == 0
        # this iteration's access: the use, or the get or put it makes through the reference
        if not _use(ctx, mod, held):
            held = 0  # the module was freed under us: nothing left to put
            ctx.oracle_write(held_slot, 0)
            continue
        if clone:
            __module_get(ctx, variant, mod)  # legal: we hold a reference
            ctx.smp_mb()
            ctx.write_once(nxt, held)  # the task carrying the clone migrates
            ctx.count("migrations")
            if uses >= hold and not _use(ctx, mod, held):  # the put below is another access
                held = 0
                ctx.oracle_write(held_slot, 0)
                continue
        if uses >= hold:
            variant.module_put(ctx, mod)
            held, rest = 0, idle
            ctx.oracle_write(held_slot, 0)
    if held and _use(ctx, mod, held):  # leave no reference behind at quiesce
        variant.module_put(ctx, mod)
    ctx.oracle_write(held_slot, 0)


def _stale_references(ctx: Ctx, v: RmmodVars, gen: int) -> bool:
    for c in range(ctx.nr_cpus):
        if ctx.oracle_read(per_cpu_ptr(v.held, c)) == gen or ctx.oracle_read(per_cpu_ptr(v.mailbox, c)) == gen:
            return True
    return False


def rmmod_coordinator(ctx: Ctx, p: dict[str, Any]) -> None:
    v: RmmodVars = p["v"]
    loader = _loader(p)
    free = ctx.mode == "free"
    delay = p["tally_delay_us"] if free else 0.0
    for _ in ctx.loop(None if free else p["attempts"]):
        ctx.count("attempts")
        gen = ctx.read_once(v.mod.generation)
        try:
            ret = ml.delete_module(
                ctx,
                loader,
                v.mod,
                nonblock=p["stop_machine"],
                force_stop_machine=p["stop_machine"],
                slot_delay_us=delay,
                max_waits=None if free else SCHEDULED_TALLIES - 1,
            )
        except StillAsleep:
            return  # still waiting (a grace period, the count to read 0) when the program ends
        if ret == 0:
            ctx.count("unloads")
            if not free:
                break  # a scheduled program ends with the unload: the users' next access tells
            while _stale_references(ctx, v, gen):
                if ctx.stopped():
                    return  # not reloaded under a stale reference
                ctx.schedule()  # every user of the old module must notice it is gone
            ml.load_module(ctx, loader, v.mod)
        if free and p["attempt_interval_us"]:
            time.sleep(p["attempt_interval_us"] * 1e-6)


def rmmod_setup(ctx: Ctx, p: dict[str, Any]) -> None:
    v: RmmodVars = p["v"]
    for c in range(ctx.nr_cpu_ids):
        ctx.write_once(per_cpu_ptr(v.mailbox, c), 0)
        ctx.write_once(per_cpu_ptr(v.held, c), 0)
    loader = _loader(p)
    ml.boot_module(ctx, loader, v.mod)  # (an aborted execution may have left module_mutex held)
    ml.load_module(ctx, loader, v.mod)


class Rmmod(Workload):
    # each reload re-forms the module at the same addresses: a free CPU's weak read
    # cache cannot tell the old generation's per-CPU counts from stale memory (the
    # kernel would use new memory), so counts would drift; scheduled weak is exact
    free_weak_refused = (
        "rmmod reloads the module at the same addresses, which the free weak model's "
        "read cache takes for stale memory; use explore --memory-model weak"
    )
    setup_fn = staticmethod(rmmod_setup)
    cpu_fn = staticmethod(rmmod_cpu)
    coordinator_fn = staticmethod(rmmod_coordinator)

    def __init__(self) -> None:
        super().__init__(
            name="rmmod",
            summary="seed 000: delete_module with and without stop_machine while references migrate",
            variants={
                "percpu-count": "before the seed: one per-CPU count (the bug)",
                "percpu-incs-decs": "the seed's fix",
                "percpu-incs-decs-nobarrier": "the fix without its barriers",
                "atomic": "upstream v3.19-v6.14: atomic refcnt, try_release_module_ref (never under "
                "stop_machine in any kernel: --stop-machine true with it is the emulator's)",
            },
            aliases={"buggy": "percpu-count", "fixed": "percpu-incs-decs"},
            events=("use_after_free",),
            counters=("attempts", "unloads", "migrations"),
            denominators={"use_after_free": "attempts"},
            options=(
                Option(
                    "stop_machine",
                    bool,
                    False,
                    "check the refcount under stop_machine (2.6.33's O_NONBLOCK "
                    "rmmod; with --variant atomic a configuration no kernel had)",
                ),
                Option(
                    "tally_delay_us",
                    float,
                    100.0,
                    "the tallier is preempted this long between per-CPU slots (µs; >= 50 sleeps, below busy-waits)",
                    0,
                    1e6,
                ),
                Option("possible_cpus", int, None, "per-CPU slots the tally walks (default cpus+1)", 2, 8192),
                Option("hold_iterations", int, 2000, "iterations a CPU holds its own reference", 1, 10**9),
                Option("idle_iterations", int, 20, "iterations a CPU rests between references", 0, 10**9),
                Option("attempt_interval_us", float, 100.0, "pause between rmmod attempts (µs)", 0, 1e7),
                Option("topology", str, "chain", "chain (CPU i -> i+1) or ring", choices=("chain", "ring")),
                Option("attempts", int, 1, "rmmod attempts per scheduled execution", 1, 100),
            ),
            explore_defaults={"iterations": 3, "hold_iterations": 2, "idle_iterations": 0},
        )

    def possible_cpus(self, cpus: int, opts: dict[str, Any]) -> int | None:
        return opts.get("possible_cpus")

    def declare(self, layout: Layout, opts: dict[str, Any]) -> RmmodVars:
        return RmmodVars(
            mod=declare_module(layout),
            locks=declare_module_locks(layout),
            mailbox=layout.percpu("rmmod.mailbox"),
            held=layout.percpu("rmmod.held"),
        )

    def check(
        self, variant: str, v: RmmodVars, seg: Segment, cpus: int, opts: dict[str, Any], result: RunResult
    ) -> list[str]:
        if seg.words[v.mod.freed]:
            return []  # stopped between free and reload: nothing left to count
        gen = seg.words[v.mod.generation]
        held = int(sum(1 for x in seg.percpu("rmmod.mailbox")[:cpus] if x == gen))
        held += int(sum(1 for x in seg.percpu("rmmod.held")[:cpus] if x == gen))
        total = refcount_variant(variant).storage_total(SegmentOracle(seg), v.mod)  # type: ignore[arg-type]
        if total != held:
            return [f"true refcount at quiesce is {held} but the storage sums to {total}"]
        return []


WORKLOAD = Rmmod()
