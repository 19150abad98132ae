"""Charts and a self-contained HTML page for a run directory or a sweep folder.

``report_run(RUN_DIR)`` draws, as PNG files (matplotlib, Agg backend):

* ``equity_inventory.png`` — equity (quote currency) and position (instrument units) over time;
* ``fills.png`` — the mid path with our buy (▲) and sell (▼) fills at their prices;
* ``markout.png`` — the markout curve ``s·(mid_{t+h} − p)`` per horizon, all fills and maker
  fills (:func:`mmsim.metrics.markout_table`, MODELS.md §9);
* ``pnl_split.png`` — PnL = spread capture + inventory − fees (``metrics.json``);

and ``charts.html`` with the charts embedded as base64 data URIs and the metrics table (no
file it refers to: the page can be mailed on its own); ``report.html`` is the interactive
Plotly page of :func:`mmsim.report_html.run_page` (plotly.js embedded, no network needed).

A run of several instruments (MODELS.md §12) gets, instead of the first two charts, one
``equity_inventory_<i>_<name>.png`` and one ``fills_<i>_<name>.png`` per instrument (equity in
its own settlement currency), ``book.png`` (PnL of each instrument and of the book in the
quoted instrument's settlement currency, delta per instrument and net, and the basis in bps:
:func:`mmsim.metrics.book_equity`) and a per-instrument table; the markout curve and the PnL
split are those of the quoted instrument. A single-instrument report is as before.

``report_sweep(SWEEP_DIR, metric="pnl")`` draws ``heatmap_<metric>.png`` (the metric over two
swept parameters, averaged over the other axes; a line over one parameter if only one is
swept) and writes ``charts.html`` with it, the best runs by the metric and the failed runs;
``report.html`` is the interactive page of :func:`mmsim.report_html.sweep_page` (heatmap,
parallel coordinates over every swept parameter, the best runs).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPORT_DIR = "report"
#: the page of the PNG charts (no script), beside the interactive ``report.html``
STATIC_PAGE = "charts.html"
#: timestamps above this (ns) are read as wall-clock dates (after 1973), else as elapsed time
_DATE_NS = 10**17
_MAX_LINE_POINTS = 20_000
_MAX_FILL_POINTS = 20_000


def _plt():
    from mmsim._extras import require

    matplotlib = require("matplotlib", "report", "mmsim report")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return path


def _time_axis(ts: np.ndarray, t0: int) -> tuple[np.ndarray, str]:
    """Timestamps (int64 ns) as plottable x values and the axis label."""
    if t0 > _DATE_NS:
        return pd.to_datetime(ts, unit="ns").to_numpy(), "time (UTC)"
    return (ts - t0) / 1e9, "time since start (s)"


def _stride(n: int, cap: int) -> slice:
    return slice(None, None, max(1, -(-n // cap)))


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4e}"
        return f"{v:,.4f}"
    return html.escape(str(v))


# --------------------------------------------------------------------------------------------
# run charts
# --------------------------------------------------------------------------------------------


def money_unit(instrument: dict[str, Any] | None) -> str:
    """What a run's money is counted in: the quote currency, or coin for inverse contracts
    (MODELS.md §8)."""
    if (instrument or {}).get("contract") == "inverse":
        return "coin (inverse contract)"
    return "quote currency"


def plot_equity_inventory(equity: pd.DataFrame, path: Path,
                          unit: str = "quote currency") -> Path:
    """Equity (in ``unit``) and position over time (two panels, shared time axis) →
    ``path``."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    if len(equity):
        sl = _stride(len(equity), _MAX_LINE_POINTS)
        ts = equity["ts"].to_numpy()[sl]
        x, label = _time_axis(ts, int(ts[0]))
        a1.plot(x, equity["equity"].to_numpy()[sl], lw=1, color="tab:blue")
        a2.plot(x, equity["position"].to_numpy()[sl], lw=1, color="tab:orange",
                drawstyle="steps-post")
        a2.set_xlabel(label)
    a1.set_ylabel(f"equity ({unit})")
    a1.set_title("Equity (marked to mid)")
    a2.set_ylabel("position (units)")
    a2.set_title("Inventory")
    a2.axhline(0, color="grey", lw=0.5)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def plot_fills(equity: pd.DataFrame, fills: pd.DataFrame, path: Path) -> Path:
    """The mid path with buy (▲ green) and sell (▼ red) fills at their prices → ``path``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    t0 = None
    if len(equity):
        sl = _stride(len(equity), _MAX_LINE_POINTS)
        ts = equity["ts"].to_numpy()[sl]
        t0 = int(ts[0])
        x, label = _time_axis(ts, t0)
        ax.plot(x, equity["mid"].to_numpy()[sl], lw=0.8, color="grey", label="mid",
                drawstyle="steps-post")
        ax.set_xlabel(label)
    if len(fills):
        f = fills.iloc[_stride(len(fills), _MAX_FILL_POINTS)]
        ft = f["exch_ts"].to_numpy()
        t0 = int(ft[0]) if t0 is None else t0
        fx, label = _time_axis(ft, t0)
        side = f["side"].to_numpy()
        px = f["price"].to_numpy()
        for s, mk, col, name in ((1, "^", "tab:green", "buy"), (-1, "v", "tab:red", "sell")):
            m = side == s
            if m.any():
                ax.scatter(fx[m], px[m], marker=mk, s=22, color=col, label=f"{name} fills",
                           alpha=0.7, linewidths=0)
        ax.set_xlabel(label)
    else:
        ax.text(0.5, 0.5, "no fills", transform=ax.transAxes, ha="center")
    ax.set_ylabel("price")
    n = len(fills)
    ax.set_title(f"Fills on the mid path ({n:,} fills"
                 + (", subsampled)" if n > _MAX_FILL_POINTS else ")"))
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def plot_markout(fills: pd.DataFrame, equity: pd.DataFrame, horizons_s, path: Path) -> Path:
    """The markout curve (all fills and maker fills) over the horizons → ``path``."""
    from mmsim.metrics import horizon_label, markout_table

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    hs = list(horizons_s)
    xs = np.arange(len(hs))
    if len(fills):
        for maker_only, name, col, ls in ((False, "all fills", "tab:blue", "-"),
                                          (True, "maker fills", "tab:purple", "--")):
            t = markout_table(fills, equity, hs, maker_only=maker_only)
            ax.plot(xs, t["markout"].to_numpy(), marker="o", label=name, color=col, ls=ls)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no fills", transform=ax.transAxes, ha="center")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(xs, [horizon_label(h) for h in hs])
    ax.set_xlabel("horizon h")
    ax.set_ylabel("s·(mid_{t+h} − p)  (price units)")
    ax.set_title("Markout curve (quantity-weighted; > 0 = in our favour)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_pnl_split(metrics: dict[str, Any], path: Path, unit: str = "quote currency") -> Path:
    """Bars of spread capture, inventory, −fees and total PnL (in ``unit``) → ``path``."""
    plt = _plt()
    names = ["spread", "inventory", "−fees", "total PnL"]
    vals = [metrics.get("spread_pnl", math.nan), metrics.get("inventory_pnl", math.nan),
            -float(metrics.get("fees", math.nan)), metrics.get("pnl", math.nan)]
    vals = [float(v) if v is not None else math.nan for v in vals]
    fig, ax = plt.subplots(figsize=(7, 4))
    cols = ["tab:green" if v >= 0 else "tab:red" for v in vals[:3]] + ["tab:blue"]
    bars = ax.bar(names, [0.0 if math.isnan(v) else v for v in vals], color=cols)
    for b, v in zip(bars, vals, strict=True):
        ax.annotate(_fmt(v), (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom" if b.get_height() >= 0 else "top", fontsize=8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel(unit)
    ax.set_title("PnL split: spread + inventory − fees = PnL")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_book(book: pd.DataFrame, names: list[str], path: Path,
              unit: str = "quote currency") -> Path:
    """The book of a run of several instruments (three panels, shared time axis) → ``path``:
    PnL of each instrument and the total (``value_<name>`` and ``total`` of
    :func:`mmsim.metrics.book_equity` minus their first value, in ``unit``), delta per
    instrument and net (units of the underlying), and the basis ``basis_bps`` (bps of the
    quoted instrument's mid; absent with one instrument)."""
    plt = _plt()
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    if len(book):
        sl = _stride(len(book), _MAX_LINE_POINTS)
        ts = book.index.to_numpy()[sl]
        x, label = _time_axis(ts, int(ts[0]))
        def _from_start(v: np.ndarray) -> np.ndarray:
            ok = np.flatnonzero(np.isfinite(v))
            return v - v[ok[0]] if len(ok) else v

        for name in names:
            a1.plot(x, _from_start(book[f"value_{name}"].to_numpy()[sl]), lw=0.9, label=name)
            a2.plot(x, book[f"delta_{name}"].to_numpy()[sl], lw=0.9, label=name,
                    drawstyle="steps-post")
        a1.plot(x, _from_start(book["total"].to_numpy()[sl]), lw=1.4, color="black",
                label="book")
        a2.plot(x, book["delta"].to_numpy()[sl], lw=1.4, color="black", label="net",
                drawstyle="steps-post")
        if "basis_bps" in book.columns:
            a3.plot(x, book["basis_bps"].to_numpy()[sl], lw=0.8, color="tab:brown",
                    marker="." if len(x) <= 2_000 else None, ms=3)
        a3.set_xlabel(label)
        a1.legend(fontsize=8, loc="best")
        a2.legend(fontsize=8, loc="best")
    a1.set_ylabel(f"PnL ({unit})")
    a1.set_title("PnL per instrument and of the book (marked to mid)")
    a2.set_ylabel("delta (underlying units)")
    a2.set_title("Delta per instrument and net")
    a3.set_ylabel("basis (bps)")
    a3.set_title("Basis: (mid[1] − mid[0]) / mid[0]" if len(names) > 1 else "Basis (n/a)")
    for a in (a1, a2, a3):
        a.axhline(0, color="grey", lw=0.5)
        a.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


#: Per-instrument metrics shown in the instruments table of a multi-instrument report.
_INSTRUMENT_TABLE_KEYS = ("pnl", "fees", "spread_pnl", "inventory_pnl", "n_fills",
                          "n_hedge_fills", "traded_qty", "final_position", "max_abs_position",
                          "sharpe", "max_drawdown")
#: Book metrics of a multi-instrument report.
_BOOK_KEYS = ("book_pnl", "book_sharpe", "book_max_drawdown", "book_final_delta",
              "basis_mean_bps", "basis_last_bps")


def _instrument_frame(names: list[str], specs: list[dict[str, Any]],
                      metrics: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for i, (name, spec) in enumerate(zip(names, specs, strict=True)):
        row: dict[str, Any] = {"instrument": name, "index": str(i),
                               "contract": spec.get("contract", "linear"),
                               "money": money_unit(spec)}
        for k in _INSTRUMENT_TABLE_KEYS:
            row[k] = metrics.get(f"inst.{name}.{k}", math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1150px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
table{border-collapse:collapse;font-size:.85em}td,th{padding:2px 8px;border-bottom:1px solid #eee;
text-align:right}th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:.8em;font-size:.8em;overflow-x:auto}
.meta{color:#555;font-size:.9em}.grid{display:flex;flex-wrap:wrap;gap:1em}
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _kv_table(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>"
                   for k, v in d.items())
    return f"<table><tr><th>name</th><th>value</th></tr>{rows}</table>"


def _frame_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False, name=None)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, parts: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


# --------------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------------


def report_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """PNG charts, their page ``charts.html`` and the interactive ``report.html`` of one run
    directory.

    Parameters
    ----------
    run_dir : path
        A finished run (see :func:`mmsim.results.load`).
    out : path, optional
        Output folder (default ``<run_dir>/report``).

    Returns
    -------
    Path
        The interactive page ``<out>/report.html``.

    Raises
    ------
    FileNotFoundError, ValueError
        If ``run_dir`` is not a finished run.
    mmsim._extras.MissingExtraError
        If matplotlib or plotly is not installed (``pip install 'mmsim[report]'``).
    """
    from mmsim.metrics import DEFAULT_MARKOUT_HORIZONS_S
    from mmsim.results import load

    run = load(run_dir)
    od = Path(out) if out else Path(run_dir) / REPORT_DIR
    od.mkdir(parents=True, exist_ok=True)
    horizons = (run.config.get("metrics") or {}).get("markout_horizons_s") \
        or DEFAULT_MARKOUT_HORIZONS_S
    unit = money_unit(run.manifest.get("instrument"))
    names = list(run.instruments)
    extra: list[str] = []
    if len(names) <= 1:
        charts = [
            (plot_equity_inventory(run.equity, od / "equity_inventory.png", unit),
             "Equity and inventory"),
            (plot_fills(run.equity, run.fills, od / "fills.png"), "Fills on the price path"),
            (plot_markout(run.fills, run.equity, horizons, od / "markout.png"),
             "Markout curve"),
            (plot_pnl_split(run.metrics, od / "pnl_split.png", unit), "PnL split"),
        ]
    else:
        charts, extra = _multi_charts(run, names, horizons, od)
    man = run.manifest
    meta = man.get("data_meta", {}) or {}
    name = run.config.get("name", Path(run_dir).name)
    timing_p = Path(run_dir) / "timing.json"
    timing = json.loads(timing_p.read_text()) if timing_p.is_file() else {}
    import yaml

    parts = [
        f"<h1>mmsim run: {html.escape(str(name))}</h1>",
        f"<p class=\"meta\">{html.escape(str(run.config.get('description', '')))}<br>"
        f"data: {html.escape(str(man.get('data_kind')))} "
        f"{html.escape(str(meta.get('symbol', '')))}, {man.get('data_events', 0):,} events; "
        f"config sha256 {html.escape(str(man.get('config_sha256', ''))[:16])}; "
        f"mmsim {html.escape(str(man.get('mmsim_version', '')))}; "
        f"replay {timing.get('replay_s', 'n/a')} s<br>"
        f"run directory: {html.escape(str(Path(run_dir).resolve()))}</p>",
    ]
    parts += extra
    for p, title in charts:
        parts += [f"<h2>{html.escape(title)}</h2>", _img(p, title)]
    parts += ["<h2>Metrics</h2>", _kv_table(run.metrics),
              "<h2>Config</h2>",
              f"<pre>{html.escape(yaml.safe_dump(run.config, sort_keys=False))}</pre>"]
    (od / STATIC_PAGE).write_text(_page(f"mmsim run {name}", parts))
    from mmsim.report_html import run_page

    return run_page(run_dir, od / "report.html")


def _multi_charts(run, names: list[str], horizons, od: Path
                  ) -> tuple[list[tuple[Path, str]], list[str]]:
    """Charts and HTML tables of a run of several instruments."""
    specs = [s.model_dump() for s in run.instrument_specs]
    q = names[0]
    unit0 = money_unit(specs[0])
    charts: list[tuple[Path, str]] = []
    book = run.book_equity()
    charts.append((plot_book(book, names, od / "book.png", unit0),
                   f"Book: PnL, delta and basis (in {unit0} of {q})"))
    for i, (name, spec) in enumerate(zip(names, specs, strict=True)):
        tag = f"{i}_{_safe(name)}"
        eq, fills = run.equity_of(name), run.fills_of(name)
        role = "quoted" if i == 0 else f"instrument {i}"
        charts.append((plot_equity_inventory(eq, od / f"equity_inventory_{tag}.png",
                                             money_unit(spec)),
                       f"{name} ({role}): equity and inventory"))
        charts.append((plot_fills(eq, fills, od / f"fills_{tag}.png"),
                       f"{name} ({role}): fills on the price path"))
    charts.append((plot_markout(run.fills_of(q), run.equity_of(q), horizons,
                                od / "markout.png"), f"{q} (quoted): markout curve"))
    charts.append((plot_pnl_split(run.metrics, od / "pnl_split.png", unit0),
                   f"{q} (quoted): PnL split"))
    tables = [
        "<h2>Instruments</h2>", _frame_table(_instrument_frame(names, specs, run.metrics)),
        "<h2>Book</h2>",
        _kv_table({k: run.metrics.get(k, math.nan) for k in _BOOK_KEYS}),
    ]
    return charts, tables


def _ordered_unique(s: pd.Series) -> list[Any]:
    vals = list(dict.fromkeys(s.tolist()))
    try:
        return sorted(vals)
    except TypeError:
        return vals


def plot_sweep_metric(df: pd.DataFrame, metric: str, x: str, y: str | None,
                      path: Path) -> Path:
    """Heatmap of ``metric`` over ``x`` × ``y`` (mean over the other axes), or a line over
    ``x`` if ``y`` is None → ``path``. Only ``ok`` rows count; empty cells are grey."""
    plt = _plt()
    ok = df[df["status"] == "ok"]
    if y is None:
        fig, ax = plt.subplots(figsize=(7, 4))
        xv = _ordered_unique(ok[x]) if len(ok) else []
        g = ok.groupby(x, sort=False)[metric].mean() if len(ok) else pd.Series(dtype=float)
        ax.plot(range(len(xv)), [g.get(v, math.nan) for v in xv], marker="o")
        ax.set_xticks(range(len(xv)), [_label(v) for v in xv], rotation=30, ha="right")
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} over {x}")
        ax.grid(alpha=0.3)
        return _save(fig, path)
    xv = _ordered_unique(df[x])
    yv = _ordered_unique(df[y])
    grid = np.full((len(yv), len(xv)), np.nan)
    count = np.zeros((len(yv), len(xv)), dtype=int)
    xi = {v: i for i, v in enumerate(xv)}
    yi = {v: i for i, v in enumerate(yv)}
    for (a, b), grp in ok.groupby([x, y], sort=False):
        vals = pd.to_numeric(grp[metric], errors="coerce")
        grid[yi[b], xi[a]] = float(vals.mean())
        count[yi[b], xi[a]] = len(grp)
    fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(xv) + 2.5), max(4, 0.5 * len(yv) + 2)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", origin="lower")
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_xticks(range(len(xv)), [_label(v) for v in xv], rotation=30, ha="right")
    ax.set_yticks(range(len(yv)), [_label(v) for v in yv])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if grid.size <= 400:
        finite = grid[np.isfinite(grid)]
        mid = float(np.nanmean(finite)) if finite.size else 0.0
        for (r, c), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if v < mid else "black")
    n_per = int(count.max()) if count.size else 0
    agg = f" (mean of {n_per} runs per cell over the other axes)" if n_per > 1 else ""
    ax.set_title(f"{metric} over {x} × {y}{agg}")
    return _save(fig, path)


