"""Round trips, win rate, profit factor, Calmar and percentage returns (issue 11), by hand and
against empyrical-reloaded where the two overlap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmsim.metrics.metrics import curve_risk
from mmsim.metrics.trades import (
    calmar,
    max_drawdown_frac,
    returns_series,
    round_trips,
    trade_stats,
)


def _fills(rows):
    return pd.DataFrame(rows, columns=["exch_ts", "side", "price", "qty", "fee"])


def test_fifo_round_trips_by_hand():
    # buy 2 @10, buy 1 @11, sell 2 @12 (closes the first lot), sell 2 @9 (closes the second
    # lot and opens a short of 1), buy 1 @8 (closes the short)
    f = _fills([(1, 1, 10.0, 2.0, 0.2), (2, 1, 11.0, 1.0, 0.1), (3, -1, 12.0, 2.0, 0.2),
                (4, -1, 9.0, 2.0, 0.4), (5, 1, 8.0, 1.0, 0.0)])
    rt = round_trips(f)
    assert list(rt.open_ts) == [1, 2, 4] and list(rt.close_ts) == [3, 4, 5]
    assert list(rt.side) == [1.0, 1.0, -1.0] and list(rt.qty) == [2.0, 1.0, 1.0]
    # fees pro rata: 0.1/unit on the first buy, 0.1/unit on both sells of 2, 0.2/unit on the
    # sell @9, 0 on the last buy
    assert rt.pnl == pytest.approx([2 * 2 - 0.2 - 0.2, (9 - 11) - 0.1 - 0.2, (9 - 8) - 0.2])
    s = trade_stats(f)
    assert s["n_round_trips"] == 3 and s["win_rate"] == pytest.approx(2 / 3)
    assert s["profit_factor"] == pytest.approx((3.6 + 0.8) / 2.3)


def test_inverse_round_trip_is_in_coin_and_open_lots_are_not_round_trips():
    f = _fills([(1, 1, 50_000.0, 3.0, 0.0), (2, -1, 60_000.0, 1.0, 0.0)])
    rt = round_trips(f, multiplier=100.0, contract="inverse")
    assert rt.qty.tolist() == [1.0]
    assert rt.pnl[0] == pytest.approx(100.0 * (1 / 50_000 - 1 / 60_000))
    assert trade_stats(_fills([]))["n_round_trips"] == 0
    assert math.isnan(trade_stats(_fills([(1, 1, 1.0, 1.0, 0.0)]))["win_rate"])
    assert trade_stats(_fills([(1, 1, 1.0, 1.0, 0.0), (2, -1, 2.0, 1.0, 0.0)]))[
        "profit_factor"] == math.inf
    with pytest.raises(ValueError, match="contract"):
        round_trips(f, contract="quanto")


def test_calmar_by_hand():
    # 10 of PnL over a quarter of a 365-day year, drawdown 4: annualised 40 / 4
    assert calmar(10.0, 4.0, 365 * 86400 / 4, 365 * 86400) == pytest.approx(10.0)
    assert math.isnan(calmar(1.0, 0.0, 10.0, 1.0))


def test_returns_series_is_equity_changes_over_capital():
    ts = np.array([0, 30, 60, 90, 120, 150], dtype=np.int64) * 10**9
    eq = np.array([0.0, 1.0, 2.0, 1.0, 3.0, 4.0])
    r = returns_series(ts, eq, 60.0, capital=100.0)
    assert isinstance(r.index, pd.DatetimeIndex) and str(r.index.tz) == "UTC"
    # buckets [0,60) -> last 1.0, [60,120) -> 1.0, [120,180) -> 4.0; from the first sample 0
    assert r.to_numpy() == pytest.approx([1.0 / 100, 0.0, 3.0 / 101])
    assert list(r.index.asi8) == [60 * 10**9, 120 * 10**9, 180 * 10**9]
    with pytest.raises(ValueError, match="capital"):
        returns_series(ts, eq, 60.0, capital=0)
    with pytest.raises(ValueError, match="below -capital"):
        returns_series(ts, -eq * 100, 60.0, capital=100.0)


def test_sharpe_sortino_and_drawdown_agree_with_empyrical():
    empyrical = pytest.importorskip("empyrical")
    rng = np.random.default_rng(11)
    r = rng.normal(0.0004, 0.01, 500)
    ppy = 252.0
    # mmsim's Sharpe and Sortino take equity changes on a clock (each bucket valued at its
    # last sample, the first change from the first sample): one sample per bucket, at its end
    ts = np.r_[0, np.arange(1, r.shape[0] + 1) * 60 - 1].astype(np.int64) * 10**9
    eq = np.r_[0.0, np.cumsum(r)]
    m = curve_risk(ts, eq, 60.0, ppy, ppy / 252)
    assert m["n_periods"] == r.shape[0]
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(r, annualization=ppy), rel=1e-12)
    assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(r, annualization=ppy),
                                         rel=1e-12)
    assert max_drawdown_frac(r) == pytest.approx(-empyrical.max_drawdown(r), rel=1e-12)


def test_compute_metrics_splits_funding_out_and_adds_round_trips_and_calmar():
    from mmsim.metrics.metrics import compute_metrics

    s = 10**9
    fills = pd.DataFrame({"exch_ts": [1 * s, 2 * s], "local_ts": [1 * s, 2 * s],
                          "order_id": [1, 2], "side": [1, -1], "price": [100.0, 101.0],
                          "qty": [1.0, 1.0], "fee": [0.01, 0.01], "liquidity": ["maker"] * 2,
                          "is_hedge": [False, False], "mid": [100.5, 100.5]})
    equity = pd.DataFrame({"ts": np.arange(0, 121, 60) * s, "mid": [100.5] * 3,
                           "position": [0.0, 0.0, 0.0], "cash": [0.0, 0.9, 0.7],
                           "equity": [0.0, 0.9, 0.7], "funding": [0.0, 0.0, 0.2]})
    m = compute_metrics(fills, equity, None, sharpe_clock_s=60.0)
    assert m["funding_paid"] == pytest.approx(0.2)
    assert m["spread_pnl"] + m["inventory_pnl"] - m["fees"] - m["funding_paid"] == \
        pytest.approx(m["pnl"])
    assert m["n_round_trips"] == 1 and m["win_rate"] == 1.0
    assert m["avg_round_trip_pnl"] == pytest.approx(1.0 - 0.02)
    year_s = m["periods_per_year"] * 60.0
    assert m["calmar"] == pytest.approx(0.7 * year_s / 120.0 / 0.2)
    assert "return_pct" not in m
    mc = compute_metrics(fills, equity, None, sharpe_clock_s=60.0, capital=1000.0)
    assert mc["return_pct"] == pytest.approx(0.7 / 1000.0)
    assert mc["calmar"] > 0


def test_the_calendar_comes_from_the_market():
    from mmsim.metrics.metrics import calendar_periods
    from mmsim.runner import market_calendar

    assert calendar_periods("24/7", 60.0) == (365 * 1440.0, 1440.0)
    assert calendar_periods("equities", 60.0) == (252 * 390.0, 390.0)
    assert calendar_periods("futures", 3600.0) == (252 * 23.0, 23.0)
    assert market_calendar("auto", "binance") == "24/7"
    assert market_calendar("auto", "lobster") == "equities"
    assert market_calendar("auto", "databento") == "futures"
    assert market_calendar("auto", "parquet", {"source": "tardis"}) == "24/7"
    assert market_calendar("futures", "binance") == "futures"
    with pytest.raises(ValueError, match="calendar must be one of"):
        calendar_periods("lunar", 60.0)


def test_run_returns_with_a_capital(tmp_path):
    import mmsim

    exp = mmsim.default_experiment()
    run = mmsim.backtest(exp, out=tmp_path / "run", cache_dir=tmp_path / "c",
                         overrides=["data.synthetic.n_events=40000", "metrics.capital=10000"])
    r = run.returns()
    assert isinstance(r.index, pd.DatetimeIndex) and r.name == "returns"
    assert run.metrics["return_pct"] == pytest.approx(run.metrics["pnl"] / 10000)
    assert float(np.prod(1 + r.to_numpy()) - 1) == pytest.approx(run.metrics["return_pct"])
    assert json_load(run.run_dir / "manifest.json")["metrics_calendar"] == "equities"
    plain = mmsim.backtest(exp, out=tmp_path / "run2", cache_dir=tmp_path / "c",
                           overrides=["data.synthetic.n_events=40000"])
    with pytest.raises(ValueError, match="capital"):
        plain.returns()
    assert plain.returns(capital=500.0).shape == r.shape
    assert "capital" not in plain.config["metrics"] and "calendar" not in plain.config["metrics"]


def json_load(p):
    import json

    return json.loads(p.read_text())
