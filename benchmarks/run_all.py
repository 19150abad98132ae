"""mmsim benchmarks (``make bench``): prints figures and ratios to targets.

* Events per second, replay only (a policy that never quotes) and with Avellaneda–Stoikov
  deciding every 100 ms: on the real LOBSTER AMZN day (kernel, events in memory) and on
  >= 20 M synthetic L3 events (kernel fed chunk by chunk as they are generated); L2: GLFT
  with online calibration at 100 ms on the real Binance USD-M pair, replayed as time-shifted
  copies to >= 20 M events.
* The full pipeline on 20 M synthetic events (Parquet chunks → engine → Parquet logs), in a
  child process, with its peak resident memory.
* Compile time of the first call (empty numba cache) and start-up of a second process with a
  warm cache (import to first event processed).

Usage: ``python benchmarks/run_all.py [--events N] [--skip-compile]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TARGET_EPS = 10e6


def _engine(policy: str, params: dict, dec_ns: int = 100_000_000, feed_ns: int = 50_000,
            ref_price: int = 10_000, inst=None):
    from mmsim.config import config_from_dict
    from mmsim.engine.backtest import Engine
    from mmsim.instruments import Instrument
    from mmsim.resolve import resolve_for_events

    cfg = config_from_dict({
        "data": {"kind": "synthetic"},
        "policy": {"name": policy, **params},
        "latency": {"feed_nanos": feed_ns, "entry_nanos": 100_000, "response_nanos": 100_000},
        "engine": {"decision_interval_nanos": dec_ns, "horizon": "none"},
    })
    return Engine(resolve_for_events(cfg, instrument=inst or Instrument(),
                                     ref_price_tick=ref_price))


POLICIES = {
    "replay only": ("static", {}),
    "avellaneda_stoikov @100ms": ("avellaneda_stoikov",
                                  {"gamma": 0.01, "k": 30.0, "order_qty": 100, "tau_s": 300}),
}


def bench_amzn(data_root: Path, repeats: int = 5) -> list[tuple[str, float, int, float]]:
    """The LOBSTER AMZN day: (line, events/s, fills, decisions/s). The day is sparse (76 k
    events over 6.5 h against 234 k decisions at 100 ms): its cost is decisions, not
    events."""
    from mmsim.data.lobster import read_lobster
    from mmsim.instruments import Instrument

    d = data_root / "lobster"
    ev = read_lobster(d / "AMZN_2012-06-21_34200000_57600000_message_1.csv",
                      d / "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv").events
    ref = int(ev["price_tick"][ev["price_tick"] > 0][0])
    out = []
    for label, (pol, params) in POLICIES.items():
        best = float("inf")
        fills = 0
        decisions = 0
        for _ in range(repeats):
            eng = _engine(pol, params, ref_price=ref, inst=Instrument(tick_size=0.01))
            t = time.perf_counter()
            eng.feed(ev, lambda *a: None, final=True)
            best = min(best, time.perf_counter() - t)
            fills = eng.stats()["fills"]
            decisions = eng.stats()["decisions"]
        out.append((label, len(ev) / best, fills, decisions / best))
    return out


def bench_synthetic_kernel(n_events: int, chunk: int = 1_000_000) -> list[tuple[str, float, int]]:
    from mmsim.data.synthetic import SyntheticL3

    out = []
    for label, (pol, params) in POLICIES.items():
        gen = SyntheticL3(seed=11)
        # synthetic prices are ~$100 with a 1-tick book: k = 300/$ puts A-S quotes at the touch
        p = {**params, "order_qty": 5, "k": 300.0} if "order_qty" in params else params
        eng = _engine(pol, p)
        spent = 0.0
        done = 0
        while done < n_events:
            k = min(chunk, n_events - done)
            ev = gen.next_chunk(k)
            t = time.perf_counter()
            eng.feed(ev, lambda *a: None, final=done + k >= n_events)
            spent += time.perf_counter() - t
            done += k
        out.append((label, n_events / spent, eng.stats()["fills"]))
    return out


_BINANCE = {"kind": "binance", "path": "binance/usdm/btcusdt_20240718.gz",
            "files": ["binance/usdm/btcusdt_20240719.gz"]}


def _binance_events(data_root: Path):
    """The canonical events of the Binance USD-M pair and its dataset."""
    from mmsim.config import config_from_dict
    from mmsim.data.sources import open_dataset

    cfg0 = config_from_dict({"data": _BINANCE, "policy": {"name": "static"}})
    ds = open_dataset(cfg0.data, data_root, grid_hints={"tick_size": 0.1, "lot_size": 0.001})
    return np.concatenate(list(ds.chunks(10_000_000))), ds


def _floor_pass_nb():
    import numba

    from mmsim.enums import EventKind

    level_set = EventKind.LEVEL_SET

    @numba.njit(cache=False, nogil=True)
    def floor(ev, levels, base):
        """The floor: apply every L2 level update to a [2, n_ticks] price array, nothing
        else (no book structure, no feed, no orders, no clocks)."""
        n = 0
        for i in range(ev.shape[0]):
            if ev[i].kind == level_set:
                levels[0 if ev[i].side > 0 else 1, ev[i].price_tick - base] = ev[i].qty
                n += 1
        return n

    return floor


def bench_floor(data_root: Path, n_target: int) -> tuple[float, int]:
    """The bare L2 update pass (:func:`_floor_pass_nb`) over the same events as
    :func:`bench_binance_l2` (the pair repeated to ``n_target`` events): (events/s over
    every event, level updates applied per pass)."""
    from mmsim.enums import EventKind

    base, _ = _binance_events(data_root)
    reps = -(-n_target // len(base))
    ev = np.concatenate([base] * reps)
    px = ev["price_tick"][ev["kind"] == EventKind.LEVEL_SET]
    lo, hi = int(px.min()), int(px.max())
    levels = np.zeros((2, hi - lo + 1), dtype=np.float64)
    floor = _floor_pass_nb()
    floor(ev[:10], levels, lo)  # compile
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        n = floor(ev, levels, lo)
        best = min(best, time.perf_counter() - t)
    return len(ev) / best, n


def bench_binance_l2(data_root: Path, n_target: int) -> list[tuple[str, float, int]]:
    """GLFT (online calibration) at 100 ms on the real Binance USD-M pair, replayed as
    time-shifted copies until ``n_target`` events (each copy starts with its snapshot)."""
    from mmsim.config import config_from_dict
    from mmsim.engine.backtest import Engine
    from mmsim.resolve import resolve

    d = _BINANCE
    base, ds = _binance_events(data_root)
    span = int(base["exch_ts"][-1] - base["exch_ts"][0]) + 1_000_000_000
    reps = -(-n_target // len(base))
    inst = {"tick_size": 0.1, "lot_size": 0.001, "maker_fee_bps": -0.5, "taker_fee_bps": 7.0}
    runs = {
        "replay only": ("static", {}),
        "glft_calibrated @100ms": ("glft_calibrated", {"gamma": 0.05, "order_qty": 10,
                                                       "window_s": 120, "refit_every": 20,
                                                       "sigma_init": 5.0}),
    }
    out = []
    for label, (pol_name, params) in runs.items():
        cfg = config_from_dict({
            "data": d, "instrument": inst, "policy": {"name": pol_name, **params},
            "latency": {"feed_nanos": None, "feed_offset_nanos": "auto",
                        "entry_nanos": 1_000_000, "response_nanos": 1_000_000},
            "queue": {"model": "power"}, "engine": {"horizon": "none"},
            "risk": {"max_position_qty": 0.1},
        })
        eng = Engine(resolve(cfg, ds, data_root))  # the reader's feed offset, the data's grid
        spent = 0.0
        for r in range(reps):
            ev = base.copy()
            ev["exch_ts"] += r * span
            ev["local_ts"] += r * span
            t = time.perf_counter()
            eng.feed(ev, lambda *a: None, final=r == reps - 1)
            spent += time.perf_counter() - t
        out.append((label, reps * len(base) / spent, eng.stats()["fills"]))
    return out


_CHILD_PIPELINE = r"""
import json, resource, sys, time
import mmsim
t = time.perf_counter()
run = mmsim.backtest(sys.argv[1], out=sys.argv[2], cache_dir=sys.argv[3],
                     overrides=["data.synthetic.n_events=%s" % sys.argv[4]])
