"""``package_stack`` cases: steady conduction through a chip package.

The stack is a pile of layers from the active side of the die (z = 0, where
the heat is generated) up to the cold side (the top face, cooled by a fluid at
a heat transfer coefficient or held at a temperature). Each layer has a fill
material and optional rectangular blocks of other materials (the die and the
HBM stacks in the bottom layer, say). Heat enters on the bottom face through
rectangles or tabulated power maps, each inside a block of the bottom layer.
Side faces are insulated; the bottom face is insulated unless a ``[bottom]``
table gives a convective path to the board.

Reported: junction temperature (the bottom face of the heated blocks, i.e.
the active side of the die), its maximum and mean, the junction-to-coolant
thermal resistance ``(T_j,max - T_coolant) / P``, and the heat balance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aidc_thermo import bounds, progress, resources
from aidc_thermo.compile_options import jit
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseError, CaseFile, Table, read_header, read_plots_flag, read_tolerance
from aidc_thermo.io.power_maps import read_map, source_power
from aidc_thermo.io.results import Field, Quantity, Series, append_groups, write_results
from aidc_thermo.materials import material_library
from aidc_thermo.models import precision_dtype
from aidc_thermo.models.protocol import Output

__all__ = ["StackCase", "Static", "Params", "Solution", "parse", "build", "solve", "report", "check", "screen",
           "stack_params", "run", "CASE_TYPE"]  # fmt: skip

CASE_TYPE = "package_stack"


# ----------------------------------------------------------------------------- case


@dataclass(frozen=True)
class Block:
    name: str
    material: str
    rect: tuple[float, float, float, float]  # x0, y0, x1, y1 (m)


@dataclass(frozen=True)
class Layer:
    name: str
    material: str
    thickness: float  # m
    cells: int
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class HeatSource:
    name: str
    block: str
    rect: tuple[float, float, float, float]
    power: float  # W
    map: tuple[tuple[float, ...], ...] | None  # relative weights, rows along y from y0


@dataclass(frozen=True)
class Surface:
    kind: str  # "convective", "temperature" or "insulated"
    h: float  # W/m^2/K
    temperature: float  # K


@dataclass(frozen=True)
class SolverSettings:
    precision: str
    tolerance: float
    max_iterations: int


@dataclass(frozen=True)
class StackCase:
    name: str
    description: str
    size: tuple[float, float]
    cells: tuple[int, int]
    materials: dict
    layers: tuple[Layer, ...]
    heat: tuple[HeatSource, ...]
    cold_side: Surface
    bottom: Surface
    solver: SolverSettings
    plots: bool

    @property
    def total_power(self) -> float:
        return sum(h.power for h in self.heat)

    def as_dict(self) -> dict:
        return asdict(self)


_REQUIRED = object()


def _rect(t: Table, key: str, size, default=_REQUIRED):
    if default is _REQUIRED:
        r = t.quantities(key, "length", length=4, nonnegative=True)
    else:
        r = t.quantities(key, "length", length=4, default=default, nonnegative=True)
    if r is None:
        return None
    x0, y0, x1, y1 = r
    if not (x1 > x0 and y1 > y0):
        raise t.error(key, f"rect is [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got {t.raw(key)}")
    if x1 > size[0] * (1 + 1e-12) or y1 > size[1] * (1 + 1e-12):
        raise t.error(
            key,
            f"rect {t.raw(key)} extends outside the domain [0, 0, {size[0] * 1e3:g} mm, {size[1] * 1e3:g} mm]",
        )
    return (x0, y0, x1, y1)


def _inside(inner, outer, tol=1e-12):
    return (
        inner[0] >= outer[0] - tol
        and inner[1] >= outer[1] - tol
        and inner[2] <= outer[2] + tol
        and inner[3] <= outer[3] + tol
    )


def parse(case: CaseFile) -> StackCase:
    """Read a ``package_stack`` case; raises CaseError on any problem."""
    root = Table(case.data, case.path)
    name, description = read_header(root, CASE_TYPE)

    user_materials = {}
    mt = root.table("materials", default=None)
    if mt is not None:
        for key in list(mt.data):
            user_materials[key] = mt.quantity(key, "thermal_conductivity", positive=True)
        mt.finish()
    library = material_library(user_materials)

    def material(t: Table, key: str) -> str:
        return t.string(key, choices=tuple(sorted(library)))

    dom = root.table("domain")
    size = dom.quantities("size", "length", length=2, positive=True)
    cells = dom.integers("cells", 2, minimum=1)
    dom.finish()

    layers = []
    names = set()
    for lt in root.tables("layers", min_count=1):
        lname = lt.string("name")
        if lname in names:
            raise lt.error("name", f"layer name {lname!r} is used twice")
        names.add(lname)
        blocks = []
        for bt in lt.tables("blocks", default=[]):
            blocks.append(Block(bt.string("name"), material(bt, "material"), _rect(bt, "rect", size)))
            bt.finish()
        for i, a in enumerate(blocks):
            for b in blocks[i + 1 :]:
                if min(a.rect[2], b.rect[2]) > max(a.rect[0], b.rect[0]) and min(a.rect[3], b.rect[3]) > max(
                    a.rect[1], b.rect[1]
                ):
                    raise lt.error("blocks", f"blocks {a.name!r} and {b.name!r} overlap")
        layers.append(
            Layer(
                lname,
                material(lt, "material"),
                lt.quantity("thickness", "length", positive=True),
                lt.integer("cells", default=1, minimum=1),
                tuple(blocks),
            )
        )
        lt.finish()

    bottom_blocks = {b.name: b for b in layers[0].blocks}
    heat = []
    for ht in root.tables("heat", min_count=1):
        bname = ht.string("block")
        if bname not in bottom_blocks:
            valid = ", ".join(map(repr, bottom_blocks)) or "none (the bottom layer has no blocks)"
            raise ht.error("block", f"no block {bname!r} in the bottom layer; blocks there: {valid}")
        block = bottom_blocks[bname]
        rect = _rect(ht, "rect", size, default=None) or block.rect
        if not _inside(rect, block.rect):
            raise ht.error("rect", f"heat source extends outside block {bname!r} (rect {list(block.rect)} m)")
        area = (rect[2] - rect[0]) * (rect[3] - rect[1])
        if ht.has("power") == ht.has("flux"):
            raise ht.error(None, "give exactly one of 'power' (W) or 'flux' (W/m^2)")
        if ht.has("power"):
            power = ht.quantity("power", "power", nonnegative=True)
        else:
            power = ht.quantity("flux", "heat_flux", nonnegative=True) * area
        heat.append(
            HeatSource(
                ht.string("name", default=bname),
                bname,
                rect,
                power,
                read_map(ht, "map", case.directory),
            )
        )
        ht.finish()
    if sum(h.power for h in heat) <= 0:
        raise root.error("heat", "total heat input must be positive")

    cold = root.table("cold_side")
    ckind = cold.string("type", choices=("convective", "temperature"))
    if ckind == "convective":
        cold_side = Surface(
            ckind,
            cold.quantity("h", "heat_transfer_coefficient", positive=True),
            cold.quantity("temperature", "temperature", positive=True),
        )
    else:
        cold_side = Surface(ckind, 0.0, cold.quantity("temperature", "temperature", positive=True))
    cold.finish()

    bottom = Surface("insulated", 0.0, 0.0)
    bt = root.table("bottom", default=None)
    if bt is not None:
        bkind = bt.string("type", choices=("insulated", "convective"))
        if bkind == "convective":
            bottom = Surface(
                bkind,
                bt.quantity("h", "heat_transfer_coefficient", positive=True),
                bt.quantity("temperature", "temperature", positive=True),
            )
        bt.finish()

    st = root.table("solver", default={})
    precision = st.string("precision", default="float64", choices=("float64", "float32"))
    solver = SolverSettings(
        precision,
        read_tolerance(st, "tolerance", precision, default=1e-10 if precision == "float64" else 1e-5, maximum=1e-2),
        st.integer("max_iterations", default=200, minimum=1),
    )
    st.finish()

    plots = read_plots_flag(root)
    root.finish()
    _require_memory(case.path, cells, layers, solver)

    nx_min = len(_breakpoints(0, size[0], layers, heat)) - 1
    ny_min = len(_breakpoints(1, size[1], layers, heat)) - 1
    if cells[0] < nx_min or cells[1] < ny_min:
        raise CaseError(
            case.path,
            "domain.cells",
            f"too few cells for the geometry: the block and heat-source edges need at least "
            f"[{nx_min}, {ny_min}], got {list(cells)}",
        )
    return StackCase(
        name,
        description,
        tuple(size),
        tuple(cells),
        user_materials,
        tuple(layers),
        tuple(heat),
        cold_side,
        bottom,
        solver,
        plots,
    )


def _require_memory(path, cells, layers, solver: SolverSettings) -> None:
    """Refuse (CaseError) a grid that cannot fit, before any array exists."""
    nz = sum(layer.cells for layer in layers)
    keys = ("domain.cells", "layers[].cells") if max(cells) >= nz else ("layers[].cells", "domain.cells")
    n = resources.require_count(path, keys, cells[0] * cells[1] * nz, "cells")
    per_cell = resources.BYTES_PER_UNIT[CASE_TYPE]
    resources.require_memory(
        path,
        CASE_TYPE,
        [
            (keys, n * per_cell,
             f"{cells[0]} x {cells[1]} x {nz} = {n:,} cells x {per_cell} B per cell"),
            ("solver.max_iterations", resources.history_bytes(solver.max_iterations), "residual history"),
        ],
    )  # fmt: skip


# ----------------------------------------------------------------------------- grid


def _breakpoints(axis, length, layers, heat):
    pts = {0.0, length}
    for layer in layers:
        for b in layer.blocks:
            pts.update((b.rect[axis], b.rect[axis + 2]))
    for h in heat:
        pts.update((h.rect[axis], h.rect[axis + 2]))
    pts = np.array(sorted(pts))
    keep = np.concatenate([[True], np.diff(pts) > 1e-9 * length])
    return pts[keep]


def _lateral_faces(axis, length, n, layers, heat) -> np.ndarray:
    """Faces along x or y: every block and source edge is a face; cells are
    shared among the intervals in proportion to their length (largest
    remainder), at least one per interval."""
    pts = _breakpoints(axis, length, layers, heat)
    widths = np.diff(pts)
    m = len(widths)
    share = (n - m) * widths / widths.sum()
    counts = 1 + np.floor(share).astype(int)
    remainder = n - counts.sum()
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    counts[order[:remainder]] += 1
    faces = [pts[0]]
    for a, w, c in zip(pts[:-1], widths, counts, strict=True):
        faces.extend(a + w * np.arange(1, c + 1) / c)
    faces = np.array(faces)
    faces[-1] = length
    return faces


def _vertical_faces(layers) -> np.ndarray:
    faces = [0.0]
    for layer in layers:
        faces.extend(faces[-1] + layer.thickness * np.arange(1, layer.cells + 1) / layer.cells)
    return np.array(faces)


@dataclass(frozen=True)
class Discretization:
    faces: tuple[np.ndarray, np.ndarray, np.ndarray]
    material_names: tuple[str, ...]
    material_map: np.ndarray  # int (nx, ny, nz)
    k_table: np.ndarray  # W/m/K per material index
    bottom_flux: np.ndarray  # W/m^2 into the domain, (nx, ny)
    junction_mask: np.ndarray  # bool (nx, ny): bottom cells under a heated block
    layer_of_z: np.ndarray  # layer index per z cell


def discretize(case: StackCase) -> Discretization:
    xf = _lateral_faces(0, case.size[0], case.cells[0], case.layers, case.heat)
    yf = _lateral_faces(1, case.size[1], case.cells[1], case.layers, case.heat)
    zf = _vertical_faces(case.layers)
    xc, yc = 0.5 * (xf[1:] + xf[:-1]), 0.5 * (yf[1:] + yf[:-1])
    library = material_library(case.materials)
    used = sorted({m for layer in case.layers for m in [layer.material] + [b.material for b in layer.blocks]})
    index = {m: i for i, m in enumerate(used)}
    nx, ny, nz = len(xc), len(yc), len(zf) - 1
    mat = np.zeros((nx, ny, nz), np.int32)
    layer_of_z = np.zeros(nz, np.int32)
    z0 = 0
    for li, layer in enumerate(case.layers):
        plane = np.full((nx, ny), index[layer.material], np.int32)
        for b in layer.blocks:
            inx = (xc > b.rect[0]) & (xc < b.rect[2])
            iny = (yc > b.rect[1]) & (yc < b.rect[3])
            plane[np.ix_(inx, iny)] = index[b.material]
        mat[:, :, z0 : z0 + layer.cells] = plane[:, :, None]
        layer_of_z[z0 : z0 + layer.cells] = li
        z0 += layer.cells

    area = np.diff(xf)[:, None] * np.diff(yf)[None, :]
    power = np.zeros((nx, ny))
    for h in case.heat:
        power += source_power(xf, yf, h.rect, h.power, h.map)
    flux = power / area
    junction = np.zeros((nx, ny), bool)
    for h in case.heat:
        b = next(b for b in case.layers[0].blocks if b.name == h.block)
        inx = (xc > b.rect[0]) & (xc < b.rect[2])
        iny = (yc > b.rect[1]) & (yc < b.rect[3])
        junction[np.ix_(inx, iny)] = True
    k_table = np.array([library[m].k for m in used])
    return Discretization((xf, yf, zf), tuple(used), mat, k_table, flux, junction, layer_of_z)


# ----------------------------------------------------------------------------- solve


# JAX and the kernels are imported in the functions that solve, so that reading
# a case (thermo check) starts no JAX.


# ----------------------------------------------------------------------------- protocol: build, solve, report, check

PROTOCOL = True

_PARAM_FIELDS = ("k_table", "bottom_flux", "h_top", "t_top", "h_bottom", "t_bottom")


@dataclass(frozen=True)
class Static:
    """What fixes array shapes and the compiled program (hashable)."""

    faces: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]
    shape: tuple[int, int, int]
    material_map: tuple[int, ...]  # flattened (nx, ny, nz) material indices
    junction_mask: tuple[bool, ...]  # flattened (nx, ny): bottom cells under a heated block
    top_kind: str  # "convective" or "temperature"
    bottom_kind: str  # "convective" or "insulated"
    precision: str
    tolerance: float
    max_iterations: int

    @property
    def dtype(self):
        import jax.numpy as jnp

        return jnp.float64 if self.precision == "float64" else jnp.float32


@dataclass(frozen=True)
class Params:
    """Every sweepable number of a package stack, SI: conductivity per
    material (in ``Discretization.material_names`` order), the bottom heat
    flux map (the powers), the cold side's h and temperature, the board's."""

    k_table: object  # (n_materials,) W/m/K
    bottom_flux: object  # (nx, ny) W/m^2
    h_top: object
    t_top: object  # K
    h_bottom: object
    t_bottom: object  # K


def _register(cls, names):
    import jax

    if not getattr(cls, "_registered", False):
        jax.tree_util.register_dataclass(cls, data_fields=list(names), meta_fields=[])
        cls._registered = True
    return cls


def build(case: StackCase, disc: Discretization | None = None) -> tuple[Static, Params]:
    disc = disc or discretize(case)
    static = Static(
        faces=tuple(tuple(float(v) for v in f) for f in disc.faces),
        shape=tuple(int(n) for n in disc.material_map.shape),
        material_map=tuple(int(v) for v in disc.material_map.ravel()),
        junction_mask=tuple(bool(v) for v in disc.junction_mask.ravel()),
        top_kind="convective" if case.cold_side.kind == "convective" else "temperature",
        bottom_kind="convective" if case.bottom.kind == "convective" else "insulated",
        precision=case.solver.precision,
        tolerance=float(case.solver.tolerance),
        max_iterations=int(case.solver.max_iterations),
    )
    f64 = np.float64
    params = _register(Params, _PARAM_FIELDS)(
        k_table=np.asarray(disc.k_table, f64),
        bottom_flux=np.asarray(disc.bottom_flux, f64),
        h_top=f64(case.cold_side.h),
        t_top=f64(case.cold_side.temperature),
        h_bottom=f64(case.bottom.h),
        t_bottom=f64(case.bottom.temperature),
    )
    return static, params


def stack_params(designs) -> Params:
    """Stack the ``Params`` of designs with equal ``Static`` along a new leading axis."""
    return _register(Params, _PARAM_FIELDS)(
        **{f: np.stack([np.asarray(getattr(p, f)) for p in designs]) for f in _PARAM_FIELDS}
    )


@dataclass(frozen=True)
class Solution:
    T: object  # (nx, ny, nz) K
    info: object  # SolveInfo of the multigrid-preconditioned solve
    heat_in: object
    heat_out: object
    t_junction: object  # (nx, ny) K, bottom face


def solve(static: Static, params: Params) -> Solution:
    """The conduction solve: pure, jit-able, vmap-able over ``params``."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import conduction, linsolve
    from aidc_thermo.kernels.fv.grid import grid_from_faces

    _register(Solution, Solution.__dataclass_fields__)
    dtype = static.dtype
    grid = grid_from_faces(*static.faces, dtype=dtype)
    mat = jnp.asarray(np.asarray(static.material_map, np.int32).reshape(static.shape))
    flux = jnp.asarray(params.bottom_flux, dtype)
    faces = {name: conduction.face_bc(grid, name, dtype=dtype) for name, _, _ in conduction.FACES}
    bottom = conduction.CONVECTIVE if static.bottom_kind == "convective" else conduction.FLUX
    faces["z_lo"] = conduction.face_bc(grid, "z_lo", bottom, h=params.h_bottom, value=params.t_bottom, flux=flux,
                                       dtype=dtype)  # fmt: skip
    top = conduction.CONVECTIVE if static.top_kind == "convective" else conduction.TEMPERATURE
    faces["z_hi"] = conduction.face_bc(grid, "z_hi", top, h=params.h_top, value=params.t_top, dtype=dtype)
    bcs = conduction.BoundaryConditions(**faces)
    config = linsolve.MultigridConfig(tol=static.tolerance, max_iterations=static.max_iterations)
    k = jnp.asarray(params.k_table, dtype)[mat]
    T, info = conduction.solve(grid, k, jnp.zeros_like(k), bcs, config)
    heat_in, heat_out = conduction.heat_balance(grid, k, jnp.zeros_like(k), bcs, T)
    # bottom face: the bottom cell plus the prescribed flux across its lower half (series with the board if convective)
    k0 = k[:, :, 0]
    r_half = 0.5 * grid.dz[0] / k0
    t_face = T[:, :, 0] + flux * r_half
    if static.bottom_kind == "convective":
        r_ext = 1.0 / jnp.asarray(params.h_bottom, dtype)
        t_face = (T[:, :, 0] * r_ext + params.t_bottom * r_half + flux * r_half * r_ext) / (r_half + r_ext)
    return Solution(T, info, heat_in, heat_out, t_face)


