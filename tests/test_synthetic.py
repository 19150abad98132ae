"""Tests of the synthetic L3 generator: RNG, determinism, chunk invariance, book validity."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from mmsim.data.synthetic import (
    DEFAULT_START_TS,
    SyntheticL3,
    SyntheticParams,
    _next_u64_nb,
    _seed_nb,
    generate_synthetic,
)
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EventFlag, EventKind

M64 = (1 << 64) - 1
#: EVENT_DTYPE without padding: numpy leaves the padding bytes of aligned records
#: unspecified in copies (np.concatenate), so compare the packed fields byte for byte.
PACKED = np.dtype([(name, EVENT_DTYPE[name]) for name in EVENT_DTYPE.names])


def _bytes(ev: np.ndarray) -> bytes:
    return ev.astype(PACKED).tobytes()


def _splitmix64(x: int) -> tuple[int, int]:
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & M64


def _xoshiro_reference(seed: int, n: int) -> list[int]:
    """Plain-Python xoshiro256** seeded with splitmix64 (https://prng.di.unimi.it/)."""
    s = []
    x = seed
    for _ in range(4):
        x, z = _splitmix64(x)
        s.append(z)
    out = []
    for _ in range(n):
        out.append((_rotl((s[1] * 5) & M64, 7) * 9) & M64)
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
    return out


@pytest.mark.parametrize("seed", [0, 1, 12345, M64])
def test_rng_matches_reference(seed):
    rng = np.zeros(4, dtype=np.uint64)
    _seed_nb(rng, np.uint64(seed))
    got = [int(_next_u64_nb(rng)) for _ in range(20)]
    assert got == _xoshiro_reference(seed, 20)


def test_splitmix64_known_value():
    # first output of splitmix64 from state 0 (Vigna's reference implementation)
    assert _splitmix64(0)[1] == 0xE220A8397B1DCDAF


def test_deterministic_and_seeded():
    a = generate_synthetic(20_000, seed=3)
    b = generate_synthetic(20_000, seed=3)
    c = generate_synthetic(20_000, seed=4)
    assert a.dtype == EVENT_DTYPE and a.shape == (20_000,)
    assert _bytes(a) == _bytes(b)
    assert _bytes(a) != _bytes(c)


@pytest.mark.parametrize("sizes", [[1] * 300 + [9_700], [7, 13, 50, 999, 8_931], [80, 1, 9_919]])
def test_chunk_invariance(sizes):
    total = sum(sizes)
    ref = generate_synthetic(total, seed=11)
    gen = SyntheticL3(seed=11)
    parts = [gen.next_chunk(n) for n in sizes]
    assert gen.n_emitted == total
    assert _bytes(np.concatenate(parts)) == _bytes(ref)


def test_chunk_invariance_random_sizes():
    ref = generate_synthetic(60_000, seed=5, market_weight=0.2, max_market_qty=200)
    rng = np.random.default_rng(0)
    gen = SyntheticL3(seed=5, market_weight=0.2, max_market_qty=200)
    parts, n = [], 0
    while n < 60_000:
        k = min(int(rng.integers(0, 3_000)), 60_000 - n)
        parts.append(gen.next_chunk(k))
        n += k
    assert _bytes(np.concatenate(parts)) == _bytes(ref)


def test_zero_and_negative_chunk():
    gen = SyntheticL3(seed=1)
    assert gen.next_chunk(0).shape == (0,)
    with pytest.raises(ValueError):
        gen.next_chunk(-1)


def test_opening_book_and_clock():
    p = SyntheticParams()
    ev = generate_synthetic(5_000, seed=2)
    n_open = 2 * p.initial_levels * p.initial_orders_per_level
    head = ev[:n_open]
    assert (head["kind"] == EventKind.ADD).all()
    assert (head["exch_ts"] == DEFAULT_START_TS).all()
    assert (head["flags"][:-1] == 0).all() and head["flags"][-1] == EventFlag.LAST
    bids = head[head["side"] == 1]
    asks = head[head["side"] == -1]
    assert bids["price_tick"].max() == p.start_price_tick
    assert asks["price_tick"].min() == p.start_price_tick + 1
    assert (ev["local_ts"] == ev["exch_ts"]).all()
    assert (np.diff(ev["exch_ts"]) >= 0).all()
    assert (ev["value"] == 0).all()
    # mean inter-arrival close to 1 / event_rate_per_s (ignoring same-time groups)
    span_s = (ev["exch_ts"][-1] - ev["exch_ts"][0]) / 1e9
    assert 2.0 < span_s < 8.0


def _replay(ev: np.ndarray, min_levels: int) -> dict[str, int]:
    """Replay through a plain-Python FIFO book and assert the stream's invariants."""
    orders: dict[int, list[int]] = {}  # id -> [side, price, qty]
    levels: dict[int, dict[int, deque]] = {1: {}, -1: {}}
    next_id = 1
    in_group = False
    group_ts = group_side = None
    counts = {"add": 0, "cancel": 0, "delete": 0, "execute": 0, "groups": 0}

    def best(side: int) -> int | None:
        lv = levels[side]
        if not lv:
            return None
        return max(lv) if side == 1 else min(lv)

    def remove(oid: int) -> None:
        side, price, _ = orders.pop(oid)
        q = levels[side][price]
        q.remove(oid)
        if not q:
            del levels[side][price]

    n = len(ev)
    for i in range(n):
        e = ev[i]
        kind, side, price = int(e["kind"]), int(e["side"]), int(e["price_tick"])
        qty, oid, flags = int(e["qty"]), int(e["order_id"]), int(e["flags"])
        last = bool(flags & EventFlag.LAST)
        assert qty > 0, i
        if kind == EventKind.ADD:
            assert not in_group, i
            assert oid == next_id, i
            next_id += 1
            other = best(-side)
            if other is not None:
                assert (price < other) if side == 1 else (price > other), i
            orders[oid] = [side, price, qty]
            levels[side].setdefault(price, deque()).append(oid)
            counts["add"] += 1
        elif kind in (EventKind.CANCEL, EventKind.DELETE):
            assert not in_group and last, i
            assert oid in orders, i
            o = orders[oid]
            assert o[0] == side and o[1] == price, i
            if kind == EventKind.CANCEL:
                assert 0 < qty < o[2], i
                o[2] -= qty
                counts["cancel"] += 1
            else:
                assert qty == o[2], i
                remove(oid)
                counts["delete"] += 1
        elif kind == EventKind.EXECUTE:
            if not in_group:
                in_group, group_ts, group_side = True, int(e["exch_ts"]), side
                counts["groups"] += 1
            assert int(e["exch_ts"]) == group_ts and side == group_side, i
            assert oid in orders, i
            o = orders[oid]
            assert o[0] == side and o[1] == price, i
            assert price == best(side), i  # best level ...
            assert levels[side][price][0] == oid, i  # ... FIFO front
            assert qty <= o[2], i
            if qty < o[2]:
                assert last, i  # a partial execution ends the market order
                o[2] -= qty
            else:
                remove(oid)
            assert len(levels[side]) >= 1, i  # never empties a side
            counts["execute"] += 1
            if last:
                in_group = False
        else:
            raise AssertionError(f"unexpected kind {kind} at {i}")
        if last:
            bb, ba = best(1), best(-1)
            assert bb is None or ba is None or bb < ba, i
        if i + 1 < n and ev["exch_ts"][i + 1] != e["exch_ts"]:
            # end of an exchange time: refill done, both sides have min_levels levels
            assert len(levels[1]) >= min_levels and len(levels[-1]) >= min_levels, i
    return counts


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"market_weight": 0.3, "market_qty_mean": 30.0, "max_market_qty": 200},
        {"cancel_weight": 1.0, "target_live_orders": 20, "mid_move_rate_per_s": 50.0},
        {"add_depth_mean_ticks": 0.0, "initial_levels": 1, "initial_orders_per_level": 1},
    ],
)
def test_replay_book_invariants(params):
    ev = generate_synthetic(50_000, seed=9, **params)
    counts = _replay(ev, SyntheticParams(**params).min_levels)
    assert counts["add"] > 0 and counts["delete"] > 0 and counts["execute"] > 0
    assert counts["cancel"] > 0 and counts["groups"] > 0
    assert (np.diff(ev["exch_ts"]) >= 0).all()
    # only market-order groups and the opening book carry records without LAST
    no_last = (ev["flags"] & EventFlag.LAST) == 0
    assert (ev["kind"][no_last] != EventKind.CANCEL).all()
    assert (ev["kind"][no_last] != EventKind.DELETE).all()


