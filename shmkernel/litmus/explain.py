"""``shmkernel litmus --explain``: why the LKMM allows or forbids a litmus
test's outcome, and the fewest, weakest barriers that forbid it, each checked.

- Allowed: one execution that shows the outcome, as events per CPU with the
  store each load reads (rf) and the coherence order of each location (co).
- Forbidden: which of the LKMM's axioms refuses the candidates that would show
  it (the cat file's names), and for the most frequent one a cycle in its
  relation, each edge named in herd7's vocabulary (po-loc, rf, co, fr, rfe,
  a fence, acq-po, po-rel, addr/data/ctrl, prop, ...).
- Fixes (for an allowed ``exists`` outcome): single changes first, then pairs
  (``smp_rmb``/``smp_wmb`` inserted between two statements, a
  ``WRITE_ONCE``/``READ_ONCE`` made release/acquire, ``smp_mb``), weakest
  first; each is re-run through the axiomatic engine and printed only if the
  outcome becomes Never, with the number of candidates that proves it.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from typing import Any

from shmkernel.litmus.axiomatic import Budget, Built, run_axiomatic
from shmkernel.litmus.cparse import CTest
from shmkernel.litmus.outcomes import Outcomes, holds
from shmkernel.memory.relations import bits

#: edge names tried in order when labelling a happens-before cycle
HB_EDGES = (
    "rfe", "mb", "gp", "wmb", "rmb", "acq-po", "po-rel", "addr", "data", "ctrl", "to-r", "overwrite-int",
    "po-unlock-lock-po", "prop",
)  # fmt: skip
COHERENCE_EDGES = ("po-loc", "rf", "co", "fr")
#: fix kinds, weakest first: (rank, name)
RANKS = {"smp_rmb": 1, "smp_wmb": 1, "release": 2, "acquire": 2, "smp_mb": 3}


def event_text(b: Built, i: int, vals: dict[int, Any]) -> str:
    sk = b.sk
    cls = [c for c, m in sk.sets.items() if m >> i & 1 and c not in ("R", "W", "F", "RMW", "IW")]
    t = sk.thread[i]
    if t < 0:
        return f"init {sk.loc[i]}={b.terms[i]}"
    kind = "R" if sk.sets.get("R", 0) >> i & 1 else "W" if sk.sets.get("W", 0) >> i & 1 else "F"
    tag = "[" + ",".join(c.lower() for c in cls) + "]" if cls else ""
    if kind == "F" or sk.loc[i] is None:
        return f"P{t} F{tag}"
    value = vals.get(i) if kind == "R" else _value(b.terms[i], vals)
    return f"P{t} {kind}{tag} {sk.loc[i]}={value}"


def _value(t: Any, vals: dict[int, Any]) -> Any:
    from shmkernel.litmus.events import evaluate

    try:
        return evaluate(t, vals)
    except (ValueError, KeyError, TypeError, ZeroDivisionError):
        return "?"


def shortest_cycle(rel: list[int]) -> list[int]:
    """A shortest cycle of ``rel`` (breadth-first from each event back to it)."""
    best: list[int] = []
    for start in range(len(rel)):
        prev = {start: -1}
        frontier, found = [start], None
        while frontier and found is None:
            nxt = []
            for a in frontier:
                for c in bits(rel[a]):
                    if c == start:
                        found = a
                        break
                    if c not in prev:
                        prev[c] = a
                        nxt.append(c)
                if found is not None:
                    break
            frontier = nxt
        if found is not None:
            cyc = [found]
            while cyc[-1] != start:
                cyc.append(prev[cyc[-1]])
            cyc.reverse()
            if not best or len(cyc) < len(best):
                best = cyc
    return best


def edge_name(parts: dict[str, list[int]], axiom: str, a: int, b: int) -> str:
    names = COHERENCE_EDGES if axiom == "coherence" else HB_EDGES if axiom == "happens-before" else ()
    for name in names:
        rel = parts.get(name)
        if rel is not None and rel[a] >> b & 1:
            return name
    return {"propagation": "pb (prop ; strong-fence ; hb*)"}.get(axiom, axiom)


def expand_prop(parts: dict[str, list[int]], a: int, b: int) -> list[tuple[int, str]]:
    """A ``prop`` edge as its steps: ``(overwrite & ext)? ; cumul-fence* ; rfe?``."""
    cumul = parts["cumul-fence"]
    firsts = [(a, None)] + [(c, "fre") for c in bits(parts["fre"][a])] + [(c, "coe") for c in bits(parts["coe"][a])]
    lasts = [(b, None)] + [(d, "rfe") for d in range(len(cumul)) if parts["rfe"][d] >> b & 1]
    for c, first in firsts:
        for d, last in lasts:
            path = _path(cumul, c, d)
            if path is None:
                continue
            steps = [(a, first)] if first else []
            steps += [(e, "cumul-fence") for e in path[:-1]]
            if last:
                steps.append((d, "rfe"))
            return steps or [(a, "prop")]
    return [(a, "prop")]


def _path(rel: list[int], src: int, dst: int) -> list[int] | None:
    """Events from ``src`` to ``dst`` along ``rel`` (``[src]`` if they are the same)."""
    prev, frontier = {src: -1}, [src]
    while frontier and dst not in prev:
        nxt = []
        for x in frontier:
            for y in bits(rel[x]):
                if y not in prev:
                    prev[y] = x
                    nxt.append(y)
        frontier = nxt
    if dst not in prev:
        return None
    out = [dst]
    while out[-1] != src:
        out.append(prev[out[-1]])
    return out[::-1]


def explain(test: CTest, budget: int = 1_000_000) -> list[str]:
    """The explanation's lines (see the module docstring)."""
    out = Outcomes(test)
    state: dict[str, Any] = {"witness": None, "refused": Counter(), "example": {}}

    def visit(b: Built, checker: Any, rf: dict, co: list[int], last: dict, vals: dict, ok: bool) -> None:
        env = out.env(b, vals, last)
        if env is None or not holds(test.cond, env):
            return
        if ok:
            if state["witness"] is None:
                state["witness"] = (b, rf, co, vals)
            return
        rfrel = [0] * b.sk.n
        for r, w in rf.items():
            rfrel[w] |= 1 << r
        axiom = checker.violation(rfrel, co, keep=True) or "?"
        state["refused"][axiom] += 1
        state["example"].setdefault(axiom, (b, dict(checker.parts), vals))

    res = run_axiomatic(test, budget, visit)
    if state["witness"] is None and not state["refused"]:  # refused by coherence before the axioms ran
        try:
            run_axiomatic(test, budget, visit, prune=False)
        except Budget:
            return [f"Forbidden; too many unpruned candidates to show why (over {budget:,})."]
    lines = []
    if state["witness"] is not None:
        lines.append(f"The condition's outcome is allowed by the LKMM ({res.outcomes.observation}); one execution:")
        lines += witness_lines(*state["witness"])
        if test.quantifier == "exists":
            lines += fix_lines(test, budget)
    elif not state["refused"]:
        lines.append("No candidate execution has the condition's values at all (no store writes them).")
    else:
        total = sum(state["refused"].values())
        why = ", ".join(f"{a} ({n})" for a, n in state["refused"].most_common())
        lines.append(f"Forbidden: the {total} candidate execution(s) with these values break {why}.")
        axiom = state["refused"].most_common(1)[0][0]
        b, parts, vals = state["example"][axiom]
        cyc = shortest_cycle(parts.get(axiom, [])) if axiom in parts else []
        if cyc:
            lines.append(f"A cycle in {axiom}:")
            for a, c in zip(cyc, cyc[1:] + cyc[:1], strict=True):
                name = edge_name(parts, axiom, a, c)
                steps = expand_prop(parts, a, c) if name == "prop" else [(a, name)]
                for e, label in steps:
                    lines.append(f"  {event_text(b, e, vals):32} -{label}->")
            lines.append(f"  {event_text(b, cyc[0], vals)}")
    return lines


