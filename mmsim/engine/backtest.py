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
    EQUITY_DTYPE,
    FEED_DTYPE,
    FILL_DTYPE,
    ORDER_LOG_DTYPE,
    OUR_ORDER_DTYPE,
    RESPONSE_DTYPE,
)
from mmsim.engine import nb as enb
from mmsim.enums import TimeInForce
from mmsim.models.nb import FEE_PARAMS, LATENCY_PARAMS
from mmsim.models.nb import LatencyModel as KernelLatencyModel
from mmsim.resolve import (
    EngineSpec,
    FeedMode,
    FillMode,
    KernelBinding,
    LatencyModel,
    QueueModel,
    QuoteTif,
    ReplaceMode,
)

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
QUOTE_TIF_CODES = {QuoteTif.POST_ONLY: TimeInForce.POST_ONLY, QuoteTif.GTC: TimeInForce.GTC}
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
    cfg, fp, lat : numpy.ndarray
        The kernel's integer settings, float settings and latency vector.
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
        st = np.zeros((ni, enb.ST_SIZE + 2 * nmax), dtype=np.int64)
        st[:, enb.S_T0] = -1
        for k in (enb.S_NEXT_DEC, enb.S_NEXT_EQ, enb.S_NEXT_REQ, enb.S_NEXT_RESP):
            st[:, k] = enb.INF_TS
        st[:, enb.S_RING_LAST] = -enb.INF_TS
        st[:, enb.S_DIRTY] = 1
        st[:, enb.S_NEXT_FUND] = enb.INF_TS
        st[:, enb.S_LAST_EQ_TS] = -enb.INF_TS
        for i in range(ni):  # one random stream per instrument (instrument 0: the seed's)
            seed = spec.seed + i * 0x632BE59BD9B4E019
            st[i, enb.S_RNG] = (seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) % (1 << 63) or 1
        self.st_all = st
        stf = np.zeros((ni, enb.STF_SIZE), dtype=np.float64)
        stf[:, enb.F_VOL_VAR] = spec.volatility.init_tick ** 2
        stf[:, enb.F_LAST_MID] = np.nan
        stf[:, enb.F_MARK] = np.nan
        stf[:, enb.F_TRADE_HI] = np.nan
        stf[:, enb.F_TRADE_LO] = np.nan
        self.stf_all = stf
        cfgi = np.zeros((ni, enb.CFG_SIZE), dtype=np.int64)
        fp = np.zeros((ni, enb.CFGF_SIZE), dtype=np.float64)
        lats = []
        for i, leg in enumerate(legs):
            c = cfgi[i]
            c[enb.C_DEC_NS] = clk.decision_interval_ns
            c[enb.C_EQ_NS] = clk.equity_interval_ns
            c[enb.C_FEED_MODE] = FEED_MODE_CODES[leg.feed.mode]
            c[enb.C_FEED_NS] = leg.feed.nanos
            c[enb.C_LAT_KIND] = LATENCY_CODES[leg.latency.model]
            c[enb.C_QUEUE] = QUEUE_CODES[leg.queue.model]
            c[enb.C_FOLLOW] = 1 if leg.queue.ladder_follows_touch else 0
            c[enb.C_QUOTE_TIF] = QUOTE_TIF_CODES[spec.orders.quote_tif]
            mp = leg.max_position_lots
            c[enb.C_MAX_POS] = -1 if mp is None else mp
            c[enb.C_REPLACE] = REPLACE_CODES[spec.orders.replace]
            c[enb.C_HAS_HEDGER] = 1 if spec.has_hedger else 0
            c[enb.C_TARGET_POS] = spec.limits.target_position_lots if i == 0 else 0
            c[enb.C_END_TS] = 0 if clk.end_ts is None else clk.end_ts
            c[enb.C_DECIDE_ON_FILL] = 1 if clk.decide_on_fill else 0
            c[enb.C_WARMUP_NS] = clk.warmup_ns
            c[enb.C_MAX_OURS] = nmax
            c[enb.C_WHOLE_FILLS] = FILL_MODE_CODES[leg.fills]
            inst = leg.instrument
            fp[i, :FEE_PARAMS] = [
                inst.tick_size,
                inst.lot_size,
                inst.multiplier,
                inst.maker_fee_bps,
                inst.taker_fee_bps,
                inst.maker_fee_per_lot,
                inst.taker_fee_per_lot,
                1.0 if inst.is_inverse else 0.0,
            ]
            fp[i, enb.CF_VOL_HALFLIFE_S] = spec.volatility.halflife_s
            fp[i, enb.CF_VOL_INIT_TICK] = spec.volatility.init_tick
            fp[i, enb.CF_QUEUE_N] = leg.queue.power_n
            lats.append(leg.latency.vector)
        self.cfg_all = cfgi
        self.fp_all = fp
        lat = np.zeros((ni, max([LATENCY_PARAMS] + [len(v) for v in lats])), dtype=np.float64)
        for i, vec in enumerate(lats):
            lat[i, : len(vec)] = vec
        self.lat_all = lat
        # the quoted instrument's rows (views), as a single-instrument engine has them
        self.st, self.stf, self.cfg, self.fp = st[0], stf[0], cfgi[0], fp[0]
        self.lat, self.ours, self.resp, self.ring = lat[0], self.ours_all[0], \
            self.resp_all[0], self.ring_all[0]
        self.llvl, self.lsc = self.llvl_all[0], self.lsc_all[0]
        self.policy = spec.policy
        self.pparams = np.array(spec.policy.params, dtype=np.float64)
        self.pstate = _state_vector(spec.policy)
        self.hedger = spec.hedger
        self.hparams = np.array(spec.hedger.params, dtype=np.float64)
        self.hstate = _state_vector(spec.hedger)
        self._pkernel = spec.policy.kernel
        self._hkernel = spec.hedger.kernel
        self.ctx = np.zeros(CTX_SIZE, dtype=np.float64)
        self.qout = np.zeros(QUOTE_SIZE, dtype=np.float64)
        self.hout = np.zeros(HEDGE_OUT_SIZE, dtype=np.float64)
        self.fills = np.zeros(self.FILL_BUF, dtype=FILL_DTYPE)
        self.olog = np.zeros(self.OLOG_BUF, dtype=ORDER_LOG_DTYPE)
        self.eq = np.zeros(self.EQ_BUF, dtype=EQUITY_DTYPE)
        self.counts = np.zeros(3, dtype=np.int64)
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
        return enb.run_nb(
            events, self._no_inst if inst_of is None else inst_of, final, self._pkernel,
            self.pparams, self.pstate, self._hkernel, self.hparams, self.hstate, self.ctx,
            self.qout, self.hout,
            b["ordt"], b["free"], b["hkeys"], b["hvals"], b["bs"], b["lvl"], b["anon"], b["sc"],
            self.llvl_all, self.lsc_all, self.ring_all, self.ours_all, self.resp_all,
            self.st_all, self.stf_all, self.cfg_all, self.fp_all, self.lat_all, self.fills,
            self.olog, self.eq, self.counts, self.scratch,
        )

    def _flush(self, sink: Callable[[np.ndarray, np.ndarray, np.ndarray], None]) -> None:
        c = self.counts
        sink(self.fills[: c[0]].copy(), self.olog[: c[1]].copy(), self.eq[: c[2]].copy())
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
                raise PolicyError(self.policy.spec.describe_error(self.st[enb.S_ERR]))
            if rc == enb.ERR_HEDGER:
                raise PolicyError(self.hedger.spec.describe_error(self.st[enb.S_ERR]))
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
        :func:`mmsim.data.merge.merge_chunks` for a run of several instruments."""
        it = iter(chunks)
        prev = next(it, None)
        while prev is not None:
            nxt = next(it, None)
            if isinstance(prev, tuple):
                self.feed(prev[0], sink, final=nxt is None, instrument=prev[1])
            else:
                self.feed(prev, sink, final=nxt is None)
            prev = nxt

    def stats(self) -> dict[str, int]:
        """Counters of the run (events, decisions, rejects, data anomalies), summed over the
        instruments (:meth:`instrument_stats` gives them one by one)."""
        per = [self.instrument_stats(i) for i in range(len(self.legs))]
        out = {k: sum(p[k] for p in per) for k in per[0]}
        out["decisions"] = int(self.st[enb.S_NDEC])
        # money is in each instrument's settlement currency: not summed across them
        out["funding_paid"] = per[0]["funding_paid"]
        return out

    def instrument_stats(self, i: int) -> dict[str, int]:
        """The counters of instrument ``i`` (``decisions`` is the run's, on instrument 0)."""
        st, stf, b = self.st_all[i], self.stf_all[i], self.books[i]
        return {
            "events": int(st[enb.S_NEVENTS]),
            "decisions": int(st[enb.S_NDEC]),
            "fills": int(st[enb.S_NFILLS]),
            "unknown_order_refs": int(b["bs"][B_UNKNOWN]),
            "book_full_drops": int(b["bs"][B_FULL]),
            "out_of_window_events": int(b["sc"][L_OOW]),
            "negative_level_clamps": int(b["sc"][L_NEG]),
            "feed_clamped": int(st[enb.S_FEED_CLAMPED]),
            "feed_buffer_overflows": int(st[enb.S_RING_OVF]),
            "window_moves": int(st[enb.S_RECENTER]),
            "funding_payments": int(st[enb.S_NFUND]),
            "funding_paid": float(stf[enb.F_FUNDING]),
            "submits_dropped_no_slot": int(st[enb.S_SLOT_FULL]),
        }

