"""Every record dtype of mmsim, declared once (``align=True`` numpy structured dtypes).

Units are in the field names: ``*_ts`` int64 UNIX nanoseconds, ``*_tick`` int64 price in
ticks of the instrument, ``qty`` int64 quantity in lots of the instrument (shares, contracts,
or ``lot_size`` units of coin). Prices and quantities become floats in user units only when
results are written (:mod:`mmsim.results`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

#: One canonical market event. 56 bytes.
#:
#: ``exch_ts``    int64 ns, when the exchange applied the event (matching-engine clock).
#: ``local_ts``   int64 ns, when the strategy received it (capture clock; equal to
#:                ``exch_ts`` when the vendor has one clock).
#: ``price_tick`` int64, price in ticks (0 where the kind has no price).
#: ``qty``        int64, quantity in lots (meaning depends on ``kind``, see ``EventKind``).
#: ``order_id``   int64, vendor order id (unsigned ids are bit-cast); 0 = anonymous / none.
#: ``value``      float64, auxiliary value (``STATUS``: -1 halt, 0 quote, 1 trade resume).
#: ``kind``       uint8, :data:`mmsim.enums.EventKind`.
#: ``side``       int8, side of the *resting* liquidity: +1 bid, -1 ask, 0 none.
#: ``flags``      uint16, :data:`mmsim.enums.EventFlag` bits.
EVENT_DTYPE = np.dtype(
    [
        ("exch_ts", "i8"),
        ("local_ts", "i8"),
        ("price_tick", "i8"),
        ("qty", "i8"),
        ("order_id", "i8"),
        ("value", "f8"),
        ("kind", "u1"),
        ("side", "i1"),
        ("flags", "u2"),
    ],
    align=True,
)

#: The Parquet schema of a canonical event file (same fields, same order, same types).
EVENT_SCHEMA = pa.schema(
    [
        ("exch_ts", pa.int64()),
        ("local_ts", pa.int64()),
        ("price_tick", pa.int64()),
        ("qty", pa.int64()),
        ("order_id", pa.int64()),
        ("value", pa.float64()),
        ("kind", pa.uint8()),
        ("side", pa.int8()),
        ("flags", pa.uint16()),
    ]
)

#: One fill of our orders, in engine units (converted by :mod:`mmsim.results`).
FILL_DTYPE = np.dtype(
    [
        ("exch_ts", "i8"),  # when the exchange filled us
        ("local_ts", "i8"),  # when the fill report reached the strategy
        ("order_id", "i8"),  # our order id (1, 2, ...)
        ("price_tick", "i8"),
        ("qty", "i8"),  # lots filled
        ("position", "i8"),  # lots, after this fill
        ("fee", "f8"),  # quote currency; negative = rebate
        ("cash", "f8"),  # quote currency, after this fill
        ("mid_tick", "f8"),  # exchange mid when filled, ticks (NaN if a side is empty)
        ("queue_ahead", "f8"),  # lots ahead of us when filled (0 for taker fills)
        ("side", "i1"),  # +1 we bought, -1 we sold
        ("liquidity", "u1"),  # Liquidity.MAKER / TAKER
        ("is_hedge", "u1"),  # 1 if sent by the hedger
        ("instrument", "u1"),  # instrument index (0 = the quoted instrument)
    ],
    align=True,
)

#: One lifecycle event of one of our orders, or a risk event of the engine (``event``
#: RISK_ON / RISK_OFF, ``reason`` a :data:`mmsim.enums.RiskReason`): then ``order_id`` is 0,
#: ``side`` the side a RISK_ON stops (0 = both; 0 on RISK_OFF), ``price_tick`` the strategy's
#: mid rounded (0 if unknown), ``qty`` the position the strategy knows (lots), and both clocks
#: the decision's local time.
ORDER_LOG_DTYPE = np.dtype(
    [
        ("local_ts", "i8"),  # strategy clock: sent (requests) or received (responses)
        ("exch_ts", "i8"),  # exchange clock: arrival (requests) or when it happened
        ("order_id", "i8"),
        ("price_tick", "i8"),
        ("qty", "i8"),  # order quantity (lots) after this event
        ("leaves_qty", "i8"),  # lots still open after this event
        ("fill_qty", "i8"),  # lots filled by this event (FILL only)
        ("event", "u1"),  # OrderEvent
        ("side", "i1"),
        ("tif", "u1"),  # TimeInForce
        ("reason", "u1"),  # Reject reason; RiskReason of RISK_ON / RISK_OFF rows
        ("is_hedge", "u1"),
        ("instrument", "u1"),  # instrument index (0 = the quoted instrument)
    ],
    align=True,
)

#: One sample of the account on the fixed equity clock (exchange time).
EQUITY_DTYPE = np.dtype(
    [
        ("ts", "i8"),
        ("position", "i8"),  # lots
        ("mid_tick", "f8"),
        ("cash", "f8"),  # quote currency
        ("fees", "f8"),  # cumulative fees, quote currency (negative = net rebates)
        ("traded_qty", "i8"),  # cumulative lots traded
        ("n_fills", "i8"),
        ("funding", "f8"),  # cumulative funding paid, settlement currency
        ("instrument", "u1"),  # instrument index (0 = the quoted instrument): one row each
    ],
    align=True,
)

#: One row of ``signals.parquet`` (``signals.record: true``): the market signals of one
#: instrument at one equity-clock sample (:data:`mmsim.signals.spec.SignalCtx` order and units;
#: NaN where undefined). Written by the kernel into the engine's signal buffer.
SIGNAL_RECORD_DTYPE = np.dtype(
    [
        ("ts", "i8"),  # the equity-clock time (local ns)
        ("obi", "f8"),  # order-book imbalance of the top N levels, [-1, 1]
        ("ofi_qty", "f8"),  # order-flow imbalance over the flow window, lots
        ("kyle_lambda_tick", "f8"),  # Kyle's λ, ticks per lot
        ("buy_rate_hz", "f8"),  # buyer-initiated trades per second
        ("sell_rate_hz", "f8"),  # seller-initiated trades per second
        ("vol_tick", "f8"),  # EWMA volatility of the mid, ticks per √second
        ("micro_tick", "f8"),  # Stoikov micro-price, ticks
        ("micro_adj_tick", "f8"),  # micro-price minus mid, ticks
        ("instrument", "u1"),  # instrument index (0 = the quoted instrument)
    ],
    align=True,
)
#: The signal columns of :data:`SIGNAL_RECORD_DTYPE` (the names ``signals.names`` accepts).
SIGNAL_RECORD_NAMES = tuple(n for n in SIGNAL_RECORD_DTYPE.names if n not in ("ts", "instrument"))


def empty_events(n: int) -> np.ndarray:
    """Return a zeroed event array of ``n`` records (``EVENT_DTYPE``)."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def events_to_table(events: np.ndarray) -> pa.Table:
    """Convert an ``EVENT_DTYPE`` array to a pyarrow Table with :data:`EVENT_SCHEMA`."""
    if events.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE records, got {events.dtype}")
    return pa.Table.from_arrays(
        [pa.array(events[name]) for name in EVENT_SCHEMA.names], schema=EVENT_SCHEMA
    )


