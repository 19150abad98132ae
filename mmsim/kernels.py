"""Kernel declarations and the registry of policies and hedgers (no numba here).

A policy or hedger kernel (signature :data:`mmsim.contracts.POLICY_SIG`) reads three float64
arrays: ``params``, its own ``state`` and the engine's ``ctx``. Each kernel *declares* its
``params`` and ``state`` layouts once, in a numba-free module, and both sides derive from that
declaration:

* the registry entry (:class:`KernelSpec`): the checks of an experiment's values (type,
  range, named choices), the defaults, :meth:`KernelSpec.param_vector` and
  :meth:`KernelSpec.state_vector`;
* the kernel's indices: :attr:`Params.index` / :attr:`Layout.index` are ``NamedTuple``
  *instances* of ints, which numba folds to compile-time constants exactly as it does
  :data:`mmsim.contracts.Ctx` (``params[AS.gamma]``).

Example (``mmsim/policies/params.py``)::

    AS_PARAMS = Params(
        "AvellanedaStoikovParams",
        gamma=Param(None, "1/(price·order)", "risk aversion", gt=0),
        k=Param(None, "1/price", "decay of the fill intensity with depth", gt=0),
        ref=Param.choice(Ref, "mid", "reference price: mid or size-weighted mid"),
    )
    AS = AS_PARAMS.index            # AS.gamma == 0, AS.k == 1, AS.ref == 2
    AVELLANEDA_STOIKOV = KernelSpec(
        "avellaneda_stoikov", "mmsim.policies.nb:avellaneda_stoikov_nb", AS_PARAMS,
        doc="Avellaneda & Stoikov (2008) ...", kind="policy",
        errors=Errors("AsErrors", NO_VOL=(1, "no volatility estimate yet")),  # if it had any
    )

and in the kernel (``mmsim/policies/nb.py``): ``gamma = params[AS.gamma]``,
``if int(params[AS.ref]) == Ref.WMID: ...``, ``return OK``. A state layout is declared the
same way: ``GS_LAYOUT = Layout("GlftCalibratedState", A=Slot(unit="1/s", doc=...), ...,
ring=Slot(size=4 * GC_RING_CAP))``, ``GS = GS_LAYOUT.index``, ``state[GS.A]``. Adding,
removing or reordering a field moves the parameter vector and the kernel's indices together.
(The compiled-kernel cache must be keyed on the declaration modules too:
:mod:`mmsim._jitcache`.)

A kernel's non-zero return codes are declared next to it (:class:`Errors`) and turned into a
sentence by :meth:`KernelSpec.describe_error`.

One registry (:data:`REGISTRY`, a :class:`KernelRegistry`) holds both kinds, ``"policy"`` and
``"hedger"``, in separate tables; :mod:`mmsim.policies.registry` and
:mod:`mmsim.hedgers.registry` are its per-kind front ends. Built-in kernels are named as
``"module:attribute"`` strings and imported on first use of :attr:`KernelSpec.kernel`:
importing this module, the declarations or the registries compiles nothing.
"""

from __future__ import annotations

import importlib
import keyword
import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from mmsim.config import NUMBER_TEXT, ConfigError, fmt_number, show_value

#: the kinds of kernel the registry holds
KINDS = ("policy", "hedger")
#: the return code of a kernel call that succeeded (any other value is an error code)
OK = 0
#: every kernel's state vector is at least this long (kernels registered without a layout,
#: e.g. test recorders, may use the first 16 slots)
MIN_STATE_SIZE = 16


