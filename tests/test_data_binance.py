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
    res = read_binance([path], gap_policy="apply")
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
    rep = read_binance([write_stream(tmp_path / "g.gz", lines)], gap_policy="apply").report
    assert rep["update_id_gaps"] == 1
    assert rep["update_id_gap_examples"][0]["rule"] == "U <= lastUpdateId <= u"
    assert rep["update_id_gap_examples"][0]["expected"] == 100
    assert rep["diffs_applied"] == 2


def test_several_files_are_one_stream(tmp_path):
    one = read_binance([write_stream(tmp_path / "all.gz", FUTURES_LINES)], gap_policy="apply")
    a = write_stream(tmp_path / "a.gz", FUTURES_LINES[:4])
    b = write_stream(tmp_path / "b.txt", FUTURES_LINES[4:], gz=False)
    two = read_binance([b, a], gap_policy="apply")  # given out of order: sorted
    assert np.array_equal(one.events, two.events)
    assert [f["name"] for f in two.meta["files"]] == ["a.gz", "b.txt"]
    # the gap is found across the boundary, in the second file
    assert two.report["update_id_gap_examples"][0]["file"] == "b.txt"
    assert two.report["update_id_gap_examples"][0]["line"] == 3


def test_chain_broken_at_the_file_boundary(tmp_path):
    a = write_stream(tmp_path / "a.gz", FUTURES_LINES[:5])
    lines_b = [(9, depth(120, 121, 119, t=20, b=[("100.0", "1.000")]))]  # previous u was 105
    b = write_stream(tmp_path / "b.gz", lines_b)
    rep = read_binance([a, b], gap_policy="apply").report
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
    res = read_binance([write_stream(tmp_path / "s.gz", lines)], gap_policy="apply")
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
    lines.insert(0, (-1500, snapshot(101, [("1.0", "1.000")], [("2.0", "1.000")], t=0)))
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


# ------------------------------------------------------------------ COIN-M
def cm_depth(U, u, pu, *, t=0, b=(), a=(), sym="BTCUSD_PERP"):
    return {
        "stream": f"{sym.lower()}@depth@100ms",
        "data": {
            "e": "depthUpdate",
            "E": T0 + t + 1,
            "T": T0 + t,
            "s": sym,
            "ps": sym.split("_")[0],
            "U": U,
            "u": u,
            "pu": pu,
            "b": [list(x) for x in b],
            "a": [list(x) for x in a],
        },
    }


def cm_trade(p, q, m, *, t=0, tid=1, sym="BTCUSD_PERP", agg=True):
    data = {"E": T0 + t + 1, "s": sym, "p": p, "q": q, "T": T0 + t, "m": m}
    if agg:
        data.update(e="aggTrade", a=tid, f=10 * tid, l=10 * tid + 2)
    else:
        data.update(e="trade", t=tid, X="MARKET")
    return {"stream": f"{sym.lower()}@{'aggTrade' if agg else 'trade'}", "data": data}


def cm_snapshot(L, bids, asks, *, t=0, sym="BTCUSD_PERP"):
    out = snapshot(L, bids, asks, t=t)
    out.update(symbol=sym, pair=sym.split("_")[0])
    return out


def cm_ticker(b, B, a, A, *, t=0, sym="BTCUSD_PERP"):
    return {
        "stream": f"{sym.lower()}@bookTicker",
        "data": {"e": "bookTicker", "u": 1, "s": sym, "ps": sym.split("_")[0], "b": b, "B": B,
                 "a": a, "A": A, "T": T0 + t, "E": T0 + t + 1},
    }


def cm_mark(p, r, next_ms, *, t=0, sym="BTCUSD_PERP"):
    return {
        "stream": f"{sym.lower()}@markPrice@1s",
        "data": {"e": "markPriceUpdate", "E": T0 + t, "s": sym, "p": p, "P": p, "r": r,
                 "T": next_ms},
    }


