"""A researcher's first hour (issue 11): the version, a typo'd command, a readable run."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmsim
from mmsim.cli import main
from mmsim.results import load

DEFAULT = Path(__file__).parents[1] / "experiments" / "default.yaml"


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"mmsim {mmsim.__version__}"


def test_a_typo_in_the_command_suggests_the_nearest_one(capsys):
    assert main(["backtset", "x.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("mmsim: error: unknown command 'backtset' (commands: ingest, backtest, "
                   "sweep, report, queue-score); did you mean 'backtest'?")
    assert main(["zzz"]) == 2
    assert "did you mean" not in capsys.readouterr().err


def test_a_run_prints_as_one_line(tmp_path):
    run = mmsim.backtest(DEFAULT, out=tmp_path / "run",
                         cache_dir=tmp_path / "cache")
    text = repr(run)
    assert "\n" not in text and len(text) < 300
    assert text.startswith(f"RunResult('{run.config['name']}', instruments=")
    assert f"fills={len(run.fills):,}" in text and "pnl=" in text and " UTC" in text
    assert repr(load(run.run_dir)) == text


def test_backtest_prints_a_grouped_summary_and_everything_with_verbose(tmp_path, capsys):
    args = ["backtest", str(DEFAULT), "--set", "data.synthetic.n_events=60000",
            "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    summary = text[text.index("summary:"):]
    for heading in ("PnL (quote ccy", "risk", "orders and fills", "inventory", "markouts"):
        assert f"\n  {heading}" in summary
    assert "fees paid" in summary and "spread capture" in summary
    assert "engine_" not in text and "metrics:" not in text  # diagnostics only with --verbose
    run = load(tmp_path / "a")
    n = run.metrics["n_periods"]
    assert f"{n} returns on a 1 min clock" in summary
    assert (f"rest on {n} returns (< 30)" in summary) == (n < 30)
    assert main([*args, "--out", str(tmp_path / "b"), "--verbose"]) == 0
    text = capsys.readouterr().out
    assert "metrics:" in text and "engine_events" in text and "summary:" in text


def test_summary_units_follow_the_contract():
    from mmsim.summary import format_summary

    m = {"pnl": 1.5, "n_periods": 400, "sharpe_clock_s": 60.0, "markout_1s": 0.2,
         "markout_100ms": 0.1, "realized_spread_1s": 0.3}
    lin = format_summary(m, {"symbol": "ES", "contract": "linear"})
    inv = format_summary(m, {"symbol": "BTCUSD_PERP", "contract": "inverse"})
    assert "PnL (quote ccy" in lin and "PnL (coin" in inv and "units of ES" in lin
    assert "note:" not in lin  # 400 returns
    # markouts in horizon order, whatever the key order
    assert lin.index("markout 100ms") < lin.index("markout 1s")
    assert "realized spread 0.3000" in lin
    assert "sharpe" in lin and "n/a" not in lin.split("sharpe")[0]


def test_load_with_datetimes_in_the_venue_time_zone(tmp_path):
    import json

    import pandas as pd

    run = mmsim.backtest(DEFAULT, out=tmp_path / "run", cache_dir=tmp_path / "cache",
                         overrides=["data.synthetic.n_events=40000"])
    raw = load(run.run_dir)
    nice = load(run.run_dir, datetimes=True)
    f, g = raw.fills, nice.fills
    assert isinstance(g["exch_ts"].dtype, pd.DatetimeTZDtype)
    assert (g["exch_ts"].dt.tz_convert("UTC").astype("int64") == f["exch_ts"]).all()
    assert list(g["side"].cat.categories) == ["buy", "sell"]
    assert ((g["side"] == "buy") == (f["side"] > 0)).all()
    for c in ("liquidity", "instrument"):
        assert g[c].dtype == "category" and (g[c].astype(str) == f[c]).all()
    assert nice.orders["event"].dtype == "category"
    assert repr(nice) == repr(raw)
    assert (nice.book_equity()["total"].to_numpy() == raw.book_equity()["total"].to_numpy()).all()
    # a NASDAQ run shows New York time: the same instants, another zone
    man = json.loads((run.run_dir / "manifest.json").read_text())
    man["data_kind"] = "lobster"
    (run.run_dir / "manifest.json").write_text(json.dumps(man))
    ny = load(run.run_dir, datetimes=True).equity["ts"]
    assert str(ny.dt.tz) == "America/New_York"
    assert (ny.dt.tz_convert("UTC") == nice.equity["ts"]).all()


def test_dir_lists_the_api_and_every_name_resolves():
    names = dir(mmsim)
    for n in ("backtest", "load", "load_sweep", "RunResult", "run_sweep", "Instrument",
              "compute_metrics", "register_policy", "results", "metrics"):
        assert n in names
    for n in mmsim.__all__:
        assert getattr(mmsim, n) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mmsim.nope  # noqa: B018


class _Bar:
    def __init__(self):
        self.updates, self.postfix = [], []

    def update(self, n):
        self.updates.append(n)

    def set_postfix_str(self, s, refresh=True):
        self.postfix.append(s)


def test_the_progress_bar_moves_in_slices_and_shows_the_simulated_time():
    import numpy as np

    from mmsim.dtypes import EVENT_DTYPE
    from mmsim.runner import _counted

    a = np.zeros(25, EVENT_DTYPE)
    a["exch_ts"] = np.arange(25) * 1_000_000_000 * 150  # 150 s apart
    b = np.zeros(5, EVENT_DTYPE)
    b["exch_ts"] = a["exch_ts"][-1] + 1
    bar = _Bar()
    out = list(_counted(iter([a, b[:0], b]), bar, 10))
    assert [len(x) for x in out] == [10, 10, 5, 0, 5]
    np.testing.assert_array_equal(np.concatenate(out), np.concatenate([a, b]))
    assert bar.updates == [10, 10, 5, 5]
    assert bar.postfix[:3] == ["sim 0:22:30", "sim 0:47:30", "sim 1:00:00"]
    inst = np.zeros(25, np.uint8)
    pairs = list(_counted(iter([(a, inst)]), _Bar(), 10))
    assert [(len(e), len(i)) for e, i in pairs] == [(10, 10), (10, 10), (5, 5)]


def test_a_run_with_the_progress_bar_gives_the_same_outputs(tmp_path, monkeypatch):
    import pandas as pd

    import mmsim.runner

    monkeypatch.setattr(mmsim.runner, "PROGRESS_MIN_STEP", 7_000)
    kw = {"overrides": ["data.synthetic.n_events=40000"], "cache_dir": tmp_path / "cache"}
    a = mmsim.backtest(DEFAULT, out=tmp_path / "a", progress=False, **kw)
    b = mmsim.backtest(DEFAULT, out=tmp_path / "b", progress=True, **kw)
    assert len(a.fills) > 0
    for x, y in ((a.fills, b.fills), (a.orders, b.orders), (a.equity, b.equity)):
        pd.testing.assert_frame_equal(x, y)
