"""An exact LKMM verdict for a C litmus test, the way herd7 computes one.

1. Each process is run symbolically (`shmkernel.litmus.events`) into its paths:
   events, guards on the values its branches assumed, final registers. The
   values a location may hold are a fixpoint over the program's stores (a
   chain of values through stores is at most as long as the program has
   stores, so the fixpoint stops and misses nothing).
2. For each combination of paths, per location: every coherence order of its
   stores (the initial write first, each process's stores in program order)
   and every reads-from choice, pruned at once by coherence on that location,
   by atomicity (an RMW reads its immediate coherence predecessor) and by
   guards on concrete values.
3. Each candidate (one choice per location) gets its loads' values resolved
   through reads-from (a cycle of values through dependencies leaves them
   unsolved, as herd7 does: see `events.Unknown`), its guards checked, and the LKMM's axioms
   (`shmkernel.memory.lkmm_cat`) evaluated. Every consistent execution that
   passes the ``filter`` contributes its final state.

Nothing is sampled: the verdict covers every candidate execution, so Never is
a proof under the model (within the test's own bounds: it has no loops).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from shmkernel.litmus.cparse import CTest
from shmkernel.litmus.enumerate import candidates
from shmkernel.litmus.events import UNKNOWN, Trace, concrete_values, evaluate
from shmkernel.litmus.interp import traces
from shmkernel.litmus.outcomes import Outcomes
from shmkernel.memory.lkmm_cat import Checker, Skeleton


class Budget(Exception):
    """The candidate budget ran out: no verdict."""


@dataclass
class Built:
    """One combination of paths as a skeleton, with global numbering."""

    sk: Skeleton
    terms: list[Any]  # per event: a store's value term (global read numbers), None otherwise
    guards: list[tuple[Any, Any]]
    regs: list[dict[str, Any]]  # per process: register -> term
    locs: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)  # loc -> (writes, reads)
    direct: dict[int, set] = field(default_factory=dict)  # read -> values its guards pin


def globals_of(test: CTest) -> set[str]:
    names = set(test.init)
    for p in test.procs:
        names |= set(p.params)
    for v in list(test.init.values()) + list(test.reg_init.values()):
        if isinstance(v, tuple) and v[0] == "addr":
            names.add(v[1])
    return names


def init_value(v: Any) -> Any:
    return v[1] if isinstance(v, tuple) else v


def domains_and_traces(test: CTest) -> tuple[dict[str, set], list[list[Trace]]]:
    """Every process's paths, with the values each location may hold (a fixpoint)."""
    glob = globals_of(test)
    domains: dict[str, set] = {g: {init_value(test.init.get(g, 0))} for g in glob}
    rounds = 0
    while True:
        all_traces = []
        for p in test.procs:
            regs = {r: init_value(v) for (i, r), v in test.reg_init.items() if i == p.index}
            all_traces.append(traces(p, regs, domains, glob))
        stores = sum(max(sum(1 for e in t.events if e.kind == "W") for t in ts) for ts in all_traces)
        new = {k: set(v) for k, v in domains.items()}
        for ts in all_traces:
            for t in ts:
                read_locs = {k: e.loc for k, e in enumerate(t.events) if e.kind == "R"}
                for e in t.events:
                    if e.kind == "W":
                        new.setdefault(e.loc, {0}).update(concrete_values(e.val, read_locs, domains))
        rounds += 1
        if new == domains or rounds > stores + 1:
            return domains, [[t for t in ts if not t.dead] for ts in all_traces]
        domains = new


def _globalize(t: Any, base: int) -> Any:
    if isinstance(t, (int, str)) or t is None:
        return t
    if t[0] == "rd":
        return ("rd", t[1] + base)
    return (t[0], t[1], *(_globalize(x, base) for x in t[2:]))


