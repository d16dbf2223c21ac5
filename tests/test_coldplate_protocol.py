"""resolved_coldplate on the model protocol: build gives a hashable Static
(equal for designs that differ only in numbers) and Params; the pure solve
(the viscosity coupling a lax.while_loop) equals the host Picard loop it
replaced; a 3-design ``thermo sweep`` of a tiny unit cell equals three single
runs. Tight solver tolerances make 1e-10 agreement meaningful (at the
default 1e-8 flow tolerance two differently compiled programs agree to the
solver's tolerance, ~1e-9)."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import jax
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import CaseFile
from aidc_thermo.models import coldplate
from aidc_thermo.models.protocol import follows_protocol
from aidc_thermo.sweep import read_table

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]
TIGHT = (
    (ROOT / "cases" / "coldplate_unit_cell.toml")
    .read_text()
    .replace("channel = 8", "channel = 4")
    .replace("fin = 4 ", "fin = 2 ")
    .replace("fin_height = 12", "fin_height = 6")
    .replace("base = 4", "base = 2")
    .replace("length = 32", "length = 8")
    .replace('velocity = "0.5 m/s"', 'flow = "0.015 L/min"')
    .replace("flow_tolerance = 1e-8", "flow_tolerance = 1e-12\nenergy_tolerance = 1e-12")
) + "\n[output]\nplots = false\n"
assert "energy_tolerance = 1e-12" in TIGHT and 'flow = "0.015 L/min"' in TIGHT

SWEEP = """
[sweep]
case = "base.toml"
outputs = ["pressure_drop", "R_max", "R_mean", "T_outlet_bulk"]
[[parameter]]
key = "inlet.flow"
values = ["0.01 L/min", "0.015 L/min", "0.02 L/min"]
"""


def _parse(text: str, path: Path) -> coldplate.ColdPlateCase:
    path.write_text(text)
    return coldplate.parse(CaseFile(path, text, tomllib.loads(text)))


def test_build_gives_one_static_for_designs_that_differ_in_numbers(tmp_path):
    assert follows_protocol(coldplate)
    a = coldplate.build(_parse(TIGHT, tmp_path / "a.toml"))
    b = coldplate.build(_parse(TIGHT.replace('flux = "100 W/cm^2"', 'flux = "50 W/cm^2"'), tmp_path / "b.toml"))
    wider = TIGHT.replace('channel_width = "0.3 mm"', 'channel_width = "0.4 mm"')
    c = coldplate.build(_parse(wider, tmp_path / "c.toml"))
    assert a[0] == b[0] and hash(a[0]) == hash(b[0])  # same grid and settings: one compilation
    assert float(b[1].heat_flux) == pytest.approx(0.5 * float(a[1].heat_flux), rel=1e-15)
    assert a[0] != c[0]  # other face coordinates: another program
    assert "sha256=" in repr(a[0].voxels)  # the compile cache keys by the digest, not the arrays
    stacked = coldplate.stack_params([a[1], b[1]])
    assert np.shape(stacked.heat_flux) == (2,)
    assert coldplate.design_bytes(a[0]) > 384 * 1000


def test_a_float64_case_without_x64_is_refused_not_solved_in_float32(tmp_path):
    """Without JAX's x64 mode every float64 array silently becomes float32: a
    library caller who forgot it got a float32 answer (a flow that stalls at
    ~1e-6 and never converges) labelled float64. Both entries refuse."""
    case = _parse(TIGHT, tmp_path / "a.toml")
    static, params = coldplate.build(case)
    with jax.enable_x64(False):
        with pytest.raises(RuntimeError, match="x64 is disabled"):
            coldplate.setup(case)
        with pytest.raises(RuntimeError, match="x64 is disabled"):
            coldplate.solve(static, params)
        f32 = dataclasses.replace(case, precision="float32")
        assert coldplate.setup(f32).grid.dx.dtype == np.float32


@pytest.mark.slow  # the host loop and the while-loop program: ~2 min on the shared 2-core machine
def test_pure_coupled_solve_equals_the_host_picard_loop(tmp_path):
    text = TIGHT.replace('viscosity = "inlet"', 'viscosity = "temperature"')
    text = text.replace("\n[solver]\n", "\n[solver]\ncoupling_tolerance = 1e-10\n")
    case = _parse(text, tmp_path / "t.toml")
    host, pure = coldplate.solve_host(case), coldplate.solve(case)
    for sol in (host, pure):
        coldplate.check_converged(case, sol)
    assert pure.coupling["iterations"] == host.coupling["iterations"] > 2
    np.testing.assert_allclose(coldplate.pressure_drop(pure), coldplate.pressure_drop(host), rtol=1e-10)
    np.testing.assert_allclose(
        coldplate.thermal_resistances(case, pure), coldplate.thermal_resistances(case, host), rtol=1e-10
    )
    np.testing.assert_allclose(pure.coupling["pressure_drop"], host.coupling["pressure_drop"], rtol=1e-9)
    np.testing.assert_allclose(pure.viscosity, host.viscosity, rtol=1e-10)


@pytest.mark.slow  # a 3-design sweep and three single runs: ~2 min on the shared 2-core machine
def test_sweep_of_three_flows_equals_three_single_runs(tmp_path):
    (tmp_path / "base.toml").write_text(TIGHT)
    (tmp_path / "sweep.toml").write_text(SWEEP)
    out = tmp_path / "out"
    assert main(["sweep", str(tmp_path / "sweep.toml"), "-o", str(out), "-q"]) == 0
    t = read_table(out)
    assert list(t["status"][0]) == ["ok"] * 3
    assert t["pressure_drop"][1] == "Pa" and t["R_max"][1] == "K/W"
    case = _parse(TIGHT, tmp_path / "single.toml")
    for i, q in enumerate(t["inlet.flow"][0]):
        c = dataclasses.replace(case, flow_rate=float(q))
        sol = coldplate.solve(c)  # what thermo run solves
        coldplate.check_converged(c, sol)
        summary, _ = coldplate.summarize(c, sol)
        for key in ("pressure_drop", "R_max", "R_mean", "T_outlet_bulk"):
            np.testing.assert_allclose(t[key][0][i], summary[key].value, rtol=1e-10, err_msg=f"design {i}: {key}")
    dp, r = t["pressure_drop"][0], t["R_max"][0]
    assert np.all(np.diff(dp) > 0) and np.all(np.diff(r) < 0)  # more flow: more pressure drop, less resistance


def test_screen_refuses_what_check_refuses(tmp_path):
    """The sweep's screen, from reported numbers only: an unconverged design,
    a cell below the inlet temperature, fluid hotter than every solid."""
    static, params = coldplate.build(_parse(TIGHT, tmp_path / "a.toml"))
    t_in = float(params.inlet_temperature) - 273.15
    ext = np.array([t_in, t_in + 5, t_in + 3, t_in + 20])  # degC: fluid min, max; solid min, max
    good = {"converged": np.bool_(True), "flow_outer_iterations": 50, "energy_iterations": 10,
            "coupling_iterations": 1, "temperature_extremes": ext}  # fmt: skip
    assert coldplate.screen(static, params, good) == ""
    assert "did not converge" in coldplate.screen(static, params, {**good, "converged": np.bool_(False)})
    cold = {**good, "temperature_extremes": np.array([t_in - 1.0, t_in + 5, t_in + 3, t_in + 20])}
    assert "fluid temperature" in coldplate.screen(static, params, cold)
    hot = {**good, "temperature_extremes": np.array([t_in, t_in + 30, t_in + 3, t_in + 20])}
    assert "hottest solid" in coldplate.screen(static, params, hot)
