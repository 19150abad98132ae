"""Bybit order-book dumps (``orderbook.{depth}`` JSON lines, e.g. ``ob500``) and Bybit public
trades CSV to canonical L2 events.

Files (plain, gzip or a one-member zip, as Bybit's history downloads come):

order book (``YYYY-MM-DD_SYMBOL_ob500.data``)
    One JSON message per line, as Bybit's v5 ``orderbook.{depth}.{symbol}`` stream sends it:
    ``{"topic", "type": "snapshot"|"delta", "ts": ms, "cts": ms, "data": {"s": symbol,
    "b": [[price, size], ...], "a": [[price, size], ...], "u": update id, "seq": ...}}``.
    ``b``/``a`` hold *absolute* level sizes (``"0"`` deletes the level); a snapshot is the
    whole book of ``depth`` levels a side; ``u`` grows by one per message, and a snapshot (or
    ``u == 1``, the service restarted) resets the book.
trades, derivatives (``SYMBOL2024-12-01.csv``)
    ``timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,
    foreignNotional``: ``timestamp`` in seconds with a decimal fraction, ``side`` the
    aggressor (``Buy``/``Sell``).
trades, spot (``SYMBOL_2024-12-01.csv``)
    ``id,timestamp,price,volume,side[,rpi]``: ``timestamp`` in ms, ``side`` the aggressor.

Mapping
-------
- A snapshot message: ``SNAPSHOT_BEGIN``, ``CLEAR`` (side 0), one ``LEVEL_SET`` per level
  (flag ``SNAPSHOT``), ``SNAPSHOT_END`` (``LAST``); BEGIN, CLEAR and END flagged
  ``SYNTHETIC | SNAPSHOT``. ``report["snapshots"]`` counts them.
- A delta: one ``LEVEL_SET`` per level (side +1 bid / −1 ask, lots; 0 deletes), ``LAST`` on
  its last record.
- A trade: ``TRADE`` with ``side`` = the resting side (aggressor ``Buy`` → −1, ``Sell`` →
  +1), ``order_id = 0``, flag ``LAST``.
- Update ids: a delta whose ``u`` is not the previous one plus one is a gap. With
  ``gap_policy="error"`` (default) it raises, naming the file, line and field ``u``; with
  ``"apply"`` it is applied and counted (``report["u_gaps"]``), the book possibly wrong until
  the next snapshot.

Prices and quantities: ``price_tick = price / tick_size``, ``qty = size / lot_size``, exactly
from the decimal strings; off-grid values raise :class:`~mmsim.data.errors.DataError`.

Clocks
------
``exch_ts`` is the matching engine's time of the book message (``cts``, ms; ``ts`` when
absent) and of each trade; ``local_ts`` of a book message is Bybit's publish time ``ts`` (ms):
the dumps hold no receive time, so a latency model (``latency.feed_nanos``) should add the
network delay. Trades carry one time only: ``local_ts = exch_ts``. Book messages keep their
file order (``exch_ts`` the running maximum, repairs in ``report["book_ts_backwards"]``);
trades merge by ``exch_ts``, and at equal times a trade comes before the book change that
shows it (as in :mod:`mmsim.data.binance`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.data.binance import (
    DecimalGrid,
    EventBuilder,
    file_info,
    finish_l2_report,
    read_input,
)
from mmsim.data.errors import DataError
from mmsim.data.store import IngestResult
from mmsim.data.text import decode_utf8
from mmsim.enums import EventFlag, EventKind

_PRIO_TRADE, _PRIO_BOOK = 0, 2
_MS = 1_000_000
_LAST = EventFlag.LAST
_SNAP = EventFlag.SNAPSHOT
_SYN = EventFlag.SYNTHETIC
_AGGRESSOR_TO_RESTING = {"buy": -1, "sell": 1}
_DERIV_COLS = ["timestamp", "symbol", "side", "size", "price"]
_SPOT_COLS = ["id", "timestamp", "price", "volume", "side"]
GAP_POLICIES = ("error", "apply")


def _read_bytes(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes: gunzipped, or the one member of a zip (Bybit's downloads)."""
    if path.is_file() and zipfile.is_zipfile(path):
        raw = path.read_bytes()
        info = file_info(path, raw)
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise DataError(path, None, None, f"a zip of one file expected, got {names}")
            return z.read(names[0]), info
    return read_input(path)


def _grid(grid: DecimalGrid, text: Any, path: Path, row: int, name: str) -> int:
    try:
        return grid(text)
    except (ValueError, TypeError) as exc:
        raise DataError(path, row, name, str(exc)) from None


