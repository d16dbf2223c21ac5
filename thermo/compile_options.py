"""XLA options for thermo's own compiled programs.

thermo's programs (the resolved and compact cold plates' solves, the
calibration, the facility year, the rack network, the sweep's batches, the
optimizer's and the transient models' programs) are compiled through
:func:`jit`, which is ``jax.jit`` with the options of :func:`compiler_options`.
On the CPU every program gets ``xla_backend_optimization_level = 1``: LLVM's
``-O1`` pipeline for XLA's fused kernels instead of XLA's default level. Most
of a CPU compile is LLVM optimising and emitting those kernels (the resolved
cold plate's flow program has about 850), and at ``-O1`` that costs 10-20 %
less while the kernels, which are memory-bound, run as fast (measured with jax
0.10.2 on a 2-core AMD EPYC, 2026-12-06; benchmarks/RESULTS.md, issue 16).

A program of a named kind gets the options of :data:`KIND_OPTIONS` besides
(``jit(fn, kind=...)``). The finite-volume programs (the resolved cold plate's
solves and helpers, the calibration's resolved solves, the sweep's batches of
resolved plates) are compiled with ``xla_cpu_use_fusion_emitters = False``,
XLA's older elemental kernel emitters: measured with jax 0.10.2 on the 2-core
AMD EPYC (2026-12-07, whole ``thermo run`` with both caches off, two runs
each), the unit cell compiled in 10.3-10.6 s instead of 12.6-13.2 s, the
pin-fin plate in 13.1-15.1 s instead of 16.6-17.4 s and the calibration in
16.5-16.8 s instead of 18.4-19.9 s, with the solves as fast and every
reported value the same to 8e-11 (the unit cell's and the pin fin's to
1.5e-13). The unit cell's program at 806k cells compiled in 21.5 s instead
of 26.0 s and solved in 25.9-26.6 s against 25.2-26.2 s; on the benchmark's
larger meshes the flow's last outer iterations round differently, and dP
and R moved by up to 3e-7 relative (49k: 6e-9), inside its tolerance of
1e-6. On larger meshes a whole ``thermo run`` gains less than its program
compiled alone: at 49k cells 17.3-22.8 s against 18.5-24.0 s (about 5 %),
where the same program compiled ahead of time in one process took 17.7 s
against 23.3-24.0 s at that hour; why is not known. The compact plate's
programs compile 20-30 % slower that way and solve up to 50 % slower, so
the option is not global.

Each option is tried once per process on a one-line program, at the first
call of one of thermo's programs (never at import or set-up: ``thermo sweep``
must start ``jax.distributed`` before anything initialises XLA's backend);
that program is left out of the run's counts (:func:`thermo.progress.unrecorded`).
An option this XLA does not know (an older or newer jaxlib) is left out,
never an error.
An option that ``XLA_FLAGS`` already names is left to ``XLA_FLAGS``.
Accelerators compile with XLA's defaults (not measured there).
``AIDC_THERMO_XLA_OPTIONS=off`` (or ``0``, ``no``, ``false``, ``none``) turns
the options off. Kernels imported from ``aidc_thermo.kernels`` and jitted by
a caller compile as the caller says; this module changes no JAX setting.
"""

from __future__ import annotations

import functools
import logging
import os
from functools import cache

__all__ = ["CPU_OPTIONS", "ENV", "FINITE_VOLUME", "KIND_OPTIONS", "compiler_options", "jit"]

#: environment variable: one of compile_cache.OFF_VALUES turns the options off
ENV = "AIDC_THERMO_XLA_OPTIONS"

#: XLA debug options of thermo's programs on the CPU (see the module's docstring)
CPU_OPTIONS = {"xla_backend_optimization_level": 1}

#: the kind of the finite-volume programs (the resolved cold plate's)
FINITE_VOLUME = "finite_volume"

#: further XLA options on the CPU for the programs of a kind (module docstring)
KIND_OPTIONS = {FINITE_VOLUME: {"xla_cpu_use_fusion_emitters": False}}

_log = logging.getLogger(__name__)


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KIND_OPTIONS:
        raise ValueError(f"unknown kind of program {kind!r}: one of {sorted(KIND_OPTIONS)}")


