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

OpenFOAM runs on every core of the machine, as its users run it
(``decomposePar``, ``mpirun -np <cores> chtMultiRegionSimpleFoam -parallel``,
``reconstructPar`` for the comparison; ``peers.openfoam.run_case``); its
whole-process time is mesh + decompose + solve + reconstruct.

Whole process on our side: ``thermo run`` of the same case (the bundled case
file with the scaled cell counts and the same flow tolerance) in a fresh
process, once with an empty compile cache (a new user's first run: import,
compile, solve, results.h5, XDMF, plots) and once more with the cache it
left (every later run of that mesh); wall time of the process, and the
compile and solve times it reports in summary.json.

Without OpenFOAM on PATH the suite prints that it was not run and records
nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
import subprocess
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


_TOML_CELL_KEYS = {
    "channel": "cells_channel",
    "fin": "cells_fin",
    "fin_height": "cells_fin_height",
    "base": "cells_base",
    "length": "cells_length",
    "plenum": "cells_plenum",
    "cover": "cells_cover",
}


def scaled_case_file(case: coldplate.ColdPlateCase, folder: Path) -> Path:
    """The bundled case file with ``case``'s cell counts and flow tolerance
    (``case`` from :func:`scaled_case`), written into ``folder``."""
    text = CASE.read_text(encoding="utf-8")
    head, sep, cells = text.partition("[geometry.cells]")
    body, nxt, rest = cells.partition("\n[")

    def repl(m):
        key = _TOML_CELL_KEYS.get(m.group(2))
        return m.group(0) if key is None else f"{m.group(1)}{m.group(2)} = {int(case.geometry[key])}"

    body = re.sub(r"^(\s*)(\w+)\s*=\s*\d+", repl, body, flags=re.M)
    text = head + sep + body + nxt + rest
    text, n = re.subn(r"^flow_tolerance\s*=.*$", f"flow_tolerance = {case.flow_tolerance!r}", text, flags=re.M)
    if n != 1:
        raise RuntimeError(f"{CASE}: no flow_tolerance line to set")
    path = Path(folder) / CASE.name
    path.write_text(text, encoding="utf-8")
    return path


def thermo_run(case_file: Path, out: Path, cache: Path) -> dict:
    """``thermo run case_file`` in a fresh process with the compile cache in
    ``cache``: wall time of the process, and its summary.json timing."""
    env = dict(os.environ, AIDC_THERMO_COMPILE_CACHE=str(cache))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # JAX's own setting would win over ours (thermo.compile_cache)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "aidc_thermo", "run", str(case_file), "-o", str(out), "-q"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"thermo run {case_file} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    timing = json.loads((out / "summary.json").read_text())["timing"]
    return {"wall_s": wall, **{k: v["value"] for k, v in timing.items()}}


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


def run(
    factors=(1.0, 1.5, 2.0, 3.0), repeats: int = 3, workdir: str | Path | None = None, ranks: int | None = None
) -> list[Record]:
    ranks = of.default_ranks() if ranks is None else ranks
    if not of.available(ranks):
        print(
            "openfoam: blockMesh / splitMeshRegions / chtMultiRegionSimpleFoam (and for a parallel run "
            "decomposePar / reconstructPar / mpirun) not on PATH "
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
            work = Path(tmp) / f"x{factor:g}"
            work.mkdir()
            case_file = scaled_case_file(case, work)
            first = thermo_run(case_file, work / "first", work / "cache")
            warm = thermo_run(case_file, work / "warm", work / "cache")
            fc = of.write_case(case, work / "foam", tolerance=TOLERANCE)
            foam = of.run_case(fc, ranks=ranks)
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
                        "ours_first_run_s": first["wall_s"],
                        "ours_first_run_compile_s": first["compile_s"],
                        "ours_first_run_solve_s": first["solve_s"],
                        "ours_warm_run_s": warm["wall_s"],
                        "ours_warm_run_compile_s": warm["compile_s"],
                        "ours_warm_run_solve_s": warm["solve_s"],
                        "ours_warm_programs_from_cache": warm.get("programs_from_cache", 0),
                        "ours_warm_executables_from_cache": warm.get("executables_from_cache", 0),
                        "foam_ranks": foam.ranks,
                        "foam_mesh_s": foam.mesh_s,
                        "foam_decompose_s": foam.decompose_s,
                        "foam_solve_s": foam.solve_s,
                        "foam_reconstruct_s": foam.reconstruct_s,
                        "foam_total_s": foam.total_s,
                        "foam_iterations": foam.iterations,
                        "foam_over_ours": foam.solve_s / solve_s,
                        "foam_total_over_ours_first_run": foam.total_s / first["wall_s"],
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
