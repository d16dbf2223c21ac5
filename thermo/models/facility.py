"""``facility`` cases: from heat to tokens.

A hall of liquid-cooled accelerators, its coolant distribution unit (CDU),
facility-water loop and heat-rejection plant (dry cooler, or open/closed wet
tower, with an optional trim chiller and heat export), at one ambient design
point or over an hourly weather year. For every hour the coupled junction
temperature / chip power / coolant temperature problem is solved
(:func:`kernels.plant.coupled.solve_operating_point`), and the energy each token costs
is reported: J/token for IT, cooling and the whole facility, tokens per kWh,
partial PUE and PUE, water use, free-cooling hours.

The model follows :mod:`aidc_thermo.models.protocol`: :func:`build` gives a
hashable :class:`Static` and a :class:`Params` pytree (the kernel's
:class:`kernels.plant.coupled.Facility`, the hourly ambient and utilization);
:func:`solve` solves every hour of a design in JAX, with the coolants'
properties evaluated at the design's own supply setpoint, so a batch of
designs (the supply-temperature sweep of ``thermo run``, the grid of
``thermo optimize``) is one compiled call. The accounting (J/token, PUE,
annual totals) is :mod:`aidc_thermo.models.accounting`.

With ``[rack]`` the hall's racks are a ``rack_network`` case
(:mod:`aidc_thermo.models.rack`): its hydraulics are solved once per design,
and every hour each accelerator plate gets its own inlet temperature and
junction temperature (:func:`kernels.plant.coupled.solve_rack_operating_point`;
:func:`rack_plates`); the report names the worst plate.

``thermo run`` writes the report; ``thermo optimize`` finds the facility-water
supply temperature and coolant flow that minimize facility J/token subject to a
junction-temperature limit (see :func:`optimize`).

Boundaries (stated in the summary next to each number):

* IT: accelerators (idle + dynamic + leakage), other IT loads per accelerator
  (CPUs, switches, NICs) and in-rack power conversion losses;
* cooling: secondary (TCS) and facility-water pumps, heat-rejection fans,
  chiller compressor, condenser-side heat rejection, and room-air cooling of the
  IT heat that does not go to liquid;
* facility: IT + cooling + overhead (``[facility] overhead_fraction`` of IT power:
  UPS and distribution losses, lighting).

Every key and its default is listed in ``docs/case-files.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from aidc_thermo import bounds, progress
from aidc_thermo.compile_options import jit
from aidc_thermo.errors import FlowOutsideCurves, SolveError
from aidc_thermo.io.case import CaseError, CaseFile, Table, read_header
from aidc_thermo.io.curves import read_curves, require_coolant
from aidc_thermo.io.results import Quantity, Series, write_series_results
from aidc_thermo.io.weather import Weather, read_weather
from aidc_thermo.models import precision_dtype

__all__ = [
    "CASE_TYPE",
    "FacilityCase",
    "Params",
    "Solution",
    "Static",
    "build",
    "check",
    "optimize",
    "parse",
    "design_bytes",
    "report",
    "run",
    "screen",
    "solve",
    "stack_params",
]

CASE_TYPE = "facility"
PROTOCOL = True
T0 = 273.15
#: Smallest junction-temperature tolerance (K) per precision: about 300 K times
#: machine epsilon (float32 1.2e-7, float64 2.2e-16), with a margin.
TOLERANCE_FLOOR_K = {"float32": 1e-4, "float64": 1e-11}


# --------------------------------------------------------------------------- case


@dataclass(frozen=True)
class OptimizeSettings:
    supply_bounds: tuple[float, float]  # K
    flow_scale_bounds: tuple[float, float]
    junction_limit: float  # K
    grid: tuple[int, int]
    #: the cold plate's geometry, optimized with the plant when ``[cold_plate] case`` names a compact plate:
    #: ((name, low m, high m), ...) for ``channel_width`` and/or ``fin_thickness``; () when not
    geometry: tuple = ()


@dataclass(frozen=True)
class FacilityCase:
    """A parsed facility case (SI units). ``params`` holds the traced numbers of
    :class:`kernels.plant.coupled.Facility` by field name (nested dicts for the
    accelerator, cold plate, device and chiller)."""

    name: str
    description: str
    params: dict
    device: str
    arrangement: str
    chiller: str
    weather: Weather
    hourly: bool
    utilization_by_hour: tuple[float, ...] | None
    sweep_supply: tuple[float, ...]
    optimize: OptimizeSettings
    precision: str
    tolerance: float | None
    max_iterations: int
    plots: bool
    notes: tuple[str, ...]
    # inputs of the ratings computed with JAX kernels at build (:func:`rated_params`),
    # not at parse, so that thermo check starts no JAX and solves nothing
    ratings: dict = dataclasses.field(default_factory=dict)
    # the coolants of the secondary loop and of the facility water: their
    # properties are evaluated inside solve at the supply setpoint being solved
    coolant_secondary: object = None
    coolant_facility_water: object = None
    #: the racks named by ``[rack]`` (:class:`RackLink`), or None
    rack: object = None
    #: ``[cold_plate] case``'s :class:`~aidc_thermo.curve_cache.PlateReference`, or None
    plate: object = None

    def as_dict(self) -> dict:
        d = asdict(
            dataclasses.replace(self, coolant_secondary=None, coolant_facility_water=None, rack=None, plate=None)
        )
        d.pop("coolant_secondary")
        d.pop("coolant_facility_water")
        d.pop("rack")
        d.pop("plate")
        if self.rack is not None:
            d["rack"] = {"case": self.rack.file, "racks": self.rack.racks, "accelerator_plate": self.rack.plate,
                         "rack_case": self.rack.case.as_dict()}  # fmt: skip
        d["weather"] = {"source": self.weather.source, "hours": len(self.weather)}
        return d


def _coolant_props(table: Table | None, t_ref: float, default_fluid: str = "water"):
    from aidc_thermo.coolant import make_coolant, read_coolant

    coolant = make_coolant(default_fluid) if table is None else read_coolant(table)
    return float(coolant.density(t_ref)), float(coolant.cp(t_ref)), coolant


#: kernels.plant.DEVICE_KINDS and kernels.plant.hx.ARRANGEMENTS, repeated so that parsing
#: imports no JAX (test_facility checks they agree)
DEVICE_KINDS = ("dry_cooler", "closed_tower", "open_tower")
ARRANGEMENTS = ("counterflow", "parallel", "crossflow_unmixed", "crossflow_cmax_mixed", "crossflow_cmin_mixed")


#: Property reference temperatures above the facility-water supply (K): the
#: facility water is evaluated at supply + 8 K, the secondary loop at supply + 11 K.
_FW_REF_RISE, _TCS_REF_RISE = 8.0, 11.0


def _supply_range(sec_table: Table | None, fw_table: Table | None) -> tuple[float, float, str]:
    """Facility-water supply temperatures (K) for which both loops stay inside
    their coolants' property fits: ``(low, high, text)``."""
    from aidc_thermo.coolant import make_coolant, read_coolant

    def coolant(t):  # read without marking keys (the tables are read again below)
        return make_coolant("water") if t is None else read_coolant(Table(dict(t.data), t.file, t.path))

    sec, fw = coolant(sec_table), coolant(fw_table)
    lo = max(sec.t_min, fw.t_min)
    hi = min(sec.t_max - _TCS_REF_RISE, fw.t_max - _FW_REF_RISE)
    text = (
        f"{lo - T0:.0f}..{hi - T0:.0f} degC: the facility water ({fw.name}, properties at supply + 8 K) and the "
        f"secondary loop ({sec.name}, at supply + 11 K) must stay liquid, inside their property fits "
        f"{fw.t_min - T0:.0f}..{fw.t_max - T0:.0f} degC"
    )
    return lo, hi, text


def _check_supply(t: Table, key: str, value: float, supply_range) -> float:
    lo, hi, text = supply_range
    if not lo - 1e-9 <= value <= hi + 1e-9:
        raise t.error(key, f"{value - T0:.4g} degC is outside {text}; no answer is computed there")
    return value


#: Largest number of transfer units accepted for a rated heat exchanger: an
#: approach that needs more is not reachable by a real exchanger (plate heat
#: exchangers of CDUs run at NTU of about 2 to 8; effectiveness at NTU 50 is
#: within 1e-20 of its limit for balanced counterflow).
MAX_NTU = 50.0


def _counterflow_ntu(eps: float, cr: float) -> float:
    """NTU of a counterflow exchanger of effectiveness ``eps`` and capacity
    ratio ``cr`` (closed form, the inverse of kernels.plant.hx's counterflow law;
    no JAX, so that parsing stays light)."""
    if not 0.0 <= eps < 1.0:
        return math.inf
    if abs(1.0 - cr) < 1e-12:
        return eps / (1.0 - eps)
    return math.log((1.0 - eps * cr) / (1.0 - eps)) / (1.0 - cr)


def _check_ntu(file, key: str, approach: float, ntu: float) -> None:
    if not (math.isfinite(ntu) and ntu <= MAX_NTU):
        raise CaseError(
            file,
            key,
            f"{approach:g} K is not reachable: it needs {ntu:.3g} transfer units (NTU = UA / C_min), more than the "
            f"{MAX_NTU:g} any real heat exchanger reaches; raise the approach",
        )


#: Largest [optimize] grid per axis (each point solves every hour).
MAX_GRID = 100


def _require_memory(path, hours: int, points: int, max_iter: int) -> None:
    """Refuse (CaseError) a run too large for this machine, before any array
    exists: every hour at every supply setpoint (the case's and the sweep's)
    is solved at once, each with ~60 operating-point quantities and a Newton
    residual history of ``max_iterations + 1``, 8 B each, x4 for JAX
    intermediates."""
    from aidc_thermo import resources

    solves = resources.require_count(path, ("ambient.weather", "sweep.supply_temperatures"), hours * points, "solves")
    per = 4 * 8 * (60 + max_iter + 1)
    resources.require_memory(
        path,
        CASE_TYPE,
        [
            (("solver.max_iterations", "ambient.weather", "sweep.supply_temperatures"), solves * per,
             f"{hours:,} hours x {points} supply setpoints x 4 x 8 B x (60 + max_iterations + 1)"),
        ],
    )  # fmt: skip




@dataclass(frozen=True)
class RackLink:
    """The racks of a hall named by ``[rack]``: the parsed rack case
    (:class:`aidc_thermo.models.rack.RackCase`), its path as written
    (``file``), how many racks, the accelerator plate type's name, the
    positions of its plates among the rack's plates (``accelerators``, in the
    rack network's plate order) and of the other plates (``fixed``), their
    power per rack (W), and the accelerator plate's curve as the kernel's cold
    plate parameters (``plate_curve``). When the rack case has a ``[row]``,
    ``row_racks`` is its number of racks (1 without): one network holds the
    whole row, and the hall is ``racks / row_racks`` such rows."""

    case: object
    file: str
    racks: int
    plate: str
    accelerators: tuple[int, ...]
    fixed: tuple[int, ...]
    fixed_power: float
    plate_curve: dict
    row_racks: int = 1

    @property
    def rows(self) -> int:
        """Copies of the rack case's network in the hall (racks, or rows of racks)."""
        return self.racks // self.row_racks


def _read_rack(rk: Table, case_file: CaseFile) -> RackLink:
    """Read ``[rack]``: the rack case it names (parsed by the rack model; its
    own errors name its own file), the number of racks and the accelerator
    plate type."""
    from aidc_thermo.io.case import load
    from aidc_thermo.models import rack as rack_model

    raw = rk.raw("case")
    if not isinstance(raw, str) or not raw.strip():
        raise rk.error("case", f"expected the path of a rack_network case file (relative to this case), got {raw!r}")
    path = rk.path_value("case", case_file.directory)
    rcf = load(path)
    rtype = rcf.data.get("case", {}).get("type") if isinstance(rcf.data.get("case"), dict) else None
    if rtype != rack_model.CASE_TYPE:
        raise rk.error("case", f"{raw} is a case of type {rtype!r}, expected a {rack_model.CASE_TYPE!r} case")
    rcase = rack_model.parse(rcf)
    racks = rk.integer("racks", minimum=1)
    row_racks = rcase.n_racks  # the racks of its [row] (1 without)
    if racks % row_racks:
        raise rk.error(
            "racks",
            f"{racks} racks is not a whole number of rows: {raw} is a row of {row_racks} racks ([row] racks), so "
            f"the hall holds identical rows of {row_racks}; give a multiple of {row_racks} (the hall's racks, not "
            "its rows)",
        )
    names = [p.name for p in rcase.plate_types]
    plate = rk.string("accelerator_plate")
    if plate not in names:
        raise rk.error("accelerator_plate", f"{plate!r} is not a plate type of {raw} (its types: {', '.join(names)})")
    swap = None
    if rk.has("accelerator_plate_case"):  # the accelerator plate's curves from a plate case, the rack file as it is
        from aidc_thermo import curve_cache

        swap = curve_cache.reference(rk, "accelerator_plate_case", case_file.directory)
        require_coolant(swap, rcase.coolant, rk, f"the rack's ({raw})", key="accelerator_plate_case")
    rk.finish()
    if swap is not None:
        rcase = _with_plate_curves(rcase, plate, swap.curves())
    order = [p for t in rcase.trays for br in rcase.tray(t).branches for p in br]  # rack network's plate order
    acc = tuple(i for i, p in enumerate(order) if p == plate)
    if not acc:
        raise rk.error("accelerator_plate", f"no tray of {raw} holds a {plate!r} plate")
    fixed = tuple(i for i, p in enumerate(order) if p != plate)
    fixed_power = float(sum(rcase.plate(order[i]).power for i in fixed))
    pt = rcase.plate(plate)
    if pt.curves is not None:
        curve = dict(table_flow=pt.curves.flow, table_r=pt.curves.r_max, table_dp=pt.curves.dp)
    elif len(pt.resistance_flow) >= 2:
        q = np.asarray(pt.resistance_flow)
        curve = dict(table_flow=q, table_r=np.asarray(pt.resistance),
                     table_dp=pt.dp_rated * (q / pt.flow_rated) ** pt.dp_exponent)  # fmt: skip
    else:
        curve = dict(r_base=pt.resistance[0], r_flow=0.0, r_exponent=0.0, dp_ref=pt.dp_rated,
                     dp_exponent=pt.dp_exponent, q_ref=pt.flow_rated)  # fmt: skip
    return RackLink(rcase, raw, racks, plate, acc, fixed, fixed_power, curve, row_racks)


