"""Schedule actions of a memory model, encoded as ints above the CPU numbers.

A scheduler chooses among CPUs and, under an emulated model, among these:
``COMMIT`` (a CPU's buffered store commits), ``READ_OLDER`` (a CPU's load
returns a value older than the newest it may see) and, under the graph model
(`shmkernel.memory.graph`), ``GRAPH`` (a CPU's memory operation is added with
its K-th consistent choice of the write it reads or its place in ``co``) and
``PROMISE`` (under the LKMM graph, a CPU's load reads a write of another CPU
that is not there yet and returns its value: load buffering). Encoding them
as ints lets every scheduler treat them like CPUs: `ACTION_BASE` + kind << 40
+ CPU << 20 + argument; a promise carries the write (its CPU and place) and
the value above bit 64.
"""

from __future__ import annotations

#: schedule actions that are not CPU steps are encoded as ints from here on
ACTION_BASE = 1 << 20
COMMIT, READ_OLDER, GRAPH, PROMISE = 1, 2, 3, 4
_FIELD = (1 << 20) - 1


def commit_id(cpu: int, index: int) -> int:
    """The action 'CPU ``cpu``'s ``index``-th buffered store commits'."""
    return ACTION_BASE + (COMMIT << 40) + (cpu << 20) + index


def read_older_id(cpu: int, older: int) -> int:
    """The choice 'CPU ``cpu`` loads the value ``older`` writes behind the newest'."""
    return ACTION_BASE + (READ_OLDER << 40) + (cpu << 20) + older


def graph_choice_id(cpu: int, k: int) -> int:
    """The choice 'CPU ``cpu`` takes its memory operation with the graph's ``k``-th way'."""
    return ACTION_BASE + (GRAPH << 40) + (cpu << 20) + k


def promise_id(cpu: int, writer: tuple[int, int], value: int) -> int:
    """The choice 'CPU ``cpu``'s load reads ``writer`` (CPU, place in its program order),
    which writes ``value``, before that write is there'."""
    zigzag = value * 2 if value >= 0 else -value * 2 - 1
    payload = writer[0] | writer[1] << 20 | zigzag << 40
    return ACTION_BASE + (PROMISE << 40) + (cpu << 20) + (payload << 64)


def decode_promise(aid: int) -> tuple[int, tuple[int, int], int]:
    """`promise_id`'s (CPU, write, value)."""
    x = aid - ACTION_BASE
    payload = x >> 64
    zigzag = payload >> 40
    value = zigzag // 2 if zigzag % 2 == 0 else -(zigzag + 1) // 2
    return (x >> 20) & _FIELD, (payload & _FIELD, payload >> 20 & _FIELD), value


def decode_action(aid: int) -> tuple[int, int, int]:
    x = aid - ACTION_BASE
    return (x >> 40) & 0xFFFFFF, (x >> 20) & _FIELD, x & _FIELD
