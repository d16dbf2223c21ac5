"""Case types: the ``[case] type`` key of a case file names the model that
reads and runs it.

A model module provides ``CASE_TYPE`` (its type name), ``parse(CaseFile) ->
case`` (raises :class:`thermo.io.case.CaseError`) and ``run(case, CaseFile,
folder) -> dict[str, Quantity]`` (writes its results into ``folder``, raises
``SolveError`` when a solve does not converge). Adding a case type is one
loader function and one entry in :data:`CASE_TYPES`.

A model module is imported only when a case of its type is read, so that
``thermo check`` imports one model and nothing else.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType

from aidc_thermo.io.case import CaseError, CaseFile

__all__ = ["CASE_TYPES", "model_for"]


def _stack():
    from aidc_thermo.models import stack

    return stack


def _facility():
    from aidc_thermo.models import facility

    return facility


def _rack():
    from aidc_thermo.models import rack

    return rack


def _coldplate():
    from aidc_thermo.models import coldplate

    return coldplate


def _compact():
    from aidc_thermo.models import compact

    return compact


def _transient():
    from aidc_thermo.models import transient

    return transient


def _calibrate():
    from aidc_thermo.models import calibrate

    return calibrate


class _Models(Mapping):
    """Case type name -> model module, importing a module on first lookup
    (test_registry checks each module's ``CASE_TYPE`` against its key)."""

    def __init__(self, loaders: dict[str, Callable[[], ModuleType]]):
        self._loaders = loaders

    def __getitem__(self, kind: str) -> ModuleType:
        return self._loaders[kind]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


CASE_TYPES: Mapping[str, ModuleType] = _Models(
    {
        "package_stack": _stack,
        "facility": _facility,
        "rack_network": _rack,
        "resolved_coldplate": _coldplate,
        "compact_coldplate": _compact,
        "closure_calibration": _calibrate,
        "transient_hall": _transient,
    }
)


def model_for(case: CaseFile) -> ModuleType:
    """The model module for a parsed case file."""
    meta = case.data.get("case")
    if not isinstance(meta, dict):
        raise CaseError(case.path, "case", "missing required table [case] (with 'type' and 'name')")
    kind = meta.get("type")
    if kind is None:
        raise CaseError(case.path, "case.type", f"missing required key; one of {sorted(CASE_TYPES)}")
    if kind not in CASE_TYPES:
        close = difflib.get_close_matches(str(kind), list(CASE_TYPES), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise CaseError(
            case.path,
            "case.type",
            f"unknown case type {kind!r}{hint} (known: {sorted(CASE_TYPES)})",
        )
    return CASE_TYPES[kind]
