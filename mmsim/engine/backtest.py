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
from mmsim.contracts import CTX_SIZE, HEDGE_OUT_SIZE, QUOTE_SIZE
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
        cap, clk, inst = spec.capacities, spec.clocks, spec.instrument
        w = cap.book_width_ticks
        base = spec.ref_price_tick - w // 2
        self.max_book_orders = cap.max_book_orders
        # start small (a hash table that fits in cache) and double on demand
        self.book = new_l3_book(base, w, min(4096, self.max_book_orders))
        self.llvl, self.lsc = new_ladder(base, w)
        self.ring = np.zeros(cap.feed_buffer, dtype=FEED_DTYPE)
        nmax = cap.max_our_orders
        self.ours = np.zeros(nmax, dtype=OUR_ORDER_DTYPE)
        resp_cap = max(self.RESP_CAP, 16 * nmax)
        self.resp = np.zeros(resp_cap, dtype=RESPONSE_DTYPE)
        st = np.zeros(enb.ST_SIZE + 2 * nmax, dtype=np.int64)
        st[enb.S_T0] = -1
        for k in (enb.S_NEXT_DEC, enb.S_NEXT_EQ, enb.S_NEXT_REQ, enb.S_NEXT_RESP):
            st[k] = enb.INF_TS
        st[enb.S_RING_LAST] = -enb.INF_TS
        st[enb.S_DIRTY] = 1
        st[enb.S_NEXT_FUND] = enb.INF_TS
        st[enb.S_LAST_EQ_TS] = -enb.INF_TS
        st[enb.S_RNG] = (spec.seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) % (1 << 63) or 1
        self.st = st
        stf = np.zeros(enb.STF_SIZE, dtype=np.float64)
        stf[enb.F_VOL_VAR] = spec.volatility.init_tick ** 2
        stf[enb.F_LAST_MID] = np.nan
        stf[enb.F_MARK] = np.nan
        stf[enb.F_TRADE_HI] = np.nan
        stf[enb.F_TRADE_LO] = np.nan
        self.stf = stf
        cfgi = np.zeros(enb.CFG_SIZE, dtype=np.int64)
        cfgi[enb.C_DEC_NS] = clk.decision_interval_ns
        cfgi[enb.C_EQ_NS] = clk.equity_interval_ns
        cfgi[enb.C_FEED_MODE] = FEED_MODE_CODES[spec.feed.mode]
        cfgi[enb.C_FEED_NS] = spec.feed.nanos
        cfgi[enb.C_LAT_KIND] = LATENCY_CODES[spec.latency.model]
        cfgi[enb.C_QUEUE] = QUEUE_CODES[spec.queue.model]
        cfgi[enb.C_FOLLOW] = 1 if spec.queue.ladder_follows_touch else 0
        cfgi[enb.C_QUOTE_TIF] = QUOTE_TIF_CODES[spec.orders.quote_tif]
        mp = spec.limits.max_position_lots
        cfgi[enb.C_MAX_POS] = -1 if mp is None else mp
        cfgi[enb.C_REPLACE] = REPLACE_CODES[spec.orders.replace]
        cfgi[enb.C_HAS_HEDGER] = 1 if spec.has_hedger else 0
        cfgi[enb.C_TARGET_POS] = spec.limits.target_position_lots
        cfgi[enb.C_END_TS] = 0 if clk.end_ts is None else clk.end_ts
        cfgi[enb.C_DECIDE_ON_FILL] = 1 if clk.decide_on_fill else 0
        cfgi[enb.C_WARMUP_NS] = clk.warmup_ns
        cfgi[enb.C_MAX_OURS] = nmax
        cfgi[enb.C_WHOLE_FILLS] = FILL_MODE_CODES[spec.orders.fills]
        self.cfg = cfgi
        fp = np.zeros(enb.CFGF_SIZE, dtype=np.float64)
        fp[:FEE_PARAMS] = [
            inst.tick_size,
            inst.lot_size,
            inst.multiplier,
            inst.maker_fee_bps,
            inst.taker_fee_bps,
            inst.maker_fee_per_lot,
            inst.taker_fee_per_lot,
            1.0 if inst.is_inverse else 0.0,
        ]
        fp[enb.CF_VOL_HALFLIFE_S] = spec.volatility.halflife_s
        fp[enb.CF_VOL_INIT_TICK] = spec.volatility.init_tick
        fp[enb.CF_QUEUE_N] = spec.queue.power_n
        self.fp = fp
        vec = spec.latency.vector
        lat = np.zeros(max(LATENCY_PARAMS, len(vec)), dtype=np.float64)
        lat[: len(vec)] = vec
        self.lat = lat
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

    def _call(self, events: np.ndarray, final: bool) -> int:
        b = self.book
        return enb.run_nb(
            events, final, self._pkernel, self.pparams, self.pstate, self._hkernel,
            self.hparams, self.hstate, self.ctx, self.qout, self.hout,
            b["ordt"], b["free"], b["hkeys"], b["hvals"], b["bs"], b["lvl"], b["anon"], b["sc"],
            self.llvl, self.lsc, self.ring, self.ours, self.resp,
            self.st, self.stf, self.cfg, self.fp, self.lat, self.fills, self.olog, self.eq,
            self.counts, self.scratch,
        )

    def _flush(self, sink: Callable[[np.ndarray, np.ndarray, np.ndarray], None]) -> None:
        c = self.counts
        sink(self.fills[: c[0]].copy(), self.olog[: c[1]].copy(), self.eq[: c[2]].copy())
        c[:] = 0

    def feed(self, events: np.ndarray, sink, final: bool = False) -> None:
        """Run one chunk (``EVENT_DTYPE``, sorted by ``exch_ts``) through the kernel.

        Raises
        ------
        PolicyError
            If the policy or hedger returned an error code.
        EngineCapacityError
            If the book's order table overflowed.
        """
        while True:
            rc = self._call(events, final)
            if rc == enb.RET_FLUSH:
                self._flush(sink)
                continue
            if rc == enb.ERR_POLICY:
                raise PolicyError(self.policy.spec.describe_error(self.st[enb.S_ERR]))
            if rc == enb.ERR_HEDGER:
                raise PolicyError(self.hedger.spec.describe_error(self.st[enb.S_ERR]))
            if rc == enb.ERR_BOOK_FULL:
                if self.book["ordt"].shape[0] * 2 > self.max_book_orders:
                    raise EngineCapacityError(
                        f"more than {self.max_book_orders:,} live orders in the book: "
                        "raise engine.max_book_orders"
                    )
                grow_l3_book(self.book)
                continue
            break
        if final:
            self._flush(sink)

    def run(self, chunks: Iterable[np.ndarray], sink) -> None:
        """Run every chunk, then the final scheduled actions; flushes into ``sink``."""
        it = iter(chunks)
        prev = next(it, None)
        while prev is not None:
            nxt = next(it, None)
            self.feed(prev, sink, final=nxt is None)
            prev = nxt

    def stats(self) -> dict[str, int]:
        """Counters of the run (events, decisions, rejects, data anomalies)."""
        st, b = self.st, self.book
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
            "funding_paid": float(self.stf[enb.F_FUNDING]),
            "submits_dropped_no_slot": int(st[enb.S_SLOT_FULL]),
        }
