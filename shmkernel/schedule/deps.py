"""Dependency tracking: values that remember the loads they came from.

The LKMM orders a load before a later access of its CPU only through a
*dependency* (herd7's ``addr``, ``data``, ``ctrl``) or a barrier: without one a
store may pass an earlier load (load buffering). Kernel code leans on them
(seed 000's hand-off is ``if (READ_ONCE(mailbox)) module_put()``), so a search
that allows load buffering must know them. In scheduled mode under the LKMM
graph (`shmkernel.memory.graph_lkmm`) each value a ``ctx`` load returns is a
`Tainted` int that carries which of its CPU's memory operations it came from
(a bit per operation, numbered as the model numbers them): arithmetic on it
carries the union on; ``bool()`` of it (an ``if``, a ``while``, ``not``, ``and``)
is a branch, so every later operation of the CPU depends on those loads
(``ctrl``, as herd7 has it: to everything after the branch); a value used as
an address is an address dependency; one stored (or a compare-and-swap's
operand), a data dependency.

What it cannot follow it over-approximates, never under-approximates: a
value turned into a plain Python int (``int()``, an index, ``range()``) is
taken as a branch on it. So a dependency may be credited that the C code
would not have (fewer executions: what the operational models assume
anyway), but none is missed where the value really flows, and what a CPU
does after a load never changes without the model knowing it depends on
that load. Free mode pays nothing: its ``ctx`` returns plain ints.
"""

from __future__ import annotations

from typing import Any


class DepTracker:
    """One CPU's dependency state: its memory operations so far, and the loads
    its branches so far read (the ``ctrl`` dependencies of everything after)."""

    __slots__ = ("mops", "ctrl")

    def __init__(self) -> None:
        self.mops = 0  # memory operations performed (the model numbers them the same way)
        self.ctrl = 0  # bit k: a branch read the value of operation k


def deps_of(x: Any) -> int:
    """The loads ``x`` carries (0 for a plain value)."""
    return x._deps if type(x) is Tainted else 0


def plain(x: Any) -> int:
    """``x`` as a plain int, without taking it as a branch (the gate's own conversion)."""
    return int.__int__(x) if type(x) is Tainted else int(x)


def _wrap(t: DepTracker, value: Any, deps: int) -> Any:
    if type(value) is bool or type(value) is int:
        return Tainted(value, deps, t) if deps else value
    return value


def _binop(name: str) -> Any:
    base = getattr(int, name)

    def op(self: Tainted, other: Any) -> Any:
        r = base(int.__int__(self), plain(other) if type(other) is Tainted else other)
        if r is NotImplemented:
            return r
        return _wrap(self._t, r, self._deps | deps_of(other))

    op.__name__ = name
    return op


def _unop(name: str) -> Any:
    base = getattr(int, name)

    def op(self: Tainted) -> Any:
        return _wrap(self._t, base(int.__int__(self)), self._deps)

    op.__name__ = name
    return op


class Tainted(int):
    """An int that carries the loads it came from (the module docstring)."""

    _deps: int
    _t: DepTracker

    def __new__(cls, value: int, deps: int, tracker: DepTracker) -> Tainted:
        self = int.__new__(cls, int(value))
        self._deps = deps
        self._t = tracker
        return self

    def _branch(self) -> None:
        self._t.ctrl |= self._deps

    def __bool__(self) -> bool:
        self._branch()
        return int.__int__(self) != 0

    def __int__(self) -> int:
        self._branch()
        return int.__int__(self)

    def __index__(self) -> int:
        self._branch()
        return int.__int__(self)

    __hash__ = int.__hash__

    def __reduce__(self) -> Any:  # pickled (a result, an event's detail): a plain int
        return (int, (int.__int__(self),))

    def __repr__(self) -> str:
        return int.__repr__(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(int.__int__(self), spec)


for _n in (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__floordiv__", "__rfloordiv__",
    "__mod__", "__rmod__", "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__",
    "__lshift__", "__rlshift__", "__rshift__", "__rrshift__", "__pow__", "__rpow__",
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
):  # fmt: skip
    setattr(Tainted, _n, _binop(_n))
for _n in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(Tainted, _n, _unop(_n))


def taint(t: DepTracker, value: Any, bit: int) -> Any:
    """A load's result: ``value`` carrying operation ``bit`` (None and non-ints as they are)."""
    return _wrap(t, value, 1 << bit)


#: slot words of the process engine: a mask per kind, bit k = the operation k places
#: before the posting one's number; WINDOW bits, then one that stands for every older one
WINDOW = 62


def to_window(deps: int, n: int) -> int:
    """``deps`` (bits by operation number) relative to operation ``n``, in one word."""
    if not deps:
        return 0
    out = 0
    lo = max(0, n - WINDOW)
    if deps & ((1 << lo) - 1):
        out |= 1 << WINDOW
    for k in range(lo, n):
        if deps >> k & 1:
            out |= 1 << (n - 1 - k)
    return out


def from_window(word: int, n: int) -> int:
    """`to_window`'s inverse; the "older" bit stands for every operation before the window."""
    if not word:
        return 0
    lo = max(0, n - WINDOW)
    out = (1 << lo) - 1 if word >> WINDOW & 1 else 0
    for j in range(min(WINDOW, n)):
        if word >> j & 1:
            out |= 1 << (n - 1 - j)
    return out
