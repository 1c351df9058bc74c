"""What a CPU runs (`Program`: a function and its parameters, picklable by reference)
and what a run gives back (`RunResult`: counters per CPU, the programs' results)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shmkernel.runtime.ctx import Ctx


@dataclass(frozen=True)
class Program:
    """A function run on one CPU: ``fn(ctx, params)``; picklable by reference."""

    fn: Callable[[Ctx, dict], object]
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    run_id: int
    seconds: float
    counters: dict[str, int]
    per_cpu: np.ndarray  # roles x counters
    results: list[object]
    reports: list[object] = field(default_factory=list)
