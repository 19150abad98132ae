"""The engine's Python side: allocate the kernel's state and feed it chunks of events.

:class:`Engine` owns every array the numba kernel (:func:`mmsim.engine.nb.run_nb`) reads and
writes. Importing this module compiles the kernels (or loads them from the cache); the
orchestration of a whole run (checks first, then compile, replay and outputs) is
:func:`mmsim.runner.backtest`.
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
from mmsim.config import ExperimentConfig
from mmsim.contracts import CTX_SIZE, HEDGE_OUT_SIZE, QUOTE_SIZE
from mmsim.dtypes import EQUITY_DTYPE, FILL_DTYPE, ORDER_LOG_DTYPE
from mmsim.engine import nb as enb
from mmsim.enums import TimeInForce
from mmsim.instruments import Instrument
from mmsim.models.nb import FEE_PARAMS, LATENCY_PARAMS
from mmsim.policies.registry import KernelSpec


class PolicyError(RuntimeError):
    """A policy or hedger kernel returned a non-zero code."""


class EngineCapacityError(RuntimeError):
    """The L3 book's order table is full: raise ``engine.max_book_orders``."""


class Engine:
    """State and driver of one replay (see :mod:`mmsim.engine.nb` for the model).

    Parameters
    ----------
    cfg : ExperimentConfig
    instrument : Instrument
    policy, hedger : KernelSpec
        Registered kernels (``hedger`` may be the ``none`` hedger).
    policy_params, hedger_params : numpy.ndarray of float64
    ref_price_tick : int
        Centre of the price ladders (ticks).
    end_ts : int
        Horizon in exchange ns (0 = none).
    """

    FILL_BUF = 1 << 15
    OLOG_BUF = 1 << 17
    EQ_BUF = 1 << 15
    RESP_CAP = 1 << 12

    def __init__(
        self,
        cfg: ExperimentConfig,
        instrument: Instrument,
        policy: KernelSpec,
        policy_params: np.ndarray,
        hedger: KernelSpec,
        hedger_params: np.ndarray,
        ref_price_tick: int,
        end_ts: int = 0,
        queue_model: str = "fifo",
        feed_offset_ns: int = 0,
        latency_series: dict | None = None,
    ):
        e = cfg.engine
        w = int(e.book_width_ticks)
        base = int(ref_price_tick) - w // 2
        self.max_book_orders = int(e.max_book_orders)
        # start small (a hash table that fits in cache) and double on demand
        self.book = new_l3_book(base, w, min(4096, self.max_book_orders))
        self.llvl, self.lsc = new_ladder(base, w)
        self.ring = np.zeros((int(e.feed_buffer), 4), dtype=np.int64)
        nmax = int(e.max_our_orders)
        self.ours = np.zeros((nmax, enb.U_FIELDS), dtype=np.int64)
        self.ahead = np.zeros(nmax, dtype=np.float64)
        resp_cap = max(self.RESP_CAP, 16 * nmax)
        self.resp = np.zeros((resp_cap, enb.R_FIELDS), dtype=np.int64)
        self.respf = np.zeros(resp_cap, dtype=np.float64)
        st = np.zeros(enb.ST_SIZE + 2 * nmax, dtype=np.int64)
        st[enb.S_T0] = -1
        for k in (enb.S_NEXT_DEC, enb.S_NEXT_EQ, enb.S_NEXT_REQ, enb.S_NEXT_RESP):
            st[k] = enb.INF_TS
        st[enb.S_RING_LAST] = -enb.INF_TS
        st[enb.S_DIRTY] = 1
        st[enb.S_NEXT_FUND] = enb.INF_TS
        st[enb.S_LAST_EQ_TS] = -enb.INF_TS
        st[enb.S_RNG] = (int(cfg.seed) * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) % (1 << 63) or 1
        self.st = st
        stf = np.zeros(enb.STF_SIZE, dtype=np.float64)
        stf[enb.F_VOL_VAR] = float(e.vol_init_tick) ** 2
        stf[enb.F_LAST_MID] = np.nan
        stf[enb.F_MARK] = np.nan
        stf[enb.F_TRADE_HI] = np.nan
        stf[enb.F_TRADE_LO] = np.nan
        self.stf = stf
        lot = instrument.lot_size
        cfgi = np.zeros(enb.CFG_SIZE, dtype=np.int64)
        cfgi[enb.C_DEC_NS] = e.decision_interval_nanos
        cfgi[enb.C_EQ_NS] = e.equity_interval_nanos
        if cfg.latency.feed_nanos is None:
            cfgi[enb.C_FEED_MODE] = 0
            cfgi[enb.C_FEED_NS] = int(feed_offset_ns)
        else:
            cfgi[enb.C_FEED_MODE] = 1
            cfgi[enb.C_FEED_NS] = int(cfg.latency.feed_nanos)
        cfgi[enb.C_LAT_KIND] = {"constant": 0, "lognormal": 1, "interpolated": 2}[
            cfg.latency.model
        ]
        qmodels = {"fifo": enb.QUEUE_FIFO, "risk_averse": enb.QUEUE_RISK_AVERSE,
                   "power": enb.QUEUE_POWER, "log": enb.QUEUE_LOG}
        cfgi[enb.C_QUEUE] = qmodels[queue_model]
        cfgi[enb.C_FOLLOW] = 0 if queue_model == "fifo" else 1
        cfgi[enb.C_QUOTE_TIF] = (
            TimeInForce.POST_ONLY if e.quote_tif == "post_only" else TimeInForce.GTC
        )
        mp = cfg.risk.max_position_qty
        cfgi[enb.C_MAX_POS] = -1 if mp is None else int(round(mp / lot))
        cfgi[enb.C_REPLACE] = 0 if e.replace == "modify" else 1
        cfgi[enb.C_HAS_HEDGER] = 0 if hedger.name == "none" else 1
        cfgi[enb.C_TARGET_POS] = int(round(cfg.risk.target_position_qty / lot))
        cfgi[enb.C_END_TS] = int(end_ts)
        cfgi[enb.C_DECIDE_ON_FILL] = 1 if e.decide_on_fill else 0
        cfgi[enb.C_WARMUP_NS] = e.warmup_nanos
        cfgi[enb.C_MAX_OURS] = nmax
        cfgi[enb.C_WHOLE_FILLS] = 0 if cfg.matching.partial_fills else 1
        self.cfg = cfgi
        fp = np.zeros(enb.CFGF_SIZE, dtype=np.float64)
        fp[:FEE_PARAMS] = [
            instrument.tick_size,
            instrument.lot_size,
            instrument.multiplier,
            instrument.maker_fee_bps,
            instrument.taker_fee_bps,
            instrument.maker_fee_per_lot,
            instrument.taker_fee_per_lot,
            1.0 if instrument.is_inverse else 0.0,
        ]
        fp[enb.CF_VOL_HALFLIFE_S] = e.vol_halflife_s
        fp[enb.CF_VOL_INIT_TICK] = e.vol_init_tick
        fp[enb.CF_QUEUE_N] = cfg.queue.power_n
        self.fp = fp
        lat = np.zeros(LATENCY_PARAMS, dtype=np.float64)
        lat[:12] = cfg.latency.vector()
        if cfg.latency.model == "interpolated":
            from mmsim.models.latency import latency_vector

            lat = latency_vector(lat, latency_series or {})
        self.lat = lat
        self.policy = policy
        self.pparams = np.ascontiguousarray(policy_params, dtype=np.float64)
        self.pstate = policy.state_vector()
        self.hedger = hedger
        self.hparams = np.ascontiguousarray(hedger_params, dtype=np.float64)
        self.hstate = hedger.state_vector()
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
            events, final, self.policy.kernel, self.pparams, self.pstate, self.hedger.kernel,
            self.hparams, self.hstate, self.ctx, self.qout, self.hout,
            b["ordt"], b["free"], b["hkeys"], b["hvals"], b["bs"], b["lvl"], b["anon"], b["sc"],
            self.llvl, self.lsc, self.ring, self.ours, self.ahead, self.resp, self.respf,
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
                raise PolicyError(f"policy '{self.policy.name}' returned {self.st[enb.S_ERR]}")
            if rc == enb.ERR_HEDGER:
                raise PolicyError(f"hedger '{self.hedger.name}' returned {self.st[enb.S_ERR]}")
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
