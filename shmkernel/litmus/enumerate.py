"""The candidate executions of one combination of paths: a coherence order and
reads-from per location, each location's choices pruned on their own before
the product is taken (coherence is a per-location axiom; atomicity and guards
on concrete values too)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from shmkernel.memory.relations import acyclic

Built = Any  # shmkernel.litmus.axiomatic.Built (which imports this module)
Option = tuple[dict[int, int], list[tuple[int, int]], int]  # rf, co rows (event, successors), last store


def candidates(b: Built, prune: bool = True) -> Iterator[tuple[dict[int, int], list[int], dict[str, int]]]:
    """(rf: read -> store, co as successor bitmasks, location -> co-last store).
    ``prune=False`` yields every rf and co (explanations of coherence)."""
    per_loc: list[tuple[str, list[Option]]] = []
    for loc in sorted(b.locs):
        ws, rs = b.locs[loc]
        opts = list(loc_options(b, ws, rs) if prune else all_options(ws, rs))
        if not opts:
            return
        per_loc.append((loc, opts))
    n = b.sk.n
    names = [loc for loc, _ in per_loc]
    for choice in itertools.product(*(opts for _, opts in per_loc)):
        rf: dict[int, int] = {}
        co = [0] * n
        last: dict[str, int] = {}
        for loc, (rf_l, rows, end) in zip(names, choice, strict=True):
            rf.update(rf_l)
            for w, succ in rows:
                co[w] = succ
            last[loc] = end
        yield rf, co, last


def all_options(ws: list[int], rs: list[int]) -> Iterator[Option]:
    """Every coherence order (initial store first) and every reads-from, unpruned."""
    for perm in itertools.permutations(ws[1:]):
        order = [ws[0], *perm]
        rows = [(w, _after(order, k)) for k, w in enumerate(order)]
        for pick in itertools.product(order, repeat=len(rs)):
            yield dict(zip(rs, pick, strict=True)), rows, order[-1]


def _compatible(b: Built, r: int, w: int) -> bool:
    """May ``r`` read ``w`` as far as concrete values tell?"""
    pinned = b.direct.get(r)
    if not pinned:
        return True
    t = b.terms[w]
    if not isinstance(t, (int, str)):
        return True
    return all(t == v for v in pinned)


def loc_options(b: Built, ws: list[int], rs: list[int]) -> Iterator[Option]:
    """Every (rf, co) on one location that is coherent and atomic."""
    sk = b.sk
    partner = {}  # rmw store -> its read
    for r in rs:
        row = sk.rmw[r]
        if row:
            partner[row.bit_length() - 1] = r
    free_reads = [r for r in rs if r not in partner.values()]
    queues: dict[int, list[int]] = {}
    for w in ws[1:]:
        queues.setdefault(sk.thread[w], []).append(w)
    for order, rmw_rf in _orders([ws[0]], queues, partner, b, {}):
        pos = {w: k for k, w in enumerate(order)}
        choices = [[w for w in order if _compatible(b, r, w)] for r in free_reads]
        for pick in itertools.product(*choices):
            rf = dict(rmw_rf)
            rf.update(zip(free_reads, pick, strict=True))
            if _coherent(sk, order, pos, rf, rs):
                rows = [(w, _after(order, k)) for k, w in enumerate(order)]
                yield rf, rows, order[-1]


def _after(order: list[int], k: int) -> int:
    m = 0
    for w in order[k + 1 :]:
        m |= 1 << w
    return m


def _orders(
    prefix: list[int], queues: dict[int, list[int]], partner: dict[int, int], b: Built, rmw_rf: dict[int, int]
) -> Iterator[tuple[list[int], dict[int, int]]]:
    """Coherence orders extending ``prefix`` (each process's stores in program
    order); an RMW's read is bound to the store just before its write."""
    live = [t for t, q in queues.items() if q]
    if not live:
        yield list(prefix), dict(rmw_rf)
        return
    for t in live:
        w = queues[t][0]
        r = partner.get(w)
        if r is not None:
            if not _compatible(b, r, prefix[-1]):
                continue
            rmw_rf[r] = prefix[-1]
        queues[t] = queues[t][1:]
        prefix.append(w)
        yield from _orders(prefix, queues, partner, b, rmw_rf)
        prefix.pop()
        queues[t] = [w, *queues[t]]
        if r is not None:
            del rmw_rf[r]


def _coherent(sk: Any, order: list[int], pos: dict[int, int], rf: dict[int, int], rs: list[int]) -> bool:
    """``acyclic po-loc | rf | co | fr`` on this location (local numbering)."""
    nodes = order + rs
    ix = {e: k for k, e in enumerate(nodes)}
    g = [0] * len(nodes)
    for k in range(len(order) - 1):
        g[k] |= 1 << (k + 1)  # co (the chain is enough for cycles)
    for r, w in rf.items():
        g[ix[w]] |= 1 << ix[r]
        nxt = pos[w] + 1
        if nxt < len(order):
            g[ix[r]] |= 1 << nxt  # fr to the next store (the chain does the rest)
    by_thread: dict[int, list[int]] = {}
    for e in nodes:
        if sk.thread[e] >= 0:
            by_thread.setdefault(sk.thread[e], []).append(e)
    for evs in by_thread.values():
        evs.sort()
        for a, c in zip(evs, evs[1:], strict=False):
            g[ix[a]] |= 1 << ix[c]  # po-loc (chain)
    return acyclic(g)
