"""Integration: real runs end to end, accounting invariants, determinism, CLI, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mmsim
from mmsim.book.nb import ladder_top_nb
from mmsim.cli import main
from mmsim.config import ConfigError, load_config
from mmsim.data.lobster import read_lobster
from mmsim.enums import EventFlag

REPO = Path(__file__).parents[1]
EXP = REPO / "experiments"


def _check_accounting(run, multiplier=1.0):
    f = run.fills
    assert len(f) > 0
    signed = f["side"] * f["qty"]
    # position = sum of signed fill quantities, after every fill
    np.testing.assert_allclose(signed.cumsum().to_numpy(), f["position"].to_numpy())
    # cash = -sum signed notional - sum fees
    notional = (f["side"] * f["qty"] * f["price"] * multiplier).cumsum()
    np.testing.assert_allclose(
        (-notional - f["fee"].cumsum()).to_numpy(), f["cash"].to_numpy(), rtol=1e-9, atol=1e-6
    )
    eq = run.equity
    assert eq["position"].iloc[-1] == pytest.approx(signed.sum())
    assert eq["fees"].iloc[-1] == pytest.approx(f["fee"].sum())
    assert run.metrics["n_fills"] == len(f)


@pytest.mark.realdata
def test_lobster_amzn_as_run_fills_and_accounting(data_root, tmp_path):
    run = mmsim.backtest(EXP / "lobster_amzn_as.yaml", data_root=data_root,
                         out=tmp_path / "run", cache_dir=tmp_path / "cache")
    _check_accounting(run)
    assert run.manifest["complete"] and run.manifest["data_kind"] == "lobster"
    assert set(run.fills["liquidity"]) <= {"maker", "taker"}
    # every fill's exchange time precedes its report at the strategy by the response latency
    assert ((run.fills["local_ts"] - run.fills["exch_ts"]) == 100_000).all()
    assert np.isfinite(run.metrics["sharpe"]) and "realized_spread_10s" in run.metrics
    # the position limit (500) holds at the exchange, at every fill, not only on the clock
    assert run.fills["position"].abs().max() <= 500
    assert run.metrics["max_abs_position"] <= 500
    assert run.metrics["final_position"] == pytest.approx(
        float((run.fills["side"] * run.fills["qty"]).sum()))


@pytest.mark.realdata
def test_databento_es_fixed_run(data_root, tmp_path):
    run = mmsim.backtest(EXP / "databento_es_fixed.yaml", data_root=data_root,
                         out=tmp_path / "run", cache_dir=tmp_path / "cache")
    _check_accounting(run, multiplier=50.0)


@pytest.mark.realdata
def test_numba_book_reconstructs_amzn_orderbook_file(data_root):
    """The engine's own book, fed the canonical AMZN stream, equals the LOBSTER orderbook
    file after every message (best bid/ask price and size)."""
    from engine_harness import Harness

    d = data_root / "lobster"
    msg = d / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    ob = d / "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv"
    ev = read_lobster(msg, ob).events
    book = np.loadtxt(ob, delimiter=",", dtype=np.int64)
    h = Harness(params={})
    base = int(np.median(ev["price_tick"][ev["price_tick"] > 0]))
    h.engine.book["sc"][0] = base - 2048  # recentre (harness ladder is 4096 wide)
    h.engine.lsc[0] = base - 2048
    ends = np.flatnonzero(ev["flags"] & EventFlag.LAST) + 1
    starts = np.concatenate([[0], ends[:-1]])
    assert len(ends) == len(book)
    px = np.empty(1, np.int64)
    q = np.empty(1, np.int64)
    b = h.engine.book
    mismatches = 0
    for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
        h.engine.feed(ev[s:e], h.sink)
        ask_px, ask_sz, bid_px, bid_sz = book[k, :4]
        ok = True
        n = ladder_top_nb(b["lvl"], b["sc"], -1, 1, px, q)
        ok &= (n == 0 and ask_sz == 0) or (n == 1 and px[0] * 100 == ask_px and q[0] == ask_sz)
        n = ladder_top_nb(b["lvl"], b["sc"], 1, 1, px, q)
        ok &= (n == 0 and bid_sz == 0) or (n == 1 and px[0] * 100 == bid_px and q[0] == bid_sz)
        mismatches += not ok
    assert mismatches == 0


def test_default_is_deterministic_byte_for_byte(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        mmsim.backtest(EXP / "default.yaml", out=out, cache_dir=tmp_path / f"cache{k}",
                       overrides=["data.synthetic.n_events=150000"])
        outs.append(out)
    for name in ("fills.parquet", "orders.parquet", "equity.parquet", "metrics.json",
                 "manifest.json", "config.yaml"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_hedger_sends_taking_orders_that_cut_inventory(tmp_path):
    run = mmsim.backtest(
        EXP / "default.yaml", out=tmp_path / "run", cache_dir=tmp_path / "cache",
        overrides=["data.synthetic.n_events=300000", "hedger.threshold=4", "hedger.min_qty=1",
                   "hedger.ratio=1.0", "policy.skew_px=0"],
    )
    _check_accounting(run)
    h = run.fills[run.fills["is_hedge"]]
    assert len(h) > 0
    assert (h["liquidity"] == "taker").all()
    pos_before = h["position"] - h["side"] * h["qty"]
    assert (h["position"].abs() <= pos_before.abs()).all()


def test_cli_backtest_prints_metrics_and_run_dir(tmp_path, capsys):
    out = tmp_path / "cli-run"
    rc = main(["backtest", str(EXP / "default.yaml"), "--out", str(out),
               "--set", "data.synthetic.n_events=100000", "--set", "policy.spread_bps=3"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "synthetic" in text and "summary:" in text and str(out) in text
    cfg = (out / "config.yaml").read_text()
    assert "spread_bps: 3" in cfg
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


def test_failed_run_leaves_nothing_that_looks_complete(tmp_path):
    from mmsim.engine.backtest import EngineCapacityError

    out = tmp_path / "bad"
    with pytest.raises(ConfigError, match="unknown policy 'nope'"):
        mmsim.backtest(EXP / "default.yaml", out=out, cache_dir=tmp_path / "c",
                       overrides=["data.synthetic.n_events=20000", "policy.name=nope"])
    assert not out.exists() and not (tmp_path / "bad.partial").exists()
    # a run that fails halfway through the replay (the book outgrows its order table)
    with pytest.raises(EngineCapacityError):
        mmsim.backtest(EXP / "default.yaml", out=out, cache_dir=tmp_path / "c",
                       overrides=["data.synthetic.n_events=20000", "engine.max_book_orders=17"])
    assert not out.exists() and not (tmp_path / "bad.partial").exists()


def test_config_errors_name_file_and_field(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("data: {kind: synthetic}\npolicy: {name: fixed_spread}\n"
                 "engine: {decision_interval_nanos: -5}\n")
    with pytest.raises(ConfigError, match=r"(?s)x\.yaml.*engine\.decision_interval_nanos"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_missing_data_file_is_named(tmp_path):
    from mmsim.data.errors import DataError

    with pytest.raises(DataError, match="nothere_message_1.csv"):
        mmsim.backtest(EXP / "lobster_amzn_as.yaml", data_root=tmp_path, out=tmp_path / "r",
                       overrides=["data.path=nothere_message_1.csv", "data.orderbook=null"])


def test_backtest_returns_what_load_reads(tmp_path):
    import pandas as pd

    from mmsim.results import load

    run = mmsim.backtest(EXP / "default.yaml", out=tmp_path / "r", cache_dir=tmp_path / "c",
                         overrides=["data.synthetic.n_events=60000"])
    again = load(run.run_dir)
    for name in ("fills", "orders", "equity"):
        pd.testing.assert_frame_equal(getattr(run, name), getattr(again, name))
    assert run.config == again.config
    assert run.manifest == again.manifest
    assert run.metrics.keys() == again.metrics.keys()
    for k, v in run.metrics.items():
        w = again.metrics[k]
        assert (v == w) or (v != v and w != w), k  # equal, or both NaN
