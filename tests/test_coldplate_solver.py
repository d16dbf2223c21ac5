"""resolved_coldplate after issue 16: energy-solver keys and their failure
messages, the hottest solid point, mesh grading, the half-channel symmetry
cell and constant user-given coolant properties."""

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import CaseError, CaseFile
from aidc_thermo.models import coldplate

ROOT = Path(__file__).resolve().parents[1]
# the bundled unit cell on a coarse grid (6 x 8 x 8 cells)
SMALL = (
    (ROOT / "cases" / "coldplate_unit_cell.toml")
    .read_text()
    .replace("channel = 8", "channel = 4")
    .replace("fin = 4 ", "fin = 2 ")
    .replace("fin_height = 12", "fin_height = 6")
    .replace("base = 4", "base = 2")
    .replace("length = 32", "length = 8")
)
assert "length = 8" in SMALL
# water at 30 degC as the shipped fit gives it, typed in as constants
WATER_30C = """fluid = "constant"
density = "{rho!r} kg/m^3"
specific_heat = "{cp!r} J/kg/K"
conductivity = "{k!r} W/m/K"
dynamic_viscosity = "{mu!r} Pa*s"
"""


def parse(text, path):
    path.write_text(text)
    return coldplate.parse(CaseFile(path, text, tomllib.loads(text)))


def _summary(folder):
    return {k: v["value"] for k, v in json.loads((folder / "summary.json").read_text()).items() if "value" in v}


@pytest.mark.parametrize(
    "edit, key",
    [
        (("unit_cell = true", 'unit_cell = "quarter"'), "geometry.unit_cell"),
        (("[material]", "[geometry.grading]\nchannel = -2\n[material]"), "geometry.grading.channel"),
        (("[material]", "[geometry.grading]\nplenum = 2\n[material]"), "geometry.grading.plenum"),
        (('energy_scheme = "tvd"', 'energy_scheme = "tvd"\nenergy_line_axis = "w"'), "solver.energy_line_axis"),
        (('energy_scheme = "tvd"', 'energy_scheme = "tvd"\nenergy_max_outer = 0'), "solver.energy_max_outer"),
        (('energy_scheme = "tvd"', 'energy_scheme = "tvd"\nenergy_tolerance = 1e-16'), "solver.energy_tolerance"),
        (('fluid = "water"', 'fluid = "constant"\ndensity = "998 kg/m^3"'), "coolant.specific_heat"),
        (('fluid = "water"', 'fluid = "constant"\ndensity = "1 m"'), "coolant.density"),
    ],
)
def test_new_keys_are_checked(tmp_path, edit, key):
    text = SMALL.replace(*edit)
    assert text != SMALL
    with pytest.raises(CaseError, match=key.replace(".", r"\.")):
        parse(text, tmp_path / "c.toml")


def test_constant_coolant_refuses_temperature_dependent_viscosity(tmp_path):
    text = SMALL.replace('fluid = "water"', WATER_30C.format(rho=998.0, cp=4180.0, k=0.6, mu=8e-4))
    text = text.replace('viscosity = "inlet"', 'viscosity = "temperature"')
    with pytest.raises(CaseError, match=r"coolant\.viscosity"):
        parse(text, tmp_path / "c.toml")


def test_energy_line_axis_follows_the_strongest_links(tmp_path):
    """Thin channel and fin cells: lines across the channel (y), as measured
    on the bundled cell (89 BiCGSTAB iterations across, 144 along the flow,
    194 up the fins) and on a 40 mm trial cell (153 across, 637 along); a
    pin-fin plate on cubic cells keeps lines along the flow."""
    case = parse(SMALL, tmp_path / "c.toml")
    g = coldplate.build_geometry(case)
    k = np.where(g.solid, case.solid_k, 0.6)
    assert coldplate.energy_line_axis(g, k, 4.18e6 * 0.5) == 1
    pins = parse((ROOT / "cases" / "coldplate_pinfin.toml").read_text(), tmp_path / "p.toml")
    gp = coldplate.build_geometry(pins)
    assert coldplate.energy_line_axis(gp, np.where(gp.solid, pins.solid_k, 0.6), 4.18e6 * 0.5) == 0


