"""Checks of canonical event streams, shared by every reader.

:func:`validate_events` raises :class:`~mmsim.data.errors.DataError` on what no engine can
replay (clocks going backwards, non-positive sizes of book-changing events) and counts what
is merely suspicious. :func:`check_lobster_reconstruction` replays a LOBSTER-derived stream
through :class:`~mmsim.book.reference.ReferenceL3Book` and compares it with the vendor's
orderbook file.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mmsim.book.reference import ReferenceL3Book
from mmsim.data.errors import DataError
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


def check_lobster_reconstruction(
    events: np.ndarray, orderbook_path: str | os.PathLike[str], levels: int | None = None
) -> dict[str, Any]:
    """Replay ``events`` and compare the top of book with a LOBSTER orderbook file.

    Message ``k`` (1-based) of the LOBSTER message file ends at the ``k``-th record carrying
    ``EventFlag.LAST``; after it, the top ``levels`` of the replayed
    :class:`~mmsim.book.reference.ReferenceL3Book` must equal row ``k`` of the orderbook file
    (prices in ticks of $0.01, empty levels as price 0 / size 0).

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
        ``rows`` (orderbook rows), ``messages`` (LAST records in ``events``), ``mismatches``
        (rows whose top of book differs, plus rows with no matching message), and
        ``first_mismatch_row`` (1-based, or None).

    Raises
    ------
    DataError
        If the orderbook file is missing or malformed.
    """
    from mmsim.data.lobster import read_lobster_orderbook  # lazy: lobster imports this module

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
    ask_empty = (ask_sz <= 0) | (np.abs(ask_px) >= 9_999_999_999)
    bid_empty = (bid_sz <= 0) | (np.abs(bid_px) >= 9_999_999_999)
    expected = np.stack(
        [
            np.where(bid_empty, 0, bid_px // 100),
            np.where(bid_empty, 0, bid_sz),
            np.where(ask_empty, 0, ask_px // 100),
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
    return {
        "rows": n_rows,
        "messages": row,
        "levels": levels,
        "mismatches": mismatches,
        "first_mismatch_row": first,
    }
