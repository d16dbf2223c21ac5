"""The closure calibration of the bundled GPU cold plate:
``cases/calibration_gpu_unit_cell.toml``, the grid table it writes,
``cases/data/gpu_closures.csv``, and the bundled plate that reads it.

Slow: two resolved unit cells of the grid (7 Reynolds numbers each; 4-6 min
on 2 cores) and the bundled plate solved once with Shah & London closures.
Checked:

* the bundled table is what the bundled case writes, for the plate's own
  cell and a corner cell of the grid (a stale table fails), and
  ``thermo run`` writes a complete folder with its plots;
* the table's cells are the bundled plate's fins (fin height, base, channel
  run, coolant) and span the plate's geometry, its channel-width sweep and
  its default optimize bounds, over their channel Reynolds numbers;
* the physics of the table: the local f Re within 3 % of Shah & London's
  fully developed value for each cell's duct (the grid is some 1.5 % low),
  the apparent one too up to Re 40 and rising with Re as the entrance share
  grows (the 0.5 mm channel's reaches +5 % at Re 240); Nu_apparent
  below each duct's four-wall Nu_H1 at Re 10-20 (short thermal entrance;
  higher up the entrance lifts wide channels with thick fins above it),
  the more so the thinner the fin (less efficient fins), and rising from
  Re 40 to 160 (thermal entrance);
* what the calibration changes in the bundled plate's curves against Shah &
  London closures (docs/compact-coldplate.md): R_max higher over 1-6 L/min
  (by some 2 % at 1 L/min to 5.5 % at 6 L/min), the pressure drop lower by
  1.4-2 %.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import load
from aidc_thermo.io.curves import read_curves
from aidc_thermo.kernels import porous
from aidc_thermo.models import compact
from aidc_thermo.models.calibrate import read_closure_table

pytestmark = pytest.mark.slow

CASES = Path(__file__).resolve().parents[1] / "cases"
CASE = CASES / "calibration_gpu_unit_cell.toml"
TABLE = CASES / "data" / "gpu_closures.csv"
PLATE = CASES / "compact_gpu_coldplate.toml"
PLATE_CURVES = CASES / "data" / "gpu_coldplate_curves.csv"


CELLS = ((0.2e-3, 0.1e-3), (0.5e-3, 0.1e-3))  # the plate's own cell and the widest channel


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """The bundled calibration case on two cells of its grid."""
    folder = tmp_path_factory.mktemp("gpu_cal")
    text = CASE.read_text()
    lines = [line for line in text.splitlines() if not line.startswith(("channel_widths", "fin_thicknesses"))]
    assert len(lines) == len(text.splitlines()) - 2
    text = "\n".join(lines).replace("\n[calibration]\n", '\n[calibration]\nchannel_widths = ["0.2 mm", "0.5 mm"]\n', 1)
    (folder / "cal.toml").write_text(text)
    assert main(["run", str(folder / "cal.toml"), "-o", str(folder / "out")]) == 0
    return folder / "out"


def _rows(table, width, thickness):
    c = table.columns
    rows = np.isclose(c["channel_width"], width, rtol=1e-9) & np.isclose(c["fin_thickness"], thickness, rtol=1e-9)
    assert rows.sum() == 7, (width, thickness)
    return {k: v[rows] for k, v in c.items()}


def test_bundled_table_is_what_the_bundled_case_writes(calibrated):
    fresh, bundled = read_closure_table(calibrated / "closures.csv"), read_closure_table(TABLE)
    assert fresh.is_grid and bundled.is_grid
    assert fresh.meta == pytest.approx(bundled.meta, rel=1e-9)
    assert set(fresh.columns) == set(bundled.columns)
    for cell in CELLS:
        a, b = _rows(fresh, *cell), _rows(bundled, *cell)
        for name, values in a.items():
            np.testing.assert_allclose(values, b[name], rtol=1e-6, err_msg=f"{cell} {name}")
    for png in ("closures.png", "closure_grid.png", "cross_section.png", "along_flow.png"):
        assert (calibrated / png).is_file(), png
    summary = json.loads((calibrated / "summary.json").read_text())
    assert summary["heat_balance_error_max"]["value"] < 1e-8
    assert summary["unit_cells"]["value"] == 2


def test_table_is_the_bundled_plates_fins_over_its_geometry_and_reynolds_range():
    plate = compact.parse(load(PLATE))
    assert plate.closures == str(TABLE)
    t = read_closure_table(TABLE)
    re, widths, thicknesses, _, _ = t.arrays()
    assert widths[0] <= plate.channel_width <= widths[-1] and thicknesses[0] <= plate.fin_thickness <= thicknesses[-1]
    assert t.meta["fin_height"] == pytest.approx(plate.fin_height, rel=1e-12)
    assert t.meta["base_thickness"] == pytest.approx(plate.layers[-1].thickness, rel=1e-12)
    assert t.meta["length"] == pytest.approx(plate.channel_run, rel=1e-12)  # centre-fed: slot to plenum
    t_in = plate.inlet_temperature
    pr = float(plate.coolant.cp(t_in) * plate.coolant.viscosity(t_in) / plate.coolant.conductivity(t_in))
    assert t.meta["prandtl"] == pytest.approx(pr, rel=1e-8)
    res = [plate.channel_reynolds(q) for q in (*plate.curve_flows, plate.flow)]
    assert re[0] < min(res) and max(res) < re[-1]
    # the channel-width sweep (0.1-0.5 mm at 0.75-3 L/min, and the plate's curve flows) and the default
    # optimize bounds (the plate's width and fin thickness / 2 .. x 2) over its curve flows
    flows = (plate.curve_flows[0], plate.curve_flows[-1])
    assert compact.closure_box_problem(plate, {"channel_width": (1e-4, 5e-4)}, (1.25e-5, flows[1])) is None
    box = {"channel_width": (1e-4, 4e-4), "fin_thickness": (5e-5, 2e-4)}
    assert compact.closure_box_problem(plate, box, flows) is None


def test_table_physics():
    t = read_closure_table(TABLE)
    re, widths, thicknesses, fre, nu = t.arrays()
    h = t.meta["fin_height"]
    i40, i160 = list(re).index(40.0), list(re).index(160.0)
    for i, w in enumerate(widths):
        alpha = np.asarray(w / h)
        fre_sl, nu_h1 = float(porous.shah_london_fre(alpha)), float(porous.shah_london_nu_h1(alpha))
        for j in range(len(thicknesses)):
            local = _rows(t, w, thicknesses[j])["fRe_local"]
            assert np.all(np.abs(local / fre_sl - 1) < 0.03), (w, local, fre_sl)  # fully developed over 0.6-0.9 L
            assert np.all(np.abs(fre[i, j, :4] / fre_sl - 1) < 0.03), (w, fre[i, j], fre_sl)  # Re <= 40
            assert np.all(np.diff(fre[i, j]) > 0) and np.all(fre[i, j] >= local)  # the entrance share grows with Re
            assert np.all(nu[i, j, 1:3] < nu_h1), (w, nu[i, j], nu_h1)  # Re 10-20: short thermal entrance
            assert nu[i, j, i160] > 1.04 * nu[i, j, i40], (w, thicknesses[j], nu[i, j])
        assert np.all(np.diff(nu[i], axis=0) > 0), (w, nu[i])  # thicker fins: more efficient, closer to H1
    c = {k: v for k, v in _rows(t, 0.2e-3, 0.1e-3).items()}  # the plate's cell
    nu_h1 = float(porous.shah_london_nu_h1(np.asarray(0.2e-3 / h)))
    assert np.all(c["Nu_apparent"] < 0.8 * nu_h1) and np.all(c["Nu_apparent"] > 0.5 * nu_h1)
    assert np.all(c["fRe_apparent"] >= c["fRe_local"])


def test_calibrated_closures_raise_the_bundled_plates_resistance(tmp_path):
    """The bundled curves (calibrated closures) against the same plate with Shah & London's."""
    text = PLATE.read_text()
    assert 'closures = "data/gpu_closures.csv"' in text
    text = text.replace('closures = "data/gpu_closures.csv"', 'nusselt = "H1"', 1)
    text = text.replace("[solver]", "[output]\nplots = false\n\n[solver]", 1)
    case = tmp_path / "plate.toml"
    case.write_text(text)
    assert main(["run", str(case), "-o", str(tmp_path / "out")]) == 0
    sl, cal = read_curves(tmp_path / "out" / "curves.csv"), read_curves(PLATE_CURVES)
    np.testing.assert_allclose(cal.flow, sl.flow, rtol=1e-12)
    ratio_r = np.asarray(cal.r_max) / np.asarray(sl.r_max)
    ratio_dp = np.asarray(cal.dp) / np.asarray(sl.dp)
    print(f"\ncalibrated / Shah & London: R_max {ratio_r.min():.4f}..{ratio_r.max():.4f}, "
          f"dP {ratio_dp.min():.4f}..{ratio_dp.max():.4f}")  # fmt: skip
    assert np.all((ratio_r > 1.01) & (ratio_r < 1.08)), ratio_r
    assert ratio_r[-1] > ratio_r[0] + 0.02, ratio_r  # the convective share of R grows with the flow
    assert np.all((ratio_dp > 0.96) & (ratio_dp < 1.0)), ratio_dp