def _with_plate_curves(rcase, name: str, curves):
    """The rack case with plate type ``name``'s dp(q) and R_max(q) taken from
    ``curves`` (as the rack model reads a plate type's ``curves`` or ``case``)."""
    from aidc_thermo.models import rack as rack_model

    old = rcase.plate(name)
    q = curves.flow
    new = rack_model.PlateType(name, old.power, curves.dp[0], q[0], 2.0, q, curves.r_max, old.junction_limit, curves,
                               "rack.accelerator_plate_case")  # the key in the hall's file
    return dataclasses.replace(rcase, plate_types=tuple(new if p.name == name else p for p in rcase.plate_types))


_PARAMETRIC_PLATE_KEYS = (
    "reference_flow",
    "resistance_base",
    "resistance_flow",
    "resistance_exponent",
    "pressure_drop",
    "pressure_drop_exponent",
)



def read_chiller_cop(t, *, condenser_approach: float, reference_cop: float | None) -> dict:
    """The COP keys of a ``[chiller]`` table (Carnot fraction, evaporator and
    condenser approaches, DOE-2 reference COP, minimum lift, condenser fan and
    pump power per watt rejected), as the ``plant.chiller_cop`` parameters;
    shared by the steady facility and the transient hall, which differ only in
    the condenser-approach and reference-COP defaults."""
    return dict(
        carnot_fraction=t.number("carnot_fraction", default=0.55, minimum=0.05, maximum=1.0),
        dt_evap=t.quantity("evaporator_approach", "temperature_difference", default=2.0, nonnegative=True),
        dt_cond=t.quantity("condenser_approach", "temperature_difference", default=condenser_approach,
                           nonnegative=True),  # fmt: skip
        cop_ref=t.number("reference_cop", default=reference_cop, minimum=0.5, maximum=30.0),
        lift_min=t.quantity("minimum_lift", "temperature_difference", default=1.0, positive=True),
        cond_power_per_w=t.number("condenser_power_per_heat", default=0.02, minimum=0.0, maximum=0.5),
    )


