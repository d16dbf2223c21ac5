"""PNG plots of a results folder, drawn from ``results.h5`` alone.

:func:`plot_results` is the one path: ``thermo run`` (and ``optimize``,
``calibrate``) call it on the folder they have just written, ``thermo plot``
calls it on an existing folder, so both draw the same files. What each case
type draws is listed in :data:`PLOTS`; where each number comes from in
``results.h5`` is :mod:`thermo.plots.data`.

Colour scales take robust limits (percentiles of the region shown, see
:func:`robust_limits`) so that one outlier or round-off cannot take the scale
over; the colour bar then marks values beyond the limits with arrows.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from aidc_thermo.plots.data import Results, open_results  # noqa: E402

__all__ = ["PLOTS", "daily_energy_per_token", "plot_results", "robust_limits"]

T0 = 273.15
DPI = 120

#: PNG files per case type (the facility's depend on the run: a weather file or
#: a design point, ``thermo optimize``).
PLOTS = {
    "package_stack": ("junction_temperature", "vertical_slice", "block_temperatures", "resistance_stackup",
                      "residual_history"),
    "resolved_coldplate": ("base_temperature", "velocity_midplane", "cross_section", "along_flow",
                           "residual_history", "curves (with [inlet] flow_range)"),
    "closure_calibration": ("closures", "cross_section", "along_flow", "closure_grid (with channel_widths or "
                            "fin_thicknesses)"),
    "compact_coldplate": ("junction_temperature", "fluid_temperature_velocity", "curves", "residual_history"),
    "rack_network": ("flow_per_tray", "plate_map", "manifold_pressure (a single rack)", "plate_temperatures",
                     "residual_history", "rack_flow (with [row])", "row_header_pressure (with [row])"),
    "facility": ("energy_per_token", "supply_temperature_sweep", "annual_profile", "monthly",
                 "design_point (design-point cases, instead of annual_profile and monthly)",
                 "optimize (thermo optimize)"),
    "transient_hall": ("power_stack", "temperatures", "grid_spectrum", "state_of_charge (with [storage])"),
}  # fmt: skip


def plot_results(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """Draw every plot of the results folder ``folder`` into ``out`` (default:
    the folder itself); returns the files written. A folder that is not a
    results folder, or one of another results layout, raises
    :class:`thermo.io.case.CaseError`."""
    out = Path(out) if out is not None else Path(folder)
    with open_results(folder) as r:
        draw = _DRAW.get(r.case_type)
        if draw is None:
            from aidc_thermo.io.case import CaseError

            raise CaseError(r.path, "case.type", f"no plots for case type {r.case_type!r}")
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        draw(r, _Saver(out, written))
    return written


class _Saver:
    def __init__(self, folder: Path, written: list):
        self.folder, self.written = folder, written

    def __call__(self, fig, name: str) -> None:
        path = self.folder / f"{name}.png"
        # no software/version stamp: the same data give the same bytes
        fig.savefig(path, dpi=DPI, metadata={"Software": None})
        plt.close(fig)
        self.written.append(path)


# ----------------------------------------------------------------------------- helpers


def robust_limits(values, low: float = 1.0, high: float = 99.0, min_span: float | None = None) -> tuple[float, float]:
    """Colour limits from the ``low`` and ``high`` percentiles of the finite
    ``values``, widened to at least ``min_span`` (default: 1e-3 of the
    largest magnitude), so that a flat field shows as flat, not as round-off
    stretched over the colour map."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    if min_span is None:
        min_span = max(1e-3 * float(np.abs(v).max()), 1e-12)
    lo, hi = (float(x) for x in np.percentile(v, [low, high]))
    if hi - lo < min_span:
        mid = 0.5 * (hi + lo)
        lo, hi = mid - 0.5 * min_span, mid + 0.5 * min_span
    return lo, hi


def _extend(values, lo, hi) -> str:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    below, above = bool((v < lo).any()), bool((v > hi).any())
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[(below, above)]


def _colorbar(fig, m, ax, values, label):
    lo, hi = m.get_clim()
    cb = fig.colorbar(m, ax=ax, label=label, extend=_extend(values, lo, hi))
    cb.formatter.set_useOffset(False)
    return cb


def _mm(a):
    return np.asarray(a, np.float64) * 1e3


def _centres(f):
    f = np.asarray(f, np.float64)
    return 0.5 * (f[1:] + f[:-1])


