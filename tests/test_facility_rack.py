"""``facility`` with ``[rack]``: the hall names a rack_network case, and every
hour the rack network (every plate's flow and inlet temperature) is coupled to
the CDU and the plant, the hottest accelerator setting the clock."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import load
from aidc_thermo.models import facility
from aidc_thermo.validation.plant import chain_balances
from tests._first_gpu_plate import bundled_gpu_plate

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"
CURVES = CASES / "data" / "gpu_coldplate_curves.csv"
T0 = 273.15

#: the bundled temperate hall (its [cold_plate] and flow per accelerator), at a design point
OLD_HALL = re.sub(
    r"\[ambient\]\n[^\[]*",
    '[ambient]\ndry_bulb = "30 degC"\nrelative_humidity = 0.4\n\n',
    (CASES / "nvl72_dry_cooler_temperate.toml").read_text(),
).replace('"data/gpu', f'"{CASES}/data/gpu')


def hall_with_rack(rack_file, racks, accelerators=None, extra_secondary=""):
    """OLD_HALL with [cold_plate] and flow_per_accelerator replaced by [rack]."""
    text = re.sub(r"\[cold_plate\]\n[^\[]*", "", OLD_HALL)
    text = re.sub(r'flow_per_accelerator = "[^"]*"[^\n]*\n', extra_secondary, text)
    text = re.sub(r"accelerators = 576[^\n]*\n", "" if accelerators is None else f"accelerators = {accelerators}\n",
                  text)  # fmt: skip
    return text + f'\n[rack]\ncase = "{rack_file}"\nracks = {racks}\naccelerator_plate = "gpu"\n'


def rack_text(trays=1, plates=("gpu",), flow="2.5 L/min", manifold="1 m", hose="0.5 m", cv=1e6, layout="U",
              extra_plates=""):  # fmt: skip
    """A rack_network case: ``trays`` alike trays, one branch of ``plates`` in
    series each; the default has no hose, manifold or quick-disconnect loss to
    speak of (1 m pipes, zero lengths and minor losses, a huge Cv)."""
    return f"""
[case]
type = "rack_network"
name = "test rack"
[coolant]
fluid = "propylene_glycol"
volume_fraction = 0.25
[supply]
temperature = "35 degC"
flow = "{flow}"
return_pressure = "1.5 bar"
pump_efficiency = 0.7
[manifold]
layout = "{layout}"
diameter = "{manifold}"
roughness = "1.5 um"
pitch = "44.45 mm"
feed_length = "1 mm"
feed_k = 0.0
tees = false
[hose]
length = "1 mm"
diameter = "{hose}"
roughness = "1.5 um"
k_minor = 0.0
[quick_disconnect]
cv = {cv}
[[plate_types]]
name = "gpu"
power = "1000 W"
curves = "{CURVES}"
{extra_plates}
[[tray_types]]
name = "t"
  [[tray_types.branches]]
  plates = {list(plates)!r}
[[sections]]
tray = "t"
count = {trays}
""".replace("'", '"')


def solved(path):
    case = facility.parse(load(path))
    static, params = facility.build(case)
    return static, params, facility.solve(static, params)


@pytest.mark.slow
def test_one_plate_rack_without_losses_equals_the_single_accelerator_hall(tmp_path):
    (tmp_path / "rack.toml").write_text(rack_text())
    (tmp_path / "old.toml").write_text(OLD_HALL)
    (tmp_path / "new.toml").write_text(hall_with_rack("rack.toml", 576))
    _, _, old = solved(tmp_path / "old.toml")
    static, _, new = solved(tmp_path / "new.toml")
    assert bool(np.all(old.info.converged)) and bool(np.all(new.info.converged))
    j_old = np.asarray(old.ops.p_facility / old.ops.tokens_per_s)
    j_new = np.asarray(new.ops.p_facility / new.ops.tokens_per_s)
    np.testing.assert_allclose(j_new, j_old, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(new.ops.t_j), np.asarray(old.ops.t_j), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(new.t_plates)[:, 0], np.asarray(old.ops.t_j), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(new.ops.p_pump_tcs), np.asarray(old.ops.p_pump_tcs), rtol=1e-8)


def test_rack_without_losses_outside_its_plates_runs_and_splits_evenly(tmp_path):
    """rack_text()'s near-lossless rack (every edge but the plates loses
    1e-9 to 1e-7 Pa, under the round-off of its 1.5 bar), four trays of two
    plates: the network Newton used to stall after 2 steps at a relative
    residual of 6e-7 and ``thermo run`` exited 3."""
    import json

    (tmp_path / "rack.toml").write_text(rack_text(trays=4, plates=("gpu", "gpu"), flow="10 L/min"))
    assert main(["run", str(tmp_path / "rack.toml"), "-o", str(tmp_path / "out"), "-q"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    s = {k: v["value"] for k, v in summary.items() if isinstance(v, dict) and "value" in v}
    assert s["solver_converged"] is True and s["solver_residual"] < 5.7e-14
    # alike trays on a 1 m manifold: measured 1 - 1.2e-10 and 1 + 1.6e-10
    assert 1 - 1e-8 < s["tray_flow_ratio_min"] <= s["tray_flow_ratio_max"] < 1 + 1e-8
    assert s["heat_balance_error"] < 1e-12


@pytest.mark.slow
def test_energy_closes_every_hour_with_cpu_plates_upstream(tmp_path):
    cpu = """[[plate_types]]
