"""Binary relations over the events of one execution, as herd7's cat language
uses them: each relation is a list of successor bitmasks (``r[i]`` has bit
``j`` set when ``i -> j``), each set of events one bitmask.

Why bitmasks: a litmus execution has tens of events and the LKMM evaluates a
few hundred relation operations per candidate execution; Python integers as
bit rows make a composition one OR per edge and a closure one pass per event,
fast enough to check thousands of candidates per second without numpy's
per-call overhead on such small matrices.
"""

from __future__ import annotations

Rel = list[int]


def bits(mask: int) -> list[int]:
    """The indices of the set bits of ``mask``, lowest first."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def identity(n: int, on: int = -1) -> Rel:
    """``[S]``: the identity on the events of ``on`` (all events by default)."""
    return [(1 << i) if on >> i & 1 else 0 for i in range(n)]


def union(*rs: Rel) -> Rel:
    out = list(rs[0])
    for r in rs[1:]:
        out = [a | b for a, b in zip(out, r, strict=True)]
    return out


def inter(a: Rel, b: Rel) -> Rel:
    return [x & y for x, y in zip(a, b, strict=True)]


def minus(a: Rel, b: Rel) -> Rel:
    return [x & ~y for x, y in zip(a, b, strict=True)]


def seq(*rs: Rel) -> Rel:
    """``a ; b ; ...``: relational composition."""
    out = rs[0]
    for r in rs[1:]:
        nxt = []
        for row in out:
            acc = 0
            while row:
                low = row & -row
                acc |= r[low.bit_length() - 1]
                row ^= low
            nxt.append(acc)
        out = nxt
    return out


def restrict(r: Rel, dom: int = -1, rng: int = -1) -> Rel:
    """``[dom] ; r ; [rng]``."""
    return [(row & rng) if dom >> i & 1 else 0 for i, row in enumerate(r)]


def inverse(r: Rel) -> Rel:
    out = [0] * len(r)
    for i, row in enumerate(r):
        for j in bits(row):
            out[j] |= 1 << i
    return out


def plus(r: Rel) -> Rel:
    """``r+``: the transitive closure (Warshall's algorithm on bit rows)."""
    out = list(r)
    n = len(out)
    for k in range(n):
        kb, rk = 1 << k, out[k]
        if not rk:
            continue
        for i in range(n):
            if out[i] & kb:
                out[i] |= rk
    return out


def star(r: Rel) -> Rel:
    """``r*``: reflexive-transitive closure."""
    return [row | (1 << i) for i, row in enumerate(plus(r))]


def opt(r: Rel) -> Rel:
    """``r?``: ``r`` or the identity."""
    return [row | (1 << i) for i, row in enumerate(r)]


def acyclic(r: Rel) -> bool:
    """No cycle in ``r`` (Kahn's algorithm: cheaper than a closure when it holds)."""
    n = len(r)
    indeg = [0] * n
    for row in r:
        for j in bits(row):
            indeg[j] += 1
    ready = [i for i in range(n) if not indeg[i]]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for j in bits(r[i]):
            indeg[j] -= 1
            if not indeg[j]:
                ready.append(j)
    return seen == n


def irreflexive(r: Rel) -> bool:
    return not any(row >> i & 1 for i, row in enumerate(r))


def is_empty(r: Rel) -> bool:
    return not any(r)


def domain(r: Rel) -> int:
    m = 0
    for i, row in enumerate(r):
        if row:
            m |= 1 << i
    return m


def range_of(r: Rel) -> int:
    m = 0
    for row in r:
        m |= row
    return m


def cross(a: int, b: int, n: int) -> Rel:
    """``A * B``: every event of ``a`` to every event of ``b``."""
    return [b if a >> i & 1 else 0 for i in range(n)]