def _ms(v: Any, path: Path, row: int, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise DataError(path, row, name, f"{v!r} is not an integer (ms)")
    return v * _MS


def _levels(raw: Any, side: int, px: DecimalGrid, lot: DecimalGrid, path: Path, row: int,
            name: str) -> list[tuple[int, int, int]]:
    if not isinstance(raw, list):
        raise DataError(path, row, name, "expected a list of [price, size]")
    out = []
    for lv in raw:
        if not (isinstance(lv, list) and len(lv) == 2):
            raise DataError(path, row, name, f"expected [price, size], got {lv!r}")
        out.append((side, _grid(px, lv[0], path, row, f"{name}.price"),
                    _grid(lot, lv[1], path, row, f"{name}.size")))
    return out


def _read_book(path: Path, b: EventBuilder, px: DecimalGrid, lot: DecimalGrid,
               offsets: list[int], gap_policy: str) -> dict[str, Any]:
    raw, info = _read_bytes(path)
    text = decode_utf8(raw, path)
    n_msgs = n_snap = back = gaps = 0
    last_exch: int | None = None
    last_u: int | None = None
    symbols: Counter = Counter()
    topics: Counter = Counter()
    for row, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(path, row, None, f"not JSON ({e.msg})") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("data"), dict):
            raise DataError(path, row, "data", "expected an orderbook message with 'data'")
        kind = msg.get("type")
        if kind not in ("snapshot", "delta"):
            raise DataError(path, row, "type", f"{kind!r} is not snapshot/delta")
        d = msg["data"]
        local = _ms(msg.get("ts"), path, row, "ts")
        exch = _ms(msg["cts"], path, row, "cts") if "cts" in msg else local
        u = d.get("u")
        if isinstance(u, bool) or not isinstance(u, int):
            raise DataError(path, row, "u", f"{u!r} is not an integer update id")
        symbols[str(d.get("s"))] += 1
        topics[str(msg.get("topic"))] += 1
        if last_exch is not None and exch < last_exch:
            back += 1
            exch = last_exch
        last_exch = exch
        offsets.append(local - exch)
        levels = (_levels(d.get("b", []), 1, px, lot, path, row, "b")
                  + _levels(d.get("a", []), -1, px, lot, path, row, "a"))
        if kind == "snapshot" or u == 1:
            n_snap += 1
            live = [lv for lv in levels if lv[2] > 0]
            flags = _SYN | _SNAP
            b.add(exch, local, EventKind.SNAPSHOT_BEGIN, 0, 0, 0, flags, _PRIO_BOOK, row)
            b.add(exch, local, EventKind.CLEAR, 0, 0, 0, flags, _PRIO_BOOK, row)
            b.add_levels(exch, local, live, _SNAP, _SNAP, _PRIO_BOOK, row)
            b.add(exch, local, EventKind.SNAPSHOT_END, 0, 0, 0, flags | _LAST, _PRIO_BOOK, row)
        else:
            if last_u is None:
                raise DataError(path, row, "type", "a delta before the first snapshot")
            if u != last_u + 1:
                if gap_policy == "error":
                    raise DataError(path, row, "u", f"update id {u} after {last_u}: "
                                    f"{u - last_u - 1} message(s) missing (gap_policy "
                                    "'apply' applies the rest)")
                gaps += 1
            n_msgs += 1
            b.add_levels(exch, local, levels, 0, _LAST, _PRIO_BOOK, row)
        last_u = u
    if n_snap == 0:
        raise DataError(path, None, None, "no snapshot message")
    return {"files": [info], "book_messages": n_msgs, "snapshots": n_snap,
            "book_ts_backwards": back, "u_gaps": gaps, "symbols": dict(symbols),
            "topics": dict(topics)}


def _seconds_ns(text: str, path: Path, row: int) -> int:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise DataError(path, row, "timestamp", f"{text!r} is not a number (s)") from None
    return int(d * 10**9)


def _read_trades(path: Path, b: EventBuilder, px: DecimalGrid,
                 lot: DecimalGrid) -> dict[str, Any]:
    raw, info = _read_bytes(path)
    text = decode_utf8(raw, path)
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in (next(reader, None) or [])]
    if header[: len(_DERIV_COLS)] == _DERIV_COLS:
        layout = "derivatives"
        cols = {c: header.index(c) for c in ("timestamp", "side", "size", "price")}
    elif header[: len(_SPOT_COLS)] == _SPOT_COLS:
        layout = "spot"
        cols = {"timestamp": 1, "side": 4, "size": 3, "price": 2}
    else:
        raise DataError(path, 1, None, "expected Bybit trades columns "
                        f"{','.join(_DERIV_COLS)},... or {','.join(_SPOT_COLS)}")
    n = 0
    sides: Counter = Counter()
    for row, rec in enumerate(reader, 2):
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            continue
        if len(rec) < len(header):
            raise DataError(path, row, None, f"expected {len(header)} columns, got {len(rec)}")
        ts_s = rec[cols["timestamp"]]
        if layout == "derivatives":
            exch = _seconds_ns(ts_s, path, row)
        else:
            try:
                exch = int(ts_s) * _MS
            except ValueError:
                raise DataError(path, row, "timestamp", f"{ts_s!r} is not an integer (ms)") \
                    from None
        aggressor = rec[cols["side"]].strip().lower()
        resting = _AGGRESSOR_TO_RESTING.get(aggressor)
        if resting is None:
            raise DataError(path, row, "side", f"{rec[cols['side']]!r} is not Buy/Sell")
        sides[aggressor] += 1
        b.add(exch, exch, EventKind.TRADE, resting,
              _grid(px, rec[cols["price"]], path, row, "price"),
              _grid(lot, rec[cols["size"]], path, row, "size"), _LAST, _PRIO_TRADE, row)
        n += 1
    return {"files": [info], "trades": n, "trade_aggressor_sides": dict(sides),
            "trades_layout": layout}


