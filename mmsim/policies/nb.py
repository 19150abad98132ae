"""Quoting policy kernels (numba, signature :data:`mmsim.contracts.POLICY_SIG`).

Each kernel reads the context ``ctx`` (:data:`mmsim.contracts.Ctx`: prices in ticks, sizes in
lots, time in seconds), its ``params`` (order given by :mod:`mmsim.policies.registry`) and its
own ``state``, and writes target quotes into ``out`` (:data:`mmsim.contracts.Quote`). Quotes
are kept from crossing the local touch (they are meant to rest: post-only); a side with no
reference price is not quoted. Inventory ``q`` is in order-size units: position / order size.
"""

from __future__ import annotations

import numba as nb
import numpy as np

import mmsim._jitcache  # noqa: F401  (before any cached kernel)
from mmsim.contracts import POLICY_SIG, Ctx, Quote

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


@nb.njit(cache=True)
def glft_half_spread_skew(gamma, k, a_int, sigma, delta):
    """GLFT asymptotic quotes (MODELS.md §2; Guéant 2017), with ξ = γ and order size Δ::

        c1 = (1/(ξΔ))·ln(1 + ξΔ/k),  c2 = sqrt(γ/(2·A·Δ·k)·(1 + ξΔ/k)^(k/(ξΔ) + 1))

    Returns ``(half_spread, skew) = (c1 + (Δ/2)·σ·c2, σ·c2)`` in the units of σ and 1/k.
    """
    xd = gamma * delta
    c1 = np.log(1.0 + xd / k) / xd
    c2 = np.sqrt(gamma / (2.0 * a_int * delta * k) * (1.0 + xd / k) ** (k / xd + 1.0))
    return c1 + 0.5 * delta * sigma * c2, sigma * c2


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
    half, skew = glft_half_spread_skew(gamma, k, a_int, sigma, delta)
    q = ctx[Ctx.POSITION] * lot
    s = m * tick
    bid = s - half - skew * q
    ask = s + half - skew * q
    write_two_sided(ctx, out, bid / tick, ask / tick, size, size)
    return 0


# ---- GLFT with online calibration of A, k and sigma (MODELS.md §2) ------------------------
# params (all prices in ticks): gamma (per tick per order-size unit), order_qty (lots),
#   window_s (rolling window), grid_n (depths 1..grid_n ticks), refit_every (clock steps),
#   A_init (1/s), k_init (1/tick), sigma_init (ticks/sqrt(s)), min_intervals
GC_GAMMA = 0
GC_ORDER_QTY = 1
GC_WINDOW_S = 2
GC_GRID_N = 3
GC_REFIT = 4
GC_A0 = 5
GC_K0 = 6
GC_SIGMA0 = 7
GC_MIN_N = 8
# state: scalars, then a ring of intervals (dt, ask depth, bid depth, mid change)
GS_LAST_MID = 0
GS_LAST_T = 1
GS_N = 2  # intervals in the ring
GS_HEAD = 3  # next write position
GS_A = 4
GS_K = 5
GS_SIGMA = 6
GS_SINCE_FIT = 7
GS_NFIT = 8
GS_RING0 = 16
GC_RING_CAP = 12_000  # intervals kept (20 min at 100 ms)
GC_STATE_SIZE = GS_RING0 + 4 * GC_RING_CAP


@nb.njit(cache=True)
def _glft_fit(params, state):
    """Refit A, k (ln λ(δ) = ln A − k·δ, least squares) and σ over the window."""
    n = int(state[GS_N])
    cap = GC_RING_CAP
    head = int(state[GS_HEAD])
    window = params[GC_WINDOW_S]
    grid_n = int(params[GC_GRID_N])
    # walk back from the newest interval until the window is covered
    total_t = 0.0
    m = 0
    sum_d = 0.0
    sum_d2 = 0.0
    hits = np.zeros(grid_n)
    for i in range(n):
        j = (head - 1 - i) % cap
        base = GS_RING0 + 4 * j
        dt = state[base]
        if total_t + dt > window and m > 0:
            break
        total_t += dt
        m += 1
        dm = state[base + 3]
        sum_d += dm
        sum_d2 += dm * dm
        da = state[base + 1]
        db = state[base + 2]
        for g in range(grid_n):
            delta = g + 1.0
            if da >= delta:
                hits[g] += 1.0
            if db >= delta:
                hits[g] += 1.0
    if m < params[GC_MIN_N] or total_t <= 0.0:
        return
    # sigma: std of mid changes per interval, scaled to per-sqrt(second)
    mean = sum_d / m
    var = sum_d2 / m - mean * mean
    if var > 0.0:
        state[GS_SIGMA] = np.sqrt(var * m / total_t)
    # lambda(delta) per side and second; fit on depths that were reached
    sx = 0.0
    sy = 0.0
    sxx = 0.0
    sxy = 0.0
    cnt = 0
    for g in range(grid_n):
        if hits[g] > 0.0:
            x = g + 1.0
            y = np.log(hits[g] / (2.0 * total_t))
            sx += x
            sy += y
            sxx += x * x
            sxy += x * y
            cnt += 1
    if cnt >= 2:
        den = cnt * sxx - sx * sx
        if den > 0.0:
            slope = (cnt * sxy - sx * sy) / den
            icpt = (sy - slope * sx) / cnt
            if slope < 0.0:
                state[GS_K] = -slope
                state[GS_A] = np.exp(icpt)
                state[GS_NFIT] += 1.0


