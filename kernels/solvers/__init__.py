"""The solver shelf: Krylov loops (krylov), geometric multigrid (multigrid),
symmetric 7-point operators solved with both (linsolve), bracketed scalar
roots (roots) and dense LU / Cholesky solves that never batch a LAPACK call
on the CPU (dense); and a materialisation point for loop bodies that XLA
would otherwise recompute inside every consumer (fusion)."""
