"""resolved_coldplate with temperature-dependent viscosity: the Picard
coupling of flow and energy, run through the command line on a small heated
unit cell, against constant-viscosity solves of the same cell."""

import dataclasses
import json
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import CaseFile
from aidc_thermo.models import coldplate

ROOT = Path(__file__).resolve().parents[1]
# the bundled unit cell on a coarse grid, slower flow: the coolant warms by 18 K
SMALL = (
    (ROOT / "cases" / "coldplate_unit_cell.toml")
    .read_text()
    .replace('velocity = "0.5 m/s"', 'velocity = "0.15 m/s"')
    .replace("channel = 8", "channel = 4")
    .replace("fin = 4 ", "fin = 2 ")
    .replace("fin_height = 12", "fin_height = 6")
    .replace("base = 4", "base = 2")
    .replace("length = 32", "length = 12")
)
COUPLED = SMALL.replace('viscosity = "inlet"', 'viscosity = "temperature"')
assert COUPLED != SMALL


def parse(text, path):
    path.write_text(text)
    return coldplate.parse(CaseFile(path, text, tomllib.loads(text)))


def with_constant_viscosity(case, mu):
    """The same case with the coolant's viscosity fit replaced by the constant
    ``mu`` (density, cp and k unchanged)."""
    coeffs = tuple((p, (float(np.log(mu)),) if p == "log_viscosity" else c) for p, c in case.coolant.coefficients)
    return dataclasses.replace(case, coolant=dataclasses.replace(case.coolant, coefficients=coeffs))


@pytest.mark.slow
def test_temperature_dependent_viscosity_lowers_the_pressure_drop_consistently(tmp_path):
    """Coupled (mu(T) per cell) vs constant-viscosity solves of the same cell:

    * dP(coupled) lies strictly between dP with mu at the outlet bulk
      temperature and dP with mu at the mean bulk temperature (T_in + T_out)/2
      (the fluid next to the heated walls is warmer than the bulk, so the
      effective viscosity is below mu at the mean bulk temperature, and above
      mu at the outlet), hence below the constant-property dP (mu(T_in));
    * the written viscosity field equals mu(T) of the written temperature
      field to the coupling tolerance in every fluid cell;
    * heat balance < 1e-9, the outlet bulk temperature matches the energy
      balance, and the coupling took more than one iteration."""
    out = tmp_path / "coupled"
    case = parse(COUPLED, tmp_path / "c.toml")
    assert main(["run", str(tmp_path / "c.toml"), "-o", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["viscosity_model"]["value"] == "temperature"
    assert s["coupling_iterations"]["value"] >= 2
    assert s["heat_balance_error"]["value"] < 1e-9
    dp = s["pressure_drop"]["value"]
    t_in, t_out = case.inlet_temperature, s["T_outlet_energy_check"]["value"] + 273.15
    assert t_out - t_in > 10.0
    assert s["T_outlet_bulk"]["value"] == pytest.approx(t_out - 273.15, abs=1e-3 * (t_out - t_in))
    with h5py.File(out / "results.h5") as h5:
        assert h5["fields/temperature"].attrs["units"] == "degC"
        T = h5["fields/temperature"][()] + 273.15
        mu = h5["fields/viscosity"][()]
        material = h5["fields/material"][()]
        assert h5["solver/coupling_iterations"][()] == s["coupling_iterations"]["value"]
    fluid = material == 0
    mu_T = case.coolant.viscosity(T[fluid])
    assert np.max(np.abs(mu[fluid] / mu_T - 1.0)) <= case.coupling_tolerance
    assert s["coupling_viscosity_change"]["value"] <= case.coupling_tolerance

    water = case.coolant
    dps = {}
    for label, t in (("inlet", t_in), ("mean_bulk", 0.5 * (t_in + t_out)), ("outlet", t_out)):
        sol = coldplate.solve(with_constant_viscosity(dataclasses.replace(case, viscosity="inlet"), water.viscosity(t)))
        assert bool(sol.flow_info.converged) and sol.coupling["converged"]
        dps[label] = coldplate.pressure_drop(sol)
    assert dps["outlet"] < dp < dps["mean_bulk"] < dps["inlet"], (dp, dps)
    # constant properties through the case file: the inlet viscosity, one iteration
    const = coldplate.solve(dataclasses.replace(case, viscosity="inlet"))
    assert const.coupling["iterations"] == 1
    assert coldplate.pressure_drop(const) == pytest.approx(dps["inlet"], rel=1e-12)


def test_coupling_options_are_checked(tmp_path, capsys):
    bad = SMALL + "coupling_tolerance = 1e-3\n"  # appended to [solver]; needs viscosity = "temperature"
    (tmp_path / "bad.toml").write_text(bad)
    assert main(["check", str(tmp_path / "bad.toml")]) == 2
    assert "solver.coupling_tolerance" in capsys.readouterr().err
    (tmp_path / "bad2.toml").write_text(COUPLED.replace('viscosity = "temperature"', 'viscosity = "wall"'))
    assert main(["check", str(tmp_path / "bad2.toml")]) == 2
    assert "coolant.viscosity" in capsys.readouterr().err


@pytest.mark.slow
def test_unconverged_coupling_exits_3_without_results(tmp_path, capsys):
    """One Picard iteration cannot show convergence (it needs two to compare)."""
    (tmp_path / "c.toml").write_text(COUPLED + "max_coupling = 1\n")
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "c.toml"), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "coupling did not converge" in err and "Traceback" not in err
    assert not out.exists()
