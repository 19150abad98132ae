"""Sweep benchmark: a 64-run grid on the LOBSTER AMZN day with 1 and with 2 local workers.

Prints the wall time of each sweep, the speedup (target >= 1.8 on a 2-core machine) and the
per-run overhead: in the worker, a run's wall time minus the engine's replay time (config
validation, dataset summary, metrics, Parquet writes, reading the run back), and over the
whole sweep, ``(wall × workers − Σ replay) / runs`` (adds process start-up, numba cache loading
and dispatch). The dataset is ingested and the numba cache warmed before the timings.

Usage: ``python benchmarks/bench_sweep.py [--data-root DIR] [--workers 1,2] [--grid-size 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXP = REPO / "experiments" / "lobster_amzn_as.yaml"
TARGET_SPEEDUP = 1.8


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=None, help="default: $MMSIM_DATA_ROOT, "
                    "else ../shared/data")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--grid-size", type=int, default=8, help="n: an n × n grid (default 8)")
    ap.add_argument("--start-method", default="spawn", choices=["spawn", "forkserver"])
    ap.add_argument("--keep", default=None, help="keep the sweep folders under this folder")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    from mmsim.config import load_config
    from mmsim.data.sources import open_dataset
    from mmsim.runner import backtest
    from mmsim.sweep import run_sweep

    root = Path(args.data_root or os.environ.get("MMSIM_DATA_ROOT")
                or REPO.parent / "shared" / "data")
    if not (root / "lobster").is_dir():
        print(f"bench_sweep: no LOBSTER data under {root}; set --data-root", file=sys.stderr)
        return 2
    n = args.grid_size
    grid = [f"policy.gamma=geomspace(0.001,0.1,{n})", f"policy.k=linspace(10,80,{n})"]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmsim-bench-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        cfg = load_config(EXP)
        open_dataset(cfg.data, root, seed=cfg.seed)  # ingest once (cached)
        backtest(EXP, data_root=root, out=work / "warm")  # compile / load the numba cache
        print(f"prepare (ingest + warm numba cache + one run): {time.perf_counter() - t:.2f} s")
        print(f"grid: {' × '.join(grid)} = {n * n} runs on {EXP.name}; "
              f"{os.cpu_count()} cores")
        results = {}
        for w in [int(x) for x in args.workers.split(",")]:
            out = work / f"sweep-{w}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            res = run_sweep(EXP, grid=grid, data_root=root, out=out, jobs=w,
                            start_method=args.start_method, progress=False)
            wall = time.perf_counter() - t
            tm, c = res.meta["timing"], res.counts
            ok = res.table[res.table["status"] == "ok"]
            results[w] = {
                "wall_s": round(wall, 3),
                "ok": c["ok"],
                "failed": c["failed"],
                "mean_replay_s": round(float(ok["replay_s"].mean()), 4),
                "mean_run_wall_s": round(float(ok["wall_s"].mean()), 4),
                "overhead_per_run_s": tm.get("overhead_per_run_s"),
                "overhead_per_run_median_s": tm.get("overhead_per_run_median_s"),
                "sweep_overhead_per_run_s": tm.get("sweep_overhead_per_run_s"),
                "prepare_s": tm.get("prepare_s"),
            }
            r = results[w]
            print(f"{w} worker(s): wall {wall:6.2f} s  ({c['ok']} ok, {c['failed']} failed)  "
                  f"run: replay {r['mean_replay_s']:.3f} s, wall {r['mean_run_wall_s']:.3f} s  "
                  f"overhead/run: {r['overhead_per_run_s']:.3f} s in the worker "
                  f"(median {r['overhead_per_run_median_s']:.3f}), "
                  f"{r['sweep_overhead_per_run_s']:.3f} s over the sweep")
        ws = sorted(results)
        if len(ws) >= 2:
            s = results[ws[0]]["wall_s"] / results[ws[-1]]["wall_s"]
            print(f"speedup {ws[0]} → {ws[-1]} workers: {s:.2f} "
                  f"(target {TARGET_SPEEDUP}; ratio {s / TARGET_SPEEDUP:.2f})")
            results["speedup"] = round(s, 3)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
