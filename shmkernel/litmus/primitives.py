"""The kernel primitives a C litmus test may call, as herd7's LKMM defines them
(``tools/memory-model/linux-kernel.def``) and as
``Documentation/herd-representation.txt`` lists their events:

- ``READ_ONCE``/``WRITE_ONCE``/``rcu_dereference``/``rcu_assign_pointer`` take
  an lvalue (``*x``); ``smp_load_acquire``/``smp_store_release``, the atomics,
  locks and SRCU take a pointer (``x``).
- a value-returning RMW without suffix is ``F[mb] R W F[mb]``; ``_relaxed``
  ``R W``; ``_acquire`` an acquire R; ``_release`` a release W; one without a
  return value (``atomic_inc``) a ``noreturn`` R and a W.
- a conditional RMW (``cmpxchg``, ``atomic_add_unless``) that fails is a lone R.
- ``spin_lock`` an LKR (reads 0) and an LKW (writes 1), ``spin_unlock`` a UL
  (writes 0), ``spin_trylock`` either that pair or an LF (reads 1),
  ``spin_is_locked`` an RL (reads 1) or RU (reads 0): see
  `shmkernel.memory.lkmm_cat` for why locks are encoded by value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shmkernel.litmus.events import DeadPath, Event, V, combine

Interp = Any  # shmkernel.litmus.interp.Interp (which imports this module)


@dataclass(frozen=True)
class Prim:
    name: str
    nargs: int
    run: Callable[[Interp, list[Any]], V]


PRIMITIVES: dict[str, Prim] = {}
FENCES = {
    "smp_mb": "Mb",
    "smp_rmb": "Rmb",
    "smp_wmb": "Wmb",
    "smp_mb__before_atomic": "Before-atomic",
    "smp_mb__after_atomic": "After-atomic",
    "smp_mb__after_spinlock": "After-spinlock",
    "smp_mb__after_unlock_lock": "After-unlock-lock",
    "smp_mb__after_srcu_read_unlock": "After-srcu-read-unlock",
    "barrier": "Barrier",
    "rcu_read_lock": "Rcu-lock",
    "rcu_read_unlock": "Rcu-unlock",
    "synchronize_rcu": "Sync-rcu",
    "synchronize_rcu_expedited": "Sync-rcu",
}
ORDERINGS = {"": "mb", "_relaxed": "once", "_acquire": "acquire", "_release": "release"}


def _def(name: str, nargs: int) -> Callable[[Callable[[Interp, list[Any]], V]], None]:
    def reg(fn: Callable[[Interp, list[Any]], V]) -> None:
        PRIMITIVES[name] = Prim(name, nargs, fn)

    return reg


def _fence(cls: str) -> Callable[[Interp, list[Any]], V]:
    def run(it: Interp, args: list[Any]) -> V:
        it.fence(cls)
        return V(0)

    return run


for _name, _cls in FENCES.items():
    PRIMITIVES[_name] = Prim(_name, 0, _fence(_cls))


def _load(cls: str, lvalue: bool) -> Callable[[Interp, list[Any]], V]:
    def run(it: Interp, args: list[Any]) -> V:
        a = it.lvalue(args[0]) if lvalue else it.address(args[0])
        return it.load(a, (cls,))

    return run


def _store(cls: str, lvalue: bool, then_mb: bool = False) -> Callable[[Interp, list[Any]], V]:
    def run(it: Interp, args: list[Any]) -> V:
        a = it.lvalue(args[0]) if lvalue else it.address(args[0])
        it.store(a, it.expr(args[1]), (cls,))
        if then_mb:
            it.fence("Mb")
        return V(0)

    return run


for _name, _cls, _lv in (
    ("READ_ONCE", "Once", True),
    ("rcu_dereference", "Once", True),
    ("rcu_dereference_raw", "Once", True),
    ("rcu_access_pointer", "Once", True),
    ("smp_load_acquire", "Acquire", False),
    ("atomic_read", "Once", False),
    ("atomic_read_acquire", "Acquire", False),
):
    PRIMITIVES[_name] = Prim(_name, 1, _load(_cls, _lv))
for _name, _cls, _lv in (
    ("WRITE_ONCE", "Once", True),
    ("rcu_assign_pointer", "Release", True),
    ("smp_store_release", "Release", False),
    ("atomic_set", "Once", False),
    ("atomic_set_release", "Release", False),
):
    PRIMITIVES[_name] = Prim(_name, 2, _store(_cls, _lv))
PRIMITIVES["smp_store_mb"] = Prim("smp_store_mb", 2, _store("Once", True, then_mb=True))


def rmw(it: Interp, a: V, new: Callable[[V], V], order: str, noreturn: bool = False) -> tuple[V, V]:
    """An unconditional read-modify-write of ``a``: (old value, new value)."""
    if order == "mb":
        it.fence("Mb")
    rcls = ("Noreturn", "RMW") if noreturn else ("Acquire" if order == "acquire" else "Once", "RMW")
    old = it.load(a, rcls)
    nv = new(old)
    it.store(a, V(nv.term, nv.deps & ~old.deps), ("Release" if order == "release" else "Once", "RMW"), rmw=old.term[1])
    if order == "mb":
        it.fence("Mb")
    return old, nv


def cond_rmw(it: Interp, a: V, ok: Callable[[V], V], new: Callable[[V], V], order: str) -> tuple[V, bool]:
    """A conditional RMW: the run branches on success (guarded by ``ok(old)``)."""
    success = it.ch.choose(2) == 0
    if success and order == "mb":
        it.fence("Mb")
    rcls = ("Acquire" if order == "acquire" and success else "Once", "RMW")
    old = it.load(a, rcls)
    it.guards.append((ok(old).term, 1 if success else 0))
    if success:
        nv = new(old)
        wcls = ("Release" if order == "release" else "Once", "RMW")
        it.store(a, V(nv.term, nv.deps & ~old.deps), wcls, rmw=old.term[1])
        if order == "mb":
            it.fence("Mb")
    return old, success


_OPS = {"add": "+", "sub": "-", "and": "&", "or": "|", "xor": "^"}


def _noreturn(sym: str, unit: bool) -> Callable[[Interp, list[Any]], V]:
    """``atomic_add(V, X)``, ``atomic_inc(X)``...: no return value, no ordering."""

    def run(it: Interp, args: list[Any]) -> V:
        a = it.address(args[-1])
        v = V(1) if unit else it.expr(args[0])
        rmw(it, a, lambda o: combine(sym, o, v), "once", noreturn=True)
        return V(0)

    return run


def _atomic_family() -> None:
    for op, sym in _OPS.items():
        PRIMITIVES[f"atomic_{op}"] = Prim(f"atomic_{op}", 2, _noreturn(sym, False))
    for op, sym in (("inc", "+"), ("dec", "-")):
        PRIMITIVES[f"atomic_{op}"] = Prim(f"atomic_{op}", 1, _noreturn(sym, True))
    for suffix, order in ORDERINGS.items():
        for op, sym in (("add", "+"), ("sub", "-"), ("inc", "+"), ("dec", "-"), ("and", "&"), ("or", "|")):
            unit = op in ("inc", "dec")
            for kind in ("return", "fetch"):
                if kind == "return" and op in ("and", "or"):
                    continue
                name = f"atomic_{op}_return{suffix}" if kind == "return" else f"atomic_fetch_{op}{suffix}"
                PRIMITIVES[name] = Prim(name, 1 if unit else 2, _value_rmw(sym, unit, order, kind == "fetch"))
        for prefix in ("", "atomic_"):
            PRIMITIVES[f"{prefix}xchg{suffix}"] = Prim(f"{prefix}xchg{suffix}", 2, _xchg(order))
            PRIMITIVES[f"{prefix}cmpxchg{suffix}"] = Prim(f"{prefix}cmpxchg{suffix}", 3, _cmpxchg(order))
    for name, sym, test in (
        ("atomic_sub_and_test", "-", "=="),
        ("atomic_dec_and_test", "-", "=="),
        ("atomic_inc_and_test", "+", "=="),
        ("atomic_add_negative", "+", "<"),
    ):
        unit = "dec" in name or "inc" in name
        PRIMITIVES[name] = Prim(name, 1 if unit else 2, _test_rmw(sym, unit, test))
    PRIMITIVES["atomic_add_unless"] = Prim("atomic_add_unless", 3, _add_unless)
    PRIMITIVES["atomic_inc_not_zero"] = Prim(
        "atomic_inc_not_zero", 1, lambda it, args: _add_unless(it, [args[0], ("num", 1), ("num", 0)])
    )


def _value_rmw(sym: str, unit: bool, order: str, fetch: bool) -> Callable[[Interp, list[Any]], V]:
    def run(it: Interp, args: list[Any]) -> V:
        v = V(1) if unit else it.expr(args[0])
        old, nv = rmw(it, it.address(args[-1]), lambda o: combine(sym, o, v), order)
        return old if fetch else nv

    return run


def _test_rmw(sym: str, unit: bool, test: str) -> Callable[[Interp, list[Any]], V]:
    def run(it: Interp, args: list[Any]) -> V:
        v = V(1) if unit else it.expr(args[0])
        _, nv = rmw(it, it.address(args[-1]), lambda o: combine(sym, o, v), "mb")
        return combine(test, nv, V(0))

    return run


def _xchg(order: str) -> Callable[[Interp, list[Any]], V]:
    def run(it: Interp, args: list[Any]) -> V:
        a = it.address(args[0])
        v = it.expr(args[1])
        return rmw(it, a, lambda o: v, order)[0]

    return run


def _cmpxchg(order: str) -> Callable[[Interp, list[Any]], V]:
    def run(it: Interp, args: list[Any]) -> V:
        a = it.address(args[0])
        exp, v = it.expr(args[1]), it.expr(args[2])
        return cond_rmw(it, a, lambda o: combine("==", o, exp), lambda o: v, order)[0]

    return run


def _add_unless(it: Interp, args: list[Any]) -> V:
    a = it.address(args[0])
    v, u = it.expr(args[1]), it.expr(args[2])
    _, ok = cond_rmw(it, a, lambda o: combine("!=", o, u), lambda o: combine("+", o, v), "mb")
    return V(int(ok))


_atomic_family()


def _lock_pair(it: Interp, a: V) -> None:
    k = it.emit(Event("R", a.term, ("LKR",), addr=a.deps))
    it.read_locs[k] = a.term
    it.guards.append((("rd", k), 0))
    it.emit(Event("W", a.term, ("LKW",), val=1, addr=a.deps, rmw=k))
    it.lock_state[a.term] = "LKW"


def _read_lock_word(it: Interp, a: V, cls: str, value: int) -> None:
    k = it.emit(Event("R", a.term, (cls,), addr=a.deps))
    it.read_locs[k] = a.term
    it.guards.append((("rd", k), value))


@_def("spin_lock", 1)
def _spin_lock(it: Interp, args: list[Any]) -> V:
    _lock_pair(it, it.address(args[0]))
    return V(0)


@_def("spin_unlock", 1)
def _spin_unlock(it: Interp, args: list[Any]) -> V:
    a = it.address(args[0])
    it.store(a, V(0), ("UL",))
    it.lock_state[a.term] = "UL"
    return V(0)


@_def("spin_trylock", 1)
def _spin_trylock(it: Interp, args: list[Any]) -> V:
    a = it.address(args[0])
    if it.ch.choose(2) == 0:
        _lock_pair(it, a)
        return V(1)
    _read_lock_word(it, a, "LF", 1)
    return V(0)


@_def("spin_is_locked", 1)
def _spin_is_locked(it: Interp, args: list[Any]) -> V:
    """RL (true) or RU (false). ``lock.cat`` gives an RU one external source
    (an UL or the initial write, which always exists) *and*, after its own
    process's unlock, that UL too (``rfi-ru``): two sources, which coherence
    rejects. So an RU after its own unlock has no execution under the model
    (``CoWW+sil-lock-sil-unlock-sil``: herd7 says Never); we follow the file."""
    a = it.address(args[0])
    locked = it.ch.choose(2) == 0
    if not locked and it.lock_state.get(a.term) == "UL":
        raise DeadPath
    _read_lock_word(it, a, "RL" if locked else "RU", int(locked))
    return V(int(locked))


def _srcu_unlock(it: Interp, args: list[Any]) -> V:
    a = it.address(args[0])
    it.store(a, it.expr(args[1]), ("Srcu-unlock",))
    return V(0)


def _synchronize_srcu(it: Interp, args: list[Any]) -> V:
    it.emit(Event("S", it.address(args[0]).term, ("Sync-srcu",)))
    return V(0)


for _name in ("srcu_read_lock", "srcu_down_read"):
    PRIMITIVES[_name] = Prim(_name, 1, lambda it, args: it.load(it.address(args[0]), ("Srcu-lock",)))
for _name in ("srcu_read_unlock", "srcu_up_read"):
    PRIMITIVES[_name] = Prim(_name, 2, _srcu_unlock)
for _name in ("synchronize_srcu", "synchronize_srcu_expedited"):
    PRIMITIVES[_name] = Prim(_name, 1, _synchronize_srcu)
