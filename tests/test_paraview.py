"""ParaView itself opens the XDMF sidecar (headless ``pvbatch``, from Debian's
``paraview`` and ``python3-paraview`` packages, which .ci/run installs)."""

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from thermo.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pvbatch") is None, reason="ParaView (pvbatch) is not installed")
def test_paraview_reads_the_fields_on_the_right_grid(tmp_path):
    out = tmp_path / "slab"
    assert main(["run", str(ROOT / "cases" / "slab.toml"), "-o", str(out)]) == 0
    proc = subprocess.run(
        ["pvbatch", str(ROOT / "tests" / "pv_read.py"), str(out / "results.xdmf")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PVRESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    seen = json.loads(lines[-1][len("PVRESULT ") :])
    with h5py.File(out / "results.h5") as h5:
        xf, yf, zf = (h5[f"grid/{a}_faces"][()] for a in "xyz")
        T = h5["fields/temperature"][()]
    assert seen["cells"] == T.size
    assert seen["points"] == len(xf) * len(yf) * len(zf)
    np.testing.assert_allclose(seen["bounds"], [xf[0], xf[-1], yf[0], yf[-1], zf[0], zf[-1]], atol=1e-12)
    np.testing.assert_allclose(seen["ranges"]["temperature [K]"], [T.min(), T.max()], rtol=1e-12)
