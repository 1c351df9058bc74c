"""Scoped locks, lockdep's held-lock assertion and atomic_dec_and_mutex_lock().

``with mutex(ctx, lock):`` is the kernel's ``guard(mutex)(&lock)``
(include/linux/cleanup.h): the lock is taken here and released on every way
out of the block, a return or an `Oops` alike (see bug.py: the emulator
releases what a dying task held). ``spinlock`` is the same for a spinlock.

``lockdep_assert_held(ctx, lock)`` is an executable precondition, as the
kernel's (kernel/locking/lockdep.c): the calling CPU must hold ``lock``. It
checks the lock word, which every acquisition sets to the owner's tag (CPU
number + 1) and only the owner clears, so it is exact in every mode:

- scheduled mode (any memory model: an acquisition is an atomic that commits
  at once), and
- free mode too, at the cost of one load: the decision is to check there as
  well. A CPU holding the lock always finds its own tag; a CPU not holding
  it never does (no other CPU writes that tag). Under the free emulated
  memory models a buffered unlock could leave the tag visible a little
  longer, which can only make the check pass, never fail wrongly.

A failed assertion raises `LockdepSplat` (an ``AssertionError``): it is a bug
in the emulated kernel code, not a race the workload measures, so the run
fails (exit 3) instead of counting an event. The check reads the lock word
outside the emulated machine (``oracle_read``): it is never a schedule step.
"""

from __future__ import annotations

from types import TracebackType

from shmkernel.runtime.ctx import Ctx


class LockdepSplat(AssertionError):
    """lockdep_assert_held() failed: the caller does not hold the lock."""


def lockdep_assert_held(ctx: Ctx, lock: int, name: str = "") -> None:
    """The calling CPU holds ``lock`` (a mutex or spinlock word)."""
    if ctx.oracle_read(lock) != ctx.cpu + 1:
        raise LockdepSplat(f"CPU {ctx.cpu} does not hold {name or ctx.layout.name_of(lock)}")


def lockdep_assert_not_held(ctx: Ctx, lock: int, name: str = "") -> None:
    """The calling CPU does not hold ``lock``."""
    if ctx.oracle_read(lock) == ctx.cpu + 1:
        raise LockdepSplat(f"CPU {ctx.cpu} holds {name or ctx.layout.name_of(lock)}")


class mutex:  # noqa: N801 - the kernel's name
    """``guard(mutex)(&lock)``: ``with mutex(ctx, lock): ...``"""

    __slots__ = ("ctx", "lock")

    def __init__(self, ctx: Ctx, lock: int) -> None:
        self.ctx, self.lock = ctx, lock

    def __enter__(self) -> None:
        self.ctx.mutex_lock(self.lock)

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.ctx.mutex_unlock(self.lock)


class spinlock:  # noqa: N801 - the kernel's name
    """``guard(spinlock)(&lock)``: ``with spinlock(ctx, lock): ...`` (preemption off inside)."""

    __slots__ = ("ctx", "lock")

    def __init__(self, ctx: Ctx, lock: int) -> None:
        self.ctx, self.lock = ctx, lock

    def __enter__(self) -> None:
        self.ctx.spin_lock(self.lock)

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.ctx.spin_unlock(self.lock)


class preempt_disabled:  # noqa: N801 - guard(preempt)
    """``guard(preempt)()``: preemption off for the block, back on at every way out."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    def __enter__(self) -> None:
        self.ctx.preempt_disable()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.ctx.preempt_enable()


# A scheduled trace names each step by the function it runs in: the lock and unlock of a
# scoped lock read as guard(mutex) ... rather than __enter__/__exit__.
for _cls in (mutex, spinlock, preempt_disabled):
    for _fn in (_cls.__enter__, _cls.__exit__):
        _fn.__code__ = _fn.__code__.replace(co_name=f"guard({_cls.__name__.replace('_disabled', '')})")


def atomic_dec_and_mutex_lock(ctx: Ctx, cnt: int, lock: int) -> bool:
    """kernel/locking/mutex.c: decrement ``cnt``; if it hit 0, return True holding ``lock``."""
    # dec if we can't possibly hit 0
    if ctx.atomic_add_unless(cnt, -1, 1):
        return False
    # we might hit 0, so take the lock
    ctx.mutex_lock(lock)
    if not ctx.atomic_dec_and_test(cnt):
        # when we actually did the dec, we didn't hit 0
        ctx.mutex_unlock(lock)
        return False
    # we hit 0, and we hold the lock
    return True
