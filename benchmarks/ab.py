"""A/B benchmark (``make bench-ab BASE=<commit>``): an older commit against the working tree,
in one run, interleaved, reported as ratios new/old.

The machine is shared and noisy, so absolute times of two separate runs do not compare; here
both sides run in the same session, alternately (old, new, old, new, ...), and the table gives
per line the median over rounds of each side's events/s (each round's figure the best of
``--best-of`` runs), the ratio new/old of the medians and the min/max of
the per-round ratios (round i of new over round i of old).

Each side runs in its own source tree: the base is checked out with ``git worktree add
--detach`` into a temporary directory (removed at the end, also on error or Ctrl-C); the new
side is the tree holding this file (or a second worktree with ``--new``). A child process per
side and round has ``cwd`` and ``PYTHONPATH`` = its tree, so ``import mmsim`` and ``import
benchmarks.run_all`` resolve to that side's code, and calls that tree's own ``run_all`` bench
functions (the engine API differs between commits). Each side has its own numba cache
(``MMSIM_NUMBA_CACHE_DIR``), kept across rounds and filled by an unmeasured warm-up round.

Usage: ``python benchmarks/ab.py --base COMMIT [--new COMMIT] [--events N] [--rounds R]
[--lines amzn synthetic binance] [--best-of K] [--with-pipeline] [--compile [--compile-rounds K]]
[--json PATH]``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = "@@AB "

#: line name -> the run_all function it calls
LINES = {"amzn": "bench_amzn", "synthetic": "bench_synthetic_kernel", "binance": "bench_binance_l2"}

# The driver runs in the child, cwd = its side's tree; everything it imports is that tree's.
_DRIVER = r"""
import json, sys
from pathlib import Path
MARK = "@@AB "
cfg = json.loads(sys.argv[1])
import mmsim
import benchmarks.run_all as b
tree = Path(cfg["tree"]).resolve()
if tree not in Path(mmsim.__file__).resolve().parents:
    raise SystemExit(f"mmsim imported from {mmsim.__file__}, not from {tree}")
root = Path(cfg["data_root"])
n = cfg["events"]
for line in cfg["lines"]:
    fn = getattr(b, cfg["fns"][line], None)
    if fn is None:
        print(MARK + json.dumps({"skip": line, "why": "no run_all." + cfg["fns"][line]}),
              flush=True)
        continue
    if line == "amzn" and not (root / "lobster").is_dir():
        print(MARK + json.dumps({"skip": line, "why": f"no {root}/lobster"}), flush=True)
        continue
    if line == "binance" and not (root / "binance").is_dir():
        print(MARK + json.dumps({"skip": line, "why": f"no {root}/binance"}), flush=True)
        continue
    best = {}
    for _ in range(1 if line == "amzn" else cfg["best_of"]):  # AMZN: best of amzn_repeats
        if line == "amzn":
            rows = fn(root, repeats=cfg["amzn_repeats"])
        elif line == "synthetic":
            rows = fn(n)
        else:
            rows = fn(root, n)
        for r in rows:
            best[r[0]] = max(best.get(r[0], 0.0), r[1])
    print(MARK + json.dumps({f"{line} / {k}": v for k, v in best.items()}), flush=True)
"""


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def _child_snippet(tree: Path, name: str) -> str | None:
    """The string constant ``name`` of ``tree``'s benchmarks/run_all.py (None if absent)."""
    p = tree / "benchmarks" / "run_all.py"
    if not p.is_file():
        return None
    for node in ast.parse(p.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name):
            return ast.literal_eval(node.value)
    return None


class Side:
    def __init__(self, name: str, tree: Path, desc: str, numba_dir: Path):
        self.name, self.tree, self.desc, self.numba_dir = name, tree, desc, numba_dir

    def env(self, numba_dir: Path | None = None) -> dict:
        e = dict(os.environ)
        d = str(numba_dir or self.numba_dir)
        e["MMSIM_NUMBA_CACHE_DIR"] = d  # read first by mmsim/_jitcache.py (both versions)
        e["NUMBA_CACHE_DIR"] = d
        e["PYTHONPATH"] = str(self.tree) + os.pathsep + e.get("PYTHONPATH", "")
        return e

    def run(self, code: str, args: list[str], numba_dir: Path | None = None) -> list[str]:
        r = subprocess.run([sys.executable, "-c", code, *args], cwd=self.tree,
                           env=self.env(numba_dir), capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout[-2000:] + r.stderr[-4000:])
            raise RuntimeError(f"{self.name} side ({self.tree}) exited {r.returncode}")
        return r.stdout.splitlines()


