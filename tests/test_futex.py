"""The futex under the start of a run: a CPU process sleeps on a word of the
shared segment in the kernel, and the coordinator's wake reaches it (a shared,
not a private, futex: another process, the same page)."""

from __future__ import annotations

import os
import time

import pytest

from shmkernel.hw import futex
from shmkernel.hw.atomics import Atomics
from shmkernel.memory.layout import Layout
from shmkernel.memory.segment import Segment

pytestmark = pytest.mark.skipif(not futex.available, reason="futexes are Linux x86-64/arm64 only")


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_a_wake_reaches_a_process_asleep_on_the_shared_word():
    lay = Layout(2)
    word = lay.scalar("go")
    lay.freeze()
    seg = Segment.create(lay, 1)
    try:
        atomics = Atomics(seg.map, lay.nwords)
        pid = os.fork()
        if pid == 0:  # the waiter: asleep until the word changes (a minute at most)
            while seg.words[word] == 0:
                futex.wait(atomics.ptr(word), 0, 60.0)
            os._exit(0 if seg.words[word] == 7 else 1)
        while _state(pid) != "S":  # asleep in the kernel (or about to be: wait again)
            time.sleep(0.01)
        seg.words[word] = 7
        woken, status = 0, (0, 0)
        while status == (0, 0):
            woken += futex.wake(atomics.ptr(word))
            time.sleep(0.01)
            status = os.waitpid(pid, os.WNOHANG)
        assert woken >= 1  # the wake found the other process's sleeper on our word
        assert os.waitstatus_to_exitcode(status[1]) == 0  # and it saw the new value
        futex.wait(atomics.ptr(word), 0, 60.0)  # the value differs: returns at once
        del atomics
    finally:
        seg.unlink()
