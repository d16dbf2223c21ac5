"""Compact porous cold-plate model: exact 1D limits (Darcy, Hele-Shaw and
Forchheimer pressure drops, developed two-temperature profile, the 1D fin),
the one-temperature limit against an independent advection-diffusion solve,
energy balance, vmap, grad, float32 and grid convergence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from aidc_thermo.kernels import advdiff, porous
from aidc_thermo.kernels.fv.grid import grid_from_faces
from aidc_thermo.kernels.solvers.linsolve import Conductances
from aidc_thermo.validation.compact import developing_fins, end_fed_fins, shah_polynomials

F64 = jnp.float64
MU, KF, RHO, CP, KS = 1.0e-3, 0.6, 1000.0, 4180.0, 390.0
W_C, T_F, H = 2.0e-4, 1.0e-4, 2.0e-3  # channel width, fin thickness, fin height


def _stretched(n, length, amp=0.05):
    f = np.linspace(0.0, 1.0, n + 1)
    return length * (f + amp * np.sin(2 * np.pi * f) / (2 * np.pi))


def _grid(nx, ny, lx, ly, dz=(0.5e-3, 1.5e-3), dtype=F64):
    return grid_from_faces(_stretched(nx, lx), _stretched(ny, ly), np.concatenate([[0.0], np.cumsum(dz)]), dtype)


_DEFAULT = porous.EnergyConfig()


def _solve(grid, layer, bc, stack, q, t_in=20.0, cfg=_DEFAULT):
    flow = porous.solve_flow(grid, layer, bc, q)
    return flow, porous.solve_energy(grid, layer, stack, flow, RHO * CP, t_in, cfg)


_run = jax.jit(_solve, static_argnames="cfg")


# ----------------------------------------------------------------------------- flow limits


@pytest.mark.parametrize("kind", ["fins", "plenum"])
def test_one_dimensional_pressure_drop_is_exact(kind):
    """End-fed field on a stretched grid: Shah-London f Re channel friction
    (fins: aidc_thermo.validation.compact.end_fed_fins, also in thermo validate)
    or Hele-Shaw 12 mu/H^2 (plenum) times the length, to round-off."""
    nx, ny, L, Wd = 37, 6, 0.03, 0.005
    q = 3.0e-6
    u = q / (Wd * H)
    if kind == "fins":
        r = end_fed_fins(q, nx, ny, L, Wd)
        flow, expected = r["flow"], r["expected"]
    else:
        g = _grid(nx, ny, L, Wd)
        layer = porous.plenum((nx, ny), H, KF, MU, dtype=F64)
        bc = porous.FlowBC.make((nx, ny), F64, inlet_x_lo=np.diff(_stretched(ny, Wd)) / Wd, outlet_x_hi=1.0)
        flow = jax.jit(porous.solve_flow)(g, layer, bc, q)
        expected = 12 * MU * u * L / H**2
    assert bool(flow.info.converged)
    assert abs(float(flow.dp) / expected - 1) < 1e-9
    # uniform flow, no cross flow, mass conserved
    np.testing.assert_allclose(np.asarray(flow.ux), u, rtol=1e-9)
    assert float(jnp.max(jnp.abs(flow.qy))) < 1e-10 * q
    assert abs(float(jnp.sum(flow.qx[-1])) / q - 1) < 1e-9


def test_forchheimer_channel_is_exact_after_picard():
    """Delta p = (r u + beta u^2) L for a 1D field with a Forchheimer term."""
    nx, ny, L, Wd = 24, 2, 0.02, 0.004
    g = _grid(nx, ny, L, Wd)
    base = porous.plenum((nx, ny), H, KF, MU, dtype=F64)
    beta = 4.0e6
    layer = porous.FinLayer(**{**base.__dict__, "beta_x": jnp.full((nx, ny), beta), "beta_y": jnp.full((nx, ny), beta)})
    bc = porous.FlowBC.make((nx, ny), F64, inlet_x_lo=0.5, outlet_x_hi=1.0)
    q = 4.0e-6
    flow = jax.jit(porous.solve_flow)(g, layer, bc, q)
    u = q / (Wd * H)
    expected = (12 * MU / H**2 * u + beta * u**2) * L
    assert bool(flow.info.converged) and int(flow.info.iterations) >= 1
    assert abs(float(flow.dp) / expected - 1) < 1e-9
    assert beta * u**2 > 0.3 * 12 * MU / H**2 * u  # the nonlinear term matters


def test_shah_polynomials_and_apparent_friction():
    """Polynomials against the exact series values of validation.md
    (aidc_thermo.validation.compact.shah_polynomials, also in thermo validate);
    apparent friction tends to fRe + 1.25/(4 x+) far downstream."""
    r = shah_polynomials()
    keep = r["alpha"] != 0.1  # the five ratios of validation.md's exact values checked here
    for key, rtol in (("fRe", 2e-3), ("Nu_H1", 3e-3), ("Nu_T", 3e-3)):
        got, ref = r[key]
        np.testing.assert_allclose(got[keep], ref[keep], rtol=rtol)
    np.testing.assert_allclose(r["alpha"][keep], [1.0, 0.5, 0.25, 0.125, 0.0])
    xp = jnp.asarray(50.0)
    assert abs(float(porous.shah_apparent_fre(xp, 24.0)) / (24.0 + 1.25 / (4 * 50.0)) - 1) < 1e-4


# ----------------------------------------------------------------------------- fin representation


def test_fin_root_conductance_reproduces_the_one_dimensional_fin():
    """Independent second-order finite-difference solution of
    theta'' = m^2 theta, theta(0) = 1, theta'(H) = 0: the series pair
    (g_root, g_fin) gives the fin heat and the mean fin temperature."""
    for mh in (0.05, 0.7, 2.5):
        n = 2000
        dz = 1.0 / n
        ab = np.zeros((3, n + 1))  # banded rows: upper, diagonal, lower
        ab[1] = -2 / dz**2 - mh**2
        ab[0, 1:] = 1 / dz**2
        ab[2, :-1] = 1 / dz**2
        ab[1, 0], ab[0, 1] = 1.0, 0.0  # theta(0) = 1
        ab[2, n - 1] = 2 / dz**2  # mirror node: zero slope at the tip
        b = np.zeros(n + 1)
        b[0] = 1.0
        theta = scipy.linalg.solve_banded((1, 1), ab, b)
        mean = (theta[:-1] + theta[1:]).sum() * dz / 2
        g_fin = 1.0  # h A, normalised
        g_root = float(porous.fin_root_conductance(jnp.asarray(g_fin), jnp.asarray(mh)))
        heat = 1.0 / (1 / g_root + 1 / g_fin)  # root at 1, fluid at 0
        t_mean = heat / g_fin
        assert abs(heat / mean - 1) < 1e-5, mh  # heat = h A mean(theta)
        assert abs(t_mean / mean - 1) < 1e-5


# ----------------------------------------------------------------------------- two temperatures


def _uniform_case(nx, ny, L, Wd, q_flux, layer=None, dz=(0.5e-3, 1.5e-3), dtype=F64):
    """End-fed field, uniform in x (upwind advection is exact for a linear
    fluid temperature on a uniform grid), stretched in y."""
    zf = np.concatenate([[0.0], np.cumsum(dz)])
    g = grid_from_faces(np.linspace(0, L, nx + 1), _stretched(ny, Wd), zf, dtype)
    layer = layer or porous.straight_fins((nx, ny), W_C, T_F, H, KS, KF, MU, dtype=dtype)
    bc = porous.FlowBC.make((nx, ny), dtype, inlet_x_lo=np.diff(_stretched(ny, Wd)) / Wd, outlet_x_hi=1.0)
    stack = porous.Stack(jnp.full((nx, ny, len(dz)), KS, dtype), jnp.full((nx, ny), q_flux, dtype))
    return g, layer, bc, stack


def test_two_temperature_developed_profile_matches_analytic():
    """Uniform heating from below, uniform flow: in the developed region the
    fluid rises linearly at q W / (rho cp Q), base - fluid = q / G_total and
    fin - fluid = q_fin / g_fin (the analytic solution of the 1D
    two-temperature network); the bottom layer sits q dz / k above the base."""
    nx, ny, L, Wd, qf = 60, 2, 0.12, 0.002, 2.0e5  # long: end effects decay over ~1 cm
    dz = (0.5e-3, 1.5e-3)
    g, layer, bc, stack = _uniform_case(nx, ny, L, Wd, qf, dz=dz)
    q = 1.0e-6
    flow, th = _run(g, layer, bc, stack, q)
    assert bool(th.info.converged)
    x = np.asarray(g.centers(0))
    i = nx // 2
    tf = np.asarray(th.T_fluid[:, 0])
    slope = (tf[i + 1] - tf[i - 1]) / (x[i + 1] - x[i - 1])
    assert abs(slope / (qf * Wd / (RHO * CP * q)) - 1) < 1e-7
    # network from the base cell centre: half cell, then the surface node
    gh = 2 * KS / dz[-1]
    gr, gfin, gfl = float(layer.g_root[0, 0]), float(layer.g_fin[0, 0]), float(layer.g_floor[0, 0])
    # base surface -> fluid: floor in parallel with root + fin in series
    g_surface = gfl + 1 / (1 / gr + 1 / gfin)
    dt_base = qf * (1 / gh + 1 / g_surface)
    dt_surface = qf / g_surface
    q_fin = dt_surface / (1 / gr + 1 / gfin)
    tb = np.asarray(th.T_stack[i, 0, 1])
    ts = np.asarray(th.T_fin[i, 0])
    assert abs((tb - tf[i]) / dt_base - 1) < 1e-6
    assert abs((ts - tf[i]) / (q_fin / gfin) - 1) < 1e-6
    t0 = np.asarray(th.T_stack[i, 0, 0])
    assert abs((t0 - tb) / (qf * (dz[0] / 2 + dz[1] / 2) / KS) - 1) < 1e-6
    tj = float(porous.junction_temperature(g, stack, th)[i, 0])
    assert abs((tj - t0) / (qf * dz[0] / 2 / KS) - 1) < 1e-9


def _one_temperature_reference(g, fins, flow, qmap, t_in):
    """Independent one-temperature problem: two solid layers and one merged
    fin+fluid layer (both in-plane conductivities, the base half cell below,
    advected by the same flows), assembled here and solved by advdiff."""
    nx, ny = qmap.shape
    dz, dx, dy = (np.asarray(a) for a in (g.dz, g.dx, g.dy))
    thick = np.array([dz[0], dz[1], H])
    kx = np.array([KS, KS, float(fins.k_sx[0, 0] + fins.k_fx[0, 0])])
    ky = np.array([KS, KS, float(fins.k_sy[0, 0] + fins.k_fy[0, 0])])
    gx, gy, gz = np.zeros((nx + 1, ny, 3)), np.zeros((nx, ny + 1, 3)), np.zeros((nx, ny, 4))
    for m in range(3):
        rx = dx[:, None] / 2 / (kx[m] * dy[None, :] * thick[m])
        gx[1:-1, :, m] = 1 / (rx[:-1] + rx[1:])
        ry = dy[None, :] / 2 / (ky[m] * dx[:, None] * thick[m])
        gy[:, 1:-1, m] = 1 / (ry[:, :-1] + ry[:, 1:])
    area = dx[:, None] * dy[None, :]
    gz[:, :, 1] = area / (dz[0] / 2 / KS + dz[1] / 2 / KS)
    gz[:, :, 2] = area / (dz[1] / 2 / KS)
    fx = np.zeros((nx + 1, ny, 3))
    fx[:, :, 2] = RHO * CP * np.asarray(flow.qx)
    op = advdiff.AdvectionDiffusion(
        Conductances(*(jnp.asarray(a) for a in (gx, gy, gz)), c=jnp.zeros((nx, ny, 3))),
        jnp.asarray(fx),
        jnp.zeros((nx, ny + 1, 3)),
        jnp.zeros((nx, ny, 4)),
    )
    b = np.zeros((nx, ny, 3))
    b[:, :, 0] = np.asarray(qmap) * area
    b[0, :, 2] += RHO * CP * np.asarray(flow.qx[0]) * t_in
    T, info = jax.jit(advdiff.solve)(op, jnp.asarray(b))
    assert bool(info.converged)
    return np.asarray(T)


def test_large_interstitial_coefficient_reduces_to_one_temperature():
    """h a -> infinity: fin and fluid temperatures merge (their difference
    falls as 1/(h a)) and the model tends to an independently assembled
    one-temperature advection-diffusion problem."""
    nx, ny, L, Wd = 24, 6, 0.02, 0.004
    g, fins, bc, _ = _uniform_case(nx, ny, L, Wd, 0.0)
    xc = np.asarray(g.centers(0))[:, None]
    qmap = jnp.asarray(1e5 * (1 + np.exp(-(((xc - 0.012) / 0.003) ** 2))) * np.ones((1, ny)))
    stack = porous.Stack(jnp.full((nx, ny, 2), KS), qmap)
    # z-line smoothing: robust when the column links dominate everything else
    cfg = porous.EnergyConfig(advdiff.KrylovConfig(line_axis=2))
    gaps, errors = [], []
    ref = None
    for big in (1e8, 1e10):
        full = jnp.full((nx, ny), big)
        layer = porous.FinLayer(**{**fins.__dict__, "g_root": full, "g_fin": full, "g_floor": full})
        flow, th = _run(g, layer, bc, stack, 2.0e-6, cfg=cfg)
        assert bool(th.info.converged)
        if ref is None:
            ref = _one_temperature_reference(g, fins, flow, qmap, 20.0)
        rise = ref.max() - 20.0
        gaps.append(float(jnp.max(jnp.abs(th.T_fin - th.T_fluid))) / rise)
        errors.append(
            max(
                np.abs(np.asarray(th.T_fluid) - ref[:, :, 2]).max(),
                np.abs(np.asarray(th.T_stack) - ref[:, :, :2]).max(),
            )
            / rise
        )
    assert abs(gaps[0] / gaps[1] / 100 - 1) < 0.01, gaps
    assert errors[1] < 1e-5 and errors[0] / errors[1] > 50, errors


# ----------------------------------------------------------------------------- centre-fed plate


def _centre_fed(nx, ny, dtype=F64, width=W_C):
    """Centre-fed split flow: slot over the middle 1/8 of the length feeding
    the fins from above, outlets at both ends, plena of 1/16 of the length at
    each end; a hot spot in the power map."""
    L, Wd = 0.024, 0.012
    xf, yf = np.linspace(0, L, nx + 1), np.linspace(0, Wd, ny + 1)
    g = grid_from_faces(xf, yf, [0.0, 0.5e-3, 2.0e-3], dtype)
    x = (0.5 * (xf[1:] + xf[:-1]))[:, None] * np.ones((1, ny))
    y = np.ones((nx, 1)) * (0.5 * (yf[1:] + yf[:-1]))[None, :]
    fins = porous.straight_fins((nx, ny), width, T_F, H, KS, KF, MU, dtype=dtype)
    plen = porous.plenum((nx, ny), H, KF, MU, dtype=dtype)
    ends = (x < L / 16) | (x > L - L / 16)
    layer = porous.select(jnp.asarray(~ends), fins, plen)
    slot = np.abs(x - L / 2) < L / 16
    slot_w = slot * np.abs(np.sin(np.pi * y / Wd)) + 1e-3 * slot
    bc = porous.FlowBC.make((nx, ny), dtype, inlet_cells=slot_w / slot_w.sum(), outlet_x_lo=1.0, outlet_x_hi=1.0)
    die = (np.abs(x - L / 2) < 0.25 * L) & (np.abs(y - Wd / 2) < 0.25 * Wd)  # edges on faces of every grid
    hot = np.exp(-(((x - 0.6 * L) / (0.05 * L)) ** 2 + ((y - 0.4 * Wd) / (0.08 * Wd)) ** 2))
    qmap = jnp.asarray(1e6 * (die + 3 * hot), dtype)
    # silicon die 0.5 mm under a 1.5 mm copper base
    stack = porous.Stack(jnp.asarray(np.stack([np.full((nx, ny), 150.0), np.full((nx, ny), KS)], -1), dtype), qmap)
    return g, layer, bc, stack


def _r_and_dp(grid, layer, bc, stack, q):
    flow = porous.solve_flow(grid, layer, bc, q)
    th = porous.solve_energy(grid, layer, stack, flow, RHO * CP, 20.0)
    r_max, r_mean = porous.thermal_resistance(stack, grid, th, 20.0)
    return flow, th, r_max, r_mean


def test_centre_fed_energy_balance_and_mass_conservation():
    g, layer, bc, stack = _centre_fed(16, 8)
    flow, th, r_max, r_mean = jax.jit(_r_and_dp)(g, layer, bc, stack, 1.5 / 60000)
    assert bool(flow.info.converged) and bool(th.info.converged)
    assert abs(float(th.heat_in - th.heat_out)) / float(th.heat_in) < 1e-9
    q_out = float(jnp.sum(-flow.qx[0]) + jnp.sum(flow.qx[-1]))
    assert abs(q_out / (1.5 / 60000) - 1) < 1e-10
    # split flow: both outlets carry flow, the hottest bottom cell is near the hot spot
    assert float(jnp.sum(-flow.qx[0])) > 0.3 * q_out and float(jnp.sum(flow.qx[-1])) > 0.3 * q_out
    assert 0 < float(r_mean) < float(r_max)
    # temperatures ordered: fluid below fins below base at the hot spot
    i, j = np.unravel_index(int(jnp.argmax(th.T_stack[..., 0])), (16, 8))
    assert float(th.T_fluid[i, j]) < float(th.T_fin[i, j]) < float(th.T_stack[i, j, 1])


def test_vmap_over_flow_rates_equals_loop():
    g, layer, bc, stack = _centre_fed(16, 8)
    qs = jnp.linspace(0.5, 3.0, 8) / 60000

    def f(q):
        flow, th, r_max, r_mean = _r_and_dp(g, layer, bc, stack, q)
        return flow.dp, r_max, r_mean

    batched = jax.jit(jax.vmap(f))(qs)
    single = jax.jit(f)
    loop = [single(q) for q in qs]
    for k in range(3):
        np.testing.assert_allclose(np.asarray(batched[k]), np.array([float(v[k]) for v in loop]), rtol=1e-9)
    # physics: R falls and dP rises with flow
    assert np.all(np.diff(np.asarray(batched[0])) > 0) and np.all(np.diff(np.asarray(batched[2])) < 0)


@pytest.mark.slow
def test_vmap_over_64_flow_rates_equals_64_separate_solves():
    """One vmapped solve of 64 flows (a whole dP(Q), R(Q) curve) against 64
    separate solves of the same compiled function, on a small grid; the
    batch's iteration counts differ per flow and must not leak across."""
    g, layer, bc, stack = _centre_fed(16, 4)
    qs = jnp.geomspace(0.25, 4.0, 64) / 60000

    def f(q):
        flow, th, r_max, r_mean = _r_and_dp(g, layer, bc, stack, q)
        return flow.dp, r_max, r_mean, th.info.iterations, th.info.converged

    batched = jax.jit(jax.vmap(f))(qs)
    single = jax.jit(f)
    loop = [single(q) for q in qs]
    assert bool(jnp.all(batched[4]))
    for k in range(3):
        np.testing.assert_allclose(np.asarray(batched[k]), np.array([float(v[k]) for v in loop]), rtol=1e-9)
    np.testing.assert_array_equal(np.asarray(batched[3]), np.array([int(v[3]) for v in loop]))
    # Darcy flow: dP proportional to Q across the whole range
    np.testing.assert_allclose(np.asarray(batched[0]) / np.asarray(qs), float(batched[0][0] / qs[0]), rtol=1e-9)


