"""Run directories: Parquet writers and readers, metrics, config and manifest.

A run directory holds ``fills.parquet``, ``orders.parquet``, ``equity.parquet``,
``metrics.json`` (and ``metrics.parquet``, one row), ``config.yaml`` (the config as run),
``manifest.json`` (mmsim version, data file hashes, seed, config digest; written last) and
``timing.json`` (wall time, events per second: the only file that differs between reruns).

It is written under ``<run_dir>.partial`` and renamed into place only when complete, so a run
that fails halfway leaves nothing that looks complete (the partial folder is removed).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mmsim.enums import LIQUIDITY_NAMES, ORDER_EVENT_NAMES, REJECT_NAMES, TIF_NAMES
from mmsim.instruments import Instrument

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
    ]
)


def _names(codes: np.ndarray, table: dict[int, str]) -> pa.Array:
    lut = np.array([table.get(i, "") for i in range(256)], dtype=object)
    return pa.array(lut[codes.astype(np.int64)], type=pa.string())


def equity_values(inst: Instrument, position_units, mid_px, cash):
    """Equity marked to mid (MODELS.md §9): ``cash + q·mid·multiplier`` (linear) or
    ``cash − q·multiplier/mid`` (inverse, in coin)."""
    if inst.is_inverse:
        return cash - position_units * inst.multiplier / mid_px
    return cash + position_units * mid_px * inst.multiplier


def fills_table(rec: np.ndarray, inst: Instrument) -> pa.Table:
    """Engine fill records (``FILL_DTYPE``) → user units (:data:`FILLS_SCHEMA`)."""
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
        ],
        schema=FILLS_SCHEMA,
    )


def orders_table(rec: np.ndarray, inst: Instrument) -> pa.Table:
    """Engine order-log records (``ORDER_LOG_DTYPE``) → user units (:data:`ORDERS_SCHEMA`).

    Market orders carry no price (NaN).
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
        ],
        schema=ORDERS_SCHEMA,
    )


def _ffill(x: np.ndarray, first: float) -> np.ndarray:
    """Forward-fill NaNs, starting from ``first`` (NaN allowed)."""
    x = np.concatenate([[first], x])
    idx = np.where(np.isnan(x), 0, np.arange(len(x)))
    np.maximum.accumulate(idx, out=idx)
    return x[idx][1:]


