"""``thermo fmu``: the facility model as an FMI 2.0 co-simulation FMU, simulated
with FMPy (the reference FMI client) and checked against ``thermo run``."""

import math
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from fmpy import read_model_description
from fmpy.validation import validate_fmu

from aidc_thermo import fmu
from aidc_thermo.cli import main
from aidc_thermo.io.case import load
from aidc_thermo.models import facility

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"
TEMPERATE = CASES / "nvl72_dry_cooler_temperate.toml"
HOT = CASES / "nvl72_chiller_tower_hot_humid.toml"
T0 = 273.15


def export(tmp_path, case=TEMPERATE, name="model.fmu"):
    out = tmp_path / name
    assert main(["fmu", str(case), "-o", str(out), "-q"]) == 0
    return out


def day_case(tmp_path, source: Path) -> Path:
    """The bundled case over the first 24 hours of its weather file, without plots."""
    text = source.read_text().replace('curves = "data/', f'curves = "{source.parent}/data/')
    m = re.search(r'weather = "([^"]+)"', text)
    lines = (source.parent / m[1]).read_text().splitlines()
    head = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if not ln.startswith("#")]
    (tmp_path / "day.csv").write_text("\n".join(head + body[:25]) + "\n")  # header + 24 rows
    text = text.replace(m[0], 'weather = "day.csv"') + "\n[output]\nplots = false\n"
    path = tmp_path / "case.toml"
    path.write_text(text)
    return path


def simulate(tmp_path, fmu_path, stop_time, output, input=None, start_values=None, step_size=3600.0):
    """FMPy's simulate_fmu in a process of its own (tests/_fmu_sim.py says why):
    ``(result or None, the FMU's log text, FMPy's error text or "")``."""
    req = dict(stop_time=stop_time, step_size=step_size, output=np.array(output))
    if input is not None:
        req["input"] = input
    if start_values:
        req["start_names"] = np.array(list(start_values))
        req["start_values"] = np.array(list(start_values.values()), np.float64)
    np.savez(tmp_path / "request.npz", **req)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "_fmu_sim.py"), str(fmu_path),
                           str(tmp_path / "request.npz"), str(tmp_path / "result.npz")],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp_path / "result.npz", allow_pickle=False) as r:
        return (r["result"] if "result" in r else None), "\n".join(r["log"]), str(r["error"])


# --------------------------------------------------------------------------- export (fast)


def test_export_embeds_the_case_and_declares_si_units(tmp_path, capsys):
    out = export(tmp_path)
    assert "FMU written to" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fmu"]  # no temporary left beside it
    assert validate_fmu(str(out)) == []  # FMPy's schema and structure checks, initial unknowns included
    with zipfile.ZipFile(out) as z:
        # the case as written, its cold-plate curve file embedded beside it
        expected = TEMPERATE.read_text().replace('"data/gpu_coldplate_curves.csv"', '"cold_plate_curves.csv"')
        assert z.read("resources/case.toml").decode() == expected
        assert z.read("resources/cold_plate_curves.csv") == (CASES / "data" / "gpu_coldplate_curves.csv").read_bytes()
        assert "binaries/linux64/AidcThermoFacility.so" in z.namelist()
    md = read_model_description(str(out))
    assert md.fmiVersion == "2.0" and md.coSimulation is not None
    assert "aidc-thermo installed" in md.description
    by_name = {v.name: v for v in md.modelVariables}
    assert {v.name for v in md.modelVariables if v.causality == "input"} == {v.name for v in fmu.INPUTS}
    assert {v.name for v in md.modelVariables if v.causality == "output"} == (
        {v.name for v, _ in fmu.OUTPUTS} | {"solver_iterations"}
    )
    units = {v.name: v.unit for v in md.modelVariables}
    assert units["T_junction"] == "K" and units["P_facility"] == "W" and units["J_per_token_facility"] == "J"
    assert units["p_ambient"] == "Pa" and units["water_makeup"] == "kg/s" and units["utilization"] is None
    # start values: the case's first weather row, its setpoint and its mean utilization
    case = facility.parse(load(TEMPERATE))
    assert float(by_name["T_dry_bulb"].start) == case.weather.t_db[0]
    assert float(by_name["T_supply_setpoint"].start) == pytest.approx(32.0 + T0, abs=1e-12)
    assert float(by_name["utilization"].start) == pytest.approx(np.mean(case.utilization_by_hour), rel=1e-15)


