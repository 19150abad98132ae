"""Private virtual environment for the reference peer, hftbacktest.

hftbacktest pins its own numpy / numba ranges, so it must not be installed next to mmsim. The
parity benchmark (``benchmarks/peer_hftbacktest.py``) calls :func:`ensure_peer_venv` to get
the interpreter of a dedicated venv, created on first use from PyPI, and then runs
``benchmarks/peer_hftbacktest_worker.py`` with it in a child process.

The venv directory (``benchmarks/.peer-venv/`` by default) is a build artefact: keep it out
of version control.

Usage: ``python benchmarks/peer_env.py [PATH]`` creates (or checks) the venv and prints its
interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: Requirements installed into the peer venv. hftbacktest 2.4.4 already depends on polars, numpy
#: and numba; polars is listed as well because the worker imports it directly.
PEER_REQUIREMENTS = ("hftbacktest==2.4.4", "polars")

#: File written inside the venv once the installation succeeded; it holds the requirements, so
#: changing :data:`PEER_REQUIREMENTS` triggers a reinstall.
STAMP_NAME = ".mmsim-peer-stamp"


def _venv_python(path: Path) -> Path:
    """Interpreter of the venv at ``path`` (POSIX ``bin/python``, Windows ``Scripts``)."""
    if os.name == "nt":
        return path / "Scripts" / "python.exe"
    return path / "bin" / "python"


def ensure_peer_venv(path: Path = Path("benchmarks/.peer-venv"), quiet: bool = True) -> Path:
    """Create the hftbacktest venv if needed and return its Python interpreter.

    Idempotent: when the venv exists and its stamp file matches :data:`PEER_REQUIREMENTS`,
    nothing is run. Otherwise the venv is created with ``sys.executable -m venv`` (if its
    interpreter is missing), the requirements are pip-installed, and the stamp is written.

    Parameters
    ----------
    path : Path
        Directory of the venv (created if missing).
    quiet : bool
        Pass ``-q`` to pip.

    Returns
    -------
    Path
        The venv's Python interpreter.

    Raises
    ------
    subprocess.CalledProcessError
        If creating the venv or installing the requirements fails (e.g. no network).
    """
    path = Path(path).resolve()
    python = _venv_python(path)
    stamp = path / STAMP_NAME
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"peer venv: installing {' '.join(PEER_REQUIREMENTS)} into {path} (first use; "
          "needs PyPI)", file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("-q")
    subprocess.run([*pip, *PEER_REQUIREMENTS], check=True)
    # Sanity check before stamping: the package must import in the new interpreter.
    subprocess.run([str(python), "-c", "import hftbacktest, polars"], check=True)
    stamp.write_text(wanted)
    return python


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("benchmarks/.peer-venv")
    print(ensure_peer_venv(target, quiet=False))
