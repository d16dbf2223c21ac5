"""STL geometry for resolved cold plates (thermo/io/stl.py, geometry.from_stl,
to_stl, pin_plate_stl; ``[geometry] kind = "stl"``).

Round trips: the built-in solids written as STL voxelise back to exactly the
builders' masks on the same grid (and, slow, solve to the same answer); round
pins written as true polygonal prisms voxelise to the builder's round-pin
mask. The ray caster is checked against an analytic inside test of a rotated
box, and bad meshes are refused with exit 2 naming ``geometry.file``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io import stl
from aidc_thermo.io.case import load
from aidc_thermo.models import coldplate
from aidc_thermo.models import geometry as geo
from tests._first_gpu_plate import bundled_gpu_plate, first_gpu_plate

CASES = Path(__file__).resolve().parents[1] / "cases"
STL_HEAD = '[geometry]\nkind = "stl"\n'
PIN_KW = dict(diameter=5e-4, pitch_x=1e-3, pitch_y=1e-3, rows=6, columns=4, fin_height=1e-3, base_thickness=1e-3,
              plenum_length=1e-3)  # fmt: skip


def small_unit_cell() -> str:
    """The bundled unit cell at 12 x 8 x 8 cells."""
    text = (CASES / "coldplate_unit_cell.toml").read_text()
    for old, new in (("channel = 8", "channel = 4"), ("fin_height = 12", "fin_height = 6"),
                     ("  base = 4", "  base = 2"), ("length = 32", "length = 12")):  # fmt: skip
        assert old in text
        text = text.replace(old, new, 1)
    return text


def stl_case(text: str, geometry: str) -> str:
    """``text`` with its [geometry] table (and sub-tables) replaced."""
    start, stop = text.index("[geometry]"), text.index("[material]")
    return text[:start] + geometry + "\n" + text[stop:]


def explicit_grid(faces) -> str:
    return "[geometry.grid]\n" + "\n".join(
        f"{n} = [{', '.join(repr(float(v)) for v in f)}]" for n, f in zip("xyz", faces, strict=True)
    )


def box(lo, hi) -> np.ndarray:
    """Triangles of an axis-aligned box, outward."""
    g = geo.VoxelGeometry(tuple(np.array([a, b]) for a, b in zip(lo, hi, strict=True)), np.ones((1, 1, 1), np.int8),
                          (lo[0], hi[0]), lo[2], hi[2])  # fmt: skip
    return geo.voxel_surface(g)


# ----------------------------------------------------------------------------- the mesh checks and the ray caster


def test_box_passes_the_checks_with_its_volume():
    info = stl.check(box((0, 0, 0), (2e-3, 3e-3, 5e-3)))
    assert info["triangles"] == 12 and info["vertices"] == 8
    assert info["volume"] == pytest.approx(30e-9, rel=1e-12)


def test_rotated_box_voxelises_like_an_analytic_inside_test():
    """A box turned about two axes (no face parallel to the grid) on a
    non-uniform grid: the cells whose centres lie inside, by the box's own
    coordinates, are exactly the cells with winding number 1; the rest 0."""
    rot_z, rot_x = 0.4, 0.3
    rz = np.array([[np.cos(rot_z), -np.sin(rot_z), 0], [np.sin(rot_z), np.cos(rot_z), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(rot_x), -np.sin(rot_x)], [0, np.sin(rot_x), np.cos(rot_x)]])
    rot, centre, half = rz @ rx, np.array([5.0, 4.0, 3.0]), np.array([3.0, 1.5, 1.0])
    tris = box(-half, half) @ rot.T + centre
    assert stl.check(tris)["volume"] == pytest.approx(np.prod(2 * half), rel=1e-12)
    faces = (np.cumsum(np.r_[0, np.linspace(0.1, 0.3, 40)]), np.linspace(0, 8, 37) ** 1.0, np.geomspace(1, 7, 29) - 1)
    w = stl.winding_numbers(tris, faces)
    cx, cy, cz = np.meshgrid(*(0.5 * (f[1:] + f[:-1]) for f in faces), indexing="ij")
    local = (np.stack([cx, cy, cz], -1) - centre) @ rot
    inside = np.all(np.abs(local) < half, axis=-1)
    assert inside.sum() > 500
    assert np.array_equal(w, inside.astype(np.int32))
    # reversed triangles wind -1 inside; two overlapping copies wind 2
    assert np.array_equal(stl.winding_numbers(tris[:, ::-1], faces), -inside.astype(np.int32))
    assert np.array_equal(stl.winding_numbers(np.concatenate([tris, tris]), faces), 2 * inside.astype(np.int32))


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda t: t[1:], "not watertight"),
        (lambda t: np.concatenate([t[:1, ::-1], t[1:]]), "inconsistent orientation"),
        (lambda t: t[:, ::-1], "normals point inward"),
        (lambda t: np.concatenate([t, t[:1, [0, 0, 1]]]), "degenerate"),
    ],
    ids=["hole", "one flipped triangle", "all flipped", "degenerate"],
)
def test_bad_meshes_are_refused(mutate, fragment):
    with pytest.raises(stl.MeshError, match=fragment):
        stl.check(mutate(box((0, 0, 0), (1, 1, 1))))


def test_every_solid_of_an_ascii_file_is_read(tmp_path):
    """Two bodies written as two ``solid`` blocks of one ASCII file: both are
    voxelised (a reader taking the first block only would lose the second)."""
    a, b = box((0, 0, 0), (1e-3, 1e-3, 1e-3)), box((2e-3, 0, 0), (3e-3, 1e-3, 1e-3))
    stl.write(tmp_path / "a.stl", a, ascii=True)
    stl.write(tmp_path / "b.stl", b, ascii=True)
    (tmp_path / "ab.stl").write_text((tmp_path / "a.stl").read_text() + (tmp_path / "b.stl").read_text())
    tris, _ = stl.read(tmp_path / "ab.stl")
    assert len(tris) == 24
    faces = (np.linspace(0, 3e-3, 7), np.linspace(0, 1e-3, 3), np.linspace(0, 1e-3, 3))
    w = stl.winding_numbers(tris, faces)
    assert np.array_equal(w[:, 0, 0], [1, 1, 0, 0, 1, 1])


# ----------------------------------------------------------------------------- round trips of the built-in solids


@pytest.mark.parametrize("ascii", [False, True], ids=["binary", "ascii"])
def test_straight_fin_unit_cell_round_trips_to_the_builders_mask(ascii, tmp_path):
    """With plena and a cover, so that every material (fluid, base, fin,
    cover) and the fin field must come back."""
    g = geo.straight_fins(channel_width=3e-4, fin_thickness=2e-4, fin_height=1.5e-3, base_thickness=1e-3, length=1e-2,
                          unit_cell=True, plenum_length=1e-3, cover_thickness=3e-4, cells_length=12)  # fmt: skip
    path = geo.to_stl(g, tmp_path / "cell.stl", units="mm", ascii=ascii)
    assert path.read_bytes().startswith(b"solid") == ascii
    h = geo.from_stl(path, scale=1e-3, grid=g.faces)
    assert np.array_equal(h.material, g.material)
    assert set(np.unique(g.material)) == {geo.FLUID, geo.BASE, geo.FIN, geo.COVER}
    assert h.fin_field == g.fin_field and h.base_top == g.base_top
    assert h.fin_top == pytest.approx(g.fin_top, rel=1e-12)
    vol = np.einsum("i,j,k->ijk", *(np.diff(f) for f in g.faces))
    assert h.report["solid_fraction"] == pytest.approx(vol[g.solid].sum() / vol.sum(), rel=1e-12)
    assert abs(h.report["stl_volume_error"]) < 1e-6  # float32 coordinates in the file
    assert geo.narrowest_passage(h) == pytest.approx(3e-4, rel=1e-9)


def test_units_and_offset_place_the_mesh(tmp_path):
    """Written in micrometres and shifted by -1 mm in x; read back with the
    units and an offset of +1 mm: the same mask."""
    g = geo.pin_fins(**PIN_KW, cells_fin_height=6, cells_per_pitch=6)
    path = geo.to_stl(geo.voxel_surface(g) - [1e-3, 0, 0], tmp_path / "pins.stl", units="um")
    h = geo.from_stl(path, scale=1e-6, offset=(1e-3, 0, 0), grid=g.faces)
    assert np.array_equal(h.material, g.material)
    with pytest.raises(ValueError, match="leaves the domain along x"):
        geo.from_stl(path, scale=1e-6, grid=g.faces)
    with pytest.raises(ValueError, match="leaves the domain along x"):  # explicit faces set the domain's x
        geo.from_stl(path, scale=1e-6, offset=(1e-3, 0, 0), grid=(g.faces[0][:-8], 16, 8))
    with pytest.raises(ValueError, match="fin_field 9 .. 10 mm holds no cell centre"):
        geo.from_stl(path, scale=1e-6, offset=(1e-3, 0, 0), grid=g.faces, fin_field=(9e-3, 10e-3))


@pytest.mark.parametrize("arrangement", ["inline", "staggered"])
def test_pin_fin_voxel_surface_round_trips(arrangement, tmp_path):
    g = geo.pin_fins(**PIN_KW, arrangement=arrangement, cells_fin_height=6, cover_thickness=2e-4)
    h = geo.from_stl(geo.to_stl(g, tmp_path / "pins.stl"), scale=1e-3, grid=g.faces)
    assert np.array_equal(h.material, g.material)


@pytest.mark.parametrize("ascii", [False, True], ids=["binary", "ascii"])
def test_round_pin_plate_voxelises_to_the_builders_round_pins(ascii, tmp_path):
    """True polygonal pins (32 sides, not the staircase): every cell centre of
    the builder's grid lies at least 6 % of the radius from the circle, more
    than the polygon's 0.5 % sag, so the masks must agree exactly; the mesh's
    volume is the polygon prisms' own."""
    tris = geo.pin_plate_stl(**PIN_KW, segments=32)
    assert 3000 < len(tris) < 6000
    path = geo.to_stl(tris, tmp_path / "plate.stl", ascii=ascii)
    g = geo.pin_fins(**PIN_KW, cells_fin_height=8)
    h = geo.from_stl(path, scale=1e-3, grid=g.faces)
    assert np.array_equal(h.material, g.material)
    polygon = 16 * (2.5e-4) ** 2 * np.sin(2 * np.pi / 32)
    assert h.report["stl_mesh_volume"] == pytest.approx(8e-3 * 4e-3 * 1e-3 + 24 * polygon * 1e-3, rel=1e-6)
    # the staircase differs from the prisms by the cells cut by the pin walls
    assert 1e-4 < abs(h.report["stl_volume_error"]) < 0.02


