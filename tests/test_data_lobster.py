"""LOBSTER reader: exact records on hand-built files, then the real sample files."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from mmsim.data import DataError, read_events, read_lobster, read_meta, write_events
from mmsim.data.lobster import NAME_PATTERN
from mmsim.data.sources import read_raw
from mmsim.data.validate import check_lobster_reconstruction
from mmsim.enums import EventFlag as F
from mmsim.enums import EventKind as K

MIDNIGHT_NS = int(datetime(2012, 6, 21, 4, tzinfo=UTC).timestamp()) * 10**9  # 00:00 EDT
NAME = "TEST_2012-06-21_34200000_57600000_{}_1.csv"


def write(tmp_path: Path, kind: str, rows: list[str]) -> Path:
    p = tmp_path / NAME.format(kind)
    p.write_text("\n".join(rows) + "\n")
    return p


def records(events):
    cols = ("kind", "side", "price_tick", "qty", "order_id", "flags")
    return [tuple(int(e[c]) for c in cols) for e in events]


def test_message_mapping_exact(tmp_path):
    msg = write(
        tmp_path,
        "message",
        [
            "34200.000000001,1,11,100,1000000,1",
            "34200.5,1,12,50,1000100,-1",
            "34201.123456789,2,11,30,1000000,1",
            "34202,3,99,10,999900,1",
            "34203,4,12,50,1000100,-1",
            "34204,5,0,7,1000050,1",
            "34204,5,0,7,1000050,-1",
            "34205,6,0,200,1000000,-1",
            "34206,7,0,0,-1,-1",
            "34207.0887784560046,7,0,0,1,-1",
        ],
    )
    r = read_lobster(msg)
    L = F.LAST
    assert records(r.events) == [
        (K.ADD, 1, 10000, 100, 11, L),
        (K.ADD, -1, 10001, 50, 12, L),
        (K.CANCEL, 1, 10000, 30, 11, L),
        (K.DELETE, 1, 9999, 10, 0, L),  # id never added -> anonymous
        (K.EXECUTE, -1, 10001, 50, 12, L),
        (K.TRADE, 1, 10001, 7, 0, L | F.SUBTICK),  # bid side: rounded up
        (K.TRADE, -1, 10000, 7, 0, L | F.SUBTICK),  # ask side: rounded down
        (K.TRADE, 0, 10000, 200, 0, L | F.CROSS),
        (K.STATUS, 0, 0, 0, 0, L),
        (K.STATUS, 0, 0, 0, 0, L),
    ]
    secs = [34200, 34200, 34201, 34202, 34203, 34204, 34204, 34205, 34206, 34207]
    frac = [1, 500_000_000, 123_456_789, 0, 0, 0, 0, 0, 0, 88_778_456]  # last: rounded
    expected_ts = [MIDNIGHT_NS + s * 10**9 + f for s, f in zip(secs, frac, strict=True)]
    assert r.events["exch_ts"].tolist() == expected_ts
    assert np.array_equal(r.events["local_ts"], r.events["exch_ts"])
    assert r.events["value"].tolist()[-2:] == [-1.0, 1.0]
    assert r.meta["symbol"] == "TEST" and r.meta["date"] == "2012-06-21"
    assert r.meta["levels"] == 1 and r.meta["clocks"] == 1
    assert r.report["unknown_order_refs"] == 1
    assert r.report["subtick_trades"] == 2
    assert r.report["time_beyond_ns"] == 1
    assert r.report["replay_corrections"] is None
    assert r.report["message_types"] == {"1": 2, "2": 1, "3": 1, "4": 1, "5": 2, "6": 1, "7": 2}


def test_date_argument_and_timezone(tmp_path):
    p = tmp_path / "whatever.csv"
    p.write_text("0.25,1,1,1,100,1\n")
    r = read_lobster(p, date="2012-01-03")  # EST: UTC-5
    assert (
        r.events["exch_ts"][0]
        == int(datetime(2012, 1, 3, 5, tzinfo=UTC).timestamp()) * 10**9 + 250_000_000
    )
    r = read_lobster(p, date="2012-01-03", tz="UTC")
    assert (
        r.events["exch_ts"][0]
        == int(datetime(2012, 1, 3, tzinfo=UTC).timestamp()) * 10**9 + 250_000_000
    )
    assert r.meta["symbol"] is None and r.meta["levels"] is None


BOOK_CASE = [
    # message, orderbook row (ask_px, ask_sz, bid_px, bid_sz)
    ("34200.1,1,11,100,1000000,1", "9999999999,0,1000000,300"),
    ("34200.2,1,12,50,1000100,-1", "1000100,50,1000000,300"),
    ("34200.3,1,13,20,999900,1", "1000100,50,1000000,300"),
    ("34200.4,3,11,100,1000000,1", "1000100,50,1000000,150"),
    ("34200.5,4,99,150,1000000,1", "1000100,50,999900,60"),
    ("34200.6,1,14,30,999900,1", "1000100,50,999900,25"),
    ("34200.7,1,15,10,1000200,-1", "1000100,50,999900,25"),
    ("34200.8,2,12,50,1000100,-1", "1000300,5,999900,25"),
]


def test_orderbook_corrections_exact(tmp_path):
    msg = write(tmp_path, "message", [m for m, _ in BOOK_CASE])
    ob = write(tmp_path, "orderbook", [o for _, o in BOOK_CASE])
    r = read_lobster(msg, ob)
    L, S = F.LAST, F.SYNTHETIC
    assert records(r.events) == [
        (K.ADD, 1, 10000, 100, 11, 0),
        (K.ADD, 1, 10000, 200, 0, S | L),  # volume resting before the start
        (K.ADD, -1, 10001, 50, 12, L),
        (K.ADD, 1, 9999, 20, 13, L),  # below the top level: left alone
        (K.DELETE, 1, 10000, 100, 11, 0),
        (K.CANCEL, 1, 10000, 50, 0, S | L),
        (K.EXECUTE, 1, 10000, 150, 0, 0),  # unknown id -> anonymous
        (K.ADD, 1, 9999, 40, 0, S | L),  # level moves into view
        (K.ADD, 1, 9999, 30, 14, 0),
        (K.CANCEL, 1, 9999, 40, 0, S),  # anonymous first
        (K.CANCEL, 1, 9999, 25, 14, S | L),  # then the newest order
        (K.ADD, -1, 10002, 10, 15, L),
        (K.CANCEL, -1, 10001, 50, 12, 0),
        (K.DELETE, -1, 10002, 10, 15, S),  # level absent from the file: removed
        (K.ADD, -1, 10003, 5, 0, S | L),
    ]
    ts = r.events["exch_ts"]
    assert ts[1] == ts[0] and ts[14] == ts[12]
    assert r.report["replay_corrections"] == {
        "anon_add": 3,
        "anon_add_qty": 245,
        "anon_reduce": 2,
        "anon_reduce_qty": 90,
        "order_cancel": 1,
        "order_delete": 1,
        "order_reduce_qty": 35,
        "levels_removed": 1,
        "messages_corrected": 5,
    }
    assert r.report["validation"]["crossed_book_events"] == 0
    check = check_lobster_reconstruction(r.events, ob, 1)
    assert check["rows"] == 8 and check["messages"] == 8 and check["levels"] == 1
    assert check["replay_mismatches"] == 0 and check["first_replay_mismatch_row"] is None
    # the same messages without corrections do not reproduce the book
    bare = read_lobster(msg)
    check = check_lobster_reconstruction(bare.events, ob)
    assert check["replay_mismatches"] == 8 and check["first_replay_mismatch_row"] == 1
    # most of those corrections are the file contradicting the messages (rows 4-8), which
    # the replay follows but the report no longer hides
    oc = r.report["orderbook_check"]
    assert oc["contradictions"] == 5 and oc["first_contradiction_rows"] == [4, 5, 6, 7, 8]
    assert oc["first_contradictions"][0] == {
        "row": 4,
        "field": "bid_sz_1",
        "file_value": 150,
        "price": 1000000,
        "file_size": 150,
        "messages_size": 200,  # 300 - 100 deleted
    }
    assert oc["corrections_by_kind"]["before_open"] == {
        "rows": 1,
        "levels": 1,
        "shares_added": 200,
        "shares_removed": 0,
    }


def test_write_read_roundtrip(tmp_path):
    msg = write(tmp_path, "message", [m for m, _ in BOOK_CASE])
    r = read_lobster(msg)
    out = write_events(tmp_path / "ev.parquet", r, row_group_rows=3)
    assert np.array_equal(read_events(out), r.events)
    meta, report = read_meta(out)
    assert meta == r.meta and report == r.report
    from mmsim.data import iter_event_chunks

    chunks = list(iter_event_chunks(out, chunk_rows=3))
    assert [len(c) for c in chunks] == [3, 3, 2]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp") == []


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write(tmp_path, "message", [m for m, _ in BOOK_CASE]),
        write(tmp_path, "orderbook", [o for _, o in BOOK_CASE]),
    )


@pytest.mark.parametrize("which", ["message", "orderbook"])
def test_byte_order_mark_accepted(tmp_path, which):
    msg, ob = _pair(tmp_path)
    plain = read_lobster(msg, ob)
    p = msg if which == "message" else ob
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    r = read_lobster(msg, ob)
    assert np.array_equal(r.events, plain.events)
    assert r.report == plain.report
    assert r.meta["symbol"] == "TEST" and r.meta["levels"] == 1


@pytest.mark.parametrize("ending", ["\n\n", "\n\n\n", "\n \n", "\r\n\r\n"])
@pytest.mark.parametrize("which", ["message", "orderbook"])
def test_trailing_blank_lines_accepted(tmp_path, which, ending):
    msg, ob = _pair(tmp_path)
    plain = read_lobster(msg, ob)
    p = msg if which == "message" else ob
    rows = p.read_text().splitlines()
    sep = "\r\n" if "\r" in ending else "\n"
    p.write_bytes((sep.join(rows) + ending).encode())
    r = read_lobster(msg, ob)
    assert np.array_equal(r.events, plain.events)
    assert r.report == plain.report
    # a blank line anywhere else is still a bad row, named
    p.write_bytes((sep.join([*rows[:3], "", *rows[3:]]) + ending).encode())
    with pytest.raises(DataError, match="columns") as exc:
        read_lobster(msg, ob)
    assert exc.value.row == 4 and exc.value.path == str(p)


def test_missing_file_says_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    # not LOBSTER-named *and* missing: the missing file is the error, path as given
    with pytest.raises(DataError, match="no such file") as exc:
        read_lobster("sub/my_export.csv")
    assert exc.value.path == "sub/my_export.csv"
    assert (exc.value.row, exc.value.field) == (None, None)
    assert "message file" in str(exc.value)
    msg = write(tmp_path / "sub", "message", [m for m, _ in BOOK_CASE])
    missing_ob = "sub/" + NAME.format("orderbook")
    with pytest.raises(DataError, match="no such file") as exc:
        read_lobster(msg, missing_ob)
    assert exc.value.path == missing_ob and "orderbook file" in str(exc.value)
    msg.write_text("not,a,message\n")  # a missing orderbook is said before parsing messages
    with pytest.raises(DataError, match="orderbook file is missing"):
        read_lobster(msg, missing_ob)
    with pytest.raises(DataError, match="is a directory"):
        read_lobster("sub")


def test_file_name_without_date(tmp_path):
    p = tmp_path / "amzn_export_message_1.csv"
    p.write_text("\n".join(m for m, _ in BOOK_CASE) + "\n")
    with pytest.raises(DataError) as exc:
        read_lobster(p)
    assert exc.value.field == "date" and exc.value.row is None
    text = str(exc.value)
    assert "does not carry the trading date" in text
    assert NAME_PATTERN in text and "rename" in text and "date='YYYY-MM-DD'" in text
    # the experiment / `mmsim ingest` route has no date option: the same error
    with pytest.raises(DataError, match="does not carry the trading date"):
        read_raw("lobster", p)
    assert read_lobster(p, date="2012-06-21").meta["date"] == "2012-06-21"
    with pytest.raises(DataError, match="bad date '21/06/2012' given"):
        read_lobster(p, date="21/06/2012")
    bad = tmp_path / "AMZN_2012-13-45_34200000_57600000_message_1.csv"
    bad.write_text(p.read_text())
    with pytest.raises(DataError, match="bad date '2012-13-45' in the file name") as exc:
        read_lobster(bad)
    assert exc.value.field == "date"


# ---------------------------------------------------------------- real data
AMZN = "lobster/AMZN_2012-06-21_34200000_57600000_{}_1.csv"
AAPL10 = "lobster/aapl_level10_first999/AAPL_2012-06-21_34200000_57600000_{}_10.csv"
AAPL50 = "lobster/AAPL_2012-06-21_34200000_37800000_message_50.csv"


@pytest.mark.realdata
def test_amzn_level1_reconstructs(data_root, tmp_path):
    t0 = time.perf_counter()
    r = read_lobster(data_root / AMZN.format("message"), data_root / AMZN.format("orderbook"))
    elapsed = time.perf_counter() - t0
    assert r.report["n_messages"] == 57_515
    assert int(np.count_nonzero(r.events["flags"] & F.LAST)) == 57_515
    assert len(r.events) == 76_119
    assert r.report["replay_corrections"]["messages_corrected"] == 9_533
    assert r.report["unknown_order_refs"] == 7_467
    assert r.report["subtick_trades"] == 63
    v = r.report["validation"]
    assert v["crossed_book_events"] == 0 and v["unknown_order_refs"] == 0
    assert v["first_exch_ts"] == MIDNIGHT_NS + 34_200_017_459_617
    oc = r.report["orderbook_check"]
    assert oc["rows_checked"] == 57_515 and oc["levels"] == 1
    assert oc["contradictions"] == 0 and oc["first_contradiction_rows"] == []
    assert oc["corrections_by_kind"] == {
        "before_open": {"rows": 1, "levels": 2, "shares_added": 200, "shares_removed": 0},
        "into_view": {
            "rows": 8_167,
            "levels": 10_970,
            "shares_added": 484_999,
            "shares_removed": 829_801,
        },
    }
    check = check_lobster_reconstruction(r.events, data_root / AMZN.format("orderbook"), 1)
    assert check["rows"] == 57_515 and check["replay_mismatches"] == 0
    assert check["contradictions"] == 0
    assert elapsed < 15
    out = write_events(tmp_path / "amzn.parquet", r)
    assert np.array_equal(read_events(out), r.events)
    meta, _ = read_meta(out)
    assert meta["files"][0]["sha256"] == (
        "9506cea0aab42b2815e13d2f2485b39ef6c0aa212d1bb68f344a52f0a24475f5"
    )


@pytest.mark.realdata
def test_aapl_level10_reconstructs(data_root):
    ob = data_root / AAPL10.format("orderbook")
    r = read_lobster(data_root / AAPL10.format("message"), ob)
    assert r.meta["levels"] == 10
    check = check_lobster_reconstruction(r.events, ob)
    assert (check["rows"], check["messages"], check["levels"]) == (999, 999, 10)
    assert check["replay_mismatches"] == 0 and check["first_replay_mismatch_row"] is None
    assert r.report["replay_corrections"]["anon_add"] == 30
    oc = r.report["orderbook_check"]
    assert oc["contradictions"] == 0 and check["contradictions"] == 0
    assert oc["corrections_by_kind"] == {
        "before_open": {"rows": 1, "levels": 19, "shares_added": 4_469, "shares_removed": 0},
        "into_view": {"rows": 14, "levels": 14, "shares_added": 5_321, "shares_removed": 1_265},
    }


@pytest.mark.realdata
def test_aapl_level50_messages_only(data_root):
    t0 = time.perf_counter()
    r = read_lobster(data_root / AAPL50)
    elapsed = time.perf_counter() - t0
    assert len(r.events) == 91_997
    assert r.report["unknown_order_refs"] == 84
    assert r.report["time_beyond_ns"] == 1  # row 39483: 35821.088778456004
    assert r.events["exch_ts"][39482] == MIDNIGHT_NS + 35_821_088_778_456
    assert r.report["replay_corrections"] is None and r.report["orderbook_check"] is None
    assert r.report["validation"]["crossed_book_events"] == 0
    assert np.all(r.events["flags"] & F.LAST)
    assert elapsed < 10
