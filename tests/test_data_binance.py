"""Binance raw-stream reader: hand-built streams, then the real USD-M and spot captures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from mmsim.book.reference_l2 import ReferenceL2Book
from mmsim.data.binance import DecimalGrid, read_binance
from mmsim.data.errors import DataError
from mmsim.data.store import read_events, read_meta, write_events
from mmsim.enums import EventFlag as F
from mmsim.enums import EventKind as K

MS = 1_000_000
T0 = 1_721_347_022_000  # ms
NS0 = T0 * MS


def depth(U, u, pu=None, *, t=0, b=(), a=(), spot=False):
    data = {
        "e": "depthUpdate",
        "E": T0 + t + 1,
        "s": "BTCUSDT",
        "U": U,
        "u": u,
        "b": [list(x) for x in b],
        "a": [list(x) for x in a],
    }
    if not spot:
        data["T"] = T0 + t
        data["pu"] = pu
    return {"stream": "btcusdt@depth@100ms" if spot else "btcusdt@depth@0ms", "data": data}


def trade(p, q, m, *, t=0, tid=1, x="MARKET"):
    return {
        "stream": "btcusdt@trade",
        "data": {
            "e": "trade",
            "E": T0 + t + 2,
            "T": T0 + t,
            "s": "BTCUSDT",
            "t": tid,
            "p": p,
            "q": q,
            "X": x,
            "m": m,
        },
    }


def snapshot(L, bids, asks, *, t=None):
    out = {"lastUpdateId": L, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}
    if t is not None:
        out["E"] = T0 + t + 1
        out["T"] = T0 + t
    return out


def book_ticker(b, B, a, A, *, t=None):
    data = {"u": 1, "s": "BTCUSDT", "b": b, "B": B, "a": a, "A": A}
    if t is not None:
        data.update(e="bookTicker", T=T0 + t, E=T0 + t + 1)
    return {"stream": "btcusdt@bookTicker", "data": data}


def mark(p, r, next_ms, *, t=0):
    return {
        "stream": "btcusdt@markPrice@1s",
        "data": {
            "e": "markPriceUpdate",
            "E": T0 + t,
            "s": "BTCUSDT",
            "p": p,
            "P": p,
            "i": p,
            "r": r,
            "T": next_ms,
        },
    }


def write_stream(path: Path, lines, *, unit="ns", gz=True) -> Path:
    """lines: (local offset in ms from T0, message). The stamp is in ns or µs."""
    text = []
    for dt_ms, msg in lines:
        stamp = (T0 + dt_ms) * (MS if unit == "ns" else 1000)
        text.append(f"{stamp} {json.dumps(msg)}")
    data = ("\n".join(text) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


FUTURES_LINES = [
    (0, depth(90, 95, 89, t=0, b=[("99.9", "1.000")])),  # older than the snapshot: dropped
    (1, depth(96, 102, 95, t=5, b=[("100.0", "3.000")], a=[("100.6", "0.500")])),  # bridges
    (2, snapshot(100, [("100.0", "1.000"), ("99.8", "4.000")], [("100.5", "2.000")], t=3)),
    (3, trade("100.5", "0.250", False, t=10, tid=7)),
    (4, depth(103, 105, 102, t=10, a=[("100.5", "1.750")])),
    (5, trade("100.0", "0.100", True, t=12, tid=8)),
    (6, depth(110, 112, 108, t=14, b=[("100.1", "0.001")])),  # gap: pu 108 != 105
]


def kinds(ev):
    return ev["kind"].tolist()


# ------------------------------------------------------------------ reference book
def test_reference_l2_book_basics():
    book = ReferenceL2Book()
    book.apply_fields(K.LEVEL_SET, 1, 100, 5)
    book.apply_fields(K.LEVEL_SET, 1, 99, 7)
    book.apply_fields(K.LEVEL_SET, -1, 101, 2)
    assert (book.best_bid(), book.best_ask()) == (100, 101)
    assert book.top(1) == ([(100, 5)], [(101, 2)])
    book.apply_fields(K.LEVEL_SET, -1, 100, 1)
    assert book.is_crossed()
    book.apply_fields(K.LEVEL_SET, -1, 100, 0)
    assert not book.is_crossed() and book.level_qty(-1, 100) == 0
    book.apply_fields(K.TRADE, 1, 100, 1)  # no effect
    assert book.level_qty(1, 100) == 5
    book.apply_fields(K.CLEAR, 1, 0, 0)
    assert book.best_bid() is None and book.best_ask() == 101
    book.apply({"kind": K.CLEAR, "side": 0, "price_tick": 0, "qty": 0})
    assert book.top(3) == ([], [])
    with pytest.raises(ValueError):
        book.apply_fields(K.ADD, 1, 100, 1)
    with pytest.raises(ValueError):
        book.apply_fields(K.LEVEL_SET, 0, 100, 1)


def test_decimal_grid_is_exact():
    tick = DecimalGrid(0.1)
    assert tick("63943.90") == 639439
    assert tick("0.30") == 3  # float division would give 2.9999999999999996
    with pytest.raises(ValueError, match="not on the grid"):
        tick("63943.95")
    with pytest.raises(ValueError, match="not a decimal"):
        tick("abc")
    assert DecimalGrid(0.001)("569.567") == 569567


# ------------------------------------------------------------------ hand-built streams
def test_futures_bridging_drop_and_gap(tmp_path):
    path = write_stream(tmp_path / "f.gz", FUTURES_LINES)
    res = read_binance([path])
    ev, rep, meta = res.events, res.report, res.meta
    assert meta["market"] == "usdm" and meta["tick_size"] == 0.1 and meta["lot_size"] == 0.001
    assert meta["clocks"] == 2 and meta["local_ts_unit"] == "ns" and meta["symbol"] == "BTCUSDT"
    assert rep["diffs"] == 4 and rep["diffs_dropped_before_snapshot"] == 1
    assert rep["diffs_applied"] == 3
    assert rep["update_id_gaps"] == 1
    assert rep["update_id_gap_examples"] == [
        {"file": "f.gz", "line": 7, "rule": "pu == previous u", "expected": 105, "got": 108}
    ]
    assert rep["snapshot"]["lastUpdateId"] == 100 and rep["snapshot"]["line"] == 3
    # snapshot block (T = +3 ms) first, then the bridging diff received before it (+5 ms)
    assert kinds(ev) == [
        K.SNAPSHOT_BEGIN,
        K.CLEAR,
        K.LEVEL_SET,
        K.LEVEL_SET,
        K.LEVEL_SET,
        K.SNAPSHOT_END,
        K.LEVEL_SET,
        K.LEVEL_SET,  # diff 96..102 (bid then ask)
        K.TRADE,
        K.LEVEL_SET,  # trade and depth at +10 ms: the trade first
        K.TRADE,
        K.LEVEL_SET,  # +12 trade, +14 gapped diff (applied)
    ]
    assert ev["exch_ts"][0] == NS0 + 3 * MS
    assert ev["local_ts"][0] == NS0 + 2 * MS  # the snapshot line's receive stamp
    assert ev["flags"][0] == F.SYNTHETIC | F.SNAPSHOT
    assert ev["flags"][2] == F.SNAPSHOT and ev["flags"][5] == F.SYNTHETIC | F.SNAPSHOT | F.LAST
    assert ev[2:5][["side", "price_tick", "qty"]].tolist() == [
        (1, 1000, 1000),
        (1, 998, 4000),
        (-1, 1005, 2000),
    ]
    # the diff: two records sharing the message's clocks, LAST on the second only
    d = ev[6:8]
    assert d[["side", "price_tick", "qty"]].tolist() == [(1, 1000, 3000), (-1, 1006, 500)]
    assert d["flags"].tolist() == [0, F.LAST]
    assert set(d["exch_ts"]) == {NS0 + 5 * MS} and set(d["local_ts"]) == {NS0 + 1 * MS}
    # trades: m=false -> buyer-initiated -> resting ask (-1); m=true -> resting bid (+1)
    t1, t2 = ev[8], ev[10]
    assert (t1["side"], t1["price_tick"], t1["qty"], t1["order_id"]) == (-1, 1005, 250, 0)
    assert (t2["side"], t2["price_tick"], t2["qty"]) == (1, 1000, 100)
    assert t1["flags"] == F.LAST and t1["exch_ts"] == NS0 + 10 * MS
    assert np.all(np.diff(ev["exch_ts"]) >= 0)
    # the local clock steps back once: the bridging diff was received before the snapshot
    assert rep["local_ts_backwards"] == 1
    assert rep["crossed_states"] == 0


def test_bridging_rule_violated_is_a_gap(tmp_path):
    lines = [
        (0, snapshot(100, [("100.0", "1.000")], [("100.5", "1.000")], t=0)),
        (1, depth(102, 104, 101, t=1, b=[("100.0", "2.000")])),  # U 102 > L 100: a gap
        (2, depth(105, 106, 104, t=2, b=[("100.0", "3.000")])),
    ]
    rep = read_binance([write_stream(tmp_path / "g.gz", lines)]).report
    assert rep["update_id_gaps"] == 1
    assert rep["update_id_gap_examples"][0]["rule"] == "U <= lastUpdateId <= u"
    assert rep["update_id_gap_examples"][0]["expected"] == 100
    assert rep["diffs_applied"] == 2


def test_several_files_are_one_stream(tmp_path):
    one = read_binance([write_stream(tmp_path / "all.gz", FUTURES_LINES)])
    a = write_stream(tmp_path / "a.gz", FUTURES_LINES[:4])
    b = write_stream(tmp_path / "b.txt", FUTURES_LINES[4:], gz=False)
    two = read_binance([b, a])  # given out of order: sorted by first receive stamp
    assert np.array_equal(one.events, two.events)
    assert [f["name"] for f in two.meta["files"]] == ["a.gz", "b.txt"]
    # the gap is found across the boundary, in the second file
    assert two.report["update_id_gap_examples"][0]["file"] == "b.txt"
    assert two.report["update_id_gap_examples"][0]["line"] == 3


def test_chain_broken_at_the_file_boundary(tmp_path):
    a = write_stream(tmp_path / "a.gz", FUTURES_LINES[:5])
    lines_b = [(9, depth(120, 121, 119, t=20, b=[("100.0", "1.000")]))]  # previous u was 105
    b = write_stream(tmp_path / "b.gz", lines_b)
    rep = read_binance([a, b]).report
    assert rep["update_id_gaps"] == 1
    assert rep["update_id_gap_examples"][0] == {
        "file": "b.gz",
        "line": 1,
        "rule": "pu == previous u",
        "expected": 105,
        "got": 119,
    }


def test_spot_rules_and_estimated_bbo_time(tmp_path):
    lines = [
        (0, book_ticker("100.00", "1.00000", "100.01", "2.00000")),  # before any exch time
        (1, depth(90, 100, spot=True, t=0, b=[("99.99", "1.00000")])),  # u <= L: dropped
        (2, depth(101, 103, spot=True, t=100, a=[("100.01", "0.50000")])),  # U <= L+1 <= u
        (3, snapshot(100, [("100.00", "1.00000")], [("100.01", "2.00000")])),  # no E/T on spot
        (4, depth(104, 107, spot=True, t=200, b=[("100.00", "0.000001")])),  # U == prev u + 1
        (5, book_ticker("100.00", "0.000001", "100.01", "0.50000")),
        (6, depth(109, 110, spot=True, t=300, b=[("99.98", "1.00000")])),  # gap: 109 != 108
    ]
    res = read_binance([write_stream(tmp_path / "s.gz", lines)])
    ev, rep, meta = res.events, res.report, res.meta
    assert meta["market"] == "spot" and meta["tick_size"] == 0.01 and meta["lot_size"] == 1e-6
    assert rep["diffs_dropped_before_snapshot"] == 1
    assert rep["update_id_gaps"] == 1
    assert rep["update_id_gap_examples"][0]["rule"] == "U == previous u + 1"
    assert rep["update_id_gap_examples"][0]["expected"] == 108
    assert rep["update_id_gap_examples"][0]["got"] == 109
    # the spot snapshot takes the exchange time of the first kept diff (E = +101 ms)
    snap = ev[ev["kind"] == K.SNAPSHOT_BEGIN][0]
    assert snap["exch_ts"] == NS0 + 101 * MS
    order = kinds(ev)
    diff_rows = [
        i for i, k in enumerate(order) if k == K.LEVEL_SET and not ev["flags"][i] & F.SNAPSHOT
    ]
    assert order.index(K.SNAPSHOT_END) < diff_rows[0]
    # spot bookTicker: the latest exchange time received before it (first one: back-filled)
    bbo = ev[ev["kind"] == K.BBO]
    assert rep["bbo_exch_ts_estimated"] == 2
    assert bbo["exch_ts"].tolist() == [NS0 + 1 * MS] * 2 + [NS0 + 201 * MS] * 2
    assert bbo["side"].tolist() == [1, -1, 1, -1]
    assert bbo["flags"].tolist() == [F.INFO, F.INFO | F.LAST] * 2
    assert bbo["qty"].tolist() == [1_000_000, 2_000_000, 1, 500_000]
    assert np.all(np.diff(ev["exch_ts"]) >= 0)


def test_microsecond_and_nanosecond_local_clocks(tmp_path):
    lines = FUTURES_LINES[1:3]
    ns = read_binance([write_stream(tmp_path / "ns.gz", lines, unit="ns")])
    us = read_binance([write_stream(tmp_path / "us.dat.gz", lines, unit="us")])
    assert ns.meta["local_ts_unit"] == "ns" and us.meta["local_ts_unit"] == "us"
    assert np.array_equal(ns.events["local_ts"], us.events["local_ts"])
    assert ns.events["local_ts"][0] == NS0 + 2 * MS


def test_clock_offset_and_suggested_feed_offset(tmp_path):
    # receive stamps 1.5 s before the exchange times, like the 2024 USD-M files
    lines = [
        (-1500 + 10 * i, depth(100 + i, 100 + i, 99 + i, t=10 * i, b=[("1.0", "1.000")]))
        for i in range(1, 6)
    ]
    lines.insert(0, (-1500, snapshot(100, [("1.0", "1.000")], [("2.0", "1.000")], t=0)))
    res = read_binance([write_stream(tmp_path / "o.gz", lines)])
    off = res.report["clock_offset_ns"]
    assert off["n"] == 5 and off["min"] == off["max"] == -1500 * MS
    assert res.meta["suggested_feed_offset_ns"] == 1500 * MS
    # raw clocks are stored: nothing is shifted
    assert res.events["local_ts"][-1] - res.events["exch_ts"][-1] == -1500 * MS


def test_mark_price_and_funding(tmp_path):
    nxt = T0 + 3_600_000
    lines = [
        (0, snapshot(100, [("100.0", "1.000")], [("100.5", "1.000")], t=0)),
        (1, mark("100.23456789", "0.00010000", nxt, t=1000)),
        (2, mark("100.26000000", "0.00010000", nxt, t=2000)),  # same funding: MARK only
        (3, mark("100.31000000", "0.00012000", nxt, t=3000)),
        (4, trade("100.5", "0.001", False, t=3500, x="INSURANCE_FUND")),
    ]
    res = read_binance([write_stream(tmp_path / "m.gz", lines)])
    ev = res.events
    mk = ev[ev["kind"] == K.MARK]
    fu = ev[ev["kind"] == K.FUNDING]
    assert mk["value"].tolist() == [100.23456789, 100.26, 100.31]
    assert mk["price_tick"].tolist() == [1002, 1003, 1003]
    assert mk["flags"].tolist() == [0, F.LAST, 0]
    assert fu["value"].tolist() == [0.0001, 0.00012]
    assert fu["order_id"].tolist() == [nxt * MS] * 2
    assert fu["exch_ts"].tolist() == [NS0 + 1000 * MS, NS0 + 3000 * MS]
    assert fu["flags"].tolist() == [F.LAST, F.LAST]
    assert res.report["funding_records"] == 2 and res.report["mark_records"] == 3
    tr = ev[ev["kind"] == K.TRADE][0]
    assert tr["flags"] == F.LAST | F.INFO  # not a MARKET trade: kept, not for fills
    assert res.report["trade_types"] == {"INSURANCE_FUND": 1}


def test_bbo_futures_uses_transaction_time(tmp_path):
    lines = [
        (0, snapshot(100, [("100.0", "1.000")], [("100.5", "1.000")], t=0)),
        (1, book_ticker("100.0", "1.000", "100.5", "1.000", t=7)),
        (2, depth(100, 101, 99, t=8, b=[("100.0", "2.000")])),
    ]
    ev = read_binance([write_stream(tmp_path / "b.gz", lines)]).events
    bbo = ev[ev["kind"] == K.BBO]
    assert bbo["exch_ts"].tolist() == [NS0 + 7 * MS] * 2


def test_crossed_states_are_counted_not_fixed(tmp_path):
    lines = [
        (0, snapshot(100, [("100.0", "1.000")], [("100.5", "1.000")], t=0)),
        (1, depth(100, 101, 99, t=1, b=[("100.6", "1.000")])),  # crosses
        (2, depth(102, 102, 101, t=2, b=[("100.6", "0")])),  # uncrosses
    ]
    rep = read_binance([write_stream(tmp_path / "c.gz", lines)]).report
    assert rep["crossed_states"] == 1
    assert rep["validation"]["crossed_examples"][0]["best_bid_tick"] == 1006


@pytest.mark.parametrize(
    "line, field, match",
    [
        ("{}", "local_ts", "expected"),
        ("abc {}", "local_ts", "not an integer"),
        ("1721347020984480942 {not json", None, "malformed JSON"),
        ("1721347020984 {}", "local_ts", "neither ns nor"),
    ],
)
def test_malformed_lines(tmp_path, line, field, match):
    good = f"{NS0} {json.dumps(snapshot(1, [], []))}\n"
    path = tmp_path / "bad.txt"
    path.write_text(good + line + "\n")
    with pytest.raises(DataError, match=match) as exc:
        read_binance([path])
    assert exc.value.row == 2 and exc.value.field == field


def test_field_errors(tmp_path):
    bad = depth(96, 102, 95, b=[("100.05", "1.000")])
    with pytest.raises(DataError) as exc:
        read_binance([write_stream(tmp_path / "x.gz", [(0, bad)])])
    assert (exc.value.row, exc.value.field) == (1, "b[0].price")
    assert "not on the grid" in str(exc.value)
    bad = depth(96, 102, 95, b=[("100.0", "1.0005")])
    with pytest.raises(DataError) as exc:
        read_binance([write_stream(tmp_path / "x.gz", [(0, bad)])])
    assert exc.value.field == "b[0].qty"
    bad = depth(96, 102, 95)
    del bad["data"]["u"]
    with pytest.raises(DataError) as exc:
        read_binance([write_stream(tmp_path / "x.gz", [(0, bad)])])
    assert (exc.value.row, exc.value.field) == (1, "u")
    bad = trade("abc", "1.000", True)
    lines = [(0, depth(1, 2, 0)), (1, bad)]
    with pytest.raises(DataError) as exc:
        read_binance([write_stream(tmp_path / "x.gz", lines)])
    assert (exc.value.row, exc.value.field) == (2, "p")
    with pytest.raises(DataError, match="no such file"):
        read_binance([tmp_path / "missing.gz"])
    with pytest.raises(DataError, match="no REST snapshot"):
        read_binance([write_stream(tmp_path / "x.gz", [(0, depth(1, 2, 0))])])


def test_other_symbols_need_a_grid(tmp_path):
    msg = depth(1, 2, 0)
    msg["stream"] = "ethusdt@depth@0ms"
    path = write_stream(tmp_path / "e.gz", [(0, msg), (1, snapshot(1, [], []))])
    with pytest.raises(ValueError, match="tick_size"):
        read_binance([path])
    res = read_binance([path], tick_size=0.01, lot_size=0.001)
    assert res.meta["symbol"] == "ETHUSDT"


# ------------------------------------------------------------------ real files
PAIRS = {
    "usdm_2024": (
        ["usdm/btcusdt_20240718.gz", "usdm/btcusdt_20240719.gz"],
        "usdm",
        "ns",
        517_892,
        9022,
        5,
    ),
    "usdm_2023": (
        ["usdm/btcusdt_20230404.dat.gz", "usdm/btcusdt_20230405.dat.gz"],
        "usdm",
        "us",
        426_552,
        16110,
        0,
    ),
    "usdm_20240808": (["usdm/btcusdt_20240808.gz"], "usdm", "ns", 598_756, 6551, 4),
    "spot_2024": (
        ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"],
        "spot",
        "ns",
        466_349,
        6495,
        2,
    ),
}


@pytest.fixture(scope="module")
def real(data_root):
    cache = {}

    def get(name):
        if name not in cache:
            files = [data_root / "binance" / f for f in PAIRS[name][0]]
            cache[name] = read_binance(files)
        return cache[name]

    return get


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_real_binance_streams(real, name):
    _, market, unit, n_events, n_diffs, n_dropped = PAIRS[name]
    res = real(name)
    ev, rep, meta = res.events, res.report, res.meta
    assert meta["market"] == market and meta["local_ts_unit"] == unit
    assert len(ev) == n_events
    assert rep["diffs"] == n_diffs
    assert rep["diffs_dropped_before_snapshot"] == n_dropped
    assert rep["update_id_gaps"] == 0 and rep["update_id_gap_examples"] == []
    assert rep["depth_ts_backwards"] == 0
    assert rep["trade_id_gaps"] == 0
    assert rep["snapshot"]["bid_levels"] == 1000 and rep["snapshot"]["ask_levels"] == 1000
    assert rep["snapshots_unused"] == 0
    assert np.all(np.diff(ev["exch_ts"]) >= 0)
    assert rep["validation"]["exch_ts_backwards"] == 0
    assert rep["crossed_states"] == 0
    assert (ev["kind"] == K.SNAPSHOT_BEGIN).sum() == 1
    assert (ev["kind"] == K.SNAPSHOT_END).sum() == 1
    assert np.all(ev["qty"][ev["kind"] == K.TRADE] > 0)
    assert set(np.unique(ev["side"][ev["kind"] == K.TRADE])) == {-1, 1}
    # every book message ends with LAST: as many LAST level sets as applied diffs
    lvl = ev[(ev["kind"] == K.LEVEL_SET) & ((ev["flags"] & F.SNAPSHOT) == 0)]
    assert int(np.count_nonzero(lvl["flags"] & F.LAST)) == rep["diffs_applied"]


@pytest.mark.realdata
def test_real_clock_offsets(real):
    off = real("usdm_2024").report["clock_offset_ns"]
    # the 2024 USD-M local clock runs ~1.5 s behind the exchange's
    assert -1.6e9 < off["p1"] < off["median"] < off["p99"] < -1.4e9
    assert real("usdm_2024").meta["suggested_feed_offset_ns"] == -off["p1"]
    off23 = real("usdm_2023").report["clock_offset_ns"]
    assert -0.1e9 < off23["median"] < 0.1e9  # the 2023 clock is roughly in sync
    rep23 = real("usdm_2023").report
    assert rep23["mark_records"] == 514 and rep23["funding_records"] == 8
    assert real("spot_2024").report["bbo_exch_ts_estimated"] == 73_174


@pytest.mark.realdata
def test_real_pair_continues_across_files(real, data_root):
    second = data_root / "binance/usdm/btcusdt_20240719.gz"
    with pytest.raises(DataError, match="no REST snapshot"):
        read_binance([second])
    rep = real("usdm_2024").report
    assert rep["lines"] == {"btcusdt_20240718.gz": 11414, "btcusdt_20240719.gz": 60570}
    assert rep["diffs_applied"] == rep["diffs"] - rep["diffs_dropped_before_snapshot"]


@pytest.mark.realdata
def test_real_round_trip(real, tmp_path):
    res = real("usdm_2023")
    path = write_events(tmp_path / "b.parquet", res)
    assert np.array_equal(read_events(path), res.events)
    meta, report = read_meta(path)
    assert meta["market"] == "usdm" and meta["clocks"] == 2
    assert report["update_id_gaps"] == 0
