"""Seed 003: module removal in 2002 (``modcount-2002``).

Worker CPUs use a driver again and again through the subsystem that
registered it: look it up, take (or fail to take) a reference on its module
the variant's way, call into the module, drop the reference. The coordinator
CPU runs ``sys_delete_module`` over and over; each time it succeeds (the
module was unused, its cleanup unregistered the driver, its memory was
freed) it waits until every use that was in flight when the memory went has
ended, then loads a new generation of the module, so the run goes on (the
memory of a generation is reused only once nobody can hold a stale pointer
to it, so every stale access lands on poison). Events:

- ``use_after_free``: a CPU read module code or data that module_unmap freed;
- ``uncounted_ref``: a CPU executed module code after the unloader had
  committed to removing it (the count it read did not include that CPU).

Free mode reports per variant: ``opens`` (uses attempted), ``uses`` (reached
the driver), ``enodev`` (no driver registered, or the module refused),
``oopses`` (a use that died on freed memory), ``attempts``, ``unloads``,
``busy``. The scheduled mode runs one use per CPU against one unload attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shmkernel.kernel import module_loader as ml
from shmkernel.kernel.bug import Oops
from shmkernel.kernel.kasan import begin_use, is_poison
from shmkernel.kernel.modcount2002 import ALIASES, CALLERS, Module2002, caller_variant, declare_module2002
from shmkernel.memory.layout import Layout, per_cpu_ptr
from shmkernel.memory.segment import Segment
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.machine import RunResult
from shmkernel.workload import Option, Workload


@dataclass(frozen=True)
class ModcountVars:
    mod: Module2002
    busy: int  # per-CPU oracle: 1 while this CPU is in the middle of a use
    opseq: int  # per-CPU oracle: uses this CPU finished


def modcount_cpu(ctx: Ctx, p: dict[str, Any]) -> None:
    """A worker CPU: use the driver, over and over."""
    caller = caller_variant(p["variant"])
    v: ModcountVars = p["v"]
    mod = v.mod
    busy, seq = per_cpu_ptr(v.busy, ctx.cpu), per_cpu_ptr(v.opseq, ctx.cpu)
    free = ctx.mode == "free"
    race_us = p["race_delay_us"] if free else 0.0
    for _ in ctx.loop(p["iterations"]):
        ctx.oracle_write(busy, 1)
        if free:
            ctx.smp_mb()  # the coordinator must see us busy before we look the driver up
        ctx.count("opens")
        begin_use()
        try:
            ctx.count("uses" if caller.use(ctx, mod, race_us) else "enodev")
        except Oops:
            ctx.count("oopses")  # the use_after_free was reported; this task is dead
        ctx.oracle_write(seq, ctx.oracle_read(seq) + 1)
        ctx.oracle_write(busy, 0)


def _wait_for_users(ctx: Ctx, v: ModcountVars) -> None:
    """Before the freed memory is reused: every use in flight at the free has ended."""
    snap = {
        c: ctx.oracle_read(per_cpu_ptr(v.opseq, c))
        for c in range(ctx.nr_cpus)
        if ctx.oracle_read(per_cpu_ptr(v.busy, c))
    }
    while snap and not ctx.stopped():
        snap = {
            c: s
            for c, s in snap.items()
            if ctx.oracle_read(per_cpu_ptr(v.busy, c)) and ctx.oracle_read(per_cpu_ptr(v.opseq, c)) == s
        }
        if snap:
            ctx.schedule()


def modcount_coordinator(ctx: Ctx, p: dict[str, Any]) -> None:
    """rmmod, and (free mode) insmod of a new generation after each removal."""
    caller = caller_variant(p["variant"])
    v: ModcountVars = p["v"]
    mod = v.mod
    free = ctx.mode == "free"
    interval = p["attempt_interval_us"] * 1e-6 if free else 0.0
    for _ in ctx.loop(None if free else p["attempts"]):
        ctx.count("attempts")
        if caller.unload(ctx, mod) == 0:
            ctx.count("unloads")
            if not free:
                break  # gone for the rest of this execution
            _wait_for_users(ctx, v)
            if ctx.stopped():
                break
            caller.load(ctx, mod)
        else:
            ctx.count("busy")
        if interval:
            time.sleep(interval)


def modcount_setup(ctx: Ctx, p: dict[str, Any]) -> None:
    """Boot: locks free (an aborted execution may have left one held), load generation 1."""
    v: ModcountVars = p["v"]
    m = v.mod
    caller = caller_variant(p["variant"])
    for lock in (m.mouse_sem, m.chrdevs_lock):
        ctx.write_once(lock, 0)
    for c in range(ctx.nr_cpu_ids):
        ctx.write_once(per_cpu_ptr(v.busy, c), 0)
        ctx.write_once(per_cpu_ptr(v.opseq, c), 0)
    ctx.write_once(m.registry, 0)
    ml.boot_module(ctx, caller.loader(m), m.mod)
    caller.load(ctx, m)


class Modcount2002(Workload):
    setup_fn = staticmethod(modcount_setup)
    cpu_fn = staticmethod(modcount_cpu)
    coordinator_fn = staticmethod(modcount_coordinator)

    def __init__(self) -> None:
        super().__init__(
            name="modcount-2002",
            summary="seed 003: 2.4 try_inc_mod_count callers vs rmmod, and the 2.6 try_module_get design",
            variants={
                "hisax-unlocked": "HiSax: owner read with no lock, try_inc_mod_count's result ignored (the bug)",
                "busmouse-locked": "busmouse: mouse_sem around lookup + try_inc_mod_count, result checked; "
                "unregister takes mouse_sem",
                "inc-inside-module": "no owner: MOD_INC_USE_COUNT inside the module's open (too late)",
                "try-module-get": "2.6.0: lookup + try_module_get preempt-off, state+refcount checked "
                "under stop_machine in module.c",
            },
            aliases=dict(ALIASES),
            events=("use_after_free", "uncounted_ref"),
            counters=("opens", "uses", "enodev", "oopses", "attempts", "unloads", "busy"),
            denominators={"use_after_free": "opens", "uncounted_ref": "opens"},
            options=(
                Option(
                    "race_delay_us",
                    float,
                    0.0,
                    "free mode: a user is preempted this long in its race "
                    "window (between reading ->owner and counting; inside open before "
                    "MOD_INC_USE_COUNT) (µs)",
                    0,
                    1e6,
                ),
                Option("attempt_interval_us", float, 50.0, "free mode: pause between rmmod attempts (µs)", 0, 1e7),
                Option("attempts", int, 1, "rmmod attempts per scheduled execution", 1, 100),
                Option(
                    "visited_flags",
                    bool,
                    False,
                    "model __MOD_{INC,DEC}_USE_COUNT's unlocked "
                    "mod->flags |= MOD_VISITED (it can overwrite MOD_DELETED)",
                ),
            ),
            explore_defaults={"iterations": 1},
        )
        assert set(self.variants) == set(CALLERS)

    def declare(self, layout: Layout, opts: dict[str, Any]) -> ModcountVars:
        return ModcountVars(
            mod=declare_module2002(layout, bool(opts.get("visited_flags"))),
            busy=layout.percpu("modcount.busy"),
            opseq=layout.percpu("modcount.opseq"),
        )

    def check(
        self, variant: str, v: ModcountVars, seg: Segment, cpus: int, opts: dict[str, Any], result: RunResult
    ) -> list[str]:
        w, m = seg.words, v.mod
        caller = caller_variant(variant)
        if is_poison(int(w[m.text])) or not caller.loaded(w, m):
            return []  # removed (and not reloaded, or its reload cut short by the end): nothing to count
        problems = []
        if any(int(w[per_cpu_ptr(v.busy, c)]) for c in range(cpus)):
            problems.append("a CPU is still marked busy at quiesce")
        rc = caller.refcount(w, m, seg.layout.nr_slots)
        if rc != 0:
            problems.append(f"use count of the loaded module is {rc} at quiesce, but no CPU holds a reference")
        if int(w[m.registry]) != int(w[m.mod.generation]):
            problems.append("the loaded module's driver is not registered")
        return problems


WORKLOAD = Modcount2002()
