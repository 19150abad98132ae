"""The exact finite-horizon market-making solution of Cartea, Jaimungal & Penalva (2015),
*Algorithmic and High-Frequency Trading*, ch. 10 (MODELS.md §3), in numpy (no numba, no scipy).

Model (prices in ticks, inventory ``q`` in orders, time in seconds): buy market orders arrive
at Poisson rate λ⁺ and lift our ask, sell market orders at rate λ⁻ and hit our bid; a market
order fills a limit order posted at depth δ with probability ``exp(−κδ)``; the maker maximises
``E[X_T + q_T·(S_T − α·q_T) − φ·∫ q_t² dt]`` with ``|q| ≤ q̄``. With the ansatz
``H = x + q·s + h(t, q)`` and ``ω = exp(κh)`` the HJB equation becomes the linear system
``∂ω/∂t + M·ω = 0``, ``ω(T) = z``, so ``ω(t) = exp(M·(T − t))·z`` with the tridiagonal
``(2q̄+1)``-square matrix (row and column ``i = q + q̄``)::

    M[q, q]   = −φκq² + κε(λ⁺ − λ⁻)q
    M[q, q−1] = λ⁺·exp(−1 + κ(φ_v − ε))       (q > −q̄: a filled ask takes q to q − 1)
    M[q, q+1] = λ⁻·exp(−1 + κ(φ_v − ε))       (q < +q̄: a filled bid takes q to q + 1)
    z_q       = exp(−ακq²)

and the optimal depths (feedback form)::

    δ⁺(t, q) = 1/κ + ε − φ_v + (1/κ)·ln(ω_q/ω_{q−1})    (ask; none at q = −q̄)
    δ⁻(t, q) = 1/κ + ε − φ_v + (1/κ)·ln(ω_q/ω_{q+1})    (bid; none at q = +q̄)

With ε = φ_v = 0 these are MODELS.md §3 exactly. ε is the adverse-selection extension
(CJP §10.4.1: each market order moves the mid by ε in its own direction; the fill of our ask
costs ``ε`` of the new mid, an unfilled order moves the value of the inventory by ``±εq``,
whence the ``κε(λ⁺ − λ⁻)q`` drift term and the rates scaled by ``exp(−κε)``: the depths add
the expected impact ε). φ_v is the volume-rewarding variant (CJP §10.2.3: a reward φ_v per
filled limit order, e.g. a rebate, is worth as much as φ_v of depth: both depths move in by
φ_v and the rates scale by ``exp(κφ_v)``). Both follow from the same HJB with the jump term
``λ⁺·e^(−κδ)·(δ + φ_v − ε + h(q−1) − h(q))``; the substitution ``u = δ + φ_v − ε`` gives the
scaled rates and the shifted depths above.

Numerics. ``M`` is a Metzler matrix (non-negative off the diagonal), so with ``c`` its
smallest diagonal entry, ``exp(M·τ) = e^(cτ)·exp(N·τ)`` with ``N = M − c·I ≥ 0`` entrywise:
the Taylor series of ``exp(N·τ/2^s)`` and the squarings add non-negative terms only, so every
entry of the result is accurate *relative to itself* (no cancellation), which the log-ratios
of ``ω`` near ±q̄ (components many orders of magnitude apart) need. :func:`omega_log_grid`
then steps ``ln ω`` along the time grid in log space (a log-sum-exp per row), so that
``z_q = exp(−ακq²)`` may underflow without harm. :func:`expm_symmetrized_eigh` (the similarity
``D⁻¹MD``, ``D = diag((a/b)^(q/2))`` that makes ``M`` symmetric, then ``numpy.linalg.eigh``)
is an independent method the tests check the first against.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["cj_depth_table", "cj_matrix", "cj_terminal_log", "expm_metzler_log",
           "expm_symmetrized_eigh", "omega_log_grid"]

#: Largest number of float64 entries a depth table may hold (32 MB).
MAX_TABLE_ENTRIES = 4_000_000


def cj_matrix(lambda_buy: float, lambda_sell: float, kappa: float, phi: float, q_max: int,
              epsilon: float = 0.0, reward: float = 0.0) -> np.ndarray:
    """The matrix ``M`` of the linear ODE ``∂ω/∂t = −M·ω`` (module docstring; MODELS.md §3).

    Parameters
    ----------
    lambda_buy, lambda_sell : float
        λ⁺, λ⁻: arrival rates of buy and sell market orders, 1/s (> 0).
    kappa : float
        κ, 1/tick (> 0): fill probability ``exp(−κδ)`` at depth δ ticks.
    phi : float
        φ ≥ 0, running inventory penalty, ticks/(order²·s).
    q_max : int
        q̄ ≥ 1, inventory bound in orders.
    epsilon : float
        ε ≥ 0, mid impact of one market order, ticks (CJP §10.4.1).
    reward : float
        φ_v ≥ 0, reward per filled limit order, ticks (CJP §10.2.3).

    Returns
    -------
    float64[2q̄+1, 2q̄+1]
        Row/column ``i`` is inventory ``q = i − q̄``.

    Raises
    ------
    ValueError
        If a rate or κ is not positive, φ, ε or φ_v negative, or q̄ < 1.
    """
    if not (lambda_buy > 0 and lambda_sell > 0 and kappa > 0):
        raise ValueError(f"lambda_buy, lambda_sell and kappa must be > 0, got {lambda_buy}, "
                         f"{lambda_sell}, {kappa}")
    if phi < 0 or epsilon < 0 or reward < 0:
        raise ValueError(f"phi, epsilon and reward must be >= 0, got {phi}, {epsilon}, {reward}")
    q_max = int(q_max)
    if q_max < 1:
        raise ValueError(f"q_max must be >= 1, got {q_max}")
    q = np.arange(-q_max, q_max + 1, dtype=np.float64)
    scale = math.exp(-1.0 + kappa * (reward - epsilon))
    m = np.diag(-phi * kappa * q * q + kappa * epsilon * (lambda_buy - lambda_sell) * q)
    n = q.shape[0]
    i = np.arange(1, n)
    m[i, i - 1] = lambda_buy * scale  # row q, column q − 1
    m[i - 1, i] = lambda_sell * scale  # row q − 1, column q
    return m


def cj_terminal_log(kappa: float, alpha: float, q_max: int) -> np.ndarray:
    """``ln z_q = −ακq²``, float64[2q̄+1] (index ``q + q̄``): the terminal condition
    ``h(T, q) = −αq²`` of the liquidation penalty (MODELS.md §3)."""
    q = np.arange(-int(q_max), int(q_max) + 1, dtype=np.float64)
    return -alpha * kappa * q * q


def expm_metzler_log(a: np.ndarray) -> tuple[np.ndarray, float]:
    """``exp(a)`` of a Metzler matrix ``a`` (off-diagonal entries ≥ 0), entrywise relatively
    accurate, as ``(E, log_scale)`` with ``exp(a) = e^log_scale · E`` and ``max(E) = 1``.

    Shift ``a = N + c·I`` (``c`` = the smallest diagonal entry, ``N ≥ 0``), then scaling and
    squaring with a Taylor series of ``exp(N/2^s)`` (Moler & Van Loan 2003, "Nineteen dubious
    ways to compute the exponential of a matrix, twenty-five years later"); every
    term is non-negative, so no entry loses relative accuracy to cancellation. Rescaled after
    each squaring so that nothing overflows.

    Parameters
    ----------
    a : float64[n, n]

    Returns
    -------
    (float64[n, n], float)

    Raises
    ------
    ValueError
        If ``a`` is not square or has a negative (or non-finite) off-diagonal entry.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a must be a square matrix, got shape {a.shape}")
    off = a - np.diag(np.diag(a))
    if not np.all(np.isfinite(a)) or np.any(off < 0):
        raise ValueError("a must be finite with non-negative off-diagonal entries (Metzler)")
    c = float(np.diag(a).min())
    nmat = a - c * np.eye(a.shape[0])
    norm = float(np.abs(nmat).sum(axis=1).max())
    s = max(0, math.ceil(math.log2(norm / 0.25))) if norm > 0 else 0
    x = nmat / 2.0**s
    # Taylor to 1e-18 relative: ||x|| <= 1/4, so 16 terms leave < 0.25^17/17! ≈ 1e-25
    e = np.eye(a.shape[0])
    term = np.eye(a.shape[0])
    for j in range(1, 17):
        term = term @ x / j
        e = e + term
    # exp(N) = X^(2^s), X = e here; squaring k rescales by mx_k, so with ln L_0 = 0,
    # ln L_k = 2·ln L_(k−1) + ln mx_k and exp(N) = L_s·E
    log_l = 0.0
    for _ in range(s):
        e = e @ e
        mx = float(e.max())
        e /= mx
        log_l = 2.0 * log_l + math.log(mx)
    mx = float(e.max())
    return e / mx, c + log_l + math.log(mx)


def expm_symmetrized_eigh(m: np.ndarray, tau: float) -> np.ndarray:
    """``exp(m·τ)`` of a tridiagonal matrix whose sub-diagonal ``a`` and super-diagonal ``b``
    are positive constants, by the similarity ``S = D⁻¹·m·D`` with ``D = diag((a/b)^(i/2))``
    (``S`` is symmetric with off-diagonal ``√(ab)``) and ``numpy.linalg.eigh``:
    ``exp(mτ) = D·V·diag(e^(Λτ))·Vᵀ·D⁻¹``. Accurate to ~1e-16 relative to the largest entry
    (not entrywise); used to check :func:`expm_metzler_log`.

    Parameters
    ----------
    m : float64[n, n]
        E.g. :func:`cj_matrix` (``a = λ⁺e^(...)``, ``b = λ⁻e^(...)``).
    tau : float
        τ ≥ 0.

    Returns
    -------
    float64[n, n]

    Raises
    ------
    ValueError
        If ``m`` is not tridiagonal with constant positive sub- and super-diagonals.
    """
    m = np.asarray(m, dtype=np.float64)
    n = m.shape[0]
    a, b = np.diag(m, -1), np.diag(m, 1)
    if n < 2 or np.any(np.triu(m, 2)) or np.any(np.tril(m, -2)) or not (
            np.all(a > 0) and np.all(b > 0) and np.ptp(a) == 0 and np.ptp(b) == 0):
        raise ValueError("m must be tridiagonal with constant positive off-diagonals")
    ratio = a[0] / b[0]
    i = np.arange(n) - (n - 1) / 2.0  # centred: D is balanced around q = 0
    d = ratio ** (i / 2.0)
    sym = m * d[None, :] / d[:, None]  # D⁻¹ m D
    sym = 0.5 * (sym + sym.T)
    w, v = np.linalg.eigh(sym)
    e = (v * np.exp(w * tau)[None, :]) @ v.T
    return e * d[:, None] / d[None, :]


def omega_log_grid(m: np.ndarray, log_z: np.ndarray, tau_max: float, n_t: int) -> np.ndarray:
    """``ln ω(τ_i)`` with ``ω(τ) = exp(m·τ)·z`` on the grid ``τ_i = i·τ_max/(n_t − 1)``.

    One step matrix ``exp(m·Δτ)`` (:func:`expm_metzler_log`), applied ``n_t − 1`` times in
    log space: ``ln ω_{i+1,q} = logsumexp_j(ln E_qj + ln ω_{i,j}) + log_scale``. The result
    is the full ``ln ω`` (not normalised), so ``h = ln ω / κ`` is the value function's
    inventory part (MODELS.md §3).

    Parameters
    ----------
    m : float64[n, n]
        A Metzler matrix (:func:`cj_matrix`).
    log_z : float64[n]
        ``ln z`` (:func:`cj_terminal_log`); ``-inf`` entries allowed.
    tau_max : float
        Time to horizon at the last grid point, s (> 0).
    n_t : int
        Grid points (≥ 2).

    Returns
    -------
    float64[n_t, n]
        Row ``i`` is ``ln ω`` at time to horizon ``τ_i`` (row 0 = ``ln z``).

    Raises
    ------
    ValueError
        If ``n_t < 2`` or ``tau_max <= 0``, or from :func:`expm_metzler_log`.
    """
    if n_t < 2 or not tau_max > 0:
        raise ValueError(f"need n_t >= 2 and tau_max > 0, got {n_t}, {tau_max}")
    e, log_scale = expm_metzler_log(np.asarray(m, dtype=np.float64) * (tau_max / (n_t - 1)))
    with np.errstate(divide="ignore"):
        log_e = np.log(e)
    out = np.empty((n_t, log_z.shape[0]), dtype=np.float64)
    out[0] = log_z
    for i in range(1, n_t):
        x = log_e + out[i - 1][None, :]
        mx = x.max(axis=1)
        out[i] = mx + np.log(np.exp(x - mx[:, None]).sum(axis=1)) + log_scale
    return out


def cj_depth_table(lambda_buy: float, lambda_sell: float, kappa: float, phi: float,
                   alpha: float, q_max: int, tau_max: float, n_t: int, epsilon: float = 0.0,
                   reward: float = 0.0) -> np.ndarray:
    """The optimal depths of CJP (2015) ch. 10 on a time grid (module docstring, MODELS.md §3).

    Parameters
    ----------
    lambda_buy, lambda_sell, kappa, phi, q_max, epsilon, reward
        As :func:`cj_matrix` (1/s, 1/s, 1/tick, ticks/(order²·s), orders, ticks, ticks).
    alpha : float
        α ≥ 0, terminal liquidation penalty, ticks/order.
    tau_max : float
        Time to horizon of the last grid row, s (> 0): the model horizon T.
    n_t : int
        Grid points ``τ_i = i·tau_max/(n_t − 1)``, ``i = 0 … n_t − 1`` (≥ 2).

    Returns
    -------
    float64[n_t, 2q̄+1, 2]
        ``[i, q + q̄, 0]`` = ask depth δ⁺ and ``[i, q + q̄, 1]`` = bid depth δ⁻ in ticks at
        time to horizon ``τ_i``; NaN where that side is not quoted (ask at −q̄, bid at +q̄).

    Raises
    ------
    ValueError
        On a parameter out of range (as :func:`cj_matrix`, ``alpha < 0``, ``n_t < 2``,
        ``tau_max <= 0``), a table above :data:`MAX_TABLE_ENTRIES` entries, or a table that
        is not finite (parameters beyond float64's range, e.g. ακq̄² ≳ 700 with a coarse grid).
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    n_q = 2 * int(q_max) + 1
    if int(n_t) * n_q * 2 > MAX_TABLE_ENTRIES:
        raise ValueError(f"depth table of {int(n_t)} times x {n_q} inventories x 2 sides is "
                         f"larger than {MAX_TABLE_ENTRIES} entries: lower n_t or q_max")
    m = cj_matrix(lambda_buy, lambda_sell, kappa, phi, q_max, epsilon, reward)
    log_w = omega_log_grid(m, cj_terminal_log(kappa, alpha, q_max), tau_max, int(n_t))
    base = 1.0 / kappa + epsilon - reward
    table = np.full((int(n_t), n_q, 2), np.nan)
    table[:, 1:, 0] = base + (log_w[:, 1:] - log_w[:, :-1]) / kappa  # ask: ω_q / ω_{q−1}
    table[:, :-1, 1] = base + (log_w[:, :-1] - log_w[:, 1:]) / kappa  # bid: ω_q / ω_{q+1}
    inner = np.concatenate([table[:, 1:, 0].ravel(), table[:, :-1, 1].ravel()])
    if not np.all(np.isfinite(inner)):
        raise ValueError("the depth table is not finite: alpha·kappa·q_max² or "
                         "phi·kappa·q_max²·T_s is beyond float64's range (lower q_max)")
    return table
