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
from mmsim.data.registry import READER_OPTIONS, get_reader, is_registered, reader_names
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
from mmsim.dtypes import EVENT_DTYPE, EVENT_SCHEMA, events_to_table
from mmsim.enums import EventKind

__all__ = [
    "READER_VERSION", "Dataset", "cache_dir_from", "data_root_from", "dataset_for_config",
    "datasets_for_config", "ingest_to", "open_dataset", "read_raw", "sha256_file",
]

#: Bump when a reader's output changes, so caches are rebuilt (3: page checksums + hash
#: records).
READER_VERSION = "4"

#: Events per row group of a synthetic cache file: the group's columns and the writer's
#: encoded pages are in memory at once (generating the default experiment's 20 M events
#: peaked at 402 MB with 1 M, ~350 MB with 500 k). The events do not depend on it, the
#: file's bytes (and so its sha256 in the manifest) do: it is part of the cache key.
SYNTHETIC_ROW_GROUP = 500_000
#: Events the generator produces per call while a row group fills (its records are copied
#: into the group's columns: with whole groups as records, a group was in memory twice
#: more, as records and as their Arrow copy, and the pipeline peaked at ~400 MB, not ~375,
#: in the data phase). Neither the events nor the file's bytes depend on it.
SYNTHETIC_PIECE = 50_000


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
    # each row group is generated in small pieces into one reused buffer per field, which
    # Arrow writes without a copy: a group is in memory once (the stream does not depend on
    # the pieces' sizes, so neither do the file's bytes)
    cols = {name: np.empty(min(chunk, n), dtype=EVENT_DTYPE[name])
            for name in EVENT_SCHEMA.names}
    with CanonicalWriter(path, meta, {}) as w:
        done = 0
        while done < n:
            k = min(chunk, n - done)
            for s in range(0, k, SYNTHETIC_PIECE):
                ev = gen.next_chunk(min(SYNTHETIC_PIECE, k - s))
                for name in EVENT_SCHEMA.names:
                    cols[name][s:s + len(ev)] = ev[name]
            w.write_columns({name: c[:k] for name, c in cols.items()})
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
            _warn(f"waiting for {lock.holder() or 'another process'}, which is checking or "
                  f"building {path}")
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


def _cache_dataset(path: Path, kind: str, inputs: dict[str, str]) -> Dataset:
    """The cache file ``path`` read as a :class:`Dataset` (metadata and summary only).

    Raises
    ------
    DataError
        If its metadata or summary cannot be read (``reason`` says why).
    """
    meta, report = _read_kv(path)
    ds = _summarise(Dataset(path, kind, meta, report, inputs))
    ds.canonical_sha256 = recorded_sha256(path) or sha256_file(path)
    ds.cache_file = True
    return ds


