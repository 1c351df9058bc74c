"""The counts of a free run as a result record.

The record is the JSON of DESIGN.md: ``workload, variant, cpus,
memory_model, seconds, counters{}, events{}, rates{NAME: {per_million, ci95,
denominator}}, host{cores, pinned}``. The run itself (boot, programs, the
exactness check at quiesce) is the workload layer's
(`shmkernel.workload.machines`); this module only turns counts into rates.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from shmkernel.measure.stats import rate
from shmkernel.workload import Workload
from shmkernel.workload.machines import run_free


def measure_free(
    m: Any,
    wl: Workload,
    variant: str,
    opts: dict[str, Any],
    seconds: float | None = None,
    iterations: int | None = None,
    memory_model: str = "native",
    seed: int = 0,
) -> dict[str, Any]:
    """A free run (`shmkernel.workload.machines.run_free`) as a record."""
    variant = wl.resolve_variant(variant)
    res = run_free(m, wl, variant, opts, seconds=seconds, iterations=iterations, memory_model=memory_model, seed=seed)
    return record(
        m,
        wl,
        variant,
        opts,
        res.counters,
        res.seconds,
        memory_model,
        extra=wl.extra(variant, m.vars, m.seg) if hasattr(wl, "extra") else {},
    )


def pinning(m: Any) -> str:
    """How the CPU processes sit on the host's cores, honestly."""
    if not all(m.pinned[: m.roles]):
        return "not pinned"
    used = [c for c in m.cores[: m.roles] if c is not None]
    per_core = max((used.count(c) for c in set(used)), default=1)
    if per_core <= 1:
        return "pinned, one CPU per core"
    return f"pinned round-robin, up to {per_core} CPUs per core"


def record(
    m: Any,
    wl: Workload,
    variant: str,
    opts: dict[str, Any],
    counters: dict[str, int],
    seconds: float,
    memory_model: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    events = {e: counters.get(e, 0) for e in (*wl.events, "warn", "bug") if e in counters}
    rates = {
        e: rate(events[e], counters.get(d, 0)).as_json() | {"denominator_name": d} for e, d in wl.denominators.items()
    }
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
            "pinning": pinning(m),
            "cpu_cores": m.cores,
            "machine": platform.machine(),
            "hostname": platform.node(),
        },
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(extra or {}),
    }


def merge(wl: Workload, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two records of the same variant as one (``--until-significant``): counts and
    time add up, the rates are those of the sums."""
    counters = {k: a["counters"].get(k, 0) + b["counters"].get(k, 0) for k in {*a["counters"], *b["counters"]}}
    counters |= {e: a["events"].get(e, 0) + b["events"].get(e, 0) for e in {*a["events"], *b["events"]}}
    out = dict(b)
    out["seconds"] = round(a["seconds"] + b["seconds"], 4)
    out["events"] = {e: counters.pop(e) for e in list(b["events"])}
    out["counters"] = counters
    out["rates"] = {
        e: rate(out["events"].get(e, 0), counters.get(d, 0)).as_json() | {"denominator_name": d}
        for e, d in wl.denominators.items()
    }
    return out
