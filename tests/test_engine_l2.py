"""L2 (market-by-price) queue models, funding, inverse contracts and latency models,
against numbers worked by hand (MODELS.md §6–§8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from engine_harness import MS, T0, Harness

from mmsim.book.nb import L_BASE
from mmsim.engine import nb as enb
from mmsim.enums import EventKind as K
from mmsim.enums import OrderEvent
from mmsim.instruments import Instrument

BOOK = [(0, K.LEVEL_SET, 1, 9999, 100, 0), (0, K.LEVEL_SET, -1, 10005, 100, 0)]
BID = {"bid_tick": 9999, "bid_qty": 10}


def _front(h):
    slot = np.flatnonzero(h.engine.ours["order_id"] == 1)[0]
    return h.engine.ours["queue_ahead"][slot]


def _run_sequence(model):
    """Our bid (10 lots) joins 100 lots at 9999 at 101 ms, then:
    150 ms trade 30 at our price       → front 100 − 30 = 70 (all models)
    151 ms level 100 → 70              → explained by the trade: front stays 70
    155 ms level 70 → 90               → 20 join behind us: back = 20
    160 ms level 90 → 70 (20 cancelled, not explained by trades):
        risk-averse  front = min(70, 70) = 70
        power n=2    p = 20²/(20² + 70²) = 400/5300; front = 70 − (1 − p)·20 = 51.5094
        log          p = ln 21/(ln 21 + ln 71) = 0.416646; front = 70 − (1 − p)·20 = 58.3329
    170 ms trade 60 at our price: we fill 60 − round(front), if positive."""
    h = Harness(params=BID, queue_model=model, queue={"power_n": 2.0})
    h.feed(BOOK + [(150, K.TRADE, 1, 9999, 30, 0), (151, K.LEVEL_SET, 1, 9999, 70, 0)])
    fronts = [_front(h)]
    h.feed([(155, K.LEVEL_SET, 1, 9999, 90, 0)])
    fronts.append(_front(h))
    h.feed([(160, K.LEVEL_SET, 1, 9999, 70, 0)])
    fronts.append(_front(h))
    h.feed([(170, K.TRADE, 1, 9999, 60, 0), (180, K.LEVEL_SET, -1, 10006, 1, 0)], final=True)
    return fronts, [int(x) for x in h.all_fills()["qty"]]


def test_risk_averse_queue_by_hand():
    fronts, fills = _run_sequence("risk_averse")
    assert fronts == [70.0, 70.0, 70.0]
    assert fills == []  # 60 < 70 ahead


def test_power_queue_by_hand():
    fronts, fills = _run_sequence("power")
    assert fronts[:2] == [70.0, 70.0]
    p = 400 / 5300
    assert fronts[2] == pytest.approx(70 - (1 - p) * 20)  # 51.5094
    assert fills == [8]  # 60 − 52 ahead


def test_log_queue_by_hand():
    fronts, fills = _run_sequence("log")
    p = math.log(21) / (math.log(21) + math.log(71))
    assert fronts[2] == pytest.approx(70 - (1 - p) * 20)  # 58.3329
    assert fills == [2]  # 60 − 58 ahead


def test_level_removed_puts_us_in_front_and_next_trade_fills():
    h = Harness(params=BID, queue_model="risk_averse")
    h.feed(BOOK + [(150, K.LEVEL_SET, 1, 9999, 0, 0)])
    assert _front(h) == 0.0
    h.feed([(160, K.TRADE, 1, 9999, 4, 0), (170, K.LEVEL_SET, -1, 10006, 1, 0)], final=True)
    assert [int(x) for x in h.all_fills()["qty"]] == [4]


def test_trade_through_fills_and_new_crossing_ask_fills():
    h = Harness(params={"bid_tick": 10000, "bid_qty": 10}, queue_model="power")
    h.feed(BOOK + [(150, K.TRADE, 1, 9999, 3, 0),  # sold through our 10000 bid
                   (160, K.LEVEL_SET, -1, 10000, 4, 0),  # an ask lands on our price
                   (170, K.LEVEL_SET, -1, 10006, 1, 0)], final=True)
    assert [int(x) for x in h.all_fills()["qty"]] == [3, 4]


def test_far_levels_ignored_and_window_follows_the_price():
    h = Harness(params={}, queue_model="risk_averse", engine={"book_width_ticks": 1024})
    rows = BOOK + [(1, K.LEVEL_SET, 1, 100, 5, 0)]  # far-away bid: not tracked
    # the market walks up 2000 ticks: the window must follow the touch
    for i in range(1, 41):
        rows += [(1 + i, K.LEVEL_SET, -1, 10005 + 50 * (i - 1), 0, 0),
                 (1 + i, K.LEVEL_SET, -1, 10005 + 50 * i, 10, 0),
                 (1 + i, K.LEVEL_SET, 1, 9999 + 50 * i, 10, 0)]
    h.feed(rows, final=True)
    sc = h.engine.book["sc"]
    assert enb.best_bid_tick_nb(sc) == 9999 + 2000
    assert enb.best_ask_tick_nb(sc) == 10005 + 2000
    # the strategy's delayed ladder followed the same window
    assert enb.best_bid_tick_nb(h.engine.lsc) == 9999 + 2000
    assert h.engine.lsc[0] == sc[0]
    assert h.engine.stats()["window_moves"] >= 1
    assert h.engine.stats()["out_of_window_events"] >= 1


def test_a_level_update_within_reach_centres_the_window_on_the_touch():
    # window 1024 ticks: an update outside it is tracked when within 256 ticks of the touch,
    # and the window then moves to centre on the touch. Centred on the update instead, the
    # touch sat a quarter window from the far edge, and a small drift of the touch brought
    # the next update there within reach on the other side: the window moved half its width
    # each way (Binance spot: 9 moves in 11 minutes, each copying both ladders)
    w = 1024
    h = Harness(params={}, queue_model="risk_averse", engine={"book_width_ticks": w})
    h.feed(BOOK)
    sc = h.engine.book["sc"]
    lo = int(sc[L_BASE])
    bid = lo + 247  # the touch walks down to 247 ticks above the window's bottom
    rows = [(1, K.LEVEL_SET, 1, 9999, 0, 0), (1, K.LEVEL_SET, -1, 10005, 0, 0),
            (1, K.LEVEL_SET, 1, bid, 10, 0), (1, K.LEVEL_SET, -1, bid + 6, 10, 0),
            (2, K.LEVEL_SET, 1, bid - 250, 7, 0)]  # below the window, within reach
    h.feed(rows)
    assert int(sc[L_BASE]) == bid - w // 2
    assert enb.level_qty_nb(h.engine.book["lvl"], sc, 1, bid - 250) == 7
    # the touch drifts up 10 ticks; updates 253 ticks above and 251 below it are inside now
    bid2 = bid + 10
    h.feed([(3, K.LEVEL_SET, 1, bid2, 10, 0), (3, K.LEVEL_SET, -1, bid2 + 6, 10, 0),
            (3, K.LEVEL_SET, 1, bid, 0, 0), (3, K.LEVEL_SET, -1, bid + 6, 0, 0),
            (4, K.LEVEL_SET, -1, bid2 + 253, 3, 0), (5, K.LEVEL_SET, 1, bid2 - 251, 4, 0)],
           final=True)
    st = h.engine.stats()
    assert st["window_moves"] == 1
    assert int(sc[L_BASE]) == bid - w // 2 and h.engine.lsc[L_BASE] == sc[L_BASE]
    assert enb.level_qty_nb(h.engine.book["lvl"], sc, -1, bid2 + 253) == 3


def test_funding_paid_by_longs_at_funding_time():
    # buy 10 lots as taker at 100.05, then funding 0.01 % at mark 100.00 at 500 ms:
    # longs pay 10 × 100.00 × 0.0001 = 0.10
    h = Harness(params={"bid_tick": 10005, "bid_qty": 10}, engine={"quote_tif": "gtc"},
                instrument=Instrument(tick_size=0.01, lot_size=1.0),
                risk={"max_position_qty": 10})
    h.feed(BOOK + [(120, K.MARK, 0, 10000, 0, 0, 100.0),
                   (130, K.FUNDING, 0, 0, 0, T0 + 500 * MS, 0.0001)])
    h.set_param("bid_qty", 0)
    h.feed([(300, K.FUNDING, 0, 0, 0, T0 + 500 * MS, 0.0001),  # repeated announcement
            (600, K.LEVEL_SET, 1, 9998, 1, 0),
            (700, K.FUNDING, 0, 0, 0, T0 + 500 * MS, 0.0001)], final=True)
    f = h.all_fills()
    assert int(f["qty"].sum()) == 10
    assert h.engine.st["funding"] == pytest.approx(0.10)
    assert h.engine.stats()["funding_payments"] == 1  # charged once
    eq = np.concatenate(h.equity)
    after = eq[eq["ts"] >= T0 + 500 * MS]
    assert after["funding"][0] == pytest.approx(0.10)
    cash_before_funding = -10 * 100.05
    assert h.engine.st["cash"] == pytest.approx(cash_before_funding - 0.10)


def test_inverse_contract_round_trip_pnl_in_coin():
    # 10 contracts of $100: buy at 20000, sell at 21000 → 10·100·(1/20000 − 1/21000) coin
    inst = Instrument(tick_size=1.0, lot_size=1.0, multiplier=100.0, contract="inverse")
    h = Harness(params={"bid_tick": 20000, "bid_qty": 10}, instrument=inst,
                engine={"quote_tif": "gtc"}, risk={"max_position_qty": 10}, ref_price=20_000)
    h.feed([(0, K.LEVEL_SET, 1, 19990, 50, 0), (0, K.LEVEL_SET, -1, 20000, 50, 0),
            (150, K.LEVEL_SET, 1, 21000, 50, 0), (150, K.LEVEL_SET, -1, 21010, 50, 0)])
    h.set_param("bid_qty", 0)
    h.engine.pparams[2:4] = [21000, 10]  # ask 10 at 21000 (sent 200 ms, sells at 201 ms)
    h.feed([(201.5, K.LEVEL_SET, 1, 20990, 1, 0)])
    h.engine.pparams[3] = 0  # no more quotes
    h.feed([(250, K.LEVEL_SET, 1, 20980, 1, 0), (350, K.LEVEL_SET, 1, 20970, 1, 0)],
           final=True)
    f = h.all_fills()
    assert list(f["side"]) == [1, -1]
    assert h.engine.st["position"] == 0
    expected = 10 * 100 * (1 / 20000 - 1 / 21000)
    assert h.engine.st["cash"] == pytest.approx(expected, rel=1e-12)


def test_lognormal_latency_is_seeded_and_varies():
    def submit_latencies(seed):
        # fixed spread re-quotes whenever the mid moves: the ask alternates every 100 ms
        h = Harness(policy="fixed_spread", params={"spread_bps": 20.0, "order_qty": 1},
                    latency={"model": "lognormal", "entry_nanos": MS, "entry_sigma": 0.5,
                             "feed_nanos": 0})
        h.engine.st["rng"] = seed
        rows = BOOK + [(0, K.LEVEL_SET, -1, 10009, 100, 0)]
        rows += [(100 * i + 50, K.LEVEL_SET, -1, 10005, 100 * (i % 2), 0)  # touch 10005/10009
                 for i in range(1, 200)]
        h.feed(rows, final=True)
        o = h.all_orders()
        req = o[(o["event"] == OrderEvent.SUBMIT) | (o["event"] == OrderEvent.MODIFY)
                | (o["event"] == OrderEvent.CANCEL)]
        return (req["exch_ts"] - req["local_ts"]).astype(float)

    a, b, c = submit_latencies(12345), submit_latencies(12345), submit_latencies(999)
    assert np.array_equal(a, b)  # same seed, same draws
    assert len(a) >= 5 and len(np.unique(a)) > 1  # random, not constant
    assert not np.array_equal(a[: len(c)], c[: len(a)])  # another seed, other draws
    # median of exp(σZ)·1 ms is 1 ms: the sample median is within a few standard errors
    assert 0.6 * MS < np.median(a) < 1.6 * MS


def test_feed_offset_moves_a_lagging_capture_clock():
    # the capture clock runs 1.5 s behind the exchange: without an offset every event is
    # clamped to exch_ts; with +1.6 s none is
    rows = [(t, K.LEVEL_SET, 1, 9999 - t % 3, 10, 0, 0.0, t - 1500) for t in range(0, 300, 10)]
    h0 = Harness(params={}, queue_model="risk_averse", latency={"feed_nanos": None})
    h0.feed(rows, final=True)
    h1 = Harness(params={}, queue_model="risk_averse", latency={"feed_nanos": None},
                 feed_offset_ns=1_600 * MS)
    h1.feed(rows, final=True)
    assert h0.engine.stats()["feed_clamped"] == len(rows)
    assert h1.engine.stats()["feed_clamped"] == 0


def test_interpolated_latency_from_a_recorded_series(tmp_path):
    from mmsim.models.latency import load_latency_series

    # entry latency 1 ms at T0, 3 ms at T0 + 1 s; response 2 ms, then 4 ms
    p = tmp_path / "lat.csv"
    p.write_text("request_ts,exchange_ts,response_ts\n"
                 f"{T0},{T0 + MS},{T0 + 3 * MS}\n"
                 f"{T0 + 1000 * MS},{T0 + 1003 * MS},{T0 + 1007 * MS}\n")
    series = load_latency_series(p)
    h = Harness(params=BID, latency={"model": "interpolated", "series_path": str(p),
                                      "feed_nanos": 0}, latency_series=series)
    h.feed(BOOK + [(500, K.LEVEL_SET, -1, 10006, 1, 0)], final=True)
    o = h.all_orders()
    sub = o[o["event"] == OrderEvent.SUBMIT][0]
    ack = o[o["event"] == OrderEvent.ACK][0]
    # sent at 100 ms: entry = 1 + (3 − 1)·0.1 = 1.2 ms; the ack leaves at 101.2 ms:
    # response = 2 + (4 − 2)·0.1012 = 2.2024 ms
    assert sub["exch_ts"] - sub["local_ts"] == 1_200_000
    assert ack["local_ts"] - ack["exch_ts"] == 2_202_400


def test_latency_series_errors_name_file_row_field(tmp_path):
    from mmsim.data.errors import DataError
    from mmsim.models.latency import load_latency_series

    p = tmp_path / "bad.csv"
    p.write_text("request_ts,exchange_ts,response_ts\n1,2,3\n5,x,9\n")
    with pytest.raises(DataError, match=r"bad\.csv: row 3, field 'exchange_ts'"):
        load_latency_series(p)
    p.write_text("request_ts,exchange_ts,response_ts\n1,2,3\n5,4,9\n")
    with pytest.raises(DataError, match=r"row 3, field 'exchange_ts'.*negative"):
        load_latency_series(p)
    with pytest.raises(DataError, match="not found"):
        load_latency_series(tmp_path / "none.csv")
