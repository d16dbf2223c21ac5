"""A cold plate named by its case, its curves solved once and cached.

A rack (``[[plate_types]] case = "plate.toml"``) or a facility
(``[cold_plate] case = "plate.toml"``) may name its cold plate by a
``compact_coldplate`` or ``resolved_coldplate`` case instead of a curve file
(``curves = "file.csv"``). Resolving the reference parses the plate case (its
own errors name its own file), checks its type, coolant and (resolved) its
``[inlet] flow_range``, solves its curves exactly as ``thermo run`` of the
plate does (compact: one vmapped solve over the case's curve flows,
:func:`aidc_thermo.models.compact.solve_curves`; resolved: the operating point,
then each curve flow, :func:`aidc_thermo.models.coldplate.case_curves`) and
hands the referring model the same
:class:`~aidc_thermo.io.curves.ColdPlateCurves` a curve file would give.

The curves are cached by content: the key is the SHA-256 over the plate
case file's bytes, every file it references (any string value of the case
that names an existing file next to it: power maps, closure tables, STL
outlines), the package source (:func:`aidc_thermo.compile_cache.source_hash`)
and data files (coolant property fits), the jax and jaxlib versions and the
plate's precision. An entry is a curve
CSV in exact form (SI units, every number as its shortest round-trip repr:
it reads back bit for bit) with the key and a SHA-256 of its text; a file that
fails either check, or does not read as curves, is solved again, never
trusted. Writes are atomic (a temporary file, then a rename).

Where: ``$AIDC_THERMO_CURVE_CACHE`` if set to a folder; otherwise
``$XDG_CACHE_HOME/aidc-thermo/curves`` (``~/.cache/aidc-thermo/curves``).
Off: ``AIDC_THERMO_CURVE_CACHE=off`` (or ``0``, ``no``, ``false``, ``none``)
or the command-line flag ``--no-curve-cache``: every run solves the plate.

Each resolution is logged on the command's progress channel ("cold-plate
curves for plate.toml: solved in 12.3 s, cached as ..." or "... reused from
cache ...") and kept for the run's record (:func:`begin_run`,
:func:`record_into`: ``cold_plate_references`` in summary.json and
``/cold_plate_references`` in results.h5: the plate case, its key and
whether the cache was hit).
"""

from __future__ import annotations

import hashlib
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from aidc_thermo.compile_cache import user_cache_folder
from aidc_thermo.errors import CaseError, SolveError
from aidc_thermo.io.curves import ColdPlateCurves, coolant_label, format_curves, read_curves, require_coolant

__all__ = [
    "ENV",
    "ALLOWED_TYPES",
    "PlateReference",
    "cache_dir",
    "configure",
    "reference",
    "resolve",
    "begin_run",
    "records",
    "record_into",
]

#: environment variable: a folder for the curve cache, or one of OFF_VALUES
ENV = "AIDC_THERMO_CURVE_CACHE"
#: case types a ``case =`` reference may name (a resolved_coldplate case only with [inlet] flow_range)
ALLOWED_TYPES = ("compact_coldplate", "resolved_coldplate")
_FORMAT = "1"  # bump when the entry layout changes: older entries are then never read
_CHECKSUM = "# checksum: sha256 "

_records: list[dict] = []  # the resolutions of the current command (begin_run clears it)
_this_run: dict[str, ColdPlateCurves] = {}  # cache key -> curves resolved since begin_run (one solve per run)


_enabled = True  # the command line's --no-curve-cache sets it off (configure)


def configure(enabled: bool = True) -> None:
    """Turn the curve cache off (or on again) for this process: the command
    line's ``--no-curve-cache``. The environment variable still decides the folder."""
    global _enabled
    _enabled = bool(enabled)


def cache_dir(environ=None) -> Path | None:
    """The curve cache folder, or None when the cache is off (``environ``:
    the variables to read, default ``os.environ``; with the default, also off
    after ``configure(False)``)."""
    if environ is None and not _enabled:
        return None
    return user_cache_folder(ENV, "curves", environ)


