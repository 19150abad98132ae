"""The run summary ``mmsim backtest`` prints: the metrics grouped, with units and the clock.

:func:`format_summary` turns a run's flat metrics (:func:`mmsim.metrics.compute_run_metrics`)
into a short text of groups: PnL and its split, risk, orders and fills, inventory, markouts
(and, for several instruments, the whole book and one PnL line per instrument). Money is in
the settlement currency of the instrument (coin for an inverse contract), quantities in
instrument units, spreads and markouts in price units per unit traded, as
:func:`mmsim.metrics.compute_metrics` defines them. Every metric is in ``metrics.json``;
``mmsim backtest --verbose`` prints the full list too, with the ``engine_*`` diagnostics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: below this many returns the Sharpe and Sortino ratios are noise: the summary says so
MIN_PERIODS = 30


def _money_unit(inst: Mapping[str, Any] | None) -> str:
    if not inst:
        return "quote ccy"
    if inst.get("contract") == "inverse":
        return "coin"
    return "quote ccy"


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v != 0 and abs(v) < 10 ** -digits:
            return f"{v:.{digits}e}"
        return f"{v:,.{digits}f}"
    return str(v)


def _pct(v: Any) -> str:
    return "n/a" if not isinstance(v, (int, float)) or math.isnan(v) else f"{100 * v:.2f} %"


def _clock(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or math.isnan(seconds):
        return "?"
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or math.isnan(seconds):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _rows(rows: list[tuple[str, str, str]]) -> list[str]:
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"    {a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows]


def format_summary(metrics: Mapping[str, Any], instrument: Mapping[str, Any] | None = None,
                   instruments: list[str] | None = None, calendar: str | None = None) -> str:
    """The grouped summary of a run's metrics, as text (one line per metric, with its unit).

    Parameters
    ----------
    metrics : mapping of str to number
        A run's metrics (``RunResult.metrics`` / ``metrics.json``); missing keys show ``-``.
    instrument : mapping, optional
        The quoted instrument's fields (the manifest's ``instrument``): the money unit
        (``coin`` for an inverse contract) and the symbol.
    instruments : list of str, optional
        The run's instrument names (several: a whole-book group and a PnL line each).
    calendar : str, optional
        The annualisation's trading calendar (the manifest's ``metrics_calendar``).

    Returns
    -------
    str
        Lines of ``  group`` headings and ``    name  value  unit`` rows; a ``note:`` line
        when the Sharpe ratio rests on fewer than :data:`MIN_PERIODS` returns.
    """
    m = dict(metrics)
    ccy = _money_unit(instrument)
    units = "units" if not instrument else f"units of {instrument.get('symbol', '')}".strip()
    out: list[str] = []

    def group(title: str, rows: list[tuple[str, str, str]]) -> None:
        out.append(f"  {title}")
        out.extend(_rows(rows))

    dur = m.get("duration_s")
    group(f"PnL ({ccy}, over {_duration(dur)} of exchange time)", [
        ("pnl", _num(m.get("pnl")), ccy),
        ("  spread capture", _num(m.get("spread_pnl")),
         f"{ccy}  (edge against the mid at each fill)"),
        ("  inventory", _num(m.get("inventory_pnl")),
         f"{ccy}  (mark-to-market of the inventory)"),
        ("  fees paid", _num(m.get("fees")), f"{ccy}  (negative: net rebates)"),
        ("  funding paid", _num(m.get("funding_paid", 0.0)), f"{ccy}  (negative: received)"),
        ("pnl before fees", _num(m.get("pnl_before_fees")), ccy),
    ])
    n_per = m.get("n_periods")
    clock = _clock(m.get("sharpe_clock_s"))
    ppy = m.get("periods_per_year")
    ann = f"annualised, {n_per} returns on a {clock} clock"
    if isinstance(ppy, (int, float)) and not math.isnan(ppy):
        ann += f", {ppy:,.0f} periods/yr"
    if calendar:
        ann += f" ({calendar})"
    group("risk", [
        ("sharpe", _num(m.get("sharpe"), 2), ann),
        ("sortino", _num(m.get("sortino"), 2), "annualised, same returns"),
        ("max drawdown", _num(m.get("max_drawdown")), ccy),
        ("pnl / max drawdown", _num(m.get("return_over_max_drawdown"), 2), ""),
        ("calmar", _num(m.get("calmar"), 2), "annualised pnl / max drawdown"
         + (" (returns on metrics.capital)" if "return_pct" in m else "")),
    ] + ([("return", _pct(m.get("return_pct")), "of metrics.capital")]
         if "return_pct" in m else []))
    group("round trips (FIFO lots, fees included)", [
        ("round trips", _num(m.get("n_round_trips")), ""),
        ("win rate", _pct(m.get("win_rate")), "with pnl > 0"),
        ("profit factor", _num(m.get("profit_factor"), 2), "gains / losses"),
        ("mean pnl", _num(m.get("avg_round_trip_pnl")), ccy),
    ])
    group("orders and fills", [
        ("orders sent", _num(m.get("n_orders")), f"({_num(m.get('n_quotes'))} quotes, "
                                                  f"{_num(m.get('n_cancels'))} cancels, "
                                                  f"{_num(m.get('n_modifies'))} modifies)"),
        ("rejected", _num(m.get("n_rejects")), "requests the exchange refused"),
        ("fills", _num(m.get("n_fills")), f"({_num(m.get('n_maker_fills'))} maker, "
                                           f"{_num(m.get('n_taker_fills'))} taker, "
                                           f"{_num(m.get('n_hedge_fills'))} hedge)"),
        ("fill rate", _pct(m.get("fill_rate_count")), "of quotes with a fill"),
        ("fill rate (qty)", _pct(m.get("fill_rate_qty")), "of quoted quantity"),
        ("traded", _num(m.get("traded_qty")), units),
        ("maker volume", _num(m.get("maker_volume"), 2), f"{ccy} notional"),
    ])
    group("inventory", [
        ("mean |position|", _num(m.get("mean_abs_position")), units),
        ("max |position|", _num(m.get("max_abs_position")), units),
        ("final position", _num(m.get("final_position")), units),
        ("turnover", _num(m.get("inventory_turnover"), 2), "traded / mean |position|"),
        ("time at the limit", _pct(m.get("time_at_limit_frac")), ""),
    ])
    rows = [("effective spread", _num(m.get("effective_spread")), "price, 2·s·(mid − p)")]
    for k in sorted((k for k in m if k.startswith("markout_") and not k.endswith("_maker")),
                    key=lambda k: _horizon_s(k[len("markout_"):])):
        lab = k[len("markout_"):]
        rs = m.get(f"realized_spread_{lab}")
        rows.append((f"markout {lab}", _num(m.get(k)),
                     "price per unit, s·(mid(t+h) − p)"
                     + (f"; realized spread {_num(rs)}" if rs is not None else "")))
    group("markouts (all fills, quantity-weighted)", rows)
    if instruments and len(instruments) > 1:
        rows = [("book pnl", _num(m.get("book_pnl")), f"{ccy} (at each instrument's mid)"),
                ("book max drawdown", _num(m.get("book_max_drawdown")), ccy),
                ("book final delta", _num(m.get("book_final_delta")),
                 "units of the quoted instrument"),
                ("basis (mean)", _num(m.get("basis_mean_bps"), 2), "bps")]
        for name in instruments:
            rows.append((f"{name} pnl", _num(m.get(f"inst.{name}.pnl")),
                         f"its own currency; {_num(m.get(f'inst.{name}.n_fills'))} fills"))
        group("whole book", rows)
    if isinstance(n_per, (int, float)) and n_per < MIN_PERIODS:
        out.append(f"  note: sharpe and sortino rest on {n_per} returns (< {MIN_PERIODS}); "
                   "they say little. Use a shorter metrics.sharpe_clock_s or a longer run.")
    return "\n".join(out)


def _horizon_s(label: str) -> float:
    """Seconds of a horizon label of :func:`mmsim.metrics.metrics.horizon_label`."""
    for suffix, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if label.endswith(suffix):
            try:
                return float(label[: -len(suffix)]) * scale
            except ValueError:
                return math.inf
    return math.inf