def _residuals(save, series: dict, title: str, ylabel: str = "relative residual") -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    for label, h in series.items():
        h = np.asarray(h, np.float64)
        ax.semilogy(np.arange(len(h)), np.where(h > 0, h, np.nan), "o-" if len(h) < 60 else "-", ms=3, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    save(fig, "residual_history")


def _legend_outside(ax, **kw):
    """A legend to the right of the axes, never on the data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, **kw)


# ----------------------------------------------------------------------------- package_stack


def _stack(r: Results, save) -> None:
    name = r.summary["case"]
    xf, yf, zf = (r.get(k) for k in ("x_faces", "y_faces", "z_faces"))
    T = r.celsius("stack.temperature")
    tj = r.celsius("stack.junction_temperature")
    heated = r.get("stack.junction_mask") > 0
    layers = r.parsed["layers"]
    t_cool = r.summary["T_coolant"]

    fig, ax = plt.subplots(figsize=(6.5, 5), constrained_layout=True)
    lo, hi = robust_limits(tj, 0.5, 99.9)
    m = ax.pcolormesh(_mm(xf), _mm(yf), tj.T, cmap="inferno", shading="flat", vmin=lo, vmax=hi)
    if heated.any() and np.ptp(tj[heated]) > 1e-3 * np.abs(tj).max():
        ax.contour(_mm(_centres(xf)), _mm(_centres(yf)), np.ma.masked_where(~heated, tj).T, levels=8,
                   colors="w", linewidths=0.5)  # fmt: skip
    for b in layers[0]["blocks"]:
        x0, y0, x1, y1 = _mm(b["rect"])
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], "c-", lw=0.8)
        ax.text(x0, y1, f" {b['name']}", color="c", fontsize=7, va="top")
    hot = np.where(heated, tj, -np.inf) if heated.any() else tj
    i, j = np.unravel_index(np.argmax(hot), hot.shape)
    ax.plot(_mm(_centres(xf)[i]), _mm(_centres(yf)[j]), "wx")
    ax.set_aspect("equal")
    ax.set_xlabel("x [mm]")
    ax.set_ylabel("y [mm]")
    ax.set_title(f"{name}\njunction (bottom-face) temperature; max {r.summary['T_junction_max']:.1f} °C (x)")
    _colorbar(fig, m, ax, tj, "T [°C]")
    save(fig, "junction_temperature")

    fig, ax = plt.subplots(figsize=(8, 3.8), constrained_layout=True)
    sl = T[:, j, :]
    lo, hi = robust_limits(sl, 0.5, 99.9)
    m = ax.pcolormesh(_mm(xf), _mm(zf), sl.T, cmap="inferno", shading="flat", vmin=lo, vmax=hi)
    z = 0.0
    for layer in layers:
        z += layer["thickness"]
        ax.axhline(_mm(z), color="w", lw=0.4, alpha=0.6)
        ax.text(1.005, (z - layer["thickness"] / 2) / zf[-1], layer["name"], fontsize=7, va="center",
                transform=ax.transAxes)  # fmt: skip
    ax.set_xlabel("x [mm]")
    if 1 / 6 <= (xf[-1] - xf[0]) / (zf[-1] - zf[0]) <= 6:
        ax.set_aspect("equal")
        ax.set_ylabel("z [mm]")
    else:
        ax.set_ylabel("z [mm] (stretched)")
    ax.set_title(f"vertical slice at y = {_mm(_centres(yf)[j]):.2f} mm, through the hot spot")
    _colorbar(fig, m, ax, sl, "T [°C]")
    save(fig, "vertical_slice")

    names = r.get("stack.block_name")
    t_max = r.celsius("stack.block_T_max")
    t_mean = r.celsius("stack.block_T_mean")
    power = r.get("stack.block_power")
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.8), constrained_layout=True)
    y = np.arange(len(names))
    ax.barh(y - 0.2, t_max, height=0.4, color="C3", label="max")
    ax.barh(y + 0.2, t_mean, height=0.4, color="C1", label="area mean")
    for k in range(len(names)):
        ax.text(t_max[k], y[k] - 0.2, f" {t_max[k]:.1f} °C, {power[k]:.0f} W", va="center", fontsize=7)
    ax.axvline(t_cool, color="C0", ls="--", lw=1, label=f"coolant {t_cool:.1f} °C")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(min(t_cool, float(t_mean.min())) - 5, float(t_max.max()) + 0.25 * (float(t_max.max()) - t_cool) + 5)
    ax.set_xlabel("bottom-face temperature [°C]")
    ax.set_title(f"{name}\nbottom-face temperature per block (label: max, heat of the block)", fontsize=10)
    _legend_outside(ax)
    save(fig, "block_temperatures")

    layer = r.get("stack.layer_name")
    res = r.get("stack.layer_resistance")
    total = float(res.sum())
    fig, ax = plt.subplots(figsize=(7.5, 0.4 * len(layer) + 1.8), constrained_layout=True)
    scale, unit = (1e3, "mK/W") if total < 1.0 else (1.0, "K/W")
    left = np.concatenate([[0.0], np.cumsum(res)[:-1]])
    y = np.arange(len(layer))
    ax.barh(y, res * scale, left=left * scale, color=plt.cm.viridis(np.linspace(0.1, 0.9, len(layer))))
    for k in range(len(layer)):
        ax.text((left[k] + res[k]) * scale, y[k], f" {res[k] * scale:.3g} {unit} ({100 * res[k] / total:.0f} %)",
                va="center", fontsize=7)  # fmt: skip
    ax.set_yticks(y, layer)
    ax.invert_yaxis()
    ax.set_xlim(0, total * scale * 1.3)
    ax.set_xlabel(f"cumulative thermal resistance, junction to coolant [{unit}]")
    r_hot = r.summary["R_junction_to_coolant"] * scale
    ax.set_title(f"{name}\nresistance stack-up (heat-weighted mean temperatures): total {total * scale:.4g} {unit};\n"
                 f"R_junction_to_coolant (hottest point) {r_hot:.4g} {unit}", fontsize=9)  # fmt: skip
    ax.grid(True, axis="x", alpha=0.3)
    save(fig, "resistance_stackup")

    _residuals(save, {"conduction": r.get("stack.residual_history")}, "conduction: multigrid-preconditioned CG")


# ----------------------------------------------------------------------------- resolved plates


def _section(save, r: Results, title: str, index=None) -> None:
    """Mid-length cross-section: solid and fluid temperature on their own
    colour scales, and the axial velocity."""
    yf, zf = r.get("section.y_faces"), r.get("section.z_faces")
    T = r.celsius("section.temperature")
    u = r.get("section.velocity_x")
    if index is not None:
        T, u = T[index], u[index]
    mat = r.get("section.material")
    fluid = mat == 0
    aspect = (yf[-1] - yf[0]) / (zf[-1] - zf[0])
    panel_h = float(np.clip(4.5 / aspect, 2.2, 5.0))
    panel_w = min(panel_h * aspect, 3.6)
    fig, axes = plt.subplots(1, 3, figsize=(3 * (panel_w + 1.5), panel_h + 1.0), constrained_layout=True)
    for ax, region, cmap, label in ((axes[0], ~fluid, "inferno", "solid T [°C]"),
                                    (axes[1], fluid, "coolwarm", "fluid T [°C]")):  # fmt: skip
        lo, hi = robust_limits(T[region], 0.5, 99.5)
        m = ax.pcolormesh(_mm(yf), _mm(zf), np.ma.masked_where(~region, T).T, cmap=cmap, shading="flat",
                          vmin=lo, vmax=hi)  # fmt: skip
        _colorbar(fig, m, ax, T[region], label)
    lo, hi = robust_limits(u[fluid], 0.0, 99.5)
    m = axes[2].pcolormesh(_mm(yf), _mm(zf), np.ma.masked_where(~fluid, u).T, cmap="viridis", shading="flat",
                           vmin=min(lo, 0.0), vmax=hi)  # fmt: skip
    _colorbar(fig, m, axes[2], u[fluid], "axial velocity u [m/s]")
    axes[0].set_title("solid temperature")
    axes[1].set_title("fluid temperature")
    axes[2].set_title("axial velocity")
    for ax in axes:
        _outline(ax, _mm(yf), _mm(zf), fluid)
        ax.set_aspect("equal")
        ax.set_xlabel("y [mm]")
        ax.set_facecolor("0.85")
    axes[0].set_ylabel("z [mm]")
    fig.suptitle(f"{title}\ncross-section at x = {_mm(r.get('section.x')):.2f} mm (mid-length); grey: the other phase",
                 fontsize=10)  # fmt: skip
    save(fig, "cross_section")


def _outline(ax, xf, yf, mask, color="0.3", lw=0.6) -> None:
    """Draw the cell faces between ``mask`` and not ``mask`` (2D, (nx, ny))."""
    from matplotlib.collections import LineCollection

    segs = []
    for i, j in zip(*np.nonzero(mask[1:] != mask[:-1]), strict=True):
        segs.append([(xf[i + 1], yf[j]), (xf[i + 1], yf[j + 1])])
    for i, j in zip(*np.nonzero(mask[:, 1:] != mask[:, :-1]), strict=True):
        segs.append([(xf[i], yf[j + 1]), (xf[i + 1], yf[j + 1])])
    if segs:
        ax.add_collection(LineCollection(segs, colors=color, linewidths=lw))


def _plan_axes(xf, yf):
    """A figure and axes for an x-y plan view: true aspect unless the domain
    is more than 6:1, then y is stretched (said in the y label)."""
    ratio = (xf[-1] - xf[0]) / (yf[-1] - yf[0])
    stretched = not (1 / 6 <= ratio <= 6)
    w = 8.0
    h = float(np.clip((w - 1.6) / ratio if not stretched else 3.0, 2.2, 7.0))
    fig, ax = plt.subplots(figsize=(w, h + 1.0), constrained_layout=True)
    if not stretched:
        ax.set_aspect("equal")
    ax.set_xlabel("x (flow) [mm]")
    ax.set_ylabel("y [mm]" + (" (stretched)" if stretched else ""))
    return fig, ax


def _coldplate(r: Results, save) -> None:
    name = r.summary["case"]
    xf, yf, zf = (r.get(k) for k in ("x_faces", "y_faces", "z_faces"))
    tb = r.celsius("plate.base_bottom_temperature")
    fig, ax = _plan_axes(xf, yf)
    lo, hi = robust_limits(tb, 0.5, 99.9)
    m = ax.pcolormesh(_mm(xf), _mm(yf), tb.T, cmap="inferno", shading="flat", vmin=lo, vmax=hi)
    heated = r.get("plate.heated") > 0
    _outline(ax, _mm(xf), _mm(yf), heated, color="c", lw=0.8)
    note = " (cyan: heated area)" if heated.any() and not heated.all() else ""
    ax.set_title(f"{name}\nbase bottom temperature{note}, max {r.summary['T_base_max']:.2f} °C", fontsize=10)
    _colorbar(fig, m, ax, tb, "T [°C]")
    save(fig, "base_temperature")

    mat = r.get("plate.material")
    zc = _centres(zf)
    fluid_rows = np.flatnonzero((mat == 0).any(axis=(0, 1)))
    kz = int(fluid_rows[len(fluid_rows) // 2]) if fluid_rows.size else len(zc) // 2
    speed = np.linalg.norm(r.get("plate.velocity")[:, :, kz, :], axis=-1)
    fluid = mat[:, :, kz] == 0
    fig, ax = _plan_axes(xf, yf)
    lo, hi = robust_limits(speed[fluid], 0.0, 99.5)
    m = ax.pcolormesh(_mm(xf), _mm(yf), np.ma.masked_where(~fluid, speed).T, cmap="viridis", shading="flat",
                      vmin=0.0, vmax=hi)  # fmt: skip
    ax.set_facecolor("0.85")
    ax.set_title(f"{name}\nspeed at z = {_mm(zc[kz]):.2f} mm (mid fin height); grey: solid", fontsize=10)
    _colorbar(fig, m, ax, speed[fluid], "|u| [m/s]")
    save(fig, "velocity_midplane")

    _section(save, r, name)
    _along_flow(save, r, name, t_in=r.summary["inlet_temperature"])
    _residuals(
        save,
        {"flow (outer iterations)": r.get("plate.flow_residual_history"),
         "energy (deferred correction)": r.get("plate.energy_residual_history")},
        "resolved cold plate: flow and energy",
        "scaled residual",
    )  # fmt: skip
    if r.has("compact.curve_flow"):  # [inlet] flow_range: the curves written to curves.csv
        _curves(save, r, name, r.summary["flow_rate"], r.summary["pressure_drop"] / 1e3)


def _curves(save, r: Results, name: str, q_op: float, dp_op: float) -> None:
    """dP(Q) and R(Q) of the ``/curves`` group (L/min, kPa, K/W) with the
    operating point (``q_op`` L/min, ``dp_op`` kPa)."""
    q = r.get("compact.curve_flow")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    a1.plot(q, r.get("compact.curve_dp"), "o-", label="ΔP(Q)")
    a1.plot([q_op], [dp_op], "r*", ms=12, label=f"operating point {q_op:.3g} L/min, {dp_op:.3g} kPa")
    a1.set(xlabel="flow [L/min]", ylabel="ΔP [kPa]", title=f"{name}: ΔP(Q)")
    a2.plot(q, r.get("compact.curve_r_max"), "o-", label="R max")
    a2.plot(q, r.get("compact.curve_r_mean"), "s-", label="R mean")
    a2.plot([q_op], [r.summary["R_max"]], "r*", ms=12, label=f"operating point, R max {r.summary['R_max']:.4g} K/W")
    a2.plot([q_op], [r.summary["R_mean"]], "r*", ms=12)
    a2.set(xlabel="flow [L/min]", ylabel="R, junction to inlet [K/W]", title="R(Q)")
    for a in (a1, a2):
        a.axvline(q_op, color="r", lw=0.6, ls=":")
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    save(fig, "curves")


def _along_flow(save, r: Results, title: str, t_in: float, labels=None) -> None:
    """Temperatures, pressure and local h along the flow (one line per row
    of a stacked profile, e.g. per Reynolds number)."""
    x = _mm(r.get("profile.x"))
    p = np.atleast_2d(r.get("profile.pressure"))
    tb = np.atleast_2d(r.celsius("profile.T_bulk"))
    tw = np.atleast_2d(r.celsius("profile.T_wall"))
    tbase = np.atleast_2d(r.celsius("profile.T_base_max"))
    h = np.atleast_2d(r.get("profile.h"))
    if x.ndim == 2:
        x = x[0]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(8, 8), sharex=True, constrained_layout=True)
    several = p.shape[0] > 1
    colors = plt.cm.viridis(np.linspace(0, 0.9, p.shape[0]))
    for n in range(p.shape[0]):
        tag = f" {labels[n]}" if labels is not None else ""
        c = colors[n] if several else None
        if several:
            a1.plot(x, tw[n] - tb[n], color=c, label=f"{tag}")
        else:
            a1.plot(x, tbase[n], color="C3", label="base bottom, max over y")
            a1.plot(x, tw[n], color="C1", label="wetted wall, mean")
            a1.plot(x, tb[n], color="C0", label="fluid bulk (flow-weighted)")
        a2.plot(x, p[n] / 1e3, color=c if several else "C0", label=tag)
        a3.plot(x, h[n], color=c if several else "C2", label=tag)
    if several:
        a1.set_ylabel("T_wall − T_bulk [K]")
        _legend_outside(a1, title="Re")
    else:
        a1.axhline(t_in, color="k", ls=":", lw=0.8, label=f"inlet {t_in:.1f} °C")
        a1.set_ylabel("T [°C]")
        _legend_outside(a1)
    a2.set_ylabel("p (fluid mean) [kPa]")
    finite = h[np.isfinite(h)]
    if finite.size:
        lo, hi = robust_limits(finite, 2.0, 98.0)
        a3.set_ylim(max(0.0, lo - 0.1 * (hi - lo)), hi + 0.1 * (hi - lo))
    a3.set_ylabel("local h [W/m²/K]")
    a3.set_xlabel("x along the flow [mm]")
    for a in (a1, a2, a3):
        a.grid(True, alpha=0.3)
    a1.set_title(f"{title}: along the flow\nh = wall heat flux / (T_wall − T_bulk); h axis clipped to 2-98 %",
                 fontsize=9)  # fmt: skip
    save(fig, "along_flow")


def _closure_grid(r: Results, save, nu_h1) -> None:
    """Nu_apparent and f Re_apparent against Re for every unit cell of a
    calibration grid: a colour per channel width, a line style and a marker
    per fin thickness (the pair is distinct for up to 28 thicknesses)."""
    cols = {k: v[0] for k, v in r.group("closure_grid").items()}
    widths, thicknesses = np.unique(cols["channel_width"]), np.unique(cols["fin_thickness"])
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(widths)))
    styles, markers = ("-", "--", ":", "-."), ("o", "s", "^", "D", "v", "P", "X")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 5.2), constrained_layout=True)
    for i, w in enumerate(widths):
        for j, t in enumerate(thicknesses):
            rows = (cols["channel_width"] == w) & (cols["fin_thickness"] == t)
            style = dict(color=colours[i], ls=styles[j % len(styles)], marker=markers[j % len(markers)], ms=3.5)
            label = f"w {w * 1e3:g} mm, fin {t * 1e3:g} mm"
            a1.plot(cols["Re"][rows], cols["fRe_apparent"][rows], label=label, **style)
            a2.plot(cols["Re"][rows], cols["Nu_apparent"][rows], **style)
    a1.set(xlabel="channel Re", ylabel="Fanning f Re (apparent)",
           title=f"{len(widths)} channel widths x {len(thicknesses)} fin thicknesses")  # fmt: skip
    a2.set(xlabel="channel Re", ylabel="Nu_apparent (on D_h)",
           title=f"Nu_H1 of the [geometry] cell's duct: {nu_h1:.3g}")  # fmt: skip
    for a in (a1, a2):
        a.set_xscale("log")
        a.grid(True, which="both", alpha=0.3)
    fig.legend(*a1.get_legend_handles_labels(), loc="outside lower center", ncol=len(widths), fontsize=7)
    save(fig, "closure_grid")


def _calibration(r: Results, save) -> None:
    name = r.summary["case"]
    cols = {k: v[0] for k, v in r.group("closures").items()}
    fre_sl = float(r.get("calibration.fRe_reference"))
    nu_sl = float(r.get("calibration.Nu_reference"))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    re = cols["Re"]
    a1.plot(re, cols["fRe_apparent"], "o-", label="apparent (whole channel)")
    a1.plot(re, cols["fRe_local"], "s-", label="local (0.6-0.9 L)")
    a1.axhline(fre_sl, color="k", ls="--", label="Shah & London, developed")
    a1.set(xlabel="channel Re", ylabel="Fanning f Re", title=name)
    a2.plot(re, cols["Nu_apparent"], "o-", label="apparent (R_mean)")
    a2.plot(re, cols["Nu_local"], "s-", label="local (0.6-0.9 L)")
    a2.axhline(nu_sl, color="k", ls="--", label="Nu_H1, four walls")
    a2.set(xlabel="channel Re", ylabel="Nu (on D_h)", title="closures of the compact model")
    for a in (a1, a2):
        a.set_xscale("log")
        a.set_xticks(re, [f"{v:.4g}" for v in re], minor=False)
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=7)
    save(fig, "closures")
    if r.has("closure_grid"):
        _closure_grid(r, save, nu_sl)
    last = len(re) - 1
    _section(save, r, f"{name}, Re {re[last]:.4g}", index=last)
    t_in = r.parsed.get("inlet_temperature", T0) - T0
    _along_flow(save, r, name, t_in=t_in, labels=[f"{v:.4g}" for v in re])


# ----------------------------------------------------------------------------- compact_coldplate


def _compact(r: Results, save) -> None:
    name = r.summary["case"]
    xf, yf = _mm(r.get("x_faces")), _mm(r.get("y_faces"))
    xc, yc = _centres(xf), _centres(yf)
    tj = r.get("compact.junction_temperature")
    flux = r.get("compact.heat_flux")
    fig, ax = plt.subplots(figsize=(6.5, 5), constrained_layout=True)
    lo, hi = robust_limits(tj, 0.5, 99.9)
    m = ax.pcolormesh(xf, yf, tj.T, cmap="inferno", shading="flat", vmin=lo, vmax=hi)
    _outline(ax, xf, yf, flux > 0, color="c", lw=0.8)
    ax.set_aspect("equal")
    ax.set(xlabel="x (along the fins) [mm]", ylabel="y [mm]")
    ax.set_title(f"{name}\njunction-side temperature, max {r.summary['T_junction_max']:.1f} °C (cyan: heated)")
    _colorbar(fig, m, ax, tj, "T [°C]")
    save(fig, "junction_temperature")

    tf = r.get("compact.temperature_fluid")
    vel = r.get("compact.velocity")
    ux, uy = vel[..., 0], vel[..., 1]
    fig, ax = plt.subplots(figsize=(6.5, 5), constrained_layout=True)
    lo, hi = robust_limits(tf, 0.5, 99.5)
    m = ax.pcolormesh(xf, yf, tf.T, cmap="coolwarm", shading="flat", vmin=lo, vmax=hi)
    step = max(1, len(xc) // 24), max(1, len(yc) // 24)
    q = ax.quiver(xc[:: step[0]], yc[:: step[1]], ux[:: step[0], :: step[1]].T, uy[:: step[0], :: step[1]].T)
    umax = float(np.nanmax(np.hypot(ux, uy)))
    ax.quiverkey(q, 0.80, 1.03, umax, f"{umax:.2g} m/s", labelpos="E", coordinates="axes", fontproperties={"size": 7})
    ax.set_aspect("equal")
    ax.set(xlabel="x [mm]", ylabel="y [mm]")
    ax.set_title(f"{name}\nbulk fluid temperature, superficial velocity", fontsize=9, loc="left")
    _colorbar(fig, m, ax, tf, "T_fluid [°C]")
    save(fig, "fluid_temperature_velocity")

    _curves(save, r, name, r.summary["flow"], r.summary["pressure_drop"])
    _residuals(save, {"energy": r.get("compact.energy_residual_history")}, "compact cold plate: energy solve")


# ----------------------------------------------------------------------------- rack_network


def _rack(r: Results, save) -> None:
    name = r.summary["case"]
    lpm = 6e4
    row = r.has("rack.plate_rack")
    if row:
        _row(r, save)
    tray_q = r.get("rack.tray_flow") * lpm
    tray_type = r.get("rack.tray_type")
    ntr = len(tray_q)
    types = list(dict.fromkeys(tray_type))
    ratio = np.array([tray_q[i] / tray_q[tray_type == t].mean() for i, t in enumerate(tray_type)])
    fig, ax = plt.subplots(figsize=(8.5, 4), constrained_layout=True)
    trays = np.arange(ntr)
    for k, t in enumerate(types):
        sel = tray_type == t
        ax.plot(trays[sel], 100 * (ratio[sel] - 1), "o", color=f"C{k}",
                label=f"{t} trays (mean {tray_q[sel].mean():.3g} L/min)")  # fmt: skip
    ax.axhspan(-3, 3, color="0.9", zorder=0, label="±3 %")
    span = max(3.5, 1.15 * float(np.abs(100 * (ratio - 1)).max()))
    ax.set_ylim(-span, span)
    if row:
        _rack_separators(ax, r.get("rack.tray_rack"))
    ax.set_xlabel("tray (rack by rack, 0 = bottom of rack 0)" if row else "tray (0 = bottom)")
    ax.set_ylabel("tray flow − mean of its type [%]")
    ax.set_title(f"{name}: flow per tray ({r.summary['layout']} layout)", pad=14 if row else None)
    ax.grid(True, alpha=0.3)
    _legend_outside(ax)
    save(fig, "flow_per_tray")
    if row:
        _row_plate_plots(r, save)
        return

    tray = r.get("rack.plate_tray")
    branch, pos = r.get("rack.plate_branch"), r.get("rack.plate_position")
    ptype = r.get("rack.plate_type")
    pr = r.get("rack.plate_flow_ratio")
    tj = r.celsius("rack.plate_T_j")
    limit = r.celsius("rack.plate_T_j_limit")
    slots = sorted(set(zip(branch.tolist(), pos.tolist(), strict=True)))
    col = {s: c for c, s in enumerate(slots)}
    grid_r = np.full((ntr, len(slots)), np.nan)
    grid_m = np.full((ntr, len(slots)), np.nan)
    has_limit = np.isfinite(limit).any()
    for n in range(len(tray)):
        c = col[(int(branch[n]), int(pos[n]))]
        grid_r[tray[n], c] = pr[n]
        grid_m[tray[n], c] = (limit[n] - tj[n]) if has_limit else tj[n]
    fig, axes = plt.subplots(1, 2, figsize=(11, max(4.5, 0.22 * ntr + 1.8)), constrained_layout=True)
    dev = max(0.03, float(np.nanmax(np.abs(grid_r - 1))))
    m = axes[0].pcolormesh(np.arange(len(slots) + 1) - 0.5, np.arange(ntr + 1) - 0.5, grid_r, cmap="RdBu",
                           vmin=1 - dev, vmax=1 + dev)  # fmt: skip
    fig.colorbar(m, ax=axes[0], label="plate flow / mean of its type")
    axes[0].set_title("flow ratio (scale at least ±3 %)")
    vals = grid_m[np.isfinite(grid_m)]
    if has_limit:
        top = max(1.0, float(vals.max()))
        m = axes[1].pcolormesh(np.arange(len(slots) + 1) - 0.5, np.arange(ntr + 1) - 0.5, grid_m, cmap="RdYlGn",
                               vmin=min(0.0, float(vals.min())), vmax=top)  # fmt: skip
        fig.colorbar(m, ax=axes[1], label="junction margin: limit − T_j [K]")
        axes[1].set_title(f"junction margin (min {vals.min():.1f} K)")
    else:
        lo, hi = robust_limits(vals, 0, 100, 0.1)
        m = axes[1].pcolormesh(np.arange(len(slots) + 1) - 0.5, np.arange(ntr + 1) - 0.5, grid_m, cmap="inferno",
                               vmin=lo, vmax=hi)  # fmt: skip
        fig.colorbar(m, ax=axes[1], label="T_j [°C] (no junction_limit given)")
        axes[1].set_title("junction temperature")
    slot_type = {}
    for n in range(len(tray)):
        slot_type.setdefault(col[(int(branch[n]), int(pos[n]))], set()).add(str(ptype[n]))
    ticks = [f"b{b} p{p}\n{'/'.join(sorted(slot_type[col[(b, p)]]))}" for b, p in slots]
    for ax in axes:
        ax.set_xticks(np.arange(len(slots)), ticks, fontsize=7)
        ax.set_ylabel("tray (0 = bottom)")
        ax.set_xlabel("branch, position in series, plate type")
        ax.set_facecolor("0.85")
    fig.suptitle(f"{name}: per plate (grey: no plate)")
    save(fig, "plate_map")

    p = r.get("rack.pressure")
    z = r.get("rack.tray_level")
    rho = float(r.attr("rack.density", "density"))
    elev = r.get("rack.elevation")
    piezo = p + rho * 9.80665 * elev
    ref = piezo[int(r.get("rack.outlet_node"))]
    sup, ret = r.get("rack.supply_nodes"), r.get("rack.return_nodes")
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.5), sharey=True, constrained_layout=True)
    for ax, data, label in ((axes[0], p / 1e3, "static pressure [kPa]"),
                            (axes[1], (piezo - ref) / 1e3, "p + ρgz above the outlet [kPa]")):  # fmt: skip
        ax.plot(data[sup], z, "o-", ms=3, color="tab:red", label="supply manifold")
        ax.plot(data[ret], z, "o-", ms=3, color="tab:blue", label="return manifold")
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("tap height [m]")
    axes[0].legend(fontsize=8)
    axes[1].set_title("flow-driven part (the tray drive is the gap)", fontsize=9)
    fig.suptitle(f"{name}: pressure along the manifolds")
    save(fig, "manifold_pressure")

    t_in, t_out = r.celsius("rack.plate_T_in"), r.celsius("rack.plate_T_out")
    fig, ax = plt.subplots(figsize=(11, 4.2), constrained_layout=True)
    idx = np.arange(len(tj))
    ax.plot(idx, t_in, "v", ms=3, label="plate inlet")
    ax.plot(idx, t_out, "^", ms=3, label="plate outlet")
    ax.plot(idx, tj, "o", ms=3, label="junction (T_in + R P)")
    for lim in sorted(set(limit[np.isfinite(limit)].tolist())):
        ax.axhline(lim, color="r", ls="--", lw=1, label=f"junction limit {lim:.0f} °C")
    ax.axhline(r.summary["T_supply"], color="k", ls=":", lw=0.8, label=f"supply {r.summary['T_supply']:.1f} °C")
    for x in np.flatnonzero(np.diff(tray)) + 0.5:
        ax.axvline(x, color="0.85", lw=0.5)
    ax.set_xlabel("plate (grouped by tray, bottom to top; series order within a branch)")
    ax.set_ylabel("T [°C]")
    ax.set_title(f"{name}: temperature per plate")
    _legend_outside(ax)
    save(fig, "plate_temperatures")
    _residuals(save, {"Newton": r.get("rack.residual_history")}, "rack network: Newton (global gradient)")


def _rack_separators(ax, rack_of) -> None:
    """Thin lines between the racks of a row along an x axis of items (trays
    or plates, rack by rack), each rack's index written at the top."""
    rack_of = np.asarray(rack_of)
    for x in np.flatnonzero(np.diff(rack_of)) + 0.5:
        ax.axvline(x, color="0.6", lw=0.6)
    for k in np.unique(rack_of):
        idx = np.flatnonzero(rack_of == k)
        ax.text(idx.mean(), 1.0, f"rack {k}", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=7, color="0.3")  # fmt: skip


def _row(r: Results, save) -> None:
    """A row of racks: flow and hottest chip per rack; header pressures."""
    name = r.summary["case"]
    q = r.get("rack.rack_flow") * 6e4
    tmax = r.celsius("rack.rack_T_j_max")
    n = len(q)
    racks = np.arange(n)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * n + 3), 4.2), constrained_layout=True)
    mean = q.mean()
    colors = ["tab:blue"] * n
    colors[int(np.argmin(q))] = "tab:red"
    ax.bar(racks, q, color=colors, width=0.7, label="flow into the rack (red: lowest)")
    ax.axhline(mean, color="k", ls="--", lw=0.8, label=f"mean {mean:.4g} L/min")
    span = max(float(np.abs(q - mean).max()), 1e-3 * mean)
    ax.set_ylim(mean - 4 * span, mean + 2.5 * span)  # the bars' differences visible, not hidden by a zero base
    for k in range(n):
        ax.text(k, q[k], f"{100 * (q[k] / mean - 1):+.2f} %", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(racks)
    ax.set_xlabel("rack (0 = first on the supply header)")
    ax.set_ylabel("flow [L/min] (axis does not start at 0)")
    a2 = ax.twinx()
    a2.plot(racks, tmax, "o-", color="tab:orange", ms=4, label="hottest chip of the rack (right axis)")
    a2.set_ylabel("hottest chip T_j [°C]", color="tab:orange")
    t_span = max(float(tmax.max() - tmax.min()), 0.01)
    a2.set_ylim(tmax.min() - 1.5 * t_span, tmax.max() + 0.5 * t_span)
    hs, ls = ax.get_legend_handles_labels()
    h2, l2 = a2.get_legend_handles_labels()
    ax.legend(hs + h2, ls + l2, fontsize=8, loc="lower left")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(f"{name}\nflow per rack ({r.summary.get('row_return', '')} return; spread "
                 f"{r.summary.get('rack_flow_spread', float('nan')):.3g} %)")  # fmt: skip
    save(fig, "rack_flow")

    p = r.get("rack.pressure")
    hs_, hr_ = r.get("rack.header_supply_nodes"), r.get("rack.header_return_nodes")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * n + 3), 4.2), constrained_layout=True)
    ax.plot(racks, p[hs_] / 1e3, "o-", color="tab:red", label="supply header at the take-off")
    ax.plot(racks, p[hr_] / 1e3, "o-", color="tab:blue", label="return header at the take-in")
    ax.plot(racks, (p[hs_] - p[hr_]) / 1e3, "s--", color="k", ms=4, label="difference: what drives the rack")
    ax.set_xticks(racks)
    ax.set_xlabel("rack (0 = first on the supply header)")
    ax.set_ylabel("static pressure [kPa]")
    ax.grid(True, alpha=0.3)
    _legend_outside(ax)
    ax.set_title(f"{name}\npressure along the row headers")
    save(fig, "row_header_pressure")


