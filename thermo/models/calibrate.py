"""``closure_calibration`` cases (``thermo calibrate``): closures of the
compact cold-plate model from resolved straight-fin unit cells.

A calibration case describes one straight-fin unit cell (one channel between
two half fins, symmetry planes at the sides; base, fin height, channel
length, material, coolant, heat flux under the fins) and a list of channel
Reynolds numbers. For each Reynolds number the unit cell is solved resolved
(:func:`thermo.models.coldplate.solve`: laminar flow, conjugate heat transfer;
uniform inlet velocity and temperature, outlet at 0 Pa) and reduced to what
:func:`kernels.fv.porous.straight_fins` consumes, a Fanning ``f Re`` and a
``Nu`` on the hydraulic diameter ``D_h = 2 w H / (w + H)``:

``fRe_apparent``
    ``dP D_h^2 / (2 mu u_c L)``: the whole-channel pressure drop (entrance
    included) as a uniform friction; ``u_c`` the mean channel velocity.
``Nu_apparent``
    the ``Nu = h D_h / k_f`` with which the compact model of the same unit
    cell (:mod:`kernels.fv.porous`, 64 cells along the channel, ``fRe_apparent``,
    same base, flux and flow) has the resolved ``R_mean`` (a root find on
    compact solves, so that axial conduction, the fluid temperature rise and
    the fin representation count once, as in the compact model).
``fRe_local``, ``Nu_local``
    the same over the window ``0.6 L .. 0.9 L``: the slope of the
    cross-section mean pressure, and the ``h`` whose base-to-fluid
    conductance per plan area in the compact model,
    ``U = (h / p) (w + 2 H eta(h))`` (``p`` the pitch, ``eta = tanh(mH)/(mH)``,
    ``m = sqrt(2 h / (k_s t))``), satisfies ``1/U = mean(T_bottom - T_bulk) / q
    - t_base / k_s`` with the y-mean bottom-face and mixed-mean fluid
    temperatures per x. Where the entrance lengths are short (low Re) these
    are the fully developed values: ``f Re`` of Shah & London and, for
    conducting fins, the ``Nu_H1`` of the duct with the top wall adiabatic.

The apparent values depend on the channel length (entrance effects): a
compact case checks that the table was calibrated on its channel length
(``closure_kind = "local"`` uses the local values at any length).

With ``[calibration] channel_widths`` and/or ``fin_thicknesses`` the case
calibrates a grid of unit cells (every width with every thickness, the
[geometry] cell among them) in turn, one compiled program per cell, into one
table with ``channel_width`` and ``fin_thickness`` columns; a compact plate
then holds for any width and fin thickness inside the grid
(:func:`kernels.fv.porous.closure_lookup`).

Outputs: ``closures.csv`` (``# key = value`` header lines with the unit
cell's geometry, then one row per Reynolds number), ``results.h5``
(``/closures/<column>`` with units, the geometry as attributes of
``/closures``), ``summary.json``, ``closures.png``.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from aidc_thermo import bounds, progress
from aidc_thermo.coolant import Coolant, read_coolant
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseFile, Table, read_header, read_plots_flag
from aidc_thermo.io.results import Quantity, Series, append_groups, results_h5, write_series_results
from aidc_thermo.models import coldplate
from aidc_thermo.models.protocol import Output

__all__ = [
    "CASE_TYPE",
    "CalibrationCase",
    "ClosureTable",
    "ClosureTableError",
    "parse",
    "run",
    "calibrate",
    "build",
    "solve",
    "report",
    "check",
    "read_closure_table",
    "write_closure_table",
]

CASE_TYPE = "closure_calibration"

#: columns of a closure table, with units
COLUMNS = {
    "Re": "1",
    "fRe_apparent": "1",
    "Nu_apparent": "1",
    "fRe_local": "1",
    "Nu_local": "1",
    "channel_velocity": "m/s",
    "pressure_drop": "Pa",
    "R_mean": "K/W",
    "R_max": "K/W",
}
#: geometry and material written with a table (SI)
META = ("channel_width", "fin_thickness", "fin_height", "base_thickness", "length", "fin_conductivity", "prandtl")
#: the columns of a grid table that name its unit cell (m); a table of one cell has them in its header
GRID_AXES = ("channel_width", "fin_thickness")
LOCAL_WINDOW = (0.6, 0.9)


@dataclass(frozen=True)
class CalibrationCase:
    name: str
    description: str
    geometry: dict  # thermo.models.geometry.straight_fins keywords (unit cell), SI
    solid_material: str
    solid_k: float
    coolant: Coolant
    inlet_temperature: float  # K
    heat_flux: float  # W/m^2 under the fins
    reynolds: tuple[float, ...]
    precision: str
    flow_tolerance: float
    max_outer: int
    energy_scheme: str
    plots: bool
    #: a grid of unit cells ([calibration] channel_widths x fin_thicknesses, m), () for the [geometry] cell alone
    grid: tuple[tuple[float, float], ...] = ()

    def as_dict(self) -> dict:
        d = asdict(self)
        d["coolant"] = self.coolant.name
        return d


def parse(case_file: CaseFile) -> CalibrationCase:
    """Read a ``closure_calibration`` case; raises CaseError on any problem."""
    root = Table(case_file.data, case_file.path)
    name, description = read_header(root, CASE_TYPE)
    kind, gkw = coldplate.read_geometry(root.table("geometry"), case_file.directory)
    if kind != "straight_fins":
        raise root.error("geometry.kind", f"a calibration needs kind = 'straight_fins', got {kind!r}")
    if not gkw.get("unit_cell"):
        raise root.error("geometry.channels", "a calibration runs a unit cell: use unit_cell = true")
    if gkw["plenum_length"] > 0:
        raise root.error("geometry.plenum_length", "a calibration unit cell has no plena (the fins start at the inlet)")
    solid, k_solid = coldplate.read_material(root)
    coolant = read_coolant(root.table("coolant", default={}))
    inlet = root.table("inlet")
    t_in = coldplate.read_inlet_temperature(inlet, coolant)
    inlet.finish()
    heat = root.table("heat")
    flux = heat.quantity("flux", "heat_flux", positive=True)
    heat.finish()
    cal = root.table("calibration")
    reynolds = cal.quantities("reynolds", "dimensionless", positive=True)
    if not 2 <= len(reynolds) <= 64 or np.any(np.diff(reynolds) <= 0):
        raise cal.error("reynolds", f"2 to 64 increasing channel Reynolds numbers, got {cal.raw('reynolds')}")
    grid = _read_grid(cal, gkw)
    cal.finish()
    precision, flow_tol, max_outer, scheme = coldplate.read_solver(root)
    plots = read_plots_flag(root)
    root.finish()
    coldplate.require_memory(case_file.path, kind, gkw, max_outer, CASE_TYPE)
    case = CalibrationCase(
        name,
        description,
        gkw,
        solid,
        k_solid,
        coolant,
        t_in,
        flux,
        tuple(reynolds),
        precision,
        flow_tol,
        max_outer,
        scheme,
        plots,
        grid,
    )
    for cell in [case] if not grid else [_cell(case, w, t) for w, t in grid]:
        try:
            geometry = coldplate.build_geometry(_resolved_case(cell, reynolds[0]))
        except ValueError as exc:
            where = (
                ""
                if not grid
                else f" (unit cell channel_width {cell.geometry['channel_width'] * 1e3:g} mm, "
                f"fin_thickness {cell.geometry['fin_thickness'] * 1e3:g} mm)"
            )
            raise root.error("geometry", f"{exc}{where}") from None
    if np.count_nonzero(_window(geometry, gkw["length"])) < 2:
        raise root.error(
            "geometry.cells.length",
            f"the local values need at least 2 cells in {LOCAL_WINDOW[0]} L .. {LOCAL_WINDOW[1]} L; give more cells",
        )
    return case


def _read_grid(cal: Table, geometry: dict) -> tuple[tuple[float, float], ...]:
    """``[calibration] channel_widths``, ``fin_thicknesses`` (optional lists,
    increasing): the unit cells of a calibration grid, every width with every
    thickness; the [geometry] cell must be one of them. () when neither is given."""
    axes = []
    for key, gkey in (("channel_widths", "channel_width"), ("fin_thicknesses", "fin_thickness")):
        values = cal.quantities(key, "length", positive=True, default=None)
        if values is None:
            axes.append((geometry[gkey],))
            continue
        if not 1 <= len(values) <= 16 or np.any(np.diff(values) <= 0):
            raise cal.error(key, f"1 to 16 increasing lengths, got {cal.raw(key)}")
        if not np.any(np.isclose(values, geometry[gkey], rtol=1e-9, atol=0)):
            raise cal.error(
                key, f"must include the [geometry] {gkey} ({geometry[gkey] * 1e3:g} mm), whose fields are written"
            )
        axes.append(tuple(values))
    if len(axes[0]) * len(axes[1]) == 1 and not (cal.has("channel_widths") or cal.has("fin_thicknesses")):
        return ()
    return tuple((w, t) for w in axes[0] for t in axes[1])


def _cell(case: CalibrationCase, width: float, thickness: float) -> CalibrationCase:
    """The calibration of one unit cell of the grid (no grid of its own)."""
    return replace(case, geometry={**case.geometry, "channel_width": width, "fin_thickness": thickness}, grid=())


# ----------------------------------------------------------------------------- reduction


def _props(coolant: Coolant, t):
    return tuple(float(f(t)) for f in (coolant.density, coolant.viscosity, coolant.cp, coolant.conductivity))


def _dims(geometry: dict):
    w, t, H = geometry["channel_width"], geometry["fin_thickness"], geometry["fin_height"]
    return w, t, H, 2 * w * H / (w + H)


def _resolved_case(case: CalibrationCase, reynolds: float) -> coldplate.ColdPlateCase:
    w, _, H, dh = _dims(case.geometry)
    rho, mu, _, _ = _props(case.coolant, case.inlet_temperature)
    u_c = reynolds * mu / (rho * dh)
    return coldplate.ColdPlateCase(
        case.name,
        case.description,
        "straight_fins",
        dict(case.geometry),
        case.solid_material,
        case.solid_k,
        case.coolant,
        u_c * w * H,
        case.inlet_temperature,
        case.heat_flux,
        "fin_field",
        case.precision,
        case.flow_tolerance,
        case.max_outer,
        case.energy_scheme,
        False,
    )


_COMPACT_CELLS = 64


def _compact_unit_cell_r_mean(dims, props, fre, nusselt):
    """R_mean (K/W) of the compact model of a unit cell; ``dims`` = (w, t, H,
    t_base, L, k_s, flux, flow), ``props`` = (mu, k_f, rho c_p, t_in)."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous
    from aidc_thermo.kernels.fv.grid import Grid

    w, t, H, tb, L, ks, flux, flow = dims
    mu, kf, rho_cp, t_in = props
    nx, dtype = _COMPACT_CELLS, dims.dtype
    p = w + t
    grid = Grid(jnp.full((nx,), L / nx, dtype), jnp.stack([p / 2, p / 2]), jnp.reshape(tb, (1,)), jnp.zeros(3, dtype))
    layer = porous.straight_fins((nx, 2), w, t, H, ks, kf, mu, dtype=dtype, fre=fre, nusselt=nusselt)
    bc = porous.FlowBC.make((nx, 2), dtype, inlet_x_lo=0.5, outlet_x_hi=1.0)
    stack = porous.Stack(jnp.full((nx, 2, 1), ks, dtype), jnp.full((nx, 2), flux, dtype))
    fl = porous.solve_flow(grid, layer, bc, flow)
    th = porous.solve_energy(grid, layer, stack, fl, rho_cp, t_in)
    t_min = jnp.minimum(jnp.minimum(th.T_fluid.min(), th.T_fin.min()), th.T_stack.min())
    extremes = jnp.stack([t_min, th.T_fluid.max(), jnp.maximum(th.T_fin.max(), th.T_stack.max())])
    return porous.thermal_resistance(stack, grid, th, t_in)[1], fl.info.converged & th.info.converged, extremes


