"""``compact_coldplate`` cases: a whole cold plate by the porous fin-field model.

The plate is a rectangle in x-y with a field of straight fins along x (or
of pin fins: Zukauskas heat transfer and fitted Zukauskas friction, see
:mod:`thermo.models.pin_friction`) between two open plena (one at each x end). Layouts:

* ``end_fed``: coolant enters through the plenum at x = 0 (the whole y
  side) and leaves at x = L;
* ``centre_fed``: an inlet slot across the plate (over the die centre)
  feeds the fins from above; the flow splits and leaves at both x ends.

Below the fin layer, a stack of uniform solid layers (from the junction side
up to the base); heat enters the bottom face through rectangles of given
power. Coolant properties are taken at the inlet temperature
(:mod:`thermo.coolant`); closures from :func:`kernels.fv.porous.straight_fins`
(Shah & London) or a closure table from ``thermo calibrate`` (``[fins]
closures``: f Re and Nu interpolated at the channel Reynolds number of each
flow).

Outputs: temperatures of the stack, the fins and the fluid, pressure and
in-plane velocity at the operating flow; the curves dP(Q) and R(Q) over a
flow range (one compiled solve of every flow) as ``curves.csv`` and ``/curves`` in results.h5;
plots of the junction temperature, fluid temperature with velocity, and the
curves.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from aidc_thermo import bounds, progress, resources
from aidc_thermo.compile_options import jit
from aidc_thermo.coolant import Coolant, read_coolant, read_coolant_temperature
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseError, CaseFile, Table, read_header, read_plots_flag
from aidc_thermo.io.curves import ColdPlateCurves, coolant_label, git_commit, write_curves
from aidc_thermo.io.power_maps import overlap, read_map, source_power
from aidc_thermo.io.results import Field, Layer, Quantity, Series, append_groups, results_h5, write_results
from aidc_thermo.materials import material_library
from aidc_thermo.models import geometry as geo
from aidc_thermo.models import pin_friction, precision_dtype
from aidc_thermo.models.calibrate import ClosureTableError, read_closure_table
from aidc_thermo.models.geometry import faces_on_points
from aidc_thermo.models.protocol import Output

if TYPE_CHECKING:  # annotations only; JAX, the kernels and h5py are imported where used (thermo check needs none)
    from aidc_thermo.kernels import porous

__all__ = ["CompactCase", "Static", "Params", "Solution", "parse", "build", "kernel_inputs", "solve", "report", "check",
           "screen", "run", "fin_layer", "discretize", "stack_params", "solve_curves", "plate_curves",
           "CASE_TYPE"]  # fmt: skip

CASE_TYPE = "compact_coldplate"


@dataclass(frozen=True)
class SolidLayer:
    name: str
    material: str
    k: float  # W/m/K
    thickness: float  # m


@dataclass(frozen=True)
class Source:
    name: str
    rect: tuple[float, float, float, float]  # x0, y0, x1, y1 (m)
    power: float  # W
    map: tuple | None = None  # relative power-map grid, rows along y (thermo.io.power_maps)


@dataclass(frozen=True)
class OptimizeSpec:
    """``[optimize]``: bounds (SI) of the three design variables, the pressure-drop limit and the objective."""

    channel_width: tuple[float, float]
    fin_thickness: tuple[float, float]
    flow: tuple[float, float]
    pressure_drop_limit: float  # Pa
    objective: str  # "R_max" or "R_mean"
    grid: int  # points per variable of the starting scan


@dataclass(frozen=True)
class CompactCase:
    name: str
    description: str
    size: tuple[float, float]
    cells: tuple[int, int]
    layout: str
    plenum_length: float
    slot_width: float
    channel_width: float
    fin_thickness: float
    fin_height: float
    fin_k: float
    nusselt: str
    closures: str  # path of a closure table ("" for Shah & London)
    closure_kind: str  # "apparent" or "local" columns of the table
    #: (Re (n,), channel widths (nw,), fin thicknesses (nt,), f Re and Nu (nw, nt, n)) of the table, () without
    closure_table: tuple
    layers: tuple[SolidLayer, ...]
    heat: tuple[Source, ...]
    coolant: Coolant
    inlet_temperature: float  # K
    flow: float  # m^3/s
    curve_flows: tuple[float, ...]
    precision: str
    plots: bool
    fin_type: str = "straight"  # "straight" or "pins"
    pin_diameter: float = 0.0  # m (pins)
    pitch_transverse: float = 0.0  # m (pins, across the flow)
    pitch_longitudinal: float = 0.0  # m (pins, along the flow)
    arrangement: str = ""  # "staggered" or "inline" (pins)
    pin_r_darcy: float = 0.0  # Pa s/m^2, fitted to the Zukauskas chart (pins)
    pin_beta: float = 0.0  # kg/m^4, fitted (pins)
    pin_fit_error: float = 0.0  # max relative error of the fit over the flows (pins)
    fin_footprint: str = ""  # STL outline of the fin field ("" : the whole plate between the plena)
    footprint_scale: float = 1e-3  # m per unit of the outline file
    footprint_offset: tuple[float, float] = (0.0, 0.0)  # m, added to the outline's x, y
    max_iterations: int = 300  # BiCGSTAB limit of the energy solve ([solver] max_iterations)
    optimize: OptimizeSpec | None = None  # [optimize] (thermo optimize)

    @property
    def channel_run(self) -> float:
        """Length of one channel from its inlet to its outlet, m."""
        run = self.size[0] - 2 * self.plenum_length
        return (run - self.slot_width) / 2 if self.layout == "centre_fed" else run

    def superficial_speed(self, flow):
        """Mean superficial (approach) speed in the fin field at the volume
        flow ``flow`` (float or traced): the flow through the field's y
        section ``W H`` (half of it each way for ``centre_fed``)."""
        through = flow / 2 if self.layout == "centre_fed" else flow
        return through / (self.size[1] * self.fin_height)

    def pin_reynolds(self, flow):
        """Zukauskas ``Re_max = rho V_max D / mu`` of a pin field at ``flow``."""
        t_in = self.inlet_temperature
        rho, mu = float(self.coolant.density(t_in)), float(self.coolant.viscosity(t_in))
        ratio = pin_friction.max_velocity_ratio(
            self.pin_diameter, self.pitch_transverse, self.pitch_longitudinal, self.arrangement == "staggered"
        )
        return rho * self.superficial_speed(flow) * ratio * self.pin_diameter / mu

    def channel_reynolds(self, flow):
        """Channel Reynolds number ``rho u_c D_h / mu`` at the volume flow
        ``flow`` (float or traced), ``u_c`` the mean channel velocity (the
        flow splits in two for ``centre_fed``)."""
        w, t, H = self.channel_width, self.fin_thickness, self.fin_height
        t_in = self.inlet_temperature
        rho, mu = float(self.coolant.density(t_in)), float(self.coolant.viscosity(t_in))
        through = flow / 2 if self.layout == "centre_fed" else flow
        u_c = through / (self.size[1] * H * w / (w + t))
        return rho * u_c * (2 * w * H / (w + H)) / mu

    @property
    def total_power(self) -> float:
        return sum(h.power for h in self.heat)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["coolant"] = self.coolant.name
        return d


def _rect(t: Table, key: str, size):
    x0, y0, x1, y1 = t.quantities(key, "length", length=4, nonnegative=True)
    if not (x1 > x0 and y1 > y0):
        raise t.error(key, f"rect is [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got {t.raw(key)}")
    if x1 > size[0] * (1 + 1e-12) or y1 > size[1] * (1 + 1e-12):
        raise t.error(key, f"rect {t.raw(key)} extends outside the plate [{size[0] * 1e3:g} mm, {size[1] * 1e3:g} mm]")
    return (x0, y0, x1, y1)


def parse(case: CaseFile) -> CompactCase:
    """Read a ``compact_coldplate`` case; raises CaseError on any problem."""
    root = Table(case.data, case.path)
    name, description = read_header(root, CASE_TYPE)

    mt = root.table("materials", default=None)
    user = {}
    if mt is not None:
        for key in list(mt.data):
            user[key] = mt.quantity(key, "thermal_conductivity", positive=True)
        mt.finish()
    library = material_library(user)

    pt = root.table("plate")
    size = tuple(pt.quantities("size", "length", length=2, positive=True))
    cells = tuple(pt.integers("cells", 2, minimum=4))
    layout = pt.string("layout", choices=("end_fed", "centre_fed"))
    plenum = pt.quantity("plenum_length", "length", nonnegative=True)
    slot = pt.quantity("slot_width", "length", positive=True) if layout == "centre_fed" else 0.0
    footprint = _read_footprint(pt, case.directory)
    pt.finish()
    if 2 * plenum + slot >= size[0]:
        raise CaseError(case.path, "plate.plenum_length", "two plena and the inlet slot leave no room for fins")

    ft = root.table("fins")
    fin_kind = FIN_TYPES.read_kind(ft)
    fins, closures, closure_kind, fin_fields = fin_kind.read(ft, library, case.directory)
    ft.finish()

    layers = []
    for lt in root.tables("layers", min_count=1):
        mat = lt.string("material", choices=tuple(sorted(library)))
        layers.append(
            SolidLayer(lt.string("name"), mat, library[mat].k, lt.quantity("thickness", "length", positive=True))
        )
        lt.finish()

    heat = []
    for ht in root.tables("heat", min_count=1):
        heat.append(
            Source(
                ht.string("name"),
                _rect(ht, "rect", size),
                ht.quantity("power", "power", positive=True),
                read_map(ht, "map", case.directory),
            )
        )
        ht.finish()

    coolant = read_coolant(root.table("coolant"))
    op = root.table("operating")
    t_in = read_coolant_temperature(op, "inlet_temperature", coolant)
    flow = op.quantity("flow", "volumetric_flow", positive=True)
    lo, hi = op.quantities("flow_range", "volumetric_flow", length=2, positive=True)
    if not hi > lo:
        raise op.error("flow_range", f"[low, high] with high > low, got {op.raw('flow_range')}")
    n = op.integer("curve_points", default=8, minimum=2, maximum=256)
    op.finish()

    st = root.table("solver", default={})
    precision = st.string("precision", default="float64", choices=("float64", "float32"))
    max_iterations = st.integer("max_iterations", default=300, minimum=1, maximum=100000)
    st.finish()
    plots = read_plots_flag(root)
    optimize_spec = _read_optimize(root, fin_kind.optimize_refusal, fins, flow)
    root.finish()
    _require_memory(case.path, cells, len(layers), n + 1)
    table = ()
    if closures is not None:
        table = _closure_table(case.path, closures, closure_kind, fins, size, layout, plenum, slot)
    out = CompactCase(
        name,
        description,
        size,
        cells,
        layout,
        plenum,
        slot,
        *fins,
        str(closures or ""),
        closure_kind,
        table,
        tuple(layers),
        tuple(heat),
        coolant,
        t_in,
        flow,
        tuple(float(v) for v in np.linspace(lo, hi, n)),
        precision,
        plots,
        **fin_fields,
        max_iterations=max_iterations,
        optimize=optimize_spec,
    )
    if footprint:
        out = replace(out, **footprint)
        try:
            fins_left = (~discretize(out).plenum).any()
        except ValueError as exc:
            raise CaseError(case.path, "plate.fin_footprint", str(exc)) from None
        if not fins_left:
            raise CaseError(case.path, "plate.fin_footprint", "the outline covers no fin-field column of the grid")
    out = fin_kind.complete(case.path, out)
    if closures is not None:
        res = [out.channel_reynolds(q) for q in (*out.curve_flows, out.flow)]
        lo, hi = out.closure_table[0][0], out.closure_table[0][-1]
        if min(res) < lo * (1 - 1e-9) or max(res) > hi * (1 + 1e-9):
            raise CaseError(
                case.path,
                "operating.flow_range",
                f"the flows give channel Reynolds numbers {min(res):.4g}..{max(res):.4g}, outside the closure "
                f"table's {lo:.4g}..{hi:.4g} ({closures}); calibrate over a wider range",
            )
        if optimize_spec is not None:
            flows = (min(optimize_spec.flow[0], *out.curve_flows), max(optimize_spec.flow[1], *out.curve_flows))
            bounds = {"channel_width": optimize_spec.channel_width, "fin_thickness": optimize_spec.fin_thickness}
            problem = closure_box_problem(out, bounds, flows)
            if problem is not None:
                raise CaseError(case.path, f"optimize.{problem[0]}", problem[1])
    return out


def closure_box_problem(case: CompactCase, bounds: dict, flows: tuple[float, float]) -> tuple[str, str] | None:
    """Why the closure table of ``case`` does not hold over a box of designs
    (``bounds``: ``channel_width`` and/or ``fin_thickness`` -> (low, high) m;
    ``flows``: (low, high) m^3/s), as ``(key, message)``, or None: the widths
    and thicknesses must lie within the table's calibrated cells (a table of
    one width holds for that width alone; of one fin thickness, the
    thickness is not varied), and the channel Reynolds numbers at the box's
    corners within its Reynolds numbers."""
    re_t, widths, thicknesses = case.closure_table[:3]
    axes = {"channel_width": widths, "fin_thickness": thicknesses}
    box = {"channel_width": (case.channel_width,) * 2, "fin_thickness": (case.fin_thickness,) * 2}
    for key, (lo, hi) in bounds.items():
        nodes = axes[key]
        if len(nodes) < 2:
            return key, (f"the closure table {case.closures} was calibrated for one {key.replace('_', ' ')}; "
                         "calibrate a grid of unit cells over the bounds (thermo calibrate with channel_widths, "
                         "fin_thicknesses) or optimize with Shah & London closures (nusselt)")  # fmt: skip
        if lo < nodes[0] * (1 - 1e-9) or hi > nodes[-1] * (1 + 1e-9):
            return key, (f"[{lo * 1e3:g} mm, {hi * 1e3:g} mm] leaves the closure table's calibrated "
                         f"{nodes[0] * 1e3:g}..{nodes[-1] * 1e3:g} mm ({case.closures})")  # fmt: skip
        box[key] = (lo, hi)
    res = [
        replace(case, channel_width=w, fin_thickness=t).channel_reynolds(q)
        for w in box["channel_width"] for t in box["fin_thickness"] for q in flows
    ]  # fmt: skip
    if min(res) < re_t[0] * (1 - 1e-9) or max(res) > re_t[-1] * (1 + 1e-9):
        key = next(iter(bounds), "flow")
        return key, (f"over these bounds the channel Reynolds number spans {min(res):.4g}..{max(res):.4g}, outside "
                     f"the closure table's {re_t[0]:.4g}..{re_t[-1]:.4g} ({case.closures}); calibrate over a wider "
                     "range")  # fmt: skip
    return None


def _read_optimize(root: Table, refusal: str, fins, flow: float) -> OptimizeSpec | None:
    """``[optimize]`` (optional): ``channel_width``, ``fin_thickness`` and ``flow`` as [low, high] (default: the
    case's value / 2 .. x 2), ``pressure_drop_limit`` (required), ``objective`` and the scan ``grid``."""
    ot = root.table("optimize", default=None)
    if ot is None:
        return None
    if refusal:  # the fin type has no channel width and fin thickness to vary
        raise ot.error(None, refusal)

    def bounds_of(key, dim, default):
        if not ot.has(key):
            return default
        lo, hi = ot.quantities(key, dim, length=2, positive=True)
        if not hi > lo:
            raise ot.error(key, f"[low, high] with high > low, got {ot.raw(key)}")
        return (lo, hi)

    spec = OptimizeSpec(
        bounds_of("channel_width", "length", (fins[0] / 2, fins[0] * 2)),
        bounds_of("fin_thickness", "length", (fins[1] / 2, fins[1] * 2)),
        bounds_of("flow", "volumetric_flow", (flow / 2, flow * 2)),
        ot.quantity("pressure_drop_limit", "pressure", positive=True),
        ot.string("objective", default="R_max", choices=("R_max", "R_mean")),
        ot.integer("grid", default=4, minimum=2, maximum=12),
    )
    ot.finish()
    return spec


def _require_memory(path, cells, n_layers: int, n_flows: int) -> None:
    """Refuse (CaseError) a plate grid that cannot fit in this machine's memory,
    before any array exists. The estimate is of host memory: one flow's solve
    (:data:`aidc_thermo.resources.BYTES_PER_UNIT`, measured with the CPU's
    flows one after another) and every flow's fields, which :func:`solve`
    keeps (float64, and their copy to the host). On an accelerator the flows
    are solved side by side (vmap) in the device's memory, which this does not
    check."""
    columns = resources.require_count(path, "plate.cells", cells[0] * cells[1], "columns")
    per = resources.BYTES_PER_UNIT[CASE_TYPE]
    units = columns * (n_layers + 6)
    fields = 2 * 8 * units * n_flows
    resources.require_memory(
        path,
        CASE_TYPE,
        [
            (("plate.cells", "layers"), units * per,
             f"one flow's solve: {cells[0]} x {cells[1]} columns x ({n_layers} layers + 6 fin/fluid/flow fields) "
             f"x {per} B"),
            (("plate.cells", "operating.curve_points", "layers"), fields,
             f"the fields of {n_flows} flows (float64 and a host copy)"),
        ],
    )  # fmt: skip


def _read_straight_fins(ft: Table, library, directory: Path):
    """``[fins] type = "straight"`` keys: ``(fins, closures, closure_kind, CompactCase fields)``."""
    fins = (
        ft.quantity("channel_width", "length", positive=True),
        ft.quantity("fin_thickness", "length", positive=True),
        ft.quantity("height", "length", positive=True),
        library[ft.string("material", choices=tuple(sorted(library)))].k,
        ft.string("nusselt", default="H1", choices=("H1", "T")),
    )
    closures = ft.path_value("closures", directory, default=None)
    closure_kind = ft.string("closure_kind", default="apparent", choices=("apparent", "local"))
    if closures is not None and ft.has("nusselt"):
        raise ft.error("nusselt", "give either nusselt (Shah & London) or closures (a calibrated table), not both")
    if closures is None and ft.has("closure_kind"):
        raise ft.error("closure_kind", "only with closures = <closure table>")
    return fins, closures, closure_kind, {"fin_type": "straight"}


def _read_pin_field(ft: Table, library, directory: Path):
    """``[fins] type = "pins"``: ``(fins, closures, closure_kind, CompactCase fields)`` (no closure tables)."""
    pins = _read_pins(ft, library)
    return (0.0, 0.0, pins.pop("height"), pins.pop("k"), ""), None, "apparent", pins


def _read_pins(ft: Table, library) -> dict:
    """``[fins] type = "pins"`` keys (geometry checked against the charts)."""
    d = ft.quantity("diameter", "length", positive=True)
    st = ft.quantity("pitch_transverse", "length", positive=True)
    sl = ft.quantity("pitch_longitudinal", "length", positive=True)
    arrangement = ft.string("arrangement", choices=("staggered", "inline"))
    bad = pin_friction.check_geometry(d, st, sl, arrangement == "staggered")
    if bad is not None:
        raise ft.error(bad[0], bad[1])
    return {
        "height": ft.quantity("height", "length", positive=True),
        "k": library[ft.string("material", choices=tuple(sorted(library)))].k,
        "fin_type": "pins",
        "pin_diameter": d,
        "pitch_transverse": st,
        "pitch_longitudinal": sl,
        "arrangement": arrangement,
    }


def _fit_pin_friction(case_path, case: CompactCase) -> CompactCase:
    """Fit (r_darcy, beta) to the Zukauskas chart at 20 flows spanning the flow
    range and the operating flow; refuse flows outside the chart's Re_max."""
    staggered = case.arrangement == "staggered"
    lo, hi = min(case.curve_flows[0], case.flow), max(case.curve_flows[-1], case.flow)
    re_lo, re_hi = case.pin_reynolds(lo), case.pin_reynolds(hi)
    chart_lo, chart_hi = pin_friction.reynolds_limits(case.pin_diameter, case.pitch_longitudinal, staggered)
    if re_lo < chart_lo or re_hi > chart_hi:
        raise CaseError(
            case_path,
            "operating.flow_range",
            f"the flows give pin Reynolds numbers Re_max {re_lo:.4g}..{re_hi:.4g}, outside the Zukauskas "
            f"{case.arrangement} chart's {chart_lo:.4g}..{chart_hi:.4g}",
        )
    t_in = case.inlet_temperature
    rho, mu = float(case.coolant.density(t_in)), float(case.coolant.viscosity(t_in))
    u = case.superficial_speed(np.linspace(lo, hi, 20))
    g = pin_friction.pressure_gradient(
        u, case.pin_diameter, case.pitch_transverse, case.pitch_longitudinal, staggered, rho, mu
    )
    r, beta, err = pin_friction.fit_darcy_forchheimer(u, g)
    return replace(case, pin_r_darcy=r, pin_beta=beta, pin_fit_error=err)


def _closure_table(case_path, path, kind, fins, size, layout, plenum, slot):
    """``CompactCase.closure_table`` of a closure table file, checked against
    the fins: the fin height, the channel width (equal to a table of one
    width, within a grid's widths), the fin thickness (within a grid's
    thicknesses; a table of one thickness does not fix it), and for apparent
    values the channel length."""
    key = "fins.closures"
    try:
        t = read_closure_table(path, required=(f"fRe_{kind}", f"Nu_{kind}"))
    except ClosureTableError as exc:
        raise CaseError(case_path, key, str(exc)) from None
    re, widths, thicknesses, fre, nu = t.arrays(kind)
    if abs(t.meta["fin_height"] / fins[2] - 1) > 1e-6:
        raise CaseError(
            case_path,
            key,
            f"{path} was calibrated for fin_height {t.meta['fin_height'] * 1e3:g} mm, the fins have "
            f"{fins[2] * 1e3:g} mm",
        )
    for name, nodes, value in (("channel_width", widths, fins[0]), ("fin_thickness", thicknesses, fins[1])):
        if len(nodes) == 1 and name == "channel_width" and abs(nodes[0] / value - 1) > 1e-6:
            why = f"{path} was calibrated for {name} {nodes[0] * 1e3:g} mm, the fins have {value * 1e3:g} mm"
            raise CaseError(case_path, key, why)
        if len(nodes) > 1 and not nodes[0] * (1 - 1e-9) <= value <= nodes[-1] * (1 + 1e-9):
            raise CaseError(
                case_path,
                key,
                f"{path} holds unit cells of {name} {nodes[0] * 1e3:g}..{nodes[-1] * 1e3:g} mm, the fins have "
                f"{value * 1e3:g} mm",
            )
    run = size[0] - 2 * plenum
    run = (run - slot) / 2 if layout == "centre_fed" else run
    if kind == "apparent" and abs(t.meta["length"] / run - 1) > 1e-3:
        raise CaseError(
            case_path,
            key,
            f"{path} holds apparent values (entrance included) of a {t.meta['length'] * 1e3:g} mm channel, the "
            f'channels here run {run * 1e3:g} mm; calibrate at that length or use closure_kind = "local"',
        )

    def nested(a):
        return tuple(nested(v) for v in a) if np.ndim(a) else float(a)

    return tuple(nested(np.asarray(a, np.float64)) for a in (re, widths, thicknesses, fre, nu))


# ----------------------------------------------------------------------------- arrays


def _faces(length, n, breaks):
    """Faces with every break point on a face; cells shared in proportion."""
    pts = np.array(sorted({0.0, length, *[b for b in breaks if 0 < b < length]}))
    pts = pts[np.concatenate([[True], np.diff(pts) > 1e-9 * length])]
    faces = faces_on_points(pts, max(n, len(pts) - 1))
    faces[-1] = length
    return faces


def _read_footprint(pt: Table, directory: Path) -> dict:
    """``[plate] fin_footprint`` (an STL outline of the fin field),
    ``footprint_units``, ``footprint_offset``: CompactCase fields, or {}."""
    from aidc_thermo.models.geometry import STL_UNITS

    path = pt.path_value("fin_footprint", directory, default=None)
    if path is None:
        for key in ("footprint_units", "footprint_offset"):
            if pt.has(key):
                raise pt.error(key, "only with fin_footprint = <STL file>")
        return {}
    return {
        "fin_footprint": str(path),
        "footprint_scale": STL_UNITS[pt.string("footprint_units", choices=tuple(STL_UNITS))],
        "footprint_offset": pt.quantities("footprint_offset", "length", length=2, default=(0.0, 0.0)),
    }


@dataclass(frozen=True)
class Arrays:
    faces: tuple[np.ndarray, np.ndarray, np.ndarray]
    plenum: np.ndarray  # bool (nx, ny)
    slot: np.ndarray  # inlet weights (nx, ny)
    flux: np.ndarray  # W/m^2 (nx, ny)
    k: np.ndarray  # (nx, ny, nb)


def discretize(case: CompactCase) -> Arrays:
    L, W = case.size
    xb = [case.plenum_length, L - case.plenum_length]
    if case.layout == "centre_fed":
        xb += [L / 2 - case.slot_width / 2, L / 2 + case.slot_width / 2]
    yb = []
    for h in case.heat:
        xb += [h.rect[0], h.rect[2]]
        yb += [h.rect[1], h.rect[3]]
    xf, yf = _faces(L, case.cells[0], xb), _faces(W, case.cells[1], yb)
    zf = np.concatenate([[0.0], np.cumsum([layer.thickness for layer in case.layers])])
    xc = 0.5 * (xf[1:] + xf[:-1])
    nx, ny = len(xf) - 1, len(yf) - 1
    ends = (xc < case.plenum_length) | (xc > L - case.plenum_length)
    plenum = np.broadcast_to(ends[:, None], (nx, ny)).copy()
    if case.fin_footprint:  # fins only under the outline (and never in the end plena)
        from aidc_thermo.models.geometry import footprint_mask

        plenum |= ~footprint_mask(case.fin_footprint, scale=case.footprint_scale, offset=case.footprint_offset,
                                  faces_x=xf, faces_y=yf)  # fmt: skip
    if case.layout == "centre_fed":
        w = overlap(xf, L / 2 - case.slot_width / 2, L / 2 + case.slot_width / 2)[:, None] * np.diff(yf)[None, :]
        slot = w / w.sum()
    else:
        slot = np.zeros((nx, ny))
    area = np.diff(xf)[:, None] * np.diff(yf)[None, :]
    power = np.zeros((nx, ny))
    for h in case.heat:
        power += source_power(xf, yf, h.rect, h.power, h.map)
    k = np.stack([np.full((nx, ny), layer.k) for layer in case.layers], -1)
    return Arrays((xf, yf, zf), plenum, slot, power / area, k)


# ----------------------------------------------------------------------------- protocol: build, solve, report, check
#
# thermo run = parse -> build -> solve -> report (+ check) (thermo/models/protocol.py).
# Static fixes shapes and the compiled program; Params holds every number a
# sweep may change, in SI; coolant properties are evaluated inside solve from
# the inlet temperature in Params (polynomial fits, traceable).

PROTOCOL = True

_PARAM_FIELDS = (
    "flow", "curve_flows", "inlet_temperature", "channel_width", "fin_thickness", "fin_height", "fin_k",
    "layer_k", "flux", "pin_diameter", "pitch_transverse", "pitch_longitudinal", "pin_r_darcy", "pin_beta",
)  # fmt: skip


def _register(cls):
    import jax

    return jax.tree_util.register_dataclass(cls, data_fields=list(_PARAM_FIELDS), meta_fields=[])


@dataclass(frozen=True)
class Static:
    """What fixes array shapes and the compiled program (hashable)."""

    faces: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]  # x, y, z faces of the stack, m
    plenum: tuple[tuple[bool, ...], ...]  # (nx, ny): open plenum cells
    slot: tuple[tuple[float, ...], ...]  # (nx, ny): inlet weights from above (centre_fed)
    layout: str
    fin_type: str
    nusselt: str
    arrangement: str
    closure_kind: str
    closure_table: tuple  # CompactCase.closure_table, () for Shah & London
    coolant: Coolant
    precision: str
    max_iterations: int  # energy BiCGSTAB limit
    curve_points: int  # flows of the dP(Q), R(Q) curves solved beside the operating point (0 in sweeps)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.faces[0]) - 1, len(self.faces[1]) - 1)

    @property
    def dtype(self):
        import jax.numpy as jnp

        return jnp.float64 if self.precision == "float64" else jnp.float32


