"""Psychrometrics of moist air (ASHRAE Handbook - Fundamentals 2017, ch. 1).

Ideal-gas relations with the Hyland-Wexler saturation pressure, as in the
Handbook:

* saturation pressure over ice (-100 to 0 C, eq. 5) and over liquid water
  (0 to 200 C, eq. 6); the Handbook states these are within 300 ppm of the
  tabulated values;
* humidity ratio ``W = 0.621945 p_w / (p - p_w)`` (eq. 20/22);
* moist-air enthalpy ``h = 1006 t + W (2 501 000 + 1860 t)`` J/kg dry air, t in C
  (eq. 32);
* the psychrometric equation for the thermodynamic wet bulb t* (eq. 33 above
  freezing, eq. 35 over ice).

Units: temperatures in kelvin, pressures in pascals, relative humidity as a
fraction in [0, 1], humidity ratios in kg water per kg dry air, enthalpies in
J/kg dry air. Functions are elementwise, follow the input dtype, and work under
``jit``/``vmap``/``grad``; the wet bulb is a bracketed root with implicit
derivatives.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..solvers.roots import _asfloat, _bracketed_root, _float_dtype

__all__ = [
    "T0",
    "humidity_ratio",
    "humidity_ratio_from_wet_bulb",
    "moist_air_enthalpy",
    "relative_humidity",
    "saturated_air_enthalpy",
    "saturation_humidity_ratio",
    "saturation_pressure",
    "wet_bulb",
    "wet_bulb_from_humidity_ratio",
]

T0 = 273.15  # K at 0 C
_EPS_MW = 0.621945  # ratio of molar masses water / dry air

_ICE = (-5.6745359e03, 6.3925247e00, -9.6778430e-03, 6.2215701e-07, 2.0747825e-09, -9.4840240e-13)
_ICE_LOG = 4.1635019e00
_WATER = (-5.8002206e03, 1.3914993e00, -4.8640239e-02, 4.1764768e-05, -1.4452093e-08)
_WATER_LOG = 6.5459673e00


def _poly_t(coeffs, t):
    # c0/T + c1 + c2 T + c3 T^2 + ...
    acc = jnp.zeros_like(t)
    for c in reversed(coeffs[1:]):
        acc = acc * t + c
    return coeffs[0] / t + acc


def saturation_pressure(t):
    """Saturation pressure of water vapour, Pa, at temperature ``t`` (K); over ice
    below 273.15 K, over liquid water above (valid 173.15-473.15 K)."""
    dtype = _float_dtype(t)
    (t,) = _asfloat(dtype, t)
    ln_ice = _poly_t(_ICE, t) + _ICE_LOG * jnp.log(t)
    ln_water = _poly_t(_WATER, t) + _WATER_LOG * jnp.log(t)
    return jnp.exp(jnp.where(t < T0, ln_ice, ln_water))


def humidity_ratio(p_w, p):
    """Humidity ratio (kg/kg dry air) from the water-vapour partial pressure and
    the total pressure (Pa)."""
    dtype = _float_dtype(p_w, p)
    p_w, p = _asfloat(dtype, p_w, p)
    return _EPS_MW * p_w / (p - p_w)


def saturation_humidity_ratio(t, p):
    """Humidity ratio of saturated air at ``t`` (K) and pressure ``p`` (Pa)."""
    return humidity_ratio(saturation_pressure(t), p)


def relative_humidity(t_db, w, p):
    """Relative humidity (fraction) of air at dry bulb ``t_db`` (K), humidity
    ratio ``w`` and pressure ``p`` (Pa)."""
    dtype = _float_dtype(t_db, w, p)
    t_db, w, p = _asfloat(dtype, t_db, w, p)
    p_w = p * w / (_EPS_MW + w)
    return p_w / saturation_pressure(t_db)


def moist_air_enthalpy(t, w):
    """Specific enthalpy of moist air, J/kg dry air, at ``t`` (K) and humidity
    ratio ``w``; zero for dry air at 0 C (ASHRAE eq. 32)."""
    dtype = _float_dtype(t, w)
    t, w = _asfloat(dtype, t, w)
    tc = t - T0
    return 1006.0 * tc + w * (2.501e6 + 1860.0 * tc)


def saturated_air_enthalpy(t, p):
    """Enthalpy of saturated air, J/kg dry air, at ``t`` (K) and ``p`` (Pa)."""
    return moist_air_enthalpy(t, saturation_humidity_ratio(t, p))


def humidity_ratio_from_wet_bulb(t_db, t_wb, p):
    """Humidity ratio from dry bulb and thermodynamic wet bulb (K) at ``p`` (Pa):
    ASHRAE eq. 33 (wet bulb at or above 0 C) or eq. 35 (below)."""
    dtype = _float_dtype(t_db, t_wb, p)
    t_db, t_wb, p = _asfloat(dtype, t_db, t_wb, p)
    t = t_db - T0
    ts = t_wb - T0
    ws = saturation_humidity_ratio(t_wb, p)
    above = ((2501.0 - 2.326 * ts) * ws - 1.006 * (t - ts)) / (2501.0 + 1.86 * t - 4.186 * ts)
    below = ((2830.0 - 0.24 * ts) * ws - 1.006 * (t - ts)) / (2830.0 + 1.86 * t - 2.1 * ts)
    return jnp.where(ts >= 0.0, above, below)


def wet_bulb_from_humidity_ratio(t_db, w, p):
    """Thermodynamic wet-bulb temperature (K) from dry bulb (K), humidity ratio and
    pressure (Pa): the root of the psychrometric equation, found by a bracketed
    Newton solve between ``t_db - 80 K`` (floored at 173.15 K) and ``t_db``,
    converged to a few machine epsilons; derivatives are implicit."""
    dtype = _float_dtype(t_db, w, p)
    t_db, w, p = _asfloat(dtype, t_db, w, p)
    lo = jnp.maximum(t_db - 80.0, 173.15)
    return _bracketed_root(lambda ts: humidity_ratio_from_wet_bulb(t_db, ts, p) - w, lo, t_db)


def wet_bulb(t_db, rh, p=101325.0):
    """Thermodynamic wet-bulb temperature (K) from dry bulb (K), relative humidity
    (fraction, with respect to water above 0 C and ice below) and pressure (Pa)."""
    dtype = _float_dtype(t_db, rh, p)
    t_db, rh, p = _asfloat(dtype, t_db, rh, p)
    w = humidity_ratio(rh * saturation_pressure(t_db), p)
    return wet_bulb_from_humidity_ratio(t_db, w, p)
