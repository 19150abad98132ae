"""Probe schedules, and the replays that follow probes through L3 truth and L2 models.

Schedules (:data:`~mmsim.queue_score.nb.PROBE_DTYPE` arrays, sorted by ``place_ts``):

* :func:`random_probes`: a seeded schedule, times uniform over the data's span
  (:func:`probe_span`), both sides, ``{0, 1, 2}`` ticks behind the touch;
* :func:`policy_probes`: the placements of a strategy run (its orders log), so the scorecard
  weighs the queue positions a policy actually takes.

Replays (MODELS.md §13, §6; the kernels are :mod:`mmsim.queue_score.nb`):

* :func:`replay_truth`: each probe's fill time and quantity under exact L3 FIFO;
* :func:`replay_model`: the same under one L2 queue model on the derived market-by-price
  stream (:func:`mmsim.data.l3_to_l2.l3_to_l2`).

Both return :data:`~mmsim.queue_score.nb.PROBE_RESULT_DTYPE` records in the probes' order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from mmsim.book.nb import grow_l3_book, new_l3_book, new_ladder
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EVENT_KIND_NAMES, EventKind
from mmsim.models.queue import QUEUE_FIFO, QUEUE_MODELS
from mmsim.queue_score.nb import (
    NO_TS,
    PASS_STATE_DTYPE,
    PROBE_DTYPE,
    PROBE_LIVE_DTYPE,
    PROBE_RESULT_DTYPE,
    Anchor,
    PassCode,
    ProbeStatus,
    l2_probe_pass_nb,
    l3_probe_pass_nb,
)

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_OFFSETS",
    "ModelSpec",
    "parse_models",
    "policy_probes",
    "probe_span",
    "random_probes",
    "replay_model",
    "replay_truth",
]

#: ticks behind the touch of the random schedule
DEFAULT_OFFSETS = (0, 1, 2)
#: the models scored by default (``--models``)
DEFAULT_MODELS = "risk_averse,power:1,power:2,power:3,log"

#: the L2 models of ``queue.model`` (every one but L3's FIFO)
_MODEL_KINDS = {k: v for k, v in QUEUE_MODELS.items() if v != QUEUE_FIFO}


class ModelSpec(NamedTuple):
    """One L2 queue model to score (MODELS.md §6).

    Attributes
    ----------
    label : str
        As given (``risk_averse``, ``power:2``, ``log``): the summary's ``model`` column.
    kind : int
        ``QUEUE_RISK_AVERSE``, ``QUEUE_POWER`` or ``QUEUE_LOG`` (:mod:`mmsim.models.queue`).
    power_n : float
        Exponent of the power model (unused by the others).
    """

    label: str
    kind: int
    power_n: float

    @property
    def slug(self) -> str:
        """The label as a column-name prefix: ``power:2`` → ``power_2``."""
        return self.label.replace(":", "_")


def parse_models(text: str | Sequence[str]) -> list[ModelSpec]:
    """Models from ``"risk_averse,power:1,power:2.5,log"`` (or a list of such items).

    ``power:<n>`` takes any ``n > 0``; ``power`` alone is ``power:2`` (the config default).

    Raises
    ------
    ValueError
        Naming the bad item: an unknown model, a bad or non-positive exponent, an exponent
        on a model without one, a repeated model, or no model at all.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[ModelSpec] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        name, _, arg = item.partition(":")
        name = name.strip()
        if name not in _MODEL_KINDS:
            raise ValueError(f"--models: unknown queue model {item!r} (known: "
                             f"{', '.join(_MODEL_KINDS)}; power takes an exponent, power:2)")
        n = 2.0
        if arg:
            if name != "power":
                raise ValueError(f"--models: {item!r}: only power takes an exponent")
            try:
                n = float(arg)
            except ValueError:
                raise ValueError(f"--models: {item!r}: exponent {arg!r} is not a number"
                                 ) from None
            if not np.isfinite(n) or n <= 0:
                raise ValueError(f"--models: {item!r}: the exponent must be > 0")
        label = f"power:{n:g}" if name == "power" else name
        if any(m.label == label for m in out):
            raise ValueError(f"--models: {label!r} is given twice")
        out.append(ModelSpec(label, _MODEL_KINDS[name], n))
    if not out:
        raise ValueError("--models: no model given")
    return out


