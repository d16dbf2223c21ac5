"""aidc-thermo installs under import names of its own (``aidc_thermo``,
``aidc_thermo.kernels``), so PyPI's unrelated ``thermo`` (chemical engineering,
the family of ``ht`` and ``fluids``) and ``kernels`` live in the same
environment. Both are in the ``test`` extra; this test imports all of them in a
clean interpreter (outside the source tree, so nothing resolves to the folders)
and runs our ``thermo`` command beside them."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


PROBE = """
import importlib.metadata as md, json
import thermo, kernels, aidc_thermo, aidc_thermo.kernels, aidc_thermo.cli
from aidc_thermo.kernels import conduction
from thermo import Chemical  # PyPI thermo's own API
print(json.dumps({
    "thermo": thermo.__file__, "kernels": kernels.__file__,
    "aidc_thermo": aidc_thermo.__file__, "aidc_kernels": aidc_thermo.kernels.__file__,
    "dists": {n: md.version(n) for n in ("thermo", "kernels", "aidc-thermo")},
    "water_mw": Chemical("water").MW,
}))
"""


def test_pypi_thermo_and_kernels_import_beside_ours(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    found = json.loads(res.stdout.strip().splitlines()[-1])
    ours = {Path(found["aidc_thermo"]).resolve().parent, Path(found["aidc_kernels"]).resolve().parent}
    # PyPI's packages are theirs, not our folders under another name
    for name in ("thermo", "kernels"):
        assert Path(found[name]).resolve().parent not in ours, found
        assert "site-packages" in found[name], found
    assert abs(found["water_mw"] - 18.015) < 0.01
    assert found["dists"]["aidc-thermo"] and found["dists"]["thermo"] and found["dists"]["kernels"]

def test_thermo_command_runs_beside_pypi_thermo(tmp_path):
    exe = BIN / "thermo"
    assert exe.exists(), f"the thermo console script is not installed in {BIN}"
    env = _clean_env()
    chk = subprocess.run(
        [str(exe), "check", str(ROOT / "cases" / "slab.toml")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert chk.returncode == 0, chk.stderr[-3000:]
    run = subprocess.run(
        [str(exe), "run", str(ROOT / "cases" / "slab.toml"), "-o", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert (tmp_path / "out" / "summary.json").is_file()
