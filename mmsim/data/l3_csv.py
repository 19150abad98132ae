"""A generic order-level (L3, market-by-order) CSV to canonical events.

The file is any CSV with one row per order event; the ``data.l3_csv`` section
(:class:`~mmsim.data.l3_csv_config.L3CsvConfig`) says which column holds what, which values
of the action and side columns mean what, the time unit, and whether the file opens with a
snapshot of the book. The tick and lot size (``instrument.tick_size``, ``instrument.lot_size``)
are required: prices become ticks and quantities lots, exactly from the decimal text.

The file is read with polars (every column as text; plain or gzip; a UTF-8 byte-order mark
and blank lines at the end are ignored). Rows are numbered as in the file: the header is
row 1, the first data row row 2 (row 1 without a header).

Mapping (one row → one record)
------------------------------
=========  ========  ============================================================================
action     kind      details
=========  ========  ============================================================================
add        ADD       a new resting order: ``order_id`` (> 0), ``side`` (bid/ask), ``price``
                     (> 0, on the tick grid), ``qty`` (> 0, on the lot grid). An add of an id
                     that rests already replaces it.
change     MODIFY    the order now has the row's ``side``, ``price`` and ``qty`` (the new
                     *remaining* size, not a difference; 0 removes it); an empty side or price
                     keeps the order's. At the same price a size decrease keeps the order's
                     queue priority; a price change or a size increase loses it (the engine's
                     rule, MODELS.md §6). A change of an id never placed acts as an add.
cancel     CANCEL    the order is reduced by ``qty`` (a partial cancel; > 0).
delete     DELETE    the whole order is removed (``qty`` informational, 0 if empty).
execute    EXECUTE   the *resting* order is executed for ``qty`` (> 0): a trade against it.
trade      TRADE     a print that no execute row carries (hidden or non-displayed liquidity):
                     ``order_id = 0``, no book effect. ``side`` is the resting side: the opposite
                     of the row's side with ``trade_side: aggressor`` (default), the row's side
                     with ``trade_side: resting``; 0 when the row has none.
clear      CLEAR     every order is removed, of the row's side, or of both when it has none.
ignore     (none)    the row is skipped (``report["actions"]["ignore"]``).
=========  ========  ============================================================================

Cancel, delete and execute rows refer to an order by id. When that id was placed earlier (an
add or change since the file began), the record takes the order's side and price as the
book holds them, whatever the row says (rows whose side or price was empty or different are
counted in ``report["taken_from_order"]``). When it was not (orders resting before the file
starts, or an empty id), the row's side and price are required and the record refers to
*anonymous* volume (``order_id = 0``) at that price, as :mod:`mmsim.data.lobster` does: it
reduces nothing the book knows, but an execute there still fills our orders. Such rows are
counted in ``report["unknown_order_refs"]``. Every row is one exchange event: its record
carries ``EventFlag.LAST`` (except inside the snapshot block).

Prices off the tick grid are an error, except on trade rows with ``subtick_trades: round``:
rounded up for a bid-side resting order, down for an ask-side one, to the nearest (half up)
with no side, and flagged ``SUBTICK`` (``report["subtick_trades"]``).

Opening snapshot and warm-up
----------------------------
With ``snapshot: true`` the leading rows flagged in ``columns.snapshot`` (values in
``snapshot_values``) or, without a flag column, the leading run of add and clear rows at the
file's first timestamp are the opening snapshot: they are bracketed by ``SNAPSHOT_BEGIN`` and
``SNAPSHOT_END`` (flags ``SYNTHETIC | SNAPSHOT``, the timestamps of the first and last snapshot
row; ``SNAPSHOT_END`` carries ``LAST``), their records flagged ``SNAPSHOT``, with a synthetic
``CLEAR`` after ``SNAPSHOT_BEGIN`` unless the first snapshot row clears the whole book.

With ``snapshot: false`` (default) the book starts empty and fills as orders are added:
``report["warmup"]`` states how long it took until both sides first had depth (``seconds``
from the first event, ``events`` before that one, the file ``row``), and ``meta["note"]``
says it in words (``mmsim backtest`` prints it). Quotes before then face an empty or one-sided
book.

Clocks
------
``exch_ts`` is ``columns.ts`` in ``time_unit`` (UNIX time; ``iso``: ISO-8601 text, UTC unless it
carries an offset), converted exactly to int64 ns. With ``columns.local_ts`` the second clock
is read the same way (``meta["clocks"] == 2``); without, ``local_ts = exch_ts``. Both must be
non-decreasing in file order.

Errors
------
:class:`~mmsim.data.errors.DataError` names the file, the row and the field (the file's
column, or the mapping field ``columns.<name>`` for a column missing from the file); every
value is checked before any is used, and the error reports the earliest bad row: a missing
file, an unreadable CSV, an unknown action or side value (the known values listed), a missing
value an action needs, a non-integer order id or an id <= 0, a time that is not a time or goes
backwards, a price or size that is not a non-negative decimal or is off its grid, a size <= 0
where one is needed, a cancel, delete or execute of an unknown order without its side or
price, a file that does not open with the snapshot ``snapshot: true`` promises, and a file of
several symbols without ``symbol``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import ValidationError

from mmsim.book.reference import ReferenceL3Book
from mmsim.data.errors import DataError
from mmsim.data.l3_csv_config import ACTION_NAMES, L3CsvConfig
from mmsim.data.lobster_csv import check_file
from mmsim.data.store import IngestResult
from mmsim.data.validate import bracket_snapshot, validate_events
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventFlag, EventKind

__all__ = ["ACTION_KINDS", "load_l3_csv_config", "read_l3_csv"]

#: action name → event kind (``ignore`` has none)
ACTION_KINDS = {
    "add": EventKind.ADD, "change": EventKind.MODIFY, "cancel": EventKind.CANCEL,
    "delete": EventKind.DELETE, "execute": EventKind.EXECUTE, "trade": EventKind.TRADE,
    "clear": EventKind.CLEAR,
}
#: decimal digits of a second below one unit of ``time_unit``
_UNIT_DIGITS = {"s": 9, "ms": 6, "us": 3, "ns": 0}
_I64_MAX = 2**63 - 1


# ---------------------------------------------------------------------------- the map
def load_l3_csv_config(l3_csv: Any) -> L3CsvConfig:
    """The column, action and side map, validated.

    Parameters
    ----------
    l3_csv : L3CsvConfig or Mapping or str or os.PathLike
        The map itself, a mapping of its fields (``data.l3_csv`` of an experiment), or a YAML
        file holding that mapping (optionally under a top-level ``l3_csv`` key) or a whole
        experiment (its ``data.l3_csv`` is read).

    Returns
    -------
    L3CsvConfig

    Raises
    ------
    ValueError
        If ``l3_csv`` is None (the message says where to give it).
    mmsim.config.ConfigError
        An invalid map, naming the source and every invalid field (``l3_csv.columns.qty``, or
        ``data.l3_csv.columns.qty`` in an experiment file).
    mmsim.data.DataError
        A YAML file that is missing, not YAML, or an experiment without ``data.l3_csv``.
    """
    from mmsim.config import config_error, load_yaml

    if l3_csv is None:
        raise ValueError("l3_csv: the file's column, action and side map is required "
                         "(experiments: data.l3_csv; mmsim ingest l3-csv: --l3-csv MAP.yaml)")
    if isinstance(l3_csv, L3CsvConfig):
        return l3_csv
    source, prefix, raw = "l3_csv", ("l3_csv",), l3_csv
    if isinstance(l3_csv, (str, os.PathLike)):
        p = check_file(l3_csv, "l3_csv map (YAML)")
        source = os.fspath(l3_csv)
        try:
            raw = load_yaml(p.read_text(encoding="utf-8"))
        except Exception as exc:  # yaml.YAMLError, UnicodeDecodeError
            raise DataError(l3_csv, None, None, f"not a YAML file ({exc})") from None
        if isinstance(raw, dict) and "data" in raw:
            raw = (raw.get("data") or {}).get("l3_csv")
            prefix = ("data", "l3_csv")
            if raw is None:
                raise DataError(l3_csv, None, "data.l3_csv", "the experiment has no "
                                "data.l3_csv section")
        elif isinstance(raw, dict) and set(raw) == {"l3_csv"}:
            raw = raw["l3_csv"]
    try:
        return L3CsvConfig.model_validate(raw)
    except ValidationError as e:
        raise config_error(e, source, prefix=prefix) from None


# ---------------------------------------------------------------------------- row checks
class _Checks:
    """Failing-row masks of one file; :meth:`raise_first` raises for the earliest row.

    ``rows`` (shape ``(n,)``, int) is the file row of each data row.
    """

    def __init__(self, path: str | os.PathLike[str], rows: np.ndarray) -> None:
        self.path = path
        self.rows = rows
        self.found: list[tuple[int, int, str | None, Callable[[int], str]]] = []

    def add(self, mask: Any, field: str | None, message: Callable[[int], str]) -> None:
        """Record the first True of ``mask`` (bool, shape ``(n,)``; numpy or polars) for
        ``field``; ``message(i)`` builds the text for data row ``i``."""
        m = mask.to_numpy() if isinstance(mask, pl.Series) else mask
        idx = np.flatnonzero(np.asarray(m, dtype=bool))
        if idx.size:
            self.found.append((int(idx[0]), len(self.found), field, message))

    def raise_first(self) -> None:
        if self.found:
            i, _, field, message = min(self.found, key=lambda t: (t[0], t[1]))
            raise DataError(self.path, int(self.rows[i]), field, message(i))


# ---------------------------------------------------------------------------- reading
def _ragged_row(data: bytes, sep: str) -> int | None:
    """The first line with more fields than the first (quotes not honoured): a hint only."""
    lines = data.split(b"\n")
    width = lines[0].count(sep.encode())
    for i, line in enumerate(lines):
        if line.count(sep.encode()) > width:
            return i + 1
    return None


def _read_frame(path: str | os.PathLike[str], cfg: L3CsvConfig) -> tuple[pl.DataFrame, bytes]:
    """Every column as stripped text (empty cells null), trailing blank rows dropped."""
    raw = check_file(path, "L3 CSV").read_bytes()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise DataError(path, None, None, "file is empty")
    try:
        df = pl.read_csv(io.BytesIO(data), has_header=cfg.header, separator=cfg.separator,
                         infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(path, _ragged_row(data, cfg.separator), None,
                        f"cannot be read as CSV ({first})") from None
    df = df.with_columns(pl.all().str.strip_chars()).with_columns(
        pl.when(pl.all() == "").then(None).otherwise(pl.all()).name.keep())
    blank = df.select(pl.all_horizontal(pl.all().is_null())).to_series().to_numpy()
    n = len(blank)
    while n and blank[n - 1]:
        n -= 1
    return df.head(n), raw


def _column_names(path, df: pl.DataFrame, cfg: L3CsvConfig) -> dict[str, str]:
    """``{field: the file's column name}`` of the mapped fields."""
    names = df.columns
    out = {}
    for key, ref in cfg.columns.mapped().items():
        if isinstance(ref, int):
            if ref > len(names):
                raise DataError(path, None, f"columns.{key}",
                                f"column {ref} (data.l3_csv.columns.{key}) does not exist: "
                                f"the file has {len(names)} columns")
            out[key] = names[ref - 1]
        elif ref in names:
            out[key] = ref
        else:
            raise DataError(path, 1, f"columns.{key}",
                            f"no column {ref!r} (data.l3_csv.columns.{key}); the header has: "
                            f"{', '.join(names)}")
    return out


def _keep_symbol(path, df, rows, col: str | None, symbol: str | None):
    """The rows of one symbol (all rows without a symbol column); the symbol, if known."""
    if col is None:
        return df, rows, symbol
    values = df[col]
    present = sorted(str(s) for s in values.drop_nulls().unique().to_list())
    if symbol is None:
        if len(present) > 1:
            shown = ", ".join(present[:10]) + (", ..." if len(present) > 10 else "")
            raise DataError(path, None, col, f"the file holds {len(present)} symbols "
                            f"({shown}): set instrument.symbol (mmsim ingest: --symbol)")
        return df, rows, present[0] if present else None
    keep = (values == symbol).fill_null(False).to_numpy()
    if not keep.any():
        raise DataError(path, None, col, f"no row of symbol {symbol!r} (the file has: "
                        f"{', '.join(present[:10])})")
    return df.filter(pl.Series(keep)), rows[keep], symbol


def _known_values(model: Any, names: tuple[str, ...]) -> str:
    """``add: 'A'; cancel: 'C', 'X'`` of a map's fields (those with values)."""
    return "; ".join(f"{n}: {', '.join(map(repr, getattr(model, n)))}" for n in names
                     if getattr(model, n))


def _actions(df, col: str, cfg: L3CsvConfig, checks: _Checks) -> pl.Series:
    """The action name of every row (null where unknown, recorded in ``checks``)."""
    lut = cfg.actions.lookup()
    cells = df[col]
    names = cells.str.to_lowercase().replace_strict(list(lut), list(lut.values()),
                                                    default=None, return_dtype=pl.Utf8)
    known = _known_values(cfg.actions, ACTION_NAMES)
    checks.add(names.is_null() & cells.is_null(), col, lambda i: "empty action")
    checks.add(names.is_null() & cells.is_not_null(), col,
               lambda i: f"unknown action {cells[i]!r} (data.l3_csv.actions knows {known})")
    return names


def _times(cells: pl.Series, unit: str, col: str, checks: _Checks) -> tuple[np.ndarray, int]:
    """int64 UNIX ns of every row, exactly (0 where bad, recorded), and how many were
    rounded (digits beyond the ns)."""
    checks.add(cells.is_null(), col, lambda i: "empty time")
    if unit == "iso":
        t = cells.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False)
        checks.add(t.is_null() & cells.is_not_null(), col,
                   lambda i: f"{cells[i]!r} is not an ISO-8601 time")
        return t.dt.epoch("ns").fill_null(0).to_numpy(), 0
    digits = _UNIT_DIGITS[unit]
    ok = cells.str.contains(r"^\d+(\.\d*)?$").fill_null(True)
    checks.add(~ok, col, lambda i: f"{cells[i]!r} is not a time in {unit} (a non-negative "
                                   "number, no exponent)")
    whole = cells.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False)
    limit = _I64_MAX // 10**digits - 1
    too_big = (whole.is_null() & ok & cells.is_not_null()) | (whole > limit).fill_null(False)
    checks.add(too_big, col, lambda i: f"{cells[i]!r} is too large a time in {unit}")
    frac = cells.str.extract(r"\.(\d*)$", 1).fill_null("")
    long = (frac.str.len_chars() > digits).to_numpy()
    part = frac.str.slice(0, digits).str.pad_end(digits, "0").cast(pl.Int64, strict=False)
    up = (frac.str.slice(digits, 1) >= "5").fill_null(False).to_numpy()
    w = np.where(too_big.to_numpy(), 0, whole.fill_null(0).to_numpy())
    ns = w * 10**digits + part.fill_null(0).to_numpy() + (long & up)
    return ns.astype(np.int64), int(np.count_nonzero(long & ok.to_numpy()))


