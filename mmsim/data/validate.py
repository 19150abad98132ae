"""Checks of canonical event streams, shared by every reader.

:func:`validate_events` raises :class:`~mmsim.data.errors.DataError` on what no engine can
replay (clocks going backwards, non-positive sizes of book-changing events) and counts what
is merely suspicious.

Two checks compare a LOBSTER-derived stream with the vendor's orderbook file:

- :func:`check_lobster_orderbook` asks whether the *file* agrees with the *messages*: it
  rebuilds the price levels from the message records alone and reports the rows where the
  file contradicts them inside the levels it covers, apart from the corrections a level-``N``
  file legitimately needs (volume resting before the first message, deeper levels coming into
  view). :func:`mmsim.data.read_lobster` puts its result in ``report["orderbook_check"]``.
- :func:`check_lobster_reconstruction` asks whether the *replayed stream* (messages plus the
  reader's synthetic corrections) reproduces the file, and runs the first check on the same
  stream. The replay follows the file wherever they differ, so its ``replay_mismatches`` is 0
  for the reader's output by construction; ``contradictions`` is the number to read.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right, insort
from typing import Any

import numpy as np

from mmsim.book.reference import ReferenceL3Book
from mmsim.data.errors import DataError
from mmsim.data.lobster_csv import (
    EMPTY_LEVEL_PRICE,
    PRICE_PER_TICK,
    read_lobster_orderbook,
)
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EVENT_KIND_NAMES, EventFlag, EventKind

_REF_KINDS = (EventKind.CANCEL, EventKind.DELETE, EventKind.EXECUTE, EventKind.MODIFY)


def validate_events(events: np.ndarray, path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Validate a canonical event stream and count its oddities.

    Parameters
    ----------
    events : numpy.ndarray
        Shape ``(n,)``, dtype :data:`~mmsim.dtypes.EVENT_DTYPE`.
    path : str or os.PathLike or None
        The file the events came from; only used to name it in errors.

    Returns
    -------
    dict
        JSON-able counts:

        ``n_events``
            ``n``.
        ``kinds``
            ``{kind name: count}`` of the kinds present.
        ``unknown_order_refs``
            CANCEL/DELETE/EXECUTE/MODIFY records with ``order_id > 0`` whose id was never
            placed by an earlier ADD or MODIFY (a MODIFY of an unknown id acts as an ADD, so
            later references to that id are known).
        ``crossed_book_events``
            Records with the ``LAST`` flag after which the book replayed through
            :class:`~mmsim.book.reference.ReferenceL3Book` has best bid >= best ask.
        ``nonpositive_qty``
            DELETE, MODIFY or TRADE records with ``qty <= 0`` (allowed, counted).
        ``first_exch_ts``, ``last_exch_ts``, ``first_local_ts``, ``last_local_ts``
            int64 ns, or None if ``n == 0``.

    Raises
    ------
    DataError
        With ``row`` = record index + 1 and ``field`` ``"exch_ts"``/``"local_ts"`` if a clock
        goes backwards, or ``"qty"`` if an ADD/CANCEL/EXECUTE has ``qty <= 0``.
    TypeError
        If ``events`` does not have ``EVENT_DTYPE``.

    Notes
    -----
    The crossed-book check is a Python loop (about a microsecond or two per record).
    """
    if events.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE events, got {events.dtype}")
    n = len(events)
    for name in ("exch_ts", "local_ts"):
        back = np.flatnonzero(np.diff(events[name]) < 0)
        if back.size:
            i = int(back[0]) + 1
            raise DataError(
                path,
                i + 1,
                name,
                f"goes backwards: {int(events[name][i])} < {int(events[name][i - 1])}",
            )
    kind = events["kind"]
    qty = events["qty"]
    must_be_positive = np.isin(kind, (EventKind.ADD, EventKind.CANCEL, EventKind.EXECUTE))
    bad = np.flatnonzero(must_be_positive & (qty <= 0))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            path, i + 1, "qty", f"{EVENT_KIND_NAMES[int(kind[i])]} with qty {int(qty[i])} <= 0"
        )
    nonpositive = int(
        np.count_nonzero(
            np.isin(kind, (EventKind.DELETE, EventKind.MODIFY, EventKind.TRADE)) & (qty <= 0)
        )
    )
    kinds, counts = np.unique(kind, return_counts=True)
    kind_counts = {
        EVENT_KIND_NAMES.get(int(k), str(int(k))): int(c)
        for k, c in zip(kinds, counts, strict=True)
    }

    book = ReferenceL3Book()
    apply = book.apply_fields
    seen: set[int] = set()
    unknown = 0
    crossed = 0
    last = EventFlag.LAST
    add, modify = EventKind.ADD, EventKind.MODIFY
    ref_kinds = set(_REF_KINDS)
    cols = [events[c].tolist() for c in ("kind", "side", "price_tick", "qty", "order_id", "flags")]
    for i, (k, s, p, q, oid, fl) in enumerate(zip(*cols, strict=True)):
        if oid > 0:
            if k == add:
                seen.add(oid)
            elif k in ref_kinds and oid not in seen:
                unknown += 1
                if k == modify:
                    seen.add(oid)
        try:
            apply(k, s, p, q, oid)
        except ValueError as exc:
            raise DataError(path, i + 1, "side", str(exc)) from exc
        if fl & last and book.is_crossed():
            crossed += 1
    ts = {}
    for name in ("exch_ts", "local_ts"):
        ts[f"first_{name}"] = int(events[name][0]) if n else None
        ts[f"last_{name}"] = int(events[name][-1]) if n else None
    return {
        "n_events": n,
        "kinds": kind_counts,
        "unknown_order_refs": unknown,
        "crossed_book_events": crossed,
        "nonpositive_qty": nonpositive,
        **ts,
    }



