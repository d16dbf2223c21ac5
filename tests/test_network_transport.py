"""Coolant transport in time on a flow network (kernels.network.transient):
pure advection delay through a pipe against the exact tanks-in-series
(Erlang) response, the steady limit equal to the steady network solver,
energy conserved over a trace, the order in time fitted, vmap and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import gamma

from aidc_thermo.kernels.network import Fluid, NetworkBuilder, network_temperatures
from aidc_thermo.kernels.network import transient as tr

RHO, CP = 1000.0, 4000.0
T_SUPPLY = 300.0

# one compiled program per network, config and shapes (the network and config are static)
integrate = jax.jit(tr.integrate, static_argnums=(0, 1))
steady_state = jax.jit(tr.steady_state, static_argnums=(0, 1))
steady_network = jax.jit(network_temperatures, static_argnums=(0,))


def _slope(ns, errs):
    return float(np.polyfit(np.log(ns), np.log(errs), 1)[0])


def _pipe():
    b = NetworkBuilder()
    b.node("in", fixed=True)
    b.node("out", fixed=True)
    b.pipe("in", "out", 2.0, 0.02)
    return b.build()[0]


def _pipe_step(n_cells, dt, tau=10.0, t_end=20.0, scheme="euler"):
    """Outlet temperature of a pipe (V/Q = tau, no node volumes) after the inlet
    steps from 0 to 1 at t = 0+."""
    net = _pipe()
    q = 1e-4
    n_lev = int(round(t_end / dt)) + 1
    t_in = jnp.ones((n_lev, 2)).at[0].set(0.0)
    inp = tr.TransportInputs(
        flow=jnp.array([q]),
        heat=jnp.zeros((n_lev, 1)),
        inlet_temperature=t_in,
        edge_volume=jnp.array([q * tau]),
        node_volume=jnp.zeros(2),
        density=jnp.asarray(RHO),
        specific_heat=jnp.asarray(CP),
    )
    res = integrate(net, tr.TransportConfig(n_cells=n_cells, scheme=scheme), inp, dt)
    return np.arange(n_lev) * dt, np.asarray(res.edge_outlet[:, 0])


def _crossing(t, y, level):
    i = int(np.argmax(y >= level))
    return t[i - 1] + (level - y[i - 1]) / (y[i] - y[i - 1]) * (t[i] - t[i - 1])


def test_pipe_step_arrives_after_volume_over_flow_as_the_erlang_response():
    tau = 10.0
    for n in (16,):  # more cells: the slow test below
        dt = tau / n / 20
        t, y = _pipe_step(n, dt, tau)
        # half height within one cell's residence time of V/Q
        t_half = _crossing(t, y, 0.5)
        assert abs(t_half - tau) < tau / n
        # the whole response is the tanks-in-series (Erlang) CDF, up to the O(dt) of backward Euler
        exact = gamma.cdf(t, n, scale=tau / n)
        assert np.max(np.abs(y - exact)) < 0.02
        # nothing arrives before a fraction of the delay (no instant leak through the pipe)
        assert np.max(y[t < 0.1 * tau]) < 1e-3


@pytest.mark.slow
def test_pipe_front_sharpens_as_cells_are_refined_at_order_one_half():
    tau, ns, widths = 10.0, (8, 16, 32, 64), []
    for n in ns:
        t, y = _pipe_step(n, tau / n / 20, tau)
        widths.append(_crossing(t, y, 0.9) - _crossing(t, y, 0.1))
    # 10-90 % width ~ 2.56 tau / sqrt(n) (the Erlang spread)
    assert -0.55 < _slope(ns, widths) < -0.45
    assert abs(widths[-1] / (2.563 * tau / np.sqrt(64)) - 1) < 0.05


def _rack(loop=False):
    """A rack-like graph: supply pipe, supply manifold node, two parallel
    branches of two cold plates in series, return node, return pipe; with
    ``loop`` a CDU edge (set outlet temperature) closes it from return to supply."""
    b = NetworkBuilder()
    b.node("in", fixed=True)
    for n in ["M", "a1", "b1", "R"]:
        b.node(n)
    b.node("out", fixed=True)
    b.pipe("in", "M", 1.0, 0.02)  # 0
    b.pipe("M", "a1", 1.0, 0.01)  # 1 plate A1
    b.pipe("a1", "R", 1.0, 0.01)  # 2 plate A2
    b.pipe("M", "b1", 1.0, 0.01)  # 3 plate B1
    b.pipe("b1", "R", 1.0, 0.01)  # 4 plate B2
    b.pipe("R", "out", 1.0, 0.02)  # 5
    if loop:
        b.pipe("out", "in", 1.0, 0.02)  # 6 CDU
    net = b.build()[0]
    q = [1e-4, 6e-5, 6e-5, 4e-5, 4e-5, 1e-4] + ([1e-4] if loop else [])
    vol = [2e-4, 5e-5, 5e-5, 5e-5, 5e-5, 2e-4] + ([3e-4] if loop else [])
    return net, jnp.array(q), jnp.array(vol)


HEAT = np.array([0.0, 1000.0, 800.0, 1200.0, 500.0, 0.0])


def _inputs(net, q, vol, heat, walls=True, loop=False, **kw):
    n_e = net.n_edges
    heat = jnp.asarray(heat)
    if heat.shape[-1] < n_e:
        heat = jnp.concatenate([heat, jnp.zeros(heat.shape[:-1] + (n_e - heat.shape[-1],))], axis=-1)
    extra = {}
    if loop:
        extra = dict(outlet_set_temperature=jnp.full((n_e,), T_SUPPLY), outlet_set_mask=jnp.arange(n_e) == 6)
    if walls:
        extra.update(wall_capacity=jnp.array([200.0, 150.0, 250.0, 100.0]), wall_conductance=jnp.full((4,), 50.0))
    args = dict(
        flow=q,
        heat=heat,
        inlet_temperature=jnp.full((net.n_nodes,), T_SUPPLY),
        edge_volume=vol,
        node_volume=jnp.array([0.0, 1e-4, 1e-5, 1e-5, 1e-4, 0.0]),
        density=jnp.asarray(RHO),
        specific_heat=jnp.asarray(CP),
    )
    args.update(extra)
    args.update(kw)
    return tr.TransportInputs(**args)


def _cfg(walls=True, n_cells=4, scheme="euler"):
    return tr.TransportConfig(n_cells=n_cells, scheme=scheme, wall_edges=(1, 2, 3, 4) if walls else ())


@pytest.mark.parametrize("loop", [pytest.param(False, marks=pytest.mark.slow), True])
def test_long_time_limit_equals_the_steady_network_solver(loop):
    net, q, vol = _rack(loop)
    n_lev = 1501
    heat = np.broadcast_to(HEAT, (n_lev, 6))
    inp = _inputs(net, q, vol, heat, loop=loop)
    cfg = _cfg()
    # start cold and far from the answer; 1500 s is > 100 time constants of the slowest wall
    T0 = jnp.full((tr.state_size(net, cfg),), 280.0)
    res = integrate(net, cfg, inp, 1.0, initial=T0)
    fluid = Fluid(jnp.asarray(RHO), jnp.asarray(1e-3), jnp.asarray(CP))
    heat_e = jnp.asarray(inp.heat[0])
    st, _ = steady_network(
        net, q, heat_e, fluid, inp.inlet_temperature, inp.outlet_set_temperature, inp.outlet_set_mask
    )
    rel = np.abs(np.asarray(res.node[-1]) - np.asarray(st.node)) / np.asarray(st.node)
    assert np.max(rel) < 1e-8
    rel_out = np.abs(np.asarray(res.edge_outlet[-1]) - np.asarray(st.edge_outlet)) / np.asarray(st.edge_outlet)
    assert np.max(rel_out) < 1e-8
    np.testing.assert_allclose(res.edge_heat[-1], st.edge_heat, rtol=1e-8, atol=1e-6)
    # the direct steady state is the same answer, and integrate starts from it by default
    ss = steady_state(net, cfg, inp)
    n0 = net.n_edges * cfg.n_cells
    np.testing.assert_allclose(ss[n0 : n0 + net.n_nodes], st.node, rtol=1e-12)
    # walls settle at T_coolant mean + P / G
    assert np.all(np.asarray(res.wall[-1]) > np.asarray(st.node)[[1, 2, 1, 3]])


def _square_wave(n_lev, dt, period=60.0):
    t = np.arange(n_lev) * dt
    on = (np.floor(t / (period / 2)) % 2) == 0
    return np.where(on[:, None], HEAT, 0.3 * HEAT)


@pytest.mark.parametrize(
    "scheme,loop",
    [
        ("euler", True),
        pytest.param("euler", False, marks=pytest.mark.slow),
        pytest.param("cn", False, marks=pytest.mark.slow),
        pytest.param("cn", True, marks=pytest.mark.slow),
        pytest.param("bdf2", False, marks=pytest.mark.slow),
        pytest.param("bdf2", True, marks=pytest.mark.slow),
    ],
)
def test_energy_is_conserved_over_a_trace(scheme, loop):
    net, q, vol = _rack(loop)
    dt, n_lev = 2.0, 301
    inp = _inputs(net, q, vol, _square_wave(n_lev, dt), loop=loop)
    res = integrate(net, _cfg(scheme=scheme), inp, dt)
    E, r = np.asarray(res.stored_heat), np.asarray(res.heat_rate)
    heat_in = np.sum(np.abs(np.asarray(inp.heat[1:]))) * dt
    if scheme == "euler":  # E_{m+1} - E_m = dt rate_{m+1}
        err = (E[-1] - E[0]) - dt * np.sum(r[1:])
    elif scheme == "cn":  # with the average of both ends
        err = (E[-1] - E[0]) - dt * np.sum(0.5 * (r[1:] + r[:-1]))
    else:  # first step Euler, then 1.5 E_{m+1} - 2 E_m + 0.5 E_{m-1} = dt rate_{m+1}
        res_steps = 1.5 * E[2:] - 2.0 * E[1:-1] + 0.5 * E[:-2] - dt * r[2:]
        err = abs(E[1] - E[0] - dt * r[1]) + np.sum(np.abs(res_steps))
    assert abs(err) / heat_in < 1e-8
    # the trace does store and release heat (the test is not trivially about a steady state)
    assert np.ptp(E) > 1e-3 * heat_in
    if loop:  # the CDU takes out what the plates put in, on average
        assert np.mean(np.asarray(res.edge_heat[:, 6])) < 0


@pytest.mark.slow
def test_energy_is_conserved_with_flows_changing_per_step():
    net, q, vol = _rack()
    dt, n_lev = 2.0, 151
    scale = 1.0 + 0.5 * np.sin(np.arange(n_lev) * dt / 40.0)
    flows = jnp.asarray(scale[:, None] * np.asarray(q)[None, :])
    inp = _inputs(net, flows, vol, _square_wave(n_lev, dt))
    res = integrate(net, _cfg(), inp, dt)
    E, r = np.asarray(res.stored_heat), np.asarray(res.heat_rate)
    err = (E[-1] - E[0]) - dt * np.sum(r[1:])
    assert abs(err) / (np.sum(np.abs(np.asarray(inp.heat[1:]))) * dt) < 1e-8
    # and a constant per-step flow gives the same trace as a fixed flow
    inp_c = _inputs(net, jnp.broadcast_to(q, (n_lev, 6)), vol, _square_wave(n_lev, dt))
    inp_f = _inputs(net, q, vol, _square_wave(n_lev, dt))
    a, b = integrate(net, _cfg(), inp_c, dt), integrate(net, _cfg(), inp_f, dt)
    np.testing.assert_allclose(a.wall, b.wall, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("scheme,order", [("euler", 1), ("bdf2", 2), ("cn", 2)])
def test_time_convergence_at_design_order(scheme, order):
    net, q, vol = _rack()
    t_end = 120.0

    def run(dt):
        n_lev = int(round(t_end / dt)) + 1
        t = np.arange(n_lev) * dt
        heat = HEAT[None, :] * (1.0 + 0.5 * np.sin(2 * np.pi * t / 40.0))[:, None]
        res = integrate(net, _cfg(scheme=scheme), _inputs(net, q, vol, heat), dt)
        return np.asarray(res.wall[-1])

    ref = run(0.01)
    dts = (2.0, 1.0, 0.5)
    errs = [np.max(np.abs(run(dt) - ref)) for dt in dts]
    assert abs(_slope(dts, errs) - order) < 0.15 * order


@pytest.mark.slow  # two or three compiles: seconds on the 2-core machine
def test_vmap_over_scenarios_equals_separate_runs():
    net, q, vol = _rack()
    dt, n_lev = 2.0, 61
    base = _square_wave(n_lev, dt)
    scen = jnp.asarray(np.stack([base, 1.3 * base, 0.7 * base]))
    flows = jnp.stack([q, 1.2 * q, 0.8 * q])
    cfg = _cfg()

    def one(h, f):
        return integrate(net, cfg, _inputs(net, f, vol, h), dt).wall

    batched = jax.vmap(one)(scen, flows)
    for i in range(3):
        np.testing.assert_allclose(batched[i], one(scen[i], flows[i]), rtol=1e-12)


@pytest.mark.slow  # two or three compiles: seconds on the 2-core machine
def test_grad_of_peak_plate_temperature_matches_finite_differences():
    net, q, vol = _rack()
    dt, n_lev = 2.0, 61
    heat = jnp.asarray(_square_wave(n_lev, dt, period=80.0))
    cfg = _cfg()

    def peak(params):
        g, s = params
        inp = _inputs(net, s * q, vol, heat, wall_conductance=jnp.full((4,), 1.0) * g)
        return jnp.max(integrate(net, cfg, inp, dt).wall)

    peak = jax.jit(peak)
    x = jnp.array([50.0, 1.0])
    grad = np.asarray(jax.jit(jax.grad(peak))(x))
    for i, h in enumerate((1e-3, 1e-5)):
        e = jnp.zeros(2).at[i].set(h)
        fd = (float(peak(x + e)) - float(peak(x - e))) / (2 * h)
        assert grad[i] != 0.0
        assert abs(grad[i] - fd) < 1e-5 * abs(fd)


@pytest.mark.slow
def test_float32_follows_float64():
    net, q, vol = _rack()
    dt, n_lev = 2.0, 61
    heat = _square_wave(n_lev, dt)
    r64 = integrate(net, _cfg(), _inputs(net, q, vol, heat), dt)
    f = jnp.float32
    inp32 = _inputs(
        net,
        q.astype(f),
        vol.astype(f),
        jnp.asarray(heat, f),
        inlet_temperature=jnp.full((net.n_nodes,), T_SUPPLY, f),
        node_volume=jnp.array([0.0, 1e-4, 1e-5, 1e-5, 1e-4, 0.0], f),
        density=jnp.asarray(RHO, f),
        specific_heat=jnp.asarray(CP, f),
        wall_capacity=jnp.array([200.0, 150.0, 250.0, 100.0], f),
        wall_conductance=jnp.full((4,), 50.0, f),
    )
    r32 = integrate(net, _cfg(), inp32, jnp.asarray(dt, f))
    assert r32.wall.dtype == jnp.float32
    np.testing.assert_allclose(r32.wall, r64.wall, rtol=1e-5)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="scheme"):
        tr.TransportConfig(scheme="rk4")
    with pytest.raises(ValueError, match="n_cells"):
        tr.TransportConfig(n_cells=0)


def test_inputs_of_the_wrong_shape_are_refused_naming_the_input():
    net, q, vol = _rack()
    heat = np.broadcast_to(HEAT, (3, 6))
    with pytest.raises(ValueError, match="edge_volume"):
        tr.integrate(net, _cfg(), _inputs(net, q, vol[:4], heat), 1.0)
    with pytest.raises(ValueError, match="wall_capacity"):
        tr.integrate(net, _cfg(), _inputs(net, q, vol, heat, wall_capacity=jnp.ones(3)), 1.0)
    with pytest.raises(ValueError, match="wall_edges"):
        tr.integrate(net, tr.TransportConfig(wall_edges=(1, 9)), _inputs(net, q, vol, heat, walls=False), 1.0)
    with pytest.raises(ValueError, match="flow"):
        tr.integrate(net, _cfg(), _inputs(net, jnp.ones((2, 6)), vol, heat), 1.0)