def _open_cached(path: Path, kind: str, inputs: dict[str, str],
                 build: Callable[[Path], Any]) -> Dataset:
    """The cache file ``path``: checked and used, or (re)built by ``build(path)``.

    A file whose size and mtime still match the hash record mmsim wrote beside it is used
    without the lock: builds land by an atomic rename, so such a file is complete, and the
    workers of a sweep opening it at once do not queue behind one another. Anything else
    (no file, no or a stale record, a damaged file) is checked or built under the lock.
    """
    if path.exists() and recorded_sha256(path) is not None:
        try:
            return _cache_dataset(path, kind, inputs)
        except DataError as e:
            if e.reason == "no events":  # a faithful ingest of an empty input
                raise
        except OSError:
            pass  # replaced meanwhile, say: the locked path below decides
    lock = _cache_lock(path)
    try:
        if path.exists():
            problem = _cache_problem(path)
            if problem is None:
                try:
                    return _cache_dataset(path, kind, inputs)
                except DataError as e:
                    if e.reason == "no events":  # a faithful ingest of an empty input
                        raise
                    problem = f"is damaged ({e.reason})"
            _warn(f"cache file {path} {problem}; ingesting it again")
            _remove_cache_file(path)
        build(path)
        return _cache_dataset(path, kind, inputs)
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

    The format is ``data.resolved_kind()``, looked up in :mod:`mmsim.data.registry`: a
    ``generated`` format (``synthetic``) is generated into the cache, a ``canonical`` one
    (``parquet``) is read where it is, a ``raw`` one is ingested by its reader and cached.
    ``grid_hints`` (``tick_size``, ``lot_size``, ``symbol``, ``contract``, ``multiplier``) go to
    the readers that take them (the L2 readers need the price and quantity grid to convert
    decimal strings exactly) and all enter the cache key; of the ``data`` options,
    ``data.gap_policy`` goes to (and keys) the formats that take it (Binance), and so does
    ``data.l3_csv`` (as a mapping; ``l3_csv``).

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
    ValueError
        If ``data.kind`` is ``auto`` and the file name matches no format (or several), or
        the format does not take the companion files given (``data.orderbook``,
        ``data.files``) or misses some, or needs a grid that is not given.
    """
    root = data_root_from(data_root)
    cache = cache_dir_from(cache_dir)
    kind = data.resolved_kind()
    spec = get_reader(kind)
    if spec.role == "generated":  # synthetic: no files, generated into the cache
        params = dict(data.synthetic)
        key = hashlib.sha256(
            json.dumps({"p": params, "seed": seed, "v": READER_VERSION, "rg": SYNTHETIC_ROW_GROUP},
                       sort_keys=True).encode()
        ).hexdigest()[:20]
        cache.mkdir(parents=True, exist_ok=True)
        _tidy_cache(cache)
        path = cache / f"synthetic-{key}.parquet"
        return _open_cached(path, kind, {"synthetic": key},
                            lambda p: _write_synthetic(p, params, seed, SYNTHETIC_ROW_GROUP))

    src = root / data.path
    if not src.is_file():
        raise DataError(src, None, None, f"data file not found (data root: {root})")
    if spec.role == "canonical":  # parquet: read where it is
        meta, report = _read_kv(src)
        digest = _user_parquet_sha256(src)
        ds = _summarise(Dataset(src, meta.get("source", "parquet"), meta, report,
                                {src.name: digest}))
        ds.canonical_sha256 = digest
        return ds

    spec.check_inputs(bool(data.orderbook), len(data.files))
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
    # every grid hint enters the key, whichever format (as since READER_VERSION 1); the
    # ``data`` options (gap_policy) only for the formats that take them
    hints = {k: v for k, v in (grid_hints or {}).items() if v is not None}
    opts = dict(hints)
    data_opts = {o: _plain(getattr(data, o)) for o in spec.options
                 if READER_OPTIONS[o].source == "data" and getattr(data, o, None) is not None}
    opts.update(data_opts)
    key = hashlib.sha256(
        json.dumps({"in": inputs, "kind": kind, "v": READER_VERSION, "hints": opts},
                   sort_keys=True).encode()
    ).hexdigest()[:20]
    cache.mkdir(parents=True, exist_ok=True)
    _tidy_cache(cache)
    path = cache / f"{kind}-{key}.parquet"
    return _open_cached(path, kind, inputs,
                        lambda p: ingest_to(kind, src, ob, p, extra=extra,
                                            **{**hints, **data_opts}))


def _plain(value: Any) -> Any:
    """A ``data`` option as the reader and the cache key take it: a section (a config model,
    ``data.l3_csv``) as its JSON-able mapping, anything else as it is."""
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def read_raw(
    kind: str,
    src: Path,
    orderbook: Path | None = None,
    extra: list[Path] | None = None,
    **options: Any,
):
    """Read raw vendor files of ``kind`` into an :class:`~mmsim.data.store.IngestResult`.

    ``kind`` names a registered format (:mod:`mmsim.data.registry`; ``binance-hist`` or
    ``binance_hist``): ``lobster`` (``src`` message file, optional ``orderbook``),
    ``databento``, ``binance`` (``src`` plus ``extra`` captures), ``binance_hist``
    (snapshot, ``extra`` = [updates]), ``tardis`` (book CSV, ``extra`` = [trades CSV]),
    ``hftbacktest`` (``.npz``), or any format registered since. The reader module is
    imported now.

    Parameters
    ----------
    kind : str
    src : Path
        The main input file.
    orderbook : Path, optional
        The orderbook file, for a format that takes one (LOBSTER).
    extra : list of Path, optional
        Further files (``data.files``), as many as the format takes.
    **options
        Any of :data:`mmsim.data.registry.READER_OPTIONS`; each format takes its own and
        ignores the others, and None leaves the reader's default:
        ``tick_size``, ``lot_size`` (float: price and quantity grid of the L2 readers, user
        units), ``symbol`` (str; Binance: the symbol to keep), ``contract``, ``multiplier``
        (Binance: the instrument's contract type, ``linear``/``inverse``, and contract size,
        when the user set them; else the reader tells them from the stream names),
        ``gap_policy`` (``error``/``resync``/``apply``; Binance: what to do at an update-id
        gap, see :class:`mmsim.config.DataConfig`), ``l3_csv`` (``l3_csv``: the column and
        action map, a mapping or a YAML file, see :func:`mmsim.data.l3_csv.read_l3_csv`).

    Raises
    ------
    ValueError
        Unknown kind, a kind that is not read from raw files (``synthetic``, ``parquet``),
        companion files the format does not take or misses, or a missing grid.
    TypeError
        An option that is not in :data:`~mmsim.data.registry.READER_OPTIONS`.
    mmsim.data.DataError
        Bad input (file, row and field named).
    """
    unknown = sorted(set(options) - set(READER_OPTIONS))
    if unknown:
        raise TypeError(f"read_raw() got unknown option(s): {', '.join(unknown)}")
    spec = get_reader(kind) if is_registered(kind) else None
    if spec is None or spec.role != "raw":
        raise ValueError(f"cannot ingest data kind '{kind}' (readers: "
                         f"{', '.join(reader_names('raw'))})")
    return spec.call(src, orderbook, list(extra or []), options)


def ingest_to(kind: str, src: Path, orderbook: Path | None, out: Path, extra=None,
              **options) -> Path:
    """Ingest raw vendor files into canonical Parquet at ``out`` (atomically); returns it.

    ``options`` go to :func:`read_raw` (``tick_size``, ``lot_size``, ``symbol``,
    ``contract``, ``multiplier``, ``gap_policy``).

    Raises
    ------
    ValueError, TypeError, mmsim.data.DataError
        As :func:`read_raw`.
    OSError
        If ``out`` cannot be written (nothing is left behind).
    """
    from mmsim.data.store import write_events

    write_events(out, read_raw(kind, src, orderbook, extra, **options))
    return out


def events_table(events: np.ndarray) -> pa.Table:
    return events_to_table(events)


def _instrument_hints(instrument: dict[str, Any]) -> dict[str, Any]:
    """The fields of an ``instrument`` section the readers take (grid and symbol hints)."""
    return {k: instrument.get(k)
            for k, o in READER_OPTIONS.items() if o.source == "instrument"}


def dataset_for_config(cfg, data_root=None, cache_dir=None) -> Dataset:
    """:func:`open_dataset` for an :class:`~mmsim.config.ExperimentConfig`: the instrument's
    tick size, lot size and symbol go to the readers that need them (and into the cache key),
    so a backtest and a sweep's pre-ingest resolve the same cached file."""
    return open_dataset(cfg.data, data_root, cache_dir, seed=cfg.seed,
                        grid_hints=_instrument_hints(cfg.instrument))