name = "cpu"
power = "300 W"
dp_rated = "25 kPa"
flow_rated = "10 L/min"
resistance_flow = ["1 L/min", "4 L/min"]
resistance = ["0.06 K/W", "0.04 K/W"]"""
    (tmp_path / "rack.toml").write_text(rack_text(trays=3, plates=("cpu", "gpu", "gpu"), flow="9 L/min",
                                                  manifold="20 mm", hose="8 mm", cv=2.0, extra_plates=cpu))  # fmt: skip
    (tmp_path / "hall.toml").write_text(hall_with_rack("rack.toml", 96, accelerators=576))
    static, params, sol = solved(tmp_path / "hall.toml")
    assert bool(np.all(sol.info.converged))
    hall = facility.with_properties(static, params.hall)
    ops = sol.ops
    from aidc_thermo.kernels.plant import it_power

    acc = hall.accelerator
    t = np.asarray(sol.t_plates)  # (hours, 6)
    clock = np.asarray(it_power.clock_fraction(acc, t.max(axis=-1)))
    p = (float(acc.p_idle) + np.asarray(params.utilization)[:, None] * float(acc.p_dynamic) * clock[:, None]
         + np.asarray(it_power.leakage_power(acc, t)))  # fmt: skip
    p_acc = 96 * p.sum(axis=-1)
    fixed = 96 * 3 * 300.0
    p_other = 576 * float(hall.other_it_per_accelerator)
    p_conv = float(hall.conversion_loss_fraction) * (p_acc + p_other)
    q_liquid = p_acc + fixed + float(hall.other_liquid_fraction) * (p_other - fixed + p_conv)
    # accelerator heat (from each plate's own junction) + other plates + pump heat = heat into the CDU
    np.testing.assert_allclose(q_liquid + np.asarray(ops.q_pump_tcs), np.asarray(ops.q_tcs), rtol=1e-9)
    np.testing.assert_allclose(576 * np.asarray(ops.p_accelerator), p_acc, rtol=1e-12)
    for h in range(t.shape[0]):
        op_h = type(ops)(**{k: np.asarray(getattr(ops, k))[h] for k in ops.__dataclass_fields__})
        for name, (left, right) in chain_balances(hall, op_h).items():
            tol = dict(abs=1e-9) if name == "device inlet temperature" else dict(rel=1e-9, abs=1e-3)
            assert left == pytest.approx(right, **tol), name
    # the CPU upstream heats the first GPU, which heats the second: inlet rise = upstream heat / (rho cp q)
    assert np.all(np.diff(t, axis=-1)[:, [0, 2, 4]] > 0)


@pytest.mark.slow
def test_undersized_manifold_makes_a_worst_plate_that_throttles_the_hall(tmp_path):
    hot = OLD_HALL.replace('throttle_temperature = "95 degC"', 'throttle_temperature = "55 degC"')
    results = {}
    for name, dia in (("small", "10 mm"), ("large", "1 m")):
        (tmp_path / f"{name}.toml").write_text(rack_text(trays=8, flow="20 L/min", manifold=dia, hose="6 mm",
                                                         cv=2.0, layout="U"))  # fmt: skip
        text = re.sub(r"\[cold_plate\]\n[^\[]*", "", hot)
        text = re.sub(r'flow_per_accelerator = "[^"]*"[^\n]*\n', "", text)
        text = re.sub(r"accelerators = 576[^\n]*\n", "", text)
        text += f'\n[rack]\ncase = "{name}.toml"\nracks = 72\naccelerator_plate = "gpu"\n'
        (tmp_path / f"hall_{name}.toml").write_text(text)
        results[name] = solved(tmp_path / f"hall_{name}.toml")[2]
    small, large = results["small"], results["large"]
    assert bool(np.all(small.info.converged)) and bool(np.all(large.info.converged))
    t_small, t_large = np.asarray(small.t_plates), np.asarray(large.t_plates)
    assert np.all(t_small.max(axis=-1) > t_large.max(axis=-1) + 0.1)
    assert np.all(np.asarray(small.ops.clock) < np.asarray(large.ops.clock))
    # oversized manifold, alike plate positions: the plates agree
    assert np.all(t_large.max(axis=-1) - t_large.min(axis=-1) < 1e-3)
    q = np.asarray(small.rack.plate_flow)
    assert q.max() / q.min() > 1.05  # the undersized manifold starves some plates


@pytest.mark.parametrize(
    "rack_file, edit, key, fragment",
    [
        ("nope.toml", None, "rack.case", "file not found"),
        ("other.toml", "other", "rack.case", "expected a 'rack_network' case"),
        ("rack.toml", ('accelerator_plate = "gpu"', 'accelerator_plate = "tpu"'), "rack.accelerator_plate", "tpu"),
        ("rack.toml", ("[secondary]", "[cold_plate]\ncurves = \"x.csv\"\n\n[secondary]"), "cold_plate", "remove"),
        ("rack.toml", ("loop_pressure_drop =", 'flow_per_accelerator = "2.5 L/min"\nloop_pressure_drop ='),
         "secondary.flow_per_accelerator", "remove this key"),
        ("rack.toml", ("[it]\n", "[it]\naccelerators = 500\n"), "it.accelerators", "does not match"),
        ("rack.toml", ("volume_fraction = 0.25 ", "volume_fraction = 0.30 "), "secondary.coolant", "differs"),
        ("rack.toml", ('other_power_per_accelerator = "400 W"', 'other_power_per_accelerator = "0 W"'),
         "it.other_power_per_accelerator", "other cold plates"),
    ],
)
def test_malformed_rack_references_exit_2_naming_file_and_key(tmp_path, capsys, rack_file, edit, key, fragment):
    cpu = """[[plate_types]]
