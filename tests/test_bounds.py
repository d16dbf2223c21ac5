"""The boundedness guard (thermo.bounds): the checks themselves, and on every
case type a real solution passes while a corrupted one is refused with a
message that names the quantity, the value, where, and the bound."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo import bounds
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import load
from tests._bundled import SLOW_BUNDLED, case_type, check_guard, spy_on_guard

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"
SLOW_BUNDLED_PATHS = [CASES / f"{stem}.toml" for stem in SLOW_BUNDLED]


# ----------------------------------------------------------------------------- the checks


def test_round_off_passes_and_a_violation_fails_with_a_located_message():
    faces = (np.linspace(0, 3e-3, 4), np.linspace(0, 2e-3, 3), np.linspace(0, 1e-3, 2))
    t = np.full((3, 2, 1), 310.0)
    t[0, 0, 0] = 300.0 - 1e-6  # round-off below the inlet: passes (tolerance 1e-3 * 10 K)
    bounds.check("fluid temperature", t, lower=300.0, locate=bounds.grid_locator(faces))
    t[2, 1, 0] = 299.9  # 0.1 K below: 1 % of the rise, a violation
    with pytest.raises(SolveError) as exc:
        bounds.check("fluid temperature", t, lower=300.0, lower_why="the inlet", locate=bounds.grid_locator(faces))
    msg = str(exc.value)
    assert "fluid temperature is 299.9 K" in msg and "below its lower bound 300 K" in msg and "the inlet" in msg
    assert "cell (2, 1, 0) (x = 2.5 mm, y = 1.5 mm, z = 0.5 mm)" in msg


def test_upper_bound_mask_nan_and_negative_kelvin():
    t = np.array([300.0, 305.0, 320.0])
    bounds.check("t", t, upper=310.0, mask=[True, True, False])  # the 320 is not checked
    with pytest.raises(SolveError, match=r"t is 320 K .*above its upper bound 310 K"):
        bounds.check("t", t, upper=310.0)
    with pytest.raises(SolveError, match="not finite"):
        bounds.check("t", [300.0, np.nan])
    with pytest.raises(SolveError, match="absolute zero"):
        bounds.check("t", [300.0, -1.0], locate=bounds.label_locator(["inlet", "drain"], "node"))
    with pytest.raises(SolveError, match=r"node 1 \(drain\)"):
        bounds.check("t", [300.0, 290.0], lower=299.0, locate=bounds.label_locator(["inlet", "drain"], "node"))


def test_float32_tolerance_is_wider_than_float64():
    assert bounds.tolerance(10.0, 300.0, "float32") > bounds.tolerance(10.0, 300.0, "float64")
    assert bounds.tolerance(10.0, 300.0, "float64") == pytest.approx(1e-2 + 3e-5)
    t = np.array([300.0 - 0.02, 310.0])  # 0.02 K: float32 round-off at 300 K passes, not in float64
    bounds.check("t", t, lower=300.0, precision="float32")
    with pytest.raises(SolveError):
        bounds.check("t", t, lower=300.0, precision="float64")


def test_order_check():
    bounds.check_order("return", [310.0, 300.0 - 1e-9], "supply", [300.0, 300.0], why="heat is added")
    with pytest.raises(SolveError, match=r"return 299 K .* is 1 K below supply 300 K .* heat is added"):
        bounds.check_order("return", [310.0, 299.0], "supply", 300.0, why="heat is added")


# ----------------------------------------------------------------------------- resolved cold plates


def _pins_at_outlet_case(tmp_path: Path) -> Path:
    """The bundled pin-fin plate cut down to one row of two pins whose
    downstream edge sits 0.5 mm from the outlet plane (1,920 cells): the
    pins' wakes reach the outlet and the flow turns back in there."""
    text = (CASES / "coldplate_pinfin.toml").read_text()
    for old, new in (
        ("rows = 6", "rows = 1"),
        ("columns = 4", "columns = 2"),
        ('plenum_length = "1 mm"', 'plenum_length = "0.25 mm"'),
        ("base = 4", "base = 2"),
        ('flow = "0.05 L/min"', 'flow = "0.025 L/min"'),
        ('power = "20 W"', 'power = "2 W"'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "pins_at_outlet.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def pins_at_outlet(tmp_path_factory):
    """The small plate with backflow, solved once: (case file, case, solution)."""
    from aidc_thermo.models import coldplate

    path = _pins_at_outlet_case(tmp_path_factory.mktemp("pins"))
    case = coldplate.parse(load(path))
    return path, case, coldplate.solve(case)


def _fluid_solid_range(sol):
    T = np.asarray(sol.T, np.float64)
    solid = np.asarray(sol.geometry.solid)
    return T[~solid].min(), T[~solid].max(), T[solid].min(), T[solid].max()


def test_outlet_backflow_keeps_the_fluid_between_inlet_and_hottest_solid(pins_at_outlet):
    """Flow turns back in through the outlet plane (behind the pins' wakes),
    and the fluid stays within [inlet, hottest solid]; the guard passes."""
    from aidc_thermo.models import coldplate

    _, case, sol = pins_at_outlet
    coldplate.check_converged(case, sol)  # includes the guard
    u_out = np.asarray(sol.state.u, np.float64)[-1]
    assert (u_out < 0).sum() > 0, "the test case must have backflow at the outlet"
    f_lo, f_hi, s_lo, s_hi = _fluid_solid_range(sol)
    t_in = case.inlet_temperature
    assert f_lo >= t_in - 1e-6 and s_lo > t_in
    assert f_hi <= s_hi + 1e-9
    summary, _ = coldplate.summarize(case, sol)
    # the outlet's mixed-out temperature is the energy balance's (backflow carries its cell's enthalpy)
    rise = summary["T_outlet_energy_check"].value - summary["inlet_temperature"].value
    assert summary["T_outlet_bulk"].value - summary["inlet_temperature"].value == pytest.approx(rise, rel=2e-3)
    assert summary["heat_balance_error"].value < 1e-9


def test_guard_refuses_a_cold_cell_in_the_fluid_and_in_the_solid(pins_at_outlet):
    from aidc_thermo.models import coldplate

    _, case, sol = pins_at_outlet
    T = np.asarray(sol.T, np.float64).copy()
    solid = np.asarray(sol.geometry.solid)
    fluid_cell = tuple(np.argwhere(~solid)[-1])
    bad = T.copy()
    bad[fluid_cell] = case.inlet_temperature - 2.0
    with pytest.raises(SolveError, match=r"fluid temperature is .* below its lower bound .* at cell "):
        coldplate.check_bounded(case, dataclasses.replace(sol, T=bad))
    bad = T.copy()
    bad[fluid_cell] = T[solid].max() + 5.0
    with pytest.raises(SolveError, match="above its upper bound .* the hottest solid cell"):
        coldplate.check_bounded(case, dataclasses.replace(sol, T=bad))
    bad = T.copy()
    bad[tuple(np.argwhere(solid)[0])] = np.nan
    with pytest.raises(SolveError, match="solid temperature is nan"):
        coldplate.check_bounded(case, dataclasses.replace(sol, T=bad))
    bad = T.copy()
    bad[tuple(np.argwhere(solid)[0])] = case.inlet_temperature - 0.5
    with pytest.raises(SolveError, match="solid temperature is .* below its lower bound"):
        coldplate.check_bounded(case, dataclasses.replace(sol, T=bad))


def test_the_old_zero_kelvin_backflow_is_refused_with_exit_3_and_no_folder(
    pins_at_outlet, tmp_path, monkeypatch, capsys
):
    """Reintroduce the bug of issue 11 (backflow at the outlet brings the x+
    face's default value, 0 K): the run is refused, nothing is written."""
    import jax

    from aidc_thermo.cli import main
    from aidc_thermo.models import coldplate

    path, _, _ = pins_at_outlet
    energy_config = coldplate._energy_config  # what thermo run's compiled solve builds its energy settings from

    def old_energy_config(static):
        return dataclasses.replace(energy_config(static), outlets=())

    monkeypatch.setattr(coldplate, "_energy_config", old_energy_config)
    jax.clear_caches()  # a solve of the same Static compiled earlier in this process would not see the patch
    out = tmp_path / "out"
    # nor would a compile cache (CI shares one between test processes): its key is the source, not this patch
    assert main(["run", str(path), "-o", str(out), "--no-compile-cache"]) == 3
    err = capsys.readouterr().err
    assert "fluid temperature is" in err and "below its lower bound" in err and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.slow
def test_bundled_pin_fin_plate_is_bounded(tmp_path):
    """The bundled case of issue 11 on its own mesh (about 4 min on 2 busy
    cores): every fluid cell within [inlet, hottest solid], the outlet's
    mixed-out temperature equal to the energy balance's."""
    import h5py

    from aidc_thermo.cli import main

    out = tmp_path / "pin"
    assert main(["run", str(CASES / "coldplate_pinfin.toml"), "-o", str(out)]) == 0
    with h5py.File(out / "results.h5") as h5:
        T = h5["fields/temperature"][()]
        assert h5["fields/temperature"].attrs["units"] == "degC"
        fluid = h5["fields/material"][()] == 0
    t_in = 35.0
    assert T[fluid].min() >= t_in - 1e-6
    assert T[fluid].max() <= T[~fluid].max()
    s = json.loads((out / "summary.json").read_text())
    assert s["T_outlet_bulk"]["value"] == pytest.approx(s["T_outlet_energy_check"]["value"], abs=5e-3)


# ----------------------------------------------------------------------------- every bundled case


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(SLOW_BUNDLED_PATHS), ids=lambda p: p.stem)
def test_every_bundled_case_passes_its_guard_and_a_corrupted_solution_does_not(path, tmp_path, monkeypatch):
    """Run the bundled case (its guard passes on the real solution: exit 0),
    keep what the guard was given, corrupt it the way a hidden boundary value
    would, and check that the guard refuses it. The other bundled cases: the
    same check on tests/test_cli.py's runs (the default suite runs each once)."""
    from aidc_thermo.cli import main

    seen = spy_on_guard(case_type(path), monkeypatch)
    assert main(["run", str(path), "-o", str(tmp_path / "out")]) == 0
    check_guard(case_type(path), seen)


def test_compact_guard_without_a_solve():
    """The compact guard on hand-made fields of the bundled case's grid: a
    field between inlet and solid passes; a cold fluid cell, a cold fin and a
    fluid hotter than every solid are refused."""
    from aidc_thermo.kernels.fv.porous import Thermal
    from aidc_thermo.models import compact

    case = compact.parse(load(CASES / "compact_gpu_coldplate.toml"))
    arr = compact.discretize(case)
    nx, ny, nb = arr.k.shape
    qs = np.asarray([case.flow])
    t_in = case.inlet_temperature
    ramp = np.linspace(0.0, 1.0, nx)[None, :, None]
    good = Thermal(
        T_stack=t_in + 20.0 + 5.0 * ramp[..., None] + np.zeros((1, nx, ny, nb)),
        T_fin=t_in + 10.0 + 5.0 * ramp + np.zeros((1, nx, ny)),
        T_fluid=t_in + 8.0 * ramp + np.zeros((1, nx, ny)),
        heat_in=None,
        heat_out=None,
        info=None,
    )
    compact.check_bounded(case, arr, qs, good)
    for field, value, message in (
        ("T_fluid", t_in - 1.0, r"fluid temperature is .* below .* at flow .* L/min, cell \(3, 2\)"),
        ("T_fin", t_in - 1.0, "fin temperature is .* below"),
        ("T_fluid", t_in + 40.0, "fluid temperature is .* above its upper bound .* the hottest solid"),
    ):
        a = np.array(getattr(good, field))
        a[0, 3, 2] = value
        with pytest.raises(SolveError, match=message):
            compact.check_bounded(case, arr, qs, dataclasses.replace(good, **{field: a}))


def test_rack_guard_without_a_solve():
    """The rack guard on hand-made temperatures of the bundled rack's
    network: supply everywhere passes; a node below the supply and a plate
    whose outlet is colder than its inlet are refused."""
    from types import SimpleNamespace

    from aidc_thermo.kernels.network import NetworkTemperatures
    from aidc_thermo.models import rack

    case = rack.parse(load(CASES / "rack_nvl72.toml"))
    static, params = rack.build(case)
    n, e = static.network.n_nodes, static.network.n_edges
    t = case.supply.temperature
    zeros = np.zeros(n)
    good = NetworkTemperatures(np.full(n, t), np.full(e, t), np.full(e, t + 1e-12), np.zeros(e), zeros, zeros)

    def guard(temps):  # the guard reads only the temperatures of the solution
        rack.check_bounded(static, params, SimpleNamespace(temperatures=temps))

    guard(good)
    node = good.node.copy()
    node[static.outlet] = t - 2.0
    with pytest.raises(SolveError, match=r"coolant temperature is .* node \d+ \(outlet\)"):
        guard(dataclasses.replace(good, node=node))
    pe = np.asarray(static.plate_edges)
    out = good.edge_outlet.copy()
    out[pe[5]] = t + 3.0
    inlet = good.edge_inlet.copy()
    inlet[pe[5]] = t + 4.0
    with pytest.raises(SolveError, match=r"plate outlet temperature .* is 1 K below plate inlet .* plate 5 \(tray"):
        guard(dataclasses.replace(good, edge_outlet=out, edge_inlet=inlet))
