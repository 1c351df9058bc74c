"""Sweeps: resumable JSONL, the plot, the CLI command and the Dask path."""

from __future__ import annotations

import argparse
import json
import struct

import pytest

from shmkernel.errors import UsageError
from shmkernel.measure.grid import grid, parse_params
from shmkernel.measure.sweep import load_done, sweep

SECONDS = 0.3


def _lines(path):
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def test_interrupted_sweep_resumes_with_the_missing_point_only(tmp_path):
    out = tmp_path / "s.jsonl"
    seen = []
    first = sweep(
        "refcount",
        ["tally_delay_us=0,1"],
        variant="atomic",
        seconds=SECONDS,
        out=out,
        max_points=1,
        progress=False,
        on_record=seen.append,
    )
    assert (first.ran, first.skipped, first.pending) == (1, 0, 1)
    assert len(_lines(out)) == 1 and seen[0]["point"] == {"tally_delay_us": 0.0}
    with open(out, "a") as f:  # a record torn by a kill is ignored
        f.write('{"workload": "refcount", "po')
    second = sweep("refcount", ["tally-delay-us=0,1"], variant="atomic", seconds=SECONDS, out=out, progress=False)
    assert (second.ran, second.skipped, second.pending) == (1, 1, 0)
    recs = list(load_done(out).values())
    assert sorted(r["point"]["tally_delay_us"] for r in recs) == [0.0, 1.0]
    for r in recs:
        assert r["variant"] == "atomic" and r["repeat_index"] == 0 and r["executor"] == "local"
        assert r["options"]["tally_delay_us"] == r["point"]["tally_delay_us"]
        assert r["counters"]["tallies"] > 0 and r["events"]["false_zero"] == 0
    third = sweep("refcount", ["tally_delay_us=0,1"], variant="atomic", seconds=SECONDS, out=out, progress=False)
    assert third.ran == 0 and third.skipped == 2


def test_params_are_validated_in_one_line():
    import workloads

    wl = workloads.get("refcount")
    assert parse_params(wl, ["cpus=1,2", "variant=buggy,atomic", "seconds=0.5"]) == {
        "cpus": [1, 2],
        "variant": ["percpu-count", "atomic"],
        "seconds": [0.5],
    }
    for bad, words in [
        ("tally_delay_us", "NAME=V1"),
        ("nosuch=1,2", "no option"),
        ("tally_delay_us=x", "float"),
        ("cpus=0", "1..1024"),
        ("variant=nope", "no variant"),
        ("seconds=-1", "> 0"),
        ("tally_delay_us=1,", "empty"),
    ]:
        with pytest.raises(UsageError) as e:
            parse_params(wl, [bad])
        assert words in str(e.value) and "\n" not in str(e.value)
    # repeats innermost, points sharing a machine adjacent, variant defaulting to buggy+fixed
    pts = grid(wl, parse_params(wl, ["cpus=1,2"]), repeat=2)
    assert [(p.cpus, p.variant, p.repeat_index) for p in pts][:4] == [
        (1, "percpu-count", 0),
        (1, "percpu-count", 1),
        (1, "percpu-incs-decs", 0),
        (1, "percpu-incs-decs", 1),
    ]
    assert len({p.key for p in pts}) == 8


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _fake(variant, x, events, n):
    from shmkernel.measure.stats import rate

    return {
        "workload": "refcount",
        "variant": variant,
        "cpus": 2,
        "seconds": 1.0,
        "point": {"tally_delay_us": x},
        "repeat_index": 0,
        "host": {"hostname": "h"},
        "rates": {"false_zero": rate(events, n).as_json() | {"denominator_name": "tallies"}},
    }


def test_plot_has_one_line_per_variant_and_marks_zeros(tmp_path):
    pytest.importorskip("matplotlib")
    from shmkernel.measure.plot import plot

    recs = [_fake("percpu-count", x, e, 100_000) for x, e in [(0, 2), (1, 300), (20, 9000)]]
    recs += [_fake("atomic", x, 0, 100_000) for x in (0, 1, 20)]
    p = plot(recs, str(tmp_path / "p.png"))
    assert p.labels == ["percpu-count", "atomic"] and p.x == "tally_delay_us" and p.log_y
    assert p.x_scale == "symlog"  # 0, 1, 20: log-like, with the 0 kept
    w, h = _png_size(p.path)
    assert w > 300 and h > 200
    ax = p.figure.axes[0]
    assert ax.get_yscale() == "log"
    assert any(line.get_marker() == "v" for line in ax.get_lines())
    assert "upper bound" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    # a line joins measured rates only: atomic (all zeros) has markers and no line
    assert sum(1 for line in ax.get_lines() if line.get_linestyle() == "-") == 1
    q = plot([_fake("percpu-count", x, 50, 100_000) for x in (1, 2)], str(tmp_path / "q.png"))
    assert q.labels == ["percpu-count"] and not q.log_y and q.x_scale == "linear"


def _cli(argv):
    from shmkernel.cli import sweep as cli_sweep
    from shmkernel.cli.options import Parser

    ap = Parser(prog="shmkernel")
    sub = ap.add_subparsers(dest="command", parser_class=Parser)
    cli_sweep.add_parser(sub)
    args, extra = ap.parse_known_args(argv)
    return cli_sweep.run(args, extra)


