"""The k-way merge of instruments' event streams by exchange time (:mod:`mmsim.data.merge`)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsim.data.merge import merge_chunks
from mmsim.dtypes import EVENT_DTYPE


def _events(ts, stream: int) -> np.ndarray:
    ev = np.zeros(len(ts), dtype=EVENT_DTYPE)
    ev["exch_ts"] = np.asarray(ts, dtype=np.int64)
    ev["local_ts"] = ev["exch_ts"]
    # a unique id: stream and position within it
    ev["order_id"] = stream * 1_000_000 + np.arange(len(ts))
    return ev


def _chunked(ev: np.ndarray, cuts) -> list[np.ndarray]:
    edges = [0, *sorted(c for c in cuts if 0 < c < len(ev)), len(ev)]
    return [ev[a:b].copy() for a, b in itertools.pairwise(edges)]


def _reference(events: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ev = np.concatenate([np.empty(0, EVENT_DTYPE), *events])
    ins = np.concatenate([np.empty(0, np.uint8)]
                         + [np.full(len(e), k, np.uint8) for k, e in enumerate(events)])
    order = np.lexsort((np.arange(len(ev)), ins, ev["exch_ts"]))
    return ev[order], ins[order]


def _merged(streams, chunk_events):
    out = list(merge_chunks(streams, chunk_events))
    for ev, ins in out:
        assert ev.dtype == EVENT_DTYPE and ins.dtype == np.uint8
        assert 1 <= len(ev) <= chunk_events and len(ins) == len(ev)
    for ev, _ in out[:-1]:
        assert len(ev) == chunk_events
    if not out:
        return np.empty(0, EVENT_DTYPE), np.empty(0, np.uint8)
    return np.concatenate([e for e, _ in out]), np.concatenate([i for _, i in out])


def test_equal_timestamps_interleave_quoted_first_then_by_instrument_then_data_order():
    a = _events([1, 2, 2, 3], 0)
    b = _events([2, 2, 3], 1)
    c = _events([0, 2, 5], 2)
    # chunk boundaries inside runs of equal timestamps
    ev, ins = _merged([iter([a[:2], a[2:]]), iter([b[:1], b[1:]]), iter([c])], 3)
    assert ev["exch_ts"].tolist() == [0, 1, 2, 2, 2, 2, 2, 3, 3, 5]
    assert ins.tolist() == [2, 0, 0, 0, 1, 1, 2, 0, 1, 2]
    assert ev["order_id"].tolist() == [2_000_000, 0, 1, 2, 1_000_000, 1_000_001, 2_000_001,
                                       3, 1_000_002, 2_000_002]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n_streams=st.integers(1, 4), chunk_events=st.integers(1, 12))
def test_merge_equals_a_stable_sort_by_time_then_stream(data, n_streams, chunk_events):
    streams, events = [], []
    for k in range(n_streams):
        ts = sorted(data.draw(st.lists(st.integers(0, 15), max_size=30), label=f"ts{k}"))
        ev = _events(ts, k)
        cuts = data.draw(st.lists(st.integers(0, max(len(ts), 1)), max_size=8),
                         label=f"cuts{k}")
        chunks = _chunked(ev, cuts)
        # empty chunks anywhere are skipped
        if data.draw(st.booleans(), label=f"empty{k}"):
            chunks.insert(data.draw(st.integers(0, len(chunks)), label=f"at{k}"),
                          np.empty(0, EVENT_DTYPE))
        streams.append(iter(chunks))
        events.append(ev)
    ev, ins = _merged(streams, chunk_events)
    ref_ev, ref_ins = _reference(events)
    np.testing.assert_array_equal(ev, ref_ev)
    np.testing.assert_array_equal(ins, ref_ins)


def test_empty_streams_and_streams_that_end_early():
    a = _events(range(0, 100, 1), 0)
    b = _events([3, 4], 1)  # ends early
    ev, ins = _merged([iter(_chunked(a, [10, 50])), iter([b]), iter([]),
                       iter([np.empty(0, EVENT_DTYPE)])], 7)
    ref_ev, ref_ins = _reference([a, b, a[:0], a[:0]])
    np.testing.assert_array_equal(ev, ref_ev)
    np.testing.assert_array_equal(ins, ref_ins)
    assert list(merge_chunks([iter([]), iter([])], 5)) == []
    assert list(merge_chunks([], 5)) == []


def test_one_stream_yields_its_events_with_zeros():
    a = _events([1, 1, 2, 9], 0)
    (ev, ins), = list(merge_chunks([iter([a])], 10))
    np.testing.assert_array_equal(ev, a)
    assert ins.tolist() == [0, 0, 0, 0]


def test_it_is_lazy_and_holds_at_most_a_chunk_per_stream_plus_an_output_chunk():
    rng = np.random.default_rng(7)
    max_chunk, chunk_events, n_streams = 50, 64, 3
    pulled = [0]

    def stream(k: int, n_chunks: int | None):
        t = 0
        for _ in itertools.count() if n_chunks is None else range(n_chunks):
            n = int(rng.integers(1, max_chunk + 1))
            ts = t + np.cumsum(rng.integers(0, 3, n))
            t = int(ts[-1])
            pulled[0] += n
            yield _events(ts, k)

    # an infinite stream: the first outputs come without exhausting it
    it = merge_chunks([stream(0, None), stream(1, 40), stream(2, None)], chunk_events)
    emitted = 0
    for _ in range(200):
        ev, _ins = next(it)
        # every event read is pending (<= one chunk per stream), waiting or being yielded
        assert pulled[0] - emitted <= n_streams * max_chunk + chunk_events
        emitted += len(ev)
    assert emitted == 200 * chunk_events


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="chunk_events"):
        list(merge_chunks([iter([])], 0))
    with pytest.raises(ValueError, match="stream 1: exch_ts decreases"):
        list(merge_chunks([iter([_events([1, 2], 0)]), iter([_events([5, 4], 1)])], 4))
    with pytest.raises(ValueError, match="stream 0: exch_ts decreases"):
        list(merge_chunks([iter([_events([1, 5], 0), _events([4], 0)])], 4))
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        list(merge_chunks([iter([np.zeros(3)])], 4))
