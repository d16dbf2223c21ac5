"""The cold-plate hand-off between levels: a curve file (aidc_thermo.io.curves)
read by the rack and the facility gives the same answers as the same numbers
given inline, the compact plate's own curves reach the rack unchanged, and a
malformed reference exits 2 naming the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import load
from aidc_thermo.io.curves import ColdPlateCurves, read_curves, write_curves
from aidc_thermo.models import facility, rack
from tests._first_gpu_plate import bundled_gpu_plate

jax.config.update("jax_enable_x64", True)

CASES = Path(__file__).resolve().parents[1] / "cases"
LPM = 1.0 / 60000.0
PG25 = "propylene_glycol 25.7 % by mass"

#: a 4-tray rack (3 compute trays, 1 switch tray, 7 branches): about 2.9 L/min per branch at 20 L/min
RACK_INLINE = """
[case]
type = "rack_network"
name = "small rack"

[coolant]
fluid = "propylene_glycol"
volume_fraction = 0.25

[supply]
temperature = "35 degC"
flow = "20 L/min"

[manifold]
layout = "U"
diameter = "38 mm"
pitch = "44.45 mm"

[hose]
length = "0.6 m"
diameter = "9.5 mm"
k_minor = 2.0

[quick_disconnect]
cv = 2.0

[[plate_types]]
name = "gpu"
power = "1000 W"
GPU_PLATE
junction_limit = "85 degC"

[[plate_types]]
name = "cpu"
power = "300 W"
dp_rated = "25 kPa"
flow_rated = "10 L/min"
resistance_flow = ["1 L/min", "2 L/min", "4 L/min"]
resistance = ["0.060 K/W", "0.045 K/W", "0.038 K/W"]

[[plate_types]]
name = "switch"
power = "400 W"
dp_rated = "25 kPa"
flow_rated = "10 L/min"
resistance_flow = ["1 L/min", "2 L/min", "4 L/min"]
resistance = ["0.050 K/W", "0.038 K/W", "0.032 K/W"]

[[tray_types]]
name = "compute"
  [[tray_types.branches]]
  plates = ["cpu", "gpu", "gpu"]
  [[tray_types.branches]]
  plates = ["cpu", "gpu", "gpu"]

[[tray_types]]
name = "switch"
  [[tray_types.branches]]
  plates = ["switch", "switch"]

[[sections]]
tray = "compute"
count = 2
[[sections]]
tray = "switch"
count = 1
[[sections]]
tray = "compute"
count = 1

[output]
plots = false
"""
GPU_INLINE = """dp_rated = "50 kPa"
flow_rated = "10 L/min"
dp_exponent = 1.85
resistance_flow = ["2 L/min", "3 L/min", "4 L/min", "5 L/min"]
resistance = ["0.0172 K/W", "0.0160 K/W", "0.0154 K/W", "0.0151 K/W"]"""


def _rack_text(gpu_plate: str) -> str:
    return RACK_INLINE.replace("GPU_PLATE", gpu_plate)


def _solve(path):
    case = rack.parse(load(path))
    static, params = rack.build(case)
    sol = rack.compiled_solve(static)(params)
    rack.check(static, params, sol)
    return case, static, params, sol


def _power_law_curves(tmp_path) -> Path:
    """The inline GPU plate as a curve file: dp = 50 kPa (Q / 10 L/min)^1.85
    sampled at the resistance table's flows, R as given."""
    q = np.array([2.0, 3.0, 4.0, 5.0]) * LPM
    curves = ColdPlateCurves(
        flow=tuple(q),
        r_max=(0.0172, 0.0160, 0.0154, 0.0151),
        dp=tuple(50e3 * (q / (10 * LPM)) ** 1.85),
        coolant=PG25,
        inlet_temperature=308.15,
        provenance=(("model", "data sheet (test)"),),
    )
    path = tmp_path / "gpu_curves.csv"
    write_curves(path, curves)
    return path


@pytest.mark.slow  # compiles rack/compact/facility solves: 25-80 s each on the shared 2-core machine
def test_rack_with_a_curve_file_equals_the_rack_with_the_same_numbers_inline(tmp_path):
    """dp(Q) a power law and R(Q) a table: the curve file holds the same curve
    (the log-log interpolant is exact for a power law), so every flow,
    pressure and junction temperature agrees to 1e-8."""
    _power_law_curves(tmp_path)
    (tmp_path / "inline.toml").write_text(_rack_text(GPU_INLINE))
    (tmp_path / "file.toml").write_text(_rack_text('curves = "gpu_curves.csv"'))
    _, st_a, _, a = _solve(tmp_path / "inline.toml")
    case_b, st_b, _, b = _solve(tmp_path / "file.toml")
    assert case_b.plate("gpu").curves is not None
    kinds = np.asarray(st_b.network.edge_kind)[np.asarray(st_b.plate_edges)]
    gpu = np.asarray(st_b.plate_type_index) == 0
    assert np.all(kinds[gpu] == 11) and np.all(kinds[~gpu] == 3)  # LOGLOG_TABLE for the file's plates only
    np.testing.assert_allclose(b.network.flow, a.network.flow, rtol=1e-8)
    np.testing.assert_allclose(b.network.pressure, a.network.pressure, rtol=1e-8)
    np.testing.assert_allclose(b.junction, a.junction, rtol=1e-8)
    np.testing.assert_allclose(b.plate_resistance, a.plate_resistance, rtol=1e-8)
    q_gpu = np.asarray(b.network.flow)[np.asarray(st_b.plate_edges)][gpu]
    assert q_gpu.min() > 2 * LPM and q_gpu.max() < 5 * LPM  # inside the table: nothing extrapolated


