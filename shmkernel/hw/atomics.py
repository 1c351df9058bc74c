"""Bindings to libatomic: 8-byte atomics and fences on real hardware.

Why no ``argtypes``: ctypes converts declared arguments on every call, which
doubles the cost (about 400 ns against 200 ns per ``fetch_add`` measured here).
Instead each word gets a pre-built ``c_void_p`` (see `Atomics.ptr`) and values
are passed as Python ints, which libffi sign-extends from ``int`` to the 64-bit
register; values outside the 32-bit range are wrapped in ``c_int64`` first.
Aligned 8-byte plain loads and stores are single-copy atomic on x86-64 and
aarch64, so READ_ONCE/WRITE_ONCE go through a ``memoryview`` instead (16 ns).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from functools import lru_cache

from shmkernel.errors import UsageError

RELAXED, CONSUME, ACQUIRE, RELEASE, ACQ_REL, SEQ_CST = range(6)
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

#: x86-64 is TSO: loads are not reordered with loads nor stores with stores, so
#: the kernel's smp_rmb()/smp_wmb() are compiler barriers only (``barrier()``)
#: and an acquire/release fence emits no instruction. We call libatomic anyway
#: on other architectures, where those fences are real instructions.
HOST_IS_TSO = platform.machine() in ("x86_64", "AMD64", "i686")


@lru_cache(maxsize=1)
def libatomic_path() -> str:
    """Return the path (or soname) of libatomic, or raise a one-line error."""
    name = ctypes.util.find_library("atomic")
    if not name:
        raise UsageError("libatomic not found: install the Debian package libatomic1 (apt-get install libatomic1)")
    return name


def _arg(v: int) -> int | ctypes.c_int64:
    return v if _INT32_MIN <= v <= _INT32_MAX else ctypes.c_int64(v)


class Atomics:
    """Atomic operations on the 8-byte words of one mapped buffer.

    ``base`` is the address of word 0; words are named by their index, as the
    memory layer does. Every method is a real hardware operation.
    """

    def __init__(self, buffer: object, nwords: int) -> None:
        lib = ctypes.CDLL(libatomic_path())
        self._base = ctypes.addressof(ctypes.c_char.from_buffer(buffer))  # type: ignore[arg-type]
        self._ptrs = [ctypes.c_void_p(self._base + 8 * i) for i in range(nwords)]
        self._fetch_add = getattr(lib, "__atomic_fetch_add_8")
        self._fetch_add.restype = ctypes.c_int64
        self._exchange = getattr(lib, "__atomic_exchange_8")
        self._exchange.restype = ctypes.c_int64
        self._load = getattr(lib, "__atomic_load_8")
        self._load.restype = ctypes.c_int64
        self._store = getattr(lib, "__atomic_store_8")
        self._store.restype = None
        self._cas = getattr(lib, "__atomic_compare_exchange_8")
        self._cas.restype = ctypes.c_bool
        self._fence = lib.atomic_thread_fence
        self._fence.restype = None
        self._expected = ctypes.c_int64(0)
        self._pexpected = ctypes.byref(self._expected)

    def ptr(self, idx: int) -> ctypes.c_void_p:
        """The pre-built pointer to word ``idx`` (what every atomic call takes)."""
        return self._ptrs[idx]

    def fetch_add(self, idx: int, v: int, order: int = SEQ_CST) -> int:
        """Atomically add ``v`` to word ``idx``; return the old value (lock xadd)."""
        return self._fetch_add(self._ptrs[idx], _arg(v), order)

    def exchange(self, idx: int, v: int, order: int = SEQ_CST) -> int:
        """Atomically store ``v``; return the old value (xchg)."""
        return self._exchange(self._ptrs[idx], _arg(v), order)

    def load(self, idx: int, order: int = SEQ_CST) -> int:
        return self._load(self._ptrs[idx], order)

    def store(self, idx: int, v: int, order: int = SEQ_CST) -> None:
        self._store(self._ptrs[idx], _arg(v), order)

    def compare_exchange(self, idx: int, old: int, new: int, order: int = SEQ_CST) -> int:
        """cmpxchg: store ``new`` if the word equals ``old``; return the value found.

        Returns the kernel's ``atomic_cmpxchg`` result (the old value), not a
        bool, so kernel code reads as in C: ``if atomic_cmpxchg(v, o, n) == o``.
        """
        self._expected.value = old
        self._cas(self._ptrs[idx], self._pexpected, _arg(new), 0, order, order)
        return self._expected.value

    def fence(self, order: int = SEQ_CST) -> None:
        """``atomic_thread_fence(order)``: mfence/lock-prefixed op for seq_cst on x86."""
        self._fence(order)
