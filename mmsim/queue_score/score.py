"""The queue scorecard: L2 queue models against L3 truth (MODELS.md §13), calibration, outputs.

:func:`queue_score` is ``mmsim queue-score``: open an L3 experiment's data through the
project's reader and resolve path, place probes (:mod:`mmsim.queue_score.probes`), follow them
through the L3 truth and through each L2 model on the exact L3 → L2 reduction
(:func:`mmsim.data.l3_to_l2.l3_to_l2`), score, optionally calibrate the power model's
exponent, and write a run directory.

Definitions (per probe ``j`` placed at ``t_j``; ``τ*_j`` / ``τ̂_j`` the exchange time of its
first fill under the truth / the model, ∞ if it never fills; times to fill ``τ − t`` in s):

``agree_<h>``
    Outcome agreement at horizon ``h``: the share of probes with
    ``1{τ̂ ≤ t + h} == 1{τ* ≤ t + h}``, for ``h`` = 1 s, 10 s, 60 s and the end of the data.
``error``
    Mean outcome disagreement over the horizons: ``1 − mean_h agree_h`` (the calibration's
    objective).
``abs_err_median_s``, ``abs_err_p90_s``, ``bias_median_s``
    Among probes filled under both: median and 90th percentile of ``|τ̂ − τ*|``, and median
    of ``τ̂ − τ*`` (negative: the model fills too early, an optimistic backtest).
``filled_true``, ``filled_model``
    Share of probes filled by the end, truth and model.
``fill_qty_mae_lots``, ``fill_qty_bias_lots``
    Mean of ``|q̂ − q*|`` and of ``q̂ − q*``, lots filled by the end.

Fills are partial by default (``matching.partial_fills: true``: an execution fills a probe up
to its quantity), as in the engine; ``false`` fills a probe whole on any execution reaching
it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmsim.models.queue import QUEUE_POWER
from mmsim.queue_score.nb import (
    NO_OFFSET,
    NO_TS,
    PROBE_DTYPE,
    PROBE_RESULT_DTYPE,
    PROBE_STATUS_NAMES,
    ProbeStatus,
)
from mmsim.queue_score.probes import (
    DEFAULT_MODELS,
    DEFAULT_OFFSETS,
    ModelSpec,
    parse_models,
    policy_probes,
    probe_span,
    random_probes,
    replay_model,
    replay_truth,
)

__all__ = [
    "CALIBRATION_FILE",
    "CALIBRATION_FORMAT",
    "HORIZONS_S",
    "PROBES_FILE",
    "QueueScoreResult",
    "ScoreData",
    "calibrate_power",
    "format_summary",
    "load_score_data",
    "probe_table",
    "queue_score",
    "summarise",
    "summarise_by_offset",
]

#: the scoring horizons, s (``None`` = the end of the data)
HORIZONS_S: tuple[float | None, ...] = (1.0, 10.0, 60.0, None)
#: the default calibration grid of the power exponent
DEFAULT_GRID = tuple(round(0.1 * k, 1) for k in range(1, 61))
#: bootstrap resamples of the calibration
DEFAULT_BOOT = 200
#: draws of the random schedule before giving up on filling it with placeable probes
_MAX_ROUNDS = 50

PROBES_FILE = "probes.parquet"
SUMMARY_FILE = "summary.parquet"
SUMMARY_JSON = "summary.json"
BY_OFFSET_FILE = "summary_by_offset.parquet"
PLOT_FILE = "time_to_fill.png"
CALIBRATION_FILE = "calibration.json"
#: ``format`` of a calibration file (read by :mod:`mmsim.resolve` for
#: ``queue.model: calibrated``)
CALIBRATION_FORMAT = "mmsim.queue_calibration/1"

_RESTING = (ProbeStatus.OPEN, ProbeStatus.DONE)


def horizon_name(h: float | None) -> str:
    """``1s``, ``10s``, ``60s`` or ``end``."""
    return "end" if h is None else f"{h:g}s"


# ---- data ------------------------------------------------------------------------------------


@dataclass
class ScoreData:
    """An L3 experiment's events, ready to score.

    Attributes
    ----------
    cfg : mmsim.config.ExperimentConfig
    dataset : mmsim.data.sources.Dataset
    spec : mmsim.resolve.EngineSpec
    events : numpy.ndarray
        The canonical L3 events, EVENT_DTYPE (on the instrument's grid).
    l2_events : numpy.ndarray
        Their exact L2 reduction (:func:`mmsim.data.l3_to_l2.l3_to_l2`, same window).
    base_tick, width : int
        The engine's price window: ``ref_price_tick - book_width_ticks // 2`` and
        ``book_width_ticks``.
    whole_fills : bool
        ``matching.partial_fills: false``.
    """

    cfg: Any
    dataset: Any
    spec: Any
    events: np.ndarray
    l2_events: np.ndarray
    base_tick: int
    width: int
    whole_fills: bool


def load_score_data(experiment, *, data_root=None, cache_dir=None, overrides=(),
                    cfg=None) -> ScoreData:
    """Open, resolve and reduce the data of an L3 experiment.

    The project's path: :func:`mmsim.data.sources.dataset_for_config` (ingest cache),
    :func:`mmsim.resolve.resolve` (instrument, grid, window), the grid rescaling of the
    engine, then :func:`mmsim.data.l3_to_l2.l3_to_l2` in the engine's window.

    Parameters
    ----------
    experiment : path, dict or ExperimentConfig
    data_root, cache_dir : path, optional
    overrides : sequence of ``key=value``
    cfg : ExperimentConfig, optional
        Already loaded (then ``experiment`` only names it in errors).

    Raises
    ------
    mmsim.config.ConfigError
        A bad config, or ``data.kind`` gives L2 (market-by-price) data: the message names
        the experiment file and ``data.kind``.
    mmsim.data.DataError
        Missing or bad data.
    """
    from mmsim.config import ConfigError
    from mmsim.data.l3_to_l2 import l3_to_l2
    from mmsim.data.sources import dataset_for_config
    from mmsim.dtypes import EVENT_DTYPE
    from mmsim.resolve import BookKind, FillMode, resolve
    from mmsim.runner import resolve_config

    if cfg is None:
        cfg = resolve_config(experiment, overrides)
    ds = dataset_for_config(cfg, data_root, cache_dir)
    spec = resolve(cfg, ds, data_root)
    if spec.book is not BookKind.L3:
        where = experiment if isinstance(experiment, (str, os.PathLike)) else cfg.name
        raise ConfigError(f"{where}: field 'data.kind': queue-score needs L3 (market-by-order) "
                          f"data to score against, but {cfg.data.kind!r} ({ds.path.name}) "
                          f"is L2 (market-by-price)")
    chunks = list(ds.chunks(cfg.engine.chunk_events))
    events = np.concatenate(chunks) if chunks else np.zeros(0, EVENT_DTYPE)
    if not spec.grid.identity:
        events = spec.grid.apply(events)
    w = int(spec.capacities.book_width_ticks)
    ref = int(spec.ref_price_tick)
    l2 = l3_to_l2(events, width=w, ref_price_tick=ref,
                  max_orders=int(spec.capacities.max_book_orders))
    return ScoreData(cfg, ds, spec, events, l2, ref - w // 2, w,
                     spec.orders.fills is FillMode.WHOLE_ORDER)


# ---- schedules -------------------------------------------------------------------------------


def _placed(res: np.ndarray, dropped: dict[str, int]) -> np.ndarray:
    """Which probes rested (OPEN or DONE); the others are counted in ``dropped`` by
    status name."""
    ok = np.isin(res["status"], _RESTING)
    codes, counts = np.unique(res["status"][~ok], return_counts=True)
    for code, c in zip(codes, counts, strict=True):
        name = PROBE_STATUS_NAMES[int(code)]
        dropped[name] = dropped.get(name, 0) + int(c)
    return ok


def _random_schedule(data: ScoreData, n: int, seed: int, lots: int,
                     offsets: Sequence[int]) -> tuple[np.ndarray, np.ndarray, dict]:
    """``n`` placeable probes and their truth: draws that cannot rest (no touch on their
    side, a crossed book as in CME's pre-open, a halt) are replaced by further draws of the
    same stream. A probe's truth does not depend on the other probes of its pass, so the
    truth of the draws is kept, not replayed again."""
    span = probe_span(data.events, data.cfg.engine.warmup_nanos)
    rng = np.random.default_rng(seed)
    kept, kept_truth = [], []
    n_kept = drawn = 0
    dropped: dict[str, int] = {}
    for _ in range(_MAX_ROUNDS):
        need = n - n_kept
        if need <= 0:
            break
        cand = random_probes(need, rng, span, lots=lots, offsets=offsets)
        drawn += need
        res = _truth(data, cand)
        ok = _placed(res, dropped)
        kept.append(cand[ok])
        kept_truth.append(res[ok])
        n_kept += int(ok.sum())
    probes = np.concatenate([np.zeros(0, PROBE_DTYPE), *kept])[:n]
    truth = np.concatenate([np.zeros(0, PROBE_RESULT_DTYPE), *kept_truth])[:n]
    order = np.lexsort((np.arange(len(probes)), probes["place_ts"]))
    probes, truth = probes[order], truth[order]
    probes["probe_id"] = np.arange(len(probes))
    info = {"schedule": "random", "span_ns": list(span), "offsets_ticks": list(offsets),
            "drawn": drawn, "dropped": dropped}
    return probes, truth, info


def _policy_schedule(data: ScoreData, run_dir, n: int, seed: int, lots: int, data_root,
                     cache_dir, log) -> tuple[np.ndarray, np.ndarray, dict]:
    from mmsim.results import check_run, load

    if run_dir is None or str(run_dir) == "":
        from mmsim.runner import backtest, default_run_dir

        run_dir = default_run_dir(data.cfg)
        try:
            check_run(run_dir, data.cfg.digest())
            log(f"from-policy: the orders log of the finished run {run_dir}")
        except (OSError, ValueError):
            log(f"from-policy: backtest of {data.cfg.name} into {run_dir}")
            backtest(data.cfg, data_root=data_root, out=run_dir, cache_dir=cache_dir)
    run = load(run_dir)
    orders = run.orders
    names = run.instruments
    cand = policy_probes(orders, data.spec.instrument.tick_size, seed=seed, lots=lots,
                         instrument=names[0] if names else None)
    dropped: dict[str, int] = {}
    res = _truth(data, cand)  # kept: a probe's truth does not depend on the others
    ok = _placed(res, dropped)
    probes, truth = cand[ok], res[ok]
    if len(probes) > n:
        pick = np.sort(np.random.default_rng(seed).choice(len(probes), size=n, replace=False))
        probes, truth = probes[pick], truth[pick]
    probes = probes.copy()
    probes["probe_id"] = np.arange(len(probes))
    info = {"schedule": "policy", "run_dir": str(run_dir), "placements": int(len(cand)),
            "dropped": dropped}
    return probes, truth, info


def _truth(data: ScoreData, probes: np.ndarray) -> np.ndarray:
    return replay_truth(data.events, probes, base_tick=data.base_tick, width=data.width,
                        whole_fills=data.whole_fills,
                        max_orders=int(data.spec.capacities.max_book_orders))


def _model(data: ScoreData, probes: np.ndarray, model: ModelSpec,
           truth: np.ndarray) -> np.ndarray:
    res = replay_model(data.l2_events, probes, model, base_tick=data.base_tick,
                       width=data.width, whole_fills=data.whole_fills)
    diff = np.flatnonzero((res["price_tick"] != truth["price_tick"])
                          | (res["queue_ahead"] != truth["queue_ahead"])
                          | (res["status"] == ProbeStatus.PENDING))
    if diff.size:  # the reduction keeps every level: this would be a bug, not bad data
        j = int(diff[0])
        raise RuntimeError(f"queue-score: probe {j} rests at {res['price_tick'][j]} behind "
                           f"{res['queue_ahead'][j]} lots under {model.label} but at "
                           f"{truth['price_tick'][j]} behind {truth['queue_ahead'][j]} in "
                           f"the L3 truth")
    return res


# ---- scoring ---------------------------------------------------------------------------------


def _ttf_s(probes: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Time to the first fill, s (inf: never)."""
    out = np.full(len(res), np.inf)
    f = res["first_fill_ts"] != NO_TS
    out[f] = (res["first_fill_ts"][f] - probes["place_ts"][f]) / 1e9
    return out


def _disagreement(t_true: np.ndarray, t_model: np.ndarray,
                  horizons: Sequence[float | None]) -> np.ndarray:
    """bool[len(horizons), m]: the outcomes differ at each horizon."""
    rows = []
    for h in horizons:
        lim = np.inf if h is None else h
        if h is None:
            rows.append(np.isfinite(t_true) != np.isfinite(t_model))
        else:
            rows.append((t_true <= lim) != (t_model <= lim))
    return np.array(rows)


def _stats_row(label: str, t_true, t_model, q_true, q_model,
               horizons: Sequence[float | None]) -> dict[str, Any]:
    m = len(t_true)
    dis = _disagreement(t_true, t_model, horizons)
    row: dict[str, Any] = {"model": label, "n_probes": m}
    for h, d in zip(horizons, dis, strict=True):
        row[f"agree_{horizon_name(h)}"] = float(1.0 - d.mean()) if m else math.nan
    row["error"] = float(dis.mean()) if m else math.nan
    row["filled_true"] = float(np.isfinite(t_true).mean()) if m else math.nan
    row["filled_model"] = float(np.isfinite(t_model).mean()) if m else math.nan
    row["model_only_filled"] = float((np.isfinite(t_model) & ~np.isfinite(t_true)).mean()) \
        if m else math.nan
    row["true_only_filled"] = float((np.isfinite(t_true) & ~np.isfinite(t_model)).mean()) \
        if m else math.nan
    dq = (q_model - q_true).astype(np.float64)
    row["fill_qty_mae_lots"] = float(np.abs(dq).mean()) if m else math.nan
    row["fill_qty_bias_lots"] = float(dq.mean()) if m else math.nan
    both = np.isfinite(t_true) & np.isfinite(t_model)
    d = t_model[both] - t_true[both]
    row["n_both_filled"] = int(both.sum())
    row["exact_share"] = float((d == 0).mean()) if d.size else math.nan
    row["abs_err_median_s"] = float(np.median(np.abs(d))) if d.size else math.nan
    row["abs_err_p90_s"] = float(np.percentile(np.abs(d), 90)) if d.size else math.nan
    row["bias_median_s"] = float(np.median(d)) if d.size else math.nan
    ft = t_true[np.isfinite(t_true)]
    fm = t_model[np.isfinite(t_model)]
    row["ttf_median_true_s"] = float(np.median(ft)) if ft.size else math.nan
    row["ttf_median_model_s"] = float(np.median(fm)) if fm.size else math.nan
    return row


def summarise(
    probes: np.ndarray,
    truth: np.ndarray,
    estimates: dict[str, np.ndarray],
    horizons: Sequence[float | None] = HORIZONS_S,
) -> list[dict[str, Any]]:
    """The scorecard: one row per model (see the module docstring for each field).

    Parameters
    ----------
    probes : PROBE_DTYPE[m]
    truth : PROBE_RESULT_DTYPE[m]
        :func:`~mmsim.queue_score.probes.replay_truth` of ``probes``.
    estimates : dict of str to PROBE_RESULT_DTYPE[m]
        Model label → :func:`~mmsim.queue_score.probes.replay_model` of ``probes``.
    horizons : sequence of float or None
        Seconds (None = the end of the data).

    Returns
    -------
    list of dict
        In the order of ``estimates``: ``model``, ``n_probes``, ``agree_<h>`` per horizon,
        ``error``, ``filled_true``, ``filled_model``, ``model_only_filled``,
        ``true_only_filled``, ``fill_qty_mae_lots``, ``fill_qty_bias_lots``,
        ``n_both_filled``, ``exact_share`` (of those, the share filled at the very same
        event), ``abs_err_median_s``, ``abs_err_p90_s``, ``bias_median_s``,
        ``ttf_median_true_s``, ``ttf_median_model_s`` (NaN where nothing to measure).
    """
    t_true = _ttf_s(probes, truth)
    return [_stats_row(label, t_true, _ttf_s(probes, res), truth["filled_qty"],
                       res["filled_qty"], horizons)
            for label, res in estimates.items()]


def summarise_by_offset(
    probes: np.ndarray,
    truth: np.ndarray,
    estimates: dict[str, np.ndarray],
    horizons: Sequence[float | None] = HORIZONS_S,
) -> list[dict[str, Any]]:
    """:func:`summarise` of the probes at each offset from their own touch at placement
    (``offset_ticks`` first in each row; probes placed while their side was empty are left
    out). At the touch the queue is what the models guess; behind it the level is often
    empty on a sparse book (nothing to guess)."""
    offs = truth["offset_ticks"]
    out = []
    for k in np.unique(offs[offs != NO_OFFSET]):
        sel = offs == k
        for r in summarise(probes[sel], truth[sel], {lb: e[sel] for lb, e in estimates.items()},
                           horizons):
            out.append({"offset_ticks": int(k), **r})
    return out


def _nullable(values: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(values, mask=null)


def probe_table(probes: np.ndarray, truth: np.ndarray, estimates: dict[str, np.ndarray],
                models: Sequence[ModelSpec], tick_size: float) -> pa.Table:
    """The per-probe table (one row per probe, in ``probe_id`` order).

    Columns: ``probe_id``, ``place_ts`` (int64 ns, exchange time), ``side`` (int8 ±1),
    ``price_tick``, ``price``, ``offset_ticks`` (behind its own touch at placement; null if
    that side was empty), ``qty_lots``, ``queue_ahead_lots`` (at placement, L3 truth),
    ``true_status`` (``open`` / ``done``), ``true_fill_ts`` (first fill, null = never),
    ``true_done_ts`` (complete fill, null = never), ``true_fill_qty`` (lots by the end), then
    per model ``<slug>_fill_ts`` and ``<slug>_fill_qty`` (``power:2`` → ``power_2``).
    No timestamps or pandas metadata: the same inputs give the same bytes.
    """
    cols: dict[str, pa.Array] = {
        "probe_id": pa.array(probes["probe_id"], pa.int64()),
        "place_ts": pa.array(probes["place_ts"], pa.int64()),
        "side": pa.array(probes["side"].astype(np.int8), pa.int8()),
        "price_tick": pa.array(truth["price_tick"], pa.int64()),
        "price": pa.array(truth["price_tick"] * float(tick_size), pa.float64()),
        "offset_ticks": _nullable(truth["offset_ticks"], truth["offset_ticks"] == NO_OFFSET),
        "qty_lots": pa.array(probes["qty"], pa.int64()),
        "queue_ahead_lots": pa.array(truth["queue_ahead"], pa.float64()),
        "true_status": pa.array([PROBE_STATUS_NAMES[int(s)] for s in truth["status"]],
                                pa.string()),
        "true_fill_ts": _nullable(truth["first_fill_ts"], truth["first_fill_ts"] == NO_TS),
        "true_done_ts": _nullable(truth["done_ts"], truth["done_ts"] == NO_TS),
        "true_fill_qty": pa.array(truth["filled_qty"], pa.int64()),
    }
    for m in models:
        res = estimates[m.label]
        cols[f"{m.slug}_fill_ts"] = _nullable(res["first_fill_ts"],
                                              res["first_fill_ts"] == NO_TS)
        cols[f"{m.slug}_fill_qty"] = pa.array(res["filled_qty"], pa.int64())
    return pa.table(cols)


# ---- calibration -----------------------------------------------------------------------------


def _best(err: np.ndarray, tiebreak: Callable[[np.ndarray], tuple[np.ndarray, ...]]) -> int:
    """Index of the least error; ties (within 1e-12) broken by the keys ``tiebreak(tied)``
    gives (each the smaller the better, NaN last), then the first (smallest exponent)."""
    tied = np.flatnonzero(err <= err.min() + 1e-12)
    if tied.size == 1:
        return int(tied[0])
    keys = [np.where(np.isnan(k), np.inf, k) for k in tiebreak(tied)]
    order = np.lexsort((tied, *reversed(keys)))
    return int(tied[order[0]])


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(x)
    n = ok.sum(axis=1)
    tot = np.where(ok, x, 0.0).sum(axis=1)
    return np.where(n > 0, tot / np.maximum(n, 1), np.nan)


def _nanmedian_rows(x: np.ndarray) -> np.ndarray:
    out = np.full(x.shape[0], np.nan)
    for i in range(x.shape[0]):
        v = x[i][~np.isnan(x[i])]
        if v.size:
            out[i] = np.median(v)
    return out


def calibrate_power(
    probes: np.ndarray,
    truth: np.ndarray,
    run_model: Callable[[ModelSpec], np.ndarray],
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    horizons: Sequence[float | None] = HORIZONS_S,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit the power model's exponent ``n`` to the L3 truth (MODELS.md §6, §13).

    Objective: the mean outcome disagreement over ``horizons`` (``error`` of
    :func:`summarise`), minimised over ``grid``; ties broken by the least ``|bias|``
    (median of ``τ̂ − τ*``), then by the least mean ``|ln(τ̂ / τ*)|`` (times to fill of the
    probes filled under both; the error is a count, so it is flat over ranges of ``n``),
    then the smallest ``n``. Uncertainty: the same fit on
    ``n_boot`` bootstrap resamples of the probes (with replacement,
    ``np.random.default_rng([seed, 1])``), reported as the standard deviation and the 5 %
    and 95 % quantiles of the fitted ``n``.

    Parameters
    ----------
    probes, truth : as :func:`summarise`
    run_model : callable
        ``ModelSpec → PROBE_RESULT_DTYPE[m]`` (one L2 pass per grid point).
    grid : sequence of float
        Exponents to try (> 0).
    horizons, n_boot, seed
        As above (``n_boot = 0``: no uncertainty).

    Returns
    -------
    dict
        ``power_n``, ``at_grid_edge`` (the fit is the grid's first or last point: the
        optimum may lie beyond it), ``error``, ``bias_median_s``, ``uncertainty``
        (``method``, ``n_boot``,
        ``seed``, ``std``, ``p05``, ``p95``), ``curve`` (per grid point: ``power_n``,
        ``error``, ``bias_median_s``, ``mean_abs_log_ratio``) and ``error_definition``.

    Raises
    ------
    ValueError
        An empty grid, a non-positive exponent, or no probe.
    """
    g = np.asarray(list(grid), dtype=np.float64)
    if g.size == 0 or (g <= 0).any() or not np.isfinite(g).all():
        raise ValueError(f"calibrate_power: the grid must hold exponents > 0, got {list(grid)}")
    m = len(probes)
    if m == 0:
        raise ValueError("calibrate_power: no probe to calibrate on")
    t_true = _ttf_s(probes, truth)
    dis = np.empty((g.size, m))
    dts = np.full((g.size, m), np.nan)
    lrs = np.full((g.size, m), np.nan)
    for i, n in enumerate(g):
        res = run_model(ModelSpec(f"power:{n:g}", QUEUE_POWER, float(n)))
        t_m = _ttf_s(probes, res)
        dis[i] = _disagreement(t_true, t_m, horizons).mean(axis=0)
        both = np.isfinite(t_true) & np.isfinite(t_m)
        dts[i, both] = t_m[both] - t_true[both]
        lrs[i, both] = np.abs(np.log(t_m[both] / t_true[both]))  # times are > 0
    err = dis.mean(axis=1)
    bias = _nanmedian_rows(dts)
    lr = _nanmean_rows(lrs)
    best = _best(err, lambda rows: (np.abs(bias[rows]), lr[rows]))
    boot = []
    rng = np.random.default_rng([int(seed), 1])
    for _ in range(int(n_boot)):
        idx = rng.integers(0, m, size=m)
        e_b = dis[:, idx].mean(axis=1)
        boot.append(g[_best(e_b, lambda rows, idx=idx: (
            np.abs(_nanmedian_rows(dts[rows][:, idx])), _nanmean_rows(lrs[rows][:, idx])))])
    bn = np.asarray(boot)
    hz = [horizon_name(h) for h in horizons]
    return {
        "power_n": float(g[best]),
        "at_grid_edge": bool(g.size > 1 and best in (0, g.size - 1)),
        "error": float(err[best]),
        "bias_median_s": None if np.isnan(bias[best]) else float(bias[best]),
        "uncertainty": {
            "method": "bootstrap over probes (resampled with replacement, refitted)",
            "n_boot": int(n_boot),
            "seed": [int(seed), 1],
            "std": float(bn.std(ddof=1)) if bn.size > 1 else None,
            "p05": float(np.quantile(bn, 0.05)) if bn.size else None,
            "p95": float(np.quantile(bn, 0.95)) if bn.size else None,
        },
        "error_definition": (
            "mean over the horizons " + ", ".join(hz) + " of the share of probes whose "
            "outcome differs (1{tau_hat <= t+h} != 1{tau_true <= t+h}); ties broken by the "
            "least |median(tau_hat - tau_true)|, then the least mean |ln(tau_hat / "
            "tau_true)| (times to fill of the probes filled under both), then the smallest n"),
        "curve": [{"power_n": float(n), "error": float(e),
                   "bias_median_s": None if np.isnan(b) else float(b),
                   "mean_abs_log_ratio": None if np.isnan(x) else float(x)}
                  for n, e, b, x in zip(g, err, bias, lr, strict=True)],
    }


# ---- text ------------------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:.4g}"
    return str(v)


def format_summary(rows: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    """The scorecard as a text table (or, with ``markdown``, a Markdown table): one column
    per model, one row per measure."""
    if not rows:
        return "(no model)"
    keys = [k for k in rows[0] if k != "model"]
    head = ["", *[r["model"] for r in rows]]
    body = [[k, *[_cell(r[k]) for r in rows]] for k in keys]
    if markdown:
        head[0] = "measure"
        return "\n".join(["| " + " | ".join(head) + " |",
                          "|---|" + "|".join("---:" for _ in rows) + "|",
                          *["| " + " | ".join(b) + " |" for b in body]])
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line):
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                         for i, c in enumerate(line))

    return "\n".join([fmt(head), *[fmt(b) for b in body]])


# ---- the command -----------------------------------------------------------------------------


@dataclass
class QueueScoreResult:
    """What :func:`queue_score` wrote and found.

    Attributes
    ----------
    run_dir : Path
    summary : list of dict
        :func:`summarise` rows.
    probes : pyarrow.Table
        :func:`probe_table`.
    calibration : dict or None
        The calibration file's content (``--calibrate``).
    timing : dict
        Wall times, s.
    info : dict
        The schedule (kind, probes drawn and dropped by status).
    """

    run_dir: Path
    summary: list[dict[str, Any]]
    probes: pa.Table
    calibration: dict[str, Any] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def default_out(cfg) -> Path:
    """``runs/queue_score-<name>-<first 10 hex of the config digest>``."""
    return Path("runs") / f"queue_score-{cfg.name}-{cfg.digest()[:10]}"


def _jsonable(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows]


def queue_score(
    experiment,
    *,
    models: str | Sequence[str] = DEFAULT_MODELS,
    n_probes: int = 2000,
    seed: int | None = None,
    lots: int = 1,
    out: str | os.PathLike | None = None,
    from_policy: bool | str | os.PathLike = False,
    calibrate: bool = False,
    grid: Sequence[float] = DEFAULT_GRID,
    n_boot: int = DEFAULT_BOOT,
    offsets: Sequence[int] = DEFAULT_OFFSETS,
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    plot: bool = True,
    log: Callable[[str], None] | None = None,
) -> QueueScoreResult:
    """Score L2 queue models against L3 truth on an L3 experiment; write a run directory.

    The run directory (claimed before any work: absent, empty or an mmsim run, locked) gets
    ``probes.parquet`` (:func:`probe_table`), ``summary.parquet`` and ``summary.json``
    (:func:`summarise`), ``summary_by_offset.parquet`` (:func:`summarise_by_offset`),
    ``time_to_fill.png`` (:mod:`mmsim.queue_score.plot`; needs the ``report`` extra),
    ``calibration.json`` (with ``calibrate``), ``config.yaml``,
    ``timing.json`` and ``manifest.json`` (last; ``complete: true``). It is written under
    ``<out>.partial`` and renamed into place at the end, so a run that fails halfway
    leaves nothing that looks complete; only what mmsim wrote is ever replaced.

    Parameters
    ----------
    experiment : path, dict or ExperimentConfig
        An experiment on L3 data (``data.kind`` lobster, databento, an L3 Parquet file...).
    models : str or sequence of str
        :func:`~mmsim.queue_score.probes.parse_models` (``risk_averse,power:2,log``).
    n_probes : int
        Probes to score. Random schedule: draws that cannot rest (no touch on their side,
        a crossed book, a halt) are replaced by further draws. Policy schedule: at most
        this many of the run's placements (a seeded subsample).
    seed : int, optional
        Schedule, subsample and bootstrap seed (default: the experiment's ``seed``).
    lots : int
        Size of each probe, lots.
    out : path, optional
        Run directory (default :func:`default_out`).
    from_policy : bool or path
        False: the random schedule. True (or ``""``): the placements of a backtest of the
        experiment (the finished run in its default run directory if its digest matches,
        else a new backtest there). A path: that run directory's orders log.
    calibrate : bool
        Also fit the power exponent (:func:`calibrate_power`) and write
        ``calibration.json`` (for ``queue.model: calibrated``).
    grid, n_boot : as :func:`calibrate_power`
    offsets : sequence of int
        Ticks behind the touch of the random schedule.
    data_root, cache_dir : path, optional
    overrides : sequence of ``key=value``
    plot : bool
        Write the PNG (False: skip it, e.g. without matplotlib).
    log : callable, optional
        Receives progress lines.

    Returns
    -------
    QueueScoreResult

    Raises
    ------
    mmsim.config.ConfigError
        A bad config, or data that is not L3 (file and ``data.kind`` named).
    mmsim.data.DataError
        Missing or bad data.
    mmsim.results.OutputError
        ``out`` is taken by something mmsim did not write, or in use.
    ValueError
        Bad models, probe counts, or a from-policy run without placements.
    mmsim._extras.MissingExtraError
        ``plot`` without matplotlib (the ``report`` extra).
    """
    import yaml

    import mmsim
    from mmsim.results import claim_output
    from mmsim.runner import resolve_config

    say = log or (lambda _m: None)
    t_start = time.perf_counter()
    specs = parse_models(models)
    if n_probes < 1:
        raise ValueError(f"queue-score: --probes must be >= 1, got {n_probes}")
    if lots < 1:
        raise ValueError(f"queue-score: --lots must be >= 1, got {lots}")
    cfg = resolve_config(experiment, overrides)
    seed = int(cfg.seed if seed is None else seed)
    if plot:
        from mmsim.queue_score.plot import check_plotting

        check_plotting()
    run_dir = Path(out) if out else default_out(cfg)
    claim = claim_output(run_dir, "run")  # before any work
    try:
        timing: dict[str, float] = {}
        t = time.perf_counter()
        data = load_score_data(experiment, data_root=data_root, cache_dir=cache_dir, cfg=cfg)
        timing["load_s"] = time.perf_counter() - t
        say(f"data: {data.dataset.kind}  {data.dataset.meta.get('symbol', '')}  "
            f"{len(data.events):,} L3 events -> {len(data.l2_events):,} L2 records")
        t = time.perf_counter()
        if from_policy is not False and from_policy is not None:
            probes, truth, info = _policy_schedule(
                data, None if from_policy is True else from_policy, n_probes, seed, lots,
                data_root, cache_dir, say)
        else:
            probes, truth, info = _random_schedule(data, n_probes, seed, lots, offsets)
        if len(probes) == 0:
            raise ValueError("queue-score: no probe could be placed (every draw found no "
                             "touch, a crossed book or a halt)")
        timing["schedule_and_truth_s"] = time.perf_counter() - t
        say(f"probes: {len(probes):,} ({info['schedule']} schedule)"
            + (f"; left out, could not rest: {info['dropped']}" if info["dropped"] else ""))
        if info["schedule"] == "random" and len(probes) < n_probes:
            say(f"warning: only {len(probes):,} of {n_probes:,} random probes could rest "
                f"after {_MAX_ROUNDS} rounds of draws")
        estimates = {}
        for m in specs:
            t = time.perf_counter()
            estimates[m.label] = _model(data, probes, m, truth)
            timing[f"model_{m.slug}_s"] = time.perf_counter() - t
        rows = summarise(probes, truth, estimates)
        by_offset = summarise_by_offset(probes, truth, estimates)
        table = probe_table(probes, truth, estimates, specs, data.spec.instrument.tick_size)
        calib = None
        if calibrate:
            t = time.perf_counter()
            def run_power(ms: ModelSpec) -> np.ndarray:  # the scored power models are reused
                done = estimates.get(ms.label)
                return done if done is not None else _model(data, probes, ms, truth)

            fit = calibrate_power(probes, truth, run_power, grid=grid, n_boot=n_boot,
                                  seed=seed)
            timing["calibrate_s"] = time.perf_counter() - t
            calib = _calibration_doc(fit, data, seed, lots, len(probes), info, rows)
        tmp = claim.new_partial()
        try:
            pq.write_table(table, tmp / PROBES_FILE)
            srows = _jsonable(rows)
            pq.write_table(pa.Table.from_pylist(srows), tmp / SUMMARY_FILE)
            (tmp / SUMMARY_JSON).write_text(json.dumps(srows, indent=1) + "\n")
            pq.write_table(pa.Table.from_pylist(_jsonable(by_offset)), tmp / BY_OFFSET_FILE)
            files = [PROBES_FILE, SUMMARY_FILE, SUMMARY_JSON, BY_OFFSET_FILE]
            if calib is not None:
                (tmp / CALIBRATION_FILE).write_text(json.dumps(calib, indent=1) + "\n")
                files.append(CALIBRATION_FILE)
            if plot:
                from mmsim.queue_score.plot import plot_time_to_fill

                plot_time_to_fill(probes, truth, estimates, tmp / PLOT_FILE,
                                  title=f"{cfg.name}: time to fill, {len(probes):,} probes")
                files.append(PLOT_FILE)
            (tmp / "config.yaml").write_text(yaml.safe_dump(cfg.as_dict(), sort_keys=False))
            timing["total_s"] = time.perf_counter() - t_start
            timing = {k: round(v, 4) for k, v in timing.items()}
            (tmp / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
            ds = data.dataset
            manifest = {
                "mmsim_version": mmsim.__version__,
                "mode": "queue_score",
                "name": cfg.name,
                "seed": seed,
                "config_sha256": cfg.digest(),
                "data_kind": ds.kind,
                "data_canonical": {"file": ds.path.name, "sha256": ds.canonical_sha256},
                "data_events": int(len(data.events)),
                "probes": {**info, "scored": int(len(probes)), "lots": lots},
                "models": [m.label for m in specs],
                "fills": "whole_order" if data.whole_fills else "partial",
                "horizons": [horizon_name(h) for h in HORIZONS_S],
                "files": sorted([*files, "config.yaml", "timing.json", "manifest.json"]),
                "complete": True,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
            claim.publish_dir(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return QueueScoreResult(run_dir, rows, table, calib, timing, info)
    finally:
        claim.release()


def _calibration_doc(fit: dict[str, Any], data: ScoreData, seed: int, lots: int, n: int,
                     info: dict[str, Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    import mmsim

    ds = data.dataset
    return {
        "format": CALIBRATION_FORMAT,
        "model": "power",
        "power_n": fit["power_n"],
        "at_grid_edge": fit["at_grid_edge"],
        "grid": [fit["curve"][0]["power_n"], fit["curve"][-1]["power_n"]],
        "error": fit["error"],
        "bias_median_s": fit["bias_median_s"],
        "uncertainty": fit["uncertainty"],
        "error_definition": fit["error_definition"],
        "horizons": [horizon_name(h) for h in HORIZONS_S],
        "probes": {"scored": n, "schedule": info["schedule"], "lots": lots, "seed": seed},
        "source": {
            "experiment": data.cfg.name,
            "config_sha256": data.cfg.digest(),
            "data_kind": ds.kind,
            "data_canonical": {"file": ds.path.name, "sha256": ds.canonical_sha256},
        },
        "scored_models": {r["model"]: r["error"] for r in _jsonable(rows)},
        "best_scored_model": min(rows, key=lambda r: r["error"])["model"] if rows else None,
        "curve": fit["curve"],
        "mmsim_version": mmsim.__version__,
    }
