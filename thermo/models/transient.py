"""``transient_hall``: an AI hall's junction, coolant and plant temperatures, and
its power, over a workload trace.

The hall is a set of lumped thermal masses ``C dT/dt = -A(t) T + f(t)``
(see :mod:`aidc_thermo.kernels.plant.lumped` for the linear pieces); per rack:

* the accelerators' junction-to-coolant mass (``accelerators x heat_capacity``)
  and resistance (``resistance`` per accelerator, to the mean of the cold-plate
  coolant cells), heated by the accelerator power of the ``[trace]`` with
  leakage and throttling at the junction temperature
  (:mod:`aidc_thermo.kernels.plant.it_power`);
* the cold-plate coolant as ``cold_plate_cells`` mixing cells;
* the supply and return piping between the CDU and the rack as ``pipe_cells``
  mixing cells each (a transport delay of volume / flow, spread by mixing);

and for the hall:

* the CDU: its secondary water volume (one mixed tank receiving every rack's
  return) and a counterflow plate heat exchanger by effectiveness-NTU
  (constant flows, so a constant conductance ``eps C_min``), no storage in the
  plates; optionally (``[cdu.valve]``) a three-way valve on its facility side
  whose opening (the share of the facility water through the exchanger, the
  rest bypassing it) a PI controller sets to hold the secondary supply
  temperature, with opening limits, a stroke-time rate limit and clamping
  against wind-up;
* the facility-water loop: its volume split into a return leg (CDU to dry
  cooler) and a supply leg (dry cooler to CDU), ``facility_cells`` mixing cells
  each;
* a dry cooler (:func:`aidc_thermo.kernels.plant.device_conductance`, rated
  from an approach) whose fan speed is set by a PI controller on the facility
  supply temperature (gains, speed limits, a ramp-rate limit and clamping
  against wind-up, :func:`_pi`; split range: below the lowest fan speed a
  bypass valve sends less of the water through the cooler,
  :func:`_fan_and_flow`), fan power ``fan_power f^3``;
* pumps (power ``dp Q / eta``; ``pump_heat_fraction`` of it heats the water):
  the facility pump at constant flow, the secondary one at constant flow or
  (``[secondary.pump]``) at a speed a PI controller sets to hold the racks'
  temperature rise (CDU return - supply), with speed limits and a ramp rate;
  every secondary flow follows the speed, the pump's power its cube (fixed
  system curve), and the cold plate's film share of the junction resistance
  grows as ``speed^-plate_film_exponent``;
* optionally (``[chiller]``) a trim chiller after the dry cooler, switched with
  hysteresis and minimum on/off times (state and timer in the scan's carry),
  its COP from :func:`aidc_thermo.kernels.plant.chiller_cop` (docs/transient.md).

Time stepping: backward Euler with the fan speed and the accelerator power
(leakage, throttling) lagged one step (a linearly implicit scheme, first
order): each step solves one dense linear system. Heat in, heat rejected and
the stored heat then close exactly, step by step, with the rectangle rule
``sum dt (Q_in - Q_rejected)`` over the levels 1..n (:func:`energy_balance`).

The pieces follow :mod:`aidc_thermo.models.protocol`: ``parse`` (host),
``build`` -> ``(Static, Params)``, ``solve`` (pure JAX, one ``lax.scan``,
``vmap``-able over a leading axis of ``Params``), ``report`` and ``check``;
``run`` composes them and writes the results folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from aidc_thermo import progress
from aidc_thermo.compile_options import jit
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseFile, Table, read_header
from aidc_thermo.io.results import Quantity, Series, write_series_results
from aidc_thermo.io.traces import read_trace
from aidc_thermo.kernels import plant
from aidc_thermo.kernels.plant import hx, it_power
from aidc_thermo.kernels.solvers import dense as _dense
from aidc_thermo.models.facility import read_chiller_cop
from aidc_thermo.models.protocol import Output

__all__ = [
    "CASE_TYPE",
    "PROTOCOL",
    "Static",
    "Params",
    "parse",
    "build",
    "solve",
    "steady_state",
    "energy_balance",
    "report",
    "check",
    "check_bounded",
    "run",
]

CASE_TYPE = "transient_hall"
PROTOCOL = True
T0 = 273.15
CONTROL_MODES = ("pi", "fixed")
INITIAL = ("steady", "uniform")
_BISECTIONS = 60
_FIXED_POINT = 40
_CONTROL_PASSES = 8  # fixed-point passes for the steady valve opening and pump speed (each ~100x closer in the tests)
_NTU_MAX = 20.0  # rated heat exchangers beyond this are not real equipment


# ----------------------------------------------------------------------------- case


@dataclass(frozen=True)
class HallCase:
    name: str
    description: str
    static: Static
    params: Params
    times: np.ndarray
    trace_notes: tuple[str, ...]
    junction_limit: float
    tokens_defined: bool
    plots: bool
    echo: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(name=self.name, description=self.description, static=self.static.__dict__, **self.echo)


@dataclass(frozen=True)
class Static:
    """What fixes shapes and the compiled program (hashable)."""

    racks: int
    levels: int
    cold_plate_cells: int
    pipe_cells: int
    facility_cells: int
    control: str
    initial: str
    arrangement: str
    storage: bool = False
    demand_response: bool = False
    chiller: str = "none"  # "none", "carnot" or "doe2" (the COP model of the trim chiller)
    valve: bool = False  # the CDU's facility-side valve holds the secondary supply temperature ([cdu.valve])
    pump: bool = False  # the secondary pump's speed holds the racks' temperature rise ([secondary.pump])
    storage_level: str = "site"  # [storage] level: one store on the site's power, or one per rack on the rack's

    @property
    def per_rack(self) -> int:
        return 1 + self.cold_plate_cells + 2 * self.pipe_cells

    @property
    def nodes(self) -> int:
        return self.racks * self.per_rack + 1 + 2 * self.facility_cells

    # node indices
    def junction(self, r: int) -> int:
        return r * self.per_rack

    def cold_plate(self, r: int, k: int) -> int:
        return r * self.per_rack + 1 + k

    def supply_pipe(self, r: int, k: int) -> int:
        return r * self.per_rack + 1 + self.cold_plate_cells + k

    def return_pipe(self, r: int, k: int) -> int:
        return r * self.per_rack + 1 + self.cold_plate_cells + self.pipe_cells + k

    @property
    def cdu(self) -> int:
        return self.racks * self.per_rack

    def fw_return(self, k: int) -> int:
        return self.cdu + 1 + k

    def fw_supply(self, k: int) -> int:
        return self.cdu + 1 + self.facility_cells + k


class Storage(NamedTuple):
    """Energy storage, one store (SI; see :func:`storage_dispatch`): the site's,
    or each rack's with ``[storage] level = "rack"``."""

    capacity: jax.Array  # J (per rack at the rack level)
    power_limit: jax.Array  # W, charge and discharge (per rack at the rack level)
    efficiency: jax.Array  # round trip; sqrt of it each way
    soc_min: jax.Array  # fraction of capacity
    soc_max: jax.Array
    soc_initial: jax.Array
    window: jax.Array  # s, trailing moving average the grid power tracks
    recovery_time: jax.Array  # s, time constant pulling the charge back to soc_initial


class Params(NamedTuple):
    """Every number a user may sweep (SI units, temperatures in K)."""

    dt: jax.Array  # s
    power: jax.Array  # (racks, levels) W per accelerator, from the trace
    acc: it_power.Accelerator  # p_idle is the trace's idle power
    accelerators: jax.Array  # per rack
    c_junction: jax.Array  # J/K per accelerator
    r_junction: jax.Array  # K/W per accelerator, junction to cold-plate coolant
    v_cold_plate: jax.Array  # m^3 per accelerator
    q_accelerator: jax.Array  # m^3/s coolant per accelerator
    v_pipe: jax.Array  # m^3 per rack and direction
    v_cdu: jax.Array  # m^3 secondary volume of the CDU
    rho_cp_secondary: jax.Array  # J/m^3/K
    ua_cdu: jax.Array  # W/K
    v_facility: jax.Array  # m^3 facility-water loop volume (half each leg)
    q_facility: jax.Array  # m^3/s
    rho_cp_facility: jax.Array  # J/m^3/K
    device: plant.RejectionDevice
    t_ambient: jax.Array  # K
    dp_secondary: jax.Array  # Pa
    eta_secondary: jax.Array
    dp_facility: jax.Array  # Pa
    eta_facility: jax.Array
    pump_heat_fraction: jax.Array
    t_set: jax.Array  # K
    kp: jax.Array  # 1/K
    ki: jax.Array  # 1/K/s
    fan_min: jax.Array
    fan_max: jax.Array
    fan_ramp: jax.Array  # 1/s
    fan_fixed: jax.Array  # fan fraction for control = "fixed"
    other_power: jax.Array  # W per rack (air-cooled, not in the loop)
    conversion_loss: jax.Array  # fraction of IT power
    overhead: jax.Array  # fraction of IT power
    storage: Storage  # zeros when the case has no [storage]
    dr_start: jax.Array  # s, demand-response event (no event: start = end = -1)
    dr_end: jax.Array  # s
    dr_fan_limit: jax.Array  # fan fraction cap during the event
    dr_setpoint_raise: jax.Array  # K added to the supply setpoint during the event
    chiller: plant.Chiller  # COP model parameters (defaults when the case has no [chiller])
    chiller_capacity: jax.Array  # W, largest evaporator load
    chiller_on_band: jax.Array  # K: on when the supply is this far above the setpoint (fans at full speed)
    chiller_off_band: jax.Array  # K: off when the dry cooler's outlet is this far below the setpoint
    chiller_min_on: jax.Array  # s
    chiller_min_off: jax.Array  # s
    t_set_cdu: jax.Array  # K, secondary supply setpoint of the CDU valve ([cdu.valve]; unused without it)
    valve_kp: jax.Array  # opening per K
    valve_ki: jax.Array  # opening per K per s
    valve_min: jax.Array  # smallest opening (fraction of the facility flow through the heat exchanger)
    valve_max: jax.Array
    valve_rate: jax.Array  # 1/s, largest change of the opening per second (1 / stroke time)
    cdu_facility_share: jax.Array  # share of the CDU's rated 1/UA on the facility-water side
    cdu_film_exponent: jax.Array  # that side's film coefficient ~ flow^exponent
    pump_dt_set: jax.Array  # K, secondary temperature rise (CDU return - supply) the pump speed holds
    pump_kp: jax.Array  # speed fraction per K
    pump_ki: jax.Array  # speed fraction per K per s
    pump_min: jax.Array  # speed fractions of the rated flow
    pump_max: jax.Array
    pump_ramp: jax.Array  # 1/s, largest change of the speed fraction per second
    plate_convective_share: jax.Array  # share of the junction resistance that is the cold plate's film
    plate_film_exponent: jax.Array  # that film's coefficient ~ flow^exponent