def test_the_case_reads_an_stl_like_the_builder(tmp_path):
    """``kind = "stl"`` with the builder's faces gives the builder's case
    (mask, fin field, heat flux, flow) and the same pseudo-time step."""
    base = small_unit_cell()
    (tmp_path / "b.toml").write_text(base)
    c = coldplate.parse(load(tmp_path / "b.toml"))
    g = coldplate.build_geometry(c)
    geo.to_stl(g, tmp_path / "cell.stl")
    geom = f'{STL_HEAD}file = "cell.stl"\nunits = "mm"\nsides = "symmetry"\n\n{explicit_grid(g.faces)}\n'
    (tmp_path / "s.toml").write_text(stl_case(base, geom))
    s = coldplate.parse(load(tmp_path / "s.toml"))
    h = coldplate.build_geometry(s)
    assert np.array_equal(h.material, g.material) and h.fin_field == g.fin_field
    assert (s.flow_rate, s.heat_flux) == (c.flow_rate, c.heat_flux)
    assert coldplate._passage(s, h) == coldplate._passage(c, g)


# ----------------------------------------------------------------------------- refused with exit 2


def _pin_case(tmp_path: Path, tris: np.ndarray | None, extra: str = "", grid: str | None = None) -> Path:
    text = (CASES / "coldplate_pinfin.toml").read_text()
    if tris is not None:
        geo.to_stl(tris, tmp_path / "plate.stl")
    grid = grid or "[geometry.grid]\nx = 40\ny = 16\nz = 10"
    geom = f'[geometry]\nkind = "stl"\nfile = "plate.stl"\nunits = "mm"\n{extra}\n{grid}\n'
    path = tmp_path / "case.toml"
    path.write_text(stl_case(text, geom))
    return path


