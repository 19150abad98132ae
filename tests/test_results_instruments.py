"""Runs of several instruments: per-instrument unit conversion of the logs, the book's
equity, delta and basis worked by hand, and the run metrics (MODELS.md §12)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mmsim.dtypes import EQUITY_DTYPE, FILL_DTYPE, ORDER_LOG_DTYPE
from mmsim.instruments import Instrument
from mmsim.metrics import book_equity, compute_metrics, compute_run_metrics
from mmsim.metrics.metrics import EQUITY_DAYS_PER_YEAR, EQUITY_SESSION_S
from mmsim.results import RunWriter, load

SPOT = Instrument(symbol="BTCUSDT", tick_size=0.01, lot_size=0.001, multiplier=1.0)
PERP = Instrument(symbol="BTCUSD", tick_size=0.1, lot_size=1.0, multiplier=100.0,
                  contract="inverse")
INSTS = [SPOT, PERP]
NAMES = ["spot", "perp"]
S = 1_000_000_000


def _with_instrument(dt: np.dtype) -> np.dtype:
    """The kernel dtype with its ``instrument`` (uint8) field, whether or not
    :mod:`mmsim.dtypes` has it yet."""
    if "instrument" in dt.names:
        return dt
    return np.dtype([(n, dt.fields[n][0]) for n in dt.names] + [("instrument", "u1")],
                    align=True)


FILL = _with_instrument(FILL_DTYPE)
ORDER = _with_instrument(ORDER_LOG_DTYPE)
EQUITY = _with_instrument(EQUITY_DTYPE)


def _fills() -> np.ndarray:
    """Buy 1 BTC spot at 30000 (maker, fee 3 USD); sell 300 perp contracts at 30000 (taker,
    hedge, fee 0.0001 coin). Order ids repeat across instruments."""
    f = np.zeros(3, FILL)
    f["instrument"] = [0, 1, 0]
    f["exch_ts"] = [30 * S, 31 * S, 40 * S]
    f["local_ts"] = f["exch_ts"] + 1000
    f["order_id"] = [1, 1, 2]
    f["price_tick"] = [3_000_000, 300_000, 2_999_900]
    f["qty"] = [600, 300, 400]
    f["position"] = [600, -300, 1000]
    f["fee"] = [1.8, 0.0001, 1.2]
    f["cash"] = [-18_001.8, -1.0001, -30_003.0]
    f["mid_tick"] = [3_000_100, 300_050, np.nan]
    f["queue_ahead"] = [5, 0, 7]
    f["side"] = [1, -1, 1]
    f["liquidity"] = [1, 2, 1]
    f["is_hedge"] = [0, 1, 0]
    return f


def _orders() -> np.ndarray:
    o = np.zeros(4, ORDER)
    o["instrument"] = [0, 1, 1, 0]
    o["local_ts"] = [29 * S, 30 * S, 30 * S, 39 * S]
    o["exch_ts"] = o["local_ts"] + 500
    o["order_id"] = [1, 1, 1, 2]
    o["event"] = [1, 1, 10, 1]  # submit, submit, fill, submit
    o["side"] = [1, -1, -1, 1]
    o["price_tick"] = [3_000_000, 0, 300_000, 2_999_900]
    o["qty"] = [600, 300, 300, 400]
    o["leaves_qty"] = [600, 300, 0, 400]
    o["fill_qty"] = [0, 0, 300, 0]
    o["tif"] = [1, 3, 3, 0]  # post-only, market, market, gtc
    o["is_hedge"] = [0, 1, 1, 0]
    return o


def _equity() -> np.ndarray:
    """Three samples (1 s, 61 s, 121 s), one row per instrument each, instrument 0 first.
    The perp's book has an empty side at 61 s (mid NaN)."""
    e = np.zeros(6, EQUITY)
    e["instrument"] = [0, 1, 0, 1, 0, 1]
    e["ts"] = np.repeat([1 * S, 61 * S, 121 * S], 2)
    e["position"] = [0, 0, 1000, -300, 1000, -300]
    e["mid_tick"] = [3_000_000, 300_050, 3_005_000, np.nan, 3_010_000, 301_300]
    e["cash"] = [0.0, 0.0, -30_003.0, -1.0001, -30_003.0, -1.0001]
    e["fees"] = [0.0, 0.0, 3.0, 0.0001, 3.0, 0.0001]
    e["traded_qty"] = [0, 0, 1000, 300, 1000, 300]
    e["n_fills"] = [0, 0, 2, 1, 2, 1]
    e["funding"] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    return e


