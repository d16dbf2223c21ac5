"""Matrix-free solves of 7-point advection-diffusion operators.

The operator adds upwind advection by face flows to a conductance operator
(:class:`kernels.solvers.linsolve.Conductances`)::

    (A x)_P = c_P x_P + sum_faces g_f (x_P - x_nb)
              + sum_faces [F_f^+ x_P - F_f^- x_nb]   (outflow minus inflow)

where ``F`` is the face flow of heat capacity (W/K: rho cp u A), positive
along +axis, ``F^+`` the part leaving the cell and ``F^-`` the part entering.
Face flows on boundary faces carry fluid in or out of the domain; inflow
values enter the right-hand side (the caller adds ``F_in x_in``). The matrix
is an M-matrix for any flow, non-symmetric when ``F != 0``.

Solver: BiCGSTAB, right-preconditioned by one multigrid V-cycle whose
smoother is red-black line Gauss-Seidel with exact (non-symmetric) tridiagonal
solves along the line axis — put the line axis along the main flow direction,
where upwind advection makes a line solve exact for pure advection. Coarse
operators: diffusion links coarsened as a resistor network (as in
``kernels.solvers.linsolve``), face flows summed over the merged faces, which keeps the
coarse advection exactly conservative.

Derivatives: ``solve`` is wrapped in ``jax.lax.custom_linear_solve``. Its
transpose solve uses the same operator with the face flows negated and each
cell's net outflow added to the diagonal (:func:`transposed`), the exact
transpose for any flows (the net outflow is zero where the flow is
divergence-free).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax

from ..diagnostics import SolveInfo
from ..solvers.linsolve import (
    Conductances,
    _coarsen_factors,
    _from_internal,
    _low_high,
    _pair_sum,
    _prolong,
    _restrict,
    _series_parallel_coarsen,
    _shifted,
    _thomas_solve,
    _to_internal,
    default_tolerance,
)

__all__ = [
    "AdvectionDiffusion",
    "KrylovConfig",
    "apply",
    "bicgstab",
    "solve",
    "multigrid_setup",
    "net_outflow",
    "transposed",
]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class AdvectionDiffusion:
    """Diffusion links plus face heat-capacity flows.

    Attributes:
        diffusion: the symmetric part (face conductances and diagonal ``c``), W/K;
            here ``c`` may be negative where it takes back part of the
            advective diagonal (backflow that brings the cell's own
            temperature, :func:`kernels.fv.energy.backflow`), as long as each
            row stays diagonally dominant.
        fx, fy, fz: face flows rho cp u A, W/K, face-field shapes
            ``(nx + 1, ny, nz)``, ``(nx, ny + 1, nz)``, ``(nx, ny, nz + 1)``.
    """

    diffusion: Conductances
    fx: jax.Array
    fy: jax.Array
    fz: jax.Array

    @property
    def shape(self):
        return self.diffusion.shape

    def flows(self):
        return (self.fx, self.fy, self.fz)


def _coefficients(op: AdvectionDiffusion):
    """Diagonal and, per axis, the (low, high) neighbour coefficients per cell."""
    d = op.diffusion.c
    neighbours = []
    for axis, (g, f) in enumerate(zip(op.diffusion.links(), op.flows(), strict=True)):
        g_lo, g_hi = _low_high(g, axis)
        f_lo, f_hi = _low_high(f, axis)
        # outflow through the high face (f_hi > 0) and through the low face (f_lo < 0)
        d = d + g_lo + g_hi + jnp.maximum(f_hi, 0.0) + jnp.maximum(-f_lo, 0.0)
        # inflow from the low neighbour (f_lo > 0) and from the high neighbour (f_hi < 0)
        neighbours.append((g_lo + jnp.maximum(f_lo, 0.0), g_hi + jnp.maximum(-f_hi, 0.0)))
    return d, neighbours


def _neighbour_sum(neighbours, x, axes):
    out = jnp.zeros_like(x)
    for axis in axes:
        w_lo, w_hi = neighbours[axis]
        out = out + w_lo * _shifted(x, axis, -1) + w_hi * _shifted(x, axis, +1)
    return out


def apply(op: AdvectionDiffusion, x: jax.Array) -> jax.Array:
    """``A x`` (boundary inflow values are not included: they belong in ``b``)."""
    d, nb = _coefficients(op)
    return d * x - _neighbour_sum(nb, x, (0, 1, 2))


def negated(op: AdvectionDiffusion) -> AdvectionDiffusion:
    """The operator with reversed flows: ``A^T`` for divergence-free flows."""
    return AdvectionDiffusion(op.diffusion, -op.fx, -op.fy, -op.fz)


def net_outflow(op: AdvectionDiffusion) -> jax.Array:
    """Per cell: face flows out minus flows in (W/K), boundary faces included."""
    out = jnp.zeros_like(op.diffusion.c)
    for axis, f in enumerate(op.flows()):
        n = f.shape[axis]
        out = out + lax.slice_in_dim(f, 1, n, axis=axis) - lax.slice_in_dim(f, 0, n - 1, axis=axis)
    return out


def transposed(op: AdvectionDiffusion) -> AdvectionDiffusion:
    """``A^T`` for any flows: the reversed flows, with the net outflow of each
    cell added to the diagonal (zero for divergence-free flows)."""
    g = op.diffusion
    return AdvectionDiffusion(Conductances(g.gx, g.gy, g.gz, g.c + net_outflow(op)), -op.fx, -op.fy, -op.fz)


# --------------------------------------------------------------------------- multigrid


@dataclass(frozen=True)
class KrylovConfig:
    """Static settings of the preconditioned BiCGSTAB solve.

    Attributes:
        line_axis: axis of the exact line solves (put it along the main flow).
        sweeps: red-black line Gauss-Seidel sweeps before and after the coarse
            correction.
        coarse_size: coarsening stops at this many cells (dense LU below).
        tol: relative residual ``||b - A x|| / ||b||``; None: 1e-10 (float64),
            1e-5 (float32).
        max_iterations: BiCGSTAB iteration limit.
    """

    line_axis: int = 0
    sweeps: int = 1
    coarse_size: int = 512
    max_levels: int = 12
    tol: float | None = None
    max_iterations: int = 300

    def tolerance(self, dtype) -> float:
        return default_tolerance(self.tol, dtype)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class _Level:
    op: AdvectionDiffusion
    diag: jax.Array
    neighbours: tuple
    lower: jax.Array
    cprime: jax.Array
    inv_denom: jax.Array
    color: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Hierarchy:
    levels: tuple
    coarse_lu: tuple


def _permute(op: AdvectionDiffusion, line_axis: int) -> AdvectionDiffusion:
    order = [line_axis] + [a for a in range(3) if a != line_axis]
    g = op.diffusion
    links = g.links()
    flows = op.flows()
    return AdvectionDiffusion(
        Conductances(*[jnp.transpose(links[a], order) for a in order], c=jnp.transpose(g.c, order)),
        *[jnp.transpose(flows[a], order) for a in order],
    )


def _coarsen(op: AdvectionDiffusion, factors) -> AdvectionDiffusion:
    g = _series_parallel_coarsen(op.diffusion, factors)
    flows = []
    for axis, f in enumerate(op.flows()):
        if factors[axis] == 2:
            f = lax.slice_in_dim(f, 0, f.shape[axis], stride=2, axis=axis)  # faces on coarse faces
        for t in range(3):
            if t != axis and factors[t] == 2:
                f = _pair_sum(f, t)
        flows.append(f)
    return AdvectionDiffusion(g, *flows)


def _make_level(op: AdvectionDiffusion) -> _Level:
    d, nb = _coefficients(op)
    w_lo, w_hi = nb[0]
    lower = -w_lo  # row i couples to i - 1 (row 0: boundary, zero neighbour)
    upper = -w_hi
    lower = lower.at[0].set(0.0)
    upper = upper.at[-1].set(0.0)

    def step(cp_prev, inp):
        d_i, l_i, u_i = inp
        inv = 1.0 / (d_i - l_i * cp_prev)
        return u_i * inv, (u_i * inv, inv)

    _, (cprime, inv_denom) = lax.scan(step, jnp.zeros_like(d[0]), (d, lower, upper))
    n1, n2 = op.shape[1], op.shape[2]
    color = jnp.broadcast_to(((jnp.arange(n1)[:, None] + jnp.arange(n2)[None, :]) % 2)[None], op.shape)
    return _Level(op, d, tuple(nb), lower, cprime, inv_denom, color)


def multigrid_setup(op: AdvectionDiffusion, config: KrylovConfig) -> Hierarchy:
    current = _permute(op, config.line_axis)
    levels = []
    for _ in range(config.max_levels):
        levels.append(_make_level(current))
        f = _coarsen_factors(current.shape, line_coarsen_columns=256)
        if f == (1, 1, 1) or current.diffusion.c.size <= config.coarse_size:
            break
        current = _coarsen(current, f)
    coarse = levels[-1].op
    n = coarse.diffusion.c.size
    eye = jnp.eye(n, dtype=coarse.diffusion.c.dtype).reshape((n,) + coarse.shape)
    dense = jax.vmap(lambda e: apply(coarse, e).reshape(-1))(eye).T
    return Hierarchy(tuple(levels), jax.scipy.linalg.lu_factor(dense))


def _smooth(level: _Level, x, b, colors):
    for col in colors:
        rhs = b + _neighbour_sum(level.neighbours, x, (1, 2))
        x = jnp.where(level.color == col, _thomas_solve(level, rhs), x)
    return x


def _v_cycle(hier: Hierarchy, config: KrylovConfig, r, depth=0):
    levels = hier.levels
    level = levels[depth]
    if depth == len(levels) - 1:
        return jax.scipy.linalg.lu_solve(hier.coarse_lu, r.reshape(-1)).reshape(r.shape)
    x = jnp.zeros_like(r)
    for _ in range(config.sweeps):
        x = _smooth(level, x, r, (0, 1))
    res = r - (level.diag * x - _neighbour_sum(level.neighbours, x, (0, 1, 2)))
    coarse_shape = levels[depth + 1].op.shape
    f = tuple(n // m for n, m in zip(level.op.shape, coarse_shape, strict=True))
    x = x + _prolong(_v_cycle(hier, config, _restrict(res, f), depth + 1), f)
    for _ in range(config.sweeps):
        x = _smooth(level, x, r, (1, 0))
    return x


# --------------------------------------------------------------------------- Krylov


def bicgstab(matvec, b, precond, tol, max_iterations, x0=None):
    """Right-preconditioned BiCGSTAB in a ``lax.while_loop``.

    Returns ``(x, SolveInfo)``; the residual is ``||b - A x||_2 / ||b||_2``,
    recomputed as the recursively updated one. A breakdown or a non-finite
    value stops the loop with ``converged=False`` unless the tolerance was met.
    """
    dtype = b.dtype
    x = jnp.zeros_like(b) if x0 is None else x0
    r = b if x0 is None else b - matvec(x)
    bnorm = jnp.sqrt(jnp.vdot(b, b))
    scale = jnp.where(bnorm > 0, bnorm, jnp.ones_like(bnorm))
    res0 = jnp.sqrt(jnp.vdot(r, r)) / scale
    history = jnp.full((max_iterations + 1,), jnp.nan, dtype).at[0].set(res0)
    r_hat = r
    one = jnp.ones((), dtype)
    state = (
        x,
        r,
        jnp.zeros_like(b),
        jnp.zeros_like(b),
        one,
        one,
        one,
        jnp.asarray(0, jnp.int32),
        res0,
        history,
        jnp.asarray(False),
    )

    def cond(s):
        k, res, broke = s[7], s[8], s[10]
        return (k < max_iterations) & (res > tol) & jnp.isfinite(res) & ~broke

    def body(s):
        x, r, p, v, rho, alpha, omega, k, _, hist, _ = s
        rho_new = jnp.vdot(r_hat, r)
        beta = (rho_new / rho) * (alpha / omega)
        p = r + beta * (p - omega * v)
        p_hat = precond(p)
        v = matvec(p_hat)
        alpha = rho_new / jnp.vdot(r_hat, v)
        s_vec = r - alpha * v
        s_hat = precond(s_vec)
        t = matvec(s_hat)
        tt = jnp.vdot(t, t)
        omega = jnp.where(tt > 0, jnp.vdot(t, s_vec) / jnp.where(tt > 0, tt, one), jnp.zeros_like(tt))
        x = x + alpha * p_hat + omega * s_hat
        r = s_vec - omega * t
        res = jnp.sqrt(jnp.vdot(r, r)) / scale
        broke = (omega == 0) | (rho_new == 0) | ~jnp.isfinite(alpha)
        hist = hist.at[k + 1].set(res)
        return x, r, p, v, rho_new, alpha, omega, k + 1, res, hist, broke

    x, r, *_, k, res, hist, _ = lax.while_loop(cond, body, state)
    converged = (res <= tol) & jnp.isfinite(res)
    return x, SolveInfo(converged=converged, iterations=k, residual=res, history=hist)


def _raw_solve(op: AdvectionDiffusion, b, config: KrylovConfig, x0=None, hier=None, tol=None):
    """BiCGSTAB on ``op``; ``hier`` (from :func:`multigrid_setup` of the same
    operator) is reused when given, and ``tol`` (may be traced) overrides the
    config's tolerance."""
    tol = config.tolerance(b.dtype) if tol is None else tol
    op_c = lax.stop_gradient(op)
    hier = multigrid_setup(op_c, config) if hier is None else hier
    fine = hier.levels[0]

    def matvec(v):
        return fine.diag * v - _neighbour_sum(fine.neighbours, v, (0, 1, 2))

    x0i = None if x0 is None else _to_internal(x0, config.line_axis)
    x, info = bicgstab(
        matvec,
        _to_internal(b, config.line_axis),
        lambda r: _v_cycle(hier, config, r),
        tol,
        config.max_iterations,
        x0i,
    )
    return _from_internal(x, config.line_axis), info


def solve(op: AdvectionDiffusion, b: jax.Array, config: KrylovConfig | None = None):
    """Solve ``A x = b``; returns ``(x, SolveInfo)``. Differentiable in ``op``
    and ``b`` (implicit, through the exact transpose :func:`transposed`)."""
    config = config or KrylovConfig()

    def forward(_, rhs):
        return _raw_solve(op, rhs, config)

    def transpose(_, rhs):
        return _raw_solve(transposed(op), rhs, config)

    return lax.custom_linear_solve(lambda x: apply(op, x), b, solve=forward, transpose_solve=transpose, has_aux=True)
