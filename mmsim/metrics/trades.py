"""Round trips, win rate, profit factor, Calmar and a percentage returns series.

What users compare across backtesting tools, defined for a market maker's fills:

Round trip (FIFO lot matching)
    Fills are taken in time order; a fill that adds to the position opens a lot (its
    quantity and price), a fill that reduces it closes the oldest open lots first (FIFO),
    splitting a lot or the fill where the quantities differ; a fill that crosses zero
    closes everything and opens the rest on the other side. Each (opening lot, closing
    fill) pair is one round trip of quantity ``q`` with PnL
    ``s·(p_close − p_open)·q·multiplier`` (``s`` = +1 for a long lot) minus the two fills'
    fees pro rata to ``q``; for an inverse contract ``s·q·multiplier·(1/p_open − 1/p_close)``
    coin. Lots still open at the end are not round trips (their PnL is in the inventory
    PnL).
Win rate
    Round trips with PnL > 0 over all round trips (count; NaN with none).
Profit factor
    ``Σ PnL of winning round trips / |Σ PnL of losing ones|`` (inf with no losses, NaN
    with no round trips).
Calmar
    Annualised PnL over the maximum drawdown: ``pnl · (seconds per year / duration_s) /
    max_drawdown``, both in the settlement currency; with ``capital`` the classic
    ``annualised return / max drawdown (as fractions of capital + peak equity)``.
Returns (``capital`` given)
    The clock returns of :func:`mmsim.metrics.metrics.curve_risk` divided by the capital
    plus the equity at the start of each period: ``r_k = ΔE_k / (capital + E_{k−1})``, a
    ``pandas.Series`` on a UTC ``DatetimeIndex`` at the end of each period, what
    quantstats and empyrical take.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

import numpy as np
import pandas as pd


class RoundTrips(NamedTuple):
    """The round trips of :func:`round_trips` (float64 arrays of one length).

    ``open_ts``/``close_ts`` int64 ns, ``side`` +1 long / −1 short, ``qty`` instrument
    units, ``open_price``/``close_price``, ``pnl`` (settlement currency, fees included)."""

    open_ts: np.ndarray
    close_ts: np.ndarray
    side: np.ndarray
    qty: np.ndarray
    open_price: np.ndarray
    close_price: np.ndarray
    pnl: np.ndarray


def round_trips(fills: pd.DataFrame, multiplier: float = 1.0,
                contract: str = "linear", eps: float = 1e-12) -> RoundTrips:
    """FIFO round trips of one instrument's fills (module docstring).

    Parameters
    ----------
    fills : pandas.DataFrame
        ``exch_ts`` (int64 ns), ``side`` (+1/−1), ``price``, ``qty`` (> 0), ``fee``; in time
        order (as a backtest writes them).
    multiplier : float
        Contract multiplier (inverse: quote-currency units per contract).
    contract : {"linear", "inverse"}
    eps : float
        Quantities below this count as zero (float lots).

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If ``contract`` is neither ``linear`` nor ``inverse``.
    """
    if contract not in ("linear", "inverse"):
        raise ValueError(f"contract must be 'linear' or 'inverse', got {contract!r}")
    inverse = contract == "inverse"
    ts = fills["exch_ts"].to_numpy(np.int64)
    side = fills["side"].to_numpy(np.float64)
    px = fills["price"].to_numpy(np.float64)
    qty = fills["qty"].to_numpy(np.float64)
    fee = fills["fee"].to_numpy(np.float64)
    lots: deque[list[float]] = deque()  # [qty left, price, ts, fee per unit, side]
    out: list[tuple[float, ...]] = []
    for i in range(ts.shape[0]):
        s, p, q = side[i], px[i], qty[i]
        fpu = fee[i] / q if q > 0 else 0.0
        while q > eps and lots and lots[0][4] != s:
            lot = lots[0]
            m = min(q, lot[0])
            gross = (lot[4] * m * multiplier * (1.0 / lot[1] - 1.0 / p) if inverse
                     else lot[4] * (p - lot[1]) * m * multiplier)
            out.append((lot[2], ts[i], lot[4], m, lot[1], p, gross - (lot[3] + fpu) * m))
            lot[0] -= m
            q -= m
            if lot[0] <= eps:
                lots.popleft()
        if q > eps:
            lots.append([q, p, float(ts[i]), fpu, s])
    a = np.array(out, dtype=np.float64).reshape(-1, 7)
    return RoundTrips(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2], a[:, 3],
                      a[:, 4], a[:, 5], a[:, 6])


def trade_stats(fills: pd.DataFrame, multiplier: float = 1.0,
                contract: str = "linear") -> dict[str, float]:
    """``n_round_trips``, ``win_rate``, ``profit_factor``, ``avg_round_trip_pnl`` (module
    docstring), from :func:`round_trips`."""
    rt = round_trips(fills, multiplier, contract)
    n = int(rt.pnl.shape[0])
    if n == 0:
        return {"n_round_trips": 0, "win_rate": math.nan, "profit_factor": math.nan,
                "avg_round_trip_pnl": math.nan}
    gains = float(rt.pnl[rt.pnl > 0].sum())
    losses = float(-rt.pnl[rt.pnl < 0].sum())
    return {
        "n_round_trips": n,
        "win_rate": float((rt.pnl > 0).sum()) / n,
        "profit_factor": gains / losses if losses > 0 else (math.inf if gains > 0 else math.nan),
        "avg_round_trip_pnl": float(rt.pnl.mean()),
    }


def calmar(pnl: float, max_drawdown: float, duration_s: float,
           seconds_per_year: float) -> float:
    """Annualised PnL over the maximum drawdown (currency over currency; module docstring).
    NaN when the drawdown or the duration is not positive."""
    if not (max_drawdown > 0 and duration_s > 0):
        return math.nan
    return pnl * (seconds_per_year / duration_s) / max_drawdown


def returns_series(ts: np.ndarray, eq: np.ndarray, clock_s: float,
                   capital: float) -> pd.Series:
    """Percentage returns on the clock (module docstring): float64, indexed by the UTC end
    time of each period (``DatetimeIndex``), named ``returns``.

    Parameters
    ----------
    ts : numpy.ndarray
        int64 UNIX ns of the equity samples, non-decreasing, shape ``(n,)``.
    eq : numpy.ndarray
        float64 equity (PnL since the start, settlement currency), shape ``(n,)``.
    clock_s : float
        Length of a period in seconds (``metrics.sharpe_clock_s``).
    capital : float
        The capital the PnL is measured against (settlement currency, > 0).

    Raises
    ------
    ValueError
        If ``capital`` or ``clock_s`` is not positive, or equity would leave no capital.
    """
    if not capital > 0:
        raise ValueError(f"capital must be > 0, got {capital}")
    if not clock_s > 0:
        raise ValueError(f"clock_s must be > 0, got {clock_s}")
    ts = np.asarray(ts, dtype=np.int64)
    eq = np.asarray(eq, dtype=np.float64)
    if ts.shape[0] == 0:
        return pd.Series([], dtype=np.float64, name="returns",
                         index=pd.DatetimeIndex([], tz="UTC"))
    step = int(round(clock_s * 1e9))
    bucket = (ts - ts[0]) // step
    last = np.r_[np.nonzero(np.diff(bucket))[0], ts.shape[0] - 1]  # last sample per bucket
    values = np.r_[eq[0], eq[last]]
    base = capital + values[:-1]
    if np.any(base <= 0):
        raise ValueError("the equity falls below -capital: returns are undefined")
    r = np.diff(values) / base
    end = ts[0] + (bucket[last] + 1) * step
    return pd.Series(r, index=pd.to_datetime(end, unit="ns", utc=True), name="returns")


def max_drawdown_frac(r: pd.Series | np.ndarray) -> float:
    """Largest fall of the compounded returns ``Π(1 + r)`` from its running peak, as a
    fraction (>= 0; empyrical's ``max_drawdown`` with the sign flipped)."""
    x = np.asarray(r, dtype=np.float64)
    if x.shape[0] == 0:
        return math.nan
    wealth = np.r_[1.0, np.cumprod(1.0 + x)]
    peak = np.maximum.accumulate(wealth)
    return float(np.max(1.0 - wealth / peak))
