"""``thermo validate``: the table, the report folder and the exit code, and
that its figures are the tests' figures (the cases call the functions the
tests assert on: aidc_thermo.validation)."""

import json
from importlib import resources

import numpy as np
import pytest

from aidc_thermo import validation
from aidc_thermo.cli import main
from aidc_thermo.kernels import hx, psychro
from aidc_thermo.validation import Case, CaseResult, check_abs, check_range, check_rel, reference, source
from aidc_thermo.validation.plant import hx_regression, water_properties


def _rows(folder):
    doc = json.loads((folder / "validation.json").read_text())
    return doc, {(c["name"], r["quantity"]): r for c in doc["cases"] for r in c["checks"]}


def test_check_modes():
    assert check_rel("x", 2.0, 2.002, 1e-3).passed and not check_rel("x", 2.0, 2.0021, 1e-3).passed
    assert check_rel("x", 2.0, 2.002, 1e-3).difference == pytest.approx(1e-3)
    assert check_abs("x", 1.0, 1.0 + 1e-9, 2e-9).passed and not check_abs("x", 1.0, 1.1, 0.05).passed
    assert check_range("order", 2.0, 1.95, 1.9, 2.1).passed and not check_range("order", 2.0, 2.2, 1.9, 2.1).passed
    assert not check_abs("x", 0.0, float("nan"), 1.0).passed  # NaN never passes


def test_every_case_names_published_sources():
    names = [c.name for c in validation.CASES]
    assert len(names) == len(set(names))
    quick = [c for c in validation.CASES if c.quick]
    assert 0 < len(quick) < len(names)
    for case in validation.CASES:
        assert case.sources and case.description
        for key in case.sources:
            assert source(key)["citation"]
    # every reference entry names one of the sources
    data = json.loads(resources.files("aidc_thermo.data").joinpath("validation.json").read_text())
    for key, ref in data["references"].items():
        assert source(ref["source"]), key


def test_selected_cases_write_the_report_and_match_the_tests(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["validate", "--only", "hx_effectiveness,water,doe2_chiller", "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "effectiveness, counterflow, NTU 5, Cr 0.7" in printed and "all 25 checks passed" in printed
    for header in ("case", "quantity", "reference", "measured", "difference", "tolerance", "result"):
        assert header in printed.splitlines()[0]
    doc, rows = _rows(out)
    assert doc["passed"] and doc["checks"] == 25
    assert [c["name"] for c in doc["cases"]] == ["hx_effectiveness", "water", "doe2_chiller"]
    assert {p.name for p in out.iterdir()} == {"report.md", "validation.json", "hx_effectiveness.png", "manifest.json"}
    # the table's figures are the tests' (tests/test_hx.py, tests/test_coolant.py)
    for arrangement, (eps, value, tol) in hx_regression().items():
        r = rows[("hx_effectiveness", f"effectiveness, {arrangement}, NTU 5, Cr 0.7")]
        assert r["measured"] == eps == float(hx.effectiveness(5.0, 0.7, arrangement))
        assert r["reference"] == value == reference("hx_regression")["effectiveness"][arrangement]
        assert r["tolerance"] == tol and r["passed"]
    w = water_properties()
    assert rows[("water", "viscosity at 40 C")]["measured"] == w["viscosity"][0][2]
    assert rows[("water", "viscosity at 40 C")]["tolerance"] == 2e-3  # test_coolant's rel tolerance
    report = (out / "report.md").read_text()
    assert "all passed" in report and "https://github.com/NREL/EnergyPlus" in report
    assert "![Effectiveness-NTU at Cr = 0.7](hx_effectiveness.png)" in report


def _fake_cases(monkeypatch, run):
    case = Case("fake", "plant", "A case", ("analytic",), True, run, "A case for the test.")
    monkeypatch.setattr(validation.cases, "CASES", [case])


def test_a_failing_check_exits_4_with_the_report_written(tmp_path, monkeypatch, capsys):
    def run():
        w = float(psychro.saturation_pressure(psychro.T0 + 25.0))
        return CaseResult(checks=[check_rel("saturation pressure at 25 C", 3169.7, w, 1e-6, "Pa")])

    _fake_cases(monkeypatch, run)
    out = tmp_path / "r"
    assert main(["validate", "-o", str(out), "-q"]) == 4
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "1 of 1 checks failed" in captured.err
    doc, _ = _rows(out)
    assert doc["passed"] is False and doc["failed"] == 1


def test_a_case_that_raises_is_reported_and_the_rest_still_run(tmp_path, monkeypatch, capsys):
    def boom():
        raise FloatingPointError("the solve diverged")

    good = Case("good", "plant", "good", ("analytic",), True, lambda: CaseResult([check_abs("x", 1, 1, 0)]), "ok")
    bad = Case("bad", "plant", "bad", ("analytic",), True, boom, "raises")
    monkeypatch.setattr(validation.cases, "CASES", [bad, good])
    out = tmp_path / "r"
    assert main(["validate", "-o", str(out), "-q"]) == 4
    doc, rows = _rows(out)
    assert doc["errors"] == 1 and "the solve diverged" in doc["cases"][0]["error"]
    assert rows[("good", "x")]["passed"]
    assert "ERROR" in capsys.readouterr().out


def test_unknown_case_and_refused_folder_exit_2(tmp_path, capsys):
    assert main(["validate", "--only", "no_such_case", "-o", str(tmp_path / "x")]) == 2
    assert "no_such_case" in capsys.readouterr().err and not (tmp_path / "x").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not thermo's")
    assert main(["validate", "--only", "doe2_chiller", "-o", str(tmp_path / "mine"), "-q"]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "not thermo's"


@pytest.mark.slow
def test_quick_validation_passes_and_its_table_is_the_tests_figures(tmp_path):
    """``thermo validate --quick`` on the bundled data: every check passes, and
    figures of its table equal those the tests compute (same functions, same
    parameters)."""
    from aidc_thermo.validation.conduction import composite_wall
    from aidc_thermo.validation.energy import plates_developed_nusselt
    from aidc_thermo.validation.plant import chain_balances, facility_design_point, saturation_pressure

    out = tmp_path / "quick"
    assert main(["validate", "--quick", "-o", str(out), "-q"]) == 0
    doc, rows = _rows(out)
    assert doc["passed"] and doc["quick"]
    assert [c["name"] for c in doc["cases"]] == [c.name for c in validation.CASES if c.quick]
    r = composite_wall(0)  # tests/test_conduction.py
    err = float(np.max(np.abs(r["profile"] - r["exact"]))) / r["t_wall"]
    assert rows[("composite_wall", "max |T - T_exact| / T_wall")]["measured"] == err
    nu = plates_developed_nusselt("H")["mean"]  # tests/test_energy.py
    assert rows[("plates_nu_h", "fully developed Nu_H")]["measured"] == nu
    p = saturation_pressure()  # tests/test_psychro.py
    assert rows[("psychrometrics", "saturation pressure at 25 C")]["measured"] == p["computed"][3]
    f = facility_design_point(export_fraction=0.3)  # the balance tests/test_coupled.py asserts
    left, right = chain_balances(f["fac"], f["op"])["heat out / heat in"]
    row = rows[("facility_energy", "heat out / heat in")]
    assert row["measured"] == left and row["reference"] == right
    for png in ("composite_wall.png", "plates_nu_H.png", "shah_polynomials.png", "saturation_pressure.png"):
        assert (out / png).stat().st_size > 10_000, png
