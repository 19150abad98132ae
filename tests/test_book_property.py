"""Property test: the numba L3 book (inside the engine) equals the plain-Python reference book
after every event of random streams, and is never crossed."""

from __future__ import annotations

import numpy as np
from engine_harness import Harness, events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsim.book.nb import ladder_top_nb
from mmsim.book.reference import ReferenceL3Book
from mmsim.enums import EventKind as K

OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "anon", "cancel", "delete", "execute", "modify",
                         "anon_reduce", "unknown"]),
        st.sampled_from([1, -1]),
        st.integers(0, 6),  # price offset from the touch
        st.integers(1, 50),  # qty
        st.integers(0, 10_000),  # which live order
    ),
    min_size=1,
    max_size=60,
)


def _stream(ops):
    """Turn abstract ops into a valid, uncrossed event stream (ids from a shadow book)."""
    ref = ReferenceL3Book()
    rows = []
    next_id = 1
    t = 0.0
    for op, side, off, q, pick in ops:
        t += 1.0
        bb, ba = ref.best_bid(), ref.best_ask()
        if side > 0:
            px = (ba - 1 - off) if ba is not None else 10_000 - off
        else:
            px = (bb + 1 + off) if bb is not None else 10_001 + off
        live = sorted(ref.orders)
        if op == "add":
            row = (t, K.ADD, side, px, q, next_id)
            next_id += 1
        elif op == "anon":
            row = (t, K.ADD, side, px, q, 0)
        elif op == "anon_reduce" and ref.anon:
            (s, p) = sorted(ref.anon)[pick % len(ref.anon)]
            row = (t, K.CANCEL, s, p, q, 0)
        elif op == "unknown":
            row = (t, K.DELETE, side, px, q, 999_999)
        elif op in ("cancel", "delete", "execute", "modify") and live:
            oid = live[pick % len(live)]
            s, p, oq = ref.orders[oid]
            if op == "cancel":
                row = (t, K.CANCEL, s, p, min(q, oq), oid)
            elif op == "delete":
                row = (t, K.DELETE, s, p, oq, oid)
            elif op == "execute":
                row = (t, K.EXECUTE, s, p, min(q, oq), oid)
            else:
                # stay on the own side of the opposite touch
                if s > 0:
                    np_ = min(p + (off - 3), (ba - 1) if ba is not None else p + off)
                else:
                    np_ = max(p - (off - 3), (bb + 1) if bb is not None else p - off)
                row = (t, K.MODIFY, s, np_, q, oid)
        else:
            continue
        ev = events([row])[0]
        ref.apply(ev)
        rows.append(row)
    return rows


def _engine_levels(h, side):
    b = h.engine.book
    lvl, sc = b["lvl"], b["sc"]
    px = np.empty(64, dtype=np.int64)
    qty = np.empty(64, dtype=np.int64)
    n = ladder_top_nb(lvl, sc, side, 64, px, qty)
    return {int(px[i]): int(qty[i]) for i in range(n)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_numba_book_matches_reference_after_every_event(ops):
    rows = _stream(ops)
    ref = ReferenceL3Book()
    h = Harness(params={})  # static policy with nothing to quote
    for row in rows:
        ev = events([row])
        ref.apply(ev[0])
        h.engine.feed(ev, h.sink)
        for side in (1, -1):
            assert _engine_levels(h, side) == ref.levels(side), (row, side)
        bb, ba = ref.best_bid(), ref.best_ask()
        if bb is not None and ba is not None:
            assert bb < ba
        b = h.engine.book
        assert b["bs"][1] == len(ref.orders)  # live order count


def _recenter_reference(lvl, sc, new_base):
    """The ladder window move, column by column (the algorithm ladder_recenter_nb replaced)."""
    from mmsim.book.nb import L_BASE, L_BEST_ASK, L_BEST_BID, L_NASK, L_NBID, L_OOW, L_W

    w, shift = int(sc[L_W]), int(new_base - sc[L_BASE])
    if shift == 0:
        return
    for r in range(2):
        if shift > 0:
            for j in range(w):
                src = j + shift
                if j < shift and lvl[r, j] > 0:
                    sc[L_OOW] += 1
                lvl[r, j] = lvl[r, src] if src < w else 0
        else:
            for j in range(w - 1, -1, -1):
                src = j + shift
                if j >= w + shift and lvl[r, j] > 0:
                    sc[L_OOW] += 1
                lvl[r, j] = lvl[r, src] if src >= 0 else 0
    sc[L_BASE] = new_base
    bids, asks = np.flatnonzero(lvl[0] > 0), np.flatnonzero(lvl[1] > 0)
    sc[L_NBID], sc[L_NASK] = len(bids), len(asks)
    sc[L_BEST_BID] = bids[-1] if len(bids) else -1
    sc[L_BEST_ASK] = asks[0] if len(asks) else -1


@settings(max_examples=300, deadline=None)
@given(w=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), fill=st.floats(0.0, 1.0),
       shift=st.integers(-45, 45))
def test_ladder_recenter_matches_the_column_by_column_move(w, seed, fill, shift):
    """A window move keeps, drops and counts exactly the levels the column-by-column move
    did (best prices and level counts included), for every shift, also past the width."""
    from mmsim.book.nb import ladder_change_nb, ladder_recenter_nb, new_ladder

    rng = np.random.default_rng(seed)
    lvl, sc = new_ladder(1000, w)
    mid = int(rng.integers(0, w + 1))  # bids below mid, asks from mid on (either may be empty)
    for j in range(w):
        if rng.random() < fill:
            ladder_change_nb(lvl, sc, 1 if j < mid else -1, 1000 + j, int(rng.integers(1, 9)))
    ref_lvl, ref_sc = lvl.copy(), sc.copy()
    ladder_recenter_nb(lvl, sc, 1000 + shift)
    _recenter_reference(ref_lvl, ref_sc, 1000 + shift)
    np.testing.assert_array_equal(lvl, ref_lvl)
    np.testing.assert_array_equal(sc, ref_sc)


@settings(max_examples=300, deadline=None)
@given(w=st.integers(1, 120), seed=st.integers(0, 2**32 - 1), fill=st.floats(0.0, 0.3),
       n=st.integers(1, 12))
def test_ladder_top_matches_a_scan_of_the_columns(w, seed, fill, n):
    """The best ``n`` levels of each side, on sparse ladders (gaps of many empty columns, the
    case ladder_top_nb skips eight columns at a time) up to the window's edges, equal the
    non-empty columns read in order."""
    from mmsim.book.nb import ladder_change_nb, new_ladder

    rng = np.random.default_rng(seed)
    lvl, sc = new_ladder(1000, w)
    mid = int(rng.integers(0, w + 1))
    for j in range(w):
        if rng.random() < fill:
            ladder_change_nb(lvl, sc, 1 if j < mid else -1, 1000 + j, int(rng.integers(1, 9)))
    px = np.empty(n, dtype=np.int64)
    qty = np.empty(n, dtype=np.int64)
    for side, cols in ((1, np.flatnonzero(lvl[0] > 0)[::-1]), (-1, np.flatnonzero(lvl[1] > 0))):
        cols = cols[:n]
        found = ladder_top_nb(lvl, sc, side, n, px, qty)
        assert found == len(cols)
        np.testing.assert_array_equal(px[:found], 1000 + cols)
        np.testing.assert_array_equal(qty[:found], lvl[0 if side > 0 else 1, cols])
        assert (px[found:] == -1).all() and (qty[found:] == 0).all()
