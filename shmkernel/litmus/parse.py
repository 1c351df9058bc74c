"""Parse the Linux-kernel memory model's litmus C format (tools/memory-model).

Supported: the ``C name`` line, ``(* comments *)``, the ``{}`` init block
(``x=1;``, ``int x = 1;``, ``0:r0=2;``), ``P<n>(int *x, ...) { ... }`` bodies
with ``int`` registers, ``READ_ONCE``, ``WRITE_ONCE``, ``smp_mb``, ``smp_rmb``,
``smp_wmb`` (and ``smp_mb__{before,after}_atomic``, ``smp_mb__after_spinlock``,
``smp_mb__after_unlock_lock``, run as ``smp_mb``), ``spin_lock``/``spin_unlock``
(``spinlock_t *`` parameters; see the models for what a lock orders), ``atomic_read``/``atomic_set``/``atomic_inc``/
``atomic_dec``/``atomic_add``/``atomic_sub`` (``atomic_t *``, ``ATOMIC_INIT(n)``),
``smp_store_release``, ``smp_load_acquire``, ``xchg``,
``cmpxchg`` (and their ``_relaxed/_acquire/_release`` spellings, run with the
full ordering: never an outcome the weaker form forbids), ``if``/``else`` with
simple conditions, register arithmetic, the ``locations [...]`` line, and the
final ``exists`` / ``~exists`` / ``forall`` clause with ``/\\``, ``\\/``, ``~``.
Anything else is a `UsageError` naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shmkernel.errors import UsageError

Expr = Any  # ("int", v) | ("reg", name) | ("bin", op, a, b) | ("not", a) | ("neg", a)
Stmt = Any


@dataclass
class Proc:
    index: int
    body: list[Stmt]
    regs: list[str]


@dataclass
class LitmusTest:
    name: str
    path: str
    init: dict[str, int]
    reg_init: dict[tuple[int, str], int]
    procs: list[Proc]
    quantifier: str  # "exists", "~exists", "forall"
    cond: Any
    locations: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)


_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<num>-?\d+)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>/\\|\\/|==|!=|<=|>=|&&|\|\||[-+*&|^!~<>=;:,(){}\[\]])
""", re.VERBOSE)


class _Lexer:
    def __init__(self, text: str, path: str, line0: int) -> None:
        self.toks: list[tuple[str, str, int]] = []
        pos, line = 0, line0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise UsageError(f"{path}:{line}: unexpected character {text[pos]!r}")
            kind = m.lastgroup
            val = m.group()
            if kind != "ws":
                self.toks.append((kind or "", val, line))
            line += val.count("\n")
            pos = m.end()
        self.i = 0
        self.path = path

    def peek(self, k: int = 0) -> tuple[str, str, int]:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else ("eof", "", self.toks[-1][2] if self.toks else 0)

    def next(self) -> tuple[str, str, int]:
        t = self.peek()
        self.i += 1
        return t

    def expect(self, val: str) -> None:
        t = self.next()
        if t[1] != val:
            raise UsageError(f"{self.path}:{t[2]}: expected {val!r}, found {t[1] or 'end of file'!r}")

    def error(self, msg: str) -> UsageError:
        return UsageError(f"{self.path}:{self.peek()[2]}: {msg}")


_FENCES = {"smp_mb", "smp_rmb", "smp_wmb"}
#: the LKMM's conditional full fences, run as smp_mb() (at least as strong: never an
#: outcome they forbid, maybe fewer than they allow)
_AS_MB = {"smp_mb__before_atomic", "smp_mb__after_atomic", "smp_mb__after_spinlock",
          "smp_mb__after_unlock_lock"}
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


def _expr(lx: _Lexer, level: int = 0) -> Expr:
    if level == len(_PREC):
        return _unary(lx)
    left = _expr(lx, level + 1)
    while lx.peek()[1] in _PREC[level]:
        op = lx.next()[1]
        left = ("bin", op, left, _expr(lx, level + 1))
    return left


def _unary(lx: _Lexer) -> Expr:
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


def _location(lx: _Lexer) -> str:
    if lx.peek()[1] in ("*", "&"):
        lx.next()
    kind, val, line = lx.next()
    if kind != "id":
        raise UsageError(f"{lx.path}:{line}: expected a shared variable, found {val!r}")
    return val


def _call_args(lx: _Lexer, name: str, n_exprs: int) -> tuple[str, list[Expr]]:
    lx.expect("(")
    loc = _location(lx)
    args = []
    for _ in range(n_exprs):
        lx.expect(",")
        args.append(_expr(lx))
    lx.expect(")")
    return loc, args


def _rhs_call(lx: _Lexer, reg: str) -> Stmt:
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


def _stmt(lx: _Lexer, regs: list[str]) -> list[Stmt]:
    kind, val, line = lx.peek()
    if val == "{":
        lx.next()
        out: list[Stmt] = []
        while lx.peek()[1] != "}":
            if lx.peek()[0] == "eof":
                raise lx.error("unterminated block")
            out.extend(_stmt(lx, regs))
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
        then = _stmt(lx, regs)
        other: list[Stmt] = []
        if lx.peek()[1] == "else":
            lx.next()
            other = _stmt(lx, regs)
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
    if val in _FENCES or val in _AS_MB:
        lx.next()
        lx.expect("(")
        lx.expect(")")
        lx.expect(";")
        return [("fence", val if val in _FENCES else "smp_mb")]
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