@pytest.mark.slow  # compiles rack/compact/facility solves: 25-80 s each on the shared 2-core machine
def test_compact_curves_reach_the_rack_unchanged(tmp_path):
    """compact_coldplate -> curves.csv -> rack: every GPU plate's pressure
    drop and resistance in the solved rack are the curve file's interpolant at
    that plate's own flow (1e-12), and its junction temperature is its inlet
    temperature plus R P."""
    text = bundled_gpu_plate()
    text = re.sub(r"cells = \[\d+, \d+\]", "cells = [24, 24]", text)
    text = re.sub(r"\[coolant\]\n[^\[]*", '[coolant]\nfluid = "propylene_glycol"\nvolume_fraction = 0.25\n\n', text)
    text = re.sub(r"flow_range = \[[^\]]*\]", 'flow_range = ["1.5 L/min", "5 L/min"]', text)
    text = re.sub(r"curve_points = \d+", "curve_points = 4", text)
    text += "\n[output]\nplots = false\n"
    (tmp_path / "plate.toml").write_text(text)
    assert main(["run", str(tmp_path / "plate.toml"), "-o", str(tmp_path / "plate")]) == 0
    curves = read_curves(tmp_path / "plate" / "curves.csv")
    assert curves.coolant == PG25 and curves.meta("case_file") == "plate.toml"
    (tmp_path / "rack.toml").write_text(_rack_text('curves = "plate/curves.csv"'))
    case, static, params, sol = _solve(tmp_path / "rack.toml")
    pe, gpu = np.asarray(static.plate_edges), np.asarray(static.plate_type_index) == 0
    q = np.asarray(sol.network.flow)[pe][gpu]
    np.testing.assert_allclose(np.asarray(sol.network.loss)[pe][gpu], curves.pressure_drop(q), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(sol.plate_resistance)[gpu], curves.resistance_max(q), rtol=1e-12)
    t_in = np.asarray(sol.temperatures.edge_inlet)[pe][gpu]
    np.testing.assert_allclose(np.asarray(sol.junction)[gpu], t_in + curves.resistance_max(q) * 1000.0, rtol=1e-14)


def _facility_case(tmp_path, cold_plate: str, name="hall.toml") -> Path:
    text = (CASES / "nvl72_dry_cooler_temperate.toml").read_text()
    text = re.sub(r"\[cold_plate\]\n[^\[]*", f"[cold_plate]\n{cold_plate}\n\n", text)
    text = re.sub(r"\[ambient\]\n[^\[]*", '[ambient]\ndry_bulb = "32 degC"\nrelative_humidity = 0.4\n\n', text)
    text = text.replace('weather = "data/', f'weather = "{CASES}/data/')
    path = tmp_path / name
    path.write_text(text)
    return path


PARAMETRIC = """resistance_base = "0.020 K/W"
resistance_flow = "0.006 K/W"
resistance_exponent = 1.1
reference_flow = "2.5 L/min"
pressure_drop = "15 kPa"
pressure_drop_exponent = 1.85"""


@pytest.mark.slow  # compiles rack/compact/facility solves: 25-80 s each on the shared 2-core machine
def test_facility_with_its_parametric_law_as_a_dense_curve_file_agrees(tmp_path):
    """The facility's parametric plate sampled at 400 flows over 1.5-4 L/min:
    dp is a power law (exact); R = base + flow part q^-1.1 is not, so the
    log-log interpolant is within 2e-6 of it between samples. J/token agrees
    to 1e-7 and the junction temperature to 1e-4 K."""
    q = np.geomspace(1.5, 4.0, 400) * LPM
    qr = 2.5 * LPM
    curves = ColdPlateCurves(
        flow=tuple(q),
        r_max=tuple(0.020 + 0.006 * (q / qr) ** -1.1),
        dp=tuple(15e3 * (q / qr) ** 1.85),
        coolant=PG25,
        inlet_temperature=308.15,
    )
    write_curves(tmp_path / "plate.csv", curves)
    out = {}
    for tag, block in (("param", PARAMETRIC), ("file", 'curves = "plate.csv"')):
        case = facility.parse(load(_facility_case(tmp_path, block, f"{tag}.toml")))
        static, params = facility.build(case)
        sol = facility.compiled_solve(static, batched=False)(params)
        facility.check(static, params, sol)
        out[tag] = {k: float(np.asarray(v.value)) for k, v in facility.report(static, params, sol).items()
                    if np.ndim(v.value) == 0}  # fmt: skip
    a, b = out["param"], out["file"]
    assert b["J_per_token_facility"] == pytest.approx(a["J_per_token_facility"], rel=1e-7)
    assert b["T_junction_max"] == pytest.approx(a["T_junction_max"], abs=1e-4)
    assert b["J_per_token_cooling"] == pytest.approx(a["J_per_token_cooling"], rel=1e-6)  # pump power from dp


