"""Reading case files.

A case file is TOML. Its ``[case]`` table names the case ``type`` (which model
reads the rest) and a ``name``. Each model reads its own tables through a
:class:`Table`, which knows the file and the key path, converts quantities to
SI with :mod:`thermo.io.units`, checks ranges, and on ``finish()`` rejects keys it
did not read, suggesting the nearest valid key. Every problem is raised as a
:class:`CaseError` naming file, key path, what was expected and what was found.

Models turn what they read into frozen dataclasses; nothing downstream sees
raw TOML.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aidc_thermo.io.units import UnitError, to_si

__all__ = ["CaseError", "CaseFile", "Table", "load", "read_header", "read_plots_flag", "read_tolerance"]

#: Smallest relative residual each precision can be asked for: float32 carries
#: about 7 significant digits (machine epsilon 1.2e-7) and the residual of a
#: sum over many cells cannot be resolved much below 1e-6 of its scale;
#: float64's epsilon is 2.2e-16.
TOLERANCE_FLOOR = {"float32": 1e-6, "float64": 1e-15}

_MISSING = object()


class CaseError(Exception):
    """A problem with a case file: which file, which key, what is wrong."""

    def __init__(self, file: str | Path, key: str, message: str):
        self.file = str(file)
        self.key = key
        self.message = message
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + message)


@dataclass(frozen=True)
class CaseFile:
    """A parsed TOML document with where it came from."""

    path: Path
    text: str
    data: dict

    @property
    def directory(self) -> Path:
        return self.path.parent


def load(path: str | Path) -> CaseFile:
    """Read and parse a TOML case file (no model-specific checks)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseError(path, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(path, "", f"cannot read the file ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(path, "", f"not valid TOML: {exc}") from None
    return CaseFile(path, text, data)


def _finite(x) -> bool:
    """True for a finite float or an int that a float can hold."""
    try:
        return math.isfinite(x)
    except OverflowError:  # an int beyond the float range
        return False


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Table:
    """A TOML table being read, with its key path for messages.

    Every accessor marks its key as used; :meth:`finish` raises for keys that
    were never read (typically misspellings).
    """

    def __init__(self, data: dict, file: str | Path, path: str = ""):
        if not isinstance(data, dict):
            raise CaseError(file, path, f"expected a table, got {type(data).__name__}")
        self.data = data
        self.file = file
        self.path = path
        self._used: set[str] = set()

    # ------------------------------------------------------------------ basics

    def key(self, name: str | int) -> str:
        return _join(self.path, name)

    def error(self, name: str | int | None, message: str) -> CaseError:
        return CaseError(self.file, self.key(name) if name is not None else self.path, message)

    def has(self, name: str) -> bool:
        return name in self.data

    def _lookup(self, name: str, default) -> tuple[bool, Any]:
        """(present, value); a missing key without a default is an error."""
        self._used.add(name)
        if name in self.data:
            return True, self.data[name]
        if default is _MISSING:
            close = difflib.get_close_matches(name, [str(k) for k in self.data], n=1, cutoff=0.6)
            hint = f" (found {close[0]!r}: misspelt?)" if close else ""
            raise self.error(name, f"missing required key{hint}")
        return False, default

    def finish(self) -> None:
        """Raise for any key that was not read, with the nearest valid key."""
        for name in self.data:
            if name not in self._used:
                close = difflib.get_close_matches(name, sorted(self._used), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                valid = ", ".join(sorted(self._used)) or "none"
                raise self.error(name, f"unknown key{hint} (valid keys here: {valid})")

    # ------------------------------------------------------------------ scalars

    def quantity(
        self,
        name: str,
        dimension: str,
        default=_MISSING,
        *,
        positive: bool = False,
        nonnegative: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        """A quantity converted to SI. ``default`` is in SI (or ``None``)."""
        present, raw = self._lookup(name, default)
        if not present:
            return default
        return self._check_quantity(name, raw, dimension, positive, nonnegative, minimum, maximum)

    def _check_quantity(self, name, raw, dimension, positive, nonnegative, minimum, maximum):
        try:
            value = to_si(raw, dimension)
        except UnitError as exc:
            raise self.error(name, str(exc)) from None
        if positive and not value > 0:
            raise self.error(name, f"must be positive, got {raw!r}")
        if nonnegative and value < 0:
            raise self.error(name, f"must not be negative, got {raw!r}")
        if minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum:g} (SI), got {raw!r}")
        if maximum is not None and value > maximum:
            raise self.error(name, f"must be at most {maximum:g} (SI), got {raw!r}")
        return value

    def quantities(
        self, name: str, dimension: str, length: int | None = None, default=_MISSING, **checks
    ) -> tuple[float, ...]:
        """A list of quantities of one dimension, converted to SI."""
        present, raw = self._lookup(name, default)
        if not present:
            return default
        if not isinstance(raw, list):
            raise self.error(name, f"expected a list of {dimension.replace('_', ' ')}s, got {raw!r}")
        if length is not None and len(raw) != length:
            raise self.error(name, f"expected {length} values, got {len(raw)}")
        out = []
        for i, item in enumerate(raw):
            sub = Table({str(i): item}, self.file, self.key(name))
            out.append(
                sub._check_quantity(
                    i,
                    item,
                    dimension,
                    checks.get("positive", False),
                    checks.get("nonnegative", False),
                    checks.get("minimum"),
                    checks.get("maximum"),
                )
            )
        return tuple(out)

    def number(self, name: str, default=_MISSING, *, minimum=None, maximum=None) -> float:
        """A plain dimensionless number."""
        present, raw = self._lookup(name, default)
        if not present:
            return default
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not _finite(raw):
            raise self.error(name, f"expected a number, got {raw!r}")
        if minimum is not None and raw < minimum:
            raise self.error(name, f"must be at least {minimum:g}, got {raw!r}")
        if maximum is not None and raw > maximum:
            raise self.error(name, f"must be at most {maximum:g}, got {raw!r}")
        return float(raw)

    def integer(self, name: str, default=_MISSING, *, minimum=None, maximum=None) -> int:
        present, raw = self._lookup(name, default)
        if not present:
            return default
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise self.error(name, f"expected an integer, got {raw!r}")
        if minimum is not None and raw < minimum:
            raise self.error(name, f"must be at least {minimum}, got {raw}")
        if maximum is not None and raw > maximum:
            raise self.error(name, f"must be at most {maximum}, got {raw}")
        return raw

    def integers(self, name: str, length: int, default=_MISSING, *, minimum=None) -> tuple[int, ...]:
        present, raw = self._lookup(name, default)
        if not present:
            return default
        if (
            not isinstance(raw, list)
            or len(raw) != length
            or any(isinstance(v, bool) or not isinstance(v, int) for v in raw)
        ):
            raise self.error(name, f"expected a list of {length} integers, got {raw!r}")
        if minimum is not None and any(v < minimum for v in raw):
            raise self.error(name, f"every entry must be at least {minimum}, got {raw}")
        return tuple(raw)

    def string(self, name: str, default=_MISSING, *, choices=None) -> str:
        present, raw = self._lookup(name, default)
        if not present:
            return default
        if not isinstance(raw, str):
            raise self.error(name, f"expected a string, got {raw!r}")
        if choices is not None and raw not in choices:
            close = difflib.get_close_matches(raw, list(choices), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.error(name, f"{raw!r} is not one of {', '.join(map(repr, choices))}{hint}")
        return raw

    def boolean(self, name: str, default=_MISSING) -> bool:
        present, raw = self._lookup(name, default)
        if present and not isinstance(raw, bool):
            raise self.error(name, f"expected true or false, got {raw!r}")
        return raw

    def path_value(self, name: str, base: Path, default=_MISSING) -> Path | None:
        """A file path, relative to the case file's folder; must exist."""
        present, raw = self._lookup(name, default)
        if not present:
            return default
        if not isinstance(raw, str):
            raise self.error(name, f"expected a file path string, got {raw!r}")
        p = (base / raw).resolve()
        if not p.is_file():
            raise self.error(name, f"file not found: {p}")
        return p

    # ------------------------------------------------------------------ nesting

    def table(self, name: str, default=_MISSING) -> Table | None:
        present, raw = self._lookup(name, default)
        if not present:
            return None if default is None else Table(default, self.file, self.key(name))
        if not isinstance(raw, dict):
            raise self.error(name, f"expected a table ([{self.key(name)}]), got {raw!r}")
        return Table(raw, self.file, self.key(name))

    def tables(self, name: str, default=_MISSING, *, min_count: int = 0) -> list[Table]:
        """An array of tables (``[[name]]``)."""
        present, raw = self._lookup(name, default)
        if not present:
            raw = default
        if not isinstance(raw, list) or any(not isinstance(t, dict) for t in raw):
            raise self.error(name, f"expected an array of tables ([[{self.key(name)}]]), got {raw!r}")
        if len(raw) < min_count:
            raise self.error(name, f"expected at least {min_count} entries, got {len(raw)}")
        return [Table(t, self.file, self.key(name) + f"[{i}]") for i, t in enumerate(raw)]

    def raw(self, name: str, default=_MISSING) -> Any:
        return self._lookup(name, default)[1]


def read_header(root: Table, case_type: str) -> tuple[str, str]:
    """The ``[case]`` table every case file starts with: ``(name, description)``."""
    meta = root.table("case")
    meta.string("type", choices=(case_type,))
    name = meta.string("name")
    description = meta.string("description", default="")
    meta.finish()
    return name, description


def read_tolerance(
    t: Table, key: str, precision: str, default: float, *, maximum: float, floor: dict | None = None, unit: str = ""
) -> float:
    """A solver tolerance, refused below what ``precision`` can resolve
    (``floor``: precision -> smallest value, default :data:`TOLERANCE_FLOOR`
    for relative residuals); ``unit`` is appended in messages."""
    floor = floor or TOLERANCE_FLOOR
    value = t.number(key, default=default, maximum=maximum)
    if not value > 0:
        raise t.error(key, f"must be positive, got {value!r}")
    if value < floor[precision]:
        raise t.error(
            key,
            f"{value:g}{unit} is below what {precision} arithmetic can reach (at least {floor[precision]:g}{unit}; "
            f"machine epsilon {'1.2e-7' if precision == 'float32' else '2.2e-16'}): a solve would stall at its "
            f"roundoff floor and never meet it"
            + ('; use precision = "float64" for tighter tolerances' if precision == "float32" else ""),
        )
    return value


def read_plots_flag(root: Table) -> bool:
    """``[output] plots`` (default true)."""
    out = root.table("output", default={})
    plots = out.boolean("plots", default=True)
    out.finish()
    return plots
