"""Transient kernels: field conduction (kernels.fv.transient) and lumped thermal
masses (kernels.plant.lumped), against exact solutions, with their order in time
fitted, energy conserved over a trace, the steady limit, vmap and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erfc

from aidc_thermo.kernels.fv import conduction as cd
from aidc_thermo.kernels.fv import transient as tr
from aidc_thermo.kernels.fv.grid import uniform_grid
from aidc_thermo.kernels.plant import lumped


def _bcs(g, **faces):
    return cd.BoundaryConditions(*[faces.get(n, cd.face_bc(g, n)) for n, _, _ in cd.FACES])


def _slope(ns, errs):
    return -float(np.polyfit(np.log(ns), np.log(errs), 1)[0])


# --------------------------------------------------------------------------- field


ALPHA, K_SOLID, T_END = 1e-5, 10.0, 10.0


def _semi_infinite(nx=1600):
    """A slab ten diffusion lengths deep: effectively semi-infinite over T_END."""
    length = 10 * np.sqrt(ALPHA * T_END)
    g = uniform_grid((nx, 1, 1), (length, 1e-3, 1e-3))
    bcs = _bcs(g, x_lo=cd.face_bc(g, "x_lo", cd.TEMPERATURE, value=1.0))
    k = jnp.full(g.shape, K_SOLID)
    rho_c = jnp.full(g.shape, K_SOLID / ALPHA)
    return g, bcs, k, rho_c


@pytest.mark.slow
@pytest.mark.parametrize("scheme, order", [("euler", 1.0), ("bdf2", 2.0)])
def test_step_surface_temperature_matches_erfc_at_the_design_order(scheme, order):
    """Semi-infinite solid at 0, surface stepped to 1 at t = 0:
    T = erfc(x / (2 sqrt(alpha t))). The grid is fine enough that the error
    is the time step's; the fitted slope of error against steps is the order."""
    g, bcs, k, rho_c = _semi_infinite()
    x = np.asarray(g.centers(0))
    exact = erfc(x / (2 * np.sqrt(ALPHA * T_END)))
    zero = jnp.zeros(g.shape)
    run = jax.jit(
        lambda dt, s: tr.integrate(g, k, rho_c, zero, bcs, zero, dt, s, tr.TimeConfig(scheme)),
    )
    ns, errs = [10, 20, 40, 80], []
    for n in ns:
        T, _, info = run(T_END / n, jnp.ones(n + 1))
        assert bool(info.converged) and info.history.shape == (n,)
        errs.append(float(np.max(np.abs(np.asarray(T)[:, 0, 0] - exact))))
    assert abs(_slope(ns, errs) - order) < 0.1, errs
    assert errs[-1] < (3e-3 if order == 1 else 3e-5)


@pytest.mark.slow
def test_crank_nicolson_is_second_order_on_a_smooth_decay():
    """A smooth initial mode between two faces held at 0 (no step to ring):
    Crank-Nicolson's error against a much finer step of its own falls at
    second order."""
    length, nx = 0.02, 64
    g = uniform_grid((nx, 1, 1), (length, 1e-3, 1e-3))
    bcs = _bcs(
        g, x_lo=cd.face_bc(g, "x_lo", cd.TEMPERATURE, value=0.0), x_hi=cd.face_bc(g, "x_hi", cd.TEMPERATURE, value=0.0)
    )
    x = g.centers(0)
    T0 = jnp.broadcast_to(jnp.sin(jnp.pi * x / length)[:, None, None], g.shape)
    k, rho_c, zero = jnp.full(g.shape, K_SOLID), jnp.full(g.shape, K_SOLID / ALPHA), jnp.zeros(g.shape)
    t_end = 0.2 * length**2 / ALPHA / np.pi**2  # the mode decays to exp(-0.2)
    run = jax.jit(lambda dt, s: tr.integrate(g, k, rho_c, zero, bcs, T0, dt, s, tr.TimeConfig("cn"))[0])
    ref = run(t_end / 1280, jnp.ones(1281))
    ns = [10, 20, 40, 80]
    errs = [float(jnp.max(jnp.abs(run(t_end / n, jnp.ones(n + 1)) - ref))) for n in ns]
    assert abs(_slope(ns, errs) - 2.0) < 0.1, errs


