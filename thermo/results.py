"""Results folders: ``results.h5``, an XDMF sidecar for ParaView, ``summary.json``
and PNG plots, written atomically.

Layout of ``results.h5``:

* ``/grid/x_faces``, ``/grid/y_faces``, ``/grid/z_faces`` (m): face coordinates.
* ``/mesh/points`` (m), ``/mesh/hexahedra``, ``/mesh/cell_data/<name>``: the
  same grid as an unstructured hexahedral mesh with flattened copies of the
  fields, referenced by the XDMF file (XDMF readers take 1D cell arrays).
* ``/fields/<name>``: cell fields of shape ``(nx, ny, nz)``, each with ``units``
  and ``description`` attributes.
* ``/case/text`` (the case file as written), ``/case/parsed`` (the parsed case
  as JSON, SI units).
* ``/solver/...``: iteration counts, residuals and residual histories.
* ``/summary``: headline numbers as attributes (also in ``summary.json``).
* root attributes ``layout`` (the results layout version the plots read,
  :data:`thermo.plot_data.LAYOUT`) and ``written_by``.
* further groups a model adds for its plots (:func:`append_groups`; their
  names are listed in :data:`thermo.plot_data.DATASETS`).

Models without a 3D grid (``facility``) use :func:`write_series_results`: the
same ``/case``, ``/solver`` and ``/summary`` groups and named groups of arrays
(``/hourly/<name>``, ...) with ``units`` and ``description`` attributes; no XDMF.

A run writes into a temporary folder beside the target and renames it into
place only when everything is written, so a failed run leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

__all__ = [
    "Field",
    "Quantity",
    "Series",
    "append_groups",
    "atomic_folder",
    "read_summary",
    "write_common",
    "write_results",
    "write_series_results",
    "write_summary_json",
]


@dataclass(frozen=True)
class Field:
    """A cell-centred field for the results file."""

    data: np.ndarray  # (nx, ny, nz)
    units: str
    description: str


@dataclass(frozen=True)
class Quantity:
    """A headline number with its unit."""

    value: float | int | bool | str
    unit: str = ""
    description: str = ""


@contextmanager
def atomic_folder(target: str | Path):
    """Yield a temporary folder that becomes ``target`` on success.

    On an exception the temporary folder is removed and ``target`` is left as
    it was. An existing ``target`` is replaced only after the new one is
    complete.
    """
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # an ordinary folder once renamed, not mkdtemp's 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "previous")
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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


def _xdmf(h5name: str, n_points: int, n_cells: int, shape, fields: dict[str, Field]) -> str:
    nx, ny, nz = shape
    attrs = []
    for name, f in fields.items():
        attrs.append(
            f'      <Attribute Name="{name} [{f.units}]" AttributeType="Scalar" Center="Cell">\n'
            f'        <DataItem Dimensions="{nx * ny * nz}" NumberType="Float" Precision="8" '
            f'Format="HDF">{h5name}:/mesh/cell_data/{name}</DataItem>\n'
            f"      </Attribute>"
        )
    return (
        '<?xml version="1.0" ?>\n'
        '<Xdmf Version="3.0">\n'
        "  <Domain>\n"
        '    <Grid Name="cells" GridType="Uniform">\n'
        f'      <Topology TopologyType="Hexahedron" NumberOfElements="{n_cells}">\n'
        f'        <DataItem Dimensions="{n_cells} 8" NumberType="Int" Precision="4" '
        f'Format="HDF">{h5name}:/mesh/hexahedra</DataItem>\n'
        "      </Topology>\n"
        '      <Geometry GeometryType="XYZ">\n'
        f'        <DataItem Dimensions="{n_points} 3" NumberType="Float" Precision="8" '
        f'Format="HDF">{h5name}:/mesh/points</DataItem>\n'
        "      </Geometry>\n" + "\n".join(attrs) + "\n    </Grid>\n  </Domain>\n</Xdmf>\n"
    )


def _jsonable(q: Quantity):
    v = q.value
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        v = v.item()
    return {"value": v, "unit": q.unit, "description": q.description}


def write_results(
    folder: Path,
    *,
    faces: tuple[np.ndarray, np.ndarray, np.ndarray],
    fields: dict[str, Field],
    case_text: str,
    case_parsed: dict,
    solver: dict[str, np.ndarray | float | int | bool],
    summary: dict[str, Quantity],
) -> None:
    """Write ``results.h5``, ``results.xdmf`` and ``summary.json`` into ``folder``."""
    folder = Path(folder)
    shape = tuple(len(f) - 1 for f in faces)
    for name, f in fields.items():
        if f.data.shape != shape:
            raise ValueError(f"field {name!r} has shape {f.data.shape}, grid is {shape}")
        if not np.all(np.isfinite(f.data)):
            raise ValueError(f"field {name!r} has non-finite values; refusing to write it")
    points, hexes = _hex_mesh(*faces)
    with h5py.File(folder / "results.h5", "w") as h5:
        g = h5.create_group("grid")
        for axis, f in zip("xyz", faces, strict=True):
            ds = g.create_dataset(f"{axis}_faces", data=np.asarray(f, np.float64))
            ds.attrs["units"] = "m"
        m = h5.create_group("mesh")
        m.create_dataset("points", data=points.astype(np.float64)).attrs["units"] = "m"
        m.create_dataset("hexahedra", data=hexes.astype(np.int32))
        fg = h5.create_group("fields")
        flat = m.create_group("cell_data")  # 1D copies in mesh cell order, for XDMF readers
        for name, f in fields.items():
            data = np.asarray(f.data, np.float64)
            ds = fg.create_dataset(name, data=data, compression="gzip")
            ds.attrs["units"] = f.units
            ds.attrs["description"] = f.description
            flat.create_dataset(name, data=data.reshape(-1), compression="gzip").attrs["units"] = f.units
        write_common(h5, case_text, case_parsed, solver, summary)
    (folder / "results.xdmf").write_text(
        _xdmf("results.h5", points.shape[0], hexes.shape[0], shape, fields), encoding="utf-8"
    )
    write_summary_json(folder, summary)


def write_common(h5, case_text, case_parsed, solver, summary) -> None:
    """The ``/case``, ``/solver`` and ``/summary`` groups every results.h5 has."""
    from thermo.plot_data import write_layout

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
    with h5py.File(folder / "results.h5", "w") as h5:
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
    with h5py.File(Path(folder) / "results.h5", "a") as h5:
        _put_groups(h5, groups)


def read_summary(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))
