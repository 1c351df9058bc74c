"""Futexes on words of the shared segment: sleep until a word changes, wake its sleepers.

Why: a CPU process waiting for a word another process writes (the start of a
run) can spin, nap-poll, or sleep in the kernel until it is told. With 64 CPU
processes on 2 cores, nap-polling kept some 60 of them runnable the whole time
a scheduled run started (`scripts/bench_scale.py`: the run queue), and the
coordinator, one runnable process among them, took 0.3 s to start each
execution. A futex sleeps in the kernel on the word's address and costs the
writer one system call to wake everyone. The segment is a shared mapping, so
these are shared (not ``FUTEX_PRIVATE``) futexes, keyed by the page, and work
across processes.

Linux only (x86-64 and 64-bit Arm numbers); elsewhere `available` is False and
callers nap instead. A futex compares 32 bits: on a little-endian host the low
half of our 8-byte word, which is what changes for the small counters waited on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

_SYS_FUTEX = {"x86_64": 202, "aarch64": 98, "arm64": 98, "riscv64": 98}.get(platform.machine())
FUTEX_WAIT, FUTEX_WAKE = 0, 1
_WAKE_ALL = 2**31 - 1

available = sys.platform == "linux" and sys.byteorder == "little" and _SYS_FUTEX is not None
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True) if available else None


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def wait(addr: ctypes.c_void_p, expected: int, timeout_s: float) -> None:
    """Sleep while the 32-bit word at ``addr`` holds ``expected`` (low half), at most
    ``timeout_s``; return at once if it does not. Spurious returns are allowed:
    callers re-check their condition."""
    assert _libc is not None
    ts = _Timespec(int(timeout_s), int((timeout_s % 1) * 1e9))
    _libc.syscall(_SYS_FUTEX, addr, FUTEX_WAIT, ctypes.c_int32(expected & 0xFFFFFFFF), ctypes.byref(ts), None, 0)


def wake(addr: ctypes.c_void_p) -> int:
    """Wake every process sleeping on the word at ``addr``; return how many were."""
    assert _libc is not None
    return int(_libc.syscall(_SYS_FUTEX, addr, FUTEX_WAKE, _WAKE_ALL, None, None, 0))
