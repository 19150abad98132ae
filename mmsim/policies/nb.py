"""Quoting policy kernels (numba, signature :data:`mmsim.contracts.POLICY_SIG`).

Each kernel reads the context ``ctx`` (:data:`mmsim.contracts.Ctx`: prices in ticks, sizes in
lots, time in seconds), its ``params`` and its own ``state``, and writes target quotes into
``out`` (:data:`mmsim.contracts.Quote`). The ``params`` and ``state`` layouts are declared once
in :mod:`mmsim.policies.params` (the registry's checks, defaults and parameter vector derive
from the same declaration); the kernels index them by name (``params[AS.gamma]``), constants
numba folds at compile time. Quotes are kept from crossing the local touch (they are meant to
rest: post-only); a side with no reference price is not quoted. Inventory ``q`` is in
order-size units: position / order size. Every kernel returns :data:`mmsim.kernels.OK`; none
declares an error code.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from mmsim._jitcache import declared  # (before any cached kernel)
from mmsim.contracts import POLICY_SIG, Ctx, Quote
from mmsim.kernels import OK
from mmsim.policies.params import (
    AS,
    FS,
    GC,
    GC_RING_CAP,
    GC_STATE_SIZE,
    GL,
    GR,
    GR_SIZE,
    GS,
    NO_TRADE_DEPTH,
    OT,
    ST,
    SY,
    Ref,
)
from mmsim.signals.spec import SignalCtx

__all__ = ["AS", "FS", "GC", "GC_RING_CAP", "GC_STATE_SIZE", "GL", "GR", "GS", "OT", "Ref",
           "ST", "SY", "avellaneda_stoikov_nb", "fixed_spread_nb", "glft_calibrated_nb",
           "glft_nb", "offset_ticks_nb", "static_quotes_nb", "symmetric_nb"]

# ---- shared helpers ------------------------------------------------------------------------


@nb.njit(cache=True)
def volatility_px(ctx, sigma_px):
    """σ of the mid in price per √second: ``sigma_px``, or the engine's online estimate
    (``ctx[VOL_TICK]`` ticks/√s times the tick size) when it is 0."""
    if sigma_px <= 0.0:
        return ctx[Ctx.VOL_TICK] * ctx[Ctx.TICK_SIZE]
    return sigma_px


@nb.njit(cache=True)
def time_left_s(ctx, tau_s):
    """T − t in seconds: the context's time to horizon, or ``tau_s`` when the run has none."""
    tau = ctx[Ctx.TIME_TO_HORIZON_S]
    return tau if np.isfinite(tau) else tau_s


@nb.njit(cache=True)
def reference_price_tick(ctx, ref):
    """Reference price in ticks: ``ref`` is :data:`~mmsim.policies.params.Ref` ``MID`` (the
    mid), ``WMID`` (the size-weighted mid, MODELS.md §4) or ``MICRO`` (Stoikov's micro-price,
    MODELS.md §11, from the signals layer); NaN if the book has no mid (or, for ``MICRO``,
    where the micro-price table has no value)."""
    if ref == Ref.WMID:
        return ctx[Ctx.WMID_TICK]
    if ref == Ref.MICRO:
        return ctx[Ctx.SIGNALS0 + SignalCtx.MICRO_TICK]
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
# params: FS (mmsim.policies.params.FS_PARAMS)


@declared(POLICY_SIG)
def fixed_spread_nb(ctx, params, state, out):
    """Fixed spread in bps around the reference price with linear inventory skew.

    ``bid = m·(1 − h) − skew·q``, ``ask = m·(1 + h) − skew·q``, ``h = spread_bps/2/10⁴``
    (MODELS.md §4, seed 003).
    """
    m = reference_price_tick(ctx, int(params[FS.ref]))
    if np.isnan(m):
        return OK
    size = params[FS.order_qty]
    q = ctx[Ctx.POSITION] / size
    h = params[FS.spread_bps] * 0.5e-4
    skew_tick = params[FS.skew_px] / ctx[Ctx.TICK_SIZE]
    bid = m * (1.0 - h) - skew_tick * q
    ask = m * (1.0 + h) - skew_tick * q
    write_two_sided(ctx, out, bid, ask, size, size)
    return OK


# ---- Avellaneda–Stoikov (2008) ----------------------------------------------------------------
# params: AS (mmsim.policies.params.AS_PARAMS)


