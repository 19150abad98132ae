"""Stoikov (2018) micro-price estimator (mmsim.signals.microprice): a chain whose answer is
known by hand, the symmetry of the table, the clocked top of book from canonical events, the
kernel reading the table, and the real Binance BTCUSDT file."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.book.nb import ladder_change_nb, new_ladder
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventFlag, EventKind
from mmsim.signals.microprice import clock_top_of_book, estimate_microprice
from mmsim.signals.nb import microprice_nb

_QTY = {0: (1, 3), 1: (1, 1), 2: (3, 1)}  # (bid, ask) lots of each imbalance bucket (n = 3)


def _hand_chain():
    """Spread 1 tick, 3 buckets. From the middle bucket the book goes to the high one with the
    mid unchanged; there it stays 12 times in all, then the mid moves +1 tick 5 times and -1
    tick 3 times, back to the middle bucket. Mirrored, the low bucket does the opposite, so
    g^1 = (-1/4, 0, 1/4) tick, every later move starts from the middle (g^i = 0 for i > 1)
    and the micro-price adjustment is exactly (-0.25, 0, 0.25) tick."""
    path = []
    mid2 = 200
    for stays, up in zip([2, 2, 1, 1, 2, 2, 1, 1], [1, 1, 0, 1, 0, 1, 1, 0], strict=True):
        path.append((1, mid2))
        path += [(2, mid2)] * (1 + stays)
        mid2 += 2 if up else -2
    path.append((1, mid2))
    b = np.array([p[0] for p in path])
    m2 = np.array([p[1] for p in path])
    bid = (m2 - 1) // 2
    qb = np.array([_QTY[x][0] for x in b])
    qa = np.array([_QTY[x][1] for x in b])
    return np.arange(len(b)) * 1_000_000, bid, bid + 1, qb, qa


def test_hand_chain_known_answer():
    t = estimate_microprice(*_hand_chain(), n_imb=3, n_spread=1)
    assert t.adjust_tick[:, 0] == pytest.approx([-0.25, 0.0, 0.25], abs=1e-12)
    assert t.g1_tick[:, 0] == pytest.approx([-0.25, 0.0, 0.25], abs=1e-12)
    assert t.n_obs[:, 0].tolist() == [20, 16, 20]  # 20 from the high bucket, mirrored
    assert t.n_transitions == 28 and t.n_samples == 29
    assert (t.start_ts, t.end_ts, t.clock_ns) == (0, 28_000_000, 1_000_000)
    # between bid and ask
    mp = t.microprice_tick([100, 100, 100], [101, 101, 101], [1, 1, 3], [3, 1, 1])
    assert mp == pytest.approx([100.25, 100.5, 100.75])


def _random_chain(rng, n, n_spread):
    bid = np.empty(n, dtype=np.int64)
    spread = rng.integers(1, n_spread + 1, n)
    bid[0] = 1000
    bid[1:] = 1000 + np.cumsum(rng.integers(-1, 2, n - 1) * (rng.random(n - 1) < 0.3))
    return (np.arange(n) * 100, bid, bid + spread, rng.integers(1, 20, n), rng.integers(1, 20, n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_symmetrised_table(seed):
    """Symmetrised data give g(I, S) = -g(1 - I, S), so g = 0 at I = 1/2 (middle bucket)."""
    rng = np.random.default_rng(seed)
    t = estimate_microprice(*_random_chain(rng, 4000, 2), n_imb=5, n_spread=2)
    g = t.adjust_tick
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, -g[::-1], atol=1e-12)
    np.testing.assert_allclose(g[2], 0.0, atol=1e-12)
    assert (t.n_obs == t.n_obs[::-1]).all()


def test_estimator_errors():
    ts, bid, ask, qb, qa = _hand_chain()
    with pytest.raises(ValueError, match="fixed clock"):
        estimate_microprice(ts[::-1], bid, ask, qb, qa)
    with pytest.raises(ValueError, match="one length"):
        estimate_microprice(ts[:-1], bid, ask, qb, qa)
    with pytest.raises(ValueError, match="n_imb"):
        estimate_microprice(ts, bid, ask, qb, qa, n_imb=1)
    with pytest.raises(ValueError, match="no transition"):
        estimate_microprice(ts, bid, bid + 5, qb, qa, n_spread=2)


def _ev(ts, kind, side=0, px=0, qty=0, flags=EventFlag.LAST):
    return (ts, ts, px, qty, 0, 0.0, kind, side, flags)


def test_clock_top_of_book_hand_events():
    """Samples see the last consistent book (after LAST, outside a snapshot) at or before
    each grid time."""
    K = EventKind
    rows = [
        _ev(5, K.SNAPSHOT_BEGIN, flags=EventFlag.SNAPSHOT),
        _ev(5, K.CLEAR, flags=EventFlag.SNAPSHOT),
        _ev(5, K.LEVEL_SET, 1, 100, 4, EventFlag.SNAPSHOT),
        _ev(5, K.LEVEL_SET, -1, 102, 6, EventFlag.SNAPSHOT),
        _ev(5, K.SNAPSHOT_END, flags=EventFlag.SNAPSHOT | EventFlag.LAST),
        _ev(12, K.LEVEL_SET, 1, 101, 2, 0),  # mid-message: not consistent
        _ev(12, K.LEVEL_SET, -1, 102, 0, 0),
        _ev(14, K.LEVEL_SET, -1, 103, 1),  # end of the message
        _ev(25, K.TRADE, -1, 103, 1),
        _ev(31, K.LEVEL_SET, 1, 101, 0),
    ]
    ev = np.array(rows, dtype=EVENT_DTYPE)
    tob = clock_top_of_book(ev, 10)
    assert tob.ts.tolist() == [10, 20, 30]
    assert tob.bid_tick.tolist() == [100, 101, 101]
    assert tob.ask_tick.tolist() == [102, 103, 103]
    assert tob.bid_qty.tolist() == [4, 2, 2]
    assert tob.ask_qty.tolist() == [6, 1, 1]
    tob = clock_top_of_book(ev, 10, start_ts=15, end_ts=40)
    assert tob.ts.tolist() == [20, 30]
    with pytest.raises(ValueError, match="clock_ns"):
        clock_top_of_book(ev, 0)
    bad = np.array([_ev(1, K.LEVEL_SET, 1, 100, 1), _ev(2, K.LEVEL_SET, 0, 100, 1)],
                   dtype=EVENT_DTYPE)
    with pytest.raises(ValueError, match="row 1"):
        clock_top_of_book(bad, 10)


def test_kernel_reads_the_estimated_table():
    t = estimate_microprice(*_random_chain(np.random.default_rng(5), 3000, 2), n_imb=4,
                            n_spread=2)
    sp = t.signal_params()
    lvl, sc = new_ladder(0, 64)
    ladder_change_nb(lvl, sc, 1, 20, 7)
    for ask, aq in [(21, 3), (22, 12)]:
        ladder_change_nb(lvl, sc, -1, ask, aq)
        want = t.microprice_tick(20, ask, 7, aq)
        assert microprice_nb(sp[0], lvl, sc) == pytest.approx(float(want))
        ladder_change_nb(lvl, sc, -1, ask, -aq)


@pytest.mark.realdata
def test_binance_btcusdt_table(data_root):
    """Binance USD-M BTCUSDT, 2024-08-08 23:54-00:00: the clocked book agrees with the
    exchange's own bookTicker; the spread-1 table is finite, antisymmetric, increasing in the
    imbalance and keeps the micro-price between bid and ask."""
    from mmsim.data.binance import read_binance

    ev = read_binance([data_root / "binance/usdm/btcusdt_20240808.gz"]).events
    tob = clock_top_of_book(ev, 100_000_000)
    assert len(tob.ts) > 3000
    bbo = ev[ev["kind"] == EventKind.BBO]
    for side, px in ((1, tob.bid_tick), (-1, tob.ask_tick)):
        s = bbo[bbo["side"] == side]
        j = np.searchsorted(s["exch_ts"], tob.ts, side="right") - 1
        assert np.mean(s["price_tick"][j] == px) > 0.9
    t = estimate_microprice(*tob, n_imb=11, n_spread=2)
    assert t.n_transitions > 2500
    assert ev["exch_ts"].min() <= t.start_ts < t.end_ts <= ev["exch_ts"].max()
    g = t.adjust_tick[:, 0]
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, -g[::-1], atol=1e-12)
    assert g[5] == pytest.approx(0.0, abs=1e-12)
    assert (np.diff(g) > 0).all()
    assert np.abs(g).max() < 0.5
    assert g[-1] > 0.02  # a strongly bid-heavy book predicts an up move
