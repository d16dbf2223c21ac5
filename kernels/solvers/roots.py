"""Private helpers shared by the plant kernels: dtype handling, smooth guards and an
elementwise bracketed root finder with implicit differentiation."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

__all__: list[str] = []


def _float_dtype(*xs):
    """The floating dtype of the inputs (weak Python scalars follow the others;
    integers and plain Python numbers give JAX's default float)."""
    arrays = [x for x in xs if isinstance(x, jax.Array | jnp.ndarray) or hasattr(x, "dtype")]
    if not arrays:
        return jnp.result_type(float)
    dt = jnp.result_type(*arrays)
    if not jnp.issubdtype(dt, jnp.floating):
        return jnp.result_type(float)
    return dt


def _asfloat(dtype, *xs):
    return tuple(jnp.asarray(x, dtype) for x in xs)


def _safe_div(num, den):
    """num / den with den == 0 replaced by 1 (both value and gradient stay finite);
    callers select the den == 0 case away themselves."""
    den_ok = den != 0
    return num / jnp.where(den_ok, den, jnp.ones_like(den))


def _one_minus_exp_over(a):
    """(1 - exp(-a)) / a, smooth through a = 0 (value 1, derivative -1/2), with
    finite gradients everywhere (double-where guard)."""
    small = jnp.abs(a) < 1e-4
    a_safe = jnp.where(small, jnp.ones_like(a), a)
    exact = -jnp.expm1(-a_safe) / a_safe
    series = 1.0 - a / 2.0 + a * a / 6.0 - a * a * a / 24.0
    return jnp.where(small, series, exact)


def _log1p_over(z):
    """log(1 + z) / z, smooth through z = 0 (value 1), finite gradients."""
    small = jnp.abs(z) < 1e-4
    z_safe = jnp.where(small, jnp.ones_like(z), z)
    exact = jnp.log1p(z_safe) / z_safe
    series = 1.0 - z / 2.0 + z * z / 3.0 - z * z * z / 4.0
    return jnp.where(small, series, exact)


def _bracketed_root(
    fun: Callable[[jax.Array], jax.Array],
    lo: jax.Array,
    hi: jax.Array,
    *,
    xtol_rel: float | None = None,
    max_iter: int = 80,
) -> jax.Array:
    """Elementwise root of a monotone function on ``[lo, hi]``.

    ``fun`` maps an array of trial points to residuals of the same shape, each
    element depending only on its own trial point, monotone on the whole of
    ``[lo, hi]`` (its ends included). The root must be bracketed (``fun(lo)``
    and ``fun(hi)`` of opposite signs, or one of them zero); a lane without a
    bracket takes ``hi`` (``lo`` where ``fun(lo)`` is zero) without iterating,
    and callers select such lanes away. Newton steps are taken when they stay
    inside the current bracket (its ends included) and bisection otherwise, so
    convergence is guaranteed; iteration stops when, for every element, the
    bracket or the last step is smaller than ``xtol_rel * max(|x|, 1)``
    (default: 8 machine epsilons of the dtype; Newton converges quadratically,
    so a step that small leaves an error far below it), the residual is exactly
    zero, or after ``max_iter`` iterations.

    Derivatives are implicit (``jax.lax.custom_root``): the result differentiates
    as the root of ``fun`` with respect to whatever ``fun`` closes over, never
    through the iterations; ``lo`` and ``hi`` carry no gradient.
    """
    lo = lax.stop_gradient(lo)
    hi = lax.stop_gradient(hi)
    dtype = lo.dtype
    if xtol_rel is None:
        xtol_rel = 8.0 * float(jnp.finfo(dtype).eps)

    def solve(f, x0):
        del x0
        return _bracketed_search(f, lo, hi, xtol_rel, max_iter)[0]

    def tangent_solve(g, y):
        return _safe_div(y, g(jnp.ones_like(y)))

    return lax.custom_root(fun, 0.5 * (lo + hi), solve, tangent_solve)


def _bracketed_search(f, lo, hi, xtol_rel: float, max_iter: int):
    """The iteration of :func:`_bracketed_root` on values: ``(x, iterations)``."""
    f_lo = f(lo)
    # Orient so that the residual increases from a to b.
    sgn = jnp.where(f_lo > 0, -jnp.ones_like(lo), jnp.ones_like(lo))

    def g(x):
        return sgn * f(x)

    def g_and_dg(x):
        return jax.jvp(g, (x,), (jnp.ones_like(x),))

    # Lanes without a sign change (the root, if any, beyond hi, as g(lo) <= 0) take hi at once with a
    # collapsed bracket, as do lanes whose residual is zero at lo: bisecting them to their end point took
    # about 50 iterations of every lane where the bracketed ones need a handful (the fan speeds of a dry
    # cooler's year: 56 iterations, three quarters of the plant's evaluation).
    at_lo = f_lo == 0
    beyond = ~at_lo & (g(hi) < 0)
    end = jnp.where(at_lo, lo, hi)
    done = at_lo | beyond
    a0 = jnp.where(done, end, lo)
    b0 = jnp.where(done, end, hi)
    x = jnp.where(done, end, 0.5 * (lo + hi))
    gx, dgx = g_and_dg(x)
    dx = b0 - a0

    def cond(state):
        k, a, b, x, gx, dgx, dx = state
        tol = xtol_rel * jnp.maximum(jnp.abs(x), 1.0)
        active = (b - a > tol) & (jnp.abs(dx) > tol) & (gx != 0)
        return (k < max_iter) & jnp.any(active)

    def body(state):
        k, a, b, x, gx, dgx, dx = state
        a = jnp.where(gx < 0, x, a)
        b = jnp.where(gx > 0, x, b)
        newton = x - _safe_div(gx, dgx)
        # the bounds included: a converged lane's Newton point sits on the end its last step set, and
        # bisecting it away from there cost up to 40 further iterations of every lane
        inside = (dgx > 0) & (newton >= a) & (newton <= b)
        x_new = jnp.where(inside, newton, 0.5 * (a + b))
        x_new = jnp.where(gx == 0, x, x_new)
        g_new, dg_new = g_and_dg(x_new)
        return k + 1, a, b, x_new, g_new, dg_new, x_new - x

    k, a, b, x, gx, _, _ = lax.while_loop(cond, body, (0, a0, b0, x, gx, dgx, dx))
    return jnp.clip(x, lo, hi), k
