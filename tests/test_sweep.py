"""Parameter sweeps: grid parsing, run keys, both executors, the table, resuming, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from mmsim import sweep as sw
from mmsim.cli import main
from mmsim.config import ConfigError, load_config
from mmsim.results import load, load_sweep
from mmsim.sweep import (
    Axis,
    GridError,
    axes_from_mapping,
    expand_grid,
    merge_axes,
    parse_grid_arg,
    plan_sweep,
    run_sweep,
)

REPO = Path(__file__).parents[1]
EXP = REPO / "experiments" / "default.yaml"
SMALL = ["data.synthetic.n_events=30000"]
GRID = [
    "policy.spread_bps=1,2",
    "latency.entry_nanos=1e5,5e5",
    "policy.name=fixed_spread,no_such_policy",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mmsim-cache")


def _values(axis: Axis) -> list:
    return [v[0] if len(v) == 1 else v for v in axis.values]


# --- grid parsing -----------------------------------------------------------------------------


def test_list_values_parse_as_yaml_and_numbers():
    ax = parse_grid_arg("policy.gamma=0.01,0.1,1")
    assert ax.keys == ("policy.gamma",)
    assert _values(ax) == [0.01, 0.1, 1]
    # YAML 1.1 reads 1e6 as a string: the grid turns it into a number
    assert _values(parse_grid_arg("latency.entry_nanos=1e6,5E6,2.5e-3")) == [1e6, 5e6, 0.0025]
    assert _values(parse_grid_arg("policy.name=fixed_spread, static")) == ["fixed_spread",
                                                                          "static"]
    assert _values(parse_grid_arg("engine.decide_on_fill=true,false")) == [True, False]
    assert _values(parse_grid_arg("policy.k=[10, 20]")) == [10, 20]
    assert _values(parse_grid_arg("data.path=[a.csv, b.csv]")) == ["a.csv", "b.csv"]


def test_range_linspace_geomspace():
    assert _values(parse_grid_arg("policy.k=range(10,50,10)")) == [10, 20, 30, 40]
    assert _values(parse_grid_arg("policy.k=range(0,3)")) == [0, 1, 2]
    assert _values(parse_grid_arg("policy.x=range(0.1, 0.5, 0.1)")) == [0.1, 0.2, 0.3, 0.4]
    assert _values(parse_grid_arg("policy.x=linspace(0, 1, 5)")) == [0, 0.25, 0.5, 0.75, 1.0]
    assert _values(parse_grid_arg("latency.entry_nanos=linspace(1e5,1e6,2)")) == [1e5, 1e6]
    assert _values(parse_grid_arg("policy.gamma=geomspace(0.001, 1, 4)")) == [
        0.001, 0.01, 0.1, 1.0]


def test_zipped_axes_on_the_command_line():
    for text in (
        "data.path,data.orderbook=[a_m.csv,a_o.csv],[b_m.csv,b_o.csv]",
        "data.path, data.orderbook=(a_m.csv, a_o.csv), (b_m.csv, b_o.csv)",
        "data.path,data.orderbook=[[a_m.csv,a_o.csv],[b_m.csv,b_o.csv]]",
    ):
        ax = parse_grid_arg(text)
        assert ax.keys == ("data.path", "data.orderbook")
        assert ax.values == (("a_m.csv", "a_o.csv"), ("b_m.csv", "b_o.csv"))
    one = parse_grid_arg("data.path,data.orderbook=[a_m.csv,a_o.csv]")
    assert one.values == (("a_m.csv", "a_o.csv"),)


def test_yaml_grid_section_forms():
    axes = axes_from_mapping({
        "policy.gamma": [0.01, "1e-1", 1],
        "policy.k": {"range": [10, 30, 10]},
        "policy.x": {"linspace": [0, 1, 3]},
        "latency.entry_nanos": "1e5,5e5",
        "data.path,data.orderbook": [["a_m", "a_o"], ["b_m", "b_o"]],
        "day": [{"data.path": "c_m", "seed": 1}, {"data.path": "d_m", "seed": 2}],
        "seedless": 3,
    })
    assert [a.name for a in axes] == ["policy.gamma", "policy.k", "policy.x",
                                      "latency.entry_nanos", "data.path,data.orderbook", "day",
                                      "seedless"]
    assert _values(axes[0]) == [0.01, 0.1, 1]
    assert _values(axes[1]) == [10, 20]
    assert _values(axes[2]) == [0.0, 0.5, 1.0]
    assert _values(axes[3]) == [1e5, 5e5]
    assert axes[4].values == (("a_m", "a_o"), ("b_m", "b_o"))
    assert axes[5].keys == ("data.path", "seed")
    assert axes[5].values == (("c_m", 1), ("d_m", 2))
    assert _values(axes[6]) == [3]


def test_cli_axes_override_yaml_axes_and_order_is_deterministic():
    yaml_axes = axes_from_mapping({
        "policy.gamma": [1, 2],
        "data.path,data.orderbook": [["a", "b"]],
        "policy.k": [5],
    })
    cli = [parse_grid_arg("policy.k=7,8"), parse_grid_arg("data.path=x,y"),
           parse_grid_arg("latency.entry_nanos=1")]
    axes = merge_axes(yaml_axes, cli)
    assert [a.name for a in axes] == ["policy.gamma", "data.path", "policy.k",
                                      "latency.entry_nanos"]
    pts = expand_grid(axes)
    assert len(pts) == 2 * 2 * 2
    assert pts[0] == {"policy.gamma": 1, "data.path": "x", "policy.k": 7,
                      "latency.entry_nanos": 1}
    assert pts[1]["policy.k"] == 8 and pts[2]["data.path"] == "y" and pts[4]["policy.gamma"] == 2
    assert expand_grid([]) == [{}]


@pytest.mark.parametrize("text", [
    "policy.gamma", "policy.gamma=", "1bad=1,2", "a,b=[1],[2]", "a,b=[1,2,3]",
    "policy.k=range(1,5,0)", "policy.k=linspace(0,1,x)", "policy.k=geomspace(0,1,3)",
])
def test_malformed_grid_arguments_raise(text):
    with pytest.raises(GridError):
        parse_grid_arg(text)


def test_a_key_on_two_axes_raises():
    with pytest.raises(GridError, match="two axes"):
        expand_grid([parse_grid_arg("a.b=1"), Axis("x", ("c", "a.b"), ((1, 2),))])
    with pytest.raises(GridError, match="same keys"):
        axes_from_mapping({"day": [{"data.path": 1}, {"seed": 2}]})


def test_plan_run_keys_are_config_digests(tmp_path):
    exp = tmp_path / "exp.yaml"
    text = EXP.read_text() + "grid:\n  policy.spread_bps: [1, 2]\n  latency.entry_nanos: [1e5]\n"
    exp.write_text(text)
    plan = plan_sweep(exp, ["latency.entry_nanos=1e5,5e5"], SMALL)
    assert plan.name == "default"
    assert plan.param_columns == ["policy.spread_bps", "latency.entry_nanos"]
    assert len(plan.runs) == 4 and "grid" not in plan.base
    r = plan.runs[1]
    assert r.params == {"policy.spread_bps": 1, "latency.entry_nanos": 500000}
    assert isinstance(r.params["latency.entry_nanos"], int)
    # the key is the digest of the full config a single backtest of that point would have
    exp2 = tmp_path / "exp2.yaml"
    exp2.write_text(EXP.read_text())
    cfg = load_config(exp2, [*SMALL, "policy.spread_bps=1", "latency.entry_nanos=500000"])
    assert r.digest == cfg.digest() and r.key == cfg.digest()[:16]
    assert r.config["latency"]["entry_nanos"] == 500000 and r.config["grid"] is None
    assert len({x.key for x in plan.runs}) == 4
    # the same inputs give the same plan (and default folder)
    again = plan_sweep(exp, ["latency.entry_nanos=1e5,5e5"], SMALL)
    assert [x.key for x in again.runs] == [x.key for x in plan.runs]
    assert sw.default_sweep_dir(again) == sw.default_sweep_dir(plan)


def test_missing_experiment_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        plan_sweep(tmp_path / "nope.yaml")


# --- executors and the table ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("sweeps") / "pool"
    return run_sweep(EXP, grid=GRID, overrides=SMALL, out=out, cache_dir=cache, jobs=2,
                     progress=False)


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[*sw.TIMING_COLUMNS, "run_dir"])


def test_process_pool_sweep_table(pool_sweep):
    res = pool_sweep
    df = load_sweep(res.sweep_dir)
    assert len(df) == 8
    assert list(df.columns[:4]) == ["run_key", "policy.spread_bps", "latency.entry_nanos",
                                    "policy.name"]
    assert {"status", "error", "run_dir", "wall_s", "pnl", "sharpe", "n_fills",
            "markout_1s"} <= set(df.columns)
    # grid order: the first axis varies slowest
    assert df["policy.spread_bps"].tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    assert df["latency.entry_nanos"].tolist() == [100000, 100000, 500000, 500000] * 2
    assert df["latency.entry_nanos"].dtype.kind == "i"
    ok = df[df["policy.name"] == "fixed_spread"]
    bad = df[df["policy.name"] == "no_such_policy"]
    assert (ok["status"] == "ok").all() and (ok["error"] == "").all()
    assert (bad["status"] == "failed").all()
    assert bad["error"].str.contains("no_such_policy").all()
    assert bad["pnl"].isna().all() and ok["pnl"].notna().all()
    for _, row in ok.iterrows():
        run = load(row["run_dir"])
        assert run.metrics["pnl"] == pytest.approx(row["pnl"])
        assert run.manifest["config_sha256"].startswith(row["run_key"])
        assert run.config["latency"]["entry_nanos"] == row["latency.entry_nanos"]
    meta = json.loads((res.sweep_dir / "sweep.json").read_text())
    assert meta["status"] == "complete"
    ex = meta["executor"]
    assert {k: ex[k] for k in ("kind", "workers", "start_method")} == {
        "kind": "process_pool", "workers": 2, "start_method": sw.default_start_method()}
    assert isinstance(ex["first_run_in_parent"], bool)
    assert meta["counts"]["ok"] == 4 and meta["counts"]["failed"] == 4
    assert meta["timing"]["overhead_per_run_s"] >= 0
    assert [a["keys"] for a in meta["axes"]] == [["policy.spread_bps"],
                                                 ["latency.entry_nanos"], ["policy.name"]]
    assert not list((res.sweep_dir / "runs").glob("*.partial"))


def test_the_other_start_method_gives_the_same_table(pool_sweep, tmp_path, cache):
    other = "spawn" if sw.default_start_method() == "forkserver" else "forkserver"
    if other not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {other} start method on this platform")
    res = run_sweep(EXP, grid=GRID, overrides=SMALL, out=tmp_path / other, cache_dir=cache,
                    jobs=2, start_method=other, progress=False)
    assert res.meta["executor"]["start_method"] == other
    pd.testing.assert_frame_equal(_comparable(load_sweep(res.sweep_dir)),
                                  _comparable(load_sweep(pool_sweep.sweep_dir)))


def test_a_forkserver_worker_takes_the_parents_environment_of_its_pool_start(monkeypatch):
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver start method on this platform")
    name = "MMSIM_TEST_SET_AFTER_THE_SERVER"
    monkeypatch.delenv(name, raising=False)
    first = sw.LocalExecutor(1, "forkserver")
    first.start()  # the forkserver runs from here on (if no earlier pool started it)
    try:
        assert first.pool.submit(os.getenv, name).result() is None
    finally:
        first.close()
    monkeypatch.setenv(name, "set after the server started")
    ex = sw.LocalExecutor(1, "forkserver")
    ex.start()
    try:
        assert ex.pool.submit(os.getenv, name).result() == "set after the server started"
    finally:
        ex.close()


@pytest.mark.parametrize(("platform", "methods", "expected"), [
    ("linux", ["fork", "spawn", "forkserver"], "forkserver"),
    ("darwin", ["fork", "spawn", "forkserver"], "spawn"),
    ("win32", ["spawn"], "spawn"),
])
def test_default_start_method(monkeypatch, platform, methods, expected):
    monkeypatch.setattr(sw.sys, "platform", platform)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: methods)
    assert sw.default_start_method() == expected
    assert sw.LocalExecutor(2).start_method == expected
    assert sw.LocalExecutor(2, "spawn").start_method == "spawn"


def test_dask_local_cluster_gives_the_same_table(pool_sweep, tmp_path, cache):
    res = run_sweep(EXP, grid=GRID, overrides=SMALL, out=tmp_path / "dask", cache_dir=cache,
                    dask_local=2, progress=False)
    assert res.meta["executor"]["kind"] == "dask" and res.meta["executor"]["workers"] == 2
    pd.testing.assert_frame_equal(_comparable(load_sweep(res.sweep_dir)),
                                  _comparable(load_sweep(pool_sweep.sweep_dir)))


def test_load_sweep_pandas_and_polars(pool_sweep):
    d = pool_sweep.sweep_dir
    pdf = load_sweep(d)
    pldf = load_sweep(d / "sweep.parquet", as_polars=True)
    assert isinstance(pldf, pl.DataFrame)
    assert pldf.columns == list(pdf.columns)
    assert pldf["run_dir"].to_list() == pdf["run_dir"].tolist()
    assert Path(pdf["run_dir"][0]).is_absolute()
    assert pldf["pnl"].to_list()[0] == pytest.approx(pdf["pnl"][0])
    with pytest.raises(FileNotFoundError):
        load_sweep(d / "runs")


def test_invalid_point_is_recorded_and_the_sweep_goes_on(tmp_path, cache):
    res = run_sweep(EXP, grid=["latency.entry_nanos=1e5,-5"], overrides=SMALL,
                    out=tmp_path / "s", cache_dir=cache, jobs=0, progress=False)
    df = res.table
    assert df["status"].tolist() == ["ok", "failed"]
    assert "entry_nanos" in df["error"][1]
    assert res.counts == {"ok": 1, "failed": 1, "pending": 0, "cached": 0, "executed": 1}


# --- resuming ---------------------------------------------------------------------------------


def test_interrupted_sweep_resumes(tmp_path, cache, monkeypatch):
    out = tmp_path / "s"
    grid = ["policy.spread_bps=1,2,3", "latency.entry_nanos=1e5,5e5"]
    calls = []
    real = sw.run_one

    def flaky(*args):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third run
        return real(*args)

    monkeypatch.setattr(sw, "run_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(EXP, grid=grid, overrides=SMALL, out=out, cache_dir=cache, jobs=0,
                  progress=False)
    df = load_sweep(out)
    assert df["status"].tolist() == ["ok", "ok"] + ["pending"] * 4
    assert json.loads((out / "sweep.json").read_text())["status"] == "interrupted"
    done = {k: (out / "runs" / k / "manifest.json").stat().st_mtime_ns
            for k in df["run_key"][:2]}

    # half-written runs: a staging folder, a folder without manifest, an incomplete manifest
    k3, k4, k5 = df["run_key"][2], df["run_key"][3], df["run_key"][4]
    (out / "runs" / f"{k3}.partial").mkdir()
    (out / "runs" / f"{k3}.partial" / "fills.parquet").write_bytes(b"junk")
    (out / "runs" / k4).mkdir()
    (out / "runs" / k4 / "metrics.json").write_text("{}")
    shutil.copytree(out / "runs" / df["run_key"][0], out / "runs" / k5)
    man = json.loads((out / "runs" / k5 / "manifest.json").read_text())
    (out / "runs" / k5 / "manifest.json").write_text(json.dumps(dict(man, complete=False)))

    monkeypatch.setattr(sw, "run_one", real)
    calls.clear()
    res = run_sweep(EXP, grid=grid, overrides=SMALL, out=out, cache_dir=cache, jobs=0,
                    progress=False)
    assert res.counts == {"ok": 6, "failed": 0, "pending": 0, "cached": 2, "executed": 4}
    assert res.table["cached"].tolist() == [True, True] + [False] * 4
    for k, mtime in done.items():
        assert (out / "runs" / k / "manifest.json").stat().st_mtime_ns == mtime
    for k in (k3, k4, k5):
        assert load(out / "runs" / k).manifest["config_sha256"].startswith(k)
    assert not (out / "runs" / f"{k3}.partial").exists()
    # a third pass has nothing to do
    res = run_sweep(EXP, grid=grid, overrides=SMALL, out=out, cache_dir=cache, jobs=0,
                    progress=False)
    assert res.counts["cached"] == 6 and res.counts["executed"] == 0
    assert res.meta["executor"] == {"kind": "none"}


def test_max_runs_leaves_the_rest_pending(tmp_path, cache):
    out = tmp_path / "s"
    res = run_sweep(EXP, grid=["policy.spread_bps=1,2,3"], overrides=SMALL, out=out,
                    cache_dir=cache, jobs=0, max_runs=1, progress=False)
    assert res.table["status"].tolist() == ["ok", "pending", "pending"]
    assert res.meta["status"] == "partial"


# --- command line -----------------------------------------------------------------------------


def test_cli_sweep(tmp_path, cache, capsys):
    out = tmp_path / "s"
    args = ["sweep", str(EXP), "--grid", "policy.spread_bps=range(1,3)", "--set", SMALL[0],
            "--out", str(out), "--cache-dir", str(cache), "--jobs", "0", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "2 ok, 0 failed" in text and "best by pnl" in text and "per-run overhead" in text
    assert len(load_sweep(out)) == 2
    # a failed run makes the exit status 1; a malformed grid is an error (2)
    assert main([*args, "--grid", "policy.name=no_such_policy"]) == 1
    assert main([*args, "--grid", "policy.spread_bps"]) == 2


def test_make_sweep_passes_each_grid_word():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    cp = subprocess.run(
        ["make", "-n", "sweep", "EXP=x.yaml", "GRID=policy.k=range(1,3) a.b=1e6,2",
         "ARGS=--jobs 2"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "mmsim sweep x.yaml --grid 'policy.k=range(1,3)' --grid 'a.b=1e6,2' --jobs 2" in (
        cp.stdout)


def test_existing_dask_scheduler(pool_sweep, tmp_path, cache):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        res = run_sweep(EXP, grid=["policy.spread_bps=2,1", "latency.entry_nanos=1e5"],
                        overrides=SMALL, out=tmp_path / "s", cache_dir=cache,
                        scheduler=cluster.scheduler_address, progress=False)
    assert res.meta["executor"]["scheduler"].startswith("tcp://127.0.0.1:")
    ref = load_sweep(pool_sweep.sweep_dir).set_index("run_key")
    for _, row in res.table.iterrows():  # the same configs as two runs of the pool sweep
        assert row["status"] == "ok"
        assert row["pnl"] == ref.loc[row["run_key"], "pnl"]
        assert row["n_fills"] == ref.loc[row["run_key"], "n_fills"]


@pytest.mark.parametrize("cached", [False, True])
def test_first_run_in_parent_only_while_the_engine_is_not_compiled(
        tmp_path, cache, monkeypatch, cached):
    # a cold numba cache: the parent runs (and compiles) first so the workers do not all
    # compile at once; a warm one: every run goes to the workers at once
    import mmsim._jitcache

    monkeypatch.setattr(mmsim._jitcache, "engine_is_cached", lambda: cached)
    res = run_sweep(EXP, grid=["policy.spread_bps=1,2"], overrides=SMALL, out=tmp_path / "s",
                    cache_dir=cache, jobs=2, progress=False)
    assert res.counts["ok"] == 2
    assert res.meta["executor"]["first_run_in_parent"] is (not cached)


def test_a_named_axis_may_set_whole_sections():
    from mmsim.sweep import axes_from_mapping, expand_grid

    cases = [{"policy": {"name": "fixed_spread", "spread_bps": 2}},
             {"policy": {"name": "offset_ticks", "offset_ticks": "3"}}]
    (ax,) = axes_from_mapping({"policy_case": cases})
    assert ax.keys == ("policy",)
    pts = expand_grid([ax])
    assert pts[0] == {"policy": {"name": "fixed_spread", "spread_bps": 2}}
    assert pts[1] == {"policy": {"name": "offset_ticks", "offset_ticks": 3.0}}  # numeric text
    two = axes_from_mapping({"market": [{"data.kind": "synthetic", "seed": 1},
                                        {"data.kind": "synthetic", "seed": 2}]})
    assert expand_grid(two)[1] == {"data.kind": "synthetic", "seed": 2}