def test_grad_of_resistance_wrt_channel_width_matches_finite_difference():
    """Implicit derivatives through the pressure and the energy solves (the
    channel width changes friction, h, fin area and porosity)."""

    def both(width):
        g, layer, bc, stack = _centre_fed(16, 8, width=width)
        flow, _, _, r_mean = _r_and_dp(g, layer, bc, stack, 1.5 / 60000)
        return jnp.stack([r_mean, flow.dp])

    w0, eps = 2.0e-4, 1.0e-7
    grad = np.asarray(jax.jit(jax.jacrev(both))(jnp.asarray(w0)))
    f = jax.jit(both)
    fd = (np.asarray(f(jnp.asarray(w0 + eps))) - np.asarray(f(jnp.asarray(w0 - eps)))) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-3)
    assert np.all(np.abs(grad) > 0)


@pytest.mark.parametrize(
    "n, dtype",
    [
        pytest.param(12, F64, id="12x12-float64"),
        # about 30 s of compilation and solves on a 2-core CPU: with the slow tests
        pytest.param(128, jnp.float32, id="128x128-float32", marks=pytest.mark.slow),
    ],
)
def test_reverse_mode_derivative_where_one_line_direction_alone_fails(n, dtype):
    """d R_max / d Q by reverse mode (the adjoint energy solve) equals forward
    mode (tangent solves with the forward operator) on the benchmark's GPU plate
    (centre-fed, 303.15 K inlet). Its adjoint BiCGSTAB, preconditioned with
    x lines alone, ran 300 iterations without converging at 12 x 12; with
    z columns alone it diverged at 128 x 128 in float32: the gradient was NaN.
    A V-cycle of each in turn converges at both; at 12 x 12 in the test process
    it also needs the restart after a breakdown (rho = 0 after 2 iterations)."""
    from benchmarks.porous import CP, RHO, plate

    g, layer, bc, stack = plate(n, dtype)
    t_in = 303.15

    def r_max(q):
        flow = porous.solve_flow(g, layer, bc, q)
        th = porous.solve_energy(g, layer, stack, flow, RHO * CP, t_in)
        return porous.thermal_resistance(stack, g, th, t_in)[0]

    q = jnp.asarray(1.5 / 60000, dtype)
    reverse = float(jax.jit(jax.grad(r_max))(q))
    forward = float(jax.jit(lambda q: jax.jvp(r_max, (q,), (jnp.ones_like(q),))[1])(q))
    assert np.isfinite(reverse) and forward < 0
    assert abs(reverse / forward - 1) < (1e-8 if dtype == F64 else 2e-3), (reverse, forward)


