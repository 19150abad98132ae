"""Numba kernels of the queue scorecard: probes followed through L3 truth and L2 models.

A *probe* (MODELS.md §13) is a passive order of ours that never changes the replayed book and
is scored as if it were the only order we had: every probe sees the same market, and two
probes never share an execution. One pass over an event array follows every probe at once:

:func:`l3_probe_pass_nb`
    The truth. Canonical L3 (market-by-order) events are applied to the numba L3 book
    (:mod:`mmsim.book.nb`) exactly as :func:`mmsim.engine.nb._market_event` applies them, and
    each probe's queue is followed the way the engine follows one of our orders in FIFO mode
    (MODELS.md §6): ``ahead`` = the level's quantity at placement; cancels and executions of
    book orders with a sequence number at or below the probe's (and anonymous volume) reduce
    it; an execution of a book order behind the probe, or at a price through it, fills it;
    a hidden ``TRADE`` at its price fills it beyond the volume ahead; new opposite volume at or
    through its price fills it (the rules of ``_fill_priority``, ``_reduce_ahead`` and
    ``_opposite_volume``, for one order).
:func:`l2_probe_pass_nb`
    An L2 model's estimate. The market-by-price stream of :func:`mmsim.data.l3_to_l2.l3_to_l2`
    is applied to a price ladder as the engine applies it in L2 mode (``_level_set``,
    ``_l2_level_change``, ``_l2_trade_at`` and the ``TRADE`` branch of ``_market_event``), and
    each probe's ``front`` is moved by :func:`mmsim.models.queue.queue_front_nb`, the model
    function of the engine.

Timing (as the engine with zero latency): a probe placed at exchange time ``t`` joins its
level after every event with ``exch_ts <= t`` (the engine applies a market event before
anything scheduled at its time); probes placed at or before the last event's time are
placed, later ones never are. A probe is rejected, as the engine rejects a post-only order,
when trading is halted or its price would cross the opposite touch.

Open probes are kept in one doubly linked list per price level (``head`` int64[2, W], the
ladder's rows and columns), so an event touches only the probes at its price, and a scan of
the levels between the best open probe price and the event's price for the fills through
it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mmsim._jitcache import internal, kernel  # (before any cached kernel)
from mmsim.book.nb import (
    ASK_ROW,
    B_NFREE,
    B_SEQ,
    B_UNKNOWN,
    BID_ROW,
    L_BASE,
    L_W,
    O_PRICE,
    O_QTY,
    O_SEQ,
    O_SIDE,
    best_ask_tick_nb,
    best_bid_tick_nb,
    find_order_nb,
    l3_add_nb,
    l3_anon_reduce_nb,
    l3_clear_nb,
    l3_modify_nb,
    l3_reduce_nb,
    l3_remove_nb,
    ladder_change_nb,
    ladder_clear_nb,
    level_qty_nb,
    row_of,
)
from mmsim.enums import EventFlag, EventKind
from mmsim.models.queue import queue_front_nb

__all__ = [
    "NO_OFFSET",
    "NO_TS",
    "PASS_STATE_DTYPE",
    "PROBE_DTYPE",
    "PROBE_LIVE_DTYPE",
    "PROBE_RESULT_DTYPE",
    "PROBE_STATUS_NAMES",
    "Anchor",
    "PassCode",
    "ProbeStatus",
    "l2_probe_pass_nb",
    "l3_probe_pass_nb",
]


class _ProbeStatus(NamedTuple):
    """What became of a probe (``PROBE_RESULT_DTYPE['status']``).

    PENDING
        Not placed: its time is after the last event.
    OPEN
        Resting at the end of the data (unfilled, or partly filled).
    DONE
        Filled completely.
    NO_TOUCH
        Anchored to the touch, but its side of the book was empty at placement: not placed.
    CROSSED
        Its price was at or through the opposite touch at placement: rejected, as the engine
        rejects a post-only order.
    HALTED
        Placed while trading was halted (a ``STATUS`` event): rejected, as by the engine.
    OUT_OF_WINDOW
        Its price is outside the ladder window: not placed.
    """

    PENDING: int = 0
    OPEN: int = 1
    DONE: int = 2
    NO_TOUCH: int = 3
    CROSSED: int = 4
    HALTED: int = 5
    OUT_OF_WINDOW: int = 6


ProbeStatus = _ProbeStatus()
PROBE_STATUS_NAMES = {v: k.lower() for k, v in ProbeStatus._asdict().items()}


class _Anchor(NamedTuple):
    """How a probe's price is given (``PROBE_DTYPE['anchor']``).

    PRICE
        ``price_tick`` as given (e.g. a policy's quote).
    TOUCH
        ``offset_ticks`` behind the touch of its own side at placement: ``best_bid - offset``
        for a bid, ``best_ask + offset`` for an ask (0 = join the touch).
    """

    PRICE: int = 0
    TOUCH: int = 1


Anchor = _Anchor()


class _PassCode(NamedTuple):
    """Return code of a pass kernel (the Python wrappers raise on anything but OK)."""

    OK: int = 0
    FULL: int = 1  # the order table is full before row ``state.row`` (nothing of it applied)
    BAD_KIND: int = 2  # row ``state.row`` has a kind this pass cannot take


PassCode = _PassCode()

#: ``first_fill_ts`` / ``done_ts`` of a probe that never filled
NO_TS = np.int64(-1)
#: ``offset_ticks`` of a probe placed by price while its own side of the book was empty
NO_OFFSET = np.int64(np.iinfo(np.int64).min)

#: One probe (input): int64 ns, ticks, lots; ``side`` +1 bid / -1 ask; ``anchor`` an
#: :data:`Anchor`. The pass kernels take them sorted by ``place_ts``.
PROBE_DTYPE = np.dtype([
    ("probe_id", np.int64),
    ("place_ts", np.int64),  # exchange time of placement, ns
    ("price_tick", np.int64),  # the price (Anchor.PRICE); ignored for Anchor.TOUCH
    ("offset_ticks", np.int64),  # ticks behind the own touch (Anchor.TOUCH)
    ("qty", np.int64),  # lots, >= 1
    ("side", np.int64),
    ("anchor", np.int64),
], align=True)

#: What one pass found for one probe (output).
PROBE_RESULT_DTYPE = np.dtype([
    ("price_tick", np.int64),  # the price it rested at
    ("offset_ticks", np.int64),  # ticks behind its own touch at placement (NO_OFFSET: none)
    ("queue_ahead", np.float64),  # lots ahead at placement (the level's quantity)
    ("first_fill_ts", np.int64),  # exchange time of its first fill, ns (NO_TS: none)
    ("done_ts", np.int64),  # exchange time it was filled completely, ns (NO_TS: never)
    ("filled_qty", np.int64),  # lots filled by the end of the data
    ("n_fills", np.int64),
    ("status", np.int64),  # a ProbeStatus
], align=True)

#: A probe's queue state during a pass (one record per probe, in pass order).
PROBE_LIVE_DTYPE = np.dtype([
    ("ahead", np.float64),  # lots ahead (L3: exact; L2: the model's front)
    ("seq", np.int64),  # L3 arrival sequence number: book orders at or below it are ahead
    ("leaves", np.int64),  # lots still open
    ("traded", np.int64),  # L2: lots traded at its price since the last depth update
    ("nxt", np.int64),  # next / previous open probe at the same level (-1: none)
    ("prv", np.int64),
    ("row", np.int64),  # ladder row (BID_ROW / ASK_ROW) and column of its level
    ("col", np.int64),
], align=True)

#: A pass's own state (one record), kept across resumes after the order table grew.
PASS_STATE_DTYPE = np.dtype([
    ("row", np.int64),  # next event row (where to resume), or the row of an error
    ("next_probe", np.int64),  # next probe to place
    ("in_snapshot", np.int64),  # 1 between SNAPSHOT_BEGIN and SNAPSHOT_END
    ("halted", np.int64),  # 1 while trading is halted
    ("n_open_bid", np.int64),
    ("n_open_ask", np.int64),
    ("bid_hi", np.int64),  # highest column holding an open bid probe (-1: none)
    ("ask_lo", np.int64),  # lowest column holding an open ask probe (-1: none)
    ("n_out_of_window", np.int64),  # L2 level updates outside the ladder window (ignored)
], align=True)

_NO_FILL_FLAGS = EventFlag.INFO | EventFlag.CROSS


# ---- the level lists ------------------------------------------------------------------------


@internal
def _link_nb(live, head, ps, k, row, col):
    """Put probe ``k`` on the list of level (``row``, ``col``)."""
    live[k].row = row
    live[k].col = col
    live[k].prv = -1
    h = head[row, col]
    live[k].nxt = h
    if h >= 0:
        live[h].prv = k
    head[row, col] = k
    if row == BID_ROW:
        ps.n_open_bid += 1
        if col > ps.bid_hi:
            ps.bid_hi = col
    else:
        ps.n_open_ask += 1
        if ps.ask_lo < 0 or col < ps.ask_lo:
            ps.ask_lo = col


@internal
def _unlink_nb(live, head, ps, k):
    """Take probe ``k`` off its level's list; keep the best open probe columns."""
    row = live[k].row
    col = live[k].col
    p = live[k].prv
    n = live[k].nxt
    if p >= 0:
        live[p].nxt = n
    else:
        head[row, col] = n
    if n >= 0:
        live[n].prv = p
    if row == BID_ROW:
        ps.n_open_bid -= 1
        if ps.n_open_bid == 0:
            ps.bid_hi = -1
        elif col == ps.bid_hi and head[row, col] < 0:
            j = col - 1
            while head[row, j] < 0:
                j -= 1
            ps.bid_hi = j
    else:
        ps.n_open_ask -= 1
        if ps.n_open_ask == 0:
            ps.ask_lo = -1
        elif col == ps.ask_lo and head[row, col] < 0:
            j = col + 1
            while head[row, j] < 0:
                j += 1
            ps.ask_lo = j


@internal
def _level_head_nb(head, sc, side, px):
    """First open probe at ``px`` on ``side`` (-1: none, or outside the window)."""
    col = px - sc[L_BASE]
    if col < 0 or col >= sc[L_W]:
        return np.int64(-1)
    return head[row_of(side), col]


# ---- the engine's rules, for each probe on its own -----------------------------------------


@internal
def _fill_nb(live, res, head, ps, k, ts, qty):
    """Fill ``qty`` lots of probe ``k`` at exchange time ``ts`` (``_fill`` for one order)."""
    live[k].leaves -= qty
    res[k].filled_qty += qty
    res[k].n_fills += 1
    if res[k].first_fill_ts == NO_TS:
        res[k].first_fill_ts = ts
    live[k].ahead = 0.0
    if live[k].leaves <= 0:
        res[k].done_ts = ts
        res[k].status = ProbeStatus.DONE
        _unlink_nb(live, head, ps, k)


@internal
def _try_fill_nb(live, res, head, ps, k, side, p, px_limit, at_px, behind, budget, hidden,
                 whole, ts):
    """``_fill_priority`` for probe ``k`` (at ``p``) alone: filled if its price is through
    ``px_limit``, or at ``at_px`` with the executed book order behind it (``behind`` > its
    sequence number) or a hidden trade beyond the volume ahead."""
    through = (side > 0 and p > px_limit) or (side < 0 and p < px_limit)
    if not through:
        if p != at_px:
            return
        if not ((behind >= 0 and behind > live[k].seq) or hidden):
            return
    b = budget
    if hidden and not through:
        # hidden liquidity at our price: displayed volume ahead is served first
        b -= np.int64(live[k].ahead + 0.5)
        if b <= 0:
            return
    take = b
    if take > live[k].leaves or whole:
        take = live[k].leaves
    _fill_nb(live, res, head, ps, k, ts, take)


@internal
def _hit_side_nb(live, res, head, ps, sc, side, px_limit, at_px, behind, budget, hidden,
                 whole, ts):
    """An execution (or new opposite volume) of ``budget`` lots reaching the probes on
    ``side``: each probe at a price through ``px_limit`` or at ``at_px`` is tried on its own
    with the whole budget (``_fill_priority`` as if it were our only order). ``at_px`` is
    the least aggressive price that can fill (``px_limit`` or one tick beyond it)."""
    if budget <= 0:
        return
    base = sc[L_BASE]
    if side > 0:
        if ps.n_open_bid == 0:
            return
        lo = at_px - base
        if lo < 0:
            lo = 0
        j = ps.bid_hi
        while j >= lo:
            k = head[BID_ROW, j]
            while k >= 0:
                nxt = live[k].nxt
                _try_fill_nb(live, res, head, ps, k, side, j + base, px_limit, at_px, behind,
                             budget, hidden, whole, ts)
                k = nxt
            j -= 1
    elif side < 0:
        if ps.n_open_ask == 0:
            return
        hi = at_px - base
        if hi > sc[L_W] - 1:
            hi = sc[L_W] - 1
        j = ps.ask_lo
        while 0 <= j <= hi:
            k = head[ASK_ROW, j]
            while k >= 0:
                nxt = live[k].nxt
                _try_fill_nb(live, res, head, ps, k, side, j + base, px_limit, at_px, behind,
                             budget, hidden, whole, ts)
                k = nxt
            j += 1


@internal
def _opposite_nb(live, res, head, ps, sc, side, px, q, whole, ts):
    """``_opposite_volume``: ``q`` lots of new resting volume on ``side`` at ``px`` fill the
    probes of the other side at or through ``px``."""
    base = sc[L_BASE]
    if side < 0 and ps.n_open_bid > 0 and px <= ps.bid_hi + base:
        _hit_side_nb(live, res, head, ps, sc, 1, px - 1, px, -1, q, False, whole, ts)
    elif side > 0 and ps.n_open_ask > 0 and px >= ps.ask_lo + base:
        _hit_side_nb(live, res, head, ps, sc, -1, px + 1, px, -1, q, False, whole, ts)


@internal
def _reduce_ahead_nb(live, head, sc, side, px, seq, amount):
    """``_reduce_ahead``: a book order (``seq``; -1 for anonymous volume) at ``px`` lost
    ``amount`` lots; the probes it was ahead of move up."""
    if side == 0:
        return
    k = _level_head_nb(head, sc, side, px)
    while k >= 0:
        if seq < 0 or seq <= live[k].seq:
            a = live[k].ahead - amount
            live[k].ahead = a if a > 0.0 else 0.0
        k = live[k].nxt


@internal
def _add_ahead_nb(live, head, sc, side, px, q):
    """Anonymous volume added at ``px`` queues ahead of the probes there (as in the engine)."""
    k = _level_head_nb(head, sc, side, px)
    while k >= 0:
        live[k].ahead += q
        k = live[k].nxt


@internal
def _l2_trade_at_nb(live, head, sc, side, px, q):
    """``_l2_trade_at``: a trade at the probes' price reduces their front (and is netted
    out of the depth update that follows)."""
    k = _level_head_nb(head, sc, side, px)
    while k >= 0:
        a = live[k].ahead - q
        live[k].ahead = a if a > 0.0 else 0.0
        live[k].traded += q
        k = live[k].nxt


@internal
def _l2_level_change_nb(live, head, sc, side, px, old_q, new_q, model, power_n):
    """``_l2_level_change``: the queue model moves the front of the probes at ``px``."""
    k = _level_head_nb(head, sc, side, px)
    while k >= 0:
        live[k].ahead = queue_front_nb(model, power_n, live[k].ahead, old_q, new_q,
                                       live[k].traded)
        live[k].traded = 0
        k = live[k].nxt


@internal
def _requeue_all_nb(live, res, lvl, sc, side, seq, to_back):
    """The open probes on ``side`` (0: both) after a CLEAR (``to_back`` false: nothing is
    ahead any more) or a SNAPSHOT_END (``to_back``: they rejoin at the back of their levels);
    their sequence number becomes ``seq`` (the engine's ``bs[B_SEQ]``)."""
    for k in range(res.shape[0]):
        if res[k].status != ProbeStatus.OPEN:
            continue
        s = 1 if live[k].row == BID_ROW else -1
        if side != 0 and s != side:
            continue
        if to_back:
            live[k].ahead = level_qty_nb(lvl, sc, s, live[k].col + sc[L_BASE])
        else:
            live[k].ahead = 0.0
        live[k].seq = seq


@internal
def _place_nb(probes, live, res, head, ps, lvl, sc, k, seq):
    """Probe ``k`` reaches the exchange (``_request_arrives`` for a post-only order):
    rejected while halted or when crossing, else it joins the back of its level."""
    pr = probes[k]
    side = pr.side
    bb = best_bid_tick_nb(sc)
    ba = best_ask_tick_nb(sc)
    own = bb if side > 0 else ba
    if ps.halted != 0:
        res[k].status = ProbeStatus.HALTED
        return
    if pr.anchor == Anchor.TOUCH:
        if own < 0:
            res[k].status = ProbeStatus.NO_TOUCH
            return
        off = pr.offset_ticks
        px = own - off if side > 0 else own + off
    else:
        px = pr.price_tick
        if own < 0:
            off = NO_OFFSET
        else:
            off = own - px if side > 0 else px - own
    res[k].price_tick = px
    res[k].offset_ticks = off
    if (side > 0 and ba >= 0 and px >= ba) or (side < 0 and bb >= 0 and px <= bb):
        res[k].status = ProbeStatus.CROSSED
        return
    col = px - sc[L_BASE]
    if col < 0 or col >= sc[L_W]:
        res[k].status = ProbeStatus.OUT_OF_WINDOW
        return
    q0 = level_qty_nb(lvl, sc, side, px)
    res[k].queue_ahead = q0
    res[k].status = ProbeStatus.OPEN
    live[k].ahead = q0
    live[k].seq = seq
    live[k].leaves = pr.qty
    live[k].traded = 0
    _link_nb(live, head, ps, k, row_of(side), col)


@internal
def _place_before_nb(probes, live, res, head, ps, lvl, sc, ts, inclusive, seq):
    """Place every pending probe with ``place_ts < ts`` (``<=`` when ``inclusive``)."""
    m = probes.shape[0]
    while ps.next_probe < m:
        t = probes[ps.next_probe].place_ts
        if t > ts or (t == ts and not inclusive):
            break
        _place_nb(probes, live, res, head, ps, lvl, sc, ps.next_probe, seq)
        ps.next_probe += 1


@internal
def _rare_nb(e, kind, live, res, ps, lvl, sc, seq):
    """SNAPSHOT_BEGIN / SNAPSHOT_END / STATUS / MARK / FUNDING / BBO (CLEAR is the caller's,
    which empties its book first). Returns False for a kind no pass takes."""
    if kind == EventKind.SNAPSHOT_BEGIN:
        ps.in_snapshot = 1
    elif kind == EventKind.SNAPSHOT_END:
        ps.in_snapshot = 0
        _requeue_all_nb(live, res, lvl, sc, 0, seq, True)
    elif kind == EventKind.STATUS:
        ps.halted = 1 if e.value < 0.5 else 0
    elif not (kind == EventKind.MARK or kind == EventKind.FUNDING or kind == EventKind.BBO):
        return False
    return True


# ---- L3 truth --------------------------------------------------------------------------------


@internal
def _l3_event_nb(e, live, res, head, ps, ordt, free, hkeys, hvals, bs, lvl, anon, sc, whole):
    """One L3 event on the book and the probes (``_market_event`` in FIFO mode, each probe
    on its own). Returns a :data:`PassCode`."""
    kind = np.int64(e.kind)
    side = np.int64(e.side)
    px = e.price_tick
    q = e.qty
    oid = e.order_id
    ts = e.exch_ts
    snap = ps.in_snapshot != 0

    if kind == EventKind.ADD:
        if oid != 0:
            old = find_order_nb(hkeys, hvals, bs, oid)
            if old >= 0:
                os_ = ordt[old, O_SIDE]
                op = ordt[old, O_PRICE]
                oseq = ordt[old, O_SEQ]
                oq = l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl, sc, old)
                _reduce_ahead_nb(live, head, sc, os_, op, oseq, oq)
        if l3_add_nb(ordt, free, hkeys, hvals, bs, lvl, anon, sc, oid, side, px, q,
                     False) == -2:
            return PassCode.FULL
        if oid == 0:
            _add_ahead_nb(live, head, sc, side, px, q)
        if not snap:
            _opposite_nb(live, res, head, ps, sc, side, px, q, whole, ts)
        return PassCode.OK

    if kind == EventKind.CANCEL or kind == EventKind.DELETE or kind == EventKind.EXECUTE:
        if oid == 0:
            removed = l3_anon_reduce_nb(lvl, anon, sc, side, px, q)
            seq = np.int64(-1)
            oside = side
            opx = px
        else:
            slot = find_order_nb(hkeys, hvals, bs, oid)
            if slot < 0:
                bs[B_UNKNOWN] += 1
                return PassCode.OK
            oside = ordt[slot, O_SIDE]
            opx = ordt[slot, O_PRICE]
            seq = ordt[slot, O_SEQ]
            if kind == EventKind.DELETE:
                removed = l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot)
            else:
                removed = l3_reduce_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot, q)
        if kind == EventKind.EXECUTE and not snap:
            # through-fills and behind-us executions first, then the queue ahead shrinks
            _hit_side_nb(live, res, head, ps, sc, oside, opx, opx, seq,
                         removed if removed > 0 else q, False, whole, ts)
        _reduce_ahead_nb(live, head, sc, oside, opx, seq, removed)
        return PassCode.OK

    if kind == EventKind.MODIFY:
        slot = find_order_nb(hkeys, hvals, bs, oid) if oid != 0 else np.int64(-1)
        if slot < 0:
            if l3_add_nb(ordt, free, hkeys, hvals, bs, lvl, anon, sc, oid, side, px, q,
                         True) == -2:
                return PassCode.FULL
        else:
            oside = ordt[slot, O_SIDE]
            opx = ordt[slot, O_PRICE]
            oq = ordt[slot, O_QTY]
            seq = ordt[slot, O_SEQ]
            lost = l3_modify_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot, side, px, q)
            dec = oq if lost == 1 else oq - q
            if dec > 0:
                _reduce_ahead_nb(live, head, sc, oside, opx, seq, dec)
        if not snap:
            _opposite_nb(live, res, head, ps, sc, side, px, q, whole, ts)
        return PassCode.OK

    if kind == EventKind.TRADE:
        if snap or (e.flags & _NO_FILL_FLAGS) != 0:
            return PassCode.OK
        _hit_side_nb(live, res, head, ps, sc, side, px, px, -1, q, True, whole, ts)
        return PassCode.OK

    if kind == EventKind.CLEAR:
        l3_clear_nb(ordt, free, hkeys, hvals, bs, lvl, anon, sc, side)
        _requeue_all_nb(live, res, lvl, sc, side, bs[B_SEQ], False)
        return PassCode.OK

    if _rare_nb(e, kind, live, res, ps, lvl, sc, bs[B_SEQ]):
        return PassCode.OK
    return PassCode.BAD_KIND  # LEVEL_SET or unknown: not an L3 stream