def _write(tmp_path, chunks=2):
    w = RunWriter(tmp_path / "run", overwrite=True)
    w.set_instruments(INSTS, NAMES)
    f, o, e = _fills(), _orders(), _equity()
    if chunks == 2:  # split between the samples: the perp's last mid crosses the chunk
        w.append(f[:2], o[:2], e[:2])
        w.append(f[2:], o[2:], e[2:])
    else:
        w.append(f, o, e)
    w.close_logs()
    fills, orders, equity = w.read_back()
    metrics = compute_run_metrics(fills, equity, orders, INSTS, NAMES)
    run = w.commit(metrics, {"name": "two"}, {"mmsim_version": "test",
                                              "instrument": SPOT.model_dump()}, {})
    return run


# --------------------------------------------------------------------------------------------
# writer: per-instrument units, the instrument column, the manifest
# --------------------------------------------------------------------------------------------


def test_writer_converts_each_record_with_its_instrument(tmp_path):
    _write(tmp_path)
    run = load(tmp_path / "run")
    assert run.instruments == NAMES
    assert run.manifest["instruments"] == [{"name": "spot", "instrument": SPOT.model_dump()},
                                           {"name": "perp", "instrument": PERP.model_dump()}]
    assert [s.model_dump() for s in run.instrument_specs] == [SPOT.model_dump(),
                                                              PERP.model_dump()]
    f = run.fills
    assert list(f.columns)[-1] == "instrument"
    assert f["instrument"].tolist() == ["spot", "perp", "spot"]  # record order kept
    assert f["order_id"].tolist() == [1, 1, 2]
    np.testing.assert_allclose(f["price"], [30_000.0, 30_000.0, 29_999.0])
    np.testing.assert_allclose(f["qty"], [0.6, 300.0, 0.4])
    np.testing.assert_allclose(f["position"], [0.6, -300.0, 1.0])
    np.testing.assert_allclose(f["mid"], [30_001.0, 30_005.0, np.nan])
    np.testing.assert_allclose(f["queue_ahead"], [0.005, 0.0, 0.007])
    np.testing.assert_allclose(f["cash"], [-18_001.8, -1.0001, -30_003.0])  # own currency
    assert f["liquidity"].tolist() == ["maker", "taker", "maker"]
    assert f["is_hedge"].tolist() == [False, True, False]

    o = run.orders
    assert o["instrument"].tolist() == ["spot", "perp", "perp", "spot"]
    np.testing.assert_allclose(o["price"], [30_000.0, np.nan, np.nan, 29_999.0])  # market: NaN
    np.testing.assert_allclose(o["qty"], [0.6, 300.0, 300.0, 0.4])
    np.testing.assert_allclose(o["fill_qty"], [0.0, 0.0, 300.0, 0.0])
    assert o["event"].tolist() == ["submit", "submit", "fill", "submit"]

    e = run.equity
    assert e["instrument"].tolist() == ["spot", "perp"] * 3
    np.testing.assert_allclose(e["mid"], [30_000.0, 30_005.0, 30_050.0, np.nan,
                                          30_100.0, 30_130.0])
    np.testing.assert_allclose(e["position"], [0.0, 0.0, 1.0, -300.0, 1.0, -300.0])
    np.testing.assert_allclose(e["traded_qty"], [0.0, 0.0, 1.0, 300.0, 1.0, 300.0])
    # spot (USD): cash + q·mid. perp (coin): cash − q·100/mid, at 61 s marked at the PERP's
    # last mid 30005 (from the previous chunk), not the spot's 30050
    np.testing.assert_allclose(e["equity"], [0.0, 0.0, 47.0, -1.0001 + 30_000 / 30_005,
                                             97.0, -1.0001 + 30_000 / 30_130], rtol=1e-12)


