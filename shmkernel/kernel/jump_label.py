"""kernel/jump_label.c: struct static_key, its jump entries, and the count protocol in three variants.

A ``struct static_key`` is an atomic count ``enabled`` plus its jump entries:
``nr_entries`` code sites, each a word of the segment holding what is written
in the text there, ``JUMP_LABEL_NOP`` (0) or ``JUMP_LABEL_JMP`` (1). Code that
tests the key (``static_key_false`` / ``static_branch_unlikely``) does not
read ``enabled``: it executes ONE site, so the path it takes is whatever that
site holds *now*. ``jump_label_update`` rewrites the sites one by one under
``jump_label_mutex`` (one ``write_once`` per site, a separate step each), so
between the first and the last site the text is half patched, and an
increment that returns inside that window has a key whose code is wrong.

The variants sit side by side, same names and order of operations as the
kernel's, so a reader diffs them by eye (seed 004, "locking/static_key: Fix
concurrent static_key_slow_inc()", Paolo Bonzini):

- ``pre-fix`` (alias ``buggy``): after 706249c222f6 ("Rework update logic"),
  ``atomic_inc_not_zero`` fast path; else ``jump_label_lock``,
  ``atomic_inc_return(&enabled) == 1`` -> ``jump_label_update``. Between the
  ``inc_return`` and the end of the update, ``enabled == 1`` lets a second
  ``static_key_slow_inc`` return from its fast path while sites are still NOPs.
- ``seed-fix`` (alias ``fixed``): the seed's code. The fast path is a cmpxchg
  loop that only increments a *positive* count; the first increment sets
  ``enabled = -1`` (non-zero: ``static_key_count`` reports it as 1, so
  ``jump_label_update`` patches to "enabled") and ``1`` only once every site
  is patched; everyone else queues on ``jump_label_mutex``.
- ``upstream``: today's form: ``static_key_fast_inc_not_disabled`` (also
  refuses ``INT_MAX``), ``atomic_cmpxchg(&enabled, 0, -1)`` under the mutex,
  ``atomic_set_release(&enabled, 1)``; ``static_key_dec_not_one`` fast path
  and ``__static_key_slow_dec_cpuslocked`` (``atomic_dec_and_test`` under the
  mutex, WARN on -1 or 0).

The decrement of ``pre-fix`` and ``seed-fix`` is the seed's
``__static_key_slow_dec``: ``atomic_dec_and_mutex_lock`` (decrement unless it
would reach 0; else lock and decrement; on 0, update with the mutex held), and
``WARN(atomic_read(&key->enabled) < 0)`` otherwise.

Every WARN / WARN_ON_ONCE is bug.py's ``WARN`` (a ``warn`` event), counted at
every occurrence (the emulation has no "once"). Not emulated: ``cpus_read_lock()``
(no CPU hotplug here), module jump entries, the rate-limited (deferred)
decrement, and x86's batched ``text_poke_bp`` (upstream queues all sites and
patches them in one batch; here every variant patches site by site, as
``arch_jump_label_transform`` did at the seed's time: the count protocol is
what the variants differ in).
"""

from __future__ import annotations

from dataclasses import dataclass

from shmkernel.errors import UsageError
from shmkernel.kernel.bug import WARN
from shmkernel.kernel.locking import atomic_dec_and_mutex_lock, mutex
from shmkernel.kernel.variants import lookup
from shmkernel.memory.layout import Layout
from shmkernel.runtime.ctx import Ctx

JUMP_LABEL_NOP = 0  # enum jump_label_type
JUMP_LABEL_JMP = 1
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class StaticKey:
    """struct static_key in the segment (word indices).

    ``entries`` is a table of ``nr_entries`` code sites; all of them are
    ``static_key_false`` sites (branch bit 0: NOP while disabled, JMP while
    enabled). ``jump_label_mutex`` is the global mutex every key shares."""

    enabled: int
    entries: int
    nr_entries: int
    jump_label_mutex: int


def declare_jump_label_mutex(layout: Layout) -> int:
    return layout.scalar("jump_label_mutex")