# ----------------------------------------------------------------------------- the protocol

PROTOCOL = True


@dataclass(frozen=True)
class Static:
    """What fixes the compiled program (hashable): the unit cell's resolved
    solve (one voxel grid for every Reynolds number: only the flow changes)
    and the cell's dimensions ``(w, t, H, t_base, L)`` (m)."""

    plate: coldplate.Static
    dims: tuple[float, float, float, float, float]

    @property
    def precision(self) -> str:
        return self.plate.precision


@dataclass(frozen=True)
class Params:
    """Every number of a calibration a user may vary, SI: the channel
    Reynolds numbers (one resolved solve each, increasing), the inlet
    temperature (the coolant properties are taken there), the heat flux under
    the fins and the fin and base conductivity."""

    reynolds: object  # (n,)
    inlet_temperature: object  # K
    heat_flux: object  # W/m^2
    solid_k: object  # W/m/K


_PARAM_FIELDS = ("reynolds", "inlet_temperature", "heat_flux", "solid_k")


@dataclass(frozen=True)
class CalibrationSolution:
    """The pure solve's answer (a pytree; a leading axis over the Reynolds
    numbers on every leaf): the resolved unit cell's solve at each Reynolds
    number, the table columns, and what :func:`check` needs to judge them."""

    plates: object  # coldplate.PlateSolution, stacked over Re
    columns: object  # dict: COLUMNS name -> (n,)
    positive_apparent: object  # (n,) bool: R_mean leaves a positive convective resistance (and its Nu was found)
    positive_local: object  # (n,) bool: the same over the local window
    bracketed: object  # (n,) bool: the compact R_mean crosses the resolved one within nu_bracket
    fit_converged: object  # (n,) bool
    fit_evaluations: object  # (n,) int: compact unit-cell solves of the fit
    compact_converged: object  # (n,) bool: every compact unit-cell solve of the fit converged
    compact_low: object  # (n,) K: the lowest compact temperature over the fit's solves
    compact_fluid: object  # (n, 2) K: fluid max and its bound max(solid max, inlet), the closest of the fit
    nu_bracket: object  # (n, 2): the Nu bracket searched


