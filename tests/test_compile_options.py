"""XLA options of thermo's own programs (thermo/compile_options.py): which
are used, how they are turned off, and that they do not change an answer."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo import compile_cache, compile_options
from aidc_thermo.compile_options import CPU_OPTIONS, FINITE_VOLUME, KIND_OPTIONS, compiler_options

ROOT = Path(__file__).resolve().parents[1]


def _expected(flags: str) -> dict:
    return {k: v for k, v in CPU_OPTIONS.items() if k not in flags}


def test_this_xla_accepts_every_option(monkeypatch):
    # the options were measured with this JAX; one that XLA stops knowing is left out by the probe,
    # and this test says so instead of the speed-up vanishing unnoticed
    monkeypatch.delenv(compile_options.ENV, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    assert jax.default_backend() == "cpu"
    assert compiler_options() == CPU_OPTIONS
    for kind, options in KIND_OPTIONS.items():
        assert compiler_options(kind) == {**CPU_OPTIONS, **options}


def test_a_kind_adds_its_options_and_an_unknown_kind_is_refused(monkeypatch):
    monkeypatch.delenv(compile_options.ENV, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    # XLA_FLAGS wins for the kind's option too; the others stay
    assert compiler_options(FINITE_VOLUME) == _expected("xla_cpu_use_fusion_emitters")
    monkeypatch.setenv(compile_options.ENV, "off")
    assert compiler_options(FINITE_VOLUME) == {}
    with pytest.raises(ValueError, match="unknown kind of program 'finite-volume'"):
        compiler_options("finite-volume")
    with pytest.raises(ValueError, match="unknown kind"):
        compile_options.jit(jnp.sin, kind="no such kind")


def test_the_resolved_plate_sweep_and_calibration_compile_as_finite_volume_programs():
    # the model's programs, its sweep batches (thermo/sweep.py reads PROGRAM_KIND) and the calibration's
    # resolved solves: the kind is what the measured compile times in thermo/compile_options.py were taken with
    from aidc_thermo.models import calibrate, coldplate, compact

    assert coldplate.PROGRAM_KIND == FINITE_VOLUME
    assert not hasattr(compact, "PROGRAM_KIND")  # its programs compile slower and run slower that way
    flow_jit, energy_jit = coldplate.compiled_solvers()
    programs = (flow_jit, energy_jit, coldplate.compiled_solve(), calibrate.compiled_solve())
    programs += tuple(coldplate.compiled_helpers())
    assert all(p.kind == FINITE_VOLUME for p in programs)
    assert compact._compiled_solve().kind is None


def test_off_values_and_xla_flags_win(monkeypatch):
    for off in ("off", "0", "no", "false", "none", " OFF "):
        monkeypatch.setenv(compile_options.ENV, off)
        assert compiler_options() == {}
    monkeypatch.delenv(compile_options.ENV)
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    assert "xla_backend_optimization_level" not in compiler_options()
    assert compiler_options() == _expected("xla_backend_optimization_level")


def test_an_option_xla_does_not_know_is_left_out_not_an_error(monkeypatch):
    monkeypatch.delenv(compile_options.ENV, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setattr(compile_options, "CPU_OPTIONS", {"xla_no_such_option_anywhere": True, **CPU_OPTIONS})
    got = compiler_options()
    assert "xla_no_such_option_anywhere" not in got and got == CPU_OPTIONS
    f = compile_options.jit(lambda x: 2.0 * x)
    assert float(f(np.float64(1.5))) == 3.0


def test_jit_passes_the_options_at_a_top_level_call_and_none_when_off(monkeypatch):
    seen = []
    real = jax.jit

    def spy(fn, **kwargs):
        seen.append(kwargs.get("compiler_options"))
        return real(fn, **kwargs)

    monkeypatch.setattr(jax, "jit", spy)
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.delenv(compile_options.ENV, raising=False)
    f = compile_options.jit(jnp.sin, inline=False)
    assert seen == [None]  # wrapping asks XLA nothing (thermo sweep starts jax.distributed after it)
    f(np.float64(0.5))
    assert seen == [None, CPU_OPTIONS]
    f(np.float64(0.25))  # the same jit again
    assert seen == [None, CPU_OPTIONS]
    monkeypatch.setenv(compile_options.ENV, "off")
    assert float(f(np.float64(0.5))) == float(np.sin(0.5))  # looked up at each call: the plain jit
    assert seen == [None, CPU_OPTIONS]


def test_wrapping_a_program_starts_no_xla_backend():
    # thermo sweep calls jax.distributed.initialize after it has parsed the sweep (which wraps programs), and
    # JAX refuses that once anything has started the backend: a fresh process shows that wrapping does not
    import subprocess
    import sys

    code = (
        "import jax, jax.numpy as jnp\n"
        "from jax._src import xla_bridge\n"
        "from aidc_thermo import compile_cache\n"
        "from aidc_thermo.compile_options import jit\n"
        "compile_cache.configure(enabled=False)\n"
        "f = jit(jnp.sin)\n"
        "assert not xla_bridge.backends_are_initialized(), 'backend started'\n"
        "print(float(f(0.5)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != compile_options.ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert abs(float(out.stdout.split()[-1]) - np.sin(0.5)) < 1e-6  # float32: x64 is off there


def test_a_program_with_options_runs_inside_grad_vmap_jit_and_a_closure(monkeypatch):
    # JAX refuses compiler_options on a jit staged inside another transformation; thermo's programs are traced
    # inside others (the facility's report under jax.grad, the solves under the optimizer's Jacobian)
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.delenv(compile_options.ENV, raising=False)
    assert compiler_options() == CPU_OPTIONS
    f = compile_options.jit(lambda x, y: jnp.sin(x) * y)
    x = jnp.asarray(0.7, jnp.float64)
    assert float(f(x, 2.0)) == float(jnp.sin(x) * 2.0)
    assert np.isclose(float(jax.grad(f)(x, 2.0)), 2.0 * np.cos(0.7), rtol=1e-14)
    xs = jnp.linspace(0.0, 1.0, 5)
    np.testing.assert_allclose(jax.vmap(f, (0, None))(xs, 3.0), 3.0 * np.sin(np.asarray(xs)), rtol=1e-14)
    assert np.isclose(float(jax.jit(lambda x: f(x, 1.0) + 1.0)(x)), np.sin(0.7) + 1.0, rtol=1e-14)

    def closure(y):  # the argument of f is a constant, the tracer hides in the closure
        return f(jnp.asarray(0.5, jnp.float64), 1.0) * y + f(y, y)

    want = np.sin(0.5) + np.sin(1.2) + 1.2 * np.cos(1.2)
    assert np.isclose(float(jax.grad(closure)(jnp.asarray(1.2, jnp.float64))), want, rtol=1e-14)
    low = f.lower(x, 2.0).compile()
    assert float(low(x, 2.0)) == float(f(x, 2.0))


def test_a_nested_call_still_runs_when_the_top_level_test_is_unavailable(monkeypatch):
    # _top_level uses a private JAX check; a JAX without it counts every call as top level, and the
    # nested calls JAX then refuses (its "top-level" ValueError) must fall back to the plain jit
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.delenv(compile_options.ENV, raising=False)
    monkeypatch.setattr(compile_options, "_top_level", lambda: True)

    def closure(y):  # the program closes over the tracer y; its only argument is a constant
        return compile_options.jit(lambda x: jnp.cos(x) * y * y)(jnp.asarray(0.3, jnp.float64))

    assert np.isclose(float(jax.grad(closure)(jnp.asarray(1.1, jnp.float64))), 2.2 * np.cos(0.3), rtol=1e-14)
    assert np.isclose(float(jax.jit(closure)(jnp.asarray(1.1, jnp.float64))), 1.21 * np.cos(0.3), rtol=1e-14)

    def raises(x):
        raise ValueError("a user's own error")

    with pytest.raises(ValueError, match="a user's own error"):
        compile_options.jit(raises)(1.0)


def test_the_executable_cache_key_changes_with_the_options(monkeypatch):
    monkeypatch.delenv(compile_options.ENV, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    on = compile_cache._environment_key()

    def fn(x):
        return 2.0 * x

    leaves, tree = jax.tree_util.tree_flatten((np.float64(1.0),))
    keys = [compile_cache.CachedJit(fn, kind=kind).key("()", tree, leaves) for kind in (None, FINITE_VOLUME)]
    assert keys[0] != keys[1]  # the same function as another kind of program: another executable
    monkeypatch.setenv(compile_options.ENV, "off")
    assert compile_cache._environment_key() != on
    off = [compile_cache.CachedJit(fn, kind=kind).key("()", tree, leaves) for kind in (None, FINITE_VOLUME)]
    assert off[0] == off[1] and not set(off) & set(keys)


# the finite-volume kind compiles the solve once more with other options: ~15 s, in the slow suite
@pytest.mark.parametrize("kind", [None, pytest.param(FINITE_VOLUME, marks=pytest.mark.slow)])
def test_the_options_do_not_change_a_multigrid_conduction_solve(monkeypatch, kind):
    # a 24^3 block with a heated patch, the kernels' multigrid-preconditioned CG to 1e-10, compiled with and
    # without the options (of every program, and of the finite-volume programs): the same iterations and the
    # same field to round-off
    from aidc_thermo.kernels import conduction as cd
    from aidc_thermo.kernels import linsolve
    from aidc_thermo.kernels.fv.grid import uniform_grid

    grid = uniform_grid((24, 24, 24), (0.01, 0.01, 0.01), dtype=jnp.float64)
    k = jnp.full(grid.shape, 400.0).at[:, :, :8].set(5.0)
    q = jnp.zeros(grid.shape).at[8:16, 8:16, 2:4].set(1e8)
    faces = {name: cd.face_bc(grid, name) for name, _, _ in cd.FACES}
    faces["z_hi"] = cd.face_bc(grid, "z_hi", kind=cd.CONVECTIVE, h=5e4, value=300.0)
    bcs = cd.BoundaryConditions(**faces)
    cfg = linsolve.MultigridConfig(tol=1e-10, max_iterations=300)

    def solve(opts):
        f = jax.jit(lambda g, k, q, b: cd.solve(g, k, q, b, cfg), compiler_options=opts)
        T, info = f(grid, k, q, bcs)
        return np.asarray(T), int(info.iterations)

    monkeypatch.setenv("XLA_FLAGS", "")
    T_on, n_on = solve(compiler_options(kind))
    T_off, n_off = solve(None)
    assert n_on == n_off
    assert np.max(np.abs(T_on - T_off)) < 1e-9 * np.ptp(T_off)
    assert np.ptp(T_off) > 1.0  # a solve that heated something


def test_the_probe_is_not_counted_as_a_program_of_the_run(tmp_path, monkeypatch):
    # thermo run's program count is the case's own: the one-line program that tries the options compiles
    # inside the run's session but unrecorded, so the count is the same with the options off (compiled plus
    # found in JAX's persistent cache: a cache another test of this process turned on may hold the programs)
    import json

    from aidc_thermo import cli

    counts = []
    # the suite's own XLA_FLAGS name the level, so nothing would be probed: an option they do not name, at its
    # default value (the slab then compiles as quickly as the rest of the suite)
    monkeypatch.setattr(compile_options, "CPU_OPTIONS", {"xla_cpu_enable_fast_math": False})
    monkeypatch.delenv(compile_options.ENV, raising=False)
    for off in (False, True):
        if off:
            monkeypatch.setenv(compile_options.ENV, "off")
        compile_options._accepted.cache_clear()
        jax.clear_caches()
        out = tmp_path / f"slab-{off}"
        assert cli.main(["run", str(ROOT / "cases" / "slab.toml"), "-o", str(out), "-q", "--no-compile-cache"]) == 0
        timing = json.loads((out / "summary.json").read_text())["timing"]
        counts.append(timing["programs_compiled"]["value"] + timing["programs_from_cache"]["value"])
        assert compile_options._accepted.cache_info().currsize == (0 if off else 1)
    assert counts[0] == counts[1] > 0


@pytest.mark.slow  # two flow programs compiled: ~35 s on the shared 2-core machine
def test_the_finite_volume_options_do_not_change_a_flow_solve(monkeypatch):
    # an obstacle in a duct (tests/test_flow.py), the kernels' SIMPLE solve to 1e-9, compiled with the
    # finite-volume programs' options and with none: the same outer iterations and the same fields to round-off
    from aidc_thermo.kernels import flow
    from aidc_thermo.kernels.fv.grid import grid_from_faces

    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.delenv(compile_options.ENV, raising=False)
    assert "xla_cpu_use_fusion_emitters" in compiler_options(FINITE_VOLUME)
    f64 = jnp.float64
    y = 0.5 * (1 - np.cos(np.linspace(0.0, np.pi, 9)))
    grid = grid_from_faces(np.linspace(0.0, 3.0, 25), y, np.linspace(0.0, 1.0, 9), dtype=f64)
    solid = np.zeros((24, 8, 8), bool)
    solid[10:13, 2:5, 0:4] = True
    spec = flow.FlowSpec(bc=("inlet", "outlet", "wall", "wall", "wall", "wall"), tol=1e-9, pressure_rtol=1e-3)
    zero = jnp.zeros((), f64)
    bnd = flow.flow_boundary(grid, {"x-": jnp.stack([jnp.ones((), f64), zero, zero])})
    params = flow.FlowParams(rho=jnp.asarray(1.0, f64), mu=jnp.asarray(0.05, f64), dt=jnp.asarray(0.5, f64),
                             body_force=jnp.zeros((3,), f64))  # fmt: skip

    def solve(opts):
        f = jax.jit(flow.solve_flow, static_argnums=(4,), compiler_options=opts)
        st, info = f(grid, jnp.asarray(solid), params, bnd, spec)
        assert bool(info.converged)
        return [np.asarray(a) for a in (st.u, st.v, st.w, st.p)], int(info.iterations)

    on, n_on = solve(compiler_options(FINITE_VOLUME))
    off, n_off = solve(None)
    assert n_on == n_off > 10
    for a, b in zip(on, off, strict=True):
        assert np.max(np.abs(a - b)) < 1e-9 * np.max(np.abs(b))
    assert np.ptp(off[3]) > 1.0  # a pressure drop: the flow went through