def test_one_chunk_equals_two_chunks(tmp_path):
    a = _write(tmp_path / "a", chunks=1)
    b = _write(tmp_path / "b", chunks=2)
    for x, y in ((a.fills, b.fills), (a.orders, b.orders), (a.equity, b.equity)):
        pd.testing.assert_frame_equal(x, y)


def test_helpers_select_one_instrument(tmp_path):
    run = _write(tmp_path)
    assert run.instruments == NAMES
    perp = run.fills_of("perp")
    assert len(perp) == 1 and perp.index.tolist() == [0] and perp["qty"].iloc[0] == 300.0
    pd.testing.assert_frame_equal(run.fills_of(0), run.fills_of("spot"))
    assert run.orders_of("perp")["event"].tolist() == ["submit", "fill"]
    assert run.equity_of(1)["ts"].tolist() == [1 * S, 61 * S, 121 * S]
    with pytest.raises(KeyError, match="no instrument"):
        run.fills_of("eth")
    with pytest.raises(KeyError, match="out of range"):
        run.equity_of(2)
    pd.testing.assert_frame_equal(run.book_equity(), book_equity(run.equity, INSTS, NAMES))


def test_single_instrument_writer_names_the_symbol(tmp_path):
    w = RunWriter(tmp_path / "run", SPOT, overwrite=True)
    f = np.zeros(1, FILL_DTYPE)  # the kernel dtype as it is, with or without the field
    f["price_tick"], f["qty"], f["side"], f["liquidity"] = 3_000_000, 5, 1, 1
    e = np.zeros(2, EQUITY_DTYPE)
    e["ts"], e["mid_tick"] = [0, S], [3_000_000, 3_000_100]
    w.append(f, np.zeros(0, ORDER_LOG_DTYPE), e)
    w.close_logs()
    w.read_back()
    run = w.commit({}, {"name": "one"}, {"mmsim_version": "test"}, {})
    assert run.instruments == ["BTCUSDT"]
    run = load(tmp_path / "run")
    assert run.instruments == ["BTCUSDT"]
    assert run.fills["instrument"].tolist() == ["BTCUSDT"]
    assert run.equity["instrument"].tolist() == ["BTCUSDT"] * 2
    assert list(run.orders.columns)[-1] == "instrument" and len(run.orders) == 0
    assert run.fills["price"].iloc[0] == 30_000.0 and run.fills["qty"].iloc[0] == 0.005
    assert run.fills_of("BTCUSDT") is run.fills


def test_old_run_without_instrument_column_loads(tmp_path):
    """A run written before the column: load adds it from the manifest's instrument."""
    run = _write(tmp_path)
    d = run.run_dir
    for name in ("fills", "orders", "equity"):
        p = d / f"{name}.parquet"
        df = pd.read_parquet(p)
        df[df["instrument"] == "spot"].drop(columns="instrument").to_parquet(p, index=False)
    man = json.loads((d / "manifest.json").read_text())
    del man["instruments"]
    (d / "manifest.json").write_text(json.dumps(man))
    old = load(d)
    assert old.instruments == ["BTCUSDT"]
    assert set(old.equity["instrument"]) == {"BTCUSDT"}
    assert list(old.fills.columns)[-1] == "instrument"


def test_writer_errors(tmp_path):
    w = RunWriter(tmp_path / "run", overwrite=True)
    with pytest.raises(RuntimeError, match="set the instrument"):
        w.append(_fills(), _orders(), _equity())
    with pytest.raises(ValueError, match="names"):
        w.set_instruments(INSTS, ["spot"])
    with pytest.raises(ValueError, match="distinct"):
        w.set_instruments(INSTS, ["x", "x"])
    w.set_instrument(SPOT)
    with pytest.raises(ValueError, match="instrument index 1"):
        w.append(_fills(), _orders(), _equity())
    w.set_instruments(INSTS, NAMES)
    w.append(_fills(), _orders(), _equity())
    with pytest.raises(RuntimeError, match="appended already"):
        w.set_instruments(INSTS, NAMES)
    w.abort()  # a failed run leaves nothing that looks complete
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


# --------------------------------------------------------------------------------------------
# book equity, worked by hand
# --------------------------------------------------------------------------------------------


def _frames(tmp_path):
    run = _write(tmp_path)
    return run.fills, run.equity, run.orders


