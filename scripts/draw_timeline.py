#!/usr/bin/env python3
"""Draw a trace-event timeline (what ``--trace-out`` writes) as a picture.

ui.perfetto.dev and chrome://tracing show the JSON interactively; a README or
a report needs a still picture of it. This draws the same file with
matplotlib: one row per track (a CPU, or a CPU's memory-model actions), each
slice a bar labelled with its name, each instant event (``false_zero``, a use
after free) a red marker on its track, time as the step index.

    python scripts/draw_timeline.py TRACE.json OUT.svg [--title TEXT]

``docs/seed000-timeline.svg`` was made so from
``shmkernel explore refcount --trace-out seed000.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

#: slice colour by the access kind `shmkernel.schedule.timeline` records
COLOURS = {"read": "#9ecae1", "write": "#fdae6b", "rmw": "#fd8d3c", "none": "#bcbddc", "lock": "#a1d99b"}


def tracks(events: list[dict[str, Any]]) -> tuple[dict[int, str], dict[int, int]]:
    """Track names and their sort order, from the metadata events."""
    names: dict[int, str] = {}
    order: dict[int, int] = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[e["tid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_sort_index":
            order[e["tid"]] = e["args"]["sort_index"]
    for e in events:
        if e.get("ph") in ("X", "i") and e.get("tid") not in names:
            names[e["tid"]] = f"track {e['tid']}"
    return names, order


def draw(trace: dict[str, Any] | list[dict[str, Any]], out: str, title: str = "") -> int:
    """Draw ``trace`` (the JSON object or its event list) into ``out``; return the slices drawn."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    import matplotlib.pyplot as plt

    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    names, order = tracks(events)
    rows = sorted(names, key=lambda t: (order.get(t, t), t))
    y = {t: i for i, t in enumerate(rows)}
    slices = [e for e in events if e.get("ph") == "X"]
    instants = [e for e in events if e.get("ph") == "i"]
    unit = min((e.get("dur", 1) for e in slices), default=1) or 1  # one step
    end = max((e["ts"] + e.get("dur", 0) for e in slices + instants), default=unit) / unit
    fig, ax = plt.subplots(figsize=(max(8.0, min(40.0, 0.55 * end + 2.5)), 0.8 + 2.3 * len(rows)))
    for e in slices:
        row, x = y[e["tid"]], e["ts"] / unit
        colour = COLOURS.get(e.get("args", {}).get("access", ""), "#c7e9c0")
        ax.broken_barh([(x, e.get("dur", unit) / unit)], (row - 0.42, 0.84), facecolors=colour, edgecolors="#636363")
        label = e["name"].split(": ", 1)[-1]
        label = label if len(label) <= 30 else label[:29] + "…"
        ax.text(x + 0.5, row, label, rotation=90, fontsize=7, va="center", ha="center")
    for e in instants:
        row, x = y[e["tid"]], e["ts"] / unit
        ax.plot([x], [row - 0.47], marker="v", color="#d62728", markersize=10)
        ax.text(x, row - 0.55, e["name"], color="#d62728", fontsize=9, ha="center", va="bottom")
    ax.set_yticks(range(len(rows)), [names[t] for t in rows])
    ax.set_ylim(-0.9, len(rows) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, end + 0.5)
    ax.set_xlabel("step (the scheduled mode has an order, not a clock)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return len(slices)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    a = ap.parse_args(argv)
    try:
        with open(a.trace) as f:
            trace = json.load(f)
    except (OSError, ValueError) as e:
        print(f"draw_timeline: error: cannot read {a.trace}: {e}", file=sys.stderr)
        return 2
    n = draw(trace, a.out, a.title)
    print(f"{a.out}: {n} slices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
