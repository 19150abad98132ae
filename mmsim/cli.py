"""The ``mmsim`` command.

``mmsim ingest lobster MESSAGE.csv [ORDERBOOK.csv] --out FILE.parquet``
``mmsim ingest databento FILE.dbn.zst --out FILE.parquet``
``mmsim backtest EXP.yaml [--data-root DIR] [--out RUN_DIR] [--set key=value ...]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4e}"
        return f"{v:,.4f}"
    return str(v)


def format_metrics(metrics: dict) -> str:
    """The metrics as a two-column text table."""
    width = max(len(k) for k in metrics) if metrics else 0
    return "\n".join(f"  {k:<{width}}  {_fmt(v)}" for k, v in metrics.items())


def _cmd_ingest(args: argparse.Namespace) -> int:
    from mmsim.data.store import write_events

    t = time.perf_counter()
    if args.vendor == "lobster":
        from mmsim.data.lobster import read_lobster
        from mmsim.data.validate import check_lobster_reconstruction

        if len(args.files) not in (1, 2):
            raise SystemExit("mmsim ingest lobster: give MESSAGE.csv [ORDERBOOK.csv]")
        ob = args.files[1] if len(args.files) == 2 else None
        res = read_lobster(args.files[0], ob)
        if ob is not None:
            chk = check_lobster_reconstruction(res.events, ob)
            res.report["reconstruction"] = chk
    else:
        from mmsim.data.databento import read_databento

        if len(args.files) != 1:
            raise SystemExit("mmsim ingest databento: give one FILE.dbn.zst")
        res = read_databento(args.files[0])
    write_events(args.out, res)
    print(f"wrote {len(res.events):,} events to {args.out} in {time.perf_counter() - t:.2f} s")
    print(json.dumps(res.report, indent=1, default=str))
    return 0


def _experiment_mode(path: Path) -> str:
    """``mode`` of an experiment YAML: ``replay`` (default) or ``model_market``."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "replay"  # load_config reports the problem with the file named
    return str(raw.get("mode", "replay")) if isinstance(raw, dict) else "replay"


def _cmd_backtest(args: argparse.Namespace) -> int:
    from mmsim.engine.backtest import backtest

    if _experiment_mode(args.experiment) == "model_market":
        from mmsim.modelmarket import run_experiment

        res = run_experiment(args.experiment, out=args.out, overrides=args.set or [])
        print(res.markdown)
        print(f"run directory: {res.run_dir}")
        return 0

    run = backtest(
        args.experiment,
        data_root=args.data_root,
        out=args.out,
        overrides=args.set or [],
        progress=args.progress,
    )
    m = run.metrics
    meta = run.manifest.get("data_meta", {})
    print(f"experiment: {run.config.get('name')}  ({run.config.get('description', '')})")
    print(f"data: {run.manifest.get('data_kind')}  {meta.get('symbol', '')}  "
          f"{run.manifest.get('data_events'):,} events")
    if meta.get("note"):
        print(f"note: {meta['note']}")
    print("metrics:")
    print(format_metrics(m))
    timing = json.loads((run.run_dir / "timing.json").read_text())
    eps = timing.get("events_per_s")
    print(f"replay: {timing['replay_s']:.3f} s ({eps:,} events/s)" if eps else "")
    print(f"run directory: {run.run_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmsim", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("ingest", help="convert raw vendor files to canonical Parquet events")
    pi.add_argument("vendor", choices=["lobster", "databento"])
    pi.add_argument("files", nargs="+", type=Path)
    pi.add_argument("--out", required=True, type=Path)
    pi.set_defaults(func=_cmd_ingest)
    pb = sub.add_parser("backtest", help="run one experiment YAML")
    pb.add_argument("experiment", type=Path)
    pb.add_argument("--data-root", default=None, help="default: $MMSIM_DATA_ROOT, else data/")
    pb.add_argument("--out", default=None, help="run directory (default runs/<name>-<digest>)")
    pb.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a YAML field, e.g. --set policy.gamma=0.05 (repeatable)")
    pb.add_argument("--progress", action="store_true", help="show a progress bar")
    pb.set_defaults(func=_cmd_backtest)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mmsim`` console script; errors print one line and exit 2."""
    from mmsim.config import ConfigError
    from mmsim.data.errors import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError, FileNotFoundError, FileExistsError, KeyError,
            ValueError) as e:
        print(f"mmsim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
