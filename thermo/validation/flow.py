"""Flow kernel validation: fully developed duct friction against Shah & London
with its order of convergence, and the lid-driven cavity against Ghia, Ghia &
Shin (tests/test_flow.py asserts on these)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.interpolate import CubicSpline

from aidc_thermo.kernels.fv.flow import FlowParams, FlowSpec, divergence, flow_boundary, solve_flow
from aidc_thermo.kernels.fv.grid import Grid, uniform_grid

from . import reference

F64 = jnp.float64
SOLVE = jax.jit(solve_flow, static_argnames=("spec",))


def params(rho, mu, dt, force=(0.0, 0.0, 0.0), dtype=F64):
    return FlowParams(
        rho=jnp.asarray(rho, dtype),
        mu=jnp.asarray(mu, dtype),
        dt=jnp.asarray(dt, dtype),
        body_force=jnp.asarray(force, dtype),
    )


def shah_london_fre() -> dict[float, float]:
    """Fanning f Re of rectangular ducts by aspect ratio (the four the duct case runs)."""
    r = reference("rect_duct")
    return {a: f for a, f in zip(r["alpha"], r["fRe"], strict=True) if a in (1.0, 0.5, 0.25, 0.125)}


DUCT = FlowSpec(
    bc=("periodic", "periodic", "wall", "wall", "wall", "wall"),
    tol=1e-10,
    max_outer=100,
    momentum_rtol=1e-3,
    momentum_max_iterations=3000,
)
DUCT_LEVELS = (8, 16, 32)  # cells across the short side


def duct_fre(levels=DUCT_LEVELS):
    """Fanning f Re of fully developed flow in rectangular ducts of aspect
    ratios 1, 0.5, 0.25, 0.125 (long side b = 1 mm along y with 4 n cells, short
    side along z with n cells), one cell streamwise with periodic faces and an
    imposed pressure gradient, for n in ``levels``.

    All cases share one grid shape (1, 4 N, N), N = max(n), and run as one
    vmapped batch (one compilation): a coarser duct is the lower-left block of
    4 n x n fluid cells, the rest solid. Solid faces are exactly no-slip walls
    (test_solid_cells_are_walls), so the fluid block is the coarse grid.
    Returns (alphas, f Re (levels, alphas), outer iterations, converged)."""
    alphas = np.array(sorted(shah_london_fre(), reverse=True))
    b, mu, rho, G = 1e-3, 1e-3, 1000.0, 1.0e3
    N = max(levels)
    shape = (1, 4 * N, N)
    cases = [(a, n) for n in levels for a in alphas]
    c = jnp.asarray([a * b for a, n in cases], F64)
    dy, dz, solid = [], [], []
    for a, n in cases:
        dy.append(np.full(4 * N, b / (4 * n)))
        dz.append(np.full(N, a * b / n))
        s = np.ones(shape, bool)
        s[:, : 4 * n, :n] = False
        solid.append(s)
    dy, dz, solid = (jnp.asarray(np.array(x)) for x in (dy, dz, solid))

    def one(c, dy, dz, solid):
        grid = Grid(jnp.full((1,), 1e-4, F64), dy, dz, jnp.zeros((3,), F64))
        dt = rho * c * c / mu  # viscous time of the short side
        st, info = solve_flow(grid, solid, params(rho, mu, dt, (G, 0.0, 0.0)), flow_boundary(grid), DUCT)
        area = dy[:, None] * dz[None, :] * jnp.where(solid[0], 0.0, 1.0)
        um = jnp.sum(st.u[0] * area) / jnp.sum(area)
        dh = 2 * b * c / (b + c)
        return G * dh**2 / (2 * mu * um), info

    fre, info = jax.jit(jax.vmap(one))(c, dy, dz, solid)
    shape2 = (len(levels), len(alphas))
    return (
        alphas,
        np.asarray(fre).reshape(shape2),
        np.asarray(info.iterations).reshape(shape2),
        bool(jnp.all(info.converged)),
    )


def duct_order(levels=DUCT_LEVELS) -> dict:
    """f Re, its relative error against Shah & London on each grid, and the
    fitted order of each aspect ratio's error."""
    alphas, fre, iterations, converged = duct_fre(levels)
    ref = np.array([shah_london_fre()[a] for a in alphas])
    errors = np.abs(fre / ref[None, :] - 1)
    h = 1.0 / np.array(levels)
    slopes = [float(np.polyfit(np.log(h), np.log(errors[:, j]), 1)[0]) for j in range(len(alphas))]
    return dict(alphas=alphas, fre=fre, ref=ref, errors=errors, h=h, slopes=slopes, iterations=iterations,
                converged=converged)  # fmt: skip


# ----------------------------------------------------------------------------- Ghia cavity

CAVITY = FlowSpec(bc=("wall", "wall", "wall", "wall", "symmetry", "symmetry"), tol=1e-7)


def ghia_points(re: int):
    """Ghia's centreline points: (y, u) on x = 0.5 and (x, v) on y = 0.5 (NaN: left out)."""
    r = reference("ghia_cavity")
    v = np.array([np.nan if x is None else x for x in r["v"][str(re)]])
    return np.array(r["y"]), np.array(r["u"][str(re)]), np.array(r["x"]), v


def cavity(re: int, n: int = 128) -> dict:
    """Lid-driven square cavity, n x n cells (128: Ghia's 129 x 129 grid
    lines), central convection. Returns the centreline profiles, their
    differences from Ghia at his points (spline through the face values), the
    RMS of those differences, the largest cell volume imbalance relative to the
    lid's flux through one cell face, and the solver info."""
    grid = uniform_grid((n, n, 1), (1.0, 1.0, 1.0 / n), dtype=F64)
    bnd = flow_boundary(grid, {"y+": (1.0, 0.0, 0.0)})
    st, info = SOLVE(grid, jnp.zeros(grid.shape, bool), params(1.0, 1.0 / re, 1.0), bnd, CAVITY)
    centres = np.concatenate([[0.0], (np.arange(n) + 0.5) / n, [1.0]])
    u_cl = np.concatenate([[0.0], np.asarray(st.u)[n // 2, :, 0], [1.0]])  # x = 0.5 faces
    v_cl = np.concatenate([[0.0], np.asarray(st.v)[:, n // 2, 0], [0.0]])  # y = 0.5 faces
    gy, gu, gx, gv = ghia_points(re)
    du = CubicSpline(centres, u_cl)(gy) - gu
    dv = CubicSpline(centres, v_cl)(gx) - gv
    diff = np.concatenate([du, dv[np.isfinite(dv)]])
    net = divergence(grid, st.u, st.v, st.w)
    return dict(
        s=centres,
        u=u_cl,
        v=v_cl,
        points=(gy, gu, gx, gv),
        rms=float(np.sqrt(np.mean(diff**2))),
        imbalance=float(jnp.max(jnp.abs(net))) / (1.0 / n) ** 2,
        info=info,
    )
