"""Weather files of facility cases: the EPW reader against pvlib's ``read_epw``,
its time zone and leap-year handling and its errors; the CSV reader's column and
time checks; an EPW and the CSV with the same numbers give bit-identical facility
results."""

import calendar
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from pvlib.iotools import read_epw  # the 'test' extra (pyproject.toml): an independent EPW reader

from aidc_thermo.cli import main
from aidc_thermo.io import weather
from aidc_thermo.io.case import CaseError

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"
# the cold-plate curve file by absolute path, so that the case text runs from any folder
TEMPERATE = (CASES / "nvl72_dry_cooler_temperate.toml").read_text().replace('"data/gpu', f'"{CASES}/data/gpu')
T0 = 273.15

# The 25 fields after the pressure (radiation, wind, sky, precipitation), as in real files.
EPW_TAIL = "0,0,309,0,0,0,0,0,0,0,240,3.1,6,4,16.0,77777,9,999999999,10,0.0820,0,88,0.160,0.0,1.0"


def hour_values(k: int) -> tuple[str, str, str, str]:
    """Dry bulb, dew point (°C, one decimal), RH (%), pressure (Pa) of hour k: a
    daily and a yearly cycle, the dew point 1-5 K below the dry bulb."""
    tdb = 12.0 + 8.0 * np.sin(2 * np.pi * (k - 9) / 24) + 10.0 * np.sin(2 * np.pi * k / 8760)
    dew = tdb - 3.0 - 2.0 * np.cos(2 * np.pi * k / 24)
    rh = 100.0 * np.exp(17.6 * dew / (243.0 + dew) - 17.6 * tdb / (243.0 + tdb))
    return f"{tdb:.1f}", f"{dew:.1f}", f"{rh:.0f}", f"{99500 + 37 * (k % 50)}"


def epw_rows(start: datetime, hours: int, year_of=None) -> list[str]:
    """EPW data rows from ``start`` (00:00 of a day) for ``hours`` hours; hour
    h of a day is written as h + 1 (hour ending). ``year_of(month)`` overrides the
    year field (typical-year files)."""
    rows = []
    for k in range(hours):
        t = start + timedelta(hours=k)
        tdb, dew, rh, p = hour_values(k)
        year = t.year if year_of is None else year_of(t.month)
        rows.append(f"{year},{t.month},{t.day},{t.hour + 1},60,?9?9?9?9E0?9?9?9*9?9?9?9?9?9?9?9?9*_*9*9*9?9?9,"
                    f"{tdb},{dew},{rh},{p},{EPW_TAIL}")  # fmt: skip
    return rows


def epw_header(start: str, end: str, tz: str = "-5.0", per_hour: str = "1") -> list[str]:
    return [
        f"LOCATION,Testville,ST,USA,TMY3,999999,40.00,-75.00,{tz},10.0",
        "DESIGN CONDITIONS,0",
        "TYPICAL/EXTREME PERIODS,0",
        "GROUND TEMPERATURES,0",
        "HOLIDAYS/DAYLIGHT SAVINGS,No,0,0,0",
        "COMMENTS 1,written by tests/test_weather.py",
        "COMMENTS 2,not measured data",
        f"DATA PERIODS,1,{per_hour},Data,Sunday, {start},{end}",
    ]


def write_epw(path, lines):
    path.write_text("\r\n".join(lines) + "\r\n")  # EPW files are usually written with CRLF
    return path


def three_days(tmp_path, name="site.epw", tz="-5.0"):
    return write_epw(tmp_path / name, epw_header("7/ 1", "7/ 3", tz) + epw_rows(datetime(2001, 7, 1), 72))


# ------------------------------------------------------------- EPW vs pvlib


