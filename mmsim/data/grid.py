"""The instrument's price and quantity grid against the data's.

A canonical event file stores prices in ticks and sizes in lots of the grid its reader used
(``meta["tick_size"]``, ``meta["lot_size"]``); the backtest converts ticks and lots back with the
*instrument's* tick and lot size. When an experiment sets another grid (``instrument.tick_size:
0.02`` on data on a 0.01 grid), every price would silently be scaled. :func:`grid_scaling`
checks the data against the instrument's grid before any replay: data that lies on the
instrument's grid is rescaled exactly; data off it is an error naming the file, the event row
and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pyarrow.parquet as pq

from mmsim.data.errors import DataError
from mmsim.enums import EventKind

#: event kinds whose ``price_tick`` is a price on the grid (MARK carries the nearest tick of a
#: decimal mark price, FUNDING none)
PRICED_KINDS = (EventKind.ADD, EventKind.CANCEL, EventKind.DELETE, EventKind.MODIFY,
                EventKind.EXECUTE, EventKind.TRADE, EventKind.LEVEL_SET, EventKind.BBO)
#: event kinds whose ``qty`` is a size in lots
SIZED_KINDS = PRICED_KINDS


@dataclass(frozen=True)
class GridScaling:
    """Exact integer rescaling of ticks and lots: ``new = old · num / den``.

    Attributes
    ----------
    tick_num, tick_den, lot_num, lot_den : int
        ``data_tick / instrument_tick`` and ``data_lot / instrument_lot`` as reduced fractions.
    """

    tick_num: int = 1
    tick_den: int = 1
    lot_num: int = 1
    lot_den: int = 1

    @property
    def identity(self) -> bool:
        return self.tick_num == self.tick_den == self.lot_num == self.lot_den == 1

    def apply(self, ev: np.ndarray) -> np.ndarray:
        """Rescale an ``EVENT_DTYPE`` chunk in place (checked by :func:`grid_scaling`)."""
        if self.tick_num != 1 or self.tick_den != 1:
            ev["price_tick"] = ev["price_tick"] * self.tick_num // self.tick_den
        if self.lot_num != 1 or self.lot_den != 1:
            ev["qty"] = ev["qty"] * self.lot_num // self.lot_den
        return ev


def _ratio(data_step: float, inst_step: float) -> Fraction:
    # decimal grids (0.01, 0.25, 0.001): compare them as the decimals they were written as
    return Fraction(str(data_step)) / Fraction(str(inst_step))


def grid_scaling(path, meta: dict, tick_size: float, lot_size: float,
                 source: str | None = None) -> GridScaling:
    """Check that the events of canonical file ``path`` lie on the instrument's grid.

    Parameters
    ----------
    path : path
        Canonical event Parquet file (``mmsim.dtypes.EVENT_SCHEMA``).
    meta : dict
        Its reader metadata; ``tick_size`` and ``lot_size`` (the data's grid) are used when
        present, otherwise the data is taken to be on the instrument's grid.
    tick_size, lot_size : float
        The instrument's grid (quote currency per tick, instrument units per lot).
    source : str, optional
        The data file to name in errors (default ``path``).

    Returns
    -------
    GridScaling
        The identity when both grids agree; otherwise the exact rescaling of ticks and lots.

    Raises
    ------
    mmsim.data.DataError
        At the first event whose price (or size) is not a whole number of the instrument's
        ticks (lots), naming the file, the event row (1-based, in exchange-time order) and the
        field ``price`` (``qty``).
    """
    name = source or str(path)
    steps = []
    for field, col, key, inst_step, kinds in (
        ("price", "price_tick", "tick_size", tick_size, PRICED_KINDS),
        ("qty", "qty", "lot_size", lot_size, SIZED_KINDS),
    ):
        data_step = meta.get(key)
        if data_step is None or math.isclose(float(data_step), float(inst_step), rel_tol=1e-12):
            steps.append(Fraction(1))
            continue
        r = _ratio(float(data_step), float(inst_step))
        steps.append(r)
        if r.denominator == 1:
            continue  # the instrument's grid is finer: every data value lies on it
        pf = pq.ParquetFile(path)
        row0 = 0
        for rg in range(pf.num_row_groups):
            t = pf.read_row_group(rg, columns=["kind", col])
            k = t.column("kind").to_numpy()
            v = t.column(col).to_numpy()
            bad = np.isin(k, kinds) & ((v * r.numerator) % r.denominator != 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                value = float(v[i]) * float(data_step)
                unit = "tick" if field == "price" else "lot"
                raise DataError(
                    name, row0 + i + 1, field,
                    f"{value:.10g} is not on the instrument's {unit} grid {inst_step:g} "
                    f"(the data's grid is {float(data_step):g}): set instrument.{key} to "
                    f"{float(data_step):g} or a value the data lies on",
                )
            row0 += t.num_rows
    return GridScaling(steps[0].numerator, steps[0].denominator,
                       steps[1].numerator, steps[1].denominator)
