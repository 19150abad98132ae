"""Declarations of the signals (no numba): capacities, record dtypes, ctx slots, builders.

The kernels in :mod:`mmsim.signals.nb` read one record of :data:`SIGNAL_PARAMS_DTYPE` (``sp``)
and update one record of :data:`SIGNAL_STATE_DTYPE` (``sst``) per instrument; they write the
signals into a float64 array at ``base + SignalCtx.<NAME>`` (:data:`SignalCtx`). The
capacities below are compile-time constants folded by numba (this module is listed in
:data:`mmsim._jitcache._CONSTANT_MODULES`).

Clocks and windows (all times int64 ns on the strategy's local clock)
    *flow buckets*: ``flow_bucket_ns`` wide, aligned on multiples of it (bucket
    ``k = ts // flow_bucket_ns``); the OFI and the trade counts at time ``t`` cover the
    ``flow_n_buckets`` buckets ending with ``t``'s, i.e. events with
    ``ts`` in ``[(k_t - flow_n_buckets + 1)·flow_bucket_ns, t]``.
    *signal clock*: grid points ``g_k = k·clock_ns``; Kyle's λ and the volatility use the mid
    sampled at the grid points (the book as left by every event with ``ts <= g_k``) and the
    signed traded volume of each interval ``(g_{k-1}, g_k]``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Flow buckets the ring holds (``flow_n_buckets`` is at most this).
MAX_FLOW_BUCKETS = 256
#: Clock intervals the Kyle ring holds (``kyle_n_intervals`` is at most this).
MAX_KYLE_INTERVALS = 512
#: Imbalance buckets of the micro-price table (``micro_n_imb`` is at most this).
MAX_MICRO_IMB = 32
#: Spreads (1 .. this many ticks) of the micro-price table.
MAX_MICRO_SPREAD = 8

#: Settings of the signals of one instrument (one record; build it with
#: :func:`make_signal_params`).
SIGNAL_PARAMS_DTYPE = np.dtype(
    [
        ("on", np.int64),  # 1: the engine updates and reads these signals (0: all off)
        ("record", np.int64),  # 1: the engine records them on the equity clock
        ("obi_levels", np.int64),  # N: non-empty price levels per side in the OBI
        ("flow_bucket_ns", np.int64),  # width of one OFI / trade-count bucket, ns
        ("flow_n_buckets", np.int64),  # buckets in the OFI / intensity window
        ("clock_ns", np.int64),  # signal clock period (Kyle's λ, volatility), ns
        ("kyle_n_intervals", np.int64),  # K: clock intervals in the Kyle regression window
        ("vol_decay", np.float64),  # EWMA weight kept per clock interval, 2^(-clock/halflife)
        ("micro_n_imb", np.int64),  # imbalance buckets of the micro-price table (0 = none)
        ("micro_n_spread", np.int64),  # spreads 1..micro_n_spread ticks in the table
        ("micro_adjust_tick", np.float64, (MAX_MICRO_IMB, MAX_MICRO_SPREAD)),  # G(I, S), ticks
    ],
    align=True,
)

#: What the signals of one instrument carry from event to event (one record; zero it with
#: :func:`new_signal_state` or ``mmsim.signals.nb.signals_reset_nb``). Rings are indexed
#: modulo their window length; mids are in half ticks (bid + ask) so that every sum is an
#: exact int64.
SIGNAL_STATE_DTYPE = np.dtype(
    [
        ("started", np.int64),  # 1 after the first event
        ("first_ts", np.int64),  # local ns of the first event seen
        ("last_ts", np.int64),  # latest ns seen (events out of order are clamped to it)
        # the current top of book (after the last signals_on_book_nb)
        ("top_ok", np.int64),  # 1 if both sides exist
        ("bid_tick", np.int64),
        ("ask_tick", np.int64),
        ("bid_qty", np.int64),
        ("ask_qty", np.int64),
        # flow ring: OFI (Cont-Kukanov-Stoikov e_n, lots) and trade counts per bucket
        ("flow_head", np.int64),  # absolute index of the newest bucket
        ("flow_ofi", np.int64, (MAX_FLOW_BUCKETS,)),
        ("flow_n_buy", np.int64, (MAX_FLOW_BUCKETS,)),  # buyer-initiated trades
        ("flow_n_sell", np.int64, (MAX_FLOW_BUCKETS,)),  # seller-initiated trades
        ("ofi_sum", np.int64),  # sums over the window
        ("n_buy_sum", np.int64),
        ("n_sell_sum", np.int64),
        # signal clock
        ("clock_k", np.int64),  # index of the last grid point sampled
        ("sample_ok", np.int64),  # 1 if the mid was defined there
        ("sample_mid2", np.int64),  # bid + ask there (half ticks)
        ("interval_qty", np.int64),  # signed traded lots since then (+ buyer-initiated)
        # Kyle ring: x = signed lots, y2 = mid change in half ticks, per clock interval
        ("kyle_pos", np.int64),  # slot of the next interval
        ("kyle_count", np.int64),  # intervals in the ring (<= kyle_n_intervals)
        ("kyle_x", np.int64, (MAX_KYLE_INTERVALS,)),
        ("kyle_y2", np.int64, (MAX_KYLE_INTERVALS,)),
        ("kyle_valid", np.int64, (MAX_KYLE_INTERVALS,)),  # 1 if the mid was defined at both ends
        ("kyle_n", np.int64),  # valid intervals in the ring
        ("kyle_sx", np.int64),  # Σx, Σy2, Σx·y2, Σx² over the valid intervals
        ("kyle_sy2", np.int64),
        ("kyle_sxy2", np.int64),
        ("kyle_sxx", np.int64),
        # volatility: EWMA of squared mid changes per clock interval
        ("vol_n", np.int64),  # valid intervals seen
        ("vol_var", np.float64),  # ticks² per clock interval
    ],
    align=True,
)


class _SignalCtx(NamedTuple):
    """Offsets of the signals in the float64 array written by ``signals_to_ctx_nb``, from
    its ``base``. NaN where a signal is undefined."""

    OBI: int = 0  # order-book imbalance of the top N levels, in [-1, 1]
    OFI_QTY: int = 1  # order-flow imbalance over the flow window, lots
    KYLE_LAMBDA_TICK: int = 2  # Kyle's λ, ticks of mid change per lot of signed volume
    BUY_RATE_HZ: int = 3  # buyer-initiated trades per second over the flow window
    SELL_RATE_HZ: int = 4  # seller-initiated trades per second
    VOL_TICK: int = 5  # EWMA volatility of the mid, ticks per √second
    MICRO_TICK: int = 6  # Stoikov (2018) micro-price, ticks
    MICRO_ADJ_TICK: int = 7  # micro-price minus mid, ticks
    SIZE: int = 8


SignalCtx = _SignalCtx()
SIGNAL_NAMES = tuple(n for n in SignalCtx._fields if n != "SIZE")


def make_signal_params(
    *,
    obi_levels: int = 5,
    flow_bucket_ns: int = 100_000_000,
    flow_n_buckets: int = 10,
    clock_ns: int = 100_000_000,
    kyle_n_intervals: int = 300,
    vol_halflife_ns: int = 30_000_000_000,
    micro_adjust_tick: np.ndarray | None = None,
) -> np.ndarray:
    """Build and validate one record of :data:`SIGNAL_PARAMS_DTYPE`.

    Parameters
    ----------
    obi_levels : int
        N >= 1, non-empty price levels per side summed in the order-book imbalance.
    flow_bucket_ns, flow_n_buckets : int
        Bucket width (ns, > 0) and number of buckets (1 .. :data:`MAX_FLOW_BUCKETS`) of the
        OFI and trade-intensity window (default 10 × 100 ms = 1 s).
    clock_ns : int
        Signal clock period, ns (> 0): Kyle's λ and the volatility sample the mid on it.
    kyle_n_intervals : int
        K, clock intervals in the Kyle regression window (2 .. :data:`MAX_KYLE_INTERVALS`).
    vol_halflife_ns : int
        Half-life of the volatility EWMA, ns (> 0); stored as the weight kept per interval,
        ``vol_decay = 2^(-clock_ns / vol_halflife_ns)``.
    micro_adjust_tick : numpy.ndarray or None
        float64 ``[n_imb, n_spread]`` micro-price adjustments ``G(I, S)`` in ticks
        (:attr:`mmsim.signals.microprice.MicroPriceTable.adjust_tick`), or None for no
        micro-price (the signal is then NaN).

    Returns
    -------
    numpy.ndarray
        Shape ``(1,)``, dtype :data:`SIGNAL_PARAMS_DTYPE`; pass ``params[0]`` to the kernels.
        ``on`` is 1 and ``record`` 0 (the engine sets it: ``signals.record``); a zeroed
        record (``on == 0``) is how the engine leaves an instrument's signals off.

    Raises
    ------
    ValueError
        A value outside the ranges above, or a table larger than
        :data:`MAX_MICRO_IMB` × :data:`MAX_MICRO_SPREAD` or with fewer than 2 buckets.
    """
    checks = (
        ("obi_levels", obi_levels, 1, None),
        ("flow_bucket_ns", flow_bucket_ns, 1, None),
        ("flow_n_buckets", flow_n_buckets, 1, MAX_FLOW_BUCKETS),
        ("clock_ns", clock_ns, 1, None),
        ("kyle_n_intervals", kyle_n_intervals, 2, MAX_KYLE_INTERVALS),
        ("vol_halflife_ns", vol_halflife_ns, 1, None),
    )
    for name, v, lo, hi in checks:
        if int(v) != v or v < lo or (hi is not None and v > hi):
            rng = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
            raise ValueError(f"{name} must be {rng}, got {v!r}")
    p = np.zeros(1, dtype=SIGNAL_PARAMS_DTYPE)
    r = p[0]
    r["on"] = 1
    r["obi_levels"] = obi_levels
    r["flow_bucket_ns"] = flow_bucket_ns
    r["flow_n_buckets"] = flow_n_buckets
    r["clock_ns"] = clock_ns
    r["kyle_n_intervals"] = kyle_n_intervals
    r["vol_decay"] = 2.0 ** (-clock_ns / vol_halflife_ns)
    r["micro_adjust_tick"] = np.nan
    if micro_adjust_tick is not None:
        g = np.asarray(micro_adjust_tick, dtype=np.float64)
        if g.ndim != 2 or not (2 <= g.shape[0] <= MAX_MICRO_IMB) or not (
            1 <= g.shape[1] <= MAX_MICRO_SPREAD
        ):
            raise ValueError(
                f"micro_adjust_tick must be [n_imb, n_spread] with 2 <= n_imb <= {MAX_MICRO_IMB}"
                f" and 1 <= n_spread <= {MAX_MICRO_SPREAD}, got shape {g.shape}"
            )
        r["micro_n_imb"], r["micro_n_spread"] = g.shape
        r["micro_adjust_tick"][: g.shape[0], : g.shape[1]] = g
    return p


def new_signal_state(n: int = 1) -> np.ndarray:
    """``n`` reset records of :data:`SIGNAL_STATE_DTYPE` (all zero: nothing seen yet)."""
    return np.zeros(n, dtype=SIGNAL_STATE_DTYPE)
