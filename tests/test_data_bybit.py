"""Bybit order-book dumps (ob500) and public trades CSV (issue 11, readers users ask for)."""

from __future__ import annotations

import json
import zipfile
from decimal import Decimal

import pytest

from mmsim.book.reference_l2 import ReferenceL2Book
from mmsim.data.bybit import read_bybit
from mmsim.data.errors import DataError
from mmsim.data.registry import detect_kind, get_reader
from mmsim.enums import EventFlag as F
from mmsim.enums import EventKind as K

SAMPLE = "bybit_2024-12-01_XRPUSDT_ob500_first50.data"
TICK, LOT = Decimal("0.0001"), Decimal("1")
MS = 1_000_000


def _naive_book(lines):
    """The book after every message, replayed from the JSON by hand (ticks, lots)."""
    book = {1: {}, -1: {}}
    for ln in lines:
        m = json.loads(ln)
        if m["type"] == "snapshot":
            book = {1: {}, -1: {}}
        for key, side in (("b", 1), ("a", -1)):
            for p, q in m["data"][key]:
                t, n = int(Decimal(p) / TICK), int(Decimal(q) / LOT)
                if n == 0:
                    book[side].pop(t, None)
                else:
                    book[side][t] = n
    return book


@pytest.mark.realdata
def test_the_ob500_sample_replays_to_the_book_bybit_describes(data_root):
    path = data_root / "formats" / SAMPLE
    res = read_bybit(path, tick_size=0.0001, lot_size=1)
    ev = res.events
    assert res.meta["symbol"] == "XRPUSDT" and res.meta["topic"] == "orderbook.500.XRPUSDT"
    assert res.report["snapshots"] == 1 and res.report["book_messages"] == 49
    assert res.report["u_gaps"] == 0 and res.report["crossed_states"] == 0
    first = json.loads(path.read_text().splitlines()[0])
    # the snapshot: BEGIN, CLEAR, 500 + 500 levels, END; exchange time cts, local time ts
    assert int(ev[0]["kind"]) == K.SNAPSHOT_BEGIN and int(ev[1]["kind"]) == K.CLEAR
    assert int(ev[0]["exch_ts"]) == first["cts"] * MS and int(ev[0]["local_ts"]) == first["ts"] * MS
    snap = ev[2:1002]
    assert (snap["kind"] == K.LEVEL_SET).all() and (snap["flags"] & F.SNAPSHOT).all()
    assert int(ev[1002]["kind"]) == K.SNAPSHOT_END and int(ev[1002]["flags"]) & F.LAST
    # every message ends with a LAST record; the replayed book equals the hand replay
    ref = ReferenceL2Book()
    for e in ev:
        ref.apply(e)
    want = _naive_book(path.read_text().splitlines())
    assert ref.bids == want[1] and ref.asks == want[-1]
    assert max(ref.bids) < min(ref.asks)
    assert get_reader("bybit").calendar == "24/7"
    assert detect_kind(f"bybit/{SAMPLE[6:]}") == "bybit"


def _dump(tmp_path, msgs, name="x_ob50.data"):
    p = tmp_path / name
    p.write_text("\n".join(json.dumps(m) for m in msgs) + "\n")
    return p


def _msg(kind, ts, u, b=(), a=()):
    return {"topic": "orderbook.50.XRPUSDT", "type": kind, "ts": ts + 3, "cts": ts,
            "data": {"s": "XRPUSDT", "b": [list(x) for x in b], "a": [list(x) for x in a],
                     "u": u, "seq": 100 + u}}