def begin_run() -> None:
    """Forget the resolutions recorded so far (the command line calls this before parsing a case). Within a
    run, a plate named twice (two plate types, the same case) is solved or read once."""
    _records.clear()
    _this_run.clear()


def records() -> list[dict]:
    """The resolutions since :func:`begin_run`: one dict per reference (referring file and key, plate case,
    its key, ``cache``: ``hit``, ``miss``, ``off``, or ``run`` for a plate already resolved in this run;
    seconds)."""
    return [dict(r) for r in _records]


def _say(text: str) -> None:
    from aidc_thermo import progress

    progress.say(text)


@dataclass(frozen=True)
class PlateReference:
    """A checked, not yet solved, ``case =`` reference: the plate case and
    what the referring model checks before any solve (coolant, flow range)."""

    file: str  # the referring case file
    key: str  # its key, e.g. "plate_types[0].case"
    raw: str  # the path as written
    path: Path  # the plate case file, resolved
    case: object  # the parsed plate case (compact.CompactCase or coldplate.ColdPlateCase)
    case_file: object  # its CaseFile
    cache_key: str  # SHA-256 of the content (see the module docstring)
    inputs: tuple[str, ...]  # the files the plate case references, hashed into the key
    case_type: str = "compact_coldplate"  # one of ALLOWED_TYPES

    @property
    def coolant(self) -> str:
        return coolant_label(self.case.coolant)

    @property
    def flow_range(self) -> tuple[float, float]:
        return self.case.curve_flows[0], self.case.curve_flows[-1]

    def covers(self, q: float, rtol: float = 1e-9) -> bool:
        lo, hi = self.flow_range
        return lo * (1 - rtol) <= q <= hi * (1 + rtol)

    def range_text(self) -> str:
        lo, hi = self.flow_range
        return f"{lo * 6e4:.6g}..{hi * 6e4:.6g} L/min"

    def curves(self) -> ColdPlateCurves:
        """The plate's curves: from the cache, or solved (and cached)."""
        return _curves(self)


def reference(table, key: str, directory: Path) -> PlateReference:
    """Parse and check the plate case named by ``table``'s ``key`` (a path
    relative to ``directory``, the referring case's folder): a missing file, a
    case of another type or a malformed plate case raise :class:`CaseError`
    naming the referring file and key (and, for the plate's own errors, the
    plate file and its key). Nothing is solved."""
    from aidc_thermo.io.case import load
    from aidc_thermo.registry import model_for

    raw = table.raw(key)
    if not isinstance(raw, str) or not raw.strip():
        raise table.error(key, f"expected the path of a cold-plate case file (relative to this file), got {raw!r}")
    path = (Path(directory) / raw).resolve()
    if not path.is_file():
        raise table.error(key, f"cold-plate case {path}: file not found")
    try:
        plate_file = load(path)
        model = model_for(plate_file)
    except CaseError as exc:
        raise table.error(key, f"the cold-plate case is malformed: {exc}") from None
    if model.CASE_TYPE not in ALLOWED_TYPES:
        allowed = ", ".join(repr(t) for t in ALLOWED_TYPES)
        raise table.error(
            key,
            f"{raw} is a {model.CASE_TYPE!r} case; a cold plate by reference must be a case of type {allowed} "
            "(or give its curves as curves = <curve file>)",
        )
    try:
        plate = model.parse(plate_file)
    except CaseError as exc:
        raise table.error(key, f"the cold-plate case is malformed: {exc}") from None
    if model.CASE_TYPE == "resolved_coldplate" and not plate.curve_flows:
        raise table.error(
            key,
            f"the resolved_coldplate case {raw} has no curves to solve: {path}: inlet.flow_range: expected "
            '[low, high] (the flows of its curves through the modelled domain, e.g. flow_range = ["0.01 L/min", '
            '"0.02 L/min"], with curve_points, default 8), or give its curve file as curves = <curve file>',
        )
    inputs = _referenced_files(plate_file.data, path.parent)
    return PlateReference(
        file=str(table.file),
        key=table.key(key),
        raw=raw,
        path=path,
        case=plate,
        case_file=plate_file,
        cache_key=_content_key(path, inputs, plate.precision),
        inputs=tuple(str(p) for p in inputs),
        case_type=model.CASE_TYPE,
    )


