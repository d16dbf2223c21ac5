"""Voxel geometry of cold plates: grids whose faces follow the walls, and
solid masks.

Coordinates: x along the coolant flow (channel direction), y across the
channels, z up from the bottom of the base (the heated side) through the fin
field to the cover. Every builder returns a :class:`VoxelGeometry`: face
coordinates per axis (m), a material map (``FLUID`` = 0, ``BASE`` = 1,
``FIN`` = 2, ``COVER`` = 3) and the extents of the parts, so that models can
assign conductivities, inlets and heat fluxes by region.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
]

FLUID, BASE, FIN, COVER = 0, 1, 2, 3


@dataclass(frozen=True)
class VoxelGeometry:
    faces: tuple[np.ndarray, np.ndarray, np.ndarray]
    material: np.ndarray  # int8 (nx, ny, nz)
    fin_field: tuple[float, float]  # x extent of the fin field (m), plena outside it
    base_top: float  # z of the base's top face (m)
    fin_top: float  # z of the fin tips / cover underside (m)

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
