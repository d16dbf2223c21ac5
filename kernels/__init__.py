"""aidc-thermo finite-volume kernels (import name ``aidc_thermo.kernels``, folder
``kernels/``): pure JAX functions of arrays and static configuration. This
package never imports the application, and every import inside it is relative;
other simulators may import it on its own.

Modules:
    grid        non-uniform Cartesian grids (a pytree of cell widths)
    linsolve    symmetric 7-point operators: multigrid-preconditioned CG
    conduction  steady heat conduction with flux / convective / temperature faces
    advdiff     advection-diffusion operators: multigrid-preconditioned BiCGSTAB
    energy      conjugate heat transfer over fluid and solid (upwind, TVD)
    flow        steady laminar incompressible Navier-Stokes on a MAC grid
    network     pipe and component networks: flows, pressures, temperatures
    hx, plant, psychro, it_power, coupled
                heat exchangers, heat rejection plant, psychrometrics, chip
                power, and the coupled junction-to-ambient operating point

Precision is the caller's choice: kernels follow the dtype of their inputs
(float32 or float64) and never change JAX's global configuration.
"""

from . import (
    advdiff,
    conduction,
    coupled,
    energy,
    flow,
    hx,
    it_power,
    linsolve,
    network,
    plant,
    psychro,
)
from .diagnostics import SolveInfo
from .grid import Grid, grid_from_faces, uniform_grid

__all__ = [
    "Grid",
    "SolveInfo",
    "grid_from_faces",
    "uniform_grid",
    "advdiff",
    "conduction",
    "coupled",
    "energy",
    "flow",
    "hx",
    "it_power",
    "linsolve",
    "network",
    "plant",
    "psychro",
]
