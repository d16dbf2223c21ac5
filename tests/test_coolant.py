"""Coolant property fits against IAPWS reference values and CoolProp."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.coolant import make_coolant, read_coolant, volume_to_mass_fraction
from aidc_thermo.io.case import CaseError, Table
from aidc_thermo.validation import reference
from aidc_thermo.validation.plant import water_properties

# IAPWS-95 / IAPWS-2008 / IAPWS-2011 at 1 atm (shared/reference/validation.md), as
# shipped in aidc_thermo/data/validation.json: T degC, rho, cp, mu (mPa s), k
_W = reference("water_1atm")
WATER = list(zip(_W["t_degC"], _W["density"], _W["cp"], _W["viscosity_mPa_s"], _W["conductivity"], strict=True))


@pytest.mark.parametrize("row", WATER)
def test_water_matches_iapws_reference(row):
    t, rho, cp, mu, k = row
    w = make_coolant("water")
    T = t + 273.15
    assert w.density(T) == pytest.approx(rho, rel=2e-4)
    assert w.cp(T) == pytest.approx(cp, rel=5e-4)
    assert w.viscosity(T) == pytest.approx(mu * 1e-3, rel=2e-3)
    assert w.conductivity(T) == pytest.approx(k, rel=2e-3)
    # thermo validate reports the same figures
    shared = water_properties()
    i = list(shared["t_degC"]).index(t)
    assert shared["viscosity"][0][i] == w.viscosity(T) and shared["density"][0][i] == w.density(T)


@pytest.mark.parametrize("fluid, w", [("propylene_glycol", 0.257), ("ethylene_glycol", 0.3)])
def test_glycol_fits_match_coolprop(fluid, w):
    import CoolProp.CoolProp as CP

    c = make_coolant(fluid, w)
    assert c.fit_error < 1e-3
    name = {"propylene_glycol": "INCOMP::MPG[0.257]", "ethylene_glycol": "INCOMP::MEG[0.3]"}[fluid]
    for T in np.random.default_rng(3).uniform(280.0, 360.0, 7):
        assert c.density(T) == pytest.approx(CP.PropsSI("D", "T", T, "P", 2e5, name), rel=1e-3)
        assert c.viscosity(T) == pytest.approx(CP.PropsSI("V", "T", T, "P", 2e5, name), rel=1e-3)
        assert c.cp(T) == pytest.approx(CP.PropsSI("C", "T", T, "P", 2e5, name), rel=1e-3)


def test_pg25_by_volume_is_about_25_7_percent_by_mass():
    assert volume_to_mass_fraction("propylene_glycol", 0.25) == pytest.approx(0.257, abs=0.002)


def test_properties_trace_and_differentiate_in_jax():
    w = make_coolant("water")
    drho = jax.grad(lambda T: w.density(T))(jnp.asarray(313.15))
    dmu = jax.jit(jax.grad(lambda T: w.viscosity(T)))(jnp.asarray(313.15))
    assert -0.5 < float(drho) < -0.2  # kg/m^3/K near 40 degC
    assert float(dmu) < 0


def test_coolant_table_errors_name_the_key():
    with pytest.raises(CaseError, match="coolant.fluid"):
        read_coolant(Table({"fluid": "glycol"}, "c.toml", "coolant"))
    with pytest.raises(CaseError, match="exactly one"):
        read_coolant(Table({"fluid": "propylene_glycol"}, "c.toml", "coolant"))
    with pytest.raises(CaseError, match="coolant.volume_fraction"):
        read_coolant(Table({"fluid": "propylene_glycol", "volume_fraction": 0.9}, "c.toml", "coolant"))
    c = read_coolant(Table({"fluid": "propylene_glycol", "volume_fraction": 0.25}, "c.toml", "coolant"))
    assert c.mass_fraction == pytest.approx(0.257, abs=0.002)


def test_shipped_table_is_what_coolprop_gives_today():
    """Regenerate thermo/data/coolant_fits.json from CoolProp and compare
    (python -m aidc_thermo.coolant_tables rewrites it)."""
    import json
    from importlib import resources

    from aidc_thermo.coolant_tables import compare, tabulate

    shipped = json.loads(resources.files("aidc_thermo").joinpath("data", "coolant_fits.json").read_text())
    fresh = tabulate()
    assert compare(shipped, fresh) == []
    for fluid in ("propylene_glycol", "ethylene_glycol"):
        assert shipped["fluids"][fluid]["interpolated_error"] < 1e-3
        assert fresh["fluids"][fluid]["interpolated_error"] == pytest.approx(
            shipped["fluids"][fluid]["interpolated_error"], rel=1e-6
        )


@pytest.mark.parametrize("fluid, w", [("propylene_glycol", 0.256952), ("ethylene_glycol", 0.0137), ("water", 0.0)])
def test_tabulated_coolant_equals_a_fresh_coolprop_fit(fluid, w):
    """Between tabulated fractions (and near the end of the table) the
    interpolated fit agrees with a direct fit to CoolProp, and with CoolProp."""
    import CoolProp.CoolProp as CP

    from aidc_thermo.coolant import T_MAX, T_MIN, _coolprop_name, fit_coolprop

    c = make_coolant(fluid, w)
    direct, _ = fit_coolprop(fluid, w)
    name = _coolprop_name(fluid, w)
    T = np.linspace(T_MIN, T_MAX, 23)
    theta = (T - 273.15) / 100.0
    for (prop, a), (prop_b, b) in zip(c.coefficients, direct, strict=True):
        assert prop == prop_b
        np.testing.assert_allclose(np.polyval(a, theta), np.polyval(b, theta), rtol=1e-5, err_msg=prop)
    ref = np.array([CP.PropsSI("V", "T", t, "P", 2e5, name) for t in T])
    np.testing.assert_allclose(c.viscosity(T), ref, rtol=max(c.fit_error, 1e-9) * 1.01)


def test_a_range_other_than_the_tables_is_fitted_from_coolprop():
    from aidc_thermo.coolant import fit_coolprop

    c = make_coolant("water", 0.0, 283.15, 333.15)
    assert c.coefficients == fit_coolprop("water", 0.0, 283.15, 333.15)[0]


def test_reading_a_coolant_needs_no_coolprop_and_no_jax():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from thermo.coolant import make_coolant\n"
        "c = make_coolant('propylene_glycol', 0.256952)\n"
        "assert 1e-4 < c.viscosity(300.0) < 1e-2\n"
        "print([m for m in ('CoolProp', 'jax') if m in sys.modules])\n"
    )
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