# ---- schedules -------------------------------------------------------------------------------


def probe_span(events: np.ndarray, warmup_ns: int = 0) -> tuple[int, int]:
    """The exchange-time span probes are drawn from: ``[start, end)`` ns.

    ``start``: the first event after the opening snapshot (the one after the first
    ``SNAPSHOT_END``; the first event when there is none), and at least ``warmup_ns`` after
    the first event (``engine.warmup_nanos``); ``end``: the last event's time.

    Raises
    ------
    ValueError
        If there are no events, or nothing is left after the snapshot and the warm-up.
    """
    if len(events) == 0:
        raise ValueError("probe_span: no events")
    ts = events["exch_ts"]
    ends = np.flatnonzero(events["kind"] == EventKind.SNAPSHOT_END)
    first = int(ts[ends[0] + 1]) if ends.size and ends[0] + 1 < len(ts) else int(ts[0])
    start = max(first, int(ts[0]) + int(warmup_ns))
    end = int(ts[-1])
    if end <= start:
        raise ValueError(f"probe_span: nothing to probe: the data ends at {end} ns, the live "
                         f"span (after the snapshot and engine.warmup_nanos) starts at {start}")
    return start, end


def _sorted_probes(place_ts, side, price, offset, qty, anchor) -> np.ndarray:
    order = np.lexsort((np.arange(len(place_ts)), place_ts))
    p = np.zeros(len(place_ts), dtype=PROBE_DTYPE)
    p["probe_id"] = np.arange(len(place_ts))
    p["place_ts"] = np.asarray(place_ts, dtype=np.int64)[order]
    p["side"] = np.asarray(side, dtype=np.int64)[order]
    p["price_tick"] = np.asarray(price, dtype=np.int64)[order]
    p["offset_ticks"] = np.asarray(offset, dtype=np.int64)[order]
    p["qty"] = qty
    p["anchor"] = anchor
    return p


def random_probes(
    n: int,
    seed: int | np.random.Generator,
    span: tuple[int, int],
    *,
    lots: int = 1,
    offsets: Sequence[int] = DEFAULT_OFFSETS,
) -> np.ndarray:
    """A seeded random schedule of ``n`` touch-anchored probes.

    Drawn with ``np.random.default_rng(seed)``, in this order: the times (int64 ns, uniform
    on ``[start, end)``), the sides (+1 / -1, equally likely) and the offsets (uniform over
    ``offsets``, ticks behind the touch of the probe's side at placement). Probe ids are
    ``0..n-1`` in time order.

    Parameters
    ----------
    n : int
        Number of probes, >= 1.
    seed : int or numpy.random.Generator
        A seed, or a generator to continue drawing from.
    span : (int, int)
        ``[start, end)`` exchange time, ns (:func:`probe_span`).
    lots : int
        Size of each probe, lots (>= 1).
    offsets : sequence of int
        Ticks behind the touch (>= 0; 0 = join the touch).

    Returns
    -------
    numpy.ndarray
        PROBE_DTYPE[n], sorted by ``place_ts`` (anchor ``TOUCH``).

    Raises
    ------
    ValueError
        ``n < 1``, ``lots < 1``, an empty span, or a negative or missing offset.
    """
    if n < 1:
        raise ValueError(f"random_probes: n must be >= 1, got {n}")
    if lots < 1:
        raise ValueError(f"random_probes: lots must be >= 1, got {lots}")
    offs = np.asarray(list(offsets), dtype=np.int64)
    if offs.size == 0 or (offs < 0).any():
        raise ValueError(f"random_probes: offsets must be ticks >= 0, got {list(offsets)}")
    start, end = int(span[0]), int(span[1])
    if end <= start:
        raise ValueError(f"random_probes: empty span [{start}, {end})")
    rng = np.random.default_rng(seed)
    t = rng.integers(start, end, size=n, dtype=np.int64)
    side = rng.integers(0, 2, size=n, dtype=np.int64) * 2 - 1
    off = offs[rng.integers(0, offs.size, size=n)]
    return _sorted_probes(t, side, np.zeros(n, np.int64), off, lots, Anchor.TOUCH)


