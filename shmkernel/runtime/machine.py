"""The Machine: N emulated CPUs (forked, pinned processes) over one segment.

``Machine(cpus=N)`` is a context manager. It lays out the segment (runtime
control words, then whatever the workload declares), forks N worker CPU
processes plus one for the coordinator's programs (CPU ``N``: tallies, rmmod,
the static-key storm) and keeps them for program after program. The process
that made the Machine only supervises: it starts runs, watches for a CPU that
dies or raises, stops runs, and reads results out of the segment.

Whatever happens (normal end, a CPU killed with -9, an exception, Ctrl-C,
SIGTERM), `close` kills the CPU processes it started and unlinks the segment
and every semaphore; an ``atexit`` hook does it too if ``close`` was skipped.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import NoReturn

import posix_ipc

from shmkernel.errors import RunError, UsageError
from shmkernel.hw import futex
from shmkernel.hw.atomics import Atomics
from shmkernel.memory import reaper
from shmkernel.memory.layout import PERCPU_STRIDE, Layout
from shmkernel.memory.segment import Segment, new_name
from shmkernel.runtime import signals
from shmkernel.runtime.control import Control, declare_control
from shmkernel.runtime.cpu_process import at_once, cpu_main, describe_exit, stop_cpu_processes
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.pinning import pin_plan
from shmkernel.runtime.program import Program, RunResult

MAX_CPUS = 1024
#: beyond this many CPU processes start-up reports progress (`startup_progress`)
PROGRESS_ROLES = 32
#: called as ``(started, total)`` while many CPU processes start; the command line
#: sets it when stderr is a terminal (the runtime itself prints nothing)
startup_progress: Callable[[int, int], None] | None = None
_live: set[Machine] = set()  # strong: a machine dropped unclosed is still closed at exit


@atexit.register
def _close_all() -> None:
    for m in list(_live):
        m.close()


_reaped = False


def _reap_once() -> None:
    """Before the first machine of this process: sweep what crashed runs left behind."""
    global _reaped
    if not _reaped:
        _reaped = True
        reaper.reap()


class Machine:
    """``cpus`` worker CPUs plus the coordinator's CPU over one shared segment."""

    def __init__(
        self,
        cpus: int,
        declare: Callable[[Layout], object] | None = None,
        counter_names: tuple[str, ...] = (),
        possible_cpus: int | None = None,
        pin: bool = True,
        stop_grace: float = 10.0,
        extensions: tuple[object, ...] = (),
        cores: list[int] | None = None,
        processes: bool = True,
    ) -> None:
        if not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
            raise UsageError(f"--cpus must be an integer in 1..{MAX_CPUS}, got {cpus!r}")
        self.cpus = cpus
        self.roles = cpus + 1
        self.coordinator_cpu = cpus
        if possible_cpus is not None and possible_cpus < self.roles:
            raise UsageError(f"--possible-cpus ({possible_cpus}) must be at least --cpus + 1 ({self.roles})")
        self.layout = Layout(max(possible_cpus or 0, self.roles))
        self.counter_names = tuple(counter_names)
        self.ctl: Control = declare_control(self.layout, self.roles, self.counter_names)
        self.vars = declare(self.layout) if declare else None
        self.extensions = extensions
        for ext in extensions:
            ext.declare(self)  # type: ignore[attr-defined]
        self.layout.freeze()
        self.pin = pin
        if cores is not None:
            self.cores: list[int | None] = [cores[i % len(cores)] for i in range(self.roles)]
        else:
            self.cores = pin_plan(self.roles) if pin else [None] * self.roles
        self.pinned: list[bool] = [False] * self.roles
        self.stop_grace = stop_grace
        #: False: the segment and its words only, no CPU processes (the scheduled
        #: in-process engine runs the CPUs' programs as coroutines of this process)
        self.processes = processes
        self.seg: Segment | None = None
        #: one binding of the segment's words for programs run in this process (`inline`)
        self.atomics: Atomics | None = None
        self.sem_names: list[str] = []
        self._sems: list[posix_ipc.Semaphore] = []
        self.pids: list[int] = []
        self.conns: list[Connection] = []
        self._run_id = 0
        self._closed = False
        self.start_seconds = 0.0

    # -- lifecycle --------------------------------------------------------------------------
    def new_semaphore(self, initial: int = 0) -> posix_ipc.Semaphore:
        """A fresh POSIX semaphore (0600, O_CREX), unlinked with the machine."""
        name = new_name("sem-")
        reaper.register("sem", name)  # before it exists: a kill -9 in between leaves nothing
        sem = posix_ipc.Semaphore(name, posix_ipc.O_CREX, mode=0o600, initial_value=initial)
        self.sem_names.append(name)
        self._sems.append(sem)
        return sem

    def start(self) -> Machine:
        t0 = time.perf_counter()
        _live.add(self)
        signals.unwind_on_sigterm()
        _reap_once()
        name = new_name()
        reaper.register("shm", name)  # before it exists: a kill -9 in between leaves nothing
        self.seg = Segment.create(self.layout, self.cpus, name=name)
        try:
            for ext in self.extensions:
                ext.create(self)  # type: ignore[attr-defined]
            parent = os.getpid()
            # at most `at_once` CPU processes setting themselves up at a time (each is
            # runnable until then: 64 forked together made ~50 runnable on 2 cores)
            window = at_once()
            for role in range(self.roles if self.processes else 0):
                if role >= window:
                    self._wait_up(role - window)
                a, b = socket.socketpair()
                # no signal may reach a child before it has its own handlers
                old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
                pid = os.fork()
                if pid == 0:  # child
                    try:
                        a.close()
                        for c in self.conns:
                            c.close()
                        conn = Connection(b.detach())
                        cpu_main(
                            role,
                            self.seg,
                            self.ctl,
                            conn,
                            parent,
                            self.cores[role],
                            self.cpus,
                            self.counter_names,
                            list(self.sem_names),
                        )
                    finally:
                        os._exit(1)
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
                b.close()
                self.pids.append(pid)
                self.conns.append(Connection(a.detach()))
                if startup_progress is not None and self.roles > PROGRESS_ROLES:
                    if (role + 1) % 16 == 0 or role + 1 == self.roles:
                        startup_progress(role + 1, self.roles)
            for role in range(max(0, len(self.pids) - window), len(self.pids)):
                self._wait_up(role)
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.perf_counter() - t0
        return self

    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every CPU process and unlink everything we made (idempotent)."""
        if self._closed:
            return
        self._closed = True
        # a Ctrl-C or SIGTERM arriving now must not cut the clean-up short
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._close()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _close(self) -> None:
        if self.seg is not None:
            self.seg.words[self.ctl.stop] = 1
        stop_cpu_processes(self.pids, self.conns)
        for c in self.conns:
            c.close()
        for sem in self._sems:
            try:
                sem.close()
            except posix_ipc.Error:
                pass
        for name in self.sem_names:
            try:
                posix_ipc.unlink_semaphore(name)
            except posix_ipc.ExistentialError:
                pass
            reaper.release(name)
        if self.seg is not None:
            self.seg.unlink()
            reaper.release(self.seg.name)
        _live.discard(self)

    # -- runs --------------------------------------------------------------------------------
    def _fail_on_death(self) -> None:
        for role, pid in enumerate(self.pids):
            why = describe_exit(pid)
            if why is not None:
                raise RunError(f"{self.role_name(role)} (pid {pid}) {why}")

    def role_name(self, role: int) -> str:
        return f"cpu {role}" + (" (coordinator)" if role == self.coordinator_cpu else "")

    def _recv(self, role: int) -> tuple:
        try:
            return self.conns[role].recv()
        except (EOFError, OSError):
            self._channel_closed(role)

    def _channel_closed(self, role: int) -> NoReturn:
        """A CPU's channel closed: report its death (reported just after the close) or the close."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            self._fail_on_death()
            time.sleep(0.005)
        raise RunError(f"{self.role_name(role)} closed its channel")

    def begin(self, programs: list[Program | None], ctx_factory: Callable[..., Ctx] = Ctx) -> int:
        """Hand each CPU its program, wait until all are ready, then let them go.

        ``programs[i]`` runs on CPU ``i``; ``None`` leaves that CPU idle. Returns
        the run id; follow with `wait_done` (or drive a scheduler in between).
        """
        if self.seg is None or self._closed:
            raise RunError(
                "machine is not started: use `with open_machine(...) as m:` (or call m.start(), and m.close() after)"
            )
        if len(programs) != self.roles:
            raise ValueError(f"need {self.roles} programs (cpus + coordinator), got {len(programs)}")
        if not self.processes:
            raise RunError("this machine has no CPU processes: its programs run in-process (runtime.inline)")
        self._run_id += 1
        rid = self._run_id
        w, ctl = self.seg.words, self.ctl
        self.reset_run_words(programs)
        # at most `at_once` CPUs handed a program and not yet ready: sending to all 64 of a
        # big machine first woke them all together at each scheduled execution's start
        roles = [role for role, p in enumerate(programs) if p is not None]
        window = at_once()
        for k, role in enumerate(roles):
            try:
                self.conns[role].send(("run", rid, ctx_factory, programs[role].fn, programs[role].params))  # type: ignore[union-attr]
            except OSError:  # the CPU died since the last run
                self._channel_closed(role)
            if k >= window:
                self._ready(roles[k - window])
        for role in roles[max(0, len(roles) - window) :]:
            self._ready(role)
        self._t0 = time.perf_counter()
        w[ctl.go] = rid
        if futex.available:  # the CPUs that readied first sleep on the go word
            if self.atomics is None:  # made once: binding every word costs ~0.5 ms
                self.atomics = Atomics(self.seg.map, self.seg.layout.nwords)
            futex.wake(self.atomics.ptr(ctl.go))
        return rid

    def reset_run_words(self, programs: list[Program | None]) -> None:
        """The control words every run starts from: not stopped, no stop_machine in
        progress or handed out (a run's epochs are its own, 1, 2 ..., so equal states of
        two scheduled executions hold equal words), counters zero, idle CPUs finished."""
        assert self.seg is not None
        w, ctl = self.seg.words, self.ctl
        w[ctl.stop] = w[ctl.sm_req] = w[ctl.sm_seq] = w[ctl.gp_req] = 0
        self.seg.np[ctl.sm_parked : ctl.sm_parked + self.roles * PERCPU_STRIDE : PERCPU_STRIDE] = 0
        self.seg.np[ctl.counters : ctl.counters + self.roles * ctl.row_words] = 0
        self._active = [p is not None for p in programs]
        for role, p in enumerate(programs):
            w[ctl.finished + role * PERCPU_STRIDE] = 0 if p is not None else 1

    def _ready(self, role: int) -> None:
        msg = self._wait_msg(role, time.monotonic() + self.stop_grace)
        if msg[0] == "error":
            self.seg.words[self.ctl.stop] = 1  # type: ignore[union-attr]
            raise RunError(f"{self.role_name(role)}: {msg[2]}")
        self.pinned[role] = bool(msg[2])

    def _wait_up(self, role: int) -> None:
        """Wait for a new CPU process to say it has set itself up."""
        msg = self._wait_msg(role, time.monotonic() + self.stop_grace)
        if msg[0] != "up":  # pragma: no cover - a protocol error
            raise RunError(f"{self.role_name(role)} started with {msg[0]!r}")

    def _wait_msg(self, role: int, deadline: float) -> tuple:
        conn = self.conns[role]
        while True:
            if conn.poll(0.05):
                return self._recv(role)
            self._fail_on_death()
            if time.monotonic() > deadline:
                raise RunError(f"{self.role_name(role)} did not answer in time (stalled?)")

    def wait_done(
        self,
        seconds: float | None = None,
        timeout: float = 120.0,
        on_tick: Callable[[], None] | None = None,
        stop_after: int | None = None,
    ) -> RunResult:
        """Supervise a begun run until every program returned.

        With ``seconds`` the stop flag is raised after that long (free-running);
        otherwise programs end by themselves (``--iterations``) or are stopped at
        ``timeout``. A CPU that dies or raises ends the run with a `RunError`
        naming it; one that does not stop within ``stop_grace`` (e.g. SIGSTOPped)
        too, so a stalled CPU never hangs the coordinator. With ``stop_after`` the
        stop flag is raised once the programs of roles below it returned: a run of
        ``--iterations`` ends when the worker CPUs did, whatever the coordinator's
        program (an rmmod loop that never ends by itself) is doing.
        """
        assert self.seg is not None
        w, ctl = self.seg.words, self.ctl
        rid = self._run_id
        pending = {self.conns[r]: r for r in range(self.roles) if self._active[r]}
        results: list[object] = [None] * self.roles
        reports: list[object] = [None] * self.roles
        stop_at = self._t0 + (seconds if seconds is not None else timeout)
        stopped_at: float | None = None
        error: tuple[int, str] | None = None
        while pending:
            for conn in wait(list(pending), timeout=0.02):
                role = pending[conn]  # type: ignore[index]
                msg = self._recv(role)
                if msg[1] != rid:
                    continue
                del pending[conn]  # type: ignore[arg-type]
                if msg[0] == "error" and (error is None or role < error[0]):  # the lowest CPU's
                    error = (role, f"{self.role_name(role)}: {msg[2]}")
                    w[ctl.stop] = 1
                    stopped_at = stopped_at or time.perf_counter()
                elif msg[0] == "done":
                    results[role], reports[role] = msg[2], msg[3]
            self._fail_on_death()
            now = time.perf_counter()
            if stopped_at is None and (
                now >= stop_at or (stop_after is not None and all(r >= stop_after for r in pending.values()))
            ):
                w[ctl.stop] = 1
                stopped_at = now
            if stopped_at is not None and now - stopped_at > self.stop_grace and pending:
                names = ", ".join(self.role_name(r) for r in pending.values())
                raise RunError(f"{names} did not stop within {self.stop_grace:g} s (stalled?)")
            if on_tick is not None:
                on_tick()
        elapsed = (stopped_at or time.perf_counter()) - self._t0
        if error is not None:
            raise RunError(error[1])
        w[ctl.stop] = 1
        return self.result(rid, elapsed, results, reports)

    def result(self, rid: int, elapsed: float, results: list[object], reports: list[object] | None = None) -> RunResult:
        assert self.seg is not None
        ctl, n = self.ctl, len(self.counter_names)
        table = self.seg.np[ctl.counters : ctl.counters + self.roles * ctl.row_words]
        per_cpu = table.reshape(self.roles, ctl.row_words)[:, :n].copy()
        counters = {name: int(per_cpu[:, i].sum()) for i, name in enumerate(self.counter_names)}
        return RunResult(rid, elapsed, counters, per_cpu, results, reports or [])

    def run(
        self,
        programs: list[Program | None],
        seconds: float | None = None,
        timeout: float = 120.0,
        ctx_factory: Callable[..., Ctx] = Ctx,
        stop_after: int | None = None,
    ) -> RunResult:
        """Run one free-running program per CPU; see `begin` and `wait_done`."""
        self.begin(programs, ctx_factory)
        return self.wait_done(seconds=seconds, timeout=timeout, stop_after=stop_after)
