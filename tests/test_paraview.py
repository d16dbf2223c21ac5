"""ParaView itself opens the XDMF sidecar (headless ``pvbatch``, from Debian's
``paraview`` and ``python3-paraview`` packages, which .ci/run installs), with
the reader README names ("Xdmf3 Reader (T)"), and sees what results.h5 and
summary.json say: every array under its HDF5 name, vectors with 3 components,
the material legend as field data, and value ranges equal to the HDF5 data and
to the summary's headline numbers.

The fast test writes a small results folder directly (no solve); the slow
test runs every bundled case that writes results.xdmf (reduced copies of the
expensive ones, see ``REDUCED``)."""

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

from aidc_thermo.cli import SERIES_CASE_TYPES, XDMF_CASE_TYPES, build_parser, main
from aidc_thermo.io.results import Field, Layer, Quantity, network_xdmf, write_results

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted(p for p in (ROOT / "cases").glob("*.toml") if not p.name.startswith("sweep_"))  # sweeps: docs/sweep.md
#: the bundled cases that write results.xdmf, which ParaView opens below (the others write none: tests/test_cli.py
#: runs every bundled case and checks that)
BUNDLED_XDMF = [c for c in BUNDLED if tomllib.loads(c.read_text())["case"]["type"] in XDMF_CASE_TYPES]
NO_PARAVIEW = shutil.which("pvbatch") is None
LPM = 1.0 / 60000.0


