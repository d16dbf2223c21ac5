"""STL triangle meshes: read and write (binary and ASCII, through numpy-stl),
check that a mesh bounds a solid, and voxelise it onto a rectilinear grid.

A mesh here is a float64 array ``(n, 3, 3)`` of triangles (vertex ``j`` of
triangle ``i`` is ``tris[i, j]``), in metres once read. STL stores float32
coordinates without units: :func:`read` scales them by the case's unit and
shifts them by its offset.

A mesh bounds a solid when (:func:`check`) it has no degenerate (zero-area)
triangle, it is watertight (after welding vertices with equal coordinates,
every edge is shared by exactly two triangles), its orientation is
consistent (each of those two triangles runs the edge in the opposite
direction), its stored facet normals agree with the vertex order (right-hand
rule, outward) where they are given, and its signed volume is positive
(normals point out of the solid).

Voxelisation (:func:`winding_numbers`): for every column of cell centres a
ray is cast along +z; each crossing of a triangle adds the sign of the
triangle's normal z-component to the cells below it. The sum is the winding
number of each cell centre: 1 inside a closed, outward-oriented, non-
self-intersecting surface, 0 outside. A 2 (overlapping shells), a -1
(inward shell) or anything else marks a self-intersecting or overlapping
mesh. The columns are moved by a fixed ~1e-9 of the smallest cell so that a
ray never runs exactly along a triangle edge or through a vertex; the
triangles are processed in vectorised chunks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "MeshError",
    "read",
    "write",
    "check",
    "signed_volume",
    "axis_planes",
    "winding_numbers",
]

# at most this many (triangle, column) pairs are tested at once
_CHUNK_PAIRS = 2_000_000
# files above this size are refused before reading (the mesh is held in memory several times)
_MAX_BYTES = 1 << 30


class MeshError(ValueError):
    """A mesh that does not bound a solid (the message says why and where)."""


def read(path: str | Path, scale: float = 1.0, offset=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Triangles ``(n, 3, 3)`` (file coordinates times ``scale`` plus
    ``offset``, float64) and the stored facet normals ``(n, 3)`` of a binary
    or ASCII STL file (every ``solid`` block of an ASCII file). Raises :class:`MeshError` naming the file for one that
    cannot be read."""
    from stl import mesh as stl_mesh

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MeshError(f"{path.name}: cannot read it ({exc})") from None
    if size == 0:
        raise MeshError(f"{path.name}: the file is empty")
    if size > _MAX_BYTES:
        raise MeshError(
            f"{path.name}: {size / 2**30:.1f} GiB is larger than the {_MAX_BYTES // 2**30} GiB this reader takes "
            "(about 20 million triangles binary); decimate the mesh"
        )
    try:  # every solid of an ASCII file (from_file would read the first one only)
        parts = list(stl_mesh.Mesh.from_multi_file(str(path), calculate_normals=False, speedups=False))
    except (OSError, ValueError, TypeError, AssertionError, RuntimeError, IndexError, UnicodeError) as exc:
        raise MeshError(f"{path.name}: not a readable STL file ({exc})") from None
    if not parts:
        raise MeshError(f"{path.name}: no triangles in the file")
    tris = np.concatenate([np.asarray(m.vectors, np.float64).reshape(-1, 3, 3) for m in parts])
    if tris.ndim != 3 or tris.shape[1:] != (3, 3) or len(tris) == 0:
        raise MeshError(f"{path.name}: no triangles in the file")
    if not np.all(np.isfinite(tris)):
        bad = int(np.flatnonzero(~np.isfinite(tris).all(axis=(1, 2)))[0])
        raise MeshError(f"{path.name}: triangle {bad} has a coordinate that is NaN or infinite")
    normals = np.concatenate([np.asarray(m.normals, np.float64).reshape(-1, 3) for m in parts])
    return tris * scale + np.asarray(offset, np.float64), normals


def write(path: str | Path, tris: np.ndarray, *, ascii: bool = False, name: str = "aidc_thermo") -> Path:
    """Write triangles ``(n, 3, 3)`` (m, unless the caller scaled them) as an
    STL file, binary by default; the facet normals are computed from the
    vertex order."""
    import stl
    from stl import mesh as stl_mesh

    tris = np.asarray(tris, np.float64)
    data = np.zeros(len(tris), dtype=stl_mesh.Mesh.dtype)
    data["vectors"] = tris
    m = stl_mesh.Mesh(data, calculate_normals=False, name=name, speedups=False)
    n = _normals(tris)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    m.normals[:] = np.where(length > 0, n / np.where(length > 0, length, 1.0), 0.0)
    path = Path(path)
    m.save(str(path), mode=stl.Mode.ASCII if ascii else stl.Mode.BINARY, update_normals=False)
    return path


