"""The body of one emulated CPU: a forked OS process running programs on demand.

Why fork and a command loop: a CPU process is started once per machine and then
runs program after program (free runs, thousands of scheduled executions), so
the cost of starting Python is paid once. Commands and results travel on a
private socket pair (pickled *by reference*: functions, never data from the
shared segment); shared state lives only in the segment.

Lifecycle rules: the process dies with its coordinator (``PR_SET_PDEATHSIG``
delivers SIGTERM, whose handler unlinks the segment and semaphores if the
coordinator is gone, so even a ``kill -9`` of the coordinator leaves nothing in
/dev/shm); Ctrl-C is the coordinator's to handle, so SIGINT is ignored here.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection

import posix_ipc

from shmkernel.memory.layout import PERCPU_STRIDE
from shmkernel.memory.segment import Segment
from shmkernel.runtime.control import Control
from shmkernel.runtime.ctx import StillAsleep
from shmkernel.runtime.pinning import pin_self
from shmkernel.runtime.waits import sleep_on_word

PR_SET_PDEATHSIG = 1


def set_pdeathsig(sig: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - non-Linux
        pass


def _unlink_all(shm_names: list[str], sem_names: list[str]) -> None:
    for n in shm_names:
        try:
            posix_ipc.unlink_shared_memory(n)
        except Exception:
            pass
    for n in sem_names:
        try:
            posix_ipc.unlink_semaphore(n)
        except Exception:
            pass


def short_error(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno} in {tb[-1].name}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def cpu_main(
    role: int,
    seg: Segment,
    ctl: Control,
    conn: Connection,
    parent: int,
    core: int | None,
    nr_cpus: int,
    counter_names: tuple[str, ...],
    sem_names: list[str],
) -> None:
    """Run in the forked child; never returns (always ``os._exit``)."""
    code = 0
    try:
        set_pdeathsig(signal.SIGTERM)

        def on_term(signum: int, frame: object) -> None:
            # A SIGTERM to the whole process group reaches us and the coordinator
            # at once: give it a moment to die, then clean up for it if it did.
            for _ in range(40):
                if os.getppid() != parent:
                    _unlink_all([seg.name], sem_names)
                    break
                time.sleep(0.005)
            os._exit(128 + signum)

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        if os.getppid() != parent:
            on_term(signal.SIGTERM, None)
        pinned = pin_self(core) if core is not None else False
        from shmkernel.hw.atomics import Atomics

        atomics = Atomics(seg.map, seg.layout.nwords)
        finished = ctl.finished + role * PERCPU_STRIDE
        conn.send(("up",))  # the coordinator may start the next CPU process
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the coordinator vanished without a word
                on_term(signal.SIGTERM, None)
            if msg[0] == "exit":
                break
            _, run_id, ctx_factory, program, params = msg
            try:
                ctx = ctx_factory(seg, ctl, role, nr_cpus, counter_names, atomics)
            except BaseException as e:  # noqa: BLE001 - reported, not raised
                conn.send(("error", run_id, f"cannot make the CPU context: {short_error(e)}"))
                continue
            conn.send(("ready", run_id, pinned))
            w = seg.words
            if ctx.mode == "free":
                _wait_for_go(w, atomics, ctl, run_id)
            try:
                result = program(ctx, params) if not w[ctl.stop] else None
                w[finished] = 1
                ctx.finish()
                conn.send(("done", run_id, result, ctx.report()))
            except BaseException as e:  # noqa: BLE001 - a CPU oops is reported
                w[finished] = 1
                if getattr(e, "quiet", False):  # the scheduler ended this execution early,
                    if isinstance(e, StillAsleep):  # or the task sleeps past the end: its program ended
                        ctx.finish()  # (a free model's store buffer drains as after a return)
                    conn.send(("done", run_id, None, ctx.report()))
                    continue
                ctx.abort()
                conn.send(("error", run_id, short_error(e)))
    except (BrokenPipeError, ConnectionResetError):
        code = 1  # the coordinator closed our channel (interrupted, or gone): it speaks for the run
    except BaseException as e:  # noqa: BLE001
        code = 1
        try:
            os.write(2, f"shmkernel: cpu {role} crashed: {short_error(e)}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def describe_exit(pid: int) -> str | None:
    """How CPU process ``pid`` ended (reaped now), or None while it runs."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "is gone"
    if done == 0:
        return None
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"was killed by {signal.Signals(sig).name}"
    return f"exited with code {os.WEXITSTATUS(status)}"


ProgramFn = Callable[..., object]


def _wait_for_go(w: memoryview, atomics: object, ctl: Control, run_id: int) -> None:
    """Free CPUs start together, when the coordinator raises the go word. (A scheduled
    CPU does not wait for it: it runs to its first step and waits there for its
    grant; 64 of them woken at once by go made 64 runnable processes at every
    execution's start.)"""
    turns = 0
    while w[ctl.go] != run_id and not w[ctl.stop]:
        turns = sleep_on_word(w, atomics, ctl.go, turns)


def at_once() -> int:
    """How many CPU processes may start, take a program or exit at the same time: the
    cores, and at least 8. Fewer woke 64 processes at once on 2 cores (a run queue of
    ~50); one at a time made every small machine wait a wake-up per CPU, which on a
    busy host is a time slice (the suite beside two `yes`: 176 s -> 349 s)."""
    return max(8, len(os.sched_getaffinity(0)))


def stop_cpu_processes(pids: list[int], conns: list[Connection], grace_s: float = 1.0) -> None:
    """Tell each CPU process to exit, SIGKILL whoever has not within ``grace_s``.

    As many exit at once as there are cores, as at start-up (`Machine.start`):
    telling all 64 of a big machine at once made a burst of ~50 runnable
    processes on a 2-core host."""
    deadline = time.monotonic() + grace_s
    alive = set(pids)
    window = at_once()
    for i, c in enumerate(conns):
        try:
            c.send(("exit",))
        except OSError:
            pass
        if i >= window:
            older = pids[i - window]
            while older in alive and time.monotonic() < deadline:
                if describe_exit(older) is not None:
                    alive.discard(older)
                else:
                    time.sleep(0.0005)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            if describe_exit(pid) is not None:
                alive.discard(pid)
        if alive:
            time.sleep(0.002)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
