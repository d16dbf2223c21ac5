"""Flow network kernel: edge laws, Newton solve, thermal transport.

Every reference below is computed independently in the test (closed forms,
SciPy root finders, a dense NumPy solve of the linear network) or taken from a
published example.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq, fsolve

from aidc_thermo.kernels.network import (
    Boundary,
    EdgeKind,
    Fluid,
    Network,
    NetworkBuilder,
    NewtonOptions,
    check_solution,
    edge_pressure_loss,
    friction_factor,
    friction_factor_colebrook,
    kv_from_cv,
    network_temperatures,
    pchip_eval,
    solve_network,
    tee_loss_coefficient,
    validate_network,
    validate_params,
)
from aidc_thermo.validation.network import colebrook_scipy, laminar_pipe, turbulent_line

WATER = dict(density=998.2, viscosity=1.0016e-3, specific_heat=4184.1)  # 20 degC, validation.md


def f64(x):
    """A float64 array that is not weakly typed (one jit cache entry)."""
    return jnp.asarray(x, jnp.float64)


def fluid(dtype=jnp.float64, **kw):
    v = {**WATER, **kw}
    return Fluid(*(jnp.asarray(v[k], dtype) for k in ("density", "viscosity", "specific_heat")))


_OPTIONS = NewtonOptions()


@partial(jax.jit, static_argnums=(0, 7, 8))
def _temperatures(net, flow, heat, fl, tin, tset=None, mask=None, method="dense", max_sweeps=None):
    return network_temperatures(net, flow, heat, fl, tin, tset, mask, method, max_sweeps)


@partial(jax.jit, static_argnums=(0, 4))
def _solve(net, params, fl, bnd, options=_OPTIONS):
    return solve_network(net, params, fl, bnd, options)


def quadratic_constants(info):
    """C_k = r_{k+1} / r_k^2 over the Newton steps that start below 1e-2 and
    end above round-off (1e-14), r the relative residual history. Newton
    (quadratic) keeps C_k bounded; a linearly convergent method with rate rho
    has C_k = rho / r_k, which grows without bound as r_k falls."""
    h = np.asarray(info.history)[: int(info.iterations) + 1]
    k = np.flatnonzero((h[:-1] < 1e-2) & (h[1:] > 1e-14))
    return h[k + 1] / h[k] ** 2


def divergence_np(net, q):
    out = np.zeros(net.n_nodes)
    np.add.at(out, np.asarray(net.edge_from), q)
    np.add.at(out, np.asarray(net.edge_to), -q)
    return out


# ----------------------------------------------------------------- single pipes
def test_laminar_pipe_is_hagen_poiseuille():
    """Both pipe laws (Colebrook-asymptote and Churchill explicit)
    (aidc_thermo.validation.network.laminar_pipe, also in thermo validate)."""
    r = laminar_pipe()
    assert r["kinds_ok"]
    assert 500 < r["re"] < 1000  # genuinely laminar, where the transition term vanishes
    assert bool(r["info"].converged)
    np.testing.assert_allclose(np.asarray(r["flow"]), r["q_exact"], rtol=1e-12)


def test_friction_factor_laminar_and_colebrook_limits():
    # Churchill's form is 64/Re to round-off up to Re ~ 1000; its transition
    # term adds 4e-8 at Re = 1500 and 0.14 % at Re = 2000
    re = np.array([1e-2, 10.0, 100.0, 1000.0])
    for model in ("colebrook", "churchill"):
        f = np.asarray(friction_factor(jnp.asarray(re), 1e-4, model=model))
        np.testing.assert_allclose(f * re, 64.0, rtol=1e-12)
        f1500 = float(friction_factor(jnp.asarray(1500.0), 1e-4, model=model))
        assert 0 < f1500 * 1500 / 64 - 1 < 1e-7
    # Colebrook by Newton (kernel) vs a bracketed root (SciPy), Re 4e3 - 1e8
    for rr in (0.0, 1e-6, 1e-4, 1e-3, 1e-2, 5e-2):
        for re_t in np.logspace(np.log10(4e3), 8, 12):
            fk = float(friction_factor_colebrook(jnp.asarray(re_t), rr))
            assert abs(fk / colebrook_scipy(re_t, rr) - 1) < 1e-12


def test_turbulent_friction_vs_colebrook():
    """Re 1e4..1e6, smooth to rough: the PIPE law (Churchill interpolation
    with Colebrook asymptote) is within 0.5 % of Colebrook (measured 1e-8);
    Churchill's explicit 1977 fit deviates by its documented amounts."""
    worst_default, worst_ch_smooth, worst_ch_rough = 0.0, 0.0, 0.0
    for rr in (0.0, 1e-5, 1e-4, 1e-3, 1e-2):
        for re_t in np.logspace(4, 6, 21):
            ref = colebrook_scipy(re_t, rr)
            fd = float(friction_factor(jnp.asarray(re_t), rr))
            fc = float(friction_factor(jnp.asarray(re_t), rr, model="churchill"))
            worst_default = max(worst_default, abs(fd / ref - 1))
            if rr <= 1e-4:
                worst_ch_smooth = max(worst_ch_smooth, abs(fc / ref - 1))
            else:
                worst_ch_rough = max(worst_ch_rough, abs(fc / ref - 1))
    assert worst_default < 1e-6
    assert 1e-3 < worst_ch_smooth < 7e-3
    assert worst_ch_rough < 2.2e-2


def test_turbulent_pipe_solve_matches_darcy_colebrook():
    """(aidc_thermo.validation.network.turbulent_line, also in thermo validate)"""
    r = turbulent_line()
    assert bool(r["info"].converged)
    q = r["flow"][0]
    assert 1e4 < r["re"] < 1e6
    assert abs(r["dp_ref"] / r["dp"] - 1) < 1e-6
    assert abs(r["flow"][1] / q - 1) < 1e-13