@declared(POLICY_SIG)
def avellaneda_stoikov_nb(ctx, params, state, out):
    """Avellaneda & Stoikov (2008), Quant. Finance 8(3), eqs. (29)–(30) (MODELS.md §1).

    Reservation price ``r = s − q·γ·σ²·(T − t)``; total spread
    ``δᵃ + δᵇ = γσ²(T − t) + (2/γ)·ln(1 + γ/k)``; ``bid = r − spread/2``, ``ask = r + spread/2``.
    Units: price (quote currency) for s, σ (per √second), 1/k; q in order-size units; T − t in
    seconds: the context's time to horizon, or ``tau_s`` when the run has no horizon.
    """
    m = reference_price_tick(ctx, int(params[AS.ref]))
    if np.isnan(m):
        return OK
    tick = ctx[Ctx.TICK_SIZE]
    gamma = params[AS.gamma]
    k = params[AS.k]
    sigma = volatility_px(ctx, params[AS.sigma_px])
    tau = time_left_s(ctx, params[AS.tau_s])
    size = params[AS.order_qty]
    q = ctx[Ctx.POSITION] / size
    s = m * tick
    var_tau = sigma * sigma * tau
    r = s - q * gamma * var_tau
    spread = gamma * var_tau + (2.0 / gamma) * np.log(1.0 + gamma / k)
    write_two_sided(ctx, out, (r - 0.5 * spread) / tick, (r + 0.5 * spread) / tick, size, size)
    return OK


# ---- static quotes (tests, what-if studies) ------------------------------------------------
# params: ST (mmsim.policies.params.ST_PARAMS)


@declared(POLICY_SIG)
def static_quotes_nb(ctx, params, state, out):
    """Quote fixed absolute prices (ticks) and sizes (lots), whatever the book does.

    Not kept off the touch: a crossing quote is the exchange's to reject (post-only) or fill.
    """
    if params[ST.bid_qty] >= 1.0:
        out[Quote.N_BID] = 1.0
        out[Quote.BID0] = params[ST.bid_tick]
        out[Quote.BID0 + 1] = params[ST.bid_qty]
    if params[ST.ask_qty] >= 1.0:
        out[Quote.N_ASK] = 1.0
        out[Quote.ASK0] = params[ST.ask_tick]
        out[Quote.ASK0 + 1] = params[ST.ask_qty]
    return OK


# ---- symmetric quotes around the mid (AS 2008 §3.3 benchmark) -----------------------------
# params: SY (mmsim.policies.params.SY_PARAMS)


@declared(POLICY_SIG)
def symmetric_nb(ctx, params, state, out):
    """Quote ``s ± half_spread``, whatever the inventory (Avellaneda & Stoikov 2008, §3.3).

    The paper's "symmetric strategy": the same average spread as the inventory strategy,
    centred on the mid ``s`` instead of the reservation price. ``half_spread_px`` is in price
    units (quote currency), converted to ticks with ``ctx[TICK_SIZE]``.
    """
    m = reference_price_tick(ctx, int(params[SY.ref]))
    if np.isnan(m):
        return OK
    h = params[SY.half_spread_px] / ctx[Ctx.TICK_SIZE]
    size = params[SY.order_qty]
    write_two_sided(ctx, out, m - h, m + h, size, size)
    return OK


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
# params: GL (mmsim.policies.params.GL_PARAMS)


@declared(POLICY_SIG)
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
    m = reference_price_tick(ctx, int(params[GL.ref]))
    if np.isnan(m):
        return OK
    tick = ctx[Ctx.TICK_SIZE]
    gamma = params[GL.gamma]
    k = params[GL.k]
    a_int = params[GL.A]
    sigma = volatility_px(ctx, params[GL.sigma_px])
    size = params[GL.order_qty]
    lot = ctx[Ctx.LOT_SIZE]
    delta = size * lot
    half, skew = glft_half_spread_skew(gamma, k, a_int, sigma, delta)
    q = ctx[Ctx.POSITION] * lot
    s = m * tick
    bid = s - half - skew * q
    ask = s + half - skew * q
    write_two_sided(ctx, out, bid / tick, ask / tick, size, size)
    return OK


# ---- GLFT with online calibration of A, k and sigma (MODELS.md §2) ------------------------
# params: GC (mmsim.policies.params.GC_PARAMS); state: GS (GS_LAYOUT), scalars then a ring of
# GC_RING_CAP interval records of GR_SIZE slots (GR: dt, ask depth, bid depth, mid change)


