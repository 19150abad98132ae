"""Parameter sweeps: grid expansion, run keys, executors and the results table.

``mmsim sweep EXP.yaml --grid policy.gamma=0.01,0.1,1 --grid latency.entry_nanos=1e6,5e6``
runs the cartesian product of the axes, one ordinary run directory per point, on a local
process pool (default) or a Dask cluster, and writes one table with a row per run.

Grid syntax
-----------
On the command line (``--grid``, repeatable), ``KEY=VALUES``:

* ``policy.gamma=0.01,0.1,1`` — a list; each value is parsed as a YAML scalar, and a
  number written as ``1e6`` or ``5E-3`` (which YAML 1.1 reads as a string) becomes a float.
  Integral floats are accepted by integer fields (``latency.entry_nanos=1e6`` → 1000000).
* ``policy.k=[10, 20, 30]`` — a YAML flow list.
* ``policy.k=range(10,50,10)`` — ``start, stop[, step]``, stop excluded as in Python
  (10, 20, 30, 40); floats allowed.
* ``policy.gamma=linspace(0.01,0.1,4)`` — ``n`` evenly spaced values, both ends included;
  ``geomspace(0.001,1,4)`` — ``n`` values evenly spaced on a log scale.
* Zipped axes, for settings that move together (a data day and its orderbook file): the keys
  joined by commas, one tuple per point:
  ``data.path,data.orderbook=[a_message.csv,a_orderbook.csv],[b_message.csv,b_orderbook.csv]``
  (``(…)`` works as well as ``[…]``).

In the experiment YAML, a ``grid:`` section maps each key to the same forms::

    grid:
      policy.gamma: [0.01, 0.1, 1]
      policy.k: {range: [10, 50, 10]}          # or {linspace: [a, b, n]}, {geomspace: [a, b, n]}
      latency.entry_nanos: "linspace(1e5,1e6,3)"
      data.path,data.orderbook:                 # zipped: one list per point
        - [lobster/A_message_1.csv, lobster/A_orderbook_1.csv]
        - [lobster/B_message_1.csv, lobster/B_orderbook_1.csv]
      day:                                      # zipped, named: one mapping per point
        - {data.path: lobster/A_message_1.csv, data.orderbook: lobster/A_orderbook_1.csv}
        - {data.path: lobster/B_message_1.csv, data.orderbook: lobster/B_orderbook_1.csv}
      policy_case:                              # a value may be a whole section
        - {policy: {name: fixed_spread, spread_bps: 2}}
        - {policy: {name: offset_ticks, offset_ticks: 3}}

``--grid`` axes are applied after the YAML ones: an axis that sets a key already swept
replaces the axis holding it (in its place); new axes are appended. The points are the
cartesian product of the axes in order, the first axis varying slowest.

Runs, keys and resuming
-----------------------
Each point's full config is the base YAML (``--set`` overrides applied, ``grid`` removed) with
the point's values set; its *run key* is the first 16 hex digits of
:meth:`mmsim.config.ExperimentConfig.digest` and its run directory ``<sweep>/runs/<key>``.
A run counts as finished when its directory holds a complete manifest for that digest, all
its files present (what :func:`mmsim.results.load` requires; the Parquet footers are read,
not the data): a rerun of the sweep skips those runs and redoes the others, so an
interrupted sweep resumes, and a half-written run (``<key>.partial``, or a folder without a
complete manifest) is run again.

The table
---------
``<sweep>/sweep.parquet`` (written atomically; read it with :func:`mmsim.results.load_sweep`)
has one row per grid point in grid order: ``run_key``, one column per swept key (dotted
name, the value as validated; a whole section as JSON text), ``status`` (``ok``,
``failed`` or ``pending`` = not run yet), ``error``, ``run_dir`` (relative to the sweep
folder), ``cached`` (finished before this invocation), ``wall_s`` (the worker's wall time
of the run), ``replay_s`` (the engine's replay time from ``timing.json``) and every metric
of ``metrics.json``. ``<sweep>/sweep.json``
holds the grid, the base config, the executor and the timing.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmsim.config import ConfigError, config_from_dict, read_experiment_yaml, set_dotted

RUN_KEY_HEX = 16
TABLE_FILE = "sweep.parquet"
META_FILE = "sweep.json"
RUNS_DIR = "runs"
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_PENDING = "pending"
#: columns of the table that are not parameters or metrics
FIXED_COLUMNS = ("run_key", "status", "error", "run_dir", "cached", "wall_s", "replay_s")
#: columns that differ between two executions of the same sweep
TIMING_COLUMNS = ("wall_s", "replay_s")

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_FUNC = re.compile(r"^\s*(range|linspace|geomspace)\s*\((.*)\)\s*$", re.DOTALL)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class GridError(ConfigError):
    """A ``--grid`` argument or ``grid:`` entry is malformed (the entry is named)."""


# --------------------------------------------------------------------------------------------
# grid parsing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One axis of a sweep: one key, or several zipped keys that move together.

    Attributes
    ----------
    name : str
        Label of the axis (``policy.gamma``; ``data.path,data.orderbook``; a YAML group name).
    keys : tuple of str
        Dotted config keys the axis sets.
    values : tuple of tuple
        One tuple per point, ``len(keys)`` values each.
    """

    name: str
    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    def to_json(self) -> dict[str, Any]:
        """The axis as a JSON-able mapping (for ``sweep.json``)."""
        return {"name": self.name, "keys": list(self.keys),
                "values": [list(v) for v in self.values]}