def _row_plate_plots(r: Results, save) -> None:
    """plate_map and plate_temperatures over every plate of a row: racks
    are rows of the map, the plates of one rack (tray by tray) its columns."""
    name = r.summary["case"]
    rack_of = r.get("rack.plate_rack")
    tray = r.get("rack.plate_tray")
    pr = r.get("rack.plate_flow_ratio")
    tj = r.celsius("rack.plate_T_j")
    limit = r.celsius("rack.plate_T_j_limit")
    n = int(rack_of.max()) + 1
    per = len(tj) // n
    grid_r = pr.reshape(n, per)
    tjg = tj.reshape(n, per)
    grid_d = tjg - tjg.mean(axis=0)  # each chip against the same chip (same place in the rack) in every rack
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, min(16.0, 0.08 * per + 4)), 2 * (0.35 * n + 1.6) + 0.6),
                             constrained_layout=True)  # fmt: skip
    xe, ye = np.arange(per + 1) - 0.5, np.arange(n + 1) - 0.5
    dev = max(0.03, float(np.nanmax(np.abs(grid_r - 1))))
    m = axes[0].pcolormesh(xe, ye, grid_r, cmap="RdBu", vmin=1 - dev, vmax=1 + dev)
    fig.colorbar(m, ax=axes[0], label="plate flow / row mean of its type")
    axes[0].set_title("flow ratio over the row (scale at least ±3 %)")
    span = max(0.01, float(np.abs(grid_d).max()))
    m = axes[1].pcolormesh(xe, ye, grid_d, cmap="coolwarm", vmin=-span, vmax=span)
    fig.colorbar(m, ax=axes[1], label="T_j − mean of the same chip in every rack [K]")
    margin = r.summary.get("T_junction_margin_min")
    tail = f"; smallest margin to the junction limit {margin:.2f} K" if margin is not None else ""
    axes[1].set_title(f"T_j against the same chip in the other racks (scale at least ±0.01 K){tail}", fontsize=10)
    t0 = tray[:per]
    for ax in axes:
        for x in np.flatnonzero(np.diff(t0)) + 0.5:
            ax.axvline(x, color="0.5", lw=0.3)
        ax.set_yticks(np.arange(n))
        ax.set_ylabel("rack")
        ax.set_xlabel("plate within the rack (tray by tray from the bottom; thin lines: trays)")
    fig.suptitle(f"{name}: per plate, every rack")
    save(fig, "plate_map")

    t_in, t_out = r.celsius("rack.plate_T_in"), r.celsius("rack.plate_T_out")
    fig, ax = plt.subplots(figsize=(11, 4.2), constrained_layout=True)
    idx = np.arange(len(tj))
    ms = 3 if len(tj) < 300 else 1.5
    ax.plot(idx, t_in, "v", ms=ms, label="plate inlet")
    ax.plot(idx, t_out, "^", ms=ms, label="plate outlet")
    ax.plot(idx, tj, "o", ms=ms, label="junction (T_in + R P)")
    hot = int(np.argmax(tj))
    ax.plot(idx[hot], tj[hot], "o", mfc="none", mec="r", ms=9, label=f"hottest: {r.summary.get('worst_plate', '')}")
    for lim in sorted(set(limit[np.isfinite(limit)].tolist())):
        ax.axhline(lim, color="r", ls="--", lw=1, label=f"junction limit {lim:.0f} °C")
    ax.axhline(r.summary["T_supply"], color="k", ls=":", lw=0.8, label=f"supply {r.summary['T_supply']:.1f} °C")
    _rack_separators(ax, rack_of)
    ax.set_xlabel("plate (rack by rack; tray by tray within a rack; series order within a branch)")
    ax.set_ylabel("T [°C]")
    ax.set_title(f"{name}: temperature per plate", pad=14)
    _legend_outside(ax)
    save(fig, "plate_temperatures")
    _residuals(save, {"Newton": r.get("rack.residual_history")}, "row network: Newton (global gradient)")