def _grid_values(cells: pl.Series, step: Decimal) -> dict[str, np.ndarray]:
    """``cells / step`` for every row, exactly, from the decimal text (each distinct text
    converted once): ``floor`` and ``ceil`` (int64, 0 where null or bad), ``bad`` (not a
    non-negative decimal, or too large) and ``off`` (not a whole number of steps)."""
    uniq = cells.drop_nulls().unique()
    texts = uniq.to_list()
    floor, ceil, bad = [], [], []
    for text in texts:
        try:
            q = Decimal(text) / step
            ok = q.is_finite() and 0 <= q < 2**62
        except (ArithmeticError, ValueError):  # decimal.InvalidOperation, Overflow
            ok = False
        floor.append(int(q.to_integral_value(ROUND_FLOOR)) if ok else 0)
        ceil.append(int(q.to_integral_value(ROUND_CEILING)) if ok else 0)
        bad.append(not ok)

    def back(values: list[Any], dtype: Any) -> np.ndarray:
        s = cells.replace_strict(texts, values, default=None, return_dtype=dtype)
        return s.fill_null(0 if dtype != pl.Boolean else False).to_numpy()

    lo_a = back(floor, pl.Int64)
    hi_a = back(ceil, pl.Int64)
    return {"floor": lo_a, "ceil": hi_a, "bad": back(bad, pl.Boolean), "off": lo_a != hi_a}