def witness_lines(b: Built, rf: dict[int, int], co: list[int], vals: dict[int, Any]) -> list[str]:
    sk = b.sk
    lines = []
    for p in sorted({t for t in sk.thread if t >= 0}):
        evs = []
        for i in range(sk.n):
            if sk.thread[i] != p:
                continue
            text = event_text(b, i, vals).split(" ", 1)[1]
            if i in rf:
                src = rf[i]
                text += f" (from {'init' if sk.thread[src] < 0 else f'P{sk.thread[src]}'})"
            evs.append(text)
        lines.append(f"  P{p}: " + " ; ".join(evs))
    for loc in sorted(b.locs):
        ws = b.locs[loc][0]
        if len(ws) > 2:
            order = sorted(ws, key=lambda w: -bin(co[w]).count("1"))
            lines.append(f"  co {loc}: " + " -> ".join(event_text(b, w, vals) for w in order))
    return lines


def candidate_changes(test: CTest) -> list[tuple[int, str, int, int]]:
    """(rank, kind, process, statement index) for every single change tried."""
    out = []
    for p in test.procs:
        for k, s in enumerate(p.body):
            if 0 < k:
                for fence in ("smp_rmb", "smp_wmb", "smp_mb"):
                    out.append((RANKS[fence], fence, p.index, k))
            call = _top_call(s)
            if call is not None and call[1] == "WRITE_ONCE" and call[2][0][0] == "deref":
                out.append((RANKS["release"], "release", p.index, k))
            if call is not None and call[1] == "READ_ONCE" and call[2][0][0] == "deref":
                out.append((RANKS["acquire"], "acquire", p.index, k))
    return sorted(out)


