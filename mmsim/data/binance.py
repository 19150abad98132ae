"""Binance raw combined-stream captures (USD-M and COIN-M futures, spot) to canonical L2 events.

Input: one message per line, ``<local receive stamp> <combined-stream JSON>`` (gzip or plain
text), as recorded by hftbacktest's collector: ``{"stream": "btcusdt@depth@0ms", "data":
{...}}`` lines plus REST depth snapshot lines ``{"lastUpdateId", "bids", "asks"}`` (futures
also ``E``/``T``; COIN-M also ``symbol``/``pair``), one a few lines into the first file.
Several files of one instrument are one continuous stream (see *Several files* below).

Market and contract
-------------------
Futures when any depth diff carries ``pu`` (previous final update id), when there is no depth
stream but a markPrice one, or when the symbol is a COIN-M contract; else spot. Futures are
COIN-M when the symbol is ``<BASE>USD_PERP`` or ``<BASE>USD_<YYMMDD>`` (``btcusd_perp@...``,
``btcusd_240927@...``), USD-M when it is ``<BASE>USDT``/``USDC``/``BUSD`` (optionally
``_<YYMMDD>``) and no message carries COIN-M's ``ps`` (pair) field. Anything else (say
``ETHBTC`` futures, or ``ps`` beside a USD-M-looking symbol) is not guessed: a
:class:`~mmsim.data.errors.DataError` asks for ``instrument.contract`` and
``instrument.multiplier`` (the ``contract`` / ``multiplier`` arguments).

=======  ==========  ===================================  =====================  ==========
market   contract    multiplier                           default tick           lot
=======  ==========  ===================================  =====================  ==========
usdm     linear      1                                    0.1 USDT (BTCUSDT)     0.001 BTC
spot     linear      1                                    0.01 USDT (BTCUSDT)    0.000001
coinm    inverse     USD per contract: 100 for            0.1 USD (BTCUSD_*)     1 contract
                     ``BTCUSD_*``, 10 for every other
=======  ==========  ===================================  =====================  ==========

Other symbols need ``tick_size`` (and, except COIN-M, ``lot_size``). The spot lot is finer
than the current step 0.00001 because a few deep levels still hold 6-decimal quantities of old
orders. COIN-M quantities (depth, trade ``q``, bookTicker ``B``/``A``) are in contracts.
Arguments given by the user (``tick_size``, ``lot_size``, ``symbol``, ``contract``,
``multiplier``) always win over the detected values. ``meta`` keys: ``market`` (``usdm``,
``coinm`` or ``spot``), ``contract`` (``linear``/``inverse``), ``multiplier``, ``tick_size``,
``lot_size``, ``symbol`` (upper case, e.g. ``BTCUSD_PERP``).

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
aggTrade      TRADE           the same, one record per aggregate trade (``a`` is its id); used
                              only when the capture has no ``trade`` stream of the symbol
                              (else counted in ``report["messages"]`` and skipped), which
                              ``report["trade_stream"]`` tells.
bookTicker    BBO, BBO        bid (side +1, ``b``/``B``) then ask (side -1, ``a``/``A``),
                              flagged ``INFO``; the ask record carries ``LAST``.
markPrice     MARK, FUNDING   MARK: ``value`` = ``p`` (float), ``price_tick`` = nearest tick.
                              FUNDING: ``value`` = ``r``, ``order_id`` = ``T`` (next funding
                              time) in ns; emitted only when ``r`` or ``T`` differs from the
                              previous markPrice message (always for the first one); not
                              at all when ``r`` is empty (COIN-M delivery contracts).
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
``report["update_id_gap_examples"]`` (file, line, rule, expected, got). The first snapshot
line (in stream order) opens the book; a stream without any raises DataError. The shared
captures hold one snapshot line per pair, in the first file.

Gap policy (``gap_policy``, in ``report["gap_policy"]``):

``"error"`` (default)
    DataError at the first gap: the diff's file and line, the field (``pu``, ``U`` or ``u``)
    and the update ids expected and got.
``"resync"``
    At the gap, a ``STATUS`` record with ``value`` -1 (halt: the engine rejects new orders)
    and a ``CLEAR`` (side 0, LAST) of the book, both ``SYNTHETIC`` at the gapped diff's
    times; then the diffs are dropped until a later snapshot line whose ``lastUpdateId`` is
    beyond the last applied ``u`` is bridged with the rules above (the gapped diff itself may
    bridge it). That snapshot is replayed as the first one is (SNAPSHOT_BEGIN, CLEAR,
    LEVEL_SET..., SNAPSHOT_END), at its ``T`` kept between the halt and the bridging diff
    (spot: the bridging diff's time), followed by ``STATUS`` ``value`` 1 (trading resumes).
    Without such a snapshot the stream stays halted to its end. Trades, BBO and mark prices
    are kept while halted. ``report["resyncs"]`` counts the halts,
    ``report["resync_diffs_dropped"]`` / ``report["resync_events_dropped"]`` the diffs and
    their level records not applied, ``report["paused_ns"]`` the exchange time spent halted
    (to the last event when never resumed, ``report["paused_at_end"]``) and
    ``report["resync_examples"]`` the first ten (file, line, halt and resume ``exch_ts``, the
    snapshot used).
``"apply"``
    The diff is applied anyway and the chain continues from its ``u``. Binance diffs carry
    absolute level quantities, so every level is right again from its next update on; levels
    that changed inside the gap and never again stay stale and show up in
    ``report["crossed_states"]``.

Snapshot lines not used are counted in ``report["snapshots_unused"]``.

Several files
-------------
The files are put in stream order by the update id ``U`` of their first depth diff (when
every file holds diffs of the symbol; else by their first receive stamp), so the order they
are given in does not matter. Each file's diffs cover the update ids ``[first U, last u]``;
two files with the same content (the same file given twice) or whose ranges overlap, or
files whose receive stamps and update ids disagree on the order, raise DataError naming both
files and their ranges. The chain is checked across each boundary like inside a file.

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
import re
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

#: Default (tick_size, lot_size) per market, for BTCUSDT (COIN-M: BTCUSD_* contracts, the lot
#: is one contract, and every COIN-M symbol has lot 1). The spot lot is 0.000001, not the
#: current LOT_SIZE step 0.00001: orders resting from before Binance coarsened the step still
#: make level quantities with 6 decimals (7 of them in the 2024-08-08/09 spot pair).
DEFAULT_GRID = {"usdm": (0.1, 0.001), "spot": (0.01, 0.000001), "coinm": (0.1, 1)}

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


def finish_l2_report(ev: np.ndarray, offsets: list[int], report: dict[str, Any]) -> int:
    """Complete an L2 reader's ``report`` from its sorted events ``ev`` and the
    ``local_ts - exch_ts`` ``offsets`` (ns) of its messages: ``clock_offset_ns``
    (:func:`offset_stats`), ``suggested_feed_offset_ns``, ``crossed_states`` and
    ``validation`` (:func:`l2_stream_report`). Returns the suggested feed offset (ns)."""
    stats = offset_stats(np.asarray(offsets, dtype=np.int64))
    feed_offset = suggested_feed_offset(stats)
    validation = l2_stream_report(ev)
    report["clock_offset_ns"] = stats
    report["suggested_feed_offset_ns"] = feed_offset
    report["crossed_states"] = validation["crossed_states"]
    report["validation"] = validation
    return feed_offset


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


# ---------------------------------------------------------------------------- instrument
#: ``<BASE>USD_PERP`` / ``<BASE>USD_<YYMMDD>``: a COIN-M (inverse) contract.
_COINM_RE = re.compile(r"^([A-Z0-9]+)USD_(PERP|\d{6})$")
#: ``<BASE>USDT`` / ``USDC`` / ``BUSD``, optionally ``_<YYMMDD>``: a USD-M (linear) contract.
_USDM_RE = re.compile(r"^[A-Z0-9]+(USDT|USDC|BUSD)(_\d{6})?$")

#: Values of ``read_binance(gap_policy=...)``.
GAP_POLICIES = ("error", "resync", "apply")
_CONTRACTS = ("linear", "inverse")


def coinm_multiplier(symbol: str) -> int | None:
    """Contract size in USD of a Binance COIN-M contract, or None if ``symbol`` is not one.

    ``BTCUSD_PERP`` and every other ``BTCUSD_*`` contract: 100 USD; any other
    ``<BASE>USD_PERP`` / ``<BASE>USD_<YYMMDD>``: 10 USD. Case-insensitive.
    """
    m = _COINM_RE.match(symbol.upper())
    if m is None:
        return None
    return 100 if m.group(1) == "BTC" else 10


def _survey(parsed) -> tuple[Counter, dict[str, dict[str, Any]], dict[tuple[int, str], list]]:
    """One pass over every message: per symbol, what its streams tell about the market, and
    per (file index, symbol) the depth update-id range ``[min U, max u]``."""
    sym_counts: Counter = Counter()
    per: dict[str, dict[str, Any]] = {}
    ranges: dict[tuple[int, str], list] = {}
    for fi, (path, msgs, _, _) in enumerate(parsed):
        for lineno, _, msg in msgs:
            stream = msg.get("stream")
            if not isinstance(stream, str):
                continue
            sym, _, kind = stream.partition("@")
            sym = sym.upper()
            sym_counts[sym] += 1
            st = per.get(sym)
            if st is None:
                st = per[sym] = {
                    "depth": 0,
                    "pu": False,
                    "ps": False,
                    "mark": False,
                    "trade": 0,
                    "aggTrade": 0,
                    "first": (path, lineno),
                }
            data = msg.get("data")
            if not isinstance(data, dict):
                continue
            if "ps" in data:
                st["ps"] = True
            if kind.startswith("depth"):
                if not st["depth"]:
                    st["first"] = (path, lineno)
                st["depth"] += 1
                st["pu"] = st["pu"] or "pu" in data
                U, u = data.get("U"), data.get("u")
                if isinstance(U, int) and isinstance(u, int):
                    r = ranges.get((fi, sym))
                    if r is None:
                        ranges[(fi, sym)] = [U, u, U]  # min U, max u, first U
                    else:
                        r[0] = min(r[0], U)
                        r[1] = max(r[1], u)
            elif kind in ("trade", "aggTrade"):
                st[kind] += 1
            elif kind.startswith("markPrice"):
                st["mark"] = True
    return sym_counts, per, ranges


def _resolve_instrument(
    symbol: str,
    st: dict[str, Any],
    *,
    tick_size: float | None,
    lot_size: float | None,
    contract: str | None,
    multiplier: float | None,
) -> tuple[str, str, float, float, float, bool]:
    """``(market, contract, multiplier, tick_size, lot_size, futures)`` of the kept symbol;
    the user's values win over the detected ones (see the module docstring)."""
    path, line = st["first"]
    coinm_mult = coinm_multiplier(symbol)
    futures = st["pu"] or st["depth"] == 0 or coinm_mult is not None
    if not futures:
        market, det_contract, det_mult = "spot", "linear", 1.0
    elif coinm_mult is not None:
        market, det_contract, det_mult = "coinm", "inverse", float(coinm_mult)
    elif _USDM_RE.match(symbol) and not st["ps"]:
        market, det_contract, det_mult = "usdm", "linear", 1.0
    else:
        why = (
            "its messages carry COIN-M's pair field 'ps'"
            if st["ps"]
            else "the name is neither <BASE>USDT/USDC/BUSD[_YYMMDD] (USD-M) nor "
            "<BASE>USD_PERP / <BASE>USD_<YYMMDD> (COIN-M)"
        )
        if contract is None:
            raise DataError(
                path,
                line,
                "stream",
                f"cannot tell whether the {symbol} futures are linear (USD-M) or inverse "
                f"(COIN-M): {why}; set instrument.contract ('linear' or 'inverse') and "
                "instrument.multiplier (the contract size in USD when inverse)",
            )
        if contract == "inverse" and multiplier is None:
            raise DataError(
                path,
                line,
                "stream",
                f"{symbol} is set inverse but its contract size is unknown ({why}): set "
                "instrument.multiplier (USD per contract)",
            )
        market = "coinm" if contract == "inverse" else "usdm"
        det_contract, det_mult = contract, 1.0
    contract = det_contract if contract is None else contract
    multiplier = det_mult if multiplier is None else float(multiplier)

    if market == "coinm":
        dt, dl = (DEFAULT_GRID["coinm"][0] if symbol.startswith("BTCUSD_") else None), 1
    elif symbol == "BTCUSDT":
        dt, dl = DEFAULT_GRID[market]
    else:
        dt = dl = None
    tick_size = dt if tick_size is None else tick_size
    lot_size = dl if lot_size is None else lot_size
    missing = [n for n, v in (("tick_size", tick_size), ("lot_size", lot_size)) if v is None]
    if missing:
        raise ValueError(f"no default {' and '.join(missing)} for {symbol}: pass "
                         + ", ".join(missing))
    return market, contract, multiplier, tick_size, lot_size, futures


