"""Chip power and throttling, and the coupled junction-temperature / cooling solve:
convergence, thermal runaway, energy closure, response directions, implicit
gradients, vmap over hours, float32."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.kernels import it_power
from aidc_thermo.kernels.plant.coupled import (
    Ambient,
    CoupledConfig,
    RackPlates,
    rack_operating_point,
    rack_start_residuals,
    solve_operating_point,
    solve_rack_junctions,
    solve_rack_operating_point,
)
from aidc_thermo.models.accounting import annual_totals, energy_metrics
from aidc_thermo.validation.plant import chain_balances
from tests._plant_params import C0, accelerator, ambient, hall

DRY = CoupledConfig(device="dry_cooler", chiller="none")
TOWER = CoupledConfig(device="open_tower", chiller="carnot")


@functools.cache
def _solver(config):
    return jax.jit(lambda fac, amb: solve_operating_point(fac, amb, config))


def solve(fac, amb, config=DRY):
    return _solver(config)(fac, amb)


def temperate():
    return hall(device="dry_cooler"), ambient(20.0, 14.0)


def hot_humid(**kw):
    return hall(device="open_tower", t_supply_set=C0 + 27.0, **kw), ambient(34.0, 28.0)


# ------------------------------------------------------------------ IT model


def test_clock_ramp_and_power_terms():
    acc = accelerator()
    span, h, cmin = 15.0, 0.1, 0.5
    t_thr = C0 + 95.0
    clock = jax.jit(jax.vmap(lambda t: it_power.clock_fraction(acc, t)))
    t = jnp.asarray([t_thr - h * span - 1.0, t_thr - h * span, t_thr + 0.5 * span,
                     t_thr + (1 + h) * span, t_thr + 40.0])  # fmt: skip
    c = np.asarray(clock(t))
    assert c[0] == 1.0 and c[1] == 1.0  # exactly nominal below the rounded corner
    assert c[2] == pytest.approx(1.0 - (1.0 - cmin) * 0.5, rel=1e-14)  # linear part
    assert c[3] == pytest.approx(cmin, rel=1e-14) and c[4] == pytest.approx(cmin, rel=1e-14)
    # C^1: the slope is continuous across both rounded corners and equals the
    # linear derating rate in between.
    dclock = jax.jit(jax.vmap(jax.grad(lambda t: it_power.clock_fraction(acc, t))))
    rate = -(1.0 - cmin) / span
    corners = [t_thr - h * span, t_thr + h * span, t_thr + (1 - h) * span, t_thr + (1 + h) * span]
    for tc in corners:
        g = np.asarray(dclock(jnp.asarray([tc - 1e-7, tc + 1e-7])))
        assert abs(g[0] - g[1]) < 1e-6 * abs(rate)
    assert float(dclock(jnp.asarray([t_thr + 0.5 * span]))[0]) == pytest.approx(rate, rel=1e-14)
    # Power terms at the leakage reference temperature, leakage doubling.
    t_ref = C0 + 85.0
    p = float(it_power.accelerator_power(acc, 0.6, t_ref))
    assert p == pytest.approx(150.0 + 0.6 * 750.0 + 100.0, rel=1e-14)
    l1 = float(it_power.leakage_power(acc, t_ref + np.log(2.0) / 0.02))
    assert l1 == pytest.approx(200.0, rel=1e-13)
    # Throughput and dynamic power follow the clock.
    t_hot = t_thr + 0.5 * span
    assert float(it_power.throughput(acc, 0.6, t_hot)) == pytest.approx(0.6 * 0.75 * 4000.0)
    p_hot = float(it_power.accelerator_power(acc, 0.6, t_hot))
    leak_hot = float(it_power.leakage_power(acc, t_hot))
    assert p_hot == pytest.approx(150.0 + 0.6 * 750.0 * 0.75 + leak_hot, rel=1e-14)


# ------------------------------------------------------------- convergence


@pytest.mark.parametrize("case", ["temperate", "hot_humid"])
def test_realistic_cases_converge(case):
    fac, amb = temperate() if case == "temperate" else hot_humid()
    config = DRY if case == "temperate" else TOWER
    op, info = solve(fac, amb, config)
    assert bool(info.converged) and not bool(op.runaway)
    assert int(info.iterations) <= 8 and float(info.residual) <= 1e-9
    k = int(info.iterations)
    hist = np.asarray(info.history)
    assert np.all(np.isfinite(hist[: k + 1])) and np.all(np.isnan(hist[k + 1 :]))
    assert hist[k] == float(info.residual)
    # The solution satisfies the cold-plate relation, recomputed here.
    q = float(fac.flow_per_accelerator)
    r = float(fac.cold_plate.r_base) + float(fac.cold_plate.r_flow) * (q / float(fac.cold_plate.q_ref)) ** (
        -float(fac.cold_plate.r_exponent)
    )
    t_j = float(op.t_tcs_supply) + r * float(op.p_accelerator)
    assert float(op.t_j) == pytest.approx(t_j, abs=1e-9)
    # and the chip power the IT model gives at that junction temperature.
    p = float(it_power.accelerator_power(fac.accelerator, fac.utilization, op.t_j))
    assert float(op.p_accelerator) == pytest.approx(p, rel=1e-14)
    # Plausible operating point for warm-water liquid cooling.
    assert C0 + 40.0 < float(op.t_j) < C0 + 80.0
    m = energy_metrics(op)
    assert 1.0 < float(m.ppue_cooling) < 1.15 and float(m.pue) > float(m.ppue_cooling)


def test_runaway_is_reported_not_nan():
    # Leakage of 400 W at 60 C growing 5 %/K outruns the cooling (junction to
    # supply about 0.029 K/W in total): T_model(T) > T for every T, even with the
    # clock throttled to half. No fixed point.
    fac, amb = temperate()
    hot_chip = accelerator(leak_ref=400.0, t_leak_ref=C0 + 60.0, leak_beta=0.05)
    op, info = solve(dataclasses.replace(fac, accelerator=hot_chip), amb)
    assert not bool(info.converged) and bool(op.runaway)
    leaves = jax.tree_util.tree_leaves(op)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
    assert float(op.t_j_model) > float(op.t_j)  # the chain wants it hotter still
    assert np.isfinite(float(info.residual))
    # A milder leakage on the same hall converges (the coupling itself is fine).
    mild = accelerator(leak_ref=150.0, leak_beta=0.04)
    op2, info2 = solve(dataclasses.replace(fac, accelerator=mild), amb)
    assert bool(info2.converged) and not bool(op2.runaway)


def test_runaway_boundary_is_a_fold():
    # More leakage raises T_model(T) at every T, so the hall has a fixed point
    # for leakage up to a critical value (a fold, where 1 - dT_model/dT_j -> 0)
    # and none beyond: converged flips exactly once, T_j rises up to it, and
    # the last converged points approach the fold.
    fac, amb = temperate()
    leaks = np.linspace(50.0, 600.0, 23)
    results = [
        solve(
            dataclasses.replace(fac, accelerator=accelerator(leak_ref=lr, t_leak_ref=C0 + 60.0, leak_beta=0.05)),
            amb,
        )
        for lr in leaks
    ]
    conv = np.array([bool(info.converged) for _, info in results])
    runaway = np.array([bool(op.runaway) for op, _ in results])
    assert conv[0] and not conv[-1]
    flip = int(np.argmin(conv))
    assert np.all(conv[:flip]) and not np.any(conv[flip:])
    assert np.all(runaway == ~conv)
    tj = np.array([float(op.t_j) for op, _ in results[:flip]])
    assert np.all(np.diff(tj) > 0)


# ------------------------------------------------------------------ energy


@pytest.mark.parametrize(
    "config,case",
    [
        (DRY, "temperate"),
        (TOWER, "hot_humid"),
        (CoupledConfig("open_tower", chiller="doe2"), "hot_humid"),
    ],
)
def test_energy_closes_across_the_chain(config, case):
    if case == "temperate":
        fac, amb = temperate()
    else:
        fac, amb = hot_humid()
    fac = dataclasses.replace(fac, export_fraction=jnp.float64(0.3))
    op, info = solve(fac, amb, config)
    assert bool(info.converged)
    # The first law across the chain, each stage from its own temperatures and
    # flows, the CDU duty from an independent effectiveness-NTU evaluation at the
    # returned inlet temperatures (aidc_thermo.validation.plant.chain_balances,
    # also in thermo validate).
    for name, (left, right) in chain_balances(fac, op).items():
        if name == "device inlet temperature":
            assert left == pytest.approx(right, abs=1e-9), name
        elif name == "chiller C dT / evaporator duty":
            assert left == pytest.approx(right, rel=1e-9, abs=1e-3), name
        else:
            assert left == pytest.approx(right, rel=1e-9), name
    if config.chiller != "none":
        assert float(op.q_evap) > 0  # the hot humid day needs the trim chiller


# -------------------------------------------------------------- directions


def test_more_flow_lowers_junction_temperature_and_costs_pump_power():
    # Coolant flow scaled on both loops together (secondary per cold plate and
    # facility water), as an operator would: T_j, leakage and IT J/token fall,
    # pump power rises.
    fac, amb = temperate()
    ops = [
        solve(
            dataclasses.replace(
                fac,
                flow_per_accelerator=fac.flow_per_accelerator * s,
                flow_fw=fac.flow_fw * s,
            ),
            amb,
        )[0]
        for s in (0.6, 0.8, 1.0, 1.5, 2.0)
    ]
    t_j = np.array([float(o.t_j) for o in ops])
    pump = np.array([float(o.p_pump_tcs + o.p_pump_fw) for o in ops])
    leak = np.array([float(o.leakage) for o in ops])
    j_it = np.array([float(energy_metrics(o).j_per_token_it) for o in ops])
    assert np.all(np.diff(t_j) < 0) and np.all(np.diff(leak) < 0) and np.all(np.diff(j_it) < 0)
    assert np.all(np.diff(pump) > 0)


def test_secondary_flow_alone_meets_the_cdu_limit():
    # With the facility-water flow held, raising only the secondary flow first
    # lowers T_j (cold-plate resistance falls) and then raises it again: once the
    # secondary capacity rate passes the facility side's, the CDU's secondary
    # supply climbs towards the facility return (counterflow approach).
    fac, amb = temperate()
    ops = [
        solve(dataclasses.replace(fac, flow_per_accelerator=fac.flow_per_accelerator * s), amb)[0]
        for s in (0.6, 0.8, 1.5, 2.0)
    ]
    t_j = np.array([float(o.t_j) for o in ops])
    t_sup = np.array([float(o.t_tcs_supply) for o in ops])
    assert t_j[1] < t_j[0] and t_j[3] > t_j[2]
    assert np.all(np.diff(t_sup) > 0)


def test_warmer_supply_saves_chiller_energy_and_costs_leakage():
    fac, amb = hot_humid()
    ops = [
        solve(dataclasses.replace(fac, t_supply_set=jnp.float64(C0 + t)), amb, TOWER)[0]
        for t in (22.0, 25.0, 28.0, 31.0)
    ]
    chiller = np.array([float(o.w_chiller) for o in ops])
    leak = np.array([float(o.leakage) for o in ops])
    t_j = np.array([float(o.t_j) for o in ops])
    assert chiller[0] > 0
    assert np.all(np.diff(chiller) <= 0) and chiller[0] > chiller[-1]
    assert np.all(np.diff(leak) > 0) and np.all(np.diff(t_j) > 0)


def test_throttling_lowers_throughput_and_dynamic_power():
    # A low throttle threshold puts the junction on the derating ramp.
    fac, amb = temperate()
    low = accelerator(t_throttle=C0 + 50.0)
    op_n, _ = solve(fac, amb)
    op_t, info = solve(dataclasses.replace(fac, accelerator=low), amb)
    assert bool(info.converged)
    assert float(op_n.clock) == 1.0 and 0.5 < float(op_t.clock) < 1.0
    assert float(op_t.tokens_per_s) < float(op_n.tokens_per_s)
    assert float(op_t.p_accelerator - op_t.leakage) < float(op_n.p_accelerator - op_n.leakage)
    assert float(op_t.clock) == pytest.approx(float(it_power.clock_fraction(low, op_t.t_j)), rel=1e-14)


# ------------------------------------------------------------- gradients


def test_implicit_gradients_match_finite_differences():
    fac, amb = hot_humid()

    def outputs(t_set, q_cp):
        f = dataclasses.replace(fac, t_supply_set=t_set, flow_per_accelerator=q_cp)
        op, _ = solve_operating_point(f, amb, TOWER)
        return jnp.stack([energy_metrics(op).j_per_token_facility, op.t_j])

    t0, q0 = jnp.float64(C0 + 26.0), jnp.float64(2.0 / 60000.0)
    jac_t, jac_q = jax.jit(jax.jacrev(outputs, (0, 1)))(t0, q0)
    (dj_dt, dtj_dt), (dj_dq, _) = np.asarray(jac_t), np.asarray(jac_q)

    def j_fd(t_set, q_cp):  # the jitted solver the other tests use
        f = dataclasses.replace(fac, t_supply_set=t_set, flow_per_accelerator=q_cp)
        return float(energy_metrics(solve(f, amb, TOWER)[0]).j_per_token_facility)

    fd_t = (j_fd(t0 + 1e-3, q0) - j_fd(t0 - 1e-3, q0)) / 2e-3
    dq = 1e-3 * float(q0)
    fd_q = (j_fd(t0, q0 + dq) - j_fd(t0, q0 - dq)) / (2 * dq)
    assert dj_dt == pytest.approx(fd_t, rel=1e-5)
    assert dj_dq == pytest.approx(fd_q, rel=1e-5)
    # Junction temperature follows the supply setpoint by more than 1 K/K
    # because leakage feeds back.
    assert dtj_dt > 1.0


# ---------------------------------------------------------- hours, dtypes


def _hours(n, dtype=jnp.float64):
    h = np.arange(n)
    t_db = 11.0 + 9.0 * np.sin(2 * np.pi * (h / 8760.0 - 0.3)) + 5.0 * np.sin(2 * np.pi * h / 24.0)
    t_wb = t_db - 3.0 - 2.0 * np.cos(2 * np.pi * h / 24.0)
    return Ambient(
        t_db=jnp.asarray(C0 + t_db, dtype),
        t_wb=jnp.asarray(C0 + t_wb, dtype),
        p=jnp.full((n,), 101325.0, dtype),
    )


def test_annual_vmap_matches_single_solves_and_totals():
    fac, _ = temperate()
    amb = _hours(8760)
    run = jax.jit(jax.vmap(lambda a: solve_operating_point(fac, a, DRY)))
    ops, info = run(amb)
    assert bool(np.all(info.converged))
    for i in (0, 4000, 5000, 8759):
        op, _ = solve(fac, jax.tree_util.tree_map(lambda x, i=i: x[i], amb))
        assert float(ops.t_j[i]) == pytest.approx(float(op.t_j), abs=1e-9)
        assert float(ops.p_cooling[i]) == pytest.approx(float(op.p_cooling), rel=1e-12)
    tot = annual_totals(ops, 1.0)
    e_fac = float(np.sum(np.asarray(ops.p_facility))) * 3600.0 / 3.6e6
    assert float(tot.energy_facility_kwh) == pytest.approx(e_fac, rel=1e-12)
    free = int(np.sum(np.asarray(ops.t_fw_supply) <= float(fac.t_supply_set) + 1e-9))
    assert float(tot.free_cooling_hours) == free and 0 < free < 8760
    m = tot.metrics
    assert float(m.j_per_token_facility) == pytest.approx(
        float(m.j_per_token_it) + float(m.j_per_token_cooling)
        + 0.05 * float(m.j_per_token_it), rel=1e-12
    )  # fmt: skip
    j_fac = float(m.j_per_token_facility)
    assert float(m.tokens_per_kwh) == pytest.approx(3.6e6 / j_fac, rel=1e-12)


def test_float32_solve_matches_float64():
    fac64, amb64 = hot_humid()
    fac32 = hall(dtype=jnp.float32, device="open_tower", t_supply_set=C0 + 27.0)
    amb32 = ambient(34.0, 28.0, dtype=jnp.float32)
    op32, info32 = solve(fac32, amb32, TOWER)
    op64, _ = solve(fac64, amb64, TOWER)
    assert op32.t_j.dtype == jnp.float32 and bool(info32.converged)
    assert float(info32.residual) <= 1e-3
    assert float(op32.t_j) == pytest.approx(float(op64.t_j), abs=5e-3)
    assert float(op32.p_cooling) == pytest.approx(float(op64.p_cooling), rel=1e-4)
    m32, m64 = energy_metrics(op32), energy_metrics(op64)
    j64 = float(m64.j_per_token_facility)
    assert float(m32.j_per_token_facility) == pytest.approx(j64, rel=1e-5)


# ------------------------------------------------------------------ a rack of plates


def _rack_plates(fac, r=(0.030, 0.034, 0.031, 0.036)):
    """Four accelerator plates in two branches of two in series: plate 2 after
    plate 0, plate 3 after plate 1 (its inlet rises by the upstream plate's
    heat over the branch's capacity rate); one CPU plate of 400 W ahead of
    branch 0."""
    n = len(r)
    c_branch = float(fac.rho_tcs) * float(fac.cp_tcs) * 2.0 * float(fac.flow_per_accelerator)
    influence = np.zeros((n, n))
    influence[2, 0] = influence[3, 1] = 1.0 / c_branch
    rise_fixed = np.array([400.0, 0.0, 400.0, 0.0]) / c_branch
    return RackPlates(
        resistance=jnp.asarray(r),
        rise_fixed=jnp.asarray(rise_fixed),
        influence=jnp.asarray(influence),
        fixed_power=jnp.asarray(400.0),
        dp=jnp.asarray(60e3),
        n_racks=jnp.asarray(float(fac.n_accelerators) / n),
    )


def test_rack_solution_is_the_fixed_point_of_the_chain_recomputed_here():
    """The rack Newton (its own residual and step, written for speed) converges
    to the fixed point of the chain as the test writes it: every plate's
    junction = the secondary supply + its inlet rise from the plates upstream +
    its own R P, with each accelerator's power at its own junction temperature
    and the clock of all set by the hottest."""
    fac, amb = temperate()
    plates = _rack_plates(fac)
    op, info, t = jax.jit(lambda f, p, a: solve_rack_operating_point(f, p, a, DRY))(fac, plates, amb)
    assert bool(info.converged) and not bool(op.runaway) and float(info.residual) <= 1e-9
    assert 2 <= int(info.iterations) <= 8
    acc = fac.accelerator
    t = np.asarray(t)
    clock = float(it_power.clock_fraction(acc, t.max()))
    p = np.array(
        [
            float(acc.p_idle + fac.utilization * acc.p_dynamic * clock**acc.dyn_clock_exponent)
            + float(it_power.leakage_power(acc, ti))
            for ti in t
        ]
    )
    t_in = float(op.t_tcs_supply) + np.asarray(plates.rise_fixed) + np.asarray(plates.influence) @ p
    np.testing.assert_allclose(t, t_in + np.asarray(plates.resistance) * p, rtol=0, atol=2e-9)
    assert float(op.t_j) == t.max() and float(op.p_accelerator) == pytest.approx(p.mean(), rel=1e-13)
    # the downstream plates run hotter than the ones feeding them
    assert t[2] > t[0] + 1.0 and t[3] > t[1] + 1.0


def test_rack_start_residuals_are_the_iterations_first_residual_for_many_hours_at_once():
    """``rack_start_residuals`` (one start, many hours, the (n, n) influence applied to two vectors) reports
    what ``solve_rack_junctions`` reports at that start before its first step: the residual, whether it is
    converged there, and the summary of the junctions there (hottest, the chain's hottest, summed leakage)."""
    fac, amb0 = temperate()
    plates = _rack_plates(fac)
    t_db = (20.0, 20.0, 31.0, 5.0, 20.0)
    u = jnp.asarray([float(fac.utilization), 0.5, float(fac.utilization), 0.9, 1.0])
    ambs = [ambient(d, d - 6.0) for d in t_db]
    amb = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *ambs)
    t0, info0, _, summary0 = jax.jit(lambda f, p, a: solve_rack_junctions(f, p, a, DRY))(fac, plates, ambs[0])
    assert bool(info0.converged)
    info, runaway, summary = jax.jit(lambda f, p, a, t, u: rack_start_residuals(f, p, a, DRY, t, u))(
        fac, plates, amb, t0, u
    )
    step = jax.jit(lambda f, p, a, t: solve_rack_junctions(f, p, a, DRY, t))
    for h, a in enumerate(ambs):
        one = step(dataclasses.replace(fac, utilization=u[h]), plates, a, t0)
        first = float(one[1].history[0])
        assert float(info.residual[h]) == pytest.approx(first, rel=1e-10, abs=1e-12), h
        assert bool(info.converged[h]) == (first <= 1e-9) and int(info.iterations[h]) == 0
        assert float(info.history[h, 0]) == float(info.residual[h]) and np.all(np.isnan(info.history[h, 1:]))
        assert not bool(runaway[h])
        # the junctions are the start's for every hour: their hottest and their leakage too
        assert float(summary.t_hot[h]) == float(jnp.max(t0))
        assert float(summary.leakage[h]) == pytest.approx(float(summary0.leakage), rel=1e-13)
    # hour 0 is the start's own hour; the others differ in weather or utilization and need steps
    assert bool(info.converged[0]) and not np.any(np.asarray(info.converged[1:]))
    assert float(summary.t_hot_model[0]) == pytest.approx(float(summary0.t_hot_model), abs=1e-9)
    acc = fac.accelerator
    leak = float(jnp.sum(acc.leak_ref * jnp.exp(acc.leak_beta * (t0 - acc.t_leak_ref))))
    assert float(summary0.t_hot) == float(jnp.max(t0)) and float(summary0.leakage) == pytest.approx(leak, rel=1e-13)


def test_rack_operating_point_from_the_iterations_summary_equals_every_plates_with_the_same_derivatives():
    """``rack_operating_point`` given the iteration's ``RackSummary`` evaluates the plant on the summary's
    scalars, not on every plate: the same operating point (``t_j_model`` to the iteration's tolerance, the rest
    to rounding), and the same derivatives, forward and reverse, with respect to the plates' resistances, the
    accelerator's leakage and the weather (the summary's values carry the junctions' derivatives)."""
    fac, _ = temperate()
    amb = ambient(38.0, 24.0)  # a hot hour: the dry cooler cannot hold the setpoint, the junctions follow the weather
    plates = _rack_plates(fac)
    solved = jax.jit(lambda f, p, a: solve_rack_junctions(f, p, a, DRY))(fac, plates, amb)
    assert bool(solved[1].converged)
    fields = ("t_j", "t_j_model", "p_accelerator", "clock", "leakage", "p_it", "q_tcs", "fan_fraction", "p_facility")

    def point(x, summary):
        acc = dataclasses.replace(fac.accelerator, leak_ref=fac.accelerator.leak_ref * x[1])
        f = dataclasses.replace(fac, accelerator=acc)
        pl = dataclasses.replace(plates, resistance=plates.resistance * x[0])
        a = dataclasses.replace(amb, t_db=amb.t_db + x[2])
        op = rack_operating_point(f, pl, a, DRY, *solved[:3], summary)[0]
        return jnp.stack([getattr(op, k) for k in fields])

    x0 = jnp.ones(3, jnp.float64).at[2].set(0.0)
    every = jax.jit(lambda x: point(x, None))
    known = jax.jit(lambda x: point(x, solved[3]))
    v_every, v_known = np.asarray(every(x0)), np.asarray(known(x0))
    np.testing.assert_allclose(v_known[[0, *range(2, len(fields))]], v_every[[0, *range(2, len(fields))]], rtol=1e-13)
    assert v_known[1] == pytest.approx(v_every[1], abs=1e-9)
    j_every = np.asarray(jax.jit(jax.jacfwd(lambda x: point(x, None)))(x0))
    j_known = np.asarray(jax.jit(jax.jacfwd(lambda x: point(x, solved[3])))(x0))
    j_rev = np.asarray(jax.jit(jax.jacrev(lambda x: point(x, solved[3])))(x0))
    assert np.all(np.abs(j_every[[0, 4, 8]]) > 1e-6)  # the junctions, the leakage and the hall's power move
    assert float(v_every[fields.index("fan_fraction")]) == 1.0
    np.testing.assert_allclose(j_known, j_every, rtol=1e-9, atol=1e-9 * np.abs(j_every).max())
    np.testing.assert_allclose(j_rev, j_every, rtol=1e-9, atol=1e-9 * np.abs(j_every).max())


def test_rack_runaway_is_reported_with_finite_fields():
    fac, amb = temperate()
    hot_chip = accelerator(leak_ref=400.0, t_leak_ref=C0 + 60.0, leak_beta=0.05)
    fac = dataclasses.replace(fac, accelerator=hot_chip)
    op, info, t = jax.jit(lambda f, p, a: solve_rack_operating_point(f, p, a, DRY))(fac, _rack_plates(fac), amb)
    assert not bool(info.converged) and bool(op.runaway)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves((op, t)))
    assert np.isfinite(float(info.residual))
