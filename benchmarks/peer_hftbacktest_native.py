"""hftbacktest the way its users run it: its own converter on the raw capture, then
``ROIVectorMarketDepthBacktest`` (and ``HashMapMarketDepthBacktest`` for reference) with the
parity policy. Runs inside the peer venv (``benchmarks/.peer-venv``) and never imports mmsim.

Usage::

    python benchmarks/peer_hftbacktest_native.py RAW.gz [RAW2.gz ...] --out RESULT.json
        [--market usdm|spot] [--span-lo NS --span-hi NS] [--tick-size 0.1] [--lot-size 0.001]
        [--order-lots 10] [--inverse C] [--repeats 3] [--fills-out FILE.npz]

**Conversion.** Each raw file is converted on its own by
``hftbacktest.data.utils.binancefutures.convert`` (2.4.4 ships no other Binance converter), as
its docs do with daily files, and the arrays are handed to ``BacktestAsset().data([...])`` in
file order. The converter reads ``<19-digit ns receive time> <combined-stream JSON>`` lines from
a gzip file; only the framing is adapted where a capture differs (:func:`reframe_line`), never
a price, quantity, id or timestamp value:

* 2023 ``.dat.gz`` files stamp the receive time in µs (16 digits): the converter slices 19
  characters, so the stamp is written in ns (the same instant, ``× 1000``).
* spot captures: the converter reads futures fields the spot streams do not carry. A spot
  ``depthUpdate`` has no transaction time ``T``, only the event time ``E``: ``"T"`` is added
  with ``E``'s value (the exchange time mmsim's reader uses for it too); a spot trade has no
  ``X`` (futures: MARKET / INSURANCE_FUND / ADL; every spot trade is a market trade):
  ``"X":"MARKET"`` is added; the spot REST snapshot has no time at all: ``"T"`` is added with
  the ``E`` of the first diff it bridges (``u > lastUpdateId``, mmsim's rule); spot
  ``bookTicker`` messages have no ``e`` and the converter would ignore them anyway (no ``t``
  option): they are left out.

Then the rows are cut to the span the harness passes (``--span-lo``/``--span-hi``: the first
and last ``exch_ts`` of mmsim's canonical events; :func:`span_mask`) so both simulators replay
the same stretch of market data.

**ROI.** :func:`roi_range` picks ``roi_lb``/``roi_ub`` covering every trade price of the data
with a margin of :data:`ROI_MARGIN` of the highest one (rounded out to the tick): the policy
quotes 5 ticks off the mid, far inside. Depth levels outside the ROI are ignored by
``ROIVectorMarketDepth`` (its documented design: a flat ``Vec<f64>`` per side indexed by
``price_tick - roi_lb``); the output counts them (``depth_rows_outside_roi``) and the run checks
that ROIVector and HashMap produce the same fills on the same input.

Output (``--out``, one JSON object): ``files``, ``framing`` (per file: what was adapted),
``rows_converted`` / ``rows`` (after the span cut) / ``rows_dropped_outside_span``,
``first_exch_ts`` / ``last_exch_ts``, ``roi`` (``lb``, ``ub``, ``ticks``,
``depth_rows_outside_roi``), ``convert_s``, and ``roi_vector`` / ``hashmap``: the worker's
result dict (``fills``, ``filled_orders``, ``traded_qty``, ``final_position``, ``pnl``,
``fees``, ``wall_s_warm`` ...), no partial fills (``no_partial_fill_exchange``; the partial
model is broken in 2.4.4, see ``peer_hftbacktest_worker.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: ROI margin, as a fraction of the highest trade price, on each side of the traded range
ROI_MARGIN = 0.05
#: rows preallocated by the converter per file (its default, 1e8 rows of 64 bytes, is 6.4 GB)
CONVERT_BUFFER_ROWS = 20_000_000

_TS_RE = re.compile(rb"^(\d+) ")


# --- pure helpers (no hftbacktest; tested from mmsim's venv) --------------------------------------
def roi_range(trade_px: np.ndarray, tick_size: float, margin: float = ROI_MARGIN
              ) -> tuple[float, float]:
    """``(roi_lb, roi_ub)`` in price units: the traded range widened by ``margin`` × the
    highest trade price on each side, rounded outwards to whole ticks (``roi_lb >= 0``).
    Raises ``ValueError`` without a trade."""
    px = np.asarray(trade_px, np.float64)
    px = px[np.isfinite(px)]
    if not len(px):
        raise ValueError("no trade price: cannot choose an ROI")
    lo, hi = float(px.min()), float(px.max())
    pad = margin * hi
    lb_tick = max(0, math.floor(round((lo - pad) / tick_size, 6)))
    ub_tick = math.ceil(round((hi + pad) / tick_size, 6))
    return round(lb_tick * tick_size, 12), round(ub_tick * tick_size, 12)


def span_mask(exch_ts: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    """Rows whose exchange time lies in ``[lo, hi]`` (either bound may be None)."""
    m = np.ones(len(exch_ts), bool)
    if lo is not None:
        m &= exch_ts >= lo
    if hi is not None:
        m &= exch_ts <= hi
    return m


def ts_digits(line: bytes) -> int:
    """Number of digits of a raw line's receive timestamp (19 ns, 16 µs), 0 if none."""
    m = _TS_RE.match(line)
    return len(m.group(1)) if m else 0


