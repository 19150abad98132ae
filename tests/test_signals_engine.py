"""The market signals wired into the engine (issue 10): the policy's ctx block, recording on
the equity clock, the ``signals:`` config section, and a real-data smoke run."""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
import yaml
from engine_harness import MS, T0, Harness

import mmsim
from mmsim.config import SIGNAL_COLUMNS, ConfigError, config_from_dict
from mmsim.contracts import CTX_SIZE, POLICY_SIG, Ctx
from mmsim.dtypes import SIGNAL_RECORD_NAMES
from mmsim.enums import EventKind as K
from mmsim.enums import OrderEvent
from mmsim.policies.registry import KernelSpec, register_policy
from mmsim.results import load_signals
from mmsim.signals import SignalCtx
from mmsim.signals.microprice import MicroPriceTable
from mmsim.signals.table import load_microprice_adjust, save_microprice_table

EXP = Path(__file__).parents[1] / "experiments"

#: what the probe policy keeps per call, from state[1 + PROBE.SIZE·n]
_SEEN = ("TIME_S", "OBI", "OFI_QTY", "BUY_RATE_HZ", "SELL_RATE_HZ", "MICRO_TICK")
_MAX_CALLS = 32


@numba.njit(POLICY_SIG, cache=True)
def _signal_probe_nb(ctx, params, state, out):
    """Records (time, OBI, OFI, buy rate, sell rate, micro-price) at each call; quotes
    nothing."""
    n = int(state[0])
    if n < _MAX_CALLS:
        b = 1 + 6 * n
        state[b] = ctx[Ctx.TIME_S]
        state[b + 1] = ctx[Ctx.SIGNALS0 + SignalCtx.OBI]
        state[b + 2] = ctx[Ctx.SIGNALS0 + SignalCtx.OFI_QTY]
        state[b + 3] = ctx[Ctx.SIGNALS0 + SignalCtx.BUY_RATE_HZ]
        state[b + 4] = ctx[Ctx.SIGNALS0 + SignalCtx.SELL_RATE_HZ]
        state[b + 5] = ctx[Ctx.SIGNALS0 + SignalCtx.MICRO_TICK]
    state[0] = n + 1
    return 0


register_policy(KernelSpec("test_signal_probe", _signal_probe_nb, {},
                           state_size=1 + len(_SEEN) * _MAX_CALLS, doc="test only"))


def _seen(h: Harness) -> pd.DataFrame:
    st = h.engine.pstate
    n = min(int(st[0]), _MAX_CALLS)
    rows = st[1: 1 + len(_SEEN) * n].reshape(n, len(_SEEN))
    df = pd.DataFrame(rows, columns=list(_SEEN))
    df["t_ms"] = np.round(df["TIME_S"] * 1000).astype(int)
    return df.set_index("t_ms")


# local = exchange + 50 ms. Exchange times (ms) and, applied locally at +50 ms:
#   0   bid 9999 x10, ask 10001 x4        (first top of book: no OFI term)
#   120 bid 9998 x6                        e = 10 - 10 - 4 + 4 = 0
#   160 bid 9999 +5 (15)                   e = 15 - 10 - 4 + 4 = +5
#   260 ask 10001 +3 (7)                   e = 15 - 15 - 7 + 4 = -3
#   330 trade, resting ask (buyer-initiated)
STREAM = [
    (0, K.ADD, 1, 9999, 10, 1), (0, K.ADD, -1, 10001, 4, 2),
    (120, K.ADD, 1, 9998, 6, 3),
    (160, K.ADD, 1, 9999, 5, 4),
    (260, K.ADD, -1, 10001, 3, 5),
    (330, K.TRADE, -1, 10001, 2, 0),
    (500, K.ADD, 1, 9990, 1, 6),
]