def _index_tuple(typename: str, names: tuple[str, ...], values: tuple[int, ...]) -> Any:
    """A ``NamedTuple`` instance ``typename(name0=values[0], ...)`` of ints.

    Raises
    ------
    ValueError
        If a name is not a Python identifier, is a keyword or starts with ``_`` (a
        ``NamedTuple`` field cannot), or appears twice.
    """
    for n in names:
        if not n.isidentifier() or keyword.iskeyword(n) or n.startswith("_"):
            raise ValueError(f"{typename}: {n!r} cannot be a field name (a Python identifier "
                             f"not starting with '_')")
    if len(set(names)) != len(names):
        raise ValueError(f"{typename}: a field name appears twice in {list(names)}")
    cls = NamedTuple(typename, [(n, int) for n in names])  # type: ignore[misc]
    return cls(*values)


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Param:
    """The declaration of one kernel parameter.

    Attributes
    ----------
    default : float or None
        Value used when the experiment does not give one; ``None`` = required. For a choice
        parameter, the int code of the default choice.
    unit : str
        Unit, e.g. ``"lots"``, ``"1/price"``, ``"s"`` (documentation).
    doc : str
        One line: what the parameter does.
    gt, ge, lt, le : float or None
        Bounds: the value must be ``> gt``, ``>= ge``, ``< lt``, ``<= le`` (None = no bound).
    integer : bool
        The value must be a whole number (``10`` or ``10.0``, not ``10.5``).
    choices : tuple of (str, int)
        If not empty, the parameter is an enumeration: the value is given by a choice's name
        (case-insensitive, ``tif: market``) or its int code (``tif: 3``) and the kernel
        receives the code. Build it with :meth:`choice` from a ``NamedTuple`` instance of
        ints (:data:`mmsim.enums.TimeInForce`, :data:`mmsim.policies.params.Ref`), so that
        names and codes are mapped in one place and the kernel compares with the same named
        constant (``tif == TimeInForce.IOC``).

    Every value must be a finite real number (bools, ``nan`` and ``inf`` are refused);
    numeric strings (``"1e-3"``) are read as numbers.
    """

    default: float | None = None
    unit: str = ""
    doc: str = ""
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    integer: bool = False
    choices: tuple[tuple[str, int], ...] = ()

    @classmethod
    def choice(
        cls,
        enum: Any,
        default: str | None,
        doc: str,
        allowed: tuple[str, ...] | None = None,
        unit: str = "",
    ) -> Param:
        """An enumeration parameter whose choices are named constants of ``enum``.

        Parameters
        ----------
        enum : NamedTuple instance of int
            E.g. :data:`mmsim.enums.TimeInForce`; its field names, lower-cased, are the names
            a config may give.
        default : str or None
            Name of the default choice (case-insensitive); ``None`` = required.
        doc : str
            One line: what the parameter does.
        allowed : tuple of str, optional
            The names (fields of ``enum``) this kernel accepts, in the order error messages
            list them; all of them by default.
        unit : str

        Raises
        ------
        ValueError
            If ``allowed`` or ``default`` names no field of ``enum``.
        """
        table = {k.lower(): int(v) for k, v in enum._asdict().items()}
        names = tuple(n.lower() for n in (allowed if allowed is not None else enum._fields))
        unknown = [n for n in names if n not in table]
        if unknown or not names:
            raise ValueError(f"{type(enum).__name__} has no choice {unknown or 'at all'} "
                             f"(has: {', '.join(table)})")
        if default is not None and default.lower() not in names:
            raise ValueError(f"default {default!r} is not one of {', '.join(names)}")
        return cls(
            default=None if default is None else table[default.lower()],
            unit=unit,
            doc=doc,
            choices=tuple((n, table[n]) for n in names),
        )

    @property
    def required(self) -> bool:
        """True if the experiment must give a value (no default)."""
        return self.default is None

    def choice_name(self, code: float) -> str:
        """The name of the choice whose code is ``code``.

        Raises
        ------
        ValueError
            If the parameter has no choices or ``code`` is none of them.
        """
        for n, c in self.choices:
            if float(c) == float(code):
                return n
        raise ValueError(f"{fmt_number(float(code))} is not a choice ({self.domain()})")

    def domain(self) -> str:
        """The valid range in words, e.g. ``"> 0"``, ``"whole number >= 1"``, ``"mid (0) or
        wmid (1)"``, ``"any number"``."""
        if self.choices:
            return " or ".join(f"{n} ({fmt_number(float(v))})" for n, v in self.choices)
        parts = [f"{op} {fmt_number(float(b))}"
                 for op, b in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                 if b is not None]
        kind = "whole number" if self.integer else "number"
        return f"{kind} {' and '.join(parts)}" if parts else f"any {kind}"

    def check(self, value: Any) -> float:
        """The float64 value of ``value``, checked against this declaration (a choice's name
        gives its code).

        Raises
        ------
        ValueError
            One line saying what is wrong, e.g. ``"must be > 0, got 0"``,
            ``"must be a number, got 'abc'"``, ``"must be mid (0) or wmid (1), got 'vwap'"``.
        """
        given = value
        if isinstance(value, str):
            names = {n.lower(): v for n, v in self.choices}
            key = value.strip().lower()
            if key in names:
                return float(names[key])
            if not NUMBER_TEXT.match(value):
                if self.choices:
                    raise ValueError(f"must be {self.domain()}, got {show_value(given)}")
                raise ValueError(f"must be a number, got {show_value(given)}")
            value = float(value.replace("_", ""))
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"must be a number, got {show_value(given)}")
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"must be finite, got {show_value(given)}")
        if self.choices:
            if v not in {float(c) for _, c in self.choices}:
                raise ValueError(f"must be {self.domain()}, got {show_value(given)}")
            return v
        if self.integer and not v.is_integer():
            raise ValueError(f"must be a whole number, got {show_value(given)}")
        for op, b, ok in (
            (">", self.gt, lambda b: v > b),
            (">=", self.ge, lambda b: v >= b),
            ("<", self.lt, lambda b: v < b),
            ("<=", self.le, lambda b: v <= b),
        ):
            if b is not None and not ok(b):
                raise ValueError(f"must be {op} {fmt_number(float(b))}, got {show_value(given)}")
        return v


