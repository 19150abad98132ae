"""Signals on the local book (mmsim.signals.nb): hand-worked cases per signal, then a property
test of the incremental kernels against a plain-numpy recomputation on random streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsim.book.nb import ladder_change_nb, new_ladder
from mmsim.signals.nb import (
    obi_nb,
    signals_on_book_nb,
    signals_on_trade_nb,
    signals_reset_nb,
    signals_to_ctx_nb,
)
from mmsim.signals.spec import (
    SIGNAL_STATE_DTYPE,
    SignalCtx,
    make_signal_params,
    new_signal_state,
)

S = 1_000_000_000  # one second, ns
MS = 1_000_000


class Sim:
    """One instrument's local ladder plus its signal records, driven from Python."""

    def __init__(self, **params):
        self.lvl, self.sc = new_ladder(0, 256)
        self.sp = make_signal_params(**params)
        self.sst = new_signal_state()
        self.out = np.zeros(SignalCtx.SIZE + 3)

    def level(self, ts, side, px, delta):
        ladder_change_nb(self.lvl, self.sc, side, px, delta)
        return signals_on_book_nb(self.sst[0], self.sp[0], ts, self.lvl, self.sc)

    def set_level(self, ts, side, px, qty):
        old = self.lvl[0 if side > 0 else 1, px]
        return self.level(ts, side, px, qty - old)

    def trade(self, ts, resting_side, qty):
        return signals_on_trade_nb(self.sst[0], self.sp[0], ts, resting_side, qty)

    def read(self, ts):
        n = signals_to_ctx_nb(self.sst[0], self.sp[0], ts, self.lvl, self.sc, self.out, 3)
        assert n == SignalCtx.SIZE
        return {name: self.out[3 + getattr(SignalCtx, name)] for name in SignalCtx._fields
                if name != "SIZE"}


# ---- hand-worked cases ----------------------------------------------------------------------


def test_ofi_hand_sequence():
    """e_n of CKS (2014) eq. 2, worked by hand: bid/ask size changes, price improvements and
    retreats on each side."""
    sim = Sim(flow_bucket_ns=S, flow_n_buckets=10)
    assert sim.set_level(1, 1, 100, 5) == 0  # no ask yet: undefined
    assert sim.set_level(2, -1, 103, 4) == 0  # first complete top: nothing to compare
    steps = [
        ((1, 100, 7), +2),  # bid size 5 -> 7 at the same price: qb_n - qb_{n-1}
        ((-1, 103, 1), +3),  # ask size 4 -> 1: -qa_n + qa_{n-1}
        ((1, 101, 2), +2),  # bid improves to 101 (2 lots): +qb_n
        ((-1, 102, 3), -3),  # ask improves to 102 (3 lots): -qa_n
        ((1, 101, 0), -2),  # best bid 101 removed, back to 100: -qb_{n-1}
        ((-1, 102, 0), +3),  # best ask 102 removed, back to 103: +qa_{n-1}
    ]
    for i, ((side, px, q), e) in enumerate(steps):
        assert sim.set_level(10 + i, side, px, q) == e, (side, px, q)
    r = sim.read(100)
    assert r["OFI_QTY"] == 2 + 3 + 2 - 3 - 2 + 3
    # a side emptying makes the next update undefined, then OFI resumes
    assert sim.set_level(200, -1, 103, 0) == 0
    assert sim.set_level(201, -1, 104, 6) == 0
    assert sim.set_level(202, -1, 104, 8) == -2
    assert sim.read(300)["OFI_QTY"] == 5 - 2
    # 10 s later every bucket has left the window
    assert sim.read(11 * S)["OFI_QTY"] == 0


def test_obi_top_n_levels():
    """OBI over the N best non-empty levels, empty ladder columns skipped."""
    sim = Sim(obi_levels=2)
    for side, px, q in [(1, 100, 5), (1, 99, 3), (1, 97, 2), (-1, 101, 1), (-1, 103, 4),
                        (-1, 104, 10)]:
        sim.set_level(1, side, px, q)
    assert sim.read(2)["OBI"] == pytest.approx((8 - 5) / 13)
    sp5 = make_signal_params(obi_levels=5)
    assert obi_nb(sp5[0], sim.lvl, sim.sc) == pytest.approx((10 - 15) / 25)
    sim.set_level(3, -1, 101, 0)
    sim.set_level(3, -1, 103, 0)
    sim.set_level(3, -1, 104, 0)
    assert sim.read(4)["OBI"] == 1.0
    empty = Sim()
    assert math.isnan(empty.read(5)["OBI"])


