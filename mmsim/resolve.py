"""From an experiment config and its dataset to a frozen engine spec: every decision, once.

:func:`resolve` is the one place where

* every ``auto`` is decided: ``queue.model: auto`` (``fifo`` on L3 data, ``risk_averse`` on L2
  data), ``latency.feed_offset_nanos: auto`` (the offset the reader suggests), ``engine.horizon:
  end`` (the dataset's last exchange timestamp), the instrument (vendor defaults, then the
  reader's metadata, then the YAML ``instrument`` section), the data's grid against the
  instrument's (:func:`mmsim.data.grid.grid_scaling`) and the latency vector (with the recorded
  series of ``latency.model: interpolated``, read from the data root);
* every string of the config is mapped to its enum (:class:`QueueModel`, :class:`LatencyModel`,
  :class:`FeedMode`, :class:`QuoteTif`, :class:`ReplaceMode`, :class:`FillMode`);
* every quantity is converted to the engine's units (lots, ticks, nanoseconds).

The result, an :class:`EngineSpec`, is immutable and hashable and holds only named, typed
fields; :class:`mmsim.engine.backtest.Engine` copies them into the kernel's arrays and decides
nothing. This module imports neither numba nor the engine, so a run checks everything before
any kernel is imported (only ``latency.model: interpolated`` imports
:mod:`mmsim.models.latency`, which reads the series).

:func:`resolve_for_events` is the same for hand-built event arrays without a dataset (tests,
benchmarks): what the dataset would tell is given as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsim.config import ConfigError, ExperimentConfig
from mmsim.data.registry import book_of, default_instrument
from mmsim.instruments import Instrument

if TYPE_CHECKING:  # pragma: no cover - types only
    from mmsim.data.grid import GridScaling
    from mmsim.data.sources import Dataset
    from mmsim.policies.registry import KernelSpec

#: instrument fields a reader's metadata may set (over the vendor defaults, under the YAML)
READER_INSTRUMENT_FIELDS = ("tick_size", "lot_size", "multiplier", "contract", "symbol")


# --- enums (config strings → names) ------------------------------------------------------------
class QueueModel(StrEnum):
    """Queue-position model (``queue.model``, MODELS.md §6), ``auto`` resolved."""

    FIFO = "fifo"  # L3 market-by-order FIFO
    RISK_AVERSE = "risk_averse"  # L2: only trades at our price and depth below us move us up
    POWER = "power"  # L2 probabilistic, f(x) = x**n
    LOG = "log"  # L2 probabilistic, f(x) = ln(1 + x)


class LatencyModel(StrEnum):
    """Order latency model (``latency.model``, MODELS.md §7)."""

    CONSTANT = "constant"
    LOGNORMAL = "lognormal"
    INTERPOLATED = "interpolated"


class FeedMode(StrEnum):
    """Where the strategy's receive time of a market event comes from."""

    #: the data's ``local_ts``, plus :attr:`FeedSpec.nanos` (the feed offset)
    DATA_LOCAL_TS = "data_local_ts"
    #: ``exch_ts + FeedSpec.nanos`` (``latency.feed_nanos``; one-clock data such as LOBSTER)
    EXCHANGE_PLUS_LATENCY = "exchange_plus_latency"


class QuoteTif(StrEnum):
    """Time in force of the policy's quotes (``engine.quote_tif``)."""

    POST_ONLY = "post_only"
    GTC = "gtc"


class ReplaceMode(StrEnum):
    """How a quote that must change is changed (``engine.replace``)."""

    MODIFY = "modify"  # modify in place (a price change or size increase loses priority)
    CANCEL_REPLACE = "cancel_replace"  # cancel, then submit a new order


class FillMode(StrEnum):
    """How an execution reaching one of our resting orders fills it
    (``matching.partial_fills``)."""

    PARTIAL = "partial"  # up to the executed quantity
    WHOLE_ORDER = "whole_order"  # all of it, whatever the executed quantity


class BookKind(StrEnum):
    """What the data's book is made of."""

    L3 = "L3"  # market by order
    L2 = "L2"  # market by price


