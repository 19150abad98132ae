"""Python-first policies (issue 11): a decorated kernel named by its import path in YAML, run,
swept on worker processes, debugged un-jitted; ``--set policy.name=`` starts afresh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mmsim
from mmsim.config import ConfigError, apply_overrides, config_from_dict, read_experiment_yaml
from mmsim.contracts import CTX_SIZE, QUOTE_SIZE, Ctx, Quote
from mmsim.kernels import Param, Params
from mmsim.policies.registry import get_policy

REPO = Path(__file__).parents[1]
EXAMPLE = REPO / "examples" / "custom_policy.yaml"


def test_the_example_kernel_runs_un_jitted_on_a_hand_built_context():
    from examples.custom_policy import join_touch

    spec = join_touch.mmsim_spec
    assert get_policy("join_touch") is spec and list(spec.params) == ["order_qty", "skew_ticks"]
    ctx = mmsim.make_ctx(best_bid_tick=10_000, best_ask_tick=10_004, position=4)
    out = np.zeros(QUOTE_SIZE)
    rc = join_touch.py_func(ctx, spec.param_vector({"skew_ticks": 0.5, "order_qty": 3}),
                            np.zeros(16), out)
    assert rc == 0
    assert (out[Quote.N_BID], out[Quote.N_ASK]) == (1.0, 1.0)
    assert (out[Quote.BID0], out[Quote.BID0 + 1]) == (9_998.0, 3.0)  # 2 ticks lower
    assert (out[Quote.ASK0], out[Quote.ASK0 + 1]) == (10_002.0, 3.0)
    # the compiled kernel gives the same quotes
    out2 = np.zeros(QUOTE_SIZE)
    join_touch(ctx, spec.param_vector({"skew_ticks": 0.5, "order_qty": 3}), np.zeros(16), out2)
    np.testing.assert_array_equal(out, out2)
    with pytest.raises(ConfigError, match="skew_ticks"):
        spec.param_vector({"skew_ticks": -1})


def test_a_yaml_names_the_policy_by_import_path_and_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    run = mmsim.backtest(EXAMPLE, out=tmp_path / "run", cache_dir=tmp_path / "cache",
                         overrides=["data.synthetic.n_events=60000"])
    assert run.config["policy"]["name"] == "examples.custom_policy:join_touch"
    assert len(run.fills) > 0 and (run.fills["liquidity"] == "maker").all()
    assert run.metrics["max_abs_position"] <= 20


def test_a_custom_policy_sweeps_on_worker_processes(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    res = mmsim.run_sweep(EXAMPLE, grid=["policy.skew_ticks=0,0.2"], jobs=2,
                          out=tmp_path / "sweep", cache_dir=tmp_path / "cache",
                          overrides=["data.synthetic.n_events=40000"], progress=False)
    t = res.table
    assert list(t["status"]) == ["ok", "ok"] and (t["n_fills"] > 0).all()
    assert res.meta["executor"]["kind"] != "inline"


def test_import_path_errors_say_what_is_wrong():
    for name, msg in (("no_such_pkg.mod:f", "cannot import 'no_such_pkg.mod'"),
                      ("examples.custom_policy:nope", "has no 'nope'"),
                      ("examples.custom_policy:P", "is not a policy kernel")):
        with pytest.raises(ConfigError, match=msg):
            get_policy(name)
    with pytest.raises(ConfigError, match="import path"):
        get_policy("not_registered_anywhere")


def test_the_decorator_registers_with_declared_parameters():
    decl = Params("TinyParams", size=Param(2.0, "lots", "quote size", integer=True, ge=1))

    @mmsim.policy(decl, name="tiny_test_policy")
    def tiny(ctx, params, state, out):
        """A one-line doc."""
        out[Quote.N_BID] = 0.0
        return 0

    spec = get_policy("tiny_test_policy")
    assert spec is tiny.mmsim_spec and spec.doc == "A one-line doc."
    assert spec.param_vector({}).tolist() == [2.0]
    assert spec.kernel(np.zeros(CTX_SIZE), spec.param_vector({}), np.zeros(16),
                       np.zeros(QUOTE_SIZE)) == 0


def test_set_policy_name_starts_from_the_new_policys_defaults():
    raw = read_experiment_yaml(REPO / "experiments" / "lobster_amzn_as.yaml")
    assert raw["policy"]["name"] == "avellaneda_stoikov" and "gamma" in raw["policy"]
    out = apply_overrides(raw, ["policy.spread_bps=3", "policy.name=fixed_spread"])
    assert out["policy"] == {"name": "fixed_spread", "spread_bps": 3}
    cfg = config_from_dict(out)
    assert cfg.policy.name == "fixed_spread"
    # the same name keeps the file's parameters
    same = apply_overrides(raw, ["policy.name=avellaneda_stoikov"])
    assert same["policy"] == raw["policy"]


def test_read_ctx_names_every_field():
    ctx = mmsim.make_ctx(best_bid_tick=99, best_ask_tick=101, position=-2, cash=5.5)
    d = mmsim.read_ctx(ctx)
    assert d["best_bid_tick"] == 99 and d["mid_tick"] == 100 and d["spread_tick"] == 2
    assert d["position"] == -2 and d["cash"] == 5.5 and d["bids"] == [] and d["orders"] == []
    assert d["instruments"][0]["mid_tick"] == 100 and d["instruments"][0]["position"] == -2
    ctx[Ctx.DEPTH0:Ctx.DEPTH0 + 2] = (99, 7)
    assert mmsim.read_ctx(ctx)["bids"] == [(99.0, 7.0)]
    with pytest.raises(KeyError, match="not a ctx field"):
        mmsim.make_ctx(best_bidd=1)
    with pytest.raises(ValueError, match="float64"):
        mmsim.read_ctx(np.zeros(3))


# ---- the depth block is filled only for a kernel that reads it ---------------------------------
def _depth_recorder(ctx, params, state, out):
    """Records the context's best bid depth level and the best bid; quotes nothing."""
    state[0] = ctx[Ctx.DEPTH0]  # price of the best bid level
    state[1] = ctx[Ctx.DEPTH0 + 1]  # its quantity
    state[2] = ctx[Ctx.DEPTH0 + 2]  # the second level's price
    state[3] = ctx[Ctx.BEST_BID_TICK]
    out[Quote.N_BID] = 0.0
    out[Quote.N_ASK] = 0.0
    return 0


