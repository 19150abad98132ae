"""Plain-Python L3 (market-by-order) book: the reference for the numba books.

:class:`ReferenceL3Book` applies canonical events (:data:`mmsim.dtypes.EVENT_DTYPE`) one at
a time. It is slow and obvious on purpose: property tests replay the same stream through the
numba book and compare both after every event, and the LOBSTER reader uses it as the shadow
book that derives synthetic corrections from the orderbook file.

Semantics (the numba L3 book must match them exactly)
-----------------------------------------------------
``ADD``
    ``order_id > 0``: a new order at the back of the queue at (``side``, ``price_tick``); an
    existing order with the same id is removed first. ``qty <= 0`` adds nothing.
    ``order_id == 0``: adds ``qty`` lots of anonymous volume at (``side``, ``price_tick``).
``CANCEL``, ``EXECUTE``
    ``order_id > 0``: reduce that order by ``qty`` (removed at ``<= 0``); the event's side and
    price are ignored; an unknown id is ignored. ``order_id == 0``: reduce the anonymous
    volume at (``side``, ``price_tick``) by ``qty``, clamped at 0.
``DELETE``
    ``order_id > 0``: remove the order (unknown id ignored). ``order_id == 0``: like CANCEL.
``MODIFY``
    ``order_id > 0``: the order now has (``side``, ``price_tick``, ``qty``); an unknown id acts
    as ADD; ``qty <= 0`` removes it. A price or side change or a size increase sends the order
    to the back of its queue; a size decrease keeps its place (MODELS.md §6).
``CLEAR``
    ``side == 0`` removes every order and all anonymous volume, else that side only.
``TRADE``, ``LEVEL_SET``, ``SNAPSHOT_BEGIN``, ``SNAPSHOT_END``, ``STATUS``
    No effect on an L3 book.

A level's quantity is the sum of its orders' quantities plus its anonymous volume; a level
with quantity 0 does not exist. Anonymous volume queues ahead of every known order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Any

from mmsim.enums import EventKind

_ADD = EventKind.ADD
_CANCEL = EventKind.CANCEL
_DELETE = EventKind.DELETE
_MODIFY = EventKind.MODIFY
_EXECUTE = EventKind.EXECUTE
_CLEAR = EventKind.CLEAR
_NO_EFFECT = frozenset(
    (
        EventKind.TRADE,
        EventKind.LEVEL_SET,
        EventKind.SNAPSHOT_BEGIN,
        EventKind.SNAPSHOT_END,
        EventKind.STATUS,
    )
)
_KNOWN_KINDS = frozenset(EventKind)


class PriceLevels:
    """Price levels of both sides in integer ticks and lots: ``_levels[side]`` maps price to
    quantity and ``_prices[side]`` keeps the prices sorted ascending (``bisect``), so the best
    prices are O(1). Shared by the reference L3 and L2 books."""

    def __init__(self) -> None:
        self._levels: dict[int, dict[int, int]] = {1: {}, -1: {}}
        self._prices: dict[int, list[int]] = {1: [], -1: []}  # ascending

    def _set_qty(self, side: int, price: int, qty: int) -> None:
        """The level at (``side``, ``price``) now holds ``qty`` lots (``<= 0``: no level)."""
        lv = self._levels[side]
        if qty > 0:
            if price not in lv:
                insort(self._prices[side], price)
            lv[price] = qty
        elif price in lv:
            del lv[price]
            prices = self._prices[side]
            del prices[bisect_left(prices, price)]

    def best_bid(self) -> int | None:
        """Highest bid price in ticks, or None if the bid side is empty."""
        p = self._prices[1]
        return p[-1] if p else None

    def best_ask(self) -> int | None:
        """Lowest ask price in ticks, or None if the ask side is empty."""
        p = self._prices[-1]
        return p[0] if p else None

    def is_crossed(self) -> bool:
        """True if both sides exist and best bid >= best ask (crossed or locked)."""
        b, a = self._prices[1], self._prices[-1]
        return bool(b) and bool(a) and b[-1] >= a[0]

    def level_qty(self, side: int, price_tick: int) -> int:
        """Lots at (``side``, ``price_tick``); 0 if there is no such level."""
        return self._levels.get(side, {}).get(price_tick, 0)

    def levels(self, side: int) -> dict[int, int]:
        """Return a copy of ``price_tick -> qty`` of every level of ``side`` (+1 or -1)."""
        return dict(self._levels[side])

    def prices(self, side: int) -> list[int]:
        """Return the level prices of ``side`` in ascending order (a copy)."""
        return list(self._prices[side])


class ReferenceL3Book(PriceLevels):
    """Market-by-order book with anonymous volume, in integer ticks and lots.

    Attributes
    ----------
    orders : dict[int, tuple[int, int, int]]
        ``order_id -> (side, price_tick, qty)`` of every resting known order (``qty > 0``).
    anon : dict[tuple[int, int], int]
        ``(side, price_tick) -> qty`` of anonymous volume (only entries with ``qty > 0``).

    Notes
    -----
    Each side keeps a sorted price list (``bisect``), so ``best_bid``/``best_ask`` are O(1)
    and ``top(n)`` is O(n); adding or removing a price level is O(number of levels).
    """

    def __init__(self) -> None:
        self.orders: dict[int, tuple[int, int, int]] = {}
        self.anon: dict[tuple[int, int], int] = {}
        # (side, price) -> ids in queue order (dicts keep insertion order)
        self._queues: dict[tuple[int, int], dict[int, None]] = {}
        super().__init__()

    # ------------------------------------------------------------------ public API
    def apply(self, ev: Any) -> None:
        """Apply one event.

        Parameters
        ----------
        ev : numpy.void or Mapping
            One :data:`~mmsim.dtypes.EVENT_DTYPE` record, or a mapping with at least the keys
            ``kind``, ``side``, ``price_tick``, ``qty``, ``order_id``.

        Raises
        ------
        ValueError
            If ``kind`` is not an :data:`~mmsim.enums.EventKind`, or an event that places
            volume (ADD, MODIFY, anonymous CANCEL/DELETE/EXECUTE) has a side other than ±1,
            or a CLEAR has a side other than 0 or ±1.
        """
        get = ev.__getitem__  # numpy.void and Mapping both index by field name
        self.apply_fields(
            int(get("kind")),
            int(get("side")),
            int(get("price_tick")),
            int(get("qty")),
            int(get("order_id")),
        )

    def apply_fields(self, kind: int, side: int, price_tick: int, qty: int, order_id: int) -> None:
        """Apply one event given as plain ints (the fast path of :meth:`apply`)."""
        if kind == _ADD:
            self._check_side(side, kind)
            if order_id == 0:
                if qty > 0:
                    self._anon_change(side, price_tick, qty)
                return
            if order_id in self.orders:
                self._remove_order(order_id)
            if qty > 0:
                self._add_order(order_id, side, price_tick, qty)
        elif kind == _CANCEL or kind == _EXECUTE or kind == _DELETE:
            if order_id == 0:
                self._check_side(side, kind)
                self._anon_reduce(side, price_tick, qty)
            elif order_id in self.orders:
                if kind == _DELETE:
                    self._remove_order(order_id)
                else:
                    self._reduce_order(order_id, qty)
        elif kind == _MODIFY:
            self._check_side(side, kind)
            self._modify(order_id, side, price_tick, qty)
        elif kind == _CLEAR:
            self._clear(side)
        elif kind in _NO_EFFECT:
            return
        else:
            raise ValueError(f"unknown event kind {kind}")

    def top(self, n: int) -> tuple[list[int], list[int], list[int], list[int]]:
        """Return the best ``n`` levels of each side, best first.

        Returns
        -------
        bid_px, bid_qty, ask_px, ask_qty : list of int
            Each of length ``n``: price in ticks and quantity in lots; missing levels are
            padded with price 0 and quantity 0.
        """
        bids = self._prices[1][-n:][::-1] if n > 0 else []
        asks = self._prices[-1][:n] if n > 0 else []
        lb, la = self._levels[1], self._levels[-1]
        pad = [0] * n
        bid_px = (bids + pad)[:n]
        ask_px = (asks + pad)[:n]
        bid_qty = ([lb[p] for p in bids] + pad)[:n]
        ask_qty = ([la[p] for p in asks] + pad)[:n]
        return bid_px, bid_qty, ask_px, ask_qty

    def levels_from(self, side: int, limit_tick: int | None = None) -> list[tuple[int, int]]:
        """Return ``(price_tick, qty)`` of the levels of ``side`` at least as good as a limit.

        Parameters
        ----------
        side : int
            +1 bid or -1 ask.
        limit_tick : int or None
            Worst price to include (bids ``>= limit_tick``, asks ``<= limit_tick``); None
            includes the whole side.

        Returns
        -------
        list of tuple[int, int]
            Best level first. Costs O(log L + k) for k returned levels.
        """
        prices = self._prices[side]
        lv = self._levels[side]
        if side == 1:
            lo = 0 if limit_tick is None else bisect_left(prices, limit_tick)
            return [(p, lv[p]) for p in reversed(prices[lo:])]
        hi = len(prices) if limit_tick is None else bisect_right(prices, limit_tick)
        return [(p, lv[p]) for p in prices[:hi]]

    def level_orders(self, side: int, price_tick: int) -> list[int]:
        """Return the known order ids at (``side``, ``price_tick``), front of queue first."""
        return list(self._queues.get((side, price_tick), ()))

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _check_side(side: int, kind: int) -> None:
        if side != 1 and side != -1:
            raise ValueError(f"event kind {kind} needs side +1 or -1, got {side}")

    def _level_change(self, side: int, price: int, delta: int) -> None:
        self._set_qty(side, price, self._levels[side].get(price, 0) + delta)

    def _add_order(self, order_id: int, side: int, price: int, qty: int) -> None:
        self.orders[order_id] = (side, price, qty)
        self._queues.setdefault((side, price), {})[order_id] = None
        self._level_change(side, price, qty)

    def _remove_order(self, order_id: int) -> None:
        side, price, qty = self.orders.pop(order_id)
        key = (side, price)
        q = self._queues[key]
        del q[order_id]
        if not q:
            del self._queues[key]
        self._level_change(side, price, -qty)

    def _reduce_order(self, order_id: int, qty: int) -> None:
        side, price, old = self.orders[order_id]
        new = old - qty
        if new <= 0:
            self._remove_order(order_id)
        else:
            self.orders[order_id] = (side, price, new)
            self._level_change(side, price, new - old)

    def _modify(self, order_id: int, side: int, price: int, qty: int) -> None:
        old = self.orders.get(order_id)
        if old is None:
            if qty > 0:
                self._add_order(order_id, side, price, qty)
            return
        if qty <= 0:
            self._remove_order(order_id)
            return
        o_side, o_price, o_qty = old
        if o_side != side or o_price != price or qty > o_qty:
            self._remove_order(order_id)
            self._add_order(order_id, side, price, qty)
        else:
            self.orders[order_id] = (side, price, qty)
            self._level_change(side, price, qty - o_qty)

    def _anon_change(self, side: int, price: int, qty: int) -> None:
        key = (side, price)
        self.anon[key] = self.anon.get(key, 0) + qty
        self._level_change(side, price, qty)

    def _anon_reduce(self, side: int, price: int, qty: int) -> None:
        key = (side, price)
        cur = self.anon.get(key, 0)
        take = min(cur, qty)
        if take <= 0:
            return
        if cur - take > 0:
            self.anon[key] = cur - take
        else:
            del self.anon[key]
        self._level_change(side, price, -take)

    def _clear(self, side: int) -> None:
        if side == 0:
            self.__init__()
            return
        self._check_side(side, _CLEAR)
        for oid in [o for o, (s, _, _) in self.orders.items() if s == side]:
            del self.orders[oid]
        for key in [k for k in self._queues if k[0] == side]:
            del self._queues[key]
        for key in [k for k in self.anon if k[0] == side]:
            del self.anon[key]
        self._levels[side] = {}
        self._prices[side] = []
