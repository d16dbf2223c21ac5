"""The solver shelf: Krylov loops (krylov), geometric multigrid (multigrid),
symmetric 7-point operators solved with both (linsolve) and bracketed scalar
roots (roots)."""