def _as_param(p: Param | float | None) -> Param:
    if isinstance(p, Param):
        return p
    if p is None:
        return Param()
    return Param(default=float(p))


class Params:
    """The ordered parameters of one kernel: the single declaration of its ``params`` array.

    Parameters
    ----------
    typename : str, positional only
        Name of the index ``NamedTuple`` type (e.g. ``"AvellanedaStoikovParams"``).
    **fields : Param (or a plain default float / None)
        The parameters in kernel order: field ``i`` is ``params[i]``. A plain float is a
        default and ``None`` a required parameter, both without bounds.

    Attributes
    ----------
    fields : dict[str, Param]
        In kernel order.
    index : NamedTuple instance of int
        ``index.<name>`` is the parameter's position in the vector (``0, 1, ...`` in
        declaration order); numba folds it to a constant in a kernel.

    Raises
    ------
    ValueError
        If a name cannot be a ``NamedTuple`` field (see :func:`_index_tuple`).
    """

    __slots__ = ("typename", "fields", "index")

    def __init__(self, typename: str = "Params", /, **fields: Param | float | None) -> None:
        self.typename = typename
        self.fields: dict[str, Param] = {str(n): _as_param(p) for n, p in fields.items()}
        names = tuple(self.fields)
        self.index = _index_tuple(typename, names, tuple(range(len(names))))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_params, (self.typename, self.fields))

    def __len__(self) -> int:
        return len(self.fields)

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __repr__(self) -> str:
        return f"Params({self.typename!r}, {', '.join(self.fields)})"


def _rebuild_params(typename: str, fields: dict[str, Param]) -> Params:
    return Params(typename, **fields)


# --------------------------------------------------------------------------- state layout
@dataclass(frozen=True)
class Slot:
    """One named region of a kernel's state vector.

    Attributes
    ----------
    size : int
        Number of float64 slots (>= 1): 1 for a scalar, more for an array or a ring.
    init : float
        Value of every slot of the region at the start of a run (``nan`` allowed).
    unit : str
        Unit of the value(s) (documentation).
    doc : str
        One line: what the region holds.
    """

    size: int = 1
    init: float = 0.0
    unit: str = ""
    doc: str = ""


