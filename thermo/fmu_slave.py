"""The pythonfmu slave behind ``thermo fmu`` (see :mod:`aidc_thermo.fmu`), one for every exportable case type.

Imported by the FMU's generated module in the importing tool's Python process;
needs pythonfmu (``pip install 'aidc-thermo[fmu]'``). The variables are those
of the case type's point class (``INPUTS``, ``PARAMETERS``, ``CASE_CONSTANTS``,
``OUTPUT_VARIABLES`` of :class:`aidc_thermo.fmu.FacilityPoint` or
:class:`aidc_thermo.fmu.RackPoint`), with their SI units declared in the model
description.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

from pythonfmu import Boolean, Fmi2Causality, Fmi2Slave, Fmi2Variability, Integer, Real
from pythonfmu.default_experiment import DefaultExperiment
from pythonfmu.enums import Fmi2Initial, Fmi2Status

from aidc_thermo import fmu
from aidc_thermo.errors import CaseError, SolveError

__all__ = ["FacilitySlave", "ThermoSlave"]

_KINDS = {"Real": Real, "Integer": Integer, "Boolean": Boolean}
_ZERO = {"Real": 0.0, "Integer": 0, "Boolean": False}


class ThermoSlave(Fmi2Slave):
    """A facility or rack case as an FMI 2.0 co-simulation slave: the variables
    and the per-step solve are those of the case type's point class
    (:data:`aidc_thermo.fmu.EXPORTERS`), chosen by the case type the export
    recorded in the FMU's resources."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        import jax

        # the FMU is an entry point: precision is set here, as the thermo command does
        jax.config.update("jax_enable_x64", True)
        self._point = point = fmu.load_embedded(self.resources)
        from aidc_thermo import __version__

        self.author = "aidc-thermo"
        self.version = __version__
        self.description = point.DESCRIPTION + repr(point.case.name)
        self.default_experiment = DefaultExperiment(start_time=0.0, stop_time=86400.0, step_size=3600.0)
        self._units: dict[str, str] = {}

        for var in point.INPUTS:
            setattr(self, var.name, point.start[var.name])
            self._register(Real(var.name, causality=Fmi2Causality.input, variability=Fmi2Variability.continuous,
                                description=var.description), var.unit)  # fmt: skip
        for name, value in point.parameters().items():
            setattr(self, name, value)
        for var in point.PARAMETERS:
            self._register(Real(var.name, causality=Fmi2Causality.parameter, variability=Fmi2Variability.fixed,
                                description=var.description), var.unit)  # fmt: skip
        for name, value in point.constants().items():
            setattr(self, name, value)
        for var in point.CASE_CONSTANTS:
            self._register(Real(var.name, causality=Fmi2Causality.calculatedParameter,
                                variability=Fmi2Variability.fixed, initial=Fmi2Initial.calculated,
                                description=var.description), var.unit)  # fmt: skip
        for var in point.OUTPUT_VARIABLES:
            setattr(self, var.name, _ZERO[var.kind])
            real = var.kind == "Real"
            variability = Fmi2Variability.continuous if real else Fmi2Variability.discrete
            self._register(_KINDS[var.kind](var.name, causality=Fmi2Causality.output, variability=variability,
                                            initial=Fmi2Initial.calculated, description=var.description),
                           var.unit if real else "1")  # fmt: skip

    def _register(self, var, unit: str) -> None:
        self.register_variable(var)
        if unit != "1":
            self._units[var.name] = unit

    def to_xml(self, model_options=None) -> Element:
        """pythonfmu's model description with the SI units of the variables
        (``UnitDefinitions`` and each Real's ``unit``)."""
        root = super().to_xml(model_options or {})
        units = SubElement(root, "UnitDefinitions")
        for name in sorted(set(self._units.values())):
            u = SubElement(units, "Unit", name=name)
            SubElement(u, "BaseUnit", {k: str(v) for k, v in fmu.UNITS[name].items()})
        # FMI 2.0 order: CoSimulation, UnitDefinitions, ..., LogCategories, DefaultExperiment, ModelVariables
        root.remove(units)
        children = list(root)
        at = next(i for i, c in enumerate(children) if c.tag == "CoSimulation") + 1
        root.insert(at, units)
        initial = []
        for i, sv in enumerate(root.find("ModelVariables"), start=1):
            unit = self._units.get(sv.get("name"))
            real = sv.find("Real")
            if unit is not None and real is not None:
                real.set("unit", unit)
            if sv.get("initial") == "calculated":
                initial.append(i)
        # FMI 2.0: outputs and calculated parameters with initial="calculated" are initial unknowns
        structure = root.find("ModelStructure")
        unknowns = SubElement(structure, "InitialUnknowns")
        for i in initial:
            SubElement(unknowns, "Unknown", index=str(i))
        return root

    def _inputs(self) -> dict[str, float]:
        return {var.name: float(getattr(self, var.name)) for var in self._point.INPUTS}

    def _solve(self, label: str) -> str | None:
        """Solve for the current inputs and set the outputs; the error message, or None."""
        try:
            self._point.set_parameters({var.name: getattr(self, var.name) for var in self._point.PARAMETERS})
            out = self._point.solve(**self._inputs(), label=label)
        except (fmu.InputError, SolveError, CaseError) as exc:
            return f"{label}: {exc}"
        for name, value in out.items():
            setattr(self, name, value)
        return None

    def exit_initialization_mode(self):
        error = self._solve("initialization")
        if error is not None:  # pythonfmu reports an exception here as fmi2Fatal, with this message
            raise RuntimeError(error)

    def do_step(self, current_time: float, step_size: float) -> bool:
        error = self._solve(f"step from t = {current_time:g} s")
        if error is not None:
            self.log(error, Fmi2Status.error)  # pythonfmu returns fmi2Discard; no output was changed
        return error is None


#: The name FMUs written before the rack export import.
FacilitySlave = ThermoSlave
