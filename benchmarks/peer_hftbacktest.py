"""Parity with the reference peer: mmsim vs hftbacktest 2.4.4 on the same Binance stream.

``python benchmarks/peer_hftbacktest.py`` (``make bench-peer``) runs every known Binance pair
under the data root (``--pairs``, :data:`PAIRS`: USD-M 2024-07-18/19, spot 2024-08-08/09, USD-M
2023-04-04/05 with funding, USD-M 2024-08-08; COIN-M when a capture appears under
``binance/coinm/``), or one capture given with ``--files``. Each capture is ingested once, then
one policy runs in both simulators: every 100 ms a post-only bid and ask at
``round(mid_tick ∓ 5 − 1·position/order_qty)`` ticks (bid ≤ best bid, ask ≥ best ask), of
``order_qty`` (0.01 BTC); a resting quote at its target is kept, any other is cancelled and
replaced; power-probability queue n = 2; 1 ms entry and response latency; maker −0.5 bp,
taker 7 bp. Both read the same canonical events (hftbacktest gets them converted to its
event format by ``peer_hftbacktest_worker.py``, with the same feed-clock offset).

mmsim runs twice: with partial fills (its default) and with whole-order fills
(``matching.partial_fills: false``), the model of hftbacktest's ``no_partial_fill_exchange``,
where any execution that reaches an order fills all of it. hftbacktest's
``partial_fill_exchange`` is broken in 2.4.4 (it stops early and books only whole-order fills:
upstream issues #312, #299, #316) and is shown for reference only.

**The decision clock.** hftbacktest's clock starts at the first event it receives, and the
conversion drops every event kind it has no use for (bookTicker BBO, mark price, funding,
snapshot begin/end markers, status): its first event is the first book level, clear or trade.
mmsim's engine starts its clock at the first event of its input, which is usually a
bookTicker message, up to a few hundred ms earlier: the two 100 ms grids were out of phase by
0–46 ms. The harness does not drop those events from mmsim's input (mmsim uses them: mark
prices and funding rates for funding, the snapshot markers for queue resets; removing them
would change the simulation, not only its clock); it starts mmsim's decision (and equity)
clock at the peer's first event instead (:func:`peer_clock_start`, :func:`align_clock`), and
checks that the worker reports the same start time. bookTicker events do not change mmsim's
book, so the only difference left is the grid phase, which is a convention.

With whole-order fills and aligned clocks the fill events, filled orders, traded quantity and
final position must be identical, and PnL and fees equal to rounding; the benchmark prints
MATCH / MISMATCH per field (and, on a mismatch, the first fill that differs) and exits 1 on a
mismatch. PnL is trading PnL at the final mid (mmsim's funding, which hftbacktest does not
model, is reported separately).

**hftbacktest as its users run it** (``peer_hftbacktest_native.py``, in the peer venv): its own
converter (``hftbacktest.data.utils.binancefutures.convert``, per file, only the framing
adapted: µs stamps written in ns; on spot the futures-only fields it reads are added from the
message's own values) on the raw files, cut to mmsim's span (first to last ``exch_ts`` of its
events), then the same policy on ``ROIVectorMarketDepthBacktest`` (``roi_lb``/``roi_ub``: the
traded range ± 5 % of the top price) and on ``HashMapMarketDepthBacktest``. Their fills are
printed beside mmsim's (they need not match: the converters differ, see :data:`NATIVE_WHY`),
and a final table gives per pair the warm wall times (best of ``--repeats``, compile excluded;
mmsim whole-order, hftbacktest ``no_partial``) and the ratios mmsim / ROIVector (issue 13's
target: <= 0.5), mmsim / HashMap native and mmsim / HashMap converted. The two count events
differently (mmsim's canonical rows include bookTicker, mark, funding and snapshot markers;
hftbacktest's rows are depth levels, trades and clears): both counts and the span are printed.
Options::

    --pairs P,Q|all        known pairs to run (default all those under the data root)
    --files A,B,...        one capture instead, relative to the data root (with --files, --spot,
                           --inverse, --tick-size or --lot-size: that one capture, default the
                           2024-07-18/19 USD-M pair); --data-root DIR (default MMSIM_DATA_ROOT,
                           else data/)
    --tick-size, --lot-size  instrument grid (default USD-M BTCUSDT 0.1 / 0.001, spot 0.01 /
                           0.000001)
    --order-qty Q          order size in instrument units (default 0.01)
    --spot                 a spot capture: no funding / mark streams; bookTicker has no
                           exchange time (the reader estimates it)
    --inverse C            an inverse contract of C quote-currency units per contract (mmsim
                           ``contract: inverse, multiplier: C``; hftbacktest ``inverse_asset(C)``)
    --json FILE            write {"mmsim": {"partial": R, "whole_order": R},
                           "hftbacktest": {"no_partial": R, "partial": R, "roi_vector": N,
                           "hashmap_native": N}, "span", "native", "speed", ...} with
                           R = {fill_events, filled_orders, traded_qty, final_position, pnl,
                           fees, warm_wall_s}, N = R + {n_events, span, completed,
                           mmsim_warm_wall_s}; one pair: that document, several:
                           {"pairs": {name: document}, "summary": [row], "unavailable"}
    --repeats N            timed warm runs, best kept (default 3)
    --rounds K             time the runs in K alternating windows (mmsim, hftbacktest on
                           mmsim's events, hftbacktest native, mmsim, ...): the final table
                           and the JSON ``speed`` give each side's best over all of them, so
                           a slow spell of the host hits both sides alike (the parity table
                           above them keeps the first window's; default 3, 1 for a quick
                           parity check)
    --clock-start first-event   do not align the clocks (diagnosis: shows the phase effect)

hftbacktest runs in its own virtual environment (``benchmarks/.peer-venv``, created on first
use from PyPI) so mmsim's dependencies stay free. Timings on a shared machine are noisy:
read the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_FILES = ("binance/usdm/btcusdt_20240718.gz", "binance/usdm/btcusdt_20240719.gz")
#: instrument grid (tick_size, lot_size) of Binance BTCUSDT per market
GRID = {"usdm": (0.1, 0.001), "spot": (0.01, 0.000001)}
DEFAULT_ORDER_QTY = 0.01
MAKER_FEE_BPS = -0.5
TAKER_FEE_BPS = 7.0
DECISION_NS = 100_000_000
OFFSET_TICKS = 5

#: the result fields compared and written to JSON (``R``)
R_FIELDS = ("fill_events", "filled_orders", "traded_qty", "final_position", "pnl", "fees",
            "warm_wall_s")
#: fields that must be equal (quantities compared in lots)
EXACT_FIELDS = ("fill_events", "filled_orders", "traded_qty", "final_position")
#: fields equal up to float rounding: |a − b| <= FLOAT_REL_TOL · max(|a|, |b|, traded value),
#: the traded value (settlement currency) being the scale of the sums behind them
FLOAT_FIELDS = ("pnl", "fees")
FLOAT_REL_TOL = 1e-10

#: the captures the harness knows (``--pairs``): files relative to the data root, market and
#: contract. ``files_glob`` pairs are looked up at run time (no COIN-M capture is shared yet).
PAIRS: dict[str, dict] = {
    "usdm-2024-07-18": {"files": DEFAULT_FILES, "market": "usdm",
                        "what": "USD-M BTCUSDT perpetual, 8 min"},
    "spot-2024-08-08": {"files": ("binance/spot/btcusdt_20240808.gz",
                                  "binance/spot/btcusdt_20240809.gz"), "market": "spot",
                        "what": "spot BTCUSDT, depth@100ms"},
    "usdm-2023-04-04": {"files": ("binance/usdm/btcusdt_20230404.dat.gz",
                                  "binance/usdm/btcusdt_20230405.dat.gz"), "market": "usdm",
                        "what": "USD-M BTCUSDT with markPrice / funding (µs stamps)"},
    "usdm-2024-08-08": {"files": ("binance/usdm/btcusdt_20240808.gz",), "market": "usdm",
                        "what": "USD-M BTCUSDT, one file"},
    "coinm": {"files_glob": ("binance/coinm/*.gz", "binance/cm/*.gz"), "market": "coinm",
              "inverse": 100.0, "grid": (0.1, 1.0), "order_qty": 1.0,
              "what": "COIN-M BTCUSD_PERP inverse (100 USD contracts)"},
}

# canonical event kinds / flags (mmsim.enums), as the worker converts them
K_TRADE, K_LEVEL_SET, K_CLEAR = 6, 7, 8
K_MARK, K_FUNDING = 12, 13
F_INFO = 8


# --- arguments ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; fills in the grid defaults for the market (``--spot``)."""
    ap = argparse.ArgumentParser(
        prog="peer_hftbacktest.py",
        description="mmsim vs hftbacktest 2.4.4 on the same Binance capture (parity policy)")
    ap.add_argument("--files", default=None,
                    help="comma-separated capture files, relative to the data root "
                         "(one instrument, one continuous stream; default: the 2024-07-18/19 "
                         "USD-M pair). Runs that one capture instead of --pairs")
    ap.add_argument("--pairs", default=None,
                    help="comma-separated names of the known pairs (" + ", ".join(PAIRS)
                         + ") or 'all' (the default: every pair whose files are under the "
                         "data root)")
    ap.add_argument("--data-root", default=None,
                    help="data root (default: MMSIM_DATA_ROOT, else data/)")
    ap.add_argument("--tick-size", type=float, default=None, help="price of one tick")
    ap.add_argument("--lot-size", type=float, default=None, help="quantity of one lot")
    ap.add_argument("--order-qty", type=float, default=DEFAULT_ORDER_QTY,
                    help="order size in instrument units (a multiple of the lot)")
    ap.add_argument("--spot", action="store_true",
                    help="spot capture (no funding/mark streams; spot grid defaults)")
    ap.add_argument("--inverse", type=float, default=None, metavar="CONTRACT_SIZE",
                    help="inverse contract: quote-currency units per contract")
    ap.add_argument("--json", default=None, metavar="FILE", help="write the table as JSON")
    ap.add_argument("--repeats", type=int, default=3, help="timed warm runs (best is kept)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating timing windows of mmsim and hftbacktest-native; each "
                         "side's best over all of them is kept")
    ap.add_argument("--clock-start", choices=("peer", "first-event"), default="peer",
                    help="mmsim's decision clock origin: the peer's first event (default, "
                         "aligned) or mmsim's own first event (the engine's default; for "
                         "diagnosis: the grids are then out of phase)")
    args = ap.parse_args(argv)
    # --files or any instrument option: one capture, as before --pairs existed
    args.custom = (args.files is not None or args.spot or args.inverse is not None
                   or args.tick_size is not None or args.lot_size is not None)
    if args.custom and args.pairs is not None:
        ap.error("--pairs excludes --files / --spot / --inverse / --tick-size / --lot-size "
                 "(each known pair has its own)")
    files = ",".join(DEFAULT_FILES) if args.files is None else args.files
    args.files = [f.strip() for f in files.split(",") if f.strip()]
    if not args.files:
        ap.error("--files: no file given")
    if args.custom:
        args.pair_names = None
    else:
        names = [n.strip() for n in (args.pairs or "all").split(",") if n.strip()]
        if not names:
            ap.error("--pairs: no pair given")
        unknown = [n for n in names if n != "all" and n not in PAIRS]
        if unknown:
            ap.error(f"--pairs: unknown {', '.join(unknown)} (known: {', '.join(PAIRS)}, all)")
        args.pair_names = list(PAIRS) if "all" in names else list(dict.fromkeys(names))
    tick, lot = GRID["spot" if args.spot else "usdm"]
    args.tick_size = tick if args.tick_size is None else args.tick_size
    args.lot_size = lot if args.lot_size is None else args.lot_size
    if args.tick_size <= 0 or args.lot_size <= 0:
        ap.error("--tick-size and --lot-size must be positive")
    if args.inverse is not None and args.inverse <= 0:
        ap.error("--inverse: the contract size must be positive")
    if args.spot and args.inverse is not None:
        ap.error("--spot and --inverse exclude each other")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    try:
        args.order_lots = order_lots(args.order_qty, args.lot_size)
    except ValueError as e:
        ap.error(str(e))
    return args


