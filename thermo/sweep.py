"""``thermo sweep SWEEP.toml -o OUT``: many designs of one case, batched.

A sweep file names a base case and the case keys to vary::

    [sweep]
    case = "compact_small.toml"          # relative to the sweep file
    outputs = ["pressure_drop", "R_max"] # kept outputs (default: every scalar output)
    chunk_size = 0                       # designs per batch (0: sized to memory)

    [[parameter]]                        # a grid: explicit values ...
    key = "operating.flow"
    values = ["1 L/min", "2 L/min"]

    [[parameter]]                        # ... or a range of points (linear or log spacing)
    key = "fins.channel_width"
    range = ["0.1 mm", "0.4 mm"]
    points = 20
    spacing = "linear"

    [[parameter]]                        # ... or a range sampled with [sampling]
    key = "fins.fin_thickness"
    range = ["0.05 mm", "0.2 mm"]
    sample = true

    [sampling]                           # scipy.stats.qmc, seeded
    method = "sobol"                     # or "latin_hypercube"
    samples = 64
    seed = 0

    [[constraint]]                       # feasibility of a design (kept either way)
    output = "T_junction_max"
    max = "85 degC"

The designs are the Cartesian product of the grid parameters with the
sampled set. Each design is the base case's TOML with the keys set (SI
numbers) and parsed again, so the model's own validation applies; a design
the model refuses is an error of the sweep file naming the parameter and the
value. Designs are grouped into buckets of equal ``Static`` (one compilation
each), solved as ``jax.jit(jax.vmap(solve + report))`` over stacked
``Params`` in chunks, each chunk sharded over the local devices
(``Mesh`` + ``NamedSharding`` on the design axis); with
``jax.distributed`` (flags or a Slurm / JAX cluster environment) every
process takes its share of the chunks. Each finished chunk is written
atomically into ``OUT/chunks``; a restart of the same command skips them.
At the end: ``table.csv``, ``table.h5``, ``sweep.json`` and plots.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import re
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aidc_thermo import progress
from aidc_thermo.compile_options import jit
from aidc_thermo.io.case import CaseError, CaseFile, Table

__all__ = ["SweepSpec", "Parameter", "Constraint", "read_sweep", "designs", "run_sweep", "SweepChanged"]

FORMAT_VERSION = 1
#: The case types whose models give what a sweep needs (PROTOCOL, screen, stack_params)
SWEEPABLE = ("compact_coldplate", "package_stack", "rack_network", "facility", "resolved_coldplate")
#: the most kept outputs the sweep's plots cover (their 28 pairs; the table keeps every output)
MAX_PLOTTED = 8


class SweepChanged(CaseError):
    """The output folder holds a sweep made from other files."""


@dataclass(frozen=True)
class Parameter:
    key: str  # case key path (dots; list entries by index)
    path: tuple  # parsed path (str keys, int indices)
    values: tuple[float, ...]  # SI values of a grid parameter (empty for a sampled one)
    low: float = math.nan  # SI bounds of a sampled parameter
    high: float = math.nan
    log: bool = False
    unit: str = ""  # SI unit of the values ("" when the case gives plain numbers)
    integer: bool = False
    # the base case gives a plain (SI) number but the sweep's values carry a unit: each design's case gets the
    # value with its SI unit written out, so that the model's own parser checks the key's dimension
    with_unit: bool = False

    @property
    def sampled(self) -> bool:
        return not self.values


@dataclass(frozen=True)
class Constraint:
    output: str
    low: float | None  # in the output's units
    high: float | None
    text: str


@dataclass
class SweepSpec:
    path: Path
    case_path: Path
    case_text: str
    name: str
    parameters: list[Parameter]
    method: str
    samples: int
    seed: int
    outputs: tuple[str, ...]  # () = every scalar output
    constraints: list[Constraint]
    chunk_size: int
    digest: str = ""
    base_data: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- reading the sweep file

_INDEX = re.compile(r"\[(\d+)\]")
#: a quantity in a case file starts with its number ("35 degC", "1.5e-3 m^3/s"); "U" is a name, not a unit
_NUMBER = re.compile(r"\s*[-+]?(\d|\.\d)")


def _key_path(text: str) -> tuple:
    parts = _INDEX.sub(r".\1", text).split(".")
    return tuple(int(p) if p.isdigit() else p for p in parts)


def _lookup(data, path):
    node = data
    for p in path:
        if isinstance(p, int):
            if not isinstance(node, list) or p >= len(node):
                return None, False
            node = node[p]
        else:
            if not isinstance(node, dict) or p not in node:
                return None, False
            node = node[p]
    return node, True


def _assign(data, path, value):
    node = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def _quantity(text):
    """``(SI magnitude, SI unit text, dimensionality)`` of a TOML value."""
    from aidc_thermo.io.units import registry

    ureg = registry()
    if isinstance(text, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(text, (int, float)):
        return float(text), "", None
    q = ureg.Quantity(str(text).strip())
    if not hasattr(q, "dimensionality"):
        return float(q), "", None
    from aidc_thermo.io.units import DIMENSIONS

    for si, _ in DIMENSIONS.values():  # the project's SI unit names (W, not kg*m^2/s^3)
        if si != "dimensionless" and ureg.Quantity(1.0, si).dimensionality == q.dimensionality:
            return float(q.to(si).magnitude), si, q.dimensionality
    base = q.to_base_units()
    unit = f"{base.units:~}".replace(" ", "").replace("**", "^")
    return float(base.magnitude), ("" if unit in ("", "dimensionless") else unit), q.dimensionality


def _si(t: Table, name: str, raw, dim, unit: str) -> tuple[float, str]:
    try:
        value, u, d = _quantity(raw)
    except Exception as exc:  # pint raises many types; the message names the key
        raise t.error(name, f"could not read {raw!r} as a quantity ({exc})") from None
    if not math.isfinite(value):
        raise t.error(name, f"{raw!r} is not a finite number")
    if dim is not None and d is not None and d != dim:
        raise t.error(name, f"{raw!r} has dimension {d}, but the case gives this key in {unit or 'SI'} ({dim})")
    if dim is not None and d is None and isinstance(raw, (int, float)):
        pass  # a plain number is SI, as in case files
    return value, u or unit


def _unit_of(t: Table, name: str, unit: str, dim, units: list[str], raw) -> tuple[str, bool]:
    """The SI unit of a parameter's values and whether designs write it out:
    the base case's unit when it gives one; else (a plain SI number in the
    case) the unit the sweep's values carry, which must agree among them."""
    if dim is not None:
        return unit, False
    given = {u for u in units if u}
    if not given:
        return unit, False
    if len(given) > 1 or len(given) != len(set(units)):
        raise t.error(name, f"{raw!r} mixes units ({sorted(set(units))}); give every value in one dimension")
    return given.pop(), True