def test_book_equity_by_hand(tmp_path):
    _, equity, _ = _frames(tmp_path)
    b = book_equity(equity, INSTS, NAMES)
    assert b.index.name == "ts" and b.index.tolist() == [1 * S, 61 * S, 121 * S]
    # spot, linear USD: 0; −30003 + 1·30050 = 47; −30003 + 1·30100 = 97
    np.testing.assert_allclose(b["value_spot"], [0.0, 47.0, 97.0])
    # perp, inverse: coin equity × its own mid (forward-filled over the empty side):
    # 61 s: (−1.0001 + 30000/30005)·30005 = −30008.0005 + 30000 = −8.0005
    # 121 s: (−1.0001 + 30000/30130)·30130 = −30133.013 + 30000 = −133.013
    np.testing.assert_allclose(b["value_perp"], [0.0, -8.0005, -133.013], rtol=1e-9)
    np.testing.assert_allclose(b["mid_perp"], [30_005.0, 30_005.0, 30_130.0])
    np.testing.assert_allclose(b["equity_perp"], [0.0, -1.0001 + 30_000 / 30_005,
                                                  -1.0001 + 30_000 / 30_130])
    np.testing.assert_allclose(b["total"], [0.0, 38.9995, -36.013], rtol=1e-9)
    # delta (BTC): spot q·1; perp q·100/mid = −30000/30130; net 130/30130
    np.testing.assert_allclose(b["delta_spot"], [0.0, 1.0, 1.0])
    np.testing.assert_allclose(b["delta_perp"], [0.0, -30_000 / 30_005, -30_000 / 30_130])
    np.testing.assert_allclose(b["delta"].iloc[-1], 130 / 30_130)
    # basis on the raw mids: 5 at 1 s, unknown at 61 s, 30 at 121 s
    np.testing.assert_allclose(b["basis"], [5.0, np.nan, 30.0])
    np.testing.assert_allclose(b["basis_bps"], [5 / 30_000 * 1e4, np.nan, 30 / 30_100 * 1e4])


def test_book_equity_in_coin_and_errors(tmp_path):
    _, equity, _ = _frames(tmp_path)
    coin = book_equity(equity, INSTS, NAMES, report_currency_index=1)
    np.testing.assert_allclose(coin["total"], [0.0, 38.9995 / 30_005, -36.013 / 30_130],
                               rtol=1e-9)
    with pytest.raises(ValueError, match="report_currency_index"):
        book_equity(equity, INSTS, NAMES, report_currency_index=2)
    with pytest.raises(ValueError, match="other times"):
        book_equity(equity.drop(index=5), INSTS, NAMES)
    with pytest.raises(KeyError, match="instrument"):
        book_equity(equity.drop(columns="instrument"), INSTS, NAMES)
    one = book_equity(equity[equity["instrument"] == "spot"], [SPOT], ["spot"])
    assert "basis" not in one.columns
    np.testing.assert_allclose(one["total"], [0.0, 47.0, 97.0])


# --------------------------------------------------------------------------------------------
# run metrics
# --------------------------------------------------------------------------------------------


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        x, y = a[k], b[k]
        assert type(x) is type(y), k
        assert (isinstance(x, float) and math.isnan(x) and math.isnan(y)) or x == y, k


def test_run_metrics_single_instrument_is_compute_metrics(tmp_path):
    fills, equity, orders = _frames(tmp_path)
    sel = [df[df["instrument"] == "spot"].reset_index(drop=True)
           for df in (fills, equity, orders)]
    kw = {"sharpe_clock_s": 30.0, "markout_horizons_s": (0.0, 1.0)}
    got = compute_run_metrics(*sel, [SPOT], ["spot"], max_position=1.0, **kw)
    want = compute_metrics(*[df.drop(columns="instrument") for df in sel], multiplier=1.0,
                           contract="linear", max_position=1.0, **kw)
    _same(got, want)
    assert got["time_at_limit_frac"] == pytest.approx(2 / 3)