#: How many contradicting rows (and their details) a report lists.
FIRST_ROWS = 10
#: Kinds of legitimate orderbook corrections (keys of ``corrections_by_kind``).
CORRECTION_KINDS = ("before_open", "into_view")
_NOT_COVERED = object()  # coverage before the first row: nothing is known
_COLUMN = {("ask", "px"): 0, ("ask", "sz"): 1, ("bid", "px"): 2, ("bid", "sz"): 3}


class _LevelBook:
    """Price -> size per side, built from message sizes only (no order identities).

    Sizes may go negative (a message removing more than the level held): that is kept, so
    that the comparison with the file reports it.
    """

    def __init__(self) -> None:
        self.qty: dict[int, dict[int, int]] = {1: {}, -1: {}}
        self.prices: dict[int, list[int]] = {1: [], -1: []}  # ascending

    def set(self, side: int, price: int, qty: int) -> None:
        lv = self.qty[side]
        if qty != 0:
            if price not in lv:
                insort(self.prices[side], price)
            lv[price] = qty
        elif price in lv:
            del lv[price]
            prices = self.prices[side]
            del prices[bisect_left(prices, price)]

    def change(self, side: int, price: int, delta: int) -> None:
        self.set(side, price, self.qty[side].get(price, 0) + delta)

    def levels_from(self, side: int, limit: int | None) -> dict[int, int]:
        """Levels at least as good as ``limit`` (None: the whole side)."""
        prices, lv = self.prices[side], self.qty[side]
        if side == 1:
            sel = prices if limit is None else prices[bisect_left(prices, limit) :]
        else:
            sel = prices if limit is None else prices[: bisect_right(prices, limit)]
        return {p: lv[p] for p in sel}


def _file_side(px: list[int], sz: list[int]) -> dict[int, int]:
    """Occupied levels of one side of one orderbook row: price tick -> size, best first."""
    return {
        p // PRICE_PER_TICK: q
        for p, q in zip(px, sz, strict=True)
        if q > 0 and abs(p) != EMPTY_LEVEL_PRICE
    }


