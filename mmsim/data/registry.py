"""The data formats mmsim reads, each registered once with what it is.

A format is one :class:`ReaderSpec`: its name (``data.kind`` in an experiment and the vendor
of ``mmsim ingest``; ``binance-hist`` and ``binance_hist`` are the same name), the book it
produces (``L2`` market-by-price or ``L3`` market-by-order), the file names it is detected
from (``data.kind: auto``), the companion inputs it takes (an orderbook file, extra files, a
trades file), the reader options it takes (from :data:`READER_OPTIONS`: the tick and lot
grid, the symbol, the contract, the gap policy, the L3 CSV map), whether the tick grid is
required, its default instrument, a one-line description and the reader function, named as
``"package.module:function"`` and imported only when a file is read. Everything that needs
to know the formats asks this module: the config's ``data.kind`` validation and
auto-detection (:mod:`mmsim.config`), :func:`mmsim.data.sources.read_raw` and
:func:`~mmsim.data.sources.open_dataset`, the ``mmsim ingest`` command,
:data:`mmsim.instruments.DEFAULT_INSTRUMENTS` and the runner's L2/L3 choice
(:func:`book_of`).

Adding a format is one reader module plus one registration::

    register_reader(ReaderSpec(
        name="myvenue", reader="mypkg.myvenue:read_myvenue", book="L2",
        description="MyVenue depth CSV", usage="DEPTH.csv", suffixes=(".myv.csv",),
        needs_grid=True, options=("tick_size", "lot_size")))

The reader is called as ``reader(path, [orderbook,] *extra_files, **options)``
(``pass_paths="args"``) or ``reader([path, *extra_files], **options)`` (``"list"``), with only
the options it declares that were given (None values are left out, so the reader's own
defaults apply), and returns an :class:`mmsim.data.store.IngestResult`.

Two kinds are not readers of raw files and are registered with another ``role``:
``synthetic`` (``role="generated"``: no files; the flow is generated from ``data.synthetic``
into the cache) and ``parquet`` (``role="canonical"``: a canonical event file, e.g. from
``mmsim ingest``, read where it is; its book follows the ``source`` recorded in the file).
Neither can be ingested, and neither has a reader function.

Importing this module imports nothing beyond the standard library (so importing
:mod:`mmsim.config` stays cheap).
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "READER_OPTIONS", "ReaderOption", "ReaderSpec", "UnknownReaderError", "book_of",
    "canonical_kind", "default_instrument", "detect_kind", "get_reader", "is_registered",
    "iter_default_instruments", "known_kinds", "list_readers", "reader_names", "register_reader",
    "unregister_reader",
]

Book = Literal["L2", "L3"]
Role = Literal["raw", "generated", "canonical"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownReaderError(ValueError):
    """A data kind that no registered format has (the message lists the known kinds)."""


@dataclass(frozen=True)
class ReaderOption:
    """An option a reader may take (a keyword of :func:`mmsim.data.sources.read_raw`).

    Attributes
    ----------
    name : str
        The keyword (``tick_size``); ``mmsim ingest`` offers it as ``--tick-size``.
    type : type
        ``float`` or ``str`` (the CLI's conversion).
    help : str
        What it is, for the CLI help (the readers taking it are prepended).
    choices : tuple of str, optional
        The allowed values, if limited.
    source : {"instrument", "data"}
        Where a backtest takes it from: the experiment's ``instrument`` section (the grid
        hints, all of which enter the cache key) or the ``data`` section's field of the same
        name (in the cache key of the formats that take it).
    """

    name: str
    type: type
    help: str
    choices: tuple[str, ...] | None = None
    source: Literal["instrument", "data"] = "instrument"

    @property
    def flag(self) -> str:
        """The ``mmsim ingest`` flag: ``--tick-size``."""
        return "--" + self.name.replace("_", "-")


#: The options readers can take, by name (a format declares the ones it takes).
READER_OPTIONS: Mapping[str, ReaderOption] = MappingProxyType({o.name: o for o in (
    ReaderOption("tick_size", float, "price grid (quote currency per tick)"),
    ReaderOption("lot_size", float, "quantity grid (instrument units per lot)"),
    ReaderOption("symbol", str, "the symbol to keep"),
    ReaderOption("contract", str, "contract type, when the stream names do not tell",
                 choices=("linear", "inverse")),
    ReaderOption("multiplier", float, "contract size (quote currency per contract), when "
                                      "the stream names do not tell"),
    ReaderOption("gap_policy", str,
                 "at an update-id gap, stop with the file and line (error), clear the book "
                 "until the next snapshot (resync) or apply the diff anyway (apply); "
                 "default error, as data.gap_policy",
                 choices=("error", "resync", "apply"), source="data"),
    ReaderOption("l3_csv", str,
                 "the file's column, action and side map: a YAML file holding the "
                 "data.l3_csv mapping, or an experiment YAML (its data.l3_csv is read); "
                 "as data.l3_csv", source="data"),
)})


@dataclass(frozen=True)
class ReaderSpec:
    """One data format (see the module docstring).

    Attributes
    ----------
    name : str
        Lower-case identifier (``binance_hist``): ``data.kind``, and the ``mmsim ingest``
        vendor with ``-`` for ``_`` (:attr:`cli_name`).
    reader : str or callable or None
        ``"package.module:function"`` (imported on first use by :meth:`load`), or the
        function itself; None only for the ``generated`` and ``canonical`` roles.
    book : {"L2", "L3"} or None
        The book the format produces; None: told by the file (``parquet``).
    description : str
        One line, for ``mmsim ingest --help`` and error messages.
    usage : str
        The inputs as ``mmsim ingest`` takes them (``MESSAGE.csv [ORDERBOOK.csv]``).
    suffixes : tuple of str
        File name endings for ``data.kind: auto`` (case-insensitive, ``.dbn.zst``).
    patterns : tuple of str
        :mod:`fnmatch` patterns for ``data.kind: auto``, matched case-insensitively against
        the whole ``data.path`` as given (``*`` crosses ``/``): ``*_message_*.csv``.
    needs_grid : bool
        The tick and lot size are required (the reader converts decimal text exactly).
    orderbook : bool
        Takes an optional orderbook file (``data.orderbook``; the second ``mmsim ingest``
        file).
    extra_files : tuple of (int, int or None)
        Minimum and maximum number of extra files (``data.files``; the further ``mmsim
        ingest`` files), None = no maximum.
    trades : bool
        The (last) extra file may be a trades file: ``mmsim ingest --trades FILE``.
    pass_paths : {"args", "list"}
        How the reader takes the files: ``reader(path, [orderbook,] *extra)`` or
        ``reader([path, *extra])``.
    options : tuple of str
        The :data:`READER_OPTIONS` the reader takes (passed as keywords when given).
    instrument : Mapping
        Default :class:`mmsim.instruments.Instrument` fields for this vendor (the YAML
        ``instrument`` section and the reader's metadata override them).
    role : {"raw", "generated", "canonical"}
        ``raw``: vendor files read by ``reader`` (and cached); ``generated``: no files
        (``synthetic``); ``canonical``: already a canonical event file (``parquet``).
    calendar : {"equities", "futures", "24/7"}
        The market's trading calendar, for annualising Sharpe and Sortino when the
        experiment gives none (:data:`mmsim.metrics.metrics.CALENDARS`). Default
        ``equities``.
    timezone : str
        IANA time zone of the venue (``America/New_York`` for NASDAQ), for display:
        :func:`mmsim.results.load` with ``datetimes=True`` shows timestamps in it (they are
        stored in UTC). Default ``UTC``.

    Raises
    ------
    ValueError
        If a field is inconsistent (bad name, unknown option, a raw format without a reader,
        a reader reference that is not ``module:function``, ``needs_grid`` without the
        ``tick_size`` and ``lot_size`` options, ...). Nothing is imported.
    """

    name: str
    reader: str | Callable[..., Any] | None
    book: Book | None
    description: str
    usage: str = "FILE"
    suffixes: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    needs_grid: bool = False
    orderbook: bool = False
    extra_files: tuple[int, int | None] = (0, 0)
    trades: bool = False
    pass_paths: Literal["args", "list"] = "args"
    options: tuple[str, ...] = ()
    instrument: Mapping[str, Any] = field(default_factory=dict)
    role: Role = "raw"
    timezone: str = "UTC"
    calendar: Literal["equities", "futures", "24/7"] = "equities"

    def __post_init__(self) -> None:
        fix = object.__setattr__
        fix(self, "suffixes", tuple(s.lower() for s in self.suffixes))
        fix(self, "patterns", tuple(p.lower() for p in self.patterns))
        fix(self, "options", tuple(self.options))
        fix(self, "extra_files", tuple(self.extra_files))
        fix(self, "instrument", MappingProxyType(dict(self.instrument)))
        problems = []
        if not _NAME.match(self.name) or self.name == "auto":
            problems.append(f"name {self.name!r} must be lower-case letters, digits and _ "
                            "(not 'auto')")
        if self.book not in ("L2", "L3", None):
            problems.append(f"book must be 'L2', 'L3' or None, got {self.book!r}")
        if self.role not in ("raw", "generated", "canonical"):
            problems.append(f"unknown role {self.role!r}")
        if self.role == "raw":
            if self.reader is None:
                problems.append("a raw format needs a reader")
            if self.book is None:
                problems.append("a raw format must say its book ('L2' or 'L3')")
        if isinstance(self.reader, str):
            mod, sep, attr = self.reader.partition(":")
            if not (sep and mod and attr.isidentifier()):
                problems.append(f"reader {self.reader!r} must be 'package.module:function'")
        elif self.reader is not None and not callable(self.reader):
            problems.append("reader must be 'package.module:function' or a callable")
        unknown = [o for o in self.options if o not in READER_OPTIONS]
        if unknown:
            problems.append(f"unknown option(s) {', '.join(unknown)} (known: "
                            f"{', '.join(READER_OPTIONS)})")
        if self.needs_grid and not {"tick_size", "lot_size"} <= set(self.options):
            problems.append("needs_grid needs the tick_size and lot_size options")
        lo, hi = self.extra_files
        if lo < 0 or (hi is not None and hi < lo):
            problems.append(f"extra_files {self.extra_files!r} is not a (min, max) range")
        if self.trades and hi == 0:
            problems.append("trades needs room for an extra file")
        if self.pass_paths not in ("args", "list") or (
                self.pass_paths == "list" and self.orderbook):
            problems.append("pass_paths must be 'args' or 'list' (without an orderbook)")
        if self.calendar not in ("equities", "futures", "24/7"):
            problems.append(f"calendar {self.calendar!r} must be equities, futures or 24/7")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            problems.append(f"timezone {self.timezone!r} is not an IANA time zone")
        if problems:
            raise ValueError(f"reader {self.name!r}: " + "; ".join(problems))

    @property
    def cli_name(self) -> str:
        """The ``mmsim ingest`` vendor name (``binance-hist``)."""
        return self.name.replace("_", "-")

    def matches(self, path: str) -> bool:
        """Whether ``path`` (as given) looks like a file of this format."""
        p = path.lower()
        return (any(p.endswith(s) for s in self.suffixes)
                or any(fnmatch.fnmatchcase(p, pat) for pat in self.patterns))

    def load(self) -> Callable[..., Any]:
        """The reader function (its module imported now).

        Raises
        ------
        ValueError
            If the format has no reader (``synthetic``, ``parquet``).
        ImportError, AttributeError
            If the module or the function does not exist (the reference is named).
        """
        if self.reader is None:
            raise ValueError(f"data kind '{self.name}' has no reader ({self.description})")
        if callable(self.reader):
            return self.reader
        mod, _, attr = self.reader.partition(":")
        try:
            fn = getattr(importlib.import_module(mod), attr)
        except AttributeError:
            raise AttributeError(f"reader {self.name!r}: {mod} has no {attr!r}") from None
        return fn

    def check_inputs(self, orderbook: bool, n_extra: int) -> None:
        """Check the companion inputs: an orderbook file given or not, ``n_extra`` extra files.

        Raises
        ------
        ValueError
            ``<name>: give <usage> (...)`` if the format does not take them.
        """
        lo, hi = self.extra_files
        problem = None
        if orderbook and not self.orderbook:
            problem = "it takes no orderbook file"
        elif n_extra < lo or (hi is not None and n_extra > hi):
            if hi == 0:
                problem = f"it takes no extra file, got {n_extra}"
            else:
                want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else \
                    f"at least {lo}"
                problem = f"{want} extra file(s) expected, got {n_extra}"
        if problem:
            raise ValueError(f"{self.name}: give {self.usage} ({problem})")

    def call(self, src: Any, orderbook: Any, extra: list[Any], options: Mapping[str, Any]):
        """Run the reader on the inputs (checked first) with the options it takes.

        ``options`` may hold any :data:`READER_OPTIONS`; those the format does not declare,
        and those that are None, are left out.

        Returns
        -------
        mmsim.data.store.IngestResult

        Raises
        ------
        ValueError
            Companion inputs the format does not take, or the tick and lot size missing
            where :attr:`needs_grid` (``tardis: the tick size and lot size are required``).
        mmsim.data.DataError
            Bad input (from the reader).
        """
        self.check_inputs(orderbook is not None, len(extra))
        kw = {k: options[k] for k in self.options if options.get(k) is not None}
        if self.needs_grid and ("tick_size" not in kw or "lot_size" not in kw):
            raise ValueError(f"{self.name}: the tick size and lot size are required")
        fn = self.load()
        if self.pass_paths == "list":
            return fn([src, *extra], **kw)
        args = [src, orderbook] if self.orderbook else [src]
        return fn(*args, *extra, **kw)


_REGISTRY: dict[str, ReaderSpec] = {}


def canonical_kind(name: str) -> str:
    """``name`` as registered: ``binance-hist`` → ``binance_hist``."""
    return name.replace("-", "_")


def register_reader(spec: ReaderSpec, *, replace: bool = False) -> ReaderSpec:
    """Register a format; returns ``spec``. Imports nothing (the reader is loaded on use).

    Raises
    ------
    ValueError
        If ``spec.name`` is taken and ``replace`` is False.
    TypeError
        If ``spec`` is not a :class:`ReaderSpec`.
    """
    if not isinstance(spec, ReaderSpec):
        raise TypeError(f"expected a ReaderSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"data kind '{spec.name}' is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_reader(name: str) -> None:
    """Remove a format (``binance-hist`` spelling accepted).

    Raises
    ------
    UnknownReaderError
        If it is not registered.
    """
    get_reader(name)
    del _REGISTRY[canonical_kind(name)]


def list_readers(role: Role | None = None) -> tuple[ReaderSpec, ...]:
    """Every registered format in registration order (only ``role``'s if given)."""
    return tuple(s for s in _REGISTRY.values() if role is None or s.role == role)


def reader_names(role: Role | None = None) -> tuple[str, ...]:
    """The registered names (only ``role``'s if given), in registration order."""
    return tuple(s.name for s in list_readers(role))


def known_kinds() -> tuple[str, ...]:
    """What ``data.kind`` accepts: ``auto`` and every registered name, sorted after it."""
    return ("auto", *sorted(_REGISTRY))


def is_registered(name: str) -> bool:
    """Whether ``name`` (either spelling) is a registered format."""
    return canonical_kind(name) in _REGISTRY


def get_reader(name: str) -> ReaderSpec:
    """The format named ``name`` (``binance-hist`` or ``binance_hist``).

    Raises
    ------
    UnknownReaderError
        A ValueError naming ``name`` and listing the known kinds.
    """
    spec = _REGISTRY.get(canonical_kind(name)) if isinstance(name, str) else None
    if spec is None:
        raise UnknownReaderError(f"unknown data kind {name!r} (known: "
                                 f"{', '.join(sorted(_REGISTRY))})")
    return spec


def detect_kind(path: str) -> str:
    """The format of ``path`` (as given) from its name (``data.kind: auto``).

    Raises
    ------
    ValueError
        ``data.kind: cannot tell the format of '<path>'; set data.kind`` if no format
        matches, or a message naming the formats if several do.
    """
    hits = [s.name for s in _REGISTRY.values() if s.matches(path)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ValueError(f"data.kind: '{path}' matches several formats "
                         f"({', '.join(hits)}); set data.kind")
    raise ValueError(f"data.kind: cannot tell the format of '{path}'; set data.kind")


def book_of(kind: str, meta: Mapping[str, Any] | None = None) -> Book:
    """The book a dataset carries: ``"L2"`` (market-by-price) or ``"L3"`` (market-by-order).

    ``kind`` is the dataset's kind (:attr:`mmsim.data.sources.Dataset.kind`: the reader's
    name, or for a canonical file the ``source`` it records). ``"L2"`` if ``meta`` (the
    file's metadata) says ``book: L2`` or the format registered as ``L2``; else ``"L3"``
    (also for a kind no format registered, e.g. a canonical file written by another tool,
    and for ``parquet``). Never raises.
    """
    if meta and meta.get("book") == "L2":
        return "L2"
    spec = _REGISTRY.get(canonical_kind(kind)) if isinstance(kind, str) else None
    return "L2" if spec is not None and spec.book == "L2" else "L3"


def default_instrument(kind: str) -> dict[str, Any]:
    """The vendor's default instrument fields (a new dict; empty if none or unknown)."""
    spec = _REGISTRY.get(canonical_kind(kind)) if isinstance(kind, str) else None
    return dict(spec.instrument) if spec is not None else {}


def iter_default_instruments() -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(kind, fields)`` of the formats with a default instrument."""
    for s in _REGISTRY.values():
        if s.instrument:
            yield s.name, s.instrument


# --- the formats mmsim ships ----------------------------------------------------------------
# One registration per format; the reader modules are imported when a file is read.

register_reader(ReaderSpec(
    name="synthetic", reader=None, book="L3", role="generated", usage="",
    description="synthetic L3 order flow generated by mmsim (no files; data.synthetic)",
    instrument={"symbol": "SYN", "tick_size": 0.01, "lot_size": 1.0},
))
register_reader(ReaderSpec(
    name="lobster", reader="mmsim.data.lobster:read_lobster", book="L3",
    usage="MESSAGE.csv [ORDERBOOK.csv]", patterns=("*_message_*.csv",), orderbook=True,
    description="LOBSTER message file (NASDAQ), checked against its orderbook file if given",
    # NASDAQ equities from LOBSTER: prices in $0.0001, tick $0.01, 1 share lots.
    instrument={"symbol": "LOBSTER", "tick_size": 0.01, "lot_size": 1.0},
    timezone="America/New_York",
))
register_reader(ReaderSpec(
    name="databento", reader="mmsim.data.databento:read_databento", book="L3",
    usage="FILE.dbn.zst", suffixes=(".dbn.zst", ".dbn"),
    description="Databento MBO file",
    # CME E-mini S&P 500: tick 0.25 index points, $50 per point.
    instrument={"symbol": "ES", "tick_size": 0.25, "lot_size": 1.0, "multiplier": 50.0},
    timezone="America/Chicago", calendar="futures",  # CME Globex
))
register_reader(ReaderSpec(
    name="parquet", reader=None, book=None, role="canonical", usage="FILE.parquet",
    suffixes=(".parquet",),
    description="canonical event file (mmsim ingest output), read where it is",
))
register_reader(ReaderSpec(
    name="binance", reader="mmsim.data.binance:read_binance", book="L2",
    usage="CAPTURE [CAPTURE ...]", patterns=("*binance*.gz", "*binance*.dat"),
    extra_files=(0, None), pass_paths="list",
    options=("tick_size", "lot_size", "symbol", "contract", "multiplier", "gap_policy"),
    description="raw combined-stream captures of one instrument (USD-M, COIN-M, spot), "
                "read as one stream",
    calendar="24/7",
))
register_reader(ReaderSpec(
    name="binance_hist", reader="mmsim.data.binance_hist:read_binance_hist", book="L2",
    usage="SNAPSHOT.csv UPDATES.csv", extra_files=(1, 1), options=("tick_size", "lot_size"),
    description="Binance historical depth snapshot CSV and its updates CSV",
    calendar="24/7",
))
register_reader(ReaderSpec(
    name="tardis", reader="mmsim.data.tardis:read_tardis", book="L2",
    usage="BOOK.csv [TRADES.csv | --trades TRADES.csv]", extra_files=(0, 1), trades=True,
    needs_grid=True, options=("tick_size", "lot_size"),
    description="Tardis.dev incremental_book_L2 CSV, with its trades CSV if given",
    calendar="24/7",
))
register_reader(ReaderSpec(
    name="bybit", reader="mmsim.data.bybit:read_bybit", book="L2",
    usage="OB.data [TRADES.csv | --trades TRADES.csv]",
    patterns=("*_ob[0-9]*.data", "*_ob[0-9]*.data.zip", "*_ob[0-9]*.data.gz"),
    extra_files=(0, 1), trades=True, needs_grid=True,
    options=("tick_size", "lot_size", "gap_policy"),
    description="Bybit order-book dump (orderbook.N JSON lines, e.g. ob500), with its public "
                "trades CSV if given",
    calendar="24/7",
))
register_reader(ReaderSpec(
    name="hftbacktest", reader="mmsim.data.hftbacktest_npz:read_hftbacktest_npz", book="L2",
    usage="FILE.npz", suffixes=(".npz",), needs_grid=True, options=("tick_size", "lot_size"),
    description="hftbacktest .npz event file",
    calendar="24/7",
))
register_reader(ReaderSpec(
    name="l3_csv", reader="mmsim.data.l3_csv:read_l3_csv", book="L3",
    usage="ORDERS.csv --l3-csv MAP.yaml", needs_grid=True,
    options=("tick_size", "lot_size", "symbol", "l3_csv"),
    description="generic order-level CSV, its columns, action and side values mapped in "
                "data.l3_csv",
))
