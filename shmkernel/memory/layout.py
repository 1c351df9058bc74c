"""A declarative layout of the shared segment: every variable an aligned int64.

Why declarative: the coordinator and every CPU process must agree on where each
variable lives, and a segment made for another layout must be refused on
attach. So state is declared once (`Layout`), frozen, hashed, and the hash is
written in the segment header.

Addresses are *word indices* (int): a scalar is one word; a per-CPU array has one
slot per possible CPU, each slot alone on its 64-byte cache line like real
per-CPU data (``per_cpu_ptr(base, cpu) == base + cpu * PERCPU_STRIDE``); a
table is a small contiguous array.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from shmkernel.errors import UsageError

WORD = 8
LINE_WORDS = 64 // WORD
PERCPU_STRIDE = LINE_WORDS
HEADER_WORDS = LINE_WORDS
LAYOUT_VERSION = 1
MAX_POSSIBLE_CPUS = 8192


def per_cpu_ptr(base: int, cpu: int) -> int:
    """The word index of ``cpu``'s slot of the per-CPU variable at ``base``."""
    return base + cpu * PERCPU_STRIDE


@dataclass
class Layout:
    """Declared variables of one machine; call `freeze` before making a segment.

    ``nr_slots`` is the number of per-CPU slots (possible CPUs). Names are
    dotted paths (``"mod.state"``, ``"mod.incs"``) so traces can print them.
    """

    nr_slots: int
    _scalars: dict[str, int] = field(default_factory=dict)
    _percpu: dict[str, int] = field(default_factory=dict)
    _tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    _decl: list[str] = field(default_factory=list)
    _next: int = HEADER_WORDS
    _frozen: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.nr_slots <= MAX_POSSIBLE_CPUS:
            raise UsageError(f"possible CPUs must be 1..{MAX_POSSIBLE_CPUS}, got {self.nr_slots}")

    def _check_new(self, name: str) -> None:
        if self._frozen:
            raise RuntimeError("layout is frozen")
        if name in self._scalars or name in self._percpu or name in self._tables:
            raise ValueError(f"duplicate variable {name!r}")

    def _align_line(self) -> None:
        self._next = -(-self._next // LINE_WORDS) * LINE_WORDS

    def scalar(self, name: str, own_line: bool = True) -> int:
        """Declare one int64; on its own cache line unless ``own_line`` is False."""
        self._check_new(name)
        if own_line:
            self._align_line()
        idx = self._next
        self._next += LINE_WORDS if own_line else 1
        self._scalars[name] = idx
        self._decl.append(f"s:{name}:{int(own_line)}")
        return idx

    def percpu(self, name: str) -> int:
        """Declare a per-CPU int64 (one 64-byte line per possible CPU)."""
        self._check_new(name)
        self._align_line()
        idx = self._next
        self._next += self.nr_slots * PERCPU_STRIDE
        self._percpu[name] = idx
        self._decl.append(f"p:{name}")
        return idx

    def table(self, name: str, length: int) -> int:
        """Declare ``length`` contiguous int64 words (starting on a fresh line)."""
        self._check_new(name)
        if length < 1:
            raise ValueError("table length must be >= 1")
        self._align_line()
        idx = self._next
        self._next += length
        self._tables[name] = (idx, length)
        self._decl.append(f"t:{name}:{length}")
        return idx

    def freeze(self) -> Layout:
        self._align_line()
        self._frozen = True
        return self

    @property
    def nwords(self) -> int:
        return -(-self._next // LINE_WORDS) * LINE_WORDS

    @property
    def hash(self) -> int:
        """63-bit digest of the declarations, written in the segment header."""
        text = f"{LAYOUT_VERSION}|{self.nr_slots}|" + "|".join(self._decl)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1

    def addr(self, name: str) -> int:
        """Word index of a scalar, of slot 0 of a per-CPU variable, or of a table."""
        if name in self._scalars:
            return self._scalars[name]
        if name in self._percpu:
            return self._percpu[name]
        if name in self._tables:
            return self._tables[name][0]
        raise UsageError(f"unknown variable {name!r}")

    def table_len(self, name: str) -> int:
        return self._tables[name][1]

    def name_of(self, idx: int) -> str:
        """Readable name of a word, e.g. ``mod.incs[cpu1]`` (used by traces)."""
        for n, i in self._scalars.items():
            if i == idx:
                return n
        for n, base in self._percpu.items():
            off = idx - base
            if 0 <= off < self.nr_slots * PERCPU_STRIDE and off % PERCPU_STRIDE == 0:
                return f"{n}[cpu{off // PERCPU_STRIDE}]"
        for n, (base, ln) in self._tables.items():
            if base <= idx < base + ln:
                return f"{n}[{idx - base}]"
        return f"word{idx}"

    def state_words(self, exclude: tuple[str, ...]) -> list[int]:
        """Word indices of every declared variable whose name starts with none of
        ``exclude`` (what an explorer's state cache compares)."""
        out: list[int] = []
        for n, i in self._scalars.items():
            if not n.startswith(exclude):
                out.append(i)
        for n, base in self._percpu.items():
            if not n.startswith(exclude):
                out.extend(range(base, base + self.nr_slots * PERCPU_STRIDE, PERCPU_STRIDE))
        for n, (base, ln) in self._tables.items():
            if not n.startswith(exclude):
                out.extend(range(base, base + ln))
        return sorted(out)

    def names(self) -> dict[str, str]:
        """Every declared name and its kind (scalar, percpu, table)."""
        out = {n: "scalar" for n in self._scalars}
        out.update({n: "percpu" for n in self._percpu})
        out.update({n: "table" for n in self._tables})
        return out
