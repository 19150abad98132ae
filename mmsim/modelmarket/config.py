"""Model-market experiment YAML (``mode: model_market``) → validated, frozen config objects.

Time in the model market is in the model's own time unit (the paper's: ``T = 1``); fields and
``ctx`` entries named ``*_s`` hold that unit, and rates (``fill_a_per_s``) and volatilities are
per that unit. ``--set key.sub=value`` overrides any field before validation, e.g.
``--set paths=5000`` or ``--set strategies.inventory_g01.policy.gamma=0.2``.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmsim.config import (
    ConfigError,
    PolicyConfig,
    apply_overrides,
    config_error,
    fields_error,
    missing_param_errors,
    override_origins,
    read_experiment_yaml,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class MarketConfig(_Frozen):
    """The simulated market (Avellaneda & Stoikov 2008, §3.3; MODELS.md §1).

    Attributes
    ----------
    s0_px : float
        Initial mid, price.
    horizon_s : float
        Horizon ``T``, model time units (the paper: 1).
    dt_s : float
        Step, model time units (the paper: 0.005, i.e. 200 steps); ``horizon_s / dt_s`` must be
        a whole number.
    sigma : float
        Volatility of the mid: price per √time unit for ``random_walk`` and ``abm``; relative
        (per √time unit) for ``gbm``.
    dynamics : {"random_walk", "abm", "gbm"}
        ``random_walk``: ``±σ√dt`` with probability ½ (the paper); ``abm``: ``s += σ√dt·Z``;
        ``gbm``: ``s *= exp(−σ²dt/2 + σ√dt·Z)``.
    fill_a_per_s, fill_k_per_px : float
        Fill intensity ``λ(δ) = A·exp(−k·δ)``: ``A`` per time unit, ``k`` per price unit.
    tick_size_px : float
        Price per tick of the ``ctx`` handed to the policy. Tiny (1e-4) so that flooring bids
        and ceiling asks to ticks moves a quote by at most 1e-4 price units.
    lot_size : float
        Instrument units per lot (ctx ``LOT_SIZE``).
    q0_lots : float
        Initial inventory, lots.
    """

    s0_px: float = Field(100.0, gt=0)
    horizon_s: float = Field(1.0, gt=0)
    dt_s: float = Field(0.005, gt=0)
    sigma: float = Field(2.0, ge=0)
    dynamics: Literal["random_walk", "abm", "gbm"] = "random_walk"
    fill_a_per_s: float = Field(140.0, ge=0)
    fill_k_per_px: float = Field(1.5, gt=0)
    tick_size_px: float = Field(1e-4, gt=0)
    lot_size: float = Field(1.0, gt=0)
    q0_lots: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> MarketConfig:
        n = self.horizon_s / self.dt_s
        if abs(n - round(n)) > 1e-6 * max(1.0, n) or round(n) < 1:
            raise ValueError(
                f"market: horizon_s / dt_s = {n} is not a whole number of steps"
            )
        return self

    @property
    def n_steps(self) -> int:
        """Number of steps ``T / dt``."""
        return int(round(self.horizon_s / self.dt_s))


class StrategyConfig(_Frozen):
    """One row of the experiment: a registered policy run on every path.

    Attributes
    ----------
    policy : PolicyConfig
        ``name`` of a registered policy plus its parameters, checked against their declared
        types and ranges (``mmsim.policies.registry``); required ones must be given, except
        ``half_spread_px`` with ``match_spread_of``.
    horizon : {"finite", "infinite"}
        ``finite``: ``ctx[TIME_TO_HORIZON_S] = T − t``. ``infinite``: the driver passes ``inf``
        and the policy uses its own constant time scale (``tau_s`` of ``avellaneda_stoikov``:
        the infinite-horizon variant, τ held constant).
    match_spread_of : str or None
        Id of a strategy listed earlier: set this policy's ``half_spread_px`` to half of that
        strategy's measured average spread (the paper's symmetric benchmark). The policy must
        have a ``half_spread_px`` parameter.
    label : str or None
        Display name (default: the id).
    group : str or None
        Strategies of one group share a profit histogram ``profit_hist_<group>.png``.
    """

    policy: PolicyConfig
    horizon: Literal["finite", "infinite"] = "finite"
    match_spread_of: str | None = None
    label: str | None = None
    group: str | None = None

    @model_validator(mode="after")
    def _check_params(self) -> StrategyConfig:
        optional: tuple[str, ...] = ()
        if self.match_spread_of is not None:
            spec = self.policy.spec()
            if "half_spread_px" not in spec.params:
                raise fields_error([(("match_spread_of",), f"policy {spec.name!r} has no "
                                      f"'half_spread_px' parameter to match")])
            optional = ("half_spread_px",)
        errors = missing_param_errors(self.policy, ("policy",), optional)
        if errors:
            raise fields_error(errors)
        return self


class ReferenceFigures(_Frozen):
    """Published figures for one strategy (shown beside ours with z-scores)."""

    spread: float | None = None
    profit_mean: float | None = None
    profit_std: float | None = None
    q_mean: float | None = None
    q_std: float | None = None
    source: str = ""


class ModelMarketConfig(_Frozen):
    """A model-market experiment: market, paths, seed and the strategies to compare.

    Every strategy runs on the same ``paths`` paths with the same ``seed``: the same mid paths
    and the same uniforms at every path-step (common random numbers).
    """

    mode: Literal["model_market"] = "model_market"
    name: str = "model_market"
    description: str = ""
    seed: int = Field(0, ge=0, lt=2**63)
    paths: int = Field(1000, gt=0)
    market: MarketConfig = MarketConfig()
    strategies: dict[str, StrategyConfig]
    reference: dict[str, ReferenceFigures] = Field(default_factory=dict)
    histogram_bins: int = Field(50, gt=1)

    @model_validator(mode="after")
    def _check(self) -> ModelMarketConfig:
        if not self.strategies:
            raise fields_error([(("strategies",), "give at least one")])
        seen: list[str] = []
        errors: list[tuple[tuple[str, ...], str]] = []
        for sid, st in self.strategies.items():
            if not sid or not all(c.isalnum() or c in "_-" for c in sid):
                errors.append((("strategies", sid), "ids may hold letters, digits, _ and - only"))
            if st.match_spread_of is not None and st.match_spread_of not in seen:
                errors.append((("strategies", sid, "match_spread_of"),
                               f"'{st.match_spread_of}' is not a strategy listed before it"))
            seen.append(sid)
        for sid in sorted(set(self.reference) - set(self.strategies)):
            errors.append((("reference", sid), "unknown strategy id"))
        if errors:
            raise fields_error(errors)
        return self

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())

    def digest(self) -> str:
        """sha256 of the canonical JSON of the whole config (the run's identity)."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def model_market_config_from_dict(
    raw: dict[str, Any], source: str = "<dict>", origins: dict[str, str] | None = None
) -> ModelMarketConfig:
    """Validate a raw model-market config mapping (each strategy's policy parameters checked
    against the registry's declarations; no kernel is compiled).

    Parameters
    ----------
    raw : dict
    source : str
        Shown first in an error (the file path as given).
    origins : dict of str to str, optional
        Dotted key → ``--set`` item, named in the error of a field an override set.

    Raises
    ------
    ConfigError
        Naming ``source`` and every invalid field, on one line
        (``as.yaml: field 'strategies.a.policy.gamma': must be > 0, got 0``).
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return ModelMarketConfig.model_validate(raw)
    except ValidationError as e:
        raise config_error(e, source, origins) from None


def load_model_market_config(
    path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()
) -> ModelMarketConfig:
    """Read a ``mode: model_market`` experiment YAML, apply overrides and validate.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or a field is invalid (file and field named).
    """
    raw = apply_overrides(read_experiment_yaml(path), list(overrides))
    return model_market_config_from_dict(raw, source=os.fspath(path),
                                         origins=override_origins(list(overrides)))
