"""Fill-or-kill orders, the ``quoting:`` options (inventory-dependent size, minimum quote
life, refresh threshold, placement against the touch), the should-quote rules (MODELS.md §4,
seed 004) and the multi-level ladder (seed 003), each on a hand-built event stream."""

from __future__ import annotations

import numpy as np
import pytest
from engine_harness import MS, T0, Harness

from mmsim.enums import EventKind as K
from mmsim.enums import OrderEvent, Reject, RiskReason, TimeInForce
from mmsim.instruments import Instrument

BOOK = [  # bid 9999 x100, ask 10005 x100 and 10006 x100
    (0, K.ADD, 1, 9999, 100, 1),
    (0, K.ADD, -1, 10005, 100, 2),
    (0, K.ADD, -1, 10006, 100, 3),
]
QUOTES = {"bid_tick": 10000, "bid_qty": 10, "ask_tick": 10004, "ask_qty": 10}


def _ms(ts):
    return int((int(ts) - T0) // MS)


def _sends(h, event=OrderEvent.SUBMIT):
    o = h.all_orders()
    o = o[(o["event"] == event) & (o["is_hedge"] == 0)]
    return [(_ms(r["local_ts"]), int(r["side"]), int(r["price_tick"]), int(r["qty"]))
            for r in o]


def _risk_on(h):
    o = h.all_orders()
    return [(_ms(r["local_ts"]), int(r["reason"]), int(r["side"]))
            for r in o[o["event"] == OrderEvent.RISK_ON]]


# ---- fill-or-kill ------------------------------------------------------------------------
@pytest.mark.parametrize(("qty", "filled"), [(150, [(10005, 100), (10006, 50)]), (250, [])])
def test_fill_or_kill_fills_whole_or_nothing(qty, filled):
    """A FOK buy at 10006: 200 lots are there up to its limit, so 150 fill (two levels)
    and 250 fill nothing: acked, then expired with reason no_liquidity. (The position limit
    keeps the policy from buying again after the fill: the replayed book is not changed.)"""
    h = Harness(params={"bid_tick": 10006, "bid_qty": qty, "ask_tick": 0, "ask_qty": 0},
                engine={"quote_tif": "fok"}, risk={"max_position_qty": qty})
    h.feed(BOOK + [(150, K.ADD, -1, 10007, 1, 20)], final=True)
    f = h.all_fills()
    assert [(int(p), int(q)) for p, q in zip(f["price_tick"], f["qty"], strict=True)] == filled
    o = h.all_orders()
    assert set(o["tif"]) == {TimeInForce.FOK}
    events = [int(e) for e in o["event"]]
    if filled:
        assert events == [OrderEvent.SUBMIT, OrderEvent.ACK, OrderEvent.FILL, OrderEvent.FILL]
    else:
        assert events == [OrderEvent.SUBMIT, OrderEvent.ACK, OrderEvent.EXPIRE]
        assert o["reason"][-1] == Reject.NO_LIQUIDITY and o["leaves_qty"][-1] == 0
        assert h.engine.st["position"] == 0


def test_fill_or_kill_respects_its_limit_price():
    # 150 lots at a 10005 limit: only 100 are there at or below it
    h = Harness(params={"bid_tick": 10005, "bid_qty": 150, "ask_tick": 0, "ask_qty": 0},
                engine={"quote_tif": "fok"}, risk={"max_position_qty": 150})
    h.feed(BOOK + [(150, K.ADD, -1, 10007, 1, 20)], final=True)
    assert len(h.all_fills()) == 0


def test_flatten_with_fill_or_kill():
    """A PnL stop flattening with FOK orders priced 1 tick through the touch: the 10 lots
    sell at the new bid 9900 in one go."""
    h = Harness(params={"bid_tick": 10000, "bid_qty": 10, "ask_tick": 0, "ask_qty": 0},
                risk={"max_position_qty": 10, "max_loss": 5.0, "flatten_on_stop": True,
                      "flatten_tif": "fok", "flatten_slippage_ticks": 1})
    h.feed(BOOK + [(150, K.ADD, -1, 10000, 10, 30), (150.5, K.DELETE, -1, 10000, 10, 30),
                   (160, K.DELETE, 1, 9999, 100, 1), (160, K.ADD, 1, 9900, 100, 4),
                   (160, K.DELETE, -1, 10005, 100, 2), (160, K.DELETE, -1, 10006, 100, 3),
                   (160, K.ADD, -1, 9906, 100, 5), (300, K.ADD, -1, 9907, 1, 20)], final=True)
    o = h.all_orders()
    hedge = o[(o["is_hedge"] == 1) & (o["event"] == OrderEvent.SUBMIT)]
    assert [(int(r["tif"]), int(r["price_tick"]), int(r["qty"])) for r in hedge] == [
        (TimeInForce.FOK, 9899, 10)]
    assert [int(p) for p in h.all_fills()["position"]] == [10, 0]


# ---- quote management -------------------------------------------------------------------
def _fill_bid(h, extra=()):
    h.feed(BOOK + [(150, K.ADD, -1, 10000, 10, 30), (150.5, K.DELETE, -1, 10000, 10, 30),
                   *extra, (450, K.ADD, -1, 10007, 1, 20)], final=True)


def test_inventory_dependent_size_shrinks_the_side_that_adds():
    # q_max 20, a = 1: at q = 10 the new bid is 10·(1 − 10/20) = 5 lots (the room is 10)
    h = Harness(params=QUOTES, risk={"max_position_qty": 20},
                quoting={"size_inventory_factor": 1.0})
    _fill_bid(h)
    bids = [s for s in _sends(h) if s[1] == 1]
    assert bids == [(100, 1, 10000, 10), (151, 1, 10000, 5)]
    # the ask, which reduces |q|, keeps its size
    assert [s for s in _sends(h, OrderEvent.MODIFY) if s[1] == -1] == []


def test_minimum_quote_life_keeps_a_young_quote():
    """The policy moves its bid at 150 ms; with a 250 ms minimum life the quote sent at
    100 ms is first moved by the 400 ms decision (without: at 200 ms)."""
    for life, first in ((0, 200), (250 * MS, 400)):
        h = Harness(params=QUOTES, quoting={"min_quote_life_nanos": life})
        h.feed(BOOK + [(140, K.ADD, -1, 10007, 1, 21)])
        h.set_param("bid_tick", 9998)
        h.feed([(500, K.ADD, -1, 10007, 1, 20)], final=True)
        mods = [s for s in _sends(h, OrderEvent.MODIFY) if s[1] == 1]
        assert mods[0] == (first, 1, 9998, 10), life


def test_refresh_threshold_keeps_the_queue_place_for_small_moves():
    """Threshold 2 ticks: a 2-tick move of the target leaves the bid where it is, a 3-tick
    move moves it."""
    h = Harness(params=QUOTES, quoting={"refresh_threshold_ticks": 2})
    h.feed(BOOK + [(140, K.ADD, -1, 10007, 1, 21)])
    h.set_param("bid_tick", 9998)
    h.feed([(240, K.ADD, -1, 10007, 1, 22)])  # the 200 ms decision: 2 ticks, kept
    h.set_param("bid_tick", 9997)
    h.feed([(340, K.ADD, -1, 10007, 1, 20)], final=True)
    assert _sends(h, OrderEvent.MODIFY) == [(300, 1, 9997, 10)]


@pytest.mark.parametrize(("placement", "bid", "ask"), [("policy", 9990, 10020),
                                                        ("join", 9999, 10005),
                                                        ("improve", 10000, 10004),
                                                        ("behind", 9997, 10007)])
def test_placement_against_the_touch(placement, bid, ask):
    # touch 9999 / 10005 (6 ticks: room to improve); behind by 2 ticks
    h = Harness(params={"bid_tick": 9990, "bid_qty": 10, "ask_tick": 10020, "ask_qty": 10},
                quoting={"placement": placement, "behind_ticks": 2})
    h.feed(BOOK + [(150, K.ADD, -1, 10007, 1, 20)], final=True)
    assert sorted(_sends(h)) == [(100, -1, ask, 10), (100, 1, bid, 10)]


def test_improve_joins_when_the_spread_is_too_narrow():
    h = Harness(params={"bid_tick": 9990, "bid_qty": 10, "ask_tick": 10020, "ask_qty": 10},
                quoting={"placement": "improve"})
    h.feed([(0, K.ADD, 1, 9999, 100, 1), (0, K.ADD, -1, 10001, 100, 2),
            (150, K.ADD, -1, 10007, 1, 20)], final=True)
    assert sorted(_sends(h)) == [(100, -1, 10001, 10), (100, 1, 9999, 10)]


# ---- should-quote rules ------------------------------------------------------------------
def test_skip_below_the_break_even_spread():
    """Maker fee 2.5 bps: break-even 2·2.5 bps of 100.02 = 5.0 ticks + margin 1 bps (1.0
    tick) = 6.0 ticks. The 6-tick market spread is quoted; at 150 ms it narrows to 5 and
    both quotes are cancelled."""
    h = Harness(params=QUOTES, instrument=Instrument(tick_size=0.01, lot_size=1.0,
                                                     maker_fee_bps=2.5),
                quoting={"skip_below_break_even": True, "break_even_margin_bps": 0.99})
    h.feed(BOOK + [(150, K.ADD, 1, 10000, 5, 9), (250, K.ADD, -1, 10007, 1, 20)],
           final=True)
    assert _risk_on(h) == [(200, RiskReason.BREAK_EVEN_SPREAD, 0)]
    assert sorted(s[:2] for s in _sends(h, OrderEvent.CANCEL)) == [(200, -1), (200, 1)]


def test_skip_the_side_at_its_inventory_limit():
    h = Harness(params=QUOTES, risk={"max_position_qty": 10},
                quoting={"skip_at_inventory_limit": True})
    _fill_bid(h)
    assert _risk_on(h) == [(151, RiskReason.INVENTORY_AT_LIMIT, 1)]
    assert [s for s in _sends(h) if s[1] == 1] == [(100, 1, 10000, 10)]


def test_skip_when_volatility_is_above_the_threshold():
    """Volatility starts at 0; a 10-tick jump at 250 ms gives the 300 ms sample
    100/0.1·(1 − 2^(−0.1/60)) ≈ 1.15 ticks²/s, σ ≈ 1.07 > 0.5: both sides skipped."""
    h = Harness(params={"bid_tick": 9990, "bid_qty": 10, "ask_tick": 10020, "ask_qty": 10},
                quoting={"max_vol_tick": 0.5}, engine={"vol_init_tick": 0.0})
    h.feed(BOOK + [(250, K.DELETE, 1, 9999, 100, 1), (250, K.ADD, 1, 10009, 100, 4),
                   (250, K.DELETE, -1, 10005, 100, 2), (250, K.DELETE, -1, 10006, 100, 3),
                   (250, K.ADD, -1, 10015, 100, 5), (450, K.ADD, -1, 10016, 1, 20)],
           final=True)
    assert _risk_on(h) == [(300, RiskReason.VOL_THRESHOLD, 0)]
    assert sorted(s[:2] for s in _sends(h, OrderEvent.CANCEL)) == [(300, -1), (300, 1)]


# ---- ladder --------------------------------------------------------------------------------
@pytest.mark.parametrize(("unit", "offsets", "bids", "asks"), [
    ("ticks", [0, 2, 5], [(10000, 10), (9998, 20), (9995, 40)],
     [(10004, 10), (10006, 20), (10009, 40)]),
    ("bps", [0, 10], [(10000, 10), (9990, 20)], [(10004, 10), (10015, 20)]),
])
def test_ladder_from_the_level_zero_quote(unit, offsets, bids, asks):
    """Levels at the offsets behind the policy's level-0 quote, sizes doubling with depth
    (bps of the level-0 price: 10004·1.001 = 10014.004, ceiled to 10015)."""
    h = Harness(params=QUOTES, quoting={"ladder_offsets": offsets, "ladder_unit": unit,
                                        "ladder_size_growth": 2.0})
    h.feed(BOOK + [(150, K.ADD, -1, 10007, 1, 20)], final=True)
    s = _sends(h)
    assert sorted((p, q) for _, side, p, q in s if side == 1) == sorted(bids)
    assert sorted((p, q) for _, side, p, q in s if side == -1) == sorted(asks)


# ---- config and resolve -----------------------------------------------------------------
def test_quoting_config_errors_name_the_field():
    from mmsim.config import ConfigError, config_from_dict

    base = {"data": {"kind": "synthetic"}, "policy": {"name": "static"}}
    for section, bad, field in [
        ("quoting", {"ladder_offsets": [0, 3, 2]}, "quoting.ladder_offsets"),
        ("quoting", {"ladder_offsets": list(range(9))}, "quoting.ladder_offsets"),
        ("quoting", {"placement": "inside"}, "quoting.placement"),
        ("quoting", {"size_inventory_factor": 0.5}, "quoting.size_inventory_factor"),
        ("risk", {"max_position_qty": 10, "soft_position_qty": 10}, "risk.soft_position_qty"),
        ("risk", {"vol_fast_halflife_s": 400.0}, "risk.vol_fast_halflife_s"),
        ("risk", {"flatten_tif": "gtc"}, "risk.flatten_tif"),
    ]:
        with pytest.raises(ConfigError, match=f"field '{field}'"):
            config_from_dict({**base, section: bad})


def test_new_sections_leave_old_digests_alone_and_enter_them_when_used():
    from mmsim.config import config_from_dict

    base = {"data": {"kind": "synthetic"}, "policy": {"name": "static"}}
    plain = config_from_dict(base)
    assert "quoting" not in plain.as_dict() and "max_notional" not in plain.as_dict()["risk"]
    assert config_from_dict(plain.as_dict()) == plain
    used = config_from_dict({**base, "quoting": {"placement": "join"},
                             "risk": {"max_notional": 1e6}})
    assert used.digest() != plain.digest()
    assert config_from_dict(used.as_dict()) == used


def test_resolve_converts_units():
    from mmsim.config import config_from_dict
    from mmsim.engine.backtest import Engine
    from mmsim.resolve import LadderUnit, Placement, TakerTif, resolve_for_events

    cfg = config_from_dict({
        "data": {"kind": "synthetic"}, "policy": {"name": "static"},
        "risk": {"max_position_qty": 2.0, "soft_position_qty": 1.0, "stop_cooldown_s": 1.5,
                 "stop_before_end_s": 2.0, "flatten_tif": "ioc"},
        "quoting": {"placement": "behind", "ladder_offsets": [0, 5], "ladder_unit": "bps"}})
    spec = resolve_for_events(cfg, ref_price_tick=100, last_ts=10_000_000_000,
                              instrument=Instrument(tick_size=0.5, lot_size=0.5))
    lim, q = spec.limits, spec.quoting
    assert (lim.max_position_lots, lim.soft_position_lots) == (4, 2)
    assert lim.stop_cooldown_ns == 1_500_000_000
    assert lim.stop_quoting_ts == 8_000_000_000 and lim.flatten_ts is None
    assert lim.flatten_tif is TakerTif.IOC
    assert (q.placement, q.ladder_unit, q.ladder_offsets) == (Placement.BEHIND, LadderUnit.BPS,
                                                              (0.0, 5.0))
    p = Engine(spec).cfg
    assert int(p["risk_on"]) == 1 and int(p["ladder_levels"]) == 2
    assert int(p["flatten_tif"]) == TimeInForce.IOC and int(p["stop_cooldown_ns"]) == 1_500_000_000


def test_quote_levels_of_the_params_record_match_the_contract():
    from mmsim.contracts import MAX_LEVELS
    from mmsim.dtypes import MAX_QUOTE_LEVELS

    assert MAX_QUOTE_LEVELS == MAX_LEVELS


def test_a_hedger_may_send_fill_or_kill_orders_priced_through_the_touch():
    from mmsim.contracts import CTX_SIZE, HEDGE_OUT_SIZE, Ctx, HedgeOut
    from mmsim.enums import TimeInForce
    from mmsim.hedgers.registry import get_hedger

    spec = get_hedger("threshold")
    ctx = np.zeros(CTX_SIZE)
    ctx[Ctx.BEST_BID_TICK], ctx[Ctx.BEST_ASK_TICK] = 9999.0, 10001.0
    ctx[Ctx.POSITION], ctx[Ctx.TIME_S] = 40.0, 100.0
    out = np.zeros(HEDGE_OUT_SIZE)
    vec = spec.param_vector({"threshold": 10, "tif": "fok", "slippage_ticks": 2})
    assert spec.kernel(ctx, vec, spec.state_vector(), out) == 0
    o = HedgeOut.ORDER0
    assert out[HedgeOut.N] == 1 and out[o + HedgeOut.SIDE] == -1
    assert out[o + HedgeOut.TIF] == TimeInForce.FOK
    assert out[o + HedgeOut.LIMIT_TICK] == 9997.0  # the bid, 2 ticks through
