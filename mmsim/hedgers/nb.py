"""Hedger kernels (numba, signature :data:`mmsim.contracts.HEDGER_SIG`).

The ``params`` and ``state`` layouts are declared once in :mod:`mmsim.hedgers.params` (the
registry's checks, defaults and parameter vector derive from the same declaration); the
kernels index them by name (``params[TH.threshold]``, ``state[TS.since_s]``), constants numba
folds at compile time. Every kernel returns :data:`mmsim.kernels.OK`; none declares an error
code.
"""

from __future__ import annotations

import numpy as np

from mmsim._jitcache import declared, internal, kernel  # (before any cached kernel)
from mmsim.contracts import HEDGER_SIG, Ctx, HedgeOut, InstCtx, inst_ctx_base
from mmsim.enums import TimeInForce
from mmsim.hedgers.params import TH, TS, XH
from mmsim.kernels import OK

__all__ = ["TH", "TS", "XH", "cross_delta_hedger_nb", "delta_units_nb", "no_hedger_nb",
           "threshold_hedger_nb"]


@internal
def _threshold_order_nb(ctx, state, out, excess, threshold, size, small, max_wait_s, tif,
                        slippage_ticks, inst, bid_tick, ask_tick):
    """The rule both hedgers share: while ``|excess| <= threshold`` nothing (the excess's
    start time ``state[TS.since_s]`` is cleared); above it, once no hedge order is working,
    one order of ``size`` lots on instrument ``inst`` against the excess, unless it is
    ``small``: then only once the excess has lasted ``max_wait_s`` seconds (at least one
    lot). IOC and FOK orders are priced ``slippage_ticks`` through the opposite touch of ``inst``
    (``bid_tick`` / ``ask_tick``; none is sent without it)."""
    now = ctx[Ctx.TIME_S]
    if abs(excess) <= threshold:
        state[TS.since_s] = np.nan
        return
    if np.isnan(state[TS.since_s]):
        state[TS.since_s] = now
    if ctx[Ctx.N_PENDING_HEDGE] > 0:
        return
    if small:
        if now - state[TS.since_s] < max_wait_s:
            return
        size = max(size, 1.0)
    side = -1.0 if excess > 0 else 1.0
    lim = np.nan
    if tif == TimeInForce.IOC or tif == TimeInForce.FOK:
        lim = ask_tick + slippage_ticks if side > 0 else bid_tick - slippage_ticks
        if np.isnan(lim):
            return
    o = HedgeOut.ORDER0
    out[HedgeOut.N] = 1.0
    out[o + HedgeOut.INSTRUMENT] = inst
    out[o + HedgeOut.SIDE] = side
    out[o + HedgeOut.QTY] = size
    out[o + HedgeOut.TIF] = tif
    out[o + HedgeOut.LIMIT_TICK] = lim
    state[TS.since_s] = np.nan


# ---- threshold delta hedger ---------------------------------------------------------------
# params: TH (mmsim.hedgers.params.TH_PARAMS); state: TS (TS_LAYOUT)
@declared(HEDGER_SIG)
def threshold_hedger_nb(ctx, params, state, out):
    """Threshold delta hedger (seed 001): trade ``ratio × excess`` back toward the target.

    ``excess = position − target``. Nothing happens while ``|excess| <= threshold`` or while a
    hedge order is still working. Above it the hedge size is ``floor(ratio·|excess|)`` lots; a
    size below ``min_qty`` waits until the excess has lasted ``max_wait_s`` seconds, then is sent
    anyway (at least one lot). Orders are taking orders (MARKET, or IOC priced
    ``slippage_ticks`` through the opposite touch) and pay taker fees.
    """
    out[HedgeOut.N] = 0.0
    excess = ctx[Ctx.POSITION] - ctx[Ctx.TARGET_POSITION]
    size = np.floor(params[TH.ratio] * abs(excess))
    _threshold_order_nb(ctx, state, out, excess, params[TH.threshold], size,
                        size < params[TH.min_qty], params[TH.max_wait_s], params[TH.tif],
                        params[TH.slippage_ticks], 0, ctx[Ctx.BEST_BID_TICK],
                        ctx[Ctx.BEST_ASK_TICK])
    return OK


