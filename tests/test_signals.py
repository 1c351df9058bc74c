"""Ctrl-C and SIGTERM during a search: honoured at once, one line, 130/143, nothing left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


def _wait_for_segment(pid: int, timeout: float = 30.0) -> None:
    """The run is under way once its shared segment exists (handlers are installed by then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(n.startswith(f"shmkernel-{pid}-") for n in os.listdir("/dev/shm")):
            return
        time.sleep(0.01)
    raise AssertionError("the run never created its segment")


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.25, 0.5, 0.8])
@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_a_signal_during_a_hypothesis_search_stops_it_cleanly(delay, sig, code, word):
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shmkernel.cli",
            "explore",
            "refcount",
            "--variant",
            "fixed",
            "--scheduler",
            "hypothesis",
            "--max-examples",
            "100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_segment(p.pid)
    time.sleep(delay)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)  # a search of 100,000 examples: only the signal ends it in time
    assert p.returncode == code, err
    assert err.strip().splitlines() == [f"shmkernel: {word}; every CPU process stopped and shared memory removed"]
    assert not any(n.startswith(f"shmkernel-{p.pid}-") for n in os.listdir("/dev/shm"))


def test_a_signal_after_the_work_is_done_does_not_change_the_exit_code():
    """The console script's run is over (output printed, everything cleaned up) when a
    SIGTERM or Ctrl-C comes during interpreter shutdown: it exits with its own code,
    not as a silent death by signal (2 of 600 soak runs did, before)."""
    import subprocess
    import sys

    for sig in ("SIGTERM", "SIGINT"):
        code = (
            "import os, signal, sys\n"
            "from shmkernel.cli import main\n"
            "rc = main(['list'], exiting=True)\n"
            f"os.kill(os.getpid(), signal.{sig})\n"
            "sys.exit(rc)\n"
        )
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (sig, r.returncode, r.stderr)
