"""Never lose or silently corrupt a user's data: output claims and locks, atomic and fsynced
writes, page checksums and hash records of canonical files, stale temporary files, and the
Binance gap-policy wiring."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mmsim.cli import main
from mmsim.config import DataConfig
from mmsim.data import DataError, read_events, store
from mmsim.data import sources as src_mod
from mmsim.data.store import IngestResult, write_events
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventKind as K
from mmsim.instruments import Instrument
from mmsim.results import RunWriter, load

REPO = Path(__file__).parents[1]
INST = Instrument()
LOBSTER_ROWS = ["34200.000000001,1,11,100,1000000,1", "34200.5,1,12,50,1000100,-1",
                "34201.1,2,11,30,1000000,1"]


def _events(n: int) -> np.ndarray:
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["exch_ts"] = np.arange(n) * 1000
    ev["local_ts"] = ev["exch_ts"]
    ev["kind"] = K.ADD
    ev["side"] = np.where(np.arange(n) % 2, 1, -1)
    ev["price_tick"] = 10_000 + (np.arange(n) * 7919) % 501  # many distinct values
    ev["qty"] = 1 + np.arange(n) % 13
    ev["order_id"] = np.arange(n) + 1
    return ev


def _commit(w: RunWriter) -> None:
    w.close_logs()
    w.read_back()
    w.commit({"pnl": 1.0}, {"name": "t"}, {"mmsim_version": "test", "config_sha256": "d"},
             {"replay_s": 0.0})


def _run(tmp_path: Path, name: str = "run") -> Path:
    d = tmp_path / name
    _commit(RunWriter(d, INST, overwrite=True))
    return d


def _flip_price_tick(path: Path, row_group: int, keep_mtime: bool) -> None:
    """Flip 16 bytes in the middle of the ``price_tick`` column chunk of ``row_group``
    (offset from the Parquet metadata); ``keep_mtime`` restores the mtime (bit rot)."""
    md = pq.ParquetFile(path).metadata
    rg = md.row_group(row_group)
    col = next(rg.column(i) for i in range(rg.num_columns)
               if rg.column(i).path_in_schema == "price_tick")
    start = col.dictionary_page_offset or col.data_page_offset
    off = start + col.total_compressed_size // 2
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(16)
        f.seek(off)
        f.write(bytes(x ^ 0xFF for x in b))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


# --- run directories ---------------------------------------------------------------------------


def test_run_out_refuses_a_user_folder_before_any_work(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="notes.txt.*refusing"):
        RunWriter(d, INST, overwrite=True)
    assert (d / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no partial, no lock


def test_run_out_dot_and_a_file_are_refused(tmp_path, monkeypatch):
    from mmsim.results import OutputError

    (tmp_path / "keep.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError):
        RunWriter(".", INST, overwrite=True)
    f = tmp_path / "afile"
    f.write_text("data")
    with pytest.raises(OutputError, match="is a file"):
        RunWriter(f, INST, overwrite=True)
    assert f.read_text() == "data" and (tmp_path / "keep.txt").exists()
    assert not (tmp_path / "afile.partial").exists()


def test_run_replaces_an_empty_folder_and_its_own_run_only(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    _commit(RunWriter(d, INST, overwrite=True))  # empty folder: used
    man = json.loads((d / "manifest.json").read_text())
    assert man["complete"] and "fills.parquet" in man["files"]
    (d / "report").mkdir()  # what `mmsim report` adds
    (d / "report" / "report.html").write_text("<html>")
    (d / "report" / "my.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="report/my.txt"):
        RunWriter(d, INST, overwrite=True)
    (d / "report" / "my.txt").unlink()
    _commit(RunWriter(d, INST, overwrite=True))  # an mmsim run: replaced
    assert load(d).metrics["pnl"] == 1.0 and not (d / "report").exists()
    with pytest.raises(FileExistsError):
        RunWriter(d, INST, overwrite=False)
    (d / "mine.csv").write_text("a,b")
    with pytest.raises(FileExistsError, match="mine.csv"):
        RunWriter(d, INST, overwrite=True)
    assert (d / "mine.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_instrument_may_be_set_after_the_claim(tmp_path):
    w = RunWriter(tmp_path / "r", overwrite=True)  # before the dataset is opened
    with pytest.raises(RuntimeError, match="instrument"):
        w.append(np.zeros(0), np.zeros(0), np.zeros(0))
    w.set_instrument(INST)
    _commit(w)
    assert load(tmp_path / "r").metrics["pnl"] == 1.0


def test_second_writer_of_the_same_out_fails_at_once(tmp_path):
    from mmsim.results import OutputLockedError

    d = tmp_path / "r"
    w1 = RunWriter(d, INST, overwrite=True)
    with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
        RunWriter(d, INST, overwrite=True)
    assert (tmp_path / "r.partial" / "fills.parquet").exists()  # the first is untouched
    _commit(w1)
    assert not (tmp_path / "r.lock").exists()
    w3 = RunWriter(d, INST, overwrite=True)  # released by commit
    w3.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    with RunWriter(d, INST, overwrite=True):  # a with block aborts unless committed
        pass
    assert load(d).metrics["pnl"] == 1.0 and not (tmp_path / "r.lock").exists()


def test_lock_of_a_killed_process_does_not_block(tmp_path):
    from mmsim.results import OutputLockedError, claim_output

    target = tmp_path / "r"
    code = ("import sys, time; from mmsim.results import claim_output; "
            f"c = claim_output({str(target)!r}, 'run'); print('locked', flush=True); "
            "time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=f"pid {p.pid}"):
            claim_output(target, "run")
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert (tmp_path / "r.lock").exists()  # left behind by the killed process ...
    with claim_output(target, "run") as c:  # ... and does not block
        assert c.state == "absent"
    # a lock file naming a dead pid, from a crashed run
    (tmp_path / "r.lock").write_text(json.dumps({"pid": p.pid, "host": "h", "since": "t"}))
    _commit(RunWriter(target, INST, overwrite=True))


def test_load_refuses_a_partial_folder(tmp_path):
    from mmsim.sweep import finished_run

    d = _run(tmp_path)
    part = tmp_path / "run2.partial"
    shutil.copytree(d, part)
    with pytest.raises(ValueError, match="partial"):
        load(part)
    assert finished_run(part) is None
    assert finished_run(d) == {"pnl": 1.0}
    assert finished_run(d, "other-digest") is None


def test_commit_fsyncs_every_file_and_the_folder(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    d = _run(tmp_path)
    part = str(tmp_path / "run.partial")
    for name in os.listdir(d):
        assert os.path.join(part, name) in synced, name
    assert part in synced and str(tmp_path) in synced  # the folder, then its parent


# --- canonical files ---------------------------------------------------------------------------


def test_written_files_get_the_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_events(tmp_path / "ev.parquet", IngestResult(_events(10), {"s": 1}, {}))
        from mmsim.sweep import _write_meta

        _write_meta({"a": 1}, tmp_path)
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "sweep.json").stat().st_mode & 0o777 == 0o644
    assert store.hash_record_path(p).stat().st_mode & 0o777 == 0o644


def test_page_checksums_catch_a_flipped_price_tick(tmp_path):
    ev = _events(30_000)
    p = write_events(tmp_path / "ev.parquet", IngestResult(ev, {"source": "t"}, {}),
                     row_group_rows=10_000)
    rec = json.loads(store.hash_record_path(p).read_text())
    assert rec["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    _flip_price_tick(p, 1, keep_mtime=True)
    with pytest.raises(DataError) as e:
        read_events(p)
    assert e.value.path == str(p) and e.value.field == "price_tick"
    assert e.value.row == 10_001 and "ev.parquet" in str(e.value)
    assert "CRC" in str(e.value)  # the checksum, not a decoding accident


def _user_parquet(tmp_path: Path) -> tuple[Path, DataConfig]:
    root = tmp_path / "data"
    root.mkdir()
    write_events(root / "u.parquet", IngestResult(_events(30_000), {"source": "t"}, {}),
                 row_group_rows=10_000)
    return root, DataConfig(kind="parquet", path="u.parquet")


def test_user_parquet_damaged_gives_a_named_error(tmp_path, capsys):
    root, cfg = _user_parquet(tmp_path)
    f = root / "u.parquet"
    ds = src_mod.open_dataset(cfg, root, tmp_path / "cache")
    assert ds.canonical_sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    assert ds.inputs == {"u.parquet": ds.canonical_sha256} and not ds.cache_file
    # bit rot (mtime unchanged): the record is trusted, the page checksum catches it
    _flip_price_tick(f, 1, keep_mtime=True)
    ds = src_mod.open_dataset(cfg, root, tmp_path / "cache")
    with pytest.raises(DataError, match=r"u\.parquet: row 10001, field 'price_tick'"):
        for _ in ds.chunks(4096):
            pass
    assert f.exists()  # a user's file is never removed
    # a changed file: re-hashed, differs from the record, every page verified at open
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    with pytest.raises(DataError, match=r"u\.parquet.*price_tick.*CRC"):
        src_mod.open_dataset(cfg, root, tmp_path / "cache")


def test_canonical_hash_is_not_recomputed_while_the_file_is_unchanged(tmp_path, monkeypatch):
    root, cfg = _user_parquet(tmp_path)
    first = src_mod.open_dataset(cfg, root, tmp_path / "cache").canonical_sha256

    def no_hash(path):
        raise AssertionError(f"re-hashed {path}")

    monkeypatch.setattr(store, "sha256_file", no_hash)
    monkeypatch.setattr(src_mod, "sha256_file", no_hash)
    assert src_mod.open_dataset(cfg, root, tmp_path / "cache").canonical_sha256 == first


@pytest.fixture
def small_synthetic(monkeypatch):
    """Synthetic flow in row groups of 4000 events (so a file has several)."""
    real = src_mod._write_synthetic
    monkeypatch.setattr(src_mod, "_write_synthetic",
                        lambda path, params, seed, chunk: real(path, params, seed, 4000))
    return DataConfig(kind="synthetic", synthetic={"n_events": 12_000})


def test_damaged_cache_file_is_ingested_again(tmp_path, small_synthetic, capsys):
    cache = tmp_path / "cache"
    ds = src_mod.open_dataset(small_synthetic, None, cache, seed=1)
    good = read_events(ds.path)
    sha = ds.canonical_sha256
    assert ds.cache_file and sha == hashlib.sha256(ds.path.read_bytes()).hexdigest()
    # changed bytes (mtime moved): caught by the hash record at open, rebuilt
    _flip_price_tick(ds.path, 1, keep_mtime=False)
    ds2 = src_mod.open_dataset(small_synthetic, None, cache, seed=1)
    err = capsys.readouterr().err
    assert f"cache file {ds.path}" in err and "ingesting it again" in err
    assert ds2.canonical_sha256 == sha and np.array_equal(read_events(ds2.path), good)
    # bit rot (mtime kept): the page checksum catches it while replaying, the file goes
    _flip_price_tick(ds.path, 2, keep_mtime=True)
    ds3 = src_mod.open_dataset(small_synthetic, None, cache, seed=1)
    with pytest.raises(DataError, match="price_tick.*cache file removed"):
        for _ in ds3.chunks(1000):
            pass
    assert not ds.path.exists() and not store.hash_record_path(ds.path).exists()
    ds4 = src_mod.open_dataset(small_synthetic, None, cache, seed=1)
    assert ds4.canonical_sha256 == sha
    assert sorted(p.name for p in cache.iterdir()) == [ds.path.name, ds.path.name + ".sha256.json"]


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path, small_synthetic):
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    name = "synthetic-0123.parquet"
    stale = [cache / f".{name}.mmsim-{store.HOST}-{pid}-0badc0de.tmp",
             cache / f"{name}.tmp{pid}"]  # the old synthetic writer's name
    live = [cache / f".{name}.mmsim-{store.HOST}-{os.getpid()}-0badc0de.tmp",
            cache / f".{name}.mmsim-otherhost-{pid}-0badc0de.tmp",
            cache / "notes.tmp"]
    old = time.time() - 3600
    for p in stale + live:
        p.write_bytes(b"x" * 100)
        os.utime(p, (old, old))
    src_mod.open_dataset(small_synthetic, None, cache, seed=1)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in live)


def test_killed_generation_leaves_a_temp_file_that_the_next_use_removes(tmp_path):
    cache = tmp_path / "cache"
    code = ("from mmsim.config import DataConfig; from mmsim.data.sources import open_dataset; "
            f"open_dataset(DataConfig(kind='synthetic', synthetic={{'n_events': 50_000_000}}), "
            f"None, {str(cache)!r})")
    p = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            tmps = [f for f in cache.iterdir() if ".tmp" in f.name] if cache.exists() else []
            if tmps and tmps[0].stat().st_size > 0:
                break
            time.sleep(0.2)
        assert tmps, "the generator never started writing"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert tmps[0].exists()
    src_mod.open_dataset(DataConfig(kind="synthetic", synthetic={"n_events": 2000}), None,
                         cache)
    assert not [f for f in cache.iterdir() if ".tmp" in f.name or f.suffix == ".lock"]


def _wait_for_temp(cache: Path, p: subprocess.Popen) -> list[Path]:
    deadline = time.time() + 180
    while time.time() < deadline and p.poll() is None:
        tmps = [f for f in cache.iterdir() if ".tmp" in f.name] if cache.exists() else []
        if tmps and tmps[0].stat().st_size > 0:
            return tmps
        time.sleep(0.2)
    return []


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    p = subprocess.Popen(
        [sys.executable, "-m", "mmsim.cli", "backtest", str(REPO / "experiments/default.yaml"),
         "--out", str(out), "--set", "data.synthetic.n_events=50000000"],
        env=dict(os.environ, MMSIM_CACHE_DIR=str(cache)), stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for_temp(cache, p), "the generator never started writing"
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 143 and "terminated" in err
    assert list(cache.iterdir()) == []  # the temp file is gone
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cache"]  # no run, partial, lock


# --- ingest --out ------------------------------------------------------------------------------


def _lobster(tmp_path: Path) -> Path:
    p = tmp_path / "TEST_2012-06-21_34200000_57600000_message_1.csv"
    p.write_text("\n".join(LOBSTER_ROWS) + "\n")
    return p


def test_ingest_out_refuses_a_file_mmsim_did_not_write(tmp_path, capsys):
    msg = _lobster(tmp_path)
    theirs = tmp_path / "theirs.parquet"
    pq.write_table(pq.read_table(write_events(tmp_path / "x.parquet",
                                              IngestResult(_events(3), {"a": 1}, {})))
                   .replace_schema_metadata({}), theirs)
    before = theirs.read_bytes()
    for out in (theirs, tmp_path / "notes.txt", tmp_path / "adir"):
        if out.name == "notes.txt":
            out.write_text("keep me")
        if out.name == "adir":
            out.mkdir()
        assert main(["ingest", "lobster", str(msg), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mmsim: error: {out}:") and len(err.splitlines()) == 1
    assert theirs.read_bytes() == before and (tmp_path / "notes.txt").read_text() == "keep me"
    ours = tmp_path / "ours.parquet"
    assert main(["ingest", "lobster", str(msg), "--out", str(ours)]) == 0
    assert main(["ingest", "lobster", str(msg), "--out", str(ours)]) == 0  # ours: replaced
    assert len(read_events(ours)) == 3 and not (tmp_path / "ours.parquet.lock").exists()


def test_ingest_out_is_locked_while_in_use(tmp_path, capsys):
    from mmsim.results import claim_output

    msg = _lobster(tmp_path)
    with claim_output(tmp_path / "o.parquet", "parquet"):
        assert main(["ingest", "lobster", str(msg), "--out", str(tmp_path / "o.parquet")]) == 2
    assert "in use by another mmsim run" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()


# --- sweeps and model-market runs --------------------------------------------------------------


def test_sweep_out_refuses_a_user_folder(tmp_path):
    from mmsim.results import OutputError, OutputLockedError, claim_output
    from mmsim.sweep import run_sweep

    out = tmp_path / "mine"
    out.mkdir()
    (out / "data.csv").write_text("1,2")
    exp = REPO / "experiments" / "default.yaml"
    kw = {"grid": ["policy.name=nope"], "jobs": 0, "progress": False,
          "cache_dir": tmp_path / "c"}
    with pytest.raises(OutputError, match="data.csv"):
        run_sweep(exp, out=out, **kw)
    assert sorted(p.name for p in out.iterdir()) == ["data.csv"]
    s = tmp_path / "s"
    with claim_output(s, "sweep"), pytest.raises(OutputLockedError):
        run_sweep(exp, out=s, **kw)
    res = run_sweep(exp, out=s, **kw)  # an invalid point only: recorded, nothing run
    assert res.counts["failed"] == 1
    assert run_sweep(exp, out=s, **kw).counts["failed"] == 1  # an mmsim sweep: resumed
    assert not (tmp_path / "s.lock").exists()


def test_model_market_out_is_claimed_before_the_simulation(tmp_path, monkeypatch):
    import mmsim.modelmarket.run as mm
    from mmsim.results import OutputError

    def never(cfg):
        raise AssertionError("simulated before checking --out")

    monkeypatch.setattr(mm, "simulate", never)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "paper.pdf").write_bytes(b"%PDF")
    with pytest.raises(OutputError, match="paper.pdf"):
        mm.run_experiment(REPO / "experiments" / "as2008.yaml", out=out)
    assert (out / "paper.pdf").exists()


# --- data.gap_policy → read_binance ------------------------------------------------------------


def test_gap_policy_reaches_the_binance_reader(tmp_path, monkeypatch, capsys):
    import mmsim.data.binance as binance

    seen = []

    def fake_read_binance(paths, *, tick_size=None, lot_size=None, symbol=None,
                          gap_policy="error", **instrument_hints):
        seen.append(gap_policy)
        return IngestResult(_events(5), {"source": "binance", "book": "L2"}, {})

    monkeypatch.setattr(binance, "read_binance", fake_read_binance)
    root = tmp_path / "data"
    root.mkdir()
    (root / "btc.gz").write_bytes(b"capture")
    paths = []
    for policy in ("resync", "apply", "resync"):
        cfg = DataConfig(kind="binance", path="btc.gz", gap_policy=policy)
        paths.append(src_mod.open_dataset(cfg, root, tmp_path / "cache").path)
    assert seen == ["resync", "apply"]  # the third is the cached first
    assert paths[0] != paths[1] and paths[0] == paths[2]  # part of the cache key
    out = tmp_path / "b.parquet"
    assert main(["ingest", "binance", str(root / "btc.gz"), "--gap-policy", "apply",
                 "--out", str(out)]) == 0
    assert seen[-1] == "apply" and out.is_file()


def test_a_user_folder_named_like_the_partial_folder_survives(tmp_path):
    from mmsim.results import OutputError, RunWriter

    user = tmp_path / "run.partial"
    user.mkdir()
    (user / "thesis.tex").write_text("mine")
    with pytest.raises(OutputError, match="did not write"):
        RunWriter(tmp_path / "run")
    assert (user / "thesis.tex").read_text() == "mine"
    assert not (tmp_path / "run").exists()
    RunWriter(tmp_path / "other").abort()  # the lock of the refused run was released


def test_a_complete_cache_file_opens_while_another_process_holds_its_lock(tmp_path):
    """Sweep workers open the same cached dataset at once: a file that matches its hash
    record is used without queueing on the build lock (only a build or a check takes it)."""
    import threading

    cache = tmp_path / "cache"
    data = DataConfig(kind="synthetic", synthetic={"n_events": 2000})
    first = src_mod.open_dataset(data, None, cache)
    lock = store.FileLock(first.path.with_name(first.path.name + ".lock"))
    assert lock.acquire()  # as a worker checking or building it would
    got = []
    try:
        t = threading.Thread(target=lambda: got.append(src_mod.open_dataset(data, None, cache)),
                             daemon=True)
        t.start()
        t.join(60)
        assert got, "open_dataset queued behind the lock on a complete cache file"
    finally:
        lock.release()
    assert got[0].path == first.path and got[0].canonical_sha256 == first.canonical_sha256
    # a file that no longer matches its record is checked under the lock again
    os.utime(first.path, ns=(first.path.stat().st_atime_ns, first.path.stat().st_mtime_ns + 1))
    assert lock.acquire()
    got.clear()
    t = threading.Thread(target=lambda: got.append(src_mod.open_dataset(data, None, cache)),
                         daemon=True)
    t.start()
    t.join(2)
    assert not got  # waits for the lock
    lock.release()
    t.join(60)
    assert got and got[0].canonical_sha256 == first.canonical_sha256
