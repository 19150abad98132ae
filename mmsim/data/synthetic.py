"""Synthetic L3 (market-by-order) order flow: a seeded, chunked, numba-compiled generator.

The default experiment of mmsim runs on this feed, so it needs no external data; benchmarks
draw tens of millions of events from it. The generator writes canonical
:data:`~mmsim.dtypes.EVENT_DTYPE` records and is *resumable*: :meth:`SyntheticL3.next_chunk`
continues exactly where the previous call stopped, and the concatenation of the chunks is
the same, byte for byte, whatever the chunk sizes.

Model
-----
Prices are integer ticks, quantities integer lots. The state is a latent reference price
``m`` (ticks): the latent mid is ``m + 1/2``, so a book quoting ``m`` / ``m + 1`` has a
one-tick spread centred on it.

* **Clock.** Events arrive as a Poisson process of rate ``event_rate_per_s``: the gap before
  each event is exponential, rounded down to whole nanoseconds and accumulated in int64 (no
  drift from float sums). ``exch_ts`` starts at ``start_ts`` (default 2024-01-02 14:30:00
  UTC); ``local_ts == exch_ts`` (one clock).
* **Latent mid.** Before each event, ``m`` moves one tick up or down (probability 1/2 each)
  with probability ``mid_move_rate_per_s / event_rate_per_s``: by Poisson thinning, mid moves
  form a Poisson process of rate ``mid_move_rate_per_s``, so the latent mid is a continuous-
  time random walk with variance ``mid_move_rate_per_s`` ticks² per second. It is reflected
  off the edges of the price window (``price_window_ticks`` wide, see below).
* **Event type.** With ``n`` live orders, an event is an ADD, a CANCEL/DELETE or a market
  order with probabilities proportional to ``add_weight``, ``cancel_weight · n /
  target_live_orders`` and ``market_weight``. Cancels thus hit each resting order at a
  constant per-order rate, as in Cont, Stoikov and Talreja (2010), and the book size is
  mean-reverting around ``target_live_orders`` (the weights are the probabilities when
  ``n == target_live_orders``).
* **ADD.** Side buy or sell with probability 1/2; depth ``D ~ Geometric`` on {0, 1, ...}
  with mean ``add_depth_mean_ticks``, truncated at ``max_add_depth_ticks``. A buy rests at
  ``min(m − D, best_ask − 1)``, a sell at ``max(m + 1 + D, best_bid + 1)``: adds never
  cross. Size uniform on ``1..max_add_qty`` lots. Order ids are 1, 2, 3, ... in ADD order.
* **CANCEL / DELETE.** A live order chosen uniformly at random. With probability
  ``partial_cancel_prob`` (and if it has more than one lot) a CANCEL of ``U{1..qty−1}`` lots;
  otherwise a DELETE (``qty`` = its remaining size, informational).
* **Market order.** A buy with probability ``0.5 + market_bias_per_tick · (m + 1/2 −
  book mid)`` clipped to [0.05, 0.95] (flow pushes the book towards the latent mid, so the
  book follows it), of size ``1 + Geometric`` with mean ``market_qty_mean`` lots, at most
  ``max_market_qty``. It executes the front orders of the opposite best level, then the next
  level, in FIFO order: one EXECUTE record per resting order touched (``side`` = resting
  side), all at the same ``exch_ts``, only the last with the ``LAST`` flag. A market order
  never empties the opposite side: on the last remaining level it leaves at least one lot
  (it is then partly unfilled; nothing records the unfilled part).
* **Refill.** After every event, a side with fewer than ``min_levels`` price levels gets new
  orders (ADD records at the same ``exch_ts``) at the first empty prices behind its best
  (or at ``m`` / ``m + 1`` when the side is empty) until it has ``min_levels`` levels.
* **Opening book.** ``initial_levels`` levels × ``initial_orders_per_level`` orders per side
  at ``m − k`` (bids) and ``m + 1 + k`` (asks), emitted as ADD records at ``start_ts``;
  only the last one carries ``LAST`` (the book is one consistent snapshot after it).

Every record other than those inside a market-order group has the ``LAST`` flag (each is a
whole exchange event). No TRADE records are emitted: the EXECUTE records carry the trades.

Randomness comes from xoshiro256** (Blackman and Vigna 2018, https://prng.di.unimi.it/)
seeded through splitmix64, implemented here in numba on a ``uint64[4]`` state, so a stream
depends only on the seed and the parameters, not on numpy's or numba's RNG internals.

The book lives in a window of ``price_window_ticks`` prices starting at
``max(0, start_price_tick − price_window_ticks // 2)``; the latent mid is kept far enough
inside it that no order can leave it (see :class:`SyntheticParams`).
"""

