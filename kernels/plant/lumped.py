"""Lumped thermal masses: small linear systems ``C dT/dt = -A T + f(t)``.

Where a field is not needed (a package as a few thermal masses, a cold
plate's fluid and metal, a CDU's water volume, a coolant pipe as mixing
cells) the temperatures of ``n`` nodes obey

    ``C_i dT_i/dt = -sum_j A_ij T_j + f_i(t)``

with ``C`` the heat capacities (J/K), ``A`` a constant matrix (W/K) of
conductances between nodes, conductances to fixed surroundings and advected
heat capacity rates (``m_dot c_p`` from a node to the next: ``A`` need not be
symmetric), and ``f`` the heat put into each node (W): powers, plus
``G T_ambient`` for a conductance to surroundings at ``T_ambient``, plus
``m_dot c_p T_in`` where coolant enters. Builders below make ``A`` and the
inlet and surroundings columns of ``f`` for the usual pieces.

Stepping is implicit (``"euler"``, ``"bdf2"``, ``"cn"``, as in
:mod:`..fv.transient`), with the step matrix factored once (LU) and reused by
every step of ``lax.scan``: pure, ``jit``- and ``vmap``-able over scenarios,
and differentiable in both modes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ..solvers import dense as _dense

__all__ = ["SCHEMES", "integrate", "rc_links", "mixing_cells", "stored_heat"]

SCHEMES = ("euler", "bdf2", "cn")


def rc_links(n: int, links, to_surroundings, dtype=None) -> jax.Array:
    """The matrix ``A`` (W/K) of a network of conductances.

    Args:
        n: number of nodes.
        links: ``(i, j, G)`` triples, a conductance ``G`` (W/K) between nodes
            ``i`` and ``j`` (``G`` may be traced).
        to_surroundings: ``(i, G)`` pairs, a conductance from node ``i`` to
            fixed surroundings (whose temperature enters ``f`` as ``G T``).
    """
    dtype = dtype or jnp.result_type(float)
    A = jnp.zeros((n, n), dtype)
    for i, j, g in links:
        A = A.at[i, i].add(g).at[j, j].add(g).at[i, j].add(-g).at[j, i].add(-g)
    for i, g in to_surroundings:
        A = A.at[i, i].add(g)
    return A


def mixing_cells(volume, flow, rho_cp, n_cells: int, dtype=None):
    """A pipe (or a tank, ``n_cells = 1``) as ``n_cells`` well-mixed cells in
    series carrying a volume flow ``flow`` (m^3/s) of coolant with volumetric
    heat capacity ``rho_cp`` (J/m^3/K) through a volume ``volume`` (m^3).

    Returns ``(C, A, inlet)``: the cells' heat capacities (J/K), the advection
    matrix (W/K; ``m_dot c_p`` on the diagonal and ``-m_dot c_p`` from each
    cell to the next) and the column that multiplies the inlet temperature in
    ``f`` (``m_dot c_p`` on the first cell). The outlet is the last cell.

    The mean residence time is ``volume / flow`` exactly for any ``n_cells``;
    the spread of arrival times around it falls as ``1 / sqrt(n_cells)``
    (the tanks-in-series model of a plug flow with mixing).
    """
    dtype = dtype or jnp.result_type(float)
    rate = jnp.asarray(flow * rho_cp, dtype)
    C = jnp.full((n_cells,), volume * rho_cp / n_cells, dtype)
    A = rate * (jnp.eye(n_cells, dtype=dtype) - jnp.eye(n_cells, k=-1, dtype=dtype))
    inlet = jnp.zeros((n_cells,), dtype).at[0].set(rate)
    return C, A, inlet


def stored_heat(C: jax.Array, T: jax.Array) -> jax.Array:
    """``sum(C T)`` (J, relative to 0 in the temperature unit); batched over leading axes of ``T``."""
    return jnp.sum(C * T, axis=-1)


def integrate(C, A, f, T0, dt, scheme: str = "bdf2"):
    """Step ``C dT/dt = -A T + f(t)`` from ``T0``.

    Args:
        C: heat capacities, shape ``(n,)``, J/K, > 0.
        A: the constant matrix, shape ``(n, n)``, W/K (see the module docstring).
        f: heat into each node at each time level ``t_m = m dt``, shape
            ``(n_steps + 1, n)``, W (backward Euler and BDF2 use the end of
            each step, Crank-Nicolson the average of both ends).
        T0: initial temperatures, shape ``(n,)``.
        dt: time step, s (traced).
        scheme: ``"euler"``, ``"bdf2"`` (first step backward Euler) or ``"cn"`` (static).

    Returns:
        Temperatures at every time level, shape ``(n_steps + 1, n)`` (row 0
        is ``T0``).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown time scheme {scheme!r}; one of {SCHEMES}")
    dtype = T0.dtype
    dt = jnp.asarray(dt, dtype)
    Cd = jnp.diag(C / dt)
    euler = _dense.lu_factor(Cd + A)

    def euler_step(T, f1):
        return _dense.lu_solve(euler, C / dt * T + f1)

    if scheme == "euler":

        def step(carry, fs):
            T = euler_step(carry, fs[1])
            return T, T

        _, Ts = lax.scan(step, T0, (f[:-1], f[1:]))
        return jnp.concatenate([T0[None], Ts])
    if scheme == "cn":
        cn = _dense.lu_factor(Cd + 0.5 * A)

        def step(carry, fs):
            T = _dense.lu_solve(cn, C / dt * carry - 0.5 * (A @ carry) + 0.5 * (fs[0] + fs[1]))
            return T, T

        _, Ts = lax.scan(step, T0, (f[:-1], f[1:]))
        return jnp.concatenate([T0[None], Ts])
    bdf2 = _dense.lu_factor(1.5 * Cd + A)
    T1 = euler_step(T0, f[1])

    def step(carry, f2):
        T, T_prev = carry
        T_new = _dense.lu_solve(bdf2, C / dt * (2.0 * T - 0.5 * T_prev) + f2)
        return (T_new, T), T_new

    _, Ts = lax.scan(step, (T1, T0), f[2:])
    return jnp.concatenate([T0[None], T1[None], Ts])
