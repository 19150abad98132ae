"""The function-type contracts of policies and hedgers, and the layout of their arrays.

A *policy* and a *hedger* are numba functions compiled with the declared signature

    ``int64(float64[::1] ctx, float64[::1] params, float64[::1] state, float64[::1] out)``

(:data:`POLICY_SIG`, :data:`HEDGER_SIG`). The engine takes them as first-class function values
of :data:`POLICY_FTYPE` / :data:`HEDGER_FTYPE`, so one compiled engine serves every policy and
stays in numba's on-disk cache across processes. A policy cannot tell which driver calls it.

``ctx`` (read-only for the callee) is laid out by :data:`Ctx`; prices are in ticks, quantities in
lots, times in seconds. ``params`` holds the policy's parameters in the order of its registry
entry; ``state`` is the callee's own persistent memory (zeroed at the start of a run).

Policy output ``out`` (:data:`Quote` layout): ``out[N_BID]`` and ``out[N_ASK]`` levels
(0 = do not quote that side), then for level k: bid price/qty at ``BID0 + 2k``/``BID0 + 2k + 1``
and ask price/qty at ``ASK0 + 2k``/``ASK0 + 2k + 1``. Bid prices are floored and ask prices
ceiled to whole ticks by the engine. Return 0; any other value is an error code that stops the
run with :class:`mmsim.engine.backtest.PolicyError`.

Hedger output ``out`` (:data:`HedgeOut` layout): ``out[0]`` = number of orders n, then for each
order k: instrument index, side (+1 buy, -1 sell), quantity in lots, time in force
(:data:`mmsim.enums.TimeInForce`: IOC, FOK or MARKET) and limit price in ticks (IOC, FOK), at
``1 + 5k ...``. Instrument index 0 is the quoted instrument; the contract carries the index so
a hedge on a second instrument needs no new signature.

Market signals (``ctx[Ctx.SIGNALS0 + SignalCtx.<NAME>]``, :data:`mmsim.signals.spec.SignalCtx`):
the quoted instrument's order-book imbalance (``OBI``, top N levels, in [-1, 1]), order-flow
imbalance (``OFI_QTY``, lots over the flow window), Kyle's λ (``KYLE_LAMBDA_TICK``, ticks per
lot), trade intensities (``BUY_RATE_HZ``, ``SELL_RATE_HZ``, trades per second), volatility
(``VOL_TICK``, ticks per √s) and micro-price (``MICRO_TICK``, ``MICRO_ADJ_TICK``, ticks),
computed on the strategy's local (delayed) book at the decision time. Every slot is NaN when
the experiment has no ``signals:`` section, and NaN where a signal is undefined (see
:mod:`mmsim.signals.nb`; the micro-price needs ``signals.microprice_table``).
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np
from numba import types

import mmsim._jitcache  # noqa: F401  (before any cached kernel)
from mmsim.signals.spec import SignalCtx

POLICY_SIG = types.int64(
    types.float64[::1], types.float64[::1], types.float64[::1], types.float64[::1]
)
HEDGER_SIG = POLICY_SIG
POLICY_FTYPE = types.FunctionType(POLICY_SIG)
HEDGER_FTYPE = types.FunctionType(HEDGER_SIG)

#: Quote levels per side a policy may return.
MAX_LEVELS = 8
#: Our order slots visible in ``ctx``.
CTX_ORDERS = 16
#: Book levels per side visible in ``ctx``.
CTX_DEPTH = 5
#: Hedge orders a hedger may return at once.
MAX_HEDGE_ORDERS = 4


class _Ctx(NamedTuple):
    """Indices into the policy/hedger context array ``ctx`` (float64)."""

    TIME_S: int = 0  # local time since the first event, seconds
    TIME_TO_HORIZON_S: int = 1  # seconds left to the horizon (inf if none)
    REASON: int = 2  # 0 = clock, 1 = after one of our fills
    BEST_BID_TICK: int = 3  # NaN if no bid (local, delayed view)
    BEST_ASK_TICK: int = 4  # NaN if no ask
    BID_QTY: int = 5  # lots at the best bid
    ASK_QTY: int = 6  # lots at the best ask
    MID_TICK: int = 7  # (bid + ask) / 2, NaN if a side is empty
    WMID_TICK: int = 8  # size-weighted mid (V_ask P_bid + V_bid P_ask)/(V_bid + V_ask)
    SPREAD_TICK: int = 9
    POSITION: int = 10  # lots, as the strategy knows it (fills reported so far)
    CASH: int = 11  # quote currency, as the strategy knows it
    VOL_TICK: int = 12  # online volatility estimate of the mid, ticks per sqrt(second)
    TICK_SIZE: int = 13  # quote currency per tick
    LOT_SIZE: int = 14  # instrument units per lot
    MAX_POSITION: int = 15  # risk limit, lots (inf if none)
    N_OPEN_BID: int = 16  # our live quote orders (not hedges), bid side
    N_OPEN_ASK: int = 17
    N_PENDING_HEDGE: int = 18  # hedge orders sent and not finished
    TARGET_POSITION: int = 19  # lots (hedger target)
    LAST_FILL_S: int = 20  # local time of our last fill report, seconds (-inf if none)
    TRADE_HI_TICK: int = 21  # highest buyer-initiated trade price since the last clock
    TRADE_LO_TICK: int = 22  # lowest seller-initiated trade price since the last clock (NaN)
    TRADE_QTY: int = 23  # lots traded since the last clock decision (as the strategy saw it)
    #: CTX_DEPTH bid (price, qty) pairs, then CTX_DEPTH ask pairs; all NaN when neither the
    #: policy nor the hedger declares ``reads_depth`` (:class:`mmsim.kernels.KernelSpec`)
    DEPTH0: int = 24
    ORDERS0: int = 44  # CTX_ORDERS x (side, price_tick, leaves_qty, status, is_hedge)
    N_INSTRUMENTS: int = 124  # instruments in the run (1 = only the quoted one)
    INST0: int = 125  # MAX_INSTRUMENTS blocks of INST_CTX_SIZE (:data:`InstCtx`), one each
    #: the quoted instrument's market signals, ``SignalCtx.SIZE`` slots at
    #: ``SIGNALS0 + SignalCtx.<NAME>`` (:data:`mmsim.signals.spec.SignalCtx`); all NaN unless
    #: the experiment has a ``signals:`` section
    SIGNALS0: int = 173


#: Instruments one run may replay (the quoted one and up to three others).
MAX_INSTRUMENTS = 4


class _InstCtx(NamedTuple):
    """Offsets inside the ``ctx`` block of instrument ``i``, which starts at
    ``Ctx.INST0 + InstCtx.SIZE * i`` (instrument 0 is the quoted one; blocks of instruments
    not in the run are zero). Prices in that instrument's ticks, quantities in its lots, the
    local (delayed) view; the block of instrument ``i`` is :func:`inst_ctx_base`."""

    BEST_BID_TICK: int = 0  # NaN if no bid
    BEST_ASK_TICK: int = 1  # NaN if no ask
    BID_QTY: int = 2
    ASK_QTY: int = 3
    MID_TICK: int = 4  # NaN if a side is empty
    POSITION: int = 5  # lots, as the strategy knows it
    TICK_SIZE: int = 6  # quote currency per tick
    LOT_SIZE: int = 7  # instrument units per lot
    MULTIPLIER: int = 8  # contract multiplier
    IS_INVERSE: int = 9  # 1.0 for an inverse (coin-margined) contract
    N_PENDING_HEDGE: int = 10  # hedge orders sent on it and not finished
    MAX_POSITION: int = 11  # its risk limit, lots (inf if none)
    SIZE: int = 12


InstCtx = _InstCtx()


class _CtxOrder(NamedTuple):
    """Offsets inside the ``ctx`` entry of our ``c``-th live order, which starts at
    ``Ctx.ORDERS0 + CtxOrder.SIZE * c`` (side +1/-1, local price in ticks, open lots, status,
    1 for a hedge; unused entries: side 0, price NaN)."""

    SIDE: int = 0
    PRICE_TICK: int = 1
    LEAVES: int = 2
    STATUS: int = 3
    IS_HEDGE: int = 4
    SIZE: int = 5


class _Reason(NamedTuple):
    """Why a decision runs (``ctx[Ctx.REASON]``)."""

    CLOCK: int = 0  # the decision clock
    FILL: int = 1  # one of our fills was reported


CtxOrder = _CtxOrder()
Reason = _Reason()
Ctx = _Ctx()
CTX_SIZE = Ctx.SIGNALS0 + SignalCtx.SIZE
assert Ctx.INST0 + InstCtx.SIZE * MAX_INSTRUMENTS == Ctx.SIGNALS0
assert Ctx.ORDERS0 + CtxOrder.SIZE * CTX_ORDERS == Ctx.N_INSTRUMENTS


@nb.njit(cache=True, inline="always", _nrt=False)
def inst_ctx_base(i):
    """Index in ``ctx`` where the block (:data:`InstCtx`) of instrument ``i`` starts."""
    return Ctx.INST0 + InstCtx.SIZE * i


class _Quote(NamedTuple):
    """Indices into a policy's output array."""

    N_BID: int = 0
    N_ASK: int = 1
    BID0: int = 2
    ASK0: int = 2 + 2 * MAX_LEVELS


