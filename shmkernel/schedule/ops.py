"""The operations a scheduled CPU posts at its gate, and how they conflict.

Every ``ctx`` operation becomes one step. Its *access class* tells the
exhaustive explorer (DPOR) which steps commute: two steps conflict when they
touch the same word and one of them writes; blocking steps (parking, waiting
for a grace period) conflict with everything, which is always safe.

**The invariant that keeps enabledness sound.** A reduction may only swap
two steps that commute, and "commute" includes "neither enables or disables
the other". A lock's enabledness reads its word, which only conflicting steps
(lock, unlock, trylock, a write) change, so the address rule covers it. The
waits below read state that is *not* a step's address: preempt counts and
quiescent states (written between a CPU's steps, as part of the step before),
the stop_machine request word and which CPUs are parked. Each such operation
therefore conflicts with every step of every CPU (`HIDDEN_STATE`, asserted
at import below): then no reduction ever moves a step across one of them.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol


class Access(enum.IntEnum):
    NONE = 0  # fences, yields: touch no word (under sc/native)
    READ = 1
    WRITE = 2
    RMW = 3
    LOCK = 4  # blocking acquire: eligible only while the lock word is 0
    PARK = 5  # stop_machine: parked until the epoch in arg is over
    SM_WAIT = 6  # stop_machine: eligible once every other CPU parked
    QS_WAIT = 7  # synchronize_sched: eligible once every CPU that was in a read-side section when it began has left it
    GLOBAL = 8  # conflicts with everything
    END = 9  # program finished (done) or raised (error)
    AWAIT = 10  # a read eligible once its word differs from arg (a wait on memory the model keeps)


#: (name, access) — index = op code
OPS: list[tuple[str, Access]] = [
    ("done", Access.END),
    ("error", Access.END),
    ("read_once", Access.READ),
    ("write_once", Access.WRITE),
    ("this_cpu_read", Access.READ),
    ("this_cpu_write", Access.WRITE),
    ("this_cpu_inc", Access.RMW),
    ("this_cpu_dec", Access.RMW),
    ("this_cpu_add", Access.RMW),
    ("per_cpu_read", Access.READ),
    ("atomic_read", Access.READ),
    ("atomic_set", Access.WRITE),
    ("atomic_add_return", Access.RMW),
    ("atomic_fetch_add", Access.RMW),
    ("atomic_inc", Access.RMW),
    ("atomic_dec", Access.RMW),
    ("atomic_add", Access.RMW),
    ("atomic_inc_return", Access.RMW),
    ("atomic_dec_return", Access.RMW),
    ("atomic_sub_return", Access.RMW),
    ("atomic_dec_and_test", Access.RMW),
    ("atomic_cmpxchg", Access.RMW),
    ("atomic_xchg", Access.RMW),
    ("atomic_add_unless", Access.RMW),
    ("atomic_inc_not_zero", Access.RMW),
    ("atomic_dec_if_positive", Access.RMW),
    ("smp_mb", Access.NONE),
    ("smp_rmb", Access.NONE),
    ("smp_wmb", Access.NONE),
    ("smp_store_release", Access.WRITE),
    ("smp_load_acquire", Access.READ),
    ("spin_lock", Access.LOCK),
    ("spin_unlock", Access.WRITE),
    ("mutex_lock", Access.LOCK),
    ("mutex_trylock", Access.RMW),
    ("mutex_unlock", Access.WRITE),
    ("cpu_relax", Access.NONE),
    ("schedule", Access.NONE),
    ("park", Access.PARK),
    ("stop_machine", Access.GLOBAL),
    ("stop_machine_wait", Access.SM_WAIT),
    ("stop_machine_end", Access.GLOBAL),
    # a grace period is two steps: its start snapshots which CPUs are inside a
    # preempt-disabled (RCU-sched read-side) section, its end waits for those only
    ("synchronize_sched", Access.GLOBAL),
    ("synchronize_sched_wait", Access.QS_WAIT),
    # RCU-sched as memory (`shmkernel.schedule.rcu_memory`): a grace period reads a CPU's
    # section word until it is no longer the odd value its start saw
    ("rcu_qs_wait", Access.AWAIT),
    # an outermost preempt_enable()'s preemption point, as a step of its own when a search
    # asks (a stop may park the CPU there: `Driver.preemption_steps`)
    ("preemption_point", Access.NONE),
    ("memory", Access.GLOBAL),  # a memory-model action: a store commits, a view moves on
]
CODE = {name: i for i, (name, _) in enumerate(OPS)}
NAME = [name for name, _ in OPS]
ACCESS = [acc for _, acc in OPS]
DONE, ERROR = CODE["done"], CODE["error"]
WRITES = (Access.WRITE, Access.RMW, Access.LOCK)
MEMORY = len(OPS) - 1
assert NAME[MEMORY] == "memory"


class Op(NamedTuple):
    """A pending operation as posted at a gate (a tuple: built once per step)."""

    code: int
    addr: int
    a1: int
    a2: int
    #: under the LKMM graph, the loads it depends on (`shmkernel.schedule.deps`): masks by
    #: the CPU's memory-operation number, (address, data, control); None: not tracked
    deps: tuple[int, int, int] | None = None


# -- enabledness: when a posted operation may be granted -------------------------------------------
class Machinery(Protocol):
    """What the enabledness of a blocking operation reads."""

    def word(self, addr: int) -> int: ...
    def stop_request(self) -> int | None: ...  # the stop_machine epoch requested (0: none)
    def preempt(self, cpu: int) -> int: ...  # 0: the CPU is outside any preempt-disabled section
    def grace_period_over(self, cpu: int) -> bool: ...  # the grace period ``cpu`` waits in has ended
    def awaited(self, cpu: int, op: Op) -> bool: ...  # may ``cpu``'s read read another value than op.a1?


def enabled(cpu: int, op: Op, pending: dict[int, Op], m: Machinery) -> bool:
    """May ``cpu`` take ``op`` now? A lock while its word is 0; a parked CPU once
    the stop it parked for is over; stop_machine's wait once every other CPU is
    parked for it, finished, or asleep on a mutex (a sleeping task is not running
    and stop_machine does not wait for it); a grace period's end once every
    section it waits for is left (`shmkernel.schedule.kernel_sync`); an awaiting
    read once it can read another value than its argument. Every other
    operation always. (The last three read hidden state: see the invariant above.)"""
    acc = ACCESS[op.code]
    if acc is Access.LOCK:
        return m.word(op.addr) == 0
    if acc is Access.PARK:
        req = m.stop_request()
        return req is not None and req != op.a1
    if acc is Access.SM_WAIT:
        return all(_parked_or_done(o, p, op.a1, m) for o, p in pending.items() if o != cpu)
    if acc is Access.QS_WAIT:
        return m.grace_period_over(cpu)
    if acc is Access.AWAIT:
        return m.awaited(cpu, op)
    return True


def _parked_or_done(cpu: int, p: Op, epoch: int, m: Machinery) -> bool:
    if p.code in (DONE, ERROR):
        return True
    if p.code == CODE["park"] and p.a1 == epoch:
        return True
    return p.code == CODE["mutex_lock"] and m.word(p.addr) != 0 and m.preempt(cpu) == 0


#: accesses whose enabledness (or effect) reads state that is not their address
HIDDEN_STATE = (Access.PARK, Access.SM_WAIT, Access.QS_WAIT, Access.GLOBAL)
#: accesses that may be disabled (a CPU posted them but cannot take them yet)
BLOCKING = (Access.LOCK, Access.PARK, Access.SM_WAIT, Access.QS_WAIT, Access.AWAIT)
#: what a lock operation leaves its word as: held (True) or free (False)
LOCK_EFFECT = {
    CODE["spin_lock"]: True,
    CODE["mutex_lock"]: True,
    CODE["spin_unlock"]: False,
    CODE["mutex_unlock"]: False,
}


def conflicts(a_code: int, a_addr: int, b_code: int, b_addr: int) -> bool:
    """Do two steps (of different CPUs) fail to commute? By operation code only:
    a read-modify-write counts as a write (what `dependence` refines for a step
    that has run)."""
    a, b = ACCESS[a_code], ACCESS[b_code]
    if a in HIDDEN_STATE or b in HIDDEN_STATE:
        return True
    if a in (Access.NONE, Access.END) or b in (Access.NONE, Access.END):
        return False
    return a_addr == b_addr and (a in WRITES or b in WRITES)


# -- dependence classes for the reductions ---------------------------------------------------------
#: a step's dependence class: touches nothing, reads its word, writes it, or everything
D_NONE, D_READ, D_WRITE, D_ALL = 0, 1, 2, 3


def rmw_wrote(code: int, a1: int, a2: int, result: int) -> bool:
    """Did a read-modify-write that returned ``result`` write its word? A failed
    conditional one (a cmpxchg that found another value, ``atomic_add_unless``
    at the limit, ``atomic_inc_not_zero`` of 0, ``atomic_dec_if_positive`` of
    0, a failed trylock) only read it, in every memory model."""
    name = NAME[code]
    if name == "atomic_cmpxchg":
        return result == a1
    if name in ("atomic_add_unless", "atomic_inc_not_zero", "mutex_trylock"):
        return bool(result)
    if name == "atomic_dec_if_positive":
        return result >= 0
    return True


def dependence(code: int, a1: int = 0, a2: int = 0, result: int | None = None) -> int:
    """The dependence class of an operation; ``result`` given (the step ran), a
    failed conditional read-modify-write is a read. Without it (a step not yet
    taken, whose outcome may change where it is moved) it is a write: the
    conservative side."""
    acc = ACCESS[code]
    if acc in HIDDEN_STATE:
        return D_ALL
    if acc in (Access.NONE, Access.END):
        return D_NONE
    if acc in (Access.READ, Access.AWAIT):
        return D_READ
    if acc is Access.RMW and result is not None and not rmw_wrote(code, a1, a2, result):
        return D_READ
    return D_WRITE


def dependent(a_dep: int, a_addr: int, b_dep: int, b_addr: int) -> bool:
    """Do two steps with these dependence classes fail to commute?"""
    if a_dep == D_ALL or b_dep == D_ALL:
        return True
    if a_dep == D_NONE or b_dep == D_NONE:
        return False
    return a_addr == b_addr and (a_dep == D_WRITE or b_dep == D_WRITE)


def _check_invariant() -> None:
    """Every operation with hidden-state enabledness conflicts with every step."""
    for code, (name, acc) in enumerate(OPS):
        if acc not in HIDDEN_STATE:
            continue
        for other in range(len(OPS)):
            assert conflicts(code, -1, other, 7) and conflicts(other, 7, code, -1), (name, NAME[other])
            assert dependent(dependence(code), -1, dependence(other), 7), (name, NAME[other])


_check_invariant()