def build(test: CTest, combo: tuple[Trace, ...]) -> Built:
    """Number the events (initial writes first), lift terms and dependencies."""
    locs: list[str] = sorted({e.loc for t in combo for e in t.events if e.loc is not None} | set(test.init))
    n_iw = len(locs)
    thread, loc_of, classes = [-1] * n_iw, list(locs), [("W", "IW")] * n_iw
    terms: list[Any] = [init_value(test.init.get(x, 0)) for x in locs]
    rmw: list[int] = []
    addr, data, ctrl = [0] * n_iw, [0] * n_iw, [0] * n_iw
    guards, regs = [], []
    base = n_iw
    for p, t in enumerate(combo):
        for e in t.events:
            thread.append(p)
            loc_of.append(e.loc)
            classes.append((e.kind, *e.classes))
            terms.append(_globalize(e.val, base) if e.kind == "W" else None)
            rmw.append(0)
            addr.append(e.addr << base)
            data.append(e.data << base)
            ctrl.append(e.ctrl << base)
        for k, e in enumerate(t.events):
            if e.rmw >= 0:
                rmw[base - n_iw + e.rmw] |= 1 << (base + k)
        guards += [(_globalize(g, base), v) for g, v in t.guards]
        regs.append({r: _globalize(v.term, base) for r, v in t.regs.items()})
        base += len(t.events)
    n = base
    sets: dict[str, int] = {}
    for i, cl in enumerate(classes):
        for c in cl:
            sets[c] = sets.get(c, 0) | 1 << i
    sk = Skeleton(n, thread, loc_of, sets, [0] * n_iw + rmw, _transpose(addr, n), _transpose(data, n))
    sk.ctrl = _transpose(ctrl, n)
    b = Built(sk, terms, guards, regs)
    for i in range(n):
        lc, kind = loc_of[i], classes[i][0]
        if lc is not None and kind in ("R", "W"):
            w, r = b.locs.setdefault(lc, ([], []))
            (w if kind == "W" else r).append(i)
    for g, v in guards:
        if isinstance(g, tuple) and g[0] == "rd":
            b.direct.setdefault(g[1], set()).add(v)
    return b


def _transpose(into: list[int], n: int) -> list[int]:
    """Per event, the loads it depends on -> per load, the events depending on it."""
    out = [0] * n
    for j, mask in enumerate(into):
        while mask:
            low = mask & -mask
            out[low.bit_length() - 1] |= 1 << j
            mask ^= low
    return out


@dataclass
class AxiomaticResult:
    outcomes: Outcomes
    candidates: int = 0
    consistent: int = 0
    seconds: float = 0.0


def run_axiomatic(test: CTest, budget: int = 5_000_000, visit: Any = None, prune: bool = True) -> AxiomaticResult:
    """Every LKMM-consistent execution of ``test`` and its final states. ``visit``,
    if given, sees every candidate whose values hold together:
    ``visit(built, checker, rf, co, last, vals, consistent)`` (explanations);
    ``prune=False`` hands it the candidates coherence would prune too."""
    t0 = time.perf_counter()
    _, all_traces = domains_and_traces(test)
    res = AxiomaticResult(Outcomes(test))
    for combo in itertools.product(*all_traces):
        b = build(test, combo)
        checker = Checker(b.sk)
        for rf, co, last in candidates(b, prune):
            res.candidates += 1
            if res.candidates > budget:
                raise Budget(f"{test.path}: more than {budget:,} candidate executions")
            vals = resolve(b, rf)
            if vals is None or not all(_holds(g, v, vals) for g, v in b.guards):
                continue
            ok = checker.consistent(_rel(rf, b.sk.n), co)
            if visit is not None:
                visit(b, checker, rf, co, last, vals, ok)
            if not ok:
                continue
            res.consistent += 1
            res.outcomes.add(b, vals, last)
    res.seconds = time.perf_counter() - t0
    return res


def _holds(g: Any, v: Any, vals: dict[int, Any]) -> bool:
    try:
        got = evaluate(g, vals)
        return got is UNKNOWN or got == v
    except (ValueError, ZeroDivisionError, TypeError):
        return False


def _rel(rf: dict[int, int], n: int) -> list[int]:
    out = [0] * n
    for r, w in rf.items():
        out[w] |= 1 << r
    return out


def resolve(b: Built, rf: dict[int, int]) -> dict[int, Any] | None:
    """Each load's value through reads-from (`UNKNOWN` in a cycle of values); None
    if a value cannot be computed (an operation on an address)."""
    vals: dict[int, Any] = {}
    busy: set[int] = set()

    def value(r: int) -> Any:
        if r in vals:
            return vals[r]
        if r in busy:
            return UNKNOWN
        busy.add(r)
        t = b.terms[rf[r]]
        need = {}
        for k in _reads(t):
            need[k] = value(k)
        v = evaluate(t, need)
        busy.discard(r)
        vals[r] = v
        return v

    try:
        for r in rf:
            value(r)
    except (RecursionError, ValueError, ZeroDivisionError, TypeError):
        return None
    return vals


def _reads(t: Any) -> list[int]:
    if isinstance(t, (int, str)) or t is None:
        return []
    if t[0] == "rd":
        return [t[1]]
    return [k for x in t[2:] for k in _reads(x)]