def check_lobster_orderbook(
    events: np.ndarray, orderbook: np.ndarray, levels: int | None = None
) -> dict[str, Any]:
    """Report where a LOBSTER orderbook file contradicts the message file.

    The price levels are rebuilt from the message records alone: an ADD adds its ``qty`` at
    (``side``, ``price_tick``); a CANCEL, DELETE or EXECUTE removes its ``qty`` there
    (LOBSTER gives the price and size of every message, so the level sizes follow without
    knowing the orders); other kinds change nothing. Records flagged ``SYNTHETIC`` (the
    reader's corrections) are ignored; message ``k`` ends at the ``k``-th ``LAST`` record and
    is compared with row ``k`` of the file, on the top ``levels`` levels of each side.

    *Covered* prices of a side at a row are those at least as good as its ``levels``-th
    level, or the whole side if the row shows fewer levels there. A level-``N`` message file
    holds every message that touched the top ``N`` levels, so at a price the previous row
    covered, the messages fully explain the next row. Each (row, side, price) where the file's
    size differs from the rebuilt size, within the row's covered prices, is then one of:

    ``before_open`` (legitimate)
        Row 1: nothing is known before the first message, so the volume the file shows is
        (mostly) orders resting before the open, which the messages never added.
    ``into_view`` (legitimate)
        A price the previous row did not cover: a deeper level coming into view at the edge
        of the covered depth (its volume, or the orders that left it while it was out of
        view, are unknown to the messages).
    contradiction
        A price the previous row covered: the file says something the messages do not.

    Legitimate corrections are applied to the rebuilt levels (they take the file's size);
    contradictions are not, so later rows are still compared with what the messages say and
    a single wrong row is reported once (a level that stays wrong is reported on each row
    while it stays covered).

    Parameters
    ----------
    events : numpy.ndarray
        Shape ``(n,)``, dtype :data:`~mmsim.dtypes.EVENT_DTYPE`, as made by
        :func:`mmsim.data.read_lobster` (prices in ticks of $0.01, sizes in shares).
    orderbook : numpy.ndarray
        Shape ``(rows, 4 N)``, int64, raw orderbook file values as returned by
        :func:`mmsim.data.lobster_csv.read_lobster_orderbook` (USD x 10,000 prices,
        ``+-9999999999`` and size 0 for empty levels).
    levels : int or None
        Levels to compare, at most ``N``; default ``N``.

    Returns
    -------
    dict
        JSON-able:

        ``rows_checked``
            Rows compared: ``min(rows, messages in events)``.
        ``levels``
            Levels compared per side.
        ``contradictions``
            Number of rows with at least one contradiction.
        ``first_contradiction_rows``
            The first (up to :data:`FIRST_ROWS`) such rows, 1-based line numbers of the
            orderbook file.
        ``first_contradictions``
            The contradictions of those rows, asks then bids, best price first, each
            ``{"row", "field", "file_value", "price", "file_size", "messages_size"}``:
            ``field`` is the orderbook column at fault (``ask_px_1`` when the file shows a
            level at a price where the messages have no volume, or shows no level at a price
            where they have some; ``bid_sz_2`` when both have the price and the sizes
            differ) and ``file_value`` that column's raw value in the row; ``price`` is the
            price in question in file units (USD x 10,000); the sizes, in shares, are what
            the file and the messages have at that price (0: no level there).
        ``corrections_by_kind``
            ``{"before_open": {...}, "into_view": {...}}``, each ``{"rows", "levels",
            "shares_added", "shares_removed"}``: rows with such a correction, (row, side,
            price) levels corrected, and the shares the file has above / below the rebuilt
            levels there.

    Raises
    ------
    TypeError
        If ``events`` does not have ``EVENT_DTYPE``.
    ValueError
        If ``orderbook`` is not 2-D with a multiple of 4 columns, or ``levels < 1``.
    """
    if events.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE events, got {events.dtype}")
    if orderbook.ndim != 2 or orderbook.shape[1] % 4 or orderbook.shape[1] == 0:
        raise ValueError(f"orderbook must have shape (rows, 4 N), got {orderbook.shape}")
    n_levels = orderbook.shape[1] // 4
    levels = n_levels if levels is None else min(int(levels), n_levels)
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    width = 4 * levels
    sides = {
        -1: ("ask", orderbook[:, 0:width:4].tolist(), orderbook[:, 1:width:4].tolist()),
        1: ("bid", orderbook[:, 2:width:4].tolist(), orderbook[:, 3:width:4].tolist()),
    }
    n_rows = len(orderbook)
    book = _LevelBook()
    change = book.change
    counts = {
        k: {"rows": 0, "levels": 0, "shares_added": 0, "shares_removed": 0}
        for k in CORRECTION_KINDS
    }
    covered: dict[int, Any] = {1: _NOT_COVERED, -1: _NOT_COVERED}
    n_contra = 0
    first_rows: list[int] = []
    first: list[dict[str, Any]] = []
    add = int(EventKind.ADD)
    removes = {int(EventKind.CANCEL), int(EventKind.DELETE), int(EventKind.EXECUTE)}
    synthetic, last = int(EventFlag.SYNTHETIC), int(EventFlag.LAST)
    cols = [events[c].tolist() for c in ("kind", "side", "price_tick", "qty", "flags")]
    row = 0
    for kind, side, px, qty, fl in zip(*cols, strict=True):
        if not fl & synthetic:
            if kind == add:
                change(side, px, qty)
            elif kind in removes:
                change(side, px, -qty)
        if not fl & last:
            continue
        if row >= n_rows:
            break
        bad: list[dict[str, Any]] = []
        kinds_here: set[str] = set()
        for s in (-1, 1):
            name, px_rows, sz_rows = sides[s]
            want = _file_side(px_rows[row], sz_rows[row])
            limit = (min(want) if s == 1 else max(want)) if len(want) >= levels else None
            have = book.levels_from(s, limit)
            prev, covered[s] = covered[s], limit
            if have == want:
                continue
            for p in sorted(set(want) | set(have), reverse=s == 1):
                f, b = want.get(p, 0), have.get(p, 0)
                if f == b:
                    continue
                if prev is _NOT_COVERED:
                    kind_name = "before_open"
                elif prev is None or (p >= prev if s == 1 else p <= prev):
                    bad.append(_contradiction(row + 1, name, s, p, f, b, want, orderbook[row]))
                    continue
                else:
                    kind_name = "into_view"
                c = counts[kind_name]
                c["levels"] += 1
                c["shares_added" if f > b else "shares_removed"] += abs(f - b)
                kinds_here.add(kind_name)
                book.set(s, p, f)
        for kind_name in kinds_here:
            counts[kind_name]["rows"] += 1
        if bad:
            n_contra += 1
            if len(first_rows) < FIRST_ROWS:
                first_rows.append(row + 1)
                first.extend(bad)
        row += 1
    return {
        "rows_checked": row,
        "levels": levels,
        "contradictions": n_contra,
        "first_contradiction_rows": first_rows,
        "first_contradictions": first,
        "corrections_by_kind": counts,
    }


