"""The ``thermo`` command.

Exit codes: 0 success; 2 a problem with the case file, the command line or
the output path (the message names the file and the key, or says why the path
is refused; checked before solving); 3 a solve that did not converge (no
results are written); 1 writing the results failed (disk full, I/O error) or an
unexpected internal error; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM),
129 hung up (SIGHUP): the temporary folder is removed, older results are kept;
4 ``thermo validate``: a validation check failed (its report is written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_CASE, EXIT_SOLVE = 0, 1, 2, 3

#: case types whose results folder has a results.xdmf (the network last), and
#: those without (named here so ``--help`` needs no model import; a test checks
#: both lists against what every case type writes)
XDMF_CASE_TYPES = ("package_stack", "resolved_coldplate", "compact_coldplate", "rack_network")
SERIES_CASE_TYPES = ("facility", "closure_calibration", "transient_hall")


def _configure_jax(args) -> None:
    """Precision, BLAS threads and the persistent compilation cache are set
    here, at the entry point, never at library import: float64 is available
    (each case chooses its own precision); LAPACK inside compiled programs runs
    on one thread unless ``OPENBLAS_NUM_THREADS`` says otherwise
    (:mod:`thermo.blas`); compiled programs are kept in the user's cache folder
    unless turned off (:mod:`thermo.compile_cache`)."""
    import jax

    from aidc_thermo import blas, compile_cache

    blas.limit()

    jax.config.update("jax_enable_x64", True)
    from aidc_thermo import curve_cache

    curve_cache.configure(enabled=not getattr(args, "no_curve_cache", False))
    _, note = compile_cache.configure(enabled=not getattr(args, "no_compile_cache", False))
    if note:
        print(f"note: {note}", file=sys.stderr)


def _load(path: str):
    from aidc_thermo import curve_cache
    from aidc_thermo.io.case import load
    from aidc_thermo.registry import model_for

    curve_cache.begin_run()  # cold plates named by their case are resolved (and recorded) while parsing
    case_file = load(path)
    model = model_for(case_file)
    return case_file, model, model.parse(case_file)


def _print_summary(summary: dict, stream) -> None:
    width = max(len(k) for k in summary)
    for key, q in summary.items():
        v = q.value
        text = f"{v:.6g}" if isinstance(v, float) else str(v)
        print(f"  {key:<{width}}  {text} {q.unit}".rstrip(), file=stream)


def cmd_examples(args) -> int:
    from aidc_thermo.examples import ExamplesError, copy_examples

    try:
        written = copy_examples(args.folder)
    except (ExamplesError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CASE
    cases = [p for p in written if p.suffix == ".toml"]
    print(f"copied {len(cases)} example cases and {len(written) - len(cases)} data files into {args.folder}/")
    for p in cases:
        print(f"  thermo {'sweep' if p.name.startswith('sweep_') else 'run'} {p}")
    return EXIT_OK


def cmd_check(args) -> int:
    case_file, model, case = _load(args.case)
    print(f"{case_file.path}: ok ({model.CASE_TYPE} case {getattr(case, 'name', '')!r})")
    return EXIT_OK


def _solve_into_folder(args, model, case_file, case, method, suffix: str, verb: str) -> int:
    from aidc_thermo import curve_cache, progress
    from aidc_thermo.io.output import ResultsFolder

    out = Path(args.output) if args.output else Path("results") / f"{case_file.path.stem}{suffix}"
    folder = ResultsFolder(out, case_file=case_file.path, command=args.command)
    folder.prepare()  # a refused or unwritable path is exit 2 now, not after the solve
    for note in folder.notes:
        print(f"note: {note}", file=sys.stderr)
    progress.say(f"{verb} {model.CASE_TYPE} case {case_file.path} -> {out}")
    with folder.writing() as tmp:
        progress.phase("build")  # the models mark their own build, solve and write
        summary = method(case, case_file, tmp)
        curve_cache.record_into(tmp)  # the plate cases this case named, their keys, cache hits
        timing = progress.finish_into(tmp)
    if timing is not None:
        progress.say(progress.timing_line(timing))
    hint = ' (open results.xdmf in ParaView, reader "Xdmf3 Reader (T)")' if (out / "results.xdmf").exists() else ""
    print(f"results written to {out}/{hint}")
    _print_summary(summary, sys.stdout)
    if args.json:
        print(json.dumps({k: q.value for k, q in summary.items()}))
    return EXIT_OK


def cmd_run(args) -> int:
    case_file, model, case = _load(args.case)
    return _solve_into_folder(args, model, case_file, case, model.run, "", "running")


def cmd_optimize(args) -> int:
    case_file, model, case = _load(args.case)
    if not hasattr(model, "optimize"):
        from aidc_thermo.io.case import CaseError

        raise CaseError(case_file.path, "case.type", f"case type {model.CASE_TYPE!r} has nothing to optimize")
    return _solve_into_folder(args, model, case_file, case, model.optimize, "_optimize", "optimizing")


def cmd_calibrate(args) -> int:
    case_file, model, case = _load(args.case)
    from aidc_thermo.models import calibrate

    if model is not calibrate:
        from aidc_thermo.io.case import CaseError

        raise CaseError(
            case_file.path,
            "case.type",
            f"thermo calibrate needs a {calibrate.CASE_TYPE!r} case (a straight-fin unit cell and "
            f"[calibration] reynolds), got {model.CASE_TYPE!r}",
        )
    return _solve_into_folder(args, model, case_file, case, model.run, "", "calibrating")


def cmd_export_stl(args) -> int:
    """The solid of a resolved cold-plate case as an STL file (no JAX)."""
    import os

    from aidc_thermo.io.case import CaseError
    from aidc_thermo.models import coldplate
    from aidc_thermo.models import geometry as geo

    case_file, model, case = _load(args.case)
    if model is not coldplate:
        raise CaseError(case_file.path, "case.type", f"thermo export-stl needs a {coldplate.CASE_TYPE!r} case, "
                        f"got {model.CASE_TYPE!r}")  # fmt: skip
    kw = case.geometry
    if args.round_pins is not None and (args.round_pins < 8 or args.round_pins % 8):
        print(f"error: --round-pins {args.round_pins}: the sides of a pin must be a multiple of 8", file=sys.stderr)
        return EXIT_CASE
    if args.round_pins:
        if case.geometry_kind != "pin_fins" or kw["shape"] != "round" or kw["arrangement"] != "inline":
            raise CaseError(case_file.path, "geometry.kind", "--round-pins needs round pin fins in an inline array")
        if kw["cover_thickness"] > 0:
            raise CaseError(case_file.path, "geometry.cover_thickness", "--round-pins writes plates without a cover")
        keys = ("diameter", "pitch_x", "pitch_y", "rows", "columns", "fin_height", "base_thickness", "plenum_length")
        solid = geo.pin_plate_stl(**{k: kw[k] for k in keys}, segments=args.round_pins)
    else:
        solid = coldplate.build_geometry(case)
    out = Path(args.output)
    if not out.parent.is_dir():
        print(f"error: {out}: the folder {out.parent} does not exist", file=sys.stderr)
        return EXIT_CASE
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        geo.to_stl(solid, tmp, units=args.units, ascii=args.ascii)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    n = len(solid) if not isinstance(solid, geo.VoxelGeometry) else len(geo.voxel_surface(solid))
    print(f"{out}: {n} triangles, {'ASCII' if args.ascii else 'binary'} STL in {args.units}")
    return EXIT_OK


def cmd_fmu(args) -> int:
    from aidc_thermo.fmu import export

    facts = export(args.case, args.output)
    print(f"FMU written to {facts['fmu']} ({facts['size'] / 1e6:.1f} MB): FMI 2.0 co-simulation of {facts['case']!r}; "
          "it runs in a Python environment with aidc-thermo installed (docs/fmu.md)")  # fmt: skip
    return EXIT_OK


def cmd_plot(args) -> int:
    from aidc_thermo.plots.figures import plot_results

    files = plot_results(args.results, args.output)
    print(f"{len(files)} plots written to {Path(args.output or args.results)}/: {', '.join(f.name for f in files)}")
    return EXIT_OK


def cmd_validate(args) -> int:
    from aidc_thermo.validation.report import validate_command

    return validate_command(args)


def cmd_sweep(args) -> int:
    from aidc_thermo.errors import CaseError
    from aidc_thermo.sweep import run_sweep

    out = Path(args.output) if args.output else Path("results") / Path(args.sweep).stem
    # (hidden *.tmp files and chunks/ are what another process of the same sweep may be writing right now)
    mine = {"chunks", "manifest.json"}
    if out.exists() and (
        not out.is_dir()
        or (
            any(p.name not in mine and not p.name.startswith(".") for p in out.iterdir())
            and not (out / "manifest.json").exists()
        )
    ):
        raise CaseError(out, "", "exists and is not a sweep folder (no manifest.json); give a new or empty folder")
    res = run_sweep(
        args.sweep,
        out,
        coordinator=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        quiet=args.quiet,
        plots=not args.no_plots,
    )
    info = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").exists() else {}
    print(
        f"sweep written to {out}/ (table.csv, table.h5): {res.n_designs} designs in {res.buckets} bucket(s), "
        f"{res.compilations} compilation(s) here, {info.get('failed', 0)} failed, {info.get('feasible', 0)} feasible"
    )
    if res.solve_s > 0:
        print(f"solve {res.solve_s:.1f} s here: {res.designs_per_hour:.4g} designs/hour")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from aidc_thermo import __version__

    p = argparse.ArgumentParser(
        prog="thermo",
        description="aidc-thermo: thermal and energy models of liquid-cooled AI data centres.",
    )
    p.add_argument("--version", action="version", version=f"aidc-thermo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def solving_command(name, func, default_folder, case_help="case file (TOML)", **parser_kw):
        cmd = sub.add_parser(name, **parser_kw)
        cmd.add_argument("case", help=case_help)
        cmd.add_argument("-o", "--output", help=f"results folder (default: {default_folder})")
        cmd.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
        cmd.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help=(
                "no progress on standard error (by default a live line on a terminal, plain lines otherwise, "
                "and compile / solve times at the end; summary.json records them under 'timing' either way)"
            ),
        )
        cmd.add_argument(
            "--no-compile-cache",
            action="store_true",
            help=(
                "do not read or write the persistent compilation cache (default: on, in "
                "$AIDC_THERMO_COMPILE_CACHE or $XDG_CACHE_HOME/aidc-thermo/jax; AIDC_THERMO_COMPILE_CACHE=off "
                "also turns it off)"
            ),
        )
        cmd.add_argument(
            "--no-curve-cache",
            action="store_true",
            help=(
                "solve the cold plates this case names by their case (case = ...) without reading or writing "
                "the curve cache (default: on, in $AIDC_THERMO_CURVE_CACHE or $XDG_CACHE_HOME/aidc-thermo/curves)"
            ),
        )
        cmd.set_defaults(func=func, solves=True)

    solving_command(
        "run",
        cmd_run,
        "results/<case name>",
        help="solve a case and write a results folder",
        description=(
            "Solve CASE and write results.h5, summary.json and PNG plots into a results folder. "
            "Case types with fields in space also write results.xdmf, which ParaView opens "
            f'("Xdmf3 Reader (T)"): {", ".join(XDMF_CASE_TYPES[:-1])} (cell fields on the grid) and '
            f"{XDMF_CASE_TYPES[-1]} (the pipe network as polylines). {' and '.join(SERIES_CASE_TYPES)} "
            "cases have no spatial fields: results.h5 holds their series."
        ),
    )
    solving_command(
        "optimize",
        cmd_optimize,
        "results/<case name>_optimize",
        help="find the operating point (facility) or design (compact cold plate) that minimizes the objective",
        description=(
            "For a facility case: find the facility-water supply temperature and coolant flow that "
            "minimize facility J/token with the hottest junction at or below the limit ([optimize] "
            "table), and write the optimum and its sensitivities. For a compact_coldplate case: find the "
            "channel width, fin thickness and flow that minimize the thermal resistance with the pressure drop "
            "at or below [optimize] pressure_drop_limit (batched scan, then SLSQP with forward-mode gradients "
            "through the solve), and write the optimal design's results."
        ),
    )
    solving_command(
        "calibrate",
        cmd_calibrate,
        "results/<case name>",
        case_help="calibration case file (TOML)",
        help="closure table of the compact cold-plate model from resolved unit cells",
        description=(
            "For a closure_calibration case: solve the resolved straight-fin unit cell at each Reynolds "
            "number of [calibration] (and each cell of its channel_widths x fin_thicknesses grid, in turn) and "
            "write closures.csv (f Re and Nu versus Re, read by a compact_coldplate case's [fins] closures), "
            "results.h5, summary.json and closures.png."
        ),
    )

    sw = sub.add_parser(
        "sweep",
        help="solve many designs of a case (batched, sharded, resumable)",
        description=(
            "Solve every design of SWEEP (a sweep file naming a base case and the keys to vary, docs/sweep.md) "
            "in batches over all local devices, and with jax.distributed across processes; write table.csv, "
            "table.h5, sweep.json and plots into OUTPUT. Rerunning the same command resumes a killed sweep."
        ),
    )
    sw.add_argument("sweep", help="sweep file (TOML)")
    sw.add_argument("-o", "--output", help="sweep folder (default: results/<sweep name>)")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")
    sw.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    sw.add_argument("--coordinator", help="host:port of process 0 (jax.distributed; default: Slurm/JAX detection)")
    sw.add_argument("--num-processes", type=int, help="number of processes (jax.distributed)")
    sw.add_argument("--process-id", type=int, help="this process's index (jax.distributed)")
    sw.set_defaults(func=cmd_sweep, solves=True, json=False)

    c = sub.add_parser(
        "check",
        help="validate a case file without solving",
        description="Parse and validate CASE; exit 0 if it is valid, 2 if not.",
    )
    c.add_argument("case", help="case file (TOML)")
    c.set_defaults(func=cmd_check)

    e = sub.add_parser(
        "examples",
        help="copy the bundled example cases into a folder",
        description=(
            "Copy the bundled example cases and the data files they read (power map, weather years) into "
            "FOLDER, created if missing. Nothing is overwritten: a folder that already holds any of the "
            "files is refused."
        ),
    )
    e.add_argument("folder", help="destination folder")
    e.set_defaults(func=cmd_examples)

    x = sub.add_parser(
        "export-stl",
        help="write the solid of a resolved cold-plate case as an STL file",
        description=(
            "Write the solid (base, fins or pins, cover) of a resolved_coldplate CASE as an STL file: the surface of "
            'its solid cells, which a kind = "stl" case reads back on the same grid to exactly the same cells; '
            "with --round-pins N, round inline pins as N-sided prisms instead."
        ),
    )
    x.add_argument("case", help="resolved_coldplate case file (TOML)")
    x.add_argument("-o", "--output", required=True, help="STL file to write")
    x.add_argument("--units", default="mm", choices=("m", "cm", "mm", "um", "in"), help="length unit of the file")
    x.add_argument("--ascii", action="store_true", help="ASCII STL (default: binary)")
    x.add_argument("--round-pins", type=int, metavar="N", help="pins as N-sided prisms (N a multiple of 8)")
    x.set_defaults(func=cmd_export_stl)

    f = sub.add_parser(
        "fmu",
        help="export a facility or rack case as an FMI 2.0 co-simulation FMU",
        description=(
            "Write an FMI 2.0 co-simulation FMU of the facility or rack_network case CASE (the case file and its "
            "curve files are embedded). Facility: inputs utilization, outdoor dry and wet bulb, pressure and "
            "supply setpoint; outputs junction and coolant temperatures, cooling, pump and facility power, "
            "J/token. Rack: inputs supply temperature, supply flow and plate power scale; outputs hottest "
            "junction, return temperature, pressure drop, pump power, plate flow extremes. Each step solves the "
            "steady state. The FMU runs in a Python environment where aidc-thermo and pythonfmu are installed "
            "(pip install 'aidc-thermo[fmu]'); see docs/fmu.md."
        ),
    )
    f.add_argument("case", help="facility or rack_network case file (TOML)")
    f.add_argument("-o", "--output", required=True, help="the .fmu file to write (replaced only if thermo wrote it)")
    f.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")
    f.set_defaults(func=cmd_fmu, solves=True)

    pl = sub.add_parser(
        "plot",
        help="redraw the plots of a results folder from its results.h5",
        description="Draw every PNG plot of RESULTS_DIR (a folder written by thermo run, optimize or calibrate) from "
        "its results.h5 alone, without solving; the files are the ones the run wrote.",
    )
    pl.add_argument("results", metavar="RESULTS_DIR", help="results folder")
    pl.add_argument("-o", "--output", help="folder for the PNG files (default: RESULTS_DIR)")
    pl.set_defaults(func=cmd_plot)

    v = sub.add_parser(
        "validate",
        help="run the validation set and print reference against measured values",
        description="Run each model against its analytic solution, published table or independent code (the "
        "figures the tests assert on), print the table (reference, measured, difference, tolerance, pass/fail) and "
        "write report.md, validation.json and plots into a folder. Exit 0 when every check passes, 4 when any "
        "fails. docs/validation.md describes each case and its source.",
    )
    v.add_argument("--quick", action="store_true", help="only the quick subset (about a minute on two CPU cores)")
    v.add_argument("--only", metavar="NAMES", help="comma-separated case names or families (conduction, energy, ...)")
    v.add_argument("-o", "--output", help="report folder (default: results/validation or results/validation_quick)")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress lines on standard error")
    v.set_defaults(func=cmd_validate, solves=True)
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line. With ``argv`` None (the ``thermo`` command itself),
    SIGINT/SIGTERM/SIGHUP stop the process cleanly (:func:`thermo.io.output.handle_signals`);
    a caller passing ``argv`` keeps its own signal handling."""
    from aidc_thermo.errors import CaseError, SolveError
    from aidc_thermo.io.output import OutputRefused, OutputWriteFailed, handle_signals

    if argv is None:
        handle_signals()
    args = build_parser().parse_args(argv)
    try:
        if not getattr(args, "solves", False):
            return args.func(args)  # thermo check: no JAX (test_progress checks it stays unimported)
        _configure_jax(args)
        from aidc_thermo import progress

        with progress.session(progress.default_mode(sys.stderr, args.quiet)):
            return args.func(args)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CASE
    except OutputRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CASE
    except OutputWriteFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except SolveError as exc:
        print(f"error: {getattr(args, 'case', '')}: {exc}", file=sys.stderr)
        return EXIT_SOLVE


if __name__ == "__main__":
    raise SystemExit(main())
