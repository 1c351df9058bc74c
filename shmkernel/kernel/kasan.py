"""The emulator's KASAN, and its condemned-code check (instruments: no steps of their own).

*KASAN*: freeing module memory (``module_free``/``vfree``) writes ``POISON``
into each emulated word of it (ordinary stores, one step each, the free's
own). Kernel code that loads from module memory passes the
value through `kasan`: a poisoned value is reported as ``use_after_free`` and
the task dies (`Oops`, see bug.py). Atomics applied to a poisoned word leave
it within ``_POISON_SLACK`` of ``POISON``, still recognised.

*Condemned code*: the step that commits an unload (``MOD_DELETED`` set, or
the state ``GOING``) also marks the module's code condemned (`condemn`: the
code word becomes minus its generation, one shadow step). A CPU that then
executes the module's code (`module_text`) has a reference the unloader did
not count: ``uncounted_ref``, reported once per use (`begin_use`).

Both read the very word the unloader writes, so what they report depends
only on the order of conflicting steps: sound under the exhaustive explorer.
"""

from __future__ import annotations

from shmkernel.kernel.bug import Oops
from shmkernel.runtime.ctx import Ctx

#: freed memory: the slab's POISON_FREE byte (0x6b) in every byte of a word
POISON = 0x6B6B6B6B
_POISON_SLACK = 1 << 20  # atomics applied to a poisoned word stay "poisoned"


def is_poison(value: int) -> bool:
    return abs(value - POISON) < _POISON_SLACK


def kasan(ctx: Ctx, value: int, what: str) -> int:
    """Check a value just loaded from module memory; a poisoned one is a use after free."""
    if is_poison(value):
        ctx.event("use_after_free", what=what)
        raise Oops(what)
    return value


class Task:
    """The emulator's side of ``current``: what was already reported for the use
    in progress (each CPU is its own process, so a module global is per CPU)."""

    uncounted_reported = False


current = Task()


def begin_use() -> None:
    """A new use starts: it may report one uncounted reference of its own."""
    current.uncounted_reported = False


def condemn(ctx: Ctx, text: int) -> None:
    """Emulator shadow write: the unloader committed; the module's code ``text`` is condemned."""
    ctx.write_once(text, -abs(ctx.oracle_read(text)))


def module_text(ctx: Ctx, value: int, what: str) -> None:
    """The CPU executes module code (``value`` was fetched from the module's code
    word); a use reports ``uncounted_ref`` once, however much condemned code it runs."""
    kasan(ctx, value, what)
    if value < 0 and not current.uncounted_reported:
        current.uncounted_reported = True
        ctx.event("uncounted_ref", what=what)
