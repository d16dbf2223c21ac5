"""The 1D correlation estimate of a straight-fin unit cell: what an engineer
would compute by hand before any CFD, as accuracy context for the compact and
resolved models (not a validation reference).

Pressure drop: Shah's apparent friction for developing flow from a uniform
inlet (the compact model's closure, kernels.fv.porous.shah_apparent_fre) with the
Shah & London fully developed f Re of the channel's aspect ratio.
Heat: fully developed Nu_H1 of the rectangular channel (four walls heated;
here the top is an adiabatic wall, so the estimate leans optimistic) on the
floor plus both fin sides, the fins at their tanh(mH)/(mH) efficiency; 1D
conduction through the base; the coolant's caloric rise, half of it for the
mean base temperature, all of it for the maximum (at the outlet end; axial
conduction ignored).
"""

from __future__ import annotations

import numpy as np

from aidc_thermo.kernels import porous


def unit_cell_estimate(case) -> dict:
    """``{"dp_Pa", "R_mean_KpW", "R_max_KpW"}`` for a ``resolved_coldplate``
    straight-fin unit cell (``thermo.models.coldplate.ColdPlateCase``) heated over its
    whole fin-field footprint."""
    g = case.geometry
    if case.geometry_kind != "straight_fins" or not g.get("unit_cell"):
        raise ValueError("the 1D estimate covers straight-fin unit cells only")
    w, t, height = g["channel_width"], g["fin_thickness"], g["fin_height"]
    base, length = g["base_thickness"], g["length"]
    t_in = case.inlet_temperature
    cool = case.coolant
    rho, mu = float(cool.density(t_in)), float(cool.viscosity(t_in))
    cp, k_f = float(cool.cp(t_in)), float(cool.conductivity(t_in))
    k_s = case.solid_k
    pitch = w + t
    u = case.flow_rate / (w * height)  # mean channel speed
    dh = 2 * w * height / (w + height)
    alpha = min(w, height) / max(w, height)
    re = rho * u * dh / mu
    fre = float(porous.shah_london_fre(np.asarray(alpha)))
    f_app_re = float(porous.shah_apparent_fre(np.asarray(length / (dh * re)), fre))
    dp = 2.0 * f_app_re * mu * u * length / dh**2

    h = float(porous.shah_london_nu_h1(np.asarray(alpha))) * k_f / dh
    m = np.sqrt(2.0 * h / (k_s * t))
    eta = float(porous.fin_efficiency(np.asarray(m * height)))
    r_conv = 1.0 / (h * (w + 2.0 * height * eta) * length)
    r_base = base / (k_s * pitch * length)
    m_cp = rho * cp * case.flow_rate
    return {
        "dp_Pa": dp,
        "R_mean_KpW": r_base + r_conv + 0.5 / m_cp,
        "R_max_KpW": r_base + r_conv + 1.0 / m_cp,
    }
