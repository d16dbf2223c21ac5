"""resolved_coldplate writes the shared cold-plate curve file: ``[inlet]
flow_range`` and ``curve_points`` are checked, the curve at the operating
flow is the run's own R and dP, every other curve point equals a single run at
that flow, and the file reads back and is accepted by a rack case."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import CaseError, CaseFile, load
from aidc_thermo.io.curves import read_curves
from aidc_thermo.io.results import summary_values
from aidc_thermo.models import coldplate, rack

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]
LPM = 1.0 / 60000.0
# the bundled unit cell on a coarse grid (8 x 6 x 8 cells), at a given flow
SMALL = (
    (ROOT / "cases" / "coldplate_unit_cell.toml")
    .read_text()
    .replace("channel = 8", "channel = 4")
    .replace("fin = 4 ", "fin = 2 ")
    .replace("fin_height = 12", "fin_height = 6")
    .replace("base = 4", "base = 2")
    .replace("length = 32", "length = 8")
    .replace('velocity = "0.5 m/s"', 'flow = "0.015 L/min"')
) + "\n[output]\nplots = false\n"
assert "length = 8" in SMALL and 'flow = "0.015 L/min"' in SMALL
CURVES = 'flow = "0.015 L/min"\nflow_range = ["0.01 L/min", "0.02 L/min"]\ncurve_points = 3'

RACK = """
[case]
type = "rack_network"
name = "one-branch rack of resolved unit cells"

[coolant]
fluid = "water"

[supply]
temperature = "30 degC"
flow = "0.03 L/min"

[manifold]
layout = "U"
diameter = "10 mm"
pitch = "44.45 mm"

[hose]
length = "0.1 m"
diameter = "4 mm"

[quick_disconnect]
cv = 2.0

[[plate_types]]
name = "cell"
power = "5 W"
curves = "plate/curves.csv"

[[tray_types]]
name = "tray"
  [[tray_types.branches]]
  plates = ["cell"]

[[sections]]
tray = "tray"
count = 2

[output]
plots = false
"""


def _parse(text: str, path: Path) -> coldplate.ColdPlateCase:
    path.write_text(text)
    return coldplate.parse(CaseFile(path, text, tomllib.loads(text)))


@pytest.mark.parametrize(
    "edit, key",
    [
        ('flow_range = ["0.02 L/min", "0.01 L/min"]', "inlet.flow_range"),
        ('flow_range = ["0.01 L/min", "0.02 m"]', "inlet.flow_range"),
        ('flow_range = ["0.01 L/min", "0.02 L/min"]\ncurve_points = 1', "inlet.curve_points"),
        ("curve_points = 4", "inlet.curve_points"),
    ],
)
def test_curve_keys_are_checked(tmp_path, edit, key):
    text = SMALL.replace('flow = "0.015 L/min"', 'flow = "0.015 L/min"\n' + edit)
    with pytest.raises(CaseError, match=key.replace(".", r"\.")):
        _parse(text, tmp_path / "c.toml")


def test_curve_flows_are_evenly_spaced_and_optional(tmp_path):
    assert _parse(SMALL, tmp_path / "a.toml").curve_flows == ()
    case = _parse(SMALL.replace('flow = "0.015 L/min"', CURVES), tmp_path / "b.toml")
    np.testing.assert_allclose(case.curve_flows, np.array([0.01, 0.015, 0.02]) * LPM, rtol=1e-15)


@pytest.mark.slow  # a CLI run (4 flow and energy solves) and one more solve: ~40 s on the shared 2-core machine
def test_resolved_curves_match_single_runs_and_reach_a_rack(tmp_path):
    (tmp_path / "plate.toml").write_text(SMALL.replace('flow = "0.015 L/min"', CURVES))
    assert main(["run", str(tmp_path / "plate.toml"), "-o", str(tmp_path / "plate")]) == 0
    curves = read_curves(tmp_path / "plate" / "curves.csv")  # passes the reader's checks
    assert curves.coolant == "water" and curves.meta("case_file") == "plate.toml"
    assert curves.meta("cells") == "8 x 6 x 8 = 384 cells" and curves.meta("geometry") == "straight_fins"
    assert curves.meta("domain").startswith("one unit cell")
    np.testing.assert_allclose(curves.flow, np.array([0.01, 0.015, 0.02]) * LPM, rtol=1e-11)
    assert np.all(np.diff(curves.r_max) < 0) and np.all(np.diff(curves.dp) > 0)
    # the operating flow's row is the run's own summary (the file keeps 12 digits)
    s = summary_values(tmp_path / "plate")
    np.testing.assert_allclose(curves.r_max[1], s["R_max"], rtol=1e-10)
    np.testing.assert_allclose(curves.r_mean[1], s["R_mean"], rtol=1e-10)
    np.testing.assert_allclose(curves.dp[1], s["pressure_drop"], rtol=1e-10)
    with h5py.File(tmp_path / "plate" / "results.h5") as h5:
        np.testing.assert_allclose(h5["curves/R_max_KpW"][:], curves.r_max, rtol=1e-10)
        np.testing.assert_allclose(h5["curves/pressure_drop_kPa"][:] * 1e3, curves.dp, rtol=1e-10)
    # another curve point equals a single run at that flow (its own line axis, no curves)
    case = _parse(SMALL, tmp_path / "single.toml")
    single = dataclasses.replace(case, flow_rate=curves.flow[2])
    sol = coldplate.solve(single)
    coldplate.check_converged(single, sol)
    r_max, r_mean, _ = coldplate.thermal_resistances(single, sol)
    np.testing.assert_allclose([curves.r_max[2], curves.r_mean[2]], [r_max, r_mean], rtol=1e-10)
    np.testing.assert_allclose(curves.dp[2], coldplate.pressure_drop(sol), rtol=1e-10)
    # a rack reads the file as a plate type's curves
    (tmp_path / "rack.toml").write_text(RACK)
    rk = rack.parse(load(tmp_path / "rack.toml"))
    assert rk is not None
