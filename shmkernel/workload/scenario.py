"""A race in a few lines: the terse scenario API, compiled to a `Workload`.

In the spirit of loom's ``loom::model(|| ...)`` and shuttle's
``check_random(|| ..., N)``: declare the shared state inline, write one
function per CPU (or one for every CPU), optionally a coordinator and a
final check, and hand the scenario to ``shmkernel run|explore|replay`` (by
file: ``shmkernel explore examples/refget.py``) or to the pytest plugin::

    from shmkernel.workload.scenario import Scenario

    race = Scenario("refget", events=("use_after_free",))
    race.scalar("refs", 1)          # the owner's reference
    race.scalar("freed")

    @race.cpu(0)
    def get_and_use(ctx, v, variant):
        ...                         # v.refs, v.freed are words; variant is "buggy" or "fixed"

    @race.cpu(1)
    def put_last(ctx, v, variant):
        ...

Every function takes ``(ctx, v, variant)``: the CPU context (the one door:
``ctx.read_once(v.x)``, ``ctx.atomic_inc_not_zero(v.refs)``, ``ctx.event(
"use_after_free")`` ...), the words by name (a per-CPU variable is its base:
``ctx.this_cpu_inc(v.count)``, ``ctx.per_cpu_read(v.count, cpu)``), and the
variant. ``variants`` default to ``buggy`` and ``fixed``.

**What a run is.** One *round*: memory set to the declared initial values,
every CPU's function once (the coordinator's too, on its own CPU), then the
``check`` (if any) once all are done, reading the final state with
``ctx.oracle_read`` and recording events. ``shmkernel explore`` runs one
round per execution (so a scenario's functions must be deterministic given
what they read, and share memory only through ``ctx``); ``shmkernel run``
runs rounds back to back on the real CPUs, the CPUs released together
(as litmus7 runs a test), and reports each event per million rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.memory.layout import Layout, per_cpu_ptr
from shmkernel.memory.segment import Segment
from shmkernel.runtime.machine import Program
from shmkernel.workload import Workload

Fn = Callable[[Any, Any, str], Any]


class Words(dict):
    """The scenario's words by name, as attributes (``v.refs``); picklable."""

    def __getattr__(self, name: str) -> int:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the scenario declares no {name!r}") from None


class Scenario:
    def __init__(
        self,
        name: str,
        events: tuple[str, ...] = (),
        variants: tuple[str, ...] | dict[str, str] = ("buggy", "fixed"),
        cpus: int = 2,
        summary: str = "",
    ) -> None:
        self.name = name
        self.events = tuple(events)
        self.variants = dict(variants) if isinstance(variants, dict) else {v: v for v in variants}
        self.cpus = cpus
        self.summary = summary
        self.state: list[tuple[str, str, int, int]] = []  # (kind, name, length, initial value)
        self.fns: dict[int | str, Fn] = {}  # CPU number, "every", "coordinator", "check"

    # -- shared state ----------------------------------------------------------------------------
    def scalar(self, name: str, init: int = 0) -> None:
        self.state.append(("scalar", name, 1, init))

    def percpu(self, name: str, init: int = 0) -> None:
        self.state.append(("percpu", name, 1, init))

    def table(self, name: str, length: int, init: int = 0) -> None:
        self.state.append(("table", name, length, init))

    # -- programs ---------------------------------------------------------------------------------
    def cpu(self, *which: int) -> Callable[[Fn], Fn]:
        """Decorator: the function CPU(s) ``which`` run each round."""

        def register(fn: Fn) -> Fn:
            for c in which:
                self.fns[c] = fn
            return fn

        return register

    def every_cpu(self, fn: Fn) -> Fn:
        """Decorator: the function every worker CPU without one of its own runs."""
        self.fns["every"] = fn
        return fn

    def coordinator(self, fn: Fn) -> Fn:
        """Decorator: the function the coordinator CPU (number ``cpus``) runs each round."""
        self.fns["coordinator"] = fn
        return fn

    def check(self, fn: Fn) -> Fn:
        """Decorator: run once every CPU is done; reads with ``ctx.oracle_read``, records events."""
        self.fns["check"] = fn
        return fn

    def as_workload(self) -> Workload:
        return ScenarioWorkload(self)


