"""Words the runtime itself keeps in the segment (declared before any workload's).

Why in the segment: stop flags, the start word, stop_machine's request and the
quiescent-state counters must be seen by every CPU process with one load, the
same way the kernel's own per-CPU scheduler state is.
"""

from __future__ import annotations

from dataclasses import dataclass

from shmkernel.memory.layout import LINE_WORDS, Layout


@dataclass(frozen=True)
class Control:
    """Addresses of the runtime's control words (all word indices)."""

    go: int  # run id the CPUs wait for before starting their program
    stop: int  # non-zero: free-running programs leave their loop
    sm_req: int  # stop_machine epoch requested (0: none): CPUs park at their next preemption point
    sm_seq: int  # last stop_machine epoch handed out
    sm_parked: int  # per-CPU: the epoch this CPU is parked for
    qs: int  # per-CPU quiescent-state counter (synchronize_sched)
    gp_req: int  # free mode under a model: grace periods waited for (a quiescent state then is a barrier)
    finished: int  # per-CPU: 1 once the CPU's program returned
    counters: int  # table: one row of counters per role
    row_words: int  # words per role row (a multiple of a cache line)


def declare_control(layout: Layout, roles: int, counter_names: tuple[str, ...]) -> Control:
    """Declare the runtime's words in ``layout``; counters get one row per role."""
    row = max(LINE_WORDS, -(-len(counter_names) // LINE_WORDS) * LINE_WORDS)
    return Control(
        go=layout.scalar("rt.go"),
        stop=layout.scalar("rt.stop"),
        sm_req=layout.scalar("rt.sm_req"),
        sm_seq=layout.scalar("rt.sm_seq"),
        sm_parked=layout.percpu("rt.sm_parked"),
        qs=layout.percpu("rt.qs"),
        gp_req=layout.scalar("rt.gp_req"),
        finished=layout.percpu("rt.finished"),
        counters=layout.table("rt.counters", row * roles),
        row_words=row,
    )
