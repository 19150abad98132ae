"""Exact L3 → L2 reduction: the market-by-price stream a vendor would have sent.

:func:`l3_to_l2` replays canonical L3 (market-by-order) events — LOBSTER, Databento MBO —
through the numba L3 book exactly as the engine does (:func:`mmsim.engine.nb._market_event`:
same kernels, same handling of anonymous volume, duplicate ids, unknown ids and MODIFY) and
writes, for every input event, the L2 events it implies: level totals (``LEVEL_SET``) and
trades, with the same timestamps and no order ids. Feeding the result to the engine in L2
mode gives its exchange ladder the same levels as the L3 book after every input event, so L2
queue models can be scored against L3 truth on the same data.
"""

from __future__ import annotations

import numpy as np

from mmsim._jitcache import internal, kernel  # (before any cached kernel)
from mmsim.book.nb import (
    B_NFREE,
    B_UNKNOWN,
    L_BASE,
    L_W,
    O_PRICE,
    O_SIDE,
    find_order_nb,
    grow_l3_book,
    l3_add_nb,
    l3_anon_reduce_nb,
    l3_clear_nb,
    l3_modify_nb,
    l3_reduce_nb,
    l3_remove_nb,
    level_qty_nb,
    new_l3_book,
)
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EVENT_KIND_NAMES, EventFlag, EventKind

__all__ = ["l3_to_l2"]

# kernel return codes
_OK = 0
_FULL = 1  # order table full before row ``state.row`` (nothing of that row applied)
_OUT_OF_WINDOW = 2  # row ``state.row`` places volume outside the ladder window
_BAD_KIND = 3  # row ``state.row`` has a kind an L3 stream cannot carry (LEVEL_SET, unknown)

#: the kernel's state (one record), kept across resumes after the order table grew
_STATE_DTYPE = np.dtype([
    ("n_out", np.int64),  # output records written
    ("in_snapshot", np.int64),  # 1 between SNAPSHOT_BEGIN and SNAPSHOT_END
    ("row", np.int64),  # row of the error / where to resume
], align=True)

_NO_TRADE_FLAGS = EventFlag.INFO | EventFlag.CROSS | EventFlag.LAST


@internal
def _emit(out, k, e, kind, side, px, qty, flags):
    """Write one derived record (order id 0, value 0) at ``out[k]``; returns ``k + 1``."""
    out[k].exch_ts = e.exch_ts
    out[k].local_ts = e.local_ts
    out[k].price_tick = px
    out[k].qty = qty
    out[k].order_id = 0
    out[k].value = 0.0
    out[k].kind = kind
    out[k].side = side
    out[k].flags = flags
    return k + 1