def parse(case_file: CaseFile) -> FacilityCase:
    """Read and validate a ``facility`` case (raises :class:`CaseError`).

    Everything is read and checked here except the heat-rejection device's
    rating (its UA at the rated approach, and whether that approach is
    reachable with the air flow), which needs the psychrometric and
    heat-exchanger kernels: :func:`rated_params` computes it when the case is
    built, and raises :class:`CaseError` naming the key there."""
    root = Table(case_file.data, case_file.path)
    name, description = read_header(root, CASE_TYPE)
    notes: list[str] = []

    # ----------------------------------------------------------------- IT
    it = root.table("it")
    rk = root.table("rack", default=None)
    rack_link = None if rk is None else _read_rack(rk, case_file)
    # required without [rack]; with it, optional (the racks give the count)
    if rack_link is None:
        n_acc = it.integer("accelerators", minimum=1)
    else:
        n_acc = it.integer("accelerators", minimum=1, default=None)
    if rack_link is not None:
        n_rack_acc = rack_link.racks * len(rack_link.accelerators)
        if n_acc is not None and n_acc != n_rack_acc:
            raise it.error(
                "accelerators",
                f"{n_acc} does not match the racks: [rack] racks = {rack_link.racks} x "
                f"{len(rack_link.accelerators)} '{rack_link.plate}' plates per rack in {rack_link.file} = "
                f"{n_rack_acc}; give {n_rack_acc} or leave the key out",
            )
        n_acc = n_rack_acc
    acc = dict(
        p_idle=it.quantity("idle_power", "power", nonnegative=True),
        p_dynamic=it.quantity("dynamic_power", "power", nonnegative=True),
        leak_ref=it.quantity("leakage_power", "power", nonnegative=True),
        t_leak_ref=it.quantity("leakage_reference_temperature", "temperature"),
        leak_beta=math.log(2.0) / it.quantity("leakage_doubling", "temperature_difference", positive=True),
        t_throttle=it.quantity("throttle_temperature", "temperature"),
        throttle_span=it.quantity("throttle_span", "temperature_difference", default=15.0, positive=True),
        clock_min=it.number("min_clock", default=0.5, minimum=0.05, maximum=1.0),
        dyn_clock_exponent=it.number("dynamic_clock_exponent", default=1.0, minimum=0.0, maximum=4.0),
        tokens_per_s=it.number("tokens_per_second", minimum=0.0),
        ramp_smoothing=0.1,
    )
    if acc["tokens_per_s"] <= 0:
        raise it.error("tokens_per_second", "must be positive (tokens/s per accelerator at full load)")
    has_u, has_prof = it.has("utilization"), it.has("utilization_by_hour")
    if has_u == has_prof:
        raise it.error(None, "give exactly one of 'utilization' or 'utilization_by_hour'")
    if has_u:
        utilization = it.number("utilization", minimum=0.0, maximum=1.0)
        if utilization <= 0:
            raise it.error(
                "utilization", "must be above 0: at zero load no token is made, so energy per token has no value"
            )
        profile = None
    else:
        profile = it.quantities("utilization_by_hour", "dimensionless", length=24, nonnegative=True)
        if max(profile) > 1.0:
            raise it.error("utilization_by_hour", "values must be between 0 and 1")
        if min(profile) <= 0:
            raise it.error(
                "utilization_by_hour",
                f"every hour must be above 0 (hour {profile.index(min(profile))} is 0): an hour without tokens "
                "has no energy per token; use a small utilization such as 0.01 for idle hours",
            )
        utilization = float(np.mean(profile))
    other = it.quantity("other_power_per_accelerator", "power", default=0.0, nonnegative=True)
    conv = it.number("conversion_loss_fraction", default=0.0, minimum=0.0, maximum=0.5)
    other_liq = it.number("other_liquid_fraction", default=0.0, minimum=0.0, maximum=1.0)
    t_j_limit = it.quantity("junction_limit", "temperature", default=acc["t_throttle"])
    if rack_link is not None:
        per_acc = rack_link.fixed_power / len(rack_link.accelerators)
        if per_acc > other * (1.0 + 1e-12):
            raise it.error(
                "other_power_per_accelerator",
                f"{other:g} W is less than the power of the rack's other cold plates per accelerator "
                f"({rack_link.fixed_power:g} W per rack in {rack_link.file} / {len(rack_link.accelerators)} = "
                f"{per_acc:.6g} W): those plates (CPUs, switches) are part of the other IT loads",
            )
    it.finish()

    # ----------------------------------------------------------------- cold plate
    if rack_link is not None and root.has("cold_plate"):
        raise root.error(
            "cold_plate",
            f"the rack case ([rack] case = {rack_link.file}) defines the cold plates; remove [cold_plate]",
        )
    cp_t = root.table("cold_plate") if rack_link is None else root.table("cold_plate", default={})
    curves = None
    curve_key = "case" if cp_t.has("case") else "curves"  # a curve file, or a cold-plate case solved below
    if cp_t.has("curves") and cp_t.has("case"):
        raise cp_t.error("case", "give either curves = <curve file> or case = <cold-plate case file>, not both")
    if rack_link is not None:
        cold_plate = rack_link.plate_curve
    elif cp_t.has("case"):
        given = [k for k in _PARAMETRIC_PLATE_KEYS if cp_t.has(k)]
        if given:
            raise cp_t.error(
                given[0], "give either case = <cold-plate case file> or the parametric R(q) and dp keys, not both"
            )
        from aidc_thermo import curve_cache

        curves = curve_cache.reference(cp_t, "case", case_file.directory)  # checked now, solved after parsing
        cold_plate = None
    elif cp_t.has("curves"):
        given = [k for k in _PARAMETRIC_PLATE_KEYS if cp_t.has(k)]
        if given:
            raise cp_t.error(given[0], "give either curves = <curve file> or the parametric R(q) and dp keys, not both")
        raw = cp_t.raw("curves")
        if not isinstance(raw, str) or not raw.strip():
            raise cp_t.error(
                "curves", f"expected the path of a cold-plate curve file (relative to the case), got {raw!r}"
            )
        curves = read_curves((case_file.directory / raw).resolve(), case_file=case_file.path, key=cp_t.key("curves"))
        cold_plate = dict(table_flow=curves.flow, table_r=curves.r_max, table_dp=curves.dp)
    else:
        q_ref = cp_t.quantity("reference_flow", "volumetric_flow", positive=True)
        cold_plate = dict(
            r_base=cp_t.quantity("resistance_base", "thermal_resistance", nonnegative=True),
            r_flow=cp_t.quantity("resistance_flow", "thermal_resistance", nonnegative=True),
            r_exponent=cp_t.number("resistance_exponent", default=0.8, minimum=0.0, maximum=3.0),
            dp_ref=cp_t.quantity("pressure_drop", "pressure", nonnegative=True),
            dp_exponent=cp_t.number("pressure_drop_exponent", default=1.85, minimum=1.0, maximum=2.0),
            q_ref=q_ref,
        )
    upstream = cp_t.quantity("upstream_heat", "power", default=0.0, nonnegative=True)
    cp_t.finish()

    # ----------------------------------------------------------------- secondary loop
    sec = root.table("secondary")
    supply_ref = None  # filled from facility water below for property evaluation
    if rack_link is None:
        q_cp = sec.quantity("flow_per_accelerator", "volumetric_flow", positive=True)
    elif sec.has("flow_per_accelerator"):
        raise sec.error(
            "flow_per_accelerator",
            f"the rack case sets the flow ([supply] flow in {rack_link.file}, per rack; the secondary flow is "
            "[rack] racks x that flow); remove this key",
        )
    else:
        q_cp = rack_link.case.supply.flow / len(rack_link.accelerators)
    dp_other = sec.quantity("loop_pressure_drop", "pressure", nonnegative=True)
    eta_tcs = sec.number("pump_efficiency", minimum=0.05, maximum=1.0)
    pump_heat = sec.number("pump_heat_fraction", default=1.0, minimum=0.0, maximum=1.0)
    sec_coolant = sec.table("coolant", default=None)

    # ----------------------------------------------------------------- facility water
    fw = root.table("facility_water")
    t_set = fw.quantity("supply_temperature", "temperature")
    flow_fw = fw.quantity("flow", "volumetric_flow", positive=True)
    dp_fw = fw.quantity("pressure_drop", "pressure", nonnegative=True)
    eta_fw = fw.number("pump_efficiency", minimum=0.05, maximum=1.0)
    export = fw.number("export_fraction", default=0.0, minimum=0.0, maximum=1.0)
    fw_coolant = fw.table("coolant", default=None)
    supply_ref = t_set + _FW_REF_RISE  # the ratings' properties (solve re-evaluates them at its setpoint)
    supply_range = _supply_range(sec_coolant, fw_coolant)
    _check_supply(fw, "supply_temperature", t_set, supply_range)
    rho_tcs, cp_tcs, sec_coolant_fit = _coolant_props(sec_coolant, supply_ref + _TCS_REF_RISE - _FW_REF_RISE)
    rho_fw, cp_fw, fw_coolant_fit = _coolant_props(fw_coolant, supply_ref)
    sec_name, fw_name = sec_coolant_fit.name, fw_coolant_fit.name
    if rack_link is not None and rack_link.case.coolant.name != sec_name:
        raise sec.error(
            "coolant",
            f"the secondary coolant ({sec_name}) differs from the rack case's ({rack_link.case.coolant.name}, "
            f"[coolant] in {rack_link.file}): the racks are on the secondary loop; make them equal",
        )
    if curves is not None:
        require_coolant(curves, sec_coolant_fit, cp_t, "the secondary loop's", key=curve_key)
        if not curves.covers(q_cp):
            raise sec.error(
                "flow_per_accelerator",
                f"{q_cp * 6e4:.4g} L/min is outside the flow range of the cold-plate curves "
                f"({curves.range_text()}, {cp_t.raw(curve_key)}); the curves are not extrapolated",
            )
    sec.finish()
    fw.finish()
    if rack_link is not None:
        row_note = "" if rack_link.row_racks == 1 else (
            f", as {rack_link.rows} identical row(s) of {rack_link.row_racks} racks ([row] of {rack_link.file}: every "
            "rack of a row is solved in one network; the worst plate names its rack)")  # fmt: skip
        notes += [
            f"rack: {rack_link.racks} x {rack_link.file} ({len(rack_link.accelerators)} '{rack_link.plate}' "
            f"accelerator plates per rack, {rack_link.fixed_power / 1e3:.4g} kW of other plates per rack)" + row_note,
            "rack: the rack case's supply temperature, pump efficiency and the accelerator plates' power are not "
            "used (the CDU, [secondary] pump_efficiency and [it] set them)",
        ]
    notes.append(f"secondary coolant: {sec_name}, rho {rho_tcs:.1f} kg/m3, cp {cp_tcs:.0f} J/kg/K")
    notes.append(f"facility water: {fw_name}, rho {rho_fw:.1f} kg/m3, cp {cp_fw:.0f} J/kg/K")

    flow_tcs = n_acc * q_cp
    c_tcs = rho_tcs * cp_tcs * flow_tcs
    c_fw = rho_fw * cp_fw * flow_fw
    design_liquid = (
        n_acc * (acc["p_idle"] + utilization * acc["p_dynamic"] + acc["leak_ref"])
        + other_liq * (1.0 + conv) * n_acc * other
    )

    # ----------------------------------------------------------------- CDU
    cdu = root.table("cdu")
    has_ua, has_app = cdu.has("ua"), cdu.has("approach")
    if has_ua == has_app:
        raise cdu.error(None, "give exactly one of 'ua' (W/K) or 'approach' (rated, K)")
    rated_heat = cdu.quantity("rated_heat", "power", default=design_liquid, positive=True)
    if has_ua:
        cdu_ua = cdu.quantity("ua", "thermal_conductance", positive=True)
    else:
        approach = cdu.quantity("approach", "temperature_difference", positive=True)
        c_min = min(c_tcs, c_fw)
        eps = rated_heat / (c_min * (approach + rated_heat / c_tcs))
        if not eps < 1.0:
            raise cdu.error(
                "approach",
                f"{approach:g} K is not reachable at {rated_heat / 1e3:.0f} kW with these flows "
                f"(effectiveness {eps:.3f} >= 1): raise the approach or the facility-water flow",
            )
        cdu_ua = None  # from the approach, at build (rated_params)
        _check_ntu(case_file.path, "cdu.approach", approach, _counterflow_ntu(eps, c_min / max(c_tcs, c_fw)))
    share = cdu.number("secondary_resistance_share", default=0.5, minimum=0.0, maximum=1.0)
    cdu_exp = cdu.number("flow_exponent", default=0.65, minimum=0.0, maximum=1.0)
    cdu.finish()

    # ----------------------------------------------------------------- heat rejection
    hr = root.table("heat_rejection")
    device = hr.string("type", choices=DEVICE_KINDS)
    arrangement = hr.string("arrangement", default="counterflow", choices=ARRANGEMENTS)
    q_rated = hr.quantity("rated_heat", "power", positive=True)
    app_rated = hr.quantity("approach", "temperature_difference", positive=True)
    t_ref_rated = hr.quantity("rated_ambient", "temperature")
    m_air = hr.quantity("air_flow", "mass_flow", positive=True)
    c_w_rated = rho_fw * cp_fw * hr.quantity("rated_water_flow", "volumetric_flow", default=flow_fw, positive=True)
    fan_power = hr.quantity("fan_power", "power", nonnegative=True)
    f_min = hr.number("min_fan_fraction", default=0.15, minimum=0.01, maximum=1.0)
    air_share = hr.number("air_resistance_share", default=0.8 if device == "dry_cooler" else 0.6,
                          minimum=0.0, maximum=1.0)  # fmt: skip
    air_exp = hr.number("air_exponent", default=0.8, minimum=0.0, maximum=1.5)
    water_exp = hr.number("water_exponent", default=0.8 if device == "dry_cooler" else 0.6,
                          minimum=0.0, maximum=1.5)  # fmt: skip
    cs_span = hr.quantity("saturation_span", "temperature_difference", default=10.0, positive=True)
    pressure = hr.quantity("rated_pressure", "pressure", default=101325.0, positive=True)
    if device == "open_tower":
        hx_app = hr.quantity("isolation_approach", "temperature_difference", positive=True)
        eps_hx = q_rated / (min(c_fw, c_w_rated) * (hx_app + q_rated / c_fw))
        if not eps_hx < 1.0:
            raise hr.error("isolation_approach", f"not reachable (effectiveness {eps_hx:.3f} >= 1)")
        _check_ntu(
            case_file.path,
            "heat_rejection.isolation_approach",
            hx_app,
            _counterflow_ntu(eps_hx, min(c_fw, c_w_rated) / max(c_fw, c_w_rated)),
        )
    else:
        hx_app = None
    cycles = hr.number("cycles_of_concentration", default=4.0, minimum=1.1, maximum=50.0)
    drift = hr.number("drift_fraction", default=5e-5, minimum=0.0, maximum=0.01)
    hr.finish()
    # UA, hx_ua, cp_air: at build (rated_params)
    device_params = dict(
        ua_rated=None, c_water_rated=c_w_rated, m_air_rated=m_air, cp_air=None,
        cs_span=cs_span, air_share=air_share, air_exponent=air_exp, water_exponent=water_exp,
        fan_power_rated=fan_power, fan_fraction_min=f_min, hx_ua=None,
    )  # fmt: skip
    ratings = dict(
        file=str(case_file.path),
        cdu_approach=None if has_ua else approach, cdu_rated_heat=rated_heat, c_tcs=c_tcs, c_fw=c_fw,
        q_rated=q_rated, approach=app_rated, t_ref_rated=t_ref_rated, pressure=pressure, isolation_approach=hx_app,
    )  # fmt: skip

    # ----------------------------------------------------------------- chiller
    ch_t = root.table("chiller", default=None)
    # cop_ref None: the DOE-2 reference curve's; the curve itself is filled in at build (rated_params)
    chiller_params = dict(
        carnot_fraction=0.55, dt_evap=2.0, dt_cond=2.0, cop_ref=None, eir_coeffs=None,
        t_chw_bounds=None, t_cond_bounds=None, lift_min=1.0, cond_approach=5.0, cond_power_per_w=0.02,
    )  # fmt: skip
    if ch_t is None:
        chiller = "none"
    else:
        chiller = ch_t.string("model", choices=("carnot", "doe2"))
        chiller_params.update(
            read_chiller_cop(ch_t, condenser_approach=2.0, reference_cop=None),
            cond_approach=ch_t.quantity(
                "condenser_water_approach", "temperature_difference", default=5.0, nonnegative=True
            ),
        )
        ch_t.finish()

    # ----------------------------------------------------------------- facility extras
    fac_t = root.table("facility", default=None)
    overhead, air_cool = 0.0, 0.0
    if fac_t is not None:
        overhead = fac_t.number("overhead_fraction", default=0.0, minimum=0.0, maximum=1.0)
        air_cool = fac_t.number("air_cooling_power_per_heat", default=0.0, minimum=0.0, maximum=2.0)
        fac_t.finish()

    # ----------------------------------------------------------------- ambient
    amb = root.table("ambient")
    p_amb = amb.quantity("pressure", "pressure", default=101325.0, minimum=5e4, maximum=1.1e5)
    if amb.has("weather"):
        path = amb.path_value("weather", case_file.directory)
        for k in ("dry_bulb", "wet_bulb", "relative_humidity"):
            if amb.has(k):
                raise amb.error(k, "give either 'weather' (an hourly file) or a design point, not both")
        try:
            weather = read_weather(path, p_amb)
        except CaseError as exc:  # name this case file and key, then the weather file's line
            raise amb.error("weather", str(exc)) from None
        notes += [f"weather: {weather.period}", *(f"weather: {n}" for n in weather.notes)]
        hourly = True
    else:
        t_db = amb.quantity("dry_bulb", "temperature")
        has_wb, has_rh = amb.has("wet_bulb"), amb.has("relative_humidity")
        if has_wb == has_rh:
            raise amb.error(None, "give exactly one of 'wet_bulb' or 'relative_humidity' with 'dry_bulb'")
        if has_wb:
            t_wb = amb.quantity("wet_bulb", "temperature")
            if t_wb > t_db:
                raise amb.error("wet_bulb", "must not exceed the dry bulb")
        else:
            rh = amb.number("relative_humidity", minimum=0.0, maximum=1.0)
            t_wb = None  # from the relative humidity, when first used (Weather.t_wb)
        weather = Weather(
            ("design",),
            np.array([t_db]),
            None if t_wb is None else np.array([t_wb]),
            np.array([p_amb]),
            "design point",
            relative_humidity=None if t_wb is not None else np.array([rh]),
        )
        hourly = False
    amb.finish()

    # ----------------------------------------------------------------- sweep, optimize, solver
    sw = root.table("sweep", default=None)
    if sw is not None:
        sweep = sw.quantities("supply_temperatures", "temperature")
        if len(sweep) < 2:
            raise sw.error("supply_temperatures", "give at least two temperatures")
        for i, t in enumerate(sweep):
            _check_supply(sw, f"supply_temperatures[{i}]", t, supply_range)
        sw.finish()
    else:  # setpoint +- 10 K in 2 K steps, inside the coolants' range
        sweep = tuple(
            t_set + d for d in np.arange(-10.0, 10.0 + 1e-9, 2.0) if supply_range[0] <= t_set + d <= supply_range[1]
        )
    opt_t = root.table("optimize", default=None)
    s_lo, s_hi = max(t_set - 10.0, supply_range[0]), min(t_set + 10.0, supply_range[1])
    f_lo, f_hi = 0.5, 2.0
    grid = (9, 7)
    geometry = ()
    if opt_t is not None:
        s_lo, s_hi = opt_t.quantities("supply_temperature", "temperature", length=2, default=(s_lo, s_hi))
        f_lo, f_hi = opt_t.quantities("flow_scale", "dimensionless", length=2, default=(f_lo, f_hi), positive=True)
        grid = opt_t.integers("grid", 2, default=grid, minimum=3)
        if max(grid) > MAX_GRID:
            raise opt_t.error("grid", f"at most {MAX_GRID} points per axis (each point solves every hour), got {grid}")
        t_j_limit = opt_t.quantity("junction_limit", "temperature", default=t_j_limit)
        if not (s_lo < s_hi and f_lo < f_hi):
            raise opt_t.error(None, "bounds must be [low, high] with low < high")
        if opt_t.has("supply_temperature"):
            for i, t in enumerate((s_lo, s_hi)):
                _check_supply(opt_t, f"supply_temperature[{i}]", t, supply_range)
        if rack_link is not None:
            given = [k for k in _GEOMETRY_KEYS if opt_t.has(k)]
            if given:
                raise opt_t.error(given[0], "a hall of rack networks ([rack]) is optimized over its supply setpoint "
                                  "and flow scale only; the plate geometry is optimized with a single-accelerator "
                                  "hall ([cold_plate] case)")  # fmt: skip
        geometry = _read_geometry_bounds(opt_t, curves)
        if curves is not None and not (curves.covers(q_cp * f_lo) and curves.covers(q_cp * f_hi)):
            raise opt_t.error(
                "flow_scale",
                f"flow scales {f_lo:g}..{f_hi:g} give {q_cp * f_lo * 6e4:.4g}..{q_cp * f_hi * 6e4:.4g} L/min per "
                f"accelerator, outside the flow range of the cold-plate curves ({curves.range_text()}); "
                "narrow the bounds or extend the curves",
            )
        opt_t.finish()
    sol = root.table("solver", default=None)
    precision, tol, max_iter = "float64", None, 60
    if sol is not None:
        precision = sol.string("precision", default="float64", choices=("float64", "float32"))
        tol = sol.quantity("tolerance", "temperature_difference", default=None, positive=True)
        floor = TOLERANCE_FLOOR_K[precision]
        if tol is not None and tol < floor:
            raise sol.error(
                "tolerance",
                f"{tol:g} K is below what {precision} arithmetic resolves at coolant temperatures (~300 K x "
                f"machine epsilon): at least {floor:g} K"
                + ('; use precision = "float64"' if precision == "float32" else ""),
            )
        max_iter = sol.integer("max_iterations", default=60, minimum=1)
        sol.finish()
    out = root.table("output", default=None)
    plots = True
    if out is not None:
        plots = out.boolean("plots", default=True)
        out.finish()
    root.finish()
    _require_memory(case_file.path, len(weather), 1 + len(sweep), max_iter)
    plate_ref = None
    if cold_plate is None:  # [cold_plate] case = ...: every check passed, the plate's curves are solved (or cached)
        plate_ref, curves = curves, curves.curves()
        cold_plate = dict(table_flow=curves.flow, table_r=curves.r_max, table_dp=curves.dp)

    params = dict(
        accelerator=acc,
        n_accelerators=float(n_acc),
        utilization=utilization,
        other_it_per_accelerator=other,
        conversion_loss_fraction=conv,
        other_liquid_fraction=other_liq,
        cold_plate=cold_plate,
        flow_per_accelerator=q_cp,
        upstream_heat=upstream,
        rho_tcs=rho_tcs,
        cp_tcs=cp_tcs,
        dp_tcs_other=dp_other,
        flow_tcs_rated=flow_tcs,
        eta_pump_tcs=eta_tcs,
        cdu_ua_rated=cdu_ua,
        cdu_c_tcs_rated=c_tcs,
        cdu_c_fw_rated=c_fw,
        cdu_share_tcs=share,
        cdu_exponent=cdu_exp,
        flow_fw=flow_fw,
        rho_fw=rho_fw,
        cp_fw=cp_fw,
        dp_fw_rated=dp_fw,
        flow_fw_rated=flow_fw,
        eta_pump_fw=eta_fw,
        pump_heat_fraction=pump_heat,
        t_supply_set=t_set,
        export_fraction=export,
        device=device_params,
        chiller=chiller_params,
        tower_cycles=cycles,
        tower_drift_fraction=drift,
        air_cooling_w_per_w=air_cool,
        facility_overhead_fraction=overhead,
    )
    return FacilityCase(
        name=name,
        description=description,
        params=params,
        device=device,
        arrangement=arrangement,
        chiller=chiller,
        weather=weather,
        hourly=hourly,
        utilization_by_hour=profile,
        sweep_supply=tuple(float(s) for s in sweep),
        optimize=OptimizeSettings((s_lo, s_hi), (f_lo, f_hi), t_j_limit, tuple(grid), geometry),
        precision=precision,
        tolerance=tol,
        max_iterations=max_iter,
        plots=plots,
        notes=tuple(notes),
        ratings=ratings,
        coolant_secondary=sec_coolant_fit,
        coolant_facility_water=fw_coolant_fit,
        rack=rack_link,
        plate=plate_ref,
    )


_GEOMETRY_KEYS = ("channel_width", "fin_thickness")


def _read_geometry_bounds(opt_t, curves) -> tuple:
    """``[optimize] channel_width`` / ``fin_thickness`` ([low, high] lengths):
    the cold plate's geometry optimized with the plant, only for a plate named
    by ``[cold_plate] case`` that is a compact plate with straight fins, with
    Shah & London closures or a closure table whose grid of unit cells spans
    the bounds (:func:`compact.closure_box_problem`)."""
    given = [k for k in _GEOMETRY_KEYS if opt_t.has(k)]
    if not given:
        return ()
    from aidc_thermo.curve_cache import PlateReference

    plate = curves.case if isinstance(curves, PlateReference) else None
    why = ""
    if plate is None:
        why = ("the cold plate's geometry can be optimized only when [cold_plate] case names a compact_coldplate "
               "case (a curve file or a parametric law has no geometry)")  # fmt: skip
    elif curves.case_type != "compact_coldplate":
        why = f"[cold_plate] case names a {curves.case_type!r} case; only a compact_coldplate plate is optimized"
    elif plate.fin_type != "straight":
        why = f"the plate {curves.raw} has {plate.fin_type}, not straight fins: no channel width and fin thickness"
    if why:
        raise opt_t.error(given[0], why)
    out = []
    for key in _GEOMETRY_KEYS:
        if not opt_t.has(key):
            continue
        lo, hi = opt_t.quantities(key, "length", length=2, positive=True)
        if not hi > lo:
            raise opt_t.error(key, f"[low, high] with high > low, got {opt_t.raw(key)}")
        out.append((key, float(lo), float(hi)))
    if plate.closures:  # the table must hold over the box, at the plate's curve flows
        from aidc_thermo.models.compact import closure_box_problem

        flows = (plate.curve_flows[0], plate.curve_flows[-1])
        problem = closure_box_problem(plate, {k: (lo, hi) for k, lo, hi in out}, flows)
        if problem is not None:
            raise opt_t.error(problem[0], f"the plate {curves.raw}: {problem[1]}")
    return tuple(out)


