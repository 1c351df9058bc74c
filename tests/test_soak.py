"""A short soak: consecutive CLI runs with injected faults leave nothing behind.

Runs ``scripts/soak.py`` (kill -9 of a CPU, SIGINT/SIGTERM to the coordinator
or its whole process group, SIGSTOP of a CPU with or without SIGCONT, no
fault) and asserts it found no leak, orphan, hang, traceback or inexact
result (exit 0). 20 runs take ~60 s on 2 cores (a SIGSTOP never continued
costs the Machine's 10 s stop_grace).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The soak's first runs found five framework bugs (a signal during close() leaked, SIGSTOP hung
# explore, a CPU killed between runs exited 0, ...); they are fixed, and this keeps them fixed.
@pytest.mark.slow
def test_short_soak_is_clean():
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "soak.py"), "--runs", "20", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert "soak: 20 runs, 0 with problems" in r.stdout
