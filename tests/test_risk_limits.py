"""Risk limits of the engine (MODELS.md §10) on hand-built event streams: each limit trips at
a known decision, writes a ``risk_on`` / ``risk_off`` row with its reason to the orders log,
and is counted in the metrics (``n_risk_<reason>``)."""

from __future__ import annotations

from functools import partial

import engine_harness
import numpy as np
import pytest
from engine_harness import MS, T0, Harness

from mmsim.config import ConfigError
from mmsim.enums import EventKind as K
from mmsim.enums import OrderEvent, RiskReason, TimeInForce
from mmsim.metrics import compute_metrics
from mmsim.resolve import resolve_for_events
from mmsim.results import equity_table, fills_table, orders_table

BOOK = [  # t_ms, kind, side, price, qty, id: bid 9999, ask 10005 (mid 100.02)
    (0, K.ADD, 1, 9999, 100, 1),
    (0, K.ADD, -1, 10005, 100, 2),
]
#: the market falls 99 ticks at 160 ms (mid 99.03)
DROP = [
    (160, K.DELETE, 1, 9999, 100, 1),
    (160, K.DELETE, -1, 10005, 100, 2),
    (160, K.ADD, 1, 9900, 100, 3),
    (160, K.ADD, -1, 9906, 100, 4),
]


