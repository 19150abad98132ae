"""Many instruments in one replay (MODELS.md §12): each instrument its own book, orders,
position, cash and fees; the hedger trades on the instrument it names.

Hand-built events on two instruments, merged the way :func:`mmsim.data.merge.merge_chunks`
merges them (by exchange time; at equal times the quoted instrument first).
"""

from __future__ import annotations

import numpy as np
from engine_harness import MS, T0, events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsim.config import config_from_dict
from mmsim.engine.backtest import Engine
from mmsim.enums import EventKind as K
from mmsim.enums import Liquidity
from mmsim.instruments import Instrument
from mmsim.resolve import resolve_for_events

QUOTED = Instrument(symbol="Q", tick_size=0.01, lot_size=1.0)
HEDGE = Instrument(symbol="H", tick_size=0.1, lot_size=1.0, taker_fee_bps=5.0)


def _config(hedger=None, policy=None, two=True, other=HEDGE):
    raw = {
        "data": {"kind": "synthetic"},
        "policy": policy or {"name": "static", "bid_tick": 10000, "bid_qty": 10},
        "latency": {"feed_nanos": 0, "entry_nanos": MS, "response_nanos": MS},
        "engine": {"decision_interval_nanos": 100 * MS, "equity_interval_nanos": 100 * MS,
                   "book_width_ticks": 4096, "max_book_orders": 4096, "horizon": "none"},
        "queue": {"model": "risk_averse"},
    }
    if two:  # the hand-built events stand in for this instrument's data
        raw["instruments"] = [{"name": "H", "data": {"kind": "synthetic"},
                               "instrument": other.model_dump()}]
    if hedger is not None:
        raw["hedger"] = hedger
    return config_from_dict(raw)


def _engine(cfg):
    two = bool(cfg.instruments)
    others = [{"ref_price_tick": 1000, "book": "L2"}] if two else []
    spec = resolve_for_events(cfg, instrument=QUOTED, ref_price_tick=10_000, book="L2",
                              others=others)
    return Engine(spec)


def _merge(rows0, rows1):
    """Both instruments' rows → (events, instrument) by exchange time, instrument 0 first at
    equal times (the merge's documented rule)."""
    e0, e1 = events(rows0), events(rows1)
    ev = np.concatenate([e0, e1])
    inst = np.concatenate([np.zeros(len(e0), np.uint8), np.ones(len(e1), np.uint8)])
    order = np.lexsort((inst, ev["exch_ts"]))  # stable: data order within an instrument
    return ev[order], inst[order]


def _run(engine, ev, inst):
    out = []
    engine.feed(ev, lambda f, o, e: out.append((f, o, e)), final=True, instrument=inst)
    return (np.concatenate([x[0] for x in out]), np.concatenate([x[1] for x in out]),
            np.concatenate([x[2] for x in out]))


BOOK0 = [(0, K.LEVEL_SET, 1, 9999, 100, 0), (0, K.LEVEL_SET, -1, 10005, 100, 0)]
BOOK1 = [(0, K.LEVEL_SET, 1, 1000, 4, 0), (0, K.LEVEL_SET, 1, 999, 10, 0),
         (0, K.LEVEL_SET, -1, 1001, 10, 0)]


def test_interleaved_equal_timestamps_reach_their_own_books():
    # both instruments have events at 0 ms and at 50 ms: merged, instrument 0 first at each
    ev, inst = _merge(BOOK0 + [(50, K.LEVEL_SET, 1, 9998, 7, 0)],
                      BOOK1 + [(50, K.LEVEL_SET, -1, 1002, 3, 0)])
    assert list(inst[:5]) == [0, 0, 1, 1, 1]
    eng = _engine(_config())
    _run(eng, ev, inst)
    b0, b1 = eng.books
    base0, base1 = b0["sc"][0], b1["sc"][0]
    assert b0["lvl"][0, 9999 - base0] == 100 and b0["lvl"][0, 9998 - base0] == 7
    assert b0["lvl"][1, 10005 - base0] == 100
    assert b1["lvl"][0, 1000 - base1] == 4 and b1["lvl"][0, 999 - base1] == 10
    assert b1["lvl"][1, 1002 - base1] == 3
    # each book holds only its own instrument's levels
    assert b0["lvl"].sum() == 207 and b1["lvl"].sum() == 27
    assert eng.instrument_stats(0)["events"] == 3 and eng.instrument_stats(1)["events"] == 4


