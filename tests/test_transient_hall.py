"""transient_hall: steady limit, energy closure, RC ripple, vmap, bad traces."""

import math

import jax
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import load
from aidc_thermo.models import transient

CASE = """
[case]
type = "transient_hall"
name = "small hall"

[trace]
step = "{step}"
duration = "{duration}"
idle_power = "200 W"

[trace.wave]
{wave}

[trace.racks]
count = {racks}

[accelerator]
per_rack = 4
dynamic_power = "850 W"
leakage_power = "{leak}"
heat_capacity = "{c_j}"
resistance = "0.026 K/W"
tokens_per_second = 1000
junction_limit = "{limit}"

[rack]
other_power = "2 kW"
cold_plate_volume = "{v_cp}"
cold_plate_cells = {n_cp}
flow_per_accelerator = "{q}"
pipe_volume = "{v_pipe}"
pipe_cells = 2

[secondary]
pressure_drop = "100 kPa"
pump_efficiency = 0.6

[cdu]
volume = "{v_cdu}"
approach = "3 K"
rated_heat = "{rated}"

[facility_water]
volume = "{v_fw}"
flow = "{q_fw}"
cells = 2
pressure_drop = "100 kPa"
pump_efficiency = 0.7

[dry_cooler]
rated_heat = "{rated}"
approach = "8 K"
air_flow = "{air}"
fan_power = "1 kW"

[ambient]
dry_bulb = "{t_amb}"

[control]
{control}

[solver]
initial = "{initial}"
plots = false
{extra}
"""

SMALL = dict(
    step="1 s", duration="1 h", racks=2, leak="120 W", v_cp="0.05 L", n_cp=2, q="2.5 L/min", v_pipe="2 L",
    v_cdu="5 L", rated="10 kW", limit="85 degC", c_j="400 J/K", v_fw="20 L", q_fw="0.3 L/s", air="1.5 kg/s",
    initial="steady", t_amb="20 degC",
    wave='kind = "constant"\npower = "900 W"',
    control='mode = "pi"\nsupply_temperature = "30 degC"\nproportional_gain = 0.2\nintegral_time = "60 s"',
    extra="",
)  # fmt: skip
FIXED = 'mode = "fixed"\nfan_fraction = 0.6\nsupply_temperature = "30 degC"'


def _case(tmp_path, name="case", **kw):
    path = tmp_path / f"{name}.toml"
    path.write_text(CASE.format(**{**SMALL, **kw}), encoding="utf-8")
    return transient.parse(load(path))


def _solve(case):
    s, p = transient.build(case)
    return s, p, jax.jit(transient.solve, static_argnums=0)(s, p)


