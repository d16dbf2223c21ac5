"""Rack manifold model (``rack_network``): the bundled NVL72-class case and
variants. The network kernel itself is validated in test_network.py; here
the checks are that the rack is wired as described (conservation along the
manifolds and branches, series plates, junction temperatures from R(Q)) and
that flow distribution responds to the manifold as physics says."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import CaseFile, load
from aidc_thermo.kernels.network import EdgeKind
from aidc_thermo.models import rack

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "cases" / "rack_nvl72.toml"
TEXT = CASE.read_text()


def _case(text=TEXT):
    import tomllib

    return rack.parse(CaseFile(CASE, text, tomllib.loads(text)))


def _edit(*pairs, text=TEXT):
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def bundled():
    case = rack.parse(load(CASE))
    return (case, *rack.solve_case(case))


def test_bundled_rack_is_wired_as_described(bundled):
    case, rn, sol, info, temps, tinfo, _ = bundled
    net = rn.network
    assert len(case.trays) == 27 and case.trays[:8] == ("compute",) * 8 and case.trays[8] == "switch"
    assert rn.plate_edges.size == 18 * 6 + 9 * 2
    assert abs(case.liquid_power - 90e3) < 1e-9
    kinds = np.asarray(net.edge_kind)
    # a dividing tee at every supply tap but the top one, a combining one at every return tap but the top
    assert np.sum(kinds == EdgeKind.TEE_DIVIDING_BRANCH) == 26
    assert np.sum(kinds == EdgeKind.TEE_COMBINING_BRANCH) == 26
    assert np.sum(kinds == EdgeKind.FLOW_COEFFICIENT) == 2 * 27
    assert bool(info.converged) and bool(tinfo.converged)
    np.testing.assert_allclose(np.diff(rn.tray_level), 0.04445, rtol=1e-12)


def test_mass_is_conserved_along_manifolds_and_branches(bundled):
    case, rn, sol, *_ = bundled
    net = rn.network
    q = np.asarray(sol.flow)
    lab = list(net.edge_labels)
    q_tray = np.array([q[lab.index(f"tray {i} supply QD")] for i in range(27)])
    total = case.supply.flow
    assert abs(q_tray.sum() / total - 1) < 1e-12
    # the supply manifold above tap i carries every tray above it
    for i in range(26):
        e = lab.index(f"supply tap {i}:run")
        assert abs(q[e] - q_tray[i + 1 :].sum()) < 1e-12 * total
    # U layout: the return manifold below tap i carries every tray from i up
    for i in range(26):
        e = lab.index(f"return tap {i}:run")  # R_{i+1} -> R_i
        assert abs(q[e] - q_tray[i + 1 :].sum()) < 1e-12 * total
    # plates in series share one flow; the branches of a tray add up to the tray
    for i in range(27):
        sel = rn.plate_tray == i
        br = rn.plate_branch[sel]
        qp = q[rn.plate_edges[sel]]
        first = [qp[np.flatnonzero(br == j)[0]] for j in np.unique(br)]
        for j in np.unique(br):
            np.testing.assert_allclose(qp[br == j], qp[br == j][0], rtol=1e-13)
        assert abs(sum(first) / q_tray[i] - 1) < 1e-12


def test_heat_balance_series_plates_and_junction_temperatures(bundled):
    case, rn, sol, info, temps, tinfo, (t_mean, fluid) = bundled
    rho, cp = float(fluid.density), float(fluid.specific_heat)
    q = np.asarray(sol.flow)
    t_ret = float(temps.node[rn.outlet])
    t_sup = case.supply.temperature
    assert abs(rho * cp * case.supply.flow * (t_ret - t_sup) / 90e3 - 1) < 1e-10
    t_in = np.asarray(temps.edge_inlet)[rn.plate_edges]
    t_out = np.asarray(temps.edge_outlet)[rn.plate_edges]
    qp = q[rn.plate_edges]
    np.testing.assert_allclose(t_out - t_in, rn.plate_power / (rho * cp * qp), rtol=1e-10)
    # a downstream plate of a branch sees the upstream plate's outlet
    for k in np.flatnonzero(rn.plate_position[1:] > 0) + 1:
        assert abs(t_in[k] - t_out[k - 1]) < 1e-12 * t_in[k]
    # the first plate of every branch sees the supply temperature (no heat before it)
    np.testing.assert_allclose(t_in[rn.plate_position == 0], t_sup, rtol=1e-13)
    # R(Q): log-log interpolation of the table, exact at the knots, a power law between
    gpu = case.plate("gpu")
    np.testing.assert_allclose(
        rack.loglog_interp(gpu.resistance_flow, gpu.resistance_flow, gpu.resistance), gpu.resistance, rtol=1e-14
    )
    q_mid = np.sqrt(gpu.resistance_flow[0] * gpu.resistance_flow[1])  # geometric mean
    r_mid = float(rack.loglog_interp([q_mid], gpu.resistance_flow, gpu.resistance)[0])
    assert abs(r_mid - np.sqrt(gpu.resistance[0] * gpu.resistance[1])) < 1e-15


def _tray_flows(text):
    case = _case(text)
    rn, sol, info, *_ = rack.solve_case(case)
    assert bool(info.converged)
    lab = list(rn.network.edge_labels)
    return case, np.array([float(sol.flow[lab.index(f"tray {i} supply QD")]) for i in range(27)])


@pytest.mark.parametrize(
    "edits, most",
    [
        ((), 4),  # the bundled rack: measured 8 steps from the cold start, 3 after the linearized start
        pytest.param(  # undersized, Z: 8, 4 (a rack compilation of its own, ~13 s)
            (('diameter = "38 mm"', 'diameter = "20 mm"'), ('layout = "U" ', 'layout = "Z" ')),
            5,
            marks=pytest.mark.slow,
        ),
    ],
)
def test_the_linearized_start_reaches_the_cold_starts_flows_in_fewer_newton_steps(edits, most):
    """NewtonOptions.linear_start (the rack case's and the rack hall's
    solves): the same converged flows and pressures as the damped Newton
    from the uniform cold start, to round-off, in fewer steps."""
    import jax
    import jax.numpy as jnp

    from aidc_thermo.kernels.network import Fluid, NewtonOptions, solve_network

    static, params = rack.build(_case(_edit(*edits)))
    ep, bnd = rack.edge_params(static, params)
    fl = Fluid(*(jnp.asarray(x, jnp.float64) for x in (997.0, 7.0e-4, 4180.0)))

    @jax.jit
    def both(ep, bnd):
        return [solve_network(static.network, ep, fl, bnd, NewtonOptions(linear_start=s)) for s in (False, True)]

    (cold, i_cold), (lin, i_lin) = both(ep, bnd)
    assert bool(i_cold.converged) and bool(i_lin.converged)
    print("Newton steps, cold / linearized start:", int(i_cold.iterations), int(i_lin.iterations))
    assert int(i_lin.iterations) <= most < int(i_cold.iterations)
    np.testing.assert_allclose(np.asarray(lin.flow), np.asarray(cold.flow), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(lin.pressure), np.asarray(cold.pressure), rtol=1e-12, atol=1e-6)
    assert 1e-6 < float(i_lin.history[0]) < float(i_cold.history[0])  # the start's residual: nearer, not there


@pytest.mark.slow  # three more rack compilations (~10 s)
def test_flow_distribution_responds_to_the_manifold():
    """Friction-only manifolds (no tee losses), 25 mm: in a U (direct
    return) layout the trays nearest the inlet/outlet end get the most flow,
    flows falling with height inside each section; the Z (reverse return)
    layout, which equalises path lengths, is more uniform. A very wide
    manifold (same network, only diameters change) feeds every tray of a
    type alike."""
    base = _edit(('diameter = "38 mm"', 'diameter = "25 mm"'), ("tees = true ", "tees = false "))
    _, q_u = _tray_flows(base)
    _, q_z = _tray_flows(_edit(('layout = "U" ', 'layout = "Z" '), text=base))
    for sec in (slice(0, 8), slice(17, 27)):
        assert np.all(np.diff(q_u[sec]) < 0)
    compute = np.r_[0:8, 17:27]
    spread = [(q[compute].max() - q[compute].min()) / q[compute].mean() for q in (q_u, q_z)]
    assert spread[1] < 0.5 * spread[0], spread  # measured 0.14 (U) vs 0.04 (Z)
    case, q_w = _tray_flows(_edit(('diameter = "38 mm"', 'diameter = "300 mm"')))
    types = np.asarray(case.trays)
    for t in ("compute", "switch"):
        qt = q_w[types == t]
        assert (qt.max() - qt.min()) / qt.mean() < 2e-3


MALFORMED = {
    "unknown plate in a branch": (
        _edit(
            (
                'plates = ["cpu", "gpu", "gpu"]\n  [[tray_types.branches]]',
                'plates = ["cpu", "gpux", "gpu"]\n  [[tray_types.branches]]',
            )
        ),
        "tray_types[0].branches[0].plates",
    ),
    "bad layout": (_edit(('layout = "U" ', 'layout = "X" ')), "manifold.layout"),
    "hose wider than manifold": (_edit(('diameter = "9.5 mm"', 'diameter = "50 mm"')), "hose.diameter"),
    "kv and cv": (_edit(("cv = 2.0 ", "kv = 1.7\ncv = 2.0 ")), "quick_disconnect"),
    "resistance table mismatch": (
        _edit(
            (
                'resistance = ["0.060 K/W", "0.045 K/W", "0.038 K/W"]',
                'resistance = ["0.060 K/W", "0.045 K/W"]',
            )
        ),
        "plate_types[1].resistance",
    ),
    "unknown tray type": (_edit(('tray = "switch"', 'tray = "swich"')), "sections[1].tray"),
    "flow in kg": (_edit(('flow = "180 L/min"', 'flow = "135 kg"')), "supply.flow"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_rack_case_exits_2_naming_the_key(name, tmp_path, capsys):
    text, key = MALFORMED[name]
    shutil.copytree(ROOT / "cases" / "data", tmp_path / "data")  # the GPU plates' curve file
    case = tmp_path / "bad.toml"
    case.write_text(text)
    code = main(["check", str(case)])
    err = capsys.readouterr().err
    assert code == 2, (name, err)
    assert str(case) in err and key in err, (key, err)
    assert "Traceback" not in err


@pytest.mark.parametrize("layout", ["U", "Z"])
def test_drawing_puts_nodes_at_their_elevation_and_no_two_edges_on_one_line(layout):
    """results.xdmf draws the rack from layout_points: every node at its
    elevation (z), the supply manifold on x = 0 and the return manifold on
    the far side, every edge a line of nonzero length, and no two edges with
    the same two end points (parallel branches in lanes of their own)."""
    import jax.numpy as jnp

    case = _case(_edit(('layout = "U"', f'layout = "{layout}"')))
    rn = rack.build_network(case, jnp.float64)
    pts = rack.layout_points(case, rn)
    assert pts.shape == (rn.network.n_nodes, 3) and np.all(np.isfinite(pts))
    np.testing.assert_array_equal(pts[:, 2], np.asarray(rn.boundary.elevation))
    assert np.all(pts[rn.supply_nodes, 0] == 0.0) and np.all(pts[rn.return_nodes, 0] == pts[:, 0].max())
    a, b = pts[list(rn.network.edge_from)], pts[list(rn.network.edge_to)]
    assert np.all(np.linalg.norm(b - a, axis=1) > 1e-3)
    segments = {tuple(sorted((tuple(p), tuple(q)))) for p, q in zip(a, b, strict=True)}
    assert len(segments) == len(a)


# ------------------------------------------------------------------ protocol

#: a small rack (2 + 2 + 2 trays, the switch section 30 mm above the first) so
#: that the protocol tests compile in seconds
SMALL = _edit(  # 10 of the 45 branches, with the supply scaled to them (GPU plates inside their curves' range)
    ('flow = "180 L/min"', 'flow = "40 L/min"'),
    ("count = 8", "count = 2"),
    ("count = 9", 'count = 2\ngap_below = "30 mm"'),
    ("count = 10", "count = 2"),
)
#: designs that differ only in numbers (Params), not in the network's shape
DESIGNS = [
    (),
    (('flow = "40 L/min"', 'flow = "20 L/min"'), ('temperature = "35 degC"', 'temperature = "30 degC"')),
    (('diameter = "38 mm"', 'diameter = "20 mm"'), ('gap_below = "30 mm"', 'gap_below = "200 mm"')),
    (('diameter = "9.5 mm"', 'diameter = "7 mm"'), ('power = "1000 W"', 'power = "1300 W"'), ("cv = 2.0", "cv = 1.2")),
    (('pitch = "44.45 mm"', 'pitch = "88.9 mm"'), ("k_minor = 2.0", "k_minor = 4.0"), ("feed_k = 1.5", "feed_k = 0.3"),
     ('dp_rated = "25 kPa"', 'dp_rated = "40 kPa"'), ('"0.060 K/W", "0.045 K/W"', '"0.070 K/W", "0.050 K/W"')),
]  # fmt: skip


@pytest.fixture(scope="module")
def small_designs():
    cases = [_case(_edit(*d, text=SMALL)) for d in DESIGNS]
    built = [rack.build(c) for c in cases]
    return cases, built


def test_params_carry_every_swept_number_and_match_the_builder(small_designs):
    """Each design parses to the same Static (one compiled program) and
    Params whose edge parameters and boundary, computed inside JAX by
    edge_params, equal what the network builder writes for that case file
    (the host path used before the protocol)."""
    import jax.numpy as jnp

    cases, built = small_designs
    static = built[0][0]
    kinds = np.asarray(static.network.edge_kind)
    tee = np.isin(kinds, [EdgeKind.TEE_DIVIDING_BRANCH, EdgeKind.TEE_DIVIDING_RUN,
                          EdgeKind.TEE_COMBINING_BRANCH, EdgeKind.TEE_COMBINING_RUN])  # fmt: skip
    pipe = tee | (kinds == EdgeKind.PIPE)
    plate, qd = kinds == EdgeKind.POWER_LAW, kinds == EdgeKind.FLOW_COEFFICIENT
    for case, (st, params) in zip(cases, built, strict=True):
        assert st == static and hash(st) == hash(static)
        rn = rack.build_network(case, jnp.float64)
        ep, bnd = rack.edge_params(static, params)
        for name, mask in (("length", pipe), ("diameter", pipe), ("roughness", pipe), ("k_minor", pipe),
                           ("area_ratio", tee), ("kv", qd), ("pow_coef", plate), ("pow_exp", plate)):  # fmt: skip
            ours, builders = np.asarray(getattr(ep, name))[mask], np.asarray(getattr(rn.params, name))[mask]
            np.testing.assert_allclose(ours, builders, rtol=1e-13, err_msg=name)
        curve = kinds == EdgeKind.LOGLOG_TABLE  # the GPU plates read the bundled curve file
        assert curve.sum() == 4 * 2 * 2
        for name in ("table_flow", "table_dp"):
            ours, builders = np.asarray(getattr(ep, name))[curve], np.asarray(getattr(rn.params, name))[curve]
            np.testing.assert_allclose(ours, builders, rtol=1e-13, err_msg=name)
        for name in ("pressure", "supply", "elevation"):
            np.testing.assert_allclose(getattr(bnd, name), getattr(rn.boundary, name), rtol=1e-13, atol=1e-15)


@pytest.mark.slow
def test_batched_solve_equals_the_loop_over_designs(small_designs):
    """vmap over the stacked Params of five designs (flow, supply temperature,
    manifold and hose diameters, section gap, plate power and curves, QD, ...)
    gives every design's answer of its own solve to 1e-10."""
    import jax

    cases, built = small_designs
    static = built[0][0]
    params = [p for _, p in built]
    batch = jax.tree_util.tree_map(lambda *x: np.stack(x), *params)
    sol_b = rack.compiled_solve(static, batched=True)(batch)
    rep_b = rack.report(static, batch, sol_b)
    assert np.asarray(rep_b["T_junction_max"].value).shape == (len(DESIGNS),)
    assert np.all(np.asarray(rep_b["converged"].value))
    one = rack.compiled_solve(static)
    answers = []
    for i, p in enumerate(params):
        s = one(p)
        rep = rack.report(static, p, s)
        for k, o in rep.items():
            # the Newton's last relative residual and the relative heat balance error are round-off (1e-16 to
            # 1e-14) in both, equal only to round-off
            atol = 1e-13 if k in ("residual", "heat_balance_error") else 0.0
            np.testing.assert_allclose(np.asarray(rep_b[k].value)[i], np.asarray(o.value), rtol=1e-10, atol=atol,
                                       err_msg=k)  # fmt: skip
        for a, b in ((sol_b.network.flow[i], s.network.flow), (sol_b.junction[i], s.junction),
                     (sol_b.temperatures.node[i], s.temperatures.node)):  # fmt: skip
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10)
        answers.append(float(rep["T_junction_max"].value))
        rack.check(static, p, s)
    assert len(set(answers)) == len(DESIGNS)  # the designs really differ


def test_properties_follow_the_swept_supply_temperature(small_designs):
    """Coolant properties are evaluated inside solve from Params: a design
    whose supply temperature is changed in Params solves exactly as the case
    file written at that temperature (properties at its own mean bulk
    temperature)."""
    cases, built = small_designs
    static, params = built[0]
    warm_case = _case(_edit(('temperature = "35 degC"', 'temperature = "45 degC"'), text=SMALL))
    t_warm = np.asarray(warm_case.supply.temperature, np.float64)
    swept = rack.compiled_solve(static)(params._replace(supply_temperature=t_warm))
    direct = rack.compiled_solve(static)(rack.build(warm_case)[1])
    for a, b in ((swept.fluid.viscosity, direct.fluid.viscosity), (swept.network.pressure, direct.network.pressure),
                 (swept.junction, direct.junction)):  # fmt: skip
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
    base = rack.compiled_solve(static)(params)
    assert float(swept.fluid.viscosity) < 0.9 * float(base.fluid.viscosity)  # PG25 thins as it warms
