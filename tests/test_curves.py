"""Cold-plate curve files (thermo/io/curves.py) and their log-log interpolant
(kernels.network.loglog_interp): round trip, every malformed file refused
with the file and the row or column, interpolation exact at the nodes and for
a power law, differentiable, and the network's LOGLOG_TABLE edge law equal to it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.io.case import CaseError
from aidc_thermo.io.curves import ColdPlateCurves, coolant_label, format_curves, read_curves, write_curves
from aidc_thermo.kernels.network import loglog_interp

jax.config.update("jax_enable_x64", True)

LPM = 1.0 / 60000.0
GOOD = """# aidc-thermo cold-plate curves
# coolant: water
# inlet_temperature: 35 degC
# model: compact_coldplate
# case_sha256: abc
flow [L/min],R_max [K/W],R_mean [K/W],dP [kPa]
1,0.06,0.04,0.5
2,0.05,0.035,1.2
4,0.045,0.03,3.0
"""


def _write(tmp_path, text, name="c.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_read_converts_units_and_keeps_provenance(tmp_path):
    c = read_curves(_write(tmp_path, GOOD))
    np.testing.assert_allclose(c.flow, np.array([1, 2, 4]) * LPM, rtol=1e-15)
    np.testing.assert_allclose(c.dp, [500.0, 1200.0, 3000.0], rtol=1e-15)
    assert c.r_max == (0.06, 0.05, 0.045) and c.r_mean == (0.04, 0.035, 0.03)
    assert c.coolant == "water" and c.inlet_temperature == pytest.approx(308.15, abs=1e-12)
    assert c.meta("model") == "compact_coldplate" and c.meta("case_sha256") == "abc"
    assert c.flow_range == (c.flow[0], c.flow[-1])
    assert c.covers(2 * LPM) and not c.covers(0.9 * LPM) and not c.covers(4.1 * LPM)


def test_other_units_give_the_same_curves(tmp_path):
    text = GOOD.replace("flow [L/min]", "flow [m^3/s]").replace("dP [kPa]", "dP [Pa]")
    rows = ["1.6666666666666667e-05,0.06,0.04,500", "3.3333333333333335e-05,0.05,0.035,1200",
            "6.666666666666667e-05,0.045,0.03,3000"]  # fmt: skip
    text = text.split("flow [")[0] + "flow [m^3/s],R_max [K/W],R_mean [K/W],dP [Pa]\n" + "\n".join(rows) + "\n"
    a, b = read_curves(_write(tmp_path, GOOD, "a.csv")), read_curves(_write(tmp_path, text, "b.csv"))
    np.testing.assert_allclose(a.flow, b.flow, rtol=1e-15)
    np.testing.assert_allclose(a.dp, b.dp, rtol=1e-15)


def test_round_trip(tmp_path):
    c = ColdPlateCurves(
        flow=tuple(np.array([1.0, 1.7, 2.9, 5.0]) * LPM),
        r_max=(0.061234567891, 0.05, 0.044, 0.04),
        dp=(512.3456789012, 1300.0, 3100.0, 8000.0),
        coolant=coolant_label(type("C", (), {"fluid": "propylene_glycol", "mass_fraction": 0.257034})()),
        inlet_temperature=308.15,
        r_mean=(0.04, 0.035, 0.03, 0.028),
        provenance=(("model", "compact_coldplate"), ("cells", "48 x 48")),
    )
    p = tmp_path / "rt.csv"
    write_curves(p, c)
    d = read_curves(p)
    for name in ("flow", "r_max", "r_mean", "dp"):
        np.testing.assert_allclose(getattr(d, name), getattr(c, name), rtol=1e-11)
    assert d.coolant == "propylene_glycol 25.7 % by mass"
    assert d.inlet_temperature == pytest.approx(c.inlet_temperature, abs=1e-9)
    assert d.provenance == c.provenance
    assert format_curves(d) == p.read_text()  # a second round trip is exact


def test_r_mean_is_optional(tmp_path):
    text = GOOD.replace(",R_mean [K/W]", "").replace(",0.04,", ",").replace(",0.035,", ",").replace(",0.03,", ",")
    c = read_curves(_write(tmp_path, text))
    assert c.r_mean is None
    with pytest.raises(ValueError, match="no R_mean"):
        c.resistance_mean(2 * LPM)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda t: t.replace("flow [L/min],", "").replace("\n1,", "\n").replace("\n2,", "\n").replace("\n4,", "\n"),
            "missing column 'flow'",
        ),
        (
            lambda t: (
                t.replace(",dP [kPa]", "").replace(",0.5\n", "\n").replace(",1.2\n", "\n").replace(",3.0\n", "\n")
            ),
            "missing column 'dP'",
        ),
        (lambda t: t.replace("dP [kPa]", "dP [kW]"), "column 'dP': unit 'kW'"),
        (lambda t: t.replace("dP [kPa]", "dP [furlongs]"), "column 'dP': unit 'furlongs'"),
        (lambda t: t.replace("dP [kPa]", "dP"), "not 'name \\[unit\\]'"),
        (lambda t: t.replace("R_mean [K/W]", "R_avg [K/W]"), "unknown column 'R_avg'"),
        (lambda t: t.replace("2,0.05", "2,nan"), "line 8: column 'R_max': 'nan' must be a finite positive"),
        (lambda t: t.replace("2,0.05", "2,inf"), "line 8: column 'R_max'"),
        (lambda t: t.replace("2,0.05", "2,-0.05"), "line 8: column 'R_max'"),
        (lambda t: t.replace("2,0.05", "2,0"), "line 8: column 'R_max'"),
        (lambda t: t.replace("2,0.05", "2,abc"), "line 8: column 'R_max': 'abc' is not a number"),
        (lambda t: t.replace("\n2,0.05", "\n0.5,0.05"), "line 8: column 'flow': flows must increase strictly"),
        (lambda t: t.replace("\n2,0.05", "\n1,0.05"), "line 8: column 'flow'"),
        (lambda t: t.replace("0.035,1.2", "0.035,0.4"), "line 8: column 'dP': the pressure drop must increase"),
        (lambda t: t.replace("0.035,1.2", "0.035,0.5"), "line 8: column 'dP'"),
        (lambda t: t.replace("# coolant: water\n", ""), "missing metadata key 'coolant'"),
        (lambda t: t.replace("35 degC", "35"), "metadata 'inlet_temperature'"),
        (lambda t: t.replace("0.03,3.0", "0.03"), "line 9: 3 values, expected 4"),
        (lambda t: t.split("2,0.05")[0], "at least 2 rows"),
    ],
)
def test_malformed_file_is_refused_naming_file_and_place(tmp_path, edit, match):
    p = _write(tmp_path, edit(GOOD))
    with pytest.raises(CaseError, match=match) as err:
        read_curves(p, case_file=tmp_path / "rack.toml", key="plate_types[0].curves")
    assert err.value.file == str(tmp_path / "rack.toml") and err.value.key == "plate_types[0].curves"
    assert str(p) in err.value.message


def test_missing_file(tmp_path):
    with pytest.raises(CaseError, match="file not found") as err:
        read_curves(tmp_path / "nope.csv", case_file="case.toml", key="coldplate.curves")
    assert err.value.key == "coldplate.curves" and "nope.csv" in str(err.value)


def test_interpolation_exact_at_nodes_and_for_power_laws():
    xk = np.array([1.0, 1.5, 2.5, 4.0, 7.0]) * LPM
    for a, n in ((2e9, 1.85), (0.02 * LPM**-0.8, -0.8), (3e5, 1.0)):
        yk = a * xk**n
        x = np.geomspace(xk[0], xk[-1], 57)
        np.testing.assert_allclose(loglog_interp(x, xk, yk), a * x**n, rtol=1e-13)
        np.testing.assert_allclose(loglog_interp(xk, xk, yk), yk, rtol=1e-15)
    yk = np.array([0.06, 0.05, 0.047, 0.046, 0.03])  # not a power law: still exact at the nodes, between them in order
    np.testing.assert_allclose(loglog_interp(xk, xk, yk), yk, rtol=1e-15)
    mid = np.sqrt(xk[1:] * xk[:-1])  # the geometric midpoint gives the geometric mean of the neighbours
    np.testing.assert_allclose(loglog_interp(mid, xk, yk), np.sqrt(yk[1:] * yk[:-1]), rtol=1e-14)


def test_interpolation_is_differentiable_and_batched():
    xk, yk = jnp.array([1.0, 2.0, 4.0]), jnp.array([1.0, 3.0, 5.0])
    g = jax.grad(lambda x: loglog_interp(x, xk, yk))(3.0)
    n = np.log(5 / 3) / np.log(2)
    assert float(g) == pytest.approx(3.0 * n * (3.0 / 2.0) ** (n - 1) / 2.0, rel=1e-13)
    # derivative in the table values (a design derivative through the curve)
    gy = jax.grad(lambda y: loglog_interp(3.0, xk, y))(yk)
    eps = 1e-6
    fd = [(loglog_interp(3.0, xk, yk.at[i].add(eps)) - loglog_interp(3.0, xk, yk.at[i].add(-eps))) / (2 * eps)
          for i in range(3)]  # fmt: skip
    np.testing.assert_allclose(gy, fd, rtol=1e-7, atol=1e-10)
    batched = jax.vmap(lambda x: loglog_interp(x, xk, yk))(jnp.array([1.0, 2.0, 4.0]))
    np.testing.assert_allclose(batched, yk, rtol=1e-15)
    assert float(loglog_interp(0.0, xk, yk)) == 0.0
    assert float(jax.grad(lambda x: loglog_interp(x, xk, yk))(0.0)) == 0.0


def test_network_loglog_table_edge_is_the_curve():
    """A network edge built from the curve's dP table loses exactly the
    curve's dP at any flow, both directions (odd)."""
    from aidc_thermo.kernels.network import Fluid, NetworkBuilder, edge_pressure_loss, validate_params

    flows = np.array([1.0, 2.0, 4.0]) * LPM
    dps = np.array([500.0, 1200.0, 3000.0])
    b = NetworkBuilder()
    b.node("a", fixed=True)
    b.node("b", fixed=True)
    b.loglog_table("a", "b", flows, dps)
    net, p = b.build(jnp.float64)
    validate_params(net, p)
    fluid = Fluid(jnp.asarray(1000.0), jnp.asarray(1e-3), jnp.asarray(4180.0))
    for q in (1.0, 1.3, 2.0, 3.7, 4.0):
        loss = edge_pressure_loss(net, p, fluid, jnp.asarray([q * LPM]))
        assert float(loss[0]) == pytest.approx(float(loglog_interp(q * LPM, flows, dps)), rel=1e-14)
        assert float(edge_pressure_loss(net, p, fluid, jnp.asarray([-q * LPM]))[0]) == pytest.approx(-float(loss[0]))
    b2 = NetworkBuilder()
    b2.node("a", fixed=True)
    b2.node("b", fixed=True)
    b2.loglog_table("a", "b", flows, dps[::-1])
    net2, p2 = b2.build(jnp.float64)
    with pytest.raises(ValueError, match="increase strictly with flow"):
        validate_params(net2, p2)
