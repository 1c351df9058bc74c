"""Run a workload free-running on a Machine and turn the counts into a result.

The result is the JSON record of DESIGN.md: ``workload, variant, cpus,
memory_model, seconds, counters{}, events{}, rates{NAME: {per_million, ci95,
denominator}}, host{cores, pinned}``. After every run the workload's exact
check at quiesce runs; a mismatch raises `RunError` (a runtime bug, loudly).
"""

from __future__ import annotations

import functools
import os
import platform
import time
from typing import Any

from shmkernel.errors import RunError, UsageError
from shmkernel.measure.stats import rate
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.machine import Machine
from shmkernel.workload import Workload


def open_machine(wl: Workload, cpus: int, opts: dict[str, Any], pin: bool = True,
                 extensions: tuple[object, ...] = (), cores: list[int] | None = None) -> Machine:
    """A Machine laid out for ``wl`` (not started; use it as a context manager)."""
    holder: dict[str, Any] = {}

    def declare(layout):  # type: ignore[no-untyped-def]
        holder["v"] = wl.declare(layout, opts)
        return holder["v"]

    return Machine(cpus, declare=declare, counter_names=wl.counter_names,
                   possible_cpus=wl.possible_cpus(cpus, opts), pin=pin, extensions=extensions,
                   cores=cores)


def boot(m: Machine, wl: Workload, variant: str, opts: dict[str, Any]) -> None:
    """Run the workload's setup program alone on the coordinator CPU."""
    m.run([None] * m.cpus + [wl.setup(variant, m.vars, opts)], timeout=m.stop_grace)


def run_free(m: Machine, wl: Workload, variant: str, opts: dict[str, Any],
             seconds: float | None = None, iterations: int | None = None,
             memory_model: str = "native", seed: int = 0) -> dict[str, Any]:
    """One free-running measurement of ``variant`` on a started machine."""
    variant = wl.resolve_variant(variant)
    if memory_model == "weak" and wl.free_weak_refused:
        raise UsageError(wl.free_weak_refused)
    boot(m, wl, variant, opts)
    factory: Any = Ctx
    if memory_model != "native":
        from shmkernel.runtime.ctx_models import BufferedCtx

        factory = functools.partial(BufferedCtx, model=memory_model, seed=seed)
    res = m.run(wl.programs(variant, m.vars, m.cpus, opts, iterations), seconds=seconds, ctx_factory=factory)
    assert m.seg is not None
    problems = wl.check(variant, m.vars, m.seg, m.cpus, opts, res)
    if problems:
        raise RunError(f"exactness check failed ({wl.name}/{variant}): {'; '.join(problems)}")
    return record(m, wl, variant, opts, res.counters, res.seconds, memory_model,
                  extra=wl.extra(variant, m.vars, m.seg) if hasattr(wl, "extra") else {})


def record(m: Machine, wl: Workload, variant: str, opts: dict[str, Any], counters: dict[str, int],
           seconds: float, memory_model: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    events = {e: counters.get(e, 0) for e in (*wl.events, "warn", "bug") if e in counters}
    rates = {e: rate(events[e], counters.get(d, 0)).as_json() | {"denominator_name": d}
             for e, d in wl.denominators.items()}
    return {
        "workload": wl.name,
        "variant": variant,
        "cpus": m.cpus,
        "memory_model": memory_model,
        "seconds": round(seconds, 4),
        "options": {k: v for k, v in opts.items()},
        "counters": {k: v for k, v in counters.items() if k not in events},
        "events": events,
        "rates": rates,
        "host": {
            "cores": len(os.sched_getaffinity(0)),
            "pinned": all(m.pinned[: m.roles]),
            "cpu_cores": m.cores,
            "machine": platform.machine(),
            "hostname": platform.node(),
        },
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(extra or {}),
    }