def read_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (CaseError naming the sweep file and key on any problem)."""
    path = Path(path)
    try:
        text = path.read_bytes()
        data = tomllib.loads(text.decode("utf-8"))
    except FileNotFoundError:
        raise CaseError(path, "", "sweep file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CaseError(path, "", f"not valid TOML: {exc}") from None
    root = Table(data, path)
    st = root.table("sweep")
    case_path = st.path_value("case", path.parent)
    name = st.string("name", default=path.stem)
    outputs = st.raw("outputs", default=[])
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise st.error("outputs", f"a list of output names, got {outputs!r}")
    chunk = st.integer("chunk_size", default=0, minimum=0)
    st.finish()
    if not case_path.is_file():
        raise st.error("case", f"base case {case_path} not found")
    case_bytes = case_path.read_bytes()
    try:
        base = tomllib.loads(case_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise st.error("case", f"base case {case_path} is not valid TOML: {exc}") from None

    sampling = root.table("sampling", default=None)
    method, samples, seed = "", 0, 0
    if sampling is not None:
        method = sampling.string("method", choices=("sobol", "latin_hypercube"))
        samples = sampling.integer("samples")
        if samples < 1:
            raise sampling.error("samples", f"at least 1 sample, got {samples}")
        seed = sampling.integer("seed", default=0, minimum=0)
        sampling.finish()

    params = []
    seen = set()
    for pt in root.tables("parameter", min_count=1):
        key = pt.string("key")
        kpath = _key_path(key)
        if key in seen:
            raise pt.error("key", f"{key!r} is swept twice")
        seen.add(key)
        current, found = _lookup(base, kpath)
        if not found:
            raise pt.error("key", f"{key!r} is not a key of the base case {case_path} (sweep only keys the case sets)")
        if (
            isinstance(current, bool)
            or not isinstance(current, (int, float, str))
            or (isinstance(current, str) and not _NUMBER.match(current))
        ):
            raise pt.error("key", f"{key!r} is not a number in the base case (it is {current!r}); only numbers sweep")
        try:
            _, unit, dim = _quantity(current)
        except Exception:
            raise pt.error("key", f"{key!r} is not a number in the base case (it is {current!r})") from None
        integer = isinstance(current, int)
        has_values, has_range = pt.has("values"), pt.has("range")
        if has_values == has_range:
            raise pt.error(None, "give either values = [...] or range = [low, high] (with points, or sample = true)")
        if has_values:
            raw = pt.raw("values")
            if not isinstance(raw, list) or not raw:
                raise pt.error("values", f"a non-empty list of values, got {raw!r}")
            read = [_si(pt, "values", v, dim, unit) for v in raw]
            vals = tuple(v for v, _ in read)
            if integer and not all(float(v).is_integer() for v in vals):
                raise pt.error("values", f"{key} is an integer in the case; got {raw!r}")
            unit, with_unit = _unit_of(pt, "values", unit, dim, [u for _, u in read], raw)
            params.append(Parameter(key, kpath, vals, unit=unit, integer=integer, with_unit=with_unit))
            pt.finish()
            continue
        raw = pt.raw("range")
        if not isinstance(raw, list) or len(raw) != 2:
            raise pt.error("range", f"[low, high], got {raw!r}")
        (lo, u_lo), (hi, u_hi) = (_si(pt, "range", v, dim, unit) for v in raw)
        unit, with_unit = _unit_of(pt, "range", unit, dim, [u_lo, u_hi], raw)
        if not hi > lo:
            raise pt.error("range", f"an empty range {raw!r}: high must exceed low")
        spacing = pt.string("spacing", default="linear", choices=("linear", "log"))
        if spacing == "log" and lo <= 0:
            raise pt.error("spacing", f"log spacing needs a positive range, got {raw!r}")
        sample = pt.boolean("sample", default=False)
        if sample:
            if pt.has("points"):
                raise pt.error("points", "a sampled parameter takes its points from [sampling] samples")
            if sampling is None:
                raise pt.error("sample", "sample = true needs a [sampling] table (method, samples, seed)")
            if integer:
                raise pt.error("sample", f"{key} is an integer; sweep it with values or points")
            params.append(Parameter(key, kpath, (), lo, hi, spacing == "log", unit, with_unit=with_unit))
        else:
            n = pt.integer("points")
            if n < 1:
                raise pt.error("points", f"at least 1 point, got {n}")
            grid = np.geomspace(lo, hi, n) if spacing == "log" else np.linspace(lo, hi, n)
            if integer:
                grid = np.unique(np.round(grid))
            params.append(Parameter(key, kpath, tuple(float(v) for v in grid), unit=unit, integer=integer,
                                    with_unit=with_unit))  # fmt: skip
        pt.finish()
    if sampling is not None and not any(p.sampled for p in params):
        raise CaseError(path, "sampling", "no parameter has sample = true")

    constraints = []
    for ct in root.tables("constraint", default=[]):
        out = ct.string("output")
        lo = ct.raw("min", default=None)
        hi = ct.raw("max", default=None)
        if lo is None and hi is None:
            raise ct.error(None, "give min, max or both")
        constraints.append(Constraint(out, lo, hi, ""))
        ct.finish()
    root.finish()
    digest = hashlib.sha256(text + b"\0" + case_bytes).hexdigest()
    return SweepSpec(
        path, case_path, case_bytes.decode("utf-8"), name, params, method, samples, seed, tuple(outputs),
        constraints, chunk, digest, base,
    )  # fmt: skip


def _bound_in(raw, unit: str, ct_key: str, path) -> float:
    """A constraint bound in the output's units (plain numbers are taken in them)."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    from aidc_thermo.io.units import registry

    ureg = registry()
    try:
        q = ureg.Quantity(str(raw))
        return float(q.to(unit or "dimensionless").magnitude) if hasattr(q, "to") else float(q)
    except Exception as exc:
        raise CaseError(
            path, ct_key, f"{raw!r} cannot be compared with an output in {unit or 'no unit'} ({exc})"
        ) from None


