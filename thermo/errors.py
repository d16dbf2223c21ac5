"""Errors the command line turns into exit codes (see thermo/cli.py)."""

from aidc_thermo.io.case import CaseError

__all__ = ["CaseError", "SolveError", "FlowOutsideCurves"]


class SolveError(RuntimeError):
    """A solve did not converge (or produced non-finite values); the message says
    how far it got and what to try. No results are written."""


class FlowOutsideCurves(SolveError):
    """A converged plate flow outside the flow range of its cold-plate curves
    (which are not extrapolated). ``plate_type`` is the index of the plate type
    among the rack case's ``[[plate_types]]``. A library caller or a co-simulation
    step sees a failed solve; ``thermo run`` reports it as a problem of the case
    (exit 2) naming the curve reference's key, since the operating flow follows
    from the case's own inputs (its supply flow and its curves)."""

    def __init__(self, message: str, plate_type: int):
        super().__init__(message)
        self.plate_type = plate_type
