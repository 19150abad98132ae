"""Binance raw combined-stream captures (USD-M futures and spot) to canonical L2 events.

Input: one message per line, ``<local receive stamp> <combined-stream JSON>`` (gzip or plain
text), as recorded by hftbacktest's collector: ``{"stream": "btcusdt@depth@0ms", "data":
{...}}`` lines plus one REST depth snapshot line ``{"lastUpdateId", "bids", "asks"}`` a few
lines into the first file. Several files of one instrument are one continuous stream: they are
ordered by their first receive stamp and the update-id chain is checked across the boundary.

Market
------
USD-M futures when any depth diff carries ``pu`` (previous final update id), else spot.
Defaults (BTCUSDT only; other symbols need ``tick_size`` and ``lot_size``): USD-M tick 0.1
USDT, lot 0.001 BTC; spot tick 0.01 USDT, lot 0.000001 BTC (finer than the current step
0.00001, because a few deep levels still hold 6-decimal quantities of old orders).
``meta["market"]`` is ``usdm`` or ``spot``.

Mapping
-------
============  ==============  ===============================================================
stream        kind            details
============  ==============  ===============================================================
REST snapshot SNAPSHOT_BEGIN, ``CLEAR`` (side 0), one ``LEVEL_SET`` per level (flag SNAPSHOT;
              CLEAR,          zero quantities skipped), ``SNAPSHOT_END`` (LAST). BEGIN, CLEAR
              LEVEL_SET...,   and END are flagged ``SYNTHETIC | SNAPSHOT``.
              SNAPSHOT_END
depthUpdate   LEVEL_SET       one per ``b`` (side +1) / ``a`` (side -1) level, absolute lots
                              (0 deletes); the message's records share its timestamps and only
                              the last one has ``LAST``.
trade         TRADE           ``side`` = resting side: ``m=true`` (buyer is maker, a
                              sell-initiated trade) -> +1, ``m=false`` -> -1; ``order_id = 0``;
                              flags ``LAST``. Futures trades whose ``X`` is not ``MARKET``
                              (``INSURANCE_FUND``, ``ADL``, ...) are also flagged ``INFO``:
                              kept for statistics, not used for fills.
bookTicker    BBO, BBO        bid (side +1, ``b``/``B``) then ask (side -1, ``a``/``A``),
                              flagged ``INFO``; the ask record carries ``LAST``.
markPrice     MARK, FUNDING   MARK: ``value`` = ``p`` (float), ``price_tick`` = nearest tick.
                              FUNDING: ``value`` = ``r``, ``order_id`` = ``T`` (next funding
                              time) in ns; emitted only when ``r`` or ``T`` differs from the
                              previous markPrice message (always for the first one).
============  ==============  ===============================================================

Prices and quantities are parsed from their decimal strings exactly (:class:`DecimalGrid`):
``price_tick = price / tick_size`` and ``qty = quantity / lot_size`` must be integers, else
:class:`~mmsim.data.errors.DataError` (file, line, field), except the mark price, which is
rounded to the nearest tick.

Snapshot bridging
-----------------
The diffs are taken in receive order, which is the exchange's update-id order. Diffs whose
final id ``u`` is below the snapshot's ``lastUpdateId`` = ``L`` (futures), or ``u <= L``
(spot), are already in the snapshot and are dropped (``report["diffs_dropped_before_snapshot"]``),
wherever they sit relative to the snapshot line. The first kept diff must bridge the snapshot:
futures ``U <= L <= u``, spot ``U <= L + 1 <= u``. Then every diff must continue the chain:
futures ``pu == previous u``, spot ``U == previous u + 1``. A failure of either rule is a gap:
counted in ``report["update_id_gaps"]`` with the first ten in
``report["update_id_gap_examples"]`` (file, line, rule, expected, got).

Gap policy: the diff is applied anyway and the chain continues from its ``u``. Binance diffs
carry absolute level quantities, so every level is right again from its next update on; only
levels that changed inside the gap and never again stay stale, which shows up in the crossed
book count. Only the first snapshot line is used; later ones are counted in
``report["snapshots_unused"]``. A stream without any snapshot line raises DataError.

Clocks
------
``local_ts`` is the line's receive stamp, detected per file by magnitude: ns (>= 1e17, the
2024 files) or µs (>= 1e14, the 2023 ``.dat.gz`` files, multiplied by 1000);
``meta["local_ts_unit"]``. ``exch_ts`` is an exchange time in ms times 1e6:

- depth diffs: ``T`` (transaction time) when present (futures), else ``E`` (spot). ``T`` is
  the matching-engine time of the diff's last update, on the same clock as the trade's ``T``,
  whereas ``E`` is when the message was pushed (1-9 ms later on the real files); with ``E`` a
  trade that happened after a book change could sort before it. Running maximum along the
  chain (``report["depth_ts_backwards"]`` counts the repairs), so sorting never reorders diffs;
- REST snapshot: ``T`` if present (futures), else (spot) the ``exch_ts`` of the first kept
  diff; never later than that diff;
- trades ``T``; futures bookTicker ``T``; markPrice ``E``;
- spot bookTicker has no exchange time: ``exch_ts`` is the largest exchange time of the
  messages received before it (a lower bound; the leading ones take the first exchange time
  of the stream), counted in ``report["bbo_exch_ts_estimated"]``.

Events are sorted by ``exch_ts`` (stable). At equal ``exch_ts`` trades come first, then the
snapshot block, then depth diffs, then BBO / MARK / FUNDING, each in receive order: a depth
diff with the trade's time is the book change that the trade explains (the engine nets the
two), so the trade must be seen first. ``exch_ts`` is non-decreasing; ``local_ts`` is kept raw
and may step back after sorting (e.g. the diffs received before the snapshot line but applied
after it): the steps are counted in ``report["local_ts_backwards"]`` and the engine clamps.

The two clocks are not shifted. ``report["clock_offset_ns"]`` summarises ``local_ts -
exch_ts`` over the depth messages (min, p1, median, p99, max). On the 2024 USD-M files the
local clock runs about 1.5 s *behind* the exchange's (negative latency).
``meta["suggested_feed_offset_ns"]`` = ``-p1`` if ``p1 < 0`` else 0: added to ``local_ts`` it
makes the 1st percentile of the feed latency about 0; the engine's
``latency.feed_offset_nanos: auto`` uses it.

Validation
----------
Besides the counts above, the output is replayed through
:class:`~mmsim.book.reference_l2.ReferenceL2Book` and every book state after a ``LAST`` record
of a book event with best bid >= best ask is counted in ``report["crossed_states"]`` (nothing is
changed; Binance's far-away levels, e.g. bids at 1000.00 beside 63,900, are legitimate).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.book.reference_l2 import ReferenceL2Book
from mmsim.data.errors import DataError
from mmsim.data.store import IngestResult
from mmsim.dtypes import EVENT_DTYPE
from mmsim.enums import EVENT_KIND_NAMES, EventFlag, EventKind

#: Default (tick_size, lot_size) per market, for BTCUSDT. The spot lot is 0.000001, not the
#: current LOT_SIZE step 0.00001: orders resting from before Binance coarsened the step still
#: make level quantities with 6 decimals (7 of them in the 2024-08-08/09 spot pair).
DEFAULT_GRID = {"usdm": (0.1, 0.001), "spot": (0.01, 0.000001)}

_MS = 1_000_000
_N_EXAMPLES = 10

# sort priority at equal exch_ts
_PRIO_TRADE, _PRIO_SNAPSHOT, _PRIO_DEPTH, _PRIO_INFO = 0, 1, 2, 3

_LAST = EventFlag.LAST
_SNAP = EventFlag.SNAPSHOT
_SYN = EventFlag.SYNTHETIC
_INFO = EventFlag.INFO


class DecimalGrid:
    """Exact conversion of decimal strings to integer multiples of a step (ticks or lots).

    Parameters
    ----------
    step : float or str
        The grid step in user units (e.g. ``0.1``); converted via ``str`` to a Decimal.

    Notes
    -----
    Results are cached per string (exchange feeds repeat the same price and size strings).
    """

    def __init__(self, step: float | str) -> None:
        self.step = Decimal(str(step))
        if not self.step.is_finite() or self.step <= 0:
            raise ValueError(f"grid step must be positive, got {step}")
        self._cache: dict[Any, int] = {}

    def __call__(self, text: Any) -> int:
        """Return ``text / step`` as an int.

        Raises
        ------
        ValueError
            If ``text`` is not a finite non-negative decimal or not a multiple of the step.
        """
        try:
            return self._cache[text]
        except KeyError:
            pass
        try:
            d = Decimal(text if isinstance(text, str) else str(text))
        except (InvalidOperation, TypeError, ValueError):
            raise ValueError(f"{text!r} is not a decimal number") from None
        if not d.is_finite() or d < 0:
            raise ValueError(f"{text!r} is not a finite non-negative number")
        q = d / self.step
        qi = q.to_integral_value()
        if q != qi:
            raise ValueError(f"{text!r} is not on the grid {self.step} (check the step size)")
        v = int(qi)
        self._cache[text] = v
        return v

    def nearest(self, text: Any) -> int:
        """Return ``text / step`` rounded to the nearest integer (half to even)."""
        try:
            d = Decimal(text if isinstance(text, str) else str(text))
        except (InvalidOperation, TypeError, ValueError):
            raise ValueError(f"{text!r} is not a decimal number") from None
        if not d.is_finite():
            raise ValueError(f"{text!r} is not finite")
        return int((d / self.step).to_integral_value())


class EventBuilder:
    """Column lists of canonical records plus their sort keys (exch_ts, priority, sequence).

    Readers append records in emission order and call :meth:`finish`, which sorts them
    stably by ``(exch_ts, priority, sequence, emission order)``.
    """

    __slots__ = (
        "exch",
        "local",
        "price",
        "qty",
        "oid",
        "value",
        "kind",
        "side",
        "flags",
        "prio",
        "seq",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, [])

    def add(self, exch, local, kind, side, price, qty, flags, prio, seq, oid=0, value=0.0):
        self.exch.append(exch)
        self.local.append(local)
        self.kind.append(kind)
        self.side.append(side)
        self.price.append(price)
        self.qty.append(qty)
        self.flags.append(flags)
        self.prio.append(prio)
        self.seq.append(seq)
        self.oid.append(oid)
        self.value.append(value)

    def add_levels(self, exch, local, levels, flags, last_flags, prio, seq):
        """Append one LEVEL_SET per ``(side, price_tick, qty)`` of ``levels`` (one message):
        ``flags`` on each, ``last_flags`` on the last one instead."""
        n = len(levels)
        if not n:
            return
        self.exch.extend([exch] * n)
        self.local.extend([local] * n)
        self.kind.extend([EventKind.LEVEL_SET] * n)
        self.side.extend([lv[0] for lv in levels])
        self.price.extend([lv[1] for lv in levels])
        self.qty.extend([lv[2] for lv in levels])
        self.flags.extend([flags] * (n - 1))
        self.flags.append(last_flags)
        self.prio.extend([prio] * n)
        self.seq.extend([seq] * n)
        self.oid.extend([0] * n)
        self.value.extend([0.0] * n)

    def __len__(self) -> int:
        return len(self.exch)

    def finish(self, *, sort: bool = True) -> np.ndarray:
        """Return the records as an ``EVENT_DTYPE`` array, sorted unless ``sort=False``."""
        n = len(self.exch)
        ev = np.zeros(n, dtype=EVENT_DTYPE)
        ev["exch_ts"] = np.asarray(self.exch, dtype=np.int64)
        ev["local_ts"] = np.asarray(self.local, dtype=np.int64)
        ev["price_tick"] = np.asarray(self.price, dtype=np.int64)
        ev["qty"] = np.asarray(self.qty, dtype=np.int64)
        ev["order_id"] = np.asarray(self.oid, dtype=np.int64)
        ev["value"] = np.asarray(self.value, dtype=np.float64)
        ev["kind"] = np.asarray(self.kind, dtype=np.uint8)
        ev["side"] = np.asarray(self.side, dtype=np.int8)
        ev["flags"] = np.asarray(self.flags, dtype=np.uint16)
        if sort and n:
            order = np.lexsort(
                (
                    np.arange(n),
                    np.asarray(self.seq, dtype=np.int64),
                    np.asarray(self.prio, dtype=np.int8),
                    ev["exch_ts"],
                )
            )
            ev = ev[order]
        return ev


def l2_stream_report(events: np.ndarray, *, n_examples: int = _N_EXAMPLES) -> dict[str, Any]:
    """Replay an L2 event stream and count what a reader must report.

    Parameters
    ----------
    events : numpy.ndarray
        Shape ``(n,)``, dtype :data:`~mmsim.dtypes.EVENT_DTYPE`, sorted by ``exch_ts``.

    Returns
    -------
    dict
        ``n_events``, ``kinds`` (name -> count), ``exch_ts_backwards`` (must be 0),
        ``local_ts_backwards`` (steps where ``local_ts`` decreases), ``book_states`` (LAST
        records of book events: LEVEL_SET, CLEAR, SNAPSHOT_END), ``crossed_states`` (those
        after which best bid >= best ask), ``crossed_examples`` (first few: record index,
        exch_ts, best bid and ask ticks), ``final_levels`` (bid and ask level counts),
        ``first_exch_ts``, ``last_exch_ts``.
    """
    n = len(events)
    kinds, counts = np.unique(events["kind"], return_counts=True)
    book = ReferenceL2Book()
    set_level, clear = book.set_level, book.clear
    lvl, clr, send = EventKind.LEVEL_SET, EventKind.CLEAR, EventKind.SNAPSHOT_END
    states = crossed = 0
    examples: list[dict[str, int]] = []
    bids, asks = book._prices[1], book._prices[-1]
    cols = [events[c].tolist() for c in ("kind", "side", "price_tick", "qty", "flags")]
    for i, (k, s, p, q, fl) in enumerate(zip(*cols, strict=True)):
        if k == lvl:
            set_level(s, p, q)
        elif k == clr:
            clear(s)
        elif k != send:
            continue
        if fl & _LAST:
            states += 1
            if bids and asks and bids[-1] >= asks[0]:
                crossed += 1
                if len(examples) < n_examples:
                    examples.append(
                        {
                            "index": i,
                            "exch_ts": int(events["exch_ts"][i]),
                            "best_bid_tick": bids[-1],
                            "best_ask_tick": asks[0],
                        }
                    )
    return {
        "n_events": n,
        "kinds": {
            EVENT_KIND_NAMES.get(int(k), str(int(k))): int(c)
            for k, c in zip(kinds, counts, strict=True)
        },
        "exch_ts_backwards": int(np.count_nonzero(np.diff(events["exch_ts"]) < 0)),
        "local_ts_backwards": int(np.count_nonzero(np.diff(events["local_ts"]) < 0)),
        "book_states": states,
        "crossed_states": crossed,
        "crossed_examples": examples,
        "final_levels": {"bid": book.n_levels(1), "ask": book.n_levels(-1)},
        "first_exch_ts": int(events["exch_ts"][0]) if n else None,
        "last_exch_ts": int(events["exch_ts"][-1]) if n else None,
    }


def offset_stats(offsets: np.ndarray) -> dict[str, Any]:
    """Summary (int ns) of ``local_ts - exch_ts``: n, min, p1, median, p99, max."""
    if len(offsets) == 0:
        return {"n": 0, "min": None, "p1": None, "median": None, "p99": None, "max": None}
    q = np.percentile(offsets, [1, 50, 99])
    return {
        "n": len(offsets),
        "min": int(offsets.min()),
        "p1": int(round(q[0])),
        "median": int(round(q[1])),
        "p99": int(round(q[2])),
        "max": int(offsets.max()),
    }


def suggested_feed_offset(stats: dict[str, Any]) -> int:
    """``-p1`` if the 1st percentile of ``local_ts - exch_ts`` is negative, else 0 (ns)."""
    p1 = stats.get("p1")
    return -int(p1) if p1 is not None and p1 < 0 else 0


def file_info(path: Path, data: bytes) -> dict[str, Any]:
    """``{"name", "sha256", "bytes"}`` of one input file (raw bytes as stored)."""
    return {"name": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def read_input(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The bytes of an input file, gunzipped when it starts with the gzip magic bytes, and its
    :func:`file_info` (of the bytes as stored).

    Raises
    ------
    DataError
        If the file is missing or its gzip stream is broken.
    """
    if not path.is_file():
        raise DataError(path, None, None, "no such file")
    raw = path.read_bytes()
    info = file_info(path, raw)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(path, None, None, f"cannot decompress gzip ({exc})") from exc
    return raw, info


