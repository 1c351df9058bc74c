"""The scheduled CPU context: every ``ctx`` operation waits for the coordinator.

`ScheduledCtx` overrides each operation of the free `Ctx` with a thin wrapper
(generated from `ops.OPS`): post the operation at the gate, wait for the
grant, perform it (through `perform`, which a memory model can take over),
leave the result for the coordinator's trace. Kernel code does not change.

Blocking primitives post a blocking step: a lock is granted only while its
word is 0, a CPU parked by stop_machine only once the stop is over, so the
scheduler never picks a CPU that cannot move and never deadlocks itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

from shmkernel.memory.layout import PERCPU_STRIDE
from shmkernel.memory.models import CLASS as MODEL_OPS
from shmkernel.memory.models import FENCES, STORES
from shmkernel.runtime.ctx import Ctx
from shmkernel.schedule import gate as g
from shmkernel.schedule import rcu_memory
from shmkernel.schedule.deps import DepTracker, deps_of, plain, taint, to_window
from shmkernel.schedule.ops import CODE, DONE, ERROR

#: barrier candidates under test (`shmkernel.schedule.fixes`): (innermost kernel
#: function, op code, address) -> the fence a CPU runs just before that op, or
#: "release"/"acquire" (the op run as smp_store_release/smp_load_acquire). Set only
#: around an in-process exploration; empty otherwise (then each op pays one test).
FENCE_PLAN: dict[tuple[str, int, int], str] = {}
_CTX_FILES = ("/schedule/sctx.py", "/schedule/coroutines.py", "/runtime/ctx.py", "/schedule/rcu_memory.py")


class ExecutionAborted(BaseException):
    """Raised in a CPU when the coordinator ends the execution early."""

    quiet = True


class ScheduledCtx(Ctx):
    mode = "scheduled"

    def __init__(self, seg, ctl, cpu, nr_cpus, counter_names, atomics, gate: g.GateSpec) -> None:  # type: ignore[no-untyped-def]
        super().__init__(seg, ctl, cpu, nr_cpus, counter_names, atomics)
        self.gate = gate
        self._slot = gate.slot(cpu)
        self._seq = self.w[self._slot + g.SEQ]
        self._connect()
        self._nsteps = 0
        self._aborted = False  # once the coordinator ended the execution, every step unwinds
        self._fencing = False  # running a FENCE_PLAN fence (not to be planned again)
        self._log: list[tuple[int, str, str]] = []  # (step, kernel function chain, file:line)
        self._events: list[tuple[int, str, dict]] = []
        self.w[self._slot + g.PREEMPT] = 0
        #: under the LKMM graph: this CPU's dependency state (`shmkernel.schedule.deps`)
        self._dt = DepTracker() if gate.deps else None
        self._deps: tuple[int, int, int] | None = None  # the dependencies of the op being posted

    # -- the gate -----------------------------------------------------------------------
    def _connect(self) -> None:
        """Open the semaphores this CPU's hand-offs sleep on."""
        self._sem = g.open_semaphore(self.gate.cpu_sems[self.cpu])
        self._coord_sem = g.open_semaphore(self.gate.coord_sem)

    def _post(self, code: int, addr: int, a1: int, a2: int) -> int:
        w, s = self.w, self._slot
        w[s + g.KIND] = code
        w[s + g.ADDR] = addr
        w[s + g.ARG1] = a1
        w[s + g.ARG2] = a2
        if self._dt is not None:
            n = self._dt.mops
            ad, dd, cd = self.op_deps()  # type: ignore[misc]
            w[s + g.ADEP], w[s + g.DDEP], w[s + g.CDEP] = to_window(ad, n), to_window(dd, n), to_window(cd, n)
            w[s + g.NMOPS] = n
        self._seq += 1
        g.publish(w, self.atomics, s + g.SEQ, self._seq, self.gate.coord_sleeping, self._coord_sem)
        return self._seq

    def _step(self, code: int, addr: int, a1: int = 0, a2: int = 0) -> int:
        """Post one operation and wait for its grant; return the scheduler's choice.

        After an abort, a step in a ``finally:`` block (an unlock while the
        program unwinds) must not post again: nobody would ever grant it."""
        if self._aborted:
            raise ExecutionAborted()
        choice = self._handoff(code, addr, a1, a2)
        if choice == g.ABORT:
            self._aborted = True
            raise ExecutionAborted()
        if self.gate.trace:
            self._where()
        self._nsteps += 1
        return choice

    def _handoff(self, code: int, addr: int, a1: int, a2: int) -> int:
        """Post the operation, wait for its grant, return the choice granted with it."""
        seq = self._post(code, addr, a1, a2)
        w, s = self.w, self._slot
        g.wait_word(w, self.atomics, s + g.GRANT, seq, s + g.SLEEPING, self._sem, self.gate.spin)
        return w[s + g.CHOICE]

    def _planned(self, name: str, code: int, addr: int, args: tuple) -> tuple[bool, Any]:
        """What `FENCE_PLAN` says of this op in this kernel function: run a fence
        before it, or run it as a release/acquire; (done instead, result)."""
        f = sys._getframe(2)
        while f is not None and f.f_code.co_filename.endswith(_CTX_FILES):
            f = f.f_back
        change = FENCE_PLAN.get((f.f_code.co_name if f is not None else "", code, addr))
        if not change:
            return False, None
        self._fencing = True
        try:
            if change == "release" and name in ("write_once", "atomic_set"):
                return True, self.smp_store_release(*args)
            if change == "acquire" and name in ("read_once", "atomic_read"):
                return True, self.smp_load_acquire(*args)
            getattr(self, change)()
            return False, None
        finally:
            self._fencing = False

    def _where(self) -> None:
        f = sys._getframe(3)
        while f is not None and f.f_code.co_filename.endswith(_CTX_FILES):
            f = f.f_back
        chain = []
        loc = ""
        k = f
        while k is not None and len(chain) < 3:
            name = k.f_code.co_name
            if not loc:
                loc = f"{os.path.basename(k.f_code.co_filename)}:{k.f_lineno}"
            chain.append(name)
            if "workloads" in k.f_code.co_filename:
                break
            k = k.f_back
        self._log.append((self._nsteps, " < ".join(chain), loc))

    def _result(self, value: Any) -> None:
        self.w[self._slot + g.RESULT] = plain(value) if value is not None else 0

    def op_deps(self) -> tuple[int, int, int] | None:
        """What the posted operation depends on (`shmkernel.schedule.ops.Op.deps`)."""
        t = self._dt
        return None if t is None else self._deps or (0, 0, t.ctrl)

    def _post_deps(self, addr: Any, args: tuple, first: int) -> None:
        """The dependencies of the operation about to be posted: its address's, its
        operands' (data), and every branch so far (control)."""
        t = self._dt
        assert t is not None
        data = 0
        for x in args[first : first + 2]:
            data |= deps_of(x)
        self._deps = (deps_of(addr), data, t.ctrl)

    def _tracked(self, name: str, r: Any) -> Any:
        """Number the memory operation just performed (as the model numbers it); a load's
        value comes back carrying it."""
        t = self._dt
        assert t is not None
        k = t.mops
        t.mops += 1
        self._deps = None
        cls = MODEL_OPS[name]
        return r if cls in STORES or cls in FENCES else taint(t, r, k)

    def perform(self, name: str, args: tuple) -> Any:
        """Carry out a granted operation: on the host's own memory (sequentially
        consistent, since one CPU moves at a time), or, under an emulated memory
        model, take the result the coordinator's model computed."""
        if not self.gate.model or name not in MODEL_OPS:
            return getattr(Ctx, name)(self, *args)
        w, s = self.w, self._slot
        if name == "spin_lock" and not self.gate.rcu:  # (as memory: its own steps, `_spin_lock`)
            self.preempt_disable()
        elif name == "spin_unlock" and not self.gate.rcu:
            self.preempt_enable()
        kind = w[s + g.VKIND]
        if kind == g.VNONE:
            return None
        return bool(w[s + g.VALUE]) if kind == g.VBOOL else w[s + g.VALUE]

    def per_cpu_sum(self, pv: int) -> int:
        """One read step per slot, CPU 0 first, as the kernel's loop."""
        total = 0
        for cpu in range(self.nr_cpu_ids):
            total += self.per_cpu_read(pv, cpu)
        return total

    # -- program control --------------------------------------------------------------------
    def finish(self) -> None:
        if not self._aborted:
            self._post(DONE, -1, 0, 0)

    def abort(self) -> None:
        if not self._aborted:
            self._post(ERROR, -1, 0, 0)

    def report(self) -> object:
        return {"log": self._log, "events": self._events, "steps": self._nsteps}

    def event(self, name: str, **detail: object) -> None:
        super().event(name)
        self._events.append((self._nsteps, name, {k: v for k, v in detail.items() if isinstance(v, (int, str))}))

    def loop(self, iterations: int | None = None) -> Iterator[int]:
        if iterations is None:
            raise ValueError("a scheduled program needs a bound: pass iterations")
        yield from super().loop(iterations)

    def delay_us(self, us: float) -> None:
        """Time is the scheduler's: a delay is no step at all."""

    def _pause(self) -> None:
        """cpu_relax waits by being a step: nothing more to wait for."""

    # -- preemption, parking, grace periods ---------------------------------------------------
    def preempt_disable(self) -> None:
        self._preempt += 1
        self.w[self._slot + g.PREEMPT] = self._preempt
        if self._preempt == 1 and self.gate.rcu:
            rcu_memory.section_boundary(self)

    def preempt_enable(self) -> None:
        self._preempt -= 1
        self.w[self._slot + g.PREEMPT] = self._preempt
        if self._preempt == 0:
            if self.gate.rcu:
                rcu_memory.section_boundary(self)
            elif self.gate.preemption_steps:  # a stop requested after the step before may park us here
                self._step(CODE["preemption_point"], -1)
                self._result(0)
            self.preemption_point()

    def _park(self) -> None:
        ep = self.w[self.ctl.sm_req]
        self.w[self.ctl.sm_parked + self._this] = ep
        self._step(CODE["park"], self.ctl.sm_req, ep)
        self._result(0)

    def stop_machine(self, fn, *args):  # type: ignore[no-untyped-def]
        w, ctl = self.w, self.ctl
        self._stopper = True
        ep = w[ctl.sm_seq] + 1
        self._step(CODE["stop_machine"], ctl.sm_req, ep)
        w[ctl.sm_seq] = ep
        w[ctl.sm_req] = ep
        self._result(ep)
        self._step(CODE["stop_machine_wait"], ctl.sm_req, ep)
        self._result(0)
        try:
            return fn(self, *args)
        finally:
            self._step(CODE["stop_machine_end"], ctl.sm_req, 0)
            w[ctl.sm_req] = 0
            self._result(0)
            self._stopper = False

    def synchronize_sched(self) -> None:
        """Two steps: the grace period begins (the coordinator notes which CPUs
        are inside a preempt-disabled section now), then ends once each of
        those has left it; sections that begin later are not waited for. (As
        memory events under the graph searches: `shmkernel.schedule.rcu_memory`.)"""
        if self.gate.rcu:
            return rcu_memory.synchronize_sched(self)
        self._step(CODE["synchronize_sched"], -1)
        self._result(0)
        self._step(CODE["synchronize_sched_wait"], -1)
        self._result(0)

    def schedule(self) -> None:
        if self._preempt == 0:
            self.preemption_point()
        if self.gate.rcu:
            return rcu_memory.context_switch(self)
        self._step(CODE["schedule"], -1)
        self._result(0)


