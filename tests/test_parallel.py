"""``--jobs`` and ``--cluster``: a search shared between workers gives the verdict,
and for a proof the total executions, of the same search on one worker.

With workers, the exhaustive search is cut into subtrees once it has run
`SPLIT_AFTER` executions (`shmkernel.schedule.split`); the cut depends on the
program and ``subtrees``, not on the workers, so the totals must match the same
cut run on one worker exactly (``subtrees`` alone splits without workers). Real worker processes (a fork
pool), and a real Dask `LocalCluster` whose worker is killed mid-proof.
"""

from __future__ import annotations

import os
import signal

import pytest

from shmkernel.explore import explore
from shmkernel.schedule.parallel import DEFAULT_SUBTREES, SPLIT_AFTER, run_jobs
from shmkernel.schedule.session import Session, resolve
from shmkernel.schedule.split import Job, cut

#: a proof past the split point that runs in about a second on one core
PROOF = dict(workload="refcount", variant="fixed", cpus=3, iterations=2)


@pytest.fixture(scope="module")
def one_job():
    r = explore(**PROOF, jobs=1, subtrees=DEFAULT_SUBTREES)
    assert r.verdict == "proved" and r.examples > SPLIT_AFTER and r.split["subtrees"] >= DEFAULT_SUBTREES
    return r


@pytest.mark.slow  # 4.5 s with its fixture; the found-bug case stays in the default suite
def test_two_jobs_prove_with_the_same_total_as_one(one_job):
    two = explore(**PROOF, jobs=2)
    assert (two.verdict, two.examples, two.split) == ("proved", one_job.examples, one_job.split)
    assert two.jobs == 2
    three = explore(**PROOF, jobs=3)
    assert (three.verdict, three.examples) == ("proved", one_job.examples)


def test_one_job_unsplit_proves_what_two_jobs_prove():
    alone = explore(**PROOF)
    assert alone.verdict == "proved" and not alone.split and alone.examples > SPLIT_AFTER


def test_two_jobs_find_the_bug_one_job_finds():
    one = explore("symbol-get-put", variant="buggy", jobs=1)
    two = explore("symbol-get-put", variant="buggy", jobs=2)
    assert one.verdict == two.verdict == "found"
    assert one.examples > SPLIT_AFTER  # found below the cut, by a subtree's job
    assert two.events == one.events
    assert two.trace and two.schedule.startswith("sk1:symbol-get-put:")


def test_a_grace_period_before_the_cut_takes_the_search_to_trust_unsplit():
    """rmmod starts a grace period in its first execution: DPOR over kernel_sync's grace
    periods would not cover every execution, so both searches are TruSt's, unsplit."""
    one = explore("rmmod", variant="buggy", jobs=1)
    two = explore("rmmod", variant="buggy", jobs=2)
    assert one.verdict == two.verdict == "found" and one.search == two.search == "trust"
    assert not two.split and two.events == one.events and "kernel-sync=memory" in two.schedule


def test_a_budget_shared_by_jobs_is_not_a_proof():
    r = explore(**PROOF, jobs=2, max_examples=SPLIT_AFTER + 50)
    assert r.verdict == "not-proved" and r.stopped_by == "budget"


def test_samplers_run_one_seed_per_job():
    r = explore("refcount", variant="buggy", scheduler="random", jobs=2, max_examples=4000)
    assert r.verdict == "found"
    clean = explore("refcount", variant="fixed", scheduler="random", jobs=2, max_examples=40)
    assert clean.verdict == "not-proved" and clean.stopped_by == "sampling" and clean.examples == 40


def test_a_workload_the_workers_cannot_load_is_refused():
    from shmkernel.errors import UsageError
    from shmkernel.workload.scenario import Scenario

    s = Scenario("not-registered", events=("e",))
    s.scalar("x")

    @s.every_cpu
    def touch(ctx, v, variant):
        ctx.read_once(v.x)

    with pytest.raises(UsageError, match="workers can load"):
        explore(s, jobs=2)


@pytest.mark.slow  # a Dask cluster: seconds to start; with -m slow
def test_a_local_dask_cluster_proves_with_the_same_total(one_job):
    r = explore(**PROOF, jobs=2, cluster="local", subtrees=DEFAULT_SUBTREES)
    assert (r.verdict, r.examples) == ("proved", one_job.examples)


@pytest.mark.slow  # a Dask cluster: seconds to start; with -m slow
def test_a_dask_worker_killed_mid_proof_loses_nothing(one_job):
    distributed = pytest.importorskip("distributed")
    wl, variant, opts, cpus, iters = resolve(PROOF["workload"], PROOF["variant"], None, PROOF["cpus"], None)
    with Session(wl, variant, cpus, opts, PROOF["iterations"], "native", 20_000, "inprocess") as sess:
        subtrees = cut(sess, 32).subtrees
    work = [
        Job(
            "refcount",
            variant,
            cpus,
            {},
            PROOF["iterations"],
            "native",
            20_000,
            "inprocess",
            "exhaustive",
            10**6,
            subtree=t,
        )
        for t in subtrees
    ]
    with Session(wl, variant, cpus, opts, PROOF["iterations"], "native", 20_000, "inprocess") as sess:
        alone = [r.examples for r in run_jobs(work, 1, None, sess)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            pids = client.run(os.getpid)
            results = []
            for r in run_jobs(work, 2, cluster.scheduler_address, None):
                results.append(r)
                if len(results) == 1:  # one worker dies with jobs still queued or running on it
                    victim = max(client.processing().items(), key=lambda kv: len(kv[1]))[0]
                    os.kill(pids[victim], signal.SIGKILL)
    assert sorted(r.examples for r in results) == sorted(alone)
    assert all(r.stopped_by == "" and r.found is None for r in results)


def test_workers_die_with_a_coordinator_killed_by_sigkill():
    import subprocess
    import sys
    import time

    from shmkernel.pytest_plugin import _children, proc_cmdline

    cmd = [sys.executable, "-m", "shmkernel.cli", "explore", "refcount", "--variant", "fixed"]
    p = subprocess.Popen([*cmd, "--scheduler", "random", "--max-examples", "10000000", "--jobs", "2"])
    try:
        deadline = time.monotonic() + 30
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = {c for c in _children(p.pid) if proc_cmdline(c) == proc_cmdline(p.pid)}
            time.sleep(0.05)
        assert len(workers) == 2, "the pool never started"
        p.kill()
        p.wait()
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{w}") and not _zombie(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if os.path.exists(f"/proc/{w}") and not _zombie(w)]
    finally:
        p.kill()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
