"""Nothing left in /dev/shm: a group kill, and the sweep that spares what is not ours to take."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time

import posix_ipc
import pytest

from shmkernel.memory import reaper
from shmkernel.memory.segment import MAGIC

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ours(pid: int) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith((f"shmkernel-{pid}-", f"sem.shmkernel-{pid}-"))]


def _until(cond, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    "command", [["run", "refcount", "--seconds", "30"], ["explore", "rmmod", "--variant", "fixed"]]
)
def test_kill_9_of_the_whole_process_group_leaves_nothing(command):
    p = subprocess.Popen(
        [sys.executable, "-m", "shmkernel.cli", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert _until(lambda: len(_ours(p.pid)) >= 1), "the run never made its segment"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert _until(lambda: not _ours(p.pid), timeout=5.0), _ours(p.pid)


def _dead_pid() -> int:
    q = subprocess.Popen([sys.executable, "-c", "pass"])
    q.wait()
    return q.pid


def _plant_segment(pid: int, magic: int = MAGIC) -> str:
    name = f"/shmkernel-{pid}-{os.urandom(4).hex()}"
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=64)
    os.write(shm.fd, struct.pack("<q", magic))
    shm.close_fd()
    return name[1:]


def test_the_sweep_reaps_a_dead_runs_entries_and_spares_the_rest():
    dead = _dead_pid()
    stale_seg = _plant_segment(dead)
    stale_sem = f"shmkernel-{dead}-sem-{os.urandom(4).hex()}"
    posix_ipc.Semaphore("/" + stale_sem, posix_ipc.O_CREX, mode=0o600).close()
    live_seg = _plant_segment(os.getpid())  # a live owner's
    foreign = _plant_segment(dead, magic=1234)  # our name pattern, not our header
    try:
        assert {stale_seg, "sem." + stale_sem} <= set(reaper.stale())
        assert live_seg not in reaper.stale() and foreign not in reaper.stale()
        r = subprocess.run(
            [sys.executable, "-m", "shmkernel.cli", "doctor", "--cpus", "1", "--clean"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0 and stale_seg in r.stdout
        left = set(os.listdir("/dev/shm"))
        assert stale_seg not in left and "sem." + stale_sem not in left
        assert live_seg in left and foreign in left
    finally:
        for n in (live_seg, foreign, stale_seg):
            try:
                posix_ipc.unlink_shared_memory("/" + n)
            except posix_ipc.ExistentialError:
                pass


def test_another_users_entry_is_never_touched(tmp_path):
    dead = _dead_pid()
    name = _plant_segment(dead)
    try:
        assert name in reaper.stale()
        assert name not in reaper.stale(uid=os.getuid() + 1)  # as if we were someone else
    finally:
        posix_ipc.unlink_shared_memory("/" + name)
