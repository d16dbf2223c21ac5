"""``thermo fmu``: the facility or rack model as an FMI 2.0 co-simulation unit (FMU).

An FMU is a zip file that another simulator (a Modelica tool such as
OpenModelica or Dymola, an FMI-based digital twin of the data centre, FMPy)
loads and steps. Ours is built with pythonfmu: the FMU holds the case file as
written (``resources/case.toml``), a small JSON file of what the export
decided (``resources/aidc_thermo_fmu.json``: start values, the version), a
short Python module that names the slave class, and pythonfmu's loader
library. **It runs in the importing tool's process with the Python
environment in which aidc-thermo (and pythonfmu) is installed**: the physics
is not copied into the FMU, it is this package's facility (or rack) model.

One class per exportable case type (:data:`EXPORTERS`: :class:`FacilityPoint`,
:class:`RackPoint`) decides everything type-specific: the inputs, parameters,
case constants and outputs with their units, the start values, the input
checks, and the per-step solve through the model's own build / solve / check /
report; the export, the embedding of the case and its curve files and the
pythonfmu slave (:mod:`aidc_thermo.fmu_slave`) are shared.

Facility: each ``doStep(t, h)`` solves the steady operating point of the hall for the
inputs set before the step (held over the step): the same coupled
junction-temperature / chip-power / coolant-temperature solve that
``thermo run`` does for one hour of the weather file
(:func:`aidc_thermo.models.facility.solve` over one row, with the
supply setpoint and flow scale applied by ``with_controls`` as ``run`` and
``optimize`` apply them), checked the way ``run`` checks it (convergence,
finite values, temperature orderings). The outputs after initialization are
those of the start inputs, so a tool that samples at the start time sees a
solved point too. The model has no state: a step's outputs depend only on
its inputs, whatever the step size.

Rack (:class:`RackPoint`): each step solves the rack network (flows,
pressures, temperatures, junction temperatures) for the supply temperature,
supply flow and plate power scale set before the step, checked as ``thermo
run`` checks it (convergence, the maximum principle, boiling, plate flows
inside their curve files' range).

The facility's inputs, parameters and outputs (names, units, meaning) are listed in
:data:`INPUTS`, :data:`PARAMETERS` and :data:`OUTPUTS`, the rack's in
:data:`RACK_INPUTS`, :data:`RACK_CASE_CONSTANTS` and :data:`RACK_OUTPUTS`;
docs/fmu.md shows them as tables. A bad input (utilization outside (0, 1], a wet bulb above the
dry bulb, a supply setpoint outside the coolants' range, ...) or a solve that
does not converge makes ``doStep`` fail (``fmi2Discard``) with an error log message
that names the input, its value and what is expected; no output is changed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseError, CaseFile, Table

__all__ = [
    "INPUTS",
    "OUTPUTS",
    "PARAMETERS",
    "EXPORTERS",
    "FacilityPoint",
    "InputError",
    "RackPoint",
    "check_flow_scale",
    "export",
    "load_embedded",
]

T0 = 273.15
#: Name of the facility model (and of its FMU's binaries): an FMI model identifier.
MODEL_NAME = "AidcThermoFacility"
#: Files inside the FMU's resources folder.
CASE_RESOURCE = "case.toml"
META_RESOURCE = "aidc_thermo_fmu.json"
SLAVE_MODULE = "aidc_thermo_fmu_slave"

#: FMI 2.0 unit definitions (SI base-unit exponents) of the units used below.
UNITS = {
    "K": {"K": 1},
    "W": {"kg": 1, "m": 2, "s": -3},
    "Pa": {"kg": 1, "m": -1, "s": -2},
    "J": {"kg": 1, "m": 2, "s": -2},
    "kg/s": {"kg": 1, "s": -1},
    "1/s": {"s": -1},
    "m^3/s": {"m": 3, "s": -1},
}


class InputError(ValueError):
    """An FMU input or parameter outside what the model accepts; the message
    names the variable, its value and the accepted range."""


@dataclass(frozen=True)
class Variable:
    name: str
    unit: str  # "1" for dimensionless
    description: str
    kind: str = "Real"  # FMI type of an output: "Real", "Integer" or "Boolean"


#: Inputs (continuous, set before each step). Temperatures in K, as FMI and Modelica expect.
INPUTS = (
    Variable("utilization", "1", "accelerator utilization, 0 < u <= 1 (replaces the case's [it] utilization)"),
    Variable("T_dry_bulb", "K", "outdoor dry-bulb temperature"),
    Variable("T_wet_bulb", "K", "outdoor wet-bulb temperature (used by towers; must not exceed the dry bulb)"),
    Variable("p_ambient", "Pa", "outdoor air pressure"),
    Variable("T_supply_setpoint", "K", "facility-water supply temperature setpoint"),
)

#: Parameters (fixed: set before initialization).
PARAMETERS = (
    Variable("flow_scale", "1", "coolant flow of both loops relative to the case's flows (as thermo optimize)"),
)

#: Calculated parameters: numbers of the case, for the importing tool to read.
CASE_CONSTANTS = (
    Variable("n_accelerators", "1", "accelerators in the hall ([it] accelerators)"),
    Variable("T_junction_limit", "K", "junction design limit ([it] junction_limit)"),
    Variable("T_throttle", "K", "junction temperature where throttling starts ([it] throttle_temperature)"),
)


def _op(name):
    return lambda a: a[name]


#: Outputs: (variable, function of the operating point's arrays, a dict of
#: OperatingPoint field -> float). Hall totals unless the description says otherwise.
OUTPUTS = (
    (Variable("T_junction", "K", "accelerator junction temperature"), _op("t_j")),
    (Variable("clock", "1", "clock fraction (below 1: throttled)"), _op("clock")),
    (Variable("P_accelerator", "W", "power of one accelerator (idle + dynamic + leakage)"), _op("p_accelerator")),
    (Variable("T_secondary_supply", "K", "secondary (TCS) coolant leaving the CDU to the racks"), _op("t_tcs_supply")),
    (Variable("T_secondary_return", "K", "secondary coolant returning from the racks"), _op("t_tcs_return")),
    (Variable("T_facility_supply", "K", "facility-water supply (the setpoint unless it floats)"), _op("t_fw_supply")),
    (Variable("T_facility_return", "K", "facility water leaving the CDU"), _op("t_fw_return")),
    (Variable("tokens_per_s", "1/s", "hall throughput"), _op("tokens_per_s")),
    (Variable("P_IT", "W", "IT power: accelerators + other IT + in-rack conversion"), _op("p_it")),
    (Variable("Q_liquid", "W", "heat through the CDU (IT heat into liquid + secondary pump heat)"), _op("q_tcs")),
    (Variable("P_pump_secondary", "W", "secondary (TCS) pump power"), _op("p_pump_tcs")),
    (Variable("P_pump_facility", "W", "facility-water pump power"), _op("p_pump_fw")),
    (Variable("P_pumps", "W", "secondary + facility-water pumps"), lambda a: a["p_pump_tcs"] + a["p_pump_fw"]),
    (Variable("P_fans", "W", "heat-rejection fans"), _op("p_fan")),
    (Variable("P_chiller", "W", "chiller compressor"), _op("w_chiller")),
    (Variable("P_cooling", "W", "cooling power: pumps, fans, chiller, condenser, room-air cooling"), _op("p_cooling")),
    (Variable("P_facility", "W", "facility power: IT + cooling + overhead"), _op("p_facility")),
    (Variable("Q_rejected", "W", "heat rejected to ambient by the plant"), lambda a: a["q_econ"] + a["q_cond"]),
    (Variable("Q_exported", "W", "heat exported to reuse"), _op("q_export")),
    (Variable("fan_fraction", "1", "heat-rejection fan speed"), _op("fan_fraction")),
    (Variable("free_cooling", "1", "1 when the setpoint is held without the chiller"), _op("free_cooling")),
    (Variable("water_makeup", "kg/s", "tower make-up water (0 for a dry cooler)"), _op("water_makeup")),
    (Variable("J_per_token_IT", "J", "IT energy per token"), lambda a: a["p_it"] / a["tokens_per_s"]),
    (Variable("J_per_token_cooling", "J", "cooling energy per token"), lambda a: a["p_cooling"] / a["tokens_per_s"]),
    (Variable("J_per_token_facility", "J", "facility energy per token"), lambda a: a["p_facility"] / a["tokens_per_s"]),
    (Variable("PUE", "1", "facility power / IT power"), lambda a: a["p_facility"] / a["p_it"]),
    (Variable("solver_residual", "K", "|T_j - T_j,model| of the coupled solve"), lambda a: a["_residual"]),
)
#: Integer output: Newton iterations of the last step's coupled solve.
ITERATIONS_OUTPUT = Variable(
    "solver_iterations", "1", "Newton iterations of the coupled solve in the last step", "Integer"
)


# --------------------------------------------------------------------------- the model behind the FMU


def _ambient_design_point(data: dict, t_db: float, t_wb: float, p: float) -> dict:
    """The case's TOML data with its ``[ambient]`` replaced by one design point
    (SI numbers): the FMU takes the ambient as inputs, so the case's weather
    file is neither needed nor read at run time."""
    out = dict(data)
    out["ambient"] = {"dry_bulb": float(t_db), "wet_bulb": float(t_wb), "pressure": float(p)}
    return out


def check_flow_scale(flow_scale: float) -> float:
    """The ``flow_scale`` parameter, checked (raises :class:`InputError`)."""
    if not (isinstance(flow_scale, (int, float)) and math.isfinite(flow_scale) and 0.05 <= flow_scale <= 20.0):
        raise InputError(f"parameter flow_scale = {flow_scale!r}: expected a number between 0.05 and 20")
    return float(flow_scale)


class FacilityPoint:
    """The facility case solved at one operating point per call.

    ``solve(**inputs)`` returns a dict of :data:`OUTPUTS` (and
    ``solver_iterations``) for :data:`INPUTS` given by name (SI units);
    raises :class:`InputError` for an input outside the accepted range and
    :class:`~aidc_thermo.errors.SolveError` when the coupled solve does not
    converge or breaks a temperature ordering (the checks of ``thermo run``).
    The solver is compiled once, on the first call.
    """

    CASE_TYPE = "facility"
    MODEL_NAME = MODEL_NAME
    WHAT = "facility model"
    DESCRIPTION = (
        "aidc-thermo facility model: coupled accelerator junction temperature, chip power, coolant loops, heat "
        "rejection and energy per token. Each doStep solves the steady operating point for the inputs set before "
        "the step. Runs in the Python environment of the importing tool, which must have aidc-thermo installed "
        "(pip install 'aidc-thermo[fmu]'). Case: "
    )
    INPUTS = INPUTS
    PARAMETERS = PARAMETERS
    CASE_CONSTANTS = CASE_CONSTANTS
    #: every output in model-description order, with its FMI type
    OUTPUT_VARIABLES = (*(v for v, _ in OUTPUTS), ITERATIONS_OUTPUT)

    @staticmethod
    def curve_refs(data: dict) -> list[tuple[str, str]]:
        """(key, path as written) of the curve files the case reads."""
        ref = data.get("cold_plate", {}).get("curves") if isinstance(data.get("cold_plate"), dict) else None
        return [("cold_plate.curves", ref)] if isinstance(ref, str) else []

    @staticmethod
    def preflight(case) -> None:
        """The CaseErrors (exit 2) that only building finds, before anything is written."""
        from aidc_thermo.models import facility

        if case.rack is not None:
            raise CaseError(case.ratings.get("file", ""), "rack", "thermo fmu does not embed a rack case in a "
                            "facility FMU yet; export the rack case itself, or a hall with [cold_plate]")  # fmt: skip
        facility.rated_params(case)

    @classmethod
    def from_resources(cls, path: Path, text: str, meta: dict) -> FacilityPoint:
        """The point of an FMU's embedded case (its ambient replaced by the start design point)."""
        import tomllib

        from aidc_thermo.models import facility

        s = meta["start"]
        data = _ambient_design_point(tomllib.loads(text), s["T_dry_bulb"], s["T_wet_bulb"], s["p_ambient"])
        case_file = CaseFile(path, text, data)
        return cls(facility.parse(case_file), case_file)

    def parameters(self) -> dict[str, float]:
        return {"flow_scale": self.flow_scale}

    def set_parameters(self, values: dict) -> None:
        self.flow_scale = check_flow_scale(float(values["flow_scale"]))

    def __init__(self, case, case_file: CaseFile, flow_scale: float = 1.0):
        from aidc_thermo.models import facility

        self.case = case
        self.case_file = case_file
        self.flow_scale = check_flow_scale(flow_scale)
        secondary = case_file.data.get("secondary", {})
        water = case_file.data.get("facility_water", {})

        def coolant(d, key):
            t = d.get("coolant") if isinstance(d, dict) else None
            return None if t is None else Table(t, case_file.path, key)

        self.supply_range = facility._supply_range(
            coolant(secondary, "secondary.coolant"), coolant(water, "facility_water.coolant")
        )
        self._solver = None

    @property
    def start(self) -> dict[str, float]:
        """Start values of the inputs: the case's (mean) utilization, its first
        weather row (or design point) and its supply setpoint."""
        w = self.case.weather
        return {
            "utilization": float(self.case.params["utilization"]),
            "T_dry_bulb": float(w.t_db[0]),
            "T_wet_bulb": float(w.t_wb[0]),
            "p_ambient": float(w.p[0]),
            "T_supply_setpoint": float(self.case.params["t_supply_set"]),
        }

    def constants(self) -> dict[str, float]:
        p = self.case.params
        return {
            "n_accelerators": float(p["n_accelerators"]),
            "T_junction_limit": float(self.case.optimize.junction_limit),
            "T_throttle": float(p["accelerator"]["t_throttle"]),
        }

    def check_inputs(self, utilization, T_dry_bulb, T_wet_bulb, p_ambient, T_supply_setpoint) -> None:
        def bad(name, value, expected):
            return InputError(f"input {name} = {value!r}: {expected}")

        values = dict(utilization=utilization, T_dry_bulb=T_dry_bulb, T_wet_bulb=T_wet_bulb,
                      p_ambient=p_ambient, T_supply_setpoint=T_supply_setpoint)  # fmt: skip
        for name, v in values.items():
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise bad(name, v, "expected a finite number")
        if not 0.0 < utilization <= 1.0:
            raise bad("utilization", utilization, "expected 0 < utilization <= 1 (at zero load no token is made)")
        # the weather files' range (thermo/io/weather.py: dry bulb -60..60 degC)
        if not T0 - 60.0 <= T_dry_bulb <= T0 + 60.0:
            raise bad("T_dry_bulb", T_dry_bulb, "expected 213.15..333.15 K (-60..60 degC); temperatures are in kelvin")
        if not T0 - 60.0 <= T_wet_bulb <= T_dry_bulb + 1e-9:
            raise bad("T_wet_bulb", T_wet_bulb, f"expected 213.15 K up to the dry bulb ({T_dry_bulb:.6g} K)")
        if not 5e4 <= p_ambient <= 1.1e5:
            raise bad("p_ambient", p_ambient, "expected 50000..110000 Pa (the case's [ambient] pressure range)")
        lo, hi, text = self.supply_range
        if not lo - 1e-9 <= T_supply_setpoint <= hi + 1e-9:
            raise bad("T_supply_setpoint", T_supply_setpoint, f"expected {lo:.6g}..{hi:.6g} K: {text}")

    def _compile(self):
        import jax.numpy as jnp

        from aidc_thermo.io.weather import Weather
        from aidc_thermo.kernels.plant.coupled import Ambient
        from aidc_thermo.models import facility

        # one row of the case: the protocol's build and solve, compiled once for the step's shape
        w = self.case.weather
        row = Weather(("step",), w.t_db[:1], w.t_wb[:1], w.p[:1], "FMU")
        static, params = facility.build(dataclasses.replace(self.case, weather=row, sweep_supply=()))
        solve = facility.compiled_solve(static, batched=False)
        dt = params.hall.t_supply_set.dtype

        def step(t_db, t_wb, p, util, t_set, scale):
            one = facility.with_controls(params, jnp.asarray(t_set, dt), jnp.asarray(scale, dt))
            one = one._replace(
                ambient=Ambient(t_db=jnp.asarray([t_db], dt), t_wb=jnp.asarray([t_wb], dt), p=jnp.asarray([p], dt)),
                utilization=jnp.asarray([util], dt),
            )
            return static, one, solve(one)

        return step

    def solve(self, utilization, T_dry_bulb, T_wet_bulb, p_ambient, T_supply_setpoint, label: str = "step"):
        from aidc_thermo.models import facility

        self.check_inputs(utilization, T_dry_bulb, T_wet_bulb, p_ambient, T_supply_setpoint)
        if self._solver is None:
            self._solver = self._compile()
        static, params, solution = self._solver(
            T_dry_bulb, T_wet_bulb, p_ambient, utilization, T_supply_setpoint, self.flow_scale
        )
        # the checks of thermo run, on the one-row design, with this step named in messages
        static = dataclasses.replace(static, times=(label,))
        facility._check(static, params, solution, "FMU step")
        facility.check_bounded(static, params, solution)
        ops, infos = solution[:2]
        a = {k: float(np.asarray(v, np.float64)[0]) for k, v in dataclasses.asdict(ops).items()}
        a["_residual"] = float(np.asarray(infos.residual, np.float64)[0])
        out = {var.name: float(f(a)) for var, f in OUTPUTS}
        bad = [k for k, v in out.items() if not math.isfinite(v)]
        if bad:
            raise SolveError(f"{label}: non-finite outputs {bad}")
        out[ITERATIONS_OUTPUT.name] = int(np.asarray(infos.iterations)[0])
        return out


