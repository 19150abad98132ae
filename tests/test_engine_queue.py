"""Hand-checked L3 FIFO queue, latency and order-handling cases (MODELS.md §6, §7).

Timeline of every case: the policy decides every 100 ms (first at 100 ms); a submit sent at
100 ms reaches the exchange at 101 ms (1 ms entry latency); responses take 1 ms back.
"""

from __future__ import annotations

import numpy as np
from engine_harness import Harness

from mmsim.enums import EventKind as K
from mmsim.enums import Liquidity, OrderEvent, Reject

BOOK = [  # t_ms, kind, side, price, qty, id
    (0, K.ADD, 1, 9999, 100, 1),
    (0, K.ADD, -1, 10005, 100, 2),
]


def bid(qty=10, px=9999):
    return {"bid_tick": px, "bid_qty": qty}


def events_of(h, kind):
    o = h.all_orders()
    return o[o["event"] == kind]


def test_execution_ahead_reduces_queue_then_behind_fills_us():
    h = Harness(params=bid())
    h.feed(BOOK + [
        (150, K.ADD, 1, 9999, 50, 3),  # behind us (we arrived at 101 ms)
        (200, K.EXECUTE, 1, 9999, 60, 1),  # ahead: 100 -> 40
    ])
    assert len(h.all_fills()) == 0
    ours = h.engine.ours["queue_ahead"][h.engine.ours["order_id"] == 1]
    assert ours[0] == 40.0
    h.feed([(210, K.EXECUTE, 1, 9999, 40, 1),  # ahead -> 0, still no fill
            (250, K.EXECUTE, 1, 9999, 30, 3)], final=True)  # behind us: we go first
    f = h.all_fills()
    assert len(f) == 1
    assert f[0]["qty"] == 10 and f[0]["price_tick"] == 9999 and f[0]["side"] == 1
    assert f[0]["liquidity"] == Liquidity.MAKER
    assert f[0]["exch_ts"] - 1_700_000_000_000_000_000 == 250_000_000
    assert f[0]["local_ts"] - f[0]["exch_ts"] == 1_000_000  # response latency


def test_cancels_ahead_reduce_queue():
    h = Harness(params=bid())
    h.feed(BOOK + [
        (150, K.CANCEL, 1, 9999, 70, 1),  # ahead 100 -> 30
        (160, K.ADD, 1, 9999, 5, 4),  # behind
        (170, K.DELETE, 1, 9999, 30, 1),  # ahead -> 0
    ])
    assert h.engine.ours["queue_ahead"][h.engine.ours["order_id"] == 1][0] == 0.0
    assert len(h.all_fills()) == 0
    h.feed([(180, K.EXECUTE, 1, 9999, 5, 4)], final=True)
    f = h.all_fills()
    assert list(f["qty"]) == [5]


def test_partial_fills_accumulate_until_done():
    h = Harness(params=bid(qty=10))
    h.feed(BOOK + [
        (120, K.DELETE, 1, 9999, 100, 1),  # nothing ahead now
        (130, K.ADD, 1, 9999, 100, 5),  # behind
        (140, K.EXECUTE, 1, 9999, 4, 5),
        (141, K.EXECUTE, 1, 9999, 4, 5),
        (142, K.EXECUTE, 1, 9999, 4, 5),
    ], final=True)
    f = h.all_fills()
    assert list(f["qty"]) == [4, 4, 2]
    assert list(f["position"]) == [4, 8, 10]
    fills = events_of(h, OrderEvent.FILL)
    assert list(fills["leaves_qty"]) == [6, 2, 0]


def test_trade_through_our_price_fills_us():
    h = Harness(params=bid(px=10000))  # we improve the bid: alone at 10000
    h.feed(BOOK + [(150, K.EXECUTE, 1, 9999, 30, 1)], final=True)  # sold through us
    f = h.all_fills()
    assert list(f["qty"]) == [10] and f[0]["price_tick"] == 10000


def test_hidden_trade_at_our_price_serves_volume_ahead_first():
    h = Harness(params=bid())
    h.feed(BOOK + [(150, K.TRADE, 1, 9999, 105, 0)], final=True)  # 100 ahead of us
    assert list(h.all_fills()["qty"]) == [5]