def reframe_line(line: bytes, ts_scale: int, spot: bool, snapshot_t_ms: int | None = None
                 ) -> bytes | None:
    """One raw line in the framing ``binancefutures.convert`` reads, or None to leave it out.

    ``ts_scale`` multiplies the receive stamp (1000 for µs files). With ``spot``: adds ``"T"``
    (= ``E``) to depth updates, ``"X":"MARKET"`` to trades, ``"T": snapshot_t_ms`` to the REST
    snapshot, and leaves out bookTicker (no ``e``: the converter would fail on it, and ignores
    it anyway). Values are never changed: the JSON text is kept and fields are inserted."""
    m = _TS_RE.match(line)
    if not m:
        return line
    ts = int(m.group(1)) * ts_scale
    body = line[m.end():]
    if spot:
        if b'"lastUpdateId"' in body[:40]:
            if b'"T"' not in body and snapshot_t_ms is not None:
                body = b'{"T":' + str(int(snapshot_t_ms)).encode() + b"," + body.lstrip()[1:]
        elif b'"e":"depthUpdate"' in body:
            if b'"T":' not in body:
                body = re.sub(rb'"E":(\d+),', rb'"E":\1,"T":\1,', body, count=1)
        elif b'"e":"trade"' in body:
            if b'"X":' not in body:
                body = body.replace(b'"e":"trade",', b'"e":"trade","X":"MARKET",', 1)
        elif b'@bookTicker' in body[:60] and b'"e":' not in body:
            return None
    return b"%d " % ts + body


def spot_snapshot_time_ms(lines: list[bytes]) -> int | None:
    """The ``E`` (ms) of the first spot diff that follows the REST snapshot's ``lastUpdateId``
    (``u > lastUpdateId``), or None without a snapshot / such a diff."""
    last_id = None
    for line in lines:
        if b'"lastUpdateId"' in line:
            last_id = int(re.search(rb'"lastUpdateId":\s*(\d+)', line).group(1))
            break
    if last_id is None:
        return None
    for line in lines:
        if b'"e":"depthUpdate"' in line:
            u = int(re.search(rb'"u":(\d+)', line).group(1))
            if u > last_id:
                return int(re.search(rb'"E":(\d+)', line).group(1))
    return None


def frame_file(src: Path, dst_dir: Path, spot: bool, snapshot_t_ms: int | None
               ) -> tuple[Path, dict]:
    """``src`` as the converter reads it: returned as is if no adaptation is needed, else a
    re-framed gzip copy in ``dst_dir``. Returns ``(path, info)``."""
    with gzip.open(src, "rb") as f:
        lines = f.read().splitlines()
    digits = {ts_digits(x) for x in lines[:1000]} - {0}
    if digits == {19}:
        scale = 1
    elif digits == {16}:
        scale = 1000
    else:
        raise ValueError(f"{src}: receive stamps of {sorted(digits)} digits (19 or 16 expected)")
    info = {"file": src.name, "ts_digits": digits.pop(), "ts_scale": scale, "spot_fields": spot,
            "lines": len(lines), "lines_left_out": 0}
    if scale == 1 and not spot:
        return src, info
    out = []
    for line in lines:
        r = reframe_line(line, scale, spot, snapshot_t_ms)
        if r is None:
            info["lines_left_out"] += 1
        else:
            out.append(r)
    dst = dst_dir / (src.name.split(".")[0] + ".framed.gz")
    with gzip.open(dst, "wb", compresslevel=1) as f:
        f.write(b"\n".join(out) + b"\n")
    return dst, info


