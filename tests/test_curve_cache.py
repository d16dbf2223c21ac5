"""A cold plate named by its case (thermo/curve_cache.py): the curve cache's
exact form reads back bit for bit; a second resolution reuses the cached
curves and a change to the plate case or a file it references invalidates
them; a corrupt entry is solved again; malformed references exit 2 naming the
referring file and key. The fast tests stand a counting stand-in for the
compact solve (the cache's logic, not the physics); the slow ones solve a
small compact plate and check that the rack and the facility by reference
equal the same curves given as a curve file. A resolved_coldplate case is
accepted by reference when it has ``[inlet] flow_range`` (a stand-in for its
solve in the fast tests; the slow one solves a tiny unit cell and checks a
tiny rack by reference against the same rack given the plate's curves.csv)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from aidc_thermo import curve_cache
from aidc_thermo.cli import main
from aidc_thermo.io.case import Table, load
from aidc_thermo.io.curves import ColdPlateCurves, format_curves, read_curves
from aidc_thermo.models import coldplate, compact
from tests._first_gpu_plate import bundled_gpu_plate

CASES = Path(__file__).resolve().parents[1] / "cases"
LPM = 1.0 / 60000.0
PG25 = "propylene_glycol 25.7 % by mass"


def _plate_text(flow_range=("1.5 L/min", "5 L/min"), cells=(12, 12), points=3) -> str:
    """The bundled GPU plate, coarse (12 x 12 columns, 3 curve flows)."""
    text = bundled_gpu_plate()
    text = re.sub(r"cells = \[\d+, \d+\]", f"cells = [{cells[0]}, {cells[1]}]", text)
    text = re.sub(r"flow_range = \[[^\]]*\]", f'flow_range = ["{flow_range[0]}", "{flow_range[1]}"]', text)
    text = re.sub(r"curve_points = \d+", f"curve_points = {points}", text)
    return text + "\n[output]\nplots = false\n"


def _rack_text(gpu_plate: str) -> str:
    from test_coldplate_handoff import RACK_INLINE

    return RACK_INLINE.replace("GPU_PLATE", gpu_plate)


def _hall_text(cold_plate: str) -> str:
    text = (CASES / "nvl72_dry_cooler_temperate.toml").read_text()
    text = re.sub(r"\[cold_plate\]\n[^\[]*", f"[cold_plate]\n{cold_plate}\n\n", text)
    text = re.sub(r"\[ambient\]\n[^\[]*", '[ambient]\ndry_bulb = "32 degC"\nrelative_humidity = 0.4\n\n', text)
    return text.replace('weather = "data/', f'weather = "{CASES}/data/')


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "curve-cache"
    monkeypatch.setenv(curve_cache.ENV, str(folder))
    curve_cache.begin_run()
    return folder


# ----------------------------------------------------------------------------- fast: the cache's logic


def test_exact_form_reads_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(7)
    q = np.sort(rng.uniform(1e-6, 2e-4, 9))
    curves = ColdPlateCurves(
        flow=tuple(q),
        r_max=tuple(rng.uniform(0.01, 0.1, 9) * np.pi),
        r_mean=tuple(rng.uniform(0.01, 0.1, 9) / 3),
        dp=tuple(np.sort(rng.uniform(1e2, 1e5, 9)) * (1 + 1e-15)),
        coolant=PG25,
        inlet_temperature=35.0 + 273.15,
    )
    path = tmp_path / "c.csv"
    path.write_text(format_curves(curves, exact=True))
    back = read_curves(path)
    assert (back.flow, back.r_max, back.r_mean, back.dp) == (curves.flow, curves.r_max, curves.r_mean, curves.dp)
    assert back.inlet_temperature == curves.inlet_temperature and back.coolant == curves.coolant
    # the usual 12-digit form does not: the cache needs the exact one
    path.write_text(format_curves(curves))
    assert read_curves(path).flow != curves.flow


class _Solver:
    """Counts compact solves and returns curves that depend on the plate's
    heat (so that a changed case gives other curves)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, case, case_file):
        self.calls += 1
        q = np.asarray(case.curve_flows)
        power = case.total_power if hasattr(case, "total_power") else case.heat_flux * 1e-4  # compact or resolved
        return ColdPlateCurves(
            flow=tuple(q),
            r_max=tuple(30.0 / power * (q / q[0]) ** -0.3),
            r_mean=tuple(25.0 / power * (q / q[0]) ** -0.3),
            dp=tuple(2e3 * (q / q[0]) ** 1.7),
            coolant=PG25,
            inlet_temperature=case.inlet_temperature,
            provenance=(("model", "stand-in"), ("case_file", case_file.path.name)),
        )


