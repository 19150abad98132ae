"""The interactive HTML report (Plotly): its data helpers worked by hand, the page's content
and self-containedness, and a real headless-browser render with Debian's chromium."""

from __future__ import annotations

import base64
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
    # the per-instrument PnL split reads inst.<name>.* metrics
    perp = figs["pnl-1"][0]
    assert float(values(perp["y"])[3]) == pytest.approx(run.metrics["inst.perp.pnl"])


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


def render(exe: str, path: Path) -> tuple[str, list[str]]:
    """The DOM of ``path`` after chromium ran its scripts, and the page's console lines."""
    res = subprocess.run(
        [exe, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0",
         # no network: a page that fetched anything would log the failure
         "--host-resolver-rules=MAP * ~NOTFOUND",
         # WebGL (parallel coordinates) on the software rasteriser, opted in
         "--enable-unsafe-swiftshader",
         f"--user-data-dir={path.parent / 'chromium-profile'}",
         "--dump-dom", path.resolve().as_uri()],
        capture_output=True, text=True, timeout=180)
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