Quote = _Quote()
QUOTE_SIZE = 2 + 4 * MAX_LEVELS


@nb.njit(cache=True, inline="always", _nrt=False)
def quote_levels_nb(out, side):
    """How many levels a policy's output ``out`` (:data:`Quote` layout) quotes on ``side``
    (+1 bid, -1 ask), clipped to ``[0, MAX_LEVELS]``."""
    n = int(out[Quote.N_BID] if side > 0 else out[Quote.N_ASK])
    return min(max(n, 0), MAX_LEVELS)


@nb.njit(cache=True, inline="always", _nrt=False)
def quote_level_nb(out, side, k):
    """Level ``k`` of a policy's quotes on ``side`` (+1 bid, -1 ask) in whole ticks and lots:
    ``(price_tick, qty_lots)`` as int64, bid prices floored and ask prices ceiled (1e-9
    tolerance), sizes truncated; ``qty_lots`` is 0 for an empty level (a NaN price or size,
    or less than one lot)."""
    base = Quote.BID0 if side > 0 else Quote.ASK0
    p = out[base + 2 * k]
    q = out[base + 2 * k + 1]
    if np.isnan(p) or np.isnan(q) or q < 1.0:
        return np.int64(0), np.int64(0)
    if side > 0:
        return np.int64(np.floor(p + 1e-9)), np.int64(q)
    return np.int64(np.ceil(p - 1e-9)), np.int64(q)


class _HedgeOut(NamedTuple):
    """Indices into a hedger's output array: ``out[N]`` orders, order ``k`` at
    ``ORDER0 + ORDER_SIZE·k`` with its fields at the offsets ``INSTRUMENT`` … ``LIMIT_TICK``."""

    N: int = 0
    ORDER0: int = 1
    ORDER_SIZE: int = 5
    INSTRUMENT: int = 0
    SIDE: int = 1
    QTY: int = 2
    TIF: int = 3
    LIMIT_TICK: int = 4


HedgeOut = _HedgeOut()
HEDGE_OUT_SIZE = HedgeOut.ORDER0 + HedgeOut.ORDER_SIZE * MAX_HEDGE_ORDERS
