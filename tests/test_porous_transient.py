"""The compact cold plate in time (kernels.fv.porous.integrate_energy): its order
in time against the exact solution of the same semi-discrete system (matrix
exponential, scipy), the one-mass limit against the analytic RC step, the
steady limit, energy over a trace, vmap, gradients and float32 (the order,
one-mass, vmap and gradient tests are marked slow: ``pytest -m slow``)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from aidc_thermo.kernels import advdiff, porous
from aidc_thermo.kernels.fv.grid import grid_from_faces

F64 = jnp.float64
MU, KF, RHO, CP = 1.0e-3, 0.6, 1000.0, 4180.0
K_CU, RHOC_CU, K_SI, RHOC_SI = 390.0, 3.45e6, 150.0, 1.66e6
W_C, T_F, H = 2.0e-4, 1.0e-4, 2.0e-3
PHI = W_C / (W_C + T_F)
Q = 1.5 / 60000  # m^3/s


def _slope(ns, errs):
    return -float(np.polyfit(np.log(ns), np.log(errs), 1)[0])


def _plate(nx=12, ny=6, dtype=F64):
    """Centre-fed split flow: a feed slot over the middle eighth, outlets at
    both ends, open plena over the end sixteenths; a silicon die under a
    copper base and a hot spot."""
    L, Wd = 0.024, 0.012
    xf, yf = np.linspace(0, L, nx + 1), np.linspace(0, Wd, ny + 1)
    g = grid_from_faces(xf, yf, [0.0, 0.5e-3, 2.0e-3], dtype)
    x = (0.5 * (xf[1:] + xf[:-1]))[:, None] * np.ones((1, ny))
    y = np.ones((nx, 1)) * (0.5 * (yf[1:] + yf[:-1]))[None, :]
    fins = porous.straight_fins((nx, ny), W_C, T_F, H, K_CU, KF, MU, dtype=dtype)
    plen = porous.plenum((nx, ny), H, KF, MU, dtype=dtype)
    ends = (x < L / 16) | (x > L - L / 16)
    layer = porous.select(jnp.asarray(~ends), fins, plen)
    slot = np.abs(x - L / 2) < L / 16
    bc = porous.FlowBC.make((nx, ny), dtype, inlet_cells=slot / slot.sum(), outlet_x_lo=1.0, outlet_x_hi=1.0)
    die = (np.abs(x - L / 2) < 0.25 * L) & (np.abs(y - Wd / 2) < 0.25 * Wd)
    hot = np.exp(-(((x - 0.6 * L) / (0.05 * L)) ** 2 + ((y - 0.4 * Wd) / (0.08 * Wd)) ** 2))
    stack = porous.Stack(
        jnp.asarray(np.stack([np.full((nx, ny), K_SI), np.full((nx, ny), K_CU)], -1), dtype),
        jnp.asarray(1e6 * (die + 3 * hot), dtype),
    )
    cap = porous.HeatCapacity(
        jnp.asarray(np.stack([np.full((nx, ny), RHOC_SI), np.full((nx, ny), RHOC_CU)], -1), dtype),
        jnp.asarray(np.where(ends, 0.0, (1 - PHI) * RHOC_CU), dtype),
        jnp.asarray(np.where(ends, RHO * CP, PHI * RHO * CP), dtype),
    )
    flow = _flow(g, layer, bc, jnp.asarray(Q, dtype))
    return g, layer, stack, flow, cap, ends


_flow = jax.jit(porous.solve_flow)
_steady = jax.jit(porous.solve_energy)


def test_heat_capacities_are_the_cells_volumes_times_rho_c():
    g, layer, stack, flow, cap, ends = _plate()
    c = np.asarray(porous.cell_heat_capacities(g, layer, cap))
    area = 0.024 * 0.012
    assert abs(c[..., 0].sum() / (RHOC_SI * area * 0.5e-3) - 1) < 1e-12
    assert abs(c[..., 1].sum() / (RHOC_CU * area * 1.5e-3) - 1) < 1e-12
    finned = 1 - ends.mean()  # share of the plan area under fins
    assert abs(c[..., 2].sum() / ((1 - PHI) * RHOC_CU * area * finned * H) - 1) < 1e-12
    fluid = (PHI * finned + (1 - finned)) * RHO * CP * area * H
    assert abs(c[..., 3].sum() / fluid - 1) < 1e-12


def _dense_system(g, layer, stack, flow, cap):
    """The semi-discrete system ``C dT/dt = -A T + s b_q + t_in b_in`` as
    dense arrays: ``A`` column by column from the kernel's steady operator,
    ``C`` recomputed here from the grid's faces, ``b_q`` and ``b_in`` from
    the steady solutions (``b = A T_steady``)."""
    op, g_floor = porous._energy_operator(g, layer, stack, flow, RHO * CP)
    nb = stack.k.shape[2]
    shape = op.shape
    n = int(np.prod(shape))
    eye = jnp.eye(n, dtype=F64).reshape((n, *shape))
    cols = jax.vmap(lambda v: advdiff.apply(op, v) + porous._skip_apply(g_floor, v, nb))(eye)
    A = np.asarray(cols).reshape(n, n).T
    dx, dy, dz = (np.diff(np.asarray(g.faces(axis))) for axis in range(3))
    vol = dx[:, None, None] * dy[None, :, None] * np.concatenate([dz, [H, H]])[None, None, :]
    rho_c = np.concatenate([np.asarray(cap.stack), np.asarray(cap.fin)[..., None], np.asarray(cap.fluid)[..., None]], 2)
    C = (rho_c * vol).reshape(-1)

    def stacked(th):
        return np.concatenate([th.T_stack, th.T_fin[..., None], th.T_fluid[..., None]], 2).reshape(-1)

    b_q = A @ stacked(_steady(g, layer, stack, flow, RHO * CP, 0.0))
    no_heat = dataclasses.replace(stack, q=jnp.zeros_like(stack.q))
    b_in = A @ stacked(_steady(g, layer, no_heat, flow, RHO * CP, 1.0))
    return A, C, b_q, b_in, stacked


@pytest.mark.slow
@pytest.mark.parametrize("scheme, order", [("euler", 1.0), ("bdf2", 2.0), ("cn", 2.0)])
def test_order_in_time_against_the_exact_semi_discrete_solution(scheme, order):
    """Power ``s(t) = 1 + 0.5 sin(w t)`` and inlet ``20 + 2 sin(w t)`` from the
    steady state at ``s = 1``: the exact solution of the semi-discrete system
    is one matrix exponential of the system augmented by the oscillator
    ``(sin, cos)``; the scheme's error at 2 s falls at its design order."""
    g, layer, stack, flow, cap, _ = _plate(8, 4)
    # every cell needs a capacity for an ODE: give the plena's fin cells the fluid's
    cap = dataclasses.replace(cap, fin=jnp.where(cap.fin > 0, cap.fin, RHO * CP))
    A, C, b_q, b_in, stacked = _dense_system(g, layer, stack, flow, cap)
    w, t_end, t0 = 2 * np.pi / 1.5, 2.0, 20.0
    start = _steady(g, layer, stack, flow, RHO * CP, t0)
    n = A.shape[0]
    # d/dt [T, sin, cos, 1] with f = b_q (1 + 0.5 sin) + b_in (20 + 2 sin)
    M = np.zeros((n + 3, n + 3))
    M[:n, :n] = -A / C[:, None]
    M[:n, n] = (0.5 * b_q + 2.0 * b_in) / C
    M[:n, n + 2] = (b_q + t0 * b_in) / C
    M[n, n + 1], M[n + 1, n] = w, -w
    y0 = np.concatenate([stacked(start), [0.0, 1.0, 1.0]])
    exact = (scipy.linalg.expm(M * t_end) @ y0)[:n]
    # every run takes the same number of steps (one compile) and is read at t_end
    ns, steps, errs = [40, 80, 160, 320], 320, []

    @jax.jit
    def run(dt):
        t = dt * jnp.arange(steps + 1, dtype=F64)
        cfg = porous.TimeConfig(scheme)
        s, tin = 1 + 0.5 * jnp.sin(w * t), t0 + 2 * jnp.sin(w * t)
        return porous.integrate_energy(
            g, layer, stack, flow, RHO * CP, cap, start, dt, s, tin, cfg, observe=lambda th, _: th
        )

    for k in ns:
        _, levels, info = run(t_end / k)
        assert bool(info.converged)
        at_end = jax.tree_util.tree_map(lambda a, k=k: a[k], levels)
        errs.append(np.max(np.abs(stacked(at_end) - exact)))
    rise = np.max(exact) - t0
    assert errs[-1] < 0.01 * rise
    assert abs(_slope(ns, errs) - order) < 0.2, (scheme, errs)


