"""From an experiment config and its dataset to a frozen engine spec: every decision, once.

:func:`resolve` is the one place where

* every ``auto`` is decided: ``queue.model: auto`` (``fifo`` on L3 data, ``risk_averse`` on L2
  data), ``latency.feed_offset_nanos: auto`` (the offset the reader suggests), ``engine.horizon:
  end`` (the dataset's last exchange timestamp), the instrument (vendor defaults, then the
  reader's metadata, then the YAML ``instrument`` section), the data's grid against the
  instrument's (:func:`mmsim.data.grid.grid_scaling`) and the latency vector (with the recorded
  series of ``latency.model: interpolated``, read from the data root) and ``queue.model:
  calibrated`` (``power`` with the exponent of its ``queue.calibration`` file);
* every string of the config is mapped to its enum (:class:`QueueModel`, :class:`LatencyModel`,
  :class:`FeedMode`, :class:`QuoteTif`, :class:`ReplaceMode`, :class:`FillMode`,
  :class:`TakerTif`, :class:`BreakerAction`, :class:`Placement`, :class:`LadderUnit`);
* every quantity is converted to the engine's units (lots, ticks, nanoseconds).

An experiment may declare further instruments (``instruments:``, e.g. the perpetual a hedger
trades on): each is resolved by the same code path as the quoted one, from its own dataset,
into a :class:`LegSpec`; :attr:`EngineSpec.legs` lists the quoted instrument's leg (index 0,
built from the spec's top-level fields) followed by :attr:`EngineSpec.others`.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsim.config import (
    ConfigError,
    ExperimentConfig,
    LatencyConfig,
    OtherInstrumentConfig,
    QueueConfig,
)
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
    IOC = "ioc"  # taking policies: every quote takes what it can at arrival
    FOK = "fok"  # taking policies: every quote fills whole at arrival, or not at all


class TakerTif(StrEnum):
    """Time in force of the engine's flattening orders (``risk.flatten_tif``)."""

    MARKET = "market"
    IOC = "ioc"
    FOK = "fok"


class BreakerAction(StrEnum):
    """What the volatility circuit breaker does (``risk.vol_breaker_action``)."""

    PAUSE = "pause"  # no quotes
    WIDEN = "widen"  # the spread times ``risk.vol_breaker_spread_mult``


class Placement(StrEnum):
    """Where the level-0 quote goes against the touch (``quoting.placement``)."""

    POLICY = "policy"  # as the policy gives it
    JOIN = "join"  # at the touch
    IMPROVE = "improve"  # one tick inside when the spread is >= 3 ticks, else at the touch
    BEHIND = "behind"  # ``behind_ticks`` behind the touch


class LadderUnit(StrEnum):
    """Unit of ``quoting.ladder_offsets``."""

    TICKS = "ticks"
    BPS = "bps"  # of the level-0 price


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
    """Risk limits (``risk:``, MODELS.md §10), in lots of the instrument, ns and ticks.

    Attributes
    ----------
    max_position_lots : int or None
        ``risk.max_position_qty / lot_size``, rounded; None = no limit.
    target_position_lots : int
        ``risk.target_position_qty / lot_size``, rounded (the hedger's target).
    max_notional : float or None
        ``risk.max_notional``, settlement currency; None = no limit.
    soft_position_lots : int or None
        ``risk.soft_position_qty`` in lots (rounded); ``soft_widen_frac`` its w.
    max_loss, max_drawdown : float or None
        PnL stop L and maximum drawdown D, settlement currency.
    stop_cooldown_ns : int or None
        ``risk.stop_cooldown_s`` in ns; None = a stop holds for the rest of the run.
    flatten_on_stop : bool
    flatten_tif : TakerTif
    flatten_slippage_ticks : int
        IOC / FOK flattening orders are priced this far through the opposite touch.
    vol_breaker_ratio : float or None
        k_σ (on standard deviations); None = no breaker.
    vol_fast_halflife_s, vol_slow_halflife_s : float
        Half-lives of the breaker's fast and slow volatility EWMAs, seconds.
    vol_breaker_action : BreakerAction
    vol_breaker_spread_mult : float
        m of :attr:`BreakerAction.WIDEN`.
    ofi_pause_lots : float or None
        ``risk.ofi_pause_qty`` in lots (not rounded: the OFI is a sum of lot changes); None
        = no order-flow pause.
    ofi_action : BreakerAction
    ofi_spread_mult : float
        m of the order-flow pause's :attr:`BreakerAction.WIDEN`.
    stop_quoting_ts, flatten_ts : int or None
        Exchange ns (horizon − ``risk.stop_before_end_s`` / ``flatten_before_end_s``) from
        which no quotes go out / the position is flattened; None = never.
    """

    max_position_lots: int | None
    target_position_lots: int
    max_notional: float | None = None
    soft_position_lots: int | None = None
    soft_widen_frac: float = 1.0
    max_loss: float | None = None
    max_drawdown: float | None = None
    stop_cooldown_ns: int | None = None
    flatten_on_stop: bool = False
    flatten_tif: TakerTif = TakerTif.MARKET
    flatten_slippage_ticks: int = 0
    vol_breaker_ratio: float | None = None
    vol_fast_halflife_s: float = 5.0
    vol_slow_halflife_s: float = 300.0
    vol_breaker_action: BreakerAction = BreakerAction.PAUSE
    vol_breaker_spread_mult: float = 2.0
    ofi_pause_lots: float | None = None
    ofi_action: BreakerAction = BreakerAction.PAUSE
    ofi_spread_mult: float = 2.0
    stop_quoting_ts: int | None = None
    flatten_ts: int | None = None


