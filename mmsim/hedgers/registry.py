"""Hedger registry: name → :class:`~mmsim.kernels.KernelSpec` (``HEDGER_SIG`` kernel, declared
parameters, state layout, error codes).

The hedger front end of the one kernel registry (:data:`mmsim.kernels.REGISTRY`, kind
``"hedger"``). The built-in hedgers are declared once in :mod:`mmsim.hedgers.params` and
registered here; their parameters are checked when the experiment is loaded. Kernels are
imported on first use of ``spec.kernel``: importing this module compiles nothing. A custom
hedger is a ``KernelSpec(..., kind="hedger")`` added with :func:`register_hedger`.
"""

from __future__ import annotations

from mmsim.hedgers.params import BUILTIN_HEDGERS
from mmsim.kernels import REGISTRY, KernelSpec

__all__ = ["get_hedger", "hedger_names", "register_hedger"]

#: the live name (and alias) → spec table of the hedgers
_HEDGERS = REGISTRY.table("hedger")


def register_hedger(spec: KernelSpec) -> None:
    """Add a hedger to the registry (by ``spec.name`` and its aliases; an entry of the same
    name is replaced).

    Raises
    ------
    ValueError
        If ``spec`` is not declared as a hedger (``KernelSpec(..., kind="hedger")``).
    """
    REGISTRY.register(spec, "hedger")


def get_hedger(name: str) -> KernelSpec:
    """Look up a hedger by name (or alias).

    Raises
    ------
    mmsim.kernels.UnknownKernelError
        (a ConfigError and a KeyError) If no hedger has that name; the message lists the
        known ones.
    """
    return REGISTRY.get("hedger", name)


def hedger_names() -> list[str]:
    """The registered hedger names (aliases left out), sorted."""
    return REGISTRY.names("hedger")


for _spec in BUILTIN_HEDGERS:
    register_hedger(_spec)
del _spec