def _coolant(t: Table, default_rho: float, default_cp: float) -> float:
    rho = t.quantity("density", "density", default=default_rho, positive=True)
    cp = t.quantity("specific_heat", "specific_heat", default=default_cp, positive=True)
    return rho * cp


def parse(case_file: CaseFile) -> HallCase:
    """Read and validate a ``transient_hall`` case (raises :class:`CaseError`)."""
    root = Table(case_file.data, case_file.path)
    name, description = read_header(root, CASE_TYPE)

    tr = root.table("trace")
    idle = tr.quantity("idle_power", "power", nonnegative=True)
    trace = read_trace(tr, case_file.directory)
    racks = trace.racks
    levels = len(trace.times)
    if levels < 3:
        raise tr.error("duration", "the trace needs at least two steps")

    a = root.table("accelerator")
    n_acc = a.integer("per_rack", minimum=1, maximum=10_000)
    p_dyn = a.quantity("dynamic_power", "power", positive=True)
    if float(trace.power.max()) > idle + 1.5 * p_dyn:
        raise tr.error(None, f"the trace peaks at {trace.power.max():g} W, above idle_power + 1.5 x "
                             f"[accelerator] dynamic_power ({idle + 1.5 * p_dyn:g} W): check the units")  # fmt: skip
    acc = dict(
        p_idle=idle,
        p_dynamic=p_dyn,
        leak_ref=a.quantity("leakage_power", "power", default=0.0, nonnegative=True),
        t_leak_ref=a.quantity("leakage_reference_temperature", "temperature", default=358.15),
        leak_beta=math.log(2.0) / a.quantity("leakage_doubling", "temperature_difference", default=35.0, positive=True),
        t_throttle=a.quantity("throttle_temperature", "temperature", default=368.15),
        throttle_span=a.quantity("throttle_span", "temperature_difference", default=15.0, positive=True),
        clock_min=a.number("min_clock", default=0.5, minimum=0.05, maximum=1.0),
        dyn_clock_exponent=a.number("dynamic_clock_exponent", default=1.0, minimum=0.0, maximum=4.0),
        tokens_per_s=a.number("tokens_per_second", default=0.0, minimum=0.0),
        ramp_smoothing=0.1,
    )
    c_j = a.quantity("heat_capacity", "heat_capacity", positive=True)
    r_j = a.quantity("resistance", "thermal_resistance", positive=True)
    t_limit = a.quantity("junction_limit", "temperature", default=acc["t_throttle"])
    a.finish()

    rk = root.table("rack")
    other = rk.quantity("other_power", "power", default=0.0, nonnegative=True)
    v_cp = rk.quantity("cold_plate_volume", "volume", positive=True)
    q_acc = rk.quantity("flow_per_accelerator", "volumetric_flow", positive=True)
    n_cp = rk.integer("cold_plate_cells", default=2, minimum=1, maximum=20)
    v_pipe = rk.quantity("pipe_volume", "volume", positive=True)
    n_pipe = rk.integer("pipe_cells", default=4, minimum=1, maximum=50)
    rk.finish()

    sec = root.table("secondary")
    rho_cp_s = _coolant(sec, 1020.0, 3900.0)
    dp_s = sec.quantity("pressure_drop", "pressure", nonnegative=True)
    eta_s = sec.number("pump_efficiency", minimum=0.05, maximum=1.0)
    heat_frac = sec.number("pump_heat_fraction", default=1.0, minimum=0.0, maximum=1.0)
    pt = sec.table("pump", default=None)
    pump = dict(pump_dt_set=0.0, pump_kp=0.0, pump_ki=0.0, pump_min=1.0, pump_max=1.0, pump_ramp=1.0,
                plate_convective_share=0.5, plate_film_exponent=0.8)  # fmt: skip
    if pt is not None:
        n_min = pt.number("min_speed", default=0.3, minimum=0.05, maximum=1.5)
        n_max = pt.number("max_speed", default=1.0, minimum=0.05, maximum=1.5)
        if n_max < n_min:
            raise pt.error("max_speed", f"{n_max:g} is below min_speed {n_min:g}")
        n_kp = pt.quantity("proportional_gain", "dimensionless", default=0.05, nonnegative=True)  # 1/K
        n_ti = pt.quantity("integral_time", "time", default=60.0, positive=True)
        pump = dict(
            pump_dt_set=pt.quantity("delta_t", "temperature_difference", positive=True),
            pump_kp=n_kp, pump_ki=n_kp / n_ti, pump_min=n_min, pump_max=n_max,
            pump_ramp=pt.number("ramp_rate", default=0.05, minimum=1e-4, maximum=10.0),
            plate_convective_share=pt.number("plate_convective_share", default=0.5, minimum=0.0, maximum=0.95),
            plate_film_exponent=pt.number("plate_film_exponent", default=0.8, minimum=0.0, maximum=1.5),
        )  # fmt: skip
        pt.finish()
    sec.finish()

    cdu = root.table("cdu")
    v_cdu = cdu.quantity("volume", "volume", positive=True)
    approach = cdu.quantity("approach", "temperature_difference", positive=True)
    q_cdu = cdu.quantity("rated_heat", "power", positive=True)

    fw = root.table("facility_water")
    v_fw = fw.quantity("volume", "volume", positive=True)
    q_fw = fw.quantity("flow", "volumetric_flow", positive=True)
    n_fw = fw.integer("cells", default=4, minimum=1, maximum=50)
    rho_cp_f = _coolant(fw, 997.0, 4180.0)
    dp_f = fw.quantity("pressure_drop", "pressure", nonnegative=True)
    eta_f = fw.number("pump_efficiency", minimum=0.05, maximum=1.0)
    fw.finish()

    c_sec = rho_cp_s * q_acc * n_acc * racks
    c_fw = rho_cp_f * q_fw
    c_min = min(c_sec, c_fw)
    eps = q_cdu / (c_min * (approach + q_cdu / c_sec))
    if not 0.0 < eps < 1.0:
        raise cdu.error("approach", f"{approach:g} K is not reachable at {q_cdu / 1e3:g} kW with these flows "
                                    f"(effectiveness {eps:.3f} >= 1): raise the approach or the flows")  # fmt: skip
    ua_cdu = float(hx.ua_from_approach(approach, q_cdu, c_sec, c_fw))
    if not (math.isfinite(ua_cdu) and ua_cdu / c_min <= _NTU_MAX):
        raise cdu.error("approach", f"{approach:g} K needs NTU {ua_cdu / c_min:.3g} (more than {_NTU_MAX:g}): "
                                    "no plate heat exchanger gets this close; raise the approach")  # fmt: skip
    vt = cdu.table("valve", default=None)
    valve = dict(t_set_cdu=0.0, valve_kp=0.0, valve_ki=0.0, valve_min=1.0, valve_max=1.0, valve_rate=1.0,
                 cdu_facility_share=0.5, cdu_film_exponent=0.8)  # fmt: skip
    if vt is not None:
        v_min = vt.number("min_opening", default=0.05, minimum=0.01, maximum=1.0)
        v_max = vt.number("max_opening", default=1.0, minimum=0.01, maximum=1.0)
        if v_max < v_min:
            raise vt.error("max_opening", f"{v_max:g} is below min_opening {v_min:g}")
        v_kp = vt.quantity("proportional_gain", "dimensionless", default=0.1, nonnegative=True)  # 1/K
        v_ti = vt.quantity("integral_time", "time", default=60.0, positive=True)
        valve = dict(
            t_set_cdu=vt.quantity("supply_temperature", "temperature"),
            valve_kp=v_kp, valve_ki=v_kp / v_ti, valve_min=v_min, valve_max=v_max,
            valve_rate=1.0 / vt.quantity("stroke_time", "time", default=60.0, positive=True),
            cdu_facility_share=vt.number("facility_resistance_share", default=0.5, minimum=0.0, maximum=0.95),
            cdu_film_exponent=vt.number("film_exponent", default=0.8, minimum=0.0, maximum=1.5),
        )  # fmt: skip
        vt.finish()
    cdu.finish()

    hr = root.table("dry_cooler")
    arrangement = hr.string("arrangement", default="counterflow", choices=hx.ARRANGEMENTS)
    q_rated = hr.quantity("rated_heat", "power", positive=True)
    app_rated = hr.quantity("approach", "temperature_difference", positive=True)
    m_air = hr.quantity("air_flow", "mass_flow", positive=True)
    fan_power = hr.quantity("fan_power", "power", nonnegative=True)
    air_share = hr.number("air_resistance_share", default=0.8, minimum=0.0, maximum=1.0)
    air_exp = hr.number("air_exponent", default=0.8, minimum=0.0, maximum=1.5)
    water_exp = hr.number("water_exponent", default=0.8, minimum=0.0, maximum=1.5)
    c_air = m_air * plant.CP_AIR
    eps_dc = q_rated / (min(c_fw, c_air) * (app_rated + q_rated / c_fw))
    if not 0.0 < eps_dc < 1.0:
        raise hr.error("approach", f"{app_rated:g} K is not reachable at {q_rated / 1e3:g} kW with this air and "
                                   f"water flow (effectiveness {eps_dc:.3f} >= 1)")  # fmt: skip
    ua_dc = float(hx.ua_from_approach(app_rated, q_rated, c_fw, c_air, arrangement))
    if not (math.isfinite(ua_dc) and ua_dc / min(c_fw, c_air) <= _NTU_MAX):
        raise hr.error("approach", f"{app_rated:g} K needs NTU {ua_dc / min(c_fw, c_air):.3g} (more than "
                                   f"{_NTU_MAX:g}): raise the approach or the air flow")  # fmt: skip
    hr.finish()

    amb = root.table("ambient")
    t_amb = amb.quantity("dry_bulb", "temperature")
    amb.finish()

    ct = root.table("control")
    mode = ct.string("mode", default="pi", choices=CONTROL_MODES)
    t_set = ct.quantity("supply_temperature", "temperature")
    f_min = ct.number("min_fan_fraction", default=0.15, minimum=0.01, maximum=1.0)
    f_max = ct.number("max_fan_fraction", default=1.0, minimum=0.01, maximum=1.0)
    if f_max < f_min:
        raise ct.error("max_fan_fraction", f"{f_max:g} is below min_fan_fraction {f_min:g}")
    kp = ct.quantity("proportional_gain", "dimensionless", default=0.1, nonnegative=True)  # 1/K
    ti = ct.quantity("integral_time", "time", default=120.0, positive=True)
    ramp = ct.quantity("fan_ramp_rate", "dimensionless", default=0.01, positive=True)  # fraction per second
    fixed = ct.number("fan_fraction", default=f_max, minimum=f_min, maximum=f_max)
    if mode == "fixed" and not ct.has("fan_fraction"):
        raise ct.error("fan_fraction", "mode = 'fixed' needs the fan speed fraction")
    ct.finish()
    if t_set <= t_amb:
        raise ct.error("supply_temperature", f"{t_set - T0:g} degC is not above the ambient dry bulb "
                                             f"{t_amb - T0:g} degC: a dry cooler cannot reach it")  # fmt: skip
    if vt is not None and valve["t_set_cdu"] <= t_set:
        raise vt.error("supply_temperature", f"{valve['t_set_cdu'] - T0:g} degC is not above the facility supply "
                                             f"setpoint ([control] supply_temperature, {t_set - T0:g} degC): the "
                                             "CDU cannot cool the secondary below its facility water")  # fmt: skip

    st = root.table("storage", default=None)
    storage = Storage(*([0.0] * 5 + [0.5, 1.0, 1.0]))
    storage_level = "site"
    if st is not None:
        storage_level = st.string("level", default="site", choices=STORAGE_LEVELS)
        cap = st.quantity("capacity", "energy", positive=True)
        limit = st.quantity("power_limit", "power", positive=True)
        eff = st.number("round_trip_efficiency", default=0.9, minimum=0.5, maximum=1.0)
        lo = st.number("soc_min", default=0.1, minimum=0.0, maximum=1.0)
        hi = st.number("soc_max", default=0.9, minimum=0.0, maximum=1.0)
        if hi <= lo:
            raise st.error("soc_max", f"{hi:g} is not above soc_min {lo:g}")
        init = st.number("soc_initial", default=0.5 * (lo + hi), minimum=lo, maximum=hi)
        window = st.quantity("window", "time", positive=True)
        if window < 2 * trace.step:
            raise st.error("window", f"{window:g} s is shorter than two time steps ({2 * trace.step:g} s)")
        recovery = st.quantity("recovery_time", "time", default=10 * window, positive=True)
        storage = Storage(cap, limit, eff, lo, hi, init, window, recovery)
        st.finish()

    drt = root.table("demand_response", default=None)
    dr = dict(dr_start=-1.0, dr_end=-1.0, dr_fan_limit=1.0, dr_setpoint_raise=0.0)
    if drt is not None:
        start = drt.quantity("start", "time", nonnegative=True)
        length = drt.quantity("length", "time", positive=True)
        if start + length > trace.times[-1] + 1e-9:
            raise drt.error("length", f"the event ends at {start + length:g} s, after the trace ends")
        if length < trace.step:
            raise drt.error("length", f"{length:g} s is shorter than one time step ({trace.step:g} s)")
        if not (drt.has("fan_limit") or drt.has("setpoint_raise")):
            raise drt.error(None, "give 'fan_limit' (fan speed cap, fraction) and/or 'setpoint_raise' (K)")
        if drt.has("fan_limit") and drt.number("fan_limit", minimum=0.01, maximum=1.0) < f_min:
            raise drt.error("fan_limit", f"{drt.number('fan_limit'):g} is below [control] min_fan_fraction "
                                         f"{f_min:g}: the fans do not run slower (lower min_fan_fraction)")  # fmt: skip
        dr = dict(
            dr_start=start, dr_end=start + length,
            dr_fan_limit=drt.number("fan_limit", default=1.0, minimum=0.01, maximum=1.0),
            dr_setpoint_raise=drt.quantity("setpoint_raise", "temperature_difference", default=0.0, nonnegative=True),
        )  # fmt: skip
        drt.finish()

    ch_t = root.table("chiller", default=None)
    cop_ref, coeffs, chw_b, cond_b = plant.doe2_centrifugal_eir()
    chiller = dict(
        carnot_fraction=0.55, dt_evap=2.0, dt_cond=15.0, cop_ref=cop_ref, eir_coeffs=np.array(coeffs),
        t_chw_bounds=np.array(chw_b), t_cond_bounds=np.array(cond_b), lift_min=1.0, cond_approach=0.0,
        cond_power_per_w=0.02,
    )  # fmt: skip
    ch = dict(chiller_capacity=0.0, chiller_on_band=1.0, chiller_off_band=2.0, chiller_min_on=600.0,
              chiller_min_off=300.0)  # fmt: skip
    chiller_model = "none"
    if ch_t is not None:
        chiller_model = ch_t.string("model", default="carnot", choices=("carnot", "doe2"))
        ch = dict(
            chiller_capacity=ch_t.quantity("capacity", "power", positive=True),
            chiller_on_band=ch_t.quantity("on_band", "temperature_difference", default=1.0, nonnegative=True),
            chiller_off_band=ch_t.quantity("off_band", "temperature_difference", default=2.0, nonnegative=True),
            chiller_min_on=ch_t.quantity("min_on_time", "time", default=600.0, nonnegative=True),
            chiller_min_off=ch_t.quantity("min_off_time", "time", default=300.0, nonnegative=True),
        )
        chiller.update(read_chiller_cop(ch_t, condenser_approach=15.0, reference_cop=cop_ref))
        ch_t.finish()

    fac = root.table("facility", default=None)
    conv = overhead = 0.0
    if fac is not None:
        conv = fac.number("conversion_loss_fraction", default=0.0, minimum=0.0, maximum=0.5)
        overhead = fac.number("overhead_fraction", default=0.0, minimum=0.0, maximum=1.0)
        fac.finish()

    sv = root.table("solver", default=None)
    initial = "steady"
    plots = True
    if sv is not None:
        initial = sv.string("initial", default="steady", choices=INITIAL)
        plots = sv.boolean("plots", default=True)
        sv.finish()
    root.finish()

    static = Static(racks, levels, n_cp, n_pipe, n_fw, mode, initial, arrangement, st is not None, drt is not None,
                    chiller_model, vt is not None, pt is not None, storage_level)  # fmt: skip
    dev = plant.RejectionDevice(
        ua_rated=ua_dc, c_water_rated=c_fw, m_air_rated=m_air, cp_air=plant.CP_AIR, cs_span=10.0,
        air_share=air_share, air_exponent=air_exp, water_exponent=water_exp,
        fan_power_rated=fan_power, fan_fraction_min=f_min, hx_ua=0.0,
    )  # fmt: skip
    params = Params(
        dt=trace.step, power=trace.power, acc=it_power.Accelerator(**acc), accelerators=float(n_acc),
        c_junction=c_j, r_junction=r_j, v_cold_plate=v_cp, q_accelerator=q_acc, v_pipe=v_pipe, v_cdu=v_cdu,
        rho_cp_secondary=rho_cp_s, ua_cdu=ua_cdu, v_facility=v_fw, q_facility=q_fw, rho_cp_facility=rho_cp_f,
        device=dev, t_ambient=t_amb, dp_secondary=dp_s, eta_secondary=eta_s, dp_facility=dp_f, eta_facility=eta_f,
        pump_heat_fraction=heat_frac, t_set=t_set, kp=kp, ki=kp / ti, fan_min=f_min, fan_max=f_max,
        fan_ramp=ramp, fan_fixed=fixed, other_power=other,
        conversion_loss=conv, overhead=overhead, storage=storage, **dr,
        chiller=plant.Chiller(**chiller), **ch, **valve, **pump,
    )  # fmt: skip
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), params)
    echo = dict(trace=list(trace.description), accelerators_per_rack=n_acc, racks=racks,
                cdu_ua_W_per_K=ua_cdu, dry_cooler_ua_W_per_K=ua_dc)  # fmt: skip
    return HallCase(name, description, static, params, trace.times, trace.description, t_limit,
                    acc["tokens_per_s"] > 0, plots, echo)  # fmt: skip


