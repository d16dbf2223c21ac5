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
setting), it is respected: JAX's folder, with JAX's thresholds for which
programs it keeps.

Two levels: JAX's persistent cache holds every XLA program, and
:func:`cached_jit` keeps the big entry points (the resolved cold plate's
solvers, set-up and heat balance; the compact model's solve) whole, as
serialized executables in ``<folder>/executables``, so that a warm run skips
their tracing and lowering too (JAX's cache skips only XLA's compile). See
:class:`CachedJit` for the key, which makes a stale entry a miss.

Only the command line turns the cache on (:func:`configure`, called from
:func:`thermo.cli.main`); importing ``aidc_thermo`` or its kernels as a library
changes no JAX setting. The folder may be deleted at any time (it is a cache);
JAX does not bound its size, and entries of older JAX versions are never read
again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import time
import weakref
from contextlib import contextmanager
from functools import cache
from pathlib import Path

__all__ = [
    "ENV",
    "OFF_VALUES",
    "CachedJit",
    "cache_dir",
    "cached_jit",
    "configure",
    "executable_dir",
    "source_hash",
    "user_cache_folder",
]

#: environment variable: a folder for the cache, or one of OFF_VALUES
ENV = "AIDC_THERMO_COMPILE_CACHE"
OFF_VALUES = ("0", "off", "no", "false", "none")


def user_cache_folder(env: str, leaf: str, environ=None) -> Path | None:
    """A cache folder of the command line: the folder the variable ``env``
    names, None when it is one of :data:`OFF_VALUES`, else
    ``$XDG_CACHE_HOME/aidc-thermo/<leaf>`` (``~/.cache`` when unset)."""
    environ = os.environ if environ is None else environ
    value = environ.get(env, "").strip()
    if value.lower() in OFF_VALUES:
        return None
    if value:
        return Path(value).expanduser()
    base = environ.get("XDG_CACHE_HOME", "").strip() or str(Path("~/.cache").expanduser())
    return Path(base) / "aidc-thermo" / leaf


def cache_dir(environ=None) -> Path | None:
    """The cache folder the command line uses, or None when the cache is off."""
    return user_cache_folder(ENV, "jax", environ)


def configure(enabled: bool = True, environ=None) -> tuple[Path | None, str | None]:
    """Turn JAX's persistent compilation cache on for this process (the command
    line's entry point calls this, never a library import).

    Returns ``(folder, note)``: the folder in use (None: off) and a line for
    the user when something is worth saying (the cache could not be created,
    JAX's own setting is used), else None. Every program is cached, however
    short its compile: a solve's dozens of small programs add up to seconds.

    May be called again in the same process, after programs have compiled
    (a Python user turning the cache on or off between runs): JAX decides
    once, at its first compile, whether it uses the cache, so each call here
    resets that decision."""
    environ = os.environ if environ is None else environ

    own = environ.get("JAX_COMPILATION_CACHE_DIR", "").strip()
    _set_executable_dir(None)
    if not enabled:
        _use_jax_cache(None)
        return None, None
    if own:
        # JAX's own variable names the folder; JAX's own thresholds apply
        _use_jax_cache(Path(own), own_thresholds=True)
        _set_executable_dir(Path(own))
        return Path(own), None
    folder = cache_dir(environ)
    if folder is None:
        _use_jax_cache(None)
        return None, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _use_jax_cache(None)
        return None, f"compile cache off: cannot create {folder} ({exc.strerror or exc}); set {ENV} to another folder"
    _use_jax_cache(folder)
    _set_executable_dir(folder)
    return folder, None


def _use_jax_cache(folder: Path | None, own_thresholds: bool = False) -> None:
    """JAX's persistent cache on in ``folder`` (None: off), its decision reset.
    Thermo's thresholds keep every program; ``own_thresholds`` (JAX's own
    variable names the folder) puts back the ones JAX had before thermo's
    first call, so an earlier ``configure()`` does not leave thermo's behind.

    ``reset_cache`` only forgets JAX's decision and its cache object; it
    starts no backend (``thermo sweep`` calls ``jax.distributed.initialize``
    after this)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as jcc

    global _jax_thresholds
    if _jax_thresholds is None:  # as JAX (or its user) had them before thermo's first change
        _jax_thresholds = {name: getattr(jax.config, name) for name in _THERMO_THRESHOLDS}
    jax.config.update("jax_enable_compilation_cache", folder is not None)
    if folder is not None:
        jax.config.update("jax_compilation_cache_dir", str(folder))
        for name, value in (_jax_thresholds if own_thresholds else _THERMO_THRESHOLDS).items():
            jax.config.update(name, value)
    jcc.reset_cache()


#: JAX's settings for which programs its persistent cache keeps, as thermo sets them: every program
_THERMO_THRESHOLDS = {
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": -1,
}
_jax_thresholds: dict | None = None


# ----------------------------------------------------------------------------- executable cache
#
# JAX's persistent cache skips only XLA's compile: every run still traces the
# solver (seconds for the resolved cold plate's flow and energy programs) and
# lowers it to MLIR (seconds more) before it can ask the cache. The executable
# cache below keeps the compiled program itself, so a warm run neither traces
# nor lowers the big entry points: it reads a file and loads the program.

#: subfolder of the cache folder holding the serialized executables
EXECUTABLES = "executables"
_FORMAT = 1  # bump when the entry layout changes: older entries are then never read
_MAGIC = b"aidc-thermo-executable\n"

_exec_dir: Path | None = None  # set by configure(); None: plain jax.jit
_source_hash: str | None = None
_log = logging.getLogger(__name__)


def executable_dir() -> Path | None:
    """The folder of the executable cache in use, or None (off, or outside the command line)."""
    return _exec_dir


def _set_executable_dir(folder: Path | None) -> None:
    global _exec_dir
    _exec_dir = None if folder is None else Path(folder) / EXECUTABLES


def source_hash() -> str:
    """SHA-256 over the source of every module of the package (``aidc_thermo``
    and its kernels), computed once per process: any edit to any module makes
    every stored executable a miss."""
    global _source_hash
    if _source_hash is None:
        import importlib.util

        import aidc_thermo

        # the kernels' folder found without importing them (that would import JAX: `thermo check` hashes a
        # referenced plate case's cache key and starts no JAX)
        kernels = importlib.util.find_spec("aidc_thermo.kernels")
        roots = sorted({Path(aidc_thermo.__file__).resolve().parent, Path(kernels.origin).resolve().parent})
        h = hashlib.sha256()
        for root in roots:
            for path in sorted(root.rglob("*.py")):
                h.update(str(path.relative_to(root.parent)).encode() + b"\0")
                h.update(path.read_bytes() + b"\0")
        _source_hash = h.hexdigest()
    return _source_hash


def _environment_key() -> str:
    """What else decides the compiled program: JAX and jaxlib versions, the
    backend and its devices, the x64 flag, XLA's flags and the options thermo
    compiles with (:mod:`thermo.compile_options`)."""
    import jax
    import jaxlib

    from aidc_thermo.compile_options import compiler_options

    devs = jax.devices()
    parts = (
        jax.__version__,
        jaxlib.__version__,
        jax.default_backend(),
        devs[0].device_kind,
        _host_cpu(),
        str(len(devs)),
        str(bool(jax.config.jax_enable_x64)),
        os.environ.get("XLA_FLAGS", ""),
        repr(sorted(compiler_options().items())),
        source_hash(),
    )
    return "\x1f".join(parts)


@cache
def _host_cpu() -> str:
    """The host CPU's model and instruction-set flags: XLA compiles CPU code
    for the host it runs on, so a cache folder shared between machines (a home
    directory on a cluster) must not hand one machine's program to another
    (an instruction it lacks would kill the process)."""
    import platform

    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    wanted = ("model name", "flags", "Features", "CPU part")
    seen = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() in wanted and name.strip() not in seen:
            seen[name.strip()] = value.strip()
    return hashlib.sha256(repr((platform.machine(), platform.processor(), sorted(seen.items()))).encode()).hexdigest()


def _aval(x) -> str:
    import jax

    t = jax.typeof(x)
    return f"{t.dtype}{list(t.shape)}{'w' if getattr(t, 'weak_type', False) else ''}"


class CachedJit:
    """``jax.jit(fn, static_argnums=...)`` whose compiled programs are kept on
    disk while the command line's cache is on (:func:`configure`).

    A call is keyed by the SHA-256 of: the package source (:func:`source_hash`),
    JAX/jaxlib versions, backend, device kind and count, the host CPU's model and
    instruction-set flags, the x64 flag, XLA_FLAGS, the XLA options of the
    program's kind (:mod:`thermo.compile_options`), the function's module and
    name, the static arguments (``repr``), the pytree structure of the others
    and every leaf's dtype, shape and weak type. A hit loads the stored
    executable (no tracing, lowering or compiling); a miss lowers and compiles
    as ``jax.jit`` would and stores the result. An entry that cannot be read,
    fails its checksum or does not load is logged and
    rebuilt. With the cache off (library use, ``--no-compile-cache``,
    ``AIDC_THERMO_COMPILE_CACHE=off``) this is plain
    :func:`thermo.compile_options.jit`."""

    def __init__(self, fn, static_argnums=(), kind: str | None = None):
        from aidc_thermo.compile_options import jit

        self.fn = fn
        self.static_argnums = tuple(static_argnums)
        self.kind = kind
        self.jitted = jit(fn, kind=kind, static_argnums=self.static_argnums)
        self.name = f"{fn.__module__}.{fn.__qualname__}"
        self._loaded: dict[str, object] = {}  # key -> loaded executable, this process
        _instances.add(self)

    def __call__(self, *args):
        if _exec_dir is None or not _custom_calls_ready():
            return self.jitted(*args)
        import jax

        static = tuple(args[i] for i in self.static_argnums if i < len(args))
        dynamic = tuple(a for i, a in enumerate(args) if i not in self.static_argnums)
        static_text = repr(static)
        if " at 0x" in static_text or "..." in static_text:
            # an object without a value repr, or a summarised array: no key can
            # tell two such arguments apart, so this call is not cached
            return self.jitted(*args)
        leaves, tree = jax.tree_util.tree_flatten(dynamic)
        key = self.key(static_text, tree, leaves)
        exe = self._loaded.get(key)
        if exe is not None:
            return exe(*dynamic)
        exe, from_disk = self._load_or_build(key, args)
        if not from_disk:
            self._loaded[key] = exe
            return exe(*dynamic)
        try:  # a loaded program's first run is waited for: one that cannot run is rebuilt
            out = jax.block_until_ready(exe(*dynamic))
        except Exception as exc:
            _log.warning(
                "compile cache: the executable %s loaded but failed to run (%s: %s); compiling it again",
                self._path(key), type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
            )  # fmt: skip
            self._path(key).unlink(missing_ok=True)
            exe, _ = self._load_or_build(key, args, use_disk=False)
            out = exe(*dynamic)
        self._loaded[key] = exe
        return out

    def lower(self, *args):
        """``jax.jit(fn).lower``: ahead-of-time lowering, never cached."""
        return self.jitted.lower(*args)

    def key(self, static_text: str, tree, leaves) -> str:
        """The entry's key: SHA-256 over the environment, the function, the
        static arguments' repr, the others' tree and leaf types."""
        from aidc_thermo.compile_options import compiler_options

        h = hashlib.sha256()
        options = repr(sorted(compiler_options(self.kind).items()))
        avals = ",".join(_aval(x) for x in leaves)
        for part in (_environment_key(), options, self.name, static_text, str(tree), avals):
            h.update(part.encode() + b"\x1e")
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return _exec_dir / f"{self.fn.__qualname__}-{key[:40]}.bin"

    def _load_or_build(self, key: str, args, use_disk: bool = True):
        """``(executable, loaded from disk)``."""

        from aidc_thermo import progress

        path = self._path(key)
        if use_disk and path.exists():
            t0 = time.time()
            try:
                exe = _read_entry(path, key)
            except Exception as exc:  # any failure to read or load: rebuild, never crash
                _log.warning(
                    "compile cache: ignoring unreadable executable %s (%s: %s); compiling it again",
                    path,
                    type(exc).__name__,
                    exc,
                )
            else:
                progress.executable_cache_event("loaded", t0, time.time())
                return exe, True
        # compiled afresh, not taken from JAX's persistent cache: an executable
        # that XLA itself loaded from there may not serialize whole (measured
        # with jax 0.10.2 on the CPU: the stored copy failed to run, "Function
        # broadcast_multiply_fusion.16 not found")
        with _without_persistent_cache():
            compiled = self.jitted.lower(*args).compile()
        t0 = time.time()
        if not _storable(compiled):
            _log.info("compile cache: %s holds custom calls that a loaded program cannot use; not stored", self.name)
            return compiled, False
        try:
            _write_entry(path, key, compiled)
        except Exception as exc:  # a full disk or a read-only folder: run uncached
            _log.warning("compile cache: could not store %s (%s: %s)", path, type(exc).__name__, exc)
        else:
            progress.executable_cache_event("stored", t0, time.time())
        return compiled, False


@contextmanager
def _without_persistent_cache():
    """JAX's persistent cache off for the block, on again after it. JAX decides
    once per process whether it uses the cache (at the first compile), so the
    decision is reset on both sides (``reset_cache``): without that, a block
    that is the process's first compile would leave the cache off for every
    later program, and a block after it would still read the cache."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as jcc

    was = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    jcc.reset_cache()
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", was)
        jcc.reset_cache()


_ready: bool | None = None


def _custom_calls_ready() -> bool:
    """Whether loaded programs can run here (:func:`_prepare_custom_calls`
    succeeded; tried once per process)."""
    global _ready
    if _ready is None:
        try:
            _prepare_custom_calls()
            _ready = True
        except Exception as exc:  # a JAX without the initializer: plain jax.jit
            _log.warning("compile cache: executable cache off (%s: %s)", type(exc).__name__, exc)
            _ready = False
    return _ready


_instances: weakref.WeakSet = weakref.WeakSet()  # every CachedJit alive, for release_programs()


def release_programs() -> None:
    """Let go of every compiled program this process holds: JAX's caches
    (``jax.clear_caches``) and the executables :class:`CachedJit` loaded.

    A loop that compiles a new program of the same function per item (a
    calibration grid's unit cells) calls this between items: JAX's caches
    keep such programs alive for as long as the function lives. (A sweep
    jits a new closure per bucket; dropping its compiled program is enough.)
    Each CPU program keeps some 2,000-5,000 memory maps of the process
    (measured with jax 0.10.2: a resolved unit-cell solve), and Linux allows
    a process 65,530 (``vm.max_map_count``): twenty such programs alive at
    once crash the process ("LLVM ERROR: Unable to allocate section
    memory"). Programs of other functions compile again when next called,
    or load from the disk cache when it is on."""
    import jax

    for jitted in list(_instances):
        jitted._loaded.clear()
    jax.clear_caches()


def cached_jit(fn, static_argnums=(), kind: str | None = None) -> CachedJit:
    """:class:`CachedJit` of ``fn``, a program of ``kind``
    (:func:`thermo.compile_options.compiler_options`)."""
    return CachedJit(fn, static_argnums, kind)


def _prepare_custom_calls() -> None:
    """Make the custom calls a loaded executable may hold callable. JAX fills
    the LAPACK table of its CPU custom calls (``lapack_*``, e.g. the LU factor
    of the multigrid's coarse level) when it first lowers a linear-algebra
    operation; a program loaded without lowering would call an empty table
    and crash the process. Raises if this JAX has no such initializer (the
    cache then stays off: see :meth:`CachedJit.__call__`)."""
    import jax

    if jax.default_backend() == "cpu":
        from jax._src.lib import lapack

        lapack._lapack.initialize()


def _custom_call_targets(compiled) -> set[str]:
    return set(re.findall(r'custom_call_target="([^"]+)"', compiled.as_text() or ""))


def _storable(compiled) -> bool:
    """Only programs whose custom calls :func:`_prepare_custom_calls` readies
    (LAPACK's on the CPU) are stored: a loaded program with any other custom
    call could meet an uninitialised handler."""
    import jax

    targets = _custom_call_targets(compiled)
    if jax.default_backend() == "cpu":
        return all(t.startswith("lapack_") for t in targets)
    return not targets


def _write_entry(path: Path, key: str, compiled) -> None:
    from jax.experimental import serialize_executable

    payload, in_tree, out_tree = serialize_executable.serialize(compiled)
    body = pickle.dumps({"format": _FORMAT, "key": key, "payload": payload, "in_tree": in_tree, "out_tree": out_tree})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(_MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    os.replace(tmp, path)  # atomic: a reader sees the old entry or the whole new one


def _read_entry(path: Path, key: str):
    from jax.experimental import serialize_executable

    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError("not an executable-cache entry")
    digest, sep, body = data[len(_MAGIC) :].partition(b"\n")
    if not sep or hashlib.sha256(body).hexdigest().encode() != digest:
        raise ValueError("checksum mismatch (truncated or corrupted file)")
    entry = pickle.loads(body)  # the user's own cache folder; the checksum guards against damage
    if entry.get("format") != _FORMAT or entry.get("key") != key:
        raise ValueError("entry written for another key or format")
    return serialize_executable.deserialize_and_load(entry["payload"], entry["in_tree"], entry["out_tree"])
