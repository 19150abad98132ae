"""What `mmsim backtest` tells a user before and around the replay (issue "Numbers a user can
trust", §2, §3 and §6): checks before compiling, data warnings, the first-run notice."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmsim.cli import main

REPO = Path(__file__).parents[1]
EXP = REPO / "experiments"


def test_missing_data_file_is_reported_before_any_kernel_is_imported(tmp_path):
    """A missing data file is named at once, with no kernel compiled or even imported."""
    code = (
        "import sys\n"
        "from mmsim.cli import main\n"
        f"rc = main(['backtest', {str(EXP / 'lobster_amzn_as.yaml')!r}, '--data-root', "
        f"{str(tmp_path)!r}, '--out', {str(tmp_path / 'run')!r}])\n"
        "loaded = [m for m in sys.modules if m.endswith('.nb') and m.startswith('mmsim')]\n"
        "print('KERNELS', loaded)\n"
        "sys.exit(rc)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert p.returncode == 2, p.stderr
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("mmsim: error: ")
    assert "AMZN_2012-06-21_34200000_57600000_message_1.csv" in err[0]
    assert "not found" in err[0]
    assert "KERNELS []" in p.stdout
    assert not (tmp_path / "run").exists()


def test_header_and_compile_notice_come_before_the_replay(tmp_path, capsys, monkeypatch):
    import mmsim._jitcache

    monkeypatch.setattr(mmsim._jitcache, "engine_is_cached", lambda: False)
    out = tmp_path / "run"
    rc = main(["backtest", str(EXP / "default.yaml"), "--out", str(out),
               "--set", "data.synthetic.n_events=30000"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    i_head = next(i for i, ln in enumerate(lines) if ln.startswith("experiment: default"))
    i_data = next(i for i, ln in enumerate(lines) if ln.startswith("data: synthetic"))
    i_comp = lines.index("compiling kernels (first run only)...")
    i_metrics = next(i for i, ln in enumerate(lines) if ln.startswith("summary:"))
    assert i_head < i_data < i_comp < i_metrics
    timing = json.loads((out / "timing.json").read_text())
    assert timing["compiled"] is True and timing["compile_s"] >= 0
    parts = timing["prepare_s"] + timing["compile_s"] + timing["replay_s"]
    assert timing["total_s"] >= parts - 1e-3


def test_warm_cache_prints_no_compile_notice(tmp_path, capsys):
    rc = main(["backtest", str(EXP / "default.yaml"), "--out", str(tmp_path / "run"),
               "--set", "data.synthetic.n_events=30000"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "compiling kernels" not in text
    assert json.loads((tmp_path / "run" / "timing.json").read_text())["compiled"] is False


def _gapped_capture(data_root: Path, tmp_path: Path) -> Path:
    """The 2024-07-18 USD-M capture with one depth diff (the 500th) cut out: an update-id
    gap in the middle of the stream."""
    src = data_root / "binance/usdm/btcusdt_20240718.gz"
    lines = gzip.decompress(src.read_bytes()).split(b"\n")
    depth = [i for i, ln in enumerate(lines) if b'"depthUpdate"' in ln]
    cut = depth[500]
    dst = tmp_path / "root" / "binance" / "btcusdt_gap.gz"
    dst.parent.mkdir(parents=True)
    dst.write_bytes(gzip.compress(b"\n".join(lines[:cut] + lines[cut + 1:])))
    return tmp_path / "root"


@pytest.mark.realdata
def test_update_id_gap_is_an_error_or_a_printed_warning(data_root, tmp_path, capsys):
    root = _gapped_capture(data_root, tmp_path)
    base = ["backtest", str(EXP / "binance_btcusdt_glft.yaml"), "--data-root", str(root),
            "--set", "data.path=binance/btcusdt_gap.gz", "--set", "data.files=[]"]
    rc = main([*base, "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("mmsim: error: ")
    assert "btcusdt_gap.gz: row " in err and "update-id gap" in err
    assert "data.gap_policy" in err
    assert not (tmp_path / "a").exists()
    rc = main([*base, "--out", str(tmp_path / "b"), "--set", "data.gap_policy=apply",
               "--set", f"engine.chunk_events={10**6}"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "warning: 1 update-id gap(s) in the feed were applied anyway" in out
    run_report = json.loads((tmp_path / "b" / "manifest.json").read_text())["data_report"]
    assert run_report["gap_policy"] == "apply" and run_report["update_id_gaps"] == 1


def test_manifest_records_the_canonical_files_own_hash(tmp_path):
    import hashlib

    import mmsim

    run = mmsim.backtest(EXP / "default.yaml", out=tmp_path / "run", cache_dir=tmp_path / "c",
                         overrides=["data.synthetic.n_events=20000"])
    rec = run.manifest["data_canonical"]
    canonical = tmp_path / "c" / rec["file"]
    assert rec["sha256"] == hashlib.sha256(canonical.read_bytes()).hexdigest()
