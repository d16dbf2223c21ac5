"""``thermo sweep`` over rack_network and facility cases: the sweep's batched
solve (vmap over stacked Params) equals each design's own solve to 1e-10 for
every reported number; a design that the run's check refuses (coolant past
its liquid range, thermal runaway) is kept in the table, marked failed with
the reason; the screen applies the run's bounds to the reported extremes;
swept keys that are not numbers or carry the wrong unit exit 2 naming the key."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.errors import SolveError
from aidc_thermo.sweep import MAX_PLOTTED, read_table

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"

#: the bundled NVL72 rack cut to three trays (one per section)
RACK = (
    (CASES / "rack_nvl72.toml").read_text()
    .replace("count = 8", "count = 1").replace("count = 9", "count = 1").replace("count = 10", "count = 1")
    .replace("plots = true", "plots = false")
    .replace('curves = "data/', f'curves = "{(CASES / "data").as_posix()}/')  # the base case is copied elsewhere
)  # fmt: skip
#: the bundled temperate hall at one hot design point instead of its weather year
FACILITY = re.sub(
    r"\[ambient\]\n[^\[]*",
    '[ambient]\ndry_bulb = "35 degC"\nwet_bulb = "24 degC"\n\n',
    (CASES / "nvl72_dry_cooler_temperate.toml")
    .read_text()
    .replace('curves = "data/', f'curves = "{(CASES / "data").as_posix()}/'),
) + "\n[output]\nplots = false\n"

RACK_SWEEP = """
[sweep]
case = "base.toml"
outputs = ["rack_pressure_drop", "T_junction_max", "flow_ratio_min"]
[[parameter]]
key = "supply.flow"
values = ["0.05 L/min", "15 L/min", "30 L/min"]
[[parameter]]
key = "manifold.diameter"
range = ["12 mm", "38 mm"]
points = 2
[[constraint]]
output = "T_junction_max"
max = "67 degC"
"""

FACILITY_SWEEP = """
[sweep]
case = "base.toml"
[[parameter]]
key = "facility_water.supply_temperature"
values = ["25 degC", "40 degC"]
[[parameter]]
key = "secondary.flow_per_accelerator"
values = ["1.8 L/min", "3 L/min"]  # x the base case's optimize flow_scale 0.6..1.6: inside the curves' 1-6 L/min
[[parameter]]
key = "it.leakage_power"
values = ["120 W", "3000 W"]
"""


def _write(folder: Path, base: str, sweep: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.toml").write_text(base)
    path = folder / "sweep.toml"
    path.write_text(sweep)
    return path


def _loop_equals_chunks(model, sweep_file, out: Path):
    """Every design solved alone (jit of solve, report) equals the sweep's batched outputs (from its chunk files)
    to 1e-10 (round-off sized diagnostics to 1e-12 absolute); returns the designs' (static, params, solution,
    report) for further checks."""
    import jax

    from aidc_thermo import sweep

    spec = sweep.read_sweep(sweep_file)
    table = sweep.designs(spec)
    _, buckets, params = sweep._parse_all(spec, table)
    assert len(buckets) == 1  # numbers only: one compilation
    (static,) = buckets
    batched = {}
    for f in sorted((out / "chunks").glob("*.npz")):
        with np.load(f) as z:
            for j, i in enumerate(z["design"]):
                batched[int(i)] = {k[5:]: z[k][j] for k in z.files if k.startswith("out__")}
    assert sorted(batched) == list(range(len(table)))
    one = jax.jit(lambda p: model.solve(static, p))
    designs = []
    for i, p in enumerate(params):
        s = one(p)
        rep = {k: np.asarray(o.value) for k, o in model.report(static, p, s).items()}
        assert set(rep) == set(batched[i])
        for k, v in rep.items():
            # round-off sized diagnostics (a rack's 1e-16 heat balance error, its last Newton residual): to round-off
            atol = 1e-12 if k in ("heat_balance_error", "residual") else 1e-300
            np.testing.assert_allclose(batched[i][k], v, rtol=1e-10, atol=atol, err_msg=f"design {i}: {k}")
        designs.append((static, p, s, rep))
    return designs


@pytest.mark.slow
def test_rack_sweep_equals_the_per_design_loop_and_marks_a_boiling_design_failed(tmp_path):
    from aidc_thermo.models import rack

    sweep_file = _write(tmp_path, RACK, RACK_SWEEP)
    out = tmp_path / "out"
    assert main(["sweep", str(sweep_file), "-o", str(out), "-q"]) == 0
    t = read_table(out)
    flow, status, reason = t["supply.flow"][0], t["status"][0], t["reason"][0]
    assert t["supply.flow"][1] == "m^3/s" and t["rack_pressure_drop"][1] == "kPa"
    low = flow < 1e-5  # 0.05 L/min carries 5.2 kW: the coolant would boil
    assert list(status[low]) == ["failed"] * 2 and all("boil" in r for r in reason[low])
    assert set(status[~low]) <= {"ok", "infeasible"} and (status[~low] == "ok").any()
    tj = t["T_junction_max"][0]
    assert np.all(np.isfinite(tj[~low])) and np.all((status == "infeasible") == (~low & (tj > 67.0)))
    dp = t["rack_pressure_drop"][0]
    d = t["manifold.diameter"][0]
    for q in np.unique(flow[~low]):  # a narrower manifold costs pressure at equal flow
        assert dp[(flow == q) & (d < 0.02)][0] > dp[(flow == q) & (d > 0.02)][0]
    assert sorted(p.name for p in out.glob("*.png"))[:1] == ["outputs_vs_parameters.png"]
    for i, (static, p, s, rep) in enumerate(_loop_equals_chunks(rack, sweep_file, out)):
        if low[i]:
            with pytest.raises(SolveError, match="boil"):
                rack.check(static, p, s)  # thermo run refuses the design the sweep marked failed
        else:
            rack.check(static, p, s)
            assert rack.screen(static, p, rep) == ""


@pytest.mark.slow
def test_facility_sweep_equals_the_per_design_loop_and_marks_runaway_failed(tmp_path):
    from aidc_thermo.models import facility

    sweep_file = _write(tmp_path, FACILITY, FACILITY_SWEEP)
    out = tmp_path / "out"
    assert main(["sweep", str(sweep_file), "-o", str(out), "-q"]) == 0
    t = read_table(out)
    leak, status, reason = t["it.leakage_power"][0], t["status"][0], t["reason"][0]
    runaway = leak > 1000.0
    assert list(status[runaway]) == ["failed"] * 4 and all("thermal runaway" in r for r in reason[runaway])
    assert list(status[~runaway]) == ["ok"] * 4
    assert not t["converged"][0][runaway].any() and t["converged"][0][~runaway].all()
    # no outputs listed: the table keeps every scalar output, the plots the first MAX_PLOTTED (28 pairs, not 630)
    info = json.loads((out / "sweep.json").read_text())
    assert len(info["outputs"]) > 30 and "breakdown:secondary pumps" in t
    assert info["plotted_outputs"] == info["outputs"][:MAX_PLOTTED]
    assert len(list(out.glob("pareto_*.png"))) == MAX_PLOTTED * (MAX_PLOTTED - 1) // 2
    assert (out / "outputs_vs_parameters.png").is_file()
    for i, (static, p, s, rep) in enumerate(_loop_equals_chunks(facility, sweep_file, out)):
        if runaway[i]:
            with pytest.raises(SolveError, match="runaway"):
                facility.check(static, p, s)
        else:
            facility.check(static, p, s)
            assert facility.screen(static, p, rep) == ""
    # more coolant flow lowers the junction temperature at equal setpoint
    tj, q = t["T_junction_max"][0], t["secondary.flow_per_accelerator"][0]
    t_set = t["facility_water.supply_temperature"][0]
    for ts in np.unique(t_set):
        sel = ~runaway & (t_set == ts)
        assert tj[sel & (q > 4e-5)][0] < tj[sel & (q < 4e-5)][0]


@pytest.fixture(scope="module")
def rack_design():
    from aidc_thermo.models import rack

    case = rack.parse(load_text(RACK))
    static, params = rack.build(case)
    return static, params


def load_text(text: str, name: str = "base.toml"):
    import tomllib

    from aidc_thermo.io.case import CaseFile

    return CaseFile(CASES / name, text, tomllib.loads(text))


def _rack_outputs(t_sup, **change):
    """Report outputs of a plausible solved 3-tray rack (numbers, K), changed by ``change``."""
    out = {
        "converged": np.bool_(True), "residual": np.float64(1e-12), "iterations": np.int64(5),
        "rack_pressure_drop": np.float64(20.0), "T_junction_max": np.float64(60.0), "T_return": np.float64(40.0),
        "temperature_extremes": np.asarray([[t_sup, t_sup + 6.0], [t_sup, t_sup + 6.0], [t_sup, t_sup + 8.0]]),
        "plate_rise_extremes": np.asarray([0.5, 3.0, t_sup + 8.0, 2.0]),
        "plate_type_flow_extremes": np.full((8, 2), 5e-5),  # 3 L/min: inside the GPU plate curves' 1-6 L/min
        "heat_balance_error": np.float64(1e-15),
    }  # fmt: skip
    out.update(change)
    return out


def test_rack_screen_refuses_what_check_refuses(rack_design):
    """The screen's reasons from report outputs: not converged, not finite, colder than the supply beyond the
    bounds tolerance (a round-off excursion passes), a plate colder at its outlet, coolant past its range, a plate
    flow outside its curve file's range, energy that does not close."""
    from aidc_thermo.models import rack

    static, params = rack_design
    t = float(params.supply_temperature)
    assert rack.screen(static, params, _rack_outputs(t)) == ""
    slightly = _rack_outputs(t, temperature_extremes=np.asarray([[t - 1e-6, t + 6.0]] * 3))
    assert rack.screen(static, params, slightly) == ""  # within the tolerance of thermo.bounds
    r = rack.screen(static, params, _rack_outputs(t, converged=np.bool_(False), iterations=np.int64(60)))
    assert "did not converge" in r and "after 60 Newton iterations (limit 60)" in r
    assert "not finite (T_junction_max)" in rack.screen(static, params, _rack_outputs(t, T_junction_max=np.nan))
    cold = _rack_outputs(t, temperature_extremes=np.asarray([[t, t + 6.0], [t - 2.0, t + 6.0], [t, t + 8.0]]))
    r = rack.screen(static, params, cold)
    assert "edge inlet temperature" in r and "2 K below its lower bound" in r and "maximum principle" in r
    r = rack.screen(static, params, _rack_outputs(t, plate_rise_extremes=np.asarray([-0.5, 3.0, t + 8.0, 1.0])))
    name = static.network.edge_labels[static.plate_edges[1]]
    assert "0.5 K below its inlet at plate 1" in r and name in r
    hot = static.coolant.t_max + 5.0
    r = rack.screen(static, params, _rack_outputs(t, temperature_extremes=np.asarray([[t, hot]] * 3)))
    assert "boil" in r
    k = next(i for i, rng in enumerate(static.curve_range) if rng is not None)  # the GPU plates' curve file
    slow = np.full((8, 2), 5e-5)
    slow[k, 0] = 0.5 / 60000  # one GPU plate at 0.5 L/min
    r = rack.screen(static, params, _rack_outputs(t, plate_type_flow_extremes=slow))
    assert "outside the flow range of their curve file (1..6 L/min)" in r and static.plate_type_names[k] in r
    r = rack.screen(static, params, _rack_outputs(t, heat_balance_error=np.float64(0.05)))
    assert "energy does not close over the rack" in r


