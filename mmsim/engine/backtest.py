"""The engine's Python side: allocate the kernel's state and feed it chunks of events.

:class:`Engine` owns every array the numba kernel (:func:`mmsim.engine.nb.run_nb`) reads and
writes. It is built from an :class:`mmsim.resolve.EngineSpec`, in which every choice of the
experiment is already made (:func:`mmsim.resolve.resolve`); the engine only copies the spec's
named fields into the kernel's arrays. Importing this module compiles the kernels (or loads
them from the cache); the orchestration of a whole run (checks first, then compile, replay and
outputs) is :func:`mmsim.runner.backtest`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from numpy.lib.recfunctions import repack_fields

from mmsim.book.nb import (
    B_FULL,
    B_UNKNOWN,
    L_NEG,
    L_OOW,
    grow_l3_book,
    new_l3_book,
    new_ladder,
)
from mmsim.contracts import CTX_SIZE, HEDGE_OUT_SIZE, MAX_INSTRUMENTS, QUOTE_SIZE
from mmsim.dtypes import (
    ENGINE_PARAMS_DTYPE,
    ENGINE_STATE_DTYPE,
    EQUITY_DTYPE,
    EVENT_DTYPE,
    FEED_DTYPE,
    FILL_DTYPE,
    MAX_OUR_ORDERS,
    ORDER_LOG_DTYPE,
    OUR_ORDER_DTYPE,
    RESPONSE_DTYPE,
    SIGNAL_RECORD_DTYPE,
)
from mmsim.engine import nb as enb
from mmsim.enums import TimeInForce
from mmsim.models.nb import LATENCY_PARAMS
from mmsim.models.nb import LatencyModel as KernelLatencyModel
from mmsim.resolve import (
    BreakerAction,
    EngineSpec,
    FeedMode,
    FillMode,
    KernelBinding,
    LadderUnit,
    LatencyModel,
    LimitSpec,
    Placement,
    QueueModel,
    QuoteTif,
    QuotingSpec,
    ReplaceMode,
    TakerTif,
)
from mmsim.signals.spec import SIGNAL_PARAMS_DTYPE, SignalCtx, new_signal_state

# the spec's enums → the kernel's codes (every member has one: tests/test_resolve.py)
QUEUE_CODES = {
    QueueModel.FIFO: enb.QUEUE_FIFO,
    QueueModel.RISK_AVERSE: enb.QUEUE_RISK_AVERSE,
    QueueModel.POWER: enb.QUEUE_POWER,
    QueueModel.LOG: enb.QUEUE_LOG,
}
LATENCY_CODES = {
    LatencyModel.CONSTANT: KernelLatencyModel.CONSTANT,
    LatencyModel.LOGNORMAL: KernelLatencyModel.LOGNORMAL,
    LatencyModel.INTERPOLATED: KernelLatencyModel.INTERPOLATED,
}
QUOTE_TIF_CODES = {QuoteTif.POST_ONLY: TimeInForce.POST_ONLY, QuoteTif.GTC: TimeInForce.GTC,
                   QuoteTif.IOC: TimeInForce.IOC, QuoteTif.FOK: TimeInForce.FOK}
TAKER_TIF_CODES = {TakerTif.MARKET: TimeInForce.MARKET, TakerTif.IOC: TimeInForce.IOC,
                   TakerTif.FOK: TimeInForce.FOK}
BREAKER_CODES = {BreakerAction.PAUSE: enb.BREAKER_PAUSE, BreakerAction.WIDEN: enb.BREAKER_WIDEN}
PLACEMENT_CODES = {Placement.POLICY: enb.PLACE_POLICY, Placement.JOIN: enb.PLACE_JOIN,
                   Placement.IMPROVE: enb.PLACE_IMPROVE, Placement.BEHIND: enb.PLACE_BEHIND}
LADDER_UNIT_CODES = {LadderUnit.TICKS: enb.LADDER_TICKS, LadderUnit.BPS: enb.LADDER_BPS}
FEED_MODE_CODES = {FeedMode.DATA_LOCAL_TS: enb.FEED_DATA_LOCAL,
                   FeedMode.EXCHANGE_PLUS_LATENCY: enb.FEED_EXCH_PLUS}
REPLACE_CODES = {ReplaceMode.MODIFY: enb.REPLACE_MODIFY,
                 ReplaceMode.CANCEL_REPLACE: enb.REPLACE_CANCEL}
#: ``C_WHOLE_FILLS`` (1: an execution reaching a resting order fills all of it)
FILL_MODE_CODES = {FillMode.PARTIAL: 0, FillMode.WHOLE_ORDER: 1}


class PolicyError(RuntimeError):
    """A policy or hedger kernel returned a non-zero code."""


class EngineCapacityError(RuntimeError):
    """The L3 book's order table is full: raise ``engine.max_book_orders``."""


