"""Run a litmus process on an emulated CPU: each statement through ``ctx``.

Registers are the process's own Python values; every shared access is one
ctx operation, so the same interpreter runs free on the hardware, scheduled,
and under an emulated memory model. Control dependencies are kept by
construction: an ``if`` is decided on the value the load really returned.
"""

from __future__ import annotations

import os
from typing import Any

from shmkernel.runtime.ctx import Ctx


def _eval(e: Any, regs: dict[str, int]) -> int:
    k = e[0]
    if k == "int":
        return e[1]
    if k == "reg":
        return regs.get(e[1], 0)
    if k == "not":
        return int(not _eval(e[1], regs))
    if k == "neg":
        return -_eval(e[1], regs)
    op, a, b = e[1], _eval(e[2], regs), _eval(e[3], regs)
    return {
        "+": lambda: a + b,
        "-": lambda: a - b,
        "*": lambda: a * b,
        "&": lambda: a & b,
        "|": lambda: a | b,
        "^": lambda: a ^ b,
        "==": lambda: int(a == b),
        "!=": lambda: int(a != b),
        "<": lambda: int(a < b),
        ">": lambda: int(a > b),
        "<=": lambda: int(a <= b),
        ">=": lambda: int(a >= b),
        "&&": lambda: int(bool(a) and bool(b)),
        "||": lambda: int(bool(a) or bool(b)),
    }[op]()


def execute(ctx: Ctx, stmts: list, regs: dict[str, int], addr: dict[str, int]) -> None:
    for s in stmts:
        k = s[0]
        if k == "write":
            ctx.write_once(addr[s[1]], _eval(s[2], regs))
        elif k == "read":
            regs[s[1]] = ctx.read_once(addr[s[2]])
        elif k == "load_acquire":
            regs[s[1]] = ctx.smp_load_acquire(addr[s[2]])
        elif k == "store_release":
            ctx.smp_store_release(addr[s[1]], _eval(s[2], regs))
        elif k in ("fence", "kernel"):  # a fence; an RCU service (rcu_read_lock() ...)
            getattr(ctx, s[1])()
        elif k == "xchg":
            regs[s[1]] = ctx.atomic_xchg(addr[s[2]], _eval(s[3], regs))
        elif k == "cmpxchg":
            regs[s[1]] = ctx.atomic_cmpxchg(addr[s[2]], _eval(s[3], regs), _eval(s[4], regs))
        elif k == "lock":
            ctx.spin_lock(addr[s[1]])
        elif k == "unlock":
            ctx.spin_unlock(addr[s[1]])
        elif k == "atomic_add":
            ctx.atomic_add(addr[s[1]], _eval(s[2], regs))
        elif k == "assign":
            regs[s[1]] = _eval(s[2], regs)
        elif k == "if":
            execute(ctx, s[2] if _eval(s[1], regs) else s[3], regs, addr)
        elif k == "block":
            execute(ctx, s[1], regs, addr)
        else:  # pragma: no cover - the parser only makes the kinds above
            raise ValueError(f"unknown statement {k}")


def run_once(ctx: Ctx, p: dict[str, Any]) -> dict[str, int]:
    """One execution of the process body; returns its registers."""
    regs = {r: 0 for r in p["regs"]}
    regs.update(p["reg_init"])
    execute(ctx, p["body"], regs, p["addr"])
    return regs


def run_many(ctx: Ctx, p: dict[str, Any]) -> list[tuple[int, ...]]:
    """Free mode: ``runs`` executions, started together at a shared go word
    (the coordinator resets memory between them, as litmus7 does)."""
    w, go, done = ctx.w, p["go"], p["done"]
    order = p["regs"]
    out = []
    for k in range(1, p["runs"] + 1):
        while w[go] < k:
            if w[ctx.ctl.stop]:
                return out
            os.sched_yield()
        regs = run_once(ctx, p)
        out.append(tuple(regs.get(r, 0) for r in order))
        ctx.atomics.fetch_add(done, 1)
    return out


def coordinate(ctx: Ctx, p: dict[str, Any]) -> list[tuple[int, ...]]:
    """Free mode: reset memory, release a run, wait for every process, record memory."""
    w, go, done, n = ctx.w, p["go"], p["done"], p["nprocs"]
    mem = []
    for k in range(1, p["runs"] + 1):
        for var, a in p["addr"].items():
            w[a] = p["init"][var]
        ctx.smp_mb()
        ctx.atomics.store(go, k)
        while w[done] < n * k:
            if w[ctx.ctl.stop]:
                return mem
            os.sched_yield()
        mem.append(tuple(w[p["addr"][v]] for v in p["variables"]))
    return mem
