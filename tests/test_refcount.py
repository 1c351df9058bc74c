"""Seed 000 in free-running mode: the false zero is real for percpu-count, absent for the fixes."""

from __future__ import annotations

import pytest

import workloads
from shmkernel.measure.record import measure_free
from shmkernel.workload.machines import open_machine


def _run(wl_name: str, variant: str, seconds: float, cpus: int = 2, **raw):
    wl = workloads.get(wl_name)
    opts = wl.parse_options(raw)
    with open_machine(wl, cpus, opts) as m:
        return measure_free(m, wl, variant, opts, seconds=seconds)


def _until_seen(wl_name: str, variant: str, event: str, **raw):
    """The rate is > 0: run 2 s, then longer if nothing was seen yet."""
    for seconds in (2.0, 5.0):
        r = _run(wl_name, variant, seconds, **raw)
        if r["events"][event] > 0:
            return r
    return r


def test_percpu_count_shows_false_zeros():
    r = _until_seen("refcount", "buggy", "false_zero")
    assert r["variant"] == "percpu-count"
    assert r["events"]["false_zero"] > 0
    rate = r["rates"]["false_zero"]
    assert rate["per_million"] > 0 and rate["ci95"][0] > 0
    assert r["tally_error_hist"]  # the error histogram is reported


@pytest.mark.parametrize("variant", ["fixed", "atomic"])
def test_fixes_show_no_false_zero(variant):
    r = _run("refcount", variant, 1.5)
    assert r["counters"]["tallies"] > 100_000
    assert r["events"]["false_zero"] == 0
    lo, hi = r["rates"]["false_zero"]["ci95"]
    assert lo == 0 and 0 < hi < 100  # the exact upper bound is reported


def test_possible_cpus_makes_the_tally_walk_many_slots():
    r = _run("refcount", "fixed", 0.5, possible_cpus=512)
    assert r["counters"]["tallies"] > 0 and r["events"]["false_zero"] == 0


def test_rmmod_without_stop_machine_frees_a_module_in_use():
    r = _until_seen("rmmod", "buggy", "use_after_free")
    assert r["events"]["use_after_free"] > 0
    assert r["counters"]["unloads"] > 0


@pytest.mark.parametrize(
    "variant,stop_machine", [("buggy", True), ("fixed", False), ("fixed", True), ("atomic", False), ("atomic", True)]
)
def test_rmmod_safe_configurations(variant, stop_machine):
    r = _run("rmmod", variant, 1.0, stop_machine=stop_machine)
    assert r["counters"]["attempts"] > 0
    assert r["events"]["use_after_free"] == 0


def test_rmmod_reload_is_unreachable_until_its_counts_are_set_up():
    """One CPU handing references to itself while rmmod unloads and reloads: a
    try_module_get that found the reloaded module live before module_unload_init
    zeroed its counts lost its increment, and the fix freed a module in use (every
    0.2 s run showed it). The exactness check at quiesce would fail too."""
    r = _run("rmmod", "fixed", 0.5, cpus=1)
    assert r["counters"]["unloads"] > 0 and r["counters"]["migrations"] > 0
    assert r["events"]["use_after_free"] == 0
