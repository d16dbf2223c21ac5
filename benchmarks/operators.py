"""Throughput of the hot operators besides conduction (which the conduction
suite covers with its V-cycle): the conjugate advection-diffusion apply, the
momentum residual (``flow.residuals``: three momentum assemblies plus
continuity, what every outer iteration of the flow solver starts with, and
the momentum equations' loop-invariant geometry, which the solver builds
once per solve; at 64^3 in float64 on the 2-core AMD EPYC machine the
geometry takes 23-30 ms of the 79-86 ms, the three assemblies 37 ms, 85 ms
before they read their neighbours from inputs with a ghost layer) and the
network edge laws (the network residual's cost) over a batch of operating
points.

Effective bandwidth counts the minimal traffic of each operator (every input
array read once, the output written once); a fused kernel cannot move less,
so the roofline fraction is a lower bound on how well the memory system is
used.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels import advdiff, energy, flow
from aidc_thermo.kernels import conduction as cd
from aidc_thermo.kernels.fv.grid import uniform_grid
from aidc_thermo.kernels.network import edge_pressure_loss
from benchmarks.harness import Record, timeit
from benchmarks.network_cases import synthetic_ladder_network


def _cube_flow(n: int, dtype):
    """A duct-like cube: inlet at x-, outlet at x+, walls elsewhere, a solid
    block in the middle; a smooth random velocity field as the state."""
    grid = uniform_grid((n, n, n), (1e-3, 1e-3, 1e-3), dtype=dtype)
    solid = np.zeros((n, n, n), bool)
    solid[n // 3 : n // 2, n // 4 : 3 * n // 4, : n // 2] = True
    rng = np.random.default_rng(n)
    u = jnp.asarray(0.5 + 0.1 * rng.standard_normal((n + 1, n, n)), dtype)
    v = jnp.asarray(0.1 * rng.standard_normal((n, n + 1, n)), dtype)
    w = jnp.asarray(0.1 * rng.standard_normal((n, n, n + 1)), dtype)
    p = jnp.asarray(rng.standard_normal((n, n, n)), dtype)
    zero = jnp.zeros((), dtype)
    bnd = flow.flow_boundary(grid, {"x-": jnp.stack([jnp.asarray(0.5, dtype), zero, zero])})
    params = flow.FlowParams(
        rho=jnp.asarray(997.0, dtype),
        mu=jnp.asarray(8e-4, dtype),
        dt=jnp.asarray(1e-3, dtype),
        body_force=jnp.zeros((3,), dtype),
    )
    spec = flow.FlowSpec(bc=("inlet", "outlet", "wall", "wall", "wall", "wall"))
    return grid, jnp.asarray(solid), params, bnd, spec, flow.FlowState(u, v, w, p)


def _advdiff_operator(grid, solid, state, dtype):
    k = jnp.where(solid, 390.0, 0.6).astype(dtype)
    bcs = cd.BoundaryConditions(**{name: cd.face_bc(grid, name, dtype=dtype) for name, _, _ in cd.FACES})
    flows = energy.face_flows(grid, state.u, state.v, state.w, 4.18e6)
    return energy.operator(grid, k, bcs, flows)


def run(sizes, dtypes, bandwidth_gbps: float, repeats: int, batch: int = 1000) -> list[Record]:
    records = []
    for dtype in dtypes:
        itemsize = jnp.dtype(dtype).itemsize
        for n in sizes:
            grid, solid, params, bnd, spec, state = _cube_flow(n, dtype)
            cells = n**3
            op = jax.jit(partial(_advdiff_operator, dtype=dtype))(grid, solid, state)
            x = state.p
            t_ad, _, y = timeit(jax.jit(advdiff.apply), op, x, repeats=max(repeats, 10))
            assert bool(jnp.all(jnp.isfinite(y)))
            # x, c, three conductance and three flow arrays in; A x out
            ad_bytes = 9 * cells * itemsize
            res = jax.jit(flow.residuals, static_argnums=(4,))
            t_mom, _, (mres, cres) = timeit(res, grid, solid, params, bnd, spec, state, repeats=repeats)
            assert bool(jnp.isfinite(mres) & jnp.isfinite(cres))
            # u, v, w, p and the solid mask in; three residual fields out
            mom_bytes = 7 * cells * itemsize + cells
            records.append(
                Record(
                    "operators",
                    f"{n}^3",
                    jnp.dtype(dtype).name,
                    metrics={
                        "cells": cells,
                        "advdiff_apply_s": t_ad,
                        "advdiff_cells_per_s": cells / t_ad,
                        "advdiff_GBps": ad_bytes / t_ad / 1e9,
                        "advdiff_roofline_fraction": ad_bytes / t_ad / 1e9 / bandwidth_gbps,
                        "momentum_residual_s": t_mom,
                        "momentum_cells_per_s": cells / t_mom,
                        "momentum_GBps": mom_bytes / t_mom / 1e9,
                        "momentum_roofline_fraction": mom_bytes / t_mom / 1e9 / bandwidth_gbps,
                    },
                    check={"finite": True},
                )
            )
    net, params, fluid, _, _ = synthetic_ladder_network()
    flows = jnp.asarray(np.random.default_rng(0).uniform(1e-6, 1e-4, (batch, net.n_edges)))
    losses = jax.jit(jax.vmap(partial(edge_pressure_loss, net, params, fluid)))
    t_net, _, dp = timeit(losses, flows, repeats=max(repeats, 10))
    assert bool(jnp.all(jnp.isfinite(dp)))
    edge_evals = batch * net.n_edges
    records.append(
        Record(
            "operators",
            f"network-{net.n_edges}edges-x{batch}",
            "float64",
            metrics={"edges": net.n_edges, "batch": batch, "losses_s": t_net, "edge_laws_per_s": edge_evals / t_net},
            check={"finite": True},
        )
    )
    return records