def build(case: HallCase) -> tuple[Static, Params]:
    return case.static, case.params


# ----------------------------------------------------------------------------- model


@lru_cache(maxsize=32)
def _layout(s: Static):
    """Static structure: for every node the index of its heat-capacity kind, and
    the entries ``(row, col, coefficient kind, sign)`` of ``A`` (numpy), so that
    ``A`` is one scatter of a few traced coefficients (a small compiled program)."""
    cap = np.zeros(s.nodes, np.int64)  # 0 junction, 1 cold plate cell, 2 pipe cell, 3 CDU, 4 facility cell
    rows, cols, kinds, signs = [], [], [], []
    # coefficient kinds: 0 m_r, 1 m_r e_s, 2 m_r (1 - e_s), 3 c_sec / racks, 4 c_fw, 5 c_fw e_f,
    # 6 c_fw (1 - e_f), 7 g_j, 8 c_sec

    def add(i, j, k, sign=1.0):
        rows.append(i), cols.append(j), kinds.append(k), signs.append(sign)

    def inflow(i, rate, weights):
        add(i, i, rate)
        for j, k in weights:
            add(i, j, k, -1.0)

    fs_last, fr_last = s.fw_supply(s.facility_cells - 1), s.fw_return(s.facility_cells - 1)
    for r in range(s.racks):
        cap[s.junction(r)] = 0
        inflow(s.supply_pipe(r, 0), 0, [(s.cdu, 2), (fs_last, 1)])
        for k in range(s.pipe_cells):
            cap[s.supply_pipe(r, k)] = cap[s.return_pipe(r, k)] = 2
            if k:
                inflow(s.supply_pipe(r, k), 0, [(s.supply_pipe(r, k - 1), 0)])
                inflow(s.return_pipe(r, k), 0, [(s.return_pipe(r, k - 1), 0)])
        inflow(s.cold_plate(r, 0), 0, [(s.supply_pipe(r, s.pipe_cells - 1), 0)])
        for k in range(s.cold_plate_cells):
            cap[s.cold_plate(r, k)] = 1
            if k:
                inflow(s.cold_plate(r, k), 0, [(s.cold_plate(r, k - 1), 0)])
        inflow(s.return_pipe(r, 0), 0, [(s.cold_plate(r, s.cold_plate_cells - 1), 0)])
        j = s.junction(r)
        for k in range(s.cold_plate_cells):
            c = s.cold_plate(r, k)
            add(j, j, 7), add(c, c, 7), add(j, c, 7, -1.0), add(c, j, 7, -1.0)
    cap[s.cdu] = 3
    inflow(s.cdu, 8, [(s.return_pipe(r, s.pipe_cells - 1), 3) for r in range(s.racks)])
    inflow(s.fw_return(0), 4, [(fs_last, 6), (s.cdu, 5)])
    inflow(s.fw_supply(0), 4, [(fr_last, 4)])  # + the dry cooler: _dry_cooler
    for k in range(s.facility_cells):
        cap[s.fw_return(k)] = cap[s.fw_supply(k)] = 4
        if k:
            inflow(s.fw_return(k), 4, [(s.fw_return(k - 1), 4)])
            inflow(s.fw_supply(k), 4, [(s.fw_supply(k - 1), 4)])
    return cap, np.array(rows), np.array(cols), np.array(kinds), np.array(signs)


