"""A real package (issue 11): ``python -m build`` makes a wheel that installs into a clean
virtual environment and runs ``mmsim backtest`` on the embedded default; the core install
leaves the optional packages out and says which extra a feature needs.

Slow (a fresh venv from PyPI or pip's cache, and a cold numba compile): about two minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


#: how many signatures numba's cache index (``.nbi``: its version, then the pickled
#: ``(stamp, {(signature, target): file})``) holds for each planned kernel
_CACHE_ENTRIES = r"""
import json, pickle, sys
from pathlib import Path
from mmsim.engine import nb
out = {}
for name in sorted({fn.py_func.__name__ for fn, _ in (*nb.CHILD_COMPILES, *nb.PARENT_COMPILES)}
                   | {"run_nb"}):
    (index,) = Path(sys.argv[1]).rglob(f"nb.{name}-*.nbi")
    with open(index, "rb") as f:
        pickle.load(f)
        stamp, overloads = pickle.loads(f.read())
    out[name] = len(overloads)
print(json.dumps(out))
"""


@pytest.mark.skipif(os.environ.get("MMSIM_SKIP_PACKAGE_TEST") == "1",
                    reason="MMSIM_SKIP_PACKAGE_TEST=1")
def test_wheel_installs_in_a_clean_venv_and_runs_the_default(tmp_path):
    # build from a copy of the sources, so the build leaves nothing in the working tree
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "mmsim", src / "mmsim",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"),
          str(src)])
    (wheel,) = (tmp_path / "dist").glob("mmsim-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "mmsim/experiments/default.yaml" in names  # the embedded default ships
    assert "License-Expression: MIT" in meta
    for extra in ("databento", "dask", "report", "all"):
        assert f"Provides-Extra: {extra}" in meta
    core = [ln for ln in meta.splitlines()
            if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    assert not any(p in ln for ln in core for p in ("dask", "databento", "matplotlib"))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--quiet", str(wheel)])
    work = tmp_path / "work"  # not the repository: the installed package only
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MMSIM_NUMBA_CACHE_DIR"] = str(tmp_path / "numba")
    r = _run([str(venv / "bin" / "mmsim"), "backtest", "--out", "run", "--no-progress",
              "--set", "data.synthetic.n_events=30000"], cwd=work, env=env)
    assert "summary:" in r.stdout and "fills" in r.stdout
    man = json.loads((work / "run" / "manifest.json").read_text())
    assert man["complete"] is True and man["name"] == "default"
    # that run compiled the engine on an empty cache, in two halves (compile_engine): the
    # kernels one half compiles for the other are planned with the argument types their
    # callers use, so each is in the cache once (a second entry: both halves compiled it)
    r = _run([str(py), "-c", _CACHE_ENTRIES, str(tmp_path / "numba")], cwd=work, env=env)
    assert json.loads(r.stdout) == {"_ring_pop_apply_inline": 1, "_request_arrives": 1,
                                    "_response_arrives": 1, "run_nb": 1, "_run_internal": 1}
    # the core install says which extra a feature needs
    r = subprocess.run([str(venv / "bin" / "mmsim"), "report", "run"], cwd=work, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "pip install 'mmsim[report]'" in r.stderr
    r = subprocess.run([str(py), "-c", "import mmsim.data.databento"], cwd=work, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "pip install 'mmsim[databento]'" in r.stderr


def test_the_extras_table_matches_pyproject():
    import tomllib

    from mmsim._extras import EXTRAS

    opt = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for extra, reqs in EXTRAS.items():
        assert tuple(opt[extra]) == reqs
    assert set(opt) - set(EXTRAS) == {"all", "dev"}
