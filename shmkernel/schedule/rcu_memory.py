"""RCU-sched as memory events, for the searches over execution graphs.

`shmkernel.schedule.kernel_sync` keeps a grace period as two steps of the
schedule and their fences at moments of it; what it guarantees rests on the
*order* of those moments across CPUs (the sync chain), which no execution
graph holds, so TruSt (`shmkernel.schedule.trust`) had to give way on every
program with a grace period. Here the same kernel services are written as
memory operations of the CPUs themselves, so the graph holds all of it:

- **A read-side section** (the outermost ``preempt_disable()`` ...
  ``preempt_enable()``, and a spinlock's, which disables preemption) starts
  and ends with a fully ordered ``atomic_inc_return`` of the CPU's own
  *section word*: odd inside a section, even outside. Those RMWs are the
  memory barriers of RCU's quiescent-state reporting (the kernel's RCU
  requirements: every CPU executes a full barrier between the end of a
  section a grace period waits for and that grace period's end, and between
  a grace period's start and any section it does not wait for). Putting
  them at every boundary is the conservative place: it can hide a reordering
  of a section's own accesses with code just outside it, never show an
  execution the kernel cannot have.
- **``synchronize_sched()``**: ``smp_mb()``; read every other CPU's section
  word; for each odd value, wait (``rcu_qs_wait``: a read that is eligible,
  and has ways, only once the word holds another value: that CPU left the
  section, GenMC's "assume" of a spin loop), then ``smp_mb()``. A section
  the snapshot saw as not begun is ordered after the caller's earlier
  accesses by SB with a full barrier on each side; one it waited for is
  before the caller's later ones by message passing through its last RMW.
  So a grace period may end between two sections of a looping reader (the
  next section's start was not in the snapshot), and the LKMM's RCU axiom
  ("a section cannot span a whole grace period") holds by construction.
- **``schedule()``**: a context switch is a full barrier on its own CPU
  (``smp_mb()``); it orders nothing on other CPUs.

Which CPUs use this: the graph searches once a search asks
(`shmkernel.schedule.searches.trust_search` turns it on when TruSt meets a
grace period or a context switch, then starts again; `handed_on` hands a
program that starts a grace period from DPOR to TruSt over the sc graph,
since `kernel_sync` takes a section as begun at the step before it).
``stop_machine`` and parking still read hidden state (which CPUs are parked),
so a program with them leaves TruSt for the stateful search as before. A schedule found this
way says so in its header (``kernel-sync=memory``) and replays the same way.
"""

from __future__ import annotations

from typing import Any

from shmkernel.schedule.ops import CODE

#: the steps this writes as memory events: TruSt meeting one asks for it (`GRACE_PERIODS`)
AS_MEMORY = (CODE["synchronize_sched"], CODE["schedule"])
GRACE_PERIODS = "a grace period or a context switch, ordered by the schedule"
#: the schedule header's option that says a schedule's CPUs ran their kernel synchronisation as memory
HEADER_OPTION = "kernel-sync"
HEADER_VALUE = "memory"


def section_boundary(ctx: Any) -> None:
    """The outermost preempt_disable() or preempt_enable(): a fully ordered RMW of
    this CPU's section word (odd: in a section)."""
    ctx.atomic_inc_return(ctx.gate.sections + ctx.cpu)


def synchronize_sched(ctx: Any) -> None:
    """A grace period: wait for every section in progress at its start, by memory."""
    base = ctx.gate.sections
    ctx.smp_mb()
    seen = []
    for o in range(ctx.gate.roles):
        if o != ctx.cpu:
            seen.append((o, ctx.read_once(base + o)))
    for o, v in seen:
        if v & 1 and ctx.rcu_qs_wait(base + o, v) == v:
            # (never: the wait reads another value.) Its test is the spin loop's exit test
            # in C: what follows is control-dependent on the read, as the LKMM has it
            raise RuntimeError("rcu_qs_wait returned the value it waited to change")
    ctx.smp_mb()


def context_switch(ctx: Any) -> None:
    """schedule(): a full barrier on this CPU only."""
    ctx.smp_mb()