# --------------------------------------------------------------------------- the rack model behind the FMU

#: Rack inputs (continuous, set before each step).
RACK_INPUTS = (
    Variable("T_supply", "K", "coolant supply temperature into the rack (replaces the case's [supply] temperature)"),
    Variable("V_flow_supply", "m^3/s", "coolant supply flow into the rack, > 0 (replaces the case's [supply] flow)"),
    Variable(
        "power_scale",
        "1",
        "every plate's power relative to the case's [[plate_types]] power, >= 0 (the "
        "rack's heat load: Q_liquid = power_scale x Q_liquid_case)",
    ),
)

#: Rack case constants (calculated parameters).
RACK_CASE_CONSTANTS = (
    Variable("n_trays", "1", "trays fed by the manifolds"),
    Variable("n_plates", "1", "cold plates"),
    Variable("Q_liquid_case", "W", "heat into the coolant at power_scale = 1 (sum of the case's plate powers)"),
    Variable("V_flow_case", "m^3/s", "the case's [supply] flow"),
    Variable("T_supply_case", "K", "the case's [supply] temperature"),
)

#: Rack outputs: (variable, report() key, factor, offset): the SI value is
#: report value x factor + offset (report() gives degC, kPa and L/min).
RACK_OUTPUTS = (
    (Variable("T_junction_max", "K", "hottest chip junction, T_plate_inlet + R(Q) P"), "T_junction_max", 1.0, T0),
    (Variable("T_return", "K", "mixed coolant temperature leaving the rack"), "T_return", 1.0, T0),
    (Variable("T_plate_outlet_max", "K", "hottest cold-plate outlet"), "T_plate_outlet_max", 1.0, T0),
    (Variable("rack_pressure_drop", "Pa", "static pressure, rack inlet minus outlet"), "rack_pressure_drop", 1e3, 0.0),
    (
        Variable("pump_pressure_rise", "Pa", "pressure rise the CDU pump must add for the rack (elevation removed)"),
        "pump_pressure_rise",
        1e3,
        0.0,
    ),
    (Variable("hydraulic_power", "W", "supply flow x pump pressure rise"), "hydraulic_power", 1.0, 0.0),
    (
        Variable("pump_electrical_power", "W", "hydraulic power / the case's wire-to-water pump efficiency"),
        "pump_electrical_power",
        1.0,
        0.0,
    ),
    (Variable("plate_flow_min", "m^3/s", "lowest cold-plate flow"), "plate_flow_min", 1.0 / 60000.0, 0.0),
    (Variable("plate_flow_max", "m^3/s", "highest cold-plate flow"), "plate_flow_max", 1.0 / 60000.0, 0.0),
    (Variable("flow_ratio_min", "1", "lowest plate flow / mean flow of its plate type"), "flow_ratio_min", 1.0, 0.0),
    (Variable("flow_ratio_max", "1", "highest plate flow / mean flow of its plate type"), "flow_ratio_max", 1.0, 0.0),
    (
        Variable("tray_flow_ratio_min", "1", "lowest tray flow / mean flow of its tray type"),
        "tray_flow_ratio_min",
        1.0,
        0.0,
    ),
    (
        Variable("heat_balance_error", "1", "|rho cp Q (T_return - T_supply) - heat| / heat"),
        "heat_balance_error",
        1.0,
        0.0,
    ),
    (Variable("solver_residual", "1", "relative residual of the flow network (Newton) solve"), "residual", 1.0, 0.0),
)
#: Rack outputs of other FMI types: (variable, report() key).
RACK_DISCRETE_OUTPUTS = (
    (
        Variable(
            "hottest_plate", "1", "index (in plate order, as thermo run's results.h5) of the hottest chip", "Integer"
        ),
        "hottest_plate",
    ),
    (
        Variable(
            "converged", "1", "the flow and temperature solves converged (a step that does not is discarded)", "Boolean"
        ),
        "converged",
    ),
    (
        Variable("solver_iterations", "1", "Newton iterations of the flow network solve in the last step", "Integer"),
        "iterations",
    ),
)


