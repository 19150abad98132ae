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
    """

    CONSTANT: int = 0
    LOGNORMAL: int = 1


LatencyModel = _LatencyModel()
LATENCY_PARAMS = 16


@nb.njit(cache=True, inline="always", _nrt=False)
def _next_u64(st, k):
    # xorshift64* (Vigna 2016), state in st[k] (int64, never 0)
    x = st[k]
    x ^= (x >> 12) & 0x000FFFFFFFFFFFFF
    x ^= x << 25
    x ^= (x >> 27) & 0x0000001FFFFFFFFF
    st[k] = x
    return x * 2685821657736338717


@nb.njit(cache=True, _nrt=False)
def uniform_nb(st, k):
    """Uniform in (0, 1) from the xorshift64* state ``st[k]``."""
    v = (_next_u64(st, k) >> 11) & 0x1FFFFFFFFFFFFF
    return (v + 0.5) * (1.0 / 9007199254740992.0)


@nb.njit(cache=True, _nrt=False)
def normal_nb(st, k):
    """Standard normal by Box–Muller from two uniforms of ``st[k]``."""
    u1 = uniform_nb(st, k)
    u2 = uniform_nb(st, k)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@nb.njit(cache=True, _nrt=False)
def _latency(kind, params, idx, st, rng_k):
    if kind == 1:
        return int(params[idx] * np.exp(params[6 + idx] * normal_nb(st, rng_k)))
    return int(params[idx])


@nb.njit(cache=True, _nrt=False)
def entry_latency_nb(kind, params, action, ts, st, rng_k):
    """Nanoseconds from our local send at ``ts`` to the exchange, for ``action``."""
    return _latency(kind, params, action, st, rng_k)


@nb.njit(cache=True, _nrt=False)
def response_latency_nb(kind, params, action, ts, st, rng_k):
    """Nanoseconds from the exchange at ``ts`` back to the strategy, for ``action``."""
    return _latency(kind, params, 3 + action, st, rng_k)


# ---- fees --------------------------------------------------------------------------------
# fee parameter vector (float64[FEE_PARAMS])
FEE_TICK_SIZE = 0
FEE_LOT_SIZE = 1
FEE_MULT = 2
FEE_MAKER_BPS = 3
FEE_TAKER_BPS = 4
FEE_MAKER_PER_LOT = 5
FEE_TAKER_PER_LOT = 6
FEE_INVERSE = 7
FEE_PARAMS = 8


@nb.njit(cache=True, inline="always", _nrt=False)
def notional_nb(fp, price_tick, qty_lots):
    """Notional of ``qty_lots`` at ``price_tick``, in the settlement currency (MODELS.md §8).

    Linear: ``qty·lot·price·multiplier`` (quote currency); inverse: ``qty·lot·multiplier/price``
    (coin).
    """
    px = price_tick * fp[FEE_TICK_SIZE]
    units = qty_lots * fp[FEE_LOT_SIZE]
    if fp[FEE_INVERSE] > 0.5:
        return units * fp[FEE_MULT] / px
    return units * px * fp[FEE_MULT]


@nb.njit(cache=True, inline="always", _nrt=False)
def fee_nb(fp, price_tick, qty_lots, is_maker):
    """Fee of one fill in the settlement currency; negative is a rebate (MODELS.md §8)."""
    n = notional_nb(fp, price_tick, qty_lots)
    if is_maker:
        return n * fp[FEE_MAKER_BPS] * 1e-4 + qty_lots * fp[FEE_MAKER_PER_LOT]
    return n * fp[FEE_TAKER_BPS] * 1e-4 + qty_lots * fp[FEE_TAKER_PER_LOT]


@nb.njit(cache=True, inline="always", _nrt=False)
def cash_flow_nb(fp, side, price_tick, qty_lots):
    """Cash change of a fill before fees, in the settlement currency (MODELS.md §8).

    Linear: ``-side·notional`` (buying pays quote currency). Inverse: ``+side·notional_coin``,
    so that with equity marked as ``cash - q·lot·multiplier/mid`` the PnL of a round trip is
    ``q·multiplier·(1/p_entry - 1/p_exit)`` coin.
    """
    n = notional_nb(fp, price_tick, qty_lots)
    if fp[FEE_INVERSE] > 0.5:
        return side * n
    return -side * n
