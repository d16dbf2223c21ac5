"""``resolved_coldplate`` cases: laminar coolant flow and conjugate heat
transfer through a voxel cold plate (straight fins, pin fins, a mask file or
the solid of an STL file, :func:`geometry.from_stl`), resolved on the grid.

Set-up: coolant enters through the x- face (over its fluid cells) at a given
volumetric flow and temperature, leaves through the x+ face at 0 Pa gauge
(where the flow turns back in through x+, it brings the temperature of the
cell it enters: zero gradient, ``EnergyConfig.outlets``);
the base is heated from below (z = 0) over the fin-field footprint or the
whole base; every other face is an adiabatic wall, or a symmetry plane on the
y faces of a unit cell.

Coolant properties: density, heat capacity and conductivity are taken at the
inlet temperature. The viscosity is either the inlet value too
(``[coolant] viscosity = "inlet"``, the default: constant properties, one flow
and one energy solve) or the local value ``mu(T)`` of each fluid cell
(``viscosity = "temperature"``): a Picard iteration couples flow and energy:
solve the flow with ``mu(T_in)``, solve the energy equation, set every fluid
cell's viscosity to ``mu(T)`` of that temperature field (``thermo.coolant``
fits, temperatures clipped to the fit range), re-solve the flow warm-started
from the last velocity and pressure, and repeat until the pressure drop,
``R_max`` and the largest relative change of the viscosity field all change by
less than ``[solver] coupling_tolerance`` between two iterations (at most
``max_coupling`` iterations; otherwise :class:`~thermo.errors.SolveError`).
The converged viscosity field equals ``mu(T)`` of the final temperature field
to that tolerance.

Reported: pressure drop, thermal resistance from the base's bottom face to
the inlet (maximum and mean), outlet bulk temperature, hottest solid cell and
its location, heat and mass balance, and the solvers' iterations and
residuals. With ``[inlet] flow_range`` (and ``curve_points``) the run also
solves the plate at those flows and writes the shared cold-plate curve file
``curves.csv`` (:mod:`aidc_thermo.io.curves`; :func:`solve_curves`).

The model follows the protocol (:mod:`aidc_thermo.models.protocol`):
:func:`build` gives :class:`Static` and :class:`Params`, ``solve(static,
params)`` is pure (the coupling a ``lax.while_loop``), :func:`report`,
:func:`check`, and for sweeps :func:`screen`, :func:`stack_params` and
:func:`design_bytes`. ``solve(case)`` composes build and the compiled solve
and returns the host :class:`Solution` that :func:`summarize` and the writers
read; :func:`solve_host` is the earlier host-side Picard loop, kept as the
reference the pure solve is tested against.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aidc_thermo import bounds, progress, resources
from aidc_thermo.compile_options import FINITE_VOLUME
from aidc_thermo.coolant import Coolant, read_coolant, read_coolant_temperature
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseError, CaseFile, Table, read_header, read_plots_flag, read_tolerance
from aidc_thermo.io.curves import ColdPlateCurves, write_curves
from aidc_thermo.io.results import Field, Quantity, Series, append_groups, write_results
from aidc_thermo.materials import material_library
from aidc_thermo.models import geometry as geo
from aidc_thermo.models import precision_dtype
from aidc_thermo.models.protocol import Output

if TYPE_CHECKING:  # annotations only; imported where used, so that parsing a case starts no JAX
    import jax

    from aidc_thermo.kernels import conduction as cd
    from aidc_thermo.kernels import energy, flow

__all__ = [
    "CASE_TYPE",
    "PROTOCOL",
    "ColdPlateCase",
    "Static",
    "Params",
    "PlateSolution",
    "build",
    "report",
    "check",
    "screen",
    "stack_params",
    "design_bytes",
    "solve_host",
    "solve_curves",
    "plate_curves",
    "case_curves",
    "Problem",
    "Solution",
    "parse",
    "run",
    "setup",
    "solve",
    "summarize",
    "read_geometry",
    "read_material",
    "read_solver",
    "check_converged",
    "check_bounded",
    "pressure_drop",
    "bottom_temperature",
    "thermal_resistances",
]

CASE_TYPE = "resolved_coldplate"
VISCOSITY_MODELS = ("inlet", "temperature")


@dataclass(frozen=True)
class ColdPlateCase:
    name: str
    description: str
    geometry_kind: str
    geometry: dict  # keyword arguments of the geometry builder (SI)
    solid_material: str
    solid_k: float
    coolant: Coolant
    flow_rate: float  # m^3/s through the domain
    inlet_temperature: float  # K
    heat_flux: float  # W/m^2 on the heated part of the bottom face
    heated: str  # "fin_field" or "all"
    precision: str
    flow_tolerance: float
    max_outer: int
    energy_scheme: str
    plots: bool
    viscosity: str = "inlet"  # "inlet" (constant) or "temperature" (Picard-coupled mu(T))
    coupling_tolerance: float = 1e-4  # relative change of dP, R_max and mu between coupling iterations
    max_coupling: int = 30
    # energy solve: relative residual of the full discrete equation (None: 1e-9 in
    # float64, 1e-4 in float32), deferred-correction and BiCGSTAB caps, and the
    # axis of the multigrid line solves ("auto": chosen from the grid)
    energy_tolerance: float | None = None
    energy_max_outer: int = 500
    energy_max_inner: int = 300
    energy_line_axis: str = "auto"
    # flows of the R_max(Q), R_mean(Q), dP(Q) curves (m^3/s through the modelled domain; () for none):
    # [inlet] flow_range and curve_points, as compact_coldplate's [operating] keys
    curve_flows: tuple[float, ...] = ()

    def as_dict(self) -> dict:
        d = asdict(self)
        d["coolant"] = self.coolant.name
        return d


_STRAIGHT = {
    "channel_width": "length",
    "fin_thickness": "length",
    "fin_height": "length",
    "base_thickness": "length",
    "length": "length",
}
_PINS = {
    "diameter": "length",
    "pitch_x": "length",
    "pitch_y": "length",
    "fin_height": "length",
    "base_thickness": "length",
}


def read_geometry(t: Table, base: Path):
    """The ``[geometry]`` table: ``(kind, builder keyword arguments in SI)``;
    the kind from :data:`GEOMETRY_KINDS` (an unknown one is refused listing
    the registered names), its keys read by the kind's reader."""
    kind = GEOMETRY_KINDS.read_kind(t)
    kw = kind.read(t, base)
    t.finish()
    return kind.name, kw


def _read_plenum_cover(t: Table, kw: dict) -> dict:
    """The inlet/outlet plena and the cover of a parametric plate."""
    kw["plenum_length"] = t.quantity("plenum_length", "length", default=0.0, nonnegative=True)
    kw["cover_thickness"] = t.quantity("cover_thickness", "length", default=0.0, nonnegative=True)
    return kw


def _read_straight(t: Table, base: Path) -> dict:
    """``kind = "straight_fins"``: :func:`geometry.straight_fins`' keyword arguments."""
    kw: dict = {}
    for key, dim in _STRAIGHT.items():
        kw[key] = t.quantity(key, dim, positive=True)
    if t.has("channels") == t.has("unit_cell"):
        raise t.error(None, "give exactly one of 'channels' (a whole plate) or 'unit_cell = true' (or \"half\")")
    if t.has("channels"):
        kw["channels"] = t.integer("channels", minimum=1)
    else:
        unit = t.raw("unit_cell")
        if unit is not True and unit != "half":
            raise t.error(
                "unit_cell",
                f'expected true (one channel between two half fins) or "half" (half a fin and half a channel, '
                f"symmetry planes at both mid-planes), got {unit!r}; or give 'channels' instead",
            )
        kw["unit_cell"] = unit
    cells = t.table("cells", default={})
    for key, default in (
        ("channel", 8),
        ("fin", 4),
        ("fin_height", 16),
        ("base", 4),
        ("length", 32),
        ("plenum", 4),
        ("cover", 2),
    ):
        kw[f"cells_{key}"] = cells.integer(key, default=default, minimum=1)
    cells.finish()
    if kw.get("unit_cell") == "half" and kw["cells_channel"] < 2:
        raise t.error("cells.channel", "a half cell needs at least 2 cells across the whole channel")
    grading = t.table("grading", default={})
    ratios = {}
    for key in ("channel", "fin", "fin_height", "length", "base"):
        if grading.has(key):
            ratios[key] = grading.number(key, minimum=1e-3, maximum=1e3)
    grading.finish()
    if ratios:
        kw["grading"] = ratios
    return _read_plenum_cover(t, kw)


def _read_pin_fins(t: Table, base: Path) -> dict:
    """``kind = "pin_fins"``: :func:`geometry.pin_fins`' keyword arguments."""
    kw: dict = {}
    for key, dim in _PINS.items():
        kw[key] = t.quantity(key, dim, positive=True)
    kw["rows"] = t.integer("rows", minimum=1)
    kw["columns"] = t.integer("columns", minimum=1)
    kw["shape"] = t.string("shape", default="round", choices=("round", "square"))
    kw["arrangement"] = t.string("arrangement", default="inline", choices=("inline", "staggered"))
    if not kw["diameter"] < min(kw["pitch_x"], kw["pitch_y"]):
        raise t.error("diameter", "pin diameter must be smaller than both pitches")
    cells = t.table("cells", default={})
    for key, default in (("per_pitch", 8), ("fin_height", 12), ("base", 4), ("cover", 2)):
        kw[f"cells_{key}"] = cells.integer(key, default=default, minimum=1)
    cells.finish()
    return _read_plenum_cover(t, kw)


def _read_mask(t: Table, base: Path) -> dict:
    """``kind = "mask"``: a voxel mask file and its cell spacing."""
    return {"path": str(t.path_value("file", base)), "spacing": t.quantities("spacing", "length", length=3,
                                                                           positive=True)}  # fmt: skip


def read_stl_geometry(t: Table, base: Path) -> dict:
    """The keys of ``[geometry] kind = "stl"`` (:func:`geometry.from_stl`'s
    keyword arguments, SI): ``file``, ``units``, optional ``offset``, ``size``,
    ``fin_field``, ``sides``, and ``[geometry.grid]`` ``x``, ``y``, ``z`` (a
    number of cells, or the face coordinates)."""
    kw: dict = {"path": str(t.path_value("file", base))}
    kw["scale"] = geo.STL_UNITS[t.string("units", choices=tuple(geo.STL_UNITS))]
    kw["offset"] = t.quantities("offset", "length", length=3, default=(0.0, 0.0, 0.0))
    size = t.quantities("size", "length", length=3, positive=True, default=None)
    gt = t.table("grid")
    grid = []
    for a, name in enumerate("xyz"):
        raw = gt.raw(name)
        if isinstance(raw, list):
            faces = np.asarray(gt.quantities(name, "length", nonnegative=True), np.float64)
            if len(faces) < 2 or faces[0] != 0 or not np.all(np.diff(faces) > 0):
                raise gt.error(name, "face coordinates must start at 0 and increase (at least two)")
            if size is not None and abs(faces[-1] - size[a]) > 1e-9 * size[a]:
                raise gt.error(name, f"the last face ({faces[-1]:g} m) must equal size[{a}] ({size[a]:g} m)")
            grid.append(tuple(float(f) for f in faces))
        else:
            grid.append(gt.integer(name, minimum=1))
    gt.finish()
    kw["grid"] = tuple(grid)
    if size is None and all(isinstance(g, tuple) for g in grid):
        size = tuple(g[-1] for g in grid)
    if size is not None:
        kw["size"] = size
    if t.has("fin_field"):
        ff = t.quantities("fin_field", "length", length=2, nonnegative=True)
        if not ff[1] > ff[0]:
            raise t.error("fin_field", "expected [x_start, x_end] with x_end > x_start")
        kw["fin_field"] = ff
    kw["sides"] = t.string("sides", default="wall", choices=("wall", "symmetry"))
    return kw