class Layout:
    """The named regions of a float64 array, in order: a kernel's ``state`` layout, or the
    fields of one record in a ring held in the state.

    Parameters
    ----------
    typename : str, positional only
        Name of the index ``NamedTuple`` type (e.g. ``"GlftCalibratedState"``).
    **slots : Slot (or an int size)
        The regions in order; region ``name`` starts at ``index.name``.

    Attributes
    ----------
    slots : dict[str, Slot]
    index : NamedTuple instance of int
        First position of each region (the running sum of the sizes before it).
    size : int
        Total length: the sum of the sizes.
    init : tuple of float
        The initial values of the leading slots, up to the last one whose initial value is
        not 0 (the rest of the vector starts at 0): ``()`` when everything starts at 0.

    Raises
    ------
    ValueError
        If a size is below 1, or a name cannot be a ``NamedTuple`` field.
    """

    __slots__ = ("typename", "slots", "index", "size", "init")

    def __init__(self, typename: str = "Layout", /, **slots: Slot | int) -> None:
        self.typename = typename
        self.slots: dict[str, Slot] = {
            str(n): s if isinstance(s, Slot) else Slot(size=int(s)) for n, s in slots.items()
        }
        starts = []
        at = 0
        values: list[float] = []
        for n, s in self.slots.items():
            if int(s.size) != s.size or s.size < 1:
                raise ValueError(f"{typename}.{n}: size must be a whole number >= 1, "
                                 f"got {s.size!r}")
            starts.append(at)
            at += int(s.size)
            values.extend([float(s.init)] * int(s.size))
        self.index = _index_tuple(typename, tuple(self.slots), tuple(starts))
        self.size = at
        last = max((i + 1 for i, v in enumerate(values) if v != 0.0), default=0)
        self.init = tuple(values[:last])

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_layout, (self.typename, self.slots))

    def __repr__(self) -> str:
        return f"Layout({self.typename!r}, {', '.join(self.slots)}; size {self.size})"


def _rebuild_layout(typename: str, slots: dict[str, Slot]) -> Layout:
    return Layout(typename, **slots)


# --------------------------------------------------------------------------- error codes
class Errors:
    """The named non-zero return codes of one kernel.

    Parameters
    ----------
    typename : str, positional only
        Name of the index ``NamedTuple`` type.
    **codes : (int, str)
        ``NAME=(code, message)``: the kernel returns ``index.NAME`` (a whole number other
        than 0, which means success), and :meth:`KernelSpec.describe_error` shows
        ``message``.

    Attributes
    ----------
    index : NamedTuple instance of int
        ``index.NAME`` is the code (folded to a constant in a kernel).
    messages : dict[int, tuple[str, str]]
        code → (name, message).

    Raises
    ------
    ValueError
        If a code is 0, not an int or used twice.
    """

    __slots__ = ("typename", "codes", "index", "messages")

    def __init__(self, typename: str = "Errors", /, **codes: tuple[int, str]) -> None:
        self.typename = typename
        self.codes = {str(n): (c, str(m)) for n, (c, m) in codes.items()}
        self.messages: dict[int, tuple[str, str]] = {}
        for n, (c, m) in self.codes.items():
            if isinstance(c, bool) or not isinstance(c, numbers.Integral) or c == 0:
                raise ValueError(f"{typename}.{n}: an error code is a whole number other than "
                                 f"0, got {c!r}")
            if int(c) in self.messages:
                raise ValueError(f"{typename}: code {c} is used by both "
                                 f"{self.messages[int(c)][0]} and {n}")
            self.messages[int(c)] = (n, m)
        self.index = _index_tuple(typename, tuple(self.codes),
                                  tuple(int(c) for c, _ in self.codes.values()))

    @classmethod
    def from_mapping(cls, codes: Mapping[int, str], typename: str = "Errors") -> Errors:
        """Errors from ``{code: message}``; each is named ``E<code>`` (``E1``; ``E_1`` for -1).

        Raises
        ------
        ValueError
            As :class:`Errors`.
        """
        return cls(typename, **{f"E{c}" if c >= 0 else f"E_{-c}": (c, m)
                                for c, m in codes.items()})

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_errors, (self.typename, self.codes))

    def __len__(self) -> int:
        return len(self.codes)

    def __repr__(self) -> str:
        return f"Errors({self.typename!r}, {', '.join(self.codes)})"


def _rebuild_errors(typename: str, codes: dict[str, tuple[int, str]]) -> Errors:
    return Errors(typename, **codes)


NO_ERRORS = Errors("NoErrors")


