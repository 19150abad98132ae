"""Policy registry: name → numba kernel, declared parameters (default, type, range, unit), state.

Each parameter is declared once, with its kernel, as a :class:`Param`: default (``None`` =
required), whether it must be a whole number or one of a few named values, its bounds, its
unit and a one-line doc. The experiment config checks every ``policy:`` / ``hedger:`` entry
against these declarations when it is loaded (:mod:`mmsim.config`), so a bad value stops
``mmsim backtest`` and every sweep point before any data is read or kernel compiled.

The built-in kernels are named as ``"module:attribute"`` strings and imported on first use of
:attr:`KernelSpec.kernel`: importing this module (as config validation does) compiles
nothing. Register a custom policy with :func:`register_policy`; its kernel (a numba dispatcher
or a ``"module:attribute"`` string) must be compiled with the declared signature, e.g.
``@numba.njit(mmsim.contracts.POLICY_SIG, cache=True)``.
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmsim.config import NUMBER_TEXT, ConfigError, fmt_number, show_value


@dataclass(frozen=True)
class Param:
    """The declaration of one kernel parameter.

    Attributes
    ----------
    default : float or None
        Value used when the experiment does not give one; ``None`` = required.
    unit : str
        Unit, e.g. ``"lots"``, ``"1/price"``, ``"s"`` (documentation).
    doc : str
        One line: what the parameter does.
    gt, ge, lt, le : float or None
        Bounds: the value must be ``> gt``, ``>= ge``, ``< lt``, ``<= le`` (None = no bound).
    integer : bool
        The value must be a whole number (``10`` or ``10.0``, not ``10.5``).
    choices : tuple of (str, float)
        If not empty, the value must be one of these numbers, or given by its name
        (``("market", 3.0)``: ``tif: market`` or ``tif: 3``).

    Every value must be a finite real number (bools, ``nan`` and ``inf`` are refused);
    numeric strings (``"1e-3"``) are read as numbers.
    """

    default: float | None = None
    unit: str = ""
    doc: str = ""
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    integer: bool = False
    choices: tuple[tuple[str, float], ...] = ()

    @property
    def required(self) -> bool:
        return self.default is None

    def domain(self) -> str:
        """The valid range in words, e.g. ``"> 0"``, ``"whole number >= 1"``, ``"mid (0) or
        wmid (1)"``, ``"any number"``."""
        if self.choices:
            return " or ".join(f"{n} ({fmt_number(float(v))})" for n, v in self.choices)
        parts = [f"{op} {fmt_number(float(b))}"
                 for op, b in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                 if b is not None]
        kind = "whole number" if self.integer else "number"
        return f"{kind} {' and '.join(parts)}" if parts else f"any {kind}"

    def check(self, value: Any) -> float:
        """The float64 value of ``value``, checked against this declaration.

        Raises
        ------
        ValueError
            One line saying what is wrong, e.g. ``"must be > 0, got 0"``,
            ``"must be a number, got 'abc'"``.
        """
        given = value
        if isinstance(value, str):
            names = {n.lower(): v for n, v in self.choices}
            key = value.strip().lower()
            if key in names:
                return float(names[key])
            if not NUMBER_TEXT.match(value):
                if self.choices:
                    raise ValueError(f"must be {self.domain()}, got {show_value(given)}")
                raise ValueError(f"must be a number, got {show_value(given)}")
            value = float(value.replace("_", ""))
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"must be a number, got {show_value(given)}")
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"must be finite, got {show_value(given)}")
        if self.choices:
            if v not in {float(c) for _, c in self.choices}:
                raise ValueError(f"must be {self.domain()}, got {show_value(given)}")
            return v
        if self.integer and not v.is_integer():
            raise ValueError(f"must be a whole number, got {show_value(given)}")
        for op, b, ok in (
            (">", self.gt, lambda b: v > b),
            (">=", self.ge, lambda b: v >= b),
            ("<", self.lt, lambda b: v < b),
            ("<=", self.le, lambda b: v <= b),
        ):
            if b is not None and not ok(b):
                raise ValueError(f"must be {op} {fmt_number(float(b))}, got {show_value(given)}")
        return v


def _as_param(p: Param | float | None) -> Param:
    if isinstance(p, Param):
        return p
    if p is None:
        return Param()
    return Param(default=float(p))


