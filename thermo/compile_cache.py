"""JAX's persistent compilation cache for the ``thermo`` command.

A solving command (``thermo run``, ``optimize``, ``calibrate``) compiles its
solvers with XLA on first use; that takes seconds to tens of seconds per mesh
shape. With the cache on, XLA's compiled programs are written to a folder and
the next run of the same case (or of any case with the same mesh shape and
solver settings) loads them instead of compiling again.

Where: ``$AIDC_THERMO_COMPILE_CACHE`` if set to a folder; otherwise
``$XDG_CACHE_HOME/aidc-thermo/jax`` (``~/.cache/aidc-thermo/jax`` when
``XDG_CACHE_HOME`` is unset). Off: ``AIDC_THERMO_COMPILE_CACHE=off`` (or
``0``, ``no``, ``false``, ``none``) or the command-line flag
``--no-compile-cache``. If ``JAX_COMPILATION_CACHE_DIR`` is set (JAX's own
setting), it is respected and this module changes nothing.

Only the command line turns the cache on (:func:`configure`, called from
:func:`thermo.cli.main`); importing ``aidc_thermo`` or its kernels as a library
changes no JAX setting. The folder may be deleted at any time (it is a cache);
JAX does not bound its size, and entries of older JAX versions are never read
again.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV", "OFF_VALUES", "cache_dir", "configure"]

#: environment variable: a folder for the cache, or one of OFF_VALUES
ENV = "AIDC_THERMO_COMPILE_CACHE"
OFF_VALUES = ("0", "off", "no", "false", "none")


def cache_dir(environ=None) -> Path | None:
    """The cache folder the command line uses, or None when the cache is off."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV, "").strip()
    if value.lower() in OFF_VALUES:
        return None
    if value:
        return Path(value).expanduser()
    base = environ.get("XDG_CACHE_HOME", "").strip() or str(Path("~/.cache").expanduser())
    return Path(base) / "aidc-thermo" / "jax"


def configure(enabled: bool = True, environ=None) -> tuple[Path | None, str | None]:
    """Turn JAX's persistent compilation cache on for this process (the command
    line's entry point calls this, never a library import).

    Returns ``(folder, note)``: the folder in use (None: off) and a line for
    the user when something is worth saying (the cache could not be created,
    JAX's own setting is used), else None. Every program is cached, however
    short its compile: a solve's dozens of small programs add up to seconds."""
    environ = os.environ if environ is None else environ
    import jax

    own = environ.get("JAX_COMPILATION_CACHE_DIR", "").strip()
    if not enabled:
        jax.config.update("jax_enable_compilation_cache", False)
        return None, None
    if own:
        return Path(own), None  # JAX reads its own variable; nothing to change
    folder = cache_dir(environ)
    if folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        jax.config.update("jax_enable_compilation_cache", False)
        return None, f"compile cache off: cannot create {folder} ({exc.strerror or exc}); set {ENV} to another folder"
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return folder, None