def _assert_exits_2_naming(tmp_path, capsys, extra, key):
    """The small hall with ``extra`` appended: ``thermo run`` exits 2 naming ``key`` and writes no folder;
    returns the error text."""
    path = tmp_path / "bad.toml"
    path.write_text(CASE.format(**{**SMALL, "extra": extra}), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert key in err
    assert not out.exists()
    return err


def test_constant_trace_reaches_the_models_own_steady_state(tmp_path):
    # from a uniform start, fixed fan: after ~40 loop time constants the state is A T = f(T)
    case = _case(tmp_path, control=FIXED, initial="uniform", duration="3 h", step="2 s")
    s, p, sol = _solve(case)
    T_ss, _, _, _ = transient.steady_state(s, p)
    T_end = np.asarray(sol.T[-1])
    assert np.max(np.abs(T_end - np.asarray(T_ss)) / np.asarray(T_ss)) < 1e-8
    # the steady state itself: junction above its cold plate by R * P, rejected heat = heat in
    q_in, q_rej = float(sol.q_in[-1]), float(sol.q_rejected[-1])
    assert abs(q_in - q_rej) < 1e-8 * q_in
    P = float(sol.P_acc[-1, 0])
    tj, tcp = T_end[s.junction(0)], T_end[[s.cold_plate(0, k) for k in range(s.cold_plate_cells)]].mean()
    assert abs(tj - tcp - 0.026 * P) < 1e-8 * tj


def test_pi_steady_state_holds_the_setpoint_and_is_a_fixed_point(tmp_path):
    case = _case(tmp_path, duration="10 min")
    s, p, sol = _solve(case)
    T = np.asarray(sol.T)
    fs = s.fw_supply(s.facility_cells - 1)
    assert abs(T[0, fs] - (30 + 273.15)) < 1e-9
    assert 0.15 < float(sol.fan[0]) < 1.0
    # started at its steady state with a constant trace, the PI-controlled hall stays there
    assert np.max(np.abs(T - T[0])) < 1e-8 * T.max()
    assert np.max(np.abs(np.asarray(sol.fan) - float(sol.fan[0]))) < 1e-9


def test_energy_closes_over_a_training_trace(tmp_path):
    wave = 'kind = "trapezoid"\nhigh = "1000 W"\nlow = "400 W"\nperiod = "6 s"\nduty = 0.6\nramp = "1 s"'
    case = _case(tmp_path, wave=wave, step="0.25 s", duration="15 min", initial="uniform")
    s, p, sol = _solve(case)
    stored, net = (float(x) for x in transient.energy_balance(p, sol))
    heat_in = float(np.sum(np.asarray(sol.q_in)[1:]) * float(p.dt))
    assert abs(stored) > 1e-3 * heat_in  # the masses did store heat: the check is not trivial
    assert abs(stored - net) < 1e-8 * heat_in
    transient.check(s, p, sol)
    assert float(np.ptp(np.asarray(sol.fan))) > 0.05  # the controller acted


def _ripple_case(tmp_path, period):
    wave = f'kind = "square"\nhigh = "1000 W"\nlow = "450 W"\nperiod = "{period} s"\nduty = 0.5'
    return _case(
        tmp_path, name=f"r{period}", wave=wave, step="0.05 s", duration="160 s", leak="0 W", racks=1,
        v_cp="0.001 L", n_cp=1, q="100 L/min", v_pipe="2000 L", v_cdu="2000 L", v_fw="4000 L",
        q_fw="2 L/s", rated="10 kW", air="10 kg/s", control=FIXED,
    )  # fmt: skip


def test_square_wave_ripple_falls_with_frequency_as_the_rc_predicts(tmp_path):
    rc_pp = []
    for period in (2.0, 8.0, 32.0):
        case = _ripple_case(tmp_path, period)
        s, p, sol = _solve(case)
        tj = np.asarray(sol.T[:, s.junction(0)])
        last = int(round(period / float(p.dt)))
        measured = np.ptp(tj[-last - 1 :])
        # junction mass C behind R + 1/(m cp) (the one cold-plate cell is the outlet) to a fixed inlet:
        # peak-to-peak of a first-order response to a 50 % square wave = dP R_eff tanh(period / (4 tau))
        m_cp = float(p.rho_cp_secondary * p.q_accelerator)
        r_eff = 0.026 + 1.0 / m_cp
        tau = 400.0 * r_eff
        predicted = 550.0 * r_eff * math.tanh(period / (4.0 * tau))
        assert measured == pytest.approx(predicted, rel=0.01)  # 0.2 % measured (backward Euler, dt = tau / 210)
        rc_pp.append(measured)
    assert rc_pp[0] < rc_pp[1] < rc_pp[2]


def test_vmap_over_scenarios_equals_separate_runs(tmp_path):
    wave = 'kind = "square"\nhigh = "1000 W"\nlow = "400 W"\nperiod = "10 s"\nduty = 0.5'
    a = _case(tmp_path, name="a", wave=wave, duration="10 min")  # the Static of the PI fixed-point test: one compile
    b = _case(tmp_path, name="b", wave=wave, duration="10 min",
              control=SMALL["control"].replace("30 degC", "34 degC"))  # fmt: skip
    s, pa = transient.build(a)
    _, pb = transient.build(b)
    batched = jax.tree_util.tree_map(lambda x, y: np.stack([x, y]), pa, pb)
    sol_v = jax.jit(jax.vmap(transient.solve, (None, 0)), static_argnums=0)(s, batched)
    for i, p in enumerate((pa, pb)):
        sol = jax.jit(transient.solve, static_argnums=0)(s, p)
        np.testing.assert_allclose(np.asarray(sol_v.T[i]), np.asarray(sol.T), rtol=1e-12, atol=0)
        np.testing.assert_allclose(np.asarray(sol_v.fan[i]), np.asarray(sol.fan), rtol=1e-12, atol=1e-15)
    assert abs(float(sol_v.T[1, -1, 0] - sol_v.T[0, -1, 0])) > 1.0  # the scenarios differ


@pytest.mark.parametrize(
    "wave, key",
    [
        ('kind = "square"\nhigh = "1000 W"\nlow = "400 W"\nperiod = "1 s"\nduty = 0.5', "trace.wave.period"),
        ('kind = "square"\nhigh = "1000 W"\nlow = "-4 W"\nperiod = "10 s"\nduty = 0.5', "trace.wave.low"),
        ('kind = "constant"\npower = "900 K"', "trace.wave.power"),
    ],
)
def test_bad_trace_exits_2_naming_the_key(tmp_path, capsys, wave, key):
    path = tmp_path / "bad.toml"
    path.write_text(CASE.format(**{**SMALL, "wave": wave}), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 2
    assert key in capsys.readouterr().err
    assert not out.exists()


def _storage(cap_kwh=0.5, limit=50e3, eff=0.8, lo=0.2, hi=0.8, window=30.0):
    return transient.Storage(*(np.float64(v) for v in (cap_kwh * 3.6e6, limit, eff, lo, hi, 0.5 * (lo + hi),
                                                        window, 300.0)))  # fmt: skip


def test_storage_never_exceeds_its_capacity_or_power_limit():
    dt = 0.5
    t = np.arange(4001) * dt
    power = 400e3 + 150e3 * (np.mod(t, 20.0) < 12.0) + 300e3 * ((t > 600) & (t < 1500))  # swings and a long step
    st = _storage()
    grid, ps, E = (np.asarray(a) for a in jax.jit(transient.storage_dispatch)(power, np.float64(dt), st))
    cap = float(st.capacity)
    assert E.min() >= 0.2 * cap * (1 - 1e-12) and E.max() <= 0.8 * cap * (1 + 1e-12)
    assert np.abs(ps).max() <= 50e3 * (1 + 1e-12)
    # the limits were reached (the test exercises them), and the grid is the site power less the storage
    assert np.isclose(E.min(), 0.2 * cap, rtol=1e-9) or np.isclose(E.max(), 0.8 * cap, rtol=1e-9)
    assert np.isclose(np.abs(ps).max(), 50e3, rtol=1e-9)
    np.testing.assert_array_equal(grid, power - ps)
    # energy: what the store gained is what it took less its losses (charging sqrt(eff), discharging 1/sqrt(eff))
    way = math.sqrt(0.8)
    gained = -np.sum(np.where(ps > 0, ps / way, ps * way)[1:]) * dt
    assert abs((E[-1] - E[0]) - gained) < 1e-9 * cap
    assert np.sum(grid[1:] - power[1:]) * dt > E[-1] - E[0]  # losses are positive
    # a storage large enough never to reach its limits: the grid ramps far less than the site
    big = _storage(cap_kwh=50.0, limit=1e6)
    grid, ps, E = (np.asarray(a) for a in jax.jit(transient.storage_dispatch)(power, np.float64(dt), big))
    assert np.abs(ps).max() < 1e6 and 0.2 * float(big.capacity) < E.min() and E.max() < 0.8 * float(big.capacity)
    assert np.abs(np.diff(grid)).max() < 0.05 * np.abs(np.diff(power)).max()


def test_without_storage_the_grid_draws_the_site_power(tmp_path):
    case = _case(tmp_path, duration="10 min")
    s, p, sol = _solve(case)
    assert not s.storage
    ser = transient._series(s, p, sol)
    np.testing.assert_array_equal(ser["P_grid"], ser["P_facility"])
    assert not np.any(ser["P_storage"])


def test_band_rms_sums_to_the_variance_and_finds_a_sine_in_its_band():
    dt = 0.1
    t = np.arange(36000) * dt
    x = 5.0 + 3.0 * np.sin(2 * np.pi * 0.25 * t) + 0.5 * np.sin(2 * np.pi * 0.02 * t)
    bands = transient.band_rms(x, dt)
    total = math.sqrt(sum(r**2 for _, _, r in bands))
    assert total == pytest.approx(np.std(x), rel=1e-12)
    rms = {(lo, hi): r for lo, hi, r in bands}
    assert rms[(0.1, 1.0)] == pytest.approx(3.0 / math.sqrt(2), rel=1e-9)
    assert rms[(0.01, 0.1)] == pytest.approx(0.5 / math.sqrt(2), rel=1e-9)


@pytest.mark.slow
def test_demand_response_ride_through_matches_the_one_mass_rc_time(tmp_path):
    # fast internal mixing (large flows, most of the water in the CDU): the hall warms as one mass C_total through the
    # dry cooler's conductance G at the curtailed fan speed, toward the steady state at that speed:
    # T_j(t) = T_inf + (T_j0 - T_inf) exp(-t / tau), tau = C_total / G
    dr = '[demand_response]\nstart = "60 s"\nlength = "110 min"\nfan_limit = 0.05'
    case = _case(
        tmp_path, racks=1, leak="0 W", v_cp="0.01 L", n_cp=1, q="200 L/min", v_pipe="1 L", v_cdu="200 L",
        v_fw="20 L", q_fw="30 L/s", c_j="10 J/K", rated="40 kW", air="5 kg/s", step="2 s",
        control=FIXED + "\nmin_fan_fraction = 0.05",  # the event's cap is a fan speed, not the bypass range
        duration="2 h", limit="58 degC", extra=dr,
    )  # fmt: skip
    s, p, sol = _solve(case)
    assert s.demand_response
    times = np.arange(s.levels) * float(p.dt)
    tj = np.asarray(sol.T[:, s.junction(0)])
    i0 = int(np.nonzero(times >= 60.0)[0][0])
    T_inf = float(transient.steady_state(s, p._replace(fan_fixed=np.float64(0.05)))[0][s.junction(0)])
    c_fw = float(p.rho_cp_facility * p.q_facility)
    G = float(transient.plant.device_conductance(p.device, "dry_cooler", "counterflow", 0.05, c_fw, 293.15, 101325.0))
    tau = float(np.sum(np.asarray(sol.C))) / G
    limit = 58.0 + 273.15
    predicted = tau * math.log((T_inf - tj[i0]) / (T_inf - limit))
    measured = transient.ride_through(times, tj[:, None], 60.0, limit)
    assert 600.0 < predicted < 6000.0  # the limit is reached well inside the event
    # measured 1233 s vs 1219 s (1.1 %): the hall is not exactly one mass (the facility water, 10 % of the
    # heat capacity, sits behind the CDU's conductance; the event's first seconds redistribute heat)
    assert measured == pytest.approx(predicted, rel=0.02)
    # the report: reached, and the dry cooler's fans drew less during the event than without it
    base = transient.solve(s, p._replace(dr_start=np.float64(-1.0), dr_end=np.float64(-1.0)))
    rep = transient.demand_response_report(s, p, sol, base, limit)
    assert rep["dr_limit_reached"].value and rep["dr_ride_through"].value == pytest.approx(measured)
    assert rep["dr_cooling_energy_shifted"].value > 0


# ----------------------------------------------------------------------------- chiller / economizer switching
# every chiller test runs 10 min at 1 s on the small hall: the programs of the tests above (no chiller) and one more

JOB = 'kind = "constant"\npower = "900 W"\n\n[trace.job]\nstart = "1 min"\nstop = "7 min"\nramp = "10 s"'
CHILLER = (
    '[chiller]\ncapacity = "6 kW"\nmin_on_time = "{on}"\nmin_off_time = "{off}"\n'
    'on_band = "{band}"\noff_band = "{off_band}"'
)
HOT = dict(wave=JOB, t_amb="26 degC", duration="10 min")


def _runs(on):
    """(state, length in steps) of each run of equal values."""
    edges = np.nonzero(np.diff(on))[0] + 1
    bounds = np.concatenate([[0], edges, [len(on)]])
    return [(on[a], b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def test_chiller_holds_the_setpoint_on_a_hot_afternoon_and_its_power_reaches_the_grid(tmp_path):
    # 26 degC dry bulb, 30 degC setpoint: at idle the dry cooler holds the supply; under the job at full fan speed it
    # cannot (without the chiller: 31.7 degC); the trim chiller switches on, holds the setpoint, and goes off after
    s0, p0, free = _solve(_case(tmp_path, name="free", **HOT))
    fs = s0.fw_supply(s0.facility_cells - 1)
    assert np.asarray(free.T)[:, fs].max() - 273.15 > 31.5  # the economizer alone loses the setpoint
    extra = CHILLER.format(on="2 min", off="1 min", band="1 K", off_band="1 K")
    s, p, sol = _solve(_case(tmp_path, name="chill", extra=extra, **HOT))
    assert s.chiller == "carnot"
    T = np.asarray(sol.T)
    on = np.asarray(sol.chiller_on)
    t = np.arange(s.levels) * float(p.dt)
    assert on[0] == 0 and on[-1] == 0 and len(_runs(on)) == 3  # one start, one stop
    t_on, t_off = t[np.argmax(on)], t[len(on) - np.argmax(on[::-1])]
    assert 60.0 < t_on < 300.0 and 420.0 < t_off < 600.0  # on under the job, off after it stops
    # while it runs the supply settles at the setpoint (the chilled water mixes through two supply cells of 17 s
    # each) and sits there (the lagged trim: within 0.02 K) until the job stops
    settled = (t > t_on + 120.0) & (t < 420.0)
    assert settled.sum() > 30 and np.abs(T[settled, fs] - 303.15).max() < 0.02
    # never far beyond the on band: 0.31 K more (measured) while the chilled water crosses the supply leg (33 s)
    assert T[:, fs].max() < 303.15 + 1.0 + 0.5
    assert np.all(np.asarray(sol.fan)[settled] == 1.0)  # series economizer: fans at full speed while it trims
    # the chiller's electric power: zero when off, positive when it takes heat, a COP below Carnot's between
    # the chilled water and the dry bulb (the lift floored at 1 K)
    q, w = np.asarray(sol.q_evap), np.asarray(sol.p_chiller)
    assert np.all(q[on == 0] == 0) and np.all(w[on == 0] == 0) and q[settled].min() > 500.0
    t_chw = T[:, fs]
    carnot = t_chw / np.maximum(299.15 - t_chw, 1.0)
    assert np.all(q[settled] / w[settled] < carnot[settled])
    # it enters the cooling, facility and grid power
    ser = transient._series(s, p, sol)
    np.testing.assert_allclose(ser["P_cooling"] - ser["P_fans"] - ser["P_pumps"], w, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ser["P_grid"], ser["P_facility"])
    assert transient.report(s, p, sol)["E_chiller"].value == pytest.approx(np.sum(w[1:]) * float(p.dt), rel=1e-12)
    # energy closes with the evaporator's heat counted as rejected (the checked 1e-8)
    stored, net = (float(x) for x in transient.energy_balance(p, sol))
    heat_in = float(np.sum(np.asarray(sol.q_in)[1:]) * float(p.dt))
    assert abs(stored - net) < 1e-8 * heat_in and float(np.sum(q[1:])) * float(p.dt) > 1e-3 * heat_in
    transient.check(s, p, sol)


def test_chiller_switching_never_violates_its_minimum_on_and_off_times(tmp_path):
    # a 3-minute high/low load wave around what the dry cooler can hold: without minimum times the chiller chatters
    # with the wave (runs of 83-97 s); with 150 s on / 100 s off every run lasts its minimum
    wave = 'kind = "square"\nhigh = "1000 W"\nlow = "200 W"\nperiod = "3 min"\nduty = 0.5'
    lengths = {}
    for on_t, off_t in (("0 s", "0 s"), ("150 s", "100 s")):
        extra = CHILLER.format(on=on_t, off=off_t, band="0.3 K", off_band="0.3 K")
        s, p, sol = _solve(_case(tmp_path, name=f"c{on_t[:2]}", extra=extra, **{**HOT, "wave": wave}))
        lengths[on_t] = _runs(np.asarray(sol.chiller_on)[1:])  # level m holds the state of the step ending at m
        stored, net = (float(x) for x in transient.energy_balance(p, sol))
        assert abs(stored - net) < 1e-8 * float(np.sum(np.asarray(sol.q_in)[1:]) * float(p.dt))
    free = lengths["0 s"]
    assert len(free) >= 5 and min(n for _, n in free[1:-1]) < 100  # chatters: the test is not trivial
    held = lengths["150 s"]
    assert len(held) >= 4  # it still switches
    first = 1 if held[0][0] == 0 else 0  # an off run from the start began with no switch: it is free
    for state, n in held[first:-1]:  # the last run is cut by the trace's end
        assert n * 1.0 >= (150.0 if state else 100.0) - 1e-9
    assert min(n for _, n in held[first:-1]) in (100, 150)  # a minimum time bound (else the test shows nothing)


def test_a_chiller_that_never_runs_leaves_the_hall_unchanged(tmp_path):
    _, _, base = _solve(_case(tmp_path, name="base", **HOT))
    extra = CHILLER.format(on="1 min", off="1 min", band="100 K", off_band="1 K")
    s, _, sol = _solve(_case(tmp_path, name="idle", extra=extra, **HOT))
    assert s.chiller == "carnot" and not np.any(np.asarray(sol.chiller_on))
    assert float(np.ptp(np.asarray(base.fan))) > 0.5  # the controller acted: the comparison covers it
    for name in ("T", "fan", "P_acc", "q_rejected", "q_in"):
        np.testing.assert_allclose(np.asarray(getattr(sol, name)), np.asarray(getattr(base, name)), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "extra, key",
    [
        ('[chiller]\ncapacity = "5 K"', "chiller.capacity"),
        ('[chiller]\ncapacity = "5 kW"\nmin_on_time = "-1 min"', "chiller.min_on_time"),
        ('[chiller]\ncapacity = "5 kW"\nmodel = "magic"', "chiller.model"),
        ('[chiller]\ncapacity = "5 kW"\non_delay = "1 min"', "on_delay"),
    ],
)
def test_bad_chiller_keys_exit_2_naming_the_key(tmp_path, capsys, extra, key):
    _assert_exits_2_naming(tmp_path, capsys, extra, key)


# ----------------------------------------------------------------------------- gradients through the hall


def _grad_check(tmp_path, initial, names, extra=""):
    """``jax.grad`` of the peak junction temperature (exact max over the trace and the racks) with respect to
    ``names`` of Params, against central differences (one compiled value-and-gradient program)."""
    wave = 'kind = "constant"\npower = "1000 W"\n\n[trace.job]\nstart = "10 s"\nstop = "4 min"\nramp = "5 s"'
    s, p = transient.build(_case(tmp_path, wave=wave, duration="3 min", step="1 s", initial=initial, extra=extra))
    jn = np.array([s.junction(r) for r in range(s.racks)])

    def peak(x):
        sol = transient.solve(s, p._replace(**dict(zip(names, x, strict=True))))
        return jax.numpy.max(sol.T[:, jn])

    vg = jax.jit(jax.value_and_grad(peak))
    x0 = tuple(getattr(p, n) for n in names)
    t_max, grads = vg(x0)
    for i, name in enumerate(names):
        h = 1e-5 * abs(float(x0[i]))
        up, down = list(x0), list(x0)
        up[i], down[i] = x0[i] + h, x0[i] - h
        fd = (float(vg(tuple(up))[0]) - float(vg(tuple(down))[0])) / (2 * h)
        assert abs(fd) * abs(float(x0[i])) > 1e-3 * float(t_max), name  # the parameter matters
        assert float(grads[i]) == pytest.approx(fd, rel=1e-4), name  # measured 1e-10 .. 2e-8


def test_grad_of_peak_junction_through_the_hall_matches_central_differences(tmp_path):
    # a job starts on a hall at the setpoint; the PI controller acts while the junctions warm: derivatives with
    # respect to a plate parameter (junction-to-coolant resistance) and a control one (proportional gain)
    _grad_check(tmp_path, "uniform", ("r_junction", "kp"))


@pytest.mark.slow
def test_grad_of_peak_junction_from_the_steady_start_matches_central_differences(tmp_path):
    # from the PI steady state at idle: through the implicit derivative of the bisected fan speed too
    _grad_check(tmp_path, "steady", ("r_junction", "q_accelerator", "kp", "t_set"))


# ----------------------------------------------------------------------------- the CDU's valve

VALVE = (
    '[cdu.valve]\nsupply_temperature = "34 degC"\nproportional_gain = 0.05\nintegral_time = "60 s"\n'
    'stroke_time = "{stroke}"\nmin_opening = {lo}\nmax_opening = {hi}'
)
JOB = 'kind = "constant"\npower = "1000 W"\n\n[trace.job]\nstart = "60 s"\nstop = "2 h"\nramp = "5 s"'


def _valve(stroke="60 s", lo=0.05, hi=1.0):
    return VALVE.format(stroke=stroke, lo=lo, hi=hi)


def _secondary_supply(s, sol):
    T, e = np.asarray(sol.T), np.asarray(sol.e_secondary)
    fs = s.fw_supply(s.facility_cells - 1)
    return T[:, s.cdu] - e * (T[:, s.cdu] - T[:, fs]), T[:, fs]


def test_cdu_valve_steady_state_holds_both_setpoints_and_passes_what_its_effectiveness_allows(tmp_path):
    s, p, sol = _solve(_case(tmp_path, duration="10 min", extra=_valve()))
    assert s.valve
    sup, fs = _secondary_supply(s, sol)
    assert abs(sup[0] - (34 + 273.15)) < 1e-9  # the valve holds the secondary supply
    assert abs(fs[0] - (30 + 273.15)) < 1e-9  # the fans hold the facility supply
    x = float(sol.valve[0])
    assert 0.05 < x < 0.95  # neither limit: the test exercises the opening
    # the exchanger at this opening, recomputed from the textbook counterflow effectiveness: x of the facility
    # water through it, that side's half of the rated 1/UA growing as x^-0.8
    c_sec = 1020 * 3900 * 2.5e-3 / 60 * 4 * 2
    c_fw = 997 * 4180 * 0.3e-3 * x
    ua = float(p.ua_cdu) / (0.5 + 0.5 * x**-0.8)
    c_min, c_max = min(c_sec, c_fw), max(c_sec, c_fw)
    ntu, cr = ua / c_min, c_min / c_max
    eps = -math.expm1(-ntu * (1 - cr)) / (1 - cr * math.exp(-ntu * (1 - cr)))
    T0 = np.asarray(sol.T[0])
    q_hx = eps * c_min * (T0[s.cdu] - T0[s.fw_supply(s.facility_cells - 1)])
    # at steady state it passes the chips' heat and the secondary pump's work (dp Q / eta)
    q_sec = 4 * float(np.sum(sol.P_acc[0])) + 100e3 * (2.5e-3 / 60 * 8) / 0.6
    assert q_hx == pytest.approx(q_sec, rel=1e-9)
    # started there with a constant trace, the hall and both controllers stay at rest
    T = np.asarray(sol.T)
    assert np.max(np.abs(T - T[0])) < 1e-8 * T.max()
    assert float(np.ptp(np.asarray(sol.valve))) < 1e-9


def test_cdu_valve_brings_the_secondary_supply_back_after_a_job_starts(tmp_path):
    case = _case(tmp_path, wave=JOB, duration="1 h", step="2 s", extra=_valve(stroke="10 min"))
    s, p, sol = _solve(case)
    sup, _ = _secondary_supply(s, sol)
    x = np.asarray(sol.valve)
    dt = float(p.dt)
    assert sup.max() - (34 + 273.15) > 1.0  # the job's heat pushed the supply up
    assert np.abs(np.diff(x)).max() <= dt / 600 * (1 + 1e-12)  # the stroke time limits the valve's speed
    assert np.abs(np.diff(x)).max() > 0.99 * dt / 600  # and it did act
    assert 0.05 <= x.min() and x.max() <= 1.0
    transient.check(s, p, sol)  # energy closes, nothing below the ambient
    # an hour later the hall has settled at its own steady state at the job's power: the integral action
    # leaves no offset
    T_ss, _, x_ss, _ = transient.steady_state(s, p, s.levels - 1)
    assert abs(sup[-1] - (34 + 273.15)) < 1e-4
    assert float(x[-1]) == pytest.approx(float(x_ss), abs=1e-4)
    np.testing.assert_allclose(np.asarray(sol.T[-1]), np.asarray(T_ss), rtol=1e-6)


def test_a_valve_held_fully_open_leaves_the_hall_unchanged(tmp_path):
    _, _, base = _solve(_case(tmp_path, name="base", wave=JOB, duration="10 min"))
    s, _, sol = _solve(_case(tmp_path, name="open", wave=JOB, duration="10 min", extra=_valve(lo=1.0, hi=1.0)))
    assert s.valve and np.all(np.asarray(sol.valve) == 1.0)
    assert float(np.ptp(np.asarray(base.fan))) > 0.1  # the fans acted: the comparison covers the dynamics
    for name in ("T", "fan", "P_acc", "q_rejected", "q_in", "e_secondary"):
        np.testing.assert_allclose(np.asarray(getattr(sol, name)), np.asarray(getattr(base, name)), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "extra, key",
    [
        (VALVE.format(stroke="60 s", lo=0.05, hi=1.0).replace("34 degC", "29 degC"), "cdu.valve.supply_temperature"),
        (VALVE.format(stroke="60 s", lo=0.5, hi=0.2), "cdu.valve.max_opening"),
        (VALVE.format(stroke="-60 s", lo=0.05, hi=1.0), "cdu.valve.stroke_time"),
        (VALVE.format(stroke="60 s", lo=0.0, hi=1.0), "cdu.valve.min_opening"),
        (VALVE.format(stroke="60 s", lo=0.05, hi=1.0) + "\nintegral = 3", "cdu.valve.integral"),
    ],
)
def test_bad_valve_keys_exit_2_naming_the_key(tmp_path, capsys, extra, key):
    _assert_exits_2_naming(tmp_path, capsys, extra, key)


def test_grad_of_peak_junction_with_the_cdu_valve_matches_central_differences(tmp_path):
    # the valve's PI acts while the job warms the hall: derivatives through its clipped, rate-limited opening
    _grad_check(tmp_path, "uniform", ("r_junction", "t_set_cdu"), extra=_valve())


@pytest.mark.slow
def test_grad_of_peak_junction_from_the_valve_steady_start_matches_central_differences(tmp_path):
    # from both controllers' steady state: through the implicit derivative of the valve's opening too
    _grad_check(tmp_path, "steady", ("r_junction", "t_set_cdu", "q_accelerator"), extra=_valve())


# ----------------------------------------------------------------------------- the secondary pump's speed

PUMP = (
    '[secondary.pump]\ndelta_t = "8 K"\nproportional_gain = 0.05\nintegral_time = "60 s"\nmin_speed = {lo}\n'
    "max_speed = {hi}\nramp_rate = {ramp}"
)


def _pump(lo=0.3, hi=1.0, ramp=0.05):
    return PUMP.format(lo=lo, hi=hi, ramp=ramp)


@pytest.mark.parametrize("with_valve", [False, True])
def test_pump_speed_steady_state_holds_the_rise_and_its_flow_carries_the_heat(tmp_path, with_valve):
    extra = _pump() + ("\n\n" + _valve() if with_valve else "")
    s, p, sol = _solve(_case(tmp_path, duration="10 min", extra=extra))
    assert s.pump and s.valve == with_valve
    sup, fs = _secondary_supply(s, sol)
    T0 = np.asarray(sol.T[0])
    n = float(sol.pump_speed[0])
    assert 0.3 < n < 0.95  # neither limit
    assert abs(T0[s.cdu] - sup[0] - 8.0) < 1e-9  # the racks' temperature rise held at 8 K
    assert abs(fs[0] - (30 + 273.15)) < 1e-9
    if with_valve:
        assert abs(sup[0] - (34 + 273.15)) < 1e-9 and 0.05 < float(sol.valve[0]) < 0.95
    # the flow at that speed carries the chips' heat and the pump's own work (affinity: power ~ speed^3)
    c_sec = 1020 * 3900 * 2.5e-3 / 60 * 8
    p_rated = 100e3 * (2.5e-3 / 60 * 8) / 0.6
    heat = 4 * float(np.sum(sol.P_acc[0])) + p_rated * n**3
    assert c_sec * n * 8.0 == pytest.approx(heat, rel=1e-9)
    ser = transient._series(s, p, sol)
    assert ser["P_pumps"][0] == pytest.approx(p_rated * n**3 + 100e3 * 0.3e-3 / 0.7, rel=1e-12)
    # the junction sits R(n) P above its cold plate, the plate's film share of R growing as n^-0.8
    r_n = 0.026 * (0.5 + 0.5 * n**-0.8)
    tcp = T0[[s.cold_plate(0, k) for k in range(s.cold_plate_cells)]].mean()
    assert T0[s.junction(0)] - tcp == pytest.approx(r_n * float(sol.P_acc[0, 0]), rel=1e-8)
    # and stays there
    T = np.asarray(sol.T)
    assert np.max(np.abs(T - T[0])) < 1e-8 * T.max()
    assert float(np.ptp(np.asarray(sol.pump_speed))) < 1e-9


def test_pump_speed_follows_a_job_within_its_limits_and_ramp(tmp_path):
    wave = 'kind = "constant"\npower = "1000 W"\n\n[trace.job]\nstart = "60 s"\nstop = "15 min"\nramp = "5 s"'
    s, p, sol = _solve(_case(tmp_path, wave=wave, duration="45 min", step="2 s", extra=_pump(ramp=0.002)))
    n = np.asarray(sol.pump_speed)
    dt = float(p.dt)
    assert 0.3 <= n.min() and n.max() <= 1.0
    assert np.abs(np.diff(n)).max() <= 0.002 * dt * (1 + 1e-12)
    assert np.abs(np.diff(n)).max() > 0.99 * 0.002 * dt  # the ramp limit acted
    assert n.max() > n[0] + 0.2  # it sped up for the job
    transient.check(s, p, sol)  # energy closes with the pump's heat changing every step
    # half an hour after the job the idle hall is back at its own steady state, the pump at its lowest speed
    T_ss, _, _, n_ss = transient.steady_state(s, p, s.levels - 1)
    assert float(n_ss) == 0.3 and n[-1] == pytest.approx(0.3, abs=1e-9)
    np.testing.assert_allclose(np.asarray(sol.T[-1]), np.asarray(T_ss), rtol=1e-6)
    # and the pump drew less than at constant full speed
    ser = transient._series(s, p, sol)
    p_rated = 100e3 * (2.5e-3 / 60 * 8) / 0.6 + 100e3 * 0.3e-3 / 0.7
    assert ser["P_pumps"].mean() < 0.7 * p_rated


def test_a_pump_held_at_full_speed_leaves_the_hall_unchanged(tmp_path):
    _, _, base = _solve(_case(tmp_path, name="base", wave=JOB, duration="10 min"))
    s, _, sol = _solve(_case(tmp_path, name="full", wave=JOB, duration="10 min", extra=_pump(lo=1.0, hi=1.0)))
    assert s.pump and np.all(np.asarray(sol.pump_speed) == 1.0)
    for name in ("T", "fan", "P_acc", "q_rejected", "q_in", "e_secondary"):
        np.testing.assert_allclose(np.asarray(getattr(sol, name)), np.asarray(getattr(base, name)), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "extra, key",
    [
        (PUMP.format(lo=0.3, hi=1.0, ramp=0.05).replace('"8 K"', '"-8 K"'), "secondary.pump.delta_t"),
        (PUMP.format(lo=0.8, hi=0.5, ramp=0.05), "secondary.pump.max_speed"),
        (PUMP.format(lo=0.3, hi=1.0, ramp=0.0), "secondary.pump.ramp_rate"),
        (PUMP.format(lo=0.3, hi=1.0, ramp=0.05) + "\nspeed = 0.5", "secondary.pump.speed"),
    ],
)
def test_bad_pump_keys_exit_2_naming_the_key(tmp_path, capsys, extra, key):
    _assert_exits_2_naming(tmp_path, capsys, extra, key)


def test_grad_of_peak_junction_with_the_pump_speed_matches_central_differences(tmp_path):
    # the pump's PI follows the job's heat: derivatives through the flows of every step's matrix
    _grad_check(tmp_path, "uniform", ("r_junction", "pump_dt_set"), extra=_pump())


def test_a_demand_response_fan_cap_below_the_lowest_fan_speed_exits_2(tmp_path, capsys):
    extra = '[demand_response]\nstart = "1 min"\nlength = "2 min"\nfan_limit = 0.05'
    err = _assert_exits_2_naming(tmp_path, capsys, extra, "demand_response.fan_limit")
    assert "min_fan_fraction" in err


def test_rack_level_storage_smooths_each_rack_within_its_own_limits(tmp_path, capsys):
    """``[storage] level = "rack"``: one store per rack on its rack's power. Each store is the site dispatch
    applied to its own rack's power series, stays within its own charge bounds and power limit (the limit is
    reached), and the grid draws the site power less every rack's discharge with the conversion losses and overhead
    on it (the store on the rack's DC bus). With the racks in step the stores
    cut the grid's ramp; with them half a period apart the stores work against each other (one charges while the
    other discharges) and the site's ramp, already small, is not cut: rack storage is for racks in step."""
    wave = 'kind = "square"\nhigh = "1000 W"\nlow = "450 W"\nperiod = "20 s"\nduty = 0.5'
    storage = ('[storage]\nlevel = "rack"\ncapacity = "0.02 kWh"\npower_limit = "800 W"\nwindow = "40 s"\n'
               'soc_min = 0.2\nsoc_max = 0.8\n[facility]\nconversion_loss_fraction = 0.04\noverhead_fraction = 0.06')
    m = 1 + 0.04 + 0.06 * 1.04  # site power per watt a rack draws: a store's discharge lowers the grid this much
    cap = 0.02 * 3.6e6
    for offsets in ("synchronised", "desynchronised"):
        racks = f'2\noffsets = "{offsets}"'
        case = _case(tmp_path, name=offsets, duration="10 min", wave=wave, racks=racks, extra=storage)
        s, p, sol = _solve(case)
        assert s.storage and s.storage_level == "rack"
        ser = transient._series(s, p, sol)
        ps, E = ser["P_storage_rack"], ser["E_storage_rack"]
        assert ps.shape == E.shape == (s.levels, 2)
        for r in range(2):
            dispatch = jax.jit(transient.storage_dispatch)
            _, ps_r, E_r = (np.asarray(a) for a in dispatch(ser["P_rack"][:, r], p.dt, p.storage))
            np.testing.assert_allclose(ps[:, r], ps_r, rtol=0, atol=1e-9)
            np.testing.assert_allclose(E[:, r], E_r, rtol=1e-12)
        assert E.min() >= 0.2 * cap * (1 - 1e-12) and E.max() <= 0.8 * cap * (1 + 1e-12)
        assert np.abs(ps).max() <= 800.0 * (1 + 1e-12) and np.isclose(np.abs(ps).max(), 800.0, rtol=1e-9)
        np.testing.assert_allclose(ser["P_grid"], ser["P_facility"] - m * ps.sum(1), rtol=1e-14)
        np.testing.assert_allclose(ser["P_storage"], ps.sum(1), rtol=1e-14)
        out = transient.report(s, p, sol)
        assert out["storage_stores"].value == 2 and out["storage_capacity"].value == pytest.approx(2 * cap)
        assert 0.2 - 1e-9 <= out["storage_soc_min"].value <= out["storage_soc_max"].value <= 0.8 + 1e-9
        site_ramp = np.abs(np.diff(ser["P_facility"])).max()
        grid_ramp = np.abs(np.diff(ser["P_grid"])).max()
        if offsets == "synchronised":
            np.testing.assert_allclose(ps[:, 0], ps[:, 1], rtol=0, atol=1e-9)  # identical racks, identical stores
            assert grid_ramp < site_ramp - 2 * 700.0 * m  # each store takes at least 700 W of its rack's 2.2 kW step
            # the stores' round-trip losses, recomputed here, as the grid sees them
            way = math.sqrt(0.9)
            lost = np.sum(np.where(ps > 0, ps / way - ps, -ps * (1 - way))[1:]) * float(p.dt)
            assert out["storage_losses"].value == pytest.approx(m * lost, rel=1e-9)
        else:
            assert np.mean(ps[:, 0] * ps[:, 1] < 0) > 0.3
            assert site_ramp < 0.3 * 4 * 550.0  # the racks' steps cancel at the site
    # the folder: per-rack series with units; a bad level exits 2 naming the key
    path = tmp_path / "rack_storage.toml"
    path.write_text(CASE.format(**{**SMALL, "duration": "2 min", "wave": wave, "racks": racks, "extra": storage}))
    assert main(["run", str(path), "-o", str(tmp_path / "ok")]) == 0
    import h5py

    with h5py.File(tmp_path / "ok" / "results.h5") as f:
        assert f["series/E_storage_rack"].shape[-1] == 2 and f["series/E_storage_rack"].attrs["units"] == "J"
        assert f["series/P_storage_rack"].attrs["units"] == "W"
    _assert_exits_2_naming(tmp_path, capsys, storage.replace('"rack"', '"row"'), "level")
