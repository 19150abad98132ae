"""Model-market benchmark: path-steps per second of the Avellaneda–Stoikov §3.3 set-up.

Runs the inventory strategy (γ = 0.1) on the paper's market (200 steps per path) through
:func:`mmsim.modelmarket.run.run_paths`, warm (the first call loads or compiles the kernels and
is reported separately), best of ``--repeats``: 1000 paths (the paper's 200 k path-steps) and
5000 paths (1 M path-steps). Target (issue #4): 1 M path-steps in well under a second, i.e.
above 1 M path-steps per second; the ratio to that rate is printed.

Usage: ``python benchmarks/bench_modelmarket.py [--repeats N] [--threads N]``.
"""

from __future__ import annotations

import argparse
import time

TARGET_PATH_STEPS_PER_S = 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    import numba

    from mmsim.modelmarket.config import MarketConfig
    from mmsim.modelmarket.run import run_paths

    if args.threads:
        numba.set_num_threads(args.threads)
    market = MarketConfig()  # s0 100, T 1, dt 0.005, σ 2, A 140, k 1.5
    params = {"gamma": 0.1, "k": 1.5, "sigma_px": 2.0}
    run_paths("avellaneda_stoikov", params, market, 10, seed=0)
    first = time.perf_counter() - t
    print(f"import + first call (load or compile the kernels): {first:.3f} s; "
          f"numba threads: {numba.get_num_threads()}")
    for n_paths in (1000, 5000):
        best = float("inf")
        for r in range(args.repeats):
            res = run_paths("avellaneda_stoikov", params, market, n_paths, seed=r)
            best = min(best, res.elapsed_s)
        steps = n_paths * market.n_steps
        rate = steps / best
        print(f"{n_paths:>6} paths x {market.n_steps} steps = {steps:>9,} path-steps: "
              f"{best * 1e3:8.2f} ms  {n_paths / best:12,.0f} paths/s  {rate:14,.0f} "
              f"path-steps/s  ({rate / TARGET_PATH_STEPS_PER_S:.1f}x the 1 M/s target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
