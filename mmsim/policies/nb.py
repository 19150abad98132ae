"""Quoting policy kernels (numba, signature :data:`mmsim.engine.sigs.POLICY_SIG`).

Each kernel reads the context ``ctx`` (:data:`mmsim.engine.sigs.Ctx`: prices in ticks, sizes in
lots, time in seconds), its ``params`` (order given by :mod:`mmsim.policies.registry`) and its
own ``state``, and writes target quotes into ``out`` (:data:`mmsim.engine.sigs.Quote`). Quotes
are kept from crossing the local touch (they are meant to rest: post-only); a side with no
reference price is not quoted. Inventory ``q`` is in order-size units: position / order size.
"""

from __future__ import annotations

import numba as nb
import numpy as np

import mmsim._jitcache  # noqa: F401  (before any cached kernel)
from mmsim.engine.sigs import POLICY_SIG, Ctx, Quote

# ---- shared helpers ------------------------------------------------------------------------


@nb.njit(cache=True)
def reference_price_tick(ctx, ref):
    """Reference price in ticks: 0 = mid, 1 = size-weighted mid (MODELS.md §4)."""
    if ref == 1:
        return ctx[Ctx.WMID_TICK]
    return ctx[Ctx.MID_TICK]


@nb.njit(cache=True)
def write_two_sided(ctx, out, bid_tick, ask_tick, bid_qty, ask_qty):
    """Write one bid and one ask level, floored/ceiled to ticks and kept off the touch."""
    bb = ctx[Ctx.BEST_BID_TICK]
    ba = ctx[Ctx.BEST_ASK_TICK]
    if bb >= ba:  # a crossed or locked book (e.g. a pre-open auction): stay out
        return
    b = np.floor(bid_tick + 1e-9)
    a = np.ceil(ask_tick - 1e-9)
    if not np.isnan(ba) and b > ba - 1.0:
        b = ba - 1.0
    if not np.isnan(bb) and a < bb + 1.0:
        a = bb + 1.0
    if bid_qty >= 1.0 and not np.isnan(b):
        out[Quote.N_BID] = 1.0
        out[Quote.BID0] = b
        out[Quote.BID0 + 1] = bid_qty
    if ask_qty >= 1.0 and not np.isnan(a):
        out[Quote.N_ASK] = 1.0
        out[Quote.ASK0] = a
        out[Quote.ASK0 + 1] = ask_qty


# ---- fixed spread with inventory skew --------------------------------------------------------
# params: spread_bps, skew_px (price per order-size unit of inventory), order_qty (lots),
#         ref (0 mid, 1 size-weighted mid)
FS_SPREAD_BPS = 0
FS_SKEW_PX = 1
FS_ORDER_QTY = 2
FS_REF = 3


@nb.njit(POLICY_SIG, cache=True)
def fixed_spread_nb(ctx, params, state, out):
    """Fixed spread in bps around the reference price with linear inventory skew.

    ``bid = m·(1 − h) − skew·q``, ``ask = m·(1 + h) − skew·q``, ``h = spread_bps/2/10⁴``
    (MODELS.md §4, seed 003).
    """
    m = reference_price_tick(ctx, int(params[FS_REF]))
    if np.isnan(m):
        return 0
    size = params[FS_ORDER_QTY]
    q = ctx[Ctx.POSITION] / size
    h = params[FS_SPREAD_BPS] * 0.5e-4
    skew_tick = params[FS_SKEW_PX] / ctx[Ctx.TICK_SIZE]
    bid = m * (1.0 - h) - skew_tick * q
    ask = m * (1.0 + h) - skew_tick * q
    write_two_sided(ctx, out, bid, ask, size, size)
    return 0


# ---- Avellaneda–Stoikov (2008) ----------------------------------------------------------------
# params: gamma (1/(price·unit)), k (1/price), sigma_px (price/sqrt(s); <= 0: online estimate),
#         order_qty (lots), tau_s (time scale when there is no horizon), ref
AS_GAMMA = 0
AS_K = 1
AS_SIGMA = 2
AS_ORDER_QTY = 3
AS_TAU_S = 4
AS_REF = 5


@nb.njit(POLICY_SIG, cache=True)
def avellaneda_stoikov_nb(ctx, params, state, out):
    """Avellaneda & Stoikov (2008), Quant. Finance 8(3), eqs. (29)–(30) (MODELS.md §1).

    Reservation price ``r = s − q·γ·σ²·(T − t)``; total spread
    ``δᵃ + δᵇ = γσ²(T − t) + (2/γ)·ln(1 + γ/k)``; ``bid = r − spread/2``, ``ask = r + spread/2``.
    Units: price (quote currency) for s, σ (per √second), 1/k; q in order-size units; T − t in
    seconds: the context's time to horizon, or ``tau_s`` when the run has no horizon.
    """
    m = reference_price_tick(ctx, int(params[AS_REF]))
    if np.isnan(m):
        return 0
    tick = ctx[Ctx.TICK_SIZE]
    gamma = params[AS_GAMMA]
    k = params[AS_K]
    sigma = params[AS_SIGMA]
    if sigma <= 0.0:
        sigma = ctx[Ctx.VOL_TICK] * tick
    tau = ctx[Ctx.TIME_TO_HORIZON_S]
    if not np.isfinite(tau):
        tau = params[AS_TAU_S]
    size = params[AS_ORDER_QTY]
    q = ctx[Ctx.POSITION] / size
    s = m * tick
    var_tau = sigma * sigma * tau
    r = s - q * gamma * var_tau
    spread = gamma * var_tau + (2.0 / gamma) * np.log(1.0 + gamma / k)
    write_two_sided(ctx, out, (r - 0.5 * spread) / tick, (r + 0.5 * spread) / tick, size, size)
    return 0


