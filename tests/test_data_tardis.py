"""Tardis CSV and Binance historical depth CSV readers: the format fixtures and hand-built files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mmsim.data.binance_hist import read_binance_hist
from mmsim.data.errors import DataError
from mmsim.data.tardis import read_tardis
from mmsim.enums import EventFlag as F
from mmsim.enums import EventKind as K

BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
TRADE_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
HIST_HEADER = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu\n"
US = 1000


@pytest.fixture(scope="module")
def formats(data_root):
    return data_root / "formats"


def rec(ev, i):
    r = ev[i]
    return (
        int(r["exch_ts"]),
        int(r["local_ts"]),
        int(r["kind"]),
        int(r["side"]),
        int(r["price_tick"]),
        int(r["qty"]),
        int(r["flags"]),
    )


# ------------------------------------------------------------------ Tardis fixtures
@pytest.mark.realdata
def test_tardis_deribit_incremental_fixture(formats):
    res = read_tardis(
        formats / "deribit_incremental_book_L2_BTC-PERPETUAL.csv", tick_size=0.5, lot_size=10
    )
    ev = res.events
    ts, lts = 1585699200245000 * US, 1585699200355684 * US
    assert len(ev) == 18
    assert rec(ev, 0) == (ts, lts, K.SNAPSHOT_BEGIN, 0, 0, 0, F.SYNTHETIC | F.SNAPSHOT)
    assert rec(ev, 1) == (ts, lts, K.CLEAR, 0, 0, 0, F.SYNTHETIC | F.SNAPSHOT)
    assert rec(ev, 2) == (ts, lts, K.LEVEL_SET, -1, 12843, 1864, F.SNAPSHOT)  # 6421.5, 18640
    assert rec(ev, 3) == (ts, lts, K.LEVEL_SET, -1, 12844, 119, F.SNAPSHOT)  # 6422, 1190
    assert rec(ev, 16) == (ts, lts, K.LEVEL_SET, -1, 12857, 3995, F.SNAPSHOT)  # 6428.5, 39950
    assert rec(ev, 17) == (ts, lts, K.SNAPSHOT_END, 0, 0, 0, F.SYNTHETIC | F.SNAPSHOT | F.LAST)
    assert res.report["snapshots"] == 1 and res.report["book_rows"] == 15
    assert res.report["clock_offset_ns"]["median"] == 110_684_000
    assert res.meta["exchange"] == "deribit" and res.meta["symbol"] == "BTC-PERPETUAL"
    assert res.meta["clocks"] == 2 and res.meta["levels"] is None


@pytest.mark.realdata
def test_tardis_bitmex_trades_fixture(formats):
    res = read_tardis(None, formats / "bitmex_trades_XBTUSD.csv", tick_size=0.5, lot_size=1)
    ev = res.events
    assert len(ev) == 10 and set(ev["kind"]) == {K.TRADE}
    # aggressor 'sell' -> resting side bid (+1)
    assert rec(ev, 0) == (
        1583020803145000 * US,
        1583020803307160 * US,
        K.TRADE,
        1,
        17063,
        2152,
        F.LAST,
    )
    assert res.report["trade_aggressor_sides"] == {"sell": 10}
    assert np.all(ev["order_id"] == 0)


@pytest.mark.realdata
def test_tardis_book_snapshot_25_fixture(formats):
    res = read_tardis(
        formats / "binance-futures_book_snapshot_25_BTCUSDT.csv", tick_size=0.01, lot_size=0.001
    )
    ev = res.events
    assert res.meta["levels"] == 25 and res.report["snapshots"] == 10
    assert rec(ev, 0)[2] == K.SNAPSHOT_BEGIN and rec(ev, 1)[2] == K.CLEAR
    ts, lts = 1598918403696000 * US, 1598918403810979 * US
    assert rec(ev, 2) == (ts, lts, K.LEVEL_SET, 1, 1165707, 10896, F.SNAPSHOT)  # best bid
    assert rec(ev, 27) == (ts, lts, K.LEVEL_SET, -1, 1165708, 1714, F.SNAPSHOT)  # best ask
    assert res.report["crossed_states"] == 0
    assert (ev["kind"] == K.SNAPSHOT_END).sum() == 10


# ------------------------------------------------------------------ Tardis hand-built
def test_tardis_snapshot_reset_messages_and_trades(tmp_path):
    book = tmp_path / "book.csv.gz"
    rows = [
        "x,S,1000,1100,true,bid,100.0,5",
        "x,S,1000,1100,true,ask,101.0,5",
        "x,S,2000,2100,false,bid,100.5,2",
        "x,S,2000,2100,false,ask,101.0,0",
        "x,S,3000,3100,false,ask,101.5,1",
        "x,S,4000,4100,true,bid,99.0,1",  # a reset: new snapshot block
        "x,S,4000,4100,true,ask,99.5,1",
        "x,S,5000,5100,false,bid,99.0,3",
    ]
    book.write_bytes(gzip.compress((BOOK_HEADER + "\n".join(rows) + "\n").encode()))
    trades = tmp_path / "trades.csv"
    trades.write_text(
        TRADE_HEADER + "x,S,2000,2050,t1,buy,101.0,5\nx,S,2500,2600,t2,sell,100.5,1\n"
    )
    res = read_tardis(book, trades, tick_size=0.5, lot_size=1)
    ev = res.events
    got = [(int(e["exch_ts"]) // US, int(e["kind"]), int(e["side"]), int(e["flags"])) for e in ev]
    S, SS, L = F.SNAPSHOT, F.SYNTHETIC | F.SNAPSHOT, F.LAST
    assert got == [
        (1000, K.SNAPSHOT_BEGIN, 0, SS),
        (1000, K.CLEAR, 0, SS),
        (1000, K.LEVEL_SET, 1, S),
        (1000, K.LEVEL_SET, -1, S),
        (1000, K.SNAPSHOT_END, 0, SS | L),
        (2000, K.TRADE, -1, L),  # buy aggressor -> resting ask; before the book at 2000
        (2000, K.LEVEL_SET, 1, 0),
        (2000, K.LEVEL_SET, -1, L),
        (2500, K.TRADE, 1, L),
        (3000, K.LEVEL_SET, -1, L),
        (4000, K.SNAPSHOT_BEGIN, 0, SS),
        (4000, K.CLEAR, 0, SS),
        (4000, K.LEVEL_SET, 1, S),
        (4000, K.LEVEL_SET, -1, S),
        (4000, K.SNAPSHOT_END, 0, SS | L),
        (5000, K.LEVEL_SET, 1, L),
    ]
    assert res.report["snapshots"] == 2 and res.report["book_messages"] == 3
    assert res.report["trades"] == 2 and res.report["crossed_states"] == 0
    assert ev["price_tick"][6] == 201 and ev["qty"][7] == 0
    assert res.meta["data_types"] == ["incremental_book_L2", "trades"]


def test_tardis_errors(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text(BOOK_HEADER + "x,S,1000,1100,true,bid,100.25,5\n")
    with pytest.raises(DataError) as exc:
        read_tardis(p, tick_size=0.5, lot_size=1)
    assert (exc.value.row, exc.value.field) == (2, "price")
    p.write_text(BOOK_HEADER + "x,S,1000,1100,true,buy,100.5,5\n")
    with pytest.raises(DataError, match="bid/ask"):
        read_tardis(p, tick_size=0.5, lot_size=1)
    p.write_text(BOOK_HEADER + "x,S,10.5,1100,true,bid,100.5,5\n")
    with pytest.raises(DataError) as exc:
        read_tardis(p, tick_size=0.5, lot_size=1)
    assert exc.value.field == "timestamp"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="not a Tardis"):
        read_tardis(p, tick_size=0.5, lot_size=1)
    with pytest.raises(DataError, match="no such file"):
        read_tardis(tmp_path / "nope.csv", tick_size=0.5, lot_size=1)


# ------------------------------------------------------------------ Binance historical CSV
@pytest.mark.realdata
def test_binance_hist_fixture(formats):
    res = read_binance_hist(
        formats / "btcusdt-depth-snap.csv", formats / "btcusdt-depth-update.csv"
    )
    ev, rep = res.events, res.report
    ts = 1667346579146 * 1_000_000
    assert len(ev) == 203
    assert rec(ev, 0) == (ts, ts, K.SNAPSHOT_BEGIN, 0, 0, 0, F.SYNTHETIC | F.SNAPSHOT)
    assert rec(ev, 1) == (ts, ts, K.CLEAR, 0, 0, 0, F.SYNTHETIC | F.SNAPSHOT)
    assert rec(ev, 2) == (ts, ts, K.LEVEL_SET, 1, 203770, 1770, F.SNAPSHOT)  # 20377.00 1.770
    assert rec(ev, 3) == (ts, ts, K.LEVEL_SET, 1, 203769, 1, F.SNAPSHOT)
    assert rec(ev, 102)[2] == K.SNAPSHOT_END
    t2 = 1667347199939 * 1_000_000
    assert rec(ev, 103) == (t2, t2, K.LEVEL_SET, -1, 204728, 0, 0)  # 20472.80 0.000
    assert rec(ev, 202) == (t2, t2, K.LEVEL_SET, -1, 208791, 10249, F.LAST)
    # the fixture's update file starts 10 minutes after its snapshot: a real gap, reported
    assert rep["update_id_gaps"] == 1
    assert rep["update_id_gap_examples"] == [
        {
            "file": "btcusdt-depth-update.csv",
            "line": 2,
            "rule": "U <= L <= u",
            "expected": 2098021528332,
            "got": {"U": 2098041693435, "u": 2098041696700},
        }
    ]
    assert res.meta["clocks"] == 1 and np.array_equal(ev["exch_ts"], ev["local_ts"])


def test_binance_hist_bridging(tmp_path):
    snap = tmp_path / "snap.csv"
    snap.write_text(
        HIST_HEADER + "BTCUSDT,1000,100,100,b,snap,100.0,1.000,-1\n"
        "BTCUSDT,1000,100,100,a,snap,100.5,1.000,-1\n"
    )
    upd = tmp_path / "upd.csv.gz"
    rows = [
        "BTCUSDT,1001,90,95,b,set,100.0,2.000,89",  # u < L: dropped
        "BTCUSDT,1002,96,102,b,set,100.0,3.000,95",  # bridges: 96 <= 100 <= 102
        "BTCUSDT,1002,96,102,a,set,100.5,0.000,95",
        "BTCUSDT,1003,103,104,a,set,100.6,1.000,102",
        "BTCUSDT,1004,106,107,a,set,100.7,1.000,105",  # gap: pu 105 != 104
    ]
    upd.write_bytes(gzip.compress((HIST_HEADER + "\n".join(rows) + "\n").encode()))
    res = read_binance_hist(snap, upd)
    rep = res.report
    assert rep["updates_dropped_before_snapshot"] == 1 and rep["updates_applied"] == 3
    assert rep["update_id_gaps"] == 1
    assert rep["update_id_gap_examples"][0] == {
        "file": "upd.csv.gz",
        "line": 6,
        "rule": "pu == previous u",
        "expected": 104,
        "got": 105,
    }
    lv = res.events[(res.events["kind"] == K.LEVEL_SET) & ((res.events["flags"] & F.SNAPSHOT) == 0)]
    assert lv[["side", "price_tick", "qty", "flags"]].tolist() == [
        (1, 1000, 3000, 0),
        (-1, 1005, 0, F.LAST),
        (-1, 1006, 1000, F.LAST),
        (-1, 1007, 1000, F.LAST),
    ]


def test_binance_hist_errors(tmp_path):
    snap = tmp_path / "snap.csv"
    snap.write_text(HIST_HEADER + "BTCUSDT,1000,100,100,b,snap,100.05,1.000,-1\n")
    upd = tmp_path / "upd.csv"
    upd.write_text(HIST_HEADER)
    with pytest.raises(DataError) as exc:
        read_binance_hist(snap, upd)
    assert (exc.value.row, exc.value.field) == (2, "price")
    snap.write_text(HIST_HEADER + "BTCUSDT,1000,100,100,b,set,100.0,1.000,-1\n")
    with pytest.raises(DataError, match="holds a 'set'"):
        read_binance_hist(snap, upd)
    with pytest.raises(DataError, match="no such file"):
        read_binance_hist(tmp_path / "x.csv", upd)


# ------------------------------------------------------------------ BOM and blank lines
BOM = "\ufeff"
BOOK_ROWS = (
    "deribit,BTC-PERPETUAL,1000000,1000100,true,ask,100.5,10\n"
    "deribit,BTC-PERPETUAL,1000000,1000100,true,bid,100.0,20\n"
    "deribit,BTC-PERPETUAL,1000200,1000300,false,bid,100.0,0\n"
)
TRADE_ROWS = "deribit,BTC-PERPETUAL,1000400,1000500,7,buy,100.5,10\n"


def _write(p, text, gz=False):
    data = text.encode("utf-8")
    p.write_bytes(gzip.compress(data) if gz else data)
    return p


@pytest.mark.parametrize("gz", [False, True])
def test_tardis_accepts_a_bom_and_trailing_blank_lines(tmp_path, gz):
    plain = read_tardis(_write(tmp_path / "b.csv", BOOK_HEADER + BOOK_ROWS),
                        _write(tmp_path / "t.csv", TRADE_HEADER + TRADE_ROWS),
                        tick_size=0.5, lot_size=10)
    res = read_tardis(
        _write(tmp_path / "b2.csv", BOM + BOOK_HEADER + BOOK_ROWS + "\n \n", gz),
        _write(tmp_path / "t2.csv", BOM + TRADE_HEADER.replace("\n", "\r\n")
               + TRADE_ROWS.replace("\n", "\r\n") + "\r\n\r\n", gz),
        tick_size=0.5, lot_size=10,
    )
    assert res.events.tolist() == plain.events.tolist()
    assert res.report["book_rows"] == 3 and res.report["trades"] == 1
    assert res.meta["exchange"] == "deribit" and res.meta["symbol"] == "BTC-PERPETUAL"


def test_tardis_blank_line_keeps_row_numbers(tmp_path):
    bad = BOOK_ROWS.replace("false,bid,100.0,0", "false,bid,100.0,x")
    p = _write(tmp_path / "b.csv", BOM + BOOK_HEADER + "\n" + bad)
    with pytest.raises(DataError) as exc:
        read_tardis(p, tick_size=0.5, lot_size=10)
    assert (exc.value.row, exc.value.field) == (5, "amount")


def test_binance_hist_accepts_a_bom_and_trailing_blank_lines(tmp_path):
    snap_rows = ("BTCUSDT,1000,100,100,b,snap,100.0,1.000,-1\n"
                 "BTCUSDT,1000,100,100,a,snap,100.5,1.000,-1\n")
    upd_rows = "BTCUSDT,1002,96,102,b,set,100.0,3.000,95\n"
    plain = read_binance_hist(_write(tmp_path / "s.csv", HIST_HEADER + snap_rows),
                              _write(tmp_path / "u.csv", HIST_HEADER + upd_rows))
    res = read_binance_hist(
        _write(tmp_path / "s2.csv", BOM + HIST_HEADER + snap_rows + "\n\n"),
        _write(tmp_path / "u2.csv.gz", BOM + HIST_HEADER + upd_rows + "  \n", gz=True),
    )
    assert res.events.tolist() == plain.events.tolist()
    assert res.report["updates_applied"] == 1