def _overlapping(t):
    """The plate plus a closed box crossing its base: overlapping shells."""
    return np.concatenate([t, box((2e-3, 1e-3, 0.5e-3), (3e-3, 2e-3, 1.5e-3))])


@pytest.mark.parametrize(
    "mutate, extra, fragment",
    [
        (lambda t: t[:-1], "", "not watertight"),
        (lambda t: t[:, ::-1], "", "normals point inward"),
        (lambda t: np.concatenate([t[:5, ::-1], t[5:]]), "", "inconsistent orientation"),
        (_overlapping, "", "self-intersecting or overlapping"),
        (lambda t: t, 'size = ["8 mm", "3 mm", "2 mm"]', "leaves the domain along y"),
        (lambda t: t, 'offset = ["0 mm", "0 mm", "-0.1 mm"]', "leaves the domain along z"),
    ],
    ids=["hole", "inward", "some flipped", "overlapping", "too small a domain", "offset out"],
)
def test_bad_stl_exits_2_naming_the_key(mutate, extra, fragment, tmp_path, capsys):
    case = _pin_case(tmp_path, mutate(geo.pin_plate_stl(**PIN_KW, segments=16)), extra)
    before = sorted(tmp_path.iterdir())
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert f"{case}: geometry.file: plate.stl: " in err and fragment in err, err
    assert "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == before


