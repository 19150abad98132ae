"""LOBSTER (NASDAQ TotalView-ITCH reconstructions) to canonical events.

Input files
-----------
Message file ``TICKER_YYYY-MM-DD_START_END_message_N.csv``: no header, one row per message,
six columns ``time, type, order_id, size, price, direction``:

- ``time``: seconds after midnight, local exchange time (``tz``, default New York), with up
  to 9 decimals. It is converted *exactly* to int64 UNIX ns: the integer and the fractional
  parts are parsed as separate strings (no float rounding). The UTC offset is the one in
  force at noon local time of the date (trading hours never straddle a DST switch). A few
  vendor rows carry float-print noise beyond 9 decimals (AAPL level 50, row 39483:
  ``35821.088778456004``); they are rounded to the nearest ns and counted in
  ``report["time_beyond_ns"]``.
- ``type``: 1 new limit order, 2 partial cancel, 3 full delete, 4 visible execution,
  5 hidden execution, 6 cross trade, 7 trading-status change.
- ``price``: USD x 10,000; the tick is $0.01, so ``price_tick = price // 100``.
- ``direction``: +1 buy (bid) order, -1 sell (ask) order; for executions the side of the
  *resting* order (an execution of a -1 order is a buyer-initiated trade).

The date and the symbol come from the file name (``TICKER_YYYY-MM-DD_...``) unless ``date``
is given; ``N`` (the number of levels) from the ``_message_N`` suffix. LOBSTER has one clock:
``local_ts == exch_ts`` (``meta["clocks"] == 1``).

Optional orderbook file ``..._orderbook_N.csv``: no header, ``4 N`` columns
``ask_px_1, ask_sz_1, bid_px_1, bid_sz_1, ask_px_2, ...``; row ``k`` is the book after
message ``k``; empty levels are ``+-9999999999`` with size 0. It must have as many rows as
the message file.

Both files are read as UTF-8: a byte-order mark at the start and blank lines at the end are
ignored (a blank line elsewhere is a row with the wrong column count).

Mapping (one message -> one record, plus synthetic corrections)
--------------------------------------------------------------
====  ===========  ========================================================================
type  kind         details
====  ===========  ========================================================================
1     ADD          ``side = direction``, ``order_id`` as given.
2     CANCEL       reduce by ``size``.
3     DELETE       remove the order.
4     EXECUTE      ``side = direction`` (the resting order's side).
5     TRADE        hidden execution, ``order_id = 0``, ``side = direction`` (the hidden
                   resting order's side), no book effect. Prices off the $0.01 grid
                   (midpoint executions) are rounded *up* for a bid-side trade and *down*
                   for an ask-side trade and flagged ``SUBTICK``, so that the whole-tick
                   tests ``trade_tick <= our_bid`` / ``>= our_ask`` stay exact.
6     TRADE        auction cross, flag ``CROSS``, ``side = 0`` (no resting side),
                   ``order_id = 0``; an off-grid price is rounded to the nearest tick
                   (``SUBTICK``).
7     STATUS       ``value`` = the price column: -1 halt, 0 quoting resumes, 1 trading
                   resumes; ``price_tick = qty = 0``, ``side = 0``.
====  ===========  ========================================================================

Types 2, 3 and 4 that refer to an id never added earlier in this file (orders resting before
the file starts, or placed outside the top ``N`` levels) are emitted with ``order_id = 0``:
they reduce the anonymous volume at that price (clamped at 0), and are counted in
``report["unknown_order_refs"]``. The last record of every message carries ``EventFlag.LAST``.

Orderbook corrections
---------------------
With an orderbook file, a shadow :class:`~mmsim.book.reference.ReferenceL3Book` replays the
records; after message ``k`` its top ``N`` is made equal to row ``k`` by appending records
flagged ``SYNTHETIC`` (same timestamps, after the message's records; ``LAST`` moves to the
last of them). On each side the *visible range* is every price at least as good as the
file's ``N``-th level on that side, or the whole side if the file shows fewer than ``N``
levels there. Then:

- a book level in the visible range that is absent from the file is removed;
- a file level whose book quantity is smaller gets an ``ADD`` of anonymous volume
  (``order_id = 0``) for the difference: volume that rested before the file started or was
  below the top ``N``; it queues ahead of any order of ours;
- a level whose book quantity is larger is reduced: first its anonymous volume
  (``CANCEL`` with ``order_id = 0``), then its newest known orders (``CANCEL``/``DELETE``
  with their ids) - orders that left silently while outside the top ``N``.

This is how orders resting before 09:30 seed the book and how a deeper level that moves into
view in a level-``N`` file gets its volume. ``report["replay_corrections"]`` counts each kind
of synthetic record. Without an orderbook file (e.g. AAPL level 50), nothing is corrected.

Orderbook check
---------------
The replay follows the file *wherever* it differs from the messages, so the corrections
alone cannot tell a legitimate correction from a file that contradicts its messages.
``report["orderbook_check"]`` (:func:`~mmsim.data.validate.check_lobster_orderbook`) does:
it rebuilds the price levels from the messages alone and, row by row, sorts every
difference into

- ``corrections_by_kind["before_open"]``: row 1, volume of orders resting before the first
  message (never added by the messages);
- ``corrections_by_kind["into_view"]``: a price beyond the depth the previous row covered
  (a deeper level coming into view at the edge of a level-``N`` file);
- a *contradiction*: a price the previous row covered, where the messages fully explain the
  book, and the file still says otherwise (a price or a size of a level).

``contradictions`` counts the rows with one, ``first_contradiction_rows`` lists the first
1-based line numbers of the orderbook file and ``first_contradictions`` what differs there.
The real AMZN 2012-06-21 level-1 day and the AAPL level-10 sample have 0 contradictions; a
one-cent price change or a one-share size change in one row of the AMZN file is reported at
that row (and the replay still follows the file there).

Errors
------
:class:`~mmsim.data.errors.DataError` names the file, the 1-based row and the field for: a
missing file (``"no such file"``, with the path as given) or an empty one (row None), a
message file name that does not carry the date (``TICKER_YYYY-MM-DD_...``; field
``"date"``, unless ``date`` is given), a wrong column count, a non-numeric value, a malformed
time, an unknown type, a direction other than +-1, time going backwards, ``size <= 0`` or
``order_id <= 0`` for types 1-4, a price of types 1-4 that is not a positive multiple of
$0.01, a non-positive trade price, a type-7 price outside {-1, 0, 1}, an orderbook price off
the grid, and an orderbook file whose row count differs from the message file's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from mmsim.book.reference import ReferenceL3Book
from mmsim.data.errors import DataError
from mmsim.data.lobster_csv import (
    EMPTY_LEVEL_PRICE,
    PRICE_PER_TICK,
    RowChecks,
    check_file,
    int_column,
    parse_orderbook,
    read_lines,
    read_lobster_orderbook,
    split_columns,
)
from mmsim.data.store import IngestResult
from mmsim.data.validate import check_lobster_orderbook, validate_events
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventFlag, EventKind

__all__ = [
    "EMPTY_LEVEL_PRICE",
    "MESSAGE_COLUMNS",
    "NAME_PATTERN",
    "PRICE_PER_TICK",
    "read_lobster",
    "read_lobster_orderbook",
]

MESSAGE_COLUMNS = ("time", "type", "order_id", "size", "price", "direction")

#: The LOBSTER message file name pattern (the date and the symbol are read from it).
NAME_PATTERN = "TICKER_YYYY-MM-DD_START_END_message_LEVEL.csv"
NAME_EXAMPLE = "AMZN_2012-06-21_34200000_57600000_message_1.csv"
_NAME_RE = re.compile(r"^(?P<symbol>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_")
_LEVEL_RE = re.compile(r"_(?:message|orderbook)_(?P<levels>\d+)\.csv$")
_TIME_RE = r"^\d+(\.\d+)?$"

# LOBSTER type -> EventKind (index 0 unused)
_KIND_OF_TYPE = np.array(
    [
        0,
        EventKind.ADD,
        EventKind.CANCEL,
        EventKind.DELETE,
        EventKind.EXECUTE,
        EventKind.TRADE,
        EventKind.TRADE,
        EventKind.STATUS,
    ],
    dtype=np.uint8,
)


# ---------------------------------------------------------------------------- parsing
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _midnight_utc_ns(date: dt.date, tz: str) -> int:
    """UNIX ns of local midnight of ``date`` using the UTC offset in force at local noon."""
    offset = dt.datetime.combine(date, dt.time(12), tzinfo=ZoneInfo(tz)).utcoffset()
    assert offset is not None
    days = (date - dt.date(1970, 1, 1)).days
    return (days * 86_400 - int(offset.total_seconds())) * 1_000_000_000


def _parse_time(col: pl.Series, checks: RowChecks) -> tuple[np.ndarray, int]:
    """Parse ``seconds.fraction`` strings to int64 ns after midnight, exactly.

    Returns the ns array and the number of values with more than 9 decimals (rounded to
    the nearest ns, half up).
    """
    ok = col.str.contains(_TIME_RE).fill_null(False)
    checks.add(
        (~ok & col.is_not_null()).to_numpy(),
        "time",
        lambda i: f"{col[i]!r} is not a time in seconds after midnight",
    )
    secs = col.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False).fill_null(0)
    frac = col.str.extract(r"\.(\d+)$", 1).fill_null("")
    long = frac.str.len_chars() > 9
    n_long = int(long.sum())
    frac9 = frac.str.slice(0, 9).str.pad_end(9, "0").cast(pl.Int64, strict=False).fill_null(0)
    round_up = (long & (frac.str.slice(9, 1) >= "5")).cast(pl.Int64)
    ns = secs.to_numpy() * 1_000_000_000 + frac9.to_numpy() + round_up.to_numpy()
    return ns, n_long


def _levels_from_name(path: str | os.PathLike[str]) -> int | None:
    m = _LEVEL_RE.search(Path(path).name)
    return int(m.group("levels")) if m else None


def _parse_messages(
    path: str | os.PathLike[str], lines: pl.Series
) -> tuple[dict[str, np.ndarray], int]:
    checks = RowChecks(path)
    cols = split_columns(lines, list(MESSAGE_COLUMNS), checks)
    t_ns, n_long = _parse_time(cols["time"], checks)
    typ = int_column(cols["type"], "type", checks, fill=1)
    oid = int_column(cols["order_id"], "order_id", checks, fill=1)
    size = int_column(cols["size"], "size", checks, fill=1)
    price = int_column(cols["price"], "price", checks, fill=PRICE_PER_TICK)
    direction = int_column(cols["direction"], "direction", checks, fill=1)

    checks.add((typ < 1) | (typ > 7), "type", lambda i: f"unknown message type {typ[i]}")
    checks.add(
        (direction != 1) & (direction != -1),
        "direction",
        lambda i: f"direction {direction[i]} is not +1 or -1",
    )
    back = np.zeros(len(t_ns), dtype=bool)
    back[1:] = np.diff(t_ns) < 0
    checks.add(back, "time", lambda i: f"goes backwards: {cols['time'][i]} < {cols['time'][i - 1]}")
    book_type = (typ >= 1) & (typ <= 4)
    checks.add(book_type & (size <= 0), "size", lambda i: f"size {size[i]} <= 0 for type {typ[i]}")
    checks.add(
        book_type & (oid <= 0), "order_id", lambda i: f"order id {oid[i]} <= 0 for type {typ[i]}"
    )
    checks.add(
        book_type & ((price <= 0) | (price % PRICE_PER_TICK != 0)),
        "price",
        lambda i: f"price {price[i]} is not a positive multiple of $0.01 (100)",
    )
    checks.add(
        ((typ == 5) | (typ == 6)) & (price <= 0),
        "price",
        lambda i: f"trade price {price[i]} <= 0",
    )
    checks.add(
        (typ == 7) & ((price < -1) | (price > 1)),
        "price",
        lambda i: f"status value {price[i]} is not -1, 0 or 1",
    )
    checks.raise_first()
    return {
        "t_ns": t_ns,
        "type": typ,
        "order_id": oid,
        "size": size,
        "price": price,
        "direction": direction,
    }, n_long


# ---------------------------------------------------------------------------- mapping
def _base_records(msg: dict[str, np.ndarray], midnight_ns: int) -> tuple[np.ndarray, int, int]:
    """One canonical record per message. Returns (events, unknown refs, subtick trades)."""
    typ, oid, price, direction = msg["type"], msg["order_id"], msg["price"], msg["direction"]
    n = len(typ)
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ts = msg["t_ns"] + midnight_ns
    ev["exch_ts"] = ts
    ev["local_ts"] = ts
    ev["kind"] = _KIND_OF_TYPE[typ]
    ev["qty"] = np.where(typ == 7, 0, msg["size"])
    ev["side"] = np.where(typ <= 5, direction, 0)
    flags = np.full(n, EventFlag.LAST, dtype=np.uint16)

    tick = np.zeros(n, dtype=np.int64)
    visible = typ <= 4
    tick[visible] = price[visible] // PRICE_PER_TICK
    hidden = typ == 5
    up = -(-price // PRICE_PER_TICK)
    down = price // PRICE_PER_TICK
    tick[hidden] = np.where(direction[hidden] > 0, up[hidden], down[hidden])
    cross = typ == 6
    tick[cross] = (price[cross] + PRICE_PER_TICK // 2) // PRICE_PER_TICK
    off = (hidden | cross) & (price % PRICE_PER_TICK != 0)
    flags[off] |= EventFlag.SUBTICK
    flags[cross] |= EventFlag.CROSS
    ev["price_tick"] = tick
    ev["value"] = np.where(typ == 7, price, 0).astype(np.float64)

    # ids of types 2-4 never added earlier in the file -> anonymous volume (order_id 0)
    out_id = np.where(visible, oid, 0)
    rows = np.arange(n)
    add_rows = np.flatnonzero(typ == 1)
    uids, first = np.unique(oid[add_rows], return_index=True)
    first_row = add_rows[first]
    ref = np.flatnonzero((typ >= 2) & (typ <= 4))
    unknown = 0
    if ref.size:
        if uids.size:
            pos = np.minimum(np.searchsorted(uids, oid[ref]), uids.size - 1)
            known = (uids[pos] == oid[ref]) & (first_row[pos] < rows[ref])
        else:
            known = np.zeros(ref.size, dtype=bool)
        out_id[ref[~known]] = 0
        unknown = int(np.count_nonzero(~known))
    ev["order_id"] = out_id
    ev["flags"] = flags
    return ev, unknown, int(np.count_nonzero(off))


class _Corrector:
    """Shadow book that emits synthetic records making its top N equal the orderbook file."""

    def __init__(self, levels: int) -> None:
        self.book = ReferenceL3Book()
        self.levels = levels
        self.out: list[tuple[int, int, int, int, int, int]] = []  # k, kind, side, px, qty, id
        self.k = 0
        self.counts = {
            "anon_add": 0,
            "anon_add_qty": 0,
            "anon_reduce": 0,
            "anon_reduce_qty": 0,
            "order_cancel": 0,
            "order_delete": 0,
            "order_reduce_qty": 0,
            "levels_removed": 0,
            "messages_corrected": 0,
        }

    def _emit(self, kind: int, side: int, price: int, qty: int, order_id: int) -> None:
        self.book.apply_fields(kind, side, price, qty, order_id)
        self.out.append((self.k, kind, side, price, qty, order_id))

    def _reduce(self, side: int, price: int, amount: int) -> None:
        c = self.counts
        take = min(self.book.anon.get((side, price), 0), amount)
        if take > 0:
            self._emit(EventKind.CANCEL, side, price, take, 0)
            c["anon_reduce"] += 1
            c["anon_reduce_qty"] += take
            amount -= take
        if amount <= 0:
            return
        for oid in reversed(self.book.level_orders(side, price)):
            qty = self.book.orders[oid][2]
            if qty <= amount:
                self._emit(EventKind.DELETE, side, price, qty, oid)
                c["order_delete"] += 1
                c["order_reduce_qty"] += qty
                amount -= qty
            else:
                self._emit(EventKind.CANCEL, side, price, amount, oid)
                c["order_cancel"] += 1
                c["order_reduce_qty"] += amount
                amount = 0
            if amount <= 0:
                return

    def sync_side(self, side: int, file_levels: list[tuple[int, int]]) -> None:
        limit = file_levels[-1][0] if len(file_levels) >= self.levels else None
        book_levels = self.book.levels_from(side, limit)
        if book_levels == file_levels:
            return
        wanted = dict(file_levels)
        for price, qty in book_levels:
            if price not in wanted:
                self._reduce(side, price, qty)
                self.counts["levels_removed"] += 1
        for price, qty in file_levels:
            have = self.book.level_qty(side, price)
            if have < qty:
                self._emit(EventKind.ADD, side, price, qty - have, 0)
                self.counts["anon_add"] += 1
                self.counts["anon_add_qty"] += qty - have
            elif have > qty:
                self._reduce(side, price, have - qty)

    def run(self, base: np.ndarray, orderbook: np.ndarray) -> None:
        cols = [base[c].tolist() for c in ("kind", "side", "price_tick", "qty", "order_id")]
        ask_px = orderbook[:, 0::4].tolist()
        ask_sz = orderbook[:, 1::4].tolist()
        bid_px = orderbook[:, 2::4].tolist()
        bid_sz = orderbook[:, 3::4].tolist()
        apply = self.book.apply_fields
        empty = EMPTY_LEVEL_PRICE
        tick = PRICE_PER_TICK
        for k, (kind, side, px, qty, oid) in enumerate(zip(*cols, strict=True)):
            self.k = k
            apply(kind, side, px, qty, oid)
            n_before = len(self.out)
            bids = [
                (p // tick, q)
                for p, q in zip(bid_px[k], bid_sz[k], strict=True)
                if q > 0 and abs(p) != empty
            ]
            asks = [
                (p // tick, q)
                for p, q in zip(ask_px[k], ask_sz[k], strict=True)
                if q > 0 and abs(p) != empty
            ]
            self.sync_side(1, bids)
            self.sync_side(-1, asks)
            if len(self.out) > n_before:
                self.counts["messages_corrected"] += 1

    def merged(self, base: np.ndarray) -> np.ndarray:
        """Interleave the corrections after their message's record; move LAST."""
        if not self.out:
            return base
        n = len(base)
        corr = np.array(self.out, dtype=np.int64)
        ck = corr[:, 0]
        per_msg = np.bincount(ck, minlength=n)
        base_pos = np.arange(n) + np.concatenate(([0], np.cumsum(per_msg)[:-1]))
        group_start = np.concatenate(([0], np.cumsum(per_msg)))[ck]
        corr_pos = base_pos[ck] + 1 + (np.arange(len(corr)) - group_start)
        out = np.zeros(n + len(corr), dtype=EVENT_DTYPE)
        out[base_pos] = base
        c = out[corr_pos]
        c["exch_ts"] = base["exch_ts"][ck]
        c["local_ts"] = base["local_ts"][ck]
        c["kind"] = corr[:, 1]
        c["side"] = corr[:, 2]
        c["price_tick"] = corr[:, 3]
        c["qty"] = corr[:, 4]
        c["order_id"] = corr[:, 5]
        flags = np.full(len(corr), EventFlag.SYNTHETIC, dtype=np.uint16)
        last_in_group = np.ones(len(corr), dtype=bool)
        last_in_group[:-1] = ck[1:] != ck[:-1]
        flags[last_in_group] |= EventFlag.LAST
        c["flags"] = flags
        out[corr_pos] = c
        corrected = np.flatnonzero(per_msg > 0)
        out["flags"][base_pos[corrected]] &= np.uint16(~EventFlag.LAST & 0xFFFF)
        return out


