"""The scorecard's chart: predicted against true time-to-fill, per model (MODELS.md §13).

Needs matplotlib (the ``report`` extra, :mod:`mmsim._extras`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mmsim.queue_score.nb import NO_TS

__all__ = ["check_plotting", "plot_time_to_fill"]


def _plt():
    from mmsim._extras import require

    matplotlib = require("matplotlib", "report", "mmsim queue-score's chart")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def check_plotting() -> None:
    """Raise :class:`mmsim._extras.MissingExtraError` now (before any work) if matplotlib is
    missing."""
    _plt()


def _ttf(probes: np.ndarray, res: np.ndarray) -> np.ndarray:
    out = np.full(len(res), np.inf)
    f = res["first_fill_ts"] != NO_TS
    out[f] = (res["first_fill_ts"][f] - probes["place_ts"][f]) / 1e9
    return out


def plot_time_to_fill(probes: np.ndarray, truth: np.ndarray,
                      estimates: dict[str, np.ndarray], path: str | Path,
                      title: str = "time to fill") -> Path:
    """Write a PNG of the time-to-fill distributions: the truth's and each model's.

    Top: the share of probes filled within ``x`` seconds of placement (log ``x``; each curve
    ends at its share filled by the end of the data), the L3 truth in black. Below, one
    panel per model: predicted against true time to fill of the probes filled under both
    (log–log; on the diagonal the model is right, below it the model fills too early).

    Parameters
    ----------
    probes : PROBE_DTYPE[m]
    truth : PROBE_RESULT_DTYPE[m]
    estimates : dict of str to PROBE_RESULT_DTYPE[m]
    path : path
        The PNG to write.
    title : str

    Returns
    -------
    Path

    Raises
    ------
    mmsim._extras.MissingExtraError
        Without matplotlib.
    """
    plt = _plt()
    path = Path(path)
    t_true = _ttf(probes, truth)
    k = max(1, len(estimates))
    ncol = min(k, 5)
    nrow = 1 + math.ceil(k / ncol)
    fig = plt.figure(figsize=(3.2 * ncol + 1, 3.0 * nrow + 0.6))
    gs = fig.add_gridspec(nrow, ncol)
    ax = fig.add_subplot(gs[0, :])
    finite = t_true[np.isfinite(t_true)]
    pos = [x for x in (finite[finite > 0], *[v[(v > 0) & np.isfinite(v)] for v in
           (_ttf(probes, r) for r in estimates.values())]) if x.size]
    lo = max(1e-6, min(float(x.min()) for x in pos)) if pos else 1e-3
    hi = max(float(x.max()) for x in pos) if pos else 1.0
    grid = np.logspace(math.log10(lo), math.log10(max(hi, lo * 10)), 400)
    m = max(1, len(t_true))

    def ecdf(t):
        s = np.sort(t[np.isfinite(t)])
        return np.searchsorted(s, grid, side="right") / m

    ax.plot(grid, ecdf(t_true), color="black", lw=2.4, label="L3 truth (FIFO)")
    for label, res in estimates.items():
        ax.plot(grid, ecdf(_ttf(probes, res)), lw=1.3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("time to first fill after placement (s)")
    ax.set_ylabel("share of probes filled")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title)
    for i, (label, res) in enumerate(estimates.items()):
        a = fig.add_subplot(gs[1 + i // ncol, i % ncol])
        t_m = _ttf(probes, res)
        both = np.isfinite(t_true) & np.isfinite(t_m)
        x = np.maximum(t_true[both], lo)
        y = np.maximum(t_m[both], lo)
        a.scatter(x, y, s=4, alpha=0.35, color="tab:blue", linewidths=0)
        a.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlim(lo, hi * 1.5)
        a.set_ylim(lo, hi * 1.5)
        a.set_title(f"{label} ({int(both.sum())} filled under both)", fontsize=9)
        a.set_xlabel("true (s)", fontsize=8)
        if i % ncol == 0:
            a.set_ylabel("model (s)", fontsize=8)
        a.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
