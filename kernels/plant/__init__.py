"""Heat-rejection plant: pumps, dry coolers, wet cooling towers, chillers and the
economizer logic that decides between free cooling and mechanical cooling.

Units are SI throughout: temperatures in K, heat and power in W, capacity rates
(mass flow x specific heat) in W/K, volume flows in m^3/s, pressures in Pa, air
and water mass flows in kg/s. Every function is elementwise over scalars (use
``vmap`` for batches of operating points or hours), follows the input dtype and
works under ``jit``/``vmap``/``grad``.

Heat-rejection device model (:class:`RejectionDevice`)
------------------------------------------------------
A device cools the facility water (FW) towards an ambient reference temperature
``t_ref``: the dry bulb for a dry cooler, the wet bulb for wet towers. It is an
effectiveness-NTU exchanger between the water and an air stream of capacity
``C_air = f * m_air_rated * c_air`` at fan speed fraction ``f`` (air flow is
proportional to fan speed):

* dry cooler: ``c_air`` is the specific heat of air (sensible exchange; the
  leaving-water temperature approaches the dry bulb);
* wet tower (open or closed circuit): Merkel's enthalpy-driving-force model in
  Braun's effectiveness form (Braun, Klein & Mitchell 1989): the air is treated
  as a stream at the wet bulb whose effective specific heat is the slope of the
  saturated-air enthalpy, ``c_s = [h_sat(T_wb + cs_span) - h_sat(T_wb)] / cs_span``
  (a secant over the span of water temperatures in the tower; ``cs_span`` about
  the design approach plus half the range). Because ``c_s`` grows steeply with
  the wet bulb, a tower rejects more heat per kg of air in hot humid weather.

UA scales with both flows by a two-resistance law (:func:`kernels.plant.hx.ua_flow_scaled`):
the air-side film coefficient ~ (air flow)^air_exponent (0.8 default for finned
coils), the water side ~ (water flow)^water_exponent. UA at the rating point comes
from a rated approach (:func:`rate_device`). Fan power is ``fan_power_rated * f^3``
(fan affinity laws, fixed system curve). The heat a device rejects from water
entering at ``T_in`` is ``Q = G(f) (T_in - t_ref)`` with the conductance
``G = eps C_min`` for a coil that carries the FW itself (dry cooler, closed tower).
An open tower is isolated from the FW by a counterflow plate heat exchanger
(UA ``hx_ua``) with a constant tower-water flow ``c_water_rated``; eliminating the
tower-water temperatures of that loop gives ``1/G = 1/(eps_t C_min,t) - 1/C_tw +
1/(eps_hx C_min,hx)``.

Economizer and chiller (:func:`reject_heat`)
--------------------------------------------
The FW supply setpoint ``t_set`` is held by the economizer device when it can:
fans slow down (down to ``fan_fraction_min``; below that a bypass valve holds
the setpoint) until the device rejects exactly the load. When the device at full
fan speed cannot reach the setpoint:

* with a chiller (integrated, series economizer): the device pre-cools the water
  as far as it can and a trim chiller covers only the remaining load,
  ``Q_evap = Q_load - G(1) max(T_in - t_ref, 0)``, which is zero at the
  switch-over and grows continuously past it; fans run at full speed while the
  chiller runs;
* without a chiller the supply temperature floats above the setpoint:
  ``T_supply = t_ref + Q_load (1/G(1) - 1/C_fw)``.

The chiller's condenser water enters at ``t_ref + cond_approach`` and its
condenser heat (``Q_evap + W``) is rejected with ``cond_power_per_w`` watts of
fan and pump power per watt (for a tower plant it also evaporates water in the
tower). Part-load degradation is not modelled (a part-load curve with a nonzero
value at zero load would make chiller power jump at the switch-over).

Chiller COP (:func:`chiller_cop`) is either a fraction of the Carnot COP between
refrigerant temperatures ``t_chw - dt_evap`` and ``t_cond + dt_cond``, or
``cop_ref / EIRFT(T_chw, T_cond)`` with the DOE-2 bi-quadratic EIR curve (inputs
clipped to the curve's validity range, i.e. held flat outside it: warm-water
plants should prefer the Carnot-fraction model). Either way the COP is clipped
to the Carnot COP between the chilled-water leaving temperature and the condenser
water entering temperature, ``t_chw / max(t_cond - t_chw, lift_min)``: no
operating point beats Carnot, and a vanishing or negative lift gives a large
but finite COP.

Tower water use (:func:`tower_water_use`): evaporation from an air-side mass
balance with saturated leaving air (Braun's assumption): the air enthalpy rises
by ``Q / m_air``, the leaving air is saturated at that enthalpy, evaporation is
``m_air (W_out - W_in)``. Drift is a fraction of the circulating water flow;
blowdown keeps the cycles of concentration ``N``: ``B = E/(N - 1) - D`` (not
below 0); make-up = E + D + B.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..solvers.roots import _asfloat, _bracketed_root, _float_dtype, _safe_div
from . import hx, psychro

__all__ = [
    "CHILLER_MODELS",
    "DEVICE_KINDS",
    "Chiller",
    "PumpCurve",
    "RejectionDevice",
    "RejectionState",
    "TowerWater",
    "air_capacity",
    "air_specific_heat",
    "carnot_cop",
    "chiller_cop",
    "device_conductance",
    "doe2_centrifugal_eir",
    "doe2_eirft",
    "pump_efficiency",
    "pump_power",
    "pump_power_curve",
    "pump_speed_for_duty",
    "rate_device",
    "reject_heat",
    "supply_temperature",
    "tower_water_use",
]

DEVICE_KINDS = ("dry_cooler", "closed_tower", "open_tower")
CHILLER_MODELS = ("none", "carnot", "doe2")

CP_AIR = 1006.0  # J/kg/K, dry air (ASHRAE eq. 32)


# --------------------------------------------------------------------------- pumps


def pump_power(dp, flow, eta_wire_to_water):
    """Electrical power of a pump, W: ``dp * flow / eta`` (dp in Pa, flow in
    m^3/s, eta = pump x motor x drive efficiency)."""
    return dp * flow / eta_wire_to_water


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class PumpCurve:
    """A pump's head and efficiency curves at nominal speed, and affinity laws.

    Head (as pressure rise, Pa) at speed ratio s and flow Q (m^3/s):
    ``dp = h0 s^2 + h1 s Q + h2 Q^2``. Pump (hydraulic/shaft) efficiency at the
    nominal-speed equivalent flow Q/s: ``eta = e0 + e1 (Q/s) + e2 (Q/s)^2``
    (efficiency is unchanged along affinity parabolas). ``eta_motor_drive``
    multiplies for the wire-to-water efficiency.
    """

    h0: jax.Array
    h1: jax.Array
    h2: jax.Array
    e0: jax.Array
    e1: jax.Array
    e2: jax.Array
    eta_motor_drive: jax.Array


def pump_speed_for_duty(curve: PumpCurve, flow, dp):
    """Speed ratio at which the pump delivers ``flow`` (m^3/s) against ``dp`` (Pa):
    the positive root of ``h0 s^2 + h1 Q s + (h2 Q^2 - dp) = 0`` (h0 > 0)."""
    b = curve.h1 * flow
    c = curve.h2 * flow * flow - dp
    disc = jnp.maximum(b * b - 4.0 * curve.h0 * c, 0.0)
    return (-b + jnp.sqrt(disc)) / (2.0 * curve.h0)


def pump_efficiency(curve: PumpCurve, flow, speed):
    """Pump efficiency (without motor and drive) at ``flow`` and speed ratio."""
    qn = flow / speed
    return curve.e0 + curve.e1 * qn + curve.e2 * qn * qn


def pump_power_curve(curve: PumpCurve, flow, dp):
    """Electrical power (W) and speed ratio of a variable-speed pump on its curve
    delivering ``flow`` against ``dp``."""
    s = pump_speed_for_duty(curve, flow, dp)
    eta = pump_efficiency(curve, flow, s) * curve.eta_motor_drive
    return dp * flow / eta, s


# --------------------------------------------------------------------- devices


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class RejectionDevice:
    """A dry cooler or wet cooling tower (all traced scalars; see module docstring).

    Attributes:
        ua_rated: water-to-air UA at rated flows, W/K (from :func:`rate_device`).
        c_water_rated: rated water capacity rate through the coil or tower, W/K
            (for an open tower: the constant tower-water loop flow).
        m_air_rated: air mass flow at full fan speed, kg/s.
        cp_air: specific heat of air for a dry cooler, J/kg/K.
        cs_span: span for the saturated-air specific heat of a tower, K.
        air_share: fraction of the rated thermal resistance on the air side.
        air_exponent, water_exponent: film-coefficient flow exponents.
        fan_power_rated: fan power at full speed, W.
        fan_fraction_min: lowest fan speed fraction, in (0, 1].
        hx_ua: UA of the open tower's isolation plate heat exchanger, W/K
            (unused for the other kinds).
    """

    ua_rated: jax.Array
    c_water_rated: jax.Array
    m_air_rated: jax.Array
    cp_air: jax.Array
    cs_span: jax.Array
    air_share: jax.Array
    air_exponent: jax.Array
    water_exponent: jax.Array
    fan_power_rated: jax.Array
    fan_fraction_min: jax.Array
    hx_ua: jax.Array


def _check_kind(kind: str) -> None:
    if kind not in DEVICE_KINDS:
        raise ValueError(f"unknown heat-rejection device {kind!r}; expected one of {DEVICE_KINDS}")


def air_specific_heat(kind: str, cp_air, cs_span, t_ref, p):
    """Specific heat of the device's air stream, J/kg/K: ``cp_air`` for a dry
    cooler; for towers the secant slope of the saturated-air enthalpy between
    the wet bulb ``t_ref`` and ``t_ref + cs_span`` (K) at pressure ``p`` (Pa)."""
    _check_kind(kind)
    if kind == "dry_cooler":
        return cp_air * jnp.ones_like(t_ref)
    h_hi = psychro.saturated_air_enthalpy(t_ref + cs_span, p)
    h_lo = psychro.saturated_air_enthalpy(t_ref, p)
    return (h_hi - h_lo) / cs_span


def air_capacity(dev: RejectionDevice, kind: str, fan_fraction, t_ref, p):
    """Air-side capacity rate, W/K, at a fan speed fraction: ``f m_air c`` with c
    the air specific heat (dry cooler) or the saturated-air enthalpy slope at
    the wet bulb ``t_ref`` (towers)."""
    _check_kind(kind)
    c = air_specific_heat(kind, dev.cp_air, dev.cs_span, t_ref, p)
    return fan_fraction * dev.m_air_rated * c


def rate_device(
    kind: str,
    q_rated,
    approach_rated,
    c_water_rated,
    m_air_rated,
    t_ref_rated,
    p,
    cp_air=CP_AIR,
    cs_span=10.0,
    arrangement: str = "counterflow",
):
    """Rated UA (W/K) of a device that cools ``c_water_rated`` W/K of water by
    ``q_rated`` W to ``approach_rated`` K above the ambient reference
    ``t_ref_rated`` (dry bulb or wet bulb, K) with ``m_air_rated`` kg/s of air at
    pressure ``p`` (Pa). For an open tower this is the tower alone (its water
    loop), the isolation heat exchanger is rated separately."""
    _check_kind(kind)
    c_air = m_air_rated * air_specific_heat(kind, cp_air, cs_span, t_ref_rated, p)
    return hx.ua_from_approach(approach_rated, q_rated, c_water_rated, c_air, arrangement)


def device_conductance(dev: RejectionDevice, kind: str, arrangement: str, fan_fraction, c_fw, t_ref, p):
    """Conductance G (W/K) of a device at fan fraction ``f`` with facility-water
    capacity rate ``c_fw``: the heat it rejects is ``G (T_in - t_ref)``."""
    _check_kind(kind)
    c_air = air_capacity(dev, kind, fan_fraction, t_ref, p)
    if kind == "open_tower":
        c_w = dev.c_water_rated * jnp.ones_like(c_fw)
    else:
        c_w = c_fw
    ua = hx.ua_flow_scaled(
        dev.ua_rated,
        fan_fraction,
        c_w / dev.c_water_rated,
        dev.air_share,
        dev.air_exponent,
        dev.water_exponent,
    )
    c_min = jnp.minimum(c_w, c_air)
    c_max = jnp.maximum(c_w, c_air)
    g_tower = hx.effectiveness(ua / c_min, c_min / c_max, arrangement) * c_min
    if kind != "open_tower":
        return g_tower
    # Open tower: tower loop (constant flow c_w) + counterflow isolation HX.
    c_min_hx = jnp.minimum(c_fw, c_w)
    c_max_hx = jnp.maximum(c_fw, c_w)
    g_hx = hx.eps_counterflow(dev.hx_ua / c_min_hx, c_min_hx / c_max_hx) * c_min_hx
    return 1.0 / (1.0 / g_tower - 1.0 / c_w + 1.0 / g_hx)


# -------------------------------------------------------------------- chillers


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Chiller:
    """Chiller parameters (traced; the COP model is chosen statically).

    Attributes:
        carnot_fraction: fraction of the refrigerant-side Carnot COP (0.5-0.7
            for real chillers) for the ``"carnot"`` model.
        dt_evap: evaporating temperature below the chilled-water leaving
            temperature, K (``"carnot"`` model).
        dt_cond: condensing temperature above the condenser-water entering
            temperature, K (``"carnot"`` model).
        cop_ref: reference COP of the ``"doe2"`` model.
        eir_coeffs: DOE-2 EIRFT coefficients (a, b, c, d, e, f), shape (6,),
            temperatures in C: ``a + b Tchw + c Tchw^2 + d Tcond + e Tcond^2 + f Tchw Tcond``.
        t_chw_bounds: validity range of the curve's Tchw, K, shape (2,).
        t_cond_bounds: validity range of the curve's Tcond, K, shape (2,).
        lift_min: smallest lift used in the Carnot bound, K.
        cond_approach: condenser water entering temperature above the ambient
            reference (wet bulb for tower plants, dry bulb otherwise), K.
        cond_power_per_w: fan and pump power of the condenser heat rejection per
            watt of condenser heat, W/W.
    """

    carnot_fraction: jax.Array
    dt_evap: jax.Array
    dt_cond: jax.Array
    cop_ref: jax.Array
    eir_coeffs: jax.Array
    t_chw_bounds: jax.Array
    t_cond_bounds: jax.Array
    lift_min: jax.Array
    cond_approach: jax.Array
    cond_power_per_w: jax.Array


def doe2_centrifugal_eir():
    """The DOE-2 "Centrifugal 5.50 COP" reference curve (EnergyPlus
    Chiller:Electric:EIR dataset, also in the Modelica Buildings library): returns ``(cop_ref,
    coeffs, t_chw_bounds_K, t_cond_bounds_K)`` as Python floats/tuples; reference
    point 6.67 C leaving chilled water, 29.4 C entering condenser water."""
    coeffs = (0.933884, -0.0582120, 0.00450036, 0.00243, 0.000486, -0.001215)
    t0 = psychro.T0
    return 5.5, coeffs, (5.0 + t0, 10.0 + t0), (24.0 + t0, 35.0 + t0)


def doe2_eirft(coeffs, t_chw, t_cond):
    """DOE-2 energy-input-ratio modifier for temperature (no clipping): chilled
    water leaving ``t_chw`` and condenser water entering ``t_cond`` in K."""
    a = t_chw - psychro.T0
    b = t_cond - psychro.T0
    c = coeffs
    return c[0] + c[1] * a + c[2] * a * a + c[3] * b + c[4] * b * b + c[5] * a * b


def carnot_cop(t_chw, t_cond, lift_min):
    """Carnot cooling COP between ``t_chw`` and ``t_cond`` (K) with the lift
    floored at ``lift_min`` (K): ``t_chw / max(t_cond - t_chw, lift_min)``."""
    return t_chw / jnp.maximum(t_cond - t_chw, lift_min)


def chiller_cop(ch: Chiller, model: str, t_chw, t_cond):
    """Cooling COP at chilled-water leaving ``t_chw`` and condenser-water entering
    ``t_cond`` (K), never above :func:`carnot_cop` of the same temperatures."""
    bound = carnot_cop(t_chw, t_cond, ch.lift_min)
    if model == "carnot":
        t_e = t_chw - ch.dt_evap
        t_c = t_cond + ch.dt_cond
        cop = ch.carnot_fraction * carnot_cop(t_e, t_c, ch.lift_min)
    elif model == "doe2":
        a = jnp.clip(t_chw, ch.t_chw_bounds[0], ch.t_chw_bounds[1])
        b = jnp.clip(t_cond, ch.t_cond_bounds[0], ch.t_cond_bounds[1])
        cop = ch.cop_ref / doe2_eirft(ch.eir_coeffs, a, b)
    else:
        raise ValueError(f"unknown chiller model {model!r}; expected 'carnot' or 'doe2'")
    return jnp.minimum(cop, bound)


# ------------------------------------------------------------------ tower water


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class TowerWater:
    """Water use of a wet tower, kg/s (about L/s): evaporation, drift, blowdown,
    make-up (their sum)."""

    evaporation: jax.Array
    drift: jax.Array
    blowdown: jax.Array
    makeup: jax.Array


def tower_water_use(q, m_air, t_db, t_wb, p, cycles, drift_fraction, m_water_circ):
    """Water use of a wet tower rejecting ``q`` W with ``m_air`` kg/s of air
    entering at dry bulb ``t_db`` and wet bulb ``t_wb`` (K), pressure ``p`` (Pa);
    ``cycles`` of concentration (> 1), drift as a fraction of the circulating
    water ``m_water_circ`` (kg/s). See the module docstring."""
    dtype = _float_dtype(q, m_air, t_db, t_wb, p)
    q, m_air, t_db, t_wb, p = _asfloat(dtype, q, m_air, t_db, t_wb, p)
    w_in = psychro.humidity_ratio_from_wet_bulb(t_db, t_wb, p)
    h_in = psychro.moist_air_enthalpy(t_db, w_in)
    h_out = h_in + _safe_div(q, m_air)
    lo = t_wb - 5.0
    # the saturated air's enthalpy rises monotonically only below the water's boiling point at p, where its
    # humidity ratio diverges (and turns negative above); 80 degC boils at 47 kPa, 6 km up
    hi = jnp.minimum(t_wb + 80.0, 353.15)
    t_out = _bracketed_root(lambda t: psychro.saturated_air_enthalpy(t, p) - h_out, lo, hi)
    w_out = psychro.saturation_humidity_ratio(t_out, p)
    evap = jnp.where(q > 0, m_air * jnp.maximum(w_out - w_in, 0.0), 0.0)
    drift = drift_fraction * m_water_circ
    blowdown = jnp.maximum(evap / (cycles - 1.0) - drift, 0.0)
    return TowerWater(evap, drift, blowdown, evap + drift + blowdown)


# ----------------------------------------------------------------- plant logic


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class RejectionState:
    """Operating state of the heat-rejection plant for one load and ambient.

    Attributes (W, K, W/K, fractions):
        t_supply: FW supply temperature (setpoint, or floating without chiller).
        t_in: FW temperature entering the device (after any heat export).
        t_econ_out: FW temperature leaving the device (entering the chiller).
        fan_fraction: fan speed fraction of the device.
        conductance: device conductance G at that fan speed.
        q_econ: heat rejected by the device from the FW.
        q_evap: chiller evaporator load.
        w_chiller: chiller compressor power.
        q_cond: chiller condenser heat (q_evap + w_chiller).
        cop: chiller COP at the operating temperatures (also when off).
        p_fan: device fan power.
        p_cond: condenser-side heat-rejection power.
        free_cooling: 1.0 when the device alone holds the supply setpoint
            (chiller off, or no floating supply), else 0.0.
    """

    t_supply: jax.Array
    t_in: jax.Array
    t_econ_out: jax.Array
    fan_fraction: jax.Array
    conductance: jax.Array
    q_econ: jax.Array
    q_evap: jax.Array
    w_chiller: jax.Array
    q_cond: jax.Array
    cop: jax.Array
    p_fan: jax.Array
    p_cond: jax.Array
    free_cooling: jax.Array


def _supply(dev, q_load, c_fw, t_set, t_ref, p, kind, arrangement, chiller_model):
    """``(t_supply, t_float, g1)``: the supply temperature, the supply with fans
    at full speed and no chiller, and the device's conductance at full speed."""
    g1 = device_conductance(dev, kind, arrangement, jnp.ones_like(q_load), c_fw, t_ref, p)
    t_float = t_ref + q_load * (1.0 / g1 - 1.0 / c_fw)
    t_supply = jnp.maximum(t_set, t_float) if chiller_model == "none" else t_set
    return t_supply, t_float, g1