# ---------------------------------------------------------------------------- public
def _date_from_name(message_path: str | os.PathLike[str], date: str | dt.date | None) -> dt.date:
    """The trading date: ``date`` if given, else the ``TICKER_YYYY-MM-DD_`` file name prefix."""
    if date is None:
        m = _NAME_RE.match(Path(message_path).name)
        if m is None:
            raise DataError(
                message_path,
                None,
                "date",
                "the file name does not carry the trading date; LOBSTER message files are named "
                f"{NAME_PATTERN} (e.g. {NAME_EXAMPLE}). Experiments (data.path) and "
                "`mmsim ingest lobster` take the date from the file name only, so rename the "
                "file (and its orderbook file) to that pattern; from Python, "
                "mmsim.data.read_lobster(path, date='YYYY-MM-DD') also works",
            )
        date = m.group("date")
        where = "in the file name"
    else:
        where = "given"
    if isinstance(date, dt.datetime):
        return date.date()
    if isinstance(date, dt.date):
        return date
    try:
        return dt.date.fromisoformat(str(date))
    except ValueError as exc:
        raise DataError(
            message_path, None, "date", f"bad date {date!r} {where}: expected YYYY-MM-DD"
        ) from exc


def read_lobster(
    message_path: str | os.PathLike[str],
    orderbook_path: str | os.PathLike[str] | None = None,
    *,
    date: str | dt.date | None = None,
    tz: str = "America/New_York",
) -> IngestResult:
    """Read a LOBSTER message file (and optionally its orderbook file) into canonical events.

    See the module docstring for the exact mapping, the orderbook corrections, the
    orderbook check and the errors. Both files may start with a UTF-8 byte-order mark and
    end with blank lines.

    Parameters
    ----------
    message_path : str or os.PathLike
        ``TICKER_YYYY-MM-DD_START_END_message_N.csv``.
    orderbook_path : str or os.PathLike or None
        The matching ``..._orderbook_N.csv``; when given, synthetic records make the book's
        top ``N`` equal the file after every message, and the file is checked against the
        messages (``report["orderbook_check"]``).
    date : str (``YYYY-MM-DD``) or datetime.date or None
        Trading date; default: parsed from the message file name.
    tz : str, default "America/New_York"
        IANA zone of the ``time`` column.

    Returns
    -------
    IngestResult
        ``events``: EVENT_DTYPE, one record per message plus synthetic corrections, prices
        in ticks of $0.01, quantities in shares, ``exch_ts == local_ts`` int64 UNIX ns.
        ``meta``: source, symbol, date, tz, levels, clocks=1, tick_size=0.01, lot_size=1,
        multiplier=1, files (name, sha256, bytes). ``report`` (JSON-able):

        ``n_messages``, ``message_types`` (``{"1": count, ...}``), ``unknown_order_refs``,
        ``subtick_trades``, ``time_beyond_ns``
            See the module docstring.
        ``replay_corrections``
            Counts of the synthetic records that make the replay follow the orderbook file
            (``anon_add``, ``anon_add_qty``, ``anon_reduce``, ``anon_reduce_qty``,
            ``order_cancel``, ``order_delete``, ``order_reduce_qty``, ``levels_removed``,
            ``messages_corrected``); None without an orderbook file. They include both the
            legitimate corrections and the contradictions: they say what the replay did,
            not whether the file is right.
        ``orderbook_check``
            :func:`~mmsim.data.validate.check_lobster_orderbook` of the messages against the
            orderbook file (None without one): ``rows_checked``, ``levels``,
            ``contradictions`` (rows where the file contradicts the messages inside the
            levels it covers; 0 on a consistent file), ``first_contradiction_rows``
            (1-based orderbook line numbers), ``first_contradictions`` (row, field, price,
            file_size, messages_size) and ``corrections_by_kind`` (``before_open``,
            ``into_view``: the legitimate corrections).
        ``validation``
            :func:`~mmsim.data.validate.validate_events` of the events.

    Raises
    ------
    DataError
        A missing message or orderbook file (``"no such file"``, with the path as given), a
        message file name without the ``TICKER_YYYY-MM-DD_`` prefix when ``date`` is None
        (field ``"date"``), a bad date, and any malformed input (file, 1-based row and
        field named; see the module docstring).
    """
    check_file(message_path, "message file")
    if orderbook_path is not None:
        check_file(orderbook_path, "orderbook file")
    name = Path(message_path).name
    m = _NAME_RE.match(name)
    symbol = m.group("symbol") if m else None
    date = _date_from_name(message_path, date)

    lines, raw = read_lines(message_path, "message file")
    msg, n_long = _parse_messages(message_path, lines)
    n = len(msg["type"])
    levels = _levels_from_name(message_path)
    files = [{"name": name, "sha256": _sha256(raw), "bytes": len(raw)}]

    orderbook = None
    if orderbook_path is not None:
        ob_lines, ob_raw = read_lines(orderbook_path, "orderbook file")
        if levels is None:
            levels = _levels_from_name(orderbook_path)
        orderbook = parse_orderbook(orderbook_path, ob_lines, levels)
        if levels is None:
            levels = orderbook.shape[1] // 4
        if len(orderbook) != n:
            raise DataError(
                orderbook_path,
                None,
                None,
                f"has {len(orderbook)} rows but the message file has {n}",
            )
        files.append(
            {"name": Path(orderbook_path).name, "sha256": _sha256(ob_raw), "bytes": len(ob_raw)}
        )

    base, unknown, subtick = _base_records(msg, _midnight_utc_ns(date, tz))
    corrections: dict[str, int] | None = None
    check: dict[str, Any] | None = None
    events = base
    if orderbook is not None:
        check = check_lobster_orderbook(base, orderbook, int(levels))
        corrector = _Corrector(int(levels))
        corrector.run(base, orderbook)
        events = corrector.merged(base)
        corrections = corrector.counts

    types, counts = np.unique(msg["type"], return_counts=True)
    report: dict[str, Any] = {
        "n_messages": n,
        "message_types": {str(int(t)): int(c) for t, c in zip(types, counts, strict=True)},
        "unknown_order_refs": unknown,
        "subtick_trades": subtick,
        "time_beyond_ns": n_long,
        "replay_corrections": corrections,
        "orderbook_check": check,
        "validation": validate_events(events, message_path),
    }
    meta: dict[str, Any] = {
        "source": "lobster",
        "symbol": symbol,
        "date": date.isoformat(),
        "tz": tz,
        "levels": levels,
        "clocks": 1,
        "tick_size": 0.01,
        "lot_size": 1,
        "multiplier": 1,
        "currency": "USD",
        "files": files,
    }
    return IngestResult(events=events, meta=meta, report=report)
