"""include/linux/list.h: doubly linked lists in the segment, every pointer through ``ctx``.

A ``struct list_head`` is two words, ``next`` and ``prev``, at the start of
an object; a pointer is the word index of the object it points into. The
objects a list may link live in a `Slab` (a table of equal-sized objects,
the list head being one of them, usually object 0): following a pointer that does not
point at an object of the slab -- ``LIST_POISON1`` left by ``list_del``, or
a torn pointer of a list changed under two different locks -- is an oops
("unable to handle kernel paging request"), as in the kernel. A walk that
goes round more often than the slab has objects is a soft lockup (a BUG
here: the emulator cannot wait 20 s).

The order of the stores is the kernel's (``__list_add``, ``__list_del``), so
a list touched by two CPUs without a common lock breaks exactly as the
kernel's would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shmkernel.kernel.bug import BUG
from shmkernel.runtime.ctx import Ctx

NEXT, PREV = 0, 1  # struct list_head { struct list_head *next, *prev; }
LIST_POISON1, LIST_POISON2 = 0x00100100, 0x00200200


@dataclass(frozen=True)
class Slab:
    """``nobj`` objects of ``size`` words from ``base``, each starting with its
    list_head; ``detail`` goes with the oops event of a bad pointer."""

    base: int
    nobj: int
    size: int
    name: str
    detail: tuple[tuple[str, int], ...] = ()

    def obj(self, i: int) -> int:
        return self.base + self.size * i

    def index(self, p: int) -> int:
        return (p - self.base) // self.size

    def holds(self, p: int) -> bool:
        return self.base <= p < self.base + self.size * self.nobj and (p - self.base) % self.size == 0

    def deref(self, ctx: Ctx, p: int) -> int:
        """Follow pointer ``p``: an oops unless it points at an object of the slab."""
        if not self.holds(p):
            BUG(ctx, f"unable to handle kernel paging request at {p:#x} in {self.name}", **dict(self.detail))
        return p


def INIT_LIST_HEAD(ctx: Ctx, head: int) -> None:
    ctx.write_once(head + NEXT, head)
    ctx.write_once(head + PREV, head)


def __list_add(ctx: Ctx, new: int, prev: int, next: int) -> None:
    ctx.write_once(next + PREV, new)
    ctx.write_once(new + NEXT, next)
    ctx.write_once(new + PREV, prev)
    ctx.write_once(prev + NEXT, new)  # WRITE_ONCE(prev->next, new)


def list_add(ctx: Ctx, slab: Slab, new: int, head: int) -> None:
    """Insert ``new`` after ``head`` (a stack)."""
    __list_add(ctx, new, head, slab.deref(ctx, ctx.read_once(head + NEXT)))


def list_add_tail(ctx: Ctx, slab: Slab, new: int, head: int) -> None:
    """Insert ``new`` before ``head`` (a queue)."""
    __list_add(ctx, new, slab.deref(ctx, ctx.read_once(head + PREV)), head)


def list_del(ctx: Ctx, slab: Slab, entry: int) -> None:
    """Unlink ``entry`` and poison its pointers."""
    nxt = slab.deref(ctx, ctx.read_once(entry + NEXT))
    prv = slab.deref(ctx, ctx.read_once(entry + PREV))
    ctx.write_once(nxt + PREV, prv)  # __list_del(entry->prev, entry->next)
    ctx.write_once(prv + NEXT, nxt)
    ctx.write_once(entry + NEXT, LIST_POISON1)
    ctx.write_once(entry + PREV, LIST_POISON2)


def list_empty(ctx: Ctx, head: int) -> bool:
    return ctx.read_once(head + NEXT) == head


def list_prev_entry(ctx: Ctx, slab: Slab, entry: int) -> int:
    """The object before ``entry`` (the list head if ``entry`` is first)."""
    return slab.deref(ctx, ctx.read_once(entry + PREV))


def list_for_each(ctx: Ctx, slab: Slab, head: int) -> Iterator[int]:
    """``list_for_each_entry(pos, head, member)``: yields each object, first to last."""
    p = slab.deref(ctx, ctx.read_once(head + NEXT))
    seen = 0
    while p != head:
        seen += 1
        if seen >= slab.nobj:  # more objects than the slab has besides the head
            BUG(ctx, f"soft lockup: {slab.name} loops", **dict(slab.detail))
        yield p
        p = slab.deref(ctx, ctx.read_once(p + NEXT))


def list_nodes(read: Callable[[int], int], slab: Slab, head: int) -> list[int]:
    """Oracle (not kernel code): the objects on the list, first to last, read with
    ``read`` outside the machine; ValueError if a pointer is bad or the list loops."""
    out: list[int] = []
    p = read(head + NEXT)
    while p != head:
        if not slab.holds(p) or len(out) >= slab.nobj:
            raise ValueError(f"{slab.name} is corrupt")
        out.append(p)
        p = read(p + NEXT)
    return out
