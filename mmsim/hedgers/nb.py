"""Hedger kernels (numba, signature :data:`mmsim.contracts.HEDGER_SIG`)."""

from __future__ import annotations

import numba as nb
import numpy as np

import mmsim._jitcache  # noqa: F401  (before any cached kernel)
from mmsim.contracts import HEDGER_SIG, Ctx
from mmsim.enums import TimeInForce

# params of the threshold delta hedger
TH_THRESHOLD = 0  # lots: hedge once |position - target| exceeds this
TH_RATIO = 1  # share of the excess to hedge
TH_MIN_QTY = 2  # lots: smaller hedges wait ...
TH_MAX_WAIT_S = 3  # ... until the excess has lasted this long, then go anyway
TH_TIF = 4  # TimeInForce.MARKET or TimeInForce.IOC
TH_SLIPPAGE_TICKS = 5  # IOC limit: this many ticks through the opposite touch
# state
TS_SINCE_S = 0  # local time the current excess began (NaN = none)


@nb.njit(HEDGER_SIG, cache=True)
def threshold_hedger_nb(ctx, params, state, out):
    """Threshold delta hedger (seed 001): trade ``ratio × excess`` back toward the target.

    ``excess = position − target``. Nothing happens while ``|excess| <= threshold`` or while a
    hedge order is still working. Above it the hedge size is ``floor(ratio·|excess|)`` lots; a
    size below ``min_qty`` waits until the excess has lasted ``max_wait_s`` seconds, then is sent
    anyway (at least one lot). Orders are taking orders (MARKET, or IOC priced
    ``slippage_ticks`` through the opposite touch) and pay taker fees.
    """
    out[0] = 0.0
    now = ctx[Ctx.TIME_S]
    excess = ctx[Ctx.POSITION] - ctx[Ctx.TARGET_POSITION]
    if abs(excess) <= params[TH_THRESHOLD]:
        state[TS_SINCE_S] = np.nan
        return 0
    if np.isnan(state[TS_SINCE_S]):
        state[TS_SINCE_S] = now
    if ctx[Ctx.N_PENDING_HEDGE] > 0:
        return 0
    size = np.floor(params[TH_RATIO] * abs(excess))
    if size < params[TH_MIN_QTY]:
        if now - state[TS_SINCE_S] < params[TH_MAX_WAIT_S]:
            return 0
        size = max(size, 1.0)
    side = -1.0 if excess > 0 else 1.0
    tif = params[TH_TIF]
    lim = np.nan
    if tif == TimeInForce.IOC:
        if side > 0:
            lim = ctx[Ctx.BEST_ASK_TICK] + params[TH_SLIPPAGE_TICKS]
        else:
            lim = ctx[Ctx.BEST_BID_TICK] - params[TH_SLIPPAGE_TICKS]
        if np.isnan(lim):
            return 0
    out[0] = 1.0
    out[1] = 0.0  # instrument index: the quoted instrument
    out[2] = side
    out[3] = size
    out[4] = tif
    out[5] = lim
    state[TS_SINCE_S] = np.nan
    return 0


@nb.njit(HEDGER_SIG, cache=True)
def no_hedger_nb(ctx, params, state, out):
    """The hedger of a run without one: never sends anything."""
    out[0] = 0.0
    return 0
