"""The ``mmsim`` command.

``mmsim ingest lobster MESSAGE.csv [ORDERBOOK.csv] --out FILE.parquet``
``mmsim ingest databento FILE.dbn.zst --out FILE.parquet``
``mmsim ingest binance CAPTURE.gz [CAPTURE2.gz ...] --out FILE.parquet`` (also ``binance-hist``,
``tardis``, ``hftbacktest`` and any format registered in :mod:`mmsim.data.registry`;
``--tick-size``/``--lot-size`` where the format needs them)
``mmsim backtest EXP.yaml [--data-root DIR] [--out RUN_DIR] [--set key=value ...]``
``mmsim sweep EXP.yaml [--grid key=v1,v2 ...] [--jobs N | --dask-local N | --scheduler ADDR]``
``mmsim report RUN_DIR|SWEEP_DIR [--out DIR] [--metric pnl --x KEY --y KEY --top N]``
``mmsim queue-score EXP.yaml [--models risk_averse,power:2,log] [--probes N] [--seed S]
[--out DIR] [--from-policy [RUN_DIR]] [--calibrate] [--markdown]`` (L2 queue models against
L3 truth)
"""

from __future__ import annotations

import argparse
import contextlib
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
    """``mmsim ingest``: claim ``--out`` (absent or an mmsim event file, locked), read the
    vendor files, write the canonical file atomically, print the report.

    The files are the format's inputs in its order (:mod:`mmsim.data.registry`): the main
    file, then the orderbook file if the format takes one, then its extra files
    (``--trades`` appended). Options the format does not take are ignored with a warning.

    Raises
    ------
    ValueError
        The files do not fit the format (``ingest lobster: give MESSAGE.csv
        [ORDERBOOK.csv]``), or as :func:`mmsim.data.sources.read_raw`.
    mmsim.data.DataError, OSError
        Bad input, or ``--out`` refused or locked.
    """
    from mmsim.data.registry import READER_OPTIONS, get_reader
    from mmsim.data.sources import read_raw
    from mmsim.data.store import write_events
    from mmsim.results import claim_output

    t = time.perf_counter()
    spec = get_reader(args.vendor)
    rest = list(args.files[1:])
    ob = rest.pop(0) if spec.orderbook and rest else None
    if args.trades is not None and not spec.trades:
        raise ValueError(f"ingest {spec.cli_name}: --trades: this format takes no "
                         "trades file")
    extra = rest + ([args.trades] if args.trades is not None else [])
    try:
        spec.check_inputs(ob is not None, len(extra))
    except ValueError:
        raise ValueError(f"ingest {spec.cli_name}: give {spec.usage}") from None
    options = {name: getattr(args, name, None) for name in READER_OPTIONS}
    for name, value in options.items():
        if value is not None and name not in spec.options:
            print(f"mmsim: warning: {READER_OPTIONS[name].flag} is not used by "
                  f"{spec.cli_name} (ignored)", file=sys.stderr)
    # before reading anything: --out must be free or an mmsim event file, and ours alone
    with claim_output(args.out, "parquet") as claim:
        res = read_raw(spec.name, args.files[0], ob, extra, **options)
        write_events(claim.path, res)
    print(f"wrote {len(res.events):,} events to {args.out} in {time.perf_counter() - t:.2f} s")
    print(json.dumps(res.report, indent=1, default=str))
    return 0