def test_flow_coefficient_valve_and_pump_laws():
    rho, mu = WATER["density"], WATER["viscosity"]
    kv = 3.1
    b = NetworkBuilder()
    for n in ("in", "out", "v_in", "v_out", "tank"):
        b.node(n, fixed=True)
    b.node("p_out")
    b.flow_coefficient("in", "out", kv=kv)
    b.valve("v_in", "v_out", kv=kv, opening=0.5, rangeability=50.0)
    # pump against a pipe in a closed loop: operating point = curve crossing
    b.pump("tank", "p_out", dp0=6e4, r1=1e6, r2=2e10, speed=0.8)
    b.pipe("p_out", "tank", 20.0, 0.015, roughness=1e-5, k_minor=3.0)
    net, params = b.build()
    dp = 0.37e5
    pr = {"in": 1e5 + dp, "out": 1e5, "v_in": 1e5 + dp, "v_out": 1e5, "tank": 1.5e5}
    sol, info = _solve(net, params, fluid(), b.boundary(pressure=pr))
    assert bool(info.converged)
    q_ref = kv * math.sqrt(dp / 1e5 / (rho / 1000.0)) / 3600.0  # Kv definition
    assert abs(float(sol.flow[0]) / q_ref - 1) < 1e-12
    assert abs(float(sol.flow[1]) / (q_ref * 50.0**-0.5) - 1) < 1e-12  # equal percentage
    assert abs(kv_from_cv(1.0) - 0.865) < 1e-15

    def system(q):
        u = q / (math.pi * 0.015**2 / 4)
        re = rho * u * 0.015 / mu
        return (colebrook_scipy(re, 1e-5 / 0.015) * 20 / 0.015 + 3.0) * rho * u * u / 2

    def pump(q):
        return 0.64 * 6e4 - 0.8 * 1e6 * q - 2e10 * q * q  # affinity laws at s = 0.8

    q_op = brentq(lambda q: pump(q) - system(q), 1e-5, 1e-2, xtol=1e-16)
    assert abs(float(sol.flow[2]) / q_op - 1) < 1e-6  # Colebrook regime (Re ~ 1e4)
    assert abs(float(sol.pressure[5]) - 1.5e5 - system(q_op)) < 1e-6 * system(q_op)


def test_table_curve_is_monotone_pchip():
    q = np.array([0.0, 0.5, 1.0, 2.0, 3.5]) * 1e-4
    d = np.array([0.0, 1.2, 3.9, 14.0, 40.0]) * 1e3
    x = np.linspace(0.0, 3.5e-4, 57)
    ref = PchipInterpolator(q, d)(x)
    got = pchip_eval(jnp.asarray(x), jnp.asarray(np.tile(q, (x.size, 1))), jnp.asarray(np.tile(d, (x.size, 1))))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-9)
    # the TABLE edge law is that curve, odd in Q
    b = NetworkBuilder()
    b.node("a", fixed=True)
    b.node("b", fixed=True)
    b.table("a", "b", q, d)
    net, params = b.build()
    flows = jnp.asarray([2.7e-4])
    loss = edge_pressure_loss(net, params, fluid(), flows)
    assert abs(float(loss[0]) - float(PchipInterpolator(q, d)(2.7e-4))) < 1e-9
    assert abs(float(edge_pressure_loss(net, params, fluid(), -flows)[0]) + float(loss[0])) < 1e-9


def test_zero_flow_quadratic_edge_balanced_bridge():
    """Wheatstone bridge balanced so that its quick disconnect carries no
    flow: the quadratic law has zero slope there, the regularised Jacobian
    stays invertible and the solve converges to the closed form."""
    b = NetworkBuilder()
    for n, fx in (("in", True), ("a", False), ("b", False), ("out", True)):
        b.node(n, fixed=fx)
    b.power_law("in", "a", pow_coef=1e10, exponent=2.0)
    b.power_law("in", "b", pow_coef=2e10, exponent=2.0)
    b.power_law("a", "out", pow_coef=3e10, exponent=2.0)
    b.power_law("b", "out", pow_coef=6e10, exponent=2.0)
    b.flow_coefficient("a", "b", kv=1.0)
    net, params = b.build()
    sol, info = _solve(net, params, fluid(), b.boundary(pressure={"in": 2e5, "out": 1e5}))
    assert bool(info.converged)
    q = np.asarray(sol.flow)
    np.testing.assert_allclose(q[:4], np.sqrt(1e5 / np.array([4e10, 8e10, 4e10, 8e10])), rtol=1e-13)
    assert abs(q[4]) < 1e-12 * q[0]


# ----------------------------------------------------------------- tees
def test_tee_coefficients_match_crane_example():
    """Crane TP-410 (2009) Example 7-35 as evaluated by the `fluids` package
    (DN100 tee, 1135 L/min run + 380 L/min branch converging, beta = 1)."""
    x = 0.00633 / (0.018917 + 0.00633)
    k_run = tee_loss_coefficient(EdgeKind.TEE_COMBINING_RUN, jnp.asarray(x), jnp.asarray(1.0))
    k_br = tee_loss_coefficient(EdgeKind.TEE_COMBINING_BRANCH, jnp.asarray(x), jnp.asarray(1.0))
    assert abs(float(k_run) - 0.32575847854551254) < 1e-12
    assert abs(float(k_br) - (-0.04044108513625682)) < 1e-12


