"""The ``shmkernel`` command: doctor, list, run, explore, replay, sweep, litmus.

Errors for users are one line on stderr and exit 2 (bad usage or input) or 3
(the run failed: a CPU died, a check failed); Ctrl-C and SIGTERM stop every CPU
process, unlink the segment and exit 130/143. No traceback reaches a user
unless SHMKERNEL_DEBUG=1 is set.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
from typing import Any

from shmkernel.errors import ShmkernelError, UsageError

MEMORY_MODELS = ("native", "sc", "tso", "weak", "lkmm")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


class _Terminated(BaseException):
    pass


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s!r}")
    return v


def _int_in(lo: int, hi: int):  # type: ignore[no-untyped-def]
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {v}")
        return v

    return parse


def _add_workload_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", help="workload name (see `shmkernel list`)")
    p.add_argument("--variant", help="variant name or alias (buggy, fixed)")
    p.add_argument("--cpus", type=_int_in(1, 1024), default=None, help="worker CPUs (default 2)")
    p.add_argument("--memory-model", choices=MEMORY_MODELS, default="native")
    p.add_argument("--seed", type=_int_in(0, 2**63 - 1), default=0)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def build_parser() -> _Parser:
    ap = _Parser(prog="shmkernel", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)
    sub.add_parser("doctor", help="check this host").add_argument("--cpus", type=_int_in(1, 1024))
    sub.add_parser("list", help="workloads, variants, events")
    run = sub.add_parser("run", help="free-running measurement of a workload")
    _add_workload_common(run)
    g = run.add_mutually_exclusive_group()
    g.add_argument("--seconds", type=_positive_float, default=None, help="run time per variant (default 3)")
    g.add_argument("--iterations", type=_int_in(1, 10**12), default=None, help="iterations per CPU")
    run.add_argument("--no-pin", action="store_true", help="do not pin CPU processes to cores")
    from shmkernel import cli_explore

    cli_explore.add_parsers(sub, _add_workload_common, _int_in, _positive_float)
    from shmkernel import cli_sweep

    cli_sweep.add_parser(sub, _add_workload_common, _int_in)
    return ap


def _workload_options(wl: Any, extra: list[str]) -> dict[str, Any]:
    """Parse ``--name value`` pairs meant for the workload's own options."""
    p = _Parser(prog=f"shmkernel run {wl.name}", add_help=False)
    for o in wl.options:
        p.add_argument("--" + o.name.replace("_", "-"), dest=o.name, default=None)
    ns = p.parse_args(extra)
    return wl.parse_options(vars(ns))


def cmd_list(args: argparse.Namespace) -> int:
    import workloads

    for wl in workloads.all_workloads():
        print(f"{wl.name}: {wl.summary}")
        for v, desc in wl.variants.items():
            alias = [a for a, t in wl.aliases.items() if t == v]
            print(f"  variant {v}{' (' + ', '.join(alias) + ')' if alias else ''}: {desc}")
        print(f"  events: {', '.join(wl.events)}")
        if wl.options:
            print("  options: " + ", ".join("--" + o.name.replace("_", "-") for o in wl.options))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from shmkernel.doctor import doctor

    rows, ok = doctor(args.cpus)
    for name, finding, good in rows:
        print(f"{'ok ' if good else 'BAD'} {name:10} {finding}")
    return 0 if ok else 1


def _variants_to_run(wl: Any, variant: str | None) -> list[str]:
    if variant is not None:
        return [wl.resolve_variant(variant)]
    return [wl.resolve_variant("buggy"), wl.resolve_variant("fixed")]


def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    import workloads
    from shmkernel.measure.report import print_run_table
    from shmkernel.measure.runner import open_machine, run_free

    wl = workloads.get(args.workload)
    opts = _workload_options(wl, extra)
    variants = _variants_to_run(wl, args.variant)
    if args.memory_model == "lkmm":
        raise UsageError("--memory-model lkmm is a scheduled-mode model (explore, litmus, replay): its "
                         "propagation choices are schedule steps; free runs take native, sc, tso or weak")
    seconds = args.seconds if args.seconds is not None or args.iterations is not None else 3.0
    cpus = args.cpus or wl.default_cpus
    records = []
    with open_machine(wl, cpus, opts, pin=not args.no_pin) as m:
        for v in variants:
            records.append(run_free(m, wl, v, opts, seconds=seconds, iterations=args.iterations,
                                    memory_model=args.memory_model, seed=args.seed))
    if args.json:
        for r in records:
            print(json.dumps(r, sort_keys=True))
    else:
        print_run_table(wl, records)
    return 0


def _stdout_broken() -> bool:
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        ap = build_parser()
        args, extra = ap.parse_known_args(argv)
        if args.command is None:
            raise UsageError("a command is required (doctor, list, run, explore, replay, sweep, litmus)")
        if args.command == "run":
            return cmd_run(args, extra)
        if args.command == "explore":
            from shmkernel import cli_explore

            return cli_explore.dispatch(args, extra)
        if args.command == "sweep":
            from shmkernel import cli_sweep

            return cli_sweep.cmd_sweep(args, extra)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "list":
            return cmd_list(args)
        if args.command == "doctor":
            return cmd_doctor(args)
        from shmkernel import cli_explore

        return cli_explore.dispatch(args)
    except ShmkernelError as e:
        if os.environ.get("SHMKERNEL_DEBUG"):
            raise
        print(f"shmkernel: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("shmkernel: interrupted; every CPU process stopped and shared memory removed", file=sys.stderr)
        return 130
    except _Terminated:
        print("shmkernel: terminated; every CPU process stopped and shared memory removed", file=sys.stderr)
        return 143
    except BrokenPipeError:
        if sys.stdout.closed or _stdout_broken():
            quiet_stdout()
            return 0  # output piped into head: not an error
        print("shmkernel: error: a channel to a CPU process broke", file=sys.stderr)
        return 3
    except Exception as e:  # noqa: BLE001 - never a traceback for a user
        if os.environ.get("SHMKERNEL_DEBUG"):
            raise
        print(f"shmkernel: internal error: {type(e).__name__}: {e} (SHMKERNEL_DEBUG=1 shows where)",
              file=sys.stderr)
        return 3
    finally:
        signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    sys.exit(main())
