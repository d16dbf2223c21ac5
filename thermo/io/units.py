"""Units of case-file quantities.

A quantity in a case file is either a plain number, which is SI (m, K, W,
Pa, m^3/s, ...), or a string with a unit that pint understands: ``"0.5 mm"``,
``"35 degC"``, ``"80 W/cm^2"``, ``"1.5 L/min"``. :func:`to_si` checks the
dimension against what the key expects and returns the SI magnitude.

Strings are checked against a small grammar before pint sees them: an
optional number first, then unit names joined by ``*``, ``/``, spaces and
parentheses, with ``^``/``**`` exponents only after a unit. Anything else (a
number after the first, an operator at the end, unbalanced parentheses,
``10**10**10``) is refused with a sentence saying why, so that no string can
crash the parser or make it compute for ever. A comma is refused: a decimal
comma (``"5,5 mm"``) would otherwise be read as ``55 mm``.
"""

from __future__ import annotations

import math
import re
import tokenize
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
    "volume": ("m^3", '"20 L"'),
    "heat_capacity": ("J/K", '"300 J/K"'),
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


_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_TOKEN = re.compile(
    r"\s*(?:(?P<number>" + _NUMBER + r")"
    r"|(?P<name>[^\W\d]\w*[²³¹⁰⁴-⁹]*)"
    r"|(?P<power>\*\*|\^)"
    r"|(?P<op>[*/])"
    r"|(?P<open>\()"
    r"|(?P<close>\)))"
)
_EXPONENT = re.compile(r"\s*(?P<exp>[+-]?\d{1,2}(?:\.\d{1,3})?)")
_MAX_LENGTH = 200


def _grammar_error(text: str) -> str | None:
    """Why ``text`` is not ``[number] unit-expression``, or None if it is."""
    if len(text) > _MAX_LENGTH:
        return f"longer than {_MAX_LENGTH} characters"
    if "," in text:
        if re.search(r"\d,\d", text):
            return (
                'a comma inside a number: write the decimal separator as a point ("5.5 mm", not "5,5 mm"); '
                'a comma is never read, since "5,5" could mean 5.5 or 55'
            )
        return 'a comma is not part of a quantity; write one value with its unit, such as "5.5 mm"'
    pos, depth, prev = 0, 0, "start"
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            return f"unexpected character {text[pos:].lstrip()[0]!r} at position {pos + 1}"
        kind = m.lastgroup
        pos = m.end()
        if kind == "number":
            if prev != "start":
                return "a number may only come first (the value), followed by its unit"
        elif kind == "name":
            if prev == "close":
                return "a unit follows a closing parenthesis: join units with '*' or '/'"
        elif kind == "power":
            if prev not in ("name", "close"):
                return "an exponent ('^' or '**') must follow a unit, such as \"m^2\""
            e = _EXPONENT.match(text, pos)
            if e is None:
                return 'an exponent must be a small number, such as "m^2" or "s^-1"'
            pos = e.end()
            kind = "exponent"
        elif kind == "op":
            if prev in ("op", "open"):
                return f"an operator {m.group('op')!r} has nothing on its left"
            if prev == "start":
                return f"an operator {m.group('op')!r} at the start"
        elif kind == "open":
            depth += 1
        else:  # close
            if prev in ("op", "open", "start"):
                return "a closing parenthesis with nothing before it"
            depth -= 1
            if depth < 0:
                return "a closing parenthesis without an opening one"
        prev = kind
    if depth > 0:
        return "an opening parenthesis without a closing one"
    if prev == "op":
        return "an operator at the end has nothing on its right"
    if prev == "start":
        return "empty"
    return None


#: every error pint's parser and evaluator are known to raise on odd input
_PARSE_ERRORS = (
    pint.errors.PintError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    ZeroDivisionError,
    OverflowError,
    AssertionError,
    SyntaxError,
    RecursionError,
    tokenize.TokenError,
)


@lru_cache(maxsize=8192)
def _text_to_si(value: str, dimension: str) -> float:
    """The SI magnitude of a quantity written as text (pint's parser is the costly
    part of reading a case; a sweep reads the same strings once per design, so
    the answers are kept: the function is pure, and errors are not cached)."""
    unit, example = DIMENSIONS[dimension]
    ureg = registry()
    text = value.strip()
    why = _grammar_error(text)
    if why is not None:
        raise UnitError(
            f"could not read {value!r} as a quantity: {why}; expected a "
            f"{dimension.replace('_', ' ')} such as {example}"
        )
    if dimension == "temperature_difference":
        text = text.replace("degC", "delta_degC").replace("degF", "delta_degF")
    try:
        q = ureg.Quantity(text)
        if not isinstance(q, pint.Quantity):  # a bare number inside a string
            q = ureg.Quantity(float(q), "dimensionless")
    except _PARSE_ERRORS as exc:
        raise UnitError(
            f"could not read {value!r} as a quantity ({exc}); expected a "
            f"{dimension.replace('_', ' ')} such as {example}"
        ) from None
    if q.dimensionality != _dimensionality(dimension):
        raise UnitError(
            f"{value!r} is not a {dimension.replace('_', ' ')}: its unit has dimension "
            f"{q.dimensionality}, expected {unit} (e.g. {example})"
        )
    try:
        magnitude = float(q.to(unit).magnitude)
    except _PARSE_ERRORS as exc:
        raise UnitError(f"could not convert {value!r} to {unit} ({exc})") from None
    return magnitude


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
        try:
            magnitude = float(value)
        except OverflowError:
            raise UnitError(f"{value!r} is too large a number") from None
        if dimension == "temperature" and magnitude < 150.0:
            raise UnitError(
                f"plain numbers are SI, so {value!r} means {magnitude} K; "
                f'write "{value} degC" if you meant degrees Celsius'
            )
    else:
        magnitude = _text_to_si(value, dimension)
    if not math.isfinite(magnitude):
        raise UnitError(f"{value!r} is not a finite number")
    return magnitude
