"""Run directories: Parquet writers and readers, metrics, config and manifest.

A run directory holds ``fills.parquet``, ``orders.parquet``, ``equity.parquet``,
``metrics.json`` (and ``metrics.parquet``, one row), ``config.yaml`` (the config as run),
``manifest.json`` (mmsim version, data file hashes, seed, config digest; written last) and
``timing.json`` (wall time, events per second: the only file that differs between reruns).

Runs of several instruments (MODELS.md §12): every row of the three logs is converted with
the :class:`~mmsim.instruments.Instrument` of its kernel ``instrument`` index and carries the
instrument's name in a last ``instrument`` column (one value in single-instrument runs). The
manifest's ``instruments`` lists them in index order (index 0 = the quoted instrument), each
as ``{"name": ..., "instrument": <Instrument fields>}``; :func:`load` reads it into
:attr:`RunResult.instruments`.

It is written under ``<run_dir>.partial`` and renamed into place only when complete (every
file and the folder fsynced first), so a run that fails halfway leaves nothing that looks
complete (the partial folder is removed) and :func:`load` refuses a ``*.partial`` folder.

Output folders and files (run directories, ``mmsim ingest --out``, sweep folders,
model-market runs) are claimed with :func:`claim_output` before any work: the target must be
absent, an empty folder, or something mmsim wrote (then it is replaced, or a sweep resumed
in it), never a user's folder or file; and ``<target>.lock`` is locked, so a second process
writing the same target fails at once (:class:`OutputLockedError`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mmsim.data.store import (
    FileLock,
    clean_stale_temps,
    fsync_dir,
    fsync_tree,
    is_canonical,
)
from mmsim.enums import LIQUIDITY_NAMES, ORDER_EVENT_NAMES, REJECT_NAMES, TIF_NAMES
from mmsim.instruments import Instrument

#: The optional market-signal log of a run (``signals.record: true``; :func:`load_signals`).
SIGNALS_FILE = "signals.parquet"
#: Files of a backtest run directory (``manifest.json`` lists what a run holds in ``files``).
RUN_FILES = frozenset({"fills.parquet", "orders.parquet", "equity.parquet", "metrics.json",
                       "metrics.parquet", "config.yaml", "manifest.json", "timing.json",
                       SIGNALS_FILE})
#: What ``mmsim report`` adds to a run or sweep folder.
REPORT_DIR = "report"
#: Entries of a sweep folder (:mod:`mmsim.sweep`).
SWEEP_ENTRIES = frozenset({"sweep.json", "sweep.parquet", "runs", REPORT_DIR})
#: Marker file in a ``<run>.partial`` folder while mmsim writes it.
PARTIAL_MARKER = ".mmsim-partial"
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"

FILLS_SCHEMA = pa.schema(
    [
        ("exch_ts", pa.int64()),
        ("local_ts", pa.int64()),
        ("order_id", pa.int64()),
        ("side", pa.int8()),
        ("price", pa.float64()),
        ("qty", pa.float64()),
        ("fee", pa.float64()),
        ("liquidity", pa.string()),
        ("is_hedge", pa.bool_()),
        ("mid", pa.float64()),
        ("position", pa.float64()),
        ("cash", pa.float64()),
        ("queue_ahead", pa.float64()),
        ("instrument", pa.string()),
    ]
)
ORDERS_SCHEMA = pa.schema(
    [
        ("local_ts", pa.int64()),
        ("exch_ts", pa.int64()),
        ("order_id", pa.int64()),
        ("event", pa.string()),
        ("side", pa.int8()),
        ("price", pa.float64()),
        ("qty", pa.float64()),
        ("leaves_qty", pa.float64()),
        ("fill_qty", pa.float64()),
        ("tif", pa.string()),
        ("reason", pa.string()),
        ("is_hedge", pa.bool_()),
        ("instrument", pa.string()),
    ]
)
EQUITY_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("mid", pa.float64()),
        ("position", pa.float64()),
        ("cash", pa.float64()),
        ("equity", pa.float64()),
        ("fees", pa.float64()),
        ("traded_qty", pa.float64()),
        ("n_fills", pa.int64()),
        ("funding", pa.float64()),
        ("instrument", pa.string()),
    ]
)
#: Name of the column (last in each log) holding the instrument's name.
INSTRUMENT_COLUMN = "instrument"


def _names(codes: np.ndarray, table: dict[int, str]) -> pa.Array:
    lut = np.array([table.get(i, "") for i in range(256)], dtype=object)
    return pa.array(lut[codes.astype(np.int64)], type=pa.string())


def equity_values(inst: Instrument, position_units, mid_px, cash):
    """Equity marked to mid (MODELS.md §9): ``cash + q·mid·multiplier`` (linear) or
    ``cash − q·multiplier/mid`` (inverse, in coin)."""
    if inst.is_inverse:
        return cash - position_units * inst.multiplier / mid_px
    return cash + position_units * mid_px * inst.multiplier


def _name_column(n: int, name: str) -> pa.Array:
    return pa.repeat(pa.scalar(name, pa.string()), n)


def fills_table(rec: np.ndarray, inst: Instrument, name: str | None = None) -> pa.Table:
    """Engine fill records (``FILL_DTYPE``) of ONE instrument → user units
    (:data:`FILLS_SCHEMA`).

    Parameters
    ----------
    rec : numpy.ndarray
        ``FILL_DTYPE`` records, all of ``inst`` (their ``instrument`` field, if any, is not
        read: split several instruments with :func:`records_table`).
    inst : Instrument
        Gives the tick size and lot size (``price = price_tick·tick_size``, quantities in
        instrument units ``= lots·lot_size``); fees and cash stay in its settlement currency.
    name : str, optional
        Value of the ``instrument`` column (default ``inst.symbol``).
    """
    t, lot = inst.tick_size, inst.lot_size
    return pa.Table.from_arrays(
        [
            pa.array(rec["exch_ts"]),
            pa.array(rec["local_ts"]),
            pa.array(rec["order_id"]),
            pa.array(rec["side"]),
            pa.array(rec["price_tick"] * t),
            pa.array(rec["qty"] * lot),
            pa.array(rec["fee"]),
            _names(rec["liquidity"], LIQUIDITY_NAMES),
            pa.array(rec["is_hedge"].astype(bool)),
            pa.array(rec["mid_tick"] * t),
            pa.array(rec["position"] * lot),
            pa.array(rec["cash"]),
            pa.array(rec["queue_ahead"] * lot),
            _name_column(len(rec), inst.symbol if name is None else name),
        ],
        schema=FILLS_SCHEMA,
    )


def orders_table(rec: np.ndarray, inst: Instrument, name: str | None = None) -> pa.Table:
    """Engine order-log records (``ORDER_LOG_DTYPE``) of ONE instrument → user units
    (:data:`ORDERS_SCHEMA`).

    Market orders carry no price (NaN). ``name`` is the value of the ``instrument`` column
    (default ``inst.symbol``); as :func:`fills_table`.
    """
    t, lot = inst.tick_size, inst.lot_size
    price = rec["price_tick"] * t
    price = np.where(rec["tif"] == 3, np.nan, price)
    return pa.Table.from_arrays(
        [
            pa.array(rec["local_ts"]),
            pa.array(rec["exch_ts"]),
            pa.array(rec["order_id"]),
            _names(rec["event"], ORDER_EVENT_NAMES),
            pa.array(rec["side"]),
            pa.array(price),
            pa.array(rec["qty"] * lot),
            pa.array(rec["leaves_qty"] * lot),
            pa.array(rec["fill_qty"] * lot),
            _names(rec["tif"], TIF_NAMES),
            _names(rec["reason"], REJECT_NAMES),
            pa.array(rec["is_hedge"].astype(bool)),
            _name_column(len(rec), inst.symbol if name is None else name),
        ],
        schema=ORDERS_SCHEMA,
    )


def _ffill(x: np.ndarray, first: float) -> np.ndarray:
    """Forward-fill NaNs, starting from ``first`` (NaN allowed)."""
    x = np.concatenate([[first], x])
    idx = np.where(np.isnan(x), 0, np.arange(len(x)))
    np.maximum.accumulate(idx, out=idx)
    return x[idx][1:]


def equity_table(rec: np.ndarray, inst: Instrument, last_mid: float = np.nan,
                 name: str | None = None) -> pa.Table:
    """Engine equity samples (``EQUITY_DTYPE``) of ONE instrument → user units
    (:data:`EQUITY_SCHEMA`).

    ``mid`` is the exchange mid at the sample (NaN while a side of the book is empty);
    ``equity`` (settlement currency of ``inst``: quote currency, coin for inverse) marks
    the position at the last known mid (``last_mid`` carries it across chunks) and is the
    cash alone while flat. ``name`` is the value of the ``instrument`` column (default
    ``inst.symbol``).
    """
    mid = rec["mid_tick"] * inst.tick_size
    pos = rec["position"] * inst.lot_size
    mark = _ffill(mid, last_mid)
    eq = equity_values(inst, pos, mark, rec["cash"])
    eq = np.where(pos == 0, rec["cash"], eq)
    return pa.Table.from_arrays(
        [
            pa.array(rec["ts"]),
            pa.array(mid),
            pa.array(pos),
            pa.array(rec["cash"]),
            pa.array(eq),
            pa.array(rec["fees"]),
            pa.array(rec["traded_qty"] * inst.lot_size),
            pa.array(rec["n_fills"]),
            pa.array(rec["funding"]),
            _name_column(len(rec), inst.symbol if name is None else name),
        ],
        schema=EQUITY_SCHEMA,
    )


def signals_table(rec: np.ndarray, name: str) -> pa.Table:
    """Signal rows (``ts``, signal columns of :data:`mmsim.dtypes.SIGNAL_RECORD_DTYPE`,
    ``instrument``) as a table: ``ts`` int64 local ns, each signal float64 in its units
    (NaN where undefined), then the ``instrument`` name column."""
    cols = {k: pa.array(rec[k]) for k in rec.dtype.names if k != INSTRUMENT_COLUMN}
    cols[INSTRUMENT_COLUMN] = _name_column(len(rec), name)
    return pa.table(cols)


def load_signals(run_dir: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The run's ``signals.parquet`` as pandas (one row per instrument and equity-clock
    sample: ``ts`` int64 local ns, the recorded signals, ``instrument``), or None if the run
    did not record signals."""
    p = Path(run_dir) / SIGNALS_FILE
    return pd.read_parquet(p) if p.is_file() else None


