"""Micro-price tables on disk, for ``signals.microprice_table`` (no numba).

A table file holds the adjustments ``G(I, S)`` of :class:`~mmsim.signals.microprice.MicroPriceTable`
(``adjust_tick``, float64 ``[n_imb, n_spread]``, ticks; NaN for a state without a value) and
the estimation's clock and window, as ``.npz`` (numpy arrays) or ``.json`` (NaN as null).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mmsim.signals.microprice import (
    MicroPriceTable,
    clock_top_of_book,
    estimate_microprice,
)
from mmsim.signals.spec import MAX_MICRO_IMB, MAX_MICRO_SPREAD

_META = ("clock_ns", "lag", "start_ts", "end_ts", "n_samples", "n_transitions", "n_terms")


def estimate_microprice_table(events: np.ndarray, clock_ns: int, *,
                              time_field: str = "local_ts", **kwargs) -> MicroPriceTable:
    """Estimate a micro-price table from canonical events (EVENT_DTYPE, stream order): the
    top of book sampled every ``clock_ns`` ns on ``time_field``
    (:func:`~mmsim.signals.microprice.clock_top_of_book`), then
    :func:`~mmsim.signals.microprice.estimate_microprice` with ``kwargs`` (``n_imb``,
    ``n_spread``, ``n_terms``, ``max_move_tick``, ``lag``). Raises ValueError as they do."""
    tob = clock_top_of_book(events, clock_ns, time_field=time_field)
    return estimate_microprice(tob.ts, tob.bid_tick, tob.ask_tick, tob.bid_qty, tob.ask_qty,
                               **kwargs)


def save_microprice_table(table: MicroPriceTable, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` to ``path`` (``.npz`` or ``.json``, by its suffix); returns the path.

    Raises
    ------
    ValueError
        Another suffix.
    """
    p = Path(path)
    meta = {k: int(getattr(table, k)) for k in _META}
    if p.suffix == ".npz":
        np.savez(p, adjust_tick=table.adjust_tick, n_obs=table.n_obs,
                 **{k: np.int64(v) for k, v in meta.items()})
    elif p.suffix == ".json":
        g = [[None if np.isnan(x) else float(x) for x in row] for row in table.adjust_tick]
        p.write_text(json.dumps({"adjust_tick": g, "n_obs": table.n_obs.tolist(), **meta},
                                indent=1) + "\n")
    else:
        raise ValueError(f"{p}: a micro-price table is a .npz or .json file")
    return p


def load_microprice_adjust(path: str | os.PathLike[str]) -> np.ndarray:
    """The ``adjust_tick`` table (float64 ``[n_imb, n_spread]``, ticks) of a file written by
    :func:`save_microprice_table`.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Another suffix, an unreadable file, no ``adjust_tick``, or a shape outside
        ``2..MAX_MICRO_IMB`` × ``1..MAX_MICRO_SPREAD`` (the message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such micro-price table")
    try:
        if p.suffix == ".npz":
            with np.load(p) as z:
                g = np.asarray(z["adjust_tick"], dtype=np.float64)
        elif p.suffix == ".json":
            raw = json.loads(p.read_text())["adjust_tick"]
            g = np.array([[np.nan if x is None else x for x in row] for row in raw],
                         dtype=np.float64)
        else:
            raise ValueError("a micro-price table is a .npz or .json file")
    except (KeyError, TypeError, OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: not a micro-price table ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    if g.ndim != 2 or not (2 <= g.shape[0] <= MAX_MICRO_IMB) or not (
            1 <= g.shape[1] <= MAX_MICRO_SPREAD):
        raise ValueError(f"{p}: adjust_tick must be [n_imb, n_spread] with 2 <= n_imb <= "
                         f"{MAX_MICRO_IMB} and 1 <= n_spread <= {MAX_MICRO_SPREAD}, got "
                         f"shape {g.shape}")
    return g
