"""Bad parameters get one clear error line naming the file and the field, before any work.

The CLI cases call :func:`mmsim.cli.main` and check the exact ``mmsim: error:`` line and exit
status 2; none of them may import a kernel module (checked in a subprocess), so they are fast.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mmsim.cli import main
from mmsim.config import ConfigError, config_from_dict, load_config
from mmsim.data.errors import DataError
from mmsim.hedgers.registry import _HEDGERS, get_hedger
from mmsim.modelmarket.config import load_model_market_config
from mmsim.policies.registry import _POLICIES, UnknownKernelError, get_policy

REPO = Path(__file__).resolve().parents[1]
KERNEL_MODULES = ("mmsim.engine.nb", "mmsim.modelmarket.nb", "mmsim.policies.nb",
                  "mmsim.hedgers.nb", "mmsim.book.nb", "mmsim.models.nb")

REPLAY = """\
name: t
data: {kind: synthetic}
instrument: {symbol: SYN, tick_size: 0.01, lot_size: 1}
latency: {feed_nanos: 100000, entry_nanos: 200000, response_nanos: 200000}
policy: {name: avellaneda_stoikov, gamma: 0.1, k: 30.0, order_qty: 5}
hedger: {name: threshold, threshold: 30, ratio: 0.5}
"""

MODEL_MARKET = """\
mode: model_market
name: mm
paths: 10
strategies:
  inv: {policy: {name: avellaneda_stoikov, gamma: 0.1, k: 1.5, sigma_px: 2.0}}
  sym: {match_spread_of: inv, policy: {name: symmetric}}
