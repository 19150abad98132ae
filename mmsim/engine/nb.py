"""The numba event loop: exchange and local timelines, our orders, latency, queue position, fills.

One resumable kernel, :func:`run_nb`, consumes a chunk of canonical events (``EVENT_DTYPE``) and
returns when the chunk is done (0) or an output buffer needs flushing (1); every piece of state
lives in arrays owned by :class:`mmsim.engine.backtest.Engine`, so chunking never changes
results. Negative return values are errors (see ``ERR_*``). The state and settings are named
records, one per instrument (``st[k].position``, ``cfg[k].tick_size``:
:data:`mmsim.dtypes.ENGINE_STATE_DTYPE`, :data:`mmsim.dtypes.ENGINE_PARAMS_DTYPE`); books,
feed queues, order slots and responses are stacked on the same leading instrument axis.

Timelines (MODELS.md §7)
    * The **exchange** applies market events at ``exch_ts`` to the book (L3 orders, or L2
      ``LEVEL_SET`` levels on a ladder whose window follows the touch) and matches our orders
      against it. Our orders never change the replayed book (no market impact).
    * The **strategy** sees the book through a feed delay: every change the exchange book makes,
      and every trade, is queued with its local receive time (``local_ts`` from the data plus
      an optional offset, or ``exch_ts`` plus a constant; never earlier than ``exch_ts``) and
      applied to a local price ladder when that time comes.
    * Our requests (submit, modify, cancel) reach the exchange after an entry latency; acks,
      rejects and fills reach the strategy after a response latency (:mod:`mmsim.models.nb`);
      one order-entry session keeps requests and responses in order.
    * At equal timestamps a market event is applied before anything scheduled at that time.
    * Perpetual funding is charged at the funding times the feed announces (MODELS.md §8).

Queue position, L3 FIFO (MODELS.md §6)
    Our order joins the back of its level when it reaches the exchange: every book order there
    (sequence number at or below ours) and all anonymous volume is ahead (``ahead`` lots).
    Cancels and executions of orders ahead reduce ``ahead``; an execution of an order behind us,
    a trade at a price through ours, or a new opposite order that crosses our price fills us, up
    to the quantity of that event, shared among our orders in price-time priority. A hidden
    trade (``TRADE``) at our price fills us only beyond the volume ahead.

Queue position, L2 (MODELS.md §6; ``cfg.queue_model``)
    ``ahead`` starts at the level's size on arrival. Trades at our price reduce it (and fill us
    beyond it); the depth decrease that follows a trade is netted against it; an unexplained
    decrease moves it by the risk-averse or probabilistic (power, log) rule, see
    :func:`_l2_level_change`.

Risk limits and quote management (MODELS.md §10, §4; ``cfg.risk_on``)
    At each decision after the warm-up, :func:`_risk_gate` works on the policy's output: the
    notional limit, soft limit, PnL stop and drawdown (with optional flattening on the hedge
    path and a cool-down), the volatility circuit breaker, the session end, the should-quote
    rules, then placement, ladder and inventory-dependent sizes; :func:`_hold_quotes` keeps
    young quotes and small moves in place; a FOK order fills whole at arrival or expires.
    Every reason that starts or stops acting is a ``risk_on`` / ``risk_off`` row of the
    orders log. None of it is on the per-event path.

Market signals (:mod:`mmsim.signals`; ``signals:``, flag ``local.sig_params[i].on``)
    Each feed entry applied to instrument ``i``'s local ladder also updates its signals
    (:func:`_ring_pop_apply`: book codes and trades, at the entry's local time); a decision
    writes the quoted instrument's into ``ctx[Ctx.SIGNALS0 ...]`` (:func:`_fill_ctx`; NaN
    when off); with ``sig_params[i].record`` each equity sample adds a row to ``out.sig``
    (:func:`_sample_all`). Off, the cost is one branch per feed entry.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from mmsim._jitcache import inlined, internal, kernel  # (before any cached kernel)
from mmsim.book.nb import (
    ASK_ROW,
    B_NFREE,
    B_SEQ,
    B_UNKNOWN,
    BID_ROW,
    L_BASE,
    L_BEST_ASK,
    L_BEST_BID,
    L_OOW,
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
    ladder_change_inline_nb,
    ladder_clear_nb,
    ladder_recenter_nb,
    ladder_top_nb,
    level_qty_nb,
)
from mmsim.contracts import (
    CTX_DEPTH,
    CTX_ORDERS,
    HEDGER_FTYPE,
    MAX_HEDGE_ORDERS,
    MAX_LEVELS,
    POLICY_FTYPE,
    Ctx,
    CtxOrder,
    HedgeOut,
    InstCtx,
    Quote,
    Reason,
    inst_ctx_base,
    quote_level_nb,
    quote_levels_nb,
)
from mmsim.dtypes import (
    ENGINE_PARAMS_DTYPE,
    ENGINE_STATE_DTYPE,
    EQUITY_DTYPE,
    EVENT_DTYPE,
    FEED_DTYPE,
    FILL_DTYPE,
    ORDER_LOG_DTYPE,
    OUR_ORDER_DTYPE,
    RESPONSE_DTYPE,
    SIGNAL_RECORD_DTYPE,
)
from mmsim.enums import (
    RISK_REASON_BASE,
    EventFlag,
    EventKind,
    Liquidity,
    OrderEvent,
    Reject,
    RiskReason,
    TimeInForce,
)
from mmsim.models.nb import (
    Action,
    cash_flow_nb,
    entry_latency_nb,
    fee_nb,
    notional_nb,
    response_latency_nb,
)
from mmsim.models.queue import (  # noqa: F401  (QUEUE_* are the engine's queue kinds too)
    QUEUE_FIFO,
    QUEUE_LOG,
    QUEUE_POWER,
    QUEUE_RISK_AVERSE,
    queue_front_nb,
)
from mmsim.signals.nb import signals_on_book_nb, signals_on_trade_nb, signals_to_ctx_nb
from mmsim.signals.spec import SIGNAL_PARAMS_DTYPE, SIGNAL_STATE_DTYPE, SignalCtx

INF_TS = np.int64(9_000_000_000_000_000_000)

# ---- our order slots: ours OUR_ORDER_DTYPE[MAX_OURS] (mmsim.dtypes) ------------------------
REQ_SUBMIT = 1
REQ_MODIFY = 2
REQ_CANCEL = 3

ST_FREE = 0
ST_PENDING = 1
ST_OPEN = 2
ST_DONE = 3

# ---- responses in flight: resp RESPONSE_DTYPE[RESP_CAP] (mmsim.dtypes) -------------------
# ---- feed queue: ring FEED_DTYPE[RING_CAP] (mmsim.dtypes); what each entry's ``code`` means:
FEED_BID = 1  # the bid level at price_tick changes by qty lots (and FEED_ASK = -1: the ask)
FEED_ASK = -1
FEED_CLEAR_BOTH = 10  # the book is cleared
FEED_CLEAR_BIDS = 11  # the bids are cleared
FEED_CLEAR_ASKS = -11  # the asks are cleared
RING_RECENTER = 30  # the local ladder window moves to price_tick
RING_TRADE = 40  # ± 40: a trade reaches the strategy (price_tick, qty lots); sign = resting side

# ---- engine state st ENGINE_STATE_DTYPE[n_instruments], settings cfg ENGINE_PARAMS_DTYPE[...]
# (mmsim.dtypes: one record per instrument, read as st.position, cfg.tick_size; the run's
# clocks, resume index and decision counters live in instrument 0's record)

#: ``cfg.feed_mode``: the strategy's receive time is the data's ``local_ts`` + ``cfg.feed_ns``
FEED_DATA_LOCAL = 0
#: ``cfg.feed_mode``: ``exch_ts`` + ``cfg.feed_ns`` (one-clock data)
FEED_EXCH_PLUS = 1
#: ``cfg.replace_mode``: a quote moves by a modify in place
REPLACE_MODIFY = 0
#: ``cfg.replace_mode``: a quote moves by cancel and a new order
REPLACE_CANCEL = 1
#: ``cfg.vol_breaker_action``: the volatility circuit breaker pauses quoting
BREAKER_PAUSE = 0
#: ``cfg.vol_breaker_action``: it multiplies the spread by ``cfg.vol_breaker_spread_mult``
BREAKER_WIDEN = 1
#: ``cfg.placement`` of the level-0 quote: as the policy gives it / at the touch / one tick
#: inside it (spread >= 3 ticks) / ``cfg.behind_ticks`` behind it
PLACE_POLICY = 0
PLACE_JOIN = 1
PLACE_IMPROVE = 2
PLACE_BEHIND = 3
#: ``cfg.ladder_unit``: ladder offsets in ticks / in bps of the level-0 price
LADDER_TICKS = 0
LADDER_BPS = 1
#: bits of the sides the risk layer takes off (:func:`_risk_gate`)
KILL_BID = 1
KILL_ASK = 2
#: how many :data:`mmsim.enums.RiskReason` codes there are (from ``RISK_REASON_BASE`` on)
N_RISK_REASONS = len(RiskReason)


RET_DONE = 0
RET_FLUSH = 1
ERR_POLICY = -1
ERR_HEDGER = -2
ERR_BOOK_FULL = -3

class Work(NamedTuple):
    """The policy's and hedger's arrays and the engine's scratch (float64 but ``scratch``):
    their parameter and state vectors, the context they read (``ctx``, :data:`Ctx`), their
    outputs (``qout``: :data:`Quote`, ``hout``: :data:`HedgeOut`) and int64 scratch
    (:data:`SCRATCH_FIXED` + one per order slot)."""

    pparams: np.ndarray
    pstate: np.ndarray
    hparams: np.ndarray
    hstate: np.ndarray
    ctx: np.ndarray
    qout: np.ndarray
    hout: np.ndarray
    scratch: np.ndarray


class Books(NamedTuple):
    """The exchange books, stacked on a leading instrument axis (:mod:`mmsim.book.nb`: the
    L3 order table ``ordt``, its free list, hash map and scalars, the price ladder ``lvl`` and
    its scalars ``sc``, the anonymous volume ``anon``)."""

    ordt: np.ndarray
    free: np.ndarray
    hkeys: np.ndarray
    hvals: np.ndarray
    bs: np.ndarray
    lvl: np.ndarray
    anon: np.ndarray
    sc: np.ndarray


class Local(NamedTuple):
    """The strategy's delayed view, per instrument: its ladder (``llvl``, scalars ``lsc``),
    the feed queue that brings the exchange's changes to it (``ring``, FEED_DTYPE) and its
    market signals (:mod:`mmsim.signals`): their state (``sig_state``, SIGNAL_STATE_DTYPE[ni]),
    settings (``sig_params``, SIGNAL_PARAMS_DTYPE[ni]; ``on == 0``: off) and the values last
    written for the equity clock (``sig_values``, float64[ni, SignalCtx.SIZE])."""

    llvl: np.ndarray
    lsc: np.ndarray
    ring: np.ndarray
    sig_state: np.ndarray
    sig_params: np.ndarray
    sig_values: np.ndarray


class Orders(NamedTuple):
    """Our order slots (OUR_ORDER_DTYPE) and the responses in flight (RESPONSE_DTYPE), per
    instrument."""

    ours: np.ndarray
    resp: np.ndarray


class Out(NamedTuple):
    """The output buffers (FILL_DTYPE, ORDER_LOG_DTYPE, EQUITY_DTYPE), their fill counts
    (int64[4]: fills, orders log, equity, signals: index :data:`C_SIG`) and the signal rows
    (``sig``, SIGNAL_RECORD_DTYPE; empty unless ``signals.record``: at most one row per equity
    row, so when used it is at least as long as ``eq`` and the equity check flushes it too)."""

    fills: np.ndarray
    olog: np.ndarray
    eq: np.ndarray
    counts: np.ndarray
    sig: np.ndarray


#: index of the signal rows' count in ``Out.counts``
C_SIG = 3


_FLUSH_MARGIN = 256
#: scratch int64 array: quote prices, sizes, flags, ctx depth, then one flag per order slot
SCRATCH_FIXED = 3 * MAX_LEVELS + 2 * CTX_DEPTH


@nb.njit(cache=True, inline="always", _nrt=False)
def _open_list(st, side):
    """Where the slots of our open orders on ``side`` are listed in ``st`` (rebuilt with the
    fast-path bounds): ``(slots, count)``; ``slots[i]`` is the i-th slot."""
    if side > 0:
        return st.open_bid_slots, st.n_open_bids
    return st.open_ask_slots, st.n_open_asks


@internal
def _recompute_bounds(ours, st):
    nb_ = 0
    na_ = 0
    hi = np.int64(-(2**62))
    lo = np.int64(2**62)
    bid_lo = lo
    ask_hi = hi
    for k in range(st.n_slots_used):
        if ours[k].exch_status == ST_OPEN:
            px = ours[k].price_tick
            if ours[k].side > 0:
                st.open_bid_slots[nb_] = k
                nb_ += 1
                hi = max(hi, px)
                bid_lo = min(bid_lo, px)
            else:
                st.open_ask_slots[na_] = k
                na_ += 1
                lo = min(lo, px)
                ask_hi = max(ask_hi, px)
    st.n_open_bids = nb_
    st.n_open_asks = na_
    st.open_bid_hi_tick = hi
    st.open_ask_lo_tick = lo
    st.open_bid_lo_tick = bid_lo
    st.open_ask_hi_tick = ask_hi
    st.dirty = 0


@internal
def _recompute_next_req(ours, st):
    t = INF_TS
    for k in range(st.n_slots_used):
        if ours[k].req != 0 and ours[k].req_ts < t:
            t = ours[k].req_ts
    st.next_request_ts = t


@internal
def _recompute_next_resp(resp, st):
    t = INF_TS
    for j in range(st.n_responses):
        if resp[j].ts < t:
            t = resp[j].ts
    st.next_response_ts = t


@internal
def _resp_time(st, cfg, lat, action, te):
    """Local arrival of a response sent at exchange time ``te`` (one session: FIFO)."""
    t = te + response_latency_nb(cfg.latency_model, lat, action, te, st)
    if t < st.last_response_ts:
        t = st.last_response_ts
    st.last_response_ts = t
    return t


@internal
def _push_resp(resp, st, ours, ts, kind, slot, px, qty, leaves, fill, cash_delta):
    j = st.n_responses
    if j >= resp.shape[0]:
        # unreachable: the driver sizes the queue at 16 responses per order slot, and a slot
        # has at most a handful in flight (ack, fills of one event, expire/cancel answer)
        j = resp.shape[0] - 1
    else:
        st.n_responses = j + 1
    st.response_seq += 1
    resp[j].ts = ts
    resp[j].seq = st.response_seq
    resp[j].kind = kind
    resp[j].slot = slot
    resp[j].price_tick = px
    resp[j].qty = qty
    resp[j].leaves = leaves
    resp[j].fill_qty = fill
    resp[j].cash = cash_delta
    ours[slot].n_responses += 1
    if ts < st.next_response_ts:
        st.next_response_ts = ts


@internal
def _log_order(olog, counts, ours, slot, local_ts, exch_ts, event, px, qty, leaves, fill, reason):
    j = counts[1]
    olog[j].local_ts = local_ts
    olog[j].exch_ts = exch_ts
    olog[j].order_id = ours[slot].order_id
    olog[j].price_tick = px
    olog[j].qty = qty
    olog[j].leaves_qty = leaves
    olog[j].fill_qty = fill
    olog[j].event = event
    olog[j].side = ours[slot].side
    olog[j].tif = ours[slot].tif
    olog[j].reason = reason
    olog[j].is_hedge = ours[slot].is_hedge
    olog[j].instrument = ours[slot].instrument
    counts[1] = j + 1


@internal
def _answer(olog, counts, resp, st, ours, slot, local_ts, exch_ts, event, px, qty,
            leaves, fill, reason, cash_delta):
    """The exchange answers a request or reports a fill for ``slot``: one orders-log row
    (both clocks, ``reason``) and the response queued for the strategy at ``local_ts``
    (with the cash it moves)."""
    _log_order(olog, counts, ours, slot, local_ts, exch_ts, event, px, qty, leaves, fill, reason)
    _push_resp(resp, st, ours, local_ts, event, slot, px, qty, leaves, fill, cash_delta)


@internal
def _exch_mid(sc):
    b = best_bid_tick_nb(sc)
    a = best_ask_tick_nb(sc)
    if b < 0 or a < 0:
        return np.nan
    return 0.5 * (b + a)


@internal
def _fill(
    ours, slot, ts, px, qty, liq, st, cfg, lat, resp, fills, olog, counts,
    sc,
):
    """Fill ``qty`` lots of our order in ``slot`` at ``px`` (exchange time ``ts``)."""
    side = ours[slot].side
    is_maker = liq == Liquidity.MAKER
    fee = fee_nb(cfg, px, qty, is_maker)
    cflow = cash_flow_nb(cfg, side, px, qty)
    st.position += side * qty
    st.n_fills += 1
    st.traded_lots += qty
    st.cash += cflow - fee
    st.fees += fee
    ours[slot].leaves -= qty
    ours[slot].filled += qty
    leaves = ours[slot].leaves
    rl = _resp_time(st, cfg, lat, Action.SUBMIT, ts) - ts
    j = counts[0]
    fills[j].exch_ts = ts
    fills[j].local_ts = ts + rl
    fills[j].order_id = ours[slot].order_id
    fills[j].price_tick = px
    fills[j].qty = qty
    fills[j].position = st.position
    fills[j].fee = fee
    fills[j].cash = st.cash
    fills[j].mid_tick = _exch_mid(sc)
    fills[j].queue_ahead = ours[slot].queue_ahead if is_maker else 0.0
    fills[j].side = side
    fills[j].liquidity = liq
    fills[j].is_hedge = ours[slot].is_hedge
    fills[j].instrument = ours[slot].instrument
    counts[0] = j + 1
    _answer(olog, counts, resp, st, ours, slot, ts + rl, ts, OrderEvent.FILL, px,
            ours[slot].qty, leaves, qty, 0, cflow - fee)
    if leaves <= 0:
        ours[slot].exch_status = ST_DONE
        st.dirty = 1


@internal
def _fill_priority(
    ours, side, px_limit, at_px, at_px_seq_behind, budget, ts, st, cfg, lat,
    resp, fills, olog, counts, sc, hidden_at_px,
):
    """Fill our open orders on ``side`` in price-time priority from an aggressor ``budget``.

    Orders strictly better than ``px_limit`` (bids above, asks below) are filled first, best
    price first. Orders exactly at ``at_px`` are filled when ``at_px_seq_behind`` (the executed
    book order was behind them) or, for hidden trades, beyond the volume ahead.
    With ``cfg.whole_fills`` an order the execution reaches is filled whole, whatever the budget
    (hftbacktest's ``NoPartialFillExchange`` simplification); the budget still shrinks by the
    quantity filled, so a second order is reached only if quantity is left.
    Returns the budget left (negative after a whole-order fill larger than the budget).
    """
    slots, cnt = _open_list(st, side)
    while budget > 0:
        best = -1
        for i in range(cnt):
            k = slots[i]
            if ours[k].exch_status != ST_OPEN or ours[k].side != side:
                continue
            p = ours[k].price_tick
            through = (side > 0 and p > px_limit) or (side < 0 and p < px_limit)
            eligible = through
            if not through and p == at_px:
                if at_px_seq_behind >= 0 and at_px_seq_behind > ours[k].seq:
                    eligible = True
                elif hidden_at_px:
                    eligible = True
            if not eligible:
                continue
            if best < 0:
                best = k
            else:
                bp = ours[best].price_tick
                if (side > 0 and p > bp) or (side < 0 and p < bp) or (
                    p == bp and ours[k].seq < ours[best].seq
                ):
                    best = k
        if best < 0:
            break
        p = ours[best].price_tick
        take = budget
        if hidden_at_px and p == at_px and not (
            (side > 0 and p > px_limit) or (side < 0 and p < px_limit)
        ):
            # hidden liquidity at our price: displayed volume ahead of us is served first
            budget -= int(ours[best].queue_ahead + 0.5)
            if budget <= 0:
                break
            take = budget
        if take > ours[best].leaves or cfg.whole_fills != 0:
            take = ours[best].leaves
        _fill(ours, best, ts, p, take, Liquidity.MAKER, st, cfg, lat, resp,
               fills, olog, counts, sc)
        ours[best].queue_ahead = 0.0
        budget -= take
    return budget


@nb.njit(cache=True, inline="always", _nrt=False)
def _reaches_ours(side, px, nbid, nask, st):
    """New resting volume on ``side`` at ``px`` is at or through one of our orders on the
    other side (the test :func:`_opposite_volume` acts on, made before the call: most
    events fail it)."""
    return (side < 0 and nbid > 0 and px <= st.open_bid_hi_tick) or (
        side > 0 and nask > 0 and px >= st.open_ask_lo_tick)


@internal
def _opposite_volume(side, px, q, ts, nbid, nask, ours, st, cfg, lat, resp,
                      fills, olog, counts, sc):
    """``q`` lots of new resting volume on ``side`` at ``px`` (an order added or moved, an L2
    level grown): at or through the price of our orders on the other side, it would have
    traded with them, so they fill from it in price-time priority."""
    if side < 0 and nbid > 0 and px <= st.open_bid_hi_tick:
        _fill_priority(ours, 1, px - 1, px, -1, q, ts, st, cfg, lat, resp,
                        fills, olog, counts, sc, False)
    elif side > 0 and nask > 0 and px >= st.open_ask_lo_tick:
        _fill_priority(ours, -1, px + 1, px, -1, q, ts, st, cfg, lat, resp,
                        fills, olog, counts, sc, False)


@internal
def _reduce_ahead(ours, cfg, st, side, px, seq, amount):
    """A book order (``seq``; -1 for anonymous volume) at ``px`` lost ``amount`` lots."""
    slots, cnt = _open_list(st, side)
    for i in range(cnt):
        k = slots[i]
        if ours[k].exch_status == ST_OPEN and ours[k].side == side and ours[k].price_tick == px:
            if seq < 0 or seq <= ours[k].seq:
                a = ours[k].queue_ahead - amount
                ours[k].queue_ahead = a if a > 0.0 else 0.0


@nb.njit(cache=True, inline="always", _nrt=False)
def _ring_push(ring, st, ts, code, px, dq):
    cap = ring.shape[0]
    if st.feed_count == cap:
        return False
    j = st.feed_head + st.feed_count  # < 2·cap: a wrap, not a division
    if j >= cap:
        j -= cap
    ju = np.uint64(j)  # (an unsigned index: no wrap-around test)
    ring[ju].ts = ts
    ring[ju].code = code
    ring[ju].price_tick = px
    ring[ju].qty = dq
    st.feed_count += 1
    return True


@internal
def _ring_pop_apply(ring, st, llvl, lsc, sst, sp):
    """Apply the oldest feed entry to the local view (and to its signals when ``sp.on``)."""
    cap = ring.shape[0]
    j = st.feed_head
    ju = np.uint64(j)  # (an unsigned index: no wrap-around test)
    code = ring[ju].code
    is_trade = False
    if code == FEED_CLEAR_BOTH:
        ladder_clear_nb(llvl, lsc, 0)
    elif code == FEED_CLEAR_BIDS:
        ladder_clear_nb(llvl, lsc, 1)
    elif code == FEED_CLEAR_ASKS:
        ladder_clear_nb(llvl, lsc, -1)
    elif code == RING_RECENTER:
        ladder_recenter_nb(llvl, lsc, ring[ju].price_tick)
    elif code == RING_TRADE or code == -RING_TRADE:
        is_trade = True
        px = ring[ju].price_tick
        if code < 0:  # resting ask: buyer-initiated
            if np.isnan(st.trade_hi_tick) or px > st.trade_hi_tick:
                st.trade_hi_tick = px
        else:
            if np.isnan(st.trade_lo_tick) or px < st.trade_lo_tick:
                st.trade_lo_tick = px
        st.trade_qty += ring[ju].qty
    else:
        ladder_change_inline_nb(llvl, lsc, code, ring[ju].price_tick, ring[ju].qty)
    if sp.on != 0:
        if is_trade:
            signals_on_trade_nb(sst, sp, ring[ju].ts, 1 if code > 0 else -1, ring[ju].qty)
        else:
            signals_on_book_nb(sst, sp, ring[ju].ts, llvl, lsc)
    st.feed_head = j + 1 if j + 1 < cap else 0
    st.feed_count -= 1


@internal
def _feed(ring, st, llvl, lsc, sst, sp, ts, code, px, dq):
    """Queue a change of the exchange book for the local view at local time ``ts``."""
    if ts < st.feed_last_ts:
        ts = st.feed_last_ts
        st.n_feed_clamped += 1
    st.feed_last_ts = ts
    if not _ring_push(ring, st, ts, code, px, dq):
        st.n_feed_overflows += 1
        _ring_pop_apply(ring, st, llvl, lsc, sst, sp)
        _ring_push(ring, st, ts, code, px, dq)


#: :func:`_ring_pop_apply` and :func:`_feed` inlined into the per-event path (the fast
#: feed loop of :func:`run_nb` and an L2 level update), where a call passes some thirty
#: arguments (every array its pointer, shape and strides): callgrind counted 409 → 338 → 262
#: instructions per Binance event as the level update and then these were inlined
_ring_pop_apply_inline = inlined(_ring_pop_apply)
_feed_inline = inlined(_feed)


@internal
def _ring_pop_through(ring, st, llvl, lsc, sst, sp, stop_ts, limit, inclusive):
    """Apply the oldest feed entry and every one after it up to the scheduler's next other
    action: entries at or before ``stop_ts`` (among actions at one time feed updates come
    first) and before ``limit`` (or at it, when ``inclusive``).

    One call for the run of entries :func:`_run_internal` would otherwise take one by one
    (callgrind, Binance spot parity: 53 k entries, each a pass of its loop and a call of some
    thirty arguments). An instrument's entries touch only its own local view (``ring``,
    ``st``'s feed and trade fields, ``llvl``, ``lsc``, ``sst``), so those of the other
    instruments need not bound the run.
    """
    while True:
        _ring_pop_apply_inline(ring, st, llvl, lsc, sst, sp)
        if st.feed_count == 0:
            return
        tr = ring[st.feed_head].ts
        if tr > stop_ts or tr > limit or (tr == limit and not inclusive):
            return


@internal
def _l2_trade_at(ours, cfg, st, side, px, q):
    """L2: a trade of ``q`` lots at our price ``px`` reduces the queue ahead of our orders."""
    slots, cnt = _open_list(st, side)
    for i in range(cnt):
        k = slots[i]
        if ours[k].exch_status == ST_OPEN and ours[k].price_tick == px:
            a = ours[k].queue_ahead - q
            ours[k].queue_ahead = a if a > 0.0 else 0.0
            ours[k].traded_since_depth += q


@internal
def _l2_level_change(ours, cfg, st, side, px, old_q, new_q):
    """Our orders at ``px`` when its level goes ``old_q`` → ``new_q`` lots: the queue model
    (:func:`mmsim.models.queue.queue_front_nb`) moves each one's ``ahead``, the lots traded
    at our price since the last depth update (``traded_since_depth``) netted out."""
    slots, cnt = _open_list(st, side)
    model = cfg.queue_model
    n = cfg.queue_power_n
    for i in range(cnt):
        k = slots[i]
        if ours[k].exch_status != ST_OPEN or ours[k].price_tick != px:
            continue
        o = ours[k]
        o.queue_ahead = queue_front_nb(model, n, o.queue_ahead, old_q, new_q,
                                       o.traded_since_depth)
        ours[k].traded_since_depth = 0


@inlined
def _level_set(ev, side, px, q, lts, snap, nbid, nask, lvl, sc, llvl, lsc, ring, sst, sp,
               ours, st, cfg, lat, resp, fills, olog, counts):
    """L2: the level at ``px`` on ``side`` is now ``q`` lots."""
    idx = px - sc[L_BASE]
    w = sc[L_W]
    if idx < 0 or idx >= w:
        if cfg.ladder_follows_touch == 0:
            sc[L_OOW] += 1
            return 0
        # far-away levels (e.g. bids at 1000.00 next to 63,900) are not tracked unless the
        # touch is near them: move the window only when the update is within reach of the
        # touch, and centre it on the touch (centred on the update, the touch would sit a
        # quarter of the window from the far edge, where the next update within reach on
        # that side moves it back: half a window each way, both ladders copied each time)
        bb = best_bid_tick_nb(sc)
        ba = best_ask_tick_nb(sc)
        ref = bb if bb >= 0 else ba
        if ref >= 0 and abs(px - ref) > w // 4:
            sc[L_OOW] += 1
            return 0
        _recenter(ref if ref >= 0 else px, lvl, sc, llvl, lsc, ring, sst, sp, st, lts)
    old = level_qty_nb(lvl, sc, side, px)
    if q == old:
        return 0
    ladder_change_inline_nb(lvl, sc, side, px, q - old)
    _feed_inline(ring, st, llvl, lsc, sst, sp, lts, side, px, q - old)
    if cfg.ladder_follows_touch != 0:
        b = sc[L_BEST_BID] if side > 0 else sc[L_BEST_ASK]
        if b >= 0 and (b < w // 8 or b > w - w // 8):
            _recenter(b + sc[L_BASE], lvl, sc, llvl, lsc, ring, sst, sp, st,
                      lts)
    if snap:
        return 0
    # only our orders at px itself move (a level deeper than all of them never matters)
    if (side > 0 and nbid > 0 and st.open_bid_lo_tick <= px <= st.open_bid_hi_tick) or (
        side < 0 and nask > 0 and st.open_ask_lo_tick <= px <= st.open_ask_hi_tick
    ):
        _l2_level_change(ours, cfg, st, side, px, old, q)
    if q > old and _reaches_ours(side, px, nbid, nask, st):
        _opposite_volume(side, px, q - old, ev.exch_ts, nbid, nask, ours, st, cfg,
                         lat, resp, fills, olog, counts, sc)
    return 0


@internal
def _recenter(center_px, lvl, sc, llvl, lsc, ring, sst, sp, st, lts):
    """Centre the exchange ladder on ``center_px``; the local ladder follows via the feed."""
    new_base = center_px - sc[L_W] // 2
    ladder_recenter_nb(lvl, sc, new_base)
    st.n_recenters += 1
    _feed(ring, st, llvl, lsc, sst, sp, lts, RING_RECENTER, new_base, 0)


@nb.njit(cache=True, inline="always", _nrt=False)
def _event_clock(ev, ours, st, cfg):
    """What every market event does first, whatever its kind: the local time it reaches the
    strategy's feed (returned; clamped to its exchange time and counted when the data's
    local clock is earlier), the event clock and count, our order bounds when stale."""
    ts = ev.exch_ts
    if cfg.feed_mode == FEED_EXCH_PLUS:
        lts = ts + cfg.feed_ns
    else:
        lts = ev.local_ts + cfg.feed_ns
        if lts < ts:
            lts = ts
            st.n_feed_clamped += 1
    st.last_event_ts = ts
    st.n_events += 1
    if st.dirty != 0:
        _recompute_bounds(ours, st)
    return lts


@nb.njit(cache=True, inline="always", _nrt=False)
def _market_event(
    ev, ordt, free, hkeys, hvals, bs, lvl, anon, sc, llvl, lsc, ring, sst, sp, ours, st, cfg,
    lat, resp, fills, olog, counts,
):
    """Apply one market event at the exchange, update our queue positions and fill us."""
    kind = ev.kind
    side = np.int64(ev.side)
    px = ev.price_tick
    q = ev.qty
    oid = ev.order_id
    ts = ev.exch_ts
    lts = _event_clock(ev, ours, st, cfg)
    if bs[B_NFREE] == 0 and (kind == EventKind.ADD or kind == EventKind.MODIFY) and oid != 0:
        st.n_events -= 1
        return ERR_BOOK_FULL  # nothing applied yet: the driver grows the table and resumes
    snap = st.in_snapshot != 0
    nbid = st.n_open_bids
    nask = st.n_open_asks

    if kind == EventKind.ADD:
        if oid != 0:
            old = find_order_nb(hkeys, hvals, bs, oid)
            if old >= 0:
                os_ = ordt[old, O_SIDE]
                op = ordt[old, O_PRICE]
                oq = l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl, sc, old)
                _feed(ring, st, llvl, lsc, sst, sp, lts, os_, op, -oq)
                _reduce_ahead(ours, cfg, st, os_, op, ordt[old, O_SEQ], oq)
        slot = l3_add_nb(ordt, free, hkeys, hvals, bs, lvl, anon, sc, oid, side, px, q, False)
        if slot == -2:
            return ERR_BOOK_FULL
        _feed_inline(ring, st, llvl, lsc, sst, sp, lts, side, px, q)
        if oid == 0 and ((side > 0 and nbid > 0) or (side < 0 and nask > 0)):
            slots, cnt = _open_list(st, side)
            for i in range(cnt):
                k = slots[i]
                if (ours[k].exch_status == ST_OPEN and ours[k].side == side
                        and ours[k].price_tick == px):
                    ours[k].queue_ahead += q
        if not snap and _reaches_ours(side, px, nbid, nask, st):
            _opposite_volume(side, px, q, ts, nbid, nask, ours, st, cfg, lat,
                             resp, fills, olog, counts, sc)
        return 0

    if kind == EventKind.CANCEL or kind == EventKind.DELETE or kind == EventKind.EXECUTE:
        if oid == 0:
            removed = l3_anon_reduce_nb(lvl, anon, sc, side, px, q)
            if removed > 0:
                _feed(ring, st, llvl, lsc, sst, sp, lts, side, px, -removed)
            seq = np.int64(-1)
            oside = side
            opx = px
        else:
            slot = find_order_nb(hkeys, hvals, bs, oid)
            if slot < 0:
                bs[B_UNKNOWN] += 1
                return 0
            oside = ordt[slot, O_SIDE]
            opx = ordt[slot, O_PRICE]
            seq = ordt[slot, O_SEQ]
            if kind == EventKind.DELETE:
                removed = l3_remove_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot)
            else:
                removed = l3_reduce_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot, q)
            _feed_inline(ring, st, llvl, lsc, sst, sp, lts, oside, opx, -removed)
        if kind == EventKind.EXECUTE and not snap and removed > 0:
            _feed(ring, st, llvl, lsc, sst, sp, lts, RING_TRADE if oside > 0 else -RING_TRADE, opx,
                  removed)
        if (oside > 0 and nbid > 0 and opx <= st.open_bid_hi_tick) or (
            oside < 0 and nask > 0 and opx >= st.open_ask_lo_tick
        ):
            if kind == EventKind.EXECUTE and not snap:
                # through-fills and behind-us executions first, then the queue ahead shrinks
                behind = seq if seq >= 0 else np.int64(-1)
                _fill_priority(ours, oside, opx, opx, behind, removed if removed > 0 else q,
                               ts, st, cfg, lat, resp, fills, olog, counts, sc,
                               False)
            _reduce_ahead(ours, cfg, st, oside, opx, seq, removed)
        return 0

    if kind == EventKind.MODIFY:
        slot = find_order_nb(hkeys, hvals, bs, oid) if oid != 0 else -1
        if slot < 0:
            s2 = l3_add_nb(ordt, free, hkeys, hvals, bs, lvl, anon, sc, oid, side, px, q, True)
            if s2 == -2:
                return ERR_BOOK_FULL
            _feed(ring, st, llvl, lsc, sst, sp, lts, side, px, q)
        else:
            oside = ordt[slot, O_SIDE]
            opx = ordt[slot, O_PRICE]
            oq = ordt[slot, O_QTY]
            seq = ordt[slot, O_SEQ]
            lost = l3_modify_nb(ordt, free, hkeys, hvals, bs, lvl, sc, slot, side, px, q)
            if oside == side and opx == px:
                _feed(ring, st, llvl, lsc, sst, sp, lts, side, px, q - oq)
            else:
                _feed(ring, st, llvl, lsc, sst, sp, lts, oside, opx, -oq)
                _feed(ring, st, llvl, lsc, sst, sp, lts, side, px, q)
            dec = oq if lost == 1 else oq - q
            if dec > 0:
                _reduce_ahead(ours, cfg, st, oside, opx, seq, dec)
        if not snap and _reaches_ours(side, px, nbid, nask, st):
            _opposite_volume(side, px, q, ts, nbid, nask, ours, st, cfg, lat,
                             resp, fills, olog, counts, sc)
        return 0

    if kind == EventKind.TRADE:
        if snap:
            return 0
        # trades reach the strategy's view (INFO prints are carried by EXECUTE records)
        if side != 0 and (ev.flags & (EventFlag.CROSS | EventFlag.INFO)) == 0:
            code = RING_TRADE if side > 0 else -RING_TRADE
            _feed(ring, st, llvl, lsc, sst, sp, lts, code, px, q)
        if (ev.flags & (EventFlag.INFO | EventFlag.CROSS)) != 0:
            return 0
        if (side > 0 and nbid > 0 and px <= st.open_bid_hi_tick) or (
            side < 0 and nask > 0 and px >= st.open_ask_lo_tick
        ):
            _fill_priority(ours, side, px, px, -1, q, ts, st, cfg, lat, resp,
                            fills, olog, counts, sc, True)
            if cfg.queue_model != QUEUE_FIFO:
                # L2: the trade executed displayed volume ahead of us; the depth update that
                # follows shows the same decrease, so remember it to net it out
                _l2_trade_at(ours, cfg, st, side, px, q)
        return 0

    if kind == EventKind.LEVEL_SET:
        return _level_set(ev, side, px, q, lts, snap, nbid, nask, lvl, sc, llvl, lsc, ring,
                          sst, sp, ours, st, cfg, lat, resp, fills, olog, counts)

    if kind == EventKind.BBO:
        # a ticker row kept for validation: nothing to apply (run_nb takes these rows itself;
        # the call below passes some twenty arrays)
        return 0
    # the rare kinds (marks, funding, clears, snapshots, status) in a kernel of their own:
    # run_nb inlines this function, and inlining costs compile time by its size squared
    return _rare_event(ev, kind, side, lts, ordt, free, hkeys, hvals, bs, lvl, anon, sc, llvl,
                       lsc, ring, sst, sp, ours, st, cfg)


@internal
def _rare_event(ev, kind, side, lts, ordt, free, hkeys, hvals, bs, lvl, anon, sc, llvl, lsc,
                ring, sst, sp, ours, st, cfg):
    """:func:`_market_event` for a MARK, FUNDING, CLEAR, SNAPSHOT_BEGIN/END or STATUS event."""
    oid = ev.order_id
    if kind == EventKind.MARK:
        st.mark_price = ev.value
        return 0

    if kind == EventKind.FUNDING:
        st.funding_rate = ev.value
        nxt = oid
        if nxt > st.last_funding_ts and nxt != st.next_funding_ts:
            st.next_funding_ts = nxt
        return 0

    if kind == EventKind.CLEAR:
        l3_clear_nb(ordt, free, hkeys, hvals, bs, lvl, anon, sc, side)
        code = FEED_CLEAR_BOTH if side == 0 else (FEED_CLEAR_BIDS if side > 0 else FEED_CLEAR_ASKS)
        _feed(ring, st, llvl, lsc, sst, sp, lts, code, 0, 0)
        for k in range(cfg.max_ours):
            if ours[k].exch_status == ST_OPEN and (side == 0 or ours[k].side == side):
                ours[k].queue_ahead = 0.0
                ours[k].seq = bs[B_SEQ]
        return 0

    if kind == EventKind.SNAPSHOT_BEGIN:
        st.in_snapshot = 1
        return 0

    if kind == EventKind.SNAPSHOT_END:
        st.in_snapshot = 0
        # the snapshot rebuilt the queues: our orders rejoin at the back of their levels
        for k in range(cfg.max_ours):
            if ours[k].exch_status == ST_OPEN:
                ours[k].queue_ahead = level_qty_nb(lvl, sc, ours[k].side, ours[k].price_tick)
                ours[k].seq = bs[B_SEQ]
        return 0

    if kind == EventKind.STATUS:
        st.halted = 1 if ev.value < 0.5 else 0
        return 0
    return 0


@internal
def _taker_walk(ours, slot, ts, st, cfg, lat, resp, fills, olog, counts,
                lvl, sc):
    """Take liquidity for our order in ``slot`` from the opposite side of the exchange book.

    The book is not changed (no market impact); each level is used at most once per order.
    """
    side = ours[slot].side
    lim = ours[slot].price_tick
    is_mkt = ours[slot].tif == TimeInForce.MARKET
    w = sc[L_W]
    if side > 0:
        j = sc[L_BEST_ASK]
        if j < 0:
            return
        while j < w and ours[slot].leaves > 0:
            p = j + sc[L_BASE]
            if not is_mkt and p > lim:
                break
            avail = lvl[ASK_ROW, j]
            if avail > 0:
                take = avail if avail < ours[slot].leaves else ours[slot].leaves
                _fill(ours, slot, ts, p, take, Liquidity.TAKER, st, cfg, lat,
                      resp, fills, olog, counts, sc)
            j += 1
    else:
        j = sc[L_BEST_BID]
        if j < 0:
            return
        while j >= 0 and ours[slot].leaves > 0:
            p = j + sc[L_BASE]
            if not is_mkt and p < lim:
                break
            avail = lvl[BID_ROW, j]
            if avail > 0:
                take = avail if avail < ours[slot].leaves else ours[slot].leaves
                _fill(ours, slot, ts, p, take, Liquidity.TAKER, st, cfg, lat,
                      resp, fills, olog, counts, sc)
            j -= 1


@internal
def _fok_fillable(ours, slot, lvl, sc):
    """Whether the opposite side of the exchange book holds the whole open quantity of our
    fill-or-kill order in ``slot`` at prices within its limit (the walk of
    :func:`_taker_walk`, without filling)."""
    side = ours[slot].side
    lim = ours[slot].price_tick
    need = ours[slot].leaves
    w = sc[L_W]
    got = np.int64(0)
    if side > 0:
        j = sc[L_BEST_ASK]
        if j < 0:
            return False
        while j < w and got < need and j + sc[L_BASE] <= lim:
            got += lvl[ASK_ROW, j]
            j += 1
    else:
        j = sc[L_BEST_BID]
        if j < 0:
            return False
        while j >= 0 and got < need and j + sc[L_BASE] >= lim:
            got += lvl[BID_ROW, j]
            j -= 1
    return got >= need


@internal
def _crosses(side, px, tif, sc):
    if tif == TimeInForce.MARKET:
        return True
    if side > 0:
        a = best_ask_tick_nb(sc)
        return a >= 0 and px >= a
    b = best_bid_tick_nb(sc)
    return b >= 0 and px <= b


@internal
def _request_arrives(slot, ours, st, cfg, lat, resp, fills, olog, counts,
                     lvl, sc, bs):
    """Our request for ``slot`` reaches the exchange (at ``ours[slot].req_ts``)."""
    ts = ours[slot].req_ts
    req = ours[slot].req
    ours[slot].req = 0
    st.dirty = 1
    if req == REQ_SUBMIT:
        rl = _resp_time(st, cfg, lat, Action.SUBMIT, ts)
        side = ours[slot].side
        px = ours[slot].price_tick
        tif = ours[slot].tif
        reason = 0
        if st.halted != 0:
            reason = Reject.HALTED
        elif tif == TimeInForce.POST_ONLY and _crosses(side, px, tif, sc):
            reason = Reject.POST_ONLY_WOULD_CROSS
        if reason != 0:
            ours[slot].exch_status = ST_DONE
            ours[slot].leaves = 0
            _answer(olog, counts, resp, st, ours, slot, rl, ts, OrderEvent.REJECT, px,
                    ours[slot].qty, 0, 0, reason, 0.0)
            return
        ours[slot].exch_status = ST_OPEN
        _answer(olog, counts, resp, st, ours, slot, rl, ts, OrderEvent.ACK, px,
                ours[slot].qty, ours[slot].leaves, 0, 0, 0.0)
        if tif == TimeInForce.FOK and not _fok_fillable(ours, slot, lvl, sc):
            # fill-or-kill: not all of it can fill at arrival, so none of it does
            ours[slot].exch_status = ST_DONE
            _answer(olog, counts, resp, st, ours, slot, rl, ts, OrderEvent.EXPIRE, px,
                    ours[slot].qty, 0, 0, Reject.NO_LIQUIDITY, 0.0)
            ours[slot].leaves = 0
            return
        if _crosses(side, px, tif, sc):
            _taker_walk(ours, slot, ts, st, cfg, lat, resp, fills, olog,
                        counts, lvl, sc)
        if ours[slot].leaves > 0:
            if tif == TimeInForce.IOC or tif == TimeInForce.MARKET or tif == TimeInForce.FOK:
                ours[slot].exch_status = ST_DONE
                _answer(olog, counts, resp, st, ours, slot, rl, ts, OrderEvent.EXPIRE, px,
                        ours[slot].qty, 0, 0, 0, 0.0)
                ours[slot].leaves = 0
            else:
                ours[slot].seq = bs[B_SEQ]
                ours[slot].queue_ahead = level_qty_nb(lvl, sc, side, px)
        else:
            ours[slot].exch_status = ST_DONE
        return
    if req == REQ_CANCEL:
        rl = _resp_time(st, cfg, lat, Action.CANCEL, ts)
        if ours[slot].exch_status == ST_OPEN:
            ours[slot].exch_status = ST_DONE
            ours[slot].leaves = 0
            _answer(olog, counts, resp, st, ours, slot, rl, ts, OrderEvent.CANCEL_ACK,
                    ours[slot].price_tick, ours[slot].qty, 0, 0, 0, 0.0)
        else:
            _answer(olog, counts, resp, st, ours, slot, rl, ts, OrderEvent.CANCEL_REJECT,
                    ours[slot].price_tick, ours[slot].qty, 0, 0, Reject.UNKNOWN_ORDER, 0.0)
        return
    if req == REQ_MODIFY:
        # the request carries the new total quantity (filled + open, as the strategy knew it
        # when it sent it): fills in flight then reduce the new open quantity
        rl = _resp_time(st, cfg, lat, Action.MODIFY, ts)
        npx = ours[slot].req_price_tick
        nq = ours[slot].req_qty - ours[slot].filled
        side = ours[slot].side
        reason = 0
        if ours[slot].exch_status != ST_OPEN:
            reason = Reject.UNKNOWN_ORDER
        elif nq <= 0:
            # the new total is not above what already filled: the modify cancels the order
            # (Binance USD-M's rule; CME eliminates it likewise)
            ours[slot].exch_status = ST_DONE
            ours[slot].leaves = 0
            st.dirty = 1
            _answer(olog, counts, resp, st, ours, slot, rl, ts, OrderEvent.CANCEL_ACK,
                    ours[slot].price_tick, ours[slot].qty, 0, 0, Reject.FILLED_BEYOND_NEW_QTY,
                    0.0)
            return
        elif npx != ours[slot].price_tick and ours[slot].tif == TimeInForce.POST_ONLY and \
                _crosses(side, npx, TimeInForce.POST_ONLY, sc):
            reason = Reject.POST_ONLY_WOULD_CROSS
        if reason != 0:
            _answer(olog, counts, resp, st, ours, slot, rl, ts, OrderEvent.MODIFY_REJECT,
                    ours[slot].price_tick, ours[slot].qty, ours[slot].leaves, 0, reason, 0.0)
            return
        lose = npx != ours[slot].price_tick or nq > ours[slot].leaves
        ours[slot].price_tick = npx
        ours[slot].qty = ours[slot].filled + nq
        ours[slot].leaves = nq
        if lose:
            ours[slot].seq = bs[B_SEQ]
            ours[slot].queue_ahead = level_qty_nb(lvl, sc, side, npx)
        _answer(olog, counts, resp, st, ours, slot, rl, ts, OrderEvent.MODIFY_ACK, npx,
                ours[slot].qty, nq, 0, 0, 0.0)
        if _crosses(side, npx, ours[slot].tif, sc):
            _taker_walk(ours, slot, ts, st, cfg, lat, resp, fills, olog,
                        counts, lvl, sc)
            if ours[slot].leaves > 0:
                ours[slot].seq = bs[B_SEQ]
                ours[slot].queue_ahead = level_qty_nb(lvl, sc, side, npx)


@internal
def _response_arrives(resp, st, ours):
    """Apply the earliest response to the strategy's view; returns (kind, slot)."""
    n = st.n_responses
    j = 0
    for i in range(1, n):
        if resp[i].ts < resp[j].ts or (
            resp[i].ts == resp[j].ts and resp[i].seq < resp[j].seq
        ):
            j = i
    kind = resp[j].kind
    slot = resp[j].slot
    ts = resp[j].ts
    if kind == OrderEvent.ACK:
        if ours[slot].local_status == ST_PENDING:
            ours[slot].local_status = ST_OPEN
        ours[slot].in_flight = 0
    elif kind == OrderEvent.REJECT:
        ours[slot].local_status = ST_DONE
        ours[slot].local_leaves = 0
        ours[slot].in_flight = 0
    elif kind == OrderEvent.FILL:
        side = ours[slot].side
        st.local_position += side * resp[j].fill_qty
        ours[slot].local_filled += resp[j].fill_qty
        st.local_cash += resp[j].cash
        st.last_fill_ts = ts
        ours[slot].local_leaves = resp[j].leaves
        if resp[j].leaves <= 0:
            ours[slot].local_status = ST_DONE
    elif kind == OrderEvent.EXPIRE or kind == OrderEvent.CANCEL_ACK:
        ours[slot].local_status = ST_DONE
        ours[slot].local_leaves = 0
        ours[slot].in_flight = 0
        ours[slot].modify_total = 0
    elif kind == OrderEvent.MODIFY_ACK:
        ours[slot].local_price_tick = resp[j].price_tick
        ours[slot].local_qty = resp[j].qty
        ours[slot].local_leaves = resp[j].leaves
        ours[slot].in_flight = 0
        ours[slot].modify_total = 0
    elif kind == OrderEvent.MODIFY_REJECT or kind == OrderEvent.CANCEL_REJECT:
        ours[slot].in_flight = 0
        ours[slot].modify_total = 0
    ours[slot].n_responses -= 1
    o = ours[slot]
    if o.is_hedge == 1 and o.local_status == ST_DONE and o.hedge_done == 0:
        ours[slot].hedge_done = 1
        st.n_pending_hedges -= 1
    if ours[slot].n_responses == 0 and ours[slot].local_status == ST_DONE and \
            ours[slot].exch_status == ST_DONE and ours[slot].req == 0:
        ours[slot].local_status = ST_FREE
        ours[slot].exch_status = ST_FREE
    last = n - 1
    if j != last:
        resp[j] = resp[last]
    st.n_responses = last
    _recompute_next_resp(resp, st)
    return kind, slot


