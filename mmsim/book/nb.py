"""Numba order-book kernels: dense price ladders and the L3 (market-by-order) book.

All kernels take only arrays and scalars (``*_nb``); :mod:`mmsim.book.l3` allocates them.

Price ladder
    ``lvl_qty`` int64[2, W]: quantity in lots per price level, row 0 bids, row 1 asks, column
    ``price_tick - base``. ``sc`` int64[LADDER_SCALARS] holds base, W, the best indices and level
    counts. Prices outside ``[base, base + W)`` are counted in ``sc[L_OOW]`` and not stored.
    The same ladder serves the exchange L3 book (aggregated over orders) and the strategy's
    delayed local view (:mod:`mmsim.engine.nb`).

L3 book
    An open-addressing hash map (linear probing, backward-shift deletion) from vendor order id
    to an order slot; per slot the side, price, quantity and arrival sequence number. Anonymous
    volume (order id 0) is kept per level in ``anon`` int64[2, W] and, like any order resting
    before ours, counts as ahead of our orders (MODELS.md §6, L3 FIFO).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from mmsim._jitcache import inlined, internal, kernel  # (before any cached kernel)

# ---- ladder scalars -------------------------------------------------------------------------
L_BASE = 0  # price tick of column 0
L_W = 1  # number of columns
L_BEST_BID = 2  # column of the best bid, -1 if no bid
L_BEST_ASK = 3  # column of the best ask, -1 if no ask
L_NBID = 4  # non-empty bid levels
L_NASK = 5  # non-empty ask levels
L_OOW = 6  # events outside the window (count)
L_NEG = 7  # decreases below zero, clamped (count)
LADDER_SCALARS = 8
BID_ROW = 0  # lvl_qty row of the bids
ASK_ROW = 1  # lvl_qty row of the asks

# ---- L3 book scalars ------------------------------------------------------------------------
B_SEQ = 0  # last arrival sequence number given
B_NORD = 1  # live orders
B_NFREE = 2  # free slots on the stack
B_MASK = 3  # hash capacity - 1
B_FULL = 4  # adds dropped because the order table was full (count)
B_UNKNOWN = 5  # references to unknown order ids (count)
BOOK_SCALARS = 8

# ---- order slot fields (ord int64[M, ORD_FIELDS]) --------------------------------------------
O_ID = 0
O_SIDE = 1
O_PRICE = 2
O_QTY = 3
O_SEQ = 4
O_USED = 5
ORD_FIELDS = 6

_EMPTY = -1


@nb.njit(cache=True, inline="always", _nrt=False)
def row_of(side):
    """Ladder row of a side: 0 for bids (+1), 1 for asks (-1)."""
    return 0 if side > 0 else 1


@kernel
def ladder_change_nb(lvl_qty, sc, side, price_tick, delta):
    """Add ``delta`` lots at ``price_tick`` on ``side``; keep best prices and counts.

    Returns the new level quantity (0 when outside the window). A result below zero is
    clamped to 0 and counted in ``sc[L_NEG]``.
    """
    idx = price_tick - sc[L_BASE]
    if idx < 0 or idx >= sc[L_W]:
        sc[L_OOW] += 1
        return 0
    r = row_of(side)
    old = lvl_qty[r, idx]
    new = old + delta
    if new < 0:
        sc[L_NEG] += 1
        new = 0
    lvl_qty[r, idx] = new
    if old == 0 and new > 0:
        if r == 0:
            sc[L_NBID] += 1
            if sc[L_BEST_BID] < 0 or idx > sc[L_BEST_BID]:
                sc[L_BEST_BID] = idx
        else:
            sc[L_NASK] += 1
            if sc[L_BEST_ASK] < 0 or idx < sc[L_BEST_ASK]:
                sc[L_BEST_ASK] = idx
    elif old > 0 and new == 0:
        if r == 0:
            sc[L_NBID] -= 1
            if idx == sc[L_BEST_BID]:
                if sc[L_NBID] == 0:
                    sc[L_BEST_BID] = -1
                else:
                    j = idx - 1
                    while lvl_qty[0, j] == 0:
                        j -= 1
                    sc[L_BEST_BID] = j
        else:
            sc[L_NASK] -= 1
            if idx == sc[L_BEST_ASK]:
                if sc[L_NASK] == 0:
                    sc[L_BEST_ASK] = -1
                else:
                    j = idx + 1
                    while lvl_qty[1, j] == 0:
                        j += 1
                    sc[L_BEST_ASK] = j
    return new


#: :func:`ladder_change_nb` inlined into its caller: for the engine's per-event path (an L2
#: level update and the feed applying it to the local view), where the call itself (some
#: twenty arguments: each array passes its data pointer, shape and strides) cost about as
#: many instructions as the update
ladder_change_inline_nb = inlined(ladder_change_nb)


@kernel
def ladder_recenter_nb(lvl_qty, sc, new_base):
    """Move the ladder window to start at ``new_base`` (ticks), keeping the levels that stay
    inside it; levels that fall outside are dropped (counted in ``sc[L_OOW]``).

    One pass over each row: the kept columns are moved by the shift, the columns it uncovers
    zeroed, and only the dropped ones read for the count. The level counts and best prices
    follow from the old ones (``L_NBID``/``L_NASK`` count the non-empty columns, every bid is
    at or below the best bid and every ask at or above the best ask); a scan is needed only
    when the best level itself leaves the window and others stay.
    """
    w = sc[L_W]
    shift = new_base - sc[L_BASE]
    if shift == 0:
        return
    a = shift if shift > 0 else -shift
    keep = w - a if a < w else 0
    d_bid = 0
    d_ask = 0
    for r in range(2):
        row = lvl_qty[r]  # (a 1-D view: plain loops the compiler can vectorise)
        n_out = 0
        if shift > 0:  # columns [0, a) leave at the bottom; j <- j + a
            for j in range(w - keep):
                n_out += row[j] > 0
            for j in range(keep):
                row[j] = row[j + a]
            row[keep:] = 0
        else:  # columns [keep, w) leave at the top; j <- j - a
            for j in range(keep, w):
                n_out += row[j] > 0
            for j in range(keep - 1, -1, -1):
                row[j + a] = row[j]
            row[: w - keep] = 0
        if r == 0:
            d_bid = n_out
        else:
            d_ask = n_out
    sc[L_OOW] += d_bid + d_ask
    sc[L_BASE] = new_base
    nb_ = sc[L_NBID] - d_bid
    na_ = sc[L_NASK] - d_ask
    bb = sc[L_BEST_BID] - shift
    ba = sc[L_BEST_ASK] - shift
    if nb_ < 0 or na_ < 0 or (nb_ > 0 and bb < 0) or (na_ > 0 and ba >= w):
        _ladder_recount_nb(lvl_qty, sc)  # (counts that do not add up: recount the window)
        return
    if nb_ == 0:
        bb = -1
    elif bb >= w:  # the best bid left at the top: the highest kept one
        bb = w - 1
        while bb >= 0 and lvl_qty[0, bb] == 0:
            bb -= 1
    if na_ == 0:
        ba = -1
    elif ba < 0:  # the best ask left at the bottom: the lowest kept one
        ba = 0
        while ba < w and lvl_qty[1, ba] == 0:
            ba += 1
    if (nb_ > 0 and bb < 0) or (na_ > 0 and ba >= w):
        _ladder_recount_nb(lvl_qty, sc)  # (no kept level where the counts say one is)
        return
    sc[L_NBID] = nb_
    sc[L_NASK] = na_
    sc[L_BEST_BID] = bb
    sc[L_BEST_ASK] = ba


@internal
def _ladder_recount_nb(lvl_qty, sc):
    """Set the level counts and best prices of ``sc`` from the columns of ``lvl_qty``."""
    w = sc[L_W]
    nb_ = 0
    na_ = 0
    bb = -1
    ba = -1
    for j in range(w):
        if lvl_qty[0, j] > 0:
            nb_ += 1
            bb = j
        if lvl_qty[1, j] > 0:
            na_ += 1
            if ba < 0:
                ba = j
    sc[L_NBID] = nb_
    sc[L_NASK] = na_
    sc[L_BEST_BID] = bb
    sc[L_BEST_ASK] = ba


@kernel
def ladder_clear_nb(lvl_qty, sc, side):
    """Empty one side (+1 bids, -1 asks) or both (0) of a ladder."""
    for r in range(2):
        if (side > 0 and r == 1) or (side < 0 and r == 0):
            continue
        lvl_qty[r, :] = 0
        if r == 0:
            sc[L_NBID] = 0
            sc[L_BEST_BID] = -1
        else:
            sc[L_NASK] = 0
            sc[L_BEST_ASK] = -1


@nb.njit(cache=True, inline="always", _nrt=False)
def best_bid_tick_nb(sc):
    """Best bid in ticks, or -1 if there is no bid."""
    b = sc[L_BEST_BID]
    return b + sc[L_BASE] if b >= 0 else -1


@nb.njit(cache=True, inline="always", _nrt=False)
def best_ask_tick_nb(sc):
    """Best ask in ticks, or -1 if there is no ask."""
    a = sc[L_BEST_ASK]
    return a + sc[L_BASE] if a >= 0 else -1


@nb.njit(cache=True, inline="always", _nrt=False)
def level_qty_nb(lvl_qty, sc, side, price_tick):
    """Quantity at ``price_tick`` on ``side`` (0 if empty or outside the window)."""
    idx = price_tick - sc[L_BASE]
    if idx < 0 or idx >= sc[L_W]:
        return 0
    return lvl_qty[row_of(side), idx]


@kernel
def ladder_top_nb(lvl_qty, sc, side, n, px_out, qty_out):
    """Write the best ``n`` levels of ``side`` into ``px_out``/``qty_out`` (ticks, lots).

    Missing levels get price -1 and quantity 0. Returns the number of levels found.
    """
    r = row_of(side)
    best = sc[L_BEST_BID] if r == 0 else sc[L_BEST_ASK]
    nlev = sc[L_NBID] if r == 0 else sc[L_NASK]
    k = 0
    j = best
    w = sc[L_W]
    row = lvl_qty[r]
    if best >= 0:
        # after an empty column, eight empty columns at a time (on a fine grid, e.g. 0.01
        # on BTCUSDT spot, the five best levels can span hundreds of columns; a dense book
        # never takes the skip); quantities are never negative, so an OR of eight is zero
        # only if all eight are
        if r == 0:
            while k < n and k < nlev and j >= 0:
                q = row[j]
                j -= 1
                if q > 0:
                    px_out[k] = j + 1 + sc[L_BASE]
                    qty_out[k] = q
                    k += 1
                else:
                    while j >= 7 and (row[j] | row[j - 1] | row[j - 2] | row[j - 3]
                                      | row[j - 4] | row[j - 5] | row[j - 6] | row[j - 7]) == 0:
                        j -= 8
        else:
            while k < n and k < nlev and j < w:
                q = row[j]
                j += 1
                if q > 0:
                    px_out[k] = j - 1 + sc[L_BASE]
                    qty_out[k] = q
                    k += 1
                else:
                    while j + 7 < w and (row[j] | row[j + 1] | row[j + 2] | row[j + 3]
                                         | row[j + 4] | row[j + 5] | row[j + 6]
                                         | row[j + 7]) == 0:
                        j += 8
    found = k
    while k < n:
        px_out[k] = -1
        qty_out[k] = 0
        k += 1
    return found


# ---- hash map --------------------------------------------------------------------------------


@nb.njit(cache=True, inline="always", _nrt=False)
def _hash(key, mask):
    h = key * -7046029254386353131  # 0x9E3779B97F4A7C15 as int64, wraps
    h ^= h >> 29
    return h & mask


@kernel
def find_order_nb(hkeys, hvals, bs, oid):
    """Slot of order ``oid``, or -1 if it is not in the book."""
    mask = bs[B_MASK]
    i = _hash(oid, mask)
    while True:
        s = hvals[i]
        if s == _EMPTY:
            return -1
        if hkeys[i] == oid:
            return s
        i = (i + 1) & mask


@internal
def _hash_insert(hkeys, hvals, bs, oid, slot):
    mask = bs[B_MASK]
    i = _hash(oid, mask)
    while hvals[i] != _EMPTY:
        i = (i + 1) & mask
    hkeys[i] = oid
    hvals[i] = slot


@internal
def _hash_delete(hkeys, hvals, bs, oid):
    mask = bs[B_MASK]
    i = _hash(oid, mask)
    while True:
        if hvals[i] == _EMPTY:
            return
        if hkeys[i] == oid:
            break
        i = (i + 1) & mask
    # backward-shift deletion keeps probe chains intact without tombstones
    j = i
    while True:
        j = (j + 1) & mask
        if hvals[j] == _EMPTY:
            break
        k = _hash(hkeys[j], mask)
        if (j > i and (k <= i or k > j)) or (j < i and (k <= i and k > j)):
            hkeys[i] = hkeys[j]
            hvals[i] = hvals[j]
            i = j
    hvals[i] = _EMPTY


# ---- L3 book ---------------------------------------------------------------------------------


@kernel
def l3_add_nb(ordt, free, hkeys, hvals, bs, lvl_qty, anon, sc, oid, side, price_tick, qty,
              check_dup=True):
    """Add order ``oid`` at the back of its level (``oid == 0``: anonymous volume).

    An id already in the book is removed first (callers that checked already pass
    ``check_dup=False``). Returns the slot used, -1 for anonymous volume, -2 if the order table
    is full (the add is dropped and counted in ``bs[B_FULL]``).
    """
    if qty <= 0:
        return -1
    if oid == 0:
        idx = price_tick - sc[L_BASE]
        if 0 <= idx < sc[L_W]:
            anon[row_of(side), idx] += qty
        ladder_change_inline_nb(lvl_qty, sc, side, price_tick, qty)
        return -1
    if check_dup:
        old = find_order_nb(hkeys, hvals, bs, oid)
        if old >= 0:
            l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl_qty, sc, old)
    if bs[B_NFREE] == 0:
        bs[B_FULL] += 1
        return -2
    bs[B_NFREE] -= 1
    slot = free[bs[B_NFREE]]
    bs[B_SEQ] += 1
    ordt[slot, O_ID] = oid
    ordt[slot, O_SIDE] = side
    ordt[slot, O_PRICE] = price_tick
    ordt[slot, O_QTY] = qty
    ordt[slot, O_SEQ] = bs[B_SEQ]
    ordt[slot, O_USED] = 1
    bs[B_NORD] += 1
    _hash_insert(hkeys, hvals, bs, oid, slot)
    ladder_change_inline_nb(lvl_qty, sc, side, price_tick, qty)
    return slot


@kernel
def l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl_qty, sc, slot):
    """Remove the order in ``slot`` entirely; returns the quantity it had."""
    q = ordt[slot, O_QTY]
    ladder_change_inline_nb(lvl_qty, sc, ordt[slot, O_SIDE], ordt[slot, O_PRICE], -q)
    _hash_delete(hkeys, hvals, bs, ordt[slot, O_ID])
    ordt[slot, O_USED] = 0
    ordt[slot, O_QTY] = 0
    free[bs[B_NFREE]] = slot
    bs[B_NFREE] += 1
    bs[B_NORD] -= 1
    return q


@kernel
def l3_reduce_nb(ordt, free, hkeys, hvals, bs, lvl_qty, sc, slot, qty):
    """Reduce the order in ``slot`` by ``qty`` lots (removed at 0); returns the lots removed."""
    q = ordt[slot, O_QTY]
    if qty >= q:
        return l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl_qty, sc, slot)
    ordt[slot, O_QTY] = q - qty
    ladder_change_inline_nb(lvl_qty, sc, ordt[slot, O_SIDE], ordt[slot, O_PRICE], -qty)
    return qty


@kernel
def l3_anon_reduce_nb(lvl_qty, anon, sc, side, price_tick, qty):
    """Reduce anonymous volume at a level by up to ``qty``; returns the lots removed."""
    idx = price_tick - sc[L_BASE]
    if idx < 0 or idx >= sc[L_W]:
        sc[L_OOW] += 1
        return 0
    r = row_of(side)
    have = anon[r, idx]
    take = qty if qty < have else have
    if take > 0:
        anon[r, idx] = have - take
        ladder_change_inline_nb(lvl_qty, sc, side, price_tick, -take)
    return take


@kernel
def l3_modify_nb(ordt, free, hkeys, hvals, bs, lvl_qty, sc, slot, side, price_tick, qty):
    """Change the order in ``slot`` to (side, price, qty).

    A price or side change, or a size increase, loses priority (new sequence number); a size
    decrease keeps it (MODELS.md §6). ``qty <= 0`` removes the order. Returns 1 if the order
    lost priority, else 0.
    """
    if qty <= 0:
        l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl_qty, sc, slot)
        return 1
    old_side = ordt[slot, O_SIDE]
    old_px = ordt[slot, O_PRICE]
    old_q = ordt[slot, O_QTY]
    if old_side == side and old_px == price_tick:
        ladder_change_inline_nb(lvl_qty, sc, side, price_tick, qty - old_q)
        ordt[slot, O_QTY] = qty
        if qty > old_q:
            bs[B_SEQ] += 1
            ordt[slot, O_SEQ] = bs[B_SEQ]
            return 1
        return 0
    ladder_change_inline_nb(lvl_qty, sc, old_side, old_px, -old_q)
    ladder_change_inline_nb(lvl_qty, sc, side, price_tick, qty)
    ordt[slot, O_SIDE] = side
    ordt[slot, O_PRICE] = price_tick
    ordt[slot, O_QTY] = qty
    bs[B_SEQ] += 1
    ordt[slot, O_SEQ] = bs[B_SEQ]
    return 1


@kernel
def l3_clear_nb(ordt, free, hkeys, hvals, bs, lvl_qty, anon, sc, side):
    """Remove every order (and anonymous volume) of one side, or of both when ``side == 0``."""
    m = ordt.shape[0]
    for s in range(m):
        if ordt[s, O_USED] == 1:
            os_ = ordt[s, O_SIDE]
            if side == 0 or os_ == side:
                _hash_delete(hkeys, hvals, bs, ordt[s, O_ID])
                ordt[s, O_USED] = 0
                ordt[s, O_QTY] = 0
                free[bs[B_NFREE]] = s
                bs[B_NFREE] += 1
                bs[B_NORD] -= 1
    for r in range(2):
        if (side > 0 and r == 1) or (side < 0 and r == 0):
            continue
        anon[r, :] = 0
    ladder_clear_nb(lvl_qty, sc, side)


@kernel
def rehash_nb(ordt, hkeys, hvals, bs):
    """Rebuild the hash map from the order slots (after the table was enlarged)."""
    hvals[:] = _EMPTY
    for s in range(ordt.shape[0]):
        if ordt[s, O_USED] == 1:
            _hash_insert(hkeys, hvals, bs, ordt[s, O_ID], s)


def grow_l3_book(book: dict[str, np.ndarray]) -> None:
    """Double the live-order capacity of ``book`` in place (new arrays, same contents)."""
    old = book["ordt"]
    m = old.shape[0]
    ordt = np.zeros((2 * m, ORD_FIELDS), dtype=np.int64)
    ordt[:m] = old
    bs = book["bs"]
    nfree = int(bs[B_NFREE])
    free = np.zeros(2 * m, dtype=np.int64)
    free[:nfree] = book["free"][:nfree]
    free[nfree:nfree + m] = np.arange(2 * m - 1, m - 1, -1)
    bs[B_NFREE] = nfree + m
    hcap = 1
    while hcap < 4 * m:
        hcap *= 2
    bs[B_MASK] = hcap - 1
    hkeys = np.zeros(hcap, dtype=np.int64)
    hvals = np.full(hcap, _EMPTY, dtype=np.int64)
    rehash_nb(ordt, hkeys, hvals, bs)
    book.update(ordt=ordt, free=free, hkeys=hkeys, hvals=hvals)


def new_ladder(base_tick: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Allocate an empty ladder: (lvl_qty int64[2, width], sc int64[LADDER_SCALARS])."""
    lvl = np.zeros((2, width), dtype=np.int64)
    sc = np.zeros(LADDER_SCALARS, dtype=np.int64)
    sc[L_BASE] = base_tick
    sc[L_W] = width
    sc[L_BEST_BID] = -1
    sc[L_BEST_ASK] = -1
    return lvl, sc


def new_l3_book(base_tick: int, width: int, max_orders: int) -> dict[str, np.ndarray]:
    """Allocate an empty L3 book; returns its arrays by name (see the module docstring).

    Parameters
    ----------
    base_tick : int
        Price tick of the lowest ladder column.
    width : int
        Ladder columns (price levels) per side.
    max_orders : int
        Live-order capacity; the hash map gets the next power of two above ``2 * max_orders``.
    """
    lvl, sc = new_ladder(base_tick, width)
    hcap = 1
    while hcap < 2 * max_orders:
        hcap *= 2
    bs = np.zeros(BOOK_SCALARS, dtype=np.int64)
    bs[B_NFREE] = max_orders
    bs[B_MASK] = hcap - 1
    return {
        "ordt": np.zeros((max_orders, ORD_FIELDS), dtype=np.int64),
        "free": np.arange(max_orders - 1, -1, -1, dtype=np.int64),
        "hkeys": np.zeros(hcap, dtype=np.int64),
        "hvals": np.full(hcap, _EMPTY, dtype=np.int64),
        "bs": bs,
        "lvl": lvl,
        "anon": np.zeros((2, width), dtype=np.int64),
        "sc": sc,
    }
