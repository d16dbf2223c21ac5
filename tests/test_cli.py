"""The ``thermo`` command end to end on every bundled case, and the results
folder: HDF5 contents, the XDMF sidecar's references, atomic writes."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from aidc_thermo.cli import XDMF_CASE_TYPES, main
from aidc_thermo.io.results import summary_values
from tests._bundled import BUNDLED, FAST_BUNDLED, SLOW_BUNDLED, case_type, check_guard, spy_on_guard

ROOT = Path(__file__).resolve().parents[1]
#: case types whose results live on a 3D grid (results.xdmf, /grid, /fields)
GRIDDED = {"package_stack", "resolved_coldplate", "compact_coldplate"}
GRIDDED_STEMS = {c.stem for c in BUNDLED if case_type(c) in GRIDDED}
GRIDDED_CASES = sorted(GRIDDED_STEMS - SLOW_BUNDLED)


@pytest.fixture(scope="module")
def bundled_runs(tmp_path_factory):
    """Run every bundled case of the default suite once, keeping what each run
    gave its boundedness guard; tests below inspect the folders and the guards."""
    base = tmp_path_factory.mktemp("runs")
    folders, guards = {}, {}
    for case in FAST_BUNDLED:
        folder = base / case.stem
        with pytest.MonkeyPatch.context() as mp:
            guards[case.stem] = spy_on_guard(case_type(case), mp)
            code = main(["run", str(case), "-o", str(folder)])
        folders[case.stem] = (code, folder)
    return folders, guards


@pytest.fixture(scope="module")
def runs(bundled_runs):
    """Bundled case name -> (exit code, results folder)."""
    return bundled_runs[0]


def _check_complete_folder(case, code, folder):
    assert code == 0
    for name in ("results.h5", "summary.json"):
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "summary.json").read_text())
    timing = summary.pop("timing")  # run-to-run timings, apart from the headline numbers
    assert {"compile_s", "solve_s", "total_s"} <= set(timing)
    for ref in summary.pop("cold_plate_references", []):  # plate cases the case names: how each was resolved
        assert ref["cache"] in ("miss", "hit", "run", "off") and ref["plate_case_sha256"], ref
    for key, entry in summary.items():
        assert set(entry) == {"value", "unit", "description"}, key
        if isinstance(entry["value"], float):
            assert np.isfinite(entry["value"]), key
    assert list(folder.glob("*.png")), "no plots written"
    kind = case_type(ROOT / "cases" / f"{case}.toml")
    assert (folder / "results.xdmf").is_file() == (kind in XDMF_CASE_TYPES), "results.xdmf is for grids and networks"
    with h5py.File(folder / "results.h5") as h5:
        assert "text" in h5["case"] and "parsed" in h5["case"]
        assert h5["case/text"][()].decode() == (ROOT / "cases" / f"{case}.toml").read_text()
        assert "solver" in h5 and "summary" in h5
        for name, ds in h5.get("fields", {}).items():
            assert "units" in ds.attrs, name
            assert np.all(np.isfinite(ds[()])), name


@pytest.mark.parametrize("case", [c.stem for c in FAST_BUNDLED])
def test_bundled_case_runs_and_writes_a_complete_folder(case, runs):
    _check_complete_folder(case, *runs[case])


@pytest.mark.parametrize("case", [c.stem for c in FAST_BUNDLED])
def test_bundled_case_passes_its_guard_and_a_corrupted_solution_does_not(case, bundled_runs):
    """The run's guard passed on its real solution (exit 0); the same guard
    refuses that solution corrupted. (The slow bundled cases: tests/test_bounds.py.)"""
    folders, guards = bundled_runs
    assert folders[case][0] == 0
    check_guard(case_type(ROOT / "cases" / f"{case}.toml"), guards[case])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SLOW_BUNDLED))
def test_slow_bundled_case_runs_writes_a_complete_folder_and_redraws(case, tmp_path):
    """The bundled cases the ``runs`` fixture leaves out: the same folder
    checks, and ``thermo plot`` redraws the run's PNG files byte for byte."""
    folder = tmp_path / case
    _check_complete_folder(case, main(["run", str(ROOT / "cases" / f"{case}.toml"), "-o", str(folder)]), folder)
    if case in GRIDDED_STEMS:
        _check_xdmf(folder)
    written = {p.name: p.read_bytes() for p in folder.glob("*.png")}
    assert main(["plot", str(folder), "-o", str(tmp_path / "redrawn")]) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "redrawn").glob("*.png")} == written


