"""Cartea–Jaimungal–Penalva (2015) and Ho–Stoll (1981) quoting kernels (numba, signature
:data:`mmsim.contracts.POLICY_SIG`).

Declarations (parameters, state layouts, error codes) are in :mod:`mmsim.policies.cartea`;
the exact solution's depth table is computed in numpy by :mod:`mmsim.policies.cj_solution`
when a run is resolved (the ``prepare`` hook of :class:`mmsim.kernels.KernelSpec`) and read
here from the kernel's state. Prices in ticks, sizes in lots, time in seconds; ``q`` is the
inventory in orders (position / ``order_qty``) unless said. Quotes are kept from crossing the
local touch (:func:`mmsim.policies.nb.write_two_sided`); a side with no reference price is
not quoted.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from mmsim._jitcache import declared  # (before any cached kernel)
from mmsim.contracts import POLICY_SIG, Ctx, Quote, Reason
from mmsim.kernels import OK
from mmsim.policies.cartea import CA, CAS, CJ, CJD, CJD_SIZE, CJE, CJS, CT, HS
from mmsim.policies.nb import (
    reference_price_tick,
    time_left_s,
    volatility_px,
    write_two_sided,
)

__all__ = ["CA", "CAS", "CJ", "CJD", "CJE", "CJS", "CT", "HS", "cartea_alpha_nb",
           "cartea_jaimungal_nb", "cartea_touch_nb", "ho_stoll_nb", "signed_flow_lots"]


# ---- Cartea–Jaimungal–Penalva (2015) §10.2: the exact finite-horizon solution ---------------
# params: CJ; state: CJS header, then n_t × (2q̄+1) CJD records from prepare_cartea_jaimungal


@nb.njit(cache=True)
def _cj_depths(params, state, tau, q):
    """``(δ⁺, δ⁻)`` in ticks at time to horizon ``tau`` (s, in [0, T_s]) and inventory ``q``
    (orders, in [−q̄, q̄]): the table linearly interpolated in time; NaN = no quote."""
    q_max = int(params[CJ.q_max])
    n_t = int(params[CJ.n_t])
    n_q = 2 * q_max + 1
    x = tau / state[CJS.tau_step]
    i = int(np.floor(x))
    if i > n_t - 2:
        i = n_t - 2
    w = x - i
    r0 = CJS.table + (i * n_q + q + q_max) * CJD_SIZE
    r1 = r0 + n_q * CJD_SIZE
    ask = (1.0 - w) * state[r0 + CJD.ask] + w * state[r1 + CJD.ask]
    bid = (1.0 - w) * state[r0 + CJD.bid] + w * state[r1 + CJD.bid]
    return ask, bid


@declared(POLICY_SIG)
def cartea_jaimungal_nb(ctx, params, state, out):
    """Cartea, Jaimungal & Penalva (2015), *Algorithmic and High-Frequency Trading*, §10.2:
    the exact optimal depths of a maker with inventory bounds ±q̄ (MODELS.md §3).

    Buy (sell) market orders arrive at rate λ⁺ (λ⁻) and fill a limit order at depth δ with
    probability ``exp(−κδ)``; the maker maximises ``E[X_T + q_T(S_T − αq_T) − φ∫q²dt]``.
    With ``ω(t) = exp(M(T − t))·z`` (``M[q,q] = −φκq²``, ``M[q,q∓1] = λ^±e^(−1)``,
    ``z_q = e^(−ακq²)``; :mod:`mmsim.policies.cj_solution`)::

        δ⁺(t, q) = 1/κ + (1/κ)·ln(ω_q/ω_{q−1})    ask = ref + δ⁺,  none at q = −q̄
        δ⁻(t, q) = 1/κ + (1/κ)·ln(ω_q/ω_{q+1})    bid = ref − δ⁻,  none at q = +q̄

    plus ``ε − φ_v`` on both sides with adverse selection (§10.4.1, ``epsilon_ticks``) and a
    per-fill reward (§10.2.3, ``reward_ticks``), whose exact ``M`` is in ``cj_solution``.

    The table (state, from the ``prepare`` hook) holds the depths on ``n_t`` points of
    ``T − t ∈ [0, T_s]``; the kernel interpolates linearly in time at ``τ`` = the context's
    time to horizon clipped to ``[0, T_s]`` when finite, and ``τ = T_s`` when the run has no
    horizon (``inf``), and looks up ``q = round(position / order_qty)`` (half to even)
    clipped to ``[−q̄, q̄]``. Units: ticks (κ per tick), seconds, orders of ``order_qty`` lots.

    Returns ``CJE.NO_TABLE`` (1) if the state holds no table for these parameters (a driver
    that did not call :meth:`mmsim.kernels.KernelSpec.initial_state`).
    """
    q_max = params[CJ.q_max]
    n_t = params[CJ.n_t]
    if state[CJS.n_t] != n_t or state[CJS.q_max] != q_max or \
            state.shape[0] < CJS.table + int(n_t) * (2 * int(q_max) + 1) * CJD_SIZE:
        return CJE.NO_TABLE
    m = reference_price_tick(ctx, int(params[CJ.ref]))
    if np.isnan(m):
        return OK
    t_max = params[CJ.T_s]
    tau = ctx[Ctx.TIME_TO_HORIZON_S]
    if not np.isfinite(tau):
        tau = t_max
    tau = min(max(tau, 0.0), t_max)
    size = params[CJ.order_qty]
    q = min(max(np.round(ctx[Ctx.POSITION] / size), -q_max), q_max)
    ask, bid = _cj_depths(params, state, tau, int(q))
    write_two_sided(ctx, out, m - bid, m + ask, size, size)
    return OK


# ---- at the touch with size control (CJP 2015 §10.2.2) -------------------------------------
# params: CT


@declared(POLICY_SIG)
def cartea_touch_nb(ctx, params, state, out):
    """Market making at the touch with size control (Cartea, Jaimungal & Penalva 2015,
    §10.2.2; MODELS.md §3).

    Quotes sit at the local best bid and best ask; the control is how much to post::

        Q_bid = max(Q0 − η·q, 0),   Q_ask = max(Q0 + η·q, 0)

    with ``q`` the position in lots, ``Q0`` in lots and η in lots per lot; sizes are
    truncated to whole lots and a size below one lot (or a side with no best price, or a
    crossed book) posts nothing on that side.
    """
    bb = ctx[Ctx.BEST_BID_TICK]
    ba = ctx[Ctx.BEST_ASK_TICK]
    if bb >= ba:
        return OK
    q = ctx[Ctx.POSITION]
    qb = np.floor(max(params[CT.Q0_lots] - params[CT.eta] * q, 0.0))
    qa = np.floor(max(params[CT.Q0_lots] + params[CT.eta] * q, 0.0))
    if qb >= 1.0 and not np.isnan(bb):
        out[Quote.N_BID] = 1.0
        out[Quote.BID0] = bb
        out[Quote.BID0 + 1] = qb
    if qa >= 1.0 and not np.isnan(ba):
        out[Quote.N_ASK] = 1.0
        out[Quote.ASK0] = ba
        out[Quote.ASK0 + 1] = qa
    return OK


# ---- short-term alpha (CJP 2015 §10.4.2) ---------------------------------------------------
# params: CA; state: CAS


@nb.njit(cache=True)
def signed_flow_lots(ctx):
    """Signed market-order volume since the last clock decision, lots: ``+TRADE_QTY`` if only
    buyer-initiated trades were seen (``TRADE_HI_TICK`` set, ``TRADE_LO_TICK`` NaN),
    ``−TRADE_QTY`` if only seller-initiated ones, else 0 (the context gives the total, not
    the split of an interval with both)."""
    buys = not np.isnan(ctx[Ctx.TRADE_HI_TICK])
    sells = not np.isnan(ctx[Ctx.TRADE_LO_TICK])
    if buys and not sells:
        return ctx[Ctx.TRADE_QTY]
    if sells and not buys:
        return -ctx[Ctx.TRADE_QTY]
    return 0.0


@declared(POLICY_SIG)
def cartea_alpha_nb(ctx, params, state, out):
    """Market making with short-term alpha (Cartea, Jaimungal & Penalva 2015, §10.4.2;
    MODELS.md §3, with the signs corrected against seed 000).

    The drift ``μ`` of the mid is mean-reverting, ``dμ = −κ_μ·μ·dt + …``, and jumps with the
    order flow (the book's α_t jumps up with buy and down with sell market orders). Its
    estimate, updated at each clock decision ``dt`` seconds after the previous one::

        μ ← e^(−κ_μ·dt)·μ + flow_gain·v + mid_gain·Δmid

    with ``v`` the signed market-order lots since the last clock (:func:`signed_flow_lots`)
    and ``Δmid`` the mid change in ticks. Upward drift means buy: tighten the bid, widen the
    ask::

        δᵇ = base + γ_q·q − β·μ,   δᵃ = base − γ_q·q + β·μ,   bid = ref − δᵇ, ask = ref + δᵃ

    Units: ticks, seconds (μ in ticks/s, β in s), q in orders of ``order_qty``. Decisions
    after a fill use the current μ without updating it.
    """
    mid = ctx[Ctx.MID_TICK]
    now = ctx[Ctx.TIME_S]
    if ctx[Ctx.REASON] == Reason.CLOCK and not np.isnan(mid):
        last = state[CAS.last_mid]
        if not np.isnan(last):
            dt = now - state[CAS.last_t]
            if dt > 0.0:
                state[CAS.mu] = (np.exp(-params[CA.kappa_mu] * dt) * state[CAS.mu]
                                 + params[CA.flow_gain] * signed_flow_lots(ctx)
                                 + params[CA.mid_gain] * (mid - last))
        state[CAS.last_mid] = mid
        state[CAS.last_t] = now
    m = reference_price_tick(ctx, int(params[CA.ref]))
    if np.isnan(m):
        return OK
    size = params[CA.order_qty]
    q = ctx[Ctx.POSITION] / size
    tilt = params[CA.beta_s] * state[CAS.mu]
    skew = params[CA.gamma_q] * q
    d_bid = params[CA.base_ticks] + skew - tilt
    d_ask = params[CA.base_ticks] - skew + tilt
    write_two_sided(ctx, out, m - d_bid, m + d_ask, size, size)
    return OK


# ---- Ho & Stoll (1981), corrected (MODELS.md §4) -------------------------------------------
# params: HS


@declared(POLICY_SIG)
def ho_stoll_nb(ctx, params, state, out):
    """Ho & Stoll (1981), "Optimal dealer pricing under transactions and return uncertainty",
    J. Financial Economics 9(1), the dealer's quotes as corrected in MODELS.md §4.

    A dealer with mean-variance preferences (risk aversion γ) over an inventory ``q`` held
    for ``τ`` seconds values one more order at ``s − γσ²τ(q + ½)`` and one fewer at
    ``s − γσ²τ(q − ½)``; adding the fixed cost ``c`` per trade::

        centre = s − γ·σ²·q·τ,   half spread = c + γ·σ²·τ/2
        bid = centre − half spread,   ask = centre + half spread

    Units: price (quote currency) for s, c and σ (per √second); γ per (price·order); q in
    orders of ``order_qty``; τ the context's time to horizon, or ``tau_s`` with no horizon.
    σ = ``sigma_px``, or the engine's online estimate (``ctx[VOL_TICK]``) when it is 0.
    """
    m = reference_price_tick(ctx, int(params[HS.ref]))
    if np.isnan(m):
        return OK
    tick = ctx[Ctx.TICK_SIZE]
    sigma = volatility_px(ctx, params[HS.sigma_px])
    tau = time_left_s(ctx, params[HS.tau_s])
    size = params[HS.order_qty]
    q = ctx[Ctx.POSITION] / size
    risk = params[HS.gamma] * sigma * sigma * tau
    centre = m * tick - risk * q
    half = params[HS.c_px] + 0.5 * risk
    write_two_sided(ctx, out, (centre - half) / tick, (centre + half) / tick, size, size)
    return OK
