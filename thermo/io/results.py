"""Results folders: ``results.h5``, an XDMF sidecar for ParaView, ``summary.json``
and PNG plots, written atomically.

Layout of ``results.h5`` for a model on a 3D grid (:func:`write_results`):

* ``/grid/x_faces``, ``/grid/y_faces``, ``/grid/z_faces`` (m): face coordinates.
* ``/mesh/points`` (m), ``/mesh/hexahedra``: the same grid as an unstructured
  hexahedral mesh (cell ``(i, j, k)`` is row ``(i * ny + j) * nz + k``), the
  geometry the XDMF file refers to; ``/mesh/layers/<grid>``: the cells
  (hexahedra) or faces (quadrilaterals) of a layer grid, row ``i * ny + j``.
* ``/fields/<name>``: every field once, with ``units`` and ``description``
  attributes. A cell field has shape ``(nx, ny, nz)``; a vector field
  ``(nx, ny, nz, 3)`` (x, y, z components); a field that lives on one layer of
  the grid (``location`` attribute names the XDMF grid) ``(nx, ny)`` or
  ``(nx, ny, 3)``. An index field (``material``) is int32 and its ``names``
  attribute lists the name of each index value (``names[i]`` is value ``i``).
  Temperatures are in degC, as in ``summary.json``; each unit is in the
  dataset's ``units`` attribute, never in its name.
* ``/case/text`` (the case file as written), ``/case/parsed`` (the parsed case
  as JSON, SI units).
* ``/solver/...``: iteration counts, residuals and residual histories.
* ``/summary``: headline numbers as attributes (also in ``summary.json``).
* root attributes ``layout`` (the results layout version the plots read,
  :data:`thermo.plots.data.LAYOUT`) and ``written_by``.
* further groups a model adds for its plots (:func:`append_groups`; their
  names are listed in :data:`thermo.plots.data.DATASETS`).

``results.xdmf`` refers to these datasets directly (no copies): each XDMF
attribute has the name of its HDF5 dataset and carries its unit in an
``Information`` element; vectors are 3-component arrays; every index field's
names also appear as field data, one array per value (``material 2 = fin``).
A model with layer fields writes a spatial collection of grids (the 3D cells,
then one grid per layer); open it with ParaView's "Xdmf3 Reader (T)", which
keeps the grids as named blocks.

Models without a 3D grid use :func:`write_series_results`: the same ``/case``,
``/solver`` and ``/summary`` groups and named groups of arrays
(``/hourly/<name>``, ...) with ``units`` and ``description`` attributes; no
XDMF. A flow network (``rack_network``) adds :func:`network_xdmf`, whose
polylines refer to its ``/network`` group.

A run writes into a temporary folder beside the target and renames it into
place only when everything is written, so a failed run leaves nothing; the
folder then also holds ``manifest.json`` (tool, version, case file, time, the
files written), and only folders with such a manifest are ever replaced (see
:mod:`thermo.io.output`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import h5py
import numpy as np

from aidc_thermo.io.output import ResultsFolder

__all__ = [
    "Field",
    "Layer",
    "Quantity",
    "Series",
    "append_groups",
    "atomic_folder",
    "network_xdmf",
    "read_summary",
    "summary_values",
    "results_h5",
    "write_common",
    "write_results",
    "write_series_results",
    "write_summary_json",
]


@dataclass(frozen=True)
class Field:
    """A field for the results file: a cell field ``(nx, ny, nz)``, a vector
    ``(nx, ny, nz, 3)``, or on a :class:`Layer` ``(nx, ny)`` / ``(nx, ny, 3)``.
    ``names`` makes it an index field (integer values ``0 .. len(names) - 1``,
    e.g. a material map) and names each value."""

    data: np.ndarray
    units: str
    description: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layer:
    """Fields that live on one horizontal layer of the grid: the cells of
    z-layer ``k`` (``face=None``), or their ``"bottom"`` or ``"top"`` face.
    Written as their own XDMF grid (hexahedra or quadrilaterals of the 3D mesh)."""

    k: int
    fields: dict[str, Field]
    face: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Quantity:
    """A headline number with its unit."""

    value: float | int | bool | str
    unit: str = ""
    description: str = ""


@contextmanager
def atomic_folder(target: str | Path, *, case_file: str | Path | None = None, command: str = "run"):
    """Yield a temporary folder that becomes ``target`` on success.

    The rules of :mod:`thermo.io.output` apply: only a missing path, an empty
    folder or a results folder thermo wrote (``manifest.json``) is accepted,
    else :class:`thermo.io.output.OutputRefused` is raised before anything is
    written. On an exception the temporary folder (and any parent folder it
    created) is removed and ``target`` is left as it was; an existing results
    folder is replaced only after the new one is complete.
    """
    with ResultsFolder(target, case_file=case_file, command=command).writing() as tmp:
        yield tmp


@contextmanager
def results_h5(path: str | Path, mode: str = "w"):
    """Create (``"w"``) or add to (``"a"``) an HDF5 file of a results folder.

    The file is built in memory (HDF5's core driver, no backing store) and
    written to ``path`` in one plain write once complete, so a full disk or an
    I/O error is an ordinary ``OSError`` at that write. Through HDF5's own file
    driver the same failure surfaces as errors while objects close and a crash
    at interpreter exit.
    """
    path = Path(path)
    if mode == "w":
        h5 = h5py.File(f"{path}.in-memory", "w", driver="core", backing_store=False)
    elif mode == "a":
        h5 = h5py.File(path, "r+", driver="core", backing_store=False)  # read into memory, never written back
    else:
        raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
    try:
        yield h5
        h5.flush()
        image = h5.id.get_file_image()
    finally:
        h5.close()
    with open(path, "wb") as fh:
        fh.write(image)


def _hex_mesh(x_faces, y_faces, z_faces):
    nx, ny, nz = len(x_faces) - 1, len(y_faces) - 1, len(z_faces) - 1
    X, Y, Z = np.meshgrid(x_faces, y_faces, z_faces, indexing="ij")
    points = np.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=1)

    def node(i, j, k):
        return (i * (ny + 1) + j) * (nz + 1) + k

    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    i, j, k = i.ravel(), j.ravel(), k.ravel()
    hexes = np.stack(
        [
            node(i, j, k),
            node(i + 1, j, k),
            node(i + 1, j + 1, k),
            node(i, j + 1, k),
            node(i, j, k + 1),
            node(i + 1, j, k + 1),
            node(i + 1, j + 1, k + 1),
            node(i, j + 1, k + 1),
        ],
        axis=1,
    )
    index_type = np.int32 if points.shape[0] < 2**31 else np.int64
    return points, hexes.astype(index_type)


def _esc(text: str) -> str:
    return xml_escape(str(text), {'"': "&quot;"})


def _data_item(h5name: str, path: str, shape, dtype) -> str:
    dtype = np.dtype(dtype)
    kind = "Int" if np.issubdtype(dtype, np.integer) else "Float"
    size = dtype.itemsize
    dims = " ".join(str(int(n)) for n in shape)
    return (
        f'<DataItem Dimensions="{dims}" NumberType="{kind}" Precision="{size}" Format="HDF">{h5name}:{path}</DataItem>'
    )


def xdmf_attribute(
    h5name: str, name: str, path: str, shape, dtype, units: str, center: str, vector: bool = False
) -> str:
    """One XDMF attribute that refers to the HDF5 dataset ``path``: named like
    the dataset, its unit in an Information element; ``vector``: the last
    dimension (3) holds the x, y, z components."""
    kind = "Vector" if vector else "Scalar"
    return (
        f'      <Attribute Name="{_esc(name)}" AttributeType="{kind}" Center="{center}">\n'
        f'        <Information Name="units" Value="{_esc(units)}"/>\n'
        f"        {_data_item(h5name, path, shape, dtype)}\n"
        "      </Attribute>"
    )


def _legend(name: str, names: tuple[str, ...]) -> list[str]:
    """An index field's names: an Information element (for people reading the
    XML) and one field-data array per value, ``"<name> <i> = <label>"`` holding
    ``i`` (what ParaView shows in its Information panel and spreadsheet)."""
    text = ", ".join(f"{i} = {n}" for i, n in enumerate(names))
    out = [f'      <Information Name="{_esc(name)} names" Value="{_esc(text)}"/>']
    for i, n in enumerate(names):
        out.append(
            f'      <Attribute Name="{_esc(f"{name} {i} = {n}")}" AttributeType="Scalar" Center="Grid">\n'
            f'        <DataItem Dimensions="1" NumberType="Int" Precision="4" Format="XML">{i}</DataItem>\n'
            "      </Attribute>"
        )
    return out


def _grid_xml(name: str, topology: str, geometry: str, parts: list[str]) -> str:
    return (
        f'    <Grid Name="{_esc(name)}" GridType="Uniform">\n{topology}\n{geometry}\n'
        + "\n".join(parts)
        + "\n    </Grid>"
    )


def _xdmf_document(grids: list[str]) -> str:
    if len(grids) == 1:
        body = grids[0]
    else:
        body = (
            '    <Grid Name="results" GridType="Collection" CollectionType="Spatial">\n'
            + "\n".join(grids)
            + "\n    </Grid>"
        )
    return '<?xml version="1.0" ?>\n<Xdmf Version="3.0">\n  <Domain>\n' + body + "\n  </Domain>\n</Xdmf>\n"


def _field_parts(h5name: str, fields: dict[str, Field], ndim: int) -> list[str]:
    parts = []
    for name, f in fields.items():
        data = np.asarray(f.data)
        vector = data.ndim == ndim + 1
        parts.append(xdmf_attribute(h5name, name, f"/fields/{name}", data.shape, data.dtype, f.units, "Cell", vector))
        if f.names:
            parts += _legend(name, f.names)
    return parts


def _xdmf(h5name: str, n_points: int, shape, fields: dict[str, Field], layers: dict[str, Layer]) -> str:
    nx, ny, nz = shape
    n_cells = nx * ny * nz
    hexes = _data_item(h5name, "/mesh/hexahedra", (n_cells, 8), np.int32)
    geometry = (
        '      <Geometry GeometryType="XYZ">\n'
        f"        {_data_item(h5name, '/mesh/points', (n_points, 3), np.float64)}\n"
        "      </Geometry>"
    )
    grids = [
        _grid_xml(
            "cells",
            f'      <Topology TopologyType="Hexahedron" NumberOfElements="{n_cells}">\n'
            f"        {hexes}\n      </Topology>",
            geometry,
            _field_parts(h5name, fields, 3),
        )
    ]
    for lname, layer in layers.items():
        kind, cols = ("Hexahedron", 8) if layer.face is None else ("Quadrilateral", 4)
        topology = (
            f'      <Topology TopologyType="{kind}" NumberOfElements="{nx * ny}">\n'
            f"        {_data_item(h5name, f'/mesh/layers/{lname}', (nx * ny, cols), np.int32)}\n      </Topology>"
        )
        info = (
            [f'      <Information Name="description" Value="{_esc(layer.description)}"/>'] if layer.description else []
        )
        grids.append(_grid_xml(lname, topology, geometry, info + _field_parts(h5name, layer.fields, 2)))
    return _xdmf_document(grids)


def network_xdmf(
    h5name: str,
    *,
    points: str,
    n_points: int,
    grids: dict[str, tuple[str, int, list[tuple]]],
) -> str:
    """XDMF for a flow network: each grid is polylines (2 nodes each) over the
    points at HDF5 path ``points`` (``(n_points, 3)``). ``grids`` maps a grid
    name to ``(connectivity path, number of lines, attributes)``, each
    attribute ``(name, h5 path, shape, dtype, units, center[, names])`` with
    center ``"Cell"`` (one value per line) or ``"Node"`` (one per point);
    scalars only; ``names`` makes it an index field with a legend."""
    geometry = (
        '      <Geometry GeometryType="XYZ">\n'
        f"        {_data_item(h5name, points, (n_points, 3), np.float64)}\n"
        "      </Geometry>"
    )
    out = []
    for name, (lines, n_lines, attrs) in grids.items():
        topology = (
            f'      <Topology TopologyType="Polyline" NodesPerElement="2" NumberOfElements="{n_lines}">\n'
            f"        {_data_item(h5name, lines, (n_lines, 2), np.int32)}\n      </Topology>"
        )
        parts = []
        for a, path, shape, dtype, units, center, *names in attrs:
            parts.append(xdmf_attribute(h5name, a, path, shape, dtype, units, center))
            if names:
                parts += _legend(a, tuple(names[0]))
        out.append(_grid_xml(name, topology, geometry, parts))
    return _xdmf_document(out)


def _jsonable(q: Quantity):
    v = q.value
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        v = v.item()
    return {"value": v, "unit": q.unit, "description": q.description}


def _check_field(name: str, f: Field, shape: tuple[int, ...]) -> np.ndarray:
    data = np.asarray(f.data)
    if data.shape not in (shape, (*shape, 3)):
        raise ValueError(f"field {name!r} has shape {data.shape}, expected {shape} or {(*shape, 3)} (a vector)")
    if f.names:
        if not np.issubdtype(data.dtype, np.integer):
            raise ValueError(f"index field {name!r} must hold integers, got {data.dtype}")
        if data.size and (data.min() < 0 or data.max() >= len(f.names)):
            raise ValueError(f"index field {name!r} has values outside 0..{len(f.names) - 1} (its names)")
        return data.astype(np.int32)
    if not np.all(np.isfinite(data)):
        raise ValueError(f"field {name!r} has non-finite values; refusing to write it")
    return data.astype(np.float64)


def write_results(
    folder: Path,
    *,
    faces: tuple[np.ndarray, np.ndarray, np.ndarray],
    fields: dict[str, Field],
    case_text: str,
    case_parsed: dict,
    solver: dict[str, np.ndarray | float | int | bool],
    summary: dict[str, Quantity],
    layers: dict[str, Layer] | None = None,
) -> None:
    """Write ``results.h5``, ``results.xdmf`` and ``summary.json`` into ``folder``."""
    folder = Path(folder)
    layers = layers or {}
    shape = tuple(len(f) - 1 for f in faces)
    arrays = {name: (_check_field(name, f, shape), f, "cells") for name, f in fields.items()}
    for lname, layer in layers.items():
        if not 0 <= layer.k < shape[2] or layer.face not in (None, "bottom", "top"):
            raise ValueError(f"layer {lname!r}: k={layer.k}, face={layer.face!r} is not a layer of the grid")
        for name, f in layer.fields.items():
            if name in arrays:
                raise ValueError(f"field {name!r} is given twice")
            arrays[name] = (_check_field(name, f, shape[:2]), f, lname)
    points, hexes = _hex_mesh(*faces)
    with results_h5(folder / "results.h5") as h5:
        g = h5.create_group("grid")
        for axis, f in zip("xyz", faces, strict=True):
            ds = g.create_dataset(f"{axis}_faces", data=np.asarray(f, np.float64))
            ds.attrs["units"] = "m"
        m = h5.create_group("mesh")
        m.create_dataset("points", data=points.astype(np.float64)).attrs["units"] = "m"
        m.create_dataset("hexahedra", data=hexes.astype(np.int32))
        for lname, layer in layers.items():
            # the layer's cells are rows k, k + nz, ... of the hexahedra; a face is
            # their first (bottom) or last (top) four nodes
            rows = hexes[layer.k :: shape[2]]
            rows = rows if layer.face is None else rows[:, :4] if layer.face == "bottom" else rows[:, 4:]
            m.create_dataset(f"layers/{lname}", data=rows.astype(np.int32))
        fg = h5.create_group("fields")
        for name, (data, f, location) in arrays.items():
            ds = fg.create_dataset(name, data=data, compression="gzip")
            ds.attrs["units"] = f.units
            ds.attrs["description"] = f.description
            ds.attrs["location"] = location
            if data.ndim == (3 if location == "cells" else 2) + 1:
                ds.attrs["components"] = "x y z"
            if f.names:
                ds.attrs["names"] = np.asarray(f.names, dtype=h5py.string_dtype())
        write_common(h5, case_text, case_parsed, solver, summary)
    shaped = {
        name: Field(data, f.units, f.description, f.names) for name, (data, f, loc) in arrays.items() if loc == "cells"
    }
    shaped_layers = {
        lname: Layer(
            layer.k,
            {n: Field(arrays[n][0], f.units, f.description, f.names) for n, f in layer.fields.items()},
            layer.face,
            layer.description,
        )
        for lname, layer in layers.items()
    }
    (folder / "results.xdmf").write_text(
        _xdmf("results.h5", points.shape[0], shape, shaped, shaped_layers), encoding="utf-8"
    )
    write_summary_json(folder, summary)


def write_common(h5, case_text, case_parsed, solver, summary) -> None:
    """The ``/case``, ``/solver`` and ``/summary`` groups every results.h5 has."""
    from aidc_thermo.plots.data import write_layout

    write_layout(h5)
    c = h5.create_group("case")
    c.create_dataset("text", data=case_text)
    c.create_dataset("parsed", data=json.dumps(case_parsed, indent=1, default=str))
    s = h5.create_group("solver")
    for key, value in solver.items():
        s.create_dataset(key, data=np.asarray(value))
    sm = h5.create_group("summary")
    for key, q in summary.items():
        sm.attrs[key] = _jsonable(q)["value"]
        sm.attrs[key + ".unit"] = q.unit


def write_summary_json(folder: Path, summary: dict[str, Quantity]) -> None:
    (folder / "summary.json").write_text(
        json.dumps({k: _jsonable(q) for k, q in summary.items()}, indent=2) + "\n",
        encoding="utf-8",
    )


#: A named array of a model without a 3D grid (same fields as :class:`Field`).
Series = Field


def write_series_results(
    folder: Path,
    *,
    groups: dict[str, dict[str, Series]],
    case_text: str,
    case_parsed: dict,
    solver: dict[str, np.ndarray | float | int | bool],
    summary: dict[str, Quantity],
) -> None:
    """``results.h5`` and ``summary.json`` for a model without a 3D grid (no XDMF):
    the same ``/case``, ``/solver`` and ``/summary`` groups as
    :func:`write_results`, plus ``/<group>/<name>`` datasets with ``units`` and
    ``description`` attributes (e.g. ``/hourly/T_junction``)."""
    folder = Path(folder)
    with results_h5(folder / "results.h5") as h5:
        _put_groups(h5, groups)
        write_common(h5, case_text, case_parsed, solver, summary)
    write_summary_json(folder, summary)


def _put_groups(h5, groups: dict[str, dict[str, Series]]) -> None:
    for gname, series in groups.items():
        g = h5[gname] if gname in h5 else h5.create_group(gname, track_order=True)  # keep the order written
        for name, s in series.items():
            data = np.asarray(s.data)
            if data.dtype.kind == "U":
                ds = g.create_dataset(name, data=data.astype(object), dtype=h5py.string_dtype())
            else:
                ds = g.create_dataset(name, data=data, compression="gzip" if data.size > 64 else None)
            ds.attrs["units"] = s.units
            ds.attrs["description"] = s.description


def append_groups(folder: Path, groups: dict[str, dict[str, Series]]) -> None:
    """Add ``/<group>/<name>`` datasets (with ``units`` and ``description``) to
    an existing ``folder/results.h5``; string arrays are stored as strings."""
    with results_h5(Path(folder) / "results.h5", "a") as h5:
        _put_groups(h5, groups)


def read_summary(folder: str | Path) -> dict:
    """``summary.json`` of a results folder as written: name -> {value, unit,
    description}, plus the run's wall-clock ``timing`` entry."""
    return json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))


def summary_values(folder: str | Path) -> dict:
    """The headline numbers of a results folder: name -> value (the ``timing``
    entry, which changes from run to run, and the ``cold_plate_references``
    record, which says whether a plate's curves came from the cache, left out)."""
    return {k: v["value"] for k, v in read_summary(folder).items() if k not in ("timing", "cold_plate_references")}