# ---- static quotes (tests, what-if studies) ------------------------------------------------
# params: bid_tick, bid_qty, ask_tick, ask_qty (qty 0 = that side not quoted)
ST_BID_TICK = 0
ST_BID_QTY = 1
ST_ASK_TICK = 2
ST_ASK_QTY = 3


@nb.njit(POLICY_SIG, cache=True)
def static_quotes_nb(ctx, params, state, out):
    """Quote fixed absolute prices (ticks) and sizes (lots), whatever the book does.

    Not kept off the touch: a crossing quote is the exchange's to reject (post-only) or fill.
    """
    if params[ST_BID_QTY] >= 1.0:
        out[Quote.N_BID] = 1.0
        out[Quote.BID0] = params[ST_BID_TICK]
        out[Quote.BID0 + 1] = params[ST_BID_QTY]
    if params[ST_ASK_QTY] >= 1.0:
        out[Quote.N_ASK] = 1.0
        out[Quote.ASK0] = params[ST_ASK_TICK]
        out[Quote.ASK0 + 1] = params[ST_ASK_QTY]
    return 0


# ---- symmetric quotes around the mid (AS 2008 §3.3 benchmark) -----------------------------
# params: half_spread_px (price), order_qty (lots), ref (0 mid, 1 size-weighted mid)
SY_HALF_SPREAD_PX = 0
SY_ORDER_QTY = 1
SY_REF = 2


@nb.njit(POLICY_SIG, cache=True)
def symmetric_nb(ctx, params, state, out):
    """Quote ``s ± half_spread``, whatever the inventory (Avellaneda & Stoikov 2008, §3.3).

    The paper's "symmetric strategy": the same average spread as the inventory strategy,
    centred on the mid ``s`` instead of the reservation price. ``half_spread_px`` is in price
    units (quote currency), converted to ticks with ``ctx[TICK_SIZE]``.
    """
    m = reference_price_tick(ctx, int(params[SY_REF]))
    if np.isnan(m):
        return 0
    h = params[SY_HALF_SPREAD_PX] / ctx[Ctx.TICK_SIZE]
    size = params[SY_ORDER_QTY]
    write_two_sided(ctx, out, m - h, m + h, size, size)
    return 0


# ---- Guéant–Lehalle–Fernandez-Tapia (2013) closed form -----------------------------------
# params: gamma (1/(price·unit)), k (1/price), A (1/s), sigma_px (price/sqrt(s); <= 0: online
#         estimate), order_qty (lots), ref
GL_GAMMA = 0
GL_K = 1
GL_A = 2
GL_SIGMA = 3
GL_ORDER_QTY = 4
GL_REF = 5


@nb.njit(POLICY_SIG, cache=True)
def glft_nb(ctx, params, state, out):
    """Guéant–Lehalle–Fernandez-Tapia (2013) / Guéant (2017) asymptotic quotes (MODELS.md §2).

    With ξ = γ and Δ the order size in instrument units (``order_qty · LOT_SIZE``)::

        c1 = (1/(ξΔ))·ln(1 + ξΔ/k)
        c2 = sqrt( γ/(2·A·Δ·k) · (1 + ξΔ/k)^(k/(ξΔ) + 1) )
        half_spread = c1 + (Δ/2)·σ·c2,   skew = σ·c2
        bid = s − half_spread − skew·q,   ask = s + half_spread − skew·q

    Units: s, σ (per √second) and 1/k in price (quote currency); A per second; γ per
    (price·unit); q is the position in instrument units (``POSITION · LOT_SIZE``), so
    ``skew·q`` is a price. With Δ = 1 unit (the paper's set-up) q in units of Δ and in
    instrument units coincide. Time-independent: no horizon is used.
    """
    m = reference_price_tick(ctx, int(params[GL_REF]))
    if np.isnan(m):
        return 0
    tick = ctx[Ctx.TICK_SIZE]
    gamma = params[GL_GAMMA]
    k = params[GL_K]
    a_int = params[GL_A]
    sigma = params[GL_SIGMA]
    if sigma <= 0.0:
        sigma = ctx[Ctx.VOL_TICK] * tick
    size = params[GL_ORDER_QTY]
    lot = ctx[Ctx.LOT_SIZE]
    delta = size * lot
    xd = gamma * delta
    c1 = np.log(1.0 + xd / k) / xd
    c2 = np.sqrt(gamma / (2.0 * a_int * delta * k) * (1.0 + xd / k) ** (k / xd + 1.0))
    half = c1 + 0.5 * delta * sigma * c2
    skew = sigma * c2
    q = ctx[Ctx.POSITION] * lot
    s = m * tick
    bid = s - half - skew * q
    ask = s + half - skew * q
    write_two_sided(ctx, out, bid / tick, ask / tick, size, size)
    return 0