def _block():
    """A small 3D block: heated volume, convective top, insulated elsewhere."""
    g = uniform_grid((6, 5, 4), (0.03, 0.025, 0.01))
    top = cd.face_bc(g, "z_hi", cd.CONVECTIVE, h=2000.0, value=25.0)
    bcs = _bcs(g, z_hi=top)
    xs = np.arange(6)[:, None, None] + np.arange(5)[None, :, None] + np.arange(4)[None, None, :]
    k = jnp.asarray(np.where(xs % 2 == 0, 150.0, 20.0) * np.ones((6, 5, 4)))
    rho_c = jnp.full(g.shape, 2.4e6)
    q = jnp.zeros(g.shape).at[1:4, 1:3, 0].set(5e7)
    return g, bcs, k, rho_c, q


@pytest.mark.slow
def test_long_times_reach_the_steady_solution():
    g, bcs, k, rho_c, q = _block()
    steady, _ = cd.solve(g, k, q, bcs)
    T0 = jnp.full(g.shape, 25.0)
    for scheme in ("bdf2",):
        T, _, info = tr.integrate(g, k, rho_c, q, bcs, T0, 1e6, jnp.ones(6), tr.TimeConfig(scheme))
        assert bool(info.converged)
        rel = float(jnp.max(jnp.abs(T - steady)) / jnp.max(jnp.abs(steady - 25.0)))
        assert rel < 1e-8, (scheme, rel)


@pytest.mark.parametrize("scheme", ["euler", "cn"])
def test_energy_is_conserved_over_a_power_trace(scheme):
    """Heat in over the trace = heat rejected through the convective face +
    change in stored heat, with each scheme's own quadrature (backward Euler:
    the end of each step; Crank-Nicolson: the average of both ends)."""
    g, bcs, k, rho_c, q = _block()
    n, dt = 40, 0.5
    t = np.arange(n + 1) * dt
    scale = jnp.asarray(np.where((t % 4.0) < 2.0, 1.0, 0.2))  # square wave, period 4 s
    T0 = jnp.full(g.shape, 25.0)

    def out(T):
        return cd.heat_balance(g, k, jnp.zeros_like(q), bcs, T)[1]

    def observe(T):
        return out(T), tr.stored_heat(g, rho_c, T)

    run = jax.jit(
        lambda T0, scale: tr.integrate(g, k, rho_c, q, bcs, T0, dt, scale, tr.TimeConfig(scheme), observe=observe)
    )
    T, (p_out, e), info = run(T0, scale)
    assert bool(info.converged)
    p_in = np.asarray(scale) * float(jnp.sum(q * g.volumes()))
    p_out = np.asarray(p_out)
    if scheme == "euler":
        heat_in, heat_out = dt * p_in[1:].sum(), dt * p_out[1:].sum()
    else:
        heat_in = dt * 0.5 * (p_in[1:] + p_in[:-1]).sum()
        heat_out = dt * 0.5 * (p_out[1:] + p_out[:-1]).sum()
    stored = float(e[-1] - e[0])
    assert stored > 0.1 * heat_in  # the trace is short enough that heat is still being stored
    assert abs(heat_in - heat_out - stored) / heat_in < 1e-8


def test_vmap_over_scenarios_equals_separate_runs():
    g, bcs, k, rho_c, q = _block()
    T0 = jnp.full(g.shape, 25.0)
    n = 12
    traces = jnp.stack([jnp.ones(n + 1), jnp.linspace(0.0, 1.0, n + 1), 0.5 + 0.5 * jnp.cos(jnp.arange(n + 1.0))])

    def peak(s):
        return tr.integrate(g, k, rho_c, q, bcs, T0, 0.3, s, tr.TimeConfig("bdf2"))[1]

    batched = jax.jit(jax.vmap(peak))(traces)
    one = jax.jit(peak)
    for i in range(3):
        np.testing.assert_allclose(batched[i], one(traces[i]), rtol=1e-10)


@pytest.mark.slow
def test_gradient_of_peak_temperature_matches_finite_differences():
    """d(peak temperature over the trace)/d(conductivity scale), reverse mode
    through lax.scan and each step's implicit solve."""
    g, bcs, k, rho_c, q = _block()
    T0 = jnp.full(g.shape, 25.0)
    n = 6
    scale = jnp.ones(n + 1)

    def peak(a):
        _, hist, _ = tr.integrate(g, a * k, rho_c, q, bcs, T0, 0.5, scale, tr.TimeConfig("euler"))
        return jnp.max(hist)

    a0, h = 1.0, 1e-5
    grad = float(jax.grad(peak)(a0))
    fd = float((peak(a0 + h) - peak(a0 - h)) / (2 * h))
    assert grad < 0  # better conduction, cooler peak
    assert abs(grad - fd) / abs(fd) < 1e-5


