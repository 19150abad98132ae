"""Databento MBO reader: hand-built DBN streams, then the real ESH4 files."""

from __future__ import annotations

from pathlib import Path

import databento_dbn as dbn
import numpy as np
import pytest

from mmsim.book.reference import ReferenceL3Book
from mmsim.data import DataError, read_databento, read_events, write_events
from mmsim.enums import EventFlag as F
from mmsim.enums import EventKind as K

T0 = 1_703_541_600_000_000_000
TICK = 250_000_000  # 0.25 USD in 1e-9 units
A, B, N = dbn.Side.ASK, dbn.Side.BID, dbn.Side.NONE


def mbo(action, side, price_tick, size, oid, *, flags=128, dt=0, iid=5, price=None, recv=None):
    return dbn.MBOMsg(
        publisher_id=1,
        instrument_id=iid,
        ts_event=T0 + dt,
        order_id=oid,
        price=price_tick * TICK if price is None else price,
        size=size,
        action=action,
        side=side,
        ts_recv=T0 + (dt + 1 if recv is None else recv),
        flags=flags,
        sequence=dt,
    )


def write_dbn(path: Path, records) -> Path:
    md = dbn.Metadata(
        dataset="GLBX.MDP3",
        schema=dbn.Schema.MBO,
        start=T0,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        end=None,
        symbols=["ESH4"],
        partial=[],
        not_found=[],
        mappings=[],
    )
    path.write_bytes(md.encode() + b"".join(bytes(r) for r in records))
    return path


def records(events):
    cols = ("kind", "side", "price_tick", "qty", "order_id", "flags")
    return [tuple(int(e[c]) for c in cols) for e in events]


Act = dbn.Action
SNAP = 32 | 8  # F_SNAPSHOT | F_BAD_TS_RECV


def test_mapping_exact(tmp_path):
    recs = [
        mbo(Act.ADD, B, 19000, 5, 1, flags=SNAP),
        mbo(Act.ADD, A, 19004, 3, 2, flags=SNAP),  # snapshot without F_LAST on its end
        mbo(Act.ADD, A, 19004, 4, 3, dt=10),
        mbo(Act.TRADE, B, 19004, 2, 0, flags=0, dt=20),  # aggressor buy -> resting ask
        mbo(Act.FILL, A, 19004, 2, 2, flags=0, dt=20),
        mbo(Act.MODIFY, A, 19004, 1, 2, flags=0, dt=20),
        mbo(Act.FILL, N, 19004, 4, 3, flags=0, dt=20),  # side N: from the book
        mbo(Act.CANCEL, A, 19004, 4, 3, dt=20),  # CME follow-up of a full fill: no-op
        mbo(Act.CANCEL, B, 19000, 2, 1, dt=30),
        mbo(Act.CLEAR, N, 0, 0, 0, dt=40, price=dbn.UNDEF_PRICE),
    ]
    r = read_databento(write_dbn(tmp_path / "x.dbn", recs))
    SS = F.SYNTHETIC | F.SNAPSHOT
    SB = F.SNAPSHOT | F.BAD_TS
    L = F.LAST
    assert records(r.events) == [
        (K.SNAPSHOT_BEGIN, 0, 0, 0, 0, SS),
        (K.CLEAR, 0, 0, 0, 0, SS),  # no R at the start of the snapshot
        (K.ADD, 1, 19000, 5, 1, SB),
        (K.ADD, -1, 19004, 3, 2, SB),
        (K.SNAPSHOT_END, 0, 0, 0, 0, SS | L),
        (K.ADD, -1, 19004, 4, 3, L),
        (K.TRADE, -1, 19004, 2, 0, F.INFO),
        (K.EXECUTE, -1, 19004, 2, 2, 0),
        (K.MODIFY, -1, 19004, 1, 2, 0),
        (K.EXECUTE, -1, 19004, 4, 3, 0),
        (K.CANCEL, -1, 19004, 4, 3, L),
        (K.CANCEL, 1, 19000, 2, 1, L),
        (K.CLEAR, 0, 0, 0, 0, L),
    ]
    assert r.events["exch_ts"][5] == T0 + 10 and r.events["local_ts"][5] == T0 + 11
    assert r.report["fill_side_from_book"] == 1
    assert r.report["fill_side_mismatch"] == 0
    assert r.report["snapshot_records"] == 2 and r.report["synthetic_clear"] is True
    assert r.report["actions"] == {"A": 3, "C": 2, "F": 2, "M": 1, "R": 1, "T": 1}
    assert r.meta["symbol"] == "ESH4" and r.meta["multiplier"] == 50 and r.meta["clocks"] == 2
    book = ReferenceL3Book()
    for e in r.events[:-1]:
        book.apply(e)
    assert book.levels(1) == {19000: 3} and book.levels(-1) == {19004: 1}


def test_ts_event_backwards_is_counted_and_smoothed(tmp_path):
    recs = [
        mbo(Act.ADD, B, 19000, 1, 1, dt=100, recv=200),
        mbo(Act.ADD, B, 19000, 1, 2, dt=90, recv=210),
        mbo(Act.ADD, B, 19000, 1, 3, dt=120, recv=220),
    ]
    r = read_databento(write_dbn(tmp_path / "x.dbn", recs))
    assert r.report["ts_event_backwards"] == 1
    assert (r.events["exch_ts"] - T0).tolist() == [100, 100, 120]
    assert (r.events["local_ts"] - T0).tolist() == [200, 210, 220]