def test_run_metrics_two_instruments(tmp_path):
    fills, equity, orders = _frames(tmp_path)
    m = compute_run_metrics(fills, equity, orders, INSTS, NAMES, max_position=1.0)
    per = {}
    for inst, name, limit in ((SPOT, "spot", 1.0), (PERP, "perp", None)):
        sel = [df[df["instrument"] == name].drop(columns="instrument")
               for df in (fills, equity, orders)]
        per[name] = compute_metrics(*sel, multiplier=inst.multiplier, contract=inst.contract,
                                    max_position=limit)
    _same({k: m[k] for k in per["spot"]}, per["spot"])  # top level: the quoted instrument
    for name, want in per.items():
        _same({k: m[f"inst.{name}.{k}"] for k in want}, want)
    assert m["n_fills"] == 2 and m["inst.perp.n_fills"] == 1
    assert m["inst.perp.n_hedge_fills"] == 1 and m["inst.perp.final_position"] == -300.0
    # the book, in USD (the worked example of test_book_equity_by_hand)
    assert m["book_pnl"] == pytest.approx(-36.013, rel=1e-9)
    assert m["book_max_drawdown"] == pytest.approx(38.9995 + 36.013, rel=1e-9)
    assert m["book_final_delta"] == pytest.approx(130 / 30_130, rel=1e-12)
    bps0, bps2 = 5 / 30_000 * 1e4, 30 / 30_100 * 1e4
    assert m["basis_mean_bps"] == pytest.approx((bps0 + bps2) / 2, rel=1e-12)
    assert m["basis_last_bps"] == pytest.approx(bps2, rel=1e-12)
    # 60 s clock from 1 s: buckets end at 61, 121, 181 s -> values 0, 0, 38.9995, -36.013
    r = np.array([0.0, 38.9995, -75.0125])
    ppy = EQUITY_DAYS_PER_YEAR * EQUITY_SESSION_S / 60.0
    assert m["book_sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy),
                                             rel=1e-9)
    json.dumps(m, allow_nan=True)
    assert all(isinstance(v, (int, float)) for v in m.values())


def test_compute_metrics_refuses_mixed_instruments(tmp_path):
    fills, equity, orders = _frames(tmp_path)
    with pytest.raises(ValueError, match="several instruments"):
        compute_metrics(fills, equity, orders)
    with pytest.raises(ValueError, match="limits"):
        compute_run_metrics(fills, equity, orders, INSTS, NAMES, max_position=[1.0])


def test_report_of_two_instruments(tmp_path):
    from mmsim.report import report_run

    run = _write(tmp_path)
    page = report_run(run.run_dir, tmp_path / "rep")
    assert page.name == "report.html"  # the interactive page (tests/test_report_html.py)
    text = (tmp_path / "rep" / "charts.html").read_text()  # the PNG page
    for png in ("book", "equity_inventory_0_spot", "equity_inventory_1_perp", "fills_0_spot",
                "fills_1_perp", "markout", "pnl_split"):
        assert (tmp_path / "rep" / f"{png}.png").stat().st_size > 5_000, png
    assert text.count("data:image/png;base64,") == 7
    for word in ("Instruments", "book_final_delta", "basis_last_bps", "perp (instrument 1)",
                 "coin (inverse contract)", "inst.perp.pnl"):
        assert word in text, word


def test_the_read_back_decodes_through_the_c_allocator_and_restores_the_default_pool(
        tmp_path, monkeypatch):
    """The logs are read back through Arrow's system pool (mimalloc, the default, keeps freed
    pages: the pipeline's peak memory is there), and the caller's default pool is back after
    the read, also after a read that fails."""
    import pyarrow as pa

    default = pa.default_memory_pool()
    used = []
    real = pd.read_parquet

    def spy(path, *a, **k):
        used.append(pa.default_memory_pool().backend_name)
        return real(path, *a, **k)

    monkeypatch.setattr(pd, "read_parquet", spy)
    run = _write(tmp_path)
    assert used == ["system"] * 3
    assert pa.default_memory_pool().backend_name == default.backend_name
    assert len(run.fills) == len(_fills()) and len(run.equity) == len(_equity())

    w = RunWriter(tmp_path / "run2", overwrite=True)
    w.set_instruments(INSTS, NAMES)
    w.append(_fills(), _orders(), _equity())
    w.close_logs()
    (w.tmp / "orders.parquet").write_bytes(b"not parquet")
    with pytest.raises(pa.ArrowInvalid):
        w.read_back()
    assert pa.default_memory_pool().backend_name == default.backend_name
