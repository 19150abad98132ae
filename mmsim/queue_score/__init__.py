"""Which L2 queue model can a user trust? L2 queue models scored against L3 truth.

With only market-by-price (L2) data a backtest's passive fills rest on a queue-position model
(``risk_averse``, ``power``, ``log``; MODELS.md §6). On market-by-order (L3) data the exact FIFO
queue is known, so the models can be measured (MODELS.md §13): *probes* — passive orders of
one lot (or more) that never change the book — are placed at chosen times and prices, and
each probe's fill under the L3 truth is compared with its fill under each L2 model on the
exact L3 → L2 reduction of the same data (:func:`mmsim.data.l3_to_l2.l3_to_l2`).

Layout
    :mod:`~mmsim.queue_score.nb`
        The numba kernels (one pass over the events follows every probe) and their records.
    :mod:`~mmsim.queue_score.probes`
        Schedules (seeded random, a policy's own placements) and the replays.
    :mod:`~mmsim.queue_score.score`
        Scoring, calibration of the power exponent, the run directory
        (``mmsim queue-score``).
    :mod:`~mmsim.queue_score.plot`
        The time-to-fill chart (``report`` extra).

The kernels follow the engine's own rules (:mod:`mmsim.engine.nb`) for one order with zero
latency, and ``tests/test_queue_score.py`` checks them against the engine itself on real data:
the scorecard measures the fills a backtest actually gives.
"""

from mmsim.queue_score.probes import (
    DEFAULT_MODELS,
    ModelSpec,
    parse_models,
    policy_probes,
    probe_span,
    random_probes,
    replay_model,
    replay_truth,
)
from mmsim.queue_score.score import (
    QueueScoreResult,
    calibrate_power,
    format_summary,
    load_score_data,
    probe_table,
    queue_score,
    summarise,
)

__all__ = [
    "DEFAULT_MODELS",
    "ModelSpec",
    "QueueScoreResult",
    "calibrate_power",
    "format_summary",
    "load_score_data",
    "parse_models",
    "policy_probes",
    "probe_span",
    "probe_table",
    "queue_score",
    "random_probes",
    "replay_model",
    "replay_truth",
    "summarise",
]
