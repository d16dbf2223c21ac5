"""OpenFOAM side by side: the straight-fin unit cell (cases/coldplate_unit_cell.toml)
solved by ours (``resolved_coldplate``) and by chtMultiRegionSimpleFoam
(benchmarks/peers/openfoam.py) on the same mesh, cell for cell, for a mesh
study (the bundled grid scaled in every direction).

Ours: compiled first (the first call's time minus a solve is the compile
time), then timed solves with ``block_until_ready`` (median). OpenFOAM:
blockMesh + splitMeshRegions timed apart from the solver, which runs until
every initial residual is below 1e-6; ours runs to the same level, a scaled
flow residual of 1e-6 (at which dP and R agree with a 1e-8 solve to about
1e-5), and its energy deferred correction converged. Both compute dP, R_max,
R_mean and the outlet bulk temperature with the same function
(``peers.openfoam.quantities``, the formulas of ``thermo.models.coldplate.run``).

Without OpenFOAM on PATH the suite prints that it was not run and records
nothing.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from aidc_thermo.io import case as case_io
from aidc_thermo.models import coldplate
from benchmarks.harness import Record
from benchmarks.peers import openfoam as of

CASE = Path(__file__).resolve().parents[1] / "cases" / "coldplate_unit_cell.toml"
TOLERANCE = 1e-6  # OpenFOAM's initial residuals

_CELL_KEYS = ("cells_channel", "cells_fin_height", "cells_base", "cells_length", "cells_plenum", "cells_cover")


def scaled_case(case: coldplate.ColdPlateCase, factor: float) -> coldplate.ColdPlateCase:
    """The case with its cell counts scaled by ``factor`` in every direction
    (fin cells kept even: the unit cell holds two half fins)."""
    geom = dict(case.geometry)
    for key in _CELL_KEYS:
        if key in geom:
            geom[key] = max(1, round(geom[key] * factor))
    geom["cells_fin"] = max(2, 2 * round(geom["cells_fin"] * factor / 2))
    return dataclasses.replace(case, geometry=geom, flow_tolerance=TOLERANCE)


def ours_quantities(case: coldplate.ColdPlateCase, sol) -> dict:
    g = sol.geometry
    u, T, p = (np.asarray(a, np.float64) for a in (sol.state.u, sol.T, sol.state.p))
    dy, dz = np.diff(g.faces[1]), np.diff(g.faces[2])
    flow_out = (u[-1] * dy[:, None] * dz[None, :]).ravel()
    return of.quantities(case, g, T, p, flow_out, T[-1].ravel())


def _time_ours(case, repeats: int):
    def once():
        sol = coldplate.solve(case)
        jax.block_until_ready((sol.T, sol.state.p))
        return sol

    t0 = time.perf_counter()
    sol = once()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sol = once()
        times.append(time.perf_counter() - t0)
    if not (bool(sol.flow_info.converged) and bool(sol.energy_info.converged)):
        raise RuntimeError(f"our solve did not converge on {case.geometry}")
    solve_s = statistics.median(times)
    return sol, solve_s, max(first - solve_s, 0.0), max(times) - min(times)


def _pct(a: float, b: float) -> float:
    return 100.0 * (a - b) / b


def run(factors=(1.0, 1.5, 2.0), repeats: int = 3, workdir: str | Path | None = None) -> list[Record]:
    if not of.available():
        print(
            "openfoam: blockMesh / splitMeshRegions / chtMultiRegionSimpleFoam not on PATH "
            "(apt-get install openfoam): the OpenFOAM peer benchmark was NOT run, nothing recorded",
            file=sys.stderr,
            flush=True,
        )
        return []
    base = coldplate.parse(case_io.load(CASE))
    records = []
    with tempfile.TemporaryDirectory(prefix="openfoam-peer-", dir=workdir) as tmp:
        for factor in factors:
            case = scaled_case(base, factor)
            sol, solve_s, compile_s, spread = _time_ours(case, repeats)
            ours = ours_quantities(case, sol)
            fc = of.write_case(case, Path(tmp) / f"x{factor:g}", tolerance=TOLERANCE)
            foam = of.run_case(fc)
            if not foam.converged:
                raise RuntimeError(
                    f"OpenFOAM did not reach {TOLERANCE:g} in {foam.iterations} iterations ({fc.folder})"
                )
            theirs = foam.quantities
            t_in = case.inlet_temperature
            rise = ours["T_outlet_bulk"] - t_in
            cells = int(np.prod(sol.geometry.shape))
            records.append(
                Record(
                    "openfoam_peer",
                    f"x{factor:g}",
                    "float64",
                    metrics={
                        "cells": cells,
                        "shape": "x".join(map(str, sol.geometry.shape)),
                        "ours_solve_s": solve_s,
                        "ours_solve_spread_s": spread,
                        "ours_compile_s": compile_s,
                        "ours_flow_iterations": int(sol.flow_info.iterations),
                        "foam_mesh_s": foam.mesh_s,
                        "foam_solve_s": foam.solve_s,
                        "foam_iterations": foam.iterations,
                        "foam_over_ours": foam.solve_s / solve_s,
                        "dp_ours_Pa": ours["dp"],
                        "dp_foam_Pa": theirs["dp"],
                        "dp_diff_pct": _pct(theirs["dp"], ours["dp"]),
                        "dp10_diff_pct": _pct(theirs["dp_10pct"], ours["dp_10pct"]),
                        "R_max_ours": ours["R_max"],
                        "R_max_diff_pct": _pct(theirs["R_max"], ours["R_max"]),
                        "R_mean_ours": ours["R_mean"],
                        "R_mean_diff_pct": _pct(theirs["R_mean"], ours["R_mean"]),
                        "T_out_ours_degC": ours["T_outlet_bulk"] - 273.15,
                        "T_out_diff_K": theirs["T_outlet_bulk"] - ours["T_outlet_bulk"],
                        "T_out_diff_pct_of_rise": 100.0 * (theirs["T_outlet_bulk"] - ours["T_outlet_bulk"]) / rise,
                    },
                    check={"foam_tolerance": TOLERANCE, "ours_flow_tolerance": case.flow_tolerance},
                )
            )
    return records
