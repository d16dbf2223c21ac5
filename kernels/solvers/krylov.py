"""Small matrix-free Krylov solvers on pytrees, for the flow kernel's inner solves.

Both solvers run in one ``lax.while_loop`` (so they trace once, work under
``vmap`` and never sync with the host) and return ``(x, SolveInfo)``. The
operator and preconditioner are callables on pytrees of arrays; dot products
sum over every leaf.

Stopping rule: ``||b - A x||_2 <= max(rtol * ||r_0||_2, atol)`` where ``r_0`` is
the residual of the initial guess. ``SolveInfo.residual`` is
``||r||_2 / ||r_0||_2`` (0 when ``r_0 = 0``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ..diagnostics import SolveInfo

__all__: list[str] = []


def _dot(a, b):
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: jnp.vdot(x, y), a, b))
    out = leaves[0]
    for leaf in leaves[1:]:
        out = out + leaf
    return out


def _axpy(alpha, x, y):
    """alpha * x + y on pytrees (alpha a scalar)."""
    return jax.tree_util.tree_map(lambda a, b: alpha * a + b, x, y)


def _sub(x, y):
    return jax.tree_util.tree_map(lambda a, b: a - b, x, y)


def _safe_div(num, den):
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, jnp.ones_like(den)), jnp.zeros_like(num))


def _history(max_iterations, dtype, first):
    return jnp.full((max_iterations + 1,), jnp.nan, dtype).at[0].set(first)


def bicgstab(matvec, b, x0, precond, rtol, atol, max_iterations: int):
    """Right-preconditioned BiCGSTAB for a general (non-symmetric) operator."""
    dtype = jax.tree_util.tree_leaves(b)[0].dtype
    r = _sub(b, matvec(x0))
    r0n = jnp.sqrt(_dot(r, r))
    target = jnp.maximum(jnp.asarray(rtol, dtype) * r0n, jnp.asarray(atol, dtype))
    scale = jnp.where(r0n > 0, r0n, jnp.ones_like(r0n))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, r)
    one = jnp.ones((), dtype)
    hist = _history(max_iterations, dtype, jnp.where(r0n > 0, one, jnp.zeros((), dtype)))
    state = (x0, r, r, zeros, zeros, one, one, one, jnp.zeros((), jnp.int32), r0n, hist)

    def cond(s):
        k, rn = s[8], s[9]
        return (k < max_iterations) & (rn > target) & jnp.isfinite(rn)

    def body(s):
        x, r, rhat, p, v, rho, alpha, omega, k, _, hist = s
        rho_new = _dot(rhat, r)
        beta = _safe_div(rho_new, rho) * _safe_div(alpha, omega)
        p = _axpy(1.0, r, jax.tree_util.tree_map(lambda pp, vv: beta * (pp - omega * vv), p, v))
        ph = precond(p)
        v = matvec(ph)
        alpha = _safe_div(rho_new, _dot(rhat, v))
        s_ = _axpy(-alpha, v, r)
        sh = precond(s_)
        t = matvec(sh)
        omega = _safe_div(_dot(t, s_), _dot(t, t))
        x = _axpy(alpha, ph, _axpy(omega, sh, x))
        r = _axpy(-omega, t, s_)
        rn = jnp.sqrt(_dot(r, r))
        hist = hist.at[k + 1].set(rn / scale)
        return (x, r, rhat, p, v, rho_new, alpha, omega, k + 1, rn, hist)

    x, *_, k, rn, hist = lax.while_loop(cond, body, state)
    info = SolveInfo(
        converged=(rn <= target) & jnp.isfinite(rn),
        iterations=k,
        residual=rn / scale,
        history=hist,
    )
    return x, info


def pcg(matvec, b, x0, precond, rtol, atol, max_iterations: int):
    """Preconditioned conjugate gradients for a symmetric positive (semi)definite
    operator (a consistent singular system converges too)."""
    dtype = jax.tree_util.tree_leaves(b)[0].dtype
    r = _sub(b, matvec(x0))
    r0n = jnp.sqrt(_dot(r, r))
    target = jnp.maximum(jnp.asarray(rtol, dtype) * r0n, jnp.asarray(atol, dtype))
    scale = jnp.where(r0n > 0, r0n, jnp.ones_like(r0n))
    z = precond(r)
    rz = _dot(r, z)
    one = jnp.ones((), dtype)
    hist = _history(max_iterations, dtype, jnp.where(r0n > 0, one, jnp.zeros((), dtype)))
    state = (x0, r, z, rz, jnp.zeros((), jnp.int32), r0n, hist)

    def cond(s):
        k, rn = s[4], s[5]
        return (k < max_iterations) & (rn > target) & jnp.isfinite(rn)

    def body(s):
        x, r, p, rz, k, _, hist = s
        ap = matvec(p)
        alpha = _safe_div(rz, _dot(p, ap))
        x = _axpy(alpha, p, x)
        r = _axpy(-alpha, ap, r)
        z = precond(r)
        rz_new = _dot(r, z)
        p = _axpy(_safe_div(rz_new, rz), p, z)
        rn = jnp.sqrt(_dot(r, r))
        hist = hist.at[k + 1].set(rn / scale)
        return (x, r, p, rz_new, k + 1, rn, hist)

    x, _, _, _, k, rn, hist = lax.while_loop(cond, body, state)
    info = SolveInfo(
        converged=(rn <= target) & jnp.isfinite(rn),
        iterations=k,
        residual=rn / scale,
        history=hist,
    )
    return x, info