"""

AS_KNOWN = "gamma, k, sigma_px, order_qty, tau_s, ref"
#: stands for the registered policy names in an expected message (other test modules may
#: register test-only policies in the same process)
POLICIES = "<registered policies>"
#: what an unknown kernel's message adds after the registered names
OR_PATH = ("; or an import path 'package.module:function', or an entry point of the "
           "'mmsim.policies' group")


def _exp(tmp_path: Path, text: str = REPLAY, name: str = "exp.yaml", **subst: str) -> Path:
    for old, new in subst.items():
        assert old in text
        text = text.replace(old, new)
    p = tmp_path / name
    p.write_text(text)
    return p


def _err(capsys, argv: list[str]) -> str:
    """Run the CLI; it must exit 2 with exactly one ``mmsim: error:`` line on stderr."""
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mmsim: error: ")
    return lines[0]


# ------------------------------------------------------------------------ the CLI, one line
def test_set_non_number_names_the_field_and_the_override(tmp_path, capsys):
    p = _exp(tmp_path)
    line = _err(capsys, ["backtest", str(p), "--set", "policy.gamma=abc"])
    assert line == (f"mmsim: error: {p}: field 'policy.gamma': must be a number, got 'abc' "
                    f"(from --set policy.gamma=abc)")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("gamma: 0.1", "gamma: 0", "field 'policy.gamma': must be > 0, got 0"),
        ("gamma: 0.1", "gamma: -1", "field 'policy.gamma': must be > 0, got -1"),
        ("k: 30.0, order_qty: 5", "k: 0, order_qty: 0",
         "field 'policy.k': must be > 0, got 0; field 'policy.order_qty': must be >= 1, got 0"),
        ("order_qty: 5", "order_qty: 2.5", "field 'policy.order_qty': must be a whole number, "
                                           "got 2.5"),
        ("gamma: 0.1", "gamma: .inf", "field 'policy.gamma': must be finite, got inf"),
        ("gamma: 0.1", "gamma: 0.1, gama: 1",
         f"field 'policy.gama': unknown parameter of 'avellaneda_stoikov' (known: {AS_KNOWN})"),
        ("gamma: 0.1, ", "", "field 'policy.gamma': required by 'avellaneda_stoikov' "
                             "(1/(price·order), number > 0)"),
        ("name: avellaneda_stoikov", "name: nope",
         f"field 'policy.name': unknown policy 'nope' (known: {POLICIES}{OR_PATH})"),
        ("ratio: 0.5", "ratio: 0", "field 'hedger.ratio': must be > 0, got 0"),
        ("ratio: 0.5", "ratio: 0.5, tif: gtc",
         "field 'hedger.tif': must be market (3) or ioc (2) or fok (4), got 'gtc'"),
        ("threshold: 30", "threshold: -1", "field 'hedger.threshold': must be >= 0, got -1"),
        ("name: threshold", "name: delta",
         "field 'hedger.name': unknown hedger 'delta' (known: cross_delta, none, threshold; or "
         "an import path 'package.module:function', or an entry point of the 'mmsim.hedgers' "
         "group)"),
        ("tick_size: 0.01", "tick_size: 0", "field 'instrument.tick_size': must be > 0, got 0"),
        ("tick_size: 0.01", "tick_size: 0.01, tick: 1", "field 'instrument.tick': unknown field"),
        ("feed_nanos: 100000", "feed_nanos: -1",
         "field 'latency.feed_nanos': must be >= 0, got -1"),
        ("entry_nanos: 200000", "entry_nanos: 1.5",
         "field 'latency.entry_nanos': must be a whole number, got 1.5"),
    ],
)
def test_bad_field_in_the_file(tmp_path, capsys, old, new, message):
    from mmsim.policies.registry import policy_names

    p = _exp(tmp_path, **{old: new})
    message = message.replace(POLICIES, ", ".join(policy_names()))
    assert _err(capsys, ["backtest", str(p)]) == f"mmsim: error: {p}: {message}"


def test_bad_override_names_the_override(tmp_path, capsys):
    p = _exp(tmp_path)
    line = _err(capsys, ["backtest", str(p), "--set", "latency.feed_nanos=-5",
                         "--set", "instrument.tick_size=0"])
    assert line == (f"mmsim: error: {p}: field 'instrument.tick_size': must be > 0, got 0 "
                    f"(from --set instrument.tick_size=0); field 'latency.feed_nanos': must be "
                    f">= 0, got -5 (from --set latency.feed_nanos=-5)")
    assert "pydantic" not in line and "http" not in line


def test_error_shows_the_path_as_typed(tmp_path, capsys, monkeypatch):
    (tmp_path / "sub").mkdir()
    _exp(tmp_path / "sub", **{"gamma: 0.1": "gamma: 0"})
    monkeypatch.chdir(tmp_path)
    line = _err(capsys, ["backtest", "sub/exp.yaml"])
    assert line == "mmsim: error: sub/exp.yaml: field 'policy.gamma': must be > 0, got 0"


def test_bad_yaml_is_one_line(tmp_path, capsys):
    p = tmp_path / "exp.yaml"
    p.write_text("data: {kind: synthetic\npolicy: [\n")
    line = _err(capsys, ["backtest", str(p)])
    assert line.startswith(f"mmsim: error: {p}: not valid YAML: ")
    assert " at line " in line


def test_model_market_policy_parameters_are_checked(tmp_path, capsys):
    p = _exp(tmp_path, MODEL_MARKET, "mm.yaml")
    line = _err(capsys, ["backtest", str(p), "--set", "strategies.inv.policy.gamma=0"])
    assert line == (f"mmsim: error: {p}: field 'strategies.inv.policy.gamma': must be > 0, "
                    f"got 0 (from --set strategies.inv.policy.gamma=0)")
    p2 = _exp(tmp_path, MODEL_MARKET, "mm2.yaml", **{"name: symmetric": "name: glft"})
    line = _err(capsys, ["backtest", str(p2)])
    assert line == (f"mmsim: error: {p2}: field 'strategies.sym.match_spread_of': policy "
                    f"'glft' has no 'half_spread_px' parameter to match")


def test_bad_configs_fail_before_importing_any_kernel(tmp_path):
    replay = _exp(tmp_path, **{"gamma: 0.1": "gamma: 0"})
    inst = _exp(tmp_path, name="i.yaml", **{"tick_size: 0.01": "tick_size: 0"})
    mm = _exp(tmp_path, MODEL_MARKET, "mm.yaml", **{"gamma: 0.1": "gamma: -1"})
    code = textwrap.dedent(f"""
        import json, sys
        from mmsim.cli import main
        rcs = [main(["backtest", {str(replay)!r}]), main(["backtest", {str(inst)!r}]),
               main(["backtest", {str(replay)!r}, "--set", "policy.name=nope"]),
               main(["backtest", {str(mm)!r}])]
        print(json.dumps([rcs, sorted(m for m in sys.modules if m in {KERNEL_MODULES!r})]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    rcs, loaded = json.loads(r.stdout.splitlines()[-1])
    assert rcs == [2, 2, 2, 2], r.stderr
    assert loaded == [], f"kernel modules imported before the config error: {loaded}"
    assert len(r.stderr.splitlines()) == 4 and "must be > 0" in r.stderr


# ------------------------------------------------------------------------ accepted values
def test_set_accepts_1e6_for_an_integer_field(tmp_path):
    p = _exp(tmp_path)
    cfg = load_config(p, ["latency.entry_nanos=1e6", "latency.response_nanos=2.5E5",
                          "policy.gamma=1e-3"])
    assert cfg.latency.entry_nanos == 1_000_000 and isinstance(cfg.latency.entry_nanos, int)
    assert cfg.latency.response_nanos == 250_000
    assert cfg.policy.params()["gamma"] == pytest.approx(0.001)
    with pytest.raises(ConfigError, match=r"field 'latency.entry_nanos': must be a whole "
                                          r"number, got 1500000.5"):
        load_config(p, ["latency.entry_nanos=1.5000005e6"])


def test_yaml_file_reads_1e6_as_a_number(tmp_path):
    p = _exp(tmp_path, **{"entry_nanos: 200000": "entry_nanos: 1e6",
                          "gamma: 0.1": "gamma: 1e-1"})
    cfg = load_config(p)
    assert cfg.latency.entry_nanos == 1_000_000 and cfg.policy.params()["gamma"] == 0.1


def test_choice_names_and_numeric_strings_are_read():
    cfg = config_from_dict({"data": {"kind": "synthetic"},
                            "policy": {"name": "fixed_spread", "spread_bps": "2", "ref": "wmid"},
                            "hedger": {"name": "threshold", "threshold": 3, "tif": "ioc"}})
    vec = get_policy("fixed_spread").param_vector(cfg.policy.params())
    assert vec.tolist() == [2.0, 0.0, 1.0, 1.0]
    assert get_hedger("threshold").param_vector(cfg.hedger.params())[4] == 2.0


def test_shipped_experiments_validate_and_match_spread_of_needs_no_half_spread(tmp_path):
    for exp in sorted((REPO / "experiments").glob("*.yaml")):
        if "mode: model_market" in exp.read_text():
            load_model_market_config(exp)
        else:
            load_config(exp)
    cfg = load_model_market_config(REPO / "experiments" / "as2008.yaml")
    assert cfg.strategies["symmetric_g01"].policy.params() == {"order_qty": 1}
    p = _exp(tmp_path, MODEL_MARKET, "mm.yaml", **{"match_spread_of: inv, ": ""})
    with pytest.raises(ConfigError, match="field 'strategies.sym.policy.half_spread_px': "
                                          "required by 'symmetric'"):
        load_model_market_config(p)


# ------------------------------------------------------------------------ the registries
def test_param_vector_raises_a_config_error_naming_the_field():
    spec = get_policy("glft")
    with pytest.raises(ConfigError) as exc:
        spec.param_vector({"gamma": 0.1, "k": 1.5, "A": 0}, "strategies.g.policy")
    assert str(exc.value) == "field 'strategies.g.policy.A': must be > 0, got 0"


def test_unknown_policy_is_a_config_error_without_quotes():
    with pytest.raises(UnknownKernelError) as exc:
        get_policy("nope")
    assert isinstance(exc.value, ConfigError) and isinstance(exc.value, KeyError)
    assert str(exc.value).startswith("unknown policy 'nope' (known: ")


def test_registries_import_no_kernel():
    code = ("import sys, mmsim.policies.registry as p, mmsim.hedgers.registry, mmsim.config, "
            "mmsim.kernels, mmsim.policies.params, mmsim.hedgers.params;"
            "print('numba' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.stdout.strip() == "False", r.stderr


def test_glft_calibrated_state_layout_matches_the_kernel():
    from mmsim.policies import nb as pnb
    from mmsim.policies.params import GC_RING_CAP, GR_SIZE, GS_LAYOUT

    assert pnb.GS is GS_LAYOUT.index and pnb.GC_STATE_SIZE == GS_LAYOUT.size
    assert GS_LAYOUT.size == pnb.GS.ring + GR_SIZE * GC_RING_CAP
    spec = get_policy("glft_calibrated")
    assert spec.state_size == pnb.GC_STATE_SIZE and spec.kernel is pnb.glft_calibrated_nb


def _edge_values(spec) -> list[dict[str, float]]:
    """Parameter sets at the edges of every declared domain (each bound hit in turn)."""
    base = {}
    for k, p in spec.params.items():
        if p.default is not None:
            base[k] = p.default
        elif p.gt is not None:
            base[k] = p.gt + 1.0
        else:
            base[k] = p.ge if p.ge is not None else 1.0
    sets = [base]
    for k, p in spec.params.items():
        for v in (p.gt + 1e-9 if p.gt is not None else None, p.ge, p.le,
                  p.lt - 1e-9 if p.lt is not None else None,
                  *(c for _, c in p.choices)):
            if v is not None:
                sets.append({**base, k: v})
    return sets


@pytest.mark.parametrize("name", sorted({s.name for s in _POLICIES.values()
                                         if not s.name.startswith("test_")}))
def test_policy_kernels_are_finite_at_the_edges_of_their_domains(name):
    from mmsim.contracts import CTX_SIZE, QUOTE_SIZE, Ctx, Quote

    spec = get_policy(name)
    ctx = np.zeros(CTX_SIZE)
    ctx[Ctx.BEST_BID_TICK], ctx[Ctx.BEST_ASK_TICK] = 9999.0, 10001.0
    ctx[Ctx.MID_TICK] = ctx[Ctx.WMID_TICK] = 10000.0
    ctx[Ctx.TICK_SIZE], ctx[Ctx.LOT_SIZE] = 0.01, 1.0
    ctx[Ctx.POSITION], ctx[Ctx.VOL_TICK], ctx[Ctx.TIME_TO_HORIZON_S] = 3.0, 2.0, 100.0
    for values in _edge_values(spec):
        out = np.zeros(QUOTE_SIZE)
        pvec = spec.param_vector(values)
        try:  # a policy with a prepare hook builds its state from its parameters
            state = spec.initial_state(pvec)
        except ValueError:
            continue  # refused at resolve time, with the field named (a ConfigError)
        assert spec.kernel(ctx, pvec, state, out) == 0
        for n, at in ((Quote.N_BID, Quote.BID0), (Quote.N_ASK, Quote.ASK0)):
            if out[n]:
                assert math.isfinite(out[at]) and out[at + 1] >= 1, (values, out)


@pytest.mark.parametrize("name", sorted({s.name for s in _HEDGERS.values()}))
def test_hedger_kernels_are_finite_at_the_edges_of_their_domains(name):
    from mmsim.contracts import CTX_SIZE, HEDGE_OUT_SIZE, Ctx
    from mmsim.hedgers.params import TS

    spec = get_hedger(name)
    ctx = np.zeros(CTX_SIZE)
    ctx[Ctx.BEST_BID_TICK], ctx[Ctx.BEST_ASK_TICK] = 9999.0, 10001.0
    ctx[Ctx.POSITION], ctx[Ctx.TIME_S] = 40.0, 100.0
    for values in _edge_values(spec):
        out = np.zeros(HEDGE_OUT_SIZE)
        st = spec.state_vector()
        st[TS.since_s] = 0.0  # threshold: the excess began at t = 0 (harmless for others)
        assert spec.kernel(ctx, spec.param_vector(values), st, out) == 0
        if out[0]:
            assert out[3] >= 1 and out[2] == -1.0, (values, out)


def test_every_parameter_declares_unit_doc_and_a_domain():
    for spec in {*_POLICIES.values(), *_HEDGERS.values()}:
        if spec.name.startswith("test_"):
            continue
        for k, p in spec.params.items():
            assert p.doc, f"{spec.name}.{k} has no doc"
            assert p.domain() != "any number" or k in ("bid_tick", "ask_tick"), \
                f"{spec.name}.{k} has no declared domain"


# ------------------------------------------------------------------------ data errors
def test_data_error_shows_the_path_as_given():
    e = DataError("sub/x.csv", 3, "price", "bad\nvalue")
    assert str(e) == "sub/x.csv: row 3, field 'price': bad value"


def test_latency_series_csv_accepts_a_bom_and_blank_lines(tmp_path):
    from mmsim.models.latency import load_latency_series

    body = "request_ts,exchange_ts,response_ts\n10,15,19\n20,26,30\n"
    plain = load_latency_series(_exp(tmp_path, body, "a.csv"))
    p = tmp_path / "b.csv"
    p.write_bytes(("\ufeff" + body.replace("\n", "\r\n") + "\r\n\r\n").encode())
    got = load_latency_series(p)
    assert {a: v.tolist() for a, v in got.items()} == {a: v.tolist() for a, v in plain.items()}
    assert got[0].tolist() == [[10, 5.0, 4.0], [20, 6.0, 4.0]]
    p.write_bytes(("\ufeff" + body.replace("20,26", "\n20,x")).encode())
    with pytest.raises(DataError) as exc:
        load_latency_series(p)
    assert (exc.value.row, exc.value.field) == (4, "exchange_ts")