_registered = False


def _register() -> None:
    global _registered
    if not _registered:
        import jax

        coldplate._register()
        jax.tree_util.register_dataclass(Params, data_fields=list(_PARAM_FIELDS), meta_fields=[])
        names = [f.name for f in fields(CalibrationSolution)]
        jax.tree_util.register_dataclass(CalibrationSolution, data_fields=names, meta_fields=[])
        _registered = True


def _window(geometry, length: float) -> np.ndarray:
    """Cells of the local window ``0.6 L .. 0.9 L`` (bool over x)."""
    xc = geometry.centers(0)
    return (xc >= LOCAL_WINDOW[0] * length) & (xc <= LOCAL_WINDOW[1] * length)


def build(case: CalibrationCase) -> tuple[Static, Params]:
    """``(Static, Params)`` of a parsed case: its [geometry] cell (``run`` and
    :func:`calibrate` solve a grid's other cells in turn, one program each)."""
    _register()
    plate_static, _ = coldplate.build(_resolved_case(case, case.reynolds[0]))
    g = case.geometry
    dims = tuple(float(g[k]) for k in ("channel_width", "fin_thickness", "fin_height", "base_thickness", "length"))
    f64 = np.float64
    params = Params(np.asarray(case.reynolds, f64), f64(case.inlet_temperature), f64(case.heat_flux), f64(case.solid_k))
    return Static(plate_static, dims), params  # type: ignore[arg-type]


def stack_params(designs) -> Params:
    """Stack the ``Params`` of designs with equal ``Static`` along a new leading axis."""
    _register()
    return Params(**{f: np.stack([np.asarray(getattr(p, f)) for p in designs]) for f in _PARAM_FIELDS})


def _illinois(fun, fold, a, b, xtol, max_iter=100):
    """Root of a scalar, monotone ``fun`` on ``[a, b]``: regula falsi with the
    Illinois modification, as a ``lax.while_loop`` (pure, vmap-able).
    ``fun(x) -> (f, aux)``; ``fold(acc, aux) -> acc`` combines ``aux`` over
    every evaluation, the two end points included. Stops when the last step,
    or the bracket, is below ``xtol * (1 + |x|)``, the residual is zero, or
    after ``max_iter`` iterations. Returns ``(x, bracketed, converged,
    evaluations, acc)``; without a bracket (``f(a)``, ``f(b)`` of one sign,
    or not finite) nothing is iterated and ``x`` is ``b``."""
    import jax.numpy as jnp
    from jax import lax

    fa, aux_a = fun(a)
    fb, aux_b = fun(b)
    acc = fold(aux_a, aux_b)
    bracketed = jnp.isfinite(fa) & jnp.isfinite(fb) & (fa * fb <= 0)
    start_done = (~bracketed) | (fa == 0) | (fb == 0)

    def cond(c):
        return (~c[5]) & (c[4] < max_iter)

    def body(c):
        a, b, fa, fb, it, _, acc = c
        x = b - fb * (b - a) / (fb - fa)
        inside = jnp.isfinite(x) & (x > jnp.minimum(a, b)) & (x < jnp.maximum(a, b))
        x = jnp.where(inside, x, 0.5 * (a + b))
        fx, aux = fun(x)
        acc = fold(acc, aux)
        cross = fx * fb < 0  # the root lies between x and b: b becomes the other end
        a, fa = jnp.where(cross, b, a), jnp.where(cross, fb, 0.5 * fa)
        tol = xtol * (1 + jnp.abs(x))
        done = (fx == 0) | (jnp.abs(x - a) <= tol) | (jnp.abs(x - b) <= tol)
        return a, x, fa, fx, it + 1, done, acc

    init = (a, b, fa, fb, jnp.asarray(0), start_done, acc)
    _, b_end, _, _, it, done, acc = lax.while_loop(cond, body, init)
    x = jnp.where((it == 0) & (fa == 0), a, b_end)
    return x, bracketed, bracketed & done, it + 2, acc