def order_lots(order_qty: float, lot_size: float) -> int:
    """``order_qty`` in whole lots; raises ``ValueError`` unless it is a positive multiple."""
    n = round(order_qty / lot_size)
    if n < 1 or abs(n * lot_size - order_qty) > 1e-9 * max(abs(order_qty), lot_size):
        raise ValueError(f"--order-qty {order_qty} is not a positive multiple of the lot "
                         f"{lot_size}")
    return int(n)


def experiment_config(args: argparse.Namespace, partial_fills: bool,
                      symbol: str = "BTCUSDT") -> dict:
    """The mmsim experiment (as a dict) of the parity policy for ``args``."""
    inst: dict[str, Any] = {"symbol": symbol, "tick_size": args.tick_size,
                            "lot_size": args.lot_size, "maker_fee_bps": MAKER_FEE_BPS,
                            "taker_fee_bps": TAKER_FEE_BPS}
    if args.inverse is not None:
        inst.update(contract="inverse", multiplier=float(args.inverse))
    return {
        "name": "parity",
        "data": {"kind": "binance", "path": args.files[0], "files": list(args.files[1:])},
        "instrument": inst,
        "latency": {"feed_nanos": None, "feed_offset_nanos": "auto",
                    "entry_nanos": 1_000_000, "response_nanos": 1_000_000},
        "queue": {"model": "power", "power_n": 2.0},
        "matching": {"partial_fills": bool(partial_fills)},
        "engine": {"decision_interval_nanos": DECISION_NS, "equity_interval_nanos": DECISION_NS,
                   "replace": "cancel_replace", "decide_on_fill": False, "horizon": "none"},
        "policy": {"name": "offset_ticks", "offset_ticks": OFFSET_TICKS, "skew_ticks": 1,
                   "order_qty": args.order_lots},
    }


