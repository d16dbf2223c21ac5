"""Parameter sets shared by the plant and coupled-solve tests: an NVL72-class hall
(8 racks x 72 accelerators of about 1 kW) with a dry cooler, or with an open wet
tower and a trim chiller. Values follow /work/shared/reference/validation.md where
it has them (approaches, pump efficiency, cold-plate resistance and flow sizing);
the rest are stated engineering assumptions, good enough to exercise the physics.
"""

from __future__ import annotations

import jax.numpy as jnp

from aidc_thermo.kernels import hx, plant
from aidc_thermo.kernels.plant.coupled import Ambient, ColdPlate, Facility
from aidc_thermo.kernels.plant.it_power import Accelerator

C0 = 273.15
LPM = 1.0 / 60000.0  # m^3/s per L/min


def f(x, dtype=jnp.float64):
    return jnp.asarray(x, dtype)


def accelerator(dtype=jnp.float64, **kw):
    p = dict(
        p_idle=150.0,  # W
        p_dynamic=750.0,  # W at u = 1, nominal clock
        leak_ref=100.0,  # W at 85 C
        leak_beta=0.02,  # 1/K: leakage doubles every 35 K
        t_leak_ref=C0 + 85.0,
        t_throttle=C0 + 95.0,
        throttle_span=15.0,
        clock_min=0.5,
        dyn_clock_exponent=1.0,
        tokens_per_s=4000.0,
        ramp_smoothing=0.1,
    )
    p.update(kw)
    return Accelerator(**{k: f(v, dtype) for k, v in p.items()})


def cold_plate(dtype=jnp.float64):
    # OCP OAI 1 kW water cold plate fit (validation.md: 0.0172/0.0160/0.0154/0.0151 K/W
    # at 2/3/4/5 L/min) -> 0.0140 + 0.0032 (q/2 L/min)^-1.17, plus 0.010 K/W junction
    # to case; dp 50 kPa at 10 L/min with dp ~ q^1.85.
    return ColdPlate(
        r_base=f(0.024, dtype),
        r_flow=f(0.0032, dtype),
        r_exponent=f(1.17, dtype),
        dp_ref=f(50e3 * (0.2**1.85), dtype),
        dp_exponent=f(1.85, dtype),
        q_ref=f(2.0 * LPM, dtype),
    )


N_ACC = 576.0
Q_DESIGN = 1.0e6  # W, plant rating
RHO_TCS, CP_TCS = 1020.0, 3900.0  # PG25-like
RHO_FW, CP_FW = 997.0, 4180.0


def dry_cooler(dtype=jnp.float64, arrangement="counterflow"):
    c_w = RHO_FW * CP_FW * 0.024  # rated FW flow 24 L/s
    m_air = Q_DESIGN / (plant.CP_AIR * 12.0)  # 12 K air rise at rating
    ua = plant.rate_device("dry_cooler", Q_DESIGN, 10.0, c_w, m_air, C0 + 35.0, 101325.0, arrangement=arrangement)
    return plant.RejectionDevice(
        ua_rated=f(ua, dtype),
        c_water_rated=f(c_w, dtype),
        m_air_rated=f(m_air, dtype),
        cp_air=f(plant.CP_AIR, dtype),
        cs_span=f(10.0, dtype),
        air_share=f(0.8, dtype),
        air_exponent=f(0.8, dtype),
        water_exponent=f(0.8, dtype),
        fan_power_rated=f(0.018 * Q_DESIGN, dtype),
        fan_fraction_min=f(0.15, dtype),
        hx_ua=f(0.0, dtype),
    )