def test_deltas_trades_gaps_and_zips(tmp_path):
    msgs = [_msg("snapshot", 1000, 7, b=[("1.0000", "5"), ("0.9999", "2")], a=[("1.0002", "4")]),
            _msg("delta", 1100, 8, b=[("1.0000", "0"), ("1.0001", "3")]),
            _msg("delta", 1200, 9, a=[("1.0002", "1")])]
    ob = _dump(tmp_path, msgs)
    deriv = tmp_path / "XRPUSDT2024-12-01.csv"
    deriv.write_text("timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,"
                     "homeNotional,foreignNotional\n"
                     "1.2,XRPUSDT,Buy,3,1.0002,PlusTick,a,0,3,3\n"
                     "1.1005,XRPUSDT,Sell,2,1.0000,MinusTick,b,0,2,2\n")
    res = read_bybit(ob, deriv, tick_size=0.0001, lot_size=1)
    ev = res.events
    kinds = [int(k) for k in ev["kind"]]
    assert kinds.count(K.TRADE) == 2 and res.report["trades_layout"] == "derivatives"
    t = ev[ev["kind"] == K.TRADE]
    # seconds with a decimal fraction, exactly; the resting side (Sell aggressor: bids)
    assert int(t[0]["exch_ts"]) == 1_100_500_000 and int(t[0]["side"]) == 1
    assert int(t[1]["exch_ts"]) == 1_200_000_000 and int(t[1]["side"]) == -1
    # at equal exchange time the trade comes before the book change it explains
    i = [j for j in range(len(ev)) if int(ev[j]["exch_ts"]) == 1_200_000_000]
    assert int(ev[i[0]]["kind"]) == K.TRADE and int(ev[i[1]]["kind"]) == K.LEVEL_SET
    ref = ReferenceL2Book()
    for e in ev:
        ref.apply(e)
    assert ref.bids == {10_001: 3, 9_999: 2} and ref.asks == {10_002: 1}
    spot = tmp_path / "XRPUSDT_2024-12-01.csv"
    spot.write_text("id,timestamp,price,volume,side,rpi\n1,1150,1.0001,4,buy,0\n")
    s = read_bybit(None, spot, tick_size=0.0001, lot_size=1)
    assert s.report["trades_layout"] == "spot" and int(s.events[0]["exch_ts"]) == 1150 * MS
    assert int(s.events[0]["side"]) == -1 and int(s.events[0]["qty"]) == 4
    # a zip of one member reads like the file
    z = tmp_path / "x_ob50.data.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(ob, "x_ob50.data")
    assert (read_bybit(z, tick_size=0.0001, lot_size=1).events == read_bybit(
        ob, tick_size=0.0001, lot_size=1).events).all()
    # an update-id gap names the line and the field; "apply" counts it
    gap = _dump(tmp_path, [msgs[0], msgs[2]], "gap_ob50.data")
    with pytest.raises(DataError, match=r"row 2, field 'u': update id 9 after 7: 1 message"):
        read_bybit(gap, tick_size=0.0001, lot_size=1)
    assert read_bybit(gap, tick_size=0.0001, lot_size=1, gap_policy="apply").report[
        "u_gaps"] == 1


def test_bad_input_names_the_file_row_and_field(tmp_path):
    ok = _msg("snapshot", 1000, 1, b=[("1.0000", "5")])
    bad_px = _dump(tmp_path, [ok, _msg("delta", 1100, 2, b=[("1.00005", "1")])], "a.data")
    with pytest.raises(DataError, match=r"a.data: row 2, field 'b.price'"):
        read_bybit(bad_px, tick_size=0.0001, lot_size=1)
    delta_first = _dump(tmp_path, [_msg("delta", 1100, 2)], "b.data")
    with pytest.raises(DataError, match="row 1, field 'type': a delta before the first"):
        read_bybit(delta_first, tick_size=0.0001, lot_size=1)
    junk = tmp_path / "c.data"
    junk.write_text(json.dumps(ok) + "\n{not json\n")
    with pytest.raises(DataError, match="c.data: row 2: not JSON"):
        read_bybit(junk, tick_size=0.0001, lot_size=1)
    trades = tmp_path / "t.csv"
    trades.write_text("id,timestamp,price,volume,side\n1,1150,1.0001,4,hold\n")
    with pytest.raises(DataError, match="t.csv: row 2, field 'side'"):
        read_bybit(None, trades, tick_size=0.0001, lot_size=1)
    with pytest.raises(ValueError, match="gap_policy"):
        read_bybit(bad_px, tick_size=0.0001, lot_size=1, gap_policy="skip")
