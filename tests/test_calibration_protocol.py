"""The closure calibration on the model protocol (thermo/models/protocol.py):
its pure root finder and apparent Nu against scipy's, the window check of
parse, and (slow) the batched solve against the per-design loop."""

import math
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.io.case import CaseError, CaseFile
from aidc_thermo.models import calibrate
from aidc_thermo.models.protocol import follows_protocol
from aidc_thermo.validation.coldplate import calibration_case


def _apparent_nusselt_scipy(u_plan, w, t, H, k_fin, k_fluid):
    """The reference: the same inversion of U = (h / p) (w + 2 H eta(h)) by scipy's brentq."""
    from scipy.optimize import brentq

    p, dh = w + t, 2 * w * H / (w + H)

    def excess(log_h):
        h = math.exp(log_h)
        mh = math.sqrt(2 * h / (k_fin * t)) * H
        eta = math.tanh(mh) / mh if mh > 1e-8 else 1.0
        return math.log(h / p * (w + 2 * H * eta)) - math.log(u_plan)

    return math.exp(brentq(excess, math.log(1e-6), math.log(1e14), xtol=1e-14, rtol=1e-13)) * dh / k_fluid


def _case(text, name="cal.toml"):
    return calibrate.parse(CaseFile(Path(name), text, tomllib.loads(text)))


def test_calibration_follows_the_protocol():
    assert follows_protocol(calibrate)


def test_illinois_finds_a_bracketed_root_and_reports_a_missing_bracket():
    def cubic(x):
        return x**3 - 2.0, (x,)

    def fold(acc, aux):
        return (jnp.maximum(acc[0], aux[0]),)

    x, bracketed, converged, evaluations, (largest,) = jax.jit(
        lambda a, b: calibrate._illinois(cubic, fold, a, b, 1e-14)
    )(jnp.asarray(0.0), jnp.asarray(3.0))
    assert bool(bracketed) and bool(converged)
    assert abs(float(x) - 2.0 ** (1 / 3)) < 1e-13
    assert 3 <= int(evaluations) < 40  # superlinear, not bisection's ~50
    assert float(largest) == 3.0  # the fold saw the end points
    no_root = calibrate._illinois(cubic, fold, jnp.asarray(2.0), jnp.asarray(3.0), 1e-14)
    x, bracketed, converged, evaluations, _ = no_root
    assert not bool(bracketed) and not bool(converged) and int(evaluations) == 2
    # vmap: each lane its own root
    roots = jax.vmap(lambda c: calibrate._illinois(lambda x: (x**3 - c, ()), lambda a, b: (), 0.0, 3.0, 1e-14)[0])(
        jnp.asarray([1.0, 2.0, 8.0])
    )
    np.testing.assert_allclose(np.asarray(roots), [1.0, 2.0 ** (1 / 3), 2.0], rtol=1e-13)


@pytest.mark.parametrize("u_plan", [50.0, 3e3, 8e4, 2e6])
def test_apparent_nusselt_in_jax_equals_the_scipy_root(u_plan):
    geometry = (0.3e-3, 0.2e-3, 1.5e-3, 393.0, 0.61)
    want = _apparent_nusselt_scipy(u_plan, *geometry)
    got, ok = calibrate._apparent_nusselt_jnp(jnp.asarray(u_plan), *geometry)
    assert bool(ok)
    assert math.isclose(float(got), want, rel_tol=1e-11)


def test_parse_refuses_a_unit_cell_without_cells_in_the_local_window():
    text = calibration_case(0.01, (30.0, 60.0)).replace("length = 24", "length = 3")
    with pytest.raises(CaseError, match=r"geometry\.cells\.length.*at least 2 cells in 0.6 L"):
        _case(text)


@pytest.mark.slow
def test_batched_calibration_equals_the_per_design_loop():
    """Two designs (inlet 30 and 45 degC, two fluxes) solved as one vmapped
    batch equal the two solved one by one (1e-10), and the batched report has
    the batch axis."""
    # tight solver tolerances: at the default 1e-8 flow tolerance two differently compiled programs (batched and
    # not) agree to the solver's tolerance, ~1e-9 (tests/test_coldplate_protocol.py)
    text = calibration_case(0.01, (40.0, 200.0)).replace("length = 24", "length = 10")
    text += "[solver]\nflow_tolerance = 1e-12\n"
    case = _case(text)
    static, p1 = calibrate.build(case)
    p2 = calibrate.Params(p1.reynolds, np.float64(318.15), np.float64(2 * p1.heat_flux), p1.solid_k)
    solve = jax.jit(calibrate.solve, static_argnums=0)
    loop = [solve(static, p) for p in (p1, p2)]
    for p, s in zip((p1, p2), loop, strict=True):
        calibrate.check(static, p, s)
    batch = jax.jit(jax.vmap(calibrate.solve, in_axes=(None, 0)), static_argnums=0)(
        static, calibrate.stack_params([p1, p2])
    )
    for i, one in enumerate(loop):
        for key in calibrate.COLUMNS:
            np.testing.assert_allclose(
                np.asarray(batch.columns[key])[i], np.asarray(one.columns[key]), rtol=1e-10, err_msg=key
            )
    rep = calibrate.report(static, calibrate.stack_params([p1, p2]), batch)
    assert np.asarray(rep["Nu_apparent_at_Re_max"].value).shape == (2,)
    assert np.all(np.asarray(rep["converged"].value))
    # the closures are properties of the flow, not of the flux (linear energy equation)
    one_flux = calibrate.Params(p1.reynolds, p1.inlet_temperature, np.float64(2 * p1.heat_flux), p1.solid_k)
    doubled = solve(static, one_flux)
    for key in ("fRe_apparent", "Nu_apparent", "Nu_local"):
        np.testing.assert_allclose(
            np.asarray(doubled.columns[key]), np.asarray(loop[0].columns[key]), rtol=1e-7, err_msg=key
        )
