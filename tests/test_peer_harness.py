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
    assert a.repeats == 3 and a.clock_start == "peer"


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
