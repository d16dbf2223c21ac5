"""``facility`` case type: weather files, case validation, the energy-per-token
report at a design point, and ``thermo optimize`` against a brute-force scan."""

import json
import re
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io import weather
from aidc_thermo.io.case import CaseError, load
from aidc_thermo.io.results import summary_values
from aidc_thermo.kernels import psychro
from aidc_thermo.models import facility

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"
# the cold-plate curve file by absolute path, so that the case texts run from any folder
TEMPERATE = (CASES / "nvl72_dry_cooler_temperate.toml").read_text().replace('"data/gpu', f'"{CASES}/data/gpu')
HOT = (CASES / "nvl72_chiller_tower_hot_humid.toml").read_text().replace('"data/gpu', f'"{CASES}/data/gpu')
T0 = 273.15
#: the halls' cold plate before they read cases/data/gpu_coldplate_curves.csv
PARAMETRIC_PLATE = """resistance_base = "0.020 K/W"
resistance_flow = "0.006 K/W"
resistance_exponent = 1.1
reference_flow = "2.5 L/min"
pressure_drop = "15 kPa"
pressure_drop_exponent = 1.85"""


def design_point(text, ambient, extra=""):
    """The bundled case with its weather file replaced by one design point."""
    new = re.sub(r"\[ambient\]\n[^\[]*", f"[ambient]\n{ambient}\n\n", text)
    assert new != text
    return new + extra


def write(tmp_path, text, name="case.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------- weather


def test_bundled_weather_files_are_the_documented_synthetic_years(tmp_path):
    for key in weather.CLIMATES:
        bundled = CASES / "data" / f"weather_{key}.csv"
        fresh = tmp_path / f"{key}.csv"
        weather.write_weather(fresh, key)
        assert fresh.read_text() == bundled.read_text()  # reproducible from the recipe
        w = weather.read_weather(bundled)
        assert len(w) == 8760
        c = weather.CLIMATES[key]
        # The annual mean follows the monthly normals it was built from.
        assert np.mean(w.t_db) - T0 == pytest.approx(np.mean(c.mean_c), abs=0.7)
        assert np.all(w.t_wb <= w.t_db + 1e-9)


def test_synthetic_year_reproduces_its_statistics_without_weather_noise():
    c = weather.CLIMATES["temperate"]
    quiet = weather.Climate(**{**c.__dict__, "sigma": 0.0, "dew_sigma": 0.0})
    _, t_db, rh = weather.synthetic_year(quiet)
    days = np.cumsum((0,) + weather._MONTH_DAYS) * 24
    monthly = [t_db[days[i] : days[i + 1]].mean() for i in range(12)]
    # Periodic interpolation between mid-month values smooths the extremes a little.
    np.testing.assert_allclose(monthly, c.mean_c, atol=0.6)
    daily = t_db[:24]
    assert daily.max() - daily.min() == pytest.approx(c.range_c[0], abs=0.3)
    assert np.argmax(daily) == 15 and np.argmin(daily) == 3
    assert 0 < rh.min() and rh.max() <= 100.0


def test_relative_humidity_becomes_the_psychrometric_wet_bulb(tmp_path):
    text = "# a comment\ntime,dry_bulb_C,relative_humidity_pct\n2001-01-01T00:00,30.0,50.0\n2001-01-01T01:00,-5.0,80\n"
    path = write(tmp_path, text, "w.csv")
    w = weather.read_weather(path, pressure=95000.0)
    expected = psychro.wet_bulb(jnp.asarray(w.t_db), jnp.asarray([0.5, 0.8]), 95000.0)
    np.testing.assert_allclose(w.t_wb, expected, atol=1e-9)
    assert w.time == ("2001-01-01T00:00", "2001-01-01T01:00") and np.all(w.p == 95000.0)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("time,dry_bulb_C\nh,20\n", "exactly one of"),
        ("time,dry_bulb_C,wet_bulb_C,rh\nh,20,15,3\n", "not an ISO 8601 date-time"),  # extra columns are ignored
        ("time,dry_bulb_C,wet_bulb_C\nh,20,25\n", "above the dry bulb"),
        ("time,dry_bulb_C,relative_humidity_pct\nh,20,120\n", "outside 0.0..100.0"),
        ("time,dry_bulb_C,relative_humidity_pct\nh,warm,50\n", "not a number"),
        ("time,dry_bulb_C,relative_humidity_pct\nh,20\n", "expected 3 columns"),
        ("time,dry_bulb_C,relative_humidity_pct\n", "no data rows"),
    ],
)
def test_bad_weather_files_name_the_line(tmp_path, text, fragment):
    path = write(tmp_path, text, "w.csv")
    with pytest.raises(CaseError, match=fragment) as err:
        weather.read_weather(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------- case errors


@pytest.mark.parametrize(
    "old, new, key",
    [
        ('type = "dry_cooler"', 'type = "dry_coler"', "heat_rejection.type"),
        ('flow = "24 L/s"', 'flow = "10 L/s"', "cdu.approach"),  # secondary supply cannot get that close
        # rated approach out of reach with this air flow: found when the ratings are computed (at build)
        ('air_flow = "110 kg/s"', 'air_flow = "30 kg/s"', "heat_rejection.approach"),
        # reachable in principle, but only by an exchanger of more than MAX_NTU transfer units (also at build)
        ('approach = "10 K"', 'approach = "0.001 K"', "heat_rejection.approach"),
        ("tokens_per_second = 4000", "tokens_per_second = 0", "it.tokens_per_second"),
        ('flow = "24 L/s"', 'flow = "24 kg"', "facility_water.flow"),
        ('weather = "data/weather_temperate.csv"', 'weather = "data/nope.csv"', "ambient.weather"),
        ("min_fan_fraction = 0.15", "min_fan_fraction = 0.15\nfan_speed = 1", "heat_rejection.fan_speed"),
        ('junction_limit = "85 degC"', "junction_limit = 85", "it.junction_limit"),
    ],
)
def test_malformed_cases_exit_2_naming_the_key(tmp_path, capsys, old, new, key):
    assert old in TEMPERATE
    path = write(tmp_path, TEMPERATE.replace(old, new))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "weather_temperate.csv").write_text((CASES / "data" / "weather_temperate.csv").read_text())
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert key in err and str(path) in err and "Traceback" not in err
    assert not out.exists()