# ----------------------------------------------------------------------------- facility


def daily_energy_per_token(power, tokens_per_s, steps_per_day: int = 24):
    """Each day's energy over that day's tokens: ``(J/token per day, energy
    per day (J), tokens per day)`` from equal time steps of ``power`` (W) and
    throughput (1/s); a last partial day is its own entry. The token-weighted
    mean of the daily values is the period's energy over its tokens."""
    power = np.asarray(power, np.float64)
    tokens = np.asarray(tokens_per_s, np.float64)
    step = 86400.0 / steps_per_day
    edges = np.arange(0, len(power), steps_per_day)
    energy = np.add.reduceat(power, edges) * step
    count = np.add.reduceat(tokens, edges) * step
    return energy / count, energy, count


def _monthly_groups(month: np.ndarray, n: int):
    """(labels, index per row): calendar months when every row has a dated
    label, else 30-day periods."""
    if month.size == n and (month > 0).all():
        names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        present = list(dict.fromkeys(month.tolist()))
        index = np.array([present.index(m) for m in month.tolist()])
        return [names[m - 1] for m in present], index
    index = np.arange(n) // (30 * 24)
    return [f"days {30 * i + 1}-{min(30 * (i + 1), -(-n // 24))}" for i in range(index.max() + 1)], index