@internal
def _send(ours, st, cfg, lat, olog, counts, slot, req, ts, px, qty):
    """Send a request for ``slot`` from the strategy at local time ``ts``.

    ``qty`` is the open quantity asked for (submit, modify). A modify travels as a new total
    quantity (lots filled as the strategy knows them + ``qty``), as on CME and Binance: fills
    still in flight then come out of the new open quantity (a total not above the filled
    quantity cancels the order), so the order can never fill more than ``max(open now,
    qty)`` beyond what the strategy knows (see :func:`_exposure`).
    """
    lk = cfg.latency_model
    if req == REQ_SUBMIT:
        e = entry_latency_nb(lk, lat, Action.SUBMIT, ts, st)
        ev = OrderEvent.SUBMIT
    elif req == REQ_CANCEL:
        e = entry_latency_nb(lk, lat, Action.CANCEL, ts, st)
        ev = OrderEvent.CANCEL
    else:
        e = entry_latency_nb(lk, lat, Action.MODIFY, ts, st)
        ev = OrderEvent.MODIFY
    if ts + e < st.last_request_ts:  # one order-entry session: requests keep their order
        e = st.last_request_ts - ts
    st.last_request_ts = ts + e
    st.request_seq += 1
    total = qty
    if req == REQ_MODIFY:
        total = ours[slot].local_filled + qty
        ours[slot].modify_total = total
    if req != REQ_CANCEL:
        ours[slot].local_target = qty
        ours[slot].local_sent_ts = ts
    ours[slot].req = req
    ours[slot].req_ts = ts + e
    ours[slot].req_price_tick = px
    ours[slot].req_qty = total
    ours[slot].req_seq = st.request_seq
    ours[slot].in_flight = 1
    if ts + e < st.next_request_ts:
        st.next_request_ts = ts + e
    if req == REQ_CANCEL:
        _log_order(olog, counts, ours, slot, ts, ts + e, ev, px, ours[slot].local_qty,
                   ours[slot].local_leaves, 0, 0)
    else:
        _log_order(olog, counts, ours, slot, ts, ts + e, ev, px, total, qty, 0, 0)