def test_tee_split_matches_independent_solve():
    """Header pipe -> dividing tee -> (run, branch) through two resistances ->
    combining tee -> pipe. The split is solved independently with SciPy using
    the Crane dividing and combining coefficients written out here."""
    rho, mu = WATER["density"], WATER["viscosity"]
    D, Db = 0.02, 0.012
    beta2 = (Db / D) ** 2
    b = NetworkBuilder()
    for n in ("in", "j", "r", "s", "r2", "s2", "k", "out"):
        b.node(n, fixed=n in ("in", "out"))
    b.pipe("in", "j", 1.0, D, roughness=1e-6)
    e_run, e_br = b.tee("j", "r", "s", True, beta2, 0.5, D, 0.5, Db, roughness=1e-6)
    assert (e_run, e_br) == (1, 2)
    b.power_law("r", "r2", pow_coef=4e9, exponent=2.0)
    b.power_law("s", "s2", pow_coef=1e9, exponent=2.0)
    b.tee("k", "r2", "s2", False, beta2, 0.5, D, 0.5, Db, roughness=1e-6)
    b.pipe("k", "out", 1.0, D, roughness=1e-6)
    net, params = b.build()
    validate_network(net)
    validate_params(net, params)
    dp = 3e4
    sol, info = _solve(net, params, fluid(), b.boundary(pressure={"in": 1e5 + dp, "out": 1e5}))
    assert bool(info.converged)

    def pipe(q, L, d):
        u = q / (math.pi * d * d / 4)
        re = rho * u * d / mu
        assert re > 4000
        return colebrook_scipy(re, 1e-6 / d) * L / d * rho * u * abs(u) / 2

    def k_div_branch(x):
        h = 0.3 if beta2 > 4 / 9 else 1.0
        g = 1.0 if beta2 <= 2 / 3 else 1 + 0.3 * x * x
        return g * (1 + h * (x / beta2) ** 2)

    def k_div_run(x):
        m = 0.4 if beta2 <= 0.4 else (2 * (2 * x - 1) if x <= 0.5 else 0.3 * (2 * x - 1))
        return m * x * x

    def k_comb_branch(x):
        c = 1.0 if beta2 <= 0.35 else (0.9 * (1 - x) if x <= 0.4 else 0.55)
        return c * (1 + (x / beta2) ** 2 - 2 * (1 - x) ** 2)

    def k_comb_run(x):
        return 1.55 * x - x * x

    def eqs(z):
        qr, qs = z * 1e-4
        qc = qr + qs
        x = qs / qc
        dyn = rho * (qc / (math.pi * D * D / 4)) ** 2 / 2
        common = dp - 2 * pipe(qc, 1.0, D)
        e1 = common - 2 * pipe(qr, 0.5, D) - (k_div_run(x) + k_comb_run(x)) * dyn - 4e9 * qr * qr
        e2 = common - 2 * pipe(qs, 0.5, Db) - (k_div_branch(x) + k_comb_branch(x)) * dyn - 1e9 * qs * qs
        return [e1 / dp, e2 / dp]

    z = fsolve(eqs, [float(sol.flow[1]) * 1e4, float(sol.flow[2]) * 1e4], xtol=1e-14)
    np.testing.assert_allclose(np.asarray(sol.flow[1:3]), z * 1e-4, rtol=1e-9)
    assert 0.1 < float(sol.flow[2] / sol.flow[0]) < 0.9  # a real split
    # exact Newton with the tee couplings in the Jacobian: still quadratic
    c = quadratic_constants(info)
    assert c.size >= 2 and np.all(c < 10.0), c


# ----------------------------------------------------------------- ladders (linear)
def _ladder(b: NetworkBuilder, tag, n, layout, r_branch, r_header):
    """U (direct return: outlet at the inlet end) or Z (reverse return)."""
    b.node(f"{tag}in", fixed=True)
    b.node(f"{tag}out", fixed=True)
    for i in range(n):
        b.node(f"{tag}s{i}")
        b.node(f"{tag}r{i}")
    b.power_law(f"{tag}in", f"{tag}s0", lin_coef=r_header[0])
    for i in range(n):
        b.power_law(f"{tag}s{i}", f"{tag}r{i}", lin_coef=r_branch[i], label=f"{tag}branch{i}")
    for i in range(n - 1):
        b.power_law(f"{tag}s{i}", f"{tag}s{i + 1}", lin_coef=r_header[1 + i])
        if layout == "U":
            b.power_law(f"{tag}r{i + 1}", f"{tag}r{i}", lin_coef=r_header[n + i])
        else:
            b.power_law(f"{tag}r{i}", f"{tag}r{i + 1}", lin_coef=r_header[n + i])
    last = f"{tag}r0" if layout == "U" else f"{tag}r{n - 1}"
    b.power_law(last, f"{tag}out", lin_coef=r_header[2 * n - 1])


def _linear_reference(net, resist, p_node):
    """Dense NumPy solve of the linear resistance network (independent)."""
    n = net.n_nodes
    a = np.zeros((n, n))
    for f, t, r in zip(net.edge_from, net.edge_to, resist, strict=True):
        c = 1.0 / r
        a[f, f] += c
        a[t, t] += c
        a[f, t] -= c
        a[t, f] -= c
    fixed = np.asarray(net.fixed_nodes)
    free = np.setdiff1d(np.arange(n), fixed)
    p = p_node.copy()
    p[free] = np.linalg.solve(a[np.ix_(free, free)], -a[np.ix_(free, fixed)] @ p[fixed])
    return (p[np.asarray(net.edge_from)] - p[np.asarray(net.edge_to)]) / resist, p


def test_ladder_manifolds_match_exact_linear_solution():
    rng = np.random.default_rng(7)
    b = NetworkBuilder()
    branch_edges = {}
    for n in range(4, 19):
        for layout in ("U", "Z"):
            tag = f"{layout}{n}_"
            rb = rng.uniform(1.0, 3.0, n) * 1e8
            rh = rng.uniform(0.5, 2.0, 2 * n) * 1e7
            e0 = b.n_edges
            _ladder(b, tag, n, layout, rb, rh)
            branch_edges[(n, layout)] = [e for e in range(e0, b.n_edges) if b._elabels[e].startswith(f"{tag}branch")]
    net, params = b.build()
    validate_network(net)
    assert net._layout.n_blocks == 30  # one elimination block per ladder
    pin = {f"{lay}{n}_in": 1.0e5 + 2.0e4 * (1 + n / 18) for n in range(4, 19) for lay in "UZ"}
    pout = {f"{lay}{n}_out": 1.0e5 for n in range(4, 19) for lay in "UZ"}
    bnd = b.boundary(pressure={**pin, **pout})
    sol, info = _solve(net, params, fluid(), bnd)
    assert bool(info.converged)
    q_ref, p_ref = _linear_reference(net, np.asarray(params.lin_coef), np.asarray(bnd.pressure))
    q = np.asarray(sol.flow)
    for (n, layout), edges in branch_edges.items():
        err = np.max(np.abs(q[edges] - q_ref[edges])) / np.max(np.abs(q_ref[edges]))
        assert err < 1e-10, (n, layout, err)
    np.testing.assert_allclose(np.asarray(sol.pressure), p_ref, rtol=1e-12)
    assert int(info.iterations) == 1  # linear laws: the first Newton step is exact