# ---------------------------------------------------------------------------- the reader
def read_l3_csv(
    path: str | os.PathLike[str],
    *,
    l3_csv: Any = None,
    tick_size: float,
    lot_size: float,
    symbol: str | None = None,
) -> IngestResult:
    """Read a generic order-level CSV into canonical events.

    See the module docstring for the mapping, the snapshot and warm-up, the clocks and the
    errors.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV (plain or gzip).
    l3_csv : L3CsvConfig or Mapping or str or os.PathLike
        The column, action and side map (:func:`load_l3_csv_config`): an experiment's
        ``data.l3_csv``, or a YAML file (``mmsim ingest l3-csv --l3-csv MAP.yaml``).
    tick_size, lot_size : float
        Price grid (quote currency per tick) and quantity grid (instrument units per lot);
        ``price_tick = price / tick_size`` and ``qty = qty / lot_size``, exactly from the text.
    symbol : str, optional
        With ``columns.symbol``: the symbol whose rows are read (default: the file's only
        one). Without: the symbol recorded in ``meta``.

    Returns
    -------
    IngestResult
        ``events``: :data:`~mmsim.dtypes.EVENT_DTYPE`, one record per kept row (plus the
        snapshot bracket), ``exch_ts``/``local_ts`` int64 UNIX ns, prices in ticks,
        quantities in lots. ``meta``: source ``l3_csv``, symbol, date (of the first event,
        UTC), levels None, clocks (1 or 2), tick_size, lot_size, files, l3_csv (the map as
        read), note (the warm-up, without a snapshot). ``report`` (JSON-able):

        ``n_rows``
            Data rows read (of the symbol).
        ``actions``
            ``{action: rows}`` (``ignore`` included).
        ``snapshot``
            ``{"rows", "synthetic_clear"}``, or None without a snapshot.
        ``warmup``
            ``book_starts`` (``"snapshot"`` or ``"empty"``), ``seconds`` (float, from the
            first event until both sides first had depth), ``events`` (records before that
            one), ``row`` (its 1-based file row), ``exch_ts`` (ns); the last four None if
            the book never had both sides.
        ``unknown_order_refs``, ``taken_from_order``, ``subtick_trades``, ``time_beyond_ns``
            See the module docstring (``taken_from_order``: ``{"side": rows, "price": rows}``).
        ``validation``
            :func:`~mmsim.data.validate.validate_events` of the events.

    Raises
    ------
    ValueError
        If ``l3_csv`` is None, or the tick or lot size is not positive.
    mmsim.config.ConfigError
        An invalid map (:func:`load_l3_csv_config`).
    mmsim.data.DataError
        Bad input, naming the file, the 1-based row (as in the file, header counted) and the
        field (see the module docstring).
    """
    cfg = load_l3_csv_config(l3_csv)
    tick = Decimal(str(tick_size))
    lot = Decimal(str(lot_size))
    if not (tick.is_finite() and tick > 0 and lot.is_finite() and lot > 0):
        raise ValueError(f"l3_csv: tick_size and lot_size must be positive, got {tick_size} "
                         f"and {lot_size}")
    df, raw = _read_frame(path, cfg)
    col = _column_names(path, df, cfg)
    rows = np.arange(len(df), dtype=np.int64) + (2 if cfg.header else 1)
    df, rows, symbol = _keep_symbol(path, df, rows, col.get("symbol"), symbol)
    n_rows = len(df)
    if n_rows == 0:
        raise DataError(path, None, None, "no data rows")

    checks = _Checks(path, rows)
    action = _actions(df, col["action"], cfg, checks)
    checks.raise_first()
    counts = action.value_counts()
    action_counts = {str(a): int(c) for a, c in counts.iter_rows()}
    keep = (action != "ignore").to_numpy()
    if not keep.all():
        mask = pl.Series(keep)
        df, rows, action = df.filter(mask), rows[keep], action.filter(mask)
    if len(df) == 0:
        raise DataError(path, None, col["action"], "every row is ignored (data.l3_csv.actions"
                        ".ignore)")
    rec = _convert(path, df, rows, action, col, cfg, tick, lot)
    ev, src_rows, snap = _bracket(path, rec, rows, df, col, cfg)
    warmup = _warmup(ev, src_rows, "snapshot" if snap else "empty")
    report: dict[str, Any] = {
        "n_rows": n_rows,
        "actions": {a: action_counts[a] for a in ACTION_NAMES if a in action_counts},
        "snapshot": snap,
        "warmup": warmup,
        "unknown_order_refs": rec["unknown_order_refs"],
        "taken_from_order": rec["taken_from_order"],
        "subtick_trades": rec["subtick_trades"],
        "time_beyond_ns": rec["time_beyond_ns"],
        "validation": validate_events(ev, path),
    }
    first_ts = int(ev["exch_ts"][0])
    meta: dict[str, Any] = {
        "source": "l3_csv",
        "symbol": symbol,
        "date": str(np.datetime64(first_ts, "ns").astype("datetime64[D]")),
        "levels": None,
        "clocks": 2 if "local_ts" in col else 1,
        "tick_size": float(tick_size),
        "lot_size": float(lot_size),
        "files": [{"name": Path(path).name, "sha256": hashlib.sha256(raw).hexdigest(),
                   "bytes": len(raw)}],
        "l3_csv": cfg.model_dump(mode="json"),
    }
    if not snap:
        meta["note"] = _warmup_note(warmup)
    return IngestResult(events=ev, meta=meta, report=report)


