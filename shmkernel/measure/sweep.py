"""Run a grid of free-running measurements, one JSON line per run, resumable.

A sweep takes parameters ``NAME=V1,V2,...`` where NAME is a workload option
(``tally_delay_us``), ``cpus``, ``variant`` or ``seconds``, and a repeat count.
Every grid point x repeat is one free run (`open_machine` + `measure_free`); its
record (the run's JSON plus ``"point": {param: value}`` and ``"repeat_index"``)
is appended to the output JSONL file and flushed at once, so a sweep stopped
anywhere (Ctrl-C, a lost host) resumes from the file: a point whose
``workload + point + repeat_index`` is already there is skipped.

Points that share CPUs and options (only variant, seconds or the repeat
differ) reuse one started Machine. With ``cluster="tcp://HOST:PORT"`` every
point is one task on a Dask distributed cluster instead: the task builds and
runs a whole Machine on the worker's host (``record["host"]["hostname"]`` says
which); dask is imported only on that path.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.measure.grid import Point, grid, parse_params, point_key
from shmkernel.measure.stats import rate
from shmkernel.workload import Workload


def load_done(path: str | os.PathLike[str] | None) -> dict[str, dict[str, Any]]:
    """Records already in ``path`` by key (a torn last line, from a kill, is ignored)."""
    done: dict[str, dict[str, Any]] = {}
    if path is None or not os.path.exists(path):
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                done[point_key(rec["workload"], rec["point"], rec["repeat_index"])] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return done


def _finish(rec: dict[str, Any], p: Point, executor: str) -> dict[str, Any]:
    rec["point"] = dict(p.point)
    rec["repeat_index"] = p.repeat_index
    rec["executor"] = executor
    return rec


def run_point(p: Point, executor: str = "local") -> dict[str, Any]:
    """One point on a Machine of its own (what a Dask task runs on its worker)."""
    from shmkernel.measure.record import measure_free
    from shmkernel.workload import registry as workloads
    from shmkernel.workload.machines import open_machine

    wl = workloads.get(p.workload)
    with open_machine(wl, p.cpus, p.options, pin=p.pin) as m:
        return _finish(measure_free(m, wl, p.variant, p.options, seconds=p.seconds), p, executor)


@dataclass
class SweepResult:
    records: list[dict[str, Any]] = field(default_factory=list)  # every record of the grid found or run
    ran: int = 0
    skipped: int = 0
    pending: int = 0  # points left (stopped early by max_points)
    seconds: float = 0.0


def _fmt_point(pt: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in pt.items())


def _main_event(wl: Workload, event: str | None = None) -> str:
    if event:
        if event not in wl.denominators:
            raise UsageError(
                f"workload {wl.name!r} has no rate for event {event!r}; choose one of {', '.join(wl.denominators)}"
            )
        return event
    if not wl.denominators:
        raise UsageError(f"workload {wl.name!r} has no event with a rate to sweep")
    return next(iter(wl.denominators))


def aggregate(records: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    """Pool the repeats of each point: events and denominators summed, one rate."""
    groups: dict[str, dict[str, Any]] = {}
    for r in records:
        k = json.dumps([r["workload"], r["variant"], r["point"]], sort_keys=True, default=str)
        g = groups.setdefault(
            k,
            {
                "workload": r["workload"],
                "variant": r["variant"],
                "point": r["point"],
                "cpus": r["cpus"],
                "events": 0,
                "denominator": 0,
                "runs": 0,
                "seconds": 0.0,
                "hosts": set(),
            },
        )
        rr = r["rates"][event]
        g["events"] += rr["events"]
        g["denominator"] += rr["denominator"]
        g["runs"] += 1
        g["seconds"] += r["seconds"]
        g["hosts"].add(r.get("host", {}).get("hostname", "?"))
    out = []
    for g in groups.values():
        g["rate"] = rate(g["events"], g["denominator"]).as_json()
        g["hosts"] = sorted(g["hosts"])
        out.append(g)
    return out


def print_summary(wl: Workload, records: list[dict[str, Any]], event: str | None = None, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from shmkernel.measure.report import fmt_rate, label, meaning

    ev = _main_event(wl, event)
    # a pipe or file gets the whole table rather than rich's 80 columns
    console = console or (Console() if sys.stdout.isatty() else Console(width=160))
    rows = aggregate(records, ev)
    names = list(dict.fromkeys(k for g in rows for k in g["point"] if k != "variant"))
    t = Table(title=f"shmkernel sweep {wl.name}: {ev} per 10^6 {wl.denominators[ev]} [95% CI], repeats pooled")
    t.add_column("variant", no_wrap=True)
    for n in names:
        t.add_column(n, justify="right")
    t.add_column("runs", justify="right")
    t.add_column(wl.denominators[ev], justify="right")
    t.add_column(ev, justify="right")
    t.add_column("rate [95% CI]", justify="right")
    t.add_column("s", justify="right")
    t.add_column("hosts")
    for g in rows:
        t.add_row(
            label(wl, g["variant"]),
            *[str(g["point"].get(n, "")) for n in names],
            str(g["runs"]),
            f"{g['denominator']:,}",
            f"{g['events']:,}",
            fmt_rate(g["rate"]),
            f"{g['seconds']:.1f}",
            ", ".join(g["hosts"]),
        )
    console.print(t)
    if meaning(wl, ev):
        console.print(f"{ev}: {meaning(wl, ev)}")


class _Progress:
    """A rich progress bar on stderr (current point, rate so far, time left), or nothing."""

    def __init__(self, enabled: bool, total_points: int, total_seconds: float, event: str) -> None:
        self.enabled, self.event = enabled, event
        self.events = self.denom = 0
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.p = Progress(
            TextColumn("[bold]sweep[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[what]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.total_seconds = total_seconds
        self.task = self.p.add_task("sweep", total=total_points, what="")

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.p.__exit__(*exc)

    def _so_far(self) -> str:
        if not self.denom:
            return ""
        r = rate(self.events, self.denom)
        return f"{self.event} so far {r.per_million:.3g}/10^6 [{r.ci95[0]:.3g}, {r.ci95[1]:.3g}]"

    def start(self, p: Point) -> None:
        if self.enabled:
            self.p.update(self.task, what=f"{_fmt_point(p.point)} #{p.repeat_index}  {self._so_far()}")

    def done(self, rec: dict[str, Any]) -> None:
        rr = rec["rates"].get(self.event)
        if rr:
            self.events += rr["events"]
            self.denom += rr["denominator"]
        if self.enabled:
            self.p.update(self.task, advance=1, what=self._so_far())


def sweep(
    workload: str | Workload,
    params: Iterable[str] | dict[str, Iterable[Any]],
    repeat: int = 1,
    out: str | os.PathLike[str] | None = None,
    variant: str | None = None,
    cpus: int | None = None,
    seconds: float = 1.0,
    opts: dict[str, Any] | None = None,
    cluster: str | None = None,
    progress: bool | None = None,
    max_points: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    pin: bool = True,
    event: str | None = None,
) -> SweepResult:
    """Run (or resume) a sweep; see the module docstring. ``progress=None``: a bar when stderr is a tty."""
    from shmkernel.workload import registry as workloads

    t0 = time.perf_counter()
    wl = workloads.get(workload) if isinstance(workload, str) else workload
    ev = _main_event(wl, event)
    parsed = parse_params(wl, params)
    points = grid(wl, parsed, repeat, variant=variant, cpus=cpus, seconds=seconds, opts=opts, pin=pin)
    done = load_done(out)
    res = SweepResult()
    todo = []
    for p in points:
        if p.key in done:
            res.records.append(done[p.key])
            res.skipped += 1
        else:
            todo.append(p)
    if max_points is not None:
        res.pending = max(0, len(todo) - max_points)
        todo = todo[:max_points]
    if progress is None:
        progress = sys.stderr.isatty()
    fh = open(out, "a", encoding="utf-8") if out is not None else None  # noqa: SIM115
    if fh is not None and fh.tell() > 0:
        with open(out, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a line torn by a kill: start ours on a line of its own
                fh.write("\n")
                fh.flush()

    def emit(rec: dict[str, Any]) -> None:
        if fh is not None:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        res.records.append(rec)
        res.ran += 1
        if on_record is not None:
            on_record(rec)

    try:
        with _Progress(bool(progress) and bool(todo), len(todo), sum(p.seconds for p in todo), ev) as bar:
            for rec in res.records:
                bar.events += rec["rates"].get(ev, {}).get("events", 0)
                bar.denom += rec["rates"].get(ev, {}).get("denominator", 0)
            if cluster:
                _run_on_cluster(cluster, todo, emit, bar)
            else:
                _run_local(wl, todo, emit, bar)
    finally:
        if fh is not None:
            fh.close()
    res.seconds = time.perf_counter() - t0
    return res


def _run_local(wl: Workload, todo: list[Point], emit: Callable[[dict[str, Any]], None], bar: _Progress) -> None:
    from shmkernel.measure.record import measure_free
    from shmkernel.workload.machines import open_machine

    m = None
    mkey = None
    try:
        for p in todo:
            if m is None or p.machine_key != mkey:
                if m is not None:
                    m.close()
                    m = None
                m = open_machine(wl, p.cpus, p.options, pin=p.pin).start()
                mkey = p.machine_key
            bar.start(p)
            rec = _finish(measure_free(m, wl, p.variant, p.options, seconds=p.seconds), p, "local")
            bar.done(rec)
            emit(rec)
    finally:
        if m is not None:
            m.close()


def _run_on_cluster(address: str, todo: list[Point], emit: Callable[[dict[str, Any]], None], bar: _Progress) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--cluster needs dask: pip install 'shmkernel[sweep]'") from None
    if not todo:
        return
    try:
        client = Client(address, timeout=30, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    try:
        futs = {}
        for p in todo:
            f = client.submit(run_point, p, f"dask:{address}", pure=False, retries=0)
            futs[f] = p
        for f in as_completed(list(futs), loop=client.loop):
            p = futs[f]
            bar.start(p)
            rec = f.result()
            bar.done(rec)
            emit(rec)
    finally:
        client.close()