def _facility(r: Results, save) -> None:
    if r.has("optimize.grid") and not r.has("facility.hourly"):
        _optimize(r, save)
        return
    name = r.summary["case"]
    hourly = {k: v[0] for k, v in r.group("facility.hourly").items()}
    sweep = {k: v[0] for k, v in r.group("facility.sweep").items()}
    breakdown = {v[2]: float(v[0]) for v in r.group("facility.breakdown").values()}
    limits = {k: float(v[0]) for k, v in r.group("facility.limits").items()}
    design_point = not r.parsed.get("hourly", True)
    j_annual = float(r.summary["J_per_token_facility"])

    # 1. energy per token by component (no zero-valued entries)
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    bottom = 0.0
    total = sum(breakdown.values())
    colors = plt.cm.tab10(np.arange(10))
    for k, (label, value) in enumerate(breakdown.items()):
        if value <= 1e-6 * total:
            continue
        ax.bar([0], [value], bottom=bottom, color=colors[k % 10], width=0.5,
               label=f"{label}: {value:.4g} J ({100 * value / total:.1f} %)")  # fmt: skip
        bottom += value
    ax.set_xticks([0], ["facility"])
    ax.set_xlim(-0.5, 0.5)
    ax.set_ylabel("energy per token [J]")
    period = "at the design point" if design_point else "over the period"
    ax.set_title(f"{name}\nenergy per token {period}: {bottom:.4g} J", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    save(fig, "energy_per_token")

    # 2. sweep of the supply setpoint
    ts = sweep["supply_temperature"]
    ok = sweep["converged"] > 0
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, constrained_layout=True)
    a1.plot(ts[ok], sweep["J_per_token_facility"][ok], "o-", ms=3, label="facility")
    a1.plot(ts[ok], sweep["J_per_token_IT"][ok], "o-", ms=3, label="IT")
    a1b = a1.twinx()
    a1b.plot(ts[ok], sweep["J_per_token_cooling"][ok], "s--", ms=3, color="C2", label="cooling (right axis)")
    a1.set_ylabel("J/token (facility, IT)")
    a1b.set_ylabel("J/token (cooling)", color="C2")
    h1, l1 = a1.get_legend_handles_labels()
    h2, l2 = a1b.get_legend_handles_labels()
    a1.legend(h1 + h2, l1 + l2, loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=3, fontsize=8, frameon=False)
    a2.plot(ts[ok], sweep["T_junction_max"][ok], "o-", ms=3, color="C3", label="hottest junction")
    a2.axhline(limits["T_junction_limit"], color="r", ls="--", lw=1,
               label=f"junction limit {limits['T_junction_limit']:.0f} °C")  # fmt: skip
    if abs(limits["T_throttle"] - limits["T_junction_limit"]) > 0.05:
        a2.axhline(limits["T_throttle"], color="m", ls=":", lw=1, label=f"throttle onset {limits['T_throttle']:.0f} °C")
    for a in (a1, a2):
        a.axvline(limits["T_supply_setpoint"], color="k", ls=":", lw=1)
        a.grid(True, alpha=0.3)
    a2.plot([], [], "k:", lw=1, label=f"case setpoint {limits['T_supply_setpoint']:.0f} °C")
    for t in ts[~ok]:
        a2.axvline(t, color="k", alpha=0.2)
    a2.set_xlabel("facility-water supply setpoint [°C]")
    a2.set_ylabel("hottest junction [°C]")
    _legend_outside(a2)
    fig.suptitle(f"{name}: energy per token vs supply setpoint", fontsize=10)
    save(fig, "supply_temperature_sweep")

    if design_point:
        fig, ax = plt.subplots(figsize=(7, 3.8), constrained_layout=True)
        names = {"dry_bulb": "ambient dry bulb", "wet_bulb": "ambient wet bulb",
                 "T_facility_supply": "facility-water supply", "T_facility_return": "facility-water return",
                 "T_secondary_supply": "CDU secondary supply", "T_junction": "junction"}  # fmt: skip
        vals = [float(hourly[k][0]) for k in names]
        ax.barh(list(names.values()), vals, color="C0")
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
        ax.axvline(limits["T_junction_limit"], color="r", ls="--", lw=1, label="junction limit")
        ax.axvline(limits["T_supply_setpoint"], color="k", ls=":", lw=1, label="supply setpoint")
        ax.set_xlabel("[°C]")
        ax.set_title(f"{name}: design-point temperatures")
        _legend_outside(ax)
        save(fig, "design_point")
        return

    # 3. annual profile: daily means with hourly extremes, limits, daily J/token
    n = len(hourly["dry_bulb"])
    edges = np.arange(0, n, 24)
    days = np.arange(len(edges))

    def agg(key, how):
        if how == "mean":
            return np.add.reduceat(hourly[key], edges) / np.diff(np.append(edges, n))
        return getattr(np, how).reduceat(hourly[key], edges)

    fig, (b1, b2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True, constrained_layout=True)
    b1.fill_between(days, agg("dry_bulb", "minimum"), agg("dry_bulb", "maximum"), color="C0", alpha=0.25, lw=0,
                    label="dry bulb, daily range")  # fmt: skip
    b1.plot(days, agg("wet_bulb", "mean"), lw=0.8, color="C9", label="wet bulb, daily mean")
    b1.plot(days, agg("T_facility_supply", "maximum"), lw=1, color="C2",
            label="facility supply, hourly max")  # fmt: skip
    b1.plot(days, agg("T_junction", "maximum"), lw=1, color="C3", label="junction, hourly max")
    b1.plot(days, agg("T_junction", "mean"), lw=0.8, color="C3", alpha=0.5, label="junction, daily mean")
    b1.axhline(limits["T_junction_limit"], color="r", ls="--", lw=1,
               label=f"junction limit {limits['T_junction_limit']:.0f} °C")  # fmt: skip
    if abs(limits["T_throttle"] - limits["T_junction_limit"]) > 0.05:
        b1.axhline(limits["T_throttle"], color="m", ls=":", lw=1, label=f"throttle onset {limits['T_throttle']:.0f} °C")
    b1.axhline(limits["T_supply_setpoint"], color="k", ls=":", lw=1,
               label=f"supply setpoint {limits['T_supply_setpoint']:.0f} °C")  # fmt: skip
    b1.set_ylabel("[°C]")
    b1.grid(True, alpha=0.3)
    _legend_outside(b1)
    b1.set_title(f"{name}: over the weather file")
    j_day, _, _ = daily_energy_per_token(hourly["P_facility"], hourly["tokens_per_s"])
    b2.plot(days, j_day, lw=1, color="k", label="facility J/token, day energy / day tokens")
    b2.axhline(j_annual, color="C1", ls="--", lw=1.2, label=f"period: {j_annual:.4g} J/token")
    b2.set_ylabel("J/token")
    b2.grid(True, alpha=0.3)
    b2b = b2.twinx()
    no_free = np.add.reduceat(1.0 - hourly["free_cooling"], edges)
    if no_free.any():
        b2b.bar(days, no_free, width=1.0, color="C3", alpha=0.3, label="hours/day without free cooling (right)")
        b2b.set_ylim(0, 24)
        b2b.set_ylabel("hours/day without free cooling", color="C3")
    else:
        b2b.set_yticks([])
    b2.set_zorder(b2b.get_zorder() + 1)
    b2.patch.set_visible(False)
    h1, l1 = b2.get_legend_handles_labels()
    h2, l2 = b2b.get_legend_handles_labels()
    b2.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=8)
    b2.set_xlabel("day of the weather file")
    save(fig, "annual_profile")

    # 4. monthly energy, PUE and water
    labels, index = _monthly_groups(hourly["month"], n)
    ng = len(labels)

    def per_group(key):
        return np.bincount(index, weights=hourly[key], minlength=ng) * 3600.0

    e_it, e_cool, e_fac = per_group("P_IT"), per_group("P_cooling"), per_group("P_facility")
    water = np.bincount(index, weights=hourly["water_makeup"], minlength=ng) * 3600.0 / 1000.0  # m^3 at 1 kg/L
    has_water = bool(water.sum() > 0)
    fig, axes = plt.subplots(2 + has_water, 1, figsize=(9, 7 + 2 * has_water), sharex=True, constrained_layout=True)
    x = np.arange(ng)
    other = e_fac - e_it - e_cool
    axes[0].bar(x, e_it / 3.6e9, color="C0", label="IT")
    axes[0].bar(x, e_cool / 3.6e9, bottom=e_it / 3.6e9, color="C2", label="cooling")
    if (other > 1e-6 * e_fac).any():
        axes[0].bar(x, other / 3.6e9, bottom=(e_it + e_cool) / 3.6e9, color="C7", label="overhead")
    axes[0].set_ylabel("energy [MWh]")
    _legend_outside(axes[0])
    axes[0].set_title(f"{name}: per month (PUE {r.summary['PUE']:.4g} over the period)")
    pue = e_fac / e_it
    axes[1].plot(x, pue, "o-", color="k", label="PUE")
    axes[1].axhline(float(r.summary["PUE"]), color="C1", ls="--", lw=1, label=f"period {r.summary['PUE']:.4g}")
    axes[1].set_ylabel("PUE (facility / IT energy)")
    _legend_outside(axes[1])
    if has_water:
        axes[2].bar(x, water, color="C9")
        axes[2].set_ylabel("make-up water [m³]")
    for a in axes:
        a.grid(True, axis="y", alpha=0.3)
    axes[-1].set_xticks(x, labels, fontsize=8)
    save(fig, "monthly")


