"""The queue scorecard (issue 12, MODELS.md §13): L2 queue models scored against L3 truth.

Ladder: hand-built streams where the truth and each model's answer are worked out by hand
(an order ahead cancelled, a trade at our price, a level cleared, a trade through our price,
an order behind cancelled, a size change ahead); probes independent of each other; the
scores; determinism (same seed, same bytes); the engine itself as the reference of both
replays on real L3 data (the faithfulness check); the CLI end to end on a real file; the
calibration file read back by ``queue.model: calibrated``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mmsim.config import ConfigError, config_from_dict
from mmsim.data.l3_to_l2 import l3_to_l2
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventFlag
from mmsim.enums import EventKind as K
from mmsim.queue_score import (
    ModelSpec,
    format_summary,
    parse_models,
    policy_probes,
    probe_span,
    random_probes,
    replay_model,
    replay_truth,
    summarise,
)
from mmsim.queue_score.nb import (
    NO_OFFSET,
    NO_TS,
    PROBE_DTYPE,
    PROBE_RESULT_DTYPE,
    Anchor,
    ProbeStatus,
)

REPO = Path(__file__).parents[1]
EXP = REPO / "experiments"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
BASE, WIDTH = 0, 1024
MODELS = parse_models("risk_averse,power:1,power:2,power:3,log")


def evs(*rows) -> np.ndarray:
    """rows: (t_ms, kind, side, price_tick, qty, order_id[, flags[, value]])."""
    ev = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, r in enumerate(rows):
        t, kind, side, px, q, oid = r[:6]
        flags = r[6] if len(r) > 6 else EventFlag.LAST
        value = r[7] if len(r) > 7 else 0.0
        ts = T0 + int(round(t * MS))
        ev[i] = (ts, ts, px, q, oid, value, kind, side, flags)
    return ev


def probes_of(*rows) -> np.ndarray:
    """rows: (t_ms, side, offset_ticks | None, price_tick | None[, qty])."""
    p = np.zeros(len(rows), dtype=PROBE_DTYPE)
    for i, r in enumerate(rows):
        t, side, off, px = r[:4]
        p[i]["probe_id"] = i
        p[i]["place_ts"] = T0 + int(round(t * MS))
        p[i]["side"] = side
        p[i]["qty"] = r[4] if len(r) > 4 else 1
        if off is None:
            p[i]["anchor"] = Anchor.PRICE
            p[i]["price_tick"] = px
        else:
            p[i]["anchor"] = Anchor.TOUCH
            p[i]["offset_ticks"] = off
    return p


def run_all(ev, pr, whole=False):
    """(truth, {label: estimate}) of the probes ``pr`` on the L3 events ``ev``."""
    truth = replay_truth(ev, pr, base_tick=BASE, width=WIDTH, whole_fills=whole)
    l2 = l3_to_l2(ev, width=WIDTH, ref_price_tick=BASE + WIDTH // 2)
    est = {m.label: replay_model(l2, pr, m, base_tick=BASE, width=WIDTH, whole_fills=whole)
           for m in MODELS}
    return truth, est


def fill_ms(res) -> list[float | None]:
    return [None if t == NO_TS else (int(t) - T0) / MS for t in res["first_fill_ts"]]


BOOK = [(0, K.ADD, 1, 100, 10, 1), (0, K.ADD, -1, 105, 10, 2)]


# ---- hand-worked cases ---------------------------------------------------------------------


def test_an_order_ahead_cancelled():
    ev = evs(*BOOK,
             (2, K.ADD, 1, 100, 10, 3),  # behind the probe
             (3, K.DELETE, 1, 100, 10, 1),  # the whole queue ahead leaves
             (4, K.EXECUTE, 1, 100, 4, 3),  # an order behind trades: the truth fills
             (5, K.EXECUTE, 1, 100, 6, 3),  # the level is gone
             (6, K.ADD, -1, 100, 5, 4))  # an ask at our price
    truth, est = run_all(ev, probes_of((1, 1, 0, None)))
    assert truth["queue_ahead"][0] == 10 and truth["price_tick"][0] == 100
    assert fill_ms(truth) == [4.0] and truth["filled_qty"][0] == 1
    # L2 sees the level go 20 -> 10. risk-averse: front = min(10, 10) = 10, then the two
    # trades (4 and 6 lots) only bring it to 0: filled by the ask that reaches our price.
    assert fill_ms(est["risk_averse"]) == [6.0]
    # probabilistic, front = back = 10: p = 1/2 for any f, front 5; 4 traded -> 1; the
    # 6-lot trade fills beyond it
    for label in ("power:1", "power:2", "power:3", "log"):
        assert fill_ms(est[label]) == [5.0], label


def test_a_trade_at_our_price_hidden_liquidity_makes_l2_optimistic():
    ev = evs((0, K.ADD, 1, 100, 3, 1), (0, K.ADD, -1, 105, 10, 2),
             (2, K.ADD, 1, 100, 5, 3),
             (3, K.TRADE, 1, 100, 2, 0, 0),  # hidden: no book effect, 2 < 3 ahead
             (4, K.EXECUTE, 1, 100, 2, 1),  # 2 of the 3 lots ahead
             (5, K.EXECUTE, 1, 100, 1, 1),  # the last lot ahead
             (6, K.EXECUTE, 1, 100, 1, 3))  # behind us: the truth fills
    truth, est = run_all(ev, probes_of((1, 1, 0, None)))
    assert fill_ms(truth) == [6.0]
    # L2 takes the hidden print off the displayed front (3 -> 1), so the 2-lot execution
    # fills beyond it: every model fills 2 ms early
    for m in MODELS:
        assert fill_ms(est[m.label]) == [4.0], m.label
    row = {r["model"]: r for r in summarise(probes_of((1, 1, 0, None)), truth, est)}
    assert row["log"]["bias_median_s"] == pytest.approx(-0.002)
    assert row["log"]["agree_1s"] == 1.0 and row["log"]["n_both_filled"] == 1


def test_a_level_cleared():
    ev = evs(*BOOK, (0, K.ADD, 1, 99, 5, 5),
             (2, K.ADD, 1, 100, 4, 3),
             (3, K.DELETE, 1, 100, 10, 1), (3, K.DELETE, 1, 100, 4, 3),  # level 100 gone
             (4, K.ADD, 1, 100, 6, 6),
             (5, K.EXECUTE, 1, 100, 2, 6),  # behind both: fills the probe at 100
             (7, K.CLEAR, 1, 0, 0, 0),  # the bids are cleared: nothing ahead at 99
             (8, K.ADD, 1, 99, 3, 7),
             (9, K.EXECUTE, 1, 99, 1, 7))
    pr = probes_of((1, 1, 0, None), (1, 1, 1, None))
    truth, est = run_all(ev, pr)
    assert list(truth["price_tick"]) == [100, 99] and list(truth["queue_ahead"]) == [10, 5]
    assert fill_ms(truth) == [5.0, 9.0]
    for m in MODELS:  # an empty level leaves no front to guess
        assert fill_ms(est[m.label]) == [5.0, 9.0], m.label


def test_a_trade_through_our_price():
    ev = evs((0, K.ADD, 1, 100, 5, 1), (0, K.ADD, 1, 99, 20, 2), (0, K.ADD, -1, 105, 10, 3),
             (0, K.ADD, -1, 106, 7, 4),
             (2, K.TRADE, 1, 98, 1, 0, 0),  # a bid below ours trades: ours was better
             (3, K.ADD, -1, 107, 2, 5),
             (4, K.EXECUTE, -1, 107, 2, 5))  # an ask above our ask executes
    pr = probes_of((1, 1, 1, None), (1, -1, 1, None))
    truth, est = run_all(ev, pr)
    assert list(truth["price_tick"]) == [99, 106] and list(truth["queue_ahead"]) == [20, 7]
    assert fill_ms(truth) == [2.0, 4.0]
    for m in MODELS:
        assert fill_ms(est[m.label]) == [2.0, 4.0], m.label


def test_an_order_behind_cancelled_separates_the_models():
    ev = evs((0, K.ADD, 1, 100, 2, 1), (0, K.ADD, -1, 105, 10, 2),
             (2, K.ADD, 1, 100, 8, 3),
             (3, K.CANCEL, 1, 100, 5, 3),  # 5 of the 8 lots BEHIND us leave
             (4, K.EXECUTE, 1, 100, 2, 1),  # the 2 lots ahead trade: no fill yet
             (5, K.EXECUTE, 1, 100, 1, 3))  # behind us: the truth fills
    truth, est = run_all(ev, probes_of((1, 1, 0, None)))
    assert fill_ms(truth) == [5.0]
    # the decrease 10 -> 5 with front 2, back 8: front = 2 - (1 - p)·5, p = f(8)/(f(8)+f(2))
    # power 1: 1.0; power 2: 1.71; power 3: 1.92; log: p = ln 9/(ln 9 + ln 3) = 2/3 -> 0.33;
    # then the 2-lot trade fills when 2 - round(front) > 0
    got = {label: fill_ms(r)[0] for label, r in est.items()}
    assert got == {"risk_averse": 5.0, "power:1": 4.0, "power:2": 5.0, "power:3": 5.0,
                   "log": 4.0}


def test_a_size_increase_ahead_loses_priority_which_l2_cannot_see():
    ev = evs(*BOOK,
             (2, K.MODIFY, 1, 100, 6, 1),  # smaller: keeps its place, 6 ahead
             (3, K.MODIFY, 1, 100, 8, 1),  # larger: to the back, behind us
             (4, K.EXECUTE, 1, 100, 1, 1))  # so this fills us
    truth, est = run_all(ev, probes_of((1, 1, 0, None)))
    assert fill_ms(truth) == [4.0]
    for m in MODELS:  # front 6, the increase goes behind, 1 lot traded: never filled
        assert fill_ms(est[m.label]) == [None], m.label
        assert est[m.label]["status"][0] == ProbeStatus.OPEN


def test_partial_and_whole_fills_and_placement_rules():
    ev = evs((0, K.ADD, 1, 100, 1, 1), (0, K.ADD, -1, 105, 1, 2),
             (2, K.ADD, 1, 100, 5, 3),
             (3, K.EXECUTE, 1, 100, 1, 1),
             (4, K.EXECUTE, 1, 100, 2, 3),
             (5, K.EXECUTE, 1, 100, 2, 3),
             (6, K.STATUS, 0, 0, 0, 0, EventFlag.LAST, -1.0),  # halt
             (7, K.STATUS, 0, 0, 0, 0, EventFlag.LAST, 1.0))
    pr = probes_of((1, 1, 0, None, 3),  # 3 lots behind 1
                   (2, 1, 0, None),  # at the time of an event: placed after it
                   (1, 1, None, 105),  # a bid at the ask: crosses
                   (6.5, 1, 0, None),  # during the halt
                   (1, -1, None, 108),  # an ask by price, 3 ticks behind the touch
                   (9, 1, 0, None))  # after the last event: never placed
    truth = replay_truth(ev, pr, base_tick=BASE, width=WIDTH)
    assert fill_ms(truth)[0] == 4.0 and (int(truth["done_ts"][0]) - T0) / MS == 5.0
    assert truth["filled_qty"][0] == 3 and truth["n_fills"][0] == 2
    assert truth["queue_ahead"][1] == 6  # the ADD at 2 ms is ahead of it
    st = list(truth["status"])
    assert st[2:] == [ProbeStatus.CROSSED, ProbeStatus.HALTED, ProbeStatus.OPEN,
                      ProbeStatus.PENDING]
    assert truth["offset_ticks"][4] == 3
    whole = replay_truth(ev, pr, base_tick=BASE, width=WIDTH, whole_fills=True)
    assert fill_ms(whole)[0] == 4.0 and whole["done_ts"][0] == whole["first_fill_ts"][0]
    assert whole["filled_qty"][0] == 3 and whole["n_fills"][0] == 1
    empty = replay_truth(evs((0, K.ADD, 1, 100, 1, 1), (5, K.ADD, 1, 100, 1, 2)),
                         probes_of((1, -1, 0, None), (1, -1, None, 103)),
                         base_tick=BASE, width=WIDTH)
    assert empty["status"][0] == ProbeStatus.NO_TOUCH
    assert empty["offset_ticks"][1] == NO_OFFSET and empty["status"][1] == ProbeStatus.OPEN


def test_bad_inputs_name_row_and_field():
    ev = evs(*BOOK)
    bad = probes_of((1, 1, 0, None))
    bad["qty"] = 0
    with pytest.raises(ValueError, match="probes row 0: field 'qty'"):
        replay_truth(ev, bad, base_tick=BASE, width=WIDTH)
    with pytest.raises(ValueError, match="events row 1: field 'exch_ts'"):
        replay_truth(evs((5, K.ADD, 1, 100, 1, 1), (1, K.ADD, 1, 100, 1, 2)),
                     probes_of((1, 1, 0, None)), base_tick=BASE, width=WIDTH)
    l2 = l3_to_l2(ev, width=WIDTH, ref_price_tick=WIDTH // 2)
    with pytest.raises(ValueError, match="events row 0 .*not an L3 event kind"):
        replay_truth(l2, probes_of((1, 1, 0, None)), base_tick=BASE, width=WIDTH)
    with pytest.raises(ValueError, match="events row 0 .*'kind' = add.*not an L2 event"):
        replay_model(ev, probes_of((1, 1, 0, None)), MODELS[0], base_tick=BASE, width=WIDTH)
    for text, msg in (("power:0", "must be > 0"), ("power:x", "not a number"),
                      ("fifo", "unknown queue model"), ("log:2", "only power"),
                      ("power:2,power:2.0", "twice"), (",", "no model")):
        with pytest.raises(ValueError, match=msg):
            parse_models(text)
    assert parse_models("power")[0] == ModelSpec("power:2", MODELS[2].kind, 2.0)


# ---- synthetic data: independence, determinism, policy probes --------------------------------


def synthetic_cfg(n_events=30_000, seed=3):
    return config_from_dict({
        "name": "qs_synthetic", "seed": seed,
        "data": {"kind": "synthetic", "synthetic": {"n_events": n_events}},
        "instrument": {"symbol": "SYN", "tick_size": 0.01, "lot_size": 1},
        "policy": {"name": "fixed_spread", "spread_bps": 2.0, "order_qty": 2},
        "risk": {"max_position_qty": 20},
    })


def test_probes_are_independent_of_each_other(tmp_path):
    from mmsim.queue_score import load_score_data

    d = load_score_data(None, cfg=synthetic_cfg(), cache_dir=tmp_path / "cache")
    pr = random_probes(40, 5, probe_span(d.events), lots=2)
    together = replay_truth(d.events, pr, base_tick=d.base_tick, width=d.width)
    model = parse_models("power:2")[0]
    est = replay_model(d.l2_events, pr, model, base_tick=d.base_tick, width=d.width)
    assert (together["filled_qty"] > 0).sum() > 10
    for j in range(0, 40, 7):
        alone = replay_truth(d.events, pr[j:j + 1], base_tick=d.base_tick, width=d.width)
        assert alone[0] == together[j]
        e1 = replay_model(d.l2_events, pr[j:j + 1], model, base_tick=d.base_tick,
                          width=d.width)
        assert e1[0] == est[j]


def test_same_seed_gives_byte_identical_tables(tmp_path):
    from mmsim.queue_score import queue_score

    cfg = synthetic_cfg()
    kw = {"n_probes": 300, "cache_dir": tmp_path / "cache", "plot": False}
    a = queue_score(cfg, out=tmp_path / "a", seed=11, **kw)
    b = queue_score(cfg, out=tmp_path / "b", seed=11, **kw)
    c = queue_score(cfg, out=tmp_path / "c", seed=12, **kw)
    for name in ("probes.parquet", "summary.parquet", "summary.json"):
        assert (a.run_dir / name).read_bytes() == (b.run_dir / name).read_bytes(), name
    assert (a.run_dir / "probes.parquet").read_bytes() != \
        (c.run_dir / "probes.parquet").read_bytes()
    assert a.probes.num_rows == 300
    man = json.loads((a.run_dir / "manifest.json").read_text())
    assert man["complete"] and man["probes"]["scored"] == 300 and man["seed"] == 11
    assert set(man["files"]) == {p.name for p in a.run_dir.iterdir()}


def test_probes_from_a_policy_run(tmp_path):
    import mmsim
    from mmsim.queue_score import queue_score

    cfg = synthetic_cfg(n_events=20_000)
    run = mmsim.backtest(cfg, out=tmp_path / "run", cache_dir=tmp_path / "cache")
    res = queue_score(cfg, from_policy=tmp_path / "run", n_probes=10_000, plot=False,
                      cache_dir=tmp_path / "cache", out=tmp_path / "qs")
    o = run.orders
    acks = o[(o["event"] == "ack") & ~o["is_hedge"]]
    t = res.probes.to_pydict()
    assert res.info["schedule"] == "policy" and len(t["place_ts"]) > 0
    assert set(t["place_ts"]) <= set(o["exch_ts"])
    assert len(t["place_ts"]) <= res.info["placements"] and \
        res.info["placements"] >= len(acks)
    tick = 0.01
    assert set(np.rint(np.array(t["price"]) / tick).astype(int)) <= \
        set(np.rint(o["price"].to_numpy() / tick).astype(int))
    sub = policy_probes(o, tick, n=5, seed=1)
    assert len(sub) == 5 and (np.diff(sub["place_ts"]) >= 0).all()
    with pytest.raises(ValueError, match="no accepted quote"):
        policy_probes(o[o["event"] == "fill"], tick)


# ---- real data -------------------------------------------------------------------------------


def _real(exp, data_root, n_events):
    from mmsim.queue_score import load_score_data
    from mmsim.runner import resolve_config

    cfg = resolve_config(EXP / exp)
    d = load_score_data(EXP / exp, data_root=data_root, cfg=cfg)
    ev = d.events[:n_events]
    l2 = l3_to_l2(ev, width=d.width, ref_price_tick=d.base_tick + d.width // 2)
    return d, ev, l2


def _engine_fill(events, d, book, model, power_n, side, px, t, lots, whole):
    """The engine's first fill time and lots filled of ONE resting order of ours (the
    ``static`` policy: one quote at ``px``, sent at ``t`` with zero latency)."""
    from mmsim.engine.backtest import Engine
    from mmsim.instruments import Instrument
    from mmsim.resolve import resolve_for_events

    t0 = int(events["exch_ts"][0])
    raw = {
        "data": {"kind": "synthetic"},
        "policy": {"name": "static", "bid_tick": px if side > 0 else 0,
                   "bid_qty": lots if side > 0 else 0, "ask_tick": px if side < 0 else 0,
                   "ask_qty": lots if side < 0 else 0},
        "latency": {"feed_nanos": 0, "entry_nanos": 0, "response_nanos": 0},
        "engine": {"decision_interval_nanos": t - t0, "equity_interval_nanos": 10**15,
                   "horizon": "none", "decide_on_fill": False,
                   "book_width_ticks": d.width},
        "queue": {"model": model, "power_n": power_n},
        "matching": {"partial_fills": not whole},
    }
    spec = resolve_for_events(
        config_from_dict(raw), ref_price_tick=d.base_tick + d.width // 2, book=book,
        instrument=Instrument(tick_size=d.spec.instrument.tick_size, lot_size=1.0))
    eng = Engine(spec)
    fills = []
    eng.feed(events, lambda f, o, e: fills.append(f), final=True)
    f = np.concatenate(fills) if fills else np.zeros(0)
    f = f[f["order_id"] == 1] if len(f) else f
    return (int(f["exch_ts"][0]) if len(f) else int(NO_TS), int(f["qty"].sum()) if len(f)
            else 0)


@pytest.mark.realdata
@pytest.mark.parametrize("exp, n_events, lots, whole", [
    ("lobster_amzn_as.yaml", 20_000, 1, False),
    ("lobster_amzn_as.yaml", 20_000, 3, True),
    ("databento_es_fixed.yaml", 25_000, 2, False),  # snapshot, modifies, pre-open
])
def test_the_kernels_give_the_engines_own_fills(data_root, exp, n_events, lots, whole):
    """The faithfulness check: for single probes on a real L3 slice, the engine with one
    resting order of ours (L3 FIFO on the L3 events; each L2 model on the reduced stream)
    fills at the same exchange time and for the same quantity as the probe kernels."""
    d, ev, l2 = _real(exp, data_root, n_events)
    start, end = probe_span(ev)
    # after the middle of the slice: the static policy's second decision (at 2t - t0, which
    # would quote again) falls after the slice
    pr = random_probes(8, 2024, ((start + end) // 2, end), lots=lots)
    truth = replay_truth(ev, pr, base_tick=d.base_tick, width=d.width, whole_fills=whole)
    est = {m.label: replay_model(l2, pr, m, base_tick=d.base_tick, width=d.width,
                                 whole_fills=whole) for m in MODELS}
    checked = 0
    for j in range(len(pr)):
        if truth["status"][j] not in (ProbeStatus.OPEN, ProbeStatus.DONE):
            continue  # not placed (e.g. the crossed pre-open book): the engine rejects it
        side, px, t = int(pr["side"][j]), int(truth["price_tick"][j]), int(pr["place_ts"][j])
        exp_ = (int(truth["first_fill_ts"][j]), int(truth["filled_qty"][j]))
        assert _engine_fill(ev, d, "L3", "fifo", 2.0, side, px, t, lots, whole) == exp_, j
        for m in MODELS:
            e = est[m.label]
            exp_m = (int(e["first_fill_ts"][j]), int(e["filled_qty"][j]))
            got = _engine_fill(l2, d, "L2", m.label.split(":")[0], m.power_n, side, px, t,
                               lots, whole)
            assert got == exp_m, (j, m.label)
        checked += 1
    assert checked >= 3


@pytest.mark.realdata
def test_cli_scores_and_calibrates_the_amzn_day(data_root, tmp_path, capsys):
    from mmsim.cli import main
    from mmsim.resolve import QueueModel, resolve_for_events

    out = tmp_path / "qs"
    args = ["queue-score", str(EXP / "lobster_amzn_as.yaml"), "--data-root", str(data_root),
            "--probes", "300", "--models", "risk_averse,power:2,log", "--out", str(out),
            "--calibrate"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "agree_60s" in text and "calibrated power exponent" in text
    names = {p.name for p in out.iterdir()}
    assert {"probes.parquet", "summary.parquet", "summary.json", "calibration.json",
            "summary_by_offset.parquet", "time_to_fill.png", "manifest.json", "config.yaml",
            "timing.json"} == names
    assert not (tmp_path / "qs.partial").exists()
    rows = json.loads((out / "summary.json").read_text())
    assert [r["model"] for r in rows] == ["risk_averse", "power:2", "log"]
    for r in rows:
        assert r["n_probes"] == 300 and 0.0 <= r["agree_end"] <= 1.0
        assert r["error"] == pytest.approx(
            1 - np.mean([r[f"agree_{h}"] for h in ("1s", "10s", "60s", "end")]))
    import pyarrow.parquet as pq

    t = pq.read_table(out / "probes.parquet")
    assert t.num_rows == 300 and {"true_fill_ts", "power_2_fill_ts", "log_fill_qty",
                                  "queue_ahead_lots", "offset_ticks"} <= set(t.column_names)
    assert set(t.column("offset_ticks").to_pylist()) <= {0, 1, 2}
    cal = json.loads((out / "calibration.json").read_text())
    assert cal["model"] == "power" and cal["power_n"] > 0
    assert cal["uncertainty"]["n_boot"] == 200 and cal["uncertainty"]["std"] is not None
    assert len(cal["curve"]) == 60
    best = min(c["error"] for c in cal["curve"])
    assert cal["error"] == pytest.approx(best)
    by_off = pq.read_table(out / "summary_by_offset.parquet").to_pylist()
    assert {r["offset_ticks"] for r in by_off} == {0, 1, 2}
    assert sum(r["n_probes"] for r in by_off if r["model"] == "log") == 300
    # an L2 experiment takes the exponent from the file
    cfg = config_from_dict({"data": {"kind": "synthetic"}, "policy": {"name": "static"},
                            "queue": {"model": "calibrated",
                                      "calibration": str(out / "calibration.json")}})
    spec = resolve_for_events(cfg, ref_price_tick=10_000, book="L2")
    assert spec.queue.model is QueueModel.POWER
    assert spec.queue.power_n == cal["power_n"] and spec.queue.ladder_follows_touch
    # a second run replaces the first (mmsim's own), a user's folder is refused
    assert main(args[:-1]) == 0 and not (out / "calibration.json").exists()
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    assert main([*args[:-3], "--out", str(user)]) == 2
    assert (user / "notes.txt").read_text() == "mine" and len(list(user.iterdir())) == 1


@pytest.mark.realdata
def test_an_l2_experiment_is_refused_naming_the_file_and_field(data_root):
    from mmsim.queue_score import load_score_data

    with pytest.raises(ConfigError, match=r"binance_btcusdt_glft.yaml: field 'data.kind'.*L2"):
        load_score_data(EXP / "binance_btcusdt_glft.yaml", data_root=data_root)


def test_calibrated_queue_model_errors_name_file_and_field(tmp_path):
    from mmsim.resolve import resolve_for_events

    def spec_of(path):
        cfg = config_from_dict({"data": {"kind": "synthetic"}, "policy": {"name": "static"},
                                "queue": {"model": "calibrated", "calibration": str(path)}})
        return resolve_for_events(cfg, ref_price_tick=10_000, book="L2")

    with pytest.raises(ConfigError, match="field 'queue.calibration': required"):
        config_from_dict({"data": {"kind": "synthetic"}, "policy": {"name": "static"},
                          "queue": {"model": "calibrated"}})
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=f"'queue.calibration': {missing}: .*not found"):
        spec_of(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not a readable JSON"):
        spec_of(bad)
    bad.write_text(json.dumps({"model": "power", "power_n": -1}))
    with pytest.raises(ConfigError, match="bad.json: field 'power_n': must be a number > 0"):
        spec_of(bad)
    bad.write_text(json.dumps({"model": "log"}))
    with pytest.raises(ConfigError, match="field 'model'"):
        spec_of(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"model": "power", "power_n": 1.7}))
    assert spec_of(good).queue.power_n == 1.7
    # unset, the new field leaves config digests as they were
    assert "calibration" not in config_from_dict(
        {"data": {"kind": "synthetic"}, "policy": {"name": "static"}}).as_dict()["queue"]


def test_summary_definitions_on_hand_made_results():
    pr = probes_of((0, 1, 0, None), (0, 1, 0, None), (0, 1, 0, None), (0, 1, 0, None))
    truth = np.zeros(4, dtype=PROBE_RESULT_DTYPE)
    est = truth.copy()
    s = 1_000_000_000
    truth["first_fill_ts"] = [T0 + s // 2, T0 + 5 * s, T0 + 100 * s, NO_TS]
    est["first_fill_ts"] = [T0 + 2 * s, T0 + 5 * s, NO_TS, T0 + 30 * s]
    truth["filled_qty"] = [1, 1, 1, 0]
    est["filled_qty"] = [1, 1, 0, 1]
    (r,) = summarise(pr, truth, {"m": est})
    assert r["agree_1s"] == 0.75  # probe 0: true within 1 s, model not
    assert r["agree_10s"] == 1.0
    assert r["agree_60s"] == 0.75  # probe 3: model within 60 s, truth never
    assert r["agree_end"] == 0.5
    assert r["error"] == pytest.approx(1 - (0.75 + 1 + 0.75 + 0.5) / 4)
    assert r["n_both_filled"] == 2 and r["bias_median_s"] == pytest.approx(0.75)
    assert r["abs_err_median_s"] == pytest.approx(0.75) and r["exact_share"] == 0.5
    assert (r["filled_true"], r["filled_model"]) == (0.75, 0.75)
    assert (r["model_only_filled"], r["true_only_filled"]) == (0.25, 0.25)
    assert r["fill_qty_mae_lots"] == 0.5 and r["fill_qty_bias_lots"] == 0.0
    assert not math.isnan(r["ttf_median_true_s"])
    md = format_summary([r, {**r, "model": "n"}], markdown=True).splitlines()
    assert md[0] == "| measure | m | n |" and md[1] == "|---|---:|---:|"
    assert "| agree_1s | 0.750 | 0.750 |" in md and len(md) == 2 + len(r) - 1


def test_calibration_ties_are_broken_by_bias_then_log_ratio_then_the_smallest_n():
    from mmsim.queue_score.score import _best

    err = np.array([0.10, 0.05, 0.05, 0.05, 0.05])
    bias = np.array([0.0, 0.2, 0.1, 0.1, np.nan])
    lr = np.array([0.0, 3.0, 2.0, 1.0, 0.0])
    assert _best(err, lambda rows: (np.abs(bias[rows]), lr[rows])) == 3
    lr[3] = 2.0
    assert _best(err, lambda rows: (np.abs(bias[rows]), lr[rows])) == 2
    assert _best(np.array([0.2, 0.1]), lambda rows: (rows,)) == 1