def datasets_for_config(cfg, data_root=None, cache_dir=None) -> list[Dataset]:
    """The datasets of ``cfg.instruments`` (the further instruments of an
    :class:`~mmsim.config.ExperimentConfig`), in order, each opened as
    :func:`dataset_for_config` opens the quoted one: :func:`open_dataset` of its ``data``
    section with its own ``instrument`` section's hints (and the experiment's seed).

    Every entry's input files are checked to exist (and its format and companion files to
    fit) before any of them is ingested.

    Parameters
    ----------
    cfg : mmsim.config.ExperimentConfig
    data_root, cache_dir : path, optional
        As :func:`open_dataset`.

    Returns
    -------
    list of Dataset
        One per ``cfg.instruments`` entry (empty for a single-instrument experiment).

    Raises
    ------
    mmsim.data.DataError
        If an input file is missing or malformed (file, row and field named), as
        :func:`open_dataset`.
    ValueError
        As :func:`open_dataset` (format not told by the file name, companion files that do
        not fit the format).
    """
    root = data_root_from(data_root)
    for o in cfg.instruments:  # cheap checks first: no entry waits for another's ingest
        _check_inputs(o.data, root)
    return [open_dataset(o.data, data_root, cache_dir, seed=cfg.seed,
                         grid_hints=_instrument_hints(o.instrument))
            for o in cfg.instruments]


def _check_inputs(data: DataConfig, root: Path) -> None:
    """The checks :func:`open_dataset` makes before reading anything: the format is known,
    its companion files fit, every input file exists.

    Raises
    ------
    mmsim.data.DataError
        A missing input file (path and data root named).
    ValueError
        As :func:`open_dataset`.
    """
    spec = get_reader(data.resolved_kind())
    if spec.role == "generated":
        return
    src = root / data.path
    if not src.is_file():
        raise DataError(src, None, None, f"data file not found (data root: {root})")
    if spec.role == "canonical":
        return
    spec.check_inputs(bool(data.orderbook), len(data.files))
    for f, what in ([(data.orderbook, "orderbook")] if data.orderbook else []) + [
            (f, "data") for f in data.files]:
        fp = root / f
        if not fp.is_file():
            raise DataError(fp, None, None, f"{what} file not found (data root: {root})")
