"""Coolant properties as smooth functions of temperature.

Properties come from CoolProp (IAPWS-95 / IAPWS-2008 / IAPWS-2011 for water;
Melinder (2010) incompressible-mixture fits, ``INCOMP::MPG`` and
``INCOMP::MEG``, for propylene and ethylene glycol in water, by *mass*
fraction). They are sampled over the operating range and fitted with
low-order polynomials in temperature (viscosity: its logarithm), so that
kernels can evaluate them, differentiate them and trace them inside ``jit``
without calling CoolProp. The fit error against CoolProp is stored
(``fit_error``); it is below 0.1 % over the range.

Over the standard range (5-90 degC) the fits are not recomputed at each run:
``thermo/data/coolant_fits.json`` holds them for water and for each glycol at
mass fractions 0.01, 0.02, ..., 0.60, and a fraction between two of them gets
coefficients interpolated (cubic, in the mass fraction) from its four nearest
neighbours, which adds under 1e-5 of relative error. The table is written by
``python -m aidc_thermo.coolant_tables`` from CoolProp, and a test regenerates it
and compares. A range other than the standard one is fitted from CoolProp on
the spot, as is everything when the table is absent.

"PG25" in data-centre usage usually means 25 % propylene glycol *by volume*
(about 25.7 % by mass); give ``volume_fraction`` or ``mass_fraction`` to say
which (:func:`volume_to_mass_fraction` converts, neglecting the small volume
contraction of mixing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = [
    "Coolant",
    "make_coolant",
    "volume_to_mass_fraction",
    "FLUIDS",
    "read_coolant",
    "read_coolant_temperature",
    "check_coolant_temperature",
]

#: fluid key -> (CoolProp name pattern, pure-component density at 20 degC used for
#: volume -> mass fraction, long name)
FLUIDS = {
    "water": ("Water", None, "water (IAPWS)"),
    "propylene_glycol": ("INCOMP::MPG[{w}]", 1036.0, "propylene glycol - water (Melinder 2010)"),
    "ethylene_glycol": ("INCOMP::MEG[{w}]", 1113.0, "ethylene glycol - water (Melinder 2010)"),
}

_PROPS = {"density": "D", "cp": "C", "viscosity": "V", "conductivity": "L"}
_DEGREE = 5
#: the standard temperature range (K) of the fits shipped in thermo/data
T_MIN, T_MAX = 278.15, 363.15
_PRESSURE = 2.0e5  # Pa; liquid properties barely depend on it
_SAMPLES = 60  # temperatures sampled over the range for each fit
TABLE_FILE = "coolant_fits.json"


def volume_to_mass_fraction(fluid: str, volume_fraction: float) -> float:
    """Glycol mass fraction for a volume fraction (ideal mixing at 20 degC)."""
    rho_g = FLUIDS[fluid][1]
    rho_w = 998.2
    return volume_fraction * rho_g / (volume_fraction * rho_g + (1.0 - volume_fraction) * rho_w)


def _horner(coeffs, x):
    out = coeffs[0] * 1.0 + 0.0 * x
    for c in coeffs[1:]:
        out = out * x + c
    return out


@dataclass(frozen=True)
class Coolant:
    """A coolant with polynomial property fits valid on ``t_min..t_max`` (K).

    The property methods accept floats, numpy or JAX arrays (K) and return SI
    values: density kg/m^3, cp J/kg/K, dynamic viscosity Pa s, conductivity
    W/m/K.
    """

    name: str
    fluid: str
    mass_fraction: float
    t_min: float
    t_max: float
    coefficients: tuple  # ((prop, coeffs highest power first), ...), in theta = (T - 273.15) / 100
    fit_error: float  # max relative error of the fits against CoolProp on the range

    def _eval(self, prop: str, T):
        coeffs = dict(self.coefficients)[prop]
        theta = (T - 273.15) / 100.0
        return _horner(coeffs, theta)

    def density(self, T):
        return self._eval("density", T)

    def cp(self, T):
        return self._eval("cp", T)

    def conductivity(self, T):
        return self._eval("conductivity", T)

    def viscosity(self, T):
        log_mu = self._eval("log_viscosity", T)
        if isinstance(log_mu, (float, np.ndarray, np.generic)):
            return np.exp(log_mu)
        import jax.numpy as jnp  # a JAX array or tracer: stay in JAX

        return jnp.exp(log_mu)

    def prandtl(self, T):
        return self.cp(T) * self.viscosity(T) / self.conductivity(T)


def _coolprop_name(fluid: str, mass_fraction: float) -> str:
    pattern = FLUIDS[fluid][0]
    return pattern.format(w=f"{mass_fraction:.6f}")


def _check_arguments(fluid: str, mass_fraction: float, t_min: float, t_max: float) -> None:
    if fluid not in FLUIDS:
        raise ValueError(f"unknown coolant {fluid!r}; known: {sorted(FLUIDS)}")
    if fluid == "water" and mass_fraction != 0.0:
        raise ValueError("water takes no glycol fraction")
    if fluid != "water" and not 0.0 < mass_fraction <= 0.6:
        raise ValueError(f"glycol mass fraction must be in (0, 0.6], got {mass_fraction}")
    if not t_max > t_min:
        raise ValueError("t_max must exceed t_min")


def fit_coolprop(fluid: str, mass_fraction: float, t_min: float = T_MIN, t_max: float = T_MAX):
    """Sample CoolProp over ``[t_min, t_max]`` (K) and fit each property:
    ``(coefficients, fit_error)`` as stored in :class:`Coolant`."""
    import CoolProp.CoolProp as CP

    _check_arguments(fluid, mass_fraction, t_min, t_max)
    name = _coolprop_name(fluid, mass_fraction)
    T = np.linspace(t_min, t_max, _SAMPLES)
    theta = (T - 273.15) / 100.0
    coefficients = []
    worst = 0.0
    for prop, code in _PROPS.items():
        values = np.array([CP.PropsSI(code, "T", t, "P", _PRESSURE, name) for t in T])
        target = np.log(values) if prop == "viscosity" else values
        c = np.polyfit(theta, target, _DEGREE)
        fit = np.polyval(c, theta)
        err = np.max(np.abs((np.exp(fit) if prop == "viscosity" else fit) / values - 1.0))
        worst = max(worst, float(err))
        coefficients.append(("log_viscosity" if prop == "viscosity" else prop, tuple(float(v) for v in c)))
    return tuple(coefficients), worst


@lru_cache(maxsize=1)
def _table() -> dict | None:
    """The shipped fits (``thermo/data/coolant_fits.json``), or None if absent."""
    try:
        text = resources.files(__package__).joinpath("data", TABLE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return json.loads(text)


def _from_table(table: dict, fluid: str, mass_fraction: float):
    """Coefficients and error bound for ``mass_fraction`` from the shipped
    table: the entry itself on a tabulated fraction, otherwise cubic Lagrange
    interpolation of the coefficients over the four nearest fractions."""
    entry = table["fluids"][fluid]
    fractions = np.asarray(entry["mass_fractions"])
    coeffs = {p: np.asarray(c) for p, c in entry["coefficients"].items()}  # (n_fractions, degree + 1)
    hit = np.flatnonzero(np.abs(fractions - mass_fraction) < 1e-12)
    if hit.size:
        i = int(hit[0])
        return tuple((p, tuple(float(v) for v in c[i])) for p, c in coeffs.items()), float(entry["fit_error"][i])
    k = int(np.clip(np.searchsorted(fractions, mass_fraction) - 2, 0, fractions.size - 4))
    ws = fractions[k : k + 4]
    weights = [np.prod([(mass_fraction - ws[m]) / (ws[j] - ws[m]) for m in range(4) if m != j]) for j in range(4)]
    out = tuple(
        (p, tuple(float(v) for v in sum(w * c[k + j] for j, w in enumerate(weights)))) for p, c in coeffs.items()
    )
    return out, float(entry.get("interpolated_error", np.nan))  # nan only while the generator measures it


@lru_cache(maxsize=32)
def make_coolant(fluid: str = "water", mass_fraction: float = 0.0, t_min: float = T_MIN, t_max: float = T_MAX):
    """A coolant's property fits over ``[t_min, t_max]`` (K): from the shipped
    table over the standard range, otherwise fitted from CoolProp."""
    _check_arguments(fluid, mass_fraction, t_min, t_max)
    table = _table()
    if table is not None and (t_min, t_max) == (table["t_min"], table["t_max"]) and fluid in table["fluids"]:
        coefficients, error = _from_table(table, fluid, mass_fraction)
    else:
        coefficients, error = fit_coolprop(fluid, mass_fraction, t_min, t_max)
    label = "water" if fluid == "water" else f"{FLUIDS[fluid][2]}, {100 * mass_fraction:.1f} % by mass"
    return Coolant(label, fluid, mass_fraction, t_min, t_max, coefficients, error)


def read_coolant(table) -> Coolant:
    """Read a ``[coolant]`` table: ``fluid`` and, for glycols, exactly one of
    ``mass_fraction`` or ``volume_fraction`` (dimensionless, 0..0.6)."""
    fluid = table.string("fluid", default="water", choices=tuple(FLUIDS))
    has_m, has_v = table.has("mass_fraction"), table.has("volume_fraction")
    if fluid == "water":
        if has_m or has_v:
            raise table.error("fluid", "water takes no glycol fraction; use a glycol fluid")
        w = 0.0
    else:
        if has_m == has_v:
            raise table.error(None, f"{fluid}: give exactly one of 'mass_fraction' or 'volume_fraction'")
        if has_m:
            w = table.number("mass_fraction", minimum=0.01, maximum=0.6)
        else:
            w = volume_to_mass_fraction(fluid, table.number("volume_fraction", minimum=0.01, maximum=0.6))
    table.finish()
    return make_coolant(fluid, round(w, 6))


def range_text(coolant: Coolant) -> str:
    """The property fits' range, for messages."""
    return (
        f"{coolant.t_min - 273.15:.0f}..{coolant.t_max - 273.15:.0f} degC, the range of the {coolant.name} "
        "property fits (liquid, below boiling and above freezing)"
    )


def check_coolant_temperature(table, key: str, value: float, coolant: Coolant, what: str = "") -> float:
    """Refuse (CaseError on ``table``'s ``key``) a coolant temperature (K)
    outside the coolant's property fits; ``what`` qualifies the value in the
    message (e.g. "the secondary loop's mean temperature, supply + 11 K")."""
    if not coolant.t_min - 1e-9 <= value <= coolant.t_max + 1e-9:
        subject = f"{what} {value - 273.15:.4g} degC" if what else f"{value - 273.15:.4g} degC"
        raise table.error(key, f"{subject} is outside {range_text(coolant)}; no answer is computed there")
    return value


def read_coolant_temperature(table, key: str, coolant: Coolant, **kw) -> float:
    """A coolant temperature (K) read from ``table[key]`` and refused outside
    the coolant's property fits (:func:`check_coolant_temperature`)."""
    value = table.quantity(key, "temperature", **kw)
    present = table.has(key)
    if not present:
        return value
    return check_coolant_temperature(table, key, value, coolant)