def test_instrument_selection(tmp_path):
    recs = [
        mbo(Act.ADD, B, 19000, 1, 1, iid=5),
        mbo(Act.ADD, B, 19000, 1, 2, iid=7, dt=1),
        mbo(Act.ADD, B, 19000, 1, 3, iid=5, dt=2),
    ]
    path = write_dbn(tmp_path / "x.dbn", recs)
    r = read_databento(path)
    assert r.meta["instrument_id"] == 5 and r.events["order_id"].tolist() == [1, 3]
    assert r.report["other_instruments"] == {"7": 1}
    assert read_databento(path, instrument_id=7).events["order_id"].tolist() == [2]
    with pytest.raises(DataError) as exc:
        read_databento(path, instrument_id=9)
    assert exc.value.field == "instrument_id"


def test_subtick_fill_rounding(tmp_path):
    recs = [
        mbo(Act.ADD, B, 19000, 1, 1),
        mbo(Act.TRADE, A, 0, 1, 0, price=19000 * TICK + 1, dt=1),  # resting bid: round up
        mbo(Act.FILL, B, 0, 1, 1, price=19000 * TICK + 1, dt=1),
    ]
    r = read_databento(write_dbn(tmp_path / "x.dbn", recs))
    assert records(r.events)[1:] == [
        (K.TRADE, 1, 19001, 1, 0, F.INFO | F.SUBTICK | F.LAST),
        (K.EXECUTE, 1, 19001, 1, 1, F.SUBTICK | F.LAST),
    ]
    assert r.report["subtick_prices"] == 2


def test_databento_recv_backwards(tmp_path):
    recs = [
        mbo(Act.ADD, B, 19000, 1, 1, dt=0, recv=10),
        mbo(Act.ADD, B, 19000, 1, 2, dt=1, recv=12),
        mbo(Act.ADD, B, 19000, 1, 3, dt=2, recv=11),
    ]
    with pytest.raises(DataError, match="goes backwards") as exc:
        read_databento(write_dbn(tmp_path / "x.dbn", recs))
    assert (exc.value.row, exc.value.field) == (3, "ts_recv")
    recs = [mbo(Act.ADD, B, 0, 1, 1, price=19000 * 250_000_000 + 5)]
    with pytest.raises(DataError, match="tick grid") as exc:
        read_databento(write_dbn(tmp_path / "y.dbn", recs))
    assert (exc.value.row, exc.value.field) == (1, "price")


# ---------------------------------------------------------------- real data
ESH4 = "databento/esh4-glbx-mdp3-{}.mbo.dbn.zst"


@pytest.mark.realdata
def test_esh4_20231225(data_root, tmp_path):
    path = data_root / ESH4.format("20231225")
    r = read_databento(path)
    ev = r.events
    assert r.report["n_records"] == 68_792
    assert len(ev) == 68_795  # + SNAPSHOT_BEGIN, CLEAR, SNAPSHOT_END
    assert r.report["snapshot_records"] == 8_725
    assert ev["kind"][0] == K.SNAPSHOT_BEGIN and ev["kind"][8_727] == K.SNAPSHOT_END
    assert np.all(ev["flags"][2:8_727] & F.SNAPSHOT)
    assert r.report["actions"] == {"A": 29_216, "C": 17_999, "F": 6_371, "M": 12_233, "T": 2_973}
    assert r.report["fill_side_mismatch"] == 0
    assert r.report["fill_side_from_book"] == 28  # opening-auction fills with side N
    assert r.report["fill_unknown_order"] == 7
    assert r.report["ts_event_backwards"] == 0
    v = r.report["validation"]
    assert v["unknown_order_refs"] == 7
    assert v["crossed_book_events"] == 891  # pre-open 22:39-23:00 UTC: the book may cross
    assert r.meta["symbol"] == "ESH4" and r.meta["instrument_id"] == 17_077
    assert r.meta["tick_size"] == 0.25 and r.meta["multiplier"] == 50
    assert np.all(np.diff(ev["exch_ts"]) >= 0) and np.all(np.diff(ev["local_ts"]) >= 0)

    # the bulk byte decoding agrees with the decoder's attributes on every record
    dec = dbn.DBNDecoder(compression=dbn.Compression.ZSTD)
    recs = [x for x in dec.write_and_decode(path.read_bytes()) if isinstance(x, dbn.MBOMsg)]
    body = ev[np.isin(ev["kind"], (K.SNAPSHOT_BEGIN, K.SNAPSHOT_END), invert=True)][1:]
    assert len(body) == len(recs)
    assert body["qty"].tolist() == [x.size for x in recs]
    assert body["local_ts"].tolist() == [x.ts_recv for x in recs]
    assert body["order_id"].tolist() == [x.order_id for x in recs]  # ids < 2**63 here
    assert body["price_tick"].tolist() == [x.price // TICK for x in recs]
    is_t = np.array([x.action == Act.TRADE for x in recs])
    aggressor = np.array([{"B": 1, "A": -1, "N": 0}[x.side.value] for x in recs])
    assert np.array_equal(body["side"][is_t], -aggressor[is_t])

    out = write_events(tmp_path / "es.parquet", r)
    assert np.array_equal(read_events(out), ev)


@pytest.mark.realdata
def test_esh4_20231224_snapshot_only(data_root):
    r = read_databento(data_root / ESH4.format("20231224"))
    assert len(r.events) == 8_725 + 3
    assert r.report["validation"]["crossed_book_events"] == 0
    book = ReferenceL3Book()
    for e in r.events:
        book.apply(e)
    assert len(book.orders) == 8_725
    assert book.best_bid() < book.best_ask()


@pytest.mark.realdata
def test_wrong_tick_size_is_an_error(data_root):
    with pytest.raises(DataError) as exc:
        read_databento(data_root / ESH4.format("20231224"), tick_size=0.3)
    assert exc.value.field == "price" and exc.value.row == 1
