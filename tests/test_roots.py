"""The plant kernels' elementwise bracketed root finder (kernels/solvers/roots.py):
roots to rounding, lanes without a bracket settled at once, and a count of
iterations that the bracketed lanes alone set (all lanes iterate together)."""

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels.solvers.roots import _bracketed_root, _bracketed_search


def _cubic(c):
    return lambda x: x**3 - c


def test_bracketed_lanes_converge_and_unbracketed_ones_take_their_end_at_once():
    c = jnp.array([0.5, 1.0, 2.0, 8.0, 20.0, 0.0, 40.0, -1.0])  # roots in [0, 3] for the first five
    lo, hi = jnp.zeros_like(c), jnp.full_like(c, 3.0)
    eps = float(jnp.finfo(c.dtype).eps)
    x, k = jax.jit(lambda c: _bracketed_search(_cubic(c), lo, hi, 8 * eps, 80))(c)
    x = np.asarray(x)
    np.testing.assert_allclose(x[:5], np.cbrt(np.asarray(c[:5])), rtol=1e-14)
    assert x[5] == 0.0  # the residual is zero at lo: the root is lo
    assert x[6] == 3.0 and x[7] == 3.0  # no sign change: hi, the documented end
    # Newton from the bracket's midpoint (bisection while it leaves the bracket) needs at most 9 steps here;
    # bisecting the unbracketed lanes to their end, or a converged lane away from its root, took 50 or more
    assert int(k) <= 12, int(k)


def test_a_converged_newton_point_on_the_bracket_end_is_kept():
    # Lanes whose last Newton step lands on the end the step before set: bisecting from there cost up to
    # 40 iterations; each lane alone, so that no other lane keeps the loop running
    eps = float(jnp.finfo(jnp.float64).eps)
    search = jax.jit(lambda c: _bracketed_search(_cubic(c), jnp.zeros_like(c), jnp.full_like(c, 3.0), 8 * eps, 80))
    for c in np.linspace(0.05, 26.0, 37):
        x, k = search(jnp.float64(c))
        assert abs(float(x) - np.cbrt(c)) <= 1e-14 * np.cbrt(c), c
        assert int(k) <= 12, (c, int(k))


def test_the_root_differentiates_implicitly():
    def root(c):
        return _bracketed_root(_cubic(c), jnp.zeros_like(c), jnp.full_like(c, 3.0))

    c = jnp.array([0.5, 2.0, 8.0])
    g = jax.vmap(jax.grad(root))(c)
    np.testing.assert_allclose(np.asarray(g), 1.0 / (3.0 * np.cbrt(np.asarray(c)) ** 2), rtol=1e-12)
