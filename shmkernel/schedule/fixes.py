"""Barrier suggestions for a window under a memory model, each checked by an
exhaustive re-exploration (the same bounded program, the same model).

A window edge joins the reporting CPU's access and another CPU's store. The
candidate points: just before the store, in the storing kernel function
(``smp_wmb``, the store as a release, ``smp_mb``), and just before the read,
in the reading function (``smp_rmb``, the load as an acquire, ``smp_mb``);
then before every other access the
trace made before the event (a hand-off between two other CPUs may be where
the ordering is missing: seed 000's relaxed hand-off); a point covers every per-CPU slot
of the same variable (``mod.decs[cpu1]`` -> every ``mod.decs[...]``), as a
barrier written in the kernel function would. Single barriers are tried
first, then one on each side; a candidate is printed only when the search
with it in place is *proved* (every execution covered, no event). The fences
are injected through `shmkernel.schedule.sctx.FENCE_PLAN`, so the search runs
in-process.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from shmkernel.schedule import sctx
from shmkernel.schedule.explorer import explore
from shmkernel.schedule.session import resolve

WRITER_FENCES = ("smp_wmb", "release", "smp_mb")
READER_FENCES = ("smp_rmb", "acquire", "smp_mb")
WEAKNESS = {"smp_rmb": 1, "smp_wmb": 1, "release": 2, "acquire": 2, "smp_mb": 3}
#: the ops a release/acquire rewrite applies to (sctx.ScheduledCtx._planned)
REWRITABLE = {"release": ("write_once", "atomic_set"), "acquire": ("read_once", "atomic_read")}

Point = tuple[str, int, str, str]  # (function, op code, variable base, op name)


def base_of(name: str) -> str:
    return re.sub(r"\[cpu\d+\]$", "", name)


def points(window: list[tuple[dict, dict, str]]) -> tuple[list[Point], list[Point]]:
    """(store points, read points) of the window's edges (slices' args)."""
    stores, reads = [], []
    for obs, other, _ in window:
        for args, side in ((other, stores), (obs, reads)):
            p = (args["function"], _code(args["name"]), base_of(args["address"]), args["name"])
            if p not in side:
                side.append(p)
    return stores, reads


def _code(name: str) -> int:
    from shmkernel.schedule.ops import CODE

    return CODE[name]


def applies(change: str, op: str) -> bool:
    return change not in REWRITABLE or op in REWRITABLE[change]


def describe(p: Point, change: str) -> str:
    if change in REWRITABLE:
        return f"{p[3]}({p[2]}...) in {p[0]} as {'smp_store_release' if change == 'release' else 'smp_load_acquire'}"
    return f"{change}() in {p[0]} before its {p[3]}({p[2]}...)"


def slots_of(layout: Any) -> dict[str, list[int]]:
    """Each variable's words (every per-CPU slot of it), from the layout's names."""
    slots: dict[str, list[int]] = {}
    for addr in range(layout.nwords):
        slots.setdefault(base_of(layout.name_of(addr)), []).append(addr)
    return slots


def plan_for(slots: dict[str, list[int]], choice: tuple[tuple[Point, str], ...]) -> dict[tuple[str, int, int], str]:
    """The FENCE_PLAN for fences at these points: every slot of each variable."""
    return {(fn, code, addr): fence for (fn, code, base, _), fence in choice for addr in slots.get(base, ())}


def trace_points(slices: list[dict], until_ts: int) -> list[tuple[Point, tuple[str, ...]]]:
    """Every access before the event as a point, with the fences worth trying there."""
    out: list[tuple[Point, tuple[str, ...]]] = []
    seen: set[Point] = set()
    for e in slices:
        a = e["args"]
        if e["ts"] >= until_ts or not a.get("address") or a.get("access") not in ("read", "write", "rmw"):
            continue
        p = (a["function"], _code(a["name"]), base_of(a["address"]), a["name"])
        if p not in seen:
            seen.add(p)
            fences = {"read": READER_FENCES, "write": WRITER_FENCES}.get(a["access"], ("smp_mb",))
            out.append((p, tuple(f for f in fences if applies(f, a["name"]))))
    return out


def suggest(
    h: Any,
    workload: Any,
    layout: Any,
    window: list[tuple[dict, dict, str]],
    slices: list[dict],
    until_ts: int,
    budget: int = 20_000,
) -> list[str]:
    """Single barriers anywhere on the trace before the event (the window's
    points first), then one on each side of the window; the proved ones."""
    stores, reads = points(window)
    near = [(p, f) for p in stores for f in WRITER_FENCES if applies(f, p[3])]
    near += [(p, f) for p in reads for f in READER_FENCES if applies(f, p[3])]
    far = [(p, f) for p, fs in trace_points(slices, until_ts) for f in fs if (p, f) not in near]
    singles = near + far
    wl, variant, opts, cpus, iters = resolve(workload, h.variant, dict(h.options), h.cpus, h.iterations)
    slots = slots_of(layout)
    tried, found = 0, []
    for size in (1, 2):
        combos = [(c,) for c in singles] if size == 1 else list(itertools.product(
            [(p, f) for p in stores for f in WRITER_FENCES if applies(f, p[3])],
            [(p, f) for p in reads for f in READER_FENCES if applies(f, p[3])]))  # fmt: skip
        for combo in sorted(combos, key=lambda cs: sum(WEAKNESS[f] for _, f in cs)):
            tried += 1
            sctx.FENCE_PLAN.clear()
            sctx.FENCE_PLAN.update(plan_for(slots, combo))
            try:
                r = explore(wl, variant=variant, scheduler="exhaustive", max_examples=budget, cpus=cpus,
                            iterations=iters, opts=opts, memory_model=h.memory_model, engine="inprocess")  # fmt: skip
            finally:
                sctx.FENCE_PLAN.clear()
            if r.verdict == "proved":
                text = " + ".join(describe(p, f) for p, f in combo)
                found.append(f"  {text}: proved, {r.examples:,} executions")
                if len(found) >= 4:
                    break
        if found:
            break
    if not found:
        return [
            f"No one or two barriers were proved to fix it ({tried} candidates, {budget:,} executions each at most)."
        ]
    head = f"Barriers that fix it, fewest and weakest first (each proved by an exhaustive search; {tried} tried):"
    return [head, *found]
