"""Optional dependencies: which extra of the package a feature needs.

The core install (``pip install mmsim``) replays, sweeps on local processes and writes Parquet;
these features need an extra:

=============  ============================  ===========================================
extra          packages                      for
=============  ============================  ===========================================
``databento``  databento-dbn                 reading Databento DBN (MBO) files
``dask``       dask[distributed]             sweeps on a Dask cluster (``--scheduler``,
                                             ``--dask-local``)
``report``     matplotlib, plotly            ``mmsim report`` (the PNG charts; the
                                             interactive ``report.html``)
``all``        all of the above
=============  ============================  ===========================================
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: extra name -> the pip requirement of each of its packages (kept equal to pyproject.toml)
EXTRAS = {
    "databento": ("databento-dbn>=0.20",),
    "dask": ("dask[distributed]>=2024.1",),
    "report": ("matplotlib>=3.8", "plotly>=5.20"),
}


class MissingExtraError(ImportError):
    """A feature's optional package is not installed; the message names the extra."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or say which extra installs it.

    Raises
    ------
    MissingExtraError
        (an ImportError) ``"<feature> needs <module> (pip install 'mmsim[<extra>]')"``.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r} (known: {', '.join(EXTRAS)})")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the optional package {module.split('.')[0]!r}, which is not "
            f"installed: pip install 'mmsim[{extra}]'") from exc
