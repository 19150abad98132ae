"""Policies and hedgers declare their parameters once (:mod:`mmsim.kernels`).

The declaration (``Params`` / ``Layout`` / ``Errors``) is the single source of the registry's
checks, defaults and parameter vector and of the kernels' indices; enum parameters are named
choices; a kernel's return code reads as a named error; one registry holds both kinds.
"""

from __future__ import annotations

import inspect
import math
import pickle
import re
import shutil
from pathlib import Path

import numba as nb
import numpy as np
import pytest

from mmsim import _jitcache
from mmsim.config import ConfigError, config_from_dict
from mmsim.contracts import CTX_SIZE, POLICY_SIG, QUOTE_SIZE, Ctx, Quote
from mmsim.enums import TimeInForce
from mmsim.hedgers import params as hparams
from mmsim.hedgers.registry import get_hedger, hedger_names, register_hedger
from mmsim.kernels import (
    OK,
    REGISTRY,
    Errors,
    KernelSpec,
    Layout,
    Param,
    Params,
    Slot,
    UnknownKernelError,
)
from mmsim.policies import params as pparams
from mmsim.policies.cartea import CARTEA_POLICIES
from mmsim.policies.registry import get_policy, policy_names, register_policy

KERNEL_MODULES = {"policy": ("mmsim.policies.nb", "mmsim.policies.cartea_nb"),
                  "hedger": ("mmsim.hedgers.nb",)}
BUILTIN = [("policy", s.name) for s in (*pparams.BUILTIN_POLICIES, *CARTEA_POLICIES)] + \
          [("hedger", s.name) for s in hparams.BUILTIN_HEDGERS]


def _spec(kind: str, name: str) -> KernelSpec:
    return REGISTRY.get(kind, name)


# ------------------------------------------------------------------ one declaration, two users
@pytest.mark.parametrize(("kind", "name"), BUILTIN)
def test_the_index_tuple_follows_the_declaration_order(kind, name):
    spec = _spec(kind, name)
    assert spec.index._fields == tuple(spec.params)
    assert tuple(spec.index) == tuple(range(len(spec.params)))
    assert spec.param_vector({k: p.default if p.default is not None else 1.0
                              for k, p in spec.params.items()}).shape == (len(spec.params),)
    if spec.state is not None:
        starts = np.cumsum([0] + [s.size for s in spec.state.slots.values()])[:-1]
        assert spec.state_index._fields == tuple(spec.state.slots)
        assert tuple(spec.state_index) == tuple(int(x) for x in starts)
        assert spec.state_size >= spec.state.size
        st = spec.state_vector()
        for n, s in spec.state.slots.items():
            at = getattr(spec.state_index, n)
            np.testing.assert_array_equal(st[at:at + s.size], s.init)


def _reads(func, array: str, seen: set | None = None) -> set[tuple[str, str]]:
    """``(constant, field)`` for every ``array[CONST.field`` in ``func`` and the numba helpers of
    its module that it calls."""
    seen = set() if seen is None else seen
    py = func.py_func
    if py in seen:
        return set()
    seen.add(py)
    src = inspect.getsource(py)
    found = set(re.findall(rf"\b{array}\[(\w+)\.(\w+)", src))
    for n in py.__code__.co_names:
        g = py.__globals__.get(n)
        if hasattr(g, "py_func") and g.py_func.__module__ == py.__module__:
            found |= _reads(g, array, seen)
    return found


@pytest.mark.parametrize(("kind", "name"), BUILTIN)
def test_every_kernel_reads_its_arrays_through_its_own_declaration(kind, name):
    spec = _spec(kind, name)
    kernel = spec.kernel
    module = inspect.getmodule(kernel.py_func)
    assert module.__name__ in KERNEL_MODULES[kind]
    for array, index in (("params", spec.index), ("state", spec.state_index)):
        for const, field in _reads(kernel, array):
            assert getattr(module, const) is index, f"{name} reads {array} via {const}"
            assert field in index._fields
    src = inspect.getsource(kernel.py_func)
    assert not re.search(r"\b(params|state)\[\d", src), f"{name} indexes with a literal"


def test_the_kernel_modules_export_the_declared_indices():
    from mmsim.hedgers import nb as hnb
    from mmsim.policies import nb as pnb

    assert pnb.AS is pparams.AVELLANEDA_STOIKOV.index and pnb.AS.gamma == 0
    assert pnb.GS is pparams.GLFT_CALIBRATED.state_index
    assert pnb.GC_STATE_SIZE == get_policy("glft_calibrated").state_size
    assert hnb.TH is get_hedger("threshold").index and hnb.TS.since_s == 0
    assert math.isnan(get_hedger("threshold").state_vector()[hnb.TS.since_s])