@internal
def _exposure(ours, nmax, side):
    """Lots our live orders on ``side`` (quotes and hedges) among the first ``nmax`` slots
    (``st.n_slots_used``) could still fill, worst case, beyond the fills the strategy knows
    of: open quantity as last reported, or, with a modify in flight, ``max(open, modify
    total − filled)``. Orders whose submit is not yet acknowledged count in full."""
    tot = np.int64(0)
    for k in range(nmax):
        ls = ours[k].local_status
        if (ls != ST_PENDING and ls != ST_OPEN) or ours[k].side != side:
            continue
        e = ours[k].local_leaves
        if ours[k].modify_total > 0:
            m = ours[k].modify_total - ours[k].local_filled
            if m > e:
                e = m
        tot += e
    return tot


@internal
def _reset_order(ours, slot):
    """Every field of our order slot ``slot`` back to zero (a fresh order); the slot's
    ``instrument`` stays."""
    o = ours[slot]
    o.order_id = 0
    o.side = 0
    o.price_tick = 0
    o.qty = 0
    o.leaves = 0
    o.tif = 0
    o.seq = 0
    o.exch_status = 0
    o.is_hedge = 0
    o.req = 0
    o.req_ts = 0
    o.req_price_tick = 0
    o.req_qty = 0
    o.req_seq = 0
    o.local_status = 0
    o.local_price_tick = 0
    o.local_qty = 0
    o.local_leaves = 0
    o.in_flight = 0
    o.n_responses = 0
    o.filled = 0
    o.hedge_done = 0
    o.traded_since_depth = 0
    o.local_filled = 0
    o.local_target = 0
    o.modify_total = 0
    o.local_sent_ts = 0
    o.queue_ahead = 0.0