def rated_params(case: FacilityCase) -> dict:
    """``case.params`` with the ratings filled in: the CDU's UA from its rated
    approach, the heat-rejection device's UA (and its isolation exchanger's)
    from the rated approach, the air stream's heat capacity, and the DOE-2
    chiller curve. Raises :class:`CaseError` (naming the key) when the rated
    approach cannot be reached with the case's air and water flows."""
    from aidc_thermo.io.case import CaseError
    from aidc_thermo.kernels import hx, plant

    r = case.ratings
    p = {k: (dict(v) if isinstance(v, dict) else v) for k, v in case.params.items()}
    if p["cdu_ua_rated"] is None:
        p["cdu_ua_rated"] = float(hx.ua_from_approach(r["cdu_approach"], r["cdu_rated_heat"], r["c_tcs"], r["c_fw"]))
    dev = p["device"]
    q_rated, app_rated, c_w_rated = r["q_rated"], r["approach"], dev["c_water_rated"]
    if r["isolation_approach"] is not None:
        dev["hx_ua"] = float(hx.ua_from_approach(r["isolation_approach"], q_rated, r["c_fw"], c_w_rated))
    else:
        dev["hx_ua"] = 0.0
    dev["cp_air"] = plant.CP_AIR
    t_ref, pressure = r["t_ref_rated"], r["pressure"]
    cp_air_eff = float(plant.air_specific_heat(case.device, plant.CP_AIR, dev["cs_span"], t_ref, pressure))
    c_min = min(c_w_rated, dev["m_air_rated"] * cp_air_eff)
    eps_dev = q_rated / (c_min * (app_rated + q_rated / c_w_rated))
    if not eps_dev < 1.0:
        raise CaseError(
            r["file"],
            "heat_rejection.approach",
            f"{app_rated:g} K at {q_rated / 1e3:.0f} kW needs effectiveness {eps_dev:.3f} >= 1 with this "
            "air and water flow: raise the approach or the air flow",
        )
    dev["ua_rated"] = float(
        plant.rate_device(
            case.device, q_rated, app_rated, c_w_rated, dev["m_air_rated"], r["t_ref_rated"], r["pressure"],
            plant.CP_AIR, dev["cs_span"], case.arrangement,
        )
    )  # fmt: skip
    _check_ntu(r["file"], "heat_rejection.approach", app_rated, dev["ua_rated"] / c_min)
    cop_ref, coeffs, chw_b, cond_b = plant.doe2_centrifugal_eir()
    ch = p["chiller"]
    ch.update(eir_coeffs=coeffs, t_chw_bounds=chw_b, t_cond_bounds=cond_b)
    if ch["cop_ref"] is None:
        ch["cop_ref"] = cop_ref
    return p


# --------------------------------------------------------------------------- build & solve
#
# The protocol (thermo/models/protocol.py): build(case) -> (Static, Params);
# solve(static, params) -> Solution, pure (every hour in one vmap or, a rack hall on a CPU, in warm-started
# lanes; jit- and vmap-able over designs, differentiable through the implicit derivative of
# each hour's converged solve); report -> Outputs; check -> SolveError.


@dataclass(frozen=True)
class Static:
    """What fixes the compiled program of a facility solve (hashable): the
    coupled solve's static choices, the number of hours, the precision, the
    coolants of both loops (their property fits, evaluated inside
    :func:`solve` at the setpoint solved) and the weather rows' labels (for
    messages)."""

    config: object  # kernels.plant.coupled.CoupledConfig
    hours: int
    precision: str
    coolant_secondary: object  # aidc_thermo.coolant.Coolant
    coolant_facility_water: object
    times: tuple[str, ...]
    #: the racks (:class:`RackStatic`), or None for one representative accelerator
    rack: object = None


@dataclass(frozen=True)
class RackStatic:
    """The rack part of :class:`Static`: the rack model's own
    :class:`aidc_thermo.models.rack.Static`, the positions of the accelerator
    plates and of the other plates among its plates, the plate labels, the
    accelerator plate type and the junction limit (K)."""

    static: object
    accelerators: tuple[int, ...]
    fixed: tuple[int, ...]
    labels: tuple[str, ...]
    plate: str
    junction_limit: float


class RackState(NamedTuple):
    """The rack network of one design: every plate's flow (m^3/s, rack plate
    order), the rack's pressure drop (Pa) at its supply flow, and the network
    Newton's SolveInfo."""

    plate_flow: Any
    dp: Any
    info: Any


class Params(NamedTuple):
    """Every number a user may sweep (a pytree; stack along a leading axis for
    a batch of designs). ``hall`` is the kernel's own
    :class:`kernels.plant.coupled.Facility` (one typed class for both
    layers); its coolant properties (``rho_tcs``, ``cp_tcs``, ``rho_fw``,
    ``cp_fw``) are those at the case's setpoint and are re-evaluated by
    :func:`solve` at ``hall.t_supply_set`` (secondary loop at the setpoint +
    11 K, facility water at + 8 K). ``ambient`` (K, Pa) and ``utilization``
    have one entry per hour."""

    hall: Any
    ambient: Any
    utilization: Any
    #: the rack model's :class:`aidc_thermo.models.rack.Params` (None without ``[rack]``)
    rack: Any = None


class Solution(NamedTuple):
    """Every hour's :class:`kernels.plant.coupled.OperatingPoint` and the
    :class:`~kernels.diagnostics.SolveInfo` of its coupled solve (leading axis:
    hours, after any design axis)."""

    ops: Any
    info: Any
    #: with ``[rack]``: every accelerator plate's junction temperature (hours, n) K, and the :class:`RackState`
    t_plates: Any = None
    rack: Any = None


def _dtype(case: FacilityCase):
    return precision_dtype(case.precision)


def build(case: FacilityCase) -> tuple[Static, Params]:
    """The static description and the parameters of a case (in its precision).
    Rates the CDU and the heat-rejection device (:func:`rated_params`; raises
    :class:`CaseError` naming the key when a rating cannot be reached)."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import coupled, it_power, plant

    dt = _dtype(case)
    p = rated_params(case)

    def arr(v):
        return jnp.asarray(v, dt)

    fields = {k: arr(v) for k, v in p.items() if not isinstance(v, dict)}
    hall = coupled.Facility(
        accelerator=it_power.Accelerator(**{k: arr(v) for k, v in p["accelerator"].items()}),
        cold_plate=(coupled.CurveColdPlate if "table_flow" in p["cold_plate"] else coupled.ColdPlate)(
            **{k: arr(v) for k, v in p["cold_plate"].items()}
        ),
        device=plant.RejectionDevice(**{k: arr(v) for k, v in p["device"].items()}),
        chiller=plant.Chiller(**{k: arr(v) for k, v in p["chiller"].items()}),
        **fields,
    )
    config = coupled.CoupledConfig(
        device=case.device,
        arrangement=case.arrangement,
        chiller=case.chiller,
        max_iter=case.max_iterations,
        tol=case.tolerance,
    )
    amb, util = _hourly_inputs(case)
    rack_static, rack_params = (None, None) if case.rack is None else _build_rack(case)
    static = Static(
        config=config,
        hours=len(case.weather),
        precision=case.precision,
        coolant_secondary=case.coolant_secondary,
        coolant_facility_water=case.coolant_facility_water,
        times=tuple(case.weather.time),
        rack=rack_static,
    )
    return static, Params(hall=hall, ambient=amb, utilization=util, rack=rack_params)


def _build_rack(case: FacilityCase):
    """The rack model's Static and Params (in the facility's precision) and
    where its accelerator plates are."""
    from aidc_thermo.models import rack as rack_model

    link = case.rack
    rs, rp = rack_model.build(dataclasses.replace(link.case, precision=case.precision))
    names = rs.plate_type_names
    acc = tuple(i for i, t in enumerate(rs.plate_type_index) if names[t] == link.plate)
    fixed = tuple(i for i, t in enumerate(rs.plate_type_index) if names[t] != link.plate)
    if len(acc) != len(link.accelerators) * link.row_racks:  # a [row]: every rack of the row in one network
        raise CaseError(case_file_path(case), "rack.accelerator_plate",
                        f"the rack network has {len(acc)} '{link.plate}' plates, the rack case lists "
                        f"{len(link.accelerators)} per rack x {link.row_racks} racks")  # fmt: skip
    labels = tuple(rs.network.edge_labels[rs.plate_edges[i]] for i in range(len(rs.plate_edges)))
    return RackStatic(rs, acc, fixed, labels, link.plate, float(case.optimize.junction_limit)), rp


def case_file_path(case: FacilityCase) -> str:
    return case.ratings.get("file", "")


def rack_plates(static: Static, hall, rack_params):
    """The rack network at the design's secondary flow (traceable): flows from
    the rack model's hydraulics (:func:`aidc_thermo.models.rack.edge_params`,
    :func:`kernels.network.solve_network`) with the secondary coolant's
    properties at the same temperature as the hall's (supply setpoint + 11 K),
    every plate's resistance at its own flow, the advection network's inlet
    temperature rise of every accelerator plate per watt of every other
    (linear in the heats at fixed flows) and from the fixed-power plates, and
    the rack's pressure drop (dissipated power / flow). With a ``[row]`` the
    network is the whole row: its plates are every rack's, its supply flow per
    rack is the rack's, and ``n_racks`` of :class:`RackPlates` counts rows. Returns
    ``(kernels.plant.coupled.RackPlates, RackState)``."""
    import jax
    import jax.numpy as jnp

    from aidc_thermo.kernels.network import Fluid, network_temperatures, solve_network
    from aidc_thermo.kernels.plant.coupled import RackPlates
    from aidc_thermo.models import rack as rack_model

    link = static.rack
    rs = link.static
    net = rs.network
    dt = jnp.result_type(hall.rho_tcs)
    acc, fixed = np.asarray(link.accelerators), np.asarray(link.fixed, int)
    pe = np.asarray(rs.plate_edges)
    n_row = link.static.n_racks  # racks in the network: 1, or the [row]'s
    q_rack = hall.flow_per_accelerator * (acc.size // n_row)  # per rack (the rack model's supply_flow)
    rp = rack_params._replace(supply_flow=q_rack)
    t_tcs = hall.t_supply_set + _TCS_REF_RISE
    fluid = Fluid(density=hall.rho_tcs, viscosity=jnp.asarray(static.coolant_secondary.viscosity(t_tcs), dt),
                  specific_heat=hall.cp_tcs)  # fmt: skip
    ep, bnd = rack_model.edge_params(rs, rp)
    sol, info = solve_network(net, ep, fluid, bnd, rack_model.newton_options(rs))
    q_plate = sol.flow[pe]
    r_all = rack_model.plate_resistances(rs, rp, q_plate)
    power = rp.plate_power[np.asarray(rs.plate_type_index)]
    t_zero = jnp.zeros((net.n_nodes,), dt)
    heat_fixed = jnp.zeros((net.n_edges,), dt).at[pe[fixed]].set(power[fixed])

    def inlet_rise(p_acc):  # affine in the accelerator plates' heat at fixed flows
        heat = heat_fixed.at[pe[acc]].set(p_acc)
        return network_temperatures(net, sol.flow, heat, fluid, t_zero)[0].edge_inlet[pe[acc]]

    # the rise from the fixed-power plates (the accelerators' at zero), and [i, k]: plate i's inlet rise per W of
    # plate k (the tangents of the same solve: one factorization for both, n right-hand sides)
    rise_fixed, tangent = jax.linearize(inlet_rise, jnp.zeros((acc.size,), dt))
    influence = jax.vmap(tangent, out_axes=1)(jnp.eye(acc.size, dtype=dt))
    dp = jnp.sum(sol.loss * jnp.abs(sol.flow)) / (q_rack * n_row)
    plates = RackPlates(
        resistance=r_all[acc],
        rise_fixed=rise_fixed,
        influence=influence,
        fixed_power=jnp.sum(power[fixed]),
        dp=dp,
        n_racks=hall.n_accelerators / acc.size,
    )
    return plates, RackState(q_plate, dp, info)


def _hourly_inputs(case: FacilityCase):
    import jax.numpy as jnp

    from aidc_thermo.kernels.plant.coupled import Ambient

    dt = _dtype(case)
    w = case.weather
    n = len(w)
    if case.utilization_by_hour is None or not case.hourly:
        util = np.full(n, case.params["utilization"])  # a design point uses the profile's mean
    else:
        util = np.asarray(case.utilization_by_hour)[np.arange(n) % 24]
    amb = Ambient(t_db=jnp.asarray(w.t_db, dt), t_wb=jnp.asarray(w.t_wb, dt), p=jnp.asarray(w.p, dt))
    return amb, jnp.asarray(util, dt)


def with_controls(params: Params, t_set, flow_scale) -> Params:
    """The design at another facility-water supply setpoint (K) and coolant
    flow (both loops scaled by ``flow_scale``); traceable."""
    hall = params.hall
    return params._replace(
        hall=dataclasses.replace(
            hall,
            t_supply_set=t_set,
            flow_per_accelerator=hall.flow_per_accelerator * flow_scale,
            flow_fw=hall.flow_fw * flow_scale,
        )
    )


def with_properties(static: Static, hall):
    """``hall`` with its coolant properties evaluated at its own supply
    setpoint (traceable: the setpoint may be swept or differentiated)."""
    t_fw = hall.t_supply_set + _FW_REF_RISE
    t_tcs = t_fw + (_TCS_REF_RISE - _FW_REF_RISE)
    sec, fw = static.coolant_secondary, static.coolant_facility_water
    return dataclasses.replace(
        hall, rho_tcs=sec.density(t_tcs), cp_tcs=sec.cp(t_tcs), rho_fw=fw.density(t_fw), cp_fw=fw.cp(t_fw)
    )


#: a rack hall's year on a CPU (:func:`_from_neighbours`): every ``_CPU_SPACING``-th hour of the sorted year solved
#: from the cold start; the hours still unconverged at their start iterated ``_CPU_LANES`` at a time, fewer where
#: those would pass ``_CPU_ROUND_PLATE_HOURS`` plate-hours
_CPU_SPACING = 32
_CPU_LANES = 96
_CPU_ROUND_PLATE_HOURS = 8192


def _cpu_plan(n_plates: int) -> tuple[int, int]:
    """``(spacing, lanes)`` of :func:`_from_neighbours` for a rack of
    ``n_plates`` accelerator plates, the path of a rack hall's junctions when
    compiled for a CPU (a test patches it to None: every hour at once from the
    cold start on every platform, the accelerators' path). The lanes of a
    round stay within ``_CPU_ROUND_PLATE_HOURS`` plate-hours, which stay in
    the core's cache through the 40-odd passes of a Newton step (a whole
    year's 630,000 values of a 72-plate rack go to memory and back in every
    one). The bundled rack hall's compiled year on the 2-core development
    machine (benchmarks/RESULTS.md, issue 14): 0.019-0.023 s in this plan with
    one BLAS thread (:mod:`thermo.blas`; 8,382 of 8,760 hours converge at their
    group's start). With OpenBLAS's own threads: 0.025-0.028 s in this plan
    (spacing 16 to 64 and 48 to 192 lanes within 10 %); 0.057 s in the
    warm-started lanes it replaced (16
    runs of the sorted hours side by side, each hour from its run's previous
    one); 0.082 s cold-started in chunks of 113 hours; 0.13 s over every hour
    at once. Compiled for an accelerator, :func:`solve` takes every hour at
    once (``lax.platform_dependent``)."""
    return _CPU_SPACING, max(1, min(_CPU_LANES, _CPU_ROUND_PLATE_HOURS // max(n_plates, 1)))


def _sort_order(key):
    """The permutation that sorts ``key`` (n,) to 1/16 of its unit (ties by
    index), by one sort of integers, each the key's quantum above the index's
    bits: on a CPU a fifth of the time of ``jnp.argsort``'s float comparisons
    with their NaN and signed-zero rules (0.45 against 2.3 ms for a year of
    hours). The index is taken back from the low bits, so the result is a
    permutation whatever the keys are (NaN or out of range: placed anywhere)."""
    import jax
    import jax.numpy as jnp

    n = key.shape[0]
    bits = max(1, (n - 1).bit_length())
    wide = jax.config.jax_enable_x64
    itype = jnp.int64 if wide else jnp.int32
    top = 2 ** ((62 if wide else 30) - bits) - 1  # the keys' quanta stay below the sign bit
    quanta = jnp.clip(jnp.nan_to_num(jnp.round(key * 16.0)), 0, top).astype(itype)
    packed = (quanta << bits) | jnp.arange(n, dtype=itype)
    return (jax.lax.sort(packed, is_stable=False) & (2**bits - 1)).astype(jnp.int32)


def _from_neighbours(junctions, check, hours, *, spacing: int, lanes: int, t_cold):
    """The junctions' iteration of every hour, started from the solution of
    an alike hour. The hours are sorted by utilization and dry bulb (one key:
    utilization x 1000 K + dry bulb) and cut into groups of ``spacing``; the
    first hour of every group is solved from the cold start (``t_cold``, K;
    ``junctions(hour)``), and its solution is every hour of the group's start
    (the cold start where it did not converge). ``check(group, start)``
    evaluates a group's residuals at that start at once
    (:func:`kernels.plant.coupled.rack_start_residuals`); only the hours whose
    start is not within the tolerance iterate from it
    (``junctions(hour, start)``), ``lanes`` at a time in a ``lax.while_loop``
    over as many rounds as they need. Hours that hold the plant's setpoint at
    the same utilization share their junctions, so most of a year converges
    at its start. Returns ``junctions``' outputs ``(t_plates, info, runaway,
    summary)`` in the hours' own order; equal to the cold start's to the
    solver's tolerance, not bit for bit (an hour converged at its start
    reports 0 iterations and its start's residual). The order only chooses
    the starts: any order gives the same converged answer."""
    import jax
    import jax.numpy as jnp

    tree_map = jax.tree_util.tree_map
    hours = tree_map(jax.lax.stop_gradient, hours)  # the junctions are values; derivatives come from custom_root
    t_cold = jax.lax.stop_gradient(t_cold)
    amb, u = hours
    n = u.shape[0]
    groups = -(-n // spacing)
    order = _sort_order(u * 1000.0 + amb.t_db)
    # sorted, padded with the last hour up to whole groups (the padding's results dropped)
    order_pad = jnp.concatenate([order, jnp.broadcast_to(order[-1:], (groups * spacing - n,))])
    by_order = tree_map(lambda x: x[order_pad], hours)
    t_first, info_first = jax.vmap(junctions)(tree_map(lambda x: x[::spacing], by_order))[:2]
    start = jnp.where(info_first.converged[:, None], t_first, jnp.asarray(t_cold, t_first.dtype))  # (groups, n)
    checked = jax.vmap(check)(tree_map(lambda x: x.reshape((groups, spacing) + x.shape[1:]), by_order), start)
    checked = tree_map(lambda x: x.reshape((groups * spacing,) + x.shape[2:]), checked)
    # in the hours' own order: hour h sits at sorted position back[h] (order's inverse), in group back[h] // spacing
    back = jnp.zeros((n,), order.dtype).at[order].set(jnp.arange(n, dtype=order.dtype))
    out = (start[back // spacing], *tree_map(lambda x: x[back], checked))
    pending = ~checked[0].converged & (jnp.arange(groups * spacing) < n)
    # sorted positions of the pending hours, then past the end (dropped) up to a whole number of rounds
    todo = jnp.nonzero(pending, size=-(-(groups * spacing) // lanes) * lanes, fill_value=groups * spacing)[0]
    rounds = -(-jnp.sum(pending) // lanes)

    def one_round(state):
        r, out = state
        pos = jax.lax.dynamic_slice(todo, (r * lanes,), (lanes,))
        take = jnp.minimum(pos, groups * spacing - 1)
        solved = jax.vmap(junctions)(tree_map(lambda x: x[take], by_order), start[take // spacing])
        hour = jnp.where(pos < groups * spacing, order_pad[take], n)  # n: past the end, dropped
        return r + 1, tree_map(lambda o, s: o.at[hour].set(s, mode="drop"), out, solved)

    _, out = jax.lax.while_loop(lambda state: state[0] < rounds, one_round, (jnp.zeros((), rounds.dtype), out))
    return out


def solve(static: Static, params: Params) -> Solution:
    """Every hour of one design (pure JAX; ``jax.vmap(partial(solve, static))``
    for a batch of designs): the coupled junction-temperature / chip power /
    cooling chain, with the coolant properties at the design's setpoint."""
    import jax

    from aidc_thermo.kernels.plant.coupled import (
        rack_operating_point,
        rack_start_residuals,
        solve_operating_point,
        solve_rack_junctions,
    )

    hall = with_properties(static, params.hall)
    if static.rack is not None:
        plates, state = rack_plates(static, hall, params.rack)

        def junctions(hour, t_start=None):
            amb, u = hour
            return solve_rack_junctions(dataclasses.replace(hall, utilization=u), plates, amb, static.config, t_start)

        def check(hours, t_start):
            amb, u = hours
            return rack_start_residuals(hall, plates, amb, static.config, t_start, u)

        def operating_point(hour, solved):
            amb, u = hour
            return rack_operating_point(dataclasses.replace(hall, utilization=u), plates, amb, static.config, *solved)

        hours = (params.ambient, params.utilization)
        plan = _cpu_plan(len(static.rack.accelerators))
        every_hour = jax.vmap(junctions)
        # the junctions' iteration from alike hours' solutions on a CPU (chosen for the platform compiled for, as
        # kernels/solvers/dense.py chooses), the plant's evaluation over every hour at once
        if plan is None:
            solved = every_hour(hours)
        else:
            spacing, lanes = plan
            from_alike = functools.partial(_from_neighbours, junctions, check, spacing=spacing, lanes=lanes,
                                           t_cold=hall.t_supply_set)  # fmt: skip
            solved = jax.lax.platform_dependent(hours, cpu=from_alike, default=every_hour)
        ops, info, t_plates = jax.vmap(operating_point)(hours, solved)
        return Solution(ops, info, t_plates, state)

    def one(amb, u):
        return solve_operating_point(dataclasses.replace(hall, utilization=u), amb, static.config)

    ops, info = jax.vmap(one)(params.ambient, params.utilization)
    return Solution(ops, info)


