"""Shared fixtures: every test is checked for leftover segments, semaphores and processes."""

from __future__ import annotations

import os
import sys
import time

import pytest

from shmkernel.pytest_plugin import _children as children_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def shm_entries() -> set[str]:
    """Our segments (``shmkernel-*``) and semaphores (``sem.shmkernel-*``) in /dev/shm."""
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith(("shmkernel-", "sem.shmkernel-"))}
    except FileNotFoundError:
        return set()


def child_pids(parent: int | None = None) -> set[int]:
    """Live (non-zombie) children of ``parent`` (default: this process)."""
    return children_of(os.getpid() if parent is None else parent)


def _creator_alive_elsewhere(name: str) -> bool:
    """True for entries made by another live process (a concurrent test run):
    names carry their creator's pid (``shmkernel-<pid>-...``)."""
    try:
        pid = int(name.split("shmkernel-", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return False
    return pid != os.getpid() and os.path.exists(f"/proc/{pid}")


def wait_clean(before_shm: set[str], timeout: float = 5.0) -> tuple[set[str], set[int]]:
    deadline = time.monotonic() + timeout
    while True:
        shm = {n for n in shm_entries() - before_shm if not _creator_alive_elsewhere(n)}
        kids = child_pids()
        if (not shm and not kids) or time.monotonic() > deadline:
            return shm, kids
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_leaks():
    """After each test: no segment, semaphore or child process of ours is left."""
    before = shm_entries()
    yield
    shm, kids = wait_clean(before)
    assert not shm, f"leaked in /dev/shm: {sorted(shm)}"
    assert not kids, f"child processes left: {sorted(kids)}"


def until_seen(attempt, events, attempts: int = 3) -> dict:  # type: ignore[no-untyped-def]
    """The one luck-based free-mode check a workload keeps: up to ``attempts`` runs of
    a fixed iteration budget (never a time, which a loaded host shrinks) until every
    one of ``events`` was seen; the last record. Each use states the chance that all
    attempts miss: (the share of single attempts that missed, measured with two
    ``yes`` processes beside) to the power ``attempts``."""
    r: dict = {}
    for _ in range(attempts):
        r = attempt()
        if all(r["events"][e] > 0 for e in events):
            return r
    return r
