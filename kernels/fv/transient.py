"""Transient 3D heat conduction on a non-uniform Cartesian grid.

Solves ``rho c dT/dt = div(k grad T) + s(t) q`` with the cells, links and
boundary conditions of :mod:`.conduction` (flux, convective and temperature
faces, constant in time) and a volumetric source ``q`` scaled by a time
series ``s`` (a power trace). Steps are implicit, so the time step is set by
the accuracy wanted, never by the grid's explicit stability limit:

* ``"euler"``: backward Euler, first order, L-stable (a step change decays
  without ringing; the default for rough power traces);
* ``"bdf2"``: second-order backward differences, L-stable; the first step is
  backward Euler, which keeps the global second order;
* ``"cn"``: Crank-Nicolson, second order, A-stable but not L-stable (a sudden
  step rings at the finest scales; use it for smooth traces).

Each step solves ``(a C/dt + theta A) T_new = ...`` where ``C = rho c V`` is
the heat capacity of a cell (J/K) and ``A`` the conduction operator (W/K):
the shift ``a C/dt`` is the operator's diagonal term ``c``, so every step is
one multigrid-preconditioned CG solve of :mod:`..solvers.linsolve`, symmetric
positive definite even where no face holds a temperature. The steps run in
``lax.scan``: pure, ``jit``- and ``vmap``-able (over scenarios: traces,
conductivities, initial fields), and differentiable in reverse mode (each
step's solve has an implicit adjoint).

Energy: with the heat stored ``E = sum(C T)``, backward Euler satisfies
``E_{n+1} - E_n = dt (P_in(t_{n+1}) - P_out(T_{n+1}))`` to the solver
tolerance, Crank-Nicolson the same with the average of both ends, and BDF2
its own three-level form; :func:`stored_heat` and ``conduction.heat_balance``
give the terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from jax import lax

from ..diagnostics import SolveInfo
from ..solvers import linsolve
from . import conduction
from .grid import Grid

__all__ = ["SCHEMES", "TimeConfig", "integrate", "stored_heat"]

SCHEMES = ("euler", "bdf2", "cn")


@dataclass(frozen=True)
class TimeConfig:
    """Static settings of a transient solve.

    Attributes:
        scheme: ``"euler"``, ``"bdf2"`` or ``"cn"`` (see the module docstring).
        multigrid: settings of each step's linear solve.
    """

    scheme: str = "bdf2"
    multigrid: linsolve.MultigridConfig = field(default_factory=linsolve.MultigridConfig)

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown time scheme {self.scheme!r}; one of {SCHEMES}")


def stored_heat(grid: Grid, rho_c: jax.Array, T: jax.Array) -> jax.Array:
    """Heat stored relative to 0 in the temperature unit, ``sum(rho c V T)`` (J)."""
    return jnp.sum(rho_c * grid.volumes() * T)


def _scaled(op: linsolve.Conductances, theta, c) -> linsolve.Conductances:
    return linsolve.Conductances(op.gx * theta, op.gy * theta, op.gz * theta, c)


def integrate(
    grid: Grid,
    k: jax.Array,
    rho_c: jax.Array,
    q: jax.Array,
    bcs: conduction.BoundaryConditions,
    T0: jax.Array,
    dt,
    source_scale: jax.Array,
    config: TimeConfig = TimeConfig(),
    observe: Callable[[jax.Array], object] | None = None,
):
    """Step the temperature from ``T0`` over ``len(source_scale) - 1`` steps.

    Args:
        grid: the grid (cell widths in m).
        k: conductivity per cell, W/m/K, > 0.
        rho_c: volumetric heat capacity per cell, J/m^3/K, > 0.
        q: volumetric source per cell at scale 1, W/m^3.
        bcs: boundary conditions (constant in time), as for :func:`conduction.solve`.
        T0: initial temperature field, shape ``grid.shape``.
        dt: time step, s (a scalar; traced).
        source_scale: the source's multiplier at each time level
            ``t_n = n dt``, shape ``(n_steps + 1,)`` (entry 0 is the initial
            time; backward Euler and BDF2 use the value at the end of each
            step, Crank-Nicolson the average of both ends).
        config: the scheme and the linear solver's settings (static).
        observe: ``T -> pytree`` recorded at every time level (static; the
            default records ``T.max()``). Keep it small: the whole field at
            every step costs ``n_steps`` fields of memory.

    Returns:
        ``(T_end, observed, info)``: the field at the last time level, the
        observations stacked along a leading axis of length ``n_steps + 1``
        (level 0 is ``T0``), and a :class:`SolveInfo` whose ``converged`` is
        true when every step's solve converged, ``iterations`` and
        ``residual`` the largest of any step, and ``history`` the relative
        residual of each step's solve, shape ``(n_steps,)``.
    """
    observe = observe or (lambda T: jnp.max(T))
    dtype = T0.dtype
    dt = jnp.asarray(dt, dtype)
    scale = jnp.asarray(source_scale, dtype)
    mg = config.multigrid
    op = conduction.operator(grid, k, bcs)
    b_bc = conduction.rhs(grid, k, jnp.zeros_like(q), bcs)
    b_q = q * grid.volumes()
    cap = rho_c * grid.volumes()

    def b(s):
        return b_bc + s * b_q

    euler_op = _scaled(op, 1.0, cap / dt)
    bdf2_op = _scaled(op, 1.0, 1.5 * cap / dt)
    cn_op = _scaled(op, 0.5, cap / dt)

    def euler(T, s1):
        return linsolve.solve(euler_op, cap / dt * T + b(s1), mg)

    def step(carry, s):
        T, T_prev = carry
        s0, s1 = s
        if config.scheme == "euler":
            T_new, info = euler(T, s1)
        elif config.scheme == "cn":
            rhs = cap / dt * T - 0.5 * linsolve.apply(op, T) + 0.5 * (b(s0) + b(s1))
            T_new, info = linsolve.solve(cn_op, rhs, mg)
        else:
            rhs = cap / dt * (2.0 * T - 0.5 * T_prev) + b(s1)
            T_new, info = linsolve.solve(bdf2_op, rhs, mg)
        return (T_new, T), (observe(T_new), info.converged, info.iterations, info.residual)

    levels = [observe(T0)]
    conv = its = res = None
    T_start, T_before, pairs = T0, T0, (scale[:-1], scale[1:])
    if config.scheme == "bdf2":  # BDF2 needs two levels: the first step is backward Euler
        T1, info1 = euler(T0, scale[1])
        levels.append(observe(T1))
        conv, its, res = info1.converged[None], info1.iterations[None], info1.residual[None]
        T_start, T_before, pairs = T1, T0, (scale[1:-1], scale[2:])
    (T_end, _), (obs, c, i, r) = lax.scan(step, (T_start, T_before), pairs)
    if conv is not None:
        c, i, r = (jnp.concatenate([a, b_]) for a, b_ in ((conv, c), (its, i), (res, r)))
    head = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *levels)
    observed = jax.tree_util.tree_map(lambda h, o: jnp.concatenate([h, o], axis=0), head, obs)
    info = SolveInfo(converged=jnp.all(c), iterations=jnp.max(i), residual=jnp.max(r), history=r)
    return T_end, observed, info