@nb.njit(POLICY_SIG, cache=True)
def glft_calibrated_nb(ctx, params, state, out):
    """GLFT quotes (Guéant–Lehalle–Fernandez-Tapia 2013; Guéant 2017) with A, k, σ calibrated
    online from the feed (MODELS.md §2), in ticks.

    Each clock step records how deep trades reached from the previous mid on each side (the
    context's ``TRADE_HI_TICK``/``TRADE_LO_TICK``) and the mid change. Over a rolling
    ``window_s`` a quote at depth δ ∈ {1 … grid_n} ticks would have been hit ``hits(δ)`` times:
    ``λ(δ) = hits(δ)/(2·window)`` per side and second; ``ln λ(δ) = ln A − k·δ`` is fitted by
    least squares every ``refit_every`` steps; σ is the standard deviation of the mid changes
    scaled to per-√second. Until the first fit the ``*_init`` values are used. Quotes (Δ = one
    order, q = position / order size, all in ticks, γ per tick per order)::

        c1 = (1/γ)·ln(1 + γ/k),  c2 = sqrt(γ/(2·A·k)·(1 + γ/k)^(k/γ + 1))
        bid = mid − (c1 + σ·c2/2) − σ·c2·q,   ask = mid + (c1 + σ·c2/2) − σ·c2·q
    """
    mid = ctx[Ctx.MID_TICK]
    now = ctx[Ctx.TIME_S]
    if state[GS_A] <= 0.0:
        state[GS_A] = params[GC_A0]
        state[GS_K] = params[GC_K0]
        state[GS_SIGMA] = params[GC_SIGMA0]
        state[GS_LAST_MID] = np.nan
    if ctx[Ctx.REASON] == 0.0 and not np.isnan(mid):
        last = state[GS_LAST_MID]
        if not np.isnan(last):
            dt = now - state[GS_LAST_T]
            if dt > 0.0:
                hi = ctx[Ctx.TRADE_HI_TICK]
                lo = ctx[Ctx.TRADE_LO_TICK]
                j = int(state[GS_HEAD])
                base = GS_RING0 + 4 * j
                state[base] = dt
                state[base + 1] = hi - last if not np.isnan(hi) else -1.0
                state[base + 2] = last - lo if not np.isnan(lo) else -1.0
                state[base + 3] = mid - last
                state[GS_HEAD] = (j + 1) % GC_RING_CAP
                if state[GS_N] < GC_RING_CAP:
                    state[GS_N] += 1.0
                state[GS_SINCE_FIT] += 1.0
                if state[GS_SINCE_FIT] >= params[GC_REFIT]:
                    state[GS_SINCE_FIT] = 0.0
                    _glft_fit(params, state)
        state[GS_LAST_MID] = mid
        state[GS_LAST_T] = now
    if np.isnan(mid):
        return 0
    gamma = params[GC_GAMMA]
    a_int = state[GS_A]
    k = state[GS_K]
    sigma = state[GS_SIGMA]
    size = params[GC_ORDER_QTY]
    q = ctx[Ctx.POSITION] / size
    half, skew = glft_half_spread_skew(gamma, k, a_int, sigma, 1.0)
    write_two_sided(ctx, out, mid - half - skew * q, mid + half - skew * q, size, size)
    return 0


# ---- fixed tick offsets around the mid, kept behind the touch --------------------------------
# params: offset_ticks, skew_ticks (per order of inventory), order_qty (lots)
OT_OFFSET = 0
OT_SKEW = 1
OT_ORDER_QTY = 2


@nb.njit(POLICY_SIG, cache=True)
def offset_ticks_nb(ctx, params, state, out):
    """Quote ``round(mid ∓ offset − skew·q)`` ticks, q = position / order size, with the bid
    no higher than the best bid and the ask no lower than the best ask (the parity policy of
    ``benchmarks/peer_hftbacktest.py``). Rounding is half-to-even (``np.round``)."""
    mid = ctx[Ctx.MID_TICK]
    bb = ctx[Ctx.BEST_BID_TICK]
    ba = ctx[Ctx.BEST_ASK_TICK]
    if np.isnan(mid) or bb >= ba:
        return 0
    size = params[OT_ORDER_QTY]
    q = ctx[Ctx.POSITION] / size
    shift = params[OT_SKEW] * q
    bid = min(np.round(mid - params[OT_OFFSET] - shift), bb)
    ask = max(np.round(mid + params[OT_OFFSET] - shift), ba)
    out[Quote.N_BID] = 1.0
    out[Quote.BID0] = bid
    out[Quote.BID0 + 1] = size
    out[Quote.N_ASK] = 1.0
    out[Quote.ASK0] = ask
    out[Quote.ASK0 + 1] = size
    return 0
