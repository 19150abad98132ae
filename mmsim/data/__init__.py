"""Vendor data to canonical event files (:data:`mmsim.dtypes.EVENT_DTYPE` in Parquet)."""

from mmsim.data.binance import read_binance
from mmsim.data.binance_hist import read_binance_hist
from mmsim.data.databento import read_databento
from mmsim.data.errors import DataError
from mmsim.data.hftbacktest_npz import read_hftbacktest_npz
from mmsim.data.lobster import read_lobster
from mmsim.data.store import IngestResult, iter_event_chunks, read_events, read_meta, write_events
from mmsim.data.tardis import read_tardis

__all__ = [
    "DataError",
    "IngestResult",
    "iter_event_chunks",
    "read_binance",
    "read_binance_hist",
    "read_databento",
    "read_events",
    "read_hftbacktest_npz",
    "read_lobster",
    "read_meta",
    "read_tardis",
    "write_events",
]
