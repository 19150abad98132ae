"""Policy registry: name → numba kernel, parameter names and defaults, initial state.

Register a custom policy with :func:`register_policy`; its kernel must be compiled with the
declared signature, e.g. ``@numba.njit(mmsim.engine.sigs.POLICY_SIG, cache=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmsim.policies import nb as pnb


@dataclass(frozen=True)
class KernelSpec:
    """A registered policy or hedger.

    Attributes
    ----------
    name : str
    kernel : numba dispatcher compiled with ``POLICY_SIG`` (or ``HEDGER_SIG``)
    params : dict[str, float]
        Parameter names in kernel order, with defaults (``None`` = required).
    state_init : tuple[float, ...]
        Initial values of the kernel's state vector.
    doc : str
    """

    name: str
    kernel: object
    params: dict[str, float | None]
    state_init: tuple[float, ...] = ()
    doc: str = ""
    aliases: tuple[str, ...] = field(default=())
    state_size: int = 16

    def param_vector(self, values: dict[str, float], where: str = "policy") -> np.ndarray:
        """Return the float64 parameter vector for ``values``.

        Raises
        ------
        ValueError
            On an unknown parameter name or a missing required one (names them).
        """
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise ValueError(
                f"{where} '{self.name}': unknown parameter(s) {unknown}; "
                f"known: {sorted(self.params)}"
            )
        out = np.empty(len(self.params), dtype=np.float64)
        for i, (k, default) in enumerate(self.params.items()):
            v = values.get(k, default)
            if v is None:
                raise ValueError(f"{where} '{self.name}': parameter '{k}' is required")
            out[i] = float(v)
        return out

    def state_vector(self, size: int | None = None) -> np.ndarray:
        """Return a fresh state vector (``state_size`` long) holding ``state_init``."""
        size = self.state_size if size is None else size
        st = np.zeros(max(size, len(self.state_init)), dtype=np.float64)
        st[: len(self.state_init)] = self.state_init
        return st


_POLICIES: dict[str, KernelSpec] = {}


def register_policy(spec: KernelSpec) -> None:
    """Add a policy to the registry (by ``spec.name`` and its aliases)."""
    for n in (spec.name, *spec.aliases):
        _POLICIES[n] = spec


def get_policy(name: str) -> KernelSpec:
    """Look up a policy by name.

    Raises
    ------
    KeyError
        If no policy has that name (the message lists the known ones).
    """
    try:
        return _POLICIES[name]
    except KeyError:
        raise KeyError(f"unknown policy '{name}'; known: {sorted(_POLICIES)}") from None


def policy_names() -> list[str]:
    return sorted({s.name for s in _POLICIES.values()})


register_policy(
    KernelSpec(
        "fixed_spread",
        pnb.fixed_spread_nb,
        {"spread_bps": None, "skew_px": 0.0, "order_qty": 1.0, "ref": 0.0},
        doc="Fixed spread in bps around the mid with linear inventory skew (MODELS.md §4).",
    )
)
register_policy(
    KernelSpec(
        "avellaneda_stoikov",
        pnb.avellaneda_stoikov_nb,
        {"gamma": None, "k": None, "sigma_px": 0.0, "order_qty": 1.0, "tau_s": 3600.0, "ref": 0.0},
        doc="Avellaneda & Stoikov (2008) reservation price and optimal spread (MODELS.md §1).",
        aliases=("as",),
    )
)
register_policy(
    KernelSpec(
        "static",
        pnb.static_quotes_nb,
        {"bid_tick": 0.0, "bid_qty": 0.0, "ask_tick": 0.0, "ask_qty": 0.0},
        doc="Fixed absolute quotes in ticks and lots (tests and what-if studies).",
    )
)
register_policy(
    KernelSpec(
        "symmetric",
        pnb.symmetric_nb,
        {"half_spread_px": None, "order_qty": 1.0, "ref": 0.0},
        doc="Mid ± half_spread_px, inventory-blind (Avellaneda & Stoikov 2008 §3.3 benchmark).",
    )
)
register_policy(
    KernelSpec(
        "glft",
        pnb.glft_nb,
        {"gamma": None, "k": None, "A": None, "sigma_px": 0.0, "order_qty": 1.0, "ref": 0.0},
        doc="Guéant–Lehalle–Fernandez-Tapia (2013) closed-form quotes (MODELS.md §2).",
        aliases=("gueant",),
    )
)
register_policy(
    KernelSpec(
        "glft_calibrated",
        pnb.glft_calibrated_nb,
        {"gamma": None, "order_qty": 1.0, "window_s": 600.0, "grid_n": 20.0,
         "refit_every": 50.0, "A_init": 1.0, "k_init": 0.5, "sigma_init": 1.0,
         "min_intervals": 100.0},
        doc="GLFT with A, k and sigma calibrated online from the feed (MODELS.md §2), ticks.",
        state_size=pnb.GC_STATE_SIZE,
    )
)
register_policy(
    KernelSpec(
        "offset_ticks",
        pnb.offset_ticks_nb,
        {"offset_ticks": None, "skew_ticks": 0.0, "order_qty": 1.0},
        doc="round(mid -/+ offset - skew*q) ticks, kept behind the touch.",
    )
)