def supply_temperature(
    dev: RejectionDevice,
    q_load,
    c_fw,
    t_set,
    t_ref,
    p,
    *,
    kind: str,
    arrangement: str = "counterflow",
    chiller_model: str = "none",
):
    """The facility-water supply temperature (K) of :func:`reject_heat` with
    the same arguments, without solving for the fan speed: the setpoint, or
    without a chiller the temperature the device holds at full fan speed when
    it cannot hold the setpoint. For solvers that iterate on temperatures and
    need the plant's fan power only at their solution."""
    _check_kind(kind)
    if chiller_model not in CHILLER_MODELS:
        raise ValueError(f"unknown chiller model {chiller_model!r}; expected one of {CHILLER_MODELS}")
    dtype = _float_dtype(q_load, c_fw, t_set, t_ref, p)
    q_load, c_fw, t_set, t_ref, p = _asfloat(dtype, q_load, c_fw, t_set, t_ref, p)
    return _supply(dev, q_load, c_fw, t_set, t_ref, p, kind, arrangement, chiller_model)[0]


def reject_heat(
    dev: RejectionDevice,
    chiller: Chiller,
    q_load,
    c_fw,
    t_set,
    t_ref,
    p,
    *,
    kind: str,
    arrangement: str = "counterflow",
    chiller_model: str = "none",
):
    """Reject ``q_load`` W carried by facility water of capacity rate ``c_fw``
    (W/K) with supply setpoint ``t_set`` (K) to an ambient reference ``t_ref``
    (K; dry bulb for a dry cooler, wet bulb for towers) at pressure ``p`` (Pa).

    ``kind``, ``arrangement`` and ``chiller_model`` (``"none"``, ``"carnot"``,
    ``"doe2"``) are static. Returns a :class:`RejectionState`; the energy balance
    ``q_load + w_chiller = q_econ + q_cond`` holds to rounding (tested).
    """
    _check_kind(kind)
    if chiller_model not in CHILLER_MODELS:
        raise ValueError(f"unknown chiller model {chiller_model!r}; expected one of {CHILLER_MODELS}")
    dtype = _float_dtype(q_load, c_fw, t_set, t_ref, p)
    q_load, c_fw, t_set, t_ref, p = _asfloat(dtype, q_load, c_fw, t_set, t_ref, p)
    one = jnp.ones_like(q_load)
    f_min = dev.fan_fraction_min * one

    def g_of(f):
        return device_conductance(dev, kind, arrangement, f, c_fw, t_ref, p)

    g_min = g_of(f_min)
    t_supply, t_float, g1 = _supply(dev, q_load, c_fw, t_set, t_ref, p, kind, arrangement, chiller_model)
    free = t_float <= t_set
    t_in = t_supply + q_load / c_fw
    d_t = t_in - t_ref

    # Fan speed that rejects exactly q_load at the setpoint (free cooling). Where the device cannot hold the
    # setpoint its full-speed duty equals q_load (t_float is defined so), and its residual at full speed is
    # rounding noise of either sign: searching that root at the bracket's end cost every lane of a year two to
    # three more iterations. Those lanes run at full speed whatever the root, so their residual is made
    # negative over the whole bracket (no root inside: full speed at once, no iteration).
    def residual(f):
        return jnp.where(free, g_of(f) * d_t - q_load, -jnp.abs(q_load) - 1.0)

    f_root = _bracketed_root(residual, f_min, one)
    at_min = g_min * d_t >= q_load
    fan = jnp.where(free, jnp.where(at_min, f_min, f_root), one)
    g = jnp.where(free, jnp.where(at_min, g_min, g_of(fan)), g1)

    if chiller_model == "none":
        q_econ = q_load
        q_evap = jnp.zeros_like(q_load)
        cop = jnp.zeros_like(q_load)
        w = jnp.zeros_like(q_load)
        p_cond = jnp.zeros_like(q_load)
    else:
        q_econ_partial = jnp.clip(g1 * d_t, 0.0, q_load)
        q_econ = jnp.where(free, q_load, q_econ_partial)
        q_evap = q_load - q_econ
        t_cond = t_ref + chiller.cond_approach
        cop = chiller_cop(chiller, chiller_model, t_supply, t_cond)
        w = q_evap / cop
        p_cond = chiller.cond_power_per_w * (q_evap + w)
    t_econ_out = t_in - q_econ / c_fw
    return RejectionState(
        t_supply=t_supply,
        t_in=t_in,
        t_econ_out=t_econ_out,
        fan_fraction=fan,
        conductance=g,
        q_econ=q_econ,
        q_evap=q_evap,
        w_chiller=w,
        q_cond=q_evap + w,
        cop=cop,
        p_fan=dev.fan_power_rated * fan**3,
        p_cond=p_cond,
        free_cooling=jnp.where(free, 1.0, 0.0) * one,
    )
