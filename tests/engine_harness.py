"""Run the engine on hand-built event lists (no files), for hand-checked tests."""

from __future__ import annotations

import numpy as np

from mmsim.config import config_from_dict
from mmsim.dtypes import EVENT_DTYPE
from mmsim.engine.backtest import Engine
from mmsim.enums import EventFlag
from mmsim.instruments import Instrument
from mmsim.resolve import resolve_for_events

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def events(rows) -> np.ndarray:
    """rows: (t_ms, kind, side, price_tick, qty, order_id[, value[, local_ms]]) → EVENT_DTYPE
    array (one clock unless local_ms is given)."""
    ev = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, row in enumerate(rows):
        t_ms, kind, side, px, q, oid = row[:6]
        value = row[6] if len(row) > 6 else 0.0
        ts = T0 + int(round(t_ms * MS))
        lts = T0 + int(round(row[7] * MS)) if len(row) > 7 else ts
        ev[i] = (ts, lts, px, q, oid, value, kind, side, EventFlag.LAST)
    return ev


class Harness:
    """An Engine with a ``static`` policy; ``params`` may be changed between chunks.

    ``queue_model`` and ``feed_offset_ns`` go into the config (``queue.model``,
    ``latency.feed_offset_nanos``); ``latency_series`` is an already loaded series for
    ``latency.model: interpolated``; ``cfg`` holds further config sections (dicts).
    """

    def __init__(self, policy="static", params=None, hedger=None, hedger_params=None,
                 instrument=None, queue_model="fifo", feed_offset_ns=0, ref_price=10_000,
                 latency_series=None, **cfg):
        raw = {
            "data": {"kind": "synthetic"},
            "policy": {"name": policy, **(params or {})},
            "latency": {"feed_nanos": 0, "entry_nanos": MS, "response_nanos": MS,
                        "feed_offset_nanos": feed_offset_ns},
            "engine": {"decision_interval_nanos": 100 * MS, "equity_interval_nanos": 100 * MS,
                       "book_width_ticks": 4096, "max_book_orders": 4096, "horizon": "none"},
            "queue": {"model": queue_model},
        }
        if hedger is not None:
            raw["hedger"] = {"name": hedger, **(hedger_params or {})}
        for k, v in cfg.items():
            raw.setdefault(k, {})
            raw[k].update(v)
        self.cfg = config_from_dict(raw)
        self.inst = instrument or Instrument(tick_size=0.01, lot_size=1.0)
        self.spec = resolve_for_events(self.cfg, instrument=self.inst, ref_price_tick=ref_price,
                                       latency_series=latency_series)
        self.engine = Engine(self.spec)
        self.fills, self.orders, self.equity = [], [], []

    def sink(self, f, o, e):
        self.fills.append(f)
        self.orders.append(o)
        self.equity.append(e)

    def feed(self, rows, final=False):
        self.engine.feed(events(rows), self.sink, final=final)

    def set_param(self, name, value):
        names = list(self.spec.policy.spec.params)
        self.engine.pparams[names.index(name)] = value

    def all_fills(self):
        return np.concatenate(self.fills) if self.fills else np.zeros(0)

    def all_orders(self):
        return np.concatenate(self.orders) if self.orders else np.zeros(0)