def paraview_sees(xdmf: Path | list[Path], cwd: Path) -> dict | list[dict]:
    """What ParaView's own XDMF reader sees in ``xdmf`` (tests/pv_read.py):
    ``{block name: {cells, points, bounds, cell_bounds, cell_types, cell,
    point, field}}``; a file with one grid gives one block named ``""``. A
    list of files is read by one pvbatch and gives a list."""
    files = xdmf if isinstance(xdmf, list) else [xdmf]
    proc = subprocess.run(
        ["pvbatch", str(ROOT / "tests" / "pv_read.py"), *(str(f.resolve()) for f in files)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    lines = [json.loads(ln[len("PVRESULT ") :]) for ln in proc.stdout.splitlines() if ln.startswith("PVRESULT ")]
    assert proc.returncode == 0 and len(lines) == len(files), proc.stdout + proc.stderr
    return lines if isinstance(xdmf, list) else lines[0]


def assert_range(seen_ranges, values, name):
    """ParaView's per-component [min, max] equal the HDF5 data's."""
    values = np.asarray(values, np.float64)
    comps = values.reshape(-1, values.shape[-1]) if len(seen_ranges) == 3 else values.reshape(-1, 1)
    scale = max(1.0, float(np.abs(values).max()))
    for c, (lo, hi) in enumerate(seen_ranges):
        expected = [comps[:, c].min(), comps[:, c].max()]
        np.testing.assert_allclose([lo, hi], expected, rtol=0, atol=1e-12 * scale, err_msg=name)


def check_grid_fields(folder: Path, seen: dict) -> dict:
    """Every /fields dataset is an array of its grid's block under the same
    name, with 1 or 3 components and the HDF5 ranges; index fields carry
    their names as field data; the cells block spans the grid. Returns the
    block of every field."""
    with h5py.File(folder / "results.h5") as h5:
        faces = [h5[f"grid/{a}_faces"][()] for a in "xyz"]
        shape = tuple(len(f) - 1 for f in faces)
        fields = {n: (ds[()], dict(ds.attrs)) for n, ds in h5["fields"].items()}
    single = list(seen) == [""]
    cells = seen[""] if single else seen["cells"]
    assert cells["cells"] == int(np.prod(shape))
    assert cells["points"] == int(np.prod([len(f) for f in faces]))
    assert cells["cell_types"] == [12]  # VTK_HEXAHEDRON
    np.testing.assert_allclose(cells["bounds"], [v for f in faces for v in (f[0], f[-1])], atol=1e-12)
    where = {}
    for name, (values, attrs) in fields.items():
        assert not re.search(r"_(K|degC|Pa|W)$|\[", name), f"unit in the name {name!r}"
        block = seen["" if single else attrs["location"]]
        where[name] = block
        arr = block["cell"][name]
        vector = values.ndim == (3 if attrs["location"] == "cells" else 2) + 1
        assert arr["components"] == (3 if vector else 1), name
        assert arr["tuples"] == block["cells"] == values.size // arr["components"], name
        assert_range(arr["ranges"], values, name)
        if "names" in attrs:
            legend = {f"{name} {i} = {n}": i for i, n in enumerate(attrs["names"])}
            assert {k: v for k, v in block["field"].items() if k.startswith(f"{name} ")} == legend
            assert arr["type"] == "int", name
    if not single:
        assert set(seen) == {"cells"} | {a["location"] for _, a in fields.values()}
    return where


# ----------------------------------------------------------------------------- fast


@pytest.mark.skipif(NO_PARAVIEW, reason="ParaView (pvbatch) is not installed")
def test_paraview_reads_vectors_legends_layers_and_polylines(tmp_path):
    """A small results folder written directly: a 3D grid with a scalar, a
    vector and a material map, a layer of cells, a bottom face, and a
    network of polylines with cell and point data; ParaView reads each
    array under its HDF5 name, with the right cells, components and values."""
    rng = np.random.default_rng(1)
    faces = (np.array([0.0, 1.0, 3.0]), np.array([0.0, 0.5, 1.0, 2.0]), np.array([0.0, 0.1, 0.3]))
    shape = (2, 3, 2)
    T = rng.normal(40.0, 5.0, shape)
    v = rng.normal(0.0, 1.0, (*shape, 3))
    mat = np.array([0, 1, 2] * 4).reshape(shape)
    bottom = rng.normal(60.0, 1.0, shape[:2])
    folder = tmp_path / "r"
    folder.mkdir()
    write_results(
        folder,
        faces=faces,
        fields={
            "temperature": Field(T, "degC", "t"),
            "velocity": Field(v, "m/s", "v"),
            "material": Field(mat, "1", "m", names=("fluid", "base (copper)", "fin & co")),
        },
        layers={
            "top_layer": Layer(1, {"speed2d": Field(np.abs(v[:, :, 1]), "m/s", "layer")}),
            "bottom_face": Layer(0, {"junction_temperature": Field(bottom, "degC", "face")}, face="bottom"),
        },
        case_text="",
        case_parsed={},
        solver={},
        summary={"x": Quantity(1.0)},
    )
    # a network: 4 nodes, 3 edges
    with h5py.File(folder / "net.h5", "w") as h5:
        h5["points"] = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0.0]])
        h5["lines"] = np.array([[0, 1], [1, 2], [2, 3]], np.int32)
        h5["flow"] = np.array([1.0, -2.0, 3.0])
        h5["kind"] = np.array([0, 1, 0], np.int32)
        h5["pressure"] = np.array([5.0, 6.0, 7.0, 8.5])
    attrs = [
        ("flow", "/flow", (3,), np.float64, "m^3/s", "Cell"),
        ("kind", "/kind", (3,), np.int32, "1", "Cell", ("pipe", "pump")),
        ("pressure", "/pressure", (4,), np.float64, "Pa", "Node"),
    ]
    (folder / "net.xdmf").write_text(
        network_xdmf("net.h5", points="/points", n_points=4, grids={"network": ("/lines", 3, attrs)})
    )
    seen, net = paraview_sees([folder / "results.xdmf", folder / "net.xdmf"], tmp_path)
    net = net[""]
    where = check_grid_fields(folder, seen)
    assert where["speed2d"]["cells"] == 6 and where["speed2d"]["cell_types"] == [12]
    np.testing.assert_allclose(where["speed2d"]["cell_bounds"][4:], [0.1, 0.3])  # the top layer's cells
    assert where["junction_temperature"]["cell_types"] == [9]  # VTK_QUAD, on z = 0
    np.testing.assert_allclose(where["junction_temperature"]["cell_bounds"][4:], [0.0, 0.0])
    assert seen["cells"]["field"]["material 2 = fin & co"] == 2

    assert (net["cells"], net["points"]) == (3, 4)
    assert net["cell_types"] in ([3], [4])  # VTK_LINE or VTK_POLY_LINE
    assert net["cell"]["flow"]["ranges"] == [[-2.0, 3.0]]
    assert net["point"]["pressure"]["ranges"] == [[5.0, 8.5]]
    assert net["field"] == {"kind 0 = pipe": 0, "kind 1 = pump": 1}


