"""More than one instrument per experiment: the ``instruments`` config section, the hedger's
target instrument by name, the resolved legs (:attr:`mmsim.resolve.EngineSpec.legs`) and the
further instruments' datasets (:func:`mmsim.data.sources.datasets_for_config`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsim.config import (
    ConfigError,
    OtherInstrumentConfig,
    config_from_dict,
    instrument_index,
    load_config,
)
from mmsim.data.errors import DataError
from mmsim.data.sources import Dataset, datasets_for_config
from mmsim.hedgers.registry import _HEDGERS, register_hedger
from mmsim.kernels import KernelSpec, Param, Params
from mmsim.resolve import (
    BookKind,
    FeedMode,
    FillMode,
    LegSpec,
    QueueModel,
    resolve,
    resolve_for_events,
)

REPO = Path(__file__).resolve().parents[1]
#: ``cfg.digest()`` of experiments/default.yaml before instruments existed: a
#: single-instrument config must keep its identity (run folders, sweep caches)
DEFAULT_DIGEST = "46bd58ff6b56a0f5250338a0c8633fe962b1541000ec54300b440b732ab347d9"
SHIPPED_DIGESTS = {
    "binance_btcusdt_2023_funding.yaml":
        "0f96c952f9b6655f8d9043a7036a311448b0f7bf08c4c4c02667b1c5806dcf56",
    "binance_btcusdt_glft.yaml":
        "547d557bbc128ddf702deea6f6f8c4e042be7e3317eb0e65cceb88990b4a6931",
    "databento_es_fixed.yaml":
        "3aeb1e71a9beeb36377fcb7aded6a3bdf3bbcea659c4e6e16a4da185fad120f7",
    "default.yaml": DEFAULT_DIGEST,
    "lobster_amzn_as.yaml": "9a0ae982815df32e6879110b3a64a51d8eedbd3b67da09786d168a2811ba7d53",
}
PERP = {"name": "PERP", "data": {"kind": "parquet", "path": "perp.parquet"},
        "instrument": {"tick_size": 0.1, "lot_size": 0.001}}


def _raw(**sections):
    raw = {"data": {"kind": "parquet", "path": "spot.parquet"},
           "instrument": {"symbol": "BTCUSDT", "tick_size": 0.01, "lot_size": 0.00001},
           "policy": {"name": "fixed_spread", "spread_bps": 2.0, "order_qty": 5}}
    raw.update(sections)
    return raw


def _error(raw) -> str:
    with pytest.raises(ConfigError) as e:
        config_from_dict(raw, source="exp.yaml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("exp.yaml: ")
    return msg


@pytest.fixture
def target_hedger():
    """A hedger declaring an ``instrument`` parameter (registered for the test only; its
    kernel is never imported)."""
    spec = KernelSpec(
        "test_target", "mmsim.hedgers.nb:no_hedger_nb",
        Params("TestTargetParams",
               instrument=Param(1.0, "", "instrument the hedges go to", ge=0, integer=True),
               threshold=Param(None, "lots", "hedge beyond this", ge=0)),
        doc="test hedger", kind="hedger")
    register_hedger(spec)
    yield "test_target"
    _HEDGERS.pop("test_target", None)


# --- config -------------------------------------------------------------------------------------
def test_single_instrument_digests_are_unchanged():
    for name, digest in SHIPPED_DIGESTS.items():
        cfg = load_config(REPO / "experiments" / name)
        assert cfg.instruments == () and cfg.instrument_name is None
        assert "instruments" not in cfg.as_dict() and "instrument_name" not in cfg.as_dict()
        assert cfg.digest() == digest, name


def test_two_instruments_load_and_round_trip():
    cfg = config_from_dict(_raw(instrument_name="SPOT", instruments=[
        {**PERP, "latency": {"entry_nanos": 5}, "queue": {"model": "log"},
         "partial_fills": False, "max_position_qty": 0.5}]))
    (o,) = cfg.instruments
    assert isinstance(o, OtherInstrumentConfig)
    assert o.name == "PERP" and o.data.path == "perp.parquet" and o.instrument["tick_size"] == 0.1
    assert o.latency.entry_nanos == 5 and o.queue.model == "log" and o.partial_fills is False
    assert cfg.instrument_names() == ["SPOT", "PERP"]
    again = config_from_dict(cfg.as_dict())
    assert again == cfg and again.digest() == cfg.digest()
    # the new fields enter the digest when used
    assert cfg.digest() != config_from_dict(_raw()).digest()
    assert config_from_dict(_raw(instrument_name="X")).digest() != config_from_dict(
        _raw()).digest()


def test_instrument_name_defaults_to_the_yaml_symbol_at_load():
    assert config_from_dict(_raw(instruments=[PERP])).instrument_names() == ["BTCUSDT", "PERP"]
    raw = _raw(instruments=[PERP])
    del raw["instrument"]["symbol"]
    assert config_from_dict(raw).instrument_names() == [None, "PERP"]


def test_duplicate_names_name_the_field():
    msg = _error(_raw(instruments=[{**PERP, "name": "BTCUSDT"}]))
    assert msg == "exp.yaml: field 'instruments.0.name': duplicate instrument name 'BTCUSDT'"
    msg = _error(_raw(instrument_name="A", instruments=[PERP, PERP]))
    assert msg == "exp.yaml: field 'instruments.1.name': duplicate instrument name 'PERP'"
    assert config_from_dict(_raw(instrument_name="A", instruments=[{**PERP, "name": "BTCUSDT"}]))


def test_bad_entries_name_their_fields():
    msg = _error(_raw(instruments=[{"name": "P", "data": {"kind": "parquet"},
                                    "instrument": {"tick_size": 0}, "bogus": 1}]))
    assert "field 'instruments.0.data.path': required" in msg
    assert "field 'instruments.0.instrument.tick_size': must be > 0, got 0" in msg
    assert "field 'instruments.0.bogus': unknown field" in msg
    assert "field 'instruments.0.name': required" in _error(
        _raw(instruments=[{"data": PERP["data"]}]))
    assert "field 'instruments.0.max_position_qty': must be >= 0" in _error(
        _raw(instruments=[{**PERP, "max_position_qty": -1}]))
    four = [{**PERP, "name": f"P{i}"} for i in range(4)]
    assert _error(_raw(instruments=four)) == (
        "exp.yaml: field 'instruments': at most 3 further instruments (4 in all), got 4")
    assert config_from_dict(_raw(instruments=four[:3]))


def test_hedger_instrument_by_name_maps_to_its_index(target_hedger):
    raw = _raw(instrument_name="SPOT", instruments=[PERP, {**PERP, "name": "PERP2"}])
    for ref, idx in (("PERP", 1), ("PERP2", 2), ("SPOT", 0), (2, 2), ("1", 1)):
        cfg = config_from_dict({**raw, "hedger": {"name": target_hedger, "threshold": 1,
                                                  "instrument": ref}})
        assert cfg.hedger.params()["instrument"] == idx
    # the mapped config round-trips (the index is stored)
    cfg = config_from_dict({**raw, "hedger": {"name": target_hedger, "threshold": 1,
                                              "instrument": "PERP"}})
    assert config_from_dict(cfg.as_dict()) == cfg
    # and the parameter vector carries the index
    spec = resolve_for_events(cfg, ref_price_tick=100, others=[
        {"ref_price_tick": 10}, {"ref_price_tick": 20}])
    assert spec.hedger.params[spec.hedger.spec.index.instrument] == 1.0


def test_unknown_instrument_name_or_index_out_of_range_is_an_error(target_hedger):
    raw = _raw(instruments=[PERP])
    msg = _error({**raw, "hedger": {"name": target_hedger, "threshold": 1,
                                    "instrument": "ETHUSDT"}})
    assert msg == ("exp.yaml: field 'hedger.instrument': unknown instrument 'ETHUSDT' "
                   "(known: 'BTCUSDT' (0), 'PERP' (1))")
    msg = _error({**raw, "hedger": {"name": target_hedger, "threshold": 1, "instrument": 2}})
    assert msg.startswith("exp.yaml: field 'hedger.instrument': instrument index must be a "
                          "whole number in 0..1")
    # the default index (1) needs a second instrument
    assert "field 'hedger.instrument'" in _error(
        _raw(hedger={"name": target_hedger, "threshold": 1}))
    # a hedger without an ``instrument`` parameter: its own check reports it
    assert "field 'hedger.instrument': unknown parameter of 'threshold'" in _error(
        {**raw, "hedger": {"name": "threshold", "threshold": 1, "instrument": "PERP"}})


def test_instrument_index_function():
    names = ["SPOT", "PERP"]
    assert instrument_index("PERP", names) == 1 and instrument_index(0, names) == 0
    assert instrument_index(1.0, names) == 1 and instrument_index("1", names) == 1
    for bad in ("ETH", 2, -1, 0.5, True):
        with pytest.raises(ValueError):
            instrument_index(bad, names)
    with pytest.raises(ValueError, match="has no name at load"):
        instrument_index("X", [None, "PERP"])


def test_cross_delta_takes_an_instrument_name_if_registered():
    from mmsim.hedgers.registry import hedger_names

    if "cross_delta" not in hedger_names():
        pytest.skip("the cross_delta hedger is not registered yet")
    cfg = config_from_dict(_raw(instruments=[PERP], hedger={
        "name": "cross_delta", "instrument": "PERP", "beta": 1.0, "threshold": 1}))
    assert cfg.hedger.params()["instrument"] == 1


# --- resolve ------------------------------------------------------------------------------------
def test_resolve_for_events_with_others_gives_the_legs():
    cfg = config_from_dict(_raw(
        latency={"entry_nanos": 2_000_000, "feed_nanos": 100},
        risk={"max_position_qty": 0.1},
        instruments=[{**PERP, "latency": {"entry_nanos": 7_000, "response_nanos": 9_000},
                      "max_position_qty": 0.5, "partial_fills": False}]))
    spec = resolve_for_events(cfg, ref_price_tick=6_000_000, book="L2", others=[
        {"ref_price_tick": 600_000, "book": "L2", "instrument": {"symbol": "BTCUSDT"}}])
    assert len(spec.legs) == 2 and all(isinstance(x, LegSpec) for x in spec.legs)
    q, p = spec.legs
    assert spec.instrument_name == q.name == "BTCUSDT" and p.name == "PERP"
    assert q.instrument == spec.instrument and q.queue == spec.queue and q.feed == spec.feed
    assert (q.instrument.tick_size, q.instrument.lot_size) == (0.01, 0.00001)
    assert (p.instrument.tick_size, p.instrument.lot_size) == (0.1, 0.001)
    assert q.ref_price_tick == 6_000_000 and p.ref_price_tick == 600_000
    assert q.queue.model is p.queue.model is QueueModel.RISK_AVERSE  # L2 auto
    assert p.book is BookKind.L2 and p.queue.ladder_follows_touch
    assert q.max_position_lots == 10_000 and p.max_position_lots == 500
    assert q.fills is FillMode.PARTIAL and p.fills is FillMode.WHOLE_ORDER
    assert q.latency.vector[0] == 2_000_000 and p.latency.vector[:6] == (
        7_000, 7_000, 7_000, 9_000, 9_000, 9_000)
    # the other's own latency section decides its feed (feed_nanos None: the data's local_ts)
    assert q.feed.mode is FeedMode.EXCHANGE_PLUS_LATENCY
    assert p.feed.mode is FeedMode.DATA_LOCAL_TS
    hash(spec)


def test_others_fall_back_to_top_level_latency_and_default_queue():
    cfg = config_from_dict(_raw(latency={"entry_nanos": 3_000}, queue={"model": "log"},
                                matching={"partial_fills": False}, instruments=[PERP]))
    spec = resolve_for_events(cfg, ref_price_tick=100, book="L2",
                              others=[{"ref_price_tick": 10, "book": "L3"}])
    q, p = spec.legs
    assert q.queue.model is QueueModel.LOG and p.queue.model is QueueModel.FIFO  # L3 auto
    assert p.latency == q.latency and p.fills is FillMode.WHOLE_ORDER
    assert p.max_position_lots is None


def test_resolve_for_events_others_without_config_entries():
    cfg = config_from_dict(_raw())
    spec = resolve_for_events(cfg, ref_price_tick=100, others=[
        {"name": "PERP", "ref_price_tick": 10, "book": "L2",
         "instrument": {"tick_size": 0.5, "lot_size": 2}}])
    q, p = spec.legs
    assert p.name == "PERP" and p.instrument.tick_size == 0.5 and p.queue.model is \
        QueueModel.RISK_AVERSE and p.latency == q.latency
    with pytest.raises(ValueError, match="'name'"):
        resolve_for_events(cfg, ref_price_tick=100, others=[{"ref_price_tick": 10}])
    with pytest.raises(ConfigError, match="duplicate instrument name 'BTCUSDT'"):
        resolve_for_events(cfg, ref_price_tick=100,
                           others=[{"name": "BTCUSDT", "ref_price_tick": 10}])


def test_single_instrument_spec_has_one_leg():
    spec = resolve_for_events(config_from_dict(_raw()), ref_price_tick=100)
    assert spec.others == () and len(spec.legs) == 1
    assert spec.legs[0].name == spec.instrument_name == "BTCUSDT"


def test_resolve_needs_one_dataset_per_instrument_and_checks_resolved_names():
    cfg = config_from_dict(_raw(instruments=[PERP]))
    with pytest.raises(ValueError, match="1 entries of instruments"):
        resolve(cfg, _ds())
    with pytest.raises(ValueError, match="1 entries of instruments"):
        resolve_for_events(cfg, ref_price_tick=100)
    # the quoted name known only from the data may still collide
    raw = _raw(instruments=[{**PERP, "name": "SYMB"}])
    del raw["instrument"]["symbol"]
    with pytest.raises(ConfigError, match=r"instruments\.0\.name': duplicate instrument name "
                                          r"'SYMB'.*set instrument_name"):
        resolve(config_from_dict(raw), _ds(meta={"symbol": "SYMB"}), others=[_ds()])
    raw["instrument_name"] = "Q"
    spec = resolve(config_from_dict(raw), _ds(meta={"symbol": "SYMB"}), others=[_ds()])
    assert [x.name for x in spec.legs] == ["Q", "SYMB"]
    # a bad merged instrument of an entry names its field
    bad = _raw(instruments=[{**PERP, "instrument": {}}])
    with pytest.raises(ConfigError, match=r"field 'instruments\.0\.instrument\.lot_size'"):
        resolve(config_from_dict(bad), _ds(), others=[_ds(meta={"lot_size": -1})])


def _ds(meta=None, last=2_000):
    return Dataset(path=Path("x.parquet"), kind="parquet", meta=dict(meta or {}), report={},
                   n_events=10, first_ts=1_000, last_ts=last, ref_price_tick=500)


# --- datasets -----------------------------------------------------------------------------------
def test_datasets_for_config_checks_every_input_before_any_ingest(tmp_path):
    cfg = config_from_dict(_raw(instruments=[
        {"name": "A", "data": {"kind": "binance", "path": "a.gz"}},
        {"name": "B", "data": {"kind": "binance", "path": "missing.gz"}}]))
    (tmp_path / "a.gz").write_bytes(b"not gzip")  # would fail only when read
    with pytest.raises(DataError) as e:
        datasets_for_config(cfg, data_root=tmp_path, cache_dir=tmp_path / "cache")
    assert "missing.gz" in str(e.value) and "data file not found" in str(e.value)
    assert not (tmp_path / "cache").exists()
    assert datasets_for_config(config_from_dict(_raw()), data_root=tmp_path) == []


@pytest.mark.realdata
def test_real_spot_quoted_with_the_usdm_perp_as_instrument_1(data_root, tmp_path):
    cfg = config_from_dict(_raw(
        data={"kind": "binance", "path": "binance/spot/btcusdt_20240808.gz",
              "files": ["binance/spot/btcusdt_20240809.gz"]},
        # the spot depth stream has quantities on 1e-6 (e.g. 25.426189): the reader's lot
        instrument={"symbol": "BTCUSDT", "tick_size": 0.01},
        risk={"max_position_qty": 0.1},
        latency={"feed_nanos": None, "feed_offset_nanos": "auto"},
        instruments=[{"name": "BTCUSDT-PERP",
                      "data": {"kind": "binance", "path": "binance/usdm/btcusdt_20240808.gz"},
                      "instrument": {"tick_size": 0.1, "lot_size": 0.001},
                      "max_position_qty": 0.05}]))
    from mmsim.data.sources import dataset_for_config

    cache = tmp_path / "cache"
    spot = dataset_for_config(cfg, data_root, cache)
    others = datasets_for_config(cfg, data_root, cache)
    assert len(others) == 1 and others[0].meta["market"] == "usdm"
    spec = resolve(cfg, spot, data_root=data_root, others=others)
    q, p = spec.legs
    assert (q.name, p.name) == ("BTCUSDT", "BTCUSDT-PERP")
    assert q.instrument.tick_size == 0.01 and q.instrument.lot_size == spot.meta["lot_size"]
    assert (p.instrument.tick_size, p.instrument.lot_size) == (0.1, 0.001)
    assert q.grid.identity and p.grid.identity
    assert q.book is p.book is BookKind.L2
    assert q.queue.model is p.queue.model is QueueModel.RISK_AVERSE
    assert q.max_position_lots == round(0.1 / q.instrument.lot_size)
    assert p.max_position_lots == 50
    # both ladders centred near the same BTC price, each in its own ticks
    assert 40_000 < q.ref_price_tick * 0.01 < 80_000
    assert abs(p.ref_price_tick * 0.1 - q.ref_price_tick * 0.01) < 500
    # feed offsets from each reader (auto on the top level; the perp inherits it)
    assert q.feed.nanos == spot.meta["suggested_feed_offset_ns"]
    assert p.feed.nanos == others[0].meta["suggested_feed_offset_ns"]
    # the horizon is the quoted dataset's end
    assert spec.clocks.end_ts == spot.last_ts