def _warmup_note(w: dict[str, Any]) -> str:
    if w["seconds"] is None:
        return ("l3_csv: no opening snapshot: the book started empty and never had both a bid "
                "and an ask")
    return (f"l3_csv: no opening snapshot: the book started empty and had both a bid and an "
            f"ask after {w['seconds']:.3f} s ({w['events']:,} event"
            f"{'' if w['events'] == 1 else 's'} before, file row {w['row']}); "
            "quotes before then faced an empty or one-sided book")


def _convert(path, df: pl.DataFrame, rows: np.ndarray, action: pl.Series, col: dict[str, str],
             cfg: L3CsvConfig, tick: Decimal, lot: Decimal) -> dict[str, Any]:
    """Every kept row as record fields (checked): kind, side, price_tick, qty, order_id,
    exch_ts, local_ts, flags, and the report counts."""
    n = len(df)
    checks = _Checks(path, rows)
    kind = action.replace_strict(list(ACTION_KINDS), list(ACTION_KINDS.values()),
                                 return_dtype=pl.UInt8).to_numpy()
    is_ = {a: kind == k for a, k in ACTION_KINDS.items()}
    placing = is_["add"] | is_["change"]
    ref = is_["cancel"] | is_["delete"] | is_["execute"]

    # --- parse every column (errors: the earliest row of any column)
    ts_col = col["ts"]
    exch_ts, beyond = _times(df[ts_col], cfg.time_unit, ts_col, checks)
    local_ts = exch_ts
    if "local_ts" in col:
        local_ts, beyond2 = _times(df[col["local_ts"]], cfg.time_unit, col["local_ts"], checks)
        beyond += beyond2
    side_c, px_c, qty_c, id_c = (col[k] for k in ("side", "price", "qty", "order_id"))
    side_cells = df[side_c]
    lut = cfg.sides.lookup()
    side_v = side_cells.str.to_lowercase().replace_strict(
        list(lut), list(lut.values()), default=None, return_dtype=pl.Int8)
    known_sides = _known_values(cfg.sides, ("bid", "ask", "none"))
    checks.add(side_v.is_null() & side_cells.is_not_null(), side_c,
               lambda i: f"unknown side {side_cells[i]!r} (data.l3_csv.sides knows "
                         f"{known_sides})")
    has_side = side_v.fill_null(0).to_numpy() != 0
    side = side_v.fill_null(0).to_numpy().astype(np.int8)
    oid_cells = df[id_c]
    oid_s = oid_cells.cast(pl.Int64, strict=False)
    needs_id = placing | ref
    checks.add(needs_id & (oid_s.is_null() & oid_cells.is_not_null()).to_numpy(), id_c,
               lambda i: f"{oid_cells[i]!r} is not an integer order id")
    oid = oid_s.fill_null(0).to_numpy()
    has_id = oid_s.is_not_null().to_numpy() & (oid != 0)  # 0 on a reference: no id
    px_cells, qty_cells = df[px_c], df[qty_c]
    px = _grid_values(px_cells, tick)
    qty = _grid_values(qty_cells, lot)
    priced = placing | ref | is_["trade"]
    checks.add(priced & px["bad"], px_c,
               lambda i: f"{px_cells[i]!r} is not a non-negative decimal price")
    checks.add(priced & qty["bad"], qty_c,
               lambda i: f"{qty_cells[i]!r} is not a non-negative decimal quantity")
    checks.raise_first()

    # --- what each action needs
    has_px = px_cells.is_not_null().to_numpy()
    has_qty = qty_cells.is_not_null().to_numpy()
    name = {int(k): a for a, k in ACTION_KINDS.items()}

    def act(i: int) -> str:
        return name[int(kind[i])]

    checks.add(placing & ~has_id, id_c, lambda i: f"no order id (an {act(i)} needs one > 0)")
    checks.add(needs_id & (oid < 0), id_c, lambda i: f"order id {oid[i]} < 0")
    checks.add(is_["add"] & ~has_side, side_c, lambda i: "an add needs a side (bid or ask)")
    checks.add(is_["add"] & ~has_px, px_c, lambda i: "an add needs a price")
    checks.add((is_["add"] | is_["trade"]) & has_px & (px["ceil"] <= 0), px_c,
               lambda i: f"price {px_cells[i]} <= 0")
    checks.add((placing | ref) & has_px & ~px["bad"] & px["off"], px_c,
               lambda i: f"{px_cells[i]!r} is not on the tick grid {tick} "
                         "(instrument.tick_size)")
    checks.add(is_["trade"] & ~has_px, px_c, lambda i: "a trade needs a price")
    if cfg.subtick_trades == "error":
        checks.add(is_["trade"] & has_px & px["off"], px_c,
                   lambda i: f"{px_cells[i]!r} is not on the tick grid {tick} "
                             "(instrument.tick_size; data.l3_csv.subtick_trades: round rounds "
                             "trade prices)")
    sized = is_["add"] | is_["change"] | is_["cancel"] | is_["execute"] | is_["trade"]
    checks.add(sized & ~has_qty, qty_c, lambda i: f"a{'n' if act(i)[0] in 'aei' else ''} "
                                                  f"{act(i)} needs a quantity")
    checks.add((sized | is_["delete"]) & has_qty & qty["off"], qty_c,
               lambda i: f"{qty_cells[i]!r} is not on the lot grid {lot} (instrument.lot_size)")
    checks.add((sized & ~is_["change"]) & has_qty & (qty["floor"] <= 0), qty_c,
               lambda i: f"quantity {qty_cells[i]} <= 0 (an {act(i)} needs a positive one)")
    clocks = [(ts_col, exch_ts)] + ([(col["local_ts"], local_ts)] if "local_ts" in col else [])
    for c, values in clocks:
        back = np.zeros(n, dtype=bool)
        back[1:] = values[1:] < values[:-1]
        cells = df[c]
        checks.add(back, c, lambda i, cells=cells: f"time goes backwards: {cells[i]} after "
                                                   f"{cells[i - 1]} (the file must be in time "
                                                   "order)")
    checks.raise_first()

    # --- the orders' side and price, as placed by their latest add or change
    price_tick = np.where(has_px, px["floor"], 0)
    state = pl.DataFrame({
        "oid": np.where(needs_id & has_id, oid, -1),
        "side": side, "has_side": placing & has_side,
        "price": price_tick, "has_price": placing & has_px,
        "placing": placing,
    }).with_columns(
        pl.when("has_side").then("side").forward_fill().over("oid").alias("o_side"),
        pl.when("has_price").then("price").forward_fill().over("oid").alias("o_price"),
        (pl.col("placing").cast(pl.Int32).cum_sum().over("oid")
         - pl.col("placing").cast(pl.Int32) > 0).alias("placed_before"),
    )
    o_side = state["o_side"].fill_null(0).to_numpy().astype(np.int8)
    o_price = state["o_price"].fill_null(-1).to_numpy()
    known = ref & has_id & state["placed_before"].to_numpy()
    unknown = ref & ~known
    checks.add(unknown & ~has_side, side_c,
               lambda i: (f"order {oid[i]} was not placed before this row" if has_id[i] else
                          "no order id") + f": the {act(i)} must give the side (bid or ask)")
    checks.add(unknown & ~has_px, px_c,
               lambda i: (f"order {oid[i]} was not placed before this row" if has_id[i] else
                          "no order id") + f": the {act(i)} must give the price")
    checks.add(unknown & has_px & (px["ceil"] <= 0), px_c,
               lambda i: f"price {px_cells[i]} <= 0")
    # a change without side or price keeps the order's: an order never placed has none
    checks.add(is_["change"] & (o_side == 0), side_c,
               lambda i: f"order {oid[i]} was not placed before this row: the change must "
                         "give the side (bid or ask)")
    checks.add(is_["change"] & (o_price < 0), px_c,
               lambda i: f"order {oid[i]} was not placed before this row: the change must "
                         "give the price")
    checks.add(is_["change"] & has_px & (px["ceil"] <= 0), px_c,
               lambda i: f"price {px_cells[i]} <= 0")
    checks.raise_first()

    side_from = known & ((side != o_side) | ~has_side)
    px_from = known & ((price_tick != o_price) | ~has_px)
    out_side = np.where(known | is_["change"], o_side, side).astype(np.int8)
    out_px = np.where(known | is_["change"], o_price, price_tick)

    # --- trades: the resting side; prices off the grid rounded toward the resting side
    trade = is_["trade"]
    t_side = -side if cfg.trade_side == "aggressor" else side
    out_side = np.where(trade, t_side, out_side).astype(np.int8)
    nearest = np.where(px["off"], _nearest(px_cells, tick), px["floor"])
    rounded = np.where(out_side > 0, px["ceil"], np.where(out_side < 0, px["floor"], nearest))
    out_px = np.where(trade, rounded, out_px)
    subtick = trade & px["off"]
    # --- clears: side only
    clear = is_["clear"]
    out_px = np.where(clear, 0, out_px)

    flags = np.full(n, EventFlag.LAST, dtype=np.uint16)
    flags[subtick] |= EventFlag.SUBTICK
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["exch_ts"] = exch_ts
    ev["local_ts"] = local_ts
    ev["kind"] = kind
    ev["side"] = out_side
    ev["price_tick"] = out_px
    ev["qty"] = np.where(clear, 0, qty["floor"])
    ev["order_id"] = np.where(placing | known, oid, 0)
    ev["flags"] = flags
    return {
        "events": ev,
        "unknown_order_refs": int(np.count_nonzero(unknown)),
        "taken_from_order": {"side": int(np.count_nonzero(side_from)),
                             "price": int(np.count_nonzero(px_from))},
        "subtick_trades": int(np.count_nonzero(subtick)),
        "time_beyond_ns": beyond,
    }


