"""The hftbacktest parity harness (``benchmarks/peer_hftbacktest.py``) without the peer venv:
arguments, the mmsim experiment it builds, the clock-start alignment, the comparison and the
JSON document."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import peer_hftbacktest as ph  # noqa: E402
from mmsim.config import config_from_dict  # noqa: E402
from mmsim.dtypes import EVENT_DTYPE, FILL_DTYPE  # noqa: E402
from mmsim.enums import EventFlag, EventKind, OrderEvent  # noqa: E402

MS = 1_000_000
T = 1_700_000_000_000_000_000


def _events(rows):
    """``rows`` of ``(t_ms, kind, side, price_tick, qty, flags)`` → EVENT_DTYPE;
    ``local_ts = exch_ts + 1 ms``."""
    ev = np.zeros(len(rows), EVENT_DTYPE)
    for i, (t, kind, side, px, q, fl) in enumerate(rows):
        ev[i] = (T + int(t * MS), T + int(t * MS) + MS, px, q, 0, 0.0, kind, side, fl)
    return ev


# --- arguments ---------------------------------------------------------------------------------
def test_defaults_are_the_usdm_2024_07_18_19_pair():
    a = ph.parse_args([])
    assert a.files == list(ph.DEFAULT_FILES)
    assert (a.tick_size, a.lot_size, a.order_qty, a.order_lots) == (0.1, 0.001, 0.01, 10)
    assert a.inverse is None and a.json is None and not a.spot
    assert a.repeats == 3 and a.rounds == 3 and a.clock_start == "peer"


def test_spot_grid_files_and_overrides():
    a = ph.parse_args(["--spot", "--files", " binance/spot/a.gz , binance/spot/b.gz ,"])
    assert a.files == ["binance/spot/a.gz", "binance/spot/b.gz"]
    assert (a.tick_size, a.lot_size, a.order_lots) == (0.01, 0.000001, 10_000)
    b = ph.parse_args(["--tick-size", "0.5", "--lot-size", "1", "--order-qty", "3",
                       "--inverse", "100", "--json", "x.json", "--repeats", "1"])
    assert (b.tick_size, b.lot_size, b.order_lots, b.inverse, b.json) == (
        0.5, 1.0, 3, 100.0, "x.json")


@pytest.mark.parametrize("argv", [
    ["--order-qty", "0.0015"],          # not a multiple of the 0.001 lot
    ["--order-qty", "0"],
    ["--inverse", "0"],
    ["--spot", "--inverse", "100"],
    ["--files", ","],
    ["--repeats", "0"],
    ["--rounds", "0"],
    ["--clock-start", "sometime"],
])
def test_bad_arguments_exit(argv):
    with pytest.raises(SystemExit):
        ph.parse_args(argv)


def test_order_lots():
    assert ph.order_lots(0.01, 0.001) == 10
    assert ph.order_lots(0.01, 0.000001) == 10_000
    with pytest.raises(ValueError):
        ph.order_lots(0.0105, 0.001)


def test_experiment_config_modes_and_inverse():
    a = ph.parse_args(["--files", "x/a.gz,x/b.gz", "--inverse", "100", "--lot-size", "1",
                       "--order-qty", "2"])
    whole = config_from_dict(ph.experiment_config(a, False))
    part = config_from_dict(ph.experiment_config(a, True))
    assert not whole.matching.partial_fills and part.matching.partial_fills
    assert whole.data.path == "x/a.gz" and whole.data.files == ("x/b.gz",)
    assert whole.instrument["contract"] == "inverse" and whole.instrument["multiplier"] == 100
    assert whole.policy.params()["order_qty"] == 2
    assert whole.engine.decision_interval_nanos == ph.DECISION_NS
    lin = ph.experiment_config(ph.parse_args([]), False)
    assert "contract" not in lin["instrument"]


# --- the decision clock ------------------------------------------------------------------------
STREAM = [
    (0, EventKind.BBO, 1, 1000, 7, EventFlag.INFO),
    (0, EventKind.BBO, -1, 1010, 7, EventFlag.INFO),
    (10, EventKind.MARK, 0, 0, 0, 0),
    (20, EventKind.TRADE, 1, 1000, 1, EventFlag.INFO),  # an INFO print: dropped by the peer
    (30, EventKind.SNAPSHOT_BEGIN, 0, 0, 0, 0),
    (43, EventKind.CLEAR, 0, 0, 0, 0),
    (43, EventKind.LEVEL_SET, 1, 1000, 50, EventFlag.SNAPSHOT),
    (43, EventKind.LEVEL_SET, -1, 1010, 50, EventFlag.SNAPSHOT),
    (43, EventKind.SNAPSHOT_END, 0, 0, 0, 0),
] + [(t, EventKind.LEVEL_SET, 1, 1000, 50 + (t // 50) % 2, 0) for t in range(100, 701, 50)]


def test_peer_keep_mask_and_clock_start():
    ev = _events(STREAM)
    keep = ph.peer_keep_mask(ev)
    kinds = ev["kind"][keep]
    assert set(kinds.tolist()) == {EventKind.CLEAR, EventKind.LEVEL_SET}
    assert keep.sum() == len(STREAM) - 6
    assert ph.peer_clock_start(ev) == T + 43 * MS
    trade = _events([(5, EventKind.BBO, 1, 1, 1, EventFlag.INFO),
                     (9, EventKind.TRADE, -1, 1000, 2, 0)])
    assert ph.peer_clock_start(trade) == T + 9 * MS  # a non-INFO trade is received
    with pytest.raises(ValueError):
        ph.peer_clock_start(_events(STREAM[:5]))


def _decision_times(clock_start):
    from mmsim.engine.backtest import Engine
    from mmsim.resolve import resolve_for_events

    args = ph.parse_args(["--tick-size", "1", "--lot-size", "1", "--order-qty", "1"])
    cfg = config_from_dict(ph.experiment_config(args, False))
    eng = Engine(resolve_for_events(cfg, ref_price_tick=1005, book="L2"))
    ev = _events(STREAM)
    if clock_start is not None:
        ph.align_clock(eng, clock_start)
    logs = []
    eng.feed(ev, lambda f, o, e: logs.append(o), final=True)
    olog = np.concatenate(logs)
    sub = olog[olog["event"] == OrderEvent.SUBMIT]
    with pytest.raises(RuntimeError):
        ph.align_clock(eng, T)  # the clock has started
    return (sub["local_ts"] - T) // MS, olog


def test_align_clock_starts_the_grid_at_the_peers_first_event():
    t0 = ph.peer_clock_start(_events(STREAM))
    aligned, olog = _decision_times(t0)
    # the first quotes go out at the first step after the peer's first event, as in
    # hftbacktest (t0 + 100 ms), and every decision is on that grid
    assert aligned[0] == 143
    assert set((olog["local_ts"][olog["event"] == OrderEvent.SUBMIT] - t0) % (100 * MS)) == {0}
    unaligned, _ = _decision_times(None)
    assert unaligned[0] == 100  # the engine's own clock: 100 ms after the first (BBO) event


# --- comparison and JSON ------------------------------------------------------------------------
def _r(**kw):
    base = {"fill_events": 194, "filled_orders": 194, "traded_qty": 1.94,
            "final_position": 0.0, "pnl": -8.541578, "fees": -6.199422, "warm_wall_s": 0.05}
    base.update(kw)
    return base


def test_compare_exact_counts_lots_and_float_tolerance():
    c = ph.compare(_r(), _r(traded_qty=1.9400000000001, pnl=-8.541578 + 1e-9,
                            warm_wall_s=9.0), 0.001, traded_value=124_000.0)
    assert all(v["match"] for v in c.values()) and "warm_wall_s" not in c
    c = ph.compare(_r(filled_orders=193, final_position=0.001, fees=-6.1), _r(), 0.001,
                   traded_value=124_000.0)
    assert {k for k, v in c.items() if not v["match"]} == {"filled_orders", "final_position",
                                                          "fees"}
    assert c["fees"]["diff"] == pytest.approx(-6.1 + 6.199422)
    # the tolerance scales with the traded value: a coin-denominated (inverse) PnL of 1e-7 is
    # not "equal" to 2e-7 just because both are small
    c = ph.compare(_r(pnl=1e-7), _r(pnl=2e-7), 0.001, traded_value=0.007)
    assert not c["pnl"]["match"]
    c = ph.compare(_r(pnl=float("nan")), _r(), 0.001, traded_value=1.0)
    assert not c["pnl"]["match"]


def test_first_fill_difference():
    mm = np.zeros(3, FILL_DTYPE)
    mm["exch_ts"] = [30, 10, 20]  # unsorted on purpose
    mm["side"] = [1, -1, 1]
    mm["price_tick"] = [100, 105, 101]
    mm["qty"] = 10
    hb = np.array([[10, 11, 1, -1, 105, 10], [20, 21, 2, 1, 101, 10],
                   [30, 31, 3, 1, 100, 10]], np.int64)
    assert ph.first_fill_difference(mm, hb) is None
    hb2 = hb.copy()
    hb2[1, 4] = 102
    d = ph.first_fill_difference(mm, hb2)
    assert d == {"index": 1, "mmsim": [20, 1, 101, 10], "hftbacktest": [20, 1, 102, 10]}
    d = ph.first_fill_difference(mm, hb[:2])
    assert d == {"index": 2, "mmsim": [30, 1, 100, 10], "hftbacktest": None}


def test_report_shape():
    mm_p = _r(fill_events=367, filled_orders=188, funding=0.0, events_per_s=1.0)
    mm_w = _r(funding=0.0, events_per_s=1.0)
    hb = _r()
    hb_p = {**_r(fill_events=164), "completed": False}
    checks = ph.compare(mm_w, hb, 0.001, 124_000.0)
    doc = ph.build_report(mm_p, mm_w, hb, hb_p, checks, {"files": ["a.gz"]})
    assert set(doc["mmsim"]) == {"partial", "whole_order"}
    assert set(doc["hftbacktest"]) == {"no_partial", "partial"}
    for r in (doc["mmsim"]["partial"], doc["mmsim"]["whole_order"],
              doc["hftbacktest"]["no_partial"]):
        assert tuple(r) == ph.R_FIELDS
    assert doc["hftbacktest"]["partial"]["completed"] is False
    assert doc["mmsim"]["partial"]["fill_events"] == 367
    assert doc["all_match"] is True and set(doc["match"]) == set(ph.EXACT_FIELDS
                                                                 + ph.FLOAT_FIELDS)
    assert doc["ratios_partial"]["fill_events"] == pytest.approx(367 / 194)
    assert doc["files"] == ["a.gz"]
    json.loads(json.dumps(doc))  # serialisable as is


def test_peer_result_maps_the_worker_output():
    mode = {"fills": 5, "filled_orders": 5, "traded_qty": 0.05, "final_position": 0.01,
            "pnl": 1.5, "fees": -0.1, "wall_s_warm": 0.2, "completed": True, "balance": 3.0}
    r = ph.peer_result(mode)
    assert r == {"fill_events": 5, "filled_orders": 5, "traded_qty": 0.05,
                 "final_position": 0.01, "pnl": 1.5, "fees": -0.1, "warm_wall_s": 0.2,
                 "completed": True}


# --- pairs, the native (hftbacktest-converter) run, the summary --------------------------------
from benchmarks import peer_hftbacktest_native as pn  # noqa: E402


def test_default_runs_every_known_pair_and_files_is_one_custom_capture():
    a = ph.parse_args([])
    assert not a.custom and a.pair_names == list(ph.PAIRS)
    assert ph.parse_args(["--pairs", "spot-2024-08-08,usdm-2023-04-04"]).pair_names == [
        "spot-2024-08-08", "usdm-2023-04-04"]
    assert ph.parse_args(["--pairs", "all"]).pair_names == list(ph.PAIRS)
    for argv in (["--files", "x.gz"], ["--spot"], ["--tick-size", "1"]):
        b = ph.parse_args(argv)
        assert b.custom and b.pair_names is None
    for argv in (["--pairs", "nope"], ["--pairs", ","], ["--pairs", "coinm", "--files", "a.gz"],
                 ["--pairs", "coinm", "--spot"]):
        with pytest.raises(SystemExit):
            ph.parse_args(argv)


def _touch(root, rel):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")


def test_resolve_pairs_against_the_data_root(tmp_path):
    for f in ph.PAIRS["usdm-2024-07-18"]["files"] + ph.PAIRS["spot-2024-08-08"]["files"]:
        _touch(tmp_path, f)
    _touch(tmp_path, ph.PAIRS["usdm-2023-04-04"]["files"][0])  # the second file is missing
    todo, missing = ph.resolve_pairs(ph.parse_args([]), tmp_path)
    assert [n for n, _ in todo] == ["usdm-2024-07-18", "spot-2024-08-08"]
    usdm, spot = todo[0][1], todo[1][1]
    assert usdm.files == list(ph.DEFAULT_FILES) and not usdm.spot and usdm.inverse is None
    assert (usdm.tick_size, usdm.lot_size, usdm.order_lots) == (0.1, 0.001, 10)
    assert spot.spot and (spot.tick_size, spot.lot_size, spot.order_lots) == (0.01, 1e-6, 10_000)
    assert set(missing) == {"usdm-2023-04-04", "usdm-2024-08-08", "coinm"}
    assert "btcusdt_20230405.dat.gz" in missing["usdm-2023-04-04"]
    assert "no capture" in missing["coinm"] and "spot" in missing["coinm"]
    # a COIN-M capture, once there, is found and run as an inverse contract
    _touch(tmp_path, "binance/coinm/btcusd_perp_20240101.gz")
    todo, missing = ph.resolve_pairs(ph.parse_args(["--pairs", "coinm"]), tmp_path)
    (name, cm), = todo
    assert name == "coinm" and cm.inverse == 100.0 and cm.files == [
        "binance/coinm/btcusd_perp_20240101.gz"] and cm.order_lots == 1 and not missing


def test_roi_range_covers_every_trade_price_with_margin():
    px = np.array([63_900.1, 64_012.3, 63_850.0, np.nan])
    lb, ub = pn.roi_range(px, 0.1, margin=0.05)
    assert lb <= 63_850.0 - 0.05 * 64_012.3 + 1e-9 and ub >= 64_012.3 * 1.05 - 1e-9
    assert lb > 63_850.0 - 0.05 * 64_012.3 - 0.1 and ub < 64_012.3 * 1.05 + 0.1  # tick-tight
    for v in (lb, ub):
        assert abs(v / 0.1 - round(v / 0.1)) < 1e-6  # on the tick grid
    assert pn.roi_range(np.array([1.0]), 0.1, margin=5.0)[0] == 0.0  # never negative
    lb0, ub0 = pn.roi_range(px, 0.01, margin=0.0)
    assert (lb0, ub0) == (63_850.0, 64_012.3)
    with pytest.raises(ValueError):
        pn.roi_range(np.array([np.nan]), 0.1)


def test_span_bookkeeping():
    ts = np.array([5, 10, 20, 30, 40], np.int64)
    assert pn.span_mask(ts, 10, 30).tolist() == [False, True, True, True, False]
    assert pn.span_mask(ts, None, None).all()
    ev = _events(STREAM)
    sp = ph.span_info(ev)
    assert sp == {"first_exch_ns": T, "last_exch_ns": T + 700 * MS,
                  "minutes": pytest.approx(0.7 / 60)}


def test_reframe_keeps_values_and_adapts_only_what_the_converter_needs():
    fut = (b'1721347020984480942 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate",'
           b'"E":1721347022504,"T":1721347022504,"U":1,"u":2,"pu":0,"b":[["1.0","2"]],"a":[]}}')
    assert pn.reframe_line(fut, 1, spot=False) == fut
    us = b'1680652700441533 {"stream":"btcusdt@trade","data":{"e":"trade","T":1,"X":"MARKET"}}'
    out = pn.reframe_line(us, 1000, spot=False)
    assert out == b"1680652700441533000" + us[16:] and pn.ts_digits(out) == 19
    depth = (b'1723161253937085768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate",'
             b'"E":1723161255208,"s":"BTCUSDT","U":5,"u":9,"b":[["61737.63000000","0.0"]],'
             b'"a":[]}}')
    d = json.loads(pn.reframe_line(depth, 1, spot=True)[20:])["data"]
    assert d["T"] == d["E"] == 1723161255208 and d["b"] == [["61737.63000000", "0.0"]]
    trade = (b'1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade",'
             b'"E":1723161255343,"p":"61837.63000000","q":"0.02000000","T":1723161255342,'
             b'"m":true,"M":true}}')
    t = json.loads(pn.reframe_line(trade, 1, spot=True)[20:])["data"]
    assert t["X"] == "MARKET" and t["p"] == "61837.63000000" and t["T"] == 1723161255342
    bt = b'1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","a":"2"}}'
    assert pn.reframe_line(bt, 1, spot=True) is None
    snap = b'1723161254206652067 {"lastUpdateId":7,"bids":[["1.5","2"]],"asks":[]}'
    sn = json.loads(pn.reframe_line(snap, 1, spot=True, snapshot_t_ms=42)[20:])
    assert sn == {"T": 42, "lastUpdateId": 7, "bids": [["1.5", "2"]], "asks": []}
    lines = [depth.replace(b'"u":9', b'"u":6'), snap,
             depth.replace(b'"u":9', b'"u":7').replace(b"255208", b"255300"),
             depth.replace(b"255208", b"255400")]
    assert pn.spot_snapshot_time_ms(lines) == 1723161255400  # first diff with u > 7
    assert pn.spot_snapshot_time_ms(lines[:1]) is None


def test_frame_file(tmp_path):
    import gzip

    ns = tmp_path / "a.gz"
    with gzip.open(ns, "wb") as f:
        f.write(b'1721347020984480942 {"stream":"x","data":{"e":"trade"}}\n')
    path, info = pn.frame_file(ns, tmp_path, spot=False, snapshot_t_ms=None)
    assert path == ns and info["ts_scale"] == 1  # nothing to adapt: the file itself
    us = tmp_path / "b.dat.gz"
    with gzip.open(us, "wb") as f:
        f.write(b'1680652700441533 {"stream":"x","data":{"e":"trade"}}\n')
    path, info = pn.frame_file(us, tmp_path / "", spot=False, snapshot_t_ms=None)
    assert path != us and info["ts_digits"] == 16 and info["ts_scale"] == 1000
    with gzip.open(path, "rb") as f:
        assert f.read().startswith(b"1680652700441533000 {")
    bad = tmp_path / "c.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b'1680652700 {"x":1}\n')
    with pytest.raises(ValueError):
        pn.frame_file(bad, tmp_path, spot=False, snapshot_t_ms=None)


NATIVE = {
    "converter": "hftbacktest.data.utils.binancefutures.convert", "framing": [],
    "rows_converted": 1010, "rows": 1000, "rows_dropped_outside_span": 10,
    "first_exch_ts": T + MS, "last_exch_ts": T + 700 * MS,
    "roi": {"lb": 1.0, "ub": 2.0, "ticks": 11, "depth_rows_outside_roi": 0, "depth_rows": 900},
    "convert_s": 1.0, "roi_vector_equals_hashmap": True,
    "roi_vector": {"fills": 196, "filled_orders": 196, "traded_qty": 1.96,
                   "final_position": 0.0, "pnl": -8.7, "fees": -6.26, "wall_s_warm": 0.04,
                   "completed": True},
    "hashmap": {"fills": 196, "filled_orders": 196, "traded_qty": 1.96, "final_position": 0.0,
                "pnl": -8.7, "fees": -6.26, "wall_s_warm": 0.08, "completed": True},
}


def _pair_doc():
    mm_w = _r(funding=0.0, events_per_s=1.0, warm_wall_s=0.06)
    hb = _r(warm_wall_s=0.12)
    doc = ph.build_report(_r(funding=0.0, events_per_s=1.0), mm_w, hb,
                          {**_r(), "completed": False}, ph.compare(mm_w, hb, 0.001, 1e5),
                          {"files": ["a.gz"], "events": 1234})
    span = ph.span_info(_events(STREAM))
    roi = ph.native_result(NATIVE, "roi_vector", mm_w["warm_wall_s"])
    hm = ph.native_result(NATIVE, "hashmap", mm_w["warm_wall_s"])
    ph.add_native(doc, roi, hm, NATIVE, span, mm_w, hb, 1100)
    return doc, ph.summary_row("usdm-2024-07-18", span, 1234, mm_w, hb, roi, hm, True)


def test_native_json_shape():
    doc, row = _pair_doc()
    # the shape before --pairs is kept ...
    assert set(doc["mmsim"]) == {"partial", "whole_order"}
    assert {"no_partial", "partial"} <= set(doc["hftbacktest"]) and doc["all_match"] is True
    # ... and gains the ROIVector run on hftbacktest's own conversion, mmsim's wall beside it
    rv = doc["hftbacktest"]["roi_vector"]
    assert set(ph.R_FIELDS) <= set(rv) and rv["fill_events"] == 196
    assert rv["n_events"] == 1000 and rv["warm_wall_s"] == 0.04
    assert rv["span"] == {"first_exch_ns": T + MS, "last_exch_ns": T + 700 * MS}
    assert rv["mmsim_warm_wall_s"] == 0.06 and rv["completed"] is True
    assert doc["hftbacktest"]["hashmap_native"]["warm_wall_s"] == 0.08
    assert doc["span"]["mmsim_events"] == 1234 and doc["span"]["hftbacktest_native_rows"] == 1000
    assert doc["span"]["hftbacktest_converted_rows"] == 1100
    sp = doc["speed"]
    assert sp["mmsim_over_roi_vector"] == pytest.approx(1.5)
    assert sp["mmsim_over_hashmap_native"] == pytest.approx(0.75)
    assert sp["mmsim_over_hashmap_converted"] == pytest.approx(0.5)
    assert doc["native"]["roi"]["ticks"] == 11
    # one pair: the document itself; several: {"pairs", "summary", "unavailable"}
    assert ph.json_document({"p": doc}, [row]) is doc
    multi = ph.json_document({"p": doc, "q": doc}, [row, row], {"coinm": "no capture"})
    assert set(multi) == {"pairs", "summary", "unavailable"} and set(multi["pairs"]) == {"p", "q"}
    json.loads(json.dumps(multi))


def test_summary_table():
    _, row = _pair_doc()
    assert row["mmsim_over_roi_vector"] == pytest.approx(1.5) and row["parity"] == "MATCH"
    assert row["native_rows"] == 1000 and row["mmsim_events"] == 1234
    txt = ph.format_summary([row], {"coinm": "no capture under x"})
    line = next(x for x in txt.splitlines() if x.startswith("usdm-2024-07-18"))
    assert "1.500" in line and "0.750" in line and "0.500" in line and line.endswith("MATCH")
    assert any(x.startswith("coinm") and "not run" in x for x in txt.splitlines())


PEER_PY = Path(__file__).resolve().parents[1] / "benchmarks" / ".peer-venv" / "bin" / "python"


@pytest.mark.skipif(not PEER_PY.exists(), reason="no peer venv (benchmarks/.peer-venv)")
def test_native_worker_end_to_end_on_a_tiny_capture(tmp_path):
    """hftbacktest's converter on a hand-made futures capture (µs stamps, so re-framed), then
    ROIVector and HashMap: same fills, the span cut and the ROI in the output."""
    import gzip
    import subprocess

    t = 1_700_000_000_000  # ms
    lines = [f'{(t + 5) * 1000} {{"lastUpdateId": 10, "E": {t}, "T": {t}, '
             '"bids": [["100.0", "5.000"], ["99.9", "5.000"]], '
             '"asks": [["100.1", "5.000"], ["100.2", "5.000"]]}']
    for k in range(1, 40):
        ms = t + 50 * k
        side = "true" if k % 2 else "false"
        px = "100.0" if k % 2 else "100.1"
        lines.append(f'{(ms + 3) * 1000} {{"stream":"btcusdt@trade","data":{{"e":"trade",'
                     f'"E":{ms},"T":{ms},"s":"BTCUSDT","t":{k},"p":"{px}","q":"0.500",'
                     f'"X":"MARKET","m":{side}}}}}')
        lines.append(f'{(ms + 4) * 1000} {{"stream":"btcusdt@depth@0ms","data":{{'
                     f'"e":"depthUpdate","E":{ms},"T":{ms},"s":"BTCUSDT","U":{10 + k},'
                     f'"u":{10 + k},"pu":{9 + k},"b":[["100.0","{5 + k % 3}.000"]],'
                     f'"a":[["100.1","{5 + k % 2}.000"]]}}}}')
    raw = tmp_path / "btcusdt_x.dat.gz"
    with gzip.open(raw, "wt") as f:
        f.write("\n".join(lines) + "\n")
    out = tmp_path / "o.json"
    r = subprocess.run([str(PEER_PY), str(pn.__file__), str(raw), "--out", str(out),
                        "--repeats", "1", "--span-lo", str(t * MS),
                        "--span-hi", str((t + 1500) * MS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["framing"][0]["ts_scale"] == 1000
    assert d["last_exch_ts"] <= (t + 1500) * MS and d["rows_dropped_outside_span"] > 0
    assert d["roi"]["lb"] <= 100.0 and d["roi"]["ub"] >= 100.1
    assert d["roi_vector_equals_hashmap"] is True
    for k in ("roi_vector", "hashmap"):
        assert d[k]["completed"] and d[k]["deterministic"] and d[k]["wall_s_warm"] > 0
    nr = ph.native_result(d, "roi_vector", 1.0)
    assert nr["n_events"] == d["rows"] and set(ph.R_FIELDS) <= set(nr)
