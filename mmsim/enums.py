"""Enumerations shared by every layer of mmsim.

Each enum is a ``NamedTuple`` *instance*: numba folds its attributes to compile-time
integer constants inside kernels, and Python code reads them by name
(``EventKind.ADD``). Every value is stable: it is written to Parquet and must not change.
"""

from __future__ import annotations

from typing import NamedTuple


class _EventKind(NamedTuple):
    """Kind of a canonical market event (``EVENT_DTYPE['kind']``, uint8).

    ADD
        A new resting order ``order_id`` of ``qty`` lots at ``price_tick`` on ``side``.
        ``order_id == 0`` adds *anonymous* volume (volume whose orders are unknown, e.g.
        LOBSTER orders resting before the file starts): it queues ahead of any order of ours.
    CANCEL
        Reduce order ``order_id`` by ``qty`` lots (partial cancel); ``order_id == 0`` reduces
        the anonymous volume at ``price_tick``.
    DELETE
        Remove order ``order_id`` entirely (``qty`` is informational).
    MODIFY
        Order ``order_id`` now has ``price_tick`` and ``qty``. A price change or a size
        increase loses queue priority; a size decrease keeps it (MODELS.md §6).
    EXECUTE
        Resting visible order ``order_id`` (or anonymous volume when 0) at ``price_tick``
        on ``side`` is executed for ``qty`` lots. Reduces the book.
    TRADE
        A trade print at ``price_tick`` that is *not* carried by EXECUTE records (hidden or
        non-displayed liquidity, L2 trade streams). ``side`` is the side of the resting
        (passive) liquidity, so the aggressor is ``-side``. No book effect.
    LEVEL_SET
        L2 only: the total quantity at ``price_tick`` on ``side`` is now ``qty`` (0 deletes).
    CLEAR
        Remove every order of the book (``side == 0``) or of one side.
    SNAPSHOT_BEGIN, SNAPSHOT_END
        Bracket a block of records that rebuilds the book from scratch.
    STATUS
        Trading status; ``value`` holds -1 (halt), 0 (quotes resume), 1 (trading resumes).
    MARK
        Mark price of a derivative: ``value`` in quote currency (``price_tick`` = the nearest
        tick). No book effect.
    FUNDING
        Perpetual funding: ``value`` = the funding rate that applies at the next funding time,
        ``order_id`` = that funding time (int64 ns). No book effect; the engine charges
        ``position·mark·rate`` at the funding time (MODELS.md §8).
    BBO
        Best bid or offer as published by a separate ticker stream (``side``, ``price_tick``,
        ``qty``), flagged INFO: kept for validation, never applied to the book.
    """

    ADD: int = 1
    CANCEL: int = 2
    DELETE: int = 3
    MODIFY: int = 4
    EXECUTE: int = 5
    TRADE: int = 6
    LEVEL_SET: int = 7
    CLEAR: int = 8
    SNAPSHOT_BEGIN: int = 9
    SNAPSHOT_END: int = 10
    STATUS: int = 11
    MARK: int = 12
    FUNDING: int = 13
    BBO: int = 14


EventKind = _EventKind()
EVENT_KIND_NAMES = {v: k.lower() for k, v in EventKind._asdict().items()}


class _EventFlag(NamedTuple):
    """Bit flags of a canonical market event (``EVENT_DTYPE['flags']``, uint16).

    LAST
        Last record of one exchange event: the book is consistent after it. Every record of a
        LOBSTER message group, or a Databento record with ``F_LAST``, ends with this bit.
    SYNTHETIC
        Made by mmsim, not by the vendor: e.g. anonymous volume or a silent cancel derived from
        a LOBSTER orderbook file (see :mod:`mmsim.data.lobster`).
    SNAPSHOT
        Part of an opening snapshot block.
    INFO
        Informational trade print whose book effect is carried by EXECUTE records (Databento
        ``T`` records): never used for fills, kept for trade statistics.
    SUBTICK
        The vendor price was not on the tick grid and was rounded (see the reader's docs).
    CROSS
        An auction cross trade (LOBSTER type 6).
    BAD_TS
        The vendor flagged the receive timestamp as unreliable.
    """

    LAST: int = 1
    SYNTHETIC: int = 2
    SNAPSHOT: int = 4
    INFO: int = 8
    SUBTICK: int = 16
    CROSS: int = 32
    BAD_TS: int = 64


EventFlag = _EventFlag()


class _Side(NamedTuple):
    """Side: +1 buy / bid, -1 sell / ask, 0 none."""

    BUY: int = 1
    SELL: int = -1
    NONE: int = 0


Side = _Side()


class _TimeInForce(NamedTuple):
    """Time in force of our orders.

    GTC rests until cancelled (crossing part takes liquidity); POST_ONLY (GTX) is rejected if
    it would cross on arrival; IOC takes what it can and cancels the rest; MARKET walks the
    book for its whole size, ignoring price; FOK (fill-or-kill) fills its whole size at
    arrival against the book within its limit price, or is cancelled with nothing filled
    (an ``expire`` with reason ``no_liquidity``).
    """

    GTC: int = 0
    POST_ONLY: int = 1
    IOC: int = 2
    MARKET: int = 3
    FOK: int = 4


TimeInForce = _TimeInForce()
TIF_NAMES = {v: k.lower() for k, v in TimeInForce._asdict().items()}