# ----------------------------------------------------------------------------- designs


def designs(spec: SweepSpec) -> np.ndarray:
    """``(n_designs, n_parameters)`` SI values: the grid parameters' product
    with the sampled set (qmc in [0, 1), scaled; log parameters in log space)."""
    grid = [p for p in spec.parameters if not p.sampled]
    sampled = [p for p in spec.parameters if p.sampled]
    rows = [list(v) for v in itertools.product(*(p.values for p in grid))] if grid else [[]]
    if sampled:
        from scipy.stats import qmc

        d = len(sampled)
        if spec.method == "sobol":
            eng = qmc.Sobol(d, scramble=True, seed=spec.seed)
        else:
            eng = qmc.LatinHypercube(d, seed=spec.seed)
        u = eng.random(spec.samples)
        cols = []
        for j, p in enumerate(sampled):
            if p.log:
                cols.append(np.exp(np.log(p.low) + u[:, j] * (np.log(p.high) - np.log(p.low))))
            else:
                cols.append(p.low + u[:, j] * (p.high - p.low))
        s = np.stack(cols, -1)
        rows = [r + list(srow) for r in rows for srow in s]
    order = [spec.parameters.index(p) for p in grid + sampled]
    table = np.asarray(rows, np.float64).reshape(len(rows), len(order))
    out = np.empty_like(table)
    out[:, order] = table
    return out