def _ms(ts):
    return int((int(ts) - T0) // MS)


def _risk_rows(h):
    """(t_ms, 'on'/'off', reason, side) of the risk rows of the orders log."""
    o = h.all_orders()
    out = []
    for r in o[(o["event"] == OrderEvent.RISK_ON) | (o["event"] == OrderEvent.RISK_OFF)]:
        out.append((_ms(r["local_ts"]), "on" if r["event"] == OrderEvent.RISK_ON else "off",
                    int(r["reason"]), int(r["side"])))
    return out


def _quote_sends(h, event=OrderEvent.SUBMIT):
    """(t_ms, side, price_tick, qty) of the quote (non-hedge) requests of kind ``event``."""
    o = h.all_orders()
    o = o[(o["event"] == event) & (o["is_hedge"] == 0)]
    return [(_ms(r["local_ts"]), int(r["side"]), int(r["price_tick"]), int(r["qty"]))
            for r in o]


def _metrics(h):
    inst = h.inst
    return compute_metrics(fills_table(h.all_fills(), inst).to_pandas(),
                           equity_table(np.concatenate(h.equity), inst).to_pandas(),
                           orders_table(h.all_orders(), inst).to_pandas())


def _positions(h):
    return [int(p) for p in h.all_fills()["position"]]


def test_notional_limit_cuts_then_stops_the_side_that_adds():
    """N_max = 1000 at mid 100.02: 9 lots. The 10-lot quotes go out cut to 9; after the bid
    fills (9 lots) the bid side is not quoted (risk_on, side +1) while the ask, which now
    reduces |q|, may grow back to 10 lots; when it sells them (q = −1) the limit releases."""
    h = Harness(params={"bid_tick": 10000, "bid_qty": 10, "ask_tick": 10004, "ask_qty": 10},
                risk={"max_notional": 1000.0})
    h.feed(BOOK + [
        (150, K.ADD, -1, 10000, 20, 30),  # a seller takes our 9-lot bid
        (150.5, K.DELETE, -1, 10000, 20, 30),
        (250, K.ADD, 1, 10004, 20, 31),  # a buyer takes our 10-lot ask
        (250.5, K.DELETE, 1, 10004, 20, 31),
        (450, K.ADD, -1, 10006, 1, 20),
    ], final=True)
    sends = _quote_sends(h)
    assert sends[:2] == [(100, 1, 10000, 9), (100, -1, 10004, 9)]
    assert _positions(h) == [9, -1]
    rows = _risk_rows(h)
    assert rows == [(151, "on", RiskReason.NOTIONAL_LIMIT, 1),
                    (251, "off", RiskReason.NOTIONAL_LIMIT, 0)]
    # no bid between the trigger and the release
    assert not [s for s in sends if 151 <= s[0] < 251 and s[1] == 1]
    assert [s for s in sends if s[0] == 251 and s[1] == 1]
    assert _metrics(h)["n_risk_notional_limit"] == 1


def test_soft_limit_widens_the_side_that_adds_inventory():
    """q_soft 5, q_max 20, w 3: at q = 10 the bid moves away by 3·(10 − 5)/15 = 1 half
    spread (2 ticks): 10000 → 9998; the ask stays."""
    h = Harness(params={"bid_tick": 10000, "bid_qty": 10, "ask_tick": 10004, "ask_qty": 10},
                risk={"max_position_qty": 20, "soft_position_qty": 5, "soft_widen_frac": 3.0})
    h.feed(BOOK + [(150, K.ADD, -1, 10000, 10, 30), (150.5, K.DELETE, -1, 10000, 10, 30),
                   (250, K.ADD, -1, 10006, 1, 20)], final=True)
    assert _positions(h) == [10]
    assert _risk_rows(h) == [(151, "on", RiskReason.SOFT_LIMIT, 1)]
    bids = [s for s in _quote_sends(h) if s[1] == 1]
    assert bids == [(100, 1, 10000, 10), (151, 1, 9998, 10)]
    asks = [s for s in _quote_sends(h) + _quote_sends(h, OrderEvent.MODIFY) if s[1] == -1]
    assert asks == [(100, -1, 10004, 10)]


@pytest.mark.parametrize(("limit", "reason"), [("max_loss", RiskReason.PNL_STOP),
                                               ("max_drawdown", RiskReason.DRAWDOWN_STOP)])
def test_pnl_stop_and_drawdown_cancel_quotes_and_flatten(limit, reason):
    """Long 10 at 100.00, then the mid falls to 99.03: equity −9.7 (peak +0.2). With L or
    D = 5 the 200 ms decision stops: the ask quote is cancelled, a market order sells the 10
    lots, and nothing is quoted for the rest of the run."""
    h = Harness(params={"bid_tick": 10000, "bid_qty": 10, "ask_tick": 10010, "ask_qty": 5},
                risk={"max_position_qty": 10, limit: 5.0, "flatten_on_stop": True})
    h.feed(BOOK + [(150, K.ADD, -1, 10000, 10, 30), (150.5, K.DELETE, -1, 10000, 10, 30)]
           + DROP + [(600, K.ADD, -1, 9907, 1, 20)], final=True)
    assert _risk_rows(h) == [(200, "on", reason, 0)]
    o = h.all_orders()
    hedge = o[(o["event"] == OrderEvent.SUBMIT) & (o["is_hedge"] == 1)]
    assert [(_ms(r["local_ts"]), int(r["side"]), int(r["qty"]), int(r["tif"]))
            for r in hedge] == [(200, -1, 10, TimeInForce.MARKET)]
    assert _positions(h) == [10, 0]
    assert h.all_fills()["price_tick"][-1] == 9900
    assert [s for s in _quote_sends(h, OrderEvent.CANCEL)] == [(200, -1, 10010, 5)]
    assert not [s for s in _quote_sends(h) if s[0] >= 200]
    m = _metrics(h)
    assert m[f"n_risk_{'pnl_stop' if limit == 'max_loss' else 'drawdown_stop'}"] == 1


def test_pnl_stop_resumes_after_the_cool_down_with_the_levels_reset():
    """Stopped at 200 ms without flattening; the 250 ms cool-down ends at 450 ms, so the
    500 ms decision releases the stop with the equity then as the new start and peak (which
    keeps it from tripping again at once) and quotes the ask again."""
    h = Harness(params={"bid_tick": 10000, "bid_qty": 10, "ask_tick": 10010, "ask_qty": 5},
                risk={"max_position_qty": 10, "max_loss": 5.0, "stop_cooldown_s": 0.25})
    h.feed(BOOK + [(150, K.ADD, -1, 10000, 10, 30), (150.5, K.DELETE, -1, 10000, 10, 30)]
           + DROP + [(700, K.ADD, -1, 9907, 1, 20)], final=True)
    assert _risk_rows(h) == [(200, "on", RiskReason.PNL_STOP, 0),
                             (500, "off", RiskReason.PNL_STOP, 0)]
    assert _positions(h) == [10]  # no flattening asked
    st = h.engine.st
    assert st["risk_equity_start"] == pytest.approx(-1000.0 + 10 * 99.03)
    assert st["risk_equity_peak"] == pytest.approx(-1000.0 + 10 * 99.03)
    sends = _quote_sends(h)
    assert not [x for x in sends if 200 <= x[0] < 500]
    assert [x for x in sends if x[0] == 500] == [(500, -1, 10010, 5)]
    assert _metrics(h)["n_risk_pnl_stop"] == 1


@pytest.mark.parametrize("action", ["pause", "widen"])
def test_volatility_breaker_trips_on_a_jump_and_releases(action):
    """A 10-tick jump of the mid at 250 ms: the 300 ms clock sample gives a fast variance of
    ~500 ticks²/s against a slow ~8, above k_σ² = 4 times: the breaker trips at 300 ms. Pause
    cancels both quotes until it falls back below; widen doubles the spread around the
    quotes' centre 10005: 9990/10020 → 9975/10035."""
    h = Harness(params={"bid_tick": 9990, "bid_qty": 10, "ask_tick": 10020, "ask_qty": 10},
                risk={"vol_breaker_ratio": 2.0, "vol_fast_halflife_s": 0.1,
                      "vol_slow_halflife_s": 10.0, "vol_breaker_action": action})
    h.feed(BOOK + [
        (250, K.DELETE, 1, 9999, 100, 1), (250, K.DELETE, -1, 10005, 100, 2),
        (250, K.ADD, 1, 10009, 100, 3), (250, K.ADD, -1, 10015, 100, 4),
        (1500, K.ADD, -1, 10016, 1, 20),
    ], final=True)
    rows = _risk_rows(h)
    assert rows[0] == (300, "on", RiskReason.VOL_BREAKER, 0)
    assert rows[1][1:] == ("off", RiskReason.VOL_BREAKER, 0)
    t_off = rows[1][0]
    assert 300 < t_off <= 1500
    if action == "pause":
        assert sorted(_quote_sends(h, OrderEvent.CANCEL)) == [(300, -1, 10020, 10),
                                                              (300, 1, 9990, 10)]
        assert not [s for s in _quote_sends(h) if 300 <= s[0] < t_off]
        assert sorted(s[:2] for s in _quote_sends(h) if s[0] == t_off) == [(t_off, -1),
                                                                           (t_off, 1)]
    else:
        mods = _quote_sends(h, OrderEvent.MODIFY)
        assert sorted(m[1:3] for m in mods if m[0] == 300) == [(-1, 10035), (1, 9975)]
        assert sorted(m[1:3] for m in mods if m[0] == t_off) == [(-1, 10020), (1, 9990)]
    assert _metrics(h)["n_risk_vol_breaker"] == 1


def test_session_end_stops_quoting_then_flattens(monkeypatch):
    """Horizon 1000 ms, t_stop 0.5 s, t_flat 0.3 s: quotes are cancelled at the 500 ms
    decision and the long position is sold at the 700 ms one."""
    monkeypatch.setattr(engine_harness, "resolve_for_events",
                        partial(resolve_for_events, last_ts=T0 + 1000 * MS))
    h = Harness(params={"bid_tick": 10000, "bid_qty": 10, "ask_tick": 10010, "ask_qty": 5},
                risk={"max_position_qty": 10, "stop_before_end_s": 0.5,
                      "flatten_before_end_s": 0.3},
                engine={"horizon": "end"})
    h.feed(BOOK + [(150, K.ADD, -1, 10000, 10, 30), (150.5, K.DELETE, -1, 10000, 10, 30),
                   (1000, K.ADD, -1, 10006, 1, 20)], final=True)
    assert _risk_rows(h) == [(500, "on", RiskReason.SESSION_STOP, 0),
                             (700, "on", RiskReason.SESSION_FLATTEN, 0)]
    assert _quote_sends(h, OrderEvent.CANCEL) == [(500, -1, 10010, 5)]
    assert not [s for s in _quote_sends(h) if s[0] >= 500]
    assert _positions(h) == [10, 0]
    assert _ms(h.all_fills()["local_ts"][-1]) == 702
    m = _metrics(h)
    assert (m["n_risk_session_stop"], m["n_risk_session_flatten"]) == (1, 1)


def test_session_end_needs_a_horizon():
    with pytest.raises(ConfigError, match="risk.stop_before_end_s"):
        Harness(risk={"stop_before_end_s": 1.0}, params={"bid_qty": 0, "ask_qty": 0})


def test_no_risk_keys_without_risk_events():
    h = Harness(params={"bid_tick": 10000, "bid_qty": 10, "ask_tick": 0, "ask_qty": 0})
    h.feed(BOOK + [(250, K.ADD, -1, 10006, 1, 20)], final=True)
    assert not [k for k in _metrics(h) if k.startswith("n_risk_")]
    assert int(h.engine.cfg["risk_on"]) == 0


@pytest.mark.parametrize("action", ["pause", "widen"])
def test_order_flow_pause_stops_the_side_the_flow_runs_against(action):
    """50 lots join the best bid at 150 ms: the order-flow imbalance (1 s window) is +50
    lots from then on, above the 30-lot threshold, so from the 200 ms decision the ask (the
    side buying pressure runs over) is paused, or moved twice as far from the quotes' centre
    10005 (10020 → 10035); the bid stays. When the 150 ms bucket leaves the window the pause
    ends and the ask returns to 10020."""
    h = Harness(params={"bid_tick": 9990, "bid_qty": 10, "ask_tick": 10020, "ask_qty": 10},
                signals={"flow_window_s": 1.0, "flow_buckets": 10},
                risk={"ofi_pause_qty": 30, "ofi_action": action})
    h.feed(BOOK + [
        (150, K.ADD, 1, 9999, 50, 3),
        (2000, K.ADD, -1, 10016, 1, 20),
    ], final=True)
    rows = _risk_rows(h)
    assert rows[0] == (200, "on", RiskReason.OFI_PAUSE, -1)
    assert rows[1][1:] == ("off", RiskReason.OFI_PAUSE, 0)
    t_off = rows[1][0]
    assert 1100 <= t_off <= 1300
    assert len(rows) == 2
    if action == "pause":
        assert _quote_sends(h, OrderEvent.CANCEL) == [(200, -1, 10020, 10)]
        assert [s for s in _quote_sends(h) if s[0] > 100] == [(t_off, -1, 10020, 10)]
    else:
        mods = _quote_sends(h, OrderEvent.MODIFY)
        assert mods == [(200, -1, 10035, 10), (t_off, -1, 10020, 10)]
        assert not _quote_sends(h, OrderEvent.CANCEL)
    assert _metrics(h)["n_risk_ofi_pause"] == 1


def test_order_flow_pause_needs_the_signals_section():
    with pytest.raises(ConfigError, match="field 'risk.ofi_pause_qty': .*signals"):
        Harness(params={"bid_tick": 9990, "bid_qty": 10, "ask_tick": 10020, "ask_qty": 10},
                risk={"ofi_pause_qty": 30})