def _numeric(v: Any) -> Any:
    """``v`` with numeric-looking strings (``"1e6"``) turned into floats, recursively."""
    if isinstance(v, str) and _NUMBER.match(v.strip()):
        return float(v)
    if isinstance(v, list):
        return [_numeric(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_numeric(x) for x in v)
    if isinstance(v, dict):
        return {k: _numeric(x) for k, x in v.items()}
    return v


def _yaml_value(text: str, where: str) -> Any:
    """Parse one value as YAML (``(a, b)`` read as a list), then :func:`_numeric`."""
    t = text.strip()
    if t.startswith("(") and t.endswith(")"):
        t = "[" + t[1:-1] + "]"
    try:
        return _numeric(yaml.safe_load(t)) if t != "" else None
    except yaml.YAMLError as e:
        raise GridError(f"{where}: cannot parse value '{text}': {e}") from None


def _split_top(text: str) -> list[str]:
    """Split ``text`` at the commas that are outside brackets, braces and quotes."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def _tidy(x: float) -> float:
    """Round away float noise (12 significant digits): 0.30000000000000004 → 0.3."""
    return float(f"{x:.12g}")


def _generate(func: str, args: Sequence[Any], where: str) -> list[Any]:
    """Values of ``range``/``linspace``/``geomspace`` (see the module docstring)."""
    try:
        nums = [_numeric(a) for a in args]
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in nums):
            raise TypeError
    except TypeError:
        raise GridError(f"{where}: {func} takes numbers, got {list(args)}") from None
    if func == "range":
        if len(nums) not in (2, 3):
            raise GridError(f"{where}: range takes (start, stop[, step]), got {nums}")
        start, stop = nums[0], nums[1]
        step = nums[2] if len(nums) == 3 else 1
        if step == 0:
            raise GridError(f"{where}: range step must not be 0")
        if all(isinstance(a, int) for a in (start, stop, step)):
            return list(range(start, stop, step))
        n = max(0, math.ceil((stop - start) / step - 1e-9))
        return [_tidy(start + i * step) for i in range(n)]
    if len(nums) != 3 or not float(nums[2]).is_integer() or nums[2] < 1:
        raise GridError(f"{where}: {func} takes (start, stop, n) with an integer n >= 1")
    a, b, n = float(nums[0]), float(nums[1]), int(nums[2])
    if func == "geomspace":
        if a <= 0 or b <= 0:
            raise GridError(f"{where}: geomspace needs positive bounds, got {a}, {b}")
        la, lb = math.log(a), math.log(b)
        return [_tidy(math.exp(la + (lb - la) * i / (n - 1))) if n > 1 else _tidy(a)
                for i in range(n)]
    return [_tidy(a + (b - a) * i / (n - 1)) if n > 1 else _tidy(a) for i in range(n)]


def _values_from_text(text: str, where: str) -> list[Any]:
    """The list of values written in ``text`` (list, flow list, or generator call)."""
    m = _FUNC.match(text)
    if m:
        args = [_yaml_value(a, where) for a in _split_top(m.group(2))]
        return _generate(m.group(1), args, where)
    t = text.strip()
    # "[a, b]" is one list of values; "[a, b], [c, d]" (zipped tuples) is split below
    if t.startswith("[") and t.endswith("]") and len(_split_top(t)) == 1:
        v = _yaml_value(t, where)
        if isinstance(v, list):
            return v
    return [_yaml_value(p, where) for p in _split_top(text)]


def _check_key(key: str, where: str) -> str:
    k = key.strip()
    if not _KEY.match(k):
        raise GridError(f"{where}: '{key}' is not a dotted config key (like policy.gamma)")
    return k


def _make_axis(name: str, keys: Sequence[str], values: Sequence[Any], where: str) -> Axis:
    """Build an :class:`Axis`, checking that zipped points have one value per key."""
    keys = tuple(_check_key(k, where) for k in keys)
    if len(set(keys)) != len(keys):
        raise GridError(f"{where}: a key appears twice in {list(keys)}")
    if len(values) == 0:
        raise GridError(f"{where}: no values")
    pts = []
    for v in values:
        if len(keys) == 1:
            pts.append((v,))
            continue
        if not isinstance(v, (list, tuple)) or len(v) != len(keys):
            raise GridError(
                f"{where}: zipped keys {list(keys)} need one [{', '.join(keys)}] list per "
                f"point, got {v!r}"
            )
        pts.append(tuple(v))
    return Axis(name, keys, tuple(pts))


def parse_grid_arg(text: str) -> Axis:
    """Parse one ``--grid KEY=VALUES`` argument (syntax in the module docstring).

    Raises
    ------
    GridError
        If there is no ``=``, a key is not dotted, a value does not parse or a zipped point
        has the wrong number of values.
    """
    where = f"--grid '{text}'"
    if "=" not in text:
        raise GridError(f"{where}: expected KEY=VALUES")
    key, _, vals = text.partition("=")
    if vals.strip() == "":
        raise GridError(f"{where}: no values")
    keys = key.split(",")
    values = _values_from_text(vals, where)
    if len(keys) > 1 and len(values) == len(keys) and not any(
        isinstance(v, (list, tuple)) for v in values
    ):
        values = [values]  # "k1,k2=[a,b]": a single zipped point
    return _make_axis(",".join(k.strip() for k in keys), keys, values, where)


def axes_from_mapping(grid: dict[str, Any] | None, source: str = "grid") -> list[Axis]:
    """Parse a YAML ``grid:`` section (syntax in the module docstring) into axes, in order.

    Raises
    ------
    GridError
        If an entry is malformed.
    """
    if not grid:
        return []
    if not isinstance(grid, dict):
        raise GridError(f"{source}: 'grid' must be a mapping of key → values")
    axes = []
    for name, spec in grid.items():
        where = f"{source}: grid entry '{name}'"
        name = str(name)
        if isinstance(spec, list) and spec and all(isinstance(p, dict) for p in spec):
            keys = list(spec[0])
            for p in spec:
                if set(p) != set(keys):
                    raise GridError(f"{where}: every mapping must set the same keys {keys}")
            if len(keys) == 1:  # one key: its values as they are (a whole section may be one)
                vals = [_numeric(p[keys[0]]) for p in spec]
            else:
                vals = [tuple(_numeric(p[k]) for k in keys) for p in spec]
            axes.append(_make_axis(name, keys, vals, where))
            continue
        keys = name.split(",")
        if isinstance(spec, dict):
            if len(spec) != 1 or next(iter(spec)) not in ("range", "linspace", "geomspace"):
                raise GridError(f"{where}: expected a list, or one of "
                                "{range: [...]}, {linspace: [...]}, {geomspace: [...]}")
            func, args = next(iter(spec.items()))
            if not isinstance(args, list):
                raise GridError(f"{where}: {func} takes a list of numbers")
            vals = _generate(func, args, where)
        elif isinstance(spec, str):
            vals = _values_from_text(spec, where)
        elif isinstance(spec, list):
            vals = _numeric(spec)
        else:
            vals = [spec]
        axes.append(_make_axis(",".join(k.strip() for k in keys), keys, vals, where))
    return axes


def merge_axes(base: Sequence[Axis], extra: Sequence[Axis]) -> list[Axis]:
    """``base`` axes overridden by ``extra`` ones, applied in order.

    An ``extra`` axis sharing a key with base axes replaces the first of them in place and
    removes the others; an axis with new keys only is appended.
    """
    out = list(base)
    for ax in extra:
        hit = [i for i, b in enumerate(out) if set(b.keys) & set(ax.keys)]
        if not hit:
            out.append(ax)
            continue
        out[hit[0]] = ax
        for i in reversed(hit[1:]):
            del out[i]
    return out


def expand_grid(axes: Sequence[Axis]) -> list[dict[str, Any]]:
    """The cartesian product of ``axes`` (first axis slowest): one ``{key: value}`` per point.

    No axes give one empty point (the base config). A key set by two axes raises
    :class:`GridError`.
    """
    seen: set[str] = set()
    for ax in axes:
        dup = seen & set(ax.keys)
        if dup:
            raise GridError(f"grid: key(s) {sorted(dup)} set by two axes")
        seen |= set(ax.keys)
    points = []
    for combo in itertools.product(*(ax.values for ax in axes)):
        p: dict[str, Any] = {}
        for ax, vals in zip(axes, combo, strict=True):
            p.update(zip(ax.keys, vals, strict=True))
        points.append(p)
    return points


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    try:
        set_dotted(raw, key, copy.deepcopy(value), f"grid key '{key}'")
    except ConfigError as e:
        raise GridError(str(e)) from None


def _get_dotted(d: dict[str, Any], key: str, default: Any) -> Any:
    node: Any = d
    for p in key.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def _sha(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class RunSpec:
    """One point of a sweep.

    Attributes
    ----------
    index : int
        Position in grid order.
    params : dict
        Swept key → value as validated (as given when the config is invalid).
    key : str
        Run key: first 16 hex of the config digest (of the raw dict if invalid).
    config : dict or None
        The validated config (``ExperimentConfig.as_dict()``); None if invalid.
    digest : str
        Full sha256 of the config.
    error : str
        Validation error ('' if valid).
    """

    index: int
    params: dict[str, Any]
    key: str
    config: dict[str, Any] | None
    digest: str
    error: str = ""


@dataclass
class SweepPlan:
    """An expanded sweep: base config, axes and one :class:`RunSpec` per point."""

    name: str
    source: str
    base: dict[str, Any]
    axes: list[Axis]
    runs: list[RunSpec]
    digest: str

    @property
    def param_columns(self) -> list[str]:
        """The swept keys, in axis order."""
        return [k for ax in self.axes for k in ax.keys]


def _read_experiment(experiment: str | os.PathLike | dict[str, Any]) -> tuple[dict, str]:
    if isinstance(experiment, dict):
        return copy.deepcopy(experiment), "<dict>"
    p = Path(experiment)
    return read_experiment_yaml(p), str(p)


def plan_sweep(
    experiment: str | os.PathLike | dict[str, Any],
    grid: Sequence[str] = (),
    overrides: Sequence[str] = (),
) -> SweepPlan:
    """Expand an experiment and its grid into runs (no run is executed).

    Parameters
    ----------
    experiment : path to a YAML file, or a raw config mapping
        May hold a ``grid:`` section.
    grid : list of str
        ``--grid KEY=VALUES`` arguments; they override YAML axes with the same key.
    overrides : list of str
        ``--set key=value`` overrides of the base config (applied before the grid).

    Returns
    -------
    SweepPlan

    Raises
    ------
    mmsim.config.ConfigError
        If the file is missing or not YAML, or an override is malformed.
    GridError
        If the grid is malformed. An invalid *point* does not raise: its :class:`RunSpec`
        carries the validation error and the sweep records it as failed.
    """
    from mmsim.config import apply_overrides

    raw, source = _read_experiment(experiment)
    raw = apply_overrides(raw, list(overrides))
    if str(raw.get("mode", "replay")) != "replay":
        raise GridError(f"{source}: mmsim sweep runs replay experiments only "
                        f"(mode: {raw.get('mode')})")
    raw.pop("mode", None)
    yaml_grid = raw.pop("grid", None)
    raw.setdefault("name", "experiment")
    axes = merge_axes(axes_from_mapping(yaml_grid, source),
                      [parse_grid_arg(g) for g in grid])
    points = expand_grid(axes)
    runs = []
    for i, point in enumerate(points):
        r = copy.deepcopy(raw)
        for k, v in point.items():
            _set_dotted(r, k, v)
        try:
            cfg = config_from_dict(r, source=f"{source} [{_point_label(point)}]")
        except ConfigError as e:
            d = _sha(r)
            runs.append(RunSpec(i, dict(point), d[:RUN_KEY_HEX], None, d, str(e)))
            continue
        cd = cfg.as_dict()
        d = cfg.digest()
        params = {k: _get_dotted(cd, k, v) for k, v in point.items()}
        runs.append(RunSpec(i, params, d[:RUN_KEY_HEX], cd, d))
    _align_invalid_params(runs)
    digest = _sha({"base": raw, "grid": [ax.to_json() for ax in axes]})
    return SweepPlan(str(raw["name"]), source, raw, axes, runs, digest)


def _align_invalid_params(runs: list[RunSpec]) -> None:
    """An invalid point keeps its raw values (``1e5`` is a float there); where every valid
    point's value of a key is an int (an integer field), write the invalid points' integral
    floats as ints too, so the table column keeps one dtype."""
    valid = [r for r in runs if r.config is not None]
    if not valid or len(valid) == len(runs):
        return
    for key in valid[0].params:
        if not all(type(r.params.get(key)) is int for r in valid):
            continue
        for r in runs:
            v = r.params.get(key)
            if r.config is None and isinstance(v, float) and v.is_integer():
                r.params[key] = int(v)


def _point_label(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def default_sweep_dir(plan: SweepPlan) -> Path:
    """``runs/sweep-<name>-<first 10 hex of the hash of base config + grid>``."""
    return Path("runs") / f"sweep-{plan.name}-{plan.digest[:10]}"


# --------------------------------------------------------------------------------------------
# the worker
# --------------------------------------------------------------------------------------------


def run_one(
    config: dict[str, Any],
    run_dir: str,
    data_root: str | None,
    cache_dir: str | None,
) -> tuple[str, str, dict[str, Any], float]:
    """Run one backtest into ``run_dir``; never raises (the executors' task function).

    Parameters
    ----------
    config : dict
        A full, validated config (``ExperimentConfig.as_dict()``).
    run_dir : str
        Run directory (replaced if present: a finished run is never handed to a worker).
    data_root, cache_dir : str or None
        As for :func:`mmsim.backtest`.

    Returns
    -------
    status : str
        ``"ok"`` or ``"failed"``.
    error : str
        ``"ExceptionType: message"`` of a failed run, else ``""``.
    metrics : dict
        The run's metrics (empty if failed).
    wall_s : float
        Wall time of the call, seconds.
    """
    t0 = time.perf_counter()
    try:
        from mmsim.runner import backtest

        res = backtest(config, data_root=data_root, out=run_dir, cache_dir=cache_dir,
                       overwrite=True)
        return STATUS_OK, "", dict(res.metrics), time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - every failure is recorded in the table
        msg = str(e).strip().replace("\n", " | ")
        return STATUS_FAILED, f"{type(e).__name__}: {msg}", {}, time.perf_counter() - t0


def _worker_init() -> None:
    """Pool initializer: import the engine and compile it (or load it from the disk cache)."""
    import mmsim.engine.backtest  # noqa: F401
    from mmsim.engine.nb import compile_engine

    compile_engine()
    import mmsim.metrics  # noqa: F401
    import mmsim.results  # noqa: F401
    import mmsim.runner  # noqa: F401


def _pool_worker_init(environ: dict[str, str] | None = None) -> None:
    """:func:`_worker_init` in a worker process of :class:`LocalExecutor`; what is loaded
    then lives as long as the worker, so it goes to the collector's permanent generation
    (:func:`gc.freeze`): the interpreter's teardown skips it (~0.45 s per worker otherwise,
    which the pool's shutdown waits for).

    ``environ``: the parent's environment when the pool started. A forkserver worker is
    forked from the server, whose environment is the parent's of the server's start (the
    first forkserver pool of the process); it takes the parent's current one instead, as a
    spawned worker does.
    """
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    _worker_init()
    import gc

    gc.freeze()


def _ping() -> int:
    return os.getpid()


def _results(executor, tasks: Sequence[Task], warm_first: bool) -> Iterator[tuple[int, Outcome]]:
    """Outcomes as they complete; with ``warm_first`` the first task runs in this process.

    That first run compiles the engine for the sweep's policy and array types (or loads it
    from the Numba disk cache) and leaves it in the cache, while the workers start and
    import mmsim; they then load the compiled code instead of all compiling it at once.
    """
    rest = list(tasks)
    if warm_first and rest:
        i, args = rest.pop(0)
        yield i, run_one(*args)
    if rest:
        yield from executor.run(rest)


# --------------------------------------------------------------------------------------------
# executors
# --------------------------------------------------------------------------------------------

Task = tuple[int, tuple[dict[str, Any], str, str | None, str | None]]
Outcome = tuple[str, str, dict[str, Any], float]


def _failed(e: BaseException) -> Outcome:
    return STATUS_FAILED, f"{type(e).__name__}: {e}", {}, math.nan


class InlineExecutor:
    """Runs every task in this process, one after the other (``--jobs 0``; for debugging)."""

    workers = 1

    def start(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"kind": "inline", "workers": 1}

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Outcome]]:
        for i, args in tasks:
            yield i, run_one(*args)

    def close(self) -> None:
        pass


#: modules the forkserver imports once, so each worker it forks starts with them loaded
FORKSERVER_PRELOAD = ("mmsim.engine.backtest", "mmsim.metrics", "mmsim.results", "mmsim.runner")


def default_start_method() -> str:
    """The local pool's start method when none is given.

    ``"forkserver"`` where the platform offers it, except on macOS; ``"spawn"`` on macOS and
    Windows (the same choice as Python 3.14's own default). The forkserver imports mmsim
    once (:data:`FORKSERVER_PRELOAD`) and forks each worker from that process, so a worker
    does not import mmsim again (about 0.7 s of CPU each): on a 2-core Linux host a 64-run AMZN
    sweep's 2-worker wall time drops from 11.3-11.8 s to 10.6-11.0 s
    (``benchmarks/bench_sweep.py --start-method``).

    Returns
    -------
    str
        ``"forkserver"`` or ``"spawn"``.
    """
    import multiprocessing

    if sys.platform == "darwin" or "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "forkserver"


class LocalExecutor:
    """A :class:`concurrent.futures.ProcessPoolExecutor` of ``jobs`` processes.

    Parameters
    ----------
    jobs : int
        Worker processes.
    start_method : {"spawn", "forkserver"}, optional
        Default :func:`default_start_method`. ``fork`` is not offered: Numba's and pyarrow's
        threads do not survive it reliably (the forkserver forks from a process that has only
        imported modules, never run a backtest).

    Raises
    ------
    ValueError
        ``jobs < 1``, or a start method other than these two.
    """

    def __init__(self, jobs: int, start_method: str | None = None):
        if start_method is None:
            start_method = default_start_method()
        if jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {jobs}")
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start method must be spawn or forkserver, got '{start_method}'")
        self.workers = jobs
        self.start_method = start_method
        self.pool = None

    def start(self) -> None:
        """Start the worker processes (they import mmsim while the parent warms up)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            ctx.set_forkserver_preload(list(FORKSERVER_PRELOAD))
        env = dict(os.environ) if self.start_method == "forkserver" else None
        self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                        initializer=_pool_worker_init, initargs=(env,))
        for _ in range(self.workers):
            self.pool.submit(_ping)

    def describe(self) -> dict[str, Any]:
        return {"kind": "process_pool", "workers": self.workers,
                "start_method": self.start_method}

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Outcome]]:
        from concurrent.futures import as_completed

        futs = {self.pool.submit(run_one, *args): i for i, args in tasks}
        try:
            for f in as_completed(futs):
                try:
                    out = f.result()
                except Exception as e:  # noqa: BLE001 - e.g. a worker killed
                    out = _failed(e)
                yield futs[f], out
        finally:
            for f in futs:
                f.cancel()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class DaskExecutor:
    """Dask distributed: an existing scheduler (``address``) or a new LocalCluster.

    Parameters
    ----------
    address : str, optional
        ``tcp://HOST:PORT`` of a running scheduler. Its workers must see the same data root,
        cache folder and sweep folder paths (a shared file system).
    n_local : int, optional
        Start a ``LocalCluster`` of that many single-threaded worker processes on 127.0.0.1.
    """

    def __init__(self, address: str | None = None, n_local: int | None = None):
        if (address is None) == (n_local is None):
            raise ValueError("give exactly one of a scheduler address and a local worker count")
        if n_local is not None and n_local < 1:
            raise ValueError(f"--dask-local must be >= 1, got {n_local}")
        self.address = address
        self.n_local = n_local
        self.cluster = None
        self.client = None
        self.workers = n_local or 0
        self._init: list = []

    def start(self) -> None:
        import logging

        from mmsim._extras import require

        distributed = require("dask.distributed", "dask", "a sweep on Dask")
        Client, LocalCluster = distributed.Client, distributed.LocalCluster
        if self.address is None:
            self.cluster = LocalCluster(
                n_workers=self.n_local, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        else:
            self.client = Client(self.address)
        info = self.client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))
        # import mmsim on every worker now, while the parent warms the Numba cache up
        self._init = [self.client.submit(_worker_init, workers=[a], pure=False,
                                         allow_other_workers=False)
                      for a in info["workers"]]

    def describe(self) -> dict[str, Any]:
        return {"kind": "dask", "scheduler": self.address or "LocalCluster(127.0.0.1)",
                "workers": self.workers}

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Outcome]]:
        from dask.distributed import as_completed

        futs = {}
        for i, args in tasks:
            futs[self.client.submit(run_one, *args, pure=False)] = i
        try:
            for f in as_completed(list(futs)):
                try:
                    out = f.result()
                except Exception as e:  # noqa: BLE001 - e.g. KilledWorker
                    out = _failed(e)
                yield futs[f], out
        finally:
            self.client.cancel(list(futs))

    def close(self) -> None:
        if self.client is not None:
            self._init = []
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


