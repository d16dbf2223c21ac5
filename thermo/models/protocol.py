"""The protocol every case type follows: four pieces, and ``thermo run`` is their
composition.

::

    case = model.parse(case_file)                    # host: validates, units to SI (CaseError -> exit 2)
    static, params = model.build(case)               # Static: hashable; Params: a pytree of numbers
    solution = model.solve(static, params)           # pure JAX: jit-able, vmap-able over params
    outputs = model.report(static, params, solution) # name -> Output, batched when params are
    model.check(static, params, solution)            # host: convergence and bounds (SolveError -> exit 3)

``Static`` holds what fixes array shapes and compiled programs (cell counts,
faces of the grid, schemes, boundary-condition kinds, the geometry kind,
precision); it is a frozen dataclass of tuples, strings, ints and floats, so
that it hashes: two designs with equal ``Static`` share one compilation.
``Params`` holds every number a user may sweep (flows, temperatures, powers,
conductivities, dimensions that do not change shapes, plant sizes); it is a
pytree (a frozen dataclass registered with :func:`jax.tree_util.register_dataclass`
or a NamedTuple) whose leaves are arrays or scalars in SI units, so that
stacking the ``Params`` of many designs along a new leading axis gives the
batched input of ``jax.vmap(solve, in_axes=(None, 0))``. Properties that
depend on a swept temperature (coolant density, viscosity, ...) are evaluated
inside ``solve`` from ``Params``, never frozen at parse time.

``solve`` does no host work: no Python loops over iterations, no ``float()``
of traced values; coupled iterations are ``lax.while_loop``. Its solution
carries the :class:`~aidc_thermo.kernels.diagnostics.SolveInfo` of every
inner solve.

``report`` returns the summary numbers as arrays (a leading batch axis when
``params`` has one). It always includes ``converged`` (bool: every inner solve
converged) and ``iterations`` (int: the largest inner iteration count).

``check`` runs on one unbatched design and raises
:class:`~aidc_thermo.errors.SolveError` when a solve did not converge, a value
is not finite, or the answer breaks a physical bound (:mod:`aidc_thermo.bounds`).
A sweep calls it on every design and marks, never drops, a design that fails.

``thermo run`` (and ``thermo sweep``) use :func:`protocol_of` to reach these
pieces; a model module that provides them sets ``PROTOCOL = True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

__all__ = ["Model", "Output", "protocol_of", "follows_protocol"]


@dataclass(frozen=True)
class Output:
    """One reported number (or a batch of them): values in SI or degC as
    ``units`` says; ``description`` says what it is for a reader of a table."""

    value: Any  # array, leading batch axis when the params were batched
    units: str
    description: str


@runtime_checkable
class Model(Protocol):
    CASE_TYPE: str

    def parse(self, case_file) -> Any: ...

    def build(self, case) -> tuple[Any, Any]: ...

    def solve(self, static, params) -> Any: ...

    def report(self, static, params, solution) -> dict[str, Output]: ...

    def check(self, static, params, solution) -> None: ...


_PIECES = ("parse", "build", "solve", "report", "check")


def follows_protocol(module: ModuleType) -> bool:
    """Whether a model module provides the four pieces and ``check``."""
    return bool(getattr(module, "PROTOCOL", False)) and all(callable(getattr(module, p, None)) for p in _PIECES)


def protocol_of(module: ModuleType) -> Model:
    """The model module itself, once checked to follow the protocol."""
    if not follows_protocol(module):
        missing = [p for p in _PIECES if not callable(getattr(module, p, None))]
        raise TypeError(f"{module.__name__} does not follow the model protocol (missing: {missing or ['PROTOCOL']})")
    return module  # type: ignore[return-value]