class RackPoint:
    """A ``rack_network`` case solved at one operating point per call.

    ``solve(T_supply, V_flow_supply, power_scale)`` (SI) returns a dict of the
    :data:`RACK_OUTPUTS` and :data:`RACK_DISCRETE_OUTPUTS`: the model's own
    :func:`~aidc_thermo.models.rack.build` once, then per call its ``Params``
    with the three inputs replaced, :func:`~aidc_thermo.models.rack.solve`
    (compiled once), :func:`~aidc_thermo.models.rack.check` (raises
    :class:`~aidc_thermo.errors.SolveError`: no convergence, maximum principle,
    boiling, a plate flow outside its curve file's range) and
    :func:`~aidc_thermo.models.rack.report`, converted to SI. Raises
    :class:`InputError` for an input outside the accepted range.
    """

    CASE_TYPE = "rack_network"
    MODEL_NAME = "AidcThermoRack"
    WHAT = "rack network model"
    DESCRIPTION = (
        "aidc-thermo rack network model: manifold, hose, quick-disconnect and cold-plate flow distribution, "
        "coolant temperatures and chip junction temperatures of one liquid-cooled rack. Each doStep solves the "
        "steady state for the inputs set before the step. Runs in the Python environment of the importing tool, "
        "which must have aidc-thermo installed (pip install 'aidc-thermo[fmu]'). Case: "
    )
    INPUTS = RACK_INPUTS
    PARAMETERS = ()
    CASE_CONSTANTS = RACK_CASE_CONSTANTS
    OUTPUT_VARIABLES = (*(v for v, *_ in RACK_OUTPUTS), *(v for v, _ in RACK_DISCRETE_OUTPUTS))

    def __init__(self, case, case_file: CaseFile):
        self.case = case
        self.case_file = case_file
        self._solver = None

    @staticmethod
    def curve_refs(data: dict) -> list[tuple[str, str]]:
        types = data.get("plate_types")
        if not isinstance(types, list):
            return []
        return [(f"plate_types[{i}].curves", t["curves"]) for i, t in enumerate(types)
                if isinstance(t, dict) and isinstance(t.get("curves"), str)]  # fmt: skip

    @staticmethod
    def preflight(case) -> None:
        """Nothing beyond parsing: the network is built (and checked) on the first solve."""

    @classmethod
    def from_resources(cls, path: Path, text: str, meta: dict) -> RackPoint:
        import tomllib

        from aidc_thermo.models import rack

        case_file = CaseFile(path, text, tomllib.loads(text))
        return cls(rack.parse(case_file), case_file)

    def parameters(self) -> dict[str, float]:
        return {}

    def set_parameters(self, values: dict) -> None:
        pass

    @property
    def start(self) -> dict[str, float]:
        """Start values of the inputs: the case's supply and power scale 1."""
        s = self.case.supply
        return {"T_supply": float(s.temperature), "V_flow_supply": float(s.flow), "power_scale": 1.0}

    def constants(self) -> dict[str, float]:
        c = self.case
        n_plates = sum(len(br) for t in c.trays for br in c.tray(t).branches)
        return {"n_trays": float(len(c.trays)), "n_plates": float(n_plates), "Q_liquid_case": float(c.liquid_power),
                "V_flow_case": float(c.supply.flow), "T_supply_case": float(c.supply.temperature)}  # fmt: skip

    def check_inputs(self, T_supply, V_flow_supply, power_scale) -> None:
        from aidc_thermo.coolant import range_text

        def bad(name, value, expected):
            return InputError(f"input {name} = {value!r}: {expected}")

        for name, v in dict(T_supply=T_supply, V_flow_supply=V_flow_supply, power_scale=power_scale).items():
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise bad(name, v, "expected a finite number")
        co = self.case.coolant
        if not co.t_min - 1e-9 <= T_supply <= co.t_max + 1e-9:
            hint = "; temperatures are in kelvin" if T_supply < co.t_min else ""
            raise bad("T_supply", T_supply, f"expected {co.t_min:.6g}..{co.t_max:.6g} K ({range_text(co)}){hint}")
        if not V_flow_supply > 0.0:
            raise bad("V_flow_supply", V_flow_supply, "expected a flow > 0 m^3/s (1 L/min = 1.6667e-05 m^3/s)")
        if not power_scale >= 0.0:
            raise bad("power_scale", power_scale, "expected power_scale >= 0 (the plates only add heat)")

    def _compile(self):
        from aidc_thermo.models import rack

        static, params = rack.build(self.case)
        return static, params, rack.compiled_solve(static, batched=False)

    def params_at(self, T_supply, V_flow_supply, power_scale):
        """The rack's ``(Static, Params)`` with the three inputs applied (builds and compiles on the first call)."""
        import jax.numpy as jnp

        if self._solver is None:
            self._solver = self._compile()
        static, base, _ = self._solver
        dt = base.supply_flow.dtype
        powers = np.asarray([p.power for p in self.case.plate_types], np.float64) * float(power_scale)
        params = base._replace(supply_temperature=jnp.asarray(T_supply, dt), supply_flow=jnp.asarray(V_flow_supply, dt),
                               plate_power=jnp.asarray(powers, dt))  # fmt: skip
        return static, params

    def solve(self, T_supply, V_flow_supply, power_scale, label: str = "step"):
        from aidc_thermo.models import rack

        self.check_inputs(T_supply, V_flow_supply, power_scale)
        static, params = self.params_at(T_supply, V_flow_supply, power_scale)
        solution = self._solver[2](params)
        try:
            rack.check(static, params, solution)  # the checks of thermo run
        except SolveError as exc:
            raise SolveError(f"{label}: {exc}") from None
        rep = {k: np.asarray(o.value) for k, o in rack.report(static, params, solution).items()}
        out = {var.name: float(rep[key]) * factor + offset for var, key, factor, offset in RACK_OUTPUTS}
        bad = [k for k, v in out.items() if not math.isfinite(v)]
        if bad:
            raise SolveError(f"{label}: non-finite outputs {bad}")
        for var, key in RACK_DISCRETE_OUTPUTS:
            out[var.name] = bool(rep[key]) if var.kind == "Boolean" else int(rep[key])
        return out


