"""Seed 000: the false-zero module refcount tally (``refcount``).

A base reference is held by the coordinator for the whole run, so the true
count never drops below 1. Each worker CPU takes a reference on its own CPU
(``try_module_get``), hands the task holding it to the next CPU through that
CPU's mailbox (the migration the seed describes), and the receiving CPU drops
it there (``module_put``). The coordinator tallies ``module_refcount`` back to
back; a tally below 1 is a ``false_zero``. ``--tally-delay-us`` stretches the
tally between per-CPU slots (the seed: "module_refcount can be preempted");
``--possible-cpus`` makes it walk many possible-CPU slots ("we might be
tallying up 4096+ CPUs"). ``--topology chain`` (default) makes the flow one
way, as in the seed's diagram (taken on CPU0, dropped on CPU1): CPU i hands to
CPU i+1 and the last CPU only drops; ``ring`` closes the loop, which balances
every slot and makes the race far rarer. ``--handoff scheduler`` gives the migration the full
barrier a real context switch has; ``relaxed`` hands over with a plain flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shmkernel.kernel import module_loader as ml
from shmkernel.kernel.module import Module, ModuleLocks, declare_module, declare_module_locks, refcount_variant
from shmkernel.memory.layout import Layout, per_cpu_ptr
from shmkernel.memory.segment import Segment
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.machine import RunResult
from shmkernel.workload import Option, SegmentOracle, Workload

HIST_HALF = 8  # tally error histogram covers -8..+8 (clamped)


@dataclass(frozen=True)
class RefcountVars:
    mod: Module
    locks: ModuleLocks
    mailbox: int  # per-CPU: 1 while a task holding a reference waits to run there
    hist: int  # table of 2*HIST_HALF+1 buckets: tally - true minimum


def refcount_cpu(ctx: Ctx, p: dict[str, Any]) -> None:
    """A worker CPU: receive and drop migrated references, take and hand on new ones."""
    variant = refcount_variant(p["variant"])
    mod, mbox = p["v"].mod, p["v"].mailbox
    me = per_cpu_ptr(mbox, ctx.cpu)
    n = ctx.nr_cpus
    gives = p["topology"] == "ring" or ctx.cpu + 1 < n or n == 1
    receives = p["topology"] == "ring" or ctx.cpu > 0 or n == 1
    nxt = per_cpu_ptr(mbox, (ctx.cpu + 1) % n)
    full_barrier = p["handoff"] == "scheduler"
    try_module_get, module_put = variant.try_module_get, variant.module_put
    handoffs = 0
    for _ in ctx.loop(p["iterations"]):
        if receives and ctx.read_once(me):  # a task holding a reference migrated here
            if full_barrier:
                ctx.smp_mb()  # the context switch's barrier
            module_put(ctx, mod)
            ctx.write_once(me, 0)
        if gives and ctx.read_once(nxt) == 0 and try_module_get(ctx, mod):
            if full_barrier:
                ctx.smp_mb()
            ctx.write_once(nxt, 1)  # migrate the task to the next CPU
            handoffs += 1
    ctx.count("handoffs", handoffs)


def refcount_tallier(ctx: Ctx, p: dict[str, Any]) -> None:
    """The coordinator: module_refcount back to back; below 1 is a false zero."""
    variant = refcount_variant(p["variant"])
    mod, hist = p["v"].mod, p["v"].hist
    delay = p["tally_delay_us"] if ctx.mode == "free" else 0.0
    module_refcount = variant.module_refcount
    bounded = p["iterations"] is not None
    tallies = p["tallies"] if ctx.mode != "free" else None
    workers = range(ctx.nr_cpus)
    errors = [0] * (2 * HIST_HALF + 1)  # kept locally, written once at the end (instrument, not state)
    n = 0
    for n, _ in enumerate(ctx.loop(tallies), start=1):
        t = module_refcount(ctx, mod, delay)
        if t < 1:
            ctx.event("false_zero", tally=t)
        errors[min(max(t - 1, -HIST_HALF), HIST_HALF) + HIST_HALF] += 1
        if bounded and tallies is None and n % 64 == 0 and all(ctx.cpu_finished(c) for c in workers):
            break
    ctx.count("tallies", n)
    for b, k in enumerate(errors):
        if k:
            ctx.oracle_write(hist + b, ctx.oracle_read(hist + b) + k)


def refcount_setup(ctx: Ctx, p: dict[str, Any]) -> None:
    """Boot: load the module, take the base reference, empty the mailboxes."""
    variant = refcount_variant(p["variant"])
    v: RefcountVars = p["v"]
    for c in range(ctx.nr_cpu_ids):
        ctx.write_once(per_cpu_ptr(v.mailbox, c), 0)
    for b in range(2 * HIST_HALF + 1):
        ctx.write_once(v.hist + b, 0)
    loader = ml.Loader(ml.refcount_era(variant), v.locks, variant)
    ml.boot_module(ctx, loader, v.mod)  # every execution boots the same state (explorers compare states)
    ml.load_module(ctx, loader, v.mod)
    variant.try_module_get(ctx, v.mod)  # the base reference, held all run


class Refcount(Workload):
    setup_fn = staticmethod(refcount_setup)
    cpu_fn = staticmethod(refcount_cpu)
    coordinator_fn = staticmethod(refcount_tallier)

    def __init__(self) -> None:
        super().__init__(
            name="refcount",
            summary="seed 000: false-zero module_refcount tallies while references migrate",
            variants={
                "percpu-count": "before the seed: one per-CPU count (the bug)",
                "percpu-incs-decs": "the seed's fix: per-CPU incs/decs, smp_wmb in module_put, smp_rmb in the tally",
                "percpu-incs-decs-nobarrier": "the fix without its barriers (wrong under a weak memory model)",
                "atomic": "upstream today: atomic refcnt with MODULE_REF_BASE",
            },
            aliases={"buggy": "percpu-count", "fixed": "percpu-incs-decs"},
            events=("false_zero",),
            counters=("tallies", "handoffs"),
            denominators={"false_zero": "tallies"},
            options=(
                Option("tally_delay_us", float, 0.0, "busy-wait between per-CPU slots of a tally (µs)", 0, 1e6),
                Option("possible_cpus", int, None, "per-CPU slots the tally walks (default cpus+1)", 2, 8192),
                Option(
                    "handoff",
                    str,
                    "scheduler",
                    "migration barrier: scheduler (smp_mb) or relaxed",
                    choices=("scheduler", "relaxed"),
                ),
                Option(
                    "topology",
                    str,
                    "chain",
                    "who hands references to whom: chain (CPU i -> i+1, "
                    "the last only drops) or ring (every CPU gives and drops)",
                    choices=("chain", "ring"),
                ),
                Option("tallies", int, 1, "tallies per scheduled execution", 1, 1000),
            ),
            explore_defaults={"iterations": 1},
        )

    def possible_cpus(self, cpus: int, opts: dict[str, Any]) -> int | None:
        return opts.get("possible_cpus")

    def declare(self, layout: Layout, opts: dict[str, Any]) -> RefcountVars:
        return RefcountVars(
            mod=declare_module(layout),
            locks=declare_module_locks(layout),
            mailbox=layout.percpu("refcount.mailbox"),
            hist=layout.table("refcount.tally_hist", 2 * HIST_HALF + 1),
        )

    def check(
        self, variant: str, v: RefcountVars, seg: Segment, cpus: int, opts: dict[str, Any], result: RunResult
    ) -> list[str]:
        ctx_like = SegmentOracle(seg)
        held = 1 + int(seg.percpu("refcount.mailbox").sum())
        total = refcount_variant(variant).storage_total(ctx_like, v.mod)  # type: ignore[arg-type]
        if total != held:
            return [f"true refcount at quiesce is {held} but the per-CPU storage sums to {total}"]
        return []

    def extra(self, variant: str, v: RefcountVars, seg: Segment) -> dict[str, Any]:
        h = seg.table("refcount.tally_hist")
        return {"tally_error_hist": {str(b - HIST_HALF): int(h[b]) for b in range(len(h)) if h[b]}}


WORKLOAD = Refcount()