def _add_ingest_parser(sub: argparse._SubParsersAction) -> None:
    """The ``ingest`` subcommand: its vendors, their inputs and their options come from the
    format registry (:mod:`mmsim.data.registry`), read when the parser is built."""
    from mmsim.data.registry import READER_OPTIONS, list_readers

    readers = list_readers("raw")
    pi = sub.add_parser("ingest", help="convert raw vendor files to canonical Parquet events")
    pi.add_argument("vendor", choices=[s.cli_name for s in readers],
                    type=lambda v: v.replace("_", "-"),
                    help="; ".join(f"{s.cli_name}: {s.usage} ({s.description}; {s.book})"
                                   for s in readers))
    pi.add_argument("files", nargs="+", type=Path)
    pi.add_argument("--out", required=True, type=Path,
                    help="canonical .parquet file to write (absent, or an mmsim event file, "
                         "which is replaced)")
    for opt in READER_OPTIONS.values():
        users = [s for s in readers if opt.name in s.options]
        if not users:
            continue
        needed = [s.cli_name for s in users if s.needs_grid
                  and opt.name in ("tick_size", "lot_size")]
        helptext = f"{', '.join(s.cli_name for s in users)}: {opt.help}"
        if needed:
            helptext += f" (required by {', '.join(needed)})"
        pi.add_argument(opt.flag, dest=opt.name, type=opt.type, choices=opt.choices,
                        default=None, help=helptext)
    takes_trades = [s.cli_name for s in readers if s.trades]
    if takes_trades:
        pi.add_argument("--trades", type=Path, default=None,
                        help=f"{', '.join(takes_trades)}: trades CSV")
    else:
        pi.set_defaults(trades=None)
    pi.set_defaults(func=_cmd_ingest)