def coinm_lines(sym="BTCUSD_PERP", *, dated=False):
    """A COIN-M capture: quantities in contracts, the pair field ``ps``, aggTrade trades."""
    r, nxt = ("", 0) if dated else ("0.00010000", T0 + 3_600_000)
    return [
        (0, cm_depth(990, 1000, 989, t=0, b=[("64000.0", "500")], sym=sym)),  # dropped
        (1, cm_depth(1001, 1010, 1000, t=5, b=[("64000.0", "700")], a=[("64000.1", "300")],
                     sym=sym)),  # bridges lastUpdateId 1005
        (2, cm_snapshot(1005, [("64000.0", "650"), ("63999.9", "1200")], [("64000.1", "250")],
                        t=3, sym=sym)),
        (3, cm_snapshot(7, [("63990.0", "1")], [("64010.0", "1")], t=3, sym="XRPUSD_PERP")),
        (4, cm_trade("64000.1", "25", False, t=10, tid=7, sym=sym)),
        (5, cm_depth(1011, 1012, 1010, t=10, a=[("64000.1", "275")], sym=sym)),
        (6, cm_ticker("64000.0", "700", "64000.1", "275", t=11, sym=sym)),
        (7, cm_mark("64000.05", r, nxt, t=1000, sym=sym)),
        (8, cm_trade("64000.0", "3", True, t=12, tid=8, sym=sym)),
    ]


def test_coinm_perpetual_is_inverse_100_usd_contracts(tmp_path):
    res = read_binance([write_stream(tmp_path / "btcusd_perp.gz", coinm_lines())])
    ev, rep, meta = res.events, res.report, res.meta
    assert meta["market"] == "coinm" and meta["contract"] == "inverse"
    assert meta["multiplier"] == 100.0 and meta["lot_size"] == 1.0 and meta["tick_size"] == 0.1
    assert meta["symbol"] == "BTCUSD_PERP"
    # quantities are contracts: 25 and 3 contracts traded, BBO sizes 700 / 275 contracts
    tr = ev[ev["kind"] == K.TRADE]
    assert tr["qty"].tolist() == [25, 3] and tr["side"].tolist() == [-1, 1]
    assert tr["price_tick"].tolist() == [640001, 640000]
    assert rep["trade_stream"] == "aggTrade" and rep["trade_id_gaps"] == 0
    assert ev[ev["kind"] == K.BBO]["qty"].tolist() == [700, 275]
    snap = ev[(ev["kind"] == K.LEVEL_SET) & ((ev["flags"] & F.SNAPSHOT) != 0)]
    assert snap[["side", "price_tick", "qty"]].tolist() == [
        (1, 640000, 650), (1, 639999, 1200), (-1, 640001, 250)
    ]
    # the other contract's REST snapshot (its "symbol" field) is not taken for ours
    assert rep["other_symbols"] == {"XRPUSD_PERP": 1} and rep["snapshot"]["lastUpdateId"] == 1005
    assert rep["diffs_dropped_before_snapshot"] == 1 and rep["update_id_gaps"] == 0
    assert rep["funding_records"] == 1 and rep["crossed_states"] == 0
    # a grid given by the user does not turn the contract linear
    res2 = read_binance([tmp_path / "btcusd_perp.gz"], tick_size=0.1, lot_size=1)
    assert (res2.meta["market"], res2.meta["contract"], res2.meta["multiplier"]) == (
        "coinm", "inverse", 100.0)