def _top_call(s: Any) -> Any:
    e = s[1] if s[0] == "expr" else s[2] if s[0] in ("assign", "decl") else None
    return e if isinstance(e, tuple) and e[0] == "call" else None


def _line(s: Any) -> int:
    return s[-1] if isinstance(s[-1], int) else 0


def apply_changes(test: CTest, changes: tuple) -> CTest:
    t = copy.deepcopy(test)
    for _, kind, p, k in sorted(changes, key=lambda c: -c[3]):  # later indices first: earlier stay valid
        body = t.procs[p].body
        s = body[k]
        if kind.startswith("smp_"):
            body.insert(k, ("expr", ("call", kind, [], _line(s)), _line(s)))
            continue
        call = _top_call(s)
        name = "smp_store_release" if kind == "release" else "smp_load_acquire"
        new = ("call", name, [call[2][0][1], *call[2][1:]], call[3])
        body[k] = (*s[:1], new, *s[2:]) if s[0] == "expr" else (*s[:2], new, *s[3:])
    return t


def change_text(test: CTest, change: tuple) -> str:
    _, kind, p, k = change
    s = test.procs[p].body[k]
    if kind.startswith("smp_"):
        return f"{kind}() in P{p} before line {_line(s)}"
    return f"{'smp_store_release' if kind == 'release' else 'smp_load_acquire'} in P{p} line {_line(s)}"


def fix_lines(test: CTest, budget: int, most: int = 5, tries: int = 600) -> list[str]:
    singles = candidate_changes(test)
    found: list[str] = []
    tried = 0
    for size in (1, 2):
        combos = itertools.combinations(singles, size) if size > 1 else ((c,) for c in singles)
        for combo in sorted(combos, key=lambda cs: sum(c[0] for c in cs)):
            if len({(c[2], c[3]) for c in combo}) < size or tried >= tries:
                continue
            tried += 1
            try:
                r = run_axiomatic(apply_changes(test, combo), budget)
            except Budget:
                continue
            if r.outcomes.positive == 0:
                found.append(
                    " + ".join(change_text(test, c) for c in combo)
                    + f": proved Never ({r.candidates:,} candidates, {r.consistent:,} executions)"
                )
                if len(found) >= most:
                    break
        if found:
            break
    if not found:
        return [f"No fix of one or two barriers forbids it ({tried} tried)."]
    return ["Fixes that forbid it, fewest and weakest first (each checked by the axiomatic engine):"] + [
        f"  {f}" for f in found
    ]