class _OrderEvent(NamedTuple):
    """Lifecycle event of one of our orders (``ORDER_LOG_DTYPE['event']``)."""

    SUBMIT: int = 1
    ACK: int = 2
    REJECT: int = 3
    MODIFY: int = 4
    MODIFY_ACK: int = 5
    MODIFY_REJECT: int = 6
    CANCEL: int = 7
    CANCEL_ACK: int = 8
    CANCEL_REJECT: int = 9
    FILL: int = 10
    EXPIRE: int = 11
    #: a risk limit or should-quote rule of the engine starts to act (``reason``: a
    #: :data:`RiskReason`); the row carries no order (``order_id`` 0)
    RISK_ON: int = 12
    #: it stops acting (the same ``reason``)
    RISK_OFF: int = 13


OrderEvent = _OrderEvent()
ORDER_EVENT_NAMES = {v: k.lower() for k, v in OrderEvent._asdict().items()}


class _Liquidity(NamedTuple):
    """Maker (our resting order was hit) or taker (our order crossed the book)."""

    MAKER: int = 1
    TAKER: int = 2


Liquidity = _Liquidity()
LIQUIDITY_NAMES = {1: "maker", 2: "taker"}


class _OrderStatus(NamedTuple):
    """State of one of our order slots, as the exchange or the strategy sees it."""

    FREE: int = 0
    PENDING_NEW: int = 1
    OPEN: int = 2
    DONE: int = 3


OrderStatus = _OrderStatus()


class _Reject(NamedTuple):
    """Why the exchange rejected one of our requests (``ORDER_LOG_DTYPE['reason']``)."""

    NONE: int = 0
    POST_ONLY_WOULD_CROSS: int = 1
    UNKNOWN_ORDER: int = 2
    NO_LIQUIDITY: int = 3
    HALTED: int = 4
    #: a modify's new total quantity is not above what the order has already filled: the
    #: exchange cancels the order (the reason of that ``cancel_ack``)
    FILLED_BEYOND_NEW_QTY: int = 5


Reject = _Reject()

#: The first :data:`RiskReason` code: risk reasons share the orders log's ``reason`` column
#: with the :data:`Reject` reasons, so their codes start above them.
RISK_REASON_BASE = 16


class _RiskReason(NamedTuple):
    """Why the engine's risk layer acts (``ORDER_LOG_DTYPE['reason']`` of ``risk_on`` /
    ``risk_off`` rows; MODELS.md §10 and §4). The bit of reason ``r`` in
    ``ENGINE_STATE_DTYPE['risk_active']`` is ``1 << (r - RISK_REASON_BASE)``.

    NOTIONAL_LIMIT
        ``|q|·mid·multiplier`` (inverse ``|q|·multiplier/mid``) reached ``risk.max_notional``:
        the side that adds to ``|q|`` is not quoted.
    SOFT_LIMIT
        ``|q|`` beyond ``risk.soft_position_qty``: the side that adds inventory is widened.
    PNL_STOP, DRAWDOWN_STOP
        Equity − start < −``risk.max_loss``, or peak − equity > ``risk.max_drawdown``: every
        quote cancelled (optionally flattened) until the cool-down ends.
    VOL_BREAKER
        Fast volatility above ``risk.vol_breaker_ratio`` × its slow average: paused or widened.
    SESSION_STOP, SESSION_FLATTEN
        Within ``risk.stop_before_end_s`` (no quotes) or ``risk.flatten_before_end_s``
        (no quotes, and the position is flattened) of the horizon.
    BREAK_EVEN_SPREAD
        Should-quote rule: the market spread is below ``2·maker fee + margin``.
    INVENTORY_AT_LIMIT
        Should-quote rule: the position is at its limit on that side.
    VOL_THRESHOLD
        Should-quote rule: the volatility estimate is above ``quoting.max_vol_tick``.
    OFI_PAUSE
        ``|OFI|`` over the signals' flow window above ``risk.ofi_pause_qty``: the side the
        flow runs against (the ask when OFI > 0, buying pressure; the bid when OFI < 0) is
        paused or widened.
    """

    NOTIONAL_LIMIT: int = RISK_REASON_BASE
    SOFT_LIMIT: int = RISK_REASON_BASE + 1
    PNL_STOP: int = RISK_REASON_BASE + 2
    DRAWDOWN_STOP: int = RISK_REASON_BASE + 3
    VOL_BREAKER: int = RISK_REASON_BASE + 4
    SESSION_STOP: int = RISK_REASON_BASE + 5
    SESSION_FLATTEN: int = RISK_REASON_BASE + 6
    BREAK_EVEN_SPREAD: int = RISK_REASON_BASE + 7
    INVENTORY_AT_LIMIT: int = RISK_REASON_BASE + 8
    VOL_THRESHOLD: int = RISK_REASON_BASE + 9
    OFI_PAUSE: int = RISK_REASON_BASE + 10


RiskReason = _RiskReason()
RISK_REASON_NAMES = {v: k.lower() for k, v in RiskReason._asdict().items()}

#: Names of every code of the orders log's ``reason`` column: the :data:`Reject` reasons
#: and the :data:`RiskReason` codes (written as these names by :mod:`mmsim.results`).
REJECT_NAMES = {**{v: k.lower() for k, v in Reject._asdict().items()}, **RISK_REASON_NAMES}