@internal
def _new_order(ours, st, cfg, lat, olog, counts, ts, side, px, qty, tif, is_hedge):
    # the lowest free slot: below st.n_slots_used, or the next never-used one
    slot = -1
    for k in range(min(cfg.max_ours, st.n_slots_used + 1)):
        o = ours[k]
        if o.local_status == ST_FREE and o.exch_status == ST_FREE and o.n_responses == 0 \
                and o.req == 0:
            slot = k
            break
    if slot < 0:
        st.n_slot_full += 1
        return -1
    if slot >= st.n_slots_used:
        st.n_slots_used = slot + 1
    st.last_order_id += 1
    _reset_order(ours, slot)
    ours[slot].order_id = st.last_order_id
    ours[slot].side = side
    ours[slot].price_tick = px
    ours[slot].qty = qty
    ours[slot].leaves = qty
    ours[slot].tif = tif
    ours[slot].is_hedge = is_hedge
    ours[slot].exch_status = ST_PENDING
    ours[slot].local_status = ST_PENDING
    ours[slot].local_price_tick = px
    ours[slot].local_qty = qty
    ours[slot].local_leaves = qty
    _send(ours, st, cfg, lat, olog, counts, slot, REQ_SUBMIT, ts, px, qty)
    if is_hedge:
        st.n_pending_hedges += 1
    return slot


@nb.njit(cache=True, inline="always", _nrt=False)
def _fit(q, open_qty, room):
    """An order's open quantity ``open_qty`` → ``q`` within ``room`` more lots: the increase
    is cut to what fits (never below ``open_qty``); returns ``(q, room left)``."""
    if q <= open_qty:
        return q, room
    inc = q - open_qty
    if inc > room:
        inc = room if room > 0 else 0
    return open_qty + inc, room - inc


