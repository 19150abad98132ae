"""A generic order-level (L3) CSV reader (issue 11, a researcher's first hour): the columns and
action values mapped in the YAML, exact ticks and lots, the warm-up of a file that opens on an
empty book, errors naming the file, row and field, and the LOBSTER sample read both ways."""

from __future__ import annotations

import copy
import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

import mmsim
from mmsim.book.reference import ReferenceL3Book
from mmsim.cli import main
from mmsim.config import ConfigError, config_from_dict, load_config
from mmsim.data.errors import DataError
from mmsim.data.l3_csv import read_l3_csv
from mmsim.data.registry import get_reader
from mmsim.data.store import read_events, read_meta
from mmsim.enums import EventFlag as F
from mmsim.enums import EventKind as K

REPO = Path(__file__).parents[1]
EXAMPLE = REPO / "examples" / "l3_csv.yaml"
AMZN = "lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv"
AAPL = "lobster/AAPL_2012-06-21_34200000_37800000_message_50.csv"

MAP = {
    "columns": {"ts": "timestamp_ns", "order_id": "id", "side": "side", "price": "px",
                "qty": "size", "action": "type"},
    "time_unit": "ns",
    "actions": {"add": "A", "delete": "D", "change": "M", "execute": "E", "trade": "T",
                "cancel": "C", "clear": "R", "ignore": ["S", "X"]},
    "sides": {"bid": "B", "ask": "S"},
}
HEADER = "timestamp_ns,id,side,px,size,type\n"
# one row of each action (rows 2.. of the file; the header is row 1)
EACH = HEADER + (
    "1000,1,B,100.00,5,A\n"      # 2  add bid 5 @ 100.00
    "2000,2,S,100.05,3,A\n"      # 3  add ask 3 @ 100.05: both sides have depth from here
    "2500,3,B,99.99,4,A\n"       # 4  add bid 4 @ 99.99
    "3000,1,B,100.00,2,M\n"      # 5  change: same price, smaller (keeps its place)
    "3500,3,,100.01,4,M\n"       # 6  change: new price, side kept from the order
    "4000,2,,,1,E\n"             # 7  execute: side and price from the order
    "4500,,,,,S\n"               # 8  ignored (a status row)
    "5000,,B,100.05,2,T\n"       # 9  trade, buyer the aggressor: resting side ask
    "6000,2,S,100.05,1,C\n"      # 10 cancel 1 of order 2
    "6500,77,S,100.06,9,E\n"     # 11 execute of an order never added: anonymous volume
    "7000,1,,,,D\n"              # 12 delete order 1
    "8000,,S,,,R\n"              # 13 clear the asks
)


