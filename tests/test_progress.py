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


def _run_on_a_pty(args: list[str], timeout: float = 240.0, **env_extra) -> tuple[int, str]:
    """Run ``python -m aidc_thermo ARGS`` with stdin, stdout and stderr on a
    pseudo-terminal; returns (exit code, everything it wrote)."""
    leader, follower = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120", **env_extra)
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
    # the compile cache on by default, in $XDG_CACHE_HOME/aidc-thermo/jax
    env = {"AIDC_THERMO_COMPILE_CACHE": "", "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    code, text = _run_on_a_pty(["run", str(SLAB), "-o", str(tmp_path / "out")], **env)
    assert code == 0, text
    cached = list((tmp_path / "xdg" / "aidc-thermo" / "jax").iterdir())
    assert cached, "the command wrote nothing into the default compile cache folder"
    assert "\r" in text.replace("\r\n", "\n"), "no live line (carriage-return redraw) on a terminal"
    for phase in ("parse", "build", "solve", "write"):
        assert phase in text, phase
    assert "time: compile" in text and "total" in text
    assert "results written to" in text
    timing = json.loads((tmp_path / "out" / "summary.json").read_text())["timing"]
    assert timing["compile_s"]["value"] > 0  # a fresh process compiles the slab's conduction solve
    assert timing["total_s"]["value"] > timing["compile_s"]["value"]
    # an empty cache: every program compiled, each written to the cache
    assert timing["programs_compiled"]["value"] > 0 and timing["programs_from_cache"]["value"] == 0
    assert len(cached) >= timing["programs_compiled"]["value"]
    assert f"({timing['programs_compiled']['value']} programs, 0 from the compile cache)" in text


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
    for key in ("programs_compiled", "programs_from_cache"):  # counts, not seconds
        assert timing[key]["unit"] == "" and isinstance(timing[key]["value"], int), key
    parts = sum(v["value"] for k, v in timing.items() if k != "total_s" and v["unit"] == "s")
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
    CoolProp, scipy.optimize and matplotlib are never imported. The exceptions,
    stated in the README: ``transient_hall`` cases, whose parse rates the plant
    (exchanger and dry-cooler conductances) with the JAX kernels, and cases that
    name a cold-plate case, whose curves check solves when the curve cache does
    not hold them (docs/coldplate-curves.md)."""
    import re

    names_a_plate = re.compile(r'^\s*(?:accelerator_plate_)?case\s*=\s*"[^"]*coldplate[^"]*\.toml"', re.M)
    light = [c for c in BUNDLED if not c.name.startswith("hall_") and not names_a_plate.search(c.read_text())]
    assert len(light) < len(BUNDLED) - 1  # the exceptions are still needed, or this filter can go
    code = (
        "import sys\n"
        "from thermo.cli import main\n"
        f"cases = {[str(c) for c in light]!r}\n"
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


_CACHED_JIT = """
import json, sys
from aidc_thermo import compile_cache, progress
folder, note = compile_cache.configure(enabled=sys.argv[1] == "on")
import jax, jax.numpy as jnp
rep = progress.Reporter(None, "quiet")
with rep.listening():
    jax.block_until_ready(jax.jit(lambda x: jnp.cumsum(jnp.sin(x) * 2.0))(jnp.arange(7.0)))
print(json.dumps({**rep.counts(), "folder": str(folder), "note": note}))
"""


def _cached_jit(state: str, **env) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    proc = subprocess.run(
        [sys.executable, "-c", _CACHED_JIT, state], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_compile_cache_is_read_back_and_can_be_turned_off(tmp_path):
    from aidc_thermo import compile_cache

    cache = tmp_path / "cache"
    first = _cached_jit("on", AIDC_THERMO_COMPILE_CACHE=str(cache))
    assert first["folder"] == str(cache) and first["programs_compiled"] >= 1 and first["programs_from_cache"] == 0
    entries = sorted(p.name for p in cache.iterdir())
    assert entries
    # a second process loads the same program instead of compiling it
    second = _cached_jit("on", AIDC_THERMO_COMPILE_CACHE=str(cache))
    assert second["programs_compiled"] == 0 and second["programs_from_cache"] == first["programs_compiled"]
    # off by the flag (enabled=False) or by the variable: nothing read, nothing written
    for state, value in (("off", str(cache)), ("on", "off"), ("on", "0")):
        got = _cached_jit(state, AIDC_THERMO_COMPILE_CACHE=value)
        assert got["folder"] == "None" and got["programs_from_cache"] == 0 and got["programs_compiled"] >= 1
    assert sorted(p.name for p in cache.iterdir()) == entries
    # where it goes without the variable; an unusable folder is a note, not a failure
    assert compile_cache.cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/aidc-thermo/jax")
    assert compile_cache.cache_dir({}) == Path("~/.cache/aidc-thermo/jax").expanduser()
    assert compile_cache.cache_dir({"AIDC_THERMO_COMPILE_CACHE": "Off"}) is None
    blocker = tmp_path / "file"
    blocker.write_text("")
    got = _cached_jit("on", AIDC_THERMO_COMPILE_CACHE=str(blocker / "sub"))
    assert got["folder"] == "None" and "compile cache off: cannot create" in got["note"]


_TOGGLED = """
import json, sys
from pathlib import Path
from aidc_thermo import compile_cache
import jax, jax.numpy as jnp
folder = Path(sys.argv[1])
def entries():
    return len(list(folder.glob("jit_*"))) if folder.exists() else 0
seen = []
compile_cache.configure(enabled=False)
jax.block_until_ready(jax.jit(lambda x: x * 3.0 + 1.0)(jnp.arange(5.0)))  # JAX decides here
seen.append(entries())
compile_cache.configure(enabled=True, environ={"AIDC_THERMO_COMPILE_CACHE": str(folder)})
jax.block_until_ready(jax.jit(lambda x: jnp.cumsum(jnp.cos(x)))(jnp.arange(6.0)))
seen.append(entries())
compile_cache.configure(enabled=False)
jax.block_until_ready(jax.jit(lambda x: jnp.tanh(x) - 2.0)(jnp.arange(7.0)))
seen.append(entries())
# JAX's variable: JAX's own thresholds come back (this child's environment sets its minimum compile time to 0,
# so the tiny program below is kept; the minimum size goes back from thermo's -1 to JAX's default)
compile_cache.configure(enabled=True, environ={"JAX_COMPILATION_CACHE_DIR": str(folder)})
jax.block_until_ready(jax.jit(lambda x: jnp.exp(x) / 5.0)(jnp.arange(8.0)))
seen.append(entries())
c = jax.config
seen.append([c.jax_persistent_cache_min_compile_time_secs, c.jax_persistent_cache_min_entry_size_bytes])
print(json.dumps(seen))
"""


def test_compile_cache_follows_configure_called_again_after_programs_compiled(tmp_path):
    """JAX decides at its first compile whether it uses the persistent cache;
    ``configure`` called later in the same process (cache on, off, on through
    JAX's own variable) must still take effect, not be silently ignored."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", None)
    proc = subprocess.run(
        [sys.executable, "-c", _TOGGLED, str(tmp_path / "cache")], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # off: nothing written; on: the next program is written; off again: not; on (JAX's variable): written
    assert seen[0] == 0 and seen[1] >= 1 and seen[2] == seen[1] and seen[3] > seen[2], seen
    # ... with JAX's thresholds as this environment set them, not thermo's (0 s, -1 bytes: keep everything)
    assert seen[4] == [0.0, 0], seen


def test_no_compile_cache_flag_on_every_solving_command():
    from aidc_thermo.cli import build_parser

    parser = build_parser()
    for command in ("run", "optimize", "calibrate"):
        assert parser.parse_args([command, "x.toml", "--no-compile-cache"]).no_compile_cache
        assert not parser.parse_args([command, "x.toml"]).no_compile_cache
