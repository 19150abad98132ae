"""Declarations of the built-in hedgers: parameters, state layouts, error codes (no numba).

The single source of each hedger's ``params`` and ``state`` layout (:mod:`mmsim.kernels`):
:mod:`mmsim.hedgers.registry` registers the specs declared here, and the kernels in
:mod:`mmsim.hedgers.nb` read their arrays through the index constants declared here
(``params[TH.threshold]``, ``state[TS.since_s]``), folded by numba at compile time.

Index constants: ``TH`` (params of ``threshold_hedger_nb``), ``TS`` (its state), ``XH``
(params of ``cross_delta_hedger_nb``, whose state is ``TS`` too).
"""

from __future__ import annotations

import math

from mmsim.enums import TimeInForce
from mmsim.kernels import KernelSpec, Layout, Param, Params, Slot

_K = "mmsim.hedgers.nb:"

NONE = KernelSpec("none", _K + "no_hedger_nb", Params("NoHedgerParams"), doc="Never hedges.",
                  kind="hedger", reads_depth=False)

# ---- threshold delta hedger (seed 001) -------------------------------------------------------
#: the order parameters both threshold hedgers share
_RATIO = Param(1.0, "", "share of the excess hedged", gt=0, le=1)
_ORDER = {
    "max_wait_s": Param(60.0, "s", "then a small hedge goes anyway", ge=0),
    "tif": Param.choice(TimeInForce, "market", "hedge order type (fok: all or nothing)",
                        allowed=("market", "ioc", "fok")),
    "slippage_ticks": Param(0.0, "ticks", "IOC/FOK limit: this far through the touch", ge=0),
}
TH_PARAMS = Params(
    "ThresholdHedgerParams",
    threshold=Param(None, "lots", "hedge once |position − target| exceeds this", ge=0),
    ratio=_RATIO,
    min_qty=Param(1.0, "lots", "smaller hedges wait up to max_wait_s", ge=0),
    **_ORDER,
)
TH = TH_PARAMS.index
TS_LAYOUT = Layout(
    "ThresholdHedgerState",
    since_s=Slot(init=math.nan, unit="s",
                 doc="local time the current excess began (NaN = no excess)"),
)
TS = TS_LAYOUT.index
THRESHOLD = KernelSpec(
    "threshold", _K + "threshold_hedger_nb", TH_PARAMS, state=TS_LAYOUT,
    doc="Threshold delta hedger of seed 001.", kind="hedger",
    reads_depth=False,
)

# ---- cross-instrument delta hedger (seed 001, MODELS.md §12) ----------------------------------
XH_PARAMS = Params(
    "CrossDeltaHedgerParams",
    instrument=Param(1.0, "index", "the instrument hedged on (a name in the YAML: "
                     "instruments[*].name)", ge=0, le=3, integer=True),
    beta=Param(1.0, "", "hedge ratio between the underlyings: Δ = Δ_quoted + β·Δ_hedge",
               gt=0),
    threshold=Param(None, "underlying units", "hedge once |Δ − target| exceeds this (target: "
                    "risk.target_position_qty of the quoted instrument)", ge=0),
    ratio=_RATIO,
    min_qty=Param(0.0, "underlying units", "smaller hedges wait up to max_wait_s", ge=0),
    **_ORDER,
)
XH = XH_PARAMS.index
CROSS_DELTA = KernelSpec(
    "cross_delta", _K + "cross_delta_hedger_nb", XH_PARAMS, state=TS_LAYOUT,
    doc="Delta hedge of the quoted instrument on another one (seed 001, MODELS.md §12).",
    kind="hedger",
    reads_depth=False,
)

#: every built-in hedger, in registration order
BUILTIN_HEDGERS = (NONE, THRESHOLD, CROSS_DELTA)
