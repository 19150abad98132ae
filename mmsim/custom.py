"""Python-first policies and hedgers: a decorator that compiles and registers a kernel with its
declared parameters, and a pure-Python view of the context it reads.

A policy is a numba function ``f(ctx, params, state, out) -> int`` on four float64 arrays
(:data:`mmsim.contracts.POLICY_SIG`; ``ctx`` as :data:`mmsim.contracts.Ctx`, ``out`` as
:data:`mmsim.contracts.Quote`). Declare its parameters once with :class:`mmsim.kernels.Params`
and read them through the declaration's index (numba folds it to constants)::

    import mmsim
    from mmsim.contracts import Ctx
    from mmsim.kernels import Param, Params
    from mmsim.policies.nb import write_two_sided

    JT = Params("JoinTouchParams",
                order_qty=Param(1.0, "lots", "quote size", integer=True, ge=1),
                skew_ticks=Param(0.0, "ticks per lot", "move both quotes down per lot held"))
    P = JT.index

    @mmsim.policy(JT)
    def join_touch(ctx, params, state, out):
        shift = params[P.skew_ticks] * ctx[Ctx.POSITION]
        q = params[P.order_qty]
        write_two_sided(ctx, out, ctx[Ctx.BEST_BID_TICK] - shift,
                        ctx[Ctx.BEST_ASK_TICK] - shift, q, q)
        return 0

(``write_two_sided`` floors the bid, ceils the ask and keeps both off the touch; a kernel may
also fill ``out`` itself through :data:`mmsim.contracts.Quote`.)

The kernel compiles (or loads from numba's disk cache) on first use, with the declared
signature. An experiment names it by its import path, ``policy: {name: "my_pkg.quotes:
join_touch", skew_ticks: 0.5}``: mmsim imports the module on first look-up (so it works in
sweep workers of every executor, which import it too), or by the name it was registered under
once the module is imported. A package can also offer kernels through the entry-point groups
``mmsim.policies`` / ``mmsim.hedgers`` (the entry point's name is the name to use).

To debug a kernel without numba, call its Python function on arrays you build:
``join_touch.py_func(make_ctx(best_bid_tick=100, best_ask_tick=101), params, state, out)``
(:func:`make_ctx`, :func:`read_ctx`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mmsim.contracts import (
    CTX_DEPTH,
    CTX_ORDERS,
    CTX_SIZE,
    HEDGER_SIG,
    MAX_INSTRUMENTS,
    POLICY_SIG,
    QUOTE_SIZE,
    Ctx,
    CtxOrder,
    InstCtx,
)
from mmsim.kernels import REGISTRY, KernelSpec, Layout, Params

__all__ = ["hedger", "make_ctx", "new_quote", "policy", "read_ctx"]


def _decorator(kind: str, sig: Any, params: Params | Mapping[str, Any] | None, name: str | None,
               doc: str | None, state: Layout | None, state_size: int | None,
               aliases: tuple[str, ...], errors: Any, prepare: Any,
               reads_depth: bool = True) -> Callable:
    from mmsim._jitcache import declared

    def wrap(fn: Callable) -> Any:
        d = declared(sig)(fn)
        spec = KernelSpec(
            name or fn.__name__, d, params if params is not None else {},
            doc=doc if doc is not None else (fn.__doc__ or "").strip().split("\n")[0],
            aliases=tuple(aliases), state=state, state_size=state_size, errors=errors,
            kind=kind, prepare=prepare, reads_depth=reads_depth,
        )
        REGISTRY.register(spec, kind)
        d.mmsim_spec = spec
        return d

    return wrap


def policy(params: Params | Mapping[str, Any] | None = None, *, name: str | None = None,
           doc: str | None = None, state: Layout | None = None, state_size: int | None = None,
           aliases: tuple[str, ...] = (), errors: Any = None, prepare: Any = None,
           reads_depth: bool = True) -> Callable:
    """Decorator: compile ``fn`` as a policy kernel (:data:`~mmsim.contracts.POLICY_SIG`, on
    first use) and register it with its declared parameters (module docstring).

    Parameters
    ----------
    params : Params or mapping of str to Param, optional
        The declaration of ``params`` (none: no parameters).
    name : str, optional
        The registered name (default: the function's name).
    doc : str, optional
        One line for listings (default: the first line of the docstring).
    state, state_size, aliases, errors, prepare, reads_depth
        As :class:`mmsim.kernels.KernelSpec` (``reads_depth=False``: the kernel never reads
        the depth block, so the run may skip filling it).

    Returns
    -------
    The numba dispatcher (``.py_func`` is the Python function; ``.mmsim_spec`` the
    :class:`~mmsim.kernels.KernelSpec`).

    Raises
    ------
    ValueError
        From :class:`~mmsim.kernels.KernelSpec` on a bad declaration.
    """
    return _decorator("policy", POLICY_SIG, params, name, doc, state, state_size, aliases,
                      errors, prepare, reads_depth)


def hedger(params: Params | Mapping[str, Any] | None = None, *, name: str | None = None,
           doc: str | None = None, state: Layout | None = None, state_size: int | None = None,
           aliases: tuple[str, ...] = (), errors: Any = None, prepare: Any = None,
           reads_depth: bool = True) -> Callable:
    """Decorator: as :func:`policy`, for a hedger (:data:`~mmsim.contracts.HEDGER_SIG`; output
    laid out as :data:`mmsim.contracts.HedgeOut`)."""
    return _decorator("hedger", HEDGER_SIG, params, name, doc, state, state_size, aliases,
                      errors, prepare, reads_depth)


def make_ctx(**fields: float) -> np.ndarray:
    """A policy context (float64[CTX_SIZE]) with the given :data:`~mmsim.contracts.Ctx`
    fields set by lower-case name (``best_bid_tick=100``, ``position=3``); unset prices are
    NaN, the rest 0, ``time_to_horizon_s`` inf, one instrument. For tests and for calling a
    kernel's ``py_func``.

    Raises
    ------
    KeyError
        On a name that is not a scalar field of :data:`~mmsim.contracts.Ctx`.
    """
    ctx = np.zeros(CTX_SIZE, dtype=np.float64)
    for f in ("BEST_BID_TICK", "BEST_ASK_TICK", "MID_TICK", "WMID_TICK", "SPREAD_TICK",
              "TRADE_HI_TICK", "TRADE_LO_TICK"):
        ctx[getattr(Ctx, f)] = np.nan
    ctx[Ctx.TIME_TO_HORIZON_S] = np.inf
    ctx[Ctx.MAX_POSITION] = np.inf
    ctx[Ctx.LAST_FILL_S] = -np.inf
    ctx[Ctx.DEPTH0:Ctx.ORDERS0] = np.nan
    for c in range(CTX_ORDERS):
        ctx[Ctx.ORDERS0 + CtxOrder.SIZE * c + CtxOrder.PRICE_TICK] = np.nan
    ctx[Ctx.N_INSTRUMENTS] = 1.0
    scalars = {n.lower(): getattr(Ctx, n) for n in Ctx._fields if getattr(Ctx, n) < Ctx.DEPTH0}
    for k, v in fields.items():
        if k not in scalars:
            raise KeyError(f"{k!r} is not a ctx field (known: {', '.join(sorted(scalars))})")
        ctx[scalars[k]] = float(v)
    b, a = ctx[Ctx.BEST_BID_TICK], ctx[Ctx.BEST_ASK_TICK]
    if "mid_tick" not in fields and not (np.isnan(b) or np.isnan(a)):
        ctx[Ctx.MID_TICK] = 0.5 * (a + b)
    if "spread_tick" not in fields and not (np.isnan(b) or np.isnan(a)):
        ctx[Ctx.SPREAD_TICK] = a - b
    base = Ctx.INST0  # instrument 0's block
    for f in ("BEST_BID_TICK", "BEST_ASK_TICK", "MID_TICK"):
        ctx[base + getattr(InstCtx, f)] = ctx[getattr(Ctx, f)]
    ctx[base + InstCtx.POSITION] = ctx[Ctx.POSITION]
    return ctx


def read_ctx(ctx: np.ndarray) -> dict[str, Any]:
    """The context a kernel received, by name: every scalar :data:`~mmsim.contracts.Ctx` field
    (lower case), ``bids``/``asks`` (lists of ``(price_tick, qty)`` of the visible depth),
    ``orders`` (our live orders: dicts of :data:`~mmsim.contracts.CtxOrder` fields) and
    ``instruments`` (one dict of :data:`~mmsim.contracts.InstCtx` fields per instrument in
    the run).

    Raises
    ------
    ValueError
        If ``ctx`` is not a float64 array of :data:`~mmsim.contracts.CTX_SIZE`.
    """
    ctx = np.asarray(ctx)
    if ctx.shape != (CTX_SIZE,):
        raise ValueError(f"a ctx is float64[{CTX_SIZE}], got shape {ctx.shape}")
    out: dict[str, Any] = {n.lower(): float(ctx[getattr(Ctx, n)]) for n in Ctx._fields
                           if getattr(Ctx, n) < Ctx.DEPTH0 or n == "N_INSTRUMENTS"}
    d = Ctx.DEPTH0
    out["bids"] = [(float(ctx[d + 2 * k]), float(ctx[d + 2 * k + 1])) for k in range(CTX_DEPTH)
                   if not np.isnan(ctx[d + 2 * k])]
    a0 = d + 2 * CTX_DEPTH
    out["asks"] = [(float(ctx[a0 + 2 * k]), float(ctx[a0 + 2 * k + 1]))
                   for k in range(CTX_DEPTH) if not np.isnan(ctx[a0 + 2 * k])]
    orders = []
    for c in range(CTX_ORDERS):
        o = Ctx.ORDERS0 + CtxOrder.SIZE * c
        if ctx[o + CtxOrder.SIDE] != 0:
            orders.append({n.lower(): float(ctx[o + getattr(CtxOrder, n)])
                           for n in CtxOrder._fields if n != "SIZE"})
    out["orders"] = orders
    n_inst = int(ctx[Ctx.N_INSTRUMENTS]) if ctx[Ctx.N_INSTRUMENTS] >= 1 else 1
    out["instruments"] = [
        {n.lower(): float(ctx[Ctx.INST0 + InstCtx.SIZE * i + getattr(InstCtx, n)])
         for n in InstCtx._fields if n != "SIZE"}
        for i in range(min(n_inst, MAX_INSTRUMENTS))
    ]
    return out


def new_quote() -> np.ndarray:
    """A zeroed policy output (float64[QUOTE_SIZE], :data:`~mmsim.contracts.Quote`)."""
    return np.zeros(QUOTE_SIZE, dtype=np.float64)