def test_coinm_dated_and_other_contracts(tmp_path):
    dated = read_binance([write_stream(tmp_path / "q.gz", coinm_lines("BTCUSD_240927",
                                                                       dated=True))])
    assert dated.meta["symbol"] == "BTCUSD_240927" and dated.meta["market"] == "coinm"
    assert dated.meta["multiplier"] == 100.0 and dated.meta["contract"] == "inverse"
    # a delivery contract's markPrice has an empty funding rate: MARK, no FUNDING
    assert dated.report["mark_records"] == 1 and dated.report["funding_records"] == 0
    assert (dated.events["kind"] == K.FUNDING).sum() == 0
    eth = write_stream(tmp_path / "e.gz", coinm_lines("ETHUSD_PERP"))
    with pytest.raises(ValueError, match="tick_size"):
        read_binance([eth])  # no default tick for ETHUSD_PERP; the lot is known (1)
    res = read_binance([eth], tick_size=0.01)
    assert res.meta["multiplier"] == 10.0 and res.meta["lot_size"] == 1.0
    assert res.meta["contract"] == "inverse" and res.meta["symbol"] == "ETHUSD_PERP"
    # trade and aggTrade both captured: the raw trades are used, aggTrade is skipped
    lines = coinm_lines() + [(9, cm_trade("64000.0", "3", True, t=12, tid=55, agg=False))]
    both = read_binance([write_stream(tmp_path / "b.gz", lines)])
    assert both.report["trade_stream"] == "trade" and both.report["trades"] == 1
    assert both.report["messages"]["aggTrade"] == 2


def test_contract_that_cannot_be_told_is_not_guessed(tmp_path):
    msg = depth(1, 2, 0)
    msg["stream"] = "ethbtc@depth@0ms"  # futures (pu), neither a USD-M nor a COIN-M name
    path = write_stream(tmp_path / "x.gz", [(0, snapshot(1, [], [])), (1, msg)])
    with pytest.raises(DataError, match="instrument.contract") as exc:
        read_binance([path], tick_size=0.01, lot_size=0.001)
    assert "instrument.multiplier" in str(exc.value) and "x.gz" in str(exc.value)
    assert (exc.value.row, exc.value.field) == (2, "stream")
    res = read_binance([path], tick_size=0.01, lot_size=0.001, contract="linear")
    assert res.meta["contract"] == "linear" and res.meta["multiplier"] == 1.0
    assert res.meta["market"] == "usdm"
    # the pair field ps says COIN-M but the name is not a contract: inverse needs a size
    pair = cm_depth(1, 2, 0, sym="BTCUSD")
    path = write_stream(tmp_path / "p.gz", [(0, snapshot(1, [], [])), (1, pair)])
    with pytest.raises(DataError, match="instrument.contract"):
        read_binance([path], tick_size=0.1, lot_size=1)
    with pytest.raises(DataError, match="instrument.multiplier"):
        read_binance([path], tick_size=0.1, lot_size=1, contract="inverse")
    res = read_binance([path], tick_size=0.1, lot_size=1, contract="inverse", multiplier=100)
    assert (res.meta["market"], res.meta["contract"], res.meta["multiplier"]) == (
        "coinm", "inverse", 100.0)


def test_explicit_instrument_wins(tmp_path):
    path = write_stream(tmp_path / "c.gz", coinm_lines())
    res = read_binance([path], symbol="btcusd_perp", contract="linear", multiplier=5)
    assert res.meta["symbol"] == "BTCUSD_PERP" and res.meta["market"] == "coinm"
    assert res.meta["contract"] == "linear" and res.meta["multiplier"] == 5.0
    with pytest.raises(ValueError, match="contract"):
        read_binance([path], contract="quanto")
    with pytest.raises(ValueError, match="multiplier"):
        read_binance([path], multiplier=0)
    # a linear USD-M capture says so explicitly
    usdm = read_binance([write_stream(tmp_path / "u.gz", FUTURES_LINES[:5])])
    assert (usdm.meta["market"], usdm.meta["contract"], usdm.meta["multiplier"]) == (
        "usdm", "linear", 1.0)


