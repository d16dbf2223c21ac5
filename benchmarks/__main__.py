"""`python -m benchmarks run [--quick] [--only NAME]`: run the benchmarks,
write benchmarks/results/<machine>-<date>.json and regenerate RESULTS.md."""

from __future__ import annotations

import argparse
import sys
import traceback


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run benchmarks")
    r.add_argument("--quick", action="store_true", help="tiny sizes (CI keeps the harness alive)")
    r.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    r.add_argument("--no-save", action="store_true", help="print only; write nothing")
    sub.add_parser("report", help="regenerate RESULTS.md from benchmarks/results/*.json")
    g = sub.add_parser("gpu", help="check kernels against CPU float64 and time the suites on an accelerator")
    g.add_argument("--out", required=True, help="folder for the result file and table")
    g.add_argument("--budget", type=float, default=420.0, help="seconds; later parts are skipped past it")
    g.add_argument("--quick", action="store_true", help="tiny sizes (a dry run)")
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from aidc_thermo import blas

    blas.limit()  # our solves as the command line runs them; peers set their own threads

    from benchmarks import coldplate, conduction, facility, harness, network, openfoam_peer, operators, porous, report
    from benchmarks import sweep as sweep_bench
    from benchmarks import transient as transient_bench

    if args.command == "report":
        report.write()
        return 0
    if args.command == "gpu":
        from pathlib import Path

        from benchmarks import gpu

        return gpu.main(Path(args.out), args.budget, args.quick)
    info = harness.machine_info()
    bw = harness.copy_bandwidth(32 * 2**20 if args.quick else 256 * 2**20)
    roof = max(bw["numpy_copy_GBps"], bw["threaded_copy_GBps"])
    print(f"machine: {info}\ncopy bandwidth: {bw}", flush=True)
    suites = {
        "conduction": lambda: conduction.run(
            (16, 32) if args.quick else (32, 64, 128, 192),
            (jnp.float64, jnp.float32),
            roof,
            repeats=2 if args.quick else 5,
        ),
        "operators": lambda: operators.run(
            (16,) if args.quick else (64, 128),
            (jnp.float64, jnp.float32),
            roof,
            repeats=2 if args.quick else 5,
            batch=16 if args.quick else 1000,
        ),
        "coldplate": lambda: coldplate.run(
            ("6k",) if args.quick else ("49k", "195k", "806k"),
            ("float64",) if args.quick else ("float64", "float32"),
        ),
        "line_solvers": lambda: coldplate.run_line_solvers(("6k",) if args.quick else ("6k", "49k")),
        "network": lambda: network.run(repeats=2 if args.quick else 7, quick=args.quick),
        "facility_year": lambda: facility.run(repeats=2 if args.quick else 5, hours=48 if args.quick else None),
        "chain": lambda: facility.run_chain(repeats=2 if args.quick else 3, quick=args.quick),
        "porous": lambda: porous.run(
            (32,) if args.quick else (128, 256),
            (jnp.float64, jnp.float32),
            repeats=2 if args.quick else 3,
        ),
        "sweep": lambda: sweep_bench.run(quick=args.quick),
        "transient": lambda: transient_bench.run(quick=args.quick),
        "openfoam": lambda: openfoam_peer.run(
            (1.0,) if args.quick else (1.0, 1.5, 2.0, 3.0), repeats=1 if args.quick else 3
        ),
    }
    unknown = set(args.only or ()) - set(suites)
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; known: {sorted(suites)}", file=sys.stderr)
        return 2
    records = []
    failed = []
    for name, fn in suites.items():
        if args.only and name not in args.only:
            continue
        try:
            new = fn()
        except Exception:  # report, keep what the other suites measure, exit non-zero at the end
            failed.append(name)
            print(f"benchmark {name} FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            continue
        for rec in new:
            records.append(rec)
            if "error" in rec.check:
                failed.append(f"{name} {rec.case} {rec.dtype}: {rec.check['error']}")
            print(
                f"{rec.benchmark:12s} {rec.case:10s} {rec.dtype:8s} "
                + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.metrics.items()),
                flush=True,
            )
    if not args.no_save:
        path = harness.save(records, info, bw, args.quick)
        print(f"saved {path}")
        if not args.quick:
            report.write()
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
