"""Boundedness guard: the maximum principle checked after every solve.

A steady temperature field whose only heat input is added (sources and
heat fluxes >= 0) and whose only sinks are inflows and exterior temperatures
(inlets, convective or fixed-temperature faces) has no temperature below the
lowest of those boundary temperatures; a fluid that takes heat only from a
solid is nowhere hotter than the hottest solid (or the hottest inflow). The
discretisations of every case type keep this property (M-matrix operators,
bounded TVD advection, mixing nodes), so a converged solution that breaks
it is a wrong answer, not a result: a hidden boundary value (the 0 K that
backflow through an outlet used to bring, issue 11), a sign error, a solver
that stopped on a bad iterate. :func:`check` raises
:class:`~thermo.errors.SolveError` (exit 3, no results folder) naming the
quantity, the offending value, where it is and the bound.

Tolerance: a value may pass a bound by ``REL_TOL`` (1e-3) of the
temperature rise it is measured against (the spread of the checked values
above the lower bound, or below the upper bound) plus a round-off floor of
``ABS_TOL[precision]`` (1e-7 in float64, 1e-4 in float32) times the largest
absolute temperature (about 3e-5 K and 0.03 K at 300 K), so that the solver
tolerances (relative residuals 1e-9 in float64, 1e-4 in float32) and
round-off pass while any real violation, which is a sizeable fraction of the
rise, fails. Temperatures here are in kelvin; values at or below 0 K and
non-finite values always fail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from aidc_thermo.errors import SolveError

__all__ = ["REL_TOL", "ABS_TOL", "tolerance", "check", "check_order", "grid_locator", "label_locator"]

REL_TOL = 1e-3
ABS_TOL = {"float64": 1e-7, "float32": 1e-4}


def tolerance(rise: float, scale: float, precision: str = "float64") -> float:
    """Allowed excursion (K) past a bound: ``REL_TOL * rise + ABS_TOL * scale``."""
    return REL_TOL * max(float(rise), 0.0) + ABS_TOL.get(precision, ABS_TOL["float32"]) * abs(float(scale))


def grid_locator(faces: Sequence[np.ndarray]) -> Callable[[tuple], str]:
    """Describe a cell ``(i, j, k)`` of a grid given by its face coordinates (m)."""
    centres = [0.5 * (np.asarray(f)[1:] + np.asarray(f)[:-1]) for f in faces]

    def locate(index: tuple) -> str:
        pos = ", ".join(f"{'xyz'[a]} = {1e3 * centres[a][i]:.4g} mm" for a, i in enumerate(index[: len(centres)]))
        return f"cell {tuple(int(i) for i in index)} ({pos})"

    return locate


def label_locator(labels: Sequence[str], what: str = "") -> Callable[[tuple], str]:
    """Describe entry ``(i,)`` (or ``(..., i)``) of a 1D array by its label."""

    def locate(index: tuple) -> str:
        i = int(index[-1])
        prefix = f"{what} " if what else ""
        lead = f" [batch {tuple(int(j) for j in index[:-1])}]" if len(index) > 1 else ""
        return f"{prefix}{i} ({labels[i]}){lead}"

    return locate


def _default_locator(index: tuple) -> str:
    return f"index {tuple(int(i) for i in index)}"


def _degc(t: float) -> str:
    return f"{t:.6g} K ({t - 273.15:.4g} degC)"


def check(
    quantity: str,
    values,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_why: str = "",
    upper_why: str = "",
    locate: Callable[[tuple], str] | None = None,
    precision: str = "float64",
    mask=None,
) -> None:
    """Raise :class:`SolveError` unless every value (K) of ``values`` (where
    ``mask`` is true) is finite, above 0 K and within ``[lower, upper]`` to
    the tolerance of :func:`tolerance` (the rise is the spread of the values
    above ``lower`` / below ``upper``). ``locate`` turns an index of
    ``values`` into words (a cell and its position, a node name, an hour)."""
    t = np.asarray(values, np.float64)
    sel = np.ones(t.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), t.shape)
    if not sel.any():
        return
    locate = locate or _default_locator

    def fail(index, text):
        raise SolveError(
            f"{quantity} {text} at {locate(index)}: the solution breaks the maximum principle (or is not a "
            "number) and is not a result; no results written"
        )

    bad = sel & ~np.isfinite(t)
    if bad.any():
        fail(np.unravel_index(int(np.argmax(bad)), t.shape), f"is {t[bad][0]} ({int(bad.sum())} value(s) not finite)")
    vals = np.where(sel, t, np.nan)
    lo_i = np.unravel_index(int(np.nanargmin(vals)), t.shape)
    hi_i = np.unravel_index(int(np.nanargmax(vals)), t.shape)
    t_lo, t_hi = float(t[lo_i]), float(t[hi_i])
    scale = max(abs(t_lo), abs(t_hi))
    if t_lo <= 0.0:
        n = int((sel & (t <= 0.0)).sum())
        fail(lo_i, f"is {_degc(t_lo)}, at or below absolute zero ({n} value(s))")
    if lower is not None:
        tol = tolerance(t_hi - lower, scale, precision)
        if t_lo < lower - tol:
            n = int((sel & (t < lower - tol)).sum())
            why = f", {lower_why}" if lower_why else ""
            fail(
                lo_i,
                f"is {_degc(t_lo)}, {lower - t_lo:.4g} K below its lower bound {_degc(lower)}{why} "
                f"({n} value(s) below; tolerance {tol:.2g} K)",
            )
    if upper is not None:
        tol = tolerance(upper - t_lo, scale, precision)
        if t_hi > upper + tol:
            n = int((sel & (t > upper + tol)).sum())
            why = f", {upper_why}" if upper_why else ""
            fail(
                hi_i,
                f"is {_degc(t_hi)}, {t_hi - upper:.4g} K above its upper bound {_degc(upper)}{why} "
                f"({n} value(s) above; tolerance {tol:.2g} K)",
            )


def check_order(
    hotter: str,
    t_hot,
    colder: str,
    t_cold,
    *,
    why: str,
    locate: Callable[[tuple], str] | None = None,
    precision: str = "float64",
) -> None:
    """Raise :class:`SolveError` where ``t_hot < t_cold`` beyond the tolerance
    (rise: the largest difference ``t_hot - t_cold``): an ordering that heat
    added can only keep (return above supply, junction above coolant)."""
    hot = np.asarray(t_hot, np.float64)
    cold = np.broadcast_to(np.asarray(t_cold, np.float64), hot.shape)
    check(f"{hotter} (K)", hot, locate=locate, precision=precision)
    check(f"{colder} (K)", cold, locate=locate, precision=precision)
    diff = hot - cold
    i = np.unravel_index(int(np.argmin(diff)), diff.shape)
    scale = float(max(np.abs(hot).max(), np.abs(cold).max()))
    tol = tolerance(float(diff.max()), scale, precision)
    if float(diff[i]) < -tol:
        n = int((diff < -tol).sum())
        raise SolveError(
            f"{hotter} {_degc(float(hot[i]))} is {-float(diff[i]):.4g} K below {colder} {_degc(float(cold[i]))} at "
            f"{(locate or _default_locator)(i)} ({n} value(s); tolerance {tol:.2g} K); {why}: the solution is "
            "not a result; no results written"
        )
