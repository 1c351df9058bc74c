"""herd7's C litmus format, as the kernel community's corpus writes it.

The test: a ``C NAME`` line, free text, ``{ init }``, processes
``P<n>(params) { body }``, then ``locations [...]``, ``filter PROP`` and one of
``exists``/``~exists``/``forall`` PROP. Bodies are a C subset: declarations
(``int``, ``intptr_t``, pointers, casts), assignments to registers and through
pointers (plain accesses), calls of the kernel's primitives (any name; the
interpreter says which it knows), ``if``/``else`` and blocks. The init block
sets globals (``x=1``, ``int *p=&u``, ``a=x0`` (the address of ``x0``),
``atomic_t v=ATOMIC_INIT(2)``) and registers (``0:r2=b``). Anything else is
a one-line `UsageError` naming the construct and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.litmus.clex import Tokens, read_litmus_text, split_header, strip_comments, tokenize

Expr = Any
Stmt = Any
Value = Any  # int | ("addr", name)

#: words that start a type (declarations and casts)
TYPE_WORDS = {
    "int", "intptr_t", "uintptr_t", "long", "unsigned", "signed", "char", "short", "volatile", "const",
    "atomic_t", "atomic_long_t", "atomic64_t", "spinlock_t", "raw_spinlock_t", "struct", "bool", "u8", "u16",
    "u32", "u64", "s32", "s64", "void", "size_t", "unsigned_long",
}  # fmt: skip
_PREC = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="), ("<<", ">>"), ("+", "-")]
_PREC += [("*", "/", "%")]


@dataclass
class CProc:
    index: int
    params: list[str]
    body: list[Stmt]
    path: str = ""


@dataclass
class CTest:
    name: str
    path: str
    init: dict[str, Value]  # global -> initial value
    reg_init: dict[tuple[int, str], Value]
    procs: list[CProc]
    quantifier: str  # exists | ~exists | forall
    cond: Any
    filter: Any = None
    locations: list[Any] = field(default_factory=list)  # ("reg", p, r) | ("mem", x)


def parse_c_litmus(path: str) -> CTest:
    """The test in ``path``; whatever it cannot read is a one-line `UsageError`."""
    text = read_litmus_text(path)
    name, rest, line0 = split_header(strip_comments(text), path)
    tk = Tokens(tokenize(rest, path, line0), path)
    init, reg_init = _init_block(tk)
    procs = _procs(tk)
    test = CTest(name, path, init, reg_init, procs, "", None)
    while tk.peek()[0] != "eof":
        k, v, ln = tk.next()
        if v == "locations":
            test.locations += _locations(tk)
        elif v == "filter":
            test.filter = prop(tk)
        elif v == "~" and tk.take("exists"):
            test.quantifier = "~exists"
        elif v in ("exists", "forall") and not test.quantifier:
            test.quantifier = v
        else:
            raise UsageError(f"{path}:{ln}: unexpected {v!r} after the processes")
        if test.quantifier and test.cond is None:
            test.cond = prop(tk)
            tk.take(";")
    if test.cond is None:  # herd7 reads a test without a condition as ``exists true``
        test.quantifier, test.cond = "exists", ("const", True)
    return test


# ---------------------------------------------------------------- init block


def _skip_type(tk: Tokens) -> bool:
    """Consume a type (``struct srcu_struct``, ``volatile int``, ``int *``...); True if there was one."""
    seen = False
    while tk.peek()[0] == "id" and tk.peek()[1] in TYPE_WORDS:
        seen = True
        if tk.next()[1] == "struct":
            tk.next()
    while seen and tk.at("*"):
        tk.next()
    return seen


def init_value(tk: Tokens) -> Value:
    k, v, ln = tk.next()
    if v == "-" and tk.peek()[0] == "num":
        return -int(tk.next()[1], 0)
    if k == "num":
        return int(v, 0)
    if v == "&":
        return ("addr", tk.next()[1])
    if v == "ATOMIC_INIT":
        tk.expect("(")
        n = init_value(tk)
        tk.expect(")")
        return n
    if v == "(":  # a cast
        _skip_type(tk)
        tk.expect(")")
        return init_value(tk)
    if k == "id":
        return ("addr", v)
    raise UsageError(f"{tk.path}:{ln}: expected a value, found {v!r}")


def _init_block(tk: Tokens) -> tuple[dict[str, Value], dict[tuple[int, str], Value]]:
    init: dict[str, Value] = {}
    reg_init: dict[tuple[int, str], Value] = {}
    tk.expect("{")
    while not tk.take("}"):
        if tk.peek()[0] == "eof":
            raise tk.error("unterminated init block")
        if tk.take(";"):
            continue
        _skip_type(tk)
        k, v, ln = tk.next()
        if k == "num" and tk.take(":"):
            reg = tk.next()[1]
            reg_init[(int(v), reg)] = init_value(tk) if tk.take("=") else 0
        elif k == "id":
            if tk.take("["):
                raise UsageError(f"{tk.path}:{ln}: unsupported construct: array {v}[...]")
            init[v] = init_value(tk) if tk.take("=") else 0
        else:
            raise UsageError(f"{tk.path}:{ln}: unsupported init entry {v!r}")
    return init, reg_init


def _procs(tk: Tokens) -> list[CProc]:
    procs: list[CProc] = []
    while True:
        if tk.at("void"):
            tk.next()
        k, v, ln = tk.peek()
        if not (k == "id" and re.fullmatch(r"P\d+", v)):
            break
        tk.next()
        if int(v[1:]) != len(procs):
            raise tk.error(f"processes must be P0, P1, ... in order (found {v})", ln)
        tk.expect("(")
        params: list[str] = []
        while not tk.take(")"):
            if tk.peek()[0] == "eof":
                raise tk.error("unterminated parameter list")
            t = tk.next()
            if t[0] == "id" and t[1] not in TYPE_WORDS and tk.at(",", ")"):
                params.append(t[1])
        procs.append(CProc(len(procs), params, block(tk), tk.path))
    if not procs:
        raise tk.error("no process P0(...) { ... } found")
    return procs


def _locations(tk: Tokens) -> list[Any]:
    out: list[Any] = []
    tk.expect("[")
    while not tk.take("]"):
        t = tk.next()
        if t[0] == "eof":
            raise tk.error("unterminated locations")
        if t[0] == "num" and tk.take(":"):
            out.append(("reg", int(t[1]), tk.next()[1]))
        elif t[0] == "id":
            out.append(("mem", t[1]))
    return out


# ---------------------------------------------------------------- statements


def block(tk: Tokens) -> list[Stmt]:
    tk.expect("{")
    out: list[Stmt] = []
    while not tk.take("}"):
        if tk.peek()[0] == "eof":
            raise tk.error("unterminated block: missing '}'")
        out += statement(tk)
    return out


def statement(tk: Tokens) -> list[Stmt]:
    k, v, ln = tk.peek()
    if v == "{" and k == "op":
        return [("block", block(tk))]
    if v == ";":
        tk.next()
        return []
    if v == "if":
        tk.next()
        tk.expect("(")
        c = expr(tk)
        tk.expect(")")
        then = statement(tk)
        els = statement(tk) if tk.take("else") else []
        return [("if", c, then, els, ln)]
    if v in ("while", "for", "do", "switch", "goto", "return"):
        raise UsageError(f"{tk.path}:{ln}: unsupported construct {v!r}")
    if k == "id" and v in TYPE_WORDS:
        _skip_type(tk)
        out = []
        while True:
            while tk.take("*"):
                pass
            name = tk.next()
            if name[0] != "id":
                raise UsageError(f"{tk.path}:{name[2]}: expected a name in a declaration, found {name[1]!r}")
            out.append(("decl", name[1], expr(tk) if tk.take("=") else None, name[2]))
            if not tk.take(","):
                break
        tk.expect(";")
        return out
    e = expr(tk)
    if tk.take("="):
        rhs = expr(tk)
        if e[0] not in ("name", "deref"):
            raise UsageError(f"{tk.path}:{ln}: cannot assign to this expression")
        tk.expect(";")
        return [("assign", e, rhs, ln)]
    tk.expect(";")
    return [("expr", e, ln)]


def expr(tk: Tokens, level: int = 0) -> Expr:
    if level == 0:
        c = expr(tk, 1)
        if tk.take("?"):
            a = expr(tk)
            tk.expect(":")
            return ("cond", c, a, expr(tk))
        return c
    if level > len(_PREC):
        return _unary(tk)
    left = expr(tk, level + 1)
    while tk.peek()[0] == "op" and tk.peek()[1] in _PREC[level - 1]:
        op = tk.next()[1]
        left = ("bin", op, left, expr(tk, level + 1))
    return left


def _unary(tk: Tokens) -> Expr:
    k, v, ln = tk.next()
    if k == "op" and v in ("-", "!", "~"):
        return ("un", v, _unary(tk))
    if k == "op" and v == "*":
        return ("deref", _unary(tk))
    if k == "op" and v == "&":
        return ("addrof", _unary(tk))
    if k == "op" and v == "(":
        if tk.peek()[0] == "id" and tk.peek()[1] in TYPE_WORDS:
            _skip_type(tk)
            tk.expect(")")
            return _unary(tk)  # casts change nothing here
        e = expr(tk)
        tk.expect(")")
        return e
    if k == "num":
        return ("num", int(v, 0))
    if k == "id":
        if tk.take("("):
            args = []
            while not tk.take(")"):
                args.append(expr(tk))
                if not tk.at(")"):
                    tk.expect(",")
            return ("call", v, args, ln)
        if tk.at("->", ".", "["):
            raise UsageError(f"{tk.path}:{ln}: unsupported construct: {v}{tk.peek()[1]}... (fields and arrays)")
        return ("name", v)
    raise UsageError(f"{tk.path}:{ln}: unexpected {v or 'end of file'!r} in an expression")


# ---------------------------------------------------------------- propositions


#: binary connectives of a proposition, loosest first
_PROP_LEVELS = ((("->", "=>"), "imp"), (("\\/",), "or"), (("/\\",), "and"))


def prop(tk: Tokens, level: int = 0) -> Any:
    if level == len(_PROP_LEVELS):
        return _atom(tk)
    ops, name = _PROP_LEVELS[level]
    left = prop(tk, level + 1)
    while tk.at(*ops):
        tk.next()
        left = (name, left, prop(tk, level + 1))
    return left


def _atom(tk: Tokens) -> Any:
    k, v, ln = tk.peek()
    if tk.take("~") or tk.take("not"):
        return ("not", _atom(tk))
    if tk.take("("):
        c = prop(tk)
        tk.expect(")")
        return c
    if v in ("true", "false"):
        tk.next()
        return ("const", v == "true")
    if k == "num" and tk.peek(1)[1] == ":":
        tk.next()
        tk.next()
        lhs: Any = ("reg", int(v), tk.next()[1])
    elif k == "id":
        tk.next()
        lhs = ("mem", v)
    elif v == "*" and tk.peek(1)[0] == "id":
        tk.next()
        lhs = ("deref", tk.next()[1])
    else:
        raise UsageError(f"{tk.path}:{ln}: unexpected {v or 'end of file'!r} in a condition")
    op = tk.next()[1]
    if op not in ("=", "==", "!="):
        raise UsageError(f"{tk.path}:{ln}: expected '=' or '!=' after {lhs[-1]!r} in a condition")
    if tk.peek()[0] == "num" and tk.peek(1)[1] == ":":  # another register
        p = int(tk.next()[1])
        tk.next()
        rhs: Any = ("reg", p, tk.next()[1])
    else:
        rhs = init_value(tk)
    return ("ne" if op == "!=" else "eq", lhs, rhs)
