"""The pytest plugin as a user meets it: the machine fixture and assert_shows / assert_never_shows."""

from __future__ import annotations

import os
from importlib.metadata import entry_points

import pytest

from shmkernel.measure.record import measure_free

# until the pytest11 entry point is registered; the helpers come as fixtures (importing
# shmkernel.pytest_plugin here before pytest loads it would skip its assertion rewriting)
if not any(ep.value == "shmkernel.pytest_plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["shmkernel.pytest_plugin", "pytester"]  # registering it twice would be an error
else:
    pytest_plugins = ["pytester"]


def test_machine_fixture_gives_a_started_machine(machine):
    m = machine("refcount", cpus=2, tally_delay_us=1)
    assert m.cpus == 2 and m.opts["tally_delay_us"] == 1.0
    r = measure_free(m, m.workload, "atomic", m.opts, iterations=20_000)
    assert r["counters"]["tallies"] > 0 and r["events"]["false_zero"] == 0
    assert any(n.startswith(f"shmkernel-{os.getpid()}-") for n in os.listdir("/dev/shm"))


def test_machine_fixture_cleans_up_after_itself(pytester):
    """In a pytest run of its own (so no other test's order matters): the machine a
    test made is gone when the test is, and the fixture's own check passed."""
    before = {n for n in os.listdir("/dev/shm") if "shmkernel-" in n}
    pytester.makepyfile(
        """
        def test_uses_a_machine(machine):
            m = machine("refcount", cpus=1)
            assert m.seg is not None
        """
    )
    r = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=1)
    after = {n for n in os.listdir("/dev/shm") if "shmkernel-" in n}
    # what a dead process left is a leak (a live one's: another run on this host)
    assert not [n for n in after - before if not os.path.exists(f"/proc/{n.split('shmkernel-')[1].split('-')[0]}")]


def test_free_race_shows_in_a_few_lines(assert_shows, assert_never_shows):
    # the budget of test_refcount's free check: three attempts all miss about e^-36 of the time
    r = assert_shows("refcount", "buggy", "false_zero", iterations=1_000_000, attempts=3, tally_delay_us=10)
    assert r["rates"]["false_zero"]["ci95"][0] > 0
    assert_never_shows("refcount", "atomic", "false_zero", iterations=100_000, tally_delay_us=5)


@pytest.mark.parametrize("scheduler", ["exhaustive", "hypothesis"])
def test_scheduled_race_shows_and_the_fix_is_clean(scheduler, assert_shows, assert_never_shows):
    res = assert_shows("refcount", "buggy", "false_zero", mode="scheduled", scheduler=scheduler, max_examples=200)
    assert res.schedule and res.trace
    clean = assert_never_shows("refcount", "fixed", "false_zero", mode="scheduled", scheduler="exhaustive")
    assert clean.complete  # every interleaving covered


def test_the_helpers_are_importable_too(assert_never_shows):
    from shmkernel import pytest_plugin

    assert pytest_plugin.assert_never_shows is assert_never_shows
    pytest_plugin.assert_never_shows("refcount", "atomic", "false_zero", mode="scheduled")


def test_a_wrong_expectation_fails_the_test_in_one_message(assert_shows, assert_never_shows):
    with pytest.raises(pytest.fail.Exception) as e:
        assert_never_shows("refcount", "buggy", "false_zero", mode="scheduled")
    assert "found {'false_zero': 1}" in str(e.value) and "shmkernel replay refcount" in str(e.value)
    with pytest.raises(ValueError, match="no event"):
        assert_shows("refcount", "buggy", "nosuch")


def test_never_shows_fails_on_a_search_that_proved_nothing(assert_never_shows):
    # rmmod's use-after-free takes ~500 executions to find: 50 cover nothing like all of them
    with pytest.raises(pytest.fail.Exception) as e:
        assert_never_shows("rmmod", "buggy", "use_after_free", mode="scheduled", max_examples=50)
    assert "not complete" in str(e.value) and "NOT a proof: stopped at 50 executions" in str(e.value)
    r = assert_never_shows("rmmod", "buggy", "use_after_free", mode="scheduled", max_examples=50, allow_incomplete=True)
    assert r.verdict == "not-proved" and r.stopped_by == "budget"
    with pytest.raises(pytest.fail.Exception, match="sampled 20 executions"):
        assert_never_shows("refcount", "fixed", "false_zero", mode="scheduled", scheduler="random", max_examples=20)
