"""list.h, the scoped locks and lockdep_assert_held, KASAN: the kernel's own helpers."""

from __future__ import annotations

from typing import Any

import pytest
from test_kernel_fidelity import OneCpu, cpu  # noqa: F401 (the fixture)
from toys import Toy

from shmkernel.errors import RunError
from shmkernel.explore import explore
from shmkernel.kernel.bug import Oops
from shmkernel.kernel.kasan import POISON, kasan
from shmkernel.kernel.list import (
    INIT_LIST_HEAD,
    LIST_POISON1,
    Slab,
    list_add,
    list_add_tail,
    list_del,
    list_empty,
    list_for_each,
    list_nodes,
    list_prev_entry,
)
from shmkernel.kernel.locking import LockdepSplat, lockdep_assert_held, mutex, spinlock
from shmkernel.memory.layout import Layout


def _slab(layout: Layout) -> dict[str, Any]:
    return {"slab": Slab(layout.table("objs", 2 * 4), 4, 2, "objs"), "lock": layout.scalar("lock")}


def test_list_add_add_tail_del_and_walk(cpu):  # noqa: F811
    c: OneCpu = cpu(_slab)
    ctx, slab = c.ctx, c.v["slab"]
    head, a, b, d = (slab.obj(i) for i in range(4))
    INIT_LIST_HEAD(ctx, head)
    assert list_empty(ctx, head)
    list_add(ctx, slab, a, head)
    list_add_tail(ctx, slab, b, head)
    list_add(ctx, slab, d, head)
    assert list(list_for_each(ctx, slab, head)) == [d, a, b] == list_nodes(c.read, slab, head)
    assert list_prev_entry(ctx, slab, a) == d and list_prev_entry(ctx, slab, d) == head
    list_del(ctx, slab, a)
    assert list(list_for_each(ctx, slab, head)) == [d, b]
    assert c.read(a) == LIST_POISON1
    with pytest.raises(Oops, match="paging request"):  # following a deleted entry's pointer
        list_del(ctx, slab, a)
    assert c.events() == {"bug": 1}


def test_a_list_that_loops_is_a_soft_lockup(cpu):  # noqa: F811
    c: OneCpu = cpu(_slab)
    ctx, slab = c.ctx, c.v["slab"]
    head, a = slab.obj(0), slab.obj(1)
    INIT_LIST_HEAD(ctx, head)
    list_add(ctx, slab, a, head)
    ctx.write_once(a, a)  # a->next = a
    with pytest.raises(Oops, match="soft lockup"):
        list(list_for_each(ctx, slab, head))
    with pytest.raises(ValueError, match="corrupt"):
        list_nodes(c.read, slab, head)


def test_scoped_locks_release_on_an_oops_and_lockdep_sees_the_holder(cpu):  # noqa: F811
    c: OneCpu = cpu(_slab)
    ctx, lock = c.ctx, c.v["lock"]
    with pytest.raises(LockdepSplat, match="does not hold lock"):
        lockdep_assert_held(ctx, lock)
    for guard in (mutex, spinlock):
        with pytest.raises(Oops):
            with guard(ctx, lock):
                lockdep_assert_held(ctx, lock)
                kasan(ctx, POISON, "a freed word")  # the task dies here
        assert c.read(lock) == 0  # released as the oops unwound
    assert c.events() == {"use_after_free": 2}


def unlocked_caller(ctx: Any, p: dict) -> None:
    for _ in ctx.loop(p["iterations"]):
        ctx.mutex_lock(p["a"])
        ctx.mutex_unlock(p["a"])
        lockdep_assert_held(ctx, p["a"])  # a bug: no longer held


def locked_caller(ctx: Any, p: dict) -> None:
    for _ in ctx.loop(p["iterations"]):
        with mutex(ctx, p["a"]):
            lockdep_assert_held(ctx, p["a"])


def test_lockdep_assert_held_in_scheduled_mode():
    with pytest.raises(RunError, match="does not hold"):
        explore(Toy(unlocked_caller), scheduler="exhaustive")
    r = explore(Toy(locked_caller), scheduler="exhaustive")
    assert r.verdict == "proved"
