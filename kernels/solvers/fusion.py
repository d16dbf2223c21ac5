"""A materialisation point for loop bodies on XLA:CPU.

XLA fuses an elementwise producer into each of its consumers and recomputes it
there when it judges the recomputation cheap. For a long producer with many
consumers (the flow solver's momentum assembly, read by the residual, the
BiCGSTAB loop, the pressure conductances and every level of the pressure
multigrid's set-up) the recomputation is not cheap: on the resolved unit cell
at 49k cells it made an outer iteration about three times slower than the
same work with the assembly written to memory once (benchmarks/RESULTS.md).
``lax.optimization_barrier`` does not prevent it: XLA removes the barrier
before it fuses. The output of a conditional is always written to memory, so
:func:`materialized` passes its operands through one whose other branch is
never taken.

Pass only what is not written yet: an array that an inner ``materialized``
already wrote is copied when it passes through a second one (the flow
solver's momentum links at 166k cells: the three assemblies took 30 ms with
the second conditional around them, 15 ms without).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["materialized"]


def materialized(tree, anchor):
    """``tree`` unchanged, computed once and written to memory.

    ``anchor``: any floating-point scalar that XLA cannot know when it
    compiles (a solver's input, such as a density or a setpoint). The
    conditional's predicate is ``anchor == anchor or anchor != anchor``, true
    for every value, NaN included, so the result is always ``tree``; the
    other branch (zeros) is never taken. With a constant ``anchor`` XLA folds
    the predicate and removes the conditional, and nothing is materialised.
    Under ``vmap`` with a batched ``anchor`` the conditional becomes a select:
    still the identity, without the materialisation; pass an anchor that is
    not batched (a design parameter, not a per-lane iterate).
    """
    anchor = jnp.asarray(anchor)
    true = (anchor == anchor) | (anchor != anchor)
    return lax.cond(true, lambda t: t, lambda t: jax.tree_util.tree_map(jnp.zeros_like, t), tree)
