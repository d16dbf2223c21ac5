"""Hydraulic and thermal networks: flows, pressures and advected temperatures.

A network is a directed graph of ``n_nodes`` nodes and ``n_edges`` edges held
as arrays. The direction of an edge (``edge_from`` -> ``edge_to``) only fixes
the sign convention: a positive flow runs from ``from`` to ``to``, a negative
flow the other way.

Static / traced split
    :class:`Network` (static, hashable): node count, edge end points, the edge
    law of every edge (:class:`EdgeKind`), the fixed-pressure nodes and, for
    tee edges, the partner leg of the same tee (run <-> branch).
    :class:`EdgeParams`, :class:`Fluid`, :class:`Boundary` (traced pytrees):
    every number a user sweeps. ``vmap`` over them never recompiles.

Edge laws (pressure loss ``dp(Q)`` in Pa from ``from`` to ``to``, odd in Q):
    ``PIPE``: Darcy-Weisbach, dp = f L/D rho u|u|/2 + K rho u|u|/2, with the
    full-range friction factor of :func:`friction_factor` (64/Re exactly in
    laminar flow, Churchill's 1977 transition, the Colebrook equation as the
    turbulent asymptote). ``PIPE_CHURCHILL``: the same with Churchill's
    explicit turbulent branch. ``FLOW_COEFFICIENT``: quick disconnects and
    fittings rated by Kv (m^3/h at 1 bar for water; :func:`kv_from_cv`),
    dp = 1 bar * (rho/1000) * (Q/Kv)^2. ``POWER_LAW``: fitted component
    curves dp = a Q + b Q|Q|^(n-1) (cold plates: n ~ 1.85). ``TABLE``:
    tabulated dp(Q) through (0, 0), monotone cubic (Fritsch-Carlson PCHIP)
    interpolation, linear beyond the last point. ``LOGLOG_TABLE``: tabulated
    dp(Q) at positive flows, a power law between neighbouring points
    (:func:`loglog_interp`; exact for dp ~ Q^n), continued along the last
    segment above the table and along the first (exponent at least 1) below
    it, down to 0 at Q = 0. ``PUMP``: dp = -(s^2 dp0 -
    s r1 Q - r2 Q|Q|), a curve at speed ratio s following the affinity laws.
    ``VALVE``: Kv law with Kv = Kvs * phi(opening), phi = R^(opening - 1)
    (equal percentage, rangeability R > 1) or phi = opening (R = 1).
    ``TEE_*``: a pipe leg of a sharp 90-degree tee plus the split-dependent
    tee loss of Crane TP-410 (see :func:`tee_loss_coefficient`).

Pressures are static pressures in Pa; with node elevations z the solver works
with the piezometric pressure p + rho g z. Velocity heads are not tracked at
nodes (their changes are inside the loss coefficients), as in EPANET-type
network models.

Solve
    Newton on edge flows and nodal pressures together (the global gradient
    method of Todini & Pilati 1988): the flows are eliminated edge by edge and
    the Newton step needs one symmetric positive definite solve on the free
    nodes; series chains of edges are condensed exactly and the remaining
    nodes are factorised per connected block (dense Cholesky; see
    ``kernels/network/linalg.py``). A backtracking
    line search on a scaled residual norm (infeasible-start Newton, Boyd &
    Vandenberghe 2004, section 10.3) makes it globally convergent for
    monotone edge laws. At zero flow the quadratic laws have a zero slope; the
    Jacobian uses the slope at a small floor flow there, the laws themselves
    are never modified, so a converged solution satisfies the exact laws.
    The converged solve is differentiated implicitly (custom VJP through the
    Newton system), never through the iterations.

Thermal transport (:func:`network_temperatures`)
    Temperatures advected with the flow, perfect mixing at nodes, heat added
    per edge; linear in the temperatures for given flows. Solved by sweeps
    that are exact for acyclic flow, or by a dense LU
    (``kernels/network/thermal.py``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property, partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..diagnostics import SolveInfo
from . import laws as _laws
from .laws import (
    friction_factor,
    friction_factor_colebrook,
    kv_from_cv,
    loglog_interp,
    pchip_eval,
    tee_loss_coefficient,
)
from .linalg import Layout
from .thermal import NetworkTemperatures, network_temperatures

__all__ = [
    "GRAVITY",
    "Boundary",
    "EdgeKind",
    "EdgeParams",
    "Fluid",
    "Network",
    "NetworkBuilder",
    "NetworkSolution",
    "NetworkTemperatures",
    "NewtonOptions",
    "check_solution",
    "edge_pressure_loss",
    "friction_factor",
    "friction_factor_colebrook",
    "kv_from_cv",
    "network_temperatures",
    "loglog_interp",
    "pchip_eval",
    "solve_network",
    "tee_loss_coefficient",
    "validate_network",
    "validate_params",
]

GRAVITY = 9.80665  # m/s^2


class EdgeKind(enum.IntEnum):
    """Edge law selector (one integer per edge, see the module docstring)."""

    PIPE = _laws.PIPE
    PIPE_CHURCHILL = _laws.PIPE_CHURCHILL
    FLOW_COEFFICIENT = _laws.FLOW_COEFFICIENT
    POWER_LAW = _laws.POWER_LAW
    TABLE = _laws.TABLE
    PUMP = _laws.PUMP
    VALVE = _laws.VALVE
    TEE_DIVIDING_BRANCH = _laws.TEE_DIVIDING_BRANCH
    TEE_DIVIDING_RUN = _laws.TEE_DIVIDING_RUN
    TEE_COMBINING_BRANCH = _laws.TEE_COMBINING_BRANCH
    TEE_COMBINING_RUN = _laws.TEE_COMBINING_RUN
    LOGLOG_TABLE = _laws.LOGLOG_TABLE


_TEE_SET = frozenset(_laws.TEE_KINDS)


# =============================================================== data types
@dataclass(frozen=True)
class Network:
    """Static topology of a flow network (hashable; a ``jit`` static argument).

    Attributes:
        n_nodes: number of nodes.
        edge_from, edge_to: end nodes of every edge (tuples of ints, length
            n_edges); positive flow runs from ``edge_from`` to ``edge_to``.
        edge_kind: :class:`EdgeKind` of every edge.
        fixed_nodes: nodes whose pressure is prescribed (a reservoir, the
            CDU supply/return, an expansion tank); at least one per connected
            part of the network.
        tee_partner: for every edge, the index of the other leg of its tee
            (tee kinds only: the branch edge of a run edge and the run edge of
            a branch edge), else -1. Empty means no tees. Both legs touch the
            tee's junction node (they start there for a dividing tee, end
            there for a combining one); the combined flow is the sum of the
            two legs' flows, so the junction's third edge carries it.
        node_labels, edge_labels: optional names used in error messages.
    """

    n_nodes: int
    edge_from: tuple[int, ...]
    edge_to: tuple[int, ...]
    edge_kind: tuple[int, ...]
    fixed_nodes: tuple[int, ...]
    tee_partner: tuple[int, ...] = ()
    node_labels: tuple[str, ...] = ()
    edge_labels: tuple[str, ...] = ()

    @property
    def n_edges(self) -> int:
        return len(self.edge_from)

    @property
    def has_tees(self) -> bool:
        return any(k in _TEE_SET for k in self.edge_kind)

    def node_name(self, i: int) -> str:
        return f"node {i} ({self.node_labels[i]!r})" if self.node_labels else f"node {i}"

    def edge_name(self, e: int) -> str:
        return f"edge {e} ({self.edge_labels[e]!r})" if self.edge_labels else f"edge {e}"

    @cached_property
    def _layout(self) -> Layout:
        return Layout.build(
            self.n_nodes,
            self.edge_from,
            self.edge_to,
            self.edge_kind,
            self.fixed_nodes,
            self.tee_partner,
            _TEE_SET,
        )


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class EdgeParams:
    """Traced parameters of every edge, each of shape ``(n_edges,)`` (tables
    ``(n_edges, n_points)``). A field matters only for the edge kinds named;
    other edges may hold any finite value (:class:`NetworkBuilder` fills
    harmless defaults).

    Attributes:
        length: pipe length (m). PIPE*, TEE_*.
        diameter: inner diameter (m). PIPE*, TEE_* (the edge's own leg).
        roughness: absolute roughness (m). PIPE*, TEE_*.
        k_minor: sum of minor-loss coefficients on the edge's own velocity
            head. PIPE*, TEE_*.
        kv: flow coefficient (m^3/h at 1 bar), fully open for valves.
            FLOW_COEFFICIENT, VALVE.
        opening: valve opening in (0, 1]. VALVE.
        rangeability: equal-percentage rangeability R (> 1), or 1 for a
            linear characteristic. VALVE.
        lin_coef: a (Pa s/m^3), pow_coef: b (Pa (s/m^3)^n), pow_exp: n (>= 1)
            of dp = a Q + b Q|Q|^(n-1). POWER_LAW.
        table_flow, table_dp: tabulated curve, strictly increasing flows from
            0 (m^3/s) and non-decreasing losses from 0 (Pa). TABLE. Or
            strictly increasing positive flows and losses. LOGLOG_TABLE.
        pump_dp0: shut-off pressure rise at speed ratio 1 (Pa); pump_r1
            (Pa s/m^3), pump_r2 (Pa s^2/m^6): curve dp = dp0 - r1 Q - r2 Q|Q|
            at s = 1; pump_speed: speed ratio s. PUMP.
        area_ratio: A_branch / A_combined of the tee. TEE_*.
    """

    length: jax.Array
    diameter: jax.Array
    roughness: jax.Array
    k_minor: jax.Array
    kv: jax.Array
    opening: jax.Array
    rangeability: jax.Array
    lin_coef: jax.Array
    pow_coef: jax.Array
    pow_exp: jax.Array
    table_flow: jax.Array
    table_dp: jax.Array
    pump_dp0: jax.Array
    pump_r1: jax.Array
    pump_r2: jax.Array
    pump_speed: jax.Array
    area_ratio: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Fluid:
    """Coolant properties, scalars (traced; the application evaluates them
    at a representative temperature): density (kg/m^3), viscosity (dynamic,
    Pa s), specific_heat (cp, J/(kg K))."""

    density: jax.Array
    viscosity: jax.Array
    specific_heat: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Boundary:
    """Traced boundary data, each of shape ``(n_nodes,)``.

    Attributes:
        pressure: static pressure at the fixed-pressure nodes (Pa); entries of
            free nodes are ignored.
        supply: volumetric flow injected into each free node from outside the
            network (m^3/s, negative for a demand); ignored at fixed nodes,
            which exchange whatever the solution needs.
        elevation: node height (m) for hydrostatic pressure differences.
    """

    pressure: jax.Array
    supply: jax.Array
    elevation: jax.Array


@dataclass(frozen=True)
class NewtonOptions:
    """Static settings of :func:`solve_network`.

    Attributes:
        max_iterations: Newton iterations at most.
        rtol: convergence tolerance on the relative residual (see
            :func:`solve_network`); ``None`` means 256 machine epsilons of the
            working dtype (5.7e-14 in float64, 3.1e-5 in float32).
        max_backtracks: halvings of the step in the line search.
        armijo: sufficient-decrease parameter alpha: a step t is accepted when
            the scaled residual norm falls by the factor (1 - alpha t).
        regularization: the Jacobian of an edge uses its slope at
            ``regularization * max|Q|`` when that is steeper than the slope at
            its own flow (avoids the zero slope of quadratic laws at Q = 0).
        initial_flow: cold-start flow of every edge (m^3/s), used when no
            initial flows are passed. 1e-4 m^3/s = 6 L/min suits rack
            networks; any positive value converges, a value near the
            solution's scale saves iterations.
        linear_start: start from the flows of the network linearized at the
            start flows (the first Newton step's flows taken in full, without
            the line search; mass is conserved exactly), the pressures at the
            start's. One linear solve that spares the damped steps of a cold
            start whose flows are far from the solution's in the manifolds
            while the branches' are near it: the NVL72 rack from
            ``initial_flow``, 7-8 Newton steps without, one linear solve
            and 3 steps with (tests/test_rack.py). Off by
            default: a pump's linearization far from its curve's operating
            range can hand the Newton a start worse than the cold one.
    """

    max_iterations: int = 50
    rtol: float | None = None
    max_backtracks: int = 30
    armijo: float = 1.0e-2
    regularization: float = 1.0e-6
    initial_flow: float = 1.0e-4
    linear_start: bool = False


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class NetworkSolution:
    """Flows and pressures of a solved network.

    Attributes:
        flow: volumetric flow per edge (m^3/s), shape (n_edges,), positive
            from ``edge_from`` to ``edge_to``.
        pressure: static pressure per node (Pa), shape (n_nodes,).
        loss: pressure loss along every edge at the solution (Pa), shape
            (n_edges,); a pump's is negative (its pressure rise).
    """

    flow: jax.Array
    pressure: jax.Array
    loss: jax.Array


# ================================================================ builder
_PARAM_DEFAULTS = dict(
    length=0.0,
    diameter=1.0,
    roughness=0.0,
    k_minor=0.0,
    kv=1.0,
    opening=1.0,
    rangeability=1.0,
    lin_coef=0.0,
    pow_coef=0.0,
    pow_exp=2.0,
    pump_dp0=0.0,
    pump_r1=0.0,
    pump_r2=0.0,
    pump_speed=1.0,
    area_ratio=1.0,
)


@dataclass
class NetworkBuilder:
    """Assemble a :class:`Network` and its :class:`EdgeParams` edge by edge
    (plain Python, outside ``jit``). Nodes are referred to by label.

    Example::

        b = NetworkBuilder()
        b.node("in", fixed=True); b.node("a"); b.node("out", fixed=True)
        b.pipe("in", "a", length=2.0, diameter=0.02)
        b.flow_coefficient("a", "out", kv=2.5)
        net, params = b.build()
    """

    _labels: list[str] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)
    _fixed: list[int] = field(default_factory=list)
    _src: list[int] = field(default_factory=list)
    _dst: list[int] = field(default_factory=list)
    _kind: list[int] = field(default_factory=list)
    _ref: list[int] = field(default_factory=list)
    _elabels: list[str] = field(default_factory=list)
    _values: list[dict] = field(default_factory=list)
    _tables: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    # -- nodes
    def node(self, label: str, fixed: bool = False) -> int:
        """Add a node; ``fixed=True`` makes it a fixed-pressure node."""
        if label in self._index:
            raise ValueError(f"node label {label!r} is used twice")
        i = len(self._labels)
        self._labels.append(label)
        self._index[label] = i
        if fixed:
            self._fixed.append(i)
        return i

    def index(self, label: str) -> int:
        try:
            return self._index[label]
        except KeyError:
            raise ValueError(f"unknown node label {label!r}") from None

    @property
    def n_edges(self) -> int:
        return len(self._src)

    def _edge(self, a, b, kind, label, ref=-1, **values) -> int:
        e = len(self._src)
        self._src.append(self.index(a))
        self._dst.append(self.index(b))
        self._kind.append(int(kind))
        self._ref.append(ref)
        self._elabels.append(label or f"{a}->{b}")
        self._values.append(values)
        return e

    # -- edges
    def pipe(self, a, b, length, diameter, roughness=0.0, k_minor=0.0, label=None, churchill=False):
        """Pipe or hose (PIPE, or PIPE_CHURCHILL with ``churchill=True``)."""
        kind = EdgeKind.PIPE_CHURCHILL if churchill else EdgeKind.PIPE
        return self._edge(
            a,
            b,
            kind,
            label,
            length=length,
            diameter=diameter,
            roughness=roughness,
            k_minor=k_minor,
        )

    def fitting(self, a, b, k, diameter, label=None):
        """A fitting of loss coefficient ``k`` on the velocity in ``diameter``."""
        return self.pipe(a, b, 0.0, diameter, k_minor=k, label=label)

    def flow_coefficient(self, a, b, kv, label=None):
        """Quick disconnect or fitting rated by Kv (m^3/h at 1 bar)."""
        return self._edge(a, b, EdgeKind.FLOW_COEFFICIENT, label, kv=kv)

    def power_law(self, a, b, lin_coef=0.0, pow_coef=0.0, exponent=2.0, label=None):
        """dp = lin_coef Q + pow_coef Q|Q|^(exponent - 1); a linear resistance
        when ``pow_coef = 0``."""
        return self._edge(a, b, EdgeKind.POWER_LAW, label, lin_coef=lin_coef, pow_coef=pow_coef, pow_exp=exponent)

    def table(self, a, b, flows, dps, label=None):
        """Tabulated dp(Q) (flows from 0, strictly increasing; dps from 0)."""
        e = self._edge(a, b, EdgeKind.TABLE, label)
        self._tables[e] = (np.asarray(flows, float), np.asarray(dps, float))
        return e

    def loglog_table(self, a, b, flows, dps, label=None):
        """Tabulated dp(Q), a power law between points (flows and dps positive,
        strictly increasing); see ``EdgeKind.LOGLOG_TABLE``."""
        e = self._edge(a, b, EdgeKind.LOGLOG_TABLE, label)
        self._tables[e] = (np.asarray(flows, float), np.asarray(dps, float))
        return e

    def pump(self, a, b, dp0, r1=0.0, r2=0.0, speed=1.0, label=None):
        """Pump from ``a`` to ``b``: pressure rise s^2 dp0 - s r1 Q - r2 Q|Q|."""
        return self._edge(a, b, EdgeKind.PUMP, label, pump_dp0=dp0, pump_r1=r1, pump_r2=r2, pump_speed=speed)

    def valve(self, a, b, kv, opening=1.0, rangeability=1.0, label=None):
        """Control valve: Kv law with Kv = kv * phi(opening)."""
        return self._edge(a, b, EdgeKind.VALVE, label, kv=kv, opening=opening, rangeability=rangeability)

    def tee(
        self,
        junction,
        run_node,
        branch_node,
        dividing,
        area_ratio,
        run_length,
        run_diameter,
        branch_length,
        branch_diameter,
        roughness=0.0,
        run_k=0.0,
        branch_k=0.0,
        label=None,
    ):
        """A sharp 90-degree tee at ``junction``: two edges, the run leg
        (junction <-> run_node, on the straight path) and the branch leg
        (junction <-> branch_node), each a pipe plus its Crane TP-410 tee
        loss. ``dividing=True``: both legs leave the junction (the combined
        flow arrives through the junction's third edge); ``False``: both
        enter it. ``area_ratio`` = (branch diameter / combined diameter)^2.

        Returns:
            (run_edge, branch_edge).
        """
        e_run = self.n_edges
        e_br = e_run + 1
        base = label or f"tee@{junction}"
        if dividing:
            k_run, k_br = EdgeKind.TEE_DIVIDING_RUN, EdgeKind.TEE_DIVIDING_BRANCH
            ends_run, ends_br = (junction, run_node), (junction, branch_node)
        else:
            k_run, k_br = EdgeKind.TEE_COMBINING_RUN, EdgeKind.TEE_COMBINING_BRANCH
            ends_run, ends_br = (run_node, junction), (branch_node, junction)
        common = dict(roughness=roughness, area_ratio=area_ratio)
        self._edge(
            *ends_run, k_run, f"{base}:run", ref=e_br, length=run_length, diameter=run_diameter, k_minor=run_k, **common
        )
        self._edge(
            *ends_br,
            k_br,
            f"{base}:branch",
            ref=e_run,
            length=branch_length,
            diameter=branch_diameter,
            k_minor=branch_k,
            **common,
        )
        return e_run, e_br

    def set(self, edge: int, **values) -> None:
        """Change parameter values of an existing edge."""
        self._values[edge].update(values)

    # -- output
    def build(self, dtype=None) -> tuple[Network, EdgeParams]:
        dtype = dtype or jnp.result_type(float)
        ne = self.n_edges
        net = Network(
            n_nodes=len(self._labels),
            edge_from=tuple(self._src),
            edge_to=tuple(self._dst),
            edge_kind=tuple(self._kind),
            fixed_nodes=tuple(self._fixed),
            tee_partner=tuple(self._ref) if any(r >= 0 for r in self._ref) else (),
            node_labels=tuple(self._labels),
            edge_labels=tuple(self._elabels),
        )
        cols = {}
        for name, default in _PARAM_DEFAULTS.items():
            cols[name] = np.array([float(v.get(name, default)) for v in self._values])
        lens = {len(t[0]) for t in self._tables.values()}
        if len(lens) > 1:
            raise ValueError(f"all tabulated curves of a network need the same number of points, got {sorted(lens)}")
        npts = lens.pop() if lens else 2
        tq = np.tile(np.linspace(0.0, 1.0, npts), (ne, 1))
        tdp = tq.copy()
        for e, (q, d) in self._tables.items():
            if q.shape != d.shape or q.ndim != 1:
                raise ValueError(f"{net.edge_name(e)}: table flows and losses must be 1D of equal length")
            tq[e], tdp[e] = q, d
        params = EdgeParams(
            **{k: jnp.asarray(v, dtype) for k, v in cols.items()},
            table_flow=jnp.asarray(tq, dtype),
            table_dp=jnp.asarray(tdp, dtype),
        )
        return net, params

    def boundary(self, pressure=None, supply=None, elevation=None, dtype=None) -> Boundary:
        """Boundary arrays from dicts {label: value} (missing entries 0)."""
        dtype = dtype or jnp.result_type(float)
        n = len(self._labels)

        def arr(d):
            a = np.zeros(n)
            for k, v in (d or {}).items():
                a[self.index(k)] = v
            return jnp.asarray(a, dtype)

        return Boundary(pressure=arr(pressure), supply=arr(supply), elevation=arr(elevation))


# ============================================================ validation
def validate_network(network: Network) -> None:
    """Check a topology before solving (outside ``jit``).

    Raises:
        ValueError: with a message naming the offending nodes or edges when
            an index is out of range, an edge is a self-loop, an edge kind is
            unknown, no node has a fixed pressure, a node is not connected
            (through edges, in either direction) to any fixed-pressure node,
            or the two legs of a tee are missing or inconsistent.
    """
    n, ne = network.n_nodes, network.n_edges
    if n < 1 or ne < 1:
        raise ValueError(f"a network needs nodes and edges, got {n} nodes and {ne} edges")
    if len(network.edge_to) != ne or len(network.edge_kind) != ne:
        raise ValueError("edge_from, edge_to and edge_kind must have one entry per edge")
    if network.tee_partner and len(network.tee_partner) != ne:
        raise ValueError("tee_partner must be empty or have one entry per edge")
    if network.node_labels and len(network.node_labels) != n:
        raise ValueError("node_labels must be empty or have one entry per node")
    src = np.asarray(network.edge_from)
    dst = np.asarray(network.edge_to)
    kind = np.asarray(network.edge_kind)
    for name, arr in (("edge_from", src), ("edge_to", dst)):
        bad = np.flatnonzero((arr < 0) | (arr >= n))
        if bad.size:
            raise ValueError(f"{name} of {network.edge_name(int(bad[0]))} is {arr[bad[0]]}, not a node in [0, {n})")
    loops = np.flatnonzero(src == dst)
    if loops.size:
        raise ValueError(f"{network.edge_name(int(loops[0]))} starts and ends at the same node")
    badk = np.flatnonzero((kind < 0) | (kind >= _laws.N_KINDS))
    if badk.size:
        raise ValueError(f"{network.edge_name(int(badk[0]))} has unknown edge kind {kind[badk[0]]}")
    fixed = list(network.fixed_nodes)
    if not fixed:
        raise ValueError(
            "the network has no fixed-pressure node, so its pressure level is undetermined: "
            "mark at least one node (e.g. the CDU return or an expansion tank) as fixed pressure"
        )
    if len(set(fixed)) != len(fixed) or min(fixed) < 0 or max(fixed) >= n:
        raise ValueError(f"fixed_nodes must be distinct nodes in [0, {n}), got {fixed}")
    g = sp.coo_matrix((np.ones(ne), (src, dst)), shape=(n, n))
    ncomp, lab = connected_components(g, directed=False)
    anchored = np.zeros(ncomp, bool)
    anchored[lab[fixed]] = True
    orphans = np.flatnonzero(~anchored[lab])
    if orphans.size:
        names = ", ".join(network.node_name(int(i)) for i in orphans[:8])
        more = f" and {orphans.size - 8} more" if orphans.size > 8 else ""
        raise ValueError(
            f"{orphans.size} node(s) not connected to any fixed-pressure node: {names}{more}. "
            "Every node needs a path (through edges, either direction) to a node of known "
            "pressure; "
            "connect them or remove them"
        )
    is_tee = np.isin(kind, list(_TEE_SET))
    ref = np.asarray(network.tee_partner) if network.tee_partner else np.full(ne, -1)
    fixed_set = set(fixed)
    partner_kind = {
        _laws.TEE_DIVIDING_RUN: _laws.TEE_DIVIDING_BRANCH,
        _laws.TEE_DIVIDING_BRANCH: _laws.TEE_DIVIDING_RUN,
        _laws.TEE_COMBINING_RUN: _laws.TEE_COMBINING_BRANCH,
        _laws.TEE_COMBINING_BRANCH: _laws.TEE_COMBINING_RUN,
    }
    for e in np.flatnonzero(is_tee):
        r = int(ref[e])
        nm = network.edge_name(int(e))
        if not 0 <= r < ne:
            raise ValueError(f"tee leg {nm} needs the index of its partner leg in tee_partner, got {r}")
        if kind[r] != partner_kind[int(kind[e])] or int(ref[r]) != e:
            raise ValueError(
                f"tee leg {nm} ({EdgeKind(int(kind[e])).name}): its partner {network.edge_name(r)} "
                f"must be the matching {EdgeKind(partner_kind[int(kind[e])]).name} leg whose "
                "partner is this edge"
            )
        dividing = kind[e] in (_laws.TEE_DIVIDING_BRANCH, _laws.TEE_DIVIDING_RUN)
        junction = src[e] if dividing else dst[e]
        other = src[r] if dividing else dst[r]
        if other != junction:
            side = "start" if dividing else "end"
            raise ValueError(
                f"tee legs {nm} and {network.edge_name(r)} must both {side} at the junction "
                f"{network.node_name(int(junction))}"
            )
        if int(junction) in fixed_set:
            raise ValueError(
                f"tee {nm}: the junction {network.node_name(int(junction))} must not be a fixed-pressure node"
            )
    nontee_ref = np.flatnonzero(~is_tee & (ref >= 0))
    if nontee_ref.size:
        raise ValueError(f"{network.edge_name(int(nontee_ref[0]))} is not a tee but has a tee_partner")


def validate_params(network: Network, params: EdgeParams, boundary: Boundary | None = None) -> None:
    """Check concrete parameter values (outside ``jit``; batched parameters
    are checked entry by entry).

    Raises:
        ValueError: naming the edge, for non-finite values, non-positive
            diameters or flow coefficients, an edge with no resistance, a
            table that does not start at (0, 0) or is not monotone, a valve
            opening outside (0, 1], or a pump that cannot deliver flow (zero
            or negative shut-off pressure s^2 dp0, or a curve that does not
            fall with flow).
    """
    kind = np.asarray(network.edge_kind)
    ne = network.n_edges
    vals = {k: np.asarray(getattr(params, k)) for k in _PARAM_DEFAULTS}
    for k, v in vals.items():
        if v.shape[-1:] != (ne,):
            raise ValueError(f"EdgeParams.{k} must have shape (..., {ne}), got {v.shape}")
    tq, tdp = np.asarray(params.table_flow), np.asarray(params.table_dp)

    def fail(e, msg):
        raise ValueError(f"{network.edge_name(int(e))}: {msg}")

    def check(mask_kinds, cond, msg):
        sel = np.isin(kind, mask_kinds)
        bad = np.flatnonzero(sel & ~np.all(cond.reshape(-1, ne), axis=0))
        if bad.size:
            fail(bad[0], msg)

    allk = list(range(_laws.N_KINDS))
    for k, v in vals.items():
        check(allk, np.isfinite(v), f"parameter {k} is not finite")
    pl = list(_laws.PIPE_LIKE_KINDS)
    check(pl, vals["diameter"] > 0, "diameter must be > 0")
    check(
        pl,
        (vals["length"] >= 0) & (vals["roughness"] >= 0) & (vals["k_minor"] >= 0),
        "length, roughness and k_minor must be >= 0",
    )
    check(
        [_laws.PIPE, _laws.PIPE_CHURCHILL],
        (vals["length"] > 0) | (vals["k_minor"] > 0),
        "a pipe needs a length > 0 or a loss coefficient > 0 (zero resistance)",
    )
    check(list(_TEE_SET), vals["area_ratio"] > 0, "tee area_ratio must be > 0")
    check([_laws.FLOW_COEFFICIENT, _laws.VALVE], vals["kv"] > 0, "kv must be > 0")
    check(
        [_laws.VALVE],
        (vals["opening"] > 0) & (vals["opening"] <= 1),
        "valve opening must be in (0, 1]",
    )
    check([_laws.VALVE], vals["rangeability"] >= 1, "valve rangeability must be >= 1")
    check(
        [_laws.POWER_LAW],
        (vals["lin_coef"] >= 0) & (vals["pow_coef"] >= 0) & (vals["lin_coef"] + vals["pow_coef"] > 0),
        "power law needs a, b >= 0 and a + b > 0",
    )
    check([_laws.POWER_LAW], vals["pow_exp"] >= 1, "power-law exponent must be >= 1")
    if np.any(kind == _laws.TABLE):
        te = np.flatnonzero(kind == _laws.TABLE)
        q = tq.reshape(-1, ne, tq.shape[-1])[:, te]
        d = tdp.reshape(-1, ne, tdp.shape[-1])[:, te]
        okq = np.all(np.diff(q, axis=-1) > 0, axis=(0, 2)) & np.all(q[..., 0] == 0, axis=0)
        okd = np.all(np.diff(d, axis=-1) >= 0, axis=(0, 2)) & np.all(d[..., 0] == 0, axis=0)
        okd &= np.all(d[..., -1] > 0, axis=0)
        if not okq.all():
            fail(te[~okq][0], "table flows must start at 0 and increase strictly")
        if not okd.all():
            fail(te[~okd][0], "table losses must start at 0, never decrease and end above 0")
    if np.any(kind == _laws.LOGLOG_TABLE):
        te = np.flatnonzero(kind == _laws.LOGLOG_TABLE)
        q = tq.reshape(-1, ne, tq.shape[-1])[:, te]
        d = tdp.reshape(-1, ne, tdp.shape[-1])[:, te]
        okq = np.all(np.diff(q, axis=-1) > 0, axis=(0, 2)) & np.all(q[..., 0] > 0, axis=0)
        okd = np.all(np.diff(d, axis=-1) > 0, axis=(0, 2)) & np.all(d[..., 0] > 0, axis=0)
        if not okq.all():
            fail(te[~okq][0], "log-log table flows must be positive and increase strictly")
        if not okd.all():
            fail(te[~okd][0], "log-log table losses must be positive and increase strictly with flow")
    shut = vals["pump_speed"] ** 2 * vals["pump_dp0"]
    check(
        [_laws.PUMP],
        shut > 0,
        "pump cannot deliver flow: its shut-off pressure speed^2*dp0 is <= 0 "
        "(a zero-flow pump curve); "
        "give it a positive dp0 and speed",
    )
    check(
        [_laws.PUMP],
        (vals["pump_r1"] >= 0) & (vals["pump_r2"] >= 0) & (vals["pump_r1"] + vals["pump_r2"] > 0),
        "pump curve must fall with flow: r1, r2 >= 0 and r1 + r2 > 0",
    )
    if boundary is not None:
        for k in ("pressure", "supply", "elevation"):
            v = np.asarray(getattr(boundary, k))
            if v.shape[-1:] != (network.n_nodes,) or not np.all(np.isfinite(v)):
                raise ValueError(f"Boundary.{k} must be finite with shape (..., {network.n_nodes})")


# ============================================================ the solver
def edge_pressure_loss(network: Network, params: EdgeParams, fluid: Fluid, flow) -> jax.Array:
    """Pressure loss of every edge (Pa) at the given flows (m^3/s), shape
    (n_edges,); a pump's loss is negative. Tee edges read the flow of their
    partner leg from ``flow``."""
    lay = network._layout
    flow = jnp.asarray(flow)
    dt = flow.dtype
    rho = jnp.asarray(fluid.density, dt)
    mu = jnp.asarray(fluid.viscosity, dt)
    return _laws.edge_losses(network.edge_kind, params, rho, mu, flow, flow[lay.ref])


class _System:
    """Residual, Jacobian and block solves of one network (trace-time helper)."""

    def __init__(self, network: Network, dtype):
        self.net = network
        self.lay = network._layout
        self.dtype = dtype
        self.ne = network.n_edges
        self.nn = network.n_nodes
        self.nf = int(self.lay.free.size)
        self.has_tees = network.has_tees

    # graph operators
    def divergence(self, v):
        """B v: outflow minus inflow at every node, shape (n_nodes,)."""
        lay = self.lay
        z = jnp.zeros((self.nn,), v.dtype)
        return z.at[lay.src].add(v).at[lay.dst].add(-v)

    def gradient(self, p_all):
        """B^T p: p[from] - p[to] per edge."""
        return p_all[self.lay.src] - p_all[self.lay.dst]

    def full_pressure(self, p_free, p_fixed_all):
        return p_fixed_all.at[self.lay.free].set(p_free)

    # laws
    def losses(self, theta, q, q_ref):
        params, fluid, _ = theta
        rho = jnp.asarray(fluid.density, self.dtype)
        mu = jnp.asarray(fluid.viscosity, self.dtype)
        return _laws.edge_losses(self.net.edge_kind, params, rho, mu, q, q_ref)

    def piezometric_fixed(self, theta):
        _, fluid, bnd = theta
        rho = jnp.asarray(fluid.density, self.dtype)
        return bnd.pressure + rho * GRAVITY * bnd.elevation

    def residual(self, q, p_free, theta):
        """Edge residual h(Q) - B^T P (Pa) and free-node residual B Q - s
        (m^3/s), plus pieces reused by the relative norm."""
        _, _, bnd = theta
        p_all = self.full_pressure(p_free, self.piezometric_fixed(theta))
        h = self.losses(theta, q, q[self.lay.ref])
        dp = self.gradient(p_all)
        r_e = h - dp
        r_n = (self.divergence(q) - bnd.supply)[self.lay.free]
        return r_e, r_n, h, dp, p_all

    def above_round_off(self, r_e, h, p_all):
        """``r_e`` with the entries that round-off alone could make zeroed.

        An edge's residual h - (P_from - P_to) is computed to about
        eps (|h| + |P_from| + |P_to|): with absolute pressures of 1e5 Pa that
        is 1e-11 Pa in float64, the whole loss of a near-lossless hose or
        manifold (dh/dQ ~ 1e-4 Pa s/m^3), where it would ask the Newton step
        for a flow change of 1e-7 m^3/s that conservation then has to undo.
        Below that floor the residual carries no information, so the step and
        the line search's merit ignore it and such an edge's flow is set by
        conservation alone."""
        eps = jnp.finfo(self.dtype).eps
        floor = 16.0 * eps * (jnp.abs(h) + jnp.abs(p_all[self.lay.src]) + jnp.abs(p_all[self.lay.dst]))
        return jnp.where(jnp.abs(r_e) <= floor, jnp.zeros_like(r_e), r_e)

    def relative(self, q, r_e, r_n, h, dp, p_all, supply_free):
        tiny = jnp.finfo(self.dtype).tiny
        p_ref = jnp.maximum(jnp.maximum(jnp.max(jnp.abs(h)), jnp.max(jnp.abs(dp))), jnp.max(jnp.abs(p_all)))
        p_ref = jnp.maximum(p_ref, tiny)
        rel_e = jnp.max(jnp.abs(r_e)) / p_ref
        if self.nf == 0:
            return rel_e
        q_ref = jnp.maximum(jnp.max(jnp.abs(q)), jnp.max(jnp.abs(supply_free)))
        q_ref = jnp.maximum(q_ref, tiny)
        return jnp.maximum(rel_e, jnp.max(jnp.abs(r_n)) / q_ref)

    def linearize(self, q, theta, regularization, supply_free):
        """Losses h(Q), the diagonal d (clamped slope dh_e/dQ_e) and the tee
        coupling c_t = dh_t/dQ_p(t) to the partner leg (zero for other
        edges)."""
        lay = self.lay
        qr = q[lay.ref]
        ones = jnp.ones_like(q)
        scale = jnp.max(jnp.abs(q))
        if self.nf:
            scale = jnp.maximum(scale, jnp.max(jnp.abs(supply_free)))
        q_floor = regularization * scale + jnp.finfo(self.dtype).tiny
        qf = jnp.where(q >= 0, q_floor, -q_floor)

        def value_and_slope(x):
            return jax.jvp(lambda y: self.losses(theta, y, qr), (x,), (ones,))

        # one batched evaluation: loss and slope at Q, slope at the floor flow
        hs, gs = jax.vmap(value_and_slope)(jnp.stack([q, qf]))
        h, gd, gf = hs[0], gs[0], gs[1]
        # slopes below this fraction of the steepest are raised to it: the
        # Schur complement's condition number stays under 1 / (64 eps), so a
        # float32 solve of a rack with near-lossless hoses (1e-12 of the
        # plates' slope) still gives a usable step
        g_rel = max(1.0e-12, 64.0 * float(jnp.finfo(self.dtype).eps))
        g_abs = g_rel * jnp.max(jnp.abs(gd)) + jnp.finfo(self.dtype).tiny
        d = jnp.maximum(jnp.maximum(gd, gf), g_abs)
        if self.has_tees:
            is_tee = jnp.asarray(lay.is_tee)
            d_tee = jnp.where(jnp.abs(gd) > g_abs, gd, g_abs)
            d = jnp.where(is_tee, d_tee, d)
            _, c = jax.jvp(lambda x: self.losses(theta, q, x), (qr,), (ones,))
            c = jnp.where(is_tee, c, 0.0)
        else:
            c = jnp.zeros_like(q)
        return h, d, c

    # J_h^{-1} and its transpose: diagonal, with 2 x 2 blocks for tee pairs
    # [[d_t, c_t], [c_p, d_p]] (t the edge, p its partner).
    def jinv(self, v, d, c):
        if not self.has_tees:
            return v / d
        p = self.lay.ref
        det = d * d[p] - c * c[p]
        return jnp.where(jnp.asarray(self.lay.is_tee), (d[p] * v - c * v[p]) / det, v / d)

    def jinv_t(self, u, d, c):
        if not self.has_tees:
            return u / d
        p = self.lay.ref
        det = d * d[p] - c * c[p]
        return jnp.where(jnp.asarray(self.lay.is_tee), (d[p] * u - c[p] * u[p]) / det, u / d)

    def scatter_free(self, v_free):
        """Free-node vector -> all nodes (zero at fixed nodes)."""
        return jnp.zeros((self.nn,), v_free.dtype).at[self.lay.free].set(v_free)

    def newton_direction(self, r_e, r_n, d, c):
        """Solve [J_h, -B_f^T; B_f, 0] [dq; dp] = -[r_e; r_n]."""
        if self.nf == 0:
            return -self.jinv(r_e, d, c), jnp.zeros((0,), r_e.dtype)
        rhs = -r_n + self.divergence(self.jinv(r_e, d, c))[self.lay.free]
        dp = self.lay.schur_solve(d, c, rhs)
        dq = self.jinv(self.gradient(self.scatter_free(dp)) - r_e, d, c)
        return dq, dp

    def adjoint(self, ct_q, ct_p, d, c):
        """Solve J^T [l_e; l_n] = [ct_q; ct_p] for the Newton Jacobian J."""
        if self.nf == 0:
            return self.jinv_t(ct_q, d, c), jnp.zeros((0,), ct_q.dtype)
        rhs = ct_p + self.divergence(self.jinv_t(ct_q, d, c))[self.lay.free]
        l_n = self.lay.schur_solve(d, c, rhs, transpose=True)
        l_e = self.jinv_t(ct_q - self.gradient(self.scatter_free(l_n)), d, c)
        return l_e, l_n


_DEFAULT_OPTIONS = NewtonOptions()


def _tolerance(options: NewtonOptions, dtype) -> float:
    if options.rtol is not None:
        return float(options.rtol)
    return 256.0 * float(jnp.finfo(dtype).eps)


def _newton(network, options, params, fluid, boundary, q_init):
    dtype = q_init.dtype
    sysm = _System(network, dtype)
    theta = (params, fluid, boundary)
    lay = sysm.lay
    tol = _tolerance(options, dtype)
    supply_free = boundary.supply[lay.free]
    maxit = options.max_iterations
    alpha = options.armijo

    def evaluate(q, pf):
        r_e, r_n, h, dp, p_all = sysm.residual(q, pf, theta)
        rel = sysm.relative(q, r_e, r_n, h, dp, p_all, supply_free)
        return sysm.above_round_off(r_e, h, p_all), r_n, rel

    p_fix = sysm.piezometric_fixed(theta)
    p0 = jnp.mean(p_fix[lay.fixed]) * jnp.ones((sysm.nf,), dtype)

    def direction(q, pf):
        """The residuals at (q, pf), the Jacobian's diagonal and the Newton step."""
        h, d, c = sysm.linearize(q, theta, options.regularization, supply_free)
        p_all = sysm.full_pressure(pf, p_fix)
        r_e = sysm.above_round_off(h - sysm.gradient(p_all), h, p_all)
        r_n = (sysm.divergence(q) - boundary.supply)[lay.free]
        dq, dp = sysm.newton_direction(r_e, r_n, d, c)
        return r_e, r_n, d, dq, dp

    if options.linear_start:
        q_lin = q_init + direction(q_init, p0)[3]
        q_init = jnp.where(jnp.all(jnp.isfinite(q_lin)), q_lin, q_init)
    _, _, rel0 = evaluate(q_init, p0)
    hist0 = jnp.full((maxit + 1,), jnp.nan, dtype).at[0].set(rel0)

    def merit(r_e, r_n, w):
        return jnp.sum((r_e * w) ** 2) + jnp.sum(r_n**2)

    def cond(state):
        k, _, _, rel, _, stalled = state
        return (k < maxit) & (rel > tol) & jnp.logical_not(stalled)

    def body(state):
        k, q, pf, rel, hist, _ = state
        r_e, r_n, d, dq, dp = direction(q, pf)
        w = 1.0 / jnp.abs(d)
        m0 = merit(r_e, r_n, w)

        def ls_cond(ls):
            j, ok, *_ = ls
            return jnp.logical_not(ok) & (j <= options.max_backtracks)

        def ls_body(ls):
            j, _, _, _, _ = ls
            t = jnp.asarray(0.5, dtype) ** j.astype(dtype)
            qt, pt = q + t * dq, pf + t * dp
            rte, rtn, relt = evaluate(qt, pt)
            mt = merit(rte, rtn, w)
            decrease = (mt <= (1.0 - alpha * t) ** 2 * m0) | (relt <= tol)
            ok = jnp.isfinite(mt) & jnp.isfinite(relt) & decrease
            return j + 1, ok, qt, pt, relt

        ls0 = (jnp.asarray(0, jnp.int32), jnp.asarray(False), q, pf, rel)
        _, ok, qn, pn, reln = jax.lax.while_loop(ls_cond, ls_body, ls0)
        qn = jnp.where(ok, qn, q)
        pn = jnp.where(ok, pn, pf)
        reln = jnp.where(ok, reln, rel)
        kn = jnp.where(ok, k + 1, k)
        hist = jnp.where(ok, hist.at[k + 1].set(reln), hist)
        return kn, qn, pn, reln, hist, jnp.logical_not(ok)

    state0 = (
        jnp.asarray(0, jnp.int32),
        q_init,
        p0,
        rel0,
        hist0,
        jnp.logical_not(jnp.isfinite(rel0)),
    )
    k, q, pf, rel, hist, _ = jax.lax.while_loop(cond, body, state0)
    info = SolveInfo(
        converged=(rel <= tol) & jnp.isfinite(rel),
        iterations=k,
        residual=rel,
        history=hist,
    )
    return (q, pf), info


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _solve_core(network, options, params, fluid, boundary, q_init):
    return _newton(network, options, params, fluid, boundary, q_init)


def _solve_core_fwd(network, options, params, fluid, boundary, q_init):
    (q, pf), info = _newton(network, options, params, fluid, boundary, q_init)
    return ((q, pf), info), (q, pf, params, fluid, boundary, q_init)


def _solve_core_bwd(network, options, res, ct):
    q, pf, params, fluid, boundary, q_init = res
    (ct_q, ct_p), _ = ct
    sysm = _System(network, q.dtype)
    theta = (params, fluid, boundary)
    _, d, c = sysm.linearize(q, theta, options.regularization, boundary.supply[sysm.lay.free])
    l_e, l_n = sysm.adjoint(ct_q, ct_p, d, c)

    def resid(th):
        r_e, r_n, *_ = sysm.residual(q, pf, th)
        return r_e, r_n

    _, vjp = jax.vjp(resid, theta)
    (ct_theta,) = vjp((-l_e, -l_n))
    return (*ct_theta, jnp.zeros_like(q_init))


_solve_core.defvjp(_solve_core_fwd, _solve_core_bwd)


def solve_network(
    network: Network,
    params: EdgeParams,
    fluid: Fluid,
    boundary: Boundary,
    options: NewtonOptions = _DEFAULT_OPTIONS,
    initial_flow=None,
) -> tuple[NetworkSolution, SolveInfo]:
    """Steady flows and pressures of a network.

    Solves, for the edge flows Q (m^3/s) and the pressures P of the free
    nodes (Pa),

        dp_e(Q_e) = P*_from(e) - P*_to(e)        for every edge,
        sum_out Q - sum_in Q = supply_n           at every free node,

    with P* = p + rho g z the piezometric pressure and p prescribed at the
    fixed nodes, by damped Newton (global gradient method; see the module
    docstring). ``network`` and ``options`` are static (``jit`` them as static
    arguments or close over them); everything else is traced.

    Convergence: the relative residual is the larger of
    max|r_node| / max(|Q|, |supply|) and max|r_edge| / max(|dp|, |P|); the
    solve has converged when it is <= ``options.rtol``. ``info.history``
    holds it after every Newton step. A solve that fails (iteration limit, a
    line search that cannot reduce the residual, a singular Jacobian as in a
    network whose free nodes have no path to a fixed pressure) returns the
    last finite iterate with ``info.converged`` False; call
    :func:`validate_network` / :func:`validate_params` first for clear
    errors, and :func:`check_solution` after.

    Differentiation: reverse mode through the implicit function theorem at
    the converged solution (one extra linear solve), with respect to
    ``params``, ``fluid`` and ``boundary``.

    Args:
        network: static topology.
        params: edge parameters, arrays of shape (n_edges,).
        fluid: density, viscosity (and specific heat, unused here).
        boundary: fixed pressures, supplies and elevations per node.
        options: static Newton settings.
        initial_flow: optional start flows (n_edges,) (m^3/s); default
            ``options.initial_flow`` on every edge (a cold start).

    Returns:
        (NetworkSolution, SolveInfo).
    """
    dtype = jnp.result_type(params.diameter)
    if initial_flow is None:
        q0 = jnp.full((network.n_edges,), options.initial_flow, dtype)
    else:
        q0 = jnp.asarray(initial_flow, dtype)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
    fluid = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), fluid)
    boundary = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), boundary)
    (q, pf), info = _solve_core(network, options, params, fluid, boundary, q0)
    sysm = _System(network, dtype)
    theta = (params, fluid, boundary)
    p_all = sysm.full_pressure(pf, sysm.piezometric_fixed(theta))
    rho = fluid.density
    pressure = p_all - rho * GRAVITY * boundary.elevation
    loss = sysm.losses(theta, q, q[network._layout.ref])
    return NetworkSolution(flow=q, pressure=pressure, loss=loss), info


