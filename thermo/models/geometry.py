"""Voxel geometry of cold plates: grids whose faces follow the walls, and
solid masks.

Coordinates: x along the coolant flow (channel direction), y across the
channels, z up from the bottom of the base (the heated side) through the fin
field to the cover. Every builder returns a :class:`VoxelGeometry`: face
coordinates per axis (m), a material map (``FLUID`` = 0, ``BASE`` = 1,
``FIN`` = 2, ``COVER`` = 3) and the extents of the parts, so that models can
assign conductivities, inlets and heat fluxes by region.

Geometry kinds are registered, not dispatched by if-chains: each cold-plate
model keeps a :class:`KindRegistry` (``[geometry] kind`` of the resolved plate,
``[fins] type`` of the compact plate) whose entries carry the kind's case-key
reader and the model's pieces for it (voxel builder, grid size, narrowest
passage; fin-layer closures, Reynolds number, summary). Adding a kind is one
:meth:`KindRegistry.register` call; an unknown name in a case is refused
(exit 2) with the registered names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

__all__ = [
    "FLUID",
    "BASE",
    "FIN",
    "COVER",
    "VoxelGeometry",
    "straight_fins",
    "pin_fins",
    "from_mask_file",
    "mask_shape",
    "from_stl",
    "stl_grid",
    "to_stl",
    "pin_plate_stl",
    "narrowest_passage",
    "Kind",
    "KindRegistry",
]

FLUID, BASE, FIN, COVER = 0, 1, 2, 3


@dataclass(frozen=True)
class Kind:
    """One registered geometry kind: its name in case files, the reader of its
    case keys (validated, SI; the model's own signature) and the model's
    pieces for it by name (:meth:`KindRegistry.register` checks that each
    model's entries have the same pieces)."""

    name: str
    read: Callable
    parts: Mapping[str, object]

    def __getattr__(self, name: str):
        parts = self.__dict__.get("parts", {})
        if name in parts:
            return parts[name]
        raise AttributeError(f"geometry kind {self.__dict__.get('name')!r} has no piece {name!r}")


class KindRegistry:
    """Name -> :class:`Kind` for one key of one model's case files (e.g. the
    resolved plate's ``[geometry] kind``). Every entry provides the same
    ``pieces``, so that the model calls them without asking which kind it has."""

    def __init__(self, key: str, what: str, pieces: tuple[str, ...]):
        self.key, self.what, self.pieces = key, what, tuple(pieces)
        self._kinds: dict[str, Kind] = {}

    def register(self, name: str, read: Callable, **parts) -> Kind:
        """Add a kind (``name`` as written in case files); raises ValueError for
        a name registered twice or pieces missing or unknown."""
        if name in self._kinds:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        missing, extra = set(self.pieces) - set(parts), set(parts) - set(self.pieces)
        if missing or extra:
            raise ValueError(f"{self.what} {name!r}: pieces missing {sorted(missing)}, unknown {sorted(extra)}")
        kind = Kind(name, read, MappingProxyType(dict(parts)))
        self._kinds[name] = kind
        return kind

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def __getitem__(self, name: str) -> Kind:
        return self._kinds[name]

    def __contains__(self, name: str) -> bool:
        return name in self._kinds

    def read_kind(self, t, default=None) -> Kind:
        """The kind a case table names under ``self.key`` (a
        :class:`~aidc_thermo.io.case.Table`); an unknown name raises the
        table's CaseError (exit 2) listing the registered names."""
        if default is None:
            return self._kinds[t.string(self.key, choices=self.names())]
        return self._kinds[t.string(self.key, default=default, choices=self.names())]


@dataclass(frozen=True)
class VoxelGeometry:
    faces: tuple[np.ndarray, np.ndarray, np.ndarray]
    material: np.ndarray  # int8 (nx, ny, nz)
    fin_field: tuple[float, float]  # x extent of the fin field (m), plena outside it
    base_top: float  # z of the base's top face (m)
    fin_top: float  # z of the fin tips / cover underside (m)
    # figures of how the geometry was made, for the summary (from_stl: solid fraction and volume check)
    report: dict = field(default_factory=dict, compare=False)

    @property
    def shape(self):
        return self.material.shape

    @property
    def solid(self) -> np.ndarray:
        return self.material != FLUID

    def centers(self, axis: int) -> np.ndarray:
        f = self.faces[axis]
        return 0.5 * (f[1:] + f[:-1])


def _graded(n: int, ratio: float, symmetric: bool) -> np.ndarray:
    """Relative cell sizes (summing to 1) of ``n`` cells in geometric
    progression. One-sided: the last cell is ``ratio`` times the first
    (blockMesh's expansion ratio). Symmetric: the middle cell(s) are ``ratio``
    times the cells at both ends, the sizes mirror about the middle."""
    i = np.arange(n)
    if symmetric:
        e = np.minimum(i, n - 1 - i)
        steps = (n - 1) // 2
    else:
        e = i
        steps = n - 1
    h = ratio ** (e / steps) if steps > 0 else np.ones(n)
    return h / h.sum()


def _segments(lengths, counts, start=0.0, gradings=None) -> np.ndarray:
    """Faces of consecutive segments, each divided uniformly, or graded:
    ``gradings`` holds per segment ``None`` (uniform) or
    ``(ratio, kind)`` with kind ``"one_sided"`` (last cell / first cell),
    ``"symmetric"`` (middle / ends), ``"first_half"`` or ``"second_half"``
    (the first or second half of a symmetric segment of twice the cells, so
    that half a fin or half a channel is graded as the whole one would be)."""
    faces = [start]
    gradings = gradings or [None] * len(lengths)
    for length, n, grading in zip(lengths, counts, gradings, strict=True):
        if n < 1 or length <= 0:
            raise ValueError("each segment needs a positive length and at least one cell")
        if grading is None or grading[0] == 1.0:
            faces.extend(faces[-1] + length * np.arange(1, n + 1) / n)
            continue
        ratio, kind = grading
        if kind in ("first_half", "second_half"):
            h = _graded(2 * n, ratio, True)
            h = h[:n] if kind == "first_half" else h[n:]
        else:
            h = _graded(n, ratio, kind == "symmetric")
        edges = np.cumsum(h) / h.sum()
        edges[-1] = 1.0
        faces.extend(faces[-1] + length * edges)
    return np.asarray(faces)


def straight_fins(
    *,
    channel_width: float,
    fin_thickness: float,
    fin_height: float,
    base_thickness: float,
    length: float,
    channels: int | None = None,
    unit_cell: bool | str = False,
    plenum_length: float = 0.0,
    cover_thickness: float = 0.0,
    grading: dict | None = None,
    cells_channel: int = 8,
    cells_fin: int = 4,
    cells_fin_height: int = 16,
    cells_base: int = 4,
    cells_length: int = 32,
    cells_plenum: int = 4,
    cells_cover: int = 2,
) -> VoxelGeometry:
    """Straight rectangular fins along x.

    ``unit_cell=True`` builds one channel between two half fins (symmetry
    planes at y = 0 and y = max); ``unit_cell="half"`` half of that: half a
    fin and half a channel (symmetry planes at the fin's mid-plane, y = 0,
    and the channel's, y = max; ``cells_channel`` counts the whole channel,
    so the half cell holds ``cells_channel // 2`` of them); otherwise
    ``channels`` channels separated by
    full fins, with a full fin at each side wall. Plena of ``plenum_length`` upstream and downstream of the fin
    field span the full width at fin height.

    ``grading`` (optional) maps parts to geometric ratios: ``channel``,
    ``fin`` and ``fin_height`` are graded symmetrically (the middle cell
    ``ratio`` times the cells at both walls: ratio > 1 refines towards the
    walls); ``length`` and ``base`` one-sided along +x / +z (last cell over
    first, blockMesh's expansion ratio). Half fins and half channels take
    their half of the whole part's grading. Missing parts are uniform.
    """
    if (unit_cell is False) == (channels is None) or unit_cell not in (False, True, "half"):
        raise ValueError("give either channels=N or unit_cell=True (or 'half')")
    gr = dict(grading or {})
    bad = sorted(set(gr) - {"channel", "fin", "fin_height", "length", "base"})
    if bad or any(not r > 0 for r in gr.values()):
        raise ValueError(f"grading: parts are channel, fin, fin_height, length, base with ratios > 0 (got {gr})")

    def g(part, kind):
        return (gr[part], kind) if part in gr else None

    half_fin = max(cells_fin // 2, 1)
    if unit_cell == "half":
        y_lengths = [fin_thickness / 2, channel_width / 2]
        y_counts = [half_fin, max(cells_channel // 2, 1)]
        y_solid = [True, False]
        y_grading = [g("fin", "second_half"), g("channel", "first_half")]
    elif unit_cell:
        y_lengths = [fin_thickness / 2, channel_width, fin_thickness / 2]
        y_counts = [half_fin, cells_channel, half_fin]
        y_solid = [True, False, True]
        y_grading = [g("fin", "second_half"), g("channel", "symmetric"), g("fin", "first_half")]
    else:
        y_lengths, y_counts, y_solid, y_grading = [], [], [], []
        for _ in range(channels):
            y_lengths += [fin_thickness, channel_width]
            y_counts += [cells_fin, cells_channel]
            y_solid += [True, False]
            y_grading += [g("fin", "symmetric"), g("channel", "symmetric")]
        y_lengths.append(fin_thickness)
        y_counts.append(cells_fin)
        y_solid.append(True)
        y_grading.append(g("fin", "symmetric"))
    yf = _segments(y_lengths, y_counts, gradings=y_grading)
    x_lengths, x_counts, in_field, x_grading = [], [], [], []
    if plenum_length > 0:
        x_lengths.append(plenum_length)
        x_counts.append(cells_plenum)
        in_field.append(False)
        x_grading.append(None)
    x_lengths.append(length)
    x_counts.append(cells_length)
    in_field.append(True)
    x_grading.append(g("length", "one_sided"))
    if plenum_length > 0:
        x_lengths.append(plenum_length)
        x_counts.append(cells_plenum)
        in_field.append(False)
        x_grading.append(None)
    xf = _segments(x_lengths, x_counts, gradings=x_grading)
    z_lengths = [base_thickness, fin_height] + ([cover_thickness] if cover_thickness > 0 else [])
    z_counts = [cells_base, cells_fin_height] + ([cells_cover] if cover_thickness > 0 else [])
    z_grading = [g("base", "one_sided"), g("fin_height", "symmetric")] + ([None] if cover_thickness > 0 else [])
    zf = _segments(z_lengths, z_counts, gradings=z_grading)

    y_is_fin = np.repeat(np.asarray(y_solid), y_counts)
    x_in_field = np.repeat(np.asarray(in_field), x_counts)
    nz_base, nz_fin = cells_base, cells_fin_height
    mat = np.full((len(xf) - 1, len(yf) - 1, len(zf) - 1), FLUID, np.int8)
    mat[:, :, :nz_base] = BASE
    fin_cols = x_in_field[:, None] & y_is_fin[None, :]
    mat[:, :, nz_base : nz_base + nz_fin][fin_cols] = FIN
    if cover_thickness > 0:
        mat[:, :, nz_base + nz_fin :] = COVER
    x0 = plenum_length
    return VoxelGeometry((xf, yf, zf), mat, (x0, x0 + length), base_thickness, base_thickness + fin_height)


def pin_fins(
    *,
    diameter: float,
    pitch_x: float,
    pitch_y: float,
    rows: int,
    columns: int,
    fin_height: float,
    base_thickness: float,
    shape: str = "round",
    arrangement: str = "inline",
    plenum_length: float = 0.0,
    cover_thickness: float = 0.0,
    cells_per_pitch: int = 8,
    cells_fin_height: int = 12,
    cells_base: int = 4,
    cells_cover: int = 2,
) -> VoxelGeometry:
    """A field of ``rows`` (along x) by ``columns`` (along y) pins on a uniform
    lateral grid; staggered rows are offset by half a pitch in y. A cell is
    solid when its centre lies inside a pin."""
    if shape not in ("round", "square") or arrangement not in ("inline", "staggered"):
        raise ValueError("shape is 'round' or 'square', arrangement 'inline' or 'staggered'")
    if not diameter < min(pitch_x, pitch_y):
        raise ValueError("pin diameter must be smaller than both pitches")
    length = rows * pitch_x
    width = columns * pitch_y
    n_plenum = max(int(round(cells_per_pitch * plenum_length / pitch_x)), 1) if plenum_length > 0 else 0
    x_parts = ([plenum_length] if n_plenum else []) + [length] + ([plenum_length] if n_plenum else [])
    x_counts = ([n_plenum] if n_plenum else []) + [rows * cells_per_pitch] + ([n_plenum] if n_plenum else [])
    xf = _segments(x_parts, x_counts)
    yf = _segments([width], [columns * cells_per_pitch])
    z_lengths = [base_thickness, fin_height] + ([cover_thickness] if cover_thickness > 0 else [])
    z_counts = [cells_base, cells_fin_height] + ([cells_cover] if cover_thickness > 0 else [])
    zf = _segments(z_lengths, z_counts)
    xc, yc = 0.5 * (xf[1:] + xf[:-1]), 0.5 * (yf[1:] + yf[:-1])
    inside = np.zeros((len(xc), len(yc)), bool)
    x0 = plenum_length if n_plenum else 0.0
    for i in range(rows):
        cx = x0 + (i + 0.5) * pitch_x
        staggered_row = arrangement == "staggered" and i % 2 == 1
        # staggered rows sit half a pitch over, with half pins against the side walls
        centres = np.arange(columns + 1) * pitch_y if staggered_row else (np.arange(columns) + 0.5) * pitch_y
        for cy in centres:
            dx = xc[:, None] - cx
            dy = yc[None, :] - cy
            if shape == "round":
                inside |= dx**2 + dy**2 <= (diameter / 2) ** 2
            else:
                inside |= (np.abs(dx) <= diameter / 2) & (np.abs(dy) <= diameter / 2)
    mat = np.full((len(xc), len(yc), len(zf) - 1), FLUID, np.int8)
    mat[:, :, :cells_base] = BASE
    mat[:, :, cells_base : cells_base + cells_fin_height][inside] = FIN
    if cover_thickness > 0:
        mat[:, :, cells_base + cells_fin_height :] = COVER
    return VoxelGeometry((xf, yf, zf), mat, (x0, x0 + length), base_thickness, base_thickness + fin_height)


def mask_shape(path: str | Path) -> tuple[int, ...]:
    """Shape of a voxel mask file without reading its data (``.npy`` header,
    HDF5 dataset ``material``); raises ValueError for a file that is not one."""
    path = Path(path)
    if path.suffix == ".npy":
        try:
            with path.open("rb") as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)
        except (OSError, ValueError, SyntaxError, TypeError) as exc:
            raise ValueError(f"{path.name}: not a readable .npy file ({exc})") from None
        _check_mask_dtype(path, dtype)
        return tuple(int(n) for n in shape)
    if path.suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                ds = h5.get("material")
                if ds is None:
                    raise ValueError(f"{path.name}: no dataset 'material'")
                if not isinstance(ds, h5py.Dataset):
                    raise ValueError(f"{path.name}: 'material' is a {type(ds).__name__.lower()}, expected a dataset")
                _check_mask_dtype(path, ds.dtype)
                return tuple(int(n) for n in ds.shape)
        except OSError as exc:
            raise ValueError(f"{path.name}: not a readable HDF5 file ({exc})") from None
    raise ValueError(f"{path.name}: expected a .npy or .h5 file")


def _check_mask_dtype(path: Path, dtype) -> None:
    if np.dtype(dtype).kind not in "biuf":
        raise ValueError(
            f"{path.name}: material values must be numbers 0 (fluid) .. 3 (cover) or booleans, "
            f"got an array of {np.dtype(dtype)}"
        )


def from_mask_file(path: str | Path, spacing: tuple[float, float, float]) -> VoxelGeometry:
    """A voxel map from ``.npy`` (integer materials as above, or booleans for
    solid) or HDF5 (dataset ``material``), on a uniform grid of ``spacing``
    (m). The base is taken as the solid layers at the bottom that span the
    whole footprint. Floating-point maps must hold whole numbers (NaN or
    fractions are refused, never truncated)."""
    path = Path(path)
    mask_shape(path)  # checks the kind of file and its dtype before reading the data
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path.name}: cannot read it ({exc})") from None
    else:
        import h5py

        with h5py.File(path, "r") as h5:
            arr = h5["material"][()]
    if arr.ndim != 3:
        raise ValueError(f"{path.name}: expected a 3D array, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = np.where(arr, FIN, FLUID)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{path.name}: material values must be finite (found NaN or infinity)")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{path.name}: material values must be whole numbers 0..3 (found fractions)")
    if arr.size and (arr.min() < FLUID or arr.max() > COVER):
        raise ValueError(f"{path.name}: material values must be 0 (fluid) .. 3 (cover)")
    arr = arr.astype(np.int8)
    faces = tuple(np.arange(n + 1) * d for n, d in zip(arr.shape, spacing, strict=True))
    full = [k for k in range(arr.shape[2]) if np.all(arr[:, :, k] != FLUID)]
    n_base = 0
    while n_base in full:
        n_base += 1
    base_top = faces[2][n_base]
    return VoxelGeometry(faces, arr, (faces[0][0], faces[0][-1]), base_top, faces[2][-1])


# ----------------------------------------------------------------------------- STL in and out


def _classify(solid: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Materials of a solid mask: the solid layers at the bottom that span the
    whole footprint are the base, those at the top (above a layer with
    fluid) the cover, every other solid cell a fin. Returns ``(material,
    base layers, cover layers)``."""
    nz = solid.shape[2]
    full = solid.all(axis=(0, 1))
    n_base = 0
    while n_base < nz and full[n_base]:
        n_base += 1
    n_cover = 0
    while n_cover < nz - n_base and full[nz - 1 - n_cover]:
        n_cover += 1
    mat = np.where(solid, FIN, FLUID).astype(np.int8)
    mat[:, :, :n_base] = BASE
    if n_cover:
        mat[:, :, nz - n_cover :] = COVER
    return mat, n_base, n_cover


def stl_grid(planes: np.ndarray, length: float, cells: int) -> np.ndarray:
    """Faces along one axis from 0 to ``length``: a face on every plane of
    ``planes`` inside the domain, ``cells`` cells shared among the intervals in
    proportion to their length (largest remainder, at least one each).
    Raises ValueError when there are fewer cells than intervals."""
    tol = 1e-6 * length
    pts = np.concatenate([[0.0], planes[(planes > tol) & (planes < length - tol)], [length]])
    pts = pts[np.concatenate([[True], np.diff(pts) > tol])]
    pts[-1] = length
    widths = np.diff(pts)
    m = len(widths)
    if cells < m:
        where = ", ".join(f"{1e3 * p:.6g}" for p in pts[1:-1][:8]) + (" ..." if m > 9 else "")
        raise ValueError(f"needs at least {m} cells: the mesh has walls across this axis at {where} mm")
    faces = faces_on_points(pts, cells)
    faces[-1] = length
    return faces


def faces_on_points(pts: np.ndarray, cells: int) -> np.ndarray:
    """Faces with a face on every one of the sorted points ``pts``: ``cells``
    (at least ``len(pts) - 1``) shared among the intervals in proportion to
    their length, largest remainder first, at least one each."""
    widths = np.diff(pts)
    m = len(widths)
    share = (cells - m) * widths / widths.sum()
    counts = 1 + np.floor(share).astype(int)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    counts[order[: cells - counts.sum()]] += 1
    faces = [pts[0]]
    for a, w, c in zip(pts[:-1], widths, counts, strict=True):
        faces.extend(a + w * np.arange(1, c + 1) / c)
    return np.asarray(faces)


def from_stl(
    path: str | Path,
    *,
    scale: float,
    offset=(0.0, 0.0, 0.0),
    size=None,
    grid=(32, 32, 16),
    fin_field=None,
) -> VoxelGeometry:
    """The solid of an STL file on a rectilinear grid.

    The file's coordinates are multiplied by ``scale`` (its unit in m) and
    shifted by ``offset`` (m). The domain is the box from 0 to ``size`` (m;
    default: the mesh's largest coordinates), and the mesh must lie inside
    it. ``grid`` gives per axis either a number of cells (faces on every wall
    of the mesh perpendicular to that axis, cells shared in proportion to
    length: :func:`stl_grid`) or the face coordinates (m, increasing, from 0
    to the size). The mesh is checked (:func:`aidc_thermo.io.stl.check`) and
    a cell is solid when its centre lies inside it (winding number 1);
    materials follow from the mask (:func:`_classify`). ``fin_field`` (x0,
    x1) defaults to the x extent of the fin cells. Raises ValueError (with
    the file name) for a mesh that does not bound a solid or leaves the
    domain. ``report`` holds the solid fraction, the voxel and mesh volumes
    and their relative difference."""
    from aidc_thermo.io import stl

    path = Path(path)
    try:
        tris, normals = stl.read(path, scale, offset)
        info = stl.check(tris, normals)
    except stl.MeshError as exc:
        msg = str(exc)
        raise ValueError(msg if msg.startswith(path.name) else f"{path.name}: {msg}") from None
    lo, hi = tris.reshape(-1, 3).min(axis=0), tris.reshape(-1, 3).max(axis=0)
    if size is None:  # explicit faces end the domain on their axis, the mesh on the others
        size = tuple(float(spec[-1]) if not isinstance(spec, (int, np.integer)) else float(hi[a])
                     for a, spec in enumerate(grid))  # fmt: skip
        if any(not s > 0 for s in size):
            raise ValueError(
                f"{path.name}: the mesh does not reach into positive coordinates; give 'size' and "
                "an 'offset' that place it in the domain"
            )
    size = tuple(float(s) for s in size)
    tol = [1e-6 * s for s in size]
    out = [a for a in range(3) if lo[a] < -tol[a] or hi[a] > size[a] + tol[a]]
    if out:
        a = out[0]
        raise ValueError(
            f"{path.name}: the mesh leaves the domain along {'xyz'[a]}: it spans {1e3 * lo[a]:.6g} .. "
            f"{1e3 * hi[a]:.6g} mm after units and offset, the domain 0 .. {1e3 * size[a]:.6g} mm (check "
            "'units', 'offset' and 'size')"
        )
    faces = []
    for a, spec in enumerate(grid):
        if isinstance(spec, (int, np.integer)):
            try:
                faces.append(stl_grid(stl.axis_planes(tris, a), size[a], int(spec)))
            except ValueError as exc:
                raise ValueError(f"{path.name}: grid.{'xyz'[a]}: {exc}") from None
        else:
            faces.append(np.asarray(spec, np.float64))
    w = stl.winding_numbers(tris, faces)
    bad = (w != 0) & (w != 1)
    if bad.any():
        i = np.unravel_index(int(np.flatnonzero(bad)[0]), w.shape)
        c = [0.5 * (faces[a][i[a]] + faces[a][i[a] + 1]) for a in range(3)]
        raise ValueError(
            f"{path.name}: self-intersecting or overlapping surfaces: {int(bad.sum())} cell centre(s) lie inside "
            f"the mesh {int(w[i])} times (winding number), the first at ({', '.join(f'{1e3 * v:.6g}' for v in c)})"
            " mm; every point must be inside once or not at all"
        )
    solid = w == 1
    mat, n_base, n_cover = _classify(solid)
    zf = faces[2]
    fins = (mat == FIN).any(axis=(1, 2))
    if fin_field is None:
        idx = np.flatnonzero(fins)
        fin_field = (faces[0][idx[0]], faces[0][idx[-1] + 1]) if idx.size else (faces[0][0], faces[0][-1])
    xc = 0.5 * (faces[0][1:] + faces[0][:-1])
    if not np.any((xc > fin_field[0]) & (xc < fin_field[1])):
        raise ValueError(
            f"{path.name}: fin_field {1e3 * fin_field[0]:.6g} .. {1e3 * fin_field[1]:.6g} mm holds no cell centre "
            f"of the grid (0 .. {1e3 * faces[0][-1]:.6g} mm along x)"
        )
    vol = np.einsum("i,j,k->ijk", *(np.diff(f) for f in faces))
    voxel_volume = float(vol[solid].sum())
    report = {
        "stl_triangles": info["triangles"],
        "solid_fraction": voxel_volume / float(vol.sum()),
        "stl_mesh_volume": info["volume"],
        "stl_voxel_volume": voxel_volume,
        "stl_volume_error": voxel_volume / info["volume"] - 1.0,
    }
    return VoxelGeometry(
        tuple(faces), mat, (float(fin_field[0]), float(fin_field[1])), float(zf[n_base]),
        float(zf[len(zf) - 1 - n_cover]), report,
    )  # fmt: skip


def narrowest_passage(g: VoxelGeometry) -> float:
    """A typical narrowest flow passage (m): along y and z (and x), the 10th
    percentile of the lengths of the runs of fluid cells bounded at both ends
    by solid or a side wall (not by the open x faces); the smallest over the
    axes. (Measured: the median, 0.8 mm for 0.5 mm pin gaps on a coarse grid,
    made the flow solve diverge.)"""
    fluid = g.material == FLUID
    best = np.inf
    for axis in range(3):
        d = np.moveaxis(np.broadcast_to(np.diff(g.faces[axis]).reshape([-1 if a == axis else 1 for a in range(3)]),
                                        fluid.shape), axis, -1).reshape(-1, fluid.shape[axis])  # fmt: skip
        f = np.moveaxis(fluid, axis, -1).reshape(-1, fluid.shape[axis])
        pad = np.pad(f, ((0, 0), (1, 1))).astype(np.int8)
        edges = np.diff(pad, axis=1)
        rows_s, starts = np.nonzero(edges == 1)
        _, stops = np.nonzero(edges == -1)
        if not starts.size:
            continue
        cum = np.concatenate([np.zeros((len(d), 1)), np.cumsum(d, axis=1)], axis=1)
        lengths = cum[rows_s, stops] - cum[rows_s, starts]
        if axis == 0:  # runs through the inlet or outlet face are open
            closed = (starts > 0) & (stops < f.shape[1])
            lengths = lengths[closed]
        if lengths.size:  # the 10th percentile of the runs (one of them): the narrow gaps, not the widest
            best = min(best, float(np.percentile(lengths, 10, method="lower")))
    if not np.isfinite(best):
        raise ValueError("no fluid passage in the geometry")
    return best


def _quads_to_tris(q: np.ndarray) -> np.ndarray:
    """Quads ``(n, 4, 3)`` (corners in order) to triangles ``(2n, 3, 3)``."""
    return np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])


def voxel_surface(g: VoxelGeometry, solid: np.ndarray | None = None) -> np.ndarray:
    """The surface of the solid cells as triangles ``(n, 3, 3)`` (m), two per
    cell face between a solid cell and a fluid cell or the domain's outside,
    wound so that the normals point out of the solid. The cell centres inside
    it are exactly the solid cells of ``g``, so it voxelises back to ``g``'s
    mask on the same grid."""
    solid = g.solid if solid is None else np.asarray(solid, bool)
    out = []
    for axis in range(3):
        b, c = (axis + 1) % 3, (axis + 2) % 3
        pad = [(0, 0)] * 3
        pad[axis] = (1, 1)
        s = np.pad(solid, pad).astype(np.int8)
        jump = np.diff(s, axis=axis)  # +1: solid begins (normal -axis), -1: solid ends (normal +axis)
        for sgn in (1, -1):
            idx = np.nonzero(jump == sgn)
            if not idx[0].size:
                continue
            fa = g.faces[axis][idx[axis]]
            b0, b1 = g.faces[b][idx[b]], g.faces[b][idx[b] + 1]
            c0, c1 = g.faces[c][idx[c]], g.faces[c][idx[c] + 1]
            corners = [(b0, c0), (b1, c0), (b1, c1), (b0, c1)]
            if sgn == 1:
                corners = corners[::-1]
            q = np.empty((len(fa), 4, 3))
            for k, (vb, vc) in enumerate(corners):
                q[:, k, axis], q[:, k, b], q[:, k, c] = fa, vb, vc
            out.append(_quads_to_tris(q))
    return np.concatenate(out)


def to_stl(g: VoxelGeometry | np.ndarray, path: str | Path, *, units: str = "mm", ascii: bool = False) -> Path:
    """Write the solid of ``g`` (a :class:`VoxelGeometry`, whose cell-face
    surface :func:`voxel_surface` is written, or triangles ``(n, 3, 3)`` in m)
    as an STL file in ``units`` ("m", "cm", "mm", "um" or "in"); binary, or
    ASCII with ``ascii=True``."""
    from aidc_thermo.io import stl

    tris = voxel_surface(g) if isinstance(g, VoxelGeometry) else np.asarray(g, np.float64)
    return stl.write(path, tris / STL_UNITS[units], ascii=ascii)


STL_UNITS = {"m": 1.0, "cm": 1e-2, "mm": 1e-3, "um": 1e-6, "in": 0.0254}


def _fan(poly: np.ndarray) -> np.ndarray:
    """Triangles fanning a convex polygon ``(n, 3)`` (in order, normal by the
    right-hand rule) from its first vertex."""
    return np.stack([np.broadcast_to(poly[0], (len(poly) - 2, 3)), poly[1:-1], poly[2:]], axis=1)


def _wall(line: np.ndarray, z0: float, z1: float, outward_first: bool) -> np.ndarray:
    """A vertical rectangle over the points ``line`` ``(n, 2)`` (in order along
    it) from ``z0`` up to ``z1``; the top edge holds every point of ``line``
    (it meets a triangulated face there), the bottom edge only the ends."""
    top = np.column_stack([line, np.full(len(line), z1)])
    a, b = np.append(line[0], z0), np.append(line[-1], z0)
    poly = np.vstack([a, b, top[::-1]]) if outward_first else np.vstack([b, a, top])
    return _fan(poly)


def pin_plate_stl(
    *,
    diameter: float,
    pitch_x: float,
    pitch_y: float,
    rows: int,
    columns: int,
    fin_height: float,
    base_thickness: float,
    plenum_length: float = 0.0,
    segments: int = 32,
) -> np.ndarray:
    """Triangles ``(n, 3, 3)`` (m) of a plate of round pins in an inline
    array, as :func:`pin_fins` lays them out (``rows`` along x, ``columns``
    along y, centres at half pitches, open plena of ``plenum_length`` before
    and after): a base of ``base_thickness`` and pins of ``fin_height``, each
    a prism on a regular polygon of ``segments`` sides (a multiple of 8)
    inscribed in the circle. One closed, outward-oriented surface: the base's
    top is triangulated around every pin with vertices shared exactly between
    neighbouring pitch tiles."""
    if segments % 8 or segments < 8:
        raise ValueError("segments must be a multiple of 8")
    if not diameter < min(pitch_x, pitch_y):
        raise ValueError("pin diameter must be smaller than both pitches")
    n, m8 = segments, segments // 8
    r, zb, zt = diameter / 2, base_thickness, base_thickness + fin_height
    x0 = plenum_length
    xb = x0 + pitch_x * np.arange(rows + 1)
    yb = pitch_y * np.arange(columns + 1)
    length, width = xb[-1] + plenum_length, yb[-1]
    hx, hy = pitch_x / 2, pitch_y / 2
    # positions along a tile side: t = tan(angle) for angles -45..45 degrees, exact at the ends
    t = np.tan(2 * np.pi * (np.arange(2 * m8 + 1) - m8) / n)
    t = 0.5 * (t - t[::-1])

    def along(lo: float, hi: float, half: float, k: int) -> float:
        return lo if k == 0 else hi if k == 2 * m8 else lo + half * (1.0 + t[k])

    theta = 2 * np.pi * np.arange(n) / n
    tris = []
    for i in range(rows):
        for j in range(columns):
            cx, cy = xb[i] + hx, yb[j] + hy
            ring = np.column_stack([cx + r * np.cos(theta), cy + r * np.sin(theta)])
            outer = np.empty((n, 2))
            for k in range(n):
                kk = k if k < 7 * m8 else k - n  # -m8 .. 7 m8
                if kk <= m8:  # right side, y rising
                    outer[k] = xb[i + 1], along(yb[j], yb[j + 1], hy, kk + m8)
                elif kk <= 3 * m8:  # top, x falling
                    outer[k] = along(xb[i], xb[i + 1], hx, 3 * m8 - kk), yb[j + 1]
                elif kk <= 5 * m8:  # left, y falling
                    outer[k] = xb[i], along(yb[j], yb[j + 1], hy, 5 * m8 - kk)
                else:  # bottom, x rising
                    outer[k] = along(xb[i], xb[i + 1], hx, kk - 5 * m8), yb[j]
            nxt = np.roll(np.arange(n), -1)
            z = np.full((n, 1), zb)
            ring_b, ring_t = np.hstack([ring, z]), np.hstack([ring, z + fin_height])
            out_b = np.hstack([outer, z])
            tris.append(_quads_to_tris(np.stack([ring_b, out_b, out_b[nxt], ring_b[nxt]], axis=1)))  # base top
            tris.append(_quads_to_tris(np.stack([ring_b, ring_b[nxt], ring_t[nxt], ring_t], axis=1)))  # pin wall
            centre = np.broadcast_to([cx, cy, zt], (n, 3))
            tris.append(np.stack([centre, ring_t, ring_t[nxt]], axis=1))  # pin top
    top = np.concatenate(tris)
    pts = top.reshape(-1, 3)[:, :2]

    def on(axis: int, value: float) -> np.ndarray:
        """Points of the tiled top on the line ``coordinate[axis] == value``, in order along it."""
        p = np.unique(pts[pts[:, axis] == value], axis=0)
        return p[np.argsort(p[:, 1 - axis], kind="stable")]

    faces = [top]
    left, right = on(0, xb[0]), on(0, xb[-1])
    if plenum_length > 0:  # plena tops: from the far edge to the tiles' first and last edges
        faces.append(_fan(np.vstack([[[0.0, width, zb], [0.0, 0.0, zb]],
                                     np.column_stack([left, np.full(len(left), zb)])])))  # fmt: skip
        faces.append(_fan(np.vstack([[[length, 0.0, zb], [length, width, zb]],
                                     np.column_stack([right[::-1], np.full(len(right), zb)])])))  # fmt: skip
        left = np.array([[0.0, 0.0], [0.0, width]])
        right = np.array([[length, 0.0], [length, width]])
    front = np.vstack([[[0.0, 0.0]] if plenum_length > 0 else np.empty((0, 2)), on(1, 0.0),
                       [[length, 0.0]] if plenum_length > 0 else np.empty((0, 2))])  # fmt: skip
    back = np.vstack([[[0.0, width]] if plenum_length > 0 else np.empty((0, 2)), on(1, width),
                      [[length, width]] if plenum_length > 0 else np.empty((0, 2))])  # fmt: skip
    # sides, outward; each polygon runs counter-clockwise seen from outside
    faces.append(_wall(front, 0.0, zb, outward_first=True))  # y = 0: x rising along the bottom
    faces.append(_wall(back, 0.0, zb, outward_first=False))  # y = W
    faces.append(_wall(left, 0.0, zb, outward_first=False))  # x = 0
    faces.append(_wall(right, 0.0, zb, outward_first=True))  # x = L
    bottom = np.array([[0.0, 0.0, 0.0], [0.0, width, 0.0], [length, width, 0.0], [length, 0.0, 0.0]])
    faces.append(_fan(bottom))
    return np.concatenate(faces)


def footprint_mask(path: str | Path, *, scale: float, offset=(0.0, 0.0), faces_x, faces_y) -> np.ndarray:
    """Columns ``(nx, ny)`` of a plate grid (face coordinates ``faces_x``,
    ``faces_y``, m) whose centre lies under the solid of an STL file (the
    outline of a fin field): a vertical line through the centre passes
    inside the mesh somewhere between its lowest and highest point (sampled
    at 16 heights). The file's coordinates are multiplied by ``scale`` and
    shifted by ``offset`` (x, y; m). The mesh is checked as in
    :func:`from_stl` and must lie over the plate. Raises ValueError (with the
    file name)."""
    from aidc_thermo.io import stl

    path = Path(path)
    try:
        tris, normals = stl.read(path, scale, (offset[0], offset[1], 0.0))
        stl.check(tris, normals)
    except stl.MeshError as exc:
        msg = str(exc)
        raise ValueError(msg if msg.startswith(path.name) else f"{path.name}: {msg}") from None
    xf, yf = np.asarray(faces_x, np.float64), np.asarray(faces_y, np.float64)
    lo, hi = tris.reshape(-1, 3).min(axis=0), tris.reshape(-1, 3).max(axis=0)
    for a, f in enumerate((xf, yf)):
        tol = 1e-6 * (f[-1] - f[0])
        if lo[a] < f[0] - tol or hi[a] > f[-1] + tol:
            raise ValueError(
                f"{path.name}: the outline leaves the plate along {'xy'[a]}: it spans {1e3 * lo[a]:.6g} .. "
                f"{1e3 * hi[a]:.6g} mm after units and offset, the plate {1e3 * f[0]:.6g} .. {1e3 * f[-1]:.6g} mm"
            )
    w = stl.winding_numbers(tris, (xf, yf, np.linspace(lo[2], hi[2], 17)))
    if ((w != 0) & (w != 1)).any():
        raise ValueError(f"{path.name}: self-intersecting or overlapping surfaces (a point lies inside twice)")
    return (w == 1).any(axis=2)
