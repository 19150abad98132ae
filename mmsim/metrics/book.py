"""Runs of several instruments (MODELS.md §12): the book's equity, delta and basis, and the
metrics of every instrument and of the book.

A run replays up to a few instruments: index 0 is the quoted instrument (the policy quotes
it), the others (e.g. the perpetual a hedger trades on) have their own position, cash and
fees in their own settlement currency. The frames a backtest writes hold the rows of all of
them, named in their ``instrument`` column (:mod:`mmsim.results`); the equity clock writes
one row per instrument per sample time (same ``ts``, instrument 0 first).

Conversion to the report currency (the settlement currency of the quoted instrument, by
default): a linear instrument's equity is in its quote currency and is taken as is; an
inverse instrument's equity is in coin and is worth ``coin · mid`` of that instrument in the
quote currency (its mid is the quote-currency price of its coin). This assumes that every
linear instrument of the run settles in the same quote currency (e.g. USD and USDT taken at
par) and that each inverse instrument's coin is priced by its own mid. If the report
instrument is inverse, the quote-currency total is divided by its mid (coin).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmsim.metrics.metrics import compute_metrics, curve_risk, periods

if TYPE_CHECKING:
    from mmsim.instruments import Instrument

__all__ = ["book_equity", "compute_run_metrics", "instrument_rows"]

INSTRUMENT_COLUMN = "instrument"


def instrument_rows(df: pd.DataFrame | None, name: str) -> pd.DataFrame | None:
    """The rows of ``df`` whose ``instrument`` column is ``name`` (index reset).

    Parameters
    ----------
    df : pandas.DataFrame or None
        A fills, orders or equity frame of a run (None passes through).
    name : str
        The instrument's name.

    Raises
    ------
    KeyError
        If ``df`` has rows but no ``instrument`` column.
    """
    if df is None:
        return None
    if INSTRUMENT_COLUMN not in df.columns:
        if len(df) == 0:
            return df
        raise KeyError(f"missing column {INSTRUMENT_COLUMN!r}: the rows of several "
                       f"instruments cannot be told apart (have {list(df.columns)})")
    return df[df[INSTRUMENT_COLUMN] == name].reset_index(drop=True)


def _check_names(instruments: Sequence[Any], names: Sequence[str]) -> None:
    if len(instruments) == 0 or len(instruments) != len(names):
        raise ValueError(f"need one name per instrument (and at least one): "
                         f"{len(instruments)} instruments, {len(names)} names")
    if len(set(names)) != len(names):
        raise ValueError(f"instrument names must be distinct, got {list(names)}")


def book_equity(
    equity: pd.DataFrame,
    instruments: Sequence[Instrument],
    names: Sequence[str],
    report_currency_index: int = 0,
) -> pd.DataFrame:
    """Equity of the whole book on the equity clock, in one currency (MODELS.md §12).

    Parameters
    ----------
    equity : pandas.DataFrame
        The equity samples of a run (all instruments): ``ts`` (int64 ns), ``instrument``
        (name; may be absent with one instrument), ``mid``, ``position`` (instrument units),
        ``equity`` (settlement currency: cash + position marked to mid, funding and fees
        included, as the backtest writes it; see :func:`mmsim.results.equity_table`).
    instruments : sequence of Instrument
        In index order (0 = the quoted instrument); ``contract`` and ``multiplier`` are used.
    names : sequence of str
        Their names, as in the ``instrument`` column.
    report_currency_index : int
        The instrument whose settlement currency the book is counted in (default the quoted
        instrument).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``ts`` (int64 ns, the sample times of instrument 0), one row per sample,
        float64 columns, for each instrument ``<name>``:

        ``mid_<name>``
            Its mid (price units), forward-filled over samples where a side of its book
            was empty (NaN before its first mid).
        ``position_<name>``
            Position, instrument units.
        ``equity_<name>``
            Its equity in its own settlement currency (the ``equity`` column).
        ``value_<name>``
            The same in the report currency: quote currency as is for linear, coin ·
            ``mid_<name>`` for inverse (zero coin is zero without a mid); divided by the
            report instrument's mid if that one is inverse.
        ``delta_<name>``
            Delta in units of the underlying: linear ``position · multiplier``, inverse
            ``position · multiplier / mid_<name>`` (a long inverse contract is long the
            coin). Coin held as cash/margin of an inverse instrument is not counted.

        and ``total`` (Σ ``value_<name>``, report currency), ``delta`` (Σ ``delta_<name>``;
        meaningful when the instruments share one underlying, β = 1) and, with two or more
        instruments, ``basis`` = mid(instrument 1) − mid(instrument 0) (price units, the raw
        mids at the sample: NaN while a side of either book is empty) and ``basis_bps`` =
        ``basis / mid0 · 1e4``.

    Raises
    ------
    ValueError
        If the names and instruments do not match, ``report_currency_index`` is out of
        range, or the instruments do not have the same sample times.
    KeyError
        If a needed column is missing.
    """
    _check_names(instruments, names)
    if not 0 <= report_currency_index < len(instruments):
        raise ValueError(f"report_currency_index {report_currency_index} out of range for "
                         f"{len(instruments)} instruments")
    single = len(instruments) == 1
    cols: dict[str, np.ndarray] = {}
    ts0: np.ndarray | None = None
    quote_values = []
    mids_raw = []
    mids = []
    deltas = []
    for inst, name in zip(instruments, names, strict=True):
        rows = equity if single and INSTRUMENT_COLUMN not in equity.columns \
            else instrument_rows(equity, name)
        for c in ("ts", "mid", "position", "equity"):
            if c not in rows.columns:
                raise KeyError(f"equity: missing column {c!r} (have {list(rows.columns)})")
        ts = rows["ts"].to_numpy(np.int64)
        if ts0 is None:
            ts0 = ts
        elif ts.shape != ts0.shape or not np.array_equal(ts, ts0):
            raise ValueError(f"equity: instrument {name!r} has {len(ts)} samples at other "
                             f"times than instrument {names[0]!r} ({len(ts0)} samples); "
                             "expected one row per instrument per sample time")
        raw = rows["mid"].to_numpy(float)
        mid = pd.Series(raw).ffill().to_numpy(float)
        pos = rows["position"].to_numpy(float)
        eq = rows["equity"].to_numpy(float)
        mult = float(inst.multiplier)
        if inst.contract == "inverse":
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(eq == 0, 0.0, eq * mid)
                delta = np.where(pos == 0, 0.0, pos * mult / mid)
        else:
            value = eq
            delta = pos * mult
        cols[f"mid_{name}"] = mid
        cols[f"position_{name}"] = pos
        cols[f"equity_{name}"] = eq
        quote_values.append(value)
        mids_raw.append(raw)
        mids.append(mid)
        deltas.append(delta)
    rep = instruments[report_currency_index]
    for i, name in enumerate(names):
        v = quote_values[i]
        if rep.contract == "inverse":
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v == 0, 0.0, v / mids[report_currency_index])
        cols[f"value_{name}"] = v
        cols[f"delta_{name}"] = deltas[i]
    ordered = {}
    for name in names:
        for k in ("mid", "position", "equity", "value", "delta"):
            ordered[f"{k}_{name}"] = cols[f"{k}_{name}"]
    ordered["total"] = np.sum([cols[f"value_{n}"] for n in names], axis=0)
    ordered["delta"] = np.sum(deltas, axis=0)
    if not single:
        basis = mids_raw[1] - mids_raw[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            ordered["basis"] = basis
            ordered["basis_bps"] = basis / mids_raw[0] * 1e4
    index = pd.Index(ts0 if ts0 is not None else np.empty(0, np.int64), name="ts")
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in ordered.items()},
                        index=index)


def _per_instrument_limits(max_position: Any, n: int) -> list[float | None]:
    if max_position is None or np.isscalar(max_position):
        return [max_position] + [None] * (n - 1)
    limits = list(max_position)
    if len(limits) != n:
        raise ValueError(f"max_position: {len(limits)} limits for {n} instruments")
    return limits


def _last_finite(x: np.ndarray) -> float:
    ok = np.flatnonzero(np.isfinite(x))
    return float(x[ok[-1]]) if len(ok) else math.nan


def compute_run_metrics(
    fills: pd.DataFrame | None,
    equity: pd.DataFrame | None,
    orders: pd.DataFrame | None,
    instruments: Sequence[Instrument],
    names: Sequence[str],
    *,
    max_position: float | Sequence[float | None] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Metrics of a run of one or several instruments (MODELS.md §9, §12).

    Parameters
    ----------
    fills, equity, orders : pandas.DataFrame or None
        The run's frames (all instruments' rows, named in their ``instrument`` column).
    instruments : sequence of Instrument
        In index order (0 = the quoted instrument); ``multiplier`` and ``contract`` are
        passed to :func:`compute_metrics` per instrument.
    names : sequence of str
        Their names, as in the ``instrument`` columns.
    max_position : float, sequence or None
        Position limit (instrument units) for ``time_at_limit_frac``: a number is the
        limit of the quoted instrument (the others get none: NaN); a sequence gives one
        limit (or None) per instrument.
    **kwargs
        The other keywords of :func:`compute_metrics` (``sharpe_clock_s``,
        ``periods_per_year``, ``periods_per_day``, ``markout_horizons_s``), for every
        instrument and for the book.

    Returns
    -------
    dict[str, float]
        One instrument: exactly ``compute_metrics(fills, equity, orders,
        multiplier=..., contract=..., max_position=..., **kwargs)``.

        Several: the quoted instrument's metrics (on its rows only) under their plain
        names, then for every instrument (the quoted one included) each of its metrics as
        ``inst.<name>.<metric>`` (money in that instrument's settlement currency), then,
        from :func:`book_equity` (report currency = the quoted instrument's settlement
        currency):

        ``book_pnl``
            Last − first ``total``.
        ``book_sharpe``, ``book_max_drawdown``
            Of the ``total`` curve, with the same clock and annualisation as ``sharpe``
            and ``max_drawdown``.
        ``book_final_delta``
            ``delta`` at the last sample (units of the underlying; linear
            ``q·multiplier``, inverse ``q·multiplier/mid``; margin coin not counted).
        ``basis_mean_bps``, ``basis_last_bps``
            Mean over the samples where both mids are known, and the last such value, of
            ``basis_bps`` = (mid1 − mid0)/mid0·1e4 (NaN if never known).

        Python ``float``/``int`` values (NaN where undefined), JSON-able.

    Raises
    ------
    KeyError
        If a needed column is missing (with several instruments: the ``instrument``
        column too).
    ValueError
        As :func:`compute_metrics` and :func:`book_equity`; or if ``max_position`` has
        the wrong length.
    """
    _check_names(instruments, names)
    limits = _per_instrument_limits(max_position, len(instruments))
    if len(instruments) == 1:
        inst = instruments[0]
        return compute_metrics(fills, equity, orders, multiplier=inst.multiplier,
                               contract=inst.contract, max_position=limits[0], **kwargs)
    # the capital is in the quoted instrument's settlement currency: its metrics only
    capital = kwargs.pop("capital", None)
    per = [
        compute_metrics(instrument_rows(fills, name), instrument_rows(equity, name),
                        instrument_rows(orders, name), multiplier=inst.multiplier,
                        contract=inst.contract, max_position=limit,
                        capital=capital if i == 0 else None, **kwargs)
        for i, (inst, name, limit) in enumerate(zip(instruments, names, limits, strict=True))
    ]
    out: dict[str, float] = dict(per[0])
    for name, m in zip(names, per, strict=True):
        out.update({f"inst.{name}.{k}": v for k, v in m.items()})
    eq = equity if equity is not None else pd.DataFrame(
        {c: [] for c in ("ts", "mid", "position", "equity", INSTRUMENT_COLUMN)})
    book = book_equity(eq, instruments, names)
    clock = kwargs.get("sharpe_clock_s", 60.0)
    ppy, ppd = periods(clock, kwargs.get("periods_per_year"), kwargs.get("periods_per_day"))
    total = book["total"].to_numpy(float)
    ts = book.index.to_numpy(np.int64)
    risk = curve_risk(ts, total, clock, ppy, ppd)
    out["book_pnl"] = float(total[-1] - total[0]) if len(total) else math.nan
    out["book_sharpe"] = float(risk["sharpe"])
    out["book_max_drawdown"] = float(risk["max_drawdown"])
    out["book_final_delta"] = float(book["delta"].iloc[-1]) if len(book) else math.nan
    bps = book["basis_bps"].to_numpy(float)
    finite = bps[np.isfinite(bps)]
    out["basis_mean_bps"] = float(finite.mean()) if len(finite) else math.nan
    out["basis_last_bps"] = _last_finite(bps)
    return out
