"""``thermo sweep`` and the batchable protocol of compact_coldplate: the
batched solve equals the per-design loop; a sweep sharded over 4 host devices
equals the unsharded one and its chunks really are sharded; two processes
joined by jax.distributed give the same table as one; SIGKILL at random
moments then restarts give every design once and the uninterrupted table; a
non-converging design is kept and marked; a sweep of many buckets keeps one
compiled program alive at a time; the parameters plot leaves out (and names)
the parameters held at one value; bad sweep files exit 2 naming the
file and the key; a changed sweep is refused for resumption."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.case import CaseFile
from aidc_thermo.models import compact
from aidc_thermo.sweep import read_table

ROOT = Path(__file__).resolve().parents[1]

BASE = """
[case]
type = "compact_coldplate"
name = "tiny end-fed plate"
[plate]
size = ["40 mm", "30 mm"]
cells = [6, 4]
layout = "end_fed"
plenum_length = "3 mm"
[fins]
type = "straight"
channel_width = "0.3 mm"
fin_thickness = "0.2 mm"
height = "3 mm"
material = "copper"
[[layers]]
name = "base"
material = "copper"
thickness = "2 mm"
[[heat]]
name = "die"
rect = ["10 mm", "10 mm", "30 mm", "20 mm"]
power = "300 W"
[coolant]
fluid = "water"
[operating]
inlet_temperature = "30 degC"
flow = "1 L/min"
flow_range = ["0.5 L/min", "2 L/min"]
curve_points = 2
[solver]
max_iterations = 300
[output]
plots = false
"""

SWEEP = """
[sweep]
case = "base.toml"
outputs = ["pressure_drop", "R_max", "T_junction_max"]
chunk_size = {chunk}
[[parameter]]
key = "fins.channel_width"
range = ["0.15 mm", "0.5 mm"]
points = 4
[[parameter]]
key = "operating.flow"
values = ["0.5 L/min", "2 L/min"]
[[parameter]]
key = "heat[0].power"
range = ["100 W", "400 W"]
sample = true
[sampling]
method = "latin_hypercube"
samples = 2
seed = 3
[[constraint]]
output = "T_junction_max"
max = "60 degC"
"""  # 4 x 2 x 2 = 16 designs


def _write(folder: Path, sweep: str = SWEEP, chunk: int = 4, base: str = BASE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.toml").write_text(base)
    path = folder / "sweep.toml"
    path.write_text(sweep.replace("{chunk}", str(chunk)))
    return path


def _env(**extra):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _cli(args, **env):
    return subprocess.run(
        [sys.executable, "-m", "aidc_thermo", "sweep", *args], capture_output=True, text=True, env=_env(**env),
        timeout=900,
    )  # fmt: skip


def _numeric(table):
    return {k: v for k, (v, _) in table.items() if v.dtype != object}


def _assert_tables_equal(a, b, rtol=1e-10):
    assert list(a) == list(b)
    for k in a:
        va, vb = a[k][0], b[k][0]
        assert a[k][1] == b[k][1], k
        if va.dtype == object or va.dtype.kind in "biu":
            assert list(va) == list(vb), k
        else:
            np.testing.assert_allclose(va, vb, rtol=rtol, atol=0, err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted, single-process, single-device sweep (in this process)."""
    folder = tmp_path_factory.mktemp("ref")
    sweep = _write(folder)
    assert main(["sweep", str(sweep), "-o", str(folder / "out"), "-q", "--no-plots"]) == 0
    return folder / "out"


def _designs(n=5):
    base = compact.parse(CaseFile(Path("base.toml"), BASE, __import__("tomllib").loads(BASE)))
    from dataclasses import replace

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        c = replace(
            base,
            flow=float(rng.uniform(0.5, 2.0)) / 6e4,
            channel_width=float(rng.uniform(1.5e-4, 5e-4)),
            fin_thickness=float(rng.uniform(1e-4, 3e-4)),
            inlet_temperature=float(rng.uniform(293.15, 318.15)),
            fin_k=float(rng.uniform(200.0, 400.0)),
        )
        out.append(compact.build(c, curves=False))
    return out