#: The exportable case types and the class that decides their FMU.
EXPORTERS = {"facility": FacilityPoint, "rack_network": RackPoint}
EXPORTABLE = tuple(EXPORTERS)


def load_embedded(resources: str | Path):
    """The point (:class:`FacilityPoint` or :class:`RackPoint`, by the case
    type the export recorded) of an FMU's resources folder."""
    resources = Path(resources)
    meta = json.loads((resources / META_RESOURCE).read_text(encoding="utf-8"))
    path = resources / CASE_RESOURCE
    text = path.read_text(encoding="utf-8")
    return EXPORTERS[meta.get("case_type", "facility")].from_resources(path, text, meta)


# --------------------------------------------------------------------------- export

_SLAVE_SCRIPT = '''\
"""FMU slave of aidc-thermo (generated by `thermo fmu`): the model is the {what}
of the aidc-thermo package installed in the importing tool's Python
environment (pip install "aidc-thermo[fmu]")."""
import ctypes as _ctypes

try:
    from aidc_thermo.fmu_slave import ThermoSlave
except ImportError as exc:  # say what is missing, in the importing tool's log
    raise ImportError(
        "this FMU runs the {what} of the aidc-thermo Python package, which is not importable in "
        f"this Python environment ({{exc}}): pip install 'aidc-thermo[fmu]' into the Python that the "
        "simulation tool loads"
    ) from exc

# pythonfmu's loader (0.6-0.7) executes this file in this module's namespace once per instantiation and
# then releases one reference to that namespace that it never took: take that reference here, for good, so
# that a second instantiation in one process neither finds the namespace freed nor frees it twice at exit
_ctypes.pythonapi.Py_IncRef(_ctypes.py_object(globals()))


class {name}(ThermoSlave):
    """The {case_type} case {case!r} (exported by aidc-thermo {version})."""
'''


