"""``--svg FILE.svg``: a traced execution drawn as the seeds draw their races:
one column per CPU, one row per step (the kernel function and the
operation), and arrows between columns for what each load read (rf: from
the store it read) and what overwrote it later (fr: to the next store to
the same word from another CPU). Drawn with matplotlib (text kept as SVG
text, so the file is searchable and the tests can read it).

The arrows are inferred from the step order and values, which is exact under
``native``/``sc`` (a load reads the latest store); under a memory model a load
may read an older store, so an rf arrow is drawn only where the store's value
is the value read (and the memory model's commits sit, in grey, in the
column of the CPU whose buffer they drain)."""

from __future__ import annotations

from typing import Any

from shmkernel.errors import UsageError
from shmkernel.schedule.timeline import MEMORY_TID, STEP_US

WRITES = ("write", "rmw", "lock")
READS = ("read", "rmw", "lock")


def arrows(slices: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """(from slice index, to slice index, "rf" | "fr") between different CPUs."""
    out: list[tuple[int, int, str]] = []
    last_write: dict[str, int] = {}
    for j, s in enumerate(slices):
        a = s["args"]
        addr, access = a.get("address"), a.get("access", "")
        if not addr:
            continue
        if access in READS and addr in last_write:
            w = last_write[addr]
            wa = slices[w]["args"]
            same_value = wa["access"] != "write" or wa["value"] == a["value"]
            if slices[w]["tid"] != s["tid"] and same_value:
                out.append((w, j, "rf"))
        if access == "read":
            for k in range(j + 1, len(slices)):
                b = slices[k]["args"]
                if b.get("address") == addr and b.get("access") in WRITES:
                    if slices[k]["tid"] != s["tid"]:
                        out.append((j, k, "fr"))
                    break
        if access in WRITES:
            last_write[addr] = j
    return out


def draw_svg(timeline: dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--svg draws with matplotlib: pip install 'shmkernel[sweep]'") from None
    matplotlib.rcParams["svg.fonttype"] = "none"
    evs = timeline["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in evs if e["name"] == "thread_name" and e["tid"] < MEMORY_TID}
    cols = {tid: k for k, tid in enumerate(sorted(names))}
    slices = [e for e in evs if e["ph"] == "X"]
    rows = max((e["ts"] // STEP_US for e in slices), default=0) + 1
    fig, ax = plt.subplots(figsize=(3.6 * max(len(cols), 1), 0.8 + 0.32 * rows))
    for tid, k in cols.items():
        ax.text(k, 1, names[tid], ha="center", va="bottom", fontsize=10, fontweight="bold")
    for e in slices:
        tid = e["tid"] if e["tid"] < MEMORY_TID else e["tid"] - MEMORY_TID
        grey = e["tid"] >= MEMORY_TID
        ax.text(cols.get(tid, 0), -e["ts"] // STEP_US, e["name"], ha="center", va="center", fontsize=7,
                color="grey" if grey else "black", style="italic" if grey else "normal")  # fmt: skip
    for e in evs:
        if e["ph"] == "i":
            detail = " ".join(f"{a}={b}" for a, b in e.get("args", {}).items())
            ax.text(cols.get(e["tid"], 0), -e["ts"] // STEP_US + 0.5, f"** {e['name']} {detail}".rstrip(),
                    ha="center", va="center", fontsize=8, color="red")  # fmt: skip
    for a, b, kind in arrows(slices):
        sa, sb = slices[a], slices[b]
        start = (cols.get(sa["tid"], 0), -sa["ts"] // STEP_US)
        end = (cols.get(sb["tid"], 0), -sb["ts"] // STEP_US)
        color = "tab:blue" if kind == "rf" else "tab:orange"
        ax.annotate(
            "", xy=end, xytext=start,
            arrowprops={"arrowstyle": "->", "color": color, "lw": 0.9, "shrinkA": 7, "shrinkB": 7},
        )  # fmt: skip
        mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        ax.text(*mid, kind, fontsize=7, color=color, ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"})  # fmt: skip
    ax.set_xlim(-0.6, len(cols) - 0.4)
    ax.set_ylim(-rows, 1.6)
    ax.axis("off")
    ax.set_title(timeline.get("otherData", {}).get("title", ""), fontsize=9)
    try:
        fig.savefig(path, format="svg", bbox_inches="tight")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
    finally:
        plt.close(fig)
