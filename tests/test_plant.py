"""Heat-rejection plant: pumps, dry cooler, wet tower, chiller and economizer.

Checked against affinity laws, independent numpy/scipy/CoolProp computations,
the DOE-2 reference point, the Carnot bound (property test), and the
economizer's switch-over behaviour."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from CoolProp.HumidAirProp import HAPropsSI
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from aidc_thermo.kernels import hx, plant, psychro
from aidc_thermo.validation.plant import doe2_reference_point
from tests._plant_params import C0, CP_FW, RHO_FW, chiller, dry_cooler, open_tower

P_ATM = 101325.0
C_FW = RHO_FW * CP_FW * 0.024


# ------------------------------------------------------------------- pumps


def test_pump_power_is_hydraulic_power_over_efficiency():
    # 30 L/s against 200 kPa at 70 % wire-to-water: 6 kW hydraulic, 8.571 kW electric.
    assert float(plant.pump_power(200e3, 0.030, 0.70)) == pytest.approx(6000.0 / 0.7, rel=1e-15)


def _curve():
    # A head curve through (0, 300 kPa), (0.05 m3/s, 180 kPa) at nominal speed;
    # efficiency peaking at 0.8 near 0.04 m3/s.
    return plant.PumpCurve(
        h0=jnp.float64(300e3),
        h1=jnp.float64(-600e3),
        h2=jnp.float64(-36e6),
        e0=jnp.float64(0.0),
        e1=jnp.float64(40.0),
        e2=jnp.float64(-500.0),
        eta_motor_drive=jnp.float64(0.9),
    )


def test_pump_curve_duty_and_affinity_laws():
    curve = _curve()
    # The speed found reproduces the duty on the head curve.
    q, dp = 0.03, 150e3
    s = float(plant.pump_speed_for_duty(curve, q, dp))
    assert 300e3 * s**2 - 600e3 * s * q - 36e6 * q**2 == pytest.approx(dp, rel=1e-12)
    # Along a system curve dp = k q^2 every duty point is affinity-similar:
    # speed ~ q, efficiency constant, power ~ q^3.
    k = 1.2e8
    qs = np.array([0.01, 0.02, 0.04])
    powers, speeds = (np.asarray(a) for a in plant.pump_power_curve(curve, qs, k * qs**2))
    np.testing.assert_allclose(speeds / speeds[0], qs / qs[0], rtol=1e-12)
    np.testing.assert_allclose(powers / powers[0], (qs / qs[0]) ** 3, rtol=1e-12)
    eta = plant.pump_efficiency(curve, qs, speeds)
    np.testing.assert_allclose(eta, eta[0], rtol=1e-12)


# ----------------------------------------------------------------- devices


def test_dry_cooler_rating_round_trip_and_fan_law():
    dev = dry_cooler()
    # At the rating point (35 C, rated flows, f = 1) the device rejects 1 MW with
    # water leaving 10 K above the dry bulb.
    t_ref = C0 + 35.0
    g1 = float(plant.device_conductance(dev, "dry_cooler", "counterflow", 1.0, C_FW, t_ref, P_ATM))
    t_in = t_ref + 10.0 + 1e6 / C_FW
    assert g1 * (t_in - t_ref) == pytest.approx(1e6, rel=1e-12)
    # Independent evaluation of G(f): UA scaled by hand, counterflow in numpy.
    f = 0.55
    c_air = f * float(dev.m_air_rated) * plant.CP_AIR
    ua = float(dev.ua_rated) / (0.8 / f**0.8 + 0.2)
    c_min, c_max = min(c_air, C_FW), max(c_air, C_FW)
    n, cr = ua / c_min, c_min / c_max
    eps = (1 - np.exp(-n * (1 - cr))) / (1 - cr * np.exp(-n * (1 - cr)))
    g = plant.device_conductance(dev, "dry_cooler", "counterflow", f, C_FW, t_ref, P_ATM)
    assert float(g) == pytest.approx(eps * c_min, rel=1e-12)
    # Approach to the dry bulb falls monotonically as the fans speed up.
    fs = jnp.linspace(0.15, 1.0, 12)
    gs = plant.device_conductance(dev, "dry_cooler", "counterflow", fs, C_FW, t_ref, P_ATM)
    approach = 1e6 * (1 / gs - 1 / C_FW)
    assert np.all(np.diff(np.asarray(approach)) < 0)


def test_tower_capacity_grows_with_wet_bulb():
    # The saturated-air enthalpy slope rises steeply with temperature, so a tower
    # moves more heat per kg of air (per kelvin of approach) when the wet bulb is high.
    dev = open_tower()
    twb = jnp.asarray(C0 + np.array([5.0, 15.0, 25.0]))
    g = plant.device_conductance(dev, "open_tower", "counterflow", 1.0, C_FW, twb, P_ATM)
    assert np.all(np.diff(np.asarray(g)) > 0)
    # The air-side capacity uses the secant of h_sat: compare with a numpy secant.
    c_air = plant.air_capacity(dev, "open_tower", 1.0, twb[1], P_ATM)
    hs = [float(psychro.saturated_air_enthalpy(twb[1] + d, P_ATM)) for d in (0.0, 10.0)]
    assert float(c_air) == pytest.approx(float(dev.m_air_rated) * (hs[1] - hs[0]) / 10.0, rel=1e-13)


def test_closed_tower_rating_round_trip():
    # A closed (fluid-cooler) tower carries the facility water in its coil:
    # rated for 1 MW at 6.5 K above a 26 C wet bulb (validation.md median).
    twb = C0 + 26.0
    ua = plant.rate_device("closed_tower", 1e6, 6.5, C_FW, 30.0, twb, P_ATM)
    base = open_tower()
    dev = dataclasses.replace(
        base,
        ua_rated=jnp.asarray(ua),
        c_water_rated=jnp.float64(C_FW),
        m_air_rated=jnp.float64(30.0),
    )
    g = float(plant.device_conductance(dev, "closed_tower", "counterflow", 1.0, C_FW, twb, P_ATM))
    t_in = twb + 6.5 + 1e6 / C_FW
    assert g * (t_in - twb) == pytest.approx(1e6, rel=1e-12)
    # The same tower behind an isolation exchanger (open tower, tower loop at the
    # same flow): the chain adds the exchanger's inlet-to-inlet resistance
    # 1/(eps_hx C) and loses the loop's 1/C (the tower now cools its own loop).
    g_open = plant.device_conductance(dev, "open_tower", "counterflow", 1.0, C_FW, twb, P_ATM)
    eps_hx = float(hx.eps_counterflow(base.hx_ua / C_FW, 1.0))
    expected = 1 / g + 1 / (eps_hx * C_FW) - 1 / C_FW
    assert 1 / float(g_open) == pytest.approx(expected, rel=1e-12)


def test_open_tower_chain_conductance_against_loop_iteration():
    # Solve the FW -> plate HX -> tower-water loop -> tower chain by iterating the
    # tower-loop temperature with explicit heat-exchanger duties (numpy), and
    # compare the heat rejected with G (T_in - T_wb) from the closed form.
    dev = open_tower()
    twb, t_in, f = C0 + 24.0, C0 + 38.0, 0.7
    c_tw = float(dev.c_water_rated)
    c_air = float(plant.air_capacity(dev, "open_tower", f, twb, P_ATM))
    ua_t = float(hx.ua_flow_scaled(dev.ua_rated, f, 1.0, dev.air_share, 0.8, 0.6))
    t_tw_cold = twb + 5.0
    for _ in range(200):
        hx_out = hx.hx_duty(dev.hx_ua, C_FW, c_tw, t_in, t_tw_cold)
        q_hx, t_tw_hot = float(hx_out[0]), float(hx_out[2])
        # tower: water (hot) against "air" at the wet bulb
        tower = hx.hx_duty(ua_t, c_tw, c_air, t_tw_hot, twb)
        q_t, t_tw_cold = float(tower[0]), float(tower[1])
    assert q_t == pytest.approx(q_hx, rel=1e-10)
    g = float(plant.device_conductance(dev, "open_tower", "counterflow", f, C_FW, twb, P_ATM))
    assert g * (t_in - twb) == pytest.approx(q_hx, rel=1e-9)


def test_tower_water_use_against_coolprop_air_balance():
    # Evaporation from saturated leaving air at the enthalpy the heat load gives,
    # recomputed with CoolProp's humid air (enthalpy differences only, so the
    # reference states do not matter).
    q, m_air, tdb, twb = 8.0e5, 30.0, C0 + 32.0, C0 + 24.0
    w = plant.tower_water_use(q, m_air, tdb, twb, P_ATM, 4.0, 1e-5, 24.0)
    w_in = HAPropsSI("W", "T", tdb, "P", P_ATM, "B", twb)
    h_in = HAPropsSI("H", "T", tdb, "P", P_ATM, "B", twb)
    h_out = h_in + q / m_air
    t_out = brentq(lambda t: HAPropsSI("H", "T", t, "P", P_ATM, "R", 1.0) - h_out, twb, twb + 40)
    w_out = HAPropsSI("W", "T", t_out, "P", P_ATM, "R", 1.0)
    assert float(w.evaporation) == pytest.approx(m_air * (w_out - w_in), rel=0.01)
    # Latent share of the load is physical (evaporation x h_fg vs heat rejected).
    assert 0.6 < float(w.evaporation) * 2.43e6 / q < 1.1
    # Make-up = E N/(N - 1) while drift is below the blowdown it replaces.
    assert float(w.makeup) == pytest.approx(float(w.evaporation) * 4.0 / 3.0, rel=1e-12)
    assert float(w.drift) == pytest.approx(24.0 * 1e-5)
    # No heat, no evaporation.
    assert float(plant.tower_water_use(0.0, m_air, tdb, twb, P_ATM, 4.0, 0.0, 24.0).makeup) == 0.0


# ---------------------------------------------------------------- chillers


def test_doe2_reference_point_and_clipping():
    ch = chiller()
    cop_ref, coeffs, _, _ = plant.doe2_centrifugal_eir()
    # The curve is normalized at 6.67 C / 29.4 C: EIRFT = 1 to 0.1 %.
    eir = float(plant.doe2_eirft(jnp.asarray(coeffs), C0 + 6.67, C0 + 29.4))
    assert eir == pytest.approx(1.0, abs=1e-3)
    shared = doe2_reference_point()  # what thermo validate reports
    assert shared["eir"] == eir and shared["cop_ref_kernel"] == cop_ref == shared["cop_ref"]
    cop = float(plant.chiller_cop(ch, "doe2", C0 + 6.67, C0 + 29.4))
    assert cop == pytest.approx(cop_ref / eir, rel=1e-14)
    # Outside the validity range the curve is held at its bound.
    c_warm = float(plant.chiller_cop(ch, "doe2", C0 + 20.0, C0 + 40.0))
    eir_bound = float(plant.doe2_eirft(jnp.asarray(coeffs), C0 + 10.0, C0 + 35.0))
    assert c_warm == pytest.approx(cop_ref / eir_bound, rel=1e-14)


def test_carnot_fraction_model():
    ch = chiller()
    t_chw, t_cond = C0 + 18.0, C0 + 30.0
    expected = 0.55 * (t_chw - 2.0) / ((t_cond + 2.0) - (t_chw - 2.0))
    cop = float(plant.chiller_cop(ch, "carnot", t_chw, t_cond))
    assert cop == pytest.approx(expected, rel=1e-14)


@settings(max_examples=300, deadline=None)
@given(
    t_chw=st.floats(C0 - 5.0, C0 + 45.0),
    lift=st.floats(-20.0, 60.0),
    eta=st.floats(0.05, 1.0),
    dt_e=st.floats(0.0, 5.0),
    dt_c=st.floats(0.0, 5.0),
    lift_min=st.floats(0.2, 5.0),
    cop_ref=st.floats(2.0, 30.0),
)
def test_cop_never_exceeds_carnot(t_chw, lift, eta, dt_e, dt_c, lift_min, cop_ref):
    base = chiller()
    ch = plant.Chiller(
        **{
            **base.__dict__,
            "carnot_fraction": jnp.float64(eta),
            "dt_evap": jnp.float64(dt_e),
            "dt_cond": jnp.float64(dt_c),
            "lift_min": jnp.float64(lift_min),
            "cop_ref": jnp.float64(cop_ref),
        }
    )
    t_cond = t_chw + lift
    for model in ("carnot", "doe2"):
        cop = float(_cop(ch, model, t_chw, t_cond))
        assert cop > 0
        if lift > 0:
            assert cop <= t_chw / lift * (1 + 1e-12)
        assert cop <= t_chw / lift_min * (1 + 1e-12)


_cop = jax.jit(plant.chiller_cop, static_argnums=1)


# -------------------------------------------------------------- economizer


@functools.cache
def _reject_fn(kind, model):
    def one(dev, ch, q, c, ts, tr, p):
        return plant.reject_heat(dev, ch, q, c, ts, tr, p, kind=kind, chiller_model=model)

    return jax.jit(jax.vmap(one, in_axes=(None, None, None, None, None, 0, None)))


_SCAN = 801  # every scan is padded to this length: one compilation per plant kind


def _reject(t_ref, q=8.0e5, t_set=C0 + 27.0, model="carnot", kind="dry_cooler", dtype=jnp.float64):
    dev = dry_cooler(dtype) if kind == "dry_cooler" else open_tower(dtype)
    t_ref = np.asarray(t_ref, np.float64)
    n = t_ref.size
    padded = np.concatenate([t_ref, np.full(_SCAN - n, t_ref[-1])])
    args = (q, C_FW, t_set, padded, P_ATM)
    out = _reject_fn(kind, model)(dev, chiller(dtype), *(jnp.asarray(a, dtype) for a in args))
    return jax.tree_util.tree_map(lambda x: x[:n], out)


@pytest.mark.parametrize("kind", ["dry_cooler", "open_tower"])
def test_chiller_off_under_free_cooling_and_continuous_past_switch_over(kind):
    t_ref = C0 + np.linspace(-5.0, 35.0, 801)
    s = _reject(t_ref, kind=kind)
    q_evap, w = np.asarray(s.q_evap), np.asarray(s.w_chiller)
    free = np.asarray(s.free_cooling) == 1.0
    assert free.any() and (~free).any()
    # Chiller power is exactly zero whenever the device alone holds the setpoint...
    assert np.all(w[free] == 0.0) and np.all(q_evap[free] == 0.0)
    # ...and there the device rejects exactly the load at the fan speed found.
    g = plant.device_conductance(
        dry_cooler() if kind == "dry_cooler" else open_tower(), kind, "counterflow",
        s.fan_fraction, C_FW, jnp.asarray(t_ref), P_ATM,
    )  # fmt: skip
    q_dev = np.asarray(g * (s.t_in - jnp.asarray(t_ref)))
    interior = free & (np.asarray(s.fan_fraction) > float(dry_cooler().fan_fraction_min) + 1e-9)
    np.testing.assert_allclose(q_dev[interior], 8.0e5, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(s.t_supply), C0 + 27.0, rtol=0, atol=1e-12)
    # Past the switch-over the chiller load starts from zero and grows
    # continuously and monotonically with the ambient (Lipschitz: no jumps).
    first = np.argmax(~free)
    assert np.all(~free[first:])
    # d q_evap / d t_ref = G(1) (what the device no longer removes), so one step
    # of the scan moves the load by at most G(1) dt: no jump at the switch-over.
    dt = t_ref[1] - t_ref[0]
    g1 = float(np.max(np.asarray(s.conductance)))
    assert 0 < q_evap[first] <= g1 * dt * (1 + 1e-9)
    dq = np.diff(q_evap)
    assert np.all(dq >= -1e-6) and np.max(dq) <= g1 * dt * (1 + 1e-9)
    dw = np.diff(w)[first:]
    assert np.all(dw >= 0.0) and np.max(dw) < 3.0 * np.mean(dw)
    # Fan power is continuous too: full speed at the switch-over.
    assert float(s.fan_fraction[first - 1]) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("kind,model", [("dry_cooler", "none"), ("dry_cooler", "carnot"), ("open_tower", "doe2")])
def test_supply_temperature_is_reject_heats_without_the_fan_root(kind, model):
    """The coupled solves iterate on ``supply_temperature``: the supply of
    ``reject_heat`` (the same operations; bit for bit here, compared to
    rounding since another batch size may vectorize differently), where the
    device holds the setpoint and, without a chiller, where it cannot (the
    supply floats above the setpoint)."""
    t_ref = C0 + np.linspace(-5.0, 45.0, 51)
    s = _reject(t_ref, kind=kind, model=model)
    dev = dry_cooler() if kind == "dry_cooler" else open_tower()
    t_sup = jax.jit(
        jax.vmap(
            lambda tr: plant.supply_temperature(dev, 8.0e5, C_FW, C0 + 27.0, tr, P_ATM, kind=kind, chiller_model=model)
        )
    )(jnp.asarray(t_ref))
    np.testing.assert_allclose(np.asarray(t_sup), np.asarray(s.t_supply), rtol=1e-14, atol=0)
    floats = np.asarray(t_sup) > C0 + 27.0
    assert floats.any() == (model == "none") and (~floats).any()


@pytest.mark.parametrize("kind,model", [("dry_cooler", "carnot"), ("open_tower", "doe2"), ("dry_cooler", "none")])
def test_energy_balance_of_the_plant(kind, model):
    t_ref = C0 + np.linspace(0.0, 35.0, 36)
    s = _reject(t_ref, kind=kind, model=model)
    q_in = 8.0e5 + np.asarray(s.w_chiller)
    q_out = np.asarray(s.q_econ) + np.asarray(s.q_cond)
    np.testing.assert_allclose(q_out, q_in, rtol=1e-12)
    # Temperature bookkeeping along the FW: device then chiller.
    np.testing.assert_allclose(C_FW * np.asarray(s.t_in - s.t_econ_out), np.asarray(s.q_econ), rtol=1e-9)
    np.testing.assert_allclose(C_FW * np.asarray(s.t_econ_out - s.t_supply), np.asarray(s.q_evap), rtol=1e-9, atol=1e-6)
    if model != "none":
        assert np.any(np.asarray(s.q_evap) > 0) and np.any(np.asarray(s.q_evap) == 0)


def test_without_chiller_supply_floats_continuously():
    t_ref = C0 + np.linspace(10.0, 35.0, 501)
    s = _reject(t_ref, model="none")
    t_sup = np.asarray(s.t_supply)
    assert np.all(t_sup >= C0 + 27.0 - 1e-12)
    floating = t_sup > C0 + 27.0 + 1e-9
    assert floating.any() and (~floating).any()
    assert np.max(np.abs(np.diff(t_sup))) < 0.06  # K per 0.05 K of ambient
    # Floating: fans at full speed and the device rejects the load at that supply.
    np.testing.assert_allclose(np.asarray(s.fan_fraction)[floating], 1.0)
    g1 = np.asarray(s.conductance)[floating]
    q = g1 * (np.asarray(s.t_in)[floating] - t_ref[floating])
    np.testing.assert_allclose(q, 8.0e5, rtol=1e-9)


def test_cold_ambient_runs_fans_at_minimum_with_bypass():
    # A quarter load on a cold day: at minimum fan speed the coil would overcool
    # the water, so the bypass holds the setpoint and the fans stay at minimum.
    s = _reject(C0 + np.array([-20.0, -10.0]), q=2.0e5)
    np.testing.assert_allclose(s.fan_fraction, float(dry_cooler().fan_fraction_min))
    np.testing.assert_allclose(s.t_supply, C0 + 27.0)
    np.testing.assert_allclose(s.p_fan, float(dry_cooler().fan_power_rated) * 0.15**3, rtol=1e-12)


def test_gradient_of_chiller_power_wrt_setpoint():
    dev, ch = dry_cooler(), chiller()

    def w(t_set):
        return plant.reject_heat(
            dev, ch, 8e5, C_FW, t_set, C0 + 30.0, P_ATM, kind="dry_cooler", chiller_model="carnot"
        ).w_chiller

    g = float(jax.jit(jax.grad(w))(jnp.float64(C0 + 27.0)))
    wj = jax.jit(w)
    fd = (float(wj(C0 + 27.0 + 1e-4)) - float(wj(C0 + 27.0 - 1e-4))) / 2e-4
    assert g < 0  # a warmer setpoint needs less chiller power
    assert g == pytest.approx(fd, rel=1e-6)

    # Gradient of the fan speed under free cooling (through the implicit root).
    def fan(t_set):
        return plant.reject_heat(
            dev, ch, 8e5, C_FW, t_set, C0 + 10.0, P_ATM, kind="dry_cooler", chiller_model="carnot"
        ).fan_fraction

    gf = float(jax.jit(jax.grad(fan))(jnp.float64(C0 + 27.0)))
    fj = jax.jit(fan)
    fdf = (float(fj(C0 + 27.0 + 1e-4)) - float(fj(C0 + 27.0 - 1e-4))) / 2e-4
    assert gf < 0 and gf == pytest.approx(fdf, rel=1e-6)


def test_float32_plant():
    t_ref = C0 + np.array([5.0, 20.0, 31.0])
    s32 = _reject(t_ref, dtype=jnp.float32)
    s64 = _reject(t_ref)
    assert s32.w_chiller.dtype == jnp.float32
    np.testing.assert_allclose(s32.t_supply, s64.t_supply, atol=1e-4)
    np.testing.assert_allclose(s32.w_chiller, s64.w_chiller, rtol=1e-4, atol=1.0)
    np.testing.assert_allclose(s32.fan_fraction, s64.fan_fraction, atol=1e-5)
