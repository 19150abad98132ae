"""Where numba keeps mmsim's compiled kernels.

numba invalidates a cached kernel only when *its own* source file changes, not when a kernel
it calls from another module does (the engine inlines the book, model and policy kernels).
So mmsim keys its cache folder on a hash of its kernel sources: any change to them gives a
fresh folder, and an unchanged package reuses the compiled kernels across processes (sweep
workers, a second run). The folder is
``$MMSIM_NUMBA_CACHE_DIR`` (else ``$NUMBA_CACHE_DIR``, else ``~/.cache/mmsim/numba``) /
``<16 hex of the source hash>``. Import this module before any ``@njit(cache=True)``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numba
from llvmlite import binding as llvm
from llvmlite import ir as llvmir
from numba.core import types
from numba.core.codegen import JITCodeLibrary
from numba.core.compiler import Compiler
from numba.core.registry import CPUDispatcher

_ROOT = Path(__file__).resolve().parent
_VOIDPTR = llvmir.IntType(8).as_pointer()


#: modules (paths below mmsim/) that kernels read constants from without importing numba:
#: the enums, the record dtypes and the kernels' parameter and state declarations
_CONSTANT_MODULES = {"enums.py", "dtypes.py", "contracts.py", "kernels.py",
                     "policies/params.py", "hedgers/params.py", "signals/spec.py",
                     "policies/cartea.py"}


#: a kernel module: it imports numba, or this module's decorators, at its top level (an
#: import inside a function, as the runner's and the sweep's cache checks do, does not make
#: one: editing them must not discard the compiled kernels)
_IMPORTS_NUMBA = re.compile(
    rb"^(import numba|from numba|from mmsim._jitcache|import mmsim._jitcache)", re.MULTILINE)


def source_digest() -> str:
    """sha256 (16 hex) over the relative paths and bytes of the kernel sources: every
    ``mmsim/**/*.py`` that imports numba or this module, plus the modules whose constants
    kernels fold."""
    h = hashlib.sha256()
    for p in sorted(_ROOT.rglob("*.py")):
        data = p.read_bytes()
        if p.relative_to(_ROOT).as_posix() in _CONSTANT_MODULES or _IMPORTS_NUMBA.search(data):
            h.update(p.relative_to(_ROOT).as_posix().encode())
            h.update(data)
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    base = (
        os.environ.get("MMSIM_NUMBA_CACHE_DIR")
        or os.environ.get("NUMBA_CACHE_DIR")
        or str(Path.home() / ".cache" / "mmsim" / "numba")
    )
    return Path(base) / source_digest()


CACHE_DIR = cache_dir()
numba.config.CACHE_DIR = str(CACHE_DIR)


def kernel(fn):
    """``@numba.njit(cache=True, _nrt=False, forceinline=False)``, compiled once for the
    argument types it is called with, not once per constant (``forceinline=False`` is set so a
    kernel first compiled from an :func:`inlined` caller does not inherit its
    ``forceinline``).

    numba types a constant argument at a call site from another kernel as a literal
    (``Literal[int](0)``, ``Literal[bool](True)``) and compiles a version of the callee for
    each pattern of constants: the engine's kernels had 135 versions of 60 functions, a third
    of the cold compile. Calls to a ``kernel`` widen literal argument types first
    (:func:`numba.types.unliteral`), so each kernel has one version per real signature (the
    constant folding those versions bought is measured by ``make bench``).
    """
    return _unliteral_calls(numba.njit(cache=True, _nrt=False, forceinline=False)(fn))


def internal(fn):
    """:func:`kernel` for a function only other kernels call: compiled without the CPython
    and C-callable wrappers (``no_cpython_wrapper``, ``no_cfunc_wrapper``), which numba
    otherwise builds, optimises and codegens for every kernel and its signature.

    Calling it from Python raises :class:`TypeError` (numba itself would crash the process:
    there is no wrapper to call); ``.compile(sig)`` still works. On this kind of machine the
    engine's internal kernels without wrappers saved about 3 s of 21 s of LLVM work in a
    serial cold compile (profiled with numba's ``numba:llvm_lock`` events).
    """
    return _wrapperless(fn, forceinline=False)


class _InternalDispatcher(CPUDispatcher):
    """A dispatcher built without the CPython wrapper: a call from Python raises instead of
    jumping to a wrapper that does not exist."""

    def __call__(self, *args, **kws):
        raise TypeError(f"{self.py_func.__module__}.{self.py_func.__qualname__} is an internal "
                        "kernel (built without a CPython wrapper): call it from a kernel")


def _wrapperless(fn, forceinline: bool):
    """``fn`` compiled as a :func:`kernel` (with ``forceinline``) but without the CPython and
    C wrappers, calls from Python refused (:class:`_InternalDispatcher`): the one place
    :func:`internal` and :func:`inlined` build their dispatchers."""
    d = _unliteral_calls(numba.njit(cache=True, _nrt=False, forceinline=forceinline,
                                    no_cpython_wrapper=True, no_cfunc_wrapper=True,
                                    pipeline_class=_LinkOnlyCompiler if _LINK_ONLY
                                    else Compiler)(fn))
    d.__class__ = _InternalDispatcher
    return d


class _LinkOnlyLibrary(JITCodeLibrary):
    """The code library of a kernel only other kernels call: optimised, then handed to its
    callers as LLVM IR, never turned into machine code of its own.

    numba links a callee's optimised module into each caller's and compiles the caller's
    module, callee included, to machine code; the machine code numba also makes of the callee
    alone is run only through its wrappers, which an :func:`internal` or :func:`inlined`
    kernel does not have. This library skips that code generation: the JIT gets a module of
    the library's environment pointers only (its ``NumbaEnv`` globals, which numba fills in
    after lowering), and the cache gets that module's object code beside the IR, so that a
    load from the cache is a numba cached kernel as any other. The callers' machine code is
    the same but for the IR passes numba's code generation of the callee ran on the module it
    then handed on: callgrind counts 218.6 against 217.4 instructions per event
    (``benchmarks/callgrind_events.py``, ``parity``). On this kind of machine the step skipped
    was 2.7 s of a 32 s serial cold compile of the engine (timed per library around numba's
    ``_finalize_specific``). It relies on numba's code-library internals (checked by
    :data:`_LINK_ONLY`; without them, such kernels are compiled as numba does)."""

    def _finalize_final_module(self):
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        env = self._codegen._create_empty_module(self.name + ".env")
        for gv in self._final_module.global_variables:
            if "NumbaEnv" in gv.name and not gv.is_declaration:
                g = llvmir.GlobalVariable(env, _VOIDPTR, name=gv.name)
                g.linkage = "common"
                g.initializer = llvmir.Constant(_VOIDPTR, None)
        env = llvm.parse_assembly(str(env))
        self._env_object = self._codegen._tm.emit_object(env)
        self._codegen._add_module(env)
        self._codegen._engine.finalize_object()
        self._finalized = True

    def serialize_using_object_code(self):
        self._ensure_finalized()
        return (self.name, "object",
                (self._env_object, self._get_module_for_linking().as_bitcode()))


#: numba's code library has the internals :class:`_LinkOnlyLibrary` overrides and calls
_LINK_ONLY = all(hasattr(JITCodeLibrary, a) for a in (
    "_finalize_final_module", "_finalize_dynamic_globals", "_verify_declare_only_symbols",
    "_get_module_for_linking", "serialize_using_object_code", "enable_object_caching"))


class _LinkOnlyCompiler(Compiler):
    """numba's compiler pipeline, lowering into a :class:`_LinkOnlyLibrary`."""

    def compile_extra(self, func):
        if self.state.library is None:
            lib = _LinkOnlyLibrary(self.state.targetctx.codegen(), func.__qualname__)
            lib.enable_object_caching()  # (as numba's lowering does for the library it makes)
            self.state.library = lib
        return super().compile_extra(func)


