"""The one shared-memory segment of a machine, on ``posix_ipc.SharedMemory``.

Why these rules: the segment outlives nothing. Its name is random
(``/shmkernel-<pid>-<hex>``) and created with ``O_CREX`` so an existing name is
never clobbered nor guessed; mode 0600 keeps other users out; the header
(magic, layout version, layout hash, CPU count) is checked on every attach so a
foreign or stale segment is refused with one line instead of being misread.
"""

from __future__ import annotations

import mmap
import os
import secrets

import numpy as np
import posix_ipc

from shmkernel.errors import SegmentError
from shmkernel.memory.layout import LAYOUT_VERSION, PERCPU_STRIDE, Layout

MAGIC = 0x4C4E524B4D485300  # "\0SHMKRNL" little-endian
PREFIX = "/shmkernel-"
H_MAGIC, H_VERSION, H_HASH, H_CPUS, H_SLOTS, H_NWORDS, H_OWNER = range(7)


def new_name(kind: str = "") -> str:
    """An unpredictable name for a segment or semaphore of this process."""
    return f"{PREFIX}{os.getpid()}-{kind}{secrets.token_hex(8)}"


class Segment:
    """A mapped segment with numpy and memoryview views by variable name.

    ``words`` (a ``memoryview`` cast to int64) is the fast path used by the CPU
    context; ``np`` is the numpy view for naming and bulk reads.
    """

    def __init__(self, layout: Layout, name: str, shm_map: mmap.mmap, owner: bool) -> None:
        self.layout = layout
        self.name = name
        self.map = shm_map
        self.owner = owner
        self.words = memoryview(shm_map).cast("q")
        self.np = np.frombuffer(shm_map, dtype=np.int64, count=layout.nwords)

    @classmethod
    def create(cls, layout: Layout, cpus: int, name: str | None = None) -> Segment:
        """Create, size, map and stamp a fresh segment (0600, O_CREX), named ``name``
        when the caller chose it first (to register it before it exists)."""
        layout.freeze()
        name = name or new_name()
        try:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=layout.nwords * 8)
        except (posix_ipc.Error, OSError, ValueError) as e:
            raise SegmentError(f"cannot create shared segment {name}: {e}") from None
        try:
            os.posix_fallocate(shm.fd, 0, layout.nwords * 8)  # a full /dev/shm fails here, not as SIGBUS later
            shm_map = mmap.mmap(shm.fd, layout.nwords * 8)
        except OSError as e:
            shm.unlink()
            raise SegmentError(f"cannot allocate shared segment {name} (is /dev/shm full?): {e.strerror}") from None
        finally:
            shm.close_fd()
        seg = cls(layout, name, shm_map, owner=True)
        try:
            seg.np[:] = 0  # touch every page now: a full /dev/shm fails here, not mid-run
        except Exception as e:  # pragma: no cover - SIGBUS is fatal, kept for clarity
            seg.unlink()
            raise SegmentError(f"cannot fill shared segment {name}: {e}") from None
        h = seg.np
        h[H_MAGIC], h[H_VERSION], h[H_HASH] = MAGIC, LAYOUT_VERSION, layout.hash
        h[H_CPUS], h[H_SLOTS], h[H_NWORDS], h[H_OWNER] = cpus, layout.nr_slots, layout.nwords, os.getpid()
        return seg

    @classmethod
    def attach(cls, layout: Layout, name: str, cpus: int) -> Segment:
        """Map an existing segment by name, refusing it unless its header matches."""
        layout.freeze()
        try:
            shm = posix_ipc.SharedMemory(name)
        except posix_ipc.ExistentialError:
            raise SegmentError(f"no shared segment named {name}") from None
        except (posix_ipc.PermissionsError, PermissionError):
            raise SegmentError(f"shared segment {name}: permission denied") from None
        except (posix_ipc.Error, ValueError) as e:
            raise SegmentError(f"cannot open shared segment {name}: {e}") from None
        size = shm.size
        try:
            if size < 8 * 8:
                raise SegmentError(f"shared segment {name} is too small to be a shmkernel segment")
            shm_map = mmap.mmap(shm.fd, size)
        finally:
            shm.close_fd()
        hdr = np.frombuffer(shm_map, dtype=np.int64, count=8).copy()
        problem = None
        if hdr[H_MAGIC] != MAGIC:
            problem = "is not a shmkernel segment (bad magic)"
        elif hdr[H_VERSION] != LAYOUT_VERSION:
            problem = f"has layout version {hdr[H_VERSION]}, expected {LAYOUT_VERSION}"
        elif hdr[H_HASH] != layout.hash:
            problem = "was made for another layout (hash mismatch)"
        elif hdr[H_CPUS] != cpus:
            problem = f"was made for {hdr[H_CPUS]} CPUs, not {cpus}"
        elif size < layout.nwords * 8:
            problem = "is smaller than its layout"
        if problem:
            shm_map.close()
            raise SegmentError(f"shared segment {name} {problem}")
        return cls(layout, name, shm_map, owner=False)

    def unlink(self) -> None:
        """Remove the name (idempotent). Mappings stay valid until process exit."""
        try:
            posix_ipc.unlink_shared_memory(self.name)
        except posix_ipc.ExistentialError:
            pass

    # -- views by name ---------------------------------------------------------
    def addr(self, name: str) -> int:
        return self.layout.addr(name)

    def var(self, name: str) -> int:
        """Current value of a scalar (a plain read, for the coordinator's checks)."""
        return int(self.words[self.layout.addr(name)])

    def set(self, name: str, value: int) -> None:
        self.words[self.layout.addr(name)] = value

    def percpu(self, name: str) -> np.ndarray:
        """numpy view of all slots of a per-CPU variable (strided, writable)."""
        base = self.layout.addr(name)
        return self.np[base : base + self.layout.nr_slots * PERCPU_STRIDE : PERCPU_STRIDE]

    def table(self, name: str) -> np.ndarray:
        base = self.layout.addr(name)
        return self.np[base : base + self.layout.table_len(name)]
