"""The resolve layer (issue "Engine core with named state and many instruments", "A resolve
layer"): every ``auto`` and every config string decided in :func:`mmsim.resolve.resolve`, into
a frozen :class:`~mmsim.resolve.EngineSpec`, without importing numba or the engine."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmsim.config import ConfigError, config_from_dict
from mmsim.data.errors import DataError
from mmsim.data.sources import Dataset
from mmsim.instruments import Instrument
from mmsim.resolve import (
    BookKind,
    EngineSpec,
    FeedMode,
    FillMode,
    LatencyModel,
    QueueModel,
    QuoteTif,
    ReplaceMode,
    book_kind,
    instrument_defaults,
    resolve,
    resolve_for_events,
)

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000_000_000
LAST = T0 + 3_600_000_000_000


def _cfg(**sections):
    raw = {"data": {"kind": "parquet", "path": "x.parquet"},
           "policy": {"name": "fixed_spread", "spread_bps": 2.0, "order_qty": 5}}
    for k, v in sections.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k] = {**raw[k], **v}
        else:
            raw[k] = v
    return config_from_dict(raw)


def _ds(kind="lobster", meta=None, path="x.parquet", ref=10_000, last=LAST):
    return Dataset(path=Path(path), kind=kind, meta=dict(meta or {}), report={},
                   n_events=10, first_ts=T0, last_ts=last, ref_price_tick=ref)


# --- each auto ----------------------------------------------------------------------------------
def test_queue_auto_is_fifo_on_l3_and_risk_averse_on_l2():
    l3 = resolve(_cfg(), _ds("lobster"))
    assert l3.queue.model is QueueModel.FIFO and not l3.queue.ladder_follows_touch
    assert l3.book is BookKind.L3
    for kind, meta in (("binance", {}), ("tardis", {}), ("parquet", {"book": "L2"})):
        l2 = resolve(_cfg(), _ds(kind, meta))
        assert l2.book is BookKind.L2, kind
        assert l2.queue.model is QueueModel.RISK_AVERSE and l2.queue.ladder_follows_touch
    power = resolve(_cfg(queue={"model": "power", "power_n": 3.0}), _ds("binance"))
    assert power.queue.model is QueueModel.POWER and power.queue.power_n == 3.0
    # an explicit model is kept on either kind of data
    assert resolve(_cfg(queue={"model": "log"}), _ds("lobster")).queue.model is QueueModel.LOG
    assert book_kind("databento", {}) is BookKind.L3


def test_feed_offset_auto_takes_the_readers_suggestion():
    meta = {"suggested_feed_offset_ns": 1_500_000_000}
    auto = resolve(_cfg(latency={"feed_nanos": None, "feed_offset_nanos": "auto"}),
                   _ds("binance", meta))
    assert auto.feed.mode is FeedMode.DATA_LOCAL_TS and auto.feed.nanos == 1_500_000_000
    none = resolve(_cfg(latency={"feed_nanos": None, "feed_offset_nanos": "auto"}),
                   _ds("binance"))
    assert none.feed.nanos == 0  # no suggestion: no offset
    fixed = resolve(_cfg(latency={"feed_nanos": None, "feed_offset_nanos": -7}),
                    _ds("binance", meta))
    assert fixed.feed.nanos == -7
    one_clock = resolve(_cfg(latency={"feed_nanos": 100_000, "feed_offset_nanos": "auto"}),
                        _ds("lobster", meta))
    assert one_clock.feed.mode is FeedMode.EXCHANGE_PLUS_LATENCY
    assert one_clock.feed.nanos == 100_000


def test_horizon_end_is_the_datasets_last_timestamp_and_none_is_none():
    assert resolve(_cfg(), _ds(last=LAST)).clocks.end_ts == LAST
    assert resolve(_cfg(engine={"horizon": "none"}), _ds()).clocks.end_ts is None
    spec = resolve_for_events(_cfg(), ref_price_tick=100, last_ts=LAST)
    assert spec.clocks.end_ts == LAST
    assert resolve_for_events(_cfg(), ref_price_tick=100).clocks.end_ts is None


def test_instrument_yaml_beats_reader_meta_beats_vendor_defaults():
    # databento's vendor defaults: ES, tick 0.25, lot 1, multiplier 50
    meta = {"symbol": "ESH4", "multiplier": 5.0, "tick_size": None}
    assert instrument_defaults("databento", meta) == {
        "symbol": "ESH4", "tick_size": 0.25, "lot_size": 1.0, "multiplier": 5.0}
    spec = resolve(_cfg(instrument={"multiplier": 20.0, "maker_fee_bps": -0.1}),
                   _ds("databento", meta))
    inst = spec.instrument
    assert inst.symbol == "ESH4"  # the reader's metadata over the vendor's default
    assert inst.tick_size == 0.25 and inst.lot_size == 1.0  # the vendor's default
    assert inst.multiplier == 20.0 and inst.maker_fee_bps == -0.1  # the YAML over both
    # no vendor defaults (binance): the reader's grid, else the Instrument's defaults
    b = resolve(_cfg(), _ds("binance", {"tick_size": 0.1, "lot_size": 0.001})).instrument
    assert (b.tick_size, b.lot_size, b.symbol) == (0.1, 0.001, Instrument().symbol)


def test_a_bad_merged_instrument_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match=r"field 'instrument.multiplier': must be > 0"):
        resolve(_cfg(), _ds("binance", {"multiplier": 0}))


def test_grid_scaling_and_the_ladder_centre_are_in_the_instruments_ticks(tmp_path):
    # data on a 0.25 grid, instrument on 0.05: every data tick is 5 instrument ticks
    spec = resolve(_cfg(instrument={"tick_size": 0.05}), _ds("databento", ref=400))
    g = spec.grid
    assert (g.tick_num, g.tick_den, g.lot_num, g.lot_den) == (5, 1, 1, 1)
    assert spec.ref_price_tick == 2000
    assert resolve(_cfg(), _ds("databento", ref=400)).grid.identity


def test_data_off_the_instruments_grid_is_a_data_error_naming_the_file(tmp_path):
    import numpy as np

    from mmsim.data.store import IngestResult, write_events
    from mmsim.dtypes import EVENT_DTYPE
    from mmsim.enums import EventFlag, EventKind

    ev = np.zeros(2, dtype=EVENT_DTYPE)
    for i, px in enumerate((400, 401)):  # 100.00 and 100.25
        ev[i] = (T0 + i, T0 + i, px, 1, i + 1, 0.0, EventKind.ADD, 1, EventFlag.LAST)
    p = write_events(tmp_path / "es.parquet", IngestResult(ev, {"tick_size": 0.25}, {}))
    cfg = _cfg(data={"path": "es.parquet"}, instrument={"tick_size": 0.5})
    with pytest.raises(DataError, match=r"es\.parquet: row 2, field 'price'"):
        resolve(cfg, _ds("databento", {"tick_size": 0.25}, path=p), data_root=tmp_path)


# --- strings to enums, quantities to lots -------------------------------------------------------
def test_every_config_string_is_mapped_to_its_enum():
    spec = resolve(_cfg(engine={"quote_tif": "gtc", "replace": "cancel_replace",
                                "decide_on_fill": False, "warmup_nanos": 5},
                        matching={"partial_fills": False},
                        latency={"model": "lognormal", "entry_sigma": 0.5}),
                   _ds())
    assert spec.orders.quote_tif is QuoteTif.GTC
    assert spec.orders.replace is ReplaceMode.CANCEL_REPLACE
    assert spec.orders.fills is FillMode.WHOLE_ORDER
    assert spec.latency.model is LatencyModel.LOGNORMAL
    assert spec.latency.vector[:7] == (1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 0.5)
    assert spec.clocks.decide_on_fill is False and spec.clocks.warmup_ns == 5
    d = resolve(_cfg(), _ds())
    assert (d.orders.quote_tif, d.orders.replace, d.orders.fills, d.latency.model) == (
        QuoteTif.POST_ONLY, ReplaceMode.MODIFY, FillMode.PARTIAL, LatencyModel.CONSTANT)


def test_limits_in_lots_and_kernels_with_their_parameter_vectors():
    cfg = _cfg(instrument={"lot_size": 0.5}, risk={"max_position_qty": 10.0,
                                                   "target_position_qty": -2.0},
               hedger={"name": "threshold", "threshold": 3})
    spec = resolve(cfg, _ds())
    assert spec.limits.max_position_lots == 20 and spec.limits.target_position_lots == -4
    assert resolve(_cfg(), _ds()).limits.max_position_lots is None
    assert spec.policy.name == "fixed_spread" and spec.policy.params[0] == 2.0
    assert spec.has_hedger and spec.hedger.name == "threshold"
    assert spec.hedger.params[0] == 3.0
    bare = resolve(_cfg(), _ds())
    assert not bare.has_hedger and bare.hedger.name == "none"


def test_interpolated_latency_series_is_read_from_the_data_root(tmp_path):
    (tmp_path / "lat.csv").write_text("request_ts,exchange_ts,response_ts\n"
                                      f"{T0},{T0 + 1000},{T0 + 3000}\n"
                                      f"{T0 + 10**9},{T0 + 10**9 + 3000},{T0 + 10**9 + 7000}\n")
    cfg = _cfg(latency={"model": "interpolated", "series_path": "lat.csv"})
    spec = resolve(cfg, _ds(), data_root=tmp_path)
    v = spec.latency.vector
    assert spec.latency.model is LatencyModel.INTERPOLATED
    assert spec.latency.series_path == "lat.csv"
    assert v[15:18] == (2.0, 2.0, 2.0)  # two rows for each action
    assert len(v) == 24 + 3 * 6
    with pytest.raises(DataError, match="not found"):
        resolve(cfg, _ds(), data_root=tmp_path / "elsewhere")


# --- the spec itself ----------------------------------------------------------------------------
def test_the_spec_is_frozen_hashable_and_resolve_is_pure():
    cfg = _cfg(hedger={"name": "threshold", "threshold": 3})
    a, b = resolve(cfg, _ds()), resolve(cfg, _ds())
    assert isinstance(a, EngineSpec)
    assert a == b and hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.seed = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.queue.model = QueueModel.LOG  # type: ignore[misc]
    assert isinstance(a.policy.params, tuple) and isinstance(a.latency.vector, tuple)
    assert resolve(_cfg(queue={"model": "log"}), _ds()) != a


def test_resolve_for_events_decides_the_autos_from_its_arguments():
    cfg = _cfg(latency={"feed_nanos": None, "feed_offset_nanos": "auto"})
    spec = resolve_for_events(cfg, ref_price_tick=123, book="L2",
                              suggested_feed_offset_ns=42,
                              instrument=Instrument(tick_size=0.5, lot_size=2.0))
    assert spec.queue.model is QueueModel.RISK_AVERSE and spec.feed.nanos == 42
    assert spec.ref_price_tick == 123 and spec.grid.identity
    assert (spec.instrument.tick_size, spec.instrument.lot_size) == (0.5, 2.0)
    over = resolve_for_events(_cfg(instrument={"lot_size": 4.0}), ref_price_tick=1,
                              instrument={"tick_size": 0.5, "lot_size": 2.0})
    assert (over.instrument.tick_size, over.instrument.lot_size) == (0.5, 4.0)
    with pytest.raises(ConfigError, match="book"):
        resolve_for_events(cfg, ref_price_tick=1, book="L4")


def test_resolve_imports_neither_numba_nor_the_engine():
    code = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        from mmsim.config import config_from_dict
        from mmsim.data.sources import Dataset
        from mmsim.resolve import resolve
        cfg = config_from_dict({{"data": {{"kind": "parquet", "path": "x.parquet"}},
                                "policy": {{"name": "avellaneda_stoikov", "gamma": 0.1,
                                            "k": 30.0, "order_qty": 5}},
                                "hedger": {{"name": "threshold", "threshold": 3}}}})
        ds = Dataset(path=Path("x.parquet"), kind="binance", meta={{"tick_size": 0.01}},
                     report={{}}, last_ts={LAST}, ref_price_tick=100)
        spec = resolve(cfg, ds)
        print(json.dumps([spec.queue.model.value,
                          sorted(m for m in sys.modules
                                 if m == "numba" or m.startswith("numba.")
                                 or m.startswith("mmsim.engine") or m.endswith(".nb"))]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    model, loaded = json.loads(r.stdout.splitlines()[-1])
    assert model == "risk_averse"
    assert loaded == [], f"resolve imported {loaded}"


def test_every_enum_member_has_a_kernel_code_and_the_engine_copies_the_spec():
    from mmsim.engine import backtest as bt
    from mmsim.engine import nb as enb
    from mmsim.enums import TimeInForce

    for table, enum in ((bt.QUEUE_CODES, QueueModel), (bt.LATENCY_CODES, LatencyModel),
                        (bt.QUOTE_TIF_CODES, QuoteTif), (bt.FEED_MODE_CODES, FeedMode),
                        (bt.REPLACE_CODES, ReplaceMode), (bt.FILL_MODE_CODES, FillMode)):
        assert set(table) == set(enum), enum
    spec = resolve(_cfg(queue={"model": "power", "power_n": 3.0},
                        engine={"quote_tif": "gtc", "replace": "cancel_replace"},
                        matching={"partial_fills": False}, risk={"max_position_qty": 7},
                        latency={"feed_nanos": None, "feed_offset_nanos": "auto"}),
                   _ds("binance", {"suggested_feed_offset_ns": 99}))
    eng = bt.Engine(spec)
    c = eng.cfg
    assert c["queue_model"] == enb.QUEUE_POWER and c["ladder_follows_touch"] == 1
    assert c["queue_power_n"] == 3.0
    assert c["quote_tif"] == TimeInForce.GTC and c["replace_mode"] == 1
    assert c["whole_fills"] == 1 and c["max_position_lots"] == 7
    assert c["feed_mode"] == 0 and c["feed_ns"] == 99
    assert c["end_ts"] == LAST and c["has_hedger"] == 0
    assert eng.pparams.tolist() == list(spec.policy.params)
    eng.pparams[0] = 9.0  # the engine's copy, not the spec's
    assert spec.policy.params[0] == 2.0
