"""GLFT online calibration (MODELS.md §2) recovers A, k and sigma from simulated trades."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.contracts import CTX_SIZE, QUOTE_SIZE, Ctx, Quote
from mmsim.policies import nb as pnb
from mmsim.policies.registry import get_policy


def test_fit_recovers_intensity_and_volatility():
    # each 0.1 s step: the deepest trade on each side reaches depth D from the previous mid
    # with P(D >= d) = A·dt·exp(−k·d) (A = 2 /s, k = 0.5 /tick); the mid moves ±1 tick,
    # so sigma = sqrt(1 / 0.1) = 3.162 ticks per sqrt(second)
    a_true, k_true, dt = 2.0, 0.5, 0.1
    spec = get_policy("glft_calibrated")
    params = spec.param_vector({"gamma": 0.1, "order_qty": 1, "window_s": 1200, "grid_n": 8,
                                "refit_every": 100, "min_intervals": 1000})
    state = spec.state_vector()
    ctx = np.zeros(CTX_SIZE)
    out = np.zeros(QUOTE_SIZE)
    ctx[Ctx.TICK_SIZE] = 0.01
    ctx[Ctx.LOT_SIZE] = 1.0
    rng = np.random.default_rng(5)
    mid = 10_000.0
    for i in range(12_000):
        ctx[Ctx.TIME_S] = i * dt
        ctx[Ctx.MID_TICK] = mid
        ctx[Ctx.BEST_BID_TICK] = mid - 0.5
        ctx[Ctx.BEST_ASK_TICK] = mid + 0.5
        out[:] = 0.0
        assert pnb.glft_calibrated_nb(ctx, params, state, out) == 0
        # trades during the next step, measured from this mid
        hi = lo = np.nan
        u = rng.random(2)
        if u[0] < a_true * dt:
            hi = mid + -np.log(u[0] / (a_true * dt)) / k_true
        if u[1] < a_true * dt:
            lo = mid - -np.log(u[1] / (a_true * dt)) / k_true
        ctx[Ctx.TRADE_HI_TICK] = hi
        ctx[Ctx.TRADE_LO_TICK] = lo
        mid += 1.0 if rng.random() < 0.5 else -1.0
    assert state[pnb.GS.nfit] > 50
    assert state[pnb.GS.k] == pytest.approx(k_true, rel=0.1)
    assert state[pnb.GS.A] == pytest.approx(a_true, rel=0.2)
    assert state[pnb.GS.sigma] == pytest.approx(np.sqrt(1 / dt), rel=0.05)
    # and it quotes around the mid, skewed by inventory
    assert out[Quote.N_BID] == 1 and out[Quote.N_ASK] == 1
    assert out[Quote.BID0] < mid < out[Quote.ASK0]