_TEST_SRC = """
def kernel(ctx, params, state, out):
    out[0] = params[P.x]
    out[1] = params[P.y]
    state[S.count] += 1.0
    return OK
"""


def _test_kernel(decl: Params, layout: Layout) -> KernelSpec:
    """A test-only policy whose kernel reads ``P`` and ``S`` as module globals, as the
    built-in kernels do (numba folds them at compile time)."""
    g = {"P": decl.index, "S": layout.index, "OK": OK}
    exec(compile(_TEST_SRC, "<test kernel>", "exec"), g)
    return KernelSpec("test_decl", nb.njit(POLICY_SIG)(g["kernel"]), decl, state=layout)


def test_a_declaration_change_moves_the_vector_and_the_kernel_indices():
    x = Param(1.0, "ticks", "x", ge=0)
    y = Param(2.0, "ticks", "y", ge=0)
    count = Slot(doc="calls")
    before = _test_kernel(Params("Before", x=x, y=y), Layout("BeforeState", count=count))
    after = _test_kernel(Params("After", w=Param(7.0, "", "new", ge=0), x=x, y=y),
                         Layout("AfterState", last=Slot(init=math.nan), count=count))
    assert (before.index.x, after.index.x, after.index.y) == (0, 1, 2)
    assert (before.state_index.count, after.state_index.count) == (0, 1)

    vb = before.param_vector({"x": 3})
    va = after.param_vector({"x": 3})
    assert vb.tolist() == [3.0, 2.0] and va.tolist() == [7.0, 3.0, 2.0]
    for spec, vec in ((before, vb), (after, va)):
        out = np.zeros(QUOTE_SIZE)
        st = spec.state_vector()
        assert spec.kernel(np.zeros(CTX_SIZE), vec, st, out) == OK
        assert out[:2].tolist() == [3.0, 2.0], spec
        assert st[spec.state_index.count] == 1.0
    assert math.isnan(after.state_vector()[after.state_index.last])
    assert after.state_init[0] != after.state_init[0] and before.state_init == ()


def test_declarations_refuse_bad_names_and_sizes():
    with pytest.raises(ValueError, match="cannot be a field name"):
        Params("Bad", **{"_x": Param(1.0)})
    with pytest.raises(ValueError, match="cannot be a field name"):
        Layout("Bad", **{"lambda": Slot()})
    with pytest.raises(ValueError, match="size must be a whole number >= 1"):
        Layout("Bad", ring=Slot(size=0))
    with pytest.raises(ValueError, match="state .* or state_init/state_size, not both"):
        KernelSpec("test_x", "m:f", {}, state_init=(1.0,), state=Layout("S", a=Slot()))


def test_specs_pickle_with_their_declarations():
    for kind, name in BUILTIN:
        spec = _spec(kind, name)
        back = pickle.loads(pickle.dumps(spec))
        assert back.index == spec.index and back.index._fields == spec.index._fields
        assert back.state_index == spec.state_index and back.kind == spec.kind
        np.testing.assert_array_equal(back.state_vector(), spec.state_vector())


# ------------------------------------------------------------------ enum parameters
def test_enum_parameters_take_names_and_map_them_to_the_named_codes():
    fs = get_policy("fixed_spread")
    assert fs.params["ref"].choices == (("mid", pparams.Ref.MID), ("wmid", pparams.Ref.WMID),
                                        ("micro", pparams.Ref.MICRO))
    for given, code in (("wmid", pparams.Ref.WMID), ("WMID", pparams.Ref.WMID),
                        (" mid ", pparams.Ref.MID), (1, pparams.Ref.WMID)):
        vec = fs.param_vector({"spread_bps": 2, "ref": given})
        assert vec[pparams.FS.ref] == code
    th = get_hedger("threshold")
    assert th.param_vector({"threshold": 3, "tif": "ioc"})[hparams.TH.tif] == TimeInForce.IOC
    assert th.param_vector({"threshold": 3})[hparams.TH.tif] == TimeInForce.MARKET
    assert th.params["tif"].choice_name(TimeInForce.IOC) == "ioc"
    cfg = config_from_dict({"data": {"kind": "synthetic"},
                            "policy": {"name": "glft", "gamma": 0.1, "k": 1, "A": 1,
                                       "ref": "wmid"},
                            "hedger": {"name": "threshold", "threshold": 3, "tif": "IOC"}})
    assert get_policy("glft").param_vector(cfg.policy.params())[pparams.GL.ref] == 1.0
    assert th.param_vector(cfg.hedger.params())[hparams.TH.tif] == TimeInForce.IOC