def test_float32_runs_and_bad_scheme_is_refused():
    g, bcs, k, rho_c, q = _block()
    g32 = g.astype(jnp.float32)
    f32 = [jnp.asarray(a, jnp.float32) for a in (k, rho_c, q)]
    bcs32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32) if a.dtype == jnp.float64 else a, bcs)
    T0 = jnp.full(g.shape, 25.0, jnp.float32)
    T, hist, info = jax.jit(lambda T0, s: tr.integrate(g32, *f32, bcs32, T0, 0.5, s))(T0, jnp.ones(5, jnp.float32))
    assert T.dtype == jnp.float32 and bool(info.converged) and float(hist[-1]) > 25.0
    with pytest.raises(ValueError, match="unknown time scheme"):
        tr.TimeConfig("rk4")


# --------------------------------------------------------------------------- lumped


R, CAP, P = 0.05, 400.0, 1000.0  # K/W, J/K, W: tau = 20 s


def _rc(scheme, n, t_end, power):
    A = lumped.rc_links(1, [], [(0, 1.0 / R)])
    t = jnp.linspace(0.0, t_end, n + 1)
    f = (power(t) + 25.0 / R)[:, None]
    return t, lumped.integrate(jnp.asarray([CAP]), A, f, jnp.asarray([25.0]), t_end / n, scheme)[:, 0]


@pytest.mark.parametrize("scheme, order", [("euler", 1.0), ("bdf2", 2.0), ("cn", 2.0)])
def test_rc_step_response_is_exact_at_the_design_order(scheme, order):
    tau, t_end = R * CAP, 30.0
    ns, errs = [40, 80, 160, 320], []
    for n in ns:
        t, T = _rc(scheme, n, t_end, lambda t: jnp.full_like(t, P))
        exact = 25.0 + P * R * (1 - jnp.exp(-t / tau))
        errs.append(float(jnp.max(jnp.abs(T - exact))))
    assert abs(_slope(ns, errs) - order) < 0.1, errs


def test_rc_sinusoid_amplitude_ratio_and_phase_lag():
    """Power P sin(w t): after the start-up decays, T - T_amb oscillates with
    amplitude P R / sqrt(1 + (w tau)^2), lagging the power by atan(w tau)."""
    tau = R * CAP
    for period in (10.0, 60.0, 400.0):
        w = 2 * np.pi / period
        n_per, periods = 400, 12
        t, T = _rc("bdf2", n_per * periods, period * periods, lambda t, w=w: P * jnp.sin(w * t))
        t, dT = np.asarray(t)[-n_per * 2 :], np.asarray(T)[-n_per * 2 :] - 25.0
        basis = np.stack([np.sin(w * t), np.cos(w * t)], 1)
        (a, b), *_ = np.linalg.lstsq(basis, dT, rcond=None)
        amp, lag = np.hypot(a, b), -np.arctan2(b, a)
        assert abs(amp / (P * R) - 1 / np.sqrt(1 + (w * tau) ** 2)) < 2e-4
        assert abs(lag - np.arctan(w * tau)) < 2e-3


def test_square_wave_ripple_falls_with_frequency_as_the_rc_predicts():
    """Power switching between P and 0 with duty 0.5: the periodic ripple
    (peak to peak) is P R tanh(period / (4 tau))."""
    tau = R * CAP
    ripples = []
    for period in (2.0, 8.0, 40.0, 200.0):
        steps_per, periods = 200, 8 + int(10 * tau / period)
        n = steps_per * periods
        _, T = _rc("euler", n, period * periods, lambda t, p=period: jnp.where((t % p) < p / 2, P, 0.0))
        last = np.asarray(T)[-steps_per:]
        ripple = last.max() - last.min()
        expected = P * R * np.tanh(period / (4 * tau))
        assert abs(ripple - expected) / expected < 0.02, (period, ripple, expected)
        ripples.append(ripple)
    assert np.all(np.diff(ripples) > 0)


