"""The league table of ``experiments/league.yaml`` as Markdown, one table per market.

    .venv/bin/mmsim sweep experiments/league.yaml --jobs 1 --out runs/league
    .venv/bin/python experiments/league_table.py runs/league

Reads ``<sweep>/sweep.parquet`` (:func:`mmsim.results.load_sweep`). The market of a row is
its ``instrument`` section's symbol and the policy its ``policy`` section's name (the league
sweeps whole sections: the table holds them as JSON text, or as mappings); a sweep that sets
``instrument.symbol`` / ``policy.name`` as dotted keys works as well. Rows are ranked by PnL
within each market; failed or pending runs are listed with their status.

Columns (metric keys of ``metrics.json``, MODELS.md §9): ``pnl`` in the quote currency of the
instrument, ``sharpe`` (annualised on the market's calendar, on the run's Sharpe clock),
``n_fills``, ``fill_rate_count`` (share of quotes with a fill), ``mean_abs_position``
(instrument units), ``time_at_limit_frac``, ``markout_1s`` and ``markout_10s``
(``s·(mid(t+h) − p)``) and the realized spread ``2·s·(mid(t+h) − p)`` at 60 s, these three
in ticks of the instrument (the metric in price per unit divided by the tick size), so the
markets read alike. The realized spread at h is twice the markout at h: 60 s adds a horizon
instead of repeating one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the market order of the table (others follow, sorted)
MARKET_ORDER = ("AMZN", "ESH4", "BTCUSDT")


@dataclass(frozen=True)
class Column:
    """One column: its header (with the unit), the metric key, how the value is shown."""

    header: str
    key: str
    fmt: str  # "money", "ratio", "int", "pct", "qty", "ticks"


#: the league's columns, in order
COLUMNS: tuple[Column, ...] = (
    Column("PnL (quote ccy)", "pnl", "money"),
    Column("Sharpe (ann.)", "sharpe", "ratio"),
    Column("fills", "n_fills", "int"),
    Column("fill rate (% of quotes)", "fill_rate_count", "pct"),
    Column("mean \\|q\\| (units)", "mean_abs_position", "qty"),
    Column("at limit (% of time)", "time_at_limit_frac", "pct"),
    Column("markout 1 s (ticks)", "markout_1s", "ticks"),
    Column("markout 10 s (ticks)", "markout_10s", "ticks"),
    Column("realized spread 60 s (ticks)", "realized_spread_60s", "ticks"),
)


def section(value: Any) -> dict[str, Any]:
    """A swept section as a mapping: JSON text (as ``sweep.parquet`` stores it), a mapping,
    or nothing (``{}``)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            out = json.loads(value)
        except ValueError:
            return {}
        return out if isinstance(out, dict) else {}
    return {}


def _field(row: dict[str, Any], sect: str, key: str) -> Any:
    """``row[sect.key]`` as a dotted column, else from the swept section ``row[sect]``."""
    dotted = f"{sect}.{key}"
    v = row.get(dotted)
    if v is not None and not (isinstance(v, float) and math.isnan(v)):
        return v
    return section(row.get(sect)).get(key)


def _num(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def format_value(v: Any, fmt: str, tick: float = 1.0) -> str:
    """One cell: ``v`` shown as ``fmt`` (:class:`Column`); NaN or missing → ``–``."""
    x = _num(v)
    if math.isnan(x):
        return "–"
    if fmt == "money":
        return f"{x:,.2f}"
    if fmt == "ratio":
        return f"{x:,.1f}"
    if fmt == "int":
        return f"{x:,.0f}"
    if fmt == "pct":
        return f"{100 * x:.1f}"
    if fmt == "qty":
        return f"{x:,.4g}"
    if fmt == "ticks":
        return f"{x / tick:+.2f}" if tick > 0 else "–"
    raise ValueError(f"unknown format {fmt!r}")


def _market_heading(rows: list[dict[str, Any]]) -> str:
    r = rows[0]
    symbol = _field(r, "instrument", "symbol")
    tick = _field(r, "instrument", "tick_size")
    data = section(r.get("data"))
    kind = _field(r, "data", "kind") or data.get("kind", "")
    path = _field(r, "data", "path") or ""
    queue = _field(r, "queue", "model") or "auto"
    limit = _field(r, "risk", "max_position_qty")
    clock = _num(r.get("sharpe_clock_s"))
    parts = [f"{kind} `{Path(str(path)).name}`" if path else str(kind),
             f"tick {tick:g}" if isinstance(tick, (int, float)) else "",
             f"queue model {queue}",
             f"position limit {limit:g} units" if isinstance(limit, (int, float)) else "",
             f"Sharpe on a {clock:g} s clock" if not math.isnan(clock) else ""]
    return f"**{symbol}**: " + ", ".join(p for p in parts if p)


def _label(row: dict[str, Any]) -> str:
    """The row's policy name, with the case's experiment ``name`` when it is not the
    league's own (a variant such as ``risk_layer``: the policy with the engine's risk layer
    on)."""
    policy = str(_field(row, "policy", "name"))
    name = row.get("name")
    if isinstance(name, str) and name and name != "league":
        return f"{policy} + {name.replace('_', ' ')}"
    return policy


def league_table(df, columns: Sequence[Column] = COLUMNS) -> str:
    """The Markdown league table of a sweep table ``df`` (pandas, as from
    :func:`mmsim.results.load_sweep`): per market a heading line and a table, policies
    ranked by PnL (runs that are not ``ok`` last, with their status).

    Raises
    ------
    ValueError
        If ``df`` has no rows.
    """
    recs = df.to_dict("records")
    if not recs:
        raise ValueError("the sweep table has no rows")
    markets: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        markets.setdefault(str(_field(r, "instrument", "symbol")), []).append(r)
    order = [m for m in MARKET_ORDER if m in markets]
    order += sorted(m for m in markets if m not in MARKET_ORDER)
    out: list[str] = []
    header = "| policy | " + " | ".join(c.header for c in columns) + " |"
    rule = "|---|" + "|".join("---:" for _ in columns) + "|"
    for m in order:
        rows = markets[m]
        ok = [r for r in rows if r.get("status") == "ok"]
        bad = [r for r in rows if r.get("status") != "ok"]
        ok.sort(key=lambda r: -_num(r.get("pnl")) if not math.isnan(_num(r.get("pnl")))
                else math.inf)
        tick = _num(_field(rows[0], "instrument", "tick_size"))
        out += [_market_heading(rows), "", header, rule]
        for r in ok:
            cells = [format_value(r.get(c.key), c.fmt, tick) for c in columns]
            out.append(f"| {_label(r)} | " + " | ".join(cells) + " |")
        for r in bad:
            cells = [str(r.get("status"))] + ["–"] * (len(columns) - 1)
            out.append(f"| {_label(r)} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", nargs="?", default="runs/league", type=Path,
                    help="the sweep folder (default runs/league)")
    args = ap.parse_args(argv)
    from mmsim.results import load_sweep

    try:
        df = load_sweep(args.sweep)
    except FileNotFoundError as e:
        print(f"league_table: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(league_table(df))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
