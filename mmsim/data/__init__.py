"""Vendor data to canonical event files (:data:`mmsim.dtypes.EVENT_DTYPE` in Parquet)."""

from mmsim.data.databento import read_databento
from mmsim.data.errors import DataError
from mmsim.data.lobster import read_lobster
from mmsim.data.store import IngestResult, iter_event_chunks, read_events, read_meta, write_events

__all__ = [
    "DataError",
    "IngestResult",
    "iter_event_chunks",
    "read_databento",
    "read_events",
    "read_lobster",
    "read_meta",
    "write_events",
]