def _hedged_run():
    hedger = {"name": "cross_delta", "instrument": 1, "threshold": 0.0}
    eng = _engine(_config(hedger=hedger))
    # 150 ms: a sell of 10 at 10000 fills our 10-lot bid there (nothing ahead of it)
    ev, inst = _merge(BOOK0 + [(150, K.TRADE, 1, 10000, 10, 0),
                               (400, K.LEVEL_SET, -1, 10005, 90, 0)],
                      BOOK1)
    return eng, _run(eng, ev, inst)


def test_hedge_on_the_second_instrument_walks_its_book_and_pays_its_taker_fee():
    eng, (fills, orders, equity) = _hedged_run()
    q = fills[fills["instrument"] == 0]
    h = fills[fills["instrument"] == 1]
    assert list(q["qty"]) == [10] and q["liquidity"][0] == Liquidity.MAKER
    # fill reported at 151 ms → hedger sells 10 at once → arrives at 152 ms, walks the bids
    assert list(h["price_tick"]) == [1000, 999] and list(h["qty"]) == [4, 6]
    assert (h["liquidity"] == Liquidity.TAKER).all() and (h["is_hedge"] == 1).all()
    assert list(h["exch_ts"] - T0) == [152 * MS, 152 * MS]
    # taker fee of instrument H: 5 bps of 4 × 100.0 and of 6 × 99.9
    np.testing.assert_allclose(h["fee"], [4 * 100.0 * 5e-4, 6 * 99.9 * 5e-4])
    assert h["position"][-1] == -10
    np.testing.assert_allclose(h["cash"][-1], 400.0 + 599.4 - 0.2 - 0.2997)
    # the hedge orders are logged on instrument 1 and obey nothing of instrument 0
    assert set(orders["instrument"][orders["is_hedge"] == 1]) == {1}
    assert eng.instrument_stats(1)["fills"] == 2


def test_accounting_holds_per_instrument():
    eng, (fills, orders, equity) = _hedged_run()
    for i, inst in enumerate((QUOTED, HEDGE)):
        f = fills[fills["instrument"] == i]
        e = equity[equity["instrument"] == i]
        pos = int((f["side"].astype(np.int64) * f["qty"]).sum())
        cash = float((-f["side"] * f["price_tick"] * inst.tick_size * f["qty"]
                      * inst.lot_size).sum() - f["fee"].sum())
        assert e["position"][-1] == pos == eng.state[i]["position"]
        np.testing.assert_allclose(e["cash"][-1], cash, rtol=0, atol=1e-9)
        np.testing.assert_allclose(e["fees"][-1], f["fee"].sum(), rtol=0, atol=1e-12)
    # one equity row per instrument per sample time, instrument 0 first
    ts = equity["ts"]
    assert (ts[0::2] == ts[1::2]).all()
    assert (equity["instrument"][0::2] == 0).all() and (equity["instrument"][1::2] == 1).all()


# --- a second instrument that receives no orders changes nothing on the first ---------------
def _stream(draw, n, mid, t_lo, t_hi):
    ts = sorted(draw(st.lists(st.integers(t_lo, t_hi), min_size=n, max_size=n)))
    rows = []
    for t in ts:
        kind = draw(st.sampled_from([K.LEVEL_SET, K.LEVEL_SET, K.TRADE]))
        side = draw(st.sampled_from([1, -1]))
        off = draw(st.integers(0, 4))
        px = mid - 1 - off if side > 0 else mid + 1 + off
        qty = draw(st.integers(0, 50)) if kind == K.LEVEL_SET else draw(st.integers(1, 20))
        rows.append((t, kind, side, px, qty, 0))
    return rows