def _design_case(spec: SweepSpec, values) -> CaseFile:
    import copy

    data = copy.deepcopy(spec.base_data)
    for p, v in zip(spec.parameters, values, strict=True):
        value = int(round(v)) if p.integer else float(v)
        _assign(data, p.path, f"{value!r} {p.unit}" if p.with_unit else value)
    return CaseFile(spec.case_path, spec.case_text, data)


def _parse_all(spec: SweepSpec, table: np.ndarray):
    """Parse and build every design; buckets ``{Static: [design ids]}``."""
    from aidc_thermo.registry import model_for

    model = model_for(CaseFile(spec.case_path, spec.case_text, spec.base_data))
    if not (getattr(model, "PROTOCOL", False) and callable(getattr(model, "screen", None))):
        # a sweep screens every design from its reported numbers (model.screen); a case type without one
        # (transient_hall follows the protocol but screens only whole solutions) does not sweep yet
        raise CaseError(
            spec.path,
            "sweep.case",
            f"case type {model.CASE_TYPE!r} does not sweep yet (thermo sweep takes {', '.join(SWEEPABLE)})",
        )
    build = getattr(model, "build_sweep", model.build)
    buckets: dict = {}
    params = []
    for i, row in enumerate(table):
        try:
            case = model.parse(_design_case(spec, row))
        except CaseError as exc:
            pairs = list(zip(spec.parameters, row, strict=True))
            vals = ", ".join(f"{p.key} = {v:.6g}{' ' + p.unit if p.unit else ''}" for p, v in pairs)
            named = [p.key for p, _ in pairs if p.key == exc.key] or [p.key for p, _ in pairs]
            raise CaseError(
                spec.path,
                f"parameter {named[0]}",
                f"design {i} ({vals}) is refused by the base case's model: {exc}",
            ) from None
        static, p = build(case)
        buckets.setdefault(static, []).append(i)
        params.append(p)
    return model, buckets, params


# ----------------------------------------------------------------------------- execution helpers


