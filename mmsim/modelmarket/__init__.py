"""Model-market mode: a simulated mid and Poisson fills driving the same policy kernels as the
replay engine (Avellaneda & Stoikov 2008, §3.3; MODELS.md §1).

``run_experiment("experiments/as2008.yaml")`` runs a ``mode: model_market`` YAML and returns a
:class:`ModelMarketResult` (``table``, ``markdown``, ``run_dir``); :func:`run_paths` simulates
one policy on many paths. Numba kernels live in :mod:`mmsim.modelmarket.nb`; importing this
package does not compile them.
"""

from __future__ import annotations

__all__ = ["ModelMarketResult", "PathResults", "run_experiment", "run_paths"]


def __getattr__(name):  # lazy: importing the package must not compile numba kernels
    if name in __all__:
        from mmsim.modelmarket import run

        return getattr(run, name)
    raise AttributeError(name)
