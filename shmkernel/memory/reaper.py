"""Nothing left in /dev/shm: a tracker that outlives the run, and a sweep for what it missed.

Why a process of its own: a segment or semaphore is unlinked by the process
that made it when it closes, by its CPU processes when the coordinator dies
(SIGTERM, PR_SET_PDEATHSIG), but nobody is left after ``kill -9`` of the
whole process group or an OOM kill. So every name is registered, when it is
made, with a small tracker (``shmkernel.memory.tracker``) started in a session
of its own (a group kill does not reach it), which reads names on a pipe; when
the pipe closes (every process that held it is gone) it unlinks whatever was
not released, and exits. The standard library's ``resource_tracker`` has the
same idea but lives in the caller's process group.

What even the tracker cannot cover (the machine crashed) is swept at start-up
and by ``shmkernel doctor --clean``: an entry is reaped only if its name is
ours (``shmkernel-<pid>-...``), its owner ``<pid>`` is dead, the calling
user owns it, and, for a segment, its header carries our magic. A live
owner's, another user's, or a foreign name is never touched.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from typing import IO

import posix_ipc

from shmkernel.memory.segment import MAGIC

SHM_DIR = "/dev/shm"
_NAME = re.compile(r"^(sem\.)?shmkernel-(\d+)-[0-9a-z-]+$")

_tracker: subprocess.Popen | None = None
_pipe: IO[str] | None = None
_owner = 0  # the process that started the tracker (a forked worker writes to its parent's)


def _send(line: str) -> None:
    global _tracker, _pipe, _owner
    if _tracker is not None and _owner != os.getpid() and _pipe is not None:
        try:  # a forked child: the parent's tracker (not our child: poll() cannot see it)
            _pipe.write(line + "\n")
            _pipe.flush()
            return
        except (BrokenPipeError, OSError, ValueError):
            _tracker = None
    if _tracker is None or _tracker.poll() is not None:
        try:
            _tracker = subprocess.Popen(
                [sys.executable, "-m", "shmkernel.memory.tracker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
                close_fds=True,
            )
        except OSError:
            _tracker = None  # no tracker: close() and the start-up sweep still clean up
            return
        _pipe = _tracker.stdin
        _owner = os.getpid()
    assert _pipe is not None
    try:
        _pipe.write(line + "\n")
        _pipe.flush()
    except (BrokenPipeError, OSError, ValueError):
        _tracker = None


def tracker_pid() -> int | None:
    """The tracker process of this process, if one runs (not a leftover: it ends with us)."""
    return _tracker.pid if _tracker is not None and _tracker.poll() is None else None


def register(kind: str, name: str) -> None:
    """``kind``: "shm" or "sem"; ``name`` as posix_ipc takes it (``/shmkernel-...``)."""
    _send(f"+{kind} {name}")


def release(name: str) -> None:
    """The name was unlinked by its owner: nothing for the tracker to do."""
    _send(f"-{name}")


def stale(uid: int | None = None) -> list[str]:
    """Our entries in /dev/shm whose owner is dead (never another user's, a live
    owner's, or a segment without our magic): names as listed in /dev/shm."""
    uid = os.getuid() if uid is None else uid
    out = []
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    for entry in entries:
        m = _NAME.match(entry)
        if not m or _alive(int(m.group(2))):
            continue
        path = os.path.join(SHM_DIR, entry)
        try:
            if os.stat(path).st_uid != uid:
                continue
            if not m.group(1) and not _ours(path):
                continue
        except OSError:
            continue
        out.append(entry)
    return out


def reap(uid: int | None = None) -> list[str]:
    """Unlink `stale` entries; return what was reaped."""
    done = []
    for entry in stale(uid):
        if _unlink(entry):
            done.append(entry)
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _ours(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(8)
    return len(head) == 8 and struct.unpack("<q", head)[0] == MAGIC


def _unlink(entry: str) -> bool:
    """``entry`` as listed in /dev/shm (``sem.`` for semaphores)."""
    try:
        if entry.startswith("sem."):
            posix_ipc.unlink_semaphore("/" + entry[4:])
        else:
            posix_ipc.unlink_shared_memory("/" + entry)
        return True
    except posix_ipc.ExistentialError:
        return False
