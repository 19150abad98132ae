"""One backtest, end to end: check everything, then compile, replay, write and measure.

:func:`backtest` is the orchestration above the engine: load the config, claim the run
directory, open the dataset, resolve (:func:`mmsim.resolve.resolve`: every ``auto`` and every
name of the config decided, the instrument merged, its grid checked against the data's, the
policy and hedger parameters and the latency series read), then compile, build the
:class:`~mmsim.engine.backtest.Engine` from the resolved :class:`~mmsim.resolve.EngineSpec`,
replay and write the outputs. Everything up to the spec is checked without importing any
kernel; only then are the kernels compiled (15–30 s on an empty cache, announced by
``log``) and the events replayed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mmsim import __version__
from mmsim.config import ExperimentConfig


def default_run_dir(cfg: ExperimentConfig) -> Path:
    """``runs/<name>-<first 10 hex of the config digest>``."""
    return Path("runs") / f"{cfg.name}-{cfg.digest()[:10]}"


def resolve_config(config, overrides=()) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a config, a raw dict or a YAML path, with ``--set``
    style ``overrides`` applied before validation.

    Raises
    ------
    mmsim.config.ConfigError
    """
    from mmsim.config import apply_overrides, config_from_dict, load_config

    if isinstance(config, (str, os.PathLike)):
        return load_config(config, overrides)
    if isinstance(config, dict):
        return config_from_dict(apply_overrides(config, overrides))
    if overrides:
        return config_from_dict(apply_overrides(config.as_dict(), overrides))
    return config


def data_warnings(report: dict) -> list[str]:
    """What a reader's validation report says a user must know before trusting a run:
    update-id gaps that were applied anyway, crossed book states, receive times clamped."""
    out = []
    gaps = int(report.get("update_id_gaps") or 0)
    if gaps:
        policy = report.get("gap_policy", "apply")
        if policy == "resync":
            out.append(f"{gaps} update-id gap(s) in the feed: the book was cleared and quoting "
                       "paused until the next snapshot (data.gap_policy: resync)")
        else:
            out.append(f"{gaps} update-id gap(s) in the feed were applied anyway "
                       "(data.gap_policy: apply): the book may be wrong after them")
    crossed = int(report.get("crossed_states") or 0)
    if crossed:
        out.append(f"the replayed book was crossed in {crossed:,} states: fills near them "
                   "are not to be trusted")
    return out


