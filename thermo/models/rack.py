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
  segments); or both from a cold-plate curve file (``curves = "file.csv"``,
  :mod:`aidc_thermo.io.curves`, as ``compact_coldplate`` writes it): R = R_max(Q)
  and dp(Q) a power law between the file's rows (the network's
  ``LOGLOG_TABLE`` law), a converged plate flow outside the file's flow range
  being a failed solve. The junction temperature of a chip is T_in + R(Q) P with T_in the
  plate's own inlet temperature, so a plate downstream in a series branch sees
  the upstream plate's outlet.

The CDU delivers a total flow at a supply temperature; the static pressure at
the rack outlet sets the pressure level.

**A row of racks** (optional ``[row]``): ``racks`` copies of the rack on the
CDU's horizontal supply and return headers (see :func:`_add_row`): a feed
pipe from the CDU, a sharp take-off tee at every rack (its branch leg the
rack's own feed pipe), header segments of ``rack_pitch``, and a direct return
(back to the CDU from rack 0's end) or a reverse one (on to the last rack,
then back along the row). ``[supply] flow`` stays per rack (the CDU delivers
``racks`` times it) and the return pressure is the CDU's. The report adds the
flow of each rack and which rack and plate is worst, by how much against the
same plate in the other racks, and its junction margin. Coolant properties are evaluated at
the rack's mean bulk temperature (supply plus half the rise from the heat
balance). The network is solved with :mod:`kernels.network` (Newton on the
nodal pressures, then advected temperatures with mixing).

The model follows :mod:`aidc_thermo.models.protocol`: :func:`build` gives a
hashable :class:`Static` (the network's topology, what sets each edge's
parameters, the coolant's property fits) and a :class:`Params` pytree of every
number a user may sweep (supply, manifold, hose, quick disconnect, plate
curves and powers, section gaps); :func:`solve` turns them into the edge
parameters, the coolant properties and the solution inside JAX, so a batch of
designs of one network shape is one ``vmap`` and one compilation.

Reported: flow of every plate and its ratio to the mean (maldistribution),
plate inlet/outlet and junction temperatures, the rack pressure drop (the head
the CDU pump must supply to the rack), hydraulic and pump electrical power,
and the heat balance.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from aidc_thermo import bounds, progress, resources
from aidc_thermo.compile_options import jit
from aidc_thermo.coolant import Coolant, range_text, read_coolant, read_coolant_temperature
from aidc_thermo.errors import CaseError, FlowOutsideCurves, SolveError
from aidc_thermo.io.case import CaseFile, Table, read_header, read_plots_flag
from aidc_thermo.io.curves import ColdPlateCurves, read_curves, require_coolant
from aidc_thermo.io.results import Quantity, network_xdmf, results_h5, write_common, write_summary_json
from aidc_thermo.models import precision_dtype

__all__ = [
    "CASE_TYPE",
    "Params",
    "RackCase",
    "Solution",
    "Static",
    "build",
    "build_network",
    "check",
    "design_bytes",
    "parse",
    "report",
    "run",
    "screen",
    "solve",
    "solve_case",
    "stack_params",
]

CASE_TYPE = "rack_network"
PROTOCOL = True
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
    curves: ColdPlateCurves | None = None  # from a curve file: dp(Q) and R_max(Q) (the fields above are unused)
    curve_key: str = ""  # the key that named the curves ("plate_types[0].curves" or ".case"), for messages


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
class Row:
    """A row of identical racks on one CDU's horizontal headers (``[row]``)."""

    racks: int
    return_: str  # "direct": the return header flows back to the CDU; "reverse": it runs on, then back
    diameter: float  # header inside diameter, m
    roughness: float
    rack_pitch: float  # header length between neighbouring racks' take-offs, m
    feed_length: float  # CDU to the first take-off (and from the return header's end back to the CDU), m
    feed_k: float
    tees: bool


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
    row: Row | None = None  # a row of ``row.racks`` copies of this rack on a CDU's headers

    @property
    def n_racks(self) -> int:
        return 1 if self.row is None else self.row.racks

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
        """Heat into the coolant of the whole network (all racks of a row)."""
        return self.n_racks * sum(self.plate(p).power for t in self.trays for br in self.tray(t).branches for p in br)

    @property
    def total_flow(self) -> float:
        """Flow the CDU delivers, m^3/s: [supply] flow is per rack."""
        return self.n_racks * self.supply.flow

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.row is None:
            del d["row"]  # a single rack echoes as before rows existed
        d["coolant"] = {
            "name": self.coolant.name,
            "fluid": self.coolant.fluid,
            "mass_fraction": self.coolant.mass_fraction,
        }
        return d


_INLINE_KEYS = ("dp_rated", "flow_rated", "dp_exponent", "resistance_flow", "resistance")


def _read_plate(t: Table, coolant: Coolant, directory: Path) -> PlateType:
    name = t.string("name")
    power = t.quantity("power", "power", nonnegative=True)
    if t.has("curves") or t.has("case"):
        if t.has("curves") and t.has("case"):
            raise t.error("case", "give either curves = <curve file> or case = <cold-plate case file>, not both")
        given = [k for k in _INLINE_KEYS if t.has(k)]
        if given:
            raise t.error(
                given[0],
                "give either curves = <curve file> (or case = <cold-plate case file>) or the inline dp and R(Q) "
                "keys, not both",
            )
        curves = _read_plate_curves(t, coolant, directory)
        limit = t.quantity("junction_limit", "temperature", default=None)
        t.finish()
        q = curves.flow
        key = t.key("case" if t.has("case") else "curves")
        return PlateType(name, power, curves.dp[0], q[0], 2.0, q, curves.r_max, limit, curves, key)
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


def _read_plate_curves(t: Table, coolant: Coolant, directory: Path) -> ColdPlateCurves:
    if t.has("case"):  # a compact_ or resolved_coldplate case: its curves solved (or taken from the curve cache) now
        from aidc_thermo import curve_cache

        return curve_cache.resolve(t, "case", directory, coolant, "this rack's")
    raw = t.raw("curves")
    if not isinstance(raw, str) or not raw.strip():
        raise t.error("curves", f"expected the path of a cold-plate curve file (relative to this file), got {raw!r}")
    curves = read_curves((directory / raw).resolve(), case_file=t.file, key=t.key("curves"))
    require_coolant(curves, coolant, t, "this rack's")
    return curves


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
        p = _read_plate(t, coolant, case.directory)
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

    row = _read_row(root, manifold)

    sv = root.table("solver", default={})
    precision = sv.string("precision", default="float64", choices=("float64", "float32"))
    sv.finish()
    plots = read_plots_flag(root)
    root.finish()
    _require_memory(case.path, sections, trays, 1 if row is None else row.racks)
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
        row,
    )


#: The most racks a [row] may hold (a CDU row is tens of racks at most)
MAX_RACKS = 200


def _read_row(root: Table, manifold: Manifold) -> Row | None:
    """The optional ``[row]``: this rack repeated ``racks`` times along a CDU's
    supply and return headers."""
    if not root.has("row"):
        return None
    r = root.table("row")
    row = Row(
        racks=r.integer("racks", minimum=1, maximum=MAX_RACKS),
        return_=r.string("return", choices=("direct", "reverse")),
        diameter=r.quantity("diameter", "length", positive=True),
        roughness=r.quantity("roughness", "length", default=1.5e-6, nonnegative=True),
        rack_pitch=r.quantity("rack_pitch", "length", positive=True),
        feed_length=r.quantity("feed_length", "length", default=2.0, nonnegative=True),
        feed_k=r.number("feed_k", default=1.0, minimum=0.0),
        tees=r.boolean("tees", default=True),
    )
    if row.tees and row.diameter <= manifold.diameter:
        raise r.error(
            "diameter",
            f"the header ({row.diameter * 1e3:.4g} mm) must be wider than the rack manifold it feeds "
            f"([manifold] diameter {manifold.diameter * 1e3:.4g} mm) for its take-off tees",
        )
    r.finish()
    return row


#: The most trays one rack network may hold: a 1U tray pitch puts 1000 trays
#: 44 m high; far beyond any rack (and the network is built tray by tray).
MAX_TRAYS = 1000


def _require_memory(path, sections, trays, racks: int = 1) -> None:
    """Refuse (CaseError) a rack (or row of racks) too large to build, before
    any array exists. The Newton step factorises the manifold ladder (about
    two condensed nodes per tray) as one dense block: matrix, LU factors and a
    copy, 8 B each."""
    per_rack = resources.require_count(path, "sections[].count", sum(s.count for s in sections), "trays", MAX_TRAYS)
    n = per_rack * racks
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

#: What sets an edge's parameters (edge_params): the rack feed or drain pipe;
#: a plain manifold segment; the run and branch legs of a tap's tee; an end
#: tap's hose on the supply or return side; a quick disconnect; a cold plate.
R_FEED, R_SEGMENT, R_TEE_RUN, R_TEE_BRANCH, R_HOSE_SUPPLY, R_HOSE_RETURN, R_QD, R_PLATE = range(8)
#: A row's edges: the CDU feed (and the direct-return drain) pipe; the reverse
#: return line (feed length plus the header's length); a header segment; the
#: run and branch legs of a rack's take-off tee (the branch is the rack's feed
#: pipe); the last rack's feed and drain, where all the remaining flow turns.
R_ROW_FEED, R_ROW_RETURN_LINE, R_ROW_SEGMENT, R_ROW_TEE_RUN, R_ROW_TEE_BRANCH, R_ROW_END_SUPPLY, R_ROW_END_RETURN = (
    range(8, 15)
)


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
    # what sets each edge's parameters (see _ROLES), for edge_params(): role,
    # manifold segment (or -1), plate type index (or -1)
    edge_role: tuple[int, ...] = ()
    edge_segment: tuple[int, ...] = ()
    edge_plate_type: tuple[int, ...] = ()
    node_tray: tuple[int, ...] = ()  # tray whose tap level a node sits at; -1 the inlet, -2 the outlet
    tray_gap_section: tuple[int, ...] = ()  # section whose gap_below lies under each tray's tap, or -1
    qd_supply_edges: np.ndarray = None  # supply QD edge of every tray (rack by rack in a row)
    plate_rack: np.ndarray = None  # rack of every plate (0 without [row])
    rack_feed_edges: np.ndarray = None  # the edge feeding each rack's supply manifold
    header_supply_nodes: np.ndarray = None  # a row's supply header node at each rack's take-off (empty without)
    header_return_nodes: np.ndarray = None