def _order_files(parsed, symbol: str, ranges) -> list[tuple]:
    """The files in stream order, as ``(path, msgs, unit, info, range or None)``, checked:
    no two with the same content, no overlapping depth update-id ranges, update ids and
    receive stamps in the same order."""
    items = [(*t, ranges.get((fi, symbol))) for fi, t in enumerate(parsed)]
    if all(it[4] is not None for it in items):
        items.sort(key=lambda it: (it[4][2], it[1][0][1]))  # first U, then first stamp
    else:
        items.sort(key=lambda it: it[1][0][1])  # by first receive stamp

    def span(r):
        return f"update ids {r[0]}..{r[1]}" if r is not None else "no depth diffs"

    for j, (pj, _, _, ij, rj) in enumerate(items):
        for pi, _, _, ii, ri in items[:j]:
            if ij["sha256"] == ii["sha256"]:
                what = (
                    "given twice"
                    if pj.resolve() == pi.resolve()
                    else f"the same content as {pi} (sha256 {ij['sha256'][:12]})"
                )
                raise DataError(
                    pj,
                    None,
                    None,
                    f"{what}, {span(rj)}: the same capture twice would replay every message "
                    "twice",
                )
            if ri is None or rj is None:
                continue
            if max(ri[0], rj[0]) <= min(ri[1], rj[1]):
                raise DataError(
                    pj,
                    None,
                    "U",
                    f"depth {span(rj)} overlap {pi}'s {span(ri)}: the captures overlap "
                    "(give each part of the stream once)",
                )
            if rj[1] < ri[0]:
                raise DataError(
                    pj,
                    None,
                    "U",
                    f"files out of order: {pj.name} ({span(rj)}) was received after "
                    f"{pi} ({span(ri)}) but its update ids come first; the receive "
                    "clocks disagree with the exchange's update ids",
                )
    return items