def test_bad_stl_files_exit_2(tmp_path, capsys):
    case = _pin_case(tmp_path, None)
    truncated = b"solid x\n facet normal 0 0 1\n outer loop\n vertex 1 2\n"
    for content, fragment in ((b"", "empty"), (truncated, "no triangles"), (b"\x00" * 100, "")):
        (tmp_path / "plate.stl").write_bytes(content)
        assert main(["check", str(case)]) == 2
        err = capsys.readouterr().err
        assert f"{case}: geometry.file: plate.stl: " in err and fragment in err, err
    # stored facet normals against the vertex order
    tris = geo.pin_plate_stl(**PIN_KW, segments=16)
    stl.write(tmp_path / "plate.stl", tris)
    raw = bytearray((tmp_path / "plate.stl").read_bytes())
    normals = np.frombuffer(raw, np.float32, count=3, offset=84).copy()
    raw[84:96] = (-normals).tobytes()
    (tmp_path / "plate.stl").write_bytes(bytes(raw))
    assert main(["check", str(case)]) == 2
    assert "stored facet normals of 1 of" in capsys.readouterr().err


@pytest.mark.parametrize(
    "grid, key, fragment",
    [
        ("[geometry.grid]\nx = 40\ny = 16", "geometry.grid.z", "missing"),
        ("[geometry.grid]\nx = 40\ny = 16\nz = 1", "geometry.file", "grid.z: needs at least 2 cells"),
        ("[geometry.grid]\nx = 40\ny = 16\nz = [0.0, 0.002, 0.001]", "geometry.grid.z", "increase"),
        ("[geometry.grid]\nx = 40\ny = 16\nz = 10.5", "geometry.grid.z", "integer"),
    ],
)
def test_bad_grids_exit_2(grid, key, fragment, tmp_path, capsys):
    case = _pin_case(tmp_path, geo.pin_plate_stl(**PIN_KW, segments=16), grid=grid)
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert f"{case}: {key}" in err and fragment in err, err


# ----------------------------------------------------------------------------- solves


@pytest.mark.slow
def test_unit_cell_stl_solves_to_the_builders_answer(tmp_path):
    """Same mask, grid and settings: the same pressure drop and resistances,
    to the last bit."""
    base = small_unit_cell()
    (tmp_path / "b.toml").write_text(base)
    c = coldplate.parse(load(tmp_path / "b.toml"))
    g = coldplate.build_geometry(c)
    geo.to_stl(g, tmp_path / "cell.stl", ascii=True)
    geom = f'{STL_HEAD}file = "cell.stl"\nunits = "mm"\nsides = "symmetry"\n\n{explicit_grid(g.faces)}\n'
    (tmp_path / "s.toml").write_text(stl_case(base, geom))
    s = coldplate.parse(load(tmp_path / "s.toml"))
    out = []
    for case in (c, s):
        summary, _ = coldplate.summarize(case, coldplate.solve(case))
        out.append([summary[k].value for k in ("pressure_drop", "R_max", "R_mean", "T_outlet_bulk")])
    assert out[0] == out[1]
    assert out[0][0] > 0 and out[0][1] > out[0][2] > 0