def _normals(tris: np.ndarray) -> np.ndarray:
    """Unnormalised normals by the right-hand rule (twice the area)."""
    return np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])


def signed_volume(tris: np.ndarray) -> float:
    """Volume enclosed by a closed mesh (divergence theorem), positive when
    the normals point outward (m^3 for a mesh in m)."""
    tris = np.asarray(tris, np.float64)
    return float(np.einsum("ij,ij->i", tris[:, 0], np.cross(tris[:, 1], tris[:, 2])).sum() / 6.0)


def _where(p) -> str:
    return "(" + ", ".join(f"{1e3 * c:.6g}" for c in p) + ") mm"


def check(tris: np.ndarray, normals: np.ndarray | None = None) -> dict:
    """Check that ``tris`` bounds a solid (module docstring); raise
    :class:`MeshError` with the first problem and where it is. Returns
    ``{"triangles", "vertices", "volume"}`` (volume in m^3)."""
    tris = np.asarray(tris, np.float64)
    n_tri = len(tris)
    if n_tri < 4:
        raise MeshError(f"{n_tri} triangles cannot enclose a volume (a closed surface needs at least 4)")
    extent = float(np.ptp(tris.reshape(-1, 3), axis=0).max())
    area2 = np.linalg.norm(_normals(tris), axis=1)
    degenerate = np.flatnonzero(area2 <= (1e-10 * extent) ** 2)
    if degenerate.size:
        i = int(degenerate[0])
        raise MeshError(
            f"{degenerate.size} degenerate triangle(s) (zero area: repeated or collinear vertices), "
            f"the first is triangle {i} at {_where(tris[i].mean(axis=0))}"
        )
    # weld vertices with equal coordinates
    verts, index = np.unique(tris.reshape(-1, 3), axis=0, return_inverse=True)
    index = index.reshape(n_tri, 3)
    a = index.ravel()
    b = index[:, [1, 2, 0]].ravel()
    nv = np.int64(len(verts))
    undirected = np.minimum(a, b) * nv + np.maximum(a, b)
    keys, counts = np.unique(undirected, return_counts=True)
    bad = counts != 2
    if bad.any():
        open_edges, shared = int((counts == 1).sum()), int((counts > 2).sum())
        k = int(keys[np.flatnonzero(bad)[0]])
        p = 0.5 * (verts[k // nv] + verts[k % nv])
        what = []
        if open_edges:
            what.append(f"{open_edges} open edge(s) used by one triangle only (a hole or a gap)")
        if shared:
            what.append(f"{shared} edge(s) shared by more than two triangles (non-manifold)")
        raise MeshError(
            f"not watertight: {' and '.join(what)}; every edge must be shared by exactly two triangles "
            f"(first at {_where(p)})"
        )
    directed = a * nv + b
    d_keys, d_counts = np.unique(directed, return_counts=True)
    if (d_counts > 1).any():
        k = int(d_keys[np.flatnonzero(d_counts > 1)[0]])
        p = 0.5 * (verts[k // nv] + verts[k % nv])
        raise MeshError(
            f"inconsistent orientation: {int((d_counts > 1).sum())} edge(s) run in the same direction by both "
            f"of their triangles, so some triangles are flipped against their neighbours (first at {_where(p)})"
        )
    if normals is not None:
        stored = np.asarray(normals, np.float64)
        given = np.linalg.norm(stored, axis=1) > 0
        against = given & (np.einsum("ij,ij->i", stored, _normals(tris)) < 0)
        if against.any():
            i = int(np.flatnonzero(against)[0])
            raise MeshError(
                f"the stored facet normals of {int(against.sum())} of {n_tri} triangles point against their vertex "
                f"order (right-hand rule), the first is triangle {i} at {_where(tris[i].mean(axis=0))}: "
                "re-export the STL with consistent normals"
            )
    volume = signed_volume(tris)
    if not volume > 0:
        raise MeshError(
            f"the normals point inward (signed volume {volume * 1e9:.6g} mm^3 is not positive): the triangles' "
            "vertex order must be counter-clockwise seen from outside the solid"
        )
    return {"triangles": n_tri, "vertices": int(len(verts)), "volume": volume}


def axis_planes(tris: np.ndarray, axis: int) -> np.ndarray:
    """Coordinates (sorted, unique) of the planes perpendicular to ``axis``
    that hold a facet of the mesh (walls a grid should put faces on)."""
    c = np.asarray(tris, np.float64)[:, :, axis]
    flat = (c.max(axis=1) - c.min(axis=1)) <= 1e-7 * max(float(np.ptp(c)), 1e-300)
    return np.unique(c[flat, 0])


def winding_numbers(tris: np.ndarray, faces) -> np.ndarray:
    """Winding number (int32, ``(nx, ny, nz)``) of every cell centre of the
    rectilinear grid with face coordinates ``faces = (xf, yf, zf)`` (module
    docstring)."""
    tris = np.asarray(tris, np.float64)
    xf, yf, zf = (np.asarray(f, np.float64) for f in faces)
    xc, yc, zc = (0.5 * (f[1:] + f[:-1]) for f in (xf, yf, zf))
    nx, ny, nz = len(xc), len(yc), len(zc)
    h = min(np.diff(xf).min(), np.diff(yf).min())
    # the rays run at these (x, y), a fixed irrational fraction of the smallest cell off the centres
    px, py = xc + np.sqrt(2.0) * 1e-9 * h, yc + np.sqrt(3.0) * 1e-9 * h
    acc = np.zeros((nx, ny, nz + 1), np.int32)

    n_z = _normals(tris)[:, 2]
    keep = n_z != 0.0  # triangles parallel to the rays are never crossed by them
    t = tris[keep]
    sign = np.sign(n_z[keep]).astype(np.int32)
    lo, hi = t.min(axis=1), t.max(axis=1)
    i0, i1 = np.searchsorted(px, lo[:, 0], "left"), np.searchsorted(px, hi[:, 0], "right")
    j0, j1 = np.searchsorted(py, lo[:, 1], "left"), np.searchsorted(py, hi[:, 1], "right")
    ni, nj = np.maximum(i1 - i0, 0), np.maximum(j1 - j0, 0)
    pairs = ni * nj
    chunk = (np.cumsum(pairs) - pairs) // _CHUNK_PAIRS
    cuts = [0, *(np.flatnonzero(np.diff(chunk)) + 1).tolist(), len(t)]
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
        sel = slice(start, stop)
        cnt = pairs[sel]
        total = int(cnt.sum())
        if total == 0:
            continue
        tri_idx = np.repeat(np.arange(sel.start, sel.stop), cnt)
        local = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        ii = i0[tri_idx] + local // nj[tri_idx]
        jj = j0[tri_idx] + local % nj[tri_idx]
        a, b, c = t[tri_idx, 0], t[tri_idx, 1], t[tri_idx, 2]
        x, y = px[ii], py[jj]
        # edge functions: each is twice the signed area of (p, edge); all of the
        # triangle's sign when the ray's (x, y) lies inside its projection
        e0 = (b[:, 0] - x) * (c[:, 1] - y) - (b[:, 1] - y) * (c[:, 0] - x)
        e1 = (c[:, 0] - x) * (a[:, 1] - y) - (c[:, 1] - y) * (a[:, 0] - x)
        e2 = (a[:, 0] - x) * (b[:, 1] - y) - (a[:, 1] - y) * (b[:, 0] - x)
        s = sign[tri_idx]
        hit = (s * e0 > 0) & (s * e1 > 0) & (s * e2 > 0)
        if not hit.any():
            continue
        e0, e1, e2 = e0[hit], e1[hit], e2[hit]
        z = (e0 * a[hit, 2] + e1 * b[hit, 2] + e2 * c[hit, 2]) / (e0 + e1 + e2)
        k = np.searchsorted(zc, z, "left")  # cells 0..k-1 lie below the crossing
        ih, jh, sh = ii[hit], jj[hit], s[hit]
        np.add.at(acc, (ih, jh, np.zeros_like(k)), sh)
        np.add.at(acc, (ih, jh, k), -sh)
    return np.cumsum(acc, axis=2, dtype=np.int32)[:, :, :nz]
