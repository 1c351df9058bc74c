"""The grid of a sweep: its swept parameters, parsed and checked in one line each,
and the points (one per combination and repeat) that each become one free run."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.workload import Workload

#: sweepable names that are not workload options
SPECIAL = ("cpus", "variant", "seconds")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: everything a worker needs, picklable."""

    workload: str
    variant: str
    cpus: int
    seconds: float
    options: dict[str, Any]  # parsed, complete
    point: dict[str, Any]  # the swept values only
    repeat_index: int
    pin: bool = True

    @property
    def key(self) -> str:
        return point_key(self.workload, self.point, self.repeat_index)

    @property
    def machine_key(self) -> str:
        return json.dumps([self.workload, self.cpus, self.options, self.pin], sort_keys=True, default=str)


def point_key(workload: str, point: dict[str, Any], repeat_index: int) -> str:
    return json.dumps([workload, point, repeat_index], sort_keys=True, default=str)


def _canon_name(wl: Workload, name: str) -> str:
    n = name.strip().lstrip("-").replace("-", "_")
    known = [o.name for o in wl.options]
    if n not in known and n not in SPECIAL:
        raise UsageError(
            f"--param {name}: workload {wl.name!r} has no option {name!r}; "
            f"choose one of {', '.join([*SPECIAL, *known])}"
        )
    return n


def _parse_value(wl: Workload, name: str, raw: str) -> Any:
    raw = raw.strip()
    if raw == "":
        raise UsageError(f"--param {name}: empty value")
    if name == "variant":
        return wl.resolve_variant(raw)
    if name == "cpus":
        try:
            v = int(raw)
        except ValueError:
            raise UsageError(f"--param cpus: expected an integer, got {raw!r}") from None
        if not 1 <= v <= 1024:
            raise UsageError(f"--param cpus: expected an integer in 1..1024, got {v}")
        return v
    if name == "seconds":
        try:
            v = float(raw)
        except ValueError:
            raise UsageError(f"--param seconds: expected a number, got {raw!r}") from None
        if not (v > 0 and v != float("inf")):
            raise UsageError(f"--param seconds: expected a number > 0, got {raw!r}")
        return v
    opt = {o.name: o for o in wl.options}[name]
    return opt.parse(raw)


def parse_params(wl: Workload, specs: Iterable[str] | dict[str, Iterable[Any]]) -> dict[str, list[Any]]:
    """``["NAME=V1,V2", ...]`` (or a dict name -> values) into validated value lists."""
    items: list[tuple[str, list[str]]] = []
    if isinstance(specs, dict):
        items = [(k, [str(x) if not isinstance(x, str) else x for x in v]) for k, v in specs.items()]
    else:
        for spec in specs:
            if "=" not in spec:
                raise UsageError(f"--param {spec!r}: expected NAME=V1,V2,...")
            name, _, vals = spec.partition("=")
            if not name.strip():
                raise UsageError(f"--param {spec!r}: expected NAME=V1,V2,...")
            items.append((name, vals.split(",")))
    out: dict[str, list[Any]] = {}
    for name, vals in items:
        n = _canon_name(wl, name)
        if n in out:
            raise UsageError(f"--param {n} given twice")
        values = [_parse_value(wl, n, v) for v in vals]
        if not values:
            raise UsageError(f"--param {n}: no values")
        out[n] = list(dict.fromkeys(values))  # drop duplicates, keep order
    return out


def grid(
    wl: Workload,
    params: dict[str, list[Any]],
    repeat: int = 1,
    variant: str | None = None,
    cpus: int | None = None,
    seconds: float = 1.0,
    opts: dict[str, Any] | None = None,
    pin: bool = True,
) -> list[Point]:
    """Every point x repeat, ordered so points sharing a Machine are adjacent."""
    if repeat < 1:
        raise UsageError("--repeat must be >= 1")
    params = dict(params)
    if "variant" not in params:
        if variant is None:
            params["variant"] = list(dict.fromkeys([wl.resolve_variant("buggy"), wl.resolve_variant("fixed")]))
        base_variant = wl.resolve_variant(variant or "buggy")
    else:
        if variant is not None:
            raise UsageError("give --variant or --param variant=..., not both")
        base_variant = ""
    for n in params:
        if (
            opts
            and n in opts
            and n not in SPECIAL
            and opts[n] is not None
            and opts[n] != {o.name: o for o in wl.options}[n].default
        ):
            raise UsageError(f"--{n.replace('_', '-')} is also swept with --param {n}")
    base_opts = dict(opts or {})
    # machine-shaping parameters outside, then variant / seconds, the repeat innermost
    names = sorted(params, key=lambda n: (n in ("variant", "seconds"), n == "seconds"))
    points: list[Point] = []
    for combo in itertools.product(*(params[n] for n in names)):
        pt = dict(zip(names, combo, strict=True))
        raw = {k: v for k, v in base_opts.items() if v is not None}
        raw.update({k: v for k, v in pt.items() if k not in SPECIAL})
        parsed = wl.parse_options(raw)
        pcpus = int(pt.get("cpus", cpus or wl.default_cpus))
        for r in range(repeat):
            points.append(
                Point(
                    wl.name,
                    pt.get("variant", base_variant),
                    pcpus,
                    float(pt.get("seconds", seconds)),
                    parsed,
                    pt,
                    r,
                    pin,
                )
            )
    return points