def equity_table(rec: np.ndarray, inst: Instrument, last_mid: float = np.nan) -> pa.Table:
    """Engine equity samples (``EQUITY_DTYPE``) → user units (:data:`EQUITY_SCHEMA`).

    ``mid`` is the exchange mid at the sample (NaN while a side of the book is empty);
    ``equity`` marks the position at the last known mid (``last_mid`` carries it across
    chunks) and is the cash alone while flat.
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
        ],
        schema=EQUITY_SCHEMA,
    )


class RunWriter:
    """Streams a run's logs to Parquet under ``<run_dir>.partial`` and commits atomically.

    Parameters
    ----------
    run_dir : path
        Final location. It must not exist yet unless ``overwrite``.
    instrument : Instrument
        For the conversion of ticks and lots to prices and quantities.

    Raises
    ------
    FileExistsError
        If ``run_dir`` exists and ``overwrite`` is false.
    """

    def __init__(self, run_dir: str | Path, instrument: Instrument, overwrite: bool = False):
        self.run_dir = Path(run_dir)
        if self.run_dir.exists() and not overwrite:
            raise FileExistsError(f"{self.run_dir}: run directory exists (use another --out)")
        self.tmp = self.run_dir.with_name(self.run_dir.name + ".partial")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.inst = instrument
        self._w = {
            "fills": pq.ParquetWriter(self.tmp / "fills.parquet", FILLS_SCHEMA),
            "orders": pq.ParquetWriter(self.tmp / "orders.parquet", ORDERS_SCHEMA),
            "equity": pq.ParquetWriter(self.tmp / "equity.parquet", EQUITY_SCHEMA),
        }
        self.overwrite = overwrite
        self._last_mid = np.nan
        self._frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None

    def append(self, fills: np.ndarray, orders: np.ndarray, equity: np.ndarray) -> None:
        """Append engine records (any of them may be empty)."""
        if len(fills):
            self._w["fills"].write_table(fills_table(fills, self.inst))
        if len(orders):
            self._w["orders"].write_table(orders_table(orders, self.inst))
        if len(equity):
            self._w["equity"].write_table(equity_table(equity, self.inst, self._last_mid))
            mids = equity["mid_tick"][~np.isnan(equity["mid_tick"])]
            if len(mids):
                self._last_mid = float(mids[-1]) * self.inst.tick_size

    def close_logs(self) -> None:
        for w in self._w.values():
            w.close()

    def read_back(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The logs written so far, as pandas (after :meth:`close_logs`); kept for
        :meth:`commit`'s result."""
        self._frames = (
            pd.read_parquet(self.tmp / "fills.parquet"),
            pd.read_parquet(self.tmp / "orders.parquet"),
            pd.read_parquet(self.tmp / "equity.parquet"),
        )
        return self._frames

    def commit(
        self,
        metrics: dict[str, Any],
        config: dict[str, Any],
        manifest: dict[str, Any],
        timing: dict[str, Any],
    ) -> RunResult:
        """Write metrics, config, manifest (last) and move the run into place.

        Returns the run as :func:`load` would read it, built from the logs already read by
        :meth:`read_back` (the run directory is not read again).
        """
        metrics = _jsonable(metrics)
        (self.tmp / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        pq.write_table(pa.Table.from_pylist([metrics]), self.tmp / "metrics.parquet")
        (self.tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (self.tmp / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
        manifest = dict(manifest, complete=True)
        (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        os.replace(self.tmp, self.run_dir)
        fills, orders, equity = self._frames
        return RunResult(
            run_dir=self.run_dir,
            fills=fills,
            orders=orders,
            equity=equity,
            metrics=_metrics_from_json(metrics),
            config=config,
            manifest=json.loads(json.dumps(manifest)),
        )

    def abort(self) -> None:
        """Close and remove the partial run."""
        for w in self._w.values():
            try:
                w.close()
            except Exception:  # noqa: BLE001 - best effort while failing
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


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


@dataclass
class RunResult:
    """A finished run, as pandas.

    Attributes
    ----------
    run_dir : Path
    fills, orders, equity : pandas.DataFrame
        See :data:`FILLS_SCHEMA`, :data:`ORDERS_SCHEMA`, :data:`EQUITY_SCHEMA` (timestamps are
        int64 UNIX ns, prices in quote currency, quantities in instrument units).
    metrics : dict
        Flat metrics (MODELS.md §9); ``metrics_frame()`` gives them as one-row DataFrame.
    config : dict
    manifest : dict
    """

    run_dir: Path
    fills: pd.DataFrame
    orders: pd.DataFrame
    equity: pd.DataFrame
    metrics: dict[str, Any]
    config: dict[str, Any]
    manifest: dict[str, Any]

    def metrics_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.metrics])


def load(run_dir: str | Path) -> RunResult:
    """Load a run directory written by :func:`mmsim.backtest`.

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    ValueError
        If the run is incomplete (no complete manifest).
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: no such run directory")
    man_p = d / "manifest.json"
    if not man_p.is_file():
        raise ValueError(f"{d}: incomplete run (no manifest.json)")
    manifest = json.loads(man_p.read_text())
    if not manifest.get("complete"):
        raise ValueError(f"{d}: incomplete run")
    metrics = _metrics_from_json(json.loads((d / "metrics.json").read_text()))
    return RunResult(
        run_dir=d,
        fills=pd.read_parquet(d / "fills.parquet"),
        orders=pd.read_parquet(d / "orders.parquet"),
        equity=pd.read_parquet(d / "equity.parquet"),
        metrics=metrics,
        config=yaml.safe_load((d / "config.yaml").read_text()),
        manifest=manifest,
    )


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