@kernel
def l3_probe_pass_nb(ev, probes, live, res, head, ordt, free, hkeys, hvals, bs, lvl, anon, sc,
                     whole, state):
    """Follow every probe through the L3 events ``ev`` from row ``state[0].row`` (the truth).

    Parameters
    ----------
    ev : EVENT_DTYPE[n]
        Canonical L3 events, sorted by ``exch_ts``.
    probes : PROBE_DTYPE[m]
        Sorted by ``place_ts``.
    live : PROBE_LIVE_DTYPE[m], res : PROBE_RESULT_DTYPE[m]
        Per-probe state and results (``res`` starts with ``first_fill_ts = done_ts =
        NO_TS``, zero counts, status PENDING).
    head : int64[2, W]
        Level lists (-1 = empty), same window as the book.
    ordt, free, hkeys, hvals, bs, lvl, anon, sc
        An L3 book (:func:`mmsim.book.nb.new_l3_book`), replayed as the engine replays it.
    whole : bool
        ``cfg.whole_fills``: an execution reaching a probe fills all of it.
    state : PASS_STATE_DTYPE[1]

    Returns
    -------
    int
        A :data:`PassCode`; on FULL the caller grows the book and calls again (nothing of
        row ``state[0].row`` was applied); on BAD_KIND that row is not an L3 event.
    """
    ps = state[0]
    n = ev.shape[0]
    for i in range(ps.row, n):
        e = ev[i]
        _place_before_nb(probes, live, res, head, ps, lvl, sc, e.exch_ts, False, bs[B_SEQ])
        kind = np.int64(e.kind)
        if bs[B_NFREE] == 0 and (kind == EventKind.ADD or kind == EventKind.MODIFY) \
                and e.order_id != 0:
            ps.row = i
            return PassCode.FULL
        rc = _l3_event_nb(e, live, res, head, ps, ordt, free, hkeys, hvals, bs, lvl, anon, sc,
                          whole)
        if rc != PassCode.OK:
            ps.row = i
            return rc
    if n > 0:
        _place_before_nb(probes, live, res, head, ps, lvl, sc, ev[n - 1].exch_ts, True,
                         bs[B_SEQ])
    ps.row = n
    return PassCode.OK


