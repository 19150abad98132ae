"""Market signals on the strategy's local (delayed) book (MODELS.md §5, §11).

Order-book imbalance (top N levels), order-flow imbalance (Cont, Kukanov, Stoikov 2014), Kyle's
λ, trade intensity per side, short-horizon volatility and Stoikov's (2018) micro-price, updated
incrementally, O(1) amortised per event, without allocation (:mod:`mmsim.signals.nb`); their
settings, state records and ctx slots (:mod:`mmsim.signals.spec`, no numba); the offline
micro-price estimator (:mod:`mmsim.signals.microprice`) and its table files
(:mod:`mmsim.signals.table`, for ``signals.microprice_table``).

The engine runs them when the experiment has a ``signals:`` section
(:class:`mmsim.config.SignalsConfig`): every instrument's are updated from its feed, the
quoted instrument's fill ``ctx[Ctx.SIGNALS0 + SignalCtx.<NAME>]`` at each decision (NaN
without the section), and ``signals.record: true`` writes them at each equity-clock sample
to ``signals.parquet`` (:func:`mmsim.results.load_signals`). The flag is ``sp.on`` (a zeroed
params record is off), so a run without the section pays one branch per feed entry.

How it is wired into the engine
-------------------------------
Per instrument ``j``: one state record ``sst = sig_state[j]`` (``SIGNAL_STATE_DTYPE``, zeroed
at the start of a run: :func:`~mmsim.signals.spec.new_signal_state`) and one params record
``sp = sig_params[j]`` (``SIGNAL_PARAMS_DTYPE``: :func:`~mmsim.signals.spec.make_signal_params`,
with the table of :func:`~mmsim.signals.microprice.estimate_microprice` for the micro-price).
All times are the local ns of the feed entry (``ring[j].ts``), which the feed keeps ordered.

1. In ``_ring_pop_apply``, after the ladder change of *every* book code (level delta, clear,
   recenter)::

       signals_on_book_nb(sst, sp, ring[j].ts, llvl, lsc)

2. In the ``±RING_TRADE`` branch (the code's sign is the resting side)::

       signals_on_trade_nb(sst, sp, ring[j].ts, 1 if code > 0 else -1, ring[j].qty)

3. In ``_fill_ctx`` (a ctx block of ``SignalCtx.SIZE`` slots the contracts must reserve)::

       signals_to_ctx_nb(sst, sp, now, llvl, lsc, ctx, Ctx.SIGNALS0)

   ``now`` must be at or after every feed entry applied so far, and feed entries at
   ``now`` should be applied before the read (a later entry at the same time lands in the next
   clock interval). Nothing else is needed: the signal clock (``sp.clock_ns``) is sampled
   lazily on the next call, exactly at its grid times; :func:`~mmsim.signals.nb.signals_advance_nb`
   closes the intervals without reading.
"""

from mmsim.signals.spec import (
    MAX_FLOW_BUCKETS,
    MAX_KYLE_INTERVALS,
    MAX_MICRO_IMB,
    MAX_MICRO_SPREAD,
    SIGNAL_NAMES,
    SIGNAL_PARAMS_DTYPE,
    SIGNAL_STATE_DTYPE,
    SignalCtx,
    make_signal_params,
    new_signal_state,
)

__all__ = [
    "MAX_FLOW_BUCKETS",
    "MAX_KYLE_INTERVALS",
    "MAX_MICRO_IMB",
    "MAX_MICRO_SPREAD",
    "SIGNAL_NAMES",
    "SIGNAL_PARAMS_DTYPE",
    "SIGNAL_STATE_DTYPE",
    "SignalCtx",
    "make_signal_params",
    "new_signal_state",
]
