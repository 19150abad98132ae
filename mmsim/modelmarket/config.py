"""Model-market experiment YAML (``mode: model_market``) → validated, frozen config objects.

Time in the model market is in the model's own time unit (the paper's: ``T = 1``); fields and
``ctx`` entries named ``*_s`` hold that unit, and rates (``fill_a_per_s``) and volatilities are
per that unit. ``--set key.sub=value`` overrides any field before validation, e.g.
``--set paths=5000`` or ``--set strategies.inventory_g01.policy.gamma=0.2``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmsim.config import (
    ConfigError,
    KernelConfig,
    apply_overrides,
    config_error,
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
    policy : KernelConfig
        ``name`` of a registered policy plus its parameters (``mmsim.policies.registry``).
    horizon : {"finite", "infinite"}
        ``finite``: ``ctx[TIME_TO_HORIZON_S] = T − t``. ``infinite``: the driver passes ``inf``
        and the policy uses its own constant time scale (``tau_s`` of ``avellaneda_stoikov``:
        the infinite-horizon variant, τ held constant).
    match_spread_of : str or None
        Id of a strategy listed earlier: set this policy's ``half_spread_px`` to half of that
        strategy's measured average spread (the paper's symmetric benchmark).
    label : str or None
        Display name (default: the id).
    group : str or None
        Strategies of one group share a profit histogram ``profit_hist_<group>.png``.
    """

    policy: KernelConfig
    horizon: Literal["finite", "infinite"] = "finite"
    match_spread_of: str | None = None
    label: str | None = None
    group: str | None = None


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
            raise ValueError("strategies: give at least one")
        seen: list[str] = []
        for sid, st in self.strategies.items():
            if not sid or not all(c.isalnum() or c in "_-" for c in sid):
                raise ValueError(f"strategies.{sid}: ids may hold letters, digits, _ and - only")
            if st.match_spread_of is not None and st.match_spread_of not in seen:
                raise ValueError(
                    f"strategies.{sid}.match_spread_of: '{st.match_spread_of}' is not a "
                    f"strategy listed before it"
                )
            seen.append(sid)
        unknown = sorted(set(self.reference) - set(self.strategies))
        if unknown:
            raise ValueError(f"reference: unknown strategy id(s) {unknown}")
        return self

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())

    def digest(self) -> str:
        """sha256 of the canonical JSON of the whole config (the run's identity)."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def model_market_config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> ModelMarketConfig:
    """Validate a raw model-market config mapping.

    Raises
    ------
    ConfigError
        Naming ``source`` and every invalid field.
    """
    try:
        return ModelMarketConfig(**raw)
    except ValidationError as e:
        raise config_error(e, source) from None
    except TypeError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_model_market_config(
    path: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> ModelMarketConfig:
    """Read a ``mode: model_market`` experiment YAML, apply overrides and validate.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or a field is invalid (file and field named).
    """
    p = Path(path)
    raw = apply_overrides(read_experiment_yaml(p), list(overrides))
    return model_market_config_from_dict(raw, source=str(p))
