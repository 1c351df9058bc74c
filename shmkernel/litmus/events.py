"""One process of a C litmus test run symbolically into the events herd7 builds.

A load's value is not known when the process runs (any store to the location
may be read, including one the program has not reached yet: load buffering),
so it is a *term* naming the load. Terms flow through registers and
arithmetic; a store's value is a term, resolved once the candidate execution
says which store each load reads. Only where the program needs a concrete value
(an ``if``, an address, a ``cmpxchg`` comparison) does the run branch, once per
value the term can take given the values each location may hold, and record
the choice as a *guard* checked on the candidate. Dependencies are syntactic,
as in herd7: a value carries the set of loads it was computed from, which
gives ``addr`` (loads in an address), ``data`` (in a stored value) and ``ctrl``
(in a branch condition: every later event of the process).
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field
from typing import Any

Term = Any  # int | str (an address) | ("rd", k) | ("op", op, a, b) | ("un", op, a)


@dataclass
class V:
    """A value: its term and the loads (bitmask of the process's events) it depends on."""

    term: Term
    deps: int = 0


@dataclass
class Event:
    kind: str  # R, W, F (fence), S (synchronize_srcu)
    loc: str | None = None
    classes: tuple[str, ...] = ()
    val: Term = None  # a store's value
    addr: int = 0  # loads the address depends on
    data: int = 0  # loads a store's value depends on
    ctrl: int = 0  # loads an earlier branch depended on
    rmw: int = -1  # for the W of a read-modify-write: its R
    line: int = 0


@dataclass
class Trace:
    """One path through a process: its events, the guards its branches assumed,
    and its registers at the end."""

    events: list[Event]
    guards: list[tuple[Term, Any]]
    regs: dict[str, V] = field(default_factory=dict)
    dead: bool = False  # ended at a non-address dereference: its stores still feed the domains


_BIN = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": lambda a, b: int(a / b) if b else 0,
    "%": lambda a, b: a % b if b else 0,
    "&": operator.and_,
    "|": operator.or_,
    "^": operator.xor,
    "<<": operator.lshift,
    ">>": operator.rshift,
    "<": lambda a, b: int(a < b),
    ">": lambda a, b: int(a > b),
    "<=": lambda a, b: int(a <= b),
    ">=": lambda a, b: int(a >= b),
}


class DeadPath(Exception):
    """This path has no execution under the model (it dereferences something
    that is not an address, ...): herd7 has none there, and neither do we."""


class Unknown:
    """The value of a load in a cycle of values through plain accesses (out of
    thin air). herd7 keeps such executions with the value unsolved; so do we:
    it satisfies any guard and equals nothing in a condition."""

    def __repr__(self) -> str:
        return "?"


UNKNOWN = Unknown()


def apply(op: str, a: Any, b: Any) -> Any:
    """``a op b`` on concrete values; addresses are strings (``"x"``, ``"x+1"``)."""
    if a is UNKNOWN or b is UNKNOWN:
        return UNKNOWN
    if op == "==":
        return int(a == b)
    if op == "!=":
        return int(a != b)
    if op == "&&":
        return int(bool(a) and bool(b))
    if op == "||":
        return int(bool(a) or bool(b))
    if isinstance(a, str) or isinstance(b, str):
        if op in ("+", "-") and isinstance(a, str) and isinstance(b, int):
            base, _, off = a.partition("+")
            k = (int(off) if off else 0) + (b if op == "+" else -b)
            return base if k == 0 else f"{base}+{k}"
        if op == "&" and isinstance(a, str) and b == 0 or op == "&" and isinstance(b, str) and a == 0:
            return 0
        raise ValueError(f"operation {op!r} on an address")
    return _BIN[op](a, b)


def unary(op: str, a: Any) -> Any:
    if a is UNKNOWN:
        return UNKNOWN
    if op == "!":
        return int(not a)
    if isinstance(a, str):
        raise ValueError(f"operation {op!r} on an address")
    return -a if op == "-" else ~a


def evaluate(t: Term, vals: dict[int, Any]) -> Any:
    """The concrete value of ``t`` given the values of the loads it names."""
    if isinstance(t, (int, str)):
        return t
    if t[0] == "rd":
        return vals[t[1]]
    if t[0] == "un":
        return unary(t[1], evaluate(t[2], vals))
    return apply(t[1], evaluate(t[2], vals), evaluate(t[3], vals))


def reads_of(t: Term) -> set[int]:
    if isinstance(t, (int, str)):
        return set()
    if t[0] == "rd":
        return {t[1]}
    return set().union(*(reads_of(x) for x in t[2:]))


def combine(op: str, a: V, b: V) -> V:
    if isinstance(a.term, (int, str)) and isinstance(b.term, (int, str)):
        return V(apply(op, a.term, b.term), a.deps | b.deps)
    return V(("op", op, a.term, b.term), a.deps | b.deps)


def concrete_values(t: Term, read_locs: dict[int, str], domains: dict[str, set]) -> list[Any]:
    """The values ``t`` may take, its loads ranging over their locations' domains."""
    rs = sorted(reads_of(t))
    seen: dict[Any, None] = {}
    for combo in itertools.product(*(sorted(domains.get(read_locs[r], {0}), key=repr) for r in rs)):
        try:
            seen[evaluate(t, dict(zip(rs, combo, strict=True)))] = None
        except (ValueError, ZeroDivisionError, TypeError):
            continue
    return list(seen)
