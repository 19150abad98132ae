"""The shipped two-instrument experiment on the real files: Binance spot BTCUSDT quoted,
delta-hedged on the USD-M perpetual (``experiments/binance_spot_hedged_perp.yaml``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mmsim

EXP = Path(__file__).parents[1] / "experiments" / "binance_spot_hedged_perp.yaml"
SPOT, PERP = "BTCUSDT-SPOT", "BTCUSDT-PERP"


@pytest.fixture(scope="module")
def run(data_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shp")
    return mmsim.backtest(EXP, data_root=data_root, out=tmp / "run", cache_dir=tmp / "cache")


pytestmark = pytest.mark.realdata


def test_the_hedges_are_taker_fills_on_the_perpetual(run):
    f = run.fills
    assert run.instruments == [SPOT, PERP]
    spot, perp = f[f["instrument"] == SPOT], f[f["instrument"] == PERP]
    assert len(spot) > 100 and not spot["is_hedge"].any()
    assert len(perp) > 10 and perp["is_hedge"].all()
    assert (perp["liquidity"] == "taker").all()
    # the perpetual's taker fee (4.5 bps) on each hedge fill's notional
    np.testing.assert_allclose(perp["fee"], perp["price"] * perp["qty"] * 4.5e-4, rtol=1e-12)
    # hedges trade on the perpetual's grid (0.1 USDT, 0.001 BTC)
    np.testing.assert_allclose(perp["price"] / 0.1, np.round(perp["price"] / 0.1), atol=1e-6)
    np.testing.assert_allclose(perp["qty"] / 0.001, np.round(perp["qty"] / 0.001), atol=1e-6)
    m = run.metrics
    assert m[f"inst.{PERP}.n_taker_fills"] == len(perp)
    assert m["n_fills"] == len(spot)  # the top-level metrics are the quoted instrument's


def _position_at(fills, t):
    known = fills[fills["local_ts"] <= t]["position"]
    return float(known.iloc[-1]) if len(known) else 0.0


def test_net_delta_is_back_inside_the_threshold_after_each_hedge(run):
    """After each hedge completes, |Δ| ≤ threshold + that hedge's size + the spot fills
    reported while it was working (from its send time on: several fill reports at one local
    time start a decision at the first of them)."""
    threshold = run.config["hedger"]["threshold"]
    f, o = run.fills, run.orders
    spot, perp = f[f["instrument"] == SPOT], f[f["instrument"] == PERP]
    h = o[o["instrument"] == PERP]
    sent = h[h["event"] == "submit"].set_index("order_id")
    done = h[(h["event"] == "expire") | ((h["event"] == "fill") & (h["leaves_qty"] == 0))]
    assert len(done) == len(sent) > 10
    for _, row in done.iterrows():
        t = row["local_ts"]
        s = sent.loc[row["order_id"]]
        net = _position_at(spot, t) + _position_at(perp, t)  # linear, beta 1: BTC
        during = spot[(spot["local_ts"] >= s["local_ts"]) & (spot["local_ts"] <= t)]["qty"].sum()
        assert abs(net) <= threshold + s["qty"] + during + 1e-12, (row, net)
    # and at the end of the run the book is hedged
    e = run.equity
    last = e[e["ts"] == e["ts"].iloc[-1]].set_index("instrument")["position"]
    assert abs(last[SPOT] + last[PERP]) <= threshold + 1e-12


def test_the_book_metrics_and_basis_are_reported(run):
    m = run.metrics
    b = run.book_equity()
    assert np.isfinite(m["book_pnl"]) and m["book_pnl"] == pytest.approx(
        m[f"inst.{SPOT}.pnl"] + m[f"inst.{PERP}.pnl"], rel=1e-9)
    # the perp–spot basis of these minutes: the perpetual a few bps under spot
    assert -20 < m["basis_mean_bps"] < 20 and "basis_bps" in b.columns
    assert b["basis_bps"].notna().mean() > 0.9
