"""Resolve an experiment's ``data`` section to a canonical event file (Parquet).

Raw vendor files (LOBSTER CSV, Databento DBN, Binance captures, ...) are ingested on first
use and cached under the cache folder (``MMSIM_CACHE_DIR``, else ``~/.cache/mmsim``), keyed by
the sha256 of the input files, the reader version and the reader options (grid hints; the gap
policy for Binance); synthetic flow is generated into the cache the same way, keyed by its
parameters. Pre-ingested Parquet files are read where they are.

Cache files are written atomically with page checksums and a sha256 record
(:mod:`mmsim.data.store`); one process at a time builds a given cache file (the others wait
on its lock file), a cache file that fails its check (bytes changed since they were written,
unreadable footer or first/last row group) is re-ingested with a warning on stderr, and the
temporary files of killed processes are removed the next time the cache is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmsim.config import DataConfig
from mmsim.data.errors import DataError
from mmsim.data.store import (
    META_KEY,
    REPORT_KEY,
    CanonicalWriter,
    FileLock,
    check_hash,
    clean_stale_locks,
    clean_stale_temps,
    hash_record_path,
    iter_event_chunks,
    parquet_file,
    read_row_group,
    recorded_sha256,
    sha256_file,
    verify_pages,
    write_hash_record,
)
from mmsim.dtypes import events_to_table
from mmsim.enums import EventKind

__all__ = [
    "READER_VERSION", "Dataset", "cache_dir_from", "data_root_from", "dataset_for_config",
    "ingest_to", "open_dataset", "read_raw", "sha256_file",
]

#: Bump when a reader's output changes, so caches are rebuilt (3: page checksums + hash
#: records).
READER_VERSION = "4"


def data_root_from(arg: str | os.PathLike | None) -> Path:
    """The data root: ``arg``, else ``MMSIM_DATA_ROOT``, else ``data/``."""
    if arg:
        return Path(arg)
    env = os.environ.get("MMSIM_DATA_ROOT")
    return Path(env) if env else Path("data")


def cache_dir_from(arg: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``arg``, else ``MMSIM_CACHE_DIR``, else ``~/.cache/mmsim``."""
    if arg:
        return Path(arg)
    env = os.environ.get("MMSIM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "mmsim"


@dataclass
class Dataset:
    """A canonical event file and what is known about it.

    Attributes
    ----------
    path : Path
        Parquet file with :data:`mmsim.dtypes.EVENT_SCHEMA`.
    kind : str
        Vendor kind (``lobster``, ``databento``, ``synthetic``, ``parquet``, ...).
    meta, report : dict
        Reader metadata (symbol, clocks, instrument hints) and validation counts.
    inputs : dict[str, str]
        Input file name → sha256 (for the run manifest).
    n_events, first_ts, last_ts : int
    ref_price_tick : int
        A representative price (to centre the book ladder).
    canonical_sha256 : str
        sha256 (hex) of the canonical file at ``path`` itself — the bytes the engine
        replays (for the run manifest). Taken from the hash record written with the file
        while its size and mtime are unchanged (not re-hashed on every run); the page
        checksums guard the bytes as they are read.
    cache_file : bool
        True if ``path`` is a file of the ingest cache (mmsim's to remove and rebuild).
    """

    path: Path
    kind: str
    meta: dict[str, Any]
    report: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)
    n_events: int = 0
    first_ts: int = 0
    last_ts: int = 0
    ref_price_tick: int = 0
    canonical_sha256: str = ""
    cache_file: bool = False

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        """Yield ``EVENT_DTYPE`` chunks of at most ``chunk_rows`` records.

        Raises
        ------
        mmsim.data.DataError
            If a page fails its checksum or does not decode (file, record and column
            named). A damaged cache file is removed first (the message says so), so the
            next run ingests it again.
        """
        it = iter_event_chunks(self.path, chunk_rows)
        if not self.cache_file:
            return it
        return self._cache_chunks(it)

    def _cache_chunks(self, it: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        try:
            yield from it
        except DataError as e:
            _remove_cache_file(self.path)
            raise DataError(e.path, e.row, e.field,
                            f"{e.reason} (cache file removed: rerun to ingest it again)"
                            ) from e


def _remove_cache_file(path: Path) -> None:
    for p in (path, hash_record_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _summarise(ds: Dataset) -> Dataset:
    pf = parquet_file(ds.path)
    ds.n_events = pf.metadata.num_rows
    if ds.n_events == 0:
        raise DataError(ds.path, None, None, "no events")
    head = read_row_group(ds.path, pf, 0, ["exch_ts", "kind", "price_tick"])
    ds.first_ts = int(head.column("exch_ts")[0].as_py())
    last = read_row_group(ds.path, pf, pf.num_row_groups - 1, ["exch_ts"]).column(0)
    ds.last_ts = int(pc.max(last).as_py())
    kinds = head.column("kind").to_numpy()
    prices = head.column("price_tick").to_numpy()
    sel = prices[(kinds == EventKind.ADD) & (prices > 0)][:100_000]
    if len(sel) == 0:
        sel = prices[prices > 0][:100_000]
    ds.ref_price_tick = int(np.median(sel)) if len(sel) else 0
    return ds


def _read_kv(path: Path) -> tuple[dict, dict]:
    md = parquet_file(path).schema_arrow.metadata or {}
    try:
        meta = json.loads(md.get(META_KEY, b"{}"))
        report = json.loads(md.get(REPORT_KEY, b"{}"))
    except json.JSONDecodeError as exc:
        raise DataError(path, None, "mmsim.meta", f"invalid JSON ({exc})") from exc
    return meta, report


def _write_synthetic(path: Path, params: dict[str, Any], seed: int, chunk: int) -> None:
    """Generate the synthetic flow into ``path`` (atomically, chunk by chunk; a failure or
    Ctrl-C leaves no temporary file)."""
    from mmsim.data.synthetic import SyntheticL3

    p = dict(params)
    n = int(p.pop("n_events", 2_000_000))
    gen = SyntheticL3(seed=seed, **p)
    meta = {
        "source": "synthetic",
        "symbol": "SYN",
        "clocks": 1,
        "params": params,
        "seed": seed,
        "note": "synthetic L3 order flow generated by mmsim (no external data)",
    }
    with CanonicalWriter(path, meta, {}) as w:
        done = 0
        while done < n:
            k = min(chunk, n - done)
            ev = gen.next_chunk(k)
            w.write(ev, chunk)
            done += k
            del ev
            pa.default_memory_pool().release_unused()


def _tidy_cache(cache: Path) -> None:
    """Remove the temporary and lock files that killed processes left in the cache."""
    clean_stale_temps(cache)
    clean_stale_locks(cache)


def _warn(msg: str) -> None:
    print(f"mmsim: warning: {msg}", file=sys.stderr)


def _cache_lock(path: Path) -> FileLock | None:
    """Hold ``<path>.lock`` while one process checks or builds a cache file (the others
    wait); None when the file system cannot lock (then the build is merely atomic)."""
    lock = FileLock(path.with_name(path.name + ".lock"))
    try:
        if not lock.acquire():
            _warn(f"waiting for {lock.holder() or 'another process'}, which is building "
                  f"{path}")
            lock.acquire(blocking=True)
    except OSError:
        return None
    return lock


def _cache_problem(path: Path) -> str | None:
    """Why the cache file ``path`` cannot be used (None if it can)."""
    try:
        h = check_hash(path)
    except OSError as e:
        return f"cannot be read ({e})"
    if h.status == "mismatch":
        return "differs from the bytes mmsim wrote (sha256 mismatch with its record)"
    if h.status == "unrecorded":
        return f"has no hash record ({hash_record_path(path).name})"
    return None


def _open_cached(path: Path, kind: str, inputs: dict[str, str],
                 build: Callable[[Path], Any]) -> Dataset:
    """The cache file ``path``: checked and used, or (re)built by ``build(path)``."""
    lock = _cache_lock(path)
    try:
        if path.exists():
            problem = _cache_problem(path)
            if problem is None:
                try:
                    meta, report = _read_kv(path)
                    ds = _summarise(Dataset(path, kind, meta, report, inputs))
                except DataError as e:
                    if e.reason == "no events":  # a faithful ingest of an empty input
                        raise
                    problem = f"is damaged ({e.reason})"
            if problem is None:
                ds.canonical_sha256 = recorded_sha256(path) or sha256_file(path)
                ds.cache_file = True
                return ds
            _warn(f"cache file {path} {problem}; ingesting it again")
            _remove_cache_file(path)
        build(path)
        meta, report = _read_kv(path)
        ds = _summarise(Dataset(path, kind, meta, report, inputs))
        ds.canonical_sha256 = recorded_sha256(path) or sha256_file(path)
        ds.cache_file = True
        return ds
    finally:
        if lock is not None:
            lock.release()


def _user_parquet_sha256(src: Path) -> str:
    """sha256 of a user's canonical file; if mmsim recorded another hash when it wrote it,
    every page is verified first (DataError if damaged) and a warning printed."""
    h = check_hash(src)
    if h.status == "mismatch":
        verify_pages(src)
        _warn(f"{src} changed since mmsim wrote it (sha256 differs from "
              f"{hash_record_path(src).name}); its page checksums verify: record updated")
        with contextlib.suppress(OSError):  # a read-only data root keeps the old record
            write_hash_record(src, h.sha256)
    return h.sha256


def open_dataset(
    data: DataConfig,
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    grid_hints: dict[str, Any] | None = None,
) -> Dataset:
    """Resolve ``data`` to a canonical event file, ingesting or generating it if needed.

    ``grid_hints`` (``tick_size``, ``lot_size``, ``symbol``, ``contract``, ``multiplier``) go to
    the L2 readers, which need the price and quantity grid to convert decimal strings
    exactly; ``data.gap_policy`` goes to the Binance reader. Both are part of the cache key.

    Returns
    -------
    Dataset
        With ``canonical_sha256`` set (see :class:`Dataset`).

    Raises
    ------
    mmsim.data.DataError
        If an input file is missing or malformed (file, row and field named), or a user's
        canonical Parquet file is damaged. A damaged *cache* file is ingested again
        instead (warning on stderr).
    """
    root = data_root_from(data_root)
    cache = cache_dir_from(cache_dir)
    kind = data.resolved_kind()
    if kind == "synthetic":
        params = dict(data.synthetic)
        key = hashlib.sha256(
            json.dumps({"p": params, "seed": seed, "v": READER_VERSION}, sort_keys=True).encode()
        ).hexdigest()[:20]
        cache.mkdir(parents=True, exist_ok=True)
        _tidy_cache(cache)
        path = cache / f"synthetic-{key}.parquet"
        return _open_cached(path, kind, {"synthetic": key},
                            lambda p: _write_synthetic(p, params, seed, 1_000_000))

    src = root / data.path
    if not src.is_file():
        raise DataError(src, None, None, f"data file not found (data root: {root})")
    if kind == "parquet":
        meta, report = _read_kv(src)
        digest = _user_parquet_sha256(src)
        ds = _summarise(Dataset(src, meta.get("source", "parquet"), meta, report,
                                {src.name: digest}))
        ds.canonical_sha256 = digest
        return ds

    files = [src]
    ob = None
    if data.orderbook:
        ob = root / data.orderbook
        if not ob.is_file():
            raise DataError(ob, None, None, f"orderbook file not found (data root: {root})")
        files.append(ob)
    extra = []
    for f in data.files:
        fp = root / f
        if not fp.is_file():
            raise DataError(fp, None, None, f"data file not found (data root: {root})")
        extra.append(fp)
        files.append(fp)
    inputs = {fp.name: sha256_file(fp) for fp in files}
    hints = {k: v for k, v in (grid_hints or {}).items() if v is not None}
    opts = dict(hints)
    gap_policy = None
    if kind == "binance":
        gap_policy = data.gap_policy
        opts["gap_policy"] = gap_policy
    key = hashlib.sha256(
        json.dumps({"in": inputs, "kind": kind, "v": READER_VERSION, "hints": opts},
                   sort_keys=True).encode()
    ).hexdigest()[:20]
    cache.mkdir(parents=True, exist_ok=True)
    _tidy_cache(cache)
    path = cache / f"{kind}-{key}.parquet"
    return _open_cached(path, kind, inputs,
                        lambda p: ingest_to(kind, src, ob, p, extra=extra,
                                            gap_policy=gap_policy, **hints))


def read_raw(
    kind: str,
    src: Path,
    orderbook: Path | None = None,
    extra: list[Path] | None = None,
    tick_size: float | None = None,
    lot_size: float | None = None,
    symbol: str | None = None,
    gap_policy: str | None = None,
    contract: str | None = None,
    multiplier: float | None = None,
):
    """Read raw vendor files of ``kind`` into an :class:`~mmsim.data.store.IngestResult`.

    Kinds: ``lobster`` (``src`` message file, optional ``orderbook``), ``databento``,
    ``binance`` (``src`` plus ``extra`` captures), ``binance_hist`` (snapshot, ``extra`` =
    [updates]), ``tardis`` (book CSV, ``extra`` = [trades CSV]), ``hftbacktest`` (``.npz``).

    Parameters
    ----------
    tick_size, lot_size : float, optional
        Price and quantity grid of the L2 readers (user units).
    symbol : str, optional
        Binance: the symbol to keep.
    contract, multiplier : optional
        Binance: the instrument's contract type (``linear``/``inverse``) and contract size,
        when the user set them (else the reader tells them from the stream names).
    gap_policy : {"error", "resync", "apply"}, optional
        Binance: what to do at an update-id gap (see :class:`mmsim.config.DataConfig`);
        None leaves the reader's default. Ignored by the other kinds.

    Raises
    ------
    ValueError
        Unknown kind or missing companion file / grid.
    mmsim.data.DataError
        Bad input (file, row and field named).
    """
    extra = list(extra or [])
    if kind == "lobster":
        from mmsim.data.lobster import read_lobster

        return read_lobster(src, orderbook)
    if kind == "databento":
        from mmsim.data.databento import read_databento

        return read_databento(src)
    if kind == "binance":
        from mmsim.data.binance import read_binance

        kw = {} if gap_policy is None else {"gap_policy": gap_policy}
        return read_binance([src, *extra], tick_size=tick_size, lot_size=lot_size,
                            symbol=symbol, contract=contract, multiplier=multiplier, **kw)
    if kind == "binance_hist":
        from mmsim.data.binance_hist import read_binance_hist

        if len(extra) != 1:
            raise ValueError("binance_hist: give the snapshot CSV, then the updates CSV")
        return read_binance_hist(src, extra[0], tick_size=tick_size or 0.1,
                                 lot_size=lot_size or 0.001)
    if kind == "tardis":
        from mmsim.data.tardis import read_tardis

        if tick_size is None or lot_size is None:
            raise ValueError("tardis: the tick size and lot size are required")
        return read_tardis(src, extra[0] if extra else None, tick_size=tick_size,
                           lot_size=lot_size)
    if kind == "hftbacktest":
        from mmsim.data.hftbacktest_npz import read_hftbacktest_npz

        if tick_size is None or lot_size is None:
            raise ValueError("hftbacktest: the tick size and lot size are required")
        return read_hftbacktest_npz(src, tick_size=tick_size, lot_size=lot_size)
    raise ValueError(f"cannot ingest data kind '{kind}'")


def ingest_to(kind: str, src: Path, orderbook: Path | None, out: Path, extra=None,
              **options) -> Path:
    """Ingest raw vendor files into canonical Parquet at ``out`` (atomically); returns it.

    ``options`` go to :func:`read_raw` (``tick_size``, ``lot_size``, ``symbol``,
    ``gap_policy``).

    Raises
    ------
    ValueError, mmsim.data.DataError
        As :func:`read_raw`.
    OSError
        If ``out`` cannot be written (nothing is left behind).
    """
    from mmsim.data.store import write_events

    write_events(out, read_raw(kind, src, orderbook, extra, **options))
    return out


def events_table(events: np.ndarray) -> pa.Table:
    return events_to_table(events)


def dataset_for_config(cfg, data_root=None, cache_dir=None) -> Dataset:
    """:func:`open_dataset` for an :class:`~mmsim.config.ExperimentConfig`: the instrument's
    tick size, lot size and symbol go to the readers that need them (and into the cache key),
    so a backtest and a sweep's pre-ingest resolve the same cached file."""
    hints = {k: cfg.instrument.get(k)
             for k in ("tick_size", "lot_size", "symbol", "contract", "multiplier")}
    return open_dataset(cfg.data, data_root, cache_dir, seed=cfg.seed, grid_hints=hints)
