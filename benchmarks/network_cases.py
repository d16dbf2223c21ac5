"""Synthetic flow networks for timing the network kernel (no timing code here).

``synthetic_ladder_network`` builds many parallel rack-like ladders: supply
and return headers of pipe segments, and per branch a hose, a quick
disconnect, a cold plate (power law) and a second quick disconnect. With
``shared_loop=False`` every ladder hangs between the same two fixed-pressure
nodes, so the free nodes fall into independent blocks (one per ladder); with
``shared_loop=True`` a pump and a CDU feed all ladders from one tank, which
makes a single connected block of free nodes (the harder case for the dense
Schur solve).

Example (the lead's timing harness)::

    net, params, fluid, bnd, plates = synthetic_ladder_network()
    solve = jax.jit(partial(solve_network, net))
    sol, info = solve(params, fluid, bnd)   # compile, check info.converged
    # then time solve(...) with block_until_ready
"""

from __future__ import annotations

import jax.numpy as jnp

from aidc_thermo.kernels.network import Fluid, NetworkBuilder

__all__ = ["synthetic_ladder_network"]


def synthetic_ladder_network(n_ladders=7, n_branches=24, shared_loop=False, layout="Z", dtype=None):
    """About 1000 edges with the defaults (n_ladders=7, n_branches=24: 1008
    edges, 842 nodes; 1012 edges with ``shared_loop``).

    Returns:
        (network, params, fluid, boundary, plate_edges): water at 30 degC,
        supply 2.0 bar / return 1.5 bar (or a 1.2 bar pump head with
        ``shared_loop``), plate_edges the indices of the cold-plate edges.
    """
    dtype = dtype or jnp.result_type(float)
    b = NetworkBuilder()
    b.node("tank", fixed=True)
    if shared_loop:
        b.node("pump_out")
        b.node("sup")
        b.node("ret")
        b.pump("tank", "pump_out", dp0=2.0e5, r1=2.0e6, r2=2.0e8)
        b.pipe("pump_out", "sup", 3.0, 0.08, roughness=1e-5, k_minor=2.0)
        b.pipe("ret", "tank", 3.0, 0.08, roughness=1e-5, k_minor=2.0)
        sup, ret = "sup", "ret"
    else:
        b.node("sup", fixed=True)
        sup, ret = "sup", "tank"
    plates = []
    for j in range(n_ladders):
        t = f"L{j}_"
        for i in range(n_branches):
            for n in ("S", "R", "a", "b", "c"):
                b.node(f"{t}{n}{i}")
        b.pipe(sup, f"{t}S0", 1.0, 0.025, roughness=1e-6, k_minor=1.0)
        for i in range(n_branches):
            b.pipe(f"{t}S{i}", f"{t}a{i}", 0.6, 0.008, roughness=1e-6, k_minor=1.5)
            b.flow_coefficient(f"{t}a{i}", f"{t}b{i}", kv=2.4)
            plates.append(b.power_law(f"{t}b{i}", f"{t}c{i}", lin_coef=2e7, pow_coef=1e9, exponent=1.85))
            b.flow_coefficient(f"{t}c{i}", f"{t}R{i}", kv=2.4)
            if i:
                b.pipe(f"{t}S{i - 1}", f"{t}S{i}", 0.05, 0.025, roughness=1e-6, k_minor=0.2)
                if layout == "U":
                    b.pipe(f"{t}R{i}", f"{t}R{i - 1}", 0.05, 0.025, roughness=1e-6, k_minor=0.2)
                else:
                    b.pipe(f"{t}R{i - 1}", f"{t}R{i}", 0.05, 0.025, roughness=1e-6, k_minor=0.2)
        last = f"{t}R0" if layout == "U" else f"{t}R{n_branches - 1}"
        b.pipe(last, ret, 1.0, 0.025, roughness=1e-6, k_minor=1.0)
    net, params = b.build(dtype)
    pressure = {"tank": 1.5e5} if shared_loop else {"tank": 1.5e5, "sup": 2.0e5}
    bnd = b.boundary(pressure=pressure, dtype=dtype)
    fluid = Fluid(
        density=jnp.asarray(995.6, dtype),
        viscosity=jnp.asarray(7.97e-4, dtype),
        specific_heat=jnp.asarray(4179.8, dtype),
    )
    return net, params, fluid, bnd, plates