def _cond(lx: _Lexer) -> Any:
    left = _cond_and(lx)
    while lx.peek()[1] == "\\/":
        lx.next()
        left = ("or", left, _cond_and(lx))
    return left


def _cond_and(lx: _Lexer) -> Any:
    left = _cond_atom(lx)
    while lx.peek()[1] == "/\\":
        lx.next()
        left = ("and", left, _cond_atom(lx))
    return left


def _cond_atom(lx: _Lexer) -> Any:
    kind, val, line = lx.peek()
    if val == "~":
        lx.next()
        return ("not", _cond_atom(lx))
    if val == "(":
        lx.next()
        c = _cond(lx)
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
        return ("eq", ("reg", proc, reg), _value(lx))
    if kind == "id":
        lx.next()
        lx.expect("=")
        return ("eq", ("mem", val), _value(lx))
    raise UsageError(f"{lx.path}:{line}: unexpected {val!r} in the final condition")


def _value(lx: _Lexer) -> int:
    k, v, ln = lx.next()
    if v == "ATOMIC_INIT":
        lx.expect("(")
        n = _value(lx)
        lx.expect(")")
        return n
    if v == "-":
        return -_value(lx)
    if k != "num":
        raise UsageError(f"{lx.path}:{ln}: expected an integer, found {v!r}")
    return int(v)


def parse_litmus(path: str) -> LitmusTest:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    if b"\0" in raw:
        raise UsageError(f"{path}: binary file, not a litmus test")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text, not a litmus test") from None
    # (* comments *): an opener followed by a blank or a star, so that code such
    # as WRITE_ONCE(*x, 1) is not taken for one
    text = re.sub(r"\(\*(?=[\s*]).*?\*\)", lambda m: "\n" * m.group().count("\n"), text, flags=re.S)
    lines = text.split("\n")
    head = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if head is None:
        raise UsageError(f"{path}: empty file")
    first = lines[head].split()
    if len(first) < 2 or first[0] != "C":
        raise UsageError(f"{path}:{head + 1}: expected 'C NAME' (only the C litmus format is supported)")
    name = first[1]
    lx = _Lexer("\n".join(lines[head + 1:]), path, head + 2)
    init: dict[str, int] = {}
    reg_init: dict[tuple[int, str], int] = {}
    lx.expect("{")
    while lx.peek()[1] != "}":
        if lx.peek()[0] == "eof":
            raise lx.error("unterminated init block")
        if lx.peek()[1] == "int":
            lx.next()
        k, v, ln = lx.next()
        if k == "num" and lx.peek()[1] == ":":
            lx.next()
            reg = lx.next()[1]
            lx.expect("=")
            reg_init[(int(v), reg)] = _value(lx)
        elif k == "id":
            init[v] = 0
            if lx.peek()[1] == "=":
                lx.next()
                init[v] = _value(lx)
        else:
            raise UsageError(f"{path}:{ln}: unsupported init entry {v!r}")
        if lx.peek()[1] == ";":
            lx.next()
    lx.next()
    procs: list[Proc] = []
    variables = list(init)
    while lx.peek()[0] == "id" and re.fullmatch(r"P\d+", lx.peek()[1]):
        idx = int(lx.next()[1][1:])
        if idx != len(procs):
            raise lx.error(f"processes must be P0, P1, ... in order (found P{idx})")
        lx.expect("(")
        while lx.peek()[1] != ")":
            t = lx.next()
            if t[0] == "id" and t[1] not in ("int", "atomic_t", "spinlock_t") and lx.peek()[1] in (",", ")"):
                if t[1] not in variables:
                    variables.append(t[1])
            if t[0] == "eof":
                raise lx.error("unterminated parameter list")
        lx.next()
        regs: list[str] = []
        body = _stmt(lx, regs)
        procs.append(Proc(idx, body, regs))
    if not procs:
        raise lx.error("no process P0(...) { ... } found")
    locations: list[str] = []
    quant = None
    while lx.peek()[0] != "eof":
        k, v, ln = lx.next()
        if v == "locations":
            lx.expect("[")
            while lx.peek()[1] != "]":
                t = lx.next()
                if t[0] == "eof":
                    raise lx.error("unterminated locations")
                if t[0] == "num" and lx.peek()[1] == ":":
                    lx.next()
                    locations.append(f"{t[1]}:{lx.next()[1]}")
                elif t[0] == "id":
                    locations.append(t[1])
            lx.next()
            continue
        if v == "~" and lx.peek()[1] == "exists":
            lx.next()
            quant = "~exists"
        elif v in ("exists", "forall"):
            quant = v
        elif v == "filter":
            raise UsageError(f"{path}:{ln}: unsupported construct 'filter'")
        else:
            raise UsageError(f"{path}:{ln}: unexpected {v!r} after the processes")
        cond = _cond(lx)
        if lx.peek()[0] != "eof":
            raise lx.error(f"unexpected {lx.peek()[1]!r} after the final condition")
        for var in _cond_vars(cond):
            if var not in variables:
                variables.append(var)
        return LitmusTest(name, path, {v: init.get(v, 0) for v in variables}, reg_init, procs, quant, cond,
                          locations, variables)
    raise UsageError(f"{path}: no exists/~exists/forall clause (truncated file?)")


def _cond_vars(c: Any) -> list[str]:
    if c[0] == "eq":
        return [c[1][1]] if c[1][0] == "mem" else []
    if c[0] in ("and", "or"):
        return _cond_vars(c[1]) + _cond_vars(c[2])
    if c[0] == "not":
        return _cond_vars(c[1])
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
