"""Reports: PNG charts and their self-contained page (``charts.html``) for a run and for a
sweep; the interactive ``report.html`` is tested in test_report_html.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mmsim
from mmsim.cli import main
from mmsim.report import report, report_run, report_sweep
from mmsim.sweep import run_sweep

EXP = Path(__file__).parents[1] / "experiments" / "default.yaml"
SMALL = ["data.synthetic.n_events=30000"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report-run")
    run = mmsim.backtest(EXP, out=tmp / "run", cache_dir=tmp / "cache", overrides=SMALL)
    return run.run_dir


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report-sweep")
    res = run_sweep(EXP, grid=["policy.spread_bps=1,2,3", "latency.entry_nanos=1e5,5e5",
                               "policy.name=fixed_spread,no_such_policy"],
                    overrides=SMALL, out=tmp / "sweep", cache_dir=tmp / "cache", jobs=0,
                    progress=False)
    return res.sweep_dir


def _assert_self_contained(page: Path) -> str:
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", text, flags=re.I)
    assert all(r.startswith("data:") or r.startswith("#") for r in refs), refs
    assert "<link" not in text.lower() and "<script" not in text.lower()
    return text


def test_run_report(run_dir, tmp_path):
    page = report_run(run_dir, tmp_path / "rep")
    assert page == tmp_path / "rep" / "report.html"
    for name in ("equity_inventory", "fills", "markout", "pnl_split"):
        png = tmp_path / "rep" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5_000
    assert "Plotly.newPlot" in page.read_text()
    text = _assert_self_contained(page.with_name("charts.html"))
    assert text.count("data:image/png;base64,") == 4
    for word in ("Equity and inventory", "Markout curve", "PnL split", "spread_pnl",
                 "inventory_pnl", "markout_1s"):
        assert word in text


def test_run_report_default_folder_and_cli(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report" / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out
    mmsim.results.load(run_dir)  # the run is still a valid run directory


def test_sweep_report(sweep_dir, tmp_path):
    page = report_sweep(sweep_dir, tmp_path / "rep", metric="pnl")
    png = tmp_path / "rep" / "heatmap_pnl.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "Plotly.newPlot" in page.read_text()
    text = _assert_self_contained(page.with_name("charts.html"))
    assert "pnl over the grid" in text and text.count("data:image/png;base64,") == 1
    assert "Best 6 runs by pnl" in text
    assert "Failed runs (6)" in text and "no_such_policy" in text


def test_sweep_report_options(sweep_dir, tmp_path):
    page = report_sweep(sweep_dir, tmp_path / "a", metric="max_drawdown",
                        x="latency.entry_nanos", y="policy.name", top=3, minimize=True)
    text = _assert_self_contained(page.with_name("charts.html"))
    assert "Best 3 runs by max_drawdown (lowest first)" in text
    with pytest.raises(KeyError, match="not in the sweep table"):
        report_sweep(sweep_dir, tmp_path / "b", metric="no_such_metric")
    with pytest.raises(KeyError, match="not a swept parameter"):
        report_sweep(sweep_dir, tmp_path / "b", x="policy.gamma")


def test_one_axis_sweep_report_and_cli(tmp_path, capsys):
    res = run_sweep(EXP, grid=["policy.spread_bps=1,2"], overrides=SMALL, out=tmp_path / "s",
                    cache_dir=tmp_path / "cache", jobs=0, progress=False)
    assert main(["report", str(res.sweep_dir), "--metric", "sharpe"]) == 0
    assert (res.sweep_dir / "report" / "heatmap_sharpe.png").is_file()
    _assert_self_contained(res.sweep_dir / "report" / "charts.html")
    assert (res.sweep_dir / "report" / "report.html").is_file()


def test_report_of_something_else_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