def test_float32_converges_and_agrees():
    out = {}
    for dt in (jnp.float32, F64):
        g, layer, bc, stack = _centre_fed(16, 8, dtype=dt)
        flow, th, r_max, r_mean = jax.jit(_r_and_dp)(g, layer, bc, stack, jnp.asarray(1.5 / 60000, dt))
        assert bool(flow.info.converged) and bool(th.info.converged)
        assert th.T_fluid.dtype == dt
        out[dt] = (float(flow.dp), float(r_max), float(r_mean))
    np.testing.assert_allclose(out[jnp.float32], out[F64], rtol=2e-4)


@pytest.mark.slow
def test_grid_convergence_of_pressure_drop_and_resistance():
    """Refinement by 2 in both directions: the changes shrink, observed orders
    for dP (second-order Darcy operator) and R (first-order upwind advection)."""
    res = []
    for n in (16, 32, 64):
        g, layer, bc, stack = _centre_fed(n, n // 2)
        flow, th, r_max, r_mean = jax.jit(_r_and_dp)(g, layer, bc, stack, 1.5 / 60000)
        assert bool(flow.info.converged) and bool(th.info.converged)
        res.append((float(flow.dp), float(r_mean)))
    res = np.array(res)
    d1, d2 = np.abs(res[1] - res[0]), np.abs(res[2] - res[1])
    order = np.log2(d1 / d2)
    assert order[0] > 0.8, (order, res)
    assert order[1] > 0.6, (order, res)
    assert np.all(d2 / np.abs(res[2]) < 0.05), res


def test_developing_flow_factor_gives_shah_apparent_friction():
    """Scaling r_x cell by cell with the developing-flow factor reproduces
    Shah's apparent friction over the whole channel, at any grid
    (aidc_thermo.validation.compact.developing_fins, also in thermo validate)."""
    r = developing_fins()
    assert abs(r["dp"] / r["expected"] - 1) < 1e-9
    # the entrance region matters here (x+ ~ 0.02): at least 10 % above developed
    assert r["dp"] > 1.1 * r["developed"]
    factor = r["factor"]
    assert np.all(np.diff(factor) < 0) and float(factor[-1]) > 1  # decays downstream


def test_pin_fin_closure_regimes_and_geometry():
    """Zukauskas staggered bank: Nu ~ Re^0.6 above Re_max = 1000 and ~ Re^0.4
    below 100 (so g_fin = h A scales so with the speed); isotropic in-plane
    friction; fluid conduction on the porosity 1 - pi D^2 / (4 S_T S_L); pins
    do not conduct in-plane."""
    D, st, sl, Hp, pr = 0.5e-3, 1.0e-3, 0.9e-3, 2e-3, 5.0

    def layer(speed):
        return porous.pin_fins((2, 2), D, st, sl, Hp, KS, KF, RHO, MU, pr, speed, 1e7, 1e5, dtype=F64)

    u_max = lambda re: re * MU / (RHO * D) * (st - D) / st  # noqa: E731  superficial speed for Re_max
    hi1, hi2 = layer(u_max(2000.0)), layer(u_max(4000.0))
    lo1, lo2 = layer(u_max(20.0)), layer(u_max(40.0))
    assert float(hi2.g_fin[0, 0] / hi1.g_fin[0, 0]) == pytest.approx(2**0.6, rel=1e-12)
    assert float(lo2.g_fin[0, 0] / lo1.g_fin[0, 0]) == pytest.approx(2**0.4, rel=1e-12)
    nu = float(hi1.g_fin[0, 0]) / (np.pi * D * Hp / (st * sl)) * D / KF
    assert nu == pytest.approx(0.35 * (st / sl) ** 0.2 * 2000.0**0.6 * pr**0.36, rel=1e-12)
    phi = 1 - np.pi * D**2 / (4 * st * sl)
    assert float(hi1.k_fx[0, 0]) == pytest.approx(phi * KF) and float(hi1.k_fy[0, 0]) == pytest.approx(phi * KF)
    assert float(hi1.k_sx[0, 0]) == 0.0 and float(hi1.r_x[0, 0]) == float(hi1.r_y[0, 0])