def test_random_linear_network_with_chains_supplies_and_loops():
    """Random meshed linear networks with series chains (some carrying
    supplies at their interior nodes), a chain that leaves and re-enters the
    same node, and two separate parts: flows and pressures equal a dense
    NumPy solve of the same linear system."""
    rng = np.random.default_rng(11)
    b = NetworkBuilder()
    supply = {}
    for part in range(2):
        t = f"P{part}_"
        nodes = [f"{t}fix{i}" for i in range(2)] + [f"{t}n{i}" for i in range(25)]
        for i, nd in enumerate(nodes):
            b.node(nd, fixed=i < 2)
        pairs = [(nodes[i], nodes[rng.integers(0, i)]) for i in range(1, len(nodes))]  # tree
        pairs += [tuple(rng.choice(nodes, 2, replace=False)) for _ in range(15)]  # meshes
        for j, (u, v) in enumerate(pairs):
            n_in = int(rng.integers(0, 4)) if j % 3 == 0 else 0  # series chain of n_in + 1 edges
            chain = [u] + [f"{t}c{j}_{k}" for k in range(n_in)] + [v]
            for nd in chain[1:-1]:
                b.node(nd)
                if rng.random() < 0.5:
                    supply[nd] = rng.uniform(-2e-5, 2e-5)
            for a_, b_ in zip(chain[:-1], chain[1:], strict=True):
                b.power_law(a_, b_, lin_coef=rng.uniform(0.5, 5.0) * 1e8)
        for nd in nodes[2:]:
            if rng.random() < 0.3:
                supply[nd] = rng.uniform(-3e-5, 3e-5)
        # a loop chain from and back to the same free node
        b.node(f"{t}loop_a")
        b.node(f"{t}loop_b")
        supply[f"{t}loop_a"] = 1e-5
        b.power_law(f"{t}n3", f"{t}loop_a", lin_coef=1e8)
        b.power_law(f"{t}loop_a", f"{t}loop_b", lin_coef=2e8)
        b.power_law(f"{t}loop_b", f"{t}n3", lin_coef=3e8)
    net, params = b.build()
    validate_network(net)
    lay = net._layout
    assert lay.n_chains > 10 and lay.n_blocks >= 2
    pressure = {f"P{p}_fix{i}": 1e5 + 3e4 * rng.random() for p in range(2) for i in range(2)}
    bnd = b.boundary(pressure=pressure, supply=supply)
    sol, info = _solve(net, params, fluid(), bnd)
    assert bool(info.converged)
    assert int(info.iterations) == 1  # linear laws: the first Newton step is exact
    # independent dense solve: Laplacian with injections
    n = net.n_nodes
    r = np.asarray(params.lin_coef)
    a = np.zeros((n, n))
    for f_, t_, ri in zip(net.edge_from, net.edge_to, r, strict=True):
        a[f_, f_] += 1 / ri
        a[t_, t_] += 1 / ri
        a[f_, t_] -= 1 / ri
        a[t_, f_] -= 1 / ri
    fixed = np.asarray(net.fixed_nodes)
    free = np.setdiff1d(np.arange(n), fixed)
    p = np.asarray(bnd.pressure).copy()
    s_in = np.asarray(bnd.supply)
    p[free] = np.linalg.solve(a[np.ix_(free, free)], s_in[free] - a[np.ix_(free, fixed)] @ p[fixed])
    q = (p[np.asarray(net.edge_from)] - p[np.asarray(net.edge_to)]) / r
    np.testing.assert_allclose(np.asarray(sol.pressure), p, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(sol.flow), q, rtol=0, atol=1e-11 * np.max(np.abs(q)))
    div = divergence_np(net, np.asarray(sol.flow))
    assert np.max(np.abs(div[free] - s_in[free])) < 1e-12 * np.max(np.abs(q))


def test_u_ladder_continuum_limit():
    """Uniform U-ladder, header resistance R_h per segment, branches R_b,
    N branches over L = N dx: k^2 = 2 R_h / (R_b dx^2), q_last/q_first ->
    1/cosh(kL). The discrete exact ratio is cosh(t/2)/cosh(t (N - 1/2)),
    cosh t = 1 + R_h/R_b. Keep kL = 1.5 fixed while N grows."""
    kl, ns = 1.5, (4, 8, 16, 32, 64)
    b = NetworkBuilder()
    first_last = {}
    for n in ns:
        rh = kl**2 / (2 * n * n)
        t = f"N{n}_"
        for i in range(n):
            b.node(f"{t}s{i}", fixed=(i == 0))
            b.node(f"{t}r{i}", fixed=(i == 0))
        e_first = b.power_law(f"{t}s0", f"{t}r0", lin_coef=1.0e9)
        e_last = None
        for i in range(1, n):
            b.power_law(f"{t}s{i - 1}", f"{t}s{i}", lin_coef=rh * 1.0e9)
            b.power_law(f"{t}r{i}", f"{t}r{i - 1}", lin_coef=rh * 1.0e9)
            e_last = b.power_law(f"{t}s{i}", f"{t}r{i}", lin_coef=1.0e9)
        first_last[n] = (e_first, e_last, rh)
    net, params = b.build()
    pr = {f"N{n}_s0": 1.3e5 for n in ns}
    pr.update({f"N{n}_r0": 1.0e5 for n in ns})
    sol, info = _solve(net, params, fluid(), b.boundary(pressure=pr))
    assert bool(info.converged)
    errs = []
    for n in ns:
        e0, e1, rh = first_last[n]
        ratio = float(sol.flow[e1] / sol.flow[e0])
        t = math.acosh(1 + rh)
        assert abs(ratio - math.cosh(t / 2) / math.cosh(t * (n - 0.5))) < 1e-12
        errs.append(ratio - 1 / math.cosh(kl))
    errs = np.asarray(errs)
    assert np.all(errs > 0) and np.all(np.diff(errs) < 0)  # approaches the limit
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert -1.1 < slope < -0.9  # first order in 1/N
    assert errs[-1] < 5e-3


