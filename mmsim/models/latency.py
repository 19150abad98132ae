"""Load a recorded order-latency series for the ``interpolated`` latency model."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import polars as pl

from mmsim.data.errors import DataError
from mmsim.data.text import decode_utf8
from mmsim.models.nb import LAT_SERIES0

_ACTIONS = {"submit": 0, "new": 0, "cancel": 1, "modify": 2, "replace": 2, "amend": 2}


def _read_csv(p: Path) -> tuple[pl.DataFrame, np.ndarray]:
    """The CSV as strings, and the 1-based file line of each data row.

    A UTF-8 byte-order mark is dropped and blank (empty or whitespace-only) lines are
    skipped, a trailing one included; gzip is read by its magic bytes.

    Raises
    ------
    DataError
        If the file is not UTF-8 or not CSV.
    """
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(p, None, None, f"cannot decompress gzip ({e})") from None
    text = decode_utf8(raw, p)
    lines = text.splitlines()
    keep = [i for i, line in enumerate(lines) if line.strip()]
    if not keep:
        raise DataError(p, None, None, "empty file")
    body = "\n".join(lines[i] for i in keep) + "\n"
    try:
        df = pl.read_csv(io.BytesIO(body.encode()), infer_schema=False)
    except Exception as e:  # noqa: BLE001 - polars raises many kinds
        raise DataError(p, None, None, f"cannot read: {e}") from None
    return df, np.asarray(keep[1:], dtype=np.int64) + 1


def load_latency_series(path: str | Path) -> dict[int, np.ndarray]:
    """Read ``(request_ts, exchange_ts, response_ts[, action])`` records.

    Returns
    -------
    dict[int, numpy.ndarray]
        Action (0 submit, 1 cancel, 2 modify) → object array ``(n, 3)`` of (request_ts as an
        exact int, entry_nanos, response_nanos) sorted by request_ts. Without an ``action``
        column every action gets the whole series.

    A CSV may start with a UTF-8 byte-order mark and hold blank lines (a trailing one, say);
    they are skipped and rows are numbered by their line in the file.

    Raises
    ------
    DataError
        Missing file or column, a non-numeric value, a negative latency, an unknown action
        (file, row and field named: the 1-based file line of a CSV, the record of Parquet).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(p, None, None, "latency series not found")
    if p.suffix == ".parquet":
        try:
            df = pl.read_parquet(p)
        except Exception as e:  # noqa: BLE001 - polars raises many kinds
            raise DataError(p, None, None, f"cannot read: {e}") from None
        lines = np.arange(1, df.height + 1, dtype=np.int64)
    else:
        df, lines = _read_csv(p)
    cols = ["request_ts", "exchange_ts", "response_ts"]
    for c in cols:
        if c not in df.columns:
            raise DataError(p, None, c, "column missing")
    num = {}
    for c in cols:
        s = df[c].cast(pl.Int64, strict=False)
        if s.is_null().any() and not df[c].is_null().any():
            s = df[c].cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
        bad = s.is_null() & df[c].is_not_null() | df[c].is_null()
        if bad.any():
            i = int(bad.arg_max())
            v = df[c][i]
            raise DataError(p, int(lines[i]), c, "empty" if v is None else f"not a number: {v!r}")
        num[c] = s.to_numpy()
    entry = (num["exchange_ts"] - num["request_ts"]).astype(np.float64)
    resp = (num["response_ts"] - num["exchange_ts"]).astype(np.float64)
    for name, v in (("exchange_ts", entry), ("response_ts", resp)):
        if (v < 0).any():
            i = int(np.flatnonzero(v < 0)[0])
            raise DataError(p, int(lines[i]), name, "latency would be negative")
    if "action" in df.columns:
        acts = np.empty(df.height, dtype=np.int64)
        for i, a in enumerate(df["action"].cast(pl.Utf8).to_list()):
            key = str(a).strip().lower()
            if key in _ACTIONS:
                acts[i] = _ACTIONS[key]
            elif key in ("0", "1", "2"):
                acts[i] = int(key)
            else:
                raise DataError(p, int(lines[i]), "action", f"unknown action {a!r}")
    else:
        acts = None
    out = {}
    for a in range(3):
        sel = np.ones(df.height, bool) if acts is None else acts == a
        order = np.argsort(num["request_ts"][sel], kind="stable")
        arr = np.empty((int(sel.sum()), 3), dtype=object)
        arr[:, 0] = num["request_ts"][sel][order]
        arr[:, 1] = entry[sel][order]
        arr[:, 2] = resp[sel][order]
        out[a] = arr
    return out


def latency_vector(base: np.ndarray, series: dict[int, np.ndarray]) -> np.ndarray:
    """Append ``series`` to the fixed latency parameters ``base`` (length LAT_SERIES0)."""
    rows = [series.get(a, np.zeros((0, 3))) for a in range(3)]
    out = np.zeros(LAT_SERIES0 + 3 * sum(len(r) for r in rows), dtype=np.float64)
    out[: len(base)] = base
    firsts = [int(r[0, 0]) for r in rows if len(r)]
    origin = min(firsts) if firsts else 0
    out[18], out[19] = float(origin >> 32), float(origin & 0xFFFFFFFF)
    rows = [np.column_stack([(r[:, 0] - origin).astype(np.float64),
                             r[:, 1].astype(np.float64), r[:, 2].astype(np.float64)])
            if len(r) else np.zeros((0, 3)) for r in rows]
    start = 0
    for a, r in enumerate(rows):
        out[12 + a] = start
        out[15 + a] = len(r)
        out[LAT_SERIES0 + 3 * start: LAT_SERIES0 + 3 * (start + len(r))] = r.ravel()
        start += len(r)
    return out