def read_material(root: Table) -> tuple[str, float]:
    """The ``[material]`` table: ``(solid name, conductivity W/m/K)``."""
    mt = root.table("material", default={})
    library = material_library()
    solid = mt.string("solid", default="copper", choices=tuple(sorted(library)))
    k_solid = mt.quantity("conductivity", "thermal_conductivity", default=library[solid].k, positive=True)
    mt.finish()
    return solid, k_solid


def read_solver(root: Table) -> tuple[str, float, int, str]:
    """The ``[solver]`` table: ``(precision, flow_tolerance, max_outer, energy_scheme)``."""
    st = root.table("solver", default={})
    settings = _solver_settings(st)
    st.finish()
    return settings


def _solver_settings(st: Table) -> tuple[str, float, int, str]:
    """The flow and energy keys of a ``[solver]`` table (not finished)."""
    precision = st.string("precision", default="float64", choices=("float64", "float32"))
    flow_tol = read_tolerance(
        st, "flow_tolerance", precision, default=1e-8 if precision == "float64" else 1e-5, maximum=1e-2,
        floor={"float64": 1e-14, "float32": 1e-6},
    )  # fmt: skip
    max_outer = st.integer("max_outer", default=500, minimum=1)
    scheme = st.string("energy_scheme", default="tvd", choices=("tvd", "upwind"))
    return precision, flow_tol, max_outer, scheme


def build_geometry(case: ColdPlateCase) -> geo.VoxelGeometry:
    return _voxels(case.geometry_kind, case.geometry)


def _voxels(kind: str, kw: dict) -> geo.VoxelGeometry:
    return GEOMETRY_KINDS[kind].voxels(kw)


def _axis(*parts: tuple[str, int]) -> tuple[int, str]:
    """Cells along one axis from its parts ``(key, cells)``: the total and the
    key of the largest part (the one to name when the axis is too large)."""
    return sum(n for _, n in parts), max(parts, key=lambda p: p[1])[0]


def grid_shape(kind: str, kw: dict) -> list[tuple[int, str]]:
    """Cells along x, y, z of the geometry ``_voxels`` would build (exact
    Python ints, nothing allocated), each with the key that sets most of it.
    Raises ValueError for an unreadable mask file."""
    return GEOMETRY_KINDS[kind].grid_shape(kw)


def _z_parametric(kw: dict) -> tuple[int, str]:
    cover = kw["cells_cover"] if kw["cover_thickness"] > 0 else 0
    return _axis(("geometry.cells.base", kw["cells_base"]), ("geometry.cells.fin_height", kw["cells_fin_height"]),
                 ("geometry.cells.cover", cover))  # fmt: skip


