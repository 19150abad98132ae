"""Offline estimator of Stoikov's (2018) micro-price table (MODELS.md §11).

Stoikov, S. (2018), "The micro-price: a high-frequency estimator of future prices",
Quantitative Finance 18(12), 1959-1966. The micro-price is ``P_micro = M + g(I, S)`` with
``M`` the mid, ``I = Q_b/(Q_b + Q_a)`` the top-of-book imbalance and ``S`` the spread; the
adjustment is the limit ``g = Σ_i g^i`` (eq. 3.6) of the expected mid changes at successive
mid moves, ``g^1 = (1 - Q)^{-1} R K`` and ``g^{i+1} = B g^i`` with ``B = (1 - Q)^{-1} T``
(Theorem 3.1), estimated from transitions of the discretised state ``(I, S)`` on a fixed clock:

``Q[x, y]``  probability of moving from state x to y with the mid unchanged;
``R[x, k]``  probability of a mid change ``K[k]`` (half-tick multiples up to ``max_move_tick``);
``T[x, y]``  probability of a mid change that lands in state y.

The data are symmetrised as in the paper (§4): every transition is also counted mirrored,
``I -> 1 - I`` (bucket ``b -> n_imb - 1 - b``) and ``ΔM -> -ΔM``, so ``g(I, S) = -g(1 - I, S)``
and ``g = 0`` in the middle bucket (odd ``n_imb``). Imbalance buckets are of equal width:
``b = min(floor(I·n_imb), n_imb - 1)`` (the paper uses quantiles; equal widths keep the table
valid on any data and match :func:`mmsim.signals.nb.microprice_nb`). Transitions whose mid
moves by more than ``max_move_tick``, or that leave the spreads ``1 .. n_spread``, are dropped,
as in the paper. Note that the size-weighted mid is *not* the micro-price.

:func:`clock_top_of_book` builds the clocked top-of-book arrays from canonical events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mmsim.book.reference import ReferenceL3Book
from mmsim.book.reference_l2 import ReferenceL2Book
from mmsim.enums import EventFlag, EventKind
from mmsim.signals.spec import MAX_MICRO_IMB, MAX_MICRO_SPREAD, make_signal_params

_L3_KINDS = (EventKind.ADD, EventKind.CANCEL, EventKind.DELETE, EventKind.EXECUTE,
             EventKind.MODIFY)


class TopOfBook(NamedTuple):
    """Top of book sampled on a fixed clock; every array int64, shape ``(n,)``.

    ``ts`` grid times (ns, multiples of the clock period); ``bid_tick``/``ask_tick`` best
    prices in ticks (-1 if the side is empty); ``bid_qty``/``ask_qty`` lots there (0 if empty).
    """

    ts: np.ndarray
    bid_tick: np.ndarray
    ask_tick: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray


def clock_top_of_book(
    events: np.ndarray,
    clock_ns: int,
    *,
    time_field: str = "exch_ts",
    start_ts: int | None = None,
    end_ts: int | None = None,
) -> TopOfBook:
    """Replay canonical events and sample the top of book at every multiple of ``clock_ns``.

    The events are applied in array order to :class:`~mmsim.book.reference_l2.ReferenceL2Book`
    (or :class:`~mmsim.book.reference.ReferenceL3Book` if the stream holds L3 kinds). The book
    is *consistent* after a record flagged ``EventFlag.LAST`` outside a
    ``SNAPSHOT_BEGIN``/``SNAPSHOT_END`` block (after every record if the stream has no LAST
    flag at all); the sample at grid time ``g`` is the last consistent book with a time
    ``<= g``, where an event's time is the running maximum of ``time_field`` (so a
    ``local_ts`` that steps back does not reorder the stream). The grid runs from the first
    multiple of ``clock_ns`` at or after the first consistent book to the last event time,
    clipped to ``[start_ts, end_ts]``.

    Parameters
    ----------
    events : numpy.ndarray
        :data:`mmsim.dtypes.EVENT_DTYPE`, shape ``(n,)``, in stream order.
    clock_ns : int
        Sampling period, ns (> 0).
    time_field : {"exch_ts", "local_ts"}
        Clock the samples are taken on.
    start_ts, end_ts : int or None
        Keep grid times in ``[start_ts, end_ts]`` (ns).

    Returns
    -------
    TopOfBook

    Raises
    ------
    ValueError
        ``clock_ns <= 0``, an unknown ``time_field``, no consistent book state, or an event
        the reference book rejects (its message names the event's row).
    """
    if not int(clock_ns) == clock_ns or clock_ns <= 0:
        raise ValueError(f"clock_ns must be a positive integer, got {clock_ns!r}")
    if time_field not in ("exch_ts", "local_ts"):
        raise ValueError(f"time_field must be 'exch_ts' or 'local_ts', got {time_field!r}")
    kinds = events["kind"]
    l3 = bool(np.isin(kinds, _L3_KINDS).any())
    book = ReferenceL3Book() if l3 else ReferenceL2Book()
    apply = book.apply_fields
    flags = events["flags"]
    any_last = bool((flags & EventFlag.LAST).any())
    t = np.maximum.accumulate(events[time_field])
    cols = zip(kinds.tolist(), events["side"].tolist(), events["price_tick"].tolist(),
               events["qty"].tolist(), events["order_id"].tolist(), flags.tolist(),
               t.tolist(), strict=True)
    st_ts: list[int] = []
    st_top: list[tuple[int, int, int, int]] = []
    last = None
    in_snap = False
    begin, end, last_bit = EventKind.SNAPSHOT_BEGIN, EventKind.SNAPSHOT_END, EventFlag.LAST
    for row, (k, s, px, q, oid, fl, ts) in enumerate(cols):
        try:
            if l3:
                apply(k, s, px, q, oid)
            else:
                apply(k, s, px, q)
        except ValueError as e:
            raise ValueError(f"event row {row}: {e}") from e
        if k == begin:
            in_snap = True
        elif k == end:
            in_snap = False
        if in_snap or (any_last and not fl & last_bit):
            continue
        b, a = book.best_bid(), book.best_ask()
        top = (-1 if b is None else b, -1 if a is None else a,
               0 if b is None else book.level_qty(1, b), 0 if a is None else book.level_qty(-1, a))
        if top != last:
            st_ts.append(ts)
            st_top.append(top)
            last = top
    if not st_ts:
        raise ValueError("no consistent book state in the events")
    sts = np.asarray(st_ts, dtype=np.int64)
    tops = np.asarray(st_top, dtype=np.int64).reshape(-1, 4)
    lo = -(-int(sts[0]) // clock_ns) * clock_ns
    hi = int(t[-1])
    if start_ts is not None:
        lo = max(lo, -(-int(start_ts) // clock_ns) * clock_ns)
    if end_ts is not None:
        hi = min(hi, int(end_ts))
    grid = np.arange(lo, hi + 1, clock_ns, dtype=np.int64)
    j = np.searchsorted(sts, grid, side="right") - 1  # >= 0: grid starts after sts[0]
    s = tops[j]
    return TopOfBook(grid, s[:, 0].copy(), s[:, 1].copy(), s[:, 2].copy(), s[:, 3].copy())


@dataclass(frozen=True)
class MicroPriceTable:
    """A micro-price table estimated by :func:`estimate_microprice`.

    Attributes
    ----------
    adjust_tick : numpy.ndarray
        float64 ``[n_imb, n_spread]``: ``g(I, S) = Σ_{i<=n_terms} g^i`` in ticks, row = imbalance
        bucket, column = spread - 1 ticks; NaN for a state never observed or from which the
        mid never moved in the data.
    g1_tick : numpy.ndarray
        float64 ``[n_imb, n_spread]``: the first term ``g^1`` (expected next mid change), ticks.
    n_obs : numpy.ndarray
        int64 ``[n_imb, n_spread]``: transitions counted from each state (after mirroring).
    clock_ns, lag : int
        Sampling period of the data and the step of one transition, in samples.
    start_ts, end_ts : int
        Estimation window: grid times (ns) of the first and last sample used in a transition.
    n_samples, n_transitions : int
        Samples given, and transitions kept before mirroring.
    n_terms : int
    max_move_tick : float
    """

    adjust_tick: np.ndarray
    g1_tick: np.ndarray
    n_obs: np.ndarray
    clock_ns: int
    lag: int
    start_ts: int
    end_ts: int
    n_samples: int
    n_transitions: int
    n_terms: int
    max_move_tick: float

    @property
    def n_imb(self) -> int:
        return int(self.adjust_tick.shape[0])

    @property
    def n_spread(self) -> int:
        return int(self.adjust_tick.shape[1])

    def signal_params(self, **kwargs) -> np.ndarray:
        """:func:`mmsim.signals.spec.make_signal_params` with this table (other settings as
        keyword arguments); shape ``(1,)`` SIGNAL_PARAMS_DTYPE."""
        return make_signal_params(micro_adjust_tick=self.adjust_tick, **kwargs)

    def microprice_tick(self, bid_tick, ask_tick, bid_qty, ask_qty) -> np.ndarray:
        """Micro-price in ticks of each row (arrays broadcast); NaN where the table has no
        value (spread outside ``1 .. n_spread``, a side empty, an unseen state)."""
        bid = np.asarray(bid_tick, dtype=np.int64)
        ask = np.asarray(ask_tick, dtype=np.int64)
        b, s, ok = _states(bid, ask, np.asarray(bid_qty), np.asarray(ask_qty), self.n_imb,
                           self.n_spread)
        out = np.full(np.broadcast(bid, ask).shape, np.nan)
        out[ok] = 0.5 * (bid + ask)[ok] + self.adjust_tick[b[ok], s[ok] - 1]
        return out


def _states(bid, ask, bq, aq, n_imb, n_spread):
    """Imbalance bucket, spread (ticks) and validity of each sample."""
    bq = bq.astype(np.int64)
    aq = aq.astype(np.int64)
    spread = ask - bid
    ok = (bq > 0) & (aq > 0) & (bid >= 0) & (ask >= 0) & (spread >= 1) & (spread <= n_spread)
    tot = np.where(ok, bq + aq, 1)
    b = np.minimum((bq * n_imb) // tot, n_imb - 1)
    return np.where(ok, b, 0), np.where(ok, spread, 1), ok


def estimate_microprice(
    ts: np.ndarray,
    bid_tick: np.ndarray,
    ask_tick: np.ndarray,
    bid_qty: np.ndarray,
    ask_qty: np.ndarray,
    *,
    n_imb: int = 11,
    n_spread: int = 2,
    n_terms: int = 6,
    max_move_tick: float = 1.0,
    lag: int = 1,
) -> MicroPriceTable:
    """Estimate Stoikov's (2018) micro-price adjustments ``g(I, S)`` (module docstring).

    Parameters
    ----------
    ts : numpy.ndarray
        int64 ``(n,)`` sample times, ns, on a fixed clock (equal steps, e.g.
        :func:`clock_top_of_book`).
    bid_tick, ask_tick : numpy.ndarray
        int64 ``(n,)`` best prices, ticks (-1 = side empty).
    bid_qty, ask_qty : numpy.ndarray
        ``(n,)`` lots at the best prices (<= 0 = side empty).
    n_imb : int
        Imbalance buckets, 2 .. :data:`~mmsim.signals.spec.MAX_MICRO_IMB` (odd gives a middle
        bucket with ``g = 0``).
    n_spread : int
        Spreads 1 .. n_spread ticks are states, 1 .. :data:`~mmsim.signals.spec.MAX_MICRO_SPREAD`.
    n_terms : int
        Terms ``g^1 .. g^n_terms`` summed (the paper uses 6).
    max_move_tick : float
        Largest mid change kept, ticks (a multiple of 0.5; the paper: 1 tick).
    lag : int
        Samples between the two ends of a transition (>= 1).

    Returns
    -------
    MicroPriceTable

    Raises
    ------
    ValueError
        Arrays of different lengths or fewer than ``lag + 1`` samples; ``ts`` not on a fixed
        increasing clock; a setting out of range; no transition left after the filters.
    """
    arrs = [np.asarray(a) for a in (ts, bid_tick, ask_tick, bid_qty, ask_qty)]
    n = len(arrs[0])
    if any(a.ndim != 1 or len(a) != n for a in arrs):
        raise ValueError("ts, bid_tick, ask_tick, bid_qty, ask_qty must be 1-d of one length")
    for name, v, lo, hi in (("n_imb", n_imb, 2, MAX_MICRO_IMB),
                            ("n_spread", n_spread, 1, MAX_MICRO_SPREAD),
                            ("n_terms", n_terms, 1, 1000), ("lag", lag, 1, max(n - 1, 1))):
        if int(v) != v or not lo <= v <= hi:
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
    if not (max_move_tick > 0 and float(2 * max_move_tick).is_integer()):
        raise ValueError(f"max_move_tick must be a positive multiple of 0.5, got {max_move_tick!r}")
    if n < lag + 1:
        raise ValueError(f"need at least {lag + 1} samples, got {n}")
    t = arrs[0].astype(np.int64)
    d = np.diff(t)
    if n > 1 and (d[0] <= 0 or (d != d[0]).any()):
        raise ValueError("ts must be on a fixed clock (equal, positive steps)")
    clock_ns = int(d[0]) if n > 1 else 0
    bid, ask = arrs[1].astype(np.int64), arrs[2].astype(np.int64)
    b, s, ok = _states(bid, ask, arrs[3], arrs[4], n_imb, n_spread)
    mid2 = bid + ask
    x = (s - 1) * n_imb + b  # state index
    i0 = np.arange(n - lag)
    i1 = i0 + lag
    dm2 = mid2[i1] - mid2[i0]
    keep = ok[i0] & ok[i1] & (np.abs(dm2) <= int(2 * max_move_tick))
    i0, i1, dm2 = i0[keep], i1[keep], dm2[keep]
    if len(i0) == 0:
        raise ValueError("no transition left: every sample pair has a side empty, a spread "
                         f"outside 1..{n_spread} ticks or a mid move above {max_move_tick} ticks")
    # symmetrise: the mirrored transition (b -> n_imb - 1 - b, ΔM -> -ΔM)
    def mirror(ix):
        return (s[ix] - 1) * n_imb + (n_imb - 1 - b[ix])

    xs = np.concatenate([x[i0], mirror(i0)])
    ys = np.concatenate([x[i1], mirror(i1)])
    dms = np.concatenate([dm2, -dm2])
    m = n_imb * n_spread
    moves = np.array([k for k in range(-int(2 * max_move_tick), int(2 * max_move_tick) + 1)
                      if k != 0], dtype=np.int64)  # half ticks
    still = dms == 0
    qc = np.zeros((m, m))
    np.add.at(qc, (xs[still], ys[still]), 1.0)
    tc = np.zeros((m, m))
    np.add.at(tc, (xs[~still], ys[~still]), 1.0)
    rc = np.zeros((m, len(moves)))
    np.add.at(rc, (xs[~still], np.searchsorted(moves, dms[~still])), 1.0)
    nobs = qc.sum(1) + rc.sum(1)
    seen = nobs > 0
    w = np.where(seen, nobs, 1.0)[:, None]
    q, r, tt = qc / w, rc / w, tc / w
    # states from which a mid move is reachable through unchanged-mid transitions
    reach = r.sum(1) > 0
    while True:
        more = reach | ((q[:, reach].sum(1) > 0) & seen)
        if (more == reach).all():
            break
        reach = more
    idx = np.nonzero(reach)[0]
    k_tick = 0.5 * moves
    g1 = np.zeros(m)
    bmat = np.zeros((m, m))
    if len(idx):
        a = np.eye(len(idx)) - q[np.ix_(idx, idx)]
        g1[idx] = np.linalg.solve(a, r[idx] @ k_tick)
        bmat[np.ix_(idx, np.arange(m))] = np.linalg.solve(a, tt[idx])
    gi = g1.copy()
    total = g1.copy()
    for _ in range(n_terms - 1):
        gi = bmat @ gi
        total += gi
    total[~reach] = np.nan
    g1_out = np.where(reach, g1, np.nan)
    shape = (n_spread, n_imb)
    used = np.concatenate([i0, i1])
    return MicroPriceTable(
        adjust_tick=total.reshape(shape).T.copy(),
        g1_tick=g1_out.reshape(shape).T.copy(),
        n_obs=nobs.astype(np.int64).reshape(shape).T.copy(),
        clock_ns=clock_ns,
        lag=int(lag),
        start_ts=int(t[used.min()]),
        end_ts=int(t[used.max()]),
        n_samples=n,
        n_transitions=int(len(i0)),
        n_terms=int(n_terms),
        max_move_tick=float(max_move_tick),
    )