@pytest.mark.parametrize(
    ("kind", "name", "values", "message"),
    [
        ("policy", "fixed_spread", {"spread_bps": 2, "ref": "vwap"},
         "field 'policy.ref': must be mid (0) or wmid (1) or micro (2), got 'vwap'"),
        ("policy", "fixed_spread", {"spread_bps": 2, "ref": 3},
         "field 'policy.ref': must be mid (0) or wmid (1) or micro (2), got 3"),
        ("hedger", "threshold", {"threshold": 1, "tif": "gtc"},
         "field 'hedger.tif': must be market (3) or ioc (2) or fok (4), got 'gtc'"),
        ("hedger", "threshold", {"threshold": 1, "tif": "post_only"},
         "field 'hedger.tif': must be market (3) or ioc (2) or fok (4), got 'post_only'"),
    ],
)
def test_unknown_enum_names_are_refused_on_one_line(kind, name, values, message):
    with pytest.raises(ConfigError) as exc:
        _spec(kind, name).param_vector(values)
    assert str(exc.value) == message and "\n" not in str(exc.value)


def test_the_kernel_compares_with_the_named_choice():
    ctx = np.zeros(CTX_SIZE)
    ctx[Ctx.BEST_BID_TICK], ctx[Ctx.BEST_ASK_TICK] = 9990.0, 10010.0
    ctx[Ctx.MID_TICK], ctx[Ctx.WMID_TICK] = 10000.0, 10004.0
    ctx[Ctx.TICK_SIZE], ctx[Ctx.LOT_SIZE] = 0.01, 1.0
    spec = get_policy("symmetric")
    for ref, centre in (("mid", 10000.0), ("wmid", 10004.0)):
        out = np.zeros(QUOTE_SIZE)
        vec = spec.param_vector({"half_spread_px": 0.02, "ref": ref})
        assert spec.kernel(ctx, vec, spec.state_vector(), out) == OK
        assert (out[Quote.BID0], out[Quote.ASK0]) == (centre - 2.0, centre + 2.0)


def test_choice_declarations_must_name_members_of_the_enum():
    with pytest.raises(ValueError, match="no choice"):
        Param.choice(TimeInForce, "market", "x", allowed=("market", "day"))
    with pytest.raises(ValueError, match="default 'gtc' is not one of market, ioc"):
        Param.choice(TimeInForce, "gtc", "x", allowed=("market", "ioc"))
    p = Param.choice(pparams.Ref, None, "x")
    assert p.required and p.domain() == "mid (0) or wmid (1) or micro (2)"


# ------------------------------------------------------------------ error codes
_ERR_SRC = """
def kernel(ctx, params, state, out):
    if np.isnan(ctx[Ctx.MID_TICK]):
        return E.REF_UNDEFINED
    return OK
"""


def test_describe_error_names_the_code():
    errors = Errors("TestErrors", REF_UNDEFINED=(1, "reference price undefined"),
                    NO_BOOK=(2, "no book yet"))
    g = {"E": errors.index, "OK": OK, "np": np, "Ctx": Ctx}
    exec(compile(_ERR_SRC, "<test kernel>", "exec"), g)
    spec = KernelSpec("test_err", nb.njit(POLICY_SIG)(g["kernel"]), {}, errors=errors)
    ctx = np.zeros(CTX_SIZE)
    ctx[Ctx.MID_TICK] = np.nan
    rc = spec.kernel(ctx, spec.param_vector({}), spec.state_vector(), np.zeros(QUOTE_SIZE))
    assert rc == errors.index.REF_UNDEFINED == 1
    want = "policy 'test_err' returned error 1 (REF_UNDEFINED): reference price undefined"
    assert spec.describe_error(rc) == want
    assert spec.describe_error(np.float64(rc)) == want  # the engine keeps the code as a float
    assert spec.describe_error(7) == ("policy 'test_err' returned error 7, which it does not "
                                      "declare (declared: 1 (REF_UNDEFINED), 2 (NO_BOOK))")
    assert spec.describe_error(0) == "policy 'test_err' returned 0 (no error)"
    assert "not an error code" in spec.describe_error(1.5)
    assert "not an error code" in spec.describe_error(float("nan"))

    plain = KernelSpec("test_plain", "m:f", {}, errors={3: "ring full"}, kind="hedger")
    assert plain.describe_error(3) == "hedger 'test_plain' returned error 3 (E3): ring full"
    assert get_hedger("threshold").describe_error(4) == (
        "hedger 'threshold' returned error 4, which it does not declare (declared: none)")


