"""Option helpers every sub-command shares: the parser that errs in one line,
number types, the workload arguments, workload options, stdout as a pipe."""

from __future__ import annotations

import argparse
import os
import select
import sys
from typing import Any

from shmkernel.errors import UsageError

MEMORY_MODELS = ("native", "sc", "tso", "weak", "lkmm")


class Parser(argparse.ArgumentParser):
    """argparse whose errors are a `UsageError` (one line, exit 2), never a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s!r}")
    return v


def int_in(lo: int, hi: int):  # type: ignore[no-untyped-def]
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {v}")
        return v

    return parse


#: CPUs per usable core beyond which a run needs --oversubscribe
OVERSUBSCRIBE = 8


def add_workload_common(p: argparse.ArgumentParser, wl: Any = None) -> None:
    p.add_argument(
        "workload",
        help="a workload name (see `shmkernel list`), a file (path/to/race.py[:NAME]) "
        "or a module (package.module:NAME)",
    )
    p.add_argument("--variant", help="variant name or alias (buggy, fixed)")
    p.add_argument("--cpus", type=int_in(1, 1024), default=None, help="worker CPUs (default 2)")
    p.add_argument(
        "--oversubscribe", action="store_true", help=f"allow more than {OVERSUBSCRIBE} CPU processes per usable core"
    )
    p.add_argument("--memory-model", choices=MEMORY_MODELS, default="native")
    p.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    if wl is not None and wl.options:  # `shmkernel run WORKLOAD --help` lists them too
        g = p.add_argument_group(f"options of {wl.name}")
        for o in wl.options:
            g.add_argument(
                "--" + o.name.replace("_", "-"),
                dest=f"_wl_{o.name}",
                metavar=o.type.__name__.upper(),
                help=f"{o.help} (default {o.default})",
            )


def check_cpus(cpus: int, args: argparse.Namespace) -> None:
    """More CPU processes than the host can hold is a one-line error, unless asked for."""
    from shmkernel.runtime.pinning import usable_cores

    cores = len(usable_cores())
    if cpus + 1 > OVERSUBSCRIBE * cores and not getattr(args, "oversubscribe", False):
        raise UsageError(
            f"--cpus {cpus} is more than {OVERSUBSCRIBE} CPU processes per core on this host "
            f"({cores} usable cores): add --oversubscribe to run it anyway"
        )


def workload_options(wl: Any, extra: list[str]) -> dict[str, Any]:
    """Parse ``--name value`` pairs meant for the workload's own options."""
    p = Parser(prog=f"shmkernel run {wl.name}", add_help=False)
    for o in wl.options:
        p.add_argument("--" + o.name.replace("_", "-"), dest=o.name, default=None)
    ns = p.parse_args(extra)
    return wl.parse_options(vars(ns))


def stdout_broken() -> bool:
    """Is our standard output a pipe whose reader is gone (``| head``)?"""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        if any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0)):
            return True
    except (OSError, ValueError):
        pass
    try:
        sys.stdout.flush()
        return False
    except BrokenPipeError:
        return True


def quiet_stdout() -> None:
    """The reader of our output left: send the rest to /dev/null, so that neither
    a later print nor the interpreter's last flush complains."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def add_trace_out(parser: Any) -> None:
    parser.add_argument(
        "--trace-out",
        metavar="FILE.json",
        help="write the traced execution as a Perfetto / Chrome trace-event timeline (ui.perfetto.dev)",
    )
    parser.add_argument(
        "--svg", metavar="FILE.svg", help="draw the traced execution: a column per CPU, rf/fr arrows between them"
    )


def write_trace_out(args: argparse.Namespace, timeline: dict[str, Any]) -> None:
    """Write the timeline and/or the drawing (when asked); say so, or why nothing was written."""
    for path in (args.trace_out, args.svg):
        if path and not timeline:
            print(f"no violation traced: nothing written to {path}", file=sys.stderr)
    if not timeline:
        return
    if args.trace_out:
        import json

        try:
            with open(args.trace_out, "w") as f:
                json.dump(timeline, f)
        except OSError as e:
            raise UsageError(f"cannot write {args.trace_out}: {e.strerror}") from None
        n = len(timeline["traceEvents"])
        print(f"timeline: {args.trace_out} ({n} trace events; open it in ui.perfetto.dev)", file=sys.stderr)
    if args.svg:
        from shmkernel.schedule.svg import draw_svg

        draw_svg(timeline, args.svg)
        print(f"diagram: {args.svg}", file=sys.stderr)