def _solve_designs(static: Static, params: Params) -> Solution:
    """:func:`solve` over a leading design axis of ``params``."""
    import jax

    return jax.vmap(functools.partial(solve, static))(params)


@functools.cache
def _cached_year(batched: bool):
    """The year of :func:`run` (``batched``: over a leading design axis),
    ``(static, params) -> Solution`` jitted with ``static`` static; with the
    command line's cache on the compiled program is kept on disk
    (:mod:`thermo.compile_cache`), so a second run neither traces nor lowers
    it. ``Static`` holds tuples, Python numbers and strings only (it is a jit
    static argument), so its ``repr``, which the cache keys by, is its value."""
    from aidc_thermo.compile_cache import cached_jit

    return cached_jit(_solve_designs if batched else solve, static_argnums=(0,))


@functools.cache
def compiled_solve(static: Static, batched: bool = True):
    """``solve`` compiled for ``static``; ``batched``: over a leading design axis
    of the params (one compiled call for the whole batch)."""
    import jax

    f = functools.partial(solve, static)
    return jit(jax.vmap(f) if batched else f)


def stack(designs) -> Params:
    """Params of several designs stacked along a new leading axis."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *designs)


def _with_setpoints(params: Params, setpoints) -> Params:
    import jax.numpy as jnp

    one = jnp.asarray(1.0, params.hall.t_supply_set.dtype)
    return stack([with_controls(params, jnp.asarray(t, one.dtype), one) for t in setpoints])


def _year_metrics(static: Static):
    """params -> (J/token facility, T_j max, all converged, totals) of one design."""

    def metrics(params):
        return _solution_metrics(static, solve(static, params))

    return metrics


def _solution_metrics(static: Static, sol):
    """:func:`_year_metrics` of a solved design (``sol`` from :func:`solve`)."""
    from aidc_thermo.models.accounting import annual_totals

    ops, infos = sol[:2]
    tot = annual_totals(ops, 1.0)
    ok = infos.converged.all()
    if static.rack is not None:  # and the rack network as thermo run checks it
        ok = ok & _rack_feasible(static, sol.rack)
    return tot.metrics.j_per_token_facility, ops.t_j.max(), ok, tot


# --------------------------------------------------------------------------- report

#: name -> (units, description) of every reported number (report()).
_OUTPUTS = {
    "J_per_token_IT": ("J", "IT energy per token over the period"),
    "J_per_token_cooling": ("J", "cooling energy per token over the period"),
    "J_per_token_facility": ("J", "facility energy per token over the period"),
    "tokens_per_kWh_facility": ("1/kWh", "tokens per kWh of facility energy"),
    "tokens_per_kWh_IT": ("1/kWh", "tokens per kWh of IT energy"),
    "partial_PUE_cooling": ("", "(IT + cooling) / IT"),
    "PUE": ("", "facility / IT"),
    "water_L_per_kWh": ("L/kWh", "tower make-up water per kWh of IT energy (WUE)"),
    "T_junction_max": ("degC", "hottest junction over the period"),
    "T_junction_mean": ("degC", "mean junction temperature"),
    "clock_min": ("", "lowest clock fraction (1: never throttled)"),
    "T_facility_supply_max": ("degC", "warmest facility-water supply"),
    "leakage_share": ("", "leakage / accelerator power"),
    "P_IT_mean": ("W", "mean IT power"),
    "P_cooling_mean": ("W", "mean cooling power"),
    "P_facility_mean": ("W", "mean facility power"),
    "tokens_per_s_mean": ("1/s", "mean hall throughput"),
    "energy_IT": ("MWh", "IT energy over the period"),
    "energy_cooling": ("MWh", "cooling energy over the period"),
    "energy_facility": ("MWh", "facility energy over the period"),
    "tokens": ("", "tokens over the period"),
    "free_cooling_hours": ("h", "hours the heat-rejection device alone holds the supply setpoint"),
    "chiller_hours": ("h", "hours with the chiller on"),
    "floating_supply_hours": ("h", "hours the supply floats above the setpoint"),
    "water_use": ("m^3", "make-up water over the period"),
    "converged": ("", "every hour's coupled solve converged"),
    "iterations": ("", "largest Newton iteration count of any hour"),
    "residual_max": ("K", "largest |T_j - T_j,model| of any hour"),
    "order_extremes": ("K", "per ordering of _ORDERS over the converged hours: min and max of hot - cold, the "
                       "largest |temperature|, the min and max of both temperatures, the hour of the min (4 x 6)"),
    "convergence": ("", "hours not converged, the first such hour, its runaway flag, residual (K) and iterations"),
}
#: Temperature orderings that heat added to the loops keeps: (hotter, colder, why) fields of the operating point
_ORDERS = (
    ("t_fw_return", "t_fw_supply", "the CDU adds the IT heat to the facility water"),
    ("t_tcs_supply", "t_fw_supply", "the CDU cools the secondary loop with the facility water"),
    ("t_tcs_return", "t_tcs_supply", "the cold plates add heat to the secondary loop"),
    ("t_j", "t_tcs_supply", "the junction heats the coolant"),
)
#: energy per token by component (J/token): report() key -> breakdown label
_BREAKDOWN = {
    "accelerators": "accelerators",
    "other IT + conversion": "other_it",
    "secondary pumps": "p_pump_tcs",
    "facility-water pumps": "p_pump_fw",
    "heat-rejection fans": "p_fan",
    "chiller compressor": "w_chiller",
    "condenser heat rejection": "p_cond",
    "room-air cooling": "p_air_cooling",
    "facility overhead": "overhead",
}


def _report_one(hall, ops, info) -> dict:
    """The summary numbers of one design (pure JAX)."""
    import jax.numpy as jnp

    from aidc_thermo.models.accounting import annual_totals

    tot = annual_totals(ops, 1.0)
    m = tot.metrics
    tok = jnp.sum(ops.tokens_per_s)
    p_acc = hall.n_accelerators * ops.p_accelerator
    parts = dict(
        accelerators=p_acc,
        other_it=ops.p_it - p_acc,
        overhead=ops.p_it * hall.facility_overhead_fraction,
    )
    out = {
        "J_per_token_IT": m.j_per_token_it,
        "J_per_token_cooling": m.j_per_token_cooling,
        "J_per_token_facility": m.j_per_token_facility,
        "tokens_per_kWh_facility": m.tokens_per_kwh,
        "tokens_per_kWh_IT": m.tokens_per_kwh_it,
        "partial_PUE_cooling": m.ppue_cooling,
        "PUE": m.pue,
        "water_L_per_kWh": m.water_l_per_kwh,
        "T_junction_max": ops.t_j.max() - T0,
        "T_junction_mean": ops.t_j.mean() - T0,
        "clock_min": ops.clock.min(),
        "T_facility_supply_max": ops.t_fw_supply.max() - T0,
        "leakage_share": jnp.sum(ops.leakage) / jnp.sum(ops.p_accelerator),
        "P_IT_mean": ops.p_it.mean(),
        "P_cooling_mean": ops.p_cooling.mean(),
        "P_facility_mean": ops.p_facility.mean(),
        "tokens_per_s_mean": ops.tokens_per_s.mean(),
        "energy_IT": tot.energy_it_kwh / 1e3,
        "energy_cooling": tot.energy_cooling_kwh / 1e3,
        "energy_facility": tot.energy_facility_kwh / 1e3,
        "tokens": tot.tokens,
        "free_cooling_hours": tot.free_cooling_hours,
        "chiller_hours": jnp.sum(ops.q_evap > 0).astype(ops.t_j.dtype),
        "floating_supply_hours": jnp.sum(ops.t_fw_supply > hall.t_supply_set + 1e-6).astype(ops.t_j.dtype),
        "water_use": tot.water_l / 1e3,
        "converged": info.converged.all(),
        "iterations": info.iterations.max(),
        "residual_max": info.residual.max(),
        # for the sweep's screen: check's tests from extremes instead of every hour
        "order_extremes": _order_extremes(ops, info.converged),
        "convergence": _convergence(ops, info),
    }
    for label, key in _BREAKDOWN.items():
        x = parts[key] if key in parts else getattr(ops, key)
        out[f"breakdown:{label}"] = jnp.sum(x) / tok
    return out


def _order_extremes(ops, converged):
    """(len(_ORDERS), 6): for each ordering over the converged hours, min and max of
    ``hot - cold``, max |temperature|, min and max of both temperatures, the hour of the min."""
    import jax.numpy as jnp

    rows = []
    for hot, cold, _ in _ORDERS:
        h, c = getattr(ops, hot), getattr(ops, cold)
        d = h - c
        both = jnp.stack([h, c])
        dt = d.dtype
        rows.append(jnp.stack([
            jnp.min(jnp.where(converged, d, jnp.inf)), jnp.max(jnp.where(converged, d, -jnp.inf)),
            jnp.max(jnp.where(converged, jnp.abs(both), -jnp.inf)), jnp.min(jnp.where(converged, both, jnp.inf)),
            jnp.max(jnp.where(converged, both, -jnp.inf)), jnp.argmin(jnp.where(converged, d, jnp.inf)).astype(dt),
        ]))  # fmt: skip
    return jnp.stack(rows)


def _convergence(ops, info):
    """[hours not converged, the first such hour (0 if none), its runaway flag, residual (K), iterations]."""
    import jax.numpy as jnp

    bad = ~info.converged
    i = jnp.argmax(bad)
    dt = info.residual.dtype
    return jnp.stack([jnp.sum(bad).astype(dt), i.astype(dt), ops.runaway[i].astype(dt), info.residual[i],
                      info.iterations[i].astype(dt)])  # fmt: skip


@functools.cache
def _compiled_report(batched: bool):
    import jax

    return jit(jax.vmap(_report_one) if batched else _report_one)


def report(static: Static, params: Params, solution: Solution) -> dict:
    """Summary numbers (:class:`~aidc_thermo.models.protocol.Output`), with a
    leading design axis when ``params`` has one. ``breakdown:<part>`` entries
    split the facility J/token by component."""

    from aidc_thermo.models.protocol import Output

    values = _compiled_report(np.ndim(params.hall.t_supply_set) > 0)(params.hall, solution.ops, solution.info)
    out = {k: Output(values[k], *_OUTPUTS[k]) for k in _OUTPUTS}
    if static.rack is not None:
        out.update(_rack_outputs(static, solution))
    for label in _BREAKDOWN:
        out[f"breakdown:{label}"] = Output(values[f"breakdown:{label}"], "J", f"facility J/token from {label}")
    return out


def _rack_outputs(static: Static, solution: Solution) -> dict:
    """The worst accelerator plate and the spread between accelerators (a
    leading design axis when the solution has one; traceable, so that a sweep's
    compiled report can hold it)."""
    import jax.numpy as jnp

    from aidc_thermo.models.protocol import Output

    t = jnp.asarray(solution.t_plates)  # (..., hours, n)
    peak = t.max(axis=-2)  # (..., n): every plate's hottest hour
    worst = peak.argmax(axis=-1)
    t_peak = peak.max(axis=-1)
    spread = (t.max(axis=-1) - t.mean(axis=-1)).max(axis=-1)
    q = jnp.asarray(solution.rack.plate_flow)[..., np.asarray(static.rack.accelerators)]
    dp = jnp.asarray(solution.rack.dp)
    return {
        "worst_plate": Output(worst, "", "index of the accelerator plate with the hottest junction of the period "
                              "(in the rack network's accelerator order; see worst_plate_label)"),
        "T_junction_worst_peak": Output(t_peak - T0, "degC", "hottest junction of the worst accelerator plate"),
        "junction_margin": Output(static.rack.junction_limit - t_peak, "K",
                                  "junction limit minus the worst plate's hottest junction"),
        "T_junction_spread_max": Output(spread, "K", "largest (hottest - mean) accelerator junction over the hours"),
        "accelerator_flow_min": Output(q.min(axis=-1), "m^3/s", "lowest accelerator plate flow"),
        "accelerator_flow_max": Output(q.max(axis=-1), "m^3/s", "highest accelerator plate flow"),
        "rack_pressure_drop": Output(dp, "Pa", "rack network pressure drop at its supply flow"),
        # for the sweep's screen: what thermo run's check of the rack network tests
        "rack_check": Output(_rack_check(static, solution.rack), "",
                             "rack network: hydraulics converged (1/0), their residual, plates outside their curves"),
    }


def stack_params(designs) -> Params:
    """Stack the ``Params`` of designs with equal ``Static`` along a new
    leading axis (the batch of a sweep)."""
    import jax

    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *designs)


def design_bytes(static: Static) -> int:
    """Estimated peak bytes of one design (every hour; the sweep sizes its
    chunks with it), as :func:`_require_memory` estimates a run."""
    return static.hours * 4 * 8 * (60 + static.config.max_iter + 1)


def screen(static: Static, params: Params, outputs: dict) -> str:
    """Why one design of a sweep is not a result ("" when it is), from its
    :func:`report` outputs (numpy values): what :func:`check` refuses in
    ``thermo run``: an hour whose coupled solve did not converge (thermal
    runaway or the iteration limit), values that are not finite, or a
    temperature ordering broken beyond :mod:`thermo.bounds`' tolerance (the
    same test, on the extremes over the hours)."""
    out = outputs
    n_bad, i, runaway, res, its = (float(v) for v in np.asarray(out["convergence"], np.float64))
    if n_bad > 0 or not bool(out["converged"]):
        i = int(i)
        cause = (
            "thermal runaway (leakage grows faster than the cooling chain removes it)"
            if runaway
            else f"not converged at the iteration limit ([solver] max_iterations = {static.config.max_iter})"
        )
        return (
            f"the coupled junction-temperature solve did not converge in {int(n_bad)} of {static.hours} hours; "
            f"first at row {i} ({static.times[i]}): {cause}; residual {res:.3e} K after {int(its)} iterations"
        )
    if static.rack is not None:  # as thermo run's check of the rack network
        conv, res, n_out = (float(v) for v in np.asarray(out["rack_check"], np.float64))
        if conv < 1:
            return f"the rack network's flow solve did not converge (residual {res:.3e})"
        if n_out > 0:
            return (f"{int(n_out)} plates of the rack network run outside the flow range of their cold-plate curves; "
                    "the curves are not extrapolated")  # fmt: skip
    bad = [k for k in ("T_junction_max", "P_facility_mean", "tokens_per_s_mean", "J_per_token_facility")
           if not np.isfinite(float(out[k]))]  # fmt: skip
    if bad:
        return f"facility solve gave values that are not finite ({', '.join(bad)})"
    prec = static.precision
    ext = np.asarray(out["order_extremes"], np.float64)
    for (hot, cold, why), (d_min, d_max, scale, t_lo, t_hi, hour) in zip(_ORDERS, ext, strict=True):
        try:
            bounds.check(f"{hot} and {cold} (K)", [t_lo, t_hi], locate=lambda _i: "their extremes over the hours",
                         precision=prec)  # fmt: skip
        except SolveError as exc:
            return str(exc)
        tol = bounds.tolerance(d_max, scale, prec)
        if d_min < -tol:
            h = int(hour)
            return (
                f"{hot} is {-d_min:.4g} K below {cold} at row {h} ({static.times[h]}) (tolerance {tol:.2g} K); "
                f"{why}: the solution is not a result"
            )
    return ""


def check(static: Static, params: Params, solution: Solution) -> None:
    """Raise :class:`SolveError` when an hour of this (unbatched) design did not
    converge, a result is not finite, or a temperature ordering that the heat
    flow requires is broken (:func:`check_bounded`)."""
    _check(static, params, solution, "facility")
    check_bounded(static, params, solution)


def _check_curve_range(params: Params, what: str) -> None:
    """A flow per accelerator outside the cold-plate curves' table (a flow
    scale applied after parsing, as the FMU does) is a failed solve."""
    plate = params.hall.cold_plate
    if not hasattr(plate, "table_flow"):
        return
    q = np.atleast_1d(np.asarray(params.hall.flow_per_accelerator, np.float64))
    tq = np.asarray(plate.table_flow, np.float64)
    lo, hi = tq[..., 0], tq[..., -1]
    bad = (q < lo * (1 - 1e-9)) | (q > hi * (1 + 1e-9))
    if np.any(bad):
        raise SolveError(
            f"{what}: flow per accelerator {q[np.argmax(bad)] * 6e4:.4g} L/min is outside the flow range of the "
            f"cold-plate curves ({float(np.min(lo)) * 6e4:.4g}..{float(np.max(hi)) * 6e4:.4g} L/min); the curves are "
            "not extrapolated"
        )


def _rack_optimum(static: Static, params: Params, case: FacilityCase, x_opt, dt) -> dict[str, Quantity]:
    """The rack network at the optimum of ``thermo optimize``: its flow, the
    accelerator plates' flow range and the worst plate with its margin."""
    import jax.numpy as jnp

    p = with_controls(params, jnp.asarray(x_opt[0], dt), jnp.asarray(x_opt[1], dt))
    sol = Solution(*compiled_solve(static, batched=False)(p))
    ro = {k: float(np.asarray(o.value)) for k, o in _rack_outputs(static, sol).items() if k != "rack_check"}
    q_rack = case.rack.case.supply.flow
    return {
        "rack_flow_opt": Quantity(q_rack * x_opt[1] * 6e4, "L/min",
                                  f"supply flow per rack ({case.rack.file}: {q_rack * 6e4:.4g} L/min x flow scale)"),
        "accelerator_flow_min_opt": Quantity(ro["accelerator_flow_min"] * 6e4, "L/min", "lowest accelerator plate"),
        "accelerator_flow_max_opt": Quantity(ro["accelerator_flow_max"] * 6e4, "L/min", "highest accelerator plate"),
        "worst_plate_opt": Quantity(static.rack.labels[static.rack.accelerators[int(ro["worst_plate"])]], "",
                                    "the accelerator plate with the hottest junction at the optimum"),
        "junction_margin_opt": Quantity(ro["junction_margin"], "K", "junction limit minus the worst plate's peak"),
        "rack_pressure_drop_opt": Quantity(ro["rack_pressure_drop"] / 1e3, "kPa", "rack network at its flow"),
    }  # fmt: skip


