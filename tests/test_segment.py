"""The shared segment: header checks, permissions, names never clobbered."""

from __future__ import annotations

import os
import stat

import posix_ipc
import pytest

from shmkernel.errors import SegmentError, UsageError
from shmkernel.memory.layout import Layout
from shmkernel.memory.segment import Segment


def _layout(extra: str = "") -> Layout:
    lay = Layout(4)
    lay.scalar("a")
    lay.percpu("b")
    if extra:
        lay.scalar(extra)
    return lay


def test_create_attach_roundtrip_and_views():
    seg = Segment.create(_layout(), cpus=3)
    try:
        seg.set("a", 42)
        seg.percpu("b")[2] = 7
        other = Segment.attach(_layout(), seg.name, cpus=3)
        assert other.var("a") == 42 and other.percpu("b")[2] == 7
        assert seg.addr("b") % 8 == 0  # per-CPU data starts on a cache line
        mode = stat.S_IMODE(os.stat("/dev/shm" + seg.name).st_mode)
        assert mode == 0o600
    finally:
        seg.unlink()


@pytest.mark.parametrize(
    "layout,cpus,message", [(_layout("c"), 3, "another layout"), (_layout(), 5, "made for 3 CPUs")]
)
def test_attach_refuses_a_wrong_header(layout, cpus, message):
    seg = Segment.create(_layout(), cpus=3)
    try:
        with pytest.raises(SegmentError, match=message):
            Segment.attach(layout, seg.name, cpus=cpus)
    finally:
        seg.unlink()


def test_attach_refuses_a_foreign_segment_and_a_missing_one():
    name = "/shmkernel-test-foreign"
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=4096)
    shm.close_fd()
    try:
        with pytest.raises(SegmentError, match="not a shmkernel segment"):
            Segment.attach(_layout(), name, cpus=3)
    finally:
        posix_ipc.unlink_shared_memory(name)
    with pytest.raises(SegmentError, match="no shared segment"):
        Segment.attach(_layout(), "/shmkernel-does-not-exist", cpus=3)


def test_bad_possible_cpu_count_is_a_usage_error():
    with pytest.raises(UsageError):
        Layout(0)