def policy_probes(
    orders,
    tick_size: float,
    *,
    n: int | None = None,
    seed: int = 0,
    lots: int = 1,
    instrument: str | None = None,
) -> np.ndarray:
    """Probes at the placements of a strategy run: the (exchange time, side, price) of each
    accepted quote, from its orders log (:func:`mmsim.results.load`).

    A placement is an ``ack`` row, or a ``modify_ack`` that moved the order's price (it
    lost its place in the queue, MODELS.md §6); hedge orders are left out. With more
    placements than ``n``, ``n`` of them are drawn without replacement
    (``np.random.default_rng(seed)``), kept in time order.

    Parameters
    ----------
    orders : pandas.DataFrame
        The run's orders log (columns ``exch_ts``, ``order_id``, ``event``, ``side``,
        ``price``, ``is_hedge``, ``instrument``), as stored (``datetimes=False``).
    tick_size : float
        Converts ``price`` to ticks.
    n : int, optional
        Most probes; None: every placement.
    seed : int
    lots : int
        Size of each probe, lots (the policy's own quote size is not used).
    instrument : str, optional
        Only this instrument's rows (a run of several instruments); None: every row.

    Returns
    -------
    numpy.ndarray
        PROBE_DTYPE, sorted by ``place_ts`` (anchor ``PRICE``).

    Raises
    ------
    ValueError
        The log lacks a column, holds no placement, a price is off the tick grid, or
        ``lots < 1`` / ``n < 1``.
    """
    if lots < 1:
        raise ValueError(f"policy_probes: lots must be >= 1, got {lots}")
    if n is not None and n < 1:
        raise ValueError(f"policy_probes: n must be >= 1, got {n}")
    need = {"exch_ts", "order_id", "event", "side", "price", "is_hedge"}
    missing = sorted(need - set(orders.columns))
    if missing:
        raise ValueError(f"policy_probes: the orders log has no column {missing[0]!r}")
    df = orders
    if instrument is not None and "instrument" in df.columns:
        df = df[df["instrument"] == instrument]
    df = df[~df["is_hedge"].astype(bool) & df["event"].isin(["ack", "modify_ack"])]
    df = df.reset_index(drop=True)
    prev = df.groupby("order_id", sort=False)["price"].shift(1)
    keep = (df["event"] == "ack") | (prev.notna() & (df["price"] != prev))
    df = df[keep.to_numpy()]
    if df.empty:
        raise ValueError("policy_probes: the orders log holds no accepted quote (no ack)")
    ticks = df["price"].to_numpy(np.float64) / tick_size
    px = np.rint(ticks).astype(np.int64)
    off = np.abs(ticks - px) > 1e-6 * np.maximum(1.0, np.abs(ticks))
    if off.any():
        r = int(df.index[np.flatnonzero(off)[0]])
        raise ValueError(f"policy_probes: orders log row {r}: field 'price' "
                         f"{df['price'].iloc[int(np.flatnonzero(off)[0])]} is not a multiple "
                         f"of the tick size {tick_size}")
    ts = df["exch_ts"].to_numpy(np.int64)
    side = np.where(df["side"].to_numpy() > 0, 1, -1).astype(np.int64)
    if n is not None and len(ts) > n:
        pick = np.sort(np.random.default_rng(seed).choice(len(ts), size=n, replace=False))
        ts, side, px = ts[pick], side[pick], px[pick]
    return _sorted_probes(ts, side, px, np.zeros(len(ts), np.int64), lots, Anchor.PRICE)


# ---- replays ---------------------------------------------------------------------------------