# --------------------------------------------------------------------------- the spec
class KernelSpec:
    """A registered policy or hedger: its kernel and its declarations (immutable).

    Parameters
    ----------
    name : str
    kernel : numba dispatcher or str
        Compiled with ``POLICY_SIG`` (or ``HEDGER_SIG``), or a ``"module:attribute"`` string
        naming one (imported on first access of :attr:`kernel`).
    params : Params, or mapping of str to Param (or to a plain default float / None)
        The parameter declaration, in kernel order. A mapping is turned into a
        :class:`Params`.
    state : Layout, optional
        The state layout; without one the state is :data:`MIN_STATE_SIZE` zeros (or
        ``state_init`` / ``state_size``).
    state_init : tuple of float, optional
        Initial values of the leading state slots; only for a kernel without ``state``
        (with one, it is ``state.init``).
    doc : str
        What the kernel does, with its source (paper, MODELS.md section).
    aliases : tuple of str
        Other names the registry accepts.
    state_size : int, optional
        Length of the state vector; only for a kernel without ``state``. Default, and
        minimum: :data:`MIN_STATE_SIZE` (or the layout's size if larger).
    errors : Errors or mapping of int to str, optional
        The kernel's non-zero return codes (:class:`Errors`, or ``{code: message}``).
    kind : str
        ``"policy"`` (default) or ``"hedger"``: the registry table it may be added to.
    prepare : callable, optional
        ``prepare(params) -> state_init``: for a kernel whose initial state depends on its
        parameters (a table computed once, e.g. the Cartea–Jaimungal depth table). Called
        with the float64 parameter vector (:meth:`param_vector`) when a run is resolved; its
        float64[n] result (n ≥ ``len(state.init)``, if a layout is declared) is the run's
        whole initial state, and the state is ``max(state_size, n)`` long
        (:meth:`initial_state`). It may raise ``ValueError`` for parameters it cannot serve.
        A module-level function, so the spec pickles. Without one, the initial state is
        ``state_init`` (every kernel registered before this hook).
    reads_depth : bool
        Whether the kernel reads the context's depth block (``ctx[Ctx.DEPTH0:Ctx.ORDERS0]``,
        the five best levels of each side). Default True; a kernel declaring False gets NaN
        there, and a run whose policy and hedger both declare False skips the level scan
        each decision costs (on a 0.01-tick book the five levels span hundreds of columns).
        Every built-in kernel declares False.

    Attributes
    ----------
    params : dict[str, Param]
        In kernel order; ``list(spec.params)`` are the names.
    declaration : Params
    index : NamedTuple instance of int
        ``declaration.index``: each parameter's position in :meth:`param_vector`.
    state : Layout or None
    state_index : NamedTuple instance of int or None
    state_init : tuple of float
    state_size : int
    errors : Errors
    prepare : callable or None
    reads_depth : bool
    defaults : dict[str, float or None]
        Name → default (``None`` = required).

    Raises
    ------
    ValueError
        If ``kind`` is not one of :data:`KINDS`, or ``state`` is given together with
        ``state_init`` or ``state_size``.
    """

    __slots__ = ("name", "_kernel", "declaration", "params", "index", "state", "state_index",
                 "state_init", "doc", "aliases", "state_size", "errors", "kind", "prepare",
                 "reads_depth")

    def __init__(
        self,
        name: str,
        kernel: object,
        params: Params | Mapping[str, Param | float | None],
        state_init: tuple[float, ...] | None = None,
        doc: str = "",
        aliases: tuple[str, ...] = (),
        state_size: int | None = None,
        *,
        state: Layout | None = None,
        errors: Errors | Mapping[int, str] | None = None,
        kind: str = "policy",
        prepare: Any = None,
        reads_depth: bool = True,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        decl = params if isinstance(params, Params) else Params(
            f"{_camel(name)}Params", **dict(params))
        if state is not None:
            if state_init is not None or state_size is not None:
                raise ValueError(f"{name}: give state (a Layout) or state_init/state_size, "
                                 f"not both")
            init, size = state.init, max(MIN_STATE_SIZE, state.size)
        else:
            init = tuple(float(x) for x in (state_init or ()))
            size = max(int(state_size) if state_size is not None else MIN_STATE_SIZE,
                       len(init))
        if errors is None:
            errs = NO_ERRORS
        elif isinstance(errors, Errors):
            errs = errors
        else:
            errs = Errors.from_mapping(errors, f"{_camel(name)}Errors")
        for k, v in (
            ("name", name), ("_kernel", kernel), ("declaration", decl),
            ("params", decl.fields), ("index", decl.index), ("state", state),
            ("state_index", None if state is None else state.index),
            ("state_init", init), ("doc", doc), ("aliases", tuple(aliases)),
            ("state_size", size), ("errors", errs), ("kind", kind), ("prepare", prepare),
            ("reads_depth", bool(reads_depth)),
        ):
            object.__setattr__(self, k, v)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"KernelSpec is immutable (cannot set {key!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        if self.state is not None:
            args: tuple[Any, ...] = (self.name, self._kernel, self.declaration, None, self.doc,
                                     self.aliases, None)
        else:
            args = (self.name, self._kernel, self.declaration, self.state_init, self.doc,
                    self.aliases, self.state_size)
        return (_rebuild_spec, (args, self.state, self.errors, self.kind, self.prepare,
                                self.reads_depth))

    def __repr__(self) -> str:
        return f"KernelSpec({self.name!r}, kind={self.kind!r}, params={list(self.params)})"

    @property
    def kernel(self) -> Any:
        """The numba dispatcher (imported and compiled for its declared signature, or loaded
        from the disk cache, on first access when registered as a ``"module:attribute"``
        string: only the kernels a run uses are compiled)."""
        k = self._kernel
        if isinstance(k, str):
            mod, _, attr = k.partition(":")
            k = getattr(importlib.import_module(mod), attr)
            from mmsim._jitcache import compiled  # numba only now

            k = compiled(k)  # a @declared kernel compiles for its signature on first use
            object.__setattr__(self, "_kernel", k)
        return k

    @property
    def defaults(self) -> dict[str, float | None]:
        return {n: p.default for n, p in self.params.items()}

    def check_params(
        self, values: Mapping[str, Any], *, require: bool = True, optional: tuple[str, ...] = ()
    ) -> tuple[dict[str, float], list[tuple[str, str]]]:
        """Check ``values`` against the declarations, without raising.

        Parameters
        ----------
        values : mapping of str to Any
            Parameter name → value as given (number, numeric string, or a choice's name).
        require : bool
            Report required parameters that are missing.
        optional : tuple of str
            Required parameters that may be missing anyway (set later by the caller).

        Returns
        -------
        (dict[str, float], list[tuple[str, str]])
            The checked float values of the parameters given, and ``(name, problem)`` for each
            unknown, invalid or missing parameter, in that order.
        """
        errors: list[tuple[str, str]] = []
        out: dict[str, float] = {}
        for k in values:
            if k not in self.params:
                errors.append((str(k), f"unknown parameter of {self.name!r} "
                                       f"(known: {', '.join(self.params) or 'none'})"))
        for k, p in self.params.items():
            if k in values:
                try:
                    out[k] = p.check(values[k])
                except ValueError as e:
                    errors.append((k, str(e)))
            elif require and p.required and k not in optional:
                errors.append((k, f"required by {self.name!r} ({p.unit or 'no unit'}, "
                                  f"{p.domain()})"))
        return out, errors

    def param_vector(self, values: Mapping[str, Any], where: str | None = None) -> np.ndarray:
        """Return the float64 parameter vector for ``values``: entry ``spec.index.<name>``
        holds parameter ``name`` (given, else its default; a choice as its int code).

        Parameters
        ----------
        values : mapping of str to Any
        where : str, optional
            Location of the values in the config, for messages; default: the kind
            (``"policy"`` or ``"hedger"``).

        Raises
        ------
        mmsim.config.ConfigError
            On an unknown parameter name, a missing required one or a value out of its
            declared range, e.g. ``field 'policy.gamma': must be > 0, got 0`` (every problem,
            joined with ``; ``).
        """
        where = self.kind if where is None else where
        checked, errors = self.check_params(values)
        if errors:
            raise ConfigError("; ".join(f"field '{where}.{k}': {m}" for k, m in errors))
        out = np.empty(len(self.params), dtype=np.float64)
        for k, p in self.params.items():
            i = getattr(self.index, k)
            out[i] = checked[k] if k in checked else float(p.default)  # type: ignore[arg-type]
        return out

    def state_vector(self, size: int | None = None) -> np.ndarray:
        """Return a fresh state vector (``state_size`` long, or ``size``) holding
        ``state_init`` in its leading slots and 0 elsewhere."""
        size = self.state_size if size is None else size
        st = np.zeros(max(size, len(self.state_init)), dtype=np.float64)
        st[: len(self.state_init)] = self.state_init
        return st

    def initial_state(self, params: np.ndarray) -> np.ndarray:
        """The initial state of a run with the parameter vector ``params``: ``prepare(params)``
        if the spec has a ``prepare`` hook, else ``state_init``; float64, at least
        ``state_size`` long (zeros after the values given).

        Parameters
        ----------
        params : float64[n_params]
            :meth:`param_vector`'s result.

        Raises
        ------
        ValueError
            From ``prepare``, or if its result is not one-dimensional or is shorter than the
            declared layout's ``init``.
        """
        if self.prepare is None:
            return self.state_vector()
        init = np.asarray(self.prepare(np.asarray(params, dtype=np.float64)), dtype=np.float64)
        if init.ndim != 1 or init.shape[0] < len(self.state_init):
            raise ValueError(f"{self.kind} {self.name!r}: prepare() must return a float64[n] "
                             f"state with n >= {len(self.state_init)}, got shape {init.shape}")
        st = np.zeros(max(self.state_size, init.shape[0]), dtype=np.float64)
        st[: init.shape[0]] = init
        return st

    def describe_error(self, code: float) -> str:
        """The kernel's return code ``code`` in words, for the error a run raises, e.g.
        ``"policy 'x' returned error 1 (REF_UNDEFINED): reference price undefined"``.

        Parameters
        ----------
        code : int or float
            What the kernel returned (the engine may keep it as a float64).

        Returns
        -------
        str
            One line naming the kind, the kernel, the code and, for a declared code, its name
            and message; an undeclared code is said to be undeclared (with the declared
            ones); 0 is "no error".
        """
        head = f"{self.kind} {self.name!r} returned"
        try:
            c = int(code)
            whole = float(code) == c
        except (TypeError, ValueError, OverflowError):
            return f"{head} {code!r}, which is not an error code (a whole number)"
        if not whole:
            return f"{head} {code!r}, which is not an error code (a whole number)"
        if c == 0:
            return f"{head} 0 (no error)"
        if c in self.errors.messages:
            n, m = self.errors.messages[c]
            return f"{head} error {c} ({n}): {m}"
        known = ", ".join(f"{k} ({n})" for k, (n, _) in sorted(self.errors.messages.items()))
        return f"{head} error {c}, which it does not declare (declared: {known or 'none'})"


def _rebuild_spec(args: tuple[Any, ...], state: Layout | None, errors: Errors,
                  kind: str, prepare: Any = None, reads_depth: bool = True) -> KernelSpec:
    return KernelSpec(*args, state=state, errors=errors, kind=kind, prepare=prepare,
                      reads_depth=reads_depth)


def _camel(name: str) -> str:
    out = "".join(w[:1].upper() + w[1:] for w in name.replace("-", "_").split("_") if w)
    return out if out.isidentifier() else "Kernel"


# --------------------------------------------------------------------------- the registry
class UnknownKernelError(ConfigError, KeyError):
    """No policy (or hedger) of that name; a :class:`~mmsim.config.ConfigError` and a
    ``KeyError``, whose message reads without the quotes ``KeyError`` adds."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


#: the entry-point group of each kind: a package offers kernels under these names
ENTRY_POINT_GROUPS = {"policy": "mmsim.policies", "hedger": "mmsim.hedgers"}
#: the numba-free module that registers each kind's built-in kernels
_BUILTINS = {"policy": "mmsim.policies.registry", "hedger": "mmsim.hedgers.registry"}


class KernelRegistry:
    """Name → :class:`KernelSpec`, one table per kind (``"policy"``, ``"hedger"``).

    A kind's built-in kernels are registered on the first look-up of that kind (by
    importing its numba-free registry module; no kernel is compiled).
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, KernelSpec]] = {k: {} for k in KINDS}

    def _kind(self, kind: str) -> dict[str, KernelSpec]:
        try:
            table = self._tables[kind]
        except KeyError:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}") from None
        importlib.import_module(_BUILTINS[kind])
        return table

    def table(self, kind: str) -> dict[str, KernelSpec]:
        """The live name (and alias) → spec table of ``kind`` (without loading built-ins)."""
        return self._tables[kind]

    def register(self, spec: KernelSpec, kind: str | None = None) -> None:
        """Add ``spec`` under its name and aliases to the table of ``spec.kind`` (an entry of
        the same name is replaced).

        Raises
        ------
        ValueError
            If ``kind`` is given and is not ``spec.kind`` (e.g. a policy spec registered as
            a hedger).
        """
        if kind is not None and kind != spec.kind:
            raise ValueError(f"{spec.name!r} is declared as a {spec.kind}, not a {kind} "
                             f"(KernelSpec(..., kind={kind!r}))")
        for n in (spec.name, *spec.aliases):
            self._tables[spec.kind][n] = spec

    def get(self, kind: str, name: str) -> KernelSpec:
        """The spec of ``kind`` registered as ``name`` (or an alias).

        Raises
        ------
        UnknownKernelError
            (a ConfigError and a KeyError) If no kernel of that kind has that name; the
            message lists the known ones: ``unknown policy 'nope' (known: ...)``.
        ValueError
            If ``kind`` is not one of :data:`KINDS`.
        """
        table = self._kind(kind)
        try:
            return table[name]
        except (KeyError, TypeError):
            pass
        spec = self._external(kind, name) if isinstance(name, str) else None
        if spec is None:
            raise UnknownKernelError(
                f"unknown {kind} {show_value(name)} (known: {', '.join(self.names(kind))}; "
                f"or an import path 'package.module:function', or an entry point of the "
                f"'{ENTRY_POINT_GROUPS[kind]}' group)"
            )
        return spec

    def _external(self, kind: str, name: str) -> KernelSpec | None:
        """A kernel not registered yet: the import path ``module:attr`` (the module is
        imported, from the working directory too, and its attribute is a
        :class:`KernelSpec` or a kernel decorated with :func:`mmsim.custom.policy`), or an
        entry point of :data:`ENTRY_POINT_GROUPS`; registered under ``name`` as well.

        Raises
        ------
        UnknownKernelError
            If the module cannot be imported, has no such attribute, or the attribute is not
            a kernel of ``kind``.
        """
        obj = None
        if ":" in name:
            mod, _, attr = name.partition(":")
            import os
            import sys

            if os.getcwd() not in sys.path:  # a script's own folder, as `python -m` would
                sys.path.append(os.getcwd())
            try:
                module = importlib.import_module(mod)
            except ImportError as e:
                raise UnknownKernelError(f"{kind} {name!r}: cannot import {mod!r}: {e}") from None
            if not hasattr(module, attr):
                raise UnknownKernelError(f"{kind} {name!r}: module {mod!r} has no {attr!r}")
            obj = getattr(module, attr)
        else:
            from importlib.metadata import entry_points

            eps = [e for e in entry_points(group=ENTRY_POINT_GROUPS[kind]) if e.name == name]
            if eps:
                obj = eps[0].load()
        if obj is None:
            return None
        spec = obj if isinstance(obj, KernelSpec) else getattr(obj, "mmsim_spec", None)
        if not isinstance(spec, KernelSpec) or spec.kind != kind:
            raise UnknownKernelError(
                f"{kind} {name!r} is not a {kind} kernel: decorate it with "
                f"@mmsim.{kind}(...) (mmsim.custom) or give a KernelSpec of kind {kind!r}")
        self._tables[kind].setdefault(spec.name, spec)
        self._tables[kind][name] = spec
        return spec

    def names(self, kind: str) -> list[str]:
        """The registered names of ``kind`` (aliases left out), sorted."""
        return sorted({s.name for s in self._kind(kind).values()})

    def specs(self, kind: str) -> list[KernelSpec]:
        """The registered specs of ``kind``, each once, sorted by name."""
        return sorted({id(s): s for s in self._kind(kind).values()}.values(),
                      key=lambda s: s.name)


#: the registry of every policy and hedger
REGISTRY = KernelRegistry()
