"""Declarations of the built-in policies: parameters, state layouts, error codes (no numba).

The single source of each policy's ``params`` and ``state`` layout (:mod:`mmsim.kernels`):
:mod:`mmsim.policies.registry` registers the :class:`~mmsim.kernels.KernelSpec` objects
declared here, and the kernels in :mod:`mmsim.policies.nb` read their arrays through the index
constants declared here (``params[AS.gamma]``, ``state[GS.A]``), which numba folds at compile
time. The models themselves (papers, equations) are documented on the kernels.

Index constants (``NamedTuple`` instances of ints):

=====  ==========================================  ==========================================
name   array                                       kernel
=====  ==========================================  ==========================================
FS     params                                      ``fixed_spread_nb``
AS     params                                      ``avellaneda_stoikov_nb``
ST     params                                      ``static_quotes_nb``
SY     params                                      ``symmetric_nb``
GL     params                                      ``glft_nb``
GC     params                                      ``glft_calibrated_nb``
GS     state                                       ``glft_calibrated_nb``
GR     one interval record of the ring in state    ``glft_calibrated_nb``
OT     params                                      ``offset_ticks_nb``
=====  ==========================================  ==========================================
"""

from __future__ import annotations

from typing import NamedTuple

from mmsim.kernels import KernelSpec, Layout, Param, Params, Slot


class _Ref(NamedTuple):
    """Reference price a policy quotes around (the ``ref`` parameter; MODELS.md §4).

    MID
        ``(best bid + best ask) / 2``.
    WMID
        Size-weighted mid ``(V_ask·P_bid + V_bid·P_ask) / (V_bid + V_ask)``
        (:data:`mmsim.contracts.Ctx` ``WMID_TICK``).
    MICRO
        Stoikov (2018) micro-price ``mid + G(I, S)`` (MODELS.md §11), from the signals layer
        (``ctx[Ctx.SIGNALS0 + SignalCtx.MICRO_TICK]``); needs a ``signals:`` section with a
        ``microprice_table`` (checked when the run is resolved). NaN (no quote) where the
        table has no value for the book's imbalance and spread.
    """

    MID: int = 0
    WMID: int = 1
    MICRO: int = 2


Ref = _Ref()

_K = "mmsim.policies.nb:"


def _order_qty(default: float = 1.0) -> Param:
    return Param(default, "lots", "size of each quote", integer=True, ge=1)


def _ref() -> Param:
    return Param.choice(Ref, "mid", "reference price: mid, size-weighted mid (wmid) or "
                        "Stoikov micro-price (micro: needs signals.microprice_table)")


def _gamma(unit: str) -> Param:
    return Param(None, unit, "risk aversion", gt=0)


def _k() -> Param:
    return Param(None, "1/price", "decay of the fill intensity with depth", gt=0)


def _sigma_px() -> Param:
    return Param(0.0, "price/√s", "volatility; 0 = the engine's online estimate", ge=0)


# ---- fixed spread with inventory skew (MODELS.md §4) ----------------------------------------
FS_PARAMS = Params(
    "FixedSpreadParams",
    spread_bps=Param(None, "bps", "full spread around the reference price", ge=0, lt=20_000),
    skew_px=Param(0.0, "price per order of inventory",
                  "both quotes move down by skew_px per order held", ge=0),
    order_qty=_order_qty(),
    ref=_ref(),
)
FS = FS_PARAMS.index
FIXED_SPREAD = KernelSpec(
    "fixed_spread", _K + "fixed_spread_nb", FS_PARAMS,
    doc="Fixed spread in bps around the mid with linear inventory skew (MODELS.md §4).",
    reads_depth=False,
)

# ---- Avellaneda–Stoikov (2008) (MODELS.md §1) -----------------------------------------------
AS_PARAMS = Params(
    "AvellanedaStoikovParams",
    gamma=_gamma("1/(price·order)"),
    k=_k(),
    sigma_px=_sigma_px(),
    order_qty=_order_qty(),
    tau_s=Param(3600.0, "s", "T − t when the run has no horizon", ge=0),
    ref=_ref(),
)
AS = AS_PARAMS.index
AVELLANEDA_STOIKOV = KernelSpec(
    "avellaneda_stoikov", _K + "avellaneda_stoikov_nb", AS_PARAMS,
    doc="Avellaneda & Stoikov (2008) reservation price and optimal spread (MODELS.md §1).",
    aliases=("as",),
    reads_depth=False,
)

# ---- static quotes (tests, what-if studies) -------------------------------------------------
ST_PARAMS = Params(
    "StaticQuotesParams",
    bid_tick=Param(0.0, "ticks", "bid price"),
    bid_qty=Param(0.0, "lots", "bid size (0 = no bid)", integer=True, ge=0),
    ask_tick=Param(0.0, "ticks", "ask price"),
    ask_qty=Param(0.0, "lots", "ask size (0 = no ask)", integer=True, ge=0),
)
ST = ST_PARAMS.index
STATIC = KernelSpec(
    "static", _K + "static_quotes_nb", ST_PARAMS,
    doc="Fixed absolute quotes in ticks and lots (tests and what-if studies).",
    reads_depth=False,
)

