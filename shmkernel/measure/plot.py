"""Plot a sweep: rate per million with its 95% interval against the swept parameter.

One line per variant (and per combination of the other swept parameters);
repeats are pooled. A point with zero events has no rate to draw, only a
bound: it is drawn at its exact 95% upper bound with a downward triangle.
The y axis goes logarithmic when the rates span more than two decades.
matplotlib (Agg, no display) is imported only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shmkernel.errors import UsageError


@dataclass
class PlotResult:
    path: str
    labels: list[str]  # one per series (line), in legend order
    x: str
    event: str
    log_y: bool
    x_scale: str
    figure: Any  # matplotlib.figure.Figure


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_records(path: str) -> list[dict[str, Any]]:
    from shmkernel.measure.sweep import load_done

    return list(load_done(path).values())


def _matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.ticker  # noqa: F401 - used as matplotlib.ticker
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'shmkernel[sweep]'") from None
    return matplotlib


def _axis_and_event(records: list[dict[str, Any]], x: str | None, event: str | None) -> tuple[str, str, list[str]]:
    """What to plot: the x parameter, the event, and the swept parameter names."""
    if not records:
        raise UsageError("nothing to plot: no records")
    if event is None:
        event = next(iter(records[0]["rates"]), None)
        if event is None:
            raise UsageError("nothing to plot: the records carry no rate")
    names = list(dict.fromkeys(k for r in records for k in r["point"] if k != "variant"))
    if x is None:
        numeric = [n for n in names if all(_numeric(r["point"].get(n)) for r in records)]
        x = numeric[0] if numeric else (names[0] if names else "variant")
    elif x not in names and x != "variant":
        raise UsageError(f"cannot plot against {x!r}: the swept parameters are {', '.join(names) or 'none'}")
    return x, event, names


def _series(groups: list[dict[str, Any]], x: str, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """One line per variant and combination of the other swept parameters."""
    others = [n for n in names if n != x]
    series: dict[str, list[dict[str, Any]]] = {}
    for g in groups:
        rest = ", ".join(f"{n}={g['point'].get(n)}" for n in others)
        label = g["variant"] + (f" ({rest})" if rest else "") if x != "variant" else (rest or "all")
        series.setdefault(label, []).append(g)
    return series


def _draw_line(ax: Any, gs: list[dict[str, Any]], px: list[Any], color: Any) -> bool:
    """Measured rates with their intervals, joined; zero-event points as triangles at
    their upper bound (a bound is no rate: never joined). True if any was zero."""
    nz = [(xx, g["rate"]) for xx, g in zip(px, gs, strict=True) if g["rate"]["events"]]
    zero = [(xx, g["rate"]["ci95"][1]) for xx, g in zip(px, gs, strict=True) if not g["rate"]["events"]]
    if nz:
        xs, ys = [t[0] for t in nz], [r["per_million"] for _, r in nz]
        lo = [r["per_million"] - r["ci95"][0] for _, r in nz]
        hi = [r["ci95"][1] - r["per_million"] for _, r in nz]
        ax.plot(xs, ys, "-", color=color, alpha=0.6, linewidth=1.2)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=color, capsize=3, markersize=5)
    if zero:
        ax.plot(
            [t[0] for t in zero],
            [t[1] for t in zero],
            "v",
            color=color,
            markersize=8,
            markerfacecolor="white",
            markeredgewidth=1.6,
        )
    return bool(zero)


def _x_axis(ax: Any, mpl: Any, xs_all: list[Any], categorical: bool) -> None:
    if categorical:
        ax.set_xticks(range(len(xs_all)), [str(v) for v in xs_all])
        return
    positive = [v for v in xs_all if v > 0]
    if positive and max(positive) / min(positive) >= 20 and min(xs_all) >= 0:
        # values like 0, 1, 5, 20, 50 or 1..256: log-like spacing, 0 kept (linear below the
        # smallest positive value)
        if min(xs_all) == 0:
            ax.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
        else:
            ax.set_xscale("log")
        ax.set_xticks(xs_all, [f"{v:g}" for v in xs_all])
        ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    elif all(isinstance(v, int) for v in xs_all) and len(xs_all) <= 16:
        ax.set_xticks(sorted(xs_all))  # CPUs, sites: no 2.5


def plot(
    records: list[dict[str, Any]],
    path: str,
    x: str | None = None,
    event: str | None = None,
    title: str | None = None,
    xlabel: str | None = None,
) -> PlotResult:
    """Write a PNG of ``records`` (sweep records) to ``path``; returns what was drawn."""
    mpl = _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from shmkernel.measure.sweep import aggregate

    x, event, names = _axis_and_event(records, x, event)
    groups = aggregate(records, event)

    def xval(g: dict[str, Any]) -> Any:
        return g["variant"] if x == "variant" else g["point"].get(x)

    xs_all = list(dict.fromkeys(xval(g) for g in groups))
    categorical = not all(_numeric(v) for v in xs_all)
    pos = {v: i for i, v in enumerate(xs_all)}
    ys = [g["rate"]["per_million"] if g["rate"]["events"] else g["rate"]["ci95"][1] for g in groups]
    pos_ys = [y for y in ys if y > 0]
    log_y = bool(pos_ys) and max(pos_ys) / min(pos_ys) > 100.0

    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    labels, any_zero = [], False
    for i, (label, gs) in enumerate(_series(groups, x, names).items()):
        gs = sorted(gs, key=lambda g: pos[xval(g)] if categorical else xval(g))
        px = [pos[xval(g)] if categorical else xval(g) for g in gs]
        any_zero |= _draw_line(ax, gs, px, colors[i % len(colors)])
        labels.append(label)
    handles = [Line2D([], [], color=colors[i % len(colors)], marker="o", label=lab) for i, lab in enumerate(labels)]
    if any_zero:
        handles.append(
            Line2D(
                [],
                [],
                color="gray",
                marker="v",
                linestyle="none",
                markerfacecolor="white",
                markeredgewidth=1.6,
                label="0 events: drawn at the 95% upper bound",
            )
        )
    ax.legend(handles=handles, fontsize=8, loc="best")
    if log_y:
        ax.set_yscale("log")
    _x_axis(ax, mpl, xs_all, categorical)
    ax.set_xlabel(xlabel or x)
    first = records[0]
    denom = first["rates"][event].get("denominator_name", "trials")
    ax.set_ylabel(f"{event} per 10^6 {denom} (95% CI)")
    runs = max(g["runs"] for g in groups)
    ax.set_title(
        title
        or f"{first['workload']}: {event} vs {x}  "
        f"({runs} run(s)/point, ~{first['seconds']:.1f} s each, host {first['host']['hostname']})",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return PlotResult(str(path), labels, x, event, log_y, ax.get_xscale(), fig)


def plot_file(jsonl: str, png: str, **kw: Any) -> PlotResult:
    return plot(load_records(jsonl), png, **kw)
