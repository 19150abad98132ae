"""Numba kernels of the swappable models: order latency and fees (MODELS.md §7, §8).

Latency models are chosen by an integer kind (:data:`LatencyModel`) and a float64 parameter
vector; the engine calls :func:`entry_latency_nb` / :func:`response_latency_nb` with the action
(:data:`Action`). Adding a model means adding a kind and a branch here: the engine's signature
does not change.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from mmsim._jitcache import internal, kernel  # (before any cached kernel)


class _Action(NamedTuple):
    """What we send to the exchange."""

    SUBMIT: int = 0
    CANCEL: int = 1
    MODIFY: int = 2


Action = _Action()


class _LatencyModel(NamedTuple):
    """Order latency models (MODELS.md §7), chosen by ``latency.model``.

    ``params[0:6]``: entry submit, cancel, modify, then response submit, cancel, modify, in
    nanoseconds. Fill reports travel with the submit response latency.

    CONSTANT
        ``params[0:6]`` are the latencies.
    LOGNORMAL
        ``params[0:6]`` are medians and ``params[6:12]`` the log-space standard deviations:
        each draw is ``median·exp(σ·Z)``, Z standard normal from a seeded xorshift64* stream
        kept in the engine state, so a run is reproducible.
    INTERPOLATED
        From a recorded series ``(request_ts, exchange_ts, response_ts)`` per action: the entry
        latency ``exchange_ts − request_ts`` and the response latency
        ``response_ts − exchange_ts`` are interpolated linearly in time (held constant before
        the first and after the last record).
    """

    CONSTANT: int = 0
    LOGNORMAL: int = 1
    INTERPOLATED: int = 2


LatencyModel = _LatencyModel()
#: fixed part of the latency vector; an interpolated series follows it (see below)
LATENCY_PARAMS = 24
#: INTERPOLATED: ``params[12 + a]`` = first row and ``params[15 + a]`` = row count of action
#: ``a``'s series; row ``i`` is ``params[24 + 3i : 24 + 3i + 3]`` =
#: (request_ts − origin, entry_nanos, response_nanos), sorted by request_ts; the int64 origin
#: is ``params[18]·2**32 + params[19]`` (two exact floats: ns timestamps exceed float64's
#: integer precision).
LAT_SERIES0 = 24


@nb.njit(cache=True, inline="always", _nrt=False)
def _next_u64(st):
    # xorshift64* (Vigna 2016), state in st.rng (int64, never 0)
    x = st.rng
    x ^= (x >> 12) & 0x000FFFFFFFFFFFFF
    x ^= x << 25
    x ^= (x >> 27) & 0x0000001FFFFFFFFF
    st.rng = x
    return x * 2685821657736338717


@kernel
def uniform_nb(st):
    """Uniform in (0, 1) from the xorshift64* state ``st.rng`` (a record with an int64
    field ``rng``, e.g. :data:`mmsim.dtypes.ENGINE_STATE_DTYPE`)."""
    v = (_next_u64(st) >> 11) & 0x1FFFFFFFFFFFFF
    return (v + 0.5) * (1.0 / 9007199254740992.0)


@kernel
def normal_nb(st):
    """Standard normal by Box–Muller from two uniforms of ``st.rng``."""
    u1 = uniform_nb(st)
    u2 = uniform_nb(st)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@kernel
def interp_latency_nb(params, action, col, ts):
    """Latency of ``action`` at time ``ts`` from the recorded series (col 1 entry, 2 response)."""
    start = int(params[12 + action])
    n = int(params[15 + action])
    if n <= 0:
        return 0.0
    base = LAT_SERIES0 + 3 * start
    if ts <= params[base]:
        return params[base + col]
    last = base + 3 * (n - 1)
    if ts >= params[last]:
        return params[last + col]
    lo = 0
    hi = n - 1
    while hi - lo > 1:  # invariant: t[lo] < ts < t[hi]
        mid = (lo + hi) // 2
        if params[base + 3 * mid] <= ts:
            lo = mid
        else:
            hi = mid
    t0 = params[base + 3 * lo]
    t1 = params[base + 3 * hi]
    v0 = params[base + 3 * lo + col]
    v1 = params[base + 3 * hi + col]
    if t1 <= t0:
        return v1
    return v0 + (v1 - v0) * (ts - t0) / (t1 - t0)


@internal
def _latency(kind, params, idx, st, ts):
    if kind == 1:
        return int(params[idx] * np.exp(params[6 + idx] * normal_nb(st)))
    if kind == 2:
        origin = np.int64(params[18]) * 4294967296 + np.int64(params[19])
        v = interp_latency_nb(params, idx % 3, 1 + idx // 3, float(ts - origin))
        return int(np.floor(v + 0.5))
    return int(params[idx])


@kernel
def entry_latency_nb(kind, params, action, ts, st):
    """Nanoseconds from our local send at ``ts`` to the exchange, for ``action``; random
    draws advance the state record's ``st.rng``."""
    return _latency(kind, params, action, st, ts)


@kernel
def response_latency_nb(kind, params, action, ts, st):
    """Nanoseconds from the exchange at ``ts`` back to the strategy, for ``action``."""
    return _latency(kind, params, 3 + action, st, ts)


# ---- fees --------------------------------------------------------------------------------
# ``p`` is a record with the instrument's fields tick_size, lot_size, multiplier,
# maker_fee_bps, taker_fee_bps, maker_fee_per_lot, taker_fee_per_lot and is_inverse (1.0 for
# an inverse contract): :data:`mmsim.dtypes.ENGINE_PARAMS_DTYPE`.


@nb.njit(cache=True, inline="always", _nrt=False)
def notional_nb(p, price_tick, qty_lots):
    """Notional of ``qty_lots`` at ``price_tick``, in the settlement currency (MODELS.md §8).

    Linear: ``qty·lot·price·multiplier`` (quote currency); inverse: ``qty·lot·multiplier/price``
    (coin).
    """
    px = price_tick * p.tick_size
    units = qty_lots * p.lot_size
    if p.is_inverse > 0.5:
        return units * p.multiplier / px
    return units * px * p.multiplier


@nb.njit(cache=True, inline="always", _nrt=False)
def fee_nb(p, price_tick, qty_lots, is_maker):
    """Fee of one fill in the settlement currency; negative is a rebate (MODELS.md §8)."""
    n = notional_nb(p, price_tick, qty_lots)
    if is_maker:
        return n * p.maker_fee_bps * 1e-4 + qty_lots * p.maker_fee_per_lot
    return n * p.taker_fee_bps * 1e-4 + qty_lots * p.taker_fee_per_lot


@nb.njit(cache=True, inline="always", _nrt=False)
def cash_flow_nb(p, side, price_tick, qty_lots):
    """Cash change of a fill before fees, in the settlement currency (MODELS.md §8).

    Linear: ``-side·notional`` (buying pays quote currency). Inverse: ``+side·notional_coin``,
    so that with equity marked as ``cash - q·lot·multiplier/mid`` the PnL of a round trip is
    ``q·multiplier·(1/p_entry - 1/p_exit)`` coin.
    """
    n = notional_nb(p, price_tick, qty_lots)
    if p.is_inverse > 0.5:
        return side * n
    return -side * n