@kernel
def units_per_lot_nb(ctx, i):
    """Units of the underlying one lot of instrument ``i`` is worth (MODELS.md §12): linear
    ``lot·multiplier``; inverse ``lot·multiplier / mid`` (coin; NaN without a mid)."""
    b = inst_ctx_base(i)
    u = ctx[b + InstCtx.LOT_SIZE] * ctx[b + InstCtx.MULTIPLIER]
    if ctx[b + InstCtx.IS_INVERSE] > 0.5:
        mid = ctx[b + InstCtx.MID_TICK] * ctx[b + InstCtx.TICK_SIZE]
        if not mid > 0.0:
            return np.nan
        return u / mid
    return u


@kernel
def delta_units_nb(ctx, i):
    """Our delta on instrument ``i`` in units of its underlying, from the position the
    strategy knows (MODELS.md §12: linear ``q·lot·multiplier``, inverse
    ``q·lot·multiplier/mid``; a long inverse contract is long the coin). 0 without a
    position, NaN when an inverse instrument has no mid."""
    q = ctx[inst_ctx_base(i) + InstCtx.POSITION]
    if q == 0.0:
        return 0.0
    return q * units_per_lot_nb(ctx, i)


# ---- cross-instrument delta hedger -------------------------------------------------------------
# params: XH (mmsim.hedgers.params.XH_PARAMS); state: TS (TS_LAYOUT)
@declared(HEDGER_SIG)
def cross_delta_hedger_nb(ctx, params, state, out):
    """Delta hedge of the quoted instrument (0) on instrument ``h = params[XH.instrument]``
    (seed 001; MODELS.md §12).

    Net delta ``Δ = Δ_0 + β·Δ_h`` in units of the underlying (:func:`delta_units_nb`, from
    the positions the strategy knows); ``target`` is the quoted instrument's target position
    (``risk.target_position_qty``) in the same units. Nothing happens while
    ``|Δ − target| <= threshold``
    or while a hedge order is working. Above it the hedge is ``ratio·|excess|/β`` units of
    instrument h's underlying, floored to its lots; one below ``min_qty`` units waits until
    the excess has lasted ``max_wait_s`` seconds, then goes anyway (at least one lot).
    Orders take liquidity (MARKET, or IOC priced ``slippage_ticks`` through instrument h's
    opposite touch) and pay h's taker fee. Coin held as margin is not counted.
    """
    out[HedgeOut.N] = 0.0
    h = int(params[XH.instrument])
    if h < 1 or h >= int(ctx[Ctx.N_INSTRUMENTS]):
        return OK
    beta = params[XH.beta]
    d0 = delta_units_nb(ctx, 0)
    dh = delta_units_nb(ctx, h)
    per_lot = units_per_lot_nb(ctx, h)
    if np.isnan(d0) or np.isnan(dh) or not per_lot > 0.0:
        return OK
    # the target: risk.target_position_qty (quoted lots) in units of the underlying
    target = 0.0
    if ctx[Ctx.TARGET_POSITION] != 0.0:
        target = ctx[Ctx.TARGET_POSITION] * units_per_lot_nb(ctx, 0)
    excess = d0 + beta * dh - target
    units = params[XH.ratio] * abs(excess) / beta
    size = np.floor(units / per_lot + 1e-9)
    b = inst_ctx_base(h)
    _threshold_order_nb(ctx, state, out, excess, params[XH.threshold], size,
                        units < params[XH.min_qty] or size < 1.0, params[XH.max_wait_s],
                        params[XH.tif], params[XH.slippage_ticks], h,
                        ctx[b + InstCtx.BEST_BID_TICK], ctx[b + InstCtx.BEST_ASK_TICK])
    return OK


@declared(HEDGER_SIG)
def no_hedger_nb(ctx, params, state, out):
    """The hedger of a run without one: never sends anything."""
    out[HedgeOut.N] = 0.0
    return OK