def check_solution(
    network: Network, solution: NetworkSolution, info: SolveInfo, allow_pump_backflow: bool = False
) -> None:
    """Raise ``ValueError`` (outside ``jit``) when a solve failed or a pump
    runs backwards. Works on batched results (any failing member raises)."""
    conv = np.asarray(info.converged)
    if not conv.all():
        res = np.asarray(info.residual).reshape(-1)
        it = np.asarray(info.iterations).reshape(-1)
        i = int(np.flatnonzero(~conv.reshape(-1))[0])
        raise ValueError(
            f"network solve did not converge (member {i}): relative residual {res[i]:.3e} after "
            f"{it[i]} Newton iterations. Check validate_network/validate_params, that the pumps "
            "can drive the required flow, and raise NewtonOptions.max_iterations if the residual "
            "was still falling"
        )
    if not allow_pump_backflow:
        kind = np.asarray(network.edge_kind)
        pumps = np.flatnonzero(kind == _laws.PUMP)
        q = np.asarray(solution.flow).reshape(-1, network.n_edges)
        bad = [e for e in pumps if np.any(q[:, e] <= 0)]
        if bad:
            e = bad[0]
            raise ValueError(
                f"pump {network.edge_name(int(e))} cannot deliver flow: at the solution its "
                "flow is "
                f"{q[:, e].min():.3e} m^3/s (<= 0), the network pushes back harder than its "
                "shut-off pressure; raise its speed or dp0, or lower the system resistance"
            )
