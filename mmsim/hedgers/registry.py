"""Hedger registry: name → numba kernel (``HEDGER_SIG``), declared parameters, initial state.

Parameters are declared as :class:`mmsim.policies.registry.Param` (default, type, range,
unit) and checked when the experiment is loaded. Kernels are imported on first use of
``spec.kernel``: importing this module compiles nothing.
"""

from __future__ import annotations

import math

from mmsim.config import show_value
from mmsim.enums import TimeInForce
from mmsim.policies.registry import KernelSpec, Param, UnknownKernelError

_HEDGERS: dict[str, KernelSpec] = {}


def register_hedger(spec: KernelSpec) -> None:
    """Add a hedger to the registry (by ``spec.name`` and its aliases)."""
    for n in (spec.name, *spec.aliases):
        _HEDGERS[n] = spec


def get_hedger(name: str) -> KernelSpec:
    """Look up a hedger by name (or alias).

    Raises
    ------
    mmsim.policies.registry.UnknownKernelError
        (a ConfigError and a KeyError) If no hedger has that name; the message lists the
        known ones.
    """
    try:
        return _HEDGERS[name]
    except (KeyError, TypeError):
        raise UnknownKernelError(
            f"unknown hedger {show_value(name)} (known: {', '.join(hedger_names())})"
        ) from None


def hedger_names() -> list[str]:
    """The registered hedger names (aliases left out), sorted."""
    return sorted({s.name for s in _HEDGERS.values()})


_K = "mmsim.hedgers.nb:"

register_hedger(KernelSpec("none", _K + "no_hedger_nb", {}, doc="Never hedges."))
register_hedger(
    KernelSpec(
        "threshold",
        _K + "threshold_hedger_nb",
        {
            "threshold": Param(None, "lots", "hedge once |position − target| exceeds this",
                               ge=0),
            "ratio": Param(1.0, "", "share of the excess hedged", gt=0, le=1),
            "min_qty": Param(1.0, "lots", "smaller hedges wait up to max_wait_s", ge=0),
            "max_wait_s": Param(60.0, "s", "then a small hedge goes anyway", ge=0),
            "tif": Param(float(TimeInForce.MARKET), "", "hedge order type",
                         choices=(("market", float(TimeInForce.MARKET)),
                                  ("ioc", float(TimeInForce.IOC)))),
            "slippage_ticks": Param(0.0, "ticks", "IOC limit: this far through the touch",
                                    ge=0),
        },
        state_init=(math.nan,),
        doc="Threshold delta hedger of seed 001.",
    )
)
