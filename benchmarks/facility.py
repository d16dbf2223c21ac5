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


def run(repeats: int, hours: int | None = None) -> list[Record]:
    records = []
    for name in ("nvl72_dry_cooler_temperate", "nvl72_chiller_tower_hot_humid"):
        case_file = load(CASES / f"{name}.toml")
        case = facility.parse(case_file)
        static, params = facility.build(case)
        if hours is not None:
            params = params._replace(
                ambient=jax.tree_util.tree_map(lambda a: a[:hours], params.ambient),
                utilization=params.utilization[:hours],
            )
            static = dataclasses.replace(static, hours=hours, times=static.times[:hours])
        # the protocol's solve: every hour of one design, coolant properties at its setpoint
        solve = facility.compiled_solve(static, batched=False)
        t, spread, (ops, infos) = timeit(solve, params, repeats=repeats)
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
