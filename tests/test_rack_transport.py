"""Coolant and junction temperatures in time on the bundled NVL72 rack's own
network (aidc_thermo.models.rack_transport): the steady limit equals the
steady rack solve's junction temperatures, energy closes over a workload
trace, and a power step reaches the junction with the wall's lag."""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.io.case import load
from aidc_thermo.kernels.network import transient as ktr
from aidc_thermo.models import rack
from aidc_thermo.models import rack_transport as rtm

CASE = Path(__file__).resolve().parents[1] / "cases" / "rack_nvl72.toml"

pytestmark = pytest.mark.slow  # the rack's steady solve compiles for several seconds


@pytest.fixture(scope="module")
def solved():
    s, p = rack.build(rack.parse(load(CASE)))
    return s, p, rack.compiled_solve(s)(p)


@pytest.fixture(scope="module")
def prepared(solved):
    return rtm.prepare(*solved)


def test_steady_limit_equals_the_steady_rack(solved, prepared):
    s, p, sol = solved
    rt = prepared
    n = 11
    pp = np.broadcast_to(rt.plate_rated_power, (n, rt.plate_rated_power.size))
    # start far from the answer; 10 backward Euler steps of 1000 s are hundreds of time constants each
    T0 = jnp.full((ktr.state_size(rt.network, rt.config),), 290.0)
    res = jax.jit(lambda pp: rtm.run(rt, pp, 1000.0, initial=T0))(pp)
    rel = np.abs(np.asarray(res.wall[-1]) - np.asarray(sol.junction)) / np.asarray(sol.junction)
    assert np.max(rel) < 1e-8
    rel_n = np.abs(np.asarray(res.node[-1]) - np.asarray(sol.temperatures.node)) / np.asarray(sol.temperatures.node)
    assert np.max(rel_n) < 1e-8


def test_energy_closes_and_a_power_step_lags_at_the_junction(prepared):
    rt = prepared
    dt, n = 1.0, 121
    acc = np.where(np.arange(n) * dt < 20.0, 0.4, 1.0)  # idle-ish, then full power from t = 20 s
    pp = rtm.plate_power_from_trace(rt, acc, 1.0)
    res = jax.jit(lambda pp: rtm.run(rt, pp, dt))(pp)
    E, r = np.asarray(res.stored_heat), np.asarray(res.heat_rate)
    err = (E[-1] - E[0]) - dt * np.sum(r[1:])
    assert abs(err) / (np.sum(pp[1:]) * dt) < 1e-8
    tj = np.asarray(res.wall)
    # steady at 40 % before the step, then a monotone rise that is not instantaneous
    np.testing.assert_allclose(tj[19], tj[0], rtol=1e-12)
    steady_full = rtm.run(rt, pp[-1:], dt).wall[0]
    gpu = int(np.argmax(rt.plate_rated_power))
    rise = float(steady_full[gpu] - tj[0, gpu])
    tau = float(rt.inputs.wall_capacity[gpu] / rt.inputs.wall_conductance[gpu])
    assert 0.0 < tj[20, gpu] - tj[0, gpu] < 0.3 * rise  # one step of dt ~ tau / 10 covers a small part
    k = 19 + int(round(tau / dt))  # about 1 - 1/e of the way one wall time constant after the step
    assert 0.45 * rise < tj[k, gpu] - tj[0, gpu] < 0.8 * rise
    assert np.all(np.diff(tj[19:, gpu]) >= -1e-9)
    assert tau > 2 * dt
    assert abs(tj[-1, gpu] - steady_full[gpu]) < 0.05 * rise  # 100 s is several tau later


def test_bad_settings_are_refused(solved):
    with pytest.raises(ValueError, match="plate_capacity"):
        rtm.prepare(*solved, plate_capacity=0.0)
    with pytest.raises(ValueError, match="qd_volume"):
        rtm.prepare(*solved, qd_volume=-1.0)
    s, p, sol = solved
    low = sol._replace(plate_resistance=sol.plate_resistance * 1e-3)
    with pytest.raises(ValueError, match="plate"):
        rtm.prepare(s, p, low)
    assert dataclasses.is_dataclass(rtm.prepare(*solved))


def test_grad_of_peak_junction_wrt_plate_capacity_matches_finite_differences(prepared):
    rt = prepared
    dt, n = 1.0, 41
    acc = np.where((np.arange(n) // 6) % 2 == 1, 1.0, 0.45)  # a 12 s square wave, from the steady low level
    pp = jnp.asarray(rtm.plate_power_from_trace(rt, acc, 1.0))

    def peak(capacity):
        inputs = dataclasses.replace(rt.inputs, wall_capacity=jnp.full_like(rt.inputs.wall_capacity, capacity))
        return jnp.max(rtm.run(dataclasses.replace(rt, inputs=inputs), pp, dt).wall)

    peak = jax.jit(peak)
    c0, h = 400.0, 0.01
    g = float(jax.grad(peak)(c0))
    fd = (float(peak(c0 + h)) - float(peak(c0 - h))) / (2 * h)
    assert g < 0  # more thermal mass, a lower peak under the swings
    assert abs(g - fd) < 1e-5 * abs(fd)
