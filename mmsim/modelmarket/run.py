"""Model-market runs: the Python side of :mod:`mmsim.modelmarket.nb` (validation, allocation,
statistics, the run directory).

:func:`run_paths` simulates one policy on many paths; :func:`run_experiment` runs every
strategy of a ``mode: model_market`` YAML on the same paths and writes the summary table
(Parquet and Markdown), per-path results, profit histograms, the config and a manifest.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mmsim.contracts import CTX_SIZE, QUOTE_SIZE
from mmsim.modelmarket import nb as mnb
from mmsim.modelmarket.config import (
    MarketConfig,
    ModelMarketConfig,
    load_model_market_config,
)
from mmsim.policies.registry import KernelSpec, get_policy

#: Paths simulated per call of the kernel (bounds the scratch memory: ~1.4 kB per path).
BATCH_PATHS = 1 << 16

_DYNAMICS = {"random_walk": mnb.DYN_RANDOM_WALK, "abm": mnb.DYN_ABM, "gbm": mnb.DYN_GBM}


class ModelMarketPolicyError(RuntimeError):
    """A policy kernel returned a non-zero code in the model market."""


def market_vector(market: MarketConfig, horizon: str = "finite") -> np.ndarray:
    """The driver's float64 config vector (``mnb.MC_*`` layout) for ``market``.

    Raises
    ------
    ValueError
        If ``horizon`` is not ``finite`` or ``infinite``.
    """
    if horizon not in ("finite", "infinite"):
        raise ValueError(f"horizon: expected 'finite' or 'infinite', got '{horizon}'")
    v = np.zeros(mnb.MC_SIZE, dtype=np.float64)
    v[mnb.MC_S0] = market.s0_px
    v[mnb.MC_T] = market.horizon_s
    v[mnb.MC_DT] = market.dt_s
    v[mnb.MC_SIGMA] = market.sigma
    v[mnb.MC_A] = market.fill_a_per_s
    v[mnb.MC_K] = market.fill_k_per_px
    v[mnb.MC_TICK] = market.tick_size_px
    v[mnb.MC_LOT] = market.lot_size
    v[mnb.MC_Q0] = market.q0_lots
    v[mnb.MC_DYNAMICS] = _DYNAMICS[market.dynamics]
    v[mnb.MC_HORIZON] = 1.0 if horizon == "infinite" else 0.0
    v[mnb.MC_NSTEPS] = market.n_steps
    return v


@dataclass(frozen=True)
class PathResults:
    """Per-path results of one policy (see :func:`run_paths`).

    Attributes
    ----------
    res : float64[n_paths, R_SIZE]
        Raw driver output (``mmsim.modelmarket.nb.R_*`` columns).
    n_steps : int
    elapsed_s : float
        Wall time of the kernel calls.
    """

    res: np.ndarray
    n_steps: int
    elapsed_s: float

    @property
    def n_paths(self) -> int:
        return int(self.res.shape[0])

    @property
    def profit(self) -> np.ndarray:
        """Terminal profit ``cash_T + q_T·s_T`` per path, price × units."""
        return self.res[:, mnb.R_PROFIT]

    @property
    def q(self) -> np.ndarray:
        """Final inventory per path, instrument units."""
        return self.res[:, mnb.R_Q]

    @property
    def s_final(self) -> np.ndarray:
        """Final mid per path, price."""
        return self.res[:, mnb.R_S_T]

    @property
    def avg_spread(self) -> float:
        """Mean of ``ask − bid`` over every path-step quoted on both sides (price; NaN if none)."""
        n = self.res[:, mnb.R_SPREAD_N].sum()
        return float(self.res[:, mnb.R_SPREAD_SUM].sum() / n) if n > 0 else math.nan

    @property
    def fills_per_path(self) -> float:
        return float((self.res[:, mnb.R_BID_FILLS] + self.res[:, mnb.R_ASK_FILLS]).mean())


def run_paths(
    policy: str | KernelSpec,
    params: dict[str, float],
    market: MarketConfig,
    n_paths: int,
    seed: int,
    *,
    horizon: str = "finite",
) -> PathResults:
    """Simulate ``policy`` on ``n_paths`` model-market paths (MODELS.md §1 fill model).

    Parameters
    ----------
    policy : str or KernelSpec
        A registered policy name or spec; its kernel is passed to the driver unchanged.
    params : dict
        Policy parameters by name (registry defaults fill the rest).
    market : MarketConfig
    n_paths : int
        Number of independent paths (> 0).
    seed : int
        0 ≤ seed < 2⁶³. Path ``i`` depends on ``(seed, i)`` only: any thread count, any batch
        split and any policy see the same mid path and uniforms.
    horizon : {"finite", "infinite"}
        ``infinite`` passes ``TIME_TO_HORIZON_S = inf`` (the policy's own constant τ is used).

    Returns
    -------
    PathResults

    Raises
    ------
    KeyError
        Unknown policy name.
    ValueError
        Unknown or missing parameter, bad ``n_paths``, ``seed`` or ``horizon``.
    ModelMarketPolicyError
        If the policy returns a non-zero code on some path.
    """
    spec = get_policy(policy) if isinstance(policy, str) else policy
    if n_paths <= 0:
        raise ValueError(f"n_paths must be positive, got {n_paths}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    pvec = spec.param_vector(dict(params))
    mvec = market_vector(market, horizon)
    # a policy with a prepare hook (e.g. a depth table) computes its state from its params
    state_init = np.ascontiguousarray(spec.initial_state(pvec), dtype=np.float64)
    n_state = max(spec.state_size, state_init.shape[0])
    res = np.zeros((n_paths, mnb.R_SIZE), dtype=np.float64)
    b = min(n_paths, BATCH_PATHS)
    states = np.zeros((b, n_state), dtype=np.float64)
    ctxs = np.zeros((b, CTX_SIZE), dtype=np.float64)
    outs = np.zeros((b, QUOTE_SIZE), dtype=np.float64)
    t0 = time.perf_counter()
    for p0 in range(0, n_paths, b):
        n = min(b, n_paths - p0)
        chunk = np.zeros((n, mnb.R_SIZE), dtype=np.float64)
        nerr = mnb.run_paths_nb(spec.kernel, pvec, state_init, states[:n], ctxs[:n], outs[:n],
                                mvec, np.int64(seed), np.int64(p0), chunk)
        res[p0:p0 + n] = chunk
        if nerr:
            bad = np.flatnonzero(chunk[:, mnb.R_ERR] != 0.0)
            raise ModelMarketPolicyError(
                f"{spec.describe_error(int(chunk[bad[0], mnb.R_ERR]))} on {nerr} path(s) "
                f"(first: path {p0 + int(bad[0])})"
            )
    return PathResults(res, market.n_steps, time.perf_counter() - t0)


def moment_stats(x: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation (ddof = 1) and their standard errors.

    ``se(mean) = std/√n``; ``se(std) ≈ std·√((κ − 1)/(4n))`` by the delta method, with κ the
    sample kurtosis ``m₄/m₂²`` (κ = 3 for a normal sample gives ``std/√(2n)``).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    d = x - mean
    m2 = float((d * d).mean())
    kurt = float((d**4).mean() / (m2 * m2)) if m2 > 0 else 3.0
    return {
        "mean": mean,
        "std": std,
        "se_mean": std / math.sqrt(n),
        "se_std": std * math.sqrt(max(kurt - 1.0, 0.0) / (4.0 * n)),
    }


@dataclass
class ModelMarketResult:
    """A finished model-market experiment.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per strategy: ``strategy``, ``label``, ``policy``, ``gamma``, ``horizon``,
        ``spread`` (average ask − bid, price), ``profit_mean``, ``profit_std``, ``q_mean``,
        ``q_std`` (final inventory, units), their standard errors (``*_se``),
        ``fills_per_path``, ``half_spread_px`` (matched strategies) and ``paths_per_s``.
    markdown : str
        The table (and the comparison with published figures, if any) as Markdown.
    run_dir : Path
    paths : pandas.DataFrame
        Per-path results: ``strategy``, ``path``, ``profit``, ``q``, ``s_final``, ``fills``.
    config : ModelMarketConfig
    timing : dict
    """

    table: pd.DataFrame
    markdown: str
    run_dir: Path
    paths: pd.DataFrame
    config: ModelMarketConfig
    timing: dict[str, Any] = field(default_factory=dict)


def simulate(cfg: ModelMarketConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, PathResults]]:
    """Run every strategy of ``cfg`` on the same paths; return (table, per-path frame, raw).

    Raises
    ------
    ValueError
        If a ``match_spread_of`` strategy's policy has no ``half_spread_px`` parameter or the
        matched strategy never quoted both sides.
    """
    raw: dict[str, PathResults] = {}
    rows = []
    frames = []
    for sid, st in cfg.strategies.items():
        spec = get_policy(st.policy.name)
        params = dict(st.policy.params())
        gamma = params.get("gamma", math.nan)
        half = math.nan
        if st.match_spread_of is not None:
            if "half_spread_px" not in spec.params:
                raise ValueError(
                    f"strategies.{sid}: policy '{spec.name}' has no 'half_spread_px' to match"
                )
            ref = raw[st.match_spread_of]
            if not math.isfinite(ref.avg_spread):
                raise ValueError(f"strategies.{sid}: '{st.match_spread_of}' never quoted")
            half = 0.5 * ref.avg_spread
            params["half_spread_px"] = half
            gamma = cfg.strategies[st.match_spread_of].policy.params().get("gamma", gamma)
        try:
            pr = run_paths(spec, params, cfg.market, cfg.paths, cfg.seed, horizon=st.horizon)
        except ValueError as e:
            raise ValueError(f"strategies.{sid}: {e}") from None
        raw[sid] = pr
        pstat = moment_stats(pr.profit)
        qstat = moment_stats(pr.q)
        rows.append({
            "strategy": sid,
            "label": st.label or sid,
            "policy": spec.name,
            "gamma": float(gamma),
            "horizon": st.horizon,
            "spread": pr.avg_spread,
            "profit_mean": pstat["mean"],
            "profit_std": pstat["std"],
            "q_mean": qstat["mean"],
            "q_std": qstat["std"],
            "profit_mean_se": pstat["se_mean"],
            "profit_std_se": pstat["se_std"],
            "q_mean_se": qstat["se_mean"],
            "q_std_se": qstat["se_std"],
            "fills_per_path": pr.fills_per_path,
            "half_spread_px": half,
            "paths_per_s": pr.n_paths / pr.elapsed_s if pr.elapsed_s > 0 else math.nan,
        })
        frames.append(pd.DataFrame({
            "strategy": sid,
            "path": np.arange(pr.n_paths, dtype=np.int64),
            "profit": pr.profit,
            "q": pr.q,
            "s_final": pr.s_final,
            "fills": (pr.res[:, mnb.R_BID_FILLS] + pr.res[:, mnb.R_ASK_FILLS]).astype(np.int64),
        }))
    return pd.DataFrame(rows), pd.concat(frames, ignore_index=True), raw


def _f(v: float, nd: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def format_markdown(cfg: ModelMarketConfig, table: pd.DataFrame) -> str:
    """The summary table (and the comparison with ``cfg.reference``) as Markdown."""
    m = cfg.market
    lines = [f"### {cfg.name}: model market, {cfg.paths} paths × {m.n_steps} steps", ""]
    if cfg.description.strip():
        lines.append(cfg.description.strip())
    lines += [
        f"s0 = {m.s0_px:g}, T = {m.horizon_s:g}, dt = {m.dt_s:g}, σ = {m.sigma:g} "
        f"({m.dynamics}), A = {m.fill_a_per_s:g}, k = {m.fill_k_per_px:g}, seed = {cfg.seed}. "
        "Profit = cash + q_T·s_T; spread = mean ask − bid over all path-steps.",
        "",
        "| γ | strategy | horizon | avg spread | profit | std(profit) | final q | std(final q) |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.gamma:g} | {r.label} | {r.horizon} | {_f(r.spread)} | {_f(r.profit_mean)} | "
            f"{_f(r.profit_std)} | {_f(r.q_mean)} | {_f(r.q_std)} |"
        )
    if cfg.reference:
        lines += [
            "",
            "Against the published figures (z = (ours − published) / SE of ours; "
            "SE(std) from the sample kurtosis):",
            "",
            "| strategy | figure | ours | SE | published | z |",
            "|---|---|---:|---:|---:|---:|",
        ]
        by_id = table.set_index("strategy")
        for sid, ref in cfg.reference.items():
            row = by_id.loc[sid]
            for fig, se_col in (("spread", None), ("profit_mean", "profit_mean_se"),
                                ("profit_std", "profit_std_se"), ("q_mean", "q_mean_se"),
                                ("q_std", "q_std_se")):
                pub = getattr(ref, fig)
                if pub is None:
                    continue
                ours = float(row[fig])
                se = float(row[se_col]) if se_col else math.nan
                z = (ours - pub) / se if se_col and se > 0 else math.nan
                lines.append(f"| {row['label']} | {fig} | {_f(ours, 3)} | {_f(se, 3)} | "
                             f"{pub:g} | {_f(z)} |")
    return "\n".join(lines) + "\n"


def _histograms(cfg: ModelMarketConfig, paths: pd.DataFrame, folder: Path) -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups: dict[str, list[str]] = {}
    for sid, st in cfg.strategies.items():
        groups.setdefault(st.group or sid, []).append(sid)
    names = []
    for g, sids in groups.items():
        fig = Figure(figsize=(7, 4.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        data = [paths.loc[paths.strategy == s, "profit"].to_numpy() for s in sids]
        lo = min(float(d.min()) for d in data)
        hi = max(float(d.max()) for d in data)
        bins = np.linspace(lo, hi, cfg.histogram_bins + 1) if hi > lo else cfg.histogram_bins
        for s, d in zip(sids, data, strict=True):
            label = cfg.strategies[s].label or s
            ax.hist(d, bins=bins, alpha=0.5, label=f"{label} (mean {d.mean():.1f}, "
                                                   f"std {d.std(ddof=1):.1f})")
        ax.set_xlabel("profit (cash + q_T·s_T)")
        ax.set_ylabel("paths")
        ax.set_title(f"{cfg.name}: profit, {g} ({cfg.paths} paths)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"profit_hist_{g}.png"
        fig.savefig(folder / name, dpi=100)
        names.append(name)
    return names


def default_run_dir(cfg: ModelMarketConfig) -> Path:
    """``runs/<name>-<first 10 hex of the config digest>``."""
    return Path("runs") / f"{cfg.name}-{cfg.digest()[:10]}"


def run_experiment(
    path: str | Path,
    *,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> ModelMarketResult:
    """Run a ``mode: model_market`` experiment YAML and write its run directory.

    Writes ``table.parquet``, ``table.md``, ``paths.parquet``, ``profit_hist_<group>.png``,
    ``config.yaml``, ``timing.json`` and ``manifest.json`` (last; ``complete: true``) under
    ``<run_dir>.partial``, fsyncs them and renames the folder into place (an existing mmsim
    run there is replaced), so a failed run leaves nothing that looks complete. The run
    directory is claimed (:func:`mmsim.results.claim_output`) before the simulation: an
    existing folder that is neither empty nor an mmsim run is refused, and a second run
    with the same ``out`` fails at once.

    Parameters
    ----------
    path : path
        The experiment YAML.
    out : path, optional
        Run directory (default :func:`default_run_dir`).
    overrides : sequence of str
        ``key.sub=value`` overrides (values parsed as YAML), applied before validation.

    Returns
    -------
    ModelMarketResult

    Raises
    ------
    mmsim.config.ConfigError
        Missing file, bad YAML or an invalid field (file and field named).
    KeyError
        Unknown policy name.
    ValueError
        Bad policy parameters (strategy named).
    ModelMarketPolicyError
        A policy kernel returned a non-zero code.
    mmsim.results.OutputError
        ``out`` is a file, a folder mmsim did not write, or in use by another run
        (:class:`~mmsim.results.OutputLockedError`), before any simulation.
    """

    from mmsim.results import claim_output

    cfg = load_model_market_config(path, overrides)
    run_dir = Path(out) if out else default_run_dir(cfg)
    # before the simulation: the target must be absent, empty or an mmsim run, and no other
    # run may write it at the same time
    claim = claim_output(run_dir, "run")
    try:
        return _run_claimed(cfg, run_dir, claim)
    finally:
        claim.release()


def _run_claimed(cfg: ModelMarketConfig, run_dir: Path, claim) -> ModelMarketResult:
    """:func:`run_experiment` once the run directory is claimed."""
    import mmsim

    t0 = time.perf_counter()
    table, paths, raw = simulate(cfg)
    sim_s = time.perf_counter() - t0
    markdown = format_markdown(cfg, table)
    kernel_s = sum(r.elapsed_s for r in raw.values())
    path_steps = cfg.paths * cfg.market.n_steps * len(raw)
    import numba

    timing = {
        "simulate_s": sim_s,
        "kernel_s": kernel_s,
        "path_steps": path_steps,
        "path_steps_per_s": path_steps / kernel_s if kernel_s > 0 else None,
        "numba_threads": numba.get_num_threads(),
    }
    tmp = claim.new_partial()
    try:
        table.to_parquet(tmp / "table.parquet", index=False)
        paths.to_parquet(tmp / "paths.parquet", index=False)
        (tmp / "table.md").write_text(markdown)
        hists = _histograms(cfg, paths, tmp)
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg.as_dict(), sort_keys=False,
                                                        allow_unicode=True))
        (tmp / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
        manifest = {
            "mmsim_version": mmsim.__version__,
            "mode": "model_market",
            "name": cfg.name,
            "seed": cfg.seed,
            "paths": cfg.paths,
            "config_digest": cfg.digest(),
            "files": ["table.parquet", "table.md", "paths.parquet", *hists, "config.yaml",
                      "timing.json"],
            "complete": True,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        claim.publish_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ModelMarketResult(table, markdown, run_dir, paths, cfg, timing)
