"""Hardware atomics through libatomic, in one process and across real processes."""

from __future__ import annotations

import mmap

from shmkernel.hw.atomics import Atomics
from shmkernel.memory.layout import Layout
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.machine import Machine, Program


def _atomics(n: int = 16) -> tuple[Atomics, memoryview]:
    buf = mmap.mmap(-1, 8 * n)
    return Atomics(buf, n), memoryview(buf).cast("q")


def test_fetch_add_exchange_cmpxchg_semantics():
    a, w = _atomics()
    assert a.fetch_add(1, 5) == 0 and w[1] == 5
    assert a.fetch_add(1, -7) == 5 and w[1] == -2
    assert a.exchange(1, 2**40) == -2 and w[1] == 2**40
    assert a.compare_exchange(1, 2**40, -(2**50)) == 2**40 and w[1] == -(2**50)
    assert a.compare_exchange(1, 3, 4) == -(2**50) and w[1] == -(2**50)  # failed: unchanged
    a.store(2, -1)
    assert a.load(2) == -1 and w[2] == -1
    a.fence()


def _ctx_ops(ctx: Ctx, p: dict) -> dict:
    v = p["v"]
    out = {}
    ctx.atomic_set(v, 0)
    out["inc_not_zero_at_0"] = ctx.atomic_inc_not_zero(v)
    out["after0"] = ctx.atomic_read(v)
    ctx.atomic_set(v, 3)
    out["inc_not_zero_at_3"] = ctx.atomic_inc_not_zero(v)
    out["after3"] = ctx.atomic_read(v)
    out["dec_if_positive_4"] = ctx.atomic_dec_if_positive(v)
    ctx.atomic_set(v, 0)
    out["dec_if_positive_0"] = ctx.atomic_dec_if_positive(v)
    out["after_dec0"] = ctx.atomic_read(v)
    out["add_unless_hit"] = ctx.atomic_add_unless(v, 5, 0)
    ctx.atomic_set(v, 1)
    out["add_return"] = ctx.atomic_add_return(v, 10)
    out["sub_return"] = ctx.atomic_sub_return(v, 11)
    out["dec_and_test"] = (ctx.atomic_inc(v), ctx.atomic_dec_and_test(v))[1]
    out["cmpxchg_ok"] = ctx.atomic_cmpxchg(v, 0, 7)
    out["cmpxchg_fail"] = ctx.atomic_cmpxchg(v, 0, 9)
    out["xchg"] = ctx.atomic_xchg(v, 1)
    out["final"] = ctx.atomic_read(v)
    return out


def test_kernel_atomic_semantics_in_a_cpu_process():
    with Machine(1, declare=lambda layout: layout.scalar("v")) as m:
        r = m.run([Program(_ctx_ops, {"v": m.vars}), None])
    assert r.results[0] == {
        "inc_not_zero_at_0": False,
        "after0": 0,
        "inc_not_zero_at_3": True,
        "after3": 4,
        "dec_if_positive_4": 3,
        "dec_if_positive_0": -1,
        "after_dec0": 0,
        "add_unless_hit": False,
        "add_return": 11,
        "sub_return": 0,
        "dec_and_test": True,
        "cmpxchg_ok": 0,
        "cmpxchg_fail": 7,
        "xchg": 7,
        "final": 1,
    }


def _hammer(ctx: Ctx, p: dict) -> None:
    for _ in range(p["n"]):
        ctx.atomic_inc(p["v"])
        ctx.this_cpu_inc(p["pc"])


def _cas_hammer(ctx: Ctx, p: dict) -> None:
    v = p["v"]
    for _ in range(p["n"]):
        while True:
            old = ctx.atomic_read(v)
            if ctx.atomic_cmpxchg(v, old, old + 1) == old:
                break


def _declare_two(layout: Layout) -> tuple[int, int]:
    return layout.scalar("v"), layout.percpu("pc")


def test_fetch_add_from_many_processes_is_exact():
    n = 100_000
    with Machine(3, declare=_declare_two) as m:
        v, pc = m.vars
        r = m.run([Program(_hammer, {"v": v, "pc": pc, "n": n})] * 3 + [None])
        assert m.seg.words[v] == 3 * n
        assert list(m.seg.percpu("pc")[:3]) == [n, n, n]  # per-CPU counters exact
        assert r.seconds > 0


def test_cmpxchg_loops_from_many_processes_are_exact():
    n = 20_000
    with Machine(2, declare=_declare_two) as m:
        v, _ = m.vars
        m.run([Program(_cas_hammer, {"v": v, "n": n})] * 2 + [None])
        assert m.seg.words[v] == 2 * n
