"""The bundled cases as the end-to-end tests see them: which are run by the
default suite (tests/test_cli.py's ``runs``) and which only by the slow one,
and the boundedness guard's check on a run (thermo.bounds): the guard passes on
the run's real solution and refuses the same solution corrupted the way a hidden
boundary value would corrupt it."""

import dataclasses
import importlib
import tomllib
from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.errors import SolveError

CASES = Path(__file__).resolve().parents[1] / "cases"
#: every bundled case but the sweeps (docs/sweep.md) and the GPU plate's closure calibration (2-3 min; the same
#: case type as calibration_unit_cell; run, and its folder and table checked, by tests/test_gpu_closures.py)
BUNDLED = sorted(
    p for p in CASES.glob("*.toml") if not p.name.startswith("sweep_") and p.stem != "calibration_gpu_unit_cell"
)
#: bundled cases the default suite does not run (20 s to minutes each on an idle 2-core machine, mostly
#: compilation): tests/test_cli.py and tests/test_bounds.py run them as slow tests; the compact model's own
#: default tests are in tests/test_compact_case.py
SLOW_BUNDLED = {
    "row_nvl72",
    "nvl72_racks_dry_cooler_temperate",
    "coldplate_pinfin",
    "compact_gpu_coldplate",
}
FAST_BUNDLED = [c for c in BUNDLED if c.stem not in SLOW_BUNDLED]


def case_type(path):
    return tomllib.loads(Path(path).read_text())["case"]["type"]


def _colder(a, index, kelvin):
    a = np.array(a, np.float64)
    a[index] -= kelvin
    return a


def _corrupt_stack(case, disc, T):
    return case, disc, _colder(np.full_like(np.asarray(T), case.cold_side.temperature + 1.0), (0, 0, 0), 3.0)


def _corrupt_coldplate(case, sol):
    T = np.asarray(sol.T, np.float64).copy()
    T[tuple(np.argwhere(~np.asarray(sol.geometry.solid))[0])] = case.inlet_temperature - 3.0
    return case, dataclasses.replace(sol, T=T)


def _corrupt_compact(case, arr, qs, ths):
    return case, arr, qs, dataclasses.replace(ths, T_fluid=_colder(ths.T_fluid, (-1, 0, 0), 100.0))


def _corrupt_rack(static, params, solution):
    temps = dataclasses.replace(solution.temperatures, node=_colder(solution.temperatures.node, static.outlet, 50.0))
    return static, params, solution._replace(temperatures=temps)


def _corrupt_facility(static, params, solution):
    ops = solution.ops
    bad = np.array(ops.t_fw_supply, np.float64) - 0.5
    return static, params, solution._replace(ops=dataclasses.replace(ops, t_fw_return=bad))


def _corrupt_hall(static, params, solution):
    T = np.array(solution.T, np.float64)
    T[len(T) // 2, 0] = float(params.t_ambient) - 3.0
    return static, params, solution._replace(T=T)


#: case type -> (module whose check_bounded the run calls, corruption, message)
GUARDS = {
    "package_stack": ("stack", _corrupt_stack, "temperature is .* below its lower bound"),
    "resolved_coldplate": ("coldplate", _corrupt_coldplate, "fluid temperature is .* below its lower bound"),
    "closure_calibration": ("coldplate", _corrupt_coldplate, "fluid temperature is .* below its lower bound"),
    "compact_coldplate": ("compact", _corrupt_compact, r"fluid temperature is .* flow .* L/min"),
    "rack_network": ("rack", _corrupt_rack, r"coolant temperature is .* node \d+ \(outlet\)"),
    "facility": ("facility", _corrupt_facility, "t_fw_return .* below t_fw_supply .* row 0"),
    "transient_hall": ("transient", _corrupt_hall, "fell below the ambient .* with heat only added"),
}


def _guarded_module(kind):
    assert kind in GUARDS, f"case type {kind!r} has no boundedness guard test"
    return importlib.import_module(f"aidc_thermo.models.{GUARDS[kind][0]}")


def spy_on_guard(kind, monkeypatch):
    """Record the arguments of every call of the case type's guard while
    ``monkeypatch`` holds; returns the list the calls are appended to."""
    module = _guarded_module(kind)
    real = module.check_bounded
    seen = []

    def spy(*args):
        seen.append(args)
        return real(*args)

    monkeypatch.setattr(module, "check_bounded", spy)
    return seen


def check_guard(kind, seen):
    """The run called its guard; the guard passes on what it was last given and
    refuses that solution corrupted, with the case type's message."""
    assert seen, "the run did not call its boundedness guard"
    real = _guarded_module(kind).check_bounded
    real(*seen[-1])
    _, corrupt, message = GUARDS[kind]
    with pytest.raises(SolveError, match=message):
        real(*corrupt(*seen[-1]))
