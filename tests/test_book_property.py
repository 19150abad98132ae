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
