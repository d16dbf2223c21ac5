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
flow range (vmapped solves) as ``curves.csv`` and ``/curves`` in results.h5;
plots of the junction temperature, fluid temperature with velocity, and the
curves.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aidc_thermo import bounds, progress, resources
from aidc_thermo.coolant import Coolant, read_coolant, read_coolant_temperature
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseError, CaseFile, Table, read_header, read_plots_flag
from aidc_thermo.io.power_maps import overlap, read_map, source_power
from aidc_thermo.io.results import Field, Layer, Quantity, Series, append_groups, results_h5, write_results
from aidc_thermo.materials import material_library
from aidc_thermo.models import pin_friction
from aidc_thermo.models.calibrate import ClosureTableError, read_closure_table

if TYPE_CHECKING:  # annotations only; JAX, the kernels and h5py are imported where used (thermo check needs none)
    from aidc_thermo.kernels import porous

__all__ = ["CompactCase", "parse", "run", "fin_layer", "discretize", "CASE_TYPE"]

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
    closure_re: tuple[float, ...]
    closure_fre: tuple[float, ...]
    closure_nu: tuple[float, ...]
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
    pins = None
    closures, closure_kind = None, "apparent"
    if ft.string("type", choices=("straight", "pins")) == "pins":
        pins = _read_pins(ft, library)
        fins = (0.0, 0.0, pins.pop("height"), pins.pop("k"), "")
    else:
        fins = (
            ft.quantity("channel_width", "length", positive=True),
            ft.quantity("fin_thickness", "length", positive=True),
            ft.quantity("height", "length", positive=True),
            library[ft.string("material", choices=tuple(sorted(library)))].k,
            ft.string("nusselt", default="H1", choices=("H1", "T")),
        )
        closures = ft.path_value("closures", case.directory, default=None)
        closure_kind = ft.string("closure_kind", default="apparent", choices=("apparent", "local"))
        if closures is not None and ft.has("nusselt"):
            raise ft.error("nusselt", "give either nusselt (Shah & London) or closures (a calibrated table), not both")
        if closures is None and ft.has("closure_kind"):
            raise ft.error("closure_kind", "only with closures = <closure table>")
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
    st.finish()
    plots = read_plots_flag(root)
    root.finish()
    _require_memory(case.path, cells, len(layers), n + 1)
    table = ((), (), ())
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
        *table,
        tuple(layers),
        tuple(heat),
        coolant,
        t_in,
        flow,
        tuple(float(v) for v in np.linspace(lo, hi, n)),
        precision,
        plots,
        **(pins or {}),
    )
    if footprint:
        out = replace(out, **footprint)
        try:
            fins_left = (~discretize(out).plenum).any()
        except ValueError as exc:
            raise CaseError(case.path, "plate.fin_footprint", str(exc)) from None
        if not fins_left:
            raise CaseError(case.path, "plate.fin_footprint", "the outline covers no fin-field column of the grid")
    if pins:
        out = _fit_pin_friction(case.path, out)
    if closures is not None:
        res = [out.channel_reynolds(q) for q in (*out.curve_flows, out.flow)]
        lo, hi = out.closure_re[0], out.closure_re[-1]
        if min(res) < lo * (1 - 1e-9) or max(res) > hi * (1 + 1e-9):
            raise CaseError(
                case.path,
                "operating.flow_range",
                f"the flows give channel Reynolds numbers {min(res):.4g}..{max(res):.4g}, outside the closure "
                f"table's {lo:.4g}..{hi:.4g} ({closures}); calibrate over a wider range",
            )
    return out


