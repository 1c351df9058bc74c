"""The statements of a litmus test's processes: expressions, the kernel's
accessors and fences, ``if``/``else`` (see `shmkernel.litmus.parse` for the list)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.litmus.lexer import Lexer

Expr = Any  # ("int", v) | ("reg", name) | ("bin", op, a, b) | ("not", a) | ("neg", a)
Stmt = Any


_FENCES = {"smp_mb", "smp_rmb", "smp_wmb"}
#: the LKMM's conditional full fences, run as smp_mb() (at least as strong: never an
#: outcome they forbid, maybe fewer than they allow)
_AS_MB = {"smp_mb__before_atomic", "smp_mb__after_atomic", "smp_mb__after_spinlock", "smp_mb__after_unlock_lock"}
#: RCU: the kernel's RCU-sched services (one flavour, as the LKMM has it): a read-side
#: section is a preempt-disabled one; scheduled only (`shmkernel.schedule.rcu_memory`)
RCU = {
    "rcu_read_lock": "preempt_disable",
    "rcu_read_unlock": "preempt_enable",
    "synchronize_rcu": "synchronize_sched",
    "synchronize_rcu_expedited": "synchronize_sched",
}
#: statements on a location: name -> (value arguments, the statement from (location, arguments))
_LOC_STMTS: dict[str, tuple[int, Callable[[str, list[Expr]], Stmt]]] = {
    "spin_lock": (0, lambda loc, a: ("lock", loc)),
    "spin_unlock": (0, lambda loc, a: ("unlock", loc)),
    "atomic_set": (1, lambda loc, a: ("write", loc, a[0])),
    "atomic_add": (1, lambda loc, a: ("atomic_add", loc, a[0])),
    "atomic_sub": (1, lambda loc, a: ("atomic_add", loc, ("neg", a[0]))),
    "atomic_inc": (0, lambda loc, a: ("atomic_add", loc, ("int", 1))),
    "atomic_dec": (0, lambda loc, a: ("atomic_add", loc, ("int", -1))),
}
_PREC = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*",)]


def _expr(lx: Lexer, level: int = 0) -> Expr:
    if level == len(_PREC):
        return _unary(lx)
    left = _expr(lx, level + 1)
    while lx.peek()[1] in _PREC[level]:
        op = lx.next()[1]
        left = ("bin", op, left, _expr(lx, level + 1))
    return left


def _unary(lx: Lexer) -> Expr:
    kind, val, line = lx.next()
    if val == "!":
        return ("not", _unary(lx))
    if val == "-":
        return ("neg", _unary(lx))
    if val == "(":
        e = _expr(lx)
        lx.expect(")")
        return e
    if kind == "num":
        return ("int", int(val))
    if kind == "id":
        if lx.peek()[1] == "(":
            raise UsageError(f"{lx.path}:{line}: unsupported construct {val!r} in an expression")
        return ("reg", val)
    raise UsageError(f"{lx.path}:{line}: unexpected {val!r} in an expression")


def _location(lx: Lexer) -> str:
    if lx.peek()[1] in ("*", "&"):
        lx.next()
    kind, val, line = lx.next()
    if kind != "id":
        raise UsageError(f"{lx.path}:{line}: expected a shared variable, found {val!r}")
    return val


def _call_args(lx: Lexer, name: str, n_exprs: int) -> tuple[str, list[Expr]]:
    lx.expect("(")
    loc = _location(lx)
    args = []
    for _ in range(n_exprs):
        lx.expect(",")
        args.append(_expr(lx))
    lx.expect(")")
    return loc, args


def _rhs_call(lx: Lexer, reg: str) -> Stmt:
    kind, name, line = lx.peek()
    base = re.sub(r"_(relaxed|acquire|release)$", "", name)
    if name in ("READ_ONCE", "atomic_read"):
        lx.next()
        loc, _ = _call_args(lx, name, 0)
        return ("read", reg, loc)
    if name == "smp_load_acquire":
        lx.next()
        loc, _ = _call_args(lx, name, 0)
        return ("load_acquire", reg, loc)
    if base == "xchg":
        lx.next()
        loc, args = _call_args(lx, name, 1)
        return ("xchg", reg, loc, args[0])
    if base == "cmpxchg":
        lx.next()
        loc, args = _call_args(lx, name, 2)
        return ("cmpxchg", reg, loc, args[0], args[1])
    if kind == "id" and lx.peek(1)[1] == "(":
        raise UsageError(f"{lx.path}:{line}: unsupported construct {name!r}")
    return ("assign", reg, _expr(lx))


def statements(lx: Lexer, regs: list[str]) -> list[Stmt]:
    kind, val, line = lx.peek()
    if val == "{":
        lx.next()
        out: list[Stmt] = []
        while lx.peek()[1] != "}":
            if lx.peek()[0] == "eof":
                raise lx.error("unterminated block")
            out.extend(statements(lx, regs))
        lx.next()
        return [("block", out)]
    if val == ";":
        lx.next()
        return []
    if val == "int":
        lx.next()
        out = []
        while True:
            if lx.peek()[1] == "*":
                raise lx.error("unsupported construct: pointer registers")
            k, name, ln = lx.next()
            if k != "id":
                raise UsageError(f"{lx.path}:{ln}: expected a register name, found {name!r}")
            regs.append(name)
            if lx.peek()[1] == "=":
                lx.next()
                out.append(_rhs_call(lx, name))
            if lx.peek()[1] == ",":
                lx.next()
                continue
            lx.expect(";")
            return out
    if val == "if":
        lx.next()
        lx.expect("(")
        cond = _expr(lx)
        lx.expect(")")
        then = statements(lx, regs)
        other: list[Stmt] = []
        if lx.peek()[1] == "else":
            lx.next()
            other = statements(lx, regs)
        return [("if", cond, then, other)]
    if kind != "id":
        raise UsageError(f"{lx.path}:{line}: unexpected {val!r}")
    if val == "WRITE_ONCE":
        lx.next()
        loc, args = _call_args(lx, val, 1)
        lx.expect(";")
        return [("write", loc, args[0])]
    if val == "smp_store_release":
        lx.next()
        loc, args = _call_args(lx, val, 1)
        lx.expect(";")
        return [("store_release", loc, args[0])]
    if val in _FENCES or val in _AS_MB or val in RCU:
        lx.next()
        lx.expect("(")
        lx.expect(")")
        lx.expect(";")
        return [("kernel", RCU[val]) if val in RCU else ("fence", val if val in _FENCES else "smp_mb")]
    if val in _LOC_STMTS:
        lx.next()
        nargs, build = _LOC_STMTS[val]
        loc, args = _call_args(lx, val, nargs)
        lx.expect(";")
        return [build(loc, args)]
    if lx.peek(1)[1] == "=":
        lx.next()
        lx.next()
        s = _rhs_call(lx, val)
        lx.expect(";")
        if val not in regs:
            regs.append(val)  # herd7 accepts undeclared registers too
        return [s]
    if lx.peek(1)[1] == "(":
        raise UsageError(f"{lx.path}:{line}: unsupported construct {val!r}")
    raise UsageError(f"{lx.path}:{line}: unexpected {val!r}")