def table_to_events(table: pa.Table) -> np.ndarray:
    """Convert a pyarrow Table with the event schema to an ``EVENT_DTYPE`` array.

    Raises
    ------
    ValueError
        If a column of :data:`EVENT_SCHEMA` is missing.
    """
    missing = [n for n in EVENT_SCHEMA.names if n not in table.column_names]
    if missing:
        raise ValueError(f"not a canonical event table: missing columns {missing}")
    out = np.empty(table.num_rows, dtype=EVENT_DTYPE)
    for name in EVENT_SCHEMA.names:
        col = table.column(name).to_numpy()
        out[name] = col
    return out


#: One of our order slots in the engine (``Engine.ours``, one record per slot): the exchange's
#: view of the order, the request in flight, the strategy's (local) view, and the lots
#: estimated ahead of it in its queue.
OUR_ORDER_DTYPE = np.dtype(
    [
        ("order_id", np.int64),  # our order id (1, 2, … in submission order)
        ("side", np.int64),  # +1 buy, -1 sell
        ("price_tick", np.int64),  # exchange view: price of the resting order, ticks
        ("qty", np.int64),  # exchange view: order quantity (filled + open), lots
        ("leaves", np.int64),  # exchange view: open quantity, lots
        ("tif", np.int64),  # time in force (TimeInForce)
        ("seq", np.int64),  # book sequence at our arrival: book orders at or below it are ahead
        ("exch_status", np.int64),  # exchange status (OrderStatus)
        ("is_hedge", np.int64),  # 1 for a hedger's order
        ("req", np.int64),  # request in flight to the exchange: 0 none, REQ_*
        ("req_ts", np.int64),  # its exchange arrival time, ns
        ("req_price_tick", np.int64),  # its price, ticks
        ("req_qty", np.int64),  # its quantity (a modify's new total), lots
        ("req_seq", np.int64),  # tie-break sequence of requests
        ("local_status", np.int64),  # local view: status (OrderStatus)
        ("local_price_tick", np.int64),  # local view: price, ticks
        ("local_qty", np.int64),  # local view: order quantity, lots
        ("local_leaves", np.int64),  # local view: open quantity, lots
        ("in_flight", np.int64),  # 1 while a request of ours awaits its response
        ("n_responses", np.int64),  # responses in flight for this slot
        ("filled", np.int64),  # exchange view: lots filled so far
        ("hedge_done", np.int64),  # hedge order already counted as finished
        ("traded_since_depth", np.int64),  # L2: lots traded at our price since the depth update
        ("local_filled", np.int64),  # local view: lots filled so far (from fill reports)
        ("local_target", np.int64),  # local view: open quantity last asked for (the quote's size)
        ("modify_total", np.int64),  # local view: total asked by a modify in flight (0 = none)
        ("local_sent_ts", np.int64),  # local ns its price / size was last asked (submit, modify)
        ("instrument", np.int64),  # the instrument the slot belongs to (fixed per slot)
        ("queue_ahead", np.float64),  # lots ahead of the order in its level's queue
    ],
    align=True,
)

