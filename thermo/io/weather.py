"""Hourly weather for facility cases: reading CSV files and EnergyPlus weather
(EPW) files, and the synthetic example years bundled in ``cases/data``.

CSV format (comment lines start with ``#``; one header row; one row per hour)::

    time,dry_bulb_C,relative_humidity_pct
    2001-01-01T00:00,1.9,88.4
    ...

Columns: ``time``, ``dry_bulb_C`` (°C) and exactly one humidity column:
``wet_bulb_C`` (thermodynamic wet bulb, °C), ``dew_point_C`` (°C) or
``relative_humidity_pct`` (0-100); optionally ``pressure_Pa``. Other columns
are ignored (and listed in :attr:`Weather.notes`). Relative humidity and dew
point are with respect to water above 0 °C and ice below. Wet bulbs are
computed with :mod:`kernels.plant.psychro` (ASHRAE psychrometric equation). A
dew point up to ``DEW_ABOVE_DRY_BULB`` (1 K) above the dry bulb, as measured
files sometimes hold, is taken as saturated air; more is an error.

The time column holds ISO 8601 date-times (``YYYY-MM-DDTHH:MM``, optionally
with seconds and one UTC offset such as ``+01:00`` for every row; without one
the times are local standard time). The rows must be sorted and hourly, without
gaps or repeats (a daylight-saving shift shows as one), and the first row must
be at 00:00, since row ``i`` is hour ``i mod 24`` of the day (the facility's
``utilization_by_hour``). A file is either a full year (8760 rows from 1 January
00:00, or 8784 in a leap year) or any shorter or longer period, stated in
:attr:`Weather.period`. Typical-year files omit 29 February even when a month
comes from a leap year, so the step from 28 February 23:00 to 1 March 00:00 of a
leap year is accepted (and stated); a 29 February is accepted only in a leap
year.

EPW format (:func:`read_epw`; the EnergyPlus weather file of TMY, IWEC and
similar data sets): eight header records (``LOCATION``, ``DESIGN CONDITIONS``,
``TYPICAL/EXTREME PERIODS``, ``GROUND TEMPERATURES``, ``HOLIDAYS/DAYLIGHT
SAVINGS``, ``COMMENTS 1``, ``COMMENTS 2``, ``DATA PERIODS``), then one row of
35 comma-separated fields per hour: year, month, day, hour (1-24, the hour
*ending* at that time, local standard time), minute, data source flags, dry
bulb (°C), dew point (°C), relative humidity (%), station pressure (Pa), and
25 radiation, wind, sky and precipitation fields that are not read. What is
taken and how:

* dry bulb, dew point and pressure feed the model; the wet bulb follows from
  the dew point (as EnergyPlus takes the outdoor humidity from the dew point);
  the relative humidity is read, checked and kept as
  :attr:`Weather.relative_humidity`;
* a missing value (the format's codes: 99.9 for dry bulb and dew point, 999 for
  relative humidity, 999999 for pressure) in any of these four fields is an
  error naming the line; so is a value outside the range the model accepts
  (dry bulb and dew point -60..60 °C, pressure 50-110 kPa, relative humidity
  0-110 % as EnergyPlus allows);
* the time zone (``LOCATION`` field 9, hours from UTC) is kept as
  :attr:`Weather.utc_offset_h` and written into every row label; row ``k``
  with hour ``h`` is labelled with the *start* of its hour, ``h - 1``:00, so
  hour 1 of 1 January is ``YYYY-01-01T00:00+HH:MM``;
* the year of the labels is the first row's year for every row (continuing
  into the next after 31 December): typical-year files take each month from a
  different year, and their year fields are ignored, as EnergyPlus does. The
  calendar checks are those of the CSV above: hourly, sorted, no gaps; a leap
  year file of 8784 rows keeps its 29 February (which needs the first row's year
  to be a leap year), a typical year without one is 8760 rows;
* ``DATA PERIODS`` must state one period of one record per hour; the rows must
  cover exactly its start and end dates (``m/d`` or ``m/d/yyyy``).

Problems are :class:`thermo.io.case.CaseError` naming the file and the line.
:func:`read_weather` reads a ``.epw`` file (any case of the suffix) with
:func:`read_epw`, anything else as CSV.

Synthetic years (:func:`synthetic_year`): the bundled files are *not measured
weather*. Each is generated from a handful of monthly climate statistics (mean
temperature, mean daily range, mean relative humidity; rounded, approximate
1991-2020 normals, see :data:`CLIMATES`) by a documented recipe:

* daily mean temperature = the monthly means interpolated periodically between
  mid-month days, plus an AR(1) day-to-day anomaly (lag-one correlation ``rho``,
  standard deviation ``sigma``: synoptic weather);
* hourly temperature = daily mean + half the (interpolated) daily range times
  ``cos(2 pi (h - 15) / 24)`` (warmest at 15:00, coolest at 03:00);
* the dew point is held through each day at the value that gives the monthly
  mean relative humidity at the monthly mean temperature, plus ``dew_coupling``
  times the day's temperature anomaly and a small independent daily anomaly;
  it is capped 0.1 K below the dry bulb; relative humidity follows from it;
* a fixed random seed makes the files reproducible:
  ``python -m aidc_thermo.io.weather cases/data`` rewrites them.

They give an annual run the right seasons, day-night swings and humidity level,
which is what free-cooling hours and chiller energy depend on; they do not
reproduce real extremes or multi-day heat waves. Use measured files (an EPW of
the site, or a CSV) for design decisions.
"""

