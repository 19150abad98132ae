"""Merge the event streams of several instruments into one stream, by exchange time.

Events of all instruments are merged by exchange time (``exch_ts``); at equal exchange
timestamps the quoted instrument's events come first, then instrument 1's, then instrument
2's, ...; within one instrument the data's order is kept. This is a stable k-way merge: the
result equals concatenating every instrument's events in instrument order and sorting them
stably by ``exch_ts``.

The merge is lazy and its memory is flat in the length of the data: it holds at most one
pending chunk per stream plus the output being assembled, and reads a stream's next chunk
only once its pending events are all merged. An event is emitted once no event still unread
can precede it: for every other stream that is not exhausted, the last event it has pending
has a later exchange time, or the same one and a higher stream index (a stream's unread
events are never earlier than its pending ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from mmsim.dtypes import EVENT_DTYPE

__all__ = ["merge_chunks"]

#: the most streams :func:`merge_chunks` takes (stream indices are ``uint8``)
MAX_STREAMS = 256


class _Stream:
    """One input stream: its iterator, its pending events and its last exchange time."""

    __slots__ = ("index", "it", "pending", "exhausted", "last_ts")

    def __init__(self, index: int, it: Iterator[np.ndarray]) -> None:
        self.index = index
        self.it = it
        self.pending = np.empty(0, dtype=EVENT_DTYPE)
        self.exhausted = False
        self.last_ts: int | None = None  # exch_ts of the last event read (for the order check)

    def refill(self) -> None:
        """Read the next non-empty chunk (or mark the stream exhausted).

        Raises
        ------
        TypeError
            If the chunk is not a 1-d ``EVENT_DTYPE`` array.
        ValueError
            If its ``exch_ts`` decreases (within the chunk or from the previous one).
        """
        while not self.exhausted and len(self.pending) == 0:
            try:
                chunk = next(self.it)
            except StopIteration:
                self.exhausted = True
                return
            if not isinstance(chunk, np.ndarray) or chunk.dtype != EVENT_DTYPE \
                    or chunk.ndim != 1:
                got = chunk.dtype if isinstance(chunk, np.ndarray) else type(chunk).__name__
                raise TypeError(f"merge_chunks: stream {self.index}: expected a 1-d "
                                f"EVENT_DTYPE array, got {got}")
            if len(chunk) == 0:
                continue
            ts = chunk["exch_ts"]
            first = int(ts[0])
            if (self.last_ts is not None and first < self.last_ts) or (
                    len(ts) > 1 and bool(np.any(ts[1:] < ts[:-1]))):
                raise ValueError(f"merge_chunks: stream {self.index}: exch_ts decreases "
                                 f"(each stream must be sorted by exchange time)")
            self.last_ts = int(ts[-1])
            self.pending = chunk


def merge_chunks(
    streams: Sequence[Iterable[np.ndarray]], chunk_events: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Merge event streams by exchange time, lazily, in chunks.

    Parameters
    ----------
    streams : sequence of iterable of numpy.ndarray
        Stream ``k`` (instrument ``k``) yields chunks: 1-d arrays of
        :data:`mmsim.dtypes.EVENT_DTYPE` records, each of any length (empty ones are
        skipped), ``exch_ts`` (int64 ns) non-decreasing within and across its chunks. At
        most :data:`MAX_STREAMS` streams.
    chunk_events : int
        Most events per output chunk (> 0).

    Yields
    ------
    events : numpy.ndarray
        Shape ``(m,)``, dtype ``EVENT_DTYPE``, ``1 <= m <= chunk_events`` (every chunk but
        the last holds exactly ``chunk_events``), sorted by ``exch_ts``; ties: lower stream
        index first, then each stream's order (see the module docstring).
    instrument : numpy.ndarray
        Shape ``(m,)``, dtype ``uint8``: the stream index of each event.

    Raises
    ------
    ValueError
        If ``chunk_events < 1``, there are more than :data:`MAX_STREAMS` streams, or a
        stream's ``exch_ts`` decreases (when that chunk is read).
    TypeError
        If a stream yields something that is not a 1-d ``EVENT_DTYPE`` array.

    Notes
    -----
    At most one pending chunk per stream is held, plus fewer than ``chunk_events`` merged
    events waiting for the next output chunk and the events merged in the current step.
    """
    chunk_events = int(chunk_events)
    if chunk_events < 1:
        raise ValueError(f"merge_chunks: chunk_events must be >= 1, got {chunk_events}")
    if len(streams) > MAX_STREAMS:
        raise ValueError(f"merge_chunks: at most {MAX_STREAMS} streams, got {len(streams)}")
    return _merge(tuple(_Stream(k, iter(s)) for k, s in enumerate(streams)), chunk_events)


def _merge(ss: tuple[_Stream, ...], chunk_events: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    out_ev: list[np.ndarray] = []  # merged events waiting for an output chunk
    out_in: list[np.ndarray] = []
    n_out = 0
    while True:
        for s in ss:
            s.refill()
        live = [s for s in ss if len(s.pending)]
        if not live:
            break
        # the bound of each open stream: (its last pending exch_ts, its index); a stream's
        # unread events sort after it
        bounds = [(int(s.pending["exch_ts"][-1]), s.index) for s in ss if not s.exhausted]
        parts: list[np.ndarray] = []
        idx: list[np.ndarray] = []
        for s in live:
            others = [b for b in bounds if b[1] != s.index]
            ts = s.pending["exch_ts"]
            if others:
                bt, bk = min(others)
                n = int(np.searchsorted(ts, bt, side="right" if s.index < bk else "left"))
            else:
                n = len(ts)
            if n:
                parts.append(s.pending[:n])
                idx.append(np.full(n, s.index, dtype=np.uint8))
                s.pending = s.pending[n:]
        # the stream with the least bound always emits all it holds, so parts is not empty
        if len(parts) == 1:
            ev, ins = parts[0], idx[0]
        else:
            ev = np.concatenate(parts)
            ins = np.concatenate(idx)
            order = np.argsort(ev["exch_ts"], kind="stable")  # ties: stream, then its order
            ev, ins = ev[order], ins[order]
        out_ev.append(ev)
        out_in.append(ins)
        n_out += len(ev)
        if n_out >= chunk_events:
            ev = np.concatenate(out_ev) if len(out_ev) > 1 else out_ev[0]
            ins = np.concatenate(out_in) if len(out_in) > 1 else out_in[0]
            n_full = len(ev) - len(ev) % chunk_events
            for a in range(0, n_full, chunk_events):
                yield ev[a:a + chunk_events], ins[a:a + chunk_events]
            rest_ev, rest_in = ev[n_full:], ins[n_full:]
            out_ev = [rest_ev.copy()] if len(rest_ev) else []
            out_in = [rest_in.copy()] if len(rest_in) else []
            n_out = len(rest_ev)
    if n_out:
        ev = np.concatenate(out_ev) if len(out_ev) > 1 else out_ev[0]
        ins = np.concatenate(out_in) if len(out_in) > 1 else out_in[0]
        yield ev, ins