def test_error_declarations_refuse_zero_and_duplicate_codes():
    with pytest.raises(ValueError, match="other than 0"):
        Errors("E", OK_TOO=(0, "fine"))
    with pytest.raises(ValueError, match="code 1 is used by both A and B"):
        Errors("E", A=(1, "a"), B=(1, "b"))


# ------------------------------------------------------------------ one registry, two kinds
def test_the_registry_lists_policies_and_hedgers_separately(monkeypatch):
    assert REGISTRY.names("policy") == policy_names()
    assert REGISTRY.names("hedger") == hedger_names()
    assert {"none", "threshold"} <= set(hedger_names())
    assert {"avellaneda_stoikov", "glft", "fixed_spread"} <= set(policy_names())
    assert not set(policy_names()) & {"none", "threshold"}
    assert all(s.kind == "policy" for s in REGISTRY.specs("policy"))
    assert all(s.kind == "hedger" for s in REGISTRY.specs("hedger"))
    assert get_policy("as") is get_policy("avellaneda_stoikov")  # aliases resolve

    with pytest.raises(UnknownKernelError, match=r"^unknown policy 'threshold' \(known: "):
        get_policy("threshold")
    with pytest.raises(UnknownKernelError,
                       match=r"^unknown hedger 'glft' \(known: cross_delta, none, "):
        get_hedger("glft")
    with pytest.raises(ValueError, match="kind must be one of policy, hedger"):
        REGISTRY.get("strategy", "x")

    hedger = KernelSpec("test_hedger", "m:f", {}, kind="hedger")
    with pytest.raises(ValueError, match="declared as a hedger, not a policy"):
        register_policy(hedger)
    with pytest.raises(ValueError, match="declared as a policy, not a hedger"):
        register_hedger(KernelSpec("test_policy", "m:f", {}))
    monkeypatch.setitem(REGISTRY.table("hedger"), "test_hedger", hedger)
    assert "test_hedger" in hedger_names() and "test_hedger" not in policy_names()
    assert get_hedger("test_hedger") is hedger


