"""Transient solves: steps per second and simulated time / wall time.

* ``hall``: the bundled hall (cases/hall_training_transient.toml: 8 NVL72-class
  racks, 129 lumped nodes, PI fan control) through a one-hour trace at 0.1 s
  steps (the case's 12-minute trace stretched: the job stops at 8 min, the rest
  idles), one ``jit(solve)``;
* ``hall_day``: the same hall through a day at 1 s steps (86,400 steps), the aim
  "a day of 1 s steps for a hall in under a minute";
* ``field``: a package-stack-like layered block (56 x 56 mm: 0.78 mm silicon
  die layer heated from below under the die, 0.1 mm indium TIM, 3 mm copper lid,
  3 mm copper cold-plate base cooled on top at h = 20 kW/m^2/K) at 64^3 cells,
  ``kernels/fv/transient.integrate`` with BDF2 and a square-wave power trace:
  10 steps of 0.05 s, time per step;
* ``rack``: the bundled NVL72 rack (cases/rack_nvl72.toml: 288 edges, 245
  nodes, 126 cold plates) through an hour at 1 s steps, coolant transport with
  delay and mixing on its own network (``models/rack_transport.py``: 4 cells
  per edge, a lumped wall per plate; 1,523 states, the step matrix inverted
  once per trace, one dense matrix-vector product per step), driven by the hall case's trace (the
  training wave, checkpoint and stop, stretched to the hour);
* ``plate``: the bundled compact GPU cold plate (cases/compact_gpu_coldplate.toml:
  48 x 48 columns, 5 stack layers, fin and coolant; 16,128 unknowns) through
  the hall case's compute/communication wave (1000 W / 450 W, 6 s, 70 %
  compute, trapezoid 0.5 s ramps) for one minute at 0.05 s steps,
  ``kernels/fv/porous.integrate_energy`` with BDF2 from the steady state at
  450 W (silicon 1.66, TIM 2.0, copper 3.45 MJ/m^3/K; PG25 at the inlet);
* ``hall_vmap``: 1,000 scenarios of the bundled hall (supply setpoints and PI
  gains) in one ``jit(vmap(solve))`` over a 20 s trace at 0.25 s (80 steps).

Compilation (``jit(...).lower(...).compile()``) is timed apart from the solve.
Every answer is checked before its time is reported (energy closure, every
step's linear solve converged).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.io.case import Table, load
from aidc_thermo.io.traces import read_trace
from aidc_thermo.kernels.fv import conduction as cd
from aidc_thermo.kernels.fv import porous
from aidc_thermo.kernels.fv import transient as ftr
from aidc_thermo.kernels.fv.grid import Grid
from aidc_thermo.kernels.solvers import linsolve
from aidc_thermo.models import compact, rack, rack_transport, transient
from benchmarks.harness import Record, timeit

CASES = Path(__file__).resolve().parents[1] / "cases"


def _hall(tmp: Path, duration: str, step: str):
    text = (CASES / "hall_training_transient.toml").read_text()
    text = text.replace('step = "0.25 s"', f'step = "{step}"')
    text = text.replace('duration = "12 min"', f'duration = "{duration}"')
    path = tmp / "hall.toml"
    path.write_text(text)
    return transient.build(transient.parse(load(path)))


def _compiled(fn, *args, static_argnums=()):
    t0 = time.perf_counter()
    exe = jax.jit(fn, static_argnums=static_argnums).lower(*args).compile()
    return exe, time.perf_counter() - t0


def _step_metrics(steps: int, dt: float, t_compile: float, t_solve: float, spread: float, scenarios: int = 1):
    """The timing fields every record shares (steps/s and simulated / wall count every scenario's steps)."""
    return {
        "steps": steps,
        "dt_s": dt,
        "simulated_s": steps * dt,
        "compile_s": t_compile,
        "solve_s": t_solve,
        "solve_spread_s": spread,
        "steps_per_s": scenarios * steps / t_solve,
        "simulated_per_wall": scenarios * steps * dt / t_solve,
    }


def _hall_record(name, s, p, repeats):
    exe, t_compile = _compiled(lambda p: transient.solve(s, p), p)
    t, spread, sol = timeit(exe, p, repeats=repeats)
    transient.check(s, p, sol)  # finite, energy closes to 1e-8, nothing below the ambient
    stored, net = (float(x) for x in transient.energy_balance(p, sol))
    steps = s.levels - 1
    return Record(
        "transient",
        name,
        "float64",
        metrics={
            "nodes": s.nodes,
            **_step_metrics(steps, float(p.dt), t_compile, t, spread),
        },
        check={
            "energy_residual_J": abs(stored - net),
            "T_junction_max_degC": float(np.asarray(sol.T).max()) - 273.15,
        },
    )


def _layered_block(n: int, dtype):
    """Die / TIM / lid / base on a uniform lateral grid and graded layers (n cells each way)."""
    size = 0.056
    layers = ((0.78e-3, 148.0, 1.66e6), (0.1e-3, 86.0, 1.66e6), (3e-3, 390.0, 3.45e6), (3e-3, 390.0, 3.45e6))
    counts = np.maximum(1, np.round(np.array([0.2, 0.1, 0.35, 0.35]) * n).astype(int))
    counts[-1] = n - counts[:-1].sum()
    zf = [0.0]
    k_z, c_z = [], []
    for (t, k, rc), m in zip(layers, counts, strict=True):
        zf.extend(zf[-1] + t * np.arange(1, m + 1) / m)
        k_z += [k] * m
        c_z += [rc] * m
    xf = np.linspace(0.0, size, n + 1)
    dx = jnp.asarray(np.diff(xf), dtype)
    grid = Grid(dx, dx, jnp.asarray(np.diff(np.array(zf)), dtype), jnp.zeros(3, dtype))
    shape = (n, n, n)
    k = jnp.broadcast_to(jnp.asarray(k_z, dtype), shape)
    rho_c = jnp.broadcast_to(jnp.asarray(c_z, dtype), shape)
    xc = 0.5 * (xf[1:] + xf[:-1])
    die = (np.abs(xc - size / 2) < 0.013)[:, None] & (np.abs(xc - size / 2) < 0.0165)[None, :]
    q = np.zeros(shape)
    q[:, :, 0] = np.where(die, 700.0 / (die.sum() * (size / n) ** 2 * (zf[1] - zf[0])), 0.0)
    faces = {name: cd.face_bc(grid, name, dtype=dtype) for name, _, _ in cd.FACES}
    faces["z_hi"] = cd.face_bc(grid, "z_hi", cd.CONVECTIVE, h=2e4, value=30.0, dtype=dtype)
    return grid, k, rho_c, jnp.asarray(q, dtype), cd.BoundaryConditions(**faces)


def _field_record(n: int, steps: int, repeats: int):
    dtype = jnp.float64
    grid, k, rho_c, q, bcs = _layered_block(n, dtype)
    dt = 0.05
    t = np.arange(steps + 1) * dt
    scale = jnp.asarray(np.where(np.mod(t, 1.0) < 0.5, 1.0, 0.45), dtype)  # a 1 s compute/communication wave
    T0 = jnp.full((n, n, n), 30.0, dtype)
    cfg = ftr.TimeConfig("bdf2", linsolve.MultigridConfig(tol=1e-8, max_iterations=100))

    def run(T0, scale):
        return ftr.integrate(grid, k, rho_c, q, bcs, T0, dt, scale, cfg)

    exe, t_compile = _compiled(run, T0, scale)
    t_solve, spread, (T_end, peak, info) = timeit(exe, T0, scale, repeats=repeats)
    assert bool(info.converged), "a step's linear solve did not converge"
    assert float(peak[-1]) > 30.0 and bool(jnp.all(jnp.isfinite(T_end)))
    return Record(
        "transient",
        f"field {n}^3",
        "float64",
        metrics={
            "cells": n**3,
            **_step_metrics(steps, dt, t_compile, t_solve, spread),
            "step_s": t_solve / steps,
            "cg_iterations_max": int(info.iterations),
        },
        check={"T_max_end_degC": float(peak[-1])},
    )


_RHO_C = {"silicon": 1.66e6, "tim": 2.0e6, "copper": 3.45e6}  # J/m^3/K


def _plate_record(duration: float, repeats: int):
    case = compact.parse(load(CASES / "compact_gpu_coldplate.toml"))
    static, params = compact.build(case, curves=False)
    grid, layer, stack, bc, rho_cp = compact.kernel_inputs(static, params)
    dtype = static.dtype
    flow = jax.jit(porous.solve_flow)(grid, layer, bc, jnp.asarray(params.flow, dtype))
    plenum = np.asarray(static.plenum, bool)
    phi = float(params.channel_width / (params.channel_width + params.fin_thickness))
    stack_c = np.stack([np.full(static.shape, _RHO_C[layer_.material]) for layer_ in case.layers], -1)
    cap = porous.HeatCapacity(
        jnp.asarray(stack_c, dtype),
        jnp.asarray(np.where(plenum, 0.0, (1 - phi) * _RHO_C["copper"]), dtype),
        jnp.where(jnp.asarray(plenum), 1.0, phi) * rho_cp,
    )
    dt = 0.05
    t = np.arange(int(round(duration / dt)) + 1) * dt
    wave = np.interp(np.mod(t, 6.0), [0.0, 0.5, 4.2, 4.7, 6.0], [0.45, 1.0, 1.0, 0.45, 0.45])
    scale = jnp.asarray(wave, dtype)
    t_in = jnp.asarray(params.inlet_temperature, dtype)
    low = dataclasses.replace(stack, q=stack.q * 0.45)
    steady = jax.jit(porous.solve_energy)
    start = steady(grid, layer, low, flow, rho_cp, t_in)
    full = float(porous.junction_temperature(grid, stack, steady(grid, layer, stack, flow, rho_cp, t_in)).max())

    def observe(th, s):
        return porous.junction_temperature(grid, dataclasses.replace(stack, q=s * stack.q), th).max(), (
            th.heat_in - th.heat_out, porous.stored_heat(grid, layer, cap, th))

    def run(scale):
        return porous.integrate_energy(grid, layer, stack, flow, rho_cp, cap, start, dt, scale, t_in, observe=observe)

    exe, t_compile = _compiled(run, scale)
    t_solve, spread, (_, (tj, (net, e)), info) = timeit(exe, scale, repeats=repeats)
    assert bool(info.converged), "a step's linear solve did not converge"
    net, e, tj = np.asarray(net), np.asarray(e), np.asarray(tj)
    # BDF2's own balance: 1.5 E_n+1 - 2 E_n + 0.5 E_n-1 = dt (in - out)_n+1 (the first step backward Euler)
    res = np.concatenate([[e[1] - e[0] - dt * net[1]], 1.5 * e[2:] - 2 * e[1:-1] + 0.5 * e[:-2] - dt * net[2:]])
    heat_in = float(jnp.sum(scale[1:]) * jnp.sum(stack.q * grid.dx[:, None] * grid.dy[None, :])) * dt
    residual = float(np.abs(res).sum()) / heat_in
    assert residual < 1e-8, f"energy does not close: {residual:.3g}"
    # no junction above its steady temperature at full power (the trace never exceeds it)
    assert float(tj.max()) < full + 1e-6, (float(tj.max()), full)
    steps = t.size - 1
    return Record(
        "transient",
        f"compact GPU plate {duration:g} s @ {dt:g} s",
        "float64",
        metrics={
            "unknowns": int(np.prod(static.shape)) * (len(case.layers) + 2),
            **_step_metrics(steps, dt, t_compile, t_solve, spread),
            "bicgstab_iterations_max": int(info.iterations),
        },
        check={
            "energy_residual_rel": residual,
            "T_junction_max_degC": float(tj.max()) - 273.15,
            "T_junction_steady_full_power_degC": full - 273.15,
            "T_junction_ripple_K": float(tj[len(tj) // 2 :].max() - tj[len(tj) // 2 :].min()),
        },
    )


def _vmap_record(s, p, scenarios: int, repeats: int):
    rng = np.random.default_rng(0)
    batch = jax.tree_util.tree_map(lambda x: np.broadcast_to(x, (scenarios, *np.shape(x))).copy(), p)
    batch = batch._replace(
        t_set=p.t_set + rng.uniform(-2.0, 2.0, scenarios),
        kp=p.kp * rng.uniform(0.5, 2.0, scenarios),
        ki=p.ki * rng.uniform(0.5, 2.0, scenarios),
    )
    exe, t_compile = _compiled(jax.vmap(lambda p: transient.solve(s, p)), batch)
    t, spread, sol = timeit(exe, batch, repeats=repeats)
    stored, net = (np.asarray(x) for x in transient.energy_balance(batch, sol))
    q_in = np.sum(np.asarray(sol.q_in)[:, 1:], axis=1) * float(p.dt)
    assert np.all(np.abs(stored - net) < 1e-8 * q_in), "energy does not close in a scenario"
    steps = s.levels - 1
    return Record(
        "transient",
        f"hall x{scenarios} vmap",
        "float64",
        metrics={
            "nodes": s.nodes,
            "scenarios": scenarios,
            **_step_metrics(steps, float(p.dt), t_compile, t, spread, scenarios),
            "scenario_s": t / scenarios,
        },
        check={"energy_residual_max_rel": float(np.max(np.abs(stored - net) / q_in))},
    )


def _rack_record(duration: float, repeats: int):
    s, p = rack.build(rack.parse(load(CASES / "rack_nvl72.toml")))
    sol = rack.compiled_solve(s)(p)
    rt = rack_transport.prepare(s, p, sol)
    hall = load(CASES / "hall_training_transient.toml")
    trace = read_trace(Table(hall.data, hall.path).table("trace"), hall.directory)
    dt = 1.0
    t = np.arange(int(round(duration / dt)) + 1) * dt
    acc = np.interp(t * (trace.times[-1] / duration), trace.times, trace.power[0])  # stretched to the duration
    pp = jnp.asarray(rack_transport.plate_power_from_trace(rt, acc, 1000.0))  # the wave's high power is 1000 W

    def run(pp):
        res = rack_transport.run(rt, pp, dt)
        return res.wall, res.stored_heat, res.heat_rate

    exe, t_compile = _compiled(run, pp)
    t_solve, spread, (wall, stored, rate) = timeit(exe, pp, repeats=repeats)
    stored, rate = np.asarray(stored), np.asarray(rate)
    heat_in = float(np.sum(np.asarray(pp)[1:])) * dt
    residual = abs((stored[-1] - stored[0]) - dt * np.sum(rate[1:])) / heat_in
    assert residual < 1e-8, f"energy does not close: {residual:.3g}"
    assert bool(jnp.all(jnp.isfinite(wall)))
    steps = t.size - 1
    return Record(
        "transient",
        (
            f"rack NVL72 network {duration / 3600:g} h @ 1 s"
            if duration >= 3600
            else f"rack NVL72 network {duration / 60:g} min @ 1 s"
        ),
        "float64",
        metrics={
            "states": ktr_state_size(rt),
            "plates": len(rt.plate_edges),
            **_step_metrics(steps, dt, t_compile, t_solve, spread),
        },
        check={
            "energy_residual_rel": residual,
            "T_junction_max_degC": float(jnp.max(wall)) - 273.15,
            "T_junction_steady_rated_max_degC": float(np.max(rt.steady_junction)) - 273.15,
        },
    )


def ktr_state_size(rt) -> int:
    from aidc_thermo.kernels.network import transient as ktr

    return ktr.state_size(rt.network, rt.config)


def run(quick: bool = False) -> list[Record]:
    import tempfile

    records = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        s, p = _hall(tmp, "5 min" if quick else "1 h", "0.1 s")
        records.append(_hall_record("hall 1 h @ 0.1 s" if not quick else "hall 5 min @ 0.1 s", s, p, 1 if quick else 3))
        if not quick:
            s, p = _hall(tmp, "24 h", "1 s")
            records.append(_hall_record("hall 24 h @ 1 s", s, p, 1))
        records.append(_field_record(16 if quick else 64, 5 if quick else 10, 1))
        records.append(_rack_record(300.0 if quick else 3600.0, 1 if quick else 3))
        records.append(_plate_record(6.0 if quick else 60.0, 1 if quick else 3))
        s, p = _hall(tmp, "20 s", "0.25 s")
        records.append(_vmap_record(s, p, 8 if quick else 1000, 1))
    return records