from __future__ import annotations

import calendar
import csv
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

import numpy as np

from aidc_thermo.compile_options import jit
from aidc_thermo.io.case import CaseError

__all__ = [
    "CLIMATES",
    "Climate",
    "Weather",
    "read_epw",
    "read_weather",
    "synthetic_year",
    "wet_bulb_from_dew_point",
    "wet_bulb_from_rh",
    "write_weather",
]

T0 = 273.15
#: A dew point this much (K) above the dry bulb is still taken as saturated air.
DEW_ABOVE_DRY_BULB = 1.0


@dataclass(frozen=True)
class Weather:
    """Hourly (or any-step) ambient conditions in SI units.

    ``t_db``, ``t_wb`` (K) and ``p`` (Pa) have one entry per row; ``time`` holds
    the row labels (ISO 8601 for files, see the module docstring); ``source``
    says where they came from. The wet bulb is ``wet_bulb`` as given, or else
    computed on first use of ``t_wb`` from ``dew_point`` (K) when given, else
    from ``relative_humidity`` (fraction): a psychrometric solve with JAX, left
    out of reading the file so that ``thermo check`` solves nothing.
    ``utc_offset_h`` is the file's time zone (hours east of UTC; ``None`` when
    the labels carry none); ``period`` states the span (``full year 2001``, or
    first and last row); ``notes`` lists what the reader did besides (columns
    ignored, 29 February omitted, dew points capped)."""

    time: tuple[str, ...]
    t_db: np.ndarray
    wet_bulb: np.ndarray | None
    p: np.ndarray
    source: str
    relative_humidity: np.ndarray | None = None
    dew_point: np.ndarray | None = None
    utc_offset_h: float | None = None
    period: str = ""
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.time)

    @cached_property
    def t_wb(self) -> np.ndarray:
        """Wet bulb (K) of each row."""
        if self.wet_bulb is not None:
            return self.wet_bulb
        if self.dew_point is not None:
            return wet_bulb_from_dew_point(self.t_db, self.dew_point, self.p)
        return wet_bulb_from_rh(self.t_db, self.relative_humidity, self.p)


def _jax_dtype():
    import jax.numpy as jnp

    # float64 when the caller enabled it (the CLI and the tests do), else float32.
    return jnp.result_type(float)