# --- the spec -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelBinding:
    """A policy or hedger kernel with its resolved parameters.

    Attributes
    ----------
    name : str
        The registered name (as the config gave it).
    spec : mmsim.policies.registry.KernelSpec
        The registry entry; :attr:`kernel` imports (compiles or loads) its numba function on
        first access.
    params : tuple of float
        Parameter vector, in the kernel's order (declared units: lots, ticks, s, ...).
    state_init : tuple of float
        First values of the kernel's state vector (the rest is zero).
    state_size : int
        Length of the state vector.
    """

    name: str
    spec: KernelSpec
    params: tuple[float, ...]
    state_init: tuple[float, ...]
    state_size: int

    @property
    def kernel(self) -> Any:
        """The numba function (``POLICY_SIG`` / ``HEDGER_SIG``); importing it may compile."""
        return self.spec.kernel


@dataclass(frozen=True)
class QueueSpec:
    """Queue-position model.

    Attributes
    ----------
    model : QueueModel
    power_n : float
        Exponent of :attr:`QueueModel.POWER` (dimensionless, > 0).
    ladder_follows_touch : bool
        The local price ladder's window follows the touch (L2 models: far-away levels are not
        tracked); False for the L3 FIFO book.
    """

    model: QueueModel
    power_n: float
    ladder_follows_touch: bool


@dataclass(frozen=True)
class LatencySpec:
    """Order latency.

    Attributes
    ----------
    model : LatencyModel
    vector : tuple of float
        The latency model's parameter vector (:mod:`mmsim.models.nb`): ``[0:6]`` entry submit,
        cancel, modify and response submit, cancel, modify in ns, ``[6:12]`` their log-normal
        σ; with :attr:`LatencyModel.INTERPOLATED`, the recorded series laid out after them
        (:func:`mmsim.models.latency.latency_vector`). The engine pads it with zeros to the
        kernel's fixed length.
    series_path : str or None
        The file the series was read from (for reports), None unless interpolated.
    """

    model: LatencyModel
    vector: tuple[float, ...]
    series_path: str | None = None


@dataclass(frozen=True)
class FeedSpec:
    """The strategy's view of the market feed.

    Attributes
    ----------
    mode : FeedMode
    nanos : int
        :attr:`FeedMode.DATA_LOCAL_TS`: offset added to the data's ``local_ts`` (ns, may be
        negative); :attr:`FeedMode.EXCHANGE_PLUS_LATENCY`: the feed latency (ns, >= 0).
    """

    mode: FeedMode
    nanos: int


@dataclass(frozen=True)
class ClockSpec:
    """The decision and equity clocks and the horizon.

    Attributes
    ----------
    decision_interval_ns, equity_interval_ns : int
        Local-clock periods, ns (> 0).
    decide_on_fill : bool
        Also decide after each of our fills.
    warmup_ns : int
        No quoting before the first event + this, ns.
    end_ts : int or None
        Horizon, exchange ns (UNIX); None = no horizon.
    """

    decision_interval_ns: int
    equity_interval_ns: int
    decide_on_fill: bool
    warmup_ns: int
    end_ts: int | None


@dataclass(frozen=True)
class OrderSpec:
    """How the order manager sends quotes and the exchange fills them.

    Attributes
    ----------
    quote_tif : QuoteTif
    replace : ReplaceMode
    fills : FillMode
    """

    quote_tif: QuoteTif
    replace: ReplaceMode
    fills: FillMode


@dataclass(frozen=True)
class LimitSpec:
    """Risk limits, in lots of the instrument.

    Attributes
    ----------
    max_position_lots : int or None
        ``risk.max_position_qty / lot_size``, rounded; None = no limit.
    target_position_lots : int
        ``risk.target_position_qty / lot_size``, rounded (the hedger's target).
    """

    max_position_lots: int | None
    target_position_lots: int