def report(static: Static, params: Params, solution: Solution) -> dict[str, Output]:
    """Summary numbers (arrays, batched when ``params`` is)."""
    import jax.numpy as jnp

    s = solution
    nx, ny, _ = static.shape
    mask = jnp.asarray(np.asarray(static.junction_mask, bool).reshape(nx, ny))
    tj = s.t_junction
    tj_max = jnp.max(jnp.where(mask, tj, -jnp.inf), axis=(-2, -1))
    tj_mean = jnp.sum(jnp.where(mask, tj, 0.0), axis=(-2, -1)) / float(np.sum(static.junction_mask))
    flat = jnp.argmax(jnp.where(mask, tj, -jnp.inf).reshape(*tj.shape[:-2], nx * ny), axis=-1)
    xc = [0.5 * (np.asarray(f[1:]) + np.asarray(f[:-1])) for f in static.faces[:2]]
    area = np.diff(static.faces[0])[:, None] * np.diff(static.faces[1])[None, :]
    power = jnp.sum(params.bottom_flux * area, axis=(-2, -1))
    t_cool = params.t_top
    heat_in, heat_out = s.heat_in, s.heat_out
    t_max = jnp.max(s.T, axis=(-3, -2, -1))
    t_min = jnp.min(s.T, axis=(-3, -2, -1))
    ok = s.info.converged & jnp.isfinite(t_max) & jnp.isfinite(t_min)
    return {
        "total_power": Output(power, "W", "heat into the bottom face"),
        "T_junction_max": Output(tj_max - 273.15, "degC", "hottest point of the heated blocks' bottom face"),
        "T_junction_mean": Output(tj_mean - 273.15, "degC", "area mean over the heated blocks' bottom face"),
        "hotspot_x": Output(jnp.asarray(xc[0])[flat // ny], "m", "x of the hottest junction cell"),
        "hotspot_y": Output(jnp.asarray(xc[1])[flat % ny], "m", "y of the hottest junction cell"),
        "R_junction_to_coolant": Output((tj_max - t_cool) / power, "K/W", "(T_j,max - T_coolant) / P"),
        "R_junction_to_coolant_mean": Output((tj_mean - t_cool) / power, "K/W", "(T_j,mean - T_coolant) / P"),
        "T_max": Output(t_max - 273.15, "degC", "hottest cell centre"),
        "T_min": Output(t_min - 273.15, "degC", "coldest cell centre"),
        "heat_in": Output(heat_in, "W", "heat into the domain"),
        "heat_out": Output(heat_out, "W", "heat out of the domain"),
        "heat_balance_error": Output(jnp.abs(heat_in - heat_out) / heat_in, "", "|in - out| / in"),
        "solver_iterations": Output(s.info.iterations, "", "multigrid-preconditioned iterations"),
        "solver_residual": Output(s.info.residual, "", "relative 2-norm residual"),
        "converged": Output(ok, "", "the conduction solve converged to finite values"),
        "iterations": Output(s.info.iterations, "", "largest inner iteration count"),
    }


def _sinks(static: Static, params) -> list[float]:
    return [float(params.t_top)] + ([float(params.t_bottom)] if static.bottom_kind == "convective" else [])


def screen(static: Static, params: Params, outputs: dict) -> str:
    """Why one design of a sweep is not a result ("" when it is), from its report outputs."""
    if not bool(outputs["converged"]):
        return (
            f"conduction solve did not converge: relative residual {float(outputs['solver_residual']):.3e} after "
            f"{int(outputs['solver_iterations'])} iterations (tolerance {static.tolerance:g}, limit "
            f"{static.max_iterations})"
        )
    if np.any(np.asarray(params.bottom_flux) < 0):
        return ""
    t = np.asarray([float(outputs["T_min"]), float(outputs["T_max"])]) + 273.15
    try:
        bounds.check("temperature", t, lower=min(_sinks(static, params)),
                     lower_why="the coldest exterior temperature (heat is only added)",
                     locate=lambda _i: "the coldest or hottest cell", precision=static.precision)  # fmt: skip
    except SolveError as exc:
        return str(exc)
    return ""


def check(static: Static, params: Params, solution: Solution, case=None, disc=None) -> None:
    """Convergence and finite values, then the maximum principle on the field
    (:func:`check_bounded`); one unbatched design; raises :class:`SolveError`."""
    from types import SimpleNamespace

    info = solution.info
    T = np.asarray(solution.T, np.float64)
    if not bool(info.converged) or not np.all(np.isfinite(T)):
        raise SolveError(
            f"conduction solve did not converge: relative residual {float(info.residual):.3e} "
            f"after {int(info.iterations)} iterations (tolerance {static.tolerance:g}); "
            "try more [solver] max_iterations, a looser tolerance or float64"
        )
    if case is None:
        case = SimpleNamespace(
            cold_side=SimpleNamespace(temperature=float(params.t_top)),
            bottom=SimpleNamespace(kind=static.bottom_kind, temperature=float(params.t_bottom)),
            solver=SimpleNamespace(precision=static.precision),
        )
    if disc is None:
        disc = SimpleNamespace(
            bottom_flux=np.asarray(params.bottom_flux), faces=tuple(np.asarray(f) for f in static.faces)
        )
    check_bounded(case, disc, T)


# ----------------------------------------------------------------------------- outputs


def junction_temperature(case: StackCase, disc: Discretization, T: np.ndarray) -> np.ndarray:
    """Temperature of the bottom face (z = 0), K, shape (nx, ny): the bottom
    cell's centre value plus the prescribed flux across its lower half."""
    k = disc.k_table[disc.material_map[:, :, 0]]
    dz0 = disc.faces[2][1] - disc.faces[2][0]
    t_face = T[:, :, 0] + disc.bottom_flux * 0.5 * dz0 / k
    if case.bottom.kind == "convective":
        # the face sits between the cell and the board: solve the two resistances in series
        r_half = 0.5 * dz0 / k
        r_ext = 1.0 / case.bottom.h
        t_face = (T[:, :, 0] * r_ext + case.bottom.temperature * r_half + disc.bottom_flux * r_half * r_ext) / (
            r_half + r_ext
        )
    return t_face


def check_bounded(case: StackCase, disc: Discretization, T: np.ndarray) -> None:
    """The maximum principle (:mod:`thermo.bounds`): with only heat added on
    the bottom face, no cell is colder than the coldest exterior temperature
    (the cold side, and the board below when the bottom is convective).
    Raises :class:`SolveError` otherwise."""
    if np.any(disc.bottom_flux < 0):
        return  # a heat sink on the bottom: the bound does not hold
    sinks = [case.cold_side.temperature] + ([case.bottom.temperature] if case.bottom.kind == "convective" else [])
    bounds.check(
        "temperature",
        T,
        lower=min(sinks),
        lower_why="the coldest exterior temperature (heat is only added)",
        locate=bounds.grid_locator(disc.faces),
        precision=case.solver.precision,
    )


def run(case: StackCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    """Solve and write the results into ``folder`` (a fresh, empty folder):
    build -> jit(solve) -> check -> report -> write."""

    progress.phase("build")
    precision_dtype(case.solver.precision)
    disc = discretize(case)
    static, params = build(case, disc)
    progress.phase("solve")
    sol = jit(solve, static_argnums=0)(static, params)
    progress.phase("write", ready=sol)
    T = np.asarray(sol.T, np.float64)
    check(static, params, sol, case=case, disc=disc)
    rep = report(static, params, sol)
    out = {k: np.asarray(v.value).item() for k, v in rep.items()}
    history = np.asarray(sol.info.history, np.float64)
    iterations = int(out["solver_iterations"])
    tj = junction_temperature(case, disc, T)
    power = case.total_power

    def q(key, unit=None):
        r = rep[key]
        return Quantity(float(out[key]), r.units if unit is None else unit, r.description)

    summary = {
        "case": Quantity(case.name),
        "total_power": Quantity(power, "W", "heat into the bottom face"),
        "T_junction_max": q("T_junction_max"),
        "T_junction_mean": q("T_junction_mean"),
        "hotspot_x": Quantity(float(out["hotspot_x"]), "m"),
        "hotspot_y": Quantity(float(out["hotspot_y"]), "m"),
        "T_coolant": Quantity(case.cold_side.temperature - 273.15, "degC", "cold-side fluid or wall temperature"),
        "R_junction_to_coolant": q("R_junction_to_coolant"),
        "R_junction_to_coolant_mean": q("R_junction_to_coolant_mean"),
        "T_max": q("T_max"),
        "heat_in": Quantity(float(out["heat_in"]), "W"),
        "heat_out": Quantity(float(out["heat_out"]), "W"),
        "heat_balance_error": q("heat_balance_error"),
        "solver_converged": Quantity(True),
        "solver_iterations": Quantity(iterations),
        "solver_residual": q("solver_residual"),
        "cells": Quantity(int(T.size)),
    }
    k_field = disc.k_table[disc.material_map]
    fields = {
        "temperature": Field(T - 273.15, "degC", "cell-centre temperature"),
        "conductivity": Field(k_field, "W/m/K", "thermal conductivity"),
        "material": Field(disc.material_map.astype(np.int32), "1", "material of every cell", names=disc.material_names),
    }
    write_results(
        folder,
        faces=disc.faces,
        fields=fields,
        case_text=case_file.text,
        case_parsed=case.as_dict(),
        solver={
            "iterations": iterations,
            "residual": float(out["solver_residual"]),
            "converged": True,
            "residual_history": history[: iterations + 1],
            "tolerance": case.solver.tolerance,
        },
        summary=summary,
    )
    append_groups(folder, plot_series(case, disc, T, tj))
    if case.plots:
        from aidc_thermo.plots.figures import plot_results  # matplotlib only when plotting

        plot_results(folder)
    return summary


def plot_series(case: StackCase, disc: Discretization, T: np.ndarray, tj: np.ndarray) -> dict:
    """What the plots need beyond the fields: the junction (bottom-face)
    temperature map, the temperature of each block of the bottom layer (each
    die, each HBM stack) and a layer-by-layer resistance stack-up.

    Stack-up: at every layer interface the heat-flux-weighted mean temperature
    ``T_q = sum(T_face q dA) / sum(q dA)`` (vertical conduction flux ``q``);
    a layer's resistance is the drop of ``T_q`` across it over the total
    power, the cold side's is ``(T_q(top) - T_coolant) / P``. The entries sum
    exactly to ``(T_q(bottom) - T_coolant) / P``, the junction-to-coolant
    resistance of the heat-weighted mean junction temperature."""
    xf, yf, zf = disc.faces
    dx, dy, dz = np.diff(xf), np.diff(yf), np.diff(zf)
    area = dx[:, None] * dy[None, :]
    xc, yc = 0.5 * (xf[1:] + xf[:-1]), 0.5 * (yf[1:] + yf[:-1])
    k = disc.k_table[disc.material_map]
    power = case.total_power
    names, t_max, t_mean, p_block = [], [], [], []
    for b in case.layers[0].blocks:
        inside = ((xc > b.rect[0]) & (xc < b.rect[2]))[:, None] & ((yc > b.rect[1]) & (yc < b.rect[3]))[None, :]
        if not inside.any():
            continue
        names.append(b.name)
        t_max.append(float(tj[inside].max()))
        t_mean.append(float((tj * area)[inside].sum() / area[inside].sum()))
        p_block.append(sum(h.power for h in case.heat if h.block == b.name))

    def weighted(t_face, q):
        w = q * area
        return float((t_face * w).sum() / w.sum())

    # interface planes: the bottom face, each layer boundary, the top face
    bounds = np.concatenate([[0], np.cumsum([layer.cells for layer in case.layers])])
    t_plane = []
    for kk in bounds:
        if kk == 0:
            q = (tj - T[:, :, 0]) * 2 * k[:, :, 0] / dz[0]
            t_plane.append(weighted(tj, q))
        elif kk == len(dz):
            c = case.cold_side
            kt, tt = k[:, :, -1], T[:, :, -1]
            if c.kind == "temperature":
                q = (tt - c.temperature) * 2 * kt / dz[-1]
            else:
                q = (tt - c.temperature) / (0.5 * dz[-1] / kt + 1.0 / c.h)
            t_plane.append(weighted(tt - q * 0.5 * dz[-1] / kt, q))
        else:
            k1, k2 = k[:, :, kk - 1], k[:, :, kk]
            q = (T[:, :, kk - 1] - T[:, :, kk]) / (0.5 * dz[kk - 1] / k1 + 0.5 * dz[kk] / k2)
            t_plane.append(weighted(T[:, :, kk - 1] - q * 0.5 * dz[kk - 1] / k1, q))
    layer_names = [layer.name for layer in case.layers] + [f"cold side ({case.cold_side.kind})"]
    r = [(t_plane[i] - t_plane[i + 1]) / power for i in range(len(case.layers))]
    r.append((t_plane[-1] - case.cold_side.temperature) / power)
    return {
        "junction": {
            "temperature": Series(tj - 273.15, "degC", "bottom-face (junction) temperature"),
            "heated": Series(disc.junction_mask.astype(np.int8), "1", "1 under a heated block"),
        },
        "blocks": {
            "name": Series(np.asarray(names), "", "blocks of the bottom layer"),
            "T_max": Series(np.asarray(t_max) - 273.15, "degC", "hottest bottom-face point of the block"),
            "T_mean": Series(np.asarray(t_mean) - 273.15, "degC", "area-mean bottom-face temperature of the block"),
            "power": Series(np.asarray(p_block, np.float64), "W", "heat sources in the block"),
        },
        "stackup": {
            "layer": Series(np.asarray(layer_names), "", "layers bottom to top, then the cold side"),
            "resistance": Series(np.asarray(r), "K/W", "drop of the heat-flux-weighted mean temperature / P"),
            "T_interface": Series(
                np.asarray(t_plane) - 273.15, "degC", "heat-flux-weighted mean temperature, bottom to top"
            ),
        },
    }
