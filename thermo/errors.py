"""Errors the command line turns into exit codes (see thermo/cli.py)."""

from aidc_thermo.io.case import CaseError

__all__ = ["CaseError", "SolveError"]


class SolveError(RuntimeError):
    """A solve did not converge (or produced non-finite values); the message says
    how far it got and what to try. No results are written."""
