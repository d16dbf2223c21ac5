"""Running the validation set and writing its report: the table printed by
``thermo validate``, ``report.md``, ``validation.json`` (every row) and one PNG
per figure, written into a results folder by :class:`thermo.io.output.ResultsFolder`."""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from pathlib import Path

from . import Case, CaseResult, source

__all__ = ["format_table", "run_cases", "write_report"]


def run_cases(cases: list[Case]) -> list[tuple[Case, CaseResult | None, str, float]]:
    """Run each case; returns (case, result or None, error text, seconds). A
    case that raises is reported as failed with its error, and the rest still
    run. Progress lines go through :func:`thermo.progress.say`."""
    from aidc_thermo import progress

    out = []
    for i, case in enumerate(cases, 1):
        progress.say(f"[{i}/{len(cases)}] {case.name}: {case.title} ...")
        t0 = time.perf_counter()
        try:
            result, error = case.run(), ""
        except Exception as exc:  # reported as a failed case, never hidden: see the report and exit code
            result, error = None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"
        dt = time.perf_counter() - t0
        status = "error" if result is None else ("pass" if all(c.passed for c in result.checks) else "FAIL")
        progress.say(f"      {status} in {dt:.1f} s" + (f": {error.splitlines()[0]}" if error else ""))
        out.append((case, result, error, dt))
    return out


def _num(x: float) -> str:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.6g}"


def _diff(c) -> str:
    return f"{c.difference * 100:+.3g} %" if c.mode == "rel" else f"{c.difference:+.3g}"


def _tol(c) -> str:
    if c.mode == "rel":
        return f"{c.tolerance * 100:.3g} %"
    if c.mode == "range":
        lo, hi = c.tolerance
        return f"[{_num(lo)}, {_num(hi)}]"
    return f"{c.tolerance:.3g}"


def rows(results) -> list[list[str]]:
    table = []
    for case, result, _error, _ in results:
        if result is None:
            table.append([case.name, "(case raised an error)", "", "", "", "", "ERROR"])
            continue
        for c in result.checks:
            unit = f" ({c.unit})" if c.unit else ""
            table.append([case.name, c.quantity + unit, _num(c.reference), _num(c.measured), _diff(c), _tol(c),
                          "pass" if c.passed else "FAIL"])  # fmt: skip
    return table


HEADER = ["case", "quantity", "reference", "measured", "difference", "tolerance", "result"]


