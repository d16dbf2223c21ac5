"""Case files: units, and every malformed case exits 2 with a message naming the
file and the key, no traceback and no output folder."""

import subprocess
import sys
from pathlib import Path

import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.units import UnitError, to_si

CASES = Path(__file__).resolve().parents[1] / "cases"
SLAB = (CASES / "slab.toml").read_text()


# ----------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    "text, dimension, expected",
    [
        ("0.5 mm", "length", 5e-4),
        ("35 degC", "temperature", 308.15),
        ("95 degF", "temperature", 308.15),
        ("80 W/cm^2", "heat_flux", 8e5),
        ("1.5 L/min", "volumetric_flow", 2.5e-5),
        ("1.5 lpm", "volumetric_flow", 2.5e-5),
        ("20 kPa", "pressure", 2e4),
        ("10 degC", "temperature_difference", 10.0),
        ("700 W", "power", 700.0),
        (0.002, "length", 0.002),
        (300, "temperature", 300.0),
    ],
)
def test_quantities_convert_to_si(text, dimension, expected):
    assert to_si(text, dimension) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "value, dimension, fragment",
    [
        ("5 kg", "length", "not a length"),
        ("50 W", "heat_flux", "not a heat flux"),
        (30, "temperature", "degC"),
        ("five mm", "length", "could not read"),
        (True, "length", "expected a length"),
        ("nan mm", "length", "finite"),
    ],
)
def test_bad_quantities_are_refused(value, dimension, fragment):
    with pytest.raises(UnitError, match=fragment):
        to_si(value, dimension)



def test_text_quantities_are_read_once_and_errors_every_time():
    """Quantity text is parsed by pint once and kept (a sweep reads the same strings for every design); the same
    text with another expected dimension is checked afresh, and a refused text is refused again on every read."""
    assert to_si("2.5 L/min", "volumetric_flow") == to_si("2.5 L/min", "volumetric_flow") == pytest.approx(2.5 / 6e4)
    assert to_si("10 degC", "temperature") == pytest.approx(283.15)
    assert to_si("10 degC", "temperature_difference") == pytest.approx(10.0)
    for _ in range(2):
        with pytest.raises(UnitError, match="not a length"):
            to_si("2.5 L/min", "length")
        with pytest.raises(UnitError, match="could not read"):
            to_si("five mm", "length")


# ----------------------------------------------------------------------------- malformed cases


def _edit(old, new, text=SLAB):
    assert old in text, old
    return text.replace(old, new, 1)


SMALL_BLOCK = _edit('rect = ["0 mm", "0 mm", "10 mm", "10 mm"]', 'rect = ["0 mm", "0 mm", "5 mm", "5 mm"]')

