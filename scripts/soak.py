#!/usr/bin/env python3
"""Soak: many consecutive CLI runs with injected faults, checked for leaks.

Each run is ``python -m shmkernel.cli run|explore ...`` as a subprocess (its
pid is the coordinator's), cycling through workloads, variants, modes (free:
``run --seconds 0.2``; scheduled: ``explore --scheduler random --max-examples
20``) and CPU counts 1-4. At a seeded random moment after the CPU processes
appear, one fault is injected: ``kill -9`` of a CPU process, SIGINT or SIGTERM
to the coordinator, SIGSTOP of a CPU (with a later SIGCONT, or never), or none.

After every run it checks: /dev/shm segments and semaphores named after the
coordinator (``shmkernel-<pid>-...``) or one of its CPUs; CPU processes still
alive (every descendant seen while it ran, identified by pid and start time);
the exit code and message class (0/1/4 ok, 2 usage, 3 run failed, 130/143
signal; anything else, a Traceback, or a non-one-line error = bad); a hang
(no exit within ``--timeout``); and exactness (exit 3 "exactness check
failed", or --json output that does not parse). Leftovers are cleaned up after
being counted. Prints one summary table; exits 1 on any leak, orphan, hang,
bad exit/traceback or inexact result.

    python scripts/soak.py --minutes 10 --seed 7
    python scripts/soak.py --runs 30 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

DEFAULT_WORKLOADS = ("refcount", "rmmod", "static-key", "modcount-2002", "livepatch")
# (name, weight): a SIGSTOP never continued costs the Machine's stop_grace (10 s)
# "-group" signals go to the whole process group, as Ctrl-C in a terminal or `timeout` do
FAULTS = (
    ("none", 3),
    ("kill9-cpu", 3),
    ("sigint", 2),
    ("sigterm", 2),
    ("sigint-group", 1),
    ("sigterm-group", 1),
    ("stop-cont", 2),
    ("stop", 1),
    ("kill9-group", 2),
)
OK_CODES = {
    0: "ok",
    1: "ok",
    4: "ok",
    2: "usage",
    3: "failed",
    130: "signal",
    143: "signal",
    -9: "signal",
}  # -9: kill9-group killed the run itself
POLL = 0.02


@dataclass
class Outcome:
    n: int
    argv: list[str]
    fault: str
    applied: bool = False
    rc: int | None = None
    seconds: float = 0.0
    klass: str = ""
    message: str = ""
    problems: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    orphans: list[int] = field(default_factory=list)
    hang: bool = False
    inexact: bool = False


# -- /proc helpers -----------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, starttime) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(rest[1]), rest[0], int(rest[19])


def descendants(root: int) -> dict[int, int]:
    """{pid: starttime} of every live descendant of ``root``."""
    kids: dict[int, list[int]] = defaultdict(list)
    start: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = _stat(int(d))
        if st is None or st[1] == "Z":
            continue
        kids[st[0]].append(int(d))
        start[int(d)] = st[2]
    out, todo = {}, [root]
    while todo:
        for c in kids.get(todo.pop(), ()):
            if c not in out and not _is_tracker(c):
                out[c] = start[c]
                todo.append(c)
    return out


def _is_tracker(pid: int) -> bool:
    """The /dev/shm tracker (shmkernel.memory.tracker) outlives its run on purpose, until its pipe closes."""
    from shmkernel.pytest_plugin import proc_cmdline

    return b"shmkernel.memory.tracker" in proc_cmdline(pid)


def still_alive(pid: int, starttime: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] != "Z" and st[2] == starttime


def shm_of(pids: set[int]) -> list[str]:
    """Entries in /dev/shm named after one of ``pids``."""
    try:
        names = os.listdir("/dev/shm")
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        m = re.match(r"^(?:sem\.)?shmkernel-(\d+)-", n)
        if m and int(m.group(1)) in pids:
            out.append(n)
    return sorted(out)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- the plan -----------------------------------------------------------------------------------
def plan(
    rng: random.Random, workloads: list[tuple[str, list[str]]], i: int, faults: tuple[tuple[str, int], ...] = FAULTS
) -> tuple[list[str], str]:
    name, variants = workloads[i % len(workloads)]
    variant = rng.choice(variants)
    cpus = rng.randint(1, 4)
    if rng.random() < 0.5:
        args = ["run", name, "--variant", variant, "--seconds", "0.2", "--cpus", str(cpus), "--json"]
        model = rng.choice(("native", "native", "sc", "tso", "weak"))
    else:
        cpus = rng.choice((cpus, cpus, cpus, 12))  # now and then many CPUs on few cores
        scheduler = rng.choice(("random", "exhaustive", "hypothesis"))
        args = [
            "explore",
            name,
            "--variant",
            variant,
            "--scheduler",
            scheduler,
            "--max-examples",
            "20",
            "--cpus",
            str(cpus),
            "--seed",
            str(rng.randrange(2**31)),
            "--json",
        ]
        model = rng.choice(("native", "native", "sc", "tso", "weak", "lkmm"))
        if rng.random() < 0.75:  # CPU processes to fault (the default in-process engine has none)
            args += ["--engine", "processes"]
    if model != "native":
        args += ["--memory-model", model]
    fault = rng.choices([f for f, _ in faults], [w for _, w in faults])[0]
    return args, fault


def plant_sentinels() -> list[str]:
    """What a second user of /dev/shm might have there, which no sweep may touch: a segment
    named like ours of a dead process but owned by another uid (only when run as root), and
    one of ours with a live owner (this process)."""
    import posix_ipc

    from shmkernel.memory.segment import MAGIC

    made = []
    owners = [os.getpid()] + ([1] if os.getuid() == 0 else [])  # pid 1 is alive: a live owner too
    for i, pid in enumerate(owners):
        name = f"/shmkernel-{pid}-{i:02d}cafe{os.urandom(4).hex()}"
        shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=64)
        os.write(shm.fd, MAGIC.to_bytes(8, "little", signed=True))
        shm.close_fd()
        made.append(name[1:])
    if os.getuid() == 0:  # a dead owner, but another user's: still not ours to reap
        q = subprocess.Popen([sys.executable, "-c", "pass"])
        q.wait()
        name = f"/shmkernel-{q.pid}-99cafe{os.urandom(4).hex()}"
        shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=64)
        os.write(shm.fd, MAGIC.to_bytes(8, "little", signed=True))
        os.fchown(shm.fd, 12345, 12345)
        shm.close_fd()
        made.append(name[1:])
    return made


def check_sentinels(made: list[str]) -> list[str]:
    """Those gone (a sweep touched what was not its own); then remove them all."""
    gone = [n for n in made if not os.path.exists(os.path.join("/dev/shm", n))]
    for n in made:
        try:
            os.unlink(os.path.join("/dev/shm", n))
        except OSError:
            pass
    return gone


def one_run(n: int, args: list[str], fault: str, rng: random.Random, timeout: float) -> Outcome:
    out = Outcome(n, args, fault)
    # after the CPU processes appear: a free run lasts ~0.2 s, 20 executions less
    delay = rng.uniform(0.0, 0.25 if args[0] == "run" else 0.06)
    cont_after = rng.uniform(0.05, 1.5)
    victim_pick = rng.random()
    t0 = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, "-m", "shmkernel.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    seen: dict[int, int] = {}
    first_seen: float | None = None
    stopped: tuple[int, float] | None = None
    import threading

    bufs: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:  # type: ignore[no-untyped-def]
        bufs[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=(k, s), daemon=True) for k, s in (("out", p.stdout), ("err", p.stderr))
    ]
    for r in readers:
        r.start()
    while p.poll() is None:
        now = time.monotonic()
        if now - t0 > timeout:
            # a hang: kill -9 the coordinator only and continue its CPUs, whose
            # PR_SET_PDEATHSIG SIGTERM then cleans up; what is left is counted below
            out.hang = True
            seen.update(descendants(p.pid))
            _kill(p.pid, signal.SIGKILL)
            p.wait()
            for pid in seen:
                _kill(pid, signal.SIGCONT)
            stopped = None
            break
        kids = descendants(p.pid)
        seen.update(kids)
        if kids and first_seen is None:
            first_seen = now
        if fault != "none" and not out.applied and first_seen is not None and now - first_seen >= delay:
            cpus = sorted(kids)
            if cpus:
                victim = cpus[int(victim_pick * len(cpus))]
                out.applied = True
                if fault == "kill9-cpu":
                    _kill(victim, signal.SIGKILL)
                elif fault == "sigint":
                    _kill(p.pid, signal.SIGINT)
                elif fault == "sigterm":
                    _kill(p.pid, signal.SIGTERM)
                elif fault == "kill9-group":  # every process of the run at once: the tracker must clean up
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                elif fault in ("sigint-group", "sigterm-group"):
                    try:
                        os.killpg(p.pid, signal.SIGINT if fault == "sigint-group" else signal.SIGTERM)
                    except (ProcessLookupError, PermissionError):
                        pass
                elif fault in ("stop", "stop-cont"):
                    _kill(victim, signal.SIGSTOP)
                    if fault == "stop-cont":
                        stopped = (victim, now + cont_after)
        if stopped is not None and now >= stopped[1]:
            _kill(stopped[0], signal.SIGCONT)
            stopped = None
        time.sleep(POLL)
    if stopped is not None:
        _kill(stopped[0], signal.SIGCONT)
    for r in readers:
        r.join(5)
    out.seconds = time.monotonic() - t0
    out.rc = p.returncode
    stdout = bufs.get("out", b"").decode(errors="replace")
    stderr = bufs.get("err", b"").decode(errors="replace")
    check(out, stdout, stderr)

    # what was left: processes first (they may still be unlinking), then /dev/shm
    deadline = time.monotonic() + 3.0
    left = {pid: st for pid, st in seen.items() if still_alive(pid, st)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {pid: st for pid, st in left.items() if still_alive(pid, st)}
    if left:
        out.orphans = sorted(left)
        for pid in left:
            _kill(pid, signal.SIGCONT)
            _kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0  # after a group kill the tracker unlinks as its pipe closes
    while shm_of({p.pid, *seen}) and time.monotonic() < deadline:
        time.sleep(0.05)
    out.leaked = shm_of({p.pid, *seen})
    for name in out.leaked:
        try:
            os.unlink(os.path.join("/dev/shm", name))
        except OSError:
            pass
    if out.hang:
        out.problems.append(f"hang: no exit within {timeout:g} s")
    if out.orphans:
        out.problems.append(f"orphan processes {out.orphans}")
    if out.leaked:
        out.problems.append(f"left in /dev/shm: {out.leaked}")
    return out


def check(out: Outcome, stdout: str, stderr: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    out.message = lines[-1] if lines else ""
    if out.hang:
        out.klass = "hang"
        return
    rc = out.rc
    klass = OK_CODES.get(rc) if rc is not None else None
    if "Traceback" in stderr:
        out.klass = "bad"
        out.problems.append(f"traceback in stderr (rc {rc}): {out.message}")
        return
    if klass is None:
        out.klass = "bad"
        out.problems.append(f"exit code {rc}: {out.message!r}")
        return
    out.klass = klass
    if rc == -9:
        return  # killed with the whole group: it could say nothing; leaks and orphans still count
    if klass == "ok":
        if lines:
            out.klass = "bad"
            out.problems.append(f"exit {rc} but stderr: {out.message!r}")
        try:
            recs = [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]
        except ValueError:
            recs = []
        if not recs:
            out.inexact = True
            out.problems.append(f"exit {rc} without a parsable JSON record")
        return
    if len(lines) != 1 or not lines[0].startswith("shmkernel: "):
        out.klass = "bad"
        out.problems.append(f"exit {rc} without a one-line message: {stderr.strip()[:300]!r}")
    if rc == 3 and "exactness check failed" in stderr:
        out.inexact = True
        out.problems.append(f"inexact: {out.message}")
    if rc == 3 and "internal error" in stderr:
        out.problems.append(f"internal error: {out.message}")


def message_class(msg: str) -> str:
    msg = re.sub(r"\bpid \d+", "pid N", msg)
    msg = re.sub(r"\bcpu \d+", "cpu N", msg)
    msg = re.sub(r"\d+", "N", msg)
    return msg[:110]


# -- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000, help="runs at most (default 1000)")
    ap.add_argument("--minutes", type=float, default=None, help="stop starting runs after this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=40.0, help="a run not done by then is a hang")
    ap.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS))
    ap.add_argument(
        "--faults", default=",".join(f for f, _ in FAULTS), help="faults to draw from (default all: %(default)s)"
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per run")
    a = ap.parse_args(argv)
    # started from a background job (nohup, `cmd &`), SIGINT is ignored and an
    # ignored signal stays ignored across exec: give the runs a default SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)

    import workloads as registry

    wls = []
    for name in a.workloads.split(","):
        wl = registry.get(name)
        wls.append((name, list(wl.variants)))
    rng = random.Random(a.seed)
    wanted = a.faults.split(",")
    unknown = set(wanted) - {f for f, _ in FAULTS}
    if unknown:
        ap.error(f"unknown fault(s) {sorted(unknown)}; choose from {[f for f, _ in FAULTS]}")
    faults = tuple((f, w) for f, w in FAULTS if f in wanted)
    sentinels = plant_sentinels()
    try:
        t_end = time.monotonic() + a.minutes * 60 if a.minutes else None
        outcomes: list[Outcome] = []
        t0 = time.monotonic()
        for i in range(a.runs):
            if t_end is not None and time.monotonic() >= t_end:
                break
            args, fault = plan(rng, wls, i, faults)
            o = one_run(i, args, fault, rng, a.timeout)
            outcomes.append(o)
            if a.verbose or o.problems:
                flag = "PROBLEM " + "; ".join(o.problems) if o.problems else ""
                print(
                    f"[{i}] {' '.join(args)} fault={fault}{'(applied)' if o.applied else ''} "
                    f"rc={o.rc} {o.seconds:.2f}s {o.message[:80]} {flag}",
                    flush=True,
                )
        total = time.monotonic() - t0
        rc = report(outcomes, total, a.seed)
    finally:  # a soak stopped with Ctrl-C removes them too
        gone = check_sentinels(sentinels)
    print(
        f"another user's and live owners' entries in /dev/shm: {len(sentinels)} planted, "
        f"{len(gone)} touched{': ' + ', '.join(gone) if gone else ''}"
    )
    return 1 if gone else rc


def report(outcomes: list[Outcome], total: float, seed: int) -> int:
    from rich.console import Console
    from rich.table import Table

    rows: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        rows[o.fault].append(o)
        rows[f"{o.argv[0]} (mode)"].append(o)
        rows[o.argv[1]].append(o)
    t = Table(title=f"shmkernel soak: {len(outcomes)} runs in {total:.0f} s, seed {seed}")
    for col in (
        "group",
        "runs",
        "fault hit",
        "ok 0/1",
        "usage 2",
        "failed 3",
        "signal",
        "bad",
        "hang",
        "leaks",
        "orphans",
        "inexact",
        "mean s",
    ):
        t.add_column(col, justify="left" if col == "group" else "right")

    def add(name: str, os_: list[Outcome], style: str | None = None) -> None:
        k = Counter(o.klass for o in os_)
        t.add_row(
            name,
            str(len(os_)),
            str(sum(o.applied for o in os_)),
            str(k["ok"]),
            str(k["usage"]),
            str(k["failed"]),
            str(k["signal"]),
            str(k["bad"]),
            str(sum(o.hang for o in os_)),
            str(sum(bool(o.leaked) for o in os_)),
            str(sum(bool(o.orphans) for o in os_)),
            str(sum(o.inexact for o in os_)),
            f"{sum(o.seconds for o in os_) / max(1, len(os_)):.2f}",
            style=style,
        )

    order = [f for f, _ in FAULTS] + ["run (mode)", "explore (mode)"] + sorted({o.argv[1] for o in outcomes})
    for name in order:
        if name in rows:
            add(name, rows[name])
        if name in ("kill9-group", "explore (mode)"):
            t.add_section()
    t.add_section()
    add("TOTAL", outcomes, style="bold")
    con = Console(width=140)
    con.print(t)
    msgs = Counter(message_class(o.message) for o in outcomes if o.message)
    if msgs:
        m = Table(title="messages (stderr last line, numbers as N)")
        m.add_column("count", justify="right")
        m.add_column("message")
        for msg, c in msgs.most_common(15):
            m.add_row(str(c), msg)
        con.print(m)
    bad = [o for o in outcomes if o.problems]
    for o in bad[:30]:
        con.print(f"[{o.n}] {' '.join(o.argv)} fault={o.fault}: {'; '.join(o.problems)}", markup=False)
    print(f"soak: {len(outcomes)} runs, {len(bad)} with problems", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