def _check_events(events: np.ndarray, who: str) -> np.ndarray:
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise TypeError(f"{who}: expected a 1-D EVENT_DTYPE array of events")
    ts = events["exch_ts"]
    bad = np.flatnonzero(ts[1:] < ts[:-1])
    if bad.size:
        r = int(bad[0]) + 1
        raise ValueError(f"{who}: events row {r}: field 'exch_ts' {int(ts[r])} is before the "
                         f"previous row's {int(ts[r - 1])} (events must be sorted by time)")
    return np.ascontiguousarray(events)


def _check_probes(probes: np.ndarray, who: str) -> None:
    if not isinstance(probes, np.ndarray) or probes.dtype != PROBE_DTYPE or probes.ndim != 1:
        raise TypeError(f"{who}: expected a 1-D PROBE_DTYPE array of probes")
    checks = (
        ("qty", probes["qty"] < 1, "must be >= 1 lot"),
        ("side", (probes["side"] != 1) & (probes["side"] != -1), "must be +1 (bid) or -1 (ask)"),
        ("anchor", ~np.isin(probes["anchor"], list(Anchor)),
         f"must be {Anchor.PRICE} (price) or {Anchor.TOUCH} (touch)"),
        ("offset_ticks", (probes["anchor"] == Anchor.TOUCH) & (probes["offset_ticks"] < 0),
         "must be >= 0 ticks behind the touch"),
    )
    for name, bad, what in checks:
        rows = np.flatnonzero(bad)
        if rows.size:
            r = int(rows[0])
            raise ValueError(f"{who}: probes row {r}: field {name!r} {what}, got "
                             f"{int(probes[name][r])}")


def _pass_arrays(probes: np.ndarray, width: int):
    order = np.argsort(probes["place_ts"], kind="stable")
    sp = np.ascontiguousarray(probes[order])
    m = len(sp)
    live = np.zeros(m, dtype=PROBE_LIVE_DTYPE)
    res = np.zeros(m, dtype=PROBE_RESULT_DTYPE)
    res["first_fill_ts"] = NO_TS
    res["done_ts"] = NO_TS
    res["status"] = ProbeStatus.PENDING
    res["price_tick"] = sp["price_tick"]
    res["offset_ticks"] = sp["offset_ticks"]
    head = np.full((2, width), -1, dtype=np.int64)
    state = np.zeros(1, dtype=PASS_STATE_DTYPE)
    state["bid_hi"] = -1
    state["ask_lo"] = -1
    return order, sp, live, res, head, state


def _unsorted(order: np.ndarray, res: np.ndarray) -> np.ndarray:
    out = np.empty_like(res)
    out[order] = res
    return out


def _bad_row(who: str, events: np.ndarray, row: int, what: str) -> ValueError:
    e = events[row]
    kind = EVENT_KIND_NAMES.get(int(e["kind"]), int(e["kind"]))
    return ValueError(f"{who}: events row {row} (field 'kind' = {kind}, exch_ts "
                      f"{int(e['exch_ts'])}): {what}")