# ---------------------------------------------------------------------------- reading lines
def _local_unit(stamp: int) -> str | None:
    if stamp >= 10**17:
        return "ns"
    if stamp >= 10**14:
        return "us"
    return None


def _read_lines(path: Path) -> tuple[list[tuple[int, int, dict]], str, dict[str, Any]]:
    """Parse one capture file: [(line number, local_ts ns, message)], unit, file info."""
    raw, info = read_input(path)
    out: list[tuple[int, int, dict]] = []
    unit = None
    mult = 1
    loads = json.loads
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        stamp_text, sep, body = line.partition(b" ")
        if not sep:
            raise DataError(path, lineno, "local_ts", "expected '<receive stamp> <json>'")
        try:
            stamp = int(stamp_text)
        except ValueError:
            raise DataError(
                path, lineno, "local_ts", f"{stamp_text[:40]!r} is not an integer"
            ) from None
        u = _local_unit(stamp)
        if u is None:
            raise DataError(path, lineno, "local_ts", f"{stamp} is neither ns nor µs since 1970")
        if unit is None:
            unit = u
            mult = 1 if u == "ns" else 1000
        elif u != unit:
            raise DataError(path, lineno, "local_ts", f"{stamp} is in {u}, earlier lines in {unit}")
        try:
            msg = loads(body)
        except ValueError as exc:
            raise DataError(path, lineno, None, f"malformed JSON ({exc})") from None
        if not isinstance(msg, dict):
            raise DataError(path, lineno, None, "JSON message is not an object")
        out.append((lineno, stamp * mult, msg))
    if not out:
        raise DataError(path, None, None, "empty file")
    return out, unit or "ns", info