def _rack_flow_bounds(static: Static):
    """(lo, hi) m^3/s per plate of the rack network: its curve file's flow
    range with the 1e-9 relative slack of the checks, (0, inf) without one."""
    rs = static.rack.static
    lo = np.zeros(len(rs.plate_type_index))
    hi = np.full(len(rs.plate_type_index), np.inf)
    for i, t in enumerate(rs.plate_type_index):
        rng = rs.curve_range[t] if rs.curve_range else None
        if rng is not None:
            lo[i], hi[i] = rng[0] * (1 - 1e-9), rng[1] * (1 + 1e-9)
    return lo, hi


def _rack_outside(static: Static, state):
    """Traceable: how many plates with a curve file run outside its flow range
    (a leading design axis when ``state`` has one)."""
    import jax.numpy as jnp

    lo, hi = _rack_flow_bounds(static)
    q = jnp.asarray(state.plate_flow)
    lo, hi = jnp.broadcast_to(lo, q.shape), jnp.broadcast_to(hi, q.shape)  # a design axis in front for a sweep
    return jnp.sum((q < lo) | (q > hi), axis=-1)


def _rack_feasible(static: Static, state):
    """Traceable: the rack network's hydraulics converged and every plate with
    a curve file runs inside its flow range (what :func:`_check_rack` checks)."""
    import jax.numpy as jnp

    return jnp.asarray(state.info.converged) & (_rack_outside(static, state) == 0)


def _rack_check(static: Static, state):
    """[converged (1/0), residual, plates outside their curves' range] of the
    rack network (traceable, a leading design axis when ``state`` has one)."""
    import jax.numpy as jnp

    res = jnp.asarray(state.info.residual)
    return jnp.stack([jnp.asarray(state.info.converged).astype(res.dtype), res,
                      _rack_outside(static, state).astype(res.dtype)], axis=-1)  # fmt: skip


def _check_rack(static: Static, solution: Solution, what: str) -> None:
    """The rack network of one design: converged, and every plate with a curve
    file inside its curve's flow range."""
    link = static.rack
    st = solution.rack
    if not bool(np.asarray(st.info.converged)):
        raise SolveError(
            f"{what}: the rack network's flow solve did not converge (residual "
            f"{float(np.asarray(st.info.residual)):.3e} after {int(np.asarray(st.info.iterations))} iterations)"
        )
    q = np.asarray(st.plate_flow, np.float64)
    rs = link.static
    for i, t in enumerate(rs.plate_type_index):
        rng = rs.curve_range[t] if rs.curve_range else None
        if rng is None:
            continue
        lo, hi = rng
        if not (lo * (1 - 1e-9) <= q[i] <= hi * (1 + 1e-9)):
            raise FlowOutsideCurves(
                f"{what}: {link.labels[i]} of the rack carries {q[i] * 6e4:.4g} L/min, outside the flow range of its "
                f"cold-plate curves ({lo * 6e4:.4g}..{hi * 6e4:.4g} L/min); the curves are not extrapolated: change "
                "the rack's flow ([supply] flow of the rack case, or the flow scale)",
                t,
            )


