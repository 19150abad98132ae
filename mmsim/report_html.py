"""Interactive, self-contained HTML reports (Plotly) of a run directory and of a sweep folder.

:func:`run_page` writes the run page (``report.html`` of ``mmsim report RUN_DIR``):

* the key figures (PnL and its split, Sharpe, max drawdown, fills, fill rate, mean |q|,
  markouts) at the top;
* per instrument: equity, drawdown and inventory on one zoomable time axis; our quotes (the
  best live price of our resting orders on each side, rebuilt from the order log) against the
  mid of the equity clock, with our fills marked by side (hover: price, qty, liquidity,
  queue ahead); the markout curve with ±2 standard-error bands; the inventory histogram; the
  PnL split;
* a book panel (PnL of each instrument and of the book, net delta) for several instruments.

Times are the exchange's local time (:func:`mmsim.results.load` with ``datetimes=True``),
shown as wall-clock time of that zone. plotly.js is embedded once in the page
(``include_plotlyjs=True`` on the first figure): the page needs no network and no other file.

Long series are thinned for the page by :func:`minmax_indices`: at most :data:`MAX_POINTS`
points per trace, the series cut into equal runs of samples and each run represented by its
first sample and the samples holding its minimum and maximum, so spikes survive the
thinning. The page states the rule and which traces it thinned.

The time panels of the page (each instrument's timeline and quotes figures, and the book
panel) share one time axis: a small inline script (:data:`_VIEW_JS`) listens to
``plotly_relayout`` and moves the other figures to the same x range (autorange on reset).
Zoomed in, it redraws each thinned trace from its full series, embedded in the page: every
sample of the visible range (and the sample just outside it on either side, so lines reach
the edges) when they are at most :data:`MAX_POINTS`, else the same min/max thinning of the
visible range only (fills: every k-th); reset restores the overview. The full series are
embedded in a ``<script type="application/json" id="mmsim-series">`` as little-endian base64
typed arrays, ``{"dtype": "i8"|"f8"|"u1", "bdata": ...}`` (Plotly's own encoding): times as
int64 ns of the exchange's wall clock (the naive local time Plotly draws), values as float64,
so they decode to exactly the run's data; series shared by traces are stored once. A series
longer than :data:`MAX_EMBED` samples is embedded thinned to at most :data:`MAX_EMBED` points
(the lines of one clock keep the same samples, :func:`_minmax_union`; fills: every k-th), and
the page says which. The script draws times as the ISO strings plotly.py writes (nanoseconds,
no zone): Plotly reads numbers on a date axis as epoch milliseconds in the browser's zone,
strings as wall clock. It decodes a series on the first zoom only, and runs its Plotly calls
in one queue; ``window.mmsimView.idle()`` resolves when that queue is empty (for tests).

:func:`sweep_page` writes the sweep page: a heatmap of a metric over two swept parameters
(mean over the other axes), parallel coordinates over every swept parameter and the metric,
and the best runs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: at most this many points per trace of the page (see :func:`minmax_indices`)
MAX_POINTS = 20_000
#: at most this many samples of a thinned trace embedded for the zoomed-in view (see the
#: module docstring): a US session on a 100 ms equity clock (234,000 samples) fits; about
#: 11 bytes of page per sample and series
MAX_EMBED = 250_000
#: width (px) of the three small panels side by side
_SMALL_WIDTH = 400

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;
color:#222;max-width:1250px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.4em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:1em 0 .2em}
.kpis{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0}
.kpi{border:1px solid #e3e3e3;border-radius:6px;padding:.4em .8em;min-width:8.5em;
background:#fafafa}.kpi .v{font-size:1.15em;font-weight:600}.kpi .n{font-size:.78em;color:#666}
.neg{color:#b22}.pos{color:#171}.meta,.note{color:#555;font-size:.88em}
table{border-collapse:collapse;font-size:.82em}td,th{padding:2px 8px;
border-bottom:1px solid #eee;text-align:right}th{background:#f5f5f5}
td:first-child,th:first-child{text-align:left}
.row{display:flex;flex-wrap:wrap;gap:.8em}
pre{background:#f7f7f7;padding:.8em;font-size:.8em;overflow-x:auto}
"""

