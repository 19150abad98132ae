"""ReferenceL3Book: hand-checked cases, then hypothesis invariants against a naive model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsim.book.reference import ReferenceL3Book
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventKind as K


def ev(kind, side=1, price=100, qty=0, oid=0):
    return {"kind": kind, "side": side, "price_tick": price, "qty": qty, "order_id": oid}


def test_add_cancel_delete_execute_and_top():
    b = ReferenceL3Book()
    b.apply(ev(K.ADD, 1, 100, 5, 1))
    b.apply(ev(K.ADD, 1, 100, 3, 2))
    b.apply(ev(K.ADD, 1, 99, 7, 3))
    b.apply(ev(K.ADD, -1, 102, 4, 4))
    assert b.top(3) == ([100, 99, 0], [8, 7, 0], [102, 0, 0], [4, 0, 0])
    assert b.best_bid() == 100 and b.best_ask() == 102
    b.apply(ev(K.CANCEL, 1, 100, 2, 1))  # partial
    assert b.orders[1] == (1, 100, 3)
    assert b.level_qty(1, 100) == 6
    b.apply(ev(K.EXECUTE, 1, 100, 3, 1))  # fully executed -> removed
    assert 1 not in b.orders
    b.apply(ev(K.DELETE, 1, 100, 0, 2))
    assert b.levels(1) == {99: 7}
    b.apply(ev(K.CANCEL, 1, 99, 5, 999))  # unknown id ignored
    b.apply(ev(K.DELETE, 1, 99, 5, 999))
    assert b.levels(1) == {99: 7}
    b.apply(ev(K.EXECUTE, -1, 102, 10, 4))  # over-execution removes
    assert b.best_ask() is None
    assert b.top(1) == ([99], [7], [0], [0])


def test_anonymous_volume_and_clamp():
    b = ReferenceL3Book()
    b.apply(ev(K.ADD, -1, 105, 10, 0))
    b.apply(ev(K.ADD, -1, 105, 2, 7))
    assert b.anon == {(-1, 105): 10}
    assert b.level_qty(-1, 105) == 12
    b.apply(ev(K.CANCEL, -1, 105, 4, 0))
    assert b.anon == {(-1, 105): 6}
    b.apply(ev(K.EXECUTE, -1, 105, 100, 0))  # clamped: the order stays
    assert b.anon == {} and b.levels(-1) == {105: 2}
    b.apply(ev(K.DELETE, -1, 105, 5, 0))  # nothing anonymous left: no effect
    assert b.levels(-1) == {105: 2}
    assert b.level_orders(-1, 105) == [7]


def test_readd_same_id_moves_to_back():
    b = ReferenceL3Book()
    for oid in (1, 2):
        b.apply(ev(K.ADD, 1, 100, 1, oid))
    b.apply(ev(K.ADD, 1, 100, 4, 1))
    assert b.level_orders(1, 100) == [2, 1]
    assert b.level_qty(1, 100) == 5


def test_modify_priority_rules():
    b = ReferenceL3Book()
    for oid in (1, 2, 3):
        b.apply(ev(K.ADD, 1, 100, 5, oid))
    b.apply(ev(K.MODIFY, 1, 100, 2, 1))  # decrease keeps place
    assert b.level_orders(1, 100) == [1, 2, 3]
    b.apply(ev(K.MODIFY, 1, 100, 6, 2))  # increase -> back
    assert b.level_orders(1, 100) == [1, 3, 2]
    b.apply(ev(K.MODIFY, 1, 101, 6, 1))  # price change -> new level
    assert b.levels(1) == {100: 11, 101: 6}
    b.apply(ev(K.MODIFY, -1, 104, 3, 9))  # unknown id acts as ADD
    assert b.orders[9] == (-1, 104, 3)
    b.apply(ev(K.MODIFY, -1, 104, 0, 9))  # qty 0 removes
    assert 9 not in b.orders and b.best_ask() is None


def test_clear_and_no_effect_kinds():
    b = ReferenceL3Book()
    b.apply(ev(K.ADD, 1, 100, 5, 1))
    b.apply(ev(K.ADD, -1, 101, 5, 2))
    b.apply(ev(K.ADD, -1, 102, 5, 0))
    for kind in (K.TRADE, K.SNAPSHOT_BEGIN, K.SNAPSHOT_END, K.STATUS, K.LEVEL_SET):
        b.apply(ev(kind, 1, 100, 5, 1))
    assert b.levels(1) == {100: 5}
    b.apply(ev(K.CLEAR, -1))
    assert b.levels(-1) == {} and b.anon == {} and b.levels(1) == {100: 5}
    b.apply(ev(K.CLEAR, 0))
    assert b.orders == {} and b.best_bid() is None


def test_numpy_record_input_and_errors():
    rec = np.zeros(1, dtype=EVENT_DTYPE)[0]
    rec["kind"], rec["side"], rec["price_tick"], rec["qty"], rec["order_id"] = K.ADD, -1, 7, 2, 5
    b = ReferenceL3Book()
    b.apply(rec)
    assert b.orders == {5: (-1, 7, 2)}
    with pytest.raises(ValueError, match="side"):
        b.apply(ev(K.ADD, 0, 7, 2, 6))
    with pytest.raises(ValueError, match="kind"):
        b.apply(ev(99))


# ---------------------------------------------------------------- property tests
class NaiveBook:
    """Independent model: levels recomputed from scratch, queue as a list."""

    def __init__(self):
        self.orders = {}
        self.queue = []  # ids in arrival order
        self.anon = {}

    def _rm(self, oid):
        del self.orders[oid]
        self.queue.remove(oid)

    def _put(self, oid, s, p, q):
        self.orders[oid] = (s, p, q)
        self.queue.append(oid)

    def apply(self, kind, s, p, q, oid):
        if kind == K.ADD:
            if oid == 0:
                self.anon[(s, p)] = self.anon.get((s, p), 0) + max(q, 0)
            else:
                if oid in self.orders:
                    self._rm(oid)
                if q > 0:
                    self._put(oid, s, p, q)
        elif kind in (K.CANCEL, K.EXECUTE, K.DELETE):
            if oid == 0:
                self.anon[(s, p)] = max(self.anon.get((s, p), 0) - q, 0)
            elif oid in self.orders:
                os_, op, oq = self.orders[oid]
                if kind == K.DELETE or oq - q <= 0:
                    self._rm(oid)
                else:
                    self.orders[oid] = (os_, op, oq - q)
        elif kind == K.MODIFY:
            if oid not in self.orders:
                if q > 0:
                    self._put(oid, s, p, q)
            elif q <= 0:
                self._rm(oid)
            else:
                os_, op, oq = self.orders[oid]
                if (os_, op) != (s, p) or q > oq:
                    self._rm(oid)
                    self._put(oid, s, p, q)
                else:
                    self.orders[oid] = (s, p, q)
        elif kind == K.CLEAR:
            for oid_ in [o for o, v in self.orders.items() if s == 0 or v[0] == s]:
                self._rm(oid_)
            self.anon = {k: v for k, v in self.anon.items() if s != 0 and k[0] != s}

    def levels(self, side):
        out = {}
        for s, p, q in self.orders.values():
            if s == side:
                out[p] = out.get(p, 0) + q
        for (s, p), q in self.anon.items():
            if s == side and q > 0:
                out[p] = out.get(p, 0) + q
        return out

    def level_orders(self, s, p):
        return [o for o in self.queue if self.orders[o][:2] == (s, p)]


event_st = st.tuples(
    st.sampled_from([K.ADD, K.ADD, K.CANCEL, K.DELETE, K.MODIFY, K.EXECUTE, K.TRADE, K.CLEAR]),
    st.sampled_from([1, -1]),
    st.integers(95, 105),
    st.integers(0, 6),
    st.integers(0, 8),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(event_st, max_size=80))
def test_matches_naive_model(events):
    book, naive = ReferenceL3Book(), NaiveBook()
    for kind, s, p, q, oid, clear_all in events:
        if kind == K.CLEAR and clear_all:
            s = 0
        if kind == K.ADD and oid == 0 and q == 0:
            q = 1
        book.apply(ev(kind, s, p, q, oid))
        naive.apply(kind, s, p, q, oid)
        for side in (1, -1):
            levels = naive.levels(side)
            assert book.levels(side) == levels
            assert all(v > 0 for v in book.levels(side).values())
            assert book.prices(side) == sorted(levels)
            for price in levels:
                assert book.level_orders(side, price) == naive.level_orders(side, price)
        assert book.orders == naive.orders
        assert book.anon == {k: v for k, v in naive.anon.items() if v > 0}
        bid_px, bid_qty, ask_px, ask_qty = book.top(3)
        bids = sorted(naive.levels(1).items(), reverse=True)[:3]
        asks = sorted(naive.levels(-1).items())[:3]
        assert bid_px == [p for p, _ in bids] + [0] * (3 - len(bids))
        assert ask_qty == [q for _, q in asks] + [0] * (3 - len(asks))
        assert len(bid_qty) == len(ask_px) == 3
        assert book.best_bid() == (bids[0][0] if bids else None)
        assert book.levels_from(1, None) == bids + sorted(naive.levels(1).items(), reverse=True)[3:]