# ---- L2 estimate -----------------------------------------------------------------------------


@internal
def _l2_event_nb(e, live, res, head, ps, lvl, sc, model, power_n, whole):
    """One L2 event on the ladder and the probes (``_market_event`` in L2 mode). Returns a
    :data:`PassCode`."""
    kind = np.int64(e.kind)
    side = np.int64(e.side)
    px = e.price_tick
    q = e.qty
    ts = e.exch_ts
    snap = ps.in_snapshot != 0
    if kind == EventKind.LEVEL_SET:
        col = px - sc[L_BASE]
        if col < 0 or col >= sc[L_W]:
            ps.n_out_of_window += 1
            return PassCode.OK
        old = level_qty_nb(lvl, sc, side, px)
        if q == old:
            return PassCode.OK
        ladder_change_nb(lvl, sc, side, px, q - old)
        if snap:
            return PassCode.OK
        _l2_level_change_nb(live, head, sc, side, px, old, q, model, power_n)
        if q > old:
            _opposite_nb(live, res, head, ps, sc, side, px, q - old, whole, ts)
        return PassCode.OK
    if kind == EventKind.TRADE:
        if snap or (e.flags & _NO_FILL_FLAGS) != 0 or side == 0:
            return PassCode.OK
        _hit_side_nb(live, res, head, ps, sc, side, px, px, -1, q, True, whole, ts)
        # the trade executed displayed volume ahead; the depth update that follows shows it
        _l2_trade_at_nb(live, head, sc, side, px, q)
        return PassCode.OK
    if kind == EventKind.CLEAR:
        ladder_clear_nb(lvl, sc, side)
        _requeue_all_nb(live, res, lvl, sc, side, 0, False)
        return PassCode.OK
    if _rare_nb(e, kind, live, res, ps, lvl, sc, 0):
        return PassCode.OK
    return PassCode.BAD_KIND  # ADD, CANCEL, ...: not an L2 stream


