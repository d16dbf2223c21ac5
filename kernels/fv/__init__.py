"""Finite-volume fields on non-uniform Cartesian grids: grid, conduction,
advection-diffusion, conjugate energy, laminar flow and the porous fin region."""
