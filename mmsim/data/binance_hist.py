"""Binance historical order-book CSV (a snapshot file + an update file) to canonical L2 events.

Both files (plain or gzip) have the columns
``symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu``:
``timestamp`` in ms (one clock), ``side`` ``b``/``a``, ``update_type`` ``snap`` (a level of a
full snapshot) or ``set`` (absolute level quantity, 0 deletes), ``pu`` the previous final
update id (-1 on snapshot rows).

Mapping
-------
- Consecutive rows with the same ``timestamp``, ``first_update_id``, ``last_update_id`` and
  ``update_type`` are one message.
- A run of ``snap`` rows (the snapshot file, and any in the update file) is one snapshot
  block: ``SNAPSHOT_BEGIN``, ``CLEAR`` (side 0), ``LEVEL_SET`` records flagged ``SNAPSHOT``
  (zero quantities skipped), ``SNAPSHOT_END`` (``LAST``); BEGIN, CLEAR and END are flagged
  ``SYNTHETIC | SNAPSHOT``. Its ``last_update_id`` = ``L`` re-syncs the update-id chain.
- A ``set`` message: one ``LEVEL_SET`` per row (side +1 bid / -1 ask), ``LAST`` on its last
  record.

Update-id chain (the USD-M futures rule of :mod:`mmsim.data.binance`): after a snapshot,
messages with ``last_update_id < L`` are dropped (``report["updates_dropped_before_snapshot"]``);
the first kept message must satisfy ``first_update_id <= L <= last_update_id``; then each
message's ``pu`` must equal the previous ``last_update_id``. A failure is a gap: counted in
``report["update_id_gaps"]`` with the first ten in ``report["update_id_gap_examples"]``
(file, line, rule, expected, got). Gap policy as in :mod:`mmsim.data.binance`: the message is
applied anyway and the chain continues from it; the next ``snap`` block re-syncs. (The
fixture pair in ``formats/`` is cut from a longer day: its update file starts ten minutes
after its snapshot, so it has one bridging gap, which is reported.)

Prices and quantities are exact (decimal strings, off-grid -> DataError naming the file,
line and column). Clocks: ``exch_ts = local_ts = timestamp * 1e6`` (``clocks == 1``); the
running maximum keeps them non-decreasing (repairs in ``report["ts_backwards"]``).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.data.binance import DecimalGrid, EventBuilder, l2_stream_report, read_input
from mmsim.data.errors import DataError
from mmsim.data.store import IngestResult
from mmsim.data.text import decode_utf8
from mmsim.enums import EventFlag, EventKind

_COLS = [
    "symbol",
    "timestamp",
    "first_update_id",
    "last_update_id",
    "side",
    "update_type",
    "price",
    "qty",
    "pu",
]
_MS = 1_000_000
_N_EXAMPLES = 10
_LAST = EventFlag.LAST
_SNAP = EventFlag.SNAPSHOT
_SYN = EventFlag.SYNTHETIC
_SIDES = {"b": 1, "a": -1, "bid": 1, "ask": -1}


def _rows(path: Path, infos: list) -> Any:
    """Yield (line number, path, fields) of one file after checking its header.

    A UTF-8 byte-order mark is dropped and blank (empty or whitespace-only) lines are skipped,
    keeping the line numbers of the others.

    Raises
    ------
    DataError
        Missing file, broken gzip, not UTF-8, or a header other than the expected columns.
    """
    raw, info = read_input(path)
    infos.append(info)
    text = decode_utf8(raw, path)
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    if header != _COLS:
        raise DataError(path, 1, None, f"expected the columns {','.join(_COLS)}")
    for line, rec in enumerate(reader, 2):
        if rec and not (len(rec) == 1 and not rec[0].strip()):
            yield line, path, rec


def _int(text: str, path: Path, line: int, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(path, line, name, f"{text!r} is not an integer") from None


def read_binance_hist(
    snapshot_csv: str | os.PathLike[str],
    updates_csv: str | os.PathLike[str],
    *,
    tick_size: float = 0.1,
    lot_size: float = 0.001,
) -> IngestResult:
    """Read a Binance historical depth snapshot CSV and its update CSV into L2 events.

    See the module docstring for the mapping and the update-id rule.

    Parameters
    ----------
    snapshot_csv : str or os.PathLike
        The ``snap`` rows of one snapshot.
    updates_csv : str or os.PathLike
        The ``set`` (and possibly later ``snap``) rows that follow it.
    tick_size, lot_size : float, default 0.1, 0.001
        Price tick and quantity lot (USD-M BTCUSDT defaults).

    Returns
    -------
    IngestResult
        ``events``: EVENT_DTYPE in file order, ``exch_ts == local_ts`` (int64 ns).
        ``meta``: source ``binance_hist``, market ``usdm``, symbol, date, levels None,
        clocks 1, tick_size, lot_size, multiplier 1, files. ``report``: rows, messages,
        snapshots, updates_applied, updates_dropped_before_snapshot, update_id_gaps,
        update_id_gap_examples, ts_backwards, crossed_states, validation.

    Raises
    ------
    DataError
        Missing file, wrong header, wrong column count, non-integer timestamp or id, unknown
        side or update type, price or quantity not a number or off the grid, a snapshot file
        without ``snap`` rows or an update file before any snapshot.
    """
    px = DecimalGrid(tick_size)
    lot = DecimalGrid(lot_size)
    infos: list[dict[str, Any]] = []
    b = EventBuilder()
    symbols: set[str] = set()

    # --- group rows into messages: (kind, rows) with kind 'snap' or 'set'
    def messages():
        key = None
        group: list = []
        for src, must_snap in ((Path(snapshot_csv), True), (Path(updates_csv), False)):
            for line, path, rec in _rows(src, infos):
                if len(rec) != len(_COLS):
                    raise DataError(path, line, None, f"expected {len(_COLS)} columns")
                sym, ts_s, fid_s, lid_s, side_s, typ, price_s, qty_s, pu_s = rec
                if typ not in ("snap", "set"):
                    raise DataError(path, line, "update_type", f"{typ!r} is not snap/set")
                if must_snap and typ != "snap":
                    raise DataError(path, line, "update_type", "the snapshot file holds a 'set'")
                side = _SIDES.get(side_s)
                if side is None:
                    raise DataError(path, line, "side", f"{side_s!r} is not b/a")
                symbols.add(sym)
                row = (
                    line,
                    path,
                    _int(ts_s, path, line, "timestamp") * _MS,
                    _int(fid_s, path, line, "first_update_id"),
                    _int(lid_s, path, line, "last_update_id"),
                    _int(pu_s, path, line, "pu"),
                    side,
                    _grid(px, price_s, path, line, "price"),
                    _grid(lot, qty_s, path, line, "qty"),
                )
                k = (typ, ts_s, fid_s, lid_s) if typ == "set" else ("snap", lid_s)
                if k != key and group:
                    yield key[0], group
                    group = []
                key = k
                group.append(row)
            if must_snap and key is None:
                raise DataError(src, None, None, "no snapshot rows")
        if group:
            yield key[0], group

    n_rows = n_msgs = n_snap = n_applied = n_dropped = gaps = back = 0
    examples: list[dict[str, Any]] = []
    L = None
    prev_u = None
    last_ts = None
    seq = 0
    for typ, rows in messages():
        seq += 1
        n_rows += len(rows)
        ts = rows[0][2]
        if last_ts is not None and ts < last_ts:
            back += 1
            ts = last_ts
        last_ts = ts
        if typ == "snap":
            n_snap += 1
            L = rows[0][4]
            prev_u = None
            flags = _SYN | _SNAP
            b.add(ts, ts, EventKind.SNAPSHOT_BEGIN, 0, 0, 0, flags, 1, seq)
            b.add(ts, ts, EventKind.CLEAR, 0, 0, 0, flags, 1, seq)
            kept = [(r[6], r[7], r[8]) for r in rows if r[8] > 0]
            b.add_levels(ts, ts, kept, _SNAP, _SNAP, 1, seq)
            b.add(ts, ts, EventKind.SNAPSHOT_END, 0, 0, 0, flags | _LAST, 1, seq)
            continue
        line, path, _, U, u, pu = rows[0][:6]
        if L is None:
            raise DataError(path, line, "update_type", "update before any snapshot")
        n_msgs += 1
        if prev_u is None:
            if u < L:
                n_dropped += 1
                continue
            ok, rule, expected, got = U <= L <= u, "U <= L <= u", L, {"U": U, "u": u}
        else:
            ok, rule, expected, got = pu == prev_u, "pu == previous u", prev_u, pu
        if not ok:
            gaps += 1
            if len(examples) < _N_EXAMPLES:
                examples.append(
                    {
                        "file": path.name,
                        "line": line,
                        "rule": rule,
                        "expected": expected,
                        "got": got,
                    }
                )
        prev_u = u
        n_applied += 1
        b.add_levels(ts, ts, [(r[6], r[7], r[8]) for r in rows], 0, _LAST, 2, seq)

    ev = b.finish(sort=False)
    if len(ev) == 0:
        raise DataError(Path(snapshot_csv), None, None, "no records")
    validation = l2_stream_report(ev)
    date = np.datetime64(int(ev["exch_ts"][0]), "ns").astype("datetime64[D]").item()
    report: dict[str, Any] = {
        "rows": n_rows,
        "messages": n_msgs,
        "snapshots": n_snap,
        "updates_applied": n_applied,
        "updates_dropped_before_snapshot": n_dropped,
        "update_id_gaps": gaps,
        "update_id_gap_examples": examples,
        "gap_policy": "counted; the update is applied anyway and the chain continues from it",
        "ts_backwards": back,
        "crossed_states": validation["crossed_states"],
        "validation": validation,
    }
    meta: dict[str, Any] = {
        "source": "binance_hist",
        "market": "usdm",
        "symbol": sorted(symbols)[0] if len(symbols) == 1 else sorted(symbols),
        "date": date.isoformat(),
        "levels": None,
        "clocks": 1,
        "tick_size": float(tick_size),
        "lot_size": float(lot_size),
        "multiplier": 1,
        "files": infos,
    }
    return IngestResult(events=ev, meta=meta, report=report)


def _grid(grid: DecimalGrid, text: str, path: Path, line: int, name: str) -> int:
    try:
        return grid(text)
    except ValueError as exc:
        raise DataError(path, line, name, str(exc)) from None