# --- hftbacktest side -----------------------------------------------------------------------------
def convert_native(files: list[Path], spot: bool, tmp: Path) -> tuple[list[np.ndarray], list]:
    """Frame and convert each file with ``binancefutures.convert``; returns the arrays and the
    framing info. The converter's progress prints go to stderr."""
    from hftbacktest.data.utils import binancefutures

    snap_t = None
    if spot:
        with gzip.open(files[0], "rb") as f:
            snap_t = spot_snapshot_time_ms(f.read().splitlines())
    arrays, infos = [], []
    for src in files:
        path, info = frame_file(src, tmp, spot, snap_t)
        with contextlib.redirect_stdout(sys.stderr):
            data = binancefutures.convert(str(path), buffer_size=CONVERT_BUFFER_ROWS)
        sys.stderr.flush()
        info["rows"] = int(len(data))
        arrays.append(data)
        infos.append(info)
    return arrays, infos


def build(arrays: list[np.ndarray], depth: str, tick_size: float, lot_size: float,
          inverse: float, roi: tuple[float, float]):
    """The parity asset (as the converted-input worker's) on a ROIVector or HashMap depth."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest, ROIVectorMarketDepthBacktest
    from peer_hftbacktest_worker import (
        ENTRY_LATENCY_NS,
        MAKER_FEE,
        RESPONSE_LATENCY_NS,
        TAKER_FEE,
    )

    asset = BacktestAsset().data(list(arrays))
    asset = asset.inverse_asset(inverse) if inverse > 0 else asset.linear_asset(1.0)
    asset = (asset.constant_order_latency(ENTRY_LATENCY_NS, RESPONSE_LATENCY_NS)
             .power_prob_queue_model(2.0).no_partial_fill_exchange()
             .trading_value_fee_model(MAKER_FEE, TAKER_FEE)
             .tick_size(tick_size).lot_size(lot_size))
    if depth == "roi_vector":
        asset = asset.roi_lb(roi[0]).roi_ub(roi[1])
        return ROIVectorMarketDepthBacktest([asset])
    return HashMapMarketDepthBacktest([asset])


def run_once(arrays, depth, order_lots, tick_size, lot_size, inverse, roi):
    """One backtest: ``(results, fill_records, loop_wall_s, build_wall_s)`` (the worker's
    ``run_built`` on this depth's backtest)."""
    from peer_hftbacktest_worker import run_built

    res, rec, loop_s, build_s = run_built(
        lambda: build(arrays, depth, tick_size, lot_size, inverse, roi), order_lots, tick_size,
        lot_size, inverse)
    # the order map is a Rust HashMap (random iteration order per instance): orders filled in
    # the same step come out in any order, so the records are sorted by (exch_ts, order_id)
    rec = rec[np.lexsort((rec[:, 2], rec[:, 0]))]
    return res, rec, loop_s, build_s


def bench(arrays, depths, repeats, **kw):
    """For each depth in ``depths``: a warm-up run (compile), then ``repeats`` timed rounds
    with the depths alternating (so a busy machine slows both alike), best kept; checks
    determinism. Returns ``{depth: (results, fill_records)}``."""
    out = {}
    best = {}
    for d in depths:
        res, rec, first_loop, first_build = run_once(arrays, d, **kw)
        res.update(wall_s_first=first_loop + first_build, deterministic=True)
        out[d] = (res, rec)
        best[d] = [float("inf"), float("inf")]
    for _ in range(repeats):
        for d in depths:
            r, rec2, loop_s, build_s = run_once(arrays, d, **kw)
            res, rec = out[d]
            same = {k: v for k, v in res.items() if k not in ("wall_s_first", "deterministic")}
            res["deterministic"] &= bool(r == same and np.array_equal(rec, rec2))
            best[d][0] = min(best[d][0], loop_s)
            best[d][1] = min(best[d][1], loop_s + build_s)
    for d in depths:
        out[d][0].update(wall_s_warm=best[d][0], wall_s_warm_with_build=best[d][1])
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", help="raw Binance captures (gzip), in stream order")
    ap.add_argument("--out", required=True, help="write the result JSON here")
    ap.add_argument("--market", choices=("usdm", "spot"), default="usdm")
    ap.add_argument("--span-lo", type=int, default=None, help="first exch_ts kept (ns)")
    ap.add_argument("--span-hi", type=int, default=None, help="last exch_ts kept (ns)")
    ap.add_argument("--tick-size", type=float, default=0.1)
    ap.add_argument("--lot-size", type=float, default=0.001)
    ap.add_argument("--order-lots", type=int, default=10)
    ap.add_argument("--inverse", type=float, default=0.0, metavar="CONTRACT_SIZE")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--roi-margin", type=float, default=ROI_MARGIN)
    ap.add_argument("--fills-out", default=None, help="write the fill records (.npz)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))
    import hftbacktest
    from hftbacktest import TRADE_EVENT

    files = [Path(f) for f in args.files]
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmsim-peer-native-") as tmp:
        arrays, framing = convert_native(files, args.market == "spot", Path(tmp))
    convert_s = time.perf_counter() - t
    n_conv = sum(len(a) for a in arrays)
    arrays = [a[span_mask(a["exch_ts"], args.span_lo, args.span_hi)].copy() for a in arrays]
    arrays = [a for a in arrays if len(a)]
    allrows = np.concatenate(arrays)
    ev = allrows["ev"]
    is_trade = (ev & 0xFF) == TRADE_EVENT
    roi = roi_range(allrows["px"][is_trade], args.tick_size, args.roi_margin)
    depth_rows = ((ev & 0xFF) == 1) | ((ev & 0xFF) == 4)  # DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT
    pt = np.round(allrows["px"] / args.tick_size)
    lb_t, ub_t = round(roi[0] / args.tick_size), round(roi[1] / args.tick_size)
    outside = int((depth_rows & ((pt < lb_t) | (pt > ub_t))).sum())
    kw = {"order_lots": args.order_lots, "tick_size": args.tick_size,
          "lot_size": args.lot_size, "inverse": args.inverse, "roi": roi}
    repeats = max(args.repeats, 1)
    runs = bench(arrays, ("roi_vector", "hashmap"), repeats, **kw)
    (res_roi, rec_roi), (res_hm, rec_hm) = runs["roi_vector"], runs["hashmap"]
    out = {
        "files": [os.fspath(f) for f in files], "market": args.market,
        "converter": "hftbacktest.data.utils.binancefutures.convert",
        "framing": framing, "rows_converted": int(n_conv), "rows": int(len(allrows)),
        "rows_dropped_outside_span": int(n_conv - len(allrows)),
        "first_exch_ts": int(allrows["exch_ts"].min()),
        "last_exch_ts": int(allrows["exch_ts"].max()),
        "first_event_ts": int(min(allrows["exch_ts"][0], allrows["local_ts"][0])),
        "span_lo": args.span_lo, "span_hi": args.span_hi,
        "roi": {"lb": roi[0], "ub": roi[1], "ticks": ub_t - lb_t + 1,
                "margin": args.roi_margin, "depth_rows_outside_roi": outside,
                "depth_rows": int(depth_rows.sum())},
        "convert_s": convert_s, "hftbacktest_version": hftbacktest.__version__,
        "roi_vector": res_roi, "hashmap": res_hm,
        "roi_vector_equals_hashmap": bool(np.array_equal(rec_roi, rec_hm)
                                          and res_roi["fills"] == res_hm["fills"]),
    }
    Path(args.out).write_text(json.dumps(out))
    if args.fills_out:
        np.savez(args.fills_out, roi_vector=rec_roi, hashmap=rec_hm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
