"""Annual (8760-hour) coupled facility solve of the bundled NVL72 halls, after
compilation: every hour's junction temperature / chip power / cooling chain
solved by Newton, vmapped over the hours."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from aidc_thermo.io.case import load
from aidc_thermo.models import facility
from benchmarks.harness import Record, timeit

CASES = Path(__file__).resolve().parents[1] / "cases"


def _first_hours(static, params, hours: int | None):
    """The design over its first ``hours`` hours (all of them for None)."""
    if hours is None:
        return static, params
    params = params._replace(
        ambient=jax.tree_util.tree_map(lambda a: a[:hours], params.ambient), utilization=params.utilization[:hours]
    )
    return dataclasses.replace(static, hours=hours, times=static.times[:hours]), params


def run(repeats: int, hours: int | None = None) -> list[Record]:
    records = []
    for name in ("nvl72_dry_cooler_temperate", "nvl72_chiller_tower_hot_humid"):
        case_file = load(CASES / f"{name}.toml")
        case = facility.parse(case_file)
        static, params = _first_hours(*facility.build(case), hours)
        # the protocol's solve: every hour of one design, coolant properties at its setpoint
        solve = facility.compiled_solve(static, batched=False)
        # at least a second of calls: a year of the single-accelerator hall takes about 30 ms, its median over
        # three calls varied by up to 1.9x between runs on an idle machine
        t, spread, sol = timeit(solve, params, repeats=repeats, min_time=1.0)
        ops, infos = sol[:2]
        util = params.utilization
        assert bool(np.all(np.asarray(infos.converged))), name
        records.append(
            Record(
                "facility_year",
                name,
                str(np.asarray(util).dtype),
                metrics={
                    "hours": int(np.asarray(util).size),
                    "solve_s": t,
                    "solve_spread_s": spread,
                    "hours_per_s": np.asarray(util).size / t,
                    "newton_iterations_max": int(np.asarray(infos.iterations).max()),
                },
                check={
                    "residual_max_K": float(np.asarray(infos.residual).max()),
                    "T_junction_max_degC": float(np.asarray(ops.t_j).max()) - 273.15,
                },
            )
        )
    return records


def run_chain(repeats: int, quick: bool = False) -> list[Record]:
    """The chain of the README's main job (cases/nvl72_racks_dry_cooler_temperate.toml), timed part by part on
    the same machine: the GPU plate's curves (compact finite-volume solve of every curve flow, first call with
    compilation and compiled), the rack network's hydraulics alone (rack_nvl72.toml, compiled), the coupled
    year of the rack hall (576 accelerators, rack network, plant; compiled) and the uncoupled year of the
    single-accelerator hall (compiled) as the baseline. ``quick``: a 12 x 12 plate and 48 hours."""
    import re
    import tempfile
    import time

    from aidc_thermo.models import compact, rack

    hours = 48 if quick else None
    with tempfile.TemporaryDirectory() as tmp:
        plate_text = (CASES / "compact_gpu_coldplate.toml").read_text()
        # written elsewhere: the plate's closure table by absolute path
        table = (CASES / "data" / "gpu_closures.csv").as_posix()
        plate_text = plate_text.replace('closures = "data/gpu_closures.csv"', f'closures = "{table}"', 1)
        if quick:
            plate_text = re.sub(r"cells = \[\d+, \d+\]", "cells = [12, 12]", plate_text)
        plate_path = Path(tmp) / "compact_gpu_coldplate.toml"
        plate_path.write_text(plate_text)
        plate_file = load(plate_path)
        plate = compact.parse(plate_file)
        t0 = time.perf_counter()
        compact.solve_curves(plate, plate_file)
        curve_first = time.perf_counter() - t0
        curve_s, curve_spread, curves = timeit(lambda: compact.solve_curves(plate, plate_file), repeats=repeats)

    rack_case = rack.parse(load(CASES / "rack_nvl72.toml"))
    r_static, r_params = rack.build(rack_case)
    network_s, network_spread, _ = timeit(rack.compiled_solve(r_static), r_params, repeats=repeats)

    def year(name):
        case = facility.parse(load(CASES / f"{name}.toml"))
        static, params = _first_hours(*facility.build(case), hours)
        # a compilation of its own for the first call (facility_year, run before in the same process, may have
        # compiled the same hall's year)
        facility.compiled_solve.cache_clear()
        solve = facility.compiled_solve(static, batched=False)
        t0 = time.perf_counter()
        jax.block_until_ready(solve(params))
        first = time.perf_counter() - t0
        # at least a second of calls: a year of the single-accelerator hall takes about 30 ms, its median over
        # three calls varied by up to 1.9x between runs on an idle machine
        t, spread, sol = timeit(solve, params, repeats=repeats, min_time=1.0)
        ops, infos = sol[:2]
        assert bool(np.all(np.asarray(infos.converged))), name
        return first, t, spread, ops, int(np.asarray(params.utilization).size)

    c_first, c_s, c_spread, c_ops, n_hours = year("nvl72_racks_dry_cooler_temperate")
    u_first, u_s, u_spread, _, _ = year("nvl72_dry_cooler_temperate")
    return [
        Record(
            "chain",
            "nvl72_racks_dry_cooler_temperate",
            "float64",
            metrics={
                "hours": n_hours,
                "plate_cells": f"{plate.cells[0]}x{plate.cells[1]}",
                "curve_flows": len(curves.flow),
                "curves_first_s": curve_first,
                "curves_s": curve_s,
                "curves_spread_s": curve_spread,
                "rack_network_s": network_s,
                "rack_network_spread_s": network_spread,
                "coupled_year_first_s": c_first,
                "coupled_year_s": c_s,
                "coupled_year_spread_s": c_spread,
                "uncoupled_year_first_s": u_first,
                "uncoupled_year_s": u_s,
                "uncoupled_year_spread_s": u_spread,
                "coupled_over_uncoupled": c_s / u_s,
                "chain_after_compile_s": curve_s + c_s,
            },
            check={"T_junction_max_degC": float(np.asarray(c_ops.t_j).max()) - 273.15},
        )
    ]