def compiler_options(kind: str | None = None) -> dict:
    """The XLA options thermo compiles its programs of ``kind`` (None: any
    program; else a key of :data:`KIND_OPTIONS`) with in this process: a dict
    for ``jax.jit(compiler_options=...)``, empty when off, on an accelerator,
    or when this XLA knows none of them."""
    from aidc_thermo.compile_cache import OFF_VALUES

    _check_kind(kind)
    if os.environ.get(ENV, "").strip().lower() in OFF_VALUES:
        return {}
    import jax

    if jax.default_backend() != "cpu":
        return {}
    flags = os.environ.get("XLA_FLAGS", "")
    options = {**CPU_OPTIONS, **KIND_OPTIONS.get(kind, {})}
    return {k: v for k, v in options.items() if k not in flags and _accepted(k, v)}


@cache
def _accepted(name: str, value) -> bool:
    """Whether XLA accepts the option ``name = value``, tried on its own."""
    import jax
    import numpy as np

    from aidc_thermo.progress import unrecorded

    try:
        with unrecorded():
            jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(np.float32(1)).compile()
    except Exception as exc:  # this XLA lacks the option (or refuses the value): compile without it
        _log.info("XLA option %s=%r left out (%s: %s)", name, value, type(exc).__name__, str(exc)[:200])
        return False
    return True


class _Jit:
    """``jax.jit(fn, **kwargs)``, with :func:`compiler_options` for a call at
    the top level and without them for a call traced inside another
    transformation.

    JAX takes ``compiler_options`` only on a top-level ``jax.jit``: a jit
    staged into an enclosing jit, grad or vmap raises. thermo's programs are
    also traced inside others (the facility's report under ``jax.grad``, the
    solves under ``thermo optimize``'s Jacobian); there the enclosing program
    is the one compiled, with its own options. The options are looked up at
    each top-level call, not when the function is wrapped: wrapping touches
    no XLA backend."""

    def __init__(self, fn, kwargs: dict, kind: str | None = None):
        import jax

        _check_kind(kind)
        self._fn, self._kwargs, self._kind = fn, kwargs, kind
        self._plain = jax.jit(fn, **kwargs)
        self._with: dict[tuple, object] = {}  # options -> jax.jit with them
        functools.update_wrapper(self, fn)

    def _pick(self, args, kwargs):
        import jax

        leaves = jax.tree_util.tree_leaves((args, kwargs))
        if any(isinstance(x, jax.core.Tracer) for x in leaves) or not _top_level():
            return self._plain
        options = compiler_options(self._kind)
        if not options:
            return self._plain
        key = tuple(sorted(options.items()))
        if key not in self._with:
            self._with[key] = jax.jit(self._fn, compiler_options=options, **self._kwargs)
        return self._with[key]

    def _run(self, method: str, args, kwargs):
        fn = self._pick(args, kwargs)
        try:
            return getattr(fn, method)(*args, **kwargs)
        except ValueError as exc:
            # a nested call that _top_level could not see (a JAX without its
            # private check): JAX refuses the options when it stages the call; the
            # enclosing program is the one compiled, so the plain jit serves
            if fn is self._plain or "top-level" not in str(exc):
                raise
            return getattr(self._plain, method)(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self._run("__call__", args, kwargs)

    def lower(self, *args, **kwargs):
        return self._run("lower", args, kwargs)


def _top_level() -> bool:
    """True when no JAX transformation is tracing (a function closing over a
    tracer has none among its arguments). JAX keeps no public test for that;
    without its private one, every call counts as top level, and a nested
    call that JAX then refuses falls back to the plain jit (``_Jit._run``)."""
    try:
        from jax._src import core
    except ImportError:  # pragma: no cover - a JAX that moved it
        return True
    check = getattr(core, "trace_state_clean", None)
    return True if check is None else bool(check())


def jit(fn, *, kind: str | None = None, **kwargs):
    """``jax.jit(fn, **kwargs)`` that compiles with :func:`compiler_options`
    of ``kind`` when called at the top level (see :class:`_Jit`)."""
    return _Jit(fn, kwargs, kind)
