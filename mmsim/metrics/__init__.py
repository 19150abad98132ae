"""Backtest metrics from the market maker's side (MODELS.md §9)."""

from mmsim.metrics.metrics import (
    DEFAULT_MARKOUT_HORIZONS_S,
    compute_metrics,
    horizon_label,
    markout_table,
)

__all__ = ["DEFAULT_MARKOUT_HORIZONS_S", "compute_metrics", "horizon_label", "markout_table"]