#: An answer of the exchange on its way to the strategy (``Engine.resp``): an ack, reject,
#: fill, expiry or cancel/modify answer for one of our order slots, applied to the strategy's
#: view at ``ts`` (local ns); ``seq`` keeps answers of the same time in the order sent.
RESPONSE_DTYPE = np.dtype(
    [
        ("ts", np.int64),  # local arrival time, ns
        ("seq", np.int64),  # order of sending (tie-break)
        ("kind", np.int64),  # OrderEvent
        ("slot", np.int64),  # our order slot
        ("price_tick", np.int64),  # the order's price after the event, ticks
        ("qty", np.int64),  # the order's quantity after the event, lots
        ("leaves", np.int64),  # its open quantity after the event, lots
        ("fill_qty", np.int64),  # lots filled by this event
        ("cash", np.float64),  # cash the event moves (fills: after fees), settlement currency
    ],
    align=True,
)

#: A change of the exchange book (or a trade) on its way to the strategy's local book
#: (``Engine.ring``, a FIFO ring): applied at ``ts`` (local ns); ``code`` says what it is
#: (:mod:`mmsim.engine.nb`: FEED_BID / FEED_ASK level deltas, FEED_CLEAR_*, RING_RECENTER,
#: ±RING_TRADE).
FEED_DTYPE = np.dtype(
    [
        ("ts", np.int64),  # local receive time, ns
        ("code", np.int64),  # what the entry is
        ("price_tick", np.int64),  # price (or the new window base for RING_RECENTER), ticks
        ("qty", np.int64),  # level delta or traded quantity, lots
    ],
    align=True,
)

#: Quote levels per side (:data:`mmsim.contracts.MAX_LEVELS`, kept equal by a test).
MAX_QUOTE_LEVELS = 8

#: Most order slots of ours per instrument (``engine.max_our_orders`` is at most this).
MAX_OUR_ORDERS = 1024