def declare_static_key(layout: Layout, name: str, nr_entries: int, jump_label_mutex: int | None = None) -> StaticKey:
    """DEFINE_STATIC_KEY_FALSE(name) with ``nr_entries`` jump sites in the text."""
    if not 1 <= nr_entries <= 4096:
        raise UsageError(f"a static key needs 1..4096 jump sites, got {nr_entries}")
    if jump_label_mutex is None:
        jump_label_mutex = declare_jump_label_mutex(layout)
    return StaticKey(
        enabled=layout.scalar(f"{name}.enabled"),
        entries=layout.table(f"{name}.jump_entries", nr_entries),
        nr_entries=nr_entries,
        jump_label_mutex=jump_label_mutex,
    )


def static_key_init(ctx: Ctx, key: StaticKey) -> None:
    """Boot: STATIC_KEY_INIT_FALSE and jump_label_init() NOPs at every site, mutex free."""
    ctx.write_once(key.jump_label_mutex, 0)
    ctx.atomic_set(key.enabled, 0)
    for i in range(key.nr_entries):
        ctx.write_once(key.entries + i, JUMP_LABEL_NOP)


# ---------------------------------------------------------------------------------------------
# Shared by every variant: the mutex, the text, and jump_label_update().
# ---------------------------------------------------------------------------------------------
def jump_label_lock(ctx: Ctx, key: StaticKey) -> None:
    ctx.mutex_lock(key.jump_label_mutex)


def jump_label_unlock(ctx: Ctx, key: StaticKey) -> None:
    ctx.mutex_unlock(key.jump_label_mutex)


def arch_jump_label_transform(ctx: Ctx, key: StaticKey, i: int, type_: int, delay_us: float) -> None:
    """Rewrite the instruction at site ``i`` (text_poke: one store the other
    CPUs may execute before or after). ``delay_us`` stands for the cost of
    patching live text (the breakpoint, the IPIs that sync every core), free mode only."""
    ctx.write_once(key.entries + i, type_)
    if delay_us:
        ctx.delay_us(delay_us)


class _JumpLabel:
    """What the variants share; the subclasses hold the count protocol."""

    name = ""

    def __init__(self, patch_delay_us: float = 0.0) -> None:
        self.patch_delay_us = patch_delay_us

    def static_key_count(self, ctx: Ctx, key: StaticKey) -> int:
        """include/linux/jump_label.h since the seed (pre-fix overrides it)."""
        # -1 means the first static_key_slow_inc() is in progress.
        #  static_key_enabled() must return true, so return 1 here.
        n = ctx.atomic_read(key.enabled)
        return n if n >= 0 else 1

    def static_key_enabled(self, ctx: Ctx, key: StaticKey) -> bool:
        return self.static_key_count(ctx, key) > 0

    def jump_label_type(self, ctx: Ctx, key: StaticKey, i: int) -> int:
        enabled = self.static_key_enabled(ctx, key)
        branch = 0  # every site is a static_key_false() site
        # See the comment in linux/jump_label.h
        return int(enabled) ^ branch

    def jump_label_update(self, ctx: Ctx, key: StaticKey) -> None:
        """__jump_label_update(): every entry of the key, one after the other,
        each patched to what static_key_enabled() says at that moment."""
        for i in range(key.nr_entries):
            arch_jump_label_transform(ctx, key, i, self.jump_label_type(ctx, key, i), self.patch_delay_us)

    def static_key_false(self, ctx: Ctx, key: StaticKey, site: int) -> bool:
        """Execute the code at jump site ``site``: True if it jumps (the key's
        branch is taken). The only thing a key test reads is the text."""
        return ctx.read_once(key.entries + site) == JUMP_LABEL_JMP

    def static_branch_unlikely(self, ctx: Ctx, key: StaticKey, site: int) -> bool:
        return self.static_key_false(ctx, key, site)

    def storage(self, words, key: StaticKey) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
        """(enabled, sites) at quiesce (oracle, not a kernel function)."""
        return int(words[key.enabled]), [int(words[key.entries + i]) for i in range(key.nr_entries)]


# ---------------------------------------------------------------------------------------------
# The seed's __static_key_slow_dec(), shared by pre-fix and seed-fix.
# ---------------------------------------------------------------------------------------------
def __static_key_slow_dec(ctx: Ctx, jl: _JumpLabel, key: StaticKey) -> None:
    """Both seed-era variants (the seed only added the comment). The WARN
    re-reads the count after the decrement: in ``seed-fix`` that read can see
    another CPU's -1 (see workloads/static_key.py), a false alarm."""
    # The negative count check is valid even when a negative
    # key->enabled is in use by static_key_slow_inc(); a
    # __static_key_slow_dec() before the first static_key_slow_inc()
    # returns is unbalanced, because all other static_key_slow_inc()
    # instances block while the update is in progress.
    if not atomic_dec_and_mutex_lock(ctx, key.enabled, key.jump_label_mutex):
        WARN(ctx, ctx.atomic_read(key.enabled) < 0, "jump label: negative count!")
        return
    # (rate_limit == 0: no deferred work)
    jl.jump_label_update(ctx, key)
    jump_label_unlock(ctx, key)


