"""Resolved cold plate: the bundled straight-fin unit cell
(cases/coldplate_unit_cell.toml) refined to about 50k, 200k and 800k cells,
float64 and float32. Compilation is timed apart from the solve (ahead-of-time
lower + compile); the flow solve runs to a scaled residual of 1e-6 (float64)
or 1e-5 (float32), then the conjugate energy solve. Records outer iterations,
cells x outer iterations per second, dP and R, and the residual histories
(plotted by ``python -m benchmarks report``)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import load
from aidc_thermo.kernels import energy
from aidc_thermo.models import coldplate as cp
from benchmarks.correlation import unit_cell_estimate
from benchmarks.harness import Record

CASE = Path(__file__).resolve().parents[1] / "cases" / "coldplate_unit_cell.toml"

# cells across (channel, whole fin, fin height, base, length); y = channel + fin,
# z = fin height + base, x = length
MESHES = {
    "6k": (8, 4, 12, 4, 32),
    "49k": (16, 8, 24, 8, 64),
    "195k": (24, 12, 40, 12, 104),
    "806k": (40, 20, 60, 20, 168),
}
TOLERANCE = {"float64": 1e-6, "float32": 1e-5}


def unit_cell(mesh: str, precision: str) -> cp.ColdPlateCase:
    case = cp.parse(load(CASE))
    geom = dict(case.geometry)
    keys = ("cells_channel", "cells_fin", "cells_fin_height", "cells_base", "cells_length")
    geom.update(zip(keys, MESHES[mesh], strict=True))
    return dataclasses.replace(
        case, geometry=geom, precision=precision, flow_tolerance=TOLERANCE[precision], max_outer=1000
    )


def _compile(jitted, *args):
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def solve_timed(case: cp.ColdPlateCase, line_solver: str | None = None):
    """Solve ``case`` with compilation and execution timed apart; returns
    ``(Solution, timings)``. ``line_solver``: the multigrid line solves of both
    solvers (``"scan"``, ``"parallel"``; None: the kernels' default, ``"auto"``)."""
    pb = cp.setup(case)
    if line_solver is not None:
        ec = pb.energy_config
        pb = dataclasses.replace(
            pb,
            flow_spec=dataclasses.replace(pb.flow_spec, line_solver=line_solver),
            energy_config=dataclasses.replace(ec, krylov=dataclasses.replace(ec.krylov, line_solver=line_solver)),
        )
    fargs = (pb.grid, pb.solid, pb.flow_params, pb.flow_boundary)
    jit_flow, jit_energy = cp.compiled_solvers()
    flow_c, t_cf = _compile(jit_flow, *fargs, pb.flow_spec)
    (state, finfo), t_flow = _timed(flow_c, *fargs)
    flows = energy.face_flows(pb.grid, state.u, state.v, state.w, pb.rho_cp)
    eargs = (pb.grid, pb.k, pb.q, pb.thermal_bcs, flows)
    energy_c, t_ce = _compile(jit_energy, *eargs, pb.energy_config)
    (T, einfo, inner), t_energy = _timed(energy_c, *eargs)
    heat = energy.heat_balance(pb.grid, pb.k, pb.q, pb.thermal_bcs, flows, T, pb.energy_config.outlets)
    sol = cp.Solution(pb.geometry, state, finfo, T, einfo, inner, heat, pb.flux_map)
    return sol, {"compile_flow_s": t_cf, "flow_s": t_flow, "compile_energy_s": t_ce, "energy_s": t_energy}


def run(meshes, dtypes) -> list[Record]:
    records = []
    for precision in dtypes:
        for mesh in meshes:
            case = unit_cell(mesh, precision)
            sol, t = solve_timed(case)
            cells = int(np.prod(sol.geometry.shape))
            try:
                summary, _ = cp.summarize(case, sol)  # raises if a solve did not converge
            except SolveError as exc:
                # recorded as a failure (python -m benchmarks exits non-zero); the other meshes still run
                failure = Record("coldplate_unit_cell", mesh, precision, {"cells": cells, **t}, {"error": str(exc)})
                records.append(failure)
                continue
            fi, ei = sol.flow_info, sol.energy_info
            outer = int(fi.iterations)
            hist = np.asarray(fi.history, np.float64)[: outer + 1]
            records.append(
                Record(
                    "coldplate_unit_cell",
                    mesh,
                    precision,
                    metrics={
                        "cells": cells,
                        "flow_outer_iterations": outer,
                        "energy_iterations": int(ei.iterations),
                        "energy_inner_iterations": int(sol.energy_inner),
                        **t,
                        "solve_s": t["flow_s"] + t["energy_s"],
                        "cells_outer_per_s": cells * outer / t["flow_s"],
                        "dp_Pa": summary["pressure_drop"].value,
                        "R_max_KpW": summary["R_max"].value,
                        "R_mean_KpW": summary["R_mean"].value,
                        "T_outlet_degC": summary["T_outlet_bulk"].value,
                        **{f"{k}_1d": v for k, v in unit_cell_estimate(case).items()},
                    },
                    check={
                        "flow_tolerance": case.flow_tolerance,
                        "flow_residual": float(fi.residual),
                        "mass_imbalance": float(fi.mass_imbalance),
                        "heat_balance_error": summary["heat_balance_error"].value,
                        "flow_residual_history": [float(h) for h in hist],
                    },
                )
            )
    return records


def run_line_solvers(meshes, precision: str = "float64") -> list[Record]:
    """The unit cell with the multigrid's line systems (pressure and energy)
    solved as scans and as parallel prefixes, on the default device: the
    measurement behind ``line_solver="auto"`` (kernels/solvers/multigrid.py),
    which takes the scan on the CPU and the parallel form elsewhere. Each
    record is one form; the parallel one carries its times over the scan's."""
    records = []
    for mesh in meshes:
        case = unit_cell(mesh, precision)
        got = {}
        for method in ("scan", "parallel"):
            sol, t = solve_timed(case, method)
            summary, _ = cp.summarize(case, sol)
            got[method] = {
                "cells": int(np.prod(sol.geometry.shape)),
                "flow_outer_iterations": int(sol.flow_info.iterations),
                "pressure_iterations": int(sol.flow_info.pressure_iterations),
                "energy_inner_iterations": int(sol.energy_inner),
                **t,
                "dp_Pa": summary["pressure_drop"].value,
                "R_max_KpW": summary["R_max"].value,
            }
        scan, par = got["scan"], got["parallel"]
        for key in ("compile_flow_s", "flow_s", "compile_energy_s", "energy_s"):
            par[f"{key}_over_scan"] = par[key] / scan[key]
        check = {
            "dp_rel_diff": abs(par["dp_Pa"] / scan["dp_Pa"] - 1.0),
            "R_max_rel_diff": abs(par["R_max_KpW"] / scan["R_max_KpW"] - 1.0),
        }
        records += [Record("line_solvers", f"{mesh} {m}", precision, got[m], check) for m in ("scan", "parallel")]
    return records
