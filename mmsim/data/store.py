"""Canonical event files: Parquet with :data:`~mmsim.dtypes.EVENT_SCHEMA` plus JSON metadata.

A canonical event file holds one :data:`~mmsim.dtypes.EVENT_DTYPE` stream in row groups of
about one million rows, so readers can stream it with bounded memory
(:func:`iter_event_chunks`). The ingest metadata and the validation report travel in the
Parquet key-value metadata as JSON under the keys ``b"mmsim.meta"`` and ``b"mmsim.report"``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmsim.data.errors import DataError
from mmsim.dtypes import EVENT_DTYPE, EVENT_SCHEMA, events_to_table, table_to_events

META_KEY = b"mmsim.meta"
REPORT_KEY = b"mmsim.report"
ROW_GROUP_ROWS = 1_000_000


@dataclass
class IngestResult:
    """What a reader returns: the canonical events and what is known about them.

    Attributes
    ----------
    events : numpy.ndarray
        Shape ``(n,)``, dtype :data:`~mmsim.dtypes.EVENT_DTYPE`, in file order; ``exch_ts``
        and ``local_ts`` non-decreasing.
    meta : dict
        JSON-able description: ``source``, ``symbol``, ``date`` (ISO), ``levels`` (int or
        None for full depth), ``clocks`` (1: ``local_ts == exch_ts``; 2: separate clocks),
        ``tick_size``, ``lot_size``, ``multiplier`` (hints in user units, may be None),
        ``files`` (list of ``{"name", "sha256", "bytes"}``) and source-specific keys.
    report : dict
        JSON-able validation counts (see the reader's docs and
        :func:`mmsim.data.validate.validate_events`).
    """

    events: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def write_events(
    path: str | os.PathLike[str],
    result: IngestResult,
    *,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> Path:
    """Write ``result`` to a canonical Parquet event file, atomically.

    The file is written to a temporary name in the destination folder and moved into place
    with :func:`os.replace`, so an interrupted write never leaves a file that looks complete.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.parquet`` file; its folder must exist.
    result : IngestResult
        ``events`` must have dtype ``EVENT_DTYPE``; ``meta`` and ``report`` must be JSON-able.
    row_group_rows : int, default 1_000_000
        Rows per Parquet row group.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    TypeError
        If the events do not have ``EVENT_DTYPE`` or meta/report are not JSON-able.
    """
    path = Path(path)
    if result.events.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE events, got {result.events.dtype}")
    if row_group_rows <= 0:
        raise ValueError(f"row_group_rows must be positive, got {row_group_rows}")
    kv = {
        META_KEY: json.dumps(result.meta, sort_keys=True).encode(),
        REPORT_KEY: json.dumps(result.report, sort_keys=True).encode(),
    }
    schema = EVENT_SCHEMA.with_metadata(kv)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            events = result.events
            if len(events) == 0:
                writer.write_table(events_to_table(events).replace_schema_metadata(kv))
            for start in range(0, len(events), row_group_rows):
                table = events_to_table(events[start : start + row_group_rows])
                writer.write_table(table.replace_schema_metadata(kv), row_group_size=row_group_rows)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _parquet_file(path: str | os.PathLike[str]) -> pq.ParquetFile:
    if not os.path.exists(path):
        raise DataError(path, None, None, "no such file")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(path, None, None, f"not a Parquet file ({exc})") from exc


def read_meta(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the ``(meta, report)`` dicts stored in a canonical event file.

    Raises
    ------
    DataError
        If the file is missing, not Parquet, or lacks the mmsim metadata keys.
    """
    md = _parquet_file(path).schema_arrow.metadata or {}
    out = []
    for key in (META_KEY, REPORT_KEY):
        if key not in md:
            raise DataError(path, None, key.decode(), "missing mmsim metadata key")
        try:
            out.append(json.loads(md[key]))
        except json.JSONDecodeError as exc:
            raise DataError(path, None, key.decode(), f"invalid JSON ({exc})") from exc
    return out[0], out[1]


def iter_event_chunks(
    path: str | os.PathLike[str], chunk_rows: int = ROW_GROUP_ROWS
) -> Iterator[np.ndarray]:
    """Yield the events of a canonical file in chunks of at most ``chunk_rows`` records.

    Yields
    ------
    numpy.ndarray
        Shape ``(m,)``, dtype ``EVENT_DTYPE``, ``1 <= m <= chunk_rows``, in file order.

    Raises
    ------
    DataError
        If the file is missing, not Parquet or lacks an event column.
    """
    pf = _parquet_file(path)
    missing = [n for n in EVENT_SCHEMA.names if n not in pf.schema_arrow.names]
    if missing:
        raise DataError(path, None, missing[0], "not a canonical event file: column missing")
    # one row group at a time (iter_batches reads ahead and the arrow pool keeps what it
    # freed, so memory would grow with the file); hand freed buffers back after each group
    pool = pa.default_memory_pool()
    for g in range(pf.num_row_groups):
        table = pf.read_row_group(g, columns=EVENT_SCHEMA.names)
        for start in range(0, table.num_rows, chunk_rows):
            part = table.slice(start, chunk_rows)
            if part.num_rows:
                yield table_to_events(part)
        del table
        pool.release_unused()


def read_events(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a whole canonical event file.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, dtype ``EVENT_DTYPE``.

    Raises
    ------
    DataError
        If the file is missing, not Parquet or lacks an event column.
    """
    chunks = list(iter_event_chunks(path))
    if not chunks:
        return np.zeros(0, dtype=EVENT_DTYPE)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
