"""Instructions per event of the engine, counted by callgrind: a figure that does not move
with the load of a shared machine (wall-time benchmarks do, by 20 % between runs here).

For each line the script runs a child process twice under ``valgrind --tool=callgrind``: once
on a handful of events and once on ``--copies`` time-shifted copies of the line's data, and
reports the difference in instructions executed by numba's compiled code (callgrind's unnamed
JIT functions; Python, numpy and the readers are left out) divided by the extra events.
Numba's disk cache is keyed on the CPU, and valgrind's CPU is not the host's, so every child
runs with ``NUMBA_CPU_NAME=generic`` and its own cache folder, filled by a first run outside
valgrind. Generic code has no AVX: compare counts with counts, not with wall times.

Lines:

* ``binance``: the Binance USD-M 2024-07-18/19 pair, replay only (a policy that never quotes),
  decisions at 100 ms;
* ``parity``: the same pair with ``make bench-peer``'s policy (offset quotes every 100 ms,
  power queue n = 2, 1 ms latencies, whole-order fills);
* ``spot``: ``parity`` on the Binance spot 2024-08-08/09 pair (0.01 tick);
* ``synthetic``: 500,000 synthetic L3 events per copy, replay only (the generator's own
  compiled code is counted too: read this line as differences between commits).

Usage: ``python benchmarks/callgrind_events.py [--lines binance parity spot synthetic]
[--copies 2]`` (each line takes two to three minutes; needs valgrind and the shared data).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINES = ("binance", "parity", "spot", "synthetic")

# the child: build the line's engine, warm it on 1,000 events, then run `copies` copies
_CHILD = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import numpy as np
import benchmarks.run_all as b
import benchmarks.profile_events as pe
from mmsim.config import config_from_dict
from mmsim.engine.backtest import Engine
from mmsim.resolve import resolve
line, copies, root = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
if line == "synthetic":
    from mmsim.data.synthetic import SyntheticL3
    n = 500_000 * copies
    ev = SyntheticL3(seed=11).next_chunk(1000 + n)
    mk = lambda: b._engine("static", {})
    base = ev[:1000]
    ev = ev[1000:] if copies else ev[:10]
else:
    spot = line == "spot"
    data = ({"kind": "binance", "path": "binance/spot/btcusdt_20240808.gz",
             "files": ["binance/spot/btcusdt_20240809.gz"]} if spot else b._BINANCE)
    tick, lot = (0.01, 0.000001) if spot else (0.1, 0.001)
    from mmsim.data.sources import open_dataset
    cfg0 = config_from_dict({"data": data, "policy": {"name": "static"}})
    ds = open_dataset(cfg0.data, root, grid_hints={"tick_size": tick, "lot_size": lot})
    base = np.concatenate(list(ds.chunks(10_000_000)))
    if line == "binance":
        mk = pe._binance_engine(root, ds, "static", {}, 10**8)
    else:
        spec = resolve(config_from_dict({
            "data": data,
            "instrument": {"tick_size": tick, "lot_size": lot, "maker_fee_bps": -0.5,
                           "taker_fee_bps": 7.0},
            "latency": {"feed_nanos": None, "feed_offset_nanos": "auto",
                        "entry_nanos": 1_000_000, "response_nanos": 1_000_000},
            "queue": {"model": "power", "power_n": 2.0},
            "matching": {"partial_fills": False},
            "engine": {"decision_interval_nanos": 10**8, "equity_interval_nanos": 10**8,
                       "replace": "cancel_replace", "decide_on_fill": False, "horizon": "none"},
            "policy": {"name": "offset_ticks", "offset_ticks": 5, "skew_ticks": 1,
                       "order_qty": round(0.01 / lot)},
        }), ds, root)
        mk = lambda: Engine(spec)
    ev = pe._repeat(base, len(base) * copies) if copies else base[:10]
    base = base[:1000]
mk().feed(base, lambda *a: None, final=True)
eng = mk()
eng.feed(ev, lambda *a: None, final=True)
print("@@", len(ev), eng.stats()["fills"], flush=True)
"""


def _jit_instructions(out_file: Path) -> int:
    """Instructions executed in callgrind's unnamed code objects (numba's JIT functions)."""
    text = subprocess.run(["callgrind_annotate", "--threshold=100", str(out_file)],
                          capture_output=True, text=True, check=True).stdout
    total = 0
    for row in text.splitlines():
        if row.rstrip().endswith("[???]") and "???:" in row:
            total += int(row.split()[0].replace(",", ""))
    return total


def _child(line: str, copies: int, root: Path, env: dict, callgrind: Path | None):
    cmd = [sys.executable, "-c", _CHILD, str(REPO), line, str(copies), str(root)]
    if callgrind is not None:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    mark = [x for x in r.stdout.splitlines() if x.startswith("@@ ")]
    if r.returncode != 0 or not mark:
        raise RuntimeError(f"callgrind_events: the {line} child failed:\n{r.stderr[-2000:]}")
    n, fills = (int(x) for x in mark[-1].split()[1:])
    return n, fills


def measure(line: str, copies: int, root: Path, work: Path) -> tuple[float, int, int]:
    """(instructions per event, events, fills) of ``line`` over ``copies`` copies."""
    env = dict(os.environ, NUMBA_CPU_NAME="generic", MMSIM_DATA_ROOT=str(root),
               MMSIM_NUMBA_CACHE_DIR=str(work / "numba"))
    _child(line, 0, root, env, None)  # fill the generic-CPU cache outside valgrind
    _child(line, 0, root, env, work / f"{line}-0.out")
    n, fills = _child(line, copies, root, env, work / f"{line}-{copies}.out")
    d = _jit_instructions(work / f"{line}-{copies}.out") - _jit_instructions(work / f"{line}-0.out")
    return d / (n - 10), n, fills


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", nargs="+", default=list(LINES), choices=LINES)
    ap.add_argument("--copies", type=int, default=2, help="copies of each line's data")
    ap.add_argument("--data-root", default=None, help="default: $MMSIM_DATA_ROOT, "
                    "else ../shared/data")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("callgrind_events: valgrind is not installed", file=sys.stderr)
        return 2
    root = Path(args.data_root or os.environ.get("MMSIM_DATA_ROOT")
                or REPO.parent / "shared" / "data").resolve()
    work = Path(tempfile.mkdtemp(prefix="mmsim-callgrind-"))
    try:
        print(f"{'line':10} {'events':>10} {'fills':>7} {'instructions/event':>19}")
        for line in args.lines:
            if line != "synthetic" and not (root / "binance").is_dir():
                print(f"{line:10} not run: no Binance data under {root}")
                continue
            per, n, fills = measure(line, args.copies, root, work)
            print(f"{line:10} {n:>10,} {fills:>7,} {per:>19.1f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