def _optimize(r: Results, save) -> None:
    g = {k: v[0] for k, v in r.group("optimize.grid").items()}
    grid_t, grid_s = g["supply_temperature"], g["flow_scale"]
    j = np.where(np.isfinite(g["J_per_token_facility"]), g["J_per_token_facility"], np.nan)
    limit = float(r.summary["junction_limit"])
    fig, ax = plt.subplots(figsize=(7, 5.2), constrained_layout=True)
    lo, hi = robust_limits(j, 0, 100)
    m = ax.contourf(grid_t, grid_s, j.T, levels=np.linspace(lo, hi, 21), cmap="viridis")
    fig.colorbar(m, ax=ax, label="facility J/token")
    if np.nanmin(g["T_junction_max"]) < limit < np.nanmax(g["T_junction_max"]):
        cs = ax.contour(grid_t, grid_s, (g["T_junction_max"] - limit).T, levels=[0.0], colors="r")
        ax.clabel(cs, fmt={0.0: f"T_j = {limit:.0f} °C"}, fontsize=8)
    infeasible = (g["feasible"] == 0).T.astype(float)
    if infeasible.any():
        ax.contourf(grid_t, grid_s, infeasible, levels=[0.5, 1.5], hatches=["//"], colors="none")
    ax.plot(r.summary["grid_best_supply_temperature"], r.summary["grid_best_flow_scale"], "ws", ms=7,
            mec="k", label="best grid point", clip_on=False)  # fmt: skip
    t_opt, s_opt = r.summary["supply_temperature_opt"], r.summary["flow_scale_opt"]
    j_opt = r.summary["J_per_token_facility_opt"]
    label = f"optimum: {j_opt:.4g} J at {t_opt:.1f} °C, flow × {s_opt:.2f}"
    plate = [k for k in ("channel_width", "fin_thickness") if f"{k}_opt" in r.summary]
    if plate:  # the plate's geometry was optimized too: the grid is the case's own plate, the star is not
        label += "".join(f", {k.replace('_', ' ')} {r.summary[k + '_opt']:.3g} mm" for k in plate)
        own = ", ".join(f"{k.replace('_', ' ')} {r.summary[k + '_case']:.3g} mm" for k in plate)
    ax.plot(t_opt, s_opt, "r*", ms=12, clip_on=False, label=label)
    ax.set_xlabel("facility-water supply setpoint [°C]")
    ax.set_ylabel("coolant flow scale")
    what = "facility J/token (hatched: infeasible; red: T_j = limit)"
    if plate:
        what += f"\ngrid: the case's plate, {own}"
    ax.set_title(f"{r.summary['case']}\n{what}", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1 if plate else 2, fontsize=8, frameon=False)
    save(fig, "optimize")


