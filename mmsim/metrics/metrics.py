"""Performance metrics of a market-making backtest, from the market maker's side (MODELS.md §9).

Inputs are the pandas DataFrames a backtest writes, in user units (floats, quote currency,
instrument units):

``fills``
    One row per fill: ``exch_ts`` (int64 ns), ``side`` (+1 we bought, -1 we sold), ``price``,
    ``qty`` (> 0), ``fee`` (quote currency, negative = rebate), ``liquidity``
    (``"maker"``/``"taker"``, or the :data:`~mmsim.enums.Liquidity` codes), ``is_hedge``
    (bool), ``mid`` (exchange mid at the fill, may be NaN), ``order_id``; the other
    columns written by the backtest are not used.
``equity``
    One row per sample of the fixed equity clock (exchange time): ``ts`` (int64 ns,
    increasing), ``mid``, ``position``, ``cash``, ``equity`` (``cash + position·mid·multiplier``
    for linear contracts).
``orders``
    The order lifecycle log: ``order_id``, ``event`` (``"submit"``, ``"ack"``, ``"reject"``,
    ``"modify"``, ``"modify_ack"``, ``"modify_reject"``, ``"cancel"``, ``"cancel_ack"``,
    ``"cancel_reject"``, ``"fill"``, ``"expire"``, or the :data:`~mmsim.enums.OrderEvent`
    codes), ``qty`` (order quantity after the event), ``is_hedge``.

The equity curve is assumed to cover the run: a sample before the first fill and one after
the last (the backtest writes both ends).

The frames are of ONE instrument: an ``instrument`` column (what a backtest writes) is
ignored when it holds one value; runs of several instruments go through
:func:`mmsim.metrics.compute_run_metrics`, which selects each instrument's rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mmsim.enums import (
    LIQUIDITY_NAMES,
    ORDER_EVENT_NAMES,
    REJECT_NAMES,
    RISK_REASON_NAMES,
    Reject,
)
from mmsim.metrics.trades import calmar, max_drawdown_frac, returns_series, trade_stats

__all__ = ["DEFAULT_MARKOUT_HORIZONS_S", "compute_metrics", "horizon_label", "markout_table"]

#: Markout horizons of MODELS.md §9 (seconds): 0, 100 ms, 1 s, 10 s, 60 s, 300 s.
DEFAULT_MARKOUT_HORIZONS_S: tuple[float, ...] = (0.0, 0.1, 1.0, 10.0, 60.0, 300.0)

#: Trading days per year and seconds per trading day (US equities) of the default clock.
EQUITY_DAYS_PER_YEAR = 252.0
EQUITY_SESSION_S = 6.5 * 3600.0

#: trading calendars for annualisation: name -> (trading days per year, seconds per day).
#: ``equities``: US equities, 252 sessions of 6.5 h; ``futures``: CME Globex, 252 days of 23 h;
#: ``24/7``: crypto venues, 365 days of 24 h.
CALENDARS: dict[str, tuple[float, float]] = {
    "equities": (EQUITY_DAYS_PER_YEAR, EQUITY_SESSION_S),
    "futures": (252.0, 23.0 * 3600.0),
    "24/7": (365.0, 86400.0),
}


def calendar_periods(calendar: str, sharpe_clock_s: float) -> tuple[float, float]:
    """``(periods_per_year, periods_per_day)`` of a clock of ``sharpe_clock_s`` seconds on
    one of :data:`CALENDARS`.

    Raises
    ------
    ValueError
        If ``calendar`` is not one of :data:`CALENDARS` or the clock is not positive.
    """
    if calendar not in CALENDARS:
        raise ValueError(f"calendar must be one of {', '.join(CALENDARS)}, got {calendar!r}")
    if not sharpe_clock_s > 0:
        raise ValueError(f"sharpe_clock_s must be > 0, got {sharpe_clock_s}")
    days, day_s = CALENDARS[calendar]
    return days * day_s / sharpe_clock_s, min(day_s, 86400.0) / sharpe_clock_s

_NS = 1_000_000_000


def horizon_label(horizon_s: float) -> str:
    """Suffix naming a horizon in metric keys: ``0s``, ``100ms``, ``1s``, ``300s``, ``50us``.

    Parameters
    ----------
    horizon_s : float
        Horizon in seconds (>= 0).

    Returns
    -------
    str
        Whole seconds as ``"<n>s"``, else whole milliseconds as ``"<n>ms"``, else whole
        microseconds as ``"<n>us"``, else the ``%g`` form with ``.`` replaced by ``p``.
    """
    h = float(horizon_s)
    for scale, unit in ((1.0, "s"), (1e3, "ms"), (1e6, "us")):
        v = h * scale
        if abs(v - round(v)) < 1e-9 * max(1.0, abs(v)):
            return f"{round(v)}{unit}"
    return f"{h:g}s".replace(".", "p")


def _col(df: pd.DataFrame | None, name: str, dtype: type = float) -> np.ndarray:
    """Column ``name`` of ``df`` as a numpy array (empty if ``df`` is None or empty)."""
    if df is None or len(df) == 0:
        return np.empty(0, dtype=dtype)
    if name not in df.columns:
        raise KeyError(f"missing column {name!r} (have {list(df.columns)})")
    return df[name].to_numpy(dtype=dtype)


def _names(column: pd.Series, codes: dict[int, str]) -> np.ndarray:
    """Lower-case names of a column of names, or of the integer codes of :mod:`mmsim.enums`."""
    if pd.api.types.is_numeric_dtype(column.dtype):
        return np.array([codes.get(int(v), "") for v in column.to_numpy()], dtype=object)
    return column.astype(str).str.lower().to_numpy()


def _weighted_mean(x: np.ndarray, w: np.ndarray) -> tuple[float, int]:
    """Weighted mean of the finite ``x``; returns ``(mean or NaN, number of finite x)``."""
    ok = np.isfinite(x)
    n = int(ok.sum())
    if n == 0:
        return math.nan, 0
    ws = float(w[ok].sum())
    if ws <= 0:
        return math.nan, n
    return float((x[ok] * w[ok]).sum() / ws), n


def _mid_at(fill_ts: np.ndarray, fill_mid: np.ndarray, equity: pd.DataFrame | None, h_s: float):
    """Mid as of ``fill_ts + h`` (vectorised); NaN past the end of the equity samples.

    The mid known at ``t + h`` is the latest observation at or before ``t + h`` among the
    equity samples and the fill's own mid (observed at ``t``): when the last sample at or
    before ``t + h`` is not later than the fill, the fill's mid is used (if finite).
    """
    n = fill_ts.shape[0]
    eq_ts = _col(equity, "ts", np.int64)
    eq_mid = _col(equity, "mid", float)
    out = np.full(n, np.nan)
    if n == 0 or eq_ts.shape[0] == 0:
        return out
    target = fill_ts + np.int64(round(h_s * _NS))
    idx = np.searchsorted(eq_ts, target, side="right") - 1
    inside = target <= eq_ts[-1]
    has_sample = inside & (idx >= 0)
    out[has_sample] = eq_mid[idx[has_sample]]
    # the fill's mid is the newer observation when no sample lies in (t, t + h]
    stale = inside & ((idx < 0) | (eq_ts[np.maximum(idx, 0)] <= fill_ts)) & np.isfinite(fill_mid)
    out[stale] = fill_mid[stale]
    return out


def _fill_arrays(fills: pd.DataFrame | None) -> dict[str, np.ndarray]:
    n = 0 if fills is None else len(fills)
    if n == 0:
        return {
            "ts": np.empty(0, np.int64),
            "side": np.empty(0),
            "price": np.empty(0),
            "qty": np.empty(0),
            "fee": np.empty(0),
            "mid": np.empty(0),
            "maker": np.empty(0, bool),
            "hedge": np.empty(0, bool),
            "order_id": np.empty(0, np.int64),
        }
    return {
        "ts": _col(fills, "exch_ts", np.int64),
        "side": _col(fills, "side", float),
        "price": _col(fills, "price", float),
        "qty": _col(fills, "qty", float),
        "fee": _col(fills, "fee", float),
        "mid": _col(fills, "mid", float),
        "maker": _names(fills["liquidity"], LIQUIDITY_NAMES) == "maker",
        "hedge": fills["is_hedge"].fillna(False).astype(bool).to_numpy(),
        "order_id": _col(fills, "order_id", np.int64),
    }


def markout_table(
    fills: pd.DataFrame,
    equity: pd.DataFrame,
    horizons_s: tuple[float, ...] | list[float] = DEFAULT_MARKOUT_HORIZONS_S,
    *,
    maker_only: bool = False,
) -> pd.DataFrame:
    """Markout curve: quantity-weighted mean of ``s·(mid_{t+h} − p)`` per horizon.

    Parameters
    ----------
    fills : pandas.DataFrame
        Fills (``exch_ts`` int64 ns, ``side``, ``price``, ``qty``, ``mid``, ``liquidity``,
        ``is_hedge``, ...; see the module docstring).
    equity : pandas.DataFrame
        Equity samples (``ts`` int64 ns increasing, ``mid``).
    horizons_s : sequence of float
        Horizons in seconds.
    maker_only : bool
        Average over maker fills only.

    Returns
    -------
    pandas.DataFrame
        One row per horizon: ``horizon_s`` (float, s), ``markout`` (float, quote currency per
        instrument unit, positive = the mid moved in our favour), ``n`` (int, fills with a
        defined mid at ``t + h``).

    Notes
    -----
    ``mid_{t+h}`` is the last equity-sample mid at or before ``t + h`` (as-of lookup with
    :func:`numpy.searchsorted`), or the fill's own ``mid`` when that sample is not later than
    the fill; fills whose ``t + h`` lies after the last equity sample are left out of that
    horizon (SEC Rule 605 style markouts, MODELS.md §9).
    """
    f = _fill_arrays(fills)
    sel = f["maker"] if maker_only else np.ones(f["ts"].shape[0], bool)
    rows = []
    for h in horizons_s:
        mid_h = _mid_at(f["ts"], f["mid"], equity, float(h))
        mk = f["side"] * (mid_h - f["price"])
        m, n = _weighted_mean(mk[sel], f["qty"][sel])
        rows.append({"horizon_s": float(h), "markout": m, "n": n})
    return pd.DataFrame(rows, columns=["horizon_s", "markout", "n"])


def _clock_returns(ts: np.ndarray, eq: np.ndarray, clock_s: float) -> np.ndarray:
    """Equity changes on a fixed clock of ``clock_s`` seconds starting at ``ts[0]``.

    Bucket ``k`` is ``[ts0 + k·c, ts0 + (k+1)·c)``; its value is the last sample in it (or the
    last before it if it is empty). The returns are the differences of
    ``[eq[0], value_0, value_1, ..., value_K]``, the last bucket being the one that holds the
    last sample (it may be partial).
    """
    if ts.shape[0] < 2:
        return np.empty(0)
    c = int(round(clock_s * _NS))
    n_buckets = int((ts[-1] - ts[0]) // c) + 1
    edges = ts[0] + c * np.arange(1, n_buckets + 1, dtype=np.int64)
    idx = np.searchsorted(ts, edges, side="left") - 1
    values = np.concatenate(([eq[0]], eq[idx]))
    return np.diff(values)


def _check_one_instrument(df: pd.DataFrame | None, what: str) -> None:
    """Refuse a frame whose ``instrument`` column holds several instruments."""
    if df is None or len(df) == 0 or "instrument" not in df.columns:
        return
    col = df["instrument"].to_numpy()
    if np.any(col != col[0]):
        names = list(dict.fromkeys(col.tolist()))
        raise ValueError(f"{what}: rows of several instruments {names}; select one "
                         "(RunResult.fills_of, ...) or use compute_run_metrics")


def periods(sharpe_clock_s: float, periods_per_year: float | None = None,
            periods_per_day: float | None = None) -> tuple[float, float]:
    """The annualisation of :func:`compute_metrics`: ``(periods_per_year, periods_per_day)``
    with their defaults filled in (see there).

    Raises
    ------
    ValueError
        If ``sharpe_clock_s`` is not positive.
    """
    if not sharpe_clock_s > 0:
        raise ValueError(f"sharpe_clock_s must be > 0, got {sharpe_clock_s}")
    if periods_per_year is None:
        periods_per_year = EQUITY_DAYS_PER_YEAR * EQUITY_SESSION_S / sharpe_clock_s
    if periods_per_day is None:
        periods_per_day = min(periods_per_year / EQUITY_DAYS_PER_YEAR, 86400.0 / sharpe_clock_s)
    return periods_per_year, periods_per_day


def curve_risk(
    ts: np.ndarray,
    eq: np.ndarray,
    sharpe_clock_s: float,
    periods_per_year: float,
    periods_per_day: float,
) -> dict[str, float]:
    """Sharpe, Sortino and drawdown of an equity curve, exactly as :func:`compute_metrics`.

    Parameters
    ----------
    ts : numpy.ndarray
        int64 UNIX ns, non-decreasing, shape ``(n,)``.
    eq : numpy.ndarray
        float64 equity (any one currency), shape ``(n,)``.
    sharpe_clock_s, periods_per_year, periods_per_day : float
        The clock (seconds) and annualisation (:func:`periods`).

    Returns
    -------
    dict[str, float]
        ``sharpe``, ``sharpe_daily``, ``sortino`` (NaN with fewer than 2 returns or no
        dispersion), ``n_periods`` (int), ``max_drawdown`` (>= 0, NaN if ``n == 0``).
    """
    r = _clock_returns(ts, eq, sharpe_clock_s)
    sharpe = sharpe_daily = sortino = math.nan
    if r.shape[0] >= 2:
        mean = float(r.mean())
        std = float(r.std(ddof=1))
        if std > 0:
            sharpe = mean / std * math.sqrt(periods_per_year)
            sharpe_daily = mean / std * math.sqrt(periods_per_day)
        downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
        if downside > 0:
            sortino = mean / downside * math.sqrt(periods_per_year)
    mdd = float(np.max(np.maximum.accumulate(eq) - eq)) if eq.shape[0] else math.nan
    return {"sharpe": sharpe, "sharpe_daily": sharpe_daily, "sortino": sortino,
            "n_periods": int(r.shape[0]), "max_drawdown": mdd}


def compute_metrics(
    fills: pd.DataFrame | None,
    equity: pd.DataFrame | None,
    orders: pd.DataFrame | None,
    *,
    multiplier: float = 1.0,
    contract: str = "linear",
    sharpe_clock_s: float = 60.0,
    periods_per_year: float | None = None,
    periods_per_day: float | None = None,
    max_position: float | None = None,
    markout_horizons_s: tuple[float, ...] | list[float] = DEFAULT_MARKOUT_HORIZONS_S,
    capital: float | None = None,
) -> dict[str, float]:
    """Compute the summary metrics of one backtest (MODELS.md §9).

    Parameters
    ----------
    fills, equity, orders : pandas.DataFrame or None
        The backtest outputs described in the module docstring. ``None`` or an empty frame
        means no rows.
    multiplier : float
        Contract multiplier. Linear: PnL of ``qty`` units over a price change ``dp`` is
        ``qty·dp·multiplier`` (quote currency). Inverse: ``multiplier`` is the contract size
        in quote currency (e.g. 100 USD) and money is in coin (MODELS.md §8).
    contract : {"linear", "inverse"}
        Contract type: it sets the notional (``qty·price·multiplier`` or, inverse,
        ``qty·multiplier/price`` coin) and the spread capture of a fill (below).
    sharpe_clock_s : float
        Clock of the Sharpe/Sortino returns, seconds of exchange time: the equity curve is
        cut into buckets ``[t0 + k·c, t0 + (k+1)·c)`` (``t0`` the first sample), each bucket
        is valued at its last sample, and the returns are the bucket-to-bucket equity changes
        (quote currency, not percentages: a market maker has no natural capital base), the
        first one measured from the first sample.
    periods_per_year : float or None
        Annualisation of Sharpe and Sortino. Default ``252 · 6.5 · 3600 / sharpe_clock_s``:
        US equities, 252 sessions of 6.5 h. For a 24/7 market pass
        ``365 · 86400 / sharpe_clock_s``.
    periods_per_day : float or None
        Clock periods per (trading) day, for ``sharpe_daily`` and ``inventory_turnover_per_day``.
        Default ``periods_per_year / 252`` capped at ``86400 / sharpe_clock_s``: gives
        ``6.5 · 3600 / c`` with the equities default and ``86400 / c`` with the 24/7 value.
    max_position : float or None
        Position limit (instrument units) for ``time_at_limit_frac``.
    markout_horizons_s : sequence of float
        Horizons (seconds) of the markout, realized-spread and price-impact metrics.
    capital : float or None
        Capital (settlement currency) the percentage metrics are measured against
        (``return_pct``, ``calmar`` on returns); None: Calmar on currency.

    Returns
    -------
    dict[str, float]
        A flat JSON-able dict (Python ``float``/``int``; NaN where undefined). Money in the
        settlement currency (quote currency; coin for inverse contracts), quantities in
        instrument units, spreads and markouts in price units (quote currency per instrument
        unit, per fill, quantity-weighted):

        PnL
            ``pnl`` (last − first equity), ``fees`` (Σ fill fees; negative = net rebates),
            ``pnl_before_fees = pnl + fees``, ``spread_pnl = Σ s·(mid_t − p)·qty·multiplier``
            (inverse: ``Σ s·qty·multiplier·(1/p − 1/mid_t)`` coin)
            over the fills with a finite mid (the edge captured against the mid at the fill),
            ``funding_paid`` (perpetual funding paid over the run, from the equity's
            ``funding`` column; negative = received),
            ``inventory_pnl = pnl_before_fees + funding_paid − spread_pnl`` (mark-to-market
            of the inventory), so ``spread_pnl + inventory_pnl − fees − funding_paid ==
            pnl``.
        Risk
            ``sharpe`` = mean/std·sqrt(periods_per_year) of the clock returns (std with
            ddof=1), ``sharpe_daily`` = mean/std·sqrt(periods_per_day), ``sortino`` =
            mean/downside deviation·sqrt(periods_per_year) (downside deviation
            ``sqrt(mean(min(r, 0)²))``), ``n_periods``, ``sharpe_clock_s``,
            ``periods_per_year``, ``periods_per_day``, ``max_drawdown`` (largest fall of the
            equity curve from its running peak, all samples, >= 0),
            ``return_over_max_drawdown = pnl / max_drawdown``, ``duration_s``,
            ``calmar`` (annualised PnL over the maximum drawdown, the year of
            ``periods_per_year`` clock periods; with ``capital``: annualised return over the
            maximum drawdown of the compounded returns, :mod:`mmsim.metrics.trades`) and, with
            ``capital``, ``return_pct = pnl / capital``.
        Round trips (FIFO lot matching, fees included; :mod:`mmsim.metrics.trades`)
            ``n_round_trips``, ``win_rate`` (share with PnL > 0), ``profit_factor`` (gains over
            losses), ``avg_round_trip_pnl``.
        Orders and fills
            ``n_orders`` (all submits), ``n_quotes`` (non-hedge submits), ``n_rejects`` (every
            request the exchange refused: ``reject``, ``modify_reject`` and
            ``cancel_reject`` events), split by request as ``n_rejects_submit``,
            ``n_rejects_modify``, ``n_rejects_cancel`` and by reason as
            ``n_rejects_<reason>`` for each :data:`~mmsim.enums.Reject` reason (e.g.
            ``n_rejects_post_only_would_cross``, ``n_rejects_unknown_order``: a cancel or
            modify that reached an order already filled); when the orders log has risk
            rows (``risk_on`` / ``risk_off``, the engine's risk limits of MODELS.md §10 and
            should-quote rules of §4), ``n_risk_<reason>`` for each
            :data:`~mmsim.enums.RiskReason` (e.g. ``n_risk_pnl_stop``): the times it
            started to act (runs without risk rows have no such keys); ``n_cancels`` (``cancel``
            requests), ``n_modifies``, ``n_fills``, ``n_maker_fills``, ``n_taker_fills``,
            ``n_hedge_fills``, ``traded_qty``, ``maker_volume`` and ``taker_volume``
            (notional, ``Σ p·qty·multiplier``; inverse ``Σ qty·multiplier/p`` coin),
            ``fill_rate_count`` = non-hedge orders with at
            least one fill / ``n_quotes``, ``fill_rate_qty`` = non-hedge filled quantity /
            quoted quantity (non-hedge submitted quantity plus the size increases accepted
            by ``modify_ack`` events).
        Inventory
            ``mean_abs_position`` and ``max_abs_position`` over the equity samples (the
            clock is regular, so the plain mean is time-weighted), ``final_position``,
            ``inventory_turnover = traded_qty / mean_abs_position``,
            ``inventory_turnover_per_day`` (divided by the run length in trading days of
            ``periods_per_day · sharpe_clock_s`` seconds), ``time_at_limit_frac`` (share of
            samples with ``|position| >= max_position``).
        Per-fill spreads (all fills, and ``*_maker`` over maker fills)
            ``effective_spread`` = ``2·s·(mid_t − p)``; for each horizon ``h`` with label
            ``L`` (:func:`horizon_label`): ``markout_L`` = ``s·(mid_{t+h} − p)``, and for
            ``h > 0`` ``realized_spread_L`` = ``2·s·(mid_{t+h} − p)`` and ``price_impact_L``
            = effective − realized (per fill, then averaged over fills where both are
            defined). ``mid_t`` is the fill's ``mid``; ``mid_{t+h}`` as in
            :func:`markout_table`.

    Raises
    ------
    KeyError
        If a needed column is missing.
    ValueError
        If ``sharpe_clock_s`` is not positive, the equity ``ts`` decrease, or a frame's
        ``instrument`` column holds several instruments.
    """
    periods_per_year, periods_per_day = periods(sharpe_clock_s, periods_per_year,
                                                periods_per_day)
    if contract not in ("linear", "inverse"):
        raise ValueError(f"contract must be 'linear' or 'inverse', got {contract!r}")
    inverse = contract == "inverse"
    for df, what in ((fills, "fills"), (equity, "equity"), (orders, "orders")):
        _check_one_instrument(df, what)
    out: dict[str, float] = {}

    # --- equity curve -------------------------------------------------------------------
    eq_ts = _col(equity, "ts", np.int64)
    eq = _col(equity, "equity", float)
    pos = _col(equity, "position", float)
    if eq_ts.shape[0] > 1 and np.any(np.diff(eq_ts) < 0):
        i = int(np.flatnonzero(np.diff(eq_ts) < 0)[0]) + 1
        raise ValueError(f"equity: column 'ts' decreases at row {i}")
    n_eq = eq_ts.shape[0]
    pnl = float(eq[-1] - eq[0]) if n_eq else math.nan

    f = _fill_arrays(fills)
    n_fills = f["ts"].shape[0]
    fees = float(f["fee"].sum())
    if inverse:
        with np.errstate(divide="ignore", invalid="ignore"):
            spread_each = f["side"] * f["qty"] * multiplier * (1.0 / f["price"] - 1.0 / f["mid"])
    else:
        spread_each = f["side"] * (f["mid"] - f["price"]) * f["qty"] * multiplier
    spread_pnl = float(np.nansum(spread_each)) if n_fills else 0.0
    pnl_before_fees = pnl + fees
    fund = _col(equity, "funding", float) if equity is not None and "funding" in equity else \
        np.zeros(0)
    funding_paid = float(fund[-1] - fund[0]) if fund.shape[0] else 0.0
    out["pnl"] = pnl
    out["pnl_before_fees"] = pnl_before_fees
    out["fees"] = fees
    out["funding_paid"] = funding_paid
    out["spread_pnl"] = spread_pnl
    out["inventory_pnl"] = pnl_before_fees + funding_paid - spread_pnl

    # --- Sharpe, Sortino, drawdown -------------------------------------------------------
    risk = curve_risk(eq_ts, eq, sharpe_clock_s, periods_per_year, periods_per_day)
    out["sharpe"] = risk["sharpe"]
    out["sharpe_daily"] = risk["sharpe_daily"]
    out["sortino"] = risk["sortino"]
    out["n_periods"] = risk["n_periods"]
    out["sharpe_clock_s"] = float(sharpe_clock_s)
    out["periods_per_year"] = float(periods_per_year)
    out["periods_per_day"] = float(periods_per_day)
    mdd = risk["max_drawdown"]
    out["max_drawdown"] = mdd
    out["return_over_max_drawdown"] = pnl / mdd if mdd > 0 else math.nan
    duration_s = float(eq_ts[-1] - eq_ts[0]) / _NS if n_eq else math.nan
    out["duration_s"] = duration_s
    year_s = periods_per_year * sharpe_clock_s
    if capital is None:
        out["calmar"] = calmar(pnl, mdd, duration_s, year_s)
    else:
        r = returns_series(eq_ts, eq - eq[0] if n_eq else eq, sharpe_clock_s, capital)
        dd = max_drawdown_frac(r)
        years = duration_s / year_s if n_eq else math.nan
        growth = float(np.prod(1.0 + r.to_numpy())) if len(r) else math.nan
        ann = growth ** (1.0 / years) - 1.0 if years > 0 and growth > 0 else math.nan
        out["return_pct"] = pnl / capital
        out["calmar"] = ann / dd if dd > 0 else math.nan

    # --- orders and fill rates ---------------------------------------------------------
    n_orders = n_quotes = n_cancels = n_modifies = 0
    rejects = {"submit": 0, "modify": 0, "cancel": 0}
    reasons = {k.lower(): 0 for k, code in Reject._asdict().items() if code != Reject.NONE}
    risk: dict[str, int] | None = None
    quoted_qty = 0.0
    quote_ids = np.empty(0, np.int64)
    if orders is not None and len(orders):
        ev = _names(orders["event"], ORDER_EVENT_NAMES)
        o_hedge = orders["is_hedge"].fillna(False).astype(bool).to_numpy()
        o_qty = _col(orders, "qty", float)
        o_id = _col(orders, "order_id", np.int64)
        submit = ev == "submit"
        n_orders = int(submit.sum())
        quote = submit & ~o_hedge
        n_quotes = int(quote.sum())
        quote_ids = np.unique(o_id[quote])
        rej = np.zeros(len(ev), bool)
        for kind, name in (("submit", "reject"), ("modify", "modify_reject"),
                           ("cancel", "cancel_reject")):
            sel = ev == name
            rejects[kind] = int(sel.sum())
            rej |= sel
        if "reason" in orders.columns and rej.any():
            why = _names(orders["reason"], REJECT_NAMES)[rej]
            for name in reasons:
                reasons[name] = int((why == name).sum())
        risk_on = ev == "risk_on"
        if risk_on.any() or (ev == "risk_off").any():
            why = _names(orders["reason"], REJECT_NAMES)[risk_on]
            risk = {name: int((why == name).sum()) for name in RISK_REASON_NAMES.values()}
        n_cancels = int((ev == "cancel").sum())
        n_modifies = int((ev == "modify").sum())
        quoted_qty = float(o_qty[quote].sum())
        # size increases accepted by modify_ack, relative to the previous accepted size
        sized = (submit | (ev == "modify_ack")) & ~o_hedge
        if np.any(sized & (ev == "modify_ack")):
            s = pd.DataFrame({"id": o_id[sized], "qty": o_qty[sized], "mod": ~submit[sized]})
            prev = s.groupby("id", sort=False)["qty"].shift(1)
            inc = (s["qty"] - prev).where(s["mod"], 0.0).clip(lower=0.0).fillna(0.0)
            quoted_qty += float(inc.sum())
    out["n_orders"] = n_orders
    out["n_quotes"] = n_quotes
    out["n_rejects"] = sum(rejects.values())
    for kind, n in rejects.items():
        out[f"n_rejects_{kind}"] = n
    for name, n in reasons.items():
        out[f"n_rejects_{name}"] = n
    if risk is not None:
        for name, n in risk.items():
            out[f"n_risk_{name}"] = n
    out["n_cancels"] = n_cancels
    out["n_modifies"] = n_modifies

    maker = f["maker"]
    if inverse:
        notional = f["qty"] * multiplier / f["price"]
    else:
        notional = f["price"] * f["qty"] * multiplier
    quote_fill = ~f["hedge"]
    filled_ids = np.unique(f["order_id"][quote_fill])
    n_filled_orders = int(np.isin(filled_ids, quote_ids).sum())
    out["n_fills"] = int(n_fills)
    out["n_maker_fills"] = int(maker.sum())
    out["n_taker_fills"] = int(n_fills - maker.sum())
    out["n_hedge_fills"] = int(f["hedge"].sum())
    out["traded_qty"] = float(f["qty"].sum())
    out["maker_volume"] = float(notional[maker].sum())
    out["taker_volume"] = float(notional[~maker].sum())
    out["fill_rate_count"] = n_filled_orders / n_quotes if n_quotes else math.nan
    filled_qty = float(f["qty"][quote_fill & np.isin(f["order_id"], quote_ids)].sum())
    out["fill_rate_qty"] = filled_qty / quoted_qty if quoted_qty > 0 else math.nan
    if n_fills:
        out.update(trade_stats(pd.DataFrame({"exch_ts": f["ts"], "side": f["side"],
                                             "price": f["price"], "qty": f["qty"],
                                             "fee": f["fee"]}), multiplier, contract))
    else:
        out.update(trade_stats(pd.DataFrame({k: [] for k in ("exch_ts", "side", "price", "qty",
                                                             "fee")})))

    # --- inventory -------------------------------------------------------------------
    abs_pos = np.abs(pos)
    mean_abs = float(abs_pos.mean()) if n_eq else math.nan
    out["mean_abs_position"] = mean_abs
    out["max_abs_position"] = float(abs_pos.max()) if n_eq else math.nan
    out["final_position"] = float(pos[-1]) if n_eq else math.nan
    turnover = out["traded_qty"] / mean_abs if mean_abs > 0 else math.nan
    out["inventory_turnover"] = turnover
    day_s = periods_per_day * sharpe_clock_s
    n_days = duration_s / day_s if n_eq else math.nan
    out["inventory_turnover_per_day"] = turnover / n_days if n_days > 0 else math.nan
    if max_position is None or n_eq == 0:
        out["time_at_limit_frac"] = math.nan
    else:
        limit = float(max_position) * (1.0 - 1e-12)
        out["time_at_limit_frac"] = float(np.mean(abs_pos >= limit))

    # --- per-fill spreads and markouts --------------------------------------------------
    side, price, qty = f["side"], f["price"], f["qty"]
    eff = 2.0 * side * (f["mid"] - price)
    for suffix, sel in (("", np.ones(n_fills, bool)), ("_maker", maker)):
        out["effective_spread" + suffix], _ = _weighted_mean(eff[sel], qty[sel])
    for h in markout_horizons_s:
        label = horizon_label(h)
        mid_h = _mid_at(f["ts"], f["mid"], equity, float(h))
        mk = side * (mid_h - price)
        for suffix, sel in (("", np.ones(n_fills, bool)), ("_maker", maker)):
            out[f"markout_{label}{suffix}"], _ = _weighted_mean(mk[sel], qty[sel])
            if h > 0:
                out[f"realized_spread_{label}{suffix}"], _ = _weighted_mean(2.0 * mk[sel], qty[sel])
                out[f"price_impact_{label}{suffix}"], _ = _weighted_mean(
                    eff[sel] - 2.0 * mk[sel], qty[sel]
                )

    return {k: (v if isinstance(v, int) else float(v)) for k, v in out.items()}
