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

Solver: BiCGSTAB (:func:`kernels.solvers.krylov.bicgstab`, or the ``solver``
passed in), right-preconditioned by one multigrid V-cycle
(:mod:`kernels.solvers.multigrid`) whose
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

from ..solvers import krylov, multigrid
from ..solvers.linsolve import Conductances, default_tolerance
from ..solvers.multigrid import Hierarchy, low_high, neighbour_sum

__all__ = [
    "AdvectionDiffusion",
    "KrylovConfig",
    "apply",
    "krylov_solve",
    "multigrid_setup",
    "negated",
    "net_outflow",
    "solve",
    "stencil",
    "transposed",
    "v_cycle",
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


def stencil(op: AdvectionDiffusion):
    """``(diag, neighbours)`` of ``op`` in :mod:`kernels.solvers.multigrid`'s form:
    the diagonal and, per axis, the (low, high) neighbour coefficients per cell."""
    d = op.diffusion.c
    neighbours = []
    for axis, (g, f) in enumerate(zip(op.diffusion.links(), op.flows(), strict=True)):
        g_lo, g_hi = low_high(g, axis)
        f_lo, f_hi = low_high(f, axis)
        # outflow through the high face (f_hi > 0) and through the low face (f_lo < 0)
        d = d + g_lo + g_hi + jnp.maximum(f_hi, 0.0) + jnp.maximum(-f_lo, 0.0)
        # inflow from the low neighbour (f_lo > 0) and from the high neighbour (f_hi < 0)
        neighbours.append((g_lo + jnp.maximum(f_lo, 0.0), g_hi + jnp.maximum(-f_hi, 0.0)))
    return d, tuple(neighbours)


def apply(op: AdvectionDiffusion, x: jax.Array) -> jax.Array:
    """``A x`` (boundary inflow values are not included: they belong in ``b``)."""
    d, nb = stencil(op)
    return d * x - neighbour_sum(nb, x)


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
        max_levels: upper bound on the number of multigrid levels.
        tol: relative residual ``||b - A x|| / ||b||``; None: 1e-10 (float64),
            1e-5 (float32).
        max_iterations: BiCGSTAB iteration limit.
        line_solver: how the multigrid's line systems are factored and solved
            (:class:`kernels.solvers.multigrid.CycleConfig`): ``"auto"``,
            ``"scan"`` or ``"parallel"``.
        axis_weights: typical link strength per unit volume along x, y, z, or
            ``None`` (:class:`kernels.solvers.linsolve.MultigridConfig`).
        mixed_precision: build and apply the V-cycle in float32 for a float64
            solve. BiCGSTAB keeps float64 and updates its residual with the
            float64 operator, so the answer it converges to is the same; the
            preconditioner moves half the bytes. No effect in float32.
    """

    line_axis: int = 0
    sweeps: int = 1
    coarse_size: int = 512
    max_levels: int = 12
    tol: float | None = None
    max_iterations: int = 300
    line_solver: str = "auto"
    axis_weights: tuple[float, float, float] | None = None
    mixed_precision: bool = False

    def tolerance(self, dtype) -> float:
        return default_tolerance(self.tol, dtype)

    def cycle_dtype(self, dtype):
        """The dtype the V-cycle runs in for a solve in ``dtype``."""
        return jnp.float32 if self.mixed_precision else dtype

    def cycle(self) -> multigrid.CycleConfig:
        """The V-cycle's settings (:class:`kernels.solvers.multigrid.CycleConfig`):
        non-symmetric, dense LU on the coarsest level whatever its size."""
        return multigrid.CycleConfig(
            pre_sweeps=self.sweeps,
            post_sweeps=self.sweeps,
            max_levels=self.max_levels,
            coarse_size=self.coarse_size,
            line_coarsen_columns=256,
            dense_limit=None,
            symmetric=False,
            line_solver=self.line_solver,
            axis_weights=None
            if self.axis_weights is None
            else tuple(self.axis_weights[a] for a in multigrid.internal_axes(self.line_axis)),
        )


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
    """Diffusion links as a resistor network, face flows summed over the merged
    faces (exactly conservative coarse advection)."""
    links, c = multigrid.series_parallel(op.diffusion.links(), op.diffusion.c, factors)
    flows = []
    for axis, f in enumerate(op.flows()):
        if factors[axis] == 2:
            f = multigrid.coarse_faces(f, axis)
        for t in range(3):
            if t != axis and factors[t] == 2:
                f = multigrid.pair_sum(f, t)
        flows.append(f)
    return AdvectionDiffusion(Conductances(*links, c=c), *flows)


def multigrid_setup(op: AdvectionDiffusion, config: KrylovConfig) -> Hierarchy:
    """The preconditioner's hierarchy (:class:`kernels.solvers.multigrid.Hierarchy`,
    internal axis order: ``config.line_axis`` first), in float32 when
    ``config.mixed_precision``."""
    dtype = config.cycle_dtype(op.diffusion.c.dtype)
    op = jax.tree_util.tree_map(lambda a: a.astype(dtype), op)
    return multigrid.setup(_permute(op, config.line_axis), stencil, _coarsen, config.cycle())


def _precondition(hier: Hierarchy, cycle: multigrid.CycleConfig, r: jax.Array, mixed: bool) -> jax.Array:
    """One V-cycle on ``r`` (internal order), in float32 when ``mixed``, returned in ``r``'s dtype."""
    if not mixed:
        return multigrid.v_cycle(hier, cycle, r)
    return multigrid.v_cycle(hier, cycle, r.astype(jnp.float32)).astype(r.dtype)


