"""Readers register themselves (:mod:`mmsim.data.registry`): the registry lists every format,
a format registered here (a tiny CSV reader written by the test) is usable from a config, by
auto-detection and from ``mmsim ingest`` with no other file edited, unknown kinds give one
line, and importing :mod:`mmsim.config` imports no reader."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from mmsim.cli import main
from mmsim.config import ConfigError, DataConfig, config_from_dict, load_config
from mmsim.data import registry as reg
from mmsim.data import sources
from mmsim.data.sources import READER_VERSION, dataset_for_config, open_dataset, read_raw
from mmsim.data.store import read_events, read_meta
from mmsim.enums import EventKind
from mmsim.instruments import DEFAULT_INSTRUMENTS

BUILTIN = ("synthetic", "lobster", "databento", "parquet", "binance", "binance_hist", "tardis",
           "bybit", "hftbacktest", "l3_csv")

TOY_READER = '''
"""A toy format: CSV rows ``ts_ns,side,price,qty,order_id`` (decimal price), all adds."""
import csv
from pathlib import Path

import numpy as np

from mmsim.data.errors import DataError
from mmsim.data.store import IngestResult
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventKind

CALLS = []


def read_toy(path, *extra, tick_size, lot_size):
    CALLS.append({"path": Path(path), "extra": [Path(p) for p in extra],
                  "tick_size": tick_size, "lot_size": lot_size})
    rows = list(csv.reader(Path(path).read_text().splitlines()))[1:]
    ev = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, (ts, side, price, qty, oid) in enumerate(rows):
        tick = round(float(price) / tick_size)
        if abs(tick * tick_size - float(price)) > 1e-9:
            raise DataError(path, i + 2, "price", f"{price} is off the {tick_size} grid")
        ev[i] = (int(ts), int(ts), tick, round(float(qty) / lot_size), int(oid), 0.0,
                 EventKind.ADD, 1 if side == "B" else -1, 1)
    meta = {"source": "toy", "symbol": "TOY", "clocks": 1, "tick_size": tick_size,
            "lot_size": lot_size}
    return IngestResult(ev, meta, {"rows": len(rows), "extra_files": len(extra)})
'''

TOY_CSV = "ts_ns,side,price,qty,order_id\n1000,B,100.25,2,1\n2000,S,100.75,3,2\n3000,B,100.50,1,3\n"


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Register the ``toy`` format (reader in a fresh module on ``sys.path``); removed after."""
    mod = f"toyfmt_{uuid.uuid4().hex[:8]}"
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / f"{mod}.py").write_text(textwrap.dedent(TOY_READER))
    monkeypatch.syspath_prepend(str(pkg))
    spec = reg.register_reader(reg.ReaderSpec(
        name="toy", reader=f"{mod}:read_toy", book="L2", description="toy CSV of adds",
        usage="TOY.csv [EXTRA.csv ...]", suffixes=(".toy.csv",), needs_grid=True,
        extra_files=(0, None), options=("tick_size", "lot_size"),
        instrument={"symbol": "TOY", "tick_size": 0.25, "lot_size": 1.0}))
    try:
        yield spec, mod
    finally:
        reg.unregister_reader("toy")
        sys.modules.pop(mod, None)


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "day1.toy.csv").write_text(TOY_CSV)
    (root / "notes.toy.csv").write_text(TOY_CSV)
    return root


def _cfg(data: dict, instrument: dict | None = None):
    return config_from_dict({"data": data, "instrument": instrument or {},
                             "policy": {"name": "fixed_spread", "spread_bps": 5}})


# --- the registry lists every reader ----------------------------------------------------------


def test_the_registry_lists_every_reader_with_what_it_is():
    assert reg.reader_names() == BUILTIN
    assert reg.reader_names("raw") == ("lobster", "databento", "binance", "binance_hist",
                                       "tardis", "bybit", "hftbacktest", "l3_csv")
    assert reg.reader_names("generated") == ("synthetic",)
    assert reg.reader_names("canonical") == ("parquet",)
    assert reg.known_kinds() == ("auto", *sorted(BUILTIN))
    import mmsim.data as data

    for spec in reg.list_readers("raw"):
        fn = spec.load()
        assert callable(fn) and getattr(data, fn.__name__) is fn  # the exported reader
    # what the runner's L2_KINDS said, and the vendor default instruments as they were
    assert {k for k in BUILTIN if reg.book_of(k) == "L2"} == {
        "binance", "tardis", "binance_hist", "bybit", "hftbacktest"}
    assert reg.book_of("parquet") == "L3" and reg.book_of("nobody-wrote-this") == "L3"
    assert reg.book_of("lobster", {"book": "L2"}) == "L2"
    assert dict(DEFAULT_INSTRUMENTS) == {
        "lobster": {"symbol": "LOBSTER", "tick_size": 0.01, "lot_size": 1.0},
        "databento": {"symbol": "ES", "tick_size": 0.25, "lot_size": 1.0, "multiplier": 50.0},
        "synthetic": {"symbol": "SYN", "tick_size": 0.01, "lot_size": 1.0},
    }
    assert DEFAULT_INSTRUMENTS.get("binance", {}) == {}
    assert reg.get_reader("binance-hist") is reg.get_reader("binance_hist")
    assert reg.get_reader("binance_hist").cli_name == "binance-hist"


