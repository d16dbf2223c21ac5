"""Write the coolant property fits shipped in ``thermo/data/coolant_fits.json``.

Run ``python -m aidc_thermo.coolant_tables`` after a CoolProp upgrade or a change
of the fitting in :mod:`thermo.coolant` (``--check`` compares instead of
writing, exit 1 on a difference). The table holds, over the standard range
``T_MIN..T_MAX``, the polynomial coefficients of :func:`thermo.coolant.fit_coolprop`
for water and for each glycol at mass fractions 0.01, 0.02, ..., 0.60, each
fit's error against CoolProp, and per glycol a bound on the error of the
interpolated fits (fit and interpolation together): twice the largest error
measured at the quarter points between tabulated fractions.

Reading the table costs milliseconds; fitting from CoolProp costs its import
(seconds) plus the samples, which is why ``thermo check`` and ``thermo run``
read the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from aidc_thermo.coolant import FLUIDS, T_MAX, T_MIN, TABLE_FILE, _from_table, _horner, fit_coolprop

__all__ = ["FRACTIONS", "tabulate", "compare", "main"]

#: tabulated glycol mass fractions
FRACTIONS = tuple(round(0.01 * i, 2) for i in range(1, 61))

_PROPERTY_CODES = {"density": "D", "cp": "C", "log_viscosity": "V", "conductivity": "L"}


def _interpolation_error(table: dict, fluid: str) -> float:
    """Twice the largest relative error against CoolProp of the interpolated
    fits at the quarter points between tabulated fractions, over the fit's
    samples (the factor covers fractions between those measured)."""
    import CoolProp.CoolProp as CP

    from aidc_thermo.coolant import _PRESSURE, _SAMPLES, _coolprop_name

    T = np.linspace(T_MIN, T_MAX, _SAMPLES)
    theta = (T - 273.15) / 100.0
    worst = 0.0
    between = [
        round(a + f * (b - a), 6) for a, b in zip(FRACTIONS[:-1], FRACTIONS[1:], strict=True) for f in (0.25, 0.5, 0.75)
    ]
    for w in between:
        coefficients, _ = _from_table(table, fluid, w)
        name = _coolprop_name(fluid, w)
        for prop, coeffs in coefficients:
            fit = _horner(np.asarray(coeffs), theta)
            if prop == "log_viscosity":
                fit = np.exp(fit)
            ref = np.array([CP.PropsSI(_PROPERTY_CODES[prop], "T", t, "P", _PRESSURE, name) for t in T])
            worst = max(worst, float(np.max(np.abs(fit / ref - 1.0))))
    return 2.0 * worst


def tabulate() -> dict:
    """The table, freshly computed from CoolProp (a JSON-ready dict)."""
    import CoolProp

    out = {
        "description": (
            "Polynomial fits of coolant properties in theta = (T - 273.15 K) / 100 K, highest power first "
            "(density kg/m^3, cp J/kg/K, conductivity W/m/K, log of dynamic viscosity in Pa s), "
            "written by python -m aidc_thermo.coolant_tables"
        ),
        "coolprop_version": CoolProp.__version__,
        "t_min": T_MIN,
        "t_max": T_MAX,
        "fluids": {},
    }
    for fluid in FLUIDS:
        fractions = (0.0,) if fluid == "water" else FRACTIONS
        coefficients: dict[str, list] = {}
        errors = []
        for w in fractions:
            coeffs, err = fit_coolprop(fluid, w, T_MIN, T_MAX)
            for prop, c in coeffs:
                coefficients.setdefault(prop, []).append(list(c))
            errors.append(err)
        entry = {"mass_fractions": list(fractions), "fit_error": errors, "coefficients": coefficients}
        out["fluids"][fluid] = entry
        if fluid != "water":
            entry["interpolated_error"] = max(max(errors), _interpolation_error(out, fluid))
    return out


def compare(shipped: dict, fresh: dict, rtol: float = 1e-9) -> list[str]:
    """Differences between two tables, as property values on the fits'
    temperature range (coefficients of an ill-conditioned fit may differ in
    their last digits between platforms while the values agree)."""
    problems = []
    if (shipped["t_min"], shipped["t_max"]) != (fresh["t_min"], fresh["t_max"]):
        problems.append("temperature range differs")
    theta = (np.linspace(shipped["t_min"], shipped["t_max"], 101) - 273.15) / 100.0
    for fluid, entry in fresh["fluids"].items():
        old = shipped["fluids"].get(fluid)
        if old is None or old["mass_fractions"] != entry["mass_fractions"]:
            problems.append(f"{fluid}: missing or different mass fractions")
            continue
        for prop, rows in entry["coefficients"].items():
            for w, new_c, old_c in zip(entry["mass_fractions"], rows, old["coefficients"][prop], strict=True):
                a, b = _horner(np.asarray(old_c), theta), _horner(np.asarray(new_c), theta)
                dev = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
                if dev > rtol:
                    problems.append(f"{fluid} w={w}: {prop} differs by {dev:.3g} (relative)")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aidc_thermo.coolant_tables", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the shipped table instead of writing it")
    p.add_argument("-o", "--output", default=str(Path(__file__).parent / "data" / TABLE_FILE), help="table file (JSON)")
    args = p.parse_args(argv)
    fresh = tabulate()
    path = Path(args.output)
    if args.check:
        problems = compare(json.loads(path.read_text(encoding="utf-8")), fresh)
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{path}: {'differs' if problems else 'matches CoolProp ' + fresh['coolprop_version']}")
        return 1 if problems else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fresh, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} (CoolProp {fresh['coolprop_version']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