_seed_static_key_slow_dec = __static_key_slow_dec  # callable from class bodies (no name mangling)


# ---------------------------------------------------------------------------------------------
# Before the seed (since 706249c222f6, v4.3): atomic_inc_not_zero fast path.
# ---------------------------------------------------------------------------------------------
class PreFix(_JumpLabel):
    """``pre-fix``: kernel/jump_label.c from v4.3 until the seed."""

    name = "pre-fix"

    def static_key_count(self, ctx: Ctx, key: StaticKey) -> int:
        return ctx.atomic_read(key.enabled)

    def static_key_slow_inc(self, ctx: Ctx, key: StaticKey) -> bool:
        if ctx.atomic_inc_not_zero(key.enabled):
            return True

        jump_label_lock(ctx, key)
        if ctx.atomic_inc_return(key.enabled) == 1:
            self.jump_label_update(ctx, key)
        jump_label_unlock(ctx, key)
        return True

    def static_key_slow_dec(self, ctx: Ctx, key: StaticKey) -> None:
        _seed_static_key_slow_dec(ctx, self, key)


# ---------------------------------------------------------------------------------------------
# The seed's fix: a negative count sends everyone down the slow path during the update.
# ---------------------------------------------------------------------------------------------
class SeedFix(_JumpLabel):
    """``seed-fix``: the seed, "locking/static_key: Fix concurrent static_key_slow_inc()"."""

    name = "seed-fix"

    def static_key_slow_inc(self, ctx: Ctx, key: StaticKey) -> bool:
        # Careful if we get concurrent static_key_slow_inc() calls;
        # later calls must wait for the first one to _finish_ the
        # jump_label_update() process.  At the same time, however,
        # the jump_label_update() call below wants to see
        # static_key_enabled(&key) for jumps to be updated properly.
        #
        # So give a special meaning to negative key->enabled: it sends
        # static_key_slow_inc() down the slow path, and it is non-zero
        # so it counts as "enabled" in jump_label_update().  Note that
        # atomic_inc_unless_negative() checks >= 0, so roll our own.
        v = ctx.atomic_read(key.enabled)
        while v > 0:
            v1 = ctx.atomic_cmpxchg(key.enabled, v, v + 1)
            if v1 == v:
                return True
            v = v1

        jump_label_lock(ctx, key)
        if ctx.atomic_read(key.enabled) == 0:
            ctx.atomic_set(key.enabled, -1)
            self.jump_label_update(ctx, key)
            ctx.atomic_set(key.enabled, 1)
        else:
            ctx.atomic_inc(key.enabled)
        jump_label_unlock(ctx, key)
        return True

    def static_key_slow_dec(self, ctx: Ctx, key: StaticKey) -> None:
        _seed_static_key_slow_dec(ctx, self, key)


# ---------------------------------------------------------------------------------------------
# Upstream today.
# ---------------------------------------------------------------------------------------------
def __static_key_slow_dec_cpuslocked(ctx: Ctx, jl: _JumpLabel, key: StaticKey) -> None:
    if jl.static_key_dec_not_one(ctx, key):  # type: ignore[attr-defined]
        return

    with mutex(ctx, key.jump_label_mutex):  # guard(mutex)(&jump_label_mutex)
        val = ctx.atomic_read(key.enabled)
        # It should be impossible to observe -1 with jump_label_mutex held,
        # see static_key_slow_inc_cpuslocked().
        if WARN(ctx, val == -1, "static_key_slow_dec: -1 under jump_label_mutex"):
            return
        # Cannot already be 0, something went sideways.
        if WARN(ctx, val == 0, "static_key_slow_dec: already 0 under jump_label_mutex"):
            return

        if ctx.atomic_dec_and_test(key.enabled):
            jl.jump_label_update(ctx, key)


_upstream_static_key_slow_dec_cpuslocked = __static_key_slow_dec_cpuslocked


