"""Numba kernels of the L2 queue-position models (MODELS.md §6).

With market-by-price data the queue ahead of our order at a level is not observed: when the
level shrinks, a model says how much of the decrease happened ahead of us. The engine keeps,
per order, ``front`` (lots estimated ahead) and the lots traded at our price since the last
depth update (a trade's decrease shows again in the next depth update, so it is netted out);
:func:`queue_front_nb` is the model's update. L3 data needs no model (``QUEUE_FIFO``: the
engine follows the orders ahead exactly).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from mmsim._jitcache import kernel  # (before any cached kernel)

#: L3 market-by-order: exact FIFO (no model)
QUEUE_FIFO = 0
#: ``front = min(front, level)``: only the level's own shrinking moves us up
QUEUE_RISK_AVERSE = 1
#: probabilistic, ``f(x) = x**n`` (hftbacktest's ``PowerProbQueueFunc``)
QUEUE_POWER = 2
#: probabilistic, ``f(x) = ln(1 + x)`` (hftbacktest's ``LogProbQueueFunc``)
QUEUE_LOG = 3

#: ``queue.model`` names → kinds
QUEUE_MODELS = {"fifo": QUEUE_FIFO, "risk_averse": QUEUE_RISK_AVERSE, "power": QUEUE_POWER,
                "log": QUEUE_LOG}


@nb.njit(cache=True, inline="always", _nrt=False)
def queue_f_nb(x, model, n):
    """The probabilistic models' ``f``: ``ln(1 + x)`` (``QUEUE_LOG``) or ``x**n``."""
    if model == QUEUE_LOG:
        return np.log1p(x)
    return x ** n


@kernel
def queue_front_nb(model, n, front, old_q, new_q, traded):
    """Lots ahead of our order after its level goes ``old_q`` → ``new_q`` lots (MODELS.md §6).

    Parameters
    ----------
    model : int
        ``QUEUE_RISK_AVERSE``, ``QUEUE_POWER`` or ``QUEUE_LOG``.
    n : float
        Exponent of the power model.
    front : float
        Lots ahead before the change.
    old_q, new_q : int
        Level size before and after, lots.
    traded : int
        Lots traded at the level since the previous depth update (already taken off
        ``front``), netted out of the decrease.

    Returns
    -------
    float
        The new ``front`` in ``[0, new_q]``. Risk-averse: ``min(front, new_q)``.
        Probabilistic: the unexplained decrease ``d = old − new − traded`` happened ahead of
        us with share ``1 − p``, ``p = f(back) / (f(back) + f(front))``, ``back = old −
        front``; the part beyond ``back`` also comes from ahead (as in hftbacktest's
        ``ProbQueueModel``). Cancels never fill us.
    """
    chg = old_q - new_q
    if chg > 0:
        d = chg - traded
        if d > 0 and (model == QUEUE_POWER or model == QUEUE_LOG):
            back = old_q - front
            if back < 0.0:
                back = 0.0
            fb = queue_f_nb(back, model, n)
            ff = queue_f_nb(front, model, n)
            p = fb / (fb + ff) if fb + ff > 0.0 else 1.0
            est = front - (1.0 - p) * d
            over = back - p * d
            if over < 0.0:
                est += over
            front = est
    if front > new_q:
        front = float(new_q)
    return front if front > 0.0 else 0.0