def _table(tmp_path: Path, suffix: str = ".npz") -> tuple[Path, np.ndarray]:
    g = np.array([[-0.3, -0.6], [0.3, 0.6]])
    t = MicroPriceTable(adjust_tick=g, g1_tick=g, n_obs=np.ones((2, 2), np.int64),
                        clock_ns=MS, lag=1, start_ts=0, end_ts=1, n_samples=2,
                        n_transitions=1, n_terms=6, max_move_tick=1.0)
    return save_microprice_table(t, tmp_path / f"table{suffix}"), g


def test_the_policy_sees_obi_ofi_and_rates_of_the_delayed_book(tmp_path):
    path, g = _table(tmp_path)
    h = Harness(policy="test_signal_probe", latency={"feed_nanos": 50 * MS},
                signals={"microprice_table": str(path)})
    h.feed(STREAM, final=True)
    seen = _seen(h)
    # decisions every 100 ms from t0 + 100 ms; the local book lags by 50 ms
    assert list(seen.index[:4]) == [100, 200, 300, 400]
    obi = seen["OBI"]
    assert obi[100] == pytest.approx((10 - 4) / 14)
    assert obi[200] == pytest.approx((16 - 4) / 20)  # 9998 arrived at 170, 9999 +5 not yet
    assert obi[300] == pytest.approx((21 - 4) / 25)
    assert obi[400] == pytest.approx((21 - 7) / 28)
    ofi = seen["OFI_QTY"]
    assert [ofi[t] for t in (100, 200, 300, 400)] == [0.0, 0.0, 5.0, 2.0]
    # one buyer-initiated trade (local 380 ms) over the 1 s window since the first event
    # (local 50 ms): 1 / 0.35 s at 400 ms
    assert seen["BUY_RATE_HZ"][300] == 0.0
    assert seen["BUY_RATE_HZ"][400] == pytest.approx(1 / 0.35)
    assert seen["SELL_RATE_HZ"][400] == 0.0
    # micro-price: spread 2 ticks, I = 10/14 → bucket 1 of 2: mid + G[1, 1]
    assert seen["MICRO_TICK"][100] == pytest.approx(10000 + g[1, 1])
    assert h.engine.sig.shape == (0,)  # not recorded


def test_without_the_section_the_signal_slots_are_nan():
    h = Harness(policy="test_signal_probe", latency={"feed_nanos": 50 * MS})
    h.feed(STREAM, final=True)
    seen = _seen(h)
    assert len(seen) >= 4
    assert seen[["OBI", "OFI_QTY", "BUY_RATE_HZ", "MICRO_TICK"]].isna().all().all()
    assert CTX_SIZE == Ctx.SIGNALS0 + SignalCtx.SIZE
    assert "signals" not in h.cfg.as_dict()


QUOTING = [
    (0, K.ADD, 1, 9999, 10, 1), (0, K.ADD, -1, 10001, 10, 2),
    (150, K.ADD, -1, 10000, 3, 3),  # crosses our bid at 10000: fills
    (260, K.EXECUTE, -1, 10000, 3, 3),
    (300, K.ADD, 1, 10000, 5, 4),
    (420, K.TRADE, 1, 9999, 4, 0),
    (700, K.ADD, 1, 9998, 2, 5),
]


def _frames(h: Harness):
    return (pd.DataFrame(h.all_fills()), pd.DataFrame(h.all_orders()),
            pd.DataFrame(np.concatenate(h.equity)))


class _RecordingHarness(Harness):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.signals = []

    def sink(self, f, o, e, signals=None):
        super().sink(f, o, e)
        if signals is not None:
            self.signals.append(signals)


