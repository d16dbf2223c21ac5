"""Regenerate the measured tables in benchmarks/RESULTS.md from the newest
full (non-quick) result file of each machine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from benchmarks.harness import RESULTS_DIR, machine_name

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"


def _latest_per_machine():
    """Per machine, the newest record of every (benchmark, case, dtype) over
    all full result files, so a run of one suite (``--only``) updates its rows
    and keeps the others. Returns ``[(files, data)]`` where ``data`` has the
    newest file's machine facts and the merged records."""
    merged = {}
    for path in sorted(RESULTS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("quick"):
            continue
        key = (data["machine"]["cpu"], data["machine"]["backend"], data["machine"]["device"])
        files, base, records = merged.get(key, ([], None, {}))
        for r in data["records"]:
            records[(r["benchmark"], r["case"], r["dtype"])] = r
        merged[key] = (files + [path], data, records)
    out = []
    for key in sorted(merged):
        files, newest, records = merged[key]
        out.append((files, {**newest, "records": list(records.values())}))
    return out


def _conduction_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "conduction"]
    if not rows:
        return []
    out = [
        "Conduction (unit cube, k = 1, random source; time to a 1e-8 relative residual in float64, "
        "1e-5 in float32, after compilation, median of repeats):",
        "",
        "| size | dtype | iterations | time to tol (s) | MG setup (s) | V-cycle (s) | apply (Mcells/s) "
        "| apply GB/s | roofline fraction | residual | heat balance |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, c = r["metrics"], r["check"]
        out.append(
            f"| {r['case']} | {r['dtype']} | {m['iterations']} | {m['solve_s']:.3f} "
            f"| {m['setup_s']:.3f} | {m['vcycle_s']:.4f} | {m['apply_cells_per_s'] / 1e6:.0f} "
            f"| {m['apply_GBps']:.1f} | {m['apply_roofline_fraction']:.2f} "
            f"| {c['relative_residual']:.1e} (tol {c['tolerance']:.0e}) | {c['heat_balance_error']:.1e} |"
        )
    return out


def _scipy_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "conduction" and "scipy_spsolve_s" in r["metrics"]]
    if not rows:
        return []
    out = [
        "Same matrix, scipy.sparse direct solve (SuperLU, assembly not timed):",
        "",
        "| size | scipy spsolve (s) | ours (s) | speed-up | max difference / max value |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]
        out.append(
            f"| {r['case']} | {m['scipy_spsolve_s']:.3f} | {m['solve_s']:.3f} | {m['speedup_vs_scipy']:.1f}x "
            f"| {m['max_diff_vs_scipy_rel']:.1e} |"
        )
    return out


def _facility_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "facility_year"]
    if not rows:
        return []
    out = [
        "Annual facility run (every hour's coupled junction / chip power / cooling solve, vmapped; after compilation):",
        "",
        "| case | hours | time (s) | hours/s | max Newton iterations | max residual (K) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, c = r["metrics"], r["check"]
        out.append(
            f"| {r['case']} | {m['hours']} | {m['solve_s']:.3f} | {m['hours_per_s']:.0f} "
            f"| {m['newton_iterations_max']} | {c['residual_max_K']:.1e} |"
        )
    return out


def _chain_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "chain"]
    if not rows:
        return []
    out = [
        "The main job's chain, part by part (first call with compilation / compiled median, s): the GPU plate's "
        "curves (compact finite-volume solve of every curve flow), the rack network's hydraulics alone, the coupled "
        "year of the rack hall, and the single-accelerator hall's year as the baseline:",
        "",
        "| hours | plate | curves | rack network | coupled year | uncoupled year | coupled / uncoupled "
        "| curves + coupled year |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]
        out.append(
            f"| {m['hours']} | {m['plate_cells']}, {m['curve_flows']} flows "
            f"| {m['curves_first_s']:.1f} / {m['curves_s']:.2f} | {m['rack_network_s']:.3f} "
            f"| {m['coupled_year_first_s']:.1f} / {m['coupled_year_s']:.2f} "
            f"| {m['uncoupled_year_first_s']:.1f} / {m['uncoupled_year_s']:.3f} | {m['coupled_over_uncoupled']:.1f}x "
            f"| {m['chain_after_compile_s']:.2f} |"
        )
    return out


def _line_solvers_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "line_solvers"]
    if not rows:
        return []
    out = [
        'The multigrid\'s line solves as scans and as parallel prefixes (`line_solver`; `"auto"` takes the scan '
        "on the CPU, the parallel form elsewhere), the resolved unit cell (s; compile / solve):",
        "",
        "| mesh | form | cells | flow | energy | outer iterations | pressure CG iterations | energy inner iterations "
        "| dP (Pa) | R_max (K/W) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]
        mesh, form = r["case"].split(" ", 1)
        out.append(
            f"| {mesh} {r['dtype']} | {form} | {m['cells']} | {m['compile_flow_s']:.1f} / {m['flow_s']:.2f} "
            f"| {m['compile_energy_s']:.1f} / {m['energy_s']:.2f} | {m['flow_outer_iterations']} "
            f"| {m['pressure_iterations']} | {m['energy_inner_iterations']} | {m['dp_Pa']:.2f} | {m['R_max_KpW']:.4f} |"
        )
    return out


def _sweep_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "sweep"]
    if not rows:
        return []
    out = [
        "`thermo sweep` (cases/sweep_compact_channel_flow.toml: GPU cold plate at 16 x 16 cells, channel width x flow; "
        "overhead: the sweep's wall time less compilation, against the bare `jit(vmap(solve + report))` on the same "
        "chunks):",
        "",
        "| sweep | designs | devices | buckets | compilations / bucket | wall (s) | compile (s) | designs/h end to end "
        "| designs/h in the solve | bare kernel (s) | machinery overhead | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, c = r["metrics"], r["check"]
        out.append(
            f"| {r['case']} | {m['designs']} | {m['devices']} | {m['buckets']} | {m['compilations_per_bucket']:g} "
            f"| {m['wall_s']:.1f} | {m['compile_s']:.1f} | {m['designs_per_hour_end_to_end']:.0f} "
            f"| {m['designs_per_hour_solve']:.0f} | {m['bare_kernel_s']:.1f} | {m['machinery_overhead']:.1%} "
            f"| {c['failed_designs']} |"
        )
    return out


def _transient_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "transient"]
    if not rows:
        return []
    out = [
        "Transient solves (`benchmarks/transient.py`; compile apart from the solve; steps/s counts every scenario's "
        "steps):",
        "",
        "| case | nodes / cells | scenarios | steps | dt (s) | compile (s) | solve (s) | steps/s | simulated / wall "
        "| check |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, c = r["metrics"], r["check"]
        size = next((m[k] for k in ("nodes", "cells", "states", "unknowns") if k in m), "")
        check = ", ".join(f"{k} {v:.3g}" for k, v in c.items())
        out.append(
            f"| {r['case']} | {size} | {m.get('scenarios', 1)} | {m['steps']} | {m['dt_s']:g} | {m['compile_s']:.1f} "
            f"| {m['solve_s']:.2f} | {m['steps_per_s']:.4g} | {m['simulated_per_wall']:.4g} | {check} |"
        )
    return out


def _network_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "network"]
    if not rows:
        return []
    out = [
        "Flow networks (Newton on nodal pressures; after compilation):",
        "",
        "| case | edges | time (s) | Newton iterations | per operating point (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]
        out.append(
            f"| {r['case']} | {m['edges']} | {m['solve_s']:.4f} | {m.get('newton_iterations', '')} "
            f"| {m.get('per_point_s', m['solve_s']):.2e} |"
        )
    return out


def _porous_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "porous_plate"]
    if not rows:
        return []
    out = [
        "Compact porous cold plate, 80 x 80 mm centre-fed, 1 kW (times after compilation; the compile "
        "columns are the first call of the single-design program, compilation plus one run; the gradient "
        "is reverse mode, d R_max / d flow, checked against forward mode; - where the run did not measure it):",
        "",
        "| in-plane cells | dtype | one solve (s) | compile (s) | batch of flows | batch (s) | designs/s "
        "| gradient (s) | batch of gradients (s) | gradient compile (s) | vs forward mode |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(d, key, fmt):
        return format(d[key], fmt) if key in d else "-"

    for r in rows:
        m, c = r["metrics"], r.get("check", {})
        out.append(
            f"| {r['case']} | {r['dtype']} | {m['solve_s']:.3f} | {cell(m, 'compile_s', '.1f')} | {m['batch']} "
            f"| {m['batch_s']:.3f} "
            f"| {m['designs_per_s']:.2f} | {cell(m, 'grad_s', '.3f')} | {cell(m, 'grad_batch_s', '.3f')} "
            f"| {cell(m, 'grad_compile_s', '.1f')} | {cell(c, 'grad_vs_forward_mode', '.1e')} |"
        )
    return out


def _operators_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "operators" and "advdiff_apply_s" in r["metrics"]]
    net = [r for r in data["records"] if r["benchmark"] == "operators" and "edge_laws_per_s" in r["metrics"]]
    out = []
    if rows:
        out += [
            "Operator throughput (minimal-traffic bytes per second against the copy bandwidth: a lower bound "
            "on the roofline fraction; the conduction apply and V-cycle are in the first table):",
            "",
            "| size | dtype | adv.-diff. apply (Mcells/s) | GB/s | roofline fraction "
            "| momentum residual (Mcells/s) | GB/s | roofline fraction |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            m = r["metrics"]
            out.append(
                f"| {r['case']} | {r['dtype']} | {m['advdiff_cells_per_s'] / 1e6:.0f} | {m['advdiff_GBps']:.1f} "
                f"| {m['advdiff_roofline_fraction']:.2f} | {m['momentum_cells_per_s'] / 1e6:.1f} "
                f"| {m['momentum_GBps']:.2f} | {m['momentum_roofline_fraction']:.3f} |"
            )
    for r in net:
        m = r["metrics"]
        out += [
            "",
            f"Network edge laws ({m['edges']} edges x {m['batch']} operating points, vmapped): "
            f"{m['edge_laws_per_s'] / 1e6:.1f} M edge evaluations/s.",
        ]
    return out


def _coldplate_table(data) -> list[str]:
    every = [r for r in data["records"] if r["benchmark"] == "coldplate_unit_cell"]
    rows = [r for r in every if "error" not in r["check"]]
    failed = [r for r in every if "error" in r["check"]]
    if not every:
        return []
    out = [
        "Resolved straight-fin unit cell (cases/coldplate_unit_cell.toml refined; flow to a scaled residual of "
        "1e-6 in float64, 1e-5 in float32, then the conjugate energy solve; compile timed apart):",
        "",
        "| mesh | dtype | cells | outer its | flow (s) | energy (s) | compile flow + energy (s) "
        "| cells x outer / s | dP (Pa) | R_max (K/W) | R_mean (K/W) | mass imbalance | heat balance |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, c = r["metrics"], r["check"]
        out.append(
            f"| {r['case']} | {r['dtype']} | {m['cells']} | {m['flow_outer_iterations']} | {m['flow_s']:.2f} "
            f"| {m['energy_s']:.2f} | {m['compile_flow_s']:.0f} + {m['compile_energy_s']:.0f} "
            f"| {m['cells_outer_per_s'] / 1e6:.2f} M | {m['dp_Pa']:.2f} | {m['R_max_KpW']:.4f} "
            f"| {m['R_mean_KpW']:.4f} | {c['mass_imbalance']:.1e} | {c['heat_balance_error']:.1e} |"
        )
    for r in failed:
        error = r["check"]["error"]
        out.append(f"| {r['case']} | {r['dtype']} | {r['metrics']['cells']} | did not converge: {error} |")
    est = [r for r in rows if "dp_Pa_1d" in r["metrics"]]
    if est:
        m = est[0]["metrics"]
        out += [
            "",
            f"1D correlation estimate of the same cell (benchmarks/correlation.py: Shah apparent friction, "
            f"Nu_H1 with fin efficiency, 1D base, caloric rise): dP {m['dp_Pa_1d']:.1f} Pa, "
            f"R_mean {m['R_mean_KpW_1d']:.3f} K/W, R_max {m['R_max_KpW_1d']:.3f} K/W; against the resolved "
            "answer on each mesh: "
            + "; ".join(
                f"{r['case']} {r['dtype']}: dP {100 * (r['metrics']['dp_Pa_1d'] / r['metrics']['dp_Pa'] - 1):+.1f} %, "
                f"R_mean {100 * (r['metrics']['R_mean_KpW_1d'] / r['metrics']['R_mean_KpW'] - 1):+.1f} %, "
                f"R_max {100 * (r['metrics']['R_max_KpW_1d'] / r['metrics']['R_max_KpW'] - 1):+.1f} %"
                for r in est
            )
            + ".",
        ]
    for dtype in ("float64", "float32"):
        sel = [r for r in rows if r["dtype"] == dtype]
        if len(sel) >= 3:
            cells = np.array([r["metrics"]["cells"] for r in sel], float)
            t = np.array([r["metrics"]["solve_s"] for r in sel])
            slope = np.polyfit(np.log(cells), np.log(t), 1)[0]
            out += ["", f"Fitted exponent of unit-cell time to solution vs cell count ({dtype}): {slope:.2f}."]
    return out


def _coldplate_plot(data, name: str) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "coldplate_unit_cell" and "error" not in r["check"]]
    if not rows:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for r in rows:
        h = r["check"]["flow_residual_history"]
        ax.semilogy(range(len(h)), h, ls="-" if r["dtype"] == "float64" else "--", label=f"{r['case']} {r['dtype']}")
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("max(scaled momentum, continuity) residual")
    ax.set_title("Resolved unit cell: flow residual histories")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = RESULTS_DIR / f"{name}-coldplate-residuals.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ["", f"![flow residual histories]({path.relative_to(RESULTS_MD.parent)})"]


def _openfoam_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "openfoam_peer"]
    if not rows:
        return []
    ranks = sorted({r["metrics"].get("foam_ranks", 1) for r in rows})
    how = "serial" if ranks == [1] else f"on {'/'.join(map(str, ranks))} MPI ranks (decomposePar + mpirun -parallel)"
    out = [
        "OpenFOAM v1912 chtMultiRegionSimpleFoam side by side, straight-fin unit cell on the same mesh "
        f"(bundled grid scaled in every direction; OpenFOAM to initial residuals 1e-6, {how}; "
        "differences are OpenFOAM minus ours, in % of ours; T_out in % of the coolant temperature rise; "
        "dP(10 %) is the drop from 10 % of the length, without the inlet's leading-edge singularity):",
        "",
        "| mesh | cells | ours solve (s) | ours compile (s) | OpenFOAM ranks | OpenFOAM mesh (s) | OpenFOAM solve (s) "
        "| OpenFOAM iterations | OpenFOAM / ours | dP ours (Pa) | dP diff | dP(10 %) diff | R_max diff "
        "| R_mean diff | T_out diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]
        out.append(
            f"| {r['case']} ({m['shape']}) | {m['cells']} | {m['ours_solve_s']:.2f} | {m['ours_compile_s']:.1f} "
            f"| {m.get('foam_ranks', 1)} | {m['foam_mesh_s']:.2f} | {m['foam_solve_s']:.2f} | {m['foam_iterations']} "
            f"| {m['foam_over_ours']:.2f}x | {m['dp_ours_Pa']:.1f} | {m['dp_diff_pct']:+.2f} % "
            f"| {m['dp10_diff_pct']:+.2f} % | {m['R_max_diff_pct']:+.2f} % | {m['R_mean_diff_pct']:+.2f} % "
            f"| {m['T_out_diff_pct_of_rise']:+.3f} % |"
        )
    whole = [r for r in rows if "ours_first_run_s" in r["metrics"]]
    if whole:
        out += [
            "",
            "Whole processes, wall time: `thermo run` of the same case in a fresh process (import, compile, "
            "solve, results.h5 + XDMF + plots), first with an empty compile cache, then again with the cache "
            "the first run left; OpenFOAM's mesh + decompose + solve + reconstruct:",
            "",
            "| mesh | cells | thermo run, empty cache (s) | of which compile / solve (s) "
            "| thermo run, warm cache (s) | of which compile / solve (s) | OpenFOAM whole (s) "
            "| OpenFOAM / thermo run (empty cache) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in whole:
            m = r["metrics"]
            out.append(
                f"| {r['case']} | {m['cells']} | {m['ours_first_run_s']:.1f} "
                f"| {m['ours_first_run_compile_s']:.1f} / {m['ours_first_run_solve_s']:.1f} "
                f"| {m['ours_warm_run_s']:.1f} | {m['ours_warm_run_compile_s']:.1f} / {m['ours_warm_run_solve_s']:.1f} "
                f"| {m['foam_total_s']:.1f} | {m['foam_total_over_ours_first_run']:.2f}x |"
            )
    return out


def _gpu_check_table(data) -> list[str]:
    rows = [r for r in data["records"] if r["benchmark"] == "gpu_check"]
    if not rows:
        return []
    out = [
        "Kernels on this device against the CPU float64 answer of the same problem, same process "
        "(`python -m benchmarks gpu`):",
        "",
        "| kernel | dtype | max relative difference |",
        "|---|---|---|",
    ]
    for r in rows:
        out.append(f"| {r['case']} | {r['dtype']} | {r['check']['max_rel_diff_vs_cpu_f64']:.1e} |")
    log = [line.splitlines()[0] for line in data.get("log", [])]
    if log:
        out += ["", "Parts of that run: " + "; ".join(log) + "."]
    return out


def _scaling_line(data) -> list[str]:
    out = []
    for dtype in ("float64", "float32"):
        rows = [r for r in data["records"] if r["benchmark"] == "conduction" and r["dtype"] == dtype]
        if len(rows) >= 3:
            cells = np.array([r["metrics"]["cells"] for r in rows], float)
            t = np.array([r["metrics"]["solve_s"] for r in rows])
            slope = np.polyfit(np.log(cells), np.log(t), 1)[0]
            out.append(f"Fitted exponent of conduction time to solution vs cell count ({dtype}): {slope:.2f}.")
    return out


def _plot_name(m: dict) -> str:
    """The file-name stem of a machine section's plots: the harness's machine
    name, and on a CPU the processor too (two 2-core CPUs have the same
    machine name, and each section drew its plot over the other's file)."""
    name = machine_name(m)
    if m["backend"] != "cpu":
        return name
    slug = re.sub(r"[^a-z0-9]+", "-", m["cpu"].lower()).strip("-")
    return f"{name}-{slug}"


def write() -> None:
    lines = [BEGIN, ""]
    for paths, data in _latest_per_machine():
        m, bw = data["machine"], data["bandwidth"]
        lines += [
            f"### {m['cpu']} ({m['cores']} cores), {m['backend']} / {m['device']}",
            "",
            f"Files {', '.join(f'`{p.relative_to(RESULTS_DIR.parent.parent)}`' for p in paths)} (newest row of each "
            f"benchmark), newest {data['date']}, JAX {m['jax']}. "
            f"Measured copy bandwidth (read + write): numpy one thread {bw['numpy_copy_GBps']:.1f} GB/s"
            + (f", numpy one thread per core {bw['threaded_copy_GBps']:.1f} GB/s" if "threaded_copy_GBps" in bw else "")
            + f", JAX {bw['jax_scale_GBps']:.1f} GB/s; roofline fractions are against "
            + (
                "the JAX figure"
                if data.get("roofline_basis") == "jax_scale_GBps"
                else "the larger numpy figure of the run that measured each row"
            )
            + ".",
            "",
            *_gpu_check_table(data),
            "",
            *_conduction_table(data),
            "",
            *_scaling_line(data),
            "",
            *_scipy_table(data),
            "",
            *_facility_table(data),
            "",
            *_chain_table(data),
            "",
            *_sweep_table(data),
            "",
            *_transient_table(data),
            "",
            *_network_table(data),
            "",
            *_porous_table(data),
            "",
            *_operators_table(data),
            "",
            *_line_solvers_table(data),
            "",
            *_coldplate_table(data),
            *_coldplate_plot(data, _plot_name(m)),
            "",
            *_openfoam_table(data),
            "",
        ]
    # one blank line between blocks, whichever blocks a machine has
    lines = [x for i, x in enumerate(lines) if x or (i > 0 and lines[i - 1])]
    lines.append(END)
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    RESULTS_MD.write_text(head + "\n".join(lines) + tail)
