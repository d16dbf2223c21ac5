"""Progress on the terminal, compile / solve timing in summary.json, and a
``thermo check`` that starts no JAX and no CoolProp."""

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aidc_thermo import progress
from aidc_thermo.cli import main

ROOT = Path(__file__).resolve().parents[1]
SLAB = ROOT / "cases" / "slab.toml"
BUNDLED = sorted(p for p in (ROOT / "cases").glob("*.toml") if not p.name.startswith("sweep_"))  # sweeps: docs/sweep.md


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _run_on_a_pty(args: list[str], timeout: float = 240.0) -> tuple[int, str]:
    """Run ``python -m aidc_thermo ARGS`` with stdin, stdout and stderr on a
    pseudo-terminal; returns (exit code, everything it wrote)."""
    leader, follower = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aidc_thermo", *args],
        cwd=ROOT,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_run_on_a_terminal_shows_a_live_progress_line_and_the_timing(tmp_path):
    code, text = _run_on_a_pty(["run", str(SLAB), "-o", str(tmp_path / "out")])
    assert code == 0, text
    assert "\r" in text.replace("\r\n", "\n"), "no live line (carriage-return redraw) on a terminal"
    for phase in ("parse", "build", "solve", "write"):
        assert phase in text, phase
    assert "time: compile" in text and "total" in text
    assert "results written to" in text
    timing = json.loads((tmp_path / "out" / "summary.json").read_text())["timing"]
    assert timing["compile_s"]["value"] > 0  # a fresh process compiles the slab's conduction solve
    assert timing["total_s"]["value"] > timing["compile_s"]["value"]


def test_quiet_prints_no_progress_even_on_a_terminal(tmp_path, monkeypatch, capsys):
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["run", str(SLAB), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert term.getvalue() == ""
    out = capsys.readouterr().out
    assert "results written to" in out and "time:" not in out and "\r" not in out
    timing = json.loads((tmp_path / "out" / "summary.json").read_text())["timing"]
    assert timing["total_s"]["value"] > 0  # recorded even when quiet


def test_plain_lines_off_a_terminal_and_timing_in_summary(tmp_path, capsys):
    assert main(["run", str(SLAB), "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert "\r" not in err, "a redrawn line where the output is not a terminal"
    assert "time: compile" in err and "time:" not in captured.out  # stdout stays for the results
    assert len(err.splitlines()) < 20, "a flood of progress lines"

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    timing = summary["timing"]
    for key in ("compile_s", "solve_s", "total_s", "parse_s", "build_s", "write_s"):
        entry = timing[key]
        assert set(entry) == {"value", "unit", "description"} and entry["unit"] == "s", key
        assert entry["value"] >= 0 and entry["description"], key
    parts = sum(v["value"] for k, v in timing.items() if k != "total_s")
    # compile plus each phase's own time make up the whole command (rounding, gaps between phases)
    assert parts == pytest.approx(timing["total_s"]["value"], abs=0.05)
    # the headline numbers are not mixed with timings
    assert all(set(v) == {"value", "unit", "description"} for k, v in summary.items() if k != "timing")


def test_compile_time_comes_from_jax_and_is_not_counted_twice():
    import jax
    import jax.numpy as jnp

    def f(x):
        return jnp.sin(x) @ jnp.cos(x).T

    rep = progress.Reporter(io.StringIO(), "quiet")
    with rep.listening():
        rep.phase("solve")
        x = jnp.ones((64, 64)) * time.time() % 1.0
        jax.jit(f)(x).block_until_ready()  # compiles
        first = rep.timing()["compile_s"]
        jax.jit(f)(x).block_until_ready()  # jit's cache: no new compile
        second = rep.timing()["compile_s"]
        rep.close()
    assert first > 0 and second == pytest.approx(first)
    t = rep.timing()
    assert t["compile_s"] + t["solve_s"] == pytest.approx(t["total_s"], abs=1e-3)


def test_union_of_nested_compile_spans():
    spans = [(0.0, 10.0), (1.0, 2.0), (2.5, 4.0), (12.0, 13.0)]  # tracing nests inner compiles
    assert progress._union_length(spans) == pytest.approx(11.0)
    assert progress._union_length(spans, 9.0, 12.5) == pytest.approx(1.5)


def test_eta_from_the_residual_rate_and_from_the_steps_left():
    rep = progress.Reporter(io.StringIO(), "quiet")
    rep.phase("solve")
    for i, r in enumerate((1e-1, 1e-2), start=1):
        rep.step("coupling", i, 20, residual=r, tolerance=1e-4)
    loop = rep._loops["coupling"]
    loop["times"][:] = [100.0, 103.0]  # 3 s per step
    # 1e-2 -> 1e-4 at a factor 10 per step: two more steps
    assert rep.eta("coupling", now=103.0) == pytest.approx(6.0)
    for i in (1, 2, 3):
        rep.step("points", i, 5)
    rep._loops["points"]["times"][:] = [0.0, 10.0, 12.0]
    assert rep.eta("points", now=13.0) == pytest.approx(2 * 2.0 - 1.0)
    rep.step("points", 1, 5)  # the loop starts again (an inner loop of the next outer step)
    assert rep.eta("points") is None
    assert "coupling 2/20, residual 1.00e-02 (tolerance 1e-04)" in rep.status_line(now=103.0)
    rep.step("coupling", 3, 20, residual=5e-5, tolerance=1e-4)  # converged: nothing left to estimate
    assert rep.eta("coupling") is None
    rep.phase("write")  # a finished loop leaves the live line; an unfinished one stays
    assert "coupling" not in rep.status_line() and "points 1/5" in rep.status_line()


def test_steps_and_phases_outside_a_session_print_nothing(capsys):
    progress.phase("solve")
    progress.step("coupling", 1, 3, residual=0.5)
    assert capsys.readouterr() == ("", "")


def test_check_starts_no_jax_and_no_coolprop():
    """``thermo check`` on every bundled case, in one fresh interpreter: JAX,
    CoolProp, scipy.optimize and matplotlib are never imported."""
    code = (
        "import sys\n"
        "from thermo.cli import main\n"
        f"cases = {[str(c) for c in BUNDLED]!r}\n"
        "assert all(main(['check', c]) == 0 for c in cases)\n"
        "heavy = [m for m in ('jax', 'jaxlib', 'CoolProp', 'scipy.optimize', 'matplotlib') if m in sys.modules]\n"
        "heavy += [m for m in sys.modules if m == 'kernels' or m.endswith('.kernels')]  # also after a rename\n"
        "print('HEAVY', heavy)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout, res.stdout


def test_constants_repeated_for_a_light_check_agree_with_the_kernels():
    from aidc_thermo.kernels import hx, network, plant
    from aidc_thermo.models import facility, rack

    assert rack.KV_PER_CV == network.kv_from_cv(1.0)
    assert facility.DEVICE_KINDS == plant.DEVICE_KINDS
    assert facility.ARRANGEMENTS == hx.ARRANGEMENTS


def test_registry_imports_each_model_by_its_case_type():
    from aidc_thermo.registry import CASE_TYPES

    assert len(CASE_TYPES) == 7
    for kind in CASE_TYPES:
        assert CASE_TYPES[kind].CASE_TYPE == kind
