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


NO_PARAVIEW = shutil.which("pvbatch") is None


def paraview_sees(xdmf: Path, cwd: Path) -> dict:
    """What ParaView's own XDMF reader sees in ``xdmf`` (tests/pv_read.py)."""
    proc = subprocess.run(
        ["pvbatch", str(ROOT / "tests" / "pv_read.py"), str(xdmf)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PVRESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("PVRESULT ") :])


@pytest.mark.slow
@pytest.mark.skipif(NO_PARAVIEW, reason="ParaView (pvbatch) is not installed")
def test_paraview_reads_the_fields_on_the_right_grid(tmp_path):
    out = tmp_path / "slab"
    assert main(["run", str(ROOT / "cases" / "slab.toml"), "-o", str(out)]) == 0
    seen = paraview_sees(out / "results.xdmf", tmp_path)
    with h5py.File(out / "results.h5") as h5:
        xf, yf, zf = (h5[f"grid/{a}_faces"][()] for a in "xyz")
        T = h5["fields/temperature"][()]
    assert seen["cells"] == T.size
    assert seen["points"] == len(xf) * len(yf) * len(zf)
    np.testing.assert_allclose(seen["bounds"], [xf[0], xf[-1], yf[0], yf[-1], zf[0], zf[-1]], atol=1e-12)
    np.testing.assert_allclose(seen["ranges"]["temperature [K]"], [T.min(), T.max()], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.skipif(NO_PARAVIEW, reason="ParaView (pvbatch) is not installed")
def test_paraview_reads_the_resolved_coldplate_fields(tmp_path):
    """The resolved unit cell (coarse grid): ParaView reads the velocity
    components, pressure and temperature as cell data with one value per cell
    and the value ranges that results.h5 holds."""
    case = tmp_path / "cell.toml"
    case.write_text(
        (ROOT / "cases" / "coldplate_unit_cell.toml")
        .read_text()
        .replace("channel = 8", "channel = 4")
        .replace("fin = 4 ", "fin = 2 ")
        .replace("fin_height = 12", "fin_height = 6")
        .replace("base = 4", "base = 2")
        .replace("length = 32", "length = 12")
    )
    out = tmp_path / "cell"
    assert main(["run", str(case), "-o", str(out)]) == 0
    seen = paraview_sees(out / "results.xdmf", tmp_path)
    with h5py.File(out / "results.h5") as h5:
        xf, yf, zf = (h5[f"grid/{a}_faces"][()] for a in "xyz")
        fields = {name: (ds[()], ds.attrs["units"]) for name, ds in h5["fields"].items()}
    ncells = (len(xf) - 1) * (len(yf) - 1) * (len(zf) - 1)
    assert seen["cells"] == ncells
    assert seen["points"] == len(xf) * len(yf) * len(zf)
    for name in ("velocity_x", "velocity_y", "velocity_z", "pressure", "temperature"):
        values, units = fields[name]
        assert seen["tuples"][f"{name} [{units}]"] == values.size == ncells
        assert np.ptp(values) > 0, name  # a field that varies: a wrong mapping would show
        np.testing.assert_allclose(
            seen["ranges"][f"{name} [{units}]"],
            [values.min(), values.max()],
            rtol=1e-12,
            atol=1e-12 * np.abs(values).max(),
        )