class KernelSpec:
    """A registered policy or hedger (immutable).

    Parameters
    ----------
    name : str
    kernel : numba dispatcher or str
        Compiled with ``POLICY_SIG`` (or ``HEDGER_SIG``), or a ``"module:attribute"`` string
        naming one (imported on first access of :attr:`kernel`).
    params : mapping of str to Param (or to a plain default float / None)
        Parameters in kernel order. A plain float is a default and ``None`` a required
        parameter, both without bounds (finite numbers only).
    state_init : tuple of float
        Initial values of the kernel's state vector.
    doc : str
    aliases : tuple of str
        Other names the registry accepts.
    state_size : int
        Length of the state vector (>= ``len(state_init)``).

    Attributes
    ----------
    params : dict[str, Param]
        In kernel order; ``list(spec.params)`` are the names.
    defaults : dict[str, float or None]
        Name → default (``None`` = required).
    """

    __slots__ = ("name", "_kernel", "params", "state_init", "doc", "aliases", "state_size")

    def __init__(
        self,
        name: str,
        kernel: object,
        params: Mapping[str, Param | float | None],
        state_init: tuple[float, ...] = (),
        doc: str = "",
        aliases: tuple[str, ...] = (),
        state_size: int = 16,
    ) -> None:
        for k, v in (
            ("name", name), ("_kernel", kernel),
            ("params", {str(n): _as_param(p) for n, p in params.items()}),
            ("state_init", tuple(float(x) for x in state_init)), ("doc", doc),
            ("aliases", tuple(aliases)), ("state_size", int(state_size)),
        ):
            object.__setattr__(self, k, v)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"KernelSpec is immutable (cannot set {key!r})")

    def __repr__(self) -> str:
        return f"KernelSpec({self.name!r}, params={list(self.params)})"

    @property
    def kernel(self) -> Any:
        """The numba dispatcher (imported, and so compiled or loaded from the disk cache, on
        first access when registered as a ``"module:attribute"`` string)."""
        k = self._kernel
        if isinstance(k, str):
            mod, _, attr = k.partition(":")
            k = getattr(importlib.import_module(mod), attr)
            object.__setattr__(self, "_kernel", k)
        return k

    @property
    def defaults(self) -> dict[str, float | None]:
        return {n: p.default for n, p in self.params.items()}

    def check_params(
        self, values: Mapping[str, Any], *, require: bool = True, optional: tuple[str, ...] = ()
    ) -> tuple[dict[str, float], list[tuple[str, str]]]:
        """Check ``values`` against the declarations, without raising.

        Parameters
        ----------
        values : mapping of str to Any
            Parameter name → value as given (number, numeric string, or a choice's name).
        require : bool
            Report required parameters that are missing.
        optional : tuple of str
            Required parameters that may be missing anyway (set later by the caller).

        Returns
        -------
        (dict[str, float], list[tuple[str, str]])
            The checked float values of the parameters given, and ``(name, problem)`` for each
            unknown, invalid or missing parameter, in that order.
        """
        errors: list[tuple[str, str]] = []
        out: dict[str, float] = {}
        for k in values:
            if k not in self.params:
                errors.append((str(k), f"unknown parameter of {self.name!r} "
                                       f"(known: {', '.join(self.params) or 'none'})"))
        for k, p in self.params.items():
            if k in values:
                try:
                    out[k] = p.check(values[k])
                except ValueError as e:
                    errors.append((k, str(e)))
            elif require and p.required and k not in optional:
                errors.append((k, f"required by {self.name!r} ({p.unit or 'no unit'}, "
                                  f"{p.domain()})"))
        return out, errors

    def param_vector(self, values: Mapping[str, Any], where: str = "policy") -> np.ndarray:
        """Return the float64 parameter vector (kernel order) for ``values``.

        Raises
        ------
        mmsim.config.ConfigError
            On an unknown parameter name, a missing required one or a value out of its
            declared range, e.g. ``field 'policy.gamma': must be > 0, got 0`` (every problem,
            joined with ``; ``).
        """
        checked, errors = self.check_params(values)
        if errors:
            raise ConfigError("; ".join(f"field '{where}.{k}': {m}" for k, m in errors))
        out = np.empty(len(self.params), dtype=np.float64)
        for i, (k, p) in enumerate(self.params.items()):
            out[i] = checked[k] if k in checked else float(p.default)  # type: ignore[arg-type]
        return out

    def state_vector(self, size: int | None = None) -> np.ndarray:
        """Return a fresh state vector (``state_size`` long) holding ``state_init``."""
        size = self.state_size if size is None else size
        st = np.zeros(max(size, len(self.state_init)), dtype=np.float64)
        st[: len(self.state_init)] = self.state_init
        return st


