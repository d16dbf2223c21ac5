"""Dense LU solves that are safe to batch on the CPU.

jaxlib 0.10's CPU LAPACK kernels split a *batch* of matrices (a leading
batch dimension, or what ``vmap`` makes of one matrix) into chunks, hand
the chunks to XLA's intra-op thread pool and block until they are done.
When XLA runs two such kernels at once from that same pool (independent
solves in one program, common in the forward and adjoint halves of a
gradient, or in a sweep's batched network solve) every pool thread can end
up waiting for chunks that no thread is free to run: the process hangs
with all threads in ``BlockingCounter::Wait`` under ``lapack_*getrf_ffi``.
On a 2-core machine the pool has 2 threads, and it happened.

These functions keep LAPACK but never hand it a batch on the CPU: under
``vmap`` (and for leading batch dimensions) the matrices go through
LAPACK one at a time in a ``lax.map`` loop; a batch of right-hand sides
for one factor (``jacfwd`` through a solve) becomes the columns of one
right-hand side, one pair of triangular solves. On other platforms the batch
goes to the batched kernel as before (``lax.platform_dependent`` chooses
when the program is compiled). Derivatives: the factorisation is a
constant of ``lax.custom_linear_solve``, whose rules give the exact
derivative with respect to the matrix and the right-hand side (forward
and reverse mode), as ``jnp.linalg.solve`` does.

Functions: :func:`solve`, :func:`lu_factor`, :func:`lu_solve` (a factor
reused for many right-hand sides), and :func:`cho_factor`,
:func:`cho_solve` for symmetric positive definite matrices. Square matrices of any size; the
right-hand side is a vector ``(n,)`` or a matrix ``(n, k)``; leading batch
dimensions of the matrix are matched by the right-hand side's.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_batching import custom_vmap

__all__ = ["CholeskyFactor", "LUFactor", "cho_factor", "cho_solve", "lu_factor", "lu_solve", "solve"]


def _one_at_a_time_on_cpu(raw):
    """``raw`` (a function of unbatched arrays) with a batching rule that,
    on the CPU, loops over the batch instead of batching the LAPACK call."""
    fn = custom_vmap(raw)

    @fn.def_vmap
    def _rule(axis_size, in_batched, *args):
        idx = [i for i, b in enumerate(in_batched) if b]
        fixed = [a for a, b in zip(args, in_batched, strict=True) if not b]

        def merge(batched_args):
            it_b, it_f = iter(batched_args), iter(fixed)
            return [next(it_b) if b else next(it_f) for b in in_batched]

        def loop(*batched_args):
            return lax.map(lambda xs: fn(*merge(xs)), tuple(batched_args))

        def batched(*batched_args):
            return jax.vmap(lambda *xs: raw(*merge(xs)))(*batched_args)

        out = lax.platform_dependent(*[args[i] for i in idx], cpu=loop, default=batched)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return fn


def _raw_lu(a):
    lu, _, perm = lax.linalg.lu(a)
    return lu, perm


def _raw_lu_solve(lu, perm, b, transpose):
    # b: (n, k). P A = L U.  A x = b: L U x = P b.  A^T x = b: U^T L^T (P x) = b.
    if not transpose:
        y = lax.linalg.triangular_solve(lu, b[perm], left_side=True, lower=True, unit_diagonal=True)
        return lax.linalg.triangular_solve(lu, y, left_side=True, lower=False)
    y = lax.linalg.triangular_solve(lu, b, left_side=True, lower=False, transpose_a=True)
    z = lax.linalg.triangular_solve(lu, y, left_side=True, lower=True, unit_diagonal=True, transpose_a=True)
    return jnp.zeros_like(z).at[perm].set(z)


def _raw_chol_solve(c, b):
    # A = L L^T
    y = lax.linalg.triangular_solve(c, b, left_side=True, lower=True)
    return lax.linalg.triangular_solve(c, y, left_side=True, lower=True, transpose_a=True)


_lu = _one_at_a_time_on_cpu(_raw_lu)
_chol = _one_at_a_time_on_cpu(lambda a: lax.linalg.cholesky(a, symmetrize_input=False))
_chol_solve = _one_at_a_time_on_cpu(_raw_chol_solve)


def _lu_solver(transpose: bool):
    """The LU solve with a batching rule for one factor and a batch of
    right-hand sides (``jacfwd`` through a solve, many loads on one network):
    the batch becomes columns of one right-hand side, a single pair of
    triangular solves instead of one pair per batch member (no batched LAPACK
    call either way). A batched factor goes one at a time on the CPU."""

    def raw(lu, perm, b):
        return _raw_lu_solve(lu, perm, b, transpose)

    fn = custom_vmap(raw)
    generic = _one_at_a_time_on_cpu(raw)

    @fn.def_vmap
    def _rule(axis_size, in_batched, lu, perm, b):
        if in_batched[2] and not (in_batched[0] or in_batched[1]):
            n, k = b.shape[1:]
            x = fn(lu, perm, jnp.moveaxis(b, 0, 1).reshape(n, axis_size * k))
            return jnp.moveaxis(x.reshape(n, axis_size, k), 1, 0), True
        axes = tuple(0 if batched else None for batched in in_batched)
        return jax.vmap(generic, in_axes=axes)(lu, perm, b), True

    return fn


_lu_solve_n = _lu_solver(False)
_lu_solve_t = _lu_solver(True)


class LUFactor(NamedTuple):
    """A square matrix with its LU factors (``P a = L U``; ``perm`` is P as
    a row permutation). Leading dimensions are batch dimensions."""

    a: jax.Array
    lu: jax.Array
    perm: jax.Array


def _batched(fn, n_batch):
    for _ in range(n_batch):
        fn = jax.vmap(fn)
    return fn


def lu_factor(a) -> LUFactor:
    """Factor ``a`` (``(..., n, n)``) once for :func:`lu_solve`."""
    a = jnp.asarray(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"lu_factor: a square matrix (..., n, n) is expected, got shape {a.shape}")
    lu, perm = _batched(_lu, a.ndim - 2)(lax.stop_gradient(a))
    return LUFactor(a, lu, perm)


def _solve_one(a, lu, perm, b):
    vector = b.ndim == 1
    rhs = b[:, None] if vector else b

    def matvec(x):
        return a @ x

    def fwd(_, r):
        return _lu_solve_n(lu, perm, r)

    def bwd(_, r):
        return _lu_solve_t(lu, perm, r)

    x = lax.custom_linear_solve(matvec, rhs, fwd, bwd)
    return x[:, 0] if vector else x


def lu_solve(factor: LUFactor, b) -> jax.Array:
    """Solve ``a x = b`` with the factor of ``a``.

    ``b`` is ``(..., n)`` or ``(..., n, k)``, its leading dimensions those of
    ``a``. Differentiable in ``a`` and ``b``."""
    a, lu, perm = factor
    b = jnp.asarray(b)
    n_batch = a.ndim - 2
    if b.ndim not in (n_batch + 1, n_batch + 2) or b.shape[n_batch] != a.shape[-1]:
        raise ValueError(f"lu_solve: right-hand side of shape {b.shape} does not match matrices {a.shape}")
    return _batched(_solve_one, n_batch)(a, lu, perm, b)


def solve(a, b) -> jax.Array:
    """``a^-1 b`` for square ``a`` (``(..., n, n)``) and ``b`` (``(..., n)``
    or ``(..., n, k)``): ``jnp.linalg.solve``'s answer and derivatives,
    without batched LAPACK calls on the CPU."""
    return lu_solve(lu_factor(a), b)


class CholeskyFactor(NamedTuple):
    """A symmetric positive definite matrix with its lower Cholesky factor
    (``a = L L^T``). Leading dimensions are batch dimensions."""

    a: jax.Array
    lower: jax.Array


def cho_factor(a) -> CholeskyFactor:
    """Factor the symmetric positive definite ``a`` (``(..., n, n)``, its
    lower triangle is read) once for :func:`cho_solve`. A matrix that is not
    positive definite gives NaN factors."""
    a = jnp.asarray(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"cho_factor: a square matrix (..., n, n) is expected, got shape {a.shape}")
    return CholeskyFactor(a, _batched(_chol, a.ndim - 2)(lax.stop_gradient(a)))


def _cho_solve_one(a, c, b):
    vector = b.ndim == 1
    rhs = b[:, None] if vector else b

    def inner(_, r):
        return _chol_solve(c, r)

    x = lax.custom_linear_solve(lambda x: a @ x, rhs, inner, inner, symmetric=True)
    return x[:, 0] if vector else x


def cho_solve(factor: CholeskyFactor, b) -> jax.Array:
    """Solve ``a x = b`` with the Cholesky factor of ``a``; ``b`` as for
    :func:`lu_solve`. Differentiable in ``a`` (taken as symmetric) and ``b``."""
    a, c = factor
    b = jnp.asarray(b)
    n_batch = a.ndim - 2
    if b.ndim not in (n_batch + 1, n_batch + 2) or b.shape[n_batch] != a.shape[-1]:
        raise ValueError(f"cho_solve: right-hand side of shape {b.shape} does not match matrices {a.shape}")
    return _batched(_cho_solve_one, n_batch)(a, c, b)