def _apparent_nusselt_jnp(u_plan, w, t, H, k_fin, k_fluid):
    """``Nu = h D_h / k_f`` whose base-to-fluid conductance per plan area in
    the compact model, ``U = (h / p) (w + 2 H eta(h))``, equals ``u_plan``
    (W/m^2/K), in JAX (pure; ``u_plan`` must be positive: the caller masks
    the rest). ``(Nu, converged)``."""
    import jax.numpy as jnp

    p = w + t
    dh = 2 * w * H / (w + H)
    log_u = jnp.log(u_plan)

    def excess(log_h):
        h = jnp.exp(log_h)
        mh = jnp.sqrt(2 * h / (k_fin * t)) * H
        small = mh < 1e-8
        mh_safe = jnp.where(small, 1.0, mh)
        eta = jnp.where(small, 1.0, jnp.tanh(mh_safe) / mh_safe)
        return jnp.log(h / p * (w + 2 * H * eta)) - log_u, ()

    dtype = jnp.result_type(u_plan)
    lo, hi = jnp.log(jnp.asarray(1e-6, dtype)), jnp.log(jnp.asarray(1e14, dtype))
    log_h, _, ok, _, _ = _illinois(excess, lambda acc, aux: (), lo, hi, 1e-13)
    return jnp.exp(log_h) * dh / k_fluid, ok


def solve(static: Static, params: Params) -> CalibrationSolution:
    """The protocol's pure solve (jit-able with ``static`` static, vmap-able
    over ``params``): at each Reynolds number (a ``lax.map``, one resolved
    solve in memory at a time) the resolved unit cell, its reduction to the
    table columns (module docstring), and the fitted ``Nu_apparent`` (a
    bracketed root in log Nu on compact unit-cell solves)."""
    import jax.numpy as jnp
    from jax import lax

    w, t, H, tb, L = static.dims
    dh = 2 * w * H / (w + H)
    area = (w + t) * L
    plate = static.plate
    g = plate.geometry
    f64 = jnp.result_type(float)
    cool = plate.coolant
    t_in = jnp.asarray(params.inlet_temperature, f64)
    flux = jnp.asarray(params.heat_flux, f64)
    ks = jnp.asarray(params.solid_k, f64)
    rho, mu, cp, kf = cool.density(t_in), cool.viscosity(t_in), cool.cp(t_in), cool.conductivity(t_in)
    # the cross-section weights and the local window: numpy constants of the grid
    _, yf, zf = g.faces
    xc = g.centers(0)
    dy, dz = np.diff(yf), np.diff(zf)
    dA = (dy[:, None] * dz[None, :])[None] * (g.material == coldplate.geo.FLUID)
    window = _window(g, L)
    xw = xc[window] - xc[window].mean()
    dz0 = zf[1] - zf[0]
    heated = plate.heated_mask

    def one(re):
        u_c = re * mu / (rho * dh)
        flow = u_c * w * H
        ps = coldplate._solve(plate, coldplate.Params(flow, t_in, flux, ks))
        dp, r_max, r_mean = ps.pressure_drop, ps.r_max, ps.r_mean
        q = ps.heat[0].astype(f64) / area
        inv_u = r_mean * area - area / (2 * rho * cp * flow) - tb / ks
        P, T, u = ps.state.p.astype(f64), ps.T.astype(f64), ps.state.u.astype(f64)
        uc = 0.5 * (u[1:] + u[:-1]) * dA
        p_mean = (P * dA).sum(axis=(1, 2)) / dA.sum(axis=(1, 2))
        t_bulk = (T * uc).sum(axis=(1, 2)) / uc.sum(axis=(1, 2))
        t_bottom = T[:, :, 0] + jnp.where(heated, flux, 0.0) * 0.5 * dz0 / ks
        t_bottom = (t_bottom * dy[None, :]).sum(axis=1) / dy.sum()
        pw = p_mean[window]
        slope = (xw * (pw - pw.mean())).sum() / (xw * xw).sum()  # least squares
        inv_u_local = jnp.mean(t_bottom[window] - t_bulk[window]) / q - tb / ks
        pos_app, pos_local = inv_u > 0, inv_u_local > 0
        guess, ok_guess = _apparent_nusselt_jnp(1.0 / jnp.where(pos_app, inv_u, 1.0), w, t, H, ks, kf)
        nu_local, ok_local = _apparent_nusselt_jnp(1.0 / jnp.where(pos_local, inv_u_local, 1.0), w, t, H, ks, kf)
        fre_app = dp * dh**2 / (2 * mu * u_c * L)
        dims = jnp.stack([jnp.asarray(v, f64) for v in (w, t, H, tb, L)] + [ks, flux, flow])
        props = jnp.stack([mu, kf, rho * cp, t_in])
        log_r_target = jnp.log(r_mean)

        def excess(log_nu):
            r, ok, (t_min, fluid_max, solid_max) = _compact_unit_cell_r_mean(dims, props, fre_app, jnp.exp(log_nu))
            return jnp.log(r) - log_r_target, (ok, t_min, fluid_max, jnp.maximum(solid_max, t_in))

        def fold(acc, aux):  # all converged, the lowest temperature, the fluid maximum closest to its bound
            worse = aux[2] - aux[3] > acc[2] - acc[3]
            return (
                acc[0] & aux[0], jnp.minimum(acc[1], aux[1]), jnp.where(worse, aux[2], acc[2]),
                jnp.where(worse, aux[3], acc[3]),
            )  # fmt: skip

        lo, hi = jnp.log(guess / 20), jnp.log(guess * 20)
        log_nu, bracketed, converged, evaluations, compact = _illinois(excess, fold, lo, hi, 1e-10)
        columns = {
            "Re": re,
            "fRe_apparent": fre_app,
            "Nu_apparent": jnp.exp(log_nu),
            "fRe_local": -slope * dh**2 / (2 * mu * u_c),
            "Nu_local": nu_local,
            "channel_velocity": u_c,
            "pressure_drop": dp,
            "R_mean": r_mean,
            "R_max": r_max,
        }
        return (
            ps, columns, pos_app & ok_guess, pos_local & ok_local, bracketed, converged, evaluations,
            compact[0], compact[1], jnp.stack(compact[2:]), jnp.stack([guess / 20, guess * 20]),
        )  # fmt: skip

    return CalibrationSolution(*lax.map(one, jnp.asarray(params.reynolds, f64)))


