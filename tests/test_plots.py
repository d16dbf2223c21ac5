"""Plots: ``thermo plot`` redraws the PNG set a run wrote, from results.h5 alone
(small variants of the bundled cases here; every bundled case in
test_cli.py, which also checks the resolved plate's wall heat flux and local
h), and the data behind the plots (J/token per day, months, the package's
resistance stack-up and block temperatures) are checked against the run's
own summary."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.results import summary_values
from aidc_thermo.plots.figures import PLOTS, daily_energy_per_token, robust_limits

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"


def _edit(text, *pairs):
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def _weather_days(first_row: int, rows: int) -> str:
    lines = (CASES / "data" / "weather_temperate.csv").read_text().splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("time,"))
    return "\n".join([lines[header], *lines[header + 1 + first_row : header + 1 + first_row + rows]]) + "\n"


SMALL = {
    "stack": ("slab.toml", lambda t: t),
    # three days across a month boundary (Jan 31 .. Feb 2)
    "facility": (
        "nvl72_dry_cooler_temperate.toml",
        lambda t: _edit(t, ('weather = "data/weather_temperate.csv"', 'weather = "data/days.csv"')),
    ),
    # three minutes of the training trace, with storage and a 30 s demand-response event
    "hall": (
        "hall_training_transient_storage.toml",
        lambda t: _edit(t, ('duration = "12 min"', 'duration = "3 min"'), ('length = "5 min"', 'length = "30 s"')),
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("plots")
    (base / "data").mkdir()
    (base / "data" / "days.csv").write_text(_weather_days(30 * 24, 72))
    (base / "data" / "gpu_coldplate_curves.csv").write_bytes((CASES / "data" / "gpu_coldplate_curves.csv").read_bytes())
    out = {}
    for key, (name, edit) in SMALL.items():
        case = base / name
        case.write_text(edit((CASES / name).read_text()))
        folder = base / f"run_{key}"
        assert main(["run", str(case), "-o", str(folder)]) == 0, key
        out[key] = folder
    return out


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize("key", list(SMALL))
def test_plot_redraws_the_same_png_set_from_results_h5(key, runs, tmp_path):
    folder = runs[key]
    written = _pngs(folder)
    assert written, "the run wrote no plots"
    with h5py.File(folder / "results.h5") as h5:
        text = h5["case/text"][()].decode()
    case_type = re.search(r'type\s*=\s*"(\w+)"', text).group(1)
    expected = {n.split(" ")[0] + ".png" for n in PLOTS[case_type] if "(" not in n}
    assert expected <= set(written), sorted(expected - set(written))
    again = tmp_path / "again"
    assert main(["plot", str(folder), "-o", str(again)]) == 0
    redrawn = _pngs(again)
    assert sorted(redrawn) == sorted(written)
    for name in written:  # no solve in between: byte-identical files
        assert redrawn[name] == written[name], name
    if key == "stack":  # in place: the default output folder
        assert main(["plot", str(folder)]) == 0
        assert _pngs(folder) == written


def test_daily_energy_per_token_weights_to_the_annual_figure(runs):
    folder = runs["facility"]
    summary = summary_values(folder)
    with h5py.File(folder / "results.h5") as h5:
        p = h5["hourly/P_facility"][()]
        tok = h5["hourly/tokens_per_s"][()]
        month = h5["hourly/month"][()]
    assert len(p) == 72 and month[0] == 1 and month[-1] == 2 and (month == 2).sum() == 48
    j_day, energy, tokens = daily_energy_per_token(p, tok)
    assert j_day.shape == (3,)
    annual = summary["J_per_token_facility"]
    # token-weighted mean of the daily values = energy-weighted harmonic mean = the period's figure
    assert np.sum(tokens * j_day) / np.sum(tokens) == pytest.approx(annual, rel=1e-12)
    assert np.sum(energy) / np.sum(energy / j_day) == pytest.approx(annual, rel=1e-12)
    # the unweighted mean of hourly ratios (the old curve) is a different number
    assert np.mean(p / tok) != pytest.approx(annual, rel=1e-6)
    # a partial last day is its own entry
    j5, _, _ = daily_energy_per_token(p[:30], tok[:30])
    assert j5.shape == (2,) and j5[1] == pytest.approx(p[24:30].sum() / tok[24:30].sum(), rel=1e-12)


def test_package_stackup_and_blocks_match_the_summary(runs):
    folder = runs["stack"]
    summary = summary_values(folder)
    with h5py.File(folder / "results.h5") as h5:
        r = h5["stackup/resistance"][()]
        t_if = h5["stackup/T_interface"][()]
        t_block = h5["blocks/T_max"][()]
        power = h5["blocks/power"][()]
    # the slab: one heater block, 1D conduction plus the cold side, all heat through every plane
    assert power.sum() == pytest.approx(summary["total_power"])
    assert t_block.max() == pytest.approx(summary["T_junction_max"], abs=1e-9)  # degC, as every temperature
    t_c = summary["T_coolant"]
    assert t_if[0] == pytest.approx(t_c + r.sum() * summary["total_power"], rel=1e-12)
    assert np.all(r > 0)
    # uniform flux: the heat-weighted mean is the junction temperature itself
    assert t_if[0] == pytest.approx(summary["T_junction_mean"], abs=1e-6)


def test_robust_limits_ignore_an_outlier_and_round_off():
    v = np.full(1000, 40.0) + np.linspace(0, 10, 1000)
    v[3] = -235.9  # one cell far off (the old backflow bug)
    lo, hi = robust_limits(v)
    assert 40.0 <= lo < 40.2 and 49.8 < hi <= 50.0
    flat = 86.36 + 1e-10 * np.arange(10)
    lo, hi = robust_limits(flat)
    assert hi - lo >= 0.08  # round-off is not stretched over the colour map


def test_plot_rejects_what_is_not_a_results_folder(tmp_path, capsys, runs):
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert main(["plot", str(tmp_path)]) == 2
    assert "no results.h5" in capsys.readouterr().err
    (tmp_path / "results.h5").write_text("not hdf5")
    assert main(["plot", str(tmp_path)]) == 2
    assert "cannot read it as HDF5" in capsys.readouterr().err
    old = tmp_path / "old"
    old.mkdir()
    with h5py.File(runs["stack"] / "results.h5") as src, h5py.File(old / "results.h5", "w") as dst:
        for key in src:
            src.copy(key, dst)
    assert main(["plot", str(old)]) == 2  # no layout stamp: another version
    err = capsys.readouterr().err
    assert "layout" in err and "rerun" in err
    assert not list(old.glob("*.png"))


def test_binned_power_keeps_the_stack_adding_up_and_bounds_every_sample():
    from aidc_thermo.plots.figures import _binned

    t = np.arange(5000) * 0.5
    parts = [300 + 200 * (np.sin(2 * np.pi * t / 2.0) > 0), 50 + 0 * t, 20 + 5 * np.cos(t / 100)]
    total = sum(parts)
    x, mean, band = _binned(t, 600)
    assert len(x) == 600 and band is not None
    np.testing.assert_allclose(sum(mean(p) for p in parts), mean(total), rtol=1e-12)
    lo, hi = band(total)
    assert lo.min() >= total.min() and hi.max() <= total.max() and hi.max() == total.max()
    # the square wave's running mean stays near its average: its wiggle is under a quarter of the 200 W swing
    assert np.ptp(mean(parts[0])[10:-10]) < 50
    x2, mean2, band2 = _binned(t[:1000], 600)  # short traces are drawn as they are
    assert band2 is None and len(x2) == 1000