from __future__ import annotations

import dataclasses
import math
import sys

import numba
import numpy as np

from mmsim._jitcache import inlined  # (before any cached kernel)
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventFlag, EventKind

__all__ = ["DEFAULT_START_TS", "SyntheticL3", "SyntheticParams", "generate_synthetic"]

#: 2024-01-02 14:30:00 UTC (the NYSE open), int64 UNIX ns.
DEFAULT_START_TS = 1_704_205_800_000_000_000

# ---------------------------------------------------------------------------------------
# Layout of the state arrays (module-level ints are compile-time constants in numba).

# st: int64 scalars of the generator.
_S_TS = 0  # current exchange time, ns
_S_MID = 1  # latent reference tick m (latent mid = m + 0.5)
_S_BEST_BID = 2  # lo - 1 when the bid side is empty
_S_BEST_ASK = 3  # hi + 1 when the ask side is empty
_S_NLEV_BID = 4  # number of non-empty bid levels
_S_NLEV_ASK = 5
_S_NEXT_ID = 6  # next order id
_S_N_LIVE = 7  # live orders
_S_FREE_TOP = 8  # number of free slots on the free stack
_S_PEND_N = 9  # records in the pending buffer
_S_PEND_HEAD = 10  # next pending record to hand out
_S_LO = 11  # lowest price of the window (ticks)
_S_HI = 12  # highest price of the window (ticks)
_S_MID_MIN = 13  # reflecting bounds of m
_S_MID_MAX = 14
_S_N_EMITTED = 15  # records handed out so far
_S_SIZE = 16

# par: float64 parameters.
_P_RATE = 0  # events per second
_P_ADD_W = 1
_P_CANCEL_W = 2
_P_MARKET_W = 3
_P_MOVE_PROB = 4  # probability of a mid move per event
_P_DEPTH_LOG = 5  # log(1 - p) of the depth geometric law (0 => depth always 0)
_P_PARTIAL = 6
_P_MKT_LOG = 7  # log(1 - p) of the (market size - 1) geometric law
_P_BIAS = 8
_P_TARGET = 9
_P_SIZE = 10

# ipar: int64 parameters.
_I_MAX_DEPTH = 0
_I_MAX_ADD_QTY = 1
_I_MAX_MKT_QTY = 2
_I_MIN_LEVELS = 3
_I_CAPACITY = 4  # order slots
_I_INIT_LEVELS = 5
_I_INIT_PER_LEVEL = 6
_I_SIZE = 7

# orders[slot, field]
_O_ID = 0
_O_SIDE = 1
_O_PRICE = 2
_O_QTY = 3
_O_NEXT = 4  # next slot in the level FIFO (-1 none)
_O_PREV = 5
_O_LIVE_POS = 6  # index in the live list
_O_SIZE = 7

# levels[price - lo, field]
_L_HEAD = 0
_L_TAIL = 1
_L_QTY = 2
_L_N = 3
_L_SIZE = 4

# pend[k, word]: the record laid out as the seven 8-byte words of EVENT_DTYPE (little-endian)
_E_TS = 0  # exch_ts
_E_LOCAL_TS = 1
_E_PRICE = 2
_E_QTY = 3
_E_ID = 4
_E_VALUE = 5  # float64 bits of `value` (always 0.0)
_E_TAIL = 6  # kind | (side & 0xff) << 8 | flags << 16 (bytes 48..55, padding zero)
_E_SIZE = 7

# The kernels write records as 8-byte words; check that EVENT_DTYPE has the expected layout.
_WORD_LAYOUT = {
    "exch_ts": 0, "local_ts": 8, "price_tick": 16, "qty": 24, "order_id": 32, "value": 40,
    "kind": 48, "side": 49, "flags": 50,
}  # fmt: skip
if (
    sys.byteorder != "little"
    or EVENT_DTYPE.itemsize != 8 * 7
    or {k: v[1] for k, v in EVENT_DTYPE.fields.items()} != _WORD_LAYOUT
):  # pragma: no cover - guards a change of mmsim.dtypes
    raise ImportError("mmsim.data.synthetic: EVENT_DTYPE layout changed; update the kernels")

_ADD = EventKind.ADD
_CANCEL = EventKind.CANCEL
_DELETE = EventKind.DELETE
_EXECUTE = EventKind.EXECUTE
_LAST = EventFlag.LAST


