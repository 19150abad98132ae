"""Engine numbers that must not contradict themselves (issue "Numbers a user can trust", §1, §5).

Timeline as in test_engine_queue.py: decisions every 100 ms (first at 100 ms), 1 ms entry and
1 ms response latency.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_harness import Harness

from mmsim.enums import EventKind as K
from mmsim.enums import Liquidity, OrderEvent, Reject
from mmsim.metrics import compute_metrics
from mmsim.results import equity_table, fills_table, orders_table

BOOK = [  # t_ms, kind, side, price, qty, id
    (0, K.ADD, 1, 9999, 100, 1),
    (0, K.ADD, -1, 10005, 100, 2),
]


def _bid(qty, px=10000):
    return {"bid_tick": px, "bid_qty": qty}


def _positions(h):
    return [int(p) for p in h.all_fills()["position"]]


def test_position_limit_counts_a_modify_in_flight():
    """Limit 15. A 10-lot bid is raised to 15 by a modify sent at 200 ms; 8 lots fill at
    200.5 ms while the modify travels. The modify carries the new total (15), so on arrival
    only 7 lots stay open: the position can reach 15, never 23."""
    h = Harness(params=_bid(10), risk={"max_position_qty": 15})
    h.feed(BOOK + [(150, K.ADD, -1, 10006, 1, 20)])
    h.set_param("bid_qty", 15)
    h.feed([
        (200.5, K.ADD, -1, 10000, 8, 30),  # a seller crosses our bid: 8 of 10 fill
        (200.7, K.DELETE, -1, 10000, 8, 30),
        (250, K.ADD, -1, 10000, 100, 31),  # a large seller: fills whatever is open
        (250.5, K.DELETE, -1, 10000, 100, 31),
        (400, K.ADD, -1, 10000, 100, 32),  # nothing may be open any more
    ], final=True)
    assert _positions(h) == [8, 15]
    acks = h.all_orders()
    acks = acks[acks["event"] == OrderEvent.MODIFY_ACK]
    assert list(acks["qty"]) == [15] and list(acks["leaves_qty"]) == [7]


def test_position_limit_counts_open_orders_at_other_prices():
    """Limit 10 with a 10-lot bid resting: when the policy moves its bid in
    cancel-and-replace mode, the replacement must wait for the cancel (the old order may still
    fill), so the two can never fill 20 lots together."""
    h = Harness(params=_bid(10, 9998), risk={"max_position_qty": 10},
                engine={"replace": "cancel_replace"})
    h.feed(BOOK + [(150, K.ADD, -1, 10006, 1, 20)])
    h.set_param("bid_tick", 10000)  # at 200 ms: cancel 9998, and no room for a new bid yet
    h.feed([
        (200.5, K.ADD, -1, 9998, 100, 30),  # sells through 9998 before the cancel lands
        (200.6, K.DELETE, -1, 9998, 100, 30),
        (250, K.ADD, -1, 10000, 100, 31),
        (250.5, K.DELETE, -1, 10000, 100, 31),
    ], final=True)
    pos = _positions(h)
    assert max(pos) <= 10
    assert pos[-1] == 10


def test_hedge_orders_obey_the_position_limit_too():
    # a hedger asked to buy 50 with a 10-lot limit and a flat book: at most 10 go out
    h = Harness(hedger="threshold", hedger_params={"threshold": 1.0, "ratio": 1.0},
                risk={"max_position_qty": 10, "target_position_qty": 50.0},
                params={"bid_qty": 0, "ask_qty": 0})
    h.feed(BOOK + [(150, K.ADD, -1, 10006, 1, 20), (300, K.ADD, -1, 10006, 1, 21)],
           final=True)
    pos = _positions(h)
    assert pos and max(pos) <= 10


def test_final_equity_sample_holds_the_last_fill():
    # the only fill happens at the last event (250 ms), after the 200 ms sample
    h = Harness(params=_bid(10))
    h.feed(BOOK + [(250, K.ADD, -1, 10000, 4, 30)], final=True)
    eq = np.concatenate(h.equity)
    f = h.all_fills()
    assert list(f["qty"]) == [4]
    assert eq["ts"][-1] == f["exch_ts"][-1]
    assert eq["position"][-1] == 4
    assert eq["cash"][-1] == pytest.approx(f["cash"][-1])
    # no duplicate closing sample when the last event falls on the clock
    h2 = Harness(params=_bid(10))
    h2.feed(BOOK + [(300, K.ADD, -1, 10006, 1, 20)], final=True)
    ts = np.concatenate(h2.equity)["ts"]
    assert len(np.unique(ts)) == len(ts)


def test_final_position_and_pnl_agree_with_the_fills():
    h = Harness(params=_bid(10))
    h.feed(BOOK + [(150, K.ADD, -1, 10000, 6, 30), (150.5, K.DELETE, -1, 10000, 6, 30),
                   (250, K.ADD, -1, 10000, 4, 31)], final=True)
    inst = h.inst
    fills = fills_table(h.all_fills(), inst).to_pandas()
    eqr = np.concatenate(h.equity)
    equity = equity_table(eqr, inst).to_pandas()
    orders = orders_table(h.all_orders(), inst).to_pandas()
    m = compute_metrics(fills, equity, orders)
    signed = float((fills["side"] * fills["qty"]).sum())
    assert m["final_position"] == signed == 10.0
    last_mid = equity["mid"].dropna().iloc[-1]
    pnl = float((-fills["side"] * fills["qty"] * fills["price"] - fills["fee"]).sum()
                + signed * last_mid)
    assert m["pnl"] == pytest.approx(pnl)


def test_whole_order_fills_fill_the_order_on_any_execution():
    rows = BOOK + [
        (120, K.DELETE, 1, 9999, 100, 1),
        (130, K.ADD, 1, 9999, 100, 5),  # behind us
        (140, K.EXECUTE, 1, 9999, 4, 5),
    ]
    part = Harness(params=_bid(10, 9999))
    part.feed(rows, final=True)
    assert list(part.all_fills()["qty"]) == [4]
    whole = Harness(params=_bid(10, 9999), matching={"partial_fills": False})
    whole.feed(rows, final=True)
    f = whole.all_fills()
    assert list(f["qty"]) == [10] and f[0]["liquidity"] == Liquidity.MAKER
    assert f[0]["price_tick"] == 9999


def test_whole_order_fills_on_l2_trade_beyond_the_queue():
    rows = [
        (0, K.LEVEL_SET, 1, 9999, 5, 0),
        (0, K.LEVEL_SET, -1, 10001, 5, 0),
        (150, K.TRADE, 1, 9999, 7, 0),  # 5 ahead, then 2 reach our 10-lot bid
    ]
    part = Harness(params=_bid(10, 9999), queue_model="risk_averse")
    part.feed(rows, final=True)
    assert list(part.all_fills()["qty"]) == [2]
    whole = Harness(params=_bid(10, 9999), queue_model="risk_averse",
                    matching={"partial_fills": False})
    whole.feed(rows, final=True)
    assert list(whole.all_fills()["qty"]) == [10]


def test_modify_below_filled_quantity_cancels_the_order():
    # a 10-lot bid is cut to 2 at 200 ms while 8 lots fill in flight: the new total (2) is
    # not above the 8 filled, so the modify cancels the order (Binance USD-M's rule)
    h = Harness(params=_bid(10))
    h.feed(BOOK + [(150, K.ADD, -1, 10006, 1, 20)])
    h.set_param("bid_qty", 2)
    h.feed([(200.5, K.ADD, -1, 10000, 8, 30), (200.7, K.DELETE, -1, 10000, 8, 30),
            (250, K.ADD, -1, 10000, 100, 31)], final=True)
    o = h.all_orders()
    first = o[o["order_id"] == 1]
    ev = list(first["event"])
    assert OrderEvent.MODIFY_REJECT not in ev
    cancel = first[first["event"] == OrderEvent.CANCEL_ACK]
    assert len(cancel) == 1 and cancel[0]["reason"] == Reject.FILLED_BEYOND_NEW_QTY
    f = h.all_fills()
    assert list(f[f["order_id"] == 1]["qty"]) == [8]  # nothing more fills on it at 250 ms


def _orders(rows):
    cols = ["order_id", "event", "qty", "is_hedge", "reason"]
    return pd.DataFrame(rows, columns=cols)


def test_rejects_have_one_definition_split_by_request_and_reason():
    orders = _orders([
        (1, "submit", 1.0, False, "none"),
        (1, "reject", 1.0, False, "post_only_would_cross"),
        (2, "submit", 1.0, False, "none"),
        (2, "ack", 1.0, False, "none"),
        (2, "modify", 1.0, False, "none"),
        (2, "modify_reject", 1.0, False, "unknown_order"),
        (2, "cancel", 1.0, False, "none"),
        (2, "cancel_reject", 1.0, False, "unknown_order"),
    ])
    m = compute_metrics(None, None, orders)
    assert m["n_rejects"] == 3
    assert (m["n_rejects_submit"], m["n_rejects_modify"], m["n_rejects_cancel"]) == (1, 1, 1)
    assert m["n_rejects_post_only_would_cross"] == 1
    assert m["n_rejects_unknown_order"] == 2
    assert m["n_rejects_halted"] == 0
    assert "engine_rejects" not in m and "n_cancel_rejects" not in m


def test_inverse_contract_metrics_are_in_coin():
    # BTCUSD_PERP-like: 100 USD contracts, PnL in BTC. Buy 10 at 50,000, sell 10 at 50,010,
    # mid 50,005 at both fills and at the end.
    mult = 100.0
    fills = pd.DataFrame({
        "exch_ts": [1_000_000_000, 2_000_000_000], "side": [1, -1],
        "price": [50_000.0, 50_010.0], "qty": [10.0, 10.0], "fee": [0.0, 0.0],
        "liquidity": ["maker", "maker"], "is_hedge": [False, False],
        "mid": [50_005.0, 50_005.0], "order_id": [1, 2],
    })
    cash1 = 10 * mult / 50_000.0
    cash2 = cash1 - 10 * mult / 50_010.0
    equity = pd.DataFrame({
        "ts": [0, 1_000_000_000, 2_000_000_000], "mid": [50_005.0] * 3,
        "position": [0.0, 10.0, 0.0], "cash": [0.0, cash1, cash2],
        "equity": [0.0, cash1 - 10 * mult / 50_005.0, cash2],
    })
    m = compute_metrics(fills, equity, None, multiplier=mult, contract="inverse")
    pnl = 10 * mult * (1 / 50_000.0 - 1 / 50_010.0)
    assert m["pnl"] == pytest.approx(pnl)
    spread = 10 * mult * (1 / 50_000 - 1 / 50_005) - 10 * mult * (1 / 50_010 - 1 / 50_005)
    assert m["spread_pnl"] == pytest.approx(spread)
    assert m["spread_pnl"] + m["inventory_pnl"] - m["fees"] == pytest.approx(m["pnl"])
    assert abs(m["inventory_pnl"]) < 1e-9
    assert m["maker_volume"] == pytest.approx(10 * mult / 50_000 + 10 * mult / 50_010)
    with pytest.raises(ValueError, match="contract"):
        compute_metrics(fills, equity, None, contract="quanto")


def test_inverse_run_metrics_match_its_fills(tmp_path):
    import mmsim

    run = mmsim.backtest(
        {"name": "inv", "data": {"kind": "synthetic", "synthetic": {"n_events": 100_000}},
         "instrument": {"contract": "inverse", "multiplier": 10.0, "maker_fee_bps": -0.2},
         "latency": {"feed_nanos": 100_000, "entry_nanos": 200_000, "response_nanos": 200_000},
         "policy": {"name": "fixed_spread", "spread_bps": 2.0, "order_qty": 5}},
        out=tmp_path / "run", cache_dir=tmp_path / "cache")
    f = run.fills
    assert len(f) > 0
    mult = 10.0
    edge = f["side"] * f["qty"] * mult * (1 / f["price"] - 1 / f["mid"])
    assert run.metrics["spread_pnl"] == pytest.approx(float(edge.sum()))
    notional = (f["qty"] * mult / f["price"])[f["liquidity"] == "maker"].sum()
    assert run.metrics["maker_volume"] == pytest.approx(float(notional))
    m = run.metrics
    assert m["spread_pnl"] + m["inventory_pnl"] - m["fees"] == pytest.approx(m["pnl"])
    # coin-sized: the PnL of a few hundred 10-USD contracts at ~100 USD is far below 1e3
    assert abs(m["spread_pnl"]) < 1e3 and abs(m["inventory_pnl"]) < 1e3


def test_instrument_grid_off_the_data_is_an_error_and_on_it_rescales(tmp_path):
    import mmsim
    from mmsim.data.errors import DataError

    base = {"name": "grid", "data": {"kind": "synthetic", "synthetic": {"n_events": 20_000}},
            "latency": {"feed_nanos": 100_000},
            "policy": {"name": "fixed_spread", "spread_bps": 2.0, "order_qty": 5}}
    with pytest.raises(DataError, match=r"row \d+, field 'price'.*tick grid 0.02"):
        mmsim.backtest({**base, "instrument": {"tick_size": 0.02}}, out=tmp_path / "a",
                       cache_dir=tmp_path / "cache")
    assert not (tmp_path / "a").exists()
    # sizes too: the synthetic flow has odd share counts, so 2-share lots do not fit
    with pytest.raises(DataError, match=r"row \d+, field 'qty'.*lot grid 2"):
        mmsim.backtest({**base, "instrument": {"lot_size": 2.0}}, out=tmp_path / "a",
                       cache_dir=tmp_path / "cache")
    ref = mmsim.backtest(base, out=tmp_path / "b", cache_dir=tmp_path / "cache")
    fine = mmsim.backtest({**base, "instrument": {"tick_size": 0.005}}, out=tmp_path / "c",
                          cache_dir=tmp_path / "cache")
    # a finer instrument grid holds the same market: the data is rescaled exactly, so the
    # replayed mids are the same prices (the quotes may now use half-cent ticks)
    pd.testing.assert_series_equal(ref.equity["mid"], fine.equity["mid"])
    assert len(fine.fills) > 0


def test_halt_pauses_quoting_and_cancels_resting_quotes():
    # a STATUS halt (an exchange halt, or a Binance feed gap being resynchronised) at 150 ms,
    # trading again at 350 ms: the 200 ms decision cancels our bid, the 400 ms one re-quotes
    h = Harness(params=_bid(10))
    h.feed(BOOK + [(150, K.STATUS, 0, 0, 0, 0, -1.0), (350, K.STATUS, 0, 0, 0, 0, 1.0),
                   (450, K.ADD, -1, 10006, 1, 20)], final=True)
    o = h.all_orders()
    t_ms = (o["local_ts"] - 1_700_000_000_000_000_000) // 1_000_000
    sent = [(int(t), int(e)) for t, e in zip(t_ms, o["event"], strict=True)
            if e in (OrderEvent.SUBMIT, OrderEvent.CANCEL)]
    assert sent == [(100, OrderEvent.SUBMIT), (200, OrderEvent.CANCEL), (400, OrderEvent.SUBMIT)]