def _ref(tmp_path, name="hall.toml"):
    case_file = load(tmp_path / name)
    return curve_cache.reference(Table(case_file.data, case_file.path).table("cold_plate"), "case", tmp_path)


def test_second_resolution_reuses_the_cache_and_a_change_invalidates_it(tmp_path, cache, monkeypatch, capsys):
    solver = _Solver()
    monkeypatch.setattr(compact, "solve_curves", solver)
    (tmp_path / "plate.toml").write_text(_plate_text())
    (tmp_path / "hall.toml").write_text('[cold_plate]\ncase = "plate.toml"\n')

    first = _ref(tmp_path).curves()
    assert _ref(tmp_path).curves() == first  # named twice in one run
    recs = curve_cache.records()
    curve_cache.begin_run()  # the next run
    second = _ref(tmp_path).curves()
    assert solver.calls == 1
    assert first == second  # the same floats, provenance and source, from the file both times
    recs += curve_cache.records()
    assert [r["cache"] for r in recs] == ["miss", "run", "hit"]
    assert recs[0]["cache_key"] == recs[1]["cache_key"] and recs[0]["plate_case"] == str(tmp_path / "plate.toml")
    err = capsys.readouterr().err
    assert "cold-plate curves for plate.toml: solved in" in err and "cached as" in err
    assert "cold-plate curves for plate.toml: reused from cache" in err
    assert sorted(p.name for p in cache.iterdir()) == [f"{recs[0]['cache_key']}.csv"]

    # one number of the plate case changed: another key, solved again, other curves
    (tmp_path / "plate.toml").write_text(_plate_text().replace('power = "840 W"', 'power = "900 W"'))
    curve_cache.begin_run()
    third = _ref(tmp_path).curves()
    assert solver.calls == 2 and third.r_max != first.r_max
    assert curve_cache.records()[-1]["cache"] == "miss"
    assert curve_cache.records()[-1]["cache_key"] != recs[0]["cache_key"]

    # a file the plate case references (its die's power map) is part of the key
    (tmp_path / "map.csv").write_text("1,1\n1,2\n")
    mapped = _plate_text().replace('# map = "data/die_map.csv"', 'map = "map.csv"')
    (tmp_path / "plate.toml").write_text(mapped)
    key_a = _ref(tmp_path).cache_key
    table = str((CASES / "data" / "gpu_closures.csv").resolve())
    assert set(_ref(tmp_path).inputs) == {str(tmp_path / "map.csv"), table}  # the plate's closure table too
    (tmp_path / "map.csv").write_text("1,1\n1,3\n")
    assert _ref(tmp_path).cache_key != key_a


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t[: len(t) // 2],  # truncated
        lambda t: t.replace("e-05,", "e-04,", 1),  # a number altered, checksum kept
        lambda t: "garbage\n",
    ],
)
def test_a_corrupt_entry_is_solved_again_not_trusted(tmp_path, cache, monkeypatch, capsys, damage):
    solver = _Solver()
    monkeypatch.setattr(compact, "solve_curves", solver)
    (tmp_path / "plate.toml").write_text(_plate_text())
    (tmp_path / "hall.toml").write_text('[cold_plate]\ncase = "plate.toml"\n')
    good = _ref(tmp_path).curves()
    entry = next(cache.iterdir())
    entry.write_text(damage(entry.read_text()))
    first_key = curve_cache.records()[0]["cache_key"]
    curve_cache.begin_run()
    again = _ref(tmp_path).curves()
    assert solver.calls == 2 and again == good
    assert [r["cache"] for r in curve_cache.records()] == ["miss"]
    assert "ignoring the unreadable cache file" in capsys.readouterr().err
    assert curve_cache._read_entry(entry, first_key) == read_curves(entry)  # rewritten whole


