"""Human-readable output of run records (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def fmt_rate(r: dict[str, Any]) -> str:
    lo, hi = r["ci95"]
    if r["events"] == 0:
        return f"0 (< {hi:.3g})"
    return f"{r['per_million']:.3g} [{lo:.3g}, {hi:.3g}]"


def print_run_table(wl: Any, records: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title=f"shmkernel run {wl.name}  ({records[0]['cpus']} CPUs, "
              f"{'pinned' if records[0]['host']['pinned'] else 'not pinned'}, "
              f"{records[0]['host']['cores']} cores, memory model {records[0]['memory_model']})")
    t.add_column("variant")
    for name in wl.counters:
        t.add_column(name, justify="right")
    for e in wl.events:
        t.add_column(e, justify="right")
        if e in wl.denominators:
            t.add_column(f"{e} per 10^6 {wl.denominators[e]} [95% CI]", justify="right")
    t.add_column("s", justify="right")
    for r in records:
        row = [r["variant"]] + [f"{r['counters'].get(c, 0):,}" for c in wl.counters]
        for e in wl.events:
            row.append(f"{r['events'].get(e, 0):,}")
            if e in wl.denominators:
                row.append(fmt_rate(r["rates"][e]))
        row.append(f"{r['seconds']:.2f}")
        t.add_row(*row)
    console.print(t)
