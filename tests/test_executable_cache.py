"""The executable cache of thermo/compile_cache.py: whole compiled programs kept
on disk so that a warm run neither traces nor lowers its solvers.

In-process tests point the cache at a temporary folder directly (no change to
JAX's global settings); one child process checks the load in a fresh process
(where JAX's LAPACK table is empty until something lowers a linear-algebra
operation). The bundled unit cell run twice through the command line is slow."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo import compile_cache, progress

ROOT = Path(__file__).resolve().parents[1]


def _lu(a, b, n):
    import jax.scipy.linalg as jsl

    return jsl.lu_solve(jsl.lu_factor(a), b) * n


def _problem(size=4, dtype=np.float64):
    a = np.eye(size, dtype=dtype) * 3.0 + np.full((size, size), 0.25, dtype)
    return a, np.arange(1.0, size + 1.0, dtype=dtype)


@pytest.fixture
def exe_dir(tmp_path, monkeypatch):
    folder = tmp_path / compile_cache.EXECUTABLES
    monkeypatch.setattr(compile_cache, "_exec_dir", folder)
    return folder


def _run(fn, *args):
    """Call ``fn`` in a quiet progress session; (result, counts)."""
    with progress.session("quiet") as rep:
        out = np.asarray(fn(*args))
        return out, rep.counts()


def test_store_then_load_gives_the_same_bits(exe_dir):
    a, b = _problem()
    first, c1 = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a, b, 2)
    assert c1["executables_stored"] == 1 and c1["executables_from_cache"] == 0
    assert len(list(exe_dir.glob("*.bin"))) == 1
    second, c2 = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a, b, 2)  # a new wrapper: reads the disk
    assert c2["executables_from_cache"] == 1 and c2["executables_stored"] == 0
    assert first.tobytes() == second.tobytes()
    np.testing.assert_allclose(first, 2 * np.linalg.solve(a, b), rtol=1e-12)


def test_release_programs_drops_the_loaded_executables_and_the_next_call_loads_the_same_bits(exe_dir):
    a, b = _problem()
    fn = compile_cache.cached_jit(_lu, static_argnums=(2,))
    first, _ = _run(fn, a, b, 2)
    assert len(fn._loaded) == 1
    compile_cache.release_programs()
    assert fn._loaded == {}
    again, counts = _run(fn, a, b, 2)  # from the disk, not compiled again
    assert counts["executables_from_cache"] == 1 and counts["executables_stored"] == 0
    assert again.tobytes() == first.tobytes()


def test_static_argument_shape_dtype_and_source_change_miss(exe_dir, monkeypatch):
    a, b = _problem()
    _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a, b, 2)
    out3, c = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a, b, 3)  # another static value
    assert c["executables_stored"] == 1
    np.testing.assert_allclose(out3, 3 * np.linalg.solve(a, b), rtol=1e-12)
    a5, b5 = _problem(5)
    _, c = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a5, b5, 2)  # another shape
    assert c["executables_stored"] == 1
    a32, b32 = _problem(dtype=np.float32)
    _, c = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a32, b32, 2)  # another dtype
    assert c["executables_stored"] == 1
    monkeypatch.setattr(compile_cache, "_source_hash", "0" * 64)  # an edited module anywhere in the package
    _, c = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a, b, 2)
    assert c["executables_stored"] == 1 and c["executables_from_cache"] == 0
    assert len(list(exe_dir.glob("*.bin"))) == 5


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_corrupted_entry_is_rebuilt_with_a_note(exe_dir, caplog, damage):
    a, b = _problem()
    good, _ = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a, b, 2)
    (entry,) = exe_dir.glob("*.bin")
    data = entry.read_bytes()
    if damage == "garbage":
        entry.write_bytes(b"not a program")
    elif damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    else:
        entry.write_bytes(data[:-100] + bytes(x ^ 0xFF for x in data[-100:]))
    with caplog.at_level(logging.WARNING, logger="aidc_thermo.compile_cache"):
        again, c = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a, b, 2)
    assert "ignoring unreadable executable" in caplog.text and entry.name in caplog.text
    assert c["executables_stored"] == 1 and c["executables_from_cache"] == 0
    assert again.tobytes() == good.tobytes()
    _, c = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a, b, 2)  # the rebuilt entry loads
    assert c["executables_from_cache"] == 1


def test_off_is_plain_jit_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(compile_cache, "_exec_dir", None)
    a, b = _problem()
    out, c = _run(compile_cache.cached_jit(_lu, static_argnums=(2,)), a, b, 2)
    assert c["executables_stored"] == 0 and c["executables_from_cache"] == 0
    np.testing.assert_allclose(out, 2 * np.linalg.solve(a, b), rtol=1e-12)


_CHILD = """
import json, sys
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
from aidc_thermo import compile_cache, progress
folder, _ = compile_cache.configure(enabled=sys.argv[1] == "on")
import jax.scipy.linalg as jsl
def f(a, b):
    return jsl.lu_solve(jsl.lu_factor(a), b)
