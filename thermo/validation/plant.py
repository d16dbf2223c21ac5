"""Heat-rejection plant and facility validation: effectiveness-NTU regression
points, psychrometrics against the ASHRAE Handbook tables, water properties
against IAPWS, the DOE-2 chiller reference point, and the first-law closure of
the coupled facility chain (tests/test_hx.py, test_psychro.py, test_coolant.py,
test_plant.py and test_coupled.py assert on these)."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels import hx, plant, psychro

from . import reference

T0 = psychro.T0


def hx_regression() -> dict:
    """Effectiveness at NTU = 5, Cr = 0.7 of each tabulated arrangement:
    arrangement -> (computed, reference, digits tolerance)."""
    r = reference("hx_regression")
    return {
        a: (float(hx.effectiveness(r["ntu"], r["cr"], a)), value, r["digits_tolerance"][a])
        for a, value in r["effectiveness"].items()
    }


def saturation_pressure() -> dict:
    r = reference("saturation_pressure")
    t = jnp.asarray([T0 + tc for tc in r["t_degC"]])
    computed = np.asarray(psychro.saturation_pressure(t))
    return dict(t_degC=np.array(r["t_degC"]), computed=computed, ref=np.array(r["p_Pa"]))


def saturation_air(p: float = 101325.0) -> dict:
    """Humidity ratio and enthalpy of saturated air at the Table 2 temperatures."""
    r = reference("saturation_humidity_ratio")
    t = jnp.asarray([T0 + tc for tc in r["t_degC"]])
    return dict(
        t_degC=np.array(r["t_degC"]),
        W=(np.asarray(psychro.saturation_humidity_ratio(t, p)), np.array(r["W"])),
        h_s=(np.asarray(psychro.saturated_air_enthalpy(t, p)), np.array(r["h_s_J_per_kg"])),
    )


def handbook_example_1() -> dict:
    """ASHRAE Example 1: 40 C dry bulb, 20 C wet bulb: computed (W, rh, h) and
    the printed values, and the wet bulb recovered from the computed rh."""
    r = reference("psychro_example_1")
    t, twb, p = T0 + r["t_db_degC"], T0 + r["t_wb_degC"], r["p_Pa"]
    w = float(psychro.humidity_ratio_from_wet_bulb(t, twb, p))
    rh = psychro.relative_humidity(t, w, p)
    return dict(
        W=(w, r["W"]),
        rh=(float(rh), r["rh"]),
        h=(float(psychro.moist_air_enthalpy(t, w)), r["h_J_per_kg"]),
        t_wb=(float(psychro.wet_bulb(t, rh, p)), twb),
    )


def water_properties() -> dict:
    """Our water fits at the IAPWS temperatures: property -> (computed, reference) arrays."""
    from aidc_thermo.coolant import make_coolant

    r = reference("water_1atm")
    w = make_coolant("water")
    T = np.array(r["t_degC"], float) + 273.15
    return dict(
        t_degC=np.array(r["t_degC"]),
        density=(np.array([w.density(x) for x in T]), np.array(r["density"])),
        cp=(np.array([w.cp(x) for x in T]), np.array(r["cp"])),
        viscosity=(np.array([w.viscosity(x) for x in T]), np.array(r["viscosity_mPa_s"]) * 1e-3),
        conductivity=(np.array([w.conductivity(x) for x in T]), np.array(r["conductivity"])),
    )


def doe2_reference_point() -> dict:
    """EIRFT at the curve's rating point (1 by construction of the curve) and
    COP_ref / EIRFT."""
    r = reference("doe2_centrifugal")
    cop_ref, coeffs, _, _ = plant.doe2_centrifugal_eir()
    eir = float(plant.doe2_eirft(jnp.asarray(coeffs), T0 + r["t_chw_ref_degC"], T0 + r["t_cond_ref_degC"]))
    return dict(eir=eir, cop=cop_ref / eir, cop_ref=r["cop_ref"], cop_ref_kernel=cop_ref)


# ----------------------------------------------------------------------------- facility chain


def chain_balances(fac, op) -> dict[str, tuple[float, float]]:
    """The first law across the coupled chain of a converged operating point:
    name -> (left, right), each pair equal when energy closes. The CDU duty is
    recomputed by an independent effectiveness-NTU evaluation at the returned
    temperatures; every stage from its own temperatures and flows."""
    c_tcs = float(fac.rho_tcs * fac.cp_tcs * fac.n_accelerators * fac.flow_per_accelerator)
    c_fw = float(fac.rho_fw * fac.cp_fw * fac.flow_fw)
    q_tcs = float(op.q_tcs)
    ua = hx.ua_flow_scaled(
        fac.cdu_ua_rated, c_tcs / fac.cdu_c_tcs_rated, c_fw / fac.cdu_c_fw_rated,
        fac.cdu_share_tcs, fac.cdu_exponent, fac.cdu_exponent,
    )  # fmt: skip
    q_cdu = float(hx.hx_duty(ua, c_tcs, c_fw, op.t_tcs_return, op.t_fw_supply)[0])
    t_dev_in = float(op.t_fw_return) + float(op.q_pump_fw - op.q_export) / c_fw
    return {
        "heat out / heat in": (
            float(op.q_econ + op.q_cond + op.q_export),
            float(op.q_liquid_it + op.q_pump_tcs + op.q_pump_fw + op.w_chiller),
        ),
        "technology loop C dT / CDU duty": (c_tcs * float(op.t_tcs_return - op.t_tcs_supply), q_tcs),
        "facility water C dT / CDU duty": (c_fw * float(op.t_fw_return - op.t_fw_supply), q_tcs),
        "CDU duty (e-NTU) / CDU duty": (q_cdu, q_tcs),
        "device inlet temperature": (float(op.t_fw_device_in), t_dev_in),
        "economizer C dT / economizer duty": (c_fw * float(op.t_fw_device_in - op.t_fw_econ_out), float(op.q_econ)),
        "chiller C dT / evaporator duty": (c_fw * float(op.t_fw_econ_out - op.t_fw_supply), float(op.q_evap)),
    }


FACILITY_CASE = "nvl72_chiller_tower_hot_humid.toml"
FACILITY_DESIGN_POINT = 'dry_bulb = "33 degC"\nrelative_humidity = 0.65'


def facility_design_point(export_fraction: float | None = None) -> dict:
    """The bundled hot-humid facility case (open tower + trim chiller) at a
    33 degC, 65 % design point, through the application's parse and build and
    the coupled kernel: the operating point, the facility and the solver info."""
    from aidc_thermo.io.case import CaseFile
    from aidc_thermo.kernels.plant.coupled import Ambient, solve_operating_point
    from aidc_thermo.models import facility

    path = Path(str(resources.files("aidc_thermo.cases").joinpath(FACILITY_CASE)))
    text = re.sub(r"\[ambient\]\n[^\[]*", f"[ambient]\n{FACILITY_DESIGN_POINT}\n\n", path.read_text())
    case = facility.parse(CaseFile(path, text, tomllib.loads(text)))
    static, params = facility.build(case)
    fac, config = facility.with_properties(static, params.hall), static.config
    if export_fraction is not None:
        import dataclasses

        fac = dataclasses.replace(fac, export_fraction=jnp.float64(export_fraction))
    w = case.weather
    amb = Ambient(jnp.float64(w.t_db[0]), jnp.float64(w.t_wb[0]), jnp.float64(w.p[0]))
    op, info = jax.jit(lambda f, a: solve_operating_point(f, a, config))(fac, amb)
    return dict(fac=fac, op=op, info=info, config=config)