# ---------------------------------------------------------------------------- the chain
def _snapshot_exch(snap: dict, path: Path, line: int) -> int | None:
    """A REST snapshot's exchange time (``T``, else ``E``) in ns, or None (spot)."""
    if snap.get("T", snap.get("E")) is None:
        return None
    return _int_field(snap, "T" if "T" in snap else "E", path, line) * _MS


def _emit_snapshot(b: EventBuilder, exch, local, levels, prio, seq) -> int:
    """SNAPSHOT_BEGIN, CLEAR, LEVEL_SET..., SNAPSHOT_END; returns the zero levels skipped."""
    flags = _SYN | _SNAP
    b.add(exch, local, EventKind.SNAPSHOT_BEGIN, 0, 0, 0, flags, prio, seq)
    b.add(exch, local, EventKind.CLEAR, 0, 0, 0, flags, prio, seq)
    kept = [lv for lv in levels if lv[2] > 0]
    b.add_levels(exch, local, kept, _SNAP, _SNAP, prio, seq)
    b.add(exch, local, EventKind.SNAPSHOT_END, 0, 0, 0, flags | _LAST, prio, seq)
    return len(levels) - len(kept)


_REMEDY = (
    "set data.gap_policy (mmsim ingest: --gap-policy) to 'resync' to pause trading until "
    "the next snapshot in the data, or 'apply' to apply the diff anyway"
)


