"""aidc-thermo finite-volume kernels (import name ``aidc_thermo.kernels``, folder
``kernels/``): pure JAX functions of arrays and static configuration. This
package never imports the application, and every import inside it is relative;
other simulators may import it on its own.

Subpackages, one family each (every module is also reachable by its short
name, ``aidc_thermo.kernels.flow`` as an attribute, for interactive use;
import it by its full path):
    fv/         finite-volume fields on non-uniform Cartesian grids
                grid (cell widths), conduction (steady conduction), advdiff
                (advection-diffusion operators), energy (conjugate heat
                transfer, upwind/TVD), flow (laminar incompressible flow on a
                MAC grid), porous (volume-averaged fin region)
    solvers/    krylov (the Krylov loops: BiCGSTAB, CG, flexible CG), multigrid
                (hierarchy, line smoother, V-cycle), linsolve (symmetric 7-point
                operators, multigrid-preconditioned CG), roots (bracketed
                scalar roots), dense (LU and Cholesky solves that never batch
                a LAPACK call on the CPU), fusion (a materialisation point
                for loop bodies)
    network/    pipe and component networks: flows, pressures, temperatures
                (laws, linalg, thermal are its parts)
    plant/      heat rejection plant; hx (heat exchangers), psychro
                (psychrometrics), it_power (chip power), coupled (the
                junction-to-ambient operating point), lumped (thermal
                masses and mixing cells in time)
    diagnostics SolveInfo, the status every iterative solve returns

Precision is the caller's choice: kernels follow the dtype of their inputs
(float32 or float64) and never change JAX's global configuration.
"""

from . import network, plant
from .diagnostics import SolveInfo
from .fv import advdiff, conduction, energy, flow, grid, porous, transient
from .fv.grid import Grid, grid_from_faces, uniform_grid
from .plant import coupled, hx, it_power, lumped, psychro
from .solvers import dense, krylov, linsolve, multigrid, roots

__all__ = [
    "Grid",
    "SolveInfo",
    "grid_from_faces",
    "uniform_grid",
    "advdiff",
    "grid",
    "krylov",
    "porous",
    "roots",
    "conduction",
    "coupled",
    "dense",
    "energy",
    "flow",
    "hx",
    "it_power",
    "linsolve",
    "lumped",
    "multigrid",
    "network",
    "plant",
    "psychro",
    "transient",
]
