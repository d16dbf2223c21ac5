"""The coupled operating point of a liquid-cooled hall: junction temperature,
chip power, coolant temperatures and heat rejection.

Chain (one representative accelerator stands for all ``n_accelerators``; SI units,
temperatures in K)::

    T_j  --(it_power)-->  P_acc(T_j), clock, tokens/s
    heat into the secondary loop (TCS): Q_tcs = n P_acc + liquid share of the other
        IT loads + TCS pump heat
    CDU (counterflow plate HX, UA scaled with both flows):
        T_tcs_supply = T_fw_supply + a_cdu Q_tcs,  a_cdu = 1/(eps C_min) - 1/C_tcs
    facility water (FW): Q_fw = Q_tcs + FW pump heat; a fraction is exported
        (heat reuse), the rest is rejected by the plant (kernels.plant.reject_heat),
        which sets T_fw_supply (setpoint, or floating without a chiller)
    cold plate: T_j_model = T_tcs_supply + upstream_heat / (rho cp q) + R(q) P_acc

and the coupled equation ``r(T_j) = T_j - T_j_model(T_j) = 0``.

Solver (:func:`solve_operating_point`): safeguarded Newton in a
``lax.while_loop`` from ``T_j = t_supply_set`` (below the solution). Without
throttling ``T_j_model`` is convex in ``T_j`` (exponential leakage), so Newton
from the left increases monotonically to the stable (lower) fixed point. Where
``r' = 1 - dT_j_model/dT_j`` is not clearly positive a damped fixed-point step
``T <- T_j_model(T)`` is taken instead; steps are capped at 50 K. Converged when
``|r| <= tol`` (K; default 1e-9 K in float64, 1e-3 K in float32).

Thermal runaway: when leakage grows faster with temperature than the cooling
chain can remove it, ``T_j_model(T) > T`` for every ``T`` and there is no fixed
point; the iterates climb until they reach ``t_runaway`` (default 473.15 K) or
the iteration limit. Then ``SolveInfo.converged`` is False and
``OperatingPoint.runaway`` is True; the returned operating point is evaluated at
the last (finite, capped) iterate, never NaN. It is not a physical state.

Derivatives: the solution is wrapped in ``jax.lax.custom_root``, so gradients
with respect to any parameter (supply setpoint, flows, ...) come from the
implicit function theorem at the converged point, not from the iterations.

Energy balance (tested to 1e-9 relative): heat from the IT equipment into the
liquid + pump heat + chiller compressor work = heat rejected by the device +
chiller condenser heat + exported heat.

A hall of alike racks (:func:`solve_rack_operating_point`, :class:`RackPlates`):
every accelerator plate of one rack has its own junction temperature
``T_i = T_tcs_supply + rise_fixed_i + sum_k influence_ik P_k + R_i P_i`` (its
inlet coolant heated by the plates upstream of it at the rack network's fixed
flows), its own leakage, and one clock for all set by the hottest junction (a
synchronous job runs at the slowest accelerator's pace). The unknown is the
vector of junction temperatures; the quasi-Newton step uses the diagonal plus
the two rank-one couplings (clock, supply temperature) by the Woodbury
identity, O(n) per step; the other plates' heat in the liquid
(``RackPlates.fixed_power``) is part of the other IT loads, and
``other_liquid_fraction`` applies to the rest of them.

Power boundaries of :class:`OperatingPoint`: IT (``p_it``) = accelerators +
other IT loads + in-rack power conversion losses; cooling (``p_cooling``) = TCS
and FW pumps, device fans, chiller compressor, condenser heat-rejection power,
and air-side cooling of the heat that is not captured by liquid; facility
(``p_facility``) = IT + cooling + facility overhead (a fraction of IT power).
The hall-level accounting over hours (energy per token, PUE, annual totals)
is the application's: :mod:`aidc_thermo.models.accounting`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .. import plant
from ..diagnostics import SolveInfo
from ..network.laws import loglog_interp
from ..solvers import dense as _dense
from . import hx, it_power

__all__ = [
    "Ambient",
    "ColdPlate",
    "CurveColdPlate",
    "CoupledConfig",
    "Facility",
    "OperatingPoint",
    "RackPlates",
    "RackSummary",
    "evaluate_operating_point",
    "rack_operating_point",
    "rack_start_residuals",
    "solve_operating_point",
    "solve_rack_junctions",
    "solve_rack_operating_point",
]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class ColdPlate:
    """Cold-plate thermal resistance and pressure drop vs. flow per cold plate.

    ``R(q) = r_base + r_flow (q / q_ref)^(-r_exponent)`` (K/W, junction to coolant
    inlet, including the coolant's own rise), ``dp(q) = dp_ref (q / q_ref)^dp_exponent``
    (Pa); q in m^3/s.
    """

    r_base: jax.Array
    r_flow: jax.Array
    r_exponent: jax.Array
    dp_ref: jax.Array
    dp_exponent: jax.Array
    q_ref: jax.Array

    def resistance(self, q):
        return self.r_base + self.r_flow * jnp.power(q / self.q_ref, -self.r_exponent)

    def pressure_drop(self, q):
        return self.dp_ref * jnp.power(q / self.q_ref, self.dp_exponent)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class CurveColdPlate:
    """A cold plate given by tables over flow (a cold-plate curve file):
    ``table_flow`` (m^3/s, strictly increasing, positive), ``table_r`` (K/W,
    junction to coolant inlet) and ``table_dp`` (Pa), shapes (m,), m >= 2;
    between the flows a power law through the neighbours
    (:func:`kernels.network.loglog_interp`). The same methods as
    :class:`ColdPlate`; flows outside ``table_flow[0]..table_flow[-1]`` follow
    the end segments, and the caller refuses them.
    """

    table_flow: jax.Array
    table_r: jax.Array
    table_dp: jax.Array

    def resistance(self, q):
        return loglog_interp(q, self.table_flow, self.table_r)

    def pressure_drop(self, q):
        return loglog_interp(q, self.table_flow, self.table_dp)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Facility:
    """Everything a user sweeps about the hall and its plant (traced scalars).

    IT: ``accelerator`` (:class:`kernels.plant.it_power.Accelerator`),
    ``n_accelerators``, ``utilization``, ``other_it_per_accelerator`` (W of CPUs,
    switches, NICs per accelerator), ``conversion_loss_fraction`` (in-rack power
    conversion loss as a fraction of the power it feeds),
    ``other_liquid_fraction`` (share of the other loads' and conversion losses'
    heat captured by liquid; the rest goes to room air).

    Secondary loop (TCS): ``cold_plate`` (:class:`ColdPlate` or
    :class:`CurveColdPlate`), ``flow_per_accelerator`` (m^3/s),
    ``upstream_heat`` (W picked up by the coolant before it reaches the
    accelerator, e.g. a CPU cold plate in series), ``rho_tcs``, ``cp_tcs``,
    ``dp_tcs_other`` (Pa of the rest of the loop: CDU, manifolds, hoses, at
    ``flow_tcs_rated``, scaling with flow squared), ``eta_pump_tcs``
    (wire-to-water).

    CDU (counterflow plate HX): ``cdu_ua_rated`` (W/K at ``cdu_c_tcs_rated`` and
    ``cdu_c_fw_rated`` W/K; see :func:`kernels.plant.hx.ua_from_approach`),
    ``cdu_share_tcs`` (share of the rated resistance on the TCS side),
    ``cdu_exponent`` (film coefficient ~ flow^exponent).

    Facility water: ``flow_fw`` (m^3/s), ``rho_fw``, ``cp_fw``, ``dp_fw_rated`` (Pa at
    ``flow_fw_rated``, scaling with flow squared), ``eta_pump_fw``,
    ``pump_heat_fraction`` (share of pump electrical power that ends up in the
    water), ``t_supply_set`` (K), ``export_fraction`` (share of the FW heat
    exported to heat reuse).

    Plant: ``device`` (:class:`kernels.plant.RejectionDevice`), ``chiller``
    (:class:`kernels.plant.Chiller`), ``tower_cycles`` (cycles of concentration),
    ``tower_drift_fraction`` (of circulating water).

    Other: ``air_cooling_w_per_w`` (power of the room-air cooling per watt of
    air-side heat), ``facility_overhead_fraction`` (of IT power).
    """

    accelerator: it_power.Accelerator
    n_accelerators: jax.Array
    utilization: jax.Array
    other_it_per_accelerator: jax.Array
    conversion_loss_fraction: jax.Array
    other_liquid_fraction: jax.Array
    cold_plate: ColdPlate
    flow_per_accelerator: jax.Array
    upstream_heat: jax.Array
    rho_tcs: jax.Array
    cp_tcs: jax.Array
    dp_tcs_other: jax.Array
    flow_tcs_rated: jax.Array
    eta_pump_tcs: jax.Array
    cdu_ua_rated: jax.Array
    cdu_c_tcs_rated: jax.Array
    cdu_c_fw_rated: jax.Array
    cdu_share_tcs: jax.Array
    cdu_exponent: jax.Array
    flow_fw: jax.Array
    rho_fw: jax.Array
    cp_fw: jax.Array
    dp_fw_rated: jax.Array
    flow_fw_rated: jax.Array
    eta_pump_fw: jax.Array
    pump_heat_fraction: jax.Array
    t_supply_set: jax.Array
    export_fraction: jax.Array
    device: plant.RejectionDevice
    chiller: plant.Chiller
    tower_cycles: jax.Array
    tower_drift_fraction: jax.Array
    air_cooling_w_per_w: jax.Array
    facility_overhead_fraction: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Ambient:
    """Outdoor air: dry bulb ``t_db`` and wet bulb ``t_wb`` (K), pressure ``p`` (Pa).
    (Use :func:`kernels.plant.psychro.wet_bulb` to get ``t_wb`` from relative humidity.)"""

    t_db: jax.Array
    t_wb: jax.Array
    p: jax.Array


@dataclass(frozen=True)
class CoupledConfig:
    """Static choices of the coupled solve (hashable).

    Attributes:
        device: ``"dry_cooler"``, ``"closed_tower"`` or ``"open_tower"``.
        arrangement: the device's flow arrangement (:data:`kernels.plant.hx.ARRANGEMENTS`).
            Default counterflow: dry-cooler coils and towers are multi-row
            cross-counterflow, which approaches counterflow as rows are added;
            ``"crossflow_unmixed"`` (single pass) is exact too but a few hundred times
            dearer per evaluation, which shows in annual runs.
        chiller: ``"none"``, ``"carnot"`` or ``"doe2"``.
        max_iter: Newton iteration limit.
        tol: tolerance on ``|T_j - T_j_model(T_j)|`` in K; None: 1e-9 K for
            float64, 1e-3 K for float32.
        t_runaway: junction temperature (K) above which the solve stops and
            reports thermal runaway.
        max_step: largest Newton step, K.
    """

    device: str = "dry_cooler"
    arrangement: str = "counterflow"
    chiller: str = "none"
    max_iter: int = 60
    tol: float | None = None
    t_runaway: float = 473.15
    max_step: float = 50.0

    def __post_init__(self):
        if self.device not in plant.DEVICE_KINDS:
            raise ValueError(f"device must be one of {plant.DEVICE_KINDS}, got {self.device!r}")
        if self.arrangement not in hx.ARRANGEMENTS:
            raise ValueError(f"arrangement must be one of {hx.ARRANGEMENTS}, got {self.arrangement!r}")
        if self.chiller not in plant.CHILLER_MODELS:
            raise ValueError(f"chiller must be one of {plant.CHILLER_MODELS}, got {self.chiller!r}")
        if self.max_iter < 1:
            raise ValueError("max_iter must be at least 1")


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class OperatingPoint:
    """The hall at one operating point (W, K, tokens/s, kg/s; totals for the hall).

    ``t_j``: junction temperature; ``t_j_model``: the cold-plate chain's junction
    temperature at ``t_j`` (equal at a converged point); ``p_accelerator``, ``clock``,
    ``leakage``: per accelerator; ``tokens_per_s``: hall throughput; ``p_it``: IT
    power; ``q_liquid_it``/``q_air``: IT heat into liquid / room air;
    ``p_pump_tcs``/``p_pump_fw``: pump power; ``q_pump_tcs``/``q_pump_fw``: pump heat
    into the water; ``q_tcs``: heat through the CDU; ``t_tcs_supply``/``t_tcs_return``:
    secondary loop; ``t_fw_supply``/``t_fw_return`` (leaving the CDU)/``t_fw_device_in``
    (entering the device after heat export)/``t_fw_econ_out`` (leaving the device);
    ``q_fw``: heat carried by the FW; ``q_export``; ``q_econ``: rejected by the
    device; ``q_evap``/``w_chiller``/``q_cond``/``cop``: chiller; ``fan_fraction``,
    ``p_fan``, ``p_cond``, ``p_air_cooling``; ``water_makeup``, ``water_evaporation``
    (kg/s, zero without a tower); ``free_cooling`` (1.0 when the device alone holds
    the setpoint); ``p_cooling``, ``p_facility``; ``runaway`` (bool).
    """

    t_j: jax.Array
    t_j_model: jax.Array
    p_accelerator: jax.Array
    clock: jax.Array
    leakage: jax.Array
    tokens_per_s: jax.Array
    p_it: jax.Array
    q_liquid_it: jax.Array
    q_air: jax.Array
    p_pump_tcs: jax.Array
    p_pump_fw: jax.Array
    q_pump_tcs: jax.Array
    q_pump_fw: jax.Array
    q_tcs: jax.Array
    t_tcs_supply: jax.Array
    t_tcs_return: jax.Array
    t_fw_supply: jax.Array
    t_fw_return: jax.Array
    t_fw_device_in: jax.Array
    t_fw_econ_out: jax.Array
    q_fw: jax.Array
    q_export: jax.Array
    q_econ: jax.Array
    q_evap: jax.Array
    w_chiller: jax.Array
    q_cond: jax.Array
    cop: jax.Array
    fan_fraction: jax.Array
    p_fan: jax.Array
    p_cond: jax.Array
    p_air_cooling: jax.Array
    water_makeup: jax.Array
    water_evaporation: jax.Array
    free_cooling: jax.Array
    p_cooling: jax.Array
    p_facility: jax.Array
    runaway: jax.Array


def _t_ref(config: CoupledConfig, amb: Ambient):
    return amb.t_db if config.device == "dry_cooler" else amb.t_wb


def evaluate_operating_point(fac: Facility, amb: Ambient, config: CoupledConfig, t_j):
    """Evaluate the whole chain at a given junction temperature ``t_j`` (K).

    Returns an :class:`OperatingPoint` whose ``t_j_model`` is the junction
    temperature the cooling chain implies; the coupled solution has
    ``t_j_model == t_j``. ``runaway`` is False here (set by the solver).
    """
    return _evaluate(fac, amb, config, t_j, with_water=True)


def _junction_model(fac: Facility, amb: Ambient, config: CoupledConfig, t_j, with_water: bool, supply_only: bool):
    """``(t_j_model, p_acc, fields)`` at the junction temperature ``t_j``
    (``fields`` None with ``supply_only``: see :func:`_plant_chain`)."""
    n = fac.n_accelerators
    p_acc = it_power.accelerator_power(fac.accelerator, fac.utilization, t_j)
    q_cp = fac.flow_per_accelerator
    dp_plates = fac.cold_plate.pressure_drop(q_cp)
    f, t_tcs_supply = _plant_chain(
        fac, amb, config, n * p_acc, jnp.zeros_like(p_acc), dp_plates, with_water, supply_only
    )
    # Cold plate
    rise_upstream = fac.upstream_heat / (fac.rho_tcs * fac.cp_tcs * q_cp)
    return t_tcs_supply + rise_upstream + fac.cold_plate.resistance(q_cp) * p_acc, p_acc, f


def _evaluate(fac: Facility, amb: Ambient, config: CoupledConfig, t_j, with_water: bool):
    acc = fac.accelerator
    t_j_model, p_acc, f = _junction_model(fac, amb, config, t_j, with_water, False)
    clock = it_power.clock_fraction(acc, t_j)
    leak = it_power.leakage_power(acc, t_j)
    tokens = fac.n_accelerators * it_power.throughput(acc, fac.utilization, t_j)
    return OperatingPoint(
        t_j=t_j,
        t_j_model=t_j_model,
        p_accelerator=p_acc,
        clock=clock,
        leakage=leak,
        tokens_per_s=tokens,
        runaway=jnp.zeros(jnp.shape(t_j), bool),
        **f,
    )


def _plant_chain(fac: Facility, amb: Ambient, config: CoupledConfig, p_acc_total, q_plates_fixed, dp_plates,
                 with_water: bool, supply_only: bool = False):  # fmt: skip
    """Everything downstream of the accelerators' heat: ``p_acc_total`` (W, all
    accelerators of the hall), ``q_plates_fixed`` (W of other cold plates with
    fixed power, CPUs and switches of a rack network; part of the other IT
    loads and all into the liquid), ``dp_plates`` (Pa of the cold plates, or of
    the whole rack network, at the secondary flow). Returns the operating point's
    fields except the accelerator's own, and the secondary supply temperature.
    ``supply_only`` (static): the fields are None and the plant's fan speed is
    not solved (the supply temperature does not depend on it), for the
    iterations of the coupled solves."""
    n = fac.n_accelerators
    p_other = n * fac.other_it_per_accelerator
    p_conv = fac.conversion_loss_fraction * (p_acc_total + p_other)
    p_it = p_acc_total + p_other + p_conv
    q_liquid_it = p_acc_total + q_plates_fixed + fac.other_liquid_fraction * (p_other - q_plates_fixed + p_conv)
    q_air = (1.0 - fac.other_liquid_fraction) * (p_other - q_plates_fixed + p_conv)
    # Secondary loop
    q_cp = fac.flow_per_accelerator
    flow_tcs = n * q_cp
    c_tcs = fac.rho_tcs * fac.cp_tcs * flow_tcs
    dp_tcs = dp_plates + fac.dp_tcs_other * (flow_tcs / fac.flow_tcs_rated) ** 2
    p_pump_tcs = plant.pump_power(dp_tcs, flow_tcs, fac.eta_pump_tcs)
    q_pump_tcs = fac.pump_heat_fraction * p_pump_tcs
    q_tcs = q_liquid_it + q_pump_tcs
    # Facility water
    c_fw = fac.rho_fw * fac.cp_fw * fac.flow_fw
    dp_fw = fac.dp_fw_rated * (fac.flow_fw / fac.flow_fw_rated) ** 2
    p_pump_fw = plant.pump_power(dp_fw, fac.flow_fw, fac.eta_pump_fw)
    q_pump_fw = fac.pump_heat_fraction * p_pump_fw
    q_fw = q_tcs + q_pump_fw
    q_export = fac.export_fraction * q_fw
    q_dev = q_fw - q_export
    t_ref = _t_ref(config, amb)
    ua_cdu = hx.ua_flow_scaled(
        fac.cdu_ua_rated,
        c_tcs / fac.cdu_c_tcs_rated,
        c_fw / fac.cdu_c_fw_rated,
        fac.cdu_share_tcs,
        fac.cdu_exponent,
        fac.cdu_exponent,
    )
    a_cdu = hx.approach_coefficient(ua_cdu, c_tcs, c_fw, "counterflow")
    plant_kw = dict(kind=config.device, arrangement=config.arrangement, chiller_model=config.chiller)
    if supply_only:
        t_fw_supply = plant.supply_temperature(fac.device, q_dev, c_fw, fac.t_supply_set, t_ref, amb.p, **plant_kw)
        return None, t_fw_supply + a_cdu * q_tcs
    rej = plant.reject_heat(
        fac.device,
        fac.chiller,
        q_dev,
        c_fw,
        fac.t_supply_set,
        t_ref,
        amb.p,
        **plant_kw,
    )
    t_tcs_supply = rej.t_supply + a_cdu * q_tcs
    t_tcs_return = t_tcs_supply + q_tcs / c_tcs
    t_fw_return = rej.t_supply + q_tcs / c_fw
    # Water (towers only)
    if config.device == "dry_cooler" or not with_water:
        makeup = jnp.zeros_like(q_fw)
        evap = jnp.zeros_like(q_fw)
    else:
        m_circ = fac.device.c_water_rated / fac.cp_fw
        water = plant.tower_water_use(
            rej.q_econ + rej.q_cond,
            rej.fan_fraction * fac.device.m_air_rated,
            amb.t_db,
            amb.t_wb,
            amb.p,
            fac.tower_cycles,
            fac.tower_drift_fraction,
            m_circ,
        )
        makeup = water.makeup
        evap = water.evaporation
    p_air_cooling = fac.air_cooling_w_per_w * q_air
    p_cooling = p_pump_tcs + p_pump_fw + rej.p_fan + rej.w_chiller + rej.p_cond + p_air_cooling
    p_facility = p_it * (1.0 + fac.facility_overhead_fraction) + p_cooling
    fields = dict(
        p_it=p_it,
        q_liquid_it=q_liquid_it,
        q_air=q_air,
        p_pump_tcs=p_pump_tcs,
        p_pump_fw=p_pump_fw,
        q_pump_tcs=q_pump_tcs,
        q_pump_fw=q_pump_fw,
        q_tcs=q_tcs,
        t_tcs_supply=t_tcs_supply,
        t_tcs_return=t_tcs_return,
        t_fw_supply=rej.t_supply,
        t_fw_return=t_fw_return,
        t_fw_device_in=rej.t_in,
        t_fw_econ_out=rej.t_econ_out,
        q_fw=q_fw,
        q_export=q_export,
        q_econ=rej.q_econ,
        q_evap=rej.q_evap,
        w_chiller=rej.w_chiller,
        q_cond=rej.q_cond,
        cop=rej.cop,
        fan_fraction=rej.fan_fraction,
        p_fan=rej.p_fan,
        p_cond=rej.p_cond,
        p_air_cooling=p_air_cooling,
        water_makeup=makeup,
        water_evaporation=evap,
        free_cooling=rej.free_cooling,
        p_cooling=p_cooling,
        p_facility=p_facility,
    )
    return fields, t_tcs_supply


def _newton(residual, t0, t_lo, config: CoupledConfig, tol):
    """Safeguarded Newton on the scalar residual (see module docstring)."""
    dtype = t0.dtype
    n_hist = config.max_iter + 1

    def r_and_dr(t):
        return jax.jvp(residual, (t,), (jnp.ones_like(t),))

    r0, dr0 = r_and_dr(t0)
    hist0 = jnp.full((n_hist,), jnp.nan, dtype).at[0].set(jnp.abs(r0))

    def finished(t, r):
        converged = jnp.abs(r) <= tol
        runaway = (t >= config.t_runaway) & (r < 0)
        return converged | runaway | ~jnp.isfinite(r)

    def cond(state):
        k, t, r, dr, hist = state
        return (k < config.max_iter) & ~finished(t, r)

    def body(state):
        k, t, r, dr, hist = state
        newton_ok = dr > 1e-2
        step = jnp.where(newton_ok, -r / jnp.where(newton_ok, dr, 1.0), -r)
        step = jnp.clip(step, -config.max_step, config.max_step)
        t_new = jnp.clip(t + step, t_lo, config.t_runaway)
        r_new, dr_new = r_and_dr(t_new)
        hist = hist.at[k + 1].set(jnp.abs(r_new))
        return k + 1, t_new, r_new, dr_new, hist

    k, t, r, _, hist = lax.while_loop(cond, body, (0, t0, r0, dr0, hist0))
    converged = jnp.abs(r) <= tol
    # runaway only when the iterate was driven to the runaway temperature and
    # the model still wants it hotter; stopping at max_iter below it is plain
    # non-convergence
    runaway = ~converged & (t >= config.t_runaway) & (r < 0)
    info = SolveInfo(converged=converged, iterations=k, residual=jnp.abs(r), history=hist)
    return t, info, runaway


def solve_operating_point(fac: Facility, amb: Ambient, config: CoupledConfig = CoupledConfig()):
    """Solve the coupled junction temperature / power / cooling chain.

    Args:
        fac: facility parameters (scalars; ``vmap`` for batches).
        amb: ambient conditions (scalars; ``vmap`` over hours).
        config: static solver and plant choices.

    Returns:
        ``(op, info)``: the :class:`OperatingPoint` evaluated at the solution and
        a :class:`kernels.diagnostics.SolveInfo` whose ``residual`` is
        ``|T_j - T_j_model|`` in K. Not converged means thermal runaway
        (``op.runaway``) or the iteration limit; ``op`` is then finite but not a
        physical state. Gradients are implicit (see module docstring).
    """
    t_set = jnp.asarray(fac.t_supply_set)
    dtype = t_set.dtype
    if config.tol is None:
        tol = 1e-9 if dtype == jnp.float64 else 1e-3
    else:
        tol = config.tol

    def residual_of(f, a):
        def residual(t):
            return t - _junction_model(f, a, config, t, False, True)[0]

        return residual

    # Iterate on values only (no derivatives through the loop), then attach the
    # implicit derivative at the solution with custom_root.
    fac_v, amb_v = jax.tree_util.tree_map(lax.stop_gradient, (fac, amb))
    t_star, info, runaway = _newton(
        residual_of(fac_v, amb_v), lax.stop_gradient(t_set), lax.stop_gradient(t_set), config, tol
    )

    def tangent_solve(g, y):
        return y / g(jnp.ones_like(y))

    t_j = lax.custom_root(residual_of(fac, amb), t_star, lambda f, x0: x0, tangent_solve)
    op = evaluate_operating_point(fac, amb, config, t_j)
    return dataclasses.replace(op, runaway=runaway), info


# ----------------------------------------------------------------------------- a rack of accelerators


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class RackPlates:
    """The accelerator cold plates of one rack network at its (fixed) flows,
    for :func:`solve_rack_operating_point`. All racks of the hall are alike:
    ``fac.n_accelerators`` = ``n_racks`` x n, where n is the number of
    accelerator plates of one rack; ``fac.flow_per_accelerator`` x n is the
    rack's supply flow.

    Attributes:
        resistance: (n,) K/W, junction to the plate's own inlet coolant, at the
            plate's own flow.
        rise_fixed: (n,) K, rise of each plate's inlet coolant above the rack
            supply from the fixed-power plates upstream of it (CPUs in series).
        influence: (n, n) K/W, rise of plate i's inlet coolant per W of
            accelerator plate k (nonzero only where k is upstream of i; the
            advection network is linear in the heats at fixed flows).
        fixed_power: W per rack into the liquid through fixed-power plates
            (part of the other IT loads of ``fac``).
        dp: Pa, the rack network's pressure drop at its supply flow
            (dissipated power / flow: plates, hoses, manifolds, quick
            disconnects); replaces the single cold plate's in the pump power.
        n_racks: number of racks.
    """

    resistance: jax.Array
    rise_fixed: jax.Array
    influence: jax.Array
    fixed_power: jax.Array
    dp: jax.Array
    n_racks: jax.Array


class RackSummary(NamedTuple):
    """What the hall's evaluation needs of a rack's junction temperatures,
    known where the iteration evaluated its residual (values, K and W):
    ``t_hot`` the hottest junction (``max t_plates``), ``t_hot_model`` the
    chain's hottest junction at ``t_plates`` (``max T_model``), ``leakage``
    the rack's accelerators' leakage summed (W)."""

    t_hot: jax.Array
    t_hot_model: jax.Array
    leakage: jax.Array


def _rack_model(fac: Facility, plates: RackPlates, amb: Ambient, config: CoupledConfig, t_plates, with_water,
                supply_only):  # fmt: skip
    """``(t_model (n,), p (n,), leak (n,), clock, fields)`` at the accelerators'
    junction temperatures ``t_plates`` (n,); the clock of every accelerator is
    set by the hottest one (a synchronous job runs at the slowest accelerator's
    pace). ``fields`` is None with ``supply_only`` (see :func:`_plant_chain`)."""
    p, leak, clock, f, t_sup = _rack_heat(fac, plates, amb, config, t_plates, with_water, supply_only)
    return _rack_junctions(plates, t_sup, p), p, leak, clock, f


def _rack_heat(fac: Facility, plates: RackPlates, amb: Ambient, config: CoupledConfig, t_plates, with_water,
               supply_only):  # fmt: skip
    """``(p (n,), leak (n,), clock, fields, t_sup)``: :func:`_rack_model` up to
    the secondary supply temperature, without the junctions it gives."""
    clock = it_power.clock_fraction(fac.accelerator, jnp.max(t_plates))
    p, leak = _rack_power(fac, t_plates, clock)
    f, t_sup = _plant_chain(
        fac, amb, config, plates.n_racks * jnp.sum(p), plates.n_racks * plates.fixed_power, plates.dp, with_water,
        supply_only,
    )  # fmt: skip
    return p, leak, clock, f, t_sup


def _rack_power(fac: Facility, t_plates, clock):
    """``(p (n,), leak (n,))``: each accelerator's power and leakage at its own
    junction temperature and the common clock."""
    fixed, dynamic, leak = _rack_power_parts(fac, t_plates, clock)
    return fixed + fac.utilization * dynamic, leak


def _rack_power_parts(fac: Facility, t_plates, clock):
    """``(fixed (n,), dynamic, leak (n,))``: each accelerator's power is
    ``fixed + utilization * dynamic`` (idle and leakage at its own junction
    temperature; the dynamic power at full utilization and the common clock)."""
    acc = fac.accelerator
    leak = it_power.leakage_power(acc, t_plates)
    return acc.p_idle + leak, it_power.dynamic_power(acc, clock), leak


def _rack_junctions(plates: RackPlates, t_sup, p):
    """Every accelerator's junction temperature (n,) from the secondary supply
    ``t_sup`` and the plates' powers ``p`` (n,): its inlet (supply, fixed-power
    plates and accelerators upstream) plus its own R P."""
    return t_sup + plates.rise_fixed + plates.influence @ p + plates.resistance * p


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _known(fun, value, *args):
    """``value``, known to equal ``fun(*args)``, with ``fun``'s derivative:
    the value costs nothing, and ``fun`` is evaluated only where a derivative
    is taken (``jax.jvp`` of it at ``args``; ``value``'s own tangent is
    not used)."""
    del args
    return value


@_known.defjvp
def _known_jvp(fun, primals, tangents):
    value, *args = primals
    _, *d_args = tangents
    _, d_out = jax.jvp(fun, tuple(args), tuple(d_args))
    return value, d_out


def _hot_and_leakage(acc: it_power.Accelerator, t_plates):
    return jnp.max(t_plates), jnp.sum(it_power.leakage_power(acc, t_plates))


def _rack_evaluate(fac: Facility, plates: RackPlates, amb: Ambient, config: CoupledConfig, t_plates, with_water,
                   summary: RackSummary | None = None):  # fmt: skip
    """The chain at the accelerators' junction temperatures ``t_plates`` (n,):
    its :class:`OperatingPoint`. ``summary`` (a :class:`RackSummary` of
    ``t_plates``), when known: the hottest junction, the chain's hottest
    junction and the summed leakage are taken from it as values instead of
    from every plate (n exponentials and an (n, n) product per hour), with the
    derivatives they have as functions of ``t_plates``; ``op.t_j_model``'s is
    that of ``op.t_j``, which it equals along the solution (T_model(T*) = T*)."""
    acc = fac.accelerator
    n_per_rack = t_plates.shape[0]
    if summary is None:
        t_model, p, leak, clock, f = _rack_model(fac, plates, amb, config, t_plates, with_water, False)
        t_hot, t_j_model = jnp.max(t_plates), jnp.max(t_model)
        p_sum, leak_sum = jnp.sum(p), jnp.sum(leak)
    else:
        t_hot, leak_sum = _known(_hot_and_leakage, (summary.t_hot, summary.leakage), acc, t_plates)
        t_j_model = t_hot + lax.stop_gradient(summary.t_hot_model - t_hot)
        clock = it_power.clock_fraction(acc, t_hot)
        # the sum of _rack_power's p: idle and leakage of every plate, the dynamic power at the common clock
        p_sum = n_per_rack * (acc.p_idle + fac.utilization * it_power.dynamic_power(acc, clock)) + leak_sum
        f, _ = _plant_chain(fac, amb, config, plates.n_racks * p_sum, plates.n_racks * plates.fixed_power, plates.dp,
                            with_water)  # fmt: skip
    return OperatingPoint(
        t_j=t_hot,
        t_j_model=t_j_model,
        p_accelerator=p_sum / n_per_rack,
        clock=clock,
        leakage=leak_sum / n_per_rack,
        tokens_per_s=fac.n_accelerators * (fac.utilization * clock * acc.tokens_per_s),
        runaway=jnp.zeros((), bool),
        **f,
    )


def _rack_newton(fac, plates, amb, config: CoupledConfig, t0, tol, t_lo):
    """Quasi-Newton on the accelerators' junction temperatures: the Jacobian of
    ``r(T) = T - T_model(T)`` is taken as its diagonal (each accelerator's own
    leakage) minus two rank-one terms (the clock, set by the hottest
    accelerator, acting on every plate; the secondary supply temperature, set by
    the total heat, acting on every plate), solved by the Woodbury identity
    (O(n) per step). Upstream plates' leakage changes (influence x dP/dT, a few
    per cent) are lagged, so convergence is linear at that small rate. Where
    the step's denominators are not clearly positive a fixed-point step is
    taken; steps are capped at ``config.max_step``."""
    acc = fac.accelerator
    u = fac.utilization
    n_hist = config.max_iter + 1
    dtype = t0.dtype

    def sup_of_heat(q_total):
        _, t_sup = _plant_chain(fac, amb, config, q_total, plates.n_racks * plates.fixed_power, plates.dp, False, True)
        return t_sup

    def residual_and_step(t):
        # The residual of _rack_model, from its own pieces, with the clock's and the supply's values taken from
        # the jvps that give their tangents (measured about 7 % faster than calling _rack_model beside them)
        # and each plate's leakage once (dP/dT = beta leak). The sums over the plates are sums of products
        # rather than dots, which XLA can fuse with the elementwise work producing their terms; the loop's tests
        # are reduced in the same pass, and the residual is not carried.
        # the hottest plate's index as the first index of the maximum: a max and an integer min, which XLA:CPU
        # vectorizes, where argmax's paired (value, index) reduction runs element by element (measured 15 % of
        # the year's Newton)
        t_hot = jnp.max(t)
        m = jnp.min(jnp.where(t == t_hot, jnp.arange(t.shape[0]), t.shape[0] - 1))  # NaN: the last, not past it
        clock, dclock = jax.jvp(lambda x: it_power.clock_fraction(acc, x), (t_hot,), (jnp.ones_like(t_hot),))
        e = acc.dyn_clock_exponent
        p, leak = _rack_power(fac, t, clock)
        t_sup, ds = jax.jvp(sup_of_heat, (plates.n_racks * jnp.sum(p),), (jnp.ones_like(t_hot),))
        t_model = _rack_junctions(plates, t_sup, p)
        r = t - t_model
        dp_dclock = u * acc.p_dynamic * e * jnp.power(clock, e - 1.0)
        dp_dt = acc.leak_beta * leak
        n = t.shape[0]
        # J = diag(a) - U V^T; U = [u_c, s' 1], V = [e_m, v2], v2 = n_racks dP/dT + c_m e_m,
        # c_m = n_racks n dp_dclock dclock (e_m picks the hottest plate: indexed, not masked and summed, which
        # costs several passes over every plate of every hour)
        a = 1.0 - plates.resistance * dp_dt
        u_c = (plates.resistance + plates.influence.sum(axis=1)) * (dp_dclock * dclock)
        c_m = plates.n_racks * n * dp_dclock * dclock
        a_ok = jnp.all(a > 1e-2)
        inv_a = 1.0 / jnp.where(a > 1e-2, a, 1.0)
        b = -r * inv_a
        w1, w2 = u_c * inv_a, ds * inv_a
        g = plates.n_racks * dp_dt * inv_a  # v2 . (x / a) = sum(g x) + c_m x_m / a_m
        # capacitance matrix I - V^T A^-1 U (2 x 2)
        c11, c12 = 1.0 - w1[m], -w2[m]
        c21 = -(jnp.sum(g * u_c) + c_m * w1[m])
        c22 = 1.0 - (ds * jnp.sum(g) + c_m * w2[m])
        det = c11 * c22 - c12 * c21
        y1 = b[m]
        y2 = -jnp.sum(g * r) + c_m * y1
        z1 = (c22 * y1 - c12 * y2) / jnp.where(det > 1e-2, det, 1.0)
        z2 = (c11 * y2 - c21 * y1) / jnp.where(det > 1e-2, det, 1.0)
        ok = a_ok & (det > 1e-2) & (c11 > 1e-2)
        step = jnp.where(ok, b + w1 * z1 + w2 * z2, -r)
        # the loop's tests, reduced here from the residual while it is at hand
        res = jnp.max(jnp.abs(r))
        runaway = jnp.any((t >= config.t_runaway) & (r < 0))
        return step, res, runaway, jnp.max(t_model)

    s0, res0, run0, hot0 = residual_and_step(t0)
    hist0 = jnp.full((n_hist,), jnp.nan, dtype).at[0].set(res0)

    def cond(state):
        k, t, s, res, run, hot, hist = state
        # a NaN or infinite residual makes res NaN or infinite: not finite, finished
        return (k < config.max_iter) & (res > tol) & ~run & jnp.isfinite(res)

    def body(state):
        k, t, s, res, run, hot, hist = state
        t_new = jnp.clip(t + jnp.clip(s, -config.max_step, config.max_step), t_lo, config.t_runaway)
        s_new, res_new, run_new, hot_new = residual_and_step(t_new)
        hist = hist.at[k + 1].set(res_new)
        return k + 1, t_new, s_new, res_new, run_new, hot_new, hist

    k, t, _, res, run, hot, hist = lax.while_loop(cond, body, (0, t0, s0, res0, run0, hot0, hist0))
    converged = res <= tol
    runaway = ~converged & run
    info = SolveInfo(converged=converged, iterations=k, residual=res, history=hist)
    return t, info, runaway, _summary(acc, t, hot)


def _summary(acc: it_power.Accelerator, t_plates, t_hot_model) -> RackSummary:
    """The :class:`RackSummary` of junctions ``t_plates`` (n,) whose chain's
    hottest junction is ``t_hot_model``."""
    t_hot, leakage = _hot_and_leakage(acc, t_plates)
    return RackSummary(t_hot, t_hot_model, leakage)


def solve_rack_operating_point(
    fac: Facility, plates: RackPlates, amb: Ambient, config: CoupledConfig = CoupledConfig()
):
    """The coupled operating point of a hall of alike racks, every accelerator
    plate of a rack with its own junction temperature.

    Chain: the secondary supply temperature from the CDU (as
    :func:`solve_operating_point`) -> each plate's inlet coolant (the supply
    plus the heat of the plates upstream of it, ``plates.rise_fixed`` +
    ``plates.influence @ P``) -> each accelerator's junction temperature
    ``T_i = T_in,i + R_i P_i`` -> its own leakage; the clock of all
    accelerators follows the hottest junction (a synchronous job runs at the
    slowest accelerator's pace). Pump power of the secondary loop from the rack
    network's pressure drop ``plates.dp`` plus ``fac.dp_tcs_other`` (CDU and
    hall piping). ``fac.cold_plate`` and ``fac.upstream_heat`` are not used.

    Args:
        fac: facility parameters (scalars).
        plates: :class:`RackPlates` (shapes (n,) and (n, n)).
        amb: ambient conditions (scalars; ``vmap`` over hours).
        config: static choices (``tol`` on ``max_i |T_i - T_model,i|``).

    Returns:
        ``(op, info, t_plates)``: the :class:`OperatingPoint` with ``t_j`` the
        hottest junction, ``p_accelerator`` and ``leakage`` the means over the
        accelerators; the :class:`kernels.diagnostics.SolveInfo`; and every
        accelerator plate's junction temperature (n,), K. Gradients are
        implicit (``lax.custom_root`` on the vector of junction temperatures).
    """
    solved = solve_rack_junctions(fac, plates, amb, config)
    return rack_operating_point(fac, plates, amb, config, *solved)


def solve_rack_junctions(fac: Facility, plates: RackPlates, amb: Ambient, config: CoupledConfig = CoupledConfig(),
                         t_start=None):  # fmt: skip
    """The iteration of :func:`solve_rack_operating_point` alone, on values
    (no derivatives flow through it): ``(t_plates (n,), info, runaway,
    summary)`` for :func:`rack_operating_point`, ``summary`` the
    :class:`RackSummary` of ``t_plates`` (the chain's hottest junction known
    from the last residual). Split so that a caller can run the
    iteration and the evaluation over its hours in different batches (on a
    CPU a year's hours start from alike hours' solutions and only those not
    converged there iterate, while the plant's evaluation takes every hour
    in one pass).

    ``t_start`` (n,), K: where the iteration starts, e.g. a converged
    neighbouring hour's junction temperatures (a warm start; clipped to the
    facility-water setpoint and ``config.t_runaway``). None: every junction at
    the facility-water setpoint ``fac.t_supply_set``, below the solution. From
    above the stable solution (and below the unstable one) the residual's
    concavity puts the first step below it, from where the iteration climbs
    as from the cold start; the iterates never go below the setpoint.
    :func:`rack_start_residuals` checks one start for many hours at once."""
    tol, t_lo, t0 = _rack_start(fac, plates, config, t_start)
    fac_v, pl_v, amb_v = jax.tree_util.tree_map(lax.stop_gradient, (fac, plates, amb))
    return _rack_newton(fac_v, pl_v, amb_v, config, t0, tol, t_lo)


def _rack_start(fac: Facility, plates: RackPlates, config: CoupledConfig, t_start):
    """``(tol, t_lo, t0)`` of the rack iteration (values): the tolerance, the
    iterates' lower bound (the facility-water setpoint) and the start,
    ``t_start`` clipped to ``[t_lo, config.t_runaway]`` (None: ``t_lo``)."""
    t_lo = lax.stop_gradient(jnp.asarray(fac.t_supply_set))
    dtype = t_lo.dtype
    tol = (1e-9 if dtype == jnp.float64 else 1e-3) if config.tol is None else config.tol
    if t_start is None:
        return tol, t_lo, jnp.full((jnp.shape(plates.resistance)[0],), t_lo, dtype)
    return tol, t_lo, jnp.clip(lax.stop_gradient(jnp.asarray(t_start, dtype)), t_lo, config.t_runaway)


def rack_start_residuals(fac: Facility, plates: RackPlates, amb: Ambient, config: CoupledConfig, t_start,
                         utilization):  # fmt: skip
    """What :func:`solve_rack_junctions` reports for each of m hours that
    converge at one start ``t_start`` (n,) K, from the residual at that start
    alone (on values): ``amb`` and ``utilization`` have a leading axis of m
    hours (``fac.utilization`` is not used). Returns ``(info, runaway,
    summary)`` (a :class:`RackSummary` per hour) with that leading axis:
    ``info.converged`` says whether the
    start is within the tolerance for the hour (then ``info.iterations`` is 0
    and ``info.residual`` is the start's); an hour that is not must be solved
    (``solve_rack_junctions(..., t_start)``). At fixed junctions each
    accelerator's power is linear in the utilization (idle and leakage, plus
    the utilization times the dynamic power at the hottest junction's clock),
    so the plates' (n, n) influence acts on two vectors rather than on m;
    each hour adds only its own plant chain (secondary supply temperature)."""
    tol, _, t = _rack_start(fac, plates, config, t_start)
    dtype = t.dtype
    fac, plates, amb, u = jax.tree_util.tree_map(lax.stop_gradient, (fac, plates, amb, utilization))
    clock = it_power.clock_fraction(fac.accelerator, jnp.max(t))
    a, dynamic, leak = _rack_power_parts(fac, t, clock)  # p = a + u b for every plate
    b = jnp.broadcast_to(dynamic, t.shape)
    base = plates.rise_fixed + plates.influence @ a + plates.resistance * a
    slope = plates.influence @ b + plates.resistance * b

    def supply(amb_h, u_h):
        q_acc = plates.n_racks * (jnp.sum(a) + u_h * jnp.sum(b))
        f = dataclasses.replace(fac, utilization=u_h)
        return _plant_chain(f, amb_h, config, q_acc, plates.n_racks * plates.fixed_power, plates.dp, False, True)[1]

    t_sup = jax.vmap(supply)(amb, u)
    t_model = t_sup[:, None] + base[None, :] + u[:, None] * slope[None, :]
    r = t[None, :] - t_model
    res = jnp.max(jnp.abs(r), axis=1)
    converged = res <= tol
    runaway = ~converged & jnp.any((t[None, :] >= config.t_runaway) & (r < 0), axis=1)
    m = res.shape[0]
    hist = jnp.full((m, config.max_iter + 1), jnp.nan, dtype).at[:, 0].set(res)
    # the iteration count's type as the iteration's loop counter has it
    info = SolveInfo(converged=converged, iterations=jnp.zeros((m,), jnp.asarray(0).dtype), residual=res,
                     history=hist)  # fmt: skip
    summary = RackSummary(jnp.broadcast_to(jnp.max(t), (m,)), jnp.max(t_model, axis=1),
                          jnp.broadcast_to(jnp.sum(leak), (m,)))  # fmt: skip
    return info, runaway, summary


def rack_operating_point(fac: Facility, plates: RackPlates, amb: Ambient, config: CoupledConfig, t_star, info,
                         runaway, summary: RackSummary | None = None):  # fmt: skip
    """``(op, info, t_plates)`` of :func:`solve_rack_operating_point` from the
    output of :func:`solve_rack_junctions` for the same arguments: the
    implicit derivative attached at ``t_star`` and the chain evaluated there.
    ``summary`` (the :class:`RackSummary` the iteration returned; None:
    computed here from every plate, one (n, n) product and n exponentials):
    the hottest junction, the chain's hottest junction and the summed leakage
    at ``t_star`` as values, with their derivatives as functions of the
    junctions (``op.t_j_model``'s is ``op.t_j``'s, the two being equal along
    the solution). A caller that knows them evaluates the plant chain per
    hour on these scalars alone."""

    def residual_of(f, pl, a):
        def residual(t):
            return t - _rack_model(f, pl, a, config, t, False, True)[0]

        return residual

    def tangent_solve(g, y):
        jac = jax.jacfwd(g)(jnp.zeros_like(y))
        return _dense.solve(jac, y)

    t_star = lax.stop_gradient(t_star)
    t_plates = lax.custom_root(residual_of(fac, plates, amb), t_star, lambda f, x0: x0, tangent_solve)
    op = _rack_evaluate(fac, plates, amb, config, t_plates, True, summary)
    return dataclasses.replace(op, runaway=runaway), info, t_plates
