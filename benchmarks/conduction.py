"""Conduction kernel: operator throughput against the copy-bandwidth roofline,
one V-cycle, and time to a 1e-8 relative residual at several sizes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels import conduction as cd
from aidc_thermo.kernels import linsolve
from aidc_thermo.kernels.fv.grid import uniform_grid
from benchmarks import scipy_baseline
from benchmarks.harness import Record, timeit


def problem(n: int, dtype):
    """Unit cube, k = 1, random source, top held at 0, one convective side."""
    grid = uniform_grid((n, n, n), (1.0, 1.0, 1.0), dtype=dtype)
    k = jnp.ones(grid.shape, dtype)
    q = jnp.asarray(np.random.default_rng(n).standard_normal(grid.shape), dtype)
    faces = {name: cd.face_bc(grid, name, dtype=dtype) for name, _, _ in cd.FACES}
    faces["z_hi"] = cd.face_bc(grid, "z_hi", cd.TEMPERATURE, value=0.0, dtype=dtype)
    faces["x_lo"] = cd.face_bc(grid, "x_lo", cd.CONVECTIVE, h=10.0, value=0.0, dtype=dtype)
    return grid, k, q, cd.BoundaryConditions(**faces)


def run(sizes, dtypes, bandwidth_gbps: float, repeats: int, scipy_max: int = 32) -> list[Record]:
    records = []
    for dtype in dtypes:
        tol = 1e-8 if dtype == jnp.float64 else 1e-5
        for n in sizes:
            grid, k, q, bcs = problem(n, dtype)
            op = jax.jit(cd.operator)(grid, k, bcs)
            b = jax.jit(cd.rhs)(grid, k, q, bcs)
            cfg = linsolve.MultigridConfig(tol=tol, max_iterations=100)

            solve = jax.jit(lambda op, b, cfg=cfg: linsolve.solve(op, b, cfg))
            t_solve, spread, (x, info) = timeit(solve, op, b, repeats=repeats)
            # check the answer before reporting its time
            res = float(jnp.linalg.norm(linsolve.apply(op, x) - b) / jnp.linalg.norm(b))
            T, _ = jax.jit(lambda g, k, q, bc, cfg=cfg: cd.solve(g, k, q, bc, cfg))(grid, k, q, bcs)
            h_in, h_out = cd.heat_balance(grid, k, q, bcs, T)
            assert bool(info.converged) and res <= 1.01 * tol, (n, res)

            t_apply, _, _ = timeit(jax.jit(linsolve.apply), op, b, repeats=max(repeats, 10))
            hier = jax.jit(lambda op, cfg=cfg: linsolve.multigrid_setup(op, cfg))(op)
            t_setup, _, _ = timeit(jax.jit(lambda op, cfg=cfg: linsolve.multigrid_setup(op, cfg)), op, repeats=repeats)
            t_vc, _, _ = timeit(jax.jit(lambda h, r, cfg=cfg: linsolve.v_cycle(h, cfg, r)), hier, b, repeats=repeats)
            baseline = {}
            if dtype == jnp.float64 and n <= scipy_max:
                x_ref, t_ref = scipy_baseline.direct_solve(op, b)
                scale = float(np.abs(x_ref).max())
                baseline = {
                    "scipy_spsolve_s": t_ref,
                    "speedup_vs_scipy": t_ref / t_solve,
                    "max_diff_vs_scipy_rel": float(np.abs(np.asarray(x) - x_ref).max()) / scale,
                }
            cells = n**3
            itemsize = jnp.dtype(dtype).itemsize
            apply_bytes = 6 * cells * itemsize  # x, gx, gy, gz, c in; A x out
            gbps = apply_bytes / t_apply / 1e9
            records.append(
                Record(
                    "conduction",
                    f"{n}^3",
                    jnp.dtype(dtype).name,
                    metrics={
                        "cells": cells,
                        "solve_s": t_solve,
                        "solve_spread_s": spread,
                        "iterations": int(info.iterations),
                        "setup_s": t_setup,
                        "vcycle_s": t_vc,
                        "apply_s": t_apply,
                        "apply_cells_per_s": cells / t_apply,
                        "apply_GBps": gbps,
                        "apply_roofline_fraction": gbps / bandwidth_gbps,
                        **baseline,
                    },
                    check={
                        "tolerance": tol,
                        "relative_residual": res,
                        "heat_balance_error": abs(float(h_in - h_out)) / abs(float(h_in) or 1.0),
                    },
                )
            )
    return records
