"""Conjugate advection-diffusion: order of the schemes, fully developed Nusselt
numbers against Shah & London, conservation, boundedness, JAX transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import conduction as cd
from kernels import energy
from kernels.grid import grid_from_faces

F64 = jnp.float64


def _bcs(grid, **faces):
    return cd.BoundaryConditions(**{n: faces.get(n, cd.face_bc(grid, n)) for n, _, _ in cd.FACES})


def _run(grid, k, q, bcs, flows, config):
    return jax.jit(lambda g, k, q, b, f: energy.solve(g, k, q, b, f, config))(grid, k, q, bcs, flows)


# ----------------------------------------------------------------------------- order


def _exact(x):
    return 1.0 + x**2 * (1.5 - x)  # monotone, zero slope at the outlet


def _mms_error(n, scheme, k0=0.02, speed=1.0):
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
    assert bool(info.converged)
    return float(jnp.sqrt(jnp.mean((T[:, 0, 0] - _exact(xc)) ** 2)))


@pytest.mark.parametrize("scheme, order", [("upwind", 1.0), ("tvd", 2.0)])
def test_observed_order_of_the_advection_schemes(scheme, order):
    """Manufactured 1D solution at cell Peclet numbers 0.8-3, stretched grid."""
    ns = np.array([32, 64, 128, 256])
    errs = np.array([_mms_error(n, scheme) for n in ns])
    slope = -np.polyfit(np.log(ns[1:]), np.log(errs[1:]), 1)[0]
    assert abs(slope - order) < 0.2, (slope, errs)


# ----------------------------------------------------------------------------- Nusselt numbers


def _plates(nx, nz, length_dh, pe, wall_kind):
    """Channel between parallel plates (gap H = 1, D_h = 2), Poiseuille flow
    along x, uniform over y (one cell), inlet temperature 1."""
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
    assert bool(info.converged)
    T = np.asarray(T)[:, 0, :]
    dz = np.diff(zf)
    bulk = (T * u_col * dz).sum(axis=1) / (u_col * dz).sum()
    if wall_kind == "H":
        t_wall = T[:, 0] + 1.0 * 0.5 * dz[0] / k  # known flux across the half cell
        nu = 1.0 / (t_wall - bulk) * dh / k
    else:
        q_wall = k * T[:, 0] / (0.5 * dz[0])  # flux into the wall from the first cell
        nu = q_wall / (bulk - 0.0) * dh / k
    return 0.5 * (xf[1:] + xf[:-1]) / dh, nu


def test_parallel_plates_uniform_flux_nusselt():
    """Fully developed Nu_H = 140/17 = 8.2353 (Shah & London), within 0.1 % (measured: 3e-7)."""
    x, nu = _plates(nx=96, nz=32, length_dh=6.0, pe=20.0, wall_kind="H")
    developed = (x > 3.0) & (x < 4.5)
    assert np.ptp(nu[developed]) < 1e-3 * nu[developed].mean()  # it is developed
    assert nu[developed].mean() == pytest.approx(140 / 17, rel=1e-3)


def test_parallel_plates_uniform_wall_temperature_nusselt():
    """Fully developed Nu_T = 7.5407 at Pe = 400, within 0.3 % (measured: -0.04 %)."""
    x, nu = _plates(nx=160, nz=32, length_dh=20.0, pe=400.0, wall_kind="T")
    developed = (x > 10.0) & (x < 16.0)
    assert np.ptp(nu[developed]) < 5e-3 * nu[developed].mean()
    assert nu[developed].mean() == pytest.approx(7.5407, rel=3e-3)


# ----------------------------------------------------------------------------- conjugate channel


def _conjugate_channel(n=16, dtype=F64, speed=0.5):
    """Water-like fluid in a channel over a copper base heated from below."""
    nx, ny, nz = 2 * n, n // 2, n
    g = grid_from_faces(
        np.linspace(0, 0.02, nx + 1), np.linspace(0, 0.002, ny + 1), np.linspace(0, 0.002, nz + 1), dtype=dtype
    )
    solid = np.zeros(g.shape, bool)
    solid[:, :, : nz // 4] = True  # base
    solid[:, : ny // 4, :] = True  # a side wall (fin)
    k = jnp.asarray(np.where(solid, 390.0, 0.6), dtype)
    fluid = ~solid
    # x-face velocity: a parabola in the fluid, zero on faces touching solid
    zc = np.asarray(g.centers(2))
    prof = np.clip((zc - 0.0005) * (0.002 - zc), 0, None)
    u = np.broadcast_to(prof[None, None, :], (nx + 1, ny, nz)).copy()
    u[:, fluid[0] == 0] = 0.0
    u = u / u.max() * speed
    flows = energy.face_flows(
        g, jnp.asarray(u, dtype), jnp.zeros((nx, ny + 1, nz), dtype), jnp.zeros((nx, ny, nz + 1), dtype), 4.18e6
    )
    bcs = _bcs(
        g,
        x_lo=cd.face_bc(g, "x_lo", cd.TEMPERATURE, value=300.0, dtype=dtype),
        z_lo=cd.face_bc(g, "z_lo", cd.FLUX, flux=50e4, dtype=dtype),
    )
    return g, k, jnp.zeros(g.shape, dtype), bcs, flows


def test_conjugate_energy_balance_and_boundedness():
    g, k, q, bcs, flows = _conjugate_channel()
    T, info, inner = _run(g, k, q, bcs, flows, energy.EnergyConfig(tol=1e-12))
    assert bool(info.converged)
    added, removed = energy.heat_balance(g, k, q, bcs, flows, T)
    assert float(added) == pytest.approx(50e4 * 0.02 * 0.002)
    assert abs(float(added - removed)) / float(added) < 1e-9
    assert float(T.min()) >= 300.0 - 1e-9  # heated only: nothing colder than the inlet


def test_tvd_is_bounded_for_a_step_at_high_peclet():
    """Pure advection of an inlet step (cell Peclet number 1e4): no new extrema."""
    n = 64
    g = grid_from_faces(np.linspace(0, 1, n + 1), np.linspace(0, 1, 17), [0, 1], dtype=F64)
    u = jnp.ones((n + 1, 16, 1), F64)
    v = jnp.full((n, 17, 1), 0.5, F64)  # oblique flow, so the step is advected across cells
    flows = energy.face_flows(g, u, v, jnp.zeros((n, 16, 2), F64), 1.0)
    inlet = jnp.where(jnp.arange(16) < 8, 1.0, 0.0)[:, None] * jnp.ones((16, 1), F64)
    bcs = _bcs(
        g,
        x_lo=cd.face_bc(g, "x_lo", cd.FLUX, value=inlet),
        y_lo=cd.face_bc(g, "y_lo", cd.FLUX, value=1.0),
    )
    k = jnp.full(g.shape, 1e-6, F64)
    T, info, _ = _run(g, k, jnp.zeros(g.shape, F64), bcs, flows, energy.EnergyConfig())
    assert bool(info.converged)
    assert float(T.min()) >= -1e-9 and float(T.max()) <= 1.0 + 1e-9
    assert 0.1 < float(T.mean()) < 0.9


# ----------------------------------------------------------------------------- jax


def test_vmap_over_inlet_speed_equals_loop_and_float32_converges():
    g, k, q, bcs, unit_flows = _conjugate_channel(n=8, speed=1.0)
    speeds = jnp.asarray([0.2, 0.5, 1.0], F64)

    def run(s):
        flows = tuple(f * s for f in unit_flows)
        return energy.solve(g, k, q, bcs, flows, energy.EnergyConfig(tol=1e-11))[0]

    batched = jax.jit(jax.vmap(run))(speeds)
    looped = jnp.stack([jax.jit(run)(s) for s in speeds])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=0, atol=1e-8)

    g32, k32, q32, b32, f32 = _conjugate_channel(n=8, dtype=jnp.float32)
    T32, info, _ = _run(g32, k32, q32, b32, f32, energy.EnergyConfig())
    assert bool(info.converged) and T32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(T32, np.float64), np.asarray(looped[1]), rtol=0, atol=2e-3 * 40)


def test_upwind_gradient_matches_finite_difference():
    g, k, q, bcs, flows = _conjugate_channel(n=8)

    def mean_base_temperature(speed, k_solid):
        kk = jnp.where(k > 1.0, k_solid, k)
        f = tuple(x * speed for x in flows)
        T, _, _ = energy.solve(g, kk, q, bcs, f, energy.EnergyConfig(scheme="upwind"))
        return jnp.mean(T[:, :, 0])

    f = jax.jit(mean_base_temperature)
    ds, dk = jax.jit(jax.grad(mean_base_temperature, argnums=(0, 1)))(1.0, 390.0)
    fd_s = (f(1.0 + 1e-5, 390.0) - f(1.0 - 1e-5, 390.0)) / 2e-5
    fd_k = (f(1.0, 390.0 * (1 + 1e-5)) - f(1.0, 390.0 * (1 - 1e-5))) / (2e-5 * 390.0)
    assert float(ds) < 0 and float(dk) < 0
    assert float(ds) == pytest.approx(float(fd_s), rel=1e-4)
    assert float(dk) == pytest.approx(float(fd_k), rel=1e-4)