name = "cpu"
power = "300 W"
dp_rated = "25 kPa"
flow_rated = "10 L/min"
resistance_flow = ["1 L/min", "4 L/min"]
resistance = ["0.06 K/W", "0.04 K/W"]"""
    (tmp_path / "rack.toml").write_text(rack_text(plates=("cpu", "gpu"), extra_plates=cpu))
    (tmp_path / "other.toml").write_text(OLD_HALL)
    text = hall_with_rack(rack_file, 576)
    if isinstance(edit, tuple):
        assert edit[0] in text, edit
        text = text.replace(edit[0], edit[1], 1)
    path = tmp_path / "hall.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert key in err and str(path) in err and fragment in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.slow
def test_gradient_through_the_rack_chain_matches_central_differences(tmp_path):
    """d(J/token)/d(supply setpoint) and d/d(rack manifold diameter) by implicit
    differentiation (custom_root on every accelerator's junction, through the
    rack network's flows) against central differences."""
    import dataclasses

    import jax
    import jax.numpy as jnp

    (tmp_path / "rack.toml").write_text(rack_text(trays=4, plates=("gpu", "gpu"), flow="12 L/min", manifold="12 mm",
                                                  hose="8 mm", cv=2.0))  # fmt: skip
    (tmp_path / "hall.toml").write_text(hall_with_rack("rack.toml", 72))
    static, params = facility.build(facility.parse(load(tmp_path / "hall.toml")))

    def j(t_set, dia):
        p = params._replace(hall=dataclasses.replace(params.hall, t_supply_set=t_set),
                            rack=params.rack._replace(manifold_diameter=dia))  # fmt: skip
        s = facility.solve(static, p)
        return jnp.sum(s.ops.p_facility) / jnp.sum(s.ops.tokens_per_s)

    t0, d0 = params.hall.t_supply_set, params.rack.manifold_diameter
    f = jax.jit(j)
    g_t, g_d = jax.jit(jax.grad(j, argnums=(0, 1)))(t0, d0)
    fd_t = (f(t0 + 0.01, d0) - f(t0 - 0.01, d0)) / 0.02
    fd_d = (f(t0, d0 + 1e-5) - f(t0, d0 - 1e-5)) / 2e-5
    assert float(g_t) == pytest.approx(float(fd_t), rel=1e-6)
    assert float(g_d) == pytest.approx(float(fd_d), rel=1e-4)
    assert float(g_d) < 0  # a wider manifold: less pump power, cooler worst plate


@pytest.mark.parametrize("key", ["channel_width", "fin_thickness"])
def test_optimize_of_a_rack_hall_refuses_plate_geometry_bounds(tmp_path, capsys, key):
    (tmp_path / "rack.toml").write_text(rack_text())
    path = tmp_path / "hall.toml"
    text = hall_with_rack("rack.toml", 576)
    path.write_text(text.replace("\n[optimize]\n", f'\n[optimize]\n{key} = ["0.1 mm", "0.3 mm"]\n'))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: optimize.{key}: " in err and "supply setpoint and flow scale only" in err, err


@pytest.mark.slow  # the rack hall's point, grid map and gradient compiled: about 1.5 min
def test_optimize_of_a_rack_hall_beats_its_grid_and_equals_a_run_at_the_optimum(tmp_path):
    """thermo optimize on a hall of 144 racks (2 trays of 2 GPU plates in series): the rack network follows the
    flow scale; the refined optimum is no worse than the grid's best and the case, keeps the hottest plate within
    the limit, equals the solve of that design (1e-9), and no feasible neighbour 0.5 K / 2 % away is better."""
    import json

    import jax.numpy as jnp

    (tmp_path / "rack.toml").write_text(rack_text(trays=2, plates=("gpu", "gpu"), flow="5 L/min", manifold="25 mm",
                                                  hose="10 mm", cv=5))  # fmt: skip
    path = tmp_path / "hall.toml"
    path.write_text(hall_with_rack("rack.toml", 144, accelerators=576))
    assert main(["optimize", str(path), "-o", str(tmp_path / "out")]) == 0
    s = {k: v["value"] for k, v in json.loads((tmp_path / "out" / "summary.json").read_text()).items()
         if isinstance(v, dict) and "value" in v}  # fmt: skip
    assert s["method"] == "grid + SLSQP (implicit gradients)", s["method"]
    j = s["J_per_token_facility_opt"]
    assert j <= s["grid_best_J_per_token_facility"] <= s["J_per_token_facility_case"]
    assert s["T_junction_max_opt"] <= s["junction_limit"] + 1e-6
    assert s["rack_flow_opt"] == pytest.approx(5.0 * s["flow_scale_opt"], rel=1e-12)
    assert s["accelerator_flow_min_opt"] == pytest.approx(2.5 * s["flow_scale_opt"], rel=1e-3)  # 2 trays share it

    case = facility.parse(load(path))
    static, params = facility.build(case)
    solve = facility.compiled_solve(static, batched=False)

    def at(t_c, scale):
        p = facility.with_controls(params, jnp.asarray(t_c + T0), jnp.asarray(scale))
        sol = facility.Solution(*solve(p))
        facility.check(static, p, sol)
        out = facility.report(static, p, sol)
        return float(out["J_per_token_facility"].value), float(out["T_junction_max"].value)

    t_opt, f_opt = s["supply_temperature_opt"], s["flow_scale_opt"]
    j_run, tj_run = at(t_opt, f_opt)
    assert j_run == pytest.approx(j, rel=1e-9) and tj_run == pytest.approx(s["T_junction_max_opt"], abs=1e-7)
    for dt_c, df in ((-0.5, 0.0), (0.5, 0.0), (0.0, -0.02), (0.0, 0.02)):
        jn, tjn = at(t_opt + dt_c, f_opt * (1 + df))
        assert jn >= j * (1 - 1e-9) or tjn > s["junction_limit"], (dt_c, df, jn, j)
def test_fmu_refuses_a_hall_of_rack_networks(tmp_path, capsys):
    (tmp_path / "rack.toml").write_text(rack_text())
    path = tmp_path / "hall.toml"
    path.write_text(hall_with_rack("rack.toml", 576))
    assert main(["fmu", str(path), "-o", str(tmp_path / "x.fmu")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "rack" in err and "Traceback" not in err
    assert not (tmp_path / "x.fmu").exists()


@pytest.mark.slow  # the rack hall's year compiled twice (batched for the sweep, alone for the run): ~40 s
def test_sweep_of_a_rack_hall_equals_its_designs_run_alone(tmp_path):
    """thermo sweep over a hall of rack networks: each design's J/token and worst-plate junction equal a thermo run
    of that design (1e-10), so the compiled, batched report carries the per-plate outputs too."""
    import shutil

    from aidc_thermo.io.results import summary_values
    from aidc_thermo.sweep import read_table

    for f in ("nvl72_racks_dry_cooler_temperate.toml", "rack_nvl72.toml", "compact_gpu_coldplate.toml"):
        shutil.copy(CASES / f, tmp_path / f)
    shutil.copytree(CASES / "data", tmp_path / "data")
    (tmp_path / "sweep.toml").write_text(
        '[sweep]\ncase = "nvl72_racks_dry_cooler_temperate.toml"\n'
        'outputs = ["J_per_token_facility", "T_junction_worst_peak", "junction_margin"]\n'
        '[[parameter]]\nkey = "facility_water.supply_temperature"\nvalues = ["28 degC", "36 degC"]\n'
    )
    assert main(["sweep", str(tmp_path / "sweep.toml"), "-o", str(tmp_path / "sw"), "--no-plots"]) == 0
    table = read_table(tmp_path / "sw")
    assert list(table["status"][0]) == ["ok", "ok"]
    base = (tmp_path / "nvl72_racks_dry_cooler_temperate.toml").read_text()
    assert 'supply_temperature = "32 degC"' in base
    one = tmp_path / "one.toml"
    one.write_text(base.replace('supply_temperature = "32 degC"', 'supply_temperature = "36 degC"', 1))
    assert main(["run", str(one), "-o", str(tmp_path / "one"), "-q"]) == 0
    s = summary_values(tmp_path / "one")
    for key in ("J_per_token_facility", "T_junction_worst_peak", "junction_margin"):
        assert table[key][0][1] == pytest.approx(s[key], rel=1e-10), key


@pytest.mark.parametrize(
    "drop, key",
    [("accelerators = 576", "it.accelerators"), ("[cold_plate]", "cold_plate")],
)
def test_a_hall_without_racks_still_requires_its_accelerators_and_cold_plate(tmp_path, capsys, drop, key):
    """[it] accelerators and [cold_plate] are optional only with [rack]; without it their absence exits 2 naming the
    key (it reached the solve as a sentinel object and died on a TypeError)."""
    text = (CASES / "nvl72_dry_cooler_temperate.toml").read_text()
    lines = text.splitlines(keepends=True)
    if drop.startswith("["):
        i = next(k for k, line in enumerate(lines) if line.startswith(drop))
        j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("["))
        lines = lines[:i] + lines[j:]
    else:
        lines = [line for line in lines if not line.startswith(drop)]
    case = tmp_path / "hall.toml"
    case.write_text("".join(lines))
    shutil.copytree(CASES / "data", tmp_path / "data")
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert f"{key}: missing required key" in err and "Traceback" not in err


def _small_plate(tmp_path, flow_range=("1.5 L/min", "5 L/min"), coolant=None):
    """The bundled GPU plate, coarse (8 x 8 columns, 3 curve flows); written as plate.toml."""
    text = bundled_gpu_plate()
    text = re.sub(r"cells = \[\d+, \d+\]", "cells = [8, 8]", text)
    text = re.sub(r"flow_range = \[[^\]]*\]", f'flow_range = ["{flow_range[0]}", "{flow_range[1]}"]', text)
    text = re.sub(r"curve_points = \d+", "curve_points = 3", text)
    if coolant is not None:
        text = re.sub(r"\[coolant\]\n[^\[]*", f"[coolant]\n{coolant}\n\n", text)
    (tmp_path / "plate.toml").write_text(text + "\n[output]\nplots = false\n")


@pytest.mark.slow  # a compact plate and a rack hall compiled
def test_accelerator_plate_case_replaces_the_rack_cases_curves(tmp_path, monkeypatch):
    """[rack] accelerator_plate_case: the hall's GPU plates take the plate case's solved curves, the rack file
    untouched. It equals the rack case whose GPU plate type reads those curves as a curve file (1e-12), and
    differs from the rack's own curve file (so the swap is not ignored)."""
    from aidc_thermo import curve_cache

    monkeypatch.setenv(curve_cache.ENV, str(tmp_path / "cache"))
    curve_cache.begin_run()
    _small_plate(tmp_path)
    rack = rack_text(trays=2, plates=("gpu", "gpu"), flow="5 L/min", manifold="25 mm", hose="10 mm", cv=5)
    (tmp_path / "rack.toml").write_text(rack)
    base = hall_with_rack("rack.toml", 144, accelerators=576)
    (tmp_path / "swap.toml").write_text(base + 'accelerator_plate_case = "plate.toml"\n')
    (tmp_path / "own.toml").write_text(base)
    case = facility.parse(load(tmp_path / "swap.toml"))
    rec = curve_cache.records()
    assert len(rec) == 1 and rec[0]["key"] == "rack.accelerator_plate_case"
    (tmp_path / "c.csv").write_text(Path(rec[0]["cache_file"]).read_text())
    (tmp_path / "rack_file.toml").write_text(rack.replace(str(CURVES), "c.csv"))
    (tmp_path / "file.toml").write_text(hall_with_rack("rack_file.toml", 144, accelerators=576))
    out = {}
    for tag, c in (("swap", case), ("file", facility.parse(load(tmp_path / "file.toml"))),
                   ("own", facility.parse(load(tmp_path / "own.toml")))):  # fmt: skip
        static, params = facility.build(c)
        sol = facility.compiled_solve(static, batched=False)(params)
        facility.check(static, params, sol)
        out[tag] = {k: np.asarray(v.value) for k, v in facility.report(static, params, sol).items()}
    numeric = [k for k in out["swap"] if out["swap"][k].dtype.kind == "f"]
    for k in numeric:
        np.testing.assert_allclose(out["swap"][k], out["file"][k], rtol=1e-12, atol=0, err_msg=k)
    assert abs(out["swap"]["T_junction_max"] - out["own"]["T_junction_max"]) > 0.1


@pytest.mark.parametrize(
    "value, coolant, message",
    [
        ('"missing.toml"', None, "file not found"),
        ('"rack.toml"', None, "a cold plate by reference must be a case of type"),
        ('"plate.toml"', 'fluid = "water"', "made with 'water'"),
    ],
)
def test_accelerator_plate_case_refusals_exit_2(tmp_path, capsys, value, coolant, message):
    _small_plate(tmp_path, coolant=coolant)
    (tmp_path / "rack.toml").write_text(rack_text())
    (tmp_path / "hall.toml").write_text(hall_with_rack("rack.toml", 576) + f"accelerator_plate_case = {value}\n")
    assert main(["check", str(tmp_path / "hall.toml")]) == 2
    err = capsys.readouterr().err
    assert "rack.accelerator_plate_case" in err and message in err, err


@pytest.mark.slow  # a one-hour rack hall compiled twice, and a coarse compact plate
def test_rack_plate_flow_outside_its_curves_exits_2_naming_the_reference(tmp_path, capsys, monkeypatch):
    """The rack's solved plate flow (2.5 L/min) below the curves' range is a problem of the case (its own flows
    and curves disagree): exit 2 naming the hall file and the key of the curve reference, no results."""
    from aidc_thermo import curve_cache

    monkeypatch.setenv(curve_cache.ENV, str(tmp_path / "cache"))
    lines = CURVES.read_text().splitlines()
    rows = [ln for ln in lines if ln[:1].isdigit() and float(ln.split(",")[0]) >= 3.5]
    (tmp_path / "c.csv").write_text("\n".join([ln for ln in lines if not ln[:1].isdigit()] + rows) + "\n")
    rack = rack_text(manifold="25 mm", hose="10 mm", cv=5)  # 2.5 L/min through the one plate
    (tmp_path / "rack.toml").write_text(rack.replace(str(CURVES), "c.csv"))
    (tmp_path / "hall.toml").write_text(hall_with_rack("rack.toml", 576))
    assert main(["run", str(tmp_path / "hall.toml"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'hall.toml'}: rack.case: " in err, err
    assert "outside the flow range of its cold-plate curves (3.5..6 L/min)" in err
    assert "rack.toml's plate_types[0].curves" in err, err
    assert not (tmp_path / "out").exists()
    static, params = facility.build(facility.parse(load(tmp_path / "hall.toml")))  # a sweep's design: screened
    sol = facility.compiled_solve(static, batched=False)(params)
    outputs = {k: np.asarray(o.value) for k, o in facility.report(static, params, sol).items()}
    assert facility.screen(static, params, outputs).startswith("1 plates of the rack network run outside the flow "
                                                                "range of their cold-plate curves")  # fmt: skip

    _small_plate(tmp_path, flow_range=("3 L/min", "5 L/min"))
    (tmp_path / "rack.toml").write_text(rack)
    (tmp_path / "swap.toml").write_text(hall_with_rack("rack.toml", 576) + 'accelerator_plate_case = "plate.toml"\n')
    assert main(["run", str(tmp_path / "swap.toml"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'swap.toml'}: rack.accelerator_plate_case: " in err, err
    assert "outside the flow range of its cold-plate curves (3..5 L/min)" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the bundled rack hall's first 30 hours compiled four times (two solves, two gradients): ~1.5 min
def test_a_rack_year_started_from_alike_hours_equals_one_cold_pass_over_every_hour(monkeypatch):
    """Compiled for a CPU the junctions' iteration of a rack hall starts every hour from an alike hour's
    solution (``facility._from_neighbours`` in the plan of ``facility._cpu_plan``); for an accelerator it runs
    every hour at once from the cold start (the path taken here with None). In groups of 4 sorted hours (30 hours
    and 2 of padding) and rounds of 3 lanes, some hours converge at their start and the others iterate from it
    over several rounds; every hour's answer and the gradient of J/token with respect to the supply setpoint
    equal those of the one-pass solve to the solver's tolerance (junctions 5e-9 K, powers and temperatures 1e-10
    relative, gradient 1e-8), and the starts save iterations."""
    import dataclasses
    import functools

    import jax
    import jax.numpy as jnp

    case = facility.parse(load(CASES / "nvl72_racks_dry_cooler_temperate.toml"))
    static, params = facility.build(case)
    n = 30
    params = params._replace(
        ambient=jax.tree_util.tree_map(lambda a: a[:n], params.ambient), utilization=params.utilization[:n]
    )
    static = dataclasses.replace(static, hours=n, times=static.times[:n])
    n_plates = len(static.rack.accelerators)
    assert facility._cpu_plan(n_plates) == (facility._CPU_SPACING, facility._CPU_LANES)
    assert facility._cpu_plan(10 * facility._CPU_ROUND_PLATE_HOURS) == (facility._CPU_SPACING, 1)

    def compiled(plan):
        monkeypatch.setattr(facility, "_cpu_plan", lambda n_plates: plan)

        def j(t_set):
            s = facility.solve(static, params._replace(hall=dataclasses.replace(params.hall, t_supply_set=t_set)))
            return jnp.sum(s.ops.p_facility) / jnp.sum(s.ops.tokens_per_s)

        # traced now, while the plan is patched
        solve = jax.jit(functools.partial(facility.solve, static)).lower(params).compile()
        grad = jax.jit(jax.grad(j)).lower(params.hall.t_supply_set).compile()
        return solve(params), grad(params.hall.t_supply_set)

    started, g_started = compiled((4, 3))
    whole, g_whole = compiled(None)
    assert bool(np.all(started.info.converged)) and bool(np.all(whole.info.converged))
    iterations = np.asarray(started.info.iterations)
    assert np.sum(iterations == 0) > 0 and np.sum(iterations > 0) > 3  # converged at the start; rounds of 3
    assert float(np.max(np.asarray(started.info.residual))) <= 1e-9
    np.testing.assert_allclose(np.asarray(started.t_plates), np.asarray(whole.t_plates), rtol=0, atol=5e-9)
    assert int(np.sum(iterations)) < int(np.sum(whole.info.iterations))
    for name in ("p_facility", "p_cooling", "tokens_per_s", "t_tcs_supply", "fan_fraction", "t_j_model"):
        np.testing.assert_allclose(np.asarray(getattr(started.ops, name)), np.asarray(getattr(whole.ops, name)),
                                   rtol=1e-10, err_msg=name)  # fmt: skip
    # an hour that converged at its start reports the residual there and nothing after it
    history = np.asarray(started.info.history)[iterations == 0]
    np.testing.assert_array_equal(history[:, 0], np.asarray(started.info.residual)[iterations == 0])
    assert np.all(np.isnan(history[:, 1:]))
    assert float(g_started) == pytest.approx(float(g_whole), rel=1e-8)
    assert float(g_whole) != 0.0
