"""Backtest metrics from the market maker's side (MODELS.md §9); runs of several instruments
(MODELS.md §12): :func:`compute_run_metrics` and :func:`book_equity`."""

from mmsim.metrics.book import book_equity, compute_run_metrics, instrument_rows
from mmsim.metrics.metrics import (
    DEFAULT_MARKOUT_HORIZONS_S,
    compute_metrics,
    horizon_label,
    markout_table,
)

__all__ = ["DEFAULT_MARKOUT_HORIZONS_S", "book_equity", "compute_metrics",
           "compute_run_metrics", "horizon_label", "instrument_rows", "markout_table"]