def _check(static: Static, params: Params, solution: Solution, what: str) -> None:
    if static.rack is None:
        _check_curve_range(params, what)
    else:
        _check_rack(static, solution, what)
    ops, infos = solution[:2]
    conv = np.asarray(infos.converged)
    finite = np.all([np.all(np.isfinite(np.asarray(x))) for x in (ops.t_j, ops.p_facility, ops.tokens_per_s)])
    if conv.all() and finite:
        return
    bad = np.flatnonzero(~conv)
    i = int(bad[0]) if bad.size else 0
    runaway = bool(np.asarray(ops.runaway)[i])
    t_db = np.asarray(params.ambient.t_db, np.float64)
    t_wb = np.asarray(params.ambient.t_wb, np.float64)
    cause = (
        "thermal runaway (leakage grows faster than the cooling chain removes it; no steady "
        "junction temperature exists)"
        if runaway
        else f"not converged when the iteration limit ([solver] max_iterations = {static.config.max_iter}) was "
        "reached, which is not thermal runaway: the junction temperature stayed below the runaway limit"
    )
    raise SolveError(
        f"{what}: the coupled junction-temperature solve did not converge in {bad.size} of "
        f"{conv.size} hours; first at row {i} ({static.times[i]}, dry bulb {t_db[i] - T0:.1f} degC, "
        f"wet bulb {t_wb[i] - T0:.1f} degC): {cause}; residual {float(np.asarray(infos.residual)[i]):.3e} K "
        f"after {int(np.asarray(infos.iterations)[i])} iterations. "
        + (
            "Try a lower facility-water supply temperature, more coolant flow or a larger heat-rejection rating."
            if runaway
            else "Raise [solver] max_iterations (or loosen [solver] tolerance)."
        )
    )


def check_bounded(static: Static, params: Params, solution: Solution) -> None:
    """Temperature orderings that heat added to the loops must keep
    (:mod:`thermo.bounds`), every converged hour of every design (``params``
    with or without a leading design axis): facility water leaves the CDU no
    colder than it arrives, the secondary supply is no colder than the
    facility-water supply (heat flows from the secondary to the facility
    water), the secondary return no colder than its supply and the junction
    no colder than the secondary supply. Raises :class:`SolveError` otherwise."""
    ops, infos = solution[:2]
    setpoints = np.atleast_1d(np.asarray(params.hall.t_supply_set, np.float64))
    conv_all = np.asarray(infos.converged).reshape(setpoints.size, -1).astype(bool)
    prec = static.precision
    for s, t_set in enumerate(setpoints):
        hours = np.flatnonzero(conv_all[s])
        if hours.size == 0:
            continue

        def locate(index, hours=hours, t_set=t_set):
            i = int(hours[int(index[-1])])
            return f"row {i} ({static.times[i]}) with the facility-water setpoint {t_set - T0:.4g} degC"

        def at(name, s=s, hours=hours):
            return np.asarray(getattr(ops, name), np.float64).reshape(setpoints.size, -1)[s][hours]

        for hot, cold, why in _ORDERS:
            bounds.check_order(hot, at(hot), cold, at(cold), why=why, locate=locate, precision=prec)


def _design(tree, i):
    import jax

    return jax.tree_util.tree_map(lambda x: x[i], tree)