@kernel
def _l3_to_l2_nb(ev, start, ordt, free, hkeys, hvals, bs, lvl, anon, sc, out, idx, state):
    """Convert rows ``start..`` of ``ev`` into ``out``; see :func:`l3_to_l2`. Returns a code."""
    n = ev.shape[0]
    state = state[0]
    k = state.n_out
    base = sc[L_BASE]
    w = sc[L_W]
    for i in range(start, n):
        e = ev[i]
        kind = np.int64(e.kind)
        side = np.int64(e.side)
        px = e.price_tick
        q = e.qty
        oid = e.order_id
        k0 = k
        if (kind == EventKind.ADD or kind == EventKind.MODIFY) and oid != 0 and bs[B_NFREE] == 0:
            state.n_out = k
            state.row = i
            return _FULL
        fl = np.int64(e.flags) & ~np.int64(EventFlag.LAST)
        # the (up to two) levels the event can change: the order's old level, then the new one
        n_lv = 0
        s1 = np.int64(0)
        p1 = np.int64(0)
        s2 = np.int64(0)
        p2 = np.int64(0)
        if kind == EventKind.ADD or kind == EventKind.MODIFY:
            if q > 0 and (px - base < 0 or px - base >= w):
                state.n_out = k
                state.row = i
                return _OUT_OF_WINDOW
            slot = find_order_nb(hkeys, hvals, bs, oid) if oid != 0 else -1
            if slot >= 0:
                s1 = ordt[slot, O_SIDE]
                p1 = ordt[slot, O_PRICE]
                n_lv = 1
            if q > 0 and not (n_lv == 1 and s1 == side and p1 == px):
                if n_lv == 0:
                    s1 = side
                    p1 = px
                else:
                    s2 = side
                    p2 = px
                n_lv += 1
            o1 = level_qty_nb(lvl, sc, s1, p1)
            o2 = level_qty_nb(lvl, sc, s2, p2)
            if kind == EventKind.ADD:
                if slot >= 0:
                    l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot)
                l3_add_nb(ordt, free, hkeys, hvals, bs, lvl, anon, sc, oid, side, px, q, False)
            elif slot < 0:
                l3_add_nb(ordt, free, hkeys, hvals, bs, lvl, anon, sc, oid, side, px, q, True)
            else:
                l3_modify_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot, side, px, q)
            if n_lv >= 1:
                nq = level_qty_nb(lvl, sc, s1, p1)
                if nq != o1:
                    k = _emit(out, k, e, EventKind.LEVEL_SET, s1, p1, nq, fl)
            if n_lv == 2:
                nq = level_qty_nb(lvl, sc, s2, p2)
                if nq != o2:
                    k = _emit(out, k, e, EventKind.LEVEL_SET, s2, p2, nq, fl)
        elif kind == EventKind.CANCEL or kind == EventKind.DELETE or kind == EventKind.EXECUTE:
            removed = np.int64(0)
            if oid == 0:
                s1 = side
                p1 = px
                if 0 <= px - base < w:  # nothing can rest outside the window
                    removed = l3_anon_reduce_nb(lvl, anon, sc, side, px, q)
            else:
                slot = find_order_nb(hkeys, hvals, bs, oid)
                if slot >= 0:
                    s1 = ordt[slot, O_SIDE]
                    p1 = ordt[slot, O_PRICE]
                    if kind == EventKind.DELETE:
                        removed = l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot)
                    else:
                        removed = l3_reduce_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot, q)
                else:
                    bs[B_UNKNOWN] += 1  # as the engine counts it
            if removed != 0:
                if kind == EventKind.EXECUTE and state.in_snapshot == 0 and removed > 0:
                    k = _emit(out, k, e, EventKind.TRADE, s1, p1, removed,
                              np.int64(e.flags) & ~np.int64(_NO_TRADE_FLAGS))
                k = _emit(out, k, e, EventKind.LEVEL_SET, s1, p1,
                          level_qty_nb(lvl, sc, s1, p1), fl)
        elif kind == EventKind.CLEAR:
            l3_clear_nb(ordt, free, hkeys, hvals, bs, lvl, anon, sc, side)
            out[k] = e
            k += 1
        elif kind == EventKind.TRADE:
            out[k] = e
            out[k].order_id = 0
            k += 1
        elif (kind == EventKind.SNAPSHOT_BEGIN or kind == EventKind.SNAPSHOT_END
              or kind == EventKind.STATUS or kind == EventKind.MARK
              or kind == EventKind.FUNDING or kind == EventKind.BBO):
            if kind == EventKind.SNAPSHOT_BEGIN:
                state.in_snapshot = 1
            elif kind == EventKind.SNAPSHOT_END:
                state.in_snapshot = 0
            out[k] = e  # (FUNDING keeps its order_id: the funding time, not an order)
            k += 1
        else:
            state.n_out = k
            state.row = i
            return _BAD_KIND
        if k > k0 and (e.flags & EventFlag.LAST) != 0:
            out[k - 1].flags = out[k - 1].flags | EventFlag.LAST
        idx[i] = k
    state.n_out = k
    state.row = n
    return _OK


_VOLUME_KINDS = (EventKind.ADD, EventKind.MODIFY)
_REDUCE_KINDS = (EventKind.CANCEL, EventKind.DELETE, EventKind.EXECUTE)


def _check_sides(events: np.ndarray) -> None:
    kind = events["kind"]
    side = events["side"]
    needs = np.isin(kind, _VOLUME_KINDS) | (np.isin(kind, _REDUCE_KINDS)
                                            & (events["order_id"] == 0))
    bad = np.flatnonzero(needs & (side != 1) & (side != -1))
    if bad.size == 0:
        bad = np.flatnonzero((kind == EventKind.CLEAR) & (np.abs(side.astype(np.int64)) > 1))
    if bad.size:
        r = int(bad[0])
        raise ValueError(
            f"l3_to_l2: row {r} ({EVENT_KIND_NAMES.get(int(kind[r]), kind[r])}) has side "
            f"{int(side[r])}; expected +1 (bid) or -1 (ask)"
            + (" or 0 (both)" if kind[r] == EventKind.CLEAR else "")
        )


def _ref_price(events: np.ndarray) -> int:
    priced = np.flatnonzero(np.isin(events["kind"], _VOLUME_KINDS) & (events["qty"] > 0))
    return int(events["price_tick"][priced[0]]) if priced.size else 0