def test_trade_intensity_counts():
    """Trades per second per aggressor side over a 1 s window of 10 buckets of 100 ms."""
    sim = Sim(flow_bucket_ns=100 * MS, flow_n_buckets=10)
    sim.set_level(0, 1, 100, 1)
    sim.set_level(0, -1, 101, 1)
    for t in (50, 120, 130, 450):  # buyer-initiated (resting ask hit)
        assert sim.trade(t * MS, -1, 2) == 2
    for t in (300, 980):
        assert sim.trade(t * MS, 1, 5) == -5
    r = sim.read(999 * MS)  # window = buckets 0..9, starts at the first event (0 ms)
    assert r["BUY_RATE_HZ"] == pytest.approx(4 / 0.999)
    assert r["SELL_RATE_HZ"] == pytest.approx(2 / 0.999)
    r = sim.read(1000 * MS)  # window = buckets 1..10 = [100 ms, 1000 ms]
    assert r["BUY_RATE_HZ"] == pytest.approx(3 / 0.9)
    assert r["SELL_RATE_HZ"] == pytest.approx(2 / 0.9)
    r = sim.read(1500 * MS)  # buckets 6..15 = [600, 1500] ms
    assert r["BUY_RATE_HZ"] == 0.0
    assert r["SELL_RATE_HZ"] == pytest.approx(1 / 0.9)


def _kyle_case():
    """A 1 s clock; in interval k a trade of x[k] signed lots, then the mid moves by y[k]."""
    x = np.array([4, -2, 7, 0, -5, 3, 1, -1])
    y = np.array([1.0, -0.5, 2.0, 0.0, -1.5, 0.5, 1.0, 0.0])
    sim = Sim(clock_ns=S, kyle_n_intervals=5, vol_halflife_ns=2 * S)
    bid, ask = 100, 102
    sim.set_level(100 * MS, 1, bid, 10)  # first event: interval (0, 1 s] is invalid
    sim.set_level(100 * MS, -1, ask, 10)
    for k in range(8):
        t0 = (k + 1) * S  # interval (t0, t0 + 1 s]
        if x[k]:
            sim.trade(t0 + 200 * MS, -1 if x[k] > 0 else 1, abs(int(x[k])))
        d2 = int(2 * y[k])  # move the mid by y[k] ticks: shift the bid, then the ask
        if d2:
            nb_, na_ = bid + d2 // 2 + d2 % 2, ask + d2 // 2
            ts = t0 + 500 * MS
            if nb_ != bid:
                sim.set_level(ts, 1, nb_, 10)
                sim.set_level(ts, 1, bid, 0)
            if na_ != ask:
                sim.set_level(ts, -1, na_, 10)
                sim.set_level(ts, -1, ask, 0)
            bid, ask = nb_, na_
    return sim, x, y


def test_kyle_lambda_equals_polyfit():
    """λ = OLS slope over the last K = 5 clock intervals, as numpy.polyfit on them."""
    sim, x, y = _kyle_case()
    r = sim.read(9 * S)  # intervals (1,2], ..., (8,9] s are x[0..7]; the window holds 5
    assert r["KYLE_LAMBDA_TICK"] == pytest.approx(np.polyfit(x[-5:], y[-5:], 1)[0], rel=1e-12)
    r = sim.read(10 * S)  # one more interval with nothing traded and the mid unchanged
    xs, ys = np.r_[x[-4:], 0], np.r_[y[-4:], 0.0]
    assert r["KYLE_LAMBDA_TICK"] == pytest.approx(np.polyfit(xs, ys, 1)[0], rel=1e-12)
    r = sim.read(20 * S)  # only quiet intervals: no variance in x
    assert math.isnan(r["KYLE_LAMBDA_TICK"])


def test_volatility_ewma_by_hand():
    """EWMA of squared mid changes (ticks) per 1 s interval, half-life 2 s, in ticks/√s."""
    sim, _, y = _kyle_case()
    d = 2.0 ** -0.5
    v = y[0] ** 2
    for yy in y[1:]:
        v = d * v + (1 - d) * yy**2
    assert sim.read(9 * S)["VOL_TICK"] == pytest.approx(math.sqrt(v), rel=1e-12)
    # 3 quiet intervals later
    assert sim.read(12 * S)["VOL_TICK"] == pytest.approx(math.sqrt(v * d**3), rel=1e-12)