def v_cycle(hier: Hierarchy, config: KrylovConfig, r: jax.Array) -> jax.Array:
    """One V-cycle of ``hier`` (from :func:`multigrid_setup` with the same
    ``config``) applied to residual ``r`` (user axis order): the preconditioner."""
    la = config.line_axis
    z = _precondition(hier, config.cycle(), multigrid.to_internal(r, la), config.mixed_precision)
    return multigrid.from_internal(z, la)


# --------------------------------------------------------------------------- Krylov


def krylov_solve(
    op: AdvectionDiffusion,
    b: jax.Array,
    config: KrylovConfig | None = None,
    *,
    x0=None,
    hier: Hierarchy | None = None,
    rtol=None,
    solver=krylov.bicgstab,
):
    """The preconditioned Krylov solve of ``A x = b`` without implicit
    derivatives (``op`` is taken under ``stop_gradient``): for iterations that
    solve with one operator many times, such as the TVD deferred correction.

    Args:
        op, b: operator and right-hand side.
        config: static settings (default :class:`KrylovConfig`).
        x0: initial guess (default zero).
        hier: a hierarchy from :func:`multigrid_setup` of the same operator and
            ``config``, reused when given.
        rtol: relative tolerance (may be traced), default ``config.tolerance``.
        solver: a Krylov solver of :mod:`kernels.solvers.krylov`'s signature for
            a non-symmetric operator (default BiCGSTAB).

    Stops at ``||b - A x||_2 <= rtol ||b||_2`` (the Krylov module's rule);
    returns ``(x, SolveInfo)``.
    """
    config = config or KrylovConfig()
    rtol = config.tolerance(b.dtype) if rtol is None else rtol
    op_c = lax.stop_gradient(op)
    hier = multigrid_setup(op_c, config) if hier is None else hier
    cycle = config.cycle()
    la = config.line_axis
    if config.mixed_precision and b.dtype != jnp.float32:
        # the hierarchy is float32: the products take the operator in b's dtype
        diag, neighbours = stencil(_permute(op_c, la))

        def matvec(v):
            return diag * v - neighbour_sum(neighbours, v)
    else:
        fine = hier.levels[0]

        def matvec(v):
            return multigrid.apply(fine, v)

    # the loop runs in internal axis order: one transpose in, one out
    x, info = solver(
        matvec,
        multigrid.to_internal(b, la),
        lambda r: _precondition(hier, cycle, r, config.mixed_precision),
        x0=None if x0 is None else multigrid.to_internal(x0, la),
        rtol=rtol,
        max_iterations=config.max_iterations,
    )
    return multigrid.from_internal(x, la), info


def solve(op: AdvectionDiffusion, b: jax.Array, config: KrylovConfig | None = None, solver=krylov.bicgstab):
    """Solve ``A x = b``; returns ``(x, SolveInfo)``. Differentiable in ``op``
    and ``b`` (implicit, through the exact transpose :func:`transposed`).
    ``solver`` as in :func:`krylov_solve`."""
    config = config or KrylovConfig()

    def forward(_, rhs):
        return krylov_solve(op, rhs, config, solver=solver)

    def transpose(_, rhs):
        return krylov_solve(transposed(op), rhs, config, solver=solver)

    return lax.custom_linear_solve(lambda x: apply(op, x), b, solve=forward, transpose_solve=transpose, has_aux=True)