def build_network(case: RackCase, dtype) -> RackNetwork:
    """Nodes and edges of the rack, or of the row of racks (see the module
    docstring)."""
    from aidc_thermo.kernels.network import EdgeKind, NetworkBuilder, tee_loss_coefficient

    man = case.manifold
    b = NetworkBuilder()
    b.node("inlet")
    b.node("outlet", fixed=True)
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
    row = case.row
    elevation = {"inlet": 0.0, "outlet": 0.0 if (man.layout == "U" or row is not None) else float(z[-1])}
    roles: list[tuple[int, int, int]] = []  # (role, segment, plate type) per edge, in edge order
    parts = _Parts()

    if row is None:

        def feed_in(s0):
            b.pipe("inlet", s0, man.feed_length, man.diameter, k_minor=man.feed_k, label="feed",
                   roughness=man.roughness)  # fmt: skip
            roles.append((R_FEED, -1, -1))

        def drain_out(r_last):
            b.pipe(r_last, "outlet", man.feed_length, man.diameter, k_minor=man.feed_k, label="drain",
                   roughness=man.roughness)  # fmt: skip
            roles.append((R_FEED, -1, -1))

        _add_rack(b, case, z, gaps, elevation, roles, parts, "", "", feed_in, drain_out, EdgeKind,
                  tee_loss_coefficient)  # fmt: skip
    else:
        _add_row(b, case, z, gaps, elevation, roles, parts, EdgeKind, tee_loss_coefficient)

    net, params = b.build(dtype)
    bnd = b.boundary(
        pressure={"outlet": case.supply.return_pressure},
        supply={"inlet": case.total_flow if row is not None else case.supply.flow},
        elevation=elevation,
        dtype=dtype,
    )
    assert len(roles) == net.n_edges
    node_tray = []
    for label in net.node_labels:
        if label in ("inlet", "outlet"):
            node_tray.append(-2 if label == "outlet" and row is None else -1)
        elif row is not None and "." not in label:
            node_tray.append(-1)  # a header node of the row, on the floor
        else:
            node_tray.append(int(label.split(".")[-1][1:].split("_")[0]))
    section_of_tray, first = [], []
    for si, sec in enumerate(case.sections):
        for j in range(sec.count):
            section_of_tray.append(si)
            first.append(j == 0)
    gap_section = tuple(si if f and k > 0 else -1 for k, (si, f) in enumerate(zip(section_of_tray, first, strict=True)))
    return RackNetwork(
        network=net,
        params=params,
        boundary=bnd,
        tray_level=z,
        supply_nodes=np.array([b.index(x) for x in parts.supply_nodes]),
        return_nodes=np.array([b.index(x) for x in parts.return_nodes]),
        inlet=b.index("inlet"),
        outlet=b.index("outlet"),
        plate_edges=np.asarray(parts.plates),
        plate_tray=np.asarray(parts.ptray),
        plate_branch=np.asarray(parts.pbranch),
        plate_position=np.asarray(parts.ppos),
        plate_type=tuple(parts.ptype),
        plate_power=np.asarray(parts.ppower, float),
        edge_role=tuple(r[0] for r in roles),
        edge_segment=tuple(r[1] for r in roles),
        edge_plate_type=tuple(r[2] for r in roles),
        node_tray=tuple(node_tray),
        tray_gap_section=gap_section,
        qd_supply_edges=np.asarray(parts.qd_supply),
        plate_rack=np.asarray(parts.prack),
        rack_feed_edges=np.asarray(parts.rack_feed),
        header_supply_nodes=np.array([b.index(x) for x in parts.header_supply]),
        header_return_nodes=np.array([b.index(x) for x in parts.header_return]),
    )


class _Parts:
    """Where build_network put things (node labels and edge indices)."""

    def __init__(self):
        self.supply_nodes, self.return_nodes, self.qd_supply, self.rack_feed = [], [], [], []
        self.plates, self.ptray, self.pbranch, self.ppos = [], [], [], []
        self.ptype, self.ppower, self.prack = [], [], []
        self.header_supply, self.header_return = [], []


def _add_rack(b, case, z, gaps, elevation, roles, parts, p, lp, feed_in, drain_out, EdgeKind, tee_loss_coefficient):
    """One rack's manifolds and trays: node labels prefixed with ``p``, edge
    labels with ``lp``; ``feed_in(S0)`` and ``drain_out(R_last)`` add the
    edges that feed the supply manifold's first tap and drain the return
    manifold's last one."""
    man, hose = case.manifold, case.hose
    trays = case.trays
    n = len(trays)
    rack = len(parts.rack_feed)
    for i in range(n):
        for nm in (f"S{i}", f"R{i}", f"t{i}_a", f"t{i}_b", f"t{i}_c", f"t{i}_d"):
            b.node(p + nm)
            elevation[p + nm] = float(z[i])
    parts.supply_nodes += [f"{p}S{i}" for i in range(n)]
    parts.return_nodes += [f"{p}R{i}" for i in range(n)]
    beta2 = (hose.diameter / man.diameter) ** 2
    # the end taps have no run leg: all the flow turns into (or out of) the
    # hose; Crane's branch coefficient at x = 1, moved from the manifold's to
    # the hose's velocity head (times beta^4), is added to that hose
    k_end_supply = float(tee_loss_coefficient(EdgeKind.TEE_DIVIDING_BRANCH, 1.0, beta2)) * beta2**2
    k_end_return = float(tee_loss_coefficient(EdgeKind.TEE_COMBINING_BRANCH, 1.0, beta2)) * beta2**2
    seg = [man.pitch + g for g in gaps]  # seg[i]: manifold length between tap i-1 and tap i
    pipe = dict(roughness=man.roughness)

    # supply manifold (flow upwards), a dividing tee at every tap but the last
    parts.rack_feed.append(b.n_edges)
    feed_in(f"{p}S0")
    for i in range(n):
        if man.tees and i < n - 1:
            b.tee(
                f"{p}S{i}",
                f"{p}S{i + 1}",
                f"{p}t{i}_a",
                True,
                beta2,
                seg[i + 1],
                man.diameter,
                hose.length,
                hose.diameter,
                roughness=man.roughness,
                branch_k=hose.k_minor,
                label=f"{lp}supply tap {i}",
            )
            roles += [(R_TEE_RUN, i + 1, -1), (R_TEE_BRANCH, -1, -1)]
        else:
            if i < n - 1:
                b.pipe(f"{p}S{i}", f"{p}S{i + 1}", seg[i + 1], man.diameter, label=f"{lp}supply seg {i}", **pipe)
                roles.append((R_SEGMENT, i + 1, -1))
            roles.append((R_HOSE_SUPPLY, -1, -1))
            b.pipe(
                f"{p}S{i}",
                f"{p}t{i}_a",
                hose.length,
                hose.diameter,
                roughness=hose.roughness,
                k_minor=hose.k_minor + (k_end_supply if man.tees else 0.0),
                label=f"{lp}tray {i} supply hose",
            )
    # return manifold: U flows down to the bottom outlet, Z up to the top outlet
    for i in range(n):
        upstream = i + 1 if man.layout == "U" else i - 1
        has_run = 0 <= upstream < n
        if man.tees and has_run:
            length = seg[i + 1] if man.layout == "U" else seg[i]
            b.tee(
                f"{p}R{i}",
                f"{p}R{upstream}",
                f"{p}t{i}_d",
                False,
                beta2,
                length,
                man.diameter,
                hose.length,
                hose.diameter,
                roughness=man.roughness,
                branch_k=hose.k_minor,
                label=f"{lp}return tap {i}",
            )
            roles += [(R_TEE_RUN, i + 1 if man.layout == "U" else i, -1), (R_TEE_BRANCH, -1, -1)]
        else:
            if has_run:
                length = seg[i + 1] if man.layout == "U" else seg[i]
                b.pipe(f"{p}R{upstream}", f"{p}R{i}", length, man.diameter, label=f"{lp}return seg {i}", **pipe)
                roles.append((R_SEGMENT, i + 1 if man.layout == "U" else i, -1))
            roles.append((R_HOSE_RETURN, -1, -1))
            b.pipe(
                f"{p}t{i}_d",
                f"{p}R{i}",
                hose.length,
                hose.diameter,
                roughness=hose.roughness,
                k_minor=hose.k_minor + (k_end_return if man.tees else 0.0),
                label=f"{lp}tray {i} return hose",
            )
    drain_out(f"{p}R0" if man.layout == "U" else f"{p}R{n - 1}")

    # trays
    n_table = _table_points(case)
    type_names = [pt.name for pt in case.plate_types]
    for i, tname in enumerate(trays):
        parts.qd_supply.append(b.flow_coefficient(f"{p}t{i}_a", f"{p}t{i}_b", kv=case.qd_kv,
                                                  label=f"{lp}tray {i} supply QD"))  # fmt: skip
        b.flow_coefficient(f"{p}t{i}_c", f"{p}t{i}_d", kv=case.qd_kv, label=f"{lp}tray {i} return QD")
        roles += [(R_QD, -1, -1), (R_QD, -1, -1)]
        for j, branch in enumerate(case.tray(tname).branches):
            prev = f"{p}t{i}_b"
            for k, pname in enumerate(branch):
                nxt = f"{p}t{i}_c" if k == len(branch) - 1 else f"{p}t{i}_br{j}_{k}"
                if nxt != f"{p}t{i}_c":
                    b.node(nxt)
                    elevation[nxt] = float(z[i])
                pt = case.plate(pname)
                label = f"{lp}tray {i} branch {j} plate {k} ({pname})"
                if pt.curves is not None:
                    e = b.loglog_table(prev, nxt, *_dp_table(pt.curves, n_table), label=label)
                else:
                    coef = pt.dp_rated / pt.flow_rated**pt.dp_exponent
                    e = b.power_law(prev, nxt, pow_coef=coef, exponent=pt.dp_exponent, label=label)
                parts.plates.append(e)
                roles.append((R_PLATE, -1, type_names.index(pname)))
                parts.ptray.append(i)
                parts.pbranch.append(j)
                parts.ppos.append(k)
                parts.ptype.append(pname)
                parts.ppower.append(pt.power)
                parts.prack.append(rack)
                prev = nxt