def test_microprice_kernel_reads_table():
    g = np.array([[-0.3, -0.6], [0.0, 0.0], [0.3, 0.6]])
    sim = Sim(micro_adjust_tick=g)
    sim.set_level(1, 1, 100, 30)
    sim.set_level(1, -1, 101, 10)  # I = 0.75 -> bucket 2, spread 1
    r = sim.read(2)
    assert r["MICRO_TICK"] == pytest.approx(100.5 + 0.3)
    assert r["MICRO_ADJ_TICK"] == pytest.approx(0.3)
    sim.set_level(3, -1, 102, 50)
    sim.set_level(3, -1, 101, 0)  # I = 30/80 -> bucket 1, spread 2
    assert sim.read(4)["MICRO_TICK"] == pytest.approx(101.0)
    sim.set_level(5, -1, 103, 50)
    sim.set_level(5, -1, 102, 0)  # spread 3: outside the table
    assert math.isnan(sim.read(6)["MICRO_TICK"])
    assert math.isnan(Sim().read(7)["MICRO_TICK"])  # no table


def test_undefined_before_events_and_reset():
    sim = Sim()
    r = sim.read(5)
    assert all(math.isnan(v) for v in r.values())
    sim.set_level(10, 1, 100, 1)
    sim.set_level(10, -1, 101, 1)
    sim.trade(11, -1, 3)
    signals_reset_nb(sim.sst[0])
    assert (sim.sst == np.zeros(1, SIGNAL_STATE_DTYPE)).all()


@pytest.mark.parametrize("kw", [dict(obi_levels=0), dict(flow_n_buckets=0),
                                dict(flow_n_buckets=10_000), dict(kyle_n_intervals=1),
                                dict(clock_ns=0), dict(vol_halflife_ns=-1),
                                dict(flow_bucket_ns=1.5),
                                dict(micro_adjust_tick=np.zeros((1, 2))),
                                dict(micro_adjust_tick=np.zeros((3, 99)))])
def test_params_validation(kw):
    with pytest.raises(ValueError):
        make_signal_params(**kw)


# ---- property test against a plain recomputation ----------------------------------------------


def _reference(ops, reads, bucket_ns, n_buckets, clock_ns, kyle_k, decay, obi_n):
    """Recompute every signal at each read time from the whole history, by the definitions
    (spec module docstring), with plain Python and numpy."""
    book = {1: {}, -1: {}}
    tops = []  # (ts, top or None) after each book op
    trades = []  # (ts, signed lots)
    enth = []  # (ts, e_n)
    prev = None
    out = []
    ri = 0

    def top():
        if not book[1] or not book[-1]:
            return None
        pb, pa = max(book[1]), min(book[-1])
        return pb, book[1][pb], pa, book[-1][pa]

    def mid_at(g):
        m = None
        for ts, tp in tops:
            if ts > g:
                break
            m = None if tp is None else tp[0] + tp[2]
        return m

    def at_read(t):
        kt = t // bucket_ns
        lo = max((kt - n_buckets + 1) * bucket_ns, first_ts)
        ofi = sum(e for ts, e in enth if ts >= (kt - n_buckets + 1) * bucket_ns)
        nbuy = sum(1 for ts, x in trades if ts >= (kt - n_buckets + 1) * bucket_ns and x > 0)
        nsell = sum(1 for ts, x in trades if ts >= (kt - n_buckets + 1) * bucket_ns and x < 0)
        span = (t - lo) * 1e-9
        k0 = (first_ts - 1) // clock_ns
        kend = t // clock_ns
        ivs = []  # (k, x, y, valid)
        v, nv = 0.0, 0
        for k in range(k0 + 1, kend + 1):
            a, b = mid_at((k - 1) * clock_ns), mid_at(k * clock_ns)
            x = sum(q for ts, q in trades if (k - 1) * clock_ns < ts <= k * clock_ns)
            ok = a is not None and b is not None
            y = (b - a) / 2 if ok else 0.0
            ivs.append((k, x, y, ok))
            if ok:
                v = y * y if nv == 0 else decay * v + (1 - decay) * y * y
                nv += 1
        win = [(x, y) for k, x, y, ok in ivs if ok and k > kend - kyle_k]
        xs = np.array([w[0] for w in win], dtype=float)
        ys = np.array([w[1] for w in win], dtype=float)
        lam = np.polyfit(xs, ys, 1)[0] if len(win) >= 2 and np.ptp(xs) > 0 else np.nan
        vb = sum(book[1][p] for p in sorted(book[1], reverse=True)[:obi_n])
        va = sum(book[-1][p] for p in sorted(book[-1])[:obi_n])
        obi = (vb - va) / (vb + va) if vb + va else np.nan
        return dict(OBI=obi, OFI_QTY=ofi, KYLE_LAMBDA_TICK=lam,
                    BUY_RATE_HZ=nbuy / span if span > 0 else np.nan,
                    SELL_RATE_HZ=nsell / span if span > 0 else np.nan,
                    VOL_TICK=math.sqrt(v / (clock_ns * 1e-9)) if nv else np.nan)

    first_ts = ops[0][0]
    for i, (ts, kind, side, px, q) in enumerate(ops):
        if kind == "book":
            lv = book[side]
            new = max(lv.get(px, 0) + q, 0)
            if new:
                lv[px] = new
            else:
                lv.pop(px, None)
            tp = top()
            if tp is not None and prev is not None:
                pb, qb, pa, qa = tp
                e = (qb if pb >= prev[0] else 0) - (prev[1] if pb <= prev[0] else 0) \
                    - (qa if pa <= prev[2] else 0) + (prev[3] if pa >= prev[2] else 0)
                enth.append((ts, e))
            prev = tp
            tops.append((ts, tp))
        else:
            trades.append((ts, q if side < 0 else -q))
        while ri < len(reads) and reads[ri][0] == i:
            out.append(at_read(reads[ri][1]))
            ri += 1
    return out