@pytest.mark.slow
def test_round_pin_plate_runs_end_to_end(tmp_path, capsys):
    """``thermo run`` on a 4k-triangle STL of round pins with plena, on a grid
    of its own (the walls of the base snap to faces): converged, the energy
    closes, and summary.json reports the voxelisation."""
    case = _pin_case(tmp_path, geo.pin_plate_stl(**PIN_KW), 'fin_field = ["1 mm", "7 mm"]',
                     "[geometry.grid]\nx = 64\ny = 32\nz = 12")  # fmt: skip
    out = tmp_path / "out"
    assert main(["run", str(case), "-o", str(out)]) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stl_triangles"]["value"] == len(geo.pin_plate_stl(**PIN_KW))
    assert abs(summary["stl_volume_error"]["value"]) < 0.05
    assert 0.3 < summary["solid_fraction"]["value"] < 0.8
    assert summary["heat_balance_error"]["value"] < 1e-6
    assert summary["heat_input"]["value"] == pytest.approx(20.0, rel=1e-9)
    assert summary["pressure_drop"]["value"] > 0
    t_out, t_check = summary["T_outlet_bulk"]["value"], summary["T_outlet_energy_check"]["value"]
    assert t_out == pytest.approx(t_check, abs=0.02 * (t_check - 35.0))


def test_export_stl_command_writes_the_case_solid(tmp_path, capsys):
    """``thermo export-stl`` on the bundled cases: the voxel solid reads back
    to the case's own mask; ``--round-pins`` writes the polygonal pins."""
    unit = tmp_path / "cell.stl"
    assert main(["export-stl", str(CASES / "coldplate_unit_cell.toml"), "-o", str(unit), "--ascii"]) == 0
    case = coldplate.parse(load(CASES / "coldplate_unit_cell.toml"))
    g = coldplate.build_geometry(case)
    assert np.array_equal(geo.from_stl(unit, scale=1e-3, grid=g.faces).material, g.material)
    pins = tmp_path / "pins.stl"
    assert main(["export-stl", str(CASES / "coldplate_pinfin.toml"), "-o", str(pins), "--round-pins", "16",
                 "--units", "um"]) == 0  # fmt: skip
    g = coldplate.build_geometry(coldplate.parse(load(CASES / "coldplate_pinfin.toml")))
    h = geo.from_stl(pins, scale=1e-6, grid=g.faces)
    assert np.array_equal(h.solid, g.solid)
    assert "binary STL in um" in capsys.readouterr().out
    assert main(["export-stl", str(CASES / "coldplate_unit_cell.toml"), "-o", str(pins), "--round-pins", "16"]) == 2
    assert "round pin fins" in capsys.readouterr().err
    assert main(["export-stl", str(CASES / "slab.toml"), "-o", str(pins)]) == 2


# ----------------------------------------------------------------------------- compact cold plate: fin-field outline


def _compact(tmp_path: Path, outline: np.ndarray | None, extra: str = "") -> Path:
    text = first_gpu_plate()  # the plate these tests were written for (tests/_first_gpu_plate.py)
    if outline is not None:
        geo.to_stl(outline, tmp_path / "fins.stl")
    old = 'plenum_length = "4 mm"'
    assert old in text
    path = tmp_path / "compact.toml"
    path.write_text(text.replace(old, f'{old}\nfin_footprint = "fins.stl"\nfootprint_units = "mm"\n{extra}', 1))
    return path