def _csv(tmp_path, text, name="orders.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _read(path, l3_csv=None, **kw):
    kw.setdefault("tick_size", 0.01)
    kw.setdefault("lot_size", 1)
    return read_l3_csv(path, l3_csv=MAP if l3_csv is None else l3_csv, **kw)


def _map(**changes):
    m = copy.deepcopy(MAP)
    for k, v in changes.items():
        if isinstance(v, dict):
            m[k] = {**m.get(k, {}), **v}
        else:
            m[k] = v
    return m


# --- the mapping, field by field ----------------------------------------------------------------


def test_each_action_becomes_its_event_field_by_field(tmp_path):
    res = _read(_csv(tmp_path, EACH))
    ev = res.events
    want = [  # exch_ts, kind, side, price_tick, qty, order_id
        (1000, K.ADD, 1, 10000, 5, 1),
        (2000, K.ADD, -1, 10005, 3, 2),
        (2500, K.ADD, 1, 9999, 4, 3),
        (3000, K.MODIFY, 1, 10000, 2, 1),
        (3500, K.MODIFY, 1, 10001, 4, 3),
        (4000, K.EXECUTE, -1, 10005, 1, 2),
        (5000, K.TRADE, -1, 10005, 2, 0),
        (6000, K.CANCEL, -1, 10005, 1, 2),
        (6500, K.EXECUTE, -1, 10006, 9, 0),
        (7000, K.DELETE, 1, 10000, 0, 1),
        (8000, K.CLEAR, -1, 0, 0, 0),
    ]
    got = [(int(e["exch_ts"]), int(e["kind"]), int(e["side"]), int(e["price_tick"]),
            int(e["qty"]), int(e["order_id"])) for e in ev]
    assert got == want
    assert (ev["local_ts"] == ev["exch_ts"]).all() and (ev["value"] == 0).all()
    assert (ev["flags"] == F.LAST).all()  # one row, one exchange event
    r = res.report
    assert r["n_rows"] == 12 and r["actions"] == {
        "add": 3, "change": 2, "cancel": 1, "delete": 1, "execute": 2, "trade": 1,
        "clear": 1, "ignore": 1}
    assert r["unknown_order_refs"] == 1  # row 11
    # the execute (row 7) and the delete (row 12) had no side and price: the order's were used
    assert r["taken_from_order"] == {"side": 2, "price": 2}
    assert r["snapshot"] is None and r["validation"]["crossed_book_events"] == 0
    assert res.meta["source"] == "l3_csv" and res.meta["clocks"] == 1
    assert res.meta["tick_size"] == 0.01 and res.meta["lot_size"] == 1
    assert res.meta["date"] == "1970-01-01" and res.meta["files"][0]["name"] == "orders.csv"
    # the book the records build: only bid 3 is left (4 @ 100.01; the asks were cleared)
    book = ReferenceL3Book()
    for e in ev:
        book.apply(e)
    assert book.orders == {3: (1, 10001, 4)} and book.best_ask() is None
    assert get_reader("l3_csv").book == "L3" and get_reader("l3_csv").needs_grid


def test_a_change_keeps_priority_only_when_it_shrinks_at_the_same_price(tmp_path):
    """change → MODIFY, which the book (the engine's ``l3_modify_nb`` and its reference,
    MODELS.md §6) re-queues on a price change or a size increase and leaves in place on a
    decrease at the same price."""
    res = _read(_csv(tmp_path, HEADER + "1,1,B,10.00,5,A\n2,2,B,10.00,5,A\n3,1,B,10.00,4,M\n"
                                        "4,1,B,10.00,6,M\n5,2,,10.01,5,M\n"))
    ev = res.events
    assert [int(k) for k in ev["kind"]] == [K.ADD, K.ADD, K.MODIFY, K.MODIFY, K.MODIFY]
    book = ReferenceL3Book()
    queues = []
    for e in ev:
        book.apply(e)
        queues.append((book.level_orders(1, 1000), book.level_orders(1, 1001)))
    assert queues[2:] == [([1, 2], []), ([2, 1], []), ([1], [2])]


def test_times_in_every_unit_exactly_and_a_second_clock(tmp_path):
    text = ("t,recv,id,side,px,size,type\n"
            "1700000000.123456789,1700000000.5,1,B,1,1,A\n"
            "1700000001,1700000001.0000000004,2,S,2,1,A\n"
            "1700000001.0000000016,1700000002,3,S,2,1,A\n")
    m = _map(columns={"ts": "t", "local_ts": "recv", "order_id": "id", "side": "side",
                      "price": "px", "qty": "size", "action": "type"}, time_unit="s")
    res = _read(_csv(tmp_path, text), m)
    assert res.events["exch_ts"].tolist() == [1_700_000_000_123_456_789, 1_700_000_001 * 10**9,
                                              1_700_000_001 * 10**9 + 2]
    assert res.events["local_ts"].tolist() == [1_700_000_000_500_000_000,
                                               1_700_000_001 * 10**9, 1_700_000_002 * 10**9]
    assert res.report["time_beyond_ns"] == 2 and res.meta["clocks"] == 2
    t = _csv(tmp_path, "ts,order_id,side,price,qty,action\n17,1,B,1,1,A\n18.5,2,S,2,1,A\n")
    for unit, want in (("ms", [17_000_000, 18_500_000]), ("us", [17_000, 18_500]),
                       ("ns", [17, 19])):  # ns: a fraction of a ns is rounded half up
        res = _read(t, {"actions": {"add": "A"}, "time_unit": unit})
        assert res.events["exch_ts"].tolist() == want
        assert res.report["time_beyond_ns"] == (unit == "ns")
    iso = _csv(tmp_path, "ts,order_id,side,price,qty,action\n"
                         "2024-03-01T14:30:00.25Z,1,B,1,1,A\n"
                         "2024-03-01T15:30:00.5+01:00,2,S,2,1,A\n")
    ev = _read(iso, {"actions": {"add": "A"}, "time_unit": "iso"}).events
    t0 = int(dt.datetime(2024, 3, 1, 14, 30, tzinfo=dt.UTC).timestamp()) * 10**9
    assert ev["exch_ts"].tolist() == [t0 + 250_000_000, t0 + 500_000_000]


def test_headerless_gzip_semicolon_files_and_default_columns(tmp_path):
    raw = "1;B;10.5;2;add;1000\n2;S;10.6;1;add;2000\n"
    p = tmp_path / "orders.csv.gz"
    p.write_bytes(gzip.compress(raw.encode()))
    m = {"columns": {"order_id": 1, "side": 2, "price": 3, "qty": 4, "action": 5, "ts": 6},
         "header": False, "separator": ";", "actions": {"add": "ADD"}}
    ev = _read(p, m, tick_size=0.1, lot_size=0.5).events
    assert ev["price_tick"].tolist() == [105, 106] and ev["qty"].tolist() == [4, 2]
    # a header with the fields' own names needs no columns; a BOM and trailing blanks are fine
    q = tmp_path / "plain.csv"
    q.write_bytes(b"\xef\xbb\xbfts,order_id,side,price,qty,action\n1,1,bid,1,1,a\n\n \n")
    assert len(_read(q, {"actions": {"add": "A"}}).events) == 1


def test_trade_sides_and_subtick_trades(tmp_path):
    text = HEADER + ("1,1,B,10.00,5,A\n2,2,S,10.02,5,A\n3,,B,10.015,1,T\n4,,S,10.005,1,T\n"
                     "5,,,10.015,1,T\n")
    with pytest.raises(DataError, match=r"orders.csv: row 4, field 'px': '10.015' is not on "
                                        r"the tick grid 0.01 .*subtick_trades: round"):
        _read(_csv(tmp_path, text))
    ev = _read(_csv(tmp_path, text), _map(subtick_trades="round")).events[2:]
    # aggressor buy: the ask rests, rounded down; aggressor sell: the bid, rounded up
    assert ev["side"].tolist() == [-1, 1, 0] and ev["price_tick"].tolist() == [1001, 1001, 1002]
    assert (ev["flags"] & F.SUBTICK).all()
    resting = _read(_csv(tmp_path, text), _map(subtick_trades="round", trade_side="resting"))
    assert resting.events["side"][2:].tolist() == [1, -1, 0]
    assert resting.report["subtick_trades"] == 3


def test_a_symbol_column_keeps_one_instrument(tmp_path):
    text = ("sym,ts,order_id,side,price,qty,action\nAAA,1,1,B,1,1,A\nBBB,2,2,B,5,1,A\n"
            "AAA,3,3,S,2,1,A\n")
    m = {"columns": {"symbol": "sym"}, "actions": {"add": "A"}}
    res = _read(_csv(tmp_path, text), m, symbol="AAA")
    assert res.events["order_id"].tolist() == [1, 3] and res.meta["symbol"] == "AAA"
    with pytest.raises(DataError, match=r"field 'sym': the file holds 2 symbols \(AAA, BBB\): "
                                        r"set instrument.symbol"):
        _read(_csv(tmp_path, text), m)
    with pytest.raises(DataError, match="no row of symbol 'CCC'"):
        _read(_csv(tmp_path, text), m, symbol="CCC")


# --- snapshot and warm-up -----------------------------------------------------------------------


def test_without_a_snapshot_the_report_states_the_warm_up(tmp_path):
    text = HEADER + ("1000000000,1,B,10.00,5,A\n1500000000,2,B,9.99,5,A\n"
                     "1700000000,2,,,,D\n3500000000,3,S,10.02,5,A\n4000000000,4,S,10.03,1,A\n")
    res = _read(_csv(tmp_path, text))
    w = res.report["warmup"]
    assert w == {"book_starts": "empty", "seconds": 2.5, "events": 3, "row": 5,
                 "exch_ts": 3_500_000_000}
    assert res.meta["note"] == (
        "l3_csv: no opening snapshot: the book started empty and had both a bid and an ask "
        "after 2.500 s (3 events before, file row 5); quotes before then faced an empty or "
        "one-sided book")
    one_sided = _read(_csv(tmp_path, HEADER + "1,1,B,10.00,5,A\n2,2,B,9.99,5,A\n"))
    assert one_sided.report["warmup"]["seconds"] is None
    assert "never had both a bid and an ask" in one_sided.meta["note"]


def test_an_opening_snapshot_is_bracketed(tmp_path):
    # no flag column: the leading adds at the first timestamp are the snapshot
    text = HEADER + ("100,1,B,10.00,5,A\n100,2,S,10.02,5,A\n100,3,S,10.03,1,A\n"
                     "200,4,B,10.01,1,A\n")
    res = _read(_csv(tmp_path, text), _map(snapshot=True))
    ev = res.events
    assert [int(k) for k in ev["kind"]] == [K.SNAPSHOT_BEGIN, K.CLEAR, K.ADD, K.ADD, K.ADD,
                                            K.SNAPSHOT_END, K.ADD]
    mark = F.SYNTHETIC | F.SNAPSHOT
    assert ev["flags"].tolist() == [mark, mark, F.SNAPSHOT, F.SNAPSHOT, F.SNAPSHOT,
                                    mark | F.LAST, F.LAST]
    assert ev["exch_ts"].tolist() == [100] * 6 + [200]
    assert res.report["snapshot"] == {"rows": 3, "synthetic_clear": True}
    assert res.report["warmup"] == {"book_starts": "snapshot", "seconds": 0.0, "events": 5,
                                    "row": 4, "exch_ts": 100}
    assert "note" not in res.meta
    # a flag column marks the snapshot rows; a leading clear of the whole book is kept as is
    flagged = ("snap,timestamp_ns,id,side,px,size,type\n1,100,,,,,R\n1,100,1,B,10.00,5,A\n"
               "1,101,2,S,10.02,5,A\n0,200,3,B,10.01,1,A\n")
    m = _map(snapshot=True, columns={"snapshot": "snap"})
    res = _read(_csv(tmp_path, flagged), m)
    assert [int(k) for k in res.events["kind"]] == [K.SNAPSHOT_BEGIN, K.CLEAR, K.ADD, K.ADD,
                                                    K.SNAPSHOT_END, K.ADD]
    assert res.report["snapshot"] == {"rows": 3, "synthetic_clear": False}
    assert int(res.events["exch_ts"][4]) == 101
    with pytest.raises(DataError, match=r"row 2, field 'snap': snapshot: true, but the file "
                                        r"does not open with a snapshot"):
        _read(_csv(tmp_path, flagged.replace("\n1,100,,", "\n0,100,,")), m)
    with pytest.raises(DataError, match=r"row 5, field 'snap': a snapshot row after the "
                                        r"opening snapshot \(it ended at row 3\)"):
        _read(_csv(tmp_path, flagged.replace("\n1,101,", "\n0,101,").replace("\n0,200",
                                                                              "\n1,200")), m)


# --- errors name the file, the row and the field ------------------------------------------------


@pytest.mark.parametrize("rows, row, field, message", [
    ("1,1,B,10.00,5,A\n2,2,B,10.00,5,Q\n", 3, "type",
     "unknown action 'Q' (data.l3_csv.actions knows add: 'A'; change: 'M'; cancel: 'C'; "
     "delete: 'D'; execute: 'E'; trade: 'T'; clear: 'R'; ignore: 'S', 'X')"),
    ("1,1,B,10.00,5,A\n2,2,B,10.001,5,A\n", 3, "px",
     "'10.001' is not on the tick grid 0.01 (instrument.tick_size)"),
    ("1,1,B,10.00,5,A\n2,2,B,10.00,2.5,A\n", 3, "size",
     "'2.5' is not on the lot grid 1 (instrument.lot_size)"),
    ("1,1,B,10.00,5,A\n3,2,B,10.00,5,A\n2,3,B,10.00,5,A\n", 4, "timestamp_ns",
     "time goes backwards: 2 after 3 (the file must be in time order)"),
    ("1,1,B,10.00,5,A\n2,2,Z,10.00,5,A\n", 3, "side",
     "unknown side 'Z' (data.l3_csv.sides knows bid: 'B'; ask: 'S'; none: 'N')"),
    ("1,1,B,10.00,5,A\n2,9,B,,1,C\n", 3, "px",
     "order 9 was not placed before this row: the cancel must give the price"),
    ("1,x1,B,10.00,5,A\n", 2, "id", "'x1' is not an integer order id"),
    ("1,1,,10.00,5,A\n", 2, "side", "an add needs a side (bid or ask)"),
    ("1,1,B,10.00,0,A\n", 2, "size", "quantity 0 <= 0 (an add needs a positive one)"),
    ("1,1,B,10.00,5,A\n2,1,B,abc,5,M\n", 3, "px", "'abc' is not a non-negative decimal price"),
    ("1,1,B,10.00,5,A\n2,2,,10.00,5,M\n", 3, "side",
     "order 2 was not placed before this row: the change must give the side (bid or ask)"),
    ("1,1,B,10.00,5,A\n2,1,,,,M\n", 3, "size", "a change needs a quantity"),
    ("1.5e3,1,B,10.00,5,A\n", 2, "timestamp_ns",
     "'1.5e3' is not a time in ns (a non-negative number, no exponent)"),
    ("1,1,B,10.00,5,A\n,2,B,10.00,5,A\n", 3, "timestamp_ns", "empty time"),
    ("1,1,B,10.00,5,A\n2,2,B,10.00,5,A,extra\n", 3, None, "cannot be read as CSV"),
])
def test_bad_rows_name_the_file_row_and_field(tmp_path, rows, row, field, message):
    p = _csv(tmp_path, HEADER + rows)
    with pytest.raises(DataError) as e:
        _read(p)
    err = e.value
    assert (err.path, err.row, err.field) == (str(p), row, field)
    assert err.reason.startswith(message), err.reason
    where = f"row {row}, field '{field}'" if field else f"row {row}"
    assert str(err).startswith(f"{p}: {where}: ")


def test_the_first_bad_row_is_reported_whatever_the_column(tmp_path):
    # row 4 has a bad price, row 3 a bad time: row 3 is named
    p = _csv(tmp_path, HEADER + "1,1,B,10.00,5,A\nx,2,B,10.00,5,A\n3,3,B,1.001,5,A\n")
    with pytest.raises(DataError, match=r"row 3, field 'timestamp_ns'"):
        _read(p)


def test_a_missing_column_names_the_mapping_field(tmp_path):
    p = _csv(tmp_path, "timestamp_ns,id,side,price,size,type\n1,1,B,10.00,5,A\n")
    with pytest.raises(DataError) as e:
        _read(p)
    assert (e.value.row, e.value.field) == (1, "columns.price")
    assert str(e.value) == (f"{p}: row 1, field 'columns.price': no column 'px' "
                            "(data.l3_csv.columns.price); the header has: timestamp_ns, id, "
                            "side, price, size, type")
    m = {"columns": {"ts": 7, "order_id": 2, "side": 3, "price": 4, "qty": 5, "action": 6},
         "header": False, "actions": {"add": "A"}}
    with pytest.raises(DataError, match=r"field 'columns.ts': column 7 .* the file has 6 "
                                        "columns"):
        _read(_csv(tmp_path, "1,1,B,10.00,5,A\n"), m)
    with pytest.raises(DataError, match=r"orders.csv.missing: no such file"):
        _read(tmp_path / "orders.csv.missing")


def test_map_errors_name_the_field(tmp_path):
    exp = yaml.safe_load(EXAMPLE.read_text())
    exp["data"]["l3_csv"]["columns"]["qty"] = 0
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(exp))
    with pytest.raises(ConfigError, match=r"exp.yaml: field 'data.l3_csv.columns.qty': must be "
                                          r"a column name or a 1-based column number, got 0"):
        load_config(p)
    cases = [
        ({"l3_csv": None}, "field 'data.l3_csv': required for data.kind 'l3_csv'"),
        ({"kind": "lobster"}, "field 'data.l3_csv': not read by data.kind 'lobster'"),
        ({"l3_csv": {"actions": {"add": "A", "cancel": "a"}}},
         "field 'data.l3_csv.actions.cancel': value 'a' is already mapped to add"),
        ({"l3_csv": {"actions": {"cancel": "C"}}}, "field 'data.l3_csv.actions.add': required"),
        ({"l3_csv": {"actions": {"add": "A"}, "time_unit": "h"}},
         "field 'data.l3_csv.time_unit': must be 'ns', 'us', 'ms', 's' or 'iso', got 'h'"),
    ]
    for change, msg in cases:
        d = yaml.safe_load(EXAMPLE.read_text())
        d["data"].update(change)
        if d["data"]["l3_csv"] is None:
            del d["data"]["l3_csv"]
        with pytest.raises(ConfigError) as e:
            config_from_dict(d)
        assert msg in str(e.value)
    # a mapping given to the reader directly names the field below l3_csv
    with pytest.raises(ConfigError, match=r"field 'l3_csv.sides.bid': needs at least one"):
        _read(_csv(tmp_path, HEADER), _map(sides={"bid": []}))
    with pytest.raises(ValueError, match="l3_csv: the file's column, action and side map is "
                                         "required"):
        read_l3_csv(_csv(tmp_path, HEADER), tick_size=0.01, lot_size=1)
    # an experiment without l3_csv keeps its digest (the section is left out when unset)
    synthetic = config_from_dict({"data": {"kind": "synthetic"},
                                  "policy": {"name": "fixed_spread", "spread_bps": 5}})
    assert "l3_csv" not in synthetic.as_dict()["data"]


