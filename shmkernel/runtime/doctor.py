"""``shmkernel doctor``: can this host run shmkernel, and how well?

Checks what a user needs before trusting a rate: usable cores and whether
pinning is honoured, libatomic, /dev/shm space, posix_ipc, and a live run in
which every CPU process does fetch_add on one shared word: the total must be
exact, or the atomics are not what we think they are.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import posix_ipc

from shmkernel.hw.atomics import libatomic_path
from shmkernel.memory import reaper
from shmkernel.memory.layout import Layout
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.machine import Machine, Program
from shmkernel.runtime.pinning import usable_cores


def _fetch_add_many(ctx: Ctx, p: dict[str, Any]) -> None:
    word, n = p["word"], p["n"]
    for _ in range(n):
        ctx.atomic_inc(word)


def doctor(
    cpus: int | None = None, per_cpu: int = 100_000, clean: bool = False
) -> tuple[list[tuple[str, str, bool]], bool]:
    """Rows of (check, finding, ok) and whether all passed; ``clean``: remove what
    dead runs left in /dev/shm first (`shmkernel.memory.reaper`)."""
    rows: list[tuple[str, str, bool]] = []
    cores = usable_cores()
    rows.append(("cores", f"{len(cores)} usable ({os.cpu_count()} on host): {cores}", True))
    try:
        rows.append(("libatomic", libatomic_path(), True))
    except Exception as e:  # noqa: BLE001
        rows.append(("libatomic", str(e), False))
        return rows, False
    du = shutil.disk_usage("/dev/shm") if os.path.isdir("/dev/shm") else None
    rows.append(("/dev/shm", f"{du.free / 2**20:.0f} MiB free" if du else "missing", bool(du and du.free > 16 * 2**20)))
    rows.append(("posix_ipc", f"{posix_ipc.VERSION} (semaphores: {posix_ipc.SEMAPHORE_VALUE_SUPPORTED})", True))
    if clean:
        gone = reaper.reap()
        rows.append(
            ("stale", f"{len(gone)} left by dead runs removed" + (f": {', '.join(gone)}" if gone else ""), True)
        )
    else:
        left = reaper.stale()
        rows.append(
            (
                "stale",
                f"{len(left)} left by dead runs" + (" (shmkernel doctor --clean removes them)" if left else ""),
                not left,
            )
        )
    n = cpus or len(cores)

    def declare(layout: Layout) -> int:
        return layout.scalar("doctor.counter")

    with Machine(n, declare=declare) as m:
        assert m.seg is not None
        word = m.vars
        res = m.run([Program(_fetch_add_many, {"word": word, "n": per_cpu})] * n + [None], timeout=120)
        total = m.seg.words[word]
        pinned = all(m.pinned[:n])
        rows.append(
            (
                "pinning",
                f"{n} CPU processes pinned to cores {m.cores[:n]}: " + ("yes" if pinned else "refused by the host"),
                pinned,
            )
        )
        exact = total == n * per_cpu
        rate = n * per_cpu / res.seconds if res.seconds else 0.0
        rows.append(
            (
                "fetch_add",
                f"{n} x {per_cpu} on one word -> {total} "
                f"({'exact' if exact else 'WRONG'}; {rate / 1e6:.2f} M ops/s; start {m.start_seconds * 1e3:.1f} ms)",
                exact,
            )
        )
    return rows, all(ok for _, _, ok in rows)
