"""The step gate: a shared-memory handshake between a CPU and the coordinator.

Why this mechanism (measured in scripts/bench_schedule.py): a posix_ipc
semaphore hand-off costs 5-27 µs, spinning on a shared word 0.2 µs. Each side
may spin a little on the word it waits for (``SHMKERNEL_GATE_SPIN``; by
default it does not: on a loaded host a spinning waiter loses whole time
slices), then declares itself asleep
(an atomic exchange on its *sleeping* word) and blocks on its own POSIX
semaphore; the other side publishes with an atomic exchange (a full barrier)
and posts the semaphore only if the waiter declared itself asleep. The two
exchanges order each other (a Dekker handshake), so no wake-up is lost, and the
common case costs no system call at all.

Per CPU, one slot of two cache lines holds: the sequence number of its latest
post, the pending operation (code, address, two arguments, and under the LKMM
graph the loads it depends on), the result of the previous operation, the
grant (sequence number the coordinator allows) and the choice that comes with
it, its preempt count, and its sleeping word.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import posix_ipc

from shmkernel.hw.atomics import Atomics

SEQ, KIND, ADDR, ARG1, ARG2, RESULT, GRANT, CHOICE, PREEMPT, SLEEPING, VALUE, VKIND = range(12)
#: the posted operation's dependencies (`shmkernel.schedule.deps`: address, data, control,
#: each a window of the CPU's last operations) and how many memory operations it made before
ADEP, DDEP, CDEP, NMOPS = range(12, 16)
VNONE, VINT, VBOOL = 0, 1, 2  # what VALUE holds when a memory model computed the result
SLOT_WORDS = 16
ABORT = -1  # a CHOICE that ends the execution: the CPU unwinds its program
#: spins before sleeping: 0 (every hand-off blocks: robust when other processes load the
#: host, see schedule/session.py) unless SHMKERNEL_GATE_SPIN says otherwise
DEFAULT_SPIN = int(os.environ.get("SHMKERNEL_GATE_SPIN", "0"))
#: beyond this many CPU processes (coordinator included) waiting CPUs do not spin at all
SPIN_CPUS = 8
#: a sched_yield that kept a CPU off its core longer than this means another process
#: (not a peer, which yields back at once) runs there: each further yield could cost a
#: whole time slice, so the CPU blocks on its semaphore and is woken when granted
YIELD_TOO_LONG_S = 50e-6


@dataclass(frozen=True)
class GateSpec:
    """What a CPU process needs to find its gate (picklable)."""

    slots: int  # word index of slot 0
    coord_sleeping: int  # the coordinator's sleeping word
    cpu_sems: tuple[str, ...]
    coord_sem: str
    spin: int = DEFAULT_SPIN
    trace: bool = False
    model: bool = False  # the coordinator's memory model performs memory operations
    deps: bool = False  # values carry the loads they came from (the LKMM graph wants them)
    #: RCU-sched as memory (`shmkernel.schedule.rcu_memory`): each CPU's section word is
    #: ``sections + cpu``, for ``roles`` CPUs; ``rcu``: this execution's CPUs use them
    sections: int = -1
    roles: int = 0
    rcu: bool = False
    preemption_steps: bool = False  # an outermost preempt_enable() is a step (`Driver.preemption_steps`)

    def slot(self, cpu: int) -> int:
        return self.slots + cpu * SLOT_WORDS


class Gate:
    """Machine extension: declares the slots and makes the semaphores."""

    def __init__(self, spin: int = DEFAULT_SPIN, semaphores: bool = True) -> None:
        self.spin = spin
        #: False for the in-process engine: its CPUs are coroutines that hand over by
        #: switching, so nobody ever sleeps on a semaphore
        self.semaphores = semaphores
        self.spec: GateSpec | None = None

    def declare(self, machine) -> None:  # type: ignore[no-untyped-def]
        lay = machine.layout
        self._slots = lay.table("sched.slots", SLOT_WORDS * machine.roles)
        self._coord_sleeping = lay.scalar("sched.coord_sleeping")
        self.sections = lay.table("sched.rcu_sections", machine.roles)
        self.roles = machine.roles

    def create(self, machine) -> None:  # type: ignore[no-untyped-def]
        if not self.semaphores:
            self.spec = GateSpec(self._slots, self._coord_sleeping, (), "", 0, sections=self.sections, roles=self.roles)
            self.cpu_sem_objs = []
            return
        cpu_sems = []
        for _ in range(machine.roles):
            machine.new_semaphore(0)
            cpu_sems.append(machine.sem_names[-1])
        machine.new_semaphore(0)
        self.coord_sem = machine._sems[-1]
        # a waiting CPU yield-spins only while few share its core; with many, every
        # spinning waiter would steal the core from the one CPU that may move: they sleep
        spin = self.spin if machine.roles <= SPIN_CPUS else 0
        self.spec = GateSpec(
            self._slots,
            self._coord_sleeping,
            tuple(cpu_sems),
            machine.sem_names[-1],
            spin,
            sections=self.sections,
            roles=self.roles,
        )
        self.cpu_sem_objs = machine._sems[: machine.roles]


_opened: dict[str, posix_ipc.Semaphore] = {}


def open_semaphore(name: str) -> posix_ipc.Semaphore:
    """Open (once per process) a semaphore the coordinator made before forking."""
    sem = _opened.get(name)
    if sem is None:
        sem = _opened[name] = posix_ipc.Semaphore(name)
    return sem


def publish(w: memoryview, atomics: Atomics, addr: int, value: int, sleeping: int, sem: posix_ipc.Semaphore) -> None:
    """Store ``value`` with a full barrier, then wake the waiter if it sleeps."""
    atomics.exchange(addr, value)
    if w[sleeping] and atomics.exchange(sleeping, 0) == 1:
        sem.release()


def _acquire(sem: posix_ipc.Semaphore) -> None:
    """Block on ``sem``; a signal interrupting the wait only restarts it (the
    Python handler, which may raise, has run by then)."""
    while True:
        try:
            sem.acquire()
            return
        except posix_ipc.SignalError:
            continue


def wait_word(
    w: memoryview,
    atomics: Atomics,
    addr: int,
    target: int,
    sleeping: int,
    sem: posix_ipc.Semaphore,
    spin: int,
    check=None,
) -> None:  # type: ignore[no-untyped-def]
    """Return once ``w[addr] == target``: spin a little, then sleep on ``sem``.

    ``check`` (the coordinator's) is called every 0.2 s of sleep, so a CPU
    that died or stalled is noticed instead of waited for forever."""
    if check is None:  # a CPU: it shares its core with its peers, so spin politely
        for _ in range(spin // 16):
            if w[addr] == target:
                return
            t = time.perf_counter()
            os.sched_yield()
            if time.perf_counter() - t > YIELD_TOO_LONG_S:
                break  # another process took the core for a while (a loaded host): sleep instead
    else:
        for _ in range(spin):
            if w[addr] == target:
                return
    while True:
        atomics.exchange(sleeping, 1)
        if w[addr] == target:
            if atomics.exchange(sleeping, 0) == 0:
                _acquire(sem)  # the publisher saw us asleep and posted: consume it
            return
        if check is None:
            _acquire(sem)
        else:
            while True:
                try:
                    sem.acquire(0.2)
                    break
                except posix_ipc.BusyError:
                    if w[addr] == target and atomics.exchange(sleeping, 0) == 1:
                        return
                    check()
                except posix_ipc.SignalError:
                    check()  # Python's own handler ran (Ctrl-C raises there); then wait again
        if w[addr] == target:
            return
