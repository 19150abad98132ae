"""Numba kernels of the signals, computed incrementally on the strategy's local (delayed) book.

Every kernel takes ``sst`` (one record of :data:`mmsim.signals.spec.SIGNAL_STATE_DTYPE`, updated
in place), ``sp`` (one record of :data:`~mmsim.signals.spec.SIGNAL_PARAMS_DTYPE`), ``ts`` (int64
local ns) and, for the book, the local ladder ``llvl`` int64[2, W] / ``lsc`` int64[n]
(:mod:`mmsim.book.nb`). Prices in ticks, quantities in lots. Nothing allocates (``_nrt=False``).

Cost per call: ``signals_on_book_nb`` and ``signals_on_trade_nb`` O(1) amortised (a jump over
``m`` empty buckets or clock intervals costs O(min(m, window))); ``signals_to_ctx_nb`` adds O(N)
for the OBI (plus the empty ladder columns between the N levels), which is computed only when
read. Timestamps must not decrease; an earlier one is clamped to the latest seen.

Signals (MODELS.md §5, §11)
    OBI, top N levels: ``(V_bid - V_ask)/(V_bid + V_ask)`` over the N best non-empty levels
    of each side; NaN if both are empty.
    OFI (Cont, Kukanov, Stoikov 2014, "The price impact of order book events", J. Financial
    Econometrics 12(1), eq. 2): per best-quote update n (every ``signals_on_book_nb`` with both
    sides present, after one with both sides present)
    ``e_n = 1{Pb_n >= Pb_{n-1}} qb_n - 1{Pb_n <= Pb_{n-1}} qb_{n-1}
    - 1{Pa_n <= Pa_{n-1}} qa_n + 1{Pa_n >= Pa_{n-1}} qa_{n-1}``, summed over the flow window.
    Kyle's λ (Kyle 1985; the estimator of CKS 2014 §3 / Hasbrouck): OLS slope of
    ``Δmid_k`` (ticks) on ``x_k`` (signed lots, buyer-initiated positive) over the last K clock
    intervals whose mid is defined at both ends; NaN with fewer than 2 or no spread in ``x``.
    Trade intensity: trades per second per aggressor side over the flow window (its span
    since the first event seen).
    Volatility: EWMA of squared mid changes in *ticks* per clock interval,
    ``v <- d·v + (1 - d)·Δmid²`` (first valid interval: ``v = Δmid²``), reported as
    ``sqrt(v / clock_s)`` ticks per √second (the engine's ``VOL_TICK`` units).
    Micro-price (Stoikov 2018, "The micro-price", Quant. Finance 18(12), eq. 3.6 with the
    table of :mod:`mmsim.signals.microprice`): ``mid + G(I, S)``, ``I = qb/(qb + qa)`` in bucket
    ``min(floor(I·n_imb), n_imb - 1)``, ``S = ask - bid`` ticks; NaN outside 1..n_spread or
    without a table.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from mmsim._jitcache import internal, kernel  # (before any cached kernel)
from mmsim.book.nb import ASK_ROW, BID_ROW, L_BASE, L_BEST_ASK, L_BEST_BID, L_NASK, L_NBID, L_W
from mmsim.signals.spec import SignalCtx

# ---- helpers ------------------------------------------------------------------------------


@nb.njit(cache=True, inline="always", _nrt=False)
def _clamp_ts(sst, ts):
    """Start the state at the first call; return ``ts`` clamped to the latest time seen."""
    if sst.started == 0:
        sst.started = 1
        sst.first_ts = ts
        sst.last_ts = ts
        return ts
    if ts < sst.last_ts:
        return sst.last_ts
    sst.last_ts = ts
    return ts


@internal
def _flow_advance(sst, sp, ts):
    """Move the flow ring to the bucket of ``ts``: the buckets that leave the window are
    subtracted from the sums and zeroed."""
    n = sp.flow_n_buckets
    k = ts // sp.flow_bucket_ns
    m = k - sst.flow_head
    if m <= 0:
        return
    if m > n:
        m = n
    for j in range(1, m + 1):
        s = (sst.flow_head + j) % n
        sst.ofi_sum -= sst.flow_ofi[s]
        sst.n_buy_sum -= sst.flow_n_buy[s]
        sst.n_sell_sum -= sst.flow_n_sell[s]
        sst.flow_ofi[s] = 0
        sst.flow_n_buy[s] = 0
        sst.flow_n_sell[s] = 0
    sst.flow_head = k


@internal
def _kyle_push(sst, sp, x, y2, valid):
    """Add one clock interval (signed lots ``x``, mid change ``y2`` half ticks) to the Kyle
    ring, dropping the oldest once the ring holds ``kyle_n_intervals``."""
    cap = sp.kyle_n_intervals
    s = sst.kyle_pos
    if sst.kyle_count == cap and sst.kyle_valid[s] == 1:
        ox = sst.kyle_x[s]
        oy = sst.kyle_y2[s]
        sst.kyle_n -= 1
        sst.kyle_sx -= ox
        sst.kyle_sy2 -= oy
        sst.kyle_sxy2 -= ox * oy
        sst.kyle_sxx -= ox * ox
    sst.kyle_x[s] = x
    sst.kyle_y2[s] = y2
    sst.kyle_valid[s] = valid
    if valid == 1:
        sst.kyle_n += 1
        sst.kyle_sx += x
        sst.kyle_sy2 += y2
        sst.kyle_sxy2 += x * y2
        sst.kyle_sxx += x * x
    sst.kyle_pos = (s + 1) % cap
    if sst.kyle_count < cap:
        sst.kyle_count += 1


@internal
def _vol_update(sst, sp, y2):
    """One valid clock interval with a mid change of ``y2`` half ticks into the EWMA."""
    dy = 0.5 * y2
    x = dy * dy
    if sst.vol_n == 0:
        sst.vol_var = x
    else:
        d = sp.vol_decay
        sst.vol_var = d * sst.vol_var + (1.0 - d) * x
    sst.vol_n += 1


@internal
def _clock_roll(sst, sp, k_target):
    """Sample every grid point ``g_k = k·clock_ns`` with ``clock_k < k <= k_target`` with the
    current top of book (the state before the event being processed), closing one interval
    each."""
    if k_target <= sst.clock_k:
        return
    mid2 = sst.bid_tick + sst.ask_tick
    ok = sst.top_ok
    # the first interval carries the traded volume and the mid change since the last sample
    valid = 1 if (ok == 1 and sst.sample_ok == 1) else 0
    y2 = mid2 - sst.sample_mid2 if valid == 1 else 0
    _kyle_push(sst, sp, sst.interval_qty, y2, valid)
    if valid == 1:
        _vol_update(sst, sp, y2)
    # the others: nothing traded and the mid unchanged
    m = k_target - sst.clock_k - 1
    if m > 0:
        reps = m if m < sp.kyle_n_intervals else sp.kyle_n_intervals
        for _ in range(reps):
            _kyle_push(sst, sp, 0, 0, ok)
        if ok == 1:
            sst.vol_var *= sp.vol_decay ** m
            sst.vol_n += m
    sst.clock_k = k_target
    sst.sample_ok = ok
    sst.sample_mid2 = mid2 if ok == 1 else 0
    sst.interval_qty = 0


@internal
def _advance(sst, sp, ts, inclusive):
    """Bring the rings up to time ``ts``: flow buckets to ``ts``'s, the clock to the last grid
    point ``< ts`` (``<= ts`` if ``inclusive``). Returns ``ts`` clamped."""
    first = sst.started == 0
    ts = _clamp_ts(sst, ts)
    kt = ts // sp.clock_ns if inclusive else (ts - 1) // sp.clock_ns
    if first:
        # the book before the first event is unknown: the first interval is invalid; the
        # flow ring is empty (reset state) and starts at the bucket of ``ts``
        sst.clock_k = kt
        sst.sample_ok = 0
        sst.flow_head = ts // sp.flow_bucket_ns
    else:
        _clock_roll(sst, sp, kt)
        _flow_advance(sst, sp, ts)
    return ts


@nb.njit(cache=True, inline="always", _nrt=False)
def _side_depth(llvl, lsc, row, n):
    """Lots in the best ``n`` non-empty levels of one ladder row."""
    best = lsc[L_BEST_BID] if row == BID_ROW else lsc[L_BEST_ASK]
    nlev = lsc[L_NBID] if row == BID_ROW else lsc[L_NASK]
    if n > nlev:
        n = nlev
    v = 0
    if best < 0:
        return v
    k = 0
    j = best
    w = lsc[L_W]
    while k < n and 0 <= j < w:
        q = llvl[row, j]
        if q > 0:
            v += q
            k += 1
        j = j - 1 if row == BID_ROW else j + 1
    return v


# ---- public kernels -----------------------------------------------------------------------


@kernel
def signals_reset_nb(sst):
    """Forget everything: ``sst`` back to the all-zero state of
    :func:`mmsim.signals.spec.new_signal_state`. Returns nothing."""
    sst.started = 0
    sst.first_ts = 0
    sst.last_ts = 0
    sst.top_ok = 0
    sst.bid_tick = 0
    sst.ask_tick = 0
    sst.bid_qty = 0
    sst.ask_qty = 0
    sst.flow_head = 0
    for j in range(sst.flow_ofi.shape[0]):
        sst.flow_ofi[j] = 0
        sst.flow_n_buy[j] = 0
        sst.flow_n_sell[j] = 0
    sst.ofi_sum = 0
    sst.n_buy_sum = 0
    sst.n_sell_sum = 0
    sst.clock_k = 0
    sst.sample_ok = 0
    sst.sample_mid2 = 0
    sst.interval_qty = 0
    sst.kyle_pos = 0
    sst.kyle_count = 0
    for j in range(sst.kyle_x.shape[0]):
        sst.kyle_x[j] = 0
        sst.kyle_y2[j] = 0
        sst.kyle_valid[j] = 0
    sst.kyle_n = 0
    sst.kyle_sx = 0
    sst.kyle_sy2 = 0
    sst.kyle_sxy2 = 0
    sst.kyle_sxx = 0
    sst.vol_n = 0
    sst.vol_var = 0.0


@kernel
def signals_on_book_nb(sst, sp, ts, llvl, lsc):
    """Update the signals after a change of the local book at local time ``ts``.

    Call it after every change applied to the local view (a level delta, a clear, a
    recenter). Samples the grid points before ``ts`` with the previous top of book, then
    takes the new one and adds the CKS (2014) ``e_n`` of this best-quote update to the
    OFI bucket of ``ts``.

    Parameters
    ----------
    sst : SIGNAL_STATE_DTYPE record (updated)
    sp : SIGNAL_PARAMS_DTYPE record
    ts : int64, local ns
    llvl : int64[2, W], lots per price column (rows BID_ROW, ASK_ROW)
    lsc : int64[LADDER_SCALARS], ladder scalars (mmsim.book.nb)

    Returns
    -------
    int64
        ``e_n`` in lots (0 when not defined: a side empty now or at the previous update).
    """
    _advance(sst, sp, ts, False)
    bi = lsc[L_BEST_BID]
    ai = lsc[L_BEST_ASK]
    if bi < 0 or ai < 0:
        sst.top_ok = 0
        return 0
    pb = bi + lsc[L_BASE]
    pa = ai + lsc[L_BASE]
    qb = llvl[BID_ROW, bi]
    qa = llvl[ASK_ROW, ai]
    e = 0
    if sst.top_ok == 1:
        if pb >= sst.bid_tick:
            e += qb
        if pb <= sst.bid_tick:
            e -= sst.bid_qty
        if pa <= sst.ask_tick:
            e -= qa
        if pa >= sst.ask_tick:
            e += sst.ask_qty
        if e != 0:
            s = sst.flow_head % sp.flow_n_buckets
            sst.flow_ofi[s] += e
            sst.ofi_sum += e
    sst.top_ok = 1
    sst.bid_tick = pb
    sst.ask_tick = pa
    sst.bid_qty = qb
    sst.ask_qty = qa
    return e


@kernel
def signals_on_trade_nb(sst, sp, ts, resting_side, qty):
    """Count a trade that reached the local view at local time ``ts``.

    Parameters
    ----------
    sst, sp : records (see :func:`signals_on_book_nb`)
    ts : int64, local ns
    resting_side : int64
        Side of the resting liquidity (the engine's ``±RING_TRADE`` sign, EVENT_DTYPE
        ``side``): -1 (an ask was hit) is a buyer-initiated trade, +1 a seller-initiated one.
    qty : int64, lots

    Returns
    -------
    int64
        The signed volume added to the current clock interval, lots (+ buyer-initiated).
    """
    _advance(sst, sp, ts, False)
    s = sst.flow_head % sp.flow_n_buckets
    if resting_side < 0:
        sst.flow_n_buy[s] += 1
        sst.n_buy_sum += 1
        x = qty
    else:
        sst.flow_n_sell[s] += 1
        sst.n_sell_sum += 1
        x = -qty
    sst.interval_qty += x
    return x


@kernel
def signals_advance_nb(sst, sp, ts):
    """Sample the signal clock up to and including ``ts`` (local ns) and expire the flow
    buckets before ``ts``'s window. :func:`signals_to_ctx_nb` calls it; the engine needs it
    only to close intervals without reading. Returns ``ts`` clamped (int64)."""
    return _advance(sst, sp, ts, True)


@kernel
def obi_nb(sp, llvl, lsc):
    """Order-book imbalance of the top ``sp.obi_levels`` non-empty levels of the ladder,
    ``(V_bid - V_ask)/(V_bid + V_ask)`` (MODELS.md §5), float64 in [-1, 1]; NaN if both
    sides are empty."""
    vb = _side_depth(llvl, lsc, BID_ROW, sp.obi_levels)
    va = _side_depth(llvl, lsc, ASK_ROW, sp.obi_levels)
    if vb + va == 0:
        return np.nan
    return (vb - va) / (vb + va)


@kernel
def microprice_nb(sp, llvl, lsc):
    """Stoikov (2018) micro-price in ticks, ``mid + G(I, S)`` from the table in ``sp``
    (:mod:`mmsim.signals.microprice`); NaN without a table, with a side empty, or a spread
    outside ``1 .. sp.micro_n_spread`` ticks or a state the estimation never saw."""
    n = sp.micro_n_imb
    bi = lsc[L_BEST_BID]
    ai = lsc[L_BEST_ASK]
    if n < 2 or bi < 0 or ai < 0:
        return np.nan
    s = ai - bi
    if s < 1 or s > sp.micro_n_spread:
        return np.nan
    qb = llvl[BID_ROW, bi]
    qa = llvl[ASK_ROW, ai]
    if qb + qa <= 0:
        return np.nan
    b = (qb * n) // (qb + qa)  # floor(I·n), exact in integers
    if b > n - 1:
        b = n - 1
    return 0.5 * (ai + bi) + lsc[L_BASE] + sp.micro_adjust_tick[b, s - 1]


@kernel
def kyle_lambda_nb(sst):
    """Kyle's λ from the ring's sums: OLS slope of the mid change (ticks) on signed volume
    (lots), ticks per lot; NaN with fewer than 2 valid intervals or no spread in volume."""
    n = float(sst.kyle_n)
    sx = float(sst.kyle_sx)
    den = n * float(sst.kyle_sxx) - sx * sx
    if sst.kyle_n < 2 or den <= 0.0:
        return np.nan
    return 0.5 * (n * float(sst.kyle_sxy2) - sx * float(sst.kyle_sy2)) / den


@kernel
def signals_to_ctx_nb(sst, sp, ts, llvl, lsc, out, base):
    """Write every signal at local time ``ts`` into ``out[base + SignalCtx.<NAME>]``.

    Advances the clock and the flow window to ``ts`` first (:func:`signals_advance_nb`), so
    a read sees every event with a time ``<= ts`` passed before it.

    Parameters
    ----------
    sst, sp, ts, llvl, lsc : see :func:`signals_on_book_nb`
    out : float64[:], at least ``base + SignalCtx.SIZE`` long
    base : int64, offset of the signal block in ``out``

    Returns
    -------
    int64
        ``SignalCtx.SIZE`` (the slots written). Units: OBI unitless, OFI lots, λ ticks per
        lot, rates 1/s, volatility ticks/√s, micro-price ticks; NaN where undefined (before
        any event, a side empty, too few intervals).
    """
    if sst.started == 0:
        for j in range(SignalCtx.SIZE):
            out[base + j] = np.nan
        out[base + SignalCtx.OBI] = obi_nb(sp, llvl, lsc)
        out[base + SignalCtx.MICRO_TICK] = microprice_nb(sp, llvl, lsc)
        return SignalCtx.SIZE
    ts = _advance(sst, sp, ts, True)
    out[base + SignalCtx.OBI] = obi_nb(sp, llvl, lsc)
    out[base + SignalCtx.OFI_QTY] = sst.ofi_sum
    start = (sst.flow_head - sp.flow_n_buckets + 1) * sp.flow_bucket_ns
    if start < sst.first_ts:
        start = sst.first_ts
    span_s = (ts - start) * 1e-9
    if span_s > 0.0:
        out[base + SignalCtx.BUY_RATE_HZ] = sst.n_buy_sum / span_s
        out[base + SignalCtx.SELL_RATE_HZ] = sst.n_sell_sum / span_s
    else:
        out[base + SignalCtx.BUY_RATE_HZ] = np.nan
        out[base + SignalCtx.SELL_RATE_HZ] = np.nan
    out[base + SignalCtx.KYLE_LAMBDA_TICK] = kyle_lambda_nb(sst)
    if sst.vol_n > 0:
        out[base + SignalCtx.VOL_TICK] = np.sqrt(sst.vol_var / (sp.clock_ns * 1e-9))
    else:
        out[base + SignalCtx.VOL_TICK] = np.nan
    mp = microprice_nb(sp, llvl, lsc)
    out[base + SignalCtx.MICRO_TICK] = mp
    bi = lsc[L_BEST_BID]
    ai = lsc[L_BEST_ASK]
    if np.isnan(mp) or bi < 0 or ai < 0:
        out[base + SignalCtx.MICRO_ADJ_TICK] = np.nan
    else:
        out[base + SignalCtx.MICRO_ADJ_TICK] = mp - 0.5 * (ai + bi) - lsc[L_BASE]
    return SignalCtx.SIZE