@internal
def _manage_side(ours, st, cfg, lat, olog, counts, ts, side, tp, tq, n, used, matched,
                 room):
    """Turn target quotes of one side into submits, modifies and cancels.

    An order already at a target price with the target size is left alone (it keeps its
    queue position); orders with a request in flight are not touched until it is answered.
    ``room`` is how many more lots this side may commit (the position limit less the
    position the strategy knows and :func:`_exposure`): a submit, or a modify that raises an
    order's open quantity, is cut to fit (skipped when nothing fits). Cancels and size cuts
    free nothing until they are answered, since the order may fill before they arrive.
    """
    nmax = cfg.max_ours
    used[:] = 0
    matched[:nmax] = 0
    nused = st.n_slots_used
    for k in range(nused):
        ls = ours[k].local_status
        if ours[k].is_hedge == 1 or ours[k].side != side:
            continue
        if ls != ST_PENDING and ls != ST_OPEN:
            continue
        for j in range(n):
            if used[j] == 0 and tp[j] == ours[k].local_price_tick:
                used[j] = 1
                matched[k] = 1
                if ours[k].in_flight == 0 and ours[k].local_target != tq[j] and ls == ST_OPEN:
                    lv = ours[k].local_leaves
                    q, room = _fit(tq[j], lv, room)
                    if tq[j] > lv and q == lv:
                        q = 0  # more was wanted and nothing fits: leave the order alone
                    if q > 0 and q != ours[k].local_target:
                        _send(ours, st, cfg, lat, olog, counts, k, REQ_MODIFY, ts, tp[j], q)
                break
    for k in range(nused):
        ls = ours[k].local_status
        if matched[k] != 0 or ours[k].is_hedge == 1 or ours[k].side != side:
            continue
        if ls != ST_PENDING and ls != ST_OPEN:
            continue
        if ours[k].in_flight != 0:
            continue
        target = -1
        if cfg.replace_mode == REPLACE_MODIFY:
            for j in range(n):
                if used[j] == 0:
                    target = j
                    break
        if target >= 0:
            used[target] = 1
            q, room = _fit(tq[target], ours[k].local_leaves, room)
            _send(ours, st, cfg, lat, olog, counts, k, REQ_MODIFY, ts, tp[target], q)
        else:
            _send(ours, st, cfg, lat, olog, counts, k, REQ_CANCEL, ts, ours[k].local_price_tick, 0)
    for j in range(n):
        if used[j] == 0:
            q, room = _fit(tq[j], 0, room)
            if q <= 0:
                continue
            _new_order(ours, st, cfg, lat, olog, counts, ts, side, tp[j], q,
                       cfg.quote_tif, 0)


@internal
def _fill_ctx(ctx, now, reason, st, cfg, llvl, lsc, ours, depth_px, depth_q, sst, sp):
    t0 = st.t0
    if sp.on != 0:
        signals_to_ctx_nb(sst, sp, now, llvl, lsc, ctx, Ctx.SIGNALS0)
    else:
        for k in range(SignalCtx.SIZE):
            ctx[Ctx.SIGNALS0 + k] = np.nan
    ctx[Ctx.TIME_S] = (now - t0) * 1e-9
    if cfg.end_ts > 0:
        ctx[Ctx.TIME_TO_HORIZON_S] = max(0.0, (cfg.end_ts - now) * 1e-9)
    else:
        ctx[Ctx.TIME_TO_HORIZON_S] = np.inf
    ctx[Ctx.REASON] = reason
    b = best_bid_tick_nb(lsc)
    a = best_ask_tick_nb(lsc)
    bq = llvl[BID_ROW, lsc[L_BEST_BID]] if b >= 0 else 0
    aq = llvl[ASK_ROW, lsc[L_BEST_ASK]] if a >= 0 else 0
    ctx[Ctx.BEST_BID_TICK] = b if b >= 0 else np.nan
    ctx[Ctx.BEST_ASK_TICK] = a if a >= 0 else np.nan
    ctx[Ctx.BID_QTY] = bq
    ctx[Ctx.ASK_QTY] = aq
    if b >= 0 and a >= 0:
        ctx[Ctx.MID_TICK] = 0.5 * (a + b)
        ctx[Ctx.SPREAD_TICK] = a - b
        if aq + bq > 0:
            ctx[Ctx.WMID_TICK] = (aq * b + bq * a) / (aq + bq)
        else:
            ctx[Ctx.WMID_TICK] = 0.5 * (a + b)
    else:
        ctx[Ctx.MID_TICK] = np.nan
        ctx[Ctx.SPREAD_TICK] = np.nan
        ctx[Ctx.WMID_TICK] = np.nan
    ctx[Ctx.POSITION] = st.local_position
    ctx[Ctx.CASH] = st.local_cash
    ctx[Ctx.VOL_TICK] = np.sqrt(st.vol_var)
    ctx[Ctx.TICK_SIZE] = cfg.tick_size
    ctx[Ctx.LOT_SIZE] = cfg.lot_size
    ctx[Ctx.MAX_POSITION] = cfg.max_position_lots if cfg.max_position_lots >= 0 else np.inf
    ctx[Ctx.TARGET_POSITION] = cfg.target_position_lots
    # ctx[Ctx.N_PENDING_HEDGE]: every instrument's, written by _fill_ctx_legs
    lf = st.last_fill_ts
    ctx[Ctx.LAST_FILL_S] = (lf - t0) * 1e-9 if lf > 0 else -np.inf
    ctx[Ctx.TRADE_HI_TICK] = st.trade_hi_tick
    ctx[Ctx.TRADE_LO_TICK] = st.trade_lo_tick
    ctx[Ctx.TRADE_QTY] = st.trade_qty
    if cfg.ctx_depth != 0:
        ladder_top_nb(llvl, lsc, 1, CTX_DEPTH, depth_px, depth_q)
        for k in range(CTX_DEPTH):
            ctx[Ctx.DEPTH0 + 2 * k] = depth_px[k] if depth_px[k] >= 0 else np.nan
            ctx[Ctx.DEPTH0 + 2 * k + 1] = depth_q[k]
        ladder_top_nb(llvl, lsc, -1, CTX_DEPTH, depth_px, depth_q)
        for k in range(CTX_DEPTH):
            ctx[Ctx.DEPTH0 + 2 * CTX_DEPTH + 2 * k] = depth_px[k] if depth_px[k] >= 0 else np.nan
            ctx[Ctx.DEPTH0 + 2 * CTX_DEPTH + 2 * k + 1] = depth_q[k]
    else:
        # no kernel of the run reads the depth (KernelSpec.reads_depth): NaN, and no scan
        for k in range(4 * CTX_DEPTH):
            ctx[Ctx.DEPTH0 + k] = np.nan
    nob = 0
    noa = 0
    c = 0
    for k in range(st.n_slots_used):
        ls = ours[k].local_status
        if ls == ST_PENDING or ls == ST_OPEN:
            if ours[k].is_hedge == 0:
                if ours[k].side > 0:
                    nob += 1
                else:
                    noa += 1
            if c < CTX_ORDERS:
                base = Ctx.ORDERS0 + CtxOrder.SIZE * c
                ctx[base + CtxOrder.SIDE] = ours[k].side
                ctx[base + CtxOrder.PRICE_TICK] = ours[k].local_price_tick
                ctx[base + CtxOrder.LEAVES] = ours[k].local_leaves
                ctx[base + CtxOrder.STATUS] = ls
                ctx[base + CtxOrder.IS_HEDGE] = ours[k].is_hedge
                c += 1
    while c < CTX_ORDERS:
        base = Ctx.ORDERS0 + CtxOrder.SIZE * c
        ctx[base + CtxOrder.SIDE] = 0.0
        ctx[base + CtxOrder.PRICE_TICK] = np.nan
        ctx[base + CtxOrder.LEAVES] = 0.0
        ctx[base + CtxOrder.STATUS] = 0.0
        ctx[base + CtxOrder.IS_HEDGE] = 0.0
        c += 1
    ctx[Ctx.N_OPEN_BID] = nob
    ctx[Ctx.N_OPEN_ASK] = noa


@internal
def _fill_ctx_legs(ctx, st, cfg, llvl, lsc):
    """The per-instrument blocks of ``ctx`` (:data:`mmsim.contracts.InstCtx`): each
    instrument's local top of book, mid, our position there, its grid and contract, its
    pending hedges and limit; ``ctx[Ctx.N_INSTRUMENTS]`` their number. ``st``, ``cfg``,
    ``lsc`` are [n_instruments, ...], ``llvl`` [n_instruments, 2, W]."""
    ni = st.shape[0]
    ctx[Ctx.N_INSTRUMENTS] = ni
    npend = 0
    for i in range(ni):
        base = inst_ctx_base(i)
        sc = lsc[i]
        b = best_bid_tick_nb(sc)
        a = best_ask_tick_nb(sc)
        ctx[base + InstCtx.BEST_BID_TICK] = b if b >= 0 else np.nan
        ctx[base + InstCtx.BEST_ASK_TICK] = a if a >= 0 else np.nan
        ctx[base + InstCtx.BID_QTY] = llvl[i, 0, sc[L_BEST_BID]] if b >= 0 else 0
        ctx[base + InstCtx.ASK_QTY] = llvl[i, 1, sc[L_BEST_ASK]] if a >= 0 else 0
        ctx[base + InstCtx.MID_TICK] = 0.5 * (a + b) if a >= 0 and b >= 0 else np.nan
        ctx[base + InstCtx.POSITION] = st[i].local_position
        ctx[base + InstCtx.TICK_SIZE] = cfg[i].tick_size
        ctx[base + InstCtx.LOT_SIZE] = cfg[i].lot_size
        ctx[base + InstCtx.MULTIPLIER] = cfg[i].multiplier
        ctx[base + InstCtx.IS_INVERSE] = cfg[i].is_inverse
        ctx[base + InstCtx.N_PENDING_HEDGE] = st[i].n_pending_hedges
        mp = cfg[i].max_position_lots
        ctx[base + InstCtx.MAX_POSITION] = mp if mp >= 0 else np.inf
        npend += st[i].n_pending_hedges
    # every hedge order still working, whatever its instrument
    ctx[Ctx.N_PENDING_HEDGE] = npend


@internal
def _hedge_orders(now, hout, st2, cfg2, lat2, ours2, olog, counts):
    """Send the hedger's orders (``hout``, :data:`HedgeOut` layout), each on the instrument
    it names; an order naming an instrument not in the run, or with no size, is ignored.
    Hedges are taking orders (MARKET, or IOC at a limit) and obey that instrument's
    position limit."""
    ni = st2.shape[0]
    nh = min(int(hout[HedgeOut.N]), MAX_HEDGE_ORDERS)
    for k in range(nh):
        base = HedgeOut.ORDER0 + HedgeOut.ORDER_SIZE * k
        inst = int(hout[base + HedgeOut.INSTRUMENT])
        side = int(hout[base + HedgeOut.SIDE])
        q = np.int64(hout[base + HedgeOut.QTY])
        tif = int(hout[base + HedgeOut.TIF])
        lim = hout[base + HedgeOut.LIMIT_TICK]
        if inst < 0 or inst >= ni or q <= 0 or (side != 1 and side != -1):
            continue
        if tif != TimeInForce.MARKET and tif != TimeInForce.IOC and tif != TimeInForce.FOK:
            tif = TimeInForce.MARKET
        if tif == TimeInForce.FOK and np.isnan(lim):
            continue  # a fill-or-kill order needs its limit price
        maxp = cfg2[inst].max_position_lots
        if maxp >= 0:  # hedges obey the position limit too
            r = maxp - side * st2[inst].local_position - _exposure(
                ours2[inst], st2[inst].n_slots_used, side)
            if q > r:
                q = r
            if q <= 0:
                continue
        if tif == TimeInForce.MARKET or np.isnan(lim):
            pxi = np.int64(0)
        else:
            pxi = np.int64(np.floor(lim + 1e-9)) if side > 0 else np.int64(np.ceil(lim - 1e-9))
        _new_order(ours2[inst], st2[inst], cfg2[inst], lat2[inst], olog, counts, now, side,
                   pxi, q, tif, 1)


# ---- risk limits, should-quote rules and quote management (MODELS.md §10, §4) -------------
# All of it runs in the decision path, and only with ``cfg.risk_on`` (an option is on).


@internal
def _risk_bit(reason):
    """The bit of a :data:`RiskReason` in ``st.risk_active``."""
    return np.int64(1) << (reason - RISK_REASON_BASE)


@internal
def _log_risk(olog, counts, now, event, reason, side, mid, pos):
    """An orders-log row of the risk layer (``event`` RISK_ON / RISK_OFF, ``reason`` a
    :data:`RiskReason`): no order, ``side`` the side it stops (0 = both), the strategy's
    ``mid`` (ticks, rounded; 0 if unknown) and position ``pos`` (lots)."""
    j = counts[1]
    olog[j].local_ts = now
    olog[j].exch_ts = now
    olog[j].order_id = 0
    olog[j].price_tick = 0 if np.isnan(mid) else np.int64(np.floor(mid + 0.5))
    olog[j].qty = pos
    olog[j].leaves_qty = 0
    olog[j].fill_qty = 0
    olog[j].event = event
    olog[j].side = side
    olog[j].tif = 0
    olog[j].reason = reason
    olog[j].is_hedge = 0
    olog[j].instrument = 0
    counts[1] = j + 1


@internal
def _risk_transitions(olog, counts, st, now, active, mid, ofi_side):
    """Log every reason that starts (RISK_ON) or stops (RISK_OFF) acting, then keep
    ``active`` in ``st.risk_active``. The side of a trigger is the one it stops: the side that
    adds to ``|q|`` for the position-dependent reasons, ``ofi_side`` (the side the flow runs
    against) for the order-flow pause, else both (0)."""
    pos = st.local_position
    adding = 1 if pos > 0 else (-1 if pos < 0 else 0)
    old = st.risk_active
    for r in range(RISK_REASON_BASE, RISK_REASON_BASE + N_RISK_REASONS):
        bit = _risk_bit(r)
        if (active & bit) == (old & bit):
            continue
        if (active & bit) != 0:
            side = 0
            if r == RiskReason.NOTIONAL_LIMIT or r == RiskReason.SOFT_LIMIT or \
                    r == RiskReason.INVENTORY_AT_LIMIT:
                side = adding
            elif r == RiskReason.OFI_PAUSE:
                side = ofi_side
            _log_risk(olog, counts, now, OrderEvent.RISK_ON, r, side, mid, pos)
        else:
            _log_risk(olog, counts, now, OrderEvent.RISK_OFF, r, 0, mid, pos)
    st.risk_active = active