def _atomic_write(path: Path, writer) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        writer(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _chunk_size(model, static, n_devices: int, requested: int) -> int:
    """Designs per chunk: requested, else what fits in half the memory of a
    device by :mod:`thermo.resources`' estimate (a multiple of the device count)."""
    if requested:
        size = requested
    else:
        from aidc_thermo import resources

        if callable(getattr(model, "design_bytes", None)):  # a network or a plant: the model's own estimate
            per_design = model.design_bytes(static)
        else:  # a grid: bytes per cell column and layer
            per = resources.BYTES_PER_UNIT.get(model.CASE_TYPE, 1000)
            per_design = per * int(np.prod([len(f) - 1 for f in static.faces[:2]])) * (len(static.faces[2]) - 1 + 6)
        avail = _device_memory()
        size = int(max(1, min(4096, 0.5 * avail // max(per_design, 1))))
    return max(n_devices, (size + n_devices - 1) // n_devices * n_devices)


def _device_memory() -> int:
    import jax

    from aidc_thermo import resources

    dev = jax.local_devices()[0]
    if dev.platform != "cpu":
        try:
            stats = dev.memory_stats() or {}
            if "bytes_limit" in stats:
                return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        except Exception:  # noqa: BLE001 - not every backend reports memory
            pass
    return resources.available_memory() // max(1, len(jax.local_devices()))


class _Progress:
    """tqdm on a terminal, plain lines every ``every`` seconds otherwise."""

    def __init__(self, total: int, done: int, stream=None, every: float = 10.0, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.total, self.done, self.start_done = total, done, done
        self.t0 = self.last = time.monotonic()
        self.every, self.quiet = every, quiet
        self.bar = None
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="design", file=self.stream, dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if not self.quiet and (now - self.last >= self.every or self.done >= self.total):
            self.last = now
            rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            print(
                f"sweep: {self.done}/{self.total} designs, {rate:.3g} designs/s, ETA {eta:.0f} s",
                file=self.stream,
                flush=True,
            )

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _init_distributed(coordinator, num_processes, process_id) -> None:
    """``jax.distributed.initialize`` from the flags, else from ``JAX_COORDINATOR_ADDRESS`` /
    ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``, else JAX's cluster detection when Slurm runs more than one task."""
    import jax

    env = os.environ
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])

    if coordinator or num_processes or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        # CPU processes reach each other through gloo (GPUs use their own collectives)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator or num_processes:
        if not (coordinator and num_processes and process_id is not None):
            raise CaseError("command line", "--coordinator", "give --coordinator, --num-processes and --process-id")
        jax.distributed.initialize(coordinator, num_processes, process_id)
    elif int(env.get("SLURM_NTASKS", "1")) > 1:
        jax.distributed.initialize()  # JAX's own cluster detection (Slurm)


# ----------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    folder: Path
    n_designs: int
    compilations: int
    buckets: int
    shardings: list  # sharding of each chunk's input arrays (this process)
    solve_s: float  # time in the compiled batched solves (this process)
    designs_per_hour: float  # designs solved here per hour of solve_s
    compile_s: float = 0.0
    total_s: float = 0.0  # wall time of run_sweep


def run_sweep(
    sweep_file,
    out,
    *,
    coordinator=None,
    num_processes=None,
    process_id=None,
    quiet=False,
    stream=None,
    plots=True,
) -> SweepResult:
    """Run (or resume) a sweep into ``out``; returns what ran. Raises CaseError (exit 2) for a bad sweep file or a
    changed sweep in an existing folder."""
    import jax

    stream = stream or sys.stderr
    t_start = time.perf_counter()
    spec = read_sweep(sweep_file)
    table = designs(spec)
    if len(table) == 0:
        raise CaseError(spec.path, "parameter", "the sweep has no designs")
    progress.phase("build")
    model, buckets, params = _parse_all(spec, table)
    _init_distributed(coordinator, num_processes, process_id)
    nproc, pid = jax.process_count(), jax.process_index()
    out = Path(out)
    chunks_dir = out / "chunks"
    manifest_path = out / "manifest.json"
    local = jax.local_devices()
    ndev = len(local)
    statics = list(buckets)
    # resumption: the manifest fixes the chunk sizes
    manifest = None
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("digest") != spec.digest:
            raise SweepChanged(
                spec.path,
                "",
                f"{out} holds a sweep of other files (the sweep file or its base case {spec.case_path} changed "
                "since it was started); refusing to resume into it: use a new output folder, or delete it",
            )
        sizes = manifest["chunk_sizes"]
    else:
        sizes = [min(_chunk_size(model, s, ndev, spec.chunk_size), -(-len(buckets[s]) // ndev) * ndev)
                 for s in statics]  # fmt: skip
        manifest = {
            "format": FORMAT_VERSION,
            "digest": spec.digest,
            "sweep_file": str(spec.path),
            "case_file": str(spec.case_path),
            "n_designs": len(table),
            "buckets": [len(buckets[s]) for s in statics],
            "chunk_sizes": sizes,
        }
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(manifest_path, lambda fh: fh.write(json.dumps(manifest, indent=1).encode()))
    chunks_dir.mkdir(parents=True, exist_ok=True)
    work = []  # (bucket, chunk, ids)
    for b, s in enumerate(statics):
        ids = buckets[s]
        for c in range(0, len(ids), sizes[b]):
            work.append((b, c // sizes[b], ids[c : c + sizes[b]]))
    mine = [w for k, w in enumerate(work) if k % nproc == pid]

    def chunk_file(b, c):
        return chunks_dir / f"b{b:03d}_c{c:05d}.npz"

    todo = [w for w in mine if not chunk_file(w[0], w[1]).exists()]
    done_designs = len(table) - sum(len(w[2]) for w in work if not chunk_file(w[0], w[1]).exists())
    bar = _Progress(len(table), done_designs, stream=stream, quiet=quiet)
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(local), ("design",))
    sharding = NamedSharding(mesh, PartitionSpec("design"))
    pause = float(os.environ.get("THERMO_SWEEP_PAUSE_S", "0") or 0)  # testing resumption: a pause after each chunk
    compiled, current, n_compiled = None, None, 0  # the program of bucket ``current``
    shardings = []
    t_solve = t_compile = 0.0
    n_solved = 0
    for b, c, ids in todo:
        static = statics[b]
        size = sizes[b]
        batch = [params[i] for i in ids]
        pad = size - len(batch)  # every chunk of a bucket has one shape: one compilation
        stacked = model.stack_params(batch + [batch[-1]] * pad)
        x = jax.tree_util.tree_map(lambda a: jax.device_put(a, sharding), stacked)
        shardings.append(jax.tree_util.tree_leaves(x)[0].sharding)
        if b != current:  # one compilation per bucket (ahead of time, so that the solve is timed alone)
            # the chunks come bucket by bucket: the last bucket's program is dropped first. Each holds hundreds to
            # thousands of memory maps and a process has 65,530; its jitted closure is new per bucket, so no JAX
            # cache keeps it (measured: flat map count; compile_cache.release_programs says more)
            compiled = None
            progress.phase("compile")
            t0 = time.perf_counter()
            compiled = _batched(model, static, mesh).lower(x).compile()
            t_compile += time.perf_counter() - t0
            current, n_compiled = b, n_compiled + 1
            progress.phase("solve")
        t0 = time.perf_counter()
        res = jax.block_until_ready(compiled(x))
        t_solve += time.perf_counter() - t0
        n_solved += len(ids)
        host = {k: np.asarray(v)[: len(ids)] for k, v in res.items()}
        reasons = []
        for j, i in enumerate(ids):
            one = {k: v[j] for k, v in host.items()}
            reasons.append(model.screen(static, params[i], one))
        payload = {f"out__{k}": v for k, v in host.items()}
        payload["design"] = np.asarray(ids, np.int64)
        payload["reason"] = np.asarray(reasons, dtype=np.str_)
        _atomic_write(chunk_file(b, c), lambda fh, p=payload: np.savez(fh, **p))
        bar.update(len(ids))
        if pause:
            time.sleep(pause)
    bar.close()
    if nproc > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("thermo-sweep-chunks-written")
    compiled = None
    progress.phase("write")
    if pid == 0:
        _assemble(spec, model, statics, params, table, work, chunk_file, out, n_compiled, plots)
    if nproc > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("thermo-sweep-table-written")
    rate = 3600.0 * n_solved / t_solve if t_solve > 0 else 0.0
    return SweepResult(out, len(table), n_compiled, len(statics), shardings, t_solve, rate, t_compile,
                       time.perf_counter() - t_start)  # fmt: skip


_META: dict = {}  # Static -> {output: (units, description)}, recorded while tracing


def _batched(model, static, mesh=None):
    """``jit(vmap(solve + report))``; with a mesh, the vmapped batch runs per
    device under ``shard_map`` on its slice of the design axis, so that each
    device's iterative solves stop when its own designs converge and no
    collective crosses devices (a batch sharded without it makes every
    while-loop test all-reduce the convergence flags of all devices); on
    several CPU devices each solves its slice one design at a time."""
    import jax
    from jax.sharding import PartitionSpec

    def one(p):
        sol = model.solve(static, p)
        out = model.report(static, p, sol)
        _META[static] = {k: (o.units, o.description, tuple(np.shape(o.value))) for k, o in out.items()}
        return {k: o.value for k, o in out.items()}

    batched = jax.vmap(one)
    if mesh is not None and mesh.size > 1:
        if mesh.devices.flat[0].platform == "cpu":
            # Several CPU devices in one process run their programs at once on one shared thread pool, and
            # jaxlib's batched LAPACK calls (the multigrids' coarse LU / Cholesky and triangular solves) wait
            # there on work they queued behind each other: the process wedged in about one run in five.
            # Each CPU device solves its slice one design at a time (LAPACK sees batches of one), which also
            # lets every design stop at its own convergence.
            def batched(p):
                return jax.lax.map(one, p)

        spec = PartitionSpec("design")
        batched = jax.shard_map(batched, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    return jit(batched, kind=getattr(model, "PROGRAM_KIND", None))


# ----------------------------------------------------------------------------- the table


def _output_meta(model, statics, params):
    """``name -> (units, description, shape of one design)`` of the outputs:
    recorded when the bucket was traced for compilation, else traced now
    (``jax.eval_shape``: nothing is solved)."""
    import jax

    static = statics[0]
    if static not in _META:
        jax.eval_shape(_batched(model, static), model.stack_params([params[0]]))
    return _META[static]


def _assemble(spec, model, statics, params, table, work, chunk_file, out: Path, compilations: int, plots: bool):
    meta = _output_meta(model, statics, params)
    scalars = [k for k, (_, _, shape) in meta.items() if shape == () and k not in ("converged", "iterations")]
    keep = list(spec.outputs) or scalars
    for k in keep:
        if k not in meta or meta[k][2] != ():
            raise CaseError(
                spec.path, "sweep.outputs", f"unknown output {k!r} (scalar outputs of {model.CASE_TYPE}: {scalars})"
            )
    n = len(table)
    cols = {k: np.full(n, np.nan) for k in keep}
    converged = np.zeros(n, bool)
    iterations = np.zeros(n, np.int64)
    reason = np.full(n, "", dtype=object)
    bucket = np.zeros(n, np.int64)
    seen = np.zeros(n, np.int64)
    for b, c, _ids in work:
        with np.load(chunk_file(b, c)) as z:
            ids = z["design"]
            seen[ids] += 1
            bucket[ids] = b
            for k in keep:
                cols[k][ids] = z[f"out__{k}"]
            converged[ids] = z["out__converged"]
            iterations[ids] = z["out__iterations"]
            reason[ids] = z["reason"]
    if not np.all(seen == 1):
        raise RuntimeError(f"sweep chunks cover designs {np.flatnonzero(seen != 1)[:10]} not exactly once")
    feasible = np.ones(n, bool)
    cnotes = []
    for ct_i, ct in enumerate(spec.constraints):
        if ct.output not in meta or meta[ct.output][2] != ():
            raise CaseError(spec.path, f"constraint[{ct_i}].output", f"unknown output {ct.output!r} ({scalars})")
        unit = meta[ct.output][0]
        vals = cols.get(ct.output)
        if vals is None:
            vals = np.full(n, np.nan)
            for b, c, _ids in work:
                with np.load(chunk_file(b, c)) as z:
                    vals[z["design"]] = z[f"out__{ct.output}"]
            cols[ct.output] = vals
            keep.append(ct.output)
        if ct.low is not None:
            lo = _bound_in(ct.low, unit, f"constraint[{ct_i}].min", spec.path)
            feasible &= vals >= lo
            cnotes.append(f"{ct.output} >= {lo:g} {unit}")
        if ct.high is not None:
            hi = _bound_in(ct.high, unit, f"constraint[{ct_i}].max", spec.path)
            feasible &= vals <= hi
            cnotes.append(f"{ct.output} <= {hi:g} {unit}")
    status = np.where(reason != "", "failed", np.where(feasible, "ok", "infeasible")).astype(object)
    feasible &= reason == ""
    columns = [("design", np.arange(n), "", "design id")]
    columns.append(("bucket", bucket, "", "compilation bucket (equal Static)"))
    for j, p in enumerate(spec.parameters):
        v = table[:, j].astype(np.int64) if p.integer else table[:, j]
        columns.append((p.key, v, p.unit, "swept parameter (SI)"))
    for k in keep:
        columns.append((k, cols[k], meta[k][0], meta[k][1]))
    columns += [
        ("converged", converged, "", "every solve of the design converged"),
        ("iterations", iterations, "", "largest inner iteration count"),
        ("feasible", feasible, "", "a result that meets every constraint: " + ("; ".join(cnotes) or "none")),
        ("status", status, "", "ok, infeasible (breaks a constraint) or failed (see reason)"),
        ("reason", reason, "", "why a failed design is not a result"),
    ]
    _write_csv(out / "table.csv", columns)
    _write_h5(out / "table.h5", columns, spec)
    n_failed = int((status == "failed").sum())
    info = {
        "sweep": spec.name,
        "sweep_file": str(spec.path),
        "case_file": str(spec.case_path),
        "case_type": model.CASE_TYPE,
        "designs": n,
        "buckets": len(statics),
        "compilations": compilations,
        "failed": n_failed,
        "feasible": int(feasible.sum()),
        "constraints": cnotes,
        "outputs": keep,
        "plotted_outputs": keep[:MAX_PLOTTED],
    }
    _atomic_write(out / "sweep.json", lambda fh: fh.write(json.dumps(info, indent=1).encode()))
    if plots:
        from aidc_thermo.plots.sweep import plot_sweep

        plot_sweep(out)
    return info


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def _write_csv(path: Path, columns) -> None:
    header = [f"{name} [{unit}]" if unit else name for name, _, unit, _ in columns]
    n = len(columns[0][1])

    def write(fh):
        import io

        text = io.StringIO()
        w = csv.writer(text)
        w.writerow(header)
        for i in range(n):
            w.writerow([_fmt(c[1][i]) for c in columns])
        fh.write(text.getvalue().encode("utf-8"))

    _atomic_write(path, write)


def _write_h5(path: Path, columns, spec: SweepSpec) -> None:
    import h5py

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with h5py.File(tmp, "w") as f:
        g = f.create_group("table")
        g.attrs["columns"] = json.dumps([c[0] for c in columns])
        for name, values, unit, desc in columns:
            if values.dtype == object:
                ds = g.create_dataset(name, data=np.asarray([str(v) for v in values], dtype=h5py.string_dtype()))
            else:
                ds = g.create_dataset(name, data=values)
            ds.attrs["units"] = unit
            ds.attrs["description"] = desc
        f.attrs["sweep_text"] = spec.path.read_text(encoding="utf-8")
        f.attrs["case_text"] = spec.case_text
    os.replace(tmp, path)


def read_table(folder) -> dict[str, tuple[np.ndarray, str]]:
    """``name -> (values, units)`` of a sweep's table.h5, in column order."""
    import h5py

    with h5py.File(Path(folder) / "table.h5", "r") as f:
        g = f["table"]
        out = {}
        for name in json.loads(g.attrs["columns"]):
            ds = g[name]
            v = ds[()]
            if v.dtype.kind in "OS":
                v = np.asarray([x.decode() if isinstance(x, bytes) else str(x) for x in v], dtype=object)
            out[name] = (v, str(ds.attrs["units"]))
        return out