def _require_memory(path, cells, n_layers: int, n_flows: int) -> None:
    """Refuse (CaseError) a plate grid that cannot fit, before any array exists:
    the curve flows and the operating flow are solved at once (vmap)."""
    columns = resources.require_count(path, "plate.cells", cells[0] * cells[1], "columns")
    per = resources.BYTES_PER_UNIT[CASE_TYPE]
    units = columns * (n_layers + 6) * n_flows
    resources.require_memory(
        path,
        CASE_TYPE,
        [
            (("plate.cells", "operating.curve_points", "layers"), units * per,
             f"{cells[0]} x {cells[1]} columns x ({n_layers} layers + 6 fin/fluid/flow fields) x {n_flows} flows "
             f"x {per} B"),
        ],
    )  # fmt: skip


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
    """(Re, f Re, Nu) columns of a closure table, checked against the fins."""
    key = "fins.closures"
    try:
        t = read_closure_table(path, required=(f"fRe_{kind}", f"Nu_{kind}"))
    except ClosureTableError as exc:
        raise CaseError(case_path, key, str(exc)) from None
    for name, value in (("channel_width", fins[0]), ("fin_height", fins[2])):
        if abs(t.meta[name] / value - 1) > 1e-6:
            raise CaseError(
                case_path,
                key,
                f"{path} was calibrated for {name} {t.meta[name] * 1e3:g} mm, the fins have {value * 1e3:g} mm",
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
    c = t.columns
    return tuple(tuple(float(v) for v in c[k]) for k in ("Re", f"fRe_{kind}", f"Nu_{kind}"))


# ----------------------------------------------------------------------------- arrays


def _faces(length, n, breaks):
    """Faces with every break point on a face; cells shared in proportion."""
    pts = np.array(sorted({0.0, length, *[b for b in breaks if 0 < b < length]}))
    pts = pts[np.concatenate([[True], np.diff(pts) > 1e-9 * length])]
    widths = np.diff(pts)
    m = len(widths)
    n = max(n, m)
    share = (n - m) * widths / widths.sum()
    counts = 1 + np.floor(share).astype(int)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    faces = [pts[0]]
    for a, w, c in zip(pts[:-1], widths, counts, strict=True):
        faces.extend(a + w * np.arange(1, c + 1) / c)
    faces = np.array(faces)
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


def fin_layer(case: CompactCase, arr: Arrays, dtype, flow) -> porous.FinLayer:
    """Fin-layer closures at the volume flow ``flow`` (traced): Shah & London,
    or the closure table interpolated (linearly, in Re) at the channel
    Reynolds number of that flow; pins: Zukauskas heat transfer at the mean
    superficial speed of that flow (:meth:`CompactCase.superficial_speed`)
    and the fitted Darcy-Forchheimer friction; plena where ``arr.plenum``."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous

    nx, ny = arr.plenum.shape
    cool, t_in = case.coolant, case.inlet_temperature
    mu, kf = float(cool.viscosity(t_in)), float(cool.conductivity(t_in))
    if case.fin_type == "pins":
        fins = porous.pin_fins(
            (nx, ny),
            case.pin_diameter,
            case.pitch_transverse,
            case.pitch_longitudinal,
            case.fin_height,
            case.fin_k,
            kf,
            float(cool.density(t_in)),
            mu,
            float(cool.prandtl(t_in)),
            case.superficial_speed(jnp.asarray(flow, dtype)),
            case.pin_r_darcy,
            case.pin_beta,
            staggered=case.arrangement == "staggered",
            dtype=dtype,
        )
        return porous.select(jnp.asarray(~arr.plenum), fins, porous.plenum((nx, ny), case.fin_height, kf, mu, dtype))
    fre = nusselt = None
    if case.closures:
        re = case.channel_reynolds(jnp.asarray(flow, dtype))
        table = [jnp.asarray(c, dtype) for c in (case.closure_re, case.closure_fre, case.closure_nu)]
        fre = jnp.interp(re, table[0], table[1])
        nusselt = jnp.interp(re, table[0], table[2])
    fins = porous.straight_fins(
        (nx, ny),
        case.channel_width,
        case.fin_thickness,
        case.fin_height,
        case.fin_k,
        kf,
        mu,
        nu=case.nusselt,
        dtype=dtype,
        fre=fre,
        nusselt=nusselt,
    )
    return porous.select(jnp.asarray(~arr.plenum), fins, porous.plenum((nx, ny), case.fin_height, kf, mu, dtype))


def _inputs(case: CompactCase, arr: Arrays, dtype):
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous
    from aidc_thermo.kernels.fv.grid import grid_from_faces

    xf, yf, zf = arr.faces
    nx, ny = arr.plenum.shape
    grid = grid_from_faces(xf, yf, zf, dtype)
    cool, t_in = case.coolant, case.inlet_temperature
    if case.layout == "centre_fed":
        bc = porous.FlowBC.make((nx, ny), dtype, inlet_cells=arr.slot, outlet_x_lo=1.0, outlet_x_hi=1.0)
    else:
        dy = np.diff(yf)
        bc = porous.FlowBC.make((nx, ny), dtype, inlet_x_lo=dy / dy.sum(), outlet_x_hi=1.0)
    stack = porous.Stack(jnp.asarray(arr.k, dtype), jnp.asarray(arr.flux, dtype))
    rho_cp = float(cool.density(t_in) * cool.cp(t_in))
    return grid, bc, stack, rho_cp


def _solve(grid, layer, bc, stack, q, rho_cp, t_in):
    from aidc_thermo.kernels import porous

    flow = porous.solve_flow(grid, layer, bc, q)
    th = porous.solve_energy(grid, layer, stack, flow, rho_cp, t_in)
    r_max, r_mean = porous.thermal_resistance(stack, grid, th, t_in)
    return flow, th, r_max, r_mean


def _closure_summary(case: CompactCase) -> dict[str, Quantity]:
    if case.fin_type == "pins":
        field = case.size[0] - 2 * case.plenum_length - case.slot_width
        rows = field / case.pitch_longitudinal / (2 if case.layout == "centre_fed" else 1)
        return {
            "pin_Re_max": Quantity(float(case.pin_reynolds(case.flow)), "", "rho V_max D / mu, mean approach velocity"),
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
    return {
        "channel_Re": Quantity(float(case.channel_reynolds(case.flow)), "", "rho u_c D_h / mu, mean channel velocity"),
        "closures": Quantity(
            f"{case.closure_kind} values of {case.closures}" if case.closures else f"Shah & London (Nu_{case.nusselt})"
        ),
    }


def _check(ok, what, info):
    if not bool(np.all(np.asarray(ok))):
        raise SolveError(
            f"{what} did not converge (residual {np.asarray(info.residual).max():.3e} after "
            f"{np.asarray(info.iterations).max()} iterations); try float64 or more cells"
        )


def check_bounded(case: CompactCase, arr: Arrays, qs, ths) -> None:
    """The maximum principle (:mod:`thermo.bounds`) on every solve of the
    batch (the flow range, then the operating point): with heat only added
    on the bottom and the inlet the only cold boundary, no stack, fin or
    fluid temperature is below the inlet temperature, and the fluid, heated
    only through the fins and the base, is nowhere hotter than the hottest
    solid. Raises :class:`SolveError` otherwise."""
    if np.any(arr.flux < 0):
        return  # a heat sink on the bottom: the bounds do not hold
    t_in = case.inlet_temperature
    flows = [f"flow {float(q) * 6e4:.4g} L/min" for q in np.asarray(qs)]
    cells = bounds.grid_locator(arr.faces[:2])

    def locate(index):
        layer = f", stack layer {int(index[3])}" if len(index) > 3 else ""
        return f"{flows[int(index[0])]}, {cells(tuple(index[1:3]))}{layer}"

    why = "the inlet temperature (heat is only added)"
    kw = dict(locate=locate, precision=case.precision)
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


def run(case: CompactCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    """Solve at the operating flow and over the flow range; write results."""
    import jax
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous

    progress.phase("build")
    dtype = jnp.float64 if case.precision == "float64" else jnp.float32
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise RuntimeError("float64 requested but JAX x64 is disabled; enable it at the entry point")
    arr = discretize(case)
    grid, bc, stack, rho_cp = _inputs(case, arr, dtype)
    t_in = case.inlet_temperature

    def one(q):
        return _solve(grid, fin_layer(case, arr, dtype, q), bc, stack, q, rho_cp, t_in)

    # one vmapped solve (one compilation): the flow range, then the operating point
    qs = jnp.asarray((*case.curve_flows, case.flow), dtype)
    progress.phase("solve")
    flows, ths, rmaxs, rmeans = jax.jit(jax.vmap(one))(qs)
    progress.phase("write", ready=(flows, ths, rmaxs, rmeans))
    _check(flows.info.converged, "flow solve", flows.info)
    _check(ths.info.converged, "energy solve", ths.info)
    check_bounded(case, arr, qs, ths)
    flow, th = jax.tree_util.tree_map(lambda a: a[-1], (flows, ths))
    r_max, r_mean = rmaxs[-1], rmeans[-1]
    qs, dps, rmaxs, rmeans = qs[:-1], flows.dp[:-1], rmaxs[:-1], rmeans[:-1]

    heat_in, heat_out = float(th.heat_in), float(th.heat_out)
    balance = abs(heat_in - heat_out) / heat_in
    t_bottom = np.asarray(porous.junction_temperature(grid, stack, th), np.float64)
    lpm = 60000.0
    summary = {
        "case": Quantity(case.name),
        "layout": Quantity(case.layout),
        "total_power": Quantity(case.total_power, "W", "heat into the bottom face"),
        "flow": Quantity(case.flow * lpm, "L/min"),
        **_closure_summary(case),
        "pressure_drop": Quantity(float(flow.dp) / 1e3, "kPa", "flow-weighted inlet minus outlet pressure"),
        "T_junction_max": Quantity(float(t_bottom.max()) - 273.15, "degC", "hottest point of the bottom face"),
        "R_max": Quantity(float(r_max), "K/W", "(T_bottom,max - T_inlet) / P"),
        "R_mean": Quantity(float(r_mean), "K/W", "(heat-weighted mean T_bottom - T_inlet) / P"),
        "T_outlet_mean": Quantity(t_in + heat_in / (rho_cp * case.flow) - 273.15, "degC", "inlet + P / (rho cp Q)"),
        "heat_balance_error": Quantity(balance, "", "|in - out| / in"),
        "flow_picard_iterations": Quantity(int(flow.info.iterations)),
        "energy_iterations": Quantity(int(th.info.iterations)),
        "energy_residual": Quantity(float(th.info.residual), "", "relative 2-norm residual"),
    }
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
        "flow_Lpm": (np.asarray(qs, np.float64) * lpm, "L/min"),
        "pressure_drop_kPa": (np.asarray(dps, np.float64) / 1e3, "kPa"),
        "R_max_KpW": (np.asarray(rmaxs, np.float64), "K/W"),
        "R_mean_KpW": (np.asarray(rmeans, np.float64), "K/W"),
    }
    with results_h5(folder / "results.h5", "a") as h5:
        g = h5.create_group("curves")
        for key, (data, unit) in curves.items():
            g.create_dataset(key, data=data).attrs["units"] = unit
    with (folder / "curves.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(list(curves))
        for row in zip(*(c[0] for c in curves.values()), strict=True):
            w.writerow([f"{v:.8g}" for v in row])
    heat = {"heat_flux": Series(np.asarray(arr.flux, np.float64), "W/m^2", "power map: heat flux into the bottom")}
    append_groups(folder, {"power_map": heat})
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary
