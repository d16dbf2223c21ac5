"""Pin-fin field friction for the compact model: the Zukauskas tube-bank
charts, fitted as a Darcy-Forchheimer pair.

Source: Zukauskas (1972, Adv. Heat Transfer 8, 93-160) friction factor and
geometry-correction charts for banks of tubes in crossflow (also Zukauskas &
Ulinskas 1988; Incropera & DeWitt Figs. 7.13/7.14), as digitized and
spline-interpolated by ``ht.conv_tube_bank.dP_Zukauskas`` (Caleb Bell's
``ht``, ChEDL)::

    dP = N_L chi f rho V_max^2 / 2

per row ``N_L``; here per length of field, ``dP/dx = chi f rho V_max^2 /
(2 S_L)``. ``V_max`` is the velocity in the narrowest gap: ``V S_T / (S_T -
D)``, or for staggered banks whose diagonal gap is narrower (``S_D < (S_T +
D)/2``, ``S_D = sqrt(S_L^2 + (S_T/2)^2)``) ``V S_T / (2 (S_D - D))``
(Incropera eqs. 7.57-7.58); ``V`` the approach (superficial) velocity,
``Re_max = rho V_max D / mu``.

``ht`` picks the chart by the pitches: equal pitches -> in-line chart,
unequal -> staggered chart. So in-line banks must be square (``S_T = S_L``;
the in-line chart's correction for ``S_T != S_L`` is not used by ``ht``), and
a staggered bank with equal pitches is evaluated at ``S_L (1 + 1e-9)`` (the
staggered correction is continuous in ``S_T/S_L``).

Chart domains (outside them ``ht`` clamps the spline; refused here, see
:func:`check_geometry`): pitch ratio ``S_T/D`` (staggered) or ``S_L/D``
(in-line) 1.25-2.5; staggered ``S_T/S_L`` 0.44-3.54; ``Re_max`` 10 (staggered)
or 28.5 (in-line) to 1e6. The in-line spline is not monotone in ``S_L/D``
below ``Re_max`` 1000 (f at Re 100: 1.81, 0.82, 0.22, 0.27 for S_L/D = 1.25,
1.5, 2, 2.5: the published curves for wide pitches do not reach low Re), so
in-line banks with ``S_L/D > 1.5`` need ``Re_max >= 1000``. The charts are for
long tubes and at least ~10 rows; pins of finite height between end walls
(base and lid) and short fields deviate (no end-wall friction is included).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["max_velocity_ratio", "pressure_gradient", "reynolds_limits", "check_geometry", "fit_darcy_forchheimer"]


def max_velocity_ratio(diameter, pitch_t, pitch_l, staggered):
    """``V_max / V`` of a tube bank (narrowest gap, transverse or diagonal)."""
    ratio = pitch_t / (pitch_t - diameter)
    if staggered:
        sd = math.hypot(pitch_l, pitch_t / 2)
        if sd < (pitch_t + diameter) / 2:
            ratio = pitch_t / (2 * (sd - diameter))
    return ratio


def _chart_pitches(pitch_t, pitch_l, staggered):
    if staggered and pitch_t == pitch_l:
        return pitch_t, pitch_l * (1 + 1e-9)
    return pitch_t, pitch_l


def pressure_gradient(speed, diameter, pitch_t, pitch_l, staggered, rho, mu):
    """Zukauskas ``-dp/dx`` (Pa/m) of a pin field at superficial (approach)
    speeds ``speed`` (m/s, array), from ``ht.conv_tube_bank.dP_Zukauskas`` per
    longitudinal pitch."""
    from ht.conv_tube_bank import dP_Zukauskas

    st, sl = _chart_pitches(pitch_t, pitch_l, staggered)
    ratio = max_velocity_ratio(diameter, pitch_t, pitch_l, staggered)
    out = []
    for v in np.atleast_1d(np.asarray(speed, np.float64)):
        vmax = v * ratio
        out.append(dP_Zukauskas(rho * vmax * diameter / mu, 1, st, sl, diameter, rho, vmax) / pitch_l)
    return np.asarray(out)


def reynolds_limits(diameter, pitch_l, staggered):
    """``(low, high)`` Re_max of the chart used (see the module docstring)."""
    if staggered:
        return 10.0, 1e6
    return (1000.0 if pitch_l / diameter > 1.5 else 28.5), 1e6


def check_geometry(diameter, pitch_t, pitch_l, staggered):
    """``None`` if the charts cover the geometry, else ``(which, message)``
    with ``which`` = "pitch_transverse" or "pitch_longitudinal"."""
    for key, p in (("pitch_transverse", pitch_t), ("pitch_longitudinal", pitch_l)):
        if p <= diameter:
            return key, f"must exceed the pin diameter ({diameter * 1e3:g} mm), got {p * 1e3:g} mm"
    if staggered:
        a, ab = pitch_t / diameter, pitch_t / pitch_l
        if not 1.25 <= a <= 2.5:
            return (
                "pitch_transverse",
                f"Zukauskas staggered chart covers pitch_transverse / diameter 1.25-2.5, got {a:.4g}",
            )
        if not 0.4387 <= ab <= 3.5435:
            return (
                "pitch_longitudinal",
                f"Zukauskas staggered chart covers pitch_transverse / pitch_longitudinal 0.44-3.54, got {ab:.4g}",
            )
        if math.hypot(pitch_l, pitch_t / 2) <= diameter:
            return "pitch_longitudinal", "diagonal neighbours overlap (sqrt(S_L^2 + (S_T/2)^2) <= diameter)"
        return None
    if abs(pitch_t / pitch_l - 1) > 1e-9:
        return (
            "pitch_longitudinal",
            "in-line pins need pitch_longitudinal = pitch_transverse (the ht Zukauskas in-line chart is for square "
            f"banks), got {pitch_l * 1e3:g} mm vs {pitch_t * 1e3:g} mm",
        )
    b = pitch_l / diameter
    if not 1.25 <= b <= 2.5:
        return (
            "pitch_longitudinal",
            f"Zukauskas in-line chart covers pitch_longitudinal / diameter 1.25-2.5, got {b:.4g}",
        )
    return None


def fit_darcy_forchheimer(speeds, gradients):
    """Non-negative ``(r, beta)`` minimising the relative error of ``r u +
    beta u^2`` against ``gradients`` at ``speeds``; returns ``(r, beta,
    max relative error)``. ``r`` is floored at 1e-6 of the mean ``dp/dx / u``
    (the Picard flow solve starts from a Darcy step)."""
    u = np.asarray(speeds, np.float64)
    g = np.asarray(gradients, np.float64)
    a = np.stack([u / g, u**2 / g], axis=1)
    scale = np.abs(a).max(axis=0)
    from scipy.optimize import nnls  # here, not at import: scipy.optimize costs a second to import

    coef, _ = nnls(a / scale, np.ones_like(u))
    r, beta = coef / scale
    r = max(r, 1e-6 * float(np.mean(g / u)))
    err = float(np.max(np.abs((r * u + beta * u**2) / g - 1)))
    return float(r), float(beta), err