def _curve_text(flows=("2", "3", "4", "5"), flow_unit="L/min", dp_unit="kPa", coolant=PG25):
    rows = "\n".join(f"{q},{r},{d}" for q, r, d in zip(flows, ("0.0172", "0.016", "0.0154", "0.0151"),
                                                        ("6", "12", "20", "30"), strict=True))  # fmt: skip
    return (f"# coolant: {coolant}\n# inlet_temperature: 35 degC\n"
            f"flow [{flow_unit}],R_max [K/W],dP [{dp_unit}]\n{rows}\n")  # fmt: skip


@pytest.mark.parametrize(
    "curve, gpu, fragment",
    [
        (None, 'curves = "nope.csv"', "plate_types[0].curves: curve file .*nope.csv: file not found"),
        (
            _curve_text(flows=("2", "4", "3", "5")),
            'curves = "c.csv"',
            "plate_types[0].curves: .*c.csv: line 6: column 'flow': flows must increase strictly",
        ),
        (_curve_text(dp_unit="K/W"), 'curves = "c.csv"', "plate_types[0].curves: .*column 'dP': unit 'K/W'"),
        (
            _curve_text(coolant="water"),
            'curves = "c.csv"',
            "plate_types[0].curves: the curves in c.csv were made with 'water'",
        ),
        (_curve_text(), 'curves = "c.csv"\ndp_rated = "50 kPa"', "plate_types[0].dp_rated: give either curves"),
        (None, "curves = 3", "plate_types[0].curves: expected the path"),
    ],
)
def test_malformed_rack_reference_exits_2_naming_file_and_key(tmp_path, capsys, curve, gpu, fragment):
    if curve is not None:
        (tmp_path / "c.csv").write_text(curve)
    (tmp_path / "rack.toml").write_text(_rack_text(gpu))
    assert main(["check", str(tmp_path / "rack.toml")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "rack.toml") in err
    assert re.search(fragment.replace("[0]", r"\[0\]"), err), err


@pytest.mark.slow  # compiles rack/compact/facility solves: 25-80 s each on the shared 2-core machine
def test_rack_flow_outside_the_curve_range_exits_2_naming_the_curve_key(tmp_path, capsys):
    (tmp_path / "c.csv").write_text(_curve_text(flows=("3.5", "4", "4.5", "5")))
    (tmp_path / "rack.toml").write_text(_rack_text('curves = "c.csv"'))
    assert main(["run", str(tmp_path / "rack.toml"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'rack.toml'}: plate_types[0].curves: " in err, err
    assert "plates of type 'gpu' run outside the flow range of their curve file (3.5..5 L/min)" in err
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(
    "curve, extra, fragment",
    [
        (None, "", "cold_plate.curves: curve file .*missing.csv: file not found"),
        (
            _curve_text(flows=("3", "4", "5", "6")),
            "",
            "secondary.flow_per_accelerator: 2.5 L/min is outside the flow "
            "range of the cold-plate curves \\(3..6 L/min",
        ),
        (_curve_text(flows=("2", "2.5", "3", "3.5")), "", "optimize.flow_scale: flow scales 0.6..1.6"),
        (_curve_text(), '\nreference_flow = "2.5 L/min"', "cold_plate.reference_flow: give either curves"),
        (_curve_text(coolant="water"), "", "cold_plate.curves: the curves in .* were made with 'water'"),
    ],
)
def test_malformed_facility_reference_exits_2_naming_file_and_key(tmp_path, capsys, curve, extra, fragment):
    name = "missing.csv" if curve is None else "c.csv"
    if curve is not None:
        (tmp_path / "c.csv").write_text(curve)
    text = (CASES / "nvl72_dry_cooler_temperate.toml").read_text()
    text = re.sub(r"\[cold_plate\]\n[^\[]*", f'[cold_plate]\ncurves = "{name}"{extra}\n\n', text)
    text = text.replace('weather = "data/', f'weather = "{CASES}/data/')
    (tmp_path / "hall.toml").write_text(text)
    assert main(["check", str(tmp_path / "hall.toml")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "hall.toml") in err
    assert re.search(fragment, err), err