#: the run page's view script: one time axis for the linked figures, and each thinned trace
#: redrawn from its embedded full series when zoomed in (see the module docstring)
_VIEW_JS = r"""
(function () {
  "use strict";
  var cfgEl = document.getElementById("mmsim-view");
  if (!cfgEl || !window.Plotly) return;
  var cfg = JSON.parse(cfgEl.textContent);
  var MS = BigInt(1000000), ZERO = BigInt(0);
  var raw = null, cache = {}, chain = Promise.resolve();

  // every Plotly call of this script runs in turn, in one queue
  function later(fn) {
    chain = chain.then(fn).catch(function (e) { console.error("mmsim view: " + e); });
    return chain;
  }
  function idle() {  // resolves once the queue is empty and stays so
    return new Promise(function (resolve) {
      (function wait() {
        var c = chain;
        c.then(function () {
          setTimeout(function () { if (c === chain) resolve(); else wait(); }, 0);
        });
      })();
    });
  }
  // one embedded series, decoded on first use: {dtype: i8|f8|u1, bdata: base64 little-endian}
  function series(key) {
    if (!(key in cache)) {
      if (raw === null) raw = JSON.parse(document.getElementById("mmsim-series").textContent);
      var s = raw[key], bin = atob(s.bdata), n = bin.length, buf = new Uint8Array(n);
      for (var i = 0; i < n; i++) buf[i] = bin.charCodeAt(i);
      var T = s.dtype === "i8" ? BigInt64Array : s.dtype === "u1" ? Uint8Array : Float64Array;
      cache[key] = new T(buf.buffer);
    }
    return cache[key];
  }
  // int64 ns of the wall clock -> ms, as Plotly's date axes hold them (wall clock read as UTC)
  function millis(key) {
    var k = key + "/ms";
    if (!(k in cache)) {
      var ns = series(key), n = ns.length, out = new Float64Array(n);
      if (n) {
        var r = ns[0] % MS;
        if (r < ZERO) r += MS;
        var b = ns[0] - r, bms = Number(b / MS);
        for (var i = 0; i < n; i++) out[i] = bms + Number(ns[i] - b) / 1e6;
      }
      cache[k] = out;
    }
    return cache[k];
  }
  // ns -> the string plotly.py writes ("2024-01-02T09:30:00.123456789", wall clock, no zone);
  // Plotly reads numbers on a date axis as epoch ms in the browser's zone, strings as written
  function iso(v) {
    var r = v % MS;
    if (r < ZERO) r += MS;
    return new Date(Number((v - r) / MS)).toISOString().slice(0, 23)
      + String(Number(r) + 1000000).slice(1);
  }
  function num(v) {  // as plotly.py writes a float (NaN and infinities: null)
    return v > -Infinity && v < Infinity ? v : null;
  }
  function lower(a, v) {  // first i with a[i] >= v
    var lo = 0, hi = a.length;
    while (lo < hi) { var m = (lo + hi) >> 1; if (a[m] < v) lo = m + 1; else hi = m; }
    return lo;
  }
  function upper(a, v) {  // first i with a[i] > v
    var lo = 0, hi = a.length;
    while (lo < hi) { var m = (lo + hi) >> 1; if (a[m] <= v) lo = m + 1; else hi = m; }
    return lo;
  }
  // minmax_indices of report_html.py on y[i0:i1]: cap/3 runs, each its first sample, its min
  // and its max (first of each, non-finite values ignored), and the last sample
  function minmax(y, i0, i1, cap) {
    var n = i1 - i0, nb = Math.floor(cap / 3), out = [];
    for (var j = 0; j < nb; j++) {
      var s = i0 + Math.floor(j * n / nb), e = i0 + Math.floor((j + 1) * n / nb);
      if (e <= s) continue;
      var lo = -1, hi = -1, vlo = Infinity, vhi = -Infinity;
      for (var i = s; i < e; i++) {
        var v = y[i];
        if (!(v > -Infinity && v < Infinity)) continue;
        if (v < vlo) { vlo = v; lo = i; }
        if (v > vhi) { vhi = v; hi = i; }
      }
      out.push(s);
      if (lo >= 0) out.push(Math.min(lo, hi), Math.max(lo, hi));
    }
    out.push(i1 - 1);
    var res = [];
    for (var k = 0; k < out.length; k++) {
      if (!res.length || out[k] > res[res.length - 1]) res.push(out[k]);
    }
    return res;
  }
  // the samples of trace t drawn for the x range [a, b] (ms)
  function view(t, a, b) {
    var ms = millis(t.x), n = ms.length, i0 = lower(ms, a), i1 = upper(ms, b);
    if (t.line) { if (i0 > 0) i0--; if (i1 < n) i1++; }
    var m = Math.max(i1 - i0, 0), cap = cfg.maxPoints, idx = [], i;
    if (m <= cap) for (i = i0; i < i1; i++) idx.push(i);
    else if (t.line) idx = minmax(series(t.y), i0, i1, cap);
    else for (i = i0; i < i1; i += Math.ceil(m / cap)) idx.push(i);
    var ns = series(t.x), y = series(t.y), xs = new Array(idx.length);
    var ys = new Float64Array(idx.length);
    for (i = 0; i < idx.length; i++) { xs[i] = iso(ns[idx[i]]); ys[i] = y[idx[i]]; }
    var cd = null;
    if (t.custom) {
      var cols = t.custom.map(function (c) { return {v: series(c.s), labels: c.labels}; });
      cd = idx.map(function (j) {
        return cols.map(function (c) { return c.labels ? c.labels[c.v[j]] : num(c.v[j]); });
      });
    }
    return {x: xs, y: ys, customdata: cd};
  }
  function xaxes(gd) {
    return Object.keys(gd._fullLayout).filter(function (k) { return /^xaxis\d*$/.test(k); });
  }
  function xstate(gd, name) {
    var ax = gd._fullLayout && gd._fullLayout[name || "xaxis"];
    if (!ax) return null;
    if (ax.autorange) return {auto: true};
    var a = ax.r2l(ax.range[0]), b = ax.r2l(ax.range[1]);
    return {auto: false, range: ax.range.slice(), lin: [Math.min(a, b), Math.max(a, b)]};
  }
  function same(p, q) {
    return p && q && (p.auto ? q.auto : !q.auto && p.lin[0] === q.lin[0] && p.lin[1] === q.lin[1]);
  }
  // the relayout that puts every x axis of gd (matched subplots too) in state st, null if
  // they all are (in the layout too: Plotly.relayout of one of matched axes leaves the
  // others' autorange in the layout, and the next redraw would apply it)
  function align(gd, st) {
    var upd = {}, any = false;
    xaxes(gd).forEach(function (a) {
      var auto = (gd.layout[a] || {}).autorange !== false;
      if (same(xstate(gd, a), st) && auto === st.auto) return;
      any = true;
      if (st.auto) upd[a + ".autorange"] = true; else upd[a + ".range"] = st.range.slice();
    });
    return any ? upd : null;
  }
  function move(g, upd) {
    g.syncing = true;
    return Plotly.relayout(g.gd, upd).then(
      function () { g.syncing = false; }, function (e) { g.syncing = false; throw e; });
  }
  // one restyle per figure: the overview (autorange) or the samples of the visible range
  function redraw(f, st) {
    if (!f.traces.length) return;
    later(function () {
      var upd = {x: [], y: [], customdata: []}, which = [];
      f.traces.forEach(function (t) {
        var v = st.auto ? t.overview : view(t, st.lin[0], st.lin[1]);
        upd.x.push(v.x); upd.y.push(v.y); upd.customdata.push(v.customdata);
        which.push(t.trace);
      });
      return Plotly.restyle(f.gd, upd, which);
    });
  }
  var figs = {}, linked = [];
  function fig(id) {
    if (!(id in figs)) {
      var gd = document.getElementById(id);
      figs[id] = gd && gd.on && gd.data ? {gd: gd, traces: [], last: {auto: true}} : null;
    }
    return figs[id];
  }
  cfg.traces.forEach(function (t) {
    var f = fig(t.div), d = f && f.gd.data[t.trace];
    if (!d) return;
    t.overview = {x: d.x, y: d.y, customdata: t.custom ? d.customdata : null};
    f.traces.push(t);
  });
  cfg.linked.forEach(function (id) { if (fig(id)) linked.push(figs[id]); });
  Object.keys(figs).forEach(function (id) {
    var f = figs[id];
    if (!f) return;
    f.gd.on("plotly_relayout", function (ev) {
      var hit = Object.keys(ev || {}).map(function (k) {
        return /^(xaxis\d*)\.(range|autorange)/.exec(k);
      }).filter(Boolean)[0];
      if (!hit) return;
      var st = xstate(f.gd, hit[1]);
      if (!st) return;
      if (!f.syncing) {  // the axes matched to the one moved follow it (a script may set one)
        later(function () { var upd = align(f.gd, st); return upd && move(f, upd); });
      }
      if (!same(f.last, st)) { f.last = st; redraw(f, st); }
      if (f.syncing || linked.indexOf(f) < 0) return;  // moved by another figure: stop here
      linked.forEach(function (g) {
        if (g !== f) later(function () { var upd = align(g.gd, st); return upd && move(g, upd); });
      });
    });
  });
  window.mmsimView = {idle: idle};
})();
"""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _go():
    from mmsim._extras import require

    require("plotly", "report", "mmsim report (the HTML page)")
    import plotly.graph_objects as go

    return go