def l3_to_l2(
    events: np.ndarray,
    *,
    width: int = 1 << 16,
    ref_price_tick: int | None = None,
    max_orders: int = 1 << 22,
    return_index: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Reduce an L3 (market-by-order) event stream to its L2 (market-by-price) stream.

    Each input event is applied to an L3 book exactly as the engine applies it
    (:func:`mmsim.engine.nb._market_event`), and replaced by the L2 records it implies, with
    the input's ``exch_ts`` and ``local_ts``, in this order:

    ``ADD`` / ``MODIFY`` / ``CANCEL`` / ``DELETE``
        One ``LEVEL_SET`` per price level whose total changed (side, ``price_tick``, ``qty``
        = the level's NEW total in lots, 0 = the level is gone): for a MODIFY that moves an
        order (or an ADD that reuses a live id) the old level first, then the new one. No
        record when nothing changed (unknown order id, zero quantity, anonymous reduce of
        an empty level). Anonymous volume (``order_id == 0``) counts like any order.
    ``EXECUTE``
        When it removed volume: a ``TRADE`` (side = the resting side, price = the order's
        price, ``qty`` = lots removed; flags = the input's without INFO/CROSS, so the
        engine's feed takes it as a trade), then the ``LEVEL_SET`` of that level. Inside a
        SNAPSHOT_BEGIN/END block no TRADE is written (the engine ignores trades there).
    ``TRADE``
        Copied, with ``order_id`` set to 0 (hidden or informational prints are already
        market-by-price; their flags are kept).
    ``CLEAR``, ``SNAPSHOT_BEGIN``, ``SNAPSHOT_END``, ``STATUS``, ``MARK``, ``FUNDING``, ``BBO``
        Copied unchanged (CLEAR also empties the L3 book; FUNDING keeps its ``order_id``,
        which is the funding time, not an order).

    Derived records have ``order_id`` 0 and ``value`` 0.0 and inherit the input's flags;
    the ``LAST`` bit of an input is moved to the last record written for it. The output
    keeps the input's order (so it is sorted by ``exch_ts`` when the input is).

    Parameters
    ----------
    events : numpy.ndarray
        1-D :data:`~mmsim.dtypes.EVENT_DTYPE` array of L3 events (prices in ticks,
        quantities in lots, int64 ns timestamps).
    width : int, default 65536
        Price levels (ticks) of the ladder window, per side.
    ref_price_tick : int or None
        Centre of the window, ticks: the window is ``[ref - width // 2, ref - width // 2 +
        width)``. Default: the price of the first ADD/MODIFY with ``qty > 0``. The window
        never moves.
    max_orders : int, default 4,194,304
        Most live orders. The order table starts at ``min(4096, max_orders)`` slots and
        doubles on demand up to this.
    return_index : bool, default False
        Also return ``end``: int64[len(events)], ``end[i]`` = number of output records
        written after input event ``i`` (its records are ``out[end[i-1]:end[i]]``), so the
        L2 state after input ``i`` is the replay of ``out[:end[i]]``.

    Returns
    -------
    numpy.ndarray or tuple of numpy.ndarray
        ``out`` (EVENT_DTYPE, at most ``2 * len(events)`` records), or ``(out, end)``.

    Raises
    ------
    TypeError
        If ``events`` is not a 1-D EVENT_DTYPE array.
    ValueError
        Naming the first offending row: an ADD/MODIFY with ``qty > 0`` whose price is
        outside the window (widen ``width`` or set ``ref_price_tick``; volume is never
        dropped silently); a ``LEVEL_SET`` or an unknown kind (not an L3 stream); a side
        other than ±1 where the book needs one (0 also allowed for CLEAR); more than
        ``max_orders`` live orders.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise TypeError("l3_to_l2: expected a 1-D EVENT_DTYPE array")
    if width < 1 or max_orders < 1:
        raise ValueError(f"l3_to_l2: width ({width}) and max_orders ({max_orders}) must be >= 1")
    events = np.ascontiguousarray(events)
    _check_sides(events)
    n = events.shape[0]
    ref = _ref_price(events) if ref_price_tick is None else int(ref_price_tick)
    base = ref - width // 2
    book = new_l3_book(base, width, min(4096, max_orders))
    out = np.zeros(2 * n, dtype=EVENT_DTYPE)
    end = np.zeros(n, dtype=np.int64)
    state = np.zeros(1, dtype=_STATE_DTYPE)
    start = 0
    while True:
        rc = _l3_to_l2_nb(events, start, book["ordt"], book["free"], book["hkeys"],
                          book["hvals"], book["bs"], book["lvl"], book["anon"], book["sc"],
                          out, end, state)
        if rc == _OK:
            break
        row = int(state["row"][0])
        e = events[row]
        what = (f"row {row} ({EVENT_KIND_NAMES.get(int(e['kind']), int(e['kind']))}, "
                f"exch_ts {int(e['exch_ts'])}, order_id {int(e['order_id'])}, "
                f"price_tick {int(e['price_tick'])})")
        if rc == _FULL:
            if 2 * book["ordt"].shape[0] > max_orders:
                raise ValueError(f"l3_to_l2: more than max_orders={max_orders:,} live orders "
                                 f"at {what}")
            grow_l3_book(book)
            start = row
            continue
        if rc == _OUT_OF_WINDOW:
            raise ValueError(
                f"l3_to_l2: {what} is outside the ladder window [{base}, {base + width}) "
                f"ticks; widen width= or set ref_price_tick=")
        raise ValueError(f"l3_to_l2: {what} is not an L3 event kind (LEVEL_SET or unknown)")
    out = out[: int(state["n_out"][0])].copy()
    return (out, end) if return_index else out
