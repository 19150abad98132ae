"""Databento MBO (``.dbn`` / ``.dbn.zst``) to canonical events.

Records are decoded with :mod:`databento_dbn` (``DBNDecoder``) and converted in bulk: each
``MBOMsg`` is 56 raw bytes (DBN v1-v3 share the layout), read into a numpy structured array.

Clocks
------
``exch_ts = ts_event`` (matching engine) and ``local_ts = ts_recv`` (capture), so
``meta["clocks"] == 2``. ``ts_recv`` must be non-decreasing in file order (else
:class:`~mmsim.data.errors.DataError`); ``ts_event`` may step back a little on CME: the
steps are counted in ``report["ts_event_backwards"]`` and ``exch_ts`` is the running maximum
of ``ts_event`` so the stream stays non-decreasing.

Mapping
-------
======  ===========  =====================================================================
action  kind         details
======  ===========  =====================================================================
R       CLEAR        ``side = 0`` (whole book).
A       ADD
C       CANCEL       reduce by ``size``.
M       MODIFY       the order now has (``side``, ``price``, ``size``).
F       EXECUTE      the resting order ``order_id`` is filled. Its side is checked against
                     the replayed book: a fill whose side is ``N`` (CME opening-auction
                     fills) or disagrees takes the resting order's side
                     (``report["fill_side_from_book"]``, ``report["fill_side_mismatch"]``).
T       TRADE        flag ``INFO``: the print; its book effect comes through the F records.
                     ``side`` is the *resting* side, the opposite of Databento's aggressor
                     side (``N`` -> 0).
======  ===========  =====================================================================

On CME every ``F`` is followed by a ``C`` (full fill) or ``M`` (new remaining size) of the
same order in the same event. After the EXECUTE, that ``C`` refers to an order already gone
and is ignored by the book, and the ``M`` restates the size the EXECUTE left, so the book is
the same as Databento's own book-building rule (``F`` has no effect) while the fill is
visible to queue models as an EXECUTE.

Prices: ``price_tick = price / (tick_size * 1e9)``. ``UNDEF_PRICE`` (``2**63 - 1``) becomes
0 on R, T, F and C records and is an error on A and M. A price off the grid is an error on
A, C and M (check ``tick_size``) and is rounded on T and F (up for a bid-side resting order,
down for an ask-side one, nearest when the side is 0) with flag ``SUBTICK``.
``order_id`` (u64) is bit-cast to int64; ``size`` becomes ``qty``.

Flags: ``F_LAST`` (128) -> ``LAST``, ``F_SNAPSHOT`` (32) -> ``SNAPSHOT``, ``F_BAD_TS_RECV``
(8) -> ``BAD_TS``. The opening snapshot (the leading run of records with ``F_SNAPSHOT``) is
bracketed by ``SNAPSHOT_BEGIN`` and ``SNAPSHOT_END`` records (flags ``SYNTHETIC |
SNAPSHOT``, timestamps of the first / last snapshot record; ``SNAPSHOT_END`` carries
``LAST``, since the vendor's last snapshot record may lack ``F_LAST``). When the snapshot does
not start with an ``R`` record, a synthetic ``CLEAR`` follows ``SNAPSHOT_BEGIN`` so the
block rebuilds the book from scratch.

If several ``instrument_id`` are present, the one given (else the most frequent) is kept
and the others' record counts are reported in ``report["other_instruments"]``.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from mmsim._extras import require
from mmsim.book.reference import ReferenceL3Book
from mmsim.data.errors import DataError
from mmsim.data.store import IngestResult
from mmsim.data.validate import bracket_snapshot, validate_events
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventFlag, EventKind

dbn = require("databento_dbn", "databento", "reading Databento files")

#: Raw layout of a DBN MBO record (rtype 0xA0), little-endian, 56 bytes.
MBO_RAW_DTYPE = np.dtype(
    [
        ("length", "u1"),
        ("rtype", "u1"),
        ("publisher_id", "<u2"),
        ("instrument_id", "<u4"),
        ("ts_event", "<u8"),
        ("order_id", "<u8"),
        ("price", "<i8"),
        ("size", "<u4"),
        ("flags", "u1"),
        ("channel_id", "u1"),
        ("action", "S1"),
        ("side", "S1"),
        ("ts_recv", "<u8"),
        ("ts_in_delta", "<i4"),
        ("sequence", "<u4"),
    ]
)
_RTYPE_MBO = 0xA0
_UNDEF_PRICE = int(dbn.UNDEF_PRICE)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK_BYTES = 1 << 24

#: Known contract multipliers by CME root symbol (the ``multiplier`` hint in ``meta``).
_MULTIPLIERS = {"ES": 50, "MES": 5, "NQ": 20, "MNQ": 2, "RTY": 50, "YM": 5}

_ACTIONS = {
    b"R": EventKind.CLEAR,
    b"A": EventKind.ADD,
    b"C": EventKind.CANCEL,
    b"M": EventKind.MODIFY,
    b"F": EventKind.EXECUTE,
    b"T": EventKind.TRADE,
}


def _decode(path: Path, data: bytes) -> tuple[Any, np.ndarray, Counter]:
    """Decode a DBN stream: (metadata, raw MBO array in file order, other record types)."""
    compression = dbn.Compression.ZSTD if data[:4] == _ZSTD_MAGIC else dbn.Compression.NONE
    decoder = dbn.DBNDecoder(compression=compression)
    metadata = None
    chunks: list[bytes] = []
    others: Counter = Counter()
    try:
        for start in range(0, max(len(data), 1), _CHUNK_BYTES):
            records = decoder.write_and_decode(data[start : start + _CHUNK_BYTES])
            mbo = []
            for rec in records:
                if isinstance(rec, dbn.MBOMsg):
                    mbo.append(bytes(rec))
                elif isinstance(rec, dbn.Metadata):
                    metadata = rec
                else:
                    others[type(rec).__name__] += 1
            chunks.append(b"".join(mbo))
        left = len(decoder.buffer())
    except Exception as exc:  # databento_dbn raises its own DBNError / ValueError
        raise DataError(path, None, None, f"cannot decode DBN ({exc})") from exc
    if metadata is None:
        raise DataError(path, None, None, "cannot decode DBN: no metadata header")
    if left:
        raise DataError(path, None, None, f"cannot decode DBN: truncated ({left} bytes left)")
    raw = np.frombuffer(b"".join(chunks), dtype=MBO_RAW_DTYPE)
    bad = np.flatnonzero(
        (raw["rtype"] != _RTYPE_MBO) | (raw["length"].astype(int) * 4 != MBO_RAW_DTYPE.itemsize)
    )
    if bad.size:
        raise DataError(path, int(bad[0]) + 1, "rtype", "unexpected MBO record layout")
    return metadata, raw, others


def _tick_nanos(tick_size: float) -> int:
    scaled = Decimal(str(tick_size)) * 1_000_000_000
    if scaled <= 0 or scaled != scaled.to_integral_value():
        raise ValueError(f"tick_size {tick_size} is not a positive multiple of 1e-9")
    return int(scaled)


def read_databento(
    path: str | os.PathLike[str],
    *,
    tick_size: float = 0.25,
    instrument_id: int | None = None,
    multiplier: float | None = None,
) -> IngestResult:
    """Read a Databento MBO file into canonical events.

    See the module docstring for the mapping, clocks and flags.

    Parameters
    ----------
    path : str or os.PathLike
        ``.dbn`` or ``.dbn.zst`` (zstd is detected from the magic bytes) with MBO records.
    tick_size : float, default 0.25
        Price tick in USD (ES: 0.25); ``price_tick = price * 1e-9 / tick_size``.
    instrument_id : int or None
        Instrument to keep; default: the most frequent one.
    multiplier : float or None
        Contract multiplier hint for ``meta``; default: looked up from the symbol root
        (ES 50, MES 5, NQ 20, MNQ 2, RTY 50, YM 5), else None.

    Returns
    -------
    IngestResult
        ``events``: EVENT_DTYPE, exch_ts = running max of ts_event, local_ts = ts_recv (int64
        UNIX ns), prices in ticks, quantities in contracts. ``meta``: source, dataset,
        schema, symbol, instrument_id, date, levels=None (full depth), clocks=2, tick_size,
        lot_size=1, multiplier, files. ``report``: n_records, actions, other_instruments,
        other_record_types, snapshot_records, synthetic_clear, ts_event_backwards,
        fill_side_from_book, fill_side_mismatch, fill_unknown_order, subtick_prices and
        validation (:func:`~mmsim.data.validate.validate_events`, with unknown_order_refs and
        crossed_book_events).

    Raises
    ------
    DataError
        Missing or undecodable file, no MBO records, unknown instrument, unknown action or
        side, ``ts_recv`` going backwards, an undefined or off-grid price on A/C/M (``row``
        is the 1-based index among the file's MBO records).
    ValueError
        If ``tick_size`` is not a positive multiple of 1e-9.
    """
    path = Path(path)
    tick_nanos = _tick_nanos(tick_size)
    if not path.is_file():
        raise DataError(path, None, None, "no such file")
    data = path.read_bytes()
    metadata, raw_all, other_types = _decode(path, data)
    if len(raw_all) == 0:
        raise DataError(path, None, None, "no MBO records")

    ids, id_counts = np.unique(raw_all["instrument_id"], return_counts=True)
    if instrument_id is None:
        instrument_id = int(ids[np.argmax(id_counts)])
    elif instrument_id not in ids:
        raise DataError(
            path, None, "instrument_id", f"{instrument_id} not in file (has {ids.tolist()})"
        )
    other_instruments = {
        str(int(i)): int(c) for i, c in zip(ids, id_counts, strict=True) if i != instrument_id
    }
    rows = np.flatnonzero(raw_all["instrument_id"] == instrument_id)  # 0-based record index
    raw = raw_all[rows]
    n = len(raw)

    # --- clocks
    ts_recv = raw["ts_recv"].astype(np.int64)
    ts_event = raw["ts_event"].astype(np.int64)
    back = np.flatnonzero(np.diff(ts_recv) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise DataError(
            path, int(rows[i]) + 1, "ts_recv", f"goes backwards: {ts_recv[i]} < {ts_recv[i - 1]}"
        )
    ts_event_backwards = int(np.count_nonzero(np.diff(ts_event) < 0))
    exch_ts = np.maximum.accumulate(ts_event)

    # --- actions and sides
    action = raw["action"]
    kind = np.zeros(n, dtype=np.uint8)
    for code, k in _ACTIONS.items():
        kind[action == code] = k
    bad = np.flatnonzero(kind == 0)
    if bad.size:
        i = int(bad[0])
        raise DataError(path, int(rows[i]) + 1, "action", f"unknown action {action[i]!r}")
    side_raw = raw["side"]
    side = np.zeros(n, dtype=np.int8)
    side[side_raw == b"B"] = 1
    side[side_raw == b"A"] = -1
    bad = np.flatnonzero((side == 0) & (side_raw != b"N"))
    if bad.size:
        i = int(bad[0])
        raise DataError(path, int(rows[i]) + 1, "side", f"unknown side {side_raw[i]!r}")
    is_trade = kind == EventKind.TRADE
    side[is_trade] = -side[is_trade]  # aggressor side -> resting side

    # --- prices
    price = raw["price"]
    undef = price == _UNDEF_PRICE
    needs_price = (kind == EventKind.ADD) | (kind == EventKind.MODIFY)
    bad = np.flatnonzero(undef & needs_price)
    if bad.size:
        i = int(bad[0])
        raise DataError(path, int(rows[i]) + 1, "price", "undefined price on an add/modify")
    px = np.where(undef, 0, price)
    off = px % tick_nanos != 0
    bad = np.flatnonzero(off & (needs_price | (kind == EventKind.CANCEL)))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            path,
            int(rows[i]) + 1,
            "price",
            f"{px[i]}e-9 is not on the tick grid {tick_size} (check tick_size=)",
        )
    down = px // tick_nanos
    up = -(-px // tick_nanos)
    nearest = (px + tick_nanos // 2) // tick_nanos
    price_tick = np.where(side > 0, up, np.where(side < 0, down, nearest))
    price_tick = np.where(off, price_tick, down)

    # --- flags
    vflags = raw["flags"]
    flags = np.zeros(n, dtype=np.uint16)
    flags[(vflags & dbn.F_LAST) != 0] |= EventFlag.LAST
    flags[(vflags & dbn.F_SNAPSHOT) != 0] |= EventFlag.SNAPSHOT
    flags[(vflags & dbn.F_BAD_TS_RECV) != 0] |= EventFlag.BAD_TS
    flags[is_trade] |= EventFlag.INFO
    flags[off] |= EventFlag.SUBTICK

    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["exch_ts"] = exch_ts
    ev["local_ts"] = ts_recv
    ev["price_tick"] = price_tick
    ev["qty"] = raw["size"].astype(np.int64)
    ev["order_id"] = raw["order_id"].view(np.int64)
    ev["kind"] = kind
    ev["side"] = side
    ev["flags"] = flags
    ev["price_tick"][kind == EventKind.CLEAR] = 0
    ev["side"][kind == EventKind.CLEAR] = 0

    # --- fill sides against the replayed book
    fill_stats = _check_fill_sides(ev)

    # --- snapshot bracket
    is_snap = (vflags & dbn.F_SNAPSHOT) != 0
    n_snap = int(np.argmin(is_snap)) if not is_snap.all() else n
    synthetic_clear = False
    if n_snap:
        synthetic_clear = kind[0] != EventKind.CLEAR
        ev = bracket_snapshot(ev, n_snap, synthetic_clear)

    symbol = None
    dataset = schema = None
    date = None
    if metadata is not None:
        dataset = metadata.dataset
        schema = str(metadata.schema) if metadata.schema is not None else None
        for mapping in metadata.mappings or []:
            intervals = metadata.mappings[mapping]
            if any(str(iv.get("symbol")) == str(instrument_id) for iv in intervals):
                symbol = mapping
        if symbol is None and len(metadata.symbols or []) == 1:
            symbol = metadata.symbols[0]
        if metadata.start is not None:
            date = np.datetime64(int(metadata.start), "ns").astype("datetime64[D]").item()
    if date is None:
        date = np.datetime64(int(ts_recv[-1]), "ns").astype("datetime64[D]").item()
    if multiplier is None and symbol:
        root = symbol.rstrip("0123456789")[:-1] if symbol[-1].isdigit() else symbol
        multiplier = _MULTIPLIERS.get(root)

    actions, counts = np.unique(action, return_counts=True)
    report: dict[str, Any] = {
        "n_records": int(len(raw_all)),
        "actions": {a.decode(): int(c) for a, c in zip(actions, counts, strict=True)},
        "other_instruments": other_instruments,
        "other_record_types": dict(other_types),
        "snapshot_records": n_snap,
        "synthetic_clear": bool(synthetic_clear),
        "ts_event_backwards": ts_event_backwards,
        "subtick_prices": int(np.count_nonzero(off)),
        **fill_stats,
        "validation": validate_events(ev, path),
    }
    meta: dict[str, Any] = {
        "source": "databento",
        "dataset": dataset,
        "schema": schema,
        "symbol": symbol,
        "instrument_id": int(instrument_id),
        "date": date.isoformat(),
        "levels": None,
        "clocks": 2,
        "tick_size": tick_size,
        "lot_size": 1,
        "multiplier": multiplier,
        "files": [
            {"name": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        ],
    }
    return IngestResult(events=ev, meta=meta, report=report)


def _check_fill_sides(ev: np.ndarray) -> dict[str, int]:
    """Replay the book; set each EXECUTE's side to its resting order's side. In place."""
    book = ReferenceL3Book()
    orders = book.orders
    apply = book.apply_fields
    from_book = mismatch = unknown = 0
    execute = EventKind.EXECUTE
    cols = [ev[c].tolist() for c in ("kind", "side", "price_tick", "qty", "order_id")]
    side_col = ev["side"]
    for i, (k, s, p, q, oid) in enumerate(zip(*cols, strict=True)):
        if k == execute:
            o = orders.get(oid)
            if o is None:
                unknown += 1
            elif o[0] != s:
                if s == 0:
                    from_book += 1
                else:
                    mismatch += 1
                side_col[i] = o[0]
                s = o[0]
        try:
            apply(k, s, p, q, oid)
        except ValueError:
            pass  # an add/modify without side: validate_events names it
    return {
        "fill_side_from_book": from_book,
        "fill_side_mismatch": mismatch,
        "fill_unknown_order": unknown,
    }


