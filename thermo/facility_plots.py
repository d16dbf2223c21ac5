"""PNG plots of a facility run and of ``thermo optimize`` (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["report_plots", "optimize_plot"]

T0 = 273.15


def report_plots(folder: Path, case, hourly: dict, sweep: dict, breakdown: dict) -> None:
    """energy_per_token.png (stacked bar), supply_temperature_sweep.png (J/token
    and T_j vs supply temperature), annual_profile.png (hourly runs) or
    design_point.png."""
    folder = Path(folder)
    # 1. energy breakdown per token
    fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
    bottom = 0.0
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for (name, value), c in zip(breakdown.items(), colors, strict=False):
        ax.bar([0], [value], bottom=bottom, color=c, width=0.5, label=f"{name}: {value:.4g} J")
        bottom += value
    ax.set_xticks([0], ["facility"])
    ax.set_xlim(-0.6, 2.4)
    ax.set_ylabel("energy per token [J]")
    period = "over the year" if case.hourly else "at the design point"
    ax.set_title(f"{case.name}\nenergy per token {period}: {bottom:.4g} J")
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    fig.savefig(folder / "energy_per_token.png", dpi=130)
    plt.close(fig)

    # 2. J/token and T_j vs supply temperature
    ts = sweep["supply_temperature"].data
    ok = sweep["converged"].data > 0
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 6), sharex=True, constrained_layout=True)
    for key, label in (("J_per_token_facility", "facility"), ("J_per_token_IT", "IT")):
        a1.plot(ts[ok], sweep[key].data[ok], "o-", ms=3, label=label)
    a1b = a1.twinx()
    a1b.plot(ts[ok], sweep["J_per_token_cooling"].data[ok], "s--", ms=3, color="C2", label="cooling")
    a1.set_ylabel("J/token (facility, IT)")
    a1b.set_ylabel("J/token (cooling)", color="C2")
    a1.legend(loc="upper left", fontsize=8)
    a1.set_title("energy per token vs facility-water supply temperature")
    a2.plot(ts[ok], sweep["T_junction_max"].data[ok], "o-", ms=3, color="C3")
    if (~ok).any():
        for t in ts[~ok]:
            a2.axvline(t, color="k", alpha=0.2)
    a2.set_xlabel("facility-water supply setpoint [°C]")
    a2.set_ylabel("hottest junction [°C]")
    a2.grid(True, alpha=0.3)
    a1.grid(True, alpha=0.3)
    fig.savefig(folder / "supply_temperature_sweep.png", dpi=130)
    plt.close(fig)

    # 3. annual profile (daily means) or the design point
    if case.hourly:
        n = len(hourly["dry_bulb"].data)
        days = n // 24
        if days >= 2:

            def daily(key):
                return hourly[key].data[: days * 24].reshape(days, 24).mean(axis=1)

            x = np.arange(days)
            fig, (b1, b2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, constrained_layout=True)
            for key, label in (("dry_bulb", "dry bulb"), ("wet_bulb", "wet bulb"),
                               ("T_facility_supply", "facility supply"), ("T_junction", "junction")):  # fmt: skip
                b1.plot(x, daily(key), lw=1, label=label)
            b1.set_ylabel("daily mean [°C]")
            b1.legend(fontsize=8, ncol=4)
            b1.grid(True, alpha=0.3)
            b1.set_title(f"{case.name}: annual profile")
            j = hourly["J_per_token_facility"].data[: days * 24].reshape(days, 24).mean(axis=1)
            b2.plot(x, j, lw=1, color="k", label="facility J/token")
            b2.set_ylabel("J/token")
            b2b = b2.twinx()
            b2b.fill_between(x, 0, 24 - hourly["free_cooling"].data[: days * 24].reshape(days, 24).sum(axis=1),
                             color="C3", alpha=0.3, step="mid", label="chiller/floating hours")  # fmt: skip
            b2b.set_ylabel("hours/day without free cooling", color="C3")
            b2b.set_ylim(0, 24)
            b2.set_xlabel("day of the weather file")
            b2.grid(True, alpha=0.3)
            fig.savefig(folder / "annual_profile.png", dpi=130)
            plt.close(fig)
    else:
        fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
        names = ["dry_bulb", "wet_bulb", "T_facility_supply", "T_facility_return", "T_secondary_supply", "T_junction"]
        vals = [float(hourly[k].data[0]) for k in names]
        ax.barh(names, vals, color="C0")
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
        ax.set_xlabel("[°C]")
        ax.set_title(f"{case.name}: design-point temperatures")
        fig.savefig(folder / "design_point.png", dpi=130)
        plt.close(fig)


def optimize_plot(path, case, grid_t, grid_s, j, tj, feasible, x_opt, x_grid, limit) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 5), constrained_layout=True)
    jm = np.where(np.isfinite(j), j, np.nan)
    m = ax.contourf(grid_t - T0, grid_s, jm.T, levels=20, cmap="viridis")
    fig.colorbar(m, ax=ax, label="facility J/token")
    cs = ax.contour(grid_t - T0, grid_s, (tj - limit).T, levels=[0.0], colors="r")
    ax.clabel(cs, fmt={0.0: "T_j = limit"}, fontsize=8)
    ax.contourf(grid_t - T0, grid_s, (~feasible).T.astype(float), levels=[0.5, 1.5], hatches=["//"], colors="none")
    ax.plot(x_grid[0] - T0, x_grid[1], "ws", ms=7, label="best grid point")
    ax.plot(x_opt[0] - T0, x_opt[1], "r*", ms=12, label="optimum")
    ax.set_xlabel("facility-water supply setpoint [°C]")
    ax.set_ylabel("coolant flow scale")
    ax.set_title(f"{case.name}\nfacility J/token (hatched: infeasible)", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.savefig(path, dpi=130)
    plt.close(fig)
