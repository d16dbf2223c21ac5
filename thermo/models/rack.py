"""``rack_network`` cases: flow and coolant temperatures in a liquid-cooled rack.

The rack is a stack of trays (bottom to top) fed in parallel from a vertical
supply manifold and drained into a vertical return manifold:

* **Manifolds**: pipes of one inside diameter with a tap every ``pitch`` (one
  rack unit for 1U trays), plus an extra length where a section starts higher
  (``gap_below``, e.g. power shelves). The coolant enters the supply manifold
  at the bottom. Layout ``"U"`` (direct return): it leaves the return manifold
  at the bottom too, so the first tray has the shortest path. ``"Z"``
  (reverse return): it leaves at the top, so every tray's path has about the
  same length. Each tap is a sharp 90-degree tee (Crane TP-410 dividing and
  combining coefficients that depend on the split), unless ``tees = false``;
  the end taps, where all the flow turns, get Crane's branch coefficient at a
  split of 1 on their hose.
* **Each tray**: a supply hose, a quick disconnect, one or more branches in
  parallel (each a series of cold plates, in flow order), a return quick
  disconnect and a return hose.
* **Cold plates**: a pressure drop dp = dp_rated (Q / Q_rated)^n and a
  thermal resistance R(Q) from the chip to the plate's inlet coolant,
  tabulated and interpolated linearly in log Q - log R (extended along the end
  segments). The junction temperature of a chip is T_in + R(Q) P with T_in the
  plate's own inlet temperature, so a plate downstream in a series branch sees
  the upstream plate's outlet.

The CDU delivers a total flow at a supply temperature; the static pressure at
the rack outlet sets the pressure level. Coolant properties are evaluated at
the rack's mean bulk temperature (supply plus half the rise from the heat
balance). The network is solved with :mod:`kernels.network` (Newton on the
nodal pressures, then advected temperatures with mixing).

Reported: flow of every plate and its ratio to the mean (maldistribution),
plate inlet/outlet and junction temperatures, the rack pressure drop (the head
the CDU pump must supply to the rack), hydraulic and pump electrical power,
and the heat balance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

from aidc_thermo import bounds, progress, resources
from aidc_thermo.coolant import Coolant, range_text, read_coolant, read_coolant_temperature
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseFile, Table, read_header, read_plots_flag
from aidc_thermo.io.results import Quantity, network_xdmf, results_h5, write_common, write_summary_json

__all__ = ["RackCase", "CASE_TYPE", "parse", "build_network", "solve", "run"]

CASE_TYPE = "rack_network"
LPM = 1.0 / 60000.0  # m^3/s per L/min
#: Kv (m^3/h at 1 bar) per Cv (US gal/min at 1 psi): kernels.network.kv_from_cv's
#: factor, repeated so that parsing needs no JAX (test_rack checks they agree)
KV_PER_CV = 0.865
# JAX, the kernels and h5py are imported inside the functions that solve and
# write, so that reading a case (thermo check) starts neither JAX nor h5py.


# ----------------------------------------------------------------------------- case


@dataclass(frozen=True)
class PlateType:
    name: str
    power: float  # W into the coolant
    dp_rated: float  # Pa at flow_rated
    flow_rated: float  # m^3/s
    dp_exponent: float
    resistance_flow: tuple[float, ...]  # m^3/s
    resistance: tuple[float, ...]  # K/W, chip to plate inlet coolant
    junction_limit: float | None = None  # K, the chip's design limit (plots its margin)


@dataclass(frozen=True)
class TrayType:
    name: str
    branches: tuple[tuple[str, ...], ...]  # plate types in series, per parallel branch


@dataclass(frozen=True)
class Section:
    tray: str
    count: int
    gap_below: float  # m of extra manifold below the section's first tap


@dataclass(frozen=True)
class Manifold:
    layout: str  # "U" or "Z"
    diameter: float
    roughness: float
    pitch: float
    feed_length: float  # inlet pipe to the first supply tap, and outlet pipe from the return manifold
    feed_k: float
    tees: bool


@dataclass(frozen=True)
class Hose:
    length: float
    diameter: float
    roughness: float
    k_minor: float


@dataclass(frozen=True)
class Supply:
    temperature: float  # K
    flow: float  # m^3/s into the rack
    return_pressure: float  # Pa, static, at the rack outlet
    pump_efficiency: float  # wire-to-water


@dataclass(frozen=True)
class RackCase:
    name: str
    description: str
    coolant: Coolant
    supply: Supply
    manifold: Manifold
    hose: Hose
    qd_kv: float  # m^3/h at 1 bar, each quick disconnect (one supply, one return per tray)
    plate_types: tuple[PlateType, ...]
    tray_types: tuple[TrayType, ...]
    sections: tuple[Section, ...]
    precision: str
    plots: bool

    @property
    def trays(self) -> tuple[str, ...]:
        """Tray type of every tray, bottom to top."""
        return tuple(s.tray for s in self.sections for _ in range(s.count))

    def plate(self, name: str) -> PlateType:
        return next(p for p in self.plate_types if p.name == name)

    def tray(self, name: str) -> TrayType:
        return next(t for t in self.tray_types if t.name == name)

    @property
    def liquid_power(self) -> float:
        return sum(self.plate(p).power for t in self.trays for br in self.tray(t).branches for p in br)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["coolant"] = {
            "name": self.coolant.name,
            "fluid": self.coolant.fluid,
            "mass_fraction": self.coolant.mass_fraction,
        }
        return d


def _read_plate(t: Table) -> PlateType:
    name = t.string("name")
    power = t.quantity("power", "power", nonnegative=True)
    dp_rated = t.quantity("dp_rated", "pressure", positive=True)
    flow_rated = t.quantity("flow_rated", "volumetric_flow", positive=True)
    n = t.number("dp_exponent", default=1.85, minimum=1.0, maximum=2.5)
    rq = t.quantities("resistance_flow", "volumetric_flow", positive=True)
    rr = t.quantities("resistance", "thermal_resistance", positive=True)
    if len(rq) != len(rr) or not rq:
        raise t.error("resistance", f"needs one value per entry of resistance_flow ({len(rq)}), got {len(rr)}")
    if any(b <= a for a, b in zip(rq, rq[1:], strict=False)):
        raise t.error("resistance_flow", "flows must increase strictly")
    limit = t.quantity("junction_limit", "temperature", default=None)
    t.finish()
    return PlateType(name, power, dp_rated, flow_rated, n, rq, rr, limit)


def parse(case: CaseFile) -> RackCase:
    """Read a ``rack_network`` case; raises CaseError on any problem."""
    root = Table(case.data, case.path)
    name, description = read_header(root, CASE_TYPE)

    coolant = read_coolant(root.table("coolant", default={}))

    s = root.table("supply")
    supply = Supply(
        temperature=read_coolant_temperature(s, "temperature", coolant),
        flow=s.quantity("flow", "volumetric_flow", positive=True),
        return_pressure=s.quantity("return_pressure", "pressure", default=1.5e5),
        pump_efficiency=s.number("pump_efficiency", default=0.7, minimum=0.05, maximum=1.0),
    )
    s.finish()

    m = root.table("manifold")
    manifold = Manifold(
        layout=m.string("layout", choices=("U", "Z")),
        diameter=m.quantity("diameter", "length", positive=True),
        roughness=m.quantity("roughness", "length", default=1.5e-6, nonnegative=True),
        pitch=m.quantity("pitch", "length", positive=True),
        feed_length=m.quantity("feed_length", "length", default=0.5, positive=True),
        feed_k=m.number("feed_k", default=1.0, minimum=0.0),
        tees=m.boolean("tees", default=True),
    )
    m.finish()

    h = root.table("hose")
    hose = Hose(
        length=h.quantity("length", "length", positive=True),
        diameter=h.quantity("diameter", "length", positive=True),
        roughness=h.quantity("roughness", "length", default=1.5e-6, nonnegative=True),
        k_minor=h.number("k_minor", default=0.0, minimum=0.0),
    )
    h.finish()
    if hose.diameter >= manifold.diameter:
        raise h.error("diameter", "the hose must be narrower than the manifold it taps")

    q = root.table("quick_disconnect")
    if q.has("kv") == q.has("cv"):
        raise q.error(None, "give exactly one of 'kv' (m^3/h at 1 bar) or 'cv' (US gal/min at 1 psi)")
    kv = q.number("kv", minimum=1e-3) if q.has("kv") else KV_PER_CV * q.number("cv", minimum=1e-3)
    q.finish()

    plates = []
    for t in root.tables("plate_types", min_count=1):
        p = _read_plate(t)
        if any(o.name == p.name for o in plates):
            raise t.error("name", f"plate type {p.name!r} is defined twice")
        plates.append(p)
    names = [p.name for p in plates]

    trays = []
    for t in root.tables("tray_types", min_count=1):
        tname = t.string("name")
        if any(o.name == tname for o in trays):
            raise t.error("name", f"tray type {tname!r} is defined twice")
        branches = []
        for b in t.tables("branches", min_count=1):
            seq = b.raw("plates")
            if not isinstance(seq, list) or not seq or any(not isinstance(x, str) for x in seq):
                raise b.error("plates", f"expected a list of plate type names in flow order, got {seq!r}")
            for x in seq:
                if x not in names:
                    raise b.error("plates", f"unknown plate type {x!r} (defined: {', '.join(names)})")
            b.finish()
            branches.append(tuple(seq))
        t.finish()
        trays.append(TrayType(tname, tuple(branches)))
    tnames = [t.name for t in trays]

    sections = []
    for t in root.tables("sections", min_count=1):
        tray = t.string("tray", choices=tuple(tnames))
        sections.append(
            Section(
                tray, t.integer("count", minimum=1), t.quantity("gap_below", "length", default=0.0, nonnegative=True)
            )
        )
        t.finish()

    sv = root.table("solver", default={})
    precision = sv.string("precision", default="float64", choices=("float64", "float32"))
    sv.finish()
    plots = read_plots_flag(root)
    root.finish()
    _require_memory(case.path, sections, trays)
    return RackCase(
        name,
        description,
        coolant,
        supply,
        manifold,
        hose,
        kv,
        tuple(plates),
        tuple(trays),
        tuple(sections),
        precision,
        plots,
    )


#: The most trays one rack network may hold: a 1U tray pitch puts 1000 trays
#: 44 m high; far beyond any rack (and the network is built tray by tray).
MAX_TRAYS = 1000


def _require_memory(path, sections, trays) -> None:
    """Refuse (CaseError) a rack too large to build, before any array exists.
    The Newton step factorises the manifold ladder (about two condensed nodes
    per tray) as one dense block: matrix, LU factors and a copy, 8 B each."""
    n = resources.require_count(path, "sections[].count", sum(s.count for s in sections), "trays", MAX_TRAYS)
    plates = max(sum(len(b) for b in t.branches) for t in trays)
    dense = 4 * 8 * (2 * n) ** 2
    edges = 4_000 * n * (1 + plates)
    resources.require_memory(
        path,
        CASE_TYPE,
        [
            ("sections[].count", dense + edges,
             f"{n:,} trays: dense Newton block 4 x 8 B x (2 x {n:,})^2 plus 4 kB per edge"),
        ],
    )  # fmt: skip


# ----------------------------------------------------------------------------- network


@dataclass(frozen=True)
class RackNetwork:
    """The network of a rack and where its parts are (edge/node indices)."""

    network: object
    params: object
    boundary: object
    tray_level: np.ndarray  # elevation of every tray's taps (m)
    supply_nodes: np.ndarray  # supply manifold tap node per tray
    return_nodes: np.ndarray
    inlet: int
    outlet: int
    plate_edges: np.ndarray  # every plate, in tray / branch / flow order
    plate_tray: np.ndarray
    plate_branch: np.ndarray
    plate_position: np.ndarray
    plate_type: tuple[str, ...]
    plate_power: np.ndarray


def build_network(case: RackCase, dtype) -> RackNetwork:
    """Nodes and edges of the rack (see the module docstring)."""
    from aidc_thermo.kernels.network import EdgeKind, NetworkBuilder, tee_loss_coefficient

    man, hose = case.manifold, case.hose
    b = NetworkBuilder()
    b.node("inlet")
    b.node("outlet", fixed=True)
    trays = case.trays
    n = len(trays)
    gaps, z = [], []
    level, k = 0.0, 0
    for s in case.sections:
        for j in range(s.count):
            gap = s.gap_below if j == 0 and k > 0 else 0.0
            level += (man.pitch + gap) if k > 0 else 0.0
            gaps.append(gap)
            z.append(level)
            k += 1
    z = np.asarray(z)
    elevation = {"inlet": 0.0, "outlet": 0.0 if man.layout == "U" else float(z[-1])}
    for i in range(n):
        for nm in (f"S{i}", f"R{i}", f"t{i}_a", f"t{i}_b", f"t{i}_c", f"t{i}_d"):
            b.node(nm)
            elevation[nm] = float(z[i])
    beta2 = (hose.diameter / man.diameter) ** 2
    # the end taps have no run leg: all the flow turns into (or out of) the
    # hose; Crane's branch coefficient at x = 1, moved from the manifold's to
    # the hose's velocity head (times beta^4), is added to that hose
    k_end_supply = float(tee_loss_coefficient(EdgeKind.TEE_DIVIDING_BRANCH, 1.0, beta2)) * beta2**2
    k_end_return = float(tee_loss_coefficient(EdgeKind.TEE_COMBINING_BRANCH, 1.0, beta2)) * beta2**2
    seg = [man.pitch + g for g in gaps]  # seg[i]: manifold length between tap i-1 and tap i
    pipe = dict(roughness=man.roughness)

    # supply manifold (flow upwards), a dividing tee at every tap but the last
    b.pipe("inlet", "S0", man.feed_length, man.diameter, k_minor=man.feed_k, label="feed", **pipe)
    for i in range(n):
        if man.tees and i < n - 1:
            b.tee(
                f"S{i}",
                f"S{i + 1}",
                f"t{i}_a",
                True,
                beta2,
                seg[i + 1],
                man.diameter,
                hose.length,
                hose.diameter,
                roughness=man.roughness,
                branch_k=hose.k_minor,
                label=f"supply tap {i}",
            )
        else:
            if i < n - 1:
                b.pipe(f"S{i}", f"S{i + 1}", seg[i + 1], man.diameter, label=f"supply seg {i}", **pipe)
            b.pipe(
                f"S{i}",
                f"t{i}_a",
                hose.length,
                hose.diameter,
                roughness=hose.roughness,
                k_minor=hose.k_minor + (k_end_supply if man.tees else 0.0),
                label=f"tray {i} supply hose",
            )
    # return manifold: U flows down to the bottom outlet, Z up to the top outlet
    for i in range(n):
        upstream = i + 1 if man.layout == "U" else i - 1
        has_run = 0 <= upstream < n
        if man.tees and has_run:
            length = seg[i + 1] if man.layout == "U" else seg[i]
            b.tee(
                f"R{i}",
                f"R{upstream}",
                f"t{i}_d",
                False,
                beta2,
                length,
                man.diameter,
                hose.length,
                hose.diameter,
                roughness=man.roughness,
                branch_k=hose.k_minor,
                label=f"return tap {i}",
            )
        else:
            if has_run:
                length = seg[i + 1] if man.layout == "U" else seg[i]
                b.pipe(f"R{upstream}", f"R{i}", length, man.diameter, label=f"return seg {i}", **pipe)
            b.pipe(
                f"t{i}_d",
                f"R{i}",
                hose.length,
                hose.diameter,
                roughness=hose.roughness,
                k_minor=hose.k_minor + (k_end_return if man.tees else 0.0),
                label=f"tray {i} return hose",
            )
    last = "R0" if man.layout == "U" else f"R{n - 1}"
    b.pipe(last, "outlet", man.feed_length, man.diameter, k_minor=man.feed_k, label="drain", **pipe)

    # trays
    plates, ptray, pbranch, ppos, ptype, ppower = [], [], [], [], [], []
    for i, tname in enumerate(trays):
        b.flow_coefficient(f"t{i}_a", f"t{i}_b", kv=case.qd_kv, label=f"tray {i} supply QD")
        b.flow_coefficient(f"t{i}_c", f"t{i}_d", kv=case.qd_kv, label=f"tray {i} return QD")
        for j, branch in enumerate(case.tray(tname).branches):
            prev = f"t{i}_b"
            for k, pname in enumerate(branch):
                nxt = f"t{i}_c" if k == len(branch) - 1 else f"t{i}_br{j}_{k}"
                if nxt != f"t{i}_c":
                    b.node(nxt)
                    elevation[nxt] = float(z[i])
                pt = case.plate(pname)
                coef = pt.dp_rated / pt.flow_rated**pt.dp_exponent
                e = b.power_law(
                    prev, nxt, pow_coef=coef, exponent=pt.dp_exponent, label=f"tray {i} branch {j} plate {k} ({pname})"
                )
                plates.append(e)
                ptray.append(i)
                pbranch.append(j)
                ppos.append(k)
                ptype.append(pname)
                ppower.append(pt.power)
                prev = nxt
    net, params = b.build(dtype)
    bnd = b.boundary(
        pressure={"outlet": case.supply.return_pressure},
        supply={"inlet": case.supply.flow},
        elevation=elevation,
        dtype=dtype,
    )
    return RackNetwork(
        network=net,
        params=params,
        boundary=bnd,
        tray_level=z,
        supply_nodes=np.array([b.index(f"S{i}") for i in range(n)]),
        return_nodes=np.array([b.index(f"R{i}") for i in range(n)]),
        inlet=b.index("inlet"),
        outlet=b.index("outlet"),
        plate_edges=np.asarray(plates),
        plate_tray=np.asarray(ptray),
        plate_branch=np.asarray(pbranch),
        plate_position=np.asarray(ppos),
        plate_type=tuple(ptype),
        plate_power=np.asarray(ppower, float),
    )


def loglog_interp(x, xk, yk):
    """Piecewise-linear interpolation of log y over log x, extended along the
    end segments (a power law); a single point gives a constant."""
    x, xk, yk = np.asarray(x, float), np.asarray(xk, float), np.asarray(yk, float)
    if xk.size == 1:
        return np.full_like(x, yk[0])
    lx, ly, lq = np.log(xk), np.log(yk), np.log(x)
    k = np.clip(np.searchsorted(lx, lq) - 1, 0, lx.size - 2)
    slope = (ly[k + 1] - ly[k]) / (lx[k + 1] - lx[k])
    return np.exp(ly[k] + slope * (lq - lx[k]))


def _solve_arrays(net, params, fluid, bnd, heat, t_in):
    from aidc_thermo.kernels.network import NewtonOptions, network_temperatures, solve_network

    sol, info = solve_network(net, params, fluid, bnd, NewtonOptions(max_iterations=60))
    temps, tinfo = network_temperatures(net, sol.flow, heat, fluid, t_in)
    return sol, info, temps, tinfo


@cache
def _solve_jit():
    """The network and temperature solve, compiled once per network (static)."""
    import jax

    return jax.jit(_solve_arrays, static_argnums=(0,))


def solve(case: RackCase):
    """Build and solve the rack. Returns (rack network, solution, Newton info,
    temperatures, thermal info, fluid properties used)."""
    import jax.numpy as jnp

    from aidc_thermo.kernels.network import Fluid, validate_network, validate_params

    progress.phase("build")
    dtype = jnp.float64 if case.precision == "float64" else jnp.float32
    rn = build_network(case, dtype)
    validate_network(rn.network)
    validate_params(rn.network, rn.params, rn.boundary)
    co = case.coolant
    t_sup = case.supply.temperature
    rise = case.liquid_power / (co.density(t_sup) * co.cp(t_sup) * case.supply.flow)
    t_mean = min(t_sup + 0.5 * rise, co.t_max)
    fluid = Fluid(
        density=jnp.asarray(co.density(t_mean), dtype),
        viscosity=jnp.asarray(co.viscosity(t_mean), dtype),
        specific_heat=jnp.asarray(co.cp(t_mean), dtype),
    )
    heat = np.zeros(rn.network.n_edges)
    heat[rn.plate_edges] = rn.plate_power
    t_in = np.full(rn.network.n_nodes, t_sup)
    progress.phase("solve")
    sol, info, temps, tinfo = _solve_jit()(
        rn.network, rn.params, fluid, rn.boundary, jnp.asarray(heat, dtype), jnp.asarray(t_in, dtype)
    )
    return rn, sol, info, temps, tinfo, (t_mean, fluid)


# ----------------------------------------------------------------------------- run


def check_bounded(case: RackCase, rn: RackNetwork, temps) -> None:
    """The maximum principle (:mod:`thermo.bounds`): the coolant enters only
    at the supply (the return is the one fixed-pressure node and all of the
    supply flow leaves there) and the plates only add heat, so no node or
    edge temperature is below the supply temperature, and no plate's outlet
    is colder than its inlet. Raises :class:`SolveError` otherwise."""
    if np.any(rn.plate_power < 0):
        return  # a plate that cools the coolant: the bound does not hold
    net = rn.network
    t_sup = case.supply.temperature
    why = "the supply temperature (the plates only add heat)"
    prec = case.precision
    nodes = bounds.label_locator(net.node_labels, "node") if net.node_labels else None
    edges = bounds.label_locator(net.edge_labels, "edge") if net.edge_labels else None
    bounds.check("coolant temperature", temps.node, lower=t_sup, lower_why=why, locate=nodes, precision=prec)
    for what, t in (("edge inlet temperature", temps.edge_inlet), ("edge outlet temperature", temps.edge_outlet)):
        bounds.check(what, t, lower=t_sup, lower_why=why, locate=edges, precision=prec)
    e = rn.plate_edges
    plate_labels = [net.edge_labels[i] for i in e] if net.edge_labels else [f"edge {i}" for i in e]
    bounds.check_order(
        "plate outlet temperature",
        np.asarray(temps.edge_outlet)[e],
        "plate inlet temperature",
        np.asarray(temps.edge_inlet)[e],
        why="a cold plate only adds heat",
        locate=bounds.label_locator(plate_labels, "plate"),
        precision=prec,
    )


def run(case: RackCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    """Solve and write results.h5, summary.json and plots into ``folder``."""
    from aidc_thermo.kernels.network import GRAVITY

    rn, sol, info, temps, tinfo, (t_mean, fluid) = solve(case)
    progress.phase("write", ready=(sol, info, temps, tinfo))
    net = rn.network
    q = np.asarray(sol.flow, np.float64)
    p = np.asarray(sol.pressure, np.float64)
    iterations = int(info.iterations)
    history = np.asarray(info.history, np.float64)[: iterations + 1]
    finite = all(np.all(np.isfinite(np.asarray(a))) for a in (q, p, temps.node))
    if not bool(info.converged) or not finite:
        raise SolveError(
            f"rack flow network did not converge: relative residual {float(info.residual):.3e} after "
            f"{iterations} Newton iterations; check that the supply flow and the component curves "
            "are plausible (a plate or QD far too restrictive for the flow?)"
        )
    if not bool(tinfo.converged):
        raise SolveError(f"rack temperatures did not solve: residual {float(tinfo.residual):.3e}")
    _check_liquid(case, rn, net, np.asarray(temps.node, np.float64), np.asarray(temps.edge_outlet, np.float64))
    check_bounded(case, rn, temps)
    rho, cp = float(fluid.density), float(fluid.specific_heat)
    t_node = np.asarray(temps.node, np.float64)
    t_pin = np.asarray(temps.edge_inlet, np.float64)[rn.plate_edges]
    t_pout = np.asarray(temps.edge_outlet, np.float64)[rn.plate_edges]
    qp = q[rn.plate_edges]
    r = np.empty(qp.size)
    for name in set(rn.plate_type):
        sel = np.asarray([t == name for t in rn.plate_type])
        pt = case.plate(name)
        r[sel] = loglog_interp(qp[sel], pt.resistance_flow, pt.resistance)
    tj = t_pin + r * rn.plate_power
    dp_plate = np.asarray(sol.loss, np.float64)[rn.plate_edges]

    # per-tray flow (through its supply QD)
    qd_supply = np.array([net.edge_labels.index(f"tray {i} supply QD") for i in range(len(rn.tray_level))])
    q_tray = q[qd_supply]
    q_total = case.supply.flow
    dp_rack = p[rn.inlet] - p[rn.outlet]
    # the loop closes through the CDU, so the pump supplies the piezometric
    # (static + hydrostatic) pressure drop of the rack; the column between a
    # top outlet (Z layout) and the bottom inlet is regained on the way down
    z = np.asarray(rn.boundary.elevation, np.float64)
    dp_pump = dp_rack - rho * GRAVITY * (z[rn.outlet] - z[rn.inlet])
    hydraulic = q_total * dp_pump
    t_ret = t_node[rn.outlet]
    t_sup = case.supply.temperature
    heat_in = float(rn.plate_power.sum())
    heat_out = rho * cp * q_total * (t_ret - t_sup)
    balance = abs(heat_out - heat_in) / heat_in if heat_in > 0 else abs(heat_out)
    mean_plate = {}
    for name in set(rn.plate_type):
        sel = np.asarray([t == name for t in rn.plate_type])
        mean_plate[name] = qp[sel].mean()
    ratio = np.array([qp[i] / mean_plate[t] for i, t in enumerate(rn.plate_type)])
    tray_types = np.asarray(case.trays)
    tray_ratio = np.array([q_tray[i] / q_tray[tray_types == t].mean() for i, t in enumerate(tray_types)])
    hot = int(np.argmax(tj))
    summary = {
        "case": Quantity(case.name),
        "trays": Quantity(len(rn.tray_level), "", "trays fed by the manifolds"),
        "plates": Quantity(int(qp.size), "", "cold plates"),
        "layout": Quantity(case.manifold.layout, "", "U: direct return, Z: reverse return"),
        "coolant": Quantity(case.coolant.name),
        "liquid_heat": Quantity(heat_in, "W", "heat into the coolant (sum of plate powers)"),
        "total_flow": Quantity(q_total / LPM, "L/min", "supply flow from the CDU"),
        "T_supply": Quantity(t_sup - 273.15, "degC"),
        "T_return": Quantity(t_ret - 273.15, "degC", "mixed temperature leaving the rack"),
        "rack_pressure_drop": Quantity(dp_rack / 1e3, "kPa", "static pressure, rack inlet minus outlet"),
        "pump_pressure_rise": Quantity(dp_pump / 1e3, "kPa", "pressure rise the CDU pump must add for the rack"),
        "pump_head": Quantity(dp_pump / (rho * GRAVITY), "m", "the same as a head of coolant"),
        "hydraulic_power": Quantity(hydraulic, "W", "flow x pressure rise needed for the rack"),
        "pump_electrical_power": Quantity(
            hydraulic / case.supply.pump_efficiency, "W", "hydraulic power / wire-to-water efficiency"
        ),
        "plate_flow_min": Quantity(qp.min() / LPM, "L/min"),
        "plate_flow_max": Quantity(qp.max() / LPM, "L/min"),
        "flow_ratio_min": Quantity(float(ratio.min()), "", "lowest plate flow / mean of its plate type"),
        "flow_ratio_max": Quantity(float(ratio.max()), "", "highest plate flow / mean of its plate type"),
        "tray_flow_ratio_min": Quantity(float(tray_ratio.min()), "", "lowest tray flow / mean of its tray type"),
        "tray_flow_ratio_max": Quantity(float(tray_ratio.max()), "", "highest tray flow / mean of its tray type"),
        "T_junction_max": Quantity(tj.max() - 273.15, "degC", "hottest chip, T_in + R(Q) P"),
        "hottest_plate": Quantity(net.edge_labels[rn.plate_edges[hot]]),
        "T_plate_outlet_max": Quantity(t_pout.max() - 273.15, "degC"),
        "heat_balance_error": Quantity(balance, "", "|rho cp Q (T_return - T_supply) - heat| / heat"),
        "T_properties": Quantity(t_mean - 273.15, "degC", "coolant properties evaluated here"),
        "solver_converged": Quantity(True),
        "solver_iterations": Quantity(iterations, "", "Newton iterations from a cold start"),
        "solver_residual": Quantity(float(info.residual), "", "relative residual (flows and pressures)"),
    }
    _write_h5(
        folder / "results.h5",
        case,
        case_file,
        rn,
        sol,
        temps,
        info,
        history,
        summary,
        dict(r=r, tj=tj, dp=dp_plate, ratio=ratio, q_tray=q_tray, fluid=(rho, float(fluid.viscosity), cp)),
    )
    write_summary_json(folder, summary)
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary


#: drawing of a tray in the synthesised layout (m): supply hose end and QD end
#: from the supply manifold, the length of one plate, the spacing of branches
_HOSE_X, _QD_X, _PLATE_X, _LANE_Y = 0.10, 0.05, 0.08, 0.08


def layout_points(case: RackCase, rn: RackNetwork) -> np.ndarray:
    """Coordinates ``(n_nodes, 3)`` for drawing the network (m). z is each
    node's elevation (the one the hydrostatics use); x and y are a schematic
    layout: the supply manifold on x = 0, the return manifold on the far x
    side, each tray a horizontal ladder at its tap height (hose, quick
    disconnect, its parallel branches side by side in y, the plates of a
    branch in series along x, then the return QD and hose), the rack inlet
    and outlet feeds running back along -y."""
    labels = rn.network.node_labels
    z = np.asarray(rn.boundary.elevation, np.float64)
    longest = max(len(br) for t in case.tray_types for br in t.branches)
    x_b = _HOSE_X + _QD_X
    x_c = x_b + _PLATE_X * (longest + 1)
    x_r = x_c + _QD_X + _HOSE_X
    xy = {"inlet": (0.0, -case.manifold.feed_length), "outlet": (x_r, -case.manifold.feed_length)}
    for i, tname in enumerate(case.trays):
        xy[f"S{i}"], xy[f"R{i}"] = (0.0, 0.0), (x_r, 0.0)
        xy[f"t{i}_a"], xy[f"t{i}_b"] = (_HOSE_X, 0.0), (x_b, 0.0)
        xy[f"t{i}_c"], xy[f"t{i}_d"] = (x_c, 0.0), (x_r - _HOSE_X, 0.0)
        branches = case.tray(tname).branches
        for j, branch in enumerate(branches):
            y = (j - 0.5 * (len(branches) - 1)) * _LANE_Y
            for k in range(len(branch) - 1):  # the node after plate k (the last plate ends on t_c)
                xy[f"t{i}_br{j}_{k}"] = (x_b + _PLATE_X * (k + 1), y)
    return np.array([[*xy[label], z[n]] for n, label in enumerate(labels)], np.float64)


def _check_liquid(case: RackCase, rn: RackNetwork, net, t_node: np.ndarray, t_edge_out: np.ndarray) -> None:
    """A coolant temperature above the coolant's valid (liquid) range is not
    an answer: the coolant would boil, or its properties are unknown there.
    Raises SolveError naming the hottest place and what would fix it."""
    co = case.coolant
    if float(t_edge_out.max()) <= co.t_max + 1e-6 and float(t_node.max()) <= co.t_max + 1e-6:
        return
    plates = np.asarray(rn.plate_edges)
    hot_edge = int(plates[np.argmax(t_edge_out[plates])])  # name the hottest cold plate
    if t_edge_out[hot_edge] <= co.t_max + 1e-6:
        hot_edge = int(np.argmax(t_edge_out))
    t_hot = float(t_edge_out[hot_edge])
    t_sup = case.supply.temperature
    rise = case.liquid_power / (float(co.density(t_sup)) * float(co.cp(t_sup)) * case.supply.flow)
    raise SolveError(
        f"physically impossible result: the coolant leaving {net.edge_labels[hot_edge]} would be at "
        f"{t_hot - 273.15:.4g} degC, outside {range_text(co)}: it would boil. The supply flow "
        f"{case.supply.flow / LPM:.4g} L/min carries {case.liquid_power / 1e3:.4g} kW with a mean rise of "
        f"{rise:.4g} K; raise [supply] flow or lower the plate powers"
    )


def _write_h5(path, case, case_file, rn, sol, temps, info, history, summary, extra):
    import h5py

    from aidc_thermo.kernels.network import EdgeKind

    net = rn.network
    with results_h5(path) as h5:
        solver = {
            "iterations": int(info.iterations),
            "residual": float(info.residual),
            "converged": bool(info.converged),
            "residual_history": history,
        }
        write_common(h5, case_file.text, case.as_dict(), solver, summary)
        g = h5.create_group("network")
        g.attrs["description"] = "flow network: edges from edge_from to edge_to; positive flow in that direction"
        strings = h5py.string_dtype()
        g.create_dataset("node_labels", data=np.asarray(net.node_labels, dtype=object), dtype=strings)
        g.create_dataset("edge_labels", data=np.asarray(net.edge_labels, dtype=object), dtype=strings)
        g.create_dataset("edge_from", data=np.asarray(net.edge_from))
        g.create_dataset("edge_to", data=np.asarray(net.edge_to))
        kinds = g.create_dataset("edge_kind", data=np.asarray(net.edge_kind, np.int32))
        kind_names = tuple(EdgeKind(i).name.lower() if i in set(EdgeKind) else str(i) for i in range(max(EdgeKind) + 1))
        kinds.attrs["names"] = np.asarray(kind_names, dtype=strings)

        def put(name, data, units, description):
            ds = g.create_dataset(name, data=np.asarray(data, np.float64))
            ds.attrs["units"] = units
            ds.attrs["description"] = description

        put("flow", sol.flow, "m^3/s", "volumetric flow per edge")
        put("pressure_loss", sol.loss, "Pa", "pressure loss along each edge")
        put("pressure", sol.pressure, "Pa", "static pressure per node")
        put("elevation", rn.boundary.elevation, "m", "node elevation")
        put("temperature", np.asarray(temps.node) - 273.15, "degC", "mixed coolant temperature per node")
        put("edge_inlet_temperature", np.asarray(temps.edge_inlet) - 273.15, "degC", "coolant entering each edge")
        put("edge_outlet_temperature", np.asarray(temps.edge_outlet) - 273.15, "degC", "coolant leaving each edge")
        geo = g.create_group("geometry")
        geo.attrs["description"] = (
            "drawing of the network for results.xdmf: z is the node elevation, x and y a schematic layout"
        )
        geo.create_dataset("points", data=layout_points(case, rn)).attrs["units"] = "m"
        lines = np.stack([np.asarray(net.edge_from), np.asarray(net.edge_to)], axis=1).astype(np.int32)
        geo.create_dataset("lines", data=lines).attrs["description"] = "edge_from, edge_to of every edge"
        geo.create_dataset("plate_lines", data=lines[rn.plate_edges]).attrs["description"] = "lines of the plates"
        pl = h5.create_group("plates")
        pl.create_dataset(
            "label", data=np.asarray([net.edge_labels[e] for e in rn.plate_edges], dtype=object), dtype=strings
        )
        pl.create_dataset("type", data=np.asarray(rn.plate_type, dtype=object), dtype=strings)
        for name, data in (
            ("tray", rn.plate_tray),
            ("branch", rn.plate_branch),
            ("position", rn.plate_position),
            ("edge", rn.plate_edges),
        ):
            pl.create_dataset(name, data=np.asarray(data))

        def pput(name, data, units, description):
            ds = pl.create_dataset(name, data=np.asarray(data, np.float64))
            ds.attrs["units"] = units
            ds.attrs["description"] = description

        e = rn.plate_edges
        pput("flow", np.asarray(sol.flow)[e], "m^3/s", "plate flow")
        pput("flow_ratio", extra["ratio"], "1", "plate flow / mean flow of its plate type")
        pput("power", rn.plate_power, "W", "heat into the coolant")
        pput("pressure_drop", extra["dp"], "Pa", "plate pressure drop")
        pput("inlet_temperature", np.asarray(temps.edge_inlet)[e] - 273.15, "degC", "plate inlet coolant temperature")
        pput("outlet_temperature", np.asarray(temps.edge_outlet)[e] - 273.15, "degC", "plate outlet coolant")
        pput("thermal_resistance", extra["r"], "K/W", "R(Q), chip to plate inlet coolant")
        pput("junction_temperature", extra["tj"] - 273.15, "degC", "T_in + R(Q) P")
        limits = [case.plate(t).junction_limit for t in rn.plate_type]
        limits_c = [np.nan if x is None else x - 273.15 for x in limits]
        pput("junction_limit", limits_c, "degC", "design limit (NaN: none given)")
        for name, data, description in (
            ("supply_nodes", rn.supply_nodes, "supply-manifold tap node per tray"),
            ("return_nodes", rn.return_nodes, "return-manifold tap node per tray"),
            ("inlet_node", rn.inlet, "rack inlet node"),
            ("outlet_node", rn.outlet, "rack outlet node"),
        ):
            g.create_dataset(name, data=np.asarray(data)).attrs["description"] = description
        tr = h5.create_group("trays")
        tr.create_dataset("level", data=rn.tray_level).attrs["units"] = "m"
        tr.create_dataset("flow", data=extra["q_tray"]).attrs["units"] = "m^3/s"
        tr.create_dataset("type", data=np.asarray(case.trays, dtype=object), dtype=strings)
        n_nodes, n_edges, n_plates = net.n_nodes, len(net.edge_from), len(e)
        grids = {
            "network": (
                "/network/geometry/lines",
                n_edges,
                [
                    ("flow", "/network/flow", (n_edges,), np.float64, "m^3/s", "Cell"),
                    ("pressure_loss", "/network/pressure_loss", (n_edges,), np.float64, "Pa", "Cell"),
                    (
                        "edge_inlet_temperature",
                        "/network/edge_inlet_temperature",
                        (n_edges,),
                        np.float64,
                        "degC",
                        "Cell",
                    ),
                    (
                        "edge_outlet_temperature",
                        "/network/edge_outlet_temperature",
                        (n_edges,),
                        np.float64,
                        "degC",
                        "Cell",
                    ),
                    ("edge_kind", "/network/edge_kind", (n_edges,), np.int32, "1", "Cell", kind_names),
                    ("pressure", "/network/pressure", (n_nodes,), np.float64, "Pa", "Node"),
                    ("temperature", "/network/temperature", (n_nodes,), np.float64, "degC", "Node"),
                ],
            ),
            "plates": (
                "/network/geometry/plate_lines",
                n_plates,
                [
                    (name, f"/plates/{name}", (n_plates,), pl[name].dtype, pl[name].attrs.get("units", "1"), "Cell")
                    for name in (
                        "flow",
                        "flow_ratio",
                        "power",
                        "pressure_drop",
                        "inlet_temperature",
                        "outlet_temperature",
                        "thermal_resistance",
                        "junction_temperature",
                        "tray",
                        "branch",
                        "position",
                    )
                ],
            ),
        }
        xdmf = network_xdmf(path.name, points="/network/geometry/points", n_points=n_nodes, grids=grids)
        fl = h5.create_group("fluid")
        for k, v, u in zip(
            ("density", "viscosity", "specific_heat"), extra["fluid"], ("kg/m^3", "Pa s", "J/kg/K"), strict=True
        ):
            fl.attrs[k] = v
            fl.attrs[k + ".unit"] = u
    (path.parent / "results.xdmf").write_text(xdmf, encoding="utf-8")
