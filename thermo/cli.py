"""The ``thermo`` command.

Exit codes: 0 success; 2 a problem with the case file, the command line or
the output path (the message names the file and the key, or says why the path
is refused; checked before solving); 3 a solve that did not converge (no
results are written); 1 writing the results failed (disk full, I/O error) or an
unexpected internal error; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM),
129 hung up (SIGHUP): the temporary folder is removed, older results are kept.
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
SERIES_CASE_TYPES = ("facility", "closure_calibration")


def _configure_jax(args) -> None:
    """Precision and the persistent compilation cache are set here, at the
    entry point, never at library import: float64 is available (each case
    chooses its own precision); compiled programs are kept in the user's cache
    folder unless turned off (:mod:`thermo.compile_cache`)."""
    import jax

    from aidc_thermo import compile_cache

    jax.config.update("jax_enable_x64", True)
    _, note = compile_cache.configure(enabled=not getattr(args, "no_compile_cache", False))
    if note:
        print(f"note: {note}", file=sys.stderr)


def _load(path: str):
    from aidc_thermo.io.case import load
    from aidc_thermo.registry import model_for

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
        print(f"  thermo run {p}")
    return EXIT_OK


def cmd_check(args) -> int:
    case_file, model, case = _load(args.case)
    print(f"{case_file.path}: ok ({model.CASE_TYPE} case {getattr(case, 'name', '')!r})")
    return EXIT_OK


def _solve_into_folder(args, model, case_file, case, method, suffix: str, verb: str) -> int:
    from aidc_thermo import progress
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


def cmd_plot(args) -> int:
    from aidc_thermo.plots.figures import plot_results

    files = plot_results(args.results, args.output)
    print(f"{len(files)} plots written to {Path(args.output or args.results)}/: {', '.join(f.name for f in files)}")
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
        help="find the operating point that minimizes energy per token",
        description=(
            "For a facility case: find the facility-water supply temperature and coolant flow that "
            "minimize facility J/token with the hottest junction at or below the limit ([optimize] "
            "table), and write the optimum and its sensitivities."
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
            "number of [calibration] and write closures.csv (f Re and Nu versus Re, read by a "
            "compact_coldplate case's [fins] closures), results.h5, summary.json and closures.png."
        ),
    )

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

    pl = sub.add_parser(
        "plot",
        help="redraw the plots of a results folder from its results.h5",
        description="Draw every PNG plot of RESULTS_DIR (a folder written by thermo run, optimize or calibrate) from "
        "its results.h5 alone, without solving; the files are the ones the run wrote.",
    )
    pl.add_argument("results", metavar="RESULTS_DIR", help="results folder")
    pl.add_argument("-o", "--output", help="folder for the PNG files (default: RESULTS_DIR)")
    pl.set_defaults(func=cmd_plot)
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