def _label(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    s = str(v)
    return s if len(s) <= 28 else "…" + s[-27:]


def report_sweep(
    sweep_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    metric: str = "pnl",
    x: str | None = None,
    y: str | None = None,
    top: int = 10,
    minimize: bool = False,
) -> Path:
    """PNG heatmap, its page ``charts.html`` and the interactive ``report.html`` of a sweep
    folder.

    Parameters
    ----------
    sweep_dir : path
        A folder written by :func:`mmsim.sweep.run_sweep`.
    out : path, optional
        Output folder (default ``<sweep_dir>/report``).
    metric : str
        A metric column of the table (``pnl``, ``sharpe``, ``fill_rate_qty``, ...).
    x, y : str, optional
        Swept parameters of the heatmap (default: the first key of the first two axes).
    top : int
        Number of best runs listed.
    minimize : bool
        Lower is better (``max_drawdown``, ...).

    Returns
    -------
    Path
        The interactive page ``<out>/report.html``.

    Raises
    ------
    FileNotFoundError
        If the folder has no sweep table.
    KeyError
        If ``metric``, ``x`` or ``y`` is not a column of the table.
    """
    from mmsim.results import load_sweep
    from mmsim.sweep import load_meta

    sd = Path(sweep_dir)
    df = load_sweep(sd)
    meta = load_meta(sd)
    od = Path(out) if out else sd / REPORT_DIR
    od.mkdir(parents=True, exist_ok=True)
    params = list(meta.get("params", []))
    if metric not in df.columns or metric in params:
        metric_cols = [c for c in df.columns if c not in params and c not in
                       ("run_key", "status", "error", "run_dir", "cached")]
        raise KeyError(f"metric '{metric}' is not in the sweep table; "
                       f"metrics: {', '.join(metric_cols)}")
    axis_keys = [a["keys"][0] for a in meta.get("axes", [])]
    for name, v in (("--x", x), ("--y", y)):
        if v is not None and v not in params:
            raise KeyError(f"{name} '{v}' is not a swept parameter; swept: {params}")
    if x is None:
        x = next((k for k in axis_keys if k != y), None)
    if y is None:
        y = next((k for k in axis_keys if k != x), None)
    parts = [
        f"<h1>mmsim sweep: {html.escape(str(meta.get('name')))}</h1>",
        f"<p class=\"meta\">{meta.get('n_points')} points, "
        + ", ".join(f"{k}: {v}" for k, v in (meta.get("counts") or {}).items())
        + f"; executor {html.escape(json.dumps(meta.get('executor', {})))}; "
        f"wall {(meta.get('timing') or {}).get('total_s', 'n/a')} s<br>"
        f"sweep folder: {html.escape(str(sd.resolve()))}</p>",
        "<h2>Axes</h2>",
        _frame_table(pd.DataFrame(
            [{"axis": a["name"], "keys": ", ".join(a["keys"]), "n": len(a["values"]),
              "values": "; ".join(", ".join(_label(x_) for x_ in v) for v in a["values"])}
             for a in meta.get("axes", [])],
            columns=["axis", "keys", "n", "values"])),
    ]
    if x is not None:
        png = plot_sweep_metric(df, metric, x, y, od / f"heatmap_{_safe(metric)}.png")
        parts += [f"<h2>{html.escape(metric)} over the grid</h2>", _img(png, metric)]
    ok = df[df["status"] == "ok"].copy()
    ok[metric] = pd.to_numeric(ok[metric], errors="coerce")
    best = ok.sort_values(metric, ascending=minimize, na_position="last").head(top)
    cols = ["run_key", *params, metric]
    cols += [c for c in ("pnl", "sharpe", "max_drawdown", "n_fills", "fill_rate_qty")
             if c in df.columns and c not in cols]
    parts += [f"<h2>Best {len(best)} runs by {html.escape(metric)} "
              f"({'lowest' if minimize else 'highest'} first)</h2>", _frame_table(best[cols])]
    failed = df[df["status"] == "failed"]
    if len(failed):
        parts += [f"<h2>Failed runs ({len(failed)})</h2>",
                  _frame_table(failed[["run_key", *params, "error"]])]
    parts += ["<h2>Base config</h2>",
              f"<pre>{html.escape(json.dumps(meta.get('base_config', {}), indent=1))}</pre>"]
    (od / STATIC_PAGE).write_text(_page(f"mmsim sweep {meta.get('name')}", parts))
    from mmsim.report_html import sweep_page

    return sweep_page(df, params, metric, x, y, best[cols], f"mmsim sweep {meta.get('name')}",
                      od / "report.html", minimize=minimize)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def report(path: str | os.PathLike, out: str | os.PathLike | None = None, **kwargs) -> Path:
    """:func:`report_sweep` for a sweep folder, :func:`report_run` for a run directory.

    Raises
    ------
    FileNotFoundError
        If ``path`` is neither.
    """
    p = Path(path)
    if (p / "sweep.parquet").is_file():
        return report_sweep(p, out, **kwargs)
    if (p / "manifest.json").is_file():
        return report_run(p, out)
    raise FileNotFoundError(f"{p}: neither a run directory (manifest.json) "
                            "nor a sweep folder (sweep.parquet)")
