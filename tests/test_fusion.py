"""kernels.solvers.fusion.materialized: the identity (values, vmap, grad),
and the flow solver's loop keeps its materialisation point through XLA's
optimisations (the compiled program has the conditional; the speed it buys is
measured in benchmarks/, not here)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.kernels.fv.flow import FlowSpec, flow_boundary, solve_flow
from aidc_thermo.kernels.fv.grid import uniform_grid
from aidc_thermo.kernels.solvers.fusion import materialized
from aidc_thermo.validation.flow import params


def _loop(x, anchor, n):
    """``n`` passes that each materialise ``exp(x) - 1`` and add it up."""

    def body(k, acc):
        return acc + materialized(jnp.expm1(x), anchor)

    return jax.lax.fori_loop(0, n, body, jnp.zeros_like(x))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_materialized_is_the_identity_in_a_loop_under_vmap_and_grad(dtype):
    x = jnp.linspace(-1.0, 1.0, 7, dtype=dtype)
    n = 3
    loop = jax.jit(_loop, static_argnums=2)
    # any anchor, NaN and infinity included, leaves the values alone
    for anchor in (1.0, -0.0, np.nan, np.inf):
        got = loop(x, jnp.asarray(anchor, dtype), n)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(loop(x, jnp.asarray(2.0, dtype), n)))
        assert got.dtype == dtype
    expected = jnp.zeros_like(x)
    for _ in range(n):
        expected = expected + jnp.expm1(x)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    batch = jnp.stack([x, 2 * x])
    anchors = jnp.asarray([1.0, np.nan], dtype)
    for a_axis in (None, 0):  # the anchor shared (a conditional) or batched (a select)
        out = jax.vmap(lambda v, a: _loop(v, a, n), in_axes=(0, a_axis))(batch, anchors if a_axis == 0 else anchors[0])
        np.testing.assert_allclose(np.asarray(out), np.asarray(n * jnp.expm1(batch)), rtol=1e-6)
    grad = jax.grad(lambda v: jnp.sum(_loop(v, jnp.asarray(3.0, dtype), n)))(x)
    rtol = 1e-6 if dtype == jnp.float32 else 1e-14
    np.testing.assert_allclose(np.asarray(grad), np.asarray(n * jnp.exp(x)), rtol=rtol)
    # a pytree passes whole
    tree = {"a": x, "b": (x + 1, jnp.asarray(2, jnp.int32))}
    out = jax.jit(materialized)(tree, jnp.asarray(0.5, dtype))
    assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(tree)
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(tree), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_flow_loop_keeps_its_materialisation_through_xla():
    """With XLA's default optimisations (as users compile it) the flow
    solver's outer loop still has the conditional that writes the momentum
    coefficients once; a predicate XLA could fold (or two equal branches)
    would let it drop the conditional and fuse the assembly into every
    consumer again, several times slower per outer iteration."""
    grid = uniform_grid((8, 4, 4), (2.0, 1.0, 1.0), dtype=jnp.float64)
    solid = jnp.zeros(grid.shape, bool)
    zero = jnp.zeros((), jnp.float64)
    bnd = flow_boundary(grid, {"x-": jnp.stack([jnp.ones((), jnp.float64), zero, zero])})
    spec = FlowSpec(bc=("inlet", "outlet", "wall", "wall", "wall", "wall"))
    text = jax.jit(solve_flow, static_argnames=("spec",)).lower(grid, solid, params(1.0, 0.05, 0.5), bnd, spec=spec)
    assert "conditional(" in text.compile().as_text()