def test_export_replaces_its_own_fmu_but_nothing_else(tmp_path, capsys):
    out = export(tmp_path)
    export(tmp_path)  # an FMU thermo wrote is replaced
    assert zipfile.is_zipfile(out)
    other = tmp_path / "notes.fmu"
    other.write_text("mine")
    assert main(["fmu", str(TEMPERATE), "-o", str(other), "-q"]) == 2
    assert "is not an FMU written by thermo fmu" in capsys.readouterr().err
    assert other.read_text() == "mine"
    for bad, why in ((tmp_path / "model.zip", "must end in .fmu"), (tmp_path, "must end in .fmu")):
        assert main(["fmu", str(TEMPERATE), "-o", str(bad), "-q"]) == 2
        assert why in capsys.readouterr().err
    (tmp_path / "dir.fmu").mkdir()
    assert main(["fmu", str(TEMPERATE), "-o", str(tmp_path / "dir.fmu"), "-q"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_export_refuses_bad_cases_naming_them(tmp_path, capsys):
    out = tmp_path / "x.fmu"
    assert main(["fmu", str(CASES / "slab.toml"), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "slab.toml" in err and "case.type" in err and "'package_stack' cannot be exported" in err
    broken = tmp_path / "broken.toml"
    broken.write_text(TEMPERATE.read_text().replace('supply_temperature = "32 degC"', 'supply_temperature = "32 m"'))
    shutil.copytree(CASES / "data", tmp_path / "data")
    assert main(["fmu", str(broken), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "broken.toml" in err and "facility_water.supply_temperature" in err
    assert not out.exists() and not list(tmp_path.glob(".x.fmu*"))


def test_bad_inputs_are_refused_naming_the_input():
    case_file = load(TEMPERATE)
    point = fmu.FacilityPoint(facility.parse(case_file), case_file)
    good = point.start
    for name, value, expected in (
        ("utilization", 1.5, "0 < utilization <= 1"),
        ("utilization", 0.0, "0 < utilization <= 1"),
        ("T_dry_bulb", 25.0, "temperatures are in kelvin"),
        ("T_dry_bulb", math.nan, "finite number"),
        ("T_wet_bulb", good["T_dry_bulb"] + 1.0, "up to the dry bulb"),
        ("p_ambient", 1e3, "50000..110000 Pa"),
        ("T_supply_setpoint", 400.0, "must stay liquid"),
    ):
        with pytest.raises(fmu.InputError, match=re.escape(expected)) as exc:
            point.check_inputs(**{**good, name: value})
        assert f"input {name} = " in str(exc.value)
    point.check_inputs(**good)  # the start point itself is fine
    with pytest.raises(fmu.InputError, match="flow_scale"):
        fmu.check_flow_scale(0.0)


def test_fmpy_reports_a_bad_start_input_and_stops(tmp_path):
    out = export(tmp_path)
    res, log, error = simulate(tmp_path, out, 3600.0, ["T_junction"], start_values={"utilization": 1.5})
    assert res is None and "fmi2ExitInitializationMode failed" in error
    assert "initialization: input utilization = 1.5: expected 0 < utilization <= 1" in log


# --------------------------------------------------------------------------- a day of co-simulation (slow)


#: hourly series of thermo run (results.h5, group hourly) -> (FMU output, offset to SI)
COMPARED = {
    "T_junction": ("T_junction", T0),
    "T_secondary_supply": ("T_secondary_supply", T0),
    "T_facility_supply": ("T_facility_supply", T0),
    "T_facility_return": ("T_facility_return", T0),
    "P_accelerator": ("P_accelerator", 0.0),
    "clock": ("clock", 0.0),
    "tokens_per_s": ("tokens_per_s", 0.0),
    "P_IT": ("P_IT", 0.0),
    "P_cooling": ("P_cooling", 0.0),
    "P_facility": ("P_facility", 0.0),
    "P_pumps": ("P_pumps", 0.0),
    "P_fans": ("P_fans", 0.0),
    "P_chiller": ("P_chiller", 0.0),
    "Q_rejected": ("Q_rejected", 0.0),
    "water_makeup": ("water_makeup", 0.0),
    "J_per_token_facility": ("J_per_token_facility", 0.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("source", [TEMPERATE, HOT], ids=["dry_cooler", "tower_chiller"])
def test_fmu_over_a_day_matches_thermo_run(tmp_path, source):
    case_path = day_case(tmp_path, source)
    assert main(["run", str(case_path), "-o", str(tmp_path / "run"), "-q"]) == 0
    with h5py.File(tmp_path / "run" / "results.h5") as h5:
        ref = {k: np.asarray(h5["hourly"][k], np.float64) for k in COMPARED}
        util = np.asarray(h5["hourly"]["utilization"], np.float64)
    case = facility.parse(load(case_path))
    w = case.weather
    assert len(w) == 24
    signal = np.zeros(24, dtype=[(n, np.float64) for n in ("time", "utilization", "T_dry_bulb", "T_wet_bulb",
                                                           "p_ambient", "T_supply_setpoint")])  # fmt: skip
    signal["time"] = np.arange(24) * 3600.0
    signal["utilization"] = util
    signal["T_dry_bulb"], signal["T_wet_bulb"], signal["p_ambient"] = w.t_db, w.t_wb, w.p
    signal["T_supply_setpoint"] = case.params["t_supply_set"]
    out = export(tmp_path, case_path)
    names = [v for v, _ in COMPARED.values()] + ["solver_iterations", "solver_residual"]
    res, log, error = simulate(tmp_path, out, 24 * 3600.0, names, input=signal)
    assert error == "" and res is not None, (error, log)
    # row k + 1 holds the outputs of the step from hour k (its inputs held over the step)
    assert np.allclose(res["time"][1:], (np.arange(24) + 1) * 3600.0)
    for name, (out_name, offset) in COMPARED.items():
        np.testing.assert_allclose(res[out_name][1:], ref[name] + offset, rtol=1e-6, atol=1e-12, err_msg=name)
    assert np.all(res["solver_residual"][1:] <= 1e-9) and np.all(res["solver_iterations"][1:] >= 1)
    assert np.ptp(ref["T_junction"]) > 0.01  # the day's inputs do move the answer

    # a bad input mid-run fails that step (fmi2Discard: FMPy stops there), naming the input
    bad = signal.copy()
    bad["T_wet_bulb"][5:] = bad["T_dry_bulb"][5:] + 2.0
    res, log, error = simulate(tmp_path, out, 24 * 3600.0, ["T_junction"], input=bad)
    assert res["time"].max() == 5 * 3600.0  # no output after the failed step
    np.testing.assert_allclose(res["T_junction"][1:6], ref["T_junction"][:5] + T0, rtol=1e-6)
    assert "step from t = 18000 s: input T_wet_bulb = " in log and "up to the dry bulb" in log