def test_auto_detection_is_what_it_was():
    cases = {
        "lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv": "lobster",
        "databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst": "databento",
        "x.DBN": "databento",
        "binance/usdm/btcusdt_20230404.dat.gz": "binance",
        "binance/usdm/btcusdt_20240718.gz": "binance",
        "events.npz": "hftbacktest",
        "amzn.parquet": "parquet",
    }
    for path, kind in cases.items():
        assert DataConfig(path=path).resolved_kind() == kind
    for path in ("btcusdt_20240718.gz", "a_orderbook_1.csv", "x.csv"):
        with pytest.raises(ValueError, match=r"^data.kind: cannot tell the format of"):
            DataConfig(path=path).resolved_kind()


def test_a_bad_registration_is_refused_without_importing():
    with pytest.raises(ValueError, match="already registered"):
        reg.register_reader(reg.ReaderSpec(name="lobster", reader="x:y", book="L3",
                                           description="again"))
    for bad, what in [({"name": "Bad-Name"}, "name"), ({"reader": "no_colon"}, "reader"),
                      ({"options": ("speed",)}, "unknown option"),
                      ({"needs_grid": True}, "needs_grid"), ({"book": "L4"}, "book"),
                      ({"reader": None}, "needs a reader")]:
        kw = {"name": "ok", "reader": "nowhere_module:f", "book": "L2", "description": "d",
              **bad}
        with pytest.raises(ValueError, match=what):
            reg.ReaderSpec(**kw)
    assert "nowhere_module" not in sys.modules
    with pytest.raises(reg.UnknownReaderError, match="known: "):
        reg.unregister_reader("nope")


# --- a registered toy format, from the config, by suffix and from `mmsim ingest` -------------


def test_a_registered_format_is_usable_from_a_config(tmp_path, toy):
    spec, mod = toy
    root = _root(tmp_path)
    cfg = _cfg({"kind": "toy", "path": "day1.toy.csv", "files": ["notes.toy.csv"]},
               {"tick_size": 0.25, "lot_size": 1})
    assert mod not in sys.modules  # validated and configured: the reader not yet imported
    ds = dataset_for_config(cfg, root, tmp_path / "cache")
    calls = sys.modules[mod].CALLS
    assert len(calls) == 1 and calls[0]["tick_size"] == 0.25 and calls[0]["lot_size"] == 1
    assert calls[0]["extra"] == [root / "notes.toy.csv"]
    assert ds.kind == "toy" and ds.n_events == 3 and ds.cache_file
    assert ds.path.name.startswith("toy-") and set(ds.inputs) == {"day1.toy.csv",
                                                                  "notes.toy.csv"}
    ev = read_events(ds.path)
    assert ev["price_tick"].tolist() == [401, 403, 402] and (ev["kind"] == EventKind.ADD).all()
    # cached: the second open does not read again; the L2 book and default instrument follow
    assert dataset_for_config(cfg, root, tmp_path / "cache").path == ds.path
    assert len(calls) == 1
    assert reg.book_of(ds.kind, ds.meta) == "L2"
    assert DEFAULT_INSTRUMENTS["toy"] == {"symbol": "TOY", "tick_size": 0.25, "lot_size": 1.0}
    # the grid is required (the format says so), and bad rows are the reader's DataError
    with pytest.raises(ValueError, match=r"^toy: the tick size and lot size are required$"):
        open_dataset(DataConfig(kind="toy", path="day1.toy.csv"), root, tmp_path / "c2")
    with pytest.raises(ValueError, match="off the 0.2 grid"):
        dataset_for_config(_cfg({"kind": "toy", "path": "day1.toy.csv"},
                                {"tick_size": 0.2, "lot_size": 1}), root, tmp_path / "c3")


