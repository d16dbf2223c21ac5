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

Outputs: ``closures.csv`` (``# key = value`` header lines with the unit
cell's geometry, then one row per Reynolds number), ``results.h5``
(``/closures/<column>`` with units, the geometry as attributes of
``/closures``), ``summary.json``, ``closures.png``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

from aidc_thermo import bounds, progress
from aidc_thermo.coolant import Coolant, read_coolant
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseFile, Table, read_header, read_plots_flag
from aidc_thermo.io.results import Quantity, Series, append_groups, results_h5, write_series_results
from aidc_thermo.models import coldplate

__all__ = [
    "CASE_TYPE",
    "CalibrationCase",
    "ClosureTable",
    "ClosureTableError",
    "parse",
    "run",
    "calibrate",
    "unit_cell_closures",
    "apparent_nusselt",
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
    )
    try:
        coldplate.build_geometry(_resolved_case(case, reynolds[0]))
    except ValueError as exc:
        raise root.error("geometry", str(exc)) from None
    return case


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


def apparent_nusselt(u_plan, channel_width, fin_thickness, fin_height, k_fin, k_fluid) -> float:
    """``Nu = h D_h / k_f`` whose base-to-fluid conductance per plan area in
    the compact model, ``U = (h / p) (w + 2 H eta(h))``, equals ``u_plan``
    (W/m^2/K). Raises ValueError for ``u_plan <= 0``."""
    w, t, H = channel_width, fin_thickness, fin_height
    p = w + t
    dh = 2 * w * H / (w + H)
    if not u_plan > 0 or not math.isfinite(u_plan):
        raise ValueError(f"base-to-fluid conductance {u_plan:.4g} W/m^2/K is not positive")

    def excess(log_h):
        h = math.exp(log_h)
        mh = math.sqrt(2 * h / (k_fin * t)) * H
        eta = math.tanh(mh) / mh if mh > 1e-8 else 1.0
        return math.log(h / p * (w + 2 * H * eta)) - math.log(u_plan)

    from scipy.optimize import brentq

    h = math.exp(brentq(excess, math.log(1e-6), math.log(1e14), xtol=1e-14, rtol=1e-13))
    return h * dh / k_fluid


def unit_cell_closures(case: coldplate.ColdPlateCase, sol: coldplate.Solution) -> dict[str, float]:
    """Reduce a converged resolved unit cell (no plena) to the closure-table
    columns (see the module docstring)."""
    g = case.geometry
    w, t, H, dh = _dims(g)
    L, tb = g["length"], g["base_thickness"]
    p = w + t
    t_in = case.inlet_temperature
    rho, mu, cp, kf = _props(case.coolant, t_in)
    u_c = case.flow_rate / (w * H)
    dp = coldplate.pressure_drop(sol)
    r_max, r_mean, power = coldplate.thermal_resistances(case, sol)
    area = p * L
    q = power / area
    inv_u = r_mean * area - area / (2 * rho * cp * case.flow_rate) - tb / case.solid_k  # first guess
    geom = sol.geometry
    xf, yf, zf = geom.faces
    xc = geom.centers(0)
    dy, dz = np.diff(yf), np.diff(zf)
    fluid = geom.material == coldplate.geo.FLUID
    dA = (dy[:, None] * dz[None, :])[None] * fluid
    P = np.asarray(sol.state.p, np.float64)
    T = np.asarray(sol.T, np.float64)
    u = np.asarray(sol.state.u, np.float64)
    uc = 0.5 * (u[1:] + u[:-1]) * dA
    p_mean = (P * dA).sum(axis=(1, 2)) / dA.sum(axis=(1, 2))
    t_bulk = (T * uc).sum(axis=(1, 2)) / uc.sum(axis=(1, 2))
    t_bottom = (coldplate.bottom_temperature(case, sol) * dy[None, :]).sum(axis=1) / dy.sum()
    window = (xc >= LOCAL_WINDOW[0] * L) & (xc <= LOCAL_WINDOW[1] * L)
    if window.sum() < 2:
        raise ValueError("the unit cell needs at least 2 cells in 0.6 L .. 0.9 L; give more cells.length")
    slope = np.polyfit(xc[window], p_mean[window], 1)[0]
    inv_u_local = float(np.mean(t_bottom[window] - t_bulk[window])) / q - tb / case.solid_k
    nu = {}
    for key, value in (("Nu_apparent", inv_u), ("Nu_local", inv_u_local)):
        try:
            nu[key] = apparent_nusselt(1.0 / value if value > 0 else -1.0, w, t, H, case.solid_k, kf)
        except ValueError:
            raise SolveError(
                f"{key}: the resolved unit cell leaves no positive convective resistance at Re "
                f"{rho * u_c * dh / mu:.4g} (the fluid temperature rise or the base dominates R); "
                "calibrate at higher Re or on a shorter cell"
            ) from None
    fre_app = dp * dh**2 / (2 * mu * u_c * L)
    return {
        "Re": rho * u_c * dh / mu,
        "fRe_apparent": fre_app,
        "Nu_apparent": _fit_nusselt(case, fre_app, r_mean, nu["Nu_apparent"]),
        "fRe_local": -slope * dh**2 / (2 * mu * u_c),
        "Nu_local": nu["Nu_local"],
        "channel_velocity": u_c,
        "pressure_drop": dp,
        "R_mean": r_mean,
        "R_max": r_max,
    }


_COMPACT_CELLS = 64


@cache
def _compact_unit_cell_r_mean_jit():
    """:func:`_compact_unit_cell_r_mean`, compiled (once; JAX is imported on
    first use, not with this module, so that thermo check starts no JAX)."""
    import jax

    return jax.jit(_compact_unit_cell_r_mean)


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


def _fit_nusselt(case: coldplate.ColdPlateCase, fre, r_mean, guess) -> float:
    """Nu with which the compact unit cell has ``r_mean`` (bracketed root in log Nu)."""
    import jax.numpy as jnp
    from scipy.optimize import brentq

    g = case.geometry
    rho, mu, cp, kf = _props(case.coolant, case.inlet_temperature)
    dims = jnp.asarray(
        [
            g["channel_width"],
            g["fin_thickness"],
            g["fin_height"],
            g["base_thickness"],
            g["length"],
            case.solid_k,
            case.heat_flux,
            case.flow_rate,
        ]
    )
    props = jnp.asarray([mu, kf, rho * cp, case.inlet_temperature])

    def excess(log_nu):
        nu = math.exp(log_nu)
        r, ok, (t_min, fluid_max, solid_max) = _compact_unit_cell_r_mean_jit()(
            dims, props, jnp.asarray(fre), jnp.asarray(nu)
        )
        if not bool(ok):
            raise SolveError("compact unit cell did not converge while fitting Nu")
        # the maximum principle (thermo.bounds): heat only added, the inlet the only cold boundary
        where = {"locate": lambda _: f"the compact unit cell with Nu = {nu:.4g}", "precision": case.precision}
        t_in = case.inlet_temperature
        extremes = [float(t_min), float(fluid_max), float(solid_max)]
        bounds.check("compact unit-cell temperature", extremes, lower=t_in, lower_why="the inlet", **where)
        bounds.check(
            "compact unit-cell fluid temperature",
            [float(fluid_max)],
            upper=max(float(solid_max), t_in),
            upper_why="the hottest solid",
            **where,
        )
        return math.log(float(r)) - math.log(r_mean)

    lo, hi = math.log(guess / 20), math.log(guess * 20)
    if excess(lo) * excess(hi) > 0:
        raise SolveError(
            f"no Nu in {guess / 20:.3g}..{guess * 20:.3g} gives the compact unit cell the resolved R_mean "
            f"{r_mean:.4g} K/W (fluid temperature rise or base dominate R); calibrate at higher Re"
        )
    return math.exp(brentq(excess, lo, hi, xtol=1e-10, rtol=1e-10))


@dataclass(frozen=True)
class ClosureTable:
    """A closure table: ``columns`` (name -> array over the rows, increasing
    ``Re``) and ``meta`` (geometry of the calibration cell, SI)."""

    columns: dict[str, np.ndarray]
    meta: dict[str, float]


def calibrate(case: CalibrationCase, solutions: list | None = None) -> tuple[ClosureTable, dict]:
    """Solve the unit cell at every Reynolds number; ``(table, diagnostics)``.
    ``solutions``, when given, receives ``(resolved case, solution)`` per
    Reynolds number."""
    rows, diag = [], {"flow_iterations": [], "energy_iterations": [], "heat_balance_error": []}
    for point, re in enumerate(case.reynolds):
        cp_case = _resolved_case(case, re)
        sol = coldplate.solve(cp_case)
        try:
            coldplate.check_converged(cp_case, sol)
        except SolveError as exc:
            raise SolveError(f"unit cell at Re {re:g}: {exc}") from None
        rows.append(unit_cell_closures(cp_case, sol))
        if solutions is not None:
            solutions.append((cp_case, sol))
        added, removed = (float(x) for x in sol.heat)
        diag["flow_iterations"].append(int(sol.flow_info.iterations))
        diag["energy_iterations"].append(int(sol.energy_info.iterations))
        diag["heat_balance_error"].append(abs(added - removed) / added)
        progress.step("Reynolds number", point + 1, len(case.reynolds))
    columns = {k: np.array([r[k] for r in rows]) for k in COLUMNS}
    g = case.geometry
    _, _, _, kf = _props(case.coolant, case.inlet_temperature)
    meta = {k: float(g[k]) for k in ("channel_width", "fin_thickness", "fin_height", "base_thickness", "length")}
    meta["fin_conductivity"] = case.solid_k
    meta["prandtl"] = float(case.coolant.prandtl(case.inlet_temperature))
    return ClosureTable(columns, meta), {k: np.array(v) for k, v in diag.items()}


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
            fh.write(f"# {key} = {table.meta[key]:.10g}\n")
        w = csv.writer(fh)
        w.writerow(list(table.columns))
        for i in range(len(table.columns["Re"])):
            w.writerow([f"{table.columns[k][i]:.10g}" for k in table.columns])


def read_closure_table(path: str | Path, required=("fRe_apparent", "Nu_apparent")) -> ClosureTable:
    """Read a CSV closure table (as written by ``thermo calibrate``). Needs
    the column ``Re`` (at least two rows, increasing) and the ``required``
    columns (finite, positive), and the geometry lines ``channel_width``,
    ``fin_height``, ``length``; raises :class:`ClosureTableError`."""
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
    for key in ("channel_width", "fin_height", "length"):
        if key not in meta:
            raise bad(f"missing the header line '# {key} = <value in m>'")
    if not body:
        raise bad("no header row and no data")
    header = [h.strip() for h in next(csv.reader([body[0][1]]))]
    for col in ("Re", *required):
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
    for col in ("Re", *required):
        bad_rows = np.flatnonzero(~np.isfinite(out[col]))
        if bad_rows.size:
            i = int(bad_rows[0])
            raise bad(f"line {lines[i]} (data row {i + 1}), column '{col}': {out[col][i]} is not a finite number")
    if len(out["Re"]) < 2:
        raise bad("needs at least two rows (Reynolds numbers) to interpolate")
    if np.any(np.diff(out["Re"]) <= 0) or not out["Re"][0] > 0:
        raise bad("column 'Re' must be positive and increasing")
    for col in required:
        if not np.all(np.isfinite(out[col])) or np.any(out[col] <= 0):
            raise bad(f"column '{col}' must be finite and positive")
    return ClosureTable(out, meta)


# ----------------------------------------------------------------------------- run


def run(case: CalibrationCase, case_file: CaseFile, folder: Path) -> dict[str, Quantity]:
    """Calibrate and write the table, results.h5, summary.json and a plot."""
    from aidc_thermo.kernels import porous

    solutions: list = []
    table, diag = calibrate(case, solutions)
    progress.phase("write")
    cols, meta = table.columns, table.meta
    w, t, H, dh = _dims(case.geometry)
    alpha = min(w, H) / max(w, H)
    fre_sl = float(porous.shah_london_fre(np.asarray(alpha)))
    nu_sl = float(porous.shah_london_nu_h1(np.asarray(alpha)))
    write_closure_table(folder / "closures.csv", table, case.name)
    summary = {
        "case": Quantity(case.name),
        "points": Quantity(len(cols["Re"])),
        "Re_min": Quantity(float(cols["Re"][0]), "", "channel Reynolds number rho u_c D_h / mu"),
        "Re_max": Quantity(float(cols["Re"][-1])),
        "aspect_ratio": Quantity(alpha, "", "channel short / long side"),
        "fRe_local_at_Re_min": Quantity(float(cols["fRe_local"][0]), "", "Fanning f Re over 0.6-0.9 L"),
        "fRe_shah_london": Quantity(fre_sl, "", "fully developed, same aspect ratio"),
        "Nu_local_at_Re_min": Quantity(float(cols["Nu_local"][0]), "", "Nu on D_h over 0.6-0.9 L"),
        "Nu_H1_shah_london": Quantity(nu_sl, "", "fully developed, four walls heated"),
        "fRe_apparent_at_Re_max": Quantity(float(cols["fRe_apparent"][-1]), "", "whole channel, entrance included"),
        "Nu_apparent_at_Re_max": Quantity(float(cols["Nu_apparent"][-1]), "", "reproduces R_mean"),
        "heat_balance_error_max": Quantity(float(diag["heat_balance_error"].max()), "", "|added - removed| / added"),
        "flow_iterations_max": Quantity(int(diag["flow_iterations"].max())),
    }
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
    shah_london = {
        "fRe_shah_london": Series(np.asarray(fre_sl), "1", "fully developed f Re, same aspect ratio"),
        "Nu_H1_shah_london": Series(np.asarray(nu_sl), "1", "fully developed Nu_H1, four walls heated"),
    }
    append_groups(folder, {"reference": shah_london, **coldplate.plot_series(None, None, stacked=solutions)})
    if case.plots:
        from aidc_thermo.plots.figures import plot_results

        plot_results(folder)
    return summary