def _replay_chain(
    b: EventBuilder,
    diffs: list[tuple],
    snapshots: list[tuple],
    *,
    futures: bool,
    policy: str,
    px: DecimalGrid,
    lot: DecimalGrid,
    fallback_exch: int,
) -> dict[str, Any]:
    """Bridge the diffs from the first snapshot along the update-id chain, applying
    ``policy`` at gaps (module docstring); append the book records to ``b``.

    ``diffs``: ``(seq, path, line, local, exch, U, u, pu, levels)`` in receive order;
    ``snapshots``: ``(seq, path, line, local, message)`` in receive order (at least one).
    Returns the counts for the report (``open_halt_exch``: the halt time when the stream
    ends halted, else None).

    Raises
    ------
    DataError
        At the first gap when ``policy == "error"``; a malformed snapshot line.
    """
    snaps = [
        (*sn, _int_field(sn[4], "lastUpdateId", sn[1], sn[2])) for sn in snapshots
    ]
    s_seq, s_path, s_line, s_local, snap, L = snaps[0]
    snap_levels = _book_sides(snap, "bids", "asks", s_path, s_line, px, lot)
    first_exch = _snapshot_exch(snap, s_path, s_line)
    out: dict[str, Any] = dict.fromkeys(
        (
            "dropped",
            "applied",
            "empty",
            "gaps",
            "depth_back",
            "resyncs",
            "resync_diffs",
            "resync_events",
            "paused_ns",
        ),
        0,
    )
    gap_examples: list[dict[str, Any]] = []
    resync_examples: list[dict[str, Any]] = []
    cur = 0  # index of the snapshot the chain starts from
    used = 1
    bridging = True  # looking for the first diff after snaps[cur]
    initial = True  # snaps[cur] is the opening snapshot
    exhausted = False  # halted with no snapshot left: every diff is dropped
    halt: dict[str, Any] | None = None
    prev = None  # (u, path, line) of the last applied diff
    depth_exch = None
    i, n = 0, len(diffs)
    while i < n:
        d_seq, d_path, d_line, d_local, d_exch, U, u, pu, lv = diffs[i]
        if exhausted or (halt is not None and not bridging):
            out["resync_diffs"] += 1
            out["resync_events"] += len(lv)
            halt["diffs_dropped"] += 1
            i += 1
            continue
        gap = None
        if bridging:
            if (u < L) if futures else (u <= L):
                if initial:
                    out["dropped"] += 1
                else:
                    out["resync_diffs"] += 1
                    out["resync_events"] += len(lv)
                    halt["diffs_dropped"] += 1
                i += 1
                continue
            target = L if futures else L + 1
            if not U <= target <= u:
                rule = "U <= lastUpdateId <= u" if futures else "U <= lastUpdateId + 1 <= u"
                sn = snaps[cur]
                gap = (
                    rule,
                    target,
                    {"U": U, "u": u},
                    "U" if U > target else "u",
                    f"the first diff after the snapshot (lastUpdateId {L}, {sn[1].name} line "
                    f"{sn[2]}) must have {rule.replace('lastUpdateId', str(L))}, "
                    f"got U {U}, u {u}",
                )
        else:
            ok = (pu == prev[0]) if futures else (U == prev[0] + 1)
            if not ok:
                where = f"the previous diff ({prev[1].name} line {prev[2]})"
                if futures:
                    gap = (
                        "pu == previous u",
                        prev[0],
                        pu,
                        "pu",
                        f"expected pu {prev[0]} (the u of {where}), got pu {pu} "
                        f"(U {U}, u {u})",
                    )
                else:
                    gap = (
                        "U == previous u + 1",
                        prev[0] + 1,
                        U,
                        "U",
                        f"expected U {prev[0] + 1} (the u of {where} + 1), got U {U} "
                        f"(u {u})",
                    )
        if gap is not None:
            rule, expected, got, field, text = gap
            out["gaps"] += 1
            if len(gap_examples) < _N_EXAMPLES:
                gap_examples.append(
                    {
                        "file": d_path.name,
                        "line": d_line,
                        "rule": rule,
                        "expected": expected,
                        "got": got,
                    }
                )
            if policy == "error":
                raise DataError(d_path, d_line, field, f"update-id gap: {text}; {_REMEDY}")
            if policy == "resync":
                if initial and (first_exch is None or first_exch > d_exch):
                    first_exch = d_exch  # the opening book is shown before the halt
                if halt is None:
                    h_exch = d_exch if depth_exch is None else max(depth_exch, d_exch)
                    flags = _SYN | _LAST
                    b.add(h_exch, d_local, EventKind.STATUS, 0, 0, 0, flags, _PRIO_DEPTH, d_seq,
                          value=-1.0)
                    b.add(h_exch, d_local, EventKind.CLEAR, 0, 0, 0, flags, _PRIO_DEPTH, d_seq)
                    depth_exch = h_exch
                    out["resyncs"] += 1
                    halt = {
                        "file": d_path.name,
                        "line": d_line,
                        "halt_exch_ts": int(h_exch),
                        "resume_exch_ts": None,
                        "snapshot": None,
                        "diffs_dropped": 0,
                    }
                    if len(resync_examples) < _N_EXAMPLES:
                        resync_examples.append(halt)
                # the next snapshot beyond what the book already had; the gapped diff is
                # looked at again against it (it may bridge it)
                floor = L if prev is None else max(L, prev[0])
                j = cur + 1
                while j < len(snaps) and snaps[j][5] <= floor:
                    j += 1
                if j == len(snaps):
                    exhausted = True
                else:
                    cur, L, bridging, initial = j, snaps[j][5], True, False
                continue
            # "apply": fall through, the diff is applied
        if bridging and initial:
            if first_exch is None or first_exch > d_exch:
                first_exch = d_exch
            depth_exch = d_exch
        elif depth_exch is not None and d_exch < depth_exch:
            out["depth_back"] += 1
        else:
            depth_exch = d_exch
        if bridging and not initial:  # resync: rebuild from snaps[cur], then resume
            r_seq, r_path, r_line, r_local, r_snap, _ = snaps[cur]
            levels = _book_sides(r_snap, "bids", "asks", r_path, r_line, px, lot)
            r_exch = _snapshot_exch(r_snap, r_path, r_line)
            r_exch = depth_exch if r_exch is None else min(max(r_exch, halt["halt_exch_ts"]),
                                                           depth_exch)
            _emit_snapshot(b, r_exch, r_local, levels, _PRIO_DEPTH, d_seq)
            b.add(r_exch, r_local, EventKind.STATUS, 0, 0, 0, _SYN | _LAST, _PRIO_DEPTH, d_seq,
                  value=1.0)
            out["paused_ns"] += r_exch - halt["halt_exch_ts"]
            halt["resume_exch_ts"] = int(r_exch)
            halt["snapshot"] = {"file": r_path.name, "line": r_line, "lastUpdateId": L}
            halt = None
            used += 1
        bridging = False
        initial = False
        prev = (u, d_path, d_line)
        out["applied"] += 1
        i += 1
        if not lv:
            out["empty"] += 1
            continue
        b.add_levels(depth_exch, d_local, lv, 0, _LAST, _PRIO_DEPTH, d_seq)

    if first_exch is None:  # spot, and every diff is older than the snapshot (or none)
        first_exch = diffs[-1][4] if diffs else fallback_exch
    zero_levels = _emit_snapshot(b, first_exch, s_local, snap_levels, _PRIO_SNAPSHOT, s_seq)
    out.update(
        gap_examples=gap_examples,
        resync_examples=resync_examples,
        snapshots_used=used,
        open_halt_exch=None if halt is None else halt["halt_exch_ts"],
        snapshot={
            "file": s_path.name,
            "line": s_line,
            "lastUpdateId": snaps[0][5],
            "bid_levels": sum(1 for s, _, _ in snap_levels if s == 1),
            "ask_levels": sum(1 for s, _, _ in snap_levels if s == -1),
            "zero_levels_skipped": zero_levels,
            "exch_ts": int(first_exch),
            "exch_ts_source": "T" if "T" in snap else ("E" if "E" in snap else "first kept diff"),
        },
    )
    return out