def _add_row(b, case, z, gaps, elevation, roles, parts, EdgeKind, tee_loss_coefficient):
    """A row of ``[row] racks`` copies of the rack on the CDU's horizontal
    supply and return headers (on the floor, elevation 0): the CDU's supply
    ("inlet") feeds the supply header through the feed pipe; at every rack a
    sharp tee takes the rack's flow off (its branch leg is the rack's own
    feed pipe, [manifold] feed_length and feed_k) and the last rack takes all
    the remaining flow (Crane's branch coefficient at a split of 1). Each
    rack drains into the return header the same way. Direct return: the
    return header flows back towards the CDU and leaves from rack 0's end
    through a pipe of the feed's length. Reverse return: it flows on towards
    the last rack and comes back to the CDU along the row (feed length plus
    the header's length), so rack 0, first supplied, is the last returned."""
    man, row = case.manifold, case.row
    n_r = row.racks
    beta2 = (man.diameter / row.diameter) ** 2
    k_end_s = float(tee_loss_coefficient(EdgeKind.TEE_DIVIDING_BRANCH, 1.0, beta2)) * beta2**2
    k_end_r = float(tee_loss_coefficient(EdgeKind.TEE_COMBINING_BRANCH, 1.0, beta2)) * beta2**2
    if not row.tees:
        k_end_s = k_end_r = 0.0
    hdr = dict(roughness=row.roughness)
    reverse = row.return_ == "reverse" and n_r > 1  # (one rack: the same network either way)
    feed = row.feed_length > 0 or row.feed_k > 0  # zero length and no loss: the CDU sits at the first take-off

    def hs(k):  # supply header node at rack k
        return "inlet" if (k == 0 and not feed) else f"H{k}"

    def hr(k):  # return header node at rack k
        return "outlet" if (k == 0 and not feed and not reverse) else f"G{k}"

    for k in range(n_r):
        for nm in (hs(k), hr(k)):
            if nm not in ("inlet", "outlet"):
                b.node(nm)
                elevation[nm] = 0.0
    parts.header_supply += [hs(k) for k in range(n_r)]
    parts.header_return += [hr(k) for k in range(n_r)]
    if feed:
        b.pipe("inlet", "H0", row.feed_length, row.diameter, k_minor=row.feed_k, label="row feed", **hdr)
        roles.append((R_ROW_FEED, -1, -1))
    last_r = f"G{n_r - 1}" if reverse else "G0"

    for k in range(n_r):
        p, lp = f"k{k}.", f"rack {k} "
        upstream_r = k - 1 if reverse else k + 1  # where the return header's run comes from

        def feed_in(s0, k=k, lp=lp):
            if row.tees and k < n_r - 1:
                _, e = b.tee(hs(k), hs(k + 1), s0, True, beta2, row.rack_pitch, row.diameter, man.feed_length,
                             man.diameter, roughness=row.roughness, branch_k=man.feed_k,
                             label=f"{lp}take-off")  # fmt: skip
                b.set(e, roughness=man.roughness)
                roles.extend([(R_ROW_TEE_RUN, -1, -1), (R_ROW_TEE_BRANCH, -1, -1)])
                parts.rack_feed[-1] = e
            else:
                if k < n_r - 1:
                    b.pipe(hs(k), hs(k + 1), row.rack_pitch, row.diameter, label=f"supply header seg {k}", **hdr)
                    roles.append((R_ROW_SEGMENT, -1, -1))
                parts.rack_feed[-1] = b.pipe(hs(k), s0, man.feed_length, man.diameter, k_minor=man.feed_k + k_end_s,
                                             label=f"{lp}feed", roughness=man.roughness)  # fmt: skip
                roles.append((R_ROW_END_SUPPLY if row.tees else R_FEED, -1, -1))

        def drain_out(r_last, k=k, lp=lp, up=upstream_r):
            if row.tees and 0 <= up < n_r:
                _, e = b.tee(hr(k), hr(up), r_last, False, beta2, row.rack_pitch, row.diameter, man.feed_length,
                             man.diameter, roughness=row.roughness, branch_k=man.feed_k,
                             label=f"{lp}return take-in")  # fmt: skip
                b.set(e, roughness=man.roughness)
                roles.extend([(R_ROW_TEE_RUN, -1, -1), (R_ROW_TEE_BRANCH, -1, -1)])
            else:
                if 0 <= up < n_r:
                    b.pipe(hr(up), hr(k), row.rack_pitch, row.diameter, label=f"return header seg {k}", **hdr)
                    roles.append((R_ROW_SEGMENT, -1, -1))
                b.pipe(r_last, hr(k), man.feed_length, man.diameter, k_minor=man.feed_k + k_end_r, label=f"{lp}drain",
                       roughness=man.roughness)  # fmt: skip
                roles.append((R_ROW_END_RETURN if row.tees else R_FEED, -1, -1))

        _add_rack(b, case, z, gaps, elevation, roles, parts, p, lp, feed_in, drain_out, EdgeKind,
                  tee_loss_coefficient)  # fmt: skip
    if reverse:
        b.pipe(last_r, "outlet", row.feed_length + (n_r - 1) * row.rack_pitch, row.diameter, k_minor=row.feed_k,
               label="row return line", **hdr)  # fmt: skip
        roles.append((R_ROW_RETURN_LINE, -1, -1))
    elif feed:
        b.pipe(last_r, "outlet", row.feed_length, row.diameter, k_minor=row.feed_k, label="row drain", **hdr)
        roles.append((R_ROW_FEED, -1, -1))


def _table_points(case: RackCase) -> int:
    """Rows of the padded dp tables of the plates with curve files (2 without)."""
    return max([len(p.curves.flow) for p in case.plate_types if p.curves is not None] or [2])