@dataclass(frozen=True)
class QuotingSpec:
    """Quote management and should-quote rules (``quoting:``, MODELS.md §4), in engine
    units; the defaults change nothing.

    Attributes
    ----------
    size_inventory_factor : float
        a: the side that adds inventory is scaled by ``max(0, 1 − a·|q|/q_max)``.
    min_quote_life_ns : int
        A quote is not modified or cancelled by the policy before this age, ns.
    refresh_threshold_ticks : int
        A quote moves only when its target moves by more than this, ticks.
    placement : Placement
    behind_ticks : int
    skip_below_break_even : bool
    break_even_margin_bps : float
    skip_at_inventory_limit : bool
    max_vol_tick : float or None
        Ticks per √second; None = no rule.
    ladder_offsets : tuple of float
        One per level (empty = no ladder), in ``ladder_unit``.
    ladder_unit : LadderUnit
    ladder_size_growth : float
    """

    size_inventory_factor: float = 0.0
    min_quote_life_ns: int = 0
    refresh_threshold_ticks: int = 0
    placement: Placement = Placement.POLICY
    behind_ticks: int = 1
    skip_below_break_even: bool = False
    break_even_margin_bps: float = 0.0
    skip_at_inventory_limit: bool = False
    max_vol_tick: float | None = None
    ladder_offsets: tuple[float, ...] = ()
    ladder_unit: LadderUnit = LadderUnit.TICKS
    ladder_size_growth: float = 1.0


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
class LegSpec:
    """One instrument as the engine needs it, resolved (immutable, hashable).

    Attributes
    ----------
    name : str
        The instrument's name in outputs (unique within the experiment).
    instrument : mmsim.instruments.Instrument
        The merged instrument (tick and lot size, multiplier, contract, fees).
    queue : QueueSpec
        ``auto`` decided by ``book``.
    latency : LatencySpec
        Its order latency.
    feed : FeedSpec
        Its market feed's receive times.
    fills : FillMode
    max_position_lots : int or None
        Position limit in lots of ``instrument`` (rounded); None = no limit.
    ref_price_tick : int
        Centre of its price ladders, in ``instrument``'s ticks.
    grid : mmsim.data.grid.GridScaling
        Rescaling of its data's ticks and lots to ``instrument``'s.
    book : BookKind
        What its data's book is made of.
    """

    name: str
    instrument: Instrument
    queue: QueueSpec
    latency: LatencySpec
    feed: FeedSpec
    fills: FillMode
    max_position_lots: int | None
    ref_price_tick: int
    grid: GridScaling
    book: BookKind


