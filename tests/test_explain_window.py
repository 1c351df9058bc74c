"""``shmkernel explain WORKLOAD SCHEDULE``: the window of seed 000's diagram,
found by flipping each conflicting order and re-running."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shmkernel.errors import UsageError
from shmkernel.schedule import sctx
from shmkernel.schedule.explorer import explore, replay
from shmkernel.schedule.window import explain_schedule, flipped


def test_seed_000s_window_is_the_one_of_its_diagram():
    r = explore("refcount")  # native: the buggy percpu count, found by DPOR
    text = "\n".join(explain_schedule("refcount", r.schedule))
    assert "false_zero reported by CPU 2 (the coordinator)" in text
    lines = [ln for ln in text.splitlines() if "[fr]" in ln or "[rf]" in ln]
    assert len(lines) == 2, text
    fr, rf = lines
    assert "module_refcount: per_cpu_read(mod.count[cpu0])" in fr and "before CPU 0 try_module_get" in fr
    assert "module_refcount: per_cpu_read(mod.count[cpu1])" in rf and "after CPU 1 module_put" in rf
    assert "no barrier can fix this" in text
    assert "module.py:" in fr  # the kernel source line of each step kept


def test_a_stale_read_under_a_model_is_named_and_a_proved_barrier_proposed():
    r = explore("refcount", variant="percpu-incs-decs-nobarrier", memory_model="lkmm")
    text = "\n".join(explain_schedule("refcount", r.schedule))
    assert "read an older value than CPU 0 try_module_get" in text, text
    assert "no barrier can fix" not in text
    fixes = text.split(" tried):\n")[1].splitlines()
    # the seed's smp_rmb in module_refcount, between the decs and the incs reads (the hand-off's smp_mb
    # makes module_put's smp_wmb unneeded in this bounded program: proved without it)
    assert fixes[0].startswith("  smp_rmb() in module_refcount before its per_cpu_read(") and "proved" in fixes[0]
    assert not sctx.FENCE_PLAN  # the candidates' fences are gone once explained


def test_the_relaxed_hand_off_is_fixed_on_the_hand_off_not_in_the_window():
    r = explore("refcount", variant="fixed", memory_model="lkmm", opts={"handoff": "relaxed"})
    text = "\n".join(explain_schedule("refcount", r.schedule))
    assert "smp_mb() in refcount_cpu before its write_once(refcount.mailbox...): proved" in text, text


@pytest.mark.slow
def test_static_keys_seed_fix_needs_the_release_ordering_upstream_added():
    # under weak (the same window under lkmm costs the candidates' proofs over LKMM graphs)
    r = explore("static-key", variant="seed-fix", memory_model="weak")
    text = "\n".join(explain_schedule("static-key", r.schedule))
    assert "smp_wmb() in static_key_slow_inc before its atomic_set(" in text and "proved" in text, text
    assert "in static_key_slow_inc as smp_store_release: proved" in text  # upstream's atomic_set_release


def test_flipping_moves_the_observers_steps_past_the_store():
    assert flipped([0, 2, 0, 1, 2], observer=2, read_at=1, write_at=3) == [0, 0, 1, 2, 2]  # fr: read moved after
    assert flipped([0, 1, 2, 2, 0], observer=2, read_at=3, write_at=1) == [0, 2, 2, 1, 0]  # rf: read moved before


def test_explain_on_the_command_line_and_bad_input(tmp_path):
    r = explore("refcount")
    svg = tmp_path / "w.svg"
    p = subprocess.run(
        [sys.executable, "-m", "shmkernel.cli", "explain", "refcount", r.schedule, "--svg", str(svg)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0 and "The window" in p.stdout and svg.exists()
    with pytest.raises(UsageError, match="checksum"):
        explain_schedule("refcount", r.schedule[:-1] + ("0" if r.schedule[-1] != "0" else "1"))


def test_the_reduced_schedule_replays_to_the_same_event_with_fewer_switches():
    import random

    from shmkernel.schedule.hb import switches
    from shmkernel.schedule.reduce import guided
    from shmkernel.schedule.session import Session, resolve
    from shmkernel.schedule.trace import decode, encode

    wl, variant, opts, cpus, iters = resolve("refcount", None, None, None, None)
    rng = random.Random(7)
    base = decode(explore("refcount").schedule)[1]
    with Session(wl, variant, cpus, opts, iters, "native", 400, "inprocess") as s:
        for _ in range(300):  # the found schedule with adjacent steps swapped: switchier, still failing
            c = list(base)
            for _ in range(6):
                i = rng.randrange(len(c) - 1)
                c[i], c[i + 1] = c[i + 1], c[i]
            ex, events = s.execute(guided(c))
            if events.get("false_zero") and switches(ex.choices) > switches(base):
                break
        else:
            raise AssertionError("no switchier failing interleaving in 300 tries")
        switchy = encode(s.header(), ex.choices)
    text = "\n".join(explain_schedule("refcount", switchy))
    reduced = text.split("replay refcount '")[1].rstrip("'")
    assert replay("refcount", reduced, engine="inprocess")[0].events.get("false_zero")
    assert switches(decode(reduced)[1]) < switches(ex.choices), text


def test_the_reduction_is_no_longer_than_hypothesis_shrunk_schedule_on_seed_000():
    from shmkernel.schedule.hb import switches
    from shmkernel.schedule.trace import decode

    shrunk = explore("refcount", scheduler="hypothesis", max_examples=200)
    assert shrunk.found
    text = "\n".join(explain_schedule("refcount", explore("refcount").schedule))
    reduced = text.split("replay refcount '")[1].rstrip("'")
    assert switches(decode(reduced)[1]) <= switches(decode(shrunk.schedule)[1]), (reduced, shrunk.schedule)


@pytest.mark.slow  # 23 candidates, 4 pairs proved: ~15 s
def test_the_seeds_two_barriers_when_one_cpu_takes_and_drops_under_weak():
    """The seed's fix, both halves: with one CPU taking and dropping its own
    references over a relaxed hand-off, nothing orders its incs store before its
    decs store, so neither barrier alone fixes the false zero under `weak`; the
    pair proposed first is smp_wmb in module_put (before the decs increment) with
    smp_rmb in module_refcount, each pair proved."""
    opts = {"handoff": "relaxed"}
    r = explore("refcount", variant="percpu-incs-decs-nobarrier", memory_model="weak", cpus=1, iterations=2, opts=opts)
    assert r.found
    text = "\n".join(explain_schedule("refcount", r.schedule))
    fixes = text.split(" tried):\n")[1].splitlines()
    wmb = "smp_wmb() in module_put before its this_cpu_inc(mod.decs...)"
    assert all(f.startswith("  " + wmb + " + ") and "proved" in f for f in fixes), text
    assert any("smp_rmb() in module_refcount before its per_cpu_read(mod.incs...): proved" in f for f in fixes)