def test_mixing_cells_delay_a_step_by_volume_over_flow():
    """An inlet step through a pipe: the mean arrival time is V/Q for any cell
    count, and the half-rise time approaches V/Q as the cells get finer."""
    volume, flow, rho_cp = 2e-3, 1e-4, 4.18e6  # 2 L at 6 L/min: 20 s
    tau = volume / flow
    integrate = jax.jit(lumped.integrate, static_argnames="scheme")
    for n_cells in (4, 16, 64):
        C, A, inlet = lumped.mixing_cells(volume, flow, rho_cp, n_cells)
        n, t_end = 4000, 5 * tau
        f = jnp.broadcast_to(inlet * 1.0, (n + 1, n_cells))  # inlet stepped from 0 to 1 at t = 0
        T = integrate(C, A, f, jnp.zeros(n_cells), t_end / n, "bdf2")
        out = np.asarray(T[:, -1])
        t = np.linspace(0.0, t_end, n + 1)
        mean_arrival = np.trapezoid(1.0 - out, t)
        assert abs(mean_arrival - tau) / tau < 1e-3, (n_cells, mean_arrival)
        t_half = np.interp(0.5, out, t)
        assert abs(t_half - tau) / tau < 0.5 / n_cells + 1e-3, (n_cells, t_half)
        # energy: heat carried in - heat carried out = stored
        rate = flow * rho_cp
        carried = rate * np.trapezoid(1.0 - out, t)
        stored = float(lumped.stored_heat(C, T[-1]))
        assert abs(carried - stored) / stored < 1e-3


def test_lumped_energy_closes_exactly_with_backward_euler_and_reaches_steady():
    """Two masses (chip, plate) and a conductance to coolant at 30 C: heat in
    = rejected + stored at every step; the long-time limit solves A T = f."""
    A = lumped.rc_links(2, [(0, 1, 20.0)], [(1, 50.0)])
    C = jnp.asarray([50.0, 900.0])
    n, dt = 200, 0.25
    t = jnp.arange(n + 1.0) * dt
    power = jnp.where(t % 10.0 < 5.0, 700.0, 100.0)
    f = jnp.stack([power, jnp.full_like(t, 50.0 * 30.0)], 1)
    T = lumped.integrate(C, A, f, jnp.asarray([30.0, 30.0]), dt, "euler")
    rejected = dt * jnp.sum(50.0 * (T[1:, 1] - 30.0))
    heat_in = dt * jnp.sum(power[1:])
    stored = lumped.stored_heat(C, T[-1]) - lumped.stored_heat(C, T[0])
    assert abs(float(heat_in - rejected - stored)) / float(heat_in) < 1e-10
    f_const = jnp.broadcast_to(jnp.asarray([700.0, 1500.0]), (6, 2))
    T_long = lumped.integrate(C, A, f_const, jnp.asarray([30.0, 30.0]), 1e7, "bdf2")[-1]
    np.testing.assert_allclose(T_long, jnp.linalg.solve(A, f_const[0]), rtol=1e-8)


def test_lumped_vmap_and_gradient():
    A0 = lumped.rc_links(2, [(0, 1, 20.0)], [(1, 50.0)])
    C = jnp.asarray([50.0, 900.0])
    t = jnp.arange(101.0) * 0.5

    def peak(g_link, period):
        A = A0 * (g_link / 20.0) + lumped.rc_links(2, [], [(1, 50.0)]) * (1 - g_link / 20.0)
        power = 400.0 + 300.0 * jnp.sin(2 * jnp.pi * t / period)
        f = jnp.stack([power, jnp.full_like(t, 1500.0)], 1)
        return jnp.max(lumped.integrate(C, A, f, jnp.asarray([30.0, 30.0]), 0.5, "cn")[:, 0])

    periods = jnp.asarray([2.0, 10.0, 50.0])
    batched = jax.jit(jax.vmap(peak, in_axes=(None, 0)))(20.0, periods)
    peak = jax.jit(peak)
    for i in range(3):
        assert abs(float(batched[i] - peak(20.0, periods[i]))) < 1e-10
    assert float(batched[0]) < float(batched[2])  # faster swings, smaller peak
    g = float(jax.jit(jax.grad(peak))(20.0, 10.0))
    fd = float((peak(20.0 + 1e-4, 10.0) - peak(20.0 - 1e-4, 10.0)) / 2e-4)
    assert g < 0 and abs(g - fd) / abs(fd) < 1e-6