def _refuse_output(target: Path) -> str | None:
    """Why ``target`` must not receive the FMU, or None."""
    if target.suffix.lower() != ".fmu":
        return "must end in .fmu"
    if os.path.isdir(target):
        return "is a folder"
    if os.path.lexists(target):
        try:
            with zipfile.ZipFile(target) as z:
                if f"resources/{META_RESOURCE}" in z.namelist():
                    return None  # an FMU thermo fmu wrote: replaced
        except (OSError, zipfile.BadZipFile):
            pass
        return "exists and is not an FMU written by thermo fmu"
    return None


def _atomic(target: Path):
    """A temporary path beside ``target``; registered with the signal handler of
    :mod:`aidc_thermo.io.output` so that Ctrl-C leaves no partial file."""
    from aidc_thermo.io import output

    class _Pending:
        def __init__(self):
            self.given = str(target)
            self.created: list[Path] = []
            p = target.parent
            missing = []
            while not os.path.lexists(p):
                missing.append(p)
                p = p.parent
            for d in reversed(missing):
                os.mkdir(d)
                self.created.append(d)
            self.tmpdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))

        def abort(self):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            for d in reversed(self.created):
                try:
                    os.rmdir(d)
                except OSError:
                    break
            self.created = []

    with output._CRITICAL:
        try:
            pending = _Pending()
        except OSError as exc:
            raise output.OutputRefused(
                f"output file {str(target)!r} cannot be written: {exc.strerror or exc}; refusing"
            ) from None
        output._ACTIVE.append(pending)
    return pending


