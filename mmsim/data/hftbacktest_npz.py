"""hftbacktest ``.npz`` event files to canonical events, so its users can bring their data.

An hftbacktest data file is an ``.npz`` holding one structured array (key ``data``, else its
only array) of ``event_dtype``: ``ev`` u8 (uint64 flags), ``exch_ts`` i8, ``local_ts`` i8
(ns), ``px`` f8, ``qty`` f8, ``order_id`` u8, ``ival`` i8, ``fval`` f8. The low byte of ``ev``
is the event type, the high bits are attributes (hftbacktest ``py-hftbacktest/hftbacktest/
types.py``):

=====================  ====  =============================================================
hftbacktest            code  canonical
=====================  ====  =============================================================
DEPTH_EVENT            1     ``LEVEL_SET`` (BUY_EVENT -> side +1, SELL_EVENT -> -1)
TRADE_EVENT            2     ``TRADE``; BUY_EVENT = buyer-initiated -> resting side -1,
                             SELL_EVENT -> +1, neither -> 0
DEPTH_CLEAR_EVENT      3     ``CLEAR`` of the flagged side (0 if neither flag). hftbacktest
                             clears only up to ``px``; mmsim clears the whole side (the
                             snapshot that follows restates the levels that matter)
DEPTH_SNAPSHOT_EVENT   4     ``LEVEL_SET`` flagged ``SNAPSHOT``
DEPTH_BBO_EVENT        5     ``BBO`` flagged ``INFO``
ADD_ORDER_EVENT        10    ``ADD`` (``order_id``)
CANCEL_ORDER_EVENT     11    ``DELETE`` (``order_id``)
MODIFY_ORDER_EVENT     12    ``MODIFY`` (``order_id``)
FILL_EVENT             13    ``EXECUTE`` (``order_id``)
=====================  ====  =============================================================

Attribute bits: ``EXCH_EVENT = 1 << 31``, ``LOCAL_EVENT = 1 << 30``, ``BUY_EVENT = 1 << 29``,
``SELL_EVENT = 1 << 28``. Other event types are skipped and counted
(``report["skipped_types"]``).

Merging the two timelines
-------------------------
hftbacktest's ``correct_event_order`` duplicates an event whose exchange order and local
order differ: one row flagged EXCH only (in ``exch_ts`` order) and one flagged LOCAL only (in
``local_ts`` order), both carrying both timestamps. mmsim has one stream in exchange order
with both clocks, so rows with the EXCH flag are kept (their ``local_ts`` is the local clock)
and LOCAL-only rows are dropped (``report["local_only_rows_dropped"]``; it should equal
``report["exch_only_rows"]``). Rows with neither flag are invalid in hftbacktest and are
dropped too (``report["unflagged_rows"]``). The kept rows are sorted stably by ``exch_ts``
(``report["exch_ts_backwards"]`` counts the steps that needed it).

Snapshots and LAST
------------------
A run of consecutive CLEAR / DEPTH_SNAPSHOT rows that holds at least one snapshot row is
bracketed by ``SNAPSHOT_BEGIN`` and ``SNAPSHOT_END`` (flags ``SYNTHETIC | SNAPSHOT``, ``LAST``
on END). Otherwise consecutive rows with the same ``exch_ts`` and event type are one message:
``LAST`` goes on its last record (hftbacktest has no message boundaries).

Prices and quantities: ``price_tick = round(px / tick_size)`` and ``qty = round(qty /
lot_size)``; a value more than 1e-6 of a step away from the grid raises DataError (row = the
1-based index in the file's array). ``clocks == 2``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.data.binance import (
    EventBuilder,
    file_info,
    l2_stream_report,
    offset_stats,
    suggested_feed_offset,
)
from mmsim.data.errors import DataError
from mmsim.data.store import IngestResult
from mmsim.enums import EventFlag, EventKind

DEPTH_EVENT = 1
TRADE_EVENT = 2
DEPTH_CLEAR_EVENT = 3
DEPTH_SNAPSHOT_EVENT = 4
DEPTH_BBO_EVENT = 5
ADD_ORDER_EVENT = 10
CANCEL_ORDER_EVENT = 11
MODIFY_ORDER_EVENT = 12
FILL_EVENT = 13
EXCH_EVENT = 1 << 31
LOCAL_EVENT = 1 << 30
BUY_EVENT = 1 << 29
SELL_EVENT = 1 << 28

#: hftbacktest's ``event_dtype``.
HFT_EVENT_DTYPE = np.dtype(
    [
        ("ev", "u8"),
        ("exch_ts", "i8"),
        ("local_ts", "i8"),
        ("px", "f8"),
        ("qty", "f8"),
        ("order_id", "u8"),
        ("ival", "i8"),
        ("fval", "f8"),
    ],
    align=True,
)

_KIND = {
    DEPTH_EVENT: EventKind.LEVEL_SET,
    TRADE_EVENT: EventKind.TRADE,
    DEPTH_CLEAR_EVENT: EventKind.CLEAR,
    DEPTH_SNAPSHOT_EVENT: EventKind.LEVEL_SET,
    DEPTH_BBO_EVENT: EventKind.BBO,
    ADD_ORDER_EVENT: EventKind.ADD,
    CANCEL_ORDER_EVENT: EventKind.DELETE,
    MODIFY_ORDER_EVENT: EventKind.MODIFY,
    FILL_EVENT: EventKind.EXECUTE,
}
_TOL = 1e-6
_PRIO_DEPTH = 2  # the stream is already in exchange order (EventBuilder.finish(sort=False))


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(path, None, None, "no such file")
    try:
        obj = np.load(path, allow_pickle=False)
        if isinstance(obj, np.ndarray):
            arr = obj
        else:
            with obj as npz:
                keys = list(npz.keys())
                if "data" in keys:
                    arr = npz["data"]
                elif len(keys) == 1:
                    arr = npz[keys[0]]
                else:
                    raise DataError(path, None, None, f"no 'data' array (has {keys})")
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(path, None, None, f"not an npz file ({exc})") from exc
    names = set(arr.dtype.names or ())
    missing = [n for n in HFT_EVENT_DTYPE.names if n not in names]
    if missing:
        raise DataError(path, None, missing[0], "not an hftbacktest event array: field missing")
    return arr


def _to_grid(values: np.ndarray, step: float, path: Path, rows: np.ndarray, name: str):
    scaled = values / step
    out = np.rint(scaled)
    bad = np.flatnonzero(~np.isfinite(scaled) | (np.abs(scaled - out) > _TOL))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            path, int(rows[i]) + 1, name, f"{float(values[i])!r} is not on the grid {step}"
        )
    return out.astype(np.int64)


def read_hftbacktest_npz(
    path: str | os.PathLike[str],
    *,
    tick_size: float,
    lot_size: float,
) -> IngestResult:
    """Read an hftbacktest ``.npz`` event file into canonical events.

    See the module docstring for the mapping and the merge of the two timelines.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npz`` with an hftbacktest ``event_dtype`` array (key ``data`` or the only key).
    tick_size, lot_size : float
        The instrument's price tick and quantity lot in hftbacktest's float units.

    Returns
    -------
    IngestResult
        ``events``: EVENT_DTYPE sorted by ``exch_ts`` (int64 ns). ``meta``: source
        ``hftbacktest``, levels None, clocks 2, tick_size, lot_size,
        suggested_feed_offset_ns, files. ``report``: rows, exch_only_rows,
        local_only_rows_dropped, unflagged_rows, skipped_types, exch_ts_backwards,
        clock_offset_ns, crossed_states (L2 streams only), validation.

    Raises
    ------
    DataError
        Missing or unreadable file, no event array, a missing field, a price or quantity
        off the grid (row = 1-based index in the array).
    """
    path = Path(path)
    if tick_size <= 0 or lot_size <= 0:
        raise ValueError("tick_size and lot_size must be positive")
    arr = _load(path)
    info = file_info(path, path.read_bytes())
    ev_flags = arr["ev"].astype(np.uint64)
    typ = (ev_flags & np.uint64(0xFF)).astype(np.int64)
    has_exch = (ev_flags & np.uint64(EXCH_EVENT)) != 0
    has_local = (ev_flags & np.uint64(LOCAL_EVENT)) != 0
    known = np.isin(typ, list(_KIND))
    keep = has_exch & known
    rows = np.flatnonzero(keep)
    skipped_types = {
        str(int(t)): int(c)
        for t, c in zip(*np.unique(typ[has_exch & ~known], return_counts=True), strict=True)
    }
    exch = arr["exch_ts"][rows].astype(np.int64)
    back = int(np.count_nonzero(np.diff(exch) < 0))
    order = np.argsort(exch, kind="stable")
    rows = rows[order]
    exch = exch[order]
    local = arr["local_ts"][rows].astype(np.int64)
    t = typ[rows]
    fl = ev_flags[rows]
    buy = (fl & np.uint64(BUY_EVENT)) != 0
    sell = (fl & np.uint64(SELL_EVENT)) != 0
    side = np.where(buy, 1, np.where(sell, -1, 0)).astype(np.int8)
    side[t == TRADE_EVENT] = -side[t == TRADE_EVENT]  # aggressor -> resting side
    has_px = ~np.isin(t, (DEPTH_CLEAR_EVENT, CANCEL_ORDER_EVENT))
    price_tick = np.zeros(len(rows), dtype=np.int64)
    price_tick[has_px] = _to_grid(arr["px"][rows][has_px], tick_size, path, rows[has_px], "px")
    qty = np.zeros(len(rows), dtype=np.int64)
    qty[has_px] = _to_grid(arr["qty"][rows][has_px], lot_size, path, rows[has_px], "qty")
    oid = arr["order_id"][rows].astype(np.uint64).view(np.int64)

    b = EventBuilder()
    snap_flags = EventFlag.SYNTHETIC | EventFlag.SNAPSHOT
    n = len(rows)
    i = 0
    tl, el, ll, sl, pl, ql, ol = (x.tolist() for x in (t, exch, local, side, price_tick, qty, oid))
    while i < n:
        ti = tl[i]
        if ti in (DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT):
            j = i
            while j < n and tl[j] in (DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT):
                j += 1
            if DEPTH_SNAPSHOT_EVENT in tl[i:j]:
                b.add(el[i], ll[i], EventKind.SNAPSHOT_BEGIN, 0, 0, 0, snap_flags, _PRIO_DEPTH, i)
                for k in range(i, j):
                    if tl[k] == DEPTH_CLEAR_EVENT:
                        b.add(
                            el[k],
                            ll[k],
                            EventKind.CLEAR,
                            sl[k],
                            0,
                            0,
                            EventFlag.SNAPSHOT,
                            _PRIO_DEPTH,
                            i,
                        )
                    else:
                        b.add(
                            el[k],
                            ll[k],
                            EventKind.LEVEL_SET,
                            sl[k],
                            pl[k],
                            ql[k],
                            EventFlag.SNAPSHOT,
                            _PRIO_DEPTH,
                            i,
                        )
                b.add(
                    el[j - 1],
                    ll[j - 1],
                    EventKind.SNAPSHOT_END,
                    0,
                    0,
                    0,
                    snap_flags | EventFlag.LAST,
                    _PRIO_DEPTH,
                    i,
                )
            else:
                for k in range(i, j):
                    b.add(
                        el[k],
                        ll[k],
                        EventKind.CLEAR,
                        sl[k],
                        0,
                        0,
                        EventFlag.LAST if k == j - 1 else 0,
                        _PRIO_DEPTH,
                        i,
                    )
            i = j
            continue
        last = i + 1 == n or tl[i + 1] != ti or el[i + 1] != el[i]
        flags = EventFlag.LAST if last else 0
        if ti == DEPTH_BBO_EVENT:
            flags |= EventFlag.INFO
        b.add(
            el[i],
            ll[i],
            _KIND[ti],
            sl[i],
            pl[i],
            ql[i],
            flags,
            _PRIO_DEPTH,
            i,
            oid=ol[i] if ti >= ADD_ORDER_EVENT else 0,
        )
        i += 1
    events = b.finish(sort=False)
    is_l2 = not np.isin(
        t, (ADD_ORDER_EVENT, CANCEL_ORDER_EVENT, MODIFY_ORDER_EVENT, FILL_EVENT)
    ).any()
    report: dict[str, Any] = {
        "rows": int(len(arr)),
        "exch_only_rows": int(np.count_nonzero(has_exch & ~has_local)),
        "local_only_rows_dropped": int(np.count_nonzero(has_local & ~has_exch)),
        "unflagged_rows": int(np.count_nonzero(~has_local & ~has_exch)),
        "skipped_types": skipped_types,
        "exch_ts_backwards": back,
    }
    depth = np.isin(t, (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT))
    stats = offset_stats(local[depth] - exch[depth] if depth.any() else local - exch)
    report["clock_offset_ns"] = stats
    if is_l2:
        validation = l2_stream_report(events)
        report["crossed_states"] = validation["crossed_states"]
        report["validation"] = validation
    else:
        report["validation"] = {
            "n_events": len(events),
            "local_ts_backwards": int(np.count_nonzero(np.diff(events["local_ts"]) < 0)),
        }
    meta: dict[str, Any] = {
        "source": "hftbacktest",
        "symbol": None,
        "date": (
            np.datetime64(int(exch[0]), "ns").astype("datetime64[D]").item().isoformat()
            if n
            else None
        ),
        "levels": None,
        "clocks": 2,
        "tick_size": float(tick_size),
        "lot_size": float(lot_size),
        "multiplier": None,
        "suggested_feed_offset_ns": suggested_feed_offset(stats),
        "files": [info],
    }
    return IngestResult(events=events, meta=meta, report=report)
