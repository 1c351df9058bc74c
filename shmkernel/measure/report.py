"""Run records for people: a table (or one block per variant), what each event
means, and a verdict per event that says whether buggy and fixed really differ.

The verdict compares the two counts with Fisher's exact test (scipy.stats) on
events against their denominators (tallies, attempts, rounds ...): with rare
events a normal approximation, or eyeballing two intervals, misleads. It says
"significant" below p = 0.05 and otherwise what to do: run longer.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

#: what an event means, for workloads that do not say (DESIGN.md's events)
EVENT_MEANING = {
    "false_zero": "a module_refcount() tally read <= 0 while a reference was held",
    "use_after_free": "a CPU touched a module (or object) after it was freed",
    "wrong_path": "a static key read enabled while one of its jump sites was still unpatched",
    "bug": "a kernel BUG() fired",
    "warn": "a kernel WARN() fired",
    "stack_order": "two livepatch universes disagreed on which patch runs",
    "leak": "module uses were left at unload",
    "semantic_mismatch": "a caller and a callee ran different patch versions",
    "uncounted_ref": "a module was used without a counted reference",
    "rmmod_hang": "rmmod would wait forever for a refcount that never drops",
}
SIGNIFICANT = 0.05


def fmt_count(n: int) -> str:
    if n >= 10_000_000:
        return f"{n / 1e6:.1f} M"
    return f"{n:,}"


def fmt_rate(r: dict[str, Any]) -> str:
    """A rate per million with its interval; with no trials at all, no rate."""
    lo, hi = r["ci95"]
    if r.get("denominator", 1) == 0:
        return "no trials"
    if r["events"] == 0:
        return f"0 (< {hi:.3g})"
    return f"{r['per_million']:.3g} [{lo:.3g}, {hi:.3g}]"


def label(wl: Any, variant: str) -> str:
    """``buggy (percpu-count)``: the alias a variant answers to, then its name."""
    alias = [a for a, v in wl.aliases.items() if v == variant]
    return f"{alias[0]} ({variant})" if alias else variant


def meaning(wl: Any, event: str) -> str:
    own = getattr(wl, "event_help", None) or {}
    return own.get(event) or EVENT_MEANING.get(event, "")


def p_value(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Two-sided Fisher's exact test of two rates (None without trials)."""
    from scipy.stats import fisher_exact

    n1, n2 = a["denominator"], b["denominator"]
    if n1 <= 0 or n2 <= 0:
        return None
    k1, k2 = min(a["events"], n1), min(b["events"], n2)
    return float(fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])[1])


def verdicts(wl: Any, records: list[dict[str, Any]]) -> list[str]:
    """One sentence per event: does buggy show it, does fixed, do they differ?"""
    by = {r["variant"]: r for r in records}
    try:
        buggy, fixed = wl.resolve_variant("buggy"), wl.resolve_variant("fixed")
    except Exception:  # noqa: BLE001 - a workload without both aliases: nothing to judge
        return []
    if buggy not in by or fixed not in by or buggy == fixed:
        return []
    out = []
    for e, denom in wl.denominators.items():
        a, b = by[buggy]["rates"].get(e), by[fixed]["rates"].get(e)
        if a is None or b is None:
            continue
        shown = (
            f"buggy shows {e} at {a['per_million']:.3g} per 10^6 {denom} [{a['ci95'][0]:.3g}, {a['ci95'][1]:.3g}]"
            if a["events"]
            else f"buggy shows no {e} in {fmt_count(a['denominator'])} {denom}"
        )
        other = (
            f"fixed {b['events']:,} ({b['per_million']:.3g} per 10^6)"
            if b["events"]
            else f"fixed none in {fmt_count(b['denominator'])} {denom}"
        )
        p = p_value(a, b)
        if p is None:
            judged = "nothing to compare (no trials)"
        elif p < SIGNIFICANT:
            judged = f"the difference is significant (p = {p:.2g})"
        else:
            judged = (
                f"not significant yet (p = {p:.2g}): run longer (--seconds) or widen the window "
                f"(see `shmkernel list` for {wl.name}'s options)"
            )
        out.append(f"{shown}; {other}; {judged}")
    return out


def significant(wl: Any, records: list[dict[str, Any]]) -> bool:
    """Does every event's verdict say the difference is significant?"""
    said = verdicts(wl, records)
    return bool(said) and all("is significant" in v for v in said)


def _columns(wl: Any) -> list[tuple[str, Any]]:
    cols: list[tuple[str, Any]] = [(c, lambda r, c=c: fmt_count(r["counters"].get(c, 0))) for c in wl.counters]
    for e in wl.events:
        cols.append((e, lambda r, e=e: f"{r['events'].get(e, 0):,}"))
        if e in wl.denominators:
            cols.append(
                (
                    f"{e} per 10^6 {wl.denominators[e]} [95% CI]",
                    lambda r, e=e: fmt_rate(r["rates"][e]) if e in r["rates"] else "-",
                )
            )
    cols.append(("s", lambda r: f"{r['seconds']:.2f}"))
    return cols


def _header(wl: Any, r: dict[str, Any]) -> str:
    h = r["host"]
    pin = h.get("pinning") or ("pinned" if h["pinned"] else "not pinned")
    return f"shmkernel run {wl.name}  ({r['cpus']} CPUs, {pin}, {h['cores']} cores, memory model {r['memory_model']})"


def print_run_table(wl: Any, records: list[dict[str, Any]], console: Console | None = None) -> None:
    """A table when it fits a terminal; else one block per variant (never a cut name)."""
    if not records:
        return
    cols = _columns(wl)
    rows = [[label(wl, r["variant"])] + [f(r) for _, f in cols] for r in records]
    heads = ["variant"] + [name for name, _ in cols]
    width = shutil.get_terminal_size((80, 24)).columns
    need = sum(max(len(h), *(len(row[i]) for row in rows)) + 3 for i, h in enumerate(heads)) + 1
    out = console or Console(width=max(width, need) if sys.stdout.isatty() else None, soft_wrap=True)
    if sys.stdout.isatty() and need <= width:
        t = Table(title=_header(wl, records[0]))
        for i, h in enumerate(heads):
            t.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
        for row in rows:
            t.add_row(*row)
        out.print(t)
    else:
        lines = [_header(wl, records[0])]
        for row in rows:
            lines.append(row[0])
            lines += [f"  {h}: {v}" for h, v in zip(heads[1:], row[1:], strict=True)]
        out.print("\n".join(lines), markup=False, highlight=False)
    for e in wl.events:
        if meaning(wl, e):
            out.print(f"{e}: {meaning(wl, e)}", markup=False, highlight=False)
    for v in verdicts(wl, records):
        out.print(v, markup=False, highlight=False)
