"""Heat sources on a plane: rectangles of given power, optionally shaped by a
power-map grid (CSV or NPY), spread conservatively onto a non-uniform grid.

A map is a 2D grid of non-negative relative weights, rows along y (first row
at the rectangle's low y edge), columns along x; it is stretched over its
rectangle and only its shape matters (the source's power sets the total).
Shared by the package-stack and compact cold-plate case types.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from aidc_thermo.io.case import Table

__all__ = ["overlap", "read_map", "source_power"]


def overlap(faces: np.ndarray, a: float, b: float) -> np.ndarray:
    """Length of each cell ``[f_i, f_i+1]`` inside ``[a, b]``."""
    return np.clip(np.minimum(faces[1:], b) - np.maximum(faces[:-1], a), 0.0, None)


def read_map(t: Table, key: str, base: Path):
    """The power map named by ``key`` (a path relative to ``base``) as a tuple of
    rows, or None when the key is absent; a clear case error otherwise."""
    path = t.path_value(key, base, default=None)
    if path is None:
        return None
    try:
        if path.suffix == ".npy":
            _check_npy_header(path)
            arr = np.load(path, allow_pickle=False)
        else:
            if path.stat().st_size > 16 * MAX_MAP_ENTRIES:
                raise ValueError(f"{path.stat().st_size / 1e6:.0f} MB is more than a power-map CSV may hold")
            with path.open(newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.reader(fh) if r and not r[0].lstrip().startswith("#")]
            arr = np.array([[float(v) for v in r] for r in rows])
    except (ValueError, OSError) as exc:
        raise t.error(key, f"cannot read power map {path.name}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        what = "complex numbers" if arr.dtype.kind == "c" else f"values of type {arr.dtype}"
        raise t.error(
            key, f"power map {path.name} holds {what}; expected real, non-negative weights (nothing is truncated)"
        )
    if arr.ndim != 2 or arr.size == 0:
        raise t.error(key, f"power map {path.name} must be a non-empty 2D grid of numbers (rows along y)")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not np.any(arr > 0):
        raise t.error(key, f"power map {path.name} must be finite, non-negative and not all zero")
    with np.errstate(over="ignore"):
        overflows = not np.isfinite(np.sum(arr, dtype=np.float64) * arr.size)
    if overflows:
        raise t.error(key, f"power map {path.name}: weights so large that their sum overflows; scale them down")
    return tuple(tuple(float(v) for v in row) for row in arr)


#: The most entries a power map may have (a 4096 x 4096 grid is far finer
#: than any cell grid it is remapped onto).
MAX_MAP_ENTRIES = 4096 * 4096


def _check_npy_header(path: Path) -> None:
    """Refuse an .npy power map by its header (type and size) before reading it."""
    with path.open("rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fh)
    size = int(np.prod([int(n) for n in shape], dtype=object)) if shape else 1
    if size > MAX_MAP_ENTRIES:
        raise ValueError(f"shape {shape} has {size:.3g} entries, more than the {MAX_MAP_ENTRIES:,} allowed")


def source_power(xf: np.ndarray, yf: np.ndarray, rect, power: float, grid_map=None) -> np.ndarray:
    """Power (W) per cell of the grid with faces ``xf``, ``yf`` from a source of
    ``power`` W over ``rect = (x0, y0, x1, y1)``, uniform or shaped by
    ``grid_map``; sums to ``power`` exactly (the remap is conservative)."""
    ox, oy = overlap(xf, rect[0], rect[2]), overlap(yf, rect[1], rect[3])
    if grid_map is None:
        weights = np.outer(ox, oy)
    else:
        grid_map = np.asarray(grid_map)  # rows along y, columns along x
        nrow, ncol = grid_map.shape
        mx = np.linspace(rect[0], rect[2], ncol + 1)
        my = np.linspace(rect[1], rect[3], nrow + 1)
        wx = np.stack([overlap(xf, mx[c], mx[c + 1]) / (mx[c + 1] - mx[c]) for c in range(ncol)], 1)
        wy = np.stack([overlap(yf, my[r], my[r + 1]) / (my[r + 1] - my[r]) for r in range(nrow)], 1)
        weights = wx @ grid_map.T @ wy.T
    return power * weights / weights.sum()
