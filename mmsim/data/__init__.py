"""Vendor data to canonical event files (:data:`mmsim.dtypes.EVENT_DTYPE` in Parquet).

The formats are registered in :mod:`mmsim.data.registry`. The readers and the store are
imported on first use (``from mmsim.data import read_lobster`` works as before), so importing
this package, the registry or :mod:`mmsim.config` does not import pyarrow, pandas, polars or
numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmsim.data.errors import DataError
from mmsim.data.registry import (
    ReaderSpec,
    book_of,
    get_reader,
    list_readers,
    register_reader,
)

if TYPE_CHECKING:
    from mmsim.data.binance import read_binance
    from mmsim.data.binance_hist import read_binance_hist
    from mmsim.data.bybit import read_bybit
    from mmsim.data.databento import read_databento
    from mmsim.data.hftbacktest_npz import read_hftbacktest_npz
    from mmsim.data.l3_csv import read_l3_csv
    from mmsim.data.lobster import read_lobster
    from mmsim.data.store import (
        IngestResult,
        iter_event_chunks,
        read_events,
        read_meta,
        write_events,
    )
    from mmsim.data.tardis import read_tardis

#: public name → the module that defines it (imported on first access)
_LAZY = {
    "read_binance": "mmsim.data.binance",
    "read_binance_hist": "mmsim.data.binance_hist",
    "read_bybit": "mmsim.data.bybit",
    "read_databento": "mmsim.data.databento",
    "read_hftbacktest_npz": "mmsim.data.hftbacktest_npz",
    "read_l3_csv": "mmsim.data.l3_csv",
    "read_lobster": "mmsim.data.lobster",
    "read_tardis": "mmsim.data.tardis",
    "IngestResult": "mmsim.data.store",
    "iter_event_chunks": "mmsim.data.store",
    "read_events": "mmsim.data.store",
    "read_meta": "mmsim.data.store",
    "write_events": "mmsim.data.store",
}

__all__ = [
    "DataError",
    "IngestResult",
    "ReaderSpec",
    "book_of",
    "get_reader",
    "iter_event_chunks",
    "list_readers",
    "read_binance",
    "read_binance_hist",
    "read_bybit",
    "read_databento",
    "read_events",
    "read_hftbacktest_npz",
    "read_l3_csv",
    "read_lobster",
    "read_meta",
    "read_tardis",
    "register_reader",
    "write_events",
]


def __getattr__(name: str) -> Any:
    """The readers and store functions, imported on first access.

    Raises
    ------
    AttributeError
        For any other name (so ``from mmsim.data import store`` imports the submodule).
    """
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'mmsim.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