def _resolved_text(curves: bool = True) -> str:
    """The tiny resolved unit cell of test_coldplate_curves (8 x 6 x 8 cells, water), with or without its
    [inlet] flow_range (3 curve flows)."""
    from test_coldplate_curves import CURVES, SMALL

    return SMALL.replace('flow = "0.015 L/min"', CURVES) if curves else SMALL


def test_a_resolved_case_is_accepted_and_solved_as_its_own_run(tmp_path, cache, monkeypatch, capsys):
    """A resolved_coldplate case passes the type check; its curves come from coldplate.case_curves (what thermo
    run of the plate writes to curves.csv), are cached and recorded with the plate's case type; the compact
    solve is not used."""
    solver, compact_solver = _Solver(), _Solver()
    monkeypatch.setattr(coldplate, "case_curves", solver)
    monkeypatch.setattr(compact, "solve_curves", compact_solver)
    (tmp_path / "plate.toml").write_text(_resolved_text())
    (tmp_path / "hall.toml").write_text('[cold_plate]\ncase = "plate.toml"\n')
    ref = _ref(tmp_path)
    assert ref.case_type == "resolved_coldplate" and ref.coolant == "water"
    np.testing.assert_allclose(ref.flow_range, (0.01 * LPM, 0.02 * LPM), rtol=1e-15)
    first = ref.curves()
    curve_cache.begin_run()
    second = _ref(tmp_path).curves()
    assert (solver.calls, compact_solver.calls) == (1, 0)
    assert first == second and first.flow == ref.case.curve_flows
    assert [r["cache"] for r in curve_cache.records()] == ["hit"]
    assert curve_cache.records()[0]["plate_case_type"] == "resolved_coldplate"
    assert "solving 3 flows with the resolved (finite-volume) model" in capsys.readouterr().err


def test_cache_off_solves_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv(curve_cache.ENV, "off")
    curve_cache.begin_run()
    assert curve_cache.cache_dir() is None
    solver = _Solver()
    monkeypatch.setattr(compact, "solve_curves", solver)
    (tmp_path / "plate.toml").write_text(_plate_text())
    (tmp_path / "hall.toml").write_text('[cold_plate]\ncase = "plate.toml"\n')
    a = _ref(tmp_path).curves()
    assert _ref(tmp_path).curves() == a and solver.calls == 1  # named twice in one run: solved once
    curve_cache.begin_run()
    assert _ref(tmp_path).curves() == a
    assert solver.calls == 2 and [r["cache"] for r in curve_cache.records()] == ["off"]


def test_no_curve_cache_flag_turns_it_off(monkeypatch):
    from aidc_thermo.cli import _configure_jax, build_parser

    monkeypatch.setenv(curve_cache.ENV, "/some/folder")
    try:
        _configure_jax(build_parser().parse_args(["run", "x.toml", "--no-curve-cache", "--no-compile-cache"]))
        assert curve_cache.cache_dir() is None
        _configure_jax(build_parser().parse_args(["run", "x.toml", "--no-compile-cache"]))
        assert curve_cache.cache_dir() == Path("/some/folder")
    finally:
        curve_cache.configure(True)


def test_cache_folder_defaults_beside_the_compile_cache():
    env = {"XDG_CACHE_HOME": "/x/cache"}
    assert curve_cache.cache_dir(env) == Path("/x/cache/aidc-thermo/curves")
    assert curve_cache.cache_dir({**env, curve_cache.ENV: "/y"}) == Path("/y")
    assert curve_cache.cache_dir({curve_cache.ENV: "OFF"}) is None


# ----------------------------------------------------------------------------- fast: malformed references (exit 2)

WRONG_TYPE = (CASES / "rack_nvl72.toml").name