def _straight_shape(kw: dict) -> list[tuple[int, str]]:
    cf, cc = kw["cells_fin"], kw["cells_channel"]
    if kw.get("unit_cell") == "half":
        y = _axis(("geometry.cells.channel", max(cc // 2, 1)), ("geometry.cells.fin", max(cf // 2, 1)))
    elif kw.get("unit_cell"):
        y = _axis(("geometry.cells.channel", cc), ("geometry.cells.fin", 2 * max(cf // 2, 1)))
    else:
        n = kw["channels"]
        y = _axis(("geometry.cells.channel", n * cc), ("geometry.cells.fin", (n + 1) * cf))
        if n > max(cc, cf):
            y = (y[0], "geometry.channels")
    plenum = 2 * kw["cells_plenum"] if kw["plenum_length"] > 0 else 0
    x = _axis(("geometry.cells.length", kw["cells_length"]), ("geometry.cells.plenum", plenum))
    return [x, y, _z_parametric(kw)]


def _pin_fins_shape(kw: dict) -> list[tuple[int, str]]:
    pp = kw["cells_per_pitch"]
    ratio = kw["plenum_length"] / kw["pitch_x"]
    n_plenum = 0
    if kw["plenum_length"] > 0:
        n_plenum = max(int(round(pp * ratio)), 1) if pp * ratio < 2**62 else 2**62
    x = _axis(("geometry.rows" if kw["rows"] > pp else "geometry.cells.per_pitch", kw["rows"] * pp),
              ("geometry.plenum_length", 2 * n_plenum))  # fmt: skip
    y = (kw["columns"] * pp, "geometry.columns" if kw["columns"] > pp else "geometry.cells.per_pitch")
    return [x, y, _z_parametric(kw)]


def _stl_shape(kw: dict) -> list[tuple[int, str]]:
    cells = [n if isinstance(n, int) else len(n) - 1 for n in kw["grid"]]
    return [(n, f"geometry.grid.{a}") for a, n in zip("xyz", cells, strict=True)]


def _mask_grid_shape(kw: dict) -> list[tuple[int, str]]:
    shape = geo.mask_shape(kw["path"])
    if len(shape) != 3:
        raise ValueError(f"{Path(kw['path']).name}: expected a 3D array, got shape {shape}")
    return [(n, "geometry.file") for n in shape]


def require_memory(path, kind: str, kw: dict, max_outer: int, case_type: str = CASE_TYPE) -> None:
    """Refuse (CaseError) a voxel grid that cannot fit, before it is built."""
    try:
        axes = grid_shape(kind, kw)
    except ValueError as exc:
        raise CaseError(path, "geometry.file", str(exc)) from None
    (nx, _), (ny, _), (nz, _) = axes
    keys = tuple(dict.fromkeys(k for _, k in sorted(axes, key=lambda a: -a[0])))
    n = resources.require_count(path, keys, nx * ny * nz, "cells")
    per_cell = resources.BYTES_PER_UNIT[case_type]
    resources.require_memory(
        path,
        case_type,
        [
            (keys, n * per_cell, f"{nx} x {ny} x {nz} = {n:,} cells x {per_cell} B per cell"),
            ("solver.max_outer", resources.history_bytes(max_outer, 4), "residual histories"),
        ],
    )


def read_inlet_temperature(inlet: Table, coolant: Coolant) -> float:
    """``inlet.temperature`` (K), refused outside the coolant's property fit."""
    return read_coolant_temperature(inlet, "temperature", coolant)


def parse(case_file: CaseFile) -> ColdPlateCase:
    root = Table(case_file.data, case_file.path)
    name, description = read_header(root, CASE_TYPE)

    kind, gkw = read_geometry(root.table("geometry"), case_file.directory)

    solid, k_solid = read_material(root)

    ct = root.table("coolant", default={})
    viscosity = ct.string("viscosity", default="inlet", choices=VISCOSITY_MODELS)
    coolant = read_constant_coolant(ct) if ct.raw("fluid", default=None) == "constant" else read_coolant(ct)
    if coolant.fluid == "constant" and viscosity != "inlet":
        raise ct.error("viscosity", 'constant properties (fluid = "constant") take viscosity = "inlet" only')

    inlet = root.table("inlet")
    if inlet.has("flow") == inlet.has("velocity"):
        raise inlet.error(None, "give exactly one of 'flow' (volumetric) or 'velocity' (mean over the inlet)")
    flow_rate = inlet.quantity("flow", "volumetric_flow", positive=True) if inlet.has("flow") else None
    velocity = inlet.quantity("velocity", "velocity", positive=True) if inlet.has("velocity") else None
    t_in = read_inlet_temperature(inlet, coolant)
    curve_flows = read_curve_flows(inlet)
    inlet.finish()

    heat = root.table("heat")
    heated = heat.string("region", default="fin_field", choices=("fin_field", "all"))
    if heat.has("flux") == heat.has("power"):
        raise heat.error(None, "give exactly one of 'flux' (W/m^2) or 'power' (W)")
    flux = heat.quantity("flux", "heat_flux", positive=True) if heat.has("flux") else None
    power = heat.quantity("power", "power", positive=True) if heat.has("power") else None
    heat.finish()

    st = root.table("solver", default={})
    precision, flow_tol, max_outer, scheme = _solver_settings(st)
    coupling_tol = read_tolerance(
        st, "coupling_tolerance", precision, default=1e-4, maximum=0.1, floor={"float64": 1e-10, "float32": 1e-6}
    )
    max_coupling = st.integer("max_coupling", default=30, minimum=1)
    energy = read_energy_solver(st, precision)
    if viscosity == "inlet" and (st.has("coupling_tolerance") or st.has("max_coupling")):
        raise st.error(
            "coupling_tolerance" if st.has("coupling_tolerance") else "max_coupling",
            'only used with [coolant] viscosity = "temperature"',
        )
    st.finish()
    plots = read_plots_flag(root)
    root.finish()

    require_memory(case_file.path, kind, gkw, max_outer)
    try:
        g = _voxels(kind, gkw)
    except (ValueError, OSError) as exc:
        raise root.error("geometry.file" if kind in ("mask", "stl") else "geometry", str(exc)) from None
    inlet_area = _inlet_area(g)
    if inlet_area <= 0:
        raise root.error("geometry", "no fluid cells on the inlet face (x-): coolant cannot enter")
    if flow_rate is None:
        flow_rate = velocity * inlet_area
    area = _heated_area(g, heated)
    if flux is None:
        flux = power / area
    return ColdPlateCase(
        name,
        description,
        kind,
        gkw,
        solid,
        k_solid,
        coolant,
        flow_rate,
        t_in,
        flux,
        heated,
        precision,
        flow_tol,
        max_outer,
        scheme,
        plots,
        viscosity=viscosity,
        coupling_tolerance=coupling_tol,
        max_coupling=max_coupling,
        curve_flows=curve_flows,
        **energy,
    )


def read_curve_flows(inlet: Table) -> tuple[float, ...]:
    """``[inlet] flow_range = [low, high]`` (volumetric flows through the
    modelled domain) and ``curve_points`` (default 8, 2..64): the flows of the
    curves written to ``curves.csv``, evenly spaced; () without ``flow_range``
    (no curves). ``curve_points`` alone is refused."""
    if not inlet.has("flow_range"):
        if inlet.has("curve_points"):
            raise inlet.error("curve_points", "only used with 'flow_range' (the flows of the curves)")
        return ()
    lo, hi = inlet.quantities("flow_range", "volumetric_flow", length=2, positive=True)
    if not hi > lo:
        raise inlet.error("flow_range", f"[low, high] with high > low, got {inlet.raw('flow_range')}")
    n = inlet.integer("curve_points", default=8, minimum=2, maximum=64)
    return tuple(float(v) for v in np.linspace(lo, hi, n))


LINE_AXES = {"x": 0, "y": 1, "z": 2}
_CONSTANT_PROPERTIES = (
    ("density", "density", "density"),
    ("specific_heat", "specific_heat", "cp"),
    ("conductivity", "thermal_conductivity", "conductivity"),
    ("dynamic_viscosity", "dynamic_viscosity", "log_viscosity"),
)


def read_constant_coolant(ct: Table) -> Coolant:
    """``[coolant] fluid = "constant"``: user-given constant properties
    (``density``, ``specific_heat``, ``conductivity``, ``dynamic_viscosity``,
    all required), e.g. to match a peer code's inputs. Valid at any liquid
    temperature the case gives (no property fit to leave)."""
    ct.string("fluid")
    coefficients = []
    for key, dim, prop in _CONSTANT_PROPERTIES:
        value = ct.quantity(key, dim, positive=True)
        coefficients.append((prop, (float(np.log(value)) if prop == "log_viscosity" else value,)))
    ct.finish()
    return Coolant("constant properties", "constant", 0.0, 1.0, 1e4, tuple(coefficients), 0.0)


def read_energy_solver(st: Table, precision: str) -> dict:
    """The energy keys of a ``[solver]`` table: ``energy_tolerance``,
    ``energy_max_outer``, ``energy_max_inner``, ``energy_line_axis``, as
    :class:`ColdPlateCase` fields."""
    out = {}
    if st.has("energy_tolerance"):
        out["energy_tolerance"] = read_tolerance(
            st, "energy_tolerance", precision, default=None, maximum=1e-3, floor={"float64": 1e-13, "float32": 1e-6}
        )
    out["energy_max_outer"] = st.integer("energy_max_outer", default=500, minimum=1)
    out["energy_max_inner"] = st.integer("energy_max_inner", default=300, minimum=1)
    out["energy_line_axis"] = st.string("energy_line_axis", default="auto", choices=("auto", *LINE_AXES))
    return out


def _inlet_area(g: geo.VoxelGeometry) -> float:
    dy, dz = np.diff(g.faces[1]), np.diff(g.faces[2])
    return float((dy[:, None] * dz[None, :])[g.material[0] == geo.FLUID].sum())


def _heated_mask(g: geo.VoxelGeometry, heated: str) -> np.ndarray:
    xc = g.centers(0)
    in_x = (xc > g.fin_field[0]) & (xc < g.fin_field[1]) if heated == "fin_field" else np.ones_like(xc, bool)
    return np.broadcast_to(in_x[:, None], (len(xc), len(g.faces[1]) - 1))


def _passage(case: ColdPlateCase, voxels: geo.VoxelGeometry) -> float:
    """Width of the narrowest flow passage (m), for the pseudo-time step."""
    return GEOMETRY_KINDS[case.geometry_kind].passage(case.geometry, voxels)


#: ``[geometry] kind`` of a resolved cold plate: name -> reader of its keys
#: ``(table, case folder) -> builder kwargs`` and the pieces ``voxels(kw)``,
#: ``grid_shape(kw)`` (cells per axis before building) and ``passage(kw,
#: voxels)`` (narrowest flow passage, m). Adding a kind is one registration.
GEOMETRY_KINDS = geo.KindRegistry("kind", "geometry kind", ("voxels", "grid_shape", "passage"))
GEOMETRY_KINDS.register(
    "straight_fins", _read_straight,
    voxels=lambda kw: geo.straight_fins(**kw),
    grid_shape=_straight_shape,
    passage=lambda g, _v: min(g["channel_width"], g["fin_height"]),
)  # fmt: skip
GEOMETRY_KINDS.register(
    "pin_fins", _read_pin_fins,
    voxels=lambda kw: geo.pin_fins(**kw),
    grid_shape=_pin_fins_shape,
    passage=lambda g, _v: min(g["pitch_x"] - g["diameter"], g["pitch_y"] - g["diameter"], g["fin_height"]),
)  # fmt: skip
GEOMETRY_KINDS.register(
    "mask", _read_mask,
    voxels=lambda kw: geo.from_mask_file(kw["path"], kw["spacing"]),
    grid_shape=_mask_grid_shape,
    passage=lambda g, _v: 4.0 * min(g["spacing"]),
)  # fmt: skip
GEOMETRY_KINDS.register(
    "stl", read_stl_geometry,
    voxels=lambda kw: geo.from_stl(kw["path"], **{k: v for k, v in kw.items() if k not in ("path", "sides")}),
    grid_shape=_stl_shape,
    passage=lambda _g, voxels: geo.narrowest_passage(voxels),
)  # fmt: skip


def _pressure_weights(g: geo.VoxelGeometry) -> tuple[float, float, float]:
    """The pressure links' strength per unit volume along x, y, z for the
    pressure multigrid's coarsening (``FlowSpec.pressure_axis_weights``): the
    mean of ``1 / h**2`` over the fluid cells, to 4 significant digits (a
    static setting of the solver). On the unit cell the y links (across the
    thin channel) are the strongest and the z links about 6x the x links.

    The energy solve is not given weights: on the OpenFOAM peer's meshes they
    cut its BiCGSTAB iterations (200 -> 142 at 166k cells) but not its time
    at 806k, and its extra level compiled 1.5-2.5 s longer."""
    fluid = g.material == geo.FLUID
    widths = np.meshgrid(*(np.diff(f) for f in g.faces), indexing="ij")
    return tuple(float(f"{np.mean(1.0 / w[fluid] ** 2):.4g}") for w in widths)


#: Largest convective Courant number ``u dt / dx`` along the flow (x) of the
#: flow solve's pseudo-time step. See :func:`_pseudo_time_length`.
MAX_COURANT = 3.0


def _pseudo_time_length(passage: float, weights) -> float:
    """The flow solve's pseudo-time step times the bulk speed (m): the
    narrowest passage (the choice measured on fin channels to take the fewest
    outer iterations), but at most ``MAX_COURANT`` cells along the flow
    (``1 / sqrt`` of the mean ``1 / dx**2`` over the fluid cells, the x entry
    of :func:`_pressure_weights`).

    With many cells along the flow the upwind links along x outgrow the
    pseudo-time term of the momentum equations, and the Jacobi-preconditioned
    momentum BiCGSTAB needs more iterations per outer iteration as the
    Courant number grows: on the unit cell (``benchmarks/coldplate.py``) 2.7 /
    6.4 / 10.6 at 49k / 195k / 806k cells, Courant number 1.9 / 3.1 / 5.0.
    Measured with the step scaled (2-core AMD EPYC, float64, one compiled
    program per mesh): at 806k the flow solve took 33.0 s at Courant number
    5.0, 27.0 s at 3.5, 25.2-27.8 s at 2.35 and 30.2 s at 1.75 (fewer momentum,
    more outer iterations); at 195k (3.1) and the OpenFOAM peer's 166k mesh
    (2.9) 0.7 of the step was as fast and half of it 20 % slower; at 49k and
    on a 307k mesh with 64 cells along the flow (1.9) half the step was 1.5-1.7x
    slower. A cap on the viscous number ``nu dt / h**2`` across the channel
    instead took a short cell of 8 x 42 x 8 cells from 176 to 404 outer
    iterations (benchmarks/RESULTS.md)."""
    return min(passage, MAX_COURANT / math.sqrt(weights[0]))


def _thinnest_axis(g: geo.VoxelGeometry) -> int:
    """The axis across which the fluid cells are thinnest: there the pressure
    links are strongest, so the pressure multigrid solves lines along it
    (measured on the unit cell at 49k cells: 14 CG iterations per outer
    iteration with lines across the channel, 130 with lines up the fins)."""
    return int(np.argmax(_pressure_weights(g)))


def energy_line_axis(g: geo.VoxelGeometry, k: np.ndarray, flux: float) -> int:
    """Axis for the energy solver's multigrid line solves: the one whose links
    carry the most per unit volume, summed over all cells (conduction
    ``2 k / h_a^2`` along each axis, plus the advection ``rho cp u / h_x`` of
    the bulk flow ``flux = rho cp u`` (W/m^2/K) along x in fluid cells).
    Lines along the strongest links make the line solves exact where the
    coupling is strongest; with thin fluid and fin cells across the channel
    that is y, not the flow direction (the 40 mm microchannel trial of issue
    16: along x the first solve hit its 300-iteration cap, across y it took
    83)."""
    h = np.meshgrid(*(np.diff(f) for f in g.faces), indexing="ij")
    strength = [float(np.sum(2.0 * k / w**2)) for w in h]
    strength[0] += float(np.sum(np.where(g.solid, 0.0, flux / h[0])))
    return int(np.argmax(strength))


def _heated_area(g: geo.VoxelGeometry, heated: str) -> float:
    dx, dy = np.diff(g.faces[0]), np.diff(g.faces[1])
    return float((dx[:, None] * dy[None, :])[_heated_mask(g, heated)].sum())


# ----------------------------------------------------------------------------- solve


@dataclass(frozen=True)
class Problem:
    """The arrays and static settings of one resolved cold-plate solve, ready
    for the kernels (:func:`kernels.fv.flow.solve_flow`, then
    :func:`kernels.fv.energy.solve` on the face flows)."""

    geometry: geo.VoxelGeometry
    grid: object
    solid: jax.Array
    flow_params: flow.FlowParams
    flow_boundary: flow.FlowBoundary
    flow_spec: flow.FlowSpec
    k: jax.Array  # W/(m K) per cell
    q: jax.Array  # W/m^3 per cell
    thermal_bcs: cd.BoundaryConditions
    rho_cp: float  # J/(m^3 K) of the coolant
    energy_config: energy.EnergyConfig
    flux_map: np.ndarray  # W/m^2 on the bottom face


def _no_coupling() -> dict:
    return {"iterations": 1, "converged": True, "pressure_drop": [], "r_max": [], "viscosity_change": []}


@dataclass(frozen=True)
class Solution:
    geometry: geo.VoxelGeometry
    state: flow.FlowState
    flow_info: flow.FlowInfo
    T: jax.Array
    energy_info: object
    energy_inner: jax.Array
    heat: tuple  # (added, removed) W
    flux_map: np.ndarray
    # Pa s per cell as used by the last flow solve (inlet value in solid cells);
    # None: the constant inlet value of setup()'s FlowParams
    viscosity: np.ndarray | None = None
    # Picard iterations: "iterations", "converged", per-iteration "pressure_drop" (Pa),
    # "r_max" (K/W), "viscosity_change" (max relative change of mu(T) against the mu the
    # flow used, fluid cells); the default is one constant-viscosity flow and energy solve
    coupling: dict = field(default_factory=_no_coupling)
    energy_line_axis: int = 0  # axis of the energy solver's line solves


@cache
def compiled_solvers():
    """One compiled flow and energy solver per grid shape and static
    configuration, kept across calls. JAX and the kernels are imported here
    and in the functions that solve, not at module import, so that reading a
    case (``thermo check``) starts no JAX."""
    from aidc_thermo.compile_cache import cached_jit
    from aidc_thermo.kernels import energy, flow

    # with the command line's cache on, whole compiled programs are kept on disk
    # (a warm run neither traces nor lowers them)
    return (
        cached_jit(flow.solve_flow, static_argnums=(4,), kind=PROGRAM_KIND),
        cached_jit(energy.solve, static_argnums=(5,), kind=PROGRAM_KIND),
    )


@cache
def compiled_helpers():
    """The set-up and post-processing around the solvers as one compiled
    program each (instead of dozens of small eager ones, each traced, lowered
    and loaded on every run): the boundary conditions of :func:`setup`, the
    face flows and the heat balance."""
    from aidc_thermo.compile_cache import cached_jit
    from aidc_thermo.kernels import energy

    return (
        cached_jit(_boundaries, static_argnums=(5,), kind=PROGRAM_KIND),
        cached_jit(energy.face_flows, kind=PROGRAM_KIND),
        cached_jit(energy.heat_balance, static_argnums=(6,), kind=PROGRAM_KIND),
    )


def _boundaries(grid, fluid_in, flux_map, t_in, vel_in, dtype):
    """The flow boundary and the thermal face conditions of :func:`setup`
    (one compiled program rather than ~30 eager ones)."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import conduction as cd
    from aidc_thermo.kernels import flow

    bnd = flow.flow_boundary(grid, velocity={"x-": vel_in})
    faces = {n: cd.face_bc(grid, n, dtype=dtype) for n, _, _ in cd.FACES}
    faces["x_lo"] = cd.face_bc(grid, "x_lo", jnp.where(fluid_in, cd.TEMPERATURE, cd.FLUX), value=t_in, dtype=dtype)
    faces["z_lo"] = cd.face_bc(grid, "z_lo", cd.FLUX, flux=flux_map.astype(dtype), dtype=dtype)
    return bnd, cd.BoundaryConditions(**faces)


def solve_flow(*args):
    """:func:`kernels.fv.flow.solve_flow`, jitted (the spec, argument 4, static)."""
    return compiled_solvers()[0](*args)


def solve_energy(*args):
    """:func:`kernels.fv.energy.solve`, jitted (the config, argument 5, static)."""
    return compiled_solvers()[1](*args)


def setup(case: ColdPlateCase) -> Problem:
    """Build the grid, masks, properties and boundary conditions of ``case``."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import advdiff, energy, flow
    from aidc_thermo.kernels.fv.grid import grid_from_faces

    dtype = precision_dtype(case.precision)
    g = build_geometry(case)
    grid = grid_from_faces(*g.faces, dtype=dtype)
    t_in = case.inlet_temperature
    rho, mu = float(case.coolant.density(t_in)), float(case.coolant.viscosity(t_in))
    cp, k_f = float(case.coolant.cp(t_in)), float(case.coolant.conductivity(t_in))
    fluid_in = g.material[0] == geo.FLUID
    u_in = case.flow_rate / _inlet_area(g)
    vel_in = np.zeros((3, 1) + fluid_in.shape)
    vel_in[0, 0] = np.where(fluid_in, u_in, 0.0)
    side = "symmetry" if case.geometry.get("unit_cell") or case.geometry.get("sides") == "symmetry" else "wall"
    spec = flow.FlowSpec(
        bc=("inlet", "outlet", side, side, "wall", "wall"),
        tol=case.flow_tolerance,
        max_outer=case.max_outer,
        pressure_line_axis=_thinnest_axis(g),
        pressure_axis_weights=_pressure_weights(g),
        # a loose pressure correction is enough for SIMPLEC here: on the unit cell
        # at 49k cells, 0.2 takes the same 51 outer iterations as 0.01 with half
        # the CG iterations (0.3 needs more outer iterations)
        pressure_rtol=0.2,
        # the momentum correction (to a relative 0.1 of a float64 residual) and the
        # energy V-cycle run in float32 for a float64 solve: at the OpenFOAM peer's
        # 166k mesh the flow solve ~25 % and the energy solve ~20 % faster, answers
        # the same to the solver's tolerance; sweeps still equal single runs to
        # 1e-10 (tests/test_coldplate_protocol.py)
        momentum_mixed_precision=True,
    )
    dt = _pseudo_time_length(_passage(case, g), spec.pressure_axis_weights) / u_in
    params = flow.FlowParams(
        rho=jnp.asarray(rho, dtype),
        mu=jnp.asarray(mu, dtype),
        dt=jnp.asarray(dt, dtype),
        body_force=jnp.zeros((3,), dtype),
    )
    k = jnp.asarray(np.where(g.solid, case.solid_k, k_f), dtype)
    energy_tol = case.energy_tolerance
    if energy_tol is None and dtype == jnp.float32:
        energy_tol = 1e-4
    if case.energy_line_axis == "auto":
        line_axis = energy_line_axis(g, np.where(g.solid, case.solid_k, k_f), rho * cp * u_in)
    else:
        line_axis = LINE_AXES[case.energy_line_axis]
    heated = _heated_mask(g, case.heated)
    flux_map = np.where(heated, case.heat_flux, 0.0)
    bnd, thermal_bcs = compiled_helpers()[0](grid, fluid_in, flux_map, t_in, vel_in, dtype)
    return Problem(
        geometry=g,
        grid=grid,
        solid=jnp.asarray(g.solid),
        flow_params=params,
        flow_boundary=bnd,
        flow_spec=spec,
        k=k,
        q=jnp.zeros(g.shape, dtype),
        thermal_bcs=thermal_bcs,
        rho_cp=rho * cp,
        # float32: the full equation's residual has a roundoff floor that grows
        # with the cell count (1.2e-5 at 195k cells on the unit cell), so ask 1e-4
        # the x+ face is a pressure outlet: where the flow turns back into the domain
        # it brings the adjacent cell's temperature (zero gradient), not a face value
        energy_config=energy.EnergyConfig(
            scheme=case.energy_scheme,
            krylov=advdiff.KrylovConfig(
                line_axis=line_axis,
                max_iterations=case.energy_max_inner,
                mixed_precision=True,  # see spec above
            ),
            max_outer=case.energy_max_outer,
            tol=energy_tol,
            outlets=("x_hi",),
        ),
        flux_map=flux_map,
    )


def _with_energy(pb: Problem, state: flow.FlowState, finfo: flow.FlowInfo, mu: np.ndarray) -> Solution:
    """Solve the energy equation on the face flows of ``state``."""

    _, face_flows, heat_balance = compiled_helpers()
    flows = face_flows(pb.grid, state.u, state.v, state.w, pb.rho_cp)
    T, einfo, inner = solve_energy(pb.grid, pb.k, pb.q, pb.thermal_bcs, flows, pb.energy_config)
    heat = heat_balance(pb.grid, pb.k, pb.q, pb.thermal_bcs, flows, T, pb.energy_config.outlets)
    return Solution(
        pb.geometry, state, finfo, T, einfo, inner, heat, pb.flux_map, mu,
        energy_line_axis=pb.energy_config.krylov.line_axis,
    )  # fmt: skip


def solve_host(case: ColdPlateCase) -> Solution:
    """Flow and energy with the Picard coupling as a host loop (the path
    before the protocol; kept as the reference the protocol's :func:`solve`
    is tested against). Does not raise on non-convergence:
    :func:`check_converged` does."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import flow

    progress.phase("build")
    pb = setup(case)
    progress.phase("solve")
    g = pb.geometry
    mu_in = float(pb.flow_params.mu)
    mu = np.full(g.shape, mu_in)
    if case.viscosity == "inlet":
        state, finfo = solve_flow(pb.grid, pb.solid, pb.flow_params, pb.flow_boundary, pb.flow_spec)
        return _with_energy(pb, state, finfo, mu)

    # Picard coupling: always a per-cell viscosity and an explicit (warm) initial
    # state, so one compilation serves every coupling iteration
    cool, fluid, tol = case.coolant, ~g.solid, case.coupling_tolerance
    state = flow.initial_state(pb.grid, pb.solid, pb.flow_boundary, pb.flow_spec)
    hist = {"pressure_drop": [], "r_max": [], "viscosity_change": []}
    converged = False
    for it in range(case.max_coupling):
        params = dataclasses.replace(pb.flow_params, mu=jnp.asarray(mu, pb.flow_params.mu.dtype))
        state, finfo = solve_flow(pb.grid, pb.solid, params, pb.flow_boundary, pb.flow_spec, state)
        sol = _with_energy(pb, state, finfo, mu)
        try:
            check_converged(case, sol)  # the flow and energy solves (sol's coupling is the default)
        except SolveError:
            break
        dp = pressure_drop(sol)
        r_max = thermal_resistances(case, sol)[0]
        T = np.asarray(sol.T, np.float64)
        mu_T = np.where(fluid, cool.viscosity(np.clip(T, cool.t_min, cool.t_max)), mu_in)
        change = float(np.max(np.abs(mu_T[fluid] / mu[fluid] - 1.0)))
        if hist["pressure_drop"]:
            dp_prev, r_prev = hist["pressure_drop"][-1], hist["r_max"][-1]
            converged = abs(dp - dp_prev) <= tol * abs(dp) and abs(r_max - r_prev) <= tol * r_max and change <= tol
        hist["pressure_drop"].append(dp)
        hist["r_max"].append(r_max)
        hist["viscosity_change"].append(change)
        progress.step("viscosity coupling", it + 1, case.max_coupling, residual=change, tolerance=tol)
        if converged:
            break
        mu = mu_T
    coupling = {"iterations": max(len(hist["pressure_drop"]), 1), "converged": converged, **hist}
    return dataclasses.replace(sol, coupling=coupling)


# ----------------------------------------------------------------------------- the protocol
# thermo run = parse -> build -> solve -> report (+ check) (thermo/models/protocol.py).
# Static: the voxel geometry (compared and hashed by a digest of its faces and
# materials), boundary kinds, solver settings and the line axes chosen on the
# host; Params: flow, inlet temperature, heat flux and solid conductivity.
# Coolant properties are evaluated inside solve from the inlet temperature.

PROTOCOL = True
#: the XLA options this model's programs compile with, also in ``thermo sweep``
#: (:data:`thermo.compile_options.KIND_OPTIONS`)
PROGRAM_KIND = FINITE_VOLUME
_PARAM_FIELDS = ("flow_rate", "inlet_temperature", "heat_flux", "solid_k")


class Voxels:
    """A :class:`geometry.VoxelGeometry` as a static value: equal and hashed
    by the SHA-256 of its faces and materials (its ``repr`` names the digest,
    so that the on-disk compile cache keys by it)."""

    def __init__(self, geometry: geo.VoxelGeometry):
        import hashlib

        h = hashlib.sha256()
        for f in geometry.faces:
            h.update(np.asarray(f, np.float64).tobytes())
        h.update(np.ascontiguousarray(geometry.material, np.int8).tobytes())
        h.update(repr((geometry.fin_field, geometry.base_top, geometry.fin_top)).encode())
        self.geometry = geometry
        self.digest = h.hexdigest()

    def __eq__(self, other):
        return isinstance(other, Voxels) and other.digest == self.digest

    def __hash__(self):
        return hash(self.digest)

    def __repr__(self):
        return f"Voxels(shape={self.geometry.shape}, sha256={self.digest})"


@dataclass(frozen=True)
class Static:
    """What fixes array shapes and the compiled program (hashable)."""

    voxels: Voxels
    geometry_kind: str
    heated: str  # "fin_field" or "all"
    side: str  # "symmetry" or "wall": the y faces
    inlet_area: float  # m^2, fluid cells of the x- face
    passage: float  # m, narrowest flow passage (pseudo-time step)
    pressure_line_axis: int
    energy_line_axis: int  # chosen on the host from the case's numbers ("auto") or given
    coolant: Coolant
    precision: str
    flow_tolerance: float
    max_outer: int
    energy_scheme: str
    energy_tolerance: float | None
    energy_max_outer: int
    energy_max_inner: int
    viscosity: str  # "inlet" or "temperature"
    coupling_tolerance: float
    max_coupling: int

    @property
    def geometry(self) -> geo.VoxelGeometry:
        return self.voxels.geometry

    @property
    def dtype(self):
        import jax.numpy as jnp

        return jnp.float64 if self.precision == "float64" else jnp.float32

    @property
    def heated_mask(self) -> np.ndarray:
        return np.asarray(_heated_mask(self.geometry, self.heated))


@dataclass(frozen=True)
class Params:
    """Every sweepable number of a resolved cold plate, SI (a leading batch
    axis when stacked)."""

    flow_rate: object  # m^3/s through the modelled domain
    inlet_temperature: object  # K
    heat_flux: object  # W/m^2 on the heated part of the bottom face
    solid_k: object  # W/m/K


@dataclass(frozen=True)
class PlateSolution:
    """The pure solve's answer (a pytree): the last flow and energy solves,
    the viscosity of the last flow solve, the Picard histories (length
    ``max_coupling``, the first ``coupling_recorded`` entries filled) and the
    headline numbers."""

    state: object
    flow_info: object
    T: object
    energy_info: object
    energy_inner: object
    heat: object  # (added, removed) W
    viscosity: object  # Pa s per cell of the last flow solve (inlet value in solid cells)
    coupling_iterations: object
    coupling_converged: object
    coupling_recorded: object
    dp_history: object
    r_max_history: object
    change_history: object
    pressure_drop: object  # Pa
    r_max: object  # K/W
    r_mean: object  # K/W
    t_base_max: object  # K
    t_outlet: object  # K, flow-weighted over the outlet face
    extremes: object  # (4,): min fluid, max fluid, min solid, max solid (K; the bottom face counted as solid)


_registered = False


def _register() -> None:
    global _registered
    if not _registered:
        import jax

        jax.tree_util.register_dataclass(Params, data_fields=list(_PARAM_FIELDS), meta_fields=[])
        names = [f.name for f in dataclasses.fields(PlateSolution)]
        jax.tree_util.register_dataclass(PlateSolution, data_fields=names, meta_fields=[])
        _registered = True


def build(case: ColdPlateCase) -> tuple[Static, Params]:
    """``(Static, Params)`` of a parsed case."""
    _register()
    g = build_geometry(case)
    t_in = case.inlet_temperature
    u_in = case.flow_rate / _inlet_area(g)
    if case.energy_line_axis == "auto":
        k_f = float(case.coolant.conductivity(t_in))
        rho, cp = float(case.coolant.density(t_in)), float(case.coolant.cp(t_in))
        line_axis = energy_line_axis(g, np.where(g.solid, case.solid_k, k_f), rho * cp * u_in)
    else:
        line_axis = LINE_AXES[case.energy_line_axis]
    energy_tol = case.energy_tolerance
    if energy_tol is None and case.precision == "float32":
        energy_tol = 1e-4
    side = "symmetry" if case.geometry.get("unit_cell") or case.geometry.get("sides") == "symmetry" else "wall"
    static = Static(
        voxels=Voxels(g),
        geometry_kind=case.geometry_kind,
        heated=case.heated,
        side=side,
        inlet_area=_inlet_area(g),
        passage=float(_passage(case, g)),
        pressure_line_axis=_thinnest_axis(g),
        energy_line_axis=line_axis,
        coolant=case.coolant,
        precision=case.precision,
        flow_tolerance=case.flow_tolerance,
        max_outer=case.max_outer,
        energy_scheme=case.energy_scheme,
        energy_tolerance=energy_tol,
        energy_max_outer=case.energy_max_outer,
        energy_max_inner=case.energy_max_inner,
        viscosity=case.viscosity,
        coupling_tolerance=case.coupling_tolerance,
        max_coupling=case.max_coupling,
    )
    f64 = np.float64
    params = Params(f64(case.flow_rate), f64(t_in), f64(case.heat_flux), f64(case.solid_k))
    return static, params


def stack_params(designs) -> Params:
    """Stack the ``Params`` of designs with equal ``Static`` along a new leading axis."""
    _register()
    return Params(**{f: np.stack([np.asarray(getattr(p, f)) for p in designs]) for f in _PARAM_FIELDS})


def design_bytes(static: Static) -> int:
    """Memory of one design's solve (:mod:`thermo.resources`' bytes per cell,
    and the residual histories), for a sweep's chunk size."""
    per_cell = resources.BYTES_PER_UNIT[CASE_TYPE]
    n = int(np.prod(static.geometry.shape))
    return n * per_cell + resources.history_bytes(static.max_outer, 4)


def _flow_spec(static: Static):
    from aidc_thermo.kernels import flow

    return flow.FlowSpec(
        bc=("inlet", "outlet", static.side, static.side, "wall", "wall"),
        tol=static.flow_tolerance,
        max_outer=static.max_outer,
        pressure_line_axis=static.pressure_line_axis,
        pressure_axis_weights=_pressure_weights(static.geometry),
        pressure_rtol=0.2,  # see setup()
        momentum_mixed_precision=True,
    )


def _energy_config(static: Static):
    from aidc_thermo.kernels import advdiff, energy

    return energy.EnergyConfig(
        scheme=static.energy_scheme,
        krylov=advdiff.KrylovConfig(
            line_axis=static.energy_line_axis, max_iterations=static.energy_max_inner, mixed_precision=True
        ),
        max_outer=static.energy_max_outer,
        tol=static.energy_tolerance,
        outlets=("x_hi",),
    )


def solve(static, params=None):
    """The protocol's pure solve: ``solve(static, params) -> PlateSolution``
    (jit-able with ``static`` static, vmap-able over ``params``): flow, then
    energy; with ``viscosity = "temperature"`` the Picard coupling (module
    docstring) as a ``lax.while_loop`` that stops when dP, R_max and the
    viscosity field change by less than ``coupling_tolerance``, at
    ``max_coupling`` iterations, or when a flow or energy solve does not
    converge (the maximum principle is checked on the final field by
    :func:`check`).

    ``solve(case)`` (a parsed :class:`ColdPlateCase`, no params) is the host
    convenience: build, the compiled pure solve, and the answer as a
    :class:`Solution` (fields, geometry, coupling histories as lists); it does
    not raise on non-convergence: :func:`check_converged` does.

    Not differentiable: the flow's outer loop has no adjoint (no reverse
    mode) and the TVD energy scheme holds its operator under
    ``stop_gradient``; the compact plate is the differentiable model."""
    if params is None:
        case = static
        progress.phase("build")
        st, pa = build(case)
        progress.phase("solve")
        return to_solution(st, pa, compiled_solve()(st, pa))
    return _solve(static, params)


def _solve(static: Static, params: Params) -> PlateSolution:
    import jax
    import jax.numpy as jnp

    from aidc_thermo.kernels import energy, flow
    from aidc_thermo.kernels.fv.grid import grid_from_faces

    g = static.geometry
    dtype = precision_dtype(static.precision)
    f64 = jnp.result_type(float)  # float64 with x64 on: the host path's numpy precision
    grid = grid_from_faces(*g.faces, dtype=dtype)
    solid = jnp.asarray(g.solid)
    fluid_np = ~g.solid
    t_in = jnp.asarray(params.inlet_temperature, f64)
    cool = static.coolant
    rho, mu_in = cool.density(t_in), cool.viscosity(t_in)
    cp, k_f = cool.cp(t_in), cool.conductivity(t_in)
    fluid_in = g.material[0] == geo.FLUID
    u_in = params.flow_rate / static.inlet_area
    vel_in = jnp.zeros((3, 1) + fluid_in.shape, f64).at[0, 0].set(jnp.where(fluid_in, u_in, 0.0))
    spec = _flow_spec(static)
    fparams = flow.FlowParams(
        rho=jnp.asarray(rho, dtype),
        mu=jnp.asarray(mu_in, dtype),
        dt=jnp.asarray(_pseudo_time_length(static.passage, spec.pressure_axis_weights) / u_in, dtype),
        body_force=jnp.zeros((3,), dtype),
    )
    k = jnp.where(jnp.asarray(g.solid), params.solid_k, k_f).astype(dtype)
    heated = static.heated_mask
    flux_map = jnp.where(heated, params.heat_flux, 0.0)
    bnd, bcs = _boundaries(grid, fluid_in, flux_map, t_in, vel_in, dtype)
    q = jnp.zeros(g.shape, dtype)
    config = _energy_config(static)
    rho_cp = (rho * cp).astype(dtype)

    # the headline numbers, as pressure_drop(), thermal_resistances() and summarize() compute them
    dx, dy, dz = (np.diff(f) for f in g.faces)
    area_in = (dy[:, None] * dz[None, :]) * fluid_in
    x0, x1 = 0.5 * dx[0], dx[0] + 0.5 * dx[1]
    area_b = dx[:, None] * dy[None, :] * heated  # heated bottom area per column (numpy: the mask as 0/1)
    dz0 = g.faces[2][1] - g.faces[2][0]

    def numbers(state, T, heat):
        p = state.p.astype(f64)
        p_face = p[0] - (p[1] - p[0]) * x0 / (x1 - x0)
        dp = (p_face * area_in).sum() / area_in.sum()
        T = T.astype(f64)
        t_bottom = T[:, :, 0] + flux_map * 0.5 * dz0 / params.solid_k
        power = heat[0].astype(f64)
        t_max = jnp.max(jnp.where(heated, t_bottom, -jnp.inf))
        r_max = (t_max - t_in) / power
        r_mean = ((t_bottom * area_b).sum() / area_b.sum() - t_in) / power
        return dp, r_max, r_mean, t_max, t_bottom

    def energy_of(state):
        flows = energy.face_flows(grid, state.u, state.v, state.w, rho_cp)
        T, einfo, inner = energy.solve(grid, k, q, bcs, flows, config)
        heat = energy.heat_balance(grid, k, q, bcs, flows, T, config.outlets)
        return T, einfo, inner, heat

    n_hist = static.max_coupling
    if static.viscosity == "inlet":
        state, finfo = flow.solve_flow(grid, solid, fparams, bnd, spec)
        T, einfo, inner, heat = energy_of(state)
        mu_used = jnp.full(g.shape, mu_in, f64)
        c_its, c_conv, c_rec = jnp.asarray(1), jnp.asarray(True), jnp.asarray(0)
        hists = (jnp.zeros(n_hist, f64),) * 3
    else:
        tol = static.coupling_tolerance
        fluid = jnp.asarray(fluid_np)
        state0 = flow.initial_state(grid, solid, bnd, spec)

        def iterate(state, mu):
            fp = dataclasses.replace(fparams, mu=mu.astype(dtype))
            state, finfo = flow.solve_flow(grid, solid, fp, bnd, spec, state)
            T, einfo, inner, heat = energy_of(state)
            ok = finfo.converged & einfo.converged & jnp.all(jnp.isfinite(T))
            dp, r_max, _, _, _ = numbers(state, T, heat)
            T64 = T.astype(f64)
            mu_T = jnp.where(fluid, cool.viscosity(jnp.clip(T64, cool.t_min, cool.t_max)), mu_in)
            change = jnp.max(jnp.where(fluid, jnp.abs(mu_T / jnp.where(fluid, mu, 1.0) - 1.0), 0.0))
            return (state, finfo, T, einfo, inner, heat), ok, dp, r_max, mu_T, change

        def step(carry):
            it, sol, mu, mu_next, rec, conv, stop, dph, rh, ch = carry
            mu = mu_next
            sol, ok, dp, r_max, mu_T, change = iterate(sol[0], mu)
            dp_prev, r_prev = dph[jnp.maximum(rec - 1, 0)], rh[jnp.maximum(rec - 1, 0)]
            conv_now = (rec > 0) & (jnp.abs(dp - dp_prev) <= tol * jnp.abs(dp))
            conv_now = conv_now & (jnp.abs(r_max - r_prev) <= tol * r_max) & (change <= tol)
            conv = ok & conv_now
            dph = jnp.where(ok, dph.at[rec].set(dp), dph)
            rh = jnp.where(ok, rh.at[rec].set(r_max), rh)
            ch = jnp.where(ok, ch.at[rec].set(change), ch)
            rec = rec + ok.astype(rec.dtype)
            # the flow of the next iteration uses mu(T); a converged (or failed) iterate keeps the mu it used
            return it + 1, sol, mu, mu_T, rec, conv, (~ok) | conv, dph, rh, ch

        mu0 = jnp.full(g.shape, mu_in, f64)
        first, ok, dp, r_max, mu_T, change = iterate(state0, mu0)
        z = jnp.zeros(n_hist, f64)
        dph, rh, ch = z.at[0].set(dp), z.at[0].set(r_max), z.at[0].set(change)
        rec = ok.astype(jnp.int32)
        carry = (jnp.asarray(1), first, mu0, mu_T, rec, jnp.asarray(False), ~ok, dph, rh, ch)
        carry = jax.lax.while_loop(lambda c: (~c[6]) & (c[0] < n_hist), step, carry)
        _, (state, finfo, T, einfo, inner, heat), mu_used, _, c_rec, c_conv, _, *hists = carry
        c_its = jnp.maximum(c_rec, 1)
    dp, r_max, r_mean, t_max, t_bottom = numbers(state, T, heat)
    # outlet bulk temperature, flow weighted
    u_out = state.u[-1].astype(f64)
    m_out = u_out * dy[:, None] * dz[None, :]
    T64 = T.astype(f64)
    t_out = (m_out * T64[-1]).sum() / m_out.sum()
    solid_T = jnp.where(solid, T64, -jnp.inf)
    solid_bottom = jnp.where(heated & g.solid[:, :, 0], t_bottom, -jnp.inf)
    extremes = jnp.stack([
        jnp.min(jnp.where(solid, jnp.inf, T64)), jnp.max(jnp.where(solid, -jnp.inf, T64)),
        jnp.min(jnp.where(solid, T64, jnp.inf)), jnp.maximum(jnp.max(solid_T), jnp.max(solid_bottom)),
    ])  # fmt: skip
    mu_field = jnp.where(solid, mu_in, mu_used)
    return PlateSolution(
        state, finfo, T, einfo, inner, heat, mu_field, c_its, c_conv, c_rec, *hists,
        dp, r_max, r_mean, t_max, t_out, extremes,
    )  # fmt: skip


@cache
def compiled_solve():
    """:func:`solve` jitted (``static`` static); with the command line's cache
    on, the compiled program is kept on disk (:mod:`thermo.compile_cache`)."""
    from aidc_thermo.compile_cache import cached_jit

    _register()
    return cached_jit(_solve, static_argnums=(0,), kind=PROGRAM_KIND)


def to_solution(static: Static, params: Params, ps: PlateSolution) -> Solution:
    """The host :class:`Solution` (what :func:`summarize` and the writers read)
    of one unbatched :class:`PlateSolution`."""
    g = static.geometry
    flux_map = np.where(static.heated_mask, float(params.heat_flux), 0.0)
    if static.viscosity == "inlet":
        coupling = _no_coupling()
        viscosity = np.asarray(ps.viscosity, np.float64)
    else:
        n = int(ps.coupling_recorded)
        coupling = {
            "iterations": int(ps.coupling_iterations),
            "converged": bool(ps.coupling_converged),
            "pressure_drop": [float(v) for v in np.asarray(ps.dp_history)[:n]],
            "r_max": [float(v) for v in np.asarray(ps.r_max_history)[:n]],
            "viscosity_change": [float(v) for v in np.asarray(ps.change_history)[:n]],
        }
        viscosity = np.asarray(ps.viscosity, np.float64)
    return Solution(
        g, ps.state, ps.flow_info, ps.T, ps.energy_info, ps.energy_inner, tuple(ps.heat), flux_map, viscosity,
        coupling=coupling, energy_line_axis=static.energy_line_axis,
    )  # fmt: skip


class _CaseView:
    """The case fields :func:`check_converged` and its helpers read, from a
    design's Static and Params."""

    def __init__(self, static: Static, params: Params):
        self.flow_tolerance = static.flow_tolerance
        self.energy_scheme = static.energy_scheme
        self.energy_max_outer = static.energy_max_outer
        self.energy_max_inner = static.energy_max_inner
        self.energy_tolerance = static.energy_tolerance
        self.precision = static.precision
        self.coupling_tolerance = static.coupling_tolerance
        self.inlet_temperature = float(params.inlet_temperature)
        self.solid_k = float(params.solid_k)


def report(static: Static, params: Params, solution: PlateSolution) -> dict[str, Output]:
    """The headline numbers (a leading batch axis when the inputs have one)."""
    import jax.numpy as jnp

    s = solution
    fi, ei = s.flow_info, s.energy_info
    added, removed = s.heat
    c = 273.15
    converged = fi.converged & ei.converged & s.coupling_converged & jnp.all(jnp.isfinite(s.T), axis=(-3, -2, -1))
    return {
        "pressure_drop": Output(s.pressure_drop, "Pa", "inlet face (area mean) minus outlet"),
        "R_max": Output(s.r_max, "K/W", "(max base-bottom T - T_in) / P"),
        "R_mean": Output(s.r_mean, "K/W", "(area-mean heated base-bottom T - T_in) / P"),
        "heat_input": Output(added, "W", "heat flux times heated area"),
        "T_base_max": Output(s.t_base_max - c, "degC", "hottest heated base-bottom point"),
        "T_outlet_bulk": Output(s.t_outlet - c, "degC", "flow-weighted over the outlet face"),
        "T_solid_max": Output(s.extremes[..., 3] - c, "degC", "hottest solid point (cells and the heated bottom)"),
        "heat_balance_error": Output(jnp.abs(added - removed) / added, "", "|added - removed| / added"),
        "mass_imbalance": Output(fi.mass_imbalance, "", "|out - in| / in"),
        "flow_outer_iterations": Output(fi.iterations, "", "SIMPLEC outer iterations (last flow solve)"),
        "energy_iterations": Output(ei.iterations, "", "energy deferred-correction iterations (last solve)"),
        "coupling_iterations": Output(s.coupling_iterations, "", "flow-energy Picard iterations (1: constant mu)"),
        "temperature_extremes": Output(
            s.extremes - c, "degC", "min and max fluid temperature, min and max solid temperature"
        ),
        "converged": Output(converged, "", "every flow, energy and coupling iteration converged"),
        "iterations": Output(jnp.maximum(fi.iterations, ei.iterations), "", "largest inner iteration count"),
    }


def check(static: Static, params: Params, solution: PlateSolution) -> None:
    """Convergence of the flow, energy and coupling iterations and the
    maximum principle on the fields (:func:`check_converged`); raises
    :class:`SolveError`."""
    check_converged(_CaseView(static, params), to_solution(static, params, solution))


def screen(static: Static, params: Params, outputs: dict) -> str:
    """Why one unbatched design is not a result ("" when it is), from its
    :func:`report` outputs (numpy): a solve that did not converge, or
    temperature extremes that break the maximum principle (no cell below the
    inlet; no fluid above the hottest solid, heat entering through the solid
    only), the test :func:`check_bounded` makes on the fields."""
    out = outputs
    if not bool(out["converged"]):
        return (
            f"did not converge: flow {int(out['flow_outer_iterations'])} outer iterations (limit "
            f"{static.max_outer}), energy {int(out['energy_iterations'])} iterations, coupling "
            f"{int(out['coupling_iterations'])} iterations (limit {static.max_coupling})"
        )
    t_in = float(params.inlet_temperature)
    ext = np.asarray(out["temperature_extremes"], np.float64) + 273.15
    why = "the inlet temperature (heat is only added)"
    kw = dict(locate=lambda _i: "field extremes", precision=static.precision)
    try:
        bounds.check("fluid temperature", ext[[0, 1]], lower=t_in, lower_why=why, **kw)
        bounds.check("solid temperature", ext[[2, 3]], lower=t_in, lower_why=why, **kw)
        heated_fluid = bool(np.any(static.heated_mask & ~static.geometry.solid[:, :, 0]))
        if static.geometry.solid.any() and not heated_fluid:
            bounds.check("fluid temperature", ext[[0, 1]], upper=max(float(ext[3]), t_in),
                         upper_why="the hottest solid (the fluid is heated only through the solid)", **kw)  # fmt: skip
    except SolveError as exc:
        return str(exc)
    return ""


# ----------------------------------------------------------------------------- outputs


def check_converged(case: ColdPlateCase, sol: Solution) -> None:
    """Raise :class:`SolveError` if the flow or the energy solve did not
    converge, if the temperature field is not bounded (:func:`check_bounded`),
    or if the viscosity-temperature coupling did not converge."""
    fi, ei = sol.flow_info, sol.energy_info
    if not bool(fi.converged):
        raise SolveError(
            f"flow solve did not converge: residual {float(fi.residual):.3e} after {int(fi.iterations)} outer "
            f"iterations (tolerance {case.flow_tolerance:g}); try more [solver] max_outer or a looser "
            "flow_tolerance"
        )
    if not bool(ei.converged) or not np.all(np.isfinite(np.asarray(sol.T))):
        raise SolveError(energy_failure(case, sol))
    # before the coupling: a Picard iteration stops on an unbounded field, and
    # that, not the unfinished coupling, is what to report
    check_bounded(case, sol)
    cpl = sol.coupling
    if not cpl["converged"]:
        last = f"{cpl['viscosity_change'][-1]:.3e}" if cpl["viscosity_change"] else "n/a"
        raise SolveError(
            f"viscosity-temperature coupling did not converge in {cpl['iterations']} iterations (tolerance "
            f"{case.coupling_tolerance:g}; last relative viscosity change {last}); "
            "try more [solver] max_coupling or a looser coupling_tolerance"
        )


def energy_failure(case: ColdPlateCase, sol: Solution) -> str:
    """The message for an energy solve that did not converge: why it stopped,
    how far it got (true iteration counts) and what to try."""
    from aidc_thermo.kernels import energy

    ei = sol.energy_info
    config = energy.EnergyConfig(scheme=case.energy_scheme, max_outer=case.energy_max_outer)
    reason = energy.stop_reason(ei, config)
    if not np.all(np.isfinite(np.asarray(sol.T))):
        reason = "diverged"
    n, inner, res = int(ei.iterations), int(sol.energy_inner), float(ei.residual)
    tol = case.energy_tolerance
    if tol is None:
        tol = 1e-9 if case.precision == "float64" else 1e-4
    tol_text = f"tolerance {tol:g}"
    if case.energy_scheme == "upwind":
        head = f"energy solve (upwind) did not converge: residual {res:.3e} after {n} BiCGSTAB iterations ({tol_text})"
        why = {
            "diverged": "the iteration produced non-finite values",
            "max_iterations": f"it reached [solver] energy_max_inner = {case.energy_max_inner}",
        }[reason]
    else:
        head = (
            f"energy solve did not converge: best residual {res:.3e} after {n} deferred-correction iterations "
            f"and {inner} BiCGSTAB iterations in all ({tol_text})"
        )
        hist = np.asarray(ei.history, np.float64)[: n + 1]
        why = {
            "start": "the first (upwind) solve gave non-finite temperatures",
            "diverged": f"it diverged (the residual grew to {np.nanmax(np.abs(hist)):.3e}; the best iterate is not "
            "a result)",
            "max_outer": f"it reached [solver] energy_max_outer = {case.energy_max_outer}",
            "stalled": "it stalled (no new lowest residual in the last "
            f"{energy.EnergyConfig().stall_window} iterations)",
        }[reason]
    return (
        f"{head}: {why}; the multigrid line solves ran along {'xyz'[sol.energy_line_axis]} "
        "(try another [solver] energy_line_axis, more energy_max_outer or energy_max_inner, or a looser "
        "energy_tolerance)"
    )


def check_bounded(case: ColdPlateCase, sol: Solution) -> None:
    """The maximum principle (:mod:`thermo.bounds`): heat is only added (flux
    >= 0 on the bottom face) and the only cold boundary is the inlet, so no
    cell is below the inlet temperature; where the heat enters through solid
    cells only, no fluid cell is above the hottest solid cell (or the inlet).
    Raises :class:`SolveError` otherwise."""
    g = sol.geometry
    T = np.asarray(sol.T, np.float64)
    t_in = case.inlet_temperature
    locate = bounds.grid_locator(g.faces)
    fluid = ~np.asarray(g.solid)
    why = "the inlet temperature (heat is only added)"
    kw = dict(locate=locate, precision=case.precision)
    bounds.check("fluid temperature", T, lower=t_in, lower_why=why, mask=fluid, **kw)
    bounds.check("solid temperature", T, lower=t_in, lower_why=why, mask=~fluid, **kw)
    heated_fluid = bool(np.any((sol.flux_map > 0) & fluid[:, :, 0]))
    if (~fluid).any() and not heated_fluid:
        t_solid_max = max(float(T[~fluid].max()), t_in)
        bounds.check(
            "fluid temperature",
            T,
            upper=t_solid_max,
            upper_why="the hottest solid cell (the fluid is heated only through the solid)",
            mask=fluid,
            **kw,
        )


def pressure_drop(sol: Solution) -> float:
    """Area-mean inlet-face pressure (first fluid cells extrapolated half a
    cell to the face) minus the outlet's 0 Pa, Pa."""
    g = sol.geometry
    p = np.asarray(sol.state.p, np.float64)
    dx, dy, dz = (np.diff(f) for f in g.faces)
    area_in = (dy[:, None] * dz[None, :]) * (g.material[0] == geo.FLUID)
    p0, p1 = p[0], p[1]
    x0, x1 = 0.5 * dx[0], dx[0] + 0.5 * dx[1]
    p_face = p0 - (p1 - p0) * x0 / (x1 - x0)
    return float((p_face * area_in).sum() / area_in.sum())


def bottom_temperature(case: ColdPlateCase, sol: Solution) -> np.ndarray:
    """Temperature of the base's bottom face, ``(nx, ny)`` K: the first cell
    plus the known flux across its lower half."""
    dz0 = sol.geometry.faces[2][1] - sol.geometry.faces[2][0]
    return np.asarray(sol.T, np.float64)[:, :, 0] + sol.flux_map * 0.5 * dz0 / case.solid_k


def thermal_resistances(case: ColdPlateCase, sol: Solution) -> tuple[float, float, float]:
    """``(R_max, R_mean, power)``: hottest and area-weighted mean heated
    bottom-face temperature above the inlet temperature, per watt (K/W), and
    the heat input (W)."""
    t_bottom = bottom_temperature(case, sol)
    dx, dy = (np.diff(f) for f in sol.geometry.faces[:2])
    heated = sol.flux_map > 0
    area = (dx[:, None] * dy[None, :])[heated]
    power = float(sol.heat[0])
    t_in = case.inlet_temperature
    r_max = (float(t_bottom[heated].max()) - t_in) / power
    r_mean = (float((t_bottom[heated] * area).sum() / area.sum()) - t_in) / power
    return r_max, r_mean, power


def summarize(case: ColdPlateCase, sol: Solution) -> tuple[dict[str, Quantity], np.ndarray]:
    """The reported figures of a solution (pressure drop, thermal resistances,
    outlet and hottest temperatures, balances, iterations) and the base-bottom
    temperature map (K). Raises :class:`SolveError` for a solve that did not
    converge."""
    check_converged(case, sol)
    g, st = sol.geometry, sol.state
    fi, ei, cpl = sol.flow_info, sol.energy_info, sol.coupling
    T = np.asarray(sol.T, np.float64)
    u = np.asarray(st.u, np.float64)
    dx, dy, dz = (np.diff(f) for f in g.faces)
    dp = pressure_drop(sol)
    t_bottom = bottom_temperature(case, sol)
    heated = sol.flux_map > 0
    r_max, r_mean, power = thermal_resistances(case, sol)
    t_in = case.inlet_temperature
    # outlet bulk temperature, flow weighted
    u_out = u[-1]
    m_out = u_out * dy[:, None] * dz[None, :]
    t_out = float((m_out * T[-1]).sum() / m_out.sum())
    solid_T = np.where(g.solid, T, -np.inf)
    imax = np.unravel_index(np.argmax(solid_T), T.shape)
    t_solid_max, where_max = float(T[imax]), [float(g.centers(a)[imax[a]]) for a in range(3)]
    # the hottest solid point: a cell centre, or the heated bottom face (the
    # first cell plus the flux across its lower half), which is hotter than
    # the cell above it, so T_solid_max >= T_base_max
    ib = np.unravel_index(np.argmax(np.where(heated, t_bottom, -np.inf)), t_bottom.shape)
    if g.solid[ib[0], ib[1], 0] and t_bottom[ib] > t_solid_max:
        t_solid_max = float(t_bottom[ib])
        where_max = [float(g.centers(0)[ib[0]]), float(g.centers(1)[ib[1]]), float(g.faces[2][0])]
    added, removed = (float(x) for x in sol.heat)
    rho, cp = float(case.coolant.density(t_in)), float(case.coolant.cp(t_in))
    summary = {
        "case": Quantity(case.name),
        "coolant": Quantity(case.coolant.name),
        "flow_rate": Quantity(case.flow_rate * 6e4, "L/min"),
        "inlet_temperature": Quantity(t_in - 273.15, "degC"),
        "heat_input": Quantity(power, "W", "heat flux times heated area"),
        "pressure_drop": Quantity(dp, "Pa", "inlet face (area mean) minus outlet"),
        "R_max": Quantity(r_max, "K/W", "(max base-bottom T - T_in) / P"),
        "R_mean": Quantity(r_mean, "K/W", "(area-mean heated base-bottom T - T_in) / P"),
        "T_base_max": Quantity(float(t_bottom[heated].max()) - 273.15, "degC"),
        "T_outlet_bulk": Quantity(t_out - 273.15, "degC", "flow-weighted over the outlet face"),
        "T_outlet_energy_check": Quantity(
            t_in - 273.15 + power / (rho * cp * case.flow_rate), "degC", "T_in + P / (rho cp Q)"
        ),
        "T_solid_max": Quantity(
            t_solid_max - 273.15, "degC", "hottest solid point (cell centres and the heated bottom face)"
        ),
        "T_solid_max_location": Quantity(str(where_max), "m"),
        "T_solid_max_cell": Quantity(
            float(T[imax]) - 273.15, "degC", "hottest solid cell centre (the largest value of the temperature field)"
        ),
        "heat_balance_error": Quantity(abs(added - removed) / added, "", "|added - removed| / added"),
        "mass_imbalance": Quantity(float(fi.mass_imbalance), "", "|out - in| / in"),
        "flow_outer_iterations": Quantity(int(fi.iterations)),
        "flow_residual": Quantity(float(fi.residual)),
        "energy_iterations": Quantity(int(ei.iterations), "", "deferred-correction iterations"),
        "energy_inner_iterations": Quantity(int(sol.energy_inner)),
        "energy_residual": Quantity(float(ei.residual)),
        "viscosity_model": Quantity(case.viscosity, "", "coolant viscosity: inlet value, or mu(T) per cell"),
        "coupling_iterations": Quantity(
            int(cpl["iterations"]), "", "flow-energy Picard iterations (1: constant viscosity)"
        ),
        "coupling_viscosity_change": Quantity(
            cpl["viscosity_change"][-1] if cpl["viscosity_change"] else 0.0,
            "",
            "max relative difference of mu(T_final) and the viscosity of the last flow solve (fluid cells)",
        ),
        "cells": Quantity(int(T.size)),
        **geometry_report(g),
    }
    return summary, t_bottom


_REPORT = {
    "stl_triangles": ("", "triangles in the STL file"),
    "solid_fraction": ("", "solid cells' volume / domain volume"),
    "stl_mesh_volume": ("m^3", "volume enclosed by the STL mesh (signed, divergence theorem)"),
    "stl_voxel_volume": ("m^3", "volume of the cells whose centre lies inside the mesh"),
    "stl_volume_error": ("", "voxel volume / mesh volume - 1 (the voxelisation's volume error)"),
}


def geometry_report(g: geo.VoxelGeometry) -> dict[str, Quantity]:
    """Summary entries of how the geometry was made (an STL's solid fraction
    and volume check; nothing for the built-in kinds)."""
    return {k: Quantity(v, *_REPORT[k]) for k, v in g.report.items()}


def cell_velocity(u: np.ndarray, v: np.ndarray, w: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """Cell-centred velocity ``(nx, ny, nz, 3)`` from the MAC face velocities
    (``u`` on x faces ``(nx + 1, ny, nz)``, ``v``, ``w`` likewise): the mean of
    each cell's two faces along each axis, exactly 0 in solid cells."""
    uc = 0.5 * (u[1:] + u[:-1])
    vc = 0.5 * (v[:, 1:] + v[:, :-1])
    wc = 0.5 * (w[:, :, 1:] + w[:, :, :-1])
    return np.where(solid[..., None], 0.0, np.stack([uc, vc, wc], axis=-1))


def solve_curves(case: ColdPlateCase, sol: Solution) -> dict[str, np.ndarray]:
    """R_max, R_mean and the pressure drop at every curve flow (SI arrays
    ``flow``, ``R_max``, ``R_mean``, ``dP``, ``flow_iterations``,
    ``energy_iterations``, ``coupling_iterations``).

    A loop over the flows, each :func:`solve` with the case's grid and
    settings, so one compiled flow and energy program serves every flow (the
    energy solver's line axis is pinned to the one ``sol``, the operating
    point, used; with ``"auto"`` it could otherwise change with the flow and
    compile again). Not vmapped: each flow's solve holds the whole grid's
    fields and multigrid hierarchy (:mod:`thermo.resources`), its iterative
    solves would all run as long as the slowest flow, and with
    ``viscosity = "temperature"`` each flow is a host-side Picard loop. A
    curve flow equal to the operating flow (1e-12 relative) reuses ``sol``.
    Raises :class:`SolveError` naming the flow when a solve does not converge."""
    axis = "xyz"[sol.energy_line_axis]
    out = {k: [] for k in ("flow", "R_max", "R_mean", "dP", "flow_iterations", "energy_iterations",
                           "coupling_iterations")}  # fmt: skip
    for i, q in enumerate(case.curve_flows):
        progress.step("curve flows", i + 1, len(case.curve_flows))
        if abs(q - case.flow_rate) <= 1e-12 * case.flow_rate:
            c, s = case, sol
        else:
            c = dataclasses.replace(case, flow_rate=q, energy_line_axis=axis)
            s = solve(c)
        try:
            check_converged(c, s)
        except SolveError as exc:
            raise SolveError(f"curve flow {q * 6e4:.6g} L/min ([inlet] flow_range): {exc}") from None
        r_max, r_mean, _ = thermal_resistances(c, s)
        out["flow"].append(q)
        out["R_max"].append(r_max)
        out["R_mean"].append(r_mean)
        out["dP"].append(pressure_drop(s))
        out["flow_iterations"].append(int(s.flow_info.iterations))
        out["energy_iterations"].append(int(s.energy_info.iterations))
        out["coupling_iterations"].append(int(s.coupling["iterations"]))
    return {k: np.asarray(v) for k, v in out.items()}


def domain_text(case: ColdPlateCase) -> str:
    """What the modelled domain is, for the curves' metadata: the flow, R and
    dP of a curve are those of this domain."""
    kw = case.geometry
    if case.geometry_kind == "straight_fins":
        if kw.get("unit_cell") == "half":
            return (
                "half a unit cell (half a fin and half a channel, symmetry planes at both mid-planes): a plate "
                "of N channels takes 2N times this flow at this dP, and its R is this R / (2N)"
            )
        if kw.get("unit_cell"):
            return (
                "one unit cell (a channel between two half fins, symmetry planes on y): a plate of N channels "
                "takes N times this flow at this dP, and its R is this R / N (side walls neglected)"
            )
        return f"the whole plate: {kw['channels']} channels between side walls"
    if case.geometry_kind == "pin_fins":
        return f"the whole plate: {kw['rows']} x {kw['columns']} {kw['shape']} pins ({kw['arrangement']}), side walls"
    sides = "symmetry planes" if kw.get("sides") == "symmetry" else "walls"
    return f"the whole voxel domain of the {case.geometry_kind} geometry, y sides {sides}"


def plate_curves(case: ColdPlateCase, case_file: CaseFile, curves: dict, shape: tuple) -> ColdPlateCurves:
    """The solved curves as the shared cold-plate curve type
    (:mod:`aidc_thermo.io.curves`), with the coolant, inlet temperature and
    provenance (case file and its SHA-256, git commit, mesh, geometry kind,
    domain, R and dP definitions)."""
    import hashlib

    from aidc_thermo.io.curves import coolant_label, git_commit
    from aidc_thermo.models.compact import _version

    nx, ny, nz = shape
    power = case.heat_flux * _heated_area(build_geometry(case), case.heated)
    provenance = [
        ("model", f"{CASE_TYPE} (aidc-thermo {_version()})"),
        ("case_file", case_file.path.name),
        ("case_sha256", hashlib.sha256(case_file.text.encode("utf-8")).hexdigest()),
        ("git_commit", git_commit(case_file.path) or "unknown (not in a git work tree)"),
        ("case_name", case.name),
        ("cells", f"{nx} x {ny} x {nz} = {nx * ny * nz} cells"),
        ("geometry", case.geometry_kind),
        ("domain", domain_text(case)),
        ("heat", f"{power:.6g} W ({case.heat_flux:.6g} W/m^2 on the {case.heated.replace('_', ' ')} of the bottom)"),
        (
            "viscosity",
            "mu(T) per fluid cell (Picard-coupled)"
            if case.viscosity == "temperature"
            else "inlet value (constant properties)",
        ),
        (
            "R_definition",
            "(base-bottom temperature - inlet temperature) / heat over the heated bottom; R_max hottest "
            "point, R_mean area mean",
        ),
        (
            "dP_definition",
            "area-mean inlet-face (x-) pressure minus the outlet face (x+), the domain as meshed "
            "(fin field and any plena and cover); ports and manifolds excluded",
        ),
        ("regenerate", f"python -m aidc_thermo run {case_file.path.name} -o OUT; the curves are OUT/curves.csv"),
    ]
    return ColdPlateCurves(
        flow=tuple(float(v) for v in curves["flow"]),
        r_max=tuple(float(v) for v in curves["R_max"]),
        r_mean=tuple(float(v) for v in curves["R_mean"]),
        dp=tuple(float(v) for v in curves["dP"]),
        coolant=coolant_label(case.coolant),
        inlet_temperature=case.inlet_temperature,
        provenance=tuple(provenance),
    )


def case_curves(case: ColdPlateCase, case_file: CaseFile) -> ColdPlateCurves:
    """The plate's curves alone, as ``thermo run`` of the case writes them to
    ``curves.csv``: the operating point solved and checked (convergence and
    the maximum principle, :func:`check_converged`), then every curve flow
    (:func:`solve_curves`, the energy line axis pinned to the operating
    point's), no results folder. What a rack or facility case that names this
    plate by its case (:mod:`aidc_thermo.curve_cache`) hands to its network.
    Raises :class:`SolveError` when a solve fails; the case must have
    ``[inlet] flow_range`` (ValueError otherwise: the curve cache refuses such
    a case before solving). The caller enables JAX's x64 for a float64 case."""
    if not case.curve_flows:
        raise ValueError("the case has no [inlet] flow_range: no curves to solve")
    sol = solve(case)
    check_converged(case, sol)
    curves = solve_curves(case, sol)
    return plate_curves(case, case_file, curves, sol.geometry.shape)


def run(case: ColdPlateCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    sol = solve(case)
    progress.phase("write", ready=(sol.state, sol.flow_info, sol.T, sol.energy_info, sol.heat))
    summary, t_bottom = summarize(case, sol)
    curves = None
    if case.curve_flows:  # every solve before anything is written
        progress.phase("solve")
        curves = solve_curves(case, sol)
        progress.phase("write")
        summary["curve_points"] = Quantity(len(case.curve_flows), "", "flows of curves.csv ([inlet] flow_range)")
    g, st, fi, ei = sol.geometry, sol.state, sol.flow_info, sol.energy_info
    T = np.asarray(sol.T, np.float64)
    u, v, w, p = (np.asarray(a, np.float64) for a in (st.u, st.v, st.w, st.p))
    velocity = cell_velocity(u, v, w, g.solid)
    solid = case.solid_material
    fields = {
        "temperature": Field(T - 273.15, "degC", "temperature"),
        "pressure": Field(p, "Pa", "static pressure (gauge, outlet = 0); 0 in solid"),
        "velocity": Field(
            velocity, "m/s", "cell-centred velocity (x, y, z): mean of the two MAC face velocities; 0 in solid"
        ),
        "material": Field(
            g.material.astype(np.int32),
            "1",
            "part of every cell",
            names=("fluid", f"base ({solid})", f"fin ({solid})", f"cover ({solid})"),
        ),
        "viscosity": Field(
            np.where(g.solid, 0.0, sol.viscosity), "Pa s", "dynamic viscosity of the last flow solve; 0 in solid"
        ),
    }
    fh = np.asarray(fi.history, np.float64)[: int(fi.iterations) + 1]
    eh = np.asarray(ei.history, np.float64)[: int(ei.iterations) + 1]
    write_results(
        folder,
        faces=g.faces,
        fields=fields,
        case_text=case_file.text,
        case_parsed=case.as_dict(),
        solver={
            "flow_iterations": int(fi.iterations),
            "flow_residual_history": fh,
            "flow_momentum_history": np.asarray(fi.momentum_history)[: int(fi.iterations) + 1],
            "flow_continuity_history": np.asarray(fi.continuity_history)[: int(fi.iterations) + 1],
            "energy_iterations": int(ei.iterations),
            "energy_residual_history": eh,
            "energy_inner_iterations": int(sol.energy_inner),
            "coupling_iterations": int(sol.coupling["iterations"]),
            "coupling_pressure_drop_history": np.asarray(sol.coupling["pressure_drop"], np.float64),
            "coupling_r_max_history": np.asarray(sol.coupling["r_max"], np.float64),
            "coupling_viscosity_change_history": np.asarray(sol.coupling["viscosity_change"], np.float64),
        },
        summary=summary,
    )
    append_groups(folder, plot_series(case, sol))
    if curves is not None:
        lpm = 60000.0
        append_groups(folder, {"curves": {
            "flow_Lpm": Series(curves["flow"] * lpm, "L/min", "volumetric flow through the modelled domain"),
            "pressure_drop_kPa": Series(curves["dP"] / 1e3, "kPa", "pressure drop at each curve flow"),
            "R_max_KpW": Series(curves["R_max"], "K/W", "R_max at each curve flow"),
            "R_mean_KpW": Series(curves["R_mean"], "K/W", "R_mean at each curve flow"),
        }})  # fmt: skip
        write_curves(folder / "curves.csv", plate_curves(case, case_file, curves, g.shape))
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary


def wall_profiles(case: ColdPlateCase, sol: Solution) -> dict[str, np.ndarray]:
    """Quantities along the flow (per x cell), SI: ``x``; ``pressure`` (fluid
    area mean); ``T_bulk`` (flow-weighted fluid temperature); ``T_wall`` (area
    mean over the fluid-solid faces of the slab, each face's temperature from
    the two cells' conductances); ``q_wall`` (heat into the fluid through
    them, W); ``area_wall`` (m^2); ``h`` = ``q_wall / (area_wall (T_wall -
    T_bulk))`` (NaN where a slab has no wetted wall); ``T_base_max`` (hottest
    base-bottom point)."""
    g = sol.geometry
    T = np.asarray(sol.T, np.float64)
    P = np.asarray(sol.state.p, np.float64)
    u = np.asarray(sol.state.u, np.float64)
    fluid = g.material == geo.FLUID
    k_f = float(case.coolant.conductivity(case.inlet_temperature))
    k = np.where(fluid, k_f, case.solid_k)
    d = [np.diff(f) for f in g.faces]
    nx = T.shape[0]
    q_x, a_x, ta_x = np.zeros(nx), np.zeros(nx), np.zeros(nx)
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        shape = [1, 1, 1]
        shape[axis] = -1
        half = 0.5 * d[axis].reshape(shape)
        others = [d[a].reshape([-1 if b == a else 1 for b in range(3)]) for a in range(3) if a != axis]
        area = np.broadcast_to(others[0] * others[1], T.shape)
        f1, f2 = fluid[lo], fluid[hi]
        wall = f1 != f2
        if not wall.any():
            continue
        h1, h2 = np.broadcast_to(half, T.shape)[lo], np.broadcast_to(half, T.shape)[hi]
        r1, r2 = h1 / k[lo], h2 / k[hi]
        a = area[lo]
        # heat from cell 1 to cell 2, then signed into the fluid
        q12 = a * (T[lo] - T[hi]) / (r1 + r2)
        q_f = np.where(f2, q12, -q12)
        t_face = T[lo] - q12 / a * r1
        xi = np.broadcast_to(np.arange(nx).reshape([-1, 1, 1]), T.shape)
        if axis == 0:
            xf_idx = np.where(f1, xi[lo], xi[hi])
        else:
            xf_idx = xi[lo]
        sel = wall
        np.add.at(q_x, xf_idx[sel], q_f[sel])
        np.add.at(a_x, xf_idx[sel], a[sel])
        np.add.at(ta_x, xf_idx[sel], (t_face * a)[sel])
    dA = (d[1][:, None] * d[2][None, :])[None] * fluid
    uc = 0.5 * (u[1:] + u[:-1]) * dA
    p_mean = (P * dA).sum(axis=(1, 2)) / dA.sum(axis=(1, 2))
    t_bulk = (T * uc).sum(axis=(1, 2)) / uc.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        t_wall = np.where(a_x > 0, ta_x / np.where(a_x > 0, a_x, 1.0), np.nan)
        h = np.where(a_x > 0, q_x / (np.where(a_x > 0, a_x, 1.0) * (t_wall - t_bulk)), np.nan)
    return {
        "x": g.centers(0),
        "pressure": p_mean,
        "T_bulk": t_bulk,
        "T_wall": t_wall,
        "q_wall": q_x,
        "area_wall": a_x,
        "h": h,
        "T_base_max": bottom_temperature(case, sol).max(axis=1),
    }


def cross_section(sol: Solution) -> dict[str, np.ndarray]:
    """The y-z section at mid-length of the fin field (for pins: through the
    pin row nearest to it, within a tenth of the fin field): ``x`` (m),
    ``y_faces``, ``z_faces``, ``temperature`` (K), ``velocity_x`` (m/s,
    cell-centred axial velocity) and ``material`` (0 fluid)."""
    g = sol.geometry
    xc = g.centers(0)
    mid = 0.5 * (g.fin_field[0] + g.fin_field[1])
    near = np.abs(xc - mid) <= 0.1 * (g.fin_field[1] - g.fin_field[0])
    above = g.centers(2) > g.base_top
    solid = (g.solid[:, :, above]).sum(axis=(1, 2))
    if near.any():
        best = near & (solid == solid[near].max())
        i = int(np.flatnonzero(best)[np.argmin(np.abs(xc[best] - mid))])
    else:
        i = int(np.argmin(np.abs(xc - mid)))
    u = np.asarray(sol.state.u, np.float64)
    return {
        "x": np.asarray(xc[i]),
        "y_faces": np.asarray(g.faces[1], np.float64),
        "z_faces": np.asarray(g.faces[2], np.float64),
        "temperature": np.asarray(sol.T, np.float64)[i],
        "velocity_x": 0.5 * (u[i] + u[i + 1]),
        "material": g.material[i].astype(np.int8),
    }


_PROFILE_UNITS = {
    "x": ("m", "cell centres along the flow"),
    "pressure": ("Pa", "fluid area-mean static pressure per cross-section"),
    "T_bulk": ("degC", "flow-weighted fluid temperature per cross-section"),
    "T_wall": ("degC", "area-mean temperature of the fluid-solid faces per slab"),
    "q_wall": ("W", "heat into the fluid through the walls of the slab"),
    "area_wall": ("m^2", "wetted wall area of the slab"),
    "h": ("W/m^2/K", "local heat-transfer coefficient q_wall / (area_wall (T_wall - T_bulk))"),
    "T_base_max": ("degC", "hottest base-bottom point per x"),
}
_SECTION_UNITS = {
    "x": ("m", "position of the mid-length cross-section"),
    "y_faces": ("m", "face coordinates"),
    "z_faces": ("m", "face coordinates"),
    "temperature": ("degC", "temperature in the cross-section"),
    "velocity_x": ("m/s", "axial velocity in the cross-section"),
    "material": ("1", "0 fluid, 1 base, 2 fin, 3 cover"),
}


def _series(values, units: str, description: str) -> Series:
    """A plot series; temperatures are computed in K and stored in degC, as every
    temperature in results.h5."""
    return Series(np.asarray(values) - 273.15 if units == "degC" else values, units, description)


def plot_series(case: ColdPlateCase, sol: Solution, stacked: list | None = None) -> dict:
    """The groups the plots read beyond the fields: ``base`` (bottom-face
    temperature map and heated mask), ``profiles`` (:func:`wall_profiles`)
    and ``cross_section`` (:func:`cross_section`). ``stacked`` (a list of
    ``(case, solution)``) stacks profiles and sections along a leading axis
    (the calibration's Reynolds numbers) and leaves out ``base``."""
    if stacked is None:
        prof, sec = wall_profiles(case, sol), cross_section(sol)
        base = {
            "base": {
                "bottom_temperature": Series(
                    bottom_temperature(case, sol) - 273.15, "degC", "base bottom-face temperature"
                ),
                "heated": Series((sol.flux_map > 0).astype(np.int8), "1", "1 where the bottom is heated"),
            }
        }
    else:
        profs = [wall_profiles(c, s) for c, s in stacked]
        secs = [cross_section(s) for _, s in stacked]
        prof = {k: np.stack([p[k] for p in profs]) for k in profs[0]}
        per_re = ("temperature", "velocity_x")
        sec = {k: (np.stack([s[k] for s in secs]) if k in per_re else secs[0][k]) for k in secs[0]}
        base = {}
    return {
        **base,
        "profiles": {k: _series(v, *_PROFILE_UNITS[k]) for k, v in prof.items()},
        "cross_section": {k: _series(v, *_SECTION_UNITS[k]) for k, v in sec.items()},
    }
