"""Where an event's time goes (issue 13's profile), by difference of timed replays.

numba kernels cannot read a clock inside the event loop, so this script times whole warm
replays (best of ``--repeats``) that differ in one thing and reports the difference per
event or per decision:

* **Binance USD-M pair (L2)**, repeated to ``--events``:
  - the floor: the bare L2 update pass of ``make bench`` (a price array, nothing else);
  - replay only (a policy that never quotes), with every event, and without the trades
    (an L2 trade has no book effect, so the stream stays consistent): the cost of a trade;
    without the ``bbo`` rows as well: the cost of a best-bid/offer row;
  - the decision clock at 1 s, 100 ms and 10 ms (replay only): the cost of one decision
    (context, policy call, order manager) from the slope;
  - GLFT quoting at 100 ms against replay only at 100 ms: what our resting orders add per
    event (queue updates, fill checks, order and fill logging).
* **Synthetic L3** (``--events`` from :class:`mmsim.data.synthetic.SyntheticL3`): replay
  only, the decision slope, and Avellaneda–Stoikov quoting against replay only.

The machine is shared and noisy: read the figures as ratios and rough shares.

Usage: ``python benchmarks/profile_events.py [--events N] [--repeats K]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import benchmarks.run_all as b  # noqa: E402


def _best(make_engine, ev: np.ndarray, repeats: int) -> tuple[float, dict]:
    best, stats = float("inf"), {}
    for _ in range(repeats):
        eng = make_engine()
        t = time.perf_counter()
        eng.feed(ev, lambda *a: None, final=True)
        dt = time.perf_counter() - t
        if dt < best:
            best, stats = dt, eng.stats()
    return best, stats


def _binance_engine(root: Path, ds, policy: str, params: dict, dec_ns: int):
    from mmsim.config import config_from_dict
    from mmsim.engine.backtest import Engine
    from mmsim.resolve import resolve

    cfg = config_from_dict({
        "data": b._BINANCE,
        "instrument": {"tick_size": 0.1, "lot_size": 0.001, "maker_fee_bps": -0.5,
                       "taker_fee_bps": 7.0},
        "policy": {"name": policy, **params},
        "latency": {"feed_nanos": None, "feed_offset_nanos": "auto",
                    "entry_nanos": 1_000_000, "response_nanos": 1_000_000},
        "queue": {"model": "power"},
        "engine": {"horizon": "none", "decision_interval_nanos": dec_ns},
        "risk": {"max_position_qty": 0.1},
    })
    spec = resolve(cfg, ds, root)
    return lambda: Engine(spec)


def _repeat(base: np.ndarray, n_target: int) -> np.ndarray:
    span = int(base["exch_ts"][-1] - base["exch_ts"][0]) + 1_000_000_000
    reps = -(-n_target // len(base))
    out = []
    for r in range(reps):
        e = base.copy()
        e["exch_ts"] += r * span
        e["local_ts"] += r * span
        out.append(e)
    return np.concatenate(out)


def profile_binance(root: Path, n: int, repeats: int) -> None:
    from mmsim.enums import EventKind

    base, ds = b._binance_events(root)
    ev = _repeat(base, n)
    kinds = ev["kind"]
    no_trade = ev[kinds != EventKind.TRADE]
    no_trade_bbo = no_trade[no_trade["kind"] != EventKind.BBO]
    n_trade = int((kinds == EventKind.TRADE).sum())
    n_bbo = int((kinds == EventKind.BBO).sum())
    n_set = int((kinds == EventKind.LEVEL_SET).sum())
    feps, _ = b.bench_floor(root, n)
    t_floor = len(ev) / feps
    mk = {d: _binance_engine(root, ds, "static", {}, d) for d in (10**9, 10**8, 10**7)}
    t_all, st = _best(mk[10**8], ev, repeats)
    t_nt, _ = _best(mk[10**8], no_trade, repeats)
    t_ntb, _ = _best(mk[10**8], no_trade_bbo, repeats)
    dec = {}
    for d in (10**9, 10**7):
        t, s = _best(mk[d], ev, repeats)
        dec[d] = (t, s["decisions"])
    glft = _binance_engine(root, ds, "glft_calibrated",
                           {"gamma": 0.05, "order_qty": 10, "window_s": 120,
                            "refit_every": 20, "sigma_init": 5.0}, 10**8)
    t_q, sq = _best(glft, ev, repeats)
    per_dec = (dec[10**7][0] - dec[10**9][0]) / (dec[10**7][1] - dec[10**9][1])
    ns = 1e9
    print(f"Binance USD-M pair x{-(-n // len(base))}: {len(ev):,} events "
          f"({n_set:,} level updates, {n_bbo:,} bbo rows, {n_trade:,} trades)")
    print(f"  floor (bare L2 update pass)          {t_floor / len(ev) * ns:7.1f} ns/event")
    print(f"  replay only @100 ms                  {t_all / len(ev) * ns:7.1f} ns/event  "
          f"({t_all / t_floor:.1f}x the floor; {st['decisions']:,} decisions)")
    d = (t_all - t_nt) / n_trade * ns
    if d > 0:
        print(f"    a trade                            {d:7.1f} ns")
    else:  # seen on this machine: the stream without trades runs slower
        print(f"    a trade                            below this method's resolution (the "
              f"stream without them took {t_nt / t_all - 1:+.1%})")
    print(f"    a bbo row                          {(t_nt - t_ntb) / n_bbo * ns:7.1f} ns")
    lvl = t_ntb - per_dec * st["decisions"]
    print(f"    a level update (the rest, less the decisions) "
          f"{lvl / n_set * ns:7.1f} ns")
    print(f"  one decision (slope 1 s -> 10 ms)    {per_dec * ns:7.1f} ns  "
          f"({per_dec * st['decisions'] / t_all:.1%} of replay only @100 ms)")
    print(f"  GLFT quoting @100 ms                 {t_q / len(ev) * ns:7.1f} ns/event  "
          f"(+{(t_q - t_all) / len(ev) * ns:.1f} ns/event over replay only: our orders, "
          f"fills, logs, the policy; {sq['fills']:,} fills)")


def profile_synthetic(n: int, repeats: int) -> None:
    from mmsim.data.synthetic import SyntheticL3

    ev = SyntheticL3(seed=11).next_chunk(n)
    as_params = {"gamma": 0.01, "k": 300.0, "order_qty": 5, "tau_s": 300}

    def mk(policy, params, dec_ns):
        return lambda: b._engine(policy, params, dec_ns=dec_ns)

    t_all, st = _best(mk("static", {}, 10**8), ev, repeats)
    dec = {d: _best(mk("static", {}, d), ev, repeats) for d in (10**9, 10**7)}
    per_dec = (dec[10**7][0] - dec[10**9][0]) / (dec[10**7][1]["decisions"]
                                                   - dec[10**9][1]["decisions"])
    t_q, sq = _best(mk("avellaneda_stoikov", as_params, 10**8), ev, repeats)
    ns = 1e9
    print(f"synthetic L3: {len(ev):,} events")
    print(f"  replay only @100 ms                  {t_all / len(ev) * ns:7.1f} ns/event  "
          f"({st['decisions']:,} decisions)")
    print(f"  one decision (slope 1 s -> 10 ms)    {per_dec * ns:7.1f} ns  "
          f"({per_dec * st['decisions'] / t_all:.1%} of replay only @100 ms)")
    print(f"  A-S quoting @100 ms                  {t_q / len(ev) * ns:7.1f} ns/event  "
          f"(+{(t_q - t_all) / len(ev) * ns:.1f} ns/event over replay only; "
          f"{sq['fills']:,} fills)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from mmsim.data.sources import data_root_from

    root = data_root_from(None)
    if (root / "binance").is_dir():
        profile_binance(root, args.events, args.repeats)
    else:
        print(f"(no Binance data under {root}: the L2 profile is skipped)")
    profile_synthetic(args.events, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
