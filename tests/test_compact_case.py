"""compact_coldplate case type: an end-fed plate run end to end through the CLI
(pressure drop against the analytic plenum + channel value, power map and
energy balance, curves), and malformed variants that exit 2 naming the key."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.coolant import make_coolant
from aidc_thermo.io.curves import read_curves
from aidc_thermo.io.results import summary_values
from aidc_thermo.kernels import porous
from tests._first_gpu_plate import first_gpu_plate

CASE = first_gpu_plate()  # the plate these validations were written for (tests/_first_gpu_plate.py)


def _edit(old, new, text=CASE):
    assert old in text, old
    return text.replace(old, new, 1)


END_FED = _edit('layout = "centre_fed"', 'layout = "end_fed"')
END_FED = _edit('slot_width = "6 mm"', "", END_FED)
END_FED = _edit("cells = [48, 48]", "cells = [24, 12]", END_FED)
END_FED = _edit('precision = "float64"', 'precision = "float64"\n\n[output]\nplots = false', END_FED)


def test_end_fed_plate_runs_with_exact_pressure_drop_and_energy_balance(tmp_path, capsys):
    case = tmp_path / "plate.toml"
    case.write_text(END_FED)
    out = tmp_path / "out"
    assert main(["run", str(case), "-o", str(out)]) == 0, capsys.readouterr().err
    summary = summary_values(out)
    assert summary["total_power"] == pytest.approx(960.0, rel=1e-12)
    assert summary["heat_balance_error"] < 1e-9
    # 1D flow: Hele-Shaw through two 4 mm plena, Shah-London channels over 72 mm
    water = make_coolant("water")
    t_in = 308.15
    mu = float(water.viscosity(t_in))
    q = 1.5 / 60000
    u = q / (0.08 * 3e-3)
    w, t, H = 2e-4, 1e-4, 3e-3
    phi, dh, alpha = w / (w + t), 2 * w * H / (w + H), w / H
    fre = float(porous.shah_london_fre(np.asarray(alpha)))
    expected = 12 * mu / H**2 * u * 8e-3 + 2 * fre * mu * (u / phi) / dh**2 * 72e-3
    assert summary["pressure_drop"] * 1e3 == pytest.approx(expected, rel=1e-8)
    curves = read_curves(out / "curves.csv")  # the shared cold-plate curve file, read back in SI
    flows, dp, r_max = np.array(curves.flow) * 60000, np.array(curves.dp) / 1e3, np.array(curves.r_max)
    assert curves.coolant == "water" and curves.inlet_temperature == pytest.approx(308.15)
    assert curves.meta("case_sha256") == hashlib.sha256(case.read_bytes()).hexdigest()
    assert len(flows) == 6 and flows[0] == pytest.approx(1.0) and flows[-1] == pytest.approx(3.0)
    np.testing.assert_allclose(dp / flows, dp[0] / flows[0], rtol=1e-7)  # Darcy: dP proportional to Q
    assert np.all(np.diff(r_max) < 0)
    assert summary["R_max"] > summary["R_mean"] > 0


MALFORMED = {
    "unknown layout": (_edit('layout = "centre_fed"', 'layout = "center"'), "plate.layout"),
    "centre-fed without slot": (_edit('slot_width = "6 mm"', ""), "plate.slot_width"),
    "plena too long": (_edit('plenum_length = "4 mm"', 'plenum_length = "40 mm"'), "plate.plenum_length"),
    "unknown fin type": (_edit('type = "straight"', 'type = "wavy"'), "fins.type"),
    "heat outside the plate": (
        _edit('rect = ["26 mm", "26 mm", "54 mm", "54 mm"]', 'rect = ["26 mm", "26 mm", "84 mm", "54 mm"]'),
        "heat[0].rect",
    ),
    "reversed flow range": (
        _edit('flow_range = ["1 L/min", "3 L/min"]', 'flow_range = ["3 L/min", "1 L/min"]'),
        "operating.flow_range",
    ),
    "flow in wrong unit": (_edit('flow = "1.5 L/min"', 'flow = "1.5 kg"'), "operating.flow"),
    "misspelt key": (_edit('channel_width = "0.2 mm"', 'chanel_width = "0.2 mm"'), "fins.channel_width"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_compact_case_exits_2_naming_the_key(name, tmp_path, capsys):
    text, key = MALFORMED[name]
    case = tmp_path / "bad.toml"
    case.write_text(text)
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert str(case) in err and key in err and "Traceback" not in err, err


def _with_die_map(tmp_path, rows):
    (tmp_path / "die_map.csv").write_text("# relative power, rows along y\n" + "\n".join(rows) + "\n")
    text = _edit('power = "800 W"', 'power = "800 W"\nmap = "die_map.csv"')
    case = tmp_path / "plate.toml"
    case.write_text(text)
    return case


def test_power_map_is_remapped_conservatively_onto_the_compact_grid(tmp_path):
    """A die map with all its power in one cell of a 4 x 4 grid: the plate's
    bottom flux integrates to the stated total, the die's 800 W land only in
    grid cells that overlap that map cell, and the HBM rectangles keep theirs."""
    from aidc_thermo.io.case import load
    from aidc_thermo.models import compact

    rows = ["0,0,0,0", "0,0,0,0", "0,0,1,0", "0,0,0,0"]  # third row (y), third column (x)
    case = compact.parse(load(_with_die_map(tmp_path, rows)))
    arr = compact.discretize(case)
    xf, yf, _ = arr.faces
    area = np.diff(xf)[:, None] * np.diff(yf)[None, :]
    power = arr.flux * area
    assert power.sum() == pytest.approx(960.0, rel=1e-12)
    # the hot map cell spans x 40-47 mm, y 40-47 mm (die 26-54 mm, 7 mm map cells)
    xc, yc = 0.5 * (xf[1:] + xf[:-1]), 0.5 * (yf[1:] + yf[:-1])
    in_die = ((xc > 0.026) & (xc < 0.054))[:, None] & ((yc > 0.026) & (yc < 0.054))[None, :]
    touches = ((xf[1:] > 0.040) & (xf[:-1] < 0.047))[:, None] & ((yf[1:] > 0.040) & (yf[:-1] < 0.047))[None, :]
    assert power[in_die & touches].sum() == pytest.approx(800.0, rel=1e-12)
    assert power[in_die & ~touches].sum() == pytest.approx(0.0, abs=1e-9)


def test_bad_power_map_exits_2_naming_the_key(tmp_path, capsys):
    case = _with_die_map(tmp_path, ["0,1,x", "1,1,1"])
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert "heat[0].map" in err and "die_map.csv" in err and "Traceback" not in err, err
    case = _with_die_map(tmp_path, ["0,0", "0,-1"])
    assert main(["check", str(case)]) == 2
    assert "non-negative" in capsys.readouterr().err


# ------------------------------------------------------------------ pin fins

STRAIGHT_FINS = """type = "straight"                # channels along x
channel_width = "0.2 mm"
fin_thickness = "0.1 mm"
height = "3 mm"
material = "copper"
nusselt = "H1"                   # Shah & London four-wall Nu_H1 (or "T")"""
PINS = """type = "pins"
diameter = "0.5 mm"
pitch_transverse = "1 mm"
pitch_longitudinal = "0.9 mm"
arrangement = "staggered"
height = "3 mm"
material = "copper\""""
PIN_END_FED = _edit(STRAIGHT_FINS, PINS, END_FED)