#: The cold-plate curve file of a case, inside the FMU's resources folder
#: (further distinct files: cold_plate_curves_2.csv, ...).
CURVES_RESOURCE = "cold_plate_curves.csv"


def _plate_case_refs(data: dict) -> list[str]:
    """The keys by which a facility or rack case names a cold plate by its
    case (``[cold_plate] case``, ``[[plate_types]] case``: :mod:`aidc_thermo.curve_cache`)."""
    keys = []
    if isinstance(data.get("cold_plate"), dict) and "case" in data["cold_plate"]:
        keys.append("cold_plate.case")
    types = data.get("plate_types")
    if isinstance(types, list):
        keys += [f"plate_types[{i}].case" for i, t in enumerate(types) if isinstance(t, dict) and "case" in t]
    return keys


def _embed_curves(case_file: CaseFile, res: Path, refs: list[tuple[str, str]]) -> tuple[str, list[Path]]:
    """The case text to embed and the extra resource files: every curve file
    the case names (``refs``: (key, path as written)) is copied beside the
    case (:data:`CURVES_RESOURCE`, then ``cold_plate_curves_2.csv``, ... for
    further distinct files) and the embedded case names it there, so the FMU
    reads the same curves."""
    text, extra, named = case_file.text, [], {}
    for key, ref in refs:
        if ref in named:
            continue
        name = CURVES_RESOURCE if not named else f"cold_plate_curves_{len(named) + 1}.csv"
        named[ref] = name
        source = (case_file.directory / ref).resolve()
        (res / name).write_bytes(source.read_bytes())
        extra.append(res / name)
        pattern = re.compile(r'^(\s*curves\s*=\s*)(["\'])' + re.escape(ref) + r"\2", re.MULTILINE)
        text, n = pattern.subn(lambda m, name=name: f'{m.group(1)}"{name}"', text)
        if n != sum(1 for _, r in refs if r == ref):
            raise CaseError(case_file.path, key, "give the curve file as one quoted path on its line")
    return text, extra


