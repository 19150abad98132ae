"""mmsim: event-driven market-making backtests on real order-book data.

Quick use::

    import mmsim
    run = mmsim.backtest("experiments/default.yaml")
    run.fills, run.orders, run.equity, run.metrics

or load a run directory written earlier with ``mmsim.load(run_dir)`` (``datetimes=True`` for
tz-aware timestamps and categorical names). ``dir(mmsim)`` lists the API; every name is
imported on first use (importing mmsim compiles nothing).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: the public API: name -> (module, attribute)
_API = {
    "backtest": ("mmsim.runner", "backtest"),
    "load": ("mmsim.results", "load"),
    "load_sweep": ("mmsim.results", "load_sweep"),
    "RunResult": ("mmsim.results", "RunResult"),
    "run_sweep": ("mmsim.sweep", "run_sweep"),
    "load_config": ("mmsim.config", "load_config"),
    "Instrument": ("mmsim.instruments", "Instrument"),
    "compute_metrics": ("mmsim.metrics", "compute_metrics"),
    "compute_run_metrics": ("mmsim.metrics", "compute_run_metrics"),
    "format_summary": ("mmsim.summary", "format_summary"),
    "policy": ("mmsim.custom", "policy"),
    "hedger": ("mmsim.custom", "hedger"),
    "make_ctx": ("mmsim.custom", "make_ctx"),
    "read_ctx": ("mmsim.custom", "read_ctx"),
    "register_policy": ("mmsim.policies.registry", "register_policy"),
    "policy_names": ("mmsim.policies.registry", "policy_names"),
    "register_hedger": ("mmsim.hedgers.registry", "register_hedger"),
    "hedger_names": ("mmsim.hedgers.registry", "hedger_names"),
}
#: submodules reachable as attributes (``mmsim.results``)
_MODULES = ("results", "metrics", "config", "instruments", "enums", "dtypes", "contracts",
            "kernels", "sweep", "report", "summary", "data")

__all__ = ["__version__", "default_experiment", *_API]


def default_experiment():
    """Path of the embedded default experiment (synthetic data: runs anywhere), installed
    with the package (``mmsim/experiments/default.yaml``; ``mmsim backtest`` without an
    experiment runs it)."""
    from importlib.resources import files

    return files("mmsim") / "experiments" / "default.yaml"


def __getattr__(name):  # lazy: importing mmsim must not compile numba kernels
    if name in _API:
        mod, attr = _API[name]
        return getattr(importlib.import_module(mod), attr)
    if name in _MODULES:
        return importlib.import_module(f"mmsim.{name}")
    raise AttributeError(f"module 'mmsim' has no attribute {name!r}")


def __dir__():
    return sorted([*__all__, *_MODULES])