@pytest.mark.slow
def test_hottest_solid_point_and_a_truthful_energy_failure(tmp_path, capsys):
    """Issue 16: T_solid_max (a cell centre) was reported below T_base_max
    (the bottom face, half a cell lower and hotter); and an energy solve that
    stopped said "after 0 iterations". Now T_solid_max >= T_base_max, and a
    capped solve exits 3 naming the cap and its true count."""
    (tmp_path / "c.toml").write_text(SMALL)
    assert main(["run", str(tmp_path / "c.toml"), "-o", str(tmp_path / "ok")]) == 0
    s = _summary(tmp_path / "ok")
    assert s["T_solid_max"] >= s["T_base_max"]
    capped = SMALL.replace('energy_scheme = "tvd"', 'energy_scheme = "tvd"\nenergy_max_outer = 2')
    (tmp_path / "capped.toml").write_text(capped)
    capsys.readouterr()
    assert main(["run", str(tmp_path / "capped.toml"), "-o", str(tmp_path / "no")]) == 3
    err = capsys.readouterr().err
    assert "after 2 deferred-correction iterations" in err and "energy_max_outer = 2" in err
    assert "Traceback" not in err and not (tmp_path / "no").exists()


@pytest.mark.slow
def test_half_cell_constant_properties_and_grading(tmp_path):
    """The half-channel cell (symmetry planes at the fin's and the channel's
    mid-planes) carries half the heat and half the flow of the whole unit
    cell at the same pressure drop and temperatures, so its R is twice the
    whole cell's; water typed in as constants at the inlet temperature gives
    the fitted water's answer; grading moves the answer by less than the
    discretisation error and keeps the energy balance."""
    case = parse(SMALL, tmp_path / "c.toml")
    sol = coldplate.solve(case)
    full, _ = coldplate.summarize(case, sol)
    half_case = parse(SMALL.replace("unit_cell = true", 'unit_cell = "half"'), tmp_path / "h.toml")
    half_sol = coldplate.solve(half_case)
    half, _ = coldplate.summarize(half_case, half_sol)
    assert half["cells"].value * 2 == full["cells"].value
    assert half["pressure_drop"].value == pytest.approx(full["pressure_drop"].value, rel=1e-6)
    assert half["R_max"].value == pytest.approx(2 * full["R_max"].value, rel=1e-6)
    assert half["T_outlet_bulk"].value == pytest.approx(full["T_outlet_bulk"].value, abs=1e-6)
    ny = half_sol.T.shape[1]
    np.testing.assert_allclose(np.asarray(half_sol.T), np.asarray(sol.T)[:, :ny], rtol=0, atol=1e-6)

    t_in = case.inlet_temperature
    water = case.coolant
    props = dict(rho=float(water.density(t_in)), cp=float(water.cp(t_in)), k=float(water.conductivity(t_in)))
    props["mu"] = float(water.viscosity(t_in))
    const_case = parse(SMALL.replace('fluid = "water"', WATER_30C.format(**props)), tmp_path / "k.toml")
    const, _ = coldplate.summarize(const_case, coldplate.solve(const_case))
    assert const["coolant"].value == "constant properties"
    for key in ("pressure_drop", "R_max", "R_mean"):
        assert const[key].value == pytest.approx(full[key].value, rel=1e-9)

    graded_text = SMALL.replace("[material]", "[geometry.grading]\nchannel = 3\nfin_height = 2\n\n[material]")
    graded_case = parse(graded_text, tmp_path / "g.toml")
    graded, _ = coldplate.summarize(graded_case, coldplate.solve(graded_case))
    assert graded["heat_balance_error"].value < 1e-8
    assert graded["pressure_drop"].value == pytest.approx(full["pressure_drop"].value, rel=0.1)
    assert graded["pressure_drop"].value != pytest.approx(full["pressure_drop"].value, rel=1e-4)


# 200 cells along 10 mm: the passage-over-speed step would carry the coolant 6 cells per pseudo-time step
LONG = SMALL.replace("length = 8", "length = 200").replace("flow_tolerance = 1e-8", "flow_tolerance = 1e-10")


def test_the_pseudo_time_step_spans_at_most_max_courant_cells_along_the_flow(tmp_path):
    """The fine grid's step is cut to ``MAX_COURANT`` cells; the bundled grid
    keeps the passage over the bulk speed."""
    case = parse(LONG, tmp_path / "long.toml")
    g = coldplate.build_geometry(case)
    u_in = case.flow_rate / coldplate._inlet_area(g)
    dx = case.geometry["length"] / 200
    assert coldplate._passage(case, g) / dx == pytest.approx(6.0)
    assert float(coldplate.setup(case).flow_params.dt) == pytest.approx(coldplate.MAX_COURANT * dx / u_in, rel=1e-3)
    bundled = parse((ROOT / "cases" / "coldplate_unit_cell.toml").read_text(), tmp_path / "b.toml")
    gb = coldplate.build_geometry(bundled)
    u_b = bundled.flow_rate / coldplate._inlet_area(gb)
    assert float(coldplate.setup(bundled).flow_params.dt) == coldplate._passage(bundled, gb) / u_b