def _pin_case(text=PIN_END_FED, **changes):
    import tomllib

    from aidc_thermo.io.case import CaseFile
    from aidc_thermo.models import compact

    for old, new in changes.items():
        text = _edit(old, new, text)
    return compact.parse(CaseFile(Path("pins.toml"), text, tomllib.loads(text)))


SQUARE_PINS = _edit('pitch_longitudinal = "0.9 mm"', 'pitch_longitudinal = "1 mm"', PINS)
INLINE_PINS = _edit('arrangement = "staggered"', 'arrangement = "inline"', _edit('"0.5 mm"', '"0.7 mm"', SQUARE_PINS))


@pytest.mark.parametrize("fins", [PINS, SQUARE_PINS, INLINE_PINS], ids=["staggered", "staggered-square", "inline"])
def test_pin_friction_fit_reproduces_ht_zukauskas_over_the_flow_range(fins):
    """r u + beta u^2 against ht.dP_Zukauskas per row pitch at 13 flows of the
    range (not the fit points): within 3 %; the summary's fit error bounds it."""
    from ht.conv_tube_bank import dP_Zukauskas

    case = _pin_case(**{PINS: fins})
    water = make_coolant("water")
    rho, mu = float(water.density(308.15)), float(water.viscosity(308.15))
    D, st, sl = case.pin_diameter, case.pitch_transverse, case.pitch_longitudinal
    u = np.linspace(1, 3, 13) / 60000 / (0.08 * 3e-3)
    if case.arrangement == "staggered":
        sd = np.hypot(sl, st / 2)
        vmax = u * (st / (2 * (sd - D)) if sd < (st + D) / 2 else st / (st - D))
        sl_chart = sl * (1 + 1e-9) if st == sl else sl  # ht: equal pitches select the in-line chart
    else:
        vmax, sl_chart = u * st / (st - D), sl
    chart = np.array([dP_Zukauskas(rho * v * D / mu, 10, st, sl_chart, D, rho, v) / (10 * sl) for v in vmax])
    model = case.pin_r_darcy * u + case.pin_beta * u**2
    err = np.abs(model / chart - 1)
    assert err.max() < 0.03, err
    assert case.pin_fit_error < 0.03 and err.max() <= case.pin_fit_error * 1.5
    assert case.pin_r_darcy > 0 and case.pin_beta > 0