#: outputs at round-off level, whose relative difference between two compiled programs means nothing
ROUNDOFF = ("heat_balance_error", "energy_residual")


@pytest.mark.slow
def test_batched_compact_solve_equals_the_per_design_loop():
    designs = _designs()
    static = designs[0][0]
    assert all(s == static for s, _ in designs) and hash(static) == hash(designs[1][0])
    batched = jax.jit(jax.vmap(compact.solve, in_axes=(None, 0)), static_argnums=0)(
        static, compact.stack_params([p for _, p in designs])
    )
    rep = compact.report(static, compact.stack_params([p for _, p in designs]), batched)
    one = jax.jit(compact.solve, static_argnums=0)
    for i, (_, p) in enumerate(designs):
        ref = compact.report(static, p, one(static, p))
        for k, o in ref.items():
            # the heat balance error (about 6e-12) and the solver's residual are round-off: compared absolutely
            tol = dict(rtol=0, atol=1e-12) if k in ROUNDOFF else dict(rtol=1e-10, atol=0)
            np.testing.assert_allclose(np.asarray(rep[k].value)[i], np.asarray(o.value), err_msg=k, **tol)
    # the designs differ (a test that could not fail otherwise)
    assert np.ptp(np.asarray(rep["R_max"].value)) > 1e-3 * np.asarray(rep["R_max"].value).mean()
    # coolant properties follow the swept inlet temperature (not frozen at parse time)
    rho_cp = np.asarray(batched.rho_cp)
    water = static.coolant
    for i, (_, p) in enumerate(designs):
        t = float(p.inlet_temperature)
        assert rho_cp[i] == pytest.approx(float(water.density(t) * water.cp(t)), rel=1e-12)


def test_sweep_table_marks_constraints_and_reports_compilations(reference):
    t = read_table(reference)
    info = json.loads((reference / "sweep.json").read_text())
    assert info["designs"] == 16 and info["compilations"] == 1 and info["buckets"] == 1
    assert list(t["design"][0]) == list(range(16))
    assert t["fins.channel_width"][1] == "m" and t["operating.flow"][1] == "m^3/s"
    assert t["heat[0].power"][1] == "W"
    assert t["T_junction_max"][1] == "degC"
    tj = t["T_junction_max"][0]
    ok = t["status"][0] == "ok"
    assert ok.any() and (~ok).any()  # the constraint splits this sweep
    assert np.all(tj[ok] <= 60.0) and np.all(tj[~ok] > 60.0)
    assert np.all(t["converged"][0])
    # physics: at equal flow and power, narrower channels cost pressure and lower R
    w, q, dp, r = (t[k][0] for k in ("fins.channel_width", "operating.flow", "pressure_drop", "R_max"))
    power = t["heat[0].power"][0]
    sel = (q == q.max()) & (power == power[0])
    order = np.argsort(w[sel])
    assert np.all(np.diff(dp[sel][order]) < 0) and np.all(np.diff(r[sel][order]) > 0)
    csv_head = (reference / "table.csv").read_text().splitlines()[0]
    assert csv_head.startswith("design,bucket,fins.channel_width [m],operating.flow [m^3/s]")


_SHARDED = """
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
from aidc_thermo.sweep import run_sweep
r = run_sweep(sys.argv[1], sys.argv[2], quiet=True, plots=False)
s = r.shardings[0]
from jax.sharding import PartitionSpec
print(json.dumps({"devices": len(jax.local_devices()), "kind": type(s).__name__,
                  "spec": s.spec == PartitionSpec("design"), "set": len(s.device_set), "compilations": r.compilations}))
"""