def resolve(table, key: str, directory: Path, coolant, loop: str) -> ColdPlateCurves:
    """:func:`reference`, the coolant check (``coolant`` is the referring
    loop's :class:`~aidc_thermo.coolant.Coolant`; ``loop`` says whose, as
    :func:`~aidc_thermo.io.curves.require_coolant`), then the curves."""
    ref = reference(table, key, directory)
    require_coolant(ref, coolant, table, loop, key=key)
    return ref.curves()


def _referenced_files(data, folder: Path) -> list[Path]:
    """Every file the plate case names: string values (at any depth) that
    are the path of an existing file relative to the case's folder (or absolute)."""
    found: set[Path] = set()

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v.strip() and len(v) < 4096 and "\n" not in v:
            try:
                p = (folder / v.strip()).resolve()
                if p.is_file():
                    found.add(p)
            except (OSError, ValueError):
                pass

    walk(data)
    return sorted(found)


def _content_key(path: Path, inputs: list[Path], precision: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    from aidc_thermo.compile_cache import source_hash

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "none"

    h = hashlib.sha256()

    def part(b: bytes) -> None:
        h.update(len(b).to_bytes(8, "little") + b)

    for text in (f"aidc-thermo curve cache {_FORMAT}", source_hash(), ver("jax"), ver("jaxlib"), precision):
        part(text.encode())
    data = Path(__file__).resolve().parent / "data"  # the package's own data (coolant property fits): not *.py
    for p in sorted(data.rglob("*")) if data.is_dir() else ():
        if p.is_file():
            part(str(p.relative_to(data)).encode())
            part(p.read_bytes())
    part(path.read_bytes())
    for p in inputs:
        try:
            rel = str(p.relative_to(path.parent))
        except ValueError:
            rel = str(p)
        part(rel.encode())
        part(p.read_bytes())
    return h.hexdigest()


def _entry_text(curves: ColdPlateCurves) -> str:
    body = format_curves(curves, exact=True)
    return body + _CHECKSUM + hashlib.sha256(body.encode("utf-8")).hexdigest() + "\n"


def _read_entry(path: Path, cache_key: str) -> ColdPlateCurves:
    """The curves of a cache entry; ValueError (or CaseError) when it is not a whole, matching entry."""
    text = path.read_text(encoding="utf-8")
    body, sep, tail = text.rpartition(_CHECKSUM)
    if not sep or tail.strip() != hashlib.sha256(body.encode("utf-8")).hexdigest():
        raise ValueError("checksum mismatch (truncated or altered file)")
    curves = read_curves(path)
    if curves.meta("cache_key") != cache_key:
        raise ValueError("the entry was written for another key")
    return curves


def _same(a: ColdPlateCurves, b: ColdPlateCurves) -> bool:
    return (a.flow, a.r_max, a.r_mean, a.dp, a.coolant, a.inlet_temperature) == (
        b.flow, b.r_max, b.r_mean, b.dp, b.coolant, b.inlet_temperature,
    )  # fmt: skip


def _finish(ref: PlateReference, curves: ColdPlateCurves) -> ColdPlateCurves:
    """The curves as the referring model gets them, the same whether solved or read from the cache."""
    return replace(curves, source=f"{ref.path} (solved curves)")


def _solve(ref: PlateReference) -> ColdPlateCurves:
    import jax

    from aidc_thermo.models import coldplate, compact

    solve_curves = coldplate.case_curves if ref.case_type == "resolved_coldplate" else compact.solve_curves
    x64 = jax.enable_x64(True) if not jax.config.jax_enable_x64 else nullcontext()  # `thermo check` leaves it off
    try:
        with x64:
            curves = solve_curves(ref.case, ref.case_file)
    except SolveError as exc:
        raise SolveError(f"cold-plate case {ref.path} (named by {ref.file}: {ref.key}): {exc}") from None
    prov = tuple((k, v) for k, v in curves.provenance if k != "cache_key") + (("cache_key", ref.cache_key),)
    return replace(curves, provenance=prov)


def _record(ref: PlateReference, cache: str, seconds: float, entry: Path | None) -> None:
    _records.append(
        {
            "file": ref.file,
            "key": ref.key,
            "plate_case": str(ref.path),
            "plate_case_type": ref.case_type,
            "plate_case_sha256": hashlib.sha256(ref.case_file.text.encode("utf-8")).hexdigest(),
            "cache_key": ref.cache_key,
            "cache": cache,
            "solve_s": round(seconds, 3),
            "cache_file": str(entry) if entry is not None else "",
            "inputs": list(ref.inputs),
        }
    )


def _curves(ref: PlateReference) -> ColdPlateCurves:
    done = _this_run.get(ref.cache_key)
    if done is not None:
        _record(ref, "run", 0.0, None)
        return _finish(ref, done)
    curves = _resolve(ref)
    _this_run[ref.cache_key] = curves
    return curves


def _resolve(ref: PlateReference) -> ColdPlateCurves:
    folder = cache_dir()
    entry = None if folder is None else folder / f"{ref.cache_key}.csv"
    name = ref.raw
    if entry is not None and entry.exists():
        try:
            curves = _read_entry(entry, ref.cache_key)
        except (OSError, ValueError, UnicodeDecodeError, CaseError) as exc:
            _say(f"cold-plate curves for {name}: ignoring the unreadable cache file {entry} ({exc}); solving again")
        else:
            _say(f"cold-plate curves for {name}: reused from cache {entry}")
            _record(ref, "hit", 0.0, entry)
            return _finish(ref, curves)
    model = "resolved (finite-volume)" if ref.case_type == "resolved_coldplate" else "compact"
    _say(f"cold-plate curves for {name}: solving {len(ref.case.curve_flows)} flows with the {model} model")
    t0 = time.perf_counter()
    curves = _solve(ref)
    seconds = time.perf_counter() - t0
    if entry is None:
        _say(f"cold-plate curves for {name}: solved in {seconds:.1f} s (curve cache off)")
        _record(ref, "off", seconds, None)
        return _finish(ref, curves)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        tmp.write_text(_entry_text(curves), encoding="utf-8")
        os.replace(tmp, entry)  # atomic: a reader sees the old entry or the whole new one
        back = _read_entry(entry, ref.cache_key)
        if not _same(back, curves):
            entry.unlink(missing_ok=True)
            raise ValueError("the written curves do not read back bit for bit")
    except (OSError, ValueError, CaseError) as exc:
        _say(f"cold-plate curves for {name}: solved in {seconds:.1f} s, not cached ({exc})")
        _record(ref, "off", seconds, None)
        return _finish(ref, curves)
    _say(f"cold-plate curves for {name}: solved in {seconds:.1f} s, cached as {entry}")
    _record(ref, "miss", seconds, entry)
    return _finish(ref, back)


def record_into(folder: Path) -> None:
    """Add the run's resolutions (:func:`records`) to ``folder``'s
    ``summary.json`` (a top-level ``cold_plate_references`` list, kept apart
    from the headline numbers like ``timing``) and ``results.h5``
    (``/cold_plate_references/<n>``, one group of attributes each). Nothing
    when the case named no plate by its case."""
    import json

    recs = records()
    if not recs:
        return
    folder = Path(folder)
    summary = folder / "summary.json"
    if summary.is_file():
        data = json.loads(summary.read_text(encoding="utf-8"))
        data["cold_plate_references"] = recs
        summary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    h5path = folder / "results.h5"
    if h5path.is_file():
        from aidc_thermo.io.results import results_h5

        with results_h5(h5path, "a") as h5:
            g = h5.require_group("cold_plate_references")
            g.attrs["description"] = "cold plates named by their case (curve_cache): plate case, key, cache hit"
            for i, r in enumerate(recs):
                s = g.create_group(str(i))
                for k, v in r.items():
                    s.attrs[k] = "\n".join(v) if isinstance(v, list) else v
