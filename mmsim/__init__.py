"""mmsim: event-driven market-making backtests on real order-book data.

Quick use::

    import mmsim
    run = mmsim.backtest("experiments/default.yaml")
    run.fills, run.orders, run.equity, run.metrics

or load a run directory written earlier with ``mmsim.results.load(run_dir)``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "backtest", "load"]


def __getattr__(name):  # lazy: importing mmsim must not compile numba kernels
    if name == "backtest":
        from mmsim.runner import backtest

        return backtest
    if name == "load":
        from mmsim.results import load

        return load
    if name == "results":
        import importlib

        return importlib.import_module("mmsim.results")
    raise AttributeError(name)
