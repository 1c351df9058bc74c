"""The final condition of a litmus test (``exists``, ``~exists``, ``forall``):
parsed, evaluated on an outcome, printed as herd7 does."""

from __future__ import annotations

from typing import Any

from shmkernel.errors import UsageError
from shmkernel.litmus.lexer import Lexer, value


def condition(lx: Lexer) -> Any:
    left = _cond_and(lx)
    while lx.peek()[1] == "\\/":
        lx.next()
        left = ("or", left, _cond_and(lx))
    return left


def _cond_and(lx: Lexer) -> Any:
    left = _cond_atom(lx)
    while lx.peek()[1] == "/\\":
        lx.next()
        left = ("and", left, _cond_atom(lx))
    return left


def _cond_atom(lx: Lexer) -> Any:
    kind, val, line = lx.peek()
    if val == "~":
        lx.next()
        return ("not", _cond_atom(lx))
    if val == "(":
        lx.next()
        c = condition(lx)
        lx.expect(")")
        return c
    if val in ("true", "false"):
        lx.next()
        return ("const", val == "true")
    if kind == "num" and lx.peek(1)[1] == ":":
        proc = int(lx.next()[1])
        lx.next()
        k, reg, ln = lx.next()
        if k != "id":
            raise UsageError(f"{lx.path}:{ln}: expected a register after {proc}:")
        lx.expect("=")
        return ("eq", ("reg", proc, reg), value(lx))
    if kind == "id":
        lx.next()
        lx.expect("=")
        return ("eq", ("mem", val), value(lx))
    raise UsageError(f"{lx.path}:{line}: unexpected {val!r} in the final condition")


def cond_vars(c: Any) -> list[str]:
    if c[0] == "eq":
        return [c[1][1]] if c[1][0] == "mem" else []
    if c[0] in ("and", "or"):
        return cond_vars(c[1]) + cond_vars(c[2])
    if c[0] == "not":
        return cond_vars(c[1])
    return []


def holds(c: Any, regs: dict[tuple[int, str], int], mem: dict[str, int]) -> bool:
    op = c[0]
    if op == "eq":
        lhs = regs.get((c[1][1], c[1][2]), 0) if c[1][0] == "reg" else mem.get(c[1][1], 0)
        return lhs == c[2]
    if op == "and":
        return holds(c[1], regs, mem) and holds(c[2], regs, mem)
    if op == "or":
        return holds(c[1], regs, mem) or holds(c[2], regs, mem)
    if op == "not":
        return not holds(c[1], regs, mem)
    return bool(c[1])


def cond_text(c: Any) -> str:
    op = c[0]
    if op == "eq":
        lhs = f"{c[1][1]}:{c[1][2]}" if c[1][0] == "reg" else c[1][1]
        return f"{lhs}={c[2]}"
    if op in ("and", "or"):
        return f"{cond_text(c[1])} {'/' + chr(92) if op == 'and' else chr(92) + '/'} {cond_text(c[2])}"
    if op == "not":
        return f"~{cond_text(c[1])}"
    return "true" if c[1] else "false"
