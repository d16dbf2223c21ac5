"""kernels/solvers/dense.py: jnp.linalg.solve's answers and derivatives, and no batched LAPACK call in a
program compiled for the CPU (a batch of LAPACK calls from two concurrent kernels once deadlocked XLA's
2-thread pool)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.kernels.solvers import dense


def _spd(rng, batch, n):
    m = rng.normal(size=(*batch, n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


def _general(rng, batch, n):
    return rng.normal(size=(*batch, n, n)) + 3.0 * np.eye(n)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_answers_match_numpy(dtype, tol):
    rng = np.random.default_rng(1)
    a = _general(rng, (3,), 7).astype(dtype)
    s = _spd(rng, (3,), 7).astype(dtype)
    b = rng.normal(size=(3, 7)).astype(dtype)
    bm = rng.normal(size=(3, 7, 2)).astype(dtype)
    for x, ref in (
        (dense.solve(a, b), np.linalg.solve(a.astype(float), b.astype(float)[..., None])[..., 0]),
        (dense.solve(a, bm), np.linalg.solve(a.astype(float), bm.astype(float))),
        (jax.vmap(dense.solve)(a, b), np.linalg.solve(a.astype(float), b.astype(float)[..., None])[..., 0]),
        (dense.lu_solve(dense.lu_factor(a[0]), bm[0]), np.linalg.solve(a[0].astype(float), bm[0].astype(float))),
        (dense.cho_solve(dense.cho_factor(s), b), np.linalg.solve(s.astype(float), b.astype(float)[..., None])[..., 0]),
    ):
        assert x.dtype == dtype
        assert np.max(np.abs(np.asarray(x, float) - ref)) <= tol * np.max(np.abs(ref))


def test_derivatives_match_jnp_linalg_solve():
    """Reverse and forward mode, in the matrix and the right-hand side, through a vmapped solve."""
    rng = np.random.default_rng(2)
    a = jnp.asarray(_general(rng, (4,), 5))
    s = jnp.asarray(_spd(rng, (4,), 5))
    b = jnp.asarray(rng.normal(size=(4, 5)))

    def ours(a, b):
        return jnp.sum(jax.vmap(dense.solve)(a, b) ** 3)

    def cho(s, b):
        sym = 0.5 * (s + jnp.swapaxes(s, -1, -2))
        return jnp.sum(dense.cho_solve(dense.cho_factor(sym), b) ** 3)

    def ref(a, b):
        return jnp.sum(jnp.linalg.solve(a, b[..., None])[..., 0] ** 3)

    def ref_sym(s, b):
        return ref(0.5 * (s + jnp.swapaxes(s, -1, -2)), b)

    for f, g, m in ((ours, ref, a), (cho, ref_sym, s)):
        for arg in (0, 1):
            want = jax.jit(jax.grad(g, arg))(m, b)
            assert np.allclose(jax.jit(jax.grad(f, arg))(m, b), want, rtol=1e-10, atol=1e-12)
            assert np.allclose(jax.jit(jax.jacfwd(f, arg))(m, b), want, rtol=1e-10, atol=1e-12)


def _lapack_batch_dims(fn, *args):
    text = jax.jit(fn).lower(*args).as_text()
    calls = re.findall(r'@(lapack_\w+)\(.*?num_batch_dims = "(\d+)"', text)
    assert calls, "no LAPACK call found in the lowered program"
    return {int(d) for _, d in calls}


def test_no_batched_lapack_call_on_the_cpu():
    """jnp.linalg.solve batches LAPACK here; the dense module's solves, factors and their gradients do not,
    nested vmaps and leading batch dimensions included."""
    if jax.default_backend() != "cpu":
        pytest.skip("the guard is for XLA's CPU runtime")
    rng = np.random.default_rng(3)
    a = jnp.asarray(_general(rng, (2, 3), 4))
    s = jnp.asarray(_spd(rng, (3,), 4))
    b = jnp.asarray(rng.normal(size=(2, 3, 4)))
    assert _lapack_batch_dims(lambda a, b: jnp.linalg.solve(a, b[..., None]), a, b) == {2}
    assert _lapack_batch_dims(dense.solve, a, b) == {0}
    assert _lapack_batch_dims(jax.vmap(jax.vmap(dense.solve)), a, b) == {0}
    assert _lapack_batch_dims(jax.grad(lambda a, b: jnp.sum(dense.solve(a, b) ** 2)), a, b) == {0}
    assert _lapack_batch_dims(lambda s, b: dense.cho_solve(dense.cho_factor(s), b), s, b[0]) == {0}


def test_one_factor_and_a_batch_of_right_hand_sides_is_one_solve():
    """vmap over the right-hand side alone (jacfwd through a solve, many loads on one network): the batch
    becomes columns of one right-hand side (no loop over the batch), nested vmaps and transposes included."""
    rng = np.random.default_rng(4)
    a = jnp.asarray(_general(rng, (), 6))
    fac = dense.lu_factor(a)
    b = jnp.asarray(rng.normal(size=(5, 6)))
    bb = jnp.asarray(rng.normal(size=(3, 5, 6, 2)))
    ref = np.linalg.solve(np.asarray(a), np.asarray(b).T).T
    np.testing.assert_allclose(jax.vmap(lambda r: dense.lu_solve(fac, r))(b), ref, rtol=1e-12, atol=1e-13)
    nested = jax.vmap(jax.vmap(lambda r: dense.lu_solve(fac, r)))(bb)
    np.testing.assert_allclose(nested, np.linalg.solve(np.asarray(a), np.asarray(bb)), rtol=1e-12, atol=1e-13)
    jac = jax.jacfwd(lambda r: dense.solve(a, r))(b[0])
    np.testing.assert_allclose(jac, np.linalg.inv(np.asarray(a)), rtol=1e-12, atol=1e-13)
    grad = jax.grad(lambda m: jnp.sum(jax.vmap(lambda r: dense.solve(m, r))(b) ** 2))(a)
    want = jax.grad(lambda m: jnp.sum(jnp.linalg.solve(m, b.T) ** 2))(a)
    np.testing.assert_allclose(grad, want, rtol=1e-10, atol=1e-12)
    if jax.default_backend() == "cpu":
        text = jax.jit(jax.vmap(lambda r: dense.lu_solve(fac, r))).lower(b).as_text()
        assert "stablehlo.while" not in text


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="square"):
        dense.lu_factor(jnp.zeros((3, 4)))
    with pytest.raises(ValueError, match="does not match"):
        dense.solve(jnp.eye(3), jnp.zeros(4))


def test_kernels_and_thermo_solve_dense_systems_only_through_the_dense_module():
    """A new jnp.linalg.solve / cholesky / jax.scipy.linalg call in the package would bring the batched
    LAPACK call back on the CPU."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(
        r"jnp\.linalg\.(solve|inv|cholesky|lstsq|pinv|eigh?|svd|qr|det|slogdet)\b|jax\.scipy\.linalg|"
        r"jsl\.|lax\.linalg\.(lu|cholesky|qr|eigh|svd|triangular_solve|tridiagonal_solve)\b"
    )
    offenders = []
    for folder in ("kernels", "thermo"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.name == "dense.py":
                continue
            for k, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if pattern.search(code):
                    offenders.append(f"{path.relative_to(root)}:{k}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
