"""A materialisation point for loop bodies on XLA:CPU.

XLA fuses an elementwise producer into each of its consumers and recomputes it
there when it judges the recomputation cheap. For a long producer with many
consumers (the flow solver's momentum assembly, read by the residual, the
BiCGSTAB loop, the pressure conductances and every level of the pressure
multigrid's set-up) the recomputation is not cheap: on the resolved unit cell
at 49k cells it made an outer iteration about three times slower than the
same work with the assembly written to memory once (benchmarks/RESULTS.md).
``lax.optimization_barrier`` does not prevent it: XLA removes the barrier
before it fuses. The outputs of a conditional are always written to memory,
so :func:`materialized` computes its function inside one whose other branch
is never taken.

The function runs inside the conditional, so its results are written
straight into the conditional's outputs. Arrays that are already computed,
passed through a conditional as operands, are copied once more instead (the
branch cannot hand its operands out as its results): the momentum assembly
wrote its ghosted inputs and its links that way, 13 copies per component,
and the resolved unit cell's flow solve took 7-14 % longer at 49k-806k
cells (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["materialized"]


def materialized(fn, args, anchor):
    """``fn(*args)``, computed once and written to memory.

    ``args``: a tuple of the function's arguments (pytrees); ``fn`` may also
    close over traced values. ``anchor``: any floating-point scalar that XLA
    cannot know when it compiles (a solver's input, such as a density or a
    setpoint). The conditional's predicate is ``anchor == anchor or anchor !=
    anchor``, true for every value, NaN included, so the result is always
    ``fn(*args)``; the other branch (zeros) is never taken. With a constant
    ``anchor`` XLA folds the predicate and removes the conditional, and
    nothing is materialised. Under ``vmap`` with a batched ``anchor`` the
    conditional becomes a select: still ``fn(*args)``, without the
    materialisation; pass an anchor that is not batched (a design parameter,
    not a per-lane iterate).
    """
    anchor = jnp.asarray(anchor)
    true = (anchor == anchor) | (anchor != anchor)
    shapes = jax.eval_shape(fn, *args)

    def zeros(_):
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    return lax.cond(true, lambda a: fn(*a), zeros, args)
