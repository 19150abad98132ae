"""Model-market mode and the Avellaneda–Stoikov (2008) §3.3 reproduction (MODELS.md §1, §2).

Ladder: hand-checked kernels and fill cases → determinism and thread/batch independence →
the policy contract shared with the replay engine → the γ = 0.1 rows of
``experiments/as2008.yaml`` against the published figures, within their sampling error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
from engine_harness import Harness

from mmsim.config import ConfigError
from mmsim.contracts import CTX_SIZE, POLICY_SIG, QUOTE_SIZE, Ctx, Quote
from mmsim.enums import EventKind as K
from mmsim.modelmarket import nb as mnb
from mmsim.modelmarket import run as mrun
from mmsim.modelmarket import run_experiment
from mmsim.modelmarket.config import MarketConfig
from mmsim.modelmarket.run import moment_stats, run_paths
from mmsim.policies.registry import KernelSpec, get_policy, register_policy

REPO = Path(__file__).resolve().parents[1]
AS2008 = REPO / "experiments" / "as2008.yaml"
PAPER = MarketConfig()  # defaults are the paper's §3.3 set-up
TICK = PAPER.tick_size_px

# ---- kernels by hand -------------------------------------------------------------------------


def _ctx(mid_px=100.0, pos=0.0, tau=0.5, tick=TICK, lot=1.0):
    ctx = np.zeros(CTX_SIZE)
    ctx[Ctx.MID_TICK] = ctx[Ctx.WMID_TICK] = mid_px / tick
    ctx[Ctx.BEST_BID_TICK] = ctx[Ctx.BEST_ASK_TICK] = np.nan
    ctx[Ctx.TICK_SIZE] = tick
    ctx[Ctx.LOT_SIZE] = lot
    ctx[Ctx.POSITION] = pos
    ctx[Ctx.TIME_TO_HORIZON_S] = tau
    return ctx


def _quote(name, params, ctx):
    spec = get_policy(name)
    out = np.zeros(QUOTE_SIZE)
    assert spec.kernel(ctx, spec.param_vector(params), spec.state_vector(), out) == 0
    return out[Quote.BID0] * ctx[Ctx.TICK_SIZE], out[Quote.ASK0] * ctx[Ctx.TICK_SIZE]


def test_symmetric_quotes_mid_plus_minus_half_spread_whatever_the_inventory():
    for pos in (0.0, 5.0, -7.0):
        b, a = _quote("symmetric", {"half_spread_px": 0.75}, _ctx(pos=pos))
        assert b == pytest.approx(99.25, abs=TICK) and a == pytest.approx(100.75, abs=TICK)


@pytest.mark.parametrize("gamma,pos", [(0.1, 0.0), (0.1, 3.0), (1.0, -2.0), (0.01, 10.0)])
def test_glft_matches_the_closed_form(gamma, pos):
    k, a_int, sigma, delta = 1.5, 140.0, 2.0, 1.0
    c1 = math.log(1 + gamma * delta / k) / (gamma * delta)
    c2 = math.sqrt(gamma / (2 * a_int * delta * k)
                   * (1 + gamma * delta / k) ** (k / (gamma * delta) + 1))
    half, skew = c1 + 0.5 * delta * sigma * c2, sigma * c2
    b, a = _quote("glft", {"gamma": gamma, "k": k, "A": a_int, "sigma_px": sigma},
                  _ctx(pos=pos))
    assert b == pytest.approx(100 - half - skew * pos, abs=1.01 * TICK)
    assert a == pytest.approx(100 + half - skew * pos, abs=1.01 * TICK)


def test_fill_probability_hand_case():
    # A = 140, k = 1.5, δ = 0.745, dt = 0.005: 140·e^(−1.1175)·0.005 = 0.22890...
    p = mnb.fill_probability_nb(140.0, 1.5, 0.745, 0.005)
    assert p == pytest.approx(140 * math.exp(-1.5 * 0.745) * 0.005, rel=1e-12)
    assert p == pytest.approx(0.2289, abs=1e-4)
    assert mnb.fill_probability_nb(140.0, 1.5, -3.0, 0.005) == 1.0  # capped at 1
    assert mnb.fill_probability_nb(0.0, 1.5, 0.1, 0.005) == 0.0


def test_uniforms_are_uniform_and_keyed():
    key = mnb.path_key_nb(1, 0)
    u = np.array([mnb.uniform_nb(key, i, 0) for i in range(20000)])
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / u.size)
    assert mnb.path_key_nb(1, 0) != mnb.path_key_nb(1, 1) != mnb.path_key_nb(2, 0)


# ---- the fill model on hand cases ------------------------------------------------------------


def test_certain_fills_on_both_sides_earn_the_spread_every_step():
    # A·dt ≥ 1 at the quoted distance: both sides fill every step, q stays 0
    m = MarketConfig(fill_a_per_s=1e6, horizon_s=1.0, dt_s=0.01)
    r = run_paths("symmetric", {"half_spread_px": 0.25}, m, 7, seed=3)
    assert np.all(r.q == 0.0)
    np.testing.assert_allclose(r.profit, 2 * 0.25 * 100, rtol=1e-9)
    assert r.avg_spread == pytest.approx(0.5, abs=2 * TICK)


def test_fill_is_at_the_quote_set_before_the_mid_moves():
    # one step: a certain bid fill at s0 − 0.5, then the mid moves ±σ√dt = ±2
    m = MarketConfig(fill_a_per_s=1e6, horizon_s=1.0, dt_s=1.0)
    mid_tick = 100.0 / TICK
    r = run_paths("static", {"bid_tick": mid_tick - 0.5 / TICK, "bid_qty": 1}, m, 64, seed=5)
    assert np.all(r.q == 1.0)
    np.testing.assert_allclose(np.abs(r.s_final - 100.0), 2.0, rtol=1e-12)
    np.testing.assert_allclose(r.profit, 0.5 + (r.s_final - 100.0), rtol=1e-9)
    assert 0 < np.sum(r.s_final > 100) < 64  # both directions occur


def test_fill_frequency_matches_the_intensity_on_a_flat_mid():
    m = MarketConfig(sigma=0.0)
    h = 0.6
    r = run_paths("symmetric", {"half_spread_px": h}, m, 2000, seed=11)
    p = 140 * math.exp(-1.5 * h) * 0.005
    n = r.n_paths * r.n_steps
    for col in (mnb.R_BID_FILLS, mnb.R_ASK_FILLS):
        freq = r.res[:, col].sum() / n
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n)
    fills = r.res[:, mnb.R_BID_FILLS] + r.res[:, mnb.R_ASK_FILLS]
    np.testing.assert_allclose(r.profit, h * fills, rtol=1e-9, atol=1e-6)  # flat mid: h per fill


def test_infinite_horizon_holds_the_spread_constant():
    g, k, tau = 0.1, 1.5, 0.5
    r = run_paths("avellaneda_stoikov", {"gamma": g, "k": k, "sigma_px": 2.0, "tau_s": tau},
                  PAPER, 50, seed=1, horizon="infinite")
    spread = g * 4.0 * tau + 2 / g * math.log(1 + g / k)
    assert r.avg_spread == pytest.approx(spread, abs=2 * TICK)


@pytest.mark.parametrize("dynamics", ["abm", "gbm"])
def test_brownian_mid_options(dynamics):
    m = MarketConfig(dynamics=dynamics, sigma=2.0 if dynamics == "abm" else 0.02)
    r = run_paths("symmetric", {"half_spread_px": 0.7}, m, 4000, seed=2)
    ds = r.s_final - 100.0 if dynamics == "abm" else np.log(r.s_final / 100.0)
    mean = 0.0 if dynamics == "abm" else -0.5 * 0.02**2
    assert abs(ds.mean() - mean) < 4 * ds.std() / math.sqrt(ds.size)
    assert ds.std() == pytest.approx(m.sigma, rel=0.05)


# ---- determinism, threads, batches -----------------------------------------------------------

AS01 = {"gamma": 0.1, "k": 1.5, "sigma_px": 2.0}


def test_same_seed_same_results_other_seed_other_results():
    a = run_paths("avellaneda_stoikov", AS01, PAPER, 300, seed=42)
    b = run_paths("avellaneda_stoikov", AS01, PAPER, 300, seed=42)
    c = run_paths("avellaneda_stoikov", AS01, PAPER, 300, seed=43)
    np.testing.assert_array_equal(a.res, b.res)
    assert not np.array_equal(a.profit, c.profit)


def test_every_strategy_sees_the_same_mid_paths():
    a = run_paths("avellaneda_stoikov", AS01, PAPER, 200, seed=9)
    b = run_paths("glft", {"gamma": 0.1, "k": 1.5, "A": 140.0, "sigma_px": 2.0}, PAPER, 200,
                  seed=9)
    np.testing.assert_array_equal(a.s_final, b.s_final)


def test_results_do_not_depend_on_thread_count_or_batching(monkeypatch):
    ref = run_paths("avellaneda_stoikov", AS01, PAPER, 257, seed=8)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_paths("avellaneda_stoikov", AS01, PAPER, 257, seed=8)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(ref.res, one.res)
    monkeypatch.setattr(mrun, "BATCH_PATHS", 50)
    batched = run_paths("avellaneda_stoikov", AS01, PAPER, 257, seed=8)
    np.testing.assert_array_equal(ref.res, batched.res)


# ---- the policy contract: one kernel object, two drivers --------------------------------------


@numba.njit(POLICY_SIG, cache=True)
def _recorder_nb(ctx, params, state, out):
    """Counts calls and records the ctx it saw first; quotes nothing."""
    if state[0] == 0.0:
        state[1] = ctx[Ctx.MID_TICK]
        state[2] = ctx[Ctx.TIME_TO_HORIZON_S]
        state[3] = ctx[Ctx.TICK_SIZE]
        state[4] = ctx[Ctx.LOT_SIZE]
        state[5] = ctx[Ctx.POSITION]
        state[6] = ctx[Ctx.VOL_TICK]
        state[7] = 1.0 if np.isnan(ctx[Ctx.BEST_BID_TICK]) else 0.0
        state[8] = ctx[Ctx.MAX_POSITION]
        state[9] = ctx[Ctx.REASON]
        state[10] = ctx[Ctx.TIME_S]
    state[0] += 1.0
    return 0


register_policy(KernelSpec("test_ctx_recorder", _recorder_nb, {}, doc="test only"))


def test_driver_and_replay_engine_call_the_same_kernel(monkeypatch):
    spec = get_policy("test_ctx_recorder")
    seen = {}
    real = mnb.run_paths_nb

    def spy(policy, pparams, state_init, states, *rest):
        seen["policy"] = policy
        seen["states"] = states
        return real(policy, pparams, state_init, states, *rest)

    monkeypatch.setattr(mnb, "run_paths_nb", spy)
    run_paths("test_ctx_recorder", {}, PAPER, 3, seed=0)
    assert seen["policy"] is spec.kernel
    st = seen["states"]
    np.testing.assert_array_equal(st[:, 0], PAPER.n_steps)  # called once per step
    assert st[0, 1] == pytest.approx(100.0 / TICK)  # mid in ticks
    assert st[0, 2] == 1.0 and st[0, 10] == 0.0  # T − t at t = 0
    assert st[0, 3] == TICK and st[0, 4] == 1.0 and st[0, 5] == 0.0
    assert st[0, 6] == pytest.approx(2.0 / TICK)  # σ in ticks per √(time unit)
    assert st[0, 7] == 1.0 and st[0, 8] == np.inf and st[0, 9] == 0.0

    # the replay engine holds and calls that very object
    h = Harness(policy="test_ctx_recorder")
    assert h.engine.policy.kernel is spec.kernel
    h.feed([(0, K.ADD, 1, 9999, 100, 1), (0, K.ADD, -1, 10001, 100, 2),
            (450, K.ADD, 1, 9998, 5, 3)], final=True)
    assert h.engine.pstate[0] >= 4  # decided every 100 ms
    assert h.engine.pstate[1] == 10000.0 and h.engine.pstate[7] == 0.0


# ---- the experiment and the published figures ------------------------------------------------

#: Avellaneda & Stoikov (2008), γ = 0.1 (MODELS.md §1): spread, mean/std profit, mean/std q.
PUBLISHED = {
    "inventory_g01": {"spread": 1.49, "profit_mean": 65.0, "profit_std": 6.6,
                      "q_mean": 0.08, "q_std": 2.9},
    "symmetric_g01": {"spread": 1.49, "profit_mean": 68.4, "profit_std": 12.7,
                      "q_mean": 0.26, "q_std": 8.4},
}
#: Half a unit of the last digit the paper prints.
ROUNDING = {"spread": 0.005, "profit_mean": 0.05, "profit_std": 0.05, "q_mean": 0.005,
            "q_std": 0.05}
Z = 3.0


@pytest.fixture(scope="module")
def as2008(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "as2008"
    return run_experiment(AS2008, out=out)


def test_run_directory_is_complete(as2008):
    d = as2008.run_dir
    assert d.is_dir() and not d.with_name(d.name + ".partial").exists()
    man = json.loads((d / "manifest.json").read_text())
    assert man["complete"] is True and man["seed"] == as2008.config.seed
    assert man["config_digest"] == as2008.config.digest()
    pd.testing.assert_frame_equal(pd.read_parquet(d / "table.parquet"), as2008.table)
    assert (d / "table.md").read_text() == as2008.markdown
    assert sorted(p.name for p in d.glob("profit_hist_*.png"))
    assert len(as2008.table) == 12 and as2008.config.paths == 1000


def tolerance(figure: str, row: pd.Series) -> float:
    """The 3-sigma band for ``ours − published``.

    Both figures are 1000-path Monte-Carlo estimates of the same quantity, so their difference
    has standard error √2·SE (SE of ours: std/√n for a mean; std·√((κ − 1)/(4n)) for a std);
    the paper's rounding adds half a unit of its last digit. The average spread is not random
    (the AS spread does not depend on q): it is 1.4918 for any path, up to tick rounding, so its
    band is the paper's rounding plus two ticks.
    """
    if figure == "spread":
        return ROUNDING[figure] + 2 * TICK
    return Z * math.sqrt(2.0) * float(row[f"{figure}_se"]) + ROUNDING[figure]


@pytest.mark.parametrize("strategy", sorted(PUBLISHED))
@pytest.mark.parametrize("figure", ["spread", "profit_mean", "profit_std", "q_mean", "q_std"])
def test_gamma_01_matches_the_published_figures(as2008, strategy, figure):
    row = as2008.table.set_index("strategy").loc[strategy]
    ours, pub = float(row[figure]), PUBLISHED[strategy][figure]
    tol = tolerance(figure, row)
    assert abs(ours - pub) <= tol, (
        f"{strategy} {figure}: ours {ours:.3f}, published {pub}, band ±{tol:.3f}"
    )


def test_symmetric_has_the_inventory_spread_and_more_risk(as2008):
    t = as2008.table.set_index("strategy")
    for g in ("g001", "g01", "g1"):
        inv, sym = t.loc[f"inventory_{g}"], t.loc[f"symmetric_{g}"]
        assert sym.spread == pytest.approx(inv.spread, abs=2 * TICK)
        assert sym.profit_std > inv.profit_std and sym.q_std > inv.q_std


def test_overrides_and_config_errors(tmp_path):
    res = run_experiment(AS2008, out=tmp_path / "small",
                         overrides=["paths=20", "strategies.inventory_g01.policy.gamma=0.2"])
    assert res.config.paths == 20
    assert res.table.set_index("strategy").loc["inventory_g01", "gamma"] == 0.2
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: model_market\nstrategies:\n  a: {policy: {name: symmetric}, "
                   "match_spread_of: b}\n")
    with pytest.raises(ConfigError, match="match_spread_of"):
        run_experiment(bad, out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_moment_stats_standard_errors():
    x = np.random.default_rng(0).normal(3.0, 2.0, 100_000)
    s = moment_stats(x)
    assert s["se_mean"] == pytest.approx(2.0 / math.sqrt(x.size), rel=0.01)
    assert s["se_std"] == pytest.approx(2.0 / math.sqrt(2 * x.size), rel=0.02)
