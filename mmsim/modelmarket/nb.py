"""Numba driver of the model market: many independent paths of a simulated mid, Poisson fills.

The driver, :func:`run_paths_nb`, runs the same policy kernels as the replay engine
(:mod:`mmsim.engine.nb`), through the same first-class function type
(:data:`mmsim.contracts.POLICY_FTYPE`) and the same ``ctx`` / ``Quote`` layouts, so a policy
cannot tell which driver calls it. Paths run in parallel (``prange``); each path draws its
random numbers from a counter-based generator keyed on ``(seed, path, step, stream)``, so the
results do not depend on the number of threads or their scheduling, and two runs with the same
seed see the same mid paths and the same uniforms at every path-step (common random numbers).

Model (Avellaneda & Stoikov 2008, §3.3; MODELS.md §1), one step of length ``dt`` from ``t``:

1. **Quote.** The policy sees the state at ``t`` (mid ``s_t``, inventory ``q_t``, cash, ``T − t``)
   and returns its quotes. Bid prices are floored and ask prices ceiled to whole ticks, as in
   the replay engine.
2. **Fills during [t, t + dt].** A bid level at price ``b`` (distance ``δᵇ = s_t − b``) is hit
   with probability ``min(A·exp(−k·δᵇ)·dt, 1)``, an ask level at ``a`` (``δᵃ = a − s_t``) with
   ``min(A·exp(−k·δᵃ)·dt, 1)``, independently; a hit fills the level's whole quoted size
   (the paper: one unit) at the quoted price.
3. **Mid move** to ``s_{t+dt}``: ``random_walk`` ``±σ√dt`` with probability ½ each (the paper),
   ``abm`` ``s += σ√dt·Z``, or ``gbm`` ``s *= exp(−σ²dt/2 + σ√dt·Z)`` (σ relative), Z ~ N(0, 1).

Fills are decided before the mid moves because the distances are measured from the mid at
which the quotes were set, as in the paper (quotes set at ``t`` against ``s_t``, executions
during ``[t, t + dt]``, then the new mid). Terminal profit is ``cash_T + q_T·s_T``.

The ``ctx`` the policy sees (layout :data:`mmsim.contracts.Ctx`): ``MID_TICK`` = ``WMID_TICK``
= the mid in ticks; ``BEST_BID_TICK``, ``BEST_ASK_TICK``, ``SPREAD_TICK`` and the depth prices
NaN (there is no book, so quotes are never clamped to a touch); ``BID_QTY``/``ASK_QTY`` 0;
``POSITION`` in lots; ``CASH``; ``TIME_S`` = t; ``TIME_TO_HORIZON_S`` = T − t, or ``inf`` for an
infinite-horizon run (the policy then uses its own constant τ); ``VOL_TICK`` = σ in ticks per
√time unit (``σ·s/tick`` under ``gbm``); ``REASON`` 0; ``MAX_POSITION`` inf; ``LAST_FILL_S`` the
end of the step of our last fill (−inf before any); no resting orders (quotes are replaced
every step, so ``N_OPEN_*`` are 0 and the order slots empty).

Units: the paper's time unit stands where the replay engine has seconds (``TIME_S``,
``TIME_TO_HORIZON_S``, ``A`` per time unit, σ per √time unit). ``ctx`` prices are in ticks of
``tick_px`` (a tiny tick, 1e-4 by default, so tick rounding moves a quote by at most 1e-4);
quantities are in lots of ``lot`` instrument units.
"""

from __future__ import annotations

import numba as nb
import numpy as np

import mmsim._jitcache  # noqa: F401  (before any cached kernel)
from mmsim.contracts import (
    CTX_DEPTH,
    CTX_ORDERS,
    MAX_LEVELS,
    POLICY_FTYPE,
    Ctx,
    CtxOrder,
    quote_level_nb,
    quote_levels_nb,
)

# ---- float config mcfg float64[MC_SIZE] ------------------------------------------------------
MC_S0 = 0  # initial mid, price
MC_T = 1  # horizon T, time units
MC_DT = 2  # step, time units
MC_SIGMA = 3  # price per sqrt(time unit) (abm, random_walk); per sqrt(time unit), relative (gbm)
MC_A = 4  # fill intensity at zero distance, per time unit
MC_K = 5  # intensity decay, per price unit
MC_TICK = 6  # price per tick
MC_LOT = 7  # instrument units per lot
MC_Q0 = 8  # initial inventory, lots
MC_DYNAMICS = 9  # DYN_*
MC_HORIZON = 10  # 0 finite (ctx TIME_TO_HORIZON_S = T − t), 1 infinite (ctx gets inf)
MC_NSTEPS = 11
MC_SIZE = 12

DYN_RANDOM_WALK = 0
DYN_ABM = 1
DYN_GBM = 2

