"""Coolant properties as smooth functions of temperature.

Properties come from CoolProp (IAPWS-95 / IAPWS-2008 / IAPWS-2011 for water;
Melinder (2010) incompressible-mixture fits, ``INCOMP::MPG`` and
``INCOMP::MEG``, for propylene and ethylene glycol in water, by *mass*
fraction). They are sampled once over the operating range and fitted with
low-order polynomials in temperature (viscosity: its logarithm), so that
kernels can evaluate them, differentiate them and trace them inside ``jit``
without calling CoolProp. The fit error against CoolProp is measured at
construction and stored (``fit_error``); it is below 0.1 % over the range.

"PG25" in data-centre usage usually means 25 % propylene glycol *by volume*
(about 25.7 % by mass); give ``volume_fraction`` or ``mass_fraction`` to say
which (:func:`volume_to_mass_fraction` converts, neglecting the small volume
contraction of mixing).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
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
        return jnp.exp(log_mu) if isinstance(log_mu, jax.Array) else np.exp(log_mu)

    def prandtl(self, T):
        return self.cp(T) * self.viscosity(T) / self.conductivity(T)


def _coolprop_name(fluid: str, mass_fraction: float) -> str:
    pattern = FLUIDS[fluid][0]
    return pattern.format(w=f"{mass_fraction:.6f}")


@lru_cache(maxsize=32)
def make_coolant(fluid: str = "water", mass_fraction: float = 0.0, t_min: float = 278.15, t_max: float = 363.15):
    """Fit a coolant's properties over ``[t_min, t_max]`` (K) from CoolProp."""
    import CoolProp.CoolProp as CP

    if fluid not in FLUIDS:
        raise ValueError(f"unknown coolant {fluid!r}; known: {sorted(FLUIDS)}")
    if fluid == "water" and mass_fraction != 0.0:
        raise ValueError("water takes no glycol fraction")
    if fluid != "water" and not 0.0 < mass_fraction <= 0.6:
        raise ValueError(f"glycol mass fraction must be in (0, 0.6], got {mass_fraction}")
    if not t_max > t_min:
        raise ValueError("t_max must exceed t_min")
    name = _coolprop_name(fluid, mass_fraction)
    pressure = 2.0e5  # Pa; liquid properties barely depend on it
    T = np.linspace(t_min, t_max, 60)
    theta = (T - 273.15) / 100.0
    samples = {p: np.array([CP.PropsSI(code, "T", t, "P", pressure, name) for t in T]) for p, code in _PROPS.items()}
    coefficients = []
    worst = 0.0
    for prop, values in samples.items():
        target = np.log(values) if prop == "viscosity" else values
        c = np.polyfit(theta, target, _DEGREE)
        fit = np.polyval(c, theta)
        err = np.max(np.abs((np.exp(fit) if prop == "viscosity" else fit) / values - 1.0))
        worst = max(worst, float(err))
        coefficients.append(("log_viscosity" if prop == "viscosity" else prop, tuple(float(v) for v in c)))
    label = "water" if fluid == "water" else f"{FLUIDS[fluid][2]}, {100 * mass_fraction:.1f} % by mass"
    return Coolant(label, fluid, mass_fraction, t_min, t_max, tuple(coefficients), worst)


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
