"""Ho & Stoll (1981) dealer quotes, as corrected in MODELS.md §4: centre ``mid − γσ²qτ``,
half spread ``c + γσ²τ/2``. Hand cases on a built ``ctx``, then the model market."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmsim.config import ConfigError
from mmsim.contracts import CTX_SIZE, QUOTE_SIZE, Ctx, Quote
from mmsim.kernels import OK
from mmsim.modelmarket.config import MarketConfig
from mmsim.modelmarket.run import run_paths
from mmsim.policies.registry import get_policy

TICK = 0.01


def _ctx(mid_px=100.0, pos=0.0, tau=0.5, vol_tick=0.0, bb=np.nan, ba=np.nan):
    ctx = np.zeros(CTX_SIZE)
    ctx[Ctx.MID_TICK] = ctx[Ctx.WMID_TICK] = mid_px / TICK
    ctx[Ctx.BEST_BID_TICK], ctx[Ctx.BEST_ASK_TICK] = bb, ba
    ctx[Ctx.TICK_SIZE] = TICK
    ctx[Ctx.LOT_SIZE] = 1.0
    ctx[Ctx.POSITION] = pos
    ctx[Ctx.TIME_TO_HORIZON_S] = tau
    ctx[Ctx.VOL_TICK] = vol_tick
    return ctx


def _quote(values, ctx):
    spec = get_policy("ho_stoll")
    out = np.zeros(QUOTE_SIZE)
    assert spec.kernel(ctx, spec.param_vector(values), spec.state_vector(), out) == OK
    bid = out[Quote.BID0] * TICK if out[Quote.N_BID] else None
    ask = out[Quote.ASK0] * TICK if out[Quote.N_ASK] else None
    return bid, ask, out


def test_hand_case():
    # γσ²τ = 0.1·4·0.5 = 0.2; q = 3: centre 100 − 0.6 = 99.4; half 0.05 + 0.1 = 0.15
    b, a, out = _quote({"c_px": 0.05, "gamma": 0.1, "sigma_px": 2.0}, _ctx(pos=3.0))
    assert b == pytest.approx(99.25, abs=1e-9) and a == pytest.approx(99.55, abs=1e-9)
    assert out[Quote.BID0 + 1] == out[Quote.ASK0 + 1] == 1.0
    # short 2 orders of 5 lots (position −10): centre 100 + 0.4
    b, a, out = _quote({"c_px": 0.05, "gamma": 0.1, "sigma_px": 2.0, "order_qty": 5},
                       _ctx(pos=-10.0))
    assert b == pytest.approx(100.25, abs=1e-9) and a == pytest.approx(100.55, abs=1e-9)
    assert out[Quote.BID0 + 1] == 5.0


def test_sigma_and_tau_defaults():
    # σ = 0 → the engine's estimate: 150 ticks/√s = 1.5/√s; no horizon → tau_s = 2 s
    # γσ²τ = 0.2·2.25·2 = 0.9; flat: 100 ∓ (0.1 + 0.45)
    b, a, _ = _quote({"c_px": 0.1, "gamma": 0.2, "tau_s": 2.0},
                     _ctx(tau=math.inf, vol_tick=150.0))
    assert b == pytest.approx(99.45, abs=1e-9) and a == pytest.approx(100.55, abs=1e-9)
    # at the horizon only the fixed cost is left
    b, a, _ = _quote({"c_px": 0.1, "gamma": 0.2, "sigma_px": 1.0}, _ctx(pos=4.0, tau=0.0))
    assert b == pytest.approx(99.9, abs=1e-9) and a == pytest.approx(100.1, abs=1e-9)


def test_rounding_and_the_touch():
    # bid floored, ask ceiled to ticks; held one tick off the other side of a book
    b, a, _ = _quote({"c_px": 0.013, "gamma": 0.1, "sigma_px": 0.0}, _ctx())
    assert b == pytest.approx(99.98, abs=1e-9) and a == pytest.approx(100.02, abs=1e-9)
    b, a, _ = _quote({"c_px": 0.0, "gamma": 0.1, "sigma_px": 2.0},
                     _ctx(pos=10.0, bb=99.0 / TICK, ba=99.02 / TICK))
    assert a == pytest.approx(99.01, abs=1e-9)  # centre 98, ask 98.1 held above the bid
    b, a, _ = _quote({"c_px": 0.0, "gamma": 0.1}, _ctx(mid_px=math.nan))
    assert b is None and a is None


def test_declared_ranges():
    spec = get_policy("ho_stoll")
    with pytest.raises(ConfigError, match="policy.c_px"):
        spec.param_vector({"c_px": -0.1, "gamma": 0.1})
    with pytest.raises(ConfigError, match="policy.gamma"):
        spec.param_vector({"c_px": 0.1})


def test_in_the_model_market_inventory_risk_tightens_the_inventory():
    """On the AS (2008) §3.3 paths, more risk aversion keeps |q_T| smaller, and the fixed
    cost widens the average spread by 2c (the inventory part is γσ²τ on average)."""
    m = MarketConfig()
    lo = run_paths("ho_stoll", {"c_px": 0.7, "gamma": 0.01}, m, 400, 3)
    hi = run_paths("ho_stoll", {"c_px": 0.7, "gamma": 0.5}, m, 400, 3)
    assert hi.q.std() < 0.7 * lo.q.std()
    wide = run_paths("ho_stoll", {"c_px": 1.2, "gamma": 0.01}, m, 400, 3)
    assert wide.avg_spread - lo.avg_spread == pytest.approx(1.0, abs=2 * m.tick_size_px)
