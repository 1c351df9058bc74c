"""The operations a scheduled CPU posts at its gate, and how they conflict.

Every ``ctx`` operation becomes one step. Its *access class* tells the
exhaustive explorer (DPOR) which steps commute: two steps conflict when they
touch the same word and one of them writes; blocking steps (parking, waiting
for a grace period) conflict with everything, which is always safe.
"""

from __future__ import annotations

import enum


class Access(enum.IntEnum):
    NONE = 0  # fences, yields: touch no word (under sc/native)
    READ = 1
    WRITE = 2
    RMW = 3
    LOCK = 4  # blocking acquire: eligible only while the lock word is 0
    PARK = 5  # stop_machine: parked until the epoch in arg is over
    SM_WAIT = 6  # stop_machine: eligible once every other CPU parked
    QS_WAIT = 7  # synchronize_sched: eligible once no other CPU is in a preempt-disabled section
    GLOBAL = 8  # conflicts with everything
    END = 9  # program finished (done) or raised (error)


#: (name, access, which argument holds the address) — index = op code
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
    ("synchronize_sched", Access.QS_WAIT),
    ("memory", Access.GLOBAL),  # a memory-model action: a store commits, a view moves on
]
CODE = {name: i for i, (name, _) in enumerate(OPS)}
NAME = [name for name, _ in OPS]
ACCESS = [acc for _, acc in OPS]
DONE, ERROR = CODE["done"], CODE["error"]
WRITES = (Access.WRITE, Access.RMW, Access.LOCK)


MEMORY = len(OPS) - 1


def conflicts_buffered(a_code: int, a_addr: int, b_code: int, b_addr: int) -> bool:
    """Under an emulated memory model fences and atomics act on buffers and
    views too, so they conflict with everything (sound, less reduction)."""
    a, b = ACCESS[a_code], ACCESS[b_code]
    if a in (Access.NONE, Access.RMW, Access.LOCK) or b in (Access.NONE, Access.RMW, Access.LOCK):
        if Access.END not in (a, b):
            return True
    return conflicts(a_code, a_addr, b_code, b_addr)


def conflicts(a_code: int, a_addr: int, b_code: int, b_addr: int) -> bool:
    """Do two steps (of different CPUs) fail to commute?"""
    a, b = ACCESS[a_code], ACCESS[b_code]
    if a in (Access.GLOBAL, Access.PARK, Access.SM_WAIT, Access.QS_WAIT) or b in (
        Access.GLOBAL, Access.PARK, Access.SM_WAIT, Access.QS_WAIT
    ):
        return True
    if a in (Access.NONE, Access.END) or b in (Access.NONE, Access.END):
        return False
    return a_addr == b_addr and (a in WRITES or b in WRITES)