MALFORMED = {
    "bad TOML syntax": (_edit("[domain]", "[domain"), ""),
    "missing [case]": (_edit("[case]", "[kase]"), "case"),
    "missing case type": (_edit('type = "package_stack"', ""), "case.type"),
    "unknown case type": (_edit('"package_stack"', '"package_stak"'), "case.type"),
    "missing domain size": (_edit('size = ["10 mm", "10 mm"]', ""), "domain.size"),
    "wrong unit of thickness": (
        _edit('thickness = "5 mm"', 'thickness = "5 kg"'),
        "layers[0].thickness",
    ),
    "flux given as power": (_edit('flux = "50 W/cm^2"', 'flux = "50 W"'), "heat[0].flux"),
    "negative thickness": (
        _edit('thickness = "5 mm"', 'thickness = "-5 mm"'),
        "layers[0].thickness",
    ),
    "heat outside the block": (
        _edit(
            'flux = "50 W/cm^2"',
            'flux = "50 W/cm^2"\nrect = ["4 mm", "4 mm", "6 mm", "6 mm"]',
            SMALL_BLOCK,
        ),
        "heat[0].rect",
    ),
    "block outside the domain": (
        _edit('rect = ["0 mm", "0 mm", "10 mm", "10 mm"]', 'rect = ["0 mm", "0 mm", "12 mm", "10 mm"]'),
        "layers[0].blocks[0].rect",
    ),
    "unknown material": (_edit('material = "copper"', 'material = "coper"'), "layers[0].material"),
    "misspelt required key": (
        _edit('thickness = "5 mm"', 'thicknes = "5 mm"'),
        "layers[0].thickness",
    ),
    "misspelt optional key": (SLAB + "\n[solver]\ntolerence = 1e-8\n", "solver.tolerence"),
    "non-integer cells": (_edit("cells = 10 ", "cells = 10.5 "), "layers[0].cells"),
    "zero lateral cells": (_edit("cells = [8, 8]", "cells = [0, 8]"), "domain.cells"),
    "negative h": (_edit('h = "10000 W/m^2/K"', 'h = "-100 W/m^2/K"'), "cold_side.h"),
    "temperature as plain number": (
        _edit('temperature = "30 degC"', "temperature = 30"),
        "cold_side.temperature",
    ),
    "unknown cold side type": (
        _edit('type = "convective"', 'type = "convection"'),
        "cold_side.type",
    ),
    "unknown heat block": (_edit('block = "heater"', 'block = "heatr"'), "heat[0].block"),
    "power and flux both given": (
        _edit('flux = "50 W/cm^2"', 'flux = "50 W/cm^2"\npower = "5 W"'),
        "heat[0]",
    ),
    "size of wrong length": (_edit('size = ["10 mm", "10 mm"]', 'size = ["10 mm"]'), "domain.size"),
    "missing power map file": (
        _edit('flux = "50 W/cm^2"', 'flux = "50 W/cm^2"\nmap = "nope.csv"'),
        "heat[0].map",
    ),
    "too few cells for the geometry": (
        _edit("cells = [8, 8]", "cells = [1, 1]", SMALL_BLOCK),
        "domain.cells",
    ),
    "negative power": (_edit('flux = "50 W/cm^2"', 'power = "-5 W"'), "heat[0].power"),
    "unparseable quantity": (
        _edit('thickness = "5 mm"', 'thickness = "5 mmm"'),
        "layers[0].thickness",
    ),
    "unknown unit in conductivity": (
        SLAB + '\n[materials]\nfoo = "5 W/m/kelvinn"\n',
        "materials.foo",
    ),
    "duplicate layer name": (
        SLAB + '\n[[layers]]\nname = "slab"\nmaterial = "copper"\nthickness = "1 mm"\n',
        "layers[1].name",
    ),
    "negative tolerance": (SLAB + "\n[solver]\ntolerance = -1.0\n", "solver.tolerance"),
    "string where table expected": (
        _edit("[cold_side]", "cold_side = 'cold'\n[unused]"),
        "cold_side",
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_case_exits_2_naming_file_and_key(name, tmp_path, capsys):
    text, key = MALFORMED[name]
    case = tmp_path / "bad.toml"
    case.write_text(text)
    out = tmp_path / "out"
    for command in ("check", "run"):
        code = main([command, str(case), "-o", str(out)] if command == "run" else [command, str(case)])
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert str(case) in err, err
        assert key in err, (key, err)
        assert "Traceback" not in err
        assert not out.exists()
        assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_misspelt_key_suggests_the_valid_one(tmp_path, capsys):
    case = tmp_path / "bad.toml"
    case.write_text(SLAB + "\n[solver]\ntolerence = 1e-8\n")
    assert main(["check", str(case)]) == 2
    assert "did you mean 'tolerance'" in capsys.readouterr().err


def test_missing_key_points_at_the_misspelling(tmp_path, capsys):
    case = tmp_path / "bad.toml"
    case.write_text(MALFORMED["misspelt required key"][0])
    assert main(["check", str(case)]) == 2
    assert "'thicknes'" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err


def test_process_exit_code_and_no_traceback(tmp_path):
    """The console entry point itself exits 2 for a bad case."""
    case = tmp_path / "bad.toml"
    case.write_text(MALFORMED["wrong unit of thickness"][0])
    proc = subprocess.run(
        [sys.executable, "-m", "aidc_thermo", "run", str(case), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2, proc.stderr
    assert "layers[0].thickness" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


UNIT_CELL = (Path(__file__).resolve().parents[1] / "cases" / "coldplate_unit_cell.toml").read_text()

COLDPLATE_MALFORMED = {
    "flow and velocity both": (
        UNIT_CELL.replace('velocity = "0.5 m/s"', 'velocity = "0.5 m/s"\nflow = "1 L/min"'),
        "inlet",
    ),
    "unknown geometry kind": (UNIT_CELL.replace('kind = "straight_fins"', 'kind = "straight_finz"'), "geometry.kind"),
    "negative channel width": (
        UNIT_CELL.replace('channel_width = "0.3 mm"', 'channel_width = "-0.3 mm"'),
        "geometry.channel_width",
    ),
    "inlet outside the property range": (
        UNIT_CELL.replace('temperature = "30 degC"', 'temperature = "150 degC"'),
        "inlet.temperature",
    ),
    "velocity in wrong unit": (UNIT_CELL.replace('velocity = "0.5 m/s"', 'velocity = "0.5 L/min"'), "inlet.velocity"),
}


@pytest.mark.parametrize("name", sorted(COLDPLATE_MALFORMED))
def test_malformed_coldplate_case_exits_2(name, tmp_path, capsys):
    text, key = COLDPLATE_MALFORMED[name]
    case = tmp_path / "bad.toml"
    case.write_text(text)
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert str(case) in err and key in err and "Traceback" not in err, err