def test_compact_fin_footprint_sets_the_fin_columns(tmp_path):
    """An outline covering the whole field between the plena gives the
    default fin columns exactly; one over the lower half of the plate (in y)
    leaves the upper half open (plenum)."""
    from aidc_thermo.models import compact

    (tmp_path / "default.toml").write_text(first_gpu_plate())
    default = compact.discretize(compact.parse(load(tmp_path / "default.toml")))
    whole = compact.parse(load(_compact(tmp_path, box((4e-3, 0, 0), (76e-3, 80e-3, 3e-3)))))
    assert np.array_equal(compact.discretize(whole).plenum, default.plenum)
    half = compact.discretize(compact.parse(load(_compact(tmp_path, box((0, 0, 0), (80e-3, 40e-3, 3e-3))))))
    yc = 0.5 * (half.faces[1][1:] + half.faces[1][:-1])
    assert np.array_equal(half.plenum[:, yc > 40e-3], np.ones_like(half.plenum[:, yc > 40e-3]))
    assert np.array_equal(half.plenum[:, yc < 40e-3], default.plenum[:, yc < 40e-3])
    # the offset moves the outline: shifted by +40 mm in y it covers the upper half
    up = compact.discretize(compact.parse(load(_compact(tmp_path, box((0, 0, 0), (80e-3, 40e-3, 3e-3)),
                                                        'footprint_offset = ["0 mm", "40 mm"]'))))  # fmt: skip
    assert np.array_equal(up.plenum, half.plenum[:, ::-1])


@pytest.mark.parametrize(
    "outline, extra, key, fragment",
    [
        (box((0, 0, 0), (80e-3, 40e-3, 3e-3))[1:], "", "plate.fin_footprint", "not watertight"),
        (box((0, 0, 0), (90e-3, 40e-3, 3e-3)), "", "plate.fin_footprint", "leaves the plate along x"),
        (box((0, 0, 0), (3e-3, 40e-3, 3e-3)), "", "plate.fin_footprint", "covers no fin-field column"),
        (box((0, 0, 0), (8e-3, 4e-3, 3e-3)), 'footprint_units = "furlong"', "plate.footprint_units", ""),
    ],
)
def test_bad_compact_footprint_exits_2(outline, extra, key, fragment, tmp_path, capsys):
    case = _compact(tmp_path, outline, extra)
    if "footprint_units" in extra:
        case.write_text(case.read_text().replace('footprint_units = "mm"\n', "", 1))
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert f"{case}: {key}" in err and fragment in err, err


@pytest.mark.slow
def test_compact_footprint_solves(tmp_path, capsys):
    """End-fed plate at 24 x 12: an outline over the whole fin field solves to
    the same answer as no outline; fins in the lower half of the plate only
    let the coolant bypass through the open upper half: a lower pressure
    drop, a hotter junction, and the energy still closes."""
    from aidc_thermo.io.results import summary_values

    text = bundled_gpu_plate()  # end-fed, the channels run 72 mm: the 33 mm cells' apparent closures do not hold
    text = re.sub(r'closures = "[^"]*"', 'nusselt = "H1"', text, count=1)
    for old, new in (('layout = "centre_fed"', 'layout = "end_fed"'), ('slot_width = "6 mm"', ""),
                     ("cells = [48, 48]", "cells = [24, 12]"), ("curve_points = 11", "curve_points = 2")):  # fmt: skip
        assert old in text, old
        text = text.replace(old, new, 1)
    out = {}
    for name, outline in (("none", None), ("whole", box((4e-3, 0, 0), (76e-3, 80e-3, 3e-3))),
                          ("half", box((0, 0, 0), (80e-3, 40e-3, 3e-3)))):  # fmt: skip
        folder = tmp_path / name
        folder.mkdir()
        if outline is None:
            (folder / "compact.toml").write_text(text)
            case = folder / "compact.toml"
        else:
            geo.to_stl(outline, folder / "fins.stl")
            case = folder / "compact.toml"
            case.write_text(
                text.replace(
                    'plenum_length = "4 mm"',
                    'plenum_length = "4 mm"\nfin_footprint = "fins.stl"\nfootprint_units = "mm"',
                )
            )
        assert main(["run", str(case), "-o", str(folder / "out"), "-q"]) == 0, capsys.readouterr().err
        out[name] = summary_values(folder / "out")
    keys = ("pressure_drop", "R_max", "R_mean")
    assert [out["whole"][k] for k in keys] == [out["none"][k] for k in keys]
    assert out["half"]["pressure_drop"] < 0.6 * out["none"]["pressure_drop"]
    assert out["half"]["R_max"] > out["none"]["R_max"]
    assert out["half"]["heat_balance_error"] < 1e-9
