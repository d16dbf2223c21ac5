"""Psychrometrics against the ASHRAE Handbook - Fundamentals (2017) ch. 1 tables
and example, and against CoolProp's real-gas humid-air formulation (RP-1485)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from CoolProp.HumidAirProp import HAPropsSI

from aidc_thermo.kernels import psychro
from aidc_thermo.validation.plant import handbook_example_1, saturation_air, saturation_pressure

T0 = psychro.T0

# ASHRAE 2017 Fundamentals ch. 1, Tables 2 and 3 and Example 1: the values ship in
# aidc_thermo/data/validation.json; the functions below are the ones thermo validate
# reports (aidc_thermo.validation.plant).


def test_saturation_pressure_against_table3():
    # The Handbook states its formula is within 300 ppm (over ice below 0 C).
    r = saturation_pressure()
    np.testing.assert_allclose(r["computed"], r["ref"], rtol=3e-4)
    np.testing.assert_allclose(r["t_degC"], [-20, -5, 5, 25, 50, 100, 150])


def test_saturation_humidity_ratio_against_table2():
    # The table includes the real-gas enhancement factor, the ideal-gas relation
    # does not (0.4-0.6 % below the table at 5-50 C).
    w, ref = saturation_air()["W"]
    np.testing.assert_allclose(w, ref, rtol=7e-3)
    assert np.all(w < ref)  # the missing enhancement factor (> 1) is the whole difference


def test_handbook_example_1():
    # Moist air at 40 C dry bulb, 20 C thermodynamic wet bulb, 101.325 kPa:
    # W = 0.0065 kg/kg, relative humidity 14 %, h = 56.7 kJ/kg (printed values).
    r = handbook_example_1()
    assert r["W"][0] == pytest.approx(r["W"][1], abs=1e-4)
    assert r["rh"][0] == pytest.approx(r["rh"][1], abs=0.005)
    assert r["h"][0] == pytest.approx(r["h"][1], abs=100.0)
    # And back: the wet bulb of that air is 20 C.
    assert r["t_wb"][0] == pytest.approx(T0 + 20.0, abs=1e-9)
    assert (r["W"][1], r["rh"][1], r["h"][1]) == (0.0065, 0.14, 56.7e3)


def test_wet_bulb_against_coolprop():
    # CoolProp's humid air (Hyland-Wexler with virial real-gas corrections) is an
    # independent formulation; the ideal-gas psychrometric equation agrees to a
    # few hundredths of a kelvin over the range that matters for cooling plants.
    tdb = np.array([-10.0, 5.0, 15.0, 25.0, 35.0, 45.0]) + T0
    rh = np.array([0.1, 0.3, 0.6, 0.9])
    for p in (101325.0, 84000.0):
        t, r = np.meshgrid(tdb, rh, indexing="ij")
        got = np.asarray(jax.jit(psychro.wet_bulb)(jnp.asarray(t), jnp.asarray(r), p))
        ref = np.vectorize(lambda a, b, p=p: HAPropsSI("B", "T", a, "P", p, "R", b))(t, r)
        np.testing.assert_allclose(got, ref, atol=0.03)
        assert np.all(got <= t + 1e-12) and np.all(got > t - 40)


def test_saturated_air_has_wet_bulb_equal_to_dry_bulb():
    t = jnp.asarray([T0 - 15.0, T0 + 2.0, T0 + 20.0, T0 + 38.0])
    np.testing.assert_allclose(psychro.wet_bulb(t, jnp.ones_like(t), 101325.0), t, atol=1e-8)


def test_saturated_air_enthalpy_against_table2():
    # Table 2, h_s at 101.325 kPa (J/kg dry air); ideal gas agrees to about 1 %.
    h_s, ref = saturation_air()["h_s"]
    np.testing.assert_allclose(h_s, ref, rtol=0.01)
    np.testing.assert_allclose(ref, [18639.0, 76504.0, 275353.0])


def test_wet_bulb_gradient_matches_finite_difference():
    f = jax.jit(psychro.wet_bulb)
    g = jax.jit(jax.grad(psychro.wet_bulb, (0, 1, 2)))
    for t, r in [(T0 + 30.0, 0.5), (T0 + 8.0, 0.2), (T0 - 5.0, 0.7)]:
        t, r, p = jnp.float64(t), jnp.float64(r), jnp.float64(95000.0)
        gt, gr, gp = g(t, r, p)
        fd_t = (f(t + 1e-4, r, p) - f(t - 1e-4, r, p)) / 2e-4
        fd_r = (f(t, r + 1e-6, p) - f(t, r - 1e-6, p)) / 2e-6
        fd_p = (f(t, r, p + 1.0) - f(t, r, p - 1.0)) / 2.0
        assert float(gt) == pytest.approx(float(fd_t), rel=1e-6)
        assert float(gr) == pytest.approx(float(fd_r), rel=1e-6)
        assert float(gp) == pytest.approx(float(fd_p), rel=1e-4)


def test_float32_and_vmap():
    t = np.array([T0 + 5.0, T0 + 22.0, T0 + 37.0])
    r = np.array([0.8, 0.45, 0.25])
    w32 = jax.jit(jax.vmap(lambda a, b: psychro.wet_bulb(a, b, jnp.float32(101325.0))))(
        jnp.asarray(t, jnp.float32), jnp.asarray(r, jnp.float32)
    )
    w64 = [float(psychro.wet_bulb(a, b, 101325.0)) for a, b in zip(t, r, strict=True)]
    assert w32.dtype == jnp.float32
    np.testing.assert_allclose(w32, w64, atol=2e-4)
