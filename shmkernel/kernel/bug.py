"""include/asm-generic/bug.h: BUG(), WARN(), and the oops that ends a task.

One `Oops` for every kernel file: a ``BUG()``, a poisoned pointer followed
(list.h), a load from freed memory (kasan.py). The event is recorded first
(``bug``, ``use_after_free`` ...), then `Oops` unwinds the task's program,
which catches it and stops (or goes on with its next iteration), as the
oopsed task dies.

Unlike the kernel, the emulator releases the locks the dead task held: the
scoped locks of `shmkernel.kernel.locking` unlock as the exception passes
(a real oops inside ``modlist_lock`` would wedge every later
``symbol_get``), so that the other CPUs and the run go on.
"""

from __future__ import annotations

from shmkernel.runtime.ctx import Ctx


class Oops(Exception):
    """A kernel oops: the task that hit it dies (its program catches this)."""


def BUG(ctx: Ctx, what: str, **detail: object) -> None:
    """BUG(): a ``bug`` event, then the task dies."""
    ctx.event("bug", what=what, **detail)
    raise Oops(what)


def WARN(ctx: Ctx, condition: object, what: str, **detail: object) -> bool:
    """WARN(condition, ...): a ``warn`` event when ``condition`` holds; returns it,
    as the kernel's macro does, so callers write ``if WARN(ctx, x < 0, ...)``.
    Counted at every occurrence (the emulation has no ``_ONCE``)."""
    if condition:
        ctx.event("warn", what=what, **detail)
    return bool(condition)