@pytest.mark.slow
def test_one_mass_limit_follows_the_rc_step():
    """With conduction and the fin/fluid links a thousand times stronger, the
    plate is one mass: ``C_total dT/dt = P - rho cp Q (T - T_in)``, a step of
    time constant ``C_total / (rho cp Q)`` (fluid leaving at the plate's
    temperature). A 1 % error in any capacity moves T(tau) by 0.6 %."""
    g, layer, stack, flow, cap, _ = _plate(8, 4)
    big = 1e4
    stiff = dataclasses.replace(
        layer,
        k_sx=layer.k_sx * big + 1e3,
        k_sy=layer.k_sy * big + 1e3,
        k_fx=layer.k_fx * big,
        k_fy=layer.k_fy * big,
        g_root=layer.g_root * big + 1e8,
        g_fin=layer.g_fin * big,
        g_floor=layer.g_floor * big,
    )
    stack = dataclasses.replace(stack, k=stack.k * big)
    c_total = float(jnp.sum(porous.cell_heat_capacities(g, layer, cap)))
    m_cp = RHO * CP * Q
    tau = c_total / m_cp
    power = float(jnp.sum(stack.q * g.dx[:, None] * g.dy[None, :]))
    n, t_end = 400, 3 * tau

    def observe(th, s):
        return jnp.mean(th.T_stack), jnp.max(th.T_stack) - jnp.min(th.T_fluid)

    _, obs, info = porous.integrate_energy(
        g, stiff, stack, flow, RHO * CP, cap, 20.0, t_end / n, jnp.ones(n + 1), 20.0, porous.TimeConfig("bdf2"),
        observe=observe,
    )
    assert bool(info.converged)
    t = np.linspace(0, t_end, n + 1)
    exact = power / m_cp * (1 - np.exp(-t / tau))
    mean, spread = (np.asarray(a) for a in obs)
    assert spread[-1] < 0.01 * power / m_cp  # one temperature, within 1 % of the rise
    err = np.max(np.abs(mean[1:] - 20.0 - exact[1:])) / (power / m_cp)
    assert err < 1.5e-3, err  # measured 4e-4; 4e-3 with links 1,000 times stronger