def minmax_indices(y: np.ndarray, cap: int = MAX_POINTS) -> np.ndarray:
    """Indices of the samples of ``y`` kept for drawing, at most about ``cap`` of them.

    Parameters
    ----------
    y : numpy.ndarray
        The series (float; NaN allowed), in time order.
    cap : int
        Point budget (≥ 6).

    Returns
    -------
    numpy.ndarray
        Increasing int64 indices. All of ``0..n-1`` when ``n ≤ cap``; otherwise ``y`` is cut
        into ``cap // 3`` runs of (nearly) equal length and each run keeps its first sample
        and the samples of its minimum and maximum (NaN ignored; an all-NaN run keeps its
        first sample only, so gaps stay gaps), plus the last sample of the series.

    Raises
    ------
    ValueError
        If ``cap < 6``.
    """
    if cap < 6:
        raise ValueError(f"cap must be at least 6, got {cap}")
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    n_buckets = cap // 3
    edges = np.linspace(0, n, n_buckets + 1).astype(np.int64)
    starts = edges[:-1]
    # per-bucket argmin/argmax, NaN-safe, vectorised with reduceat
    lo = np.where(np.isnan(y), np.inf, y)
    hi = np.where(np.isnan(y), -np.inf, y)
    bmin = np.minimum.reduceat(lo, starts)
    bmax = np.maximum.reduceat(hi, starts)
    bucket = np.repeat(np.arange(n_buckets), np.diff(edges))
    is_min = (lo == bmin[bucket]) & np.isfinite(lo)
    is_max = (hi == bmax[bucket]) & np.isfinite(hi)
    # first index of the min and of the max in each bucket
    idx = np.arange(n)
    first_min = np.full(n_buckets, -1, np.int64)
    first_max = np.full(n_buckets, -1, np.int64)
    rm = idx[is_min][::-1]
    first_min[bucket[rm]] = rm  # reversed assignment: the earliest wins
    rx = idx[is_max][::-1]
    first_max[bucket[rx]] = rx
    keep = np.concatenate([starts, first_min[first_min >= 0], first_max[first_max >= 0],
                           [n - 1]])
    return np.unique(keep)