def _capacities(s: Static, p: Params) -> jax.Array:
    cap = _layout(s)[0]
    per_kind = jnp.stack([
        p.accelerators * p.c_junction,
        p.accelerators * p.v_cold_plate * p.rho_cp_secondary / s.cold_plate_cells,
        p.v_pipe * p.rho_cp_secondary / s.pipe_cells,
        p.v_cdu * p.rho_cp_secondary,
        0.5 * p.v_facility * p.rho_cp_facility / s.facility_cells,
    ])  # fmt: skip
    return per_kind[cap]


def _cdu_conductance(s: Static, p: Params, valve=None, speed=None):
    """The CDU heat exchanger's conductance ``eps C_min`` (W/K): the heat it passes
    is ``G (T_cdu - T_facility_supply)``. ``valve``: the fraction of the facility
    water sent through it by the three-way valve (the rest bypasses it and mixes
    back at its outlet); that side's film resistance, ``cdu_facility_share`` of the
    rated ``1/UA``, grows as ``valve^-cdu_film_exponent``. ``None``: all of it, at
    the rated UA. ``speed``: the secondary pump's speed fraction (flow ~ speed;
    ``None``: 1; the secondary film is taken as unchanged)."""
    c_sec = p.rho_cp_secondary * p.q_accelerator * p.accelerators * s.racks
    if speed is not None:
        c_sec = c_sec * speed
    c_fw = p.rho_cp_facility * p.q_facility
    ua = p.ua_cdu
    if valve is not None:
        c_fw = c_fw * valve
        ua = ua / ((1.0 - p.cdu_facility_share) + p.cdu_facility_share * valve**-p.cdu_film_exponent)
    c_min, c_max = jnp.minimum(c_sec, c_fw), jnp.maximum(c_sec, c_fw)
    return hx.eps_counterflow(ua / c_min, c_min / c_max) * c_min


def _r_junction(p: Params, speed=None):
    """Junction-to-coolant resistance per accelerator, K/W, at the secondary pump's
    speed fraction ``speed``: the plate film's share grows as ``speed^-exponent``."""
    if speed is None:
        return p.r_junction
    return p.r_junction * ((1.0 - p.plate_convective_share) + p.plate_convective_share * speed**-p.plate_film_exponent)


def _base_matrix(s: Static, p: Params, valve=None, speed=None):
    """``A`` without the dry cooler (W/K), the CDU conductance and the secondary
    mixing weight, at the CDU valve opening ``valve`` (:func:`_cdu_conductance`)
    and the secondary pump's speed fraction ``speed`` (flows ~ speed;
    :func:`_r_junction`)."""
    _, rows, cols, kinds, signs = _layout(s)
    m_r = p.rho_cp_secondary * p.q_accelerator * p.accelerators
    if speed is not None:
        m_r = m_r * speed
    c_sec = m_r * s.racks
    c_fw = p.rho_cp_facility * p.q_facility
    g_cdu = _cdu_conductance(s, p, valve, speed)
    # the bypassed water mixes back at the exchanger's outlet: the facility return carries G (T_cdu - T_fs) / C_fw
    e_s, e_f = g_cdu / c_sec, g_cdu / c_fw
    g_j = 1.0 / _r_junction(p, speed) * p.accelerators / s.cold_plate_cells
    coef = jnp.stack([m_r, m_r * e_s, m_r * (1 - e_s), c_sec / s.racks, c_fw, c_fw * e_f, c_fw * (1 - e_f), g_j, c_sec])
    A = jnp.zeros((s.nodes, s.nodes), coef.dtype).at[rows, cols].add(signs * coef[kinds])
    return A, g_cdu, e_s


_CDU_KINDS = (1, 2, 5, 6)  # the coefficient kinds of _layout that hold the CDU exchanger's mixing weights


@lru_cache(maxsize=32)
def _cdu_entries(s: Static):
    """Where the CDU's mixing weights sit in ``A``: ``(rows, cols, kinds, signs)``,
    each position held by no other entry (so setting them anew reproduces
    :func:`_base_matrix` exactly)."""
    _, rows, cols, kinds, signs = _layout(s)
    sel = np.isin(kinds, _CDU_KINDS)
    assert len(set(zip(rows[sel], cols[sel], strict=True)) & set(zip(rows[~sel], cols[~sel], strict=True))) == 0
    return rows[sel], cols[sel], kinds[sel], signs[sel]


def _with_valve(s: Static, p: Params, A0, valve):
    """``A0`` (:func:`_base_matrix`) with the CDU's mixing weights at the opening
    ``valve``, equal to ``_base_matrix(s, p, valve)`` but written in a few
    entries (each time step of a case with a valve); also returns ``G`` and ``e_s``."""
    rows, cols, kinds, signs = _cdu_entries(s)
    m_r = p.rho_cp_secondary * p.q_accelerator * p.accelerators
    c_fw = p.rho_cp_facility * p.q_facility
    g_cdu = _cdu_conductance(s, p, valve)
    e_s, e_f = g_cdu / (m_r * s.racks), g_cdu / c_fw
    coef = jnp.stack([m_r * e_s, m_r * (1 - e_s), c_fw * e_f, c_fw * (1 - e_f)])
    pick = np.searchsorted(np.array(_CDU_KINDS), kinds)
    return A0.at[rows, cols].set(signs * coef[pick]), g_cdu, e_s


def _fan_and_flow(p: Params, cmd):
    """Split-range control of the dry cooler: the fan speed fraction and the share
    of the facility water that passes the dry cooler for the command ``cmd``. At
    and above ``fan_min`` the command is the fan speed and all the water passes;
    below it the fans stay at ``fan_min`` and the bypass valve sends only
    ``cmd / fan_min`` of the water through the cooler (the rest mixes back at its
    outlet), so the plant can hold its setpoint on a cold day, as the facility
    model's bypass does."""
    return jnp.maximum(cmd, p.fan_min), jnp.clip(cmd / p.fan_min, 1e-6, 1.0)


def _dry_cooler(s: Static, p: Params, A, cmd):
    """``A`` with the dry cooler at the command ``cmd`` (:func:`_fan_and_flow`) and
    its conductance G (W/K): the water leaving it, after the bypass mixes back,
    is ``T_in - G/C_fw (T_in - T_ambient)`` (``G = eps C_min`` at the water
    capacity rate that passes it)."""
    fan, share = _fan_and_flow(p, cmd)
    c_fw = p.rho_cp_facility * p.q_facility * share
    g = plant.device_conductance(p.device, "dry_cooler", s.arrangement, fan, c_fw, p.t_ambient, 101325.0)
    return A.at[s.fw_supply(0), s.fw_return(s.facility_cells - 1)].add(g), g


def _pumps(p: Params, speed=None):
    """Electrical power of the secondary and facility pumps, W; the secondary one
    at the speed fraction ``speed`` on its fixed system curve (flow ~ speed,
    pressure drop ~ speed^2, power ~ speed^3 at constant efficiency)."""
    q_sec = p.q_accelerator * p.accelerators * p.power.shape[-2]
    p_sec = plant.pump_power(p.dp_secondary, q_sec, p.eta_secondary)
    if speed is not None:
        p_sec = p_sec * speed**3
    return p_sec, plant.pump_power(p.dp_facility, p.q_facility, p.eta_facility)


def _accelerators(s: Static, p: Params, T, p_trace):
    """Power (W) and clock of one accelerator per rack at the junction temperatures of ``T``."""
    t_j = T[np.array([s.junction(r) for r in range(s.racks)])]
    u = (p_trace - p.acc.p_idle) / p.acc.p_dynamic
    return it_power.accelerator_power(p.acc, u, t_j), it_power.clock_fraction(p.acc, t_j), u


def _heat(s: Static, p: Params, P_acc, g, p_pumps):
    """Heat into each node, W (chips, pump work, the dry cooler's ambient term)."""
    f = jnp.zeros((s.nodes,), p.dt.dtype)
    f = f.at[np.array([s.junction(r) for r in range(s.racks)])].add(p.accelerators * P_acc)
    f = f.at[s.cdu].add(p.pump_heat_fraction * p_pumps[0])
    f = f.at[s.fw_return(0)].add(p.pump_heat_fraction * p_pumps[1])
    return f.at[s.fw_supply(0)].add(g * p.t_ambient)


def _steady_at(s: Static, p: Params, A0, fan, p_trace, T_guess, speed=None):
    A, g = _dry_cooler(s, p, A0, fan)
    pumps = _pumps(p, speed)

    def body(_, T):
        P, _, _ = _accelerators(s, p, T, p_trace)
        return _dense.solve(A, _heat(s, p, P, g, pumps))

    return lax.fori_loop(0, _FIXED_POINT, body, T_guess)


def _steady_fan(s: Static, p: Params, A0, p_trace, guess, speed=None):
    """Steady ``(T, fan)`` with the CDU's conductance in ``A0`` fixed."""
    if s.control == "fixed":
        fan = p.fan_fixed
        return _steady_at(s, p, A0, fan, p_trace, guess, speed), fan

    fs_last = s.fw_supply(s.facility_cells - 1)

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        too_warm = _steady_at(s, p, A0, mid, p_trace, guess, speed)[fs_last] > p.t_set
        return jnp.where(too_warm, mid, lo), jnp.where(too_warm, hi, mid)

    lo, hi = lax.fori_loop(0, _BISECTIONS, bisect, (0.0 * p.fan_min, p.fan_max))  # the command, bypass range too
    fan_b = lax.stop_gradient(0.5 * (lo + hi))
    # one Newton step from the bisected root: the value is unchanged (the residual is at rounding), and its
    # derivative is the implicit one, dfan/dx = -(dF/dx) / (dF/dfan), so jax.grad sees how the fan speed that
    # holds the setpoint moves with every parameter (bisection alone has a zero derivative); at a speed limit
    # the fan speed does not move
    def supply_error(f):
        return _steady_at(s, p, A0, f, p_trace, guess, speed)[fs_last] - p.t_set

    F, dF = jax.jvp(supply_error, (fan_b,), (jnp.ones_like(fan_b),))
    interior = (fan_b > 1e-9) & (fan_b < p.fan_max - 1e-9) & (dF < 0)
    fan = jnp.where(interior, fan_b - F / jnp.where(interior, dF, -1.0), fan_b)
    return _steady_at(s, p, A0, fan, p_trace, guess, speed), fan


