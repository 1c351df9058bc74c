"""The /dev/shm tracker process: names in on a pipe, unlinked when the pipe closes.

A module of its own, importing nothing but ``posix_ipc``, because it is the
one process that must start fast on a loaded host: it is spawned before a
run's first segment exists, and after ``kill -9`` of the run's whole group
it alone unlinks what the run left (``shmkernel.memory.reaper`` starts it
and says why). Importing the reaper (and numpy through the segment's magic)
took 80 ms idle and seconds under load.

Protocol, a line each: ``+shm NAME`` / ``+sem NAME`` (made), ``-NAME``
(unlinked by its owner).
"""

from __future__ import annotations

import sys

import posix_ipc


def track() -> None:
    """Remember names until the pipe closes, then unlink the rest."""
    live: dict[str, str] = {}
    for line in sys.stdin:
        line = line.strip()
        if line.startswith("+"):
            kind, _, name = line[1:].partition(" ")
            live[name] = kind
        elif line.startswith("-"):
            live.pop(line[1:], None)
    for name, kind in live.items():
        try:
            if kind == "sem":
                posix_ipc.unlink_semaphore(name)
            else:
                posix_ipc.unlink_shared_memory(name)
        except posix_ipc.ExistentialError:
            pass


if __name__ == "__main__":
    track()
