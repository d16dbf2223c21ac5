"""Matrix-free solves of symmetric 7-point "conductance" operators.

Many finite-volume problems on a Cartesian grid (heat conduction, the pressure
equation of a projection method, Darcy flow) lead to the same linear operator:
each pair of neighbouring cells is joined by a link of conductance ``g >= 0``
and each boundary face joins its cell to a fixed exterior value::

    (A x)_P = c_P x_P + sum_faces g_f (x_P - x_nb)        (x_nb = 0 outside)

This module stores the operator as three face arrays (see kernels/fv/grid.py for
the face-field shapes) plus an optional diagonal term ``c``, applies it without
a matrix, and solves ``A x = b`` with conjugate gradients preconditioned by one
geometric multigrid V-cycle.

Multigrid, as built here (all static structure, traced values):

* Line relaxation. The smoother is red-black line Gauss-Seidel with exact
  tridiagonal solves along one *line axis* (``MultigridConfig.line_axis``).
  Package stacks and cold plates are layered in z with thin, very conductive or
  very resistive layers; solving exactly across the layers makes the smoother
  robust to that anisotropy and to jumps in conductivity between layers.
* Semi-coarsening: the two transverse axes are halved while their length is
  even; the line axis only once few columns remain (its exact solves make
  coarsening it unnecessary for convergence, and skipping it keeps the
  iteration count flat). Coarsening stops at ``coarse_size`` cells. Coarse
  links are built from fine links as a resistor network (series along the
  link, parallel across it), which reproduces the rediscretised operator on
  uniform grids and stays faithful across material jumps. Prolongation is
  piecewise constant.
* The coarsest level is solved exactly (dense Cholesky) when it has at most
  ``dense_limit`` cells, otherwise by ``coarse_sweeps`` smoothing sweeps.

The V-cycle is symmetric (forward colour order before, reverse after, with
restriction the transpose of prolongation), so it is a valid CG preconditioner.
``solve`` wraps the solve in ``jax.lax.custom_linear_solve``: derivatives with
respect to the conductances and the right-hand side are exact implicit
derivatives of the converged solution (one adjoint solve), not backpropagation
through the iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax

from ..diagnostics import SolveInfo

__all__ = [
    "Conductances",
    "MultigridConfig",
    "apply",
    "diagonal",
    "Hierarchy",
    "multigrid_setup",
    "v_cycle",
    "pcg",
    "solve",
]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Conductances:
    """A symmetric 7-point operator given by its links.

    Attributes:
        gx: x-face conductances, shape ``(nx + 1, ny, nz)``; entries 0 and nx are
            the boundary links (0 means insulated / no exterior coupling).
        gy: y-face conductances, shape ``(nx, ny + 1, nz)``.
        gz: z-face conductances, shape ``(nx, ny, nz + 1)``.
        c: extra diagonal term per cell, shape ``(nx, ny, nz)`` (e.g. a sink or
            an interstitial exchange coefficient), ``>= 0``.
    """

    gx: jax.Array
    gy: jax.Array
    gz: jax.Array
    c: jax.Array

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.c.shape[-3:]

    def links(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        return (self.gx, self.gy, self.gz)


def _shifted(x: jax.Array, axis: int, direction: int) -> jax.Array:
    """x of the neighbour on the low (direction=-1) or high (+1) side, 0 outside."""
    n = x.shape[axis]
    zshape = list(x.shape)
    zshape[axis] = 1
    zero = jnp.zeros(zshape, x.dtype)
    if direction < 0:
        return jnp.concatenate([zero, lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis=axis)
    return jnp.concatenate([lax.slice_in_dim(x, 1, n, axis=axis), zero], axis=axis)


def _low_high(g: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
    """Links on the low and the high face of every cell."""
    n = g.shape[axis]
    return lax.slice_in_dim(g, 0, n - 1, axis=axis), lax.slice_in_dim(g, 1, n, axis=axis)


def _neighbour_sum(op: Conductances, x: jax.Array, axes=(0, 1, 2)) -> jax.Array:
    """sum over the links along ``axes`` of g * x_nb (boundary links see 0)."""
    out = jnp.zeros_like(x)
    for axis in axes:
        lo, hi = _low_high(op.links()[axis], axis)
        out = out + lo * _shifted(x, axis, -1) + hi * _shifted(x, axis, +1)
    return out


def diagonal(op: Conductances) -> jax.Array:
    """The diagonal of ``A``: ``c`` plus the sum of every link of the cell."""
    d = op.c
    for axis, g in enumerate(op.links()):
        lo, hi = _low_high(g, axis)
        d = d + lo + hi
    return d


def apply(op: Conductances, x: jax.Array) -> jax.Array:
    """``A x`` for the operator ``op``; ``x`` has the cell shape."""
    return diagonal(op) * x - _neighbour_sum(op, x)


# --------------------------------------------------------------------------- multigrid


def default_tolerance(tol: float | None, dtype) -> float:
    """``tol`` if given, else 1e-10 for float64 and 1e-5 for float32 (relative residual)."""
    if tol is not None:
        return tol
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


@dataclass(frozen=True)
class MultigridConfig:
    """Static multigrid and Krylov settings.

    Attributes:
        line_axis: axis of the exact line solves (2 = z, across the layers).
        pre_sweeps, post_sweeps: red-black line Gauss-Seidel sweeps per level.
        max_levels: upper bound on the number of levels.
        coarse_size: coarsening stops once a level has at most this many cells.
        line_coarsen_columns: the line axis is coarsened too once a level has at
            most this many columns (or its transverse axes cannot be halved).
        dense_limit: the coarsest level is solved by dense Cholesky when it has at
            most this many cells.
        coarse_sweeps: smoothing sweeps on a coarsest level too large for dense.
        mixed_precision: build and apply the V-cycle in float32 (CG itself keeps
            the problem's precision): half the memory traffic of the
            preconditioner for a float64 solve, same converged answer.
        tol: relative residual ``||b - A x||_2 / ||b||_2`` at which CG stops;
            ``None`` picks 1e-10 for float64 and 1e-5 for float32.
        max_iterations: CG iteration limit.
    """

    line_axis: int = 2
    pre_sweeps: int = 1
    post_sweeps: int = 1
    max_levels: int = 12
    coarse_size: int = 512
    line_coarsen_columns: int = 256
    dense_limit: int = 1024
    coarse_sweeps: int = 40
    mixed_precision: bool = True
    tol: float | None = None
    max_iterations: int = 200

    def tolerance(self, dtype) -> float:
        return default_tolerance(self.tol, dtype)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class _Level:
    """One multigrid level in internal axis order (line axis first), with its
    tridiagonal line systems along axis 0 factored once."""

    op: Conductances
    lower: jax.Array  # sub-diagonal (row 0 unused)
    cprime: jax.Array  # Thomas forward-elimination factors
    inv_denom: jax.Array
    color: jax.Array  # 0/1 checkerboard of the columns


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Hierarchy:
    """Multigrid hierarchy built by :func:`multigrid_setup` (internal axis order)."""

    levels: tuple
    coarse_cholesky: jax.Array | None


def _series_parallel_coarsen(op: Conductances, factors) -> Conductances:
    """Coarsen the links by ``factors`` (1 or 2 per axis) as a resistor network."""
    links = list(op.links())
    c = op.c
    new_links = []
    for axis, g in enumerate(links):
        if factors[axis] == 2:
            # series along the link direction: coarse face 2I sits on fine face 2I;
            # the path from coarse centre I to I+1 crosses half of fine link 2I+1,
            # all of fine link 2I+2 and half of fine link 2I+3 (in fine-face index
            # 2I+1, 2I+2, 2I+3 relative to the coarse face 2I+2).
            n = g.shape[axis]  # n = nfine + 1, nfine even
            r = _safe_resistance(g)
            mid = lax.slice_in_dim(r, 2, n - 2, stride=2, axis=axis) if n > 3 else None
            odd = lax.slice_in_dim(r, 1, n, stride=2, axis=axis)  # fine faces 1, 3, ...
            lo_half = lax.slice_in_dim(odd, 0, odd.shape[axis] - 1, axis=axis)
            hi_half = lax.slice_in_dim(odd, 1, odd.shape[axis], axis=axis)
            parts = []
            first = lax.slice_in_dim(r, 0, 1, axis=axis) + 0.5 * lax.slice_in_dim(odd, 0, 1, axis=axis)
            parts.append(first)
            if mid is not None:
                parts.append(0.5 * lo_half + mid + 0.5 * hi_half)
            m = odd.shape[axis]
            last = lax.slice_in_dim(r, n - 1, n, axis=axis) + 0.5 * lax.slice_in_dim(odd, m - 1, m, axis=axis)
            parts.append(last)
            g = _safe_conductance(jnp.concatenate(parts, axis=axis))
        # parallel across: sum over the merged transverse cells
        for t in range(3):
            if t != axis and factors[t] == 2:
                g = _pair_sum(g, t)
        new_links.append(g)
    for t in range(3):
        if factors[t] == 2:
            c = _pair_sum(c, t)
    return Conductances(*new_links, c=c)


def _safe_resistance(g):
    return jnp.where(g > 0, 1.0 / jnp.where(g > 0, g, 1.0), jnp.inf)


def _safe_conductance(r):
    return jnp.where(jnp.isfinite(r), 1.0 / jnp.where(jnp.isfinite(r), r, 1.0), 0.0)


def _pair_sum(x, axis):
    n = x.shape[axis]
    return lax.slice_in_dim(x, 0, n, stride=2, axis=axis) + lax.slice_in_dim(x, 1, n, stride=2, axis=axis)


def _restrict(r, factors):
    for t in range(3):
        if factors[t] == 2:
            r = _pair_sum(r, t)
    return r


def _prolong(e, factors):
    for t in range(3):
        if factors[t] == 2:
            e = jnp.repeat(e, 2, axis=t)
    return e


def _make_level(op: Conductances) -> _Level:
    """Factor the tridiagonal line operators along axis 0 once per level."""
    d = diagonal(op)
    gl = op.gx[1:-1]  # interior links along axis 0
    zero = jnp.zeros_like(d[:1])
    lower = jnp.concatenate([zero, -gl], axis=0)  # couples i to i-1
    upper = jnp.concatenate([-gl, zero], axis=0)  # couples i to i+1

    def step(cp_prev, inp):
        d_i, l_i, u_i = inp
        inv = 1.0 / (d_i - l_i * cp_prev)
        cp = u_i * inv
        return cp, (cp, inv)

    _, (cprime, inv_denom) = lax.scan(step, jnp.zeros_like(d[0]), (d, lower, upper))
    n1, n2 = op.shape[1], op.shape[2]
    color = (jnp.arange(n1)[:, None] + jnp.arange(n2)[None, :]) % 2
    return _Level(op, lower, cprime, inv_denom, jnp.broadcast_to(color[None], op.shape))


def _thomas_solve(level: _Level, rhs: jax.Array) -> jax.Array:
    """Solve the factored line systems along axis 0 for every column of ``rhs``."""

    def fwd(prev, inp):
        r_i, l_i, inv_i = inp
        dp = (r_i - l_i * prev) * inv_i
        return dp, dp

    _, dprime = lax.scan(fwd, jnp.zeros_like(rhs[0]), (rhs, level.lower, level.inv_denom))

    def bwd(nxt, inp):
        dp_i, cp_i = inp
        x = dp_i - cp_i * nxt
        return x, x

    _, x = lax.scan(bwd, jnp.zeros_like(rhs[0]), (dprime, level.cprime), reverse=True)
    return x


def _coarsen_factors(shape, line_coarsen_columns: int) -> tuple[int, int, int]:
    """Halve the transverse axes whose length is even; halve the line axis too
    once a level has few columns (long line solves over few columns cost scan
    steps, not arithmetic)."""
    n0, n1, n2 = shape
    f1 = 2 if n1 % 2 == 0 else 1
    f2 = 2 if n2 % 2 == 0 else 1
    f0 = 2 if (n0 % 2 == 0 and (n1 * n2 <= line_coarsen_columns or f1 == f2 == 1)) else 1
    return (f0, f1, f2)


def _permute_op(op: Conductances, line_axis: int) -> Conductances:
    """Reorder axes so that ``line_axis`` becomes axis 0."""
    order = [line_axis] + [a for a in range(3) if a != line_axis]
    links = op.links()
    perm = [jnp.transpose(links[a], order) for a in order]
    return Conductances(*perm, c=jnp.transpose(op.c, order))


def _to_internal(x, line_axis):
    order = [line_axis] + [a for a in range(3) if a != line_axis]
    return jnp.transpose(x, order)


def _from_internal(x, line_axis):
    order = [line_axis] + [a for a in range(3) if a != line_axis]
    inv = [order.index(a) for a in range(3)]
    return jnp.transpose(x, inv)


def multigrid_setup(op: Conductances, config: MultigridConfig | None = None) -> Hierarchy:
    """Build the multigrid hierarchy of ``op`` (traced values, static structure)."""
    config = config or MultigridConfig()
    current = _permute_op(op, config.line_axis)
    levels = []
    for _ in range(config.max_levels):
        levels.append(_make_level(current))
        f = _coarsen_factors(current.shape, config.line_coarsen_columns)
        if f == (1, 1, 1) or current.c.size <= config.coarse_size:
            break
        current = _series_parallel_coarsen(current, f)
    coarse = levels[-1].op
    chol = None
    if coarse.c.size <= config.dense_limit:
        chol = jnp.linalg.cholesky(_dense_matrix(coarse))
    return Hierarchy(tuple(levels), chol)


def _dense_matrix(op: Conductances) -> jax.Array:
    n = op.c.size
    eye = jnp.eye(n, dtype=op.c.dtype).reshape((n,) + op.shape)
    return jax.vmap(lambda e: apply(op, e).reshape(-1))(eye).T


def _smooth(level: _Level, x, b, colors):
    """Red-black line Gauss-Seidel half-sweeps in the given colour order."""
    for col in colors:
        rhs = b + _neighbour_sum(level.op, x, (1, 2))
        x = jnp.where(level.color == col, _thomas_solve(level, rhs), x)
    return x


def _v_cycle_internal(hier: Hierarchy, config: MultigridConfig, r, depth=0):
    levels = hier.levels
    level = levels[depth]
    if depth == len(levels) - 1:
        if hier.coarse_cholesky is not None:
            y = jax.scipy.linalg.cho_solve((hier.coarse_cholesky, True), r.reshape(-1))
            return y.reshape(r.shape)
        x = jnp.zeros_like(r)
        for _ in range(config.coarse_sweeps):
            x = _smooth(level, x, r, (0, 1))
            x = _smooth(level, x, r, (1, 0))
        return x
    x = jnp.zeros_like(r)
    for _ in range(config.pre_sweeps):
        x = _smooth(level, x, r, (0, 1))
    res = r - apply(level.op, x)
    coarse_shape = levels[depth + 1].op.shape
    f = tuple(n // m for n, m in zip(level.op.shape, coarse_shape, strict=True))
    e = _v_cycle_internal(hier, config, _restrict(res, f), depth + 1)
    x = x + _prolong(e, f)
    for _ in range(config.post_sweeps):
        x = _smooth(level, x, r, (1, 0))
    return x


def v_cycle(hier: Hierarchy, config: MultigridConfig, r: jax.Array) -> jax.Array:
    """One symmetric V-cycle applied to residual ``r`` (user axis order)."""
    out = _v_cycle_internal(hier, config, _to_internal(r, config.line_axis))
    return _from_internal(out, config.line_axis)


# --------------------------------------------------------------------------- Krylov


def pcg(matvec, b, precond, tol, max_iterations, x0=None):
    """Preconditioned conjugate gradients in a ``lax.while_loop``.

    Flexible CG (Polak-Ribiere ``beta``), so the preconditioner may be applied
    in lower precision. Stops when ``||b - A x||_2 <= tol * ||b||_2``. Returns ``(x, SolveInfo)``;
    a non-finite residual stops the loop and reports ``converged=False``.
    """
    dtype = b.dtype
    x = jnp.zeros_like(b) if x0 is None else x0
    r = b - matvec(x) if x0 is not None else b
    bnorm = jnp.sqrt(jnp.vdot(b, b).real)
    scale = jnp.where(bnorm > 0, bnorm, jnp.ones_like(bnorm))
    z = precond(r)
    p = z
    rz = jnp.vdot(r, z).real
    res0 = jnp.sqrt(jnp.vdot(r, r).real) / scale
    history = jnp.full((max_iterations + 1,), jnp.nan, dtype).at[0].set(res0)

    def cond(state):
        _, _, _, _, _, k, res, _ = state
        return (k < max_iterations) & (res > tol) & jnp.isfinite(res)

    def body(state):
        x, r, z, p, rz, k, _, hist = state
        ap = matvec(p)
        alpha = rz / jnp.vdot(p, ap).real
        x = x + alpha * p
        r = r - alpha * ap
        z_old = z
        z = precond(r)
        rz_new = jnp.vdot(r, z).real
        # flexible (Polak-Ribiere) beta: equals rz_new / rz for a fixed symmetric
        # preconditioner, and stays robust when the preconditioner is applied in
        # lower precision
        beta = (rz_new - jnp.vdot(r, z_old).real) / rz
        p = z + beta * p
        res = jnp.sqrt(jnp.vdot(r, r).real) / scale
        hist = hist.at[k + 1].set(res)
        return x, r, z, p, rz_new, k + 1, res, hist

    state = (x, r, z, p, rz, jnp.asarray(0, jnp.int32), res0, history)
    x, r, _, _, _, k, res, hist = lax.while_loop(cond, body, state)
    converged = (res <= tol) & jnp.isfinite(res)
    return x, SolveInfo(converged=converged, iterations=k, residual=res, history=hist)


def solve(op: Conductances, b: jax.Array, config: MultigridConfig | None = None):
    """Solve ``A x = b`` by multigrid-preconditioned CG.

    ``A`` must be symmetric positive definite: at least one boundary link or a
    positive ``c`` in every connected region. Differentiable with respect to
    ``op`` and ``b`` by implicit differentiation.

    Returns ``(x, SolveInfo)``; ``SolveInfo.residual`` is the relative 2-norm
    residual.
    """
    config = config or MultigridConfig()
    dtype = b.dtype
    tol = config.tolerance(dtype)
    op_const = lax.stop_gradient(op)
    mg_dtype = jnp.float32 if config.mixed_precision else dtype
    hier = multigrid_setup(jax.tree_util.tree_map(lambda a: a.astype(mg_dtype), op_const), config)
    fine = _permute_op(op_const, config.line_axis)  # the operator in internal axis order

    def precond(r):
        return _v_cycle_internal(hier, config, r.astype(mg_dtype)).astype(dtype)

    def inner(_, rhs):
        # CG runs in internal axis order: one transpose in, one out, none per iteration
        x, info = pcg(
            lambda v: apply(fine, v),
            _to_internal(rhs, config.line_axis),
            precond,
            tol,
            config.max_iterations,
        )
        return _from_internal(x, config.line_axis), info

    return lax.custom_linear_solve(
        lambda x: apply(op, x), b, solve=inner, transpose_solve=inner, symmetric=True, has_aux=True
    )