@pytest.mark.parametrize("scheme", [pytest.param("euler", marks=pytest.mark.slow), "bdf2"])
def test_long_times_reach_the_steady_solution(scheme):
    """From a uniform start at the inlet temperature (the plena's fin cells
    without capacity: algebraic), a constant trace ends on solve_energy's
    answer to 1e-8 of the rise."""
    g, layer, stack, flow, cap, _ = _plate()
    # jitted: op by op, the set-up outside the solvers' loops compiled some 190 small programs
    steady = jax.jit(lambda layer, stack, flow: porous.solve_energy(g, layer, stack, flow, RHO * CP, 25.0))(
        layer, stack, flow
    )
    end, obs, info = jax.jit(
        lambda layer, stack, flow, cap: porous.integrate_energy(
            g, layer, stack, flow, RHO * CP, cap, 25.0, 2.0, jnp.ones(61), 25.0, porous.TimeConfig(scheme)
        )
    )(layer, stack, flow, cap)
    assert bool(info.converged)
    rise = float(jnp.max(steady.T_stack)) - 25.0
    for a, b in ((end.T_stack, steady.T_stack), (end.T_fin, steady.T_fin), (end.T_fluid, steady.T_fluid)):
        assert float(jnp.max(jnp.abs(a - b))) / rise < 1e-8
    assert abs(float(end.heat_out - steady.heat_out)) / float(steady.heat_in) < 1e-8
    tj = porous.junction_temperature(g, stack, steady)
    assert abs(float(obs["junction_max"][-1] - jnp.max(tj))) / rise < 1e-8