def _valve_holding(s: Static, p: Params, T, g_cdu, speed=None):
    """The valve opening whose conductance passes the CDU's present heat with the
    secondary supply at its setpoint: ``G(x) = Q / (T_set,cdu + Q / C_sec - T_fs)``
    (at steady state ``T_cdu - T_supply = Q / C_sec`` exactly), clipped to the
    opening limits (bisection, ``G`` rises with the opening, then one Newton step
    for the implicit derivative as for the fan); at the pump speed ``speed``."""
    c_sec = p.rho_cp_secondary * p.q_accelerator * p.accelerators * s.racks * (1.0 if speed is None else speed)
    fs_last = s.fw_supply(s.facility_cells - 1)
    q = g_cdu * (T[s.cdu] - T[fs_last])
    room = p.t_set_cdu + q / c_sec - T[fs_last]
    g_need = jnp.where(room > 0, q / jnp.where(room > 0, room, 1.0), jnp.inf)  # facility water too warm: open fully

    def excess(x):
        return _cdu_conductance(s, p, x, speed) - g_need

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        over = excess(mid) > 0
        return jnp.where(over, lo, mid), jnp.where(over, mid, hi)

    lo, hi = lax.fori_loop(0, _BISECTIONS, bisect, (p.valve_min, p.valve_max))
    x_b = lax.stop_gradient(0.5 * (lo + hi))
    F, dF = jax.jvp(excess, (x_b,), (jnp.ones_like(x_b),))
    interior = (x_b > p.valve_min + 1e-9) & (x_b < p.valve_max - 1e-9) & (dF > 0) & jnp.isfinite(F)
    return jnp.where(interior, x_b - jnp.where(interior, F, 0.0) / jnp.where(interior, dF, 1.0), x_b)


def steady_state(s: Static, p: Params, level: int = 0):
    """The model's own steady state at the trace power of ``level``: ``A(f, x, n) T
    = f(T)`` (leakage by fixed-point iteration); for ``control = "pi"`` the fan
    command ``f`` is the one that holds the facility supply at its setpoint
    (bisection over ``[0, fan_max]``: below ``fan_min`` the bypass range of
    :func:`_fan_and_flow`), else the fixed fan speed; with
    ``[cdu.valve]`` the valve opening ``x`` is the one that holds the secondary
    supply at its setpoint, and with ``[secondary.pump]`` the pump speed ``n``
    the one that holds the secondary temperature rise, ``n = Q / (C_sec dT_set)``
    (each clipped to its limits). These are found by ``_CONTROL_PASSES``
    fixed-point passes, each a fan solve at the present ``(x, n)`` and then the
    ``n`` and ``x`` that pass its heat (:func:`_valve_holding`); the passes would
    agree at once but for leakage's dependence on the temperatures (and the
    pump's heat on its speed), and close in by about 100x per pass on the
    tests' hall. Returns ``(T, f, x, n)``; ``x = n = 1`` without them."""
    p_trace = p.power[:, level]
    guess = jnp.full((s.nodes,), p.t_set)
    one = jnp.ones_like(p.t_set)
    if not (s.valve or s.pump):
        A0, _, _ = _base_matrix(s, p)
        T, fan = _steady_fan(s, p, A0, p_trace, guess)
        return T, fan, one, one
    c_sec = p.rho_cp_secondary * p.q_accelerator * p.accelerators * s.racks  # at full speed
    fs_last = s.fw_supply(s.facility_cells - 1)

    def settings(x, n):
        return (x if s.valve else None), (n if s.pump else None)

    def controls(_, xn):
        x, n = xn
        A0, g_cdu, _ = _base_matrix(s, p, *settings(x, n))
        T, _ = _steady_fan(s, p, A0, p_trace, guess, settings(x, n)[1])
        if s.pump:
            n = jnp.clip(g_cdu * (T[s.cdu] - T[fs_last]) / (c_sec * p.pump_dt_set), p.pump_min, p.pump_max)
        if s.valve:
            x = _valve_holding(s, p, T, g_cdu, settings(x, n)[1])
        return x, n

    x, n = lax.fori_loop(0, _CONTROL_PASSES, controls, (p.valve_max + 0.0 * one, p.pump_max + 0.0 * one))
    A0, _, _ = _base_matrix(s, p, *settings(x, n))
    T, fan = _steady_fan(s, p, A0, p_trace, guess, settings(x, n)[1])
    return T, fan, x, n


class Solution(NamedTuple):
    T: jax.Array  # (levels, nodes) K
    fan: jax.Array  # (levels,) dry-cooler fan speed fraction
    dry_cooler_flow: jax.Array  # (levels,) share of the facility water through the dry cooler (the rest bypasses)
    P_acc: jax.Array  # (levels, racks) W per accelerator, the power each step used
    clock: jax.Array  # (levels, racks)
    utilization: jax.Array  # (levels, racks)
    g_dry_cooler: jax.Array  # (levels,) W/K
    q_rejected: jax.Array  # (levels,) W
    q_in: jax.Array  # (levels,) W: chips + pump heat
    stored: jax.Array  # (levels,) J relative to 0 K
    g_cdu: jax.Array  # (levels,) W/K
    e_secondary: jax.Array  # (levels,) CDU: secondary outlet = T_cdu - e (T_cdu - T_fw_supply)
    C: jax.Array  # (nodes,) J/K
    chiller_on: jax.Array  # (levels,) 1 while the trim chiller runs (the state each step used), else 0
    q_evap: jax.Array  # (levels,) W taken from the facility water by the chiller (in q_rejected)
    p_chiller: jax.Array  # (levels,) W electric: compressor + condenser fans
    valve: jax.Array  # (levels,) CDU valve opening (1 without [cdu.valve])
    pump_speed: jax.Array  # (levels,) secondary pump speed fraction (1 without [secondary.pump])


def _pi(e, integral, out, lo, hi, kp, ki, rate, dt):
    """One step of a PI controller with clamping against wind-up (the integral
    follows the error only as far as keeps ``kp e + integral`` within
    ``[lo, hi]``, so a saturated output sits at its limit and leaves it as soon
    as the error turns; an integral already beyond is not pulled back) and a
    rate limit: returns ``(new output, new integral)``; ``out`` the present one."""
    trial = integral + ki * e * dt
    up = jnp.maximum(integral, jnp.minimum(trial, hi - kp * e))
    down = jnp.minimum(integral, jnp.maximum(trial, lo - kp * e))
    integral = jnp.where(e > 0, up, down)
    cmd = jnp.clip(kp * e + integral, lo, hi)
    return jnp.clip(cmd, out - rate * dt, out + rate * dt), integral


