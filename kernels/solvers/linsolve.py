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

The hierarchy, smoother and V-cycle are :mod:`kernels.solvers.multigrid`'s (this
module supplies the stencil and the resistor-network coarsening); the Krylov
loop is :func:`kernels.solvers.krylov.fcg` unless ``solve`` is given another.

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

from . import krylov, multigrid
from .multigrid import Hierarchy

__all__ = [
    "Conductances",
    "Hierarchy",
    "MultigridConfig",
    "apply",
    "default_tolerance",
    "diagonal",
    "multigrid_setup",
    "solve",
    "stencil",
    "v_cycle",
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


def stencil(op: Conductances):
    """``(diag, neighbours)`` of ``op`` in :mod:`kernels.solvers.multigrid`'s form:
    the diagonal and, per axis, the links on the low and high face of every cell."""
    return diagonal(op), tuple(multigrid.low_high(g, axis) for axis, g in enumerate(op.links()))


def diagonal(op: Conductances) -> jax.Array:
    """The diagonal of ``A``: ``c`` plus the sum of every link of the cell."""
    d = op.c
    for axis, g in enumerate(op.links()):
        lo, hi = multigrid.low_high(g, axis)
        d = d + lo + hi
    return d


def apply(op: Conductances, x: jax.Array) -> jax.Array:
    """``A x`` for the operator ``op``; ``x`` has the cell shape."""
    _, nb = stencil(op)
    return diagonal(op) * x - multigrid.neighbour_sum(nb, x)


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
        line_solver: how the line systems are factored and solved
            (:class:`kernels.solvers.multigrid.CycleConfig`): ``"auto"``,
            ``"scan"`` or ``"parallel"``.
        axis_weights: typical link strength per unit volume along x, y, z
            (``1 / h**2`` on a grid of spacings ``h``), or ``None``: with them
            the coarsening leaves a transverse axis more than twice as weakly
            linked as the other as it is until they are even
            (:func:`kernels.solvers.multigrid.coarsen_factors`).
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
    line_solver: str = "auto"
    axis_weights: tuple[float, float, float] | None = None

    def tolerance(self, dtype) -> float:
        return default_tolerance(self.tol, dtype)

    def cycle(self) -> multigrid.CycleConfig:
        """The V-cycle's settings (:class:`kernels.solvers.multigrid.CycleConfig`)."""
        return multigrid.CycleConfig(
            pre_sweeps=self.pre_sweeps,
            post_sweeps=self.post_sweeps,
            max_levels=self.max_levels,
            coarse_size=self.coarse_size,
            line_coarsen_columns=self.line_coarsen_columns,
            dense_limit=self.dense_limit,
            coarse_sweeps=self.coarse_sweeps,
            symmetric=True,
            line_solver=self.line_solver,
            axis_weights=None
            if self.axis_weights is None
            else tuple(self.axis_weights[a] for a in multigrid.internal_axes(self.line_axis)),
        )


def _coarsen(op: Conductances, factors) -> Conductances:
    links, c = multigrid.series_parallel(op.links(), op.c, factors)
    return Conductances(*links, c=c)


def _permute_op(op: Conductances, line_axis: int) -> Conductances:
    """Reorder axes so that ``line_axis`` becomes axis 0."""
    order = [line_axis] + [a for a in range(3) if a != line_axis]
    links = op.links()
    perm = [jnp.transpose(links[a], order) for a in order]
    return Conductances(*perm, c=jnp.transpose(op.c, order))


def multigrid_setup(op: Conductances, config: MultigridConfig | None = None) -> Hierarchy:
    """Build the multigrid hierarchy of ``op`` (traced values, static structure;
    internal axis order, line axis first)."""
    config = config or MultigridConfig()
    return multigrid.setup(_permute_op(op, config.line_axis), stencil, _coarsen, config.cycle())


def v_cycle(hier: Hierarchy, config: MultigridConfig, r: jax.Array) -> jax.Array:
    """One symmetric V-cycle applied to residual ``r`` (user axis order)."""
    out = multigrid.v_cycle(hier, config.cycle(), multigrid.to_internal(r, config.line_axis))
    return multigrid.from_internal(out, config.line_axis)


def solve(op: Conductances, b: jax.Array, config: MultigridConfig | None = None, solver=krylov.fcg):
    """Solve ``A x = b`` by multigrid-preconditioned CG.

    ``A`` must be symmetric positive definite: at least one boundary link or a
    positive ``c`` in every connected region. Differentiable with respect to
    ``op`` and ``b`` by implicit differentiation.

    ``solver``: the Krylov loop, any solver of :mod:`kernels.solvers.krylov`'s
    signature for a symmetric operator (default :func:`kernels.solvers.krylov.fcg`,
    flexible CG, since the V-cycle may run in float32).

    Returns ``(x, SolveInfo)``; ``SolveInfo.residual`` is the relative 2-norm
    residual ``||b - A x||_2 / ||b||_2``.
    """
    config = config or MultigridConfig()
    dtype = b.dtype
    tol = config.tolerance(dtype)
    op_const = lax.stop_gradient(op)
    mg_dtype = jnp.float32 if config.mixed_precision else dtype
    hier = multigrid_setup(jax.tree_util.tree_map(lambda a: a.astype(mg_dtype), op_const), config)
    fine = _permute_op(op_const, config.line_axis)  # the operator in internal axis order
    cycle = config.cycle()

    def precond(r):
        return multigrid.v_cycle(hier, cycle, r.astype(mg_dtype)).astype(dtype)

    def inner(_, rhs):
        # the Krylov loop runs in internal axis order: one transpose in, one out
        x, info = solver(
            lambda v: apply(fine, v),
            multigrid.to_internal(rhs, config.line_axis),
            precond,
            rtol=tol,
            max_iterations=config.max_iterations,
        )
        return multigrid.from_internal(x, config.line_axis), info

    return lax.custom_linear_solve(
        lambda x: apply(op, x), b, solve=inner, transpose_solve=inner, symmetric=True, has_aux=True
    )