def _experiment_mode(path: Path) -> str:
    """``mode`` of an experiment YAML: ``replay`` (default) or ``model_market``."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "replay"  # load_config reports the problem with the file named
    return str(raw.get("mode", "replay")) if isinstance(raw, dict) else "replay"


def _cmd_backtest(args: argparse.Namespace) -> int:
    if args.experiment is None:
        from mmsim import default_experiment

        args.experiment = default_experiment()
    if _experiment_mode(args.experiment) == "model_market":
        # the whole config is checked before the model-market kernels are imported
        from mmsim.modelmarket.config import load_model_market_config

        load_model_market_config(args.experiment, args.set or [])
        from mmsim.modelmarket import run_experiment

        res = run_experiment(args.experiment, out=args.out, overrides=args.set or [])
        print(res.markdown)
        print(f"run directory: {res.run_dir}")
        return 0
    from mmsim.runner import backtest

    def say(line: str) -> None:
        print(line, flush=True)

    run = backtest(
        args.experiment,
        data_root=args.data_root,
        out=args.out,
        overrides=args.set or [],
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
        log=say,
    )
    if args.verbose:
        print("metrics:")
        print(format_metrics(run.metrics))
    from mmsim.summary import format_summary

    print("summary:" + ("" if args.verbose else "  (every metric: --verbose, or metrics.json)"))
    print(format_summary(run.metrics, run.manifest.get("instrument"), run.instruments,
                         run.manifest.get("metrics_calendar")))
    timing = json.loads((run.run_dir / "timing.json").read_text())
    eps = timing.get("events_per_s")
    if timing.get("compiled"):
        print(f"compile: {timing['compile_s']:.1f} s (first run only; cached for later runs)")
    print(f"replay: {timing['replay_s']:.3f} s ({eps:,} events/s)" if eps else "")
    print(f"run directory: {run.run_dir}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from mmsim.sweep import format_summary, run_sweep

    try:
        res = run_sweep(
            args.experiment,
            grid=args.grid or [],
            overrides=args.set or [],
            data_root=args.data_root,
            cache_dir=args.cache_dir,
            out=args.out,
            jobs=args.jobs,
            scheduler=args.scheduler,
            dask_local=args.dask_local,
            start_method=args.start_method,
            max_runs=args.max_runs,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print("mmsim sweep: interrupted; the table holds the finished runs. "
              "Rerun the same command to resume.", file=sys.stderr)
        return 130
    print(format_summary(res, metric=args.metric))
    return 1 if res.counts["failed"] else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from mmsim.report import report

    kw = {}
    sweep = (Path(args.path) / "sweep.parquet").is_file()
    if sweep:
        kw = {"metric": args.metric, "x": args.x, "y": args.y, "top": args.top,
              "minimize": args.minimize}
    page = report(args.path, args.out, **kw)
    if sweep:
        from mmsim.report_html import format_best_runs

        print(format_best_runs(args.path, args.metric, args.top, args.minimize))
    print(f"report: {page} (interactive; the PNG charts: {page.with_name('charts.html')})")
    return 0


def _cmd_queue_score(args: argparse.Namespace) -> int:
    """``mmsim queue-score``: :func:`mmsim.queue_score.score.queue_score`, then the table."""
    from mmsim.queue_score.score import format_summary, queue_score

    res = queue_score(
        args.experiment, models=args.models, n_probes=args.probes, seed=args.seed,
        lots=args.lots, out=args.out,
        from_policy=False if args.from_policy is None else (args.from_policy or True),
        calibrate=args.calibrate, data_root=args.data_root, overrides=args.set or [],
        log=lambda line: print(line, flush=True))
    print(format_summary(res.summary, markdown=args.markdown))
    if res.calibration is not None:
        c, u = res.calibration, res.calibration["uncertainty"]
        print(f"calibrated power exponent: n = {c['power_n']:g} (bootstrap std "
              f"{u['std']:.3g}, 90% [{u['p05']:g}, {u['p95']:g}]; error {c['error']:.4f})")
    print(f"time: {res.timing.get('total_s', 0):.1f} s")
    print(f"run directory: {res.run_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mmsim import __version__

    p = argparse.ArgumentParser(prog="mmsim", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"mmsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_ingest_parser(sub)
    pb = sub.add_parser("backtest", help="run one experiment YAML")
    pb.add_argument("experiment", type=Path, nargs="?", default=None,
                    help="the experiment YAML (default: the embedded default, synthetic data)")
    pb.add_argument("--data-root", default=None, help="default: $MMSIM_DATA_ROOT, else data/")
    pb.add_argument("--out", default=None, help="run directory (default runs/<name>-<digest>)")
    pb.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a YAML field, e.g. --set policy.gamma=0.05 (repeatable)")
    pb.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="a progress bar on stderr (default: when stderr is a terminal)")
    pb.add_argument("--verbose", "-v", action="store_true",
                    help="also every metric, the engine_* diagnostics included")
    pb.set_defaults(func=_cmd_backtest)
    ps = sub.add_parser("sweep", help="run a grid of backtests (process pool or Dask)")
    ps.add_argument("experiment", type=Path)
    ps.add_argument("--grid", action="append", metavar="KEY=VALUES",
                    help="a swept axis: policy.gamma=0.01,0.1,1 | policy.k=range(10,50,10) | "
                    "policy.gamma=linspace(0.01,0.1,4) | data.path,data.orderbook=[a,b],[c,d] "
                    "(repeatable; overrides the YAML grid: section for the same key)")
    ps.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a field of the base config (repeatable)")
    ps.add_argument("--data-root", default=None, help="default: $MMSIM_DATA_ROOT, else data/")
    ps.add_argument("--cache-dir", default=None,
                    help="ingest cache (default: $MMSIM_CACHE_DIR, else ~/.cache/mmsim)")
    ps.add_argument("--out", default=None,
                    help="sweep folder: absent, empty or an mmsim sweep folder (resumed) "
                         "(default runs/sweep-<name>-<hash of config + grid>)")
    ex = ps.add_mutually_exclusive_group()
    ex.add_argument("--jobs", type=int, default=None,
                    help="local worker processes (default: the cores; 0 = in this process)")
    ex.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                    help="run on an existing Dask cluster")
    ex.add_argument("--dask-local", type=int, default=None, metavar="N",
                    help="start a Dask LocalCluster of N worker processes")
    ps.add_argument("--start-method", choices=["spawn", "forkserver"], default=None,
                    help="process start method of the local pool (default: forkserver on "
                         "Linux, spawn on macOS and Windows)")
    ps.add_argument("--max-runs", type=int, default=None,
                    help="run at most N unfinished runs (the rest stay pending)")
    ps.add_argument("--metric", default="pnl", help="metric of the summary's best runs")
    ps.add_argument("--no-progress", action="store_true", help="no progress bar")
    ps.set_defaults(func=_cmd_sweep)
    pr = sub.add_parser("report", help="an interactive HTML page (report.html) and PNG charts "
                        "of a run or a sweep; a sweep's best runs are also printed")
    pr.add_argument("path", type=Path, help="a run directory or a sweep folder")
    pr.add_argument("--out", default=None, help="output folder (default <path>/report)")
    pr.add_argument("--metric", default="pnl", help="sweep: metric of the heatmap and ranking")
    pr.add_argument("--x", default=None, help="sweep: heatmap x parameter (dotted key)")
    pr.add_argument("--y", default=None, help="sweep: heatmap y parameter (dotted key)")
    pr.add_argument("--top", type=int, default=10, help="sweep: number of best runs listed")
    pr.add_argument("--minimize", action="store_true",
                    help="sweep: lower metric is better (e.g. max_drawdown)")
    pr.set_defaults(func=_cmd_report)
    pq = sub.add_parser("queue-score", help="score L2 queue models against L3 truth with "
                        "probe orders (MODELS.md §13); --calibrate fits the power exponent")
    pq.add_argument("experiment", type=Path, help="an experiment YAML on L3 data")
    pq.add_argument("--models", default="risk_averse,power:1,power:2,power:3,log",
                    help="comma-separated L2 models: risk_averse, power:<n>, log")
    pq.add_argument("--probes", type=int, default=2000, help="probes to score")
    pq.add_argument("--seed", type=int, default=None, help="default: the experiment's seed")
    pq.add_argument("--lots", type=int, default=1, help="size of each probe (lots)")
    pq.add_argument("--out", default=None,
                    help="run directory (default runs/queue_score-<name>-<digest>)")
    pq.add_argument("--from-policy", nargs="?", const="", default=None, metavar="RUN_DIR",
                    help="probes at the policy's own placements: a run directory's orders "
                         "log, or (no value) a backtest of the experiment")
    pq.add_argument("--calibrate", action="store_true",
                    help="fit the power exponent to the truth; writes calibration.json")
    pq.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    pq.add_argument("--data-root", default=None, help="default: $MMSIM_DATA_ROOT, else data/")
    pq.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a YAML field (repeatable)")
    pq.set_defaults(func=_cmd_queue_score)
    return p


class _Terminated(SystemExit):
    """Raised by the SIGTERM handler (a ``SystemExit``: ``except Exception`` lets it pass)."""


def _terminate(signum, frame) -> None:
    """SIGTERM → :class:`_Terminated`, so the writers' cleanup runs (partial folders and
    temporary files removed, locks released) as for Ctrl-C."""
    raise _Terminated(128 + signum)


def _unknown_command(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The error for a first word that is not a command (with the nearest one, if any
    is close), or None."""
    import difflib

    if not argv or argv[0].startswith("-"):
        return None
    commands = next(a.choices for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction))
    if argv[0] in commands:
        return None
    close = difflib.get_close_matches(argv[0], list(commands), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown command '{argv[0]}' (commands: {', '.join(commands)}){hint}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mmsim`` console script.

    Errors print one line (``mmsim: error: ...``, naming the file) and return 2: bad
    config or data, a refused or locked ``--out``, missing files, other OS errors
    (permissions, disk full), a feature whose optional package is not installed. Ctrl-C
    returns 130 and SIGTERM exits with 143, after the cleanup (nothing half-written is left
    looking complete).
    """
    import signal

    from mmsim._extras import MissingExtraError
    from mmsim.config import ConfigError
    from mmsim.data.errors import DataError

    parser = build_parser()
    given = sys.argv[1:] if argv is None else list(argv)
    unknown = _unknown_command(parser, given)
    if unknown:
        print(f"mmsim: error: {unknown}", file=sys.stderr)
        return 2
    args = parser.parse_args(given)
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: keep the default
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("mmsim: interrupted", file=sys.stderr)
        return 130
    except _Terminated as e:
        print("mmsim: terminated (SIGTERM)", file=sys.stderr)
        return int(e.code)
    except (ConfigError, DataError, OSError, KeyError, ValueError, MissingExtraError) as e:
        # OSError covers FileNotFoundError and FileExistsError (mmsim.results.OutputError);
        # MissingExtraError names the extra to install
        print(f"mmsim: error: {e}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if argv is None:  # the console script: the process exits next
            import gc

            # every object to the collector's permanent generation: the interpreter's
            # teardown then skips them (after a run, numba's typing and compiled-code objects
            # made it take ~0.45 s); the run's files are closed and synced by now
            gc.freeze()


if __name__ == "__main__":
    raise SystemExit(main())