def _contradiction(
    row: int,
    name: str,
    side: int,
    price: int,
    file_qty: int,
    msg_qty: int,
    want: dict[int, int],
    file_row: np.ndarray,
) -> dict[str, Any]:
    """One entry of ``first_contradictions`` (see :func:`check_lobster_orderbook`)."""
    level = 1 + sum(1 for p in want if (p > price if side == 1 else p < price))
    kind = "sz" if file_qty and msg_qty else "px"
    return {
        "row": row,
        "field": f"{name}_{kind}_{level}",
        "file_value": int(file_row[4 * (level - 1) + _COLUMN[name, kind]]),
        "price": price * PRICE_PER_TICK,
        "file_size": file_qty,
        "messages_size": msg_qty,
    }


def check_lobster_reconstruction(
    events: np.ndarray, orderbook_path: str | os.PathLike[str], levels: int | None = None
) -> dict[str, Any]:
    """Replay ``events`` against a LOBSTER orderbook file, and check the file's honesty.

    Two questions, both answered over the top ``levels`` of each side:

    1. Does the replayed stream reproduce the file? Message ``k`` (1-based) ends at the
       ``k``-th record carrying ``EventFlag.LAST``; after it, the top of the replayed
       :class:`~mmsim.book.reference.ReferenceL3Book` (every record, synthetic corrections
       included) must equal row ``k`` (prices in ticks of $0.01, empty levels as price 0 /
       size 0). For :func:`mmsim.data.read_lobster` output with this orderbook file this holds
       by construction (the corrections make the replay follow the file), so
       ``replay_mismatches`` only checks the stream, never the file.
    2. Does the file agree with the messages? :func:`check_lobster_orderbook` on the
       non-synthetic records of ``events``.

    Parameters
    ----------
    events : numpy.ndarray
        Shape ``(n,)``, dtype ``EVENT_DTYPE``, as made by :func:`mmsim.data.read_lobster`.
    orderbook_path : str or os.PathLike
        LOBSTER ``..._orderbook_N.csv``.
    levels : int or None
        Levels to compare; default: all the file has (``N``).

    Returns
    -------
    dict
        ``rows`` (orderbook rows), ``messages`` (LAST records in ``events``), ``levels``;
        ``replay_mismatches`` (rows whose replayed top of book differs from the file, plus
        rows with no matching message) and ``first_replay_mismatch_row`` (1-based, or None);
        and from :func:`check_lobster_orderbook`: ``contradictions``,
        ``first_contradiction_rows``, ``first_contradictions`` and ``corrections_by_kind``.

    Raises
    ------
    DataError
        If the orderbook file is missing or malformed.
    TypeError
        If ``events`` does not have ``EVENT_DTYPE``.
    """
    if events.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE events, got {events.dtype}")
    book_rows = read_lobster_orderbook(orderbook_path)
    n_levels = book_rows.shape[1] // 4
    if levels is None:
        levels = n_levels
    levels = min(int(levels), n_levels)
    # expected (bid_px, bid_qty, ask_px, ask_qty) per row, in ticks, empty -> 0
    ask_px = book_rows[:, 0 : 4 * levels : 4]
    ask_sz = book_rows[:, 1 : 4 * levels : 4]
    bid_px = book_rows[:, 2 : 4 * levels : 4]
    bid_sz = book_rows[:, 3 : 4 * levels : 4]
    ask_empty = (ask_sz <= 0) | (np.abs(ask_px) >= EMPTY_LEVEL_PRICE)
    bid_empty = (bid_sz <= 0) | (np.abs(bid_px) >= EMPTY_LEVEL_PRICE)
    expected = np.stack(
        [
            np.where(bid_empty, 0, bid_px // PRICE_PER_TICK),
            np.where(bid_empty, 0, bid_sz),
            np.where(ask_empty, 0, ask_px // PRICE_PER_TICK),
            np.where(ask_empty, 0, ask_sz),
        ],
        axis=1,
    ).tolist()  # rows x 4 x levels

    book = ReferenceL3Book()
    apply = book.apply_fields
    last = EventFlag.LAST
    n_rows = len(expected)
    row = 0
    mismatches = 0
    first = None
    cols = [events[c].tolist() for c in ("kind", "side", "price_tick", "qty", "order_id", "flags")]
    for k, s, p, q, oid, fl in zip(*cols, strict=True):
        apply(k, s, p, q, oid)
        if fl & last:
            if row < n_rows and list(book.top(levels)) != expected[row]:
                mismatches += 1
                if first is None:
                    first = row + 1
            row += 1
    if row != n_rows:
        mismatches += abs(n_rows - row)
        if first is None:
            first = min(row, n_rows) + 1
    honest = check_lobster_orderbook(events, book_rows, levels)
    return {
        "rows": n_rows,
        "messages": row,
        "levels": levels,
        "replay_mismatches": mismatches,
        "first_replay_mismatch_row": first,
        "contradictions": honest["contradictions"],
        "first_contradiction_rows": honest["first_contradiction_rows"],
        "first_contradictions": honest["first_contradictions"],
        "corrections_by_kind": honest["corrections_by_kind"],
    }


def bracket_snapshot(ev: np.ndarray, n_snap: int, synthetic_clear: bool) -> np.ndarray:
    """``ev`` (EVENT_DTYPE) with its first ``n_snap`` records (the opening snapshot) between
    a SNAPSHOT_BEGIN (and, with ``synthetic_clear``, a CLEAR of both sides) and a
    SNAPSHOT_END carrying ``LAST``, these records flagged SYNTHETIC | SNAPSHOT at the times of
    the snapshot's first and last records. Returns a new array of ``len(ev) + 2`` (``+ 3``
    with the clear) records."""
    extra = 3 if synthetic_clear else 2
    out = np.zeros(len(ev) + extra, dtype=EVENT_DTYPE)
    mark = EventFlag.SYNTHETIC | EventFlag.SNAPSHOT
    head = 2 if synthetic_clear else 1
    end = head + n_snap
    out[head:end] = ev[:n_snap]
    out[end + 1 :] = ev[n_snap:]
    out["kind"][0] = EventKind.SNAPSHOT_BEGIN
    if synthetic_clear:
        out["kind"][1] = EventKind.CLEAR
    out["kind"][end] = EventKind.SNAPSHOT_END
    for j, src in [*((j, 0) for j in range(head)), (end, n_snap - 1)]:
        out["exch_ts"][j] = ev["exch_ts"][src]
        out["local_ts"][j] = ev["local_ts"][src]
        out["flags"][j] = mark
    out["flags"][end] |= EventFlag.LAST
    return out