@internal
def _vol_ewmas(st, cfg, dt, x):
    """The circuit breaker's fast and slow EWMAs of the squared mid change per second ``x``
    (ticks² / s) over ``dt`` seconds (half-lives ``cfg.vol_fast_halflife_s`` / ``_slow_``)."""
    af = 1.0 - np.exp(-dt * np.log(2.0) / cfg.vol_fast_halflife_s)
    aslow = 1.0 - np.exp(-dt * np.log(2.0) / cfg.vol_slow_halflife_s)
    st.vol_fast_var += af * (x - st.vol_fast_var)
    st.vol_slow_var += aslow * (x - st.vol_slow_var)


@internal
def _local_equity(st, cfg, mid):
    """The strategy's equity marked to its ``mid`` (ticks): linear ``cash + q·mid·mult``,
    inverse ``cash − q·mult/mid`` (MODELS.md §9); NaN without a mid."""
    if np.isnan(mid):
        return np.nan
    return st.local_cash - cash_flow_nb(cfg, 1, mid, st.local_position)


@internal
def _pnl_stop(now, st, cfg, mid):
    """PnL stop and maximum drawdown (MODELS.md §10): the bits of the stop acting after this
    decision. Triggers when equity − start < −``max_loss`` or peak − equity >
    ``max_drawdown``; holds until ``st.risk_stop_until_ts`` (the cool-down end, or never),
    then releases with the start and the peak reset to the equity then."""
    stop_bits = _risk_bit(RiskReason.PNL_STOP) | _risk_bit(RiskReason.DRAWDOWN_STOP)
    eq = _local_equity(st, cfg, mid)
    stopped = st.risk_active & stop_bits
    if stopped != 0:
        if now < st.risk_stop_until_ts:
            return stopped
        st.risk_stop_until_ts = INF_TS
        st.risk_equity_start = eq
        st.risk_equity_peak = eq
        return np.int64(0)
    if np.isnan(eq):
        return np.int64(0)
    if np.isnan(st.risk_equity_start):
        st.risk_equity_start = eq
        st.risk_equity_peak = eq
    if eq > st.risk_equity_peak:
        st.risk_equity_peak = eq
    bits = np.int64(0)
    if not np.isnan(cfg.max_loss) and eq - st.risk_equity_start < -cfg.max_loss:
        bits |= _risk_bit(RiskReason.PNL_STOP)
    if not np.isnan(cfg.max_drawdown) and st.risk_equity_peak - eq > cfg.max_drawdown:
        bits |= _risk_bit(RiskReason.DRAWDOWN_STOP)
    if bits != 0:
        cd = cfg.stop_cooldown_ns
        st.risk_stop_until_ts = now + cd if cd >= 0 else INF_TS
    return bits


@internal
def _break_even_ticks(cfg, mid):
    """Break-even spread in ticks at ``mid`` (ticks): ``2·maker fee + margin`` (bps of the
    mid), plus twice the per-lot maker fee in ticks (MODELS.md §4, seed 004)."""
    t = (2.0 * cfg.maker_fee_bps + cfg.break_even_margin_bps) * 1e-4 * mid
    return t + 2.0 * cfg.maker_fee_per_lot / (cfg.lot_size * cfg.multiplier * cfg.tick_size)


@internal
def _shift_side(qout, side, delta):
    """Move every level of ``side`` of the policy's output by ``delta`` ticks."""
    base = Quote.BID0 if side > 0 else Quote.ASK0
    for k in range(quote_levels_nb(qout, side)):
        qout[base + 2 * k] += delta


@internal
def _place(cfg, qout, b, a):
    """``cfg.placement``: the level-0 quotes against the strategy's touch ``b`` / ``a``
    (ticks), each side's deeper levels moved with it."""
    if b < 0 or a < 0:
        return
    if cfg.placement == PLACE_JOIN:
        tb, ta = b, a
    elif cfg.placement == PLACE_IMPROVE:
        inside = 1 if a - b >= 3 else 0
        tb, ta = b + inside, a - inside
    else:
        tb, ta = b - cfg.behind_ticks, a + cfg.behind_ticks
    if quote_levels_nb(qout, 1) > 0:
        _shift_side(qout, 1, tb - qout[Quote.BID0])
    if quote_levels_nb(qout, -1) > 0:
        _shift_side(qout, -1, ta - qout[Quote.ASK0])


@internal
def _quote_centre(qout, mid):
    """``(centre, half spread)`` of the level-0 quotes, ticks: their midpoint and half
    distance when both sides quote, else ``mid`` and the one side's distance from it."""
    nb_ = quote_levels_nb(qout, 1)
    na_ = quote_levels_nb(qout, -1)
    if nb_ > 0 and na_ > 0:
        return 0.5 * (qout[Quote.BID0] + qout[Quote.ASK0]), \
            0.5 * (qout[Quote.ASK0] - qout[Quote.BID0])
    if nb_ > 0:
        return mid, mid - qout[Quote.BID0]
    if na_ > 0:
        return mid, qout[Quote.ASK0] - mid
    return mid, np.nan


@internal
def _widen(cfg, qout, pos, active, mid, ofi_side):
    """Soft limit (the side that adds inventory moves away by ``w·(|q| − q_soft)/(q_max −
    q_soft)`` of the half spread), the widening circuit breaker (every level ``p`` →
    ``c + m·(p − c)`` around the quotes' centre ``c``) and the widening order-flow pause (the
    same on side ``ofi_side`` only, with its own m)."""
    c, h = _quote_centre(qout, mid)
    if np.isnan(c) or np.isnan(h):
        return
    if (active & _risk_bit(RiskReason.SOFT_LIMIT)) != 0 and pos != 0:
        span = cfg.max_position_lots - cfg.soft_position_lots
        frac = (abs(pos) - cfg.soft_position_lots) / span if span > 0 else 1.0
        frac = min(max(frac, 0.0), 1.0)
        shift = cfg.soft_widen_frac * frac * abs(h)
        if pos > 0:
            _shift_side(qout, 1, -shift)
        else:
            _shift_side(qout, -1, shift)
    if (active & _risk_bit(RiskReason.VOL_BREAKER)) != 0 and \
            cfg.vol_breaker_action == BREAKER_WIDEN:
        m = cfg.vol_breaker_spread_mult
        for side in (1, -1):
            base = Quote.BID0 if side > 0 else Quote.ASK0
            for k in range(quote_levels_nb(qout, side)):
                qout[base + 2 * k] = c + m * (qout[base + 2 * k] - c)
    if (active & _risk_bit(RiskReason.OFI_PAUSE)) != 0 and cfg.ofi_action == BREAKER_WIDEN:
        m = cfg.ofi_spread_mult
        base = Quote.BID0 if ofi_side > 0 else Quote.ASK0
        for k in range(quote_levels_nb(qout, ofi_side)):
            qout[base + 2 * k] = c + m * (qout[base + 2 * k] - c)


@internal
def _ladder(cfg, qout):
    """``cfg.ladder_levels`` levels per side from the policy's level-0 quote (seed 003):
    level k at ``cfg.ladder_offsets[k]`` ticks (or bps of the level-0 price) behind it, of
    ``size·cfg.ladder_size_growth**k``."""
    n = cfg.ladder_levels
    for side in (1, -1):
        if quote_levels_nb(qout, side) == 0:
            continue
        base = Quote.BID0 if side > 0 else Quote.ASK0
        p0 = qout[base]
        q0 = qout[base + 1]
        for k in range(n):
            off = cfg.ladder_offsets[k]
            if cfg.ladder_unit == LADDER_BPS:
                off = p0 * off * 1e-4
            qout[base + 2 * k] = p0 - side * off
            qout[base + 2 * k + 1] = q0 * cfg.ladder_size_growth ** k
        qout[Quote.N_BID if side > 0 else Quote.N_ASK] = n


@internal
def _inventory_sizes(cfg, qout, pos):
    """The side that adds inventory scaled by ``max(0, 1 − a·|q|/q_max)``."""
    if pos == 0 or cfg.max_position_lots <= 0:
        return
    f = max(0.0, 1.0 - cfg.size_inventory_factor * abs(pos) / cfg.max_position_lots)
    side = 1 if pos > 0 else -1
    base = Quote.BID0 if side > 0 else Quote.ASK0
    for k in range(quote_levels_nb(qout, side)):
        qout[base + 2 * k + 1] *= f


@internal
def _flatten(now, st, cfg, lat, ours, olog, counts, lsc):
    """Close the position the strategy knows with one taker order (``cfg.flatten_tif``; IOC
    and FOK priced ``cfg.flatten_slippage_ticks`` through the opposite touch) on the hedge
    path, once no hedge order is working."""
    pos = st.local_position
    if pos == 0 or st.n_pending_hedges > 0:
        return
    side = -1 if pos > 0 else 1
    tif = cfg.flatten_tif
    px = np.int64(0)
    if tif != TimeInForce.MARKET:
        if side > 0:
            a = best_ask_tick_nb(lsc)
            if a < 0:
                return
            px = a + cfg.flatten_slippage_ticks
        else:
            b = best_bid_tick_nb(lsc)
            if b < 0:
                return
            px = b - cfg.flatten_slippage_ticks
    _new_order(ours, st, cfg, lat, olog, counts, now, side, px, abs(pos), tif, 1)


@internal
def _risk_active_now(now, st, cfg, b, a, mid, ofi):
    """The bits of every :data:`RiskReason` acting at this decision (``b``, ``a`` the
    strategy's touch, ``mid`` its mid, ticks; ``ofi`` the order-flow imbalance of the
    signals, lots, NaN without signals) and the notional limit in lots (-1 = none)."""
    pos = st.local_position
    act = np.int64(0)
    if cfg.stop_quoting_ts > 0 and now >= cfg.stop_quoting_ts:
        act |= _risk_bit(RiskReason.SESSION_STOP)
    if cfg.flatten_ts > 0 and now >= cfg.flatten_ts:
        act |= _risk_bit(RiskReason.SESSION_FLATTEN)
    if not np.isnan(cfg.max_loss) or not np.isnan(cfg.max_drawdown):
        act |= _pnl_stop(now, st, cfg, mid)
    if not np.isnan(cfg.vol_breaker_ratio) and \
            st.vol_fast_var > cfg.vol_breaker_ratio ** 2 * st.vol_slow_var:
        act |= _risk_bit(RiskReason.VOL_BREAKER)
    if cfg.skip_below_break_even != 0 and not np.isnan(mid) and \
            a - b < _break_even_ticks(cfg, mid):
        act |= _risk_bit(RiskReason.BREAK_EVEN_SPREAD)
    maxp = cfg.max_position_lots
    if cfg.skip_at_inventory_limit != 0 and maxp >= 0 and pos != 0 and abs(pos) >= maxp:
        act |= _risk_bit(RiskReason.INVENTORY_AT_LIMIT)
    if not np.isnan(cfg.max_vol_tick) and np.sqrt(st.vol_var) > cfg.max_vol_tick:
        act |= _risk_bit(RiskReason.VOL_THRESHOLD)
    nl = np.int64(-1)
    if not np.isnan(cfg.max_notional) and not np.isnan(mid):
        per_lot = abs(notional_nb(cfg, mid, 1))
        nl = np.int64(np.floor(cfg.max_notional / per_lot + 1e-9))
        if abs(pos) >= nl:
            act |= _risk_bit(RiskReason.NOTIONAL_LIMIT)
    if cfg.soft_position_lots >= 0 and abs(pos) > cfg.soft_position_lots:
        act |= _risk_bit(RiskReason.SOFT_LIMIT)
    if not np.isnan(cfg.ofi_pause_lots) and not np.isnan(ofi) and \
            abs(ofi) > cfg.ofi_pause_lots:
        act |= _risk_bit(RiskReason.OFI_PAUSE)
    return act, nl


@internal
def _risk_gate(now, st, cfg, lat, ours, qout, olog, counts, lsc, ofi):
    """The risk limits and should-quote rules at a decision (MODELS.md §10, §4), then the
    quote shaping of ``quoting:`` (placement, widening, ladder, sizes) on the policy's output
    ``qout`` (in place); flattening orders go out on the hedge path. Every reason that starts
    or stops acting is an orders-log row (:func:`_risk_transitions`).

    ``ofi``: the order-flow imbalance of the quoted instrument's signals (lots; NaN without
    a ``signals:`` section), for the order-flow pause.

    Returns ``(notional limit in lots or -1, KILL_BID | KILL_ASK bits of the sides taken
    off)``.
    """
    b = best_bid_tick_nb(lsc)
    a = best_ask_tick_nb(lsc)
    mid = 0.5 * (a + b) if a >= 0 and b >= 0 else np.nan
    pos = st.local_position
    act, nl = _risk_active_now(now, st, cfg, b, a, mid, ofi)
    # the side the order flow runs against: the ask under buying pressure (OFI > 0)
    ofi_side = -1 if ofi > 0 else 1
    _risk_transitions(olog, counts, st, now, act, mid, ofi_side)
    both = (_risk_bit(RiskReason.SESSION_STOP) | _risk_bit(RiskReason.SESSION_FLATTEN)
            | _risk_bit(RiskReason.PNL_STOP) | _risk_bit(RiskReason.DRAWDOWN_STOP)
            | _risk_bit(RiskReason.BREAK_EVEN_SPREAD) | _risk_bit(RiskReason.VOL_THRESHOLD))
    if cfg.vol_breaker_action == BREAKER_PAUSE:
        both |= _risk_bit(RiskReason.VOL_BREAKER)
    one = _risk_bit(RiskReason.NOTIONAL_LIMIT) | _risk_bit(RiskReason.INVENTORY_AT_LIMIT)
    kill = 0
    if (act & both) != 0 or ((act & one) != 0 and pos == 0):
        kill = KILL_BID | KILL_ASK
    elif (act & one) != 0:
        kill = KILL_BID if pos > 0 else KILL_ASK
    if (act & _risk_bit(RiskReason.OFI_PAUSE)) != 0 and cfg.ofi_action == BREAKER_PAUSE:
        kill |= KILL_ASK if ofi_side < 0 else KILL_BID
    if (kill & KILL_BID) != 0:
        qout[Quote.N_BID] = 0.0
    if (kill & KILL_ASK) != 0:
        qout[Quote.N_ASK] = 0.0
    if cfg.placement != PLACE_POLICY:
        _place(cfg, qout, b, a)
    _widen(cfg, qout, pos, act, mid, ofi_side)
    if cfg.ladder_levels > 0:
        _ladder(cfg, qout)
    if cfg.size_inventory_factor > 0.0:
        _inventory_sizes(cfg, qout, pos)
    flat = _risk_bit(RiskReason.SESSION_FLATTEN)
    if cfg.flatten_on_stop != 0:
        flat |= _risk_bit(RiskReason.PNL_STOP) | _risk_bit(RiskReason.DRAWDOWN_STOP)
    if (act & flat) != 0:
        _flatten(now, st, cfg, lat, ours, olog, counts, lsc)
    return nl, kill