def wet_bulb_from_rh(t_db_k: np.ndarray, rh: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Wet bulb (K) from dry bulb (K), relative humidity (fraction) and pressure
    (Pa), numpy in and out (:func:`kernels.plant.psychro.wet_bulb`)."""
    import jax.numpy as jnp

    from aidc_thermo.kernels.plant import psychro

    dtype = _jax_dtype()
    args = (jnp.asarray(a, dtype) for a in (t_db_k, rh, p))
    return np.asarray(jit(psychro.wet_bulb)(*args), np.float64)


def _wet_bulb_from_dew_point_jax(t_db, t_dew, p):
    from aidc_thermo.kernels.plant import psychro

    w = psychro.humidity_ratio(psychro.saturation_pressure(t_dew), p)
    return psychro.wet_bulb_from_humidity_ratio(t_db, w, p)


def wet_bulb_from_dew_point(t_db_k: np.ndarray, t_dew_k: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Wet bulb (K) from dry bulb (K), dew point (K; saturation over ice below
    0 °C) and pressure (Pa), numpy in and out: the humidity ratio of vapour at
    the dew point's saturation pressure, then the psychrometric equation
    (:mod:`kernels.plant.psychro`). A dew point above the dry bulb is taken as
    the dry bulb (saturated air)."""
    import jax.numpy as jnp

    dtype = _jax_dtype()
    t_db_k = np.asarray(t_db_k, np.float64)
    t_dew_k = np.minimum(np.asarray(t_dew_k, np.float64), t_db_k)
    args = (jnp.asarray(a, dtype) for a in (t_db_k, t_dew_k, p))
    return np.asarray(jit(_wet_bulb_from_dew_point_jax)(*args), np.float64)


#: Largest weather file read (bytes): a year of hourly rows is about 250 kB (CSV)
#: or 1.6 MB (EPW).
MAX_FILE_BYTES = 64_000_000


def _read_lines(path: Path) -> list[str]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CaseError(
                path,
                "",
                f"{size / 1e6:.0f} MB is more than a weather file may hold "
                f"({MAX_FILE_BYTES / 1e6:.0f} MB, about 40 years of hourly EPW rows)",
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CaseError(path, "", "weather file not found") from None
    except OSError as exc:
        raise CaseError(path, "", f"cannot read the weather file ({exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # EPW files of some sources: place names in Latin-1
    return text.splitlines()


def read_weather(path: str | Path, pressure: float = 101325.0) -> Weather:
    """Read an hourly weather file: EPW when its name ends in ``.epw`` (any
    case; :func:`read_epw`, its own pressures), else CSV (module docstring);
    ``pressure`` (Pa) is used when a CSV has no ``pressure_Pa`` column."""
    path = Path(path)
    if path.suffix.lower() == ".epw":
        return read_epw(path)
    return _read_csv(path, pressure)


def _number(path, where, name, text, lo, hi, missing=None):
    """``text`` as a float in ``lo..hi``; ``missing``: the format's missing-value code."""
    try:
        v = float(text)
    except ValueError:
        raise CaseError(path, where, f"{name}: not a number: {text!r}") from None
    if missing is not None and v >= missing:
        raise CaseError(
            path, where, f"{name} is missing ({text.strip()}, the EPW missing-value code); fill the gap in the file"
        )
    if not (math.isfinite(v) and lo <= v <= hi):
        raise CaseError(path, where, f"{name} = {v} is outside {lo}..{hi}")
    return v


def _read_csv(path: Path, pressure: float) -> Weather:
    lines = _read_lines(path)
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not numbered:
        raise CaseError(path, "", "no header row and no data")
    header_no, header_line = numbered[0]
    header = [h.strip() for h in next(csv.reader([header_line]))]
    where = f"line {header_no}"
    if "dry_bulb_C" not in header or "time" not in header:
        raise CaseError(path, where, f"header must name 'time' and 'dry_bulb_C', found {header}")
    humid_cols = ("wet_bulb_C", "dew_point_C", "relative_humidity_pct")
    humid = [h for h in humid_cols if h in header]
    if len(humid) != 1:
        raise CaseError(
            path, where, f"header must name exactly one of {', '.join(map(repr, humid_cols))}, found {header}"
        )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise CaseError(path, where, f"column(s) {dupes} named more than once")
    known = {"time", "dry_bulb_C", "pressure_Pa", *humid_cols}
    ignored = [h for h in header if h not in known]
    col = {h: i for i, h in enumerate(header)}
    times, line_nos, tdb, hum, pres = [], [], [], [], []
    for line_no, line in numbered[1:]:
        row = next(csv.reader([line]))
        where = f"line {line_no}"
        if len(row) != len(header):
            raise CaseError(path, where, f"expected {len(header)} columns, got {len(row)}")

        def value(name, lo, hi, row=row, where=where):
            return _number(path, where, name, row[col[name]], lo, hi)

        tdb.append(value("dry_bulb_C", -60.0, 60.0))
        kind = humid[0]
        if kind == "wet_bulb_C":
            wb = value("wet_bulb_C", -60.0, 60.0)
            if wb > tdb[-1] + 1e-6:
                raise CaseError(path, where, f"wet bulb {wb} °C above the dry bulb {tdb[-1]} °C")
            hum.append(wb)
        elif kind == "dew_point_C":
            dp = value("dew_point_C", -60.0, 60.0)
            if dp > tdb[-1] + DEW_ABOVE_DRY_BULB:
                raise CaseError(
                    path,
                    where,
                    f"dew point {dp} °C is more than {DEW_ABOVE_DRY_BULB} K above the dry bulb {tdb[-1]} °C",
                )
            hum.append(dp)
        else:
            hum.append(value("relative_humidity_pct", 0.0, 100.0))
        pres.append(value("pressure_Pa", 5e4, 1.1e5) if "pressure_Pa" in col else pressure)
        times.append(row[col["time"]].strip())
        line_nos.append(line_no)
    if not times:
        raise CaseError(path, "", "the weather file has a header but no data rows")
    stamps = [_parse_time(path, f"line {n}", t) for n, t in zip(line_nos, times, strict=True)]
    offset, period, notes = _check_hourly(path, stamps, [f"line {n}" for n in line_nos])
    if ignored:
        notes = (f"columns ignored: {', '.join(ignored)}",) + notes
    t_db = np.asarray(tdb) + T0
    p = np.asarray(pres)
    common = dict(utc_offset_h=offset, period=period)
    if humid[0] == "wet_bulb_C":
        return Weather(tuple(times), t_db, np.asarray(hum) + T0, p, str(path), **common, notes=notes)
    if humid[0] == "dew_point_C":
        dew = np.asarray(hum) + T0
        if np.any(dew > t_db):
            notes += (f"{int(np.sum(dew > t_db))} dew point(s) above the dry bulb taken as saturated air",)
        return Weather(tuple(times), t_db, None, p, str(path), dew_point=dew, **common, notes=notes)
    return Weather(
        tuple(times), t_db, None, p, str(path), relative_humidity=np.asarray(hum) / 100.0, **common, notes=notes
    )


def _parse_time(path, where, text) -> datetime:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        stamp = None
    if stamp is None or len(text) < 13:  # a bare date is not an hour
        raise CaseError(
            path, where, f"time {text!r} is not an ISO 8601 date-time (YYYY-MM-DDTHH:MM, optionally +HH:MM)"
        )
    return stamp


def _offset_hours(stamp: datetime) -> float | None:
    off = stamp.utcoffset()
    return None if off is None else off.total_seconds() / 3600.0


def _check_hourly(path, stamps: list[datetime], wheres: list[str]) -> tuple[float | None, str, tuple[str, ...]]:
    """Check that the row times are sorted, hourly and gap-free (29 February of a
    leap year may be omitted, as typical-year files do); returns the UTC offset,
    the period and notes."""
    offset = _offset_hours(stamps[0])
    first = stamps[0]
    if (first.hour, first.minute, first.second) != (0, 0, 0):
        raise CaseError(
            path,
            wheres[0],
            f"the first row is at {first.isoformat()}; it must be at 00:00 (row i is hour i mod 24 of the day)",
        )
    hour = timedelta(hours=1)
    skipped_feb29 = []
    for k in range(1, len(stamps)):
        a, b = stamps[k - 1], stamps[k]
        if _offset_hours(b) != offset:
            raise CaseError(
                path, wheres[k], f"time {b.isoformat()}: UTC offset differs from the first row's ({first.isoformat()})"
            )
        step = b.replace(tzinfo=None) - a.replace(tzinfo=None)
        if step == hour:
            continue
        feb28 = (a.month, a.day, a.hour, a.minute, a.second) == (2, 28, 23, 0, 0)
        mar1 = (b.year, b.month, b.day, b.hour, b.minute, b.second) == (a.year, 3, 1, 0, 0, 0)
        leap_gap = calendar.isleap(a.year) and feb28 and mar1
        if leap_gap:
            skipped_feb29.append(a.year)
            continue
        h = step.total_seconds() / 3600.0
        what = "not sorted" if h < 0 else "a repeat" if h == 0 else "a gap" if h > 1 else "not hourly"
        raise CaseError(
            path,
            wheres[k],
            f"{b.isoformat()} follows the previous row's {a.isoformat()} by {h:g} h ({what}): rows must be "
            "hourly, sorted, without gaps or repeats",
        )
    notes = tuple(f"29 February {y} omitted (typical-year convention)" for y in skipped_feb29)
    n = len(stamps)
    y = first.year
    full = (first.month, first.day) == (1, 1) and (
        n == (8784 if calendar.isleap(y) else 8760) or (n == 8760 and skipped_feb29 == [y])
    )
    if full:
        period = f"full year {y}, {n} h"
    else:
        span = (s.replace(tzinfo=None).isoformat(timespec="minutes") for s in (first, stamps[-1]))
        period = "{} to {}, {} h".format(*span, n)
    if offset is not None:
        period += f", UTC{_offset_text(offset)}"
    return offset, period, notes


def _offset_text(hours: float) -> str:
    sign = "-" if hours < 0 else "+"
    minutes = round(abs(hours) * 60)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# ----------------------------------------------------------------------- EPW

#: The eight header records of an EPW file, in order.
EPW_HEADERS = (
    "LOCATION",
    "DESIGN CONDITIONS",
    "TYPICAL/EXTREME PERIODS",
    "GROUND TEMPERATURES",
    "HOLIDAYS/DAYLIGHT SAVINGS",
    "COMMENTS 1",
    "COMMENTS 2",
    "DATA PERIODS",
)
EPW_FIELDS = 35


def _epw_date(path, where, text, field) -> tuple[int, int]:
    """``m/d`` or ``m/d/yyyy`` of a DATA PERIODS record -> (month, day)."""
    parts = [p.strip() for p in text.split("/")]
    try:
        month, day = int(parts[0]), int(parts[1])
        last = 29 if month == 2 else calendar.monthrange(2001, month)[1] if 1 <= month <= 12 else 0
        ok = len(parts) in (2, 3) and 1 <= day <= last
    except (ValueError, IndexError):
        ok = False
    if not ok:
        raise CaseError(path, where, f"DATA PERIODS: {field} {text.strip()!r} is not a date m/d")
    return month, day


def read_epw(path: str | Path) -> Weather:
    """Read an EnergyPlus weather (EPW) file: dry bulb, dew point, relative
    humidity and pressure of every hour, the time zone and the data period
    (module docstring: what is checked, how hours and leap years are labelled)."""
    path = Path(path)
    lines = _read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    for i, name in enumerate(EPW_HEADERS):
        found = lines[i] if i < len(lines) else None
        if found is None or found.split(",")[0].strip().upper() != name:
            shown = "the end of the file" if found is None else repr(found[:60])
            raise CaseError(
                path, f"line {i + 1}", f"expected the EPW header record {name!r} (header {i + 1} of 8), found {shown}"
            )
    loc = [f.strip() for f in next(csv.reader([lines[0]]))]
    if len(loc) < 10:
        raise CaseError(path, "line 1", f"LOCATION has {len(loc)} fields, expected 10 (... time zone, elevation)")
    tz = _number(path, "line 1", "LOCATION time zone (field 9, hours from UTC)", loc[8], -12.0, 14.0)
    per = [f.strip() for f in next(csv.reader([lines[7]]))]
    if len(per) < 7:
        raise CaseError(path, "line 8", f"DATA PERIODS has {len(per)} fields, expected at least 7")
    if per[1] != "1":
        raise CaseError(path, "line 8", f"DATA PERIODS: {per[1]!r} periods; one data period is supported")
    if per[2] != "1":
        raise CaseError(
            path, "line 8", f"DATA PERIODS: {per[2]!r} records per hour; only hourly data (1 per hour) is supported"
        )
    start = _epw_date(path, "line 8", per[5], "start date")
    end = _epw_date(path, "line 8", per[6], "end date")
    if len(lines) <= 8:
        raise CaseError(path, "", "the EPW file has its header records but no data rows")

    label_year = None
    stamps, wheres, t_db, t_dew, rh, pres = [], [], [], [], [], []
    for i in range(8, len(lines)):
        where = f"line {i + 1}"
        row = lines[i].split(",")
        if len(row) != EPW_FIELDS:
            raise CaseError(path, where, f"expected {EPW_FIELDS} comma-separated fields, got {len(row)}")
        try:
            year, month, day, hour = (int(float(x)) for x in row[:4])
        except ValueError:
            raise CaseError(path, where, f"year, month, day, hour must be integers, got {row[:4]}") from None
        if not (1 <= month <= 12 and 1 <= day <= 31 and 1 <= hour <= 24):
            raise CaseError(path, where, f"month {month}, day {day}, hour {hour}: out of range (hour is 1-24)")
        if label_year is None:
            label_year = year
        elif (month, day) == (1, 1) and hour == 1 and stamps and stamps[-1].month == 12:
            label_year += 1  # a period across the new year
        if (month, day) == (2, 29) and not calendar.isleap(label_year):
            raise CaseError(
                path,
                where,
                f"29 February, but the labels' year {label_year} (the first row's year) is not a leap year",
            )
        try:
            stamp = datetime(label_year, month, day, hour - 1)
        except ValueError:
            raise CaseError(path, where, f"{month}/{day} is not a date") from None
        t_db.append(_number(path, where, "dry bulb (field 7, °C)", row[6], -60.0, 60.0, missing=99.9))
        t_dew.append(_number(path, where, "dew point (field 8, °C)", row[7], -60.0, 60.0, missing=99.9))
        if t_dew[-1] > t_db[-1] + DEW_ABOVE_DRY_BULB:
            raise CaseError(
                path,
                where,
                f"dew point {t_dew[-1]} °C is more than {DEW_ABOVE_DRY_BULB} K above the dry bulb {t_db[-1]} °C",
            )
        rh.append(_number(path, where, "relative humidity (field 9, %)", row[8], 0.0, 110.0, missing=999.0))
        pres.append(_number(path, where, "pressure (field 10, Pa)", row[9], 5e4, 1.1e5, missing=999999.0))
        stamps.append(stamp)
        wheres.append(where)
    _, period, notes = _check_hourly(path, stamps, wheres)
    first, last = stamps[0], stamps[-1]
    if (first.month, first.day) != start:
        raise CaseError(
            path, wheres[0], f"the first row is {first.month}/{first.day}; DATA PERIODS (line 8) starts on {per[5]}"
        )
    if (first.hour, last.hour) != (0, 23):
        bad = wheres[0] if first.hour != 0 else wheres[-1]
        raise CaseError(
            path, bad, "the data period must start at hour 1 of its first day and end at hour 24 of its last"
        )
    if (last.month, last.day) != end:
        raise CaseError(
            path, wheres[-1], f"the last row is {last.month}/{last.day}; DATA PERIODS (line 8) ends on {per[6]}"
        )
    off = _offset_text(tz)
    times = tuple(s.strftime("%Y-%m-%dT%H:%M") + off for s in stamps)
    t_db_k = np.asarray(t_db) + T0
    dew_k = np.asarray(t_dew) + T0
    if np.any(dew_k > t_db_k):
        notes += (f"{int(np.sum(dew_k > t_db_k))} dew point(s) above the dry bulb taken as saturated air",)
    place = ", ".join(x for x in loc[1:4] if x and x != "-")
    return Weather(
        times,
        t_db_k,
        None,
        np.asarray(pres, np.float64),
        str(path),
        relative_humidity=np.asarray(rh) / 100.0,
        dew_point=dew_k,
        utc_offset_h=tz,
        period=f"{period}, UTC{off}" + (f", {place}" if place else ""),
        notes=notes,
    )


# ----------------------------------------------------------------- synthetic


@dataclass(frozen=True)
class Climate:
    """Monthly statistics for :func:`synthetic_year` (°C, %, K)."""

    name: str
    source: str
    mean_c: tuple[float, ...]  # 12 monthly mean temperatures
    range_c: tuple[float, ...]  # 12 monthly mean daily ranges (max - min)
    rh_pct: tuple[float, ...]  # 12 monthly mean relative humidities
    sigma: float  # K, standard deviation of daily mean anomalies
    rho: float  # lag-one (day) correlation of the anomalies
    dew_coupling: float  # dew-point anomaly per K of temperature anomaly
    dew_sigma: float  # K, independent daily dew-point anomaly
    seed: int


CLIMATES = {
    "temperate": Climate(
        name="temperate (Frankfurt am Main-like, Germany, 50 N)",
        source=(
            "approximate 1991-2020 monthly normals for Frankfurt am Main: mean and mean daily "
            "max/min temperature as tabulated from DWD data (e.g. 2.2 C in January, 20.6 C in "
            "July, daily range 4.9-11.1 K); monthly mean relative humidity rounded (66-86 %)"
        ),
        mean_c=(2.2, 3.2, 6.8, 10.9, 15.0, 18.4, 20.6, 20.2, 15.8, 10.9, 6.2, 3.0),
        range_c=(5.3, 6.9, 8.9, 10.8, 10.9, 10.9, 11.1, 11.1, 10.0, 7.8, 5.5, 4.9),
        rh_pct=(84.0, 79.0, 73.0, 67.0, 67.0, 67.0, 66.0, 68.0, 75.0, 81.0, 85.0, 86.0),
        sigma=2.8,
        rho=0.75,
        dew_coupling=0.7,
        dew_sigma=1.0,
        seed=20240601,
    ),
    "hot_humid": Climate(
        name="hot humid (Singapore-like, 1 N)",
        source=(
            "approximate 1991-2020 monthly normals for Singapore (Meteorological Service "
            "Singapore climatology): monthly means 26.7-28.7 C (warmest May), daily range "
            "about 6-7.5 K (minimum ~24-25 C, maximum ~31-32 C), relative humidity 80-86 %"
        ),
        mean_c=(26.7, 27.3, 27.9, 28.3, 28.7, 28.6, 28.2, 28.1, 27.9, 27.9, 27.2, 26.7),
        range_c=(6.2, 7.0, 7.4, 7.4, 7.2, 7.0, 6.8, 6.8, 6.9, 7.0, 6.6, 6.1),
        rh_pct=(84.0, 80.0, 82.0, 84.0, 83.0, 81.0, 81.0, 81.0, 82.0, 83.0, 86.0, 86.0),
        sigma=0.7,
        rho=0.7,
        dew_coupling=0.5,
        dew_sigma=0.5,
        seed=20240602,
    ),
}

_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _saturation_pressure_np(t_k):
    """Hyland-Wexler saturation pressure (Pa), numpy (same as kernels.plant.psychro)."""
    t = np.asarray(t_k, np.float64)
    ln_w = (-5.8002206e3 / t + 1.3914993 - 4.8640239e-2 * t + 4.1764768e-5 * t**2
            - 1.4452093e-8 * t**3 + 6.5459673 * np.log(t))  # fmt: skip
    ln_i = (-5.6745359e3 / t + 6.3925247 - 9.6778430e-3 * t + 6.2215701e-7 * t**2
            + 2.0747825e-9 * t**3 - 9.4840240e-13 * t**4 + 4.1635019 * np.log(t))  # fmt: skip
    return np.exp(np.where(t < T0, ln_i, ln_w))


def _dew_point_np(p_w):
    """Temperature (K) whose saturation pressure is ``p_w`` (bisection, numpy)."""
    lo = np.full_like(p_w, 173.15)
    hi = np.full_like(p_w, 373.15)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        above = _saturation_pressure_np(mid) > p_w
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _daily_from_monthly(values) -> np.ndarray:
    """365 daily values interpolated periodically between mid-month days."""
    mids = np.cumsum((0,) + _MONTH_DAYS[:-1]) + np.asarray(_MONTH_DAYS) / 2.0 - 0.5
    x = np.concatenate([mids - 365.0, mids, mids + 365.0])
    y = np.tile(np.asarray(values, np.float64), 3)
    return np.interp(np.arange(365.0), x, y)


def synthetic_year(climate: Climate) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A synthetic 8760-hour year: ``(times, dry bulb °C, relative humidity %)``."""
    rng = np.random.default_rng(climate.seed)
    mean = _daily_from_monthly(climate.mean_c)
    rng_c = _daily_from_monthly(climate.range_c)
    # Dew point that gives the monthly mean RH at the monthly mean temperature.
    td_month = _dew_point_np(
        np.asarray(climate.rh_pct) / 100.0 * _saturation_pressure_np(np.asarray(climate.mean_c) + T0)
    )
    td = _daily_from_monthly(td_month - T0)
    anomaly = np.empty(365)
    anomaly[0] = rng.normal(0.0, climate.sigma)
    innov = climate.sigma * math.sqrt(1.0 - climate.rho**2)
    for d in range(1, 365):
        anomaly[d] = climate.rho * anomaly[d - 1] + rng.normal(0.0, innov)
    dew_noise = rng.normal(0.0, climate.dew_sigma, 365)
    hours = np.arange(24)
    shape = np.cos(2.0 * np.pi * (hours - 15.0) / 24.0)
    t_db = (mean + anomaly)[:, None] + 0.5 * rng_c[:, None] * shape[None, :]
    t_dew = np.repeat((td + climate.dew_coupling * anomaly + dew_noise)[:, None], 24, axis=1)
    t_dew = np.minimum(t_dew, t_db - 0.1)
    rh = 100.0 * _saturation_pressure_np(t_dew + T0) / _saturation_pressure_np(t_db + T0)
    times = []
    for month, n in enumerate(_MONTH_DAYS, start=1):
        for dom in range(1, n + 1):
            times.extend(f"2001-{month:02d}-{dom:02d}T{h:02d}:00" for h in hours)
    return times, t_db.reshape(-1), rh.reshape(-1)


def write_weather(path: str | Path, key: str) -> None:
    """Write the bundled synthetic year for ``CLIMATES[key]`` to ``path``."""
    c = CLIMATES[key]
    times, t_db, rh = synthetic_year(c)
    lines = [
        f"# Synthetic hourly weather year: {c.name}. NOT MEASURED DATA.",
        f"# Generated by thermo.io.weather.synthetic_year (CLIMATES[{key!r}], seed {c.seed}) from {c.source}.",
        f"# Day-to-day anomaly: AR(1), sigma {c.sigma} K, rho {c.rho}; dew point coupled "
        f"{c.dew_coupling} K/K plus {c.dew_sigma} K noise. Regenerate: python -m aidc_thermo.io.weather cases/data",
        "time,dry_bulb_C,relative_humidity_pct",
    ]
    lines += [f"{t},{a:.2f},{r:.2f}" for t, a, r in zip(times, t_db, rh, strict=True)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "cases/data")
    for key in CLIMATES:
        write_weather(out / f"weather_{key}.csv", key)
        print(f"wrote {out / f'weather_{key}.csv'}")