@dataclass(frozen=True)
class Params:
    """Every sweepable number of a compact cold plate, SI (arrays; a leading
    batch axis when stacked). Pin fields are 0 for straight fins and the
    straight-fin fields 0 for pins."""

    flow: object  # m^3/s, operating flow
    curve_flows: object  # (curve_points,) m^3/s
    inlet_temperature: object  # K
    channel_width: object  # m
    fin_thickness: object  # m
    fin_height: object  # m
    fin_k: object  # W/m/K
    layer_k: object  # (nb,) W/m/K, from the junction side up
    flux: object  # (nx, ny) W/m^2 into the bottom face (the power map)
    pin_diameter: object  # m
    pitch_transverse: object  # m
    pitch_longitudinal: object  # m
    pin_r_darcy: object  # Pa s/m^2
    pin_beta: object  # kg/m^4


_params_registered = False


def _params_class():
    global _params_registered
    if not _params_registered:
        _register(Params)
        _params_registered = True
    return Params


def build(case: CompactCase, curves: bool = True) -> tuple[Static, Params]:
    """``(Static, Params)`` of a parsed case; ``curves=False`` leaves out the
    dP(Q), R(Q) curve flows (a sweep solves the operating point only)."""
    arr = discretize(case)
    xf, yf, zf = arr.faces
    static = Static(
        faces=tuple(tuple(float(v) for v in f) for f in (xf, yf, zf)),
        plenum=tuple(tuple(bool(v) for v in row) for row in arr.plenum),
        slot=tuple(tuple(float(v) for v in row) for row in arr.slot),
        layout=case.layout,
        fin_type=case.fin_type,
        nusselt=case.nusselt,
        arrangement=case.arrangement,
        closure_kind=case.closure_kind if case.closures else "",
        closure_table=case.closure_table if case.closures else (),
        coolant=case.coolant,
        precision=case.precision,
        max_iterations=case.max_iterations,
        curve_points=len(case.curve_flows) if curves else 0,
    )
    f64 = np.float64
    params = _params_class()(
        flow=f64(case.flow),
        curve_flows=np.asarray(case.curve_flows if curves else (), f64),
        inlet_temperature=f64(case.inlet_temperature),
        channel_width=f64(case.channel_width),
        fin_thickness=f64(case.fin_thickness),
        fin_height=f64(case.fin_height),
        fin_k=f64(case.fin_k),
        layer_k=np.asarray([layer.k for layer in case.layers], f64),
        flux=np.asarray(arr.flux, f64),
        pin_diameter=f64(case.pin_diameter),
        pitch_transverse=f64(case.pitch_transverse),
        pitch_longitudinal=f64(case.pitch_longitudinal),
        pin_r_darcy=f64(case.pin_r_darcy),
        pin_beta=f64(case.pin_beta),
    )
    return static, params


