"""Steady 3D heat conduction on a non-uniform Cartesian grid.

Solves ``-div(k grad T) = q`` cell-centred (second-order on smooth grids) with

* per-cell conductivity ``k`` (W/m/K), e.g. ``k_table[material_map]``;
  neighbouring cells are joined by the series resistance of their two half
  cells, which is the harmonic mean of ``k`` weighted by distance and makes the
  flux continuous across material interfaces;
* volumetric sources ``q`` (W/m^3);
* on each of the six domain faces, per boundary face cell, one of
  ``FLUX`` (prescribed heat flux into the domain, W/m^2; 0 = insulated),
  ``CONVECTIVE`` (heat transfer coefficient ``h`` to a fluid at ``value``,
  plus any prescribed flux) or ``TEMPERATURE`` (wall temperature ``value``).

Boundary kinds are integer arrays, not Python branches: a new patch layout of
the same shape reuses the compiled solve. Temperatures may be in K or °C
(the equations are linear), as long as one unit is used throughout.

Every cell must be connected, through conduction, to at least one
``CONVECTIVE`` or ``TEMPERATURE`` face cell; otherwise the steady problem has
no unique solution (the caller checks this on its inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..solvers import linsolve
from .grid import Grid

__all__ = [
    "FLUX",
    "CONVECTIVE",
    "TEMPERATURE",
    "FACES",
    "FaceBC",
    "BoundaryConditions",
    "face_bc",
    "operator",
    "rhs",
    "solve",
    "boundary_heat_out",
    "heat_balance",
]

FLUX, CONVECTIVE, TEMPERATURE = 0, 1, 2

#: The six boundary faces, as (name, axis, side) with side 0 = low, 1 = high.
FACES = (
    ("x_lo", 0, 0),
    ("x_hi", 0, 1),
    ("y_lo", 1, 0),
    ("y_hi", 1, 1),
    ("z_lo", 2, 0),
    ("z_hi", 2, 1),
)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FaceBC:
    """Boundary condition on one domain face, per boundary face cell.

    Arrays have the face's shape: ``(ny, nz)`` for x faces, ``(nx, nz)`` for y
    faces and ``(nx, ny)`` for z faces.

    Attributes:
        kind: int, ``FLUX``, ``CONVECTIVE`` or ``TEMPERATURE``.
        h: heat transfer coefficient, W/m^2/K (used where kind is CONVECTIVE).
        value: fluid temperature (CONVECTIVE) or wall temperature (TEMPERATURE).
        flux: heat flux into the domain, W/m^2 (used where kind is not TEMPERATURE).
    """

    kind: jax.Array
    h: jax.Array
    value: jax.Array
    flux: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class BoundaryConditions:
    """One :class:`FaceBC` per domain face (see :data:`FACES`)."""

    x_lo: FaceBC
    x_hi: FaceBC
    y_lo: FaceBC
    y_hi: FaceBC
    z_lo: FaceBC
    z_hi: FaceBC

    def face(self, name: str) -> FaceBC:
        return getattr(self, name)


def _face_shape(shape, axis):
    return tuple(n for a, n in enumerate(shape) if a != axis)


def face_bc(grid: Grid, name: str, kind=FLUX, h=0.0, value=0.0, flux=0.0, dtype=None) -> FaceBC:
    """A :class:`FaceBC` for face ``name`` with scalars or arrays broadcast to its shape."""
    axis = dict((n, a) for n, a, _ in FACES)[name]
    shape = _face_shape(grid.shape, axis)
    dtype = dtype or grid.dx.dtype
    return FaceBC(
        kind=jnp.broadcast_to(jnp.asarray(kind, jnp.int32), shape),
        h=jnp.broadcast_to(jnp.asarray(h, dtype), shape),
        value=jnp.broadcast_to(jnp.asarray(value, dtype), shape),
        flux=jnp.broadcast_to(jnp.asarray(flux, dtype), shape),
    )


def _expand(face_array, axis):
    """Insert the normal axis so a face array broadcasts against a face slab."""
    return jnp.expand_dims(face_array, axis)


def _boundary_index(n: int, side: int) -> int:
    return 0 if side == 0 else n - 1


def _boundary_terms(grid: Grid, k: jax.Array, bc: FaceBC, axis: int, side: int):
    """Exterior link conductance g (W/K), prescribed heat into the domain (W)
    and exterior value, each shaped as a face slab (normal axis of length 1)."""
    n = k.shape[axis]
    idx = _boundary_index(n, side)
    width = grid.spacings[axis][idx]
    kb = jax.lax.slice_in_dim(k, idx, idx + 1, axis=axis)
    r_half = 0.5 * width / kb  # half-cell resistance times area, m^2 K/W
    kind = _expand(bc.kind, axis)
    h = _expand(bc.h, axis)
    safe_h = jnp.where(h > 0, h, jnp.ones_like(h))
    r_ext = jnp.where(kind == CONVECTIVE, 1.0 / safe_h, jnp.zeros_like(h))
    area = grid.face_areas(axis)
    coupled = (kind == TEMPERATURE) | ((kind == CONVECTIVE) & (h > 0))
    g = jnp.where(coupled, area / (r_half + r_ext), jnp.zeros_like(r_half))
    heat_in = jnp.where(kind == TEMPERATURE, jnp.zeros_like(g), _expand(bc.flux, axis) * area)
    return g, heat_in, _expand(bc.value, axis)


def _interior_links(grid: Grid, k: jax.Array, axis: int) -> jax.Array:
    d = grid.spacings[axis]
    shape = [1, 1, 1]
    shape[axis] = d.shape[0]
    r_half = 0.5 * d.reshape(shape) / k  # half-cell resistance times area
    n = k.shape[axis]
    lo = jax.lax.slice_in_dim(r_half, 0, n - 1, axis=axis)
    hi = jax.lax.slice_in_dim(r_half, 1, n, axis=axis)
    return grid.face_areas(axis) / (lo + hi)


def operator(grid: Grid, k: jax.Array, bcs: BoundaryConditions) -> linsolve.Conductances:
    """The conduction operator as face conductances (W/K)."""
    links = []
    for axis in range(3):
        lo_name, hi_name = FACES[2 * axis][0], FACES[2 * axis + 1][0]
        g_lo = _boundary_terms(grid, k, bcs.face(lo_name), axis, 0)[0]
        g_hi = _boundary_terms(grid, k, bcs.face(hi_name), axis, 1)[0]
        links.append(jnp.concatenate([g_lo, _interior_links(grid, k, axis), g_hi], axis=axis))
    return linsolve.Conductances(*links, c=jnp.zeros_like(k))


def rhs(grid: Grid, k: jax.Array, q: jax.Array, bcs: BoundaryConditions) -> jax.Array:
    """Right-hand side (W per cell): sources, boundary fluxes and exterior values."""
    b = q * grid.volumes()
    for name, axis, side in FACES:
        g, heat_in, value = _boundary_terms(grid, k, bcs.face(name), axis, side)
        n = k.shape[axis]
        idx = _boundary_index(n, side)
        pad = [(0, 0)] * 3
        pad[axis] = (idx, n - 1 - idx)
        b = b + jnp.pad(g * value + heat_in, pad)
    return b


def solve(
    grid: Grid,
    k: jax.Array,
    q: jax.Array,
    bcs: BoundaryConditions,
    config: linsolve.MultigridConfig | None = None,
):
    """Steady temperature field.

    Args:
        grid: the grid (cell widths in m).
        k: conductivity per cell, shape ``grid.shape``, W/m/K, > 0.
        q: volumetric source per cell, W/m^3.
        bcs: boundary conditions on the six faces.
        config: multigrid / CG settings (static); default ``MultigridConfig()``.

    Returns:
        ``(T, SolveInfo)``; ``T`` has shape ``grid.shape`` in the unit of the
        boundary temperatures. Differentiable in ``k``, ``q``, the grid and the
        boundary values (implicit differentiation of the converged solve).
    """
    op = operator(grid, k, bcs)
    return linsolve.solve(op, rhs(grid, k, q, bcs), config or linsolve.MultigridConfig())


def boundary_heat_out(grid: Grid, k: jax.Array, bcs: BoundaryConditions, T: jax.Array) -> dict:
    """Net heat leaving the domain through each face, per boundary face cell (W).

    Returns ``{face name: array of the face's shape}``. Positive values leave
    the domain: ``g (T_P - value)`` conducted to the exterior value, minus any
    prescribed flux into the domain.
    """
    out = {}
    for name, axis, side in FACES:
        g, heat_in, value = _boundary_terms(grid, k, bcs.face(name), axis, side)
        idx = _boundary_index(k.shape[axis], side)
        t_b = jax.lax.slice_in_dim(T, idx, idx + 1, axis=axis)
        out[name] = jnp.squeeze(g * (t_b - value) - heat_in, axis)
    return out


def heat_balance(grid: Grid, k: jax.Array, q: jax.Array, bcs: BoundaryConditions, T):
    """``(heat_in, heat_out)`` in W: sources plus prescribed boundary fluxes,
    and heat conducted to the exterior values. Relative balance error is
    ``|heat_in - heat_out| / heat_in``."""
    heat_in = jnp.sum(q * grid.volumes())
    heat_out = jnp.zeros_like(heat_in)
    for name, axis, side in FACES:
        g, face_in, value = _boundary_terms(grid, k, bcs.face(name), axis, side)
        idx = _boundary_index(k.shape[axis], side)
        t_b = jax.lax.slice_in_dim(T, idx, idx + 1, axis=axis)
        heat_in = heat_in + jnp.sum(face_in)
        heat_out = heat_out + jnp.sum(g * (t_b - value))
    return heat_in, heat_out