def solve(s: Static, p: Params) -> Solution:
    """Step the hall through the trace (pure; ``jax.vmap(solve, (None, 0))`` over scenarios)."""
    C = _capacities(s, p)
    fs_last = s.fw_supply(s.facility_cells - 1)
    fr_last = s.fw_return(s.facility_cells - 1)
    one = jnp.ones_like(p.t_set)
    if s.initial == "steady":
        T0_, fan0, valve0, speed0 = steady_state(s, p, 0)
    else:  # the valve fully open and the pump at full speed, the safe state before their controllers act
        T0_, fan0 = jnp.full((s.nodes,), p.t_set), (p.fan_fixed if s.control == "fixed" else p.fan_min)
        valve0 = p.valve_max + 0.0 * one if s.valve else one
        speed0 = p.pump_max + 0.0 * one if s.pump else one
    A0, g_cdu0, e_s0 = _base_matrix(s, p, valve0 if s.valve else None, speed0 if s.pump else None)
    pumps0 = _pumps(p, speed0 if s.pump else None)
    dt = p.dt

    def record(T, P, g, pumps):
        return g * (T[fr_last] - p.t_ambient), p.accelerators * jnp.sum(P) + p.pump_heat_fraction * (
            pumps[0] + pumps[1]
        )

    chill = s.chiller != "none"
    c_fw = p.rho_cp_facility * p.q_facility

    def chiller(T, on, since, fan, fan_hi, event):
        """The trim chiller's state for this step (from the levels before it: lagged like the fan)."""
        _, g_prev = _dry_cooler(s, p, A0, fan)
        econ_out = T[fr_last] - g_prev / c_fw * (T[fr_last] - p.t_ambient)
        full = (fan >= fan_hi - 1e-9) if s.control == "pi" else True
        want_on = (T[fs_last] - p.t_set > p.chiller_on_band) & full
        want_off = econ_out < p.t_set - p.chiller_off_band
        want = jnp.where(on > 0.5, ~want_off, want_on) & ~event
        held = since >= jnp.where(on > 0.5, p.chiller_min_on, p.chiller_min_off) - 1e-6 * dt
        switch = (want != (on > 0.5)) & held
        return jnp.where(switch, 1.0 - on, on), jnp.where(switch, dt, since + dt)

    def evaporator(T, on, g):
        """Evaporator load (W, from the lagged dry-cooler outlet toward the setpoint, capped) and electric power."""
        econ_out = T[fr_last] - g / c_fw * (T[fr_last] - p.t_ambient)
        q = on * jnp.clip(c_fw * (econ_out - p.t_set), 0.0, p.chiller_capacity)
        cop = plant.chiller_cop(p.chiller, s.chiller, econ_out - q / c_fw, p.t_ambient + p.chiller.cond_approach)
        w = q / cop
        return q, w + p.chiller.cond_power_per_w * (q + w)

    def step(carry, xs):
        p_trace, t_new = xs
        T, fan, integral = carry["T"], carry["fan"], carry["integral"]
        new = {}
        event = (t_new > p.dr_start) & (t_new <= p.dr_end)
        fan_hi = jnp.where(event, jnp.minimum(p.fan_max, p.dr_fan_limit), p.fan_max)
        if chill:
            on, since = chiller(T, carry["on"], carry["since"], fan, fan_hi, event)
            new.update(on=on, since=since)
        if s.control == "pi":
            e = T[fs_last] - (p.t_set + jnp.where(event, p.dr_setpoint_raise, 0.0))
            new_fan, integral = _pi(e, integral, fan, 0.0, fan_hi, p.kp, p.ki, p.fan_ramp, dt)  # split range
            new_fan = jnp.minimum(new_fan, fan_hi)  # a demand-response cap acts at once, not at the ramp rate
            if chill:  # series economizer: fans at full speed while the chiller trims; bumpless back to PI
                full = jnp.minimum(jnp.clip(fan_hi, fan - p.fan_ramp * dt, fan + p.fan_ramp * dt), fan_hi)
                new_fan = jnp.where(on > 0.5, full, new_fan)
                integral = jnp.where(on > 0.5, new_fan, integral)
        else:
            new_fan = jnp.minimum(p.fan_fixed, fan_hi)
        new.update(fan=new_fan, integral=integral)
        # the CDU valve and the secondary pump act on the levels before (lagged like the fan): the secondary
        # supply and the racks' temperature rise T_cdu - supply = e_s (T_cdu - T_fs)
        x, n, pumps = valve0, speed0, pumps0
        if s.valve or s.pump:
            rise = carry["e_s"] * (T[s.cdu] - T[fs_last])
        if s.pump:
            n, n_int = _pi(rise - p.pump_dt_set, carry["speed_integral"], carry["speed"], p.pump_min, p.pump_max,
                           p.pump_kp, p.pump_ki, p.pump_ramp, dt)  # fmt: skip
            pumps = _pumps(p, n)
            new.update(speed=n, speed_integral=n_int)
        if s.valve:
            x, v_int = _pi(T[s.cdu] - rise - p.t_set_cdu, carry["valve_integral"], carry["valve"], p.valve_min,
                           p.valve_max, p.valve_kp, p.valve_ki, p.valve_rate, dt)  # fmt: skip
            new.update(valve=x, valve_integral=v_int)
        if s.pump:  # every flow changes: the whole matrix
            A_base, g_cdu, e_s = _base_matrix(s, p, x if s.valve else None, n)
        elif s.valve:  # only the exchanger's mixing weights change
            A_base, g_cdu, e_s = _with_valve(s, p, A0, x)
        else:
            A_base, g_cdu, e_s = A0, g_cdu0, e_s0
        if s.valve or s.pump:
            new["e_s"] = e_s
        P, clock, u_acc = _accelerators(s, p, T, p_trace)
        A, g = _dry_cooler(s, p, A_base, new_fan)
        f = _heat(s, p, P, g, pumps)
        q_ev = p_ch = jnp.zeros_like(g)
        if chill:
            q_ev, p_ch = evaporator(T, on, g)
            f = f.at[s.fw_supply(0)].add(-q_ev)
        rhs = C / dt * T + f
        T_new = _dense.solve(jnp.diag(C / dt) + A, rhs)
        q_rej, q_in = record(T_new, P, g, pumps)
        new["T"] = T_new
        out = dict(T=T_new, fan=new_fan, P=P, clock=clock, u=u_acc, g=g, q_rej=q_rej + q_ev, q_in=q_in, q_ev=q_ev,
                   p_ch=p_ch, g_cdu=g_cdu, e_s=e_s, valve=x, speed=n)  # fmt: skip
        if chill:
            out["on"] = on
        return new, out

    P0, clock0, u0 = _accelerators(s, p, T0_, p.power[:, 0])
    _, g0 = _dry_cooler(s, p, A0, fan0)
    q_rej0, q_in0 = record(T0_, P0, g0, pumps0)
    t_levels = jnp.arange(1, s.levels, dtype=p.dt.dtype) * dt
    zero = jnp.zeros((), p.dt.dtype)
    carry0 = dict(T=T0_, fan=fan0, integral=fan0)
    if chill:  # off at the start, free to switch on at the first step
        carry0.update(on=zero, since=p.chiller_min_off + zero)
    if s.valve:
        carry0.update(valve=valve0, valve_integral=valve0)
    if s.pump:
        carry0.update(speed=speed0, speed_integral=speed0)
    if s.valve or s.pump:
        carry0["e_s"] = e_s0
    _, o = lax.scan(step, carry0, (p.power[:, 1:].T, t_levels))

    def cat(first, rest):
        return jnp.concatenate([jnp.asarray(first)[None], rest])

    T_all = cat(T0_, o["T"])
    cmds = cat(fan0, o["fan"])
    return Solution(
        T=T_all, fan=_fan_and_flow(p, cmds)[0], dry_cooler_flow=_fan_and_flow(p, cmds)[1], P_acc=cat(P0, o["P"]),
        clock=cat(clock0, o["clock"]),
        utilization=cat(u0, o["u"]), g_dry_cooler=cat(g0, o["g"]), q_rejected=cat(q_rej0, o["q_rej"]),
        q_in=cat(q_in0, o["q_in"]), stored=T_all @ C, g_cdu=cat(g_cdu0, o["g_cdu"]),
        e_secondary=cat(e_s0, o["e_s"]), C=C, chiller_on=cat(zero, o["on"]) if chill else jnp.zeros_like(T_all[:, 0]),
        q_evap=cat(zero, o["q_ev"]), p_chiller=cat(zero, o["p_ch"]), valve=cat(valve0, o["valve"]),
        pump_speed=cat(speed0, o["speed"]),
    )  # fmt: skip


def energy_balance(p: Params, sol: Solution):
    """``(stored change, sum dt (Q_in - Q_rejected) over levels 1..n)``, J: equal
    to rounding for backward Euler (each step's heat is taken at its end)."""
    return sol.stored[..., -1] - sol.stored[..., 0], jnp.sum(p.dt[..., None] * (sol.q_in - sol.q_rejected)[..., 1:], -1)


# ----------------------------------------------------------------------------- report


def _series(s: Static, p: Params, sol: Solution) -> dict:
    """Time series (numpy) of every power and temperature."""
    T = np.asarray(sol.T)
    jn = [s.junction(r) for r in range(s.racks)]
    fs_last, fr_last = s.fw_supply(s.facility_cells - 1), s.fw_return(s.facility_cells - 1)
    p_sec, p_fw = (float(x) for x in _pumps(p))
    speed = np.asarray(sol.pump_speed)
    n = float(p.accelerators)
    P_acc = np.asarray(sol.P_acc)
    P_rack = n * P_acc + float(p.other_power)  # W per rack
    P_chips = n * P_acc.sum(axis=1)
    P_it = P_rack.sum(axis=1)
    fan = np.asarray(sol.fan)
    P_fan = float(p.device.fan_power_rated) * fan**3
    P_chiller = np.asarray(sol.p_chiller)
    P_cooling = P_fan + p_sec + p_fw + P_chiller
    # in-rack conversion losses on the IT power, the overhead on the IT power with its conversion losses (the
    # boundary of the facility model's IT power, so both models give the same site power)
    conv = float(p.conversion_loss)
    P_losses = (conv + float(p.overhead) * (1.0 + conv)) * P_it
    e_s = np.asarray(sol.e_secondary)
    grid, ps, E = grid_view(s, p, P_it + P_cooling + P_losses, P_rack)
    per_rack_store = s.storage and s.storage_level == "rack"
    u = np.clip(np.asarray(sol.utilization), 0, None)
    tokens = float(p.acc.tokens_per_s) * n * np.sum(u * np.asarray(sol.clock), 1)
    return dict(
        T_junction=T[:, jn], T_cold_plate_out=T[:, [s.cold_plate(r, s.cold_plate_cells - 1) for r in range(s.racks)]],
        T_rack_inlet=T[:, [s.supply_pipe(r, s.pipe_cells - 1) for r in range(s.racks)]],
        T_cdu_return=T[:, s.cdu], T_cdu_supply=(1 - e_s) * T[:, s.cdu] + e_s * T[:, fs_last],
        T_facility_supply=T[:, fs_last], T_facility_return=T[:, fr_last],
        P_accelerator=P_acc, P_rack=P_rack, P_chips=P_chips, P_IT=P_it, P_fans=P_fan,
        P_pumps=p_sec * speed**3 + p_fw if s.pump else np.full_like(P_fan, p_sec + p_fw),
        P_chiller=P_chiller, chiller_on=np.asarray(sol.chiller_on),
        Q_evaporator=np.asarray(sol.q_evap), P_cooling=P_cooling, P_losses=P_losses,
        P_facility=P_it + P_cooling + P_losses, P_grid=grid, P_storage=ps.sum(1), E_storage=E.sum(1),
        P_storage_rack=ps if per_rack_store else None, E_storage_rack=E if per_rack_store else None,
        clock=np.asarray(sol.clock), fan_fraction=fan, dry_cooler_flow=np.asarray(sol.dry_cooler_flow),
        Q_in=np.asarray(sol.q_in), Q_rejected=np.asarray(sol.q_rejected), stored_heat=np.asarray(sol.stored),
        tokens_per_s=tokens, valve_opening=np.asarray(sol.valve), pump_speed=speed,
    )  # fmt: skip


def storage_dispatch(power, dt, st: Storage):
    """Smooth a site power series ``power`` (W, shape ``(levels,)``) with storage.

    The grid is asked for the trailing moving average of ``power`` over
    ``window``; the storage covers the difference (plus ``(E - E_initial) /
    recovery_time``, which brings its charge back), clipped to its power limit
    and to what keeps the charge within ``[soc_min, soc_max] x capacity``.
    Charging stores ``sqrt(eff) P dt``, discharging draws ``P dt / sqrt(eff)``.
    Pure JAX (``lax.scan``). Returns ``(grid power, storage power (+ discharge),
    stored energy)``, each ``(levels,)``; level 0 has the storage idle at its
    initial charge.
    """
    n = power.shape[-1]
    csum = jnp.concatenate([jnp.zeros((1,), power.dtype), jnp.cumsum(power)])
    idx = jnp.arange(n)
    steps = jnp.maximum(jnp.round(st.window / dt), 1.0).astype(idx.dtype)
    lo = jnp.maximum(idx - steps + 1, 0)
    mean = (csum[idx + 1] - csum[lo]) / (idx + 1 - lo).astype(power.dtype)
    way = jnp.sqrt(st.efficiency)
    e_min, e_max, e0 = st.soc_min * st.capacity, st.soc_max * st.capacity, st.soc_initial * st.capacity

    def step(E, inputs):
        p, m = inputs
        want = jnp.clip(p - m + (E - e0) / st.recovery_time, -st.power_limit, st.power_limit)
        ps = jnp.minimum(want, jnp.maximum(E - e_min, 0.0) * way / dt)
        ps = jnp.maximum(ps, -jnp.maximum(e_max - E, 0.0) / (way * dt))
        E_new = E - jnp.where(ps > 0, ps / way, ps * way) * dt
        return E_new, (ps, E_new)

    _, (ps, E) = lax.scan(step, e0, (power[1:], mean[1:]))
    ps = jnp.concatenate([jnp.zeros((1,), power.dtype), ps])
    E = jnp.concatenate([e0[None], E])
    return power - ps, ps, E