# ------------------------------------------------------------------ gap policy
# a gap at line 4: the missing updates removed the asks 100.4 and 100.5, so applying the
# gapped diff anyway leaves a crossed book; a second REST snapshot comes at line 8
RESYNC_LINES = [
    (0, snapshot(100, [("100.0", "1.000")], [("100.5", "1.000")], t=0)),
    (1, depth(99, 101, 98, t=1, b=[("100.0", "2.000")])),  # bridges 100
    (2, depth(102, 103, 101, t=2, a=[("100.4", "1.000")])),
    (3, depth(110, 111, 108, t=5, b=[("100.6", "1.000")])),  # gap: pu 108 != 103
    (4, trade("100.6", "0.500", False, t=6, tid=1)),
    (5, depth(112, 113, 111, t=7, b=[("100.7", "1.000")])),  # older than snapshot 2
    (6, depth(114, 121, 113, t=8, a=[("100.8", "2.000")])),  # bridges 120 (before its line)
    (7, snapshot(120, [("100.6", "1.000"), ("100.0", "2.000")], [("100.8", "3.000")], t=7)),
    (8, depth(122, 125, 121, t=9, b=[("100.6", "0")])),
]


def test_gap_policy_error_names_file_line_and_update_ids(tmp_path):
    path = write_stream(tmp_path / "r.gz", RESYNC_LINES)
    with pytest.raises(DataError) as exc:
        read_binance([path])  # the default policy
    e = exc.value
    assert (Path(e.path).name, e.row, e.field) == ("r.gz", 4, "pu")
    assert "expected pu 103" in e.reason and "got pu 108" in e.reason
    assert "line 3" in e.reason and "gap_policy" in e.reason
    # the bridging rule and the spot rule name U (or u) and the ids
    lines = [
        (0, snapshot(100, [("100.0", "1.000")], [("100.5", "1.000")], t=0)),
        (1, depth(102, 104, 101, t=1, b=[("100.0", "2.000")])),
    ]
    with pytest.raises(DataError, match="U <= 100 <= u, got U 102, u 104") as exc:
        read_binance([write_stream(tmp_path / "g.gz", lines)], gap_policy="error")
    assert (exc.value.row, exc.value.field) == (2, "U")
    spot = [
        (0, snapshot(100, [("100.00", "1.00000")], [("100.01", "2.00000")])),
        (1, depth(101, 103, spot=True, t=100, a=[("100.01", "0.50000")])),
        (2, depth(105, 107, spot=True, t=200, b=[("100.00", "1.00000")])),
    ]
    with pytest.raises(DataError, match="expected U 104 .* got U 105") as exc:
        read_binance([write_stream(tmp_path / "s.gz", spot)])
    assert (exc.value.row, exc.value.field) == (3, "U")
    with pytest.raises(ValueError, match="gap_policy"):
        read_binance([path], gap_policy="skip")


def test_gap_policy_apply_crosses_the_book_and_says_so(tmp_path):
    rep = read_binance([write_stream(tmp_path / "r.gz", RESYNC_LINES)], gap_policy="apply").report
    assert rep["gap_policy"] == "apply" and rep["update_id_gaps"] == 1
    assert rep["crossed_states"] == 4  # the gapped diff and the three after it
    assert rep["resyncs"] == 0 and rep["paused_ns"] == 0 and rep["snapshots_unused"] == 1


