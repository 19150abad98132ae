"""hftbacktest side of the mmsim parity benchmark (runs inside the peer venv, never imports mmsim).

Reads mmsim canonical events (Parquet), converts them to hftbacktest's event array, runs the
parity quoting policy in hftbacktest 2.4.4 (``HashMapMarketDepthBacktest``) and prints ONE
JSON line on stdout. Diagnostics go to stderr.

Usage::

    python benchmarks/peer_hftbacktest_worker.py EVENTS.parquet [--repeats 3]
        [--feed-offset-ns N]

Conversion (canonical → hftbacktest; price = ``price_tick * 0.1``, qty = ``lots * 0.001``):

* LEVEL_SET (absolute level quantity, 0 deletes) → ``DEPTH_EVENT``, or
  ``DEPTH_SNAPSHOT_EVENT`` when flagged SNAPSHOT; ``BUY_EVENT`` for bids (side +1),
  ``SELL_EVENT`` for asks (side -1). hftbacktest applies both exactly like a level update: a
  snapshot does NOT clear the book by itself, the stream's CLEAR does.
* TRADE without the INFO flag → ``TRADE_EVENT`` with the *initiator's* side: canonical side
  is the resting side, so side -1 (ask lifted) → ``BUY_EVENT``, side +1 → ``SELL_EVENT``.
* CLEAR, side 0 → ``DEPTH_CLEAR_EVENT`` without a side bit: hftbacktest then clears both
  sides entirely. CLEAR of one side → ``DEPTH_CLEAR_EVENT | BUY/SELL_EVENT`` with the far
  price (lowest bid / highest ask price in the file), since hftbacktest clears a side only
  from the best price *up to* the given price.
* SNAPSHOT_BEGIN / SNAPSHOT_END, BBO, MARK, FUNDING, STATUS: dropped. L3 kinds (ADD, CANCEL,
  DELETE, MODIFY, EXECUTE) are rejected: this worker feeds an L2 book.

Timestamps, like mmsim: ``local_ts' = max(local_ts + feed_offset_ns, exch_ts)`` then a running
maximum in exchange-time order (rows stably sorted by ``exch_ts``). Both clocks are then
non-decreasing in the same row order, so every row carries ``EXCH_EVENT | LOCAL_EVENT``;
should they ever disagree, hftbacktest's ``correct_event_order`` splits rows instead.
``validate_event_order`` is always run.

Policy (every 100 ms, ``hbt.elapse(100_000_000)``, after ``clear_inactive_orders``), see
:func:`quote_loop`: ``bid = round(mid_tick - 5 - position/0.01)``,
``ask = round(mid_tick + 5 - position/0.01)`` with round half to even evaluated exactly in
integers, ``bid <= best bid``, ``ask >= best ask``; post-only (GTX) LIMIT 0.01 BTC. A quote
of ours at its target is kept; any other cancellable quote is cancelled and a new one is
submitted at the target in the same step, unless an order of ours (live, pending new or
pending cancel) already sits at that price on that side.

PnL is hftbacktest's linear-asset equity at the end of the data:
``pnl = balance + position * final_mid - fee``, where ``balance`` is the cash from fills
(without fees) and ``fee`` the accumulated fee (negative = net maker rebate); ``fees`` is that
``fee``. ``fills`` is ``num_trades`` and ``traded_qty`` is ``trading_volume`` from
``hbt.state_values(0)`` (the local side's state).

hftbacktest behaviour worth knowing (2.4.4):

* The decision grid starts at the first event's *exchange* timestamp (the earlier of the two
  clocks), not its local one: steps are at ``first exch_ts + k * 100 ms``, k >= 1; steps
  taken before the first feed reached the local side see an empty book and are skipped.
* ``partial_fill_exchange`` is unreliable: the local processor credits a fill to the state
  only on a ``FILLED`` response, so partial executions are never counted (and a partially
  executed order that later completes is credited with its last chunk only) — upstream issues
  #299 / #316; and an execution that exactly exhausts an order leaves a "zombie" at the
  exchange, whose next trade makes ``elapse`` return 14 (``InvalidOrderStatus``) and ends the
  run early — issue #312. ``elapse_rc`` (1 = end of data) and ``completed`` report this; the
  ``*_nopartial`` figures (``no_partial_fill_exchange``) are not affected.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import hftbacktest
import numpy as np
import polars as pl
from hftbacktest import (
    BUY,
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EXCH_EVENT,
    GTX,
    LIMIT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    BacktestAsset,
    HashMapMarketDepthBacktest,
)
from hftbacktest.data import correct_event_order, validate_event_order
from hftbacktest.types import event_dtype
from numba import njit

# --- instrument and policy (the parity spec) ------------------------------------------------
TICK_SIZE = 0.1  # USDT per tick
LOT_SIZE = 0.001  # BTC per lot
STEP_NS = 100_000_000  # decision interval
HALF_SPREAD_TICKS = 5  # quote offset from mid, in ticks
SKEW_LOTS_PER_TICK = 10  # 1 tick of skew per 0.01 BTC of position = 10 lots
ORDER_LOTS = 10  # 0.01 BTC
ENTRY_LATENCY_NS = 1_000_000
RESPONSE_LATENCY_NS = 1_000_000
MAKER_FEE = -0.00005  # -0.5 bp (rebate)
TAKER_FEE = 0.0007  # 7 bp

# --- mmsim canonical event kinds and flags ---------------------------------------------------
K_ADD, K_CANCEL, K_DELETE, K_MODIFY, K_EXECUTE = 1, 2, 3, 4, 5
K_TRADE, K_LEVEL_SET, K_CLEAR = 6, 7, 8
F_SNAPSHOT, F_INFO = 4, 8
L3_KINDS = (K_ADD, K_CANCEL, K_DELETE, K_MODIFY, K_EXECUTE)


def convert(df: pl.DataFrame, feed_offset_ns: int) -> tuple[np.ndarray, dict]:
    """Convert canonical events to an hftbacktest event array.

    Parameters
    ----------
    df : polars.DataFrame
        Canonical events (``exch_ts``, ``local_ts``, ``price_tick``, ``qty``, ``kind``,
        ``side``, ``flags``, ...).
    feed_offset_ns : int
        Added to ``local_ts`` before clamping it up to ``exch_ts`` (see module docstring).

    Returns
    -------
    events : numpy.ndarray
        Array of ``hftbacktest.types.event_dtype``, validated by ``validate_event_order``.
    info : dict
        ``events_converted`` (canonical rows that produced hftbacktest rows) and
        ``order_corrected`` (True if ``correct_event_order`` had to split rows).
    """
    exch = df["exch_ts"].to_numpy().astype(np.int64)
    if np.any(np.diff(exch) < 0):  # mmsim works in the file's exch_ts order
        order = np.argsort(exch, kind="stable")
        df = df[order]
        exch = exch[order]
    local = df["local_ts"].to_numpy().astype(np.int64) + np.int64(feed_offset_ns)
    local = np.maximum.accumulate(np.maximum(local, exch))

    kind = df["kind"].to_numpy()
    side = df["side"].to_numpy().astype(np.int64)
    flags = df["flags"].to_numpy().astype(np.int64)
    px = df["price_tick"].to_numpy().astype(np.float64) * TICK_SIZE
    qty = df["qty"].to_numpy().astype(np.float64) * LOT_SIZE

    bad = np.isin(kind, L3_KINDS)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} L3 events (kinds 1-5): this worker feeds an L2 book")

    side_ev = np.where(side > 0, BUY_EVENT, np.where(side < 0, SELL_EVENT, 0)).astype(np.uint64)
    ev = np.zeros(len(kind), np.uint64)
    keep = np.zeros(len(kind), bool)

    lv = kind == K_LEVEL_SET
    if (side[lv] == 0).any():
        raise ValueError("LEVEL_SET without a side")
    snap = (flags & F_SNAPSHOT) != 0
    ev[lv & ~snap] = DEPTH_EVENT
    ev[lv & snap] = DEPTH_SNAPSHOT_EVENT
    ev[lv] |= side_ev[lv]
    keep |= lv

    # Trades: the initiator is on the side opposite the resting liquidity.
    tr = (kind == K_TRADE) & ((flags & F_INFO) == 0)
    ev[tr] = TRADE_EVENT | np.where(side[tr] < 0, BUY_EVENT, SELL_EVENT).astype(np.uint64)
    keep |= tr

    # Clears: unsided → hftbacktest clears everything; one side → clear from the best price up
    # to the far end of that side (lowest bid / highest ask seen in the file).
    cl = kind == K_CLEAR
    if cl.any():
        bid_px = px[lv & (side > 0)]
        ask_px = px[lv & (side < 0)]
        far_bid = float(bid_px.min()) if len(bid_px) else 0.0
        far_ask = float(ask_px.max()) if len(ask_px) else 0.0
        ev[cl] = DEPTH_CLEAR_EVENT | side_ev[cl]
        qty[cl] = 0.0
        px[cl] = np.where(side[cl] > 0, far_bid, np.where(side[cl] < 0, far_ask, 0.0))
        keep |= cl

    n = int(keep.sum())
    data = np.zeros(n, event_dtype)
    data["ev"] = ev[keep]
    data["exch_ts"] = exch[keep]
    data["local_ts"] = local[keep]
    data["px"] = px[keep]
    data["qty"] = qty[keep]

    corrected = bool(np.any(np.diff(data["local_ts"]) < 0))
    if corrected:  # unreachable with the running max above; kept for other feed-time rules
        data = correct_event_order(
            data,
            np.argsort(data["exch_ts"], kind="mergesort"),
            np.argsort(data["local_ts"], kind="mergesort"),
        )
    else:
        data["ev"] |= EXCH_EVENT | LOCAL_EVENT
    validate_event_order(data)
    return data, {"events_converted": n, "order_corrected": corrected}


@njit
def _round_half_even_div(num: int, den: int) -> int:
    """``round(num / den)`` with ties to even, exactly (``den > 0``)."""
    q = num // den
    r = num - q * den  # 0 <= r < den
    if 2 * r > den or (2 * r == den and q % 2 != 0):
        q += 1
    return q


@njit
def quote_loop(hbt):
    """Run the parity policy to the end of the data.

    Every ``STEP_NS`` (hftbacktest's first step is at the first event's exch_ts + STEP_NS):
    clear inactive orders; skip if a book side is empty; otherwise compute

    * ``pos_lots = round(position / LOT_SIZE)`` (the position is a multiple of the lot),
    * ``bid = round(mid_tick - H - pos_lots / S)`` and ``ask = round(mid_tick + H - pos_lots/S)``
      with ``mid_tick = (best_bid_tick + best_ask_tick) / 2``, H = 5, S = 10 lots per tick:
      round half to even, computed exactly as ``round((S*(bb+ba) -/+ 2*S*H - 2*pos_lots) /
      (2*S))`` in integers (same as ``np.round`` on the exact value),
    * ``bid = min(bid, best_bid_tick)``, ``ask = max(ask, best_ask_tick)``;

    keep our orders at their side's target, cancel every other cancellable one, and submit a
    GTX LIMIT order of ``ORDER_LOTS`` at a side's target unless an order of ours (live,
    pending new or pending cancel) is already there.

    Returns
    -------
    tuple
        ``(rc, n_submitted, n_cancels, n_steps, n_skipped, first_step_ts, final_best_bid_tick,
        final_best_ask_tick)`` where ``rc`` is the last ``elapse`` return code (1 = end of
        data, 14 = ``InvalidOrderStatus``, ...).
    """
    asset = 0
    qty = ORDER_LOTS * LOT_SIZE
    next_id = 1
    n_submitted = 0
    n_cancels = 0
    n_steps = 0
    n_skipped = 0
    first_step_ts = -1
    while True:
        rc = hbt.elapse(STEP_NS)
        if rc != 0:  # 1: end of data; anything else is an hftbacktest error code
            break
        if first_step_ts < 0:
            first_step_ts = hbt.current_timestamp
        n_steps += 1
        hbt.clear_inactive_orders(asset)
        depth = hbt.depth(asset)
        if np.isnan(depth.best_bid) or np.isnan(depth.best_ask):
            n_skipped += 1
            continue
        bb = depth.best_bid_tick
        ba = depth.best_ask_tick
        pos_lots = int(np.round(hbt.position(asset) / LOT_SIZE))
        s = SKEW_LOTS_PER_TICK
        base = s * (bb + ba) - 2 * pos_lots
        bid = min(_round_half_even_div(base - 2 * s * HALF_SPREAD_TICKS, 2 * s), bb)
        ask = max(_round_half_even_div(base + 2 * s * HALF_SPREAD_TICKS, 2 * s), ba)

        # Only statuses NONE (pending new), NEW and PARTIALLY_FILLED remain after the clear.
        bid_there = False
        ask_there = False
        values = hbt.orders(asset).values()
        while values.has_next():
            order = values.get()
            if order.side == BUY:
                if order.price_tick == bid:
                    bid_there = True
                elif order.cancellable:
                    hbt.cancel(asset, order.order_id, False)
                    n_cancels += 1
            else:
                if order.price_tick == ask:
                    ask_there = True
                elif order.cancellable:
                    hbt.cancel(asset, order.order_id, False)
                    n_cancels += 1
        # Submit after iterating: inserting into the order map invalidates the iterator.
        if not bid_there:
            hbt.submit_buy_order(asset, next_id, bid * TICK_SIZE, qty, GTX, LIMIT, False)
            next_id += 1
            n_submitted += 1
        if not ask_there:
            hbt.submit_sell_order(asset, next_id, ask * TICK_SIZE, qty, GTX, LIMIT, False)
            next_id += 1
            n_submitted += 1
    depth = hbt.depth(asset)
    return (rc, n_submitted, n_cancels, n_steps, n_skipped, first_step_ts,
            depth.best_bid_tick, depth.best_ask_tick)


def build_backtest(data: np.ndarray, partial_fill: bool):
    """Build a fresh ``HashMapMarketDepthBacktest`` on ``data`` with the parity asset config."""
    asset = (
        BacktestAsset()
        .data(data)
        .linear_asset(1.0)
        .constant_order_latency(ENTRY_LATENCY_NS, RESPONSE_LATENCY_NS)
        .power_prob_queue_model(2.0)
    )
    asset = asset.partial_fill_exchange() if partial_fill else asset.no_partial_fill_exchange()
    asset = asset.trading_value_fee_model(MAKER_FEE, TAKER_FEE).tick_size(TICK_SIZE)
    asset = asset.lot_size(LOT_SIZE)
    return HashMapMarketDepthBacktest([asset])


def run_once(data: np.ndarray, partial_fill: bool) -> tuple[dict, float, float]:
    """One backtest: returns ``(results, loop_wall_s, build_wall_s)``."""
    t0 = time.perf_counter()
    hbt = build_backtest(data, partial_fill)
    t1 = time.perf_counter()
    rc, n_sub, n_cxl, n_steps, n_skip, first_ts, bb, ba = quote_loop(hbt)
    t2 = time.perf_counter()
    hbt_ts = hbt.current_timestamp
    sv = hbt.state_values(0)
    position, balance, fee = sv.position, sv.balance, sv.fee
    num_trades, volume, value = sv.num_trades, sv.trading_volume, sv.trading_value
    hbt.close()
    mid = 0.5 * (bb + ba) * TICK_SIZE
    res = {
        "fills": int(num_trades),
        "traded_qty": round(float(volume), 9),
        "traded_value": float(value),
        "final_position": round(float(position), 9),
        "balance": float(balance),
        "fees": float(fee),
        "final_mid": mid,
        "pnl": float(balance + position * mid - fee),
        "n_orders_submitted": int(n_sub),
        "n_cancels": int(n_cxl),
        "n_steps": int(n_steps),
        "n_steps_skipped": int(n_skip),
        "first_step_ts": int(first_ts),
        "last_ts": int(hbt_ts),
        "elapse_rc": int(rc),
        "completed": bool(rc == 1),
    }
    return res, t2 - t1, t1 - t0


def bench(data: np.ndarray, partial_fill: bool, repeats: int) -> tuple[dict, dict]:
    """Warm-up run (numba compile on first use) + ``repeats`` timed runs; checks determinism."""
    res, first_loop, first_build = run_once(data, partial_fill)
    best_loop = best_total = float("inf")
    deterministic = True
    for _ in range(repeats):
        r, loop_s, build_s = run_once(data, partial_fill)
        deterministic &= r == res
        best_loop = min(best_loop, loop_s)
        best_total = min(best_total, loop_s + build_s)
    timing = {"wall_s_first": first_loop + first_build, "wall_s_warm": best_loop,
              "wall_s_warm_with_build": best_total, "deterministic": deterministic}
    return res, timing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("events", help="mmsim canonical events (Parquet)")
    ap.add_argument("--repeats", type=int, default=3, help="timed warm runs (best is kept)")
    ap.add_argument("--feed-offset-ns", type=int, default=0,
                    help="added to local_ts before clamping it to exch_ts (as mmsim)")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    df = pl.read_parquet(args.events)
    data, info = convert(df, args.feed_offset_ns)
    convert_s = time.perf_counter() - t
    print(f"converted {len(df):,} canonical rows -> {len(data):,} hftbacktest rows "
          f"in {convert_s:.2f} s", file=sys.stderr)

    res, timing = bench(data, True, max(args.repeats, 1))
    res_np, timing_np = bench(data, False, max(args.repeats, 1))
    out = {
        "events": len(df),  # input canonical rows (the events/s numerator, as for mmsim)
        "events_converted": info["events_converted"],
        "hbt_rows": len(data),
        "order_corrected": info["order_corrected"],
        "feed_offset_ns": args.feed_offset_ns,
        "convert_s": convert_s,
        **timing,
        "events_per_s": len(df) / timing["wall_s_warm"],
        **res,
        "pnl_def": "balance + position*final_mid - fee (hftbacktest linear equity; fee<0 rebate)",
        "rounding": "half-to-even, exact",
        "hftbacktest_version": hftbacktest.__version__,
    }
    for k, v in {**res_np, **timing_np}.items():
        out[f"{k}_nopartial"] = v
    for tag, r in (("partial", res), ("nopartial", res_np)):
        if not r["completed"]:
            print(f"WARNING ({tag} fills): hftbacktest stopped early, elapse returned "
                  f"{r['elapse_rc']} at {r['last_ts']} (1 = end of data)", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