#: The engine's state of one instrument (``Engine.state``, one record per instrument; the
#: run's clocks, resume index and decision counters live in instrument 0's record). Integer
#: fields are int64, money and prices float64; ``*_ts`` exchange or local ns as named.
ENGINE_STATE_DTYPE = np.dtype(
    [
        ("resume_index", np.int64),  # where run_nb resumes in the current chunk
        ("t0", np.int64),  # first event's exch_ts (-1 before any)
        ("next_decision_ts", np.int64),  # local clock
        ("next_equity_ts", np.int64),
        ("next_request_ts", np.int64),  # earliest request arrival at the exchange
        ("next_response_ts", np.int64),  # earliest response arrival at the strategy
        ("n_responses", np.int64),  # responses in flight
        ("response_seq", np.int64),  # tie-break sequence of responses
        ("request_seq", np.int64),  # tie-break sequence of requests
        ("last_order_id", np.int64),  # order ids given so far
        ("position", np.int64),  # true position, lots
        ("local_position", np.int64),  # position as the strategy knows it, lots
        ("halted", np.int64),  # 1 after a STATUS halt
        ("in_snapshot", np.int64),  # 1 between SNAPSHOT_BEGIN and SNAPSHOT_END
        ("feed_head", np.int64),  # feed queue: oldest entry
        ("feed_count", np.int64),  # feed queue: entries
        ("feed_last_ts", np.int64),  # last local time queued (keeps the feed FIFO ordered)
        ("n_fills", np.int64),
        ("traded_lots", np.int64),
        ("last_event_ts", np.int64),  # exch_ts of the last event applied
        ("error_code", np.int64),  # a policy's or hedger's non-zero return code
        ("n_feed_clamped", np.int64),  # local_ts moved up to keep the feed ordered
        ("n_feed_overflows", np.int64),  # feed queue full: oldest entry applied early
        ("n_events", np.int64),
        ("n_decisions", np.int64),
        ("dirty", np.int64),  # our exchange-side orders changed: recompute the bounds below
        ("n_open_bids", np.int64),  # entries of open_bid_slots in use
        ("n_open_asks", np.int64),
        ("open_bid_hi_tick", np.int64),  # highest price of our open bids
        ("open_ask_lo_tick", np.int64),  # lowest price of our open asks
        ("open_bid_lo_tick", np.int64),  # lowest price of our open bids
        ("open_ask_hi_tick", np.int64),  # highest price of our open asks
        ("n_pending_hedges", np.int64),  # hedge orders sent and not finished
        ("n_slot_full", np.int64),  # submits dropped: no free order slot
        # order slots ever taken: slots are taken lowest free first, so every slot from here
        # on is free and the loops over our orders stop here
        ("n_slots_used", np.int64),
        ("next_funding_ts", np.int64),  # next funding time (exchange ns)
        ("last_funding_ts", np.int64),  # last funding time charged
        ("n_funding", np.int64),  # funding payments made
        ("rng", np.int64),  # xorshift64* state of the random latency draws
        ("last_request_ts", np.int64),  # last request arrival: one order-entry session
        ("last_response_ts", np.int64),  # last response arrival
        ("n_recenters", np.int64),  # ladder window moves
        ("last_equity_ts", np.int64),  # time of the last equity sample
        ("risk_active", np.int64),  # bits of the RiskReasons acting now (mmsim.enums)
        ("risk_stop_until_ts", np.int64),  # local ns a PnL / drawdown stop ends (INF: never)
        ("cash", np.float64),  # settlement currency
        ("fees", np.float64),
        ("local_cash", np.float64),  # as the strategy knows it
        ("vol_var", np.float64),  # online variance of the mid, ticks² per second
        ("vol_last_mid", np.float64),  # ticks
        ("last_fill_ts", np.float64),  # local ns of the last fill report (0 = none)
        ("vol_last_ts", np.float64),  # local ns of the last volatility sample
        ("funding", np.float64),  # cumulative funding paid, settlement currency
        ("mark_price", np.float64),  # last mark price, quote currency (NaN if none)
        ("funding_rate", np.float64),  # rate announced for the next funding time
        ("trade_hi_tick", np.float64),  # local view since the last clock decision: highest
        ("trade_lo_tick", np.float64),  # buyer- and lowest seller-initiated trade price
        ("trade_qty", np.float64),  # and the lots traded
        ("risk_equity_start", np.float64),  # equity a PnL stop is measured from (NaN: unset)
        ("risk_equity_peak", np.float64),  # running peak of the equity (drawdown stop)
        ("vol_fast_var", np.float64),  # circuit breaker: fast EWMA of squared mid changes / s
        ("vol_slow_var", np.float64),  # and its slow average, ticks² per second
        ("open_bid_slots", np.int64, (MAX_OUR_ORDERS,)),  # our open bids' slots (bounds)
        ("open_ask_slots", np.int64, (MAX_OUR_ORDERS,)),
    ],
    align=True,
)

