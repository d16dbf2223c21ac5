"""Everything the plots read from a results folder, in one place.

The plots of every case type are a function of ``results.h5`` alone
(:func:`thermo.plots.figures.plot_results`), so ``thermo run`` and ``thermo plot``
draw the same PNG files. This module is the only one that knows where the
plots' data sit in ``results.h5``: :data:`DATASETS` maps a logical name to its
HDF5 path. A change of the file layout is a change of this table (and of
:data:`LAYOUT`, which :func:`write_layout` stamps on every results file and
:func:`open_results` checks).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from aidc_thermo.io.case import CaseError

__all__ = ["DATASETS", "LAYOUT", "Results", "open_results", "write_layout"]

#: Version of the results.h5 layout the plots read. Raise it when a dataset the
#: plots need is added, renamed or changes meaning.
LAYOUT = 2

#: logical name -> HDF5 path of every dataset the plots read.
DATASETS = {
    # every case type
    "case_text": "case/text",
    "case_parsed": "case/parsed",
    "summary": "summary",  # attributes: name -> value, name.unit -> unit
    # grids (3D case types)
    "x_faces": "grid/x_faces",
    "y_faces": "grid/y_faces",
    "z_faces": "grid/z_faces",
    # package_stack
    "stack.temperature": "fields/temperature",  # degC, (nx, ny, nz)
    "stack.junction_temperature": "junction/temperature",  # degC, (nx, ny), bottom face
    "stack.junction_mask": "junction/heated",  # 1 where a heat source is, (nx, ny)
    "stack.block_name": "blocks/name",
    "stack.block_T_max": "blocks/T_max",  # degC
    "stack.block_T_mean": "blocks/T_mean",  # degC
    "stack.block_power": "blocks/power",  # W
    "stack.layer_name": "stackup/layer",
    "stack.layer_resistance": "stackup/resistance",  # K/W per layer, then the cold side
    "stack.residual_history": "solver/residual_history",
    # resolved_coldplate (and the calibration cells, with a leading Reynolds axis)
    "plate.velocity": "fields/velocity",  # m/s, (nx, ny, nz, 3) cell-centred, 0 in solid
    "plate.material": "fields/material",
    "plate.base_bottom_temperature": "base/bottom_temperature",  # degC, (nx, ny)
    "plate.heated": "base/heated",  # 1 where the bottom is heated, (nx, ny)
    "plate.flow_residual_history": "solver/flow_residual_history",
    "plate.energy_residual_history": "solver/energy_residual_history",
    "profile.x": "profiles/x",  # m, cell centres along the flow
    "profile.pressure": "profiles/pressure",  # Pa, fluid area mean per cross-section
    "profile.T_bulk": "profiles/T_bulk",  # degC, flow-weighted fluid temperature
    "profile.T_wall": "profiles/T_wall",  # degC, area mean of the wetted walls
    "profile.T_base_max": "profiles/T_base_max",  # degC, hottest base-bottom point per x
    "profile.h": "profiles/h",  # W/m^2/K, local wall heat-transfer coefficient
    "section.x": "cross_section/x",  # m, where the section is
    "section.y_faces": "cross_section/y_faces",
    "section.z_faces": "cross_section/z_faces",
    "section.temperature": "cross_section/temperature",  # degC, (ny, nz)
    "section.velocity_x": "cross_section/velocity_x",  # m/s, axial
    "section.material": "cross_section/material",  # 0 fluid
    # closure_calibration
    "closures": "closures",  # group of columns (Re, fRe_*, Nu_*, ...)
    "closure_grid": "closure_grid",  # every unit cell's rows of a calibration grid (channel_width, fin_thickness, ...)
    "calibration.fRe_reference": "reference/fRe_shah_london",
    "calibration.Nu_reference": "reference/Nu_H1_shah_london",
    # compact_coldplate
    "compact.junction_temperature": "fields/junction_temperature",  # degC, (nx, ny) on the bottom face
    "compact.temperature_fluid": "fields/temperature_fluid",  # degC, (nx, ny) on the fin layer
    "compact.velocity": "fields/velocity",  # m/s superficial, (nx, ny, 3) on the fin layer (z = 0)
    "compact.heat_flux": "power_map/heat_flux",  # W/m^2 into the bottom, (nx, ny)
    "compact.curve_flow": "curves/flow_Lpm",
    "compact.curve_dp": "curves/pressure_drop_kPa",
    "compact.curve_r_max": "curves/R_max_KpW",
    "compact.curve_r_mean": "curves/R_mean_KpW",
    "compact.energy_residual_history": "solver/energy_residual_history",
    # rack_network
    "rack.pressure": "network/pressure",  # Pa per node
    "rack.elevation": "network/elevation",  # m per node
    "rack.supply_nodes": "network/supply_nodes",  # supply-manifold tap node per tray
    "rack.return_nodes": "network/return_nodes",
    "rack.outlet_node": "network/outlet_node",
    "rack.density": "fluid",  # attribute 'density'
    "rack.plate_type": "plates/type",
    "rack.plate_tray": "plates/tray",
    "rack.plate_branch": "plates/branch",
    "rack.plate_position": "plates/position",
    "rack.plate_flow_ratio": "plates/flow_ratio",
    "rack.plate_T_in": "plates/inlet_temperature",  # degC
    "rack.plate_T_out": "plates/outlet_temperature",
    "rack.plate_T_j": "plates/junction_temperature",
    "rack.plate_T_j_limit": "plates/junction_limit",  # degC, NaN where the plate type has none
    "rack.tray_level": "trays/level",
    "rack.tray_flow": "trays/flow",
    "rack.tray_type": "trays/type",
    "rack.residual_history": "solver/residual_history",
    # rack_network with a [row] (absent for a single rack)
    "rack.plate_rack": "plates/rack",  # rack of every plate; plates/tray is then the tray within its rack
    "rack.tray_rack": "trays/rack",
    "rack.rack_flow": "racks/flow",  # m^3/s into each rack, in order along the supply header
    "rack.rack_T_j_max": "racks/T_junction_max",  # degC, hottest chip of each rack
    "rack.header_supply_nodes": "racks/supply_header_node",  # supply header node at each rack's take-off
    "rack.header_return_nodes": "racks/return_header_node",
    # facility
    "facility.hourly": "hourly",  # group: /hourly/<series>
    "facility.sweep": "sweep",
    "facility.breakdown": "breakdown",  # J/token by component; attribute 'description' is the label
    "facility.limits": "limits",  # group: setpoint and limit temperatures (degC)
    "optimize.grid": "grid",  # thermo optimize: supply_temperature, flow_scale, J_per_token_facility, ...
    # transient_hall
    "transient.series": "series",  # group: /series/<name>, time first (s); temperatures degC, powers W
    "transient.limits": "limits",  # group: junction limit, supply setpoint, ambient (degC)
}


def write_layout(h5) -> None:
    """Stamp ``results.h5`` with the layout version the plots read."""
    from aidc_thermo import __version__

    h5.attrs["layout"] = LAYOUT
    h5.attrs["written_by"] = f"aidc-thermo {__version__}"


@dataclass
class Results:
    """An open ``results.h5``: ``case_type``, ``summary`` (name -> value),
    ``summary_units``, ``parsed`` (the parsed case, SI) and :meth:`get`."""

    path: Path
    h5: h5py.File
    case_type: str
    summary: dict
    summary_units: dict
    parsed: dict

    def has(self, name: str) -> bool:
        return DATASETS[name] in self.h5

    def get(self, name: str) -> np.ndarray:
        """The dataset ``name`` (a key of :data:`DATASETS`) as an array
        (strings decoded)."""
        ds = self.h5[DATASETS[name]]
        data = ds[()]
        if ds.dtype.kind in "OS":
            return np.asarray([d.decode() if isinstance(d, bytes) else str(d) for d in np.ravel(data)])
        return np.asarray(data)

    def celsius(self, name: str) -> np.ndarray:
        """A temperature dataset in degC, whatever unit its ``units``
        attribute names (degC or K)."""
        units = str(self.h5[DATASETS[name]].attrs.get("units", ""))
        data = self.get(name).astype(np.float64)
        if units == "K":
            return data - 273.15
        if units != "degC":
            raise ValueError(f"{DATASETS[name]}: units {units!r}, not a temperature in K or degC")
        return data

    def group(self, name: str) -> dict[str, tuple[np.ndarray, str, str]]:
        """The datasets of group ``name``: key -> (data, units, description),
        in the order they were written."""
        g = self.h5[DATASETS[name]]
        out = {}
        for key in g:
            ds = g[key]
            out[key] = (np.asarray(ds[()]), str(ds.attrs.get("units", "")), str(ds.attrs.get("description", "")))
        return out

    def attr(self, name: str, key: str):
        return self.h5[DATASETS[name]].attrs[key]

    def close(self) -> None:
        self.h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_results(folder: str | Path) -> Results:
    """Open ``folder/results.h5`` for plotting; a folder that is not a results
    folder, or a file of another layout, raises :class:`CaseError` (exit 2)."""
    folder = Path(folder)
    path = folder / "results.h5"
    if not folder.is_dir():
        raise CaseError(folder, "", "not a folder (give a results folder written by thermo run)")
    if not path.is_file():
        raise CaseError(folder, "", "not a results folder: no results.h5 in it (give a folder written by thermo run)")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise CaseError(path, "", f"cannot read it as HDF5 ({exc})") from None
    try:
        layout = h5.attrs.get("layout")
        if layout is None or int(layout) != LAYOUT:
            who = h5.attrs.get("written_by", "an older aidc-thermo")
            raise CaseError(
                path,
                "layout",
                f"written by {who} (results layout {layout if layout is not None else 'unversioned'}); "
                f"this version plots layout {LAYOUT}: rerun the case with thermo run",
            )
        text = h5[DATASETS["case_text"]][()]
        text = text.decode() if isinstance(text, bytes) else str(text)
        case_type = tomllib.loads(text)["case"]["type"]
        parsed = h5[DATASETS["case_parsed"]][()]
        parsed = json.loads(parsed.decode() if isinstance(parsed, bytes) else str(parsed))
        attrs = h5[DATASETS["summary"]].attrs
        summary, units = {}, {}
        for key in attrs:
            if key.endswith(".unit"):
                continue
            v = attrs[key]
            summary[key] = v.item() if isinstance(v, np.generic) else v
            u = attrs.get(key + ".unit", "")
            units[key] = u.decode() if isinstance(u, bytes) else str(u)
    except CaseError:
        h5.close()
        raise
    except (KeyError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        h5.close()
        raise CaseError(path, "", f"not a complete aidc-thermo results file ({exc})") from None
    return Results(path, h5, case_type, summary, units, parsed)
