"""The interactive HTML report (Plotly): its data helpers worked by hand, the page's content
and self-containedness, and a real headless-browser render with Debian's chromium."""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("plotly")

import mmsim  # noqa: E402
import mmsim.report_html as report_html  # noqa: E402
from mmsim.cli import main  # noqa: E402
from mmsim.metrics import markout_table  # noqa: E402
from mmsim.report import report_run, report_sweep  # noqa: E402
from mmsim.report_html import (  # noqa: E402
    MAX_POINTS,
    best_quotes,
    markout_bands,
    minmax_indices,
    run_page,
)
from mmsim.sweep import run_sweep  # noqa: E402

EXP = Path(__file__).parents[1] / "experiments" / "default.yaml"
SMALL = ["data.synthetic.n_events=30000"]
#: a 10 ms equity clock and a tight spread: 2,852 equity samples, 510 quote changes and
#: about 140 fills per side, thinned on a page with MAX_POINTS lowered to ZOOM_POINTS
BUSY = [*SMALL, "engine.equity_interval_nanos=10000000",
        "engine.decision_interval_nanos=10000000", "policy.spread_bps=0.5"]
ZOOM_POINTS = 90
S = 1_000_000_000
RUN_PANELS = ("timeline", "quotes", "markouts", "inventory", "pnl")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report-html-run")
    run = mmsim.backtest(EXP, out=tmp / "run", cache_dir=tmp / "cache", overrides=SMALL)
    return run.run_dir


@pytest.fixture(scope="module")
def page(run_dir, tmp_path_factory) -> Path:
    return run_page(run_dir, tmp_path_factory.mktemp("report-html-page") / "report.html")


@pytest.fixture(scope="module")
def busy_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report-html-busy")
    run = mmsim.backtest(EXP, out=tmp / "run", cache_dir=tmp / "cache", overrides=BUSY)
    return run.run_dir


# --------------------------------------------------------------------------------------------
# reading the page
# --------------------------------------------------------------------------------------------


def figures(text: str) -> dict[str, list[dict]]:
    """The traces of every ``Plotly.newPlot(id, data, ...)`` call of a page, by div id."""
    out: dict[str, list[dict]] = {}
    dec = json.JSONDecoder()
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', text):
        data, _ = dec.raw_decode(text, m.end())
        out[m.group(1)] = data
    return out


def values(v) -> np.ndarray:
    """A trace array as numpy: a JSON list, or Plotly's base64 typed array."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v if isinstance(v, list) else [], dtype=object)


def _length(v) -> int:
    return len(values(v))


def embedded(text: str) -> tuple[dict, dict]:
    """The page's view configuration and its embedded full series (decoded)."""
    def tag(tid: str):
        m = re.search(rf'<script type="application/json" id="{tid}">(.*?)</script>', text,
                      flags=re.S)
        assert m, tid
        return json.loads(m.group(1))

    return tag("mmsim-view"), {k: values(v) for k, v in tag("mmsim-series").items()}


def wall_ns(ts: pd.Series) -> np.ndarray:
    """int64 ns of the exchange's wall clock (the naive local time the page draws)."""
    return ts.dt.tz_localize(None).astype("datetime64[ns]").to_numpy().view(np.int64)


def iso(ns: np.ndarray) -> list[str]:
    """ns as the strings plotly.py writes for a date axis."""
    return [str(v) for v in np.datetime_as_string(ns.astype("datetime64[ns]"), unit="ns")]


def has_data(trace: dict) -> bool:
    if trace.get("type") == "parcoords":
        return any(_length(d.get("values", [])) for d in trace.get("dimensions", []))
    if trace.get("type") == "heatmap":
        return _length(trace.get("z", [])) > 0
    return _length(trace.get("y", [])) > 0


def assert_self_contained(path: Path) -> str:
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # the markup outside the scripts (plotly.js holds attribution links in its strings)
    markup = re.sub(r"(?is)(<script[^>]*>).*?</script>", r"\1</script>", text)
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", markup, flags=re.I)
    assert not [r for r in refs if not r.startswith(("data:", "#"))], refs
    assert not re.search(r"(?i)<script[^>]+src\s*=", markup)
    assert "<link" not in markup.lower() and "@import" not in markup
    # plotly.js itself is in the page, once
    assert len(re.findall(r"plotly\.js v\d", text)) >= 1
    assert text.count("window.PlotlyConfig") == 1
    return text