@pytest.mark.slow
def test_sweep_sharded_over_four_host_devices_equals_the_unsharded_one(reference, tmp_path):
    sweep = _write(tmp_path, chunk=8)
    p = subprocess.run(
        [sys.executable, "-c", _SHARDED, str(sweep), str(tmp_path / "out")], capture_output=True, text=True,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"), timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got == {"devices": 4, "kind": "NamedSharding", "spec": True, "set": 4,
                   "compilations": 1}  # fmt: skip
    _assert_tables_equal(read_table(reference), read_table(tmp_path / "out"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_joined_by_jax_distributed_give_the_one_process_table(reference, tmp_path):
    sweep = _write(tmp_path)
    coord = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aidc_thermo",
                "sweep",
                str(sweep),
                "-o",
                str(tmp_path / "out"),
                "-q",
                "--no-plots",
                "--coordinator",
                coord,
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )  # fmt: skip
        for i in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    # each process solved its own share of the 4 chunks
    assert "compilation(s) here" in outs[0][0] and "compilation(s) here" in outs[1][0]
    _assert_tables_equal(read_table(reference), read_table(tmp_path / "out"))


@pytest.mark.slow
def test_sigkill_at_three_random_moments_then_restart_gives_every_design_once(reference, tmp_path):
    sweep = _write(tmp_path, chunk=2)  # 8 chunks
    out = tmp_path / "out"
    args = [str(sweep), "-o", str(out), "-q", "--no-plots"]
    rng = random.Random(13)
    chunks_seen = []
    for _ in range(3):
        p = subprocess.Popen([sys.executable, "-m", "aidc_thermo", "sweep", *args],
                             env=_env(THERMO_SWEEP_PAUSE_S="0.4"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
        t0 = time.monotonic()
        # wait until this run has written a chunk (or a random delay past it), then kill it mid-run
        before = len(list((out / "chunks").glob("*.npz"))) if (out / "chunks").exists() else 0
        while time.monotonic() - t0 < 600 and p.poll() is None:
            n = len(list((out / "chunks").glob("*.npz"))) if (out / "chunks").exists() else 0
            if n > before:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))  # chunks take >= 0.4 s each (THERMO_SWEEP_PAUSE_S): killed mid-run
        p.send_signal(signal.SIGKILL)
        p.wait()
        chunks_seen.append(len(list((out / "chunks").glob("*.npz"))))
    assert not (out / "table.csv").exists() or chunks_seen[-1] == 8
    assert 0 < chunks_seen[0] < 8  # killed mid-run
    r = _cli(args)
    assert r.returncode == 0, r.stderr[-3000:]
    t = read_table(out)
    assert list(t["design"][0]) == list(range(16))
    _assert_tables_equal(read_table(reference), t)


NONCONV = """
[sweep]
case = "base.toml"
outputs = ["R_max", "T_junction_max"]
[[parameter]]
key = "solver.max_iterations"
values = [1, 300]
[[parameter]]
key = "operating.flow"
values = ["0.5 L/min", "1 L/min", "2 L/min"]
"""


@pytest.mark.slow
def test_a_design_that_cannot_converge_is_kept_and_marked(tmp_path, capsys):
    sweep = _write(tmp_path, NONCONV)
    assert main(["sweep", str(sweep), "-o", str(tmp_path / "out"), "-q", "--no-plots"]) == 0
    assert "2 bucket(s), 2 compilation(s)" in capsys.readouterr().out
    t = read_table(tmp_path / "out")
    cap = t["solver.max_iterations"][0]
    status, reason, conv = t["status"][0], t["reason"][0], t["converged"][0]
    assert len(status) == 6
    assert list(status[cap == 1]) == ["failed"] * 3 and not conv[cap == 1].any()
    assert all("did not converge" in r and "limit 1" in r for r in reason[cap == 1])
    assert list(status[cap == 300]) == ["ok"] * 3 and conv[cap == 300].all()
    assert np.all(np.isfinite(t["R_max"][0][cap == 300]))
    info = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert info["failed"] == 3


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="counts the memory maps of /proc (Linux)")
def test_a_sweep_of_many_buckets_keeps_one_compiled_program_alive(tmp_path, monkeypatch):
    """Three buckets (a static solver key): after each bucket's chunk the process holds as many memory maps as
    after the first (each compact program held some 500 more when every bucket's program was kept)."""
    from aidc_thermo import sweep as sweep_module

    spec = NONCONV.replace("values = [1, 300]", "values = [100, 200, 300]")
    spec = spec.replace('values = ["0.5 L/min", "1 L/min", "2 L/min"]', 'values = ["1 L/min"]')
    maps = []
    write = sweep_module._atomic_write

    def counted(path, fn):
        write(path, fn)
        if Path(path).suffix == ".npz":
            maps.append(len(Path("/proc/self/maps").read_text().splitlines()))

    monkeypatch.setattr(sweep_module, "_atomic_write", counted)
    assert main(["sweep", str(_write(tmp_path, spec)), "-o", str(tmp_path / "out"), "-q", "--no-plots"]) == 0
    assert len(maps) == 3 and max(maps) - maps[0] < 200, maps
    assert list(read_table(tmp_path / "out")["status"][0]) == ["ok"] * 3