def instrument_index(rec: np.ndarray, n_instruments: int) -> np.ndarray | None:
    """The kernel ``instrument`` index of each record (int64), or None when every record
    is of instrument 0 (or the dtype has no ``instrument`` field: a single-instrument run).

    Raises
    ------
    ValueError
        If an index is ``>= n_instruments`` (the writer does not know that instrument).
    """
    if "instrument" not in (rec.dtype.names or ()) or len(rec) == 0:
        return None
    idx = rec["instrument"].astype(np.int64)
    top = int(idx.max())
    if top >= n_instruments:
        raise ValueError(f"record of instrument index {top}, but only {n_instruments} "
                         "instrument(s) set (RunWriter.set_instruments)")
    return idx if top > 0 else None


def records_table(
    rec: np.ndarray,
    n_instruments: int,
    convert: Callable[[np.ndarray, int], pa.Table],
) -> pa.Table:
    """Convert records of several instruments, each with its own instrument, keeping the
    records' order.

    Parameters
    ----------
    rec : numpy.ndarray
        Kernel records (``FILL_DTYPE``, ``ORDER_LOG_DTYPE`` or ``EQUITY_DTYPE``), with or
        without an ``instrument`` (uint8) field.
    n_instruments : int
        Number of instruments known.
    convert : callable
        ``convert(records_of_one_instrument, index) -> pyarrow.Table`` (e.g. a
        :func:`fills_table` with that instrument); called once per instrument present, in
        index order, with the records in their original order.

    Returns
    -------
    pyarrow.Table
        The converted rows in the order of ``rec``. With one instrument present this is
        ``convert(rec, i)`` itself.

    Raises
    ------
    ValueError
        As :func:`instrument_index`.
    """
    idx = instrument_index(rec, n_instruments)
    if idx is None:
        return convert(rec, 0)
    present = np.unique(idx)
    if len(present) == 1:
        return convert(rec, int(present[0]))
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(n_instruments + 1))
    parts = [convert(rec[order[bounds[i]:bounds[i + 1]]], i)
             for i in range(n_instruments) if bounds[i] < bounds[i + 1]]
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pa.concat_tables(parts).take(pa.array(inverse)).combine_chunks()