@pytest.mark.parametrize(
    "plate, gpu, fragment",
    [
        (None, 'case = "nope.toml"', r"plate_types\[0\]\.case: cold-plate case .*nope.toml: file not found"),
        (
            None,
            f'case = "{CASES / WRONG_TYPE}"',
            r"plate_types\[0\]\.case: .* is a 'rack_network' case; .*"
            r"must be a case of type 'compact_coldplate', 'resolved_coldplate'",
        ),  # fmt: skip
        (
            _plate_text().replace('channel_width = "0.2 mm"', 'channel_width = "-0.2 mm"'),
            'case = "plate.toml"',
            r"plate_types\[0\]\.case: the cold-plate case is malformed: .*plate.toml: fins.channel_width",
        ),
        (
            _plate_text().replace("[fins]", "[fins]\ncolour = 'red'"),
            'case = "plate.toml"',
            r"plate_types\[0\]\.case: the cold-plate case is malformed: .*plate.toml: fins.colour",
        ),
        (_plate_text(), 'case = "plate.toml"\ncurves = "c.csv"', r"plate_types\[0\]\.case: give either curves"),
        (_plate_text(), 'case = "plate.toml"\ndp_rated = "5 kPa"', r"plate_types\[0\]\.dp_rated: give either"),
        (
            re.sub(r"\[coolant\]\n[^\[]*", '[coolant]\nfluid = "water"\n\n', _plate_text()),
            'case = "plate.toml"',
            r"plate_types\[0\]\.case: the cold-plate case plate.toml is made with 'water', this rack's coolant is "
            r"'propylene_glycol 25.7 % by mass'",
        ),
        (None, "case = 3", r"plate_types\[0\]\.case: expected the path of a cold-plate case file"),
        (
            _resolved_text(curves=False),
            'case = "plate.toml"',
            r"plate_types\[0\]\.case: the resolved_coldplate case plate.toml has no curves to solve: "
            r".*plate.toml: inlet\.flow_range",
        ),
    ],
)
def test_malformed_rack_reference_exits_2_naming_file_and_key(tmp_path, cache, capsys, plate, gpu, fragment):
    if plate is not None:
        (tmp_path / "plate.toml").write_text(plate)
    (tmp_path / "rack.toml").write_text(_rack_text(gpu))
    assert main(["check", str(tmp_path / "rack.toml")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "rack.toml") in err
    assert re.search(fragment, err), err
    assert not cache.exists()  # refused before any solve


@pytest.mark.parametrize(
    "plate, cold_plate, fragment",
    [
        (None, 'case = "missing.toml"', r"cold_plate\.case: cold-plate case .*missing.toml: file not found"),
        (
            _plate_text(flow_range=("3 L/min", "6 L/min")),
            'case = "plate.toml"',
            r"secondary\.flow_per_accelerator: 2.5 L/min is outside the flow range of the cold-plate curves "
            r"\(3\.\.6 L/min, plate.toml\)",
        ),
        (
            _plate_text(flow_range=("2 L/min", "3.5 L/min")),
            'case = "plate.toml"',
            r"optimize\.flow_scale: flow scales 0.6..1.6",
        ),
        (_plate_text(), 'case = "plate.toml"\ncurves = "c.csv"', r"cold_plate\.case: give either curves"),
        (_plate_text(), 'case = "plate.toml"\nreference_flow = "2.5 L/min"', r"cold_plate\.reference_flow: give"),
        (
            re.sub(r"\[coolant\]\n[^\[]*", '[coolant]\nfluid = "water"\n\n', _plate_text()),
            'case = "plate.toml"',
            r"cold_plate\.case: the cold-plate case plate.toml is made with 'water'",
        ),
        (
            _resolved_text(curves=False),
            'case = "plate.toml"',
            r"cold_plate\.case: the resolved_coldplate case plate.toml has no curves to solve: .*plate.toml: "
            r"inlet\.flow_range: expected \[low, high\]",
        ),
    ],
)
def test_malformed_facility_reference_exits_2_naming_file_and_key(tmp_path, cache, capsys, plate, cold_plate, fragment):
    if plate is not None:
        (tmp_path / "plate.toml").write_text(plate)
    (tmp_path / "hall.toml").write_text(_hall_text(cold_plate))
    assert main(["check", str(tmp_path / "hall.toml")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "hall.toml") in err
    assert re.search(fragment, err), err
    assert not cache.exists()  # refused before any solve


# ----------------------------------------------------------------------------- slow: real compact solves


def _h5_arrays(path) -> dict:
    out = {}
    with h5py.File(path, "r") as h5:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("case") and obj.dtype.kind in "fiub":
                out[name] = obj[()]

        h5.visititems(visit)
    return out


@pytest.mark.slow  # a compact plate and a rack compiled: ~90 s on the shared 2-core machine
def test_rack_by_reference_is_cached_bit_identical_and_equals_the_curve_file(tmp_path, cache, capsys):
    (tmp_path / "plate.toml").write_text(_plate_text())
    (tmp_path / "rack.toml").write_text(_rack_text('case = "plate.toml"'))
    assert main(["run", str(tmp_path / "rack.toml"), "-o", str(tmp_path / "a")]) == 0
    assert "cold-plate curves for plate.toml: solved in" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "rack.toml"), "-o", str(tmp_path / "b")]) == 0
    assert "cold-plate curves for plate.toml: reused from cache" in capsys.readouterr().err
    ra, rb = (json.loads((tmp_path / x / "summary.json").read_text()) for x in "ab")
    assert [ra["cold_plate_references"][0]["cache"], rb["cold_plate_references"][0]["cache"]] == ["miss", "hit"]
    assert rb["cold_plate_references"][0]["key"] == "plate_types[0].case"
    with h5py.File(tmp_path / "b" / "results.h5") as h5:
        assert h5["cold_plate_references/0"].attrs["cache"] == "hit"
    a, b = _h5_arrays(tmp_path / "a" / "results.h5"), _h5_arrays(tmp_path / "b" / "results.h5")
    assert a.keys() == b.keys() and len(a) > 5
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k  # bit-identical (NaN: no junction limit)

    # the same curves handed over as a curve file: every result agrees to 1e-12
    entry = Path(ra["cold_plate_references"][0]["cache_file"])
    (tmp_path / "c.csv").write_text(entry.read_text())
    (tmp_path / "file.toml").write_text(_rack_text('curves = "c.csv"'))
    assert main(["run", str(tmp_path / "file.toml"), "-o", str(tmp_path / "f")]) == 0
    f = _h5_arrays(tmp_path / "f" / "results.h5")
    assert "cold_plate_references" not in json.loads((tmp_path / "f" / "summary.json").read_text())
    for k in a:
        np.testing.assert_allclose(f[k], a[k], rtol=1e-12, atol=0, err_msg=k)

    # the curves are the compact model's own (the plate run alone writes the same numbers to 12 digits)
    assert main(["run", str(tmp_path / "plate.toml"), "-o", str(tmp_path / "p")]) == 0
    own, cached = read_curves(tmp_path / "p" / "curves.csv"), read_curves(entry)
    np.testing.assert_allclose(cached.r_max, own.r_max, rtol=1e-11)
    np.testing.assert_allclose(cached.dp, own.dp, rtol=1e-11)

    # one number of the plate changed: the cache misses
    (tmp_path / "plate.toml").write_text(_plate_text().replace('power = "840 W"', 'power = "841 W"'))
    assert main(["run", str(tmp_path / "rack.toml"), "-o", str(tmp_path / "c")]) == 0
    assert "cold-plate curves for plate.toml: solved in" in capsys.readouterr().err
    rc = json.loads((tmp_path / "c" / "summary.json").read_text())["cold_plate_references"][0]
    assert rc["cache"] == "miss" and rc["cache_key"] != ra["cold_plate_references"][0]["cache_key"]