class Upstream(_JumpLabel):
    """``upstream``: kernel/jump_label.c today (v6.11+)."""

    name = "upstream"

    def static_key_fast_inc_not_disabled(self, ctx: Ctx, key: StaticKey) -> bool:
        # Negative key->enabled has a special meaning: it sends
        # static_key_slow_inc/dec() down the slow path, and it is non-zero
        # so it counts as "enabled" in jump_label_update().
        #
        # The INT_MAX overflow condition is either used by the networking
        # code to reset or detected in the slow path to return failure.
        v = ctx.atomic_read(key.enabled)
        while True:
            if v <= 0 or v == INT_MAX:
                return False
            old = ctx.atomic_cmpxchg(key.enabled, v, v + 1)  # atomic_try_cmpxchg
            if old == v:
                return True
            v = old

    def static_key_slow_inc_cpuslocked(self, ctx: Ctx, key: StaticKey) -> bool:
        # Careful if we get concurrent static_key_slow_inc/dec() calls;
        # later calls must wait for the first one to _finish_ the
        # jump_label_update() process.  At the same time, however,
        # the jump_label_update() call below wants to see
        # static_key_enabled(&key) for jumps to be updated properly.
        if self.static_key_fast_inc_not_disabled(ctx, key):
            return True

        with mutex(ctx, key.jump_label_mutex):  # guard(mutex)(&jump_label_mutex)
            # Try to mark it as 'enabling in progress.'
            if not ctx.atomic_cmpxchg(key.enabled, 0, -1):
                self.jump_label_update(ctx, key)
                # Ensure that when static_key_fast_inc_not_disabled() or
                # static_key_dec_not_one() observe the positive value,
                # they must also observe all the text changes.
                ctx.smp_store_release(key.enabled, 1)  # atomic_set_release
            # While holding the mutex this should never observe
            # anything else than a value >= 1 and succeed
            elif WARN(
                ctx,
                not self.static_key_fast_inc_not_disabled(ctx, key),
                "static_key_slow_inc: count not >= 1 under jump_label_mutex",
            ):
                return False
        return True

    def static_key_slow_inc(self, ctx: Ctx, key: StaticKey) -> bool:
        # cpus_read_lock(); ... cpus_read_unlock();
        return self.static_key_slow_inc_cpuslocked(ctx, key)

    def static_key_dec_not_one(self, ctx: Ctx, key: StaticKey) -> bool:
        # Go into the slow path if key::enabled is less than or equal than
        # one. One is valid to shut down the key, anything less than one
        # is an imbalance, which is handled at the call site.
        #
        # That includes the special case of '-1' which is set in
        # static_key_slow_inc_cpuslocked(), but that's harmless as it is
        # fully serialized in the slow path below. By the time this task
        # acquires the jump label lock the value is back to one and the
        # retry under the lock must succeed.
        v = ctx.atomic_read(key.enabled)
        while True:
            # Warn about the '-1' case though; since that means a
            # decrement is concurrent with a first (0->1) increment. IOW
            # people are trying to disable something that wasn't yet fully
            # enabled. This suggests an ordering problem on the user side.
            WARN(ctx, v < 0, "static_key_dec_not_one: negative count")
            # Warn about underflow, and lie about success in an attempt to
            # not make things worse.
            if WARN(ctx, v == 0, "static_key_dec_not_one: underflow"):
                return True
            if v <= 1:
                return False
            old = ctx.atomic_cmpxchg(key.enabled, v, v - 1)  # atomic_try_cmpxchg
            if old == v:
                return True
            v = old

    def static_key_slow_dec(self, ctx: Ctx, key: StaticKey) -> None:
        # STATIC_KEY_CHECK_USE(key); __static_key_slow_dec(key): cpus_read_lock() around
        _upstream_static_key_slow_dec_cpuslocked(ctx, self, key)


VARIANTS: dict[str, type[PreFix | SeedFix | Upstream]] = {c.name: c for c in (PreFix, SeedFix, Upstream)}
ALIASES = {"buggy": "pre-fix", "fixed": "seed-fix"}


def jump_label_variant(name: str, patch_delay_us: float = 0.0) -> PreFix | SeedFix | Upstream:
    """The variant's kernel code; ``patch_delay_us`` is the time patching one site takes (free mode)."""
    return lookup(VARIANTS, ALIASES, name)(patch_delay_us)
