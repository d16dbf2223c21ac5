"""Conduction kernel validation: the exact composite wall and a manufactured
solution's order of accuracy (tests/test_conduction.py asserts on these)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels import conduction as cd
from aidc_thermo.kernels import linsolve
from aidc_thermo.kernels.fv.grid import grid_from_faces

F64 = jnp.float64
TIGHT = linsolve.MultigridConfig(tol=1e-12, max_iterations=300)


def insulated_bcs(grid, **faces):
    """All faces insulated except those given as FaceBC."""
    return cd.BoundaryConditions(**{name: faces.get(name, cd.face_bc(grid, name)) for name, _, _ in cd.FACES})


@jax.jit
def _solve(grid, k, q, bcs):
    return cd.solve(grid, k, q, bcs, TIGHT)


def solve(grid, k, q, bcs, config=TIGHT):
    if config is TIGHT:
        return _solve(grid, k, q, bcs)
    return jax.jit(lambda g, k, q, b: cd.solve(g, k, q, b, config))(grid, k, q, bcs)


#: thickness (m), cells, k (W/m/K) of the three layers: lid, thermal interface, spreader
COMPOSITE_LAYERS = [(0.7e-3, 4, 148.0), (0.1e-3, 3, 5.0), (2.0e-3, 5, 390.0)]
COMPOSITE_BC = dict(t_wall=95.0, h=25_000.0, t_inf=35.0)


def composite_wall(axis: int = 0) -> dict:
    """Three layers on randomly non-uniform cells along ``axis``, a fixed
    temperature on one side and convection on the other. Returns the cell
    centres ``x``, the computed and exact profiles, the heat leaving through the
    convective face and the exact series flux times the area, and the solver info."""
    rng = np.random.default_rng(1)
    faces, k_cells = [0.0], []
    for thickness, n, k in COMPOSITE_LAYERS:
        w = rng.uniform(0.5, 1.5, n)
        w = thickness * w / w.sum()
        faces.extend(faces[-1] + np.cumsum(w))
        k_cells.extend([k] * n)
    faces = np.array(faces)
    lateral = np.array([0.0, 1e-3, 2e-3])
    axes_faces = [lateral, lateral, lateral]
    axes_faces[axis] = faces
    grid = grid_from_faces(*axes_faces, dtype=F64)
    shape = [2, 2, 2]
    shape[axis] = len(k_cells)
    k = jnp.broadcast_to(jnp.asarray(k_cells, F64).reshape([-1 if a == axis else 1 for a in range(3)]), shape)
    t_wall, h, t_inf = COMPOSITE_BC["t_wall"], COMPOSITE_BC["h"], COMPOSITE_BC["t_inf"]
    lo, hi = cd.FACES[2 * axis][0], cd.FACES[2 * axis + 1][0]
    bcs = insulated_bcs(
        grid,
        **{
            lo: cd.face_bc(grid, lo, cd.TEMPERATURE, value=t_wall),
            hi: cd.face_bc(grid, hi, cd.CONVECTIVE, h=h, value=t_inf),
        },
    )
    T, info = solve(grid, k, jnp.zeros(shape, F64), bcs)
    # exact: flux through a series of resistances
    widths = np.diff(faces)
    kk = np.array(k_cells)
    r_total = np.sum(widths / kk) + 1.0 / h
    flux = (t_wall - t_inf) / r_total
    r_to_centre = np.concatenate([[0.0], np.cumsum(widths / kk)])[:-1] + 0.5 * widths / kk
    exact = t_wall - flux * r_to_centre
    profile = np.moveaxis(np.asarray(T), axis, 0)[:, 0, 0]
    # the exact profile at any x: the resistance from the hot face is piecewise linear
    x_fine = np.linspace(faces[0], faces[-1], 401)
    exact_fine = t_wall - flux * np.interp(x_fine, faces, np.concatenate([[0.0], np.cumsum(widths / kk)]))
    area = 4e-6
    q_out = float(jnp.sum(cd.boundary_heat_out(grid, k, bcs, T)[hi]))
    return dict(
        x=0.5 * (faces[1:] + faces[:-1]),
        faces=faces,
        profile=profile,
        exact=exact,
        x_fine=x_fine,
        exact_fine=exact_fine,
        q_out=q_out,
        q_exact=flux * area,
        t_wall=t_wall,
        info=info,
    )


# ----------------------------------------------------------------------------- manufactured


def _stretched(n, beta):
    xi = np.linspace(0.0, 1.0, n + 1)
    return xi + beta * np.sin(2 * np.pi * xi) / (2 * np.pi)


def _exact_T(x, y, z):
    return jnp.sin(1.3 * x + 0.4) * jnp.cos(0.9 * y - 0.2) * jnp.exp(0.7 * z) + 2.0 * x * z


def _exact_k(x, y, z):
    return 1.0 + 0.5 * jnp.sin(2.0 * x + y) * jnp.cos(1.5 * z) ** 2


def _source(p):
    """q = -div(k grad T) at point p, by automatic differentiation."""

    def flux(p):
        return _exact_k(*p) * jax.grad(lambda p: _exact_T(*p))(p)

    return -jnp.trace(jax.jacfwd(flux)(p))


def mms_error(n: int):
    """Volume-weighted RMS error of the manufactured 3D solution (variable k,
    stretched grids, n cells a side, Dirichlet faces) and the mesh size 1/n.
    Returns (error, h, converged)."""
    grid = grid_from_faces(_stretched(n, 0.5), _stretched(n, -0.4), _stretched(n, 0.3), dtype=F64)
    xc, yc, zc = (grid.centers(a) for a in range(3))
    X, Y, Z = jnp.meshgrid(xc, yc, zc, indexing="ij")
    pts = jnp.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=1)
    q = jax.vmap(_source)(pts).reshape(X.shape)
    k = _exact_k(X, Y, Z)
    faces = {}
    for name, axis, side in cd.FACES:
        coords = [xc, yc, zc]
        coords[axis] = grid.faces(axis)[-1:] if side else grid.faces(axis)[:1]
        FX, FY, FZ = jnp.meshgrid(*coords, indexing="ij")
        value = jnp.squeeze(_exact_T(FX, FY, FZ), axis)
        faces[name] = cd.face_bc(grid, name, cd.TEMPERATURE, value=value)
    T, info = solve(grid, k, q, cd.BoundaryConditions(**faces))
    err = T - _exact_T(X, Y, Z)
    vol = grid.volumes()
    return float(jnp.sqrt(jnp.sum(err**2 * vol) / jnp.sum(vol))), 1.0 / n, bool(info.converged)


MMS_LEVELS = (8, 16, 32, 64)


def mms_order(levels=MMS_LEVELS) -> dict:
    """Errors over the refinements and the fitted slope of log(error) against log(h)."""
    results = [mms_error(n) for n in levels]
    errs = np.array([e for e, _, _ in results])
    hs = np.array([h for _, h, _ in results])
    slope = float(np.polyfit(np.log(hs), np.log(errs), 1)[0])
    return dict(h=hs, errors=errs, slope=slope, converged=all(c for _, _, c in results))
