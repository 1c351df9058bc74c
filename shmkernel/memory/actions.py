"""Schedule actions of a memory model, encoded as ints above the CPU numbers.

A scheduler chooses among CPUs and, under an emulated model, among these:
``COMMIT`` (a CPU's buffered store commits), ``READ_OLDER`` (a CPU's load
returns a value older than the newest it may see) and, under the graph model
(`shmkernel.memory.graph`), ``GRAPH`` (a CPU's memory operation is added with
its K-th consistent choice of the write it reads or its place in ``co``). Encoding them as ints
lets every scheduler treat them like CPUs: `ACTION_BASE` + kind << 40 + CPU
<< 20 + argument.
"""

from __future__ import annotations

#: schedule actions that are not CPU steps are encoded as ints from here on
ACTION_BASE = 1 << 20
COMMIT, READ_OLDER, GRAPH = 1, 2, 3


def commit_id(cpu: int, index: int) -> int:
    """The action 'CPU ``cpu``'s ``index``-th buffered store commits'."""
    return ACTION_BASE + (COMMIT << 40) + (cpu << 20) + index


def read_older_id(cpu: int, older: int) -> int:
    """The choice 'CPU ``cpu`` loads the value ``older`` writes behind the newest'."""
    return ACTION_BASE + (READ_OLDER << 40) + (cpu << 20) + older


def graph_choice_id(cpu: int, k: int) -> int:
    """The choice 'CPU ``cpu`` takes its memory operation with the graph's ``k``-th way'."""
    return ACTION_BASE + (GRAPH << 40) + (cpu << 20) + k


def decode_action(aid: int) -> tuple[int, int, int]:
    x = aid - ACTION_BASE
    return x >> 40, (x >> 20) & 0xFFFFF, x & 0xFFFFF