@pytest.mark.parametrize("case", GRIDDED_CASES)
def test_xdmf_refers_to_every_field_once_on_the_right_grid(case, runs):
    """results.xdmf names each /fields dataset once, under its own name, with
    the dimensions HDF5 holds (no copies); the hexahedra's centroids are the
    grid's cell centres in the fields' (i, j, k) order. (ParaView reading it:
    tests/test_paraview.py.)"""
    _check_xdmf(runs[case][1])


def _check_xdmf(folder):
    import xml.etree.ElementTree as ET

    with h5py.File(folder / "results.h5") as h5:
        xf, yf, zf = (h5[f"grid/{a}_faces"][()] for a in "xyz")
        fields = {name: ds.shape for name, ds in h5["fields"].items()}
        points, hexes = h5["mesh/points"][()], h5["mesh/hexahedra"][()]
    shape = (len(xf) - 1, len(yf) - 1, len(zf) - 1)
    centroids = points[hexes].mean(axis=1).reshape(*shape, 3)
    for axis, f in enumerate((xf, yf, zf)):
        centre = 0.5 * (f[1:] + f[:-1])
        expected = np.broadcast_to(centre.reshape([-1 if a == axis else 1 for a in range(3)]), shape)
        np.testing.assert_allclose(centroids[..., axis], expected, atol=1e-12)
    root = ET.parse(folder / "results.xdmf").getroot()
    seen = {}
    for attr in root.iter("Attribute"):
        if attr.get("Center") == "Grid":  # the material legend
            continue
        item = attr.find("DataItem")
        assert item.text.strip() == f"results.h5:/fields/{attr.get('Name')}"
        assert tuple(int(n) for n in item.get("Dimensions").split()) == fields[attr.get("Name")]
        assert attr.get("AttributeType") == ("Vector" if attr.get("Name") == "velocity" else "Scalar")
        seen[attr.get("Name")] = seen.get(attr.get("Name"), 0) + 1
    assert seen == dict.fromkeys(fields, 1)


def test_slab_matches_the_exact_one_dimensional_answer(runs):
    _, folder = runs["slab"]
    s = json.loads((folder / "summary.json").read_text())
    q, L, k, h = 50e4, 5e-3, 393.0, 1e4
    exact = 30.0 + q * (L / k + 1 / h)
    assert s["T_junction_max"]["value"] == pytest.approx(exact, abs=1e-7)
    assert s["T_junction_mean"]["value"] == pytest.approx(exact, abs=1e-7)
    assert s["R_junction_to_coolant"]["value"] == pytest.approx((exact - 30.0) / 50.0, rel=1e-9)
    assert s["heat_balance_error"]["value"] < 1e-9


def test_accelerator_case_headlines_are_consistent(runs):
    _, folder = runs["accelerator_700w"]
    s = json.loads((folder / "summary.json").read_text())
    assert s["total_power"]["value"] == pytest.approx(772.0)
    assert s["heat_balance_error"]["value"] < 1e-9
    assert s["T_junction_max"]["value"] > s["T_junction_mean"]["value"] > s["T_coolant"]["value"]
    # the hot spot is where the case puts it (24-32 mm square)
    assert 0.024 < s["hotspot_x"]["value"] < 0.032 and 0.024 < s["hotspot_y"]["value"] < 0.032
    r = s["R_junction_to_coolant"]["value"]
    assert (s["T_junction_max"]["value"] - 35.0) / 772.0 == pytest.approx(r, rel=1e-12)