def compiled_solve():
    """:func:`solve` jitted (``static`` static); with the command line's cache
    on, the compiled program is kept on disk (:mod:`thermo.compile_cache`)."""
    from aidc_thermo.compile_cache import cached_jit

    _register()
    # its solves are the resolved plate's: compiled as that plate's programs are
    return cached_jit(solve, static_argnums=(0,), kind=coldplate.PROGRAM_KIND)


def _plate_at(static: Static, params: Params, sol: CalibrationSolution, i: int):
    """The ``i``-th Reynolds number's resolved solve, as ``(coldplate.Params,
    PlateSolution)`` of one design (numpy)."""
    import jax

    plate = jax.tree_util.tree_map(lambda v: np.asarray(v)[i], sol.plates)
    w, _, H, _, _ = static.dims
    flow = float(np.asarray(sol.columns["channel_velocity"])[i]) * w * H
    f64 = np.float64
    pp = coldplate.Params(f64(flow), f64(params.inlet_temperature), f64(params.heat_flux), f64(params.solid_k))
    return pp, plate


def check(static: Static, params: Params, solution: CalibrationSolution) -> None:
    """Every resolved unit cell converged and bounded (:func:`coldplate.check`),
    a positive convective resistance left at each Reynolds number, and the
    fitted Nu found, its compact solves converged and bounded (the maximum
    principle, :mod:`thermo.bounds`); raises :class:`SolveError`. One design
    (unbatched ``params``)."""
    sol = solution
    t_in = float(params.inlet_temperature)
    for i, re in enumerate(np.asarray(params.reynolds, np.float64)):
        pp, plate = _plate_at(static, params, sol, i)
        try:
            coldplate.check(static.plate, pp, plate)
        except SolveError as exc:
            raise SolveError(f"unit cell at Re {re:g}: {exc}") from None
        for key, flag in (("Nu_apparent", sol.positive_apparent), ("Nu_local", sol.positive_local)):
            if not bool(np.asarray(flag)[i]):
                raise SolveError(
                    f"{key}: the resolved unit cell leaves no positive convective resistance at Re {re:.4g} (the "
                    "fluid temperature rise or the base dominates R); calibrate at higher Re or on a shorter cell"
                )
        if not bool(np.asarray(sol.compact_converged)[i]):
            raise SolveError(f"unit cell at Re {re:g}: the compact unit cell did not converge while fitting Nu")
        where = {"locate": lambda _, re=re: f"the compact unit cell fitted at Re {re:g}", "precision": static.precision}
        low = float(np.asarray(sol.compact_low)[i])
        fluid_max, fluid_bound = (float(v) for v in np.asarray(sol.compact_fluid)[i])
        bounds.check("compact unit-cell temperature", [low], lower=t_in, lower_why="the inlet", **where)
        bounds.check(
            "compact unit-cell fluid temperature", [fluid_max], upper=fluid_bound, upper_why="the hottest solid",
            **where,
        )  # fmt: skip
        if not bool(np.asarray(sol.bracketed)[i]):
            lo, hi = (float(v) for v in np.asarray(sol.nu_bracket)[i])
            r_mean = float(np.asarray(sol.columns["R_mean"])[i])
            raise SolveError(
                f"no Nu in {lo:.3g}..{hi:.3g} gives the compact unit cell the resolved R_mean {r_mean:.4g} K/W at "
                f"Re {re:g} (fluid temperature rise or base dominate R); calibrate at higher Re"
            )
        if not bool(np.asarray(sol.fit_converged)[i]):
            raise SolveError(
                f"unit cell at Re {re:g}: the fit of Nu_apparent did not converge in "
                f"{int(np.asarray(sol.fit_evaluations)[i])} compact solves"
            )
    for key in COLUMNS:
        values = np.asarray(sol.columns[key], np.float64)
        if not np.all(np.isfinite(values)):
            raise SolveError(f"closure column {key} is not finite: {values}")