def test_run_help_names_the_case_types_that_write_xdmf(capsys):
    """``thermo run --help`` names every case type, as writing results.xdmf
    or not (the slow test below checks each bundled case against the list)."""
    from aidc_thermo.registry import CASE_TYPES

    assert set(XDMF_CASE_TYPES) | set(SERIES_CASE_TYPES) == set(CASE_TYPES)
    assert not set(XDMF_CASE_TYPES) & set(SERIES_CASE_TYPES)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["run", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for kind in (*XDMF_CASE_TYPES, *SERIES_CASE_TYPES):
        assert kind in text
    assert "results.xdmf" in text


# ----------------------------------------------------------------------------- every bundled case

#: expensive bundled cases run as reduced copies in the slow test (text
#: replacements on the case file); every other bundled case runs unchanged
REDUCED = {
    "coldplate_unit_cell": [
        ("channel = 8", "channel = 4"),
        ("fin = 4 ", "fin = 2 "),
        ("fin_height = 12", "fin_height = 6"),
        ("base = 4", "base = 2"),
        ("length = 32", "length = 12"),
    ],
    "coldplate_pinfin": [("rows = 6", "rows = 3")],
    "compact_gpu_coldplate": [("cells = [48, 48]", "cells = [24, 24]"), ("curve_points = 11", "curve_points = 2")],
    # 12 of the 45 branches: the supply scaled with them keeps the GPU plates inside their curve file's flow range
    "rack_nvl72": [
        ("count = 8", "count = 2"),
        ("count = 9", "count = 2"),
        ("count = 10", "count = 3"),
        ('flow = "180 L/min"', 'flow = "48 L/min"'),
    ],
}


def _case_copy(case: Path, tmp_path: Path) -> Path:
    text = case.read_text()
    for old, new in REDUCED.get(case.stem, []):
        assert old in text, (case.stem, old)
        text = text.replace(old, new)
    out = tmp_path / case.name
    out.write_text(text)
    for ref in re.findall(r'^\s*(?:accelerator_plate_)?case\s*=\s*"([^"]+\.toml)"', text, re.M):  # rack, plate cases
        if not (tmp_path / ref).exists():
            shutil.copy(case.parent / ref, tmp_path / ref)
    for data in (case.parent / "data",):
        if data.is_dir() and not (tmp_path / "data").exists():
            shutil.copytree(data, tmp_path / "data")
    return out


def _value(summary, key):
    return summary[key]["value"]


def check_summary(kind: str, folder: Path, seen: dict, where: dict | None) -> None:
    """The headline numbers of summary.json, found again in what ParaView reads."""
    s = json.loads((folder / "summary.json").read_text())
    if kind == "package_stack":
        t_max = where["temperature"]["cell"]["temperature"]["ranges"][0][1]
        assert t_max == pytest.approx(_value(s, "T_max"), abs=1e-9)
    elif kind == "resolved_coldplate":
        t = where["temperature"]["cell"]["temperature"]["ranges"][0]
        # the solid is the hottest (T_solid_max also counts the bottom face, which no cell field holds)
        assert t[1] == pytest.approx(_value(s, "T_solid_max_cell"), abs=1e-9)
        t_in = _value(s, "inlet_temperature")
        assert t[0] >= t_in - 1e-6, f"ParaView's temperature range starts at {t[0]:.1f} degC, below the inlet {t_in}"
        vel = where["velocity"]["cell"]["velocity"]
        assert vel["components"] == 3 and vel["ranges"][0][1] > 0  # flow along +x
    elif kind == "compact_coldplate":
        tj = where["junction_temperature"]["cell"]["junction_temperature"]["ranges"][0]
        assert tj[1] == pytest.approx(_value(s, "T_junction_max"), abs=1e-9)
        assert where["velocity"]["cell"]["velocity"]["components"] == 3
    elif kind == "rack_network":
        plates, net = seen["plates"], seen["network"]
        assert plates["cells"] == _value(s, "plates")
        tj = plates["cell"]["junction_temperature"]["ranges"][0]
        assert tj[1] == pytest.approx(_value(s, "T_junction_max"), abs=1e-9)
        q = plates["cell"]["flow"]["ranges"][0]
        assert q == pytest.approx([_value(s, "plate_flow_min") * LPM, _value(s, "plate_flow_max") * LPM], rel=1e-12)
        ratio = plates["cell"]["flow_ratio"]["ranges"][0]
        assert ratio == pytest.approx([_value(s, "flow_ratio_min"), _value(s, "flow_ratio_max")], rel=1e-12)
        # the feed carries the whole flow; coolant between supply and the hottest plate outlet
        assert net["cell"]["flow"]["ranges"][0][1] == pytest.approx(_value(s, "total_flow") * LPM, rel=1e-9)
        t = net["point"]["temperature"]["ranges"][0]
        assert t[0] == pytest.approx(_value(s, "T_supply"), abs=1e-9)
        assert t[1] == pytest.approx(_value(s, "T_plate_outlet_max"), abs=1e-9)
        assert net["cell"]["edge_outlet_temperature"]["ranges"][0][1] == pytest.approx(t[1], abs=1e-9)
        with h5py.File(folder / "results.h5") as h5:
            n_nodes, n_edges = len(h5["network/node_labels"]), len(h5["network/edge_labels"])
            p_out = h5["network/pressure"][list(h5["network/node_labels"].asstr()[()]).index("outlet")]
            z = h5["network/elevation"][()]
            kinds = list(h5["network/edge_kind"].attrs["names"])
        assert (net["points"], net["cells"]) == (n_nodes, n_edges)
        assert net["cell_types"] in ([3], [4])
        assert (net["bounds"][4], net["bounds"][5]) == pytest.approx((z.min(), z.max()))  # z is the elevation
        p = net["point"]["pressure"]["ranges"][0]
        assert p[1] - p_out == pytest.approx(_value(s, "rack_pressure_drop") * 1e3, rel=1e-9)  # highest at the inlet
        assert {k for k in net["field"]} == {f"edge_kind {i} = {n}" for i, n in enumerate(kinds)}
    else:
        raise AssertionError(f"no ParaView check for case type {kind!r}")


@pytest.mark.slow
@pytest.mark.skipif(NO_PARAVIEW, reason="ParaView (pvbatch) is not installed")
@pytest.mark.parametrize("case", BUNDLED_XDMF, ids=[c.stem for c in BUNDLED_XDMF])
def test_paraview_opens_every_bundled_case_that_writes_xdmf(case, tmp_path):
    kind = tomllib.loads(case.read_text())["case"]["type"]
    out = tmp_path / "out"
    assert main(["run", str(_case_copy(case, tmp_path)), "-o", str(out)]) == 0
    xdmf = out / "results.xdmf"
    assert kind in XDMF_CASE_TYPES and xdmf.is_file()
    seen = paraview_sees(xdmf, tmp_path)
    where = check_grid_fields(out, seen) if kind != "rack_network" else None
    check_summary(kind, out, seen, where)


def test_cell_velocity_averages_the_mac_faces_and_is_zero_in_solid():
    """The velocity vector of a cell is the mean of its two faces along each
    axis (a uniform flow stays uniform), exactly 0 in solid cells."""
    from aidc_thermo.models.coldplate import cell_velocity

    rng = np.random.default_rng(2)
    nx, ny, nz = 3, 4, 2
    u, v, w = rng.normal(size=(nx + 1, ny, nz)), rng.normal(size=(nx, ny + 1, nz)), rng.normal(size=(nx, ny, nz + 1))
    solid = np.zeros((nx, ny, nz), bool)
    solid[1, 2, 0] = True
    vel = cell_velocity(u, v, w, solid)
    assert vel.shape == (nx, ny, nz, 3)
    assert vel[1, 2, 0].tolist() == [0.0, 0.0, 0.0]
    assert vel[2, 1, 1, 0] == pytest.approx(0.5 * (u[2, 1, 1] + u[3, 1, 1]))
    assert vel[2, 1, 1, 1] == pytest.approx(0.5 * (v[2, 1, 1] + v[2, 2, 1]))
    assert vel[2, 1, 1, 2] == pytest.approx(0.5 * (w[2, 1, 1] + w[2, 1, 2]))
    uniform = cell_velocity(np.full_like(u, 0.3), np.full_like(v, -0.1), np.full_like(w, 0.0), np.zeros_like(solid))
    np.testing.assert_array_equal(uniform, np.broadcast_to([0.3, -0.1, 0.0], (nx, ny, nz, 3)))
