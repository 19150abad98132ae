"""Instrument specifications: tick size, lot size, multiplier, contract type and fees."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mmsim.data import registry


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


class _DefaultInstruments(Mapping[str, dict]):
    """Read-only view of the vendors' default instruments, as registered with their formats
    (:attr:`mmsim.data.registry.ReaderSpec.instrument`); each lookup returns a new dict."""

    def __getitem__(self, kind: str) -> dict:
        fields = dict(registry.iter_default_instruments()).get(kind)
        if fields is None:
            raise KeyError(kind)
        return dict(fields)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in registry.iter_default_instruments())

    def __len__(self) -> int:
        return sum(1 for _ in registry.iter_default_instruments())

    def __repr__(self) -> str:
        return f"DEFAULT_INSTRUMENTS({dict(self.items())!r})"


#: Defaults for the vendors mmsim reads (kind → Instrument fields), from the format registry
#: (:mod:`mmsim.data.registry`); a YAML ``instrument:`` section overrides any field.
DEFAULT_INSTRUMENTS: Mapping[str, dict] = _DefaultInstruments()
