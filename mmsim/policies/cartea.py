"""Declarations of the Cartea–Jaimungal–Penalva (2015, ch. 10) and Ho–Stoll (1981) policies:
parameters, state layouts, error codes (no numba).

The kernels are in :mod:`mmsim.policies.cartea_nb` (each documents its model and equations);
the exact solution's depth table in :mod:`mmsim.policies.cj_solution` (numpy), computed by
:func:`prepare_cartea_jaimungal`, the :class:`~mmsim.kernels.KernelSpec` ``prepare`` hook, when
a run is resolved. :mod:`mmsim.policies.registry` registers :data:`CARTEA_POLICIES`.

Index constants (``NamedTuple`` instances of ints):

=====  ===============================================  ==================================
name   array                                            kernel
=====  ===============================================  ==================================
CJ     params                                           ``cartea_jaimungal_nb``
CJS    state (header; the depth table follows)          ``cartea_jaimungal_nb``
CJD    one (time, inventory) record of the table        ``cartea_jaimungal_nb``
CT     params                                           ``cartea_touch_nb``
CA     params                                           ``cartea_alpha_nb``
CAS    state                                            ``cartea_alpha_nb``
HS     params                                           ``ho_stoll_nb``
=====  ===============================================  ==================================
"""

from __future__ import annotations

import numpy as np

from mmsim.kernels import Errors, KernelSpec, Layout, Param, Params, Slot
from mmsim.policies.params import Ref

__all__ = ["CA", "CARTEA_ALPHA", "CARTEA_JAIMUNGAL", "CARTEA_POLICIES", "CARTEA_TOUCH", "CAS",
           "CJ", "CJD", "CJE", "CJS", "CT", "HO_STOLL", "HS", "prepare_cartea_jaimungal"]

_K = "mmsim.policies.cartea_nb:"


def _order_qty() -> Param:
    return Param(1.0, "lots", "size of each quote (one order: q = position / order_qty)",
                 integer=True, ge=1)


def _ref() -> Param:
    return Param.choice(Ref, "mid", "reference price: mid, size-weighted mid (wmid) or "
                        "Stoikov micro-price (micro: needs signals.microprice_table)")


# ---- Cartea–Jaimungal–Penalva (2015) §10.2, exact finite-horizon solution (MODELS.md §3) ---
CJ_PARAMS = Params(
    "CarteaJaimungalParams",
    lambda_buy=Param(None, "1/s", "rate λ⁺ of buy market orders (they lift our ask)", gt=0),
    lambda_sell=Param(None, "1/s", "rate λ⁻ of sell market orders (they hit our bid)", gt=0),
    kappa=Param(None, "1/tick", "a market order fills our order at depth δ w.p. exp(−κδ)",
                gt=0),
    phi=Param(0.0, "ticks/(order²·s)", "running inventory penalty φ", ge=0),
    alpha=Param(0.0, "ticks/order", "terminal liquidation penalty α (q_T·(S_T − α·q_T))",
                ge=0),
    q_max=Param(10.0, "orders", "inventory bound q̄: no bid at +q̄, no ask at −q̄",
                integer=True, ge=1, le=1000),
    T_s=Param(3600.0, "s", "model horizon T: the table spans T − t in [0, T_s]", gt=0),
    n_t=Param(501.0, "points", "time points of the depth table (linear interpolation)",
              integer=True, ge=2, le=1_000_000),
    epsilon_ticks=Param(0.0, "ticks", "mid impact ε of a market order (adverse selection, "
                                      "§10.4.1): both depths widen by ε", ge=0),
    reward_ticks=Param(0.0, "ticks per fill", "reward φ_v per filled order (volume "
                                              "rewarding, §10.2.3): both depths move in by φ_v",
                       ge=0),
    order_qty=_order_qty(),
    ref=_ref(),
)
CJ = CJ_PARAMS.index

#: one (time, inventory) record of the depth table: the two depths, NaN = no quote that side
CJ_DEPTH = Layout(
    "CarteaJaimungalDepth",
    ask=Slot(unit="ticks", doc="δ⁺: ask above the reference price (NaN at q = −q̄)"),
    bid=Slot(unit="ticks", doc="δ⁻: bid below the reference price (NaN at q = +q̄)"),
)
CJD = CJ_DEPTH.index
#: float64 slots per table record
CJD_SIZE = CJ_DEPTH.size

CJ_STATE = Layout(
    "CarteaJaimungalState",
    n_t=Slot(unit="points", doc="time points of the table (0: not prepared)"),
    q_max=Slot(unit="orders", doc="q̄ the table was computed for"),
    tau_step=Slot(unit="s", doc="time-to-horizon step of the table, T_s/(n_t − 1)"),
    spare=Slot(size=5, doc="unused: the table starts at slot 8"),
    table=Slot(size=CJD_SIZE, doc="n_t × (2q̄+1) CJD records, row-major (time, q + q̄): "
                                  "written by prepare_cartea_jaimungal, beyond this slot"),
)
CJS = CJ_STATE.index

CJ_ERRORS = Errors(
    "CarteaJaimungalErrors",
    NO_TABLE=(1, "the state holds no depth table for these parameters (the driver did not "
                 "call KernelSpec.initial_state / the prepare hook)"),
)
CJE = CJ_ERRORS.index