#: Where the ``[storage]`` sits: one store on the site's power, or one per rack on its rack's power.
STORAGE_LEVELS = ("site", "rack")

#: Frequency bands of the grid report, Hz (a band above the Nyquist frequency is left out).
BANDS = ((0.0, 0.001), (0.001, 0.01), (0.01, 0.1), (0.1, 1.0), (1.0, math.inf))


def band_rms(x, dt: float, bands=BANDS):
    """RMS (units of ``x``) of the fluctuation of ``x`` about its mean in each
    frequency band ``[lo, hi)`` Hz, from the discrete Fourier transform (Parseval:
    the squares sum to the variance of ``x``). Returns ``[(lo, hi, rms), ...]``
    for the bands that hold a frequency of the record, below the Nyquist frequency
    (the last one ends at it)."""
    x = np.asarray(x, np.float64) - np.mean(x)
    n = len(x)
    X = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, dt)
    var = 2.0 * np.abs(X) ** 2 / n**2
    var[0] = 0.0
    if n % 2 == 0:
        var[-1] /= 2.0  # the Nyquist term has no mirror image
    out = []
    nyq = 0.5 / dt
    for lo, hi in bands:
        if lo >= nyq:
            continue
        inside = ((f >= lo) & (f < hi) if hi < nyq else (f >= lo)) & (f > 0)
        if not inside.any():
            continue  # no frequency of this record falls in the band (the trace is too short)
        out.append((lo, min(hi, nyq), float(np.sqrt(var[inside].sum()))))
    return out


def rack_store_multiplier(p: Params) -> float:
    """Site power per watt a rack draws: ``1 + c + o (1 + c)`` with the
    conversion losses ``c`` and the overhead ``o`` counted on IT power. A rack
    store on the rack's DC bus lowers the site's draw by this much per watt of
    discharge (its losses and overhead follow the smoothed draw)."""
    conv = float(p.conversion_loss)
    return 1.0 + conv + float(p.overhead) * (1.0 + conv)


def grid_view(s: Static, p: Params, site_power, rack_power):
    """``(grid power (levels,), storage power, stored energy)`` (numpy; the
    last two ``(levels, stores)``: one store at the site level, one per rack
    at the rack level, where each store smooths its rack's power ``rack_power``
    ``(levels, racks)`` and the grid draws the site power less every rack's
    discharge times :func:`rack_store_multiplier`); without ``[storage]`` the
    grid draws the site power itself."""
    if not s.storage:
        z = np.zeros((len(site_power), 1))
        return site_power.copy(), z, z
    if s.storage_level == "rack":
        dispatch = jit(jax.vmap(storage_dispatch, (1, None, None), 1))
        _, ps, E = (np.asarray(a) for a in dispatch(jnp.asarray(rack_power), p.dt, p.storage))
        return site_power - rack_store_multiplier(p) * ps.sum(1), ps, E
    g, ps, E = jit(storage_dispatch)(jnp.asarray(site_power), p.dt, p.storage)
    return np.asarray(g), np.asarray(ps)[:, None], np.asarray(E)[:, None]


def _grid_report(s: Static, p: Params, ser: dict) -> dict[str, Output]:
    dt = float(p.dt)
    fac, grid = ser["P_facility"], ser["P_grid"]
    mean = float(np.mean(grid[1:]))
    out = {
        "P_grid_peak": Output(float(grid.max()), "W", "grid power peak"),
        "P_grid_peak_to_average": Output(float(grid.max()) / mean, "1", "grid peak / mean over the trace"),
        "P_grid_ramp_max": Output(float(np.abs(np.diff(grid)).max() / dt / 1e6), "MW/s", "largest grid ramp"),
    }
    for lo, hi, rms in band_rms(grid, dt):
        out[f"P_grid_rms_{lo:g}_{hi:g}_Hz"] = Output(
            rms, "W", f"RMS of the grid power swing between {lo:g} and {hi:g} Hz"
        )
    if s.storage:
        e_fac = float(np.sum(fac[1:]) * dt)
        e_grid = float(np.sum(grid[1:]) * dt)
        ramp_fac = float(np.abs(np.diff(fac)).max() / dt / 1e6)
        stores = s.racks if s.storage_level == "rack" else 1
        cap = float(p.storage.capacity) * stores
        # the stores' charge change as the grid sees it (at the rack level with the losses and overhead on it)
        m = rack_store_multiplier(p) if s.storage_level == "rack" else 1.0
        dE = m * float(ser["E_storage"][-1] - ser["E_storage"][0])
        # each store's charge against its own capacity (per rack at the rack level)
        E_each = ser["E_storage_rack"] if s.storage_level == "rack" else ser["E_storage"][:, None]
        out.update({
            "storage_peak_reduction": Output(float(fac.max() - grid.max()), "W", "site peak minus grid peak"),
            "storage_ramp_reduction": Output(ramp_fac - out["P_grid_ramp_max"].value, "MW/s",
                                             "largest site ramp minus largest grid ramp"),
            "storage_energy_cost": Output(e_grid - e_fac, "J", "grid minus site energy (losses + charge change)"),
            "storage_losses": Output(e_grid - e_fac - dE, "J", "round-trip losses over the trace, as the grid sees "
                                     "them (at the rack level with the conversion losses and overhead on them)"),
            "storage_soc_min": Output(float(E_each.min()) * stores / cap, "1", "lowest state of charge of a store"),
            "storage_soc_max": Output(float(E_each.max()) * stores / cap, "1", "highest state of charge of a store"),
            "storage_capacity": Output(cap, "J", "storage capacity, every store together"),
            "storage_power_limit": Output(float(p.storage.power_limit) * stores, "W",
                                          "storage power limit, every store together"),
            "storage_stores": Output(stores, "1", "stores: 1 at the site level, one per rack at the rack level"),
            "storage_soc_min_bound": Output(float(p.storage.soc_min), "1", "lowest state of charge allowed"),
            "storage_soc_max_bound": Output(float(p.storage.soc_max), "1", "highest state of charge allowed"),
        })  # fmt: skip
    return out


def ride_through(times, t_junction, start: float, limit: float):
    """Time (s) from ``start`` until the hottest junction first reaches
    ``limit`` (K), linearly interpolated between levels; ``None`` if it does not
    within the trace. ``t_junction``: shape ``(levels, racks)``."""
    tj = np.max(np.asarray(t_junction), axis=1)
    after = np.nonzero((times > start) & (tj >= limit))[0]
    if len(after) == 0:
        return None
    i = int(after[0])
    if tj[i - 1] >= limit:  # already at the limit when the event began
        return 0.0
    frac = (limit - tj[i - 1]) / (tj[i] - tj[i - 1])
    return float(times[i - 1] + frac * (times[i] - times[i - 1]) - start)


def demand_response_report(s: Static, p: Params, sol: Solution, base: Solution, limit: float) -> dict[str, Output]:
    """Ride-through and energy shifted by the ``[demand_response]`` event,
    against ``base``: the same trace without the event."""
    ev, bs = _series(s, p, sol), _series(s, p, base)
    dt = float(p.dt)
    times = np.arange(s.levels) * dt
    start, end = float(p.dr_start), float(p.dr_end)
    inside = (times > start) & (times <= end)
    later = times > end
    ride = ride_through(times, np.asarray(sol.T)[:, [s.junction(r) for r in range(s.racks)]], start, limit)
    i_end = int(np.nonzero(inside)[0][-1])
    out = {
        "dr_limit_reached": Output(ride is not None, "", "a junction reached its limit after the event began"),
        "dr_ride_through": Output(ride if ride is not None else float(times[-1] - start), "s",
                                  "time from the event start until a junction reaches its limit "
                                  "(if not reached: until the trace ends)"),
        "dr_T_junction_max": Output(float(ev["T_junction"][inside].max()) - T0, "degC",
                                    "hottest junction during the event"),
        "dr_cooling_energy_shifted": Output(float(np.sum((bs["P_cooling"] - ev["P_cooling"])[inside]) * dt), "J",
                                            "cooling energy not drawn during the event (vs no event)"),
        "dr_cooling_energy_rebound": Output(float(np.sum((ev["P_cooling"] - bs["P_cooling"])[later]) * dt), "J",
                                            "extra cooling energy drawn after the event, within the trace"),
        "dr_site_energy_shifted": Output(float(np.sum((bs["P_facility"] - ev["P_facility"])[inside]) * dt), "J",
                                         "site energy not drawn during the event (vs no event; includes leakage)"),
        "dr_heat_stored": Output(float(ev["stored_heat"][i_end] - bs["stored_heat"][i_end]), "J",
                                 "extra heat in the masses at the event's end"),
        "dr_start": Output(start, "s", "event start"),
        "dr_end": Output(end, "s", "event end"),
    }  # fmt: skip
    return out


