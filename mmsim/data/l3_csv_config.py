"""The ``data.l3_csv`` section: how a generic order-level (L3) CSV maps to mmsim's events.

Only pydantic is imported here (no reader, no polars): :mod:`mmsim.config` validates the
section when an experiment is loaded, and :func:`mmsim.data.l3_csv.read_l3_csv` validates the
same mapping when it is called directly or by ``mmsim ingest l3-csv --l3-csv MAP.yaml``. The
meaning of each action is documented in :mod:`mmsim.data.l3_csv`.

Example (an experiment's ``data`` section)::

    data:
      kind: l3_csv
      path: my/orders.csv
      l3_csv:
        columns: {ts: timestamp_ns, order_id: id, side: side, price: px, qty: size,
                  action: type}
        time_unit: ns
        actions: {add: A, delete: D, change: M, execute: E, trade: T, cancel: C, clear: R}
        sides: {bid: B, ask: S}
        snapshot: false
    instrument: {tick_size: 0.01, lot_size: 1}

Validation errors name the field below the section (``data.l3_csv.columns.qty`` in an
experiment, ``l3_csv.actions`` for a mapping given to the reader).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = ["ACTION_NAMES", "L3CsvActions", "L3CsvColumns", "L3CsvConfig", "L3CsvSides"]

#: The actions a row may carry, in the order reports list them.
ACTION_NAMES = ("add", "change", "cancel", "delete", "execute", "trade", "clear", "ignore")



def _column(v: Any) -> Any:
    """A column reference: a non-empty header name, or a 1-based position."""
    if isinstance(v, str) and v.strip():
        return v.strip()
    if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
        return v
    raise ValueError(f"must be a column name or a 1-based column number, got {v!r}")


#: A column: its header name, or its 1-based position (required when ``header: false``).
Column = Annotated[int | str, BeforeValidator(_column)]


def _values(v: Any) -> Any:
    """A value or a list of values as a tuple of stripped strings (YAML ``1`` → ``"1"``)."""
    if v is None:
        return ()
    items = v if isinstance(v, (list, tuple)) else [v]
    out = []
    for x in items:
        if isinstance(x, bool) or not isinstance(x, (str, int)):
            raise ValueError(f"values must be strings or integers, got {x!r}")
        s = str(x).strip()
        if not s:
            raise ValueError("an empty value cannot be mapped (an empty cell is never an "
                             "action; for sides it always means no side)")
        out.append(s)
    return tuple(out)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class L3CsvColumns(_Frozen):
    """Which column of the file holds each field (header name, or 1-based position).

    Each field defaults to a column of its own name, so a file whose header is
    ``ts,order_id,side,price,qty,action`` needs no ``columns`` at all.
    """

    #: the exchange time of the row (in ``time_unit``); the file must be in time order
    ts: Column = "ts"
    #: the order's id (an integer); ignored on ``trade`` and ``clear`` rows
    order_id: Column = "order_id"
    #: bid / ask (values in ``sides``); an empty cell is no side
    side: Column = "side"
    #: the price in quote currency, a decimal on the tick grid (``instrument.tick_size``)
    price: Column = "price"
    #: the quantity in instrument units, a decimal on the lot grid (``instrument.lot_size``)
    qty: Column = "qty"
    #: the row's action (values in ``actions``)
    action: Column = "action"
    #: optional: a second clock, when the row was received (same ``time_unit``); None:
    #: ``local_ts = exch_ts`` (one clock)
    local_ts: Column | None = None
    #: optional: a flag column marking the opening snapshot's rows (values in
    #: ``snapshot_values``), read only with ``snapshot: true``
    snapshot: Column | None = None
    #: optional: the instrument's symbol, for a file holding several: only the rows of
    #: ``instrument.symbol`` are read (needed when the file holds more than one)
    symbol: Column | None = None

    def mapped(self) -> dict[str, int | str]:
        """``{field: column}`` of the mapped columns, in field order."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class L3CsvActions(_Frozen):
    """The value (or list of values) of the action column for each action.

    Values are matched after stripping blanks, case-insensitively; a value may belong to one
    action only. ``add`` is required; an action whose values are not given never occurs (a row
    with an unmapped value is an error naming the file, the row and the known values).
    ``ignore`` lists values whose rows are skipped (counted in the report), e.g. trading-status
    messages.
    """

    #: a new resting order (ADD)
    add: tuple[str, ...]
    #: the order now has the row's price and size (MODIFY); an empty side or price keeps the
    #: order's
    change: tuple[str, ...] = ()
    #: the order is reduced by the row's size (a partial cancel, CANCEL)
    cancel: tuple[str, ...] = ()
    #: the whole order is removed (DELETE)
    delete: tuple[str, ...] = ()
    #: the resting order is executed for the row's size (EXECUTE)
    execute: tuple[str, ...] = ()
    #: a trade print that no execute row carries (TRADE, no book effect)
    trade: tuple[str, ...] = ()
    #: remove every order of the book, or of the row's side (CLEAR)
    clear: tuple[str, ...] = ()
    #: rows to skip
    ignore: tuple[str, ...] = ()

    @field_validator(*ACTION_NAMES, mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        return _values(v)

    @field_validator("add")
    @classmethod
    def _check_add(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("required: the value(s) of the action column that add an order")
        return v

    @model_validator(mode="after")
    def _check_disjoint(self) -> L3CsvActions:
        _check_disjoint(self, ACTION_NAMES)
        return self

    def lookup(self) -> dict[str, str]:
        """``{lower-cased value: action name}``."""
        return {v.lower(): name for name in ACTION_NAMES for v in getattr(self, name)}


class L3CsvSides(_Frozen):
    """The values of the side column (matched stripped, case-insensitively).

    The defaults read the common spellings: ``B``/``bid``/``buy``/``1`` and
    ``A``/``S``/``ask``/``sell``/``-1``, and ``N`` for none. An empty cell is always no side.
    """

    #: the bid (buy) side
    bid: tuple[str, ...] = ("B", "bid", "buy", "1", "+1")
    #: the ask (sell) side
    ask: tuple[str, ...] = ("A", "S", "ask", "sell", "offer", "-1")
    #: no side (trades of unknown aggressor, a clear of the whole book)
    none: tuple[str, ...] = ("N",)

    @field_validator("bid", "ask", "none", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        return _values(v)

    @model_validator(mode="after")
    def _check_disjoint(self) -> L3CsvSides:
        empty = [(k,) for k in ("bid", "ask") if not getattr(self, k)]
        if empty:
            raise _fields_error([(k, "needs at least one value") for k in empty])
        _check_disjoint(self, ("bid", "ask", "none"))
        return self

    def lookup(self) -> dict[str, int]:
        """``{lower-cased value: +1 bid, -1 ask, 0 none}``."""
        out = {v.lower(): 0 for v in self.none}
        out.update({v.lower(): 1 for v in self.bid})
        out.update({v.lower(): -1 for v in self.ask})
        return out


def _fields_error(errors: list[tuple[tuple[str, ...], str]]) -> PydanticCustomError:
    """As :func:`mmsim.config.fields_error` (which this module cannot import): the problems
    reported at fields below the validated model."""
    summary = "; ".join(".".join(loc) + ": " + msg for loc, msg in errors)
    return PydanticCustomError("mmsim_fields", "{summary}", {"summary": summary,
                                                            "errors": errors})


def _check_disjoint(model: BaseModel, names: tuple[str, ...]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        for v in getattr(model, name):
            other = seen.setdefault(v.lower(), name)
            if other != name:
                raise _fields_error([((name,), f"value {v!r} is already mapped to {other}")])


class L3CsvConfig(_Frozen):
    """A generic L3 CSV: its columns, units, action and side values, and how it opens.

    Attributes
    ----------
    columns : L3CsvColumns
        Which column holds each field (defaults: columns named after the fields).
    actions : L3CsvActions
        The action values (``add`` required).
    sides : L3CsvSides
        The side values (defaults read B/A/S/bid/ask/buy/sell/1/-1).
    time_unit : {"ns", "us", "ms", "s", "iso"}
        Unit of ``ts`` (and ``local_ts``): UNIX time in that unit, an integer or a decimal
        fraction converted exactly to ns (digits beyond the ns are rounded, counted in the
        report); ``iso``: ISO-8601 strings, UTC unless they carry an offset.
    snapshot : bool
        False (default): the file opens on an empty book; the report states the warm-up until
        both sides had depth. True: the file opens with a snapshot of the book, its rows the
        leading run flagged in ``columns.snapshot`` or, without a flag column, the leading run
        of ``add`` (and ``clear``) rows at the file's first timestamp.
    snapshot_values : tuple of str
        Values of the flag column that mark a snapshot row (case-insensitive).
    header : bool
        The file's first line names its columns (default). False: ``columns`` are 1-based
        positions.
    separator : str
        One character (default ``,``).
    trade_side : {"aggressor", "resting"}
        What the side column says on ``trade`` rows: the aggressor's side (default; most
        venues) or the resting order's (LOBSTER). Events carry the resting side.
    subtick_trades : {"error", "round"}
        A trade price off the tick grid (a midpoint or hidden execution): an error (default),
        or rounded to a whole tick, up for a bid-side resting order, down for an ask-side one,
        to the nearest for no side, and flagged ``SUBTICK`` (as the LOBSTER reader does).
        Prices of book rows off the grid are always an error.
    """

    columns: L3CsvColumns = L3CsvColumns()
    actions: L3CsvActions
    sides: L3CsvSides = L3CsvSides()
    time_unit: Literal["ns", "us", "ms", "s", "iso"] = "ns"
    snapshot: bool = False
    snapshot_values: tuple[str, ...] = ("1", "true", "t", "y", "yes", "s", "snapshot")
    header: bool = True
    separator: str = Field(",", min_length=1, max_length=1)
    trade_side: Literal["aggressor", "resting"] = "aggressor"
    subtick_trades: Literal["error", "round"] = "error"

    @field_validator("snapshot_values", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        return _values(v)

    @model_validator(mode="after")
    def _check_columns(self) -> L3CsvConfig:
        if not self.header:
            named = [k for k, v in self.columns.mapped().items() if isinstance(v, str)]
            if named:
                raise _fields_error([(("columns", k), "must be a 1-based column number "
                                      "(header: false)") for k in named])
        return self
