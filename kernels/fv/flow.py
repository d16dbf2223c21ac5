"""Steady incompressible laminar Navier–Stokes on a non-uniform Cartesian grid.

Discretisation (finite volume, staggered / MAC):

* Pressure ``p`` at cell centres, shape ``(nx, ny, nz)``; velocity components on
  the faces normal to their axis: ``u`` ``(nx + 1, ny, nz)``, ``v``
  ``(nx, ny + 1, nz)``, ``w`` ``(nx, ny, nz + 1)`` (see :mod:`kernels.fv.grid`).
  Along a periodic axis the last face is the first face again (entries ``0``
  and ``n`` are equal).
* Each velocity has its own control volume, from the centre of the cell on one
  side of its face to the centre of the cell on the other (half a cell at a
  domain boundary). Diffusion is second-order central on the non-uniform grid.
  Convection is first-order upwind in the implicit operator plus, for
  ``convection="central"``, a deferred correction to linear interpolation, so a
  converged solution is the second-order central scheme.
* Solid cells (``solid`` mask, ``True`` = solid) are blocked: every face that
  touches a solid cell has zero normal velocity, and a face whose control
  volume borders solid along a transverse direction sees a no-slip wall on the
  solid cell's face (distance half a cell).

Boundary conditions, one per domain face, in the static :class:`FlowSpec`
(order ``x-, x+, y-, y+, z-, z+``):

``"wall"``       no slip; the wall may move tangentially (``FlowBoundary.velocity``).
``"inlet"``      velocity inlet: the face velocity vector is given (uniform or a
                 profile over the face), normal component fixed.
``"outlet"``     pressure outlet: static pressure ``FlowBoundary.pressure`` on the
                 face, zero normal gradient of velocity; backflow allowed.
``"symmetry"``   zero normal velocity, zero shear.
``"periodic"``   both faces of the axis; a mean pressure gradient can be imposed
                 through ``FlowParams.body_force`` (N/m^3), e.g. for fully
                 developed duct flow.

Pressure–velocity coupling: pseudo-transient SIMPLEC. Each outer iteration
solves the three linearised momentum equations (Picard: fluxes from the previous
iterate) with an implicit pseudo-time term ``rho V / dt`` (``FlowParams.dt``, one
global value, so the outer-iteration count does not scale with the mesh), by
Jacobi-preconditioned BiCGSTAB to a loose relative tolerance; then a pressure
correction with SIMPLEC coefficients ``d = A / (a_P - sum a_nb)`` (a symmetric
7-point conductance operator, solved by the multigrid-preconditioned CG of
:mod:`kernels.solvers.linsolve`) makes the velocity
discretely divergence free, and the pressure is updated by the correction plus
a viscous term ``- mu div u*`` (Cahouet–Chabard), which keeps the outer count
small when viscosity dominates (low Reynolds number, fine meshes). At a fixed
point the pseudo-time terms cancel: the result solves the steady discrete
equations.

Everything a user sweeps (densities, viscosities, boundary values, the solid
mask, the grid widths) is traced; the static :class:`FlowSpec` holds boundary
types, scheme choices and iteration limits. Works under ``jit`` and ``vmap``.
Derivatives: the outer iteration is a ``lax.while_loop`` with no implicit
adjoint, so forward mode (``jax.jvp``, ``jax.jacfwd``) works through
:func:`solve_flow` and reverse mode (``jax.grad``, ``jax.vjp``) does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..diagnostics import SolveInfo
from ..solvers import krylov, linsolve
from ..solvers.fusion import materialized
from ..solvers.multigrid import LINE_SOLVERS
from .grid import Grid

__all__ = [
    "FACES",
    "FlowBoundary",
    "FlowInfo",
    "FlowParams",
    "FlowSpec",
    "FlowState",
    "divergence",
    "flow_boundary",
    "initial_state",
    "residuals",
    "solve_flow",
]

FACES = ("x-", "x+", "y-", "y+", "z-", "z+")
_BC_TYPES = ("wall", "inlet", "outlet", "symmetry", "periodic")
# For the momentum of component a, a permutation that brings axis a first; each
# is its own inverse.
_PERMS = ((0, 1, 2), (1, 0, 2), (2, 1, 0))


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class FlowSpec:
    """Static configuration of :func:`solve_flow`.

    Attributes:
        bc: boundary type per domain face, order ``x-, x+, y-, y+, z-, z+``; one
            of ``"wall"``, ``"inlet"``, ``"outlet"``, ``"symmetry"``,
            ``"periodic"`` (periodic on both faces of an axis or neither).
        convection: ``"central"`` (upwind + deferred correction to central,
            second order) or ``"upwind"`` (first order).
        max_outer: outer (pressure–velocity) iteration limit.
        tol: outer convergence tolerance on both the scaled momentum residual and
            the scaled continuity residual of the momentum predictor.
        relaxation: momentum under-relaxation factor in (0, 1], applied on top of
            the pseudo-time step (1 = pseudo-time only).
        momentum_rtol, momentum_max_iterations: inner BiCGSTAB settings (relative
            to the residual of the previous iterate).
        momentum_mixed_precision: a float64 solve's momentum correction (the
            BiCGSTAB solve for the change of the velocities, to
            ``momentum_rtol``) runs in float32; its residual is computed in
            float64 (and scaled to unit norm before the cast, so that
            float32's range holds the solve and its forward-mode tangents),
            so the outer iteration converges to the same answer to its
            tolerance, but not bit for bit between programs (a batched and a
            single solve differ by about 1e-10): off by default.
        pressure_rtol, pressure_max_iterations: inner CG settings for the
            pressure correction (relative to the predictor's mass imbalance).
        pressure_line_axis: line-relaxation axis of the pressure multigrid
            (:class:`kernels.solvers.linsolve.MultigridConfig`); ``None``: z, or the
            longer of x and y when ``nz == 1``.
        pressure_axis_weights: typical pressure link strength per unit volume
            along x, y, z (``1 / h**2`` for the fluid cells' spacings ``h``), or
            ``None``: the pressure multigrid then coarsens a weakly linked
            axis only once the others have caught up
            (:class:`kernels.solvers.linsolve.MultigridConfig`).
        viscous_pressure: factor of the viscous pressure update
            ``- mu div u*`` (0 gives plain SIMPLEC).
        line_solver: how the pressure multigrid's line systems are factored
            and solved (:class:`kernels.solvers.multigrid.CycleConfig`):
            ``"auto"``, ``"scan"`` or ``"parallel"``.
    """

    bc: tuple[str, str, str, str, str, str]
    convection: str = "central"
    max_outer: int = 500
    tol: float = 1e-8
    relaxation: float = 1.0
    momentum_rtol: float = 1e-1
    momentum_max_iterations: int = 200
    momentum_mixed_precision: bool = False
    pressure_rtol: float = 1e-2
    pressure_max_iterations: int = 200
    pressure_line_axis: int | None = None
    pressure_axis_weights: tuple[float, float, float] | None = None
    viscous_pressure: float = 1.0
    line_solver: str = "auto"

    def __post_init__(self):
        bc = tuple(self.bc)
        object.__setattr__(self, "bc", bc)
        if len(bc) != 6:
            raise ValueError(f"FlowSpec.bc needs 6 entries ({', '.join(FACES)}), got {len(bc)}")
        for face, t in zip(FACES, bc, strict=True):
            if t not in _BC_TYPES:
                raise ValueError(f"FlowSpec.bc[{face!r}] = {t!r}: expected one of {_BC_TYPES}")
        for axis in range(3):
            lo, hi = bc[2 * axis], bc[2 * axis + 1]
            if (lo == "periodic") != (hi == "periodic"):
                raise ValueError(f"FlowSpec.bc: axis {'xyz'[axis]} is periodic on one face only ({lo}, {hi})")
        if "inlet" in bc and "outlet" not in bc:
            raise ValueError("FlowSpec.bc: an inlet needs an outlet (mass could not leave)")
        if self.convection not in ("central", "upwind"):
            raise ValueError(f"FlowSpec.convection = {self.convection!r}: 'central' or 'upwind'")
        if not 0.0 < self.relaxation <= 1.0:
            raise ValueError("FlowSpec.relaxation must lie in (0, 1]")
        if self.line_solver not in LINE_SOLVERS:
            raise ValueError(f"FlowSpec.line_solver = {self.line_solver!r}: one of {LINE_SOLVERS}")

    @property
    def periodic(self) -> tuple[bool, bool, bool]:
        return tuple(self.bc[2 * a] == "periodic" for a in range(3))

    @property
    def closed(self) -> bool:
        """No pressure outlet: pressure is defined up to a constant (mean 0)."""
        return "outlet" not in self.bc


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FlowParams:
    """Traced physical and pseudo-time parameters.

    Attributes:
        rho: density, kg/m^3, scalar.
        mu: dynamic viscosity, Pa s, scalar or per cell ``(nx, ny, nz)``
            (temperature-dependent viscosity; the ``div(mu grad u^T)`` part of
            the stress is omitted, exact for uniform viscosity).
        dt: pseudo-time step, s, one global value. A good choice is the
            convective time across the narrowest passage, ``dt ~ D / U`` (D the
            channel width or hydraulic diameter, U the bulk velocity): measured
            best for a lid-driven cavity (D = L) and a fin-channel unit cell
            alike; several times larger slows the pressure-velocity coupling
            in long narrow channels, much smaller slows the pseudo-time march.
            Without convection (fully developed duct), ``rho D^2 / mu``.
        body_force: body force per volume, N/m^3, shape ``(3,)`` (for periodic
            ducts: the imposed mean pressure gradient ``-dp/dx``).
    """

    rho: jax.Array
    mu: jax.Array
    dt: jax.Array
    body_force: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FlowBoundary:
    """Traced boundary values.

    Attributes:
        velocity: tuple of 6 arrays (faces ``x-, x+, y-, y+, z-, z+``), each the
            velocity vector (m/s, global components) on that face's cells, shape
            ``(3, 1, ny, nz)`` for x faces, ``(3, nx, 1, nz)`` for y faces,
            ``(3, nx, ny, 1)`` for z faces. Used on inlets (all components: the
            normal one is the inflow, signed along the axis) and walls
            (tangential components: moving wall). Ignored elsewhere.
        pressure: static pressure on each face, Pa, shape ``(6,)``; used on
            outlets.
    """

    velocity: tuple
    pressure: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FlowState:
    """Velocity (m/s) on faces and pressure (Pa) at cell centres."""

    u: jax.Array
    v: jax.Array
    w: jax.Array
    p: jax.Array

    @property
    def velocity(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        return (self.u, self.v, self.w)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FlowInfo(SolveInfo):
    """Outer-iteration diagnostics of :func:`solve_flow` (a :class:`SolveInfo`).

    ``residual`` is the larger of the scaled momentum residual and the scaled
    continuity residual of the last momentum predictor; ``history`` its value
    per outer iteration. Additional fields:

    Attributes:
        momentum_residual: ``||b - A u||_2 / || |a_P u| + |b| ||_2`` of the
            returned field (steady equations, all three
            components, unknown faces only).
        continuity_residual: ``||net mass outflow per cell||_2 / ||gross mass
            flux per cell||_2`` of the returned field.
        mass_imbalance: ``|outflow - inflow| / inflow`` over the domain boundary
            of the returned field (0 for a closed domain).
        momentum_history, continuity_history: the two scaled residuals per outer
            iteration (NaN padded).
        momentum_iterations, pressure_iterations: inner Krylov iterations summed
            over all outer iterations.
    """

    momentum_residual: jax.Array
    continuity_residual: jax.Array
    mass_imbalance: jax.Array
    momentum_history: jax.Array
    continuity_history: jax.Array
    momentum_iterations: jax.Array
    pressure_iterations: jax.Array


def flow_boundary(grid: Grid, velocity=None, pressure=None) -> FlowBoundary:
    """Build :class:`FlowBoundary` from per-face values.

    Args:
        grid: the grid (its dtype is used).
        velocity: mapping face name (``"x-"`` ...) to a velocity vector ``(3,)``
            or an array broadcastable to the face shape ``(3, ...)`` documented
            in :class:`FlowBoundary`. Faces not given get zero.
        pressure: mapping face name to static pressure (Pa). Default 0.
    """
    velocity = dict(velocity or {})
    pressure = dict(pressure or {})
    for name in list(velocity) + list(pressure):
        if name not in FACES:
            raise ValueError(f"unknown boundary face {name!r}: expected one of {FACES}")
    dtype = grid.dx.dtype
    vel = []
    for f, name in enumerate(FACES):
        axis = f // 2
        shape = list(grid.shape)
        shape[axis] = 1
        val = jnp.asarray(velocity.get(name, jnp.zeros((3,), dtype)), dtype)
        if val.ndim == 1:
            val = val.reshape((3, 1, 1, 1))
        vel.append(jnp.broadcast_to(val, (3, *shape)))
    pr = jnp.stack([jnp.asarray(pressure.get(name, 0.0), dtype) for name in FACES])
    return FlowBoundary(velocity=tuple(vel), pressure=pr)


# --------------------------------------------------------------------------- small helpers


def _along(x: jax.Array, axis: int) -> jax.Array:
    shape = [1, 1, 1]
    shape[axis] = x.shape[0]
    return x.reshape(shape)


def _sl(x: jax.Array, axis: int, start: int, stop: int) -> jax.Array:
    return lax.slice_in_dim(x, start, stop, axis=axis)


def _pad1(x: jax.Array, axis: int, periodic: bool) -> jax.Array:
    """One ghost entry at each end of ``axis``: wrapped or copied from the edge."""
    n = x.shape[axis]
    if periodic:
        lo, hi = _sl(x, axis, n - 1, n), _sl(x, axis, 0, 1)
    else:
        lo, hi = _sl(x, axis, 0, 1), _sl(x, axis, n - 1, n)
    return jnp.concatenate([lo, x, hi], axis=axis)


def _corner_sum(x, m0, k, nk):
    """Sum of the four cells (two along axis 0, two along axis k) around each
    edge of a padded cell array."""
    return (
        _sl(_sl(x, 0, 0, m0), k, 0, nk + 1)
        + _sl(_sl(x, 0, 1, m0 + 1), k, 0, nk + 1)
        + _sl(_sl(x, 0, 0, m0), k, 1, nk + 2)
        + _sl(_sl(x, 0, 1, m0 + 1), k, 1, nk + 2)
    )


def _pad_const(x: jax.Array, axis: int, lo, hi) -> jax.Array:
    shape = list(x.shape)
    shape[axis] = 1
    lo = jnp.broadcast_to(jnp.asarray(lo, x.dtype), shape)
    hi = jnp.broadcast_to(jnp.asarray(hi, x.dtype), shape)
    return jnp.concatenate([lo, x, hi], axis=axis)


def _shift(x: jax.Array, axis: int, direction: int, periodic: bool) -> jax.Array:
    """Value of the neighbour at index ``i + direction`` (0 beyond a
    non-periodic end)."""
    if periodic:
        return jnp.roll(x, -direction, axis=axis)
    n = x.shape[axis]
    zshape = list(x.shape)
    zshape[axis] = 1
    zero = jnp.zeros(zshape, x.dtype)
    if direction < 0:
        return jnp.concatenate([zero, _sl(x, axis, 0, n - 1)], axis=axis)
    return jnp.concatenate([_sl(x, axis, 1, n), zero], axis=axis)


def _safe_div(num, den):
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, jnp.ones_like(den)), jnp.zeros_like(num))


def _reduce(x: jax.Array, axis: int, periodic: bool) -> jax.Array:
    """Face field -> unknowns (drop the duplicate last face of a periodic axis)."""
    return _sl(x, axis, 0, x.shape[axis] - 1) if periodic else x


def _expand(x: jax.Array, axis: int, periodic: bool) -> jax.Array:
    return jnp.concatenate([x, _sl(x, axis, 0, 1)], axis=axis) if periodic else x


def _ghost(x: jax.Array, periodic, edge: bool) -> jax.Array:
    """``x`` with one ghost layer on every side of all three axes: wrapped on a
    periodic axis, else the edge value copied (``edge``) or zero / False."""
    for axis in range(3):
        if periodic[axis]:
            x = _pad1(x, axis, True)
        elif edge:
            x = _pad1(x, axis, False)
        else:
            x = _pad_const(x, axis, 0, 0)
    return x


def _interior(xg: jax.Array, shape, offset=(0, 0, 0), extra=(0, 0, 0)) -> jax.Array:
    """The block of a ghosted array :func:`_ghost` that starts ``offset``
    cells from the interior's first cell, of ``shape`` plus ``extra``."""
    return lax.slice(
        xg,
        tuple(1 + o for o in offset),
        tuple(1 + o + n + e for o, n, e in zip(offset, shape, extra, strict=True)),
    )


def _neighbour(xg: jax.Array, shape, axis: int = 0, offset: int = 0, extra: int = 0) -> jax.Array:
    """:func:`_interior` of ``xg`` moved ``offset`` cells along ``axis`` and
    ``extra`` cells longer there."""
    o, e = [0, 0, 0], [0, 0, 0]
    o[axis], e[axis] = offset, extra
    return _interior(xg, shape, tuple(o), tuple(e))


def _face_area(grid: Grid, axis: int) -> jax.Array:
    d = grid.spacings
    t1, t2 = [b for b in range(3) if b != axis]
    return _along(d[t1], t1) * _along(d[t2], t2)


def divergence(grid: Grid, u, v, w) -> jax.Array:
    """Net volume outflow of each cell, ``sum_faces u_f A_f`` (m^3/s), shape
    ``(nx, ny, nz)``. Divide by the cell volume for the divergence."""
    out = None
    for axis, f in enumerate((u, v, w)):
        n = f.shape[axis]
        term = (_sl(f, axis, 1, n) - _sl(f, axis, 0, n - 1)) * _face_area(grid, axis)
        out = term if out is None else out + term
    return out


# --------------------------------------------------------------------------- momentum assembly


class _Geom(NamedTuple):
    """Loop-invariant part of the momentum equation of one component, in the
    component's frame (its axis first, see ``_PERMS``); unknowns are the faces
    of that axis with the periodic duplicate dropped (``m0`` along axis 0)."""

    A0: jax.Array  # (1, n1, n2) face area normal to axis 0
    tau: jax.Array  # (m0, n1, n2) rho V / dt
    hw_left: jax.Array  # (m0, 1, 1) half width of the cell left of the face
    hw_right: jax.Array
    Dw: jax.Array  # (m0, n1, n2) diffusion conductance through the CV's low x face
    De: jax.Array
    own_lo: jax.Array  # (m0, 1, 1) 0 where the low/high neighbour is outside
    own_hi: jax.Array
    Dt: tuple  # per transverse axis k = 1, 2: (m0, .., nk + 1 along k, ..) conductances
    d_other: tuple  # per k: width along the other transverse axis (broadcastable)
    w_lo: tuple  # per k: (nk + 1) widths for interpolation to transverse CV faces
    w_hi: tuple
    dc_mask: tuple  # per k: 1 on faces that get the deferred correction
    bnd_mask: tuple  # per k: 1 on wall/inlet boundary faces (value from ub)
    ub: tuple  # per k: tangential boundary velocity on the faces (0 elsewhere)
    fixed: jax.Array  # bool (m0, n1, n2): Dirichlet face
    value: jax.Array
    fixed_ghost: jax.Array  # bool (m0 + 2, n1 + 2, n2 + 2): ``fixed`` with a ghost layer
    value_ghost: jax.Array  # ``value`` likewise (wrapped on periodic axes, False / 0 beyond the others)
    p_lo: jax.Array  # ghost pressures beyond a non-periodic axis-0 boundary
    p_hi: jax.Array
    body: jax.Array  # (m0, n1, n2) body force times CV volume


class _Coefs(NamedTuple):
    """Linearised momentum equation of one component in its frame:
    ``aP x - sum_k lo[k] x[i-1] + hi[k] x[i+1] = b`` on the unknown faces
    (fixed faces: identity rows)."""

    aP: jax.Array
    lo: tuple
    hi: tuple
    b: jax.Array
    d: jax.Array  # SIMPLEC coefficient A / (aP - sum a_nb), 0 on fixed faces
    res: jax.Array  # steady residual b - A x at the state it was built from
    scale: jax.Array  # |aP_steady x| + |b_steady| per face (for scaling)


def _frame(a, spec: FlowSpec):
    perm = _PERMS[a]
    per = tuple(spec.periodic[perm[k]] for k in range(3))
    bct = tuple((spec.bc[2 * perm[k]], spec.bc[2 * perm[k] + 1]) for k in range(3))
    return perm, per, bct


def _geometry(a, mu, solid, grid, params, bnd, spec, inv_dt) -> _Geom:
    """The parts of component ``a``'s momentum equation that do not change
    between outer iterations (diffusion, boundary and solid treatment)."""
    perm, per, bct = _frame(a, spec)
    T = lambda x: jnp.transpose(x, perm)  # noqa: E731
    dtype = grid.dx.dtype
    zero = jnp.zeros((), dtype)
    one = jnp.ones((), dtype)
    rho = jnp.asarray(params.rho, dtype)
    d = tuple(grid.spacings[perm[k]] for k in range(3))
    S = T(solid)
    n0 = S.shape[0]
    per0 = per[0]
    m0 = n0 if per0 else n0 + 1

    # widths of the cells left (ext index i) and right (i + 1) of node i
    if per0:
        wext = jnp.concatenate([d[0][-1:], d[0], d[0][:1]])
    else:
        wext = jnp.concatenate([jnp.zeros((1,), dtype), d[0], jnp.zeros((1,), dtype)])
    w_left = _along(wext[0:m0], 0)
    w_right = _along(wext[1 : m0 + 1], 0)
    h = 0.5 * (w_left + w_right)
    A0 = _along(d[1], 1) * _along(d[2], 2)
    vol = h * A0

    Sx = _pad1(S, 0, per0)
    touch = _sl(Sx, 0, 0, m0) | _sl(Sx, 0, 1, m0 + 1)
    inner = _sl(Sx, 0, 0, m0) & _sl(Sx, 0, 1, m0 + 1)
    FL = jnp.where(S, zero, one)
    MU = jnp.where(S, zero, T(mu))  # the viscosity of solid cells is never used
    MUx = _pad1(MU, 0, per0)
    FLx = _pad1(FL, 0, per0)

    Dw = _safe_div(_sl(MUx, 0, 0, m0) * A0, w_left)
    De = _safe_div(_sl(MUx, 0, 1, m0 + 1) * A0, w_right)
    idx0 = jnp.arange(m0).reshape((m0, 1, 1))
    own_lo = jnp.where(idx0 == 0, zero, one) if not per0 else jnp.ones((m0, 1, 1), dtype)
    own_hi = jnp.where(idx0 == m0 - 1, zero, one) if not per0 else jnp.ones((m0, 1, 1), dtype)

    f_node = jnp.where(inner, zero, one)
    Dts, d_others, w_los, w_his, dc_masks, bnd_masks, ubs = [], [], [], [], [], [], []
    for k in (1, 2):
        o = 3 - k
        nk = S.shape[k]
        if per[k]:
            fpad = _pad1(f_node, k, True)
            dkpad = _pad1(d[k], 0, True)
        else:
            fpad = _pad_const(f_node, k, 0.0, 0.0)
            dkpad = _pad1(d[k], 0, False)
        dlo = _along(dkpad[0 : nk + 1], k)
        dhi = _along(dkpad[1 : nk + 2], k)
        dist = 0.5 * (dlo * _sl(fpad, k, 0, nk + 1) + dhi * _sl(fpad, k, 1, nk + 2))
        # edge viscosity: mean over the fluid cells among the four around the edge
        MUk = _pad1(MUx, k, per[k])
        FLk = _pad1(FLx, k, per[k])
        mu_edge = _safe_div(_corner_sum(MUk, m0, k, nk), _corner_sum(FLk, m0, k, nk))
        d_o = _along(d[o], o)
        Dt = _safe_div(mu_edge * h * d_o, dist)
        idxf = _along(jnp.arange(nk + 1), k)
        ends = (idxf == 0) | (idxf == nk)
        if per[k]:
            dc_mask = jnp.ones(idxf.shape, dtype)
            bnd_mask = jnp.zeros(idxf.shape, dtype)
            ub = jnp.zeros(idxf.shape, dtype)
        else:
            dc_mask = jnp.where(ends, zero, one)
            bnd_mask = jnp.zeros(idxf.shape, dtype)
            face_shape = [m0, S.shape[1], S.shape[2]]
            face_shape[k] = nk + 1
            ub = jnp.zeros(face_shape, dtype)
            for side in (0, 1):
                if bct[k][side] in ("wall", "inlet"):
                    sel = idxf == (0 if side == 0 else nk)
                    bnd_mask = jnp.where(sel, one, bnd_mask)
                    face_u = T(bnd.velocity[2 * perm[k] + side][a])  # size 1 along k
                    fx = _pad1(face_u, 0, per0)
                    u_node = 0.5 * (_sl(fx, 0, 0, m0) + _sl(fx, 0, 1, m0 + 1))
                    ub = jnp.where(sel, u_node, ub)
            # boundary faces do not couple to a neighbour (the wall/inlet value
            # enters through bnd_mask and ub; outlet and symmetry: zero flux)
            Dt = jnp.where(ends & (bnd_mask == 0), zero, Dt)
        Dts.append(Dt)
        d_others.append(d_o)
        w_los.append(dlo)
        w_his.append(dhi)
        dc_masks.append(dc_mask)
        bnd_masks.append(bnd_mask)
        ubs.append(ub)

    # Dirichlet faces: solid-touching, and inlet / wall / symmetry ends of axis 0
    fixed = touch
    value = jnp.zeros(touch.shape, dtype)
    if not per0:
        for side, sel in ((0, idx0 == 0), (1, idx0 == m0 - 1)):
            kind = bct[0][side]
            if kind in ("inlet", "wall", "symmetry"):
                fixed = fixed | sel
            if kind == "inlet":
                un = T(bnd.velocity[2 * a + side][a])  # (1, n1, n2)
                value = jnp.where(sel & ~touch, un, value)

    if per0:
        p_lo = p_hi = zero
    else:
        p_lo = jnp.asarray(bnd.pressure[2 * a], dtype)
        p_hi = jnp.asarray(bnd.pressure[2 * a + 1], dtype)
    body = jnp.asarray(params.body_force, dtype)[a] * vol
    return _Geom(
        A0=A0,
        tau=rho * vol * jnp.asarray(inv_dt, dtype),
        hw_left=0.5 * w_left,
        hw_right=0.5 * w_right,
        Dw=Dw,
        De=De,
        own_lo=own_lo,
        own_hi=own_hi,
        Dt=tuple(Dts),
        d_other=tuple(d_others),
        w_lo=tuple(w_los),
        w_hi=tuple(w_his),
        dc_mask=tuple(dc_masks),
        bnd_mask=tuple(bnd_masks),
        ub=tuple(ubs),
        fixed=fixed,
        value=value,
        fixed_ghost=_ghost(fixed, per, edge=False),
        value_ghost=_ghost(value, per, edge=False),
        p_lo=p_lo,
        p_hi=p_hi,
        body=body,
    )


def _assemble(a, g: _Geom, vel, p, rho, spec, write: bool = False) -> _Coefs:
    """Momentum coefficients of component ``a`` (in its frame) linearised about
    the velocities ``vel`` (global frame), with pressure ``p``.

    Every neighbour is read as a slice of an input with a ghost layer, written
    to memory first (``materialized``), and the links are written before the
    residual and the relaxed system read them: XLA:CPU fuses the whole
    assembly otherwise, and a neighbour built by a shift inside a fusion
    (a concatenate or a pad) costs each element a chain of index tests. At
    64^3 in float64 on a 2-core CPU this took the three components from 26-39
    ms to 10-12 ms each (benchmarks/RESULTS.md). Each stage is computed inside
    its materialisation point, so nothing is copied on the way out.

    ``write``: also write the relaxed system (``aP``, ``b``, ``d``), which the
    flow solver's momentum solve, pressure conductances and multigrid set-up
    all read; the residual alone (:func:`residuals`) does not need it."""
    perm, per, bct = _frame(a, spec)
    T = lambda x: jnp.transpose(x, perm)  # noqa: E731
    dtype = p.dtype
    zero = jnp.zeros((), dtype)
    per0 = per[0]
    shape = g.fixed.shape
    m0 = shape[0]
    central = spec.convection == "central"

    # the inputs with their ghost layers: the component's own velocity on all
    # sides (edge copied where not periodic: links to the outside are zero),
    # the transverse velocities and the pressure along axis 0
    def ghosts(vel, p):
        Ug = _ghost(_reduce(T(vel[a]), 0, per0), per, edge=True)
        Vg = tuple(_pad1(T(vel[perm[k]]), 0, per0) for k in (1, 2))
        if per0:
            Px = _pad1(T(p), 0, True)
        else:
            Px = _pad_const(T(p), 0, g.p_lo, g.p_hi)
        return Ug, Vg, Px

    Ug, Vg, Px = materialized(ghosts, (vel, p), rho)

    def links(Ug, Vg, Px):
        U = partial(_neighbour, Ug, shape)
        # ---- along the component's own axis (control-volume faces at cell centres)
        Un, Uw, Ue = U(), U(0, -1), U(0, 1)
        Fw = rho * 0.5 * (Uw + Un) * g.A0
        Fe = rho * 0.5 * (Un + Ue) * g.A0
        aW = (g.Dw + jnp.maximum(Fw, zero)) * g.own_lo
        aE = (g.De + jnp.maximum(-Fe, zero)) * g.own_hi
        links_lo, links_hi = [aW, None, None], [aE, None, None]
        aP = aW + aE
        b = jnp.zeros(shape, dtype)
        if central:
            b = b + Fw * (0.5 * (Uw + Un) - jnp.where(Fw >= 0, Uw, Un))
            b = b - Fe * (0.5 * (Un + Ue) - jnp.where(Fe >= 0, Un, Ue))

        # ---- transverse axes: CV faces on the cell faces of axis k
        for i, k in enumerate((1, 2)):
            nk = shape[k]
            Vx = Vg[i]  # normal velocity of axis k
            Ft = rho * g.d_other[i] * (_sl(Vx, 0, 0, m0) * g.hw_left + _sl(Vx, 0, 1, m0 + 1) * g.hw_right)
            Dt = g.Dt[i]
            to_hi = Dt + jnp.maximum(-Ft, zero)  # link of the lower node to the upper
            to_lo = Dt + jnp.maximum(Ft, zero)  # link of the upper node to the lower
            a_lo = _sl(to_lo, k, 0, nk)  # node j, through face j
            a_hi = _sl(to_hi, k, 1, nk + 1)  # node j, through face j + 1
            if not per[k]:
                # wall / inlet faces: the link goes to the boundary value
                idx = _along(jnp.arange(nk), k)
                first, last = idx == 0, idx == nk - 1
                bl = jnp.where(first, _sl(g.bnd_mask[i], k, 0, 1) * a_lo, zero)
                bh = jnp.where(last, _sl(g.bnd_mask[i], k, nk, nk + 1) * a_hi, zero)
                aP = aP + (bl + bh)
                b = b + (bl * _sl(g.ub[i], k, 0, 1) + bh * _sl(g.ub[i], k, nk, nk + 1))
                a_lo = jnp.where(first, zero, a_lo)
                a_hi = jnp.where(last, zero, a_hi)
            if central:
                Ulo, Uhi = U(k, -1, 1), U(k, 0, 1)
                wl, wh = g.w_lo[i], g.w_hi[i]
                uc = (Ulo * wh + Uhi * wl) / (wl + wh)
                corr = g.dc_mask[i] * Ft * (uc - jnp.where(Ft >= 0, Ulo, Uhi))
                b = b + _sl(corr, k, 0, nk) - _sl(corr, k, 1, nk + 1)
            links_lo[k], links_hi[k] = a_lo, a_hi
            aP = aP + a_lo + a_hi

        # ---- forces
        force = (_sl(Px, 0, 0, m0) - _sl(Px, 0, 1, m0 + 1)) * g.A0 + g.body
        b = b + force

        # ---- known neighbours to the right-hand side; the rest stay links
        fixed = g.fixed
        one = jnp.ones((), dtype)
        sum_links = jnp.zeros(shape, dtype)
        for k in range(3):
            o_lo, o_hi = [0, 0, 0], [0, 0, 0]
            o_lo[k], o_hi[k] = -1, 1
            nb_lo = _interior(g.fixed_ghost, shape, tuple(o_lo))
            nb_hi = _interior(g.fixed_ghost, shape, tuple(o_hi))
            val_lo = jnp.where(nb_lo & ~fixed, _interior(g.value_ghost, shape, tuple(o_lo)), zero)
            val_hi = jnp.where(nb_hi & ~fixed, _interior(g.value_ghost, shape, tuple(o_hi)), zero)
            b = b + links_lo[k] * val_lo + links_hi[k] * val_hi
            links_lo[k] = links_lo[k] * jnp.where(nb_lo | fixed, zero, one)
            links_hi[k] = links_hi[k] * jnp.where(nb_hi | fixed, zero, one)
            sum_links = sum_links + links_lo[k] + links_hi[k]
        return links_lo, links_hi, aP, b, sum_links

    links_lo, links_hi, aP, b, sum_links = materialized(links, (Ug, Vg, Px), rho)
    U = partial(_neighbour, Ug, shape)
    fixed = g.fixed
    one = jnp.ones((), dtype)
    Un = U()

    # steady residual at the current iterate (unknown faces)
    Ax = aP * Un
    for k in range(3):
        Ax = Ax - links_lo[k] * U(k, -1) - links_hi[k] * U(k, 1)
    res = jnp.where(fixed, zero, b - Ax)
    scale = jnp.where(fixed, zero, jnp.abs(aP * Un) + jnp.abs(b))

    # pseudo time and relaxation
    def relaxed(aP, b, sum_links, Un):
        alpha = spec.relaxation
        aP_tot = aP / alpha + g.tau
        b = b + (g.tau + aP * ((1.0 - alpha) / alpha)) * Un
        dcoef = jnp.where(fixed, zero, _safe_div(g.A0, aP_tot - sum_links))
        aP_tot = jnp.where(fixed, one, aP_tot)
        b = jnp.where(fixed, g.value, b)
        return aP_tot, b, dcoef

    args = (aP, b, sum_links, Un)
    aP_tot, b, dcoef = materialized(relaxed, args, rho) if write else relaxed(*args)
    return _Coefs(
        aP=aP_tot,
        lo=tuple(links_lo),
        hi=tuple(links_hi),
        b=b,
        d=dcoef,
        res=res,
        scale=scale,
    )


def _apply(c: _Coefs, x: jax.Array, periodic) -> jax.Array:
    y = c.aP * x
    for k in range(3):
        y = y - c.lo[k] * _shift(x, k, -1, periodic[k]) - c.hi[k] * _shift(x, k, 1, periodic[k])
    return y


# --------------------------------------------------------------------------- pressure correction


def _pressure_apply(g, c, x, periodic):
    """``c x + sum_faces g (x - x_nb)``, exterior value 0 on non-periodic ends."""
    y = c * x
    for axis in range(3):
        ga = g[axis]
        n = ga.shape[axis]
        glo, ghi = _sl(ga, axis, 0, n - 1), _sl(ga, axis, 1, n)
        y = y + glo * (x - _shift(x, axis, -1, periodic[axis]))
        y = y + ghi * (x - _shift(x, axis, 1, periodic[axis]))
    return y


def _pressure_diag(g, c):
    out = c
    for axis in range(3):
        n = g[axis].shape[axis]
        out = out + _sl(g[axis], axis, 0, n - 1) + _sl(g[axis], axis, 1, n)
    return out


def _line_axis(shape, spec: FlowSpec) -> int:
    if spec.pressure_line_axis is not None:
        return spec.pressure_line_axis
    return 2 if shape[2] > 1 else (0 if shape[0] >= shape[1] else 1)


def _solve_pressure(g, c, rhs, periodic, spec: FlowSpec):
    """Solve the pressure-correction equation ``c x + sum_f g_f (x - x_nb) = rhs``
    (symmetric 7-point conductance operator, exterior value 0 beyond a
    non-periodic boundary link). The one place that picks the linear solver:
    multigrid-preconditioned CG (:mod:`kernels.solvers.linsolve`) unless an axis is
    periodic with more than one cell (not supported there): then Jacobi CG."""
    shape = rhs.shape
    wrap = [periodic[a] and shape[a] > 1 for a in range(3)]
    if not any(wrap):
        # a periodic axis of one cell links each cell to itself: no coupling
        links = [jnp.zeros_like(g[a]) if periodic[a] else g[a] for a in range(3)]
        config = linsolve.MultigridConfig(
            line_axis=_line_axis(shape, spec),
            tol=spec.pressure_rtol,
            max_iterations=spec.pressure_max_iterations,
            line_solver=spec.line_solver,
            axis_weights=spec.pressure_axis_weights,
            # the hierarchy (with its dense coarsest-level factorisation) is
            # rebuilt every outer iteration: coarsen until a small dense solve.
            # 128 rather than 64 cells: the semi-coarsening of axis_weights adds
            # a level, and one fewer compiles the flow program 1-1.5 s faster
            # (unit cell, 49k cells) with the same CG iterations
            coarse_size=128,
        )
        return linsolve.solve(linsolve.Conductances(*links, c=c), rhs, config)
    diag = _pressure_diag(g, c)
    inv = _safe_div(jnp.ones_like(diag), diag)
    return krylov.cg(
        lambda x: _pressure_apply(g, c, x, periodic),
        rhs,
        lambda r: inv * r,
        rtol=spec.pressure_rtol,
        max_iterations=spec.pressure_max_iterations,
    )


# --------------------------------------------------------------------------- outer iteration


def _fluid_mean(x, fluid, nfluid):
    return jnp.sum(jnp.where(fluid, x, jnp.zeros((), x.dtype))) / nfluid


def _norm(x):
    return jnp.sqrt(jnp.sum(x * x))


def initial_state(grid: Grid, solid, bnd: FlowBoundary, spec: FlowSpec) -> FlowState:
    """Zero velocity and pressure, with inlet velocities set and periodic
    duplicate faces consistent."""
    dtype = grid.dx.dtype
    nx, ny, nz = grid.shape
    solid = jnp.asarray(solid, bool)
    vel = []
    for a in range(3):
        shape = [nx, ny, nz]
        shape[a] += 1
        f = jnp.zeros(shape, dtype)
        for side in range(2):
            if spec.bc[2 * a + side] == "inlet":
                idx = jnp.arange(shape[a])
                sel = _along(idx == (0 if side == 0 else shape[a] - 1), a)
                f = jnp.where(sel, bnd.velocity[2 * a + side][a], f)
        sx = _pad1(solid, a, spec.periodic[a])
        touch = _sl(sx, a, 0, shape[a]) | _sl(sx, a, 1, shape[a] + 1)
        vel.append(jnp.where(touch, jnp.zeros((), dtype), f))
    return FlowState(vel[0], vel[1], vel[2], jnp.zeros((nx, ny, nz), dtype))


def _cell_gross_flux(grid, rho, vel):
    out = None
    for axis, f in enumerate(vel):
        n = f.shape[axis]
        af = jnp.abs(f) * _face_area(grid, axis)
        term = 0.5 * (_sl(af, axis, 0, n - 1) + _sl(af, axis, 1, n))
        out = term if out is None else out + term
    return rho * out


def _mass_imbalance(grid, rho, vel, spec):
    net = jnp.zeros((), grid.dx.dtype)
    gross = jnp.zeros((), grid.dx.dtype)
    for axis, f in enumerate(vel):
        if spec.periodic[axis]:
            continue
        n = f.shape[axis]
        area = _face_area(grid, axis)
        lo = _sl(f, axis, 0, 1) * area
        hi = _sl(f, axis, n - 1, n) * area
        net = net + jnp.sum(hi) - jnp.sum(lo)
        gross = gross + jnp.sum(jnp.abs(hi)) + jnp.sum(jnp.abs(lo))
    through = 0.5 * rho * gross
    return jnp.where(through > 0, jnp.abs(rho * net) / jnp.where(through > 0, through, 1.0), 0.0)


def _momentum_residual(coefs):
    num = jnp.sqrt(sum(jnp.sum(c.res * c.res) for c in coefs))
    den = jnp.sqrt(sum(jnp.sum(c.scale * c.scale) for c in coefs))
    tiny = jnp.asarray(jnp.finfo(den.dtype).tiny, den.dtype)
    return num / jnp.maximum(den, tiny)


def _geometries(grid: Grid, solid, params: FlowParams, bnd: FlowBoundary, spec: FlowSpec):
    dtype = grid.dx.dtype
    mu = jnp.broadcast_to(jnp.asarray(params.mu, dtype), grid.shape)
    inv_dt = 1.0 / jnp.asarray(params.dt, dtype)
    solid = jnp.asarray(solid, bool)
    return tuple(_geometry(a, mu, solid, grid, params, bnd, spec, inv_dt) for a in range(3))


def residuals(
    grid: Grid, solid, params: FlowParams, bnd: FlowBoundary, spec: FlowSpec, state: FlowState
) -> tuple[jax.Array, jax.Array]:
    """The convergence measures :func:`solve_flow` uses, for any ``state``:
    the scaled steady momentum residual ``||b - A u|| / ||(|A u| + |b|)||``
    over the three components' unknown faces, and the continuity residual
    ``||rho div u|| / ||gross mass flux per cell||``. Both are dimensionless."""
    dtype = grid.dx.dtype
    rho = jnp.asarray(params.rho, dtype)
    vel = (state.u, state.v, state.w)
    geoms = _geometries(grid, solid, params, bnd, spec)
    coefs = tuple(_assemble(a, geoms[a], vel, state.p, rho, spec) for a in range(3))
    tiny = jnp.asarray(jnp.finfo(dtype).tiny, dtype)
    cont = _norm(rho * divergence(grid, *vel)) / jnp.maximum(_norm(_cell_gross_flux(grid, rho, vel)), tiny)
    return _momentum_residual(coefs), cont


def solve_flow(
    grid: Grid,
    solid,
    params: FlowParams,
    bnd: FlowBoundary,
    spec: FlowSpec,
    init: FlowState | None = None,
) -> tuple[FlowState, FlowInfo]:
    """Solve steady incompressible laminar flow.

    Args:
        grid: non-uniform Cartesian grid (m); its dtype sets the precision.
        solid: bool/int mask ``(nx, ny, nz)``, nonzero = solid (blocked) cell.
        params: :class:`FlowParams` (rho, mu, pseudo-time step, body force).
        bnd: :class:`FlowBoundary` values (see :func:`flow_boundary`).
        spec: static :class:`FlowSpec`.
        init: optional initial :class:`FlowState` (default: :func:`initial_state`).

    Returns:
        ``(FlowState, FlowInfo)``: velocities (m/s) on faces, pressure (Pa) in
        cells (0 in solid cells; mean 0 over the fluid for a closed domain),
        and diagnostics. Check ``info.converged``.
    """
    dtype = grid.dx.dtype
    shape = grid.shape
    solid = jnp.asarray(solid, bool)
    fluid = ~solid
    nfluid = jnp.maximum(jnp.sum(fluid.astype(dtype)), jnp.ones((), dtype))
    rho = jnp.asarray(params.rho, dtype)
    mu = jnp.broadcast_to(jnp.asarray(params.mu, dtype), shape)
    periodic = spec.periodic
    zero = jnp.zeros((), dtype)
    vols = grid.volumes()
    if init is None:
        init = initial_state(grid, solid, bnd, spec)

    geoms = _geometries(grid, solid, params, bnd, spec)
    frames = tuple(_frame(a, spec) for a in range(3))

    def assemble(vel, p):
        return tuple(_assemble(a, geoms[a], vel, p, rho, spec, write=True) for a in range(3))

    def to_global(a, x):
        """Unknowns of component ``a`` (its frame) -> face field (global frame)."""
        perm, per, _ = frames[a]
        return jnp.transpose(_expand(x, 0, per[0]), perm)

    def step(vel, p, coefs):
        x0 = []
        for a, g in enumerate(geoms):
            perm, per, _ = frames[a]
            xa = _reduce(jnp.transpose(vel[a], perm), 0, per[0])
            x0.append(jnp.where(g.fixed, g.value, xa))
        bvec = tuple(c.b for c in coefs)

        def matvec_of(cs):
            def matvec(x):
                return tuple(_apply(c, xa, frames[a][1]) for a, (c, xa) in enumerate(zip(cs, x, strict=True)))

            return matvec

        # stop relative to the initial residual: solve for the correction from
        # zero; the correction needs only momentum_rtol, so float32 serves a
        # float64 solve (the residual r0 stays float64)
        r0 = tuple(bb - ax for bb, ax in zip(bvec, matvec_of(coefs)(tuple(x0)), strict=True))
        if spec.momentum_mixed_precision and dtype != jnp.float32:
            cs = tuple(
                c._replace(
                    aP=c.aP.astype(jnp.float32),
                    lo=tuple(v.astype(jnp.float32) for v in c.lo),
                    hi=tuple(v.astype(jnp.float32) for v in c.hi),
                )
                for c in coefs
            )
            # to unit norm first: the system is linear, and float32's range then holds the solve's
            # dot products and their squares (forward mode divides by them: unscaled, a residual
            # near convergence underflows there and the tangent is NaN)
            rscale = jnp.sqrt(sum(jnp.vdot(r, r) for r in r0))
            rscale = jnp.where(rscale > 0, rscale, jnp.ones_like(rscale))
            r0 = tuple((r / rscale).astype(jnp.float32) for r in r0)
        else:
            cs = coefs
            rscale = None
        dxs, minfo = krylov.bicgstab(
            matvec_of(cs),
            r0,
            lambda r: tuple(ra / c.aP for c, ra in zip(cs, r, strict=True)),
            rtol=spec.momentum_rtol,
            max_iterations=spec.momentum_max_iterations,
        )
        if rscale is not None:
            dxs = tuple(dxa.astype(dtype) * rscale for dxa in dxs)
        xs = tuple(xa + dxa.astype(dtype) for xa, dxa in zip(x0, dxs, strict=True))
        ustar = tuple(
            to_global(a, jnp.where(g.fixed, g.value, xa)) for a, (g, xa) in enumerate(zip(geoms, xs, strict=True))
        )
        mstar = rho * divergence(grid, *ustar)
        dfull = tuple(to_global(a, c.d) for a, c in enumerate(coefs))
        g = tuple(rho * _face_area(grid, a) * dfull[a] for a in range(3))
        gmean = sum(jnp.sum(ga) for ga in g) / (3.0 * nfluid)
        c_diag = jnp.where(solid, gmean, zero)
        if spec.closed:
            # pressure is defined up to a constant: pin one fluid cell. The
            # right-hand side sums to zero, so the pinned solution solves the
            # singular system exactly (the pinned cell's correction is 0).
            first = jnp.argmax(fluid.reshape(-1))
            pin = (jnp.arange(fluid.size) == first).reshape(fluid.shape)
            c_diag = jnp.where(pin, gmean, c_diag)
        rhs = -mstar
        if spec.closed:
            rhs = jnp.where(fluid, rhs - _fluid_mean(rhs, fluid, nfluid), zero)
        phi, pinfo = _solve_pressure(g, c_diag, rhs, periodic, spec)
        phi = jnp.where(fluid, phi, zero)
        new_vel = []
        for a in range(3):
            n = shape[a]
            if periodic[a]:
                px = _pad1(phi, a, True)
            else:
                px = _pad_const(phi, a, 0.0, 0.0)
            grad = _sl(px, a, 1, n + 2) - _sl(px, a, 0, n + 1)  # right - left per face
            new_vel.append(ustar[a] - dfull[a] * grad)
        p_new = p + phi - spec.viscous_pressure * mu * mstar / (rho * vols)
        p_new = jnp.where(fluid, p_new, zero)
        if spec.closed:
            p_new = jnp.where(fluid, p_new - _fluid_mean(p_new, fluid, nfluid), zero)
        gross = _cell_gross_flux(grid, rho, ustar)
        tiny = jnp.asarray(jnp.finfo(dtype).tiny, dtype)
        cont = _norm(mstar) / jnp.maximum(_norm(gross), tiny)
        return tuple(new_vel), p_new, cont, minfo.iterations, pinfo.iterations

    nmax = spec.max_outer
    hist0 = jnp.full((nmax + 1,), jnp.nan, dtype)
    tol = jnp.asarray(spec.tol, dtype)
    izero = jnp.zeros((), jnp.int32)
    # One assembly per pass, at the top: it gives the residual of the current
    # state (convergence test) and the linearisation for the next step. The pass
    # that finds convergence (or the iteration limit) keeps its state unchanged.
    state = (init.velocity, init.p, izero, jnp.zeros((), bool), jnp.asarray(jnp.nan, dtype))
    state = state + (hist0, hist0, hist0, izero, izero, jnp.asarray(jnp.nan, dtype))

    def cond(s):
        return ~s[3]

    def body(s):
        vel, p, k, _, cont, hist, mhist, chist, mit, pit, _ = s
        # the coefficients are read by the momentum solve, the pressure conductances and the pressure
        # multigrid's set-up: written once inside the assembly (write=True), not recomputed inside each
        # (kernels.solvers.fusion). The residual's two fields are only summed: not written at all.
        coefs = assemble(vel, p)
        mres = _momentum_residual(coefs)
        mhist = mhist.at[k].set(mres)
        hist = hist.at[k].set(jnp.fmax(mres, cont))
        done = ((mres < tol) & (cont < tol)) | (k >= nmax) | ~jnp.isfinite(mres)
        vel_n, p_n, cont_n, mi, pi = step(vel, p, coefs)
        vel = tuple(jnp.where(done, a, b) for a, b in zip(vel, vel_n, strict=True))
        p = jnp.where(done, p, p_n)
        chist = jnp.where(done, chist, chist.at[k + 1].set(cont_n))
        cont = jnp.where(done, cont, cont_n)
        mit = jnp.where(done, mit, mit + mi)
        pit = jnp.where(done, pit, pit + pi)
        k = jnp.where(done, k, k + 1)
        return (vel, p, k, done, cont, hist, mhist, chist, mit, pit, mres)

    vel, p, k, _, cont, hist, mhist, chist, mit, pit, mres = lax.while_loop(cond, body, state)
    mstate = rho * divergence(grid, *vel)
    gross = _cell_gross_flux(grid, rho, vel)
    tiny = jnp.asarray(jnp.finfo(dtype).tiny, dtype)
    cont_final = _norm(mstate) / jnp.maximum(_norm(gross), tiny)
    resid = jnp.fmax(mres, cont)
    info = FlowInfo(
        converged=(mres < tol) & (cont < tol),
        iterations=k,
        residual=resid,
        history=hist,
        momentum_residual=mres,
        continuity_residual=cont_final,
        mass_imbalance=_mass_imbalance(grid, rho, vel, spec),
        momentum_history=mhist,
        continuity_history=chist,
        momentum_iterations=mit,
        pressure_iterations=pit,
    )
    return FlowState(vel[0], vel[1], vel[2], p), info
