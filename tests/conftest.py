"""Strict JAX for the whole test session: float64 available, dtype promotion
strict, rank promotion raises. Tests that check float32 pass float32 arrays
explicitly."""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# The command line keeps compiled programs in the user's cache folder
# (thermo/compile_cache.py). Tests that run it (in this process or in a child
# process, which inherits this) leave the user's cache alone; a test of the
# cache sets its own folder.
import os  # noqa: E402

os.environ.setdefault("AIDC_THERMO_COMPILE_CACHE", "off")

# CI (.ci/run) names one compile cache folder for every test process of its run (the default suite's workers and
# the slow suite's one process per file): this process then compiles through it as the command line does, so a
# program the run has compiled once (a bundled plate's solve, say) is loaded, not compiled again, by the next
# process. Tests of the cache itself set their own folder.
from aidc_thermo import compile_cache  # noqa: E402

if os.environ["AIDC_THERMO_COMPILE_CACHE"].strip() and compile_cache.cache_dir() is not None:
    compile_cache.configure()

# LAPACK inside compiled programs on one BLAS thread, as the command line runs them (thermo/blas.py): two xdist
# workers on a 2-core machine each with OpenBLAS's own threads beside XLA's oversubscribe it.
from aidc_thermo import blas  # noqa: E402

blas.limit()

# Cold-plate curves solved from a plate case (thermo/curve_cache.py) go to one folder per test session, not the
# user's: set here in pytest's first process, inherited by its xdist workers, so a bundled plate is solved once.
if "AIDC_THERMO_CURVE_CACHE" not in os.environ:
    import tempfile  # noqa: E402

    os.environ["AIDC_THERMO_CURVE_CACHE"] = tempfile.mkdtemp(prefix="aidc-thermo-test-curves-")


def pytest_configure(config):
    """The default suite (``-m 'not slow'``) compiles with XLA's CPU backend
    optimisation off: it spends most of its time compiling small programs, and
    off they compile in less time (on 2 cores: tests/test_porous.py 48 s -> 30-41
    s; test_energy.py with test_transient_hall.py 149 -> 127 s) while the answers
    agree to round-off, which no tolerance in it is near (the bundled rack's and
    single-accelerator hall's reported values: within 6e-15 relative, most bit
    for bit). The slow validation suite and the benchmarks compile as users do.
    XLA_FLAGS that already name an optimisation level are left alone. Workers
    of pytest-xdist run this too, before any of them compiles."""
    if config.getoption("markexpr", "") != "not slow":
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" in flags:
        return
    quick = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    os.environ["XLA_FLAGS"] = f"{flags} {quick}".strip()