# --- mmsim ingest and a backtest ----------------------------------------------------------------


def test_mmsim_ingest_takes_the_map_as_a_yaml_file(tmp_path, capsys):
    csv = _csv(tmp_path, EACH)
    mp = tmp_path / "map.yaml"
    mp.write_text(yaml.safe_dump({"l3_csv": MAP}))
    out = tmp_path / "orders.parquet"
    assert main(["ingest", "l3-csv", str(csv), "--l3-csv", str(mp), "--tick-size", "0.01",
                 "--lot-size", "1", "--out", str(out)]) == 0
    assert "wrote 11 events" in capsys.readouterr().out
    assert (read_events(out) == _read(csv).events).all()
    meta, report = read_meta(out)
    assert meta["source"] == "l3_csv" and report["warmup"]["row"] == 3
    # the experiment YAML itself works as the map; no map is a clear error
    assert main(["ingest", "l3-csv", str(REPO / "examples" / "l3_orders.csv"), "--l3-csv",
                 str(EXAMPLE), "--tick-size", "0.01", "--lot-size", "1", "--out",
                 str(out)]) == 0
    assert main(["ingest", "l3-csv", str(csv), "--tick-size", "0.01", "--lot-size", "1",
                 "--out", str(tmp_path / "none.parquet")]) != 0
    assert "--l3-csv MAP.yaml" in capsys.readouterr().err