def _unliteral_calls(d):
    """``d``, typed at call sites from other kernels with literal argument types widened."""
    template = d.get_call_template

    def get_call_template(args, kws):
        return template(tuple(types.unliteral(a) for a in args),
                        {k: types.unliteral(v) for k, v in kws.items()})

    d.get_call_template = get_call_template
    return d


def inlined(fn):
    """``@numba.njit(cache=True, _nrt=False, forceinline=True)``: compiled once, on its own,
    and inlined by LLVM into every kernel that calls it (the ``alwaysinline`` attribute);
    ``fn`` is a Python function or a :func:`kernel` whose twin this is; literal argument
    types are widened at call sites as for :func:`kernel`; built without wrappers and not
    callable from Python, as an :func:`internal` kernel.

    For the per-event path, where a call of some twenty array arguments (each passes its data
    pointer, shape and strides) costs about as many instructions as the work. numba's own
    ``inline="always"`` copies and types the callee's IR again at every call site: about 12 s
    of a serial cold compile of the engine on this kind of machine (profiled with numba's
    compile events), mostly in :func:`copy.deepcopy` of the callee's blocks, each with its own
    copy of the scope. ``_market_event`` keeps ``inline="always"``: inlined by LLVM it cost
    11 % more instructions per event (``benchmarks/callgrind_events.py``).

    A twin of a kernel gets its own qualified name (``<name>_inline``): numba keys its disk
    cache on the function's file, qualified name and bytecode, so a twin of the same name
    would load the kernel's cached code, which LLVM does not inline. Calls from an inlined
    function to kernels that are not compiled yet do not inherit ``forceinline`` because
    :func:`kernel` sets it to False.
    """
    import types as pytypes

    f = getattr(fn, "py_func", fn)
    if f is not fn:  # (the docstring comes with the code object)
        src = f
        f = pytypes.FunctionType(src.__code__, src.__globals__, src.__name__ + "_inline",
                                 src.__defaults__, src.__closure__)
        f.__qualname__ = src.__qualname__ + "_inline"
    return _wrapperless(f, forceinline=True)


