"""Hedger kernels (numba, signature :data:`mmsim.contracts.HEDGER_SIG`).

The ``params`` and ``state`` layouts are declared once in :mod:`mmsim.hedgers.params` (the
registry's checks, defaults and parameter vector derive from the same declaration); the
kernels index them by name (``params[TH.threshold]``, ``state[TS.since_s]``), constants numba
folds at compile time. Every kernel returns :data:`mmsim.kernels.OK`; none declares an error
code.
"""

from __future__ import annotations

import numba as nb
import numpy as np

import mmsim._jitcache  # noqa: F401  (before any cached kernel)
from mmsim.contracts import HEDGER_SIG, Ctx, HedgeOut
from mmsim.enums import TimeInForce
from mmsim.hedgers.params import TH, TS
from mmsim.kernels import OK

__all__ = ["TH", "TS", "no_hedger_nb", "threshold_hedger_nb"]


# ---- threshold delta hedger ---------------------------------------------------------------
# params: TH (mmsim.hedgers.params.TH_PARAMS); state: TS (TS_LAYOUT)
@nb.njit(HEDGER_SIG, cache=True)
def threshold_hedger_nb(ctx, params, state, out):
    """Threshold delta hedger (seed 001): trade ``ratio × excess`` back toward the target.

    ``excess = position − target``. Nothing happens while ``|excess| <= threshold`` or while a
    hedge order is still working. Above it the hedge size is ``floor(ratio·|excess|)`` lots; a
    size below ``min_qty`` waits until the excess has lasted ``max_wait_s`` seconds, then is sent
    anyway (at least one lot). Orders are taking orders (MARKET, or IOC priced
    ``slippage_ticks`` through the opposite touch) and pay taker fees.
    """
    out[HedgeOut.N] = 0.0
    now = ctx[Ctx.TIME_S]
    excess = ctx[Ctx.POSITION] - ctx[Ctx.TARGET_POSITION]
    if abs(excess) <= params[TH.threshold]:
        state[TS.since_s] = np.nan
        return OK
    if np.isnan(state[TS.since_s]):
        state[TS.since_s] = now
    if ctx[Ctx.N_PENDING_HEDGE] > 0:
        return OK
    size = np.floor(params[TH.ratio] * abs(excess))
    if size < params[TH.min_qty]:
        if now - state[TS.since_s] < params[TH.max_wait_s]:
            return OK
        size = max(size, 1.0)
    side = -1.0 if excess > 0 else 1.0
    tif = params[TH.tif]
    lim = np.nan
    if tif == TimeInForce.IOC:
        if side > 0:
            lim = ctx[Ctx.BEST_ASK_TICK] + params[TH.slippage_ticks]
        else:
            lim = ctx[Ctx.BEST_BID_TICK] - params[TH.slippage_ticks]
        if np.isnan(lim):
            return OK
    o = HedgeOut.ORDER0
    out[HedgeOut.N] = 1.0
    out[o + HedgeOut.INSTRUMENT] = 0.0  # the quoted instrument
    out[o + HedgeOut.SIDE] = side
    out[o + HedgeOut.QTY] = size
    out[o + HedgeOut.TIF] = tif
    out[o + HedgeOut.LIMIT_TICK] = lim
    state[TS.since_s] = np.nan
    return OK


@nb.njit(HEDGER_SIG, cache=True)
def no_hedger_nb(ctx, params, state, out):
    """The hedger of a run without one: never sends anything."""
    out[HedgeOut.N] = 0.0
    return OK
