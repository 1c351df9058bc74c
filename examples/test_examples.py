"""The examples as a user tests them: with the shmkernel pytest plugin.

(In your own project the plugin is registered by installing shmkernel; the
fixtures ``assert_shows`` and ``assert_never_shows`` come with it.)
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def test_refget_check_then_act_loses_the_race(assert_shows, assert_never_shows):
    race = os.path.join(HERE, "refget.py")
    found = assert_shows(race, "buggy", "use_after_free", mode="scheduled")
    print(found.trace)  # the interleaving, CPU by CPU
    assert_never_shows(race, "fixed", "use_after_free", mode="scheduled")  # passes only on a proof


def test_message_passing_needs_its_barriers_on_weak_memory(assert_shows, assert_never_shows):
    mp = os.path.join(HERE, "mp.py")
    assert_shows(mp, "buggy", "stale_data", mode="scheduled", memory_model="weak")
    assert_never_shows(mp, "fixed", "stale_data", mode="scheduled", memory_model="weak")
    assert_never_shows(mp, "buggy", "stale_data", mode="scheduled", memory_model="tso")  # x86 keeps order