@st.composite
def _streams(draw):
    n0 = draw(st.integers(2, 60))
    rows0 = [(0, K.LEVEL_SET, 1, 9999, 50, 0), (0, K.LEVEL_SET, -1, 10001, 50, 0)]
    rows0 += _stream(draw, n0, 10_000, 1, 2_000)
    last = max(r[0] for r in rows0) + 1
    rows0.append((last, K.LEVEL_SET, 1, 9990, 1, 0))
    # instrument 1 lives inside instrument 0's span (the run's clock starts and ends with
    # the first and last event of any instrument)
    rows1 = _stream(draw, draw(st.integers(0, 60)), 1000, 0, last)
    return rows0, rows1


def _same(a, b):
    """Every field of two record arrays equal (NaN equal to NaN; padding bytes ignored)."""
    assert a.dtype == b.dtype and len(a) == len(b)
    for name in a.dtype.names:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_streams())
def test_an_idle_second_instrument_leaves_the_first_identical(streams):
    rows0, rows1 = streams
    policy = {"name": "static", "bid_tick": 9999, "bid_qty": 5, "ask_tick": 10001,
              "ask_qty": 5}
    one = _engine(_config(policy=policy, two=False))
    f1, o1, e1 = _run(one, events(rows0), None)
    two = _engine(_config(policy=policy))
    ev, inst = _merge(rows0, rows1)
    f2, o2, e2 = _run(two, ev, inst)
    assert (f2["instrument"] == 0).all() and (o2["instrument"] == 0).all()
    _same(f1, f2)
    _same(o1, o2)
    _same(e1, e2[e2["instrument"] == 0])
    assert (e2["instrument"] == 1).sum() == len(e1)


def test_an_inverse_hedge_instrument_is_sized_and_charged_in_coin():
    """Quoted: linear, 1 coin a lot. Hedge: inverse, 10 USD a contract (delta per contract
    10/mid coin, MODELS.md §12). A fill of 10 coin on the quoted instrument is hedged with
    floor(10·mid/10) contracts at the local mid 100.05: 100 contracts, walking 40 @ 100.0 and
    60 @ 99.9; fees and cash in coin (notional q·10/price)."""
    inverse = Instrument(symbol="I", tick_size=0.1, lot_size=1.0, multiplier=10.0,
                         contract="inverse", taker_fee_bps=5.0)
    hedger = {"name": "cross_delta", "instrument": "H", "threshold": 0.0}
    eng = _engine(_config(hedger=hedger, other=inverse))
    book1 = [(0, K.LEVEL_SET, 1, 1000, 40, 0), (0, K.LEVEL_SET, 1, 999, 100, 0),
             (0, K.LEVEL_SET, -1, 1001, 100, 0)]
    ev, inst = _merge(BOOK0 + [(150, K.TRADE, 1, 10000, 10, 0),
                               (400, K.LEVEL_SET, -1, 10005, 90, 0)], book1)
    fills, orders, equity = _run(eng, ev, inst)
    h = fills[fills["instrument"] == 1]
    assert list(h["qty"]) == [40, 60] and list(h["price_tick"]) == [1000, 999]
    coin = np.array([40 * 10 / 100.0, 60 * 10 / 99.9])
    np.testing.assert_allclose(h["fee"], coin * 5e-4)
    # inverse cash flow is +side·notional (MODELS.md §8): the sale books −notional coin, which
    # the equity's −q·lot·multiplier/mid term (q = −100) marks back
    np.testing.assert_allclose(h["cash"][-1], -coin.sum() - (coin * 5e-4).sum())
    assert eng.state[1]["position"] == -100
    # net delta from the engine's positions (coin): within one contract's delta of flat
    net = eng.state[0]["position"] * 1.0 + eng.state[1]["position"] * 10.0 / 100.05
    assert eng.state[0]["position"] == 10 and abs(net) < 10.0 / 100.05