def make_executor(
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    start_method: str | None = None,
):
    """The executor for the CLI options: Dask if ``scheduler``/``dask_local``, else a pool.

    ``jobs`` None means ``os.cpu_count()``; ``jobs=0`` runs in this process.
    """
    if scheduler is not None and dask_local is not None:
        raise ValueError("give --scheduler or --dask-local, not both")
    if scheduler is not None or dask_local is not None:
        return DaskExecutor(scheduler, dask_local)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs == 0:
        return InlineExecutor()
    return LocalExecutor(jobs, start_method)


# --------------------------------------------------------------------------------------------
# finished runs and the table
# --------------------------------------------------------------------------------------------


def finished_run(run_dir: Path, digest: str | None = None) -> dict[str, Any] | None:
    """The metrics of a finished run in ``run_dir``, or None if it is not finished.

    Finished is what :func:`mmsim.results.check_run` checks (a complete manifest for the
    config digest ``digest`` if given, ``metrics.json``, ``config.yaml`` and the three
    Parquet logs with readable footers — what :func:`mmsim.results.load` needs, without
    reading the logs).
    """
    from mmsim.results import check_run

    try:
        check_run(run_dir, digest)
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(metrics, dict):
        return None
    return {k: (math.nan if v is None else v) for k, v in metrics.items()}


