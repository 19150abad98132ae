"""A ten-line policy: join the touch, shifted against the inventory.

Run it from YAML, sweep it and debug it (from the repository root)::

    .venv/bin/mmsim backtest examples/custom_policy.yaml
    .venv/bin/mmsim sweep examples/custom_policy.yaml --grid policy.skew_ticks=0,0.1,0.2
    .venv/bin/python examples/custom_policy.py        # the same, from Python, plus debugging

The YAML names the policy by its import path (``examples.custom_policy:join_touch``); mmsim
imports this module when it first looks the name up (sweep workers too).
"""

from __future__ import annotations

import mmsim
from mmsim.contracts import QUOTE_SIZE, Ctx, Quote
from mmsim.kernels import Param, Params
from mmsim.policies.nb import write_two_sided

JOIN_TOUCH = Params(
    "JoinTouchParams",
    order_qty=Param(1.0, "lots", "size of each quote", integer=True, ge=1),
    skew_ticks=Param(0.0, "ticks per lot", "both quotes move down by this per lot held", ge=0),
)
P = JOIN_TOUCH.index


@mmsim.policy(JOIN_TOUCH)
def join_touch(ctx, params, state, out):
    """Join the best bid and ask, both shifted down by skew_ticks per lot held."""
    shift = params[P.skew_ticks] * ctx[Ctx.POSITION]
    q = params[P.order_qty]
    write_two_sided(ctx, out, ctx[Ctx.BEST_BID_TICK] - shift, ctx[Ctx.BEST_ASK_TICK] - shift,
                    q, q)
    return 0


def main() -> None:
    from pathlib import Path

    import numpy as np

    here = Path(__file__).parent
    # 1. debug without numba: the Python function on a context built by hand
    ctx = mmsim.make_ctx(best_bid_tick=10_000, best_ask_tick=10_002, position=4)
    params = join_touch.mmsim_spec.param_vector({"skew_ticks": 0.25})
    out = np.zeros(QUOTE_SIZE)
    join_touch.py_func(ctx, params, np.zeros(16), out)
    print("bid", out[Quote.BID0], "ask", out[Quote.ASK0], "(one tick lower: 4 lots at 0.25)")
    # 2. run it from YAML
    run = mmsim.backtest(here / "custom_policy.yaml")
    print(run)
    # 3. sweep the skew
    res = mmsim.run_sweep(here / "custom_policy.yaml", grid=["policy.skew_ticks=0,0.1,0.2"])
    print(res.table[["policy.skew_ticks", "pnl", "n_fills", "mean_abs_position"]])


if __name__ == "__main__":
    main()