def build_sweep(case: CompactCase) -> tuple[Static, Params]:
    """``build`` for a sweep: the operating point only (no curve flows)."""
    return build(case, curves=False)


def stack_params(designs) -> Params:
    """Stack the ``Params`` of designs with equal ``Static`` along a new leading axis."""
    return _params_class()(**{f: np.stack([np.asarray(getattr(p, f)) for p in designs]) for f in _PARAM_FIELDS})


def _field_speed(static: Static, params: Params, flow):
    """Mean superficial speed in the fin field (:meth:`CompactCase.superficial_speed`), traced."""
    through = flow / 2 if static.layout == "centre_fed" else flow
    return through / (static.faces[1][-1] * params.fin_height)


def _channel_re(static: Static, params: Params, flow, rho, mu):
    """Channel Reynolds number (:meth:`CompactCase.channel_reynolds`), traced."""
    w, t, H = params.channel_width, params.fin_thickness, params.fin_height
    through = flow / 2 if static.layout == "centre_fed" else flow
    u_c = through / (static.faces[1][-1] * H * w / (w + t))
    return rho * u_c * (2 * w * H / (w + H)) / mu


def _pin_re(static: Static, params: Params, flow, rho, mu):
    """Zukauskas ``Re_max`` (:meth:`CompactCase.pin_reynolds`), traced."""
    import jax.numpy as jnp

    d, st, sl = params.pin_diameter, params.pitch_transverse, params.pitch_longitudinal
    if static.arrangement == "staggered":
        sd = jnp.sqrt(sl**2 + (st / 2) ** 2)
        ratio = jnp.where(sd < (st + d) / 2, st / (2 * (sd - d)), st / (st - d))
    else:
        ratio = st / (st - d)
    return rho * _field_speed(static, params, flow) * ratio * d / mu