@dataclass(frozen=True)
class VolatilitySpec:
    """The engine's online volatility estimate of the mid (``ctx.VOL_TICK``).

    Attributes
    ----------
    halflife_s : float
        Exponential half-life, seconds (> 0).
    init_tick : float
        Initial value, ticks per sqrt(second) (>= 0).
    """

    halflife_s: float
    init_tick: float


@dataclass(frozen=True)
class CapacitySpec:
    """Sizes of the engine's arrays.

    Attributes
    ----------
    book_width_ticks : int
        Width of the price ladders, ticks (centred on :attr:`EngineSpec.ref_price_tick`).
    max_book_orders : int
        Hard cap of the L3 book's order table (it starts small and doubles up to this).
    max_our_orders : int
        Slots for our own orders.
    feed_buffer : int
        Capacity of the feed-delay ring, events.
    """

    book_width_ticks: int
    max_book_orders: int
    max_our_orders: int
    feed_buffer: int


@dataclass(frozen=True)
class EngineSpec:
    """Everything one replay needs, resolved (immutable, hashable).

    Attributes
    ----------
    instrument : mmsim.instruments.Instrument
        The merged instrument (tick and lot size, multiplier, contract, fees).
    policy, hedger : KernelBinding
        ``hedger`` is the registry's ``none`` hedger when the config has none.
    has_hedger : bool
        False for the ``none`` hedger (the engine then never calls it).
    queue : QueueSpec
    latency : LatencySpec
    feed : FeedSpec
    clocks : ClockSpec
    orders : OrderSpec
    limits : LimitSpec
    volatility : VolatilitySpec
    capacities : CapacitySpec
    ref_price_tick : int
        Centre of the price ladders, in the instrument's ticks.
    grid : mmsim.data.grid.GridScaling
        Rescaling of the data's ticks and lots to the instrument's (the identity when the grids
        agree), applied to each chunk before the engine sees it.
    book : BookKind
        What the data's book is made of.
    seed : int
        The experiment's seed (random latency draws).
    """

    instrument: Instrument
    policy: KernelBinding
    hedger: KernelBinding
    has_hedger: bool
    queue: QueueSpec
    latency: LatencySpec
    feed: FeedSpec
    clocks: ClockSpec
    orders: OrderSpec
    limits: LimitSpec
    volatility: VolatilitySpec
    capacities: CapacitySpec
    ref_price_tick: int
    grid: GridScaling
    book: BookKind
    seed: int


# --- resolution ---------------------------------------------------------------------------------
def book_kind(kind: str, meta: Mapping[str, Any]) -> BookKind:
    """The dataset's book: L2 if its metadata says ``book: L2`` or ``kind`` is registered as
    an L2 format (:func:`mmsim.data.registry.book_of`), else L3."""
    return BookKind(book_of(kind, meta))


