"""Bad input: every reader raises DataError naming the file, the 1-based row and the field."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest

from mmsim.data import (
    DataError,
    IngestResult,
    read_databento,
    read_events,
    read_lobster,
    read_meta,
    write_events,
)
from mmsim.data.validate import validate_events
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventKind as K

MSG = "BAD_2012-06-21_34200000_57600000_message_1.csv"
OB = "BAD_2012-06-21_34200000_57600000_orderbook_1.csv"
GOOD = [
    "34200.1,1,1,10,1000000,1",
    "34200.2,1,2,10,1000100,-1",
    "34200.3,3,1,10,1000000,1",
]


def test_message_format():
    e = DataError("/x/AMZN_message_1.csv", 17, "price", "'abc' is not an integer")
    assert str(e) == "/x/AMZN_message_1.csv: row 17, field 'price': 'abc' is not an integer"
    assert (e.path, e.row, e.field) == ("/x/AMZN_message_1.csv", 17, "price")
    assert isinstance(e, ValueError)
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.row == 17
    assert str(DataError("a/b.csv", None, None, "no such file")) == "a/b.csv: no such file"


@pytest.mark.parametrize(
    ("row_index", "line", "field", "match"),
    [
        (1, "34200.2,1,2,10,1000100", None, "expected 6 columns, got 5"),
        (1, "34200.2,1,2,10,1000100,-1,7", None, "expected 6 columns, got 7"),
        (1, "34200.2,1,2,10,abc,-1", "price", "'abc' is not an integer"),
        (1, "34200.2,1,2,1.5,1000100,-1", "size", "'1.5' is not an integer"),
        (1, "34200.2,1,,10,1000100,-1", "order_id", "'' is not an integer"),
        (1, "9:30:00,1,2,10,1000100,-1", "time", "not a time"),
        (1, "34200.2,9,2,10,1000100,-1", "type", "unknown message type 9"),
        (1, "34200.2,1,2,10,1000100,0", "direction", "direction 0"),
        (1, "34200.05,1,2,10,1000100,-1", "time", "goes backwards"),
        (1, "34200.2,1,2,0,1000100,-1", "size", "size 0 <= 0"),
        (1, "34200.2,4,2,-5,1000100,-1", "size", "size -5 <= 0"),
        (1, "34200.2,1,2,10,1000150,-1", "price", "multiple of"),
        (1, "34200.2,1,0,10,1000100,-1", "order_id", "order id 0"),
        (1, "34200.2,7,0,0,5,-1", "price", "status value 5"),
        (2, "34200.3,3,1,10,1000000", None, "columns"),
    ],
)
def test_bad_message_rows(tmp_path, row_index, line, field, match):
    rows = list(GOOD)
    rows[row_index] = line
    p = tmp_path / MSG
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=match) as exc:
        read_lobster(p)
    assert exc.value.row == row_index + 1
    assert exc.value.field == field
    assert MSG in str(exc.value)


def test_first_failing_row_wins(tmp_path):
    p = tmp_path / MSG
    p.write_text("34200.1,1,1,10,1000000,1\n34200.2,1,2,10,1000100\n34200.3,x,1,10,1000000,1\n")
    with pytest.raises(DataError) as exc:
        read_lobster(p)
    assert exc.value.row == 2


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="no such file") as exc:
        read_lobster(tmp_path / MSG)
    assert exc.value.row is None
    (tmp_path / MSG).write_text("")
    with pytest.raises(DataError, match="empty"):
        read_lobster(tmp_path / MSG)
    (tmp_path / "nodate.csv").write_text("\n".join(GOOD))
    with pytest.raises(DataError) as exc:
        read_lobster(tmp_path / "nodate.csv")
    assert exc.value.field == "date"


def test_bad_orderbook(tmp_path):
    msg = tmp_path / MSG
    msg.write_text("\n".join(GOOD) + "\n")
    ob = tmp_path / OB
    ob.write_text("1000100,10,1000000,10\n1000100,10,1000000,10\n")
    with pytest.raises(DataError, match="has 2 rows but the message file has 3") as exc:
        read_lobster(msg, ob)
    assert exc.value.path == str(ob) and exc.value.row is None
    ob.write_text("1000100,10,1000000,10\n1000100,10,zz,10\n9999999999,0,1000000,10\n")
    with pytest.raises(DataError, match="'zz' is not an integer") as exc:
        read_lobster(msg, ob)
    assert (exc.value.row, exc.value.field) == (2, "bid_px_1")
    ob.write_text("1000100,10,1000000,10\n1000100,10,1000000\n9999999999,0,1000000,10\n")
    with pytest.raises(DataError, match="expected 4 columns") as exc:
        read_lobster(msg, ob)
    assert exc.value.row == 2
    ob.write_text("1000100,10,1000000,10\n1000150,10,1000000,10\n9999999999,0,1000000,10\n")
    with pytest.raises(DataError, match="grid") as exc:
        read_lobster(msg, ob)
    assert (exc.value.row, exc.value.field) == (2, "ask_px_1")
    with pytest.raises(DataError, match="no such file"):
        read_lobster(msg, tmp_path / "missing_orderbook_1.csv")


def _events(n):
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["kind"] = K.ADD
    ev["side"] = 1
    ev["qty"] = 1
    ev["order_id"] = np.arange(1, n + 1)
    ev["exch_ts"] = ev["local_ts"] = np.arange(n)
    return ev


def test_validate_events_errors():
    ev = _events(4)
    assert validate_events(ev, "x.parquet")["n_events"] == 4
    bad = ev.copy()
    bad["local_ts"][2] = -1
    with pytest.raises(DataError) as exc:
        validate_events(bad, "x.parquet")
    assert (exc.value.row, exc.value.field) == (3, "local_ts")
    bad = ev.copy()
    bad["exch_ts"][3] = 0
    with pytest.raises(DataError) as exc:
        validate_events(bad, "x.parquet")
    assert (exc.value.row, exc.value.field) == (4, "exch_ts")
    bad = ev.copy()
    bad["kind"][1] = K.CANCEL
    bad["qty"][1] = 0
    with pytest.raises(DataError) as exc:
        validate_events(bad, "x.parquet")
    assert (exc.value.row, exc.value.field) == (2, "qty")


def test_validate_counts():
    ev = _events(4)
    ev["kind"][2] = K.CANCEL
    ev["order_id"][2] = 99  # never added
    ev["kind"][3] = K.ADD
    ev["side"][3] = -1
    ev["price_tick"][3] = -5  # ask below the bid: crossed
    ev["flags"][3] = 1
    out = validate_events(ev, None)
    assert out["unknown_order_refs"] == 1
    assert out["crossed_book_events"] == 1
    assert out["kinds"] == {"add": 3, "cancel": 1}
    assert (out["first_exch_ts"], out["last_exch_ts"]) == (0, 3)


def test_store_errors_and_atomic_write(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="no such file"):
        read_events(tmp_path / "nope.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a Parquet file"):
        read_meta(tmp_path / "junk.parquet")
    res = IngestResult(_events(5), {"source": "test"}, {"n": 5})
    target = tmp_path / "ev.parquet"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        write_events(target, res)
    assert list(tmp_path.iterdir()) == [tmp_path / "junk.parquet"]
    monkeypatch.undo()
    write_events(target, res)
    assert read_meta(target) == ({"source": "test"}, {"n": 5})
    with pytest.raises(TypeError):
        write_events(target, IngestResult(np.zeros(2), {}, {}))


def test_databento_bad_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_databento(tmp_path / "x.dbn.zst")
    p = tmp_path / "garbage.dbn"
    p.write_bytes(b"DBN\x03garbage-bytes" * 10)
    with pytest.raises(DataError, match="decode"):
        read_databento(p)


@pytest.mark.realdata
def test_databento_truncated(data_root, tmp_path):
    data = (data_root / "databento/esh4-glbx-mdp3-20231224.mbo.dbn.zst").read_bytes()
    p = tmp_path / "cut.dbn.zst"
    p.write_bytes(data[:-1000])
    with pytest.raises(DataError, match="truncated"):
        read_databento(p)
