"""Advected temperatures on a flow network (private module of
:mod:`kernels.network`).

For given edge flows the steady energy balance of the nodes is linear in the
node temperatures, A T = b. ``A = D - C``: D holds cp times the mass flow
entering each node, C couples each node to the upstream node of every edge
that flows into it. Two solvers:

* ``"dense"`` (default): LU of the dense (n_nodes x n_nodes) matrix, exact
  for any flow pattern, O(n_nodes^3).
* ``"sweep"``: Jacobi sweeps T <- (b + C T) / D. When the flow
  (with set-temperature edges cut) has no cycle, the sweep reaches the exact
  solution after (longest flow path + 1) sweeps and then stops changing to
  the last bit; with recirculating loops it converges geometrically, and
  slowly when a loop recirculates most of its flow. O(edges) per sweep,
  cheap under ``vmap``: the choice for large acyclic networks (racks fed by
  a CDU whose outlet temperature is set) and big batches.

Both are wrapped in ``lax.custom_linear_solve``, so derivatives (with respect
to flows, heats, inlet temperatures, cp) follow from the same linear system
(the transposed sweep for reverse mode), never from the iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..diagnostics import SolveInfo
from ..solvers import dense as _dense

__all__ = ["NetworkTemperatures", "network_temperatures"]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class NetworkTemperatures:
    """Result of :func:`network_temperatures` (K or degC, as the inputs).

    Attributes:
        node: mixed temperature at every node, shape (n_nodes,).
        edge_inlet: temperature entering every edge (at its upstream node for
            the actual flow direction), shape (n_edges,).
        edge_outlet: temperature leaving every edge, shape (n_edges,).
        edge_heat: heat given to the fluid by every edge (W): the prescribed
            heat, or cp mdot (T_set - T_in) for set-temperature edges.
        boundary_inflow: mass flow entering the network from outside at each
            node (kg/s, >= 0); boundary_outflow: mass flow leaving (>= 0).
    """

    node: jax.Array
    edge_inlet: jax.Array
    edge_outlet: jax.Array
    edge_heat: jax.Array
    boundary_inflow: jax.Array
    boundary_outflow: jax.Array


def _sweeps(apply, diag, b, x0, max_sweeps, rtol):
    """Jacobi x <- (b + apply(x)) / diag until the largest change is at most
    rtol * max|x| (it becomes exactly 0 for an acyclic flow)."""
    dt = b.dtype
    hist0 = jnp.full((max_sweeps + 1,), jnp.nan, dt)

    def step(x):
        return (b + apply(x)) / diag

    def cond(s):
        k, _, change, _ = s
        return (k < max_sweeps) & (change > 0.0)

    def body(s):
        k, x, _, hist = s
        xn = step(x)
        scale = jnp.maximum(jnp.max(jnp.abs(xn)), jnp.finfo(dt).tiny)
        change = jnp.max(jnp.abs(xn - x)) / scale
        change = jnp.where(change <= rtol, 0.0, change)
        return k + 1, xn, change, hist.at[k + 1].set(change)

    s0 = (jnp.asarray(0, jnp.int32), x0, jnp.asarray(jnp.inf, dt), hist0.at[0].set(jnp.inf))
    k, x, change, hist = jax.lax.while_loop(cond, body, s0)
    return x, (k, change, hist)


def network_temperatures(
    network,
    flow,
    heat,
    fluid,
    inlet_temperature,
    outlet_set_temperature=None,
    outlet_set_mask=None,
    method="dense",
    max_sweeps=None,
):
    """Advected temperatures with perfect mixing at the nodes.

    The steady energy balance of node n,

        cp (sum_{e into n} mdot_e + mdot_in,n) T_n
            = sum_{e into n} (cp mdot_e T_up(e) + heat_e) + cp mdot_in,n T_inlet,n,

    where "into n" follows the actual flow direction, mdot_e = rho |Q_e|,
    T_up(e) is the temperature of the edge's upstream node and mdot_in,n the
    flow entering the network from outside at node n (fixed-pressure nodes
    and supplies; taken from the flows themselves, B Q, so the balance is
    exact for any flows). Fluid leaves every node at its mixed temperature;
    edge outlet temperature T_out = T_in + heat / (cp mdot). A zero-flow
    edge hands its heat to its ``to`` node. Nodes that receive no flow take
    the flow-weighted mean inlet temperature (their heat, if any, is lost:
    give every heated edge a flow). Every loop of the flow needs a
    set-temperature edge (a CDU) or a through-flow, else no steady state
    exists.

    Energy is conserved to round-off: sum(edge_heat) = cp (sum_n outflow_n
    T_n - sum_n inflow_n T_inlet,n).

    Args:
        network: static :class:`~kernels.network.Network`.
        flow: edge flows (m^3/s), shape (n_edges,).
        heat: heat added to the fluid by every edge (W), shape (n_edges,).
        fluid: density (kg/m^3) and specific_heat (J/(kg K)) are used.
        inlet_temperature: temperature of fluid entering from outside at every
            node, shape (n_nodes,) (used only where fluid enters).
        outlet_set_temperature, outlet_set_mask: optional, shape (n_edges,):
            edges whose outlet temperature is prescribed (a CDU or a heat
            exchanger with a controlled leaving temperature); their ``heat``
            is ignored and the heat they exchange is reported.
        method: ``"dense"`` or ``"sweep"`` (static; see the module docstring).
        max_sweeps: sweep limit (static), default 10 n_nodes + 100. An
            acyclic flow needs at most n_nodes + 1 (then the sweep stops by
            itself); a recirculating loop needs about (loop length) x
            log(eps) / log(recirculation ratio).

    Returns:
        (NetworkTemperatures, SolveInfo); for ``"sweep"`` the history is the
        relative change per sweep, for ``"dense"`` the relative residual of
        the linear system.
    """
    lay = network._layout
    q = jnp.asarray(flow)
    dt = q.dtype
    tiny = jnp.finfo(dt).tiny
    heat = jnp.asarray(heat, dt)
    t_inlet = jnp.asarray(inlet_temperature, dt)
    rho = jnp.asarray(fluid.density, dt)
    cp = jnp.asarray(fluid.specific_heat, dt)
    n = network.n_nodes
    src, dst = jnp.asarray(lay.src), jnp.asarray(lay.dst)
    forward = q >= 0
    up = jnp.where(forward, src, dst)
    down = jnp.where(forward, dst, src)
    mdot = rho * jnp.abs(q)
    ext = jnp.zeros((n,), dt).at[src].add(q).at[dst].add(-q)  # outflow - inflow over edges
    m_in_ext = rho * jnp.maximum(ext, 0.0)
    m_out_ext = rho * jnp.maximum(-ext, 0.0)
    if outlet_set_mask is None:
        is_set = jnp.zeros(q.shape, bool)
        t_set = jnp.zeros_like(q)
    else:
        is_set = jnp.asarray(outlet_set_mask, bool)
        t_set = jnp.asarray(outlet_set_temperature, dt)
    inflow = jnp.zeros((n,), dt).at[down].add(mdot) + m_in_ext
    t_mix_in = jnp.sum(m_in_ext * t_inlet) / jnp.maximum(jnp.sum(m_in_ext), tiny)
    stagnant = inflow <= 1.0e-14 * jnp.maximum(jnp.max(inflow), tiny)

    diag = jnp.where(stagnant, 1.0, cp * inflow)
    kappa = jnp.where(is_set | stagnant[down], 0.0, cp * mdot)  # coupling down <- up
    src_terms = jnp.where(is_set, cp * mdot * t_set, heat)
    b = jnp.zeros((n,), dt).at[down].add(src_terms) + cp * m_in_ext * t_inlet
    b = jnp.where(stagnant, t_mix_in, b)

    def couple(t):  # C t
        return jnp.zeros((n,), dt).at[down].add(kappa * t[up])

    def couple_t(y):  # C^T y
        return jnp.zeros((n,), dt).at[up].add(kappa * y[down])

    def matvec(t):
        return diag * t - couple(t)

    if method == "sweep":
        limit = int(max_sweeps) if max_sweeps is not None else 10 * n + 100
        rtol = 16.0 * float(jnp.finfo(dt).eps)
        x0 = jnp.full((n,), t_mix_in, dt)

        def solve(_, rhs):
            return _sweeps(couple, diag, rhs, x0, limit, rtol)

        def transpose_solve(_, rhs):
            return _sweeps(couple_t, diag, rhs, rhs / diag, limit, rtol)

        t_node, (k, change, hist) = jax.lax.custom_linear_solve(matvec, b, solve, transpose_solve, has_aux=True)
        info = SolveInfo(converged=change == 0.0, iterations=k, residual=change, history=hist)
    elif method == "dense":
        rows = jnp.arange(n)
        a = jnp.zeros((n, n), dt).at[rows, rows].set(diag).at[down, up].add(-kappa)
        t_node = _dense.solve(a, b)
        res = jnp.max(jnp.abs(matvec(t_node) - b)) / jnp.maximum(jnp.max(jnp.abs(b)), tiny)
        info = SolveInfo(
            converged=jnp.isfinite(res),
            iterations=jnp.asarray(1, jnp.int32),
            residual=res,
            history=res[None],
        )
    else:
        raise ValueError(f"unknown method {method!r}: use 'sweep' or 'dense'")

    t_in = t_node[up]
    moving = mdot > 0
    safe_m = jnp.where(moving, mdot, 1.0)
    t_out = jnp.where(is_set, t_set, jnp.where(moving, t_in + heat / (cp * safe_m), t_node[down]))
    edge_heat = jnp.where(is_set, cp * mdot * (t_set - t_in), heat)
    temps = NetworkTemperatures(
        node=t_node,
        edge_inlet=t_in,
        edge_outlet=t_out,
        edge_heat=edge_heat,
        boundary_inflow=m_in_ext,
        boundary_outflow=m_out_ext,
    )
    return temps, info
