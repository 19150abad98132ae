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