# ------------------------------------------------------- a rack-like closed loop
def mini_rack(n_trays=4, layout="U", dtype=jnp.float64, header_d=0.025):
    """Closed loop: tank (fixed) -> pump -> CDU HX -> supply header -> trays
    (hose, QD, plate 1, plate 2 in series, QD, hose) -> return header -> tank."""
    b = NetworkBuilder()
    b.node("tank", fixed=True)
    b.node("pump_out")
    b.node("cdu_out")
    for i in range(n_trays):
        for n in ("S", "R", "a", "b", "c", "d", "e"):
            b.node(f"{n}{i}")
    b.pump("tank", "pump_out", dp0=1.2e5, r1=2e7, r2=4e10, speed=1.0, label="pump")
    b.power_law("pump_out", "cdu_out", pow_coef=3e9, exponent=1.9, label="cdu")
    b.pipe("cdu_out", "S0", 1.5, header_d, roughness=1e-6, k_minor=1.0, label="feed")
    plates, supply_hdr = [], []
    for i in range(n_trays):
        b.pipe(f"S{i}", f"a{i}", 0.8, 0.008, roughness=1e-6, k_minor=1.5)
        b.flow_coefficient(f"a{i}", f"b{i}", kv=2.4)
        plates.append(b.power_law(f"b{i}", f"c{i}", lin_coef=2e7, pow_coef=1.0e9, exponent=1.85, label=f"gpu{i}a"))
        plates.append(b.power_law(f"c{i}", f"d{i}", lin_coef=2e7, pow_coef=1.0e9, exponent=1.85, label=f"gpu{i}b"))
        b.flow_coefficient(f"d{i}", f"e{i}", kv=2.4)
        b.pipe(f"e{i}", f"R{i}", 0.8, 0.008, roughness=1e-6, k_minor=1.5)
        if i:
            supply_hdr.append(b.pipe(f"S{i - 1}", f"S{i}", 0.09, header_d, roughness=1e-6, k_minor=0.3))
            if layout == "U":
                b.pipe(f"R{i}", f"R{i - 1}", 0.09, header_d, roughness=1e-6, k_minor=0.3)
            else:
                b.pipe(f"R{i - 1}", f"R{i}", 0.09, header_d, roughness=1e-6, k_minor=0.3)
    out = "R0" if layout == "U" else f"R{n_trays - 1}"
    b.pipe(out, "tank", 1.5, header_d, roughness=1e-6, k_minor=1.0, label="ret")
    net, params = b.build(dtype)
    bnd = b.boundary(pressure={"tank": 1.5e5}, dtype=dtype)
    return b, net, params, bnd, plates


def _rack_thermal(net, sol, fl, plates, power, t_supply, method="dense", with_info=False):
    heat = jnp.zeros((net.n_edges,), sol.flow.dtype).at[jnp.asarray(plates)].set(power)
    cdu = net.edge_labels.index("cdu")
    mask = jnp.zeros((net.n_edges,), bool).at[cdu].set(True)
    tset = jnp.zeros((net.n_edges,), sol.flow.dtype).at[cdu].set(t_supply)
    tin = jnp.full((net.n_nodes,), t_supply, sol.flow.dtype)
    temps, info = _temperatures(net, sol.flow, heat, fl, tin, tset, mask, method)
    return (temps, info) if with_info else temps


@pytest.mark.slow  # default-suite time (CI machine): a validation that compiles for tens of seconds
@pytest.mark.parametrize("method", ["sweep", "dense"])
def test_rack_mass_and_energy_conservation(method):
    b, net, params, bnd, plates = mini_rack()
    fl = fluid()
    sol, info = _solve(net, params, fl, bnd)
    assert bool(info.converged)
    q = np.asarray(sol.flow)
    qref = np.max(np.abs(q))
    div = divergence_np(net, q)
    free = np.setdiff1d(np.arange(net.n_nodes), net.fixed_nodes)
    assert np.max(np.abs(div[free])) <= 1e-12 * qref  # every free node
    assert abs(div.sum()) <= 1e-12 * qref  # and the tank closes the loop
    # each edge obeys its law with the solved pressures
    p = np.asarray(sol.pressure)
    dp = p[np.asarray(net.edge_from)] - p[np.asarray(net.edge_to)]
    np.testing.assert_allclose(np.asarray(sol.loss), dp, rtol=0, atol=1e-12 * np.max(np.abs(p)))

    power = jnp.asarray(np.linspace(700.0, 1200.0, len(plates)))
    temps, tinfo = _rack_thermal(net, sol, fl, plates, power, 30.0, method, with_info=True)
    assert bool(tinfo.converged)
    if method == "sweep":  # acyclic once the CDU fixes its outlet: exact after depth + 1 sweeps
        assert int(tinfo.iterations) < net.n_nodes
    cp, rho = WATER["specific_heat"], WATER["density"]
    lab = net.edge_labels
    q_rack = q[lab.index("ret")]
    t_ret = float(temps.edge_outlet[lab.index("ret")])
    t_sup = float(temps.edge_inlet[lab.index("feed")])
    total = float(jnp.sum(power))
    assert abs(rho * cp * q_rack * (t_ret - t_sup) / total - 1) < 1e-10  # rack: sum Q = mdot cp dT
    assert abs(float(jnp.sum(temps.edge_heat))) < 1e-10 * total  # CDU removes it all
    # series plates: plate b sees plate a's outlet; each rises by P/(mdot cp)
    pa, pb = np.asarray(plates[0::2]), np.asarray(plates[1::2])
    np.testing.assert_allclose(np.asarray(temps.edge_inlet)[pb], np.asarray(temps.edge_outlet)[pa], rtol=1e-15)
    rise = np.asarray(temps.edge_outlet - temps.edge_inlet)[np.asarray(plates)]
    np.testing.assert_allclose(rise, np.asarray(power) / (rho * cp * q[np.asarray(plates)]), rtol=1e-13)
    # return header mixing (independent): flow-weighted mean of tray outlets
    t_tray_out = np.asarray(temps.edge_outlet)[pb]
    q_tray = q[pb]
    assert abs(np.sum(q_tray * t_tray_out) / np.sum(q_tray) - t_ret) < 1e-10


