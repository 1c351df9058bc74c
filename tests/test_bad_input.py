"""A bad-input corpus: every wrong option, name, schedule or segment is one line.

Each CLI case must exit 2 with exactly one stderr line starting with
``shmkernel: error:``, no Traceback, and leave nothing in /dev/shm. Segment
and semaphore security (0600, unpredictable names, O_CREX, other users kept
out) and a read-only or full /dev/shm are tested here too.

A read-only or full /dev/shm is simulated in a private mount namespace
(``unshare -m`` then a small or read-only tmpfs over /dev/shm), which touches
no other process's /dev/shm; where that is not allowed the test is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zlib

import posix_ipc
import pytest

from shmkernel.errors import SegmentError
from shmkernel.memory.layout import Layout
from shmkernel.memory.segment import H_VERSION, MAGIC, Segment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, int]:
    p = subprocess.Popen(
        [sys.executable, "-m", "shmkernel.cli", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), p.pid


def left_by(pid: int) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if re.match(rf"^(sem\.)?shmkernel-{pid}-", n)]


def assert_one_line_usage_error(
    args: tuple[str, ...], needle: str | None = None, capfd: pytest.CaptureFixture[str] | None = None
) -> str:
    """In a subprocess, or in this process (``shmkernel.cli.main``) when ``capfd`` is
    given: the corpus is large and starting Python ~130 times is slow on 2 cores."""
    if capfd is None:
        r, pid = cli(*args)
        rc, out, err = r.returncode, r.stdout, r.stderr
    else:
        from shmkernel.cli import main

        capfd.readouterr()
        rc = main(list(args))
        out, err = capfd.readouterr()
        pid = os.getpid()
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err, out[:300])
    assert len(lines) == 1, err
    assert lines[0].startswith("shmkernel: error:"), lines[0]
    if needle is not None:
        assert needle in lines[0], lines[0]
    assert not left_by(pid)
    return lines[0]


# -- options: wrong types, ranges, combinations ------------------------------------------------
RUN = ("run", "refcount", "--seconds", "0.1")
OPTION_CASES = [
    # top-level commands
    (("frobnicate",), "invalid choice"),
    (("list", "extra"), "unrecognized"),
    (("list", "--json"), "unrecognized"),
    (("doctor", "--cpus", "0"), "--cpus"),
    (("doctor", "--cpus", "x"), "--cpus"),
    (("doctor", "--cpus", "2000"), "--cpus"),
    (("doctor", "extra"), "unrecognized"),
    # run: common options
    (("run",), "required"),
    (("run", "refcount", "--cpus", "-1"), "--cpus"),
    (("run", "refcount", "--cpus", "1.5"), "--cpus"),
    (("run", "refcount", "--cpus", ""), "--cpus"),
    (("run", "refcount", "--cpus", "1025"), "--cpus"),
    (("run", "refcount", "--cpus"), "--cpus"),
    (("run", "refcount", "--seconds", "0"), "--seconds"),
    (("run", "refcount", "--seconds", "inf"), "--seconds"),
    (("run", "refcount", "--seconds", "-inf"), "--seconds"),
    (("run", "refcount", "--seconds", "1e999"), "--seconds"),
    (("run", "refcount", "--seconds", "abc"), "--seconds"),
    (("run", "refcount", "--iterations", "0"), "--iterations"),
    (("run", "refcount", "--iterations", "1.5"), "--iterations"),
    (("run", "refcount", "--iterations", str(10**13)), "--iterations"),
    (("run", "refcount", "--seed", "-1"), "--seed"),
    (("run", "refcount", "--seed", str(2**63)), "--seed"),
    (("run", "refcount", "--seed", "x"), "--seed"),
    (("run", "refcount", "--memory-model", "quantum"), "--memory-model"),
    (("run", "refcount", "--memory-model", "lkmm"), "lkmm is a scheduled-mode model"),
    (("run", "rmmod", "--memory-model", "weak"), "rmmod reloads the module at the same addresses"),
    (("run", "refcount", "extra-positional"), "unrecognized"),
    # run: workload options
    ((*RUN, "--tally-delay-us", "x"), "--tally-delay-us"),
    ((*RUN, "--tally-delay-us", "-3"), "--tally-delay-us"),
    ((*RUN, "--tally-delay-us", "inf"), "--tally-delay-us"),
    ((*RUN, "--tally-delay-us", "2e6"), "--tally-delay-us"),
    ((*RUN, "--tally-delay-us"), "--tally-delay-us"),
    ((*RUN, "--possible-cpus", "0"), "--possible-cpus"),
    ((*RUN, "--possible-cpus", "2.5"), "--possible-cpus"),
    ((*RUN, "--possible-cpus", "x"), "--possible-cpus"),
    ((*RUN, "--possible-cpus", "8193"), "--possible-cpus"),
    ((*RUN, "--possible-cpus", str(10**9)), "--possible-cpus"),  # a layout far too large: refused
    ((*RUN, "--cpus", "4", "--possible-cpus", "3"), "--possible-cpus"),
    ((*RUN, "--handoff", ""), "--handoff"),
    ((*RUN, "--topology", "star"), "--topology"),
    ((*RUN, "--tallies", "0"), "--tallies"),
    ((*RUN, "--sites", "3"), "--sites"),  # another workload's option
    ((*RUN, "--bogus", "1"), "--bogus"),
    (("run", "rmmod", "--stop-machine", "maybe"), "--stop-machine"),
    (("run", "rmmod", "--hold-iterations", "0"), "--hold-iterations"),
    (("run", "rmmod", "--idle-iterations", "-1"), "--idle-iterations"),
    (("run", "rmmod", "--attempt-interval-us", "-1"), "--attempt-interval-us"),
    (("run", "rmmod", "--topology", "mesh"), "--topology"),
    (("run", "rmmod", "--possible-cpus", "1"), "--possible-cpus"),
    (("run", "rmmod", "--attempts", "101"), "--attempts"),
    (("run", "static-key", "--sites", "0"), "--sites"),
    (("run", "static-key", "--sites", "4097"), "--sites"),
    (("run", "static-key", "--sites", "2", "--site", "5"), "--site"),
    (("run", "static-key", "--site", "-1"), "--site"),
    (("run", "static-key", "--patch-delay-us", "-1"), "--patch-delay-us"),
    (("run", "modcount-2002", "--race-delay-us", "x"), "--race-delay-us"),
    (("run", "modcount-2002", "--attempts", "0"), "--attempts"),
    (("run", "modcount-2002", "--visited-flags", "maybe"), "--visited-flags"),
    (("run", "livepatch", "--race", "nope"), "--race"),
    (("run", "livepatch", "--calls", "-1"), "--calls"),
    (("run", "livepatch", "--window-us", "x"), "--window-us"),
    (("run", "livepatch", "--jitter-us", "1e7"), "--jitter-us"),
    (("run", "livepatch", "--cpus", "1"), "--cpus"),
    # unknown workloads and variants
    (("run", "nope"), "unknown workload"),
    (("run", ""), "unknown workload"),
    (("run", "refcount", "--variant", "nope"), "no variant"),
    (("run", "refcount", "--variant", "BUGGY"), "no variant"),
    (("explore", "nope"), "unknown workload"),
    (("explore", "refcount", "--variant", "nope"), "no variant"),
    (("replay", "nope", "sk1:x"), None),
    # explore options
    (("explore",), "required"),
    (("explore", "refcount", "--scheduler", "nope"), "--scheduler"),
    (("explore", "refcount", "--max-examples", "0"), "--max-examples"),
    (("explore", "refcount", "--max-examples", str(10**8)), "--max-examples"),
    (("explore", "refcount", "--iterations", "0"), "--iterations"),
    (("explore", "refcount", "--iterations", str(10**7)), "--iterations"),
    (("explore", "refcount", "--depth", "0"), "--depth"),
    (("explore", "refcount", "--depth", "101"), "--depth"),
    (("explore", "refcount", "--preemption-bound", "-1"), "--preemption-bound"),
    (("explore", "refcount", "--max-steps", "0"), "--max-steps"),
    (("explore", "refcount", "--memory-model", "quantum"), "--memory-model"),
    (("explore", "refcount", "--cpus", "0"), "--cpus"),
    (("explore", "refcount", "--seconds", "1"), "unrecognized"),
    (("explore", "refcount", "--tallies", "0"), "--tallies"),
    (("explore", "static-key", "--sites", "x"), "--sites"),
    (("explore", "livepatch", "--cpus", "1"), "--cpus"),
    # replay options
    (("replay",), "required"),
    (("replay", "refcount"), "required"),
    (("replay", "refcount", "x", "--repeat", "0"), "--repeat"),
    (("replay", "refcount", "x", "--repeat", "10001"), "--repeat"),
    (("replay", "refcount", "x", "--bogus"), "unrecognized"),
]


@pytest.mark.parametrize("args,needle", OPTION_CASES, ids=[" ".join(a) or "empty" for a, _ in OPTION_CASES])
def test_bad_option_is_one_line_and_exit_2(args, needle, capfd):
    assert_one_line_usage_error(args, needle, capfd)


SUBPROCESS_SAMPLE = [OPTION_CASES[i] for i in (0, 8, 13, 30, 37, 66, 73)]


@pytest.mark.parametrize("args,needle", SUBPROCESS_SAMPLE, ids=[" ".join(a) for a, _ in SUBPROCESS_SAMPLE])
def test_bad_option_as_a_real_process(args, needle):
    """The same contract for a real ``python -m shmkernel.cli`` (imports, exit path)."""
    assert_one_line_usage_error(args, needle)


def test_empty_variant_is_refused(capfd):
    assert_one_line_usage_error(("run", "refcount", "--variant", "", "--seconds", "0.1"), "variant", capfd)


def test_nan_workload_option_is_refused(capfd):
    assert_one_line_usage_error((*RUN, "--tally-delay-us", "nan"), "--tally-delay-us", capfd)


# -- malformed schedules -----------------------------------------------------------------------
def _sign(core: str) -> str:
    return f"{core}:{zlib.crc32(core.encode()) & 0xFFFFFFFF:08x}"


@pytest.fixture(scope="module")
def schedule() -> str:
    """A real schedule string, from a real exploration."""
    r, _ = cli("explore", "refcount", "--variant", "buggy", "--json")
    assert r.returncode == 1, r.stderr
    s = json.loads(r.stdout)["schedule"]
    assert s.startswith("sk1:refcount:")
    return s


def _fields(s: str) -> list[str]:
    return s.split(":")[:8]


def _edit_first_step(steps: str) -> str:
    return ("1" if steps[0] != "1" else "0") + steps[1:]


def _resign(s: str, **change: str) -> str:
    f = _fields(s)
    names = ["version", "workload", "variant", "cpus", "iterations", "model", "options", "steps"]
    for k, v in change.items():
        f[names.index(k)] = v
    return _sign(":".join(f))


SCHEDULE_CASES = {
    "garbage": (lambda s: "garbage", "malformed schedule"),
    "empty": (lambda s: "", "malformed schedule"),
    "truncated": (lambda s: s[: len(s) // 2], "malformed schedule"),
    "truncated-crc": (lambda s: s[:-1], "checksum"),
    "bad-checksum": (lambda s: s[:-8] + ("00000000" if not s.endswith("00000000") else "11111111"), "checksum"),
    "edited-steps": (
        lambda s: ":".join([*_fields(s)[:7], _edit_first_step(_fields(s)[7]), s.rsplit(":", 1)[1]]),
        "checksum",
    ),
    "extra-field": (lambda s: s + ":x", "malformed schedule"),
    "version": (lambda s: _resign(s, version="sk2"), "malformed schedule"),
    "wrong-workload": (lambda s: _resign(s, workload="rmmod"), "workload 'rmmod'"),
    "unknown-variant": (lambda s: _resign(s, variant="nope"), "no variant"),
    "zero-cpus": (lambda s: _resign(s, cpus="0"), "CPU count"),
    "too-many-cpus": (lambda s: _resign(s, cpus="100000"), "CPU count"),
    "too-few-cpus": (lambda s: _resign(s, cpus="1"), "CPU"),
    "other-cpu-count": (lambda s: _resign(s, cpus="3"), "does not fit"),
    "cpus-not-int": (lambda s: _resign(s, cpus="two"), "integers"),
    "zero-iterations": (lambda s: _resign(s, iterations="0"), None),
    "model": (lambda s: _resign(s, model="quantum"), "memory model"),
    "option-value": (lambda s: _resign(s, options="tallies=x"), "--tallies"),
    "option-unknown": (lambda s: _resign(s, options="bogus=1"), "--bogus"),
    "option-no-equals": (lambda s: _resign(s, options="tallies"), "bad option"),
    "step-token": (lambda s: _resign(s, steps="2-zz"), "step token"),
    "step-count": (lambda s: _resign(s, steps="2-0xq"), "step token"),
    "steps-empty": (lambda s: _resign(s, steps=""), "schedule ends"),
    "steps-short": (lambda s: _resign(s, steps=_fields(s)[7].split("-")[0]), "schedule ends"),
    "steps-long": (lambda s: _resign(s, steps=_fields(s)[7] + "-1x50"), "steps"),
    "step-action-cpu": (lambda s: _resign(s, steps="2-r9.1"), None),
}


@pytest.mark.parametrize("case", list(SCHEDULE_CASES))
def test_malformed_schedule_is_one_line_and_exit_2(schedule, case, capfd):
    mutate, needle = SCHEDULE_CASES[case]
    # a few as real processes, the rest in this process (faster)
    real = case in ("garbage", "bad-checksum", "other-cpu-count", "steps-short")
    assert_one_line_usage_error(("replay", "refcount", mutate(schedule)), needle, None if real else capfd)


def test_replay_with_the_wrong_variant_or_workload(schedule):
    assert_one_line_usage_error(("replay", "refcount", schedule, "--variant", "fixed"), "variant")
    assert_one_line_usage_error(("replay", "rmmod", schedule), "workload 'refcount'")


def test_schedule_with_an_absurd_step_count(schedule, capfd):
    assert_one_line_usage_error(("replay", "refcount", _resign(schedule, steps="2-0x999999999999")), "steps", capfd)


# -- segments: foreign, wrong header -------------------------------------------------------------
def _layout() -> Layout:
    lay = Layout(4)
    lay.scalar("a")
    lay.percpu("b")
    return lay


def _foreign(size: int, header: list[int] | None = None) -> str:
    name = "/shmkernel-foreign-" + os.urandom(6).hex()
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
    if header:
        import mmap

        m = mmap.mmap(shm.fd, size)
        for i, v in enumerate(header):
            m[i * 8 : i * 8 + 8] = int(v).to_bytes(8, "little", signed=True)
        m.close()
    shm.close_fd()
    return name


@pytest.mark.parametrize(
    "kind,message",
    [
        ("garbage", "not a shmkernel segment"),
        ("empty", "too small"),
        ("tiny", "too small"),
        ("version", "layout version"),
        ("hash", "another layout"),
        ("cpus", "made for 9 CPUs"),
        ("short", "smaller than its layout"),
    ],
)
def test_attach_refuses_foreign_or_wrong_header(kind, message):
    lay = _layout()
    good = Segment.create(_layout(), cpus=3)
    hdr = [int(x) for x in good.np[:8]]
    good.unlink()
    if kind == "garbage":
        name = _foreign(4096, [0x1234] * 8)
    elif kind == "empty":
        name = _foreign(0)
    elif kind == "tiny":
        name = _foreign(16, [MAGIC, hdr[1]])
    elif kind == "version":
        name = _foreign(lay.nwords * 8, [MAGIC, hdr[H_VERSION] + 1, *hdr[2:]])
    elif kind == "hash":
        name = _foreign(lay.nwords * 8, [*hdr[:2], hdr[2] ^ 1, *hdr[3:]])
    elif kind == "cpus":
        name = _foreign(lay.nwords * 8, [*hdr[:3], 9, *hdr[4:]])
    else:
        name = _foreign(64, hdr)
    try:
        with pytest.raises(SegmentError, match=message):
            Segment.attach(lay, name, cpus=3)
    finally:
        posix_ipc.unlink_shared_memory(name)


def test_attach_refuses_missing_and_invalid_names():
    with pytest.raises(SegmentError, match="no shared segment"):
        Segment.attach(_layout(), "/shmkernel-missing-" + os.urandom(6).hex(), cpus=3)
    with pytest.raises(SegmentError):
        Segment.attach(_layout(), "no/slash/allowed", cpus=3)


# -- security: 0600, unpredictable names, O_CREX, other users kept out --------------------------
def _mode(name: str) -> int:
    return stat.S_IMODE(os.stat("/dev/shm/" + name.lstrip("/")).st_mode)


def _declare(layout):  # type: ignore[no-untyped-def]
    return layout.scalar("x")


def test_segments_and_semaphores_are_0600_with_unpredictable_names():
    from shmkernel.runtime.machine import Machine
    from shmkernel.schedule.gate import Gate

    names = []
    for _ in range(2):
        with Machine(1, declare=_declare, pin=False, extensions=(Gate(),)) as m:
            assert m.seg is not None
            mine = {
                "/" + n.removeprefix("sem.")
                for n in os.listdir("/dev/shm")
                if re.match(rf"^(sem\.)?shmkernel-{os.getpid()}-", n)
            }
            assert {m.seg.name, *m.sem_names} <= mine
            assert m.sem_names, "the gate makes semaphores"
            for n in [m.seg.name, *m.sem_names]:
                path = n if n not in m.sem_names else "/sem." + n.lstrip("/")
                assert _mode(path) == 0o600, (n, oct(_mode(path)))
                assert re.fullmatch(rf"/shmkernel-{os.getpid()}-(sem-)?[0-9a-f]{{16}}", n), n
            names += [m.seg.name, *m.sem_names]
    assert len(set(names)) == len(names)  # 64 random bits each: never reused


def test_an_existing_segment_name_is_not_clobbered(monkeypatch):
    import shmkernel.memory.segment as segmod

    name = _foreign(4096, [0x5A5A] * 8)
    try:
        monkeypatch.setattr(segmod, "new_name", lambda kind="": name)
        with pytest.raises(SegmentError, match="cannot create"):
            Segment.create(_layout(), cpus=3)
        shm = posix_ipc.SharedMemory(name)
        assert shm.size == 4096  # not resized, not zeroed
        import mmap

        m = mmap.mmap(shm.fd, 4096)
        shm.close_fd()
        assert int.from_bytes(m[:8], "little") == 0x5A5A
        m.close()
    finally:
        posix_ipc.unlink_shared_memory(name)


def test_an_existing_semaphore_name_is_not_clobbered(monkeypatch):
    import shmkernel.runtime.machine as machmod

    name = "/shmkernel-foreign-sem-" + os.urandom(6).hex()
    sem = posix_ipc.Semaphore(name, posix_ipc.O_CREX, mode=0o600, initial_value=7)
    try:
        m = machmod.Machine(1, declare=_declare, pin=False)
        monkeypatch.setattr(machmod, "new_name", lambda kind="": name)
        with pytest.raises(posix_ipc.ExistentialError):
            m.new_semaphore(0)
        assert sem.value == 7
        assert name not in m.sem_names  # so close() will not unlink someone else's semaphore
        m.close()
        assert posix_ipc.Semaphore(name).value == 7
    finally:
        sem.unlink()
        sem.close()


def test_another_user_cannot_open_a_segment():
    """As root we can show it for real: a forked child that switched to uid/gid
    65534 (nobody) is refused, by the kernel (shm_open EACCES) and so by
    Segment.attach; as any other user, showing it would need a second account,
    so only the mode bits (0600, owner = us) are asserted."""
    seg = Segment.create(_layout(), cpus=3)
    try:
        st = os.stat("/dev/shm" + seg.name)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
        if os.getuid() != 0:
            pytest.skip("not root: cannot become another user; mode bits checked")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 9
            try:
                os.close(r)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                try:
                    posix_ipc.SharedMemory(seg.name)
                    code = 1  # opened: the protection failed
                except posix_ipc.PermissionsError:
                    try:
                        Segment.attach(_layout(), seg.name, cpus=3)
                        code = 2
                    except SegmentError as e:
                        os.write(w, str(e).encode())
                        code = 0
            finally:
                os._exit(code)
        os.close(w)
        msg = os.read(r, 1000).decode()
        os.close(r)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0, (os.WEXITSTATUS(status), msg)
        assert "permission denied" in msg
    finally:
        seg.unlink()


# -- a read-only or full /dev/shm (private mount namespace) -------------------------------------
def _in_private_shm(mount_opts: str, args: list[str]) -> subprocess.CompletedProcess:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1)")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /dev/shm"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private /dev/shm here: {probe.stderr.strip()}")
    cmd = " ".join(
        [
            f"mount -t tmpfs -o {mount_opts} tmpfs /dev/shm &&",
            f"{sys.executable} -m shmkernel.cli",
            *args,
            "; rc=$?; ls /dev/shm >&2; exit $rc",
        ]
    )
    return subprocess.run(["unshare", "-m", "sh", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_read_only_dev_shm_is_one_line():
    r = _in_private_shm("ro", ["run", "refcount", "--seconds", "0.1"])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("shmkernel: error:") and "Read-only" in lines[0]


def test_full_dev_shm_is_one_line_and_leaves_nothing():
    r = _in_private_shm("size=64k", ["run", "refcount", "--possible-cpus", "8192", "--seconds", "0.1"])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr)
    assert lines[0].startswith("shmkernel: error:")