def report(static: Static, params: Params, solution: CalibrationSolution) -> dict[str, Output]:
    """The summary numbers (a leading batch axis when ``params`` has one)."""
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous

    sol, cols, plates = solution, solution.columns, solution.plates
    w, _, H, _, _ = static.dims
    alpha = min(w, H) / max(w, H)
    added, removed = plates.heat  # each (..., n)
    converged = jnp.all(
        plates.flow_info.converged & plates.energy_info.converged & plates.coupling_converged
        & sol.positive_apparent & sol.positive_local & sol.fit_converged & sol.compact_converged, axis=-1,
    )  # fmt: skip
    like = jnp.ones_like(cols["Re"][..., 0])
    flow_its = jnp.max(plates.flow_info.iterations, axis=-1)
    return {
        "points": Output(cols["Re"].shape[-1] * like.astype(jnp.int32), "1", "Reynolds numbers solved"),
        "Re_min": Output(cols["Re"][..., 0], "1", "channel Reynolds number rho u_c D_h / mu"),
        "Re_max": Output(cols["Re"][..., -1], "1", "channel Reynolds number rho u_c D_h / mu"),
        "aspect_ratio": Output(alpha * like, "1", "channel short / long side"),
        "fRe_local_at_Re_min": Output(cols["fRe_local"][..., 0], "1", "Fanning f Re over 0.6-0.9 L"),
        "fRe_shah_london": Output(porous.shah_london_fre(alpha * like), "1", "fully developed, same aspect ratio"),
        "Nu_local_at_Re_min": Output(cols["Nu_local"][..., 0], "1", "Nu on D_h over 0.6-0.9 L"),
        "Nu_H1_shah_london": Output(porous.shah_london_nu_h1(alpha * like), "1", "fully developed, four walls heated"),
        "fRe_apparent_at_Re_max": Output(cols["fRe_apparent"][..., -1], "1", "whole channel, entrance included"),
        "Nu_apparent_at_Re_max": Output(cols["Nu_apparent"][..., -1], "1", "reproduces R_mean"),
        "heat_balance_error_max": Output(
            jnp.max(jnp.abs(added - removed) / added, axis=-1), "1", "|added - removed| / added"
        ),
        "flow_iterations_max": Output(flow_its, "1", "outer flow iterations, the most of any Reynolds number"),
        "converged": Output(converged, "1", "every resolved solve and every fit converged"),
        "iterations": Output(
            jnp.maximum(flow_its.astype(jnp.int32), jnp.max(sol.fit_evaluations, axis=-1).astype(jnp.int32)),
            "1",
            "largest inner iteration count",
        ),
    }


def _host_solve(case: CalibrationCase):
    """build, the compiled solve, check: ``(static, params, solution)``,
    the solution as numpy arrays."""
    import jax

    progress.phase("build")
    static, params = build(case)
    progress.phase("solve")
    sol = compiled_solve()(static, params)
    progress.phase("write", ready=sol)
    sol = jax.device_get(sol)  # once: check and the writers take every Reynolds number's fields from it
    check(static, params, sol)
    return static, params, sol


def _diagnostics(sol: CalibrationSolution) -> dict[str, np.ndarray]:
    plates = sol.plates
    added, removed = (np.asarray(v, np.float64) for v in plates.heat)
    return {
        "flow_iterations": np.asarray(plates.flow_info.iterations).astype(int),
        "energy_iterations": np.asarray(plates.energy_info.iterations).astype(int),
        "heat_balance_error": np.abs(added - removed) / added,
        "fit_evaluations": np.asarray(sol.fit_evaluations).astype(int),
    }


@dataclass(frozen=True)
class ClosureTable:
    """A closure table: ``columns`` (name -> array over the rows) and ``meta``
    (geometry of the calibration cell, SI). A table of one unit cell has its
    rows at increasing ``Re`` and its ``channel_width`` and ``fin_thickness``
    in ``meta``; a grid table (``thermo calibrate`` with ``channel_widths`` /
    ``fin_thicknesses``) has them as columns, a block of rows per unit cell,
    every cell at the same Reynolds numbers."""

    columns: dict[str, np.ndarray]
    meta: dict[str, float]

    @property
    def is_grid(self) -> bool:
        return "channel_width" in self.columns

    def arrays(self, kind: str = "apparent") -> tuple[np.ndarray, ...]:
        """``(Re (n,), channel widths (nw,), fin thicknesses (nt,), f Re (nw, nt, n), Nu (nw, nt, n))`` of the
        ``kind`` columns ("apparent" or "local"), widths and thicknesses increasing. A table of one unit cell
        gives ``nw = nt = 1`` (its fin thickness 0 when the file does not say: a table of one thickness does not
        fix the plate's)."""
        c = self.columns
        if not self.is_grid:
            w, t = self.meta["channel_width"], self.meta.get("fin_thickness", 0.0)
            return (c["Re"], np.array([w]), np.array([t]), c[f"fRe_{kind}"][None, None], c[f"Nu_{kind}"][None, None])
        widths, thicknesses = np.unique(c["channel_width"]), np.unique(c["fin_thickness"])
        n = len(c["Re"]) // (len(widths) * len(thicknesses))
        out = {k: np.empty((len(widths), len(thicknesses), n)) for k in (f"fRe_{kind}", f"Nu_{kind}")}
        for i, w in enumerate(widths):
            for j, t in enumerate(thicknesses):
                rows = (c["channel_width"] == w) & (c["fin_thickness"] == t)
                for k in out:
                    out[k][i, j] = c[k][rows]
        first = (c["channel_width"] == widths[0]) & (c["fin_thickness"] == thicknesses[0])
        return c["Re"][first], widths, thicknesses, out[f"fRe_{kind}"], out[f"Nu_{kind}"]


def _grid_table(tables: list[ClosureTable]) -> ClosureTable:
    """One grid table of the unit cells' tables (the rows of each in turn)."""
    columns = {
        "channel_width": np.concatenate([np.full(len(t.columns["Re"]), t.meta["channel_width"]) for t in tables]),
        "fin_thickness": np.concatenate([np.full(len(t.columns["Re"]), t.meta["fin_thickness"]) for t in tables]),
    }
    columns |= {k: np.concatenate([t.columns[k] for t in tables]) for k in COLUMNS}
    meta = {k: v for k, v in tables[0].meta.items() if k not in GRID_AXES}
    return ClosureTable(columns, meta)


