"""aidc-thermo finite-volume kernels: pure JAX functions of arrays and static
configuration. This package never imports ``thermo``; other simulators may
import it on its own.

Precision is the caller's choice: kernels follow the dtype of their inputs
(float32 or float64) and never change JAX's global configuration.
"""

from kernels.diagnostics import SolveInfo
from kernels.grid import Grid, grid_from_faces, uniform_grid

__all__ = ["Grid", "SolveInfo", "grid_from_faces", "uniform_grid"]
