"""Solver diagnostics returned by every iterative kernel.

Solvers never throw their diagnostics away: each returns its solution together
with a :class:`SolveInfo`, which is a pytree (so it passes through ``jit`` and
``vmap``; under ``vmap`` every field gains the batch axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

__all__ = ["SolveInfo"]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class SolveInfo:
    """Outcome of an iterative solve.

    Attributes:
        converged: bool scalar, the residual met the tolerance within the
            iteration limit and stayed finite.
        iterations: int scalar, iterations performed.
        residual: final residual in the solver's stated norm (relative unless
            a solver documents otherwise).
        history: residual after each iteration, shape ``(max_iterations + 1,)``;
            entries past ``iterations`` are NaN (padding of a fixed-size array,
            never a result).
    """

    converged: jax.Array
    iterations: jax.Array
    residual: jax.Array
    history: jax.Array
