"""A row of racks on a CDU's headers (``rack_network`` with ``[row]``): the
row network is the rack's, repeated along a supply and a return header with a
take-off tee at each rack; the checks are that identical racks on oversized
headers are identical (and equal the rack alone at the per-rack flow), that
undersized headers maldistribute the flow as the hydraulics say, that mass
and energy close over the row, and that bad [row] input is refused."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.errors import SolveError
from aidc_thermo.io.case import CaseFile
from aidc_thermo.kernels.network import EdgeKind
from aidc_thermo.models import rack

#: a small rack (3 trays, two plates in series per tray) on a row of 4
RACK = """
[case]
type = "rack_network"
name = "small row"

[supply]
temperature = "30 degC"
flow = "12 L/min"

[manifold]
layout = "U"
diameter = "20 mm"
pitch = "44.45 mm"
feed_length = "0.5 m"
feed_k = 1.5

[hose]
length = "0.5 m"
diameter = "8 mm"
k_minor = 1.0

[quick_disconnect]
kv = 2.0

[[plate_types]]
name = "gpu"
power = "800 W"
dp_rated = "20 kPa"
flow_rated = "2 L/min"
dp_exponent = 1.85
resistance_flow = ["1 L/min", "2 L/min", "4 L/min"]
resistance = ["0.05 K/W", "0.035 K/W", "0.028 K/W"]
junction_limit = "85 degC"

[[tray_types]]
name = "t"
  [[tray_types.branches]]
  plates = ["gpu", "gpu"]

[[sections]]
tray = "t"
count = 3