def test_end_fed_pin_plate_has_the_1d_pressure_drop_and_energy_balance(tmp_path, capsys):
    case = tmp_path / "pins.toml"
    case.write_text(PIN_END_FED)
    out = tmp_path / "out"
    assert main(["run", str(case), "-o", str(out)]) == 0, capsys.readouterr().err
    summary = summary_values(out)
    assert summary["heat_balance_error"] < 1e-9
    r, beta = summary["pin_r_darcy"], summary["pin_beta"]
    water = make_coolant("water")
    mu = float(water.viscosity(308.15))
    H = 3e-3

    def one_d(q):  # Hele-Shaw through two 4 mm plena, Darcy-Forchheimer over the 72 mm pin field
        u = q / (0.08 * H)
        return 12 * mu / H**2 * u * 8e-3 + (r * u + beta * u**2) * 72e-3

    assert summary["pressure_drop"] * 1e3 == pytest.approx(one_d(1.5 / 60000), rel=1e-6)
    curves = read_curves(out / "curves.csv")
    flows, dp = np.array(curves.flow) * 60000, np.array(curves.dp)
    np.testing.assert_allclose(dp, [one_d(q / 60000) for q in flows], rtol=1e-6)
    r_max, r_mean = np.array(curves.r_max), np.array(curves.r_mean)
    assert np.all(np.diff(r_max) < 0) and np.all(np.diff(r_mean) < 0)
    assert summary["pin_rows"] == pytest.approx(80.0)


PIN_MALFORMED = {
    "pitch below diameter": ('pitch_transverse = "1 mm"', 'pitch_transverse = "0.4 mm"', "fins.pitch_transverse"),
    "pitch outside chart": ('pitch_transverse = "1 mm"', 'pitch_transverse = "2 mm"', "fins.pitch_transverse"),
    "rectangular inline": ('arrangement = "staggered"', 'arrangement = "inline"', "fins.pitch_longitudinal"),
    "bad arrangement": ('arrangement = "staggered"', 'arrangement = "hexagonal"', "fins.arrangement"),
    "missing diameter": ('diameter = "0.5 mm"', "", "fins.diameter"),
    "straight key on pins": (
        'diameter = "0.5 mm"',
        'diameter = "0.5 mm"\nchannel_width = "1 mm"',
        "fins.channel_width",
    ),
    "Re below chart": (
        'flow_range = ["1 L/min", "3 L/min"]',
        'flow_range = ["0.01 L/min", "3 L/min"]',
        "operating.flow_range",
    ),
}