def test_signals_on_or_recorded_leave_fills_orders_equity_unchanged():
    params = {"bid_tick": 10000, "bid_qty": 2, "ask_tick": 10002, "ask_qty": 2}
    ref = Harness(params=params, latency={"feed_nanos": 20 * MS})
    ref.feed(QUOTING, final=True)
    on = Harness(params=params, latency={"feed_nanos": 20 * MS}, signals={})
    on.feed(QUOTING, final=True)
    rec = _RecordingHarness(params=params, latency={"feed_nanos": 20 * MS},
                            signals={"record": True})
    rec.feed(QUOTING, final=True)
    a = _frames(ref)
    assert len(a[0]) > 0  # the quotes traded
    for other in (on, rec):
        for x, y in zip(a, _frames(other), strict=True):
            pd.testing.assert_frame_equal(x, y)
    assert rec.signals and not on.engine.sig.shape[0]


def test_recording_writes_one_row_per_equity_sample():
    h = _RecordingHarness(policy="test_signal_probe", latency={"feed_nanos": 50 * MS},
                          signals={"record": True, "names": ["obi", "ofi_qty"]})
    h.feed(STREAM, final=True)
    sig = np.concatenate(h.signals)
    eq = np.concatenate(h.equity)
    assert sig.dtype.names == ("ts", "obi", "ofi_qty", "instrument")
    np.testing.assert_array_equal(sig["ts"], eq["ts"])  # the equity clock (one instrument)
    t_ms = (sig["ts"] - T0) // MS
    assert list(t_ms[:6]) == [0, 100, 200, 300, 400, 500]
    obi = dict(zip(t_ms.tolist(), sig["obi"].tolist(), strict=True))
    ofi = dict(zip(t_ms.tolist(), sig["ofi_qty"].tolist(), strict=True))
    assert np.isnan(obi[0])  # nothing reached the local book at t0
    assert obi[100] == pytest.approx(6 / 14) and obi[400] == pytest.approx(0.5)
    assert ofi[300] == 5.0 and ofi[400] == 2.0
    # the decisions saw the same values (recording does not move the signals' clocks)
    seen = _seen(h)
    assert seen["OBI"][400] == obi[400] and seen["OFI_QTY"][300] == ofi[300]


def test_the_config_section():
    base = {"data": {"kind": "synthetic"}, "policy": {"name": "static"}}
    assert SIGNAL_COLUMNS == SIGNAL_RECORD_NAMES
    assert tuple(n.upper() for n in SIGNAL_RECORD_NAMES) == SignalCtx._fields[:-1]
    cfg = config_from_dict(base)
    assert cfg.signals is None and "signals" not in cfg.as_dict()
    on = config_from_dict({**base, "signals": {"clock_s": 1, "flow_window_s": 10,
                                               "flow_buckets": 100}})
    assert on.digest() != cfg.digest()
    from mmsim.resolve import _signals

    s = _signals(on, Path("."))
    assert (s.clock_ns, s.flow_bucket_ns, s.flow_n_buckets) == (10**9, 10**8, 100)
    for bad, field in (({"names": ["obi", "spread"]}, "signals.names.1"),
                       ({"flow_buckets": 257}, "signals.flow_buckets"),
                       ({"kyle_intervals": 1}, "signals.kyle_intervals"),
                       ({"obi_levels": 0}, "signals.obi_levels"),
                       ({"names": ["obi", "obi"]}, "signals.names"),
                       ({"record": "maybe"}, "signals.record"),
                       ({"clock": 1}, "signals.clock")):
        with pytest.raises(ConfigError, match=f"field '{field}'"):
            config_from_dict({**base, "signals": bad})
    with pytest.raises(ConfigError, match="field 'signals.microprice_table'.*no such"):
        Harness(signals={"microprice_table": "/nonexistent/table.npz"})


def test_microprice_table_files_round_trip(tmp_path):
    for suffix in (".npz", ".json"):
        path, g = _table(tmp_path, suffix)
        np.testing.assert_array_equal(load_microprice_adjust(path), g)
    bad = tmp_path / "t.json"
    bad.write_text('{"adjust_tick": [[1.0]]}')
    with pytest.raises(ValueError, match="t.json: adjust_tick must be"):
        load_microprice_adjust(bad)
    csv = tmp_path / "t.csv"
    csv.write_text("1,2\n")
    with pytest.raises(ValueError, match="t.csv: a micro-price table is a .npz or .json"):
        load_microprice_adjust(csv)