def _nan_if_none(x: float | None) -> float:
    return np.nan if x is None else float(x)


def _risk_params(spec: EngineSpec | None) -> dict[str, object]:
    """The ENGINE_PARAMS_DTYPE fields of the risk limits and quote management of ``spec``
    (:class:`mmsim.resolve.LimitSpec`, :class:`mmsim.resolve.QuotingSpec`); None: all off
    (the instruments a policy does not quote)."""
    lim = spec.limits if spec is not None else LimitSpec(None, 0)
    q = spec.quoting if spec is not None else QuotingSpec()
    offsets = np.zeros(ENGINE_PARAMS_DTYPE["ladder_offsets"].shape, dtype=np.float64)
    offsets[: len(q.ladder_offsets)] = q.ladder_offsets
    out = {
        "stop_quoting_ts": lim.stop_quoting_ts or 0,
        "flatten_ts": lim.flatten_ts or 0,
        "stop_cooldown_ns": -1 if lim.stop_cooldown_ns is None else lim.stop_cooldown_ns,
        "flatten_on_stop": 1 if lim.flatten_on_stop else 0,
        "flatten_tif": TAKER_TIF_CODES[lim.flatten_tif],
        "flatten_slippage_ticks": lim.flatten_slippage_ticks,
        "soft_position_lots": -1 if lim.soft_position_lots is None else lim.soft_position_lots,
        "vol_breaker_action": BREAKER_CODES[lim.vol_breaker_action],
        "ofi_action": BREAKER_CODES[lim.ofi_action],
        "min_quote_life_ns": q.min_quote_life_ns,
        "refresh_threshold_ticks": q.refresh_threshold_ticks,
        "placement": PLACEMENT_CODES[q.placement],
        "behind_ticks": q.behind_ticks,
        "skip_below_break_even": 1 if q.skip_below_break_even else 0,
        "skip_at_inventory_limit": 1 if q.skip_at_inventory_limit else 0,
        "ladder_levels": len(q.ladder_offsets),
        "ladder_unit": LADDER_UNIT_CODES[q.ladder_unit],
        "max_notional": _nan_if_none(lim.max_notional),
        "soft_widen_frac": lim.soft_widen_frac,
        "max_loss": _nan_if_none(lim.max_loss),
        "max_drawdown": _nan_if_none(lim.max_drawdown),
        "vol_breaker_ratio": _nan_if_none(lim.vol_breaker_ratio),
        "vol_fast_halflife_s": lim.vol_fast_halflife_s,
        "vol_slow_halflife_s": lim.vol_slow_halflife_s,
        "vol_breaker_spread_mult": lim.vol_breaker_spread_mult,
        "ofi_pause_lots": _nan_if_none(lim.ofi_pause_lots),
        "ofi_spread_mult": lim.ofi_spread_mult,
        "size_inventory_factor": q.size_inventory_factor,
        "break_even_margin_bps": q.break_even_margin_bps,
        "max_vol_tick": _nan_if_none(q.max_vol_tick),
        "ladder_size_growth": q.ladder_size_growth,
        "ladder_offsets": offsets,
    }
    on = (lim.stop_quoting_ts is not None or lim.flatten_ts is not None
          or lim.soft_position_lots is not None or lim.max_notional is not None
          or lim.max_loss is not None or lim.max_drawdown is not None
          or lim.vol_breaker_ratio is not None or lim.ofi_pause_lots is not None
          or q != QuotingSpec())
    out["risk_on"] = 1 if on else 0
    return out