@internal
def _hold_quotes(ours, cfg, ts, side, tp, tq, n, used):
    """Keep queue places (``quoting:``): each live quote on ``side`` claims its nearest free
    target and keeps its price when it is younger than ``cfg.min_quote_life_ns`` (its size
    too) or the target is within ``cfg.refresh_threshold_ticks``; a young quote with no target
    left stays as it is. Returns the number of targets (``tp``, ``tq`` changed in place)."""
    used[:] = 0
    for k in range(cfg.max_ours):
        o = ours[k]
        ls = o.local_status
        if o.is_hedge == 1 or o.side != side or (ls != ST_PENDING and ls != ST_OPEN):
            continue
        young = cfg.min_quote_life_ns > 0 and ts - o.local_sent_ts < cfg.min_quote_life_ns
        best = -1
        bd = np.int64(2**62)
        for j in range(n):
            if used[j] == 0 and abs(tp[j] - o.local_price_tick) < bd:
                best = j
                bd = abs(tp[j] - o.local_price_tick)
        if best >= 0 and (young or bd <= cfg.refresh_threshold_ticks):
            used[best] = 1
            tp[best] = o.local_price_tick
            if young:
                tq[best] = o.local_target
        elif best < 0 and young and n < MAX_LEVELS:
            tp[n] = o.local_price_tick
            tq[n] = o.local_target
            used[n] = 1
            n += 1
    return n


@internal
def _decide(now, reason, policy, hedger, work, st2, cfg2, lat2, local, ours2, out):
    """Run the policy (and hedger) at local time ``now`` and act on their outputs.

    The policy quotes instrument 0 (its context is that instrument's, plus one block per
    instrument, :func:`_fill_ctx_legs`); the hedger's orders go to the instruments they name.
    """
    pparams, pstate, hparams, hstate, ctx, qout, hout, scr = work
    llvl2, lsc2 = local.llvl, local.lsc
    olog, counts = out.olog, out.counts
    st = st2[0]
    cfg = cfg2[0]
    lat = lat2[0]
    llvl = llvl2[0]
    lsc = lsc2[0]
    sst = local.sig_state[0]
    sp = local.sig_params[0]
    ours = ours2[0]
    st.n_decisions += 1
    tp = scr[0:MAX_LEVELS]
    tq = scr[MAX_LEVELS:2 * MAX_LEVELS]
    used = scr[2 * MAX_LEVELS:3 * MAX_LEVELS]
    depth_px = scr[3 * MAX_LEVELS:3 * MAX_LEVELS + CTX_DEPTH]
    depth_q = scr[3 * MAX_LEVELS + CTX_DEPTH:3 * MAX_LEVELS + 2 * CTX_DEPTH]
    matched = scr[SCRATCH_FIXED:]
    if reason == Reason.CLOCK:
        # online volatility: EWMA of squared mid changes per second, sampled on the clock
        b = best_bid_tick_nb(lsc)
        a = best_ask_tick_nb(lsc)
        if b >= 0 and a >= 0:
            mid = 0.5 * (a + b)
            last = st.vol_last_mid
            if not np.isnan(last) and st.vol_last_ts > 0:
                dt = (now - st.vol_last_ts) * 1e-9
                if dt > 0:
                    x = (mid - last) ** 2 / dt
                    alpha = 1.0 - np.exp(-dt * np.log(2.0) / cfg.vol_halflife_s)
                    st.vol_var += alpha * (x - st.vol_var)
                    if cfg.risk_on != 0:
                        _vol_ewmas(st, cfg, dt, x)
            st.vol_last_mid = mid
            st.vol_last_ts = now
    _fill_ctx(ctx, now, reason, st, cfg, llvl, lsc, ours, depth_px, depth_q, sst, sp)
    _fill_ctx_legs(ctx, st2, cfg2, llvl2, lsc2)
    warm = now - st.t0 >= cfg.warmup_ns
    ofi = ctx[Ctx.SIGNALS0 + SignalCtx.OFI_QTY]  # for the risk layer, before the policy runs
    qout[:] = 0.0
    rc = policy(ctx, pparams, pstate, qout)
    if rc != 0:
        st.error_code = rc
        return ERR_POLICY
    if reason == Reason.CLOCK:  # trade statistics run from one clock decision to the next
        for i in range(st2.shape[0]):
            st2[i].trade_hi_tick = np.nan
            st2[i].trade_lo_tick = np.nan
            st2[i].trade_qty = 0.0
    notional_lots = np.int64(-1)
    kill = 0
    if cfg.risk_on != 0 and warm:
        notional_lots, kill = _risk_gate(now, st, cfg, lat, ours, qout, olog, counts, lsc,
                                         ofi)
    nbid = quote_levels_nb(qout, 1)
    nask = quote_levels_nb(qout, -1)
    if not warm or st.halted != 0:
        # warm-up, or trading halted (a STATUS event: an exchange halt, or a feed gap being
        # resynchronised): quote nothing, so the order manager cancels our resting quotes
        nbid = 0
        nask = 0
    maxp = cfg.max_position_lots
    pos = st.local_position
    big = np.int64(2**62)
    # the limit holds at the exchange: position + every open and in-flight lot on the side
    used_slots = st.n_slots_used
    room_b = maxp - pos - _exposure(ours, used_slots, 1) if maxp >= 0 else big
    room_a = maxp + pos - _exposure(ours, used_slots, -1) if maxp >= 0 else big
    if notional_lots >= 0:  # the notional limit, as a position limit at this mid
        room_b = min(room_b, notional_lots - pos - _exposure(ours, used_slots, 1))
        room_a = min(room_a, notional_lots + pos - _exposure(ours, used_slots, -1))
    for side, nlev, room in ((1, nbid, room_b), (-1, nask, room_a)):
        n = 0
        for k in range(nlev):
            px, q = quote_level_nb(qout, side, k)
            if q > 0:
                tp[n] = px
                tq[n] = q
                n += 1
        if (cfg.min_quote_life_ns > 0 or cfg.refresh_threshold_ticks > 0) and warm and \
                st.halted == 0 and (kill & (KILL_BID if side > 0 else KILL_ASK)) == 0:
            n = _hold_quotes(ours, cfg, now, side, tp, tq, n, used)
        _manage_side(ours, st, cfg, lat, olog, counts, now, side, tp, tq, n, used,
                     matched, room)
    if cfg.has_hedger != 0 and warm:
        _fill_ctx(ctx, now, reason, st, cfg, llvl, lsc, ours, depth_px, depth_q, sst, sp)
        _fill_ctx_legs(ctx, st2, cfg2, llvl2, lsc2)
        hout[:] = 0.0
        rc = hedger(ctx, hparams, hstate, hout)
        if rc != 0:
            st.error_code = rc
            return ERR_HEDGER
        _hedge_orders(now, hout, st2, cfg2, lat2, ours2, olog, counts)
    return 0


@internal
def _charge_funding(st, cfg):
    """Perpetual funding at ``st.next_funding_ts`` (MODELS.md §8): linear
    ``cash −= q·mark·rate·multiplier``; inverse (coin) ``cash −= q·multiplier/mark·rate``.
    Longs pay when the rate is positive. Without a mark price yet, nothing is charged."""
    mark = st.mark_price
    rate = st.funding_rate
    units = st.position * cfg.lot_size
    if not np.isnan(mark) and mark > 0.0 and units != 0.0:
        if cfg.is_inverse > 0.5:
            pay = units * cfg.multiplier / mark * rate
        else:
            pay = units * mark * rate * cfg.multiplier
        st.cash -= pay
        st.local_cash -= pay
        st.funding += pay
    st.last_funding_ts = st.next_funding_ts
    st.next_funding_ts = INF_TS
    st.n_funding += 1


@internal
def _sample_equity(eq, counts, ts, st, sc, inst):
    j = counts[2]
    eq[j].instrument = inst
    eq[j].ts = ts
    eq[j].position = st.position
    eq[j].mid_tick = _exch_mid(sc)
    eq[j].cash = st.cash
    eq[j].fees = st.fees
    eq[j].traded_qty = st.traded_lots
    eq[j].n_fills = st.n_fills
    eq[j].funding = st.funding
    counts[2] = j + 1
    st.last_equity_ts = ts


@internal
def _sample_signals(sig, counts, ts, sst, sp, llvl, lsc, vals, inst):
    """One row of the signals of instrument ``inst`` at local time ``ts`` (equity clock)."""
    signals_to_ctx_nb(sst, sp, ts, llvl, lsc, vals, 0)
    c = counts[C_SIG]
    sig[c].ts = ts
    sig[c].instrument = inst
    sig[c].obi = vals[SignalCtx.OBI]
    sig[c].ofi_qty = vals[SignalCtx.OFI_QTY]
    sig[c].kyle_lambda_tick = vals[SignalCtx.KYLE_LAMBDA_TICK]
    sig[c].buy_rate_hz = vals[SignalCtx.BUY_RATE_HZ]
    sig[c].sell_rate_hz = vals[SignalCtx.SELL_RATE_HZ]
    sig[c].vol_tick = vals[SignalCtx.VOL_TICK]
    sig[c].micro_tick = vals[SignalCtx.MICRO_TICK]
    sig[c].micro_adj_tick = vals[SignalCtx.MICRO_ADJ_TICK]
    counts[C_SIG] = c + 1


@internal
def _sample_all(eq, counts, ts, st, sc, local, sig):
    """The equity rows of every instrument at ``ts`` (and their signal rows when recorded)."""
    for j in range(st.shape[0]):
        _sample_equity(eq, counts, ts, st[j], sc[j], j)
        if local.sig_params[j].record != 0:
            _sample_signals(sig, counts, ts, local.sig_state[j], local.sig_params[j],
                            local.llvl[j], local.lsc[j], local.sig_values[j], j)


@nb.njit(cache=True, inline="always", _nrt=False)
def _next_action_ts(st, ni):
    """The earliest scheduled request, response, decision, equity sample or funding of the
    run (``st[0]`` holds the run's clocks)."""
    g = st[0]
    t = min(g.next_decision_ts, g.next_equity_ts)
    for j in range(ni):
        t = min(min(t, st[j].next_request_ts, st[j].next_response_ts), st[j].next_funding_ts)
    return t


@nb.njit(cache=True, inline="always", _nrt=False)
def _needs_flush(counts, fills, olog, eq):
    return (
        counts[0] > fills.shape[0] - _FLUSH_MARGIN
        or counts[1] > olog.shape[0] - 4 * _FLUSH_MARGIN
        or counts[2] > eq.shape[0] - _FLUSH_MARGIN
    )


@kernel
def _run_internal(limit, inclusive, policy, hedger, work, books, local, orders, st, cfg, lat,
                  out):
    """Process every scheduled action before ``limit`` (or at it, when ``inclusive``: the
    run's end, which also takes a closing equity sample at ``limit``).

    Every array but the outputs and the policy's has a leading instrument axis. Among actions
    due at the same time: feed updates, then responses, requests, the decision clock, funding
    and the equity clock; within one kind the lower instrument index first.
    """
    lvl, sc, bs = books.lvl, books.sc, books.bs
    llvl, lsc, ring, sst, sp = local.llvl, local.lsc, local.ring, local.sig_state, \
        local.sig_params
    ours, resp = orders
    fills, olog, eq, counts = out.fills, out.olog, out.eq, out.counts
    ni = st.shape[0]
    g = st[0]  # the run's clocks live with the quoted instrument
    while True:
        t_ring = INF_TS
        t_resp = INF_TS
        t_req = INF_TS
        t_fund = INF_TS
        j_ring = 0
        j_resp = 0
        j_req = 0
        j_fund = 0
        for j in range(ni):
            if st[j].feed_count > 0:
                tr = ring[j, st[j].feed_head].ts
                if tr < t_ring:
                    t_ring = tr
                    j_ring = j
            if st[j].next_response_ts < t_resp:
                t_resp = st[j].next_response_ts
                j_resp = j
            if st[j].next_request_ts < t_req:
                t_req = st[j].next_request_ts
                j_req = j
            if st[j].next_funding_ts < t_fund:
                t_fund = st[j].next_funding_ts
                j_fund = j
        t_dec = g.next_decision_ts
        t_eq = g.next_equity_ts
        tmin = min(min(t_ring, t_resp, t_req, t_dec, t_eq), t_fund)
        if tmin > limit or (tmin == limit and not inclusive):
            if inclusive and g.last_equity_ts < limit:
                # the run's end (run_nb, final): a closing sample at the last event, so the
                # equity curve holds every fill
                _sample_all(eq, counts, limit, st, sc, local, out.sig)
            return RET_DONE
        if _needs_flush(counts, fills, olog, eq):
            return RET_FLUSH
        if t_ring == tmin:
            j = j_ring
            _ring_pop_through(ring[j], st[j], llvl[j], lsc[j], sst[j], sp[j],
                              min(min(t_resp, t_req, t_dec, t_eq), t_fund), limit, inclusive)
        elif t_resp == tmin:
            j = j_resp
            kind, slot = _response_arrives(resp[j], st[j], ours[j])
            if kind == OrderEvent.FILL and cfg[0].decide_on_fill != 0:
                rc = _decide(tmin, Reason.FILL, policy, hedger, work, st, cfg, lat, local, ours,
                             out)
                if rc != 0:
                    return rc
                for i in range(ni):
                    _recompute_next_req(ours[i], st[i])
        elif t_req == tmin:
            # the earliest request (ties: the one sent first)
            j = j_req
            oj = ours[j]
            best = -1
            for k in range(st[j].n_slots_used):
                if oj[k].req != 0 and oj[k].req_ts == tmin:
                    if best < 0 or oj[k].req_seq < oj[best].req_seq:
                        best = k
            _request_arrives(best, oj, st[j], cfg[j], lat[j], resp[j], fills,
                             olog, counts, lvl[j], sc[j], bs[j])
            _recompute_next_req(oj, st[j])
        elif t_dec == tmin:
            g.next_decision_ts = t_dec + cfg[0].decision_ns
            rc = _decide(tmin, Reason.CLOCK, policy, hedger, work, st, cfg, lat, local, ours, out)
            if rc != 0:
                return rc
            for i in range(ni):
                _recompute_next_req(ours[i], st[i])
        elif t_fund == tmin:
            j = j_fund
            _charge_funding(st[j], cfg[j])
        else:
            g.next_equity_ts = t_eq + cfg[0].equity_ns
            _sample_all(eq, counts, tmin, st, sc, local, out.sig)