def read_bybit(
    orderbook: str | os.PathLike[str] | None,
    trades: str | os.PathLike[str] | None = None,
    *,
    tick_size: float,
    lot_size: float,
    gap_policy: str = "error",
) -> IngestResult:
    """Read a Bybit order-book dump and/or a Bybit public trades CSV into canonical L2 events.

    See the module docstring for the formats, the mapping and the clocks.

    Parameters
    ----------
    orderbook : str or os.PathLike or None
        ``orderbook.{depth}`` JSON lines (``*_ob500.data``; plain, gzip or zip). None reads the
        trades only.
    trades : str or os.PathLike or None
        Bybit public trades CSV of the same instrument (derivatives or spot layout).
    tick_size, lot_size : float
        Price tick and quantity step in Bybit's units (XRPUSDT linear: 0.0001 and 1).
    gap_policy : {"error", "apply"}
        What an update-id gap does (module docstring).

    Returns
    -------
    IngestResult
        ``events``: EVENT_DTYPE sorted by ``exch_ts`` (int64 ns). ``meta``: source
        ``bybit``, symbol, topic, data_types, date, clocks 2, tick_size, lot_size,
        local_ts_unit ``ms``, suggested_feed_offset_ns, files. ``report``: book_messages,
        snapshots, u_gaps, book_ts_backwards, trades, trade_aggressor_sides, trades_layout,
        clock_offset_ns, crossed_states, validation.

    Raises
    ------
    DataError
        Missing or empty file, not JSON, a message without ``data``, a bad ``type``, ``ts``,
        ``cts`` or ``u``, an update-id gap (``gap_policy="error"``), a delta before any
        snapshot, no snapshot at all, an unknown trades header, a bad trade row, a price
        or size off the grid (file, 1-based line, field).
    ValueError
        If neither file is given, a step is not positive, or ``gap_policy`` is unknown.
    """
    if orderbook is None and trades is None:
        raise ValueError("give orderbook and/or trades")
    if gap_policy not in GAP_POLICIES:
        raise ValueError(f"gap_policy must be one of {', '.join(GAP_POLICIES)}, "
                         f"got {gap_policy!r}")
    px = DecimalGrid(tick_size)
    lot = DecimalGrid(lot_size)
    b = EventBuilder()
    offsets: list[int] = []
    report: dict[str, Any] = {"book_messages": 0, "snapshots": 0, "u_gaps": 0, "trades": 0}
    files: list[dict[str, Any]] = []
    data_types = []
    symbol = topic = None
    if orderbook is not None:
        r = _read_book(Path(orderbook), b, px, lot, offsets, gap_policy)
        files += r.pop("files")
        syms, topics = r.pop("symbols"), r.pop("topics")
        symbol = max(syms, key=syms.get)
        topic = max(topics, key=topics.get)
        report.update(r)
        data_types.append(topic.split(".")[0] + "." + topic.split(".")[1]
                          if topic.count(".") >= 2 else "orderbook")
    if trades is not None:
        r = _read_trades(Path(trades), b, px, lot)
        files += r.pop("files")
        report.update(r)
        data_types.append("trades")
    ev = b.finish()
    if len(ev) == 0:
        raise DataError(Path(orderbook or trades), None, None, "no records")
    feed_offset = finish_l2_report(ev, offsets, report)
    date = np.datetime64(int(ev["exch_ts"][0]), "ns").astype("datetime64[D]").item()
    meta: dict[str, Any] = {
        "source": "bybit",
        "exchange": "bybit",
        "symbol": symbol,
        "topic": topic,
        "data_types": data_types,
        "date": date.isoformat(),
        "clocks": 2,
        "tick_size": float(tick_size),
        "lot_size": float(lot_size),
        "multiplier": None,
        "local_ts_unit": "ms",
        "suggested_feed_offset_ns": feed_offset,
        "files": files,
    }
    return IngestResult(events=ev, meta=meta, report=report)