OPS = st.lists(
    st.tuples(
        st.integers(0, 250),  # time step, ms
        st.sampled_from(["book", "book", "book", "trade"]),
        st.sampled_from([1, -1]),
        st.integers(0, 5),  # price offset
        st.integers(-6, 8),  # level delta (book) / lots (trade, |q| + 1)
        st.one_of(st.none(), st.integers(0, 400)),  # read this many ms after the op
    ),
    min_size=1,
    max_size=50,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS, st.integers(1, 4), st.sampled_from([50, 100, 170]), st.sampled_from([60, 100, 230]),
       st.integers(2, 5), st.integers(1, 3))
def test_incremental_equals_recomputation(raw, n_buckets, bucket_ms, clock_ms, kyle_k, obi_n):
    """Rings that wrap (1-4 buckets, 2-5 intervals), gaps longer than a window, reads between
    events: every signal equals the recomputation from the whole history."""
    halflife_ms = 300
    ops, reads = [], []  # reads: (index of the op it follows, read time)
    ts = 5 * S + 7
    for i, (dt, kind, side, off, q, rd) in enumerate(raw):
        ts += dt * MS
        if reads and reads[-1][1] >= ts:
            ts = reads[-1][1] + 1  # no event at or before a read already made
        px = (100 - off) if side > 0 else (101 + off)  # bids at 95..100, asks at 101..106
        ops.append((ts, kind, side, px, abs(q) + 1 if kind == "trade" else q))
        if rd is not None:
            reads.append((i, ts + rd * MS))
    sim = Sim(obi_levels=obi_n, flow_bucket_ns=bucket_ms * MS, flow_n_buckets=n_buckets,
              clock_ns=clock_ms * MS, kyle_n_intervals=kyle_k, vol_halflife_ns=halflife_ms * MS)
    got = []
    ri = 0
    for i, (t, kind, side, px, q) in enumerate(ops):
        if kind == "trade":
            sim.trade(t, side, q)
        else:
            sim.level(t, side, px, q)
        while ri < len(reads) and reads[ri][0] == i:
            got.append(sim.read(reads[ri][1]))
            ri += 1
    want = _reference(ops, reads, bucket_ms * MS, n_buckets, clock_ms * MS, kyle_k,
                      2.0 ** (-clock_ms / halflife_ms), obi_n)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for name, wv in w.items():
            gv = g[name]
            if isinstance(wv, float) and math.isnan(wv):
                assert math.isnan(gv), (name, gv)
            else:
                assert gv == pytest.approx(wv, rel=1e-9, abs=1e-12), (name, gv, wv)