def replay_truth(
    events: np.ndarray,
    probes: np.ndarray,
    *,
    base_tick: int,
    width: int,
    whole_fills: bool = False,
    max_orders: int = 1 << 24,
) -> np.ndarray:
    """Each probe's true fill under exact L3 FIFO (MODELS.md §6, §13).

    The events are replayed through the numba L3 book as the engine replays them in L3 mode,
    and every probe is followed as the engine follows a single resting order of ours with
    zero latency (:func:`mmsim.queue_score.nb.l3_probe_pass_nb`).

    Parameters
    ----------
    events : numpy.ndarray
        Canonical L3 events, EVENT_DTYPE[n], sorted by ``exch_ts`` (ticks, lots, int64 ns).
    probes : numpy.ndarray
        PROBE_DTYPE[m] (any order).
    base_tick, width : int
        The book's price window ``[base_tick, base_tick + width)`` in ticks (the engine's:
        ``ref_price_tick - book_width_ticks // 2`` and ``book_width_ticks``).
    whole_fills : bool
        ``matching.partial_fills: false``: an execution reaching a probe fills all of it.
        Default: partial fills (each execution fills up to its quantity).
    max_orders : int
        Most live book orders (the table starts at 4096 and doubles on demand).

    Returns
    -------
    numpy.ndarray
        PROBE_RESULT_DTYPE[m], in the order of ``probes``: the price each rested at
        (touch-anchored probes resolved), its offset from its own touch, the lots ahead at
        placement, first-fill and complete-fill times (ns, ``NO_TS`` = never), lots filled,
        and a :data:`~mmsim.queue_score.nb.ProbeStatus`.

    Raises
    ------
    TypeError
        ``events`` or ``probes`` has the wrong dtype.
    ValueError
        Naming the row and field: unsorted events, an event kind an L3 stream cannot carry
        (``LEVEL_SET``), a bad probe (size, side, anchor, offset), more than
        ``max_orders`` live orders.
    """
    who = "replay_truth"
    events = _check_events(events, who)
    _check_probes(probes, who)
    order, sp, live, res, head, state = _pass_arrays(probes, width)
    book = new_l3_book(int(base_tick), int(width), min(4096, int(max_orders)))
    while True:
        rc = l3_probe_pass_nb(events, sp, live, res, head, book["ordt"], book["free"],
                              book["hkeys"], book["hvals"], book["bs"], book["lvl"],
                              book["anon"], book["sc"], bool(whole_fills), state)
        if rc == PassCode.OK:
            break
        row = int(state["row"][0])
        if rc == PassCode.FULL:
            if 2 * book["ordt"].shape[0] > max_orders:
                raise _bad_row(who, events, row, f"more than max_orders={max_orders:,} live "
                                                 f"orders")
            grow_l3_book(book)
            continue
        raise _bad_row(who, events, row, "not an L3 event kind (an L2 stream?)")
    return _unsorted(order, res)


def replay_model(
    l2_events: np.ndarray,
    probes: np.ndarray,
    model: ModelSpec,
    *,
    base_tick: int,
    width: int,
    whole_fills: bool = False,
) -> np.ndarray:
    """Each probe's fill under one L2 queue model (MODELS.md §6, §13).

    The L2 events are replayed on a price ladder as the engine replays them in L2 mode, and
    every probe's front is moved by :func:`mmsim.models.queue.queue_front_nb`
    (:func:`mmsim.queue_score.nb.l2_probe_pass_nb`).

    Parameters
    ----------
    l2_events : numpy.ndarray
        EVENT_DTYPE[n], an L2 stream sorted by ``exch_ts``: the
        :func:`mmsim.data.l3_to_l2.l3_to_l2` reduction of the truth's events (same window).
    probes : numpy.ndarray
        PROBE_DTYPE[m] (any order); touch-anchored probes resolve against the ladder, which
        holds the L3 book's levels after every input event, so they rest where the truth's
        do.
    model : ModelSpec
    base_tick, width : int
        The ladder's window, ticks (as :func:`replay_truth`'s).
    whole_fills : bool
        As :func:`replay_truth`.

    Returns
    -------
    numpy.ndarray
        PROBE_RESULT_DTYPE[m], in the order of ``probes`` (as :func:`replay_truth`).

    Raises
    ------
    TypeError
        ``l2_events`` or ``probes`` has the wrong dtype.
    ValueError
        Naming the row and field: unsorted events, an L3 kind (``ADD``, ...) in the stream,
        a bad probe, or a model kind that is not an L2 model.
    """
    who = f"replay_model({model.label})"
    if model.kind not in _MODEL_KINDS.values():
        raise ValueError(f"{who}: kind {model.kind} is not an L2 queue model")
    l2_events = _check_events(l2_events, who)
    _check_probes(probes, who)
    order, sp, live, res, head, state = _pass_arrays(probes, width)
    lvl, sc = new_ladder(int(base_tick), int(width))
    rc = l2_probe_pass_nb(l2_events, sp, live, res, head, lvl, sc, int(model.kind),
                          float(model.power_n), bool(whole_fills), state)
    if rc != PassCode.OK:
        raise _bad_row(who, l2_events, int(state["row"][0]),
                       "not an L2 event kind (an L3 stream? reduce it with l3_to_l2)")
    return _unsorted(order, res)