# ---- per-path results res float64[npaths, R_SIZE] ----------------------------------------------
R_PROFIT = 0  # cash_T + q_T·s_T, price × units
R_Q = 1  # final inventory q_T, instrument units
R_CASH = 2
R_S_T = 3  # final mid, price
R_SPREAD_SUM = 4  # Σ (ask − bid) over the steps quoted on both sides, price
R_SPREAD_N = 5  # number of those steps
R_BID_FILLS = 6  # number of bid hits
R_ASK_FILLS = 7
R_ERR = 8  # policy return code (0 = fine); the path stops at the first error
R_SIZE = 9

#: Random streams per step: 0-1 the mid (uniform or Box–Muller pair), then one per quote level.
STREAM_MID0 = 0
STREAM_BID0 = 2
STREAM_ASK0 = 2 + MAX_LEVELS
N_STREAMS = 2 + 2 * MAX_LEVELS

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_NSTREAMS_U = np.uint64(N_STREAMS)
_TWO_M53 = 1.0 / 9007199254740992.0


@nb.njit(cache=True, inline="always")
def mix64_nb(z):
    """splitmix64 finaliser (Steele, Lea & Flood 2014): a bijection of uint64 with good mixing.

    All operands are uint64 (a signed operand would turn numba's arithmetic to int64/float64).
    """
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(cache=True)
def path_key_nb(seed, path):
    """The uint64 key of ``path`` (int64) under ``seed`` (int64); from Python it is an int."""
    k = mix64_nb(np.uint64(seed) + _GOLDEN)
    return mix64_nb(k + (np.uint64(path) + _ONE) * _GOLDEN)


@nb.njit(cache=True, inline="always")
def uniform_nb(key, step, stream):
    """Uniform [0, 1) number ``step·N_STREAMS + stream`` of the splitmix64 sequence of ``key``.

    Counter-based: any draw can be computed on its own, so strategies that draw different
    numbers of variates still share the mid path and the fill uniforms of each path-step.
    """
    c = np.uint64(step) * _NSTREAMS_U + np.uint64(stream) + _ONE
    return np.float64(mix64_nb(np.uint64(key) + c * _GOLDEN) >> _S11) * _TWO_M53


@nb.njit(cache=True, inline="always")
def fill_probability_nb(a_int, k, delta, dt):
    """``min(A·exp(−k·δ)·dt, 1)`` (MODELS.md §1): the chance a quote at distance δ is hit."""
    p = a_int * np.exp(-k * delta) * dt
    return p if p < 1.0 else 1.0


@nb.njit(cache=True)
def _init_ctx(ctx, mcfg):
    ctx[:] = 0.0
    ctx[Ctx.BEST_BID_TICK] = np.nan  # no book in the model market
    ctx[Ctx.BEST_ASK_TICK] = np.nan
    ctx[Ctx.SPREAD_TICK] = np.nan
    ctx[Ctx.TICK_SIZE] = mcfg[MC_TICK]
    ctx[Ctx.LOT_SIZE] = mcfg[MC_LOT]
    ctx[Ctx.MAX_POSITION] = np.inf
    ctx[Ctx.LAST_FILL_S] = -np.inf
    for j in range(2 * CTX_DEPTH):
        ctx[Ctx.DEPTH0 + 2 * j] = np.nan
    for c in range(CTX_ORDERS):
        ctx[Ctx.ORDERS0 + CtxOrder.SIZE * c + CtxOrder.PRICE_TICK] = np.nan