timing = json.loads((run.run_dir / "timing.json").read_text())
print(json.dumps({"wall_s": time.perf_counter() - t, "timing": timing,
                  "fills": int(run.metrics["n_fills"]),
                  "peak_rss_mb": peak_rss_mb()}))
"""

# The child's own peak resident set. Linux's ru_maxrss also counts the resident set of the
# process the child was spawned from (exec records the vfork-shared parent's high-water mark),
# so from this benchmark's parent, holding >= 20 M events, it reported the parent's ~1.6 GB.
# /proc/self/status VmHWM is the high-water mark of the child's own address space.
_PEAK_RSS = r"""
def peak_rss_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_CHILD_START = r"""
import time
t0 = time.perf_counter()
import numpy as np
from mmsim.dtypes import EVENT_DTYPE
import benchmarks.run_all as b
eng = b._engine("avellaneda_stoikov", {"gamma": 0.01, "k": 30.0})
ev = np.zeros(1, dtype=EVENT_DTYPE)
ev[0] = (1, 1, 10000, 1, 1, 0.0, 1, 1, 1)
eng.feed(ev, lambda *a: None, final=True)
print(time.perf_counter() - t0)
"""


def _child(code: str, args: list[str], env: dict | None = None) -> str:
    e = dict(os.environ)
    e.update(env or {})
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       env=e, cwd=REPO, check=True)
    return r.stdout.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--skip-compile", action="store_true")
    args = ap.parse_args()
    from mmsim.data.sources import data_root_from

    root = data_root_from(None)
    print(f"mmsim benchmarks  (machine: {os.cpu_count()} cores; target {TARGET_EPS / 1e6:.0f} M "
          "events/s with the policy)")
    print()
    print("kernel throughput (events in memory, outputs discarded)")
    rows = []
    if (root / "lobster").is_dir():
        rows += [("AMZN 2012-06-21 (76 k events)", *r) for r in bench_amzn(root)]
    else:
        print(f"  (no LOBSTER data under {root}: AMZN rows skipped)")
    rows += [(f"synthetic L3 ({args.events / 1e6:.0f} M events)", *r)
             for r in bench_synthetic_kernel(args.events)]
    if (root / "binance").is_dir():
        rows += [(f"Binance L2 pair x{-(-args.events // 517_892)} (>= {args.events / 1e6:.0f} M)",
                  *r) for r in bench_binance_l2(root, args.events)]
    for data, label, eps, fills, *dec in rows:
        extra = f"  {dec[0] / 1e6:5.2f} M decisions/s" if dec else ""
        print(f"  {data:<38} {label:<27} {eps / 1e6:6.2f} M ev/s  "
              f"ratio to target {eps / TARGET_EPS:5.2f}  fills {fills}{extra}")
    if (root / "binance").is_dir():
        feps, nset = bench_floor(root, args.events)
        replay = [r[2] for r in rows if r[0].startswith("Binance") and r[1] == "replay only"]
        print(f"  {'floor: bare L2 update pass, same events':<66} {feps / 1e6:6.2f} M ev/s  "
              f"({nset / 1e6:.1f} M level updates; mmsim replay only / floor "
              f"{replay[0] / feps:.3f})")
    print()
    with tempfile.TemporaryDirectory() as tmp:
        res = json.loads(_child(_PEAK_RSS + _CHILD_PIPELINE,
                                [str(REPO / "experiments/default.yaml"), f"{tmp}/run",
                                 f"{tmp}/cache", str(args.events)]))
        tm = res["timing"]
        print(f"full pipeline, {args.events / 1e6:.0f} M synthetic events (default experiment: "
              "generate → Parquet → engine → Parquet logs → metrics)")
        print(f"  generate+cache {tm['prepare_s']:.2f} s, replay {tm['replay_s']:.2f} s "
              f"({tm['events_per_s'] / 1e6:.2f} M ev/s incl. Parquet I/O), "
              f"total {res['wall_s']:.2f} s, fills {res['fills']}")
        print(f"  peak memory {res['peak_rss_mb']:.0f} MB (target < 400 MB; "
              f"ratio {res['peak_rss_mb'] / 400:.2f})")
        print()
        if not args.skip_compile:
            cold = float(_child(_CHILD_START, [], {"NUMBA_CACHE_DIR": f"{tmp}/numba"}))
            warm = float(_child(_CHILD_START, [], {"NUMBA_CACHE_DIR": f"{tmp}/numba"}))
            print("start-up (import → first event processed, fresh process)")
            print(f"  empty numba cache (compile): {cold:.1f} s  (target < 15 s; ratio "
                  f"{cold / 15:.2f})")
            print(f"  warm numba cache:            {warm:.2f} s  (target < 1 s; ratio "
                  f"{warm / 1:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