def test_non_converged_solve_exits_3_and_leaves_the_old_folder(tmp_path, capsys, runs):
    case = tmp_path / "tight.toml"
    case.write_text((ROOT / "cases" / "slab.toml").read_text() + "\n[solver]\nmax_iterations = 1\n")
    out = tmp_path / "out"
    shutil.copytree(runs["slab"][1], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["run", str(case), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "did not converge" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rerun_replaces_a_folder_thermo_wrote_and_nothing_else(tmp_path, runs):
    """Only a results folder with thermo's manifest.json is replaced; one with a
    file of the user's in it is refused (more in tests/test_output_paths.py)."""
    out = tmp_path / "out"
    shutil.copytree(runs["slab"][1], out)
    (out / "summary.json").write_text("{}")  # an older summary: replaced
    assert main(["run", str(ROOT / "cases" / "slab.toml"), "-o", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["solver_converged"]["value"] is True
    (out / "stale.txt").write_text("the user's")
    assert main(["run", str(ROOT / "cases" / "slab.toml"), "-o", str(out)]) == 2
    assert (out / "stale.txt").read_text() == "the user's"


def test_check_accepts_every_bundled_case(capsys):
    for case in BUNDLED:
        assert main(["check", str(case)]) == 0
    assert capsys.readouterr().out.count(": ok") == len(BUNDLED)


def test_coldplate_unit_cell_conserves_and_matches_duct_friction(runs):
    """Resolved unit cell: outlet bulk temperature from the fields equals the
    energy balance; the pressure drop lies above the fully developed
    Shah & London value (the entrance adds to it) and within 25 % of it."""
    _, folder = runs["coldplate_unit_cell"]
    s = json.loads((folder / "summary.json").read_text())
    rise = s["T_outlet_energy_check"]["value"] - s["inlet_temperature"]["value"]
    assert s["T_outlet_bulk"]["value"] - s["inlet_temperature"]["value"] == pytest.approx(rise, rel=1e-3)
    assert s["heat_balance_error"]["value"] < 1e-9 and s["mass_imbalance"]["value"] < 1e-8
    # 0.3 mm x 1.5 mm channel, 10 mm long, 0.5 m/s water at 30 degC
    from aidc_thermo.coolant import make_coolant

    water = make_coolant("water")
    rho, mu = float(water.density(303.15)), float(water.viscosity(303.15))
    a, b, L, u = 0.3e-3, 1.5e-3, 10e-3, 0.5
    alpha = a / b
    dh = 4 * a * b / (2 * (a + b))
    f_re = 24 * (1 - 1.3553 * alpha + 1.9467 * alpha**2 - 1.7012 * alpha**3 + 0.9564 * alpha**4 - 0.2537 * alpha**5)
    re = rho * u * dh / mu
    dp_fd = 4 * (f_re / re) * (L / dh) * rho * u**2 / 2
    assert dp_fd < s["pressure_drop"]["value"] < 1.25 * dp_fd


@pytest.mark.parametrize("case", [c.stem for c in FAST_BUNDLED])
def test_plot_redraws_the_runs_pngs_byte_for_byte(case, runs, tmp_path):
    """`thermo plot` from results.h5 alone draws the same files as the run."""
    _, folder = runs[case]
    written = {p.name: p.read_bytes() for p in folder.glob("*.png")}
    assert main(["plot", str(folder), "-o", str(tmp_path)]) == 0
    redrawn = {p.name: p.read_bytes() for p in tmp_path.glob("*.png")}
    assert sorted(redrawn) == sorted(written)
    assert [n for n in written if redrawn[n] != written[n]] == []


def test_plate_profiles_for_the_plots_carry_all_the_heat(runs):
    """The wall heat flux behind along_flow.png carries every watt into the
    fluid; local h is positive; the bulk temperature rises to the outlet."""
    _, folder = runs["coldplate_unit_cell"]
    summary = summary_values(folder)
    with h5py.File(folder / "results.h5") as h5:
        q = h5["profiles/q_wall"][()]
        h = h5["profiles/h"][()]
        t_bulk = h5["profiles/T_bulk"][()]
        t_wall = h5["profiles/T_wall"][()]
        section = h5["cross_section/temperature"][()]
        mat = h5["cross_section/material"][()]
    # every watt into the base reaches the fluid through the wetted walls
    assert q.sum() == pytest.approx(summary["heat_input"], rel=1e-3)
    assert np.all(np.isfinite(h)) and np.all(h > 0)
    assert np.all(t_wall > t_bulk)
    # bulk temperature rises along the flow to the outlet figure (last cell centre vs outlet face)
    assert np.all(np.diff(t_bulk) > 0)
    assert t_bulk[-1] == pytest.approx(summary["T_outlet_bulk"], abs=0.1 * (t_bulk[-1] - t_bulk[0]))  # degC
    assert section.shape == mat.shape and (mat == 0).any() and (mat != 0).any()