def test_new_opposite_order_crossing_us_fills_us():
    h = Harness(params=bid(px=10002))
    h.feed(BOOK + [(150, K.ADD, -1, 10001, 3, 9)], final=True)
    f = h.all_fills()
    assert list(f["qty"]) == [3] and f[0]["price_tick"] == 10002


def test_anonymous_volume_is_ahead():
    h = Harness(params=bid())
    h.feed(BOOK + [(150, K.ADD, 1, 9999, 20, 0)])
    assert h.engine.ours["queue_ahead"][h.engine.ours["order_id"] == 1][0] == 120.0
    h.feed([(160, K.EXECUTE, 1, 9999, 20, 0)], final=True)  # anonymous executes: ahead
    assert h.engine.ours["queue_ahead"][h.engine.ours["order_id"] == 1][0] == 100.0
    assert len(h.all_fills()) == 0


def test_book_order_modify_up_goes_behind_us_down_keeps_place():
    h = Harness(params=bid())
    h.feed(BOOK + [(150, K.MODIFY, 1, 9999, 60, 1)])  # size decrease: keeps priority
    assert h.engine.ours["queue_ahead"][h.engine.ours["order_id"] == 1][0] == 60.0
    h.feed([(160, K.MODIFY, 1, 9999, 80, 1)])  # increase: loses priority, goes behind
    assert h.engine.ours["queue_ahead"][h.engine.ours["order_id"] == 1][0] == 0.0
    h.feed([(170, K.EXECUTE, 1, 9999, 10, 1)], final=True)  # it is behind us now
    assert list(h.all_fills()["qty"]) == [10]


def test_our_size_increase_loses_priority_and_decrease_keeps_it():
    h = Harness(params=bid(qty=10))
    h.feed(BOOK + [(150, K.ADD, 1, 9999, 50, 3), (160, K.CANCEL, 1, 9999, 40, 1)])
    slot = np.flatnonzero(h.engine.ours["order_id"] == 1)[0]
    assert h.engine.ours["queue_ahead"][slot] == 60.0
    h.set_param("bid_qty", 5)  # decrease at 200 ms: keeps its place
    h.feed([(250, K.ADD, -1, 10006, 1, 20)])
    assert h.engine.ours["queue_ahead"][slot] == 60.0
    h.set_param("bid_qty", 20)  # increase at 300 ms: back of the queue (60 + 50 ahead)
    h.feed([(350, K.ADD, -1, 10006, 1, 21)], final=True)
    assert h.engine.ours["queue_ahead"][slot] == 110.0
    acks = events_of(h, OrderEvent.MODIFY_ACK)
    assert list(acks["leaves_qty"]) == [5, 20]


def test_post_only_rejected_when_price_moved_before_arrival():
    # the policy sees ask 10005 and bids 10004; a seller lands at 10004 while our order
    # is in flight (100 -> 101 ms), so on arrival it would cross: rejected
    h = Harness(params=bid(px=10004))
    h.feed(BOOK + [(100.5, K.ADD, -1, 10004, 7, 8), (150, K.ADD, 1, 9990, 1, 9)], final=True)
    rej = events_of(h, OrderEvent.REJECT)
    assert len(rej) >= 1 and rej[0]["reason"] == Reject.POST_ONLY_WOULD_CROSS
    assert len(h.all_fills()) == 0


def test_cancel_arriving_after_the_fill_loses():
    h = Harness(params=bid(px=10000))
    h.feed(BOOK + [(150, K.ADD, 1, 9998, 1, 30)])
    h.set_param("bid_qty", 0)  # at 200 ms: cancel, reaching the exchange at 201 ms
    h.feed([(200.5, K.EXECUTE, 1, 9999, 10, 1),  # sold through us at 200.5 ms
            (250, K.ADD, 1, 9998, 1, 31)], final=True)
    assert list(h.all_fills()["qty"]) == [10]
    assert len(events_of(h, OrderEvent.CANCEL_REJECT)) == 1
    assert len(events_of(h, OrderEvent.CANCEL_ACK)) == 0


def test_cancel_arriving_before_the_trade_wins():
    h = Harness(params=bid(px=10000))
    h.feed(BOOK + [(150, K.ADD, 1, 9998, 1, 30)])
    h.set_param("bid_qty", 0)
    h.feed([(201.5, K.EXECUTE, 1, 9999, 10, 1), (250, K.ADD, 1, 9998, 1, 31)], final=True)
    assert len(h.all_fills()) == 0
    assert len(events_of(h, OrderEvent.CANCEL_ACK)) == 1


