"""What a search returns: the verdict (found, proved, not-proved), what it covered and
what stopped it, and the one line a user must read first (`ExploreResult.headline`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("found", "proved", "not-proved")


#: a complete search over kernel_sync's forms that left executions out (`searches.scheduler_search`)
KERNEL_SYNC_GAPS = {
    "grace period": "over grace periods that take a section as begun at the step before it",
    "stop machine": "a stop could not park a CPU at a preempt_enable() (no step of its own in this search)",
}
GAP_FIX = "--scheduler exhaustive covers them for a proof"


@dataclass
class ExploreResult:
    workload: str
    variant: str
    cpus: int
    scheduler: str
    memory_model: str
    found: bool
    examples: int
    seconds: float
    outcome: str = "ok"
    events: dict[str, int] = field(default_factory=dict)
    schedule: str = ""
    trace: str = ""
    steps: int = 0
    complete: bool = False  # every execution of the bounded program covered: the verdict is "proved"
    steps_per_second: float = 0.0
    pruned: int = 0  # executions abandoned at a state explored before (stateful search)
    #: "found" (a replayable schedule), "proved" (every execution covered) or "not-proved"
    verdict: str = "not-proved"
    #: what stopped a not-proved search: "budget" (max_examples), "time" (time_limit),
    #: "bound" (the preemption bound cut choices), "load buffering" (trust under lkmm could
    #: not take a revisit: `shmkernel.schedule.trust_lb`) or "sampling" (no complete search)
    stopped_by: str = ""
    max_examples: int = 0
    time_limit: float | None = None
    preemption_bound: int | None = None
    iterations: int = 1
    #: executions abandoned because every eligible CPU was asleep (covered elsewhere)
    sleep_blocked: int = 0
    #: how to load the workload again (its name, or the file/module reference it came from)
    reference: str = ""
    #: worker processes the search could use (`shmkernel.schedule.parallel`)
    jobs: int = 1
    #: how an exhaustive search was split: subtrees, cut_depth, probes (empty: it was not)
    split: dict[str, int] = field(default_factory=dict)
    #: the search that ran, where ``scheduler`` names a family ("trust", "stateful graph" ...)
    search: str = ""
    #: why the optimal graph search (trust) gave way to the stateful one (empty: it did not)
    fallback: str = ""
    #: the traced execution as a Perfetto / Chrome trace-event timeline (``--trace-out``; not in as_json)
    timeline: dict[str, Any] = field(default_factory=dict, repr=False)

    def replay_command(self) -> str:
        """The command that replays ``schedule``, for the user to paste."""
        return f"shmkernel replay {shlex.quote(self.reference or self.workload)} '{self.schedule}'"

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "timeline"}

    def headline(self) -> str:
        """The verdict in one line: what a user must read first."""
        n = f"{self.examples:,} execution{'s' if self.examples != 1 else ''}"
        how = self.search or self.scheduler
        if self.verdict == "found":
            ev = ", ".join(f"{k}={v}" for k, v in self.events.items())
            return f"FOUND {ev} after {n} ({how}, {self.seconds:.2f} s)"
        if self.verdict == "proved":
            return (
                f"PROVED: no execution of {self.workload}/{self.variant} shows a violation "
                f"({n} covered every interleaving of {self.cpus} CPUs x {self.iterations} "
                f"iteration(s) under {self.memory_model}; {how}, {self.seconds:.2f} s)"
            )
        if self.stopped_by == "budget":
            why = f"stopped at {n}; raise --max-examples or --time-limit"
        elif self.stopped_by == "time":
            why = f"time limit of {self.time_limit or 0:g} s reached after {n}; raise --time-limit"
        elif self.stopped_by == "bound":
            why = (
                f"the preemption bound {self.preemption_bound} left interleavings out ({n} run); "
                f"drop --preemption-bound for a proof"
            )
        elif self.stopped_by == "load buffering":
            why = (
                f"{n} run, but trust could not take a load-buffering revisit that the LKMM may allow "
                f"(a write its reader's later events feed, changed by that read); this search covers "
                f"every execution without such a cycle"
            )
        elif self.stopped_by in KERNEL_SYNC_GAPS:
            why = f"{n} run, but {KERNEL_SYNC_GAPS[self.stopped_by]}, not every execution; {GAP_FIX}"
        elif self.stopped_by == "sampling":
            why = f"{self.scheduler} sampled {n} and found nothing; use --scheduler exhaustive for a proof"
        else:
            why = f"the search stopped after {n}"
        return f"NOT a proof: {why}"
