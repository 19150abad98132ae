"""hftbacktest ``.npz`` import: small event files built here (no network, no hftbacktest)."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.data.errors import DataError
from mmsim.data.hftbacktest_npz import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EXCH_EVENT,
    HFT_EVENT_DTYPE,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    read_hftbacktest_npz,
)
from mmsim.enums import EventFlag as F
from mmsim.enums import EventKind as K

BOTH = EXCH_EVENT | LOCAL_EVENT


def rows(*specs):
    arr = np.zeros(len(specs), dtype=HFT_EVENT_DTYPE)
    for i, (ev, exch, local, px, qty) in enumerate(specs):
        arr[i] = (ev, exch, local, px, qty, 0, 0, 0.0)
    return arr


def test_hftbacktest_constants_match_upstream():
    # py-hftbacktest/hftbacktest/types.py (nkaz001/hftbacktest)
    assert (DEPTH_EVENT, TRADE_EVENT, DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT) == (1, 2, 3, 4)
    assert (EXCH_EVENT, LOCAL_EVENT, BUY_EVENT, SELL_EVENT) == (1 << 31, 1 << 30, 1 << 29, 1 << 28)


def test_hftbacktest_npz_mapping_and_merge(tmp_path):
    data = rows(
        (DEPTH_CLEAR_EVENT | BOTH | BUY_EVENT, 100, 150, 99.0, 0.0),
        (DEPTH_CLEAR_EVENT | BOTH | SELL_EVENT, 100, 150, 102.0, 0.0),
        (DEPTH_SNAPSHOT_EVENT | BOTH | BUY_EVENT, 100, 150, 100.0, 1.5),
        (DEPTH_SNAPSHOT_EVENT | BOTH | SELL_EVENT, 100, 150, 100.5, 2.0),
        # exchange order and local order differ: duplicated by correct_event_order
        (DEPTH_EVENT | EXCH_EVENT | BUY_EVENT, 200, 400, 100.0, 1.0),
        (TRADE_EVENT | BOTH | BUY_EVENT, 300, 350, 100.5, 0.5),  # buyer-initiated
        (DEPTH_EVENT | LOCAL_EVENT | BUY_EVENT, 200, 400, 100.0, 1.0),  # local copy: dropped
        (DEPTH_EVENT | BOTH | SELL_EVENT, 300, 360, 100.5, 1.5),
        (DEPTH_EVENT | BOTH | SELL_EVENT, 300, 360, 101.0, 0.0),
        (TRADE_EVENT | BOTH | SELL_EVENT, 310, 370, 100.0, 0.25),
        (DEPTH_EVENT, 320, 380, 100.0, 1.0),  # neither EXCH nor LOCAL: invalid, dropped
    )
    path = tmp_path / "d.npz"
    np.savez_compressed(path, data=data)
    res = read_hftbacktest_npz(path, tick_size=0.5, lot_size=0.25)
    got = res.events[["exch_ts", "local_ts", "kind", "side", "price_tick", "qty", "flags"]]
    SS = F.SYNTHETIC | F.SNAPSHOT
    assert got.tolist() == [
        (100, 150, K.SNAPSHOT_BEGIN, 0, 0, 0, SS),
        (100, 150, K.CLEAR, 1, 0, 0, F.SNAPSHOT),
        (100, 150, K.CLEAR, -1, 0, 0, F.SNAPSHOT),
        (100, 150, K.LEVEL_SET, 1, 200, 6, F.SNAPSHOT),
        (100, 150, K.LEVEL_SET, -1, 201, 8, F.SNAPSHOT),
        (100, 150, K.SNAPSHOT_END, 0, 0, 0, SS | F.LAST),
        (200, 400, K.LEVEL_SET, 1, 200, 4, F.LAST),  # local_ts from the EXCH row
        (300, 350, K.TRADE, -1, 201, 2, F.LAST),  # BUY trade -> resting ask
        (300, 360, K.LEVEL_SET, -1, 201, 6, 0),
        (300, 360, K.LEVEL_SET, -1, 202, 0, F.LAST),
        (310, 370, K.TRADE, 1, 200, 1, F.LAST),
    ]
    rep = res.report
    assert rep["exch_only_rows"] == 1 and rep["local_only_rows_dropped"] == 1
    assert rep["unflagged_rows"] == 1 and rep["rows"] == 11
    assert rep["crossed_states"] == 0
    assert res.meta["clocks"] == 2 and res.meta["source"] == "hftbacktest"


def test_hftbacktest_npz_sorts_by_exchange_time_and_checks_grid(tmp_path):
    data = rows(
        (DEPTH_EVENT | BOTH | BUY_EVENT, 300, 310, 100.0, 1.0),
        (DEPTH_EVENT | BOTH | SELL_EVENT, 200, 320, 101.0, 1.0),
    )
    path = tmp_path / "d.npz"
    np.savez(path, data)  # unnamed key 'arr_0'
    res = read_hftbacktest_npz(path, tick_size=1.0, lot_size=1.0)
    assert res.events["exch_ts"].tolist() == [200, 300]
    assert res.report["exch_ts_backwards"] == 1
    with pytest.raises(DataError) as exc:
        read_hftbacktest_npz(path, tick_size=0.3, lot_size=1.0)
    assert exc.value.field == "px" and exc.value.row == 2  # 1-based index in the file's array
    with pytest.raises(DataError, match="no such file"):
        read_hftbacktest_npz(tmp_path / "missing.npz", tick_size=1.0, lot_size=1.0)
    bad = tmp_path / "bad.npz"
    np.savez(bad, data=np.zeros(3, dtype=[("x", "f8")]))
    with pytest.raises(DataError, match="field missing"):
        read_hftbacktest_npz(bad, tick_size=1.0, lot_size=1.0)