def test_the_parameters_plot_names_the_parameters_held_at_one_value_instead_of_plotting_them():
    from aidc_thermo.plots.sweep import split_parameters

    t = {"plate.cells[0]": (np.array([16, 16, 16]), ""), "fins.channel_width": (np.array([1e-4, 2e-4, 3e-4]), "m"),
         "operating.inlet_temperature": (np.array([308.15] * 3), "K")}  # fmt: skip
    assert split_parameters(t, list(t)) == (
        ["fins.channel_width"],
        "plate.cells[0] = 16, operating.inlet_temperature = 308.15 K",
    )
    one = {k: (v[:1], u) for k, (v, u) in t.items()}  # a sweep of one design still plots its point
    assert split_parameters(one, list(one)) == (list(one), "")


BAD = {
    "unknown key": (SWEEP.replace('key = "fins.channel_width"', 'key = "fins.chanel_width"'), "parameter[0].key",
                    "not a key of the base case"),
    "wrong unit": (SWEEP.replace('values = ["0.5 L/min", "2 L/min"]', 'values = ["0.5 kg", "2 L/min"]'),
                   "parameter[1].values", "dimension"),
    "empty range": (SWEEP.replace('range = ["0.15 mm", "0.5 mm"]', 'range = ["0.5 mm", "0.5 mm"]'),
                    "parameter[0].range", "empty range"),
    "zero samples": (SWEEP.replace("samples = 2", "samples = 0"), "sampling.samples", "at least 1"),
    "non-numeric key": (SWEEP.replace('key = "fins.channel_width"', 'key = "fins.material"'), "parameter[0].key",
                        "not a number"),
    "no values": (SWEEP.replace('values = ["0.5 L/min", "2 L/min"]', "values = []"), "parameter[1].values",
                  "non-empty"),
    "refused design": (SWEEP.replace('range = ["0.15 mm", "0.5 mm"]', 'range = ["-0.1 mm", "0.5 mm"]'),
                       "parameter fins.channel_width", "refused"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_sweep_file_exits_2_naming_the_file_and_key(name, tmp_path, capsys):
    text, key, words = BAD[name]
    sweep = _write(tmp_path, text)
    assert main(["sweep", str(sweep), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{sweep}: {key}:" in err and words in err, err
    assert not (tmp_path / "out" / "table.csv").exists()


def test_a_changed_sweep_file_is_refused_for_resumption(reference, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    sweep = _write(tmp_path, SWEEP.replace("points = 4", "points = 5"))
    before = (out / "table.csv").read_bytes()
    assert main(["sweep", str(sweep), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "refusing to resume" in err and str(sweep) in err
    assert (out / "table.csv").read_bytes() == before


def test_batched_stack_solve_equals_the_per_design_loop():
    """package_stack through the protocol: vmap over conductivities, powers, h and coolant temperature equals the
    loop of single solves to 1e-10, and the designs really differ."""
    import dataclasses

    from aidc_thermo.io.case import load
    from aidc_thermo.models import stack

    static, p0 = stack.build(stack.parse(load(ROOT / "cases" / "slab.toml")))
    rng = np.random.default_rng(1)
    designs = [
        dataclasses.replace(
            p0,
            k_table=p0.k_table * rng.uniform(0.5, 2.0, p0.k_table.shape),
            bottom_flux=p0.bottom_flux * rng.uniform(0.5, 1.5),
            h_top=p0.h_top * rng.uniform(0.5, 2.0),
            t_top=p0.t_top + rng.uniform(-10.0, 10.0),
        )
        for _ in range(4)
    ]
    batched = jax.jit(jax.vmap(stack.solve, in_axes=(None, 0)), static_argnums=0)(static, stack.stack_params(designs))
    rep = stack.report(static, stack.stack_params(designs), batched)
    one = jax.jit(stack.solve, static_argnums=0)
    for i, p in enumerate(designs):
        ref = stack.report(static, p, one(static, p))
        for k, o in ref.items():
            atol = 1e-12 if k in ("heat_balance_error", "solver_residual") else 0.0  # round-off sized diagnostics
            np.testing.assert_allclose(np.asarray(rep[k].value)[i], np.asarray(o.value), rtol=1e-10, atol=atol,
                                       err_msg=k)  # fmt: skip
        assert stack.screen(static, p, {k: np.asarray(v.value) for k, v in ref.items()}) == ""
    tj = np.asarray(rep["T_junction_max"].value)
    assert np.ptp(tj) > 1.0


@pytest.mark.slow
def test_compact_optimize_finds_a_feasible_design_better_than_the_case(tmp_path, capsys):
    """thermo optimize on the tiny plate: the optimum meets the pressure-drop limit, beats the case's own design
    and every scan point within the limit, and the results written are the optimum's."""
    from aidc_thermo.io.results import summary_values

    case = tmp_path / "plate.toml"
    case.write_text(BASE + '\n[optimize]\npressure_drop_limit = "2 kPa"\ngrid = 2\n')
    out = tmp_path / "out"
    assert main(["optimize", str(case), "-o", str(out)]) == 0, capsys.readouterr().err
    s = summary_values(out)
    assert s["optimum_pressure_drop"] <= 2.0 * (1 + 1e-9)
    assert s["optimum_R"] <= s["case_R"]  # the case's design (1.19 kPa) is feasible, so it bounds the optimum
    import h5py

    with h5py.File(out / "results.h5") as f:
        r, dp = f["optimize/scan_R"][()], f["optimize/scan_pressure_drop"][()]
    assert s["optimum_R"] <= np.min(r[dp <= 2000.0]) * (1 + 1e-12)
    assert s["R_max"] == pytest.approx(s["optimum_R"], rel=1e-9)  # the results written are the optimum's


def test_a_case_type_that_does_not_sweep_yet_is_refused_by_name(tmp_path, capsys):
    import shutil

    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "cases" / "hall_training_transient.toml", tmp_path / "hall.toml")
    sweep = tmp_path / "s.toml"
    sweep.write_text('[sweep]\ncase = "hall.toml"\n\n[[parameter]]\nkey = "accelerator.leakage_power"\n'
                     'values = ["150 W"]\n')  # fmt: skip
    assert main(["sweep", str(sweep), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "sweep.case" in err and "'transient_hall' does not sweep yet" in err
    assert "rack_network, facility" in err
    assert not (tmp_path / "out" / "table.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "cases").glob("sweep_*.toml")))
def test_every_design_of_a_bundled_sweep_is_accepted_by_its_base_case(name):
    """A bundled sweep whose ranges its base case refuses (a flow outside the plate curves' range, say) would
    only fail when a user runs it: every design is read and built here, nothing is solved."""
    from aidc_thermo.sweep import _parse_all, designs, read_sweep

    spec = read_sweep(ROOT / "cases" / name)
    _, buckets, params = _parse_all(spec, designs(spec))
    assert sum(len(ids) for ids in buckets.values()) == len(params) == len(designs(spec))