# --------------------------------------------------------------------------------------------
# helpers worked by hand
# --------------------------------------------------------------------------------------------


def test_minmax_indices_keeps_extremes_within_budget():
    assert minmax_indices(np.arange(10.0), 20).tolist() == list(range(10))
    rng = np.random.default_rng(1)
    y = rng.normal(size=100_000)
    y[54_321] = 50.0   # a spike
    y[77_777] = -50.0
    y[10_000:12_000] = np.nan  # a gap
    k = minmax_indices(y, 3_000)
    assert len(k) <= 3_000 + 1 and np.all(np.diff(k) > 0)
    assert {0, 54_321, 77_777, 99_999} <= set(k.tolist())
    # each run of 100 samples keeps its first sample, its min and its max
    run = slice(30_000, 30_100)
    kept = k[(k >= 30_000) & (k < 30_100)]
    assert 30_000 in kept
    assert 30_000 + int(np.argmin(y[run])) in kept and 30_000 + int(np.argmax(y[run])) in kept
    # the all-NaN runs keep only their first sample: the gap is drawn as a gap
    assert np.isnan(y[k[(k >= 10_000) & (k < 12_000)]]).all()
    assert len(k[(k >= 10_000) & (k < 12_000)]) == 20
    with pytest.raises(ValueError, match="at least 6"):
        minmax_indices(y, 5)


def test_best_quotes_follows_the_order_lifecycle():
    rows = [  # exch_ts, order_id, event, side, price, leaves
        (1, 1, "submit", 1, 99.0, 5), (2, 1, "ack", 1, 99.0, 5),
        (3, 2, "ack", -1, 101.0, 5),
        (4, 3, "ack", 1, 98.0, 5),          # a second, lower buy: the best bid stays 99
        (5, 1, "modify_ack", 1, 99.5, 5),   # moves the best bid
        (6, 2, "fill", -1, 101.0, 2),       # partial fill: still live
        (7, 1, "cancel_ack", 1, 99.5, 0),   # best bid falls back to order 3
        (8, 2, "fill", -1, 101.0, 0),       # filled out: no ask
        (9, 4, "ack", -1, 100.5, 1),
        (9, 5, "ack", 1, 50.0, 1),          # a hedge order: ignored
    ]
    o = pd.DataFrame(rows, columns=["exch_ts", "order_id", "event", "side", "price",
                                    "leaves_qty"])
    o["is_hedge"] = [False] * 9 + [True]
    q = best_quotes(o)
    assert q["exch_ts"].tolist() == [2, 3, 4, 5, 6, 7, 8, 9]
    np.testing.assert_array_equal(q["bid"], [99, 99, 99, 99.5, 99.5, 98, 98, 98])
    np.testing.assert_array_equal(q["ask"], [np.nan, 101, 101, 101, 101, 101, np.nan, 100.5])
    # the same log as load(datetimes=True) gives it (categoricals, tz-aware times)
    o2 = o.assign(side=pd.Categorical(np.where(o["side"] > 0, "buy", "sell")),
                  event=o["event"].astype("category"),
                  exch_ts=pd.to_datetime(o["exch_ts"], unit="s", utc=True)
                  .dt.tz_convert("America/New_York"))
    q2 = best_quotes(o2)
    np.testing.assert_array_equal(q2["bid"], q["bid"])
    np.testing.assert_array_equal(q2["ask"], q["ask"])
    assert len(best_quotes(o.iloc[:0])) == 0