def _kernel_round(side: Side, cfg: dict, skips: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    lines = side.run(_DRIVER, [json.dumps({**cfg, "tree": str(side.tree)})])
    for ln in lines:
        if ln.startswith(MARK):
            rec = json.loads(ln[len(MARK):])
            if "skip" in rec:
                skips.setdefault(rec["skip"], set()).add(f"{side.name}: {rec['why']}")
            else:
                out.update(rec)
    return out


def _pipeline_round(side: Side, events: int, tmp: Path) -> dict[str, float]:
    code = _child_snippet(side.tree, "_CHILD_PIPELINE")
    if code is None:
        return {}
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        last = side.run(code, [str(side.tree / "experiments/default.yaml"), f"{d}/run",
                               f"{d}/cache", str(events)])[-1]
    res = json.loads(last)
    return {"pipeline / replay incl. Parquet I/O": res["timing"]["events_per_s"],
            "pipeline / end to end": events / res["wall_s"]}


def _table(rows: list[tuple], head: tuple) -> str:
    w = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  " + "  ".join(("{:<%d}" if i == 0 else "{:>%d}") % w[i] for i in range(len(head)))
    return "\n".join([fmt.format(*head), *(fmt.format(*r) for r in rows)])


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="old commit-ish (temporary worktree)")
    ap.add_argument("--new", help="new commit-ish in a temporary worktree "
                                  "(default: the working tree holding this file)")
    ap.add_argument("--events", type=int, default=2_000_000,
                    help="events for the synthetic and Binance lines (and the pipeline)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds per side")
    ap.add_argument("--lines", nargs="+", choices=list(LINES), default=list(LINES))
    ap.add_argument("--amzn-repeats", type=int, default=5,
                    help="AMZN replays per policy per round (best of)")
    ap.add_argument("--best-of", type=int, default=3,
                    help="synthetic and Binance runs per line per round (the fastest counts: "
                         "on a shared machine interference only slows a run down)")
    ap.add_argument("--with-pipeline", action="store_true",
                    help="also the full pipeline (run_all's _CHILD_PIPELINE) per round")
    ap.add_argument("--compile", action="store_true",
                    help="also the cold first call (empty numba cache) per side")
    ap.add_argument("--compile-rounds", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()

    data_root = Path(os.environ.get("MMSIM_DATA_ROOT") or (
        REPO.parent / "shared" / "data" if (REPO.parent / "shared" / "data").is_dir()
        else REPO / "data")).resolve()
    # turn SIGTERM into an exception so the worktrees are removed
    signal.signal(signal.SIGTERM, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="mmsim-ab-"))
    worktrees: list[Path] = []

    def worktree(rev: str, name: str) -> tuple[Path, str]:
        sha = _git("rev-parse", "--verify", rev + "^{commit}")
        path = tmp / name
        _git("worktree", "add", "--detach", str(path), sha)
        worktrees.append(path)
        return path, f"{rev} = {sha[:10]} ({_git('log', '-1', '--format=%s', sha)[:60]})"

    try:
        old_tree, old_desc = worktree(args.base, "old")
        if args.new:
            new_tree, new_desc = worktree(args.new, "new")
        else:
            new_tree = REPO
            dirty = _git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
            new_desc = (f"working tree {REPO} (HEAD {_git('rev-parse', '--short', 'HEAD')}"
                        f"{' + uncommitted edits' if dirty else ''})")
        old = Side("old", old_tree, old_desc, tmp / "numba-old")
        new = Side("new", new_tree, new_desc, tmp / "numba-new")
        print(f"A/B benchmark  (machine: {os.cpu_count()} cores; {args.rounds} rounds each, "
              f"interleaved old/new; events {args.events:,}; data {data_root})")
        print(f"  old: {old.desc}\n  new: {new.desc}", flush=True)

        cfg = {"lines": args.lines, "fns": LINES, "events": args.events,
               "data_root": str(data_root), "amzn_repeats": args.amzn_repeats,
               "best_of": args.best_of}
        skips: dict[str, set] = {}
        # warm-up (compile, not measured): small inputs, each side fills its own cache
        warm = {**cfg, "events": min(args.events, 200_000), "amzn_repeats": 1, "best_of": 1}
        for s in (old, new):
            t = time.perf_counter()
            _kernel_round(s, warm, skips)
            if args.with_pipeline:
                _pipeline_round(s, min(args.events, 200_000), tmp)
            print(f"  warm-up {s.name}: {time.perf_counter() - t:.0f} s", flush=True)

        res: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
        for r in range(args.rounds):
            for s in (old, new):
                t = time.perf_counter()
                got = _kernel_round(s, cfg, skips)
                if args.with_pipeline:
                    got.update(_pipeline_round(s, args.events, tmp))
                for k, v in got.items():
                    res[s.name].setdefault(k, []).append(v)
                print(f"  round {r + 1}/{args.rounds} {s.name}: "
                      f"{time.perf_counter() - t:.0f} s", flush=True)

        comp: dict[str, list[float]] = {"old": [], "new": []}
        if args.compile:
            for r in range(args.compile_rounds):
                for s in (old, new):
                    code = _child_snippet(s.tree, "_CHILD_START")
                    if code is None:
                        skips.setdefault("compile", set()).add(f"{s.name}: no _CHILD_START")
                        continue
                    with tempfile.TemporaryDirectory(dir=tmp) as d:  # empty cache
                        comp[s.name].append(float(s.run(code, [], numba_dir=Path(d))[-1]))
                    print(f"  compile {r + 1}/{args.compile_rounds} {s.name}: "
                          f"{comp[s.name][-1]:.1f} s", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for w in worktrees:
            subprocess.run(["git", "worktree", "remove", "--force", str(w)], cwd=REPO,
                           capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp)])

    rows, out = [], {"old": old.desc, "new": new.desc, "events": args.events,
                     "rounds": args.rounds, "lines": {}, "skipped": {}}
    for k in sorted(set(res["old"]) | set(res["new"]), key=lambda k: (
            [*LINES, "pipeline"].index(k.split(" / ")[0]), k)):
        o, n = res["old"].get(k, []), res["new"].get(k, [])
        if not o or not n:
            rows.append((k, f"{statistics.median(o) / 1e6:.2f}" if o else "-",
                         f"{statistics.median(n) / 1e6:.2f}" if n else "-", "-", "-", "-"))
            continue
        mo, mn = statistics.median(o), statistics.median(n)
        per = [b / a for a, b in zip(o, n, strict=False)]
        rows.append((k, f"{mo / 1e6:.2f}", f"{mn / 1e6:.2f}", f"{mn / mo:.3f}",
                     f"{min(per):.3f}", f"{max(per):.3f}"))
        out["lines"][k] = {"old_eps": o, "new_eps": n, "old_median": mo, "new_median": mn,
                           "ratio": mn / mo, "ratio_min": min(per), "ratio_max": max(per)}
    print()
    print("throughput, M events/s (median of rounds); ratio = new/old (> 1: new is faster)")
    print(_table(rows, ("line", "old", "new", "ratio", "min", "max")))
    if comp["old"] and comp["new"]:
        mo, mn = statistics.median(comp["old"]), statistics.median(comp["new"])
        print()
        print("start-up with an empty numba cache (compile), seconds; ratio = new/old "
              "(< 1: new compiles faster)")
        print(f"  old {mo:.1f} s   new {mn:.1f} s   ratio {mn / mo:.3f}")
        out["compile"] = {"old_s": comp["old"], "new_s": comp["new"], "ratio": mn / mo}
    for line, why in sorted(skips.items()):
        print(f"  note: {line} skipped on {'; '.join(sorted(why))}")
        out["skipped"][line] = sorted(why)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