@pytest.mark.parametrize("name", sorted(PIN_MALFORMED))
def test_malformed_pin_case_exits_2_naming_the_key(name, tmp_path, capsys):
    old, new, key = PIN_MALFORMED[name]
    case = tmp_path / "bad.toml"
    case.write_text(_edit(old, new, PIN_END_FED))
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert str(case) in err and key in err and "Traceback" not in err, err


@pytest.mark.slow
def test_reverse_mode_through_the_centre_fed_plate_equals_forward_mode_and_finite_differences():
    """jax.grad through the centre-fed compact solve (pressure solve with an inlet slot inside the field, energy
    solve) equals jax.jvp to 1e-8 and central differences to 1e-5, for R_max and the pressure drop, with respect to
    the channel width and the flow (both solves differentiate implicitly through their transposed systems)."""
    from dataclasses import replace

    import jax
    import jax.numpy as jnp

    from aidc_thermo.io.case import CaseFile
    from aidc_thermo.models import compact

    text = _edit("cells = [48, 48]", "cells = [8, 8]")
    import tomllib

    case = compact.parse(CaseFile(Path("centre_fed.toml"), text, tomllib.loads(text)))
    assert case.layout == "centre_fed"
    static, p0 = compact.build(case, curves=False)

    def f(var, key):
        def g(x):
            p = replace(p0, **{var: x})
            return compact.report(static, p, compact.solve(static, p))[key].value

        return g

    for var in ("channel_width", "flow"):
        x0 = jnp.asarray(getattr(p0, var), jnp.float64)
        for key in ("R_max", "pressure_drop"):
            g = f(var, key)
            rev = float(jax.jit(jax.grad(g))(x0))
            fwd = float(jax.jit(lambda x, g=g: jax.jvp(g, (x,), (jnp.ones_like(x),))[1])(x0))
            h = 1e-4 * float(x0)
            fd = (float(jax.jit(g)(x0 + h)) - float(jax.jit(g)(x0 - h))) / (2 * h)
            assert rev == pytest.approx(fwd, rel=1e-8), (var, key)
            assert rev == pytest.approx(fd, rel=1e-5), (var, key)
            assert abs(rev) > 0


@pytest.mark.slow
def test_kernel_inputs_give_the_case_solves_answer():
    """``compact.kernel_inputs`` hands the plate to the kernels as the case type solves it: the kernels' flow and
    energy solves on those inputs give the case's pressure drop and fields, and the plate held at its own steady
    state by ``porous.integrate_energy`` (a constant trace) stays there."""
    import tomllib

    import jax
    import jax.numpy as jnp

    from aidc_thermo.io.case import CaseFile
    from aidc_thermo.models import compact

    text = _edit("cells = [48, 48]", "cells = [8, 8]")
    case = compact.parse(CaseFile(Path("centre_fed.toml"), text, tomllib.loads(text)))
    static, params = compact.build(case, curves=False)
    sol = jax.jit(compact.solve, static_argnums=0)(static, params)

    @jax.jit
    def kernels(params):
        grid, layer, stack, bc, rho_cp = compact.kernel_inputs(static, params)
        t_in = params.inlet_temperature
        flow = porous.solve_flow(grid, layer, bc, params.flow)
        th = porous.solve_energy(grid, layer, stack, flow, rho_cp, t_in)
        shape = static.shape
        cap = porous.HeatCapacity(jnp.full(stack.k.shape, 3.45e6), jnp.full(shape, 1e6), jnp.full(shape, 4e6))
        end, _, info = porous.integrate_energy(grid, layer, stack, flow, rho_cp, cap, th, 0.1, jnp.ones(4), t_in)
        return flow, th, end, info

    flow, th, end, info = kernels(jax.tree_util.tree_map(jnp.asarray, params))
    assert float(flow.dp) == pytest.approx(float(sol.flow.dp), rel=1e-12)
    np.testing.assert_allclose(th.T_stack, sol.thermal.T_stack, rtol=1e-12)
    np.testing.assert_allclose(th.T_fluid, sol.thermal.T_fluid, rtol=1e-12)
    assert bool(info.converged)
    rise = float(jnp.max(th.T_stack) - params.inlet_temperature)
    assert float(jnp.max(jnp.abs(end.T_stack - th.T_stack))) < 1e-8 * rise
