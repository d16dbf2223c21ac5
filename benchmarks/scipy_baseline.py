"""The same finite-volume conduction matrix assembled with scipy.sparse and
solved directly (SuperLU): a baseline for time and an independent check of
the answer."""

from __future__ import annotations

import os
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

from aidc_thermo.kernels.solvers.linsolve import Conductances


def assemble(op: Conductances) -> sp.csr_matrix:
    """CSR matrix of the 7-point conductance operator (cells in C order)."""
    shape = op.c.shape
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    diag = np.asarray(op.c, np.float64).ravel().copy()
    rows, cols, vals = [], [], []
    for axis, g in enumerate(op.links()):
        g = np.asarray(g, np.float64)
        m = g.shape[axis]
        lo = np.take(g, np.arange(0, m - 1), axis=axis)
        hi = np.take(g, np.arange(1, m), axis=axis)
        diag += (lo + hi).ravel()
        gi = np.take(g, np.arange(1, m - 1), axis=axis)  # interior links
        a = np.take(idx, np.arange(0, shape[axis] - 1), axis=axis).ravel()
        b = np.take(idx, np.arange(1, shape[axis]), axis=axis).ravel()
        rows += [a, b]
        cols += [b, a]
        vals += [-gi.ravel(), -gi.ravel()]
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def direct_solve(op: Conductances, b) -> tuple[np.ndarray, float]:
    """(x, seconds) with SuperLU, assembly excluded from the time."""
    A = assemble(op).tocsc()
    rhs = np.asarray(b, np.float64).ravel()
    # SuperLU as SciPy's users run it: BLAS on every core (the harness limits it to one thread for our solves)
    with threadpool_limits(limits=os.cpu_count() or 1, user_api="blas"):
        t0 = time.perf_counter()
        x = spla.spsolve(A, rhs)
        seconds = time.perf_counter() - t0
    return x.reshape(op.c.shape), seconds