def format_table(results) -> str:
    table = [HEADER, *rows(results)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plot(fig_spec, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if fig_spec.kind == "convergence":
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (label, h, err) in enumerate(fig_spec.series):
            h, err = np.asarray(h), np.asarray(err)
            col = colours[i % len(colours)]
            slope = fig_spec.slopes[i] if i < len(fig_spec.slopes) else None
            text = f"{label} (fitted slope {slope:.2f})" if slope is not None else label
            ax.loglog(h, err, "o", color=col, label=text)
            if slope is not None:  # the fitted line over the points it was fitted to
                c = np.polyfit(np.log(h), np.log(err), 1)
                hh = np.array([h.min(), h.max()])
                ax.loglog(hh, np.exp(np.polyval(c, np.log(hh))), "-", color=col, lw=1)
        if fig_spec.order is not None:
            h_all = np.concatenate([np.asarray(s[1]) for s in fig_spec.series])
            e_all = np.concatenate([np.asarray(s[2]) for s in fig_spec.series])
            hh = np.array([h_all.min(), h_all.max()])
            e0 = np.exp(np.mean(np.log(e_all))) * (hh / np.exp(np.mean(np.log(h_all)))) ** fig_spec.order
            ax.loglog(hh, e0, "k--", lw=1, label=f"slope {fig_spec.order:g} (formal order)")
    else:
        for label, x, y in fig_spec.series:
            ax.plot(x, y, "-o" if len(x) <= 12 else "-", lw=1.5, ms=4, label=label)
        for label, x, y in fig_spec.lines:
            ax.plot(x, y, "k--", lw=1.2, label=label)
        for label, x, y in fig_spec.points:
            ax.plot(x, y, "o", mfc="none", mew=1.3, ms=6, label=label)
        if fig_spec.logy:
            ax.set_yscale("log")
        if fig_spec.logx:
            ax.set_xscale("log")
    ax.set_title(fig_spec.title, fontsize=10)
    ax.set_xlabel(fig_spec.xlabel)
    ax.set_ylabel(fig_spec.ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(folder: Path, results, *, quick: bool, command: str) -> list[str]:
    """Write report.md, validation.json and the figures into ``folder`` (the
    temporary folder of a :class:`ResultsFolder`). Returns the PNG names."""
    pngs = []
    for _, result, _, _ in results:
        for f in result.figures if result else []:
            _plot(f, folder / f"{f.name}.png")
            pngs.append(f"{f.name}.png")
    n_checks = sum(len(r.checks) for _, r, _, _ in results if r)
    n_failed = sum(1 for _, r, _, _ in results if r for c in r.checks if not c.passed)
    n_errors = sum(1 for _, r, _, _ in results if r is None)
    passed = n_failed == 0 and n_errors == 0
    doc = {
        "command": command,
        "quick": quick,
        "passed": passed,
        "checks": n_checks,
        "failed": n_failed,
        "errors": n_errors,
        "cases": [
            {
                "name": case.name,
                "model": case.model,
                "title": case.title,
                "sources": {k: source(k) for k in case.sources},
                "seconds": round(dt, 3),
                "error": error or None,
                "checks": [c.row() for c in result.checks] if result else [],
                "figures": [f"{f.name}.png" for f in result.figures] if result else [],
            }
            for case, result, error, dt in results
        ],
    }
    (folder / "validation.json").write_text(json.dumps(doc, indent=1, allow_nan=True) + "\n")

    md = [
        "# aidc-thermo validation report",
        "",
        f"Command: `{command}`. {'Quick subset' if quick else 'Full set'}: {len(results)} cases, {n_checks} checks, "
        f"**{'all passed' if passed else f'{n_failed} checks failed, {n_errors} cases raised errors'}**.",
        "",
        "Difference is relative (%) where the tolerance is a percentage, absolute otherwise; a tolerance in "
        "brackets is the accepted range of the measured value. Every figure is computed by the same functions "
        "the test suite asserts on (aidc_thermo.validation).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    md += ["| " + " | ".join(v.replace("|", "\\|") for v in r) + " |" for r in rows(results)]
    for case, result, error, dt in results:
        md += ["", f"## {case.title} (`{case.name}`, {case.model})", "", case.description, ""]
        md += [f"Run time {dt:.1f} s.", ""]
        for k in case.sources:
            s = source(k)
            url = f" <{s['url']}>" if s.get("url") else ""
            md.append(f"- Source: {s['citation']}{url}" + (f" ({s['note']})" if s.get("note") else ""))
        if error:
            md += ["", "The case raised an error:", "", "```", error.rstrip(), "```"]
        for f in result.figures if result else []:
            md += ["", f"![{f.title}]({f.name}.png)"]
    (folder / "report.md").write_text("\n".join(md) + "\n")
    return pngs


def validate_command(args) -> int:
    """``thermo validate [--quick] [--only NAMES] [-o FOLDER]``: 0 when every
    check passes, 4 when any fails (the report is written either way), 2 for
    a bad case name or a refused output folder."""
    from aidc_thermo import progress
    from aidc_thermo.io.output import ResultsFolder

    from . import select

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    try:
        cases = select(args.quick, only)
    except ValueError as exc:
        print(f"error: --only: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print("error: --only: none of the named cases is in the quick subset; drop --quick", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else Path("results") / ("validation_quick" if args.quick else "validation")
    folder = ResultsFolder(out, command="validate")
    folder.prepare()
    for note in folder.notes:
        print(f"note: {note}", file=sys.stderr)
    command = "thermo validate" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    progress.say(f"running {len(cases)} validation cases{' (quick subset)' if args.quick else ''} -> {out}")
    with folder.writing() as tmp:
        progress.phase("solve")
        results = run_cases(cases)
        progress.phase("write")
        write_report(tmp, results, quick=args.quick, command=command)
        timing = progress.finish_into(tmp)
    if timing is not None:
        progress.say(progress.timing_line(timing))
    print(format_table(results))
    failed = [r for r in rows(results) if r[-1] != "pass"]
    print(f"report written to {out}/ (report.md, validation.json and the plots)")
    if failed:
        print(f"{len(failed)} of {len(rows(results))} checks failed", file=sys.stderr)
        return 4
    print(f"all {len(rows(results))} checks passed")
    return 0
