"""Compact cold plate: a GPU-size straight-fin plate (80 mm x 80 mm fin field,
centre-fed split flow, 1 kW die with four HBM stacks), time per design after
compilation and designs per second for a vmapped batch of flow rates; and the
reverse-mode derivative of R_max with respect to the flow rate (what
``thermo optimize`` and a user's ``jax.grad`` run), one and a vmapped batch,
with a check against forward mode; and each program's first call (compile
time plus one run)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels import porous
from aidc_thermo.kernels.fv.grid import grid_from_faces
from benchmarks.harness import Record, timeit

RHO, CP, MU, KF, K_CU = 997.0, 4180.0, 0.85e-3, 0.61, 390.0


def plate(n: int, dtype):
    """n x n in-plane cells over 80 mm x 80 mm; channels along x (0.2 mm
    channels, 0.1 mm fins, 3 mm tall); inlet slot over the middle 1/8, plena
    of 1/16 at both ends, outlets at both ends; stack: 0.75 mm silicon,
    0.1 mm TIM (k = 5), 2 mm copper lid and base."""
    L = 0.08
    xf = np.linspace(0.0, L, n + 1)
    xc = 0.5 * (xf[1:] + xf[:-1])
    x, y = np.meshgrid(xc, xc, indexing="ij")
    g = grid_from_faces(xf, xf, [0.0, 0.75e-3, 0.85e-3, 2.85e-3], dtype)
    fins = porous.straight_fins((n, n), 2e-4, 1e-4, 3e-3, K_CU, KF, MU, dtype=dtype)
    plen = porous.plenum((n, n), 3e-3, KF, MU, dtype=dtype)
    layer = porous.select(jnp.asarray((x > L / 16) & (x < L - L / 16)), fins, plen)
    slot = (np.abs(x - L / 2) < L / 16).astype(float)
    bc = porous.FlowBC.make((n, n), dtype, inlet_cells=slot / slot.sum(), outlet_x_lo=1.0, outlet_x_hi=1.0)
    die = (np.abs(x - L / 2) < 0.0125) & (np.abs(y - L / 2) < 0.0125)
    hbm = np.zeros_like(die)
    for cx in (L / 2 - 0.018, L / 2 + 0.018):
        for cy in (L / 2 - 0.008, L / 2 + 0.008):
            hbm |= (np.abs(x - cx) < 0.004) & (np.abs(y - cy) < 0.005)
    area = (L / n) ** 2
    q = 900.0 * die / (die.sum() * area) + 100.0 * hbm / (hbm.sum() * area)  # 1000 W
    k = np.stack([np.full((n, n), 150.0), np.full((n, n), 5.0), np.full((n, n), K_CU)], -1)
    return g, layer, bc, porous.Stack(jnp.asarray(k, dtype), jnp.asarray(q, dtype))


def _solve(g, layer, bc, stack, q):
    flow = porous.solve_flow(g, layer, bc, q)
    th = porous.solve_energy(g, layer, stack, flow, RHO * CP, 30.0)
    r_max, r_mean = porous.thermal_resistance(stack, g, th, 30.0)
    return flow.dp, r_max, r_mean, th.heat_in, th.heat_out, flow.info.converged & th.info.converged


def _r_max(g, layer, bc, stack, q):
    return _solve(g, layer, bc, stack, q)[1]


def _compile_s(fn, *args) -> float:
    """Time of the first call (tracing and compilation, then one run)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def run(sizes, dtypes, repeats: int, batch: int = 8, gradients: bool = True) -> list[Record]:
    records = []
    one = jax.jit(_solve)
    many = jax.jit(jax.vmap(_solve, in_axes=(None, None, None, None, 0)))
    d_one = jax.jit(jax.grad(_r_max, argnums=4))
    d_many = jax.jit(jax.vmap(jax.grad(_r_max, argnums=4), in_axes=(None, None, None, None, 0)))
    tangent = jax.jit(
        lambda g, layer, bc, stack, q: jax.jvp(lambda x: _r_max(g, layer, bc, stack, x), (q,), (1.0 + 0 * q,))[1]
    )
    for dtype in dtypes:
        for n in sizes:
            g, layer, bc, stack = plate(n, dtype)
            q = jnp.asarray(1.5 / 60000, dtype)
            # the first call of a jit at a new shape is its compilation (plus one run): what a user waits for once
            compile_s = _compile_s(one, g, layer, bc, stack, q)
            t_one, spread, out = timeit(one, g, layer, bc, stack, q, repeats=repeats)
            dp, r_max, r_mean, h_in, h_out, ok = out
            assert bool(ok), n
            qs = jnp.asarray(np.linspace(1.0, 3.0, batch) / 60000, dtype)
            t_many, _, out_b = timeit(many, g, layer, bc, stack, qs, repeats=max(2, repeats // 2))
            assert bool(jnp.all(out_b[5])), n
            metrics, check = {}, {}
            if gradients:
                metrics["grad_compile_s"] = _compile_s(d_one, g, layer, bc, stack, q)
                t_grad, _, dr = timeit(d_one, g, layer, bc, stack, q, repeats=repeats)
                t_grads, _, drs = timeit(d_many, g, layer, bc, stack, qs, repeats=max(2, repeats // 2))
                fwd = tangent(g, layer, bc, stack, q)
                assert bool(jnp.isfinite(dr)) and bool(jnp.all(jnp.isfinite(drs))), (n, dr, drs)
                metrics |= {"grad_s": t_grad, "grad_batch_s": t_grads, "dRmax_dQ_KpW_per_Lpm": float(dr) / 60000}
                check["grad_vs_forward_mode"] = abs(float(dr - fwd)) / abs(float(fwd))
                # reverse mode solves the adjoint system, forward mode the tangent one: two different solves
                assert check["grad_vs_forward_mode"] < (1e-6 if dtype == jnp.float64 else 2e-3), (n, check)
            records.append(
                Record(
                    "porous_plate",
                    f"{n}x{n}",
                    jnp.dtype(dtype).name,
                    metrics={
                        "cells_in_plane": n * n,
                        "compile_s": compile_s,
                        "solve_s": t_one,
                        "solve_spread_s": spread,
                        "batch": batch,
                        "batch_s": t_many,
                        "designs_per_s": batch / t_many,
                        "dp_kPa_at_1.5Lpm": float(dp) / 1e3,
                        "R_max_KpW": float(r_max),
                        "R_mean_KpW": float(r_mean),
                        **metrics,
                    },
                    check={"heat_balance_error": abs(float(h_in - h_out)) / float(h_in), **check},
                )
            )
            # this shape's five programs are not called again: let them go (each holds 1,300-2,300 of the
            # process's memory maps, and Linux allows 65,530; four shapes' twenty programs came close)
            jax.clear_caches()
    return records