def _dp_table(curves: ColdPlateCurves | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A plate's dp(Q) table padded to ``n`` rows: extra rows continue the
    last segment's power law (doubling the flow), which the log-log law
    follows beyond the table anyway, so the padded table is the same curve.
    Without curves: a placeholder that no edge uses."""
    if curves is None:
        return np.geomspace(1.0, 2.0, n), np.geomspace(1.0, 2.0, n)
    q, dp = list(curves.flow), list(curves.dp)
    slope = np.log(dp[-1] / dp[-2]) / np.log(q[-1] / q[-2])
    while len(q) < n:
        q.append(2.0 * q[-1])
        dp.append(dp[-1] * 2.0**slope)
    return np.asarray(q), np.asarray(dp)


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


def loglog_interp_jax(x, xk, yk):
    """:func:`loglog_interp` in JAX (traceable in ``x``, ``xk`` and ``yk``)."""
    import jax.numpy as jnp

    if np.shape(xk)[0] == 1:
        return jnp.full_like(x, yk[0])
    lx, ly, lq = jnp.log(xk), jnp.log(yk), jnp.log(x)
    k = jnp.clip(jnp.searchsorted(lx, lq) - 1, 0, lx.size - 2)
    slope = (ly[k + 1] - ly[k]) / (lx[k + 1] - lx[k])
    return jnp.exp(ly[k] + slope * (lq - lx[k]))


# ----------------------------------------------------------------------------- protocol
#
# build(case) -> (Static, Params); solve(static, params) -> Solution (pure,
# jit/vmap-able over params); report -> Outputs; check -> SolveError
# (thermo/models/protocol.py).


@dataclass(frozen=True)
class Static:
    """What fixes the compiled rack solve (hashable): the network topology
    (:class:`kernels.network.Network`), what sets each edge's parameters, where
    the plates and trays are, the layout, the coolant's property fits and the
    precision."""

    network: object  # kernels.network.Network
    edge_role: tuple[int, ...]
    edge_segment: tuple[int, ...]
    edge_plate_type: tuple[int, ...]
    node_tray: tuple[int, ...]
    tray_gap_section: tuple[int, ...]
    plate_edges: tuple[int, ...]
    plate_type_index: tuple[int, ...]
    qd_supply_edges: tuple[int, ...]
    tray_type_index: tuple[int, ...]
    plate_type_names: tuple[str, ...]
    inlet: int
    outlet: int
    layout: str
    tees: bool
    coolant: object  # aidc_thermo.coolant.Coolant
    precision: str
    max_iterations: int = 60
    #: per plate type, the (lowest, highest) flow of its curve file, m^3/s; () when no type has one
    curve_range: tuple[tuple[float, float] | None, ...] = ()
    #: a [row]: the number of racks ("" return: no row), the return ("direct"/"reverse"), the take-off tees,
    #: the edge feeding each rack; the plates, trays and supply QDs above are rack by rack, each rack's alike
    n_racks: int = 1
    row_return: str = ""
    row_tees: bool = False
    rack_feed_edges: tuple[int, ...] = ()


class Params(NamedTuple):
    """Every number of a rack a user may sweep (SI; a pytree: stack along a
    leading axis for a batch of designs). Per plate type (in the case's
    order): ``plate_power`` (W), ``dp_rated`` (Pa), ``flow_rated`` (m^3/s),
    ``dp_exponent``, and its R(Q) curve ``resistance_flow``/``resistance``
    (a tuple of arrays, one per type); ``dp_table_flow``/``dp_table``
    (n_types, n_points): the dp(Q) table of each type with a curve file
    (padded, :func:`_dp_table`; a placeholder for the others). ``gap_below``:
    one per section (m). With a ``[row]``: the headers' ``row_diameter``,
    ``row_roughness``, ``rack_pitch``, ``row_feed_length`` and ``row_feed_k``
    (None without); ``supply_flow`` is then per rack."""

    supply_temperature: Any  # K
    supply_flow: Any  # m^3/s
    return_pressure: Any  # Pa
    pump_efficiency: Any
    manifold_diameter: Any
    manifold_roughness: Any
    pitch: Any
    feed_length: Any
    feed_k: Any
    hose_length: Any
    hose_diameter: Any
    hose_roughness: Any
    hose_k: Any
    qd_kv: Any  # m^3/h at 1 bar
    plate_power: Any
    dp_rated: Any
    flow_rated: Any
    dp_exponent: Any
    resistance_flow: Any  # tuple of (n_points,) per plate type
    resistance: Any
    gap_below: Any
    dp_table_flow: Any  # (n_types, n_points) m^3/s
    dp_table: Any  # (n_types, n_points) Pa
    # a [row] only (None without): its headers (supply_flow stays the flow per rack)
    row_diameter: Any = None
    row_roughness: Any = None
    rack_pitch: Any = None
    row_feed_length: Any = None
    row_feed_k: Any = None


class Solution(NamedTuple):
    """The solved rack: flows/pressures/losses (:class:`kernels.network.NetworkSolution`),
    the Newton :class:`~kernels.diagnostics.SolveInfo`, the temperatures and
    their SolveInfo, the coolant properties used (:class:`kernels.network.Fluid`)
    and their temperature ``t_properties`` (K), and per plate its thermal
    resistance ``plate_resistance`` (K/W) and junction temperature (K)."""

    network: Any
    info: Any
    temperatures: Any
    thermal_info: Any
    fluid: Any
    t_properties: Any
    plate_resistance: Any
    junction: Any


def _dtype_of(precision: str):
    return precision_dtype(precision)


def build(case: RackCase) -> tuple[Static, Params]:
    """The static description and the parameters of a rack case."""
    import jax.numpy as jnp

    from aidc_thermo.kernels.network import validate_network, validate_params

    dt = _dtype_of(case.precision)
    rn = build_network(case, dt)
    validate_network(rn.network)
    validate_params(rn.network, rn.params, rn.boundary)
    names = tuple(p.name for p in case.plate_types)
    net = rn.network
    static = Static(
        network=net,
        edge_role=rn.edge_role,
        edge_segment=rn.edge_segment,
        edge_plate_type=rn.edge_plate_type,
        node_tray=rn.node_tray,
        tray_gap_section=rn.tray_gap_section,
        plate_edges=tuple(int(e) for e in rn.plate_edges),
        plate_type_index=tuple(names.index(t) for t in rn.plate_type),
        qd_supply_edges=tuple(int(e) for e in rn.qd_supply_edges),
        tray_type_index=tuple([t.name for t in case.tray_types].index(t) for t in case.trays) * case.n_racks,
        plate_type_names=names,
        inlet=rn.inlet,
        outlet=rn.outlet,
        layout=case.manifold.layout,
        tees=case.manifold.tees,
        coolant=case.coolant,
        precision=case.precision,
        curve_range=(
            tuple(p.curves.flow_range if p.curves is not None else None for p in case.plate_types)
            if any(p.curves is not None for p in case.plate_types)
            else ()
        ),
        n_racks=case.n_racks,
        row_return="" if case.row is None else case.row.return_,
        row_tees=case.row is not None and case.row.tees,
        rack_feed_edges=tuple(int(e) for e in rn.rack_feed_edges),
    )
    man, hose, sup = case.manifold, case.hose, case.supply
    n_table = _table_points(case)
    tables = [_dp_table(p.curves, n_table) for p in case.plate_types]

    def f(x):
        return jnp.asarray(x, dt)

    params = Params(
        supply_temperature=f(sup.temperature),
        supply_flow=f(sup.flow),
        return_pressure=f(sup.return_pressure),
        pump_efficiency=f(sup.pump_efficiency),
        manifold_diameter=f(man.diameter),
        manifold_roughness=f(man.roughness),
        pitch=f(man.pitch),
        feed_length=f(man.feed_length),
        feed_k=f(man.feed_k),
        hose_length=f(hose.length),
        hose_diameter=f(hose.diameter),
        hose_roughness=f(hose.roughness),
        hose_k=f(hose.k_minor),
        qd_kv=f(case.qd_kv),
        plate_power=f([p.power for p in case.plate_types]),
        dp_rated=f([p.dp_rated for p in case.plate_types]),
        flow_rated=f([p.flow_rated for p in case.plate_types]),
        dp_exponent=f([p.dp_exponent for p in case.plate_types]),
        resistance_flow=tuple(f(p.resistance_flow) for p in case.plate_types),
        resistance=tuple(f(p.resistance) for p in case.plate_types),
        gap_below=f([sec.gap_below for sec in case.sections]),
        dp_table_flow=f(np.stack([t[0] for t in tables])),
        dp_table=f(np.stack([t[1] for t in tables])),
    )
    if case.row is not None:
        row = case.row
        params = params._replace(row_diameter=f(row.diameter), row_roughness=f(row.roughness),
                                 rack_pitch=f(row.rack_pitch), row_feed_length=f(row.feed_length),
                                 row_feed_k=f(row.feed_k))  # fmt: skip
    return static, params


def total_flow(static: Static, params: Params):
    """Flow the CDU delivers (m^3/s): [supply] flow per rack times the racks."""
    return params.supply_flow if static.n_racks == 1 else params.supply_flow * static.n_racks


def tray_levels(static: Static, params: Params):
    """Elevation of every tray's taps (m), bottom tray at 0 (traceable)."""
    import jax.numpy as jnp

    idx = np.asarray(static.tray_gap_section)
    gaps = jnp.where(idx >= 0, params.gap_below[np.maximum(idx, 0)], 0.0)
    seg = params.pitch + gaps  # seg[i]: manifold length between tap i - 1 and tap i
    return jnp.concatenate([jnp.zeros_like(seg[:1]), jnp.cumsum(seg[1:])]), seg


def edge_params(static: Static, params: Params):
    """The network's :class:`kernels.network.EdgeParams` and
    :class:`kernels.network.Boundary` from ``params`` (traceable): the same
    values :func:`build_network` puts in, as functions of the swept numbers."""
    import jax.numpy as jnp

    from aidc_thermo.kernels.network import Boundary, EdgeKind, EdgeParams, tee_loss_coefficient

    dt = jnp.result_type(params.pitch)
    role = np.asarray(static.edge_role)
    segi = np.maximum(np.asarray(static.edge_segment), 0)
    ptyp = np.maximum(np.asarray(static.edge_plate_type), 0)
    ne = role.size
    z, seg = tray_levels(static, params)
    beta2 = (params.hose_diameter / params.manifold_diameter) ** 2
    k_end_s = tee_loss_coefficient(EdgeKind.TEE_DIVIDING_BRANCH, 1.0, beta2) * beta2**2
    k_end_r = tee_loss_coefficient(EdgeKind.TEE_COMBINING_BRANCH, 1.0, beta2) * beta2**2
    if not static.tees:
        k_end_s = k_end_r = jnp.zeros_like(beta2)

    codes = dict(R_FEED=R_FEED, R_SEGMENT=R_SEGMENT, R_TEE_RUN=R_TEE_RUN, R_TEE_BRANCH=R_TEE_BRANCH,
                 R_HOSE_SUPPLY=R_HOSE_SUPPLY, R_HOSE_RETURN=R_HOSE_RETURN, R_QD=R_QD, R_PLATE=R_PLATE,
                 R_ROW_FEED=R_ROW_FEED, R_ROW_RETURN_LINE=R_ROW_RETURN_LINE, R_ROW_SEGMENT=R_ROW_SEGMENT,
                 R_ROW_TEE_RUN=R_ROW_TEE_RUN, R_ROW_TEE_BRANCH=R_ROW_TEE_BRANCH, R_ROW_END_SUPPLY=R_ROW_END_SUPPLY,
                 R_ROW_END_RETURN=R_ROW_END_RETURN)  # fmt: skip

    def pick(default, **by_role):  # per edge: the value of its role, else default
        out = jnp.full((ne,), default, dt)
        for name, value in by_role.items():
            out = jnp.where(role == codes[name], jnp.asarray(value, dt), out)
        return out

    manifold_seg = seg[segi]
    hose_pipe = dict(R_HOSE_SUPPLY=params.hose_length, R_HOSE_RETURN=params.hose_length)
    length = pick(0.0, R_FEED=params.feed_length, R_SEGMENT=manifold_seg, R_TEE_RUN=manifold_seg,
                  R_TEE_BRANCH=params.hose_length, **hose_pipe)  # fmt: skip
    diameter = pick(1.0, R_FEED=params.manifold_diameter, R_SEGMENT=params.manifold_diameter,
                    R_TEE_RUN=params.manifold_diameter, R_TEE_BRANCH=params.hose_diameter,
                    R_HOSE_SUPPLY=params.hose_diameter, R_HOSE_RETURN=params.hose_diameter)  # fmt: skip
    roughness = pick(0.0, R_FEED=params.manifold_roughness, R_SEGMENT=params.manifold_roughness,
                     R_TEE_RUN=params.manifold_roughness, R_TEE_BRANCH=params.manifold_roughness,
                     R_HOSE_SUPPLY=params.hose_roughness, R_HOSE_RETURN=params.hose_roughness)  # fmt: skip
    k_minor = pick(0.0, R_FEED=params.feed_k, R_TEE_BRANCH=params.hose_k,
                   R_HOSE_SUPPLY=params.hose_k + k_end_s, R_HOSE_RETURN=params.hose_k + k_end_r)  # fmt: skip
    if static.row_return:  # the row's headers and the racks' feeds off them
        rb2 = (params.manifold_diameter / params.row_diameter) ** 2
        ke_s = tee_loss_coefficient(EdgeKind.TEE_DIVIDING_BRANCH, 1.0, rb2) * rb2**2
        ke_r = tee_loss_coefficient(EdgeKind.TEE_COMBINING_BRANCH, 1.0, rb2) * rb2**2
        if not static.row_tees:
            ke_s = ke_r = jnp.zeros_like(rb2)
        line = params.row_feed_length + (static.n_racks - 1) * params.rack_pitch
        rack_feed = dict(R_ROW_TEE_BRANCH=params.feed_length, R_ROW_END_SUPPLY=params.feed_length,
                         R_ROW_END_RETURN=params.feed_length)  # fmt: skip
        hdr = dict(R_ROW_FEED=params.row_diameter, R_ROW_RETURN_LINE=params.row_diameter,
                   R_ROW_SEGMENT=params.row_diameter, R_ROW_TEE_RUN=params.row_diameter)  # fmt: skip
        length = pick(length, R_ROW_FEED=params.row_feed_length, R_ROW_RETURN_LINE=line,
                      R_ROW_SEGMENT=params.rack_pitch, R_ROW_TEE_RUN=params.rack_pitch, **rack_feed)  # fmt: skip
        diameter = pick(diameter, **hdr, **{k: params.manifold_diameter for k in rack_feed})
        roughness = pick(roughness, **{k: params.row_roughness for k in hdr},
                         **{k: params.manifold_roughness for k in rack_feed})  # fmt: skip
        k_minor = pick(k_minor, R_ROW_FEED=params.row_feed_k, R_ROW_RETURN_LINE=params.row_feed_k,
                       R_ROW_TEE_BRANCH=params.feed_k, R_ROW_END_SUPPLY=params.feed_k + ke_s,
                       R_ROW_END_RETURN=params.feed_k + ke_r)  # fmt: skip
    coef = params.dp_rated / params.flow_rated**params.dp_exponent
    ep = EdgeParams(
        length=length,
        diameter=diameter,
        roughness=roughness,
        k_minor=k_minor,
        kv=pick(1.0, R_QD=params.qd_kv),
        opening=jnp.ones((ne,), dt),
        rangeability=jnp.ones((ne,), dt),
        lin_coef=jnp.zeros((ne,), dt),
        pow_coef=pick(0.0, R_PLATE=coef[ptyp]),
        pow_exp=pick(2.0, R_PLATE=params.dp_exponent[ptyp]),
        table_flow=jnp.asarray(params.dp_table_flow, dt)[ptyp],  # used by the plates with curve files only
        table_dp=jnp.asarray(params.dp_table, dt)[ptyp],
        pump_dp0=jnp.zeros((ne,), dt),
        pump_r1=jnp.zeros((ne,), dt),
        pump_r2=jnp.zeros((ne,), dt),
        pump_speed=jnp.ones((ne,), dt),
        area_ratio=pick(1.0, R_TEE_RUN=beta2, R_TEE_BRANCH=beta2)
        if not static.row_return
        else pick(1.0, R_TEE_RUN=beta2, R_TEE_BRANCH=beta2, R_ROW_TEE_RUN=rb2, R_ROW_TEE_BRANCH=rb2),
    )
    nn = static.network.n_nodes
    nt = np.asarray(static.node_tray)
    z_out = z[-1] if static.layout == "Z" else jnp.zeros_like(z[0])
    elevation = jnp.where(nt == -2, z_out, jnp.where(nt == -1, 0.0, z[np.maximum(nt, 0)]))
    onehot_in = jnp.asarray(np.arange(nn) == static.inlet, dt)
    onehot_out = jnp.asarray(np.arange(nn) == static.outlet, dt)
    bnd = Boundary(pressure=onehot_out * params.return_pressure, supply=onehot_in * total_flow(static, params),
                   elevation=elevation)  # fmt: skip
    return ep, bnd


def newton_options(static: Static):
    """The rack network's Newton settings, for its own solve and a hall's
    (:func:`aidc_thermo.models.facility.rack_plates`): the case's iteration
    limit, from the network linearized at the cold start (3 steps instead of
    7-8 for the NVL72 rack)."""
    from aidc_thermo.kernels.network import NewtonOptions

    return NewtonOptions(max_iterations=static.max_iterations, linear_start=True)


def solve(static: Static, params: Params) -> Solution:
    """The rack's flows, pressures, temperatures and junction temperatures
    (pure JAX; ``jax.vmap(partial(solve, static))`` for a batch of designs).
    Coolant properties at the rack's mean bulk temperature, supply plus half
    the rise of the heat balance (capped at the coolant's range), evaluated
    from ``params``."""
    import jax.numpy as jnp

    from aidc_thermo.kernels.network import Fluid, network_temperatures, solve_network

    dt = jnp.result_type(params.pitch)
    ep, bnd = edge_params(static, params)
    co = static.coolant
    t_sup = params.supply_temperature
    pe = np.asarray(static.plate_edges)
    pt = np.asarray(static.plate_type_index)
    power = params.plate_power[pt]
    rise = jnp.sum(power) / (co.density(t_sup) * co.cp(t_sup) * total_flow(static, params))
    t_mean = jnp.minimum(t_sup + 0.5 * rise, co.t_max)
    fluid = Fluid(density=co.density(t_mean), viscosity=co.viscosity(t_mean), specific_heat=co.cp(t_mean))
    fluid = Fluid(*(jnp.asarray(x, dt) for x in (fluid.density, fluid.viscosity, fluid.specific_heat)))
    net = static.network
    heat = jnp.zeros((net.n_edges,), dt).at[pe].set(power)
    t_in = jnp.full((net.n_nodes,), t_sup, dt)
    sol, info = solve_network(net, ep, fluid, bnd, newton_options(static))
    temps, tinfo = network_temperatures(net, sol.flow, heat, fluid, t_in)
    r = plate_resistances(static, params, sol.flow[pe])
    tj = temps.edge_inlet[pe] + r * power
    return Solution(sol, info, temps, tinfo, fluid, t_mean, r, tj)


def plate_resistances(static: Static, params: Params, plate_flow):
    """Every plate's thermal resistance (K/W, chip to its inlet coolant) at its
    flow ``plate_flow`` (m^3/s, in the order of ``static.plate_edges``;
    traceable): its type's R(Q) curve, power law between the points."""
    import jax.numpy as jnp

    pt = np.asarray(static.plate_type_index)
    r = jnp.zeros_like(plate_flow)
    for k in range(len(static.plate_type_names)):
        sel = pt == k
        if sel.any():
            r = r.at[np.flatnonzero(sel)].set(
                loglog_interp_jax(plate_flow[sel], params.resistance_flow[k], params.resistance[k])
            )
    return r


@functools.cache
def _cached_solve():
    """:func:`solve` for :func:`run`, ``(static, params) -> Solution`` jitted
    with ``static`` static; with the command line's cache on the compiled
    program is kept on disk (:mod:`thermo.compile_cache`), so a second run
    neither traces nor lowers it. ``Static`` holds tuples, Python numbers and
    strings only (it is a jit static argument), so its ``repr``, which the
    cache keys by, is its value."""
    from aidc_thermo.compile_cache import cached_jit

    return cached_jit(solve, static_argnums=(0,))


@functools.cache
def compiled_solve(static: Static, batched: bool = False):
    """:func:`solve` compiled for ``static``; ``batched``: over a leading design axis."""
    import jax

    f = functools.partial(solve, static)
    return jit(jax.vmap(f) if batched else f)


def solve_case(case: RackCase):
    """Build and solve a case (host convenience): ``(rack network, network
    solution, Newton info, temperatures, thermal info, (t_properties, fluid))``."""
    progress.phase("build")
    static, params = build(case)
    rn = build_network(case, _dtype_of(case.precision))
    progress.phase("solve")
    s = compiled_solve(static)(params)
    return rn, s.network, s.info, s.temperatures, s.thermal_info, (s.t_properties, s.fluid)


#: name -> (units, description) of every number report() returns
_OUTPUTS = {
    "T_return": ("degC", "mixed temperature leaving the rack"),
    "rack_pressure_drop": ("kPa", "static pressure, rack inlet minus outlet"),
    "pump_pressure_rise": ("kPa", "pressure rise the CDU pump must add for the rack"),
    "pump_head": ("m", "the same as a head of coolant"),
    "hydraulic_power": ("W", "flow x pressure rise needed for the rack"),
    "pump_electrical_power": ("W", "hydraulic power / wire-to-water efficiency"),
    "plate_flow_min": ("L/min", ""),
    "plate_flow_max": ("L/min", ""),
    "flow_ratio_min": ("", "lowest plate flow / mean of its plate type"),
    "flow_ratio_max": ("", "highest plate flow / mean of its plate type"),
    "tray_flow_ratio_min": ("", "lowest tray flow / mean of its tray type"),
    "tray_flow_ratio_max": ("", "highest tray flow / mean of its tray type"),
    "T_junction_max": ("degC", "hottest chip, T_in + R(Q) P"),
    "T_plate_outlet_max": ("degC", ""),
    "heat_balance_error": ("", "|rho cp Q (T_return - T_supply) - heat| / heat"),
    "T_properties": ("degC", "coolant properties evaluated here"),
    "converged": ("", "the flow (Newton) and temperature solves converged"),
    "iterations": ("", "Newton iterations from the network linearized at a cold start"),
    "residual": ("", "relative residual (flows and pressures)"),
    "temperature_extremes": ("K", "(min, max) of the node, edge inlet and edge outlet temperatures (3 x 2)"),
    "plate_rise_extremes": ("K", "min and max over plates of outlet - inlet temperature, the largest |plate "
                            "temperature| and the plate (index in plate order) of the min (the first one "
                            "within round-off of it)"),
    "plate_type_flow_extremes": ("m^3/s", "(min, max) plate flow of each plate type (types x 2)"),
}


def _group_ratio(x, groups, n_groups):
    """x / mean of x over its group (traceable)."""
    import jax.numpy as jnp

    g = np.asarray(groups)
    sums = jnp.zeros((n_groups,), x.dtype).at[g].add(x)
    counts = jnp.asarray(np.maximum(np.bincount(g, minlength=n_groups), 1), x.dtype)
    return x / (sums / counts)[g]


def _report_one(static: Static, params: Params, s: Solution) -> dict:
    import jax.numpy as jnp

    from aidc_thermo.kernels.network import GRAVITY

    pe = np.asarray(static.plate_edges)
    q, p = s.network.flow, s.network.pressure
    rho, cp = s.fluid.density, s.fluid.specific_heat
    qp = q[pe]
    q_tray = q[np.asarray(static.qd_supply_edges)]
    ep, bnd = edge_params(static, params)
    z = bnd.elevation
    dp_rack = p[static.inlet] - p[static.outlet]
    dp_pump = dp_rack - rho * GRAVITY * (z[static.outlet] - z[static.inlet])
    hydraulic = total_flow(static, params) * dp_pump
    t_ret = s.temperatures.node[static.outlet]
    heat_in = jnp.sum(params.plate_power[np.asarray(static.plate_type_index)])
    heat_out = rho * cp * total_flow(static, params) * (t_ret - params.supply_temperature)
    balance = jnp.where(heat_in > 0, jnp.abs(heat_out - heat_in) / jnp.where(heat_in > 0, heat_in, 1.0),
                        jnp.abs(heat_out))  # fmt: skip
    ratio = _group_ratio(qp, static.plate_type_index, len(static.plate_type_names))
    tray_ratio = _group_ratio(q_tray, static.tray_type_index, max(static.tray_type_index) + 1)
    t_pin, t_pout = s.temperatures.edge_inlet[pe], s.temperatures.edge_outlet[pe]
    rise = t_pout - t_pin
    types = np.asarray(static.plate_type_index)
    row = _report_row(static, params, s, q) if static.row_return else {}
    return row | {
        "T_return": t_ret - 273.15,
        "rack_pressure_drop": dp_rack / 1e3,
        "pump_pressure_rise": dp_pump / 1e3,
        "pump_head": dp_pump / (rho * GRAVITY),
        "hydraulic_power": hydraulic,
        "pump_electrical_power": hydraulic / params.pump_efficiency,
        "plate_flow_min": qp.min() / LPM,
        "plate_flow_max": qp.max() / LPM,
        "flow_ratio_min": ratio.min(),
        "flow_ratio_max": ratio.max(),
        "tray_flow_ratio_min": tray_ratio.min(),
        "tray_flow_ratio_max": tray_ratio.max(),
        "T_junction_max": s.junction.max() - 273.15,
        "T_plate_outlet_max": s.temperatures.edge_outlet[pe].max() - 273.15,
        "heat_balance_error": balance,
        "T_properties": s.t_properties - 273.15,
        "converged": s.info.converged & s.thermal_info.converged,
        "iterations": s.info.iterations,
        "residual": s.info.residual,
        "hottest_plate": jnp.argmax(s.junction),
        # for the sweep's screen (the maximum principle as check applies it, from extremes instead of fields)
        "temperature_extremes": jnp.stack(
            [jnp.stack([t.min(), t.max()]) for t in (s.temperatures.node, s.temperatures.edge_inlet,
                                                      s.temperatures.edge_outlet)]
        ),  # fmt: skip
        "plate_rise_extremes": jnp.stack(
            [rise.min(), rise.max(), jnp.maximum(jnp.abs(t_pin).max(), jnp.abs(t_pout).max()),
             _first_lowest(rise).astype(rise.dtype)]
        ),  # fmt: skip
        # for the sweep's screen: a plate type's flows against the range of its curve file
        "plate_type_flow_extremes": jnp.stack(
            [jnp.stack([jnp.where(types == k, qp, jnp.inf).min(), jnp.where(types == k, qp, -jnp.inf).max()])
             if np.any(types == k) else jnp.zeros((2,), qp.dtype) for k in range(len(static.plate_type_names))]
        ),  # fmt: skip
    }


def _first_lowest(x):
    """Index of the first entry within round-off of ``x``'s minimum. Plates
    whose rises tie up to round-off (the identical plates of a rack) would
    otherwise be picked by whichever rounded lower, which differs between a
    design solved alone and the same design in a batch."""
    import jax.numpy as jnp

    tol = max(1e-9, 64 * float(jnp.finfo(x.dtype).eps)) * jnp.max(jnp.abs(x))
    return jnp.argmax(x <= x.min() + tol)


#: name -> (units, description) of the numbers report() adds for a [row]
_ROW_OUTPUTS = {
    "rack_flow_min": ("L/min", "lowest flow into a rack"),
    "rack_flow_max": ("L/min", "highest flow into a rack"),
    "rack_flow_spread": ("%", "(highest - lowest rack flow) / mean rack flow"),
    "rack_lowest_flow": ("", "rack (0 = first on the supply header) with the lowest flow"),
    "rack_highest_flow": ("", "rack with the highest flow"),
    "worst_rack": ("", "rack of the hottest chip"),
    "worst_rack_excess": ("K", "hottest chip of the worst rack minus the hottest chip of the best (coolest) rack"),
    "worst_plate_excess_mean": ("K", "hottest chip minus the mean of the chips at its position in every rack"),
    "worst_plate_excess_mean_pct": ("%", "the same, in % of that mean's rise above the supply temperature"),
    "worst_plate_excess_best": ("K", "hottest chip minus the coolest chip at its position in any rack"),
    "worst_plate_excess_best_pct": ("%", "the same, in % of that coolest chip's rise above the supply"),
    "worst_plate_flow_deficit": ("%", "how far the hottest chip's plate flow is below the mean at its position"),
    "position_T_junction_spread": ("K", "largest spread (max - min over racks) of the chips at one position"),
}


def _report_row(static: Static, params: Params, s: Solution, q) -> dict:
    """The row's numbers: flow per rack, and the hottest chip against the
    chips at the same position in the other racks (racks are identical, so
    plate j of every rack is the same plate in the same place)."""
    import jax.numpy as jnp

    n_r = static.n_racks
    tj = s.junction.reshape(n_r, -1)
    qp = q[np.asarray(static.plate_edges)].reshape(n_r, -1)
    q_r = q[np.asarray(static.rack_feed_edges)]
    hot = jnp.argmax(s.junction)
    rack_w, pos = hot // tj.shape[1], hot % tj.shape[1]
    col, qcol = tj[:, pos], qp[:, pos]
    t_sup = params.supply_temperature
    rack_max = tj.max(axis=1)
    worst, mean, best = tj[rack_w, pos], col.mean(), col.min()
    return {
        "rack_flow_min": q_r.min() / LPM,
        "rack_flow_max": q_r.max() / LPM,
        "rack_flow_spread": 100 * (q_r.max() - q_r.min()) / q_r.mean(),
        "rack_lowest_flow": jnp.argmin(q_r),
        "rack_highest_flow": jnp.argmax(q_r),
        "worst_rack": rack_w,
        "worst_rack_excess": rack_max.max() - rack_max.min(),
        "worst_plate_excess_mean": worst - mean,
        "worst_plate_excess_mean_pct": 100 * (worst - mean) / (mean - t_sup),
        "worst_plate_excess_best": worst - best,
        "worst_plate_excess_best_pct": 100 * (worst - best) / (best - t_sup),
        "worst_plate_flow_deficit": 100 * (1 - qcol[rack_w] / qcol.mean()),
        "position_T_junction_spread": (tj.max(axis=0) - tj.min(axis=0)).max(),
    }


@functools.cache
def _compiled_report(static: Static, batched: bool):
    import jax

    f = functools.partial(_report_one, static)
    return jit(jax.vmap(f) if batched else f)


def report(static: Static, params: Params, solution: Solution) -> dict:
    """Summary numbers (:class:`~aidc_thermo.models.protocol.Output`), with a
    leading design axis when ``params`` has one."""
    from aidc_thermo.models.protocol import Output

    v = _compiled_report(static, np.ndim(params.supply_flow) > 0)(params, solution)
    out = {k: Output(v[k], *_OUTPUTS[k]) for k in _OUTPUTS}
    if static.row_return:
        out |= {k: Output(v[k], *_ROW_OUTPUTS[k]) for k in _ROW_OUTPUTS}
    out["hottest_plate"] = Output(v["hottest_plate"], "", "index (in plate order) of the hottest chip")
    return out


def stack_params(designs) -> Params:
    """Stack the ``Params`` of designs with equal ``Static`` along a new
    leading axis (the batch of a sweep)."""
    import jax

    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *designs)


