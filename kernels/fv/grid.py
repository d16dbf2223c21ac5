"""Non-uniform Cartesian grids.

A :class:`Grid` is a pytree of three spacing arrays (cell widths along x, y
and z, in metres) and an origin. The number of cells per axis is the static
shape of the spacing arrays; the widths themselves are traced values, so a
design sweep over geometry dimensions does not recompile.

Conventions used by every kernel:

* Cell-centred fields have shape ``(nx, ny, nz)``.
* Face fields normal to axis ``a`` have one more entry along ``a`` than the
  cell field: ``(nx + 1, ny, nz)`` for x faces, and so on. Entry ``0`` and
  entry ``-1`` along ``a`` are the domain's boundary faces.
* Axis order is x, y, z; z points up (away from the chip, towards the
  coolant).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Grid", "uniform_grid", "grid_from_faces"]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Grid:
    """Cell widths of a non-uniform Cartesian grid.

    Attributes:
        dx, dy, dz: cell widths along each axis, shapes ``(nx,)``, ``(ny,)``,
            ``(nz,)``, in metres.
        origin: coordinates of the lower corner, shape ``(3,)``, in metres.
    """

    dx: jax.Array
    dy: jax.Array
    dz: jax.Array
    origin: jax.Array

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.dx.shape[-1], self.dy.shape[-1], self.dz.shape[-1])

    @property
    def spacings(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        return (self.dx, self.dy, self.dz)

    @property
    def size(self) -> int:
        nx, ny, nz = self.shape
        return nx * ny * nz

    def faces(self, axis: int) -> jax.Array:
        """Face coordinates along ``axis``, shape ``(n_axis + 1,)``."""
        d = self.spacings[axis]
        return self.origin[axis] + jnp.concatenate([jnp.zeros((1,), d.dtype), jnp.cumsum(d)])

    def centers(self, axis: int) -> jax.Array:
        """Cell-centre coordinates along ``axis``, shape ``(n_axis,)``."""
        f = self.faces(axis)
        return 0.5 * (f[1:] + f[:-1])

    def volumes(self) -> jax.Array:
        """Cell volumes, shape ``(nx, ny, nz)``, in m^3."""
        return self.dx[:, None, None] * self.dy[None, :, None] * self.dz[None, None, :]

    def face_areas(self, axis: int) -> jax.Array:
        """Area of one face normal to ``axis`` for each cell column, broadcastable
        against a face field of that axis, in m^2."""
        dx, dy, dz = self.dx, self.dy, self.dz
        if axis == 0:
            return (dy[:, None] * dz[None, :])[None, :, :]
        if axis == 1:
            return (dx[:, None] * dz[None, :])[:, None, :]
        return (dx[:, None] * dy[None, :])[:, :, None]

    def astype(self, dtype) -> Grid:
        return Grid(*(jnp.asarray(a, dtype) for a in (self.dx, self.dy, self.dz, self.origin)))


def grid_from_faces(xf, yf, zf, dtype=None) -> Grid:
    """Build a grid from strictly increasing face coordinates per axis."""
    arrays = []
    for name, f in (("x", xf), ("y", yf), ("z", zf)):
        f = np.asarray(f, dtype=np.float64)
        if f.ndim != 1 or f.size < 2:
            raise ValueError(f"{name} faces must be a 1D array of at least two coordinates")
        if not np.all(np.diff(f) > 0):
            raise ValueError(f"{name} faces must be strictly increasing")
        arrays.append(f)
    dtype = dtype or jnp.result_type(float)
    return Grid(
        dx=jnp.asarray(np.diff(arrays[0]), dtype),
        dy=jnp.asarray(np.diff(arrays[1]), dtype),
        dz=jnp.asarray(np.diff(arrays[2]), dtype),
        origin=jnp.asarray([a[0] for a in arrays], dtype),
    )


def uniform_grid(shape, lengths, origin=(0.0, 0.0, 0.0), dtype=None) -> Grid:
    """A uniform grid of ``shape`` cells spanning ``lengths`` (metres)."""
    faces = [o + np.linspace(0.0, L, n + 1) for n, L, o in zip(shape, lengths, origin, strict=True)]
    return grid_from_faces(*faces, dtype=dtype)
