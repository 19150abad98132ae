"""L3 → L2 reduction (:mod:`mmsim.data.l3_to_l2`): hand-worked streams, a property test
against the reference L3 book after every event, and the LOBSTER AMZN day."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsim.book.reference import PriceLevels, ReferenceL3Book
from mmsim.data.l3_to_l2 import l3_to_l2
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventFlag, EventKind

K = EventKind
LAST = EventFlag.LAST


def evs(*rows):
    """Rows of (kind, side, price_tick, qty, order_id[, flags]); exch_ts = 10·row, local +1."""
    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, r in enumerate(rows):
        kind, side, px, q, oid = r[:5]
        out[i] = (10 * (i + 1), 10 * (i + 1) + 1, px, q, oid, 0.0, kind, side,
                  r[5] if len(r) > 5 else 0)
    return out


def rows(out):
    """Output as (exch_ts, kind, side, price_tick, qty) tuples."""
    return [(int(e["exch_ts"]), int(e["kind"]), int(e["side"]), int(e["price_tick"]),
             int(e["qty"])) for e in out]


LS, TR = K.LEVEL_SET, K.TRADE


def test_add_cancel_delete():
    out, end = l3_to_l2(evs(
        (K.ADD, 1, 100, 5, 11),
        (K.ADD, 1, 100, 3, 12),
        (K.ADD, -1, 102, 7, 13),
        (K.CANCEL, 1, 100, 2, 11),  # partial
        (K.CANCEL, 1, 100, 9, 99),  # unknown id: nothing
        (K.DELETE, 1, 100, 0, 12),
        (K.CANCEL, -1, 0, 7, 13),  # full cancel; the event's side/price are ignored
    ), return_index=True)
    assert rows(out) == [
        (10, LS, 1, 100, 5), (20, LS, 1, 100, 8), (30, LS, -1, 102, 7),
        (40, LS, 1, 100, 6), (60, LS, 1, 100, 3), (70, LS, -1, 102, 0),
    ]
    assert end.tolist() == [1, 2, 3, 4, 4, 5, 6]
    assert np.all(out["order_id"] == 0)
    assert np.all(out["local_ts"] == out["exch_ts"] + 1)


def test_execute_gives_trade_then_level():
    out = l3_to_l2(evs(
        (K.ADD, -1, 105, 10, 1),
        (K.ADD, -1, 105, 4, 2),
        (K.EXECUTE, -1, 105, 6, 1, LAST | EventFlag.CROSS),
        (K.EXECUTE, -1, 105, 50, 1),  # more than is left: 4 lots execute
        (K.EXECUTE, -1, 105, 3, 77),  # unknown id: nothing
    ))
    assert rows(out) == [
        (10, LS, -1, 105, 10), (20, LS, -1, 105, 14),
        (30, TR, -1, 105, 6), (30, LS, -1, 105, 8),
        (40, TR, -1, 105, 4), (40, LS, -1, 105, 4),
    ]
    # the trade loses CROSS/INFO (the feed must see it); the level record keeps the input's
    # flags and gets its LAST bit (the last record of that input)
    assert out["flags"][2] == 0 and out["flags"][3] == LAST | EventFlag.CROSS


def test_modify():
    out = l3_to_l2(evs(
        (K.ADD, 1, 100, 5, 1),
        (K.ADD, 1, 100, 2, 2),
        (K.MODIFY, 1, 100, 3, 1),  # size down, same level
        (K.MODIFY, 1, 99, 3, 1),  # price move: old level then new
        (K.MODIFY, -1, 101, 4, 1),  # side and price move
        (K.MODIFY, 1, 98, 6, 9),  # unknown id acts as ADD
        (K.MODIFY, 1, 98, 0, 9),  # qty 0 removes
        (K.ADD, 1, 100, 1, 2),  # live id re-added at the same level: net change only
        (K.ADD, 1, 97, 1, 2),  # live id re-added elsewhere
    ))
    assert rows(out) == [
        (10, LS, 1, 100, 5), (20, LS, 1, 100, 7), (30, LS, 1, 100, 5),
        (40, LS, 1, 100, 2), (40, LS, 1, 99, 3),
        (50, LS, 1, 99, 0), (50, LS, -1, 101, 4),
        (60, LS, 1, 98, 6), (70, LS, 1, 98, 0),
        (80, LS, 1, 100, 1),
        (90, LS, 1, 100, 0), (90, LS, 1, 97, 1),
    ]


def test_anonymous_volume():
    out = l3_to_l2(evs(
        (K.ADD, 1, 100, 5, 0),
        (K.ADD, 1, 100, 2, 7),
        (K.CANCEL, 1, 100, 3, 0),
        (K.EXECUTE, 1, 100, 9, 0),  # only 2 anonymous lots left: 2 execute
        (K.DELETE, 1, 100, 4, 0),  # nothing anonymous left
        (K.CANCEL, 1, 5_000_000, 4, 0),  # outside the window: nothing can rest there
    ))
    assert rows(out) == [
        (10, LS, 1, 100, 5), (20, LS, 1, 100, 7), (30, LS, 1, 100, 4),
        (40, TR, 1, 100, 2), (40, LS, 1, 100, 2),
    ]


def test_clear_and_pass_through():
    e = evs(
        (K.ADD, 1, 100, 5, 1),
        (K.ADD, -1, 101, 5, 2),
        (K.TRADE, -1, 101, 3, 55, EventFlag.INFO),
        (K.CLEAR, 1, 0, 0, 0),
        (K.STATUS, 0, 0, 0, 0),
        (K.MARK, 0, 100, 0, 0),
        (K.FUNDING, 0, 0, 0, 123_456),
        (K.SNAPSHOT_BEGIN, 0, 0, 0, 0),
        (K.ADD, 1, 99, 4, 3),
        (K.EXECUTE, -1, 101, 1, 2),  # in a snapshot: no trade
        (K.SNAPSHOT_END, 0, 0, 0, 0),
        (K.ADD, 1, 100, 1, 1),  # id 1 was cleared: a fresh level
    )
    e["value"][4] = -1.0
    e["value"][5] = 100.25
    e["value"][6] = 1e-4
    out, end = l3_to_l2(e, return_index=True)
    assert rows(out) == [
        (10, LS, 1, 100, 5), (20, LS, -1, 101, 5),
        (30, TR, -1, 101, 3), (40, K.CLEAR, 1, 0, 0),
        (50, K.STATUS, 0, 0, 0), (60, K.MARK, 0, 100, 0), (70, K.FUNDING, 0, 0, 0),
        (80, K.SNAPSHOT_BEGIN, 0, 0, 0), (90, LS, 1, 99, 4), (100, LS, -1, 101, 4),
        (110, K.SNAPSHOT_END, 0, 0, 0), (120, LS, 1, 100, 1),
    ]
    assert out["flags"][2] == EventFlag.INFO and out["order_id"][2] == 0
    assert out["order_id"][6] == 123_456  # the funding time is not an order id
    assert out["value"][4:7].tolist() == [-1.0, 100.25, 1e-4]
    assert end.tolist() == list(range(1, 13))


def test_errors():
    with pytest.raises(ValueError, match=r"row 1 \(add.*outside the ladder window"):
        l3_to_l2(evs((K.ADD, 1, 100, 5, 1), (K.ADD, -1, 100 + 40_000, 5, 2)))
    # a wider window (or another centre) takes it
    assert len(l3_to_l2(evs((K.ADD, 1, 100, 5, 1), (K.ADD, -1, 40_100, 5, 2)),
                        width=1 << 17)) == 2
    with pytest.raises(ValueError, match=r"row 0 \(level_set"):
        l3_to_l2(evs((K.LEVEL_SET, 1, 100, 5, 0)))
    with pytest.raises(ValueError, match=r"row 1 \(add\) has side 0"):
        l3_to_l2(evs((K.ADD, 1, 100, 5, 1), (K.ADD, 0, 100, 5, 2)))
    with pytest.raises(TypeError):
        l3_to_l2(np.zeros(3, dtype=np.int64))
    assert len(l3_to_l2(np.zeros(0, dtype=EVENT_DTYPE))) == 0


def test_order_table_grows():
    n = 10_000
    e = np.zeros(n + 1, dtype=EVENT_DTYPE)
    e["kind"][:n] = K.ADD
    e["side"] = 1
    e["price_tick"][:n] = 1000 - np.arange(n) % 50
    e["qty"] = 1
    e["order_id"][:n] = np.arange(1, n + 1)
    e[n] = (0, 0, 0, 1, n, 0.0, K.EXECUTE, 1, 0)  # the last order: at 1000 - 49
    out = l3_to_l2(e)
    assert rows(out[-2:]) == [(0, TR, 1, 951, 1), (0, LS, 1, 951, n // 50 - 1)]
    with pytest.raises(ValueError, match="max_orders=5,000"):
        l3_to_l2(e, max_orders=5_000)


# ---- property: the L2 replay equals the L3 book after every input event ---------------------

N_TOP = 10


class L2Replay(PriceLevels):
    """Plain replay of an L2 stream: LEVEL_SET sets a level, CLEAR empties a side."""

    def apply(self, e) -> None:
        kind = int(e["kind"])
        if kind == K.LEVEL_SET:
            self._set_qty(int(e["side"]), int(e["price_tick"]), int(e["qty"]))
        elif kind == K.CLEAR:
            s = int(e["side"])
            for side in (1, -1):
                if s == 0 or s == side:
                    self._levels[side].clear()
                    self._prices[side].clear()

    def top(self, n):
        bids = self._prices[1][-n:][::-1]
        asks = self._prices[-1][:n]
        return ([(p, self._levels[1][p]) for p in bids],
                [(p, self._levels[-1][p]) for p in asks])


def l3_top(book: ReferenceL3Book, n):
    bp, bq, ap, aq = book.top(n)
    return ([(p, q) for p, q in zip(bp, bq, strict=True) if q > 0],
            [(p, q) for p, q in zip(ap, aq, strict=True) if q > 0])


def check_every_event(events, n_top=N_TOP):
    out, end = l3_to_l2(events, return_index=True)
    assert np.all(np.diff(out["exch_ts"]) >= 0)
    ref, l2 = ReferenceL3Book(), L2Replay()
    j = 0
    for i in range(len(events)):
        ref.apply(events[i])
        for e in out[j:end[i]]:
            l2.apply(e)
        j = int(end[i])
        assert l2.top(n_top) == l3_top(ref, n_top), f"after input row {i}"
    return out, end


@st.composite
def l3_streams(draw):
    n = draw(st.integers(1, 120))
    live: list[int] = []
    next_id = 1
    recs = []
    for t in range(n):
        op = draw(st.sampled_from(["add"] * 4 + ["cancel", "delete", "execute", "modify",
                                                 "anon_add", "anon_reduce", "unknown",
                                                 "clear", "trade"]))
        side = draw(st.sampled_from([1, -1]))
        # bids at or below the mid, asks above (a valid, uncrossed book)
        off = draw(st.integers(0, 15))
        px = 1000 - off if side > 0 else 1001 + off
        q = draw(st.integers(1, 20))
        if op in ("cancel", "delete", "execute", "modify") and live:
            oid = draw(st.sampled_from(live))
            kind = {"cancel": K.CANCEL, "delete": K.DELETE, "execute": K.EXECUTE,
                    "modify": K.MODIFY}[op]
            if op == "delete" or (op == "modify" and q == 0):
                live.remove(oid)
            recs.append((kind, side, px, q, oid))
        elif op == "anon_add":
            recs.append((K.ADD, side, px, q, 0))
        elif op == "anon_reduce":
            recs.append((draw(st.sampled_from([K.CANCEL, K.DELETE, K.EXECUTE])), side, px, q, 0))
        elif op == "unknown":
            recs.append((K.CANCEL, side, px, q, 10_000 + t))
        elif op == "clear":
            recs.append((K.CLEAR, draw(st.sampled_from([0, 1, -1])), 0, 0, 0))
            live.clear()
        elif op == "trade":
            recs.append((K.TRADE, side, px, q, 0))
        else:
            # mostly fresh ids, sometimes a live id again (removed first, as the engine does)
            if live and draw(st.integers(0, 9)) == 0:
                oid = draw(st.sampled_from(live))
            else:
                oid = next_id
                next_id += 1
                live.append(oid)
            recs.append((K.ADD, side, px, q, oid))
    e = evs(*recs)
    e["exch_ts"] = np.cumsum(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    e["local_ts"] = e["exch_ts"]
    return e


@settings(max_examples=300, deadline=None)
@given(l3_streams())
def test_l2_replay_matches_l3_book_after_every_event(events):
    out, end = check_every_event(events)
    # trades: one per EXECUTE that removed volume, plus the TRADE records passed through
    n_trade_in = int(np.count_nonzero(events["kind"] == K.TRADE))
    n_exec = int(np.count_nonzero(events["kind"] == K.EXECUTE))
    assert n_trade_in <= int(np.count_nonzero(out["kind"] == K.TRADE)) <= n_trade_in + n_exec
    assert np.all(out["order_id"] == 0)
    assert len(out) <= 2 * len(events) and np.all(np.diff(end) >= 0)


# ---- real data -------------------------------------------------------------------------------

AMZN = "lobster/AMZN_2012-06-21_34200000_57600000_{}_1.csv"


@pytest.mark.realdata
def test_amzn_day_l2_matches_l3_and_orderbook_file(data_root):
    from mmsim.data.lobster import read_lobster

    r = read_lobster(data_root / AMZN.format("message"), data_root / AMZN.format("orderbook"))
    events = r.events
    out, end = check_every_event(events, n_top=1)  # 76k events: a few seconds
    n_exec_removed = int(np.count_nonzero(out["kind"] == K.TRADE)) - int(
        np.count_nonzero(events["kind"] == K.TRADE))
    assert n_exec_removed > 0
    assert set(np.unique(out["kind"]).tolist()) <= {LS, TR, K.CLEAR, K.STATUS,
                                                    K.SNAPSHOT_BEGIN, K.SNAPSHOT_END}
    # vendor truth: the orderbook file's top after each message (the input's LAST records)
    ob = np.loadtxt(data_root / AMZN.format("orderbook"), delimiter=",", dtype=np.int64)
    last = np.flatnonzero(events["flags"] & LAST)
    assert len(last) == len(ob)
    l2 = L2Replay()
    j = 0
    bad = 0
    for m, i in enumerate(last):
        for e in out[j:end[i]]:
            l2.apply(e)
        j = int(end[i])
        bids, asks = l2.top(1)
        ask_px, ask_q, bid_px, bid_q = (int(x) for x in ob[m])
        want_a = [(ask_px // 100, ask_q)] if ask_q > 0 else []
        want_b = [(bid_px // 100, bid_q)] if bid_q > 0 else []
        bad += (asks, bids) != (want_a, want_b)
    assert bad == 0
