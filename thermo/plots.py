"""PNG plots of results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["stack_plots", "residual_history"]


def _mm(a):
    return np.asarray(a) * 1e3


def residual_history(path: Path, history: np.ndarray, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
    ax.semilogy(np.arange(len(history)), history, "o-", ms=3)
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative residual")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def stack_plots(folder: Path, case, disc, T: np.ndarray, tj: np.ndarray, history: np.ndarray) -> None:
    """Junction temperature map, a vertical slice through the hot spot, and
    the solver's residual history."""
    xf, yf, zf = disc.faces
    tj_c = np.where(disc.junction_mask, tj - 273.15, np.nan)
    fig, ax = plt.subplots(figsize=(6, 5), constrained_layout=True)
    m = ax.pcolormesh(_mm(xf), _mm(yf), (T[:, :, 0] - 273.15).T, cmap="inferno", shading="flat")
    ax.contour(
        _mm(0.5 * (xf[1:] + xf[:-1])),
        _mm(0.5 * (yf[1:] + yf[:-1])),
        np.ma.masked_invalid(tj_c.T),
        levels=8,
        colors="w",
        linewidths=0.5,
    )
    for b in case.layers[0].blocks:
        x0, y0, x1, y1 = _mm(b.rect)
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], "c-", lw=0.8)
        ax.text(x0, y1, f" {b.name}", color="c", fontsize=7, va="bottom")
    i, j = np.unravel_index(np.nanargmax(tj_c), tj_c.shape)
    ax.plot(_mm(0.5 * (xf[i] + xf[i + 1])), _mm(0.5 * (yf[j] + yf[j + 1])), "wx")
    ax.set_aspect("equal")
    ax.set_xlabel("x [mm]")
    ax.set_ylabel("y [mm]")
    ax.set_title(f"{case.name}\nbottom-layer temperature; junction max {np.nanmax(tj_c):.1f} °C (x)")
    fig.colorbar(m, ax=ax, label="T [°C]")
    fig.savefig(folder / "junction_temperature.png", dpi=130)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.5), constrained_layout=True)
    m = ax.pcolormesh(_mm(xf), _mm(zf), (T[:, j, :] - 273.15).T, cmap="inferno", shading="flat")
    z = 0.0
    for layer in case.layers:
        z += layer.thickness
        ax.axhline(_mm(z), color="w", lw=0.4, alpha=0.6)
        ax.text(_mm(xf[-1]), _mm(z - layer.thickness / 2), f" {layer.name}", fontsize=7, va="center")
    ax.set_xlabel("x [mm]")
    ax.set_ylabel("z [mm] (not to scale with x)")
    ax.set_title(f"vertical slice at y = {_mm(0.5 * (yf[j] + yf[j + 1])):.2f} mm (through the hot spot)")
    fig.colorbar(m, ax=ax, label="T [°C]")
    fig.savefig(folder / "vertical_slice.png", dpi=130)
    plt.close(fig)

    residual_history(folder / "residual_history.png", history, "conduction: multigrid-preconditioned CG")


def coldplate_plots(folder: Path, case, g, T, speed, t_bottom, flow_history, energy_history) -> None:
    """Base-bottom temperature, speed in the mid fin-height plane, residuals."""
    xf, yf, zf = g.faces
    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    m = ax.pcolormesh(_mm(xf), _mm(yf), (t_bottom - 273.15).T, cmap="inferno", shading="flat")
    ax.set_aspect("equal")
    ax.set_xlabel("x (flow) [mm]")
    ax.set_ylabel("y [mm]")
    ax.set_title(f"{case.name}: base bottom temperature")
    fig.colorbar(m, ax=ax, label="T [°C]")
    fig.savefig(folder / "base_temperature.png", dpi=130)
    plt.close(fig)

    zc = 0.5 * (zf[1:] + zf[:-1])
    kz = int(np.argmin(np.abs(zc - 0.5 * (g.base_top + g.fin_top))))
    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    masked = np.ma.masked_where(g.material[:, :, kz] != 0, speed[:, :, kz])
    m = ax.pcolormesh(_mm(xf), _mm(yf), masked.T, cmap="viridis", shading="flat")
    ax.set_aspect("equal")
    ax.set_xlabel("x (flow) [mm]")
    ax.set_ylabel("y [mm]")
    ax.set_title(f"speed at z = {_mm(zc[kz]):.2f} mm (mid fin height); solid blank")
    fig.colorbar(m, ax=ax, label="|u| [m/s]")
    fig.savefig(folder / "velocity_midplane.png", dpi=130)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    ax.semilogy(flow_history, label="flow (outer iterations)")
    ax.semilogy(energy_history, "o-", ms=3, label="energy (deferred correction)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("scaled residual")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(folder / "residual_history.png", dpi=130)
    plt.close(fig)
