"""A corpus of malformed inputs over every case type and input file kind
(TOML, CSV and NPY power maps, NPY and HDF5 voxel masks, weather CSV, closure
tables): each must be refused by ``thermo check`` with exit 2, a message that
names the key, and no traceback. Each entry is a bundled case with small text
edits, plus any data files it needs, written to ``tmp_path``.

Also: the memory estimate against a low limit, the inputs that only a solve
shows to have no answer (exit 3), and a hypothesis fuzz test that mutates the
bundled cases structurally and asserts exit 0 or 2, never a traceback, and a
key named in every refusal.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.models import geometry as geo
from tests._first_gpu_plate import first_gpu_plate

CASES = Path(__file__).resolve().parents[1] / "cases"


def _text(name: str) -> str:
    return (CASES / name).read_text()


SLAB = _text("slab.toml")
ACC = _text("accelerator_700w.toml")
CP = _text("coldplate_unit_cell.toml")
PIN = _text("coldplate_pinfin.toml")
CC = first_gpu_plate(_text("compact_gpu_coldplate.toml"))  # the plate these guards were written for
CAL = _text("calibration_unit_cell.toml")
RACK = _text("rack_nvl72.toml")
FD = _text("nvl72_dry_cooler_temperate.toml")
FT = _text("nvl72_chiller_tower_hot_humid.toml")


def edit(text: str, *pairs: tuple[str, str]) -> str:
    """Replace each ``old`` (which must occur) by ``new``, first occurrence."""
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# ----------------------------------------------------------------------------- derived bases

MASK = (
    edit(CP, (CP[CP.index("[geometry]") : CP.index("[material]")], ""))
    + '\n[geometry]\nkind = "mask"\nfile = "mask.npy"\nspacing = ["0.1 mm", "0.1 mm", "0.1 mm"]\n'
)
STL_CP = (
    edit(CP, (CP[CP.index("[geometry]") : CP.index("[material]")], ""))
    + '\n[geometry]\nkind = "stl"\nfile = "plate.stl"\nunits = "mm"\n[geometry.grid]\nx = 8\ny = 6\nz = 6\n'
)
MASK_H5 = edit(MASK, ('file = "mask.npy"', 'file = "mask.h5"'))
SLAB_MAP = edit(SLAB, ('flux = "50 W/cm^2"', 'flux = "50 W/cm^2"\nmap = "map.npy"'))
SLAB_CSV = edit(SLAB, ('flux = "50 W/cm^2"', 'flux = "50 W/cm^2"\nmap = "map.csv"'))
CC_MAP = edit(CC, ('power = "800 W"', 'power = "800 W"\nmap = "map.npy"'))
CC_CLOSURES = edit(
    CC, ('nusselt = "H1"                   # Shah & London four-wall Nu_H1 (or "T")', 'closures = "closures.csv"')
)
FD_WEATHER = edit(FD, ('weather = "data/weather_temperate.csv"', 'weather = "w.csv"'))
FD_POINT = edit(
    FD,
    ('weather = "data/weather_temperate.csv"', 'dry_bulb = "25 degC"\nwet_bulb = "18 degC"'),
)


def good_mask() -> np.ndarray:
    """A small straight channel: base below, fluid above, walls at the sides."""
    m = np.zeros((8, 6, 6), np.int8)
    m[:, :, :2] = 1
    m[:, 0, 2:] = 2
    m[:, -1, 2:] = 2
    return m


def stl_file(name, mutate=lambda t: t):
    """The voxel surface of :func:`good_mask` on 0.1 mm cells, changed by ``mutate``, as STL in mm."""
    m = good_mask()
    g = geo.VoxelGeometry(tuple(np.arange(n + 1) * 1e-4 for n in m.shape), m, (0.0, 8e-4), 2e-4, 6e-4)
    return lambda d: geo.to_stl(mutate(geo.voxel_surface(g)), d / name)


def npy(name, arr):
    return lambda d: np.save(d / name, arr, allow_pickle=True)


def h5(name, build):
    def write(d):
        with h5py.File(d / name, "w") as f:
            build(f)

    return write


def text_file(name, content):
    return lambda d: (d / name).write_text(content)


def huge_npy_header(d):
    """A .npy header declaring 1e15 cells (no data behind it)."""
    with open(d / "mask.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|i1", "fortran_order": False, "shape": (100_000, 100_000, 100_000)}
        )


CLOSURE_META = "# channel_width = 0.0002\n# fin_thickness = 0.0001\n# fin_height = 0.003\n# base_thickness = 0.001\n" \
    "# length = 0.033\n# fin_conductivity = 390\n# prandtl = 5\n"  # fmt: skip
CLOSURE_HEAD = "Re,fRe_apparent,Nu_apparent\n"


def closures(rows: str, meta: str = CLOSURE_META, head: str = CLOSURE_HEAD):
    return text_file("closures.csv", meta + head + rows)


GOOD_CLOSURES = "1,20,5\n100,22,6\n10000,30,9\n"
WEATHER_HEAD = "time,dry_bulb_C,relative_humidity_pct\n"


def weather(rows: str, head: str = WEATHER_HEAD):
    return text_file("w.csv", head + rows)


# ----------------------------------------------------------------------------- the corpus

# name: (case text, {file writers}, key the message must name, extra text the message must hold)
CORPUS: dict[str, tuple[str, list, str, str]] = {
    # --- unit strings (every form that used to crash the parser) and decimal commas
    "unit: unbalanced close": (edit(SLAB, ('thickness = "5 mm"', 'thickness = "5 mm)"')), [], "layers[0].thickness",
                               ""),
    "unit: unbalanced open": (edit(RACK, ('flow = "180 L/min"', 'flow = "(1.5 L/min"')), [], "supply.flow", ""),
    "unit: divide by zero": (edit(SLAB, ('thickness = "5 mm"', 'thickness = "5 mm/0"')), [], "layers[0].thickness", ""),
    "unit: trailing star": (edit(SLAB, ('thickness = "5 mm"', 'thickness = "5 mm*"')), [], "layers[0].thickness", ""),
    "unit: trailing slash": (edit(CP, ('velocity = "0.5 m/s"', 'velocity = "0.5 m/s/"')), [], "inlet.velocity", ""),
    "unit: decimal comma": (edit(SLAB, ('thickness = "5 mm"', 'thickness = "5,5 mm"')), [], "layers[0].thickness",
                            "comma"),
    "unit: decimal comma in a rack": (edit(RACK, ('diameter = "38 mm"', 'diameter = "38,1 mm"')), [],
                                      "manifold.diameter", "comma"),
    "unit: power tower": (edit(SLAB, ('size = ["10 mm", "10 mm"]', 'size = ["10**10**10 mm", "10 mm"]')), [],
                          "domain.size[0]", ""),
    "unit: stray quote": (edit(FD, ('flow = "24 L/s"', "flow = \"24 L/s'\"")), [], "facility_water.flow", ""),
    "unit: paren in temperature": (edit(CC, ('inlet_temperature = "35 degC"', 'inlet_temperature = "35 degC)"')), [],
                                   "operating.inlet_temperature", ""),
    "unit: double exponent": (edit(CAL, ('flux = "50 W/cm^2"', 'flux = "50 W/cm^2^2"')), [], "heat.flux", ""),
    "unit: python code": (edit(SLAB, ('h = "10000 W/m^2/K"', "h = \"__import__('os')\"")), [], "cold_side.h", ""),
    "unit: infinite number": (edit(SLAB, ('thickness = "5 mm"', "thickness = 1e400")), [], "layers[0].thickness", ""),
    "unit: integer beyond float": (edit(SLAB, ('thickness = "5 mm"', "thickness = " + "9" * 400)), [],
                                   "layers[0].thickness", "too large"),
    # --- sizes that cannot fit (refused from the declared sizes, nothing allocated)
    "size: 1e18 stack cells": (edit(SLAB, ("cells = [8, 8]", "cells = [1000000000000, 1000000]")), [], "domain.cells",
                               ""),
    "size: int64 limit": (edit(SLAB, ("cells = [8, 8]", "cells = [9223372036854775807, 9223372036854775807]")), [],
                          "domain.cells", ""),
    "size: 1e12 layer cells": (edit(SLAB, ("cells = 10 ", "cells = 1000000000000 ")), [], "layers[].cells", ""),
    "size: stack beyond memory": (edit(ACC, ("cells = [64, 64]", "cells = [9000, 9000]")), [], "domain.cells",
                                  "available"),
    "size: stack history": (SLAB + "\n[solver]\nmax_iterations = 1000000000000000\n", [],
                            "solver.max_iterations", "available"),
    "size: resolved 1e12 cells": (edit(CP, ("  length = 32", "  length = 1000000000000")), [],
                                  "geometry.cells.length", ""),
    "size: resolved beyond memory": (edit(CP, ("  length = 32", "  length = 1000000")), [], "geometry.cells.length",
                                     "available"),
    "size: resolved whole plate": (edit(CP, ("unit_cell = true", "channels = 100000000")), [], "geometry.channels",
                                   ""),
    "size: pin rows": (edit(PIN, ("rows = 6", "rows = 100000000")), [], "geometry.rows", ""),
    "size: pin plenum": (edit(PIN, ('plenum_length = "1 mm"', 'plenum_length = "1e12 m"')), [],
                         "geometry.plenum_length", ""),
    "size: resolved outer history": (CP.replace("max_outer = 500", "max_outer = 1000000000000000"), [],
                                     "solver.max_outer", "available"),
    "size: compact cells": (edit(CC, ("cells = [48, 48]", "cells = [1000000000, 1000000000]")), [], "plate.cells", ""),
    "size: compact beyond memory": (edit(CC, ("cells = [48, 48]", "cells = [30000, 30000]")), [], "plate.cells",
                                    "available"),
    "size: calibration cells": (edit(CAL, ("  length = 16", "  length = 100000000000000")), [],
                                "geometry.cells.length", ""),
    "size: calibration history": (CAL + "max_outer = 1000000000000000\n", [], "solver.max_outer", "available"),
    "size: 1e8 trays": (edit(RACK, ("count = 8", "count = 100000000")), [], "sections[].count", ""),
    "size: facility history": (FD + "\n[solver]\nmax_iterations = 1000000000000\n", [], "solver.max_iterations",
                               "available"),
    "size: optimize grid": (edit(FD, ("grid = [9, 6]", "grid = [1000000, 6]")), [], "optimize.grid", ""),
    "size: npy mask header of 1e15 cells": (MASK, [huge_npy_header], "geometry.file", ""),
    "size: hdf5 mask of 1e15 cells": (MASK_H5, [h5("mask.h5", lambda f: f.create_dataset(
        "material", shape=(100_000, 100_000, 100_000), dtype="i1", chunks=(8, 8, 8)))], "geometry.file", ""),
    # --- STL geometry (resolved cold plate)
    "stl: open mesh": (STL_CP, [stl_file("plate.stl", lambda t: t[1:])], "geometry.file", "not watertight"),
    "stl: inward normals": (STL_CP, [stl_file("plate.stl", lambda t: t[:, ::-1])], "geometry.file", "inward"),
    "stl: one flipped triangle": (STL_CP, [stl_file("plate.stl", lambda t: np.concatenate([t[:1, ::-1], t[1:]]))],
                                  "geometry.file", "orientation"),
    "stl: two overlapping copies": (STL_CP, [stl_file("plate.stl", lambda t: np.concatenate([t, t]))],
                                    "geometry.file", "shared by more than two"),
    "stl: not an stl": (STL_CP, [text_file("plate.stl", "hello")], "geometry.file", "plate.stl"),
    "stl: outside the domain": (edit(STL_CP, ('units = "mm"', 'units = "mm"\nsize = ["0.8 mm", "0.5 mm", "0.6 mm"]')),
                                [stl_file("plate.stl")], "geometry.file", "leaves the domain"),
    "stl: units missing": (edit(STL_CP, ('units = "mm"\n', "")), [stl_file("plate.stl")], "geometry.units",
                           "missing"),
    "stl: unknown unit": (edit(STL_CP, ('units = "mm"', 'units = "furlong"')), [stl_file("plate.stl")],
                          "geometry.units", ""),
    "stl: fractional grid": (edit(STL_CP, ("x = 8", "x = 8.5")), [stl_file("plate.stl")], "geometry.grid.x", ""),
    "stl: file missing": (STL_CP, [], "geometry.file", "not found"),
    # --- power maps (CSV, NPY) for package_stack and compact_coldplate
    "map: npy of strings": (SLAB_MAP, [npy("map.npy", np.array([["a", "b"], ["c", "d"]]))], "heat[0].map", ""),
    "map: complex npy": (SLAB_MAP, [npy("map.npy", np.ones((2, 2)) * (1 + 1j))], "heat[0].map", "complex"),
    "map: pickled object npy": (SLAB_MAP, [npy("map.npy", np.array([[{}, 1]], dtype=object))], "heat[0].map", ""),
    "map: 1D npy": (SLAB_MAP, [npy("map.npy", np.ones(4))], "heat[0].map", ""),
    "map: NaN in npy": (SLAB_MAP, [npy("map.npy", np.array([[1.0, np.nan], [1.0, 1.0]]))], "heat[0].map", ""),
    "map: negative weight": (SLAB_MAP, [npy("map.npy", np.array([[1.0, -1.0], [1.0, 1.0]]))], "heat[0].map", ""),
    "map: all zero": (SLAB_MAP, [npy("map.npy", np.zeros((2, 2)))], "heat[0].map", ""),
    "map: corrupt npy": (SLAB_MAP, [text_file("map.npy", "not a numpy file")], "heat[0].map", ""),
    "map: text in csv": (SLAB_CSV, [text_file("map.csv", "1,2\n3,x\n")], "heat[0].map", ""),
    "map: ragged csv": (SLAB_CSV, [text_file("map.csv", "1,2\n3\n")], "heat[0].map", ""),
    "map: empty csv": (SLAB_CSV, [text_file("map.csv", "# nothing\n")], "heat[0].map", ""),
    "map: inf in csv": (SLAB_CSV, [text_file("map.csv", "1,inf\n1,1\n")], "heat[0].map", ""),
    "map: overflowing weights": (SLAB_CSV, [text_file("map.csv", "1e308,1e308\n1e308,1e308\n")], "heat[0].map",
                                 "overflows"),
    "map: huge npy header": (SLAB_MAP, [lambda d: _huge_map(d)], "heat[0].map", ""),
    "map: compact npy of strings": (CC_MAP, [npy("map.npy", np.array([["a"]]))], "heat[0].map", ""),
    "map: compact bool npy all false": (CC_MAP, [npy("map.npy", np.zeros((2, 2), bool))], "heat[0].map", ""),
    # --- voxel masks (NPY, HDF5)
    "mask: npy of strings": (MASK, [npy("mask.npy", np.full((4, 4, 4), "x"))], "geometry.file", ""),
    "mask: NaN material": (MASK, [npy("mask.npy", np.where(good_mask() == 1, np.nan, 0.0))], "geometry.file", "NaN"),
    "mask: fractional material": (MASK, [npy("mask.npy", good_mask() * 0.5)], "geometry.file", "whole"),
    "mask: material 7": (MASK, [npy("mask.npy", good_mask() * 7)], "geometry.file", ""),
    "mask: negative material": (MASK, [npy("mask.npy", -good_mask())], "geometry.file", ""),
    "mask: 2D array": (MASK, [npy("mask.npy", good_mask()[:, :, 0])], "geometry.file", ""),
    "mask: complex": (MASK, [npy("mask.npy", good_mask() * 1j)], "geometry.file", ""),
    "mask: material is a group": (MASK_H5, [h5("mask.h5", lambda f: f.create_group("material"))], "geometry.file",
                                  "group"),
    "mask: no material dataset": (MASK_H5, [h5("mask.h5", lambda f: f.create_dataset("other", data=good_mask()))],
                                  "geometry.file", ""),
    "mask: hdf5 strings": (MASK_H5, [h5("mask.h5", lambda f: f.create_dataset("material", data=np.array([b"ab"])))],
                           "geometry.file", ""),
    "mask: hdf5 NaN": (MASK_H5, [h5("mask.h5", lambda f: f.create_dataset(
        "material", data=np.where(good_mask() == 1, np.nan, 0.0)))], "geometry.file", ""),
    "mask: not an hdf5 file": (MASK_H5, [text_file("mask.h5", "plain text")], "geometry.file", ""),
    "mask: wrong extension": (edit(MASK, ('file = "mask.npy"', 'file = "mask.txt"')), [text_file("mask.txt", "1")],
                              "geometry", ""),
    "mask: all solid": (MASK, [npy("mask.npy", np.ones((4, 4, 4), np.int8))], "geometry", "inlet"),
    "mask: negative spacing": (edit(MASK, ('spacing = ["0.1 mm"', 'spacing = ["-0.1 mm"')),
                               [npy("mask.npy", good_mask())], "geometry.spacing[0]", ""),
    # --- closure tables of compact_coldplate
    "closures: NaN Reynolds in a middle row": (CC_CLOSURES, [closures("1,20,5\nnan,22,6\n10000,30,9\n")],
                                               "fins.closures", "line 10"),
    "closures: NaN Nu": (CC_CLOSURES, [closures("1,20,5\n100,22,nan\n10000,30,9\n")], "fins.closures", "Nu_apparent"),
    "closures: Re decreasing": (CC_CLOSURES, [closures("1,20,5\n100,22,6\n50,30,9\n")], "fins.closures", ""),
    "closures: missing column": (CC_CLOSURES, [closures("1,20\n100,22\n", head="Re,fRe_apparent\n")],
                                 "fins.closures", "Nu_apparent"),
    "closures: text value": (CC_CLOSURES, [closures("1,20,5\n100,abc,6\n")], "fins.closures", ""),
    "closures: missing geometry line": (CC_CLOSURES, [closures(GOOD_CLOSURES, meta="# fin_height = 0.003\n")],
                                        "fins.closures", "channel_width"),
    "closures: other channel width": (CC_CLOSURES, [closures(GOOD_CLOSURES, CLOSURE_META.replace("0.0002", "0.0003"))],
                                      "fins.closures", ""),
    "closures: Re range too narrow": (CC_CLOSURES, [closures("1,20,5\n2,22,6\n")], "operating.flow_range", ""),
    "closures: one row": (CC_CLOSURES, [closures("1,20,5\n")], "fins.closures", ""),
    "closures: negative fRe": (CC_CLOSURES, [closures("1,-20,5\n100,22,6\n10000,30,9\n")], "fins.closures", ""),
    "closures: wrong row length": (CC_CLOSURES, [closures("1,20,5,7\n100,22,6\n")], "fins.closures", ""),
    # --- weather files of facility cases
    "weather: no dry bulb column": (FD_WEATHER, [weather("2001-01-01T00:00,80\n", head="time,relative_humidity_pct\n")],
                                    "ambient.weather", "dry_bulb_C"),
    "weather: text value": (FD_WEATHER, [weather("2001-01-01T00:00,warm,80\n")], "ambient.weather", "line"),
    "weather: NaN dry bulb": (FD_WEATHER, [weather("2001-01-01T00:00,nan,80\n")], "ambient.weather", ""),
    "weather: 200 degC": (FD_WEATHER, [weather("2001-01-01T00:00,200,80\n")], "ambient.weather", ""),
    "weather: humidity 150 %": (FD_WEATHER, [weather("2001-01-01T00:00,20,150\n")], "ambient.weather", ""),
    "weather: header only": (FD_WEATHER, [weather("")], "ambient.weather", ""),
    "weather: wet bulb above dry bulb": (FD_WEATHER, [weather("2001-01-01T00:00,20,25\n",
                                                               head="time,dry_bulb_C,wet_bulb_C\n")],
                                         "ambient.weather", ""),
    "weather: both humidity columns": (FD_WEATHER, [weather("t,20,15,80\n",
                                                            head="time,dry_bulb_C,wet_bulb_C,relative_humidity_pct\n")],
                                       "ambient.weather", ""),
    "weather: missing cell": (FD_WEATHER, [weather("2001-01-01T00:00,20\n")], "ambient.weather", ""),
    # --- coolant temperatures outside the property fits (no answer there)
    "coolant: resolved inlet -30 degC": (edit(CP, ('temperature = "30 degC"', 'temperature = "-30 degC"')), [],
                                         "inlet.temperature", "5..90 degC"),
    "coolant: resolved inlet 120 degC": (edit(CP, ('temperature = "30 degC"', 'temperature = "120 degC"')), [],
                                         "inlet.temperature", "5..90 degC"),
    "coolant: calibration inlet 150 degC": (edit(CAL, ('temperature = "30 degC"', 'temperature = "150 degC"')), [],
                                            "inlet.temperature", "5..90 degC"),
    "coolant: compact inlet -5 degC": (edit(CC, ('inlet_temperature = "35 degC"', 'inlet_temperature = "-5 degC"')),
                                       [], "operating.inlet_temperature", "5..90 degC"),
    "coolant: compact inlet 120 degC": (edit(CC, ('inlet_temperature = "35 degC"', 'inlet_temperature = "120 degC"')),
                                        [], "operating.inlet_temperature", "5..90 degC"),
    "coolant: rack supply -30 degC": (edit(RACK, ('temperature = "35 degC"', 'temperature = "-30 degC"')), [],
                                      "supply.temperature", "5..90 degC"),
    "coolant: rack supply 130 degC": (edit(RACK, ('temperature = "35 degC"', 'temperature = "130 degC"')), [],
                                      "supply.temperature", "5..90 degC"),
    "coolant: facility supply below freezing": (edit(FD, ('supply_temperature = "32 degC"',
                                                          'supply_temperature = "-10 degC"')), [],
                                                "facility_water.supply_temperature", "5..79 degC"),
    "coolant: facility supply 85 degC": (edit(FD, ('supply_temperature = "32 degC"', 'supply_temperature = "85 degC"')),
                                         [], "facility_water.supply_temperature", "5..79 degC"),
    "coolant: facility supply above boiling": (edit(FD, ('supply_temperature = "32 degC"',
                                                         'supply_temperature = "150 degC"')), [],
                                               "facility_water.supply_temperature", ""),
    "coolant: tower supply 2 degC": (edit(FT, ('supply_temperature = "30 degC"', 'supply_temperature = "2 degC"')), [],
                                     "facility_water.supply_temperature", ""),
    "coolant: sweep above boiling": (FD + '\n[sweep]\nsupply_temperatures = ["30 degC", "105 degC"]\n', [],
                                     "sweep.supply_temperatures[1]", ""),
    "coolant: optimize bound freezing": (edit(FD, ('supply_temperature = ["22 degC", "45 degC"]',
                                                   'supply_temperature = ["0 degC", "45 degC"]')), [],
                                         "optimize.supply_temperature[0]", ""),
    # --- other inputs without an answer, or that used to crash
    "stack: block without rect": (edit(ACC, ('  rect = ["15 mm", "11.5 mm", "41 mm", "44.5 mm"]\n', "")), [],
                                  "layers[0].blocks[0].rect", "missing"),
    "facility: utilization 0": (edit(FD, (FD[FD.index("utilization_by_hour") : FD.index("other_power")],
                                          "utilization = 0\n")), [], "it.utilization", ""),
    "facility: all-idle profile": (edit(FD, ("[0.55, 0.5, 0.45, 0.45, 0.45, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.9,",
                                             "[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,"),
                                        ("0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6]",
                                         "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]")), [], "it.utilization_by_hour", ""),
    "facility: unreachable CDU approach": (edit(FD, ('approach = "3 K"', 'approach = "0.0001 K"')), [],
                                           "cdu.approach", "not reachable"),
    "facility: unreachable isolation approach": (edit(FT, ('isolation_approach = "1.5 K"',
                                                           'isolation_approach = "0.000001 K"')), [],
                                                 "heat_rejection.isolation_approach", ""),
    # the heat-rejection device's rating needs the psychrometric kernels: refused at build, before the
    # solve (tests/test_facility.py), not by check
    "tolerance: float32 stack 1e-15": (SLAB + '\n[solver]\nprecision = "float32"\ntolerance = 1e-15\n', [],
                                       "solver.tolerance", "float32"),
    "tolerance: float32 resolved 1e-12": (edit(CP, ('precision = "float64"', 'precision = "float32"'),
                                               ("flow_tolerance = 1e-8", "flow_tolerance = 1e-12")), [],
                                          "solver.flow_tolerance", "float32"),
    "tolerance: float32 viscosity coupling": (edit(CP, ('precision = "float64"', 'precision = "float32"'),
                                                   ('viscosity = "inlet"', 'viscosity = "temperature"'),
                                                   ("flow_tolerance = 1e-8", "flow_tolerance = 1e-5"),
                                                   ("max_outer = 500", "max_outer = 500\ncoupling_tolerance = 1e-9")),
                                              [], "solver.coupling_tolerance", "float32"),
    "tolerance: float32 facility 1e-9 K": (FD + '\n[solver]\nprecision = "float32"\ntolerance = "1e-9 K"\n', [],
                                           "solver.tolerance", "float32"),
    "calibration: whole plate": (edit(CAL, ("\nunit_cell = true", "\nchannels = 10")), [], "geometry.channels",
                                 "unit cell"),
    "calibration: pin fins": (edit(CAL, ('kind = "straight_fins"', 'kind = "pin_fins"')), [], "geometry.", ""),
    # --- type swaps
    "type: plates as numbers": (edit(RACK, ('plates = ["switch", "switch"]', "plates = [1, 2]")), [],
                                "tray_types[1].branches[0].plates", ""),
    "type: accelerators as string": (edit(FD, ("accelerators = 576", 'accelerators = "576"')), [],
                                     "it.accelerators", ""),
    "type: fractional cells": (edit(CC, ("cells = [48, 48]", "cells = [48.5, 48]")), [], "plate.cells", ""),
    "type: power as boolean": (edit(SLAB, ('flux = "50 W/cm^2"', "power = true")), [], "heat[0].power", ""),
    "type: zero trays": (edit(RACK, ("count = 9", "count = 0")), [], "sections[1].count", ""),
    "type: layout misspelt": (edit(CC, ('layout = "centre_fed"', 'layout = "center_fed"')), [], "plate.layout", ""),
    "type: pins wider than pitch": (edit(PIN, ('diameter = "0.5 mm"', 'diameter = "1.5 mm"')), [],
                                    "geometry.diameter", ""),
    "type: unknown rejection device": (edit(FD, ('type = "dry_cooler"', 'type = "wet_tower"')), [],
                                       "heat_rejection.type", ""),
    "type: table as a string": (edit(CC, ("[case]", 'plate = "big"\n[case]'), ("[plate]", "[plate_old]")), [],
                                "plate", "expected a table"),
    "type: weather path as number": (edit(FD, ('weather = "data/weather_temperate.csv"', "weather = 5")), [],
                                     "ambient.weather", ""),
}  # fmt: skip


@pytest.mark.parametrize(
    "text",
    ["5 mm)", "(1.5 L/min", "5 mm/0", "5 mm*", "0.5 m/s/", "5,5 mm", "38,1 mm", "1,000 mm", "10**10**10 m", "()",
     "5 [mm]", "__import__('os')", "5 mm@", "5 mm%2", "'5 mm'", "5 mm // 2", "lambda: 1", "5 mm^2^3", "5 mm )(",
     "5 mm **", "", "   ", "/ mm", "* mm", "5 mm / (0 s)", "9" * 400 + " mm", "5 mm" + ")" * 300, "1e400 mm", "nan mm",
     "5 \x00 mm", "5 mm\n6 mm", "-", "+", ".", "e5 mm", "5 mm ^ ^ 2"],
)  # fmt: skip
def test_no_unit_string_crashes_the_parser(text):
    """Every malformed string is a UnitError with a reason, never another exception."""
    from aidc_thermo.io.units import UnitError, to_si

    with pytest.raises(UnitError):
        to_si(text, "length")


@pytest.mark.parametrize(
    "text, dimension, expected",
    [("5.5 mm", "length", 5.5e-3), ("5 µm", "length", 5e-6), ("390 W/(m K)", "thermal_conductivity", 390.0),
     ("20000 W/m^2/K", "heat_transfer_coefficient", 2e4), ("1 mPa*s", "dynamic_viscosity", 1e-3),
     ("2 m^-1 * m^2", "length", 2.0), ("-40 degF", "temperature", 233.15), (".5 mm", "length", 5e-4)],
)  # fmt: skip
def test_the_grammar_keeps_ordinary_units(text, dimension, expected):
    from aidc_thermo.io.units import to_si

    assert to_si(text, dimension) == pytest.approx(expected, rel=1e-12)


def _huge_map(d):
    with open(d / "map.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 10**9)})


def _write_case(tmp_path: Path, text: str, writers) -> Path:
    shutil.copytree(CASES / "data", tmp_path / "data")
    for write in writers:
        write(tmp_path)
    case = tmp_path / "case.toml"
    case.write_text(text)
    return case


def _snapshot(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_corpus_is_large_and_covers_every_case_type():
    assert len(CORPUS) >= 80
    types = {tomllib.loads(text)["case"]["type"] for text, *_ in CORPUS.values() if "[case]" in text}
    assert types == {"package_stack", "resolved_coldplate", "compact_coldplate", "closure_calibration",
                     "rack_network", "facility"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_input_is_refused_naming_the_key(name, tmp_path, capsys):
    text, writers, key, fragment = CORPUS[name]
    case = _write_case(tmp_path, text, writers)
    before = _snapshot(tmp_path)
    code = main(["check", str(case)])
    err = capsys.readouterr().err
    assert code == 2, (name, err)
    assert f"{case}: {key}" in err, (key, err)
    assert fragment in err, (fragment, err)
    assert _snapshot(tmp_path) == before  # nothing written


@pytest.mark.parametrize(
    "text, writers",
    [
        (MASK, [npy("mask.npy", good_mask())]),
        (MASK, [npy("mask.npy", good_mask().astype(np.float64))]),  # whole numbers as floats are fine
        (MASK_H5, [h5("mask.h5", lambda f: f.create_dataset("material", data=good_mask()))]),
        (STL_CP, [stl_file("plate.stl")]),
        (CC_CLOSURES, [closures(GOOD_CLOSURES)]),
        (FD_WEATHER, [weather("2001-01-01T00:00,20,80\n2001-01-01T01:00,19,85\n")]),
        (SLAB_CSV, [text_file("map.csv", "# weights\n1,2\n3,4\n")]),
        (SLAB_MAP, [npy("map.npy", np.array([[1, 2], [3, 4]], np.int32))]),
        (FD_POINT, []),
    ],
)
def test_the_corpus_bases_are_valid(text, writers, tmp_path, capsys):
    """Each entry above breaks exactly one thing: its base passes."""
    case = _write_case(tmp_path, text, writers)
    assert main(["check", str(case)]) == 0, capsys.readouterr().err


# ----------------------------------------------------------------------------- memory against a limit


@pytest.mark.parametrize(
    "name, key",
    [
        ("accelerator_700w.toml", "domain.cells"),
        ("coldplate_unit_cell.toml", "geometry.cells"),
        ("compact_gpu_coldplate.toml", "plate.cells"),
        ("calibration_unit_cell.toml", "geometry.cells"),
        ("rack_nvl72.toml", "sections[].count"),
        ("nvl72_dry_cooler_temperate.toml", "solver.max_iterations"),
    ],
)
def test_memory_estimate_refuses_what_does_not_fit(name, key, tmp_path, capsys, monkeypatch):
    """With 1 MB available every bundled case is refused at check and at run
    (before any allocation), naming the key, the estimate and the memory."""
    monkeypatch.setenv("THERMO_MEMORY_LIMIT", "1e6")
    case = CASES / name
    out = tmp_path / "out"
    for argv in (["check", str(case)], ["run", str(case), "-o", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert key in err and "1 MB available" in err and "needs about" in err, err
    assert not out.exists()


COMPACT = _text("compact_gpu_coldplate.toml")


def _compact_plate(tmp_path: Path, cells: int, curve_points: int) -> Path:
    text = edit(COMPACT, ("cells = [48, 48]", f"cells = [{cells}, {cells}]"),
                ("curve_points = 11", f"curve_points = {curve_points}"))  # fmt: skip
    return _write_case(tmp_path, text, [])


def test_compact_plate_memory_counts_one_flow_at_a_time(tmp_path, capsys, monkeypatch):
    """The flows are solved one after another on a CPU: a 512 x 512 plate with
    11 curve points ran in 3.1 GiB (peak resident set; the estimate was 28 GB,
    refused on a 24 GB machine, when every flow was counted as solved at once).
    The estimate now lets it through with 6 GB and still refuses it with 4 GB."""
    case = _compact_plate(tmp_path, 512, 11)
    monkeypatch.setenv("THERMO_MEMORY_LIMIT", "6e9")
    assert main(["check", str(case)]) == 0, capsys.readouterr().err
    monkeypatch.setenv("THERMO_MEMORY_LIMIT", "4e9")
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert "plate.cells" in err and "one flow's solve" in err and "the fields of 12 flows" in err, err


@pytest.mark.slow
def test_compact_plate_memory_estimate_bounds_the_measured_peak(tmp_path):
    """A 240 x 240 plate with 33 flows: the peak resident set of a `thermo run`
    stays under the import's plus the estimate (which must also not be more
    than 2.5x what the run used above the import, or it refuses plates that fit)."""
    import subprocess
    import sys

    from aidc_thermo import resources

    case = _compact_plate(tmp_path, 240, 32)
    parts = []
    real = resources.require_memory
    try:
        resources.require_memory = lambda file, case_type, p: parts.append((case_type, p))
        assert main(["check", str(case)]) == 0
    finally:
        resources.require_memory = real
    ((case_type, p),) = parts
    estimate = sum(b for _, b, _ in p) + resources.BASELINE[case_type]

    env = dict(os.environ, AIDC_THERMO_CURVE_CACHE="off", AIDC_THERMO_COMPILE_CACHE="off")
    code = ("import resource, sys; from aidc_thermo.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code, "run", str(case), "-o", str(tmp_path / "out"), "-q"],
                         env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    peak = 1024 * int(run.stdout.split()[-1])
    imported = ("import resource, jax.numpy as jnp, aidc_thermo.models.compact; jnp.zeros(1).block_until_ready(); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")  # fmt: skip
    imp = subprocess.run([sys.executable, "-c", imported], env=env, capture_output=True, text=True, check=True)
    base = 1024 * int(imp.stdout.split()[-1])
    assert peak - base < estimate < 2.5 * (peak - base), (peak, base, estimate)


def test_memory_is_read_from_the_machine():
    from aidc_thermo.resources import available_memory

    avail = available_memory()
    assert 1e7 < avail < 1e15  # between 10 MB and 1 PB: read, not a placeholder


# ----------------------------------------------------------------------------- answers that do not exist (exit 3)


def test_rack_that_would_boil_is_a_failed_solve(tmp_path, capsys):
    """1 mL/min for 90 kW: the coolant would leave far above boiling; exit 3
    naming the quantity, no results."""
    case = _write_case(
        tmp_path, edit(RACK, ('flow = "180 L/min"', 'flow = "1 mL/min"'), ("plots = true", "plots = false")), []
    )
    out = tmp_path / "out"
    code = main(["run", str(case), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "physically impossible" in err and "boil" in err and "degC" in err, err
    assert not out.exists()


def test_facility_iteration_limit_is_not_called_runaway(tmp_path, capsys):
    """max_iterations = 1 stops the solve: non-convergence, told apart from
    thermal runaway."""
    text = FD_POINT + "\n[solver]\nmax_iterations = 1\n\n[output]\nplots = false\n"
    case = _write_case(tmp_path, text, [])
    code = main(["run", str(case), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "iteration limit" in err and "not thermal runaway" in err, err
    assert "leakage grows faster" not in err


# ----------------------------------------------------------------------------- fuzz


def _dump(data: dict) -> str:
    """A minimal TOML writer for the case files' shapes (tables, arrays of
    tables, scalars, lists of scalars)."""

    def scalar(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            if math.isnan(v):
                return "nan"
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return repr(v)
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{_key(k)} = {scalar(x)}" for k, x in v.items()) + "}"
        raise TypeError(type(v))

    lines: list[str] = []

    def table(d: dict, path: str):
        plain = {k: v for k, v in d.items() if not _is_table(v) and not _is_table_array(v)}
        for k, v in plain.items():
            lines.append(f"{_key(k)} = {scalar(v)}")
        for k, v in d.items():
            sub = f"{path}.{_key(k)}" if path else _key(k)
            if _is_table(v):
                lines.append(f"\n[{sub}]")
                table(v, sub)
            elif _is_table_array(v):
                for item in v:
                    lines.append(f"\n[[{sub}]]")
                    table(item, sub)

    table(data, "")
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else '"' + k + '"'


def _is_table(v) -> bool:
    return isinstance(v, dict)


def _is_table_array(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _paths(d, prefix=()):
    """Every (path, value) of scalars and lists of scalars in a parsed case."""
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _paths(v, (*prefix, k))
    elif _is_table_array(d):
        for i, v in enumerate(d):
            yield from _paths(v, (*prefix, i))
    else:
        yield prefix, d


def _set(d, path, value):
    for p in path[:-1]:
        d = d[p]
    if value is _DELETE:
        if isinstance(d, dict):
            del d[path[-1]]
    else:
        d[path[-1]] = value


_DELETE = object()
FUZZ_BASES = ["slab.toml", "coldplate_unit_cell.toml", "compact_gpu_coldplate.toml", "calibration_unit_cell.toml",
              "rack_nvl72.toml", "nvl72_dry_cooler_temperate.toml"]  # fmt: skip
_UNIT_SWAPS = ["5 kg", "1 s", "3 K", "2 degC", "7 W", "0.5 m/s", "1 Pa", "1 L/min", "5 mm)", "5,5 mm", "", "x", "1e9 m"]


def _mutate(value, kind: int, pick: int):
    """One mutation of a scalar: delete, swap type, change unit, scale by 1e9."""
    if kind == 0:
        return _DELETE
    if kind == 1:  # swap the type
        return [True, "text", 3, 2.5, [1, 2], {"a": 1}][pick % 6]
    if kind == 2:  # change the unit (or the unit of a number)
        return _UNIT_SWAPS[pick % len(_UNIT_SWAPS)]
    # scale a size by 1e9
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value * 10**9
    if isinstance(value, float):
        return value * 1e9
    if isinstance(value, str):
        head, _, unit = value.partition(" ")
        try:
            return f"{float(head) * 1e9:g} {unit}".strip()
        except ValueError:
            return value + "e9"
    if isinstance(value, list):
        return [_mutate(v, 3, pick) for v in value]
    return value


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    given = None


if given is not None:

    # 60 examples keep the default suite fast (~20 s); THERMO_FUZZ_EXAMPLES=1000 for a deeper search
    @settings(
        max_examples=int(os.environ.get("THERMO_FUZZ_EXAMPLES", "60")),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        base=st.sampled_from(FUZZ_BASES),
        mutations=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.integers(0, 100)), min_size=1,
                           max_size=3),
    )  # fmt: skip
    def test_fuzzed_cases_exit_0_or_2_naming_a_key(base, mutations, tmp_path_factory):
        data = tomllib.loads((CASES / base).read_text())
        for index, kind, pick in mutations:
            paths = [p for p, _ in _paths(data) if p and p[0] != "case"]
            if not paths:
                break
            path, value = paths[index % len(paths)], None
            for p, v in _paths(data):
                if p == path:
                    value = v
            _set(data, path, _mutate(value, kind, pick))
        folder = tmp_path_factory.mktemp("fuzz")
        shutil.copytree(CASES / "data", folder / "data")
        case = folder / "case.toml"
        case.write_text(_dump(data))
        before = _snapshot(folder)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["check", str(case)])
        message = err.getvalue()
        assert code in (0, 2), message
        assert _snapshot(folder) == before
        if code == 2:  # "error: <case file>: <key>: <message>"
            prefix = f"error: {case}: "
            assert message.startswith(prefix), message
            key, sep, _ = message[len(prefix) :].partition(": ")
            assert sep and key and " " not in key, message
