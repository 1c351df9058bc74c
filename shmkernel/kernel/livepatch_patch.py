"""kernel/livepatch/patch.c: one struct klp_ops per patched address, its func_stack, the ftrace handler.

v4.0 had these in core.c; the kernel moved them to patch.c (v4.12), whose
layout this file follows. A ``klp_ops`` is found by the address its funcs
patch (``klp_find_ops(old_addr)``: the ``old_addr`` of the first func on its
stack), made when the first func for an address is enabled and freed when the
last one is disabled. Here the ops are a table of slots in the segment: a slot
whose ``addr`` is 0 is free (not on ``klp_ops``). A call of the function at an
address runs through the handler of the ops registered there (`klp_call`).

``klp_enable_func``/``klp_disable_func`` keep their v4.0 names (patch.c calls
them klp_patch_func/klp_unpatch_func) and order of checks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from shmkernel.kernel.bug import WARN
from shmkernel.runtime.ctx import Ctx

EINVAL, ENOMEM = 22, 12
MAX_PATCHES = 3


class KlpState(enum.IntEnum):
    """enum klp_state."""

    DISABLED = 0
    ENABLED = 1


@dataclass(frozen=True)
class KlpFunc:
    name: str  # "a" (vmlinux) or "b" (module M)
    state: int
    old_addr: int


@dataclass(frozen=True)
class KlpOps:
    """struct klp_ops: the ftrace ops of one patched address and its func_stack."""

    addr: int  # the old_addr of the funcs on its stack; 0: free (not on klp_ops)
    depth: int
    stack: int  # table of MAX_PATCHES words: patch numbers, bottom first


def klp_find_ops(ctx: Ctx, klp_ops: tuple[KlpOps, ...], old_addr: int) -> KlpOps | None:
    """list_for_each_entry(ops, &klp_ops, node): the ops whose funcs patch ``old_addr``."""
    for ops in klp_ops:
        if ctx.read_once(ops.addr) == old_addr:
            return ops
    return None


def klp_ops_push(ctx: Ctx, ops: KlpOps, num: int) -> None:
    """list_add_rcu(&func->stack_node, &ops->func_stack): the new func on top."""
    d = ctx.read_once(ops.depth)
    if d >= MAX_PATCHES:
        ctx.event("bug", what=f"func_stack at {ctx.read_once(ops.addr):#x} overflows")
        return
    ctx.write_once(ops.stack + d, num)
    ctx.smp_store_release(ops.depth, d + 1)


def klp_ops_remove(ctx: Ctx, ops: KlpOps, num: int) -> int:
    """list_del_rcu(&func->stack_node) (klp_mutex held; callers of the function
    are gone: it is only removed from a module's function after mod->exit());
    returns the depth left."""
    d = ctx.read_once(ops.depth)
    i = 0
    while i < d and ctx.read_once(ops.stack + i) != num:
        i += 1
    if i == d:
        ctx.event("bug", what=f"P{num} not on the func_stack")
        return d
    for j in range(i, d - 1):
        ctx.write_once(ops.stack + j, ctx.read_once(ops.stack + j + 1))
    ctx.write_once(ops.stack + d - 1, 0)
    ctx.smp_store_release(ops.depth, d - 1)
    return d - 1


def klp_ftrace_handler(ctx: Ctx, ops: KlpOps, universe: int) -> int:
    """Which version of the function runs: the top of its func_stack (for a task
    in ``universe``: the topmost entry of a patch <= universe); 0 = original."""
    d = ctx.smp_load_acquire(ops.depth)
    for i in range(d - 1, -1, -1):
        num = ctx.read_once(ops.stack + i)
        if num <= universe:
            return num
    return 0


def klp_call(ctx: Ctx, klp_ops: tuple[KlpOps, ...], addr: int, universe: int) -> int:
    """A call of the function at ``addr``: ftrace runs the handler of the ops
    registered there, if any; the version that runs (0: the original)."""
    ops = klp_find_ops(ctx, klp_ops, addr)
    return klp_ftrace_handler(ctx, ops, universe) if ops is not None else 0


def klp_func_stack(ctx: Any, klp_ops: tuple[KlpOps, ...], addr: int) -> list[int]:
    """The func_stack at ``addr``, bottom first, read outside the machine (checks):
    ``ctx`` is anything with ``oracle_read``."""
    for ops in klp_ops:
        if ctx.oracle_read(ops.addr) == addr:
            d = ctx.oracle_read(ops.depth)
            return [ctx.oracle_read(ops.stack + i) for i in range(max(0, min(d, MAX_PATCHES)))]
    return []


def klp_enable_func(ctx: Ctx, klp_ops: tuple[KlpOps, ...], num: int, func: KlpFunc) -> int:
    """Patch ``func`` (of patch ``num``): its address's ops, made if it has none."""
    old_addr = ctx.read_once(func.old_addr)
    if WARN(ctx, not old_addr, f"klp_enable_func: P{num} {func.name}() has no old_addr"):
        return -EINVAL
    if WARN(ctx, ctx.read_once(func.state) != KlpState.DISABLED, f"klp_enable_func: P{num} {func.name}() not disabled"):
        return -EINVAL
    ops = klp_find_ops(ctx, klp_ops, old_addr)
    if ops is None:  # kzalloc(sizeof(*ops)); list_add(&ops->node, &klp_ops); register_ftrace_function()
        ops = klp_find_ops(ctx, klp_ops, 0)
        if ops is None:
            return -ENOMEM
        ctx.write_once(ops.addr, old_addr)
    klp_ops_push(ctx, ops, num)
    ctx.write_once(func.state, KlpState.ENABLED)
    return 0


def klp_disable_func(ctx: Ctx, klp_ops: tuple[KlpOps, ...], num: int, func: KlpFunc) -> None:
    """Unpatch ``func``: off its address's func_stack; the last one frees the ops."""
    if WARN(ctx, ctx.read_once(func.state) != KlpState.ENABLED, f"klp_disable_func: P{num} {func.name}() not enabled"):
        return
    old_addr = ctx.read_once(func.old_addr)
    if WARN(ctx, not old_addr, f"klp_disable_func: P{num} {func.name}() has no old_addr"):
        return
    ops = klp_find_ops(ctx, klp_ops, old_addr)
    if WARN(ctx, ops is None, f"klp_disable_func: no klp_ops at {old_addr:#x}") or ops is None:
        return
    if klp_ops_remove(ctx, ops, num) == 0:  # list_is_singular: unregister_ftrace_function, list_del, kfree
        ctx.write_once(ops.addr, 0)
    ctx.write_once(func.state, KlpState.DISABLED)
