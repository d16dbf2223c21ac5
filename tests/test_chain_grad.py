"""The plate -> hall chain as one differentiable function (thermo/chain_grad.py):
its refusals, and (slow) its gradient against central differences."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.coolant import make_coolant
from aidc_thermo.io.case import load
from aidc_thermo.models import compact, facility

CASES = Path(__file__).resolve().parents[1] / "cases"


def _plate(tmp_path) -> compact.CompactCase:
    """The bundled PG25 plate on an 8 x 8 grid, curves at 4 flows over 1.5-4 L/min (the hall runs 2.5 L/min)."""
    text = (CASES / "compact_gpu_coldplate.toml").read_text()
    for old, new in (
        ("cells = [48, 48]", "cells = [8, 8]"),
        ('flow_range = ["1 L/min", "6 L/min"]', 'flow_range = ["1.5 L/min", "4 L/min"]'),
        ("curve_points = 11", "curve_points = 4"),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "plate.toml"
    path.write_text(text)
    return compact.parse(load(path))


def _hall(tmp_path, days=3) -> facility.FacilityCase:
    """The bundled temperate dry-cooler hall over the first ``days`` days of July of its weather year."""
    lines = (CASES / "data" / "weather_temperate.csv").read_text().splitlines()
    head = [ln for ln in lines if ln.startswith("#") or ln.startswith("time")]
    july = [ln for ln in lines if ln.startswith("2001-07-")][: 24 * days]
    (tmp_path / "weather.csv").write_text("\n".join(head + july) + "\n")
    text = (CASES / "nvl72_dry_cooler_temperate.toml").read_text()
    text = re.sub(r'weather = "[^"]*"', 'weather = "weather.csv"', text)
    text = text.replace('curves = "data/', f'curves = "{CASES}/data/')
    path = tmp_path / "hall.toml"
    path.write_text(text)
    return facility.parse(load(path))


def test_chain_refuses_a_parametric_plate_and_another_coolant(tmp_path):
    """The chain replaces a curve table with the plate's curves: a parametric plate or a plate cooled by
    another coolant than the secondary loop's is refused, naming why."""
    from aidc_thermo.chain_grad import plate_hall_chain

    plate = _plate(tmp_path)
    hall = _hall(tmp_path, days=1)
    param = dict(hall.params, cold_plate={"r_base": 0.02, "r_flow": 0.006})
    with pytest.raises(ValueError, match="parametric law"):
        plate_hall_chain(plate, replace(hall, params=param))
    water = replace(plate, coolant=make_coolant("water"))
    with pytest.raises(ValueError, match="depend on the coolant"):
        plate_hall_chain(water, hall)


@pytest.mark.slow
def test_chain_gradient_matches_central_differences(tmp_path):
    """d(J/token) by reverse mode through the whole chain (plate solve, curves, hourly hall) equals forward
    mode and a central difference in the channel width and the supply setpoint. A missing derivative path
    (the plate's curves, the coupled hall solve) changes the answer by far more than the tolerance.

    The reverse-mode call once hung on a 2-core machine (batched LAPACK calls waiting on each other in
    XLA's thread pool); kernels/solvers/dense.py keeps LAPACK unbatched on the CPU."""
    import jax
    import jax.numpy as jnp

    from aidc_thermo.chain_grad import plate_hall_chain

    chain = plate_hall_chain(_plate(tmp_path), _hall(tmp_path, days=2))
    x0 = jnp.asarray(chain.x0)
    f = jax.jit(chain.j_per_token)
    grad = np.asarray(jax.jit(jax.grad(chain.j_per_token))(x0))
    assert np.all(np.isfinite(grad))
    # channel width, fin thickness (smooth: 1e-5); supply setpoint (the hours' control modes bend it: 1e-3)
    for i, tol in ((0, 1e-5), (1, 1e-5), (2, 1e-3)):
        e = jnp.zeros_like(x0).at[i].set(1.0)
        fwd = float(jax.jit(lambda x, e=e: jax.jvp(chain.j_per_token, (x,), (e,))[1])(x0))
        h = 1e-4 * abs(float(x0[i]))
        fd = (float(f(x0 + h * e)) - float(f(x0 - h * e))) / (2 * h)
        assert abs(fwd) > 0.0
        assert grad[i] == pytest.approx(fwd, rel=1e-9)
        assert fd == pytest.approx(fwd, rel=tol)
