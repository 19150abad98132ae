"""Tests of mmsim.metrics: hand-computed small cases, edge cases, identities."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mmsim.metrics import compute_metrics, markout_table
from mmsim.metrics.metrics import horizon_label

S = 1_000_000_000
T0 = 1_704_205_800 * S

FILL_COLUMNS = [
    "exch_ts", "local_ts", "order_id", "side", "price", "qty", "fee", "liquidity",
    "is_hedge", "mid", "position", "cash", "queue_ahead",
]  # fmt: skip
ORDER_COLUMNS = [
    "local_ts", "exch_ts", "order_id", "event", "side", "price", "qty", "leaves_qty",
    "fill_qty", "tif", "reason", "is_hedge",
]  # fmt: skip


def _fills(rows: list[tuple]) -> pd.DataFrame:
    """rows: (t_s, order_id, side, price, qty, fee, liquidity, is_hedge, mid)."""
    recs = []
    pos = 0.0
    cash = 0.0
    for t, oid, side, price, qty, fee, liq, hedge, mid in rows:
        pos += side * qty
        cash -= side * price * qty + fee
        ts = T0 + int(round(t * S))
        recs.append((ts, ts, oid, side, price, qty, fee, liq, hedge, mid, pos, cash, 0.0))
    return pd.DataFrame(recs, columns=FILL_COLUMNS)


def _equity(mids: list[float], fills: pd.DataFrame, step_s: float = 1.0) -> pd.DataFrame:
    """Equity samples at T0 + k·step_s, marking the position/cash after fills at or before."""
    ts = T0 + (np.arange(len(mids)) * step_s * S).astype(np.int64)
    pos = np.zeros(len(mids))
    cash = np.zeros(len(mids))
    fees = np.zeros(len(mids))
    traded = np.zeros(len(mids))
    nf = np.zeros(len(mids), dtype=np.int64)
    for i, t in enumerate(ts):
        done = fills[fills["exch_ts"] <= t]
        if len(done):
            pos[i] = done["position"].iloc[-1]
            cash[i] = done["cash"].iloc[-1]
            fees[i] = done["fee"].sum()
            traded[i] = done["qty"].sum()
            nf[i] = len(done)
    mid = np.asarray(mids, dtype=float)
    return pd.DataFrame(
        {
            "ts": ts, "mid": mid, "position": pos, "cash": cash, "equity": cash + pos * mid,
            "fees": fees, "traded_qty": traded, "n_fills": nf,
        }
    )  # fmt: skip


def _orders(rows: list[tuple]) -> pd.DataFrame:
    """rows: (t_s, order_id, event, side, price, qty, tif, is_hedge)."""
    recs = []
    for t, oid, event, side, price, qty, tif, hedge in rows:
        ts = T0 + int(round(t * S))
        recs.append((ts, ts, oid, event, side, price, qty, qty, 0.0, tif, "", hedge))
    return pd.DataFrame(recs, columns=ORDER_COLUMNS)


MIDS = [100.0, 100.0, 101.0, 101.0, 102.0, 101.0, 100.0, 100.0, 101.0, 102.0]


@pytest.fixture()
def case():
    fills = _fills(
        [
            (0.5, 1, +1, 99.5, 2.0, -0.01, "maker", False, 100.0),
            (2.5, 2, -1, 101.5, 1.0, -0.005, "maker", False, 101.0),
            (5.5, 3, -1, 100.5, 1.0, 0.02, "taker", True, 101.0),
        ]
    )
    equity = _equity(MIDS, fills)
    orders = _orders(
        [
            (0.0, 1, "submit", 1, 99.5, 2.0, "post_only", False),
            (0.0, 1, "ack", 1, 99.5, 2.0, "post_only", False),
            (0.5, 1, "fill", 1, 99.5, 2.0, "post_only", False),
            (0.1, 2, "submit", -1, 101.5, 1.0, "post_only", False),
            (0.2, 2, "modify", -1, 101.5, 2.0, "post_only", False),
            (0.3, 2, "modify_ack", -1, 101.5, 2.0, "post_only", False),
            (2.5, 2, "fill", -1, 101.5, 2.0, "post_only", False),
            (5.5, 3, "submit", -1, 100.0, 1.0, "ioc", True),
            (5.5, 3, "fill", -1, 100.5, 1.0, "ioc", True),
            (1.0, 4, "submit", 1, 98.0, 1.0, "post_only", False),
            (2.0, 4, "cancel", 1, 98.0, 1.0, "post_only", False),
            (2.1, 4, "cancel_ack", 1, 98.0, 1.0, "post_only", False),
            (3.0, 5, "submit", 1, 102.0, 1.0, "post_only", False),
            (3.0, 5, "reject", 1, 102.0, 1.0, "post_only", False),
        ]
    )
    return fills, equity, orders


def test_equity_fixture_by_hand(case):
    _, equity, _ = case
    expected = [0.0, 1.01, 3.01, 3.515, 4.515, 3.515, 2.995, 2.995, 2.995, 2.995]
    np.testing.assert_allclose(equity["equity"], expected, atol=1e-12)


def test_pnl_split_by_hand(case):
    m = compute_metrics(*case)
    assert m["pnl"] == pytest.approx(2.995)
    assert m["fees"] == pytest.approx(0.005)
    assert m["pnl_before_fees"] == pytest.approx(3.0)
    # 2*(100-99.5) + -(101-101.5) + -(101-100.5) = 1 + 0.5 - 0.5
    assert m["spread_pnl"] == pytest.approx(1.0)
    # bought 2 at mid 100, sold 1 at mid 101 twice
    assert m["inventory_pnl"] == pytest.approx(2.0)


def test_risk_by_hand(case):
    m = compute_metrics(*case, sharpe_clock_s=2.0, periods_per_year=100.0, periods_per_day=4.0)
    # buckets [0,2) [2,4) [4,6) [6,8) [8,10) valued at samples 1, 3, 5, 7, 9; first return
    # measured from sample 0 (equity 0)
    r = np.array([1.01, 2.505, 0.0, -0.52, 0.0])
    mean, std = r.mean(), r.std(ddof=1)
    assert mean == pytest.approx(0.599)
    assert std == pytest.approx(math.sqrt(5.77152 / 4))
    assert m["n_periods"] == 5
    assert m["sharpe"] == pytest.approx(mean / std * 10.0)
    assert m["sharpe_daily"] == pytest.approx(mean / std * 2.0)
    downside = math.sqrt((0.52**2) / 5)
    assert m["sortino"] == pytest.approx(mean / downside * 10.0)
    assert m["max_drawdown"] == pytest.approx(4.515 - 2.995)
    assert m["return_over_max_drawdown"] == pytest.approx(2.995 / 1.52)
    assert m["duration_s"] == pytest.approx(9.0)


def test_default_annualisation(case):
    m = compute_metrics(*case)
    assert m["sharpe_clock_s"] == 60.0
    assert m["periods_per_year"] == pytest.approx(252 * 6.5 * 3600 / 60)
    assert m["periods_per_day"] == pytest.approx(390.0)
    crypto = compute_metrics(*case, sharpe_clock_s=1.0, periods_per_year=365 * 86400.0)
    assert crypto["periods_per_day"] == pytest.approx(86400.0)
    assert crypto["sharpe_daily"] == pytest.approx(crypto["sharpe"] / math.sqrt(365))


def test_orders_and_inventory_by_hand(case):
    m = compute_metrics(*case, max_position=2.0)
    assert m["n_orders"] == 5
    assert m["n_quotes"] == 4
    assert m["n_rejects"] == 1
    assert m["n_cancels"] == 1
    assert m["n_fills"] == 3
    assert m["n_maker_fills"] == 2
    assert m["n_taker_fills"] == 1
    assert m["n_hedge_fills"] == 1
    assert m["traded_qty"] == 4.0
    assert m["maker_volume"] == pytest.approx(99.5 * 2 + 101.5)
    assert m["taker_volume"] == pytest.approx(100.5)
    assert m["fill_rate_count"] == pytest.approx(2 / 4)  # orders 1, 2 of quotes 1, 2, 4, 5
    # quoted 2 + 1 + 1 + 1 plus the modify_ack increase 1 -> 6; filled 3 (non-hedge)
    assert m["fill_rate_qty"] == pytest.approx(3 / 6)
    # positions over the samples: 0 2 2 1 1 1 0 0 0 0
    assert m["mean_abs_position"] == pytest.approx(0.7)
    assert m["max_abs_position"] == 2.0
    assert m["final_position"] == 0.0
    assert m["inventory_turnover"] == pytest.approx(4 / 0.7)
    assert m["time_at_limit_frac"] == pytest.approx(0.2)


def test_spreads_and_markouts_by_hand(case):
    fills, equity, orders = case
    m = compute_metrics(fills, equity, orders, markout_horizons_s=(0, 1, 3, 4))
    # effective 2 s (mid - p): 1, 1, -1 with qty 2, 1, 1
    assert m["effective_spread"] == pytest.approx(0.5)
    assert m["effective_spread_maker"] == pytest.approx(1.0)
    assert m["markout_0s"] == pytest.approx(0.25)  # h = 0 uses the fill's mid
    # h = 1: mids 100 (sample 1), 101 (sample 3), 100 (sample 6): 0.5 each
    assert m["markout_1s"] == pytest.approx(0.5)
    assert m["markout_1s_maker"] == pytest.approx(0.5)
    assert m["realized_spread_1s"] == pytest.approx(1.0)
    assert m["price_impact_1s"] == pytest.approx((0 * 2 + 0 * 1 + (-1 - 1) * 1) / 4)
    # h = 3: mids 101, 101, 101: 1.5, 0.5, -0.5
    assert m["markout_3s"] == pytest.approx((3.0 + 0.5 - 0.5) / 4)
    # h = 4: the third fill (t + h = 9.5 s) is past the last sample (9 s): excluded
    assert m["markout_4s"] == pytest.approx((2 * 2.5 + 1.5) / 3)
    assert "realized_spread_0s" not in m
    table = markout_table(fills, equity, horizons_s=(0, 1, 3, 4))
    assert list(table.columns) == ["horizon_s", "markout", "n"]
    assert table["n"].tolist() == [3, 3, 3, 2]
    np.testing.assert_allclose(table["markout"], [0.25, 0.5, 0.75, 6.5 / 3])


def test_short_horizon_uses_fill_mid_until_a_later_sample(case):
    fills, equity, _ = case
    # 0.2 s after a fill at x.5 s, the last sample (x s) predates the fill: the fill's mid
    t = markout_table(fills, equity, horizons_s=(0.2, 0.6))
    np.testing.assert_allclose(t["markout"], [0.25, 0.5])


def test_json_able(case):
    m = compute_metrics(*case)
    text = json.dumps(m)
    assert json.loads(text).keys() == m.keys()
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in m.values())


def test_no_fills():
    fills = pd.DataFrame(columns=FILL_COLUMNS)
    equity = _equity([100.0] * 5, _fills([]))
    orders = pd.DataFrame(columns=ORDER_COLUMNS)
    m = compute_metrics(fills, equity, orders, max_position=5.0)
    assert m["pnl"] == 0.0
    assert m["fees"] == 0.0
    assert m["spread_pnl"] == 0.0
    assert m["inventory_pnl"] == 0.0
    assert m["n_fills"] == 0
    assert m["traded_qty"] == 0.0
    assert m["max_drawdown"] == 0.0
    for key in (
        "sharpe", "sortino", "return_over_max_drawdown", "fill_rate_count", "fill_rate_qty",
        "inventory_turnover", "effective_spread", "markout_0s", "markout_300s",
        "realized_spread_1s", "price_impact_1s",
    ):  # fmt: skip
        assert math.isnan(m[key]), key
    assert m["time_at_limit_frac"] == 0.0
    json.dumps(m)
    t = markout_table(fills, equity)
    assert len(t) == 6 and (t["n"] == 0).all()


def test_none_inputs():
    m = compute_metrics(None, None, None)
    assert math.isnan(m["pnl"]) and m["n_fills"] == 0 and math.isnan(m["sharpe"])


def test_nan_mid_fill_contributes_no_spread(case):
    fills, equity, orders = case
    fills = fills.copy()
    fills.loc[2, "mid"] = np.nan
    m = compute_metrics(fills, equity, orders)
    assert m["spread_pnl"] == pytest.approx(1.5)
    assert m["effective_spread"] == pytest.approx((2 + 1) / 3)


def test_pnl_identity_random():
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(0, 30))
        ts = np.sort(rng.uniform(0, 100, n))
        rows = []
        for t in ts:
            side = int(rng.choice([-1, 1]))
            mid = 100 + rng.normal()
            mid = np.nan if rng.random() < 0.1 else mid
            price = (100 if np.isnan(mid) else mid) - side * rng.uniform(-0.05, 0.1)
            liq = "maker" if rng.random() < 0.7 else "taker"
            rows.append((t, len(rows) + 1, side, price, float(rng.integers(1, 5)),
                         rng.normal(0, 0.01), liq, bool(rng.random() < 0.2), mid))  # fmt: skip
        fills = _fills(rows)
        mids = list(100 + np.cumsum(rng.normal(0, 0.1, 101)))
        equity = _equity(mids, fills)
        m = compute_metrics(fills, equity, None, multiplier=1.0)
        assert m["spread_pnl"] + m["inventory_pnl"] - m["fees"] == pytest.approx(m["pnl"], abs=1e-9)
        # pnl equals the equity change, which equals cash + q*mid at the end
        assert m["pnl"] == pytest.approx(equity["equity"].iloc[-1], abs=1e-9)


def test_multiplier_scales_money():
    fills = _fills([(0.5, 1, +1, 99.5, 2.0, 0.0, "maker", False, 100.0)])
    equity = _equity([100.0, 100.0], fills)
    m1 = compute_metrics(fills, equity, None, multiplier=1.0)
    m10 = compute_metrics(fills, equity, None, multiplier=10.0)
    assert m10["spread_pnl"] == pytest.approx(10 * m1["spread_pnl"])
    assert m10["maker_volume"] == pytest.approx(10 * m1["maker_volume"])
    assert m10["effective_spread"] == pytest.approx(m1["effective_spread"])  # price units


def test_bad_inputs():
    with pytest.raises(ValueError, match="sharpe_clock_s"):
        compute_metrics(None, None, None, sharpe_clock_s=0.0)
    eq = _equity([1.0, 2.0, 3.0], _fills([]))
    eq.loc[2, "ts"] = eq.loc[0, "ts"]
    with pytest.raises(ValueError, match="row 2"):
        compute_metrics(None, eq, None)
    with pytest.raises(KeyError, match="equity"):
        compute_metrics(None, eq.drop(columns="equity"), None)


@pytest.mark.parametrize(
    ("h", "label"),
    [
        (0, "0s"),
        (0.1, "100ms"),
        (1, "1s"),
        (10, "10s"),
        (60.0, "60s"),
        (300, "300s"),
        (0.05, "50ms"),
        (0.00005, "50us"),
        (1.5, "1500ms"),
    ],  # fmt: skip
)
def test_horizon_label(h, label):
    assert horizon_label(h) == label


def test_integer_codes_accepted(case):
    from mmsim.enums import Liquidity, OrderEvent

    fills, equity, orders = case
    fills = fills.assign(liquidity=fills["liquidity"].map({"maker": Liquidity.MAKER,
                                                           "taker": Liquidity.TAKER}))  # fmt: skip
    codes = {name.lower(): code for name, code in OrderEvent._asdict().items()}
    orders = orders.assign(event=orders["event"].map(codes))
    a = compute_metrics(*case)
    b = compute_metrics(fills, equity, orders)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], nan_ok=True), k