#: The engine's settings of one instrument (``Engine.params``, one record per instrument),
#: copied from the resolved spec (:mod:`mmsim.resolve`); the codes are the engine's
#: (:mod:`mmsim.engine.nb`: FEED_*, REPLACE_*, QUEUE_*; :data:`mmsim.enums.TimeInForce`).
ENGINE_PARAMS_DTYPE = np.dtype(
    [
        ("decision_ns", np.int64),  # decision clock period, local ns
        ("equity_ns", np.int64),  # equity clock period
        ("feed_mode", np.int64),  # FEED_DATA_LOCAL or FEED_EXCH_PLUS
        ("feed_ns", np.int64),  # feed offset or latency, ns
        ("latency_model", np.int64),  # mmsim.models.nb.LatencyModel
        ("quote_tif", np.int64),  # TimeInForce of the policy's quotes
        ("max_position_lots", np.int64),  # -1 = no limit
        ("replace_mode", np.int64),  # REPLACE_MODIFY or REPLACE_CANCEL
        ("has_hedger", np.int64),
        ("ctx_depth", np.int64),  # 1: fill the context's depth block (policy or hedger reads it)
        ("target_position_lots", np.int64),  # the hedger's target
        ("end_ts", np.int64),  # horizon, exchange ns (0 = none)
        ("decide_on_fill", np.int64),
        ("warmup_ns", np.int64),
        ("max_ours", np.int64),  # order slots in use (<= MAX_OUR_ORDERS)
        ("queue_model", np.int64),  # QUEUE_*: L3 FIFO or an L2 model
        ("ladder_follows_touch", np.int64),  # 1: the ladder window follows the touch (L2)
        ("whole_fills", np.int64),  # 1: an execution reaching an order fills all of it
        ("tick_size", np.float64),  # quote currency per tick
        ("lot_size", np.float64),  # instrument units per lot
        ("multiplier", np.float64),
        ("maker_fee_bps", np.float64),
        ("taker_fee_bps", np.float64),
        ("maker_fee_per_lot", np.float64),
        ("taker_fee_per_lot", np.float64),
        ("is_inverse", np.float64),  # 1.0 for an inverse (coin-margined) contract
        ("vol_halflife_s", np.float64),  # the online volatility's half-life
        ("vol_init_tick", np.float64),
        ("queue_power_n", np.float64),  # exponent of the power queue model
        # risk limits and quote management (mmsim.resolve.LimitSpec / QuotingSpec); off at
        # their defaults, and with ``risk_on`` 0 the decision path skips them all
        ("risk_on", np.int64),  # 1: one of the options below is on
        ("stop_quoting_ts", np.int64),  # no quotes from this local ns (0 = never)
        ("flatten_ts", np.int64),  # flatten from this local ns (0 = never)
        ("stop_cooldown_ns", np.int64),  # PnL / drawdown stop length (-1 = the whole run)
        ("flatten_on_stop", np.int64),
        ("flatten_tif", np.int64),  # TimeInForce: MARKET, IOC or FOK
        ("flatten_slippage_ticks", np.int64),
        ("soft_position_lots", np.int64),  # -1 = no soft limit
        ("vol_breaker_action", np.int64),  # BREAKER_* (mmsim.engine.nb)
        ("ofi_action", np.int64),  # BREAKER_*: the order-flow pause pauses or widens
        ("min_quote_life_ns", np.int64),
        ("refresh_threshold_ticks", np.int64),
        ("placement", np.int64),  # PLACE_* (mmsim.engine.nb)
        ("behind_ticks", np.int64),
        ("skip_below_break_even", np.int64),
        ("skip_at_inventory_limit", np.int64),
        ("ladder_levels", np.int64),  # 0 = no ladder
        ("ladder_unit", np.int64),  # LADDER_* (mmsim.engine.nb)
        ("max_notional", np.float64),  # settlement currency (NaN = none)
        ("soft_widen_frac", np.float64),
        ("max_loss", np.float64),  # NaN = none
        ("max_drawdown", np.float64),  # NaN = none
        ("vol_breaker_ratio", np.float64),  # k_σ (NaN = no breaker)
        ("vol_fast_halflife_s", np.float64),
        ("vol_slow_halflife_s", np.float64),
        ("vol_breaker_spread_mult", np.float64),
        ("ofi_pause_lots", np.float64),  # |OFI| threshold, lots (NaN = no pause)
        ("ofi_spread_mult", np.float64),
        ("size_inventory_factor", np.float64),
        ("break_even_margin_bps", np.float64),
        ("max_vol_tick", np.float64),  # NaN = no rule
        ("ladder_size_growth", np.float64),
        ("ladder_offsets", np.float64, (MAX_QUOTE_LEVELS,)),  # ticks or bps, one per level
    ],
    align=True,
)