class ScenarioWorkload(Workload):
    """A `Scenario` as the protocol every command speaks."""

    def __init__(self, sc: Scenario) -> None:
        aliases = {a: a for a in ("buggy", "fixed") if a in sc.variants}
        names = list(sc.variants)
        aliases.setdefault("buggy", names[0])
        aliases.setdefault("fixed", names[-1])
        aliases = {k: v for k, v in aliases.items() if k not in sc.variants}
        super().__init__(
            name=sc.name,
            summary=sc.summary or f"scenario {sc.name}",
            variants=sc.variants,
            aliases=aliases,
            events=sc.events,
            counters=("rounds",),
            denominators=dict.fromkeys(sc.events, "rounds"),
            explore_defaults={"iterations": 1},
            default_cpus=sc.cpus,
        )
        self.sc = sc

    def possible_cpus(self, cpus: int, opts: dict[str, Any]) -> int | None:
        return None

    def declare(self, layout: Layout, opts: dict[str, Any]) -> Words:
        v = Words()
        for kind, name, length, _ in self.sc.state:
            v[name] = getattr(layout, kind)(name, length) if kind == "table" else getattr(layout, kind)(name)
        v["_go"] = layout.percpu("scenario.go")  # completions: held (1) until the coordinator lets a CPU go
        v["_done"] = layout.percpu("scenario.done")  # ... and until the CPU is done
        return v

    def _initial(self, v: Words, nslots: int) -> list[tuple[int, int]]:
        out = []
        for kind, name, length, init in self.sc.state:
            if kind == "percpu":
                out += [(per_cpu_ptr(v[name], c), init) for c in range(nslots)]
            else:
                out += [(v[name] + i, init) for i in range(length)]
        return out

    def reset_state(self, seg: Segment, v: Words) -> None:
        """Scheduled mode: the round's initial memory, written by the coordinator (set-up)."""
        for addr, value in self._initial(v, seg.layout.nr_slots):
            seg.words[addr] = value
        for c in range(seg.layout.nr_slots):
            seg.words[per_cpu_ptr(v["_go"], c)] = 0  # one round: every CPU goes at once
            seg.words[per_cpu_ptr(v["_done"], c)] = 1

    def setup(self, variant: str, v: Words, opts: dict[str, Any]) -> Program:
        """Free mode: every completion held (each worker waits to be let go)."""
        return Program(_boot, {"held": (v["_go"], v["_done"])})

    def programs(
        self, variant: str, v: Words, cpus: int, opts: dict[str, Any], iterations: int | None
    ) -> list[Program | None]:
        fns = self.sc.fns
        p = {
            "v": v,
            "variant": variant,
            "iterations": iterations,
            "cpus": cpus,
            "check": fns.get("check"),
            "init": self._initial(v, cpus + 1),
        }
        progs: list[Program | None] = []
        for c in range(cpus):
            fn = fns.get(c, fns.get("every"))
            progs.append(Program(_cpu_rounds, {**p, "fn": fn}) if fn is not None else None)
        workers = [c for c in range(cpus) if progs[c] is not None]
        if not workers and "coordinator" not in fns:
            raise UsageError(f"scenario {self.name!r} has no function for any of its {cpus} CPU(s)")
        progs.append(Program(_coordinator_rounds, {**p, "fn": fns.get("coordinator"), "workers": workers}))
        return progs


def _boot(ctx: Any, p: dict[str, Any]) -> None:
    for base in p["held"]:
        for c in range(ctx.nr_cpu_ids):
            ctx.oracle_write(per_cpu_ptr(base, c), 1)


def _wait(ctx: Any, completion: int) -> bool:
    """wait_for_completion on a held mutex the other side unlocks: a blocking step
    when scheduled; free, a trylock loop that gives up once the run is stopped."""
    if ctx.mode != "free":
        ctx.mutex_lock(completion)
        return True
    while not ctx.mutex_trylock(completion):
        if ctx.stopped():
            return False
        ctx.cpu_relax()
    return True


def _cpu_rounds(ctx: Any, p: dict[str, Any]) -> None:
    """A worker: wait to be let go, run the scenario's function, say it is done."""
    v, me, free = p["v"], ctx.cpu, ctx.mode == "free"
    handshake = free or p["check"] is not None  # scheduled, one round: only a check waits for us
    for _ in ctx.loop(p["iterations"]):
        if free and not _wait(ctx, per_cpu_ptr(v["_go"], me)):
            return
        p["fn"](ctx, v, p["variant"])
        if handshake:
            ctx.mutex_unlock(per_cpu_ptr(v["_done"], me))


def _coordinator_rounds(ctx: Any, p: dict[str, Any]) -> None:
    """Each round: (free mode) reset memory and let the workers go; run the
    coordinator's function; wait for every worker; run the check."""
    v, free = p["v"], ctx.mode == "free"
    for _ in ctx.loop(p["iterations"]):
        if free:  # scheduled, `reset_state` set the round up and the workers are free to go
            for addr, value in p["init"]:
                ctx.oracle_write(addr, value)
            for c in p["workers"]:
                ctx.mutex_unlock(per_cpu_ptr(v["_go"], c))
        if p["fn"] is not None:
            p["fn"](ctx, v, p["variant"])
        if (free or p["check"] is not None) and not all(_wait(ctx, per_cpu_ptr(v["_done"], c)) for c in p["workers"]):
            return  # stopped in the middle of a round: it does not count
        if p["check"] is not None:
            p["check"](ctx, v, p["variant"])
        ctx.count("rounds")
