"""A researcher's first hour (issue 11): the version, a typo'd command, a readable run."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmsim
from mmsim.cli import main
from mmsim.results import load

DEFAULT = Path(__file__).parents[1] / "experiments" / "default.yaml"


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"mmsim {mmsim.__version__}"


def test_a_typo_in_the_command_suggests_the_nearest_one(capsys):
    assert main(["backtset", "x.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("mmsim: error: unknown command 'backtset' (commands: ingest, backtest, "
                   "sweep, report); did you mean 'backtest'?")
    assert main(["zzz"]) == 2
    assert "did you mean" not in capsys.readouterr().err


def test_a_run_prints_as_one_line(tmp_path):
    run = mmsim.backtest(DEFAULT, out=tmp_path / "run",
                         cache_dir=tmp_path / "cache")
    text = repr(run)
    assert "\n" not in text and len(text) < 300
    assert text.startswith(f"RunResult('{run.config['name']}', instruments=")
    assert f"fills={len(run.fills):,}" in text and "pnl=" in text and " UTC" in text
    assert repr(load(run.run_dir)) == text