@pytest.mark.parametrize("scheme", ["euler", "bdf2", "cn"])
def test_energy_is_conserved_over_a_power_and_inlet_trace(scheme):
    """Heat in = heat carried out by the coolant + change in stored heat, with
    each scheme's own quadrature, over a square wave of power and a ramp of
    the inlet temperature."""
    g, layer, stack, flow, cap, _ = _plate()
    n, dt = 30, 0.1
    t = np.arange(n + 1) * dt
    scale = jnp.asarray(np.where((t % 1.0) < 0.5, 1.0, 0.2))
    tin = jnp.asarray(20.0 + 3.0 * t / t[-1])

    def observe(th, s):
        return th.heat_in, th.heat_out, porous.stored_heat(g, layer, cap, th)

    start = porous.solve_energy(g, layer, stack, flow, RHO * CP, 20.0)
    _, (p_in, p_out, e), info = porous.integrate_energy(
        g, layer, stack, flow, RHO * CP, cap, start, dt, scale, tin, porous.TimeConfig(scheme), observe=observe
    )
    assert bool(info.converged)
    p_in, p_out, e = (np.asarray(a) for a in (p_in, p_out, e))
    total_in = dt * p_in[1:].sum()
    if scheme == "euler":
        residual = (e[1:] - e[:-1]) - dt * (p_in[1:] - p_out[1:])
    elif scheme == "cn":
        residual = (e[1:] - e[:-1]) - 0.5 * dt * (p_in[1:] + p_in[:-1] - p_out[1:] - p_out[:-1])
    else:
        first = (e[1] - e[0]) - dt * (p_in[1] - p_out[1])
        rest = (1.5 * e[2:] - 2.0 * e[1:-1] + 0.5 * e[:-2]) - dt * (p_in[2:] - p_out[2:])
        residual = np.concatenate([[first], rest])
    assert abs(e[-1] - e[0]) > 0.01 * total_in  # heat is still moving in and out of store
    assert np.max(np.abs(residual)) * n / total_in < 1e-8, np.max(np.abs(residual))


@pytest.mark.slow
def test_vmap_over_scenarios_equals_separate_runs():
    g, layer, stack, flow, cap, _ = _plate(8, 4)
    n = 10
    traces = jnp.stack([jnp.ones(n + 1), jnp.linspace(0.2, 1.0, n + 1)])
    inlets = jnp.asarray([20.0, 30.0])

    def peak(s, tin):
        obs = porous.integrate_energy(g, layer, stack, flow, RHO * CP, cap, tin, 0.2, s, tin)[1]
        return obs["junction_max"]

    batched = jax.jit(jax.vmap(peak))(traces, inlets)
    for i in range(2):
        np.testing.assert_allclose(batched[i], peak(traces[i], inlets[i]), rtol=1e-12)


@pytest.mark.slow
def test_gradient_of_peak_junction_matches_finite_differences():
    """d(peak junction over a square wave)/d(base heat capacity scale) and
    d/d(flow): reverse mode through lax.scan, each step's implicit solve and
    the flow solve."""
    g, layer, stack, flow0, cap, _ = _plate(8, 4)
    bc = porous.FlowBC.make((8, 4), F64, inlet_cells=flow0.q_cells / Q, outlet_x_lo=1.0, outlet_x_hi=1.0)
    n = 16
    t = np.arange(n + 1) * 0.1
    scale = jnp.asarray(np.where((t % 0.8) < 0.4, 1.0, 0.3))

    def peak(a, q):
        c = dataclasses.replace(cap, stack=cap.stack * a)
        flow = porous.solve_flow(g, layer, bc, q)
        obs = porous.integrate_energy(g, layer, stack, flow, RHO * CP, c, 20.0, 0.1, scale, 20.0)[1]
        return jnp.max(obs["junction_max"])

    f = jax.jit(peak)
    ga, gq = jax.jit(jax.grad(peak, argnums=(0, 1)))(1.0, Q)
    assert float(ga) < 0 and float(gq) < 0  # more capacity or more flow: a cooler peak
    for grad, fd in (
        (ga, (f(1.0 + 1e-5, Q) - f(1.0 - 1e-5, Q)) / 2e-5),
        (gq, (f(1.0, Q * (1 + 1e-5)) - f(1.0, Q * (1 - 1e-5))) / (2e-5 * Q)),
    ):
        assert abs(float(grad) - float(fd)) / abs(float(fd)) < 1e-5, (float(grad), float(fd))


@pytest.mark.slow
def test_float32_runs_and_a_bad_scheme_is_refused():
    g, layer, stack, flow, cap, _ = _plate(8, 4, dtype=jnp.float32)
    end, obs, info = porous.integrate_energy(
        g, layer, stack, flow, jnp.float32(RHO * CP), cap, jnp.float32(20.0), 0.2, jnp.ones(6, jnp.float32),
        jnp.float32(20.0),
    )
    assert end.T_stack.dtype == jnp.float32 and bool(info.converged)
    assert float(obs["junction_max"][-1]) > 20.0
    with pytest.raises(ValueError, match="unknown time scheme"):
        porous.TimeConfig("rk4")