@kernel
def l2_probe_pass_nb(ev, probes, live, res, head, lvl, sc, model, power_n, whole, state):
    """Follow every probe through the L2 events ``ev`` with one queue model (the estimate).

    Parameters
    ----------
    ev : EVENT_DTYPE[n]
        An L2 stream (``LEVEL_SET``, ``TRADE``, ``CLEAR``, snapshot brackets, ``STATUS`` and
        the no-book kinds), e.g. :func:`mmsim.data.l3_to_l2.l3_to_l2` of the truth's events.
    probes, live, res, head, whole, state
        As :func:`l3_probe_pass_nb`.
    lvl, sc
        An empty price ladder (:func:`mmsim.book.nb.new_ladder`). Unlike the engine's it
        never moves (updates outside it are counted in ``state[0].n_out_of_window``).
    model : int
        ``QUEUE_RISK_AVERSE``, ``QUEUE_POWER`` or ``QUEUE_LOG`` (:mod:`mmsim.models.queue`).
    power_n : float
        Exponent of the power model.

    Returns
    -------
    int
        A :data:`PassCode` (BAD_KIND: row ``state[0].row`` is not an L2 event).
    """
    ps = state[0]
    n = ev.shape[0]
    for i in range(ps.row, n):
        e = ev[i]
        _place_before_nb(probes, live, res, head, ps, lvl, sc, e.exch_ts, False, 0)
        rc = _l2_event_nb(e, live, res, head, ps, lvl, sc, model, power_n, whole)
        if rc != PassCode.OK:
            ps.row = i
            return rc
    if n > 0:
        _place_before_nb(probes, live, res, head, ps, lvl, sc, ev[n - 1].exch_ts, True, 0)
    ps.row = n
    return PassCode.OK