@pytest.mark.slow  # a compact plate and a year of the facility compiled: ~60 s
def test_facility_by_reference_equals_the_curve_file(tmp_path, cache):
    from aidc_thermo.models import facility

    (tmp_path / "plate.toml").write_text(_plate_text())
    (tmp_path / "ref.toml").write_text(_hall_text('case = "plate.toml"'))
    case = facility.parse(load(tmp_path / "ref.toml"))
    entry = Path(curve_cache.records()[0]["cache_file"])
    (tmp_path / "c.csv").write_text(entry.read_text())
    (tmp_path / "file.toml").write_text(_hall_text('curves = "c.csv"'))
    out = {}
    for tag, c in (("ref", case), ("file", facility.parse(load(tmp_path / "file.toml")))):
        static, params = facility.build(c)
        sol = facility.compiled_solve(static, batched=False)(params)
        facility.check(static, params, sol)
        out[tag] = {k: np.asarray(v.value) for k, v in facility.report(static, params, sol).items()}
    for k in out["ref"]:
        np.testing.assert_allclose(out["ref"][k], out["file"][k], rtol=1e-12, atol=0, err_msg=k)


@pytest.mark.slow  # a compact plate and a rack compiled
def test_rack_flow_outside_the_solved_range_exits_2_naming_the_plate_case_key(tmp_path, cache, capsys):
    (tmp_path / "plate.toml").write_text(_plate_text(flow_range=("3.5 L/min", "5 L/min")))
    (tmp_path / "rack.toml").write_text(_rack_text('case = "plate.toml"'))
    assert main(["run", str(tmp_path / "rack.toml"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'rack.toml'}: plate_types[0].case: " in err, err
    assert "plates of type 'gpu' run outside the flow range of their curve file (3.5..5 L/min)" in err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_fmu_refuses_a_plate_named_by_its_case(tmp_path, cache, capsys):
    """An FMU embeds curve files; a plate case is refused (exit 2) before anything is solved or written."""
    (tmp_path / "plate.toml").write_text(_plate_text())
    (tmp_path / "rack.toml").write_text(_rack_text('case = "plate.toml"'))
    assert main(["fmu", str(tmp_path / "rack.toml"), "-o", str(tmp_path / "r.fmu"), "-q"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"rack.toml: plate_types\[0\]\.case: thermo fmu embeds cold-plate curve files", err), err
    assert not (tmp_path / "r.fmu").exists() and not cache.exists()


@pytest.mark.slow  # a tiny resolved unit cell (4 solves) run alone, then by reference, and a tiny rack 3 times
def test_rack_by_resolved_reference_equals_the_rack_given_its_curves_csv(tmp_path, cache, capsys):
    from test_coldplate_curves import RACK

    (tmp_path / "plate.toml").write_text(_resolved_text())
    assert main(["run", str(tmp_path / "plate.toml"), "-o", str(tmp_path / "plate")]) == 0
    (tmp_path / "file.toml").write_text(RACK)  # curves = "plate/curves.csv", the plate run's own file
    (tmp_path / "ref.toml").write_text(RACK.replace('curves = "plate/curves.csv"', 'case = "plate.toml"'))
    assert main(["run", str(tmp_path / "ref.toml"), "-o", str(tmp_path / "r")]) == 0
    assert "solving 3 flows with the resolved (finite-volume) model" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "file.toml"), "-o", str(tmp_path / "f")]) == 0
    rec = json.loads((tmp_path / "r" / "summary.json").read_text())["cold_plate_references"][0]
    assert (rec["cache"], rec["plate_case_type"], rec["key"]) == ("miss", "resolved_coldplate", "plate_types[0].case")
    # the cached curves are the plate run's curves.csv (which keeps 12 digits)
    own, cached = read_curves(tmp_path / "plate" / "curves.csv"), read_curves(Path(rec["cache_file"]))
    for a, b in ((cached.flow, own.flow), (cached.r_max, own.r_max), (cached.r_mean, own.r_mean), (cached.dp, own.dp)):
        np.testing.assert_allclose(a, b, rtol=6e-12, atol=0)
    assert cached.meta("domain") == own.meta("domain") and cached.meta("cells") == own.meta("cells")
    r, f = _h5_arrays(tmp_path / "r" / "results.h5"), _h5_arrays(tmp_path / "f" / "results.h5")
    assert r.keys() == f.keys() and len(r) > 5
    for k in r:  # every result to 1e-12 (the file's 12 digits: measured <= 6e-13, plates/pressure_drop)
        if k.startswith("solver/residual"):  # the Newton path, not a result: residuals normalized to the first
            np.testing.assert_allclose(r[k], f[k], rtol=0, atol=1e-10, err_msg=k)
        else:
            np.testing.assert_allclose(r[k], f[k], rtol=1e-12, atol=0, err_msg=k)