def test_design_point_needs_one_humidity(tmp_path, capsys):
    path = write(tmp_path, design_point(TEMPERATE, 'dry_bulb = "30 degC"'))
    assert main(["check", str(path)]) == 2
    assert "exactly one of 'wet_bulb' or 'relative_humidity'" in capsys.readouterr().err


# ------------------------------------------------------------ design point


@pytest.fixture(scope="module")
def hot_design(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hot")
    text = design_point(HOT, 'dry_bulb = "33 degC"\nrelative_humidity = 0.65')
    path = write(tmp, text)
    out = tmp / "out"
    assert main(["run", str(path), "-o", str(out)]) == 0
    return path, out


def test_design_point_report_is_consistent(hot_design):
    path, out = hot_design
    s = summary_values(out)
    # facility = IT x (1 + overhead) + cooling, per token
    assert s["J_per_token_facility"] == pytest.approx(s["J_per_token_IT"] * 1.06 + s["J_per_token_cooling"], rel=1e-12)
    assert s["tokens_per_kWh_facility"] == pytest.approx(3.6e6 / s["J_per_token_facility"], rel=1e-12)
    assert s["PUE"] == pytest.approx(s["J_per_token_facility"] / s["J_per_token_IT"], rel=1e-12)
    assert s["partial_PUE_cooling"] == pytest.approx(1 + s["J_per_token_cooling"] / s["J_per_token_IT"], rel=1e-12)
    assert s["solver_converged"] is True and s["solver_residual_max"] < 1e-9
    assert s["water_L_per_kWh"] > 0  # a tower evaporates water
    assert {p.name for p in out.glob("*.png")} == {
        "energy_per_token.png",
        "supply_temperature_sweep.png",
        "design_point.png",
    }
    with h5py.File(out / "results.h5") as h5:
        for group in ("case", "solver", "summary", "hourly", "sweep", "breakdown"):
            assert group in h5, group
        assert h5["hourly/T_junction"].attrs["units"] == "degC"
        # The breakdown adds up to the facility J/token.
        total = sum(float(h5["breakdown"][k][()]) for k in h5["breakdown"])
        assert total == pytest.approx(s["J_per_token_facility"], rel=1e-12)
        # The sweep contains the case's own setpoint (30 degC): same J/token.
        ts = h5["sweep/supply_temperature"][()]
        i = int(np.argmin(np.abs(ts - 30.0)))
        assert ts[i] == pytest.approx(30.0)
        assert h5["sweep/J_per_token_facility"][i] == pytest.approx(s["J_per_token_facility"], rel=1e-12)


def test_design_point_matches_the_kernel_directly(hot_design):
    # The application adds nothing to the physics: the same numbers come from
    # kernels.plant.coupled with the parsed parameters.
    from aidc_thermo.kernels.plant.coupled import Ambient, solve_operating_point
    from aidc_thermo.models.accounting import energy_metrics

    path, out = hot_design
    case = facility.parse(load(path))
    static, params = facility.build(case)
    fac, config = params.hall, static.config
    w = case.weather
    amb = Ambient(jnp.float64(w.t_db[0]), jnp.float64(w.t_wb[0]), jnp.float64(w.p[0]))
    op, info = jax.jit(lambda f, a: solve_operating_point(f, a, config))(fac, amb)
    s = json.loads((out / "summary.json").read_text())
    assert s["J_per_token_facility"]["value"] == pytest.approx(
        float(energy_metrics(op).j_per_token_facility), rel=1e-12
    )
    assert s["T_junction_max"]["value"] == pytest.approx(float(op.t_j) - T0, abs=1e-9)


# ------------------------------------------------------------------- optimize


@pytest.mark.slow
def test_optimize_finds_the_brute_force_optimum(tmp_path):
    # Hot humid design point with a junction limit that binds: warmer water
    # saves chiller energy until the junction limit stops it.
    # The scan-cell bound below was set with the parametric cold plate the hall cases had before they read the
    # compact plate's curve file (whose kinks between rows change J/token per scan cell); this test of the
    # optimizer keeps that plate.
    text = design_point(
        HOT,
        'dry_bulb = "33 degC"\nrelative_humidity = 0.65',
    ).replace('junction_limit = "85 degC"', 'junction_limit = "62 degC"')
    text = re.sub(r"\[cold_plate\]\n[^\[]*", f"[cold_plate]\n{PARAMETRIC_PLATE}\n\n", text)
    path = write(tmp_path, text)
    out = tmp_path / "opt"
    assert main(["optimize", str(path), "-o", str(out)]) == 0
    s = summary_values(out)
    case = facility.parse(load(path))
    static, params = facility.build(case)
    metrics = facility._year_metrics(static)

    @jax.jit
    def scan(ts, ss):
        def at(x):
            j, tj, conv, _ = metrics(facility.with_controls(params, x[0], x[1]))
            return j, tj, conv

        return jax.lax.map(at, jnp.stack([ts, ss], axis=1))

    t = np.linspace(22.0, 42.0, 81) + T0
    sc = np.linspace(0.6, 1.6, 41)
    tt, ss = np.meshgrid(t, sc, indexing="ij")
    j, tj, conv = (np.asarray(a) for a in scan(jnp.asarray(tt.ravel()), jnp.asarray(ss.ravel())))
    feasible = conv & (tj <= case.optimize.junction_limit)
    best = float(np.min(np.where(feasible, j, np.inf)))
    # The optimizer is at least as good as every feasible point of a 81 x 41 scan
    # (spacing 0.25 K x 0.025), and not better than the scan by more than the
    # change of J/token across one scan cell.
    assert s["T_junction_max_opt"] <= 62.0 + 1e-6
    assert s["J_per_token_facility_opt"] <= best * (1 + 1e-9)
    assert s["J_per_token_facility_opt"] >= best * (1 - 2e-4)
    assert s["junction_limit_active"] is True
    assert s["saving_vs_case"] > 0
    k = int(np.argmin(np.where(feasible, j, np.inf)))
    assert s["supply_temperature_opt"] == pytest.approx(tt.ravel()[k] - T0, abs=0.6)
    assert (out / "optimize.png").is_file()


# ------------------------------------------------------------------- protocol

HOURS = 24  # the first day of the hot-humid year: hours with and without the chiller


def _first_hours(static, params, n=HOURS):
    import dataclasses

    params = params._replace(
        ambient=jax.tree_util.tree_map(lambda a: a[:n], params.ambient), utilization=params.utilization[:n]
    )
    return dataclasses.replace(static, hours=n, times=static.times[:n]), params


@pytest.fixture(scope="module")
def hot_hours():
    case = facility.parse(load(CASES / "nvl72_chiller_tower_hot_humid.toml"))
    return (case, *_first_hours(*facility.build(case)))


@pytest.mark.slow  # default-suite time (CI machine): a validation that compiles for tens of seconds
def test_batched_solve_equals_the_loop_over_designs(hot_hours):
    """vmap over stacked Params of four designs (setpoint and flow, chip
    power, fan and hall size) gives every design's own answer to 1e-10."""
    import dataclasses

    case, static, params = hot_hours
    hall = params.hall
    acc = dataclasses.replace(hall.accelerator, p_dynamic=hall.accelerator.p_dynamic * 1.2)
    dev = dataclasses.replace(hall.device, fan_power_rated=hall.device.fan_power_rated * 0.7)
    designs = [
        params,
        facility.with_controls(params, hall.t_supply_set - 5.0, 1.3),
        params._replace(hall=dataclasses.replace(hall, accelerator=acc)),
        params._replace(hall=dataclasses.replace(hall, device=dev, n_accelerators=hall.n_accelerators * 0.8)),
    ]
    batch = facility.stack(designs)
    sol_b = facility.compiled_solve(static)(batch)
    rep_b = facility.report(static, batch, sol_b)
    assert np.asarray(rep_b["J_per_token_facility"].value).shape == (4,)
    one = facility.compiled_solve(static, batched=False)
    j = []
    for i, p in enumerate(designs):
        s = one(p)
        facility.check(static, p, s)
        for k, o in facility.report(static, p, s).items():
            np.testing.assert_allclose(np.asarray(rep_b[k].value)[i], np.asarray(o.value), rtol=1e-10, err_msg=k)
        np.testing.assert_allclose(np.asarray(sol_b.ops.t_j[i]), np.asarray(s.ops.t_j), rtol=1e-10)
        j.append(float(np.asarray(rep_b["J_per_token_facility"].value)[i]))
    assert bool(np.all(np.asarray(rep_b["converged"].value)))
    assert len(set(j)) == 4  # the designs really differ


@pytest.mark.slow
def test_coolant_properties_follow_the_supply_setpoint(hot_hours):
    """The supply-temperature sweep of thermo run and the objective of thermo
    optimize evaluate the coolant properties at the setpoint they solve, not
    at the case's: both equal the coupled kernel solved with the properties
    that a case file written at that setpoint gets from parse."""
    import dataclasses
    import tomllib

    from aidc_thermo.io.case import CaseFile
    from aidc_thermo.kernels.plant.coupled import solve_operating_point
    from aidc_thermo.models.accounting import annual_totals

    case, static, params = hot_hours
    t_new = case.params["t_supply_set"] - 8.0  # 22 degC
    text = HOT.replace('supply_temperature = "30 degC"', 'supply_temperature = "22 degC"')
    text = text.replace('weather = "data/', f'weather = "{CASES}/data/')
    other = facility.parse(CaseFile(CASES / "x.toml", text, tomllib.loads(text))).params
    assert other["t_supply_set"] == pytest.approx(t_new, abs=1e-12)

    @jax.jit
    def hours(hall):
        def hour(a, u):
            return solve_operating_point(dataclasses.replace(hall, utilization=u), a, static.config)

        return jax.vmap(hour)(params.ambient, params.utilization)

    def kernel(props):
        ops, info = hours(dataclasses.replace(params.hall, t_supply_set=jnp.float64(t_new), **props))
        assert bool(np.all(info.converged))
        return float(annual_totals(ops, 1.0).metrics.j_per_token_facility)

    names = ("rho_tcs", "cp_tcs", "rho_fw", "cp_fw")
    expected = kernel({k: jnp.float64(other[k]) for k in names})
    frozen = kernel({})  # properties left at the case's setpoint (the old behaviour)
    assert abs(frozen / expected - 1) > 1e-7  # the test can tell the two apart
    # thermo run's sweep: the case's setpoint, t_new and two more in one batched solve
    t_set = case.params["t_supply_set"]
    designs = facility._with_setpoints(params, (t_set, t_new, t_set - 4.0, t_set + 4.0))
    swept = facility.report(static, designs, facility.compiled_solve(static)(designs))
    assert float(swept["J_per_token_facility"].value[1]) == pytest.approx(expected, rel=1e-12)
    # thermo optimize's objective at (t_new, flow scale 1)
    j_opt = jax.jit(lambda t: facility._year_metrics(static)(facility.with_controls(params, t, 1.0))[0])
    assert float(j_opt(jnp.float64(t_new))) == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow
def test_gradient_wrt_supply_temperature_matches_central_differences(hot_hours):
    """d(J/token)/dT_supply and d(mean T_j)/dT_supply by forward-mode AD
    through solve (implicit derivative of every hour's coupled solve, coolant
    properties included) agree with central finite differences."""
    case, static, params = hot_hours

    def outputs(t):
        p = facility.with_controls(params, t, jnp.float64(1.0))
        r = facility.report(static, p, facility.solve(static, p))
        return jnp.stack([r["J_per_token_facility"].value, r["T_junction_mean"].value])

    f = jax.jit(outputs)
    t0 = jnp.float64(case.params["t_supply_set"])
    _, d = jax.jit(lambda t: jax.jvp(outputs, (t,), (jnp.ones_like(t),)))(t0)
    # h small enough that no hour of the day changes regime (chiller on/off,
    # free cooling) inside [t0 - h, t0 + h]: at h = 0.02 K one does (a kink)
    h = 1e-3
    fd = (np.asarray(f(t0 + h)) - np.asarray(f(t0 - h))) / (2 * h)
    np.testing.assert_allclose(np.asarray(d), fd, rtol=1e-5)
    assert abs(float(d[0])) > 0 and float(d[1]) > 0.5  # a warmer supply: a warmer junction