# ----------------------------------------------------------------------------- transient_hall


_BINS = 600  # time bins of a transient power plot once the trace has more than 2 samples per bin


def _binned(x, bins: int):
    """``(x_bins, mean, band)`` for plotting a long time series: with at most
    ``2 * bins`` samples, ``x`` itself, the identity and ``band = None``;
    otherwise the centres of ``bins`` equal groups of samples, a function
    giving the running mean over about four groups at each centre (linear, so
    a stack of means still adds up to the mean of the total) and one giving
    each group's ``(min, max)``."""
    n = len(x)
    if n <= 2 * bins:
        return x, (lambda v: v), None
    edges = np.linspace(0, n, bins + 1).astype(int)
    centres = (edges[:-1] + edges[1:] - 1) // 2
    half = 2 * (n // bins)  # a mean over about four bins: a workload period near one bin's width
    # would otherwise alias into a wavy mean

    def mean(v):
        c = np.concatenate([np.zeros((1,) + v.shape[1:]), np.cumsum(v, axis=0)])
        lo, hi = np.maximum(centres - half, 0), np.minimum(centres + half + 1, n)
        return (c[hi] - c[lo]) / (hi - lo).reshape((-1,) + (1,) * (v.ndim - 1))

    def band(v):
        return np.minimum.reduceat(v, edges[:-1], axis=0), np.maximum.reduceat(v, edges[:-1], axis=0)

    return mean(x), mean, band


def _transient(r: Results, save) -> None:
    name = r.summary["case"]
    ser = {k: v[0] for k, v in r.group("transient.series").items()}
    limits = {k: float(v[0]) for k, v in r.group("transient.limits").items()}
    t = ser["time"]
    scale, unit = (60.0, "min") if t[-1] > 600 else (1.0, "s")
    x = t / scale

    # 1. stacked power: chips / rest of the racks / cooling / losses, and one accelerator
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, constrained_layout=True,
                                 gridspec_kw=dict(height_ratios=[2, 1]))  # fmt: skip
    parts = [("accelerators", ser["P_chips"]), ("rest of the racks", ser["P_IT"] - ser["P_chips"]),
             ("cooling (fans + pumps)", ser["P_cooling"]), ("conversion + overhead", ser["P_losses"])]  # fmt: skip
    if "P_chiller" in ser:
        parts[2:3] = [("cooling (fans + pumps)", ser["P_cooling"] - ser["P_chiller"]), ("chiller", ser["P_chiller"])]
    # A trace with many workload cycles per pixel draws as a solid block: then the stack shows the mean of
    # each of _BINS time bins and the swings are drawn as each bin's min-max band.
    xb, mean, band = _binned(x, _BINS)
    a1.stackplot(xb, *[mean(v) / 1e6 for _, v in parts], labels=[k for k, _ in parts], alpha=0.85)
    if band is not None:
        lo, hi = band(ser["P_facility"])
        a1.plot(xb, mean(ser["P_facility"]) / 1e6, "k", lw=0.8, label="site (facility) power, mean")
        a1.plot(xb, hi / 1e6, color="k", lw=0.5, ls=":", label="site power, max and min per bin")
        a1.plot(xb, lo / 1e6, color="k", lw=0.5, ls=":")
    else:
        a1.plot(x, ser["P_facility"] / 1e6, "k", lw=0.6, label="site (facility) power")
    a1.set_ylabel("power [MW]")
    binned = f"; {len(xb)} bins of {(x[-1] - x[0]) / len(xb):.3g} {unit}" if band is not None else ""
    a1.set_title(f"{name}\nsite power peak {ser['P_facility'].max() / 1e6:.3f} MW, "
                 f"mean {ser['P_facility'].mean() / 1e6:.3f} MW{binned}", fontsize=10)  # fmt: skip
    _legend_outside(a1)
    pa = ser["P_accelerator"]
    a2b = a2.twinx()
    if band is not None:
        a2.fill_between(xb, *band(pa[:, 0]), color="C0", alpha=0.3, lw=0, label="one accelerator (rack 0), min-max")
        a2.plot(xb, mean(pa[:, 0]), color="C0", lw=0.7, label="one accelerator (rack 0), mean")
        a2b.plot(xb, mean(ser["P_rack"][:, 0]) / 1e3, color="C1", lw=0.7, ls="--", label="rack 0 (right axis), mean")
    else:
        a2.plot(x, pa[:, 0], lw=0.7, label="one accelerator (rack 0)")
        a2b.plot(x, ser["P_rack"][:, 0] / 1e3, color="C1", lw=0.7, label="rack 0 (right axis)")
    a2.set_ylabel("accelerator [W]")
    a2b.set_ylabel("rack [kW]", color="C1")
    a2.set_xlabel(f"time [{unit}]")
    h1, l1 = a2.get_legend_handles_labels()
    h2, l2 = a2b.get_legend_handles_labels()
    a2.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=8)
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
    save(fig, "power_stack")

    # 2. temperatures: junctions, coolant, facility water, fan speed
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, constrained_layout=True,
                                 gridspec_kw=dict(height_ratios=[2, 1]))  # fmt: skip
    tj = ser["T_junction"]
    a1.plot(x, tj.max(axis=1), color="C3", lw=0.8, label="hottest junction")
    if tj.shape[1] > 1 and np.ptp(tj.max(axis=1) - tj.min(axis=1)) > 0.05:
        a1.plot(x, tj.min(axis=1), color="C3", lw=0.5, ls=":", label="coolest junction")
    a1.plot(x, ser["T_cold_plate_out"].max(axis=1), color="C1", lw=0.8, label="cold-plate outlet")
    a1.plot(x, ser["T_cdu_supply"], color="C0", lw=0.8, label="CDU secondary supply")
    a1.plot(x, ser["T_facility_return"], color="C4", lw=0.8, label="facility return")
    a1.plot(x, ser["T_facility_supply"], color="C2", lw=0.8, label="facility supply")
    tl, ts = limits["T_junction_limit"], limits["T_supply_setpoint"]
    a1.axhline(tl, color="r", ls="--", lw=1, label=f"junction limit {tl:.0f} °C")
    a1.axhline(ts, color="k", ls=":", lw=1, label=f"facility supply setpoint {ts:.0f} °C")
    if "T_cdu_supply_setpoint" in limits:
        tc = limits["T_cdu_supply_setpoint"]
        a1.axhline(tc, color="C0", ls=":", lw=1, label=f"secondary supply setpoint {tc:.0f} °C")
    if "T_junction_max_baseline" in ser:
        a1.plot(x, ser["T_junction_max_baseline"], color="C3", lw=0.6, alpha=0.5, label="hottest junction, no event")
        for a in (a1, a2):
            a.axvspan(float(r.summary["dr_start"]) / scale, float(r.summary["dr_end"]) / scale, color="0.85",
                      label="demand-response event" if a is a1 else None)  # fmt: skip
    a1.set_ylabel("[°C]")
    a1.set_title(f"{name}\nhottest junction {tj.max():.1f} °C at {t[np.argmax(tj.max(axis=1))] / scale:.2f} {unit}",
                 fontsize=10)  # fmt: skip
    _legend_outside(a1)
    a2.plot(x, ser["fan_fraction"], color="k", lw=0.8, label="dry-cooler fan speed")
    a2.plot(x, ser["clock"].min(axis=1), color="C3", lw=0.8, ls="--", label="lowest clock fraction")
    if "valve_opening" in ser:
        a2.plot(x, ser["valve_opening"], color="C0", lw=0.8, label="CDU valve opening")
    if "pump_speed" in ser:
        a2.plot(x, ser["pump_speed"], color="C1", lw=0.8, label="secondary pump speed")
    if "dry_cooler_flow" in ser and float(np.min(ser["dry_cooler_flow"])) < 1.0:
        a2.plot(x, ser["dry_cooler_flow"], color="C2", lw=0.8, ls="--", label="water through the dry cooler")
    if "chiller_on" in ser:
        a2.fill_between(x, 0, ser["chiller_on"], step="pre", color="C0", alpha=0.25, lw=0, label="chiller on")
    a2.set_ylim(0, 1.05)
    a2.set_ylabel("fraction")
    a2.set_xlabel(f"time [{unit}]")
    _legend_outside(a2)
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
    save(fig, "temperatures")

    # 3. grid: site and grid power, their spectra, the band edges
    from scipy.signal import welch

    dt = float(t[1] - t[0])
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6.5), constrained_layout=True)
    a1.plot(x, ser["P_facility"] / 1e6, lw=0.6, color="0.5", label="site (facility) power")
    a1.plot(x, ser["P_grid"] / 1e6, lw=0.9, color="C0", label="drawn from the grid")
    a1.set_xlabel(f"time [{unit}]")
    a1.set_ylabel("power [MW]")
    a1.set_title(f"{name}\ngrid peak {ser['P_grid'].max() / 1e6:.3f} MW, "
                 f"largest ramp {np.abs(np.diff(ser['P_grid'])).max() / dt / 1e6:.3g} MW/s", fontsize=10)  # fmt: skip
    _legend_outside(a1)
    n = min(len(t), max(256, len(t) // 4))
    for key, color, label in (("P_facility", "0.5", "site"), ("P_grid", "C0", "grid")):
        f, psd = welch(ser[key] - ser[key].mean(), fs=1.0 / dt, nperseg=n)
        a2.loglog(f[1:], psd[1:] / 1e12, color=color, lw=0.8, label=label)
    for edge in (0.001, 0.01, 0.1, 1.0):
        if edge < 0.5 / dt:
            a2.axvline(edge, color="k", ls=":", lw=0.8)
    a2.plot([], [], "k:", lw=0.8, label="band edges (summary)")
    a2.set_xlabel("frequency [Hz]")
    a2.set_ylabel("power spectral density [MW²/Hz]")
    _legend_outside(a2)
    for a in (a1, a2):
        a.grid(True, alpha=0.3, which="both")
    save(fig, "grid_spectrum")

    if np.any(ser["E_storage"] > 0):
        cap = float(r.summary["storage_capacity"])
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, constrained_layout=True)
        stores = int(r.summary.get("storage_stores", 1))
        if "E_storage_rack" in ser:  # one store per rack: each one's charge against its own capacity
            each = ser["E_storage_rack"] * stores / cap
            for j in range(each.shape[1]):
                a1.plot(x, each[:, j], color="C2", lw=0.6, alpha=0.5, label="each rack's store" if j == 0 else None)
            a1.plot(x, ser["E_storage"] / cap, color="k", lw=0.9, label="all stores together")
        else:
            a1.plot(x, ser["E_storage"] / cap, color="C2", lw=0.9, label="state of charge")
        for key in ("storage_soc_min_bound", "storage_soc_max_bound"):
            a1.axhline(float(r.summary[key]), color="r", ls="--", lw=0.8)
        a1.plot([], [], "r--", lw=0.8, label="state-of-charge bounds")
        a1.set_ylim(0, 1)
        a1.set_ylabel("state of charge")
        size = f"{stores} x {cap / stores / 3.6e6:.4g} kWh (one per rack)" if stores > 1 else f"{cap / 3.6e6:.4g} kWh"
        a1.set_title(f"{name}\nstorage {size}: peak cut "
                     f"{float(r.summary['storage_peak_reduction']) / 1e3:.1f} kW, cost "
                     f"{float(r.summary['storage_energy_cost']) / 3.6e6:.3g} kWh", fontsize=10)  # fmt: skip
        _legend_outside(a1)
        a2.plot(x, ser["P_storage"] / 1e3, color="C2", lw=0.6,
                label="storage power (+ discharging)" + (", all stores together" if stores > 1 else ""))
        lim = float(r.summary["storage_power_limit"]) / 1e3
        a2.axhline(lim, color="r", ls="--", lw=0.8, label="power limit")
        a2.axhline(-lim, color="r", ls="--", lw=0.8)
        a2.set_ylabel("[kW]")
        a2.set_xlabel(f"time [{unit}]")
        _legend_outside(a2)
        for a in (a1, a2):
            a.grid(True, alpha=0.3)
        save(fig, "state_of_charge")


_DRAW = {
    "package_stack": _stack,
    "resolved_coldplate": _coldplate,
    "closure_calibration": _calibration,
    "compact_coldplate": _compact,
    "rack_network": _rack,
    "facility": _facility,
    "transient_hall": _transient,
}
