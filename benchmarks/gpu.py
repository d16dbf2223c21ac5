"""`python -m benchmarks gpu --out DIR`: one run on an accelerator that first
checks every kernel against CPU float64 answers computed in the same process,
then times the suites at accelerator sizes, within a time budget.

Written for a lent GPU (the device machine has 15 minutes in all): each part
is guarded by the remaining budget and its results are written to
``DIR/<device>-<date>.json`` (the format of benchmarks/results/, so the file can
be copied there for ``python -m benchmarks report``) and ``DIR/table.md`` after
every part, so a run cut short still leaves what it measured. On a machine
without an accelerator it runs everything on the CPU (a dry run of the
script).
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels import linsolve
from aidc_thermo.kernels.network import solve_network
from benchmarks import coldplate, conduction, facility, harness, network, operators, porous
from benchmarks import sweep as sweep_bench
from benchmarks import transient as transient_bench
from benchmarks.harness import Record
from benchmarks.network_cases import synthetic_ladder_network


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _on(device, fn, *args):
    """Run ``fn`` with every new array on ``device``; results as numpy."""
    with jax.default_device(device):
        args = jax.device_put(args, device)
        out = fn(*args)
        return jax.tree_util.tree_map(lambda x: np.asarray(x) if hasattr(x, "shape") else x, out)


def _check_conduction(dtype):
    grid, k, q, bcs = conduction.problem(32, dtype)
    cfg = linsolve.MultigridConfig(tol=1e-8 if dtype == jnp.float64 else 1e-5)
    return jax.jit(lambda g, k, q, b: conduction.cd.solve(g, k, q, b, cfg)[0]), (grid, k, q, bcs)


def _check_porous(dtype):
    g, layer, bc, stack = porous.plate(64, dtype)
    q = jnp.asarray(1.5 / 60000, dtype)
    return jax.jit(lambda *a: porous._solve(*a)[:3]), (g, layer, bc, stack, q)


def _check_network(dtype):
    net, params, fluid, bnd, plates = synthetic_ladder_network()

    def to(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    cast = partial(jax.tree_util.tree_map, to)
    solve = jax.jit(lambda p, f, b: solve_network(net, p, f, b)[0].flow[jnp.asarray(plates)])
    return solve, (cast(params), cast(fluid), cast(bnd))


def _check_coldplate(device, precision):
    with jax.default_device(device):
        case = coldplate.unit_cell("6k", precision)
        sol, _ = coldplate.solve_timed(case)
        s, _ = coldplate.cp.summarize(case, sol)
    return np.array([s["pressure_drop"].value, s["R_max"].value, s["R_mean"].value])


def checks(target) -> list[Record]:
    """Each kernel on ``target`` (float64 and float32) against the CPU float64 answer."""
    cpu = jax.devices("cpu")[0]
    records = []
    for name, make in (("conduction", _check_conduction), ("porous", _check_porous), ("network", _check_network)):
        fn, args = make(jnp.float64)
        ref = _on(cpu, fn, *args)
        for dtype in (jnp.float64, jnp.float32):
            fn, args = make(dtype)
            out = _on(target, fn, *args)
            pairs = zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ref), strict=True)
            diff = max(_rel(o, r) for o, r in pairs)
            records.append(Record("gpu_check", name, jnp.dtype(dtype).name, check={"max_rel_diff_vs_cpu_f64": diff}))
    ref = _check_coldplate(cpu, "float64")
    for precision in ("float64", "float32"):
        out = _check_coldplate(target, precision)
        records.append(
            Record(
                "gpu_check",
                "coldplate_unit_cell_6k (dP, R_max, R_mean)",
                precision,
                check={"max_rel_diff_vs_cpu_f64": float(np.max(np.abs(out - ref) / np.abs(ref)))},
            )
        )
    return records


def _table(records) -> str:
    lines = ["| benchmark | case | dtype | figures |", "|---|---|---|---|"]
    for r in records:
        figs = {**r.metrics, **{k: v for k, v in r.check.items() if not isinstance(v, list)}}
        text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figs.items())
        lines.append(f"| {r.benchmark} | {r.case} | {r.dtype} | {text} |")
    return "\n".join(lines) + "\n"


def main(out: Path, budget_s: float, quick: bool) -> int:
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    target = jax.devices()[0]
    info = harness.machine_info()
    bw = harness.copy_bandwidth(32 * 2**20 if quick else 1024 * 2**20)
    roof = bw["jax_scale_GBps"] if info["backend"] != "cpu" else max(bw["numpy_copy_GBps"], bw["threaded_copy_GBps"])
    print(f"machine: {info}\nbandwidth: {bw}", flush=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    name = f"{harness.machine_name(info)}-{stamp}{'-quick' if quick else ''}"
    records: list[Record] = []
    log: list[str] = []

    def write():
        payload = {
            "date": stamp,
            "quick": quick,
            "machine": info,
            "bandwidth": bw,
            "roofline_basis": "jax_scale_GBps" if info["backend"] != "cpu" else "numpy_copy_GBps",
            "log": log,
            "records": [dataclasses.asdict(r) for r in records],
        }
        (out / f"{name}.json").write_text(json.dumps(payload, indent=1))
        (out / "table.md").write_text(_table(records) + "\n" + "\n".join(log) + "\n")

    sizes = {
        "operators": (16,) if quick else (64, 128, 256),
        "conduction": (16,) if quick else (64, 128, 256),
        "coldplate": [("6k", "float64")]
        if quick
        else [("49k", "float64"), ("195k", "float64"), ("806k", "float64"), ("806k", "float32")],
        "porous": (32,) if quick else (256, 512),
    }
    # (name, work, latest start as a fraction of the budget); the resolved
    # cold plate first, since it is the costliest to measure anywhere else
    parts = [("checks", lambda: checks(target), 1.0)]
    for i, (mesh, precision) in enumerate(sizes["coldplate"]):
        parts.append((f"coldplate {mesh} {precision}", partial(coldplate.run, (mesh,), (precision,)), 0.5 + 0.05 * i))
    parts += [
        # the multigrid's line solves as scans and as parallel prefixes: is "auto" (parallel here) the right choice?
        ("line solvers", lambda: coldplate.run_line_solvers(("6k",) if quick else ("49k",)), 0.7),
        ("operators", lambda: operators.run(sizes["operators"], (jnp.float64, jnp.float32), roof, repeats=5), 0.72),
        ("conduction", lambda: conduction.run(sizes["conduction"], (jnp.float64, jnp.float32), roof, 3, 0), 0.78),
        # forward solves only: the gradient rows (compiled once more per size and dtype) wait for a longer lease
        (
            "porous",
            lambda: porous.run(sizes["porous"], (jnp.float64, jnp.float32), repeats=3, batch=64, gradients=False),
            0.84,
        ),
        ("network", lambda: network.run(repeats=3, quick=quick), 0.9),
        ("facility_year", lambda: facility.run(repeats=3, hours=48 if quick else None), 0.94),
        # thermo sweep: the bundled 1,000-design sweep, then the same sweep on 256 x 256 plates (the issue's
        # target: 1e5 compact 256^2 designs/hour on one H100-class GPU); devices used are in the records
        ("sweep", lambda: sweep_bench.run(quick=quick), 0.95),
        # the transient hall (1 h at 0.1 s, a day at 1 s, 1,000 vmapped scenarios) and the 64^3 field transient
        ("transient", lambda: transient_bench.run(quick=quick), 0.96),
        ("sweep 256", lambda: sweep_bench.run(cells=32 if quick else 256, points=(4, 4) if quick else (8, 8)), 0.97),
    ]
    for part, fn, must_start_by in parts:
        elapsed = time.perf_counter() - t_start
        if elapsed > must_start_by * budget_s:
            log.append(f"{part}: not run, {elapsed:.0f} s of the {budget_s:.0f} s budget used")
            print(log[-1], flush=True)
            write()
            continue
        t0 = time.perf_counter()
        new = []
        try:
            new = fn()
            records.extend(new)
            log.append(f"{part}: {len(new)} records in {time.perf_counter() - t0:.0f} s")
        except Exception:  # a failing part is reported and the next one runs
            log.append(f"{part}: FAILED after {time.perf_counter() - t0:.0f} s\n{traceback.format_exc()}")
        print(log[-1], flush=True)
        for r in new:
            shown = {k: v for k, v in {**r.metrics, **r.check}.items() if not isinstance(v, list)}
            print(f"  {r.benchmark} {r.case} {r.dtype} {shown}", flush=True)
        write()
    print(f"total {time.perf_counter() - t_start:.0f} s; wrote {out / (name + '.json')}", flush=True)
    return 0