a = np.eye(6) * 3.0 + 0.25
b = np.arange(6.0)
with progress.session("quiet") as rep:
    x = np.asarray(compile_cache.cached_jit(f)(a, b))
    print(json.dumps({"x": x.tobytes().hex(), **rep.counts()}))
"""


def _child(state, cache):
    env = {**os.environ, "AIDC_THERMO_COMPILE_CACHE": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _CHILD, state], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two fresh processes, ~20 s
def test_a_fresh_process_loads_a_program_with_lapack_calls(tmp_path):
    """A program holding LAPACK custom calls (the multigrid's coarse LU) loaded
    in a process that has lowered nothing: it runs (no crash) and gives the
    same bits; ``off`` (the --no-compile-cache path) writes nothing."""
    off = _child("off", tmp_path / "off")
    assert off["executables_stored"] == 0 and not (tmp_path / "off").exists()
    first = _child("on", tmp_path / "cc")
    assert first["executables_stored"] == 1
    second = _child("on", tmp_path / "cc")
    assert second["executables_from_cache"] == 1 and second["executables_stored"] == 0
    assert first["x"] == second["x"] == off["x"]
    # the executable lost while JAX's own cache still holds the program: it is
    # compiled afresh (JAX's copy is not re-serialized) and the new entry loads
    shutil.rmtree(tmp_path / "cc" / compile_cache.EXECUTABLES)
    third = _child("on", tmp_path / "cc")
    assert third["executables_stored"] == 1 and third["programs_from_cache"] == 0
    fourth = _child("on", tmp_path / "cc")
    assert fourth["executables_from_cache"] == 1 and fourth["x"] == first["x"]


@pytest.mark.slow
def test_unit_cell_second_run_bit_identical(tmp_path):
    """``thermo run`` of the resolved unit cell (coarse mesh) twice on one cache
    folder: the second loads the solve (one program: flow, energy and the
    coupling, since the protocol) from the executable cache and writes
    the same summary and fields as the first and as a run without any cache."""
    import h5py

    text = (ROOT / "cases" / "coldplate_unit_cell.toml").read_text()
    text = text.replace("channel = 8", "channel = 4").replace("fin_height = 12", "fin_height = 6")
    text = text.replace("length = 32", "length = 8").replace("base = 4", "base = 2")
    case = tmp_path / "cell.toml"
    case.write_text(text)
    env = {**os.environ, "AIDC_THERMO_COMPILE_CACHE": str(tmp_path / "cc")}

    def run(name, *extra):
        out = tmp_path / name
        cmd = [sys.executable, "-m", "aidc_thermo", "run", str(case), "-o", str(out), "-q", *extra]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr
        summary = json.loads((out / "summary.json").read_text())
        timing = {k: v["value"] for k, v in summary.pop("timing").items()}
        with h5py.File(out / "results.h5") as h5:
            fields = {}
            h5.visititems(lambda n, o: fields.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        return summary, timing, fields

    plain = run("plain", "--no-compile-cache")
    assert not (tmp_path / "cc").exists()
    first, second = run("first"), run("second")
    assert first[1]["executables_stored"] >= 1 and first[1]["executables_from_cache"] == 0
    assert second[1]["executables_stored"] == 0
    assert second[1]["executables_from_cache"] == first[1]["executables_stored"]
    for got in (first, second):
        assert got[0] == plain[0]
        assert got[2].keys() == plain[2].keys()
        for name, value in plain[2].items():
            assert np.asarray(got[2][name]).tobytes() == np.asarray(value).tobytes(), name
