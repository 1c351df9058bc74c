"""Pinning emulated CPUs to host cores.

Why round-robin over the cores this process may use (not all of the host's):
in a container or under ``taskset`` only those cores are real for us; CPU ``i``
goes to the ``i mod n``-th of them, so with more CPUs than cores the extra
ones share cores as the seed's preempted tallier does.
"""

from __future__ import annotations

import os


def usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return list(range(os.cpu_count() or 1))


def pin_plan(roles: int, cores: list[int] | None = None) -> list[int]:
    """The core for each role process, round-robin over ``cores``."""
    cores = cores or usable_cores()
    return [cores[i % len(cores)] for i in range(roles)]


def pin_self(core: int) -> bool:
    """Pin the calling process to ``core``; False if the host refuses."""
    try:
        os.sched_setaffinity(0, {core})
        return os.sched_getaffinity(0) == {core}
    except (AttributeError, OSError):
        return False