def test_gap_policy_resync_rebuilds_from_the_next_snapshot(tmp_path):
    res = read_binance([write_stream(tmp_path / "r.gz", RESYNC_LINES)], gap_policy="resync")
    ev, rep = res.events, res.report
    assert kinds(ev) == [
        K.SNAPSHOT_BEGIN, K.CLEAR, K.LEVEL_SET, K.LEVEL_SET, K.SNAPSHOT_END,  # +0 ms
        K.LEVEL_SET, K.LEVEL_SET,  # +1, +2
        K.STATUS, K.CLEAR,  # +5: the gap halts trading and empties the book
        K.TRADE,  # +6: trades are kept while halted
        K.SNAPSHOT_BEGIN, K.CLEAR, K.LEVEL_SET, K.LEVEL_SET, K.LEVEL_SET, K.SNAPSHOT_END,
        K.STATUS,  # +7: the second snapshot, then trading resumes
        K.LEVEL_SET, K.LEVEL_SET,  # +8 (the bridging diff), +9
    ]
    st = ev[ev["kind"] == K.STATUS]
    assert st["value"].tolist() == [-1.0, 1.0]  # the engine halts on value < 0.5
    assert st["exch_ts"].tolist() == [NS0 + 5 * MS, NS0 + 7 * MS]
    assert st["local_ts"].tolist() == [NS0 + 3 * MS, NS0 + 7 * MS]
    assert set(st["flags"].tolist()) == {F.SYNTHETIC | F.LAST}
    halt_clear = ev[8]
    assert (halt_clear["side"], halt_clear["flags"]) == (0, F.SYNTHETIC | F.LAST)
    assert np.all(np.diff(ev["exch_ts"]) >= 0)
    assert rep["gap_policy"] == "resync" and rep["update_id_gaps"] == 1
    assert rep["crossed_states"] == 0
    assert rep["resyncs"] == 1 and rep["paused_ns"] == 2 * MS and not rep["paused_at_end"]
    assert rep["resync_diffs_dropped"] == 2 and rep["resync_events_dropped"] == 2
    assert rep["snapshots_used"] == 2 and rep["snapshots_unused"] == 0
    assert rep["diffs_applied"] == 4 and rep["diffs_dropped_before_snapshot"] == 0
    assert rep["resync_examples"] == [
        {
            "file": "r.gz",
            "line": 4,
            "halt_exch_ts": NS0 + 5 * MS,
            "resume_exch_ts": NS0 + 7 * MS,
            "snapshot": {"file": "r.gz", "line": 8, "lastUpdateId": 120},
            "diffs_dropped": 2,
        }
    ]
    book = ReferenceL2Book()
    for e in ev:
        book.apply(e)
    assert book.top(5) == ([(1000, 2000)], [(1008, 2000)])


def test_gap_policy_resync_without_a_later_snapshot_stays_halted(tmp_path):
    lines = RESYNC_LINES[:6] + [(9, trade("100.0", "0.100", True, t=20, tid=2))]
    res = read_binance([write_stream(tmp_path / "h.gz", lines)], gap_policy="resync")
    ev, rep = res.events, res.report
    assert ev[ev["kind"] == K.STATUS]["value"].tolist() == [-1.0]
    assert rep["resyncs"] == 1 and rep["paused_at_end"]
    assert rep["paused_ns"] == 15 * MS  # from the gap (+5 ms) to the last event (+20 ms)
    assert rep["resync_diffs_dropped"] == 2 and rep["diffs_applied"] == 2
    assert rep["resync_examples"][0]["resume_exch_ts"] is None
    assert (ev["kind"] == K.TRADE).sum() == 2
    # nothing of the book after the gap: the halt's CLEAR is the last book record
    book_rows = np.flatnonzero(np.isin(ev["kind"], [K.LEVEL_SET, K.CLEAR]))
    assert ev["kind"][book_rows[-1]] == K.CLEAR and ev["exch_ts"][book_rows[-1]] == NS0 + 5 * MS