def test_markout_bands_mean_and_standard_error():
    equity = pd.DataFrame({"ts": [0, 10 * S, 20 * S], "mid": [100.0, 101.0, 99.0]})
    fills = pd.DataFrame({
        "exch_ts": [1 * S, 2 * S, 3 * S], "side": [1, -1, 1],
        "price": [99.9, 100.2, 100.0], "qty": [1.0, 3.0, 2.0], "mid": [100.0] * 3,
        "liquidity": ["maker", "maker", "taker"], "is_hedge": [False] * 3,
        "fee": [0.0] * 3, "order_id": [1, 2, 3]})
    t = markout_bands(fills, equity, [10.0, 100.0])
    # h = 10 s: mids at 11, 12, 13 s are 101; markouts s·(101 − p) = 1.1, −0.8, 1.0,
    # weights 1, 3, 2
    x, w = np.array([1.1, -0.8, 1.0]), np.array([1.0, 3.0, 2.0])
    m = (x * w).sum() / w.sum()
    se = math.sqrt((w**2 * (x - m) ** 2).sum()) / w.sum()
    assert t["markout"][0] == pytest.approx(m) and t["se"][0] == pytest.approx(se)
    assert t["n"].tolist() == [3, 0] and math.isnan(t["markout"][1])
    ref = markout_table(fills, equity, [10.0, 100.0])
    assert t["markout"][0] == pytest.approx(ref["markout"][0])
    mk = markout_bands(fills, equity, [10.0], maker_only=True)
    assert mk["n"][0] == 2 and mk["markout"][0] == pytest.approx((1.1 - 2.4) / 4)


# --------------------------------------------------------------------------------------------
# the run page
# --------------------------------------------------------------------------------------------


def test_run_page_is_self_contained_with_one_figure_per_panel(page, run_dir):
    text = assert_self_contained(page)
    figs = figures(text)
    assert sorted(figs) == sorted(f"{p}-0" for p in RUN_PANELS)
    for fid, traces in figs.items():
        assert traces and all(has_data(t) for t in traces if t.get("name") != "±2 s.e."), fid
    assert text.count('class="plotly-graph-div"') == len(RUN_PANELS)
    # the quotes panel: mid, our bid and ask from the order log, fills by side with hover
    names = [t.get("name") for t in figs["quotes-0"]]
    assert names[:3] == ["mid", "our bid", "our ask"]
    assert {"buy fills", "sell fills"} & set(names)
    fill_trace = next(t for t in figs["quotes-0"] if t.get("name", "").endswith("fills"))
    for word in ("price", "qty", "liquidity", "queue ahead"):
        assert word in fill_trace["hovertemplate"]
    # the key figures come from metrics.json; the thinning rule is stated
    run = mmsim.results.load(run_dir)
    kpis = text[text.index("Key figures"):text.index("Overview thinning")]
    for word in ("PnL", "spread capture", "Sharpe", "max drawdown", "fill rate", "mean |q|",
                 "markout 1s"):
        assert word in kpis
    assert f"{run.metrics['pnl']:,.4f}" in kpis
    assert f"more than {MAX_POINTS:,} points" in text
    # times in the venue's zone: the synthetic feed starts 2024-01-02 14:30 UTC
    tl = figs["timeline-0"][0]
    assert str(tl["x"][0]).startswith("2024-01-02T14:30")


