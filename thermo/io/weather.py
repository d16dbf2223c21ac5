"""Hourly weather for facility cases: reading CSV files, and the synthetic example
years bundled in ``cases/data``.

CSV format (comment lines start with ``#``; one header row; one row per hour)::

    time,dry_bulb_C,relative_humidity_pct
    2001-01-01T00:00,1.9,88.4
    ...

Columns: ``time`` (a label, any text), ``dry_bulb_C`` (°C) and exactly one of
``wet_bulb_C`` (thermodynamic wet bulb, °C) or ``relative_humidity_pct`` (0-100,
with respect to water above 0 °C and ice below); optionally ``pressure_Pa``.
Wet bulbs are computed from relative humidity with :func:`kernels.plant.psychro.wet_bulb`
(ASHRAE psychrometric equation). Problems are :class:`thermo.io.case.CaseError`
naming the file and the line.

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
reproduce real extremes or multi-day heat waves. Use measured files (e.g. TMY
or EPW converted to this CSV) for design decisions.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from aidc_thermo.io.case import CaseError

__all__ = [
    "CLIMATES",
    "Climate",
    "Weather",
    "read_weather",
    "synthetic_year",
    "wet_bulb_from_rh",
    "write_weather",
]

T0 = 273.15


@dataclass(frozen=True)
class Weather:
    """Hourly (or any-step) ambient conditions in SI units.

    ``t_db``, ``t_wb`` (K) and ``p`` (Pa) have one entry per row; ``time`` holds
    the row labels; ``source`` says where they came from. The wet bulb is
    ``wet_bulb`` as given, or else computed from ``relative_humidity``
    (fraction) on first use of ``t_wb``: a psychrometric solve with JAX, left
    out of reading the file so that ``thermo check`` solves nothing."""

    time: tuple[str, ...]
    t_db: np.ndarray
    wet_bulb: np.ndarray | None
    p: np.ndarray
    source: str
    relative_humidity: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.time)

    @cached_property
    def t_wb(self) -> np.ndarray:
        """Wet bulb (K) of each row."""
        if self.wet_bulb is not None:
            return self.wet_bulb
        return wet_bulb_from_rh(self.t_db, self.relative_humidity, self.p)


def wet_bulb_from_rh(t_db_k: np.ndarray, rh: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Wet bulb (K) from dry bulb (K), relative humidity (fraction) and pressure
    (Pa), numpy in and out (:func:`kernels.plant.psychro.wet_bulb`)."""
    import jax
    import jax.numpy as jnp

    from aidc_thermo.kernels import psychro

    # float64 when the caller enabled it (the CLI and the tests do), else float32.
    dtype = jnp.result_type(float)
    args = (jnp.asarray(a, dtype) for a in (t_db_k, rh, p))
    return np.asarray(jax.jit(psychro.wet_bulb)(*args), np.float64)


#: Largest weather file read (bytes): a year of hourly rows is about 250 kB.
MAX_FILE_BYTES = 64_000_000


def read_weather(path: str | Path, pressure: float = 101325.0) -> Weather:
    """Read an hourly weather CSV (see module docstring); ``pressure`` (Pa) is
    used when the file has no ``pressure_Pa`` column."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CaseError(
                path,
                "",
                f"{path.stat().st_size / 1e6:.0f} MB is more than a weather file may hold "
                f"({MAX_FILE_BYTES / 1e6:.0f} MB, about 250 years of hourly rows)",
            )
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CaseError(path, "", "weather file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(path, "", f"cannot read the weather file ({exc})") from None
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not numbered:
        raise CaseError(path, "", "no header row and no data")
    header_no, header_line = numbered[0]
    header = [h.strip() for h in next(csv.reader([header_line]))]
    where = f"line {header_no}"
    if "dry_bulb_C" not in header or "time" not in header:
        raise CaseError(path, where, f"header must name 'time' and 'dry_bulb_C', found {header}")
    humid = [h for h in ("wet_bulb_C", "relative_humidity_pct") if h in header]
    if len(humid) != 1:
        raise CaseError(
            path, where, f"header must name exactly one of 'wet_bulb_C' or 'relative_humidity_pct', found {header}"
        )
    known = {"time", "dry_bulb_C", "wet_bulb_C", "relative_humidity_pct", "pressure_Pa"}
    unknown = [h for h in header if h not in known]
    if unknown:
        raise CaseError(path, where, f"unknown column(s) {unknown}; known: {sorted(known)}")
    col = {h: i for i, h in enumerate(header)}
    times, tdb, hum, pres = [], [], [], []
    for line_no, line in numbered[1:]:
        row = next(csv.reader([line]))
        where = f"line {line_no}"
        if len(row) != len(header):
            raise CaseError(path, where, f"expected {len(header)} columns, got {len(row)}")

        def value(name, lo, hi, row=row, where=where):
            try:
                v = float(row[col[name]])
            except ValueError:
                raise CaseError(path, where, f"{name}: not a number: {row[col[name]]!r}") from None
            if not (math.isfinite(v) and lo <= v <= hi):
                raise CaseError(path, where, f"{name} = {v} is outside {lo}..{hi}")
            return v

        times.append(row[col["time"]].strip())
        tdb.append(value("dry_bulb_C", -60.0, 60.0))
        if humid[0] == "wet_bulb_C":
            wb = value("wet_bulb_C", -60.0, 60.0)
            if wb > tdb[-1] + 1e-6:
                raise CaseError(path, where, f"wet bulb {wb} °C above the dry bulb {tdb[-1]} °C")
            hum.append(wb)
        else:
            hum.append(value("relative_humidity_pct", 0.0, 100.0))
        pres.append(value("pressure_Pa", 5e4, 1.1e5) if "pressure_Pa" in col else pressure)
    if not times:
        raise CaseError(path, "", "the weather file has a header but no data rows")
    t_db = np.asarray(tdb) + T0
    p = np.asarray(pres)
    if humid[0] == "wet_bulb_C":
        return Weather(tuple(times), t_db, np.asarray(hum) + T0, p, str(path))
    return Weather(tuple(times), t_db, None, p, str(path), relative_humidity=np.asarray(hum) / 100.0)


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
