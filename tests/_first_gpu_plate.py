"""The compact GPU plate as first bundled (water, a 28 mm die at 800 W, 960 W
in all, 1.5 L/min, curves over 1-3 L/min at 6 flows).

Tests that validate the compact model (analytic pressure drops with water
properties, power-map remapping on the 26-54 mm die, input guards) keep this
plate, so that they stay what they were when
``cases/compact_gpu_coldplate.toml`` became the NVL72-class PG25 plate of the
rack and hall cases (with Shah & London's Nu_H1: the bundled plate's
calibrated table is for PG25). ``first_gpu_plate(text)`` turns the bundled
text into it.

``bundled_gpu_plate()`` is the bundled plate's text with its closure table
named by absolute path, for tests that write the plate elsewhere.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED = Path(__file__).resolve().parents[1] / "cases" / "compact_gpu_coldplate.toml"
CLOSURES = 'closures = "data/gpu_closures.csv"'

_EDITS = (
    ('rect = ["20 mm", "20 mm", "60 mm", "60 mm"]   # x0, y0, x1, y1\npower = "840 W"',
     'rect = ["26 mm", "26 mm", "54 mm", "54 mm"]   # x0, y0, x1, y1\npower = "800 W"'),
    ('"8 mm", "24 mm", "18 mm", "36 mm"', '"12 mm", "28 mm", "22 mm", "38 mm"'),
    ('"8 mm", "44 mm", "18 mm", "56 mm"', '"12 mm", "42 mm", "22 mm", "52 mm"'),
    ('"62 mm", "24 mm", "72 mm", "36 mm"', '"58 mm", "28 mm", "68 mm", "38 mm"'),
    ('"62 mm", "44 mm", "72 mm", "56 mm"', '"58 mm", "42 mm", "68 mm", "52 mm"'),
    ("[coolant]\nfluid = \"propylene_glycol\"\nvolume_fraction = 0.25            # PG25, as the rack and the halls' "
     "technology cooling loop", '[coolant]\nfluid = "water"'),
    ("flow = \"2.5 L/min\"                # the halls' flow per accelerator\n"
     "flow_range = [\"1 L/min\", \"6 L/min\"]   # curves dP(Q), R(Q): the rack's plate flows and the halls' "
     "1.5-4 L/min\ncurve_points = 11",
     'flow = "1.5 L/min"\nflow_range = ["1 L/min", "3 L/min"]   # curves dP(Q), R(Q)\ncurve_points = 6'),
    (CLOSURES + "   # calibrated grid of unit cells (or nusselt = \"H1\": Shah & London)",
     'nusselt = "H1"                   # Shah & London four-wall Nu_H1 (or "T")'),
)  # fmt: skip


def first_gpu_plate(text: str | None = None) -> str:
    text = BUNDLED.read_text() if text is None else text
    for old, new in _EDITS:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def bundled_gpu_plate() -> str:
    text = BUNDLED.read_text()
    assert CLOSURES in text
    return text.replace(CLOSURES, f'closures = "{(BUNDLED.parent / "data" / "gpu_closures.csv").as_posix()}"', 1)
