"""stop_machine() and synchronize_sched(), as the module code of the seeds uses them.

``stop_machine(ctx, fn, *args)``: every other CPU parks at its next preemption
point (never inside a preempt_disable() section), then ``fn`` runs alone on the
calling CPU, then all resume. ``synchronize_sched(ctx)``: wait until every
other CPU has passed a preemption point, so every preempt-disabled section that
was running when it was called has finished.

Both are runtime services (they need to see every CPU), so they forward to the
CPU context, which implements them for the free and the scheduled mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shmkernel.runtime.ctx import Ctx


def stop_machine(ctx: Ctx, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(ctx, *args)`` while every other CPU is parked; return its result."""
    return ctx.stop_machine(fn, *args)


def synchronize_sched(ctx: Ctx) -> None:
    """Wait for a preemption point on every other CPU (RCU-sched grace period)."""
    ctx.synchronize_sched()
