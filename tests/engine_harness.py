"""Run the engine on hand-built event lists (no files), for hand-checked tests."""

from __future__ import annotations

import numpy as np

from mmsim.config import config_from_dict
from mmsim.dtypes import EVENT_DTYPE
from mmsim.engine.backtest import Engine
from mmsim.enums import EventFlag
from mmsim.hedgers.registry import get_hedger
from mmsim.instruments import Instrument
from mmsim.policies.registry import get_policy

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
    """An Engine with a ``static`` policy; ``params`` may be changed between chunks."""

    def __init__(self, policy="static", params=None, hedger=None, hedger_params=None,
                 instrument=None, queue_model="fifo", feed_offset_ns=0, ref_price=10_000,
                 latency_series=None, **cfg):
        raw = {
            "data": {"kind": "synthetic"},
            "policy": {"name": policy, **(params or {})},
            "latency": {"feed_nanos": 0, "entry_nanos": MS, "response_nanos": MS},
            "engine": {"decision_interval_nanos": 100 * MS, "equity_interval_nanos": 100 * MS,
                       "book_width_ticks": 4096, "max_book_orders": 4096, "horizon": "none"},
        }
        for k, v in cfg.items():
            raw.setdefault(k, {})
            raw[k].update(v)
        self.cfg = config_from_dict(raw)
        pol = get_policy(policy)
        hed = get_hedger(hedger or "none")
        self.inst = instrument or Instrument(tick_size=0.01, lot_size=1.0)
        self.engine = Engine(self.cfg, self.inst, pol, pol.param_vector(self.cfg.policy.params()),
                             hed, hed.param_vector(hedger_params or {}), ref_price, 0,
                             queue_model=queue_model, feed_offset_ns=feed_offset_ns,
                             latency_series=latency_series)
        self.fills, self.orders, self.equity = [], [], []

    def sink(self, f, o, e):
        self.fills.append(f)
        self.orders.append(o)
        self.equity.append(e)

    def feed(self, rows, final=False):
        self.engine.feed(events(rows), self.sink, final=final)

    def set_param(self, name, value):
        names = list(get_policy(self.cfg.policy.name).params)
        self.engine.pparams[names.index(name)] = value

    def all_fills(self):
        return np.concatenate(self.fills) if self.fills else np.zeros(0)

    def all_orders(self):
        return np.concatenate(self.orders) if self.orders else np.zeros(0)