def test_a_registered_format_is_detected_by_its_suffix(tmp_path, toy):
    root = _root(tmp_path)
    data = DataConfig(path="day1.toy.csv")
    assert data.kind == "auto" and data.resolved_kind() == "toy"
    assert DataConfig(path="sub/DAY2.Toy.Csv").resolved_kind() == "toy"  # any case
    ds = open_dataset(data, root, tmp_path / "cache", grid_hints={"tick_size": 0.25,
                                                                  "lot_size": 1.0})
    assert ds.kind == "toy" and ds.n_events == 3
    # a second format claiming the same suffix makes the name ambiguous, not silently first
    reg.register_reader(reg.ReaderSpec(name="toy2", reader="x_mod:f", book="L3",
                                       description="d", suffixes=(".csv",)))
    try:
        with pytest.raises(ValueError, match=r"matches several formats \(toy, toy2\)"):
            data.resolved_kind()
    finally:
        reg.unregister_reader("toy2")


def test_a_registered_format_is_usable_from_mmsim_ingest(tmp_path, toy, capsys):
    spec, mod = toy
    root = _root(tmp_path)
    out = tmp_path / "toy.parquet"
    assert main(["ingest", "toy", str(root / "day1.toy.csv"), str(root / "notes.toy.csv"),
                 "--tick-size", "0.25", "--lot-size", "1", "--out", str(out)]) == 0
    got = capsys.readouterr()
    assert f"wrote 3 events to {out}" in got.out and '"extra_files": 1' in got.out
    assert sys.modules[mod].CALLS[-1]["extra"] == [root / "notes.toy.csv"]
    assert read_meta(out)[0]["source"] == "toy" and len(read_events(out)) == 3
    # its options appear in the help; an option it does not take is ignored, with a warning
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert "toy: TOY.csv [EXTRA.csv ...] (toy CSV of adds; L2)" in helptext
    assert ("binance, binance-hist, tardis, bybit, hftbacktest, l3-csv, toy: price grid"
            in helptext)
    assert main(["ingest", "toy", str(root / "day1.toy.csv"), "--tick-size", "0.25",
                 "--lot-size", "1", "--gap-policy", "apply", "--out", str(out)]) == 0
    assert "--gap-policy is not used by toy (ignored)" in capsys.readouterr().err
    # a trades file is not among its inputs
    assert main(["ingest", "toy", str(root / "day1.toy.csv"), "--tick-size", "0.25",
                 "--lot-size", "1", "--trades", str(root / "notes.toy.csv"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == "mmsim: error: ingest toy: --trades: this format takes no trades file\n"


def test_ingest_takes_both_spellings_and_checks_the_inputs(tmp_path, capsys):
    snap = tmp_path / "snap.csv"
    snap.write_text("x\n")
    for vendor in ("binance-hist", "binance_hist"):  # one file where two are needed
        assert main(["ingest", vendor, str(snap), "--out", str(tmp_path / "o.parquet")]) == 2
        err = capsys.readouterr().err
        assert err == "mmsim: error: ingest binance-hist: give SNAPSHOT.csv UPDATES.csv\n"
    assert main(["ingest", "lobster", str(snap), str(snap), str(snap),
                 "--out", str(tmp_path / "o.parquet")]) == 2
    assert capsys.readouterr().err == ("mmsim: error: ingest lobster: give MESSAGE.csv "
                                       "[ORDERBOOK.csv]\n")
    with pytest.raises(SystemExit) as e:
        main(["ingest", "nosuch", str(snap), "--out", str(tmp_path / "o.parquet")])
    assert e.value.code == 2 and "invalid choice: 'nosuch'" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()


# --- unknown kinds: one line ------------------------------------------------------------------


def test_an_unknown_kind_is_a_one_line_config_error(tmp_path, toy):
    p = tmp_path / "exp.yaml"
    p.write_text("data: {kind: lobstr, path: a.csv}\n"
                 "policy: {name: fixed_spread, spread_bps: 5}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg == (f"{p}: field 'data.kind': unknown data kind 'lobstr' (known: auto, "
                   "binance, binance_hist, bybit, databento, hftbacktest, l3_csv, lobster, "
                   "parquet, synthetic, tardis, toy)")
    assert "\n" not in msg
    assert load_config(p, ["data.kind=binance-hist"]).data.kind == "binance_hist"
    with pytest.raises(ConfigError, match=r"field 'data.kind': unknown data kind 'x' .* "
                                          r"\(from --set data.kind=x\)"):
        load_config(p, ["data.kind=x"])
    with pytest.raises(ConfigError, match=r"field 'data.path': required unless data.kind is "
                                          r"'synthetic'$"):
        _cfg({"kind": "toy"})
    for kind in ("nope", "synthetic", "parquet"):
        with pytest.raises(ValueError, match=rf"^cannot ingest data kind '{kind}' \(readers: "
                                             r"lobster, databento, .*, toy\)$"):
            read_raw(kind, tmp_path / "x")


def test_companion_files_a_format_does_not_take_are_refused(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for name in ("e.mbo.dbn.zst", "b.csv"):
        (root / name).write_bytes(b"x")
    with pytest.raises(ValueError, match=r"^databento: give FILE.dbn.zst \(it takes no "
                                         r"orderbook file\)$"):
        open_dataset(DataConfig(kind="databento", path="e.mbo.dbn.zst", orderbook="b.csv"),
                     root, tmp_path / "cache")
    with pytest.raises(ValueError, match=r"^tardis: give .* \(0 to 1 extra file\(s\) "
                                         r"expected, got 2\)$"):
        open_dataset(DataConfig(kind="tardis", path="b.csv", files=("b.csv", "b.csv")),
                     root, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before hashing or caching anything


# --- the cache key did not move -------------------------------------------------------------


def test_the_cache_key_is_the_one_before_the_registry(tmp_path, monkeypatch):
    """The key formula of READER_VERSION 4, written out: every instrument hint for every
    format, the gap policy for Binance only."""
    import numpy as np

    from mmsim.data.store import IngestResult
    from mmsim.dtypes import EVENT_DTYPE

    ev = np.zeros(4, dtype=EVENT_DTYPE)
    ev["exch_ts"] = ev["local_ts"] = np.arange(4) * 1000
    ev["kind"], ev["side"], ev["price_tick"], ev["qty"] = EventKind.ADD, 1, 100, 1
    ev["order_id"] = np.arange(4) + 1

    def old_key(kind, files, hints):
        inputs = {f.name: sources.sha256_file(f) for f in files}
        return hashlib.sha256(json.dumps({"in": inputs, "kind": kind, "v": READER_VERSION,
                                          "hints": hints}, sort_keys=True).encode()
                              ).hexdigest()[:20]

    import mmsim.data.binance as binance

    monkeypatch.setattr(binance, "read_binance", lambda paths, **kw: IngestResult(
        ev, {"source": "binance"}, {}))
    root = tmp_path / "data"
    root.mkdir()
    msg = root / "T_2012-06-21_34200000_57600000_message_1.csv"
    msg.write_text("34200.000000001,1,11,100,1000000,1\n34200.5,1,12,50,1000100,-1\n")
    (root / "a.gz").write_bytes(b"1")
    (root / "b.gz").write_bytes(b"2")
    cfg = _cfg({"path": msg.name}, {"symbol": "AMZN", "tick_size": 0.01})
    ds = dataset_for_config(cfg, root, tmp_path / "cache")
    assert ds.path.name == "lobster-" + old_key(
        "lobster", [msg], {"symbol": "AMZN", "tick_size": 0.01}) + ".parquet"
    cfg = _cfg({"kind": "binance", "path": "a.gz", "files": ["b.gz"], "gap_policy": "resync"},
               {"tick_size": 0.1, "lot_size": 0.001})
    ds = dataset_for_config(cfg, root, tmp_path / "cache")
    assert ds.path.name == "binance-" + old_key(
        "binance", [root / "a.gz", root / "b.gz"],
        {"tick_size": 0.1, "lot_size": 0.001, "gap_policy": "resync"}) + ".parquet"


# --- importing the config imports no reader ---------------------------------------------------


def test_importing_the_config_imports_no_reader():
    readers = sorted({s.reader.partition(":")[0] for s in reg.list_readers()
                      if isinstance(s.reader, str)})
    code = textwrap.dedent(f"""
        import sys
        import mmsim.config, mmsim.instruments, mmsim.data, mmsim.data.registry, mmsim.cli
        from mmsim.config import DataConfig
        cfg = mmsim.config.config_from_dict({{
            "data": {{"path": "x_message_1.csv"}},
            "policy": {{"name": "fixed_spread", "spread_bps": 5}}}})
        assert cfg.data.resolved_kind() == "lobster"
        dict(mmsim.instruments.DEFAULT_INSTRUMENTS)
        mmsim.cli.build_parser()
        heavy = {readers!r} + ["mmsim.data.sources", "mmsim.data.store", "pandas", "polars",
                               "numba", "pyarrow"]
        print(sorted(m for m in heavy if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
