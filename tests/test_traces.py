"""Workload power traces ([trace] tables): generated waves, checkpoints, job
ramps, rack offsets and CSV traces, and the errors for bad ones."""

import tomllib

import numpy as np
import pytest

from aidc_thermo.io.case import CaseError, Table
from aidc_thermo.io.traces import read_trace


def _trace(text, tmp_path):
    data = tomllib.loads(text)
    return read_trace(Table(data["trace"], tmp_path / "case.toml", "trace"), tmp_path)


BASE = """
[trace]
step = "0.1 s"
duration = "{duration}"
idle_power = "100 W"
[trace.wave]
{wave}
"""

SQUARE = 'kind = "square"\nhigh = "1200 W"\nlow = "600 W"\nperiod = "2 s"\nduty = 0.7'
TRAP = 'kind = "trapezoid"\nhigh = "1200 W"\nlow = "600 W"\nperiod = "2 s"\nduty = 0.7\nramp = "0.2 s"'


@pytest.mark.parametrize("wave", [SQUARE, TRAP])
def test_waves_average_to_low_plus_duty_times_swing(wave, tmp_path):
    tr = _trace(BASE.format(duration="20 s", wave=wave), tmp_path)
    p = tr.power[0, :-1]  # 10 whole periods
    assert tr.power.shape == (1, 201) and tr.step == 0.1
    assert abs(p.mean() - (600 + 0.7 * 600)) < 1e-9
    assert p.max() == 1200 and p.min() == 600


def test_trapezoid_edges_are_linear_ramps(tmp_path):
    tr = _trace(BASE.format(duration="2 s", wave=TRAP), tmp_path)
    np.testing.assert_allclose(tr.power[0, :3], [600, 900, 1200])  # rise over 0.2 s
    np.testing.assert_allclose(tr.power[0, 14:17], [1200, 900, 600])  # fall from 1.4 s


def test_desynchronised_racks_smooth_the_sum_and_synchronised_do_not(tmp_path):
    text = BASE.format(duration="20 s", wave=SQUARE)
    sync = _trace(text + '[trace.racks]\ncount = 10\noffsets = "synchronised"\n', tmp_path)
    desync = _trace(text + '[trace.racks]\ncount = 10\noffsets = "desynchronised"\n', tmp_path)
    assert np.all(sync.power == sync.power[0])
    swing_sync = np.ptp(sync.power.sum(0))
    swing_desync = np.ptp(desync.power.sum(0))
    assert swing_sync == 10 * 600 and swing_desync <= 600 + 1e-9
    assert abs(desync.power.sum(0)[:-1].mean() - sync.power.sum(0)[:-1].mean()) < 1e-6


def test_checkpoints_and_job_ramps(tmp_path):
    text = BASE.format(duration="60 s", wave='kind = "constant"\npower = "1000 W"') + (
        '[[trace.checkpoint]]\npower = "300 W"\nstart = "10 s"\nlength = "2 s"\nevery = "20 s"\n'
        '[trace.job]\nstart = "5 s"\nstop = "50 s"\nramp = "1 s"\n'
    )
    tr = _trace(text, tmp_path)
    p, t = tr.power[0], tr.times
    assert np.all(p[t < 5] == 100) and np.all(p[t >= 51] == 100)  # idle before and after
    np.testing.assert_allclose(p[(t >= 5) & (t <= 6)], 100 + 900 * np.linspace(0, 1, 11), atol=1e-9)
    dips = p == 300
    assert np.isclose(t[dips][0], 10) and dips.sum() == 2 * 20  # two checkpoints (10 s, 30 s) before the stop
    assert np.all(p[(t > 6.05) & (t < 9.95)] == 1000)


def test_csv_trace_in_its_own_units(tmp_path):
    (tmp_path / "p.csv").write_text("# measured\ntime [ms],utilisation [1]\n0,0\n5000,1\n10000,0.5\n")
    text = BASE.format(duration="10 s", wave='kind = "csv"\nfile = "p.csv"\npower = "1.1 kW"')
    tr = _trace(text, tmp_path)
    np.testing.assert_allclose(tr.power[0, [0, 25, 50, 100]], [100, 100 + 1000 * 0.5, 1100, 600])
    (tmp_path / "q.csv").write_text("time [min],power [kW]\n0,1\n1,1.2\n")
    tr = _trace(BASE.format(duration="60 s", wave='kind = "csv"\nfile = "q.csv"'), tmp_path)
    np.testing.assert_allclose(tr.power[0, [0, -1]], [1000, 1200])


@pytest.mark.parametrize(
    "csv, where, match",
    [
        ("time [s],power [W]\n0,1\n2,3\n1,4\n", "line 4", "increase strictly"),
        ("time [s],power [W]\n0,1\n5,nan\n10,1\n", "line 3", "finite"),
        ("time [s],power [W]\n0,1\n5,-2\n10,1\n", "line 3", "negative"),
        ("time,power [W]\n0,1\n10,1\n", "line 1", "no unit"),
        ("time [s],power [m]\n0,1\n10,1\n", "line 1", "not a power"),
        ("time [s],power [W]\n0,1\n5,1\n", "trace.wave.file", "covers"),
    ],
)
def test_bad_csv_traces_name_the_line(csv, where, match, tmp_path):
    (tmp_path / "bad.csv").write_text(csv)
    with pytest.raises(CaseError, match=match) as err:
        _trace(BASE.format(duration="10 s", wave='kind = "csv"\nfile = "bad.csv"'), tmp_path)
    assert where in str(err.value) and "bad.csv" in str(err.value)


@pytest.mark.parametrize(
    "duration, wave, key, match",
    [
        ("10 s", SQUARE.replace('"2 s"', '"0.15 s"'), "trace.wave.period", "shorter than two time steps"),
        ("10 s", SQUARE.replace("0.7", "1.2"), "trace.wave.duty", "at most"),
        ("10 s", SQUARE.replace('"600 W"', '"-5 W"'), "trace.wave.low", "negative"),
        ("10 s", SQUARE.replace('"600 W"', '"5 m"'), "trace.wave.low", "not a power"),
        ("10.05 s", SQUARE, "trace.duration", "whole number of steps"),
        ("10 s", TRAP.replace('"0.2 s"', '"0.9 s"'), "trace.wave.ramp", "longer than the shorter phase"),
        ("10 s", SQUARE + '\nphase = "1 s"', "trace.wave.phase", "unknown key"),
        ("10 s", 'kind = "sine"', "trace.wave.kind", "not one of"),
    ],
)
def test_bad_traces_name_the_key(duration, wave, key, match, tmp_path):
    with pytest.raises(CaseError, match=match) as err:
        _trace(BASE.format(duration=duration, wave=wave), tmp_path)
    assert key in str(err.value)
