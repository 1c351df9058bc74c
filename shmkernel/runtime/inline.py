"""A program run alone, free, in the supervising process itself.

Why: a machine without CPU processes (the scheduled in-process engine's,
`shmkernel.schedule.coroutines`) still boots its workload before each
execution; the setup program runs here, on the coordinator's CPU number, with
the same `Ctx` a CPU process would give it.
"""

from __future__ import annotations

from collections.abc import Callable

from shmkernel.errors import RunError
from shmkernel.hw.atomics import Atomics
from shmkernel.memory.layout import PERCPU_STRIDE
from shmkernel.runtime.cpu_process import short_error
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.machine import Machine
from shmkernel.runtime.program import Program


def run_inline(m: Machine, role: int, program: Program, ctx_factory: Callable[..., Ctx] = Ctx) -> object:
    """Run ``program`` alone on CPU ``role`` of started machine ``m``, in this
    process; an exception is a `RunError` naming the CPU, as from a CPU process."""
    assert m.seg is not None
    programs: list[Program | None] = [None] * m.roles
    programs[role] = program
    m._run_id += 1
    m.reset_run_words(programs)
    if m.atomics is None:  # made once: binding every word costs ~0.5 ms
        m.atomics = Atomics(m.seg.map, m.seg.layout.nwords)
    ctx = ctx_factory(m.seg, m.ctl, role, m.cpus, m.counter_names, m.atomics)
    try:
        result = program.fn(ctx, program.params)
    except Exception as e:
        raise RunError(f"{m.role_name(role)}: {short_error(e)}") from None
    finally:
        m.seg.words[m.ctl.finished + role * PERCPU_STRIDE] = 1
    ctx.finish()
    return result