def _addr_first(self: ScheduledCtx, args: tuple) -> int:
    return args[0]


def _addr_this_cpu(self: ScheduledCtx, args: tuple) -> int:
    return args[0] + self._this


def _addr_per_cpu(self: ScheduledCtx, args: tuple) -> int:
    return args[0] + args[1] * PERCPU_STRIDE


def _addr_none(self: ScheduledCtx, args: tuple) -> int:
    return -1


def _make_op(name: str, code: int, addr_of, first_arg: int):  # type: ignore[no-untyped-def]
    second = first_arg + 1

    def op(self: ScheduledCtx, *args: Any) -> Any:
        if FENCE_PLAN and not self._fencing:
            done, r = self._planned(name, code, addr_of(self, args), args)
            if done:
                return r
        n = len(args)
        a1 = plain(args[first_arg]) if n > first_arg else 0
        a2 = plain(args[second]) if n > second else 0
        addr = addr_of(self, args)
        tracked = self._dt is not None and name in MODEL_OPS
        if tracked:
            self._post_deps(addr, args, first_arg)
        self._step(code, plain(addr), a1, a2)
        r = self.perform(name, args)
        self._result(r)
        return self._tracked(name, r) if tracked else r

    op.__name__ = name
    op.__doc__ = f"Scheduled {name}: one step at the gate, then {name} on memory."
    return op