def prepare_cartea_jaimungal(params: np.ndarray) -> np.ndarray:
    """The initial state of ``cartea_jaimungal``: the :data:`CJS` header, then the depth table
    of :func:`mmsim.policies.cj_solution.cj_depth_table` (CJP 2015 §10.2, MODELS.md §3) over
    ``T − t ∈ [0, T_s]`` on ``n_t`` points, flattened row-major (time, ``q + q̄``, side).

    Parameters
    ----------
    params : float64[len(CJ)]
        The checked parameter vector (:meth:`KernelSpec.param_vector`).

    Returns
    -------
    float64[CJS.table + n_t·(2q̄+1)·2]

    Raises
    ------
    ValueError
        If the table would be too large or is not finite (see ``cj_depth_table``).
    """
    from mmsim.policies.cj_solution import cj_depth_table

    p = np.asarray(params, dtype=np.float64)
    n_t, q_max, t_s = int(p[CJ.n_t]), int(p[CJ.q_max]), float(p[CJ.T_s])
    table = cj_depth_table(p[CJ.lambda_buy], p[CJ.lambda_sell], p[CJ.kappa], p[CJ.phi],
                           p[CJ.alpha], q_max, t_s, n_t, p[CJ.epsilon_ticks],
                           p[CJ.reward_ticks])
    out = np.zeros(CJS.table + table.size, dtype=np.float64)
    out[CJS.n_t] = n_t
    out[CJS.q_max] = q_max
    out[CJS.tau_step] = t_s / (n_t - 1)
    out[CJS.table:] = table.ravel()  # (time, q, side) with side CJD.ask = 0, CJD.bid = 1
    return out


assert (CJD.ask, CJD.bid) == (0, 1)  # the table's last axis (cj_depth_table) in this order

CARTEA_JAIMUNGAL = KernelSpec(
    "cartea_jaimungal", _K + "cartea_jaimungal_nb", CJ_PARAMS,
    doc="Cartea–Jaimungal–Penalva (2015) §10.2 exact finite-horizon optimal depths "
        "(ω = exp(M(T − t))z, MODELS.md §3), with adverse selection ε (§10.4.1) and a "
        "per-fill reward φ_v (§10.2.3); table precomputed when the run is resolved.",
    aliases=("cjp", "cartea"),
    state=CJ_STATE,
    errors=CJ_ERRORS,
    prepare=prepare_cartea_jaimungal,
    reads_depth=False,
)

# ---- at the touch with size control (CJP 2015 §10.2.2, MODELS.md §3) -----------------------
CT_PARAMS = Params(
    "CarteaTouchParams",
    Q0_lots=Param(None, "lots", "quote size on each side at zero inventory", ge=0),
    eta=Param(0.0, "lots per lot", "size taken off the side that adds inventory per lot "
                                   "held (Q_bid = Q0 − η·q, Q_ask = Q0 + η·q)", ge=0),
)
CT = CT_PARAMS.index
CARTEA_TOUCH = KernelSpec(
    "cartea_touch", _K + "cartea_touch_nb", CT_PARAMS,
    doc="At the touch with size control (CJP 2015 §10.2.2, MODELS.md §3): best bid/ask, "
        "Q_bid = Q0 − η·q, Q_ask = Q0 + η·q floored at 0.",
    reads_depth=False,
)

# ---- short-term alpha (CJP 2015 §10.4.2, MODELS.md §3) -------------------------------------
CA_PARAMS = Params(
    "CarteaAlphaParams",
    base_ticks=Param(None, "ticks", "depth of each quote at zero inventory and drift", ge=0),
    gamma_q=Param(0.0, "ticks per order", "inventory skew γ_q", ge=0),
    beta_s=Param(1.0, "s", "depth shift per tick/s of estimated drift μ (β)", ge=0),
    kappa_mu=Param(1.0, "1/s", "mean-reversion rate κ_μ of the drift estimate", gt=0),
    flow_gain=Param(None, "ticks/s per lot", "jump of μ per lot of signed market-order flow "
                                             "seen since the last clock", ge=0),
    mid_gain=Param(0.0, "1/s", "jump of μ per tick the mid moved since the last clock", ge=0),
    order_qty=_order_qty(),
    ref=_ref(),
)
CA = CA_PARAMS.index
CA_STATE = Layout(
    "CarteaAlphaState",
    mu=Slot(unit="ticks/s", doc="drift estimate μ after the last clock decision"),
    last_mid=Slot(unit="ticks", init=float("nan"), doc="mid at the last clock decision"),
    last_t=Slot(unit="s", doc="local time of the last clock decision"),
)
CAS = CA_STATE.index
CARTEA_ALPHA = KernelSpec(
    "cartea_alpha", _K + "cartea_alpha_nb", CA_PARAMS,
    doc="Short-term alpha (CJP 2015 §10.4.2, MODELS.md §3): a mean-reverting drift estimate "
        "μ from signed order flow; δᵇ = base + γ_q·q − β·μ, δᵃ = base − γ_q·q + β·μ.",
    state=CA_STATE,
    reads_depth=False,
)

# ---- Ho & Stoll (1981), corrected (MODELS.md §4) --------------------------------------------
HS_PARAMS = Params(
    "HoStollParams",
    c_px=Param(None, "price", "fixed cost per trade: the half spread's constant part c", ge=0),
    gamma=Param(None, "1/(price·order)", "risk aversion γ", gt=0),
    sigma_px=Param(0.0, "price/√s", "volatility; 0 = the engine's online estimate", ge=0),
    order_qty=_order_qty(),
    tau_s=Param(3600.0, "s", "τ = T − t when the run has no horizon", ge=0),
    ref=_ref(),
)
HS = HS_PARAMS.index
HO_STOLL = KernelSpec(
    "ho_stoll", _K + "ho_stoll_nb", HS_PARAMS,
    doc="Ho & Stoll (1981) dealer quotes (MODELS.md §4, corrected): centre mid − γσ²qτ, "
        "half spread c + γσ²τ/2.",
    reads_depth=False,
)

#: the policies this module declares, in registration order
CARTEA_POLICIES = (CARTEA_JAIMUNGAL, CARTEA_TOUCH, CARTEA_ALPHA, HO_STOLL)
