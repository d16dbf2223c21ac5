"""Conjugate advection-diffusion validation: observed order of the advection
schemes (manufactured solution) and fully developed Nusselt numbers between
parallel plates against Shah & London (tests/test_energy.py asserts on these)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels import conduction as cd
from aidc_thermo.kernels import energy
from aidc_thermo.kernels.fv.grid import grid_from_faces

F64 = jnp.float64


def _bcs(grid, **faces):
    return cd.BoundaryConditions(**{n: faces.get(n, cd.face_bc(grid, n)) for n, _, _ in cd.FACES})


def _run(grid, k, q, bcs, flows, config):
    return jax.jit(lambda g, k, q, b, f: energy.solve(g, k, q, b, f, config))(grid, k, q, bcs, flows)


def _exact(x):
    return 1.0 + x**2 * (1.5 - x)  # monotone, zero slope at the outlet


def advection_mms_error(n: int, scheme: str, k0: float = 0.02, speed: float = 1.0):
    """RMS error of the manufactured 1D advection-diffusion solution on a
    stretched grid of n cells (cell Peclet 0.8-3 for n = 32..128). Returns (error, converged)."""
    xf = np.linspace(0, 1, n + 1)
    xf = xf + 0.05 * np.sin(2 * np.pi * xf) / (2 * np.pi)
    g = grid_from_faces(xf, [0, 1], [0, 1], dtype=F64)
    xc = g.centers(0)
    d1 = jax.grad(_exact)
    q = jax.vmap(lambda x: speed * d1(x) - k0 * jax.grad(d1)(x))(xc)[:, None, None]
    bcs = _bcs(g, x_lo=cd.face_bc(g, "x_lo", cd.TEMPERATURE, value=_exact(0.0)))
    u = jnp.full((n + 1, 1, 1), speed, F64)
    flows = energy.face_flows(g, u, jnp.zeros((n, 2, 1), F64), jnp.zeros((n, 1, 2), F64), 1.0)
    T, info, _ = _run(g, jnp.full(g.shape, k0, F64), q, bcs, flows, energy.EnergyConfig(scheme=scheme))
    return float(jnp.sqrt(jnp.mean((T[:, 0, 0] - _exact(xc)) ** 2))), bool(info.converged)


ADVECTION_LEVELS = (32, 64, 128, 256)
ADVECTION_ORDER = {"upwind": 1.0, "tvd": 2.0}


def advection_order(scheme: str, levels=ADVECTION_LEVELS) -> dict:
    """Errors on each grid and the slope fitted over all but the coarsest
    (the asymptotic range)."""
    ns = np.array(levels)
    res = [advection_mms_error(int(n), scheme) for n in ns]
    errs = np.array([e for e, _ in res])
    slope = float(-np.polyfit(np.log(ns[1:]), np.log(errs[1:]), 1)[0])
    return dict(n=ns, h=1.0 / ns, errors=errs, slope=slope, converged=all(c for _, c in res))


def plates(nx: int, nz: int, length_dh: float, pe: float, wall_kind: str):
    """Channel between parallel plates (gap H = 1, D_h = 2), Poiseuille flow
    along x, uniform over y (one cell), inlet temperature 1; walls at uniform
    flux (``"H"``) or uniform temperature (``"T"``). Returns (x / D_h, local Nu, converged)."""
    H, dh = 1.0, 2.0
    xf = np.linspace(0.0, length_dh * dh, nx + 1)
    zf = np.linspace(0.0, H, nz + 1)
    g = grid_from_faces(xf, [0.0, 1.0], zf, dtype=F64)
    k, rho_cp, um = 1.0, 1.0, pe / dh  # Pe_Dh = um * Dh * rho cp / k
    # cell-averaged Poiseuille profile u = 6 um s (1 - s), s = z / H
    prim = 6 * um * (zf**2 / 2 - zf**3 / 3)
    u_col = np.diff(prim) / np.diff(zf)
    u = jnp.broadcast_to(jnp.asarray(u_col, F64)[None, None, :], (nx + 1, 1, nz))
    flows = energy.face_flows(g, u, jnp.zeros((nx, 2, nz), F64), jnp.zeros((nx, 1, nz + 1), F64), rho_cp)
    if wall_kind == "H":
        wall = {n: cd.face_bc(g, n, cd.FLUX, flux=1.0) for n in ("z_lo", "z_hi")}
    else:
        wall = {n: cd.face_bc(g, n, cd.TEMPERATURE, value=0.0) for n in ("z_lo", "z_hi")}
    bcs = _bcs(g, x_lo=cd.face_bc(g, "x_lo", cd.TEMPERATURE, value=1.0), **wall)
    T, info, _ = _run(g, jnp.full(g.shape, k, F64), jnp.zeros(g.shape, F64), bcs, flows, energy.EnergyConfig())
    T = np.asarray(T)[:, 0, :]
    dz = np.diff(zf)
    bulk = (T * u_col * dz).sum(axis=1) / (u_col * dz).sum()
    if wall_kind == "H":
        t_wall = T[:, 0] + 1.0 * 0.5 * dz[0] / k  # known flux across the half cell
        nu = 1.0 / (t_wall - bulk) * dh / k
    else:
        q_wall = k * T[:, 0] / (0.5 * dz[0])  # flux into the wall from the first cell
        nu = q_wall / (bulk - 0.0) * dh / k
    return 0.5 * (xf[1:] + xf[:-1]) / dh, nu, bool(info.converged)


#: grid, length, Peclet number and the developed window (x / D_h) of each wall condition
PLATES = {
    "H": dict(nx=96, nz=32, length_dh=6.0, pe=20.0, window=(3.0, 4.5)),
    "T": dict(nx=160, nz=32, length_dh=20.0, pe=400.0, window=(10.0, 16.0)),
}


def plates_developed_nusselt(wall_kind: str) -> dict:
    """The local Nu along the channel, its mean over the developed window and
    the relative spread there (peak to peak over mean)."""
    p = PLATES[wall_kind]
    x, nu, converged = plates(p["nx"], p["nz"], p["length_dh"], p["pe"], wall_kind)
    lo, hi = p["window"]
    developed = (x > lo) & (x < hi)
    mean = float(nu[developed].mean())
    return dict(x=x, nu=nu, window=(lo, hi), mean=mean, spread=float(np.ptp(nu[developed]) / mean), converged=converged)
