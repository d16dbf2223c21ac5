"""Cold-plate curves: the one type every level shares.

A :class:`ColdPlateCurves` holds, over a table of flows, a cold plate's
thermal resistances ``R_max(Q)`` (hottest junction-side point to the inlet
coolant, per watt of the plate's heat) and ``R_mean(Q)`` (the mean over the
heated face), its pressure drop ``dP(Q)``, the coolant and inlet temperature
they were made with, and where they came from (model, case file and its
SHA-256, git commit, mesh). ``compact_coldplate`` and ``resolved_coldplate``
(with ``[inlet] flow_range``) write them; the
``rack_network`` and ``facility`` case types read them (``curves =
"file.csv"``).

The file is a CSV that a spreadsheet opens: ``# key: value`` metadata lines,
then one header row of unit-bearing column names, then one row per flow::

    # aidc-thermo cold-plate curves
    # coolant: water
    # inlet_temperature: 35 degC
    # model: compact_coldplate
    flow [L/min],R_max [K/W],R_mean [K/W],dP [kPa]
    1,0.0561,0.0410,0.62
    ...

Columns: ``flow``, ``R_max`` and ``dP`` are required, ``R_mean`` optional;
any unit that :mod:`aidc_thermo.io.units` reads for the dimension (``L/min``,
``m^3/s``, ``gpm``; ``K/W``; ``Pa``, ``kPa``, ``psi``). Metadata
``coolant`` and ``inlet_temperature`` are required; the other keys are
provenance, kept as text. The flow range the curves hold over is the table's
first to last flow: a reader refuses an operating flow outside it.

Between flows the curves are power laws (linear in log-log,
:func:`aidc_thermo.kernels.network.loglog_interp`): exact at the table's
flows and for any power law, monotone where the data are, differentiable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aidc_thermo.io.case import CaseError
from aidc_thermo.io.units import UnitError, to_si

__all__ = [
    "ColdPlateCurves",
    "coolant_label",
    "require_coolant",
    "read_curves",
    "write_curves",
    "format_curves",
    "file_sha256",
    "git_commit",
]

#: column -> (dimension, unit written by :func:`write_curves`, SI -> written factor)
COLUMNS = {
    "flow": ("volumetric_flow", "L/min", 60000.0),
    "R_max": ("thermal_resistance", "K/W", 1.0),
    "R_mean": ("thermal_resistance", "K/W", 1.0),
    "dP": ("pressure", "kPa", 1e-3),
}
REQUIRED_COLUMNS = ("flow", "R_max", "dP")
REQUIRED_KEYS = ("coolant", "inlet_temperature")
TITLE = "aidc-thermo cold-plate curves"
#: The most rows a curve file may have (far more than a smooth curve needs).
MAX_ROWS = 4096
_HEADER = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*\[(?P<unit>[^\]]*)\]\s*$")


@dataclass(frozen=True)
class ColdPlateCurves:
    """A cold plate's R_max(Q), R_mean(Q) and dP(Q) over a flow table (SI:
    m^3/s, K/W, Pa), the coolant they were made with (:func:`coolant_label`:
    ``"water"``, ``"propylene_glycol 25.7 % by mass"``), the inlet
    temperature (K), and provenance (key -> text, in file order)."""

    flow: tuple[float, ...]
    r_max: tuple[float, ...]
    dp: tuple[float, ...]
    coolant: str
    inlet_temperature: float
    r_mean: tuple[float, ...] | None = None
    provenance: tuple[tuple[str, str], ...] = field(default=())
    source: str = ""  # the file read, for messages

    @property
    def flow_range(self) -> tuple[float, float]:
        """(lowest, highest) flow the curves hold over, m^3/s."""
        return self.flow[0], self.flow[-1]

    def covers(self, q: float, rtol: float = 1e-9) -> bool:
        lo, hi = self.flow_range
        return lo * (1 - rtol) <= q <= hi * (1 + rtol)

    def range_text(self) -> str:
        lo, hi = self.flow_range
        return f"{lo * 6e4:.6g}..{hi * 6e4:.6g} L/min"

    def resistance_max(self, q):
        """R_max at flow(s) ``q`` (m^3/s), pure JAX; the caller checks the range."""
        from aidc_thermo.kernels.network import loglog_interp

        return loglog_interp(q, np.asarray(self.flow), np.asarray(self.r_max))

    def resistance_mean(self, q):
        from aidc_thermo.kernels.network import loglog_interp

        if self.r_mean is None:
            raise ValueError(f"{self.source}: the curves have no R_mean column")
        return loglog_interp(q, np.asarray(self.flow), np.asarray(self.r_mean))

    def pressure_drop(self, q):
        from aidc_thermo.kernels.network import loglog_interp

        return loglog_interp(q, np.asarray(self.flow), np.asarray(self.dp))

    def meta(self, key: str, default: str | None = None) -> str | None:
        return dict(self.provenance).get(key, default)


def coolant_label(coolant) -> str:
    """How a curve file names a :class:`aidc_thermo.coolant.Coolant`: the
    fluid, and for glycols the mass fraction to 0.1 %. A reader compares its
    own coolant's label with the file's."""
    if coolant.fluid == "water":
        return "water"
    return f"{coolant.fluid} {100.0 * coolant.mass_fraction:.1f} % by mass"


def require_coolant(curves: ColdPlateCurves, coolant, table, loop: str, key: str = "curves") -> None:
    """Refuse (exit 2, naming ``table``'s ``key``: ``curves``, or ``case`` for
    a cold plate given by its case) curves made with another coolant than
    ``coolant`` (``loop`` says whose: "this rack's", "the secondary loop's"): a
    plate's R(q) and dp(q) depend on the coolant. ``curves`` is anything with
    a ``coolant`` label (:class:`ColdPlateCurves`, or a
    :class:`aidc_thermo.curve_cache.PlateReference` before its solve)."""
    if curves.coolant != coolant_label(coolant):
        made = "the curves in" if key == "curves" else "the cold-plate case"
        again = "regenerate the curves" if key == "curves" else "give the plate case's [coolant] that coolant"
        raise table.error(
            key,
            f"{made} {table.raw(key)} {'were' if key == 'curves' else 'is'} made with {curves.coolant!r}, {loop} "
            f"coolant is {coolant_label(coolant)!r}: a plate's R(q) and dp(q) depend on the coolant; {again}",
        )


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_commit(path: str | Path) -> str | None:
    """The commit of the git work tree holding ``path`` (with ``+dirty`` when
    it has uncommitted changes), or None outside a work tree or without git."""
    folder = Path(path).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


#: column -> unit of the exact (SI, shortest round-trip repr) form, :func:`format_curves` ``exact=True``
EXACT_UNITS = {"flow": "m^3/s", "R_max": "K/W", "R_mean": "K/W", "dP": "Pa"}


def format_curves(curves: ColdPlateCurves, exact: bool = False) -> str:
    """The file text of ``curves`` (metadata, header, rows; SI converted to
    L/min, K/W, kPa; 12 significant digits). ``exact=True``: SI units
    (m^3/s, K/W, Pa; inlet temperature in K) and every number as Python's
    shortest round-trip ``repr``, so that :func:`read_curves` gives back the
    same floats bit for bit (the curve cache's form)."""
    out = io.StringIO()
    out.write(f"# {TITLE}\n")
    out.write(f"# coolant: {curves.coolant}\n")
    if exact:
        out.write(f"# inlet_temperature: {float(curves.inlet_temperature)!r} K\n")
    else:
        out.write(f"# inlet_temperature: {curves.inlet_temperature - 273.15:.12g} degC\n")
    for key, value in curves.provenance:
        if key in REQUIRED_KEYS:
            continue
        text = str(value).replace("\n", " ")
        out.write(f"# {key}: {text}\n")
    cols = [("flow", curves.flow), ("R_max", curves.r_max)]
    if curves.r_mean is not None:
        cols.append(("R_mean", curves.r_mean))
    cols.append(("dP", curves.dp))
    w = csv.writer(out, lineterminator="\n")
    if exact:
        w.writerow([f"{name} [{EXACT_UNITS[name]}]" for name, _ in cols])
        for i in range(len(curves.flow)):
            w.writerow([repr(float(vals[i])) for _, vals in cols])
        return out.getvalue()
    w.writerow([f"{name} [{COLUMNS[name][1]}]" for name, _ in cols])
    for i in range(len(curves.flow)):
        w.writerow([f"{vals[i] * COLUMNS[name][2]:.12g}" for name, vals in cols])
    return out.getvalue()


def write_curves(path: str | Path, curves: ColdPlateCurves) -> None:
    Path(path).write_text(format_curves(curves), encoding="utf-8")


def read_curves(path: str | Path, *, case_file: str | Path | None = None, key: str = "curves") -> ColdPlateCurves:
    """Read and check a curve file. Problems raise :class:`CaseError`
    (exit 2) naming the case file and ``key`` that referred to it (or the
    curve file itself when read alone), the curve file, and the row or
    column: a missing file, a missing column or metadata key, an unknown or
    wrong unit, a value that is not a finite positive number, flows not
    strictly increasing, dP not increasing with flow."""
    path = Path(path)
    where = case_file if case_file is not None else path
    label = key if case_file is not None else ""

    def fail(msg: str) -> CaseError:
        return CaseError(where, label, f"curve file {path}: {msg}")

    try:
        if path.stat().st_size > 200 * MAX_ROWS:
            raise fail(f"{path.stat().st_size / 1e6:.1f} MB is more than a curve file may hold")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read the file ({exc})") from None

    meta: dict[str, str] = {}
    order: list[str] = []
    body: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            item = s[1:].strip()
            if ":" in item and not body:
                k, v = item.split(":", 1)
                k = k.strip()
                if re.fullmatch(r"[A-Za-z_][\w ]*", k):
                    if k in meta:
                        raise fail(f"line {n}: metadata key {k!r} is given twice")
                    meta[k] = v.strip()
                    order.append(k)
            continue
        body.append((n, line))
    if not body:
        raise fail("no header row (expected a row such as 'flow [L/min],R_max [K/W],R_mean [K/W],dP [kPa]')")
    for k in REQUIRED_KEYS:
        if k not in meta:
            example = "water" if k == "coolant" else "35 degC"
            raise fail(f"missing metadata key {k!r} (a line '# {k}: {example}' before the header row)")
    coolant = meta["coolant"]
    if not coolant:
        raise fail("metadata 'coolant' is empty")
    try:
        t_in = to_si(meta["inlet_temperature"], "temperature")
    except UnitError as exc:
        raise fail(f"metadata 'inlet_temperature': {exc}") from None

    header_line, header_text = body[0]
    rows = list(csv.reader([b[1] for b in body]))
    header = [h.strip() for h in rows[0]]
    columns: dict[str, tuple[int, float]] = {}
    for j, h in enumerate(header):
        m = _HEADER.match(h)
        if m is None:
            raise fail(
                f"line {header_line}: column {j + 1} header {h!r} is not 'name [unit]' "
                f"(expected columns {', '.join(f'{c} [{COLUMNS[c][1]}]' for c in COLUMNS)})"
            )
        name, unit = m.group("name"), m.group("unit").strip()
        if name not in COLUMNS:
            raise fail(f"line {header_line}: unknown column {name!r} (columns: {', '.join(COLUMNS)})")
        if name in columns:
            raise fail(f"line {header_line}: column {name!r} appears twice")
        dim = COLUMNS[name][0]
        try:
            factor = to_si(f"1 {unit}", dim)
        except UnitError as exc:
            raise fail(f"line {header_line}: column {name!r}: unit {unit!r}: {exc}") from None
        columns[name] = (j, factor)
    for c in REQUIRED_COLUMNS:
        if c not in columns:
            raise fail(f"missing column {c!r} (e.g. '{c} [{COLUMNS[c][1]}]' in the header row)")
    data = rows[1:]
    if len(data) < 2:
        raise fail(f"needs at least 2 rows of flows, got {len(data)}")
    if len(data) > MAX_ROWS:
        raise fail(f"{len(data)} rows, more than the {MAX_ROWS} allowed")
    values: dict[str, list[float]] = {c: [] for c in columns}
    for (line_no, _), row in zip(body[1:], data, strict=True):
        if len(row) != len(header):
            raise fail(f"line {line_no}: {len(row)} values, expected {len(header)} (one per column)")
        for name, (j, factor) in columns.items():
            raw = row[j].strip()
            try:
                v = float(raw)
            except ValueError:
                raise fail(f"line {line_no}: column {name!r}: {raw!r} is not a number") from None
            if not math.isfinite(v) or not v > 0:
                raise fail(f"line {line_no}: column {name!r}: {raw!r} must be a finite positive number")
            values[name].append(v * factor)
    q, dp = values["flow"], values["dP"]
    for i in range(1, len(q)):
        line_no = body[i + 1][0]
        if not q[i] > q[i - 1]:
            raise fail(f"line {line_no}: column 'flow': flows must increase strictly from row to row")
        if not dp[i] > dp[i - 1]:
            raise fail(f"line {line_no}: column 'dP': the pressure drop must increase with flow")
    provenance = tuple((k, meta[k]) for k in order if k not in REQUIRED_KEYS)
    return ColdPlateCurves(
        flow=tuple(q),
        r_max=tuple(values["R_max"]),
        dp=tuple(dp),
        coolant=coolant,
        inlet_temperature=t_in,
        r_mean=tuple(values["R_mean"]) if "R_mean" in values else None,
        provenance=provenance,
        source=str(path),
    )