def assert_same_as_pvlib(w, path):
    data, meta = read_epw(path)
    # pvlib labels each hour by its start, tz-aware (offset from LOCATION's time zone).
    ours = pd.DatetimeIndex([pd.Timestamp(t) for t in w.time])
    assert len(ours) == len(data)
    assert (ours == data.index).all()
    assert w.utc_offset_h == meta["TZ"]
    np.testing.assert_allclose(w.t_db - T0, data["temp_air"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.dew_point - T0, data["temp_dew"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.relative_humidity * 100.0, data["relative_humidity"], rtol=1e-15)
    np.testing.assert_array_equal(w.p, data["atmospheric_pressure"])


def test_epw_reads_the_same_numbers_and_times_as_pvlib(tmp_path):
    path = three_days(tmp_path)
    w = weather.read_weather(path)
    assert len(w) == 72
    assert w.time[0] == "2001-07-01T00:00-05:00" and w.time[-1] == "2001-07-03T23:00-05:00"
    assert w.period.startswith("2001-07-01T00:00 to 2001-07-03T23:00, 72 h, UTC-05:00, Testville")
    assert_same_as_pvlib(w, path)


def test_epw_wet_bulb_follows_from_the_dew_point(tmp_path):
    # The wet bulb is the psychrometric one of the dew point's humidity ratio;
    # the RH column (whole percent) agrees with the dew point within its rounding.
    from aidc_thermo.kernels.plant import psychro

    w = weather.read_weather(three_days(tmp_path))
    w_ratio = np.asarray(psychro.humidity_ratio(psychro.saturation_pressure(w.dew_point), w.p))
    # Back from the wet bulb to the humidity ratio: the same water content.
    np.testing.assert_allclose(psychro.humidity_ratio_from_wet_bulb(w.t_db, w.t_wb, w.p), w_ratio, rtol=1e-9)
    assert np.all(w.t_wb < w.t_db) and np.all(w.t_wb > w.dew_point)
    rh = weather._saturation_pressure_np(w.dew_point) / weather._saturation_pressure_np(w.t_db)
    np.testing.assert_allclose(rh, w.relative_humidity, atol=0.015)  # 0.5 % rounding, 0.05 K of dew point


def test_leap_year_keeps_29_february(tmp_path):
    path = write_epw(tmp_path / "leap.epw", epw_header("1/1", "12/31", tz="5.5") + epw_rows(datetime(2004, 1, 1), 8784))
    w = weather.read_epw(path)
    assert len(w) == 8784 and w.period.startswith("full year 2004, 8784 h, UTC+05:30")
    assert "2004-02-29T00:00+05:30" in w.time and w.notes == ()
    assert_same_as_pvlib(w, path)


def test_typical_year_without_29_february_from_mixed_years(tmp_path):
    # A TMY file: each month from another year, January from a leap year, no 29 Feb.
    first_years = (2004, 1999, 2010, 1995, 2001, 2003, 2008, 1997, 2005, 2000, 1996, 2002)
    years = dict(zip(range(1, 13), first_years, strict=True))
    rows = [r for r in epw_rows(datetime(2004, 1, 1), 8784, years.get) if not re.match(r"\d+,2,29,", r)]
    w = weather.read_epw(write_epw(tmp_path / "tmy.epw", epw_header("1/1", "12/31") + rows))
    assert len(w) == 8760 and w.period.startswith("full year 2004, 8760 h")
    assert w.notes == ("29 February 2004 omitted (typical-year convention)",)
    # Labels are one calendar (the first row's year); month boundaries are continuous.
    i = w.time.index("2004-02-28T23:00-05:00")
    assert w.time[i + 1] == "2004-03-01T00:00-05:00" and w.time[-1] == "2004-12-31T23:00-05:00"


def test_29_february_in_a_year_that_is_not_leap_names_the_line(tmp_path):
    rows = epw_rows(datetime(2004, 2, 28), 72)  # 28 Feb, 29 Feb, 1 Mar of 2004 ...
    rows = [r.replace("2004,", "2001,", 1) for r in rows]  # ... written as 2001
    path = write_epw(tmp_path / "bad.epw", epw_header("2/28", "3/1") + rows)
    with pytest.raises(CaseError, match="line 33: 29 February, but the labels' year 2001"):
        weather.read_epw(path)


# ----------------------------------------------------------- malformed EPWs


def bad_epw(tmp_path, edit):
    lines = epw_header("7/1", "7/3") + epw_rows(datetime(2001, 7, 1), 72)
    return write_epw(tmp_path / "bad.epw", edit(lines))


def set_field(lines, line_no, field, value):
    row = lines[line_no - 1].split(",")
    row[field - 1] = value
    lines[line_no - 1] = ",".join(row)
    return lines


@pytest.mark.parametrize(
    "edit, where, fragment",
    [
        (lambda ls: ls[:3] + ls[4:], "line 4", "expected the EPW header record 'GROUND TEMPERATURES'"),
        (lambda ls: ls[1:], "line 1", "'LOCATION'"),
        (lambda ls: ls[:20] + [ls[20] + ",7"] + ls[21:], "line 21", "expected 35 comma-separated fields, got 36"),
        (lambda ls: ls[:20] + [ls[20].rsplit(",", 3)[0]] + ls[21:], "line 21", "got 32"),
        (lambda ls: set_field(ls, 30, 7, "99.9"), "line 30", "dry bulb (field 7, °C) is missing (99.9"),
        (lambda ls: set_field(ls, 31, 8, "99.9"), "line 31", "dew point (field 8, °C) is missing"),
        (lambda ls: set_field(ls, 32, 9, "999"), "line 32", "relative humidity (field 9, %) is missing"),
        (lambda ls: set_field(ls, 33, 10, "999999"), "line 33", "pressure (field 10, Pa) is missing"),
        (lambda ls: set_field(ls, 34, 7, "warm"), "line 34", "not a number: 'warm'"),
        (lambda ls: set_field(ls, 35, 8, "30.0"), "line 35", "more than 1.0 K above the dry bulb"),
        (lambda ls: set_field(ls, 1, 9, "-15"), "line 1", "time zone"),
        # non-hourly data: a period of 4 records per hour, a repeated hour, a missing hour, rows out of order
        (lambda ls: ls[:7] + [ls[7].replace("DATA PERIODS,1,1,", "DATA PERIODS,1,4,")] + ls[8:], "line 8",
         "only hourly data"),
        (lambda ls: ls[:40] + [ls[39]] + ls[40:-1], "line 41", "by 0 h (a repeat)"),
        (lambda ls: ls[:40] + ls[41:] + [ls[-1]], "line 41", "by 2 h (a gap)"),
        (lambda ls: ls[:40] + [ls[30]] + ls[41:], "line 41", "by -9 h (not sorted)"),
        (lambda ls: set_field(ls, 20, 4, "25"), "line 20", "out of range (hour is 1-24)"),
        (lambda ls: ls[:-24], "line 56", "DATA PERIODS (line 8) ends on 7/3"),
        (lambda ls: ls[:8], "", "no data rows"),
    ],
)
def test_malformed_epw_exits_2_naming_the_file_and_line(tmp_path, capsys, edit, where, fragment):
    epw = bad_epw(tmp_path, edit)
    case = tmp_path / "case.toml"
    case.write_text(TEMPERATE.replace('weather = "data/weather_temperate.csv"', 'weather = "bad.epw"'))
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert "ambient.weather" in err and str(epw) in err and "Traceback" not in err
    assert f"{where}: " in err and fragment in err, err


# ------------------------------------------------------------------- CSV


def write_csv(tmp_path, text, name="w.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_extra_columns_are_ignored_and_named(tmp_path):
    text = "time,station,dry_bulb_C,dew_point_C,wind_m_s\n"
    text += "".join(f"2001-03-01T{h:02d}:00,FRA,{10 + h / 10},{5 + h / 20},3.0\n" for h in range(24))
    w = weather.read_weather(write_csv(tmp_path, text), pressure=98000.0)
    assert len(w) == 24 and w.notes == ("columns ignored: station, wind_m_s",)
    assert w.period == "2001-03-01T00:00 to 2001-03-01T23:00, 24 h" and w.utc_offset_h is None
    np.testing.assert_array_equal(w.dew_point, np.array([5 + h / 20 for h in range(24)]) + T0)
    assert np.all(w.p == 98000.0)


def test_csv_time_zone_and_leap_year(tmp_path):
    def year(y, skip_feb29=False):
        t = [datetime(y, 1, 1) + timedelta(hours=k) for k in range(8784 if calendar.isleap(y) else 8760)]
        if skip_feb29:
            t = [s for s in t if (s.month, s.day) != (2, 29)]
        return "time,dry_bulb_C,relative_humidity_pct\n" + "".join(f"{s:%Y-%m-%dT%H:%M}+01:00,10,50\n" for s in t)

    w = weather.read_weather(write_csv(tmp_path, year(2004)))
    assert (len(w), w.period, w.utc_offset_h, w.notes) == (8784, "full year 2004, 8784 h, UTC+01:00", 1.0, ())
    w = weather.read_weather(write_csv(tmp_path, year(2004, skip_feb29=True)))
    assert (len(w), w.period) == (8760, "full year 2004, 8760 h, UTC+01:00") and "29 February 2004" in w.notes[0]
    w = weather.read_weather(write_csv(tmp_path, year(2001)))
    assert (len(w), w.period) == (8760, "full year 2001, 8760 h, UTC+01:00")


HEAD = "time,dry_bulb_C,relative_humidity_pct\n"


@pytest.mark.parametrize(
    "rows, where, fragment",
    [
        ("2001-01-01T00:00,5,80\n2001-01-01T02:00,5,80\n", "line 3", "by 2 h (a gap)"),
        ("2001-01-01T00:00,5,80\n2001-01-01T01:00,5,80\n2001-01-01T00:00,5,80\n", "line 4", "(not sorted)"),
        ("2001-01-01T00:00,5,80\n2001-01-01T00:00,5,80\n", "line 3", "(a repeat)"),
        ("2001-01-01T00:00,5,80\n2001-01-01T00:30,5,80\n", "line 3", "by 0.5 h (not hourly)"),
        ("2001-01-01T05:00,5,80\n", "line 2", "must be at 00:00"),
        ("h0,5,80\n", "line 2", "not an ISO 8601 date-time"),
        ("2001-01-01,5,80\n", "line 2", "not an ISO 8601 date-time"),
        ("2001-01-01T00:00+01:00,5,80\n2001-01-01T01:00,5,80\n", "line 3", "UTC offset differs"),
        # 29 February may be omitted in a leap year, but only 29 February
        ("".join(f"2004-02-28T{h:02d}:00,5,80\n" for h in range(23)) + "2004-03-01T00:00,5,80\n", "line 25",
         "by 26 h (a gap)"),
    ],
)
def test_csv_time_column_is_checked_naming_the_line(tmp_path, rows, where, fragment):
    path = write_csv(tmp_path, HEAD + rows)
    with pytest.raises(CaseError, match=re.escape(fragment)) as err:
        weather.read_weather(path)
    assert str(path) in str(err.value) and f"{where}: " in str(err.value)


def test_csv_with_two_humidity_columns_is_refused(tmp_path):
    path = write_csv(tmp_path, "time,dry_bulb_C,dew_point_C,relative_humidity_pct\n2001-01-01T00:00,5,1,80\n")
    with pytest.raises(CaseError, match="exactly one of 'wet_bulb_C', 'dew_point_C', 'relative_humidity_pct'"):
        weather.read_weather(path)


# ------------------------------------------- EPW and CSV: the same facility

HOURS = 48  # 1-2 July 2001 at UTC+01:00


def epw_and_csv_cases(tmp_path) -> dict[str, Path]:
    """The bundled temperate case with its weather from site.epw, and from
    site.csv holding the same decimal strings (and an ignored extra column)."""
    write_epw(tmp_path / "site.epw", epw_header("7/1", "7/2", tz="1.0") + epw_rows(datetime(2001, 7, 1), HOURS))
    csv_text = "# the same hours as site.epw\ntime,dry_bulb_C,dew_point_C,pressure_Pa,rh_from_the_epw\n"
    for k in range(HOURS):
        tdb, dew, rh, p = hour_values(k)
        csv_text += f"{datetime(2001, 7, 1) + timedelta(hours=k):%Y-%m-%dT%H:%M}+01:00,{tdb},{dew},{p},{rh}\n"
    write_csv(tmp_path, csv_text, "site.csv")
    cases = {}
    for kind in ("epw", "csv"):
        text = TEMPERATE.replace('weather = "data/weather_temperate.csv"', f'weather = "site.{kind}"')
        assert "[output]" not in text
        cases[kind] = tmp_path / f"{kind}.toml"
        cases[kind].write_text(text + "\n[output]\nplots = false\n")
    return cases


def test_epw_and_equivalent_csv_give_the_facility_bit_identical_inputs(tmp_path):
    # The facility solve is a pure function of (build(case), hourly inputs): equal
    # bits in give equal bits out (the slow test below runs both end to end).
    import jax

    from aidc_thermo.io.case import load
    from aidc_thermo.models import facility

    cases = {k: facility.parse(load(p)) for k, p in epw_and_csv_cases(tmp_path).items()}
    e, c = cases["epw"], cases["csv"]
    assert e.params == c.params and e.hourly and c.hourly
    for name in ("t_db", "t_wb", "p", "dew_point"):
        np.testing.assert_array_equal(getattr(e.weather, name), getattr(c.weather, name), err_msg=name)
    assert e.weather.time == c.weather.time and len(e.weather) == HOURS
    assert e.weather.utc_offset_h == c.weather.utc_offset_h == 1.0
    assert "weather: 2001-07-01T00:00 to 2001-07-02T23:00, 48 h, UTC+01:00, Testville, ST, USA" in e.notes
    assert "weather: columns ignored: rh_from_the_epw" in c.notes
    inputs = [jax.tree.leaves(facility._hourly_inputs(x)) for x in (e, c)]
    for a, b in zip(*inputs, strict=True):
        np.testing.assert_array_equal(a, b)
    (se, pe), (sc, pc) = facility.build(e), facility.build(c)
    assert se == sc
    for a, b in zip(jax.tree.leaves(pe), jax.tree.leaves(pc), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_epw_and_equivalent_csv_give_bit_identical_facility_results(tmp_path):
    summaries, hourly = {}, {}
    for kind, case in epw_and_csv_cases(tmp_path).items():
        out = tmp_path / f"out_{kind}"
        assert main(["run", str(case), "-o", str(out)]) == 0
        summaries[kind] = json.loads((out / "summary.json").read_text())
        with h5py.File(out / "results.h5") as h5:
            hourly[kind] = {k: h5["hourly"][k][()] for k in h5["hourly"]}
    e, c = summaries["epw"], summaries["csv"]
    assert e.keys() == c.keys()
    for k in e.keys() - {"period", "timing"}:
        assert e[k] == c[k], k
    assert "2001-07-01T00:00 to 2001-07-02T23:00, 48 h, UTC+01:00" in e["period"]["value"]
    assert hourly["epw"].keys() == hourly["csv"].keys() and len(hourly["epw"]["dry_bulb"]) == HOURS
    for k in hourly["epw"]:
        np.testing.assert_array_equal(hourly["epw"][k], hourly["csv"][k], err_msg=k)
    assert np.all(hourly["epw"]["month"] == 7)