def _field(msg: dict, name: str, path: Path, lineno: int) -> Any:
    try:
        return msg[name]
    except KeyError:
        raise DataError(path, lineno, name, "missing field") from None


def _int_field(msg: dict, name: str, path: Path, lineno: int) -> int:
    v = _field(msg, name, path, lineno)
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            v = int(v)
        except (TypeError, ValueError):
            raise DataError(path, lineno, name, f"{v!r} is not an integer") from None
    return v


def _levels(rows: Any, name: str, path: Path, lineno: int, px: DecimalGrid, lot: DecimalGrid):
    """[(price_tick, qty)] of a ``[[price, qty], ...]`` list."""
    if not isinstance(rows, list):
        raise DataError(path, lineno, name, "expected a list of [price, quantity]")
    out = []
    for j, row in enumerate(rows):
        try:
            p, q = row[0], row[1]
        except (TypeError, IndexError, KeyError):
            raise DataError(path, lineno, f"{name}[{j}]", "expected [price, quantity]") from None
        try:
            pt = px(p)
        except ValueError as exc:
            raise DataError(path, lineno, f"{name}[{j}].price", str(exc)) from None
        try:
            qt = lot(q)
        except ValueError as exc:
            raise DataError(path, lineno, f"{name}[{j}].qty", str(exc)) from None
        out.append((pt, qt))
    return out