def _arr(dtype, ndim=1):
    return nb.typeof(np.zeros((1,) * ndim, dtype=dtype))


_I1 = _arr(np.int64)
_I2 = _arr(np.int64, 2)
_I3 = _arr(np.int64, 3)
_F1 = _arr(np.float64)
_F2 = _arr(np.float64, 2)
WORK_TYPE = nb.typeof(Work(*([np.zeros(1)] * 7), np.zeros(1, np.int64)))
BOOKS_TYPE = nb.typeof(Books(np.zeros((1, 1, 1), np.int64), *([np.zeros((1, 1), np.int64)] * 4),
                             np.zeros((1, 1, 1), np.int64), np.zeros((1, 1, 1), np.int64),
                             np.zeros((1, 1), np.int64)))
LOCAL_TYPE = nb.typeof(Local(np.zeros((1, 1, 1), np.int64), np.zeros((1, 1), np.int64),
                             np.zeros((1, 1), FEED_DTYPE), np.zeros(1, SIGNAL_STATE_DTYPE),
                             np.zeros(1, SIGNAL_PARAMS_DTYPE), np.zeros((1, 1))))
ORDERS_TYPE = nb.typeof(Orders(np.zeros((1, 1), OUR_ORDER_DTYPE),
                               np.zeros((1, 1), RESPONSE_DTYPE)))
OUT_TYPE = nb.typeof(Out(np.zeros(1, FILL_DTYPE), np.zeros(1, ORDER_LOG_DTYPE),
                         np.zeros(1, EQUITY_DTYPE), np.zeros(1, np.int64),
                         np.zeros(1, SIGNAL_RECORD_DTYPE)))
#: The kernel's declared signature: policies and hedgers arrive as first-class function values,
#: so one compiled (and disk-cached) engine serves every policy.
_RUN_ARGS = (
    _arr(EVENT_DTYPE), _arr(np.uint8), nb.types.boolean, POLICY_FTYPE, HEDGER_FTYPE,
    WORK_TYPE, BOOKS_TYPE, LOCAL_TYPE, ORDERS_TYPE, _arr(ENGINE_STATE_DTYPE),
    _arr(ENGINE_PARAMS_DTYPE), _F2, OUT_TYPE,
)
#: :func:`_run_internal`'s argument types as :func:`run_nb` calls it (a tuple: the disk
#: cache keys a kernel on the argument types its caller asked for)
RUN_INTERNAL_ARGS = (nb.types.int64, nb.types.boolean, *_RUN_ARGS[3:])
#: :func:`_run_internal` as :func:`run_nb` receives it: a first-class function value, so the
#: two compile apart (in two processes on an empty cache, :func:`compile_engine`); the call
#: is one indirect call per batch of scheduled actions
RUN_INTERNAL_FTYPE = nb.types.FunctionType(nb.types.int64(*RUN_INTERNAL_ARGS))
RUN_SIG = nb.types.int64(*_RUN_ARGS, RUN_INTERNAL_FTYPE)


@nb.njit(cache=True, _nrt=False)
def run_nb(events, inst_of, final, policy, hedger, work, books, local, orders, st, cfg, lat,
           out, run_internal):
    """Consume ``events`` (EVENT_DTYPE[n], sorted by ``exch_ts``) from ``st[0].resume_index``.

    ``inst_of`` (uint8[n]) is the instrument index of each event; empty means every event
    is the quoted instrument's (index 0). Every state array has a leading instrument axis
    (``st[i]`` is instrument ``i``'s state record, ``ours[i]`` its order slots, ``lvl[i]`` its
    exchange ladder, …); the run's clocks live in ``st[0]``.

    Returns ``RET_DONE`` when the chunk is consumed (and, with ``final``, every action up to the
    last event's time has run), ``RET_FLUSH`` when an output buffer must be flushed before
    calling again, or a negative ``ERR_*`` code.
    """
    ordt, free, hkeys, hvals, bs, lvl, anon, sc = books
    llvl, lsc, ring, sst, sp = local.llvl, local.lsc, local.ring, local.sig_state, \
        local.sig_params
    ours, resp = orders
    fills, olog, eq, counts = out.fills, out.olog, out.eq, out.counts
    n = events.shape[0]
    ni = st.shape[0]
    multi = inst_of.shape[0] > 0
    g = st[0]
    i = g.resume_index
    if n > 0 and g.t0 < 0:
        t0 = events[0].exch_ts
        g.t0 = t0
        g.next_decision_ts = t0 + cfg[0].decision_ns
        g.next_equity_ts = t0
    # the earliest scheduled action (request, response, decision, equity sample, funding):
    # only _run_internal moves these later, so it is recomputed after each call; an event
    # may bring one earlier (a fill's response, a FUNDING event's next time), so after each
    # event the instrument's two are folded in. Early is safe (a call that finds nothing
    # due), late would skip an action
    t_other = _next_action_ts(st, ni)
    while i < n:
        # a run of events of one instrument k: its arrays are taken once for the run
        k = inst_of[i] if multi else 0
        end = n
        if multi:
            end = i + 1
            while end < n and inst_of[end] == k:
                end += 1
        o_k, f_k, hk_k, hv_k, bs_k = ordt[k], free[k], hkeys[k], hvals[k], bs[k]
        lv_k, an_k, sc_k, ll_k, ls_k = lvl[k], anon[k], sc[k], llvl[k], lsc[k]
        ri_k, ou_k, st_k, ss_k, sp_k = ring[k], ours[k], st[k], sst[k], sp[k]
        cf_k, la_k, re_k = cfg[k], lat[k], resp[k]
        while i < end:
            # (unsigned indices: no wrap-around test for a negative one)
            ev_i = events[np.uint64(i)]
            ts = ev_i.exch_ts
            # fast path: instrument k's feed updates due before this event, with nothing
            # else scheduled earlier
            while st_k.feed_count > 0:
                tr = ri_k[np.uint64(st_k.feed_head)].ts
                if tr >= ts or tr > t_other:
                    break
                _ring_pop_apply_inline(ri_k, st_k, ll_k, ls_k, ss_k, sp_k)
            # (an entry left before ts is after t_other: then t_other < ts too)
            due = t_other < ts
            if multi and not due:  # the other instruments' feed updates
                for j in range(ni):
                    if j != k and st[j].feed_count > 0 and ring[j, st[j].feed_head].ts < ts:
                        due = True
            if due:
                rc = run_internal(ts, False, policy, hedger, work, books, local, orders, st,
                                  cfg, lat, out)
                if rc != RET_DONE:
                    g.resume_index = i
                    return rc
                t_other = _next_action_ts(st, ni)
            if ev_i.kind == EventKind.BBO:
                # a ticker row kept for validation: it changes no book and writes no row, so
                # neither the flush test nor _market_event's dispatch (a third of Binance
                # spot's rows)
                _event_clock(ev_i, ou_k, st_k, cf_k)
                i += 1
                continue
            if _needs_flush(counts, fills, olog, eq):
                g.resume_index = i
                return RET_FLUSH
            rc = _market_event(ev_i, o_k, f_k, hk_k, hv_k, bs_k, lv_k, an_k, sc_k, ll_k,
                               ls_k, ri_k, ss_k, sp_k, ou_k, st_k, cf_k, la_k, re_k, fills,
                               olog, counts)
            if rc != 0:
                g.resume_index = i
                return rc
            t_other = min(t_other, min(st_k.next_response_ts, st_k.next_funding_ts))
            i += 1
    g.resume_index = 0
    if final:
        last = g.last_event_ts
        for j in range(ni):
            if st[j].last_event_ts > last:
                last = st[j].last_event_ts
        rc = run_internal(last, True, policy, hedger, work, books, local, orders, st, cfg, lat,
                          out)
        if rc != RET_DONE:
            g.resume_index = n
            return rc
    return RET_DONE


def _element(t):
    """The numba type of ``a[k]`` for an array ``a`` of type ``t`` (C layout kept)."""
    return t.dtype if t.ndim == 1 else t.copy(ndim=t.ndim - 1)


_ST, _CFG, _LAT = (_element(t) for t in RUN_SIG.args[9:12])
#: the L3 book kernels :func:`_market_event` calls, with their argument types there (one
#: instrument's book views): :func:`compile_engine` compiles them before :func:`run_nb`
_ORDT, _FREE, _HKEYS, _HVALS, _BS, _LVL, _ANON, _SC = (_element(t) for t in BOOKS_TYPE.types)
_I = nb.types.int64
L3_KERNEL_ARGS = (
    (l3_add_nb, (_ORDT, _FREE, _HKEYS, _HVALS, _BS, _LVL, _ANON, _SC, _I, _I, _I, _I,
                 nb.types.boolean)),
    (l3_modify_nb, (_ORDT, _FREE, _HKEYS, _HVALS, _BS, _LVL, _SC, _I, _I, _I, _I)),
    (l3_remove_nb, (_ORDT, _FREE, _HKEYS, _HVALS, _BS, _LVL, _SC, _I)),
    (l3_reduce_nb, (_ORDT, _FREE, _HKEYS, _HVALS, _BS, _LVL, _SC, _I, _I)),
    (l3_anon_reduce_nb, (_LVL, _ANON, _SC, _I, _I, _I)),
    (l3_clear_nb, (_ORDT, _FREE, _HKEYS, _HVALS, _BS, _LVL, _ANON, _SC, _I)),
)
#: what the compile child of :func:`compile_engine` compiles, in order: first the feed's
#: apply step, which both halves call (so the event path, reaching it later, loads it from
#: the cache instead of compiling it too), then the scheduler
_LLVL1, _LSC1, _RING1, _SST1, _SP1 = (_element(t) for t in LOCAL_TYPE.types[:5])
CHILD_COMPILES = (
    (_ring_pop_apply_inline, (_RING1, _ST, _LLVL1, _LSC1, _SST1, _SP1)),
    (_run_internal, RUN_INTERNAL_ARGS),
)
_OURS1, _RESP1 = (_element(t) for t in ORDERS_TYPE.types)
_FILLS, _OLOG, _, _COUNTS, _ = OUT_TYPE.types
#: what :func:`compile_engine` compiles here before the event path, for the child to load:
#: parts of the scheduler, to even out the two halves (the child reaches the response path
#: after a third of its work, the request path last, by when both are in the cache)
PARENT_COMPILES = (
    (_response_arrives, (_RESP1, _ST, _OURS1)),
    (_request_arrives, (_I, _OURS1, _ST, _CFG, _LAT, _RESP1, _FILLS, _OLOG, _COUNTS, _LVL, _SC,
                        _BS)),
)


def compile_engine(also=None):
    """:func:`run_nb` and :func:`_run_internal`, compiled for :data:`RUN_SIG` and
    :data:`RUN_INTERNAL_ARGS` or loaded from the disk cache (:mod:`mmsim._jitcache`);
    compiled once per process, then closed to other signatures.

    :func:`run_nb` receives the scheduler (:func:`_run_internal`: responses, requests,
    decisions, funding, the equity clock) as a first-class function value
    (:data:`RUN_INTERNAL_FTYPE`), so neither compile needs the other. On an empty cache with
    more than one CPU a child process compiles :data:`CHILD_COMPILES` into the disk cache (the
    feed's apply step both halves call, then the scheduler) while this one compiles the L3
    book kernels (:data:`L3_KERNEL_ARGS`), :data:`PARENT_COMPILES` (the response and request
    paths, which the child reaches later and then loads) and :func:`run_nb` with the
    market-event kernels it inlines; this process then loads the scheduler from the cache. No
    kernel is compiled in both, and the halves take about as long. On this kind of machine (2
    cores, otherwise idle) that is about 14–19 s to the first event, against about 30–40 s for
    one process compiling everything (``MMSIM_SERIAL_COMPILE=1`` turns the split off); if the
    child fails, this process compiles the scheduler itself.

    ``also``, if given, is called with no arguments once this process has compiled its half,
    before it waits for the child: the run's policy and hedger kernels
    (:attr:`mmsim.kernels.KernelSpec.kernel`) compile there in time the process would
    otherwise spend waiting. It is called whether the engine is compiled here, loaded from the
    cache or already loaded, before this returns.
    """
    if run_nb.overloads:
        if also is not None:
            also()
        return run_nb
    from mmsim._jitcache import compile_elsewhere, engine_is_cached

    child = None
    if not engine_is_cached():
        child = compile_elsewhere("mmsim.engine.nb", "CHILD_COMPILES")
    try:
        if child is not None:
            # meanwhile the child compiles (and writes to the cache) the feed's apply step,
            # which run_nb then loads instead of compiling it again
            for fn, args in (*L3_KERNEL_ARGS, *PARENT_COMPILES):
                fn.compile(args)
        run_nb.compile(RUN_SIG)
        if also is not None:
            also()
    except BaseException:
        if child is not None:
            child.kill()
        raise
    finally:
        if child is not None:
            child.wait()
    _run_internal.compile(RUN_INTERNAL_ARGS)
    run_nb.disable_compile()
    return run_nb
