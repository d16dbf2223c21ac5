"""The closure calibration of the bundled GPU cold plate:
``cases/calibration_gpu_unit_cell.toml`` and the table it writes,
``cases/data/gpu_closures.csv``.

Slow: one resolved calibration (7 Reynolds numbers; 2-3 min on 2 cores) and
the bundled plate solved once with that table. Checked:

* the bundled table is what the bundled case writes (a stale table fails),
  and ``thermo run`` writes a complete folder with its plot;
* the table's unit cell is the bundled plate's (channel, fin, fin height,
  base, channel run) and covers the plate's channel Reynolds numbers over its
  curve range, at the plate's coolant and inlet temperature;
* the physics of the table: f Re within 3 % of Shah & London's fully
  developed value for the duct (the grid is some 1.5 % low; the apparent
  value rises with Re as the entrance share grows); Nu_apparent clearly below
  the duct's four-wall Nu_H1 (3 mm copper fins only about half efficient) and
  rising from Re 40 to 160 (thermal entrance);
* what the calibration changes in the bundled plate's curves (the
  plate reads Shah & London closures; docs/compact-coldplate.md): R_max
  higher over 1-6 L/min (by 2.0 % at 1 L/min to 5.5 % at 6 L/min), the
  pressure drop lower by 1.4-2 %.
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


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu_cal") / "out"
    assert main(["run", str(CASE), "-o", str(folder)]) == 0
    return folder


def test_bundled_table_is_what_the_bundled_case_writes(calibrated):
    fresh, bundled = read_closure_table(calibrated / "closures.csv"), read_closure_table(TABLE)
    assert fresh.meta == pytest.approx(bundled.meta, rel=1e-9)
    assert set(fresh.columns) == set(bundled.columns)
    for name, values in fresh.columns.items():
        np.testing.assert_allclose(values, bundled.columns[name], rtol=1e-6, err_msg=name)
    assert (calibrated / "closures.png").is_file() and (calibrated / "results.h5").is_file()
    summary = json.loads((calibrated / "summary.json").read_text())
    assert summary["heat_balance_error_max"]["value"] < 1e-8


def test_table_is_the_bundled_plates_unit_cell_over_its_reynolds_range():
    plate = compact.parse(load(PLATE))
    t = read_closure_table(TABLE)
    assert t.meta["channel_width"] == pytest.approx(plate.channel_width, rel=1e-12)
    assert t.meta["fin_thickness"] == pytest.approx(plate.fin_thickness, rel=1e-12)
    assert t.meta["fin_height"] == pytest.approx(plate.fin_height, rel=1e-12)
    assert t.meta["base_thickness"] == pytest.approx(plate.layers[-1].thickness, rel=1e-12)
    assert t.meta["length"] == pytest.approx(plate.channel_run, rel=1e-12)  # centre-fed: slot to plenum
    t_in = plate.inlet_temperature
    pr = float(plate.coolant.cp(t_in) * plate.coolant.viscosity(t_in) / plate.coolant.conductivity(t_in))
    assert t.meta["prandtl"] == pytest.approx(pr, rel=1e-8)
    re = [plate.channel_reynolds(q) for q in (*plate.curve_flows, plate.flow)]
    assert t.columns["Re"][0] < min(re) and max(re) < t.columns["Re"][-1]


def test_table_physics():
    t = read_closure_table(TABLE)
    c = t.columns
    alpha = np.asarray(t.meta["channel_width"] / t.meta["fin_height"])
    fre_sl, nu_h1 = float(porous.shah_london_fre(alpha)), float(porous.shah_london_nu_h1(alpha))
    assert np.all(np.abs(c["fRe_apparent"] / fre_sl - 1) < 0.03), (c["fRe_apparent"], fre_sl)
    assert np.all(np.diff(c["fRe_apparent"]) > 0)
    assert np.all(c["fRe_apparent"] >= c["fRe_local"])
    assert np.all(c["Nu_apparent"] < 0.8 * nu_h1) and np.all(c["Nu_apparent"] > 0.5 * nu_h1), (c["Nu_apparent"], nu_h1)
    re = c["Re"]
    assert np.interp(160.0, re, c["Nu_apparent"]) > 1.05 * np.interp(40.0, re, c["Nu_apparent"])


def test_calibrated_closures_raise_the_bundled_plates_resistance(tmp_path):
    text = PLATE.read_text()
    assert 'nusselt = "H1"' in text
    text = text.replace('nusselt = "H1"', f'closures = "{TABLE}"', 1)
    text = text.replace("[solver]", "[output]\nplots = false\n\n[solver]", 1)
    case = tmp_path / "plate.toml"
    case.write_text(text)
    assert main(["run", str(case), "-o", str(tmp_path / "out")]) == 0
    cal, sl = read_curves(tmp_path / "out" / "curves.csv"), read_curves(PLATE_CURVES)
    np.testing.assert_allclose(cal.flow, sl.flow, rtol=1e-12)
    ratio_r = np.asarray(cal.r_max) / np.asarray(sl.r_max)
    ratio_dp = np.asarray(cal.dp) / np.asarray(sl.dp)
    print(f"\ncalibrated / Shah & London: R_max {ratio_r.min():.4f}..{ratio_r.max():.4f}, "
          f"dP {ratio_dp.min():.4f}..{ratio_dp.max():.4f}")  # fmt: skip
    assert np.all((ratio_r > 1.01) & (ratio_r < 1.08)), ratio_r
    assert ratio_r[-1] > ratio_r[0] + 0.02, ratio_r  # the convective share of R grows with the flow
    assert np.all((ratio_dp > 0.96) & (ratio_dp < 1.0)), ratio_dp
