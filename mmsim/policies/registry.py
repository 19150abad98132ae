"""Policy registry: name → :class:`~mmsim.kernels.KernelSpec` (kernel, declared parameters,
state layout, error codes).

The policy front end of the one kernel registry (:data:`mmsim.kernels.REGISTRY`, kind
``"policy"``). The built-in policies are declared once in :mod:`mmsim.policies.params` (each
parameter's default, type, range, unit and doc; the kernels' indices derive from the same
declaration) and registered here. The experiment config checks every ``policy:`` entry
against these declarations when it is loaded (:mod:`mmsim.config`), so a bad value stops
``mmsim backtest`` and every sweep point before any data is read or kernel compiled.

The built-in kernels are named as ``"module:attribute"`` strings and imported on first use of
:attr:`KernelSpec.kernel`: importing this module (as config validation does) compiles
nothing. Register a custom policy with :func:`register_policy`; its kernel (a numba dispatcher
or a ``"module:attribute"`` string) must be compiled with the declared signature, e.g.
``@numba.njit(mmsim.contracts.POLICY_SIG, cache=True)``, and read its parameters through the
index of its :class:`~mmsim.kernels.Params` declaration.
"""

from __future__ import annotations

from mmsim.kernels import (
    REGISTRY,
    KernelSpec,
    Layout,
    Param,
    Params,
    Slot,
    UnknownKernelError,
)
from mmsim.policies.cartea import CARTEA_POLICIES
from mmsim.policies.params import BUILTIN_POLICIES

__all__ = ["KernelSpec", "Layout", "Param", "Params", "Slot", "UnknownKernelError",
           "get_policy", "policy_names", "register_policy"]

#: the live name (and alias) → spec table of the policies
_POLICIES = REGISTRY.table("policy")


def register_policy(spec: KernelSpec) -> None:
    """Add a policy to the registry (by ``spec.name`` and its aliases; an entry of the same
    name is replaced).

    Raises
    ------
    ValueError
        If ``spec`` is declared as a hedger (``spec.kind != "policy"``).
    """
    REGISTRY.register(spec, "policy")


def get_policy(name: str) -> KernelSpec:
    """Look up a policy by name (or alias).

    Raises
    ------
    UnknownKernelError
        (a ConfigError and a KeyError) If no policy has that name; the message lists the
        known ones.
    """
    return REGISTRY.get("policy", name)


def policy_names() -> list[str]:
    """The registered policy names (aliases left out), sorted."""
    return REGISTRY.names("policy")


for _spec in (*BUILTIN_POLICIES, *CARTEA_POLICIES):
    register_policy(_spec)
del _spec
