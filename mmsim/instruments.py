"""Instrument specifications: tick size, lot size, multiplier, contract type and fees."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Instrument(BaseModel):
    """A tradable instrument (frozen, validated).

    Parameters
    ----------
    symbol : str
        Name, for reports.
    tick_size : float
        Price of one tick in quote currency (``price = price_tick * tick_size``).
    lot_size : float
        Quantity of one lot in instrument units (``qty_units = qty * lot_size``).
    multiplier : float
        Contract multiplier. Linear: notional = ``qty_units * price * multiplier``.
        Inverse: notional in coin = ``qty_units * multiplier / price`` (MODELS.md §8).
    contract : {"linear", "inverse"}
    maker_fee_bps, taker_fee_bps : float
        Fees in basis points of notional; negative is a rebate.
    maker_fee_per_lot, taker_fee_per_lot : float
        Fees per lot traded (e.g. per share or per contract), added to the bps fee.

    Raises
    ------
    pydantic.ValidationError
        If a size is not positive.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = "SYN"
    tick_size: float = Field(0.01, gt=0)
    lot_size: float = Field(1.0, gt=0)
    multiplier: float = Field(1.0, gt=0)
    contract: Literal["linear", "inverse"] = "linear"
    maker_fee_bps: float = 0.0
    taker_fee_bps: float = 0.0
    maker_fee_per_lot: float = 0.0
    taker_fee_per_lot: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> Instrument:
        if self.contract == "inverse" and self.multiplier <= 0:
            raise ValueError("inverse contracts need a positive multiplier (USD per contract)")
        return self

    @property
    def is_inverse(self) -> bool:
        return self.contract == "inverse"


#: Defaults for the vendors mmsim reads; a YAML ``instrument:`` section overrides any field.
DEFAULT_INSTRUMENTS: dict[str, dict] = {
    # NASDAQ equities from LOBSTER: prices in $0.0001, tick $0.01, 1 share lots.
    "lobster": {"symbol": "LOBSTER", "tick_size": 0.01, "lot_size": 1.0},
    # CME E-mini S&P 500: tick 0.25 index points, $50 per point.
    "databento": {"symbol": "ES", "tick_size": 0.25, "lot_size": 1.0, "multiplier": 50.0},
    "synthetic": {"symbol": "SYN", "tick_size": 0.01, "lot_size": 1.0},
}
