"""Workload power traces: accelerator power over time, read from a case's
``[trace]`` table.

A trace is sampled on the time levels ``t_n = n * step`` for ``n = 0 ..
duration / step`` and gives the power of one accelerator (W) in each rack,
shape ``(racks, levels)``. It is built in this order:

1. the **wave**, what the running job draws: ``constant`` (``power``), a
   ``square`` or ``trapezoid`` compute/communication wave (``high``, ``low``,
   ``period``, ``duty`` the fraction of the period at ``high``, and for the
   trapezoid ``ramp``, the time of each edge), a ``diurnal`` inference curve
   (``mean``, ``amplitude``, ``peak_time`` of day), or ``csv``: a file with a
   time column and a power or utilisation column whose headers carry their
   units, ``time [s]``, ``power [W]`` or ``utilisation [1]`` (utilisation
   scales between ``idle_power`` and ``[trace.wave] power``), linearly
   interpolated onto the time levels;
2. **checkpoints** (``[[trace.checkpoint]]``): the power is held at
   ``power`` for ``length`` every ``every`` from ``start``;
3. the **job** (``[trace.job]``): before ``start`` and after ``stop`` the
   accelerators idle at ``idle_power``; the change from idle to the wave and
   back is a linear ramp of ``ramp``;
4. **racks** (``[trace.racks]``): ``count`` racks, ``offsets`` either
   ``"synchronised"`` (all the same), ``"desynchronised"`` (rack ``i``
   shifted by ``i / count`` of the wave's period) or a list of times, one per
   rack; the shift applies to the wave and the checkpoints (one job, started
   and stopped together).

Bad input is a :class:`~aidc_thermo.io.case.CaseError` naming the key or
the CSV line: a period shorter than two steps (the samples could not show
it), a duty outside (0, 1), ramps longer than their phase, negative powers,
unsorted or repeated CSV times, a CSV that does not cover the duration,
NaN, or a header without units.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aidc_thermo.io.case import CaseError, Table
from aidc_thermo.io.units import UnitError, to_si

__all__ = ["Trace", "read_trace", "WAVES"]

WAVES = ("constant", "square", "trapezoid", "diurnal", "csv")
DAY = 86400.0


@dataclass(frozen=True)
class Trace:
    """Sampled accelerator power.

    Attributes:
        step: time step, s.
        times: time levels, s, shape ``(levels,)``.
        power: power of one accelerator in each rack, W, shape ``(racks, levels)``.
        description: one line per part, for the results' notes.
    """

    step: float
    times: np.ndarray
    power: np.ndarray
    description: tuple[str, ...]

    @property
    def racks(self) -> int:
        return self.power.shape[0]


def _periodic_wave(t, high, low, period, duty, ramp):
    """Trapezoid: rises over ``ramp`` from ``low`` to ``high`` at the start of
    each period, holds ``high`` so that the time-average at ``high`` is
    ``duty`` of the period (half of each edge counted), falls over ``ramp``."""
    phase = np.mod(t + 1e-9 * period, period)  # a sample on an edge (to rounding) belongs to the next phase
    top = duty * period - ramp  # plateau length: an edge counts half high
    if ramp <= 0:
        return np.where(phase < duty * period, high, low)
    rise = np.clip(phase / ramp, 0.0, 1.0)
    fall = np.clip((phase - ramp - top) / ramp, 0.0, 1.0)
    frac = np.where(phase < ramp + top, rise, 1.0 - fall)
    return low + (high - low) * frac


def _csv_wave(path: Path, table: Table, idle: float):
    """(times, watts) from a CSV with headers ``time [unit]`` and ``power [unit]``
    or ``utilisation [1]``; errors name the line."""
    unit_re = re.compile(r"^\s*(\w+)\s*\[(.+)\]\s*$")

    def bad(line, message):
        return CaseError(path, f"line {line}", message)

    with open(path, newline="", encoding="utf-8") as fh:
        rows = [(i + 1, r) for i, r in enumerate(csv.reader(fh)) if r and not r[0].lstrip().startswith("#")]
    if len(rows) < 3:
        raise CaseError(path, table.key("file"), "a trace CSV needs a header and at least two rows")
    line, header = rows[0]
    cols = {}
    for j, name in enumerate(header):
        m = unit_re.match(name)
        if m is None:
            raise bad(line, f"column {j + 1} header {name!r} has no unit; write e.g. 'time [s]', 'power [W]'")
        cols[m.group(1).lower()] = (j, m.group(2))
    if "time" not in cols:
        raise bad(line, f"no 'time [unit]' column (found {list(cols)})")
    kinds = [k for k in ("power", "utilisation", "utilization") if k in cols]
    if len(kinds) != 1:
        raise bad(line, "expected exactly one of 'power [W]' or 'utilisation [1]' columns")
    kind = kinds[0]
    dims = {"time": "time", "power": "power", "utilisation": "dimensionless", "utilization": "dimensionless"}
    scale = {}
    for name in ("time", kind):
        unit = cols[name][1].strip()
        if dims[name] == "dimensionless" and unit in ("1", "-"):
            scale[name] = 1.0
            continue
        try:
            scale[name] = to_si(f"1 {unit}", dims[name])
        except UnitError as exc:
            raise bad(line, f"column {name!r}: {exc}") from None
    times, values = [], []
    for line, row in rows[1:]:
        try:
            t = float(row[cols["time"][0]]) * scale["time"]
            v = float(row[cols[kind][0]]) * scale[kind]
        except (ValueError, IndexError):
            raise bad(line, f"expected numbers in the time and {kind} columns, got {row!r}") from None
        if not (math.isfinite(t) and math.isfinite(v)):
            raise bad(line, f"not a finite number: {row!r}")
        if v < 0:
            raise bad(line, f"{kind} must not be negative, got {v:g}")
        if kind != "power" and v > 1.0 + 1e-12:
            raise bad(line, f"utilisation must be at most 1, got {v:g}")
        if times and t <= times[-1]:
            raise bad(line, f"times must increase strictly; {t:g} s follows {times[-1]:g} s")
        times.append(t)
        values.append(v)
    watts = np.asarray(values)
    if kind != "power":
        full = table.quantity("power", "power", nonnegative=True)
        watts = idle + (full - idle) * watts
    return np.asarray(times), watts, f"{kind} from {path.name} ({len(times)} rows)"


def _wave(wt: Table, base: Path, t, step: float, idle: float):
    kind = wt.string("kind", choices=WAVES)
    if kind == "constant":
        p = wt.quantity("power", "power", nonnegative=True)
        return lambda s: np.full_like(s, p), None, f"constant {p:g} W"
    if kind in ("square", "trapezoid"):
        high = wt.quantity("high", "power", nonnegative=True)
        low = wt.quantity("low", "power", nonnegative=True)
        period = wt.quantity("period", "time", positive=True)
        duty = wt.number("duty", minimum=0.0, maximum=1.0)
        if not 0.0 < duty < 1.0:
            raise wt.error("duty", f"must lie strictly between 0 and 1, got {duty:g}")
        if period < 2 * step:
            raise wt.error(
                "period",
                f"{period:g} s is shorter than two time steps ({2 * step:g} s): the samples cannot show it; "
                "shorten [trace] step",
            )
        ramp = 0.0
        if kind == "trapezoid":
            ramp = wt.quantity("ramp", "time", positive=True)
            if ramp > min(duty, 1 - duty) * period:
                raise wt.error(
                    "ramp", f"{ramp:g} s is longer than the shorter phase ({min(duty, 1 - duty) * period:g} s)"
                )
        text = f"{kind} wave {low:g}-{high:g} W, period {period:g} s, duty {duty:g}" + (
            f", ramps {ramp:g} s" if ramp else ""
        )
        return lambda s: _periodic_wave(s, high, low, period, duty, ramp), period, text
    if kind == "diurnal":
        mean = wt.quantity("mean", "power", positive=True)
        amp = wt.quantity("amplitude", "power", nonnegative=True)
        if amp > mean:
            raise wt.error("amplitude", f"{amp:g} W exceeds the mean {mean:g} W: the power would go negative")
        peak = wt.quantity("peak_time", "time", default=14 * 3600.0, nonnegative=True)
        text = f"diurnal {mean:g} +/- {amp:g} W, peak at {peak / 3600:g} h"
        return lambda s: mean + amp * np.cos(2 * np.pi * (s - peak) / DAY), DAY, text
    path = wt.path_value("file", base)
    times, watts, text = _csv_wave(path, wt, idle)
    if times[0] > t[0] + 1e-9 or times[-1] < t[-1] - 1e-9:
        raise wt.error(
            "file",
            f"{path.name} covers {times[0]:g}-{times[-1]:g} s but the trace runs {t[0]:g}-{t[-1]:g} s",
        )
    return lambda s: np.interp(s, times, watts), None, text


def _offsets(rt: Table | None, period: float | None):
    if rt is None:
        return np.zeros(1), "one rack"
    n = rt.integer("count", minimum=1, maximum=100_000)
    raw = rt.raw("offsets", "synchronised")
    if raw == "synchronised":
        return np.zeros(n), f"{n} racks, synchronised"
    if raw == "desynchronised":
        if period is None:
            raise rt.error("offsets", "'desynchronised' needs a periodic wave (square, trapezoid or diurnal)")
        return np.arange(n) * period / n, f"{n} racks, desynchronised over one period ({period:g} s)"
    if isinstance(raw, list):
        values = rt.quantities("offsets", "time", length=n, nonnegative=True)
        return np.asarray(values), f"{n} racks, offsets {', '.join(f'{v:g}' for v in values)} s"
    raise rt.error("offsets", f"expected 'synchronised', 'desynchronised' or a list of {n} times, got {raw!r}")


def read_trace(table: Table, base: Path) -> Trace:
    """The trace of a ``[trace]`` table (``base``: the case file's folder)."""
    step = table.quantity("step", "time", positive=True)
    duration = table.quantity("duration", "time", positive=True)
    levels = int(round(duration / step))
    if abs(levels * step - duration) > 1e-9 * duration:
        raise table.error("duration", f"{duration:g} s is not a whole number of steps of {step:g} s")
    if levels > 50_000_000:
        raise table.error("duration", f"{levels} steps: more than the 5e7 a trace may hold; lengthen [trace] step")
    idle = table.quantity("idle_power", "power", nonnegative=True)
    t = np.arange(levels + 1) * step
    wt = table.table("wave")
    wave, period, text = _wave(wt, base, t, step, idle)
    wt.finish()
    rt = table.table("racks", None)
    offsets, rack_text = _offsets(rt, period)
    if rt is not None:
        rt.finish()
    shifted = t[None, :] - offsets[:, None]
    power = wave(np.mod(shifted, period) if period else np.clip(shifted, t[0], t[-1]))
    parts = [text, rack_text]
    for ct in table.tables("checkpoint", []):
        p = ct.quantity("power", "power", nonnegative=True)
        start = ct.quantity("start", "time", nonnegative=True)
        length = ct.quantity("length", "time", positive=True)
        every = ct.quantity("every", "time", default=math.inf, positive=True)
        if length >= every:
            raise ct.error("length", f"{length:g} s is not shorter than the interval 'every' ({every:g} s)")
        if length < step:
            raise ct.error("length", f"{length:g} s is shorter than one time step ({step:g} s)")
        since = shifted - start
        inside = (
            (since >= 0) & (np.mod(since, every) < length) if math.isfinite(every) else (since >= 0) & (since < length)
        )
        power = np.where(inside, p, power)
        parts.append(
            f"checkpoint {p:g} W for {length:g} s from {start:g} s"
            + (f" every {every:g} s" if math.isfinite(every) else "")
        )
        ct.finish()
    jt = table.table("job", None)
    if jt is not None:
        start = jt.quantity("start", "time", nonnegative=True)
        stop = jt.quantity("stop", "time", default=math.inf, positive=True)
        ramp = jt.quantity("ramp", "time", default=0.0, nonnegative=True)
        if stop <= start + ramp:
            raise jt.error("stop", f"the job stops ({stop:g} s) before its start ramp ends ({start + ramp:g} s)")
        if ramp:
            up = np.clip((t - start) / ramp, 0.0, 1.0)
            down = np.clip((stop - t) / ramp, 0.0, 1.0) if math.isfinite(stop) else np.ones_like(t)
        else:
            up = (t >= start).astype(float)
            down = (t < stop).astype(float)
        envelope = np.minimum(up, down)
        power = idle + (power - idle) * envelope[None, :]
        parts.append(
            f"job from {start:g} s"
            + (f" to {stop:g} s" if math.isfinite(stop) else "")
            + (f", ramps {ramp:g} s" if ramp else "")
        )
        jt.finish()
    table.finish()
    if not np.all(np.isfinite(power)) or np.any(power < 0):
        raise table.error(None, "the trace has a negative or non-finite power")
    return Trace(step, t, power, tuple(parts))