# ---- symmetric quotes around the mid (Avellaneda & Stoikov 2008 §3.3) ------------------------
SY_PARAMS = Params(
    "SymmetricParams",
    half_spread_px=Param(None, "price", "distance of each quote from the mid", ge=0),
    order_qty=_order_qty(),
    ref=_ref(),
)
SY = SY_PARAMS.index
SYMMETRIC = KernelSpec(
    "symmetric", _K + "symmetric_nb", SY_PARAMS,
    doc="Mid ± half_spread_px, inventory-blind (Avellaneda & Stoikov 2008 §3.3 benchmark).",
    reads_depth=False,
)

# ---- Guéant–Lehalle–Fernandez-Tapia (2013) closed form (MODELS.md §2) -----------------------
GL_PARAMS = Params(
    "GlftParams",
    gamma=_gamma("1/(price·unit)"),
    k=_k(),
    A=Param(None, "1/s", "fill intensity at zero depth", gt=0),
    sigma_px=_sigma_px(),
    order_qty=_order_qty(),
    ref=_ref(),
)
GL = GL_PARAMS.index
GLFT = KernelSpec(
    "glft", _K + "glft_nb", GL_PARAMS,
    doc="Guéant–Lehalle–Fernandez-Tapia (2013) closed-form quotes (MODELS.md §2).",
    aliases=("gueant",),
    reads_depth=False,
)

# ---- GLFT with A, k and sigma calibrated online (MODELS.md §2) ------------------------------
#: intervals kept in the calibration ring (20 min at 100 ms)
GC_RING_CAP = 12_000

GC_PARAMS = Params(
    "GlftCalibratedParams",
    gamma=_gamma("1/(tick·order)"),
    order_qty=_order_qty(),
    window_s=Param(600.0, "s", "rolling calibration window", gt=0),
    grid_n=Param(20.0, "ticks", "depths 1..grid_n fitted", integer=True, ge=2, le=10_000),
    refit_every=Param(50.0, "clock steps", "refit period", integer=True, ge=1),
    A_init=Param(1.0, "1/s", "A until the first fit", gt=0),
    k_init=Param(0.5, "1/tick", "k until the first fit", gt=0),
    sigma_init=Param(1.0, "ticks/√s", "σ until the first fit", ge=0),
    min_intervals=Param(100.0, "intervals", "intervals needed before a fit", integer=True,
                        ge=1, le=GC_RING_CAP),
)
GC = GC_PARAMS.index

#: one clock interval in the ring: its length and how far trades reached from its first mid
GR_RECORD = Layout(
    "GlftIntervalRecord",
    dt=Slot(unit="s", doc="length of the interval"),
    ask_depth=Slot(unit="ticks", doc="highest buy trade − previous mid (or NO_TRADE_DEPTH)"),
    bid_depth=Slot(unit="ticks", doc="previous mid − lowest sell trade (or NO_TRADE_DEPTH)"),
    dmid=Slot(unit="ticks", doc="mid change over the interval"),
)
GR = GR_RECORD.index
#: the depth recorded for a side no trade reached in an interval (below every depth fitted)
NO_TRADE_DEPTH = -1.0
#: float64 slots per interval record
GR_SIZE = GR_RECORD.size

GS_LAYOUT = Layout(
    "GlftCalibratedState",
    last_mid=Slot(unit="ticks", doc="mid at the previous clock decision (NaN before the first)"),
    last_t=Slot(unit="s", doc="local time of the previous clock decision"),
    n=Slot(unit="intervals", doc="intervals held in the ring (<= GC_RING_CAP)"),
    head=Slot(doc="ring position the next interval is written to"),
    A=Slot(unit="1/s", doc="fitted fill intensity at zero depth (<= 0: not initialised)"),
    k=Slot(unit="1/tick", doc="fitted decay of the intensity with depth"),
    sigma=Slot(unit="ticks/√s", doc="fitted volatility of the mid"),
    since_fit=Slot(unit="intervals", doc="intervals recorded since the last refit"),
    nfit=Slot(unit="fits", doc="successful fits of A and k so far"),
    spare=Slot(size=7, doc="unused: keeps the ring at slot 16"),
    ring=Slot(size=GR_SIZE * GC_RING_CAP, doc="GC_RING_CAP interval records (GR layout)"),
)
GS = GS_LAYOUT.index
#: length of glft_calibrated's state vector
GC_STATE_SIZE = GS_LAYOUT.size

GLFT_CALIBRATED = KernelSpec(
    "glft_calibrated", _K + "glft_calibrated_nb", GC_PARAMS,
    doc="GLFT with A, k and sigma calibrated online from the feed (MODELS.md §2), ticks.",
    state=GS_LAYOUT,
    reads_depth=False,
)

# ---- fixed tick offsets around the mid, kept behind the touch ------------------------------
OT_PARAMS = Params(
    "OffsetTicksParams",
    offset_ticks=Param(None, "ticks", "distance of each quote from the mid", ge=0),
    skew_ticks=Param(0.0, "ticks per order of inventory",
                     "both quotes move down by skew_ticks per order held", ge=0),
    order_qty=_order_qty(),
)
OT = OT_PARAMS.index
OFFSET_TICKS = KernelSpec(
    "offset_ticks", _K + "offset_ticks_nb", OT_PARAMS,
    doc="round(mid -/+ offset - skew*q) ticks, kept behind the touch.",
    reads_depth=False,
)

#: every built-in policy, in registration order
BUILTIN_POLICIES = (FIXED_SPREAD, AVELLANEDA_STOIKOV, STATIC, SYMMETRIC, GLFT, GLFT_CALIBRATED,
                    OFFSET_TICKS)