def _minmax_union(ys: list[np.ndarray], budget: int) -> np.ndarray:
    """Samples kept of series drawn on one clock: the union of :func:`minmax_indices` of each
    at one common cap, ``budget`` if that union holds at most ``budget`` samples, else the
    largest cap found (bisection) whose union does."""
    m = len(ys)

    def union(cap: int) -> np.ndarray:
        return np.unique(np.concatenate([minmax_indices(y, cap) for y in ys]))

    best = union(budget)
    if best.shape[0] <= budget:
        return best
    lo, hi = max(6, (budget - m) // m), budget  # at lo each keeps at most lo + 1: it fits
    best = union(lo)
    for _ in range(6):
        cap = (lo + hi) // 2
        if cap <= lo or best.shape[0] >= 0.95 * budget:
            break
        cand = union(cap)
        if cand.shape[0] > budget:
            hi = cap
        else:
            lo, best = cap, cand
    return best


def _wall(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Tz-aware timestamps as naive wall-clock datetime64 of their own zone (what Plotly
    draws), or int64 ns as seconds when they are not datetimes."""
    if isinstance(ts, pd.Series):
        if isinstance(ts.dtype, pd.DatetimeTZDtype):
            return ts.dt.tz_localize(None).to_numpy()
        return ts.to_numpy()
    if getattr(ts, "tz", None) is not None:
        return ts.tz_localize(None).to_numpy()
    return np.asarray(ts)


def _ns(ts: pd.Series) -> np.ndarray:
    """int64 UNIX ns of a timestamp column (tz-aware datetimes or already int64)."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC").astype("int64").to_numpy(np.int64)
    return ts.to_numpy(np.int64)


def _sign(side: pd.Series) -> np.ndarray:
    if isinstance(side.dtype, pd.CategoricalDtype) or side.dtype == object:
        return np.where(side.astype(str).to_numpy() == "buy", 1.0, -1.0)
    return np.sign(side.to_numpy(float))


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return html.escape(v)
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    if math.isnan(f):
        return "nan"
    if f != 0 and (abs(f) >= 1e7 or abs(f) < 1e-3):
        return f"{f:.3e}"
    return f"{f:,.{digits}f}"


def _pct(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return "nan" if math.isnan(f) else f"{100 * f:.2f} %"


def _wall_ns(x: np.ndarray) -> np.ndarray | None:
    """int64 ns of naive wall-clock datetime64 (what :func:`_wall` gives), None otherwise."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.datetime64):
        return None
    return x.astype("datetime64[ns]").view(np.int64)


class _Page:
    """Collects figures (the first one carries plotly.js), the thinning notes and the full
    series of the thinned traces (see the module docstring)."""

    def __init__(self) -> None:
        self.n_figures = 0
        self.thinned: list[str] = []
        self.coarse: list[str] = []  # embedded thinned, above MAX_EMBED
        self.series: dict[str, dict[str, str]] = {}
        self._keys: dict[bytes, str] = {}
        self.traces: list[dict[str, Any]] = []
        self.linked: list[str] = []  # divs with one shared time axis
        self._pending: list[dict[str, Any]] = []

    def fig(self, fig, div_id: str, height: int, width: int | None = None,
            margin: dict | None = None) -> str:
        fig.update_layout(height=height, width=width, autosize=width is None,
                          margin=margin or dict(l=60, r=20, t=50, b=40),
                          title_font_size=14, title_x=0.01, title_y=0.98,
                          template="plotly_white", hovermode="closest")
        out = fig.to_html(full_html=False, include_plotlyjs=self.n_figures == 0,
                          div_id=div_id, config={"displaylogo": False, "responsive": True})
        self.n_figures += 1
        return out

    def keep(self, y: np.ndarray, what: str, x: np.ndarray | None = None,
             div: str | None = None, trace: int | None = None) -> np.ndarray:
        """Indices of ``y`` drawn in the overview; a thinned series with its ``x`` (wall-clock
        datetimes), figure ``div`` and trace number ``trace`` is embedded in full."""
        y = np.asarray(y, dtype=float)
        idx = minmax_indices(y, MAX_POINTS)
        if idx.shape[0] < y.shape[0]:
            self.thinned.append(f"{what}: {idx.shape[0]:,} of {y.shape[0]:,}")
            if x is not None and div is not None and trace is not None:
                self._embed(div, trace, what, x, y, line=True)
        return idx

    def embed_markers(self, div: str, trace: int, what: str, x: np.ndarray, y: np.ndarray,
                      custom: list[np.ndarray]) -> None:
        """Embed a marker trace (thinned by keeping every k-th point) in full, with the
        columns of its ``customdata`` (float, or str stored as codes and labels)."""
        self._embed(div, trace, what, x, np.asarray(y, dtype=float), line=False, custom=custom)

    def _embed(self, div: str, trace: int, what: str, x: np.ndarray, y: np.ndarray, *,
               line: bool, custom: list[np.ndarray] | None = None) -> None:
        ns = _wall_ns(x)
        if ns is None or ns.shape[0] != y.shape[0]:
            return
        custom = [np.asarray(c) for c in custom or []]
        if ns.shape[0] > 1 and bool(np.any(np.diff(ns) < 0)):
            if line:  # a line out of time order: the overview only
                return
            order = np.argsort(ns, kind="stable")
            ns, y, custom = ns[order], y[order], [c[order] for c in custom]
        self._pending.append({"div": div, "trace": int(trace), "what": what, "line": line,
                              "ns": ns, "y": y, "custom": custom})

    def _finish(self) -> None:
        """Embed the pending traces. Above :data:`MAX_EMBED` samples, the lines drawn on one
        clock keep the same samples (:func:`_minmax_union`), so their times are stored once;
        a marker trace keeps every k-th point."""
        groups: dict[Any, list[dict[str, Any]]] = {}
        for p in self._pending:
            key = (hashlib.blake2b(p["ns"].tobytes(), digest_size=16).digest() if p["line"]
                   else id(p))
            groups.setdefault(key, []).append(p)
        for group in groups.values():
            n = group[0]["ns"].shape[0]
            sel: np.ndarray | None = None
            if n > MAX_EMBED:
                if group[0]["line"]:
                    sel = _minmax_union([p["y"] for p in group], MAX_EMBED)
                    note = f"{sel.shape[0]:,} of {n:,}"
                else:
                    k = -(-n // MAX_EMBED)
                    sel = np.arange(0, n, k)
                    note = f"every {k}th of {n:,}"
                self.coarse += [f"{p['what']}: {note}" for p in group]
            for p in group:
                ns, y, custom = p["ns"], p["y"], p["custom"]
                if sel is not None:
                    ns, y, custom = ns[sel], y[sel], [c[sel] for c in custom]
                spec: dict[str, Any] = {"div": p["div"], "trace": p["trace"],
                                        "line": p["line"], "x": self._series(ns),
                                        "y": self._series(y)}
                if custom:
                    cols: list[dict[str, Any]] = []
                    for c in custom:
                        if c.dtype.kind in "fiub":
                            cols.append({"s": self._series(c.astype(float))})
                        else:
                            codes, labels = pd.factorize(pd.Series(c.astype(str)), sort=True)
                            cols.append({"s": self._series(codes.astype(np.uint8)),
                                         "labels": [str(v) for v in labels]})
                    spec["custom"] = cols
                self.traces.append(spec)
        self._pending = []

    def _series(self, a: np.ndarray) -> str:
        """Key of ``a`` (int64, float64 or uint8) in :attr:`series`, stored once."""
        code = {"i": "i8", "f": "f8", "u": "u1"}[a.dtype.kind]
        raw = np.ascontiguousarray(a, dtype=np.dtype(code).newbyteorder("<")).tobytes()
        h = hashlib.blake2b(code.encode() + raw, digest_size=16).digest()
        if h not in self._keys:
            key = f"s{len(self._keys)}"
            self._keys[h] = key
            self.series[key] = {"dtype": code, "bdata": base64.b64encode(raw).decode("ascii")}
        return self._keys[h]

    def script(self) -> str:
        """The page's view script: the shared time axis and the exact zoomed-in traces (call it
        before reading :attr:`coarse`)."""
        self._finish()
        view = {"maxPoints": MAX_POINTS, "linked": self.linked, "traces": self.traces}

        def tag(tid: str, obj: Any) -> str:
            text = json.dumps(obj, separators=(",", ":")).replace("</", "<\\/")
            return f'<script type="application/json" id="{tid}">{text}</script>'

        return "\n".join([tag("mmsim-view", view), tag("mmsim-series", self.series),
                          f"<script>{_VIEW_JS}</script>"])


# --------------------------------------------------------------------------------------------
# data of the panels
# --------------------------------------------------------------------------------------------


def best_quotes(orders: pd.DataFrame) -> pd.DataFrame:
    """Our best live quote on each side over time, rebuilt from an order log.

    Parameters
    ----------
    orders : pandas.DataFrame
        The order log of one instrument (:data:`mmsim.results.ORDERS_SCHEMA`, as
        :func:`mmsim.results.load` gives it, with either timestamp form), in log order.

    Returns
    -------
    pandas.DataFrame
        One row per order-log event that changes the book of our live limit orders (hedge
        orders and market orders left out), in exchange-time order: ``exch_ts`` (the log's
        column, same type), ``bid`` (highest price among our live buy orders, NaN if none)
        and ``ask`` (lowest among our live sell orders, NaN if none), in quote currency.
        An order is live from its ``ack`` until ``cancel_ack``, ``expire``, ``reject`` or a
        ``fill`` that leaves nothing; ``modify_ack`` moves it to its new price.
    """
    cols = ["exch_ts", "bid", "ask"]
    if len(orders) == 0:
        return pd.DataFrame({c: [] for c in cols})
    ev = orders["event"].astype(str).to_numpy()
    keep = np.isin(ev, ["ack", "modify_ack", "cancel_ack", "expire", "reject", "fill"])
    if "is_hedge" in orders.columns:
        keep &= ~orders["is_hedge"].fillna(False).astype(bool).to_numpy()
    o = orders[keep]
    order = np.argsort(_ns(o["exch_ts"]), kind="stable")
    o = o.iloc[order]
    ev = o["event"].astype(str).to_numpy()
    oid = o["order_id"].to_numpy(np.int64)
    sgn = _sign(o["side"])
    px = o["price"].to_numpy(float)
    leaves = o["leaves_qty"].to_numpy(float)
    live: list[dict[int, float]] = [{}, {}]  # 0: buys, 1: sells
    bid = np.full(len(o), np.nan)
    ask = np.full(len(o), np.nan)
    for i in range(len(o)):
        book = live[0 if sgn[i] > 0 else 1]
        e = ev[i]
        if e in ("ack", "modify_ack"):
            if math.isfinite(px[i]) and leaves[i] > 0:
                book[int(oid[i])] = px[i]
            else:
                book.pop(int(oid[i]), None)
        elif e == "fill":
            if leaves[i] <= 0:
                book.pop(int(oid[i]), None)
        else:
            book.pop(int(oid[i]), None)
        if live[0]:
            bid[i] = max(live[0].values())
        if live[1]:
            ask[i] = min(live[1].values())
    return pd.DataFrame({"exch_ts": o["exch_ts"].to_numpy(), "bid": bid, "ask": ask})


def markout_bands(fills: pd.DataFrame, equity: pd.DataFrame, horizons_s,
                  *, maker_only: bool = False) -> pd.DataFrame:
    """The markout curve of :func:`mmsim.metrics.markout_table` with its standard error.

    Parameters
    ----------
    fills, equity : pandas.DataFrame
        One instrument's fills and equity samples (either timestamp form, ``side`` ±1 or
        ``buy``/``sell``).
    horizons_s : sequence of float
        Horizons in seconds.
    maker_only : bool
        Maker fills only.

    Returns
    -------
    pandas.DataFrame
        One row per horizon: ``horizon_s`` (s), ``markout`` (quantity-weighted mean of
        ``s·(mid_{t+h} − p)``, quote currency per instrument unit, as
        :func:`~mmsim.metrics.markout_table`), ``se`` (its standard error over fills,
        ``sqrt(Σ w²(x − m)²) / Σ w`` with ``w`` the fill quantities; NaN with fewer than two
        fills) and ``n`` (fills with a defined mid at ``t + h``).
    """
    from mmsim.metrics.metrics import _mid_at

    rows = []
    if len(fills):
        ts = _ns(fills["exch_ts"])
        sgn = _sign(fills["side"])
        px = fills["price"].to_numpy(float)
        qty = fills["qty"].to_numpy(float)
        mid = fills["mid"].to_numpy(float)
        sel = np.ones(len(fills), bool)
        if maker_only:
            sel = fills["liquidity"].astype(str).str.lower().to_numpy() == "maker"
        eq = pd.DataFrame({"ts": _ns(equity["ts"]), "mid": equity["mid"].to_numpy(float)})
    for h in horizons_s:
        m = se = math.nan
        n = 0
        if len(fills):
            x = sgn * (_mid_at(ts, mid, eq, float(h)) - px)
            ok = sel & np.isfinite(x)
            n = int(ok.sum())
            w = qty[ok]
            ws = float(w.sum())
            if n and ws > 0:
                m = float((x[ok] * w).sum() / ws)
                if n > 1:
                    se = float(math.sqrt(float((w**2 * (x[ok] - m) ** 2).sum())) / ws)
        rows.append({"horizon_s": float(h), "markout": m, "se": se, "n": n})
    return pd.DataFrame(rows, columns=["horizon_s", "markout", "se", "n"])


# --------------------------------------------------------------------------------------------
# run page
# --------------------------------------------------------------------------------------------


def _kpis(m: dict[str, Any], unit: str, several: bool) -> str:
    def card(name: str, value: str, note: str = "", sign: float | None = None) -> str:
        cls = "" if sign is None or not math.isfinite(sign) or sign == 0 else (
            " pos" if sign > 0 else " neg")
        return (f'<div class="kpi"><div class="n">{html.escape(name)}</div>'
                f'<div class="v{cls}">{value}</div><div class="n">{html.escape(note)}</div>'
                "</div>")

    def f(k: str) -> float:
        try:
            return float(m.get(k, math.nan))
        except (TypeError, ValueError):
            return math.nan

    cards = []
    if several:
        cards.append(card("book PnL", _num(m.get("book_pnl")), unit, f("book_pnl")))
    cards += [
        card("PnL", _num(m.get("pnl")), unit, f("pnl")),
        card("spread capture", _num(m.get("spread_pnl")), unit, f("spread_pnl")),
        card("inventory", _num(m.get("inventory_pnl")), unit, f("inventory_pnl")),
        card("fees", _num(m.get("fees")), unit + " (negative: rebates)"),
        card("Sharpe", _num(m.get("sharpe"), 2), "annualised"),
        card("max drawdown", _num(m.get("max_drawdown")), unit),
        card("fills", _num(m.get("n_fills")),
             f"{_num(m.get('n_maker_fills'))} maker, {_num(m.get('n_taker_fills'))} taker"),
        card("fill rate", _pct(m.get("fill_rate_count")),
             f"of quotes; qty {_pct(m.get('fill_rate_qty'))}"),
        card("mean |q|", _num(m.get("mean_abs_position")),
             f"units; max {_num(m.get('max_abs_position'))}"),
    ]
    from mmsim.summary import _horizon_s

    for k in sorted((k for k in m if k.startswith("markout_") and not k.endswith("_maker")),
                    key=lambda k: _horizon_s(k[len("markout_"):])):
        cards.append(card(f"markout {k[len('markout_'):]}", _num(m.get(k)),
                          "price per unit", f(k)))
    return '<div class="kpis">' + "".join(cards) + "</div>"


def _timeline(page: _Page, eq: pd.DataFrame, name: str, unit: str, tzname: str,
              div_id: str) -> str:
    from plotly.subplots import make_subplots

    go = _go()
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=(f"equity ({unit})", f"drawdown ({unit})",
                                        "inventory (units)"))
    x = _wall(eq["ts"])
    e = eq["equity"].to_numpy(float)
    dd = e - np.fmax.accumulate(np.where(np.isfinite(e), e, -np.inf)) if len(e) else e
    pos = eq["position"].to_numpy(float)
    for row, y, label, color, shape in ((1, e, "equity", "#1f77b4", "linear"),
                                        (2, dd, "drawdown", "#d62728", "linear"),
                                        (3, pos, "position", "#ff7f0e", "hv")):
        k = page.keep(y, f"{name} {label}", x, div_id, len(fig.data))
        fig.add_trace(go.Scatter(x=x[k], y=y[k], mode="lines", name=label,
                                   line=dict(color=color, width=1, shape=shape),
                                   fill="tozeroy" if row == 2 else None),
                      row=row, col=1)
    fig.update_xaxes(title_text=f"exchange time ({tzname})", row=3, col=1)
    fig.update_layout(showlegend=False,
                      title=f"{name}: equity, drawdown and inventory (zoom: drag; reset: "
                            "double-click)")
    page.linked.append(div_id)
    return page.fig(fig, div_id, 640)


def _quotes(page: _Page, eq: pd.DataFrame, fills: pd.DataFrame, orders: pd.DataFrame,
            name: str, tzname: str, div_id: str) -> str:
    go = _go()
    fig = go.Figure()
    mid = eq["mid"].to_numpy(float)
    mx = _wall(eq["ts"])
    k = page.keep(mid, f"{name} mid", mx, div_id, len(fig.data))
    fig.add_trace(go.Scatter(x=mx[k], y=mid[k], mode="lines", name="mid",
                               line=dict(color="#888", width=1, shape="hv")))
    q = best_quotes(orders)
    qx = _wall(q["exch_ts"]) if len(q) else np.array([])
    for col, label, color in (("bid", "our bid", "#2ca02c"), ("ask", "our ask", "#d62728")):
        y = q[col].to_numpy(float)
        k = page.keep(y, f"{name} {label}", qx, div_id, len(fig.data))
        fig.add_trace(go.Scatter(x=qx[k], y=y[k], mode="lines", name=label,
                                   line=dict(color=color, width=1, shape="hv"),
                                   connectgaps=False, opacity=0.7))
    if len(fills):
        side = fills["side"].astype(str).to_numpy() if not pd.api.types.is_numeric_dtype(
            fills["side"]) else np.where(fills["side"].to_numpy() > 0, "buy", "sell")
        for s, symbol, color in (("buy", "triangle-up", "#2ca02c"),
                                 ("sell", "triangle-down", "#d62728")):
            f = fills[side == s]
            if len(f) > MAX_POINTS:
                page.thinned.append(f"{name} {s} fills: every "
                                    f"{-(-len(f) // MAX_POINTS)}th of {len(f):,}")
                page.embed_markers(div_id, len(fig.data), f"{name} {s} fills",
                                   _wall(f["exch_ts"]), f["price"].to_numpy(float),
                                   [f["qty"].to_numpy(float), f["liquidity"].astype(str).to_numpy(),
                                    f["queue_ahead"].to_numpy(float)])
                f = f.iloc[:: -(-len(f) // MAX_POINTS)]
            custom = np.column_stack([f["qty"].to_numpy(float),
                                      f["liquidity"].astype(str).to_numpy(),
                                      f["queue_ahead"].to_numpy(float)])
            fig.add_trace(go.Scatter(
                x=_wall(f["exch_ts"]), y=f["price"].to_numpy(float), mode="markers",
                name=f"{s} fills", customdata=custom,
                marker=dict(symbol=symbol, size=9, color=color,
                            line=dict(width=0.5, color="#222")),
                hovertemplate=(f"<b>{s}</b> %{{x}}<br>price %{{y}}<br>qty %{{customdata[0]}}"
                               "<br>liquidity %{customdata[1]}<br>queue ahead "
                               "%{customdata[2]}<extra></extra>")))
    fig.update_layout(title=f"{name}: our best quotes against the mid, fills by side",
                      xaxis_title=f"exchange time ({tzname})", yaxis_title="price",
                      legend=dict(orientation="h", y=-0.18, x=0))
    page.linked.append(div_id)
    return page.fig(fig, div_id, 460)


def _markouts(page: _Page, fills, eq, horizons, name: str, div_id: str) -> str:
    from mmsim.metrics import horizon_label

    go = _go()
    fig = go.Figure()
    labels = [horizon_label(h) for h in horizons]
    xs = list(range(len(labels)))
    for maker_only, label, color in ((False, "all fills", "31,119,180"),
                                     (True, "maker fills", "148,103,189")):
        t = markout_bands(fills, eq, horizons, maker_only=maker_only)
        m, se = t["markout"].to_numpy(), t["se"].to_numpy()
        fig.add_trace(go.Scatter(x=xs, y=m + 2 * se, mode="lines", line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, legendgroup=label))
        fig.add_trace(go.Scatter(x=xs, y=m - 2 * se, mode="lines", line=dict(width=0),
                                 fill="tonexty", fillcolor=f"rgba({color},0.18)",
                                 hoverinfo="skip", name="±2 s.e.", legendgroup=label))
        fig.add_trace(go.Scatter(x=xs, y=m, mode="lines+markers", name=label,
                                 legendgroup=label, line=dict(color=f"rgb({color})"),
                                 text=labels,
                                 customdata=np.column_stack([se, t["n"].to_numpy()]),
                                 hovertemplate="h %{text}<br>markout %{y:.6g}<br>"
                                 "s.e. %{customdata[0]:.3g}<br>fills %{customdata[1]}"
                                 "<extra></extra>"))
    fig.update_xaxes(tickvals=xs, ticktext=labels)
    fig.add_hline(y=0, line=dict(color="#999", width=1))
    fig.update_layout(title=f"{name}: markouts, ±2 s.e.",
                      xaxis_title="horizon h", yaxis_title="s·(mid(t+h) − p), price",
                      legend=dict(orientation="h", y=-0.2))
    return page.fig(fig, div_id, 420, _SMALL_WIDTH)


def _inventory_hist(page: _Page, eq: pd.DataFrame, name: str, div_id: str) -> str:
    go = _go()
    pos = eq["position"].to_numpy(float)
    pos = pos[np.isfinite(pos)]
    fig = go.Figure()
    if pos.size:
        values, counts = np.unique(pos, return_counts=True)
        if values.size > 60:  # continuous-looking: bin it
            counts, edges = np.histogram(pos, bins=60)
            values = (edges[:-1] + edges[1:]) / 2
        fig.add_trace(go.Bar(x=values, y=counts / pos.size, marker_color="#ff7f0e",
                             name="share of samples",
                             hovertemplate="q %{x}<br>%{y:.2%} of samples<extra></extra>"))
    fig.update_layout(title=f"{name}: inventory",
                      xaxis_title="position (units)", yaxis_title="share of samples",
                      yaxis_tickformat=".0%")
    return page.fig(fig, div_id, 420, _SMALL_WIDTH)


def _pnl_split(page: _Page, m: dict[str, Any], prefix: str, name: str, unit: str,
               div_id: str) -> str:
    go = _go()

    def g(k: str) -> float:
        try:
            return float(m.get(prefix + k, math.nan))
        except (TypeError, ValueError):
            return math.nan

    names = ["spread capture", "inventory", "−fees", "PnL"]
    vals = [g("spread_pnl"), g("inventory_pnl"), -g("fees"), g("pnl")]
    colors = ["#2ca02c" if v >= 0 else "#d62728" for v in vals[:3]] + ["#1f77b4"]
    fig = go.Figure(go.Bar(x=names, y=vals, marker_color=colors,
                           text=[_num(v) for v in vals], textposition="outside"))
    fig.add_hline(y=0, line=dict(color="#999", width=1))
    fig.update_layout(title=f"{name}: PnL split", yaxis_title=unit)
    return page.fig(fig, div_id, 420, _SMALL_WIDTH)


def _book(page: _Page, book: pd.DataFrame, names: list[str], unit: str, tzname: str,
          div_id: str) -> str:
    from plotly.subplots import make_subplots

    go = _go()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=(f"PnL ({unit})", "delta (underlying units)"))
    x = _wall(book.index)
    for col, label, row in ([(f"value_{n}", n, 1) for n in names] + [("total", "book", 1)]
                            + [(f"delta_{n}", f"Δ {n}", 2) for n in names]
                            + [("delta", "net Δ", 2)]):
        y = book[col].to_numpy(float)
        if row == 1:
            ok = np.flatnonzero(np.isfinite(y))
            y = y - y[ok[0]] if len(ok) else y
        k = page.keep(y, f"book {label}", x, div_id, len(fig.data))
        fig.add_trace(go.Scatter(x=x[k], y=y[k], mode="lines", name=label,
                                   line=dict(width=2 if label in ("book", "net Δ") else 1,
                                             shape="hv" if row == 2 else "linear")),
                      row=row, col=1)
    fig.update_xaxes(title_text=f"exchange time ({tzname})", row=2, col=1)
    fig.update_layout(title="Book: PnL per instrument and total, delta per instrument and net")
    page.linked.append(div_id)
    return page.fig(fig, div_id, 560)


def _document(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def run_page(run_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the interactive page of one run directory to ``path``.

    Parameters
    ----------
    run_dir : path
        A finished run (:func:`mmsim.results.load`).
    path : path
        The HTML file written (its folder must exist); replaced if present.

    Returns
    -------
    Path
        ``path``. The page holds plotly.js (about 4.5 MB) and one Plotly figure per panel
        (see the module docstring); money in each instrument's settlement currency, prices
        in quote currency, quantities in instrument units, times in the venue's zone.

    Raises
    ------
    FileNotFoundError, ValueError
        If ``run_dir`` is not a finished run.
    mmsim._extras.MissingExtraError
        If plotly is not installed (``pip install 'mmsim[report]'``).
    """
    from mmsim.metrics import DEFAULT_MARKOUT_HORIZONS_S
    from mmsim.report import money_unit
    from mmsim.results import load, venue_timezone

    _go()
    run = load(run_dir, datetimes=True)
    tzname = venue_timezone(run.manifest.get("data_kind"))
    m = run.metrics
    horizons = list((run.config.get("metrics") or {}).get("markout_horizons_s")
                    or DEFAULT_MARKOUT_HORIZONS_S)
    names = list(run.instruments) or [str(run.manifest.get("instrument", {}).get("symbol"))]
    specs = [s.model_dump() for s in run.instrument_specs]
    several = len(names) > 1
    unit0 = money_unit(specs[0] if specs else run.manifest.get("instrument"))
    page = _Page()
    name = str(run.config.get("name", Path(run_dir).name))
    man = run.manifest
    meta = man.get("data_meta", {}) or {}
    body = [
        f"<h1>mmsim run: {html.escape(name)}</h1>",
        f"<p class=\"meta\">{html.escape(str(run.config.get('description', '')))}<br>"
        f"data: {html.escape(str(man.get('data_kind')))} "
        f"{html.escape(str(meta.get('symbol', '')))}, {man.get('data_events', 0):,} events; "
        f"instruments: {html.escape(', '.join(names))}; times in {html.escape(tzname)}; "
        f"mmsim {html.escape(str(man.get('mmsim_version', '')))}<br>"
        f"run directory: {html.escape(str(Path(run_dir).resolve()))}</p>",
        "<h2>Key figures" + (f" (quoted instrument {html.escape(names[0])})" if several else "")
        + "</h2>",
        _kpis(m, unit0, several),
    ]
    panels: list[str] = []
    if several:
        panels += ["<h2>Book</h2>", _book(page, run.book_equity(), names, unit0, tzname,
                                          "book")]
    for i, inst in enumerate(names):
        eq = run.equity_of(inst) if run.instruments else run.equity
        fills = run.fills_of(inst) if run.instruments else run.fills
        orders = run.orders_of(inst) if run.instruments else run.orders
        unit = money_unit(specs[i]) if i < len(specs) else unit0
        prefix = f"inst.{inst}." if several else ""
        role = (" (quoted)" if i == 0 else f" (instrument {i})") if several else ""
        panels += [
            f"<h2>{html.escape(inst)}{role}</h2>",
            _timeline(page, eq, inst, unit, tzname, f"timeline-{i}"),
            _quotes(page, eq, fills, orders, inst, tzname, f"quotes-{i}"),
            '<div class="row"><div>',
            _markouts(page, fills, eq, horizons, inst, f"markouts-{i}"),
            "</div><div>",
            _inventory_hist(page, eq, inst, f"inventory-{i}"),
            "</div><div>",
            _pnl_split(page, m, prefix, inst, unit, f"pnl-{i}"),
            "</div></div>",
        ]
    view_script = page.script()
    thinned = ("; ".join(html.escape(t) for t in page.thinned) if page.thinned
               else "no trace needed it in this run")
    coarse = ("; ".join(html.escape(t) for t in page.coarse) if page.coarse
              else "none in this run")
    body += [
        f"<p class=\"note\">Overview thinning: a trace of more than {MAX_POINTS:,} points is "
        f"cut into {MAX_POINTS // 3:,} equal runs of samples and each run keeps its first "
        "sample, its minimum and its maximum (so spikes survive); fills beyond "
        f"{MAX_POINTS:,} per side show every k-th. Zoomed in, each thinned trace is redrawn "
        "from its full series, embedded in the page: every sample of the visible time range "
        "(and the sample just outside it on either side, so lines reach the edges) when they "
        f"are at most {MAX_POINTS:,}, else the same thinning of the visible range only; a "
        "reset (double-click) returns to the overview. To bound the page's size a series of "
        f"more than {MAX_EMBED:,} samples is embedded thinned the same way to at most "
        f"{MAX_EMBED:,} points (the lines of one clock keep the same samples: each one's "
        "runs' first samples, minima and maxima; fills: every k-th), so zooming into it is "
        f"exact only down to that thinning: {coarse}. The time panels share one time axis: "
        "zooming or panning one moves the others. The key figures, markouts and histograms "
        f"use every sample. Thinned here: {thinned}.</p>",
        *panels,
        "<h2>All metrics</h2><details><summary>show</summary><table>"
        + "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_num(v)}</td></tr>"
                  for k, v in m.items()) + "</table></details>",
        view_script,
    ]
    out = Path(path)
    out.write_text(_document(f"mmsim run {name}", body))
    return out