def test_book_size_is_stationary():
    gen = SyntheticL3(seed=1)
    sizes = []
    for _ in range(20):
        gen.next_chunk(50_000)
        sizes.append(gen.n_live_orders)
    assert max(sizes) < 3 * SyntheticParams().target_live_orders
    assert min(sizes) > SyntheticParams().target_live_orders // 4


@pytest.mark.parametrize(
    "bad",
    [
        {"event_rate_per_s": 0.0},
        {"min_levels": 1},
        {"market_qty_mean": 0.5},
        {"partial_cancel_prob": 1.5},
        {"start_price_tick": 10},
        {"max_live_orders": 10},
        {"mid_move_rate_per_s": 1e9},
    ],
)
def test_bad_params(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SyntheticL3(seed=0, **bad)


def test_unknown_param():
    with pytest.raises(TypeError):
        SyntheticL3(seed=0, no_such_param=1)


def test_the_synthetic_cache_file_is_the_one_written_from_whole_records(tmp_path):
    """The cache file, generated piece by piece into reused column buffers, has the bytes of
    the same events written as whole row groups of records (the last group short)."""
    import hashlib

    from mmsim.data import sources
    from mmsim.data.store import CanonicalWriter, iter_event_chunks

    n, group = 260_003, 120_000  # pieces of SYNTHETIC_PIECE (50 k): 50 k, 50 k, 20 k per group
    assert sources.SYNTHETIC_PIECE < group
    pieces = tmp_path / "pieces.parquet"
    sources._write_synthetic(pieces, {"n_events": n}, 11, group)
    whole = tmp_path / "whole.parquet"
    meta = {"source": "synthetic", "symbol": "SYN", "clocks": 1, "params": {"n_events": n},
            "seed": 11, "note": "synthetic L3 order flow generated by mmsim (no external data)"}
    with CanonicalWriter(whole, meta, {}) as w:
        gen = SyntheticL3(seed=11)
        for k in (group, group, n - 2 * group):
            w.write(gen.next_chunk(k), group)
    assert [len(c) for c in iter_event_chunks(pieces, group)] == [group, group, n - 2 * group]
    assert hashlib.sha256(pieces.read_bytes()).digest() == \
        hashlib.sha256(whole.read_bytes()).digest()


@pytest.mark.parametrize("bad", ["missing", "dtype", "length", "strided"])
def test_write_columns_refuses_columns_it_cannot_wrap(tmp_path, bad):
    from mmsim.data.store import CanonicalWriter

    ev = SyntheticL3(seed=1).next_chunk(10)
    cols = {name: np.ascontiguousarray(ev[name]) for name in EVENT_DTYPE.names}
    if bad == "missing":
        del cols["flags"]
    elif bad == "dtype":
        cols["qty"] = cols["qty"].astype(np.int32)
    elif bad == "length":
        cols["value"] = cols["value"][:5]
    else:
        cols["exch_ts"] = ev["exch_ts"]  # a field view of the records: strided
    with CanonicalWriter(tmp_path / "x.parquet", {}, {}) as w:
        with pytest.raises(ValueError, match="column|columns"):
            w.write_columns(cols)
        w.write(ev)