def test_cli_sweep_writes_jsonl_table_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "c.jsonl", tmp_path / "c.png"
    rc = _cli(
        [
            "sweep",
            "refcount",
            "--param",
            "variant=buggy,atomic",
            "--seconds",
            str(SECONDS),
            "--out",
            str(out),
            "--plot",
            str(png),
            "--tally-delay-us",
            "1",
            "--progress",
            "never",
        ]
    )
    assert rc == 0
    text = capsys.readouterr()
    assert "shmkernel sweep refcount" in text.out and "2 point(s) run" in text.err
    recs = _lines(out)
    assert [r["point"]["variant"] for r in recs] == ["percpu-count", "atomic"]
    assert all(r["options"]["tally_delay_us"] == 1.0 for r in recs)
    assert _png_size(png)[0] > 300
    rc = _cli(
        [
            "sweep",
            "refcount",
            "--param",
            "variant=buggy,atomic",
            "--seconds",
            str(SECONDS),
            "--out",
            str(out),
            "--tally-delay-us",
            "1",
            "--json",
        ]
    )
    assert rc == 0 and len(capsys.readouterr().out.strip().splitlines()) == 2  # resumed: nothing ran


@pytest.mark.parametrize(
    "argv,words",
    [
        (["--param", "bogus"], "NAME=V1"),
        (["--param", "nosuch=1"], "no option"),
        ([], "at least one --param"),
        (["--param", "tally_delay_us=1", "--tally-delay-us", "2"], "also swept"),
        (["--param", "cpus=1", "--cluster", "localhost:1"], "tcp://"),
        (["--param", "cpus=1", "--repeat", "0"], "1..10000"),
    ],
)
def test_cli_sweep_usage_errors_are_one_line(argv, words):
    with pytest.raises(UsageError) as e:
        _cli(["sweep", "refcount", *argv])
    assert words in str(e.value) and "\n" not in str(e.value)


def test_cli_namespace_call(tmp_path):
    from shmkernel.cli.sweep import run as cmd_sweep

    ns = argparse.Namespace(
        workload="refcount",
        variant="fixed",
        cpus=1,
        memory_model="native",
        seed=0,
        json=True,
        param=["tally_delay_us=0"],
        repeat=1,
        seconds=SECONDS,
        out=None,
        plot=None,
        plot_x=None,
        cluster=None,
        no_pin=False,
        progress="never",
    )
    assert cmd_sweep(ns, []) == 0


def _stop_resource_tracker():
    """LocalCluster's spawned workers start multiprocessing's resource tracker, a child of
    ours that outlives the cluster; stop it so the leak check sees no child left."""
    from multiprocessing import resource_tracker

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        stop()


@pytest.mark.slow
def test_dask_cluster_runs_the_same_grid(tmp_path):
    distributed = pytest.importorskip("distributed")
    import dask

    kw = dict(params=["tally_delay_us=0,1"], variant="atomic", seconds=SECONDS, progress=False)
    assert sweep("refcount", out=tmp_path / "local.jsonl", **kw).ran == 2
    with (
        dask.config.set({"distributed.worker.daemon": False, "distributed.admin.tick.limit": "10s"}),
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
        ) as lc,
    ):
        remote = sweep("refcount", out=tmp_path / "dask.jsonl", cluster=lc.scheduler_address, **kw)
        again = sweep("refcount", out=tmp_path / "dask.jsonl", cluster=lc.scheduler_address, **kw)
    _stop_resource_tracker()
    assert remote.ran == 2 and again.ran == 0 and again.skipped == 2

    def shape(recs):
        return sorted(
            (
                json.dumps(r["point"], sort_keys=True),
                r["repeat_index"],
                r["variant"],
                r["cpus"],
                tuple(sorted(r)),
                tuple(sorted(r["host"])),
                tuple(sorted(r["rates"])),
            )
            for r in recs
        )

    lrecs, drecs = _lines(tmp_path / "local.jsonl"), _lines(tmp_path / "dask.jsonl")
    assert shape(lrecs) == shape(drecs)
    assert {r["executor"] for r in drecs} == {f"dask:{lc.scheduler_address}"}
    assert all(r["host"]["hostname"] and r["counters"]["tallies"] > 0 for r in drecs)


def test_sweep_table_labels_variants_and_says_what_the_event_means():
    import io

    from rich.console import Console

    import workloads
    from shmkernel.measure.sweep import print_summary

    wl = workloads.get("refcount")

    def rec(variant: str, events: int) -> dict:
        return {
            "workload": "refcount",
            "variant": variant,
            "point": {"variant": variant, "cpus": 2},
            "cpus": 2,
            "seconds": 1.0,
            "rates": {"false_zero": {"events": events, "denominator": 1_000_000}},
        }

    out = io.StringIO()
    print_summary(wl, [rec("percpu-count", 12), rec("percpu-incs-decs", 0)], console=Console(file=out, width=200))
    text = out.getvalue()
    assert "buggy (percpu-count)" in text and "fixed (percpu-incs-decs)" in text and "…" not in text
    assert "false_zero: a module_refcount() tally read" in text
    assert "(< 0)" not in text
