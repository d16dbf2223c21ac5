"""Matrix-free Krylov solvers: the one place the kernels' Krylov loops live.

Every solver here has the same signature and the same conventions::

    x, info = solver(matvec, b, precond=None, *, x0=None, rtol, atol=0.0, max_iterations)

* ``matvec`` and ``precond`` are callables on pytrees shaped like ``b`` (a
  single array, or a tuple of arrays as in the flow kernel's three momentum
  components); dot products sum over every leaf. ``precond=None`` is the
  identity. ``x0=None`` starts from zero.
* Stopping rule, one for all: ``||b - A x||_2 <= max(rtol * ||b||_2, atol)``,
  measured on the recursively updated residual. ``rtol`` may be a traced
  scalar; ``max_iterations`` is static (it sizes the history).
  To measure relative to the initial residual instead, solve for the
  correction: ``solver(matvec, b - matvec(x0), ...)`` from zero, then add ``x0``.
* Returns ``(x, SolveInfo)`` (:class:`kernels.diagnostics.SolveInfo`):
  ``residual`` is ``||b - A x||_2 / ||b||_2`` (``||b - A x||_2`` when ``b = 0``),
  ``history`` the same after each iteration (entry 0: the initial guess), and
  ``converged`` says the rule was met with a finite residual. A breakdown or a
  non-finite value stops the loop early; it is reported, never hidden
  (``converged=False`` unless the rule was already met).

Each solver is one ``lax.while_loop``: it traces once, works under ``jit`` and
``vmap``, follows the dtype of ``b`` (float32 or float64) and never syncs with
the host. Derivatives are the caller's (``lax.custom_linear_solve`` around the
solve, as :func:`kernels.solvers.linsolve.solve` and
:func:`kernels.fv.advdiff.solve` do).

Callers that let the user pick the Krylov method take a ``solver`` argument
with this signature (:data:`SOLVERS` names the ones here).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ..diagnostics import SolveInfo

__all__ = ["SOLVERS", "bicgstab", "cg", "fcg"]


def _dot(a, b):
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: jnp.vdot(x, y).real, a, b))
    out = leaves[0]
    for leaf in leaves[1:]:
        out = out + leaf
    return out


def _norm(a):
    return jnp.sqrt(_dot(a, a))


def _axpy(alpha, x, y):
    """``alpha * x + y`` on pytrees (``alpha`` a scalar)."""
    return jax.tree_util.tree_map(lambda a, b: alpha * a + b, x, y)


def _safe_div(num, den):
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, jnp.ones_like(den)), jnp.zeros_like(num))


def _identity(r):
    return r


def _start(matvec, b, precond, x0, rtol, atol, max_iterations):
    """Common set-up: initial iterate and residual, scale, tolerance, history."""
    leaves = jax.tree_util.tree_leaves(b)
    dtype = leaves[0].dtype
    if x0 is None:
        x = jax.tree_util.tree_map(jnp.zeros_like, b)
        r = b
    else:
        x = x0
        r = jax.tree_util.tree_map(lambda bb, ax: bb - ax, b, matvec(x0))
    bnorm = _norm(b)
    scale = jnp.where(bnorm > 0, bnorm, jnp.ones_like(bnorm))
    # one relative threshold: max(rtol ||b||, atol) / ||b||
    tol = jnp.maximum(jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype) / scale)
    res0 = _norm(r) / scale
    history = jnp.full((max_iterations + 1,), jnp.nan, dtype).at[0].set(res0)
    return dtype, x, r, scale, tol, res0, history, (precond or _identity)


def bicgstab(matvec, b, precond=None, *, x0=None, rtol, atol=0.0, max_iterations: int):
    """Right-preconditioned BiCGSTAB for a general (non-symmetric) operator.

    Stops as the module states; a breakdown (``rho = 0``, ``omega = 0`` or a
    zero or non-finite ``alpha`` denominator) ends the loop. Returns
    ``(x, SolveInfo)``.
    """
    dtype, x, r, scale, tol, res0, history, precond = _start(matvec, b, precond, x0, rtol, atol, max_iterations)
    r_hat = r
    zeros = jax.tree_util.tree_map(jnp.zeros_like, r)
    one = jnp.ones((), dtype)
    state = (x, r, zeros, zeros, one, one, one, jnp.asarray(0, jnp.int32), res0, history, jnp.asarray(False))

    def cond(s):
        k, res, broke = s[7], s[8], s[10]
        return (k < max_iterations) & (res > tol) & jnp.isfinite(res) & ~broke

    def body(s):
        x, r, p, v, rho, alpha, omega, k, _, hist, _ = s
        rho_new = _dot(r_hat, r)
        beta = _safe_div(rho_new, rho) * _safe_div(alpha, omega)
        p = jax.tree_util.tree_map(lambda rr, pp, vv: rr + beta * (pp - omega * vv), r, p, v)
        p_hat = precond(p)
        v = matvec(p_hat)
        den = _dot(r_hat, v)
        alpha = _safe_div(rho_new, den)
        s_vec = _axpy(-alpha, v, r)
        s_hat = precond(s_vec)
        t = matvec(s_hat)
        omega = _safe_div(_dot(t, s_vec), _dot(t, t))
        x = jax.tree_util.tree_map(lambda xx, ph, sh: xx + alpha * ph + omega * sh, x, p_hat, s_hat)
        r = _axpy(-omega, t, s_vec)
        res = _norm(r) / scale
        broke = (omega == 0) | (rho_new == 0) | (den == 0) | ~jnp.isfinite(alpha)
        hist = hist.at[k + 1].set(res)
        return x, r, p, v, rho_new, alpha, omega, k + 1, res, hist, broke

    x, *_, k, res, hist, _ = lax.while_loop(cond, body, state)
    converged = (res <= tol) & jnp.isfinite(res)
    return x, SolveInfo(converged=converged, iterations=k, residual=res, history=hist)


def _cg(matvec, b, precond, x0, rtol, atol, max_iterations, flexible):
    dtype, x, r, scale, tol, res0, history, precond = _start(matvec, b, precond, x0, rtol, atol, max_iterations)
    z = precond(r)
    rz = _dot(r, z)
    state = (x, r, z, z, rz, jnp.asarray(0, jnp.int32), res0, history)

    def cond(s):
        k, res = s[5], s[6]
        return (k < max_iterations) & (res > tol) & jnp.isfinite(res)

    def body(s):
        x, r, z, p, rz, k, _, hist = s
        ap = matvec(p)
        alpha = _safe_div(rz, _dot(p, ap))
        x = _axpy(alpha, p, x)
        r = _axpy(-alpha, ap, r)
        z_old = z
        z = precond(r)
        rz_new = _dot(r, z)
        if flexible:
            # Polak-Ribiere: rz_new / rz for a fixed symmetric preconditioner,
            # robust when the preconditioner is applied in lower precision
            beta = _safe_div(rz_new - _dot(r, z_old), rz)
        else:
            beta = _safe_div(rz_new, rz)
        p = _axpy(beta, p, z)
        res = _norm(r) / scale
        hist = hist.at[k + 1].set(res)
        return x, r, z, p, rz_new, k + 1, res, hist

    x, _, _, _, _, k, res, hist = lax.while_loop(cond, body, state)
    converged = (res <= tol) & jnp.isfinite(res)
    return x, SolveInfo(converged=converged, iterations=k, residual=res, history=hist)


def cg(matvec, b, precond=None, *, x0=None, rtol, atol=0.0, max_iterations: int):
    """Preconditioned conjugate gradients (Fletcher-Reeves ``beta``) for a
    symmetric positive (semi)definite operator and a fixed symmetric
    preconditioner; a consistent singular system converges too. Returns
    ``(x, SolveInfo)``."""
    return _cg(matvec, b, precond, x0, rtol, atol, max_iterations, flexible=False)


def fcg(matvec, b, precond=None, *, x0=None, rtol, atol=0.0, max_iterations: int):
    """Flexible conjugate gradients (Polak-Ribiere ``beta``, one dot product
    more per iteration than :func:`cg`): the same iterates for a fixed
    symmetric preconditioner, and robust when the preconditioner varies a
    little, e.g. a multigrid V-cycle applied in float32 for a float64 solve.
    Returns ``(x, SolveInfo)``."""
    return _cg(matvec, b, precond, x0, rtol, atol, max_iterations, flexible=True)


SOLVERS = {"bicgstab": bicgstab, "cg": cg, "fcg": fcg}
"""The Krylov solvers by name (symmetric operators: ``cg``, ``fcg``; any: ``bicgstab``)."""