def _layer_at(static: Static, params: Params, props, flow):
    """Fin-layer closures at the volume flow ``flow`` (traced); see :func:`fin_layer`."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous

    dtype, shape = static.dtype, static.shape
    rho, mu, kf, pr = props
    open_ = jnp.asarray(~np.asarray(static.plenum, bool))
    plenum = porous.plenum(shape, params.fin_height, kf, mu, dtype)
    return porous.select(open_, FIN_TYPES[static.fin_type].layer(static, params, props, flow), plenum)


def _pin_layer(static: Static, params: Params, props, flow):
    """Pin-fin closures: Zukauskas heat transfer, fitted Darcy-Forchheimer friction (traced)."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous

    dtype, shape = static.dtype, static.shape
    rho, mu, kf, pr = props
    return porous.pin_fins(
        shape, params.pin_diameter, params.pitch_transverse, params.pitch_longitudinal, params.fin_height,
        params.fin_k, kf, rho, mu, pr, _field_speed(static, params, jnp.asarray(flow, dtype)),
        params.pin_r_darcy, params.pin_beta, staggered=static.arrangement == "staggered", dtype=dtype,
    )  # fmt: skip


def _straight_layer(static: Static, params: Params, props, flow):
    """Straight-fin closures: Shah & London or the calibrated table at the channel Re (traced)."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous

    dtype, shape = static.dtype, static.shape
    rho, mu, kf, pr = props
    fre = nusselt = None
    if static.closure_table:
        re = _channel_re(static, params, jnp.asarray(flow, dtype), rho, mu)
        re_t, widths, thicknesses, fre_t, nu_t = static.closure_table
        fre, nusselt = porous.closure_lookup(
            re, params.channel_width, params.fin_thickness, np.asarray(re_t), np.asarray(widths),
            np.asarray(thicknesses), jnp.asarray(fre_t, dtype), jnp.asarray(nu_t, dtype),
        )  # fmt: skip
    return porous.straight_fins(
        shape, params.channel_width, params.fin_thickness, params.fin_height, params.fin_k, kf, mu,
        nu=static.nusselt, dtype=dtype, fre=fre, nusselt=nusselt,
    )  # fmt: skip


def _coolant_props(static: Static, t_in):
    """(rho, mu, k, Pr) and rho cp at the inlet temperature (traced; the polynomial fits of :mod:`thermo.coolant`)."""
    c = static.coolant
    rho, cp, mu, kf = c.density(t_in), c.cp(t_in), c.viscosity(t_in), c.conductivity(t_in)
    return (rho, mu, kf, cp * mu / kf), rho * cp


def _bc(static: Static):
    from aidc_thermo.kernels import porous

    dtype, shape = static.dtype, static.shape
    if static.layout == "centre_fed":
        return porous.FlowBC.make(shape, dtype, inlet_cells=np.asarray(static.slot), outlet_x_lo=1.0, outlet_x_hi=1.0)
    dy = np.diff(static.faces[1])
    return porous.FlowBC.make(shape, dtype, inlet_x_lo=dy / dy.sum(), outlet_x_hi=1.0)


def _grid_stack(static: Static, params: Params):
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous
    from aidc_thermo.kernels.fv.grid import grid_from_faces

    dtype = static.dtype
    grid = grid_from_faces(*static.faces, dtype)
    k = jnp.broadcast_to(jnp.asarray(params.layer_k, dtype), (*static.shape, len(static.faces[2]) - 1))
    return grid, porous.Stack(k, jnp.asarray(params.flux, dtype))


def kernel_inputs(static: Static, params: Params):
    """The plate as :mod:`kernels.fv.porous` takes it at the operating flow:
    ``(grid, layer, stack, bc, rho_cp)``, the coolant's properties at the inlet
    temperature (traced; for calling the kernels directly, e.g.
    ``porous.integrate_energy`` on a bundled plate)."""
    grid, stack = _grid_stack(static, params)
    props, rho_cp = _coolant_props(static, params.inlet_temperature)
    return grid, _layer_at(static, params, props, params.flow), stack, _bc(static), rho_cp


@dataclass(frozen=True)
class Solution:
    """The operating point (fields and diagnostics), the curves (one entry per
    curve flow) and the scalar reductions that ``report`` and the sweep's
    screening read (every array gains a leading axis when params are batched)."""

    flow: object  # porous.Flow at the operating flow
    thermal: object  # porous.Thermal at the operating flow
    t_junction: object  # (nx, ny) K, bottom face
    r_max: object
    r_mean: object
    rho_cp: object
    channel_re: object  # channel (straight) or pin Re_max (pins) at the operating flow
    curve_dp: object  # (curve_points,) Pa
    curve_r_max: object
    curve_r_mean: object
    curve_converged: object  # (curve_points,) bool
    curve_iterations: object  # (curve_points,) int
    extremes: object  # (curve_points + 1, 4, 2): min, max of T_fluid, T_fin, T_stack; max solid (4th, min unused)


def _register_solution():
    import jax

    if not getattr(Solution, "_registered", False):
        names = list(Solution.__dataclass_fields__)
        jax.tree_util.register_dataclass(Solution, data_fields=names, meta_fields=[])
        Solution._registered = True


def solve(static: Static, params: Params) -> Solution:
    """The flow and energy solves at the operating flow and at every curve
    flow (one after another on a CPU, vmapped on an accelerator): pure,
    jit-able, vmap-able over ``params``."""
    import jax
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous

    _register_solution()
    dtype = static.dtype
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)  # float32 cases compute in float32
    grid, stack = _grid_stack(static, params)
    bc = _bc(static)
    t_in = params.inlet_temperature
    props, rho_cp = _coolant_props(static, t_in)
    energy = porous.EnergyConfig(replace(porous.EnergyConfig().krylov, max_iterations=static.max_iterations))

    def one(q):
        layer = _layer_at(static, params, props, q)
        flow = porous.solve_flow(grid, layer, bc, q)
        th = porous.solve_energy(grid, layer, stack, flow, rho_cp, t_in, energy)
        r_max, r_mean = porous.thermal_resistance(stack, grid, th, t_in)
        solid = jnp.maximum(jnp.max(th.T_fin), jnp.max(th.T_stack))
        ext = jnp.stack(
            [jnp.stack([jnp.min(a), jnp.max(a)]) for a in (th.T_fluid, th.T_fin, th.T_stack)]
            + [jnp.stack([solid, solid])]
        )
        return flow, th, r_max, r_mean, ext

    qs = jnp.concatenate([jnp.asarray(params.curve_flows, dtype).reshape(-1), jnp.asarray(params.flow, dtype)[None]])
    if qs.shape[0] == 1:  # no curves: the operating flow alone
        flows, ths, rmaxs, rmeans, ext = jax.tree_util.tree_map(lambda a: a[None], one(qs[0]))
    elif jax.default_backend() == "cpu":
        # one flow after another: a CPU gains nothing from solving them side by side, and under vmap every
        # while loop runs until its slowest flow converges and is traced once more to batch it. The bundled
        # GPU plate (48 x 48, 11 curve flows and the operating one) on a 2-core CPU: trace 7-8 -> 3-4 s,
        # compile 13-15 -> 12 s, solve 0.96 -> 0.67 s; the plate-to-hall gradient (chain_grad) trace 8.2 ->
        # 4.6 s, compile 31 -> 20 s, run 2.0 -> 0.8 s; R and dP equal to 2e-13, the fields to 5e-11
        flows, ths, rmaxs, rmeans, ext = jax.lax.map(one, qs)
    else:  # an accelerator solves the flows side by side
        flows, ths, rmaxs, rmeans, ext = jax.vmap(one)(qs)
    flow, th = jax.tree_util.tree_map(lambda a: a[-1], (flows, ths))
    rho, mu = props[0], props[1]
    re = FIN_TYPES[static.fin_type].reynolds(static, params, params.flow, rho, mu)
    return Solution(
        flow=flow,
        thermal=th,
        t_junction=porous.junction_temperature(grid, stack, th),
        r_max=rmaxs[-1],
        r_mean=rmeans[-1],
        rho_cp=rho_cp,
        channel_re=re,
        curve_dp=flows.dp[:-1],
        curve_r_max=rmaxs[:-1],
        curve_r_mean=rmeans[:-1],
        curve_converged=flows.info.converged[:-1] & ths.info.converged[:-1],
        curve_iterations=jnp.maximum(flows.info.iterations[:-1], ths.info.iterations[:-1]),
        extremes=ext,
    )


def report(static: Static, params: Params, solution: Solution) -> dict[str, Output]:
    """Summary numbers (arrays, batched when ``params`` is): the operating
    point, then the curves when ``static.curve_points`` > 0."""
    import jax.numpy as jnp

    s = solution
    th, fl = s.thermal, s.flow
    heat_in = th.heat_in
    lpm = 60000.0
    ok = fl.info.converged & th.info.converged
    its = jnp.maximum(fl.info.iterations, th.info.iterations)
    if static.curve_points:
        ok = ok & jnp.all(s.curve_converged, axis=-1)
        its = jnp.maximum(its, jnp.max(s.curve_iterations, axis=-1))
    t_j = jnp.max(s.t_junction, axis=(-2, -1))
    out = {
        "total_power": Output(heat_in, "W", "heat into the bottom face"),
        "flow": Output(params.flow * lpm, "L/min", "operating coolant flow"),
        FIN_TYPES[static.fin_type].re_output[0]: Output(s.channel_re, "", FIN_TYPES[static.fin_type].re_output[1]),
        "pressure_drop": Output(fl.dp / 1e3, "kPa", "flow-weighted inlet minus outlet pressure"),
        "T_junction_max": Output(t_j - 273.15, "degC", "hottest point of the bottom face"),
        "R_max": Output(s.r_max, "K/W", "(T_bottom,max - T_inlet) / P"),
        "R_mean": Output(s.r_mean, "K/W", "(heat-weighted mean T_bottom - T_inlet) / P"),
        "T_outlet_mean": Output(
            params.inlet_temperature + heat_in / (s.rho_cp * params.flow) - 273.15, "degC", "inlet + P / (rho cp Q)"
        ),
        "heat_balance_error": Output(jnp.abs(heat_in - th.heat_out) / heat_in, "", "|in - out| / in"),
        "flow_picard_iterations": Output(fl.info.iterations, "", "Picard iterations of the flow solve"),
        "energy_iterations": Output(th.info.iterations, "", "BiCGSTAB iterations of the energy solve"),
        "energy_residual": Output(th.info.residual, "", "relative 2-norm residual"),
        "converged": Output(ok, "", "every flow and energy solve converged"),
        "iterations": Output(its, "", "largest inner iteration count"),
        "temperature_extremes": Output(
            s.extremes,
            "K",
            "per solved flow (curve flows, then the operating flow): [min, max] of the fluid, fin and stack "
            "temperatures, then the hottest solid",
        ),
    }
    if static.curve_points:
        out.update(
            {
                "curve_flow": Output(params.curve_flows * lpm, "L/min", "flows of the curves"),
                "curve_pressure_drop": Output(s.curve_dp / 1e3, "kPa", "pressure drop at each curve flow"),
                "curve_R_max": Output(s.curve_r_max, "K/W", "R_max at each curve flow"),
                "curve_R_mean": Output(s.curve_r_mean, "K/W", "R_mean at each curve flow"),
                "curve_converged": Output(s.curve_converged, "", "flow and energy solves converged at each curve flow"),
            }
        )
    return out


def _check(ok, what, info):
    if not bool(np.all(np.asarray(ok))):
        raise SolveError(
            f"{what} did not converge (residual {np.asarray(info.residual).max():.3e} after "
            f"{np.asarray(info.iterations).max()} iterations); try float64 or more cells"
        )


def _bounded(t_in: float, precision: str, flux, faces, qs, ths) -> None:
    if np.any(np.asarray(flux) < 0):
        return  # a heat sink on the bottom: the bounds do not hold
    flows = [f"flow {float(q) * 6e4:.4g} L/min" for q in np.asarray(qs)]
    cells = bounds.grid_locator(faces[:2])

    def locate(index):
        layer = f", stack layer {int(index[3])}" if len(index) > 3 else ""
        return f"{flows[int(index[0])]}, {cells(tuple(index[1:3]))}{layer}"

    why = "the inlet temperature (heat is only added)"
    kw = dict(locate=locate, precision=precision)
    t_stack, t_fin, t_fluid = (np.asarray(a, np.float64) for a in (ths.T_stack, ths.T_fin, ths.T_fluid))
    bounds.check("fluid temperature", t_fluid, lower=t_in, lower_why=why, **kw)
    bounds.check("fin temperature", t_fin, lower=t_in, lower_why=why, **kw)
    bounds.check("stack temperature", t_stack, lower=t_in, lower_why=why, **kw)
    for i in range(t_fluid.shape[0]):
        solid_max = max(float(t_fin[i].max()), float(t_stack[i].max()), t_in)
        bounds.check(
            "fluid temperature",
            t_fluid[i : i + 1],
            upper=solid_max,
            upper_why="the hottest solid (the fluid is heated only through the fins and the base)",
            **kw,
        )


def check_bounded(case: CompactCase, arr: Arrays, qs, ths) -> None:
    """The maximum principle (:mod:`thermo.bounds`) on every solve of the
    batch (the flow range, then the operating point): with heat only added
    on the bottom and the inlet the only cold boundary, no stack, fin or
    fluid temperature is below the inlet temperature, and the fluid, heated
    only through the fins and the base, is nowhere hotter than the hottest
    solid. Raises :class:`SolveError` otherwise."""
    _bounded(case.inlet_temperature, case.precision, arr.flux, arr.faces, qs, ths)


def check(static: Static, params: Params, solution: Solution) -> None:
    """Convergence of every solve (operating point and curves), the maximum
    principle on the extremes of every solved flow (:func:`screen`) and on
    the operating point's fields (located); one unbatched design; raises
    :class:`SolveError`."""
    s = solution
    _check(s.flow.info.converged, "flow solve", s.flow.info)
    _check(s.thermal.info.converged, "energy solve", s.thermal.info)
    reason = screen(static, params, {k: np.asarray(v.value) for k, v in report(static, params, s).items()})
    if reason:
        raise SolveError(reason)
    # the fields of the operating point, located (the guard tests/test_bounds.py spies on)
    th1 = replace(s.thermal, **{f: np.asarray(getattr(s.thermal, f))[None] for f in ("T_stack", "T_fin", "T_fluid")})
    check_bounded(
        SimpleNamespace(inlet_temperature=float(params.inlet_temperature), precision=static.precision),
        SimpleNamespace(flux=np.asarray(params.flux), faces=tuple(np.asarray(f) for f in static.faces)),
        np.asarray([float(params.flow)]),
        th1,
    )


def screen(static: Static, params: Params, outputs: dict) -> str:
    """Why one unbatched design is not a result ("" when it is), from its
    :func:`report` outputs (numpy values): a solve that did not converge, or
    temperature extremes of a solved flow that break the maximum principle
    (:mod:`thermo.bounds`, the same test as on the fields). A sweep screens
    every design this way without fetching its fields."""
    out = outputs
    flows = [*np.atleast_1d(np.asarray(params.curve_flows, np.float64)), float(params.flow)]
    if not bool(out["converged"]):
        where = ""
        if "curve_converged" in out and not np.all(out["curve_converged"]):
            bad = [f"{q * 6e4:.4g}" for q, c in zip(flows, out["curve_converged"], strict=False) if not c]
            where = f" (curve flows {', '.join(bad)} L/min)"
        return (
            f"did not converge{where}: energy residual {float(out['energy_residual']):.3e} after "
            f"{int(out['energy_iterations'])} BiCGSTAB iterations (limit {static.max_iterations}), "
            f"flow Picard iterations {int(out['flow_picard_iterations'])}"
        )
    if np.any(np.asarray(params.flux) < 0):
        return ""
    t_in = float(params.inlet_temperature)
    ext = np.asarray(out["temperature_extremes"], np.float64)
    why = "the inlet temperature (heat is only added)"
    for i, q in enumerate(flows):
        kw = dict(locate=lambda _i, q=q: f"flow {q * 6e4:.4g} L/min (field extremes)", precision=static.precision)
        try:
            for j, name in enumerate(("fluid temperature", "fin temperature", "stack temperature")):
                bounds.check(name, ext[i, j], lower=t_in, lower_why=why, **kw)
            bounds.check(
                "fluid temperature",
                ext[i, 0],
                upper=max(float(ext[i, 3, 0]), t_in),
                upper_why="the hottest solid (the fluid is heated only through the fins and the base)",
                **kw,
            )
        except SolveError as exc:
            return str(exc)
    return ""


def fin_layer(case: CompactCase, arr: Arrays, dtype, flow) -> porous.FinLayer:
    """Fin-layer closures at the volume flow ``flow`` (traced): Shah & London,
    or the closure table interpolated (linearly, in Re) at the channel
    Reynolds number of that flow; pins: Zukauskas heat transfer at the mean
    superficial speed of that flow (:meth:`CompactCase.superficial_speed`)
    and the fitted Darcy-Forchheimer friction; plena where ``arr.plenum``.
    (The build/solve path: properties at the case's inlet temperature.)"""
    import jax.numpy as jnp

    static, params = build(replace(case, precision="float64" if dtype == jnp.float64 else "float32"), curves=False)
    props, _ = _coolant_props(static, case.inlet_temperature)
    return _layer_at(static, params, props, flow)


def _closure_summary(case: CompactCase, out: dict) -> dict[str, Quantity]:
    return FIN_TYPES[case.fin_type].summary(case, out)


def _pin_summary(case: CompactCase, out: dict) -> dict[str, Quantity]:
    field = case.size[0] - 2 * case.plenum_length - case.slot_width
    rows = field / case.pitch_longitudinal / (2 if case.layout == "centre_fed" else 1)
    return {
        "pin_Re_max": Quantity(float(out["pin_Re_max"]), "", "rho V_max D / mu, mean approach velocity"),
        "pin_rows": Quantity(rows, "", "pin rows along each flow path (Zukauskas charts: >= ~10)"),
        "closures": Quantity(
            f"pins ({case.arrangement}): Zukauskas (1972) Nu; friction Zukauskas chart (ht.dP_Zukauskas) fitted "
            "as Darcy-Forchheimer"
        ),
        "pin_r_darcy": Quantity(case.pin_r_darcy, "Pa s/m^2", "fitted Darcy resistivity mu/K"),
        "pin_beta": Quantity(case.pin_beta, "kg/m^4", "fitted Forchheimer coefficient"),
        "pin_friction_fit_error": Quantity(
            case.pin_fit_error, "", "max relative error of r u + beta u^2 vs the chart over the flows"
        ),
    }


def _straight_summary(case: CompactCase, out: dict) -> dict[str, Quantity]:
    return {
        "channel_Re": Quantity(float(out["channel_Re"]), "", "rho u_c D_h / mu, mean channel velocity"),
        "closures": Quantity(
            f"{case.closure_kind} values of {case.closures}" if case.closures else f"Shah & London (Nu_{case.nusselt})"
        ),
    }


#: ``[fins] type`` of a compact cold plate: name -> reader of its keys
#: ``(table, materials, case folder) -> (fins, closures, closure_kind,
#: CompactCase fields)`` and the pieces ``layer(static, params, props, flow)``
#: (the fin field's porous closures, traced), ``reynolds(static, params, flow,
#: rho, mu)`` (traced), ``re_output`` (its report name and description),
#: ``summary(case, outputs)``, ``complete(case_path, case)`` (fits after
#: parsing) and ``optimize_refusal`` ("" when ``thermo optimize`` takes it).
#: Adding a fin type is one registration.
FIN_TYPES = geo.KindRegistry(
    "type", "fin type", ("layer", "reynolds", "re_output", "summary", "complete", "optimize_refusal")
)
FIN_TYPES.register(
    "straight", _read_straight_fins,
    layer=_straight_layer, reynolds=_channel_re, re_output=("channel_Re", "rho u_c D_h / mu, mean channel velocity"),
    summary=_straight_summary, complete=lambda _path, case: case, optimize_refusal="",
)  # fmt: skip
FIN_TYPES.register(
    "pins", _read_pin_field,
    layer=_pin_layer, reynolds=_pin_re, re_output=("pin_Re_max", "rho V_max D / mu, mean approach velocity"),
    summary=_pin_summary, complete=_fit_pin_friction,
    optimize_refusal="thermo optimize varies straight fins (channel width, fin thickness); this plate has pins",
)  # fmt: skip


def _value(out: Output):
    v = np.asarray(out.value)
    return v.item() if v.ndim == 0 else v


@cache
def _compiled_solve():
    """:func:`solve` jitted (``static`` static); with the command line's cache
    on, the compiled program is kept on disk (:mod:`thermo.compile_cache`)."""
    from aidc_thermo.compile_cache import cached_jit

    _register_solution()  # a loaded program's output tree names Solution: registered before any load
    return cached_jit(solve, static_argnums=(0,))


def run(case: CompactCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    """Solve at the operating flow and over the flow range; write results:
    build -> solve (one jit) -> check -> report -> write."""

    progress.phase("build")
    precision_dtype(case.precision)
    static, params = build(case)
    progress.phase("solve")
    sol = _compiled_solve()(static, params)
    progress.phase("write", ready=sol)
    check(static, params, sol)
    out = {k: _value(v) for k, v in report(static, params, sol).items()}
    # the maximum principle on every curve solve's fields was checked by `check` on the operating point and by the
    # extremes of every curve flow (screen)
    flow, th = sol.flow, sol.thermal
    t_bottom = np.asarray(sol.t_junction, np.float64)
    lpm = 60000.0
    rep = report(static, params, sol)
    summary = {
        "case": Quantity(case.name),
        "layout": Quantity(case.layout),
        "total_power": Quantity(case.total_power, "W", "heat into the bottom face"),
        "flow": Quantity(case.flow * lpm, "L/min"),
        **_closure_summary(case, out),
        **{
            k: Quantity(float(out[k]), rep[k].units, rep[k].description)
            for k in ("pressure_drop", "T_junction_max", "R_max", "R_mean", "T_outlet_mean", "heat_balance_error")
        },
        "flow_picard_iterations": Quantity(int(out["flow_picard_iterations"])),
        "energy_iterations": Quantity(int(out["energy_iterations"])),
        "energy_residual": Quantity(float(out["energy_residual"]), "", "relative 2-norm residual"),
    }
    arr = discretize(case)
    xf, yf, zf = arr.faces
    nb = len(case.layers)
    zf_all = np.concatenate([zf, [zf[-1] + case.fin_height]])

    t_solid = np.concatenate([np.asarray(th.T_stack, np.float64), np.asarray(th.T_fin, np.float64)[..., None]], -1)
    layer_index = np.broadcast_to(np.arange(nb + 1, dtype=np.int32), t_solid.shape)
    ux, uy = (np.asarray(a, np.float64) for a in (flow.ux, flow.uy))
    fields = {
        "temperature_solid": Field(t_solid - 273.15, "degC", "stack layers, then the mean fin temperature"),
        "material": Field(
            layer_index,
            "1",
            "layer of every cell",
            names=(*(f"{layer.name} ({layer.material})" for layer in case.layers), "fin field"),
        ),
    }
    layers = {
        "fin_layer": Layer(
            nb,
            {
                "temperature_fluid": Field(th.T_fluid - 273.15, "degC", "bulk fluid temperature of the column"),
                "pressure": Field(flow.p, "Pa", "gauge pressure in the fin layer"),
                "velocity": Field(
                    np.stack([ux, uy, np.zeros_like(ux)], axis=-1),
                    "m/s",
                    "superficial velocity in the fin layer (x, y, z; z is 0 in this model)",
                ),
            },
            description="the fin field: coolant and fins, volume-averaged",
        ),
        "bottom_face": Layer(
            0,
            {"junction_temperature": Field(t_bottom - 273.15, "degC", "bottom-face (junction-side) temperature")},
            face="bottom",
            description="the heated bottom face",
        ),
    }
    write_results(
        folder,
        faces=(xf, yf, zf_all),
        fields=fields,
        layers=layers,
        case_text=case_file.text,
        case_parsed=case.as_dict(),
        solver={
            "energy_residual_history": np.asarray(th.info.history)[: int(th.info.iterations) + 1],
            "energy_iterations": int(th.info.iterations),
            "flow_iterations": int(flow.info.iterations),
            "converged": True,
        },
        summary=summary,
    )
    curves = {
        "flow_Lpm": (np.asarray(out["curve_flow"], np.float64), "L/min"),
        "pressure_drop_kPa": (np.asarray(out["curve_pressure_drop"], np.float64), "kPa"),
        "R_max_KpW": (np.asarray(out["curve_R_max"], np.float64), "K/W"),
        "R_mean_KpW": (np.asarray(out["curve_R_mean"], np.float64), "K/W"),
    }
    with results_h5(folder / "results.h5", "a") as h5:
        g = h5.create_group("curves")
        for key, (data, unit) in curves.items():
            g.create_dataset(key, data=data).attrs["units"] = unit
    write_curves(folder / "curves.csv", plate_curves(case, case_file, out))
    heat = {"heat_flux": Series(np.asarray(arr.flux, np.float64), "W/m^2", "power map: heat flux into the bottom")}
    append_groups(folder, {"power_map": heat})
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary


def solve_curves(case: CompactCase, case_file: CaseFile) -> ColdPlateCurves:
    """The plate's curves alone, as ``thermo run`` of the case writes them
    (``curves.csv``): one solve of every curve flow and the operating flow
    (:func:`solve`), checked as :func:`run` checks it (convergence and the maximum
    principle; :class:`SolveError` otherwise), no results folder. What a rack
    or facility case that names this plate by its case
    (:mod:`aidc_thermo.curve_cache`) hands to its network. The caller enables
    JAX's x64 for a float64 case."""

    precision_dtype(case.precision)
    static, params = build(case)
    sol = _compiled_solve()(static, params)
    check(static, params, sol)
    out = {k: _value(v) for k, v in report(static, params, sol).items()}
    return plate_curves(case, case_file, out)


def _closure_provenance(case: CompactCase, case_file: CaseFile) -> str:
    """The closure table as the case names it (relative to the case file) with its SHA-256, or Shah & London."""
    if not case.closures:
        return f"Shah & London (Nu_{case.nusselt})" if case.fin_type == "straight" else "Zukauskas (pins)"
    import os

    table = Path(case.closures)
    digest = hashlib.sha256(table.read_bytes()).hexdigest()
    return f"{Path(os.path.relpath(table, case_file.path.parent)).as_posix()} (sha256 {digest})"


def plate_curves(case: CompactCase, case_file: CaseFile, out: dict) -> ColdPlateCurves:
    """The solved curves as the shared cold-plate curve type
    (:mod:`aidc_thermo.io.curves`), with the case's coolant, inlet temperature
    and provenance (case file and its SHA-256, git commit, mesh)."""
    cells = f"{case.cells[0]} x {case.cells[1]} columns, {len(case.layers)} solid layers + the fin layer"
    commit = git_commit(case_file.path)
    provenance = [
        ("model", f"{CASE_TYPE} (aidc-thermo {_version()})"),
        ("case_file", case_file.path.name),
        ("case_sha256", hashlib.sha256(case_file.text.encode("utf-8")).hexdigest()),
        ("git_commit", commit or "unknown (not in a git work tree)"),
        ("case_name", case.name),
        ("cells", cells),
        ("fins", f"{case.fin_type}, {case.layout}, closures {_closure_provenance(case, case_file)}"),
        ("heat", f"{case.total_power:.6g} W"),
        ("R_definition", "(junction-side temperature - inlet temperature) / heat; R_max hottest point, R_mean mean"),
        ("dP_definition", "fin field and plena; inlet and outlet ports and manifolds excluded"),
        ("regenerate", f"python -m aidc_thermo run {case_file.path.name} -o OUT; the curves are OUT/curves.csv"),
    ]
    return ColdPlateCurves(
        flow=tuple(float(v) / 60000.0 for v in np.asarray(out["curve_flow"], np.float64)),
        r_max=tuple(float(v) for v in np.asarray(out["curve_R_max"], np.float64)),
        r_mean=tuple(float(v) for v in np.asarray(out["curve_R_mean"], np.float64)),
        dp=tuple(float(v) * 1e3 for v in np.asarray(out["curve_pressure_drop"], np.float64)),
        coolant=coolant_label(case.coolant),
        inlet_temperature=case.inlet_temperature,
        provenance=tuple(provenance),
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aidc-thermo")
    except PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------- thermo optimize

_VARS = ("channel_width", "fin_thickness", "flow")


def optimize(case: CompactCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    """Channel width, fin thickness and flow that minimise the thermal
    resistance (``[optimize] objective``, R_max by default) with the pressure
    drop at or below ``pressure_drop_limit``, within the ``[optimize]`` bounds.

    Method: a scan of ``grid``^3 designs and the case's own, solved as one
    batch (``vmap`` over ``Params``, the sweep path), gives the best feasible
    start; SLSQP (scipy)
    refines it in log coordinates with the gradients of R and of the pressure
    drop by forward-mode differentiation through :func:`solve` (one
    ``jax.jvp`` per design variable; the flow and energy solves differentiate
    implicitly: one tangent solve each, no differentiation through
    iterations). The refined point is kept
    only if it converges, meets the limit and is no worse than the scan's best.
    The optimum is then written as a full ``thermo run`` of that design, with
    the optimization in ``summary.json``, ``/optimize`` in results.h5 and
    ``optimize.png``."""
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize

    spec = case.optimize
    if spec is None:
        raise CaseError(case_file.path, "optimize", "thermo optimize needs an [optimize] table (pressure_drop_limit, "
                        "bounds of channel_width, fin_thickness, flow)")  # fmt: skip
    progress.phase("build")
    static, p0 = build(case, curves=False)
    lo = np.log(np.array([spec.channel_width[0], spec.fin_thickness[0], spec.flow[0]]))
    hi = np.log(np.array([spec.channel_width[1], spec.fin_thickness[1], spec.flow[1]]))
    limit = spec.pressure_drop_limit

    def metrics(u):  # u in [0, 1]^3 (log-scaled bounds) -> (R, dp in Pa, converged)
        x = jnp.exp(jnp.asarray(lo) + u * jnp.asarray(hi - lo))
        p = replace(p0, **{k: x[i] for i, k in enumerate(_VARS)})
        out = report(static, p, solve(static, p))
        return jnp.stack([out[spec.objective].value, out["pressure_drop"].value * 1e3]), out["converged"].value

    n = spec.grid
    axes = np.linspace(0.0, 1.0, n)
    us = np.stack(np.meshgrid(axes, axes, axes, indexing="ij"), -1).reshape(-1, 3)
    # the case's own design is a candidate too (clipped into the bounds)
    own = (np.log([case.channel_width, case.fin_thickness, case.flow]) - lo) / (hi - lo)
    us = np.concatenate([us, np.clip(own, 0.0, 1.0)[None]])
    progress.phase("solve")
    vals, conv = jit(jax.vmap(metrics))(jnp.asarray(us))
    vals, conv = np.asarray(vals, np.float64), np.asarray(conv, bool)
    feasible = conv & (vals[:, 1] <= limit)
    if not feasible.any():
        raise SolveError(
            f"optimize: no design of the {n}^3 scan (nor the case's own) keeps the pressure drop at or below "
            f"{limit / 1e3:.4g} kPa "
            f"(lowest {np.nanmin(np.where(conv, vals[:, 1], np.inf)) / 1e3:.4g} kPa): widen the channels, lower the "
            "flow bound or relax the limit"
        )
    best = int(np.argmin(np.where(feasible, vals[:, 0], np.inf)))
    u_grid, r_grid = us[best], float(vals[best, 0])

    def both_(u):  # values and the 2 x 3 Jacobian, forward mode: one JVP per design variable (lax.map, no vmap)
        def g(v):
            return metrics(v)[0]

        return g(u), jax.lax.map(lambda t: jax.jvp(g, (u,), (t,))[1], jnp.eye(3, dtype=u.dtype)).T

    both = jit(both_)
    cache: dict = {}

    def evaluate(u):
        key = tuple(np.round(np.asarray(u, np.float64), 14))
        if key not in cache:
            v, jac = both(jnp.asarray(u, jnp.float64))
            cache[key] = (np.asarray(v, np.float64), np.asarray(jac, np.float64))
        return cache[key]

    scale = max(r_grid, 1e-30)
    res = minimize(
        lambda u: evaluate(u)[0][0] / scale,
        u_grid,
        jac=lambda u: evaluate(u)[1][0] / scale,
        bounds=[(0.0, 1.0)] * 3,
        constraints=[
            {
                "type": "ineq",
                "fun": lambda u: 1.0 - evaluate(u)[0][1] / limit,
                "jac": lambda u: -evaluate(u)[1][1] / limit,
            }
        ],  # fmt: skip
        method="SLSQP",
        options={"maxiter": 40, "ftol": 1e-9},
    )
    u_opt = np.clip(np.asarray(res.x, np.float64), 0.0, 1.0)
    v_opt, c_opt = (np.asarray(a) for a in jit(metrics)(jnp.asarray(u_opt)))
    refined = bool(c_opt) and v_opt[1] <= limit * (1 + 1e-9) and v_opt[0] <= r_grid
    if not refined:
        u_opt, v_opt = u_grid, vals[best]
    grad = np.asarray(evaluate(u_opt)[1], np.float64)  # d(R, dp)/du
    x_opt = np.exp(lo + u_opt * (hi - lo))
    dlogx = hi - lo  # du = dlog(x) / (hi - lo): d/dlog(x) = d/du / (hi - lo)
    sens = grad / dlogx  # per unit relative change of each variable

    best_case = replace(case, channel_width=float(x_opt[0]), fin_thickness=float(x_opt[1]), flow=float(x_opt[2]))
    summary = run(best_case, case_file, folder)
    base = report(static, p0, _compiled_solve()(static, p0))
    units = {"channel_width": ("mm", 1e3), "fin_thickness": ("mm", 1e3), "flow": ("L/min", 6e4)}
    extra = {
        "optimize_objective": Quantity(spec.objective, "", "minimised: thermal resistance"),
        "optimize_pressure_drop_limit": Quantity(limit / 1e3, "kPa", "constraint: pressure drop at or below"),
        "optimize_method": Quantity(
            f"{n}^3 batched scan, then SLSQP with forward-mode gradients through solve (jax.jvp, implicit)"
            + ("" if refined else "; the refinement did not improve on the scan, the scan's best is kept")
        ),
        **{
            f"optimum_{k}": Quantity(float(x_opt[i]) * units[k][1], units[k][0], "optimal design")
            for i, k in enumerate(_VARS)
        },  # fmt: skip
        "optimum_R": Quantity(float(v_opt[0]), "K/W", f"{spec.objective} at the optimum"),
        "optimum_pressure_drop": Quantity(float(v_opt[1]) / 1e3, "kPa", "at the optimum"),
        "case_R": Quantity(float(np.asarray(base[spec.objective].value)), "K/W", "the case's own design"),
        "case_pressure_drop": Quantity(float(np.asarray(base["pressure_drop"].value)), "kPa", "the case's own design"),
        **{
            f"dR_dlog_{k}": Quantity(float(sens[0, i]), "K/W", "sensitivity at the optimum: per unit relative change")
            for i, k in enumerate(_VARS)
        },  # fmt: skip
        **{
            f"ddp_dlog_{k}": Quantity(float(sens[1, i]) / 1e3, "kPa", "sensitivity at the optimum")
            for i, k in enumerate(_VARS)
        },  # fmt: skip
    }
    summary = {**summary, **extra}
    from aidc_thermo.io.results import write_summary_json

    write_summary_json(folder, summary)
    xs = np.exp(lo + us * (hi - lo))
    append_groups(
        folder,
        {
            "optimize": {
                "scan_channel_width": Series(xs[:, 0], "m", "scan designs"),
                "scan_fin_thickness": Series(xs[:, 1], "m", "scan designs"),
                "scan_flow": Series(xs[:, 2], "m^3/s", "scan designs"),
                "scan_R": Series(vals[:, 0], "K/W", spec.objective),
                "scan_pressure_drop": Series(vals[:, 1], "Pa", "pressure drop"),
                "scan_converged": Series(conv.astype(np.int8), "1", "converged"),
                "optimum": Series(x_opt, "m, m, m^3/s", "channel width, fin thickness, flow"),
            }
        },
    )
    if case.plots:
        _plot_optimize(folder, vals, conv, limit, v_opt, (float(np.asarray(base[spec.objective].value)),
                       float(np.asarray(base["pressure_drop"].value)) * 1e3), spec.objective)  # fmt: skip
    return summary


def _plot_optimize(folder: Path, vals, conv, limit, v_opt, v_case, objective) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ok = conv & (vals[:, 1] <= limit)
    ax.scatter(vals[ok, 1] / 1e3, vals[ok, 0], s=14, color="C0", label="scan: within the limit")
    ax.scatter(vals[~ok, 1] / 1e3, vals[~ok, 0], s=14, color="0.7", label="scan: above the limit")
    ax.axvline(limit / 1e3, color="C3", ls="--", lw=1, label=f"limit {limit / 1e3:g} kPa")
    ax.plot(v_case[1] / 1e3, v_case[0], "s", color="k", ms=7, label="the case's design")
    ax.plot(v_opt[1] / 1e3, v_opt[0], "*", color="C1", ms=14, label="optimum")
    ax.set_xscale("log")
    ax.set_xlabel("pressure drop [kPa]")
    ax.set_ylabel(f"{objective} [K/W]")
    ax.set_title("compact cold plate: channel width x fin thickness x flow", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "optimize.png", dpi=120)
    plt.close(fig)