def test_open_network_energy_and_reverse_flow_edge():
    """Inflow at a fixed node, heat on an edge whose flow runs against its
    declared direction: advection follows the actual flow."""
    b = NetworkBuilder()
    for n, fx in (("in", True), ("a", False), ("b", False), ("out", True)):
        b.node(n, fixed=fx)
    b.power_law("in", "a", lin_coef=1e8)
    b.power_law("b", "a", lin_coef=1e8)  # declared b -> a, flow runs a -> b
    b.power_law("b", "out", lin_coef=1e8)
    net, params = b.build()
    fl = fluid()
    sol, _ = _solve(net, params, fl, b.boundary(pressure={"in": 1.3e5, "out": 1e5}))
    assert float(sol.flow[1]) < 0
    heat = jnp.asarray([100.0, 250.0, 50.0])
    tin = jnp.asarray([20.0, 0.0, 0.0, 0.0])
    t, tinfo = _temperatures(net, sol.flow, heat, fl, tin, method="sweep")
    assert bool(tinfo.converged) and int(tinfo.iterations) <= 5  # depth 3, plus the check
    mdot = WATER["density"] * 1e-4
    assert abs(float(sol.flow[0]) - 1e-4) < 1e-16
    np.testing.assert_allclose(
        np.asarray(t.node[1:]),
        [20 + 100 / (mdot * 4184.1), 20 + 350 / (mdot * 4184.1), 20 + 400 / (mdot * 4184.1)],
        rtol=1e-13,
    )
    out_energy = float(t.boundary_outflow[3]) * 4184.1 * float(t.node[3])
    in_energy = float(t.boundary_inflow[0]) * 4184.1 * 20.0
    assert abs((out_energy - in_energy) / 400.0 - 1) < 1e-10


@pytest.mark.slow  # default-suite time (CI machine): a validation that compiles for tens of seconds
def test_recirculating_loop_temperatures_sweep_equals_dense():
    """A pumped loop a -> b -> c -> a with through-flow in at a and out at
    c: the flow has a cycle, the sweep converges geometrically and agrees
    with the dense solve; energy balances."""
    b = NetworkBuilder()
    for n, fx in (("in", True), ("a", False), ("b", False), ("c", False), ("out", True)):
        b.node(n, fixed=fx)
    b.power_law("in", "a", lin_coef=1e9)
    b.pump("a", "b", dp0=4e4, r2=1e11)
    b.power_law("b", "c", lin_coef=5e7)
    b.power_law("c", "a", lin_coef=5e7)
    b.power_law("c", "out", lin_coef=1e9)
    net, params = b.build()
    fl = fluid()
    sol, info = _solve(net, params, fl, b.boundary(pressure={"in": 1.2e5, "out": 1e5}))
    assert bool(info.converged)
    q = np.asarray(sol.flow)
    assert q[3] > 5 * q[0] > 0  # recirculation much larger than through-flow
    heat = jnp.asarray([0.0, 300.0, 500.0, 0.0, 0.0])
    tin = jnp.full((5,), 25.0)
    td, idn = _temperatures(net, sol.flow, heat, fl, tin)  # dense
    ts, isw = _temperatures(net, sol.flow, heat, fl, tin, method="sweep", max_sweeps=20000)
    assert bool(isw.converged) and bool(idn.converged) and int(isw.iterations) > 6
    # the sweep stops at its own tolerance, which the loop's recirculation (17x
    # the through-flow) amplifies: measured 0.9-1.2e-13 for flows that differ
    # at round-off
    np.testing.assert_allclose(np.asarray(ts.node), np.asarray(td.node), rtol=5e-13)
    e_out = float(ts.boundary_outflow[4] * ts.node[4] - ts.boundary_inflow[0] * 25.0) * 4184.1
    assert abs(e_out / 800.0 - 1) < 1e-10

    # derivatives through the sweep (transposed sweep) equal the dense ones
    def t_out(flow, heat_, method):
        t, _ = network_temperatures(net, flow, heat_, fl, tin, method=method, max_sweeps=20000)
        return t.node[2] + 2.0 * t.node[4]

    grad = jax.jit(jax.grad(t_out, argnums=(0, 1)), static_argnums=2)
    g_sw = grad(sol.flow, heat, "sweep")
    g_dn = grad(sol.flow, heat, "dense")
    for a_, b_ in zip(g_sw, g_dn, strict=True):
        np.testing.assert_allclose(np.asarray(a_), np.asarray(b_), rtol=1e-9, atol=1e-12 * float(jnp.max(jnp.abs(b_))))


def test_newton_converges_quadratically_from_cold_start():
    for layout in ("U", "Z"):
        _, net, params, bnd, _ = mini_rack(layout=layout)
        sol, info = _solve(net, params, fluid(), bnd)
        assert bool(info.converged)
        k = int(info.iterations)
        h = np.asarray(info.history)
        assert np.all(np.isfinite(h[: k + 1])) and np.all(np.isnan(h[k + 1 :]))
        assert h[k] < 1e-13 and h[0] > 0.5  # from a cold start to round-off
        c = quadratic_constants(info)  # measured: 0.27, 1.9 (then round-off)
        assert c.size >= 2 and np.all(c < 10.0), c
        assert k <= 12


def test_float32_converges_and_agrees_with_float64():
    _, net, p64, b64, _ = mini_rack(dtype=jnp.float64)
    _, _, p32, b32, _ = mini_rack(dtype=jnp.float32)
    s64, i64 = _solve(net, p64, fluid(jnp.float64), b64)
    s32, i32 = _solve(net, p32, fluid(jnp.float32), b32)
    assert s32.flow.dtype == jnp.float32 and s32.pressure.dtype == jnp.float32
    assert bool(i32.converged) and bool(i64.converged)
    assert float(i32.residual) < 1e-4
    np.testing.assert_allclose(np.asarray(s32.flow), np.asarray(s64.flow), rtol=2e-4)
    np.testing.assert_allclose(np.asarray(s32.pressure), np.asarray(s64.pressure), rtol=2e-5)