def export(case_path: str | Path, target: str | Path) -> dict:
    """Write the FMU of the facility or rack case ``case_path`` to ``target`` (a
    ``.fmu`` path) atomically: into a temporary file beside it, renamed into
    place when complete; on any failure nothing is left. Raises
    :class:`CaseError` for a bad case or a case type that cannot be exported,
    :class:`~aidc_thermo.io.output.OutputRefused` for a refused path. Returns
    facts for the command to print."""
    from aidc_thermo import __version__
    from aidc_thermo.io import output
    from aidc_thermo.io.case import load
    from aidc_thermo.registry import model_for

    target = Path(target)
    reason = _refuse_output(target)
    if reason is not None:
        raise output.OutputRefused(f"output file {str(target)!r} {reason}; refusing to write there (e.g. -o model.fmu)")
    case_file = load(case_path)
    model = model_for(case_file)
    if model.CASE_TYPE not in EXPORTABLE:
        raise CaseError(
            case_file.path,
            "case.type",
            f"thermo fmu exports {' and '.join(repr(t) for t in EXPORTABLE)} cases; {model.CASE_TYPE!r} cannot "
            "be exported as an FMU",
        )
    kind = EXPORTERS[model.CASE_TYPE]
    for key in _plate_case_refs(case_file.data):
        raise CaseError(
            case_file.path,
            key,
            "thermo fmu embeds cold-plate curve files, not cold-plate cases: run the plate case (thermo run "
            "plate.toml -o OUT) and name OUT/curves.csv here as curves = ...",
        )
    case = model.parse(case_file)
    if getattr(case, "row", None) is not None:  # the FMU's inputs are one rack's supply flow and temperature
        raise CaseError(case_file.path, "row", "a rack_network case with [row] (a row of racks) cannot be exported "
                        "as an FMU yet: its inputs are one rack's; export the rack case without [row]")  # fmt: skip
    kind.preflight(case)  # e.g. the facility ratings' CaseErrors (exit 2) before anything is written
    point = kind(case, case_file)
    try:
        from pythonfmu import FmuBuilder
    except ImportError:
        raise CaseError(
            case_file.path, "", "thermo fmu needs the pythonfmu package: pip install 'aidc-thermo[fmu]'"
        ) from None

    meta = {
        "tool": "aidc-thermo",
        "version": __version__,
        "case_type": model.CASE_TYPE,
        "case_name": case.name,
        "case_file": str(case_file.path),
        "start": point.start,
    }
    pending = _atomic(target)
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    try:
        src = pending.tmpdir / "src"
        src.mkdir()
        (src / f"{SLAVE_MODULE}.py").write_text(
            _SLAVE_SCRIPT.format(
                name=kind.MODEL_NAME, what=kind.WHAT, case_type=kind.CASE_TYPE, case=case.name, version=__version__
            ),
            encoding="utf-8",
        )
        res = pending.tmpdir / "res"
        res.mkdir()
        case_text, extra = _embed_curves(case_file, res, kind.curve_refs(case_file.data))
        (res / CASE_RESOURCE).write_text(case_text, encoding="utf-8")
        (res / META_RESOURCE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        built = pending.tmpdir / f"{secrets.token_hex(4)}.fmu"
        FmuBuilder.build_FMU(
            src / f"{SLAVE_MODULE}.py",
            dest=built,
            project_files=[res / CASE_RESOURCE, res / META_RESOURCE, *extra],
        )
        with zipfile.ZipFile(built) as z:  # complete before it is moved into place
            bad = z.testzip()
            if bad is not None:
                raise OSError(f"the FMU archive is corrupt at {bad}")
        with output._CRITICAL:
            reason = _refuse_output(target)
            if reason is not None:
                raise output.OutputRefused(f"output file {str(target)!r} {reason} (it changed during the export)")
            os.replace(built, target)
            pending.created = []
    except OSError as exc:
        raise output.OutputWriteFailed(
            f"writing the FMU to {str(target)!r} failed: {exc.strerror or exc}. Nothing was written"
        ) from exc
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if name == SLAVE_MODULE or name.startswith("pythonfmu_"):
                sys.modules.pop(name, None)
        with output._CRITICAL:
            pending.abort()
            if pending in output._ACTIVE:
                output._ACTIVE.remove(pending)
    return {
        "case": case.name,
        "case_type": model.CASE_TYPE,
        "fmu": str(target),
        "size": target.stat().st_size,
        "start": point.start,
    }