class UnknownKernelError(ConfigError, KeyError):
    """No policy (or hedger) of that name; a :class:`~mmsim.config.ConfigError` and a
    ``KeyError``, whose message reads without the quotes ``KeyError`` adds."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_POLICIES: dict[str, KernelSpec] = {}


def register_policy(spec: KernelSpec) -> None:
    """Add a policy to the registry (by ``spec.name`` and its aliases)."""
    for n in (spec.name, *spec.aliases):
        _POLICIES[n] = spec


def get_policy(name: str) -> KernelSpec:
    """Look up a policy by name (or alias).

    Raises
    ------
    UnknownKernelError
        (a ConfigError and a KeyError) If no policy has that name; the message lists the
        known ones.
    """
    try:
        return _POLICIES[name]
    except (KeyError, TypeError):
        raise UnknownKernelError(
            f"unknown policy {show_value(name)} (known: {', '.join(policy_names())})"
        ) from None


def policy_names() -> list[str]:
    """The registered policy names (aliases left out), sorted."""
    return sorted({s.name for s in _POLICIES.values()})


# ---- declarations of the built-in policies ------------------------------------------------
# (kernels: mmsim/policies/nb.py; the order of each params dict is the kernel's params order)

_K = "mmsim.policies.nb:"
#: kept equal to mmsim.policies.nb.GC_RING_CAP / GC_STATE_SIZE (tests check it) so that the
#: registry imports no kernel module
GC_RING_CAP = 12_000
GC_STATE_SIZE = 16 + 4 * GC_RING_CAP


def _order_qty(default: float = 1.0) -> Param:
    return Param(default, "lots", "size of each quote", integer=True, ge=1)


def _ref() -> Param:
    return Param(0.0, "", "reference price: mid or size-weighted mid",
                 choices=(("mid", 0.0), ("wmid", 1.0)))


def _gamma(unit: str) -> Param:
    return Param(None, unit, "risk aversion", gt=0)


register_policy(
    KernelSpec(
        "fixed_spread",
        _K + "fixed_spread_nb",
        {
            "spread_bps": Param(None, "bps", "full spread around the reference price",
                                ge=0, lt=20_000),
            "skew_px": Param(0.0, "price per order of inventory",
                             "both quotes move down by skew_px per order held", ge=0),
            "order_qty": _order_qty(),
            "ref": _ref(),
        },
        doc="Fixed spread in bps around the mid with linear inventory skew (MODELS.md §4).",
    )
)
register_policy(
    KernelSpec(
        "avellaneda_stoikov",
        _K + "avellaneda_stoikov_nb",
        {
            "gamma": _gamma("1/(price·order)"),
            "k": Param(None, "1/price", "decay of the fill intensity with depth", gt=0),
            "sigma_px": Param(0.0, "price/√s", "volatility; 0 = the engine's online estimate",
                              ge=0),
            "order_qty": _order_qty(),
            "tau_s": Param(3600.0, "s", "T − t when the run has no horizon", ge=0),
            "ref": _ref(),
        },
        doc="Avellaneda & Stoikov (2008) reservation price and optimal spread (MODELS.md §1).",
        aliases=("as",),
    )
)
register_policy(
    KernelSpec(
        "static",
        _K + "static_quotes_nb",
        {
            "bid_tick": Param(0.0, "ticks", "bid price"),
            "bid_qty": Param(0.0, "lots", "bid size (0 = no bid)", integer=True, ge=0),
            "ask_tick": Param(0.0, "ticks", "ask price"),
            "ask_qty": Param(0.0, "lots", "ask size (0 = no ask)", integer=True, ge=0),
        },
        doc="Fixed absolute quotes in ticks and lots (tests and what-if studies).",
    )
)
register_policy(
    KernelSpec(
        "symmetric",
        _K + "symmetric_nb",
        {
            "half_spread_px": Param(None, "price", "distance of each quote from the mid", ge=0),
            "order_qty": _order_qty(),
            "ref": _ref(),
        },
        doc="Mid ± half_spread_px, inventory-blind (Avellaneda & Stoikov 2008 §3.3 benchmark).",
    )
)
register_policy(
    KernelSpec(
        "glft",
        _K + "glft_nb",
        {
            "gamma": _gamma("1/(price·unit)"),
            "k": Param(None, "1/price", "decay of the fill intensity with depth", gt=0),
            "A": Param(None, "1/s", "fill intensity at zero depth", gt=0),
            "sigma_px": Param(0.0, "price/√s", "volatility; 0 = the engine's online estimate",
                              ge=0),
            "order_qty": _order_qty(),
            "ref": _ref(),
        },
        doc="Guéant–Lehalle–Fernandez-Tapia (2013) closed-form quotes (MODELS.md §2).",
        aliases=("gueant",),
    )
)
register_policy(
    KernelSpec(
        "glft_calibrated",
        _K + "glft_calibrated_nb",
        {
            "gamma": _gamma("1/(tick·order)"),
            "order_qty": _order_qty(),
            "window_s": Param(600.0, "s", "rolling calibration window", gt=0),
            "grid_n": Param(20.0, "ticks", "depths 1..grid_n fitted", integer=True,
                            ge=2, le=10_000),
            "refit_every": Param(50.0, "clock steps", "refit period", integer=True, ge=1),
            "A_init": Param(1.0, "1/s", "A until the first fit", gt=0),
            "k_init": Param(0.5, "1/tick", "k until the first fit", gt=0),
            "sigma_init": Param(1.0, "ticks/√s", "σ until the first fit", ge=0),
            "min_intervals": Param(100.0, "intervals", "intervals needed before a fit",
                                   integer=True, ge=1, le=GC_RING_CAP),
        },
        doc="GLFT with A, k and sigma calibrated online from the feed (MODELS.md §2), ticks.",
        state_size=GC_STATE_SIZE,
    )
)
register_policy(
    KernelSpec(
        "offset_ticks",
        _K + "offset_ticks_nb",
        {
            "offset_ticks": Param(None, "ticks", "distance of each quote from the mid", ge=0),
            "skew_ticks": Param(0.0, "ticks per order of inventory",
                                "both quotes move down by skew_ticks per order held", ge=0),
            "order_qty": _order_qty(),
        },
        doc="round(mid -/+ offset - skew*q) ticks, kept behind the touch.",
    )
)