def near_lossless_rack(n_trays, dtype):
    """A rack fed 2.5 L/min per tray into a 1 m header, 1 mm hoses of 0.5 m
    bore and quick disconnects of Kv 1e6 around each tray's plate, returning to
    1.5 bar: every edge but the plates loses 3e-9 to 2e-7 Pa with a slope
    dh/dQ of 4e-5 to 2e-3 Pa s/m^3 (the plates: 2e7), so the round-off of an
    edge residual at 1.5 bar (1e-11 Pa in float64) alone asks for flow
    changes of 5e-9 to 3e-7 m^3/s on those edges."""
    b = NetworkBuilder()
    b.node("ret", fixed=True)
    b.node("S0")
    b.node("R0")
    q_tray = 2.5e-3 / 60.0
    plates = []
    for i in range(n_trays):
        for n in ("a", "b", "c", "d"):
            b.node(f"{n}{i}")
        if i:
            b.node(f"S{i}")
            b.node(f"R{i}")
            b.pipe(f"S{i - 1}", f"S{i}", 0.044, 1.0, roughness=1.5e-6)
            b.pipe(f"R{i}", f"R{i - 1}", 0.044, 1.0, roughness=1.5e-6)
        b.pipe(f"S{i}", f"a{i}", 1e-3, 0.5, roughness=1.5e-6)
        b.flow_coefficient(f"a{i}", f"b{i}", kv=kv_from_cv(1e6))
        plates.append(b.power_law(f"b{i}", f"c{i}", lin_coef=2e7, pow_coef=1.0e9, exponent=1.85))
        b.flow_coefficient(f"c{i}", f"d{i}", kv=kv_from_cv(1e6))
        b.pipe(f"d{i}", f"R{i}", 1e-3, 0.5, roughness=1.5e-6)
    b.pipe("R0", "ret", 1e-3, 1.0, roughness=1.5e-6)
    net, params = b.build(dtype)
    bnd = b.boundary(pressure={"ret": 1.5e5}, supply={"S0": n_trays * q_tray}, dtype=dtype)
    return net, params, bnd, plates, q_tray


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_near_lossless_rack_converges_with_conservation_exact(dtype):
    # Before the Newton step ignored edge residuals below their round-off,
    # this stalled after 2 steps at a relative residual of 1e-7 to 1e-6 (the
    # line search could not reduce a merit made of round-off) and thermo run
    # of such a rack exited 3.
    for n_trays in (1, 4):
        net, params, bnd, plates, q_tray = near_lossless_rack(n_trays, dtype)
        sol, info = _solve(net, params, fluid(dtype), bnd)
        assert bool(info.converged), (n_trays, np.asarray(info.history)[: int(info.iterations) + 1])
        assert int(info.iterations) <= 8
        q = np.asarray(sol.flow, np.float64)
        eps = float(jnp.finfo(dtype).eps)
        # conservation at every free node to round-off of the flows
        r = divergence_np(net, q) - np.asarray(bnd.supply, np.float64)
        free = np.setdiff1d(np.arange(net.n_nodes), net.fixed_nodes)
        assert np.max(np.abs(r[free])) < 64 * eps * n_trays * q_tray
        # the trays are alike, so each takes its share, up to the headers'
        # own loss (2e-7 Pa) and the round-off of 1.5 bar (float32: 0.016 Pa)
        # over the plate's slope (2e7 Pa s/m^3) times its flow (800 Pa)
        np.testing.assert_allclose(q[plates], q_tray, rtol=1e-8 + 8 * eps * 1.5e5 / 800.0)
        # each plate's loss is the pressure difference across it, to the
        # solver's tolerance (256 eps of the 1.5 bar)
        p = np.asarray(sol.pressure, np.float64)
        src, dst = np.asarray(net.edge_from)[plates], np.asarray(net.edge_to)[plates]
        h = 2e7 * q[plates] + 1e9 * q[plates] ** 1.85
        np.testing.assert_allclose(p[src] - p[dst], h, rtol=0, atol=256 * eps * 1.5e5)


# ------------------------------------------------------------ failures
def test_validation_errors_are_clear():
    b = NetworkBuilder()
    b.node("in", fixed=True)
    b.node("a")
    b.node("island1")
    b.node("island2")
    b.pipe("in", "a", 1.0, 0.01)
    b.pipe("island1", "island2", 1.0, 0.01)
    net, _ = b.build()
    with pytest.raises(ValueError, match="not connected to any fixed-pressure node.*island1.*island2"):
        validate_network(net)
    net2 = Network(n_nodes=2, edge_from=(0,), edge_to=(1,), edge_kind=(EdgeKind.PIPE,), fixed_nodes=())
    with pytest.raises(ValueError, match="no fixed-pressure node"):
        validate_network(net2)
    k = (EdgeKind.PIPE, EdgeKind.TEE_DIVIDING_RUN, EdgeKind.TEE_DIVIDING_BRANCH)
    tee = Network(4, (0, 1, 1), (1, 2, 3), k, fixed_nodes=(0, 2, 3), tee_partner=(-1, 2, 1))
    validate_network(tee)
    bad = Network(4, (0, 1, 1), (1, 2, 3), k, fixed_nodes=(0, 2, 3), tee_partner=(-1, 2, 2))
    with pytest.raises(ValueError, match="partner .* must be the matching TEE_DIVIDING_BRANCH"):
        validate_network(bad)
    bad = Network(4, (0, 1, 3), (1, 2, 1), k, fixed_nodes=(0, 2, 3), tee_partner=(-1, 2, 1))
    with pytest.raises(ValueError, match="must both start at the junction"):
        validate_network(bad)
    b = NetworkBuilder()
    b.node("tank", fixed=True)
    b.node("x")
    b.pump("tank", "x", dp0=0.0, r1=1e6, r2=1e10, label="P1")
    b.pipe("x", "tank", 2.0, 0.01)
    net, params = b.build()
    validate_network(net)
    with pytest.raises(ValueError, match="'P1'.*cannot deliver flow.*zero-flow pump curve"):
        validate_params(net, params)
    b.set(0, pump_dp0=5e4, pump_speed=0.0)
    net, params = b.build()
    with pytest.raises(ValueError, match="cannot deliver flow"):
        validate_params(net, params)
    b.set(0, pump_speed=1.0, pump_r1=0.0, pump_r2=0.0)
    net, params = b.build()
    with pytest.raises(ValueError, match="must fall with flow"):
        validate_params(net, params)