def test_feed_latency_delays_what_the_policy_sees():
    # fixed spread quotes off the local mid; with 50 ms feed latency a jump at 80 ms is
    # not yet visible to the decision at 100 ms
    params = {"spread_bps": 0.0, "order_qty": 1}
    rows = BOOK + [(80, K.DELETE, -1, 10005, 100, 2), (80, K.ADD, -1, 10105, 100, 6),
                   (150, K.ADD, 1, 9990, 1, 7)]
    seen = {}
    for feed in (0, 50_000_000):
        h = Harness(policy="fixed_spread", params=params, latency={"feed_nanos": feed})
        h.feed(rows, final=True)
        sub = events_of(h, OrderEvent.SUBMIT)
        seen[feed] = int(sub[sub["side"] == -1][0]["price_tick"])
    assert seen[0] == 10052  # mid (9999 + 10105)/2 = 10052 → ask ceil 10052
    assert seen[50_000_000] == 10002  # old mid (9999 + 10005)/2


def test_taker_order_walks_levels_and_pays_taker_fee():
    from mmsim.instruments import Instrument

    inst = Instrument(tick_size=0.01, lot_size=1.0, taker_fee_bps=10.0, maker_fee_bps=-1.0)
    h = Harness(params={"bid_tick": 10006, "bid_qty": 150}, instrument=inst,
                engine={"quote_tif": "gtc"})
    h.feed([(0, K.ADD, 1, 9999, 100, 1), (0, K.ADD, -1, 10005, 100, 2),
            (0, K.ADD, -1, 10006, 30, 3), (150, K.ADD, 1, 9990, 1, 9)], final=True)
    f = h.all_fills()
    assert list(f["price_tick"]) == [10005, 10006]
    assert list(f["qty"]) == [100, 30]
    assert all(f["liquidity"] == Liquidity.TAKER)
    np.testing.assert_allclose(f["fee"], [100 * 100.05 * 1e-3, 30 * 100.06 * 1e-3])
    # the rest (20) rests at 10006 with nothing ahead on the bid side
    slot = np.flatnonzero(h.engine.ours["order_id"] == 1)[0]
    assert h.engine.ours["leaves"][slot] == 20


def test_order_table_grows_without_losing_orders():
    h = Harness(params={}, engine={"max_book_orders": 1 << 16})
    rows = [(1 + i * 0.001, K.ADD, 1 if i % 2 else -1, 9000 - (i % 50) if i % 2 else
             11000 + (i % 50), 1 + i % 7, i + 1) for i in range(10_000)]
    rows += [(20 + i * 0.001, K.DELETE, 1 if i % 2 else -1, 0, 0, i + 1)
             for i in range(0, 10_000, 3)]
    h.feed(rows, final=True)
    b = h.engine.book
    assert b["ordt"].shape[0] >= 8192
    live = [r for r in rows[:10_000] if (r[5] - 1) % 3 != 0]
    assert b["bs"][1] == len(live)
    assert b["lvl"][0].sum() == sum(r[4] for r in live if r[2] == 1)
    assert b["lvl"][1].sum() == sum(r[4] for r in live if r[2] == -1)


def test_executions_reach_the_strategy_as_trades_once():
    from mmsim.enums import EventFlag

    h = Harness(params={})
    rows = BOOK + [(50, K.EXECUTE, -1, 10005, 10, 2),  # buyer-initiated: lifts the ask
                   (60, K.TRADE, -1, 10005, 10, 0),  # its INFO print (Databento T): not again
                   (61, K.EXECUTE, 1, 9999, 4, 1),  # seller-initiated: hits the bid
                   (70, K.ADD, 1, 9990, 1, 7)]
    from engine_harness import events as mk

    ev = mk(rows)
    ev[3]["flags"] |= EventFlag.INFO
    h.engine.feed(ev, h.sink)
    stf = h.engine.st
    assert stf["trade_hi_tick"] == 10005 and stf["trade_lo_tick"] == 9999
    assert stf["trade_qty"] == 14
    h.feed([(150, K.ADD, 1, 9991, 1, 8)], final=True)  # the 100 ms decision resets them
    assert np.isnan(stf["trade_hi_tick"]) and stf["trade_qty"] == 0