@nb.njit(cache=True)
def _run_path(policy, pparams, state, ctx, out, mcfg, key, res):
    s = mcfg[MC_S0]
    dt = mcfg[MC_DT]
    horizon = mcfg[MC_T]
    sigma = mcfg[MC_SIGMA]
    a_int = mcfg[MC_A]
    k = mcfg[MC_K]
    tick = mcfg[MC_TICK]
    lot = mcfg[MC_LOT]
    dyn = int(mcfg[MC_DYNAMICS])
    infinite = mcfg[MC_HORIZON] != 0.0
    nsteps = int(mcfg[MC_NSTEPS])
    sq_dt = np.sqrt(dt)
    pos = mcfg[MC_Q0]  # lots
    cash = 0.0
    spread_sum = 0.0
    spread_n = 0
    nbf = 0
    naf = 0
    _init_ctx(ctx, mcfg)
    for i in range(nsteps):
        t = i * dt
        m_tick = s / tick
        ctx[Ctx.TIME_S] = t
        ctx[Ctx.TIME_TO_HORIZON_S] = np.inf if infinite else max(horizon - t, 0.0)
        ctx[Ctx.MID_TICK] = m_tick
        ctx[Ctx.WMID_TICK] = m_tick
        ctx[Ctx.POSITION] = pos
        ctx[Ctx.CASH] = cash
        if dyn == DYN_GBM:
            ctx[Ctx.VOL_TICK] = sigma * s / tick
        else:
            ctx[Ctx.VOL_TICK] = sigma / tick
        out[:] = 0.0
        rc = policy(ctx, pparams, state, out)
        if rc != 0:
            res[R_ERR] = rc
            break
        nbid = quote_levels_nb(out, 1)
        nask = quote_levels_nb(out, -1)
        best_b = np.nan
        best_a = np.nan
        filled = False
        dpos = 0.0
        for lv in range(nbid):
            pt, qi = quote_level_nb(out, 1, lv)
            if qi <= 0:
                continue
            px = pt * tick
            if np.isnan(best_b) or px > best_b:
                best_b = px
            prob = fill_probability_nb(a_int, k, s - px, dt)
            if uniform_nb(key, i, STREAM_BID0 + lv) < prob:
                dpos += qi
                cash -= px * qi * lot
                nbf += 1
                filled = True
        for lv in range(nask):
            pt, qi = quote_level_nb(out, -1, lv)
            if qi <= 0:
                continue
            px = pt * tick
            if np.isnan(best_a) or px < best_a:
                best_a = px
            prob = fill_probability_nb(a_int, k, px - s, dt)
            if uniform_nb(key, i, STREAM_ASK0 + lv) < prob:
                dpos -= qi
                cash += px * qi * lot
                naf += 1
                filled = True
        pos += dpos
        if filled:
            ctx[Ctx.LAST_FILL_S] = t + dt
        if not np.isnan(best_b) and not np.isnan(best_a):
            spread_sum += best_a - best_b
            spread_n += 1
        # the mid moves at the end of the step
        if dyn == DYN_RANDOM_WALK:
            if uniform_nb(key, i, STREAM_MID0) < 0.5:
                s += sigma * sq_dt
            else:
                s -= sigma * sq_dt
        else:
            u1 = uniform_nb(key, i, STREAM_MID0)
            u2 = uniform_nb(key, i, STREAM_MID0 + 1)
            z = np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
            if dyn == DYN_ABM:
                s += sigma * sq_dt * z
            else:
                s *= np.exp(-0.5 * sigma * sigma * dt + sigma * sq_dt * z)
    q_units = pos * lot
    res[R_PROFIT] = cash + q_units * s
    res[R_Q] = q_units
    res[R_CASH] = cash
    res[R_S_T] = s
    res[R_SPREAD_SUM] = spread_sum
    res[R_SPREAD_N] = spread_n
    res[R_BID_FILLS] = nbf
    res[R_ASK_FILLS] = naf


_F1 = nb.types.float64[::1]
_F2 = nb.types.float64[:, ::1]
#: Declared signature of :func:`run_paths_nb`: the policy arrives as a first-class function
#: value (:data:`POLICY_FTYPE`), so one compiled, disk-cached driver serves every policy.
RUN_PATHS_SIG = nb.types.int64(
    POLICY_FTYPE, _F1, _F1, _F2, _F2, _F2, _F1, nb.types.int64, nb.types.int64, _F2,
)


@nb.njit(RUN_PATHS_SIG, cache=True, parallel=True)
def run_paths_nb(policy, pparams, state_init, states, ctxs, outs, mcfg, seed, path0, res):
    """Simulate ``res.shape[0]`` independent paths of the model market in parallel.

    Parameters
    ----------
    policy : POLICY_FTYPE
        A policy kernel compiled with :data:`mmsim.contracts.POLICY_SIG` (unchanged).
    pparams : float64[n_params]
        The policy's parameter vector (registry order).
    state_init : float64[n_state]
        Initial policy state, copied into ``states[p]`` at the start of each path.
    states : float64[n_paths, n_state], C-contiguous
        Scratch: one policy state per path.
    ctxs : float64[n_paths, CTX_SIZE], C-contiguous
        Scratch: one ``ctx`` per path (layout :data:`mmsim.contracts.Ctx`).
    outs : float64[n_paths, QUOTE_SIZE], C-contiguous
        Scratch: one policy output per path (layout :data:`mmsim.contracts.Quote`).
    mcfg : float64[MC_SIZE]
        Market configuration (``MC_*`` indices; times in the model's time unit).
    seed : int64
    path0 : int64
        Global index of the first path (a path's random numbers depend on ``(seed, path0 + p)``
        only, so a run can be split into batches).
    res : float64[n_paths, R_SIZE]
        Output, one row per path (``R_*`` fields).

    Returns
    -------
    int64
        The number of paths whose policy returned a non-zero code (``res[:, R_ERR]``).
    """
    n = res.shape[0]
    for p in nb.prange(n):
        st = states[p]
        st[:] = 0.0
        st[: state_init.shape[0]] = state_init
        res[p, :] = 0.0
        key = path_key_nb(seed, path0 + p)
        _run_path(policy, pparams, st, ctxs[p], outs[p], mcfg, key, res[p])
    nerr = 0
    for p in range(n):
        if res[p, R_ERR] != 0.0:
            nerr += 1
    return nerr