@dataclass(frozen=True)
class SignalSpec:
    """The ``signals:`` section, resolved (:mod:`mmsim.signals`; times in ns).

    Attributes
    ----------
    obi_levels, flow_bucket_ns, flow_n_buckets, clock_ns, kyle_n_intervals, vol_halflife_ns
        :func:`mmsim.signals.spec.make_signal_params`'s settings (every instrument's).
    micro_adjust_tick : tuple of tuple of float, or None
        The quoted instrument's micro-price table ``G(I, S)`` in ticks, ``[n_imb][n_spread]``
        (NaN: no value), from ``signals.microprice_table``; None: no micro-price.
    names : tuple of str
        The signals written to ``signals.parquet`` (:data:`mmsim.dtypes.SIGNAL_RECORD_NAMES`).
    record : bool
        Write them at every equity-clock sample.
    """

    obi_levels: int
    flow_bucket_ns: int
    flow_n_buckets: int
    clock_ns: int
    kyle_n_intervals: int
    vol_halflife_ns: int
    micro_adjust_tick: tuple[tuple[float, ...], ...] | None
    names: tuple[str, ...]
    record: bool

    def params(self, instrument: int = 0) -> Any:
        """The SIGNAL_PARAMS_DTYPE record array (shape ``(1,)``) of instrument ``instrument``
        (the micro-price table is the quoted instrument's, index 0), ``record`` set."""
        import numpy as np

        from mmsim.signals.spec import make_signal_params

        g = self.micro_adjust_tick if instrument == 0 else None
        p = make_signal_params(
            obi_levels=self.obi_levels, flow_bucket_ns=self.flow_bucket_ns,
            flow_n_buckets=self.flow_n_buckets, clock_ns=self.clock_ns,
            kyle_n_intervals=self.kyle_n_intervals, vol_halflife_ns=self.vol_halflife_ns,
            micro_adjust_tick=None if g is None else np.array(g, dtype=np.float64))
        p["record"] = 1 if self.record else 0
        return p