# --- the decision clock ------------------------------------------------------------------------
def peer_keep_mask(events: np.ndarray) -> np.ndarray:
    """Rows of canonical ``events`` that the worker converts for hftbacktest.

    LEVEL_SET, CLEAR and TRADE without the INFO flag (``peer_hftbacktest_worker.convert``);
    everything else (BBO, MARK, FUNDING, SNAPSHOT_BEGIN/END, STATUS, INFO prints) is dropped.
    """
    kind = events["kind"]
    info = (events["flags"] & F_INFO) != 0
    return (kind == K_LEVEL_SET) | (kind == K_CLEAR) | ((kind == K_TRADE) & ~info)


def peer_clock_start(events: np.ndarray) -> int:
    """Where hftbacktest's decision clock starts: the exchange time of the first event it
    receives (the worker sorts by ``exch_ts`` and ``local_ts >= exch_ts``, so the smallest kept
    ``exch_ts``). Raises ``ValueError`` if the peer would receive nothing."""
    keep = peer_keep_mask(events)
    if not keep.any():
        raise ValueError("no book or trade event: hftbacktest would receive nothing")
    return int(events["exch_ts"][keep].min())


def align_clock(engine, t0: int) -> None:
    """Start ``engine``'s decision and equity clocks at ``t0`` instead of its first event.

    Must be called before the first :meth:`Engine.feed`; the kernel only sets its clock origin
    when none is set yet (``S_T0 < 0``), so the grid becomes ``t0 + k * decision_interval``,
    k >= 1, as hftbacktest's. ``t0`` must not precede the first event (the engine would have
    to run decisions before any data).
    """

    st = engine.st
    if st["t0"] >= 0:
        raise RuntimeError("align_clock: the engine's clock has already started")
    st["t0"] = int(t0)
    st["next_decision_ts"] = int(t0) + int(engine.cfg["decision_ns"])
    st["next_equity_ts"] = int(t0)


# --- mmsim ---------------------------------------------------------------------------------------
def load_events(args: argparse.Namespace, data_root: str | None = None):
    """Open (ingest once, cached) the capture; returns ``(dataset, events)``."""
    from mmsim.config import config_from_dict
    from mmsim.data.sources import data_root_from, open_dataset

    cfg = config_from_dict(experiment_config(args, True))
    ds = open_dataset(cfg.data, data_root_from(data_root),
                      grid_hints={"tick_size": args.tick_size, "lot_size": args.lot_size})
    events = np.concatenate(list(ds.chunks(10_000_000)))
    return ds, events


def run_mmsim(events: np.ndarray, cfg_dict: dict, ref_price_tick: int, feed_offset_ns: int,
              clock_start_ns: int | None, repeats: int = 3) -> tuple[dict, np.ndarray]:
    """Run the parity policy in mmsim on in-memory ``events``; best of ``repeats`` warm runs.

    Returns ``(R, fills)``: ``R`` holds :data:`R_FIELDS` plus ``events``, ``events_per_s``,
    ``funding`` and ``pnl_with_funding``; ``pnl`` is the trading PnL at the final exchange mid
    without funding (linear ``cash + position·mid·multiplier``, inverse
    ``cash − position·multiplier/mid``, fees included in ``cash``). ``fills`` is the last run's
    fill records (``FILL_DTYPE``).
    """
    from mmsim.config import config_from_dict
    from mmsim.engine import nb as enb
    from mmsim.engine.backtest import Engine
    from mmsim.resolve import resolve_for_events

    cfg = config_from_dict(cfg_dict)
    # the config's instrument section is the whole instrument; feed_offset_nanos: auto takes
    # the reader's suggestion, passed in as feed_offset_ns
    spec = resolve_for_events(cfg, ref_price_tick=ref_price_tick, book="L2",
                              suggested_feed_offset_ns=feed_offset_ns)
    inst = spec.instrument
    lot, tick = inst.lot_size, inst.tick_size
    best = float("inf")
    out: dict = {}
    f = np.zeros(0)
    for k in range(repeats + 1):  # k = 0: warm-up (compile / load the numba cache)
        eng = Engine(spec)
        if clock_start_ns is not None:
            align_clock(eng, clock_start_ns)
        fills: list[np.ndarray] = []
        t = time.perf_counter()
        eng.feed(events, lambda fl, o, e, acc=fills: acc.append(fl), final=True)
        dt = time.perf_counter() - t
        if k > 0:
            best = min(best, dt)
        f = np.concatenate(fills) if fills else np.zeros(0)
        pos = int(eng.st["position"])
        sc = eng.book["sc"]
        mid = 0.5 * (enb.best_bid_tick_nb(sc) + enb.best_ask_tick_nb(sc)) * tick
        cash = float(eng.st["cash"])
        funding = float(eng.st["funding"])
        if inst.is_inverse:
            value = -pos * lot * inst.multiplier / mid
        else:
            value = pos * lot * mid * inst.multiplier
        out = {
            "fill_events": int(len(f)),
            "filled_orders": int(len(np.unique(f["order_id"]))) if len(f) else 0,
            "traded_qty": float(f["qty"].sum() * lot) if len(f) else 0.0,
            "final_position": pos * lot,
            "pnl": cash + funding + value,  # funding is paid out of cash: add it back
            "fees": float(eng.st["fees"]),
            "warm_wall_s": best if best < float("inf") else dt,
            "events": int(len(events)),
            "funding": -funding,  # cash received from funding (negative: paid)
            "pnl_with_funding": cash + value,
            "decisions": int(eng.st["n_decisions"]),
        }
    out["events_per_s"] = len(events) / out["warm_wall_s"]
    return out, f