# ---------------------------------------------------------------------------- the reader
def read_binance(
    paths: list[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    tick_size: float | None = None,
    lot_size: float | None = None,
    symbol: str | None = None,
    contract: str | None = None,
    multiplier: float | None = None,
    gap_policy: str = "error",
) -> IngestResult:
    """Read Binance combined-stream capture files (USD-M or COIN-M futures, spot) into L2
    events.

    See the module docstring for the market detection, the mapping, the snapshot bridging,
    the gap policies, the file order and the clocks.

    Parameters
    ----------
    paths : list of str or os.PathLike (or one path)
        Capture files of one instrument (gzip detected from the magic bytes), in any order:
        they are put in stream order (first depth update id, else first receive stamp) and
        read as one continuous stream; one of them (normally the first) must hold a REST
        snapshot line.
    tick_size, lot_size : float or None
        Price tick (quote currency) and quantity lot (base units; COIN-M: contracts).
        Default: BTCUSDT USD-M 0.1 / 0.001, BTCUSDT spot 0.01 / 0.000001, COIN-M ``BTCUSD_*``
        0.1 / 1; other COIN-M symbols need ``tick_size`` (lot 1), anything else both.
    symbol : str or None
        Symbol to keep (case-insensitive, e.g. ``"BTCUSDT"``, ``"btcusd_perp"``); default:
        the most frequent one in the stream names. Messages of other symbols are counted in
        ``report["other_symbols"]``. A REST snapshot line without a ``symbol`` field is
        taken to be the kept symbol's.
    contract : {"linear", "inverse"} or None
        Overrides the detected contract type (``instrument.contract``); required, with
        ``multiplier`` when inverse, when the symbol does not tell (module docstring).
    multiplier : float or None
        Overrides the detected multiplier (inverse: USD per contract; linear: 1).
    gap_policy : {"error", "resync", "apply"}
        What to do at an update-id gap (module docstring). Default ``"error"``.

    Returns
    -------
    IngestResult
        ``events``: EVENT_DTYPE, shape ``(n,)``, sorted by ``exch_ts`` (int64 ns),
        ``local_ts`` raw (int64 ns, may step back), prices in ticks, quantities in lots.
        ``meta``: source ``binance``, market (``usdm``/``coinm``/``spot``), contract
        (``linear``/``inverse``), multiplier (float), symbol (upper case), streams, date,
        levels None, clocks 2, tick_size, lot_size (float), local_ts_unit, files (in stream
        order), suggested_feed_offset_ns, exch_ts_source. ``report``: see the module
        docstring; always ``gap_policy``, ``update_id_gaps``, ``crossed_states``,
        ``resyncs``, ``paused_ns``; plus ``validation`` (:func:`l2_stream_report`).

    Raises
    ------
    DataError
        Missing, empty or undecompressable file; a line without a receive stamp, with a
        stamp that is neither ns nor µs or whose unit differs from the file's; malformed
        JSON; a missing or non-numeric field; a price or quantity off the grid (file, 1-based
        line, field); no depth stream (nor markPrice) or no REST snapshot line; futures whose
        contract type cannot be told without ``contract``/``multiplier``; the same content
        twice, overlapping or disordered update-id ranges across files (both files and
        ranges named); with ``gap_policy="error"``, an update-id gap (file, line, field
        ``pu``/``U``/``u``, update ids expected and got).
    ValueError
        No input file; an unknown ``gap_policy`` or ``contract``; a non-positive
        ``multiplier`` or step; a symbol without default tick/lot size and none given.
    """
    if gap_policy not in GAP_POLICIES:
        raise ValueError(f"gap_policy must be one of {', '.join(GAP_POLICIES)}, got {gap_policy!r}")
    if contract is not None and contract not in _CONTRACTS:
        raise ValueError(f"contract must be 'linear' or 'inverse', got {contract!r}")
    if multiplier is not None and not multiplier > 0:
        raise ValueError(f"multiplier must be positive, got {multiplier!r}")
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    plist = [Path(p) for p in paths]
    if not plist:
        raise ValueError("no input files")
    parsed = [(p, *_read_lines(p)) for p in plist]

    # --- symbol, market, contract, file order
    sym_counts, per_symbol, ranges = _survey(parsed)
    if not sym_counts:
        raise DataError(plist[0], None, "stream", "no stream messages in the files")
    if symbol is None:
        symbol = sym_counts.most_common(1)[0][0]
    symbol = symbol.upper()
    st = per_symbol.get(symbol)
    if st is None or (not st["depth"] and not st["mark"]):
        have = ", ".join(sorted(per_symbol)) or "none"
        raise DataError(
            plist[0], None, "stream", f"no depth diff stream of {symbol} in the files "
            f"(symbols: {have})"
        )
    market, contract, multiplier, tick_size, lot_size, futures = _resolve_instrument(
        symbol, st, tick_size=tick_size, lot_size=lot_size, contract=contract,
        multiplier=multiplier,
    )
    ordered = _order_files(parsed, symbol, ranges)
    px = DecimalGrid(tick_size)
    lot = DecimalGrid(lot_size)
    trade_kind = "trade" if st["trade"] or not st["aggTrade"] else "aggTrade"
    trade_id_key = "t" if trade_kind == "trade" else "a"

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
    for path, msgs, _, _, _ in ordered:
        for lineno, local, msg in msgs:
            seq += 1
            stream = msg.get("stream")
            if stream is None:
                if "lastUpdateId" in msg:
                    s_sym = msg.get("symbol")
                    if isinstance(s_sym, str) and s_sym.upper() != symbol:
                        other_symbols[s_sym.upper()] += 1
                        continue
                    stream_counts["snapshot"] += 1
                    snapshots.append((seq, path, lineno, local, msg))
                    continue
                raise DataError(path, lineno, "stream", "neither a stream message nor a snapshot")
            if not isinstance(stream, str):
                raise DataError(path, lineno, "stream", f"{stream!r} is not a stream name")
            sym, _, kind = stream.partition("@")
            if sym.lower() != lower_sym:
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
            elif kind in ("trade", "aggTrade"):
                stream_counts[kind] += 1
                if kind != trade_kind:
                    continue  # aggTrade beside a trade stream: the same trades, aggregated
                exch = _int_field(data, "T", path, lineno) * _MS
                m = _field(data, "m", path, lineno)
                if not isinstance(m, bool):
                    raise DataError(path, lineno, "m", f"{m!r} is not a boolean")
                x = data.get("X", "MARKET")
                trade_types[str(x)] += 1
                flags = _LAST if x == "MARKET" else _LAST | _INFO
                tid = data.get(trade_id_key)
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
                emit_funding = False
                if r != "":  # empty on delivery contracts: no funding
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
            ordered[0][0],
            None,
            "lastUpdateId",
            "no REST snapshot line in the files (pass the file that holds it)",
        )
    for i in pending_bbo:
        b.exch[i] = first_exch

    # --- the snapshot and the update-id chain
    chain = _replay_chain(
        b,
        diffs,
        snapshots,
        futures=futures,
        policy=gap_policy,
        px=px,
        lot=lot,
        fallback_exch=last_exch if last_exch is not None else snapshots[0][3],
    )

    ev = b.finish()
    paused_ns = chain["paused_ns"]
    if chain["open_halt_exch"] is not None:
        paused_ns += int(ev["exch_ts"][-1]) - chain["open_halt_exch"]
    offsets = offset_stats(np.asarray(depth_offsets, dtype=np.int64))
    feed_offset = suggested_feed_offset(offsets)
    units = {info["name"]: unit for _, _, unit, info, _ in ordered}
    unit_set = set(units.values())
    validation = l2_stream_report(ev)
    date = np.datetime64(int(ev["exch_ts"][0]), "ns").astype("datetime64[D]").item()
    report: dict[str, Any] = {
        "lines": {info["name"]: len(msgs) for _, msgs, _, info, _ in ordered},
        "messages": dict(stream_counts),
        "other_symbols": dict(other_symbols),
        "update_id_ranges": {
            info["name"]: (None if r is None else [r[0], r[1]]) for _, _, _, info, r in ordered
        },
        "snapshot": chain["snapshot"],
        "snapshots_used": chain["snapshots_used"],
        "snapshots_unused": len(snapshots) - chain["snapshots_used"],
        "diffs": len(diffs),
        "diffs_applied": chain["applied"],
        "diffs_dropped_before_snapshot": chain["dropped"],
        "diffs_empty": chain["empty"],
        "gap_policy": gap_policy,
        "update_id_gaps": chain["gaps"],
        "update_id_gap_examples": chain["gap_examples"],
        "resyncs": chain["resyncs"],
        "resync_diffs_dropped": chain["resync_diffs"],
        "resync_events_dropped": chain["resync_events"],
        "paused_ns": int(paused_ns),
        "paused_at_end": chain["open_halt_exch"] is not None,
        "resync_examples": chain["resync_examples"],
        "depth_ts_backwards": chain["depth_back"],
        "trades": n_trades,
        "trade_stream": trade_kind if n_trades else None,
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
        "contract": contract,
        "symbol": symbol,
        "streams": sorted(stream_counts),
        "date": date.isoformat(),
        "levels": None,
        "clocks": 2,
        "tick_size": float(tick_size),
        "lot_size": float(lot_size),
        "multiplier": float(multiplier),
        "local_ts_unit": unit_set.pop() if len(unit_set) == 1 else units,
        "suggested_feed_offset_ns": feed_offset,
        "exch_ts_source": {
            "depth": "T" if futures else "E",
            "trade": "T",
            "bookTicker": "T" if futures else "estimated (latest exchange time received)",
            "markPrice": "E",
        },
        "files": [info for _, _, _, info, _ in ordered],
    }
    return IngestResult(events=ev, meta=meta, report=report)