def _nearest(cells: pl.Series, step: Decimal) -> np.ndarray:
    """``cells / step`` rounded half up (0 where null or bad), for trades with no side."""
    texts = cells.drop_nulls().unique().to_list()
    values = []
    for t in texts:
        try:
            q = Decimal(t) / step + Decimal("0.5")
            values.append(int(q.to_integral_value(ROUND_FLOOR)) if 0 <= q < 2**62 else 0)
        except (ArithmeticError, ValueError):
            values.append(0)
    return cells.replace_strict(texts, values, default=None,
                                return_dtype=pl.Int64).fill_null(0).to_numpy()


def _bracket(path, rec: dict[str, Any], rows: np.ndarray, df: pl.DataFrame,
             col: dict[str, str], cfg: L3CsvConfig):
    """The events with the opening snapshot bracketed (``snapshot: true``); the file row of
    every record; the report's ``snapshot`` entry (None without)."""
    ev = rec["events"]
    if not cfg.snapshot:
        return ev, rows, None
    kind = ev["kind"]
    book_row = (kind == EventKind.ADD) | (kind == EventKind.CLEAR)
    flag_col = col.get("snapshot")
    if flag_col is not None:
        values = {v.lower() for v in cfg.snapshot_values}
        flagged = df[flag_col].str.to_lowercase().is_in(list(values)).fill_null(False)
        flagged = flagged.to_numpy()
        where = flag_col
    else:
        flagged = book_row & (ev["exch_ts"] == ev["exch_ts"][0])
        where = col["action"]
    n_snap = len(ev) if flagged.all() else int(np.argmin(flagged))
    if n_snap == 0:
        how = (f"no leading row flagged in {flag_col!r} ({', '.join(cfg.snapshot_values)})"
               if flag_col is not None else "the first row is not an add or a clear")
        raise DataError(path, int(rows[0]), where, f"snapshot: true, but the file does not "
                        f"open with a snapshot ({how})")
    if flag_col is not None:
        late = np.flatnonzero(flagged[n_snap:])
        if late.size:
            i = n_snap + int(late[0])
            raise DataError(path, int(rows[i]), flag_col, "a snapshot row after the opening "
                            f"snapshot (it ended at row {int(rows[n_snap - 1])})")
        not_book = np.flatnonzero(~book_row[:n_snap])
        if not_book.size:
            i = int(not_book[0])
            raise DataError(path, int(rows[i]), col["action"], "a snapshot row must be an "
                            "add or a clear")
    synthetic_clear = not (kind[0] == EventKind.CLEAR and ev["side"][0] == 0)
    head = 2 if synthetic_clear else 1
    ev["flags"][:n_snap] = EventFlag.SNAPSHOT
    out = bracket_snapshot(ev, n_snap, synthetic_clear)
    src_rows = np.concatenate([np.repeat(rows[0], head), rows[:n_snap], rows[n_snap - 1:n_snap],
                               rows[n_snap:]])
    return out, src_rows, {"rows": n_snap, "synthetic_clear": bool(synthetic_clear)}


def _warmup(ev: np.ndarray, src_rows: np.ndarray, book_starts: str,
            chunk: int = 65_536) -> dict[str, Any]:
    """Replay until both sides first have depth after a ``LAST`` record (the report's
    ``warmup``)."""
    book = ReferenceL3Book()
    apply = book.apply_fields
    last = EventFlag.LAST
    t0 = int(ev["exch_ts"][0])
    for start in range(0, len(ev), chunk):
        part = ev[start:start + chunk]
        cols = [part[c].tolist() for c in ("kind", "side", "price_tick", "qty", "order_id",
                                           "flags")]
        for j, (k, s, p, q, oid, fl) in enumerate(zip(*cols, strict=True)):
            apply(k, s, p, q, oid)
            if fl & last and book.best_bid() is not None and book.best_ask() is not None:
                i = start + j
                ts = int(ev["exch_ts"][i])
                return {"book_starts": book_starts, "seconds": (ts - t0) / 1e9, "events": i,
                        "row": int(src_rows[i]), "exch_ts": ts}
    return {"book_starts": book_starts, "seconds": None, "events": None, "row": None,
            "exch_ts": None}