def open_tower(dtype=jnp.float64):
    c_tw = RHO_FW * CP_FW * 0.024  # tower loop 24 L/s (range ~10 K)
    m_air = 24.0  # kg/s, air/water mass ratio ~ 1
    ua = plant.rate_device("open_tower", Q_DESIGN, 5.0, c_tw, m_air, C0 + 28.0, 101325.0)
    c_fw = RHO_FW * CP_FW * 0.024
    hx_ua = hx.ua_from_approach(1.5, Q_DESIGN, c_fw, c_tw)  # plate HX, 1.5 K approach
    return plant.RejectionDevice(
        ua_rated=f(ua, dtype),
        c_water_rated=f(c_tw, dtype),
        m_air_rated=f(m_air, dtype),
        cp_air=f(plant.CP_AIR, dtype),
        cs_span=f(10.0, dtype),
        air_share=f(0.6, dtype),
        air_exponent=f(0.8, dtype),
        water_exponent=f(0.6, dtype),
        fan_power_rated=f(0.012 * Q_DESIGN, dtype),
        fan_fraction_min=f(0.15, dtype),
        hx_ua=f(hx_ua, dtype),
    )


def chiller(dtype=jnp.float64):
    cop_ref, coeffs, chw_b, cond_b = plant.doe2_centrifugal_eir()
    return plant.Chiller(
        carnot_fraction=f(0.55, dtype),
        dt_evap=f(2.0, dtype),
        dt_cond=f(2.0, dtype),
        cop_ref=f(cop_ref, dtype),
        eir_coeffs=jnp.asarray(coeffs, dtype),
        t_chw_bounds=jnp.asarray(chw_b, dtype),
        t_cond_bounds=jnp.asarray(cond_b, dtype),
        lift_min=f(1.0, dtype),
        cond_approach=f(5.0, dtype),
        cond_power_per_w=f(0.02, dtype),
    )


def hall(dtype=jnp.float64, device="dry_cooler", acc=None, **kw):
    q_cp = 2.0 * LPM  # OCP sizing ~1.5-2 L/min per kW
    flow_tcs = N_ACC * q_cp
    c_tcs = RHO_TCS * CP_TCS * flow_tcs
    flow_fw = 0.024
    c_fw = RHO_FW * CP_FW * flow_fw
    q_rated = 0.85e6
    cdu_ua = hx.ua_from_approach(3.0, q_rated, c_tcs, c_fw)  # 3 K CDU approach
    dev = dry_cooler(dtype) if device == "dry_cooler" else open_tower(dtype)
    p = dict(
        n_accelerators=N_ACC,
        utilization=0.8,
        other_it_per_accelerator=450.0,
        conversion_loss_fraction=0.05,
        other_liquid_fraction=0.8,
        flow_per_accelerator=q_cp,
        upstream_heat=0.0,
        rho_tcs=RHO_TCS,
        cp_tcs=CP_TCS,
        dp_tcs_other=100e3,
        flow_tcs_rated=flow_tcs,
        eta_pump_tcs=0.70,
        cdu_ua_rated=cdu_ua,
        cdu_c_tcs_rated=c_tcs,
        cdu_c_fw_rated=c_fw,
        cdu_share_tcs=0.5,
        cdu_exponent=0.65,
        flow_fw=flow_fw,
        rho_fw=RHO_FW,
        cp_fw=CP_FW,
        dp_fw_rated=150e3,
        flow_fw_rated=flow_fw,
        eta_pump_fw=0.70,
        pump_heat_fraction=1.0,
        t_supply_set=C0 + 32.0,
        export_fraction=0.0,
        tower_cycles=4.0,
        tower_drift_fraction=5e-5,
        air_cooling_w_per_w=0.15,
        facility_overhead_fraction=0.05,
    )
    p.update(kw)
    return Facility(
        accelerator=acc if acc is not None else accelerator(dtype),
        cold_plate=cold_plate(dtype),
        device=dev,
        chiller=chiller(dtype),
        **{k: f(v, dtype) for k, v in p.items()},
    )


def ambient(t_db_c, t_wb_c, dtype=jnp.float64, p=101325.0):
    return Ambient(t_db=f(C0 + t_db_c, dtype), t_wb=f(C0 + t_wb_c, dtype), p=f(p, dtype))
