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

#: One lifecycle event of one of our orders.
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
        ("reason", "u1"),  # Reject reason
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