def instrument_defaults(kind: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The instrument fields the data gives: the vendor defaults registered with format
    ``kind`` (:func:`mmsim.data.registry.default_instrument`) overridden by the reader's
    ``meta`` (:data:`READER_INSTRUMENT_FIELDS` that are not None). The YAML goes on top."""
    out = default_instrument(kind)
    for k in READER_INSTRUMENT_FIELDS:
        if meta.get(k) is not None:
            out[k] = meta[k]
    return out


def resolve(
    cfg: ExperimentConfig,
    dataset: Dataset,
    data_root: str | os.PathLike | None = None,
) -> EngineSpec:
    """The engine spec of experiment ``cfg`` on ``dataset``.

    Pure apart from reading the inputs: the dataset's canonical file is scanned only when the
    instrument's grid differs from the data's (to prove the data lies on it), and
    ``latency.series_path`` is read with ``latency.model: interpolated``. Imports no kernel.

    Parameters
    ----------
    cfg : mmsim.config.ExperimentConfig
        A validated experiment.
    dataset : mmsim.data.sources.Dataset
        Its opened dataset (kind, reader ``meta``, ``last_ts``, ``ref_price_tick``, ``path``).
    data_root : path, optional
        Folder ``data.path`` and ``latency.series_path`` are relative to (default
        ``MMSIM_DATA_ROOT``, else ``data/``).

    Returns
    -------
    EngineSpec

    Raises
    ------
    mmsim.config.ConfigError
        The merged instrument is invalid (``field 'instrument.tick_size': ...``), or a policy
        or hedger parameter (``field 'policy.gamma': ...``).
    mmsim.data.DataError
        The data is off the instrument's grid (file, event row and field ``price`` / ``qty``),
        or the latency series is missing or bad (file, row and field).
    """
    from mmsim.data.grid import grid_scaling
    from mmsim.data.sources import data_root_from

    root = data_root_from(data_root)
    meta = dataset.meta
    defaults = instrument_defaults(dataset.kind, meta)
    inst = cfg.instrument_spec(defaults)
    source = str(root / cfg.data.path) if cfg.data.path else str(dataset.path)
    # the data's grid: what the reader recorded, else the vendor's default
    scaling = grid_scaling(dataset.path, defaults, inst.tick_size, inst.lot_size, source=source)
    return _resolve(
        cfg,
        inst,
        book=book_kind(dataset.kind, meta),
        ref_price_tick=dataset.ref_price_tick * scaling.tick_num // scaling.tick_den,
        last_ts=dataset.last_ts,
        suggested_feed_offset_ns=int(meta.get("suggested_feed_offset_ns", 0)),
        grid=scaling,
        latency_series=_load_series(cfg, root),
    )


def resolve_for_events(
    cfg: ExperimentConfig,
    *,
    ref_price_tick: int,
    instrument: Instrument | Mapping[str, Any] | None = None,
    book: BookKind | str = BookKind.L3,
    last_ts: int | None = None,
    suggested_feed_offset_ns: int = 0,
    latency_series: Mapping[int, Any] | None = None,
    data_root: str | os.PathLike | None = None,
) -> EngineSpec:
    """:func:`resolve` for hand-built event arrays (no dataset): the dataset's answers are
    arguments. Events are taken to be on the instrument's grid (no rescaling).

    Parameters
    ----------
    cfg : mmsim.config.ExperimentConfig
    ref_price_tick : int
        Centre of the price ladders, ticks.
    instrument : Instrument or mapping, optional
        The data's instrument fields (what vendor defaults and reader metadata would give);
        the config's ``instrument`` section overrides them.
    book : BookKind or ``"L2"`` / ``"L3"``
        Decides ``queue.model: auto``.
    last_ts : int, optional
        Last exchange timestamp of the events (ns), for ``engine.horizon: end``; None: no
        horizon.
    suggested_feed_offset_ns : int
        What ``latency.feed_offset_nanos: auto`` becomes (ns).
    latency_series : mapping, optional
        An already loaded series (:func:`mmsim.models.latency.load_latency_series`) for
        ``latency.model: interpolated``, instead of reading ``latency.series_path``.
    data_root : path, optional
        Folder ``latency.series_path`` is relative to.

    Returns
    -------
    EngineSpec

    Raises
    ------
    mmsim.config.ConfigError
        As :func:`resolve`, or ``book`` is not L2 / L3.
    mmsim.data.DataError
        The latency series is missing or bad.
    """
    from mmsim.data.grid import GridScaling
    from mmsim.data.sources import data_root_from

    if isinstance(instrument, Instrument):
        defaults = instrument.model_dump()
    else:
        defaults = dict(instrument or {})
    try:
        bk = BookKind(book)
    except ValueError:
        raise ConfigError(f"book: must be 'L2' or 'L3', got {book!r}") from None
    series = latency_series
    if series is None:
        series = _load_series(cfg, data_root_from(data_root))
    return _resolve(
        cfg,
        cfg.instrument_spec(defaults),
        book=bk,
        ref_price_tick=int(ref_price_tick),
        last_ts=last_ts,
        suggested_feed_offset_ns=int(suggested_feed_offset_ns),
        grid=GridScaling(),
        latency_series=series,
    )


def _load_series(cfg: ExperimentConfig, root: Path) -> Mapping[int, Any] | None:
    """The recorded latency series of ``latency.model: interpolated`` (None otherwise)."""
    if cfg.latency.model != LatencyModel.INTERPOLATED.value:
        return None
    from mmsim.models.latency import load_latency_series

    return load_latency_series(root / cfg.latency.series_path)


def _binding(spec: KernelSpec, values: Mapping[str, Any], where: str) -> KernelBinding:
    return KernelBinding(
        name=spec.name,
        spec=spec,
        params=tuple(float(x) for x in spec.param_vector(values, where)),
        state_init=tuple(spec.state_init),
        state_size=int(spec.state_size),
    )


def _lots(qty: float, lot_size: float) -> int:
    return int(round(qty / lot_size))


def _resolve(
    cfg: ExperimentConfig,
    inst: Instrument,
    *,
    book: BookKind,
    ref_price_tick: int,
    last_ts: int | None,
    suggested_feed_offset_ns: int,
    grid: GridScaling,
    latency_series: Mapping[int, Any] | None,
) -> EngineSpec:
    from mmsim.hedgers.registry import get_hedger
    from mmsim.policies.registry import get_policy

    e, lat = cfg.engine, cfg.latency
    policy = _binding(get_policy(cfg.policy.name), cfg.policy.params(), "policy")
    if cfg.hedger is not None:
        hedger = _binding(get_hedger(cfg.hedger.name), cfg.hedger.params(), "hedger")
    else:
        hedger = _binding(get_hedger("none"), {}, "hedger")

    if cfg.queue.model == "auto":
        qm = QueueModel.RISK_AVERSE if book is BookKind.L2 else QueueModel.FIFO
    else:
        qm = QueueModel(cfg.queue.model)

    if lat.feed_nanos is None:
        off = lat.feed_offset_nanos
        feed = FeedSpec(FeedMode.DATA_LOCAL_TS,
                        int(suggested_feed_offset_ns) if off == "auto" else int(off))
    else:
        feed = FeedSpec(FeedMode.EXCHANGE_PLUS_LATENCY, int(lat.feed_nanos))

    lm = LatencyModel(lat.model)
    vector = tuple(float(x) for x in lat.vector())
    if lm is LatencyModel.INTERPOLATED:
        import numpy as np

        from mmsim.models.latency import latency_vector

        vector = tuple(float(x) for x in latency_vector(np.asarray(vector, dtype=np.float64),
                                                        dict(latency_series or {})))

    mp = cfg.risk.max_position_qty
    end_ts = int(last_ts) if e.horizon == "end" and last_ts is not None else None
    return EngineSpec(
        instrument=inst,
        policy=policy,
        hedger=hedger,
        has_hedger=hedger.name != "none",
        queue=QueueSpec(qm, float(cfg.queue.power_n), qm is not QueueModel.FIFO),
        latency=LatencySpec(lm, vector,
                            lat.series_path if lm is LatencyModel.INTERPOLATED else None),
        feed=feed,
        clocks=ClockSpec(
            decision_interval_ns=int(e.decision_interval_nanos),
            equity_interval_ns=int(e.equity_interval_nanos),
            decide_on_fill=bool(e.decide_on_fill),
            warmup_ns=int(e.warmup_nanos),
            end_ts=end_ts,
        ),
        orders=OrderSpec(
            quote_tif=QuoteTif(e.quote_tif),
            replace=ReplaceMode(e.replace),
            fills=FillMode.PARTIAL if cfg.matching.partial_fills else FillMode.WHOLE_ORDER,
        ),
        limits=LimitSpec(
            max_position_lots=None if mp is None else _lots(mp, inst.lot_size),
            target_position_lots=_lots(cfg.risk.target_position_qty, inst.lot_size),
        ),
        volatility=VolatilitySpec(float(e.vol_halflife_s), float(e.vol_init_tick)),
        capacities=CapacitySpec(
            book_width_ticks=int(e.book_width_ticks),
            max_book_orders=int(e.max_book_orders),
            max_our_orders=int(e.max_our_orders),
            feed_buffer=int(e.feed_buffer),
        ),
        ref_price_tick=int(ref_price_tick),
        grid=grid,
        book=book,
        seed=int(cfg.seed),
    )