BAD = {
    # (case, key and values, the key named in the error, words)
    "rack: a name is not a number": (RACK, 'key = "manifold.layout"\nvalues = [1]', "parameter[0].key",
                                     "'manifold.layout' is not a number in the base case (it is 'U')"),
    "rack: wrong unit": (RACK, 'key = "supply.flow"\nvalues = ["5 kg"]', "parameter[0].values", "dimension"),
    "rack: unit on a plain number": (RACK, 'key = "quick_disconnect.cv"\nvalues = ["2 m"]',
                                     "parameter quick_disconnect.cv", "quick_disconnect.cv: expected a number"),
    "rack: mixed units": (RACK, 'key = "manifold.feed_k"\nvalues = [1.0, "2 m"]', "parameter[0].values",
                          "mixes units"),
    "facility: a name is not a number": (FACILITY, 'key = "heat_rejection.type"\nvalues = [1]', "parameter[0].key",
                                         "not a number"),
    "facility: wrong unit": (FACILITY, 'key = "facility_water.supply_temperature"\nvalues = ["5 kPa"]',
                             "parameter[0].values", "dimension"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_swept_keys_of_rack_and_facility_exit_2(name, tmp_path, capsys):
    base, param, key, words = BAD[name]
    sweep = _write(tmp_path, base, f'[sweep]\ncase = "base.toml"\n[[parameter]]\n{param}\n')
    assert main(["sweep", str(sweep), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{sweep}: {key}:" in err and words in err, err
    assert not (tmp_path / "out" / "table.csv").exists()


def test_a_plain_number_key_swept_with_units_is_written_with_them(tmp_path):
    """A key the case gives as a plain SI number, swept with units: each design's case carries the SI value and
    unit, so that the model's parser checks the dimension (and accepts a right one)."""
    from aidc_thermo import sweep
    from aidc_thermo.models import rack

    base = RACK.replace('flow = "180 L/min"', "flow = 0.003")
    text = '[sweep]\ncase = "base.toml"\n[[parameter]]\nkey = "supply.flow"\nvalues = ["30 L/min"]\n'
    spec_path = _write(tmp_path, base, text)
    spec = sweep.read_sweep(spec_path)
    (p,) = spec.parameters
    assert p.unit == "m^3/s" and p.with_unit
    case = rack.parse(sweep._design_case(spec, sweep.designs(spec)[0]))
    assert case.supply.flow == pytest.approx(30 / 60000, rel=1e-15)


def test_output_names_become_safe_file_names():
    from aidc_thermo.plots.sweep import _file_part

    assert _file_part("breakdown:other IT + conversion") == "breakdown_other_IT_conversion"
    assert _file_part("T_junction_max") == "T_junction_max"