[output]
plots = false
"""
ROW = """
[row]
racks = 4
return = "direct"
diameter = "25 mm"
rack_pitch = "0.6 m"
feed_length = "2 m"
feed_k = 1.0
"""
N = 4
PLATES = 6  # per rack


def _case(text):
    path = Path("/nonexistent/row.toml")
    return rack.parse(CaseFile(path, text, tomllib.loads(text)))


def _row(**edits):
    text = ROW
    for key, value in edits.items():
        lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")]
        text = "\n".join(lines) + f"\n{key} = {value}\n"
    return RACK + text


# ----------------------------------------------------------------------------- fast: parsing and wiring


BAD = {
    "no racks": (_row(racks=0), "row.racks", "at least 1"),
    "fractional racks": (_row(racks=2.5), "row.racks", "integer"),
    "negative diameter": (_row(diameter='"-25 mm"'), "row.diameter", ""),
    "unknown return": (_row(**{"return": '"revers"'}), "row.return", "reverse"),
    "header narrower than the rack manifold": (_row(diameter='"15 mm"'), "row.diameter", "wider"),
    "unknown key": (_row(pitch='"1 m"'), "row.pitch", ""),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_row_input_exits_2_naming_file_and_key(name, tmp_path, capsys):
    text, key, words = BAD[name]
    case = tmp_path / "bad.toml"
    case.write_text(text)
    code = main(["check", str(case)])
    err = capsys.readouterr().err
    assert code == 2, (name, err)
    assert str(case) in err and key in err and words in err, (key, err)
    assert "Traceback" not in err


@pytest.mark.parametrize("ret", ["direct", "reverse"])
def test_row_is_wired_as_described(ret):
    """N copies of the rack, a take-off tee at every rack but the last on
    each header, the CDU's flow N x [supply] flow, and the return header
    leaving from rack 0's end (direct) or the last rack's (reverse)."""
    import jax.numpy as jnp

    case = _case(_row(**{"return": f'"{ret}"'}))
    single = rack.build_network(_case(RACK), jnp.float64)
    rn = rack.build_network(case, jnp.float64)
    net, kinds = rn.network, np.asarray(rn.network.edge_kind)
    assert rn.plate_edges.size == N * PLATES and np.array_equal(rn.plate_rack, np.repeat(np.arange(N), PLATES))
    # the rack's own tees N times, plus N - 1 take-off tees on each header
    per_rack = np.sum(np.asarray(single.network.edge_kind) == EdgeKind.TEE_DIVIDING_BRANCH)
    assert np.sum(kinds == EdgeKind.TEE_DIVIDING_BRANCH) == N * per_rack + N - 1
    assert np.sum(kinds == EdgeKind.TEE_COMBINING_BRANCH) == N * per_rack + N - 1
    assert net.n_edges == N * single.network.n_edges + 2 * (N - 1) + 2  # + header runs, CDU feed, drain or line
    assert abs(float(np.asarray(rn.boundary.supply).sum()) - N * 12 / 60000) < 1e-15
    labels = list(net.edge_labels)
    out = labels[int(np.flatnonzero(np.asarray(net.edge_to) == rn.outlet)[0])]
    assert out == ("row drain" if ret == "direct" else "row return line")
    src = net.node_labels[int(np.asarray(net.edge_from)[labels.index(out)])]
    assert src == ("G0" if ret == "direct" else f"G{N - 1}")
    assert abs(case.liquid_power - N * PLATES * 800) < 1e-9


# ----------------------------------------------------------------------------- slow: solves (4 compilations)

OVERSIZED, UNDERSIZED = (0.3, 0.6), (0.025, 3.0)  # header diameter (m), rack pitch (m)


def _solve_batch(text, designs):
    case = _case(text)
    static, params = rack.build(case)
    batch = rack.stack_params(
        [params._replace(row_diameter=np.float64(d), rack_pitch=np.float64(p)) for d, p in designs]
    )
    sol = rack.compiled_solve(static, True)(batch)
    return case, static, batch, sol


@pytest.fixture(scope="module")
def solved():
    out = {ret: _solve_batch(_row(**{"return": f'"{ret}"'}), [OVERSIZED, UNDERSIZED]) for ret in ("direct", "reverse")}
    case = _case(RACK)
    static, params = rack.build(case)
    out["rack"] = (case, static, params, rack.compiled_solve(static)(params))
    return out


def _pick(sol, i):
    import jax

    return jax.tree_util.tree_map(lambda x: x[i], sol)


def _rack_flows(static, sol):
    return np.asarray(sol.network.flow)[..., np.asarray(static.rack_feed_edges)]


@pytest.mark.slow
def test_oversized_headers_give_identical_racks_equal_to_the_rack_alone(solved):
    _, _, _, alone = solved["rack"]
    tj_alone = np.asarray(alone.junction)
    for ret in ("direct", "reverse"):
        case, static, batch, sol = solved[ret]
        assert bool(np.all(sol.info.converged))
        q = _rack_flows(static, sol)[0]
        assert np.abs(q / q.mean() - 1).max() < 1e-6, (ret, q)
        tj = np.asarray(sol.junction[0]).reshape(N, PLATES)
        assert np.abs(tj - tj.mean(axis=0)).max() < 1e-3, ret
        # each rack as the rack case alone at the per-rack flow
        assert np.abs(tj - tj_alone).max() < 1e-3, (ret, np.abs(tj - tj_alone).max())
        assert abs(q.mean() - case.supply.flow) < 1e-12


@pytest.mark.slow
def test_undersized_headers_maldistribute_as_the_hydraulics_say(solved):
    """Direct return: rack 0, nearest the CDU on both headers, has the
    shortest path and gets more than the middle racks, the far end less. On
    friction-dominated headers (long pitch) reverse return, equal path
    lengths, is more uniform than direct. The worst chip is hotter than on
    oversized headers, and it sits in a rack with less than the mean flow."""
    spread = {}
    for ret in ("direct", "reverse"):
        _, static, batch, sol = solved[ret]
        q = _rack_flows(static, sol)[1]
        spread[ret] = (q.max() - q.min()) / q.mean()
        tj = np.asarray(sol.junction)
        assert tj[1].max() > tj[0].max() + 0.01, ret
        worst_rack = int(np.argmax(tj[1])) // PLATES
        assert q[worst_rack] < q.mean(), (ret, q, worst_rack)
        if ret == "direct":
            mid = q[1:-1].mean()
            assert q[0] > mid * (1 + 5e-3) and q[-1] < mid * (1 - 2e-3), q
    assert spread["reverse"] < 0.75 * spread["direct"], spread


@pytest.mark.slow
def test_mass_and_energy_close_over_the_row(solved):
    for ret in ("direct", "reverse"):
        case, static, batch, sol = solved[ret]
        for i in range(2):
            s, p = _pick(sol, i), _pick(batch, i)
            q = _rack_flows(static, s)
            assert abs(q.sum() / (N * case.supply.flow) - 1) < 1e-9
            out = {k: np.asarray(o.value) for k, o in rack.report(static, p, s).items()}
            assert float(out["heat_balance_error"]) < 1e-9
            rack.check(static, p, s)  # maximum principle, liquid range
            assert abs(float(out["rack_flow_max"]) - q.max() * 6e4) < 1e-9
            assert int(out["rack_lowest_flow"]) == int(np.argmin(q))
            # the CDU's return carries every plate's heat: rho cp Q_total (T_return - T_supply)
            rho, cp = float(s.fluid.density), float(s.fluid.specific_heat)
            t_ret = float(s.temperatures.node[static.outlet])
            heat = rho * cp * q.sum() * (t_ret - float(p.supply_temperature))
            assert abs(heat / (N * PLATES * 800) - 1) < 1e-9
            # and each rack's: its plates' outlets (last in series) carry its heat out of its trays
            t_out = np.asarray(s.temperatures.edge_outlet)[np.asarray(static.plate_edges)].reshape(N, -1)
            q_p = np.asarray(s.network.flow)[np.asarray(static.plate_edges)].reshape(N, -1)
            last = np.tile(np.arange(PLATES) % 2 == 1, (N, 1))  # two plates in series: the second is last
            rack_heat = rho * cp * np.sum(np.where(last, q_p * (t_out - float(p.supply_temperature)), 0.0), axis=1)
            np.testing.assert_allclose(rack_heat, PLATES * 800, rtol=1e-9)
    # a return 0.05 K too warm passes the maximum principle but not the energy check
    s = _pick(sol, 0)
    hot = s._replace(temperatures=replace(s.temperatures, node=s.temperatures.node.at[static.outlet].add(0.05)))
    rack.check_bounded(static, _pick(batch, 0), hot)
    with pytest.raises(SolveError, match="energy does not close over the row"):
        rack.check(static, _pick(batch, 0), hot)


@pytest.mark.slow
def test_one_rack_row_without_feed_equals_the_rack_alone(solved):
    case_a, static_a, params_a, alone = solved["rack"]
    text = RACK + ROW.replace("racks = 4", "racks = 1").replace('feed_length = "2 m"', 'feed_length = "0 m"')
    text = text.replace("feed_k = 1.0", "feed_k = 0.0\ntees = false")
    case = _case(text)
    static, params = rack.build(case)
    assert static.network.n_edges == static_a.network.n_edges
    sol = rack.compiled_solve(static)(params)
    for a, b in ((sol.network.flow, alone.network.flow), (sol.network.pressure, alone.network.pressure),
                 (sol.temperatures.node, alone.temperatures.node), (sol.junction, alone.junction)):  # fmt: skip
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=0)


def test_fmu_export_of_a_row_is_refused_naming_the_key(tmp_path, capsys):
    """The rack FMU's inputs are one rack's supply flow and temperature: a row is refused (exit 2), nothing written."""
    case = tmp_path / "row.toml"
    case.write_text(_row())
    assert main(["fmu", str(case), "-o", str(tmp_path / "row.fmu")]) == 2
    err = capsys.readouterr().err
    assert str(case) in err and "row:" in err and "[row]" in err
    assert not (tmp_path / "row.fmu").exists()