# ------------------------------------------------------------------ the compiled-kernel cache
def test_a_declaration_change_gives_a_fresh_kernel_cache(tmp_path, monkeypatch):
    """The kernels fold the declared indices at compile time, so the cache key
    (:func:`mmsim._jitcache.source_digest`) must change when a declaration module does."""
    root = tmp_path / "mmsim"
    shutil.copytree(Path(_jitcache.__file__).parent, root,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(_jitcache, "_ROOT", root)
    for rel in ("kernels.py", "policies/params.py", "hedgers/params.py"):
        before = _jitcache.source_digest()
        with open(root / rel, "a") as f:
            f.write("\n# a declaration change\n")
        assert _jitcache.source_digest() != before, f"mmsim/{rel} is not in the kernel digest"


def test_a_driver_change_keeps_the_kernel_cache(tmp_path, monkeypatch):
    """Modules that only ask the cache (an import of :mod:`mmsim._jitcache` inside a
    function: the runner, the sweep) hold no kernel: editing them keeps the cache key, while
    a kernel module's edit changes it."""
    root = tmp_path / "mmsim"
    shutil.copytree(Path(_jitcache.__file__).parent, root,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(_jitcache, "_ROOT", root)
    for rel in ("runner.py", "sweep.py"):
        assert "    from mmsim._jitcache import" in (root / rel).read_text()
        before = _jitcache.source_digest()
        with open(root / rel, "a") as f:
            f.write("\n# a driver change\n")
        assert _jitcache.source_digest() == before, f"mmsim/{rel} is in the kernel digest"
    before = _jitcache.source_digest()
    with open(root / "engine" / "nb.py", "a") as f:
        f.write("\n# a kernel change\n")
    assert _jitcache.source_digest() != before


def test_an_inlined_twin_has_its_own_cache_entry_and_forceinline():
    """A twin made by ``_jitcache.inlined`` from a kernel must not share the kernel's disk-cache
    entry (it would load code without LLVM's alwaysinline: +11 % instructions per event), and
    only the twin is force-inlined (a kernel compiled from it must not inherit the flag)."""
    from mmsim.book.nb import ladder_change_inline_nb, ladder_change_nb
    from mmsim.engine.nb import _feed, _feed_inline, _ring_pop_apply, _ring_pop_apply_inline

    for k, twin in ((ladder_change_nb, ladder_change_inline_nb), (_feed, _feed_inline),
                    (_ring_pop_apply, _ring_pop_apply_inline)):
        assert twin._cache._cache_file._index_name != k._cache._cache_file._index_name
        assert twin.py_func.__qualname__ == k.py_func.__qualname__ + "_inline"
        assert twin.py_func.__doc__ == k.py_func.__doc__
        assert twin.targetoptions["forceinline"] is True
        assert k.targetoptions["forceinline"] is False


def test_internal_kernels_have_no_python_wrappers_and_the_scheduler_keeps_its_cfunc():
    """Kernels only other kernels call are built without numba's CPython and C wrappers (a
    share of the cold compile); the scheduler ``_run_internal`` must keep its C wrapper, as
    ``run_nb`` receives it as a first-class function value, and Python-facing kernels keep
    both."""
    import mmsim.engine.nb as E
    from mmsim.book.nb import ladder_change_nb

    for k in (E._decide, E._request_arrives, E._risk_gate, E._feed_inline):
        assert k.targetoptions["no_cpython_wrapper"] is True, k
        assert k.targetoptions["no_cfunc_wrapper"] is True, k
        with pytest.raises(TypeError, match="internal kernel"):
            k()  # (numba alone would jump to the missing wrapper and crash the process)
    for k in (E._run_internal, ladder_change_nb):
        assert not k.targetoptions.get("no_cpython_wrapper", False), k
        assert not k.targetoptions.get("no_cfunc_wrapper", False), k


_LINK_ONLY_MODULE = '''
from mmsim._jitcache import inlined, internal, kernel

@internal
def twice(x):
    return 2 * x

@inlined
def plus_one(x):
    return x + 1

@kernel
def outer(x):
    return plus_one(twice(x))
'''

_LINK_ONLY_MODULE2 = '''
from linkonly_mod import plus_one, twice
from mmsim._jitcache import kernel

@kernel
def outer2(x):
    return plus_one(twice(x)) * 10
'''

_LINK_ONLY_CHILD = '''
import sys
sys.path.insert(0, sys.argv[1])
from numba.core import types
import linkonly_mod as m
from mmsim._jitcache import _LinkOnlyLibrary
if sys.argv[2] == "load":  # outer2: compiled now, linking the callees' cached IR
    import linkonly_mod2 as m2
    print(m.outer(20), m2.outer2(20), [len(k.stats.cache_hits) for k in (m.twice, m.plus_one)])
else:
    print(m.outer(20))
    for k in (m.twice, m.plus_one):
        cres = k.overloads[(types.int64,)]
        assert isinstance(cres.library, _LinkOnlyLibrary), cres.library
        ee = cres.library.codegen._engine
        # no machine code of its own: only its callers' linked copies run
        assert not ee.is_symbol_defined(cres.fndesc.mangled_name), cres.fndesc.mangled_name
    print("link-only")
'''


def test_kernels_only_kernels_call_get_no_machine_code_and_reload_from_the_cache(tmp_path):
    """An :func:`~mmsim._jitcache.internal` or :func:`~mmsim._jitcache.inlined` kernel is
    optimised and handed to its callers as IR, never compiled to machine code on its own (a
    share of the cold compile); its callers compute the same, compiled in this process or in
    one that loads the callees from the disk cache (as the engine's cold-compile split does)."""
    import os
    import subprocess
    import sys

    (tmp_path / "linkonly_mod.py").write_text(_LINK_ONLY_MODULE)
    (tmp_path / "linkonly_mod2.py").write_text(_LINK_ONLY_MODULE2)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), MMSIM_NUMBA_CACHE_DIR="")
    env["PYTHONPATH"] = str(Path(_jitcache.__file__).parents[1])

    def run(mode):
        r = subprocess.run([sys.executable, "-c", _LINK_ONLY_CHILD, str(tmp_path), mode],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.split("\n")

    assert run("compile")[:2] == ["41", "link-only"]
    assert run("load")[0] == "41 410 [1, 1]"  # (each callee loaded once, from the cache)
