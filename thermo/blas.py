"""One BLAS thread for the LAPACK calls that compiled programs make on a CPU.

XLA:CPU runs a compiled program on its own pool of threads, one per core,
and calls LAPACK from one of them for a dense factorisation (the LU and
Cholesky factors of the network solves: the NVL72 rack's 143-node Schur
block every Newton step, its 245-node advection matrix once). The LAPACK
jaxlib calls is SciPy's OpenBLAS, which starts threads of its own for every
call, one per core: beside XLA's busy pool that oversubscribes the cores,
and factorisations of a few hundred unknowns gain nothing from them. On the
2-core development machine (benchmarks/RESULTS.md, issue 14) the rack hall's
compiled year took a median 29.7-31.3 ms with OpenBLAS's default two threads
and 24.8-26.3 ms with one, in the same process (the single-accelerator
year, which factors nothing, 11.1-12.3 ms either way); docs/numerics.md
records Cholesky factorisations a thousand times slower on an oversubscribed
machine.

:func:`limit` sets every BLAS library loaded in the process (SciPy's and
NumPy's OpenBLAS) to one thread with threadpoolctl. The command line calls
it before a solve, and so does the benchmark harness, which times what the
command line runs; importing ``aidc_thermo`` as a library changes nothing (a
script can call :func:`limit` itself). ``OPENBLAS_NUM_THREADS`` set in the
environment is the user's choice and is left alone.
"""

from __future__ import annotations

import os

__all__ = ["ENV", "limit"]

#: the environment variable that, when set, leaves the thread count to OpenBLAS
ENV = "OPENBLAS_NUM_THREADS"


def limit(environ=None) -> int | None:
    """Every loaded BLAS library to one thread, unless ``environ`` (default
    ``os.environ``) sets ``OPENBLAS_NUM_THREADS``. SciPy's LAPACK (the one
    jaxlib calls) is loaded first, so that it is among them. Returns the
    number of libraries limited, or None when the environment chose."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV, "").strip():
        return None
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, whose LAPACK jaxlib's CPU kernels call)
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    return sum(1 for lib in threadpool_info() if lib["user_api"] == "blas")