def test_run_report_writes_the_interactive_page_and_the_png_page(run_dir, tmp_path, capsys):
    out = report_run(run_dir, tmp_path / "rep")
    assert out == tmp_path / "rep" / "report.html"
    assert figures(out.read_text()).keys() == {f"{p}-0" for p in RUN_PANELS}
    assert "data:image/png;base64," in (tmp_path / "rep" / "charts.html").read_text()
    assert main(["report", str(run_dir), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


def test_long_runs_are_thinned_keeping_extremes_and_runs_without_fills_draw(tmp_path):
    run = mmsim.backtest(EXP, out=tmp_path / "dense", cache_dir=tmp_path / "cache",
                         overrides=[*SMALL, "engine.equity_interval_nanos=1000000"])
    n = len(run.equity)
    assert n > MAX_POINTS  # the 1 ms equity clock gives more samples than the budget
    text = run_page(run.run_dir, tmp_path / "dense.html").read_text()
    tl = figures(text)["timeline-0"]
    eq = run.equity["equity"].to_numpy(float)
    shown = values(tl[0]["y"]).astype(float)
    assert len(shown) <= MAX_POINTS + 1 and len(tl[0]["x"]) == len(shown)
    assert shown.max() == eq.max() and shown.min() == eq.min()
    assert f"SYN equity: {len(shown):,} of {n:,}" in text
    # a run that never trades: no fill markers, the other panels still drawn
    quiet = mmsim.backtest(EXP, out=tmp_path / "quiet", cache_dir=tmp_path / "cache",
                           overrides=["data.synthetic.n_events=5000", "policy.spread_bps=2000"])
    assert len(quiet.fills) == 0
    figs = figures(run_page(quiet.run_dir, tmp_path / "quiet.html").read_text())
    assert sorted(figs) == sorted(f"{p}-0" for p in RUN_PANELS)
    assert [t["name"] for t in figs["quotes-0"]] == ["mid", "our bid", "our ask"]


def test_several_instruments_get_one_panel_group_each(tmp_path):
    from test_results_instruments import _write

    run = _write(tmp_path)
    text = assert_self_contained(run_page(run.run_dir, tmp_path / "p.html"))
    figs = figures(text)
    assert sorted(figs) == sorted(["book"] + [f"{p}-{i}" for p in RUN_PANELS for i in (0, 1)])
    assert "spot (quoted)" in text and "perp (instrument 1)" in text
    assert "book PnL" in text
    view, _ = embedded(text)
    linked = ["book", "timeline-0", "quotes-0", "timeline-1", "quotes-1"]
    assert view["linked"] == linked
    exe = shutil.which("chromium")
    if exe:  # zooming the book's time axis moves every instrument's time panels
        page = tmp_path / "zoom.html"
        page.write_text(text.replace("</body>", _BOOK_ZOOM_JS + "</body>"))
        dom, console = render(exe, page)
        assert console == [], console
        m = re.search(r'<pre id="zoom-test">(.*?)</pre>', dom, flags=re.S)
        assert m, "the test script did not finish"
        out = json.loads(html.unescape(m.group(1)))
        assert "error" not in out, out.get("error")
        assert sorted(out["ranges"]) == sorted(linked)
        for r in out["ranges"].values():
            assert not r["auto"] and r["lin"] == pytest.approx(out["want"], abs=1e-3)
    # the per-instrument PnL split reads inst.<name>.* metrics
    perp = figs["pnl-1"][0]
    assert float(values(perp["y"])[3]) == pytest.approx(run.metrics["inst.perp.pnl"])


# --------------------------------------------------------------------------------------------
# exact when zoomed in: the embedded full series
# --------------------------------------------------------------------------------------------


def _busy_series(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(wall ns, values) of the series the busy run's page thins, from the run itself."""
    run = mmsim.results.load(run_dir, datetimes=True)
    eq = run.equity
    ens = wall_ns(eq["ts"])
    e = eq["equity"].to_numpy(float)
    q = best_quotes(run.orders)
    qns = wall_ns(q["exch_ts"])
    dd = e - np.fmax.accumulate(np.where(np.isfinite(e), e, -np.inf))
    out = {"equity": (ens, e), "drawdown": (ens, dd),
           "position": (ens, eq["position"].to_numpy(float)),
           "mid": (ens, eq["mid"].to_numpy(float)),
           "our bid": (qns, q["bid"].to_numpy(float)), "our ask": (qns, q["ask"].to_numpy(float))}
    for side in ("buy", "sell"):
        f = run.fills[run.fills["side"].astype(str) == side]
        order = np.argsort(wall_ns(f["exch_ts"]), kind="stable")
        f = f.iloc[order]
        out[f"{side} fills"] = (wall_ns(f["exch_ts"]), f["price"].to_numpy(float), f)
    return out


def test_thinned_traces_embed_their_full_series_exactly(busy_run, tmp_path, monkeypatch,
                                                        page):
    # an unthinned page links its time panels and embeds nothing
    view, series = embedded(page.read_text())
    assert view["linked"] == ["timeline-0", "quotes-0"] and view["traces"] == [] and not series
    assert "zooming or panning one moves the others" in page.read_text()

    monkeypatch.setattr(report_html, "MAX_POINTS", ZOOM_POINTS)
    text = run_page(busy_run, tmp_path / "busy.html").read_text()
    view, series = embedded(text)
    assert view["maxPoints"] == ZOOM_POINTS
    figs = figures(text)
    ref = _busy_series(busy_run)
    specs = {(t["div"], t["trace"]): t for t in view["traces"]}
    where = {"equity": ("timeline-0", 0), "drawdown": ("timeline-0", 1),
             "position": ("timeline-0", 2), "mid": ("quotes-0", 0), "our bid": ("quotes-0", 1),
             "our ask": ("quotes-0", 2), "buy fills": ("quotes-0", 3),
             "sell fills": ("quotes-0", 4)}
    assert set(specs) == set(where.values())  # every thinned trace, and only those
    for label, (div, i) in where.items():
        t = specs[(div, i)]
        assert figs[div][i]["name"] == label
        ns, y = ref[label][:2]
        assert len(values(figs[div][i]["y"])) < len(y)  # thinned in the overview
        assert series[t["x"]].dtype == np.int64 and series[t["y"]].dtype == np.float64
        np.testing.assert_array_equal(series[t["x"]], ns)  # exactly, to the nanosecond
        np.testing.assert_array_equal(series[t["y"]], y)   # bit for bit (NaN included)
        assert t["line"] == (not label.endswith("fills"))
    # the fills' hover columns too: qty, liquidity (codes and labels), queue ahead
    f = ref["buy fills"][2]
    qty, liq, queue = specs[("quotes-0", 3)]["custom"]
    np.testing.assert_array_equal(series[qty["s"]], f["qty"].to_numpy(float))
    assert [liq["labels"][c] for c in series[liq["s"]]] == f["liquidity"].astype(str).tolist()
    np.testing.assert_array_equal(series[queue["s"]], f["queue_ahead"].to_numpy(float))
    # the equity clock's times are stored once for the four traces drawn on it
    assert len({specs[w]["x"] for w in list(where.values())[:4]}) == 1
    assert "bdata" in text and "none in this run" in text

    # above MAX_EMBED samples a series is embedded thinned, and the page says so: the lines of
    # one clock keep the same samples (the union of their min/max thinnings), fills every k-th
    clock = ["equity", "drawdown", "position", "mid"]
    ns, e = ref["equity"][:2]
    for cap in (1_000, 100):
        monkeypatch.setattr(report_html, "MAX_EMBED", cap)
        text = run_page(busy_run, tmp_path / f"capped-{cap}.html").read_text()
        view, series = embedded(text)
        specs = {(t["div"], t["trace"]): t for t in view["traces"]}
        xs = {specs[where[label]]["x"] for label in clock}
        assert len(xs) == 1
        x = series[xs.pop()]
        k = np.searchsorted(ns, x)
        assert len(x) <= cap and np.all(np.diff(x) > 0) and np.array_equal(ns[k], x)
        for label in clock:
            y = ref[label][1]
            np.testing.assert_array_equal(series[specs[where[label]]["y"]], y[k])
            assert {int(np.nanargmax(y)), int(np.nanargmin(y)), 0, len(y) - 1} <= set(k.tolist())
        if cap == 1_000:  # the cap itself fits: exactly the union at that cap
            np.testing.assert_array_equal(k, np.unique(np.concatenate(
                [minmax_indices(ref[label][1], cap) for label in clock])))
        assert f"SYN equity: {len(k):,} of {len(e):,}" in text
        assert f"more than {cap:,} samples is embedded thinned" in text
    fns, price, f = ref["buy fills"]
    t = specs[where["buy fills"]]
    np.testing.assert_array_equal(series[t["x"]], fns[::2])
    np.testing.assert_array_equal(series[t["y"]], price[::2])
    np.testing.assert_array_equal(series[t["custom"][0]["s"]], f["qty"].to_numpy(float)[::2])
    assert f"SYN buy fills: every 2th of {len(fns):,}" in text


# --------------------------------------------------------------------------------------------
# sweep page
# --------------------------------------------------------------------------------------------


def test_sweep_page_heatmap_parallel_coordinates_and_best_runs(tmp_path, capsys):
    res = run_sweep(EXP, grid=["policy.spread_bps=1,3", "latency.entry_nanos=1e5,5e5"],
                    overrides=SMALL, out=tmp_path / "s", cache_dir=tmp_path / "cache",
                    jobs=0, progress=False)
    page = report_sweep(res.sweep_dir, tmp_path / "rep", metric="pnl")
    text = assert_self_contained(page)
    figs = figures(text)
    assert sorted(figs) == ["sweep-heatmap", "sweep-parcoords"]
    hm = figs["sweep-heatmap"][0]
    assert hm["type"] == "heatmap" and np.array(hm["z"], float).shape == (2, 2)
    assert np.isfinite(np.array(hm["z"], float)).all()
    dims = figs["sweep-parcoords"][0]["dimensions"]
    assert [d["label"] for d in dims] == ["policy.spread_bps", "latency.entry_nanos", "pnl"]
    assert main(["report", str(res.sweep_dir), "--metric", "pnl", "--top", "2"]) == 0
    out = capsys.readouterr().out
    best = mmsim.results.load_sweep(res.sweep_dir).sort_values("pnl", ascending=False)
    assert "best 2 runs by pnl" in out
    lines = out[out.index("best 2 runs by pnl"):].splitlines()
    assert best["run_key"].iloc[0] in lines[2] and best["run_key"].iloc[1] in lines[3]
    exe = shutil.which("chromium")
    if exe:  # the sweep page renders too (the run page's browser test skips or fails alone)
        dom, console = render(exe, page)
        assert console == [], console
        divs = graph_divs(dom)
        assert sorted(divs) == ["sweep-heatmap", "sweep-parcoords"]
        assert all('class="main-svg"' in chunk for chunk in divs.values())


# --------------------------------------------------------------------------------------------
# a real browser
# --------------------------------------------------------------------------------------------


def _chromium() -> str | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI must have it: .ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


def render(exe: str, path: Path, tz: str | None = None) -> tuple[str, list[str]]:
    """The DOM of ``path`` after chromium ran its scripts, and the page's console lines
    (``tz``: the browser's time zone)."""
    res = subprocess.run(
        [exe, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0",
         # no network: a page that fetched anything would log the failure
         "--host-resolver-rules=MAP * ~NOTFOUND",
         # WebGL (parallel coordinates) on the software rasteriser, opted in
         "--enable-unsafe-swiftshader",
         f"--user-data-dir={path.parent / 'chromium-profile'}",
         "--dump-dom", path.resolve().as_uri()],
        capture_output=True, text=True, timeout=180,
        env=None if tz is None else {**os.environ, "TZ": tz})
    assert res.returncode == 0, res.stderr[-2000:]
    console = [ln for ln in res.stderr.splitlines()
               if ":CONSOLE" in ln and path.name in ln and not _GL_NOTICE.search(ln)]
    return res.stdout, console


#: the software GL driver's performance notices, which chromium echoes to the console
_GL_NOTICE = re.compile(r'"\[\.WebGL-[0-9a-fx]+\]GL Driver Message \([^)]*Performance')


def graph_divs(dom: str) -> dict[str, str]:
    """Each Plotly graph div's id → the DOM text from it to the next graph div."""
    marks = [(m.start(), m.group(1)) for m in re.finditer(
        r'<div[^>]*\bid="([^"]+)"[^>]*class="[^"]*plotly-graph-div', dom)]
    return {fid: dom[a:(marks[i + 1][0] if i + 1 < len(marks) else len(dom))]
            for i, (a, fid) in enumerate(marks)}


def test_the_page_renders_in_headless_chromium_without_console_errors(page, tmp_path):
    exe = _chromium()
    # the check itself: a page with a script error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>no_such_function();</script>"
                   "</body></html>")
    _, console = render(exe, bad)
    assert any("no_such_function" in ln for ln in console), console
    dom, console = render(exe, page)
    assert console == [], console
    divs = graph_divs(dom)
    assert sorted(divs) == sorted(f"{p}-0" for p in RUN_PANELS)
    for fid, chunk in divs.items():
        assert 'class="main-svg"' in chunk, f"{fid}: Plotly drew nothing"
        assert 'class="plot-container plotly"' in chunk, fid


#: appended to a run page: zoom, pan from the other figure, reset; each state to <pre>
_ZOOM_JS = """
<script>
window.addEventListener("load", async function () {
  var out = {};
  try {
    var tl = document.getElementById("timeline-0"), qt = document.getElementById("quotes-0");
    var snap = function () {
      return {
        ranges: [tl, qt].map(function (gd) {
          var ax = gd._fullLayout.xaxis;
          return {auto: !!ax.autorange, lin: ax.range.map(function (v) { return ax.r2l(v); })};
        }),
        traces: [tl, qt].map(function (gd) {
          return gd._fullData.map(function (d) {
            return {x: Array.from(d.x), y: Array.from(d.y),
                    customdata: d.customdata ? Array.from(d.customdata) : null};
          });
        })
      };
    };
    await mmsimView.idle();
    out.overview = snap();
    await Plotly.relayout(tl, {"xaxis.range": [ZOOM]});
    await mmsimView.idle();
    out.zoom = snap();
    await Plotly.relayout(qt, {"xaxis.range": [WIDE]});
    await mmsimView.idle();
    out.wide = snap();
    await Plotly.relayout(tl, {"xaxis.autorange": true});
    await mmsimView.idle();
    out.reset = snap();
  } catch (e) {
    out.error = String(e && e.stack || e);
  }
  var pre = document.createElement("pre");
  pre.id = "zoom-test";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""

#: appended to a several-instrument page: zoom the book into the middle half of its range
_BOOK_ZOOM_JS = """
<script>
window.addEventListener("load", async function () {
  var out = {};
  try {
    var ax = document.getElementById("book")._fullLayout.xaxis;
    var r = ax.range.map(function (v) { return ax.r2l(v); }), q = (r[1] - r[0]) / 4;
    out.want = [r[0] + q, r[1] - q];
    await Plotly.relayout("book", {"xaxis.range": out.want.map(function (v) {
      return ax.l2r(v); })});
    await mmsimView.idle();
    out.ranges = {};
    document.querySelectorAll(".plotly-graph-div").forEach(function (gd) {
      var a = gd._fullLayout.xaxis;
      if (a.type === "date") out.ranges[gd.id] = {
        auto: !!a.autorange, lin: a.range.map(function (v) { return a.r2l(v); })};
    });
  } catch (e) {
    out.error = String(e && e.stack || e);
  }
  var pre = document.createElement("pre");
  pre.id = "zoom-test";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _between(ns: np.ndarray, i: int) -> int:
    """A time (ns, whole µs) halfway between samples i − 1 and i."""
    return int((ns[i - 1] + ns[i]) // 2 // 1000 * 1000)


def _plotly_time(ns: int) -> str:
    return str(np.datetime64(ns, "ns").astype("datetime64[us]")).replace("T", " ")


def test_zoomed_in_the_page_draws_every_sample_and_the_time_panels_move_together(
        busy_run, tmp_path, monkeypatch):
    exe = _chromium()
    monkeypatch.setattr(report_html, "MAX_POINTS", ZOOM_POINTS)
    text = run_page(busy_run, tmp_path / "busy.html").read_text()
    ref = _busy_series(busy_run)
    ens, e = ref["equity"]
    a, b = _between(ens, 1_000), _between(ens, 1_040)   # 40 equity samples: all drawn
    c, d = _between(ens, 100), _between(ens, 2_700)     # 2,600: thinned to the range
    for key in ref:  # no sample within a microsecond of an edge
        assert np.abs(ref[key][0][:, None] - np.array([a, b, c, d])).min() > 1_000
    script = (_ZOOM_JS.replace("ZOOM", f'"{_plotly_time(a)}", "{_plotly_time(b)}"')
              .replace("WIDE", f'"{_plotly_time(c)}", "{_plotly_time(d)}"'))
    test_page = tmp_path / "zoom.html"
    test_page.write_text(text.replace("</body>", script + "</body>"))
    # a browser far from the venue's zone (UTC here): the page draws the wall clock anyway
    dom, console = render(exe, test_page, tz="Asia/Tokyo")
    assert console == [], console
    m = re.search(r'<pre id="zoom-test">(.*?)</pre>', dom, flags=re.S)
    assert m, "the test script did not finish"
    out = json.loads(html.unescape(m.group(1)))
    assert "error" not in out, out.get("error")
    where = {"equity": (0, 0), "drawdown": (0, 1), "position": (0, 2), "mid": (1, 0),
             "our bid": (1, 1), "our ask": (1, 2), "buy fills": (1, 3), "sell fills": (1, 4)}

    def drawn(state: str, label: str) -> tuple[list, np.ndarray, list | None]:
        f, i = where[label]
        t = out[state]["traces"][f][i]
        return t["x"], np.array([np.nan if v is None else v for v in t["y"]], float), \
            t["customdata"]

    def ms(ns: int) -> float:
        return ns / 1e6

    def pairs(t: np.ndarray, v: np.ndarray) -> set:
        return set(zip(t.tolist(), np.nan_to_num(v, nan=-1e300).tolist(), strict=True))

    branches = set()
    for state, (lo, hi) in (("zoom", (a, b)), ("wide", (c, d))):
        # both figures show the range set on one of them
        for r in out[state]["ranges"]:
            assert not r["auto"]
            assert r["lin"] == pytest.approx([ms(lo), ms(hi)], abs=1e-3)
        for label in where:
            ns, y = ref[label][:2]
            x, shown, custom = drawn(state, label)
            i0, i1 = np.searchsorted(ns, lo), np.searchsorted(ns, hi, side="right")
            if not label.endswith("fills"):  # lines: and the sample either side of the range
                i0, i1 = max(i0 - 1, 0), min(i1 + 1, len(ns))
            branches.add("exact" if i1 - i0 <= ZOOM_POINTS else
                         "stride" if label.endswith("fills") else "minmax")
            if i1 - i0 <= ZOOM_POINTS:  # every sample of the range, exactly
                assert len(x) == i1 - i0, (state, label)
                assert x == iso(ns[i0:i1]), (state, label)
                np.testing.assert_array_equal(shown, y[i0:i1])
            elif label.endswith("fills"):  # every k-th fill of the range
                assert state == "wide"
                k = np.arange(i0, i1, -(-(i1 - i0) // ZOOM_POINTS))
                assert len(x) == len(k) <= ZOOM_POINTS, (state, label)
                assert x == iso(ns[k])
                np.testing.assert_array_equal(shown, y[k])
            else:  # the overview's min/max thinning, of the visible range only
                assert state == "wide" and len(x) <= ZOOM_POINTS + 1, (state, label)
                xn = np.array(x, dtype="datetime64[ns]").view(np.int64)
                assert xn[0] == ns[i0] and xn[-1] == ns[i1 - 1] and np.all(np.diff(xn) >= 0)
                assert pairs(xn, shown) <= pairs(ns[i0:i1], y[i0:i1])
                assert np.nanmax(shown) == np.nanmax(y[i0:i1])
                assert np.nanmin(shown) == np.nanmin(y[i0:i1])
            if label.endswith("fills"):  # hover: qty, liquidity, queue ahead as in overview
                f = ref[label][2].iloc[k if i1 - i0 > ZOOM_POINTS else slice(i0, i1)]
                assert custom == [[None if isinstance(v, float) and math.isnan(v) else v
                                   for v in row] for row in np.column_stack(
                    [f["qty"].to_numpy(float), f["liquidity"].astype(str).to_numpy(),
                     f["queue_ahead"].to_numpy(float)]).tolist()]
    assert branches == {"exact", "stride", "minmax"}
    # 40 equity samples and their two neighbours, where the overview had thinned them
    assert len(drawn("zoom", "equity")[0]) == 42
    overview = drawn("overview", "equity")[0]
    assert len(overview) < len(ens) and overview == figures(text)["timeline-0"][0]["x"]
    assert int(((ens > a) & (ens < b)).sum()) == 40
    # reset: both figures autorange and every trace is the overview again
    assert all(r["auto"] for r in out["reset"]["ranges"])
    assert out["reset"]["traces"] == out["overview"]["traces"]
    assert out["zoom"]["traces"] != out["overview"]["traces"]
