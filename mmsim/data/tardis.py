"""Tardis.dev CSV (``incremental_book_L2``, ``book_snapshot_N``, ``trades``) to canonical events.

Files (plain or gzip, detected from the magic bytes), timestamps in µs since 1970:

``incremental_book_L2``
    ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount``; ``side`` is
    ``bid`` or ``ask``, ``amount`` the new absolute level quantity (0 deletes).
``book_snapshot_N`` (e.g. ``book_snapshot_25``)
    ``exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,bids[0].price,
    bids[0].amount,...``: the top ``N`` levels of each side after every change.
``trades``
    ``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``; ``side`` is the
    *aggressor* side (``buy``, ``sell``, ``unknown``).

Mapping
-------
- ``incremental_book_L2``: consecutive rows with the same ``timestamp``, ``local_timestamp``
  and ``is_snapshot`` are one message: one ``LEVEL_SET`` per row (side +1 bid / -1 ask, lots),
  ``LAST`` on the message's last record. A run of ``is_snapshot=true`` rows (at the start, or
  after non-snapshot rows: Tardis's reset after a reconnection) is one snapshot block:
  ``SNAPSHOT_BEGIN``, ``CLEAR`` (side 0), its ``LEVEL_SET`` records flagged ``SNAPSHOT``,
  ``SNAPSHOT_END`` (``LAST``); BEGIN, CLEAR and END are flagged ``SYNTHETIC | SNAPSHOT`` and
  carry the timestamps of the run's first / last row. ``report["snapshots"]`` counts the blocks.
- ``book_snapshot_N``: supported as a sequence of snapshots, each row one snapshot block (the
  book is the top ``N`` only; every row rebuilds it, so queue positions do not survive a row,
  prefer ``incremental_book_L2`` for queue models). Empty levels (blank cells) are skipped.
- ``trades``: ``TRADE`` with ``side`` = the resting side, the opposite of the aggressor
  (``buy`` -> -1, ``sell`` -> +1, ``unknown`` -> 0), ``order_id = 0`` (the vendor's ids are
  strings), flags ``LAST``.

Prices and quantities: ``price_tick = price / tick_size`` and ``qty = amount / lot_size``,
exactly from the decimal strings; off-grid values raise :class:`~mmsim.data.errors.DataError`.

Clocks
------
``exch_ts = timestamp * 1000`` and ``local_ts = local_timestamp * 1000`` (``clocks == 2``).
Book messages keep their file order: their ``exch_ts`` is the running maximum of
``timestamp`` (repairs counted in ``report["book_ts_backwards"]``). Trades are merged by
``exch_ts`` (stable); at equal ``exch_ts`` a trade comes before the book change (the book
change the trade explains; same rule as :mod:`mmsim.data.binance`). ``local_ts`` is kept raw;
backward steps after the merge are counted (``report["validation"]["local_ts_backwards"]``).
``report["clock_offset_ns"]`` summarises ``local_ts - exch_ts`` of the book messages (of the
trades when there is no book file) and
``meta["suggested_feed_offset_ns"]`` is ``-p1`` when its 1st percentile is negative, else 0.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.data.binance import (
    DecimalGrid,
    EventBuilder,
    finish_l2_report,
    read_input,
)
from mmsim.data.errors import DataError
from mmsim.data.store import IngestResult
from mmsim.data.text import decode_utf8
from mmsim.enums import EventFlag, EventKind

_BOOK_COLS = [
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "is_snapshot",
    "side",
    "price",
    "amount",
]
_TRADE_COLS = [
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "id",
    "side",
    "price",
    "amount",
]
_PRIO_TRADE, _PRIO_BOOK = 0, 2
_US = 1000
_LAST = EventFlag.LAST
_SNAP = EventFlag.SNAPSHOT
_SYN = EventFlag.SYNTHETIC
_END_FLAGS = _SYN | _SNAP | _LAST  # SNAPSHOT_END
_SIDES = {"bid": 1, "ask": -1}
_AGGRESSOR_TO_RESTING = {"buy": -1, "sell": 1, "unknown": 0}
_BOOL = {"true": True, "false": False}


def _open_csv(path: Path) -> tuple[list[str], Any, dict[str, Any]]:
    """Header and row reader of a (gzipped) UTF-8 CSV; a byte-order mark is dropped.

    Raises
    ------
    DataError
        Missing file, broken gzip, not UTF-8 (row named), empty file.
    """
    raw, info = read_input(path)
    text = decode_utf8(raw, path)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise DataError(path, None, None, "empty file")
    return [h.strip() for h in header], reader, info


def _blank(rec: list[str]) -> bool:
    """An empty or whitespace-only line (a trailing blank line, say): skipped."""
    return not rec or (len(rec) == 1 and not rec[0].strip())


def _ts(text: str, path: Path, row: int, name: str) -> int:
    try:
        return int(text) * _US
    except ValueError:
        raise DataError(path, row, name, f"{text!r} is not an integer (µs)") from None


def _grid(grid: DecimalGrid, text: str, path: Path, row: int, name: str) -> int:
    try:
        return grid(text)
    except ValueError as exc:
        raise DataError(path, row, name, str(exc)) from None


def _check_header(path: Path, header: list[str], expected: list[str]) -> None:
    if header[: len(expected)] != expected:
        raise DataError(path, 1, None, f"expected the columns {','.join(expected)}")


def _read_incremental(path, reader, b: EventBuilder, px, lot, offsets) -> dict[str, Any]:
    n_rows = n_msgs = n_snap = back = 0
    last_exch = None
    key = None
    in_snapshot = False
    seq = 0
    symbols: Counter = Counter()
    last_snap = (0, 0)  # (exch_ts, local_ts) of the last snapshot row
    pending: list[int] = []  # builder index of the previous message's last record
    for row, rec in enumerate(reader, 2):
        if _blank(rec):
            continue
        if len(rec) != len(_BOOK_COLS):
            raise DataError(path, row, None, f"expected {len(_BOOK_COLS)} columns, got {len(rec)}")
        _, sym, ts_s, lts_s, snap_s, side_s, price_s, amount_s = rec
        symbols[sym] += 1
        exch = _ts(ts_s, path, row, "timestamp")
        local = _ts(lts_s, path, row, "local_timestamp")
        is_snap = _BOOL.get(snap_s.strip().lower())
        if is_snap is None:
            raise DataError(path, row, "is_snapshot", f"{snap_s!r} is not true/false")
        side = _SIDES.get(side_s.strip().lower())
        if side is None:
            raise DataError(path, row, "side", f"{side_s!r} is not bid/ask")
        p = _grid(px, price_s, path, row, "price")
        q = _grid(lot, amount_s, path, row, "amount")
        n_rows += 1
        if last_exch is not None and exch < last_exch:
            back += 1
            exch = last_exch
        last_exch = exch
        new_key = (ts_s, lts_s, is_snap)
        if is_snap and not in_snapshot:  # a new snapshot block
            if pending:
                b.flags[pending[-1]] |= _LAST
            pending.clear()
            seq += 1
            n_snap += 1
            b.add(exch, local, EventKind.SNAPSHOT_BEGIN, 0, 0, 0, _SYN | _SNAP, _PRIO_BOOK, seq)
            b.add(exch, local, EventKind.CLEAR, 0, 0, 0, _SYN | _SNAP, _PRIO_BOOK, seq)
            offsets.append(local - exch)
        elif not is_snap and in_snapshot:  # close the block
            b.add(*last_snap, EventKind.SNAPSHOT_END, 0, 0, 0, _END_FLAGS, _PRIO_BOOK, seq)
        in_snapshot = is_snap
        if is_snap:
            b.add(exch, local, EventKind.LEVEL_SET, side, p, q, _SNAP, _PRIO_BOOK, seq)
            last_snap = (exch, local)
            key = new_key
            continue
        if new_key != key:
            if pending:
                b.flags[pending[-1]] |= _LAST
            pending.clear()
            seq += 1
            n_msgs += 1
            offsets.append(local - exch)
            key = new_key
        pending.append(len(b))
        b.add(exch, local, EventKind.LEVEL_SET, side, p, q, 0, _PRIO_BOOK, seq)
    if in_snapshot:
        b.add(*last_snap, EventKind.SNAPSHOT_END, 0, 0, 0, _END_FLAGS, _PRIO_BOOK, seq)
    if pending:
        b.flags[pending[-1]] |= _LAST
    if n_rows == 0:
        raise DataError(path, None, None, "no book rows")
    return {
        "book_rows": n_rows,
        "book_messages": n_msgs,
        "snapshots": n_snap,
        "book_ts_backwards": back,
        "symbols": dict(symbols),
    }


def _read_snapshots(path, header, reader, b: EventBuilder, px, lot, offsets) -> dict[str, Any]:
    cols: list[tuple[int, int, int]] = []  # (side, price column, amount column)
    for j, name in enumerate(header):
        for prefix, side in (("asks[", -1), ("bids[", 1)):
            if name.startswith(prefix) and name.endswith("].price"):
                amount = name[: -len("price")] + "amount"
                if amount not in header:
                    raise DataError(path, 1, amount, "missing column")
                cols.append((side, j, header.index(amount)))
    if not cols:
        raise DataError(path, 1, None, "no asks[i].price / bids[i].price columns")
    depth = max(sum(1 for c in cols if c[0] == 1), sum(1 for c in cols if c[0] == -1))
    n_rows = back = 0
    last_exch = None
    symbols: Counter = Counter()
    for row, rec in enumerate(reader, 2):
        if _blank(rec):
            continue
        if len(rec) != len(header):
            raise DataError(path, row, None, f"expected {len(header)} columns, got {len(rec)}")
        symbols[rec[1]] += 1
        exch = _ts(rec[2], path, row, "timestamp")
        local = _ts(rec[3], path, row, "local_timestamp")
        if last_exch is not None and exch < last_exch:
            back += 1
            exch = last_exch
        last_exch = exch
        n_rows += 1
        offsets.append(local - exch)
        levels = []
        for side, jp, jq in cols:
            if rec[jp] == "" and rec[jq] == "":
                continue
            p = _grid(px, rec[jp], path, row, header[jp])
            q = _grid(lot, rec[jq], path, row, header[jq])
            if q > 0:
                levels.append((side, p, q))
        levels.sort(key=lambda t: (-t[0], -t[0] * t[1]))  # bids best first, then asks
        flags = _SYN | _SNAP
        b.add(exch, local, EventKind.SNAPSHOT_BEGIN, 0, 0, 0, flags, _PRIO_BOOK, row)
        b.add(exch, local, EventKind.CLEAR, 0, 0, 0, flags, _PRIO_BOOK, row)
        b.add_levels(exch, local, levels, _SNAP, _SNAP, _PRIO_BOOK, row)
        b.add(exch, local, EventKind.SNAPSHOT_END, 0, 0, 0, flags | _LAST, _PRIO_BOOK, row)
    if n_rows == 0:
        raise DataError(path, None, None, "no book rows")
    return {
        "book_rows": n_rows,
        "book_messages": n_rows,
        "snapshots": n_rows,
        "book_ts_backwards": back,
        "symbols": dict(symbols),
        "levels": depth,
    }


def _read_trades(path, reader, b: EventBuilder, px, lot, offsets) -> dict[str, Any]:
    n = 0
    sides: Counter = Counter()
    for row, rec in enumerate(reader, 2):
        if _blank(rec):
            continue
        if len(rec) != len(_TRADE_COLS):
            raise DataError(path, row, None, f"expected {len(_TRADE_COLS)} columns, got {len(rec)}")
        _, _, ts_s, lts_s, _, side_s, price_s, amount_s = rec
        exch = _ts(ts_s, path, row, "timestamp")
        local = _ts(lts_s, path, row, "local_timestamp")
        aggressor = side_s.strip().lower()
        resting = _AGGRESSOR_TO_RESTING.get(aggressor)
        if resting is None:
            raise DataError(path, row, "side", f"{side_s!r} is not buy/sell/unknown")
        sides[aggressor] += 1
        if offsets is not None:
            offsets.append(local - exch)
        b.add(
            exch,
            local,
            EventKind.TRADE,
            resting,
            _grid(px, price_s, path, row, "price"),
            _grid(lot, amount_s, path, row, "amount"),
            _LAST,
            _PRIO_TRADE,
            row,
        )
        n += 1
    return {"trades": n, "trade_aggressor_sides": dict(sides)}


def read_tardis(
    book_csv: str | os.PathLike[str] | None,
    trades_csv: str | os.PathLike[str] | None = None,
    *,
    tick_size: float,
    lot_size: float,
) -> IngestResult:
    """Read Tardis.dev CSV files (a book file and/or a trades file) into canonical L2 events.

    See the module docstring for the mapping and the clocks.

    Parameters
    ----------
    book_csv : str or os.PathLike or None
        ``incremental_book_L2`` or ``book_snapshot_N`` CSV (detected from the header), plain
        or gzip. None reads the trades only.
    trades_csv : str or os.PathLike or None
        ``trades`` CSV of the same instrument.
    tick_size, lot_size : float
        Price tick and quantity lot in the vendor's units (e.g. Deribit BTC-PERPETUAL: 0.5
        USD and 10 USD contracts).

    Returns
    -------
    IngestResult
        ``events``: EVENT_DTYPE sorted by ``exch_ts`` (int64 ns). ``meta``: source
        ``tardis``, exchange, symbol, data_types, date, levels (None for incremental, N for
        snapshots), clocks 2, tick_size, lot_size, local_ts_unit ``us``,
        suggested_feed_offset_ns, files. ``report``: book_rows, book_messages, snapshots,
        book_ts_backwards, trades, trade_aggressor_sides, clock_offset_ns, crossed_states,
        validation (:func:`mmsim.data.binance.l2_stream_report`).

    Raises
    ------
    DataError
        Missing or empty file, unknown header, wrong column count, non-integer timestamp,
        bad ``is_snapshot``/``side``, price or amount not a number or off the grid (file,
        1-based line, column).
    ValueError
        If neither file is given, or a step is not positive.
    """
    if book_csv is None and trades_csv is None:
        raise ValueError("give book_csv and/or trades_csv")
    px = DecimalGrid(tick_size)
    lot = DecimalGrid(lot_size)
    b = EventBuilder()
    offsets: list[int] = []
    report: dict[str, Any] = {}
    files = []
    data_types = []
    exchange = symbol = None
    levels = None
    if book_csv is not None:
        path = Path(book_csv)
        header, reader, info = _open_csv(path)
        files.append(info)
        if header[:5] == _BOOK_COLS[:5]:
            _check_header(path, header, _BOOK_COLS)
            report.update(_read_incremental(path, reader, b, px, lot, offsets))
            data_types.append("incremental_book_L2")
        elif len(header) > 4 and header[4].startswith(("asks[", "bids[")):
            _check_header(path, header, _BOOK_COLS[:4])
            report.update(_read_snapshots(path, header, reader, b, px, lot, offsets))
            levels = report.pop("levels")
            data_types.append(f"book_snapshot_{levels}")
        else:
            raise DataError(path, 1, None, "not a Tardis incremental_book_L2 or book_snapshot file")
        syms = report.pop("symbols")
        symbol = max(syms, key=syms.get) if syms else None
    if trades_csv is not None:
        path = Path(trades_csv)
        header, reader, info = _open_csv(path)
        files.append(info)
        _check_header(path, header, _TRADE_COLS)
        # the clock offset comes from the book messages, or from the trades without a book
        report.update(_read_trades(path, reader, b, px, lot, offsets if book_csv is None else None))
        data_types.append("trades")
    ev = b.finish()
    if len(ev) == 0:
        raise DataError(Path(book_csv or trades_csv), None, None, "no records")
    # exchange and symbol from the first data row of the first file
    first = Path(book_csv if book_csv is not None else trades_csv)
    _, rd, _ = _open_csv(first)
    rec = next((r for r in rd if not _blank(r)), None)
    if rec:
        exchange = rec[0]
        symbol = symbol or rec[1]
    report.setdefault("trades", 0)
    feed_offset = finish_l2_report(ev, offsets, report)
    date = np.datetime64(int(ev["exch_ts"][0]), "ns").astype("datetime64[D]").item()
    meta: dict[str, Any] = {
        "source": "tardis",
        "exchange": exchange,
        "symbol": symbol,
        "data_types": data_types,
        "date": date.isoformat(),
        "levels": levels,
        "clocks": 2,
        "tick_size": float(tick_size),
        "lot_size": float(lot_size),
        "multiplier": None,
        "local_ts_unit": "us",
        "suggested_feed_offset_ns": feed_offset,
        "files": files,
    }
    return IngestResult(events=ev, meta=meta, report=report)
