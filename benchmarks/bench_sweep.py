"""Sweep benchmark: a 64-run grid on the LOBSTER AMZN day with 1 and with 2 local workers.

Prints the wall time of each sweep, the speedup (target >= 1.8 on a 2-core machine) and the
per-run overhead: in the worker, a run's wall time minus the engine's replay time (config
validation, dataset summary, metrics, Parquet writes, reading the run back), and over the
whole sweep, ``(wall × workers − Σ replay) / runs`` (adds process start-up, numba cache loading
and dispatch). The dataset is ingested and the numba cache warmed before the timings.

It also measures the machine's own ceiling for that speedup: the same runs done by one
process alone, then by two processes at once (each its full share, started together, no
dispatch between them). Two cores that slow each other down (shared caches, a host that
runs the two virtual CPUs on one physical core) cap any sweep below 2; the sweep's speedup
is reported against that ceiling too (``--ceiling-runs 0`` skips it).

Usage: ``python benchmarks/bench_sweep.py [--data-root DIR] [--workers 1,2] [--grid-size 8]
[--ceiling-runs 12] [--rounds 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXP = REPO / "experiments" / "lobster_amzn_as.yaml"
TARGET_SPEEDUP = 1.8

# a child of the ceiling measurement: warm up, say ready, wait for "go", time its runs
_CEILING_CHILD = r"""
import sys, time
from pathlib import Path
from mmsim.runner import backtest
exp, root, out, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
backtest(exp, data_root=root, out=out / "warm", overwrite=True)
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter()
for i in range(n):
    backtest(exp, data_root=root, out=out / f"r{i}", overwrite=True)
print(time.perf_counter() - t, flush=True)
"""


def ceiling(exp: Path, root: Path, work: Path, runs: int, procs: int) -> float:
    """Seconds per run when ``procs`` processes each do ``runs`` backtests of ``exp`` at once
    (the mean over the processes; each process times its own loop, all started together)."""
    kids = []
    for k in range(procs):
        out = work / f"ceiling-{procs}-{k}"
        out.mkdir(parents=True, exist_ok=True)
        kids.append(subprocess.Popen(
            [sys.executable, "-c", _CEILING_CHILD, str(exp), str(root), str(out), str(runs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO))
    try:
        for c in kids:
            if c.stdout.readline().strip() != "ready":
                raise RuntimeError("bench_sweep: a ceiling child failed to warm up")
        for c in kids:
            c.stdin.write("go\n")
            c.stdin.flush()
        secs = [float(c.stdout.readline()) for c in kids]
    except BaseException:
        for c in kids:
            c.kill()
        raise
    finally:
        for c in kids:
            c.wait()
    return sum(secs) / len(secs) / runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=None, help="default: $MMSIM_DATA_ROOT, "
                    "else ../shared/data")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--grid-size", type=int, default=8, help="n: an n × n grid (default 8)")
    ap.add_argument("--start-method", default=None, choices=["spawn", "forkserver"],
                    help="the local pool's start method (default: mmsim's, "
                         "mmsim.sweep.default_start_method())")
    ap.add_argument("--keep", default=None, help="keep the sweep folders under this folder")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--ceiling-runs", type=int, default=12, help="runs per process for the "
                    "machine's ceiling (0: skip it)")
    ap.add_argument("--rounds", type=int, default=1, help="sweep with each worker count this "
                    "many times, interleaved (1, 2, 1, 2, ...): the speedup of each round and "
                    "their median (a noisy host moves a single pair by ±15 %%)")
    args = ap.parse_args(argv)

    from mmsim.config import load_config
    from mmsim.data.sources import open_dataset
    from mmsim.runner import backtest
    from mmsim.sweep import default_start_method, run_sweep

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
        method = args.start_method or default_start_method()
        print(f"grid: {' × '.join(grid)} = {n * n} runs on {EXP.name}; "
              f"{os.cpu_count()} cores; start method {method}")
        results = {}
        counts = [int(x) for x in args.workers.split(",")]
        walls: dict[int, list[float]] = {w: [] for w in counts}
        for w in [w for _ in range(max(1, args.rounds)) for w in counts]:
            out = work / f"sweep-{w}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            res = run_sweep(EXP, grid=grid, data_root=root, out=out, jobs=w,
                            start_method=method, progress=False)
            wall = time.perf_counter() - t
            walls[w].append(wall)
            tm, c = res.meta["timing"], res.counts
            ok = res.table[res.table["status"] == "ok"]
            results[w] = {  # the last round's figures, with every round's wall time
                "wall_s": round(wall, 3),
                "wall_s_rounds": [round(x, 3) for x in walls[w]],
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
            per_round = [a / b for a, b in zip(walls[ws[0]], walls[ws[-1]], strict=True)]
            s = statistics.median(per_round)
            rounds = (f"; rounds: {', '.join(f'{x:.2f}' for x in per_round)}, median"
                      if len(per_round) > 1 else "")
            print(f"speedup {ws[0]} → {ws[-1]} workers{rounds}: {s:.2f} "
                  f"(target {TARGET_SPEEDUP}; ratio {s / TARGET_SPEEDUP:.2f})")
            results["speedup"] = round(s, 3)
            results["speedup_rounds"] = [round(x, 3) for x in per_round]
            if args.ceiling_runs > 0:
                one = ceiling(EXP, root, work, args.ceiling_runs, 1)
                two = ceiling(EXP, root, work, args.ceiling_runs, ws[-1])
                cap = ws[-1] * one / two
                print(f"machine ceiling: a run takes {one:.3f} s alone, {two:.3f} s with "
                      f"{ws[-1]} processes at once: at most {cap:.2f}× on {ws[-1]} workers; "
                      f"the sweep reaches {s / cap:.0%} of it")
                results["ceiling"] = {"run_alone_s": round(one, 4),
                                      "run_concurrent_s": round(two, 4),
                                      "max_speedup": round(cap, 3),
                                      "share_of_ceiling": round(s / cap, 3)}
        results["start_method"] = method
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