def test_gap_policy_resync_when_the_gapped_diff_bridges_the_new_snapshot(tmp_path):
    lines = [
        (0, depth(90, 100, spot=True, t=0, b=[("99.99", "1.00000")])),  # u <= L: dropped
        (1, snapshot(100, [("100.00", "1.00000")], [("100.01", "2.00000")])),
        (2, depth(101, 102, spot=True, t=100, a=[("100.01", "0.50000")])),
        (3, depth(105, 107, spot=True, t=200, b=[("100.00", "3.00000")])),  # gap: U 103
        (4, snapshot(106, [("100.00", "2.00000")], [("100.02", "1.00000")])),  # 105<=107<=107
        (5, depth(108, 109, spot=True, t=300, a=[("100.03", "1.00000")])),
    ]
    res = read_binance([write_stream(tmp_path / "s.gz", lines)], gap_policy="resync")
    ev, rep = res.events, res.report
    at = ev[ev["exch_ts"] == NS0 + 201 * MS]  # the gapped diff's E; spot snapshots have none
    assert kinds(at) == [
        K.STATUS, K.CLEAR, K.SNAPSHOT_BEGIN, K.CLEAR, K.LEVEL_SET, K.LEVEL_SET,
        K.SNAPSHOT_END, K.STATUS, K.LEVEL_SET,
    ]
    assert rep["resyncs"] == 1 and rep["paused_ns"] == 0 and rep["resync_diffs_dropped"] == 0
    assert rep["diffs_applied"] == 3 and rep["crossed_states"] == 0
    book = ReferenceL2Book()
    for e in ev:
        book.apply(e)
    assert book.top(5) == ([(10000, 3_000_000)], [(10002, 1_000_000), (10003, 1_000_000)])


# ------------------------------------------------------------------ several files
def test_the_same_file_twice_is_refused(tmp_path):
    a = write_stream(tmp_path / "a.gz", FUTURES_LINES[:5])
    with pytest.raises(DataError, match="a.gz: given twice, update ids 90..105"):
        read_binance([a, a])
    copy = tmp_path / "copy.gz"
    copy.write_bytes(a.read_bytes())
    with pytest.raises(DataError, match="copy.gz: the same content as ") as exc:
        read_binance([a, copy])
    assert f"the same content as {a} (sha256" in str(exc.value)  # both files named


def test_overlapping_update_id_ranges_are_refused(tmp_path):
    a = write_stream(tmp_path / "a.gz", FUTURES_LINES[:5])  # diffs 90..105
    b = write_stream(
        tmp_path / "b.gz",
        [(10, depth(104, 108, 103, t=20, b=[("100.0", "1.000")]))],  # overlaps 104..105
    )
    with pytest.raises(DataError) as exc:
        read_binance([a, b])
    msg = str(exc.value)
    assert "b.gz" in msg and "update ids 104..108" in msg and "a.gz's update ids 90..105" in msg


def test_files_are_put_in_update_id_order(tmp_path):
    # the second part of the stream carries the earlier receive stamps (a local clock
    # reset): the update ids decide, and the chain continues without a gap
    a = write_stream(tmp_path / "a.gz", [(1000 + dt, m) for dt, m in FUTURES_LINES[:5]])
    b = write_stream(tmp_path / "b.gz", [(0, depth(106, 108, 105, t=20, b=[("99.9", "1.000")]))])
    res = read_binance([b, a])
    assert [f["name"] for f in res.meta["files"]] == ["a.gz", "b.gz"]
    assert res.report["update_id_gaps"] == 0 and res.report["diffs_applied"] == 3
    assert res.report["update_id_ranges"] == {"a.gz": [90, 105], "b.gz": [106, 108]}
    # with a file without diffs the receive stamps order the files, and a disagreement
    # with the update ids is refused
    c = write_stream(tmp_path / "c.gz", [(2000, trade("100.0", "0.001", True, t=30, tid=9))])
    with pytest.raises(DataError, match="out of order: a.gz .* was received after ") as exc:
        read_binance([a, b, c])
    assert f"after {b} (update ids 106..108)" in str(exc.value)


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


@pytest.mark.realdata
def test_real_same_file_twice_is_refused(data_root):
    first = data_root / "binance/usdm/btcusdt_20240718.gz"
    with pytest.raises(DataError, match="btcusdt_20240718.gz: given twice") as exc:
        read_binance([first, first])
    assert "update ids 4984028367545.." in str(exc.value)