def design_bytes(static: Static) -> int:
    """Estimated peak bytes of one design's solve (the sweep sizes its chunks
    with it): the dense Newton block of the manifold ladder and the edge
    arrays, as :func:`_require_memory` estimates a run."""
    n = len(static.tray_type_index)
    return 4 * 8 * (2 * n) ** 2 + 4_000 * static.network.n_edges


def screen(static: Static, params: Params, outputs: dict) -> str:
    """Why one design of a sweep is not a result ("" when it is), from its
    :func:`report` outputs (numpy values, no fields): what :func:`check`
    refuses in ``thermo run``: a flow or temperature solve that did not
    converge or is not finite, a temperature that breaks the maximum
    principle (:mod:`thermo.bounds`, tested on the extremes of the same
    arrays with the same tolerance), a plate outlet colder than its inlet,
    energy that does not close (as :func:`check_energy`),
    coolant beyond its liquid range, or a plate flow outside the range of its
    type's curve file."""
    out = outputs
    if not bool(out["converged"]):
        return (
            f"rack flow network (Newton) or temperature solve did not converge: relative residual "
            f"{float(out['residual']):.3e} after {int(out['iterations'])} Newton iterations "
            f"(limit {static.max_iterations})"
        )
    bad = [k for k in ("rack_pressure_drop", "T_junction_max", "T_return") if not np.isfinite(float(out[k]))]
    if bad:
        return f"rack solve gave values that are not finite ({', '.join(bad)})"
    prec = static.precision
    ext = np.asarray(out["temperature_extremes"], np.float64)
    power = np.asarray(params.plate_power, np.float64)[np.asarray(static.plate_type_index)]
    t_sup = float(params.supply_temperature)
    why = "the supply temperature (the plates only add heat)"
    try:
        for j, what in enumerate(("coolant temperature", "edge inlet temperature", "edge outlet temperature")):
            kw = dict(lower=t_sup, lower_why=why) if not np.any(power < 0) else {}
            bounds.check(what, ext[j], locate=lambda _i, w=what: f"the {w} extremes", precision=prec, **kw)
    except SolveError as exc:
        return str(exc)
    d_min, d_max, scale, k = (float(v) for v in np.asarray(out["plate_rise_extremes"], np.float64))
    tol = bounds.tolerance(d_max, scale, prec)
    if not np.any(power < 0) and d_min < -tol:
        labels = static.network.edge_labels
        e = static.plate_edges[int(k)]
        name = labels[e] if labels else f"edge {e}"
        return (
            f"plate outlet temperature is {-d_min:.4g} K below its inlet at plate {int(k)} ({name}) (tolerance "
            f"{tol:.2g} K); a cold plate only adds heat: the solution is not a result"
        )
    rise = float(out["T_return"]) + 273.15 - t_sup  # energy closure, as check_energy (relative to the rise)
    if rise > 0 and float(out["heat_balance_error"]) > bounds.tolerance(rise, float(out["T_return"]) + 273.15,
                                                                         prec) / rise:  # fmt: skip
        return (
            f"energy does not close over the {'row' if static.row_return else 'rack'}: relative heat balance error "
            f"{float(out['heat_balance_error']):.3g}; the solution is not a result"
        )
    t_hot = float(ext[:, 1].max())
    co = static.coolant
    if t_hot > co.t_max + 1e-6:
        return (
            f"physically impossible result: the coolant would reach {t_hot - 273.15:.4g} degC, outside "
            f"{range_text(co)}: it would boil; raise [supply] flow or lower the plate powers"
        )
    for k, rng in enumerate(static.curve_range):  # as check_curve_range: the curves are not extrapolated
        if rng is None:
            continue
        lo, hi = rng
        q_lo, q_hi = np.asarray(out["plate_type_flow_extremes"], np.float64).reshape(-1, 2)[k]
        if q_lo < lo * (1 - 1e-9) or q_hi > hi * (1 + 1e-9):
            return (
                f"plates of type {static.plate_type_names[k]!r} run at {q_lo * 6e4:.4g}..{q_hi * 6e4:.4g} L/min, "
                f"outside the flow range of their curve file ({lo * 6e4:.4g}..{hi * 6e4:.4g} L/min); the curves "
                "are not extrapolated"
            )
    return ""


