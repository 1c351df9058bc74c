"""The ``shmkernel`` command: doctor, list, run, explore, replay, explain, sweep, litmus.

One module per sub-command (``add_parser(sub)`` and ``run(args, extra)``),
option helpers in `shmkernel.cli.options`. Errors for users are one line on
stderr and exit 2 (bad usage or input) or 3 (the run failed: a CPU died, a
check failed); ``explore`` exits 1 found, 0 proved, 4 not-proved; Ctrl-C and
SIGTERM stop every CPU process, unlink the segment and exit 130/143. No
traceback reaches a user unless SHMKERNEL_DEBUG=1 is set.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from shmkernel.cli import doctor, explain, explore, listing, litmus, replay, run, sweep
from shmkernel.cli.options import Parser, quiet_stdout, stdout_broken
from shmkernel.errors import ShmkernelError, UsageError
from shmkernel.runtime import signals

#: sub-command name -> its module, in the order `--help` lists them
COMMANDS: dict[str, ModuleType] = {
    "doctor": doctor,
    "list": listing,
    "run": run,
    "explore": explore,
    "replay": replay,
    "explain": explain,
    "sweep": sweep,
    "litmus": litmus,
}


def build_parser(wl: object = None) -> Parser:
    """The parser; with ``wl``, its options are listed under its sub-commands' --help."""
    ap = Parser(prog="shmkernel", description=(__doc__ or "").splitlines()[0])
    sub = ap.add_subparsers(dest="command", parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(sub, wl)
    return ap


def _workload_for_help(argv: list[str]) -> object:
    """``shmkernel run WORKLOAD --help``: the workload whose options to list (or None)."""
    if len(argv) < 2 or not ({"-h", "--help"} & set(argv)) or argv[1].startswith("-"):
        return None
    if argv[0] not in COMMANDS or not COMMANDS[argv[0]].TAKES_WORKLOAD_OPTIONS:
        return None
    from shmkernel.workload import registry

    try:
        return registry.get(argv[1])
    except Exception:  # noqa: BLE001 - no options to list: the command itself will say why
        return None


def _show_startup(started: int, total: int) -> None:
    end = "\n" if started == total else ""
    print(f"\rstarting CPU processes: {started}/{total}", end=end, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, exiting: bool = False) -> int:
    """The command line; ``exiting``: the process ends right after (see `entry`)."""
    from shmkernel.runtime import machine

    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.stderr.isatty():
        machine.startup_progress = _show_startup
    with signals.handled(exiting=exiting):
        return _main(argv)


def entry() -> None:
    """The ``shmkernel`` console script and ``python -m shmkernel.cli``."""
    sys.exit(main(exiting=True))


def _main(argv: list[str]) -> int:
    try:
        args, extra = build_parser(_workload_for_help(argv)).parse_known_args(argv)
        if args.command is None:
            raise UsageError(f"a command is required ({', '.join(COMMANDS)})")
        command = COMMANDS[args.command]
        if extra and not command.TAKES_WORKLOAD_OPTIONS:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        return command.run(args, extra)
    except ShmkernelError as e:
        if os.environ.get("SHMKERNEL_DEBUG"):
            raise
        print(f"shmkernel: error: {e}", file=sys.stderr)
        return e.exit_code
    except signals.Terminated:  # before KeyboardInterrupt: it is one
        print("shmkernel: terminated; every CPU process stopped and shared memory removed", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("shmkernel: interrupted; every CPU process stopped and shared memory removed", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if sys.stdout.closed or stdout_broken():
            quiet_stdout()
            return 0  # output piped into head: not an error
        print("shmkernel: error: a channel to a CPU process broke", file=sys.stderr)
        return 3
    except Exception as e:  # noqa: BLE001 - never a traceback for a user
        if os.environ.get("SHMKERNEL_DEBUG"):
            raise
        print(f"shmkernel: internal error: {type(e).__name__}: {e} (SHMKERNEL_DEBUG=1 shows where)", file=sys.stderr)
        return 3