def _state_vector(k: KernelBinding) -> np.ndarray:
    st = np.zeros(max(k.state_size, len(k.state_init)), dtype=np.float64)
    st[: len(k.state_init)] = k.state_init
    return st


class Engine:
    """State and driver of one replay (see :mod:`mmsim.engine.nb` for the model).

    Parameters
    ----------
    spec : mmsim.resolve.EngineSpec
        The resolved experiment (:func:`mmsim.resolve.resolve`, or
        :func:`mmsim.resolve.resolve_for_events` for hand-built events).

    Attributes
    ----------
    spec : EngineSpec
    policy, hedger : mmsim.resolve.KernelBinding
    pparams, hparams : numpy.ndarray of float64
        The kernels' parameter vectors (a copy of the spec's: may be changed between chunks).
    pstate, hstate : numpy.ndarray of float64
        The kernels' state vectors.
    legs : tuple of mmsim.resolve.LegSpec
        The instruments, the quoted one first.
    state : numpy.ndarray of ENGINE_STATE_DTYPE, shape (n_instruments,)
        The kernel's state, one named record per instrument (``state[0]["position"]``); the
        run's clocks and counters of decisions live in instrument 0's.
    params : numpy.ndarray of ENGINE_PARAMS_DTYPE, shape (n_instruments,)
        The kernel's settings per instrument (``params[1]["taker_fee_bps"]``).
    lat_all : numpy.ndarray of float64, shape (n_instruments, L)
        Each instrument's latency vector (:mod:`mmsim.models.nb`).
    st, cfg, lat, ours, resp, ring, book, llvl, lsc
        The quoted instrument's rows of the above (views): ``st["cash"]``, ``cfg["max_ours"]``.
    books : list of dict
        Each instrument's book arrays (views of the stacked ones the kernel reads).
    sig_state, sig_params : numpy.ndarray, shape (n_instruments,)
        The market signals' state (SIGNAL_STATE_DTYPE, zeroed) and settings
        (SIGNAL_PARAMS_DTYPE: the spec's ``signals`` for every instrument, or zeroed = off).
    sig : numpy.ndarray of SIGNAL_RECORD_DTYPE
        The signal rows' buffer (``EQ_BUF`` long with ``signals.record``, else empty); with
        it, each flush passes ``signals=`` (the asked columns, ``ts`` and ``instrument``)
        to the sink as a fourth, keyword argument.
    """

    FILL_BUF = 1 << 15
    OLOG_BUF = 1 << 17
    EQ_BUF = 1 << 15
    RESP_CAP = 1 << 12

    def __init__(self, spec: EngineSpec):
        self.spec = spec
        cap, clk = spec.capacities, spec.clocks
        legs = spec.legs  # the quoted instrument first
        self.legs = legs
        ni = len(legs)
        if ni > MAX_INSTRUMENTS:
            raise ValueError(f"at most {MAX_INSTRUMENTS} instruments in one run, got {ni}")
        w = cap.book_width_ticks
        self.max_book_orders = cap.max_book_orders
        nmax = cap.max_our_orders
        if not 1 <= nmax <= MAX_OUR_ORDERS:
            raise ValueError(f"max_our_orders: 1..{MAX_OUR_ORDERS}, got {nmax}")
        resp_cap = max(self.RESP_CAP, 16 * nmax)
        # one book per instrument, stacked on a leading instrument axis; they start small
        # (a hash table that fits in cache) and double together on demand
        books, ladders = [], []
        for leg in legs:
            base = leg.ref_price_tick - w // 2
            books.append(new_l3_book(base, w, min(4096, self.max_book_orders)))
            ladders.append(new_ladder(base, w))
        self._stack_books(books)
        self.llvl_all = np.stack([lv for lv, _ in ladders])
        self.lsc_all = np.stack([sc for _, sc in ladders])
        self.ring_all = np.zeros((ni, cap.feed_buffer), dtype=FEED_DTYPE)
        self.ours_all = np.zeros((ni, nmax), dtype=OUR_ORDER_DTYPE)
        self.ours_all["instrument"] = np.arange(ni)[:, None]
        self.resp_all = np.zeros((ni, resp_cap), dtype=RESPONSE_DTYPE)
        st = np.zeros(ni, dtype=ENGINE_STATE_DTYPE)
        st["t0"] = -1
        for k in ("next_decision_ts", "next_equity_ts", "next_request_ts", "next_response_ts",
                  "next_funding_ts"):
            st[k] = enb.INF_TS
        st["feed_last_ts"] = -enb.INF_TS
        st["last_equity_ts"] = -enb.INF_TS
        st["dirty"] = 1
        for i in range(ni):  # one random stream per instrument (instrument 0: the seed's)
            seed = spec.seed + i * 0x632BE59BD9B4E019
            st["rng"][i] = (seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) % (1 << 63) or 1
        st["vol_var"] = spec.volatility.init_tick ** 2
        st["vol_fast_var"] = spec.volatility.init_tick ** 2
        st["vol_slow_var"] = spec.volatility.init_tick ** 2
        st["risk_stop_until_ts"] = enb.INF_TS
        for k in ("vol_last_mid", "mark_price", "trade_hi_tick", "trade_lo_tick",
                  "risk_equity_start", "risk_equity_peak"):
            st[k] = np.nan
        self.state = st
        cfg = np.zeros(ni, dtype=ENGINE_PARAMS_DTYPE)
        lats = []
        for i, leg in enumerate(legs):
            inst = leg.instrument
            mp = leg.max_position_lots
            cfg[i] = tuple({
                "decision_ns": clk.decision_interval_ns,
                "equity_ns": clk.equity_interval_ns,
                "feed_mode": FEED_MODE_CODES[leg.feed.mode],
                "feed_ns": leg.feed.nanos,
                "latency_model": LATENCY_CODES[leg.latency.model],
                "quote_tif": QUOTE_TIF_CODES[spec.orders.quote_tif],
                "max_position_lots": -1 if mp is None else mp,
                "replace_mode": REPLACE_CODES[spec.orders.replace],
                "has_hedger": 1 if spec.has_hedger else 0,
                "ctx_depth": 1 if spec.policy.spec.reads_depth or (
                    spec.has_hedger and spec.hedger.spec.reads_depth) else 0,
                "target_position_lots": spec.limits.target_position_lots if i == 0 else 0,
                "end_ts": 0 if clk.end_ts is None else clk.end_ts,
                "decide_on_fill": 1 if clk.decide_on_fill else 0,
                "warmup_ns": clk.warmup_ns,
                "max_ours": nmax,
                "queue_model": QUEUE_CODES[leg.queue.model],
                "ladder_follows_touch": 1 if leg.queue.ladder_follows_touch else 0,
                "whole_fills": FILL_MODE_CODES[leg.fills],
                "tick_size": inst.tick_size,
                "lot_size": inst.lot_size,
                "multiplier": inst.multiplier,
                "maker_fee_bps": inst.maker_fee_bps,
                "taker_fee_bps": inst.taker_fee_bps,
                "maker_fee_per_lot": inst.maker_fee_per_lot,
                "taker_fee_per_lot": inst.taker_fee_per_lot,
                "is_inverse": 1.0 if inst.is_inverse else 0.0,
                "vol_halflife_s": spec.volatility.halflife_s,
                "vol_init_tick": spec.volatility.init_tick,
                "queue_power_n": leg.queue.power_n,
                # risk limits and quote management: the quoted instrument's
                **_risk_params(spec if i == 0 else None),
            }[name] for name in ENGINE_PARAMS_DTYPE.names)
            lats.append(leg.latency.vector)
        self.params = cfg
        lat = np.zeros((ni, max([LATENCY_PARAMS] + [len(v) for v in lats])), dtype=np.float64)
        for i, vec in enumerate(lats):
            lat[i, : len(vec)] = vec
        self.lat_all = lat
        # the quoted instrument's rows (views), as a single-instrument engine has them
        self.st, self.cfg = st[0], cfg[0]
        self.lat, self.ours, self.resp, self.ring = lat[0], self.ours_all[0], \
            self.resp_all[0], self.ring_all[0]
        self.llvl, self.lsc = self.llvl_all[0], self.lsc_all[0]
        self.policy = spec.policy
        self.pparams = np.array(spec.policy.params, dtype=np.float64)
        self.pstate = _state_vector(spec.policy)
        self.hedger = spec.hedger
        self.hparams = np.array(spec.hedger.params, dtype=np.float64)
        self.hstate = _state_vector(spec.hedger)
        # the policy's and hedger's kernels compile while the engine's compile child works
        self._run = enb.compile_engine(also=lambda: (spec.policy.kernel, spec.hedger.kernel))
        self._pkernel = spec.policy.kernel
        self._hkernel = spec.hedger.kernel
        self.ctx = np.zeros(CTX_SIZE, dtype=np.float64)
        self.qout = np.zeros(QUOTE_SIZE, dtype=np.float64)
        self.hout = np.zeros(HEDGE_OUT_SIZE, dtype=np.float64)
        self.fills = np.zeros(self.FILL_BUF, dtype=FILL_DTYPE)
        self.olog = np.zeros(self.OLOG_BUF, dtype=ORDER_LOG_DTYPE)
        self.eq = np.zeros(self.EQ_BUF, dtype=EQUITY_DTYPE)
        self.counts = np.zeros(enb.C_SIG + 1, dtype=np.int64)
        self.sig_state = new_signal_state(ni)
        self.sig_params = np.zeros(ni, dtype=SIGNAL_PARAMS_DTYPE)
        sig = spec.signals
        if sig is not None:
            for i in range(ni):
                self.sig_params[i] = sig.params(i)[0]
        self.sig_values = np.full((ni, SignalCtx.SIZE), np.nan)
        self._sig_fields = ["ts", *sig.names, "instrument"] if sig is not None and \
            sig.record else None
        # at most one signal row per equity row: as long as the equity buffer, the equity
        # flush check covers it
        self.sig = np.zeros(self.EQ_BUF if self._sig_fields else 0, dtype=SIGNAL_RECORD_DTYPE)
        self.scratch = np.zeros(enb.SCRATCH_FIXED + nmax, dtype=np.int64)
        self._no_inst = np.zeros(0, dtype=np.uint8)

    def _stack_books(self, books: list[dict[str, np.ndarray]]) -> None:
        """Stack per-instrument books into ``self.B`` (leading instrument axis); ``self.books``
        then holds each instrument's arrays as views of it, and ``self.book`` the quoted one."""
        self.B = {k: np.stack([b[k] for b in books]) for k in books[0]}
        self.books = [{k: v[i] for k, v in self.B.items()} for i in range(len(books))]
        self.book = self.books[0]

    def _grow_books(self) -> None:
        grown = []
        for b in self.books:
            d = {k: v.copy() for k, v in b.items()}
            grow_l3_book(d)
            grown.append(d)
        self._stack_books(grown)

    def _call(self, events: np.ndarray, final: bool, inst_of: np.ndarray | None) -> int:
        b = self.B
        return self._run(
            events, self._no_inst if inst_of is None else inst_of, final, self._pkernel,
            self._hkernel,
            enb.Work(self.pparams, self.pstate, self.hparams, self.hstate, self.ctx, self.qout,
                     self.hout, self.scratch),
            enb.Books(b["ordt"], b["free"], b["hkeys"], b["hvals"], b["bs"], b["lvl"], b["anon"],
                      b["sc"]),
            enb.Local(self.llvl_all, self.lsc_all, self.ring_all, self.sig_state,
                      self.sig_params, self.sig_values),
            enb.Orders(self.ours_all, self.resp_all),
            self.state, self.params, self.lat_all,
            enb.Out(self.fills, self.olog, self.eq, self.counts, self.sig), enb._run_internal,
        )

    def _flush(self, sink: Callable[[np.ndarray, np.ndarray, np.ndarray], None]) -> None:
        c = self.counts
        if self._sig_fields is None:
            sink(self.fills[: c[0]].copy(), self.olog[: c[1]].copy(), self.eq[: c[2]].copy())
        else:
            sink(self.fills[: c[0]].copy(), self.olog[: c[1]].copy(), self.eq[: c[2]].copy(),
                 signals=repack_fields(self.sig[: c[enb.C_SIG]][self._sig_fields]))
        c[:] = 0

    def feed(self, events: np.ndarray, sink, final: bool = False,
             instrument: np.ndarray | None = None) -> None:
        """Run one chunk (``EVENT_DTYPE``, sorted by ``exch_ts``) through the kernel.

        Parameters
        ----------
        events : numpy.ndarray of EVENT_DTYPE
        sink : callable
            Receives ``(fills, orders, equity)`` record arrays whenever buffers fill up.
        final : bool
            The last chunk: run every scheduled action up to the last event, then flush.
        instrument : numpy.ndarray of uint8, optional
            The instrument index of each event (:func:`mmsim.data.merge.merge_chunks`); None:
            every event is the quoted instrument's.

        Raises
        ------
        ValueError
            ``instrument`` has the wrong length or names an instrument not in the run.
        PolicyError
            If the policy or hedger returned an error code.
        EngineCapacityError
            If the book's order table overflowed.
        """
        if instrument is not None:
            instrument = np.ascontiguousarray(instrument, dtype=np.uint8)
            if len(instrument) != len(events):
                raise ValueError(f"instrument: {len(instrument)} indices for "
                                 f"{len(events)} events")
            if len(instrument) and int(instrument.max()) >= len(self.legs):
                raise ValueError(f"instrument: index {int(instrument.max())} but the run has "
                                 f"{len(self.legs)} instrument(s)")
        while True:
            rc = self._call(events, final, instrument)
            if rc == enb.RET_FLUSH:
                self._flush(sink)
                continue
            if rc == enb.ERR_POLICY:
                raise PolicyError(self.policy.spec.describe_error(int(self.st["error_code"])))
            if rc == enb.ERR_HEDGER:
                raise PolicyError(self.hedger.spec.describe_error(int(self.st["error_code"])))
            if rc == enb.ERR_BOOK_FULL:
                if self.B["ordt"].shape[1] * 2 > self.max_book_orders:
                    raise EngineCapacityError(
                        f"more than {self.max_book_orders:,} live orders in the book: "
                        "raise engine.max_book_orders"
                    )
                self._grow_books()
                continue
            break
        if final:
            self._flush(sink)

    def run(self, chunks: Iterable, sink) -> None:
        """Run every chunk, then the final scheduled actions; flushes into ``sink``.

        ``chunks`` yields event arrays, or ``(events, instrument)`` pairs from
        :func:`mmsim.data.merge.merge_chunks` for a run of several instruments. One chunk
        is held at a time: the final scheduled actions run on an empty call after the last
        one (the same actions, in the same order, as on the last chunk itself)."""
        fed = False
        it = iter(chunks)
        while True:
            c = next(it, None)
            if c is None:
                break
            if isinstance(c, tuple):
                self.feed(c[0], sink, instrument=c[1])
            else:
                self.feed(c, sink)
            fed = True
            del c  # not held while the next chunk is read
        if fed:
            self.feed(np.zeros(0, dtype=EVENT_DTYPE), sink, final=True)

    def stats(self) -> dict[str, int]:
        """Counters of the run (events, decisions, rejects, data anomalies), summed over the
        instruments (:meth:`instrument_stats` gives them one by one)."""
        per = [self.instrument_stats(i) for i in range(len(self.legs))]
        out = {k: sum(p[k] for p in per) for k in per[0]}
        out["decisions"] = int(self.st["n_decisions"])
        # money is in each instrument's settlement currency: not summed across them
        out["funding_paid"] = per[0]["funding_paid"]
        return out

    def instrument_stats(self, i: int) -> dict[str, int]:
        """The counters of instrument ``i`` (``decisions`` is the run's, on instrument 0)."""
        st, b = self.state[i], self.books[i]
        return {
            "events": int(st["n_events"]),
            "decisions": int(st["n_decisions"]),
            "fills": int(st["n_fills"]),
            "unknown_order_refs": int(b["bs"][B_UNKNOWN]),
            "book_full_drops": int(b["bs"][B_FULL]),
            "out_of_window_events": int(b["sc"][L_OOW]),
            "negative_level_clamps": int(b["sc"][L_NEG]),
            "feed_clamped": int(st["n_feed_clamped"]),
            "feed_buffer_overflows": int(st["n_feed_overflows"]),
            "window_moves": int(st["n_recenters"]),
            "funding_payments": int(st["n_funding"]),
            "funding_paid": float(st["funding"]),
            "submits_dropped_no_slot": int(st["n_slot_full"]),
        }

