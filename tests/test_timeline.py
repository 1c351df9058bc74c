"""``--trace-out``: a found or replayed execution as a Perfetto / Chrome
trace-event timeline (one track per CPU, slices, event markers, the memory
model's actions on their own tracks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from shmkernel.schedule.explorer import explore, replay

DRAW = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "draw_timeline.py")
REQUIRED = {"M": {"name", "ph", "pid", "args"}, "X": {"name", "ph", "ts", "dur", "pid", "tid"}}
REQUIRED["i"] = {"name", "ph", "ts", "pid", "tid", "s"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shmkernel.cli", *args], capture_output=True, text=True, timeout=300)


def _check_format(doc: dict) -> list[dict]:
    evs = doc["traceEvents"]
    for e in evs:
        assert REQUIRED[e["ph"]] <= set(e), e
    return evs


def test_explore_writes_a_trace_event_timeline_with_a_track_per_cpu(tmp_path):
    out = tmp_path / "t.json"
    r = _cli("explore", "refcount", "--trace-out", str(out))
    assert r.returncode == 1, r.stderr  # found
    assert "timeline:" in r.stderr
    evs = _check_format(json.loads(out.read_text()))
    tracks = {e["args"]["name"] for e in evs if e["name"] == "thread_name"}
    assert tracks == {"CPU 0", "CPU 1", "CPU 2 (coordinator)"}
    slices = [e for e in evs if e["ph"] == "X"]
    assert slices and {e["tid"] for e in slices} == {0, 1, 2}
    assert any(e["args"]["function"] == "try_module_get" or "try_module_get" in e["args"]["stack"] for e in slices)
    marks = [e for e in evs if e["ph"] == "i"]
    assert [m["name"] for m in marks] == ["false_zero"] and marks[0]["tid"] == 2
    assert [e["ts"] for e in slices] == sorted(e["ts"] for e in slices)


def test_a_replay_draws_the_same_timeline_and_memory_actions_get_their_own_tracks(tmp_path):
    """The machine's search (``stateful``: the graph search has no commit steps to draw)."""
    r = explore("refcount", variant="percpu-incs-decs-nobarrier", memory_model="weak", scheduler="stateful")
    assert r.found and r.timeline
    again = replay("refcount", r.schedule, engine="inprocess")[0]
    names = [e["name"] for e in r.timeline["traceEvents"]]
    assert [e["name"] for e in again.timeline["traceEvents"]] == names
    memory = [e for e in _check_format(r.timeline) if e["ph"] == "X" and e["tid"] >= 1000]
    assert memory and all("commit" in e["name"] or "propagat" in e["name"] or "read" in e["name"] for e in memory)
    assert "timeline" not in r.as_json()  # --json stays small


def test_no_violation_means_no_file(tmp_path):
    out = tmp_path / "none.json"
    r = _cli("explore", "refcount", "--variant", "fixed", "--max-examples", "5", "--trace-out", str(out))
    assert r.returncode == 4 and not out.exists() and "nothing written" in r.stderr
    r = _cli("explore", "refcount", "--trace-out", str(tmp_path / "no" / "dir.json"))
    assert r.returncode == 2 and "cannot write" in r.stderr


def test_svg_has_a_column_per_cpu_and_the_rf_fr_arrows_of_the_race(tmp_path):
    import xml.etree.ElementTree as ET

    svg = tmp_path / "race.svg"
    r = _cli("explore", "refcount", "--svg", str(svg))
    assert r.returncode == 1 and "diagram:" in r.stderr
    texts = [e.text for e in ET.parse(svg).iter("{http://www.w3.org/2000/svg}text")]
    assert {"CPU 0", "CPU 1", "CPU 2 (coordinator)"} <= set(texts)
    assert texts.count("rf") >= 1 and texts.count("fr") >= 1  # seed 000: the tally's stale read, the late one
    assert any("false_zero" in (t or "") for t in texts)


def test_rf_and_fr_arrows_follow_the_order_of_a_sequentially_consistent_trace():
    from shmkernel.schedule.svg import arrows

    def s(tid, access, addr, value):
        return {"tid": tid, "args": {"access": access, "address": addr, "value": value}}

    slices = [s(0, "read", "x", 0), s(1, "write", "x", 1), s(0, "read", "x", 1), s(1, "write", "x", 2)]
    assert arrows(slices) == [(0, 1, "fr"), (1, 2, "rf"), (2, 3, "fr")]


def test_the_timeline_picture_has_a_row_per_track_and_the_event(tmp_path):
    """scripts/draw_timeline.py (the README's picture of a timeline) on a found execution."""
    import xml.etree.ElementTree as ET

    r = explore("refcount", variant="percpu-incs-decs-nobarrier", memory_model="weak", scheduler="stateful")
    src = tmp_path / "t.json"
    src.write_text(json.dumps(r.timeline))
    out = tmp_path / "t.svg"
    p = subprocess.run([sys.executable, DRAW, str(src), str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    slices = [e for e in r.timeline["traceEvents"] if e["ph"] == "X"]
    assert p.stdout.strip() == f"{out}: {len(slices)} slices"
    texts = {"".join(t.itertext()) for t in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}text")}
    tracks = {e["args"]["name"] for e in r.timeline["traceEvents"] if e["name"] == "thread_name"}
    assert tracks <= texts and "CPU 0 memory (commits, propagations)" in tracks  # a row each, memory tracks too
    assert "false_zero" in texts
    bad = subprocess.run([sys.executable, DRAW, str(tmp_path / "none.json"), str(out)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