def _table(case: CalibrationCase, sol: CalibrationSolution) -> ClosureTable:
    columns = {k: np.asarray(sol.columns[k], np.float64) for k in COLUMNS}
    g = case.geometry
    meta = {k: float(g[k]) for k in ("channel_width", "fin_thickness", "fin_height", "base_thickness", "length")}
    meta["fin_conductivity"] = case.solid_k
    meta["prandtl"] = float(case.coolant.prandtl(case.inlet_temperature))
    return ClosureTable(columns, meta)


def _solve_grid(case: CalibrationCase, base: ClosureTable) -> ClosureTable:
    """The grid table of a case with ``grid``: every unit cell calibrated in
    turn (one compiled program each: the voxel grid changes), ``base`` (the
    [geometry] cell's table, already solved) in its place. Each cell's
    program is released before the next is compiled
    (:func:`~aidc_thermo.compile_cache.release_programs`): the bundled
    20-cell grid would otherwise run out of the process's memory maps."""
    from aidc_thermo.compile_cache import release_programs

    tables = []
    for i, (w, t) in enumerate(case.grid):
        if np.allclose((w, t), (base.meta["channel_width"], base.meta["fin_thickness"]), rtol=1e-9, atol=0):
            tables.append(base)
            continue
        release_programs()
        progress.say(f"unit cell {i + 1} of {len(case.grid)}: channel width {w * 1e3:g} mm, fin {t * 1e3:g} mm")
        cell = _cell(case, w, t)
        try:
            tables.append(_table(cell, _host_solve(cell)[2]))
        except SolveError as exc:
            raise SolveError(f"unit cell channel_width {w * 1e3:g} mm, fin_thickness {t * 1e3:g} mm: {exc}") from None
    return _grid_table(tables)


def calibrate(case: CalibrationCase, solutions: list | None = None) -> tuple[ClosureTable, dict]:
    """Solve the unit cell at every Reynolds number (build, the compiled pure
    solve, check); ``(table, diagnostics)``; a case with a ``grid`` gives the
    grid table (the diagnostics and ``solutions`` are its [geometry] cell's).
    ``solutions``, when given, receives ``(resolved case, coldplate.Solution)``
    per Reynolds number. A grid empties JAX's caches between its cells
    (:func:`~aidc_thermo.compile_cache.release_programs`): a caller's own
    jitted functions compile again on their next call."""
    if case.grid:
        base = _cell(case, case.geometry["channel_width"], case.geometry["fin_thickness"])
        table, diag = calibrate(base, solutions)
        return _solve_grid(case, table), diag
    static, params, sol = _host_solve(case)
    if solutions is not None:
        for i, re in enumerate(case.reynolds):
            pp, plate = _plate_at(static, params, sol, i)
            solutions.append((_resolved_case(case, re), coldplate.to_solution(static.plate, pp, plate)))
    return _table(case, sol), _diagnostics(sol)


# ----------------------------------------------------------------------------- table files


class ClosureTableError(ValueError):
    """A closure table that cannot be used; the message names the file and
    the column or line."""


