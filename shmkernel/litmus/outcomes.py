"""The final states of a litmus test's executions, its condition and its
``filter`` evaluated on them, and herd7's verdict (Never/Sometimes/Always).

A state shows what herd7 shows: the registers and locations the condition
names, then those of ``locations``. Addresses print as the location's name.
The verdict is about the condition's proposition, whatever its quantifier
(herd7's ``Observation`` line): Never if no execution satisfies it, Always if
every one does, Sometimes otherwise.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from shmkernel.litmus.cparse import CTest
from shmkernel.litmus.events import UNKNOWN, evaluate

Built = Any  # shmkernel.litmus.axiomatic.Built (which imports this module)


def prop_atoms(c: Any) -> list[Any]:
    if c is None or c[0] == "const":
        return []
    if c[0] in ("eq", "ne"):
        return [c[1]] + ([c[2]] if isinstance(c[2], tuple) and c[2][0] == "reg" else [])
    if c[0] == "not":
        return prop_atoms(c[1])
    return prop_atoms(c[1]) + prop_atoms(c[2])


class Outcomes:
    def __init__(self, test: CTest) -> None:
        self.test = test
        shown = prop_atoms(test.cond) + list(test.locations)
        self.keys: list[Any] = list(dict.fromkeys(k if k[0] != "deref" else ("mem", k[1]) for k in shown))
        self.filter_keys = [k for k in dict.fromkeys(prop_atoms(test.filter)) if k not in self.keys]
        self.states: Counter = Counter()
        self.positive = self.negative = 0

    def env(self, b: Built, vals: dict[int, Any], last: dict[str, int]) -> dict[Any, Any] | None:
        """The values the condition and ``locations`` name; None if the filter drops the execution."""

        def get(k: Any) -> Any:
            if k[0] == "reg":
                p, r = k[1], k[2]
                regs = b.regs[p] if p < len(b.regs) else {}
                return evaluate(regs[r], vals) if r in regs else self._reg_init(p, r)
            loc = k[1]
            if loc in last:
                return evaluate(b.terms[last[loc]], vals)
            v = self.test.init.get(loc, 0)
            return v[1] if isinstance(v, tuple) else v

        env = {k: get(k) for k in self.keys + self.filter_keys}
        if self.test.filter is not None and not holds(self.test.filter, env):
            return None
        return env

    def add(self, b: Built, vals: dict[int, Any], last: dict[str, int]) -> None:
        env = self.env(b, vals, last)
        if env is None:
            return
        ok = holds(self.test.cond, env)
        key = tuple((k, env[k]) for k in self.keys)
        if key not in self.states:
            if ok:
                self.positive += 1
            else:
                self.negative += 1
        self.states[key] += 1

    def _reg_init(self, p: int, r: str) -> Any:
        v = self.test.reg_init.get((p, r), 0)
        return v[1] if isinstance(v, tuple) else v

    @property
    def observation(self) -> str:
        if not self.positive:
            return "Never"
        return "Always" if not self.negative else "Sometimes"

    def holds_for(self, key: tuple) -> bool:
        return holds(self.test.cond, dict(key))


def _value(v: Any, env: dict[Any, Any]) -> Any:
    if isinstance(v, tuple):
        return env.get(v) if v[0] == "reg" else v[1]
    return v


def holds(c: Any, env: dict[Any, Any]) -> bool:
    op = c[0]
    if op == "const":
        return bool(c[1])
    if op in ("eq", "ne"):
        lhs = c[1] if c[1][0] != "deref" else ("mem", c[1][1])
        got, want = env.get(lhs, 0), _value(c[2], env)
        same = got is not UNKNOWN and want is not UNKNOWN and got == want
        return same if op == "eq" else not same
    if op == "not":
        return not holds(c[1], env)
    if op == "and":
        return holds(c[1], env) and holds(c[2], env)
    if op == "or":
        return holds(c[1], env) or holds(c[2], env)
    return (not holds(c[1], env)) or holds(c[2], env)  # imp


def key_text(k: Any) -> str:
    return f"{k[1]}:{k[2]}" if k[0] == "reg" else str(k[1])


def prop_text(c: Any) -> str:
    op = c[0]
    if op == "const":
        return "true" if c[1] else "false"
    if op in ("eq", "ne"):
        rhs = c[2]
        r = key_text(rhs) if isinstance(rhs, tuple) and rhs[0] == "reg" else (rhs[1] if isinstance(rhs, tuple) else rhs)
        lhs = key_text(c[1]) if c[1][0] != "deref" else f"*{c[1][1]}"
        return f"{lhs}{'=' if op == 'eq' else '!='}{r}"
    if op == "not":
        return f"~{prop_text(c[1])}"
    sep = {"and": " /\\ ", "or": " \\/ ", "imp": " -> "}[op]
    return f"({prop_text(c[1])}{sep}{prop_text(c[2])})"