def _replay_s(run_dir: Path) -> float:
    try:
        return float(json.loads((run_dir / "timing.json").read_text())["replay_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return math.nan


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclass
class _Row:
    status: str = STATUS_PENDING
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_s: float = math.nan
    replay_s: float = math.nan
    cached: bool = False


def build_table(plan: SweepPlan, rows: dict[str, _Row]):
    """The sweep table (pandas) of ``plan`` with the outcomes ``rows`` (by run key)."""
    import pandas as pd

    pcols = plan.param_columns
    metric_cols: list[str] = []
    seen: set[str] = set()
    for r in rows.values():
        for k in _flatten(r.metrics):
            if k not in seen:
                seen.add(k)
                metric_cols.append(k)
    reserved = set(FIXED_COLUMNS) | set(pcols)
    recs = []
    for spec in plan.runs:
        row = rows.get(spec.key, _Row())
        rec: dict[str, Any] = {"run_key": spec.key}
        for c in pcols:
            rec[c] = spec.params.get(c)
        rec.update({
            "status": row.status,
            "error": row.error,
            "run_dir": f"{RUNS_DIR}/{spec.key}",
            "cached": bool(row.cached),
            "wall_s": row.wall_s,
            "replay_s": row.replay_s,
        })
        m = _flatten(row.metrics)
        for c in metric_cols:
            rec[f"metric.{c}" if c in reserved else c] = m.get(c, math.nan)
        recs.append(rec)
    cols = ["run_key", *pcols, *FIXED_COLUMNS[1:]]
    cols += [f"metric.{c}" if c in reserved else c for c in metric_cols]
    return pd.DataFrame.from_records(recs, columns=cols)


def _to_arrow(df):
    """pandas → Arrow; a column of mixed types (numbers and strings) becomes strings, and a
    column of mappings (a whole section swept by a named axis) becomes JSON text (sorted
    keys): Parquet has no struct without fields (``data.synthetic: {}``) and a struct over
    sections of different shapes would be mostly nulls."""
    import pyarrow as pa

    arrays, names = [], []
    for c in df.columns:
        s = df[c]
        if any(isinstance(v, dict) for v in s.tolist()):
            s = s.map(lambda v: v if v is None or isinstance(v, str) else
                      json.dumps(v, sort_keys=True, default=str))
        try:
            a = pa.array(s.tolist(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            a = pa.array([None if v is None else str(v) for v in s.tolist()], pa.string())
        if pa.types.is_null(a.type):
            a = a.cast(pa.float64())
        arrays.append(a)
        names.append(str(c))
    return pa.Table.from_arrays(arrays, names=names)


def _atomic_write(path: Path, write) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, fsynced and renamed over it."""
    from mmsim.data.store import atomic_file

    with atomic_file(path) as tmp:
        write(tmp)


def write_table(df, sweep_dir: Path) -> Path:
    """Write ``df`` to ``<sweep_dir>/sweep.parquet`` atomically (temp file + rename)."""
    import pyarrow.parquet as pq

    path = sweep_dir / TABLE_FILE
    table = _to_arrow(df)
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return path


def _write_meta(meta: dict[str, Any], sweep_dir: Path) -> None:
    path = sweep_dir / META_FILE
    text = json.dumps(meta, indent=1, default=str) + "\n"
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text))


# --------------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """A sweep's folder, its table (pandas, ``run_dir`` absolute) and ``sweep.json``."""

    sweep_dir: Path
    table: Any
    meta: dict[str, Any]

    @property
    def counts(self) -> dict[str, int]:
        """Rows per status, and ``cached`` (finished before this invocation)."""
        return dict(self.meta["counts"])


def _resolve_datasets(plan_runs: Iterable[RunSpec], data_root, cache_dir) -> float:
    """Ingest/generate each distinct dataset once, here, before the workers need it (the
    quoted instrument's and those of ``instruments``)."""
    from mmsim.data.sources import dataset_for_config, datasets_for_config

    t0 = time.perf_counter()
    done: set[str] = set()
    for spec in plan_runs:
        if spec.config is None:
            continue
        data = spec.config["data"]
        k = _sha({"data": data, "seed": spec.config.get("seed") if data.get("kind") ==
                  "synthetic" else None})
        others = [o for o in spec.config.get("instruments") or [] if isinstance(o, dict)]
        ko = _sha({"others": [(o.get("data"), o.get("instrument")) for o in others],
                   "seed": spec.config.get("seed")})
        todo = [(key, fn) for key, fn in ((k, dataset_for_config),
                                          (ko if others else None, datasets_for_config))
                if key is not None and key not in done]
        for key, fn in todo:
            done.add(key)
            try:
                fn(config_from_dict(spec.config), data_root, cache_dir)
            except Exception:  # noqa: BLE001 - the runs using it report the error
                pass
    return time.perf_counter() - t0


def run_sweep(
    experiment: str | os.PathLike | dict[str, Any],
    *,
    grid: Sequence[str] = (),
    overrides: Sequence[str] = (),
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    start_method: str | None = None,
    max_runs: int | None = None,
    progress: bool = True,
    table_every_s: float = 10.0,
) -> SweepResult:
    """Run a parameter sweep; resumable (finished runs are skipped).

    Parameters
    ----------
    experiment : path to a YAML file, or a raw config mapping
    grid, overrides : list of str
        ``--grid KEY=VALUES`` and ``--set key=value`` arguments (see :func:`plan_sweep`).
    data_root, cache_dir : path, optional
        As for :func:`mmsim.backtest`; resolved to absolute paths for the workers.
    out : path, optional
        Sweep folder (default :func:`default_sweep_dir`): absent, empty, or a sweep folder
        mmsim wrote (resumed); locked while the sweep runs.
    jobs : int, optional
        Local worker processes (default ``os.cpu_count()``; 0 runs in this process).
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a Dask scheduler.
    dask_local : int, optional
        Start a Dask ``LocalCluster`` with that many worker processes.
    start_method : {"spawn", "forkserver"}, optional
        Process start method of the local pool; default :func:`default_start_method`
        (forkserver on Linux, spawn on macOS and Windows).
    max_runs : int, optional
        Run at most that many of the unfinished runs, leave the rest ``pending``.
    progress : bool
        Show a tqdm bar (runs done, failed, ETA) on stderr.
    table_every_s : float
        Rewrite the table at most this often while the sweep runs.

    Returns
    -------
    SweepResult

    Raises
    ------
    mmsim.config.ConfigError, GridError
        If the experiment or the grid is malformed (an invalid *point* is recorded as a
        failed run instead). A run that raises is recorded with its error and the sweep goes
        on. ``KeyboardInterrupt`` writes the table (unfinished runs ``pending``) and is
        re-raised.
    mmsim.results.OutputLockedError
        If another sweep is writing the same folder (checked before any work).
    mmsim.results.OutputError
        If the sweep folder exists and is neither empty nor a sweep folder mmsim wrote, or
        is a file (checked before any work; nothing is written).
    """
    from mmsim.results import claim_output

    t_start = time.perf_counter()
    plan = plan_sweep(experiment, grid, overrides)
    sweep_dir = Path(out) if out else default_sweep_dir(plan)
    # before any work: the folder must be absent, empty or an mmsim sweep folder, and no
    # other sweep may write it at the same time (released when this call returns)
    claim = claim_output(sweep_dir, "sweep")
    try:
        return _run_claimed(plan, sweep_dir, t_start, grid, overrides, data_root, cache_dir,
                            jobs, scheduler, dask_local, start_method, max_runs, progress,
                            table_every_s)
    finally:
        claim.release()


def _run_claimed(plan, sweep_dir, t_start, grid, overrides, data_root, cache_dir, jobs,
                 scheduler, dask_local, start_method, max_runs, progress,
                 table_every_s) -> SweepResult:
    """:func:`run_sweep` once the sweep folder is claimed."""
    from mmsim import __version__
    from mmsim.data.sources import cache_dir_from, data_root_from

    runs_dir = sweep_dir / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    root = str(data_root_from(data_root).resolve())
    cache = str(cache_dir_from(cache_dir).resolve())

    prev_wall: dict[str, float] = {}
    if (sweep_dir / TABLE_FILE).is_file():
        try:
            old = _read_table(sweep_dir)
            prev_wall = dict(zip(old["run_key"], old["wall_s"], strict=True))
        except Exception:  # noqa: BLE001 - an unreadable old table is replaced
            prev_wall = {}

    rows: dict[str, _Row] = {}
    todo: list[RunSpec] = []
    for spec in plan.runs:
        if spec.key in rows:
            continue  # two points with the same config share one run
        if spec.config is None:
            rows[spec.key] = _Row(STATUS_FAILED, spec.error)
            continue
        rd = runs_dir / spec.key
        m = finished_run(rd, spec.digest)
        if m is not None:
            rows[spec.key] = _Row(STATUS_OK, "", m, float(prev_wall.get(spec.key, math.nan)),
                                  _replay_s(rd), cached=True)
            continue
        rows[spec.key] = _Row()
        # a half-written run of this sweep (inside the claimed sweep folder, so mmsim's):
        # removed here, so the worker's RunWriter finds its target absent
        for stale in (rd, rd.with_name(rd.name + ".partial")):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
        todo.append(spec)
    n_cached = sum(r.cached for r in rows.values())
    if max_runs is not None:
        todo = todo[: max(0, int(max_runs))]

    executor = make_executor(jobs, scheduler, dask_local, start_method) if todo else None
    meta: dict[str, Any] = {
        "mmsim_version": __version__,
        "name": plan.name,
        "experiment": plan.source,
        "status": "running",
        "sweep_digest": plan.digest,
        "axes": [ax.to_json() for ax in plan.axes],
        "params": plan.param_columns,
        "grid_args": list(grid),
        "overrides": list(overrides),
        "base_config": plan.base,
        "data_root": root,
        "cache_dir": cache,
        "n_points": len(plan.runs),
        "n_runs": len(rows),
        "executor": executor.describe() if executor else {"kind": "none"},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_meta(meta, sweep_dir)
    write_table(build_table(plan, rows), sweep_dir)

    timing: dict[str, Any] = {}
    status = "complete"
    try:
        if todo:
            from mmsim._jitcache import engine_is_cached

            if not engine_is_cached():
                # compile the engine here first: it is in the disk cache before the workers
                # load it (cached, this process does not need it: the workers start at once)
                _worker_init()
            executor.start()
            t_prep = time.perf_counter()
            timing["datasets_s"] = round(_resolve_datasets(todo, root, cache), 4)
            # the first run goes in the parent only when the engine still has to compile:
            # with it cached, the workers load it and a serial first run would idle them
            warm_first = (not isinstance(executor, InlineExecutor) and len(todo) > 1
                          and not engine_is_cached())
            meta["executor"] = dict(executor.describe(), first_run_in_parent=warm_first)
            timing["prepare_s"] = round(time.perf_counter() - t_prep, 4)
            tasks = [(i, (s.config, str((runs_dir / s.key).resolve()), root, cache))
                     for i, s in enumerate(todo)]
            t_run = time.perf_counter()
            _drive(_results(executor, tasks, warm_first), len(tasks), todo, rows, runs_dir,
                   progress, n_cached, lambda: write_table(build_table(plan, rows), sweep_dir),
                   table_every_s)
            timing["dispatch_s"] = round(time.perf_counter() - t_run, 4)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if executor is not None:
            executor.close()
        df = build_table(plan, rows)
        write_table(df, sweep_dir)
        done = [rows[s.key] for s in todo if rows[s.key].status != STATUS_PENDING]
        ok = [r for r in done if r.status == STATUS_OK]
        timing["total_s"] = round(time.perf_counter() - t_start, 4)
        timing["n_executed"] = len(done)
        timing["sum_wall_s"] = round(sum(r.wall_s for r in done if r.wall_s == r.wall_s), 4)
        timing["sum_replay_s"] = round(sum(r.replay_s for r in ok if r.replay_s == r.replay_s),
                                       4)
        if ok:
            # worker side: a run's wall time minus the engine's replay time
            over = sorted(r.wall_s - r.replay_s for r in ok)
            timing["overhead_per_run_s"] = round(sum(over) / len(over), 4)
            timing["overhead_per_run_median_s"] = round(over[len(over) // 2], 4)
        if done and "dispatch_s" in timing:
            w = meta["executor"].get("workers", 1) or 1
            # sweep side: worker-seconds of the dispatch not spent replaying, per run
            timing["sweep_overhead_per_run_s"] = round(
                (timing["dispatch_s"] * w - timing["sum_replay_s"]) / len(done), 4)
        counts = {s: int((df["status"] == s).sum())
                  for s in (STATUS_OK, STATUS_FAILED, STATUS_PENDING)}
        counts["cached"] = n_cached
        counts["executed"] = len(done)
        if status == "complete" and counts[STATUS_PENDING]:
            status = "partial"
        meta.update(status=status, counts=counts, timing=timing,
                    finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        _write_meta(meta, sweep_dir)
    return SweepResult(sweep_dir, _absolute_run_dirs(df, sweep_dir), meta)


def _drive(results, n_tasks, todo, rows, runs_dir, progress, n_cached, flush, every_s) -> None:
    """Collect outcomes as they complete; update rows, the progress bar and the table."""
    from tqdm import tqdm

    n_done = n_failed = 0
    bar = tqdm(total=n_tasks, desc="sweep", unit="run", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    bar.set_postfix(done=0, failed=0, skipped=n_cached)
    last = time.perf_counter()
    try:
        for i, (st, err, metrics, wall) in results:
            spec = todo[i]
            rows[spec.key] = _Row(st, err, metrics, float(wall),
                                  _replay_s(runs_dir / spec.key) if st == STATUS_OK else math.nan)
            n_done += 1
            n_failed += st != STATUS_OK
            bar.set_postfix(done=n_done, failed=n_failed, skipped=n_cached, refresh=False)
            bar.update(1)
            if time.perf_counter() - last > every_s:
                flush()
                last = time.perf_counter()
    finally:
        bar.close()


def _read_table(sweep_dir: Path):
    import pandas as pd

    return pd.read_parquet(sweep_dir / TABLE_FILE)


def _absolute_run_dirs(df, sweep_dir: Path):
    df = df.copy()
    base = Path(sweep_dir).resolve()
    df["run_dir"] = [str(base / p) for p in df["run_dir"]]
    return df


def load_meta(sweep_dir: str | os.PathLike) -> dict[str, Any]:
    """``sweep.json`` of a sweep folder.

    Raises
    ------
    FileNotFoundError
        If the folder holds no ``sweep.json``.
    """
    p = Path(sweep_dir) / META_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{sweep_dir}: not a sweep folder (no {META_FILE})")
    return json.loads(p.read_text())


def format_summary(res: SweepResult, metric: str = "pnl", top: int = 5) -> str:
    """A few lines of text: counts, timing, overhead and the best runs by ``metric`` (the
    default ``pnl`` means ``book_pnl``, the whole book's, for runs of several instruments)."""
    m, c = res.meta, res.counts
    t = m.get("timing", {})
    ex = m.get("executor", {})
    lines = [
        f"sweep {m['name']}: {m['n_points']} points, {m['n_runs']} runs — {c['ok']} ok, "
        f"{c['failed']} failed, {c['pending']} pending ({c['cached']} already finished, "
        f"{c['executed']} run now)",
        f"executor: {ex.get('kind')} ({ex.get('workers', '?')} workers); "
        f"wall {t.get('total_s', 0):.2f} s",
    ]
    if "overhead_per_run_s" in t:
        lines.append(
            f"per-run overhead: {t['overhead_per_run_s']:.3f} s in the worker (wall − replay)"
            + (f", {t['sweep_overhead_per_run_s']:.3f} s per run overall"
               if "sweep_overhead_per_run_s" in t else "")
        )
    df = res.table
    failed = df[df["status"] == STATUS_FAILED]
    for _, r in failed.head(3).iterrows():
        lines.append(f"failed {r['run_key']}: {r['error'][:160]}")
    if len(failed) > 3:
        lines.append(f"... {len(failed) - 3} more failed runs (see the table)")
    if metric == "pnl" and "book_pnl" in df.columns and df["book_pnl"].notna().any():
        metric = "book_pnl"  # several instruments: rank by the whole book
    if metric in df.columns:
        ok = df[df["status"] == STATUS_OK].sort_values(metric, ascending=False).head(top)
        if len(ok):
            cols = ["run_key", *m.get("params", []), metric]
            lines.append(f"best by {metric}:")
            lines.append(ok[cols].to_string(index=False))
    lines.append(f"table: {res.sweep_dir / TABLE_FILE}")
    return "\n".join(lines)