def _book_sides(msg, bid_key, ask_key, path, lineno, px, lot) -> list[tuple[int, int, int]]:
    """``[(side, price_tick, lots)]`` of a message's bid then ask level lists."""
    out = [(1, p, q) for p, q in _levels(_field(msg, bid_key, path, lineno), bid_key, path,
                                          lineno, px, lot)]
    out += [(-1, p, q) for p, q in _levels(_field(msg, ask_key, path, lineno), ask_key, path,
                                           lineno, px, lot)]
    return out

def _conv(grid: DecimalGrid, msg: dict, name: str, path: Path, lineno: int) -> int:
    try:
        return grid(_field(msg, name, path, lineno))
    except ValueError as exc:
        raise DataError(path, lineno, name, str(exc)) from None


# ---------------------------------------------------------------------------- the reader
def read_binance(
    paths: list[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    tick_size: float | None = None,
    lot_size: float | None = None,
    symbol: str | None = None,
) -> IngestResult:
    """Read Binance combined-stream capture files (USD-M futures or spot) into L2 events.

    See the module docstring for the mapping, the snapshot bridging, the gap policy and the
    clocks.

    Parameters
    ----------
    paths : list of str or os.PathLike (or one path)
        Capture files of one instrument (gzip detected from the magic bytes). They are
        ordered by their first receive stamp and read as one continuous stream; one of them
        (normally the first) must hold the REST snapshot line.
    tick_size, lot_size : float or None
        Price tick and quantity lot in user units. Default: from the detected market for
        BTCUSDT (USD-M 0.1 / 0.001, spot 0.01 / 0.000001); required for other symbols.
    symbol : str or None
        Symbol to keep (case-insensitive, e.g. ``"BTCUSDT"``); default: the most frequent
        one in the stream names. Messages of other symbols are counted in
        ``report["other_symbols"]``. The REST snapshot line has no symbol and is taken to be
        the kept symbol's.

    Returns
    -------
    IngestResult
        ``events``: EVENT_DTYPE sorted by ``exch_ts`` (int64 ns), ``local_ts`` raw (may step
        back), prices in ticks, quantities in lots. ``meta``: source ``binance``, market
        (``usdm``/``spot``), symbol, streams, date, levels None, clocks 2, tick_size,
        lot_size, multiplier 1, local_ts_unit, files (in stream order),
        suggested_feed_offset_ns, exch_ts_source. ``report``: see the module docstring,
        plus ``validation`` (:func:`l2_stream_report`).

    Raises
    ------
    DataError
        Missing, empty or undecompressable file; a line without a receive stamp, with a
        stamp that is neither ns nor µs or whose unit differs from the file's; malformed
        JSON; a missing or non-numeric field; a price or quantity off the grid (file, 1-based
        line, field); no depth stream (nor markPrice) or no REST snapshot line.
    ValueError
        A non-BTCUSDT symbol without ``tick_size``/``lot_size``, or a non-positive step.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    plist = [Path(p) for p in paths]
    if not plist:
        raise ValueError("no input files")
    parsed = [(p, *_read_lines(p)) for p in plist]
    parsed.sort(key=lambda t: t[1][0][1])  # by first receive stamp

    # --- market and symbol
    sym_counts: Counter = Counter()
    market = None
    has_mark = False
    for _, msgs, _, _ in parsed:
        for _, _, msg in msgs:
            stream = msg.get("stream")
            if isinstance(stream, str):
                sym_counts[stream.split("@", 1)[0].upper()] += 1
                if market is None and "@depth" in stream:
                    data = msg.get("data")
                    if isinstance(data, dict):
                        market = "usdm" if "pu" in data else "spot"
                has_mark = has_mark or "@markPrice" in stream
    if market is None:
        if not has_mark:
            raise DataError(plist[0], None, "stream", "no depth diff stream in the files")
        market = "usdm"  # only futures publish mark prices
    if not sym_counts:
        raise DataError(plist[0], None, "stream", "no stream messages in the files")
    if symbol is None:
        symbol = sym_counts.most_common(1)[0][0]
    symbol = symbol.upper()
    if tick_size is None or lot_size is None:
        if symbol != "BTCUSDT":
            raise ValueError(f"no default tick/lot size for {symbol}: pass tick_size, lot_size")
        dt, dl = DEFAULT_GRID[market]
        tick_size = dt if tick_size is None else tick_size
        lot_size = dl if lot_size is None else lot_size
    px = DecimalGrid(tick_size)
    lot = DecimalGrid(lot_size)
    futures = market == "usdm"

    b = EventBuilder()
    stream_counts: Counter = Counter()
    other_symbols: Counter = Counter()
    trade_types: Counter = Counter()
    diffs: list[tuple] = []  # (seq, path, lineno, local, exch, U, u, pu, levels)
    snapshots: list[tuple] = []  # (seq, path, lineno, local, msg)
    depth_offsets: list[int] = []
    last_exch = None  # largest exchange time received so far (spot BBO estimate)
    first_exch = None
    pending_bbo: list[int] = []  # builder indices of spot BBO records before any exch time
    n_bbo_est = 0
    last_funding = None
    n_funding = n_mark = n_trades = 0
    trade_id_gaps = 0
    last_trade_id = None
    seq = 0
    lower_sym = symbol.lower()
    for path, msgs, _, _ in parsed:
        for lineno, local, msg in msgs:
            seq += 1
            stream = msg.get("stream")
            if stream is None:
                if "lastUpdateId" in msg:
                    stream_counts["snapshot"] += 1
                    snapshots.append((seq, path, lineno, local, msg))
                    continue
                raise DataError(path, lineno, "stream", "neither a stream message nor a snapshot")
            if not isinstance(stream, str):
                raise DataError(path, lineno, "stream", f"{stream!r} is not a stream name")
            sym, _, kind = stream.partition("@")
            if sym != lower_sym:
                other_symbols[sym.upper()] += 1
                continue
            data = _field(msg, "data", path, lineno)
            if not isinstance(data, dict):
                raise DataError(path, lineno, "data", "not a JSON object")
            if kind.startswith("depth"):
                stream_counts["depth"] += 1
                t = data.get("T")
                exch = _int_field(data, "T" if t is not None else "E", path, lineno) * _MS
                U = _int_field(data, "U", path, lineno)
                u = _int_field(data, "u", path, lineno)
                pu = _int_field(data, "pu", path, lineno) if futures else None
                lv = _book_sides(data, "b", "a", path, lineno, px, lot)
                diffs.append((seq, path, lineno, local, exch, U, u, pu, lv))
                depth_offsets.append(local - exch)
            elif kind == "trade":
                stream_counts["trade"] += 1
                exch = _int_field(data, "T", path, lineno) * _MS
                m = _field(data, "m", path, lineno)
                if not isinstance(m, bool):
                    raise DataError(path, lineno, "m", f"{m!r} is not a boolean")
                x = data.get("X", "MARKET")
                trade_types[str(x)] += 1
                flags = _LAST if x == "MARKET" else _LAST | _INFO
                tid = data.get("t")
                if isinstance(tid, int):
                    if last_trade_id is not None and tid != last_trade_id + 1:
                        trade_id_gaps += 1
                    last_trade_id = tid
                b.add(
                    exch,
                    local,
                    EventKind.TRADE,
                    1 if m else -1,
                    _conv(px, data, "p", path, lineno),
                    _conv(lot, data, "q", path, lineno),
                    flags,
                    _PRIO_TRADE,
                    seq,
                )
                n_trades += 1
            elif kind == "bookTicker":
                stream_counts["bookTicker"] += 1
                t = data.get("T", data.get("E"))
                if t is None:
                    exch = last_exch if last_exch is not None else -1
                    n_bbo_est += 1
                else:
                    exch = _int_field(data, "T" if "T" in data else "E", path, lineno) * _MS
                bid_p = _conv(px, data, "b", path, lineno)
                bid_q = _conv(lot, data, "B", path, lineno)
                ask_p = _conv(px, data, "a", path, lineno)
                ask_q = _conv(lot, data, "A", path, lineno)
                if exch < 0:
                    pending_bbo += [len(b), len(b) + 1]
                b.add(exch, local, EventKind.BBO, 1, bid_p, bid_q, _INFO, _PRIO_INFO, seq)
                b.add(exch, local, EventKind.BBO, -1, ask_p, ask_q, _INFO | _LAST, _PRIO_INFO, seq)
                if t is None:
                    continue  # an estimated time is not an exchange time
            elif kind.startswith("markPrice"):
                stream_counts["markPrice"] += 1
                exch = _int_field(data, "E", path, lineno) * _MS
                p = _field(data, "p", path, lineno)
                try:
                    mark = float(p)
                    mark_tick = px.nearest(p)
                except ValueError:
                    raise DataError(path, lineno, "p", f"{p!r} is not a number") from None
                r = _field(data, "r", path, lineno)
                try:
                    rate = float(r)
                except (TypeError, ValueError):
                    raise DataError(path, lineno, "r", f"{r!r} is not a number") from None
                next_ts = _int_field(data, "T", path, lineno) * _MS
                emit_funding = (rate, next_ts) != last_funding
                last_funding = (rate, next_ts)
                b.add(
                    exch,
                    local,
                    EventKind.MARK,
                    0,
                    mark_tick,
                    0,
                    0 if emit_funding else _LAST,
                    _PRIO_INFO,
                    seq,
                    value=mark,
                )
                n_mark += 1
                if emit_funding:
                    b.add(
                        exch,
                        local,
                        EventKind.FUNDING,
                        0,
                        0,
                        0,
                        _LAST,
                        _PRIO_INFO,
                        seq,
                        oid=next_ts,
                        value=rate,
                    )
                    n_funding += 1
            else:
                stream_counts[kind] += 1
                continue
            if first_exch is None:
                first_exch = exch
            if last_exch is None or exch > last_exch:
                last_exch = exch

    if not snapshots:
        raise DataError(
            parsed[0][0],
            None,
            "lastUpdateId",
            "no REST snapshot line in the files (pass the file that holds it)",
        )
    for i in pending_bbo:
        b.exch[i] = first_exch

    # --- the snapshot and the update-id chain
    s_seq, s_path, s_line, s_local, snap = snapshots[0]
    L = _int_field(snap, "lastUpdateId", s_path, s_line)
    snap_levels = _book_sides(snap, "bids", "asks", s_path, s_line, px, lot)
    snap_t = snap.get("T", snap.get("E"))
    snap_exch = (
        _int_field(snap, "T" if "T" in snap else "E", s_path, s_line) * _MS
        if snap_t is not None
        else None
    )
    n_dropped = 0
    n_applied = 0
    n_empty = 0
    gaps = 0
    gap_examples: list[dict[str, Any]] = []
    prev_u = None
    depth_back = 0
    depth_exch = None
    for d_seq, d_path, d_line, d_local, d_exch, U, u, pu, lv in diffs:
        if prev_u is None:
            if (u < L) if futures else (u <= L):
                n_dropped += 1
                continue
            target = L if futures else L + 1
            if not U <= target <= u:
                gaps += 1
                if len(gap_examples) < _N_EXAMPLES:
                    gap_examples.append(
                        {
                            "file": d_path.name,
                            "line": d_line,
                            "rule": "U <= lastUpdateId <= u"
                            if futures
                            else "U <= lastUpdateId + 1 <= u",
                            "expected": target,
                            "got": {"U": U, "u": u},
                        }
                    )
            if snap_exch is None or snap_exch > d_exch:
                snap_exch = d_exch
            depth_exch = d_exch
        else:
            ok = (pu == prev_u) if futures else (U == prev_u + 1)
            if not ok:
                gaps += 1
                if len(gap_examples) < _N_EXAMPLES:
                    gap_examples.append(
                        {
                            "file": d_path.name,
                            "line": d_line,
                            "rule": "pu == previous u" if futures else "U == previous u + 1",
                            "expected": prev_u if futures else prev_u + 1,
                            "got": pu if futures else U,
                        }
                    )
            if d_exch < depth_exch:
                depth_back += 1
            else:
                depth_exch = d_exch
        prev_u = u
        n_applied += 1
        if not lv:
            n_empty += 1
            continue
        b.add_levels(depth_exch, d_local, lv, 0, _LAST, _PRIO_DEPTH, d_seq)
    if snap_exch is None:  # spot, and every diff is older than the snapshot (or none)
        snap_exch = diffs[-1][4] if diffs else (last_exch if last_exch is not None else s_local)

    snap_flags = _SYN | _SNAP
    b.add(snap_exch, s_local, EventKind.SNAPSHOT_BEGIN, 0, 0, 0, snap_flags, _PRIO_SNAPSHOT, s_seq)
    b.add(snap_exch, s_local, EventKind.CLEAR, 0, 0, 0, snap_flags, _PRIO_SNAPSHOT, s_seq)
    kept = [lv for lv in snap_levels if lv[2] > 0]
    zero_levels = len(snap_levels) - len(kept)
    b.add_levels(snap_exch, s_local, kept, _SNAP, _SNAP, _PRIO_SNAPSHOT, s_seq)
    b.add(
        snap_exch,
        s_local,
        EventKind.SNAPSHOT_END,
        0,
        0,
        0,
        snap_flags | _LAST,
        _PRIO_SNAPSHOT,
        s_seq,
    )

    ev = b.finish()
    offsets = offset_stats(np.asarray(depth_offsets, dtype=np.int64))
    feed_offset = suggested_feed_offset(offsets)
    units = {info["name"]: unit for _, _, unit, info in parsed}
    unit_set = set(units.values())
    validation = l2_stream_report(ev)
    date = np.datetime64(int(ev["exch_ts"][0]), "ns").astype("datetime64[D]").item()
    report: dict[str, Any] = {
        "lines": {info["name"]: len(msgs) for _, msgs, _, info in parsed},
        "messages": dict(stream_counts),
        "other_symbols": dict(other_symbols),
        "snapshot": {
            "file": s_path.name,
            "line": s_line,
            "lastUpdateId": L,
            "bid_levels": sum(1 for s, _, _ in snap_levels if s == 1),
            "ask_levels": sum(1 for s, _, _ in snap_levels if s == -1),
            "zero_levels_skipped": zero_levels,
            "exch_ts": int(snap_exch),
            "exch_ts_source": "T" if "T" in snap else ("E" if "E" in snap else "first kept diff"),
        },
        "snapshots_unused": len(snapshots) - 1,
        "diffs": len(diffs),
        "diffs_applied": n_applied,
        "diffs_dropped_before_snapshot": n_dropped,
        "diffs_empty": n_empty,
        "update_id_gaps": gaps,
        "update_id_gap_examples": gap_examples,
        "gap_policy": "counted; the diff is applied anyway and the chain continues from its u",
        "depth_ts_backwards": depth_back,
        "trades": n_trades,
        "trade_types": dict(trade_types),
        "trade_id_gaps": trade_id_gaps,
        "bbo_messages": stream_counts.get("bookTicker", 0),
        "bbo_exch_ts_estimated": n_bbo_est,
        "mark_records": n_mark,
        "funding_records": n_funding,
        "clock_offset_ns": offsets,
        "suggested_feed_offset_ns": feed_offset,
        "local_ts_backwards": validation["local_ts_backwards"],
        "crossed_states": validation["crossed_states"],
        "validation": validation,
    }
    meta: dict[str, Any] = {
        "source": "binance",
        "market": market,
        "symbol": symbol,
        "streams": sorted(stream_counts),
        "date": date.isoformat(),
        "levels": None,
        "clocks": 2,
        "tick_size": float(tick_size),
        "lot_size": float(lot_size),
        "multiplier": 1,
        "local_ts_unit": unit_set.pop() if len(unit_set) == 1 else units,
        "suggested_feed_offset_ns": feed_offset,
        "exch_ts_source": {
            "depth": "T" if futures else "E",
            "trade": "T",
            "bookTicker": "T" if futures else "estimated (latest exchange time received)",
            "markPrice": "E",
        },
        "files": [info for _, _, _, info in parsed],
    }
    return IngestResult(events=ev, meta=meta, report=report)