# --- hftbacktest ---------------------------------------------------------------------------------
def run_peer(events_path: Path, args: argparse.Namespace, feed_offset_ns: int,
             fills_out: Path | None = None) -> dict:
    """Run the worker in the peer venv; returns its JSON output."""
    from benchmarks.peer_env import ensure_peer_venv

    py = ensure_peer_venv(REPO / "benchmarks" / ".peer-venv")
    cmd = [str(py), str(REPO / "benchmarks" / "peer_hftbacktest_worker.py"), str(events_path),
           "--repeats", str(args.repeats), "--feed-offset-ns", str(feed_offset_ns),
           "--tick-size", repr(args.tick_size), "--lot-size", repr(args.lot_size),
           "--order-lots", str(args.order_lots)]
    if args.inverse is not None:
        cmd += ["--inverse", repr(float(args.inverse))]
    if fills_out is not None:
        cmd += ["--fills-out", str(fills_out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise RuntimeError(f"the hftbacktest worker failed (exit {r.returncode})")
    for line in r.stderr.splitlines():
        if line.startswith("WARNING") and "partial fills" not in line:
            print(f"  peer: {line}", file=sys.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def peer_result(mode: dict) -> dict:
    """The worker's result dict for one exchange model → ``R`` (plus ``completed``)."""
    return {
        "fill_events": int(mode["fills"]),
        "filled_orders": int(mode["filled_orders"]),
        "traded_qty": float(mode["traded_qty"]),
        "final_position": float(mode["final_position"]),
        "pnl": float(mode["pnl"]),
        "fees": float(mode["fees"]),
        "warm_wall_s": float(mode["wall_s_warm"]),
        "completed": bool(mode["completed"]),
    }


# --- comparison ----------------------------------------------------------------------------------
def compare(mm: dict, hb: dict, lot_size: float, traded_value: float = 0.0) -> dict[str, dict]:
    """Field-by-field check of ``mm`` (mmsim, whole-order fills) against ``hb`` (hftbacktest,
    no partial fills): ``{field: {"match": bool, "mmsim": a, "hftbacktest": b, "diff": a-b}}``.

    Counts must be equal; quantities are compared in lots; PnL and fees within
    ``FLOAT_REL_TOL · max(|a|, |b|, traded_value)`` (``traded_value``: the peer's traded
    notional in the settlement currency, the scale of the sums behind PnL and fees).
    """
    res = {}
    for key in EXACT_FIELDS + FLOAT_FIELDS:
        a, b = mm[key], hb[key]
        if key in ("fill_events", "filled_orders"):
            ok = int(a) == int(b)
        elif key in ("traded_qty", "final_position"):
            ok = round(a / lot_size) == round(b / lot_size)
        else:
            tol = FLOAT_REL_TOL * max(abs(a), abs(b), abs(traded_value))
            ok = math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tol
        res[key] = {"match": bool(ok), "mmsim": a, "hftbacktest": b, "diff": a - b}
    return res


def fill_key_rows(mm_fills: np.ndarray, hb_fills: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both fill logs as ``int64[n, 4]`` rows ``(exch_ts, side, price_tick, qty_lots)`` in time
    order (mmsim's ``FILL_DTYPE`` records; the worker's ``--fills-out`` rows)."""
    a = np.zeros((len(mm_fills), 4), np.int64)
    if len(mm_fills):
        a[:, 0] = mm_fills["exch_ts"]
        a[:, 1] = mm_fills["side"]
        a[:, 2] = mm_fills["price_tick"]
        a[:, 3] = mm_fills["qty"]
    b = np.zeros((len(hb_fills), 4), np.int64)
    if len(hb_fills):
        b[:, 0] = hb_fills[:, 0]
        b[:, 1] = hb_fills[:, 3]
        b[:, 2] = hb_fills[:, 4]
        b[:, 3] = hb_fills[:, 5]
    a = a[np.lexsort((a[:, 2], a[:, 1], a[:, 0]))]
    b = b[np.lexsort((b[:, 2], b[:, 1], b[:, 0]))]
    return a, b


def first_fill_difference(mm_fills: np.ndarray, hb_fills: np.ndarray) -> dict | None:
    """The first fill (in time order) that differs between the two logs, or None.

    Returns ``{"index", "mmsim", "hftbacktest"}`` where each side is the row
    ``(exch_ts, side, price_tick, qty_lots)`` at that index (None past the end of its log).
    """
    a, b = fill_key_rows(mm_fills, hb_fills)
    n = min(len(a), len(b))
    neq = np.nonzero(np.any(a[:n] != b[:n], axis=1))[0]
    if len(neq):
        i = int(neq[0])
    elif len(a) != len(b):
        i = n
    else:
        return None
    return {"index": i,
            "mmsim": a[i].tolist() if i < len(a) else None,
            "hftbacktest": b[i].tolist() if i < len(b) else None}


def build_report(mm_partial: dict, mm_whole: dict, hb_nopartial: dict, hb_partial: dict,
                 checks: dict, info: dict) -> dict:
    """The JSON document: ``{"mmsim": {"partial": R, "whole_order": R}, "hftbacktest":
    {"no_partial": R, "partial": R}, "match": {field: bool}, "all_match": bool, ...}``."""

    def r(d: dict) -> dict:
        return {k: d[k] for k in R_FIELDS}

    return {
        "mmsim": {"partial": r(mm_partial), "whole_order": r(mm_whole)},
        "hftbacktest": {"no_partial": r(hb_nopartial),
                        "partial": {**r(hb_partial), "completed": hb_partial["completed"]}},
        "match": {k: v["match"] for k, v in checks.items()},
        "all_match": all(v["match"] for v in checks.values()),
        "ratios_whole_order": {k: _ratio(mm_whole[k], hb_nopartial[k]) for k in R_FIELDS},
        "ratios_partial": {k: _ratio(mm_partial[k], hb_nopartial[k]) for k in R_FIELDS},
        "mmsim_funding": {"partial": mm_partial.get("funding", 0.0),
                          "whole_order": mm_whole.get("funding", 0.0)},
        **info,
    }


def _ratio(a, b) -> float | None:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b != 0:
        return a / b
    return None


def _fmt(v, key: str) -> str:
    if v is None:
        return "-"
    if key in ("fill_events", "filled_orders", "events", "decisions"):
        return f"{int(v):,}"
    if key == "warm_wall_s":
        return f"{v:.4f}"
    if key == "events_per_s":
        return f"{v:,.0f}"
    if key in ("traded_qty", "final_position"):
        return f"{v:.6f}".rstrip("0").rstrip(".") if v != 0 else "0"
    return f"{v:.6f}" if v == 0 or abs(v) >= 0.01 else f"{v:.6e}"  # inverse: PnL in coin


def print_table(title: str, mm_p: dict, mm_w: dict, hb: dict, hb_p: dict, checks: dict) -> None:
    """Print both mmsim modes beside hftbacktest, the ratios and MATCH / MISMATCH."""
    print(title)
    w = 14
    print(f"  {'':<17} {'mmsim partial':>{w}} {'mmsim whole':>{w}} {'hbt no_partial':>{w}}"
          f" {'partial/hbt':>11} {'whole/hbt':>10}  whole-order check")
    labels = {"fill_events": "fill events", "filled_orders": "filled orders",
              "traded_qty": "traded qty", "final_position": "final position",
              "pnl": "PnL", "fees": "fees", "warm_wall_s": "warm wall s",
              "events_per_s": "events/s"}
    for key in (*R_FIELDS, "events_per_s"):
        a, b, c = mm_p.get(key), mm_w.get(key), hb.get(key)
        rp, rw = _ratio(a, c), _ratio(b, c)
        chk = ""
        if key in checks:
            ck = checks[key]
            chk = "MATCH" if ck["match"] else "MISMATCH"
            if key in FLOAT_FIELDS:
                chk += f" (diff {ck['diff']:+.3g})"
        print(f"  {labels[key]:<17} {_fmt(a, key):>{w}} {_fmt(b, key):>{w}} {_fmt(c, key):>{w}}"
              f" {'' if rp is None else f'{rp:.4f}':>11} {'' if rw is None else f'{rw:.4f}':>10}"
              f"  {chk}")
    print("  hftbacktest partial_fill_exchange (broken upstream, reference only): "
          + ", ".join(f"{k}={_fmt(hb_p[k], k)}" for k in R_FIELDS[:-1])
          + f", completed={hb_p['completed']}")


# --- pairs -------------------------------------------------------------------------------------
def data_root_from_arg(arg: str | None) -> Path:
    """The data root (``--data-root``, else ``MMSIM_DATA_ROOT``, else ``data/``)."""
    if arg:
        return Path(arg)
    env = os.environ.get("MMSIM_DATA_ROOT")
    return Path(env) if env else Path("data")


def pair_files(pair: dict, data_root: Path) -> list[str]:
    """The pair's files (relative to ``data_root``) that exist; ``files_glob`` pairs are
    globbed (sorted). Empty if any listed file is missing."""
    if "files_glob" in pair:
        found: list[str] = []
        for pat in pair["files_glob"]:
            found += sorted(os.fspath(p.relative_to(data_root)) for p in data_root.glob(pat))
        return found
    files = list(pair["files"])
    return files if all((data_root / f).is_file() for f in files) else []


def pair_args(args: argparse.Namespace, name: str, files: list[str]) -> argparse.Namespace:
    """``args`` for pair ``name``: its files, market (``--spot``), contract and grid."""
    pair = PAIRS[name]
    p = argparse.Namespace(**vars(args))
    p.files = list(files)
    p.spot = pair["market"] == "spot"
    p.inverse = pair.get("inverse")
    p.tick_size, p.lot_size = pair.get("grid", GRID["spot" if p.spot else "usdm"])
    p.order_qty = pair.get("order_qty", args.order_qty)
    p.order_lots = order_lots(p.order_qty, p.lot_size)
    p.custom = False
    return p


def resolve_pairs(args: argparse.Namespace, data_root: Path
                  ) -> tuple[list[tuple[str, argparse.Namespace]], dict[str, str]]:
    """``(runnable, unavailable)``: ``(name, args)`` of each requested pair whose files are
    under ``data_root``, and ``{name: why not}`` for the others."""
    todo, missing = [], {}
    for name in args.pair_names:
        pair = PAIRS[name]
        files = pair_files(pair, data_root)
        if files:
            todo.append((name, pair_args(args, name, files)))
        elif "files_glob" in pair:
            have = sorted(p.name for p in (data_root / "binance").glob("*") if p.is_dir())
            missing[name] = (f"no capture under {data_root / 'binance'} matching "
                             f"{', '.join(pair['files_glob'])} (there: {', '.join(have)})")
        else:
            missing[name] = f"missing under {data_root}: " + ", ".join(
                f for f in pair["files"] if not (data_root / f).is_file())
    return todo, missing


# --- hftbacktest on its own conversion ---------------------------------------------------------
def span_info(events: np.ndarray) -> dict:
    """The market-data span of mmsim's run: first and last ``exch_ts`` of its events."""
    lo, hi = int(events["exch_ts"].min()), int(events["exch_ts"].max())
    return {"first_exch_ns": lo, "last_exch_ns": hi, "minutes": (hi - lo) / 60e9}


def run_peer_native(files: list[Path], args: argparse.Namespace, span: dict) -> dict:
    """Run ``peer_hftbacktest_native.py`` in the peer venv on the raw ``files`` cut to
    ``span``; returns its JSON."""
    from benchmarks.peer_env import ensure_peer_venv

    py = ensure_peer_venv(REPO / "benchmarks" / ".peer-venv")
    with tempfile.TemporaryDirectory(prefix="mmsim-peer-native-") as tmp:
        out = Path(tmp) / "native.json"
        cmd = [str(py), str(REPO / "benchmarks" / "peer_hftbacktest_native.py"),
               *map(str, files), "--out", str(out),
               "--market", "spot" if args.spot else "usdm",
               "--span-lo", str(span["first_exch_ns"]), "--span-hi", str(span["last_exch_ns"]),
               "--tick-size", repr(args.tick_size), "--lot-size", repr(args.lot_size),
               "--order-lots", str(args.order_lots), "--repeats", str(args.repeats)]
        if args.inverse is not None:
            cmd += ["--inverse", repr(float(args.inverse))]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            raise RuntimeError(f"the hftbacktest native worker failed (exit {r.returncode})")
        return json.loads(out.read_text())


def native_result(nat: dict, depth: str, mmsim_warm_wall_s: float) -> dict:
    """The native worker's ``depth`` run (``roi_vector`` / ``hashmap``) → ``R`` plus
    ``n_events`` (hftbacktest rows replayed), ``span`` (their first/last ``exch_ts``),
    ``completed`` and ``mmsim_warm_wall_s`` (mmsim's whole-order run, for the ratio)."""
    m = nat[depth]
    r = peer_result(m)
    completed = r.pop("completed")
    r.update(n_events=int(nat["rows"]),
             span={"first_exch_ns": int(nat["first_exch_ts"]),
                   "last_exch_ns": int(nat["last_exch_ts"])},
             completed=completed, mmsim_warm_wall_s=float(mmsim_warm_wall_s))
    return r


def ratio_or_none(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None if either is missing or ``b`` is 0."""
    return _ratio(a, b)


def add_native(doc: dict, roi: dict, hm: dict, nat: dict, span: dict, mm_w: dict, hb: dict,
               n_peer_converted: int) -> dict:
    """Add the native runs to a pair's document (in place; returned): ``hftbacktest.roi_vector``
    and ``hftbacktest.hashmap_native`` (R + ``n_events``, ``span``, ``mmsim_warm_wall_s``),
    ``native`` (conversion facts) and ``speed`` (warm walls and mmsim / peer ratios)."""
    doc["hftbacktest"]["roi_vector"] = roi
    doc["hftbacktest"]["hashmap_native"] = hm
    doc["span"] = {**span, "mmsim_events": int(doc.get("events", 0)),
                   "hftbacktest_converted_rows": int(n_peer_converted),
                   "hftbacktest_native_rows": int(nat["rows"])}
    doc["native"] = {k: nat[k] for k in ("converter", "framing", "rows_converted", "rows",
                                         "rows_dropped_outside_span", "roi", "convert_s",
                                         "roi_vector_equals_hashmap") if k in nat}
    doc["speed"] = {
        "mmsim_warm_wall_s": mm_w["warm_wall_s"],
        "roi_vector_warm_wall_s": roi["warm_wall_s"],
        "hashmap_native_warm_wall_s": hm["warm_wall_s"],
        "hashmap_converted_warm_wall_s": hb["warm_wall_s"],
        "mmsim_over_roi_vector": ratio_or_none(mm_w["warm_wall_s"], roi["warm_wall_s"]),
        "mmsim_over_hashmap_native": ratio_or_none(mm_w["warm_wall_s"], hm["warm_wall_s"]),
        "mmsim_over_hashmap_converted": ratio_or_none(mm_w["warm_wall_s"], hb["warm_wall_s"]),
    }
    return doc


NATIVE_WHY = (
    "why the native fills differ: hftbacktest's converter keeps the depth diffs received before "
    "the REST snapshot (mmsim's reader drops those already in it and bridges the update-id "
    "chain), clears each side only down to the snapshot's deepest level, shifts every local "
    "time by the file's most negative feed latency (per file; mmsim: the reader's suggested "
    "offset) and orders rows by its own event-order correction; bookTicker rows are not "
    "converted. Same market, different replay: the decision grid, feed delays and queue "
    "positions move, hence fills.")


def print_native(nat: dict, roi: dict, hm: dict, mm_w: dict, hb: dict, span: dict,
                 n_mmsim: int, n_conv: int) -> None:
    """The native runs beside mmsim (whole-order) and the converted-input run."""
    r = nat["roi"]
    print(f"hftbacktest on its own conversion ({nat['converter']}), span "
          f"{span['first_exch_ns']} .. {span['last_exch_ns']} ({span['minutes']:.2f} min): "
          f"mmsim {n_mmsim:,} events (incl. bookTicker/mark/markers), hftbacktest converted "
          f"from mmsim {n_conv:,} rows, native {nat['rows']:,} rows "
          f"({nat['rows_dropped_outside_span']:,} outside the span dropped); ROI "
          f"[{r['lb']:.10g}, {r['ub']:.10g}] = {r['ticks']:,} ticks, "
          f"{r['depth_rows_outside_roi']:,} of {r['depth_rows']:,} depth rows outside")
    w = 14
    print(f"  {'':<17} {'mmsim whole':>{w}} {'hbt converted':>{w}} {'hbt ROIVector':>{w}}"
          f" {'hbt HashMap':>{w}} {'mmsim/ROIVec':>12}")
    labels = {"fill_events": "fill events", "filled_orders": "filled orders",
              "traded_qty": "traded qty", "final_position": "final position",
              "pnl": "PnL", "fees": "fees", "warm_wall_s": "warm wall s"}
    for key in R_FIELDS:
        a, b, c, d = mm_w.get(key), hb.get(key), roi.get(key), hm.get(key)
        rr = _ratio(a, c)
        print(f"  {labels[key]:<17} {_fmt(a, key):>{w}} {_fmt(b, key):>{w}} {_fmt(c, key):>{w}}"
              f" {_fmt(d, key):>{w}} {'' if rr is None else f'{rr:.4f}':>12}")
    same = "identical" if nat.get("roi_vector_equals_hashmap") else "DIFFERENT"
    print(f"  ROIVector vs HashMap on the native input: fills {same}"
          + ("" if roi["completed"] and hm["completed"] else "; a run stopped early"))
    print("  " + NATIVE_WHY)


def summary_row(name: str, span: dict, n_mmsim: int, mm_w: dict, hb: dict, roi: dict,
                hm: dict, parity_ok: bool) -> dict:
    """One line of the final table (warm walls in s, ratios mmsim / peer)."""
    return {"pair": name, "minutes": span["minutes"], "mmsim_events": int(n_mmsim),
            "native_rows": int(roi["n_events"]),
            "mmsim_s": mm_w["warm_wall_s"], "roi_vector_s": roi["warm_wall_s"],
            "hashmap_native_s": hm["warm_wall_s"], "hashmap_converted_s": hb["warm_wall_s"],
            "mmsim_over_roi_vector": ratio_or_none(mm_w["warm_wall_s"], roi["warm_wall_s"]),
            "mmsim_over_hashmap_native": ratio_or_none(mm_w["warm_wall_s"], hm["warm_wall_s"]),
            "mmsim_over_hashmap_converted": ratio_or_none(mm_w["warm_wall_s"],
                                                          hb["warm_wall_s"]),
            "parity": "MATCH" if parity_ok else "MISMATCH"}


def format_summary(rows: list[dict], unavailable: dict[str, str] | None = None) -> str:
    """The final table: per pair the warm walls (best of --repeats, compile excluded) and
    the ratios mmsim / ROIVector (issue target <= 0.5) and mmsim / HashMap."""
    head = (f"{'pair':<16} {'span':>7} {'mmsim ev':>9} {'native ev':>9} {'mmsim s':>8} "
            f"{'ROIVec s':>8} {'HMnat s':>8} {'HMconv s':>8} {'mm/ROI':>7} {'mm/HMnat':>8} "
            f"{'mm/HMconv':>9}  parity")
    out = ["warm wall time, best of --repeats, compile excluded (mmsim: whole-order fills; "
           "hftbacktest: no_partial_fill_exchange); ratio < 1: mmsim faster; target "
           "mmsim/ROIVector <= 0.5", head]

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    for r in rows:
        out.append(f"{r['pair']:<16} {r['minutes']:>5.1f}m {r['mmsim_events']:>9,} "
                   f"{r['native_rows']:>9,} {f(r['mmsim_s'], '.4f'):>8} "
                   f"{f(r['roi_vector_s'], '.4f'):>8} {f(r['hashmap_native_s'], '.4f'):>8} "
                   f"{f(r['hashmap_converted_s'], '.4f'):>8} "
                   f"{f(r['mmsim_over_roi_vector'], '.3f'):>7} "
                   f"{f(r['mmsim_over_hashmap_native'], '.3f'):>8} "
                   f"{f(r['mmsim_over_hashmap_converted'], '.3f'):>9}  {r['parity']}")
    for n, why in (unavailable or {}).items():
        out.append(f"{n:<16} not run: {why}")
    return "\n".join(out)


def json_document(docs: dict[str, dict], rows: list[dict],
                  unavailable: dict[str, str] | None = None) -> dict:
    """``--json``: one pair → its document as is (the shape before ``--pairs``, plus
    ``hftbacktest.roi_vector`` / ``hashmap_native``, ``span``, ``native``, ``speed``); several
    → ``{"pairs": {name: document}, "summary": [row], "unavailable": {name: why}}``."""
    if len(docs) == 1 and not unavailable:
        return next(iter(docs.values()))
    return {"pairs": docs, "summary": rows, "unavailable": dict(unavailable or {})}


def run_pair(args: argparse.Namespace, name: str) -> dict | int:
    """Run one capture: the parity check (printed as before), hftbacktest on its own
    conversion, the side-by-side table. Returns ``{"doc", "ok", "row"}`` (the pair's JSON
    document, whether the whole-order parity holds, its :func:`summary_row`) or an exit code."""
    ds, events = load_events(args, args.data_root)
    market = ds.meta.get("market")
    if market == "spot" and not args.spot:
        print("error: the capture is spot: pass --spot", file=sys.stderr)
        return 2
    if args.spot and market not in (None, "spot"):
        print(f"error: --spot given but the capture is {market}", file=sys.stderr)
        return 2
    n_fund = int(np.isin(events["kind"], (K_MARK, K_FUNDING)).sum())
    if args.spot and n_fund:
        print(f"error: --spot but the capture has {n_fund} mark/funding events", file=sys.stderr)
        return 2
    offset = int(ds.meta.get("suggested_feed_offset_ns", 0))
    t_first = int(events["exch_ts"].min())
    t0 = peer_clock_start(events)
    mm_t0 = t0 if args.clock_start == "peer" else None

    symbol = str(ds.meta.get("symbol") or "BTCUSDT")
    mm_p, _ = run_mmsim(events, experiment_config(args, True, symbol), ds.ref_price_tick,
                        offset, mm_t0, args.repeats)
    mm_w, fills_w = run_mmsim(events, experiment_config(args, False, symbol),
                              ds.ref_price_tick, offset, mm_t0, args.repeats)

    with tempfile.TemporaryDirectory(prefix="mmsim-peer-") as tmp:
        fills_path = Path(tmp) / "peer_fills.npz"
        hb_all = run_peer(ds.path, args, offset, fills_path)
        with np.load(fills_path) as z:
            hb_fills = z["no_partial"]
    if int(hb_all["first_event_ts"]) != t0:
        print(f"error: hftbacktest's clock starts at {hb_all['first_event_ts']}, the harness "
              f"aligned mmsim's at {t0}: the keep rules of peer_keep_mask and the worker "
              "differ", file=sys.stderr)
        return 2
    hb = peer_result(hb_all["no_partial"])
    hb_p = peer_result(hb_all["partial"])
    hb["events_per_s"] = hb_all["events"] / hb["warm_wall_s"]
    checks = compare(mm_w, hb, args.lot_size, float(hb_all["no_partial"]["traded_value"]))

    span_min = (int(events["exch_ts"].max()) - t_first) / 60e9
    kind = "inverse" if args.inverse is not None else "linear"
    title = (f"parity: mmsim vs hftbacktest {hb_all['hftbacktest_version']}, Binance {market} "
             f"{symbol} {' + '.join(Path(f).name for f in args.files)} ({span_min:.1f} min, "
             f"{len(events):,} events; {kind}, tick {args.tick_size:g}, lot {args.lot_size:g}, "
             f"order {args.order_qty:g})")
    print_table(title, mm_p, mm_w, hb, hb_p, checks)
    shift = f"{((t0 - t_first) % DECISION_NS) / 1e6:.1f} ms"
    if mm_t0 is None:
        print(f"  decision clock NOT aligned (--clock-start first-event): mmsim starts at its "
              f"first event {t_first}, hftbacktest {(t0 - t_first) / 1e6:.1f} ms later "
              f"(grids {shift} out of phase)", end="")
    else:
        print(f"  decision clock: both start at the peer's first event {t0} "
              f"({(t0 - t_first) / 1e6:.1f} ms after mmsim's first event; phase shift without "
              f"alignment {shift})", end="")
    print(f"; feed offset {offset / 1e6:.3f} ms")
    if mm_w["funding"] or mm_p["funding"]:
        print(f"  mmsim funding received (not in PnL above; hftbacktest does not model it): "
              f"partial {mm_p['funding']:+.6f}, whole-order {mm_w['funding']:+.6f}")
    if mm_w["fill_events"] != mm_w["filled_orders"]:
        print("  NOTE: mmsim's whole-order run booked more fill events than filled orders: "
              "the engine does not honour matching.partial_fills: false yet")
    all_ok = all(c["match"] for c in checks.values())
    diff = None if all_ok else first_fill_difference(fills_w, hb_fills)
    if all_ok:
        print("whole-order fills: MATCH on every field")
    else:
        bad = [k for k, c in checks.items() if not c["match"]]
        print(f"whole-order fills: MISMATCH ({', '.join(bad)})")
        if diff is not None:
            print(f"  first differing fill #{diff['index']} (exch_ts, side, price_tick, lots): "
                  f"mmsim {diff['mmsim']}, hftbacktest {diff['hftbacktest']}")
    info = {"files": list(args.files), "market": market, "symbol": symbol,
            "tick_size": args.tick_size, "lot_size": args.lot_size,
            "order_qty": args.order_qty, "inverse_contract_size": args.inverse,
            "events": int(len(events)), "clock_start_ns": t0,
            "clock_aligned": mm_t0 is not None,
            "first_event_ns": t_first, "feed_offset_ns": offset,
            "hftbacktest_version": hb_all["hftbacktest_version"],
            "first_fill_difference": diff,
            "events_per_s": {"mmsim_whole_order": mm_w["events_per_s"],
                             "hftbacktest_no_partial": hb["events_per_s"]}}
    doc = build_report(mm_p, mm_w, hb, hb_p, checks, info)

    # hftbacktest as its users run it: its converter on the raw files, ROIVector + HashMap
    span = span_info(events)
    data_root = data_root_from_arg(args.data_root)
    nat = run_peer_native([data_root / f for f in args.files], args, span)
    for _ in range(args.rounds - 1):  # more windows, alternating; the timings only
        again, _ = run_mmsim(events, experiment_config(args, False, symbol), ds.ref_price_tick,
                             offset, mm_t0, args.repeats)
        mm_w["warm_wall_s"] = min(mm_w["warm_wall_s"], again["warm_wall_s"])
        again = peer_result(run_peer(ds.path, args, offset)["no_partial"])
        hb["warm_wall_s"] = min(hb["warm_wall_s"], again["warm_wall_s"])
        again = run_peer_native([data_root / f for f in args.files], args, span)
        for d in ("roi_vector", "hashmap"):
            nat[d]["wall_s_warm"] = min(nat[d]["wall_s_warm"], again[d]["wall_s_warm"])
    mm_w["events_per_s"] = len(events) / mm_w["warm_wall_s"]
    roi = native_result(nat, "roi_vector", mm_w["warm_wall_s"])
    hm = native_result(nat, "hashmap", mm_w["warm_wall_s"])
    print_native(nat, roi, hm, mm_w, hb, span, int(len(events)), int(peer_keep_mask(events).sum()))
    add_native(doc, roi, hm, nat, span, mm_w, hb, int(peer_keep_mask(events).sum()))
    row = summary_row(name, span, int(len(events)), mm_w, hb, roi, hm, all_ok)
    return {"doc": doc, "ok": all_ok, "row": row}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.custom:
        todo, unavailable = [("custom", args)], {}
    else:
        todo, unavailable = resolve_pairs(args, data_root_from_arg(args.data_root))
    for n, why in unavailable.items():
        print(f"pair {n}: not run ({why})")
    if not todo:
        print("error: no pair to run", file=sys.stderr)
        return 2
    docs: dict[str, dict] = {}
    rows = []
    ok = True
    for n, pargs in todo:
        if len(todo) > 1:
            print(f"\n=== pair {n}: {' + '.join(pargs.files)} ===")
        r = run_pair(pargs, n)
        if isinstance(r, int):
            return r
        docs[n] = r["doc"]
        rows.append(r["row"])
        ok &= r["ok"]
    print()
    print(format_summary(rows, unavailable))
    if args.json:
        doc = json_document(docs, rows, unavailable)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {os.fspath(args.json)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