def report(s: Static, p: Params, sol: Solution) -> dict[str, Output]:
    """Headline numbers (unbatched)."""
    ser = _series(s, p, sol)
    dt = float(p.dt)
    t = np.arange(s.levels) * dt
    tj = ser["T_junction"]
    i_peak = np.unravel_index(np.argmax(tj), tj.shape)
    rate = np.abs(np.diff(tj, axis=0)).max() / dt
    e_fac = float(np.sum(ser["P_facility"][1:]) * dt)
    e_it = float(np.sum(ser["P_IT"][1:]) * dt)
    tokens = float(np.sum(ser["tokens_per_s"][1:]) * dt)
    ramp = np.abs(np.diff(ser["P_facility"])).max() / dt
    stored, net = (float(x) for x in energy_balance(p, sol))
    out = {
        "T_junction_max": Output(float(tj.max()) - T0, "degC", "hottest junction over the trace"),
        "T_junction_max_time": Output(float(t[i_peak[0]]), "s", "when the hottest junction peaks"),
        "T_junction_max_rack": Output(int(i_peak[1]), "", "rack of the hottest junction (from 0)"),
        "dTj_dt_max": Output(float(rate), "K/s", "largest junction rate of change"),
        "T_facility_supply_max": Output(float(ser["T_facility_supply"].max()) - T0, "degC", "warmest facility supply"),
        "T_cdu_supply_max": Output(float(ser["T_cdu_supply"].max()) - T0, "degC", "warmest secondary (CDU) supply"),
        "P_facility_peak": Output(float(ser["P_facility"].max()), "W", "site power peak (IT + cooling + losses)"),
        "P_facility_mean": Output(e_fac / (t[-1]), "W", "site power averaged over the trace"),
        "P_facility_ramp_max": Output(float(ramp), "W/s", "largest site power ramp"),
        "E_facility": Output(e_fac, "J", "site energy over the trace"),
        "E_IT": Output(e_it, "J", "IT energy over the trace"),
        "heat_stored_change": Output(stored, "J", "change of the heat stored in the masses"),
        "energy_residual": Output(abs(stored - net) / max(abs(net), float(np.sum(ser["Q_in"][1:]) * dt)), "1",
                                  "|stored change - (heat in - rejected)| / heat in"),
        "fan_fraction_max": Output(float(ser["fan_fraction"].max()), "1", "highest dry-cooler fan speed"),
        "dry_cooler_bypass_max": Output(1.0 - float(ser["dry_cooler_flow"].min()), "1",
                                        "largest share of the facility water bypassing the dry cooler"),
        "clock_min": Output(float(ser["clock"].min()), "1", "lowest clock fraction (below 1: throttled)"),
    }  # fmt: skip
    if tokens > 0:
        out["tokens"] = Output(tokens, "", "tokens over the trace")
        out["J_per_token_facility"] = Output(e_fac / tokens, "J", "site energy per token over the trace")
        out["J_per_token_IT"] = Output(e_it / tokens, "J", "IT energy per token over the trace")
    out["E_pumps"] = Output(float(np.sum(ser["P_pumps"][1:]) * dt), "J", "pump energy over the trace")
    if s.pump:
        rise = (ser["T_cdu_return"] - ser["T_cdu_supply"])[1:] - float(p.pump_dt_set)
        out.update({
            "pump_speed_min": Output(float(ser["pump_speed"].min()), "1", "lowest secondary pump speed"),
            "pump_speed_max": Output(float(ser["pump_speed"].max()), "1", "highest secondary pump speed"),
            "dT_secondary_error_max": Output(float(np.abs(rise).max()), "K",
                                             "largest |secondary temperature rise - its setpoint| over the trace"),
        })  # fmt: skip
    if s.valve:
        sup = ser["T_cdu_supply"][1:] - float(p.t_set_cdu)
        out.update({
            "valve_opening_min": Output(float(ser["valve_opening"].min()), "1", "smallest CDU valve opening"),
            "valve_opening_max": Output(float(ser["valve_opening"].max()), "1", "largest CDU valve opening"),
            "T_cdu_supply_error_max": Output(float(np.abs(sup).max()), "K",
                                             "largest |secondary supply - its setpoint| over the trace"),
        })  # fmt: skip
    if s.chiller != "none":
        on = ser["chiller_on"]
        out.update({
            "chiller_on_time": Output(float(np.sum(on[1:]) * dt), "s", "time the trim chiller ran"),
            "chiller_starts": Output(int(np.sum(np.diff(on) > 0.5)), "", "times the chiller switched on"),
            "E_chiller": Output(float(np.sum(ser["P_chiller"][1:]) * dt), "J",
                                "chiller electric energy (compressor + condenser fans)"),
            "P_chiller_max": Output(float(ser["P_chiller"].max()), "W", "largest chiller electric power"),
            "Q_evaporator_max": Output(float(ser["Q_evaporator"].max()), "W", "largest chiller evaporator load"),
        })  # fmt: skip
    out.update(_grid_report(s, p, ser))
    out["converged"] = Output(bool(np.all(np.isfinite(np.asarray(sol.T)))), "", "every value finite")
    out["iterations"] = Output(s.levels - 1, "", "time steps")
    return out


def check(s: Static, p: Params, sol: Solution) -> None:
    """The protocol's check: :func:`check_bounded`."""
    check_bounded(s, p, sol)


def check_bounded(s: Static, p: Params, sol: Solution) -> None:
    """Non-finite values, energy not closing, or heat-added coolant colder than the air: SolveError (exit 3)."""
    T = np.asarray(sol.T)
    if not np.all(np.isfinite(T)) or not np.all(np.isfinite(np.asarray(sol.P_acc))):
        bad = int(np.argmax(~np.all(np.isfinite(T), axis=1)))
        raise SolveError(f"transient hall: non-finite temperature at step {bad}; shorten [trace] step")
    stored, net = (float(x) for x in energy_balance(p, sol))
    q_in = float(np.sum(np.asarray(sol.q_in)[1:]) * float(p.dt))
    if abs(stored - net) > 1e-8 * max(q_in, 1.0):
        raise SolveError(f"transient hall: energy does not close ({stored - net:.3e} J of {q_in:.3e} J heat in)")
    if T.min() < float(p.t_ambient) - 1e-6:
        raise SolveError(f"transient hall: a temperature ({T.min() - T0:.3f} degC) fell below the ambient "
                         f"({float(p.t_ambient) - T0:.3f} degC) with heat only added")  # fmt: skip


# ----------------------------------------------------------------------------- run


def run(case: HallCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    s, p = build(case)
    progress.phase("solve")
    sol = jit(solve, static_argnums=0)(s, p)
    progress.phase("write", ready=sol)
    check_bounded(s, p, sol)
    out = report(s, p, sol)
    summary = {"case": Quantity(case.name, "", "case name")}
    summary.update({k: Quantity(o.value, o.units, o.description) for k, o in out.items()})
    summary["T_junction_limit"] = Quantity(case.junction_limit - T0, "degC", "junction limit")
    base = None
    if s.demand_response:
        progress.phase("solve")
        base = jit(solve, static_argnums=0)(s, p._replace(dr_start=p.dr_start * 0 - 1.0, dr_end=p.dr_end * 0 - 1.0))
        check_bounded(s, p, base)
        dr = demand_response_report(s, p, sol, base, case.junction_limit)
        summary.update({k: Quantity(o.value, o.units, o.description) for k, o in dr.items()})
    summary["time_step"] = Quantity(float(p.dt), "s", "trace time step")
    summary["duration"] = Quantity(float(case.times[-1]), "s", "trace length")
    ser = _series(s, p, sol)
    units = dict(T_="degC", P_="W", Q_="W")
    desc = {
        "T_junction": "junction temperature per rack", "T_cold_plate_out": "coolant leaving the cold plates per rack",
        "T_rack_inlet": "coolant entering the rack's cold plates",
        "T_cdu_return": "CDU secondary volume (mixed return)",
        "T_cdu_supply": "CDU secondary supply", "T_facility_supply": "facility water entering the CDU",
        "T_facility_return": "facility water entering the dry cooler", "P_accelerator": "one accelerator per rack",
        "P_rack": "rack IT power (accelerators + other)", "P_chips": "all accelerators", "P_IT": "IT power",
        "P_fans": "dry-cooler fans", "P_pumps": "secondary + facility pumps", "P_cooling": "fans + pumps + chiller",
        "P_chiller": "trim chiller electric power (compressor + condenser fans)",
        "chiller_on": "1 while the trim chiller runs", "Q_evaporator": "heat the chiller takes from the facility water",
        "P_losses": "conversion losses and overhead", "P_facility": "site power drawn (IT + cooling + losses)",
        "clock": "clock fraction per rack", "fan_fraction": "dry-cooler fan speed",
        "Q_in": "heat into the water (chips + pump work)", "Q_rejected": "heat rejected (dry cooler + chiller)",
        "stored_heat": "heat stored in all masses relative to 0 K",
        "P_grid": "power drawn from the grid (site power less storage discharge; at the rack level the discharge "
                  "with its conversion losses and overhead)",
        "P_storage": "storage power, + discharging (every store)", "E_storage": "energy in the storage (every store)",
        "P_storage_rack": "each rack's storage power, + discharging", "E_storage_rack": "energy in each rack's storage",
        "tokens_per_s": "hall throughput",
        "valve_opening": "CDU three-way valve: fraction of the facility water through the heat exchanger",
        "pump_speed": "secondary pump speed (fraction of the rated flow)",
        "dry_cooler_flow": "share of the facility water through the dry cooler (below the lowest fan speed the rest "
                           "bypasses it)",
    }  # fmt: skip
    groups = {"series": {"time": Series(case.times, "s", "time")}}
    for k, v in ser.items():
        u = next((uu for pre, uu in units.items() if k.startswith(pre)), "1")
        if v is None:
            continue  # per-rack storage series without a rack-level storage
        if k in ("stored_heat", "E_storage", "E_storage_rack"):
            u = "J"
        if k == "tokens_per_s":
            u = "1/s"
        if k in ("P_chiller", "chiller_on", "Q_evaporator") and s.chiller == "none":
            continue
        if (k == "valve_opening" and not s.valve) or (k == "pump_speed" and not s.pump):
            continue
        data = v - T0 if u == "degC" else v
        groups["series"][k] = Series(np.asarray(data, np.float64), u, desc[k])
    if base is not None:
        bs = _series(s, p, base)
        groups["series"]["T_junction_max_baseline"] = Series(bs["T_junction"].max(axis=1) - T0, "degC",
                                                             "hottest junction without the demand-response event")
        groups["series"]["P_cooling_baseline"] = Series(bs["P_cooling"], "W", "cooling power without the event")
    limits = {
        "T_junction_limit": Series(np.asarray(case.junction_limit - T0), "degC", "junction limit"),
        "T_supply_setpoint": Series(np.asarray(float(p.t_set) - T0), "degC", "facility supply setpoint"),
        "T_ambient": Series(np.asarray(float(p.t_ambient) - T0), "degC", "ambient dry bulb"),
    }
    if s.valve:
        limits["T_cdu_supply_setpoint"] = Series(np.asarray(float(p.t_set_cdu) - T0), "degC",
                                                 "secondary supply setpoint of the CDU valve")  # fmt: skip
    solver = {"converged": np.asarray(out["converged"].value), "iterations": np.asarray(s.levels - 1),
              "energy_residual": np.asarray(out["energy_residual"].value)}  # fmt: skip
    write_series_results(folder, groups={**groups, "limits": limits}, case_text=case_file.text,
                         case_parsed=case.as_dict(), solver=solver, summary=summary)  # fmt: skip
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary

