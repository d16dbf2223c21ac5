"""Conduction kernel: exact solutions, manufactured solutions, conservation,
multigrid scaling, precision and JAX transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.kernels import conduction as cd
from aidc_thermo.kernels import linsolve
from aidc_thermo.kernels.fv.grid import grid_from_faces, uniform_grid
from aidc_thermo.validation.conduction import composite_wall, mms_order

F64 = jnp.float64
TIGHT = linsolve.MultigridConfig(tol=1e-12, max_iterations=300)


def insulated_bcs(grid, **faces):
    """All faces insulated except those given as FaceBC."""
    return cd.BoundaryConditions(**{name: faces.get(name, cd.face_bc(grid, name)) for name, _, _ in cd.FACES})


def solve(grid, k, q, bcs, config=TIGHT):
    return jax.jit(lambda g, k, q, b: cd.solve(g, k, q, b, config))(grid, k, q, bcs)


# ----------------------------------------------------------------------------- exact 1D


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_composite_wall_is_exact(axis):
    """Three layers, non-uniform cells, Dirichlet on one side and convection on
    the other: the piecewise-linear exact profile is reproduced to round-off
    (aidc_thermo.validation.conduction.composite_wall, also in thermo validate)."""
    r = composite_wall(axis)
    assert bool(r["info"].converged)
    np.testing.assert_allclose(r["profile"], r["exact"], rtol=0, atol=1e-9 * r["t_wall"])
    # heat leaving through the convective face equals the series flux
    assert r["q_out"] == pytest.approx(r["q_exact"], rel=1e-10)


# ----------------------------------------------------------------------------- manufactured


@pytest.mark.slow
def test_manufactured_solution_is_second_order():
    """Variable conductivity, stretched non-uniform grids, 4 refinements: the
    fitted slope of log(error) against log(h) is 2 (validation.conduction.mms_order)."""
    r = mms_order()
    assert r["converged"]
    assert 1.9 < r["slope"] < 2.1, (r["slope"], r["errors"])
    assert r["errors"][-1] < 1e-3


# ----------------------------------------------------------------------------- conservation


def _package_problem(n=32, nz=16, dtype=F64):
    """A small layered block: heated patch on the bottom, convection on top,
    conductivity jumps between layers and a random source."""
    zf = np.concatenate(
        [
            np.linspace(0, 0.7e-3, 5),
            np.linspace(0.7e-3, 0.8e-3, 4)[1:],
            np.linspace(0.8e-3, 3.0e-3, nz - 6)[1:],
        ]
    )
    assert zf.size == nz + 1
    grid = grid_from_faces(np.linspace(0, 0.04, n + 1), np.linspace(0, 0.04, n + 1), zf, dtype=dtype)
    kz = np.where(np.arange(nz) < 4, 148.0, np.where(np.arange(nz) < 7, 5.0, 390.0))
    k = jnp.broadcast_to(jnp.asarray(kz, dtype)[None, None, :], grid.shape)
    flux = np.zeros((n, n))
    flux[n // 4 : 3 * n // 4, n // 4 : 3 * n // 4] = 80e4  # 80 W/cm^2
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.uniform(0, 1e7, grid.shape), dtype)
    bcs = insulated_bcs(
        grid,
        z_lo=cd.face_bc(grid, "z_lo", cd.FLUX, flux=jnp.asarray(flux, dtype)),
        z_hi=cd.face_bc(grid, "z_hi", cd.CONVECTIVE, h=30_000.0, value=35.0),
    )
    return grid, k, q, bcs


def test_energy_balance_float64():
    grid, k, q, bcs = _package_problem()
    T, info = solve(grid, k, q, bcs)
    assert bool(info.converged)
    heat_in, heat_out = cd.heat_balance(grid, k, q, bcs, T)
    assert float(heat_in) > 100.0
    assert abs(float(heat_in - heat_out)) / float(heat_in) < 1e-9


# ----------------------------------------------------------------------------- multigrid


def _cube_iterations(n, layered):
    grid = uniform_grid((n, n, n), (1.0, 1.0, 1.0), dtype=F64)
    if layered:
        kz = jnp.where((jnp.arange(n) // max(n // 8, 1)) % 2 == 0, 1.0, 100.0)
        k = jnp.broadcast_to(kz[None, None, :], grid.shape)
    else:
        k = jnp.ones(grid.shape, F64)
    rng = np.random.default_rng(n)
    q = jnp.asarray(rng.standard_normal(grid.shape), F64)
    bcs = insulated_bcs(
        grid,
        z_hi=cd.face_bc(grid, "z_hi", cd.TEMPERATURE, value=0.0),
        x_lo=cd.face_bc(grid, "x_lo", cd.CONVECTIVE, h=10.0, value=0.0),
    )
    cfg = linsolve.MultigridConfig(tol=1e-8)
    _, info = solve(grid, k, q, bcs, cfg)
    assert bool(info.converged)
    return int(info.iterations)


@pytest.mark.slow
def test_multigrid_iterations_do_not_grow_with_grid():
    its = [_cube_iterations(n, layered=False) for n in (32, 64, 128)]
    assert max(its) - min(its) <= 3, its
    assert max(its) <= 20, its
    layered = [_cube_iterations(n, layered=True) for n in (32, 64)]
    assert max(layered) - min(layered) <= 3, layered
    assert max(layered) <= 25, layered


# ------------------------------------------------------------------ precision, vmap, grad


def test_float32_matches_float64():
    g64, k64, q64, b64 = _package_problem(n=16, nz=16)
    g32, k32, q32, b32 = _package_problem(n=16, nz=16, dtype=jnp.float32)
    T64, i64 = solve(g64, k64, q64, b64, linsolve.MultigridConfig())
    T32, i32 = solve(g32, k32, q32, b32, linsolve.MultigridConfig())
    assert bool(i64.converged) and bool(i32.converged)
    assert T32.dtype == jnp.float32
    rise = float(jnp.max(T64) - 35.0)
    assert float(jnp.max(jnp.abs(T32.astype(F64) - T64))) < 1e-4 * rise


def test_vmap_over_power_and_h_equals_loop():
    grid, k, q, bcs = _package_problem(n=16, nz=16)
    scales = jnp.asarray([0.5, 1.0, 2.0], F64)
    hs = jnp.asarray([1e4, 3e4, 9e4], F64)

    def run(s, h):
        b = cd.BoundaryConditions(
            bcs.x_lo,
            bcs.x_hi,
            bcs.y_lo,
            bcs.y_hi,
            cd.FaceBC(bcs.z_lo.kind, bcs.z_lo.h, bcs.z_lo.value, bcs.z_lo.flux * s),
            cd.FaceBC(bcs.z_hi.kind, jnp.full_like(bcs.z_hi.h, h), bcs.z_hi.value, bcs.z_hi.flux),
        )
        return cd.solve(grid, k, q * s, b, TIGHT)[0]

    batched = jax.jit(jax.vmap(run))(scales, hs)
    looped = jnp.stack([jax.jit(run)(s, h) for s, h in zip(scales, hs, strict=True)])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-11, atol=0)


def test_grad_matches_finite_difference():
    grid, k0, q, bcs = _package_problem(n=16, nz=16)
    layer = (jnp.arange(16) >= 4) & (jnp.arange(16) < 7)  # the TIM layer

    def mean_die_temperature(k_tim, h):
        k = jnp.where(layer[None, None, :], k_tim, k0)
        b = cd.BoundaryConditions(
            bcs.x_lo,
            bcs.x_hi,
            bcs.y_lo,
            bcs.y_hi,
            bcs.z_lo,
            cd.FaceBC(bcs.z_hi.kind, jnp.full_like(bcs.z_hi.h, h), bcs.z_hi.value, bcs.z_hi.flux),
        )
        T, _ = cd.solve(grid, k, q, b, TIGHT)
        return jnp.mean(T[:, :, :4])

    f = jax.jit(mean_die_temperature)
    g = jax.jit(jax.grad(mean_die_temperature, argnums=(0, 1)))
    k_tim, h = 5.0, 30_000.0
    dk, dh = g(k_tim, h)
    fd_k = (f(k_tim * (1 + 1e-5), h) - f(k_tim * (1 - 1e-5), h)) / (2e-5 * k_tim)
    fd_h = (f(k_tim, h * (1 + 1e-5)) - f(k_tim, h * (1 - 1e-5))) / (2e-5 * h)
    assert float(dk) < 0 and float(dh) < 0
    assert float(dk) == pytest.approx(float(fd_k), rel=1e-4)
    assert float(dh) == pytest.approx(float(fd_h), rel=1e-4)