def engine_is_cached() -> bool:
    """True if the replay engine's compiled kernels (the event path ``run_nb`` and the
    scheduler ``_run_internal``) are already in :data:`CACHE_DIR` (processes started now load
    them instead of compiling)."""
    return CACHE_DIR.is_dir() and all(any(CACHE_DIR.rglob(f"nb.{k}-*.nbi"))
                                      for k in ("run_nb", "_run_internal"))


def compile_elsewhere(module: str, plan: str):
    """Start a child process that compiles, in order, each ``(dispatcher, argument types)``
    pair of the sequence ``module.plan`` into the disk cache (:data:`CACHE_DIR`), for this
    process to load instead of compiling; ``None`` (nothing started) with one CPU or
    ``MMSIM_SERIAL_COMPILE=1``.

    The caller waits for it (``.wait()``) before it needs the kernels. The child's output is
    discarded: if it fails, a kernel it did not write is not in the cache and the caller
    compiles it. It leaves with ``os._exit`` once the last kernel is written (the cache files
    are closed by then), skipping the interpreter's teardown.
    """
    if (os.cpu_count() or 1) < 2 or os.environ.get("MMSIM_SERIAL_COMPILE", "") not in ("", "0"):
        return None
    import subprocess
    import sys

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_ROOT.parent), env.get("PYTHONPATH", "")) if p)
    env["MMSIM_NUMBA_CACHE_DIR"] = str(CACHE_DIR.parent)  # the same folder, whatever set it
    # os._exit once the kernels are written: the interpreter's teardown of numba's objects
    # (about 0.5-1 s) is time the caller would spend waiting
    code = (f"import os\nimport {module} as m\nfor fn, args in m.{plan}:\n"
            "    fn.compile(args)\nos._exit(0)")
    try:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def declared(sig):
    """``@numba.njit(cache=True)`` for a policy or hedger kernel of the declared signature
    ``sig`` (:data:`mmsim.contracts.POLICY_SIG`), compiled (or loaded from the disk cache)
    for it on first use, :attr:`mmsim.kernels.KernelSpec.kernel`, not when its module is
    imported: a run compiles only the policy and hedger it uses."""

    def wrap(fn):
        d = numba.njit(cache=True)(fn)
        d.mmsim_signature = sig
        return d

    return wrap


def compiled(dispatcher):
    """``dispatcher`` compiled for its declared signature (:func:`declared`), if it has one
    and is not yet: a first-class function value of that type needs it."""
    sig = getattr(dispatcher, "mmsim_signature", None)
    if sig is not None and sig.args not in dispatcher.overloads:
        dispatcher.compile(sig)
    return dispatcher