def test_failed_solves_report_and_stay_finite():
    # a disconnected free pair: singular Jacobian inside jit -> converged False, finite
    b = NetworkBuilder()
    b.node("in", fixed=True)
    b.node("out", fixed=True)
    b.node("i1")
    b.node("i2")
    b.pipe("in", "out", 1.0, 0.01)
    b.flow_coefficient("i1", "i2", kv=1.0)
    net, params = b.build()
    sol, info = _solve(net, params, fluid(), b.boundary(pressure={"in": 1.1e5, "out": 1e5}))
    assert not bool(info.converged)
    assert np.all(np.isfinite(np.asarray(sol.flow))) and np.all(np.isfinite(np.asarray(sol.pressure)))
    with pytest.raises(ValueError, match="did not converge"):
        check_solution(net, sol, info)
    # iteration limit
    b = NetworkBuilder()
    b.node("in", fixed=True)
    b.node("out", fixed=True)
    b.pipe("in", "out", 1.0, 0.01)
    net, params = b.build()
    sol, info = _solve(
        net,
        params,
        fluid(),
        b.boundary(pressure={"in": 1.5e5, "out": 1e5}),
        NewtonOptions(max_iterations=2),
    )
    assert not bool(info.converged) and int(info.iterations) == 2
    assert np.all(np.isfinite(np.asarray(sol.flow)))
    # a pump that cannot overcome the back pressure: solve fine, check raises
    b = NetworkBuilder()
    b.node("low", fixed=True)
    b.node("x")
    b.node("high", fixed=True)
    b.pump("low", "x", dp0=2e4, r2=1e10, label="P1")
    b.pipe("x", "high", 2.0, 0.01)
    net, params = b.build()
    sol, info = _solve(net, params, fluid(), b.boundary(pressure={"low": 1e5, "high": 1.5e5}))
    assert bool(info.converged) and float(sol.flow[0]) < 0
    with pytest.raises(ValueError, match="pump edge 0 \\('P1'\\) cannot deliver flow"):
        check_solution(net, sol, info)


# ------------------------------------------------------------ vmap and grad
_RACK = mini_rack()
_HEADERS = np.asarray([lab.startswith(("S", "R")) or lab in ("feed", "ret") for lab in _RACK[1].edge_labels]) & (
    np.asarray(_RACK[1].edge_kind) == EdgeKind.PIPE
)


@jax.jit
def rack_objective(header_d, speed, t_supply, power):
    """Max plate outlet temperature and flows of the mini rack, as a function
    of manifold diameter (m), pump speed ratio, supply temperature (degC) and
    plate powers (W)."""
    _, net, params, bnd, plates = _RACK
    fl = fluid()
    is_pump = jnp.asarray(net.edge_kind) == EdgeKind.PUMP
    params = type(params)(
        **{
            **params.__dict__,
            "pump_speed": jnp.where(is_pump, speed, params.pump_speed),
            "diameter": jnp.where(jnp.asarray(_HEADERS), header_d, params.diameter),
        }
    )
    sol, info = solve_network(net, params, fl, bnd)
    t = _rack_thermal(net, sol, fl, plates, power, t_supply)
    return jnp.max(t.edge_outlet[jnp.asarray(plates)]), sol.flow, info.converged


@pytest.mark.slow  # default-suite time (CI machine): a validation that compiles for tens of seconds
def test_vmap_over_operating_points_equals_loop():
    n_plates = len(_RACK[4])
    n = 16
    rng = np.random.default_rng(3)
    speeds = jnp.asarray(rng.uniform(0.5, 1.2, n))
    tsup = jnp.asarray(rng.uniform(20.0, 45.0, n))
    power = jnp.asarray(rng.uniform(500.0, 1200.0, (n, n_plates)))
    d = f64(0.025)
    tmax_v, flow_v, conv_v = jax.jit(jax.vmap(rack_objective, (None, 0, 0, 0)))(d, speeds, tsup, power)
    assert bool(jnp.all(conv_v))
    for i in range(n):
        tmax, flow, _ = rack_objective(d, speeds[i], tsup[i], power[i])
        np.testing.assert_allclose(np.asarray(flow_v[i]), np.asarray(flow), rtol=1e-12, atol=0)
        assert abs(float(tmax_v[i]) - float(tmax)) < 1e-10


def test_grad_of_max_plate_temperature_matches_finite_difference():
    """d(max plate outlet temperature)/d(manifold diameter), and w.r.t. pump
    speed, by implicit differentiation vs central differences."""
    power = jnp.asarray(np.linspace(800.0, 1100.0, len(_RACK[4])))
    x0 = (0.012, 0.9)

    def tmax(d, s):
        return rack_objective(d, s, f64(30.0), power)[0]

    g = jax.jit(jax.grad(tmax, argnums=(0, 1)))(f64(x0[0]), f64(x0[1]))
    for i, h in enumerate((1e-6, 1e-5)):
        xp, xm = list(x0), list(x0)
        xp[i] += h
        xm[i] -= h
        fd = (float(tmax(*map(f64, xp))) - float(tmax(*map(f64, xm)))) / (2 * h)
        assert abs(float(g[i]) / fd - 1) < 1e-6, (i, float(g[i]), fd)
    assert float(g[0]) < 0 and float(g[1]) < 0  # wider manifold, faster pump: cooler


def test_elevation_gives_hydrostatic_pressures():
    b = NetworkBuilder()
    b.node("bottom", fixed=True)
    b.node("mid")
    b.node("top", fixed=True)
    b.pipe("bottom", "mid", 1.0, 0.01)
    b.pipe("mid", "top", 1.0, 0.01)
    net, params = b.build()
    rho = WATER["density"]
    # same piezometric pressure at both ends: no flow, hydrostatic column
    bnd = b.boundary(
        pressure={"bottom": 1e5 + rho * 9.80665 * 2.0, "top": 1e5},
        elevation={"bottom": 0.0, "mid": 1.0, "top": 2.0},
    )
    sol, info = _solve(net, params, fluid(), bnd)
    assert bool(info.converged)
    assert np.max(np.abs(np.asarray(sol.flow))) < 1e-15
    assert abs(float(sol.pressure[1]) - (1e5 + rho * 9.80665)) < 1e-9
    # no supply at free nodes in a Boundary built by hand
    assert isinstance(bnd, Boundary)