mmsim.policy(name="test_depth_reader")(_depth_recorder)
mmsim.policy(name="test_depth_blind", reads_depth=False)(_depth_recorder)


@pytest.mark.parametrize("name, reads", [("test_depth_reader", True),
                                         ("test_depth_blind", False)])
def test_the_depth_block_is_filled_only_for_a_kernel_that_declares_it(name, reads):
    from mmsim.enums import EventKind as K
    from tests.engine_harness import Harness

    assert get_policy(name).reads_depth is reads
    h = Harness(policy=name)
    assert int(h.engine.cfg["ctx_depth"]) == int(reads)
    h.feed([(0, K.ADD, 1, 9999, 100, 1), (0, K.ADD, 1, 9990, 30, 3),
            (0, K.ADD, -1, 10001, 100, 2), (450, K.ADD, 1, 9998, 5, 4)], final=True)
    st = h.engine.pstate
    assert st[3] == 9999.0  # the top of book is there either way
    if reads:
        assert (st[0], st[1], st[2]) == (9999.0, 100.0, 9990.0)  # (9998 came after the last)
    else:
        assert np.isnan(st[0]) and np.isnan(st[1]) and np.isnan(st[2])


def test_every_built_in_kernel_declares_it_reads_no_depth_and_the_flag_pickles():
    import pickle

    from mmsim.hedgers.params import BUILTIN_HEDGERS
    from mmsim.policies.cartea import CARTEA_POLICIES
    from mmsim.policies.params import BUILTIN_POLICIES

    builtins = (*BUILTIN_POLICIES, *CARTEA_POLICIES, *BUILTIN_HEDGERS)
    assert len(builtins) == 14
    for spec in builtins:
        assert spec.reads_depth is False, spec.name
    spec = get_policy("test_depth_blind")
    assert pickle.loads(pickle.dumps(spec)).reads_depth is False
    assert pickle.loads(pickle.dumps(get_policy("avellaneda_stoikov"))).reads_depth is False