_ADDR = {
    "this_cpu_read": _addr_this_cpu,
    "this_cpu_write": _addr_this_cpu,
    "this_cpu_inc": _addr_this_cpu,
    "this_cpu_dec": _addr_this_cpu,
    "this_cpu_add": _addr_this_cpu,
    "per_cpu_read": _addr_per_cpu,
    "smp_mb": _addr_none,
    "smp_rmb": _addr_none,
    "smp_wmb": _addr_none,
    "cpu_relax": _addr_none,
}
_SKIP = {
    "preemption_point",
    "done",
    "error",
    "park",
    "stop_machine",
    "stop_machine_wait",
    "stop_machine_end",
    "synchronize_sched",
    "synchronize_sched_wait",
    "schedule",
    "memory",
}

for _name, _code in CODE.items():
    if _name in _SKIP:
        continue
    _first = 2 if _name == "per_cpu_read" else 1  # the operation's arguments after its address
    setattr(ScheduledCtx, _name, _make_op(_name, _code, _ADDR.get(_name, _addr_first), _first))

_granted_lock, _granted_unlock = ScheduledCtx.spin_lock, ScheduledCtx.spin_unlock


def _spin_lock(self: ScheduledCtx, lock: Any) -> Any:
    """A spinlock disables preemption first (as the kernel's): with RCU-sched as memory
    its section's RMW is a step before the lock's."""
    if self.gate.rcu:
        self.preempt_disable()
    return _granted_lock(self, lock)


def _spin_unlock(self: ScheduledCtx, lock: Any) -> Any:
    r = _granted_unlock(self, lock)
    if self.gate.rcu:
        self.preempt_enable()
    return r


ScheduledCtx.spin_lock, ScheduledCtx.spin_unlock = _spin_lock, _spin_unlock  # type: ignore[method-assign]
assert ERROR != DONE