@pytest.mark.realdata
def test_binance_btcusdt_run_with_signals(data_root, tmp_path):
    raw = yaml.safe_load((EXP / "binance_btcusdt_glft.yaml").read_text())
    raw["data"].pop("files", None)  # 2024-07-18 only
    raw["signals"] = {"record": True, "clock_s": 1, "kyle_intervals": 60,
                      "flow_window_s": 10, "flow_buckets": 100}
    raw["engine"]["equity_interval_nanos"] = 1_000_000_000
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    run = mmsim.backtest(cfg, data_root=data_root, out=tmp_path / "run",
                         cache_dir=tmp_path / "cache")
    assert "signals.parquet" in run.manifest["files"]
    sig = load_signals(tmp_path / "run")
    eq = run.equity
    assert len(sig) == len(eq) and (sig["ts"].to_numpy() == eq["ts"].to_numpy()).all()
    assert list(sig.columns) == ["ts", *SIGNAL_RECORD_NAMES, "instrument"]
    late = sig.iloc[len(sig) // 4:]  # after the windows filled
    for col in ("obi", "ofi_qty", "kyle_lambda_tick", "buy_rate_hz", "sell_rate_hz",
                "vol_tick"):
        assert np.isfinite(late[col]).mean() > 0.95, col
    assert late["obi"].between(-1, 1).all()
    assert (late["buy_rate_hz"] > 0).any() and (late["sell_rate_hz"] > 0).any()
    assert late["micro_tick"].isna().all()  # no table given
    # the same run without the section: identical fills and equity
    raw.pop("signals")
    cfg.write_text(yaml.safe_dump(raw))
    ref = mmsim.backtest(cfg, data_root=data_root, out=tmp_path / "ref",
                         cache_dir=tmp_path / "cache")
    pd.testing.assert_frame_equal(ref.fills, run.fills)
    pd.testing.assert_frame_equal(ref.equity, run.equity)
    assert load_signals(tmp_path / "ref") is None


def _first_quotes(h: Harness) -> dict[int, float]:
    o = h.all_orders()
    sub = o[o["event"] == OrderEvent.SUBMIT]
    t0 = sub["local_ts"].min()
    first = sub[sub["local_ts"] == t0]
    return {int(s): float(p) for s, p in zip(first["side"], first["price_tick"], strict=True)}


def test_a_policy_quotes_around_the_micro_price_with_ref_micro(tmp_path):
    path, g = _table(tmp_path)
    quotes = {}
    for ref in ("mid", "micro"):
        h = Harness(policy="fixed_spread", params={"spread_bps": 20, "ref": ref},
                    latency={"feed_nanos": 50 * MS}, signals={"microprice_table": str(path)})
        h.feed(STREAM, final=True)
        quotes[ref] = _first_quotes(h)
    # at 100 ms the local book is bid 9999 x10 / ask 10001 x4: mid 10000, micro 10000 + G[1, 1]
    # = 10000.6; the half spread 10 bps of $100 is 10 ticks
    assert quotes["mid"] == {1: 9990.0, -1: 10010.0}
    assert g[1, 1] == pytest.approx(0.6)
    assert quotes["micro"] == {1: 9990.0, -1: 10011.0}


def test_ref_micro_without_a_micro_price_table_is_a_config_error():
    with pytest.raises(ConfigError, match="field 'policy.ref': 'micro'.*microprice_table"):
        Harness(policy="fixed_spread", params={"spread_bps": 20, "ref": "micro"})
    with pytest.raises(ConfigError, match="field 'policy.ref'"):
        Harness(policy="avellaneda_stoikov", params={"gamma": 0.1, "k": 1.0, "ref": "micro"},
                signals={})