@nb.njit(cache=True)
def _glft_fit(params, state):
    """Refit A, k (ln λ(δ) = ln A − k·δ, least squares) and σ over the window."""
    n = int(state[GS.n])
    cap = GC_RING_CAP
    head = int(state[GS.head])
    window = params[GC.window_s]
    grid_n = int(params[GC.grid_n])
    # walk back from the newest interval until the window is covered
    total_t = 0.0
    m = 0
    sum_d = 0.0
    sum_d2 = 0.0
    hits = np.zeros(grid_n)
    for i in range(n):
        j = (head - 1 - i) % cap
        base = GS.ring + GR_SIZE * j
        dt = state[base + GR.dt]
        if total_t + dt > window and m > 0:
            break
        total_t += dt
        m += 1
        dm = state[base + GR.dmid]
        sum_d += dm
        sum_d2 += dm * dm
        da = state[base + GR.ask_depth]
        db = state[base + GR.bid_depth]
        for g in range(grid_n):
            delta = g + 1.0
            if da >= delta:
                hits[g] += 1.0
            if db >= delta:
                hits[g] += 1.0
    if m < params[GC.min_intervals] or total_t <= 0.0:
        return
    # sigma: std of mid changes per interval, scaled to per-sqrt(second)
    mean = sum_d / m
    var = sum_d2 / m - mean * mean
    if var > 0.0:
        state[GS.sigma] = np.sqrt(var * m / total_t)
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
                state[GS.k] = -slope
                state[GS.A] = np.exp(icpt)
                state[GS.nfit] += 1.0


@declared(POLICY_SIG)
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
    if state[GS.A] <= 0.0:
        state[GS.A] = params[GC.A_init]
        state[GS.k] = params[GC.k_init]
        state[GS.sigma] = params[GC.sigma_init]
        state[GS.last_mid] = np.nan
    if ctx[Ctx.REASON] == 0.0 and not np.isnan(mid):
        last = state[GS.last_mid]
        if not np.isnan(last):
            dt = now - state[GS.last_t]
            if dt > 0.0:
                hi = ctx[Ctx.TRADE_HI_TICK]
                lo = ctx[Ctx.TRADE_LO_TICK]
                j = int(state[GS.head])
                base = GS.ring + GR_SIZE * j
                state[base + GR.dt] = dt
                state[base + GR.ask_depth] = hi - last if not np.isnan(hi) else NO_TRADE_DEPTH
                state[base + GR.bid_depth] = last - lo if not np.isnan(lo) else NO_TRADE_DEPTH
                state[base + GR.dmid] = mid - last
                state[GS.head] = (j + 1) % GC_RING_CAP
                if state[GS.n] < GC_RING_CAP:
                    state[GS.n] += 1.0
                state[GS.since_fit] += 1.0
                if state[GS.since_fit] >= params[GC.refit_every]:
                    state[GS.since_fit] = 0.0
                    _glft_fit(params, state)
        state[GS.last_mid] = mid
        state[GS.last_t] = now
    if np.isnan(mid):
        return OK
    gamma = params[GC.gamma]
    a_int = state[GS.A]
    k = state[GS.k]
    sigma = state[GS.sigma]
    size = params[GC.order_qty]
    q = ctx[Ctx.POSITION] / size
    half, skew = glft_half_spread_skew(gamma, k, a_int, sigma, 1.0)
    write_two_sided(ctx, out, mid - half - skew * q, mid + half - skew * q, size, size)
    return OK


# ---- fixed tick offsets around the mid, kept behind the touch --------------------------------
# params: OT (mmsim.policies.params.OT_PARAMS)


@declared(POLICY_SIG)
def offset_ticks_nb(ctx, params, state, out):
    """Quote ``round(mid ∓ offset − skew·q)`` ticks, q = position / order size, with the bid
    no higher than the best bid and the ask no lower than the best ask (the parity policy of
    ``benchmarks/peer_hftbacktest.py``). Rounding is half-to-even (``np.round``)."""
    mid = ctx[Ctx.MID_TICK]
    bb = ctx[Ctx.BEST_BID_TICK]
    ba = ctx[Ctx.BEST_ASK_TICK]
    if np.isnan(mid) or bb >= ba:
        return OK
    size = params[OT.order_qty]
    q = ctx[Ctx.POSITION] / size
    shift = params[OT.skew_ticks] * q
    bid = min(np.round(mid - params[OT.offset_ticks] - shift), bb)
    ask = max(np.round(mid + params[OT.offset_ticks] - shift), ba)
    out[Quote.N_BID] = 1.0
    out[Quote.BID0] = bid
    out[Quote.BID0 + 1] = size
    out[Quote.N_ASK] = 1.0
    out[Quote.ASK0] = ask
    out[Quote.ASK0 + 1] = size
    return OK