def run(case: FacilityCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    """Solve every hour at the case's setpoint and at each sweep setpoint (one
    compiled, batched :func:`solve`), check, report and write the
    energy-per-token report into ``folder``."""
    progress.phase("build")
    static, params = build(case)
    designs = _with_setpoints(params, (case.params["t_supply_set"], *case.sweep_supply))
    progress.phase("solve")
    if static.rack is None:
        sol_all = _cached_year(batched=True)(static, designs)
    else:  # one compiled year per design: the design-batched rack chain compiles and runs far slower on CPU
        one = _cached_year(batched=False)
        n_designs = np.shape(designs.hall.t_supply_set)[0]
        sol_all = stack([one(static, _design(designs, i)) for i in range(n_designs)])
    progress.phase("write", ready=sol_all)
    sol = Solution(*_design(sol_all, 0))
    try:
        _check(static, _design(designs, 0), sol, "facility run")
    except FlowOutsideCurves as exc:  # the case's own flows and curves disagree: a problem of the case
        pt = case.rack.case.plate_types[exc.plate_type]
        if pt.curve_key.startswith("rack."):
            raise CaseError(case_file.path, pt.curve_key, str(exc)) from None
        raise CaseError(case_file.path, "rack.case", f"{exc} (curves of {case.rack.file}'s {pt.curve_key})") from None
    check_bounded(static, designs, sol_all)
    out = {k: np.asarray(o.value) for k, o in report(static, designs, sol_all).items()}
    first = {k: v[0] for k, v in out.items()}
    sweep = {k: v[1:] for k, v in out.items()}
    breakdown = {label: float(first[f"breakdown:{label}"]) for label in _BREAKDOWN}
    ops, infos = sol[:2]
    util = params.utilization
    hours = len(case.weather)
    summary = _summary(case, first, static)
    a = {k: np.asarray(v, np.float64) for k, v in dataclasses.asdict(ops).items()}
    hourly = {
        "time_index": Series(np.arange(hours), "h", "row of the weather file (hours from its start)"),
        "dry_bulb": Series(case.weather.t_db - T0, "degC", "ambient dry bulb"),
        "wet_bulb": Series(case.weather.t_wb - T0, "degC", "ambient wet bulb"),
        "utilization": Series(np.asarray(util, np.float64), "1", "accelerator utilization"),
        "T_junction": Series(a["t_j"] - T0, "degC", "accelerator junction temperature"),
        "T_secondary_supply": Series(a["t_tcs_supply"] - T0, "degC", "CDU secondary supply"),
        "T_facility_supply": Series(a["t_fw_supply"] - T0, "degC", "facility-water supply"),
        "T_facility_return": Series(a["t_fw_return"] - T0, "degC", "facility water leaving the CDU"),
        "P_accelerator": Series(a["p_accelerator"], "W", "power of one accelerator"),
        "clock": Series(a["clock"], "1", "clock fraction (throttling below 1)"),
        "tokens_per_s": Series(a["tokens_per_s"], "1/s", "hall throughput"),
        "P_IT": Series(a["p_it"], "W", "IT power"),
        "P_cooling": Series(a["p_cooling"], "W", "cooling power (boundary in summary)"),
        "P_facility": Series(a["p_facility"], "W", "facility power"),
        "P_pumps": Series(a["p_pump_tcs"] + a["p_pump_fw"], "W", "secondary + facility-water pumps"),
        "P_fans": Series(a["p_fan"], "W", "heat-rejection fans"),
        "P_chiller": Series(a["w_chiller"], "W", "chiller compressor"),
        "Q_rejected": Series(a["q_econ"] + a["q_cond"], "W", "heat rejected to ambient by the plant"),
        "Q_exported": Series(a["q_export"], "W", "heat exported to reuse"),
        "fan_fraction": Series(a["fan_fraction"], "1", "heat-rejection fan speed"),
        "free_cooling": Series(a["free_cooling"], "1", "1 when the setpoint is held without the chiller"),
        "water_makeup": Series(a["water_makeup"], "kg/s", "tower make-up water"),
        "J_per_token_facility": Series(a["p_facility"] / a["tokens_per_s"], "J", "facility J/token"),
        "month": Series(_months(case.weather.time), "1", "calendar month of the row (0: label not a date)"),
    }
    if sol.t_plates is not None:
        hourly["T_junction_accelerator_mean"] = Series(np.asarray(sol.t_plates, np.float64).mean(axis=-1) - T0,
                                                       "degC", "mean accelerator junction (T_junction: the hottest)")
    limits = {
        "T_junction_limit": Series(np.asarray(case.optimize.junction_limit - T0), "degC", "junction design limit"),
        "T_throttle": Series(np.asarray(case.params["accelerator"]["t_throttle"] - T0), "degC", "throttle onset"),
        "T_supply_setpoint": Series(np.asarray(case.params["t_supply_set"] - T0), "degC", "facility-water setpoint"),
    }
    solver = {
        "converged": np.asarray(infos.converged),
        "iterations": np.asarray(infos.iterations),
        "residual": np.asarray(infos.residual, np.float64),
        "tolerance": float(case.tolerance or (1e-9 if case.precision == "float64" else 1e-3)),
    }
    sweep_series = {
        "supply_temperature": Series(np.asarray(case.sweep_supply) - T0, "degC", "facility-water supply setpoint"),
        "J_per_token_facility": Series(sweep["J_per_token_facility"], "J", "facility J/token over the period"),
        "J_per_token_IT": Series(sweep["J_per_token_IT"], "J", "IT J/token"),
        "J_per_token_cooling": Series(sweep["J_per_token_cooling"], "J", "cooling J/token"),
        "T_junction_max": Series(sweep["T_junction_max"], "degC", "hottest junction over the period"),
        "converged": Series(sweep["converged"].astype(np.int8), "1", "every hour converged"),
        "free_cooling_hours": Series(sweep["free_cooling_hours"], "h", "hours without chiller"),
    }
    bd = {k.replace(" ", "_").replace("+", "and").replace("-", "_"): Series(np.asarray(v), "J", k)
          for k, v in breakdown.items()}  # fmt: skip
    write_series_results(
        folder,
        groups={"hourly": hourly, "sweep": sweep_series, "breakdown": bd, "limits": limits},
        case_text=case_file.text,
        case_parsed=case.as_dict(),
        solver=solver,
        summary=summary,
    )
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary


def _months(labels) -> np.ndarray:
    """Calendar month (1-12) of each weather row whose label starts with an ISO
    date (``YYYY-MM``), else 0."""
    import re

    iso = re.compile(r"^\s*\d{4}-(\d{2})")
    out = np.zeros(len(labels), np.int8)
    for i, label in enumerate(labels):
        m = iso.match(label)
        if m and 1 <= int(m.group(1)) <= 12:
            out[i] = int(m.group(1))
    return out


def _summary(case, r, static=None) -> dict[str, Quantity]:
    """The summary.json numbers of one design from its :func:`report` values ``r``."""
    hours = len(case.weather)
    period = "over the year" if case.hourly else "at the design point"
    tower = case.device != "dry_cooler"
    s = {
        "case": Quantity(case.name),
        "period": Quantity(f"{hours} hourly rows ({case.weather.source}; {case.weather.period})"
                           if case.hourly else "design point"),
        "J_per_token_IT": Quantity(float(r["J_per_token_IT"]), "J", f"IT energy per token {period}; "
                                   "IT = accelerators + other IT + in-rack conversion"),
        "J_per_token_cooling": Quantity(float(r["J_per_token_cooling"]), "J", f"cooling energy per token {period}; "
                                        "pumps + fans + chiller + condenser + room-air cooling"),
        "J_per_token_facility": Quantity(float(r["J_per_token_facility"]), "J", f"facility energy per token {period}; "
                                         "IT + cooling + overhead"),
        "cooling_W_per_token_per_s": Quantity(float(r["J_per_token_cooling"]), "W/(token/s)",
                                              "cooling power per unit throughput (= cooling J/token)"),
        "tokens_per_kWh_facility": Quantity(float(r["tokens_per_kWh_facility"]), "1/kWh",
                                            "TokEnergy-style index; boundary: whole facility "
                                            "(IT + cooling + overhead)"),
        "tokens_per_kWh_IT": Quantity(float(r["tokens_per_kWh_IT"]), "1/kWh", "boundary: IT only"),
        "partial_PUE_cooling": Quantity(float(r["partial_PUE_cooling"]), "", "(IT + cooling) / IT"),
        "PUE": Quantity(float(r["PUE"]), "", "facility / IT"),
        "T_junction_max": Quantity(float(r["T_junction_max"]), "degC", f"hottest junction {period}"),
        "T_junction_mean": Quantity(float(r["T_junction_mean"]), "degC", "mean junction temperature"),
        "clock_min": Quantity(float(r["clock_min"]), "", "lowest clock fraction (1: never throttled)"),
        "T_facility_supply_max": Quantity(float(r["T_facility_supply_max"]), "degC",
                                          "warmest facility-water supply (setpoint unless it floats)"),
        "leakage_share": Quantity(float(r["leakage_share"]), "",
                                  "leakage / accelerator power"),
        "P_IT_mean": Quantity(float(r["P_IT_mean"]), "W"),
        "P_cooling_mean": Quantity(float(r["P_cooling_mean"]), "W"),
        "P_facility_mean": Quantity(float(r["P_facility_mean"]), "W"),
        "tokens_per_s_mean": Quantity(float(r["tokens_per_s_mean"]), "1/s", "hall throughput"),
    }  # fmt: skip
    if case.hourly:
        s.update(
            energy_IT=Quantity(float(r["energy_IT"]), "MWh", "IT energy over the file"),
            energy_cooling=Quantity(float(r["energy_cooling"]), "MWh"),
            energy_facility=Quantity(float(r["energy_facility"]), "MWh"),
            tokens=Quantity(float(r["tokens"]), "", "tokens over the file"),
            free_cooling_hours=Quantity(float(r["free_cooling_hours"]), "h",
                                        "hours the heat-rejection device alone holds the supply setpoint"),
        )  # fmt: skip
        if case.chiller != "none":
            s["chiller_hours"] = Quantity(float(r["chiller_hours"]), "h", "hours with the chiller on")
        else:
            s["floating_supply_hours"] = Quantity(
                float(r["floating_supply_hours"]),
                "h",
                "hours the supply floats above the setpoint (no chiller)",
            )
    if tower:
        s["water_L_per_kWh"] = Quantity(float(r["water_L_per_kWh"]), "L/kWh",
                                        "tower make-up water per kWh of IT energy (WUE)")  # fmt: skip
        if case.hourly:
            s["water_use"] = Quantity(float(r["water_use"]), "m^3", "make-up water over the file")
    if static is not None and static.rack is not None:
        link = static.rack
        worst = link.accelerators[int(r["worst_plate"])]
        s.update(
            worst_plate=Quantity(link.labels[worst], "",
                                 f"accelerator plate with the hottest junction {period} (rack network's name; "
                                 + (f"all {case.rack.racks} racks alike)" if case.rack.row_racks == 1 else
                                    f"one row of {case.rack.row_racks} racks)" if case.rack.rows == 1 else
                                    f"all {case.rack.rows} rows of {case.rack.row_racks} racks alike)")),
            T_junction_worst_peak=Quantity(float(r["T_junction_worst_peak"]), "degC",
                                           f"the worst plate's hottest junction {period}"),
            junction_margin=Quantity(float(r["junction_margin"]), "K",
                                     f"junction limit ({link.junction_limit - T0:.4g} degC) minus that peak"),
            T_junction_spread_max=Quantity(float(r["T_junction_spread_max"]), "K",
                                           "largest hottest-minus-mean accelerator junction of any hour"),
            accelerator_flow_min=Quantity(float(r["accelerator_flow_min"]) * 6e4, "L/min",
                                          "lowest accelerator plate flow"),
            accelerator_flow_max=Quantity(float(r["accelerator_flow_max"]) * 6e4, "L/min",
                                          "highest accelerator plate flow"),
            rack_pressure_drop=Quantity(float(r["rack_pressure_drop"]) / 1e3, "kPa",
                                        "rack network (plates, hoses, manifolds, QDs) at its supply flow"
                                        + ("" if case.rack.row_racks == 1 else "; the whole row's, with its "
                                           "headers, at the row's flow")),
        )  # fmt: skip
    s.update(
        solver_converged=Quantity(True),
        solver_iterations_max=Quantity(int(r["iterations"])),
        solver_residual_max=Quantity(float(r["residual_max"]), "K", "|T_j - T_j,model|"),
    )
    return s


# --------------------------------------------------------------------------- optimize


def optimize(case: FacilityCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    """Minimize facility J/token over the facility-water supply temperature and a
    coolant flow scale (both loops), and, when ``[cold_plate] case`` names a
    compact plate and ``[optimize]`` bounds its ``channel_width`` and/or
    ``fin_thickness``, over the plate's geometry too, subject to the hottest
    junction staying at or below ``junction_limit``, within the bounds.

    Method: a coarse grid scan over supply and flow (``grid`` points, every
    hour at every point, the case's own plate) finds the best feasible point;
    SLSQP (scipy) then refines every variable from there with gradients of the
    annual J/token and of the hottest junction temperature by implicit
    differentiation of every hour's converged solve and, for the geometry,
    through the plate's finite-volume solves at its curve flows
    (:mod:`aidc_thermo.chain_grad`). The result is kept only if it converges,
    passes ``thermo run``'s checks, is feasible and is no worse than the grid's
    best. Sensitivities at the optimum: the gradient, and J/token at +-1 K and
    +-5 % flow.
    """
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize

    progress.phase("build")
    static, params = build(case)
    dt = _dtype(case)
    metrics = _year_metrics(static)
    opt = case.optimize
    (t_lo, t_hi), (s_lo, s_hi) = opt.supply_bounds, opt.flow_scale_bounds
    geometry = opt.geometry
    chain = None
    if geometry:
        from aidc_thermo.chain_grad import plate_hall_chain

        chain = plate_hall_chain(case.plate.case, case)
    plate_x0 = None if chain is None else np.asarray(chain.x0[:2], np.float64)  # channel width, fin thickness
    geo_index = {"channel_width": 0, "fin_thickness": 1}

    def point(x):  # the same solve as thermo run, at setpoint x[0] and flow scale x[1] (a rack's flows follow it)
        j, tj, conv, _ = metrics(with_controls(params, x[0], x[1]))
        return j, tj, conv

    def chain_x(x):  # (supply, flow scale, *geometry) -> the chain's (width, thickness, supply, flow scale)
        plate = [jnp.asarray(v, dt) for v in plate_x0]
        for k, (name, _, _) in enumerate(geometry):
            plate[geo_index[name]] = x[2 + k]
        return jnp.stack([*plate, x[0], x[1]])

    def point_solved(x):  # every variable, and with the plate the solutions thermo run's checks read
        if chain is None:
            return point(x), None
        from aidc_thermo.models import compact

        pp, ps, hp = chain.params_at(chain_x(x))
        hs = solve(chain.hall_static, hp)
        j, tj, conv, _ = _solution_metrics(chain.hall_static, hs)
        plate_ok = compact.report(chain.plate_static, pp, ps)["converged"].value
        return (j, tj, jnp.logical_and(conv, plate_ok)), (ps, hp, hs)

    def point_full(x):  # every variable: the plate solved at its geometry when it is one of them
        return point_solved(x)[0]

    grid_t = np.linspace(t_lo, t_hi, opt.grid[0])
    grid_s = np.linspace(s_lo, s_hi, opt.grid[1])
    tt, ss = np.meshgrid(grid_t, grid_s, indexing="ij")
    xs = jnp.asarray(np.stack([tt.ravel(), ss.ravel()], axis=1), dt)
    progress.phase("solve")
    j_g, tj_g, conv_g = (np.asarray(v, np.float64) for v in jit(lambda x: jax.lax.map(point, x))(xs))
    j_g, tj_g, conv_g = j_g.reshape(tt.shape), tj_g.reshape(tt.shape), conv_g.reshape(tt.shape) > 0
    feasible = conv_g & (tj_g <= opt.junction_limit)
    if not feasible.any():
        raise SolveError(
            f"optimize: no point of the {opt.grid[0]}x{opt.grid[1]} grid keeps the junction at or below "
            f"{opt.junction_limit - T0:.1f} degC (coolest hottest junction "
            f"{np.nanmin(np.where(conv_g, tj_g, np.inf)) - T0:.1f} degC): lower the supply bound, raise the "
            "flow bound, or relax the limit"
        )
    ig = np.unravel_index(np.argmin(np.where(feasible, j_g, np.inf)), j_g.shape)
    # the grid's best, with the case's own plate (its geometry clipped into the bounds only as SLSQP's start)
    x_grid = np.array([grid_t[ig[0]], grid_s[ig[1]]] + [plate_x0[geo_index[g[0]]] for g in geometry])
    j_grid = float(j_g[ig])

    # Gradient refinement in unit-box coordinates: one compiled function gives
    # J/token, the hottest junction and both their gradients (implicit).
    lo = np.array([t_lo, s_lo] + [g[1] for g in geometry])
    hi = np.array([t_hi, s_hi] + [g[2] for g in geometry])
    span = hi - lo
    n_var = len(lo)

    def j_and_tj(u):
        j, tj, _ = point_full(jnp.asarray(lo, dt) + u * jnp.asarray(span, dt))
        return jnp.stack([j, tj])

    def values_and_jacobian(u):
        # the two rows of the Jacobian one after the other (lax.map over the cotangents), not jacrev's vmap:
        # batching the plate's adjoint while loops made the program trace and compile longer and run slower
        # (bundled temperate hall with the bundled GPU plate's geometry: trace and lowering 10.9 -> 4.9 s,
        # compilation 31.9 -> 23.0 s, one evaluation 1.49 -> 1.09 s on a 2-core CPU; the same Jacobian to 1e-12)
        v, vjp = jax.vjp(j_and_tj, u)
        return v, jax.lax.map(lambda c: vjp(c)[0], jnp.eye(2, dtype=v.dtype))

    vals_jac = jit(values_and_jacobian)
    cache: dict = {}

    def evaluate(u):
        key = tuple(np.round(np.asarray(u, np.float64), 15))
        if key not in cache:
            v, jac = vals_jac(jnp.asarray(u, dt))
            cache[key] = (np.asarray(v, np.float64), np.asarray(jac, np.float64))
            progress.step("SLSQP evaluation", len(cache))
        return cache[key]

    def fun(u):
        v, jac = evaluate(u)
        return v[0] / j_grid, jac[0] / j_grid

    def con(u):
        return opt.junction_limit - evaluate(u)[0][1]

    def con_jac(u):
        return -evaluate(u)[1][1]

    res = minimize(
        fun, np.clip((x_grid - lo) / span, 0.0, 1.0), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * n_var,
        constraints=[{"type": "ineq", "fun": con, "jac": con_jac}],
        options={"maxiter": 60, "ftol": 1e-10},
    )  # fmt: skip
    # one program for the points below and, with the plate, the checks of the refined point (its solutions)
    point_solved_jit = jit(point_solved)

    def point_jit(x):
        return point_solved_jit(x)[0]

    x_ref = lo + np.clip(res.x, 0.0, 1.0) * span
    values_ref, solved_ref = point_solved_jit(jnp.asarray(x_ref, dt))
    j_ref, tj_ref, conv_ref = (float(v) for v in values_ref)
    refined_ok = bool(conv_ref) and tj_ref <= opt.junction_limit + 1e-6 and j_ref <= j_grid
    rejected = ""
    if refined_ok and static.rack is not None:  # thermo run's checks of the rack network and of every hour
        try:
            p_ref = with_controls(params, jnp.asarray(x_ref[0], dt), jnp.asarray(x_ref[1], dt))
            _check(static, p_ref, Solution(*compiled_solve(static, batched=False)(p_ref)), "optimize")
        except SolveError as exc:
            refined_ok, rejected = False, f"; the refined point failed thermo run's checks: {exc}"
    if refined_ok and chain is not None:  # thermo run's checks of the plate's solves and of every hour
        try:
            chain.checked(np.asarray(chain_x(jnp.asarray(x_ref, dt)), np.float64), solved=solved_ref)
        except SolveError as exc:
            refined_ok, rejected = False, f"; the refined point failed thermo run's checks: {exc}"
    if refined_ok:
        x_opt, j_opt, tj_opt = x_ref, j_ref, tj_ref
    else:  # the grid's best, at the case's own plate
        x_opt, j_opt, tj_opt = x_grid.copy(), j_grid, float(tj_g[ig])
    method = ("grid + SLSQP (implicit gradients" + (", through the plate's solves)" if chain is not None else ")")
              if refined_ok else "grid (SLSQP did not improve" + rejected + ")")  # fmt: skip

    # Sensitivities.
    g_j = evaluate((x_opt - lo) / span)[1][0] / span  # dJ/dx in physical units
    x_base = np.array([case.params["t_supply_set"], 1.0] + [plate_x0[geo_index[g[0]]] for g in geometry])
    j_base, tj_base, conv_base = (float(v) for v in point_jit(jnp.asarray(x_base, dt)))
    neighbours = {}
    for name, dx in (("supply_minus_1K", (-1.0, 0.0)), ("supply_plus_1K", (1.0, 0.0)),
                     ("flow_minus_5pct", (0.0, -0.05)), ("flow_plus_5pct", (0.0, 0.05))):  # fmt: skip
        x = x_opt.copy()
        x[:2] = np.clip(x_opt[:2] + np.asarray(dx), [t_lo, s_lo], [t_hi, s_hi])
        jn, tjn, _ = (float(v) for v in point_jit(jnp.asarray(x, dt)))
        neighbours[name] = (jn, tjn)
    progress.phase("write")
    active = tj_opt >= opt.junction_limit - 0.05
    q_cp = case.params["flow_per_accelerator"] * x_opt[1]
    summary = {
        "case": Quantity(case.name),
        "objective": Quantity(
            "facility J/token " + ("over the weather file" if case.hourly else "at the design point")
        ),
        "method": Quantity(method),
        "supply_temperature_opt": Quantity(float(x_opt[0] - T0), "degC", "facility-water supply setpoint"),
        "flow_scale_opt": Quantity(float(x_opt[1]), "", "coolant flow / case flow (both loops)"),
        "flow_per_accelerator_opt": Quantity(q_cp * 60000.0, "L/min", "" if case.rack is None else
                                             "secondary flow / accelerators (plates in series share a flow)"),
        "facility_water_flow_opt": Quantity(case.params["flow_fw"] * x_opt[1] * 1e3, "L/s"),
        **({} if case.rack is None else _rack_optimum(static, params, case, x_opt, dt)),
        "J_per_token_facility_opt": Quantity(j_opt, "J"),
        "T_junction_max_opt": Quantity(tj_opt - T0, "degC"),
        "junction_limit": Quantity(opt.junction_limit - T0, "degC"),
        "junction_limit_active": Quantity(bool(active)),
        "J_per_token_facility_case": Quantity(j_base, "J", "at the case's own setpoint and flow"),
        "T_junction_max_case": Quantity(tj_base - T0, "degC"),
        "saving_vs_case": Quantity((j_base - j_opt) / j_base, "", "fraction of facility J/token"),
        "dJ_dsupply_temperature": Quantity(float(g_j[0]), "J/K", "at the optimum (implicit gradient)"),
        "dJ_dflow_scale": Quantity(float(g_j[1]), "J", "at the optimum (implicit gradient)"),
        "grid_best_supply_temperature": Quantity(float(x_grid[0] - T0), "degC"),
        "grid_best_flow_scale": Quantity(float(x_grid[1])),
        "grid_best_J_per_token_facility": Quantity(j_grid, "J"),
        "slsqp_iterations": Quantity(int(res.nit)),
        "slsqp_message": Quantity(str(res.message)),
    }
    for k, (name, g_lo, g_hi) in enumerate(geometry):
        summary.update({
            f"{name}_opt": Quantity(float(x_opt[2 + k]) * 1e3, "mm", f"the cold plate's (bounds {g_lo * 1e3:.4g}.."
                                    f"{g_hi * 1e3:.4g} mm; {case.plate.raw})"),
            f"{name}_case": Quantity(float(plate_x0[geo_index[name]]) * 1e3, "mm", "the plate case's own"),
            f"dJ_d{name}": Quantity(float(g_j[2 + k]) * 1e-3, "J/mm", "at the optimum (implicit gradient through "
                                    "the plate's finite-volume solves)"),
        })  # fmt: skip
    for name, (jn, tjn) in neighbours.items():
        summary[f"J_per_token_{name}"] = Quantity(jn, "J", f"T_j,max {tjn - T0:.2f} degC")
    write_series_results(
        folder,
        groups={
            "grid": {
                "supply_temperature": Series(grid_t - T0, "degC", "grid axis 0"),
                "flow_scale": Series(grid_s, "1", "grid axis 1"),
                "J_per_token_facility": Series(j_g, "J", "facility J/token on the grid"),
                "T_junction_max": Series(tj_g - T0, "degC", "hottest junction on the grid"),
                "feasible": Series(feasible.astype(np.int8), "1", "converged and within the limit"),
            }
        },
        case_text=case_file.text,
        case_parsed=case.as_dict(),
        solver={"slsqp_iterations": int(res.nit), "slsqp_success": bool(res.success)},
        summary=summary,
    )
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary
