"""What a workload is: a seed scenario as programs for the CPUs and the coordinator.

Why one small protocol: ``shmkernel run``, ``explore``, ``replay``, ``sweep``
and the pytest plugin treat every workload alike. A workload declares its
state in the layout, its variants (with ``buggy``/``fixed`` aliases), its
events and counters, its options, and returns one `Program` per CPU; the
coordinator's program runs on the extra CPU ``cpus``. After a run, ``check``
verifies the exact state at quiesce (a mismatch is a runtime bug).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shmkernel.errors import UsageError
from shmkernel.memory.layout import Layout
from shmkernel.memory.segment import Segment
from shmkernel.runtime.machine import Program, RunResult


class SegmentOracle:
    """Reads a segment at quiesce the way kernel helpers read through a ctx
    (``oracle_read``, ``nr_cpu_ids``), for exactness checks after a run."""

    def __init__(self, seg: Segment) -> None:
        self.w = seg.words
        self.nr_cpu_ids = seg.layout.nr_slots

    def oracle_read(self, v: int) -> int:
        return self.w[v]


@dataclass(frozen=True)
class Option:
    """A workload option, exposed on the command line as ``--name``."""

    name: str
    type: type
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None

    def parse(self, raw: Any) -> Any:
        flag = "--" + self.name.replace("_", "-")
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise UsageError(f"{flag} expects true/false, got {raw!r}")
        try:
            value = self.type(raw)
        except (TypeError, ValueError):
            raise UsageError(f"{flag} expects {self.type.__name__}, got {raw!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{flag} expects a finite number, got {raw!r}")
        if self.choices is not None and value not in self.choices:
            raise UsageError(f"{flag} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.min is not None and value < self.min:
            raise UsageError(f"{flag} must be >= {self.min:g}, got {value!r}")
        if self.max is not None and value > self.max:
            raise UsageError(f"{flag} must be <= {self.max:g}, got {value!r}")
        return value


@dataclass
class Workload:
    """Base class; subclasses fill the class attributes and the four methods."""

    name: str = ""
    summary: str = ""
    variants: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()
    denominators: dict[str, str] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    #: options a scheduled exploration uses unless told otherwise (small programs)
    explore_defaults: dict[str, Any] = field(default_factory=dict)
    default_cpus: int = 2
    #: how it was found (a registered name, ``path/to/race.py[:NAME]``, ``pkg.module:NAME``):
    #: what a replay hint prints to load it again; empty for the bundled seeds (their name)
    source: str = ""

    @property
    def reference(self) -> str:
        return self.source or self.name

    @property
    def counter_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.events, *self.counters, "warn", "bug")))

    def resolve_variant(self, name: str) -> str:
        canon = self.aliases.get(name, name)
        if canon not in self.variants:
            choices = ", ".join([*self.variants, *self.aliases])
            raise UsageError(f"workload {self.name!r} has no variant {name!r}; choose one of {choices}")
        return canon

    def parse_options(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, every value validated (one-line errors)."""
        out: dict[str, Any] = {}
        known = {o.name: o for o in self.options}
        for key in raw:
            if key not in known:
                raise UsageError(f"workload {self.name!r} has no option --{key.replace('_', '-')}")
        for o in self.options:
            out[o.name] = o.parse(raw[o.name]) if raw.get(o.name) is not None else o.default
        return out

    # -- to implement -------------------------------------------------------------------
    def possible_cpus(self, cpus: int, opts: dict[str, Any]) -> int | None:
        return None

    def declare(self, layout: Layout, opts: dict[str, Any]) -> Any:
        raise NotImplementedError

    #: the usual shape: one boot program, the same program on every worker CPU and
    #: one on the coordinator CPU (None: idle); a workload sets these, or overrides
    #: `setup`/`programs` when its shape differs
    setup_fn: ClassVar[Any] = None
    cpu_fn: ClassVar[Any] = None
    coordinator_fn: ClassVar[Any] = None
    #: why the free-running ``weak`` model cannot run this workload (None: it can)
    free_weak_refused: ClassVar[str | None] = None

    def params(self, variant: str, v: Any, opts: dict[str, Any], iterations: int | None) -> dict[str, Any]:
        """What every program of the workload receives."""
        return {**opts, "variant": variant, "v": v, "iterations": iterations}

    def setup(self, variant: str, v: Any, opts: dict[str, Any]) -> Program:
        """The boot program, run free on the coordinator CPU before each run."""
        return Program(self.setup_fn, self.params(variant, v, opts, None))

    def programs(
        self, variant: str, v: Any, cpus: int, opts: dict[str, Any], iterations: int | None
    ) -> list[Program | None]:
        p = self.params(variant, v, opts, iterations)
        coord = Program(self.coordinator_fn, p) if self.coordinator_fn is not None else None
        return [Program(self.cpu_fn, p)] * cpus + [coord]

    def check(
        self, variant: str, v: Any, seg: Segment, cpus: int, opts: dict[str, Any], result: RunResult
    ) -> list[str]:
        """Problems found in the exact state at quiesce (empty when exact)."""
        return []