# --------------------------------------------------------------------------------------------
# sweep page
# --------------------------------------------------------------------------------------------


def _axis_values(s: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Numbers for a parallel-coordinates axis: the values themselves if numeric, else the
    codes of the sorted distinct values and their labels."""
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().all():
        return num.to_numpy(float), None
    cats = sorted(set(s.astype(str)))
    code = {c: i for i, c in enumerate(cats)}
    return np.array([code[v] for v in s.astype(str)], float), cats


def sweep_page(df: pd.DataFrame, params: list[str], metric: str, x: str | None,
               y: str | None, best: pd.DataFrame, title: str, path: str | os.PathLike,
               *, minimize: bool = False) -> Path:
    """Write the interactive page of a sweep to ``path``.

    Parameters
    ----------
    df : pandas.DataFrame
        The sweep table (:func:`mmsim.results.load_sweep`); rows with ``status == "ok"``
        are drawn.
    params : list of str
        The swept parameters (columns of ``df``).
    metric : str
        The metric column drawn (numeric).
    x, y : str or None
        The heatmap's parameters (``y`` None: a line of the metric over ``x``; both None:
        no heatmap).
    best : pandas.DataFrame
        The best runs, listed as a table.
    title : str
        Page title.
    path : path
        The HTML file written.
    minimize : bool
        Lower is better (the colour scale is reversed).

    Returns
    -------
    Path
        ``path``: a heatmap of the mean of ``metric`` per (``x``, ``y``) cell over the other
        parameters (hover: mean and number of runs), parallel coordinates over every
        parameter and ``metric`` (runs with a finite ``metric``; drag on an axis to filter),
        and the table of ``best``; plotly.js embedded.

    Raises
    ------
    mmsim._extras.MissingExtraError
        If plotly is not installed.
    """
    go = _go()
    page = _Page()
    ok = df[df["status"] == "ok"].copy()
    ok[metric] = pd.to_numeric(ok[metric], errors="coerce")
    scale = "Viridis_r" if minimize else "Viridis"
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p class=\"meta\">{len(df)} runs, {len(ok)} ok (the failed ones: charts.html); "
            f"metric {html.escape(metric)} ({'lower' if minimize else 'higher'} is better)</p>"]
    if x is not None and len(ok):
        def lab(v: Any) -> str:
            return f"{v:.4g}" if isinstance(v, float) else str(v)

        xs = sorted(set(ok[x].tolist()), key=lambda v: (str(type(v)), v))
        if y is None:
            g = ok.groupby(x)[metric].mean()
            fig = go.Figure(go.Scatter(x=[lab(v) for v in xs], y=[g.get(v) for v in xs],
                                       mode="lines+markers"))
            fig.update_layout(title=f"{metric} over {x}", xaxis_title=x, yaxis_title=metric)
        else:
            ys = sorted(set(ok[y].tolist()), key=lambda v: (str(type(v)), v))
            mean = ok.groupby([x, y])[metric].mean()
            count = ok.groupby([x, y])[metric].size()
            z = [[mean.get((a, b), None) for a in xs] for b in ys]
            c = [[int(count.get((a, b), 0)) for a in xs] for b in ys]
            fig = go.Figure(go.Heatmap(
                x=[lab(v) for v in xs], y=[lab(v) for v in ys], z=z, customdata=c,
                colorscale=scale, colorbar=dict(title=metric),
                hovertemplate=f"{x} %{{x}}<br>{y} %{{y}}<br>{metric} %{{z:.6g}}<br>"
                              "runs %{customdata}<extra></extra>"))
            fig.update_layout(title=f"{metric} over {x} × {y} (mean over the other axes)",
                              xaxis_title=x, yaxis_title=y, xaxis_type="category",
                              yaxis_type="category")
        body += [f"<h2>{html.escape(metric)} over the grid</h2>",
                 page.fig(fig, "sweep-heatmap", 480)]
    pc = ok[np.isfinite(ok[metric].to_numpy(float))]
    if params and len(pc):
        dims = []
        for p in [*params, metric]:
            vals, cats = _axis_values(pc[p])
            d: dict[str, Any] = {"label": p, "values": vals}
            if cats is not None:
                d.update(tickvals=list(range(len(cats))), ticktext=cats)
            dims.append(d)
        fig = go.Figure(go.Parcoords(
            line=dict(color=pc[metric].to_numpy(float), colorscale=scale, showscale=False),
            dimensions=dims))
        body += ["<h2>Parallel coordinates</h2>",
                 f"<p class=\"note\">Every swept parameter and {html.escape(metric)}, one line "
                 "per run, coloured by the metric; drag along an axis to filter.</p>",
                 page.fig(fig, "sweep-parcoords", 480,
                          margin=dict(l=80, r=80, t=60, b=40))]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in best.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_num(v)}</td>" for v in r) + "</tr>"
                   for r in best.itertuples(index=False, name=None))
    body += [f"<h2>Best {len(best)} runs by {html.escape(metric)}</h2>",
             f"<table><tr>{head}</tr>{rows}</table>",
             "<details><summary>sweep table</summary><pre>"
             + html.escape(json.dumps(ok[[*params, metric]].to_dict("records"),
                                      default=str, indent=0)[:200_000]) + "</pre></details>"]
    out = Path(path)
    out.write_text(_document(title, body))
    return out


def format_best_runs(sweep_dir: str | os.PathLike, metric: str = "pnl", top: int = 10,
                     minimize: bool = False) -> str:
    """The best runs of a sweep folder by ``metric``, as text for the terminal.

    Returns
    -------
    str
        A ``best N runs by <metric> (highest first):`` line (``lowest`` with ``minimize``),
        a header line, then one line per run (``ok`` runs only, NaN metrics last):
        ``run_key``, every swept parameter and ``metric``.

    Raises
    ------
    FileNotFoundError
        If the folder has no sweep table.
    KeyError
        If ``metric`` is not a column of the table.
    """
    from mmsim.results import load_sweep
    from mmsim.sweep import load_meta

    df = load_sweep(sweep_dir)
    if metric not in df.columns:
        raise KeyError(f"metric '{metric}' is not in the sweep table")
    params = [p for p in load_meta(sweep_dir).get("params", []) if p in df.columns]
    ok = df[df["status"] == "ok"].copy()
    ok[metric] = pd.to_numeric(ok[metric], errors="coerce")
    best = ok.sort_values(metric, ascending=minimize, na_position="last").head(top)
    table = best[["run_key", *params, metric]].copy()
    table[metric] = [_num(v) for v in table[metric]]
    head = (f"best {len(best)} runs by {metric} "
            f"({'lowest' if minimize else 'highest'} first):")
    return head + "\n" + table.to_string(index=False)
