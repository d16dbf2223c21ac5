"""Resolved cold-plate validation: the straight-fin unit cell, solved by the
resolved flow and conjugate energy kernels and reduced by the calibration
(``thermo calibrate``), against Shah & London's fully developed f Re and Nu
(tests/test_calibration.py asserts on these)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

W, T, H, TB = 0.3e-3, 0.2e-3, 1.5e-3, 1.0e-3  # channel, fin, fin height, base (m)
FLUX = 50e4  # W/m^2
CELLS = "channel = 6\nfin = 2\nfin_height = 8\nbase = 2\nlength = 24"


def calibration_case(length: float, reynolds) -> str:
    """The closure_calibration case text of the unit cell (water at 30 degC)."""
    return f"""
[case]
type = "closure_calibration"
name = "unit cell {length * 1e3:g} mm"
[geometry]
kind = "straight_fins"
channel_width = {W}
fin_thickness = {T}
fin_height = {H}
base_thickness = {TB}
length = {length}
unit_cell = true
[geometry.cells]
{CELLS}
[coolant]
fluid = "water"
[inlet]
temperature = "30 degC"
[heat]
flux = {FLUX}
[calibration]
reynolds = {list(reynolds)}
[output]
plots = false
"""


LONG_CELL = dict(length=0.1, reynolds=(150.0, 300.0))


def developed_unit_cell(length: float = LONG_CELL["length"], reynolds=LONG_CELL["reynolds"]) -> dict:
    """Calibrate the long unit cell (x+ >= 0.67 over the local window): the
    closure table's columns and Shah & London's f Re, Nu_H1 and Nu_T of the
    channel's aspect ratio."""
    from aidc_thermo.io.case import CaseFile
    from aidc_thermo.kernels import porous
    from aidc_thermo.models import calibrate

    text = calibration_case(length, reynolds)
    case = calibrate.parse(CaseFile(Path("validation_unit_cell.toml"), text, tomllib.loads(text)))
    table, diag = calibrate.calibrate(case)
    alpha = np.asarray(W / H)
    return dict(
        table=table,
        columns=table.columns,
        diagnostics=diag,
        fRe=float(porous.shah_london_fre(alpha)),
        Nu_H1=float(porous.shah_london_nu_h1(alpha)),
        Nu_T=float(porous.shah_london_nu_t(alpha)),
    )
