"""One BLAS thread for LAPACK inside compiled programs (thermo/blas.py): set by
the command line and the benchmark harness, left to the user when
OPENBLAS_NUM_THREADS is set."""

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from aidc_thermo import blas


def _threads():
    libs = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    return sorted((lib["filepath"], lib["num_threads"]) for lib in libs)


def test_limit_sets_every_loaded_blas_library_to_one_thread_including_the_lapack_jax_calls():
    import jax
    import jax.numpy as jnp

    with threadpool_limits(limits=2, user_api="blas"):
        assert all(n == 2 for _, n in _threads())
        n = blas.limit(environ={})
        after = _threads()
        assert n == len(after) >= 1 and all(k == 1 for _, k in after)
        # SciPy's OpenBLAS, whose LAPACK jaxlib's CPU kernels call, is among them; an LU through JAX still answers
        assert any("scipy" in path for path, _ in after)
        a = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 2.0, 5.0]])
        x = jax.jit(jnp.linalg.solve)(a, np.ones(3))
        np.testing.assert_allclose(a @ np.asarray(x), np.ones(3), rtol=1e-14)


def test_openblas_num_threads_in_the_environment_is_left_alone():
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas.limit(environ={"OPENBLAS_NUM_THREADS": "2"}) is None
        assert all(n == 2 for _, n in _threads())
        assert blas.limit(environ={"OPENBLAS_NUM_THREADS": " "}) is not None  # blank: not a choice
        assert all(n == 1 for _, n in _threads())


def test_the_command_line_limits_blas_before_it_solves(monkeypatch):
    from aidc_thermo import curve_cache
    from aidc_thermo.cli import _configure_jax, build_parser

    monkeypatch.delenv(blas.ENV, raising=False)
    with threadpool_limits(limits=2, user_api="blas"):
        try:
            _configure_jax(build_parser().parse_args(["run", "x.toml", "--no-compile-cache"]))
        finally:
            curve_cache.configure(True)
        assert all(n == 1 for _, n in _threads())
