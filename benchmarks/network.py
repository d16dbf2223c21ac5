"""Flow-network solves after compilation: synthetic ~1000-edge networks and
the bundled NVL72-class rack, one operating point and a vmapped batch."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels.network import solve_network
from benchmarks.harness import Record, timeit
from benchmarks.network_cases import synthetic_ladder_network


def run(repeats: int, quick: bool) -> list[Record]:
    records = []
    for shared in (False, True):
        kw = dict(n_ladders=2, n_branches=6) if quick else {}
        net, params, fluid, bnd, plates = synthetic_ladder_network(shared_loop=shared, **kw)
        solve = jax.jit(partial(solve_network, net))
        t, spread, (sol, info) = timeit(solve, params, fluid, bnd, repeats=repeats)
        assert bool(info.converged)
        records.append(
            Record(
                "network",
                f"ladders{'-pump-loop' if shared else ''}",
                "float64",
                metrics={
                    "edges": int(len(net.edge_from)),
                    "solve_s": t,
                    "solve_spread_s": spread,
                    "newton_iterations": int(info.iterations),
                },
                check={"residual": float(info.residual)},
            )
        )
    # the bundled NVL72-class rack: flows, pressures and plate temperatures
    from pathlib import Path

    from aidc_thermo.io.case import load
    from aidc_thermo.models import rack

    case = rack.parse(load(Path(__file__).resolve().parents[1] / "cases" / "rack_nvl72.toml"))
    # the rack's protocol solve (edge parameters from Params, Newton, temperatures, junctions)
    static, params = rack.build(case)
    rn = rack.build_network(case, jnp.float64)
    t, spread, solution = timeit(rack.compiled_solve(static), params, repeats=repeats)
    info = solution.info
    assert bool(info.converged)
    records.append(
        Record(
            "network",
            "rack_nvl72",
            "float64",
            metrics={
                "edges": int(rn.network.n_edges),
                "solve_s": t,
                "solve_spread_s": spread,
                "newton_iterations": int(info.iterations),
            },
            check={"residual": float(info.residual)},
        )
    )
    # a batch of operating points: scale the fixed supply pressures
    net, params, fluid, bnd, plates = synthetic_ladder_network(**(dict(n_ladders=2, n_branches=6) if quick else {}))
    n_batch = 16 if quick else 1000
    scales = jnp.linspace(0.8, 1.2, n_batch)

    def one(s):
        b = dataclasses.replace(bnd, pressure=bnd.pressure * s)
        sol, info = solve_network(net, params, fluid, b)
        return sol.flow[jnp.asarray(plates)], info.converged

    batched = jax.jit(jax.vmap(one))
    t, spread, (flows, ok) = timeit(batched, scales, repeats=max(2, repeats // 2))
    assert bool(np.all(np.asarray(ok)))
    records.append(
        Record(
            "network",
            f"ladders-batch{n_batch}",
            "float64",
            metrics={
                "edges": int(len(net.edge_from)),
                "solve_s": t,
                "solve_spread_s": spread,
                "per_point_s": t / n_batch,
            },
            check={"all_converged": True},
        )
    )
    return records