@pytest.mark.slow
def test_the_capped_pseudo_time_step_gives_the_same_answer_on_both_solve_paths(tmp_path, monkeypatch):
    """The converged flow and temperatures do not depend on the pseudo-time
    step (it only relaxes the iteration): the protocol's traced solve and the
    host path with the capped step, and the host path with the passage over
    the bulk speed, agree to the flow tolerance."""
    case = parse(LONG, tmp_path / "long.toml")
    g = coldplate.build_geometry(case)
    u_in = case.flow_rate / coldplate._inlet_area(g)
    sol = coldplate.solve(case)
    host = coldplate.solve_host(case)
    monkeypatch.setattr(coldplate, "MAX_COURANT", float("inf"))
    assert float(coldplate.setup(case).flow_params.dt) == coldplate._passage(case, g) / u_in
    free = coldplate.solve_host(case)
    assert bool(host.flow_info.converged) and bool(free.flow_info.converged)
    assert int(host.flow_info.iterations) != int(free.flow_info.iterations)
    ours, _ = coldplate.summarize(case, sol)
    for other in (host, free):
        theirs, _ = coldplate.summarize(case, other)
        for key in ("pressure_drop", "R_max", "R_mean"):
            assert ours[key].value == pytest.approx(theirs[key].value, rel=1e-7), key


def _float32_parts(spec, energy_config):
    return spec.momentum_mixed_precision, energy_config.krylov.mixed_precision


def test_float64_plate_runs_its_momentum_correction_and_energy_preconditioner_in_float32(tmp_path):
    """The resolved plate turns both float32 options on, on both solve paths
    (the kernels keep them off by default: a batched and a single flow solve
    then differ by ~1e-10, and forward mode through the flow gives NaN)."""
    from aidc_thermo.kernels import advdiff, flow

    case = parse(SMALL, tmp_path / "small.toml")
    pb = coldplate.setup(case)
    static, _ = coldplate.build(case)
    assert _float32_parts(pb.flow_spec, pb.energy_config) == (True, True)
    assert _float32_parts(coldplate._flow_spec(static), coldplate._energy_config(static)) == (True, True)
    assert flow.FlowSpec(bc=("inlet", "outlet", "wall", "wall", "wall", "wall")).momentum_mixed_precision is False
    assert advdiff.KrylovConfig().mixed_precision is False


@pytest.mark.slow
def test_float32_momentum_correction_and_energy_preconditioner_leave_the_answer(tmp_path, monkeypatch):
    """The float32 parts change the converged float64 answer by less than the
    flow tolerance (1e-8 here), with the same outer iterations: against the
    same plate solved in float64 throughout."""
    import dataclasses

    case = parse(SMALL, tmp_path / "small.toml")
    mixed = coldplate.solve_host(case)
    real = coldplate.setup

    def float64_throughout(c):
        pb = real(c)
        ec = pb.energy_config
        return dataclasses.replace(
            pb,
            flow_spec=dataclasses.replace(pb.flow_spec, momentum_mixed_precision=False),
            energy_config=dataclasses.replace(ec, krylov=dataclasses.replace(ec.krylov, mixed_precision=False)),
        )

    monkeypatch.setattr(coldplate, "setup", float64_throughout)
    plain = coldplate.solve_host(case)
    assert _float32_parts(coldplate.setup(case).flow_spec, coldplate.setup(case).energy_config) == (False, False)
    for sol in (mixed, plain):
        coldplate.check_converged(case, sol)
    assert int(mixed.flow_info.iterations) == int(plain.flow_info.iterations)
    ours, _ = coldplate.summarize(case, mixed)
    theirs, _ = coldplate.summarize(case, plain)
    for key in ("pressure_drop", "R_max", "R_mean", "T_outlet_bulk"):
        assert ours[key].value == pytest.approx(theirs[key].value, rel=1e-8), key
    assert ours["pressure_drop"].value != theirs["pressure_drop"].value  # the float32 parts did run
