"""``thermo fmu``: the facility model as an FMI 2.0 co-simulation unit (FMU).

An FMU is a zip file that another simulator (a Modelica tool such as
OpenModelica or Dymola, an FMI-based digital twin of the data centre, FMPy)
loads and steps. Ours is built with pythonfmu: the FMU holds the case file as
written (``resources/case.toml``), a small JSON file of what the export
decided (``resources/aidc_thermo_fmu.json``: start values, the version), a
short Python module that names the slave class, and pythonfmu's loader
library. **It runs in the importing tool's process with the Python
environment in which aidc-thermo (and pythonfmu) is installed**: the physics
is not copied into the FMU, it is this package's facility model.

Each ``doStep(t, h)`` solves the steady operating point of the hall for the
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

Inputs, parameters and outputs (names, units, meaning) are listed in
:data:`INPUTS`, :data:`PARAMETERS` and :data:`OUTPUTS`; docs/fmu.md shows them
as a table. A bad input (utilization outside (0, 1], a wet bulb above the
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
    "FacilityPoint",
    "InputError",
    "check_flow_scale",
    "export",
    "load_embedded",
]

T0 = 273.15
#: Name of the model (and of the FMU's binaries): an FMI model identifier.
MODEL_NAME = "AidcThermoFacility"
#: Files inside the FMU's resources folder.
CASE_RESOURCE = "case.toml"
META_RESOURCE = "aidc_thermo_fmu.json"
SLAVE_MODULE = "aidc_thermo_fmu_slave"
#: Case types that can be exported.
EXPORTABLE = ("facility",)

#: FMI 2.0 unit definitions (SI base-unit exponents) of the units used below.
UNITS = {
    "K": {"K": 1},
    "W": {"kg": 1, "m": 2, "s": -3},
    "Pa": {"kg": 1, "m": -1, "s": -2},
    "J": {"kg": 1, "m": 2, "s": -2},
    "kg/s": {"kg": 1, "s": -1},
    "1/s": {"s": -1},
}


class InputError(ValueError):
    """An FMU input or parameter outside what the model accepts; the message
    names the variable, its value and the accepted range."""


@dataclass(frozen=True)
class Variable:
    name: str
    unit: str  # "1" for dimensionless
    description: str


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
ITERATIONS_OUTPUT = Variable("solver_iterations", "1", "Newton iterations of the coupled solve in the last step")


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
        ops, infos = solution
        a = {k: float(np.asarray(v, np.float64)[0]) for k, v in dataclasses.asdict(ops).items()}
        a["_residual"] = float(np.asarray(infos.residual, np.float64)[0])
        out = {var.name: float(f(a)) for var, f in OUTPUTS}
        bad = [k for k, v in out.items() if not math.isfinite(v)]
        if bad:
            raise SolveError(f"{label}: non-finite outputs {bad}")
        out[ITERATIONS_OUTPUT.name] = int(np.asarray(infos.iterations)[0])
        return out


def load_embedded(resources: str | Path, flow_scale: float = 1.0) -> FacilityPoint:
    """The :class:`FacilityPoint` of an FMU's resources folder (the case file as
    exported, its ambient replaced by the start design point)."""
    from aidc_thermo.models import facility

    resources = Path(resources)
    meta = json.loads((resources / META_RESOURCE).read_text(encoding="utf-8"))
    path = resources / CASE_RESOURCE
    text = path.read_text(encoding="utf-8")
    import tomllib

    s = meta["start"]
    data = _ambient_design_point(tomllib.loads(text), s["T_dry_bulb"], s["T_wet_bulb"], s["p_ambient"])
    case_file = CaseFile(path, text, data)
    return FacilityPoint(facility.parse(case_file), case_file, flow_scale)


# --------------------------------------------------------------------------- export

_SLAVE_SCRIPT = '''\
"""FMU slave of aidc-thermo (generated by `thermo fmu`): the model is the facility
model of the aidc-thermo package installed in the importing tool's Python
environment (pip install "aidc-thermo[fmu]")."""
import ctypes as _ctypes

try:
    from aidc_thermo.fmu_slave import FacilitySlave
except ImportError as exc:  # say what is missing, in the importing tool's log
    raise ImportError(
        "this FMU runs the facility model of the aidc-thermo Python package, which is not importable in "
        f"this Python environment ({{exc}}): pip install 'aidc-thermo[fmu]' into the Python that the "
        "simulation tool loads"
    ) from exc

# pythonfmu's loader (0.6-0.7) executes this file in this module's namespace once per instantiation and
# then releases one reference to that namespace that it never took: take that reference here, for good, so
# that a second instantiation in one process neither finds the namespace freed nor frees it twice at exit
_ctypes.pythonapi.Py_IncRef(_ctypes.py_object(globals()))


class {name}(FacilitySlave):
    """The facility case {case!r} (exported by aidc-thermo {version})."""
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


#: The cold-plate curve file of a case, inside the FMU's resources folder.
CURVES_RESOURCE = "cold_plate_curves.csv"


def _embed_curves(case_file: CaseFile, res: Path) -> tuple[str, list[Path]]:
    """The case text to embed and the extra resource files: a ``[cold_plate]
    curves`` file is copied beside the case (as :data:`CURVES_RESOURCE`) and
    the embedded case names it there, so the FMU reads the same curves."""
    ref = case_file.data.get("cold_plate", {}).get("curves")
    if not isinstance(ref, str):
        return case_file.text, []
    source = (case_file.directory / ref).resolve()
    (res / CURVES_RESOURCE).write_bytes(source.read_bytes())
    pattern = re.compile(r'^(\s*curves\s*=\s*)(["\'])' + re.escape(ref) + r"\2", re.MULTILINE)
    text, n = pattern.subn(lambda m: f'{m.group(1)}"{CURVES_RESOURCE}"', case_file.text)
    if n != 1:
        raise CaseError(case_file.path, "cold_plate.curves", "give the curve file as one quoted path on its line")
    return text, [res / CURVES_RESOURCE]


def export(case_path: str | Path, target: str | Path) -> dict:
    """Write the FMU of the facility case ``case_path`` to ``target`` (a
    ``.fmu`` path) atomically: into a temporary file beside it, renamed into
    place when complete; on any failure nothing is left. Raises
    :class:`CaseError` for a bad case or a case type that cannot be exported,
    :class:`~aidc_thermo.io.output.OutputRefused` for a refused path. Returns
    facts for the command to print."""
    from aidc_thermo import __version__
    from aidc_thermo.io import output
    from aidc_thermo.io.case import load
    from aidc_thermo.models import facility
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
    case = model.parse(case_file)
    facility.rated_params(case)  # the ratings' CaseErrors (exit 2) before anything is written
    point = FacilityPoint(case, case_file)
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
            _SLAVE_SCRIPT.format(name=MODEL_NAME, case=case.name, version=__version__), encoding="utf-8"
        )
        res = pending.tmpdir / "res"
        res.mkdir()
        case_text, extra = _embed_curves(case_file, res)
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
    return {"case": case.name, "fmu": str(target), "size": target.stat().st_size, "start": point.start}
