"""A started machine and engine for one workload configuration: what every
scheduled execution of it runs on (`shmkernel.schedule.explorer` drives the
searches; `shmkernel.explore` is the public face).
"""

from __future__ import annotations

import os
from typing import Any

from shmkernel.errors import RunError, UsageError
from shmkernel.runtime.pinning import pin_self, usable_cores
from shmkernel.schedule import rcu_memory
from shmkernel.schedule.coroutines import CoroutineEngine
from shmkernel.schedule.engine import Engine, Execution
from shmkernel.schedule.gate import Gate
from shmkernel.schedule.kernel_sync import PREEMPTION_OPTION, PREEMPTION_STEPS
from shmkernel.schedule.trace import ScheduleHeader, render
from shmkernel.workload import Workload
from shmkernel.workload.machines import boot, open_machine

#: how a scheduled execution runs the CPUs' programs: ``inprocess`` (coroutines of the
#: coordinator's process, `shmkernel.schedule.coroutines`: a step is a switch, 2.7-4.5x
#: faster) or ``processes`` (the Machine's real CPU processes through the gate). They
#: give the same verdicts, executions and traces (tests/test_engines.py); `explore`
#: defaults to inprocess and `replay` to processes, so a schedule found fast is
#: seen again on real processes.
ENGINES = ("inprocess", "processes")


class Session:
    """A started machine plus engine for one workload configuration."""

    def __init__(
        self,
        wl: Workload,
        variant: str,
        cpus: int,
        opts: dict[str, Any],
        iterations: int,
        memory_model: str,
        max_steps: int,
        engine: str = "processes",
    ) -> None:
        if engine not in ENGINES:
            raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.wl, self.variant, self.cpus, self.opts = wl, variant, cpus, opts
        self.iterations, self.memory_model = iterations, memory_model
        self.engine_name = engine
        self.in_process = engine == "inprocess"
        self.gate = Gate(semaphores=not self.in_process)
        # One CPU moves at a time, so pinning changes no result; it is chosen for
        # speed. By default every process sits on the last core and each hand-off
        # blocks (no spin): the one that waits sleeps, so the core's scheduler runs the
        # one just woken, before any other process of the host (with two `yes` beside:
        # 8,451 steps/s against 388 for spinning on two cores; quiet, 29,900 against
        # 35,700). With SHMKERNEL_GATE_SPIN > 0 the coordinator spins on the first core
        # and the CPU processes yield-spin on the last one (a little faster with few CPUs
        # on an idle host, slower with many: 5,512 against 9,696 steps/s at 64 CPUs).
        cores = usable_cores()
        spinning = self.gate.spin > 0 and len(cores) > 1
        self._own_core = cores[0] if spinning else cores[-1]
        self.m = open_machine(
            wl, cpus, opts, pin=False, extensions=(self.gate,), cores=[cores[-1]], processes=not self.in_process
        )
        self.max_steps = max_steps

    def __enter__(self) -> Session:
        self._affinity = os.sched_getaffinity(0)
        self.m.start()
        try:
            if self.in_process:
                self.engine: Engine = CoroutineEngine(self.m, self.gate, self.max_steps, self.memory_model)
            else:
                pin_self(self._own_core)
                self.engine = Engine(self.m, self.gate, self.max_steps, self.memory_model)
        except BaseException:  # __exit__ does not run when __enter__ raises
            os.sched_setaffinity(0, self._affinity)
            self.m.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            os.sched_setaffinity(0, self._affinity)
        finally:
            self.m.close()

    def execute(self, scheduler: Any, trace: bool = False) -> tuple[Execution, dict[str, int]]:
        reset = getattr(self.wl, "reset_state", None)
        if reset is not None:  # plain test set-up, written by the coordinator itself
            assert self.m.seg is not None
            reset(self.m.seg, self.m.vars)
        else:
            boot(self.m, self.wl, self.variant, self.opts)
        progs = self.wl.programs(self.variant, self.m.vars, self.cpus, self.opts, self.iterations)
        ex = self.engine.run(progs, scheduler, trace=trace)
        assert ex.result is not None and self.m.seg is not None
        if ex.outcome == "ok":
            problems = self.wl.check(self.variant, self.m.vars, self.m.seg, self.cpus, self.opts, ex.result)
            if problems:
                raise RunError(f"exactness check failed: {'; '.join(problems)}")
        if ex.outcome == "pruned":  # a state explored before: whatever it leads to is known
            return ex, {}
        events = {e: ex.result.counters.get(e, 0) for e in (*self.wl.events, "bug", "warn")}
        events = {k: v for k, v in events.items() if v}
        if ex.outcome != "ok":
            events[ex.outcome] = 1
        return ex, events

    def header(self) -> ScheduleHeader:
        defaults = {o.name: o.default for o in self.wl.options}
        changed = {k: str(v) for k, v in self.opts.items() if k in defaults and v != defaults[k]}
        if self.engine.rcu_as_memory:  # its steps include the sections' RMWs: replay must run them too
            changed[rcu_memory.HEADER_OPTION] = rcu_memory.HEADER_VALUE
        elif self.engine.preemption_steps:  # and these, preempt_enable()'s preemption points
            changed[PREEMPTION_OPTION] = PREEMPTION_STEPS
        return ScheduleHeader(self.wl.name, self.variant, self.cpus, self.iterations, self.memory_model, changed)

    def diagram(self, ex: Execution) -> str:
        assert ex.result is not None
        cpus = sorted({s.cpu for s in ex.steps} | set(ex.blocked))
        text = render(ex.steps, self.m.layout, cpus, ex.result.reports, self.m.coordinator_cpu)
        if ex.blocked:
            text += "\n" + "\n".join(f"  CPU {c} blocked at its next step" for c in ex.blocked)
        return text

    def timeline(self, ex: Execution) -> dict[str, Any]:
        """The execution as a Perfetto / Chrome trace-event timeline (`shmkernel.schedule.timeline`)."""
        from shmkernel.schedule.timeline import timeline

        assert ex.result is not None
        cpus = sorted({s.cpu for s in ex.steps} | set(ex.blocked))
        title = f"shmkernel {self.wl.name}/{self.variant} under {self.memory_model}"
        return timeline(ex.steps, self.m.layout, cpus, ex.result.reports, self.m.coordinator_cpu, title)


def resolve(
    workload: str | Workload, variant: str | None, opts: dict[str, Any] | None, cpus: int | None, iterations: int | None
) -> tuple[Workload, str, dict[str, Any], int, int]:
    from shmkernel.workload import registry as workloads

    wl = workloads.get(workload) if isinstance(workload, str) else workloads.as_workload(workload)
    variant = wl.resolve_variant(variant or "buggy")
    raw = {k: v for k, v in wl.explore_defaults.items() if k not in EXPLORE_KEYS}
    raw.update(opts or {})
    parsed = wl.parse_options(raw)
    iters = iterations if iterations is not None else wl.explore_defaults.get("iterations", 1)
    if iters < 1:
        raise UsageError("--iterations must be >= 1")
    return wl, variant, parsed, cpus or wl.default_cpus, iters


#: explore_defaults keys that are settings of the search, not workload options
EXPLORE_KEYS = ("iterations", "max_examples")