# Every kernel here only indexes preallocated arrays, so it is compiled without the numba
# runtime (``_nrt=False``): arrays then carry no reference counts. With NRT, the atomic
# incref/decref of each array passed to a helper dominated the run time (3 M events/s against
# 19 M events/s without). Helpers on the per-event path are inlined: the random draws and
# the record writer at the numba IR level (``_kernel_inline``), the book updates and the step
# by LLVM (:func:`mmsim._jitcache.inlined`). numba's IR inlining copies and types a callee
# again at every call site, nested: with every helper inlined that way the generator's first
# compile took about 15 s (of a 35 s first ``mmsim backtest``), against about 6 s now. LLVM
# inlining of the random draws as well would save about 3 s more of it but cost 9 % more
# instructions per event (callgrind: 426 against 392; 383 with everything IR-inlined).
_kernel = numba.njit(cache=True, _nrt=False)
_kernel_inline = numba.njit(cache=True, _nrt=False, inline="always")

# ---------------------------------------------------------------------------------------
# RNG: splitmix64 (seeding) and xoshiro256** (stream), on uint64 with wrap-around.


@_kernel
def _splitmix64_nb(x):
    """Return ``(next_state, output)`` of splitmix64 from uint64 state ``x``."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x, z ^ (z >> np.uint64(31))


@_kernel
def _seed_nb(rng, seed):
    """Fill the ``uint64[4]`` xoshiro256** state ``rng`` from a uint64 ``seed``."""
    x = np.uint64(seed)
    for i in range(4):
        x, z = _splitmix64_nb(x)
        rng[i] = z


@_kernel_inline
def _rotl_nb(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@_kernel_inline
def _next_u64_nb(rng):
    """Advance xoshiro256** state ``rng`` (uint64[4]) and return the next uint64 output."""
    s0 = rng[0]
    s1 = rng[1]
    s2 = rng[2]
    s3 = rng[3]
    result = _rotl_nb(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl_nb(s3, 45)
    rng[0] = s0
    rng[1] = s1
    rng[2] = s2
    rng[3] = s3
    return result


@_kernel_inline
def _uniform_nb(rng):
    """Uniform float64 on [0, 1) from the top 53 bits of the next output."""
    return np.float64(_next_u64_nb(rng) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@_kernel_inline
def _randint_nb(rng, n):
    """Integer uniform on ``0..n-1`` (``n >= 1``; bias below 2**-53 relative)."""
    k = np.int64(_uniform_nb(rng) * n)
    if k >= n:  # guard against rounding
        k = n - 1
    return k


@_kernel_inline
def _geometric_nb(rng, log_q, cap):
    """Geometric on {0, 1, ...} with ``P(X >= k) = q**k`` (``log_q = log q``), at most ``cap``."""
    if log_q == 0.0:
        return np.int64(0)
    x = math.log(1.0 - _uniform_nb(rng)) / log_q
    if x >= cap:
        return np.int64(cap)
    return np.int64(x)


# ---------------------------------------------------------------------------------------
# Book maintenance.


@_kernel_inline
def _emit_nb(pend, st, kind, side, price, qty, oid, flags):
    k = st[_S_PEND_N]
    ts = st[_S_TS]
    pend[k, _E_TS] = ts
    pend[k, _E_LOCAL_TS] = ts
    pend[k, _E_PRICE] = price
    pend[k, _E_QTY] = qty
    pend[k, _E_ID] = oid
    pend[k, _E_VALUE] = 0
    pend[k, _E_TAIL] = kind | ((side & 0xFF) << 8) | (flags << 16)
    st[_S_PEND_N] = k + 1


@inlined
def _add_order_nb(st, orders, levels, live, free, side, price, qty):
    """Append a new order at the back of its level; return its id."""
    top = st[_S_FREE_TOP] - 1
    slot = free[top]
    st[_S_FREE_TOP] = top
    oid = st[_S_NEXT_ID]
    st[_S_NEXT_ID] = oid + 1
    orders[slot, _O_ID] = oid
    orders[slot, _O_SIDE] = side
    orders[slot, _O_PRICE] = price
    orders[slot, _O_QTY] = qty
    orders[slot, _O_NEXT] = -1
    n_live = st[_S_N_LIVE]
    live[n_live] = slot
    orders[slot, _O_LIVE_POS] = n_live
    st[_S_N_LIVE] = n_live + 1
    li = price - st[_S_LO]
    tail = levels[li, _L_TAIL]
    orders[slot, _O_PREV] = tail
    if tail >= 0:
        orders[tail, _O_NEXT] = slot
    else:
        levels[li, _L_HEAD] = slot
    levels[li, _L_TAIL] = slot
    levels[li, _L_QTY] += qty
    levels[li, _L_N] += 1
    if levels[li, _L_N] == 1:
        if side > 0:
            st[_S_NLEV_BID] += 1
            if price > st[_S_BEST_BID]:
                st[_S_BEST_BID] = price
        else:
            st[_S_NLEV_ASK] += 1
            if price < st[_S_BEST_ASK]:
                st[_S_BEST_ASK] = price
    return oid


@inlined
def _remove_order_nb(st, orders, levels, live, free, slot):
    """Unlink ``slot`` from its level and the live list; rescan the best if it emptied."""
    price = orders[slot, _O_PRICE]
    side = orders[slot, _O_SIDE]
    li = price - st[_S_LO]
    prev = orders[slot, _O_PREV]
    nxt = orders[slot, _O_NEXT]
    if prev >= 0:
        orders[prev, _O_NEXT] = nxt
    else:
        levels[li, _L_HEAD] = nxt
    if nxt >= 0:
        orders[nxt, _O_PREV] = prev
    else:
        levels[li, _L_TAIL] = prev
    levels[li, _L_QTY] -= orders[slot, _O_QTY]
    levels[li, _L_N] -= 1
    # live list: swap-remove
    pos = orders[slot, _O_LIVE_POS]
    last = st[_S_N_LIVE] - 1
    moved = live[last]
    live[pos] = moved
    orders[moved, _O_LIVE_POS] = pos
    st[_S_N_LIVE] = last
    free[st[_S_FREE_TOP]] = slot
    st[_S_FREE_TOP] += 1
    orders[slot, _O_QTY] = 0
    if levels[li, _L_N] == 0:
        lo = st[_S_LO]
        if side > 0:
            st[_S_NLEV_BID] -= 1
            if st[_S_NLEV_BID] == 0:
                st[_S_BEST_BID] = lo - 1
            elif price == st[_S_BEST_BID]:
                p = price - 1
                while levels[p - lo, _L_N] == 0:
                    p -= 1
                st[_S_BEST_BID] = p
        else:
            st[_S_NLEV_ASK] -= 1
            if st[_S_NLEV_ASK] == 0:
                st[_S_BEST_ASK] = st[_S_HI] + 1
            elif price == st[_S_BEST_ASK]:
                p = price + 1
                while levels[p - lo, _L_N] == 0:
                    p += 1
                st[_S_BEST_ASK] = p


@_kernel_inline
def _reduce_order_nb(st, orders, levels, slot, qty):
    """Reduce a live order by ``qty`` lots, ``0 < qty < its size`` (keeps its place)."""
    orders[slot, _O_QTY] -= qty
    levels[orders[slot, _O_PRICE] - st[_S_LO], _L_QTY] -= qty


@inlined
def _refill_nb(st, ipar, rng, orders, levels, live, free, pend, side):
    """Add orders on ``side`` until it has ``min_levels`` levels (ADD records, LAST each)."""
    min_levels = ipar[_I_MIN_LEVELS]
    nlev_i = _S_NLEV_BID if side > 0 else _S_NLEV_ASK
    lo = st[_S_LO]
    hi = st[_S_HI]
    while st[nlev_i] < min_levels:
        if st[nlev_i] == 0:
            if side > 0:
                p = min(st[_S_MID], st[_S_BEST_ASK] - 1)
            else:
                p = max(st[_S_MID] + 1, st[_S_BEST_BID] + 1)
        elif side > 0:
            p = st[_S_BEST_BID] - 1
            while p >= lo and levels[p - lo, _L_N] > 0:
                p -= 1
            if p < lo:
                return
        else:
            p = st[_S_BEST_ASK] + 1
            while p <= hi and levels[p - lo, _L_N] > 0:
                p += 1
            if p > hi:
                return
        qty = 1 + _randint_nb(rng, ipar[_I_MAX_ADD_QTY])
        oid = _add_order_nb(st, orders, levels, live, free, side, p, qty)
        _emit_nb(pend, st, _ADD, side, p, qty, oid, _LAST)


@_kernel
def _init_book_nb(st, par, ipar, rng, orders, levels, live, free, pend):
    """Build the opening book at ``st[_S_TS]`` into ``pend`` (LAST on the last record only)."""
    m = st[_S_MID]
    for k in range(ipar[_I_INIT_LEVELS]):
        for _ in range(ipar[_I_INIT_PER_LEVEL]):
            qty = 1 + _randint_nb(rng, ipar[_I_MAX_ADD_QTY])
            oid = _add_order_nb(st, orders, levels, live, free, 1, m - k, qty)
            _emit_nb(pend, st, _ADD, 1, m - k, qty, oid, 0)
    for k in range(ipar[_I_INIT_LEVELS]):
        for _ in range(ipar[_I_INIT_PER_LEVEL]):
            qty = 1 + _randint_nb(rng, ipar[_I_MAX_ADD_QTY])
            oid = _add_order_nb(st, orders, levels, live, free, -1, m + 1 + k, qty)
            _emit_nb(pend, st, _ADD, -1, m + 1 + k, qty, oid, 0)
    n = st[_S_PEND_N]
    if n > 0:
        pend[n - 1, _E_TAIL] |= _LAST << 16
    _refill_nb(st, ipar, rng, orders, levels, live, free, pend, 1)
    _refill_nb(st, ipar, rng, orders, levels, live, free, pend, -1)


@inlined
def _step_nb(st, par, ipar, rng, orders, levels, live, free, pend):
    """Generate one exchange event (and any refill) into the empty pending buffer."""
    # clock
    gap_s = -math.log(1.0 - _uniform_nb(rng)) / par[_P_RATE]
    st[_S_TS] += np.int64(gap_s * 1e9)
    # latent mid
    if _uniform_nb(rng) < par[_P_MOVE_PROB]:
        step = 1 if _uniform_nb(rng) < 0.5 else -1
        m = st[_S_MID] + step
        if m < st[_S_MID_MIN] or m > st[_S_MID_MAX]:
            m = st[_S_MID] - step
        st[_S_MID] = m
    m = st[_S_MID]
    # event type
    n_live = st[_S_N_LIVE]
    w_add = par[_P_ADD_W]
    w_cancel = par[_P_CANCEL_W] * n_live / par[_P_TARGET]
    w_mkt = par[_P_MARKET_W]
    if n_live + 2 * ipar[_I_MIN_LEVELS] + 2 >= ipar[_I_CAPACITY]:
        w_add = 0.0  # table full: no new orders this event
    u = _uniform_nb(rng) * (w_add + w_cancel + w_mkt)
    if u < w_add:
        depth = _geometric_nb(rng, par[_P_DEPTH_LOG], ipar[_I_MAX_DEPTH])
        qty = 1 + _randint_nb(rng, ipar[_I_MAX_ADD_QTY])
        if _uniform_nb(rng) < 0.5:
            side = 1
            p = min(m - depth, st[_S_BEST_ASK] - 1)
        else:
            side = -1
            p = max(m + 1 + depth, st[_S_BEST_BID] + 1)
        oid = _add_order_nb(st, orders, levels, live, free, side, p, qty)
        _emit_nb(pend, st, _ADD, side, p, qty, oid, _LAST)
    elif u < w_add + w_cancel:
        slot = live[_randint_nb(rng, n_live)]
        oqty = orders[slot, _O_QTY]
        side = orders[slot, _O_SIDE]
        p = orders[slot, _O_PRICE]
        oid = orders[slot, _O_ID]
        if _uniform_nb(rng) < par[_P_PARTIAL] and oqty > 1:
            c = 1 + _randint_nb(rng, oqty - 1)
            _reduce_order_nb(st, orders, levels, slot, c)
            _emit_nb(pend, st, _CANCEL, side, p, c, oid, _LAST)
        else:
            _remove_order_nb(st, orders, levels, live, free, slot)
            _emit_nb(pend, st, _DELETE, side, p, oqty, oid, _LAST)
    else:
        book_mid = 0.5 * (st[_S_BEST_BID] + st[_S_BEST_ASK])
        p_buy = 0.5 + par[_P_BIAS] * (m + 0.5 - book_mid)
        p_buy = min(max(p_buy, 0.05), 0.95)
        size = 1 + _geometric_nb(rng, par[_P_MKT_LOG], ipar[_I_MAX_MKT_QTY] - 1)
        if _uniform_nb(rng) < p_buy:
            rest = -1
            best_i = _S_BEST_ASK
            nlev_i = _S_NLEV_ASK
        else:
            rest = 1
            best_i = _S_BEST_BID
            nlev_i = _S_NLEV_BID
        lo = st[_S_LO]
        remaining = size
        n_exec = 0
        while remaining > 0 and st[nlev_i] > 0:
            p = st[best_i]
            li = p - lo
            if st[nlev_i] == 1:
                room = levels[li, _L_QTY] - 1  # never empty the side
                if room <= 0:
                    break
                if remaining > room:
                    remaining = room
            slot = levels[li, _L_HEAD]
            oqty = orders[slot, _O_QTY]
            q = min(oqty, remaining)
            _emit_nb(pend, st, _EXECUTE, rest, p, q, orders[slot, _O_ID], 0)
            n_exec += 1
            remaining -= q
            if q == oqty:
                _remove_order_nb(st, orders, levels, live, free, slot)
            else:
                _reduce_order_nb(st, orders, levels, slot, q)
        if n_exec > 0:
            pend[st[_S_PEND_N] - 1, _E_TAIL] |= _LAST << 16
    _refill_nb(st, ipar, rng, orders, levels, live, free, pend, 1)
    _refill_nb(st, ipar, rng, orders, levels, live, free, pend, -1)


@_kernel
def _fill_chunk_nb(out, st, par, ipar, rng, orders, levels, live, free, pend):
    """Write ``out.shape[0]`` records, resuming from the state.

    ``out`` is an ``(n, 7)`` int64 view of an EVENT_DTYPE array (one row per record).
    """
    n = out.shape[0]
    i = 0
    while True:
        h = st[_S_PEND_HEAD]
        pn = st[_S_PEND_N]
        while h < pn and i < n:
            for w in range(_E_SIZE):
                out[i, w] = pend[h, w]
            h += 1
            i += 1
        st[_S_PEND_HEAD] = h
        if i >= n:
            break
        st[_S_PEND_N] = 0
        st[_S_PEND_HEAD] = 0
        _step_nb(st, par, ipar, rng, orders, levels, live, free, pend)
    st[_S_N_EMITTED] += n
    return n


# ---------------------------------------------------------------------------------------
# Python API.


@dataclasses.dataclass(frozen=True)
class SyntheticParams:
    """Parameters of the synthetic L3 flow (frozen, validated). See the module docstring.

    Parameters
    ----------
    start_price_tick : int
        Initial latent reference ``m`` (ticks); the opening best bid / ask are ``m`` / ``m+1``.
    tick_size : float
        Price of one tick (quote currency), for callers converting ticks to prices; the
        records themselves are in ticks.
    start_ts : int
        ``exch_ts`` of the opening book, int64 UNIX ns.
    event_rate_per_s : float
        Rate of the Poisson event clock (events per second of exchange time).
    add_weight, cancel_weight, market_weight : float
        Relative weights of ADD, CANCEL/DELETE and market-order events (cancel weight at
        ``target_live_orders`` live orders; it scales with the number of live orders).
    mid_move_rate_per_s : float
        Rate of one-tick moves of the latent mid (ticks² per second of variance).
    add_depth_mean_ticks : float
        Mean of the geometric depth of ADDs behind the latent quote (0: always at it).
    max_add_depth_ticks : int
        Cap of that depth.
    max_add_qty : int
        ADD sizes are uniform on ``1..max_add_qty`` lots.
    partial_cancel_prob : float
        Probability that a cancel event is a partial CANCEL (if the order has > 1 lot).
    market_qty_mean : float
        Mean market-order size in lots (``1 + Geometric``), >= 1.
    max_market_qty : int
        Cap of the market-order size (lots).
    market_bias_per_tick : float
        Sensitivity of the buy probability of market orders to ``latent mid − book mid``.
    target_live_orders : int
        Book size (orders) at which the event weights apply as given.
    initial_levels, initial_orders_per_level : int
        Shape of the opening book per side.
    min_levels : int
        Refill threshold (levels per side), >= 2.
    price_window_ticks : int
        Width of the price array of the book. The latent mid is reflected inside
        ``[lo + max_add_depth_ticks + min_levels + 2, hi − max_add_depth_ticks − min_levels −
        2]`` where ``lo = max(0, start_price_tick − price_window_ticks // 2)`` and
        ``hi = lo + price_window_ticks − 1``.
    max_live_orders : int or None
        Capacity of the order table (default ``16 · target_live_orders`` plus the opening
        book); when it is nearly full, ADD events are suppressed.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    start_price_tick: int = 10_000
    tick_size: float = 0.01
    start_ts: int = DEFAULT_START_TS
    event_rate_per_s: float = 1000.0
    add_weight: float = 0.50
    cancel_weight: float = 0.42
    market_weight: float = 0.08
    mid_move_rate_per_s: float = 1.0
    add_depth_mean_ticks: float = 2.0
    max_add_depth_ticks: int = 50
    max_add_qty: int = 10
    partial_cancel_prob: float = 0.25
    market_qty_mean: float = 5.0
    max_market_qty: int = 50
    market_bias_per_tick: float = 0.25
    target_live_orders: int = 200
    initial_levels: int = 10
    initial_orders_per_level: int = 4
    min_levels: int = 3
    price_window_ticks: int = 1 << 16
    max_live_orders: int | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"SyntheticParams.{name} = {getattr(self, name)!r}: {what}")

        need(self.tick_size > 0, "tick_size", "must be > 0")
        need(self.event_rate_per_s > 0, "event_rate_per_s", "must be > 0")
        for name in ("add_weight", "cancel_weight", "market_weight"):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(self.add_weight > 0, "add_weight", "must be > 0")
        need(
            0 <= self.mid_move_rate_per_s <= self.event_rate_per_s,
            "mid_move_rate_per_s",
            "must be in [0, event_rate_per_s]",
        )
        need(self.add_depth_mean_ticks >= 0, "add_depth_mean_ticks", "must be >= 0")
        need(self.max_add_depth_ticks >= 0, "max_add_depth_ticks", "must be >= 0")
        need(self.max_add_qty >= 1, "max_add_qty", "must be >= 1")
        need(0 <= self.partial_cancel_prob <= 1, "partial_cancel_prob", "must be in [0, 1]")
        need(self.market_qty_mean >= 1, "market_qty_mean", "must be >= 1")
        need(self.max_market_qty >= 1, "max_market_qty", "must be >= 1")
        need(self.market_bias_per_tick >= 0, "market_bias_per_tick", "must be >= 0")
        need(self.target_live_orders >= 1, "target_live_orders", "must be >= 1")
        need(self.initial_levels >= 0, "initial_levels", "must be >= 0")
        need(self.initial_orders_per_level >= 1, "initial_orders_per_level", "must be >= 1")
        need(self.min_levels >= 2, "min_levels", "must be >= 2")
        margin = self.max_add_depth_ticks + self.min_levels + self.initial_levels + 4
        need(
            self.price_window_ticks > 2 * margin + 2,
            "price_window_ticks",
            f"must be > {2 * margin + 2} for these depths",
        )
        lo = max(0, self.start_price_tick - self.price_window_ticks // 2)
        hi = lo + self.price_window_ticks - 1
        need(
            lo + margin <= self.start_price_tick <= hi - margin,
            "start_price_tick",
            f"must be >= {margin} (room for the opening book and add depths)",
        )
        if self.max_live_orders is not None:
            need(
                self.max_live_orders >= self._opening_orders() + 4 * self.min_levels + 4,
                "max_live_orders",
                "too small for the opening book",
            )

    def _opening_orders(self) -> int:
        return 2 * self.initial_levels * self.initial_orders_per_level

    @property
    def capacity(self) -> int:
        """Order-table capacity (slots)."""
        if self.max_live_orders is not None:
            return int(self.max_live_orders)
        return 16 * self.target_live_orders + self._opening_orders() + 4 * self.min_levels + 4


class SyntheticL3:
    """Seeded, resumable generator of synthetic L3 events (see the module docstring).

    Parameters
    ----------
    seed : int
        Seed of the xoshiro256** stream (taken modulo 2**64).
    **params
        Fields of :class:`SyntheticParams`.

    Raises
    ------
    TypeError
        On an unknown parameter name.
    ValueError
        On an out-of-range parameter.

    Examples
    --------
    >>> gen = SyntheticL3(seed=1)
    >>> a = gen.next_chunk(1000)          # the opening book, then the flow
    >>> b = gen.next_chunk(500)           # continues where ``a`` stopped
    """

    def __init__(self, seed: int = 0, **params: object) -> None:
        self.params = SyntheticParams(**params)  # type: ignore[arg-type]
        self.seed = int(seed)
        p = self.params
        lo = max(0, p.start_price_tick - p.price_window_ticks // 2)
        hi = lo + p.price_window_ticks - 1
        margin = p.max_add_depth_ticks + p.min_levels + 2
        cap = p.capacity

        self._st = np.zeros(_S_SIZE, dtype=np.int64)
        st = self._st
        st[_S_TS] = p.start_ts
        st[_S_MID] = p.start_price_tick
        st[_S_BEST_BID] = lo - 1
        st[_S_BEST_ASK] = hi + 1
        st[_S_NEXT_ID] = 1
        st[_S_FREE_TOP] = cap
        st[_S_LO] = lo
        st[_S_HI] = hi
        st[_S_MID_MIN] = lo + margin
        st[_S_MID_MAX] = hi - margin

        self._par = np.zeros(_P_SIZE, dtype=np.float64)
        par = self._par
        par[_P_RATE] = p.event_rate_per_s
        par[_P_ADD_W] = p.add_weight
        par[_P_CANCEL_W] = p.cancel_weight
        par[_P_MARKET_W] = p.market_weight
        par[_P_MOVE_PROB] = p.mid_move_rate_per_s / p.event_rate_per_s
        # geometric on {0,1,..} with mean mu: P(X >= k) = q**k, q = mu / (1 + mu)
        mu = p.add_depth_mean_ticks
        par[_P_DEPTH_LOG] = math.log(mu / (1.0 + mu)) if mu > 0 else 0.0
        par[_P_PARTIAL] = p.partial_cancel_prob
        mu = p.market_qty_mean - 1.0
        par[_P_MKT_LOG] = math.log(mu / (1.0 + mu)) if mu > 0 else 0.0
        par[_P_BIAS] = p.market_bias_per_tick
        par[_P_TARGET] = p.target_live_orders

        self._ipar = np.zeros(_I_SIZE, dtype=np.int64)
        ipar = self._ipar
        ipar[_I_MAX_DEPTH] = p.max_add_depth_ticks
        ipar[_I_MAX_ADD_QTY] = p.max_add_qty
        ipar[_I_MAX_MKT_QTY] = p.max_market_qty
        ipar[_I_MIN_LEVELS] = p.min_levels
        ipar[_I_CAPACITY] = cap
        ipar[_I_INIT_LEVELS] = p.initial_levels
        ipar[_I_INIT_PER_LEVEL] = p.initial_orders_per_level

        self._rng = np.zeros(4, dtype=np.uint64)
        _seed_nb(self._rng, np.uint64(self.seed % (1 << 64)))
        self._orders = np.zeros((cap, _O_SIZE), dtype=np.int64)
        self._levels = np.zeros((p.price_window_ticks, _L_SIZE), dtype=np.int64)
        self._levels[:, _L_HEAD] = -1
        self._levels[:, _L_TAIL] = -1
        self._live = np.zeros(cap, dtype=np.int64)
        self._free = np.arange(cap - 1, -1, -1, dtype=np.int64)  # pops slot 0 first
        pend_cap = max(p._opening_orders(), p.max_market_qty) + 2 * p.min_levels + 8
        self._pend = np.zeros((pend_cap, _E_SIZE), dtype=np.int64)
        _init_book_nb(
            st, par, ipar, self._rng, self._orders, self._levels, self._live, self._free,
            self._pend,
        )  # fmt: skip

    def next_chunk(self, n: int) -> np.ndarray:
        """Return the next ``n`` records of the stream.

        Parameters
        ----------
        n : int
            Number of records (>= 0).

        Returns
        -------
        numpy.ndarray
            Shape ``(n,)``, dtype :data:`~mmsim.dtypes.EVENT_DTYPE`. A market-order group or
            the opening book may straddle two chunks; the concatenation of all chunks does not
            depend on the chunk sizes.

        Raises
        ------
        ValueError
            If ``n < 0``.
        """
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        out = np.empty(n, dtype=EVENT_DTYPE)
        if n:
            words = out.view(np.int64).reshape(n, _E_SIZE)
            _fill_chunk_nb(
                words, self._st, self._par, self._ipar, self._rng, self._orders, self._levels,
                self._live, self._free, self._pend,
            )  # fmt: skip
        return out

    @property
    def n_emitted(self) -> int:
        """Records handed out so far."""
        return int(self._st[_S_N_EMITTED])

    @property
    def n_live_orders(self) -> int:
        """Live orders in the generator's book (including records not yet handed out)."""
        return int(self._st[_S_N_LIVE])

    @property
    def latent_mid_tick(self) -> float:
        """Current latent mid, ticks (``m + 0.5``)."""
        return float(self._st[_S_MID]) + 0.5


def generate_synthetic(n_events: int, seed: int = 0, **params: object) -> np.ndarray:
    """Generate ``n_events`` synthetic L3 records in one call.

    Parameters
    ----------
    n_events : int
        Number of records.
    seed : int
        RNG seed.
    **params
        Fields of :class:`SyntheticParams`.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_events,)``, dtype :data:`~mmsim.dtypes.EVENT_DTYPE`; equal to the
        concatenation of any sequence of :meth:`SyntheticL3.next_chunk` calls of the same
        total length with the same seed and parameters.

    Raises
    ------
    TypeError, ValueError
        As :class:`SyntheticL3`.
    """
    return SyntheticL3(seed=seed, **params).next_chunk(n_events)