def test_a_backtest_runs_from_the_example_yaml(tmp_path):
    lines: list[str] = []
    run = mmsim.backtest(EXAMPLE, data_root=REPO / "examples", out=tmp_path / "run",
                         cache_dir=tmp_path / "cache", log=lines.append)
    assert run.manifest["complete"] and run.manifest["data_kind"] == "l3_csv"
    assert any(ln.startswith("note: l3_csv: no opening snapshot") and "0.120 s" in ln
               for ln in lines)
    assert any(ln.startswith("data: l3_csv  XYZ  44 events") for ln in lines)
    f = run.fills
    assert len(f) >= 1
    np.testing.assert_allclose((f["side"] * f["qty"]).cumsum().to_numpy(),
                               f["position"].to_numpy())
    # a value the map does not know stops the run before any kernel, naming the row
    exp = yaml.safe_load(EXAMPLE.read_text())
    del exp["data"]["l3_csv"]["actions"]["execute"]
    with pytest.raises(DataError, match=r"l3_orders.csv: row 8, field 'action': unknown action "
                                        r"'fill'"):
        mmsim.backtest(exp, data_root=REPO / "examples", out=tmp_path / "run2",
                       cache_dir=tmp_path / "cache")


# --- the LOBSTER sample, read both ways ---------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("sample, n_rows", [(AMZN, 20_000), (AAPL, None)])
def test_the_lobster_samples_as_a_generic_csv_give_the_same_events(data_root, tmp_path, sample,
                                                                   n_rows):
    """The first 20,000 AMZN messages (and the whole AAPL level-50 hour, whose times carry
    float-print noise beyond the ns), written out as a generic CSV (UNIX seconds with the
    vendor's decimals, dollar prices, a header), read with a column and action map: every
    field of every record equals :func:`read_lobster`'s (without the orderbook file, whose
    synthetic corrections no generic CSV can carry). The hidden executions (type 5, with
    sub-penny midpoint prices) need ``trade_side: resting`` (LOBSTER's direction is the
    resting side) and ``subtick_trades: round`` (LOBSTER's rounding); orders resting before
    09:30 become anonymous volume the same way. Types 6 (cross) and 7 (halt) do not occur in
    these rows."""
    from mmsim.data.lobster import _midnight_utc_ns, read_lobster

    lines = (data_root / sample).read_text().splitlines()[:n_rows]
    msg = tmp_path / Path(sample).name
    msg.write_text("\n".join(lines) + "\n")
    raw = pl.read_csv(msg, has_header=False, infer_schema=False,
                      new_columns=["time", "type", "order_id", "size", "price", "direction"])
    assert set(raw["type"].unique().to_list()) == {"1", "2", "3", "4", "5"}
    midnight_s = _midnight_utc_ns(dt.date(2012, 6, 21), "America/New_York") // 10**9
    secs = raw["time"].str.extract(r"^(\d+)", 1).cast(pl.Int64) + midnight_s
    price = raw["price"].cast(pl.Int64)
    generic = pl.DataFrame({
        "unix_s": secs.cast(pl.Utf8) + raw["time"].str.extract(r"(\.\d+)$", 1).fill_null(""),
        "msg_type": raw["type"], "oid": raw["order_id"], "shares": raw["size"],
        "usd": (price // 10_000).cast(pl.Utf8) + "."
               + (price % 10_000).cast(pl.Utf8).str.zfill(4),
        "dir": raw["direction"]})
    csv = tmp_path / "amzn_orders.csv"
    generic.write_csv(csv)
    m = {"columns": {"ts": "unix_s", "order_id": "oid", "side": "dir", "price": "usd",
                     "qty": "shares", "action": "msg_type"},
         "time_unit": "s", "actions": {"add": 1, "cancel": 2, "delete": 3, "execute": 4,
                                       "trade": 5},
         "sides": {"bid": 1, "ask": -1}, "trade_side": "resting", "subtick_trades": "round"}
    ours = read_l3_csv(csv, l3_csv=m, tick_size=0.01, lot_size=1)
    theirs = read_lobster(msg)
    assert len(ours.events) == len(theirs.events) == len(lines)
    for name in ours.events.dtype.names:
        np.testing.assert_array_equal(ours.events[name], theirs.events[name], err_msg=name)
    for key in ("unknown_order_refs", "subtick_trades", "time_beyond_ns"):
        assert ours.report[key] == theirs.report[key], key
    assert ours.report["unknown_order_refs"] > 0
    assert ours.report["taken_from_order"] == {"side": 0, "price": 0}  # LOBSTER agrees
    w = ours.report["warmup"]
    assert w["book_starts"] == "empty" and w["events"] > 0
    if sample == AMZN:
        assert ours.report["subtick_trades"] == 28
        assert w["events"] == 64 and 0.8 < w["seconds"] < 0.9