def write_closure_table(path: Path, table: ClosureTable, title: str = "") -> None:
    """CSV: ``# key = value`` lines (the calibration cell, SI), then a header
    row and one row per Reynolds number."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        fh.write(f"# closure table of the compact cold-plate model (thermo calibrate){': ' + title if title else ''}\n")
        for key in META:
            if key in table.meta:
                fh.write(f"# {key} = {table.meta[key]:.10g}\n")
        w = csv.writer(fh)
        w.writerow(list(table.columns))
        for i in range(len(table.columns["Re"])):
            w.writerow([f"{table.columns[k][i]:.10g}" for k in table.columns])


def read_closure_table(path: str | Path, required=("fRe_apparent", "Nu_apparent")) -> ClosureTable:
    """Read a CSV closure table (as written by ``thermo calibrate``). Needs
    the column ``Re`` (at least two rows, increasing) and the ``required``
    columns (finite, positive), and the geometry lines ``channel_width``,
    ``fin_height``, ``length``. A grid table has ``channel_width`` and
    ``fin_thickness`` as columns instead (m, positive), a block of rows
    (the same increasing ``Re``) for every width with every thickness;
    raises :class:`ClosureTableError`."""
    path = Path(path)

    def bad(message):
        return ClosureTableError(f"closure table {path}: {message}")

    try:
        if path.stat().st_size > 16_000_000:
            raise bad(f"{path.stat().st_size / 1e6:.0f} MB is more than a closure table may hold (16 MB)")
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise bad(f"cannot read it ({exc})") from None
    meta, body = {}, []
    for n, line in enumerate(lines, 1):
        if line.startswith("#"):
            key, eq, value = line[1:].partition("=")
            if eq:
                try:
                    meta[key.strip()] = float(value)
                except ValueError:
                    raise bad(f"line {n}: '{key.strip()}' is not a number ({value.strip()!r})") from None
        elif line.strip():
            body.append((n, line))
    if not body:
        raise bad("no header row and no data")
    header = [h.strip() for h in next(csv.reader([body[0][1]]))]
    axes = GRID_AXES if any(a in header for a in GRID_AXES) else ()
    for key in ("fin_height", "length") if axes else ("channel_width", "fin_height", "length"):
        if key not in meta:
            raise bad(f"missing the header line '# {key} = <value in m>'")
    for col in ("Re", *required, *axes):
        if col not in header:
            raise bad(f"missing column '{col}' (columns: {', '.join(header)})")
    cols: dict[str, list[float]] = {h: [] for h in header}
    for n, line in body[1:]:
        cells = next(csv.reader([line]))
        if len(cells) != len(header):
            raise bad(f"line {n}: {len(cells)} values for {len(header)} columns")
        for h, c in zip(header, cells, strict=True):
            try:
                cols[h].append(float(c))
            except ValueError:
                raise bad(f"line {n}, column '{h}': {c.strip()!r} is not a number") from None
    out = {h: np.asarray(v) for h, v in cols.items()}
    lines = [n for n, _ in body[1:]]
    for col in ("Re", *required, *axes):
        bad_rows = np.flatnonzero(~np.isfinite(out[col]))
        if bad_rows.size:
            i = int(bad_rows[0])
            raise bad(f"line {lines[i]} (data row {i + 1}), column '{col}': {out[col][i]} is not a finite number")
    if axes:
        _check_grid(out, lines, bad)
    else:
        if len(out["Re"]) < 2:
            raise bad("needs at least two rows (Reynolds numbers) to interpolate")
        if np.any(np.diff(out["Re"]) <= 0) or not out["Re"][0] > 0:
            raise bad("column 'Re' must be positive and increasing")
    for col in required:
        if not np.all(np.isfinite(out[col])) or np.any(out[col] <= 0):
            raise bad(f"column '{col}' must be finite and positive")
    return ClosureTable(out, meta)


def _check_grid(cols: dict, lines: list[int], bad) -> None:
    """A grid table's rows: positive axes, one contiguous block per unit cell,
    every width with every thickness, each block at the same increasing Re."""
    for a in GRID_AXES:
        if np.any(cols[a] <= 0):
            i = int(np.flatnonzero(cols[a] <= 0)[0])
            raise bad(f"line {lines[i]}, column '{a}': {cols[a][i]} m is not positive")
    cell = list(zip(cols["channel_width"], cols["fin_thickness"], strict=True))
    starts = [0] + [i for i in range(1, len(cell)) if cell[i] != cell[i - 1]]
    ends = starts[1:] + [len(cell)]
    seen: dict = {}
    re0 = cols["Re"][: ends[0]]
    for a, b in zip(starts, ends, strict=True):
        w, t = cell[a]
        name = f"the unit cell channel_width {w * 1e3:g} mm, fin_thickness {t * 1e3:g} mm (line {lines[a]})"
        if cell[a] in seen:
            raise bad(f"{name}: its rows are split (also from line {seen[cell[a]]}); give each cell one block")
        seen[cell[a]] = lines[a]
        re = cols["Re"][a:b]
        if len(re) < 2 or np.any(np.diff(re) <= 0) or not re[0] > 0:
            raise bad(f"{name}: needs at least two rows, 'Re' positive and increasing")
        if len(re) != len(re0) or not np.allclose(re, re0, rtol=1e-9, atol=0):
            raise bad(f"{name}: Re {list(re)} differ from the first cell's {list(re0)}; calibrate every cell "
                      "at the same Reynolds numbers")  # fmt: skip
    widths, thicknesses = sorted({w for w, _ in cell}), sorted({t for _, t in cell})
    missing = [(w, t) for w in widths for t in thicknesses if (w, t) not in seen]
    if missing:
        w, t = missing[0]
        raise bad(f"the grid has no rows for channel_width {w * 1e3:g} mm with fin_thickness {t * 1e3:g} mm "
                  f"({len(missing)} of {len(widths) * len(thicknesses)} cells missing); every width needs every "
                  "thickness")  # fmt: skip


# ----------------------------------------------------------------------------- run


def run(case: CalibrationCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    """build -> jit(solve) -> check -> report -> write: the table, results.h5,
    summary.json and a plot."""
    base = _cell(case, case.geometry["channel_width"], case.geometry["fin_thickness"]) if case.grid else case
    static, params, sol = _host_solve(base)
    table, diag = _table(base, sol), _diagnostics(sol)
    grid_table = _solve_grid(case, table) if case.grid else None
    solutions = []
    for i, re in enumerate(case.reynolds):
        pp, plate = _plate_at(static, params, sol, i)
        solutions.append((_resolved_case(case, re), coldplate.to_solution(static.plate, pp, plate)))
    rep = report(static, params, sol)
    cols, meta = table.columns, table.meta
    fre_sl = float(rep["fRe_shah_london"].value)
    nu_sl = float(rep["Nu_H1_shah_london"].value)
    write_closure_table(folder / "closures.csv", grid_table or table, case.name)
    integers = ("points", "flow_iterations_max", "unit_cells")
    summary = {"case": Quantity(case.name)}
    if grid_table is not None:
        summary["unit_cells"] = Quantity(len(case.grid), "", "unit cells calibrated (channel widths x fin thicknesses)")
    for key in (
        "points", "Re_min", "Re_max", "aspect_ratio", "fRe_local_at_Re_min", "fRe_shah_london", "Nu_local_at_Re_min",
        "Nu_H1_shah_london", "fRe_apparent_at_Re_max", "Nu_apparent_at_Re_max", "heat_balance_error_max",
        "flow_iterations_max",
    ):  # fmt: skip
        out = rep[key]
        value = np.asarray(out.value).item()
        summary[key] = Quantity(int(value) if key in integers else float(value), "", out.description)
    series = {k: Series(cols[k], COLUMNS[k], k) for k in COLUMNS}
    write_series_results(
        folder,
        groups={"closures": series},
        case_text=case_file.text,
        case_parsed=case.as_dict(),
        solver={k: v for k, v in diag.items()},
        summary=summary,
    )
    with results_h5(folder / "results.h5", "a") as h5:
        for key, value in meta.items():
            h5["closures"].attrs[key] = value
    if grid_table is not None:  # every unit cell's rows; /closures holds the [geometry] cell's
        units = {**COLUMNS, **dict.fromkeys(GRID_AXES, "m")}
        append_groups(folder, {"closure_grid": {k: Series(v, units[k], k) for k, v in grid_table.columns.items()}})
    shah_london = {
        "fRe_shah_london": Series(np.asarray(fre_sl), "1", "fully developed f Re, same aspect ratio"),
        "Nu_H1_shah_london": Series(np.asarray(nu_sl), "1", "fully developed Nu_H1, four walls heated"),
    }
    append_groups(folder, {"reference": shah_london, **coldplate.plot_series(None, None, stacked=solutions)})
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary
