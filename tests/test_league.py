"""The league sweep (experiments/league.yaml) and its table (experiments/league_table.py).

No real data is read: the YAML is only planned, the table is formatted from a fake sweep
table and from a tiny synthetic sweep run through the same code.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from mmsim.kernels import REGISTRY
from mmsim.results import load_sweep
from mmsim.sweep import build_table, plan_sweep, run_sweep, write_table

REPO = Path(__file__).parents[1]
LEAGUE = REPO / "experiments" / "league.yaml"
MARKETS = {"AMZN", "ESH4", "BTCUSDT"}
#: registered policies that do not quote (kept out of the league)
NOT_QUOTING = {"static"}


def _load_table_module():
    spec = importlib.util.spec_from_file_location("league_table",
                                                  REPO / "experiments" / "league_table.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


lt = _load_table_module()


def _kernel_module(spec) -> str:
    """The module a policy's kernel lives in, without importing or compiling it."""
    k = spec._kernel  # a "module:attribute" string until first use, else a dispatcher
    if isinstance(k, str):
        return k.partition(":")[0]
    return getattr(getattr(k, "py_func", k), "__module__", "") or ""


def quoting_policies() -> set[str]:
    """The policies mmsim itself registers (not the ones other test modules add), minus
    those that never quote."""
    import mmsim.policies.registry  # noqa: F401 - registers the built-ins

    return {s.name for s in REGISTRY.specs("policy")
            if _kernel_module(s).startswith("mmsim.")} - NOT_QUOTING


@pytest.fixture(scope="module")
def plan():
    return plan_sweep(LEAGUE)


#: the cases that run a policy with more of the engine on (named by the case's ``name``)
VARIANTS = {"risk_layer"}


def _cases(plan, variants: bool = False) -> list[tuple[str, str, dict]]:
    return [(r.params["instrument"]["symbol"], r.params["policy"]["name"], r.params)
            for r in plan.runs if (r.params["name"] in VARIANTS) == variants]


def test_league_yaml_expands_to_every_market_and_policy(plan):
    assert [r.error for r in plan.runs if r.error] == []
    assert plan.param_columns == ["data", "instrument", "latency", "queue", "engine", "risk",
                                  "metrics", "name", "signals", "quoting", "policy"]
    cases = _cases(plan)
    pairs = [(m, p) for m, p, _ in cases]
    assert len(pairs) == len(set(pairs)), "a (market, policy) case is listed twice"
    policies = quoting_policies()
    assert len(policies) >= 10
    assert {m for m, _ in pairs} == MARKETS
    for market in MARKETS:
        listed = {p for m, p in pairs if m == market}
        assert listed == policies, (
            f"{market}: missing {sorted(policies - listed)}, extra {sorted(listed - policies)}"
            " (a new policy needs its case in experiments/league.yaml)")
    assert len(plan.runs) == len(MARKETS) * (len(policies) + len(VARIANTS))


def test_every_market_runs_the_risk_layer_and_the_signals(plan):
    """The risk limits (soft limit, volatility breaker, order-flow pause, break-even rule)
    and the signals they need, on every market, by the same rule."""
    variants = _cases(plan, variants=True)
    assert sorted(m for m, _, _ in variants) == sorted(MARKETS)
    plain = {m: params for m, p, params in _cases(plan) if p == "avellaneda_stoikov"}
    for m, p, params in variants:
        assert params["name"] in VARIANTS and p == "avellaneda_stoikov"
        assert params["policy"] == plain[m]["policy"]  # the same quotes, the layer on top
        risk = params["risk"]
        assert risk["max_position_qty"] == plain[m]["risk"]["max_position_qty"]
        assert risk["soft_position_qty"] == pytest.approx(0.6 * risk["max_position_qty"])
        assert {"vol_breaker_ratio", "ofi_pause_qty"} <= set(risk)
        assert "signals" in params and params["quoting"]["skip_below_break_even"]


def test_league_cases_share_their_market_sections(plan):
    by_market: dict[str, list[dict]] = {}
    for m, _, params in _cases(plan):
        by_market.setdefault(m, []).append(params)
    kinds = {"AMZN": ("lobster", "fifo"), "ESH4": ("databento", "fifo"),
             "BTCUSDT": ("binance", "power")}
    for m, rows in by_market.items():
        for key in ("data", "instrument", "latency", "queue", "engine", "risk", "metrics"):
            assert all(r[key] == rows[0][key] for r in rows), f"{m}: '{key}' differs"
        first = rows[0]
        assert (first["data"]["kind"], first["queue"]["model"]) == kinds[m]
        assert first["engine"]["decision_interval_nanos"] == 100_000_000
        assert first["engine"]["horizon"] == "none"
        sizes = {r["policy"].get("order_qty", r["policy"].get("Q0_lots")) for r in rows}
        assert len(sizes) == 1, f"{m}: order sizes differ: {sizes}"


def _fake_table() -> pd.DataFrame:
    inst = {"symbol": "AMZN", "tick_size": 0.01, "lot_size": 1}
    base = {"data": json.dumps({"kind": "lobster", "path": "lobster/A_message_1.csv"}),
            "instrument": json.dumps(inst), "queue": json.dumps({"model": "fifo"}),
            "risk": json.dumps({"max_position_qty": 500.0}), "sharpe_clock_s": 60.0}
    rows = [
        {**base, "policy": json.dumps({"name": "glft", "gamma": 0.01}), "status": "ok",
         "pnl": -12.5, "sharpe": -1.234, "n_fills": 1234, "fill_rate_count": 0.5,
         "mean_abs_position": 12.345, "time_at_limit_frac": 0.0,
         "markout_1s": 0.0123, "markout_10s": -0.02, "realized_spread_60s": math.nan},
        {**base, "policy": json.dumps({"name": "symmetric"}), "status": "ok",
         "pnl": 1500.0, "sharpe": 2.0, "n_fills": 10, "fill_rate_count": 0.123,
         "mean_abs_position": 250.0, "time_at_limit_frac": 0.5,
         "markout_1s": -0.01, "markout_10s": 0.0, "realized_spread_60s": 0.04},
        {**base, "policy": json.dumps({"name": "ho_stoll"}), "status": "failed",
         "pnl": math.nan},
        # a market given as dotted columns, not sections
        {"instrument.symbol": "ZZZ", "instrument.tick_size": 0.5, "policy.name": "offset_ticks",
         "status": "ok", "pnl": 1.0, "n_fills": 1, "markout_1s": 1.0},
    ]
    return pd.DataFrame(rows)


def test_league_table_formats_a_fake_sweep():
    text = lt.league_table(_fake_table())
    lines = text.splitlines()
    header = ("| policy | PnL (quote ccy) | Sharpe (ann.) | fills | fill rate (% of quotes) | "
              "mean \\|q\\| (units) | at limit (% of time) | markout 1 s (ticks) | "
              "markout 10 s (ticks) | realized spread 60 s (ticks) |")
    assert lines[0] == ("**AMZN**: lobster `A_message_1.csv`, tick 0.01, queue model fifo, "
                        "position limit 500 units, Sharpe on a 60 s clock")
    assert lines[1] == ""
    assert lines[2] == header
    assert lines[3] == "|---|" + "|".join(["---:"] * 9) + "|"
    # ranked by PnL; markouts in ticks (price / tick size); NaN shown as a dash
    assert lines[4] == ("| symmetric | 1,500.00 | 2.0 | 10 | 12.3 | 250 | 50.0 | -1.00 | +0.00 "
                        "| +4.00 |")
    assert lines[5] == "| glft | -12.50 | -1.2 | 1,234 | 50.0 | 12.35 | 0.0 | +1.23 | -2.00 | – |"
    assert lines[6] == "| ho_stoll | failed | – | – | – | – | – | – | – | – |"
    assert lines[7] == ""
    # the other market follows, its fields read from dotted columns
    assert lines[8] == "**ZZZ**: tick 0.5, queue model auto"
    assert lines[12] == "| offset_ticks | 1.00 | – | 1 | – | – | – | +2.00 | – | – |"
    assert text.endswith("|\n")


def test_league_table_rejects_an_empty_table():
    with pytest.raises(ValueError, match="no rows"):
        lt.league_table(pd.DataFrame())


def test_whole_sections_are_stored_as_json_text(tmp_path):
    """A named axis that sweeps whole sections writes them to sweep.parquet as JSON text, also
    when a section holds an empty mapping (``data.synthetic: {}``: no Parquet struct)."""
    raw = {"name": "t", "data": {"kind": "synthetic"}, "policy": {"name": "fixed_spread",
                                                                  "spread_bps": 2.0},
           "grid": {"case": [
               {"data": {"kind": "lobster", "path": "lobster/a.csv"},
                "policy": {"name": "fixed_spread", "spread_bps": 2.0}},
               {"data": {"kind": "databento", "path": "databento/b.dbn.zst"},
                "policy": {"name": "symmetric", "half_spread_px": 0.05}}]}}
    plan = plan_sweep(raw)
    write_table(build_table(plan, {}), tmp_path)
    df = load_sweep(tmp_path)
    assert list(df["status"]) == ["pending", "pending"]
    data = [json.loads(s) for s in df["data"]]
    assert data[0]["synthetic"] == {} and data[1]["kind"] == "databento"
    assert [json.loads(s)["name"] for s in df["policy"]] == ["fixed_spread", "symmetric"]


def test_league_table_on_a_tiny_synthetic_sweep(tmp_path):
    """Two policies on a small synthetic flow, swept as whole sections like the league, run and
    tabulated by the same code."""
    market = {"data": {"kind": "synthetic", "synthetic": {"n_events": 20_000}},
              "instrument": {"symbol": "SYN", "tick_size": 0.01, "lot_size": 1},
              "risk": {"max_position_qty": 50}}
    raw = {"name": "tiny_league", "seed": 3, **market,
           "policy": {"name": "fixed_spread", "spread_bps": 2.0},
           "grid": {"case": [
               {**market, "policy": {"name": "fixed_spread", "spread_bps": 2.0, "order_qty": 5}},
               {**market, "policy": {"name": "offset_ticks", "offset_ticks": 1, "order_qty": 5}},
           ]}}
    res = run_sweep(raw, out=tmp_path / "s", cache_dir=tmp_path / "cache", jobs=1,
                    progress=False)
    assert res.counts["ok"] == 2
    text = lt.league_table(load_sweep(tmp_path / "s"))
    lines = text.splitlines()
    assert lines[0].startswith("**SYN**: synthetic, tick 0.01")
    rows = [ln for ln in lines if ln.startswith("| fixed_spread |") or
            ln.startswith("| offset_ticks |")]
    assert len(rows) == 2
    for row in rows:
        assert row.count("|") == 11
    assert lt.main([str(tmp_path / "s")]) == 0
    assert lt.main([str(tmp_path / "missing")]) == 2
