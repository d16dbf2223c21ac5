"""kernels.solvers.fusion.materialized: the function's value (values, vmap,
grad), computed where its results are written (no copy on the way out), and
the flow solver's loop keeps its materialisation point through XLA's
optimisations (the compiled program has the conditional; the speed it buys is
measured in benchmarks/, not here)."""

import re

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
        return acc + materialized(jnp.expm1, (x,), anchor)

    return jax.lax.fori_loop(0, n, body, jnp.zeros_like(x))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_materialized_is_the_functions_value_in_a_loop_under_vmap_and_grad(dtype):
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
    # pytrees pass whole, in and out
    tree = {"a": x, "b": (x + 1, jnp.asarray(2, jnp.int32))}

    def fn(t, y):
        return {"a": t["a"] * y, "b": (t["b"][0] - y, t["b"][1] + 1)}

    out = jax.jit(lambda t, y, anchor: materialized(fn, (t, y), anchor))(tree, x, jnp.asarray(0.5, dtype))
    want = fn(tree, x)
    assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(want)
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.dtype == b.dtype


def _branches(hlo: str, conditional: str) -> list[str]:
    """The text of each branch computation of the named conditional."""
    line = next(ln for ln in hlo.splitlines() if re.match(rf"\s*(ROOT )?%{re.escape(conditional)} = ", ln))
    names = re.search(r"branch_computations=\{([^}]*)\}", line).group(1).replace("%", "").split(", ")
    return [re.search(rf"(?ms)^%{re.escape(n)} .*?^}}", hlo).group(0) for n in names]


def test_the_results_are_written_from_inside_the_branch_not_copied_out():
    """The taken branch computes ``fn`` into the conditional's outputs: it
    holds no copy (an array computed outside and passed through would be
    copied once more on the way out, the cost this form removes)."""
    x = jnp.linspace(-1.0, 1.0, 4096, dtype=jnp.float64).reshape(16, 256)

    def program(x, anchor):
        a, b = materialized(lambda y: (jnp.expm1(y), jnp.sin(y) * y), (x,), anchor)
        return a + b, a * b

    hlo = jax.jit(program).lower(x, jnp.asarray(1.0)).compile().as_text()
    conds = re.findall(r"^\s*(?:ROOT )?%([\w.-]+) = \S.* conditional\(", hlo, re.M)
    assert len(conds) == 1
    false_branch, true_branch = _branches(hlo, conds[0])
    assert "expm1" in true_branch or "exponential-minus-one" in true_branch
    assert " copy(" not in true_branch
    # the contrast: the identity of finished arrays copies them out
    hlo = jax.jit(lambda x, anchor: materialized(lambda y: y, (jnp.expm1(x),), anchor) * 2).lower(x, jnp.asarray(1.0))
    hlo = hlo.compile().as_text()
    (cond,) = re.findall(r"^\s*(?:ROOT )?%([\w.-]+) = \S.* conditional\(", hlo, re.M)
    assert " copy(" in _branches(hlo, cond)[1]


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
