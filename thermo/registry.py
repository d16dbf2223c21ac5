"""Case types: the ``[case] type`` key of a case file names the model that
reads and runs it.

A model module provides ``CASE_TYPE`` (its type name), ``parse(CaseFile) ->
case`` (raises :class:`thermo.case.CaseError`) and ``run(case, CaseFile,
folder) -> dict[str, Quantity]`` (writes its results into ``folder``, raises
``SolveError`` when a solve does not converge). Adding a case type is one
import and one entry in :data:`CASE_TYPES`.
"""

from __future__ import annotations

import difflib
from types import ModuleType

from thermo import calibrate, coldplate, compact, facility, rack, stack
from thermo.case import CaseError, CaseFile

__all__ = ["CASE_TYPES", "model_for"]

CASE_TYPES: dict[str, ModuleType] = {
    stack.CASE_TYPE: stack,
    facility.CASE_TYPE: facility,
    rack.CASE_TYPE: rack,
    coldplate.CASE_TYPE: coldplate,
    compact.CASE_TYPE: compact,
    calibrate.CASE_TYPE: calibrate,
}


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