def check(static: Static, params: Params, solution: Solution) -> None:
    """Raise :class:`SolveError` when the flow or temperature solve of this
    (unbatched) design did not converge, a result is not finite, the coolant
    leaves its liquid range, or the maximum principle is broken."""
    s = solution
    info = s.info
    iterations = int(info.iterations)
    finite = all(np.all(np.isfinite(np.asarray(a))) for a in (s.network.flow, s.network.pressure, s.temperatures.node))
    if not bool(info.converged) or not finite:
        raise SolveError(
            f"rack flow network did not converge: relative residual {float(info.residual):.3e} after "
            f"{iterations} Newton iterations; check that the supply flow and the component curves "
            "are plausible (a plate or QD far too restrictive for the flow?)"
        )
    if not bool(s.thermal_info.converged):
        raise SolveError(f"rack temperatures did not solve: residual {float(s.thermal_info.residual):.3e}")
    net = static.network
    t_node = np.asarray(s.temperatures.node, np.float64)
    t_out = np.asarray(s.temperatures.edge_outlet, np.float64)
    _check_liquid(static, params, net, t_node, t_out)
    check_bounded(static, params, solution)
    check_energy(static, params, solution)
    check_curve_range(static, solution)


def check_energy(static: Static, params: Params, solution: Solution) -> None:
    """Energy closure of the whole network (a rack, or a row of racks): the
    mixed return carries the plates' heat, rho cp Q (T_return - T_supply) =
    sum of plate powers, the temperature rise within the tolerance of the
    maximum principle (:func:`thermo.bounds.tolerance`). Raises
    :class:`SolveError` otherwise."""
    power = float(np.sum(np.asarray(params.plate_power, np.float64)[np.asarray(static.plate_type_index)]))
    rho, cp = float(solution.fluid.density), float(solution.fluid.specific_heat)
    flow = float(total_flow(static, params))
    t_sup = float(params.supply_temperature)
    t_ret = float(np.asarray(solution.temperatures.node, np.float64)[static.outlet])
    expected = power / (rho * cp * flow)
    tol = bounds.tolerance(abs(expected), max(abs(t_ret), abs(t_sup)), static.precision)
    if abs((t_ret - t_sup) - expected) > tol:
        raise SolveError(
            f"energy does not close over the {'row' if static.row_return else 'rack'}: the mixed return is "
            f"{t_ret - t_sup:.6g} K above the supply, the plates' {power:.6g} W in {flow / LPM:.6g} L/min need "
            f"{expected:.6g} K (tolerance {tol:.2g} K); the solution is not a result"
        )