def backtest(
    config: ExperimentConfig | dict | str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    cache_dir: str | os.PathLike | None = None,
    overwrite: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
):
    """Run one experiment and return its :class:`mmsim.results.RunResult`.

    Parameters
    ----------
    config : ExperimentConfig, dict, or path to a YAML file
    data_root : path, optional
        Folder the ``data`` paths are relative to (default ``MMSIM_DATA_ROOT``, else ``data/``).
    out : path, optional
        Run directory (default :func:`default_run_dir`). It must not exist, be empty, or be an
        mmsim run (which is replaced); it is locked for the run.
    overrides : list of ``key=value``
        Applied to a YAML or dict config before validation.
    cache_dir : path, optional
        Ingest cache (default ``MMSIM_CACHE_DIR``, else ``~/.cache/mmsim``).
    overwrite : bool
        Replace an existing mmsim run directory of the same name.
    progress : bool
        Show a progress bar over the events (tqdm, on stderr).
    log : callable, optional
        Receives one line at a time: the experiment header, data warnings and the
        "compiling kernels" notice, all before the replay starts.

    Returns
    -------
    mmsim.results.RunResult

    Raises
    ------
    mmsim.config.ConfigError
        Invalid config or parameters (before any work).
    mmsim.data.DataError
        Missing or bad data, or data off the instrument's grid (before compiling).
    FileExistsError
        The run directory is taken (not an mmsim run, a file, or locked by another run).
    mmsim.engine.backtest.PolicyError, mmsim.engine.backtest.EngineCapacityError
        During the replay.
    """
    from mmsim.data.sources import dataset_for_config, datasets_for_config
    from mmsim.resolve import FeedMode, resolve
    from mmsim.results import RunWriter

    say = log or (lambda _msg: None)
    t_start = time.perf_counter()
    cfg = resolve_config(config, overrides)
    run_dir = Path(out) if out else default_run_dir(cfg)
    writer = RunWriter(run_dir, overwrite=overwrite)  # claims and locks it, before any work
    try:
        ds = dataset_for_config(cfg, data_root, cache_dir)
        others = datasets_for_config(cfg, data_root, cache_dir) if cfg.instruments else []
        # every auto and every name, checked: no kernel yet
        spec = resolve(cfg, ds, data_root, others=others)
        inst = spec.instrument
        legs = spec.legs
        datasets = [ds, *others]
        say(f"experiment: {cfg.name}" + (f"  ({cfg.description})" if cfg.description else ""))
        for leg, d in zip(legs, datasets, strict=True):
            meta = d.meta
            label = f"{leg.name}: " if len(legs) > 1 else ""
            say(f"data: {label}{d.kind}  {meta.get('symbol', '')}  {d.n_events:,} events")
            if meta.get("note"):
                say(f"note: {meta['note']}")
            for w in data_warnings(d.report):
                say(f"warning: {label}{w}")
        meta = ds.meta

        from mmsim._jitcache import engine_is_cached

        cold = not engine_is_cached()
        if cold:
            say("compiling kernels (first run only)...")
        t_compile = time.perf_counter()
        from mmsim.engine.backtest import Engine
        from mmsim.metrics import compute_run_metrics
        from mmsim.metrics.metrics import calendar_periods

        engine = Engine(spec)
        compile_s = time.perf_counter() - t_compile
        writer.set_instruments([leg.instrument for leg in legs], [leg.name for leg in legs])

        t_replay0 = time.perf_counter()
        streams = []
        for leg, d in zip(legs, datasets, strict=True):
            c = d.chunks(cfg.engine.chunk_events)
            if not leg.grid.identity:  # rescaled in place: before any merge
                c = _scaled(c, leg.grid)
            streams.append(c)
        if len(streams) == 1:
            chunks = streams[0]
        else:
            from mmsim.data.merge import merge_chunks

            # by exchange time; at equal times the quoted instrument first (merge_chunks)
            chunks = merge_chunks(streams, cfg.engine.chunk_events)
        bar = None
        if progress:
            from tqdm import tqdm

            total = sum(d.n_events for d in datasets)
            bar = tqdm(total=total, unit="ev", unit_scale=True, desc=cfg.name, file=sys.stderr)
            chunks = _counted(chunks, bar, max(PROGRESS_MIN_STEP, total // PROGRESS_STEPS))
        try:
            engine.run(chunks, writer.append)
        finally:
            if bar is not None:
                bar.close()
        t_replay = time.perf_counter()
        stats = engine.stats()
        inst_stats = [engine.instrument_stats(i) for i in range(len(legs))] \
            if len(legs) > 1 else []
        # the engine's book, order table and feed ring are not needed for the metrics: hand
        # them back before the logs are read (the run's peak memory is in that phase)
        del engine, chunks, streams, c
        writer.close_logs()
        fills, orders, equity = writer.read_back()
        calendar = market_calendar(cfg.metrics.calendar, ds.kind, ds.meta)
        ppy, ppd = (cfg.metrics.periods_per_year, None) if cfg.metrics.periods_per_year \
            else calendar_periods(calendar, cfg.metrics.sharpe_clock_s)
        metrics = compute_run_metrics(
            fills,
            equity,
            orders,
            [leg.instrument for leg in legs],
            [leg.name for leg in legs],
            sharpe_clock_s=cfg.metrics.sharpe_clock_s,
            periods_per_year=ppy,
            periods_per_day=ppd,
            max_position=[cfg.risk.max_position_qty]
            + [o.max_position_qty for o in cfg.instruments],
            markout_horizons_s=cfg.metrics.markout_horizons_s,
            capital=cfg.metrics.capital,
        )
        metrics = {**metrics, **{f"engine_{k}": v for k, v in stats.items()}}
        for i, st in enumerate(inst_stats):
            metrics.update({f"inst.{legs[i].name}.engine_{k}": v for k, v in st.items()})
        manifest = {
            "mmsim_version": __version__,
            "name": cfg.name,
            "seed": cfg.seed,
            "config_sha256": cfg.digest(),
            "data_kind": ds.kind,
            "data_inputs": ds.inputs,
            "data_canonical": {"file": ds.path.name, "sha256": ds.canonical_sha256},
            "data_events": ds.n_events,
            "data_meta": ds.meta,
            "data_report": ds.report,
            "instrument": inst.model_dump(),
            "metrics_calendar": (calendar if cfg.metrics.periods_per_year is None
                                 else f"{cfg.metrics.periods_per_year:g} periods per year"),
            "clocks": "exchange: exch_ts; strategy: local_ts "
            + ("from data" if spec.feed.mode is FeedMode.DATA_LOCAL_TS
               else f"= exch_ts + {spec.feed.nanos} ns"),
        }
        if len(legs) > 1:
            manifest["instrument_data"] = [
                {"name": leg.name, "data_kind": d.kind, "data_inputs": d.inputs,
                 "data_canonical": {"file": d.path.name, "sha256": d.canonical_sha256},
                 "data_events": d.n_events, "data_report": d.report}
                for leg, d in zip(legs, datasets, strict=True)
            ]
        replay_s = t_replay - t_replay0
        timing = {
            "prepare_s": round(t_compile - t_start, 4),
            "compile_s": round(compile_s, 4),
            "compiled": cold,
            "replay_s": round(replay_s, 4),
            "events_per_s": round(stats["events"] / replay_s) if replay_s > 0 else None,
            "total_s": round(time.perf_counter() - t_start, 4),
        }
        return writer.commit(metrics, cfg.as_dict(), manifest, timing)
    except BaseException:
        writer.abort()
        raise


def market_calendar(calendar: str, data_kind: str, meta: dict | None = None) -> str:
    """The trading calendar of the Sharpe annualisation (:data:`mmsim.metrics.metrics.
    CALENDARS`): ``calendar`` unless ``auto``, else the data kind's
    (:attr:`mmsim.data.registry.ReaderSpec.calendar`; a canonical Parquet file: the kind it
    was ingested from, ``meta['source']``)."""
    if calendar != "auto":
        return calendar
    from mmsim.data.registry import get_reader

    kind = data_kind
    if kind == "parquet" and meta and meta.get("source"):
        kind = str(meta["source"])
    try:
        return get_reader(kind).calendar
    except ValueError:
        return "equities"


def _scaled(chunks, grid):
    for c in chunks:
        c = grid.apply(c)
        yield c
        del c  # (each generator here lets go of a chunk before it reads the next)


#: the progress bar moves in about this many steps over a run (each at least
#: :data:`PROGRESS_MIN_STEP` events)
PROGRESS_STEPS = 200
PROGRESS_MIN_STEP = 10_000


def _counted(chunks, bar, step: int):
    """``chunks`` (event arrays, or ``(events, instrument)`` pairs) cut into slices of at most
    ``step`` events, the bar advanced by each slice as the next is asked for (once the
    engine has replayed it) and showing the simulated time since the first event. Slicing
    changes no result: the engine carries its whole state from one call to the next
    (``tests/test_synthetic.py`` chunk invariance)."""
    t0 = None
    for c in chunks:
        ev = c[0] if isinstance(c, tuple) else c
        if len(ev) == 0:
            yield c
        for i in range(0, len(ev), step):
            piece = (ev[i:i + step], c[1][i:i + step]) if isinstance(c, tuple) else ev[i:i + step]
            sl = piece[0] if isinstance(piece, tuple) else piece
            yield piece
            if t0 is None:
                t0 = int(sl["exch_ts"][0])
            bar.update(len(sl))
            bar.set_postfix_str(f"sim {_clock(int(sl['exch_ts'][-1]) - t0)}", refresh=False)
            del piece, sl
        del c, ev


def _clock(ns: int) -> str:
    """``ns`` nanoseconds as ``H:MM:SS``."""
    s = max(ns, 0) // 1_000_000_000
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
