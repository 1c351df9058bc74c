"""A Machine laid out for a workload, its boot, and a free run with its exactness check.

Why here, in the workload layer: every user of a workload (``run``, sweeps,
the scheduled session, litmus, the pytest plugin) needs the same three
steps, and they are runtime set-up, not statistics: `shmkernel.measure`
turns the counts they return into rates and records.
"""

from __future__ import annotations

import functools
from typing import Any

from shmkernel.errors import RunError, UsageError
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.inline import run_inline
from shmkernel.runtime.machine import Machine, RunResult
from shmkernel.workload import Workload


def open_machine(
    wl: Workload,
    cpus: int,
    opts: dict[str, Any],
    pin: bool = True,
    extensions: tuple[object, ...] = (),
    cores: list[int] | None = None,
    processes: bool = True,
) -> Machine:
    """A Machine laid out for ``wl``, not started: use it as a context manager
    (``with open_machine(...) as m``) or call ``.start()`` (and ``.close()``)."""
    holder: dict[str, Any] = {}

    def declare(layout):  # type: ignore[no-untyped-def]
        holder["v"] = wl.declare(layout, opts)
        return holder["v"]

    return Machine(
        cpus,
        declare=declare,
        counter_names=wl.counter_names,
        possible_cpus=wl.possible_cpus(cpus, opts),
        pin=pin,
        extensions=extensions,
        cores=cores,
        processes=processes,
    )


def boot(m: Machine, wl: Workload, variant: str, opts: dict[str, Any]) -> None:
    """Run the workload's setup program alone on the coordinator CPU (in this
    process when the machine has none: the in-process engine's)."""
    if not m.processes:
        run_inline(m, m.coordinator_cpu, wl.setup(variant, m.vars, opts))
        return
    m.run([None] * m.cpus + [wl.setup(variant, m.vars, opts)], timeout=m.stop_grace)


def run_free(
    m: Machine,
    wl: Workload,
    variant: str,
    opts: dict[str, Any],
    seconds: float | None = None,
    iterations: int | None = None,
    memory_model: str = "native",
    seed: int = 0,
) -> RunResult:
    """One free run of ``variant`` on a started machine, booted first, its exact
    state checked at quiesce (a mismatch is a runtime bug: `RunError`)."""
    variant = wl.resolve_variant(variant)
    if memory_model == "weak" and wl.free_weak_refused:
        raise UsageError(wl.free_weak_refused)
    boot(m, wl, variant, opts)
    factory: Any = Ctx
    if memory_model != "native":
        from shmkernel.runtime.ctx_models import BufferedCtx

        factory = functools.partial(BufferedCtx, model=memory_model, seed=seed)
    res = m.run(
        wl.programs(variant, m.vars, m.cpus, opts, iterations),
        seconds=seconds,
        ctx_factory=factory,
        stop_after=m.cpus if iterations is not None and seconds is None else None,  # the workers' iterations
    )
    assert m.seg is not None
    problems = wl.check(variant, m.vars, m.seg, m.cpus, opts, res)
    if problems:
        raise RunError(f"exactness check failed ({wl.name}/{variant}): {'; '.join(problems)}")
    return res