def check_curve_range(static: Static, solution: Solution) -> None:
    """Raise :class:`~aidc_thermo.errors.FlowOutsideCurves` (a
    :class:`SolveError`) when a converged plate flow lies outside the flow range
    of its type's curve file (the curves are not extrapolated)."""
    if not static.curve_range:
        return
    q = np.asarray(solution.network.flow, np.float64)[np.asarray(static.plate_edges)]
    types = np.asarray(static.plate_type_index)
    labels = static.network.edge_labels
    for k, rng in enumerate(static.curve_range):
        if rng is None:
            continue
        sel = np.flatnonzero(types == k)
        lo, hi = rng
        bad = sel[(q[sel] < lo * (1 - 1e-9)) | (q[sel] > hi * (1 + 1e-9))]
        if bad.size:
            worst = bad[np.argmax(np.maximum(lo / np.maximum(q[bad], 1e-300), q[bad] / hi))]
            raise FlowOutsideCurves(
                f"{bad.size} of {sel.size} plates of type {static.plate_type_names[k]!r} run outside the flow range "
                f"of their curve file ({lo * 6e4:.4g}..{hi * 6e4:.4g} L/min), e.g. "
                f"{labels[static.plate_edges[worst]] if labels else f'plate {worst}'} at {q[worst] * 6e4:.4g} L/min; "
                "the curves are not extrapolated: extend their flow range or change the rack's supply flow",
                k,
            )


def check_bounded(static: Static, params: Params, solution: Solution) -> None:
    """The maximum principle (:mod:`thermo.bounds`) on one (unbatched) design:
    the coolant enters only at the supply (the return is the one
    fixed-pressure node and all of the supply flow leaves there) and the
    plates only add heat, so no node or edge temperature is below the supply
    temperature, and no plate's outlet is colder than its inlet. Raises
    :class:`SolveError` otherwise."""
    pe = np.asarray(static.plate_edges)
    power = np.asarray(params.plate_power, np.float64)[np.asarray(static.plate_type_index)]
    t_sup = float(params.supply_temperature)
    _check_bounded(static.network, pe, power, t_sup, static.precision, solution.temperatures)


# ----------------------------------------------------------------------------- run


def _check_bounded(net, plate_edges, plate_power, t_sup: float, prec: str, temps) -> None:
    if np.any(np.asarray(plate_power) < 0):
        return  # a plate that cools the coolant: the bound does not hold
    why = "the supply temperature (the plates only add heat)"
    nodes = bounds.label_locator(net.node_labels, "node") if net.node_labels else None
    edges = bounds.label_locator(net.edge_labels, "edge") if net.edge_labels else None
    bounds.check("coolant temperature", temps.node, lower=t_sup, lower_why=why, locate=nodes, precision=prec)
    for what, t in (("edge inlet temperature", temps.edge_inlet), ("edge outlet temperature", temps.edge_outlet)):
        bounds.check(what, t, lower=t_sup, lower_why=why, locate=edges, precision=prec)
    e = np.asarray(plate_edges)
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
    """build, solve, check, report; write results.h5, summary.json and plots
    into ``folder``."""
    progress.phase("build")
    static, params = build(case)
    rn = build_network(case, _dtype_of(case.precision))
    progress.phase("solve")
    solution = _cached_solve()(static, params)
    progress.phase("write", ready=solution)
    try:
        check(static, params, solution)
    except FlowOutsideCurves as exc:  # the case's own supply flow and curves disagree: a problem of the case
        raise CaseError(case_file.path, case.plate_types[exc.plate_type].curve_key, str(exc)) from None
    out = {k: np.asarray(o.value) for k, o in report(static, params, solution).items()}
    sol, info, temps = solution.network, solution.info, solution.temperatures
    net = rn.network
    iterations = int(info.iterations)
    history = np.asarray(info.history, np.float64)[: iterations + 1]
    rho, cp = float(solution.fluid.density), float(solution.fluid.specific_heat)
    r = np.asarray(solution.plate_resistance, np.float64)
    tj = np.asarray(solution.junction, np.float64)
    dp_plate = np.asarray(sol.loss, np.float64)[rn.plate_edges]
    qp = np.asarray(sol.flow, np.float64)[rn.plate_edges]
    ratio = np.asarray(_group_ratio(qp, static.plate_type_index, len(static.plate_type_names)))
    q_tray = np.asarray(sol.flow, np.float64)[np.asarray(static.qd_supply_edges)]
    heat_in = float(rn.plate_power.sum())

    def num(k, units=None):
        return Quantity(float(out[k]), _OUTPUTS[k][0] if units is None else units, _OUTPUTS[k][1])

    summary = {
        "case": Quantity(case.name),
        "trays": Quantity(len(rn.tray_level), "", "trays fed by the manifolds"),
        "plates": Quantity(int(qp.size), "", "cold plates"),
        "layout": Quantity(case.manifold.layout, "", "U: direct return, Z: reverse return"),
        "coolant": Quantity(case.coolant.name),
        "liquid_heat": Quantity(heat_in, "W", "heat into the coolant (sum of plate powers)"),
        "total_flow": Quantity(case.total_flow / LPM, "L/min", "supply flow from the CDU"),
        "T_supply": Quantity(case.supply.temperature - 273.15, "degC"),
        **{k: num(k) for k in ("T_return", "rack_pressure_drop", "pump_pressure_rise", "pump_head",
                               "hydraulic_power", "pump_electrical_power", "plate_flow_min", "plate_flow_max",
                               "flow_ratio_min", "flow_ratio_max", "tray_flow_ratio_min", "tray_flow_ratio_max",
                               "T_junction_max")},
        "hottest_plate": Quantity(net.edge_labels[rn.plate_edges[int(out["hottest_plate"])]]),
        **{k: num(k) for k in ("T_plate_outlet_max", "heat_balance_error", "T_properties")},
        "solver_converged": Quantity(True),
        "solver_iterations": Quantity(iterations, "", "Newton iterations from a cold start"),
        "solver_residual": Quantity(float(info.residual), "", "relative residual (flows and pressures)"),
    }  # fmt: skip
    row_extra = None
    if case.row is not None:
        summary, row_extra = _row_summary(case, rn, out, summary, tj, np.asarray(sol.flow, np.float64))
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
        dict(r=r, tj=tj, dp=dp_plate, ratio=ratio, q_tray=q_tray, fluid=(rho, float(solution.fluid.viscosity), cp),
             row=row_extra),
    )
    write_summary_json(folder, summary)
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary


