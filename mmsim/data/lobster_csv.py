"""LOBSTER CSV primitives shared by the reader and the checks: lines, columns, orderbook file.

:mod:`mmsim.data.lobster` (messages to events) and :mod:`mmsim.data.validate` (the
orderbook-versus-messages check) both need to read a LOBSTER orderbook file; it lives here so
that neither imports the other's module lazily.

Files are read as UTF-8; a byte-order mark at the start and blank lines at the end (as some
exports and editors write them) are accepted and ignored. A blank line anywhere else is a
row with the wrong column count.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from mmsim.data.errors import DataError

#: Price units per tick: LOBSTER prices are USD x 10,000 and the tick is $0.01.
PRICE_PER_TICK = 100
#: Empty-level price of the orderbook file (negated on the bid side).
EMPTY_LEVEL_PRICE = 9_999_999_999


def check_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return ``Path(path)`` if it is an existing regular file.

    Parameters
    ----------
    path : str or os.PathLike
        As the user gave it.
    what : str
        What the file is (``"message file"``, ``"orderbook file"``), for the message.

    Raises
    ------
    DataError
        ``row = field = None``, ``path`` as given (relative paths stay relative):
        ``"no such file (the <what> is missing)"`` if nothing exists there, ``"is a
        directory (expected the <what>)"`` (or ``"is not a regular file ..."``) otherwise.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(path, None, None, f"no such file (the {what} is missing)")
    if not p.is_file():
        kind = "a directory" if p.is_dir() else "not a regular file"
        raise DataError(path, None, None, f"is {kind} (expected the {what})")
    return p


def read_lines(path: str | os.PathLike[str], what: str = "file") -> tuple[pl.Series, bytes]:
    """Return the lines of a text file as a polars string Series, and the raw bytes.

    A UTF-8 byte-order mark at the start is dropped, trailing ``\\r`` are stripped from every
    line, and blank (whitespace-only) lines at the end of the file are dropped.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        What the file is, for the missing-file message (see :func:`check_file`).

    Returns
    -------
    lines : polars.Series
        ``Utf8``, one element per line (line ``i`` of the file is element ``i - 1``).
    data : bytes
        The file's bytes as stored (for hashing).

    Raises
    ------
    DataError
        Missing file or not a file (:func:`check_file`), or no line left (``"file is
        empty"``); ``row`` and ``field`` are None.
    """
    data = check_file(path, what).read_bytes()
    lines = data.decode("utf-8-sig", errors="replace").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(path, None, None, "file is empty")
    return pl.Series("line", lines, dtype=pl.Utf8).str.strip_chars_end("\r"), data


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


class RowChecks:
    """Collect failing-row masks; raise a DataError for the first failing row of the file.

    Parameters
    ----------
    path : str or os.PathLike
        The file, named in the error.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.found: list[tuple[int, int, str | None, Callable[[int], str]]] = []

    def add(self, mask: np.ndarray, field: str | None, message: Callable[[int], str]) -> None:
        """Record the first ``True`` of ``mask`` (shape ``(rows,)``, bool) for ``field``;
        ``message(i)`` builds the text for 0-based row ``i``."""
        i = _first(mask)
        if i is not None:
            self.found.append((i, len(self.found), field, message))

    def raise_first(self) -> None:
        """Raise :class:`DataError` (1-based row, field) for the earliest failing row; ties go
        to the check added first. Does nothing if no check failed."""
        if self.found:
            i, _, field, message = min(self.found, key=lambda t: (t[0], t[1]))
            raise DataError(self.path, i + 1, field, message(i))


def split_columns(lines: pl.Series, names: list[str], checks: RowChecks) -> dict[str, pl.Series]:
    """Split comma-separated lines into stripped ``Utf8`` columns named ``names``.

    A row with a column count other than ``len(names)`` is recorded in ``checks`` (field
    None); its missing columns are null.
    """
    parts = lines.str.split(",")
    counts = parts.list.len().to_numpy()
    n = len(names)
    checks.add(
        counts != n,
        None,
        lambda i: f"expected {n} columns, got {counts[i]}: {lines[i]!r}",
    )
    return {
        name: parts.list.get(j, null_on_oob=True).str.strip_chars() for j, name in enumerate(names)
    }


def int_column(col: pl.Series, field: str, checks: RowChecks, fill: int = 0) -> np.ndarray:
    """Cast a ``Utf8`` column to an int64 array of shape ``(rows,)``; a non-integer is
    recorded in ``checks`` under ``field`` and replaced by ``fill``."""
    out = col.cast(pl.Int64, strict=False)
    bad = (out.is_null() & col.is_not_null()).to_numpy()
    checks.add(bad, field, lambda i: f"{col[i]!r} is not an integer")
    return out.fill_null(fill).to_numpy()


def orderbook_column_names(levels: int) -> list[str]:
    """``["ask_px_1", "ask_sz_1", "bid_px_1", "bid_sz_1", "ask_px_2", ...]``, ``4 * levels``
    names in file order."""
    return [
        f"{kind}_{lvl}"
        for lvl in range(1, levels + 1)
        for kind in ("ask_px", "ask_sz", "bid_px", "bid_sz")
    ]


def read_lobster_orderbook(path: str | os.PathLike[str], levels: int | None = None) -> np.ndarray:
    """Read and validate a LOBSTER orderbook file.

    Parameters
    ----------
    path : str or os.PathLike
        ``..._orderbook_N.csv`` (no header; a UTF-8 byte-order mark and trailing blank lines
        are accepted).
    levels : int or None
        Expected number of levels; default: the file's column count / 4.

    Returns
    -------
    numpy.ndarray
        Shape ``(rows, 4 * levels)``, int64, the raw file values (USD x 10,000 prices,
        ``+-9999999999`` for empty levels, sizes in shares).

    Raises
    ------
    DataError
        Missing or empty file, a row whose column count differs from ``4 * levels``
        (``levels`` defaults to the first row's count / 4, which must be a multiple of 4),
        a non-integer value, a negative size, or a non-empty price off the $0.01 grid.
    """
    lines, _ = read_lines(path, "orderbook file")
    return parse_orderbook(path, lines, levels)


def parse_orderbook(
    path: str | os.PathLike[str], lines: pl.Series, levels: int | None
) -> np.ndarray:
    """:func:`read_lobster_orderbook` on lines already read by :func:`read_lines`."""
    if levels is None:
        first = lines[0].count(",") + 1
        if first % 4:
            raise DataError(path, 1, None, f"{first} columns is not a multiple of 4")
        levels = first // 4
    names = orderbook_column_names(levels)
    checks = RowChecks(path)
    cols = split_columns(lines, names, checks)
    values = [int_column(cols[name], name, checks) for name in names]
    for name, v in zip(names, values, strict=True):
        if "_sz_" in name:
            checks.add(v < 0, name, lambda i, v=v: f"size {v[i]} < 0")
        else:
            bad = (np.abs(v) != EMPTY_LEVEL_PRICE) & (v % PRICE_PER_TICK != 0)
            checks.add(bad, name, lambda i, v=v: f"price {v[i]} is not on the $0.01 grid")
    checks.raise_first()
    return np.column_stack(values).astype(np.int64, copy=False)