@dataclass(frozen=True)
class EngineSpec:
    """Everything one replay needs, resolved (immutable, hashable).

    The top-level instrument fields (``instrument``, ``queue``, ``latency``, ``feed``,
    ``orders.fills``, ``limits.max_position_lots``, ``ref_price_tick``, ``grid``, ``book``,
    ``instrument_name``) describe the quoted instrument (index 0); ``others`` the further
    instruments of the experiment (indices 1..); :attr:`legs` lists them all.

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
    instrument_name : str
        The quoted instrument's name in outputs (``instrument_name`` of the config, else the
        resolved instrument's symbol).
    others : tuple of LegSpec
        The further instruments, in the order of the config's ``instruments`` (empty for a
        single-instrument experiment).
    quoting : QuotingSpec
        Quote management and should-quote rules of the quoted instrument.
    signals : SignalSpec or None
        The market signals (``signals:``); None: off.
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
    instrument_name: str = ""
    others: tuple[LegSpec, ...] = ()
    quoting: QuotingSpec = QuotingSpec()
    signals: SignalSpec | None = None

    @property
    def legs(self) -> tuple[LegSpec, ...]:
        """Every instrument, by index: the quoted one (built from the top-level fields), then
        :attr:`others`."""
        quoted = LegSpec(
            name=self.instrument_name or self.instrument.symbol,
            instrument=self.instrument,
            queue=self.queue,
            latency=self.latency,
            feed=self.feed,
            fills=self.orders.fills,
            max_position_lots=self.limits.max_position_lots,
            ref_price_tick=self.ref_price_tick,
            grid=self.grid,
            book=self.book,
        )
        return (quoted, *self.others)


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


@dataclass(frozen=True)
class _LegConfig:
    """The config sections of one instrument (the quoted one's come from the top level)."""

    name: str | None
    latency: LatencyConfig
    queue: QueueConfig
    partial_fills: bool
    max_position_qty: float | None


@dataclass(frozen=True)
class _LegData:
    """What one instrument's data tells (from a dataset, or given by hand)."""

    instrument: Instrument
    book: BookKind
    ref_price_tick: int
    suggested_feed_offset_ns: int
    grid: GridScaling


def _quoted_leg_config(cfg: ExperimentConfig) -> _LegConfig:
    return _LegConfig(cfg.instrument_name, cfg.latency, cfg.queue,
                      cfg.matching.partial_fills, cfg.risk.max_position_qty)


def _other_leg_config(cfg: ExperimentConfig, o: OtherInstrumentConfig) -> _LegConfig:
    return _LegConfig(
        o.name,
        cfg.latency if o.latency is None else o.latency,
        QueueConfig() if o.queue is None else o.queue,
        cfg.matching.partial_fills if o.partial_fills is None else o.partial_fills,
        o.max_position_qty,
    )


def _data_of_dataset(dataset: Dataset, instrument_spec: Any, data_path: str | None,
                     root: Path) -> _LegData:
    """:class:`_LegData` of an opened dataset; ``instrument_spec(defaults)`` merges the
    YAML's instrument fields over the data's."""
    from mmsim.data.grid import grid_scaling

    meta = dataset.meta
    defaults = instrument_defaults(dataset.kind, meta)
    inst = instrument_spec(defaults)
    source = str(root / data_path) if data_path else str(dataset.path)
    # the data's grid: what the reader recorded, else the vendor's default
    scaling = grid_scaling(dataset.path, defaults, inst.tick_size, inst.lot_size, source=source)
    return _LegData(
        instrument=inst,
        book=book_kind(dataset.kind, meta),
        ref_price_tick=dataset.ref_price_tick * scaling.tick_num // scaling.tick_den,
        suggested_feed_offset_ns=int(meta.get("suggested_feed_offset_ns", 0)),
        grid=scaling,
    )


def resolve(
    cfg: ExperimentConfig,
    dataset: Dataset,
    data_root: str | os.PathLike | None = None,
    others: Sequence[Dataset] = (),
) -> EngineSpec:
    """The engine spec of experiment ``cfg`` on ``dataset``.

    Pure apart from reading the inputs: a dataset's canonical file is scanned only when its
    instrument's grid differs from the data's (to prove the data lies on it), each
    ``latency.series_path`` is read with ``latency.model: interpolated`` and each
    ``queue.calibration`` with ``queue.model: calibrated``. Imports no kernel.

    Parameters
    ----------
    cfg : mmsim.config.ExperimentConfig
        A validated experiment.
    dataset : mmsim.data.sources.Dataset
        The quoted instrument's opened dataset (kind, reader ``meta``, ``last_ts``,
        ``ref_price_tick``, ``path``). ``engine.horizon: end`` is its ``last_ts``.
    data_root : path, optional
        Folder ``data.path`` and ``latency.series_path`` are relative to (default
        ``MMSIM_DATA_ROOT``, else ``data/``).
    others : sequence of mmsim.data.sources.Dataset
        The opened datasets of ``cfg.instruments``, in order
        (:func:`mmsim.data.sources.datasets_for_config`); each is resolved as the quoted one
        is (instrument defaults from its reader under its YAML, grid scaling, queue ``auto``,
        feed mode and latency vector from its latency section, ladder centre, book kind,
        position limit in its lots) into :attr:`EngineSpec.others`.

    Returns
    -------
    EngineSpec

    Raises
    ------
    ValueError
        If ``len(others) != len(cfg.instruments)``.
    mmsim.config.ConfigError
        A merged instrument is invalid (``field 'instrument.tick_size': ...``,
        ``field 'instruments.0.instrument.tick_size': ...``), a policy or hedger parameter
        (``field 'policy.gamma': ...``), or the quoted instrument's resolved name equals
        another instrument's.
    mmsim.data.DataError
        A dataset is off its instrument's grid (file, event row and field ``price`` /
        ``qty``), or a latency series is missing or bad (file, row and field).
    """
    from mmsim.data.sources import data_root_from

    if len(others) != len(cfg.instruments):
        raise ValueError(f"resolve: {len(others)} other dataset(s) for "
                         f"{len(cfg.instruments)} entries of instruments")
    root = data_root_from(data_root)
    quoted = _data_of_dataset(dataset, cfg.instrument_spec, cfg.data.path, root)
    legs = [(_quoted_leg_config(cfg), quoted)]
    for i, (o, ds) in enumerate(zip(cfg.instruments, others, strict=True)):
        legs.append((_other_leg_config(cfg, o),
                     _data_of_dataset(ds, _indexed_spec(o, i), o.data.path, root)))
    return _resolve(cfg, legs, last_ts=dataset.last_ts, root=root)


def _indexed_spec(o: OtherInstrumentConfig, i: int) -> Any:
    return lambda defaults: o.instrument_spec(defaults, i)


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
    others: Sequence[Mapping[str, Any]] = (),
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
        Last exchange timestamp of the (quoted instrument's) events (ns), for
        ``engine.horizon: end``; None: no horizon.
    suggested_feed_offset_ns : int
        What ``latency.feed_offset_nanos: auto`` becomes (ns).
    latency_series : mapping, optional
        An already loaded series (:func:`mmsim.models.latency.load_latency_series`) for
        ``latency.model: interpolated``, instead of reading ``latency.series_path``.
    data_root : path, optional
        Folder ``latency.series_path`` is relative to.
    others : sequence of mapping
        The further instruments' data, one mapping each: ``ref_price_tick`` (int, its
        ticks), ``instrument`` (Instrument or mapping of its data's fields, optional),
        ``book`` (``"L2"`` / ``"L3"``, default L3), optionally ``suggested_feed_offset_ns``
        (int, ns) and ``name``. If the config has ``instruments`` entries they pair up in
        order and supply the rest (name, instrument section on top, latency, queue, fills,
        position limit; a ``name`` given must agree). If it has none, each mapping is a leg
        with the top-level ``latency``, ``queue`` and ``matching`` sections, no position
        limit, and ``name`` (str) is required. A latency section with ``model:
        interpolated`` reads its series from ``data_root`` (only the quoted one may be
        given as ``latency_series``).

    Returns
    -------
    EngineSpec

    Raises
    ------
    ValueError
        If the config has ``instruments`` entries and ``len(others)`` differs, or a
        mapping misses ``ref_price_tick`` (or ``name`` when the config has no
        ``instruments``), or names another instrument than its entry.
    mmsim.config.ConfigError
        As :func:`resolve`, or ``book`` is not L2 / L3.
    mmsim.data.DataError
        A latency series is missing or bad.
    """
    from mmsim.data.grid import GridScaling
    from mmsim.data.sources import data_root_from

    root = data_root_from(data_root)
    if cfg.instruments and len(others) != len(cfg.instruments):
        raise ValueError(f"resolve_for_events: {len(others)} mapping(s) in others for "
                         f"{len(cfg.instruments)} entries of instruments")

    def data(instr: Any, bk: Any, ref: Any, offset: Any, spec: Any, where: str) -> _LegData:
        if isinstance(instr, Instrument):
            defaults = instr.model_dump()
        else:
            defaults = dict(instr or {})
        try:
            kind = BookKind(bk)
        except ValueError:
            raise ConfigError(f"{where}: must be 'L2' or 'L3', got {bk!r}") from None
        return _LegData(spec(defaults), kind, int(ref), int(offset), GridScaling())

    legs = [(_quoted_leg_config(cfg),
             data(instrument, book, ref_price_tick, suggested_feed_offset_ns,
                  cfg.instrument_spec, "book"))]
    for i, m in enumerate(others):
        where = f"others[{i}]"
        if "ref_price_tick" not in m:
            raise ValueError(f"resolve_for_events: {where}: 'ref_price_tick' is required")
        if cfg.instruments:
            o = cfg.instruments[i]
            if m.get("name") is not None and m["name"] != o.name:
                raise ValueError(f"resolve_for_events: {where}: name {m['name']!r} is not "
                                 f"instruments.{i}.name {o.name!r}")
            lc, spec = _other_leg_config(cfg, o), _indexed_spec(o, i)
        else:
            if not isinstance(m.get("name"), str) or not m["name"]:
                raise ValueError(f"resolve_for_events: {where}: 'name' (str) is required "
                                 f"when the config has no instruments")
            lc = _LegConfig(m["name"], cfg.latency, cfg.queue, cfg.matching.partial_fills,
                            None)
            spec = _plain_spec(i)
        legs.append((lc, data(m.get("instrument"), m.get("book", BookKind.L3),
                              m["ref_price_tick"], m.get("suggested_feed_offset_ns", 0),
                              spec, f"{where}.book")))
    return _resolve(cfg, legs, last_ts=last_ts, root=root, quoted_series=latency_series)


def _plain_spec(i: int) -> Any:
    """An ``instrument_spec`` for a hand-given leg without a config entry."""
    from pydantic import ValidationError

    from mmsim.config import config_error

    def spec(defaults: dict[str, Any]) -> Instrument:
        try:
            return Instrument(**defaults)
        except ValidationError as e:
            raise config_error(e, f"others[{i}]", prefix=("instrument",)) from None

    return spec


def _load_series(lat: LatencyConfig, root: Path) -> Mapping[int, Any] | None:
    """The recorded latency series of ``latency.model: interpolated`` (None otherwise)."""
    if lat.model != LatencyModel.INTERPOLATED.value:
        return None
    from mmsim.models.latency import load_latency_series

    return load_latency_series(root / lat.series_path)


def _binding(spec: KernelSpec, values: Mapping[str, Any], where: str) -> KernelBinding:
    """The kernel's checked parameter vector and initial state (its ``prepare`` hook, if it
    has one, computes the state from the parameters: :meth:`KernelSpec.initial_state`).

    Raises
    ------
    ConfigError
        On a bad parameter, or parameters the ``prepare`` hook refuses (``field '<where>'``).
    """
    pvec = spec.param_vector(values, where)
    if spec.prepare is None:
        init, size = tuple(spec.state_init), int(spec.state_size)
    else:
        try:
            st = spec.initial_state(pvec)
        except ValueError as e:
            raise ConfigError(f"field '{where}': {spec.name}: {e}") from None
        init, size = tuple(float(x) for x in st), int(st.shape[0])
    return KernelBinding(
        name=spec.name,
        spec=spec,
        params=tuple(float(x) for x in pvec),
        state_init=init,
        state_size=size,
    )


def _lots(qty: float, lot_size: float) -> int:
    return int(round(qty / lot_size))


def _calibrated_power_n(path: str | None) -> float:
    """``power_n`` of a calibration file of ``mmsim queue-score --calibrate``
    (``queue.model: calibrated``; a relative path is taken from the working directory).

    Raises
    ------
    ConfigError
        Naming ``queue.calibration`` and the file: missing, not JSON, not a power-model
        calibration, or without a positive finite ``power_n``.
    """
    import json
    import math

    where = f"field 'queue.calibration': {path}"
    try:
        doc = json.loads(Path(str(path)).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{where}: calibration file not found (write one with mmsim "
                          f"queue-score EXP.yaml --calibrate)") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{where}: not a readable JSON file ({e})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: not a calibration file (a JSON object with power_n)")
    if doc.get("model", "power") != "power":
        raise ConfigError(f"{where}: field 'model': {doc.get('model')!r} is not a power-model "
                          f"calibration")
    n = doc.get("power_n")
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) \
            or n <= 0:
        raise ConfigError(f"{where}: field 'power_n': must be a number > 0, got {n!r}")
    return float(n)


def _resolve_leg(lc: _LegConfig, d: _LegData,
                 latency_series: Mapping[int, Any] | None) -> LegSpec:
    """One instrument's :class:`LegSpec`: its ``auto`` decided, its strings mapped to enums,
    its quantities in its units (``lc.name`` None: the instrument's symbol)."""
    lat = lc.latency
    power_n = float(lc.queue.power_n)
    if lc.queue.model == "auto":
        qm = QueueModel.RISK_AVERSE if d.book is BookKind.L2 else QueueModel.FIFO
    elif lc.queue.model == "calibrated":
        qm, power_n = QueueModel.POWER, _calibrated_power_n(lc.queue.calibration)
    else:
        qm = QueueModel(lc.queue.model)

    if lat.feed_nanos is None:
        off = lat.feed_offset_nanos
        feed = FeedSpec(FeedMode.DATA_LOCAL_TS,
                        int(d.suggested_feed_offset_ns) if off == "auto" else int(off))
    else:
        feed = FeedSpec(FeedMode.EXCHANGE_PLUS_LATENCY, int(lat.feed_nanos))

    lm = LatencyModel(lat.model)
    vector = tuple(float(x) for x in lat.vector())
    if lm is LatencyModel.INTERPOLATED:
        import numpy as np

        from mmsim.models.latency import latency_vector

        vector = tuple(float(x) for x in latency_vector(np.asarray(vector, dtype=np.float64),
                                                        dict(latency_series or {})))
    mp = lc.max_position_qty
    return LegSpec(
        name=lc.name or d.instrument.symbol,
        instrument=d.instrument,
        queue=QueueSpec(qm, power_n, qm is not QueueModel.FIFO),
        latency=LatencySpec(lm, vector,
                            lat.series_path if lm is LatencyModel.INTERPOLATED else None),
        feed=feed,
        fills=FillMode.PARTIAL if lc.partial_fills else FillMode.WHOLE_ORDER,
        max_position_lots=None if mp is None else _lots(mp, d.instrument.lot_size),
        ref_price_tick=int(d.ref_price_tick),
        grid=d.grid,
        book=d.book,
    )


def _resolve(
    cfg: ExperimentConfig,
    legs: Sequence[tuple[_LegConfig, _LegData]],
    *,
    last_ts: int | None,
    root: Path,
    quoted_series: Mapping[int, Any] | None = None,
) -> EngineSpec:
    """The spec from each instrument's config and data (``legs[0]``: the quoted one);
    ``quoted_series``: the quoted leg's latency series, already loaded."""
    from mmsim.hedgers.registry import get_hedger
    from mmsim.policies.registry import get_policy

    e = cfg.engine
    policy = _binding(get_policy(cfg.policy.name), cfg.policy.params(), "policy")
    if cfg.hedger is not None:
        hedger = _binding(get_hedger(cfg.hedger.name), cfg.hedger.params(), "hedger")
    else:
        hedger = _binding(get_hedger("none"), {}, "hedger")

    resolved = []
    for k, (lc, d) in enumerate(legs):
        series = quoted_series if k == 0 and quoted_series is not None else \
            _load_series(lc.latency, root)
        resolved.append(_resolve_leg(lc, d, series))
    q, rest = resolved[0], tuple(resolved[1:])
    for i, leg in enumerate(rest):
        if leg.name == q.name:
            raise ConfigError(f"field 'instruments.{i}.name': duplicate instrument name "
                              f"{leg.name!r} (the quoted instrument's symbol; set "
                              f"instrument_name)")
    # names of the others are unique by config validation (or by hand: checked here)
    names = [leg.name for leg in rest]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ConfigError(f"field 'instruments.{i}.name': duplicate instrument name {n!r}")

    end_ts = int(last_ts) if e.horizon == "end" and last_ts is not None else None
    inst = q.instrument
    signals = _signals(cfg, root)
    _check_reference(policy, signals)
    if cfg.risk.ofi_pause_qty is not None and signals is None:
        raise ConfigError("field 'risk.ofi_pause_qty': the order-flow pause needs a signals: "
                          "section (the order-flow imbalance is computed there)")
    return EngineSpec(
        instrument=inst,
        policy=policy,
        hedger=hedger,
        has_hedger=hedger.name != "none",
        queue=q.queue,
        latency=q.latency,
        feed=q.feed,
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
            fills=q.fills,
        ),
        limits=_limits(cfg, q, inst, end_ts),
        volatility=VolatilitySpec(float(e.vol_halflife_s), float(e.vol_init_tick)),
        capacities=CapacitySpec(
            book_width_ticks=int(e.book_width_ticks),
            max_book_orders=int(e.max_book_orders),
            max_our_orders=int(e.max_our_orders),
            feed_buffer=int(e.feed_buffer),
        ),
        ref_price_tick=q.ref_price_tick,
        grid=q.grid,
        book=q.book,
        seed=int(cfg.seed),
        instrument_name=q.name,
        others=rest,
        quoting=_quoting(cfg),
        signals=signals,
    )


def _check_reference(policy: KernelBinding, signals: SignalSpec | None) -> None:
    """A policy quoting around the micro-price (``ref: micro``) needs its table.

    Raises
    ------
    ConfigError
        ``field 'policy.ref'``: ``micro`` without ``signals.microprice_table``.
    """
    from mmsim.policies.params import Ref

    names = list(policy.spec.params)
    if "ref" not in names or int(policy.params[names.index("ref")]) != Ref.MICRO:
        return
    if signals is None or signals.micro_adjust_tick is None:
        raise ConfigError("field 'policy.ref': 'micro' quotes around the Stoikov micro-price, "
                          "which needs a signals: section with a microprice_table (see "
                          "mmsim.signals.table.save_microprice_table)")


def _signals(cfg: ExperimentConfig, root: Path) -> SignalSpec | None:
    """The :class:`SignalSpec` of ``signals:`` (None without the section); the micro-price
    table is read from ``root`` (the data root) when its path is relative.

    Raises
    ------
    ConfigError
        The table cannot be read (``field 'signals.microprice_table': ...``).
    """
    sc = cfg.signals
    if sc is None:
        return None
    g = None
    if sc.microprice_table is not None:
        from mmsim.signals.table import load_microprice_adjust

        try:
            a = load_microprice_adjust(root / sc.microprice_table)
        except (OSError, ValueError) as e:
            raise ConfigError(f"field 'signals.microprice_table': {e}") from None
        g = tuple(tuple(float(x) for x in row) for row in a)
    return SignalSpec(
        obi_levels=int(sc.obi_levels),
        flow_bucket_ns=int(round(sc.flow_window_s * 1e9 / sc.flow_buckets)),
        flow_n_buckets=int(sc.flow_buckets),
        clock_ns=int(round(sc.clock_s * 1e9)),
        kyle_n_intervals=int(sc.kyle_intervals),
        vol_halflife_ns=int(round(sc.vol_halflife_s * 1e9)),
        micro_adjust_tick=g,
        names=tuple(sc.names),
        record=bool(sc.record),
    )


def _seconds_ns(s: float | None) -> int | None:
    return None if s is None else int(round(s * 1e9))


def _limits(cfg: ExperimentConfig, q: LegSpec, inst: Instrument, end_ts: int | None) -> LimitSpec:
    """The quoted instrument's :class:`LimitSpec` (``risk:``) in lots, ns and ticks."""
    r = cfg.risk
    if end_ts is None and (r.stop_before_end_s is not None or r.flatten_before_end_s is not None):
        which = "stop_before_end_s" if r.stop_before_end_s is not None else \
            "flatten_before_end_s"
        raise ConfigError(f"field 'risk.{which}': needs a horizon (engine.horizon: end on "
                          f"data with a last timestamp)")

    def before_end(s: float | None) -> int | None:
        return None if s is None or end_ts is None else end_ts - int(round(s * 1e9))

    return LimitSpec(
        max_position_lots=q.max_position_lots,
        target_position_lots=_lots(r.target_position_qty, inst.lot_size),
        max_notional=r.max_notional,
        soft_position_lots=None if r.soft_position_qty is None else
        _lots(r.soft_position_qty, inst.lot_size),
        soft_widen_frac=float(r.soft_widen_frac),
        max_loss=r.max_loss,
        max_drawdown=r.max_drawdown,
        stop_cooldown_ns=_seconds_ns(r.stop_cooldown_s),
        flatten_on_stop=bool(r.flatten_on_stop),
        flatten_tif=TakerTif(r.flatten_tif),
        flatten_slippage_ticks=int(r.flatten_slippage_ticks),
        vol_breaker_ratio=r.vol_breaker_ratio,
        vol_fast_halflife_s=float(r.vol_fast_halflife_s),
        vol_slow_halflife_s=float(r.vol_slow_halflife_s),
        vol_breaker_action=BreakerAction(r.vol_breaker_action),
        vol_breaker_spread_mult=float(r.vol_breaker_spread_mult),
        ofi_pause_lots=None if r.ofi_pause_qty is None else
        float(r.ofi_pause_qty) / inst.lot_size,
        ofi_action=BreakerAction(r.ofi_action),
        ofi_spread_mult=float(r.ofi_spread_mult),
        stop_quoting_ts=before_end(r.stop_before_end_s),
        flatten_ts=before_end(r.flatten_before_end_s),
    )


def _quoting(cfg: ExperimentConfig) -> QuotingSpec:
    """The :class:`QuotingSpec` of ``quoting:`` (strings → enums)."""
    qc = cfg.quoting
    return QuotingSpec(
        size_inventory_factor=float(qc.size_inventory_factor),
        min_quote_life_ns=int(qc.min_quote_life_nanos),
        refresh_threshold_ticks=int(qc.refresh_threshold_ticks),
        placement=Placement(qc.placement),
        behind_ticks=int(qc.behind_ticks),
        skip_below_break_even=bool(qc.skip_below_break_even),
        break_even_margin_bps=float(qc.break_even_margin_bps),
        skip_at_inventory_limit=bool(qc.skip_at_inventory_limit),
        max_vol_tick=qc.max_vol_tick,
        ladder_offsets=tuple(float(x) for x in qc.ladder_offsets),
        ladder_unit=LadderUnit(qc.ladder_unit),
        ladder_size_growth=float(qc.ladder_size_growth),
    )
