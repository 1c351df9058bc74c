"""``shmkernel explain WORKLOAD SCHEDULE``: the interleaving window behind a
violation, found by experiment rather than by pattern.

The schedule is replayed with tracing on; the CPU that reported the event is
the *observer*. Every conflict between one of its accesses (before the
event) and another CPU's store is a candidate: an ``fr`` edge (the observer
read the word, the other CPU overwrote it afterwards) or an ``rf`` edge (it
read what the other CPU had just stored). Each candidate is flipped alone —
the observer's steps moved past the store, or ahead of it, everything else in
the schedule's order — and the program re-run; an edge whose flip makes the
event disappear is part of the window. The answer is what the seed's diagram
shows: which CPU's steps fell between which two steps of the observer.

Under ``native``/``sc`` every CPU sees every store at once, so no barrier can
close such a window: the fix must change the protocol (a lock, a second
count). Under a memory model the window's two sides are where a barrier may
help: `shmkernel.schedule.fixes` tries them and prints those an exhaustive
search proves.
"""

from __future__ import annotations

from typing import Any

from shmkernel.errors import UsageError
from shmkernel.schedule.explorer import replay
from shmkernel.schedule.hb import switches
from shmkernel.schedule.reduce import guided, reduce_schedule
from shmkernel.schedule.session import Session, resolve
from shmkernel.schedule.svg import arrows
from shmkernel.schedule.timeline import MEMORY_TID
from shmkernel.schedule.trace import decode, encode


def flipped(choices: list[int], observer: int, read_at: int, write_at: int) -> list[int]:
    """``choices`` with the observer's steps between the two steps moved to the other side."""
    lo, hi = sorted((read_at, write_at))
    mine = [c for c in choices[lo : hi + 1] if c == observer]
    theirs = [c for c in choices[lo : hi + 1] if c != observer]
    middle = theirs + mine if read_at < write_at else mine + theirs
    return choices[:lo] + middle + choices[hi + 1 :]


def explain_schedule(workload: Any, schedule: str) -> list[str]:
    """The explanation's lines (see the module docstring)."""
    return explain_with_timeline(workload, schedule)[0]


def explain_with_timeline(workload: Any, schedule: str) -> tuple[list[str], dict[str, Any]]:
    """The explanation's lines and the replayed execution's timeline (for --trace-out/--svg)."""
    h, choices = decode(schedule)
    first = replay(workload, schedule, engine="inprocess")[0]
    if not first.found:
        raise UsageError("this schedule shows no violation: nothing to explain")
    evs = first.timeline["traceEvents"]
    mark = next(e for e in evs if e["ph"] == "i")
    observer, event = mark["tid"], mark["name"]
    slices = [e for e in evs if e["ph"] == "X" and e["tid"] < MEMORY_TID]
    edges = [
        (a, b, kind)
        for a, b, kind in arrows(slices)
        if (slices[a]["tid"] == observer) != (slices[b]["tid"] == observer) and max(a, b) < _index_at(slices, mark)
    ]
    wl, variant, opts, _, _ = resolve(workload, h.variant, dict(h.options), h.cpus, h.iterations)
    window = []
    with Session(wl, variant, h.cpus, opts, h.iterations, h.memory_model, 4 * len(choices) + 100, "inprocess") as s:
        for a, b, kind in edges:
            obs, other = (a, b) if slices[a]["tid"] == observer else (b, a)
            steps = (slices[obs]["args"]["step"], slices[other]["args"]["step"])
            try:
                _, events = s.execute(guided(flipped(choices, observer, *steps)))
            except UsageError:
                continue
            if not events.get(event):
                window.append((obs, other, kind))
        reduced = encode(s.header(), reduce_schedule(s, choices, event))
        layout = s.m.layout
    lines = _lines(first, slices, observer, event, window, h.memory_model)
    _, fewer = decode(reduced)
    lines.append(
        f"Reduced (ddmin over the context switches): {switches(fewer)} switches instead of {switches(choices)}: "
        f"shmkernel replay {first.reference or first.workload} '{reduced}'"
    )
    if h.memory_model not in ("native", "sc"):
        from shmkernel.schedule.fixes import suggest

        edges = [(slices[o]["args"], slices[t]["args"], k) for o, t, k in window]
        lines += suggest(h, workload, layout, edges, slices, mark["ts"])
    return lines, first.timeline


def _index_at(slices: list[dict[str, Any]], mark: dict[str, Any]) -> int:
    """How many slices come before the event's marker."""
    return sum(1 for s in slices if s["ts"] < mark["ts"])


def _lines(first: Any, slices: list, observer: int, event: str, window: list, model: str) -> list[str]:
    who = f"CPU {observer}" + (" (the coordinator)" if observer == first.cpus else "")
    lines = [f"{event} reported by {who}; {first.steps} steps replayed ({first.workload}/{first.variant}, {model})."]
    if not window:
        lines.append(
            "No single conflicting order of the reporting CPU's accesses decides it (flipping each alone keeps "
            "the event): what it read comes from reorderings, not from the interleaving."
        )
        return lines
    lines.append("The window (each order below, flipped alone and re-run, makes the event disappear):")
    for obs, other, kind in sorted(window, key=lambda w: slices[w[0]]["ts"]):
        o, t = slices[obs], slices[other]
        oa, ta = o["args"], t["args"]
        stale = "(an older value)" in oa["op"]
        when = "before" if kind == "fr" else "read an older value than" if stale else "after"
        lines.append(
            f"  {who} {oa['function'] or 'reads'}: {oa['op']} (step {oa['step']}, {oa['source']}) "
            f"{'' if stale else 'came '}{when} "
            f"CPU {t['tid']} {ta['function'] or ''}: {ta['op']} (step {ta['step']}, {ta['source']}) [{kind}]"
        )
    if model in ("native", "sc"):
        lines.append(
            "Every CPU sees every store at once here: no barrier can fix this; the window itself must close "
            "(a lock around it, or a scheme that makes the observer's reads consistent, as the seed did)."
        )
    return lines
