"""Coolant temperatures in time on a flow network: transport with delay and
mixing.

For given edge flows (from :func:`kernels.network.solve_network`, fixed over
the trace or given per time level), the coolant of every edge (a pipe, a hose,
a cold plate's channels) is carried by the flow through the edge's volume,
mixes in each node's volume (a manifold header, a tank, a CDU's reservoir),
and takes up the heat of the edge, directly or through a lumped wall (a cold
plate's metal with a heat capacity and a plate-to-coolant conductance, so the
plate, that is the junction side, lags its power). The state is

* ``n_cells`` coolant cells per edge (``rho cp V_e / n_cells`` each, J/K),
  numbered from the edge's ``from`` end;
* one well-mixed volume per node (``rho cp V_n``; a zero volume makes the
  node an algebraic mixing point, as in the steady solver);
* one wall temperature per edge named in ``wall_edges``.

With ``C`` the heat capacities and ``A`` the advection and wall-coupling
matrix (W/K; ``m_dot c_p = rho c_p |Q|`` from each cell to the next in the
flow direction, from a node to the first cell of every edge leaving it, from
an edge's last cell to its downstream node), the balance

    ``C dT/dt = -A T + f(t)``

holds exactly for the discrete volumes; ``f`` holds the heat of unwalled
edges (spread evenly over their cells), the plate power of walled edges (on
the wall), ``m_dot c_p T_inlet`` where fluid enters the network, and
``m_dot c_p T_set`` on the downstream node of a set-temperature edge (a CDU
or a heat exchanger with a controlled leaving temperature, which replaces
the edge's outlet temperature; the heat it exchanges is reported). Leaving
fluid carries its node's temperature.

Transport scheme: implicit first-order upwind in space on ``n_cells`` cells
per edge (the tanks-in-series model). Its mean delay is exactly
``V_e / Q_e`` for every ``n_cells`` and time step; a step at the inlet
arrives (half height at the outlet) at ``V/Q (1 - 1/(3 n_cells))``
(the median of the Erlang distribution), and its front spreads with
standard deviation ``sqrt(tau^2 / n_cells + tau dt)`` for backward Euler
(``tau = V/Q``; each cell's discrete response adds ``(tau/n)^2 + (tau/n) dt``
to the variance), so the 10-90 % rise takes about 2.56 of those. The time
step is not limited by the cells' Courant number:
large steps stay stable and smear the front (backward Euler and BDF2
do not ring; Crank-Nicolson, not L-stable, may ring after a sudden step).

Time schemes (``"euler"``, ``"bdf2"``, ``"cn"``) as in
:mod:`..plant.lumped`: implicit; when the flows are fixed the step matrix is
inverted once (one LU) and each step is one dense matrix-vector product (about
6x faster on CPU than two triangular solves per step), when they change each
step is one dense solve. Energy:
``E = sum(C T)`` satisfies ``E_{m+1} - E_m = dt * rate(t_{m+1})`` for
backward Euler, with the average of both ends for Crank-Nicolson, where
``rate = heat in + inflow enthalpy - outflow enthalpy`` (returned per level
by :func:`integrate` as ``heat_rate``). In steady state the temperatures
equal :func:`kernels.network.network_temperatures` (same mixing rules; a
heated edge needs a flow).

Pure JAX: ``jit``- and ``vmap``-able over scenarios (flows, volumes,
powers, inlet temperatures, walls), float32 and float64, differentiable in
both modes (the LU and solves are differentiated by JAX).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax

from ..solvers import dense as _dense

__all__ = ["SCHEMES", "TransportConfig", "TransportInputs", "TransportTrace", "integrate", "steady_state", "state_size"]

SCHEMES = ("euler", "bdf2", "cn")


@dataclass(frozen=True)
class TransportConfig:
    """Static settings (hashable).

    Attributes:
        n_cells: coolant cells per edge (>= 1); the delay is exact for any
            value, the front sharpens as ``1/sqrt(n_cells)``.
        scheme: ``"euler"``, ``"bdf2"`` (first step backward Euler) or ``"cn"``.
        wall_edges: edges with a lumped wall (cold plates): their heat goes
            into the wall, which passes it to the coolant through a
            conductance. Other edges heat the coolant directly.
    """

    n_cells: int = 8
    scheme: str = "euler"
    wall_edges: tuple[int, ...] = ()

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown time scheme {self.scheme!r}; one of {SCHEMES}")
        if int(self.n_cells) < 1:
            raise ValueError(f"n_cells must be >= 1, got {self.n_cells}")


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class TransportInputs:
    """Traced inputs (one scenario; ``vmap`` over any of them).

    Attributes:
        flow: edge flows, m^3/s, shape ``(n_edges,)`` (fixed) or
            ``(n_steps + 1, n_edges)`` (per time level; the step to level
            ``m`` uses the flows of level ``m``).
        heat: heat of every edge at every time level, W,
            ``(n_steps + 1, n_edges)``; on walled edges it enters the wall.
        inlet_temperature: temperature of fluid entering from outside at each
            node, ``(n_nodes,)`` or ``(n_steps + 1, n_nodes)``.
        edge_volume: coolant volume of every edge, m^3, ``(n_edges,)``.
        node_volume: mixing volume of every node, m^3, ``(n_nodes,)`` (>= 0).
        density, specific_heat: coolant, kg/m^3 and J/(kg K) (scalars).
        wall_capacity: heat capacity of each wall, J/K, ``(n_walls,)`` (> 0).
        wall_conductance: wall-to-coolant conductance, W/K, ``(n_walls,)``
            (> 0), spread evenly over the edge's cells.
        outlet_set_temperature, outlet_set_mask: optional
            (``(n_edges,)`` or ``(n_steps + 1, n_edges)``, and ``(n_edges,)``
            bool): edges whose outlet temperature is prescribed.
    """

    flow: jax.Array
    heat: jax.Array
    inlet_temperature: jax.Array
    edge_volume: jax.Array
    node_volume: jax.Array
    density: jax.Array
    specific_heat: jax.Array
    wall_capacity: jax.Array | None = None
    wall_conductance: jax.Array | None = None
    outlet_set_temperature: jax.Array | None = None
    outlet_set_mask: jax.Array | None = None


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class TransportTrace:
    """Result of :func:`integrate`, every field over the time levels
    ``t_m = m dt`` (leading axis ``n_steps + 1``; row 0 the initial state).

    Attributes:
        node: node temperatures, ``(n_steps + 1, n_nodes)``.
        edge_outlet: temperature leaving every edge (its downstream cell, or
            the set temperature), ``(n_steps + 1, n_edges)``.
        wall: wall temperatures, ``(n_steps + 1, n_walls)``.
        edge_heat: heat given to the coolant by every edge, W (through the
            wall on walled edges; ``cp mdot (T_set - T_last cell)`` on set
            edges), ``(n_steps + 1, n_edges)``.
        stored_heat: ``sum(C T)``, J relative to 0 in the temperature unit,
            ``(n_steps + 1,)``.
        heat_rate: ``dE/dt`` the inputs and boundary flows imply at each
            level: heat into walls and unwalled edges, set-edge heat, plus
            inflow minus outflow enthalpy, W, ``(n_steps + 1,)``.
        state: the full state at the last level (cells, nodes, walls), to
            continue a trace.
    """

    node: jax.Array
    edge_outlet: jax.Array
    wall: jax.Array
    edge_heat: jax.Array
    stored_heat: jax.Array
    heat_rate: jax.Array
    state: jax.Array


def state_size(network, config: TransportConfig) -> int:
    """Length of the state vector: ``n_edges n_cells + n_nodes + n_walls``."""
    return network.n_edges * int(config.n_cells) + network.n_nodes + len(config.wall_edges)


def _empty_walls(inp, dt):
    if inp.wall_capacity is None:
        return jnp.zeros((0,), dt), jnp.zeros((0,), dt)
    return jnp.asarray(inp.wall_capacity, dt), jnp.asarray(inp.wall_conductance, dt)


def _check_shapes(network, config: TransportConfig, inp: TransportInputs) -> None:
    """Shapes are static: a mismatch raises while tracing, naming the input."""
    n_e, n_n, n_w = network.n_edges, network.n_nodes, len(config.wall_edges)
    if any(not 0 <= e < n_e for e in config.wall_edges) or len(set(config.wall_edges)) != n_w:
        raise ValueError(f"wall_edges {config.wall_edges} must be distinct edge indices in [0, {n_e})")
    want = {"heat": (None, n_e), "edge_volume": (n_e,), "node_volume": (n_n,)}
    if n_w:
        want.update(wall_capacity=(n_w,), wall_conductance=(n_w,))
    if inp.outlet_set_mask is not None:
        want["outlet_set_mask"] = (n_e,)
    for name, shape in want.items():
        x = getattr(inp, name)
        got = tuple(jnp.shape(x)) if x is not None else None
        if (
            got is None
            or len(got) != len(shape)
            or any(w is not None and g != w for g, w in zip(got, shape, strict=False))
        ):
            raise ValueError(f"TransportInputs.{name}: shape {got}, expected {shape} (None: any length)")
    for name, width in (("flow", n_e), ("inlet_temperature", n_n), ("outlet_set_temperature", n_e)):
        x = getattr(inp, name)
        if x is None:
            continue
        if jnp.ndim(x) not in (1, 2) or jnp.shape(x)[-1] != width:
            raise ValueError(f"TransportInputs.{name}: shape {jnp.shape(x)}, expected ({width},) or (levels, {width})")
        if jnp.ndim(x) == 2 and jnp.shape(x)[0] != jnp.shape(inp.heat)[0]:
            raise ValueError(f"TransportInputs.{name}: {jnp.shape(x)[0]} levels, heat has {jnp.shape(inp.heat)[0]}")
    if config.scheme == "bdf2" and jnp.shape(inp.heat)[0] < 2:
        raise ValueError("bdf2 needs at least two time levels (heat.shape[0] >= 2)")


class _Model:
    """Capacities, the matrix ``A`` for given flows, and ``f`` for given inputs."""

    def __init__(self, network, config: TransportConfig, inp: TransportInputs, dt):
        lay = network._layout
        self.n_e, self.n_n, self.n_c = network.n_edges, network.n_nodes, int(config.n_cells)
        self.walls = jnp.asarray(config.wall_edges, jnp.int32) if config.wall_edges else jnp.zeros((0,), jnp.int32)
        self.n_w = len(config.wall_edges)
        _check_shapes(network, config, inp)
        self.src, self.dst = jnp.asarray(lay.src, jnp.int32), jnp.asarray(lay.dst, jnp.int32)
        self.dt = dt
        self.rho = jnp.asarray(inp.density, dt)
        self.cp = jnp.asarray(inp.specific_heat, dt)
        self.wall_c, self.wall_g = _empty_walls(inp, dt)
        self.walled = jnp.zeros((self.n_e,), bool).at[self.walls].set(True)
        if inp.outlet_set_mask is None:
            self.is_set = jnp.zeros((self.n_e,), bool)
        else:
            self.is_set = jnp.asarray(inp.outlet_set_mask, bool)
        rcp = self.rho * self.cp
        cell_c = jnp.repeat(rcp * jnp.asarray(inp.edge_volume, dt) / self.n_c, self.n_c)
        self.node_c = rcp * jnp.asarray(inp.node_volume, dt)
        self.C = jnp.concatenate([cell_c, self.node_c, self.wall_c])
        self.size = self.n_e * self.n_c + self.n_n + self.n_w
        # indices
        e = jnp.arange(self.n_e, dtype=jnp.int32)
        self.first_cell = e * self.n_c  # at the edge's ``from`` end
        self.last_cell = e * self.n_c + self.n_c - 1
        self.node0 = self.n_e * self.n_c
        self.wall0 = self.node0 + self.n_n

    def flows(self, q):
        """Per-edge quantities that depend on the flows."""
        q = jnp.asarray(q, self.dt)
        fwd = q >= 0
        rate = self.rho * self.cp * jnp.abs(q)
        ext = jnp.zeros((self.n_n,), self.dt).at[self.src].add(q).at[self.dst].add(-q)
        r_in = self.rho * self.cp * jnp.maximum(ext, 0.0)  # entering from outside, W/K
        r_out = self.rho * self.cp * jnp.maximum(-ext, 0.0)
        up = jnp.where(fwd, self.src, self.dst)
        down = jnp.where(fwd, self.dst, self.src)
        inflow = jnp.zeros((self.n_n,), self.dt).at[down].add(rate) + r_in
        tiny = jnp.finfo(self.dt).tiny
        stagnant = inflow <= 1.0e-14 * jnp.maximum(jnp.max(inflow), tiny)
        algebraic = stagnant & (self.node_c <= 0)
        return dict(
            q=q, fwd=fwd, rate=rate, r_in=r_in, r_out=r_out, up=up, down=down, inflow=inflow, algebraic=algebraic
        )

    def outlet_cell(self, fl):
        return jnp.where(fl["fwd"], self.last_cell, self.first_cell)

    def matrix(self, fl):
        n_c = self.n_c
        rate, fwd = fl["rate"], fl["fwd"]
        A = jnp.zeros((self.size, self.size), self.dt)
        cells = jnp.arange(self.n_e * n_c, dtype=jnp.int32)
        k = cells % n_c
        edge_of = cells // n_c
        r = rate[edge_of]
        f = fwd[edge_of]
        A = A.at[cells, cells].add(r)
        # upstream neighbour of each cell: the previous cell, or the upstream node
        first = jnp.where(f, k == 0, k == n_c - 1)
        prev = jnp.where(f, cells - 1, cells + 1)
        up_node = self.node0 + fl["up"][edge_of]
        col = jnp.where(first, up_node, jnp.clip(prev, 0, self.n_e * n_c - 1))
        A = A.at[cells, col].add(-r)
        # nodes: inflow at the node temperature out, edge outlets in
        nodes = self.node0 + jnp.arange(self.n_n, dtype=jnp.int32)
        alg = fl["algebraic"]
        A = A.at[nodes, nodes].add(jnp.where(alg, 1.0, fl["inflow"]))
        couple = jnp.where(self.is_set | alg[fl["down"]], 0.0, rate)
        A = A.at[self.node0 + fl["down"], self.outlet_cell(fl)].add(-couple)
        # walls: G/n between the wall and each cell of its edge
        if self.n_w:
            g = self.wall_g / n_c
            wi = self.wall0 + jnp.arange(self.n_w, dtype=jnp.int32)
            wc = self.walls[:, None] * n_c + jnp.arange(n_c, dtype=jnp.int32)[None, :]  # (n_w, n_c)
            A = A.at[wi, wi].add(self.wall_g)
            A = A.at[wc, wc].add(g[:, None])
            A = A.at[wi[:, None], wc].add(-g[:, None])
            A = A.at[wc, wi[:, None]].add(-g[:, None])
        return A

    def forcing(self, fl, heat, t_inlet, t_set):
        heat = jnp.asarray(heat, self.dt)
        t_inlet = jnp.asarray(t_inlet, self.dt)
        t_set = jnp.zeros((self.n_e,), self.dt) if t_set is None else jnp.asarray(t_set, self.dt)
        direct = jnp.where(self.walled, 0.0, heat) / self.n_c
        f_cells = jnp.repeat(direct, self.n_c)
        r_in = fl["r_in"]
        set_in = jnp.where(self.is_set, fl["rate"] * t_set, 0.0)
        f_nodes = jnp.zeros((self.n_n,), self.dt).at[fl["down"]].add(set_in) + r_in * t_inlet
        t_mix = jnp.sum(r_in * t_inlet) / jnp.maximum(jnp.sum(r_in), jnp.finfo(self.dt).tiny)
        f_nodes = jnp.where(fl["algebraic"], t_mix, f_nodes)
        f_walls = heat[self.walls]
        return jnp.concatenate([f_cells, f_nodes, f_walls])

    def report(self, fl, T, heat, t_inlet, t_set):
        """Edge outlets, walls, edge heats, stored heat and dE/dt at state T."""
        heat = jnp.asarray(heat, self.dt)
        t_inlet = jnp.asarray(t_inlet, self.dt)
        t_set = jnp.zeros((self.n_e,), self.dt) if t_set is None else jnp.asarray(t_set, self.dt)
        cells = T[: self.node0].reshape(self.n_e, self.n_c)
        nodes = T[self.node0 : self.wall0]
        walls = T[self.wall0 :]
        t_last = T[self.outlet_cell(fl)]
        out = jnp.where(self.is_set, t_set, t_last)
        set_heat = jnp.where(self.is_set, fl["rate"] * (t_set - t_last), 0.0)
        wall_heat = jnp.zeros((self.n_e,), self.dt)
        if self.n_w:
            wall_heat = wall_heat.at[self.walls].set(self.wall_g * (walls - jnp.mean(cells[self.walls], axis=1)))
        e_heat = jnp.where(self.walled, wall_heat, heat) + set_heat
        rate = jnp.sum(heat) + jnp.sum(set_heat) + jnp.sum(fl["r_in"] * t_inlet) - jnp.sum(fl["r_out"] * nodes)
        return nodes, out, walls, e_heat, jnp.sum(self.C * T), rate


def _levels(x, n_levels, width, dt):
    """Broadcast an input to ``(n_levels, width)``."""
    x = jnp.asarray(x, dt)
    return jnp.broadcast_to(x, (n_levels, width)) if x.ndim == 1 else x


def steady_state(network, config: TransportConfig, inputs: TransportInputs, level: int = 0) -> jax.Array:
    """The state in which the inputs of time level ``level`` hold forever:
    ``A T = f`` (every node volume's inflow must be nonzero or the node's
    temperature is undefined; walls need a conductance). Returns the state
    vector (cells, nodes, walls), length :func:`state_size`."""
    dt = jnp.asarray(inputs.heat).dtype
    m = _Model(network, config, inputs, dt)
    pick = _picker(inputs, m, dt)
    fl = m.flows(pick("flow", level))
    A = m.matrix(fl)
    return _dense.solve(A, m.forcing(fl, pick("heat", level), pick("inlet", level), pick("set", level)))


def _picker(inputs, m, dt):
    heat = jnp.asarray(inputs.heat, dt)

    def pick(name, level):
        if name == "heat":
            return heat[level]
        x = {"flow": inputs.flow, "inlet": inputs.inlet_temperature, "set": inputs.outlet_set_temperature}[name]
        if x is None:
            return None
        x = jnp.asarray(x, dt)
        return x if x.ndim == 1 else x[level]

    return pick


def integrate(network, config: TransportConfig, inputs: TransportInputs, time_step, initial=None) -> TransportTrace:
    """Step the coolant, node and wall temperatures through the trace.

    Args:
        network: static :class:`~kernels.network.Network` (its topology only).
        config: static :class:`TransportConfig`.
        inputs: :class:`TransportInputs`; the number of time levels is
            ``inputs.heat.shape[0]`` (``n_steps + 1``, level ``m`` at
            ``t = m * time_step``).
        time_step: s (traced).
        initial: state vector (:func:`state_size`) at level 0; default the
            steady state of level 0's inputs (:func:`steady_state`).

    Returns:
        :class:`TransportTrace`. The dtype is that of ``inputs.heat``.
    """
    dtype = jnp.asarray(inputs.heat).dtype
    m = _Model(network, config, inputs, dtype)
    n_lev = inputs.heat.shape[0]
    heat = jnp.asarray(inputs.heat, dtype)
    t_in = _levels(inputs.inlet_temperature, n_lev, m.n_n, dtype)
    t_set = (
        jnp.zeros((n_lev, m.n_e), dtype)
        if inputs.outlet_set_temperature is None
        else _levels(inputs.outlet_set_temperature, n_lev, m.n_e, dtype)
    )
    q_all = jnp.asarray(inputs.flow, dtype)
    fixed = q_all.ndim == 1
    q = _levels(q_all, n_lev, m.n_e, dtype)
    h = jnp.asarray(time_step, dtype)
    C = m.C
    T0 = steady_state(network, config, inputs) if initial is None else jnp.asarray(initial, dtype)
    scheme = config.scheme

    def f_at(fl, k):
        return m.forcing(fl, heat[k], t_in[k], t_set[k])

    if fixed:
        fl0 = m.flows(q_all)
        A0 = m.matrix(fl0)
        eye = jnp.eye(m.size, dtype=dtype)

        def inverse(M):  # explicit inverse from one LU: each step is then one matrix-vector product
            return _dense.solve(M, eye)

        inv = {
            "euler": inverse(jnp.diag(C / h) + A0),
            "cn": inverse(jnp.diag(C / h) + 0.5 * A0) if scheme == "cn" else None,
            "bdf2": inverse(jnp.diag(1.5 * C / h) + A0) if scheme == "bdf2" else None,
        }

        def solve(kind, k, rhs):
            return inv[kind] @ rhs

        def flows_at(k):
            return fl0

        def matrix_at(k):
            return A0
    else:
        coef = {"euler": (1.0, 1.0), "cn": (1.0, 0.5), "bdf2": (1.5, 1.0)}

        def flows_at(k):
            return m.flows(q[k])

        def matrix_at(k):
            return m.matrix(flows_at(k))

        def solve(kind, k, rhs):
            a, th = coef[kind]
            return _dense.solve(jnp.diag(a * C / h) + th * matrix_at(k), rhs)

    def rep(T, k):
        return m.report(flows_at(k), T, heat[k], t_in[k], t_set[k])

    def euler_step(T, k):
        return solve("euler", k, C / h * T + f_at(flows_at(k), k))

    def stack(first, rest):
        return jax.tree_util.tree_map(lambda *a: jnp.concatenate([x[None] for x in a[:-1]] + [a[-1]]), *first, rest)

    ks = jnp.arange(1, n_lev)
    if scheme == "euler":

        def step(T, k):
            Tn = euler_step(T, k)
            return Tn, rep(Tn, k)

        T_end, rest = lax.scan(step, T0, ks)
        out = stack([rep(T0, 0)], rest)
    elif scheme == "cn":

        def step(T, k):
            f_avg = 0.5 * (f_at(flows_at(k - 1), k - 1) + f_at(flows_at(k), k))
            Tn = solve("cn", k, C / h * T - 0.5 * (matrix_at(k - 1) @ T) + f_avg)
            return Tn, rep(Tn, k)

        T_end, rest = lax.scan(step, T0, ks)
        out = stack([rep(T0, 0)], rest)
    else:
        T1 = euler_step(T0, 1)

        def step(carry, k):
            T, Tp = carry
            Tn = solve("bdf2", k, C / h * (2.0 * T - 0.5 * Tp) + f_at(flows_at(k), k))
            return (Tn, T), rep(Tn, k)

        (T_end, _), rest = lax.scan(step, (T1, T0), ks[1:])
        out = stack([rep(T0, 0), rep(T1, 1)], rest)
    nodes, outlet, walls, e_heat, stored, rate = out
    return TransportTrace(
        node=nodes, edge_outlet=outlet, wall=walls, edge_heat=e_heat, stored_heat=stored, heat_rate=rate, state=T_end
    )
