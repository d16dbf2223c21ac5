"""The plate -> hall chain as one differentiable function (thermo/chain_grad.py):
its refusals, and (slow) its gradient against central differences."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.coolant import make_coolant
from aidc_thermo.io.case import CaseError, load
from aidc_thermo.models import compact, facility
from tests._first_gpu_plate import bundled_gpu_plate

CASES = Path(__file__).resolve().parents[1] / "cases"


def _plate(tmp_path) -> compact.CompactCase:
    """The bundled PG25 plate on an 8 x 8 grid, curves at 4 flows over 1.5-4 L/min (the hall runs 2.5 L/min)."""
    text = bundled_gpu_plate()
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


def _hall_text(tmp_path, days=3) -> str:
    """The bundled temperate dry-cooler hall over the first ``days`` days of July of its weather year."""
    lines = (CASES / "data" / "weather_temperate.csv").read_text().splitlines()
    head = [ln for ln in lines if ln.startswith("#") or ln.startswith("time")]
    july = [ln for ln in lines if ln.startswith("2001-07-")][: 24 * days]
    (tmp_path / "weather.csv").write_text("\n".join(head + july) + "\n")
    text = (CASES / "nvl72_dry_cooler_temperate.toml").read_text()
    text = re.sub(r'weather = "[^"]*"', 'weather = "weather.csv"', text)
    return text.replace('curves = "data/', f'curves = "{CASES}/data/')


def _hall(tmp_path, days=3) -> facility.FacilityCase:
    path = tmp_path / "hall.toml"
    path.write_text(_hall_text(tmp_path, days))
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


def _plate_hall_optimize_text(tmp_path, extra: str) -> str:
    text = _hall_text(tmp_path, days=2)
    text = re.sub(r'curves = "[^"]*gpu_coldplate_curves.csv"', 'case = "plate.toml"', text)
    old = 'grid = [9, 6]'
    assert old in text
    return text.replace(old, "grid = [4, 3]\n" + extra)


@pytest.mark.slow
def test_optimize_chooses_plate_geometry_and_plant_together(tmp_path, monkeypatch):
    """thermo optimize on a hall whose plate is a compact case: SLSQP moves the channel width and fin thickness
    with the supply setpoint and flow. The optimum is what thermo run's path gives for a plate case written with
    that geometry (curves solved from the case file, not by the optimizer's chain) to 1e-9, it beats the grid's
    best (the case's own plate), and no feasible neighbour 2 % away in either geometry variable is better."""
    import jax
    import jax.numpy as jnp

    from aidc_thermo.chain_grad import plate_hall_chain
    from aidc_thermo.cli import main
    from aidc_thermo.io.results import summary_values

    monkeypatch.setenv("AIDC_THERMO_CURVE_CACHE", str(tmp_path / "cache"))
    plate = _plate(tmp_path)  # writes plate.toml
    hall_path = tmp_path / "hall.toml"
    bounds = 'channel_width = ["0.12 mm", "0.4 mm"]\nfin_thickness = ["0.06 mm", "0.2 mm"]\n'
    hall_path.write_text(_plate_hall_optimize_text(tmp_path, bounds))
    out = tmp_path / "opt"
    assert main(["optimize", str(hall_path), "-o", str(out)]) == 0
    s = summary_values(out)
    assert s["method"].startswith("grid + SLSQP"), s["method"]
    assert s["channel_width_case"] == pytest.approx(0.2) and s["fin_thickness_case"] == pytest.approx(0.1)
    width, thick = s["channel_width_opt"] * 1e-3, s["fin_thickness_opt"] * 1e-3
    t_opt, scale = s["supply_temperature_opt"] + 273.15, s["flow_scale_opt"]
    j_opt = s["J_per_token_facility_opt"]
    assert j_opt < s["grid_best_J_per_token_facility"] * (1 - 1e-4)  # the plate's geometry was worth moving
    assert s["T_junction_max_opt"] <= 85.0 + 1e-6
    assert abs(width - plate.channel_width) > 1e-6 or abs(thick - plate.fin_thickness) > 1e-6

    # thermo run's path: the plate case written with the optimum geometry, its curves solved from the file
    text = (tmp_path / "plate.toml").read_text()
    text = text.replace('channel_width = "0.2 mm"', f'channel_width = "{width!r} m"', 1)
    text = text.replace('fin_thickness = "0.1 mm"', f'fin_thickness = "{thick!r} m"', 1)
    (tmp_path / "plate_opt.toml").write_text(text)
    hall_opt = hall_path.read_text().replace('case = "plate.toml"', 'case = "plate_opt.toml"')
    (tmp_path / "hall_opt.toml").write_text(hall_opt)
    case = facility.parse(load(tmp_path / "hall_opt.toml"))
    static, params = facility.build(case)
    j, tj, conv, _ = jax.jit(facility._year_metrics(static))(facility.with_controls(params, t_opt, scale))
    assert bool(conv)
    assert float(j) == pytest.approx(j_opt, rel=1e-9)

    # no feasible, better neighbour in the geometry (the optimizer's own chain, jitted once)
    chain = plate_hall_chain(plate, _hall(tmp_path, days=2))
    limit = 85.0 + 273.15

    @jax.jit
    def at(x):
        _, hp, hs = chain.solve(x)
        from aidc_thermo.models.accounting import annual_totals

        return annual_totals(hs.ops, 1.0).metrics.j_per_token_facility, hs.ops.t_j.max()

    x = np.array([width, thick, t_opt, scale])
    for i, lo, hi in ((0, 0.12e-3, 0.4e-3), (1, 0.06e-3, 0.2e-3)):
        for f in (0.98, 1.02):
            y = x.copy()
            y[i] = np.clip(x[i] * f, lo, hi)
            jn, tjn = (float(v) for v in at(jnp.asarray(y)))
            assert not (tjn <= limit and jn < j_opt * (1 - 1e-7)), (i, f, jn, j_opt, tjn)


def test_optimize_refuses_geometry_without_a_compact_plate_case(tmp_path):
    """Geometry bounds need a plate with a geometry: a curve file, or a plate with a closure table, exit 2
    naming [optimize] and the key."""
    from aidc_thermo.cli import main

    _plate(tmp_path)
    text = _hall_text(tmp_path, days=1).replace("grid = [9, 6]", 'grid = [4, 3]\nfin_thickness = ["0.05 mm", "0.2 mm"]')
    path = tmp_path / "hall.toml"
    path.write_text(text)
    with pytest.raises(CaseError, match=r"optimize\.fin_thickness.*compact_coldplate"):
        facility.parse(load(path))
    assert main(["check", str(path)]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text(_plate_hall_optimize_text(tmp_path, 'channel_width = ["0.3 mm", "0.1 mm"]'))
    with pytest.raises(CaseError, match=r"optimize\.channel_width.*high > low"):
        facility.parse(load(bad))
