"""Hedger registry: name → numba kernel (``HEDGER_SIG``), parameters and initial state."""

from __future__ import annotations

import math

from mmsim.enums import TimeInForce
from mmsim.hedgers import nb as hnb
from mmsim.policies.registry import KernelSpec

_HEDGERS: dict[str, KernelSpec] = {}


def register_hedger(spec: KernelSpec) -> None:
    """Add a hedger to the registry."""
    for n in (spec.name, *spec.aliases):
        _HEDGERS[n] = spec


def get_hedger(name: str) -> KernelSpec:
    """Look up a hedger by name.

    Raises
    ------
    KeyError
        If no hedger has that name (the message lists the known ones).
    """
    try:
        return _HEDGERS[name]
    except KeyError:
        raise KeyError(f"unknown hedger '{name}'; known: {sorted(_HEDGERS)}") from None


register_hedger(KernelSpec("none", hnb.no_hedger_nb, {}))
register_hedger(
    KernelSpec(
        "threshold",
        hnb.threshold_hedger_nb,
        {
            "threshold": None,
            "ratio": 1.0,
            "min_qty": 1.0,
            "max_wait_s": 60.0,
            "tif": float(TimeInForce.MARKET),
            "slippage_ticks": 0.0,
        },
        state_init=(math.nan,),
        doc="Threshold delta hedger of seed 001.",
    )
)
