"""The validation set: each model against an analytic solution, a published
table or an independent code (``thermo validate``; docs/validation.md).

The functions here are the ones the tests call: a test asserts on the same
figures this package reports, so the table of ``thermo validate`` and the test
suite cannot drift apart. Reference values ship in ``aidc_thermo/data/validation.json``
with their sources (:func:`reference`, :func:`source`).

A case is a function returning a :class:`CaseResult`: its checks (reference,
measured, tolerance) and the figures the report draws. :data:`CASES` lists them
in report order; ``quick`` marks the subset of ``thermo validate --quick``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from importlib import resources

__all__ = [
    "CASES",
    "Case",
    "CaseResult",
    "Check",
    "Figure",
    "check_abs",
    "check_range",
    "check_rel",
    "reference",
    "select",
    "source",
]


@functools.cache
def _data() -> dict:
    return json.loads(resources.files("aidc_thermo.data").joinpath("validation.json").read_text())


def reference(key: str) -> dict:
    """The reference entry ``key`` of validation.json (values and its ``source`` key)."""
    return _data()["references"][key]


def source(key: str) -> dict:
    """A source of validation.json: ``citation``, ``url``, optional ``note``."""
    return _data()["sources"][key]


@dataclasses.dataclass(frozen=True)
class Check:
    """One compared figure. ``mode``: ``rel`` passes when
    |measured / reference - 1| <= tolerance; ``abs`` when |measured - reference|
    <= tolerance; ``range`` when low <= measured <= high (``reference`` is then
    the target inside the range, ``tolerance`` the pair (low, high))."""

    quantity: str
    reference: float
    measured: float
    tolerance: float | tuple[float, float]
    mode: str = "rel"
    unit: str = ""

    @property
    def difference(self) -> float:
        if self.mode == "rel":
            return self.measured / self.reference - 1.0 if self.reference != 0 else math.inf
        return self.measured - self.reference

    @property
    def passed(self) -> bool:
        m = self.measured
        if not math.isfinite(m):
            return False
        if self.mode == "range":
            lo, hi = self.tolerance
            return lo <= m <= hi
        return abs(self.difference) <= self.tolerance

    def row(self) -> dict:
        return {
            "quantity": self.quantity,
            "reference": self.reference,
            "measured": self.measured,
            "difference": self.difference,
            "tolerance": list(self.tolerance) if self.mode == "range" else self.tolerance,
            "mode": self.mode,
            "unit": self.unit,
            "passed": self.passed,
        }


def check_rel(quantity, reference, measured, tol, unit="") -> Check:
    return Check(quantity, float(reference), float(measured), float(tol), "rel", unit)


def check_abs(quantity, reference, measured, tol, unit="") -> Check:
    return Check(quantity, float(reference), float(measured), float(tol), "abs", unit)


def check_range(quantity, target, measured, low, high, unit="") -> Check:
    return Check(quantity, float(target), float(measured), (float(low), float(high)), "range", unit)


@dataclasses.dataclass(frozen=True)
class Figure:
    """What the report draws for a case.

    ``kind="convergence"``: ``series`` is a list of (label, h, error) and
    ``slopes`` the fitted slope of each, ``order`` the expected one (a reference
    line is drawn). ``kind="profile"``: ``series`` a list of (label, x, y) lines
    computed by the model, ``points`` a list of (label, x, y) reference markers
    and ``lines`` a list of (label, x, y) reference curves (dashed)."""

    name: str
    kind: str
    title: str
    xlabel: str
    ylabel: str
    series: list
    points: list = dataclasses.field(default_factory=list)
    lines: list = dataclasses.field(default_factory=list)
    slopes: list = dataclasses.field(default_factory=list)
    order: float | None = None
    logx: bool = False
    logy: bool = False


@dataclasses.dataclass
class CaseResult:
    checks: list[Check]
    figures: list[Figure] = dataclasses.field(default_factory=list)
    notes: str = ""


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    model: str
    title: str
    sources: tuple[str, ...]
    quick: bool
    run: Callable[[], CaseResult]
    description: str


def _cases() -> list[Case]:
    from . import cases

    return cases.CASES


CASES: list[Case]


def __getattr__(name):  # the case list imports JAX-heavy modules: build it on first use
    if name == "CASES":
        return _cases()
    raise AttributeError(name)


def select(quick: bool, only: list[str] | None = None) -> list[Case]:
    """The cases to run: all, the quick subset, or those named in ``only``
    (names or model families); an unknown name raises ValueError naming the known ones."""
    all_cases = _cases()
    if only:
        known = {c.name for c in all_cases} | {c.model for c in all_cases}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise ValueError(
                f"unknown validation case {', '.join(map(repr, unknown))}; known cases: "
                f"{', '.join(c.name for c in all_cases)}; families: {', '.join(sorted({c.model for c in all_cases}))}"
            )
        chosen = [c for c in all_cases if c.name in only or c.model in only]
        return [c for c in chosen if c.quick] if quick else chosen
    return [c for c in all_cases if c.quick] if quick else list(all_cases)