def _row_summary(case: RackCase, rn: RackNetwork, out: dict, summary: dict, tj: np.ndarray, q: np.ndarray):
    """The summary of a row (the rack's, with the row's numbers: flow per
    rack, the worst rack and plate, by how much, and its junction margin) and
    the per-rack arrays for results.h5."""
    row = case.row
    labels = rn.network.edge_labels
    hot = int(out["hottest_plate"])
    limits = np.array([np.nan if case.plate(t).junction_limit is None else case.plate(t).junction_limit
                       for t in rn.plate_type])  # fmt: skip
    margin = limits - tj
    q_rack = q[rn.rack_feed_edges]
    n_r = row.racks
    rack_tj_max = tj.reshape(n_r, -1).max(axis=1)

    def num(k):
        return Quantity(float(out[k]), *_ROW_OUTPUTS[k])

    head = {k: v for k, v in summary.items() if k in ("case",)}
    rest = {k: v for k, v in summary.items() if k not in ("case",)}
    per_rack = len(rn.tray_level)
    rest["trays"] = Quantity(per_rack * n_r, "", f"trays fed by the manifolds ({per_rack} per rack)")
    rest["layout"] = Quantity(case.manifold.layout, "", "each rack's manifolds; U: direct return, Z: reverse return")
    rest["total_flow"] = Quantity(case.total_flow / LPM, "L/min",
                                  f"supply flow from the CDU ({n_r} racks x [supply] flow {case.supply.flow / LPM:.4g} "
                                  "L/min)")  # fmt: skip
    rest["rack_pressure_drop"] = Quantity(float(out["rack_pressure_drop"]), "kPa",
                                          "static pressure, CDU supply minus CDU return (the whole row)")  # fmt: skip
    rest["pump_pressure_rise"] = Quantity(float(out["pump_pressure_rise"]), "kPa",
                                          "pressure rise the CDU pump must add for the row")  # fmt: skip
    rest["hydraulic_power"] = Quantity(float(out["hydraulic_power"]), "W", "total flow x pressure rise for the row")
    worst_label = labels[rn.plate_edges[hot]]
    rowq = {
        "racks": Quantity(n_r, "", "identical racks on the CDU's row headers ([row] racks)"),
        "row_return": Quantity(row.return_, "", "direct: the return header flows back to the CDU; reverse: first "
                               "supplied, last returned"),  # fmt: skip
        "rack_flow_mean": Quantity(float(q_rack.mean() / LPM), "L/min", "mean flow into a rack"),
        **{k: num(k) for k in ("rack_flow_min", "rack_flow_max", "rack_flow_spread")},
        "rack_lowest_flow": Quantity(int(out["rack_lowest_flow"]), "", _ROW_OUTPUTS["rack_lowest_flow"][1]),
        "rack_highest_flow": Quantity(int(out["rack_highest_flow"]), "", _ROW_OUTPUTS["rack_highest_flow"][1]),
        "worst_rack": Quantity(int(out["worst_rack"]), "", _ROW_OUTPUTS["worst_rack"][1]),
        "worst_rack_excess": num("worst_rack_excess"),
        "worst_plate": Quantity(worst_label, "", "the hottest chip (rack, tray, branch, position in series, type)"),
        "worst_plate_T_junction": Quantity(float(tj[hot] - 273.15), "degC", "its junction temperature"),
        **{k: num(k) for k in ("worst_plate_excess_mean", "worst_plate_excess_mean_pct", "worst_plate_excess_best",
                               "worst_plate_excess_best_pct", "worst_plate_flow_deficit",
                               "position_T_junction_spread")},
    }  # fmt: skip
    if np.isfinite(limits[hot]):
        rowq["worst_plate_margin"] = Quantity(float(margin[hot]), "K", "its junction limit minus its T_j")
    if np.isfinite(margin).any():
        k = int(np.nanargmin(margin))
        rowq["T_junction_margin_min"] = Quantity(float(margin[k]), "K", "smallest junction limit - T_j of any chip")
        rowq["tightest_plate"] = Quantity(labels[rn.plate_edges[k]], "", "the chip with that smallest margin")
    extra = dict(q_rack=q_rack, rack_tj_max=rack_tj_max)
    return head | rowq | rest, extra


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
    if case.row is not None:
        return _row_points(case, rn, x_r, z, _rack_xy(case, xy, x_b, x_c, x_r))
    _rack_xy(case, xy, x_b, x_c, x_r)
    return np.array([[*xy[label], z[n]] for n, label in enumerate(labels)], np.float64)


def _row_points(case: RackCase, rn: RackNetwork, x_r: float, z: np.ndarray, rack_xy: dict) -> np.ndarray:
    """A row's drawing: the racks side by side along x (at least the rack
    pitch apart), the supply header under their inlets, the return header
    behind it, the CDU's inlet and outlet before rack 0."""
    row, f = case.row, case.manifold.feed_length
    width = max(row.rack_pitch, x_r + 0.1)
    y_r = -f - 0.1  # the return header, behind the supply header
    xy = {}
    for k in range(row.racks):
        xy[f"H{k}"], xy[f"G{k}"] = (k * width, -f), (k * width + x_r, y_r)
    x_cdu = -max(row.feed_length, 0.1)
    xy["inlet"] = (x_cdu, -f) if "H0" in rn.network.node_labels else (0.0, -f)
    if row.return_ == "reverse" and row.racks > 1:
        xy["outlet"] = (x_cdu, y_r - 0.15)
    else:
        xy["outlet"] = (x_cdu, y_r) if "G0" in rn.network.node_labels else (x_r, y_r)
    pts = []
    for n, label in enumerate(rn.network.node_labels):
        if "." in label:
            pre, local = label.split(".", 1)
            x, y = rack_xy[local]
            pts.append([x + int(pre[1:]) * width, y, z[n]])
        else:
            pts.append([*xy[label], z[n]])
    return np.array(pts, np.float64)


def _rack_xy(case: RackCase, xy: dict, x_b: float, x_c: float, x_r: float) -> dict:
    """One rack's schematic (x, y) per node label (without a row's prefix)."""
    for i, tname in enumerate(case.trays):
        xy[f"S{i}"], xy[f"R{i}"] = (0.0, 0.0), (x_r, 0.0)
        xy[f"t{i}_a"], xy[f"t{i}_b"] = (_HOSE_X, 0.0), (x_b, 0.0)
        xy[f"t{i}_c"], xy[f"t{i}_d"] = (x_c, 0.0), (x_r - _HOSE_X, 0.0)
        branches = case.tray(tname).branches
        for j, branch in enumerate(branches):
            y = (j - 0.5 * (len(branches) - 1)) * _LANE_Y
            for k in range(len(branch) - 1):  # the node after plate k (the last plate ends on t_c)
                xy[f"t{i}_br{j}_{k}"] = (x_b + _PLATE_X * (k + 1), y)
    return xy


def _check_liquid(static: Static, params: Params, net, t_node: np.ndarray, t_edge_out: np.ndarray) -> None:
    """A coolant temperature above the coolant's valid (liquid) range is not
    an answer: the coolant would boil, or its properties are unknown there.
    Raises SolveError naming the hottest place and what would fix it."""
    co = static.coolant
    if float(t_edge_out.max()) <= co.t_max + 1e-6 and float(t_node.max()) <= co.t_max + 1e-6:
        return
    plates = np.asarray(static.plate_edges)
    hot_edge = int(plates[np.argmax(t_edge_out[plates])])  # name the hottest cold plate
    if t_edge_out[hot_edge] <= co.t_max + 1e-6:
        hot_edge = int(np.argmax(t_edge_out))
    t_hot = float(t_edge_out[hot_edge])
    t_sup = float(params.supply_temperature)
    flow = float(total_flow(static, params))
    power = float(np.sum(np.asarray(params.plate_power, np.float64)[np.asarray(static.plate_type_index)]))
    rise = power / (float(co.density(t_sup)) * float(co.cp(t_sup)) * flow)
    raise SolveError(
        f"physically impossible result: the coolant leaving {net.edge_labels[hot_edge]} would be at "
        f"{t_hot - 273.15:.4g} degC, outside {range_text(co)}: it would boil. The supply flow "
        f"{flow / LPM:.4g} L/min carries {power / 1e3:.4g} kW with a mean rise of "
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
        row = extra.get("row")
        if row is not None:
            pl.create_dataset("rack", data=np.asarray(rn.plate_rack)).attrs["description"] = (
                "rack of every plate (0 = first on the supply header); tray is the tray within its rack"
            )

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
        tr.create_dataset("type", data=np.asarray(case.trays * case.n_racks, dtype=object), dtype=strings)
        if row is not None:
            n_t = len(case.trays)
            tr.create_dataset("rack", data=np.repeat(np.arange(case.n_racks), n_t)).attrs["description"] = (
                "rack of every tray; trays are rack by rack, bottom to top within a rack"
            )
            rk = h5.create_group("racks")
            rk.attrs["description"] = "the racks of the row, in order along the supply header (0 = nearest the CDU)"
            rk.create_dataset("flow", data=row["q_rack"]).attrs["units"] = "m^3/s"
            ds = rk.create_dataset("T_junction_max", data=row["rack_tj_max"] - 273.15)
            ds.attrs["units"] = "degC"
            ds.attrs["description"] = "hottest chip of each rack"
            rk.create_dataset("feed_edge", data=rn.rack_feed_edges).attrs["description"] = "edge feeding each rack"
            rk.create_dataset("supply_header_node", data=rn.header_supply_nodes)
            rk.create_dataset("return_header_node", data=rn.header_return_nodes)
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
                    + (("rack",) if row is not None else ())
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