# --------------------------------------------------------------------------------------------
# claiming an output
# --------------------------------------------------------------------------------------------


class OutputError(FileExistsError):
    """An output target (``--out``) cannot be used: it is a user's folder or file, a file
    where a folder is needed (or the reverse), or it cannot be created. The message names
    the path and what to do.

    Attributes
    ----------
    path : Path
        The target.
    """

    def __init__(self, path: str | os.PathLike[str], message: str):
        self.path = Path(path)
        self.reason = message
        super().__init__(f"{path}: {message}")

    def __reduce__(self):  # picklable (sweep workers)
        return (type(self), (self.path, self.reason))


class OutputLockedError(OutputError):
    """Another mmsim process is writing the same output target (its lock is held)."""


OutputKind = Literal["run", "sweep", "parquet"]


def _entries(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def _foreign(names: list[str], allowed: set[str] | frozenset[str]) -> list[str]:
    """The names mmsim would not have written among ``names``."""
    return [n for n in names if n not in allowed]


def _describe(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _marker_json(d: Path, names: list[str], name: str, key: str) -> tuple[dict, str | None]:
    """The JSON file ``name`` that marks a folder as mmsim's, and why it does not (None if
    it does): it must exist, parse as a mapping and hold ``key``."""
    if name not in names:
        return {}, f"holds {_describe(names)} but no {name}"
    try:
        doc = json.loads((d / name).read_text())
    except (OSError, ValueError) as e:
        return {}, f"its {name} is not mmsim's ({e})"
    if not isinstance(doc, dict) or key not in doc:
        return {}, f"its {name} is not mmsim's (no {key})"
    return doc, None


def run_dir_problem(d: Path) -> str | None:
    """Why the existing folder ``d`` is not a run directory mmsim wrote (None if it is).

    A run directory holds a ``manifest.json`` with ``mmsim_version`` (complete or not) and
    nothing but the files its manifest lists (``files``), the files of a backtest run
    (:data:`RUN_FILES`) and ``report/``.
    """
    names = _entries(d)
    man, problem = _marker_json(d, names, "manifest.json", "mmsim_version")
    if problem:
        return problem
    files = man.get("files") or []
    allowed = set(RUN_FILES) | {REPORT_DIR} | {str(f) for f in files if isinstance(f, str)}
    extra = _foreign(names, allowed)
    if REPORT_DIR in names:
        rep = d / REPORT_DIR
        if not rep.is_dir() or rep.is_symlink():
            extra.append(REPORT_DIR)
        else:  # what `mmsim report` writes: charts and the page
            extra += [f"{REPORT_DIR}/{n}" for n in _entries(rep)
                      if not (n.endswith(".png") or n.endswith(".html"))
                      or not (rep / n).is_file()]
    if extra:
        return f"holds files mmsim did not write: {_describe(extra)}"
    return None


def _is_temp_name(name: str) -> bool:
    return name.endswith(".tmp") and name.startswith(".")


def sweep_dir_problem(d: Path) -> str | None:
    """Why the existing folder ``d`` is not a sweep folder mmsim wrote (None if it is):
    it must hold a ``sweep.json`` with ``sweep_digest`` and nothing but
    :data:`SWEEP_ENTRIES` and mmsim's temporary files."""
    names = _entries(d)
    _meta, problem = _marker_json(d, names, "sweep.json", "sweep_digest")
    if problem:
        return problem
    extra = [n for n in _foreign(names, SWEEP_ENTRIES) if not _is_temp_name(n)]
    if extra:
        return f"holds files mmsim did not write: {_describe(extra)}"
    return None


_MODEL_MARKET_FILES = frozenset({"table.parquet", "table.md", "paths.parquet"})


def _old_partial_name(n: str) -> bool:
    return (n in RUN_FILES or n in _MODEL_MARKET_FILES
            or (n.startswith("profit_hist_") and n.endswith(".png")))


def _partial_is_ours(p: Path) -> bool:
    """A ``<target>.partial`` folder mmsim left: it holds the marker, or (older mmsim
    versions) only files a run writes."""
    try:
        names = _entries(p)
    except OSError:
        return False
    return PARTIAL_MARKER in names or all(_old_partial_name(n) for n in names)


@dataclass
class OutputClaim:
    """A claimed output target (see :func:`claim_output`): the lock is held until
    :meth:`release` (or :meth:`publish_dir`, or the end of a ``with`` block).

    Attributes
    ----------
    path : Path
        The target, absolute.
    kind : {"run", "sweep", "parquet"}
    state : {"absent", "empty", "ours"}
        What was there when claimed.
    lock : FileLock
        The lock on ``<path>.lock``.
    """

    path: Path
    kind: str
    state: str
    lock: FileLock = field(repr=False)

    @property
    def partial(self) -> Path:
        """``<path>.partial``: where a run directory is written before :meth:`publish_dir`."""
        return self.path.with_name(self.path.name + PARTIAL_SUFFIX)

    def check(self) -> str:
        """Check the target again (it may have changed since it was claimed); return its
        state. Raises :class:`OutputError` as :func:`claim_output`."""
        return _target_state(self.path, self.kind, True)

    def new_partial(self) -> Path:
        """Create an empty ``<path>.partial`` (holding only a marker file) and return it;
        a partial folder left by a dead mmsim run is removed first.

        Raises
        ------
        OutputError
            If ``<path>.partial`` exists and is not mmsim's (a file, or a folder with
            other files).
        """
        p = self.partial
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            raise OutputError(p, "exists and is not a folder mmsim wrote; move it away")
        if p.exists():
            if not _partial_is_ours(p):
                raise OutputError(p, "exists and holds files mmsim did not write; move it "
                                     "away")
            shutil.rmtree(p)
        p.mkdir()
        (p / PARTIAL_MARKER).write_text(f"{os.getpid()}\n")
        return p

    def publish_dir(self, tmp: str | os.PathLike[str]) -> Path:
        """Move the finished folder ``tmp`` (normally :attr:`partial`) to :attr:`path`:
        fsync its files and itself, check the target again, remove what was there (only
        if mmsim wrote it), rename, fsync the parent; then release the lock.

        Raises
        ------
        OutputError
            If the target changed into something mmsim did not write meanwhile (``tmp`` is
            kept then).
        """
        tmp = Path(tmp)
        with contextlib.suppress(FileNotFoundError):
            (tmp / PARTIAL_MARKER).unlink()
        fsync_tree(tmp)
        state = self.check()
        if state == "ours":
            shutil.rmtree(self.path)
        elif state == "empty":
            self.path.rmdir()
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self.release()
        return self.path

    def release(self) -> None:
        """Release the lock (and remove the lock file); safe to call twice."""
        self.lock.release()

    def __enter__(self) -> OutputClaim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _target_state(path: Path, kind: str, replace: bool, shown: str | None = None) -> str:
    """State of the target ``path`` (absolute); errors name it as ``shown``."""
    name = shown if shown is not None else str(path)
    if path.is_symlink():
        raise OutputError(name, "is a symbolic link; give the real path (or another --out)")
    if not path.exists():
        return "absent"
    if kind == "parquet":
        if path.is_dir():
            raise OutputError(name, "is a folder; give a .parquet file name to --out")
        if not is_canonical(path):
            raise OutputError(name, "exists and is not a canonical event file written by "
                                    "mmsim (no mmsim.meta in its Parquet metadata); refusing "
                                    "to replace it: choose another --out")
        if not replace:
            raise OutputError(name, "exists (an mmsim event file); choose another --out")
        return "ours"
    if not path.is_dir():
        raise OutputError(name, "is a file, not a folder; give a folder to --out")
    cwd = Path.cwd().resolve()
    real = path.resolve()
    if real == cwd or real in cwd.parents:
        raise OutputError(name, f"is the working directory {cwd} (or holds it); choose "
                                "another --out")
    if not os.listdir(path):
        return "empty"
    problem = run_dir_problem(path) if kind == "run" else sweep_dir_problem(path)
    what = "a run directory" if kind == "run" else "a sweep folder"
    if problem is not None:
        raise OutputError(name, f"exists and is not {what} written by mmsim ({problem}); "
                                "refusing to replace it: choose another --out or empty it")
    if kind == "run" and not replace:
        raise OutputError(name, "run directory exists (use another --out)")
    return "ours"


def claim_output(path: str | os.PathLike[str], kind: OutputKind, *,
                 replace: bool = True) -> OutputClaim:
    """Check an output target and lock it, before any long work.

    The one gate of every mmsim writer (:class:`RunWriter`, ``mmsim ingest``, sweeps,
    model-market runs): the parent folders are created, ``<path>.lock`` is locked
    (:class:`~mmsim.data.store.FileLock`: pid recorded; released by the kernel when a
    process dies, so a dead run never blocks) and the target checked under the lock.

    Parameters
    ----------
    path : str or os.PathLike
        The target.
    kind : {"run", "sweep", "parquet"}
        ``run``: a run directory; it may be absent, an empty folder or a run directory
        mmsim wrote (:func:`run_dir_problem`), which is replaced when the run commits.
        ``sweep``: a sweep folder; absent, empty or one mmsim wrote
        (:func:`sweep_dir_problem`), resumed in place. ``parquet``: a canonical event
        file; absent or a file whose Parquet metadata holds ``mmsim.meta``.
    replace : bool
        False refuses an existing run or event file too.

    Returns
    -------
    OutputClaim
        Holding the lock; release it with :meth:`OutputClaim.release` (or ``with``).

    Raises
    ------
    OutputLockedError
        If another process holds the lock (the message names its pid and host).
    OutputError
        If the target (or a parent) is a file where a folder is needed or the reverse, a
        symbolic link, the working directory, something mmsim did not write, or exists
        with ``replace=False``; or the folder or lock file cannot be created.
    """
    p = Path(os.path.abspath(os.fspath(path)))
    if p.name in ("", ".", ".."):
        raise OutputError(path, "is not a usable output name")
    for a in p.parents:
        if a.exists() or a.is_symlink():
            if not a.is_dir():
                raise OutputError(path, f"{a} is a file, not a folder")
            break
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(path, f"cannot create its folder ({e.strerror or e})") from e
    lock = FileLock(p.with_name(p.name + LOCK_SUFFIX))
    try:
        got = lock.acquire()
    except OSError as e:
        raise OutputError(path, f"cannot create the lock file {lock.path.name} "
                                f"({e.strerror or e})") from e
    if not got:
        who = lock.holder() or "another process"
        raise OutputLockedError(path, f"in use by another mmsim run ({who}); wait for it or "
                                      f"choose another --out (lock file: {lock.path})")
    try:
        state = _target_state(p, kind, replace, os.fspath(path))
        if kind == "parquet":
            clean_stale_temps(p.parent, p.name)
    except BaseException:
        lock.release()
        raise
    return OutputClaim(p, kind, state, lock)


class RunWriter:
    """Streams a run's logs to Parquet under ``<run_dir>.partial`` and commits atomically.

    Constructing it claims the run directory (:func:`claim_output` with kind ``run``):
    the target is checked and ``<run_dir>.lock`` locked *before* any work, so build it
    first — before the data is opened and the kernels compiled. :meth:`commit` and
    :meth:`abort` release the lock; so does leaving a ``with`` block (aborting unless
    committed).

    Parameters
    ----------
    run_dir : path
        Final location: absent, an empty folder, or a run directory mmsim wrote (replaced
        at :meth:`commit`; with ``overwrite=False`` it must not exist).
    instrument : Instrument, optional
        For the conversion of ticks and lots to prices and quantities; may be set later
        (:attr:`instrument`, :meth:`set_instrument` or, for several instruments,
        :meth:`set_instruments`), but before :meth:`append`.
    overwrite : bool
        Replace an existing mmsim run directory at ``run_dir``.

    Raises
    ------
    OutputLockedError
        If another process is writing ``run_dir``.
    OutputError
        If ``run_dir`` is a file, a user's folder (not empty, not written by mmsim), the
        working directory, a symbolic link, or exists while ``overwrite`` is false (all
        subclasses of ``FileExistsError``).
    """

    def __init__(self, run_dir: str | Path, instrument: Instrument | None = None,
                 overwrite: bool = False):
        self.run_dir = Path(run_dir)
        self.insts: list[Instrument] = []
        self.names: list[str] = []
        self._last_mid = np.empty(0)
        self._appended = False
        if instrument is not None:  # checked before the target is claimed
            self.set_instrument(instrument)
        self.claim = claim_output(self.run_dir, "run", replace=overwrite)
        try:
            self.tmp = self.claim.new_partial()
        except BaseException:  # a <out>.partial that is not ours stays untouched
            self.claim.release()
            raise
        try:
            self._w = {
                "fills": pq.ParquetWriter(self.tmp / "fills.parquet", FILLS_SCHEMA),
                "orders": pq.ParquetWriter(self.tmp / "orders.parquet", ORDERS_SCHEMA),
                "equity": pq.ParquetWriter(self.tmp / "equity.parquet", EQUITY_SCHEMA),
            }
        except BaseException:
            shutil.rmtree(self.claim.partial, ignore_errors=True)
            self.claim.release()
            raise
        self.overwrite = overwrite
        self._frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None
        self._done = False

    @property
    def inst(self) -> Instrument | None:
        """The quoted instrument (index 0), or None while none is set."""
        return self.insts[0] if self.insts else None

    @property
    def instrument(self) -> Instrument | None:
        """The quoted instrument (index 0) the logs are converted with (set it before
        :meth:`append`); setting it is :meth:`set_instrument`."""
        return self.inst

    @instrument.setter
    def instrument(self, inst: Instrument) -> None:
        self.set_instrument(inst)

    def set_instrument(self, inst: Instrument) -> None:
        """Set the one instrument the logs are converted with (before :meth:`append`):
        ``set_instruments([inst], [inst.symbol])``."""
        self.set_instruments([inst], [inst.symbol])

    def set_instruments(self, instruments: Sequence[Instrument], names: Sequence[str]) -> None:
        """Set the instruments of the run (before :meth:`append`).

        Parameters
        ----------
        instruments : sequence of Instrument
            In kernel index order: record ``instrument == i`` is converted with
            ``instruments[i]`` (index 0 = the quoted instrument).
        names : sequence of str
            Their names, the values of the ``instrument`` column (distinct, non-empty);
            written to the manifest's ``instruments`` at :meth:`commit`.

        Raises
        ------
        ValueError
            If there is no instrument or more than 256, the lengths differ, or a name is
            empty or repeated.
        RuntimeError
            If records were appended already.
        """
        instruments, names = list(instruments), [str(n) for n in names]
        if not 1 <= len(instruments) <= 256:
            raise ValueError(f"RunWriter.set_instruments: 1 to 256 instruments, got "
                             f"{len(instruments)}")
        if len(names) != len(instruments):
            raise ValueError(f"RunWriter.set_instruments: {len(instruments)} instruments but "
                             f"{len(names)} names")
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"RunWriter.set_instruments: names must be distinct and "
                             f"non-empty, got {names}")
        if self._appended:
            raise RuntimeError("RunWriter.set_instruments: records were appended already")
        self.insts, self.names = instruments, names
        self._last_mid = np.full(len(instruments), np.nan)

    def append(self, fills: np.ndarray, orders: np.ndarray, equity: np.ndarray,
               signals: np.ndarray | None = None) -> None:
        """Append engine records (any of them may be empty).

        ``signals`` (given only by a run with ``signals.record: true``): signal rows
        (``ts``, the asked SIGNAL_RECORD_DTYPE columns, ``instrument``), written to
        ``signals.parquet`` (:func:`signals_table`), which the first call with them creates.

        Each record is converted with the instrument of its ``instrument`` field (index into
        :meth:`set_instruments`; records without the field are of instrument 0), rows kept
        in the order given. The equity ``mid`` carried across chunks (to mark a position
        while a side of the book is empty) is kept per instrument.

        Raises
        ------
        RuntimeError
            If no instrument is set, or the writer was committed or aborted.
        ValueError
            If a record's instrument index is not one of the instruments set.
        """
        if not self.insts:
            raise RuntimeError("RunWriter.append: set the instrument first")
        if self._done:
            raise RuntimeError("RunWriter.append: the run was committed or aborted")
        n = len(self.insts)
        insts, names = self.insts, self.names
        if len(fills):
            self._w["fills"].write_table(records_table(
                fills, n, lambda r, i: fills_table(r, insts[i], names[i])))
            self._appended = True
        if len(orders):
            self._w["orders"].write_table(records_table(
                orders, n, lambda r, i: orders_table(r, insts[i], names[i])))
            self._appended = True
        if len(equity):
            self._w["equity"].write_table(records_table(equity, n, self._equity_part))
            self._appended = True
        if signals is not None:
            table = records_table(signals, n, lambda r, i: signals_table(r, names[i]))
            if "signals" not in self._w:
                self._w["signals"] = pq.ParquetWriter(self.tmp / SIGNALS_FILE, table.schema)
            if len(signals):
                self._w["signals"].write_table(table)

    def _equity_part(self, rec: np.ndarray, i: int) -> pa.Table:
        inst = self.insts[i]
        table = equity_table(rec, inst, float(self._last_mid[i]), self.names[i])
        mids = rec["mid_tick"][~np.isnan(rec["mid_tick"])]
        if len(mids):
            self._last_mid[i] = float(mids[-1]) * inst.tick_size
        return table

    def _manifest_instruments(self) -> list[dict[str, Any]]:
        return [{"name": n, "instrument": inst.model_dump()}
                for n, inst in zip(self.names, self.insts, strict=True)]

    def close_logs(self) -> None:
        """Close the three Parquet logs (before :meth:`read_back`)."""
        for w in self._w.values():
            w.close()

    def read_back(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The logs written so far, as pandas (after :meth:`close_logs`); kept for
        :meth:`commit`'s result."""
        # decoded through the C allocator, not Arrow's default pool (mimalloc), which keeps
        # about 20 MB of freed pages per 15 MB log even after release_unused (the run's peak
        # memory is here); the arrays the frames keep stay valid after the pool is restored
        pool, default = pa.system_memory_pool(), pa.default_memory_pool()
        pa.set_memory_pool(pool)
        frames = []
        try:
            for name in ("fills", "orders", "equity"):
                frames.append(pd.read_parquet(self.tmp / f"{name}.parquet"))
                pool.release_unused()  # (the decoded table's buffers, before the next log)
        finally:
            pa.set_memory_pool(default)
        self._frames = tuple(frames)
        return self._frames

    def commit(
        self,
        metrics: dict[str, Any],
        config: dict[str, Any],
        manifest: dict[str, Any],
        timing: dict[str, Any],
    ) -> RunResult:
        """Write metrics, config, manifest (last), fsync everything and move the run into
        place (replacing the mmsim run that was there); release the lock.

        The manifest gets ``instruments`` (``[{"name", "instrument"}]`` in index order, from
        :meth:`set_instruments`; replacing any given), ``complete: true`` and ``files`` (the
        run's file names).

        Returns
        -------
        RunResult
            The run as :func:`load` would read it, built from the logs already read by
            :meth:`read_back` (the run directory is not read again).

        Raises
        ------
        OutputError
            If the target turned into something mmsim did not write during the run (the
            run is then left in ``<run_dir>.partial``).
        OSError
            If a file cannot be written (call :meth:`abort`).
        """
        metrics = _jsonable(metrics)
        (self.tmp / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        pq.write_table(pa.Table.from_pylist([metrics]), self.tmp / "metrics.parquet")
        (self.tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (self.tmp / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
        names = sorted(n for n in os.listdir(self.tmp) if n != PARTIAL_MARKER)
        manifest = dict(manifest, instruments=self._manifest_instruments(), complete=True,
                        files=sorted({*names, "manifest.json"}))
        (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        try:
            self.claim.publish_dir(self.tmp)
        except OutputError as e:
            self._done = True  # keep the partial folder: the target is not ours any more
            self.claim.release()
            raise OutputError(e.path, f"{e.reason}; the finished run is kept in "
                                      f"{self.tmp}") from None
        self._done = True
        fills, orders, equity = self._frames
        return RunResult(
            run_dir=self.run_dir,
            fills=fills,
            orders=orders,
            equity=equity,
            metrics=_metrics_from_json(metrics),
            config=config,
            manifest=json.loads(json.dumps(manifest)),
            instruments=list(self.names),
        )

    def abort(self) -> None:
        """Close and remove the partial run; release the lock (no-op after commit)."""
        if self._done:
            return
        self._done = True
        for w in self._w.values():
            try:
                w.close()
            except Exception:  # noqa: BLE001 - best effort while failing
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.claim.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not np.isfinite(v):
            v = None if np.isnan(v) else v
        out[k] = v
    return out


def _metrics_from_json(d: dict[str, Any]) -> dict[str, Any]:
    """metrics.json stores NaN as null: back to NaN."""
    return {k: (np.nan if v is None else v) for k, v in d.items()}


@dataclass(repr=False)
class RunResult:
    """A finished run, as pandas.

    Attributes
    ----------
    run_dir : Path
    fills, orders, equity : pandas.DataFrame
        See :data:`FILLS_SCHEMA`, :data:`ORDERS_SCHEMA`, :data:`EQUITY_SCHEMA` (timestamps are
        int64 UNIX ns, prices in quote currency, quantities in instrument units, money in
        the settlement currency of the row's instrument). All instruments' rows together;
        the last column ``instrument`` names the row's instrument (:meth:`fills_of`,
        :meth:`orders_of`, :meth:`equity_of` select one). The equity clock has one row per
        instrument per sample time (same ``ts``, in index order).
    metrics : dict
        Flat metrics (MODELS.md §9; several instruments: also ``inst.<name>.<metric>`` and
        ``book_*``, see :func:`mmsim.metrics.compute_run_metrics`); ``metrics_frame()``
        gives them as one-row DataFrame.
    config : dict
    manifest : dict
    instruments : list of str
        The instruments' names in kernel index order (0 = the quoted instrument).
    """

    run_dir: Path
    fills: pd.DataFrame
    orders: pd.DataFrame
    equity: pd.DataFrame
    metrics: dict[str, Any]
    config: dict[str, Any]
    manifest: dict[str, Any]
    instruments: list[str] = field(default_factory=list)

    def metrics_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.metrics])

    def __repr__(self) -> str:
        """One line: name, instruments, the span of the equity clock (UTC), fills, PnL (the
        whole book's for several instruments) and the folder; not the frames."""
        name = self.manifest.get("name") or self.config.get("name", "?")
        span = ""
        ts = self.equity["ts"] if "ts" in self.equity.columns else None
        if ts is not None and len(ts):
            lo, hi = (t.tz_convert("UTC") if isinstance(t, pd.Timestamp)
                      else pd.Timestamp(int(t), tz="UTC") for t in (ts.iloc[0], ts.iloc[-1]))
            end = "%H:%M:%S" if lo.date() == hi.date() else "%Y-%m-%d %H:%M:%S"
            span = f", {lo:%Y-%m-%d %H:%M:%S} → {hi.strftime(end)} UTC"
        key = "book_pnl" if len(self.instruments) > 1 else "pnl"
        pnl = self.metrics.get(key)
        money = f", {key}={pnl:,.4f}" if isinstance(pnl, (int, float)) else ""
        return (f"RunResult({name!r}, instruments={self.instruments}{span}, "
                f"fills={len(self.fills):,}{money}, run_dir='{self.run_dir}')")

    @property
    def instrument_specs(self) -> list[Instrument]:
        """The :class:`Instrument` of each of :attr:`instruments` (from the manifest's
        ``instruments``; for runs written before it, the manifest's ``instrument``)."""
        return _manifest_specs(self.manifest)

    def _select(self, df: pd.DataFrame, instrument: str | int) -> pd.DataFrame:
        if isinstance(instrument, (int, np.integer)) and not isinstance(instrument, bool):
            if not 0 <= int(instrument) < len(self.instruments):
                raise KeyError(f"instrument index {instrument} out of range "
                               f"(run has {self.instruments})")
            instrument = self.instruments[int(instrument)]
        if instrument not in self.instruments:
            raise KeyError(f"no instrument {instrument!r} in this run (has {self.instruments})")
        if len(self.instruments) == 1:
            return df
        return df[df[INSTRUMENT_COLUMN] == instrument].reset_index(drop=True)

    def fills_of(self, instrument: str | int) -> pd.DataFrame:
        """The fills of one instrument (by name or index), index reset.

        Raises
        ------
        KeyError
            If the run has no such instrument.
        """
        return self._select(self.fills, instrument)

    def orders_of(self, instrument: str | int) -> pd.DataFrame:
        """The order log of one instrument (by name or index); raises as :meth:`fills_of`."""
        return self._select(self.orders, instrument)

    def equity_of(self, instrument: str | int) -> pd.DataFrame:
        """The equity samples of one instrument (by name or index), in its settlement
        currency; raises as :meth:`fills_of`."""
        return self._select(self.equity, instrument)

    def returns(self, capital: float | None = None) -> pd.Series:
        """Percentage returns of the quoted instrument's equity on the Sharpe clock
        (``metrics.sharpe_clock_s``): ``ΔE / (capital + E)`` per period, a float64 Series on
        a UTC ``DatetimeIndex`` (period ends), what quantstats and empyrical take
        (:func:`mmsim.metrics.trades.returns_series`).

        Raises
        ------
        ValueError
            If neither ``capital`` nor the config's ``metrics.capital`` is given.
        """
        from mmsim.metrics.trades import returns_series

        m = self.config.get("metrics") or {}
        capital = capital if capital is not None else m.get("capital")
        if capital is None:
            raise ValueError("returns need a capital: returns(capital=...) or metrics.capital "
                             "in the experiment")
        eq = self.equity_of(0) if self.instruments else self.equity
        ts = eq["ts"]
        t = (ts.dt.tz_convert("UTC").astype("int64") if isinstance(ts.dtype, pd.DatetimeTZDtype)
             else ts).to_numpy(np.int64)
        e = eq["equity"].to_numpy(np.float64)
        return returns_series(t, e - e[0] if e.shape[0] else e,
                              float(m.get("sharpe_clock_s", 60.0)), float(capital))

    def book_equity(self, report_currency_index: int = 0) -> pd.DataFrame:
        """:func:`mmsim.metrics.book_equity` of this run (all instruments, converted to the
        settlement currency of instrument ``report_currency_index``)."""
        from mmsim.metrics import book_equity

        ts = self.equity["ts"] if "ts" in self.equity.columns else None
        if ts is None or not isinstance(ts.dtype, pd.DatetimeTZDtype):
            return book_equity(self.equity, self.instrument_specs, self.instruments,
                               report_currency_index)
        # loaded with datetimes=True: computed on the int64 ns clock, indexed by datetimes
        eq = self.equity.assign(ts=ts.dt.tz_convert("UTC").astype("int64"))
        out = book_equity(eq, self.instrument_specs, self.instruments, report_currency_index)
        out.index = pd.to_datetime(out.index.to_numpy(np.int64), unit="ns",
                                   utc=True).tz_convert(ts.dt.tz)
        out.index.name = "ts"
        return out


def _manifest_specs(manifest: dict[str, Any]) -> list[Instrument]:
    entries = manifest.get("instruments")
    if entries:
        return [Instrument(**e["instrument"]) for e in entries]
    if manifest.get("instrument"):
        return [Instrument(**manifest["instrument"])]
    return []


def _manifest_names(manifest: dict[str, Any], equity: pd.DataFrame) -> list[str]:
    """Instrument names of a run: the manifest's ``instruments``; for runs written before
    it, the manifest instrument's symbol (or the one name of the ``instrument`` column)."""
    entries = manifest.get("instruments")
    if entries:
        return [str(e["name"]) for e in entries]
    if INSTRUMENT_COLUMN in equity.columns and len(equity):
        return [str(v) for v in pd.unique(equity[INSTRUMENT_COLUMN])]
    if manifest.get("instrument"):
        return [str(manifest["instrument"].get("symbol", Instrument().symbol))]
    return []


def check_run(run_dir: str | os.PathLike[str], digest: str | None = None) -> dict[str, Any]:
    """Check that ``run_dir`` is a finished backtest run; return its manifest.

    Finished: not a ``*.partial`` folder, a ``manifest.json`` with ``complete: true`` (and
    ``config_sha256 == digest`` if given), ``metrics.json``, ``config.yaml`` and the three
    Parquet logs with readable footers (their data is not read).

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    ValueError
        If it is a partial folder, the run is incomplete, its digest differs, or a file is
        unreadable (the file named).
    """
    d = Path(run_dir)
    if d.name.endswith(PARTIAL_SUFFIX):
        raise ValueError(f"{d}: a partial run folder (being written, or left by a failed "
                         "run), not a finished run")
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: no such run directory")
    man_p = d / "manifest.json"
    if not man_p.is_file():
        raise ValueError(f"{d}: incomplete run (no manifest.json)")
    try:
        manifest = json.loads(man_p.read_text())
    except ValueError as e:
        raise ValueError(f"{man_p}: not JSON ({e})") from None
    if not isinstance(manifest, dict) or not manifest.get("complete"):
        raise ValueError(f"{d}: incomplete run")
    if digest is not None and manifest.get("config_sha256") != digest:
        raise ValueError(f"{d}: a run of another config (config_sha256 differs)")
    for name in ("metrics.json", "config.yaml"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d / name}: missing from the run")
    for name in ("fills", "orders", "equity"):
        p = d / f"{name}.parquet"
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing from the run")
        try:
            pq.read_metadata(p)
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"{p}: not a readable Parquet file ({e})") from None
    return manifest


def load(run_dir: str | Path, *, datetimes: bool = False) -> RunResult:
    """Load a run directory written by :func:`mmsim.backtest`.

    :attr:`RunResult.instruments` comes from the manifest's ``instruments``; a run written
    before it (one instrument, no ``instrument`` column) gets the column added, holding the
    manifest instrument's symbol.

    Parameters
    ----------
    run_dir : path
        The run folder.
    datetimes : bool
        False (default): the frames as stored (timestamps int64 UNIX ns, ``side`` int8 ±1,
        names as strings). True, for reading and plotting: every timestamp column
        (``exch_ts``, ``local_ts``, ``ts``) becomes tz-aware ``datetime64[ns]`` shown in the
        venue's time zone (:attr:`mmsim.data.registry.ReaderSpec.timezone`: New York for
        LOBSTER, Chicago for CME, UTC for crypto venues; the instants are the stored UTC
        ones), ``side`` a categorical of ``buy``/``sell``, and ``liquidity``, ``event``,
        ``tif``, ``reason`` and ``instrument`` categoricals.

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    ValueError
        If the run is incomplete (no complete manifest) or a ``*.partial`` folder, or a
        file is unreadable (see :func:`check_run`).
    """
    d = Path(run_dir)
    manifest = check_run(d)
    metrics = _metrics_from_json(json.loads((d / "metrics.json").read_text()))
    frames = [pd.read_parquet(d / f"{n}.parquet") for n in ("fills", "orders", "equity")]
    names = _manifest_names(manifest, frames[2])
    if len(names) == 1:  # written before the instrument column: add it
        for df in frames:
            if INSTRUMENT_COLUMN not in df.columns:
                df[INSTRUMENT_COLUMN] = pd.Series([names[0]] * len(df), dtype="str",
                                                  index=df.index)
    if datetimes:
        tz = venue_timezone(manifest.get("data_kind"))
        frames = [_readable(df, tz) for df in frames]
    return RunResult(
        run_dir=d,
        fills=frames[0],
        orders=frames[1],
        equity=frames[2],
        metrics=metrics,
        config=yaml.safe_load((d / "config.yaml").read_text()),
        manifest=manifest,
        instruments=names,
    )


def venue_timezone(data_kind: str | None) -> str:
    """IANA time zone of the venue of a data kind (``UTC`` when the kind is unknown)."""
    from mmsim.data.registry import get_reader

    try:
        return get_reader(str(data_kind)).timezone
    except ValueError:
        return "UTC"


#: the columns :func:`load` turns into datetimes and categoricals with ``datetimes=True``
_TIME_COLUMNS = ("exch_ts", "local_ts", "ts")
_NAME_COLUMNS = ("liquidity", "event", "tif", "reason", INSTRUMENT_COLUMN)


def _readable(df: pd.DataFrame, tz: str) -> pd.DataFrame:
    df = df.copy()
    for c in _TIME_COLUMNS:
        if c in df.columns:
            df[c] = pd.to_datetime(df[c].to_numpy(np.int64), unit="ns", utc=True).tz_convert(tz)
    if "side" in df.columns:
        df["side"] = pd.Categorical(np.where(df["side"].to_numpy() > 0, "buy", "sell"),
                                    categories=["buy", "sell"])
    for c in _NAME_COLUMNS:
        if c in df.columns:
            df[c] = df[c].astype("category")
    return df


def load_sweep(sweep_dir: str | Path, *, as_polars: bool = False):
    """Load the table of a sweep folder written by ``mmsim sweep``.

    Parameters
    ----------
    sweep_dir : path
        The sweep folder (or its ``sweep.parquet``).
    as_polars : bool
        Return a ``polars.DataFrame`` instead of pandas.

    Returns
    -------
    pandas.DataFrame or polars.DataFrame
        One row per grid point, in grid order: ``run_key``, one column per swept key (dotted
        name), ``status`` (``ok``/``failed``/``pending``), ``error``, ``run_dir`` (made
        absolute here; stored relative to the sweep folder), ``cached``, ``wall_s``,
        ``replay_s`` and every metric of the runs' ``metrics.json`` (NaN for failed runs).

    Raises
    ------
    FileNotFoundError
        If there is no ``sweep.parquet``.
    """
    p = Path(sweep_dir)
    if p.is_dir():
        p = p / "sweep.parquet"
    if not p.is_file():
        raise FileNotFoundError(f"{sweep_dir}: no sweep table (sweep.parquet)")
    base = p.parent.resolve()
    if as_polars:
        import polars as pl

        df = pl.read_parquet(p)
        full = pl.concat_str([pl.lit(f"{base}{os.sep}"), pl.col("run_dir")])
        return df.with_columns(full.alias("run_dir"))
    df = pd.read_parquet(p)
    df["run_dir"] = [str(base / s) for s in df["run_dir"]]
    return df
