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
from dataclasses import dataclass, field
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.litmus.clex import read_litmus_text
from shmkernel.litmus.condition import cond_vars, condition
from shmkernel.litmus.lexer import Lexer, value
from shmkernel.litmus.statements import Stmt, statements


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


def parse_litmus(path: str) -> LitmusTest:
    """The litmus test in ``path``; anything it cannot read is a one-line `UsageError`."""
    name, lx = _header(path, _read_text(path))
    init, reg_init = _init_block(lx)
    variables = list(init)
    procs = _processes(lx, variables)
    locations: list[str] = []
    while lx.peek()[0] != "eof":
        k, v, ln = lx.next()
        if v == "locations":
            locations += _locations(lx)
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
        cond = condition(lx)
        if lx.peek()[0] != "eof":
            raise lx.error(f"unexpected {lx.peek()[1]!r} after the final condition")
        variables += [var for var in dict.fromkeys(cond_vars(cond)) if var not in variables]
        return LitmusTest(
            name, path, {v: init.get(v, 0) for v in variables}, reg_init, procs, quant, cond, locations, variables
        )
    raise UsageError(f"{path}: no exists/~exists/forall clause (truncated file?)")


def _read_text(path: str) -> str:
    text = read_litmus_text(path)
    # (* comments *): an opener followed by a blank or a star, so that code such
    # as WRITE_ONCE(*x, 1) is not taken for one
    return re.sub(r"\(\*(?=[\s*]).*?\*\)", lambda m: "\n" * m.group().count("\n"), text, flags=re.S)


def _header(path: str, text: str) -> tuple[str, Lexer]:
    """The ``C NAME`` line, and a lexer over the rest."""
    lines = text.split("\n")
    head = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if head is None:
        raise UsageError(f"{path}: empty file")
    first = lines[head].split()
    if len(first) < 2 or first[0] != "C":
        raise UsageError(f"{path}:{head + 1}: expected 'C NAME' (only the C litmus format is supported)")
    return first[1], Lexer("\n".join(lines[head + 1 :]), path, head + 2)


def _init_block(lx: Lexer) -> tuple[dict[str, int], dict[tuple[int, str], int]]:
    """``{ x=1; int y; 0:r0=2; }``: initial memory and registers."""
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
            reg_init[(int(v), reg)] = value(lx)
        elif k == "id":
            init[v] = 0
            if lx.peek()[1] == "=":
                lx.next()
                init[v] = value(lx)
        else:
            raise UsageError(f"{lx.path}:{ln}: unsupported init entry {v!r}")
        if lx.peek()[1] == ";":
            lx.next()
    lx.next()
    return init, reg_init


def _processes(lx: Lexer, variables: list[str]) -> list[Proc]:
    """``P0(int *x, ...) { ... }`` in order; their parameters join ``variables``."""
    procs: list[Proc] = []
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
        body = statements(lx, regs)
        procs.append(Proc(idx, body, regs))
    if not procs:
        raise lx.error("no process P0(...) { ... } found")
    return procs


def _locations(lx: Lexer) -> list[str]:
    """``locations [x; 0:r0;]``: what herd7 prints of each final state too."""
    out: list[str] = []
    lx.expect("[")
    while lx.peek()[1] != "]":
        t = lx.next()
        if t[0] == "eof":
            raise lx.error("unterminated locations")
        if t[0] == "num" and lx.peek()[1] == ":":
            lx.next()
            out.append(f"{t[1]}:{lx.next()[1]}")
        elif t[0] == "id":
            out.append(t[1])
    lx.next()
    return out
