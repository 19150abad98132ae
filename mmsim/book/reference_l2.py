"""Plain-Python L2 (market-by-price) book: the reference for L2 readers and the numba book.

:class:`ReferenceL2Book` applies canonical events (:data:`mmsim.dtypes.EVENT_DTYPE`) one at a
time. It is slow and obvious on purpose: the L2 readers (:mod:`mmsim.data.binance`,
:mod:`mmsim.data.tardis`, ...) replay their output through it to count crossed books, and
property tests can compare a numba L2 book against it.

Semantics
---------
``LEVEL_SET``
    The quantity at (``side``, ``price_tick``) becomes ``qty`` lots; ``qty <= 0`` deletes
    the level (deleting a missing level is a no-op).
``CLEAR``
    ``side == 0`` empties the whole book, ``side == ±1`` that side only.
``ADD``, ``CANCEL``, ``DELETE``, ``EXECUTE``, ``MODIFY``
    Not L2 events: rejected (``ValueError``), an L2 stream never holds them.
Anything else (``TRADE``, ``BBO``, ``MARK``, ``FUNDING``, ``SNAPSHOT_BEGIN``/``END``,
``STATUS``)
    No effect on the book.
"""

from __future__ import annotations

from typing import Any

from mmsim.book.reference import PriceLevels
from mmsim.enums import EventKind

_LEVEL_SET = EventKind.LEVEL_SET
_CLEAR = EventKind.CLEAR
_L3_KINDS = frozenset(
    (EventKind.ADD, EventKind.CANCEL, EventKind.DELETE, EventKind.EXECUTE, EventKind.MODIFY)
)
_KNOWN_KINDS = frozenset(EventKind)


class ReferenceL2Book(PriceLevels):
    """Market-by-price book in integer ticks and lots.

    Attributes
    ----------
    bids, asks : dict[int, int]
        ``price_tick -> qty`` (lots, always ``> 0``) of every level of each side.

    Notes
    -----
    Each side also keeps an ascending sorted price list (``bisect``), so ``best_bid`` and
    ``best_ask`` are O(1), ``top(n)`` is O(n) and adding or removing a level is O(levels).

    Examples
    --------
    >>> book = ReferenceL2Book()
    >>> book.apply_fields(EventKind.LEVEL_SET, 1, 100, 5)
    >>> book.apply_fields(EventKind.LEVEL_SET, -1, 101, 2)
    >>> book.best_bid(), book.best_ask(), book.is_crossed()
    (100, 101, False)
    """

    def __init__(self) -> None:
        super().__init__()
        self.bids: dict[int, int] = self._levels[1]
        self.asks: dict[int, int] = self._levels[-1]

    # ------------------------------------------------------------------ public API
    def apply(self, ev: Any) -> None:
        """Apply one event.

        Parameters
        ----------
        ev : numpy.void or Mapping
            One :data:`~mmsim.dtypes.EVENT_DTYPE` record, or a mapping with at least the keys
            ``kind``, ``side``, ``price_tick``, ``qty``.

        Raises
        ------
        ValueError
            Unknown kind, an L3 kind, a LEVEL_SET whose side is not ±1 or a CLEAR whose side
            is not 0 or ±1.
        """
        get = ev.__getitem__
        self.apply_fields(
            int(get("kind")), int(get("side")), int(get("price_tick")), int(get("qty"))
        )

    def apply_fields(self, kind: int, side: int, price_tick: int, qty: int) -> None:
        """Apply one event given as plain ints (the fast path of :meth:`apply`)."""
        if kind == _LEVEL_SET:
            self.set_level(side, price_tick, qty)
        elif kind == _CLEAR:
            self.clear(side)
        elif kind in _L3_KINDS:
            raise ValueError(f"event kind {kind} is not an L2 event")
        elif kind not in _KNOWN_KINDS:
            raise ValueError(f"unknown event kind {kind}")

    def set_level(self, side: int, price_tick: int, qty: int) -> None:
        """Set the quantity (lots) at (``side``, ``price_tick``); ``qty <= 0`` deletes it."""
        if side not in self._levels:
            raise ValueError(f"LEVEL_SET side must be +1 or -1, got {side}")
        self._set_qty(side, price_tick, qty)

    def clear(self, side: int = 0) -> None:
        """Empty one side (``±1``) or the whole book (``0``)."""
        if side not in (0, 1, -1):
            raise ValueError(f"CLEAR side must be 0, +1 or -1, got {side}")
        for s in (1, -1):
            if side in (0, s):
                self._levels[s].clear()
                self._prices[s].clear()

    def n_levels(self, side: int) -> int:
        """Number of levels of ``side`` (+1 or -1)."""
        return len(self._levels[side])

    def top(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Return the best ``n`` levels of each side, best first.

        Returns
        -------
        bids, asks : list of tuple[int, int]
            ``(price_tick, qty)`` pairs, at most ``n`` each (no padding).
        """
        if n <= 0:
            return [], []
        bp = self._prices[1][-n:][::-1]
        ap = self._prices[-1][:n]
        return [(p, self.bids[p]) for p in bp], [(p, self.asks[p]) for p in ap]
