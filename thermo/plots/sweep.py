"""PNG plots of a sweep folder (``thermo sweep``), drawn from ``table.h5``:

* ``pareto_<a>__<b>.png``: every pair of kept outputs, each design a point
  (failed designs as crosses, designs that break a constraint in grey), the
  Pareto front of the feasible designs (both outputs minimised) as a line;
* ``outputs_vs_parameters.png``: each kept output against each swept parameter
  that takes more than one value (those held at one value, such as a sweep's
  pinned mesh, are named in the title instead).

Both cover the outputs ``sweep.json`` lists as ``plotted_outputs``: the
first :data:`aidc_thermo.sweep.MAX_PLOTTED` kept outputs (a facility reports
about 36 scalars: every pair would be 630 plots); the table keeps them all,
and the sweep file's ``outputs`` chooses which come first.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["pareto_front", "plot_sweep", "split_parameters"]

DPI = 120


def pareto_front(a, b) -> np.ndarray:
    """Indices of the points not dominated when both ``a`` and ``b`` are
    minimised (sorted by ``a``)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    order = np.lexsort((b, a))
    front, best = [], np.inf
    for i in order:
        if b[i] < best:
            front.append(i)
            best = b[i]
    return np.asarray(front, int)


def _file_part(name: str) -> str:
    """An output name as part of a file name ("breakdown:secondary pumps" -> "breakdown_secondary_pumps")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _label(name, unit):
    return f"{name} [{unit}]" if unit else name


def split_parameters(t, params) -> tuple[list[str], str]:
    """``(varied, fixed)``: the parameters of table ``t`` that take more than
    one value, and the others as ``"name = value unit"`` text (empty if
    none). When none varies (a sweep of one design), all are "varied": the
    plot still shows its point."""
    varied = [p for p in params if np.unique(t[p][0]).size > 1]
    fixed = [p for p in params if p not in varied]
    if not varied:
        return list(params), ""
    text = ", ".join(f"{p} = {t[p][0][0]:g}{' ' + t[p][1] if t[p][1] else ''}" for p in fixed)
    return varied, text


def plot_sweep(folder) -> list[Path]:
    from aidc_thermo.sweep import read_table

    folder = Path(folder)
    t = read_table(folder)
    info = json.loads((folder / "sweep.json").read_text())
    params = [k for k in t if k not in ("design", "bucket", *info["outputs"], "converged", "iterations", "feasible",
                                        "status", "reason")]  # fmt: skip
    outputs = info.get("plotted_outputs", info["outputs"])
    status = t["status"][0]
    ok = status == "ok"
    infeasible = status == "infeasible"
    failed = status == "failed"
    written = []
    for x, y in itertools.combinations(outputs, 2):
        (xv, xu), (yv, yu) = t[x], t[y]
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        ax.scatter(xv[ok], yv[ok], s=10, color="C0", label=f"feasible ({ok.sum()})")
        if infeasible.any():
            ax.scatter(xv[infeasible], yv[infeasible], s=10, color="0.7", label=f"breaks a constraint "
                       f"({infeasible.sum()})")  # fmt: skip
        fin = failed & np.isfinite(xv) & np.isfinite(yv)
        if failed.any():
            ax.scatter(xv[fin], yv[fin], s=25, marker="x", color="C3", label=f"failed ({failed.sum()})")
        if ok.any():
            idx = np.flatnonzero(ok)[pareto_front(xv[ok], yv[ok])]
            ax.plot(xv[idx], yv[idx], "-o", color="C1", ms=4, lw=1.5, label=f"Pareto front ({len(idx)})")
        ax.set_xlabel(_label(x, xu))
        ax.set_ylabel(_label(y, yu))
        ax.set_title(f"{info['sweep']}: {y} vs {x}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = folder / f"pareto_{_file_part(x)}__{_file_part(y)}.png"
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        written.append(path)
    params, fixed = split_parameters(t, params)
    if params and outputs:
        nr, nc = len(outputs), len(params)
        fig, axes = plt.subplots(nr, nc, figsize=(3.2 * nc + 0.8, 2.6 * nr + 0.6), squeeze=False)
        for (i, o), (j, p) in itertools.product(enumerate(outputs), enumerate(params)):
            ax = axes[i, j]
            (ov, ou), (pv, pu) = t[o], t[p]
            ax.scatter(pv[ok], ov[ok], s=6, color="C0")
            if infeasible.any():
                ax.scatter(pv[infeasible], ov[infeasible], s=6, color="0.7")
            fin = failed & np.isfinite(ov)
            if fin.any():
                ax.scatter(pv[fin], ov[fin], s=20, marker="x", color="C3")
            if i == nr - 1:
                ax.set_xlabel(_label(p, pu), fontsize=8)
            if j == 0:
                ax.set_ylabel(_label(o, ou), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            ax.grid(alpha=0.3)
        title = f"{info['sweep']}: outputs against parameters (blue feasible, grey infeasible, red x failed)"
        fig.suptitle(title + (f"\nheld at one value: {fixed}" if fixed else ""), fontsize=9)
        fig.tight_layout()
        path = folder / "outputs_vs_parameters.png"
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        written.append(path)
    return written
