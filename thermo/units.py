"""Units of case-file quantities.

A quantity in a case file is either a plain number, which is SI (m, K, W,
Pa, m^3/s, ...), or a string with a unit that pint understands: ``"0.5 mm"``,
``"35 degC"``, ``"80 W/cm^2"``, ``"1.5 L/min"``. :func:`to_si` checks the
dimension against what the key expects and returns the SI magnitude.
"""

from __future__ import annotations

import math
from functools import lru_cache

import pint

__all__ = ["DIMENSIONS", "UnitError", "to_si", "registry"]


class UnitError(ValueError):
    """A value that is not a quantity of the expected dimension."""


#: Expected dimension name -> (SI unit, an example for error messages).
DIMENSIONS: dict[str, tuple[str, str]] = {
    "dimensionless": ("dimensionless", "0.5"),
    "length": ("m", '"0.5 mm"'),
    "area": ("m^2", '"1 cm^2"'),
    "temperature": ("K", '"35 degC"'),
    "temperature_difference": ("K", '"10 K"'),
    "power": ("W", '"700 W"'),
    "heat_flux": ("W/m^2", '"80 W/cm^2"'),
    "power_density": ("W/m^3", '"1e9 W/m^3"'),
    "heat_transfer_coefficient": ("W/m^2/K", '"20000 W/m^2/K"'),
    "thermal_conductivity": ("W/m/K", '"390 W/m/K"'),
    "thermal_resistance": ("K/W", '"0.02 K/W"'),
    "thermal_conductance": ("W/K", '"250 kW/K"'),
    "volumetric_flow": ("m^3/s", '"1.5 L/min"'),
    "mass_flow": ("kg/s", '"0.03 kg/s"'),
    "pressure": ("Pa", '"20 kPa"'),
    "velocity": ("m/s", '"1 m/s"'),
    "density": ("kg/m^3", '"998 kg/m^3"'),
    "dynamic_viscosity": ("Pa*s", '"1 mPa*s"'),
    "specific_heat": ("J/kg/K", '"4180 J/kg/K"'),
    "time": ("s", '"1 h"'),
    "energy": ("J", '"1 kWh"'),
}


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """The application's unit registry (created once, on first use)."""
    ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    ureg.define("lpm = liter / minute = LPM")
    ureg.define("gpm = gallon / minute = GPM")
    return ureg


def _dimensionality(name: str):
    return registry().Quantity(1.0, DIMENSIONS[name][0]).dimensionality


def to_si(value, dimension: str) -> float:
    """SI magnitude of ``value``, which must have ``dimension``.

    Plain numbers are taken as SI. Temperatures given as plain numbers are
    kelvin; one below 150 is almost certainly meant in °C, so it is refused
    with a hint. A temperature *difference* written in degC/degF is read as a
    difference (``"10 degC"`` is 10 K).

    Raises:
        UnitError: with a sentence saying what was expected.
    """
    if dimension not in DIMENSIONS:
        raise KeyError(f"unknown dimension {dimension!r}")
    unit, example = DIMENSIONS[dimension]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UnitError(
            f"expected a {dimension.replace('_', ' ')} (a number in {unit} or a string "
            f"such as {example}), got {value!r}"
        )
    if isinstance(value, (int, float)):
        magnitude = float(value)
        if dimension == "temperature" and magnitude < 150.0:
            raise UnitError(
                f"plain numbers are SI, so {value!r} means {magnitude} K; "
                f'write "{value} degC" if you meant degrees Celsius'
            )
    else:
        ureg = registry()
        text = value.strip()
        if dimension == "temperature_difference":
            text = text.replace("degC", "delta_degC").replace("degF", "delta_degF")
        try:
            q = ureg.Quantity(text)
        except (pint.errors.PintError, ValueError, TypeError, AttributeError) as exc:
            raise UnitError(
                f"could not read {value!r} as a quantity ({exc}); expected a "
                f"{dimension.replace('_', ' ')} such as {example}"
            ) from None
        if not isinstance(q, pint.Quantity):  # a bare number inside a string
            q = ureg.Quantity(float(q), "dimensionless")
        if q.dimensionality != _dimensionality(dimension):
            raise UnitError(
                f"{value!r} is not a {dimension.replace('_', ' ')}: its unit has dimension "
                f"{q.dimensionality}, expected {unit} (e.g. {example})"
            )
        magnitude = float(q.to(unit).magnitude)
    if not math.isfinite(magnitude):
        raise UnitError(f"{value!r} is not a finite number")
    return magnitude
